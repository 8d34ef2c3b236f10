use super::*;
use crate::model::parse_query_as;

fn project(tz: &str) -> Project {
    Project {
        id: 7,
        pt: ProjectTime::new(tz, 0).unwrap_or_else(|e| panic!("{tz}: {e}")),
        timezone: tz.to_string(),
        test_account_filters: json!([]),
        rollups: false,
        materialized: vec![],
    }
}

fn no_cohort(_: i64) -> Option<(bool, Value, String)> {
    None
}

fn action(id: i64) -> Option<(Value, String)> {
    (id == 3).then(|| (json!([{"event": "$pageview"}]), "Viewed".to_string()))
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2020-01-20T12:00:00Z")
        .map(|d| d.to_utc())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn plan_of(q: Value) -> Result<StickinessPlan> {
    let q = parse_query_as(&q, InsightKind::Trends)?;
    let lookups = Lookups {
        cohort: &no_cohort,
        action: &action,
    };
    plan(&q, &project("UTC"), &lookups, now(), None)
}

fn ok(q: Value) -> StickinessPlan {
    plan_of(q).unwrap_or_else(|e| panic!("{e:?}"))
}

fn legacy(extra: Value) -> Value {
    let mut q = json!({"insight": "STICKINESS", "events": [{"id": "$pageview"}],
                       "date_from": "2020-01-11", "date_to": "2020-01-20"});
    for (k, v) in extra.as_object().into_iter().flatten() {
        q[k] = v.clone();
    }
    q
}

#[test]
fn one_run_per_series_and_period() {
    let p = ok(legacy(
        json!({"events": [{"id": "a"}, {"id": "b"}], "compare": true}),
    ));
    let shape: Vec<_> = p
        .runs
        .iter()
        .map(|r| (r.series_index, r.compare, r.intervals))
        .collect();
    assert_eq!(
        shape,
        vec![(0, false, 10), (0, true, 10), (1, false, 10), (1, true, 10)]
    );
}

#[test]
fn shown_as_selects_stickiness() {
    let p = ok(
        json!({"shown_as": "Stickiness", "events": [{"id": "$pageview"}],
                      "date_from": "2020-01-11", "date_to": "2020-01-20"}),
    );
    assert_eq!(p.runs.len(), 1);
}

#[test]
fn bucket_counts_follow_the_interval() {
    // S3: both end hours count.
    let p = ok(legacy(
        json!({"interval": "hour", "date_from": "2020-01-18T00:00:00Z",
                             "date_to": "2020-01-20T12:00:00Z"}),
    ));
    assert_eq!(p.runs[0].intervals, 61);
    // S15: partial weeks at both ends are whole buckets (Sunday weeks).
    let p = ok(legacy(
        json!({"interval": "week", "date_from": "2020-01-01", "date_to": "2020-02-15"}),
    ));
    assert_eq!(p.runs[0].intervals, 7);
    // S5: intervalCount groups buckets, rounding up.
    let p = ok(
        json!({"kind": "StickinessQuery", "series": [{"kind": "EventsNode", "event": "$pageview"}],
                      "dateRange": {"date_from": "2020-01-11", "date_to": "2020-01-20"}, "intervalCount": 2}),
    );
    assert_eq!(p.runs[0].intervals, 5);
    assert!(p.runs[0].masks, "{}", p.runs[0].sql);
    // minute counts hours.
    let p = ok(legacy(
        json!({"interval": "minute", "date_from": "2020-01-20T10:00:00Z",
                             "date_to": "2020-01-20T11:59:00Z"}),
    ));
    assert_eq!((p.interval, p.runs[0].intervals), (Interval::Hour, 2));
}

#[test]
fn criteria_become_a_having_clause() {
    let p = ok(
        json!({"kind": "StickinessQuery", "series": [{"kind": "EventsNode", "event": "$pageview"}],
                      "dateRange": {"date_from": "2020-01-11", "date_to": "2020-01-20"},
                      "stickinessFilter": {"stickinessCriteria": {"operator": "lte", "value": 3}}}),
    );
    assert!(
        p.runs[0].sql.contains("HAVING count(*) <="),
        "{}",
        p.runs[0].sql
    );
    assert!(p.runs[0].params.contains(&Param::Int(3)));
}

#[test]
fn values_are_parameters() {
    let p = ok(legacy(json!({"events": [{"id": "x'; DROP TABLE y; --"}]})));
    assert!(!p.runs[0].sql.contains("DROP"));
    assert!(
        p.runs[0]
            .params
            .contains(&Param::Text("x'; DROP TABLE y; --".into()))
    );
}

#[test]
fn groups_and_bad_maths() {
    let p = ok(legacy(
        json!({"events": [{"id": "a", "math": "unique_group", "math_group_type_index": 1}]}),
    ));
    assert!(p.runs[0].sql.contains("NULLIF(e.group_1, '') IS NOT NULL"));
    // HogQL actors: the expression's text, NULL being no actor.
    let p = ok(
        json!({"kind": "StickinessQuery", "dateRange": {"date_from": "2020-01-11"},
                      "series": [{"kind": "EventsNode", "event": "a", "math": "hogql",
                                  "math_hogql": "properties.$session_id"}]}),
    );
    assert!(
        !p.runs[0].masks && p.runs[0].sql.contains("IS NOT NULL"),
        "{}",
        p.runs[0].sql
    );
    let e = plan_of(json!({"kind": "StickinessQuery", "dateRange": {"date_from": "2020-01-11"},
                           "series": [{"kind": "EventsNode", "event": "a", "math": "hogql", "math_hogql": "nope("}]}))
    .map(|_| ())
    .unwrap_err();
    assert_eq!(e.attr.as_deref(), Some("events__0__math_hogql"));
    let e = plan_of(legacy(json!({"events": []})))
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e.attr.as_deref(), Some("events"));
}

fn rendered(q: Value, rows: Vec<Vec<(i64, i64)>>) -> Value {
    render(&ok(q), &rows)
}

#[test]
fn render_s1() {
    let r = rendered(legacy(json!({})), vec![vec![(5, 1), (9, 1)]]);
    let item = &r[0];
    assert_eq!(item["data"], json!([0, 0, 0, 0, 1, 0, 0, 0, 1, 0]));
    assert_eq!(item["count"], json!(2));
    assert_eq!(item["label"], json!("$pageview"));
    assert_eq!(item["days"], json!([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    assert_eq!(item["labels"][0], json!("1 day"));
    assert_eq!(item["labels"][9], json!("10 days"));
    assert_eq!(item["action"]["id"], json!("$pageview"));
    assert!(item.get("compare").is_none());
}

#[test]
fn render_cumulative_is_suffix_sums() {
    let q = json!({"kind": "StickinessQuery", "series": [{"kind": "EventsNode", "event": "$pageview"}],
                   "dateRange": {"date_from": "2020-01-11", "date_to": "2020-01-20"}, "interval": "week",
                   "stickinessFilter": {"computedAs": "cumulative"}});
    let r = rendered(q, vec![vec![(1, 4), (2, 1)]]);
    // Sunday weeks of 01-05, 01-12 and 01-19.
    assert_eq!(r[0]["data"], json!([5, 1, 0]));
    assert_eq!(r[0]["count"], json!(5));
    assert_eq!(
        r[0]["labels"],
        json!(["1 week or more", "2 weeks or more", "3 weeks or more"])
    );
}

#[test]
fn render_compare_labels_and_out_of_range_rows() {
    let r = rendered(
        legacy(json!({"compare": true})),
        vec![vec![(2, 3), (11, 9), (0, 4)], vec![]],
    );
    assert_eq!(r[0]["compare_label"], json!("current"));
    assert_eq!(r[1]["compare_label"], json!("previous"));
    assert_eq!(r[0]["count"], json!(3));
    assert_eq!(r[1]["data"], json!([0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    let typed = rows(&r);
    assert_eq!(typed.len(), 20);
    assert_eq!(
        typed[1],
        ("$pageview".to_string(), Some("current".to_string()), 2, 3.0)
    );
}

#[test]
fn actions_are_labelled_by_name() {
    let r = rendered(
        json!({"insight": "STICKINESS", "actions": [{"id": 3}], "date_from": "2020-01-19",
                            "date_to": "2020-01-20"}),
        vec![vec![]],
    );
    assert_eq!(r[0]["label"], json!("Viewed"));
    assert_eq!(r[0]["action"]["type"], json!("actions"));
}

#[test]
fn actors_plan_selects_one_data_point() {
    let q =
        parse_query_as(&legacy(json!({})), InsightKind::Trends).unwrap_or_else(|e| panic!("{e:?}"));
    let lookups = Lookups {
        cohort: &no_cohort,
        action: &action,
    };
    let a = plan_actors(&q, &project("UTC"), &lookups, 0, 3, now(), None)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(a.sql.contains("WHERE s.n = "), "{}", a.sql);
    let e = plan_actors(&q, &project("UTC"), &lookups, 1, 3, now(), None)
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e.attr.as_deref(), Some("entity_id"));
}

#[test]
fn criteria_count_the_events_of_a_whole_interval() {
    // With intervalCount 2 the criterion applies to the group of two buckets, not to each one.
    let p = ok(
        json!({"kind": "StickinessQuery", "series": [{"kind": "EventsNode", "event": "$pageview"}],
                      "dateRange": {"date_from": "2020-01-11", "date_to": "2020-01-20"}, "intervalCount": 2,
                      "stickinessFilter": {"stickinessCriteria": {"operator": "gte", "value": 3}}}),
    );
    assert!(
        p.runs[0].sql.contains("HAVING sum(ab.events) >="),
        "{}",
        p.runs[0].sql
    );
    assert!(
        !p.runs[0].sql.contains("HAVING count(*)"),
        "{}",
        p.runs[0].sql
    );
}

#[test]
fn masks_serve_the_common_case_and_sql_the_rest() {
    let p = ok(legacy(json!({})));
    assert!(p.runs[0].masks);
    assert!(
        p.runs[0].sql.contains("insights._actor_periods("),
        "{}",
        p.runs[0].sql
    );
    assert!(p.runs[0].sql.contains("::date - $"), "{}", p.runs[0].sql);
    // More than 63 buckets, a criterion, or group actors: the (actor, bucket) statement.
    let p = ok(legacy(json!({"date_from": "2019-10-01"})));
    assert_eq!((p.runs[0].masks, p.runs[0].intervals), (false, 112));
    let p = ok(
        json!({"kind": "StickinessQuery", "series": [{"kind": "EventsNode", "event": "a"}],
                      "dateRange": {"date_from": "2020-01-11", "date_to": "2020-01-20"},
                      "stickinessFilter": {"stickinessCriteria": {"operator": "gte", "value": 2}}}),
    );
    assert!(!p.runs[0].masks);
    let p = ok(legacy(
        json!({"events": [{"id": "a", "math": "unique_group", "math_group_type_index": 0}]}),
    ));
    assert!(!p.runs[0].masks);
}

#[test]
fn histogram_of_masks_counts_intervals() {
    let mut p = ok(legacy(json!({})));
    let run = p.runs.remove(0);
    // S1: p1 on days 0..8 (9 days), p2 on days 0, 2, 4, 6, 8 (5 days).
    let masks = [(0, 0b1_1111_1111, 1), (0, 0b1_0101_0101, 1), (0, 0b1, 3)];
    assert_eq!(
        histogram_of_masks(&run, &masks),
        vec![(1, 3), (5, 1), (9, 1)]
    );
    // S5: intervalCount 2 over 10 days groups (9,8) (7,6) … (1,0) from the end.
    let q = json!({"kind": "StickinessQuery", "series": [{"kind": "EventsNode", "event": "$pageview"}],
                   "dateRange": {"date_from": "2020-01-11", "date_to": "2020-01-20"}, "intervalCount": 2});
    let run = ok(q).runs.remove(0);
    let masks = [(0, 0b1_1111_1111, 1), (0, 0b1_0101, 1)];
    assert_eq!(histogram_of_masks(&run, &masks), vec![(3, 1), (5, 1)]);
}
