use super::*;
use chrono::{TimeZone, Utc};

fn cand(e: &str, s: u64, f: u64) -> Candidate {
    Candidate {
        event: Some(e.into()),
        key: None,
        value: None,
        success_count: s,
        failure_count: f,
    }
}

#[test]
fn odds_ratio_matches_the_worked_example() {
    // docs/funnels.md#correlation: S = 7, F = 11, s = 5, f = 1 → (6 × 11) / (3 × 2) = 11.
    assert_eq!(odds_ratio(5, 1, 7, 11), 11.0);
    // PostHog's docstring table with the prior: (5+1)(10+1)/((2+1)(1+1)) = 11.
    assert_eq!(odds_ratio(5, 1, 7, 11), 66.0 / 6.0);
    assert!(odds_ratio(0, 3, 3, 3) < 1.0);
}

#[test]
fn insignificance_threshold() {
    // min(25, 2 % of 10) = 0.2: one actor is enough.
    assert!(!insignificant(1, 0, 5, 5));
    // 2 % of 2000 = 40 → min is 25.
    assert!(insignificant(20, 4, 1000, 1000));
    assert!(!insignificant(20, 5, 1000, 1000));
    // 2 % of 500 = 10.
    assert!(insignificant(5, 4, 250, 250));
    assert!(!insignificant(5, 5, 250, 250));
}

#[test]
fn score_sorts_limits_and_flags_skew() {
    let (r, skewed) = score(vec![], 0, 5);
    assert!(r.is_empty() && skewed);
    let (r, skewed) = score(vec![cand("a", 1, 0)], 5, 0);
    assert!(r.is_empty() && skewed);
    let (_, skewed) = score(vec![], 11, 1);
    assert!(skewed);
    let (_, skewed) = score(vec![], 10, 1);
    assert!(!skewed);

    let mut cs: Vec<Candidate> = (0..12)
        .map(|i| cand(&format!("s{i:02}"), 2 + i % 3, 0))
        .collect();
    cs.extend((0..12).map(|i| cand(&format!("f{i:02}"), 0, 1 + i % 4)));
    cs.push(cand("even", 2, 2)); // odds exactly 1 → failure
    let (r, _) = score(cs, 5, 5);
    assert_eq!(r.len(), 20);
    assert!(r[..10].iter().all(|s| s.success));
    assert!(r[10..].iter().all(|s| !s.success));
    for w in r[..10].windows(2) {
        assert!(w[0].odds_ratio >= w[1].odds_ratio);
    }
    for w in r[10..].windows(2) {
        assert!(w[0].odds_ratio <= w[1].odds_ratio);
    }
    // Highest odds first: s = 4 (i % 3 == 2) → (5)(6)/((2)(1)) = 15.
    assert_eq!(r[0].odds_ratio, 15.0);
    assert_eq!(r[0].candidate.name(), "s02");
    // Lowest failure odds: f = 4 → (1)(2)/((6)(5)) = 1/15.
    assert_eq!(r[10].odds_ratio, 1.0 / 15.0);
}

#[test]
fn elements_chain_parsing() {
    let els = chain_to_elements(
        r#"button.btn.primary:attr__id="pay"attr_id="pay"attr__class="btn primary"nth-child="2"nth-of-type="1"text="Pay \"now\"";div:nth-child="1";body"#,
    );
    assert_eq!(els.len(), 3);
    assert_eq!(els[0]["tag_name"], json!("button"));
    assert_eq!(els[0]["attr_class"], json!(["btn", "primary"]));
    assert_eq!(els[0]["attr_id"], json!("pay"));
    assert_eq!(els[0]["text"], json!("Pay \"now\""));
    assert_eq!(els[0]["nth_child"], json!(2));
    assert_eq!(els[0]["order"], json!(0));
    assert_eq!(els[0]["attributes"]["attr__class"], json!("btn primary"));
    assert_eq!(els[1]["tag_name"], json!("div"));
    assert_eq!(els[1]["attr_class"], Value::Null);
    assert_eq!(els[2]["tag_name"], json!("body"));
    assert_eq!(build_selector(&els), r#"body > div > [id="pay"]"#);
    assert!(chain_to_elements("").is_empty());
}

#[test]
fn engine_detail_mode_reports_outcomes() {
    use crate::engines::funnels::engine::Ev;
    let cfg: crate::engines::funnels::EngineConfig = serde_json::from_value(json!({
        "order": "ordered", "num_steps": 2, "window_us": 1_000, "exclusions": [],
        "attribution": "first_touch", "attribution_step": 0, "has_breakdown": false,
        "optional_steps": 0, "viz": "steps", "breakdown_limit": null, "no_other": false,
        "from_step": 0, "to_step": 1, "bin_count": null, "interval": "day", "timezone": "UTC",
        "week_start": 0, "actors": {"step": 1, "breakdown": null, "detail": true},
    }))
    .unwrap();
    let ev = |ts, steps| Ev {
        ts,
        steps,
        excl: 0,
        bd: 0,
    };
    // Two entries completing with the same event: the engine's chain is the later entry (PostHog's
    // `latest_0`), so the window starts there.
    let mut a = vec![ev(100, 1), ev(50, 1), ev(900, 2)];
    let mut b = vec![ev(100, 1), ev(2_000, 2)]; // step 2 outside the window
    let mut c = vec![ev(100, 2)]; // never entered
    let actors = vec![
        (json!(1), a.as_mut_slice()),
        (json!(2), b.as_mut_slice()),
        (json!(3), c.as_mut_slice()),
    ];
    let out = crate::engines::funnels::summarize(&cfg, actors.into_iter(), &[None], 1);
    assert_eq!(
        out,
        json!({"outcomes": [[1, 2, 100, 900, [100, 900]], [2, 1, 100, null, [100]]]})
    );
}

#[test]
fn candidate_names() {
    let mut c = cand("e", 1, 1);
    assert_eq!(c.name(), "e");
    c.key = Some("k".into());
    c.value = Some("v".into());
    assert_eq!(c.name(), "e::k::v");
    c.event = None;
    assert_eq!(c.name(), "k::v");
}

#[test]
fn parse_legacy_request() {
    let r = parse_request(&json!({
        "insight": "FUNNELS", "events": "[{\"id\":\"a\",\"order\":0},{\"id\":\"b\",\"order\":1}]",
        "funnel_correlation_type": "properties",
        "funnel_correlation_names": "[\"$browser\", \"plan\"]",
        "funnel_correlation_exclude_names": ["plan"],
        "funnel_correlation_person_converted": "false",
        "funnel_step": "2",
    }))
    .unwrap();
    assert_eq!(r.kind, CorrelationType::Properties);
    assert_eq!(r.names, vec!["$browser", "plan"]);
    assert_eq!(r.exclude_names, vec!["plan"]);
    assert_eq!(r.converted, Some(false));
    assert_eq!(r.funnel_step, 2);
    assert!(r.funnel.get("funnel_correlation_type").is_none());
    assert!(r.funnel.get("funnel_step").is_none());
    assert!(r.funnel.get("events").is_some());

    let r = parse_request(&json!({"events": [], "funnel_correlation_person_entity": "{\"id\": \"x\", \"type\": \"events\"}"})).unwrap();
    assert_eq!(r.kind, CorrelationType::Events);
    assert_eq!(
        r.person_entity.unwrap().kind,
        EntityKind::Event {
            name: Some("x".into())
        }
    );
}

#[test]
fn parse_rejects_bad_values() {
    let attr = |v: Value| parse_request(&v).unwrap_err().attr;
    assert_eq!(
        attr(json!({"events": [], "funnel_correlation_type": "nope"})),
        Some("funnel_correlation_type".into())
    );
    assert_eq!(
        attr(json!({"events": [], "funnel_correlation_names": [{}]})),
        Some("funnel_correlation_names".into())
    );
    assert_eq!(
        attr(json!({"events": [], "funnel_correlation_person_converted": "maybe"})),
        Some("funnel_correlation_person_converted".into())
    );
    assert_eq!(
        attr(json!({"events": [], "funnel_step": "0"})),
        Some("funnel_step".into())
    );
    assert_eq!(
        attr(json!({"events": [], "funnel_step": "x"})),
        Some("funnel_step".into())
    );
    assert_eq!(
        attr(json!({"events": [], "funnel_correlation_person_entity": 5})),
        Some("funnel_correlation_person_entity".into())
    );
    assert!(parse_request(&json!([1])).is_err());
    assert_eq!(
        attr(json!({"kind": "TrendsQuery", "series": []})),
        Some("kind".into())
    );
}

#[test]
fn validate_requires_names() {
    let mut r =
        parse_request(&json!({"events": [], "funnel_correlation_type": "properties"})).unwrap();
    assert_eq!(
        validate(&r, false).unwrap_err().attr,
        Some("funnel_correlation_names".into())
    );
    r.kind = CorrelationType::EventWithProperties;
    assert_eq!(
        validate(&r, false).unwrap_err().attr,
        Some("funnel_correlation_event_names".into())
    );
    r.kind = CorrelationType::Events;
    assert!(validate(&r, false).is_ok());
    assert_eq!(
        validate(&r, true).unwrap_err().attr,
        Some("funnel_correlation_person_entity".into())
    );
    r.kind = CorrelationType::Properties;
    assert_eq!(
        validate(&r, true).unwrap_err().attr,
        Some("funnel_correlation_property_values".into())
    );
}

#[test]
fn parse_node_request() {
    let r = parse_request(&json!({
        "kind": "FunnelCorrelationActorsQuery",
        "funnelCorrelationPersonConverted": true,
        "funnelCorrelationPersonEntity": {"kind": "EventsNode", "event": "x", "properties": []},
        "source": {"kind": "FunnelCorrelationQuery", "funnelCorrelationType": "event_with_properties",
                   "funnelCorrelationEventNames": ["x"],
                   "source": {"kind": "FunnelsActorsQuery", "funnelStep": -2,
                              "source": {"kind": "FunnelsQuery", "series": []}}}
    }))
    .unwrap();
    assert_eq!(r.kind, CorrelationType::EventWithProperties);
    assert_eq!(r.event_names, vec!["x"]);
    assert_eq!(r.funnel_step, -2);
    assert_eq!(r.converted, Some(true));
    assert_eq!(r.funnel["kind"], json!("FunnelsQuery"));
    assert_eq!(
        r.person_entity.unwrap().kind,
        EntityKind::Event {
            name: Some("x".into())
        }
    );
}

#[test]
fn population_windows_and_steps() {
    let range = DateRange {
        from: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        to: Utc.with_ymd_and_hms(2024, 1, 31, 23, 59, 59).unwrap(),
        interval: crate::compile::dates::Interval::Day,
        explicit_date: false,
    };
    let base = Utc
        .with_ymd_and_hms(2024, 1, 10, 0, 0, 0)
        .unwrap()
        .timestamp_micros()
        - PG_EPOCH_OFFSET_US;
    let out = vec![json!({"outcomes": [
        [1, 3, base, base + 100],
        [2, 2, base, null],
        [3, 1, base, null],
        [1, 2, base, null],
    ]})];
    let p = Population::from_outputs(&out, ActorColumn::Person, 3, 1, 1_000, &range);
    assert_eq!(p.ids, vec![1, 2, 3]);
    assert_eq!(p.success, vec![1, 0, 0]);
    assert_eq!(p.to_us, vec![base + 100, base + 1_000, base + 1_000]);
    assert_eq!((p.success_total, p.failure_total), (1, 2));
    // Step 2 population: actors 1 and 2; drop-offs before step 2: actor 3.
    let p = Population::from_outputs(&out, ActorColumn::Person, 3, 2, 1_000, &range);
    assert_eq!(p.ids, vec![1, 2]);
    let p = Population::from_outputs(&out, ActorColumn::Person, 3, -2, 1_000, &range);
    assert_eq!(p.ids, vec![3]);
    // A window past the range end is capped just after it.
    let p = Population::from_outputs(&out, ActorColumn::Person, 3, 1, i64::MAX, &range);
    assert_eq!(
        p.to_us[1],
        range.to.timestamp_micros() - PG_EPOCH_OFFSET_US + 1
    );
}

#[test]
fn plans_bind_every_value() {
    let q = crate::model::parse_query_as(
        &json!({"insight": "FUNNELS", "events": [{"id": "a", "order": 0}, {"id": "b", "order": 1}]}),
        crate::model::InsightKind::Funnels,
    )
    .unwrap();
    let project = Project {
        id: 7,
        pt: Default::default(),
        timezone: "UTC".into(),
        test_account_filters: json!([]),
        rollups: true,
        materialized: vec![],
    };
    let range = DateRange {
        from: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        to: Utc.with_ymd_and_hms(2024, 1, 31, 23, 59, 59).unwrap(),
        interval: crate::compile::dates::Interval::Day,
        explicit_date: false,
    };
    let pop = Population {
        ids: vec![1],
        success: vec![1],
        from_us: vec![0],
        to_us: vec![1],
        success_total: 1,
        ..Default::default()
    };
    let evil = "x'); DROP TABLE insights.events; --";
    for kind in ["events", "properties", "event_with_properties"] {
        let req = parse_request(&json!({
            "events": [], "funnel_correlation_type": kind,
            "funnel_correlation_names": [evil], "funnel_correlation_event_names": [evil],
            "funnel_correlation_exclude_event_names": [evil], "funnel_correlation_exclude_names": [evil],
        }))
        .unwrap();
        let (sql, params) =
            plan_counts(&req, &q, &project, &range, &pop, &["a".into(), "b".into()]);
        assert!(!sql.contains("DROP"), "{sql}");
        assert!(
            params
                .iter()
                .any(|p| matches!(p, Param::TextArray(v) if v.contains(&evil.to_string()))),
            "{kind}"
        );
    }
}
