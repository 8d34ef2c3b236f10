use super::*;
use crate::model::{Breakdown, BreakdownProperty, BreakdownSpec, InsightKind, RetentionPeriod};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.to_utc())
        .unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn project(tz: &str, week_start: u8) -> Project {
    Project {
        id: 7,
        pt: ProjectTime::new(tz, week_start).unwrap_or_else(|e| panic!("{tz}: {e}")),
        timezone: tz.to_string(),
        test_account_filters: json!([{"key": "email", "value": "@posthog.com", "operator": "not_icontains", "type": "person"}]),
        rollups: false,
        materialized: vec![],
    }
}

fn no_cohort(_: i64) -> Option<(bool, Value, String)> {
    None
}

fn action(id: i64) -> Option<(Value, String)> {
    match id {
        1 => Some((
            json!([{"event": "signup"}, {"event": "$pageview", "url": "/signup"}]),
            "Signed up".into(),
        )),
        2 => Some((json!([{"url": "/x"}]), "Any /x".into())),
        _ => None,
    }
}

fn lookups() -> Lookups<'static> {
    Lookups {
        cohort: &no_cohort,
        action: &action,
    }
}

fn query(f: impl FnOnce(&mut InsightQuery)) -> InsightQuery {
    let mut q = InsightQuery::new(InsightKind::Retention);
    f(&mut q);
    q
}

fn plan_utc(q: &InsightQuery) -> RetentionPlan {
    plan(q, &project("UTC", 0), &lookups(), t("2020-06-20T12:00:00Z"))
        .unwrap_or_else(|e| panic!("plan: {e} ({:?})", e.attr))
}

/// Every `$i` is used and none is out of range.
fn assert_params_consistent(p: &RetentionPlan) {
    for i in 1..=p.params.len() {
        assert!(
            p.sql.contains(&format!("${i}::")),
            "${i} unused in {}",
            p.sql
        );
    }
    assert!(!p.sql.contains(&format!("${}::", p.params.len() + 1)));
}

// ---- SQL shape -----------------------------------------------------------------------------

fn any_event_query(ty: RetentionType, period: RetentionPeriod) -> InsightQuery {
    query(|q| {
        q.date_to = Some("2020-06-16T06:00:00Z".into());
        q.retention.retention_type = ty;
        q.retention.period = period;
        q.retention.total_intervals = 4;
        q.retention.target_entity = Entity::all_events();
        q.retention.returning_entity = Entity::all_events();
    })
}

fn plan_rollups(q: &InsightQuery, tz: &str) -> RetentionPlan {
    let mut p = project(tz, 0);
    p.rollups = true;
    plan(q, &p, &lookups(), t("2020-06-20T12:00:00Z"))
        .unwrap_or_else(|e| panic!("plan: {e} ({:?})", e.attr))
}

#[test]
fn all_events_read_the_person_days_rollup_with_local_dates() {
    for ty in [
        RetentionType::FirstTime,
        RetentionType::Recurring,
        RetentionType::FirstEverOccurrence,
    ] {
        let p = plan_rollups(&any_event_query(ty, RetentionPeriod::Day), "Europe/Berlin");
        assert_params_consistent(&p);
        assert!(p.sql.contains("FROM insights.person_days e"), "{}", p.sql);
        assert!(p.sql.contains("insights._actor_periods("), "{}", p.sql);
        assert!(!p.sql.contains("insights.events"), "{}", p.sql);
        assert!(!p.params.iter().any(|x| matches!(x, Param::Timestamp(_))));
        // Local dates of the period starts: four days ending with the day of date_to (Berlin),
        // then the exclusive end.
        for d in [13, 14, 15, 16, 17] {
            assert!(
                p.params.contains(&Param::Date(2020, 6, d)),
                "{d}: {:?}",
                p.params
            );
        }
        assert_eq!(p.range.starts.len(), 4);
    }
    // A week period binds the local week starts.
    let p = plan_rollups(
        &any_event_query(RetentionType::FirstTime, RetentionPeriod::Week),
        "UTC",
    );
    assert!(p.sql.contains("insights.person_days"));
    assert!(
        p.params.contains(&Param::Date(2020, 5, 24)),
        "{:?}",
        p.params
    );
    // Actors of a cohort read it too.
    let mut pr = project("UTC", 0);
    pr.rollups = true;
    let q = any_event_query(RetentionType::FirstTime, RetentionPeriod::Day);
    let a = plan_actors(&q, &pr, &lookups(), t("2020-06-20T12:00:00Z"), 1).unwrap();
    assert!(a.sql.contains("insights.person_days"), "{}", a.sql);
    assert_params_consistent(&a);
}

#[test]
fn the_rollup_is_used_only_where_it_gives_the_same_answer() {
    let events_only = |f: &dyn Fn(&mut InsightQuery)| {
        let mut q = any_event_query(RetentionType::FirstTime, RetentionPeriod::Day);
        f(&mut q);
        let p = plan_rollups(&q, "UTC");
        assert!(!p.sql.contains("person_days"), "{}", p.sql);
        assert!(p.sql.contains("insights.events"));
        assert_params_consistent(&p);
    };
    events_only(&|q| q.retention.period = RetentionPeriod::Hour);
    events_only(&|q| q.retention.target_entity = Entity::event("signup"));
    events_only(&|q| q.retention.returning_entity = Entity::event("$pageview"));
    events_only(&|q| {
        q.retention.returning_entity.properties =
            json!([{"key": "$browser", "value": "Chrome", "type": "event"}])
    });
    events_only(&|q| {
        q.properties = json!([{"key": "$browser", "value": "Chrome", "type": "event"}])
    });
    events_only(&|q| q.filter_test_accounts = true);
    events_only(&|q| q.aggregation_group_type_index = Some(0));
    events_only(&|q| q.retention.minimum_occurrences = 2);
    // Switched off: the events.
    let q = any_event_query(RetentionType::FirstTime, RetentionPeriod::Day);
    assert!(plan_utc(&q).sql.contains("insights.events"));
}

#[test]
fn recurring_days_packed() {
    let q = query(|q| q.date_to = Some("2020-06-16T06:00:00Z".into()));
    let p = plan_utc(&q);
    assert_eq!(p.range.starts.len(), 11);
    assert_eq!(p.range.starts[0], t("2020-06-06T00:00:00Z"));
    assert_eq!(p.range.end, t("2020-06-17T00:00:00Z"));
    assert_eq!(p.intervals, 11);
    assert_eq!(p.params[0], Param::Int(7));
    assert_eq!(p.params[1], Param::Text("$pageview".into()));
    assert_eq!(p.params[2], Param::timestamp(t("2020-06-06T00:00:00Z")));
    assert_eq!(p.params[3], Param::timestamp(t("2020-06-17T00:00:00Z")));
    // Same bare event for target and return: every scanned event is both; one bucket lookup.
    assert!(p.sql.contains(
        "bit_or(4294967297::int8 << (width_bucket(e.\"timestamp\", ARRAY[$3::timestamptz, $5::timestamptz,"
    ), "{}", p.sql);
    assert_eq!(p.sql.matches("width_bucket").count(), 1);
    assert!(p.sql.contains("e.project_id = $1::int8 AND e.\"timestamp\" < $4::timestamptz AND e.\"timestamp\" >= $3::timestamptz AND e.event IN ($2::text) GROUP BY 1) g"));
    assert!(p.sql.contains("FROM insights.events e WHERE"));
    assert!(p.sql.contains("GROUP BY 1) g"));
    assert!(
        p.sql
            .contains("((x.r >> (c.c + k.k)::int4) & 1::int8) = 1::int8")
    );
    assert!(p.sql.ends_with("GROUP BY 1, 2 ORDER BY 1, 2"));
    assert!(!p.sql.contains("person_id = ") && p.sql.contains("SELECT e.person_id AS actor"));
    assert_params_consistent(&p);
}

#[test]
fn recurring_different_entities_and_unpacked() {
    let q = query(|q| {
        q.retention.target_entity = Entity::event("signup");
        q.retention.period = RetentionPeriod::Week;
        q.date_to = Some("2020-06-16".into());
    });
    let p = plan_utc(&q);
    assert!(p.sql.contains("CASE WHEN (e.event = $2::text) THEN 1::int8 ELSE 0::int8 END | CASE WHEN (e.event = $3::text) THEN 4294967296::int8"));
    // Two bare names: the name filter alone selects the events.
    assert!(
        p.sql
            .contains("AND e.event IN ($3::text, $2::text) GROUP BY 1) g")
    );
    assert!(!p.sql.contains("(e.event = $2::text) OR"));
    // Weeks start on Sunday by default.
    assert_eq!(p.range.starts[10], t("2020-06-14T00:00:00Z"));
    assert_eq!(p.range.end, t("2020-06-21T00:00:00Z"));
    assert_params_consistent(&p);

    // More than 31 periods: two masks, two bucket lookups.
    let q = query(|q| {
        q.retention.total_intervals = 40;
        q.date_to = Some("2020-06-16".into());
    });
    let p = plan_utc(&q);
    assert!(
        p.sql
            .contains("bit_or(1::int8 << (width_bucket(e.\"timestamp\", ARRAY[")
    );
    assert!(p.sql.contains(") FILTER (WHERE (e.event = $2::text)) AS t"));
    assert!(p.sql.contains(") FILTER (WHERE (e.event = $2::text)) AS r"));
    assert_eq!(p.sql.matches("width_bucket").count(), 2);
    assert_params_consistent(&p);
}

#[test]
fn first_time_reads_history_before_the_range() {
    let q = query(|q| {
        q.retention.retention_type = RetentionType::FirstTime;
        q.retention.target_entity = Entity::event("signup");
        q.date_to = Some("2020-06-15T06:00:00Z".into());
        q.retention.total_intervals = 7;
    });
    let p = plan_utc(&q);
    assert_eq!(p.params[3], Param::timestamp(t("2020-06-09T00:00:00Z")));
    // Two arms: the target's whole history before the range end (its first event may be
    // older than the range), the returning entity inside the range only.
    assert!(
        p.sql.contains(
            "FROM (SELECT e.person_id AS actor, e.\"timestamp\" AS ts, true AS is_t, true AS is_tb, false AS is_r \
             FROM insights.events e WHERE e.project_id = $1::int8 AND e.\"timestamp\" < $5::timestamptz AND e.event IN ($2::text) \
             UNION ALL SELECT e.person_id, e.\"timestamp\", false, false, true \
             FROM insights.events e WHERE e.project_id = $1::int8 AND e.\"timestamp\" >= $4::timestamptz AND e.\"timestamp\" < $5::timestamptz AND e.event IN ($3::text)) u GROUP BY 1) g"
        ),
        "{}",
        p.sql
    );
    assert!(p.sql.contains("SELECT u.actor AS actor, min(u.ts) FILTER (WHERE u.is_t) AS t0, bit_or(1::int8 << (width_bucket(u.ts, ARRAY[$4::timestamptz, $6::timestamptz,"));
    assert!(p.sql.contains(") FILTER (WHERE u.is_r) AS r FROM"));
    assert!(p.sql.contains(
        "CASE WHEN g.t0 >= $4::timestamptz THEN 1::int8 << (width_bucket(g.t0, ARRAY[$4::timestamptz, $6::timestamptz,"
    ));
    assert!(!p.sql.contains("AS tb"));
    assert_params_consistent(&p);

    // Same target and returning entity: one scan of the history; returns need the range.
    let q = query(|q| {
        q.retention.retention_type = RetentionType::FirstTime;
        q.retention.target_entity.properties = json!([{"key": "plan", "value": "pro"}]);
        q.retention.returning_entity.properties = json!([{"key": "plan", "value": "pro"}]);
        q.date_to = Some("2020-06-15T06:00:00Z".into());
    });
    let p = plan_utc(&q);
    assert!(!p.sql.contains("UNION ALL"));
    assert!(
        !p.sql
            .contains("e.\"timestamp\" >= $5::timestamptz AND e.event")
    );
    let target = p
        .sql
        .split("min(e.\"timestamp\") FILTER (WHERE ")
        .nth(1)
        .unwrap_or_default();
    let target = target.split(") AS t0").next().unwrap_or_default();
    assert!(target.starts_with("((e.event = $2::text) AND "), "{target}");
    assert!(
        p.sql.contains(&format!(
            "FILTER (WHERE ({target} AND e.\"timestamp\" >= $5::timestamptz)) AS r"
        )),
        "{}",
        p.sql
    );
    assert_params_consistent(&p);
}

#[test]
fn first_ever_occurrence_compares_unfiltered_first() {
    let q = query(|q| {
        q.retention.retention_type = RetentionType::FirstEverOccurrence;
        q.retention.target_entity.properties =
            json!([{"key": "plan", "value": "pro", "type": "event"}]);
        q.date_to = Some("2020-06-15".into());
    });
    let p = plan_utc(&q);
    assert!(p.sql.contains("AS tb"));
    assert!(p.sql.contains("CASE WHEN g.t0 >= "));
    assert!(p.sql.contains(" AND g.t0 = g.tb THEN"));
    // The bare matcher (no properties) selects the rows; the full one the t0 minimum.
    let tb = p.sql.split("AS t0, ").nth(1).unwrap_or_default();
    assert!(
        tb.starts_with("min(e.\"timestamp\") FILTER (WHERE (e.event = $2::text)) AS tb"),
        "{tb}"
    );
    assert_params_consistent(&p);
}

#[test]
fn minimum_occurrences_counts_per_period_first() {
    for ty in [
        RetentionType::Recurring,
        RetentionType::FirstTime,
        RetentionType::FirstEverOccurrence,
    ] {
        let q = query(|q| {
            q.retention.retention_type = ty;
            q.retention.minimum_occurrences = 3;
            q.date_to = Some("2020-06-15".into());
        });
        let p = plan_utc(&q);
        assert!(
            p.sql.contains("GROUP BY 1, 2) s GROUP BY s.actor"),
            "{}",
            p.sql
        );
        assert!(p.sql.contains("FILTER (WHERE s.p >= 0 AND s.rc >= $"));
        assert!(p.params.contains(&Param::Int(3)));
        assert_params_consistent(&p);
    }
}

#[test]
fn cumulative_uses_the_lookahead_mask() {
    let q = query(|q| {
        q.retention.cumulative = true;
        q.retention.total_intervals = 5;
        q.date_from = Some("2020-06-01".into());
        q.date_to = Some("2020-06-15".into());
    });
    let p = plan_utc(&q);
    assert_eq!(p.range.starts.len(), 15);
    assert_eq!(p.intervals, 5);
    assert!(p.params.contains(&Param::Int(0b11111)));
    assert!(p.sql.contains("(((x.r >> c.c::int4) & $"));
    assert!(p.sql.contains(") >> k.k::int4) <> 0::int8"));
    assert_params_consistent(&p);
}

#[test]
fn periods_hour_and_month() {
    let q = query(|q| {
        q.retention.period = RetentionPeriod::Hour;
        q.date_to = Some("2020-06-10T16:13:00Z".into());
    });
    let p = plan_utc(&q);
    assert_eq!(p.range.starts[0], t("2020-06-10T06:00:00Z"));
    assert_eq!(p.range.end, t("2020-06-10T17:00:00Z"));
    let q = query(|q| {
        q.retention.period = RetentionPeriod::Month;
        q.date_to = Some("2020-11-25".into());
    });
    let p = plan_utc(&q);
    assert_eq!(p.range.starts[0], t("2020-01-01T00:00:00Z"));
    assert_eq!(p.range.end, t("2020-12-01T00:00:00Z"));
}

#[test]
fn filters_groups_and_actions() {
    let q = query(|q| {
        q.retention.target_entity = Entity::action(1);
        q.retention.returning_entity.properties = json!([{"key": "$browser", "value": "Chrome"}]);
        q.properties = json!([{"key": "$os", "value": "Mac"}]);
        q.filter_test_accounts = true;
        q.aggregation_group_type_index = Some(2);
        q.date_to = Some("2020-06-15".into());
    });
    let p = plan_utc(&q);
    assert!(p.sql.contains("SELECT e.group_2 AS actor"));
    assert!(p.sql.contains("e.group_2 <> ''"));
    assert!(
        p.sql.contains("insights.persons"),
        "test-account filter reads persons"
    );
    assert!(p.params.contains(&Param::Text("Mac".into())));
    assert!(p.params.contains(&Param::Text("Chrome".into())));
    // Action 1 names its events in every step: the scan prefilters on them.
    assert!(
        p.sql.contains("e.event IN ($3::text, $2::text)"),
        "{}",
        p.sql
    );
    assert!(p.sql.contains(") OR ("), "an action is more than its names");
    assert_params_consistent(&p);

    // An action with a step without an event, or All events: no name prefilter.
    for e in [Entity::action(2), Entity::all_events()] {
        let q = query(|q| q.retention.returning_entity = e.clone());
        let p = plan_utc(&q);
        assert!(!p.sql.contains("e.event IN ("), "{}", p.sql);
        assert_params_consistent(&p);
    }
}

#[test]
fn rejections() {
    let prj = project("UTC", 0);
    let now = t("2020-06-20T12:00:00Z");
    let err = |q: InsightQuery| {
        let e = plan(&q, &prj, &lookups(), now).expect_err("must fail");
        (e.state.code(), e.attr)
    };
    let bd = Breakdown {
        values: vec![BreakdownSpec {
            property: BreakdownProperty::Property("$browser".into()),
            kind: "event".into(),
            group_type_index: None,
            histogram_bin_count: None,
            normalize_url: false,
        }],
        limit: None,
        hide_other: false,
    };
    // A property breakdown plans; cohort, histogram and multiple breakdowns do not.
    assert!(
        plan(
            &query(|q| q.breakdown = Some(bd.clone())),
            &prj,
            &lookups(),
            now
        )
        .is_ok()
    );
    let mut cohorts = bd.clone();
    cohorts.values[0].property = BreakdownProperty::Cohorts(vec![]);
    assert_eq!(
        err(query(|q| q.breakdown = Some(cohorts))),
        ("22023", Some("breakdown".into()))
    );
    let mut hist = bd.clone();
    hist.values[0].histogram_bin_count = Some(3);
    assert_eq!(
        err(query(|q| q.breakdown = Some(hist))),
        ("22023", Some("breakdown_histogram_bin_count".into()))
    );
    let mut two = bd.clone();
    two.values.push(bd.values[0].clone());
    assert_eq!(
        err(query(|q| q.breakdown = Some(two))),
        ("22023", Some("breakdowns".into()))
    );
    assert_eq!(
        err(query(|q| q.retention.total_intervals = 64)),
        ("22023", Some("total_intervals".into()))
    );
    assert_eq!(
        err(query(|q| q.retention.total_intervals = 0)),
        ("22023", Some("total_intervals".into()))
    );
    assert_eq!(
        err(query(|q| q.date_from = Some("2020-01-01".into()))),
        ("22023", Some("date_from".into()))
    );
    assert_eq!(
        err(query(|q| q.date_to = Some("nonsense".into()))),
        ("22007", Some("date_to".into()))
    );
    assert_eq!(
        err(query(|q| q.retention.target_entity = Entity::action(99))),
        ("22023", Some("target_entity__id".into()))
    );
    assert_eq!(
        err(query(|q| q.aggregation_group_type_index = Some(5))),
        ("22023", Some("aggregation_group_type_index".into()))
    );
    // 63 periods are fine, through total_intervals or date_from.
    let p = plan(
        &query(|q| q.retention.total_intervals = 63),
        &prj,
        &lookups(),
        now,
    );
    assert!(p.is_ok_and(|p| p.range.starts.len() == 63));
    let p = plan(
        &query(|q| {
            q.date_from = Some("2020-04-19".into());
            q.date_to = Some("2020-06-20".into());
        }),
        &prj,
        &lookups(),
        now,
    );
    assert!(p.is_ok_and(|p| p.range.starts.len() == 63 && p.intervals == 11));
}

#[test]
fn parsed_queries_plan() {
    let node = json!({"kind": "RetentionQuery",
        "retentionFilter": {"targetEntity": {"id": "signup", "type": "events"},
                            "returningEntity": {"id": null, "type": "events"},
                            "retentionType": "retention_first_time", "period": "Week",
                            "totalIntervals": 4},
        "dateRange": {"date_to": "2020-06-16T06:00:00Z"}});
    let q = crate::model::parse_query(&node).unwrap_or_else(|e| panic!("{e}"));
    let p = plan_utc(&q);
    assert_eq!(p.period, Interval::Week);
    assert_eq!(p.range.starts.len(), 4);
    assert_eq!(p.retention_type, RetentionType::FirstTime);
    assert_params_consistent(&p);
}

// ---- render ---------------------------------------------------------------------------------

fn small_plan(tz: &str, period: RetentionPeriod, n: u32) -> RetentionPlan {
    let q = query(|q| {
        q.retention.period = period;
        q.retention.total_intervals = n;
        q.date_to = Some("2020-06-12T06:00:00Z".into());
    });
    plan(&q, &project(tz, 0), &lookups(), t("2020-06-20T12:00:00Z"))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn render_shape_and_labels() {
    let p = small_plan("UTC", RetentionPeriod::Day, 3);
    let input = [
        Row {
            cohort: 0,
            period: 0,
            actors: 4,
        },
        Row {
            cohort: 0,
            period: 2,
            actors: 1,
        },
        Row {
            cohort: 1,
            period: 0,
            actors: 2,
        },
        Row {
            cohort: 1,
            period: 1,
            actors: 2,
        },
        // Out of the matrix: ignored.
        Row {
            cohort: 3,
            period: 0,
            actors: 9,
        },
        Row {
            cohort: 0,
            period: 5,
            actors: 9,
        },
    ];
    let out = render(&p, &input);
    let v =
        |count: i64, k: usize| json!({"count": count, "label": format!("Day {k}"), "people": []});
    assert_eq!(
        out,
        json!([
            {"values": [v(4, 0), v(0, 1), v(1, 2)], "label": "Day 0", "date": "2020-06-10T00:00:00Z", "breakdown_value": null},
            {"values": [v(2, 0), v(2, 1), v(0, 2)], "label": "Day 1", "date": "2020-06-11T00:00:00Z", "breakdown_value": null},
            {"values": [v(0, 0), v(0, 1), v(0, 2)], "label": "Day 2", "date": "2020-06-12T00:00:00Z", "breakdown_value": null},
        ])
    );
    assert_eq!(
        rows(&out),
        vec![
            (
                "2020-06-10T00:00:00Z".to_string(),
                "Day 0".to_string(),
                0,
                4,
                100.0
            ),
            ("2020-06-10T00:00:00Z".into(), "Day 0".into(), 1, 0, 0.0),
            ("2020-06-10T00:00:00Z".into(), "Day 0".into(), 2, 1, 25.0),
            ("2020-06-11T00:00:00Z".into(), "Day 1".into(), 0, 2, 100.0),
            ("2020-06-11T00:00:00Z".into(), "Day 1".into(), 1, 2, 100.0),
            ("2020-06-11T00:00:00Z".into(), "Day 1".into(), 2, 0, 0.0),
            ("2020-06-12T00:00:00Z".into(), "Day 2".into(), 0, 0, 0.0),
            ("2020-06-12T00:00:00Z".into(), "Day 2".into(), 1, 0, 0.0),
            ("2020-06-12T00:00:00Z".into(), "Day 2".into(), 2, 0, 0.0),
        ]
    );
}

#[test]
fn render_dates_in_project_timezone() {
    let p = small_plan("Europe/Berlin", RetentionPeriod::Day, 2);
    let out = render(&p, &[]);
    assert_eq!(out[0]["date"], json!("2020-06-11T00:00:00+02:00"));
    assert_eq!(out[1]["date"], json!("2020-06-12T00:00:00+02:00"));
    assert_eq!(p.range.starts[0], t("2020-06-10T22:00:00Z"));
    let p = small_plan("America/New_York", RetentionPeriod::Week, 2);
    let out = render(&p, &[]);
    assert_eq!(out[0]["label"], json!("Week 0"));
    assert_eq!(out[0]["values"][1]["label"], json!("Week 1"));
    assert_eq!(out[0]["date"], json!("2020-05-31T00:00:00-04:00"));
    assert_eq!(out[1]["date"], json!("2020-06-07T00:00:00-04:00"));
    let p = small_plan("UTC", RetentionPeriod::Hour, 2);
    let out = render(&p, &[]);
    assert_eq!(out[0]["label"], json!("Hour 0"));
    assert_eq!(out[1]["date"], json!("2020-06-12T06:00:00Z"));
    let p = small_plan("Asia/Kolkata", RetentionPeriod::Month, 2);
    let out = render(&p, &[]);
    assert_eq!(out[0]["label"], json!("Month 0"));
    assert_eq!(out[0]["date"], json!("2020-05-01T00:00:00+05:30"));
    // DST: the cohort starting on the spring-forward day is still local midnight.
    let q = query(|q| {
        q.retention.total_intervals = 3;
        q.date_to = Some("2020-03-09".into());
    });
    let p = plan(
        &q,
        &project("America/New_York", 0),
        &lookups(),
        t("2020-06-20T12:00:00Z"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = render(&p, &[]);
    let dates: Vec<&Value> = (0..3).map(|i| &out[i]["date"]).collect();
    assert_eq!(
        dates,
        [
            &json!("2020-03-07T00:00:00-05:00"),
            &json!("2020-03-08T00:00:00-05:00"),
            &json!("2020-03-09T00:00:00-04:00")
        ]
    );
}

#[test]
fn rows_of_garbage_is_empty() {
    assert!(rows(&json!(null)).is_empty());
    assert!(rows(&json!({"a": 1})).is_empty());
    assert_eq!(
        rows(&json!([{"values": [{"count": 0}]}])),
        vec![(String::new(), String::new(), 0, 0, 0.0)]
    );
}

// ---- reference model of the statement ----------------------------------------------------------

/// One event as the statement sees it.
#[derive(Debug, Clone)]
struct Ev {
    actor: u32,
    ts: DateTime<Utc>,
    /// Matches the target entity with its properties (and the global filters).
    target: bool,
    /// Matches the target entity ignoring its own properties (first-ever occurrence).
    target_bare: bool,
    ret: bool,
}

/// `width_bucket(ts, starts) - 1`.
fn period_of(ts: DateTime<Utc>, starts: &[DateTime<Utc>]) -> i64 {
    starts.iter().filter(|s| **s <= ts).count() as i64 - 1
}

/// Step 1 of the statement: per actor (cohort mask, return mask).
fn actor_masks(
    evs: &[Ev],
    range: &RetentionRange,
    ty: RetentionType,
    min_occ: u32,
) -> BTreeMap<u32, (u64, u64)> {
    let start = range.starts[0];
    let mut t = BTreeMap::<u32, u64>::new();
    let mut t0 = BTreeMap::<u32, DateTime<Utc>>::new();
    let mut tb = BTreeMap::<u32, DateTime<Utc>>::new();
    let mut counts = BTreeMap::<(u32, i64), u32>::new();
    let mut actors = BTreeSet::new();
    for e in evs.iter().filter(|e| e.ts < range.end) {
        let p = period_of(e.ts, &range.starts);
        actors.insert(e.actor);
        if ty == RetentionType::Recurring {
            if e.ts < start {
                continue;
            }
            if e.target {
                *t.entry(e.actor).or_default() |= 1 << p;
            }
        } else {
            if e.target {
                let m = t0.entry(e.actor).or_insert(e.ts);
                *m = (*m).min(e.ts);
            }
            if e.target_bare {
                let m = tb.entry(e.actor).or_insert(e.ts);
                *m = (*m).min(e.ts);
            }
        }
        if e.ret && e.ts >= start {
            *counts.entry((e.actor, p)).or_default() += 1;
        }
    }
    let mut out = BTreeMap::new();
    for a in actors {
        let tmask = match ty {
            RetentionType::Recurring => t.get(&a).copied().unwrap_or(0),
            _ => match t0.get(&a) {
                Some(first)
                    if *first >= start
                        && (ty == RetentionType::FirstTime || tb.get(&a) == Some(first)) =>
                {
                    1 << period_of(*first, &range.starts)
                }
                _ => 0,
            },
        };
        let rmask = counts
            .iter()
            .filter(|((actor, _), c)| *actor == a && **c >= min_occ)
            .fold(0u64, |m, ((_, p), _)| m | (1 << p));
        out.insert(a, (tmask, rmask));
    }
    out
}

/// Steps 2–3 of the statement: expand mask pairs into (cohort, period) cells.
fn expand(
    masks: impl IntoIterator<Item = (u64, u64)>,
    n: usize,
    lookahead: usize,
    cumulative: bool,
) -> Vec<Row> {
    let look = if lookahead >= 63 {
        u64::MAX >> 1
    } else {
        (1u64 << lookahead) - 1
    };
    let mut cells = BTreeMap::<(usize, usize), i64>::new();
    for (t, r) in masks {
        if t == 0 {
            continue;
        }
        for c in 0..n {
            if (t >> c) & 1 == 0 {
                continue;
            }
            for k in 0..lookahead.min(n - c) {
                let hit = k == 0
                    || if cumulative {
                        ((r >> c) & look) >> k != 0
                    } else {
                        (r >> (c + k)) & 1 == 1
                    };
                if hit {
                    *cells.entry((c, k)).or_default() += 1;
                }
            }
        }
    }
    cells
        .into_iter()
        .map(|((cohort, period), actors)| Row {
            cohort,
            period,
            actors,
        })
        .collect()
}

/// The retention matrix straight from the definitions of docs/retention.md#cohorts and #returns,
/// without masks (the oracle).
fn oracle(
    evs: &[Ev],
    range: &RetentionRange,
    lookahead: usize,
    ty: RetentionType,
    min_occ: u32,
    cumulative: bool,
) -> Vec<Vec<i64>> {
    let n = range.starts.len();
    let start = range.starts[0];
    let in_period = |e: &Ev, p: usize| {
        e.ts >= start && e.ts < range.end && period_of(e.ts, &range.starts) == p as i64
    };
    let actors: BTreeSet<u32> = evs.iter().map(|e| e.actor).collect();
    let mut m = vec![vec![0i64; lookahead]; n];
    for a in actors {
        let mine: Vec<&Ev> = evs
            .iter()
            .filter(|e| e.actor == a && e.ts < range.end)
            .collect();
        let first = |f: fn(&Ev) -> bool| mine.iter().filter(|e| f(e)).map(|e| e.ts).min();
        let returned =
            |p: usize| mine.iter().filter(|e| e.ret && in_period(e, p)).count() as u32 >= min_occ;
        for (c, row) in m.iter_mut().enumerate() {
            let member = match ty {
                RetentionType::Recurring => mine.iter().any(|e| e.target && in_period(e, c)),
                RetentionType::FirstTime => first(|e| e.target)
                    .is_some_and(|f| f >= start && period_of(f, &range.starts) == c as i64),
                RetentionType::FirstEverOccurrence => {
                    let f = first(|e| e.target);
                    f.is_some()
                        && f == first(|e| e.target_bare)
                        && f.is_some_and(|f| f >= start && period_of(f, &range.starts) == c as i64)
                }
            };
            if !member {
                continue;
            }
            for (k, cell) in row.iter_mut().enumerate() {
                if c + k >= n {
                    break;
                }
                let hit = k == 0
                    || if cumulative {
                        (k..lookahead).any(|j| c + j < n && returned(c + j))
                    } else {
                        returned(c + k)
                    };
                if hit {
                    *cell += 1;
                }
            }
        }
    }
    m
}

/// Plan `q`, run the reference statement over `evs`, render, and return the count rows.
fn run(q: &InsightQuery, evs: &[Ev], now: DateTime<Utc>) -> Vec<Vec<i64>> {
    let p = plan(q, &project("UTC", 0), &lookups(), now).unwrap_or_else(|e| panic!("{e}"));
    let masks = actor_masks(
        evs,
        &p.range,
        p.retention_type,
        q.retention.minimum_occurrences.max(1),
    );
    let rows = expand(
        masks.into_values(),
        p.range.starts.len(),
        p.intervals,
        p.cumulative,
    );
    let out = render(&p, &rows);
    let m: Vec<Vec<i64>> = out
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            c["values"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| v["count"].as_i64().unwrap_or(-1))
                .collect()
        })
        .collect();
    let want = oracle(
        evs,
        &p.range,
        p.intervals,
        p.retention_type,
        q.retention.minimum_occurrences.max(1),
        p.cumulative,
    );
    assert_eq!(m, want, "reference statement and oracle disagree");
    m
}

/// A triangle as PostHog's retention test cases show it, padded with zeros to `width`.
fn padded(rows: &[&[i64]], width: usize) -> Vec<Vec<i64>> {
    rows.iter()
        .map(|r| {
            let mut v = r.to_vec();
            v.resize(width, 0);
            v
        })
        .collect()
}

fn pv(actor: u32, ts: DateTime<Utc>) -> Ev {
    Ev {
        actor,
        ts,
        target: true,
        target_bare: true,
        ret: true,
    }
}

/// `d(n)` of PostHog's retention test cases: 2020-06-(10+n) 05:00 UTC, plus `h` hours.
fn d(n: i64, h: i64) -> DateTime<Utc> {
    t("2020-06-10T05:00:00Z") + chrono::TimeDelta::days(n) + chrono::TimeDelta::hours(h)
}

#[test]
fn r3_months() {
    let month = |m: u32| t(&format!("2020-{m:02}-10T00:00:00Z"));
    let mut evs: Vec<Ev> = [1, 2, 3, 5, 6, 9]
        .iter()
        .map(|m| pv(1, month(*m)))
        .collect();
    evs.extend([1, 2, 3, 6, 7, 11].iter().map(|m| pv(2, month(*m))));
    let q = query(|q| {
        q.retention.period = RetentionPeriod::Month;
        q.date_to = Some("2020-11-25".into());
    });
    let m = run(&q, &evs, t("2020-12-20T00:00:00Z"));
    let expected = padded(
        &[
            &[2, 2, 2, 0, 1, 2, 1, 0, 1, 0, 1],
            &[2, 2, 0, 1, 2, 1, 0, 1, 0, 1],
            &[2, 0, 1, 2, 1, 0, 1, 0, 1],
            &[0, 0, 0, 0, 0, 0, 0, 0],
            &[1, 1, 0, 0, 1, 0, 0],
            &[2, 1, 0, 1, 0, 1],
            &[1, 0, 0, 0, 1],
            &[0, 0, 0, 0],
            &[1, 0, 0],
            &[0, 0],
            &[1],
        ],
        11,
    );
    assert_eq!(m, expected);
    let p = plan(
        &q,
        &project("UTC", 0),
        &lookups(),
        t("2020-12-20T00:00:00Z"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = render(&p, &[]);
    assert_eq!(out[0]["date"], json!("2020-01-01T00:00:00Z"));
    assert_eq!(out[10]["date"], json!("2020-11-01T00:00:00Z"));
}

#[test]
fn r5_hours() {
    let h = |x: u32| t(&format!("2020-06-10T{x:02}:00:00Z"));
    let mut evs: Vec<Ev> = [6, 7, 8, 10, 11, 14].iter().map(|x| pv(1, h(*x))).collect();
    evs.extend([6, 7, 8, 11, 12, 16].iter().map(|x| pv(2, h(*x))));
    let q = query(|q| {
        q.retention.period = RetentionPeriod::Hour;
        q.date_to = Some("2020-06-10T16:13:00Z".into());
    });
    let m = run(&q, &evs, t("2020-06-10T16:30:00Z"));
    let expected = padded(
        &[
            &[2, 2, 2, 0, 1, 2, 1, 0, 1, 0, 1],
            &[2, 2, 0, 1, 2, 1, 0, 1, 0, 1],
            &[2, 0, 1, 2, 1, 0, 1, 0, 1],
            &[0, 0, 0, 0, 0, 0, 0, 0],
            &[1, 1, 0, 0, 1, 0, 0],
            &[2, 1, 0, 1, 0, 1],
            &[1, 0, 0, 0, 1],
            &[0, 0, 0, 0],
            &[1, 0, 0],
            &[0, 0],
            &[1],
        ],
        11,
    );
    assert_eq!(m, expected);
}

#[test]
fn r11_first_time_cohort_of_the_first_target_event() {
    let ev = |name: &str, ts| Ev {
        actor: 1,
        ts,
        target: name == "event2",
        target_bare: name == "event2",
        ret: name == "$pageview",
    };
    let evs = vec![
        ev("event1", d(0, 0)),
        ev("event1", d(1, 0)),
        ev("event1", d(2, 0)),
        ev("event2", d(2, 0)),
        ev("event2", d(3, 0)),
    ];
    let q = query(|q| {
        q.retention.retention_type = RetentionType::FirstTime;
        q.retention.target_entity = Entity::event("event2");
        q.retention.total_intervals = 4;
        q.date_to = Some("2020-06-12T06:00:00Z".into());
    });
    let m = run(&q, &evs, t("2020-06-20T00:00:00Z"));
    assert_eq!(m, padded(&[&[0, 0, 0, 0], &[0, 0, 0], &[0, 0], &[1]], 4));
}

#[test]
fn r21_first_time_signups_return_pageviews() {
    // Person ids: X = 0, P1..P4 = 1..4 (P1's two distinct ids are one person).
    let mut evs = Vec::new();
    let signup = |actor, ts| Ev {
        actor,
        ts,
        target: true,
        target_bare: true,
        ret: false,
    };
    let pageview = |actor, ts| Ev {
        actor,
        ts,
        target: false,
        target_bare: false,
        ret: true,
    };
    evs.extend([d(-5, 0), d(-1, 0)].map(|ts| signup(0, ts)));
    evs.extend([d(-1, 0), d(1, 0), d(2, 0), d(3, 0), d(4, 0)].map(|ts| signup(1, ts)));
    evs.push(signup(2, d(-1, 0)));
    evs.push(signup(3, d(0, 0)));
    evs.push(signup(4, d(2, 0)));
    evs.extend([d(0, 0), d(1, 0), d(2, 0), d(5, 0), d(5, 9), d(6, 0)].map(|ts| pageview(1, ts)));
    evs.extend([d(1, 0), d(2, 0), d(3, 0), d(6, 0)].map(|ts| pageview(2, ts)));
    evs.extend([d(1, 0), d(3, 0), d(4, 0), d(5, 0)].map(|ts| pageview(3, ts)));
    evs.extend([d(3, 0), d(5, 0)].map(|ts| pageview(4, ts)));
    let q = query(|q| {
        q.retention.retention_type = RetentionType::FirstTime;
        q.retention.target_entity = Entity::event("signup");
        q.retention.total_intervals = 7;
        q.date_to = Some("2020-06-15T06:00:00Z".into());
    });
    let m = run(&q, &evs, t("2020-06-20T00:00:00Z"));
    let expected = padded(
        &[
            &[2, 1, 2, 2, 1, 0, 1],
            &[1, 1, 0, 1, 1, 1],
            &[0, 0, 0, 0, 0],
            &[1, 1, 0, 1],
            &[0, 0, 0],
            &[0, 0],
            &[0],
        ],
        7,
    );
    assert_eq!(m, expected);
    // Recurring on the same data: X's d−1 signup now makes a cohort.
    let q = query(|q| {
        q.retention.target_entity = Entity::event("signup");
        q.retention.total_intervals = 7;
        q.date_to = Some("2020-06-15T06:00:00Z".into());
    });
    let m = run(&q, &evs, t("2020-06-20T00:00:00Z"));
    assert_eq!(m[0][0], 3);
}

#[test]
fn cumulative_and_minimum_occurrences_by_hand() {
    // P1 active d0 (cohort), returns d3 only; P2 active d0, returns d1 three times and d2 once.
    let mut evs = vec![
        pv(1, d(0, 0)),
        pv(1, d(3, 0)),
        pv(2, d(0, 0)),
        pv(2, d(2, 0)),
    ];
    evs.extend((0..3).map(|h| pv(2, d(1, h))));
    let base = |q: &mut InsightQuery| {
        q.retention.total_intervals = 5;
        q.date_to = Some("2020-06-14T06:00:00Z".into());
    };
    let now = t("2020-06-20T00:00:00Z");
    let plain = run(&query(base), &evs, now);
    assert_eq!(plain[0], [2, 1, 1, 1, 0]);
    let cumulative = run(
        &query(|q| {
            base(q);
            q.retention.cumulative = true;
        }),
        &evs,
        now,
    );
    // Counted at k when returning at k or later.
    assert_eq!(cumulative[0], [2, 2, 2, 1, 0]);
    let min3 = run(
        &query(|q| {
            base(q);
            q.retention.minimum_occurrences = 3;
        }),
        &evs,
        now,
    );
    // The cohort size is unaffected by minimumOccurrences; only d1 of P2 qualifies.
    assert_eq!(min3[0], [2, 1, 0, 0, 0]);
    let both = run(
        &query(|q| {
            base(q);
            q.retention.minimum_occurrences = 3;
            q.retention.cumulative = true;
        }),
        &evs,
        now,
    );
    assert_eq!(both[0], [2, 1, 0, 0, 0]);
    // Cumulative is limited to the lookahead: with 2 intervals, P1's d3 return is outside.
    let short = run(
        &query(|q| {
            base(q);
            q.retention.total_intervals = 2;
            q.date_from = Some("2020-06-10".into());
            q.retention.cumulative = true;
        }),
        &evs,
        now,
    );
    assert_eq!(short[0], [2, 1]);
}

#[test]
fn first_ever_occurrence_needs_the_first_event_to_match() {
    // Actor 1: first signup unfiltered (d0, plan free), then d1 pro → no cohort.
    // Actor 2: first signup is pro (d1) → cohort d1.
    let ev = |actor, ts, pro: bool| Ev {
        actor,
        ts,
        target: pro,
        target_bare: true,
        ret: true,
    };
    let evs = vec![
        ev(1, d(0, 0), false),
        ev(1, d(1, 0), true),
        ev(2, d(1, 0), true),
        ev(2, d(2, 0), false),
    ];
    let q = |ty| {
        query(|q| {
            q.retention.retention_type = ty;
            q.retention.total_intervals = 4;
            q.date_to = Some("2020-06-13T06:00:00Z".into());
        })
    };
    let now = t("2020-06-20T00:00:00Z");
    let ever = run(&q(RetentionType::FirstEverOccurrence), &evs, now);
    assert_eq!(ever, padded(&[&[0, 0, 0, 0], &[1, 1, 0], &[0, 0], &[0]], 4));
    let first = run(&q(RetentionType::FirstTime), &evs, now);
    assert_eq!(
        first,
        padded(&[&[0, 0, 0, 0], &[2, 1, 0], &[0, 0], &[0]], 4)
    );
}

// ---- properties -------------------------------------------------------------------------------

fn any_ty() -> impl Strategy<Value = RetentionType> {
    prop_oneof![
        Just(RetentionType::Recurring),
        Just(RetentionType::FirstTime),
        Just(RetentionType::FirstEverOccurrence)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The mask formulation (what the SQL computes) equals the set-based definition.
    #[test]
    fn masks_match_the_definition(
        raw in prop::collection::vec((0u32..5, -48i64..24 * 12, any::<bool>(), any::<bool>(), any::<bool>()), 0..40),
        ty in any_ty(),
        min_occ in 1u32..4,
        cumulative in any::<bool>(),
        total in 1u32..9,
        from in prop::option::of(0i64..6),
    ) {
        let evs: Vec<Ev> = raw
            .iter()
            .map(|&(actor, h, target, extra, ret)| Ev {
                actor,
                ts: t("2020-06-05T00:00:00Z") + chrono::TimeDelta::hours(h),
                target,
                target_bare: target || extra,
                ret,
            })
            .collect();
        let q = query(|q| {
            q.retention.retention_type = ty;
            q.retention.minimum_occurrences = min_occ;
            q.retention.cumulative = cumulative;
            q.retention.total_intervals = total;
            q.date_from = from.map(|f| format!("2020-06-{:02}", 6 + f));
            q.date_to = Some("2020-06-12T06:00:00Z".into());
        });
        // `run` asserts that the reference statement and the oracle agree.
        let m = run(&q, &evs, t("2020-06-20T00:00:00Z"));
        prop_assert!(m.iter().all(|r| r.len() == total as usize));
    }

    /// plan() never panics, and a plan's parameters are all used.
    #[test]
    fn plan_never_panics(
        ty in any_ty(),
        period in prop_oneof![Just(RetentionPeriod::Hour), Just(RetentionPeriod::Day), Just(RetentionPeriod::Week), Just(RetentionPeriod::Month)],
        total in 0u32..80,
        min_occ in 0u32..5,
        cumulative in any::<bool>(),
        from in prop::option::of(prop_oneof![Just("-30d".to_string()), Just("2020-01-01".to_string()), Just("all".to_string()), Just("x".to_string()), "[-0-9a-zA-Z:T ]{0,12}"]),
        to in prop::option::of(prop_oneof![Just("-1d".to_string()), Just("2020-06-16T06:00:00Z".to_string()), Just("9999-12-31".to_string()), Just("0001-01-01".to_string()), "[-0-9a-zA-Z:T ]{0,12}"]),
        target in prop_oneof![Just(Entity::event("$pageview")), Just(Entity::all_events()), Just(Entity::action(1)), Just(Entity::action(2)), Just(Entity::action(3)), "[a-z$]{0,6}".prop_map(|s| Entity::event(&s))],
        returning in prop_oneof![Just(Entity::event("$pageview")), Just(Entity::all_events()), Just(Entity::action(1))],
        props in prop_oneof![Just(json!([])), Just(json!([{"key": "$browser", "value": "Chrome"}])), Just(json!({"type": "OR", "values": [{"key": "a", "value": 1, "operator": "gt"}]})), Just(json!([{"key": "a", "operator": "bogus"}])), Just(json!("nope"))],
        group in prop::option::of(0u8..7),
        test_accounts in any::<bool>(),
        tz in prop_oneof![Just("UTC"), Just("America/New_York"), Just("Asia/Kolkata"), Just("Pacific/Chatham"), Just("Australia/Lord_Howe")],
        week_start in 0u8..2,
        now_s in -62_000_000_000i64..250_000_000_000i64,
    ) {
        let mut target = target;
        target.properties = props.clone();
        let q = query(|q| {
            q.retention.retention_type = ty;
            q.retention.period = period;
            q.retention.total_intervals = total;
            q.retention.minimum_occurrences = min_occ;
            q.retention.cumulative = cumulative;
            q.retention.target_entity = target;
            q.retention.returning_entity = returning;
            q.date_from = from;
            q.date_to = to;
            q.properties = props;
            q.aggregation_group_type_index = group;
            q.filter_test_accounts = test_accounts;
        });
        let now = DateTime::from_timestamp(now_s, 0).unwrap_or_default();
        if let Ok(p) = plan(&q, &project(tz, week_start), &lookups(), now) {
            prop_assert!(!p.range.starts.is_empty() && p.range.starts.len() <= MAX_PERIODS);
            prop_assert!(p.intervals >= 1 && p.intervals <= MAX_PERIODS);
            prop_assert!(p.range.starts.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(p.range.starts.last().is_some_and(|l| *l < p.range.end));
            assert_params_consistent(&p);
            let out = render(&p, &[Row { cohort: 0, period: 0, actors: 1 }]);
            prop_assert_eq!(rows(&out).len(), p.range.starts.len() * p.intervals);
        }
    }
}

// ---- Actors --------------------------------------------------------------------------------

fn actors_utc(q: &InsightQuery, c: i64) -> Result<RetentionPlan> {
    plan_actors(
        q,
        &project("UTC", 0),
        &lookups(),
        t("2020-06-20T12:00:00Z"),
        c,
    )
}

#[test]
fn actors_select_one_cohort() {
    for min_occ in [1, 3] {
        for ty in [RetentionType::Recurring, RetentionType::FirstTime] {
            let q = query(|q| {
                q.date_to = Some("2020-06-16T06:00:00Z".into());
                q.retention.minimum_occurrences = min_occ;
                q.retention.retention_type = ty;
            });
            let p = actors_utc(&q, 2).unwrap();
            assert_params_consistent(&p);
            assert!(
                p.sql.starts_with("SELECT a.actor::text AS actor, a.r FROM"),
                "{}",
                p.sql
            );
            assert!(p.params.contains(&Param::Int(2)));
            assert!(!p.sql.contains("generate_series"), "{}", p.sql);
        }
    }
}

#[test]
fn actors_reject_a_cohort_outside_the_range() {
    let q = query(|q| q.date_to = Some("2020-06-16T06:00:00Z".into()));
    for c in [-1, 11, 1000] {
        let e = actors_utc(&q, c).unwrap_err();
        assert_eq!(e.attr.as_deref(), Some("selected_interval"), "{c}");
    }
    assert!(actors_utc(&q, 10).is_ok());
}

#[test]
fn appearances_are_offsets_within_the_cohort_lookahead() {
    let q = query(|q| {
        q.date_to = Some("2020-06-20T06:00:00Z".into());
        q.retention.total_intervals = 11;
    });
    let p = actors_utc(&q, 2).unwrap();
    // R23: P2 returned in periods 1, 2, 3, 6, 7 → offsets from cohort 2: 0, 1, 4, 5.
    let r = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 6) | (1 << 7);
    assert_eq!(appearances(&p, 2, r), vec![0, 1, 4, 5]);
    // Offset 0 is always present; periods past the range are not.
    assert_eq!(appearances(&p, 10, 0), vec![0]);
    assert_eq!(appearances(&p, 9, -1), vec![0, 1]);
    // The lookahead caps the offsets.
    let q = query(|q| {
        q.date_to = Some("2020-06-20T06:00:00Z".into());
        q.date_from = Some("2020-06-01T00:00:00Z".into());
        q.retention.total_intervals = 3;
    });
    let p = actors_utc(&q, 0).unwrap();
    assert_eq!(appearances(&p, 0, 0b11110), vec![0, 1, 2]);
}

// ---- Breakdowns ----------------------------------------------------------------------------

fn browser_breakdown(limit: Option<u32>, hide_other: bool) -> Breakdown {
    Breakdown {
        values: vec![BreakdownSpec {
            property: BreakdownProperty::Property("$browser".into()),
            kind: "event".into(),
            group_type_index: None,
            histogram_bin_count: None,
            normalize_url: false,
        }],
        limit,
        hide_other,
    }
}

#[test]
fn breakdown_statement_shape() {
    for ty in [RetentionType::Recurring, RetentionType::FirstTime] {
        for min_occ in [1, 2] {
            let q = query(|q| {
                q.date_to = Some("2020-06-16T06:00:00Z".into());
                q.breakdown = Some(browser_breakdown(None, false));
                q.retention.retention_type = ty;
                q.retention.minimum_occurrences = min_occ;
                q.retention.returning_entity.kind = EntityKind::Event {
                    name: Some("other".into()),
                };
            });
            let p = plan_utc(&q);
            assert_params_consistent(&p);
            assert!(p.params.contains(&Param::Text("$browser".into())));
            assert!(p.sql.contains("x.bd::text AS breakdown"), "{}", p.sql);
            assert!(p.sql.contains("array_agg("), "{}", p.sql);
            assert!(
                p.sql.ends_with("GROUP BY 1, 2, 4 ORDER BY 1, 2, 4"),
                "{}",
                p.sql
            );
            assert_eq!(
                p.breakdown,
                Some(RetentionBreakdown {
                    limit: 25,
                    hide_other: false
                })
            );
        }
    }
    // Without a breakdown the statement is unchanged.
    let p = plan_utc(&query(|q| q.date_to = Some("2020-06-16T06:00:00Z".into())));
    assert!(!p.sql.contains("array_agg") && p.breakdown.is_none());
}

#[test]
fn breakdown_render_ranks_limits_and_merges_other() {
    let q = query(|q| {
        q.date_to = Some("2020-06-11T06:00:00Z".into());
        q.retention.total_intervals = 2;
        q.breakdown = Some(browser_breakdown(Some(2), false));
    });
    let p = plan_utc(&q);
    let row = |bd: Option<&str>, cohort, period, actors| {
        (
            bd.map(str::to_string),
            Row {
                cohort,
                period,
                actors,
            },
        )
    };
    let rows = vec![
        row(Some("Safari"), 0, 0, 1),
        row(Some("Chrome"), 0, 0, 2),
        row(Some("Chrome"), 0, 1, 1),
        row(None, 1, 0, 3),
        row(Some("Edge"), 0, 0, 1),
        row(Some("Edge"), 0, 1, 1),
    ];
    let out = render_breakdown(&p, &rows);
    let items = out.as_array().unwrap();
    let summary: Vec<(String, String, Vec<i64>)> = items
        .iter()
        .map(|i| {
            (
                i["breakdown_value"].as_str().unwrap().to_string(),
                i["label"].as_str().unwrap().to_string(),
                i["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v["count"].as_i64().unwrap())
                    .collect(),
            )
        })
        .collect();
    let s = |v: &str, l: &str, c: Vec<i64>| (v.to_string(), l.to_string(), c);
    assert_eq!(
        summary,
        vec![
            s("$$_posthog_breakdown_null_$$", "Day 0", vec![0, 0]),
            s("$$_posthog_breakdown_null_$$", "Day 1", vec![3, 0]),
            s("Chrome", "Day 0", vec![2, 1]),
            s("Chrome", "Day 1", vec![0, 0]),
            s("$$_posthog_breakdown_other_$$", "Day 0", vec![2, 1]),
            s("$$_posthog_breakdown_other_$$", "Day 1", vec![0, 0]),
        ]
    );
    let mut hidden = p.clone();
    hidden.breakdown = Some(RetentionBreakdown {
        limit: 2,
        hide_other: true,
    });
    assert_eq!(
        render_breakdown(&hidden, &rows).as_array().unwrap().len(),
        4
    );
}
