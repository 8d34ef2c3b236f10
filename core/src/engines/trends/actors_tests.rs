use super::*;
use crate::compile::dates::ProjectTime;
use crate::compile::sql::Param;
use crate::model::parse_query;
use chrono::TimeZone;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2020, 1, 21, 12, 0, 0).unwrap()
}

fn project() -> Project {
    Project {
        id: 7,
        pt: ProjectTime::utc(),
        timezone: "UTC".into(),
        test_account_filters: json!([]),
        rollups: true,
        materialized: vec![],
    }
}

fn cohort(id: i64) -> Option<(bool, Value, String)> {
    (id == 1).then(|| (true, json!({}), "c1".to_string()))
}

fn action(id: i64) -> Option<(Value, String)> {
    (id == 3).then(|| (json!([{"event": "sign up"}]), "Signed up".to_string()))
}

fn try_plan(v: Value) -> Result<TrendsActorsPlan> {
    let q = parse_query(&v)?;
    plan_actors(
        &q,
        &v,
        &project(),
        &Lookups {
            cohort: &cohort,
            action: &action,
        },
        now(),
        None,
    )
}

fn req(extra: Value) -> Value {
    let mut base = json!({
        "insight": "TRENDS",
        "events": [{"id": "$pageview", "order": 0}, {"id": "$pageleave", "order": 1, "math": "dau"}],
        "date_from": "2020-01-12T00:00:00Z",
        "date_to": "2020-01-12T23:59:59.999999Z",
        "explicit_date": "true",
    });
    if let (Value::Object(b), Value::Object(x)) = (&mut base, extra) {
        b.extend(x);
    }
    base
}

fn ts(p: &TrendsActorsPlan) -> Vec<i64> {
    p.params
        .iter()
        .filter_map(|x| match x {
            Param::Timestamp(t) => Some(*t),
            _ => None,
        })
        .collect()
}

fn us(d: u32, h: u32) -> i64 {
    Utc.with_ymd_and_hms(2020, 1, d, h, 0, 0)
        .unwrap()
        .timestamp_micros()
}

#[test]
fn picks_the_named_series_and_binds_everything() {
    let p = try_plan(req(
        json!({"entity_id": "$pageleave", "entity_type": "events", "entity_math": "dau"}),
    ))
    .unwrap();
    assert_eq!(p.label, "$pageleave");
    assert_eq!(p.math, "dau");
    assert!(p.params.contains(&Param::Text("$pageleave".into())));
    assert!(!p.sql.contains("$pageleave"), "{}", p.sql);
    assert!(
        p.sql
            .starts_with("SELECT DISTINCT (e.person_id)::text AS actor"),
        "{}",
        p.sql
    );
    assert_eq!(ts(&p), vec![us(12, 0), us(13, 0) - 1]);
    assert_eq!(p.group_type_index, None);
    // Without entity_id: the first series.
    let p = try_plan(req(json!({}))).unwrap();
    assert_eq!(p.label, "$pageview");
}

#[test]
fn unknown_entity_is_built_from_the_parameters() {
    let p = try_plan(req(json!({"entity_id": "other", "entity_type": "events"}))).unwrap();
    assert_eq!(p.label, "other");
    let p = try_plan(req(json!({"entity_id": 3, "entity_type": "actions"}))).unwrap();
    assert_eq!(p.label, "Signed up");
    let e = try_plan(req(json!({"entity_id": "x", "entity_type": "actions"}))).unwrap_err();
    assert_eq!(e.attr.as_deref(), Some("entity_id"));
    let e = try_plan(req(json!({"entity_id": "x"}))).unwrap_err();
    assert_eq!(e.attr.as_deref(), Some("entity_type"));
    let e = try_plan(req(json!({"entity_id": "x", "entity_type": "cohorts"}))).unwrap_err();
    assert_eq!(e.attr.as_deref(), Some("entity_type"));
}

#[test]
fn weekly_active_widens_the_window() {
    let p = try_plan(req(
        json!({"events": [{"id": "$pageview", "math": "weekly_active"}]}),
    ))
    .unwrap();
    assert_eq!(ts(&p), vec![us(6, 0), us(13, 0) - 1]);
    let p = try_plan(req(
        json!({"events": [{"id": "$pageview", "math": "monthly_active"}],
                                "display": "BoldNumber"}),
    ))
    .unwrap();
    assert_eq!(ts(&p)[0], us(13, 0) - 30 * 86_400_000_000 - 1 + 1);
}

#[test]
fn breakdown_values() {
    let p = try_plan(req(
        json!({"breakdown": "$browser", "breakdown_value": "Chrome"}),
    ))
    .unwrap();
    assert!(p.params.contains(&Param::Text("Chrome".into())));
    assert!(!p.sql.contains("Chrome"));
    let p = try_plan(req(
        json!({"breakdown": "$browser", "breakdown_value": BREAKDOWN_NULL}),
    ))
    .unwrap();
    assert!(p.sql.contains("= ''"), "{}", p.sql);
    let e = try_plan(req(
        json!({"breakdown": "$browser", "breakdown_value": BREAKDOWN_OTHER}),
    ))
    .unwrap_err();
    assert_eq!(e.attr.as_deref(), Some("breakdown_value"));
    let p = try_plan(req(
        json!({"breakdown": [1, "all"], "breakdown_type": "cohort", "breakdown_value": "1"}),
    ))
    .unwrap();
    assert!(p.sql.contains("cohort"), "{}", p.sql);
    let e = try_plan(req(
        json!({"breakdown": [1], "breakdown_type": "cohort", "breakdown_value": "x"}),
    ))
    .unwrap_err();
    assert_eq!(e.attr.as_deref(), Some("breakdown_value"));
    let p = try_plan(req(json!({
        "breakdowns": [{"property": "$browser", "type": "event"}, {"property": "$os", "type": "event"}],
        "breakdown_value": "[\"Chrome\",\"Mac\"]"})))
    .unwrap();
    assert!(p.params.contains(&Param::Text("Mac".into())));
}

#[test]
fn groups_are_the_actors_of_unique_group() {
    let p = try_plan(req(json!({"events": [{"id": "$pageview", "math": "unique_group", "math_group_type_index": 1}]})))
        .unwrap();
    assert_eq!(p.group_type_index, Some(1));
    assert!(p.sql.contains("NULLIF(e.group_1, '')"));
}

#[test]
fn cumulative_persons_urls_start_at_the_range_start() {
    let v = json!({"insight": "TRENDS", "events": [{"id": "$pageview", "math": "dau"}],
                   "date_from": "2020-01-09", "date_to": "2020-01-11",
                   "display": "ActionsLineGraphCumulative"});
    let q = parse_query(&v).unwrap();
    let lookups = Lookups {
        cohort: &cohort,
        action: &action,
    };
    let p = crate::engines::trends::plan(&q, &project(), &lookups, now(), None).unwrap();
    let out = crate::engines::trends::render(&p, &[vec![]]);
    let urls = out[0]["persons_urls"].as_array().unwrap();
    for (i, u) in urls.iter().enumerate() {
        let u = u["url"].as_str().unwrap();
        assert!(u.contains("date_from=2020-01-09T00%3A00%3A00Z"), "{i}: {u}");
    }
    assert!(
        urls[2]["url"]
            .as_str()
            .unwrap()
            .contains("date_to=2020-01-11T23%3A59%3A59.999999Z")
    );
}
