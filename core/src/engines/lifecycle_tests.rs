use super::*;
use crate::model::parse_query_as;

fn project(tz: &str, week_start: u8) -> Project {
    Project {
        id: 7,
        pt: ProjectTime::new(tz, week_start).unwrap_or_else(|e| panic!("{tz}: {e}")),
        timezone: tz.to_string(),
        test_account_filters: json!([]),
        rollups: false,
        materialized: vec![],
    }
}

fn no_cohort(_: i64) -> Option<(bool, Value, String)> {
    None
}

fn no_action(_: i64) -> Option<(Value, String)> {
    None
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2020-03-20T12:00:00Z")
        .map(|d| d.to_utc())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn plan_in(q: Value, tz: &str, week_start: u8) -> Result<LifecyclePlan> {
    let q = parse_query_as(&q, InsightKind::Trends)?;
    let lookups = Lookups {
        cohort: &no_cohort,
        action: &no_action,
    };
    plan(&q, &project(tz, week_start), &lookups, now(), None)
}

fn ok(q: Value) -> LifecyclePlan {
    plan_in(q, "UTC", 0).unwrap_or_else(|e| panic!("{e:?}"))
}

fn l1() -> Value {
    json!({"insight": "LIFECYCLE", "events": [{"id": "$pageview", "type": "events", "order": 0}],
           "date_from": "2020-01-12T00:00:00Z", "date_to": "2020-01-19T00:00:00Z", "interval": "day"})
}

#[test]
fn window_has_a_period_on_each_side() {
    let p = ok(l1());
    assert_eq!(p.buckets.len(), 8);
    assert!(
        p.masks && p.sql.contains("insights._actor_periods("),
        "{}",
        p.sql
    );
    // The events are read from the period before (01-11).
    assert!(
        p.params.contains(&Param::timestamp(
            DateTime::parse_from_rfc3339("2020-01-11T00:00:00Z")
                .map(|d| d.to_utc())
                .unwrap_or_default()
        ))
    );
    // Group actors take the windowed statement: before (01-11), the 8 output days, after
    // (01-20): 10 bucket starts bound as text.
    let mut q = l1();
    q["aggregation_group_type_index"] = json!(0);
    let p = ok(q);
    assert!(!p.masks);
    let arr = p.params.iter().find_map(|x| match x {
        Param::TextArray(v) => Some(v.clone()),
        _ => None,
    });
    let arr = arr.unwrap_or_default();
    assert_eq!(arr.len(), 10);
    assert!(arr[0].starts_with("2020-01-11T00:00:00"), "{arr:?}");
    assert!(arr[9].starts_with("2020-01-20T00:00:00"), "{arr:?}");
    // The events are read up to the end of the period after.
    assert!(
        p.params.contains(&Param::timestamp(
            DateTime::parse_from_rfc3339("2020-01-21T00:00:00Z")
                .map(|d| d.to_utc())
                .unwrap_or_default()
        ))
    );
}

#[test]
fn monday_weeks_and_local_days() {
    // L11: 2020-02-05..2020-03-09 with Monday weeks starts on Monday 02-03.
    let q = json!({"insight": "LIFECYCLE", "events": [{"id": "$pageview"}], "interval": "week",
                   "date_from": "2020-02-05", "date_to": "2020-03-09"});
    let p = plan_in(q, "UTC", 1).unwrap_or_else(|e| panic!("{e:?}"));
    let r = render(&p, &[]);
    assert_eq!(
        r[0]["days"],
        json!([
            "2020-02-03",
            "2020-02-10",
            "2020-02-17",
            "2020-02-24",
            "2020-03-02",
            "2020-03-09"
        ])
    );
    // L17: Z bounds become local days in US/Pacific.
    let q = json!({"insight": "LIFECYCLE", "events": [{"id": "$pageview"}],
                   "date_from": "2025-03-09T00:00:00Z", "date_to": "2025-03-12T00:00:00Z"});
    let p = plan_in(q, "US/Pacific", 0).unwrap_or_else(|e| panic!("{e:?}"));
    let r = render(&p, &[]);
    assert_eq!(
        r[0]["days"],
        json!(["2025-03-08", "2025-03-09", "2025-03-10", "2025-03-11"])
    );
}

#[test]
fn render_l1() {
    let p = ok(l1());
    // (period, status, actors); period 2 = 01-12.
    let data_rows: Vec<(i64, String, i64)> = vec![
        (2, "new".into(), 1),
        (5, "new".into(), 1),
        (2, "returning".into(), 1),
        (3, "returning".into(), 1),
        (2, "resurrecting".into(), 1),
        (5, "resurrecting".into(), 1),
        (7, "resurrecting".into(), 1),
        (9, "resurrecting".into(), 1),
        (3, "dormant".into(), 2),
        (4, "dormant".into(), 1),
        (6, "dormant".into(), 2),
        (8, "dormant".into(), 1),
        (10, "dormant".into(), 1),
        (1, "dormant".into(), 5),
    ];
    let r = render(&p, &data_rows);
    let statuses: Vec<_> = r
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| i["status"].clone())
        .collect();
    assert_eq!(
        statuses,
        vec![
            json!("new"),
            json!("returning"),
            json!("resurrecting"),
            json!("dormant")
        ]
    );
    assert_eq!(
        r[0]["data"],
        json!([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    );
    assert_eq!(
        r[1]["data"],
        json!([1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    );
    assert_eq!(
        r[2]["data"],
        json!([1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    );
    assert_eq!(
        r[3]["data"],
        json!([0.0, -2.0, -1.0, 0.0, -2.0, 0.0, -1.0, 0.0])
    );
    assert_eq!(r[3]["count"], json!(-6.0));
    assert_eq!(r[0]["label"], json!("$pageview - new"));
    assert_eq!(r[0]["labels"][0], json!("12-Jan-2020"));
    assert_eq!(r[0]["days"][7], json!("2020-01-19"));
    assert_eq!(r[0]["action"]["math"], json!("total"));
    let typed = rows(&p, &r);
    assert_eq!(typed.len(), 32);
    assert_eq!(typed[24].0, "dormant");
}

#[test]
fn all_events_and_hours() {
    let q = json!({"insight": "LIFECYCLE", "events": [{"id": null}], "interval": "hour",
                   "date_from": "2020-01-12T10:00:00Z", "date_to": "2020-01-12T12:00:00Z"});
    let p = ok(q);
    let r = render(&p, &[]);
    assert_eq!(r[1]["label"], json!("All events - returning"));
    assert_eq!(
        r[0]["days"],
        json!([
            "2020-01-12 10:00:00",
            "2020-01-12 11:00:00",
            "2020-01-12 12:00:00"
        ])
    );
}

#[test]
fn one_series_only_in_nodes() {
    let q = json!({"kind": "LifecycleQuery", "series": [{"kind": "EventsNode", "event": "a"}, {"kind": "EventsNode", "event": "b"}]});
    let e = plan_in(q, "UTC", 0).map(|_| ()).unwrap_err();
    assert_eq!(e.attr.as_deref(), Some("series"));
    // The legacy filter uses its first series.
    let q = json!({"insight": "LIFECYCLE", "events": [{"id": "a"}, {"id": "b"}], "date_from": "2020-01-12"});
    assert!(ok(q).sql.contains("$"));
}

#[test]
fn actors_of_one_status_and_period() {
    let q = parse_query_as(&l1(), InsightKind::Trends).unwrap_or_else(|e| panic!("{e:?}"));
    let lookups = Lookups {
        cohort: &no_cohort,
        action: &no_action,
    };
    let target = DateTime::parse_from_rfc3339("2020-01-13T15:00:00Z")
        .map(|d| d.to_utc())
        .unwrap_or_default();
    let a = plan_actors(
        &q,
        &project("UTC", 0),
        &lookups,
        target,
        "dormant",
        now(),
        None,
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(a.params.contains(&Param::Int(3)), "{:?}", a.params);
    assert!(a.params.contains(&Param::Text("dormant".into())));
    let e = plan_actors(
        &q,
        &project("UTC", 0),
        &lookups,
        target,
        "gone",
        now(),
        None,
    )
    .map(|_| ())
    .unwrap_err();
    assert_eq!(e.attr.as_deref(), Some("lifecycle_type"));
}

#[test]
fn rows_of_masks_give_l1() {
    // LF over the window 01-11 … 01-20 (bit 0 = 01-11): p1 11 12 13 15 17 19 (created 01-11),
    // p2 12 (created 01-09, before the window), p3 12 (created 01-12), p4 15 (created 01-15).
    let day = |d: i64| d - 11;
    let mask = |days: &[i64]| days.iter().fold(0i64, |m, d| m | 1 << day(*d));
    let masks = [
        (-1000, mask(&[11, 12, 13, 15, 17, 19]), 1),
        (day(12) as i32, mask(&[12]), 1),
        (-1000 - day(12) as i32, mask(&[12]), 1),
        (-1000 - day(15) as i32, mask(&[15]), 1),
        (-1000 - 3, 0, 7), // created in the window without a matching event: nothing
    ];
    let p = ok(l1());
    let r = render(&p, &rows_of_masks(&masks, p.buckets.len() + 2));
    assert_eq!(
        r[0]["data"],
        json!([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    );
    assert_eq!(
        r[1]["data"],
        json!([1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    );
    assert_eq!(
        r[2]["data"],
        json!([1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    );
    assert_eq!(
        r[3]["data"],
        json!([0.0, -2.0, -1.0, 0.0, -2.0, 0.0, -1.0, 0.0])
    );
}

#[test]
fn series_math_is_ignored() {
    // A unique_group (or hogql) math left on the series still counts persons, with their
    // creation periods: the statement is the person mask form.
    for math in [
        json!({"math": "unique_group", "math_group_type_index": 0}),
        json!({"math": "hogql", "math_hogql": "properties.$browser"}),
    ] {
        let mut e = json!({"id": "$pageview"});
        for (k, v) in math.as_object().into_iter().flatten() {
            e[k] = v.clone();
        }
        let p = ok(
            json!({"insight": "LIFECYCLE", "events": [e], "date_from": "2020-01-12", "date_to": "2020-01-19"}),
        );
        assert!(
            p.masks && p.sql.contains("e.person_id AS actor"),
            "{}",
            p.sql
        );
    }
}
