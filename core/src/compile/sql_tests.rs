use super::*;

#[test]
fn placeholders_are_numbered_and_typed() {
    let mut b = SqlBuilder::new();
    assert_eq!(b.text("a"), "$1::text");
    assert_eq!(b.int(7), "$2::int8");
    assert_eq!(b.text("a"), "$1::text", "an identical value is reused");
    assert_eq!(b.param(Param::TextArray(vec!["x".into()])), "$3::text[]");
    assert_eq!(b.params.len(), 3);
}

#[test]
fn finish_drops_unreferenced_parameters_and_renumbers() {
    let mut b = SqlBuilder::new();
    let (p1, p2, p3) = (b.int(1), b.text("unused"), b.int(3));
    let sql = format!("SELECT {p1} + {p3}, '$9 stays', {p3}");
    assert_eq!(p2, "$2::text");
    let (sql, params) = b.finish(&sql);
    assert_eq!(sql, "SELECT $1::int8 + $2::int8, '$9 stays', $2::int8");
    assert_eq!(params, vec![Param::Int(1), Param::Int(3)]);
    let mut all = SqlBuilder::new();
    let x = all.int(5);
    assert_eq!(
        all.finish(&format!("SELECT {x}")),
        ("SELECT $1::int8".to_string(), vec![Param::Int(5)])
    );
}

#[test]
fn quote_ident_doubles_quotes() {
    assert_eq!(quote_ident(r#"a"b; drop"#), r#""a""b; drop""#);
}
