use super::*;

const CHAIN: &str = r#"button.btn.primary:attr__class="btn primary"attr__id="pay"attr_id="pay"href="/pay?a=1;b=2"nth-child="2"nth-of-type="1"text="Pay \"now\"";div:nth-child="1"nth-of-type="1""#;

fn pay_button() -> Element {
    Element {
        text: Some("Pay \"now\"".into()),
        tag_name: Some("button".into()),
        attr_class: Some(vec!["btn".into(), "primary".into()]),
        href: Some("/pay?a=1;b=2".into()),
        attr_id: Some("pay".into()),
        nth_child: Some(2),
        nth_of_type: Some(1),
        attributes: [
            ("attr__class".to_string(), "btn primary".to_string()),
            ("attr__id".to_string(), "pay".to_string()),
        ]
        .into(),
        order: 0,
    }
}

fn div() -> Element {
    Element {
        tag_name: Some("div".into()),
        nth_child: Some(1),
        nth_of_type: Some(1),
        order: 1,
        ..Element::default()
    }
}

#[test]
fn parses_quotes_semicolons_and_promoted_keys() {
    assert_eq!(parse_chain(CHAIN), vec![pay_button(), div()]);
}

#[test]
fn renders_what_it_parses() {
    assert_eq!(render_chain(&[pay_button(), div()]), CHAIN);
    assert_eq!(render_chain(&parse_chain(CHAIN)), CHAIN);
}

#[test]
fn render_sorts_classes_drops_their_quotes_and_escapes_keys() {
    let el = Element {
        tag_name: Some("a".into()),
        attr_class: Some(vec!["z".into(), "b\"x".into()]),
        attributes: [("attr__data-q".to_string(), "a:b;\"c\" d".to_string())].into(),
        text: Some(String::new()),
        ..Element::default()
    };
    let chain = render_chain(&[el]);
    assert_eq!(
        chain,
        r#"a.bx.z:attr__data-q="a:b;\"c\" d"nth-child="0"nth-of-type="0""#
    );
    let back = parse_chain(&chain);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].attributes["attr__data-q"], "a:b;\"c\" d");
}

#[test]
fn classes_may_hold_colons() {
    let els = parse_chain(r#"div.md:flex.p-2:nth-child="3""#);
    assert_eq!(els[0].tag_name.as_deref(), Some("div"));
    assert_eq!(
        els[0].attr_class,
        Some(vec!["md:flex".into(), "p-2".into()])
    );
    assert_eq!(els[0].nth_child, Some(3));
}

#[test]
fn malformed_chains_never_panic() {
    assert!(parse_chain("").is_empty());
    for s in [
        "\"",
        ":::",
        ";;;",
        "a:text=\"unterminated",
        "a:=\"x\"",
        "\\\\\"",
        "a b c",
        "é;ü:ö=\"ß\"",
        ":nth-child=\"x\"",
    ] {
        let els = parse_chain(s);
        let _ = render_chain(&els);
        let _ = chain_hash(s);
    }
    // Tag-only element, bad number.
    let els = parse_chain(r#"span:nth-child="x""#);
    assert_eq!(els[0].tag_name.as_deref(), Some("span"));
    assert_eq!(els[0].nth_child, None);
    // Spaces outside quotes split elements, as PostHog's regex does.
    assert_eq!(parse_chain("a b").len(), 2);
}

#[test]
fn elements_from_posthog_js_shape() {
    let v = json!([
        {"tag_name": "button", "$el_text": "Pay \"now\"", "attr__class": "btn primary",
         "attr__id": "pay", "attr__href": "/pay?a=1;b=2", "nth_child": 2, "nth_of_type": 1,
         "classes": ["btn", "primary"]},
        "not an element",
        {"tag_name": "div", "nth_child": "1", "nth_of_type": 1},
    ]);
    let els = elements_from_json(&v);
    let mut want = pay_button();
    want.attributes
        .insert("attr__href".into(), "/pay?a=1;b=2".into());
    assert_eq!(els, vec![want, div()]);
    assert!(elements_from_json(&json!({"a": 1})).is_empty());
}

#[test]
fn serialised_shape() {
    assert_eq!(
        chain_json(r#"a:nth-child="1"nth-of-type="2"text="x""#),
        json!([{"text": "x", "tag_name": "a", "attr_class": null, "href": null, "attr_id": null,
                "nth_child": 1, "nth_of_type": 2, "attributes": {}, "order": 0}])
    );
}

// Expected digests computed with Python:
// hashlib.md5(json.dumps(elements, sort_keys=True, default=str).encode()).hexdigest()
#[test]
fn hash_is_posthogs_element_group_hash() {
    assert_eq!(chain_hash(CHAIN), "254d501e9765b685b062a75cf8acbe6c");
    let odd = Element {
        text: Some("café ☕ 😀\n\u{7f}".into()),
        tag_name: Some("a".into()),
        nth_child: Some(0),
        nth_of_type: Some(0),
        ..Element::default()
    };
    assert_eq!(elements_hash(&[odd]), "5b329e8654d1675c757a5bba168d8101");
    assert_eq!(chain_hash(""), "d751713988987e9331980363e24189ce");
}

#[test]
fn stats_statement_and_items() {
    use crate::compile::dates::ProjectTime;
    use crate::compile::properties::FilterContext;
    let pt = ProjectTime::utc();
    let no_cohort = |_: i64| None;
    let no_action = |_: i64| None;
    let tests =
        json!([{"key": "email", "value": "@x.com", "operator": "not_icontains", "type": "person"}]);
    let cx = FilterContext {
        event_alias: "e",
        project_param: "$1::int8".into(),
        person_props: None,
        pt: &pt,
        cohort: &no_cohort,
        action: &no_action,
        test_account_filters: &tests,
        materialized: &[],
    };
    let props = json!([{"key": "tag_name", "value": "a", "type": "element"}]);
    let mut req = StatsRequest {
        project_id: 7,
        include: vec!["$autocapture".into(), "$rageclick".into()],
        properties: &props,
        filter_test_accounts: false,
        from_us: 0,
        to_us: 1,
        limit: 100,
        offset: 0,
    };
    let (sql, params) = stats_sql(&req, &cx).unwrap();
    assert!(sql.contains("e.event = ANY($2::text[])"), "{sql}");
    assert!(sql.contains("AND (e.elements_chain ~ $5::text)"), "{sql}");
    assert!(sql.ends_with("LIMIT $6::int8 OFFSET $7::int8"), "{sql}");
    assert_eq!(params[0], crate::compile::sql::Param::Int(7));
    assert_eq!(params[5], crate::compile::sql::Param::Int(101));
    req.include = vec!["$pageview".into()];
    let e = stats_sql(&req, &cx).unwrap_err();
    assert_eq!(e.attr.as_deref(), Some("include"));
    let item = stats_item(r#"a:nth-child="1"nth-of-type="1""#, "$rageclick", 3);
    assert_eq!(item["count"], json!(3));
    assert_eq!(item["type"], json!("$rageclick"));
    assert_eq!(item["elements"][0]["tag_name"], json!("a"));
    assert_eq!(item["hash"].as_str().unwrap().len(), 32);
}
