use super::*;
use crate::compile::dates::ProjectTime;
use proptest::prelude::*;
use serde_json::Value;

fn no_cohort(_: i64) -> Option<(bool, Value)> {
    None
}

fn no_action(_: i64) -> Option<Value> {
    None
}

fn with_cx<T>(
    person_props: Option<&str>,
    tz: &str,
    f: impl FnOnce(&FilterContext, &mut SqlBuilder) -> T,
) -> T {
    let pt = ProjectTime::new(tz, 0).unwrap();
    let taf = Value::Null;
    let cx = FilterContext {
        event_alias: "e",
        project_param: "$1::int8".into(),
        person_props,
        pt: &pt,
        cohort: &no_cohort,
        action: &no_action,
        test_account_filters: &taf,
        materialized: &[],
    };
    let mut b = SqlBuilder::new();
    assert_eq!(b.int(777), "$1::int8");
    f(&cx, &mut b)
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Expr,
    Text,
    Bool,
    Number,
}

const MODES: [Mode; 4] = [Mode::Expr, Mode::Text, Mode::Bool, Mode::Number];

fn compile_in(
    mode: Mode,
    src: &str,
    b: &mut SqlBuilder,
    cx: &FilterContext,
) -> Result<(String, HogqlType)> {
    match mode {
        Mode::Expr => compile_expr(src, "x", b, cx),
        Mode::Text => compile_text(src, "x", b, cx).map(|s| (s, HogqlType::Text)),
        Mode::Bool => compile_bool(src, "x", b, cx).map(|s| (s, HogqlType::Bool)),
        Mode::Number => compile_number(src, "x", b, cx).map(|s| (s, HogqlType::Number)),
    }
}

/// Compile and return (sql, type, params after the project id).
fn run_tz(mode: Mode, src: &str, tz: &str) -> Result<(String, HogqlType, Vec<Param>)> {
    with_cx(None, tz, |cx, b| {
        let (sql, ty) = compile_in(mode, src, b, cx)?;
        Ok((sql, ty, b.params[1..].to_vec()))
    })
}

fn ok(mode: Mode, src: &str) -> (String, Vec<Param>) {
    let (sql, _, params) = run_tz(mode, src, "UTC").unwrap_or_else(|e| panic!("{src}: {e:?}"));
    (sql, params)
}

fn expr(src: &str) -> (String, HogqlType, Vec<Param>) {
    run_tz(Mode::Expr, src, "UTC").unwrap_or_else(|e| panic!("{src}: {e:?}"))
}

fn sql(src: &str) -> String {
    expr(src).0
}

fn err_in(mode: Mode, src: &str) -> QueryError {
    let e = run_tz(mode, src, "UTC").expect_err(&format!("{src} should fail"));
    assert_eq!(
        (e.state.code(), e.attr.as_deref()),
        ("22023", Some("x")),
        "{src}"
    );
    assert!(
        e.detail.starts_with("Unsupported HogQL: "),
        "{src}: {}",
        e.detail
    );
    e
}

fn err(src: &str) -> String {
    err_in(Mode::Expr, src).detail
}

fn t(s: &str) -> Param {
    Param::Text(s.to_string())
}

fn num(t: &str) -> String {
    format!("(CASE WHEN length({t}) <= 100 AND {t} ~ '{NUM_RE}' THEN ({t})::numeric END)")
}

const P2: &str = "(e.properties ->> $2::text)";
const P3: &str = "(e.properties ->> $3::text)";

// ----- literals and fields -----------------------------------------------------------------

#[test]
fn literals() {
    assert_eq!(
        expr("42"),
        (
            "$2::int8::numeric".into(),
            HogqlType::Number,
            vec![Param::Int(42)]
        )
    );
    assert_eq!(
        expr("-7"),
        (
            "$2::int8::numeric".into(),
            HogqlType::Number,
            vec![Param::Int(-7)]
        )
    );
    assert_eq!(
        expr("1.5e1"),
        (
            "$2::float8::numeric".into(),
            HogqlType::Number,
            vec![Param::Float(15.0)]
        )
    );
    assert_eq!(
        expr("'it''s'"),
        ("$2::text".into(), HogqlType::Text, vec![t("it's")])
    );
    assert_eq!(expr(r"'a\'b\n\\\%'").2, vec![t("a'b\n\\\\%")]);
    assert_eq!(expr("TRUE"), ("TRUE".into(), HogqlType::Bool, vec![]));
    assert_eq!(expr("false"), ("FALSE".into(), HogqlType::Bool, vec![]));
    assert_eq!(
        expr("null"),
        ("NULL::text".into(), HogqlType::Unknown, vec![])
    );
}

#[test]
fn fields() {
    let person =
        "(SELECT pgi_p.properties FROM insights.persons pgi_p WHERE pgi_p.id = e.person_id)";
    let cases: Vec<(&str, String, HogqlType, Vec<Param>)> =
        vec![
        ("properties.$browser", P2.into(), HogqlType::Unknown, vec![t("$browser")]),
        ("properties.foo", P2.into(), HogqlType::Unknown, vec![t("foo")]),
        ("properties['any key']", P2.into(), HogqlType::Unknown, vec![t("any key")]),
        ("properties.\"quoted key\"", P2.into(), HogqlType::Unknown, vec![t("quoted key")]),
        ("properties.`x\"y`", P2.into(), HogqlType::Unknown, vec![t("x\"y")]),
        ("properties.not", P2.into(), HogqlType::Unknown, vec![t("not")]),
        (
            "properties.a.b",
            "(e.properties #>> $2::text[])".into(),
            HogqlType::Unknown,
            vec![Param::TextArray(vec!["a".into(), "b".into()])],
        ),
        (
            "properties['a']['b']",
            "(e.properties #>> $2::text[])".into(),
            HogqlType::Unknown,
            vec![Param::TextArray(vec!["a".into(), "b".into()])],
        ),
        (
            "person.properties.email",
            format!("({person} ->> $2::text)"),
            HogqlType::Unknown,
            vec![t("email")],
        ),
        (
            "person.properties['x y']",
            format!("({person} ->> $2::text)"),
            HogqlType::Unknown,
            vec![t("x y")],
        ),
        (
            "group_3.properties.industry",
            "((SELECT pgi_g.properties FROM insights.groups pgi_g WHERE pgi_g.project_id = \
             $1::int8 AND pgi_g.group_type_index = 3 AND pgi_g.group_key = e.group_3) ->> $2::text)"
                .into(),
            HogqlType::Unknown,
            vec![t("industry")],
        ),
        ("event", "e.event".into(), HogqlType::Text, vec![]),
        ("distinct_id", "e.distinct_id".into(), HogqlType::Text, vec![]),
        ("timestamp", "e.\"timestamp\"".into(), HogqlType::Timestamp, vec![]),
        (
            "person_id",
            "(SELECT pgi_pu.uuid::text FROM insights.persons pgi_pu WHERE pgi_pu.id = e.person_id)"
                .into(),
            HogqlType::Text,
            vec![],
        ),
        ("$session_id", "e.session_id".into(), HogqlType::Text, vec![]),
        ("session_id", "e.session_id".into(), HogqlType::Text, vec![]),
        ("elements_chain", "e.elements_chain".into(), HogqlType::Text, vec![]),
        ("uuid", "(e.uuid::text)".into(), HogqlType::Text, vec![]),
        ("$group_0", "NULLIF(e.group_0, '')".into(), HogqlType::Text, vec![]),
        ("$group_4", "NULLIF(e.group_4, '')".into(), HogqlType::Text, vec![]),
        ("\"event\"", "e.event".into(), HogqlType::Text, vec![]),
    ];
    for (src, want, ty, params) in cases {
        assert_eq!(expr(src), (want, ty, params), "{src}");
    }
    // With the persons table joined by the caller.
    with_cx(Some("p.properties"), "UTC", |cx, b| {
        assert_eq!(
            compile_text("person.properties.email", "x", b, cx).unwrap(),
            "(p.properties ->> $2::text)"
        );
    });
}

// ----- operators ---------------------------------------------------------------------------

#[test]
fn comparisons_are_typed() {
    assert_eq!(
        ok(Mode::Bool, "properties.$browser == 'Chrome'"),
        (
            format!("(({P2} = $3::text)) IS TRUE"),
            vec![t("$browser"), t("Chrome")]
        )
    );
    // Property vs number: numeric, behind the guard.
    assert_eq!(
        sql("properties.n > 5"),
        format!("({} > $3::int8::numeric)", num(P2))
    );
    assert_eq!(
        sql("5 <= person.properties.age"),
        format!(
            "($2::int8::numeric <= {})",
            num(
                "((SELECT pgi_p.properties FROM insights.persons pgi_p WHERE pgi_p.id = e.person_id) ->> $3::text)"
            )
        )
    );
    // Property vs property, text vs number: text, ordering in byte order.
    assert_eq!(
        sql("properties.a < properties.b"),
        format!("({P2} COLLATE \"C\" < {P3})")
    );
    assert_eq!(
        sql("event <> 5"),
        "(e.event <> (trim_scale($2::int8::numeric)::text))"
    );
    assert_eq!(
        sql("properties.flag = true"),
        format!("({P2} = (CASE TRUE WHEN TRUE THEN 'true' WHEN FALSE THEN 'false' END))")
    );
    assert_eq!(sql("true != false"), "(TRUE <> FALSE)");
    // Timestamps: text is parsed, numbers are epoch seconds.
    let (s, _, params) = expr("timestamp >= '2024-01-01'");
    assert!(
        s.starts_with("(e.\"timestamp\" >= (SELECT CASE WHEN pgi_d1.m IS NOT NULL THEN"),
        "{s}"
    );
    assert!(s.contains("THEN $3::text ELSE 'UTC' END"), "{s}");
    assert!(
        s.ends_with("FROM (SELECT $2::text AS t) pgi_x2) pgi_d1))"),
        "{s}"
    );
    assert_eq!(params, vec![t("2024-01-01"), t("UTC")]);
    assert_eq!(
        sql("timestamp > 1700000000"),
        "(extract(epoch FROM e.\"timestamp\") > $2::int8::numeric)"
    );
    assert_eq!(
        sql("toDate(timestamp) = toDate(now())"),
        "(((e.\"timestamp\" AT TIME ZONE $2::text)::date) = ((now() AT TIME ZONE $2::text)::date))"
    );
}

#[test]
fn null_comparisons_follow_hogql() {
    assert_eq!(sql("properties.x = null"), format!("({P2} IS NULL)"));
    assert_eq!(sql("null == properties.x"), format!("({P2} IS NULL)"));
    assert_eq!(sql("properties.x != NULL"), format!("({P2} IS NOT NULL)"));
    assert_eq!(sql("null = null"), "(NULL::text IS NULL)");
    assert_eq!(
        sql("properties.x > null"),
        format!("(CASE WHEN {P2} IS NULL THEN NULL::boolean END)")
    );
    assert_eq!(sql("properties.x is null"), format!("({P2} IS NULL)"));
    assert_eq!(
        sql("properties.x IS NOT NULL"),
        format!("({P2} IS NOT NULL)")
    );
}

#[test]
fn logic_and_precedence() {
    let a = format!("({P2} = $3::text)");
    let b = "((e.properties ->> $4::text) = $5::text)";
    let c = "((e.properties ->> $6::text) = $7::text)";
    assert_eq!(
        sql("properties.a = '1' and properties.b = '2' or not properties.c = '3'"),
        format!("(({a} AND {b}) OR (NOT {c}))")
    );
    assert_eq!(
        sql("properties.a = '1' AND (properties.b = '2' OR properties.c = '3')"),
        format!("({a} AND ({b} OR {c}))")
    );
    assert_eq!(
        sql("and(1, 0)"),
        "(($2::int8::numeric <> 0) AND ($3::int8::numeric <> 0))"
    );
    assert_eq!(
        sql("or(true, false, null)"),
        "(TRUE OR FALSE OR NULL::boolean)"
    );
    let flag = format!("(CASE {P2} WHEN 'true' THEN TRUE WHEN 'false' THEN FALSE END)");
    assert_eq!(sql("not(properties.flag)"), format!("(NOT {flag})"));
    assert_eq!(
        sql("not not properties.flag"),
        format!("(NOT (NOT {flag}))")
    );
    assert_eq!(
        ok(Mode::Bool, "properties.flag").0,
        format!("({flag}) IS TRUE")
    );
}

#[test]
fn arithmetic_is_safe() {
    assert_eq!(
        sql("1 + 2 * 3"),
        "($2::int8::numeric + ($3::int8::numeric * $4::int8::numeric))"
    );
    assert_eq!(
        sql("(1 + 2) * 3 - 4"),
        "((($2::int8::numeric + $3::int8::numeric) * $4::int8::numeric) - $5::int8::numeric)"
    );
    assert_eq!(
        sql("properties.a / properties.b"),
        format!("({} / NULLIF({}, 0))", num(P2), num(P3))
    );
    assert_eq!(
        sql("properties.a % 2"),
        format!("({} % NULLIF($3::int8::numeric, 0))", num(P2))
    );
    assert_eq!(sql("-properties.a"), format!("(- {})", num(P2)));
    assert_eq!(sql("- -1"), "$2::int8::numeric");
    assert_eq!(expr("- -1").2, vec![Param::Int(1)]);
    assert_eq!(
        sql("true + 1"),
        "((TRUE::int::numeric) + $2::int8::numeric)"
    );
    assert_eq!(
        ok(Mode::Number, "properties.a").0,
        format!("({}::float8)", num(P2))
    );
    assert_eq!(
        ok(Mode::Text, "10 / 4").0,
        "(trim_scale(($2::int8::numeric / NULLIF($3::int8::numeric, 0)))::text)"
    );
    // Beyond float8's range: NULL instead of an error.
    let x = "($2::float8::numeric * $2::float8::numeric)";
    assert_eq!(
        ok(Mode::Number, "1e300 * 1e300").0,
        format!("(CASE WHEN abs({x}) < 1e300 THEN round({x}, 300)::float8 END)")
    );
    assert_eq!(
        ok(Mode::Number, "timestamp").0,
        "(extract(epoch FROM e.\"timestamp\")::float8)"
    );
    assert_eq!(ok(Mode::Number, "null").0, "(NULL::numeric::float8)");
    assert!(err("timestamp + 1").contains("arithmetic on a timestamp or date"));
    assert!(err("-toDate(timestamp)").contains("arithmetic on a timestamp or date"));
}

/// A balanced product of `n` copies of `leaf`.
fn product(leaf: &str, n: usize) -> String {
    if n == 1 {
        return leaf.to_string();
    }
    format!("({}*{})", product(leaf, n / 2), product(leaf, n - n / 2))
}

#[test]
fn magnitudes_are_bounded_statically() {
    // 128 × 1e300 would overflow numeric: operands are tamed once the bound passes 1e20000.
    let (s, _) = ok(Mode::Expr, &product("1e300", 128));
    assert!(s.contains("<= 1e100 THEN round("), "{s}");
    // Small products are left alone.
    let (s, _) = ok(Mode::Expr, &product("properties.x", 16));
    assert!(!s.contains("1e100"), "{s}");
    // Long operands are bound once through a subquery, keeping the SQL linear.
    let src = product("properties.x", 40);
    let (s, _) = ok(Mode::Expr, &src);
    assert!(s.len() < 40 * src.len(), "{} vs {}", s.len(), src.len());
    let nested = (0..30).fold("properties.ts".to_string(), |acc, _| {
        format!("toFloat(toDateTime({acc}))")
    });
    let (s, _) = ok(Mode::Number, &nested);
    assert!(s.contains("AS v) pgi_h"), "{s}");
    assert!(s.len() < 200 * nested.len(), "{}", s.len());
}

#[test]
fn like_in_and_is() {
    assert_eq!(sql("event like '%view'"), "(e.event LIKE $2::text)");
    assert_eq!(
        sql("event NOT ILIKE '50\\%'"),
        "(e.event NOT ILIKE $2::text)"
    );
    assert_eq!(expr("event NOT ILIKE '50\\%'").2, vec![t("50\\%")]);
    // A computed pattern has no escape character, so it can never raise.
    assert_eq!(
        sql("event not like concat('%', properties.x)"),
        "(e.event NOT LIKE concat($2::text, (e.properties ->> $3::text)) ESCAPE '')"
    );
    assert_eq!(
        sql("properties.a in (1, -2.5, null)"),
        format!("({} IN ($3::int8::numeric, $4::float8::numeric))", num(P2))
    );
    assert_eq!(
        expr("properties.a in (1, -2.5, null)").2,
        vec![t("a"), Param::Int(1), Param::Float(-2.5)]
    );
    assert_eq!(
        sql("properties.a not in ('x', 1)"),
        format!("({P2} NOT IN ($3::text, (trim_scale($4::int8::numeric)::text)))")
    );
    assert_eq!(
        sql("properties.a in (null)"),
        format!("({P2} IS NULL AND FALSE)")
    );
    assert_eq!(
        sql("properties.a not in (null)"),
        format!("({P2} IS NOT NULL)")
    );
    assert_eq!(sql("null in (1)"), "NULL::boolean");
    assert_eq!(
        sql("event in ('a', 'b')"),
        "(e.event IN ($2::text, $3::text))"
    );
}

// ----- functions ---------------------------------------------------------------------------

#[test]
fn function_translations() {
    let int4 = |p: &str| {
        format!(
            "((CASE WHEN {p} < -1000000000 THEN -1000000000 WHEN {p} > 1000000000 \
             THEN 1000000000 ELSE trunc({p}) END)::int4)"
        )
    };
    let flag = format!("(CASE {P2} WHEN 'true' THEN TRUE WHEN 'false' THEN FALSE END)");
    // compile_expr returns dates as their project-local midnight.
    let ts = |d: &str| format!("({d}::timestamp AT TIME ZONE $2::text)");
    let cases: Vec<(&str, String)> = vec![
        ("toString(1.5)", "(trim_scale($2::float8::numeric)::text)".into()),
        ("toString(properties.a)", P2.into()),
        ("toInt(properties.a)", format!("trunc({})", num(P2))),
        ("toInt64('7')", format!("trunc({})", num("$2::text"))),
        ("toFloat(properties.a)", num(P2)),
        ("toFloat64(timestamp)", "extract(epoch FROM e.\"timestamp\")".into()),
        ("lower(event)", "lower(e.event)".into()),
        ("UPPER(event)", "upper(e.event)".into()),
        ("trim(event)", "btrim(e.event)".into()),
        ("length(event)", "(char_length(e.event)::numeric)".into()),
        (
            "concat(event, 1, null)",
            "concat(e.event, (trim_scale($2::int8::numeric)::text), NULL::text)".into(),
        ),
        ("coalesce(properties.a, 0)", format!("coalesce({}, $3::int8::numeric)", num(P2))),
        ("ifNull(properties.a, 'x')", format!("coalesce({P2}, $3::text)")),
        ("coalesce(null, null)", "coalesce(NULL::text, NULL::text)".into()),
        (
            "if(properties.flag, 'y', 'n')",
            format!("(CASE WHEN {flag} THEN $3::text ELSE $4::text END)"),
        ),
        (
            "multiIf(event = 'a', 1, event = 'b', 2, 3)",
            "(CASE WHEN (e.event = $2::text) THEN $4::int8::numeric WHEN (e.event = $3::text) \
             THEN $5::int8::numeric ELSE $6::int8::numeric END)"
                .into(),
        ),
        (
            "substring(event, 2)",
            format!("substr(e.event, {})", int4("$2::int8::numeric")),
        ),
        (
            "substring(event, 2, 3)",
            format!(
                "substr(e.event, {}, greatest({}, 0))",
                int4("$2::int8::numeric"),
                int4("$3::int8::numeric")
            ),
        ),
        ("replaceAll(event, 'a', 'b')", "replace(e.event, $2::text, $3::text)".into()),
        ("round(properties.a)", format!("round({}, $3::int8::int4)", num(P2))),
        ("round(properties.a, -2)", format!("round({}, $3::int8::int4)", num(P2))),
        ("floor(1.5)", "floor($2::float8::numeric)".into()),
        ("ceil(1.5)", "ceil($2::float8::numeric)".into()),
        ("abs(-1)", "abs($2::int8::numeric)".into()),
        ("least(1, properties.a)", format!("least($2::int8::numeric, {})", num(P3))),
        ("greatest(event, 'b')", "greatest(e.event COLLATE \"C\", $2::text)".into()),
        ("toDate(timestamp)", ts("((e.\"timestamp\" AT TIME ZONE $2::text)::date)")),
        ("toStartOfDay(timestamp)", "date_trunc('day', e.\"timestamp\", $2::text)".into()),
        (
            "toStartOfWeek(timestamp)",
            ts("(date_trunc('week', (((e.\"timestamp\" AT TIME ZONE $2::text)::date) + 1)::timestamp)::date - 1)"
                ),
        ),
        (
            "toStartOfWeek(timestamp, 1)",
            ts("(date_trunc('week', ((e.\"timestamp\" AT TIME ZONE $2::text)::date)::timestamp)::date)"
                ),
        ),
        (
            "toStartOfMonth(timestamp)",
            ts("(date_trunc('month', ((e.\"timestamp\" AT TIME ZONE $2::text)::date)::timestamp)::date)"
                ),
        ),
        ("now()", "now()".into()),
        ("today()", ts("((now() AT TIME ZONE $2::text)::date)")),
        (
            "toDateTime(1700000000)",
            "(CASE WHEN abs($2::int8::numeric) < 1e11 THEN to_timestamp(round($2::int8::numeric, 6)::float8) END)"
                .into(),
        ),
        (
            "dateDiff('day', timestamp, now())",
            "(((now() AT TIME ZONE $2::text)::date - (e.\"timestamp\" AT TIME ZONE $2::text)::date)::numeric)"
                .into(),
        ),
        (
            "dateDiff('Hours', timestamp, now())",
            "div(extract(epoch FROM date_trunc('hour', now(), $2::text)) - extract(epoch FROM \
             date_trunc('hour', e.\"timestamp\", $2::text)), 3600)"
                .into(),
        ),
        (
            "dateDiff('week', timestamp, now())",
            "(((date_trunc('week', now() AT TIME ZONE $2::text)::date - date_trunc('week', \
             e.\"timestamp\" AT TIME ZONE $2::text)::date) / 7)::numeric)"
                .into(),
        ),
        (
            "dateDiff('month', timestamp, now())",
            "((extract(year FROM (now() AT TIME ZONE $2::text)) * 12 + extract(month FROM \
             (now() AT TIME ZONE $2::text))) - (extract(year FROM (e.\"timestamp\" AT TIME ZONE \
             $2::text)) * 12 + extract(month FROM (e.\"timestamp\" AT TIME ZONE $2::text))))"
                .into(),
        ),
        (
            "dateDiff('year', timestamp, now())",
            "(extract(year FROM (now() AT TIME ZONE $2::text)) - extract(year FROM \
             (e.\"timestamp\" AT TIME ZONE $2::text)))"
                .into(),
        ),
        (
            "domain(properties.url)",
            format!("regexp_replace({P2}, '{DOMAIN_RE}', '\\1')"),
        ),
        ("path(properties.url)", format!("regexp_replace({P2}, '{PATH_RE}', '\\1')")),
        ("position(event, 'v')", "(strpos(e.event, $2::text)::numeric)".into()),
        ("startsWith(event, '$')", "starts_with(e.event, $2::text)".into()),
        ("endsWith(event, 'w')", "starts_with(reverse(e.event), reverse($2::text))".into()),
        ("match(event, '^\\$page')", "(e.event ~ $2::text)".into()),
        ("empty(properties.a)", format!("({P2} = '')")),
        ("notEmpty(properties.a)", format!("({P2} <> '')")),
    ];
    for (src, want) in cases {
        assert_eq!(sql(src), want, "{src}");
    }
    assert_eq!(expr("round(properties.a)").2, vec![t("a"), Param::Int(0)]);
    assert_eq!(
        expr("round(properties.a, -2)").2,
        vec![t("a"), Param::Int(-2)]
    );
    assert_eq!(expr("match(event, '^\\$page')").2, vec![t("^\\$page")]);
    let (s, _) = ok(Mode::Expr, "toDateTime(properties.ts)");
    assert!(
        s.starts_with("(SELECT CASE WHEN pgi_d1.m IS NOT NULL"),
        "{s}"
    );
}

#[test]
fn every_whitelisted_function_compiles() {
    let calls = [
        "toString(1)",
        "toInt(1)",
        "toInt64(1)",
        "toFloat(1)",
        "toFloat64(1)",
        "lower('A')",
        "upper('a')",
        "length('a')",
        "concat('a')",
        "coalesce(1)",
        "ifNull(1, 2)",
        "if(true, 1, 2)",
        "multiIf(true, 1, 2)",
        "trim(' a ')",
        "substring('a', 1)",
        "replaceAll('a', 'a', 'b')",
        "round(1)",
        "floor(1)",
        "ceil(1)",
        "abs(1)",
        "least(1)",
        "greatest(1)",
        "toDate('2024-01-01')",
        "toDateTime('2024-01-01')",
        "toStartOfDay(timestamp)",
        "toStartOfWeek(timestamp)",
        "toStartOfMonth(timestamp)",
        "now()",
        "today()",
        "dateDiff('day', timestamp, now())",
        "domain('https://a.b/c')",
        "path('https://a.b/c')",
        "position('ab', 'b')",
        "startsWith('ab', 'a')",
        "endsWith('ab', 'b')",
        "match('ab', 'a')",
        "empty('')",
        "notEmpty('')",
        "and(true, true)",
        "or(true, false)",
        "not(true)",
    ];
    for (name, ..) in FUNCS {
        assert!(
            calls
                .iter()
                .any(|c| c.to_ascii_lowercase().starts_with(&format!("{name}("))),
            "{name} is not exercised"
        );
    }
    for c in calls {
        for mode in [Mode::Expr, Mode::Text, Mode::Number] {
            run_tz(mode, c, "UTC").unwrap_or_else(|e| panic!("{c} ({mode:?}): {e:?}"));
        }
    }
}

#[test]
fn output_conversions() {
    assert_eq!(
        ok(Mode::Text, "timestamp").0,
        "to_char(e.\"timestamp\" AT TIME ZONE $2::text, 'YYYY-MM-DD HH24:MI:SS')"
    );
    assert_eq!(
        ok(Mode::Text, "today()").0,
        "to_char(((now() AT TIME ZONE $2::text)::date)::timestamp, 'YYYY-MM-DD')"
    );
    assert_eq!(
        ok(Mode::Text, "event = 'a'").0,
        "(CASE (e.event = $2::text) WHEN TRUE THEN 'true' WHEN FALSE THEN 'false' END)"
    );
    assert_eq!(ok(Mode::Text, "null").0, "NULL::text");
    assert_eq!(ok(Mode::Bool, "1").0, "(($2::int8::numeric <> 0)) IS TRUE");
    assert_eq!(ok(Mode::Bool, "null").0, "(NULL::boolean) IS TRUE");
    assert_eq!(ok(Mode::Number, "true").0, "((TRUE::int::numeric)::float8)");
    assert_eq!(
        ok(Mode::Number, "toDate(timestamp)").0,
        "(((((e.\"timestamp\" AT TIME ZONE $2::text)::date) - DATE '1970-01-01')::numeric)::float8)"
    );
    assert_eq!(
        expr("today()"),
        (
            "(((now() AT TIME ZONE $2::text)::date)::timestamp AT TIME ZONE $2::text)".into(),
            HogqlType::Timestamp,
            vec![t("UTC")]
        )
    );
    // The project timezone is a parameter.
    let (s, _, params) = run_tz(Mode::Expr, "toStartOfDay(timestamp)", "Europe/Berlin").unwrap();
    assert_eq!(s, "date_trunc('day', e.\"timestamp\", $2::text)");
    assert_eq!(params, vec![t("Europe/Berlin")]);
}

// ----- rejections --------------------------------------------------------------------------

#[test]
fn every_rejection_class() {
    let cases: Vec<(String, &str)> = vec![
        // Lexical.
        ("".into(), "empty expression"),
        ("   ".into(), "empty expression"),
        ("'abc".into(), "unterminated string literal"),
        ("properties.\"abc".into(), "unterminated quoted identifier"),
        (
            "event = 'a' -- comment".into(),
            "comments are not supported",
        ),
        ("/* c */ 1".into(), "comments are not supported"),
        ("event || 'x'".into(), "unexpected character '|'"),
        ("event ? 1 : 2".into(), "unexpected character '?'"),
        ("properties.a::int".into(), "unexpected character ':'"),
        ("événement".into(), "unexpected character 'é'"),
        (
            "99999999999999999999".into(),
            "integer 99999999999999999999 is out of range",
        ),
        ("1e999".into(), "number 1e999 is out of range"),
        ("1abc".into(), "invalid number '1a'"),
        // Syntax.
        ("event =".into(), "unexpected end of the expression"),
        ("event event".into(), "unexpected 'event'"),
        (")".into(), "unexpected ')'"),
        ("+1".into(), "unexpected '+'"),
        ("and".into(), "unexpected keyword 'and'"),
        ("(1".into(), "expected ')' at the end"),
        ("(1, 2)".into(), "tuples are not supported"),
        ("event = 'a' = 'b'".into(), "chained comparisons"),
        ("1 < 2 like 'x'".into(), "chained comparisons"),
        ("event between 'a' and 'b'".into(), "unexpected 'between'"),
        (
            "event in (distinct_id)".into(),
            "IN lists may only contain literals",
        ),
        ("event in ()".into(), "IN lists may only contain literals"),
        ("event in 'a'".into(), "IN needs a parenthesised list"),
        ("event is 'a'".into(), "only 'IS NULL' and 'IS NOT NULL'"),
        // Fields.
        ("foo".into(), "unknown field 'foo'"),
        ("properties".into(), "'properties' needs a property key"),
        (
            "person.properties".into(),
            "'person.properties' needs a property key",
        ),
        ("person.email".into(), "only person.properties.<key>"),
        ("group_1.name".into(), "only group_1.properties.<key>"),
        ("group_5.properties.x".into(), "unknown field 'group_5'"),
        ("$group_5".into(), "unknown field '$group_5'"),
        ("event.x".into(), "'event' has no fields"),
        ("properties[1]".into(), "only ['string'] keys"),
        ("properties.1".into(), "numeric field access"),
        ("properties.".into(), "expected a name after '.'"),
        // Functions.
        (
            "sum(properties.x)".into(),
            "aggregate function 'sum' is not supported here",
        ),
        ("count()".into(), "aggregate function 'count'"),
        (
            "splitByChar(',', event)".into(),
            "unknown function 'splitByChar'",
        ),
        ("arrayJoin(x)".into(), "unknown function 'arrayJoin'"),
        ("event()".into(), "unknown function 'event'"),
        (
            "toString()".into(),
            "function 'toString' takes 1 argument(s), got 0",
        ),
        (
            "if(1, 2)".into(),
            "function 'if' takes 3 argument(s), got 2",
        ),
        ("concat()".into(), "takes at least 1 argument(s)"),
        ("substring(event)".into(), "takes 2 to 3 argument(s)"),
        ("now(1)".into(), "function 'now' takes 0 argument(s)"),
        (
            "multiIf(true, 1, false, 2)".into(),
            "multiIf needs an odd number",
        ),
        (
            "round(1, properties.x)".into(),
            "round's precision must be an integer literal from -30 to 30",
        ),
        (
            "round(1, 31)".into(),
            "round's precision must be an integer literal",
        ),
        (
            "toStartOfWeek(timestamp, 'x')".into(),
            "toStartOfWeek's mode must be an integer literal",
        ),
        (
            "match(event, properties.re)".into(),
            "match's pattern must be a string literal",
        ),
        (
            "event like 'abc\\\\'".into(),
            "must not end with a lone backslash",
        ),
        (
            "dateDiff('fortnight', timestamp, now())".into(),
            "dateDiff unit 'fortnight' is not supported",
        ),
        (
            "dateDiff(event, timestamp, now())".into(),
            "dateDiff's unit must be a string literal",
        ),
        // Types.
        (
            "timestamp = true".into(),
            "cannot compare a timestamp with a boolean",
        ),
        (
            "toDate(timestamp) > 3".into(),
            "cannot compare a date with a number",
        ),
        (
            "timestamp in (true)".into(),
            "cannot compare a timestamp with a boolean",
        ),
        ("timestamp + 1".into(), "arithmetic on a timestamp or date"),
        ("toDate(5)".into(), "a number or boolean is not a date"),
        ("toDateTime(true)".into(), "a boolean is not a timestamp"),
        ("not timestamp".into(), "not a boolean condition"),
        // Limits.
        (
            "'".to_string() + &"a".repeat(3999) + "'",
            "longer than 4000 characters",
        ),
        (
            "(".repeat(65) + "1" + &")".repeat(65),
            "nested deeper than 64",
        ),
        ("1".to_string() + &"+1".repeat(64), "nested deeper than 64"),
        ("not ".repeat(65) + "true", "nested deeper than 64"),
        ("- ".repeat(65) + "1", "nested deeper than 64"),
        (
            "lower(".repeat(65) + "event" + &")".repeat(65),
            "nested deeper than 64",
        ),
    ];
    for (src, want) in cases {
        let detail = err(&src);
        assert!(detail.contains(want), "{src}: {detail}");
    }
    // Bool context only.
    assert!(
        err_in(Mode::Bool, "timestamp")
            .detail
            .contains("not a boolean condition")
    );
    assert!(
        err_in(Mode::Bool, "today()")
            .detail
            .contains("not a boolean condition")
    );
    // Right at the limits is fine.
    ok(Mode::Expr, &("'".to_string() + &"a".repeat(3998) + "'"));
    ok(Mode::Expr, &("(".repeat(64) + "1" + &")".repeat(64)));
    ok(Mode::Expr, &("1".to_string() + &"+1".repeat(63)));
    // Error messages quote at most 64 characters of user text.
    assert!(err(&format!("{}()", "f".repeat(500))).len() < 150);
}

#[test]
fn errors_leave_the_builder_unchanged() {
    with_cx(None, "UTC", |cx, b| {
        let e = compile_bool("properties.a = 'x' and timestamp = true", "x", b, cx);
        assert!(e.is_err());
        assert_eq!(b.params.len(), 1);
        compile_bool("properties.a = 'x'", "x", b, cx).unwrap();
        assert_eq!(b.params.len(), 3);
    });
}

// ----- property tests ----------------------------------------------------------------------

/// A marker that only user-supplied text contains.
const MARK: char = '\u{a7}'; // the section sign

fn marked() -> impl Strategy<Value = String> {
    "[a-z'\"`;$%_\\\\ .*()\\[\\]-]{0,10}".prop_map(|s| format!("{MARK}{s}"))
}

/// A single-quoted HogQL literal of a marked string.
fn string_lit() -> impl Strategy<Value = String> {
    marked().prop_map(|s| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''")))
}

/// A property key in one of the accepted spellings; plain ones carry the `zq` marker.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "zq[a-z0-9_$]{0,6}".prop_map(|k| format!("properties.{k}")),
        "zq[a-z0-9_$]{0,6}".prop_map(|k| format!("person.properties.${k}")),
        marked().prop_map(|k| format!("properties.\"{}\"", k.replace('"', "\"\""))),
        string_lit().prop_map(|k| format!("properties[{k}]")),
        (0u8..5, string_lit()).prop_map(|(i, k)| format!("group_{i}.properties[{k}]")),
    ]
}

/// Numbers that never occur in the fixed SQL text.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("7777777".to_string()),
        Just("0.4242424".to_string()),
        Just("-7777777".to_string()),
        Just("4.242424e-7".to_string()),
    ]
}

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        key(),
        string_lit(),
        number(),
        prop::sample::select(vec![
            "event",
            "distinct_id",
            "timestamp",
            "person_id",
            "$session_id",
            "uuid",
            "elements_chain",
            "$group_2",
            "true",
            "false",
            "null",
            "now()",
            "today()",
        ])
        .prop_map(String::from),
    ]
}

fn gen_expr() -> impl Strategy<Value = String> {
    leaf().prop_recursive(5, 48, 4, |inner| {
        let unary = [
            "toString",
            "toInt",
            "toFloat",
            "lower",
            "upper",
            "length",
            "trim",
            "floor",
            "ceil",
            "abs",
            "toDate",
            "toDateTime",
            "toStartOfDay",
            "toStartOfWeek",
            "toStartOfMonth",
            "domain",
            "path",
            "empty",
            "notEmpty",
            "not",
            "round",
        ];
        let binary = [
            "concat",
            "coalesce",
            "ifNull",
            "least",
            "greatest",
            "position",
            "startsWith",
            "endsWith",
            "substring",
            "and",
            "or",
        ];
        let ops = [
            "+",
            "-",
            "*",
            "/",
            "%",
            "=",
            "==",
            "!=",
            "<>",
            "<",
            "<=",
            ">",
            ">=",
            "and",
            "or",
            "like",
            "not ilike",
        ];
        prop_oneof![
            (prop::sample::select(unary.to_vec()), inner.clone())
                .prop_map(|(f, a)| format!("{f}({a})")),
            (
                prop::sample::select(binary.to_vec()),
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(f, a, b)| format!("{f}({a}, {b})")),
            (
                inner.clone(),
                prop::sample::select(ops.to_vec()),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(c, a, b)| format!("if({c}, {a}, {b})")),
            (
                inner.clone(),
                inner.clone(),
                inner.clone(),
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(c1, a, c2, b, e)| format!("multiIf({c1}, {a}, {c2}, {b}, {e})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("dateDiff('week', {a}, {b})")),
            (inner.clone(), string_lit()).prop_map(|(a, p)| format!("match({a}, {p})")),
            (
                inner.clone(),
                prop::collection::vec(prop_oneof![string_lit(), number()], 1..4)
            )
                .prop_map(|(a, l)| format!("{a} not in ({})", l.join(", "))),
            inner.clone().prop_map(|a| format!("-{a}")),
            inner.clone().prop_map(|a| format!("({a}) is not null")),
            inner.prop_map(|a| format!("round({a}, -2)")),
        ]
    })
}

/// A random soup of grammar tokens and marked user tokens.
fn token_soup() -> impl Strategy<Value = String> {
    let fixed = prop::sample::select(vec![
        "properties",
        ".",
        "[",
        "]",
        "(",
        ")",
        ",",
        "person",
        "group_1",
        "event",
        "timestamp",
        "$session_id",
        "and",
        "or",
        "not",
        "like",
        "ilike",
        "in",
        "is",
        "null",
        "true",
        "false",
        "=",
        "==",
        "!=",
        "<",
        ">=",
        "+",
        "-",
        "*",
        "/",
        "%",
        "toString",
        "if",
        "multiIf",
        "concat",
        "dateDiff",
        "'day'",
        "round",
        "match",
        "substring",
        "coalesce",
        "toDateTime",
        "now",
        "domain",
        "sum",
        "'",
        "\"",
        "`",
        "\\",
    ])
    .prop_map(String::from);
    let tok = prop_oneof![
        4 => fixed,
        1 => string_lit(),
        1 => marked().prop_map(|s| format!("\"{}\"", s.replace('"', "\"\""))),
        1 => "zq[a-z_$]{0,5}",
        1 => number(),
    ];
    (prop::collection::vec(tok, 0..24), any::<bool>())
        .prop_map(|(toks, spaced)| toks.join(if spaced { " " } else { "" }))
}

/// No user text in the SQL, every bound parameter referenced, no dangling placeholder.
fn check(src: &str) {
    for mode in MODES {
        let Ok((sql, _, params)) = run_tz(mode, src, "UTC") else {
            continue;
        };
        for leak in [MARK.to_string().as_str(), "zq", "7777777", "4242424"] {
            assert!(
                !sql.contains(leak),
                "{leak:?} leaked from {src:?} into {sql}"
            );
        }
        for i in 0..params.len() {
            assert!(
                sql.contains(&format!("${}::", i + 2)),
                "unreferenced ${} in {sql}",
                i + 2
            );
        }
        assert!(
            !sql.contains(&format!("${}::", params.len() + 2)),
            "dangling in {sql}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,120}") {
        for mode in MODES {
            let _ = run_tz(mode, &s, "UTC");
        }
    }

    #[test]
    fn token_soups_never_panic_or_leak(s in token_soup()) {
        check(&s);
    }

    #[test]
    fn generated_expressions_never_leak(s in gen_expr()) {
        check(&s);
    }
}

#[test]
fn generated_expressions_mostly_compile() {
    // Guards the generator: the leak check above must see real SQL, not only errors.
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = gen_expr();
    let mut compiled = 0;
    for _ in 0..200 {
        let src = strategy.new_tree(&mut runner).unwrap().current();
        if run_tz(Mode::Text, &src, "UTC").is_ok() {
            compiled += 1;
        }
    }
    assert!(
        compiled > 60,
        "only {compiled}/200 generated expressions compiled"
    );
}
