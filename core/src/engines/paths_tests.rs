use super::*;
use crate::compile::dates::ProjectTime;
use crate::model::parse_query_as;

const M: i64 = 60_000_000; // one minute in µs

fn project() -> Project {
    Project {
        id: 7,
        pt: ProjectTime::utc(),
        timezone: "UTC".into(),
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

fn plan_with(filter: Value, team: Value) -> Result<PathsPlan> {
    let mut f = json!({"insight": "PATHS", "date_from": "2021-05-01", "date_to": "2021-05-02"});
    for (k, v) in filter.as_object().into_iter().flatten() {
        f[k] = v.clone();
    }
    let q = parse_query_as(&f, InsightKind::Trends)?;
    let lookups = Lookups {
        cohort: &no_cohort,
        action: &no_action,
    };
    let now = DateTime::parse_from_rfc3339("2021-06-01T00:00:00Z")
        .map(|d| d.to_utc())
        .unwrap_or_default();
    plan(&q, &project(), &team, &lookups, now, None, None)
}

fn ok(filter: Value) -> PathsPlan {
    plan_with(filter, json!([])).unwrap_or_else(|e| panic!("{e:?}"))
}

/// Persons (ids 1, 2, …) as lists of raw items one minute apart (the `sequential` fixtures).
fn sequential(persons: &[&[&str]]) -> Vec<PersonEvents> {
    persons
        .iter()
        .enumerate()
        .map(|(n, items)| {
            let ts = (0..items.len() as i64).map(|i| i * M).collect();
            let items = items
                .iter()
                .map(|s| strip_trailing_slash(s).to_string())
                .collect();
            (n as i64 + 1, ts, items)
        })
        .collect()
}

/// `(source, target, value)` of a result.
fn edges(v: &Value) -> Vec<(String, String, i64)> {
    rows(v).into_iter().map(|(s, t, n, _)| (s, t, n)).collect()
}

fn e(s: &str, t: &str, n: i64) -> (String, String, i64) {
    (s.to_string(), t.to_string(), n)
}

fn p5() -> Vec<PersonEvents> {
    sequential(&[
        &["/", "/about/"],
        &["/", "/pricing/", "/about"],
        &["/pricing", "/", "/about/"],
        &["/", "/pricing/"],
        &["/pricing", "/about", "/pricing/", "/help"],
    ])
}

#[test]
fn p5_start_point() {
    for start in ["/pricing", "/pricing/"] {
        let p = ok(json!({"start_point": start}));
        assert_eq!(
            edges(&render(&p, p5())),
            vec![
                e("1_/pricing", "2_/about", 2),
                e("1_/pricing", "2_/", 1),
                e("2_/", "3_/about", 1),
                e("2_/about", "3_/pricing", 1),
                e("3_/pricing", "4_/help", 1),
            ]
        );
    }
    let p = ok(json!({"start_point": "/"}));
    assert_eq!(
        edges(&render(&p, p5())),
        vec![
            e("1_/", "2_/about", 2),
            e("1_/", "2_/pricing", 2),
            e("2_/pricing", "3_/about", 1)
        ]
    );
}

#[test]
fn p7_step_limit() {
    let persons = sequential(&[&["/1", "/2", "/3", "/4"]]);
    for (limit, n) in [(2, 1), (3, 2), (4, 3)] {
        let r = render(&ok(json!({"step_limit": limit})), persons.clone());
        assert_eq!(rows(&r).len(), n);
    }
    let r = render(&ok(json!({"step_limit": 4})), persons);
    let times: Vec<f64> = rows(&r).into_iter().map(|x| x.3).collect();
    assert_eq!(times, vec![60000.0, 60000.0, 60000.0]);
}

#[test]
fn p9_end_point() {
    let persons = sequential(&[
        &["/1", "/2", "/3/", "/4/", "/5", "/about", "/after/"],
        &["/5", "/about"],
        &["/3/", "/4", "/about/", "/after"],
    ]);
    for end in ["/about", "/about/"] {
        let r = render(&ok(json!({"end_point": end})), persons.clone());
        assert_eq!(
            edges(&r),
            vec![
                e("1_/2", "2_/3", 1),
                e("1_/3", "2_/4", 1),
                e("1_/5", "2_/about", 1),
                e("2_/3", "3_/4", 1),
                e("2_/4", "3_/about", 1),
                e("3_/4", "4_/5", 1),
                e("4_/5", "5_/about", 1),
            ]
        );
    }
}

#[test]
fn p11_groupings_and_exclusions() {
    let persons = sequential(&[
        &["/1", "/2/bar/1/foo", "/3"],
        &["/1", "/bar/2/foo", "/3"],
        &["/1", "/bar/33/foo", "/3"],
    ]);
    let r = render(
        &ok(json!({"exclude_events": ["/bar/*/foo"], "path_groupings": ["/bar/*/foo"]})),
        persons.clone(),
    );
    assert_eq!(edges(&r), vec![e("1_/1", "2_/3", 3)]);
    assert_eq!(rows(&r)[0].3, 120000.0);
    let r = render(
        &ok(json!({"exclude_events": ["/bar/*/foo"], "path_groupings": ["/xxx/invalid/*"]})),
        persons,
    );
    assert_eq!(rows(&r).len(), 6);
}

#[test]
fn p13_sessions_split_after_30_minutes() {
    let day = 24 * 60 * M;
    let persons = vec![(
        1,
        vec![0, M, 4 * M, day, day + M, day + 4 * M],
        ["/1", "/2", "/3", "/1", "/2", "/3"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    )];
    let r = render(&ok(json!({})), persons);
    assert_eq!(edges(&r), vec![e("1_/1", "2_/2", 2), e("2_/2", "3_/3", 2)]);
    assert_eq!(rows(&r)[1].3, 180000.0);
    // A gap of exactly 30 minutes starts a new path too.
    let persons = vec![(1, vec![0, 30 * M], vec!["/a".to_string(), "/b".to_string()])];
    assert_eq!(rows(&render(&ok(json!({})), persons)).len(), 0);
}

#[test]
fn repeats_collapse_to_their_last_event() {
    let persons = vec![(
        1,
        vec![0, M, 2 * M, 5 * M],
        ["/a", "/b", "/b", "/c"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    )];
    let r = render(&ok(json!({})), persons);
    let got: Vec<_> = rows(&r)
        .into_iter()
        .map(|(s, t, _, ms)| (s, t, ms))
        .collect();
    assert_eq!(
        got,
        vec![
            ("1_/a".into(), "2_/b".into(), 120000.0),
            ("2_/b".into(), "3_/c".into(), 180000.0)
        ]
    );
}

#[test]
fn p15_start_and_end() {
    let persons = sequential(&[
        &["/1", "/2", "/3", "/4", "/5", "/about", "/after"],
        &["/5", "/about"],
        &["/3", "/4", "/about", "/after"],
    ]);
    let r = render(
        &ok(json!({"start_point": "/5", "end_point": "/about"})),
        persons.clone(),
    );
    assert_eq!(edges(&r), vec![e("1_/5", "2_/about", 2)]);
    let r = render(
        &ok(json!({"start_point": "/2", "end_point": "/about", "step_limit": 4})),
        persons,
    );
    assert_eq!(
        edges(&r),
        vec![
            e("1_/2", "2_/3", 1),
            e("2_/3", "3_...", 1),
            e("3_...", "4_/5", 1),
            e("4_/5", "5_/about", 1)
        ]
    );
    assert!(rows(&r).iter().all(|x| x.3 == 60000.0));
}

/// P17's 35 persons (ids 0..35): 5 convert through every step, 10 stop after `step two` with
/// two more events, 20 drop off (the even ones with a branch). Times in µs from 0.
fn p17_persons() -> Vec<PersonEvents> {
    let s = 1_000_000;
    let mut persons: Vec<Vec<(i64, &str)>> = Vec::new();
    for _ in 0..5 {
        persons.push(vec![
            (0, "step one"),
            (M, "between_step_1_a"),
            (2 * M, "between_step_1_b"),
            (3 * M, "between_step_1_c"),
            (4 * M, "step two"),
            (5 * M, "step three"),
        ]);
    }
    for _ in 0..10 {
        persons.push(vec![
            (0, "step one"),
            (M, "between_step_1_a"),
            (2 * M, "between_step_1_b"),
            (3 * M, "step two"),
            (4 * M + 20 * s, "between_step_2_a"),
            (5 * M + 40 * s, "between_step_2_b"),
        ]);
    }
    for i in 0..20 {
        let mut p = vec![
            (0, "step one"),
            (M, "step dropoff1"),
            (2 * M, "step dropoff2"),
        ];
        if i % 2 == 0 {
            p.push((3 * M, "step branch"));
        }
        persons.push(p);
    }
    persons
        .into_iter()
        .enumerate()
        .map(|(n, p)| {
            let ts = p.iter().map(|(t, _)| *t).collect();
            (n as i64, ts, p.iter().map(|(_, e)| e.to_string()).collect())
        })
        .collect()
}

#[test]
fn p17_groupings() {
    let rows_in = p17_persons();
    let r = render(
        &ok(json!({"path_groupings": ["between_step_1_*", "between_step_2_*", "step drop*"]})),
        rows_in,
    );
    let got = edges(&r);
    assert_eq!(got[0], e("1_step one", "2_step drop*", 20));
    assert_eq!(got[1], e("1_step one", "2_between_step_1_*", 15));
    assert_eq!(got[2], e("2_between_step_1_*", "3_step two", 15));
    assert_eq!(got[3], e("2_step drop*", "3_step branch", 10));
    assert_eq!(got[4], e("3_step two", "4_between_step_2_*", 10));
    assert_eq!(got[5], e("3_step two", "4_step three", 5));
    assert_eq!(rows(&r)[1].3, 140000.0);
    assert_eq!(rows(&r)[4].3, 160000.0);
}

/// The funnel engine's detailed outcomes for P17 with steps [step one, step two, step three]:
/// `[id, level, first, last, [step times]]` in Postgres-epoch µs.
fn p17_outcomes() -> Vec<Value> {
    let pg = |t: i64| t - crate::engines::funnels::PG_EPOCH_OFFSET_US;
    let mut out = Vec::new();
    for (id, ts, items) in p17_persons() {
        let at = |name: &str| items.iter().position(|i| i == name).map(|k| pg(ts[k]));
        let steps: Vec<i64> = ["step one", "step two", "step three"]
            .iter()
            .map_while(|n| at(n))
            .collect();
        let last = (steps.len() == 3).then(|| steps[2]);
        out.push(json!([id, steps.len(), steps[0], last, steps]));
    }
    vec![json!({"outcomes": out})]
}

fn funnel_plan(kind: &str, step: i64) -> PathsPlan {
    let f = json!({"funnel_paths": kind, "funnel_filter": {"events": [{"id": "step one"}], "funnel_step": step}});
    let mut base = json!({"insight": "PATHS", "date_from": "2021-05-01", "date_to": "2021-05-02"});
    for (k, v) in f.as_object().into_iter().flatten() {
        base[k] = v.clone();
    }
    let q = parse_query_as(&base, InsightKind::Trends).unwrap_or_else(|e| panic!("{e:?}"));
    let fp = funnel_paths(&q.paths)
        .unwrap_or_else(|e| panic!("{e:?}"))
        .unwrap_or_else(|| panic!("no funnel"));
    let week = 7 * 24 * 60 * M;
    let scope = FunnelScope {
        windows: funnel_windows(&fp, &p17_outcomes(), week),
        window_us: week,
    };
    let lookups = Lookups {
        cohort: &no_cohort,
        action: &no_action,
    };
    plan(
        &q,
        &project(),
        &json!([]),
        &lookups,
        Utc::now(),
        None,
        Some(scope),
    )
    .unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn p21_after_step() {
    let p = funnel_plan("funnel_path_after_step", 2);
    assert_eq!(p.windows.as_ref().map(|w| w.len()), Some(15));
    assert!(p.sql.contains("e.person_id = ANY("), "{}", p.sql);
    let r = render(&p, p17_persons());
    assert_eq!(
        edges(&r),
        vec![
            e("1_step two", "2_between_step_2_a", 10),
            e("2_between_step_2_a", "3_between_step_2_b", 10),
            e("1_step two", "2_step three", 5),
        ]
    );
    assert_eq!(rows(&r)[0].3, 80000.0);
}

#[test]
fn p23_between_steps() {
    let r = render(&funnel_plan("funnel_path_between_steps", 2), p17_persons());
    assert_eq!(
        edges(&r),
        vec![
            e("1_step one", "2_between_step_1_a", 15),
            e("2_between_step_1_a", "3_between_step_1_b", 15),
            e("3_between_step_1_b", "4_step two", 10),
            e("3_between_step_1_b", "4_between_step_1_c", 5),
            e("4_between_step_1_c", "5_step two", 5),
        ]
    );
}

#[test]
fn before_step_and_drop_offs() {
    // Before step 2: from the start up to step two, for the 15 who reached it.
    let r = render(&funnel_plan("funnel_path_before_step", 2), p17_persons());
    assert_eq!(edges(&r)[0], e("1_step one", "2_between_step_1_a", 15));
    // Dropped off before step 2 (-2): the 20 whose furthest step is step one, after it.
    let r = render(&funnel_plan("funnel_path_after_step", -2), p17_persons());
    assert_eq!(edges(&r)[0], e("1_step one", "2_step dropoff1", 20));
    assert_eq!(edges(&r).len(), 3);
}

#[test]
fn bad_funnel_paths() {
    let q = |f: Value| {
        let mut base = json!({"insight": "PATHS", "funnel_filter": {"events": [{"id": "a"}]}});
        for (k, v) in f.as_object().into_iter().flatten() {
            base[k] = v.clone();
        }
        let q = parse_query_as(&base, InsightKind::Trends).unwrap_or_else(|e| panic!("{e:?}"));
        funnel_paths(&q.paths).map(|_| ()).unwrap_err().attr
    };
    assert_eq!(
        q(json!({"funnel_paths": "sideways", "funnel_filter": {"funnel_step": 1}})).as_deref(),
        Some("funnel_paths")
    );
    assert_eq!(
        q(json!({"funnel_paths": "funnel_path_after_step"})).as_deref(),
        Some("funnel_step")
    );
    assert_eq!(
        q(json!({"funnel_paths": "funnel_path_after_step", "funnel_filter": {"funnel_step": -1}}))
            .as_deref(),
        Some("funnel_step")
    );
    assert_eq!(q(json!({"funnel_paths": "funnel_path_between_steps", "funnel_filter": {"funnel_step": 1}})).as_deref(), Some("funnel_step"));
}

#[test]
fn path_persons_by_keys() {
    let p = ok(json!({}));
    let persons = p5();
    let keys = |s: Option<&str>, e: Option<&str>, d: Option<&str>| ActorKeys {
        start: s.map(str::to_string),
        end: e.map(str::to_string),
        dropoff: d.map(str::to_string),
    };
    // p5: 1 `/ /about`, 2 `/ /pricing /about`, 3 `/pricing / /about`, 4 `/ /pricing`, 5 `/pricing /about /pricing /help`.
    let got = |k: ActorKeys| {
        actors(&p, PathEvents::from_persons(persons.clone()), &k)
            .unwrap_or_else(|e| panic!("{e:?}"))
    };
    assert_eq!(got(keys(Some("1_/"), Some("2_/pricing"), None)), vec![2, 4]);
    assert_eq!(got(keys(None, Some("3_/about"), None)), vec![2, 3]);
    assert_eq!(got(keys(Some("2_/pricing"), None, None)), vec![2]);
    assert_eq!(got(keys(None, None, Some("2_/pricing"))), vec![4]);
    let err = actors(&p, PathEvents::from_persons(persons), &ActorKeys::default())
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.attr.as_deref(), Some("path_start_key"));
}

#[test]
fn p19_cleaning_rules() {
    let persons = sequential(&[
        &[
            "test.com/step1",
            "test.com/step2/5",
            "test.com/step2/5?key=value1",
        ],
        &[
            "test.com/step1",
            "test.com/step2/5",
            "test.com/step2/5?key=value2",
        ],
        &[
            "test.com/step1",
            "test.com/step2/5",
            "test.com/step2/5?key=value3",
        ],
    ]);
    let local = json!([{"regex": "\\?(.*)", "alias": "?<param>"}, {"regex": "/\\d+(/|\\?)?", "alias": "/<id>"}]);
    let r = render(
        &ok(json!({"local_path_cleaning_filters": local})),
        persons.clone(),
    );
    let want = vec![
        e("1_test.com/step1", "2_test.com/step2/<id>", 3),
        e("2_test.com/step2/<id>", "3_test.com/step2/<id><param>", 3),
    ];
    assert_eq!(edges(&r), want);
    // The team's rules apply first, with path_replacements only.
    let team = json!([{"regex": "\\?(.*)", "alias": "?<param>"}]);
    let local = json!([{"regex": "/\\d+(/|\\?)?", "alias": "/<id>"}]);
    let p = plan_with(
        json!({"local_path_cleaning_filters": local, "path_replacements": true}),
        team,
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(edges(&render(&p, persons)), want);
}

#[test]
fn p25_groupings_match_anywhere() {
    let persons = sequential(&[
        &[
            "/about_1",
            "/about_2",
            "/something else",
            "/about3",
            "/about4",
        ],
        &[
            "/about_1",
            "/about_2",
            "/something else",
            "/about3",
            "/about4",
        ],
    ]);
    let r = render(&ok(json!({"path_groupings": ["/about*"]})), persons.clone());
    assert_eq!(
        edges(&r),
        vec![
            e("1_/about*", "2_/something else", 2),
            e("2_/something else", "3_/about*", 2)
        ]
    );
    let r = render(&ok(json!({"path_groupings": ["/about_*"]})), persons);
    assert_eq!(edges(&r).len(), 3);
    assert_eq!(edges(&r)[2], e("3_/about3", "4_/about4", 2));
}

#[test]
fn weights_limits_and_reachability() {
    let persons = sequential(&[&["/a", "/b", "/c"], &["/a", "/b", "/c"], &["/x", "/y"]]);
    let r = render(&ok(json!({"min_edge_weight": 2})), persons.clone());
    assert_eq!(edges(&r), vec![e("1_/a", "2_/b", 2), e("2_/b", "3_/c", 2)]);
    let r = render(&ok(json!({"max_edge_weight": 1})), persons.clone());
    assert_eq!(edges(&r), vec![e("1_/x", "2_/y", 1)]);
    // edge_limit 1 keeps 1_/a→2_/b; 2_/b→3_/c is cut and nothing is orphaned.
    let r = render(&ok(json!({"edge_limit": 1})), persons);
    assert_eq!(edges(&r), vec![e("1_/a", "2_/b", 2)]);
    let err = plan_with(
        json!({"min_edge_weight": 3, "max_edge_weight": 2}),
        json!([]),
    )
    .map(|_| ())
    .unwrap_err();
    assert_eq!(err.attr.as_deref(), Some("max_edge_weight"));
}

#[test]
fn orphans_are_dropped_after_the_limit() {
    // 2_/b→3_/c (value 5) survives the limit but the edges into 2_/b (3 and 2) were cut.
    let persons = sequential(&[
        &["/z", "/b", "/c"],
        &["/z", "/b", "/c"],
        &["/z", "/b", "/c"],
        &["/y", "/b", "/c"],
        &["/y", "/b", "/c"],
        &["/a", "/q"],
        &["/a", "/q"],
        &["/a", "/q"],
        &["/a", "/q"],
    ]);
    let p = ok(json!({"edge_limit": 2}));
    let r = render(&p, persons);
    assert_eq!(edges(&r), vec![e("1_/a", "2_/q", 4)]);
}

#[test]
fn bad_regex_is_a_400() {
    let err = plan_with(
        json!({"local_path_cleaning_filters": [{"regex": "(", "alias": "x"}]}),
        json!([]),
    )
    .map(|_| ())
    .unwrap_err();
    assert_eq!(
        err.attr.as_deref(),
        Some("local_path_cleaning_filters__0__regex")
    );
    let err = plan_with(json!({"include_event_types": ["$nope"]}), json!([]))
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.attr.as_deref(), Some("include_event_types__0"));
}

#[test]
fn event_types_choose_items_and_events() {
    let p = ok(json!({"include_event_types": ["$pageview"]}));
    assert!(
        p.sql.contains("$current_url") && !p.sql.contains("$screen_name"),
        "{}",
        p.sql
    );
    assert!(p.params.contains(&Param::Text("$pageview".into())));
    let p = ok(json!({"include_event_types": ["custom_event"]}));
    assert!(p.sql.contains("NOT LIKE '$%'"), "{}", p.sql);
    // Without types, an excluded $pageview is named by its event.
    let p = ok(json!({"exclude_events": ["$pageview"]}));
    assert!(!p.sql.contains("$current_url"), "{}", p.sql);
    let p = ok(json!({"path_type": "$screen"}));
    assert!(
        p.sql.contains("$screen_name") && !p.sql.contains("$current_url"),
        "{}",
        p.sql
    );
}

#[test]
fn replacement_text() {
    assert_eq!(replacement("\\1/x"), "${1}/x");
    assert_eq!(replacement("$5"), "$$5");
    assert_eq!(strip_trailing_slash("/"), "/");
    assert_eq!(strip_trailing_slash("/a/"), "/a");
    assert_eq!(strip_trailing_slash("/a//"), "/a/");
}

#[test]
fn path_events_round_trip_merge_and_order() {
    let mut a = PathEvents::default();
    a.add(2, 30, 9, "/x/", true);
    a.add(1, 20, 1, "/x/", true);
    a.add(1, 10, 1, "a/", false);
    a.add(3, 5, 1, "/x", true); // the same text as "/x/" stripped: one item after a round trip
    let mut b = PathEvents::default();
    b.add(1, 15, 1, "/y", true);
    b.add(2, 30, 2, "/", true);
    a.merge(PathEvents::from_bytes(&b.to_bytes()));
    let back = PathEvents::from_bytes(&a.to_bytes());
    assert_eq!(
        back.into_persons(),
        vec![
            (
                1,
                vec![10, 15, 20],
                vec!["a/".into(), "/y".into(), "/x".into()]
            ),
            // A tie at 30: ordered by event uuid.
            (2, vec![30, 30], vec!["/".into(), "/x".into()]),
            (3, vec![5], vec!["/x".into()]),
        ]
    );
    // Truncated bytes give what was read, never a panic.
    let bytes = a.to_bytes();
    for n in 0..bytes.len() {
        let _ = PathEvents::from_bytes(&bytes[..n]).into_persons();
    }
}

#[test]
fn equal_start_and_end_points_give_no_edges() {
    let persons = sequential(&[&["A", "B", "A", "C"]]);
    let r = render(&ok(json!({"start_point": "A", "end_point": "A"})), persons);
    assert_eq!(edges(&r), vec![]);
}

#[test]
fn cleaning_rules_cannot_grow_items_without_bound() {
    let rule = json!({"regex": "(.)", "alias": "\\1\\1\\1\\1\\1\\1\\1\\1\\1\\1"});
    let p = ok(
        json!({"local_path_cleaning_filters": [rule.clone(), rule.clone(), rule.clone(), rule.clone(),
                                                       rule.clone(), rule.clone(), rule.clone(), rule]}),
    );
    let item = p.rules.item("abcdé").unwrap_or_default();
    assert!(
        item.len() <= MAX_ITEM_BYTES && item.len() > MAX_ITEM_BYTES - 4,
        "{}",
        item.len()
    );
    assert!(item.starts_with("aaaaaaaaaa"));
}

#[test]
fn a_materialised_url_is_read_from_its_column() {
    let q = parse_query_as(
        &json!({"insight": "PATHS", "include_event_types": ["$pageview", "$screen"],
                "date_from": "2021-05-01", "date_to": "2021-05-02"}),
        InsightKind::Trends,
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let lookups = Lookups {
        cohort: &no_cohort,
        action: &no_action,
    };
    let now = Utc::now();
    let mut p = project();
    let plain =
        plan(&q, &p, &json!([]), &lookups, now, None, None).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(
        plain.sql.contains("(e.properties ->> '$current_url')"),
        "{}",
        plain.sql
    );
    p.materialized = vec![("$current_url".into(), "mat_$current_url".into())];
    let mat =
        plan(&q, &p, &json!([]), &lookups, now, None, None).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(
        mat.sql.contains("THEN e.\"mat_$current_url\""),
        "{}",
        mat.sql
    );
    assert!(!mat.sql.contains("'$current_url'"), "{}", mat.sql);
    assert!(
        mat.sql.contains("(e.properties ->> '$screen_name')"),
        "{}",
        mat.sql
    );
}

#[test]
fn sort_rows_orders_as_one_stable_sort() {
    // Dense actors (the counting sort) and sparse ones (the comparison sort), time-ordered and
    // shuffled arrivals, repeated instants: always the (actor, time, uuid) order.
    let mut seed = 7u64;
    let mut next = move |m: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % m
    };
    for (spread, in_time_order) in [(50, true), (50, false), (1 << 40, false)] {
        let mut s = PathEvents::default();
        for i in 0..5000u64 {
            let t = if in_time_order {
                (i / 3) as i64
            } else {
                next(400) as i64
            };
            s.rows.push((
                next(spread) as i64 - 20,
                t,
                u128::from(next(1000)),
                i as u32,
            ));
        }
        let mut want = s.rows.clone();
        want.sort_by_key(|&(a, t, u, _)| (a, t, u));
        s.sort_rows();
        assert_eq!(s.rows, want);
    }
}

/// The threaded render cuts the persons into runs; every split gives the one-thread answer
/// (counts and average times, which are exact microsecond sums).
#[test]
fn render_on_threads_equals_one_thread() {
    let items = ["/", "/pricing", "/docs", "/signup", "/blog"];
    let persons: Vec<PersonEvents> = (0..200i64)
        .map(|p| {
            let n = 1 + (p * 7 % 9) as usize;
            let ts = (0..n as i64).map(|i| i * M * (1 + p % 3) + p % 5).collect();
            let path = (0..n)
                .map(|i| items[(p as usize * 3 + i * i) % items.len()].to_string())
                .collect();
            (p % 37, ts, path) // persons repeat: runs must not split one person's rows
        })
        .collect();
    for filter in [
        json!({}),
        json!({"start_point": "/pricing"}),
        json!({"step_limit": 3}),
    ] {
        let plan = ok(filter);
        let one = render_state(&plan, PathEvents::from_persons(persons.clone()));
        assert!(!rows(&one).is_empty());
        for threads in [2, 3, 8, 500] {
            let many = render_state_on(&plan, PathEvents::from_persons(persons.clone()), threads);
            assert_eq!(many, one, "{threads} threads");
        }
    }
}

#[test]
fn person_runs_keep_each_person_whole() {
    let rows: Vec<PathRow> = [1, 1, 1, 2, 3, 3, 3, 3, 4, 5]
        .iter()
        .map(|&p| (p, 0, 0, 0))
        .collect();
    for parts in 1..12 {
        let runs = person_runs(&rows, parts);
        assert_eq!(runs.iter().map(|r| r.len()).sum::<usize>(), rows.len());
        assert!(runs.len() <= parts.max(1) && runs.iter().all(|r| !r.is_empty()));
        for w in runs.windows(2) {
            assert_ne!(
                w[0].last().map(|r| r.0),
                w[1].first().map(|r| r.0),
                "{parts} parts"
            );
        }
    }
    assert!(person_runs(&[], 4).is_empty());
}
