use super::*;
use crate::model::parse_query;
use chrono::TimeZone;
use proptest::prelude::*;

// -----------------------------------------------------------------------------------------
// Harness
// -----------------------------------------------------------------------------------------

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2020, 1, 21, 12, 0, 0).unwrap()
}

fn project() -> Project {
    Project {
        id: 7,
        pt: ProjectTime::utc(),
        timezone: "UTC".into(),
        test_account_filters: json!([
            {"key": "email", "value": "@posthog.com", "operator": "not_icontains", "type": "person"}
        ]),
        rollups: false,
        materialized: vec![],
    }
}

fn cohort(id: i64) -> Option<(bool, Value, String)> {
    match id {
        1 => Some((true, json!({}), "c1".to_string())),
        2 => Some((
            false,
            json!({"properties": [{"key": "email", "value": "x", "type": "person"}]}),
            "emails".to_string(),
        )),
        _ => None,
    }
}

fn action(id: i64) -> Option<(Value, String)> {
    match id {
        3 => Some((json!([{"event": "sign up"}]), "Signed up".to_string())),
        _ => None,
    }
}

fn try_plan(v: Value) -> Result<TrendsPlan> {
    let q = parse_query(&v)?;
    plan(
        &q,
        &project(),
        &Lookups {
            cohort: &cohort,
            action: &action,
        },
        now(),
        None,
    )
}

fn ok(v: Value) -> TrendsPlan {
    try_plan(v.clone()).unwrap_or_else(|e| panic!("{v}: {e:?}"))
}

fn err(v: Value) -> QueryError {
    match try_plan(v.clone()) {
        Ok(_) => panic!("{v}: expected an error"),
        Err(e) => e,
    }
}

/// A TQ-range trends filter (2020-01-09..2020-01-19) with these legacy keys added.
fn tq(extra: Value) -> Value {
    let mut base = json!({
        "insight": "TRENDS",
        "events": [{"id": "$pageview", "order": 0}],
        "date_from": "2020-01-09",
        "date_to": "2020-01-19",
    });
    if let (Value::Object(b), Value::Object(x)) = (&mut base, extra) {
        b.extend(x);
    }
    base
}

fn day(d: u32) -> i64 {
    Utc.with_ymd_and_hms(2020, 1, d, 0, 0, 0)
        .unwrap()
        .timestamp_micros()
}

fn row(d: u32, bd: Option<&str>, v: f64) -> Row {
    Row {
        bucket_us: day(d),
        breakdown: bd.map(str::to_string),
        value: v,
    }
}

/// Fixture "TQ" of PostHog's trends test cases: (person, browser, event, day of January 2020), all
/// at 12:00Z.
const TQ: &[(u8, &str, &str, u32)] = &[
    (1, "Chrome", "$pageview", 11),
    (1, "Chrome", "$pageview", 12),
    (1, "Chrome", "$pageview", 13),
    (1, "Chrome", "$pageview", 15),
    (1, "Chrome", "$pageview", 17),
    (1, "Chrome", "$pageview", 19),
    (1, "Chrome", "$pageleave", 11),
    (1, "Chrome", "$pageleave", 12),
    (1, "Chrome", "$pageleave", 13),
    (2, "Firefox", "$pageview", 9),
    (2, "Firefox", "$pageview", 12),
    (2, "Firefox", "$pageleave", 13),
    (3, "Edge", "$pageview", 12),
    (3, "Edge", "$pageleave", 13),
    (4, "Safari", "$pageview", 15),
    (4, "Safari", "$pageleave", 16),
];

/// What a `total` run returns over TQ: count per (day, browser?) within [from, to].
fn tq_rows(event: &str, from: u32, to: u32, persons: &[u8], by_browser: bool) -> Vec<Row> {
    let mut counts: std::collections::BTreeMap<(u32, Option<&str>), f64> = Default::default();
    for (p, browser, ev, d) in TQ {
        if *ev == event && (from..=to).contains(d) && persons.contains(p) {
            *counts
                .entry((*d, by_browser.then_some(*browser)))
                .or_default() += 1.0;
        }
    }
    counts.into_iter().map(|((d, b), v)| row(d, b, v)).collect()
}

const ALL: &[u8] = &[1, 2, 3, 4];

fn data(item: &Value) -> Vec<f64> {
    item["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {item}"))
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn items(v: &Value) -> &Vec<Value> {
    v.as_array().expect("result list")
}

/// Every `$n` of the statement is bound and every parameter is used.
fn check_placeholders(run: &TrendsRun) {
    let n = run.params.len();
    for i in 1..=n {
        assert!(
            run.sql.contains(&format!("${i}::")),
            "unreferenced ${i} in {}",
            run.sql
        );
    }
    assert!(
        !run.sql.contains(&format!("${}::", n + 1)),
        "dangling ${} in {}",
        n + 1,
        run.sql
    );
}

// -----------------------------------------------------------------------------------------
// Planning: SQL shapes
// -----------------------------------------------------------------------------------------

fn one_sql(extra: Value) -> (String, Vec<Param>) {
    let p = ok(tq(extra));
    assert_eq!(p.runs.len(), 1);
    check_placeholders(&p.runs[0]);
    (p.runs[0].sql.clone(), p.runs[0].params.clone())
}

fn math_sql(entity: Value) -> String {
    one_sql(json!({"events": [entity]})).0
}

#[test]
fn total_sql_shape() {
    let (sql, params) = one_sql(json!({}));
    assert!(sql.starts_with(
        "SELECT a.bucket, a.breakdown, coalesce(CASE WHEN abs(a.v) < 1e300 THEN a.v::float8 END, 0::float8) AS value FROM (SELECT "
    ), "{sql}");
    assert!(sql.contains("count(*) AS v FROM insights.events e WHERE e.project_id = $1::int8"));
    assert!(
        sql.contains("e.\"timestamp\" >= $3::timestamptz AND e.\"timestamp\" <= $4::timestamptz"),
        "{sql}"
    );
    assert!(sql.contains("(e.event = $2::text)"));
    assert!(sql.contains("(date_trunc('day', e.\"timestamp\" AT TIME ZONE $5::text) AT TIME ZONE $5::text) AS bucket"), "{sql}");
    assert!(sql.contains("NULL::text AS breakdown"));
    assert!(sql.ends_with("GROUP BY 1, 2) a"));
    assert_eq!(params[0], Param::Int(7));
    assert_eq!(params[1], Param::Text("$pageview".into()));
    assert_eq!(params[2], Param::Timestamp(day(9)));
    assert_eq!(
        params[3],
        Param::Timestamp(day(20) - 1),
        "date_to snaps to 23:59:59.999999"
    );
    assert_eq!(params[4], Param::Text("UTC".into()));
}

#[test]
fn distinct_maths_sql() {
    let dau = math_sql(json!({"id": "$pageview", "math": "dau"}));
    // Persons: the parallel distinct-actors aggregate over (bucket, breakdown, person); in
    // UTC the day bucket is computed by the aggregate from the timestamp.
    assert!(
        dau.contains("insights._uniq_actors_utc(e.\"timestamp\", $")
            && dau.contains(", NULL::text, e.person_id) AS s"),
        "{dau}"
    );
    assert!(
        dau.contains("CROSS JOIN LATERAL insights._uniq_actors_rows(u.s) d"),
        "{dau}"
    );
    // Weeks (and non-UTC zones) keep the SQL bucket expression.
    let (wk, _) =
        one_sql(json!({"events": [{"id": "$pageview", "math": "dau"}], "interval": "week"}));
    assert!(
        wk.contains("insights._uniq_actors(((date_trunc('week'"),
        "{wk}"
    );
    let g =
        math_sql(json!({"id": "$pageview", "math": "unique_group", "math_group_type_index": 2}));
    assert!(g.contains("NULLIF(e.group_2, '') AS actor"), "{g}");
    let s = math_sql(json!({"id": "$pageview", "math": "unique_session"}));
    assert!(s.contains("NULLIF(e.session_id, '') AS actor"), "{s}");
    // Aggregating by groups: dau counts groups.
    let (sql, _) = one_sql(
        json!({"events": [{"id": "$pageview", "math": "dau"}], "aggregation_group_type_index": 1}),
    );
    assert!(sql.contains("NULLIF(e.group_1, '') AS actor"), "{sql}");
}

#[test]
fn active_users_sql() {
    let w = math_sql(json!({"id": "$pageview", "math": "weekly_active"}));
    assert!(w.contains("FROM generate_series($"), "{w}");
    assert!(w.contains("interval '1 day') AS bk(d)"));
    assert!(w.contains("JOIN (SELECT DISTINCT date_trunc('day', e.\"timestamp\" AT TIME ZONE"));
    assert!(w.contains("ON ad.d > bk.d - interval '7 days' AND ad.d <= bk.d GROUP BY 1, 2"));
    assert!(w.contains("count(DISTINCT ad.actor) AS v"));
    let p = ok(tq(
        json!({"events": [{"id": "$pageview", "math": "monthly_active"}]}),
    ));
    let m = &p.runs[0];
    check_placeholders(m);
    assert!(m.sql.contains("interval '30 days'"));
    // The events read start 31 days before the range.
    assert!(
        m.params
            .contains(&Param::Timestamp(day(9) - 31 * 86_400_000_000))
    );
    // Week and month intervals: distinct per bucket (T26, T27).
    let (sql, _) = one_sql(
        json!({"events": [{"id": "$pageview", "math": "weekly_active"}], "interval": "week"}),
    );
    assert!(!sql.contains("generate_series"));
    assert!(sql.contains("count(DISTINCT e.person_id) AS v"));
    // Hours: absolute windows.
    let (sql, _) = one_sql(
        json!({"events": [{"id": "$pageview", "math": "weekly_active"}], "interval": "hour"}),
    );
    assert!(sql.contains("interval '1 hour') AS bk(d)"), "{sql}");
    assert!(sql.contains("interval '168 hours'"));
    // Total value: the 7 days ending at date_to.
    let p = ok(tq(
        json!({"events": [{"id": "$pageview", "math": "weekly_active"}], "display": "BoldNumber"}),
    ));
    assert!(
        p.runs[0].params.contains(&Param::Timestamp(day(13))),
        "{:?}",
        p.runs[0].params
    );
    assert!(p.runs[0].sql.contains("count(DISTINCT e.person_id) AS v"));
}

#[test]
fn property_maths_sql() {
    for (math, agg) in [
        ("sum", "sum((CASE WHEN length("),
        ("avg", "avg((CASE WHEN length("),
        ("min", "min((CASE WHEN length("),
        ("max", "max((CASE WHEN length("),
        (
            "median",
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY ((CASE",
        ),
        ("p75", "percentile_cont(0.75) WITHIN GROUP"),
        ("p90", "percentile_cont(0.9) WITHIN GROUP"),
        ("p95", "percentile_cont(0.95) WITHIN GROUP"),
        ("p99", "percentile_cont(0.99) WITHIN GROUP"),
    ] {
        let (sql, params) = one_sql(
            json!({"events": [{"id": "$pageview", "math": math, "math_property": "prop"}]}),
        );
        assert!(sql.contains(agg), "{math}: {sql}");
        assert!(sql.contains("(e.properties ->> $"), "{sql}");
        assert!(sql.contains(&format!("'{NUM_RE}' THEN")), "{sql}");
        assert!(params.contains(&Param::Text("prop".into())));
    }
    let s =
        math_sql(json!({"id": "$pageview", "math": "avg", "math_property": "$session_duration"}));
    assert!(s.contains("e.session_id AS sid, max("), "{s}");
    assert!(s.contains("avg(s.x) AS v"));
}

#[test]
fn per_actor_sql() {
    for (math, agg) in [
        ("avg_count_per_actor", "avg(pa.c)"),
        ("min_count_per_actor", "min(pa.c)"),
        ("max_count_per_actor", "max(pa.c)"),
        (
            "median_count_per_actor",
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY (pa.c)::float8)",
        ),
        ("p90_count_per_actor", "percentile_cont(0.9) WITHIN GROUP"),
    ] {
        let sql = math_sql(json!({"id": "$pageview", "math": math}));
        assert!(sql.contains(agg), "{math}: {sql}");
        assert!(
            sql.contains("e.person_id AS actor, count(*) AS c FROM insights.events e"),
            "{sql}"
        );
        assert!(sql.contains("GROUP BY 1, 2, 3) pa GROUP BY 1, 2"));
    }
}

#[test]
fn first_time_sql() {
    let sql = math_sql(json!({"id": "$pageview", "math": "first_time_for_user",
        "properties": [{"key": "$browser", "value": "Chrome"}]}));
    assert!(sql.contains("AND e.uuid = (SELECT e2.uuid FROM insights.events e2 WHERE e2.project_id = e.project_id AND e2.person_id = e.person_id AND (e2.event = $2::text) ORDER BY e2.\"timestamp\", e2.uuid LIMIT 1)"), "{sql}");
    assert!(sql.contains("count(DISTINCT e.person_id) AS v"));
    let with = math_sql(
        json!({"id": "$pageview", "math": "first_time_for_user_with_filters",
        "properties": [{"key": "$browser", "value": "Chrome"}]}),
    );
    assert!(with.contains("e2.properties ->>"), "{with}");
}

#[test]
fn hogql_math_sql() {
    let sum =
        math_sql(json!({"id": "$pageview", "math": "hogql", "math_hogql": "sum(properties.prop)"}));
    assert!(sum.contains("sum(("), "{sum}");
    assert!(sum.contains("::numeric) AS v"), "{sum}");
    let c = math_sql(
        json!({"id": "$pageview", "math": "hogql", "math_hogql": "count(distinct person_id)"}),
    );
    assert!(c.contains("count(DISTINCT e.person_id) AS v"), "{c}");
    let c = math_sql(json!({"id": "$pageview", "math": "hogql", "math_hogql": "count()"}));
    assert!(c.contains("count(*) AS v"));
    let u = math_sql(
        json!({"id": "$pageview", "math": "hogql", "math_hogql": "uniq(properties.$browser)"}),
    );
    assert!(u.contains("count(DISTINCT (e.properties ->> $"), "{u}");
    for bad in [
        "sum(properties.prop) + 1",
        "quantile(0.9)(properties.prop)",
        "properties.prop",
        "sum(count())",
        "argMax(event, timestamp)",
    ] {
        let e = err(tq(
            json!({"events": [{"id": "$pageview", "math": "hogql", "math_hogql": bad}]}),
        ));
        assert_eq!(e.state.code(), "22023", "{bad}");
        assert_eq!(
            e.attr.as_deref(),
            Some("events__0__math_hogql"),
            "{bad}: {e:?}"
        );
        assert!(
            e.detail.starts_with("Unsupported HogQL"),
            "{bad}: {}",
            e.detail
        );
    }
}

#[test]
fn cumulative_distinct_counts_first_bucket() {
    let (sql, _) = one_sql(
        json!({"events": [{"id": "$pageview", "math": "dau"}], "display": "ActionsLineGraphCumulative"}),
    );
    assert!(sql.contains("FROM (SELECT min((date_trunc('day'"), "{sql}");
    assert!(sql.contains("e.person_id AS actor FROM insights.events e"));
    assert!(sql.contains("GROUP BY 2, 3) f GROUP BY 1, 2"));
    // Totals are plainly counted and summed by the renderer.
    let (sql, _) = one_sql(json!({"display": "ActionsLineGraphCumulative"}));
    assert!(sql.contains("count(*) AS v"));
}

#[test]
fn total_value_runs_have_no_buckets() {
    let p = ok(tq(
        json!({"events": [{"id": "$pageview", "math": "dau"}], "display": "ActionsPie", "breakdown": "$browser"}),
    ));
    let r = &p.runs[0];
    check_placeholders(r);
    assert!(r.total_value && p.total_value);
    assert!(!r.sql.contains("date_trunc"), "{}", r.sql);
    assert!(
        r.sql.contains("insights._uniq_actors($3::timestamptz, "),
        "{}",
        r.sql
    );
    assert!(r.sql.contains(", e.person_id) AS s"), "{}", r.sql);
}

#[test]
fn breakdown_sql() {
    let (sql, params) = one_sql(json!({"breakdown": "$browser"}));
    assert!(sql.contains("(e.properties ->> $"), "{sql}");
    assert!(params.contains(&Param::Text("$browser".into())));
    let (sql, _) = one_sql(json!({"breakdown": "email", "breakdown_type": "person"}));
    assert!(sql.contains("insights.persons"), "{sql}");
    let (sql, _) = one_sql(
        json!({"breakdown": "name", "breakdown_type": "group", "breakdown_group_type_index": 0}),
    );
    assert!(sql.contains("insights.groups"), "{sql}");
    let (sql, _) =
        one_sql(json!({"breakdown": "upper(properties.$browser)", "breakdown_type": "hogql"}));
    assert!(sql.contains("upper("), "{sql}");
    let (sql, _) = one_sql(json!({"breakdown": "distinct_id", "breakdown_type": "event_metadata"}));
    assert!(sql.contains("e.distinct_id AS breakdown"), "{sql}");
    let (sql, _) = one_sql(
        json!({"breakdowns": [{"property": "$browser", "type": "event"}, {"property": "$os", "type": "event"}]}),
    );
    assert!(sql.contains("jsonb_build_array("), "{sql}");
    let (sql, _) = one_sql(json!({"breakdown": "$current_url", "breakdown_normalize_url": true}));
    assert!(sql.contains("rtrim(regexp_replace("), "{sql}");
}

#[test]
fn histogram_sql() {
    let (sql, params) = one_sql(json!({"breakdown": "prop", "breakdown_histogram_bin_count": 4}));
    assert!(
        sql.starts_with("WITH pgi_mm AS MATERIALIZED (SELECT min("),
        "{sql}"
    );
    assert!(
        sql.contains("CROSS JOIN pgi_mm CROSS JOIN LATERAL (SELECT"),
        "{sql}"
    );
    assert!(sql.contains("pgi_mm.hi + 0.01"));
    assert!(sql.contains("trim_scale(floor("));
    assert!(params.contains(&Param::Int(4)));
    let e = err(tq(json!({"breakdowns": [
        {"property": "a", "type": "event", "histogram_bin_count": 3},
        {"property": "b", "type": "event"}]})));
    assert_eq!(e.attr.as_deref(), Some("breakdown_histogram_bin_count"));
}

#[test]
fn cohort_breakdown_runs_per_cohort() {
    let p = ok(tq(json!({
        "events": [{"id": "$pageview", "order": 0}, {"id": "$pageleave", "order": 1}],
        "breakdown": [1, "all"], "breakdown_type": "cohort",
    })));
    assert_eq!(p.breakdown, BreakdownMode::Cohort);
    let shape: Vec<(usize, Option<Value>)> = p
        .runs
        .iter()
        .map(|r| (r.series_index, r.cohort.as_ref().map(|c| c.0.clone())))
        .collect();
    assert_eq!(
        shape,
        vec![
            (0, Some(json!(1))),
            (1, Some(json!(1))),
            (0, Some(json!("all"))),
            (1, Some(json!("all"))),
        ]
    );
    assert!(
        p.runs[0].sql.contains("insights.cohort_people"),
        "{}",
        p.runs[0].sql
    );
    assert!(!p.runs[2].sql.contains("cohort_people"));
    assert_eq!(p.runs[0].cohort.as_ref().unwrap().1, "c1");
    assert_eq!(p.runs[2].cohort.as_ref().unwrap().1, "all users");
    for r in &p.runs {
        check_placeholders(r);
    }
    let e = err(tq(json!({"breakdown": [99], "breakdown_type": "cohort"})));
    assert_eq!(
        (e.state.code(), e.attr.as_deref()),
        ("22023", Some("breakdown"))
    );
}

#[test]
fn compare_runs_follow_each_series() {
    let p = ok(tq(json!({
        "events": [{"id": "$pageview", "order": 0}, {"id": "$pageleave", "order": 1}],
        "date_from": "2020-01-15", "compare": true,
    })));
    let shape: Vec<(usize, bool)> = p.runs.iter().map(|r| (r.series_index, r.compare)).collect();
    assert_eq!(shape, vec![(0, false), (0, true), (1, false), (1, true)]);
    let c = p.compare_range.unwrap();
    assert_eq!(c.from.timestamp_micros(), day(10));
    assert_eq!(c.to.timestamp_micros(), day(15) - 1);
    assert!(p.runs[1].params.contains(&Param::Timestamp(day(10))));
    let p = ok(tq(json!({"compare": true, "compare_to": "-1w"})));
    assert_eq!(p.compare_range.unwrap().from.timestamp_micros(), day(2));
    let e = err(tq(json!({"compare": true, "compare_to": "2020-01-01"})));
    assert_eq!(e.attr.as_deref(), Some("compare_to"));
}

#[test]
fn test_accounts_global_properties_and_series_cohort() {
    let (sql, params) = one_sql(json!({
        "filter_test_accounts": true,
        "properties": [{"key": "$browser", "value": "Chrome"}],
        "events": [{"id": "$pageview", "properties": [{"type": "cohort", "key": "id", "value": 1}]}],
    }));
    assert!(sql.contains("insights.cohort_people"), "{sql}");
    assert!(sql.contains("ILIKE"), "{sql}");
    assert!(params.contains(&Param::Text("Chrome".into())));
}

#[test]
fn actions_and_all_events() {
    let p = ok(tq(
        json!({"events": [], "actions": [{"id": 3, "order": 0}]}),
    ));
    assert!(p.runs[0].sql.contains("(e.event = $2::text)"));
    assert_eq!(p.series[0].label, "Signed up");
    assert_eq!(p.series[0].action["id"], json!(3));
    assert_eq!(p.series[0].action["type"], json!("actions"));
    let p = ok(tq(json!({"events": [{"id": null}]})));
    assert_eq!(p.series[0].label, "All events");
    check_placeholders(&p.runs[0]);
    let e = err(tq(json!({"events": [], "actions": [{"id": 404}]})));
    assert_eq!(e.attr.as_deref(), Some("actions"));
}

#[test]
fn validation_errors() {
    let e = err(json!({"insight": "TRENDS", "date_from": "-7d"}));
    assert_eq!(
        (e.state.code(), e.attr.as_deref()),
        ("22023", Some("events"))
    );
    let e = err(tq(json!({"formula": "A+C"})));
    assert_eq!(
        (e.state.code(), e.attr.as_deref()),
        ("22023", Some("formula"))
    );
    for bad in ["A+", "(A", "A B", "AB", "A$", "1..2", ""] {
        assert!(parse_formula(bad, 2).is_err(), "{bad}");
    }
    let deep = format!("{}A{}", "(".repeat(100), ")".repeat(100));
    assert!(parse_formula(&deep, 1).is_err());
    assert!(parse_formula(&"-".repeat(10_000), 1).is_err());
    let e = err(tq(json!({"events": [{"id": "$pageview", "math": "sum"}]})));
    assert!(
        e.attr
            .as_deref()
            .unwrap_or_default()
            .ends_with("math_property"),
        "{e:?}"
    );
    let e = err(tq(json!({"interval": "day", "interval_count": 2})));
    assert_eq!(e.attr.as_deref(), Some("interval_count"));
    let e = err(json!({"insight": "FUNNELS", "events": [{"id": "a"}, {"id": "b"}]}));
    assert_eq!(e.attr.as_deref(), Some("insight"));
}

#[test]
fn params_never_contain_sql_and_values_never_reach_sql() {
    let evil = "x'); DROP TABLE insights.events; --";
    let p = ok(tq(json!({
        "events": [{"id": evil, "math": "sum", "math_property": evil,
                    "properties": [{"key": evil, "value": evil}]}],
        "properties": [{"key": evil, "value": [evil, "b"], "operator": "in"}],
        "breakdown": evil,
        "compare": true,
    })));
    for r in &p.runs {
        check_placeholders(r);
        assert!(!r.sql.contains("DROP TABLE"), "{}", r.sql);
        for prm in &r.params {
            let text = match prm {
                Param::Text(s) => vec![s.clone()],
                Param::TextArray(a) => a.clone(),
                _ => vec![],
            };
            for t in text {
                for fragment in ["SELECT", "insights.events", "e.\"timestamp\"", "$1::"] {
                    assert!(
                        !t.contains(fragment) || t == evil,
                        "SQL in a parameter: {t}"
                    );
                }
            }
        }
        assert!(r.params.contains(&Param::Text(evil.into())));
    }
}

// -----------------------------------------------------------------------------------------
// Rendering
// -----------------------------------------------------------------------------------------

#[test]
fn t1_total_zero_filled() {
    let p = ok(tq(json!({})));
    let out = render(&p, &[tq_rows("$pageview", 9, 19, ALL, false)]);
    let it = &items(&out)[0];
    assert_eq!(items(&out).len(), 1);
    assert_eq!(data(it), vec![1., 0., 1., 3., 1., 0., 2., 0., 1., 0., 1.]);
    assert_eq!(it["data"][3], json!(3), "counts are JSON integers");
    assert_eq!(it["count"], json!(10));
    assert_eq!(it["label"], json!("$pageview"));
    assert_eq!(it["days"][0], json!("2020-01-09"));
    assert_eq!(it["days"][10], json!("2020-01-19"));
    assert_eq!(it["labels"][0], json!("9-Jan-2020"));
    assert_eq!(it["action"]["id"], json!("$pageview"));
    assert_eq!(it["action"]["type"], json!("events"));
    assert_eq!(it["action"]["math"], json!("total"));
    assert_eq!(it["action"]["order"], json!(0));
    assert_eq!(it["filter"]["insight"], json!("TRENDS"));
    assert!(it.get("breakdown_value").is_none());
    assert!(it.get("compare").is_none());
    let urls = it["persons_urls"].as_array().unwrap();
    assert_eq!(urls.len(), 11);
    let u0 = urls[0]["url"].as_str().unwrap();
    assert!(u0.starts_with("/api/projects/7/persons/trends/?"), "{u0}");
    assert!(
        u0.contains("entity_id=%24pageview&entity_type=events&entity_math=total"),
        "{u0}"
    );
    assert!(
        u0.contains("date_from=2020-01-09T00%3A00%3A00Z&date_to=2020-01-09T23%3A59%3A59.999999Z"),
        "{u0}"
    );

    // No rows at all: one all-zero item.
    let out = render(&p, &[vec![]]);
    assert_eq!(data(&items(&out)[0]), vec![0.0; 11]);
    assert_eq!(items(&out)[0]["count"], json!(0));
    // Rows outside the buckets are ignored; duplicates add up.
    let out = render(
        &p,
        &[vec![
            row(1, None, 5.0),
            row(9, None, 1.0),
            row(9, None, 2.0),
        ]],
    );
    assert_eq!(items(&out)[0]["count"], json!(3));
}

#[test]
fn t3_two_series_and_custom_name() {
    let p = ok(tq(json!({"events": [
        {"id": "$pageview", "order": 0},
        {"id": "$pageleave", "order": 1, "custom_name": "Left"}]})));
    let out = render(
        &p,
        &[
            tq_rows("$pageview", 9, 19, ALL, false),
            tq_rows("$pageleave", 9, 19, ALL, false),
        ],
    );
    let counts: Vec<&Value> = items(&out).iter().map(|i| &i["count"]).collect();
    assert_eq!(counts, vec![&json!(10), &json!(6)]);
    assert_eq!(
        data(&items(&out)[1]),
        vec![0., 0., 1., 1., 3., 0., 0., 1., 0., 0., 0.]
    );
    assert_eq!(items(&out)[1]["label"], json!("Left"));
    assert_eq!(items(&out)[1]["action"]["custom_name"], json!("Left"));
}

#[test]
fn t11_cohort_filtered_series_counts() {
    let p = ok(tq(json!({"date_to": "2020-01-20"})));
    let out = render(&p, &[tq_rows("$pageview", 9, 20, &[1], false)]);
    assert_eq!(
        data(&items(&out)[0]),
        vec![0., 0., 1., 1., 1., 0., 1., 0., 1., 0., 1., 0.]
    );
    assert_eq!(items(&out)[0]["count"], json!(6));
}

#[test]
fn t31_cumulative() {
    let p = ok(tq(
        json!({"date_to": "2020-01-20", "display": "ActionsLineGraphCumulative"}),
    ));
    let out = render(&p, &[tq_rows("$pageview", 9, 20, ALL, false)]);
    assert_eq!(
        data(&items(&out)[0]),
        vec![1., 1., 2., 5., 6., 6., 8., 8., 9., 9., 10., 10.]
    );
    assert_eq!(
        items(&out)[0]["count"],
        json!(10),
        "cumulative count is the last value"
    );
}

#[test]
fn t35_smoothing() {
    let p = ok(tq(
        json!({"date_to": "2020-01-20", "smoothing_intervals": 7}),
    ));
    let out = render(&p, &[tq_rows("$pageview", 9, 20, ALL, false)]);
    assert_eq!(
        data(&items(&out)[0]),
        vec![1., 0., 0., 1., 1., 1., 1., 1., 1., 1., 0., 0.]
    );
    assert_eq!(items(&out)[0]["count"], json!(8));
}

#[test]
fn t29_property_values_render_as_given() {
    let p = ok(tq(
        json!({"date_to": "2020-01-20", "events": [{"id": "$pageview", "math": "avg", "math_property": "prop"}]}),
    ));
    let rows = vec![
        row(9, None, 20.0),
        row(11, None, 10.0),
        row(12, None, 20.0),
        row(15, None, 25.0),
        row(16, None, 12.5),
    ];
    let out = render(&p, &rows_vec(rows));
    let it = &items(&out)[0];
    assert_eq!(
        data(it),
        vec![20., 0., 10., 20., 0., 0., 25., 12.5, 0., 0., 0., 0.]
    );
    assert_eq!(it["data"][0], json!(20));
    assert_eq!(it["data"][7], json!(12.5));
    assert_eq!(it["count"], json!(87.5));
    assert_eq!(it["action"]["math_property"], json!("prop"));
}

fn rows_vec(r: Vec<Row>) -> Vec<Vec<Row>> {
    vec![r]
}

#[test]
fn t17_breakdown_order_and_ties() {
    let p = ok(tq(
        json!({"date_to": "2020-01-20", "breakdown": "$browser"}),
    ));
    let out = render(&p, &[tq_rows("$pageview", 9, 20, ALL, true)]);
    let got: Vec<(Value, Value)> = items(&out)
        .iter()
        .map(|i| (i["breakdown_value"].clone(), i["count"].clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (json!("Chrome"), json!(6)),
            (json!("Firefox"), json!(2)),
            (json!("Edge"), json!(1)),
            (json!("Safari"), json!(1)),
        ]
    );
    assert_eq!(
        items(&out)[0]["label"],
        json!("Chrome"),
        "one series: label is the value"
    );
    assert!(
        items(&out)[0]["persons_urls"][0]["url"]
            .as_str()
            .unwrap()
            .contains("breakdown_value=Chrome")
    );
}

#[test]
fn breakdown_labels_with_several_series() {
    let p = ok(tq(json!({"date_to": "2020-01-20", "breakdown": "$browser",
        "events": [{"id": "$pageview", "order": 0}, {"id": "$pageleave", "order": 1}]})));
    let out = render(
        &p,
        &[
            tq_rows("$pageview", 9, 20, ALL, true),
            tq_rows("$pageleave", 9, 20, ALL, true),
        ],
    );
    let labels: Vec<&str> = items(&out)
        .iter()
        .map(|i| i["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        vec![
            "$pageview - Chrome",
            "$pageview - Firefox",
            "$pageview - Edge",
            "$pageview - Safari",
            "$pageleave - Chrome",
            "$pageleave - Edge",
            "$pageleave - Firefox",
            "$pageleave - Safari",
        ]
    );
}

/// 30 breakdown values v00..v29 where v_i has i+1 events on 01-09, plus null values.
fn many_values() -> Vec<Row> {
    let mut r: Vec<Row> = (0..30)
        .map(|i| row(9, Some(&format!("v{i:02}")), f64::from(i + 1)))
        .collect();
    r.push(row(10, None, 2.0));
    r.push(row(10, Some(""), 1.0));
    r
}

#[test]
fn t32_breakdown_limit_and_other() {
    let p = ok(tq(json!({"breakdown": "k"})));
    let out = render(&p, &[many_values()]);
    let v = items(&out);
    assert_eq!(v.len(), 26, "25 values + Other");
    assert_eq!(v[0]["breakdown_value"], json!("v29"));
    assert_eq!(v[24]["breakdown_value"], json!("v05"));
    assert_eq!(v[25]["breakdown_value"], json!(BREAKDOWN_OTHER));
    // Other = v00..v04 (1+2+3+4+5) + the null value (3 events).
    assert_eq!(v[25]["count"], json!(18));
    assert_eq!(data(&v[25])[..2], [15.0, 3.0]);

    let p = ok(tq(json!({"breakdown": "k", "breakdown_limit": 10})));
    let out = render(&p, &[many_values()]);
    assert_eq!(items(&out).len(), 11);
    let p = ok(tq(
        json!({"breakdown": "k", "breakdown_limit": 10, "breakdown_hide_other_aggregation": true}),
    ));
    let out = render(&p, &[many_values()]);
    assert_eq!(items(&out).len(), 10);
    assert!(
        items(&out)
            .iter()
            .all(|i| i["breakdown_value"] != json!(BREAKDOWN_OTHER))
    );
    let p = ok(tq(json!({"breakdown": "k", "display": "WorldMap"})));
    assert_eq!(p.breakdown_limit, 250);
    let out = render(&p, &[many_values()]);
    assert_eq!(items(&out).len(), 31, "30 values + null, no Other");
    assert_eq!(items(&out)[30]["breakdown_value"], json!(BREAKDOWN_NULL));
}

#[test]
fn null_value_after_regular_values_before_other() {
    let p = ok(tq(json!({"breakdown": "k", "breakdown_limit": 2})));
    let rows = vec![
        row(9, None, 9.0),
        row(9, Some("a"), 5.0),
        row(9, Some("b"), 1.0),
        row(10, Some(""), 1.0),
    ];
    let out = render(&p, &[rows]);
    let got: Vec<(Value, Value)> = items(&out)
        .iter()
        .map(|i| (i["breakdown_value"].clone(), i["count"].clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (json!("a"), json!(5)),
            (json!(BREAKDOWN_NULL), json!(10)),
            (json!(BREAKDOWN_OTHER), json!(1)),
        ]
    );
    // All-zero values are dropped.
    let p = ok(tq(json!({"breakdown": "k"})));
    let out = render(&p, &[vec![row(9, Some("z"), 0.0), row(9, Some("a"), 1.0)]]);
    assert_eq!(items(&out).len(), 1);
    // With a breakdown and no data: no items.
    assert_eq!(render(&p, &[vec![]]), json!([]));
}

#[test]
fn multi_breakdown_values() {
    let p = ok(tq(
        json!({"breakdowns": [{"property": "$browser", "type": "event"}, {"property": "$os", "type": "event"}]}),
    ));
    assert_eq!(p.breakdown, BreakdownMode::Multi);
    let input = vec![
        row(9, Some(r#"["Chrome", "Mac"]"#), 2.0),
        row(9, Some(r#"["Chrome", null]"#), 1.0),
    ];
    let out = render(&p, &[input]);
    assert_eq!(items(&out)[0]["breakdown_value"], json!(["Chrome", "Mac"]));
    assert_eq!(items(&out)[0]["label"], json!("Chrome::Mac"));
    assert_eq!(
        items(&out)[1]["breakdown_value"],
        json!(["Chrome", BREAKDOWN_NULL])
    );
    let r = rows(&out, &ProjectTime::utc());
    assert_eq!(r[0].1.as_deref(), Some("Chrome::Mac"));
}

#[test]
fn t21_breakdown_with_compare() {
    let p = ok(tq(
        json!({"date_from": "2020-01-15", "date_to": "2020-01-20", "breakdown": "$browser", "compare": true}),
    ));
    let out = render(
        &p,
        &[
            tq_rows("$pageview", 15, 20, ALL, true),
            tq_rows("$pageview", 9, 14, ALL, true),
        ],
    );
    let got: Vec<(Value, Value, Value)> = items(&out)
        .iter()
        .map(|i| {
            (
                i["breakdown_value"].clone(),
                i["count"].clone(),
                i["compare_label"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (json!("Chrome"), json!(3), json!("current")),
            (json!("Safari"), json!(1), json!("current")),
            (json!("Chrome"), json!(3), json!("previous")),
            (json!("Firefox"), json!(2), json!("previous")),
            (json!("Edge"), json!(1), json!("previous")),
        ]
    );
    assert!(items(&out).iter().all(|i| i["compare"] == json!(true)));
    assert_eq!(items(&out)[0]["days"][0], json!("2020-01-15"));
    assert_eq!(
        items(&out)[2]["days"][0],
        json!("2020-01-09"),
        "previous items have their own days"
    );
    assert_eq!(items(&out)[2]["labels"][5], json!("14-Jan-2020"));
    assert_eq!(items(&out)[2]["data"].as_array().unwrap().len(), 6);
}

/// Rows for hand-given per-day values starting at `first`.
fn series_rows(first: u32, values: &[f64]) -> Vec<Row> {
    values
        .iter()
        .enumerate()
        .filter(|(_, v)| **v != 0.0)
        .map(|(i, v)| row(first + i as u32, None, *v))
        .collect()
}

#[test]
fn t5_formula_with_compare() {
    let p = ok(tq(json!({
        "events": [{"id": "sign up", "order": 0}, {"id": "$pageview", "order": 1}],
        "date_from": "2020-01-15", "formula": "A+B", "compare": true,
    })));
    let out = render(
        &p,
        &[
            series_rows(15, &[1., 1., 0., 0., 1.]),
            series_rows(10, &[0., 1., 2., 3., 0.]),
            series_rows(15, &[1., 1., 1., 0., 0.]),
            series_rows(10, &[0., 2., 3., 4., 0.]),
        ],
    );
    let v = items(&out);
    assert_eq!(v.len(), 2, "the formula's series are not returned");
    assert_eq!(data(&v[0]), vec![2., 2., 1., 0., 1.]);
    assert_eq!(v[0]["count"], json!(6));
    assert_eq!(v[0]["compare_label"], json!("current"));
    assert_eq!(v[0]["label"], json!("Formula (A+B)"));
    assert_eq!(v[0]["action"], Value::Null);
    assert_eq!(data(&v[1]), vec![0., 3., 5., 7., 0.]);
    assert_eq!(v[1]["count"], json!(15));
    assert_eq!(v[1]["compare_label"], json!("previous"));
    assert_eq!(v[1]["days"][0], json!("2020-01-10"));
}

#[test]
fn t7_formula_compare_bold_number() {
    let p = ok(tq(json!({
        "events": [{"id": "sign up", "order": 0}, {"id": "$pageview", "order": 1}],
        "date_from": "2020-01-15", "formula": "A+B", "compare": true, "display": "BoldNumber",
    })));
    assert!(p.runs.iter().all(|r| r.total_value));
    let tot = |v: f64| {
        vec![Row {
            bucket_us: day(15),
            breakdown: None,
            value: v,
        }]
    };
    let out = render(&p, &[tot(3.0), tot(10.0), tot(3.0), tot(5.0)]);
    let v = items(&out);
    assert_eq!(v[0]["aggregated_value"], json!(6));
    assert_eq!(v[1]["aggregated_value"], json!(15));
    for i in v {
        assert_eq!(i["count"], json!(0));
        assert_eq!(i["data"], Value::Null);
        assert_eq!(i["days"], json!([]));
    }
}

#[test]
fn t30_total_value_series_items() {
    let p = ok(tq(
        json!({"display": "ActionsTable", "breakdown": "$browser"}),
    ));
    let rows = vec![
        Row {
            bucket_us: day(9),
            breakdown: Some("Chrome".into()),
            value: 6.0,
        },
        Row {
            bucket_us: day(9),
            breakdown: Some("Firefox".into()),
            value: 2.0,
        },
        Row {
            bucket_us: day(9),
            breakdown: None,
            value: 0.0,
        },
    ];
    let out = render(&p, &[rows]);
    let v = items(&out);
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["aggregated_value"], json!(6));
    assert_eq!(v[0]["data"], json!([]));
    assert_eq!(v[0]["labels"], json!([]));
    assert_eq!(v[0]["count"], json!(0));
    assert_eq!(v[1]["breakdown_value"], json!("Firefox"));
    let r = rows_of(&out);
    assert_eq!(
        r,
        vec![
            ("Chrome".into(), Some("Chrome".into()), None, 6.0),
            ("Firefox".into(), Some("Firefox".into()), None, 2.0)
        ]
    );
}

fn rows_of(v: &Value) -> Vec<(String, Option<String>, Option<i64>, f64)> {
    rows(v, &ProjectTime::utc())
}

#[test]
fn t13_cohort_breakdown_formulas() {
    let q = |formula: &str| {
        ok(tq(json!({
            "events": [{"id": "$pageview", "order": 0}, {"id": "$pageleave", "order": 1}],
            "date_to": "2020-01-20", "breakdown": [1, "all"], "breakdown_type": "cohort",
            "formula": formula,
        })))
    };
    let outputs = vec![
        tq_rows("$pageview", 9, 20, &[1], false),
        tq_rows("$pageleave", 9, 20, &[1], false),
        tq_rows("$pageview", 9, 20, ALL, false),
        tq_rows("$pageleave", 9, 20, ALL, false),
    ];
    let find = |out: &Value, bd: Value| -> Value {
        items(out)
            .iter()
            .find(|i| i["breakdown_value"] == bd)
            .cloned()
            .unwrap()
    };
    let out = render(&q("A+B"), &outputs);
    assert_eq!(items(&out).len(), 2);
    assert_eq!(find(&out, json!(1))["count"], json!(9));
    let all = find(&out, json!("all"));
    assert_eq!(all["count"], json!(16));
    assert_eq!(
        data(&all),
        vec![1., 0., 2., 4., 4., 0., 2., 1., 1., 0., 1., 0.]
    );
    assert_eq!(
        items(&out)[0]["breakdown_value"],
        json!("all"),
        "sorted by total desc"
    );
    let out = render(&q("B+1"), &outputs);
    let c1 = find(&out, json!(1));
    assert_eq!(c1["count"], json!(15));
    assert_eq!(
        data(&c1),
        vec![1., 1., 2., 2., 2., 1., 1., 1., 1., 1., 1., 1.]
    );
    assert_eq!(find(&out, json!("all"))["count"], json!(18));

    // Without a formula: one item per cohort and series, labelled by cohort name.
    let p = ok(tq(
        json!({"date_to": "2020-01-20", "breakdown": [1, "all"], "breakdown_type": "cohort"}),
    ));
    let out = render(
        &p,
        &[
            tq_rows("$pageview", 9, 20, &[1], false),
            tq_rows("$pageview", 9, 20, ALL, false),
        ],
    );
    let got: Vec<(Value, Value, Value)> = items(&out)
        .iter()
        .map(|i| {
            (
                i["label"].clone(),
                i["breakdown_value"].clone(),
                i["count"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (json!("c1"), json!(1), json!(6)),
            (json!("all users"), json!("all"), json!(10)),
        ]
    );
}

#[test]
fn t15_formula_breakdown_without_data() {
    let p = ok(tq(json!({
        "events": [{"id": "$pageview", "order": 0}, {"id": "$pageleave", "order": 1}],
        "breakdown": "$browser", "formula": "A+B",
    })));
    assert_eq!(render(&p, &[vec![], vec![]]), json!([]));
    // A value missing from one series counts as zeros.
    let out = render(
        &p,
        &[
            vec![row(9, Some("Chrome"), 2.0)],
            vec![row(10, Some("Safari"), 3.0)],
        ],
    );
    let got: Vec<(Value, Value)> = items(&out)
        .iter()
        .map(|i| (i["breakdown_value"].clone(), i["count"].clone()))
        .collect();
    assert_eq!(
        got,
        vec![(json!("Safari"), json!(3)), (json!("Chrome"), json!(2))]
    );
}

#[test]
fn t33_division_and_division_by_zero() {
    let p = ok(tq(json!({
        "events": [{"id": "$pageview", "order": 0}, {"id": "$pageleave", "order": 1}],
        "date_from": "2020-01-09", "date_to": "2020-01-09", "formula": "B/A",
    })));
    let out = render(&p, &[vec![row(9, None, 3.0)], vec![row(9, None, 1.0)]]);
    assert_eq!(items(&out)[0]["data"], json!([0.3333333333333333]));
    let out = render(&p, &[vec![], vec![row(9, None, 1.0)]]);
    assert_eq!(items(&out)[0]["data"], json!([0]), "x/0 is 0");
}

#[test]
fn formulas_arithmetic_and_names() {
    let e = parse_formula("(a + 2) * -b / 4 - 1", 2).unwrap();
    assert_eq!(eval(&e, &[2.0, 3.0]), (2.0 + 2.0) * -3.0 / 4.0 - 1.0);
    assert_eq!(
        eval(&parse_formula("A/(B-B)", 2).unwrap(), &[1.0, 5.0]),
        0.0
    );
    assert_eq!(eval(&parse_formula(".5*A", 1).unwrap(), &[4.0]), 2.0);
    let p = ok(tq(json!({
        "events": [{"id": "$pageview", "order": 0}, {"id": "$pageleave", "order": 1}],
        "formula_nodes": [{"formula": "A-B", "custom_name": "Net"}, {"formula": "A*2"}],
    })));
    let out = render(&p, &[vec![row(9, None, 3.0)], vec![row(9, None, 1.0)]]);
    let v = items(&out);
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["label"], json!("Net"));
    assert_eq!(v[0]["count"], json!(2));
    assert_eq!(v[1]["label"], json!("Formula (A*2)"));
    assert_eq!(v[1]["count"], json!(6));
}

#[test]
fn hour_interval_and_timezone_buckets() {
    let mut pr = project();
    pr.pt = ProjectTime::new("US/Pacific", 0).unwrap();
    pr.timezone = "US/Pacific".into();
    let q = parse_query(&tq(
        json!({"interval": "hour", "date_from": "2020-01-09", "date_to": "2020-01-09 02:00:00"}),
    ))
    .unwrap();
    let p = plan(
        &q,
        &pr,
        &Lookups {
            cohort: &cohort,
            action: &action,
        },
        now(),
        None,
    )
    .unwrap();
    assert!(
        p.runs[0]
            .sql
            .contains("date_trunc('hour', e.\"timestamp\", $5::text)"),
        "{}",
        p.runs[0].sql
    );
    assert!(p.runs[0].params.contains(&Param::Text("US/Pacific".into())));
    let b1 = Utc
        .with_ymd_and_hms(2020, 1, 9, 9, 0, 0)
        .unwrap()
        .timestamp_micros();
    let out = render(
        &p,
        &[vec![Row {
            bucket_us: b1,
            breakdown: None,
            value: 4.0,
        }]],
    );
    let it = &items(&out)[0];
    assert_eq!(data(it), vec![0., 4., 0.]);
    assert_eq!(it["days"][1], json!("2020-01-09 01:00:00"));
    assert_eq!(it["labels"][1], json!("9-Jan 01:00"));
    let r = rows(&out, &p.pt);
    assert_eq!(r[1], ("$pageview".to_string(), None, Some(b1), 4.0));
}

#[test]
fn rows_flatten_items() {
    let p = ok(tq(
        json!({"breakdown": "$browser", "date_to": "2020-01-10"}),
    ));
    let out = render(
        &p,
        &[vec![
            row(9, Some("Chrome"), 2.0),
            row(10, Some("Chrome"), 1.0),
        ]],
    );
    assert_eq!(
        rows(&out, &ProjectTime::utc()),
        vec![
            ("Chrome".into(), Some("Chrome".into()), Some(day(9)), 2.0),
            ("Chrome".into(), Some("Chrome".into()), Some(day(10)), 1.0),
        ]
    );
    // Formula items carry their buckets too.
    let p = ok(tq(json!({"date_to": "2020-01-10", "formula": "A*3"})));
    let out = render(&p, &[vec![row(10, None, 1.0)]]);
    assert_eq!(
        rows(&out, &ProjectTime::utc())[1],
        ("Formula (A*3)".into(), None, Some(day(10)), 3.0)
    );
    assert!(rows(&json!({"not": "a list"}), &ProjectTime::utc()).is_empty());
}

#[test]
fn programmatic_queries_do_not_panic() {
    let mut q = parse_query(&tq(json!({"breakdown": "$browser"}))).unwrap();
    if let Some(b) = q.breakdown.as_mut() {
        b.values.clear();
    }
    let lookups = Lookups {
        cohort: &cohort,
        action: &action,
    };
    let p = plan(&q, &project(), &lookups, now(), None).unwrap();
    assert_eq!(p.breakdown, BreakdownMode::None);
    assert!(p.runs[0].sql.contains("NULL::text AS breakdown"));
    q.series[0].math = Some("unique_group".into());
    let e = plan(&q, &project(), &lookups, now(), None).unwrap_err();
    assert_eq!(e.attr.as_deref(), Some("events__0__math_group_type_index"));
    q.series[0].math = Some("nonsense".into());
    let e = plan(&q, &project(), &lookups, now(), None).unwrap_err();
    assert_eq!(e.attr.as_deref(), Some("events__0__math"));
}

#[test]
fn split_call_respects_quotes() {
    assert_eq!(split_call("sum(x)"), Some(("sum", "x")));
    assert_eq!(
        split_call("count(if(a = ')', 1, 0))"),
        Some(("count", "if(a = ')', 1, 0)"))
    );
    assert_eq!(split_call("sum(x) + sum(y)"), None);
    assert_eq!(split_call("sum(x"), None);
    assert_eq!(split_call("(x)"), None);
}

#[test]
fn url_codec_round_trips() {
    let s = "a b/ü?&=%";
    assert_eq!(url_decode(&url_encode(s)), s);
    assert_eq!(url_decode("%zz%4"), "%zz%4");
}

// -----------------------------------------------------------------------------------------
// Property: planning and rendering never panic
// -----------------------------------------------------------------------------------------

fn entity() -> impl Strategy<Value = Value> {
    let math = prop::sample::select(vec![
        "total",
        "dau",
        "weekly_active",
        "monthly_active",
        "unique_group",
        "unique_session",
        "first_time_for_user",
        "first_time_for_user_with_filters",
        "sum",
        "avg",
        "p99",
        "median",
        "max_count_per_actor",
        "p90_count_per_actor",
        "hogql",
        "bogus",
    ]);
    let hogql = prop::sample::select(vec![
        "sum(properties.prop)",
        "count()",
        "count(distinct person_id)",
        "avg(",
        "x",
        "max(toFloat(properties.a) / 0)",
        "uniq(event)",
    ]);
    (
        prop::option::of("[a-z$ ']{0,6}"),
        math,
        prop::option::of("[a-z$]{1,5}"),
        prop::option::of(0u8..6),
        hogql,
        any::<bool>(),
    )
        .prop_map(|(id, math, mp, g, h, props)| {
            let mut e = json!({"id": id, "math": math, "math_property": mp,
                "math_group_type_index": g, "math_hogql": h});
            if props {
                e["properties"] = json!([{"key": "$browser", "value": "Chrome"}]);
            }
            e
        })
}

fn trends_query() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(entity(), 0..4),
        prop::sample::select(vec![
            "ActionsLineGraph",
            "ActionsLineGraphCumulative",
            "BoldNumber",
            "ActionsPie",
            "ActionsTable",
            "WorldMap",
            "ActionsBar",
        ]),
        prop::sample::select(vec!["minute", "hour", "day", "week", "month", "year"]),
        prop::sample::select(vec![
            "-7d",
            "-1h",
            "2020-01-01",
            "-30d",
            "all",
            "-1mStart",
            "x",
        ]),
        prop::option::of(prop::sample::select(vec![
            json!("$browser"),
            json!([1, "all"]),
            json!([2]),
            json!("upper(properties.x)"),
        ])),
        prop::option::of(prop::sample::select(vec![
            "event", "cohort", "hogql", "person", "session",
        ])),
        (
            prop::option::of(1u32..5),
            prop::option::of(1u32..30),
            any::<bool>(),
        ),
        (
            any::<bool>(),
            prop::option::of(prop::sample::select(vec!["-1w", "-2d", "-1m", "z"])),
        ),
        prop::option::of("[A-D0-9+*/() -]{0,10}"),
        1u32..9,
    )
        .prop_map(
            |(
                events,
                display,
                interval,
                from,
                bd,
                bd_type,
                (bins, limit, hide),
                (cmp, cmp_to),
                formula,
                smooth,
            )| {
                json!({
                    "insight": "TRENDS", "events": events, "display": display,
                    "interval": interval, "date_from": from, "breakdown": bd,
                    "breakdown_type": bd_type, "breakdown_histogram_bin_count": bins,
                    "breakdown_limit": limit, "breakdown_hide_other_aggregation": hide,
                    "compare": cmp, "compare_to": cmp_to, "formula": formula,
                    "smoothing_intervals": smooth,
                })
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn plan_and_render_never_panic(
        v in trends_query(),
        vals in prop::collection::vec((0i64..40, prop::option::of("[a-c]{0,2}"), -5.0f64..50.0), 0..20),
    ) {
        let Ok(q) = parse_query(&v) else { return Ok(()) };
        let lookups = Lookups { cohort: &cohort, action: &action };
        let Ok(p) = plan(&q, &project(), &lookups, now(), Some(now() - TimeDelta::days(3))) else {
            return Ok(());
        };
        for r in &p.runs {
            check_placeholders(r);
        }
        let outputs: Vec<Vec<Row>> = p
            .runs
            .iter()
            .map(|_| {
                vals.iter()
                    .map(|(h, bd, v)| Row {
                        bucket_us: p.range.from.timestamp_micros() + h * 3_600_000_000,
                        breakdown: bd.clone(),
                        value: *v,
                    })
                    .collect()
            })
            .collect();
        let out = render(&p, &outputs);
        prop_assert!(out.is_array());
        let _ = rows(&out, &ProjectTime::utc());
    }

    #[test]
    fn formulas_never_panic(s in "[A-Ca-c0-9.+*/() -]{0,30}") {
        if let Ok(e) = parse_formula(&s, 3) {
            prop_assert!(eval(&e, &[1.0, 0.0, -2.0]).is_finite());
        }
    }
}
