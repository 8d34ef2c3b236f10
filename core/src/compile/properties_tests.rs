use super::*;
use proptest::prelude::*;
use serde_json::json;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 10, 12, 0, 0).unwrap()
}

fn micros(y: i32, m: u32, d: u32, h: u32) -> i64 {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
        .unwrap()
        .timestamp_micros()
}

fn cohorts(id: i64) -> Option<(bool, Value)> {
    let email =
        json!({"key": "email", "value": "@x.com", "operator": "icontains", "type": "person"});
    match id {
        1 => Some((true, json!({}))),
        2 => Some((
            false,
            json!({"properties": {"type": "OR", "values": [{"type": "AND", "values": [email]}]}}),
        )),
        3 => Some((
            false,
            json!({"properties": [{"type": "cohort", "key": "id", "value": 3}]}),
        )),
        4 => Some((
            false,
            json!({"properties": [{"type": "event", "key": "a", "value": "b"}]}),
        )),
        5 => Some((
            false,
            json!({"groups": [{"properties": [{"key": "plan", "value": "pro", "type": "person"}]},
                              {"properties": [{"type": "cohort", "key": "id", "value": 1}]}]}),
        )),
        6 => Some((
            false,
            json!({"properties": [{"type": "cohort", "value": 2, "negation": true}]}),
        )),
        7 => Some((false, json!({"groups": [{"action_id": 3, "days": 7}]}))),
        8 => Some((
            false,
            json!({"properties": [{"type": "hogql", "key": "person.properties.plan = 'pro'"}]}),
        )),
        _ => None,
    }
}

fn actions(id: i64) -> Option<Value> {
    match id {
        10 => Some(json!([
            {"event": "$autocapture", "tag_name": "button", "text": "Pay $10"},
            {"event": "$pageview", "url": "/movie", "url_matching": "contains"},
        ])),
        11 => Some(json!([{"event": "sign up", "properties": [{"key": "key", "value": "val"}]}])),
        12 => Some(json!([])),
        13 => Some(json!([{"event": "$autocapture", "href": "/x", "href_matching": "fuzzy"}])),
        14 => Some(
            json!([{"url": "^https://a", "url_matching": "regex"}, {"url": "https://b", "url_matching": "exact"}]),
        ),
        _ => None,
    }
}

fn with_cx<T>(
    person_props: Option<&str>,
    f: impl FnOnce(&FilterContext, &mut SqlBuilder) -> T,
) -> T {
    with_cx_in(&ProjectTime::utc(), &[], person_props, f)
}

/// [`with_cx`] in a given project timezone and with materialised properties.
fn with_cx_in<T>(
    pt: &ProjectTime,
    materialized: &[(String, String)],
    person_props: Option<&str>,
    f: impl FnOnce(&FilterContext, &mut SqlBuilder) -> T,
) -> T {
    let taf = json!([{"key": "email", "value": "@posthog.com", "operator": "not_icontains", "type": "person"}]);
    let cx = FilterContext {
        event_alias: "e",
        project_param: "$1::int8".into(),
        person_props,
        pt,
        cohort: &cohorts,
        action: &actions,
        test_account_filters: &taf,
        materialized,
    };
    let mut b = SqlBuilder::new();
    assert_eq!(b.int(777), "$1::int8");
    f(&cx, &mut b)
}

#[test]
fn materialized_event_properties_read_their_column() {
    let mat = vec![("$browser".to_string(), "mat_$browser".to_string())];
    with_cx_in(&ProjectTime::utc(), &mat, None, |cx, b| {
        let sql = compile_properties_at(
            &json!([{"key": "$browser", "value": ["Chrome", "Safari"], "type": "event"},
                {"key": "$os", "value": "Mac", "type": "event"},
                {"key": "$browser", "value": "x", "type": "person"},
                {"key": "$browser", "operator": "is_set", "type": "event"}]),
            b,
            cx,
            now(),
        )
        .unwrap();
        assert_eq!(
            sql,
            "((e.\"mat_$browser\" = ANY($2::text[])) IS TRUE AND ((e.properties ->> $3::text) = $4::text) IS TRUE \
         AND (((SELECT pgi_p.properties FROM insights.persons pgi_p WHERE pgi_p.id = e.person_id) ->> $5::text) = $6::text) IS TRUE \
         AND (e.\"mat_$browser\" IS NOT NULL))"
        );
        let bd = breakdown_expr("event", "$browser", None, b, cx).unwrap();
        assert_eq!(bd, "e.\"mat_$browser\"");
    });
}

/// Compile and return (sql, params after the project id).
fn run(v: Value) -> Result<(String, Vec<Param>)> {
    with_cx(None, |cx, b| {
        let sql = compile_properties_at(&v, b, cx, now())?;
        Ok((sql, b.params[1..].to_vec()))
    })
}

fn ok(v: Value) -> (String, Vec<Param>) {
    run(v.clone()).unwrap_or_else(|e| panic!("{v}: {e:?}"))
}

fn err(v: Value) -> QueryError {
    run(v.clone()).expect_err(&format!("{v} should fail"))
}

fn t(s: &str) -> Param {
    Param::Text(s.to_string())
}

fn ta(v: &[&str]) -> Param {
    Param::TextArray(v.iter().map(|s| s.to_string()).collect())
}

const P: &str = "(e.properties ->> $2::text)";

fn num(t: &str) -> String {
    format!("(CASE WHEN length({t}) <= 1000 AND {t} ~ '{NUM_RE}' THEN ({t})::numeric END)")
}

fn f(key: &str, op: &str, value: Value) -> Value {
    json!([{"key": key, "operator": op, "value": value, "type": "event"}])
}

// ----- the numeric guard ------------------------------------------------------------------

/// `NUM_RE` is plain enough that the regex crate and Postgres' ARE engine agree on it.
#[test]
fn num_re_accepts_numeric_text_with_two_digit_exponents() {
    let re = regex::Regex::new(NUM_RE).unwrap();
    for ok in [
        "0", "42", "-7", "+7", "3.14", "-3.", "3.", ".5", "-.5", "+.5", "007", "1e5", "1E5",
        "1e+05", "1e-05", "2.5e-3", ".5e1", "-3.e2", "1e9", "1e99", "-1e99", "1e-99", "9.999e99",
    ] {
        assert!(re.is_match(ok), "{ok:?} should be accepted");
    }
    for bad in [
        "",
        " ",
        "1e100",
        "1e-100",
        "1e+100",
        "1e999",
        "-1e999",
        "1e",
        "1e+",
        "e5",
        ".",
        "-",
        "+",
        "-.",
        ".e5",
        "1.2.3",
        "1,5",
        " 1",
        "1 ",
        "0x10",
        "NaN",
        "Infinity",
        "-Infinity",
        "1e5x",
        "--1",
        "1_000",
    ] {
        assert!(!re.is_match(bad), "{bad:?} should be rejected");
    }
}

// ----- shapes ----------------------------------------------------------------------------

#[test]
fn empty_shapes_are_true() {
    for v in [
        json!(null),
        json!({}),
        json!([]),
        json!([{}]),
        json!({"type": "OR", "values": []}),
        json!(""),
        json!("[]"),
    ] {
        assert_eq!(ok(v), (TRUE_SQL.to_string(), vec![]));
    }
}

#[test]
fn nested_groups_and_or() {
    let v = json!({"type": "OR", "values": [
        {"type": "AND", "values": [
            {"key": "a", "value": "1", "type": "event"},
            {"key": "b", "value": "2", "type": "event"}]},
        {"type": "or", "values": [{"key": "c", "value": "3", "type": "event"}]}]});
    let (sql, params) = ok(v);
    assert_eq!(
        sql,
        "((((e.properties ->> $2::text) = $3::text) IS TRUE AND \
         ((e.properties ->> $4::text) = $5::text) IS TRUE) OR \
         ((e.properties ->> $6::text) = $7::text) IS TRUE)"
    );
    assert_eq!(params, vec![t("a"), t("1"), t("b"), t("2"), t("c"), t("3")]);
}

#[test]
fn list_is_and_and_json_string_is_decoded() {
    let (sql, _) = ok(json!(
        r#"[{"key":"a","value":"1"},{"key":"b","value":"2"}]"#
    ));
    assert_eq!(
        sql,
        "(((e.properties ->> $2::text) = $3::text) IS TRUE AND \
         ((e.properties ->> $4::text) = $5::text) IS TRUE)"
    );
}

#[test]
fn bad_group_type_is_an_error() {
    let e = err(json!({"type": "XOR", "values": []}));
    assert_eq!(
        (e.state.code(), e.attr.as_deref()),
        ("22023", Some("properties__type"))
    );
    let e = err(json!({"type": "AND", "values": {"a": 1}}));
    assert_eq!(
        (e.state.code(), e.attr.as_deref()),
        ("22P02", Some("properties__values"))
    );
    let e = err(json!([1]));
    assert_eq!(e.attr.as_deref(), Some("properties__0"));
    assert_eq!(err(json!(5)).state.code(), "22P02");
}

// ----- equality ----------------------------------------------------------------------------

#[test]
fn exact_defaults_and_scalars() {
    let (sql, params) = ok(json!([{"key": "$browser", "value": "Chrome"}]));
    assert_eq!(sql, format!("({P} = $3::text) IS TRUE"));
    assert_eq!(params, vec![t("$browser"), t("Chrome")]);
    // PostHog string forms of numbers and booleans; a one-item list is unwrapped.
    assert_eq!(ok(f("n", "exact", json!(5))).1, vec![t("n"), t("5")]);
    assert_eq!(ok(f("n", "exact", json!(5.5))).1, vec![t("n"), t("5.5")]);
    assert_eq!(
        ok(f("is_saved", "exact", json!([true]))),
        (
            format!("({P} = $3::text) IS TRUE"),
            vec![t("is_saved"), t("true")]
        )
    );
}

#[test]
fn exact_list_is_any() {
    let (sql, params) = ok(f("$browser", "exact", json!(["Chrome", "Safari"])));
    assert_eq!(sql, format!("({P} = ANY($3::text[])) IS TRUE"));
    assert_eq!(params, vec![t("$browser"), ta(&["Chrome", "Safari"])]);
}

#[test]
fn exact_empty_list_and_null() {
    assert_eq!(
        ok(f("a", "exact", json!([]))),
        (TRUE_SQL.to_string(), vec![])
    );
    assert_eq!(
        ok(f("a", "is_not", json!([]))),
        (TRUE_SQL.to_string(), vec![])
    );
    assert_eq!(ok(f("a", "exact", json!(null))).0, format!("({P} IS NULL)"));
    assert_eq!(
        ok(f("a", "is_not", json!(null))).0,
        format!("({P} IS NOT NULL)")
    );
    let e = err(json!([{"key": "a", "operator": "exact"}]));
    assert_eq!(
        (e.state.code(), e.attr.as_deref()),
        ("22023", Some("properties__0__value"))
    );
}

#[test]
fn is_not_matches_missing() {
    assert_eq!(
        ok(f("a", "is_not", json!("x"))).0,
        format!("({P} = $3::text) IS NOT TRUE")
    );
    let (sql, params) = ok(f(
        "a",
        "is_not",
        json!(["other_value", "yet_another_value"]),
    ));
    assert_eq!(sql, format!("({P} = ANY($3::text[])) IS NOT TRUE"));
    assert_eq!(params[1], ta(&["other_value", "yet_another_value"]));
}

#[test]
fn in_and_not_in_need_lists() {
    assert_eq!(
        ok(f("a", "in", json!(["x", "y"]))).0,
        format!("({P} = ANY($3::text[])) IS TRUE")
    );
    assert_eq!(
        ok(f("a", "not_in", json!(["x"]))).0,
        format!("({P} = $3::text) IS NOT TRUE")
    );
    let e = err(f("a", "in", json!("x")));
    assert_eq!(
        (e.state.code(), e.attr.as_deref()),
        ("22023", Some("properties__0__value"))
    );
}

#[test]
fn cleaned_path_exact_is_exact() {
    assert_eq!(
        ok(f("$pathname", "is_cleaned_path_exact", json!("/a"))).0,
        format!("({P} = $3::text) IS TRUE")
    );
}

// ----- text matching -----------------------------------------------------------------------

#[test]
fn icontains_family() {
    let (sql, params) = ok(f("email", "icontains", json!(".com")));
    assert_eq!(sql, format!("({P} ILIKE $3::text) IS TRUE"));
    assert_eq!(params[1], t("%.com%"));
    let (sql, params) = ok(f("email", "not_icontains", json!(["a_b", "c\\"])));
    assert_eq!(sql, format!("({P} ILIKE ANY($3::text[])) IS NOT TRUE"));
    assert_eq!(params[1], ta(&["%a_b%", "%c\\\\%"]));
}

#[test]
fn regex_family() {
    let (sql, params) = ok(f("url", "regex", json!("^https?://")));
    assert_eq!(sql, format!("({P} ~ $3::text) IS TRUE"));
    assert_eq!(params[1], t("^https?://"));
    assert_eq!(
        ok(f("url", "not_regex", json!(["a", "b"]))).0,
        format!("({P} ~ ANY($3::text[])) IS NOT TRUE")
    );
    assert_eq!(err(f("url", "regex", json!(null))).state.code(), "22023");
}

// ----- numbers -----------------------------------------------------------------------------

#[test]
fn numeric_comparisons_are_guarded() {
    let n = num(P);
    for (op, sym) in [
        ("gt", ">"),
        ("gte", ">="),
        ("lt", "<"),
        ("lte", "<="),
        ("min", ">="),
        ("max", "<="),
    ] {
        let (sql, params) = ok(f("prop", op, json!("3")));
        assert_eq!(
            sql,
            format!("({n} {sym} $3::float8::numeric) IS TRUE"),
            "{op}"
        );
        assert_eq!(params[1], Param::Float(3.0));
    }
    assert_eq!(ok(f("prop", "gt", json!([2.5]))).1[1], Param::Float(2.5));
}

#[test]
fn non_numeric_comparison_value_compares_text() {
    let (sql, params) = ok(f("d", "gt", json!("2024-01-01")));
    assert_eq!(sql, format!("({P} COLLATE \"C\" > $3::text) IS TRUE"));
    assert_eq!(params[1], t("2024-01-01"));
    assert_eq!(
        err(f("d", "gt", json!(["1", "2"]))).attr.as_deref(),
        Some("properties__0__value")
    );
}

#[test]
fn between_and_not_between() {
    let n = num(P);
    let (sql, params) = ok(f("prop", "between", json!([10, "20.5"])));
    assert_eq!(
        sql,
        format!("({n} >= $3::float8::numeric AND {n} <= $4::float8::numeric) IS TRUE")
    );
    assert_eq!(params[1..], [Param::Float(10.0), Param::Float(20.5)]);
    assert_eq!(
        ok(f("prop", "not_between", json!([1, 2]))).0,
        format!("({n} < $3::float8::numeric OR {n} > $4::float8::numeric) IS TRUE")
    );
    for (v, msg) in [
        (json!(5), "requires a two-element array [min, max]"),
        (json!([1, 2, 3]), "requires a two-element array [min, max]"),
        (json!(["a", 2]), "requires numeric values"),
        (
            json!([3, 2]),
            "requires min value to be less than or equal to max value",
        ),
    ] {
        let e = err(f("prop", "between", v));
        assert!(e.detail.contains(msg), "{}", e.detail);
        assert_eq!(
            (e.state.code(), e.attr.as_deref()),
            ("22023", Some("properties__0__value"))
        );
    }
}

// ----- set / dates / semver ----------------------------------------------------------------

#[test]
fn is_set_and_is_not_set() {
    assert_eq!(
        ok(f("a", "is_set", json!("is_set"))),
        (format!("({P} IS NOT NULL)"), vec![t("a")])
    );
    assert_eq!(
        ok(json!([{"key": "a", "operator": "is_not_set"}])).0,
        format!("({P} IS NULL)")
    );
}

#[test]
fn date_operators() {
    let (sql, params) = ok(f("d", "is_date_before", json!("-7d")));
    assert!(
        sql.starts_with("((SELECT CASE WHEN pgi_d.m IS NOT NULL"),
        "{sql}"
    );
    assert!(sql.contains(&format!("regexp_match(pgi_x.t, '{DATE_RE}')")));
    assert!(
        sql.contains(&format!(
            "FROM (SELECT {P} AS t) pgi_x) pgi_d) < $4::timestamptz) IS TRUE"
        )),
        "{sql}"
    );
    assert!(sql.contains("THEN $3::text ELSE 'UTC' END"));
    assert_eq!(
        params[1..],
        [t("UTC"), Param::Timestamp(micros(2024, 1, 3, 12))]
    );

    let (sql, params) = ok(f("d", "is_date_after", json!("2024-01-02T10:00:00Z")));
    assert!(sql.ends_with("> $4::timestamptz) IS TRUE"));
    assert_eq!(params[2], Param::Timestamp(micros(2024, 1, 2, 10)));

    // A bare date is the whole local day.
    let (sql, params) = ok(f("d", "is_date_exact", json!("2024-01-02")));
    assert!(
        sql.contains(">= $4::timestamptz AND") && sql.contains("< $5::timestamptz)"),
        "{sql}"
    );
    assert_eq!(
        params[2..],
        [
            Param::Timestamp(micros(2024, 1, 2, 0)),
            Param::Timestamp(micros(2024, 1, 3, 0))
        ]
    );

    let e = err(f("d", "is_date_before", json!("yesterday-ish")));
    assert_eq!(
        (e.state.code(), e.attr.as_deref()),
        ("22007", Some("properties__0__value"))
    );
    assert_eq!(
        err(f("d", "is_date_before", json!("all"))).state.code(),
        "22007"
    );
}

#[test]
fn date_exact_uses_project_timezone() {
    let pt = ProjectTime::new("US/Pacific", 0).unwrap();
    let b = with_cx_in(&pt, &[], None, |cx, b| {
        compile_properties_at(&f("d", "is_date_exact", json!("2024-01-02")), b, cx, now()).unwrap();
        b.clone()
    });
    assert_eq!(b.params[2], t("US/Pacific"));
    assert_eq!(
        b.params[3..],
        [
            Param::Timestamp(micros(2024, 1, 2, 8)),
            Param::Timestamp(micros(2024, 1, 3, 8))
        ]
    );
}

#[test]
fn semver_operators() {
    let v = "(SELECT CASE WHEN pgi_v.m IS NOT NULL THEN ARRAY[pgi_v.m[1]::int8, coalesce(pgi_v.m[2], '0')::int8, \
             coalesce(pgi_v.m[3], '0')::int8] END FROM (SELECT regexp_match((e.properties ->> $2::text), '";
    let (sql, params) = ok(f("$app_version", "semver_gte", json!("v1.2.3-beta")));
    assert!(sql.starts_with(&format!("({v}")), "{sql}");
    assert!(sql.ends_with(">= $3::int8[]) IS TRUE"));
    assert_eq!(params[1], Param::IntArray(vec![1, 2, 3]));
    let arrays = |op: &str, val: &str| ok(f("v", op, json!(val))).1[1..].to_vec();
    let ia = |x: [i64; 3]| Param::IntArray(x.to_vec());
    assert_eq!(
        arrays("semver_tilde", "1.2.3"),
        [ia([1, 2, 3]), ia([1, 3, 0])]
    );
    assert_eq!(
        arrays("semver_caret", "1.2.3"),
        [ia([1, 2, 3]), ia([2, 0, 0])]
    );
    assert_eq!(
        arrays("semver_caret", "0.2.3"),
        [ia([0, 2, 3]), ia([0, 3, 0])]
    );
    assert_eq!(
        arrays("semver_caret", "^0.0.3"),
        [ia([0, 0, 3]), ia([0, 0, 4])]
    );
    assert_eq!(
        arrays("semver_wildcard", "1.2.*"),
        [ia([1, 2, 0]), ia([1, 3, 0])]
    );
    assert_eq!(arrays("semver_eq", "2"), [ia([2, 0, 0])]);
    assert!(
        ok(f("v", "semver_neq", json!("1.0")))
            .0
            .ends_with(") IS NOT TRUE")
    );
    assert!(
        ok(f("v", "semver_wildcard", json!("*")))
            .0
            .ends_with("IS NOT NULL) IS TRUE")
    );
    assert_eq!(
        err(f("v", "semver_gt", json!("one.two"))).state.code(),
        "22023"
    );
}

// ----- types -------------------------------------------------------------------------------

#[test]
fn person_properties_with_and_without_join() {
    let (sql, _) = ok(json!([{"key": "email", "value": "a@b.c", "type": "person"}]));
    assert_eq!(
        sql,
        "(((SELECT pgi_p.properties FROM insights.persons pgi_p WHERE pgi_p.id = e.person_id) \
         ->> $2::text) = $3::text) IS TRUE"
    );
    let sql = with_cx(Some("p.properties"), |cx, b| {
        compile_properties_at(
            &json!([{"key": "email", "value": "x", "type": "person"}]),
            b,
            cx,
            now(),
        )
        .unwrap()
    });
    assert_eq!(sql, "((p.properties ->> $2::text) = $3::text) IS TRUE");
}

#[test]
fn group_properties() {
    let (sql, params) = ok(
        json!([{"key": "industry", "value": "finance", "type": "group", "group_type_index": 1}]),
    );
    assert_eq!(
        sql,
        "(((SELECT pgi_g.properties FROM insights.groups pgi_g WHERE pgi_g.project_id = $1::int8 \
         AND pgi_g.group_type_index = 1 AND pgi_g.group_key = e.group_1) ->> $2::text) = $3::text) IS TRUE"
    );
    assert_eq!(params, vec![t("industry"), t("finance")]);
    let e = err(json!([{"key": "industry", "value": "x", "type": "group"}]));
    assert_eq!(e.attr.as_deref(), Some("properties__0__group_type_index"));
    let e = err(json!([{"key": "industry", "value": "x", "type": "group", "group_type_index": 5}]));
    assert_eq!(e.state.code(), "22023");
}

#[test]
fn session_properties() {
    let (sql, params) = ok(json!([{"key": "$session_id", "value": "s1", "type": "session"}]));
    assert_eq!(
        (sql, params),
        (
            "(e.session_id = $2::text) IS TRUE".to_string(),
            vec![t("s1")]
        )
    );
    let (sql, params) =
        ok(json!([{"key": "$session_duration", "value": 60, "operator": "gt", "type": "session"}]));
    assert_eq!(
        sql,
        "((((SELECT extract(epoch FROM max(pgi_s.\"timestamp\") - min(pgi_s.\"timestamp\")) \
         FROM insights.events pgi_s WHERE pgi_s.project_id = $1::int8 AND pgi_s.person_id = e.person_id \
         AND pgi_s.session_id = e.session_id))::numeric) > $2::float8::numeric) IS TRUE"
    );
    assert_eq!(params, vec![Param::Float(60.0)]);
    let e = err(json!([{"key": "$channel_type", "value": "x", "type": "session"}]));
    assert_eq!(
        (e.state.code(), e.attr.as_deref()),
        ("22023", Some("properties__0__key"))
    );
    // A numeric session property needs numeric values.
    assert_eq!(err(json!([{"key": "$session_duration", "value": "long", "operator": "gt", "type": "session"}])).state.code(), "22023");
}

#[test]
fn event_metadata_columns() {
    let (sql, params) =
        ok(json!([{"key": "distinct_id", "value": ["a", "b"], "type": "event_metadata"}]));
    assert_eq!(sql, "(e.distinct_id = ANY($2::text[])) IS TRUE");
    assert_eq!(params, vec![ta(&["a", "b"])]);
    let (sql, params) = ok(
        json!([{"key": "timestamp", "value": "2024-01-02", "operator": "is_date_after", "type": "event_metadata"}]),
    );
    // A timestamp column needs no timezone parameter: only the date is bound.
    assert_eq!(sql, "(e.\"timestamp\" > $2::timestamptz) IS TRUE");
    assert_eq!(params[0], Param::Timestamp(micros(2024, 1, 2, 0)));
    assert_eq!(
        ok(json!([{"key": "$group_0", "operator": "is_set", "type": "event_metadata"}])).0,
        "(NULLIF(e.group_0, '') IS NOT NULL)"
    );
    let e = err(json!([{"key": "properties", "value": "x", "type": "event_metadata"}]));
    assert_eq!(e.attr.as_deref(), Some("properties__0__key"));
}

#[test]
fn elements_chain_key_reads_the_column() {
    assert_eq!(
        ok(f("$elements_chain", "icontains", json!("button"))).0,
        "(e.elements_chain ILIKE $2::text) IS TRUE"
    );
}

#[test]
fn cohorts_static_dynamic_and_negated() {
    let (sql, params) = ok(json!([{"key": "id", "value": 1, "type": "cohort"}]));
    assert_eq!(
        sql,
        "(e.person_id IN (SELECT pgi_cp.person_id FROM insights.cohort_people pgi_cp WHERE pgi_cp.cohort_id = $2::int8))"
    );
    assert_eq!(params, vec![Param::Int(1)]);
    let (sql, params) =
        ok(json!([{"key": "id", "value": "2", "type": "cohort", "operator": "not_in"}]));
    assert_eq!(
        sql,
        "(NOT (e.person_id IN (SELECT pgi_c1.id FROM insights.persons pgi_c1 WHERE pgi_c1.project_id = $1::int8 \
         AND ((pgi_c1.properties ->> $2::text) ILIKE $3::text) IS TRUE)))"
    );
    assert_eq!(params, vec![t("email"), t("%@x.com%")]);
    // Legacy negation flips; two flips cancel.
    assert!(
        ok(json!([{"value": 1, "type": "cohort", "negation": true}]))
            .0
            .starts_with("(NOT ")
    );
    assert!(
        !ok(json!([{"value": 1, "type": "cohort", "negation": true, "operator": "not_in"}]))
            .0
            .starts_with("(NOT ")
    );
}

#[test]
fn cohort_definitions_nest_and_are_checked() {
    // Legacy groups: OR of the groups, nested static cohort inside person scope.
    let (sql, _) = ok(json!([{"value": 5, "type": "cohort"}]));
    assert_eq!(
        sql,
        "(e.person_id IN (SELECT pgi_c1.id FROM insights.persons pgi_c1 WHERE pgi_c1.project_id = $1::int8 \
         AND (((pgi_c1.properties ->> $2::text) = $3::text) IS TRUE OR \
         (pgi_c1.id IN (SELECT pgi_cp.person_id FROM insights.cohort_people pgi_cp WHERE pgi_cp.cohort_id = $4::int8)))))"
    );
    // A negated nested cohort.
    let (sql, _) = ok(json!([{"value": 6, "type": "cohort"}]));
    assert!(
        sql.contains("AND (NOT (pgi_c1.id IN (SELECT pgi_c2.id FROM insights.persons pgi_c2"),
        "{sql}"
    );
    for (id, code, text) in [
        (3, "22023", "cycle"),
        (4, "22023", "does not work in 'person' scope"),
        (7, "22023", "Action 3 does not exist"),
        (99, "22023", "does not exist"),
    ] {
        let e = err(json!([{"key": "id", "value": id, "type": "cohort"}]));
        assert_eq!(
            (e.state.code(), e.attr.as_deref()),
            (code, Some("properties__0__value")),
            "{id}"
        );
        assert!(e.detail.contains(text), "{}", e.detail);
    }
    let e = err(json!([{"value": 1, "type": "cohort", "operator": "gt"}]));
    assert_eq!(e.attr.as_deref(), Some("properties__0__operator"));
    assert_eq!(
        err(json!([{"value": "abc", "type": "cohort"}]))
            .state
            .code(),
        "22P02"
    );
}

#[test]
fn element_filters() {
    let (sql, params) = ok(json!([{"key": "tag_name", "value": "img", "type": "element"}]));
    assert_eq!(
        (sql, params),
        (
            "(e.elements_chain ~ $2::text)".to_string(),
            vec![t(r"(^|;)img(\.|$|;|:)")]
        )
    );
    let (sql, params) = ok(
        json!([{"key": "tag_name", "value": ["a", "button"], "operator": "is_not", "type": "element"}]),
    );
    assert_eq!(sql, "(NOT (e.elements_chain ~ ANY($2::text[])))");
    assert_eq!(
        params,
        vec![ta(&[r"(^|;)a(\.|$|;|:)", r"(^|;)button(\.|$|;|:)"])]
    );
    let (_, params) = ok(json!([{"key": "text", "value": "Pay $10", "type": "element"}]));
    assert_eq!(params, vec![t(r#"(text="Pay \$10")"#)]);
    let (_, params) = ok(
        json!([{"key": "href", "value": "/mo\"vie", "operator": "icontains", "type": "element"}]),
    );
    assert_eq!(params, vec![t(r#"(?i)(href="[^"]*\/mo\\\"vie[^"]*")"#)]);
    let (sql, params) = ok(json!([{"key": "href", "operator": "is_not_set", "type": "element"}]));
    assert_eq!(
        (sql, params),
        (
            "(NOT (e.elements_chain ~ $2::text))".to_string(),
            vec![t(r#"(href="[^"]+")"#)]
        )
    );
    let (_, params) = ok(json!([{"key": "selector", "value": "div > a.nav", "type": "element"}]));
    assert_eq!(
        params,
        vec![t(
            r#"(^|;)a(?=[.:;]|$)(?=[^;:]*\.nav([.:;]|$))(?:[^;"]|"(?:[^"\\]|\\.)*")*;div(?=[.:;]|$)"#
        )]
    );
    let e =
        err(json!([{"key": "selector", "value": "a", "operator": "icontains", "type": "element"}]));
    assert_eq!(e.attr.as_deref(), Some("properties__0__operator"));
    let e = err(json!([{"key": "href", "value": "a", "operator": "gt", "type": "element"}]));
    assert_eq!(e.attr.as_deref(), Some("properties__0__operator"));
    let e = err(json!([{"key": "attr_id", "value": "a", "type": "element"}]));
    assert_eq!(e.attr.as_deref(), Some("properties__0__key"));
    let e = err(json!([{"key": "selector", "value": "a ~ b", "type": "element"}]));
    assert_eq!(e.attr.as_deref(), Some("properties__0__value"));
}

#[test]
fn selector_regexes() {
    assert_eq!(selector_regex("button").unwrap(), r"(^|;)button(?=[.:;]|$)");
    assert_eq!(
        selector_regex("div .btn#pay[data-x=\"1\"]:nth-child(2)").unwrap(),
        r#"(^|;)[^;.:]*(?=[^;:]*\.btn([.:;]|$))(?=(?:[^;"]|"(?:[^"\\]|\\.)*")*attr\_id="pay")(?=(?:[^;"]|"(?:[^"\\]|\\.)*")*attr\_\_data\-x="1")(?=(?:[^;"]|"(?:[^"\\]|\\.)*")*nth\-child="2").*;div(?=[.:;]|$)"#
    );
    assert_eq!(
        selector_regex("*[href]").unwrap(),
        r#"(^|;)[^;.:]*(?=(?:[^;"]|"(?:[^"\\]|\\.)*")*attr\_\_href="[^"]*")"#
    );
    for bad in ["", ">", "a >", "a:hover", "a[", "a,b", "a + b", "[x=\"1]"] {
        assert_eq!(selector_regex(bad), None, "{bad}");
    }
}

#[test]
fn rejected_types_and_operators() {
    let e = err(json!([{"key": "sum(properties.x) > 1", "type": "hogql"}]));
    assert_eq!(
        (e.state.code(), e.attr.as_deref()),
        ("22023", Some("properties__0__key"))
    );
    assert!(e.detail.starts_with("Unsupported HogQL: "), "{}", e.detail);
    let e = err(json!([{"key": "a", "value": "b", "type": "data_warehouse"}]));
    assert_eq!(
        (e.state.code(), e.attr.as_deref()),
        ("22023", Some("properties__0__type"))
    );
    let e = err(json!({"type": "AND", "values": [{"key": "a", "value": "b", "operator": "like"}]}));
    assert_eq!(
        (e.state.code(), e.attr.as_deref()),
        ("22023", Some("properties__values__0__operator"))
    );
    let e = err(json!([{"key": "a", "value": "b", "operator": 3}]));
    assert_eq!(
        (e.state.code(), e.attr.as_deref()),
        ("22P02", Some("properties__0__operator"))
    );
    let e = err(json!([{"key": "a", "value": {"x": 1}}]));
    assert_eq!(
        (e.state.code(), e.attr.as_deref()),
        ("22P02", Some("properties__0__value"))
    );
    let e = err(json!([{"key": "a", "value": ["x", [1]]}]));
    assert_eq!(e.attr.as_deref(), Some("properties__0__value__1"));
    let e = err(json!([{"value": "b"}]));
    assert_eq!(e.attr.as_deref(), Some("properties__0__key"));
    let e = err(json!([{"key": 7, "value": "b"}]));
    assert_eq!(e.state.code(), "22P02");
}

#[test]
fn hogql_filters() {
    // value, operator and negation are ignored, as PostHog.
    let (sql, params) = ok(
        json!([{"key": "properties.$browser == 'Chrome'", "type": "hogql",
                                   "value": null, "operator": "bogus", "negation": true}]),
    );
    assert_eq!(sql, format!("(({P} = $3::text)) IS TRUE"));
    assert_eq!(params, vec![t("$browser"), t("Chrome")]);
    let (sql, _) = ok(json!({"type": "OR", "values": [
        {"key": "event = 'a'", "type": "hogql"},
        {"key": "not empty(distinct_id)", "type": "hogql"},
    ]}));
    assert_eq!(
        sql,
        "(((e.event = $2::text)) IS TRUE OR ((NOT (e.distinct_id = ''))) IS TRUE)"
    );
    let e = err(json!([{"type": "hogql"}]));
    assert_eq!(
        (e.state.code(), e.attr.as_deref(), e.detail.as_str()),
        (
            "22023",
            Some("properties__0__key"),
            "This field is required."
        )
    );
    let e = err(json!([{"type": "hogql", "key": 5}]));
    assert_eq!(
        (e.state.code(), e.attr.as_deref()),
        ("22P02", Some("properties__0__key"))
    );
    let e = err(json!([{"type": "hogql", "key": "timestamp"}]));
    assert_eq!(e.attr.as_deref(), Some("properties__0__key"));
    assert!(e.detail.contains("not a boolean condition"), "{}", e.detail);
    // Cohort definitions are evaluated per person: HogQL is event-scoped.
    let e = err(json!([{"type": "cohort", "key": "id", "value": 8}]));
    assert_eq!(e.state.code(), "22023");
    assert!(
        e.detail.contains("does not work in 'person' scope"),
        "{}",
        e.detail
    );
}

#[test]
fn hostile_keys_and_values_stay_in_params() {
    let key = format!("$a'; DROP TABLE x; --\"é{}", "k".repeat(10_000));
    let (sql, params) = ok(json!([{"key": key, "value": "v'\\", "type": "person"}]));
    assert!(!sql.contains("DROP") && !sql.contains("kkk"));
    assert_eq!(params, vec![t(&key), t("v'\\")]);
}

#[test]
fn repeated_values_reuse_parameters() {
    let (sql, params) =
        ok(json!([{"key": "a", "value": "x"}, {"key": "a", "value": "x", "operator": "is_not"}]));
    assert_eq!(
        sql,
        format!("(({P} = $3::text) IS TRUE AND ({P} = $3::text) IS NOT TRUE)")
    );
    assert_eq!(params.len(), 2);
}

// ----- entities, test accounts, breakdowns -------------------------------------------------

fn entity(e: Entity) -> Result<(String, Vec<Param>)> {
    with_cx(None, |cx, b| {
        let sql = compile_entity_at(&e, b, cx, now())?;
        Ok((sql, b.params[1..].to_vec()))
    })
}

#[test]
fn entities_by_event_name() {
    assert_eq!(
        entity(Entity::all_events()).unwrap(),
        (TRUE_SQL.to_string(), vec![])
    );
    assert_eq!(
        entity(Entity::event("$pageview")).unwrap(),
        ("(e.event = $2::text)".to_string(), vec![t("$pageview")])
    );
    let mut e = Entity::event("sign up");
    e.properties = json!([{"key": "is_saved", "value": ["true"]}]);
    assert_eq!(
        entity(e).unwrap().0,
        "((e.event = $2::text) AND ((e.properties ->> $3::text) = $4::text) IS TRUE)"
    );
    let mut e = Entity::all_events();
    e.properties = json!([{"key": "a", "operator": "nope"}]);
    assert_eq!(
        entity(e).unwrap_err().attr.as_deref(),
        Some("properties__0__operator")
    );
}

#[test]
fn entities_by_action() {
    let (sql, params) = entity(Entity::action(10)).unwrap();
    assert_eq!(
        sql,
        "(((e.event = $2::text) AND (e.elements_chain ~ $3::text) AND (e.elements_chain ~ $4::text)) OR \
         ((e.event = $5::text) AND ((e.properties ->> $6::text) LIKE $7::text) IS TRUE))"
    );
    assert_eq!(
        params,
        vec![
            t("$autocapture"),
            t(r"(^|;)button(\.|$|;|:)"),
            t(r#"(text="Pay \$10")"#),
            t("$pageview"),
            t("$current_url"),
            t("%/movie%"),
        ]
    );
    let (sql, _) = entity(Entity::action(11)).unwrap();
    assert_eq!(
        sql,
        "((e.event = $2::text) AND ((e.properties ->> $3::text) = $4::text) IS TRUE)"
    );
    assert_eq!(entity(Entity::action(12)).unwrap().0, TRUE_SQL);
    let (sql, params) = entity(Entity::action(14)).unwrap();
    assert_eq!(
        sql,
        "(((e.properties ->> $2::text) ~ $3::text) IS TRUE OR ((e.properties ->> $2::text) = $4::text) IS TRUE)"
    );
    assert_eq!(
        params,
        vec![t("$current_url"), t("^https://a"), t("https://b")]
    );
    let e = entity(Entity::action(13)).unwrap_err();
    assert_eq!((e.state.code(), e.attr.as_deref()), ("22023", Some("id")));
    assert!(e.detail.contains("href_matching"), "{}", e.detail);
    assert!(
        entity(Entity::action(404))
            .unwrap_err()
            .detail
            .contains("does not exist")
    );
}

#[test]
fn test_account_filters_compile() {
    let (sql, params) = with_cx(Some("p.properties"), |cx, b| {
        (
            compile_test_account_filters(b, cx).unwrap(),
            b.params[1..].to_vec(),
        )
    });
    assert_eq!(
        sql,
        "((p.properties ->> $2::text) ILIKE $3::text) IS NOT TRUE"
    );
    assert_eq!(params, vec![t("email"), t("%@posthog.com%")]);
}

#[test]
fn breakdown_expressions() {
    with_cx(None, |cx, b| {
        assert_eq!(
            breakdown_expr("event", "$browser", None, b, cx).unwrap(),
            "(e.properties ->> $2::text)"
        );
        assert_eq!(
            breakdown_expr("event_metadata", "distinct_id", None, b, cx).unwrap(),
            "e.distinct_id"
        );
        assert!(
            breakdown_expr("group", "industry", Some(2), b, cx)
                .unwrap()
                .contains("e.group_2) ->> $3::text)")
        );
        let e = breakdown_expr("group", "industry", None, b, cx).unwrap_err();
        assert_eq!(e.attr.as_deref(), Some("breakdown_group_type_index"));
        assert_eq!(
            breakdown_expr("hogql", "lower(properties.$browser)", None, b, cx).unwrap(),
            "lower((e.properties ->> $2::text))"
        );
        assert_eq!(
            breakdown_expr("hogql", "properties.a + 1", None, b, cx).unwrap(),
            "(trim_scale(((CASE WHEN length((e.properties ->> $4::text)) <= 100 AND \
             (e.properties ->> $4::text) ~ '^[-+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]{1,2})?$' \
             THEN ((e.properties ->> $4::text))::numeric END) + $5::int8::numeric))::text)"
        );
        let e = breakdown_expr("hogql", "x", None, b, cx).unwrap_err();
        assert_eq!(
            (e.state.code(), e.attr.as_deref()),
            ("22023", Some("breakdown"))
        );
        let e = breakdown_expr("session", "$nope", None, b, cx).unwrap_err();
        assert_eq!(e.attr.as_deref(), Some("breakdown"));
    });
}

// ----- property tests ----------------------------------------------------------------------

/// A marker that only user-supplied strings contain.
const MARK: char = '\u{a7}'; // the section sign

fn user_string() -> impl Strategy<Value = String> {
    "[a-z'\";$%_\\\\ .*()\\[\\]-]{0,12}".prop_map(|s| format!("{MARK}{s}"))
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        user_string().prop_map(Value::String),
        any::<i32>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|x| json!(x)),
        any::<bool>().prop_map(Value::Bool),
        Just(json!(null)),
        Just(json!("2024-01-02")),
        Just(json!("-7d")),
        Just(json!("1.2.3")),
        Just(json!("button")),
    ]
}

fn filter_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        scalar(),
        prop::collection::vec(scalar(), 0..4).prop_map(Value::Array),
        Just(json!([1, 5])),
        Just(json!({"x": 1})),
    ]
}

fn one_filter() -> impl Strategy<Value = Value> {
    let ops: Vec<&str> = Op::NAMES.iter().map(|(n, _)| *n).chain(["bogus"]).collect();
    let types = [
        "event",
        "person",
        "group",
        "session",
        "event_metadata",
        "element",
        "cohort",
        "hogql",
        "bogus",
    ];
    let keys = [
        "tag_name",
        "selector",
        "href",
        "text",
        "distinct_id",
        "timestamp",
        "$session_id",
        "$session_duration",
        "$group_1",
    ];
    (
        prop::sample::select(types.to_vec()),
        prop_oneof![user_string(), prop::sample::select(keys.to_vec()).prop_map(String::from)],
        prop::sample::select(ops),
        filter_value(),
        prop::option::of(0u8..6),
        any::<bool>(),
    )
        .prop_map(|(ty, key, op, value, gti, negation)| {
            let mut m = json!({"type": ty, "key": key, "operator": op, "value": value, "negation": negation});
            if let Some(i) = gti {
                m["group_type_index"] = json!(i);
            }
            if ty == "cohort" {
                m["value"] = json!((gti.unwrap_or(0) as i64) + 1);
            }
            m
        })
}

fn filter_tree() -> impl Strategy<Value = Value> {
    one_filter().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            (
                prop::sample::select(vec!["AND", "OR", "or", "XOR"]),
                prop::collection::vec(inner, 0..4)
            )
                .prop_map(|(t, v)| json!({"type": t, "values": v})),
        ]
    })
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        user_string().prop_map(Value::String),
        prop::sample::select(vec![
            "type", "key", "value", "operator", "values", "AND", "OR", "cohort", "element"
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "type",
                    "key",
                    "value",
                    "operator",
                    "values",
                    "group_type_index",
                    "negation"
                ])
                .prop_map(String::from),
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// No user string in the SQL text, and every parameter the compiler bound is referenced.
fn check_sql(v: &Value) {
    if let Ok((sql, params)) = run(v.clone()) {
        assert!(!sql.contains(MARK), "user text leaked into SQL: {sql}");
        for i in 0..params.len() {
            assert!(
                sql.contains(&format!("${}::", i + 2)),
                "unreferenced parameter ${} in {sql}",
                i + 2
            );
        }
        assert!(
            !sql.contains(&format!("${}::", params.len() + 2)),
            "dangling placeholder in {sql}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn structured_filters_never_panic_or_leak(v in filter_tree()) {
        check_sql(&v);
    }

    #[test]
    fn arbitrary_json_never_panics_or_leaks(v in arbitrary_json()) {
        check_sql(&v);
    }

    #[test]
    fn selectors_never_panic(s in "[a-z.#>\\[\\]=\"': ()*0-9-]{0,24}") {
        if let Some(re) = selector_regex(&s) {
            prop_assert!(re.starts_with("(^|;)"));
        }
    }
}

fn behavioral(v: Value) -> Value {
    json!({"properties": {"type": "AND", "values": [v]}})
}

#[test]
fn behavioral_cohort_criteria_compile_to_event_subqueries() {
    with_cx(None, |cx, b| {
        let f = behavioral(
            json!({"type": "behavioral", "value": "performed_event", "key": "signup",
                                  "event_type": "events", "time_value": 7, "time_interval": "day"}),
        );
        check_cohort_definition(None, &f, cx, now()).unwrap();
        let mut c = Compiler::new(cx, now());
        c.scope = Scope::Person { alias: "p".into() };
        let sql = c.cohort_definition(&f, b).unwrap();
        assert_eq!(
            sql,
            "(EXISTS (SELECT 1 FROM insights.events pgi_b1 WHERE (pgi_b1.project_id = $1::int8 AND pgi_b1.person_id = p.id \
             AND (pgi_b1.event = $2::text)) AND pgi_b1.\"timestamp\" > $3::timestamptz AND pgi_b1.\"timestamp\" < $4::timestamptz))"
        );
        assert_eq!(b.params[2], Param::Timestamp(micros(2024, 1, 3, 12)));
        assert_eq!(b.params[3], Param::Timestamp(micros(2024, 1, 10, 12)));
        // N times, over an action, with event filters and negation; the action's steps compile
        // over the subquery's alias.
        let f = behavioral(
            json!({"type": "behavioral", "value": "performed_event_multiple", "key": 11,
                                  "event_type": "actions", "operator": "gte", "operator_value": 3,
                                  "time_value": 1, "time_interval": "month", "negation": true,
                                  "event_filters": [{"key": "a", "value": "b", "type": "event"}]}),
        );
        let sql = c.cohort_definition(&f, b).unwrap();
        assert!(
            sql.starts_with("(NOT ((SELECT count(*) FROM insights.events pgi_b2 WHERE"),
            "{sql}"
        );
        assert!(
            sql.contains("(pgi_b2.event = $5::text)") && sql.contains("pgi_b2.properties ->>"),
            "{sql}"
        );
        assert!(
            sql.ends_with(">= $11::int8))") || sql.contains(">= $"),
            "{sql}"
        );
        assert!(
            b.params
                .contains(&Param::Timestamp(micros(2023, 12, 10, 12)))
        );
    });
}

#[test]
fn behavioral_cohort_errors_name_the_field() {
    with_cx(None, |cx, _| {
        let attr = |v: Value| {
            check_cohort_definition(None, &behavioral(v), cx, now())
                .unwrap_err()
                .attr
                .unwrap_or_default()
        };
        let base = json!({"type": "behavioral", "value": "performed_event", "key": "x", "time_value": 7, "time_interval": "day"});
        let with = |k: &str, v: Value| {
            let mut m = base.clone();
            m[k] = v;
            m
        };
        assert_eq!(
            attr(with("value", json!("performed_event_sequence"))),
            "properties__values__0__value"
        );
        assert_eq!(
            attr(with("value", json!("restarted_performing_event"))),
            "properties__values__0__value"
        );
        assert_eq!(
            attr(with("value", json!("nope"))),
            "properties__values__0__value"
        );
        assert_eq!(
            attr(with("time_value", json!(0))),
            "properties__values__0__time_value"
        );
        assert_eq!(
            attr(with("time_interval", json!("fortnight"))),
            "properties__values__0__time_interval"
        );
        assert_eq!(
            attr(with("event_type", json!("x"))),
            "properties__values__0__event_type"
        );
        let mut m = with("event_type", json!("actions"));
        m["key"] = json!(99);
        assert_eq!(attr(m), "properties__values__0__key");
        let mut m = with("value", json!("stopped_performing_event"));
        m["seq_time_value"] = json!(7);
        m["seq_time_interval"] = json!("day");
        assert_eq!(attr(m.clone()), "properties__values__0__seq_time_value");
        m["seq_time_value"] = json!(2);
        check_cohort_definition(None, &behavioral(m), cx, now()).unwrap();
        // Behavioural filters are for cohort definitions only.
        let e =
            compile_properties_at(&json!([base]), &mut SqlBuilder::new(), cx, now()).unwrap_err();
        assert_eq!(e.attr.as_deref(), Some("properties__0__type"));
    });
}

#[test]
fn cohort_checks_find_cycles_and_members_sql_reads_static_members() {
    with_cx(None, |cx, b| {
        // Cohort 6 references cohort 2: cohort 2 may not reference 6.
        let f = json!({"properties": [{"type": "cohort", "value": 6}]});
        let e = check_cohort_definition(Some(2), &f, cx, now()).unwrap_err();
        assert!(e.detail.contains("cycle"), "{}", e.detail);
        check_cohort_definition(Some(5), &f, cx, now()).unwrap();
        // A static cohort may not name itself either.
        let own = json!({"properties": [{"type": "cohort", "value": 1}]});
        assert!(
            check_cohort_definition(Some(1), &own, cx, now())
                .unwrap_err()
                .detail
                .contains("cycle")
        );
        let e = check_cohort_definition(
            None,
            &json!({"properties": [{"type": "cohort", "value": 99}]}),
            cx,
            now(),
        )
        .unwrap_err();
        assert_eq!(e.attr.as_deref(), Some("properties__0__value"));
        let sql = cohort_members_sql(1, b, cx, now()).unwrap();
        assert_eq!(
            sql,
            "SELECT pgi_m.id FROM insights.persons pgi_m WHERE pgi_m.project_id = $1::int8 AND \
             (pgi_m.id IN (SELECT pgi_cp.person_id FROM insights.cohort_people pgi_cp WHERE pgi_cp.cohort_id = $2::int8))"
        );
        assert!(cohort_members_sql(99, b, cx, now()).is_err());
        assert!(
            check_action_steps(
                &json!([{"event": "$autocapture", "selector": "div::after"}]),
                cx
            )
            .is_err()
        );
        check_action_steps(
            &json!([{"event": "$autocapture", "selector": "div > a.x"}]),
            cx,
        )
        .unwrap();
    });
}
