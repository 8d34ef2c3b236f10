//! JSON Schemas (OpenAPI 3.0 dialect: `nullable`, no `$schema`) of the two query forms this
//! module parses: the legacy `filters` dict and the insight query nodes.
//!
//! Built from the parser's own tables (the `*Keys` constants, the enum name lists, the kind
//! names), so a renamed key or a new choice changes the schema too. The schemas are checked in
//! as `docs/openapi/query-schemas.json`, which `scripts/openapi.py` puts into the served OpenAPI
//! document; the snapshot test below fails when the file differs from what this builds
//! (`PGI_UPDATE_SCHEMA=1` rewrites it), and a second test fails when the parser reads a key the
//! schemas do not name (every key goes through `get`, which records it in tests).
//!
//! The schemas are as permissive as the parser: unknown keys are allowed everywhere
//! (`additionalProperties: true`), `null` means "not given" (every field is nullable), choices are
//! listed in PostHog's spelling (the parser also takes other letter cases). Values the parser
//! also accepts as strings (GET query strings: `"14"`, `"true"`, JSON text for lists) are
//! described by their JSON type only.

use serde_json::{Map, Value, json};

use super::*;

/// `#/components/schemas/<name>`.
fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn nstring() -> Value {
    json!({"type": "string", "nullable": true})
}

fn nbool() -> Value {
    json!({"type": "boolean", "nullable": true})
}

/// An integer in `min..=max`, as `opt_int` checks it (`None`: unbounded on that side).
fn int(min: Option<i64>, max: Option<i64>) -> Value {
    let mut s = json!({"type": "integer", "nullable": true});
    if let Some(min) = min {
        s["minimum"] = json!(min);
    }
    if let Some(max) = max {
        s["maximum"] = json!(max);
    }
    s
}

/// `opt_u32(m, key, min)`.
fn u32_from(min: u32) -> Value {
    int(Some(i64::from(min)), Some(i64::from(u32::MAX)))
}

/// `opt_group_index`: PostHog's group types 0 to 4.
fn group_index() -> Value {
    int(Some(0), Some(4))
}

/// A 0-based step (`opt_step`).
fn step() -> Value {
    int(Some(0), Some(i64::from(u32::MAX)))
}

/// One of `names` (OpenAPI 3.0.3: a nullable enum lists `null`).
fn choice(names: &[&str]) -> Value {
    let mut values: Vec<Value> = names.iter().map(|n| json!(n)).collect();
    values.push(Value::Null);
    json!({"type": "string", "enum": values, "nullable": true})
}

fn list(items: Value) -> Value {
    json!({"type": "array", "items": items, "nullable": true})
}

/// An open object with these properties (and `required` ones).
fn object(description: &str, props: Vec<(&str, Value)>, required: &[&str]) -> Value {
    let mut properties = Map::new();
    for (key, schema) in props {
        properties.insert(key.to_string(), schema);
    }
    let mut s = json!({
        "type": "object",
        "description": description,
        "additionalProperties": true,
        "properties": properties,
    });
    if !required.is_empty() {
        s["required"] = json!(required);
    }
    s
}

/// Property filters (compiled by the `properties` module): a list of filters or a group
/// `{type: AND|OR, values: [...]}`.
fn property_filters() -> Value {
    json!({
        "description": "Property filters: a list of {key, value, operator, type} filters, or a group {\"type\": \"AND\"|\"OR\", \"values\": [...]}.",
        "nullable": true,
        "anyOf": [
            {"type": "array", "items": {"type": "object", "additionalProperties": true}},
            {"type": "object", "additionalProperties": true}
        ]
    })
}

/// The fields every entity shape shares (`entity_common`).
fn entity_common(optional_keys: &[&'static str]) -> Vec<(&'static str, Value)> {
    let mut props = vec![
        ("name", nstring()),
        ("custom_name", nstring()),
        ("math", choice(MATH_NAMES)),
        ("math_property", nstring()),
        ("math_group_type_index", group_index()),
        ("math_hogql", nstring()),
        ("properties", property_filters()),
    ];
    for key in optional_keys {
        props.push((key, nbool()));
    }
    props
}

fn with(
    mut props: Vec<(&'static str, Value)>,
    more: Vec<(&'static str, Value)>,
) -> Vec<(&'static str, Value)> {
    props.extend(more);
    props
}

/// An event name or an action id (retention entities, where `type` decides).
fn event_or_action_id() -> Value {
    json!({"nullable": true, "anyOf": [{"type": "string"}, {"type": "integer"}]})
}

fn entity_type() -> Value {
    choice(&["events", "actions"])
}

/// The breakdown keys, spelled the same in a legacy filter and a `breakdownFilter`
/// (`parse_breakdown`, `single_breakdown`, `multi_breakdown_spec`).
fn breakdown_props() -> Vec<(&'static str, Value)> {
    let keys = json!({"nullable": true, "description": "A property key (or a HogQL expression, or cohort ids and \"all\" for cohort breakdowns), or a list of them.",
        "anyOf": [{"type": "string"}, {"type": "integer"},
                  {"type": "array", "items": {"nullable": true, "anyOf": [{"type": "string"}, {"type": "integer"}]}}]});
    vec![
        ("breakdown", keys.clone()),
        ("breakdown_type", choice(BREAKDOWN_TYPE_NAMES)),
        ("breakdown_group_type_index", group_index()),
        ("breakdown_histogram_bin_count", u32_from(1)),
        ("breakdown_normalize_url", nbool()),
        ("breakdown_limit", u32_from(1)),
        ("breakdown_hide_other_aggregation", nbool()),
        (
            "breakdowns",
            list(object(
                "One breakdown of a multi-breakdown.",
                vec![
                    ("property", keys),
                    ("type", choice(BREAKDOWN_TYPE_NAMES)),
                    ("group_type_index", group_index()),
                    ("histogram_bin_count", u32_from(1)),
                    ("normalize_url", nbool()),
                ],
                &["property"],
            )),
        ),
    ]
}

fn compare_props() -> Vec<(&'static str, Value)> {
    vec![("compare", nbool()), ("compare_to", nstring())]
}

fn trends_props(k: &TrendsKeys) -> Vec<(&'static str, Value)> {
    vec![
        ("display", choice(DISPLAY_NAMES)),
        ("formula", nstring()),
        ("formulas", list(json!({"type": "string"}))),
        (
            k.formula_nodes,
            list(object(
                "A formula with its display name.",
                vec![("formula", nstring()), ("custom_name", nstring())],
                &[],
            )),
        ),
        (k.smoothing, u32_from(1)),
    ]
}

fn funnel_props(k: &FunnelKeys, exclusion: Value) -> Vec<(&'static str, Value)> {
    let mut props = vec![
        (k.order, choice(FunnelOrder::NAMES)),
        (k.viz, choice(FunnelViz::NAMES)),
        (k.window_interval, int(Some(1), None)),
        (k.exclusions, list(exclusion)),
        (k.from_step, step()),
        (k.to_step, step()),
        (k.attribution, choice(AttributionType::NAMES)),
        (k.attribution_value, u32_from(0)),
        // PostHog's time-to-convert also takes "auto".
        (
            k.bin_count,
            json!({"nullable": true, "anyOf": [
            {"type": "integer", "minimum": 1, "maximum": u32::MAX}, {"type": "string", "enum": ["auto"]}]}),
        ),
        (k.step_reference, choice(StepReference::NAMES)),
    ];
    for unit in k.window_unit {
        props.push((unit, choice(WINDOW_UNIT_NAMES)));
    }
    if let Some(days) = k.window_days {
        props.push((days, int(Some(1), None)));
    }
    props
}

fn retention_props(k: &RetentionKeys) -> Vec<(&'static str, Value)> {
    vec![
        (k.target, r("RetentionEntity")),
        (k.returning, r("RetentionEntity")),
        (k.retention_type, choice(RetentionType::NAMES)),
        ("period", choice(RetentionPeriod::NAMES)),
        (k.total_intervals, u32_from(1)),
        ("cumulative", nbool()),
        (k.minimum_occurrences, u32_from(1)),
        (k.reference, choice(RetentionReference::NAMES)),
    ]
}

fn paths_props(k: &PathsKeys) -> Vec<(&'static str, Value)> {
    vec![
        (
            k.include_event_types,
            list(json!({"type": "string", "enum": PATH_TYPE_NAMES})),
        ),
        (k.start_point, nstring()),
        (k.end_point, nstring()),
        (k.step_limit, u32_from(1)),
        (k.path_groupings, list(json!({"type": "string"}))),
        (k.exclude_events, list(json!({"type": "string"}))),
        (k.edge_limit, u32_from(1)),
        (k.min_edge_weight, u32_from(0)),
        (k.max_edge_weight, u32_from(0)),
        (
            k.local_path_cleaning_filters,
            list(object(
                "A path-cleaning rule: regex matches become alias.",
                vec![("regex", nstring()), ("alias", nstring())],
                &[],
            )),
        ),
        (k.path_replacements, nbool()),
        (k.hogql_expression, nstring()),
    ]
}

fn stickiness_props(k: &StickinessKeys) -> Vec<(&'static str, Value)> {
    vec![
        (k.computed_as, choice(StickinessComputation::NAMES)),
        (
            k.criteria,
            object(
                "Active in a bucket means `operator value` events there.",
                vec![
                    ("operator", choice(STICKINESS_OPERATOR_NAMES)),
                    ("value", int(Some(0), None)),
                ],
                &[],
            ),
        ),
    ]
}

fn lifecycle_list() -> Value {
    list(json!({"type": "string", "enum": LIFECYCLE_NAMES}))
}

/// The legacy `filters` dict: one open object with the keys of every insight kind.
fn legacy_filter() -> Value {
    let mut insight_names: Vec<&str> = InsightKind::LEGACY_NAMES.to_vec();
    insight_names.push("SESSIONS"); // an old alias of TRENDS
    let mut props = vec![
        ("insight", choice(&insight_names)),
        ("shown_as", choice(&["Stickiness", "Lifecycle"])),
        ("events", list(r("LegacyEventEntity"))),
        ("actions", list(r("LegacyActionEntity"))),
        ("date_from", nstring()),
        ("date_to", nstring()),
        ("explicit_date", nbool()),
        ("interval", choice(INTERVAL_NAMES)),
        ("interval_count", u32_from(1)),
        ("properties", property_filters()),
        ("filter_test_accounts", nbool()),
        ("aggregation_group_type_index", group_index()),
        ("funnel_aggregate_by_hogql", nstring()),
        ("path_type", choice(PATH_TYPE_NAMES)),
        ("funnel_paths", choice(FUNNEL_PATH_TYPE_NAMES)),
        ("funnel_filter", r("LegacyFilter")),
        ("toggled_lifecycles", lifecycle_list()),
        ("toggledLifecycles", lifecycle_list()),
    ];
    props.extend(breakdown_props());
    props.extend(compare_props());
    props.extend(trends_props(&LEGACY_TRENDS));
    props.extend(funnel_props(&LEGACY_FUNNEL, r("LegacyExclusion")));
    props.extend(retention_props(&LEGACY_RETENTION));
    props.extend(paths_props(&LEGACY_PATHS));
    props.extend(stickiness_props(&LEGACY_STICKINESS));
    object(
        "PostHog's legacy insight filter. `insight` picks the kind (TRENDS by default, or the endpoint's kind); \
         unknown keys are ignored. In GET query strings every value is text (lists and objects as JSON).",
        props,
        &[],
    )
}

/// A query node of `kind`, as `parse_node` reads it.
fn query_node(kind: InsightKind) -> Value {
    let mut props = vec![
        (
            "kind",
            json!({"type": "string", "enum": [kind.node_kind()]}),
        ),
        ("dateRange", r("DateRange")),
        ("interval", choice(INTERVAL_NAMES)),
        ("intervalCount", u32_from(1)),
        ("properties", property_filters()),
        ("filterTestAccounts", nbool()),
        ("aggregation_group_type_index", group_index()),
        ("funnelAggregateByHogQL", nstring()),
    ];
    if kind.has_series() {
        props.push(("series", list(r("SeriesNode"))));
    }
    if kind.has_breakdown() {
        props.push(("breakdownFilter", r("BreakdownFilter")));
    }
    if kind.has_compare() {
        props.push(("compareFilter", r("CompareFilter")));
    }
    let options = match kind {
        InsightKind::Trends => trends_props(&NODE_TRENDS),
        InsightKind::Funnels => with(
            funnel_props(&NODE_FUNNEL, r("FunnelExclusionNode")),
            vec![("funnelAggregateByHogQL", nstring())],
        ),
        InsightKind::Retention => retention_props(&NODE_RETENTION),
        InsightKind::Paths => paths_props(&NODE_PATHS),
        InsightKind::Stickiness => stickiness_props(&NODE_STICKINESS),
        InsightKind::Lifecycle => vec![("toggledLifecycles", lifecycle_list())],
    };
    // Older nodes kept compare inside trendsFilter / stickinessFilter.
    let options = if kind.has_compare() && kind != InsightKind::Funnels {
        with(options, compare_props())
    } else {
        options
    };
    props.push((
        kind.node_filter_key(),
        object(&format!("{} options.", kind.node_kind()), options, &[]),
    ));
    if kind == InsightKind::Paths {
        props.push(("funnelPathsFilter", r("FunnelPathsFilter")));
    }
    let description = format!("PostHog's {} node.", kind.node_kind());
    object(&description, props, &["kind"])
}

/// Every schema, by component name.
pub fn query_schemas() -> Value {
    let mut s = Map::new();
    let mut put = |name: &str, schema: Value| {
        s.insert(name.to_string(), schema);
    };
    put("LegacyFilter", legacy_filter());
    put(
        "LegacyEventEntity",
        object(
            "An event of a legacy filter; `id` is the event name (null: all events).",
            with(
                vec![
                    ("id", nstring()),
                    ("type", entity_type()),
                    ("order", int(None, None)),
                ],
                entity_common(&["optionalInFunnel", "optional_in_funnel"]),
            ),
            &[],
        ),
    );
    put(
        "LegacyActionEntity",
        object(
            "A saved action of a legacy filter, by id.",
            with(
                vec![
                    ("id", int(None, None)),
                    ("type", entity_type()),
                    ("order", int(None, None)),
                ],
                entity_common(&["optionalInFunnel", "optional_in_funnel"]),
            ),
            &["id"],
        ),
    );
    let exclusion_steps = |k: &FunnelKeys| vec![(k.from_step, step()), (k.to_step, step())];
    let steps = [LEGACY_FUNNEL.from_step, LEGACY_FUNNEL.to_step];
    put(
        "LegacyExclusion",
        object(
            "Persons doing this event or action between the two steps are excluded.",
            with(
                with(
                    vec![("id", event_or_action_id()), ("type", entity_type())],
                    exclusion_steps(&LEGACY_FUNNEL),
                ),
                entity_common(&[]),
            ),
            &steps,
        ),
    );
    put(
        "RetentionEntity",
        object(
            "A retention entity: an event (`id` its name, null: all events) or an action (`type: actions`, `id` its id).",
            with(
                vec![
                    ("id", event_or_action_id()),
                    ("type", entity_type()),
                    ("kind", choice(&["EventsNode", "ActionsNode"])),
                ],
                entity_common(&[]),
            ),
            &[],
        ),
    );
    put(
        "EventsNode",
        object(
            "A series step: an event (null: all events).",
            with(
                vec![
                    ("kind", json!({"type": "string", "enum": ["EventsNode"]})),
                    ("event", nstring()),
                ],
                entity_common(&["optionalInFunnel"]),
            ),
            &[],
        ),
    );
    put(
        "ActionsNode",
        object(
            "A series step: a saved action.",
            with(
                vec![
                    ("kind", json!({"type": "string", "enum": ["ActionsNode"]})),
                    ("id", int(None, None)),
                ],
                entity_common(&["optionalInFunnel"]),
            ),
            &["kind", "id"],
        ),
    );
    put(
        "SeriesNode",
        json!({"anyOf": [r("EventsNode"), r("ActionsNode")]}),
    );
    let steps = [NODE_FUNNEL.from_step, NODE_FUNNEL.to_step];
    put(
        "FunnelExclusionNode",
        object(
            "A funnel exclusion: an event or action between two steps.",
            with(
                with(
                    vec![
                        (
                            "kind",
                            choice(&[
                                "FunnelExclusionEventsNode",
                                "FunnelExclusionActionsNode",
                                "EventsNode",
                                "ActionsNode",
                            ]),
                        ),
                        ("event", nstring()),
                        ("id", int(None, None)),
                    ],
                    exclusion_steps(&NODE_FUNNEL),
                ),
                entity_common(&[]),
            ),
            &steps,
        ),
    );
    put(
        "DateRange",
        object(
            "The query's date range (relative like -7d, or ISO dates).",
            vec![
                ("date_from", nstring()),
                ("date_to", nstring()),
                ("explicitDate", nbool()),
            ],
            &[],
        ),
    );
    put(
        "BreakdownFilter",
        object(
            "Breakdown by one or more properties.",
            breakdown_props(),
            &[],
        ),
    );
    put(
        "CompareFilter",
        object("Compare with a previous period.", compare_props(), &[]),
    );
    put(
        "FunnelPathsFilter",
        object(
            "Paths around a funnel step.",
            vec![
                ("funnelPathType", choice(FUNNEL_PATH_TYPE_NAMES)),
                ("funnelSource", r("FunnelsQuery")),
                ("funnelStep", int(None, None)),
            ],
            &[],
        ),
    );
    for kind in InsightKind::ALL {
        put(kind.node_kind(), query_node(kind));
    }
    let kinds: Vec<Value> = InsightKind::ALL.iter().map(|k| r(k.node_kind())).collect();
    put(
        "InsightQueryNode",
        json!({"description": "An insight query node.", "oneOf": kinds}),
    );
    put(
        "InsightVizNode",
        object(
            "An insight query node wrapped for display.",
            vec![
                (
                    "kind",
                    json!({"type": "string", "enum": ["InsightVizNode"]}),
                ),
                ("source", r("InsightQueryNode")),
            ],
            &["kind", "source"],
        ),
    );
    put(
        "InsightQuery",
        json!({
        "description": "An insight query node, bare or in an InsightVizNode.",
        "oneOf": [r("InsightQueryNode"), r("InsightVizNode")]}),
    );
    Value::Object(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const SNAPSHOT: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/openapi/query-schemas.json"
    );

    #[test]
    fn checked_in_schemas_are_current() {
        let built = serde_json::to_string_pretty(&query_schemas()).unwrap() + "\n";
        if std::env::var_os("PGI_UPDATE_SCHEMA").is_some() {
            std::fs::write(SNAPSHOT, &built).unwrap();
        }
        let stored = std::fs::read_to_string(SNAPSHOT).unwrap_or_default();
        assert!(
            stored == built,
            "{SNAPSHOT} is stale: run PGI_UPDATE_SCHEMA=1 cargo test -p pg_insights_core schema"
        );
    }

    /// Every property name anywhere in the schemas.
    fn schema_keys(v: &Value, out: &mut BTreeSet<String>) {
        let Value::Object(m) = v else { return };
        if let Some(Value::Object(props)) = m.get("properties") {
            for (key, schema) in props {
                out.insert(key.clone());
                schema_keys(schema, out);
            }
        }
        if let Some(items) = m.get("items") {
            schema_keys(items, out);
        }
        for combinator in ["anyOf", "oneOf"] {
            if let Some(Value::Array(schemas)) = m.get(combinator) {
                schemas.iter().for_each(|x| schema_keys(x, out));
            }
        }
        if !m.contains_key("type")
            && !m.contains_key("$ref")
            && !m.contains_key("anyOf")
            && !m.contains_key("oneOf")
        {
            m.values().for_each(|x| schema_keys(x, out)); // the top level: name -> schema
        }
    }

    /// Queries that reach every reader of the parser: both forms of each kind with every nested
    /// object present once.
    fn samples() -> Vec<Value> {
        let entity = json!({"id": "$pageview", "name": "p", "math": "total", "properties": []});
        let exclusion =
            json!({"id": "x", "type": "events", "funnel_from_step": 0, "funnel_to_step": 1});
        let legacy_breakdowns = json!([{"property": "$browser", "type": "event"}]);
        let mut out = vec![];
        for insight in InsightKind::LEGACY_NAMES {
            out.push(json!({"insight": insight, "events": [entity, entity], "actions": [{"id": 1}],
                "exclusions": [exclusion], "breakdowns": legacy_breakdowns, "formula_nodes": [{"formula": "A"}],
                "target_entity": entity, "returning_entity": entity, "stickiness_criteria": {"operator": "gte", "value": 1},
                "local_path_cleaning_filters": [{"regex": "a", "alias": "b"}], "funnel_paths": "funnel_path_after_step",
                "funnel_filter": {"funnel_step": 1}, "compare": true}));
        }
        // The single breakdown and the plain formula lists, which `breakdowns` / `formula_nodes`
        // would otherwise shadow.
        out.push(json!({"breakdown": "$browser", "formulas": ["A"]}));
        out.push(json!({"kind": "TrendsQuery", "breakdownFilter": {"breakdown": "$browser"}, "trendsFilter": {"formulas": ["A"]}}));
        out.push(json!({"insight": "PATHS", "toggledLifecycles": ["new"]}));
        out.push(json!({"shown_as": "Lifecycle", "toggled_lifecycles": ["new"]}));
        let series =
            json!([{"kind": "EventsNode", "event": "a"}, {"kind": "ActionsNode", "id": 1}]);
        for kind in InsightKind::ALL {
            let series = if kind == InsightKind::Lifecycle {
                json!([series[0]])
            } else {
                series.clone()
            };
            let mut node = json!({"kind": kind.node_kind(), "series": series, "dateRange": {"date_from": "-7d"},
                "breakdownFilter": {"breakdown": "$browser", "breakdowns": legacy_breakdowns},
                "compareFilter": {"compare": true}, "funnelPathsFilter": {}});
            node[kind.node_filter_key()] = json!({"exclusions": [{"event": "x", "funnelFromStep": 0, "funnelToStep": 1}],
                "formulaNodes": [{"formula": "A"}], "targetEntity": entity, "returningEntity": entity,
                "stickinessCriteria": {"operator": "gte"}, "localPathCleaningFilters": [{"regex": "a"}]});
            out.push(json!({"kind": "InsightVizNode", "source": node}));
        }
        out
    }

    #[test]
    fn schemas_name_every_key_the_parser_reads() {
        let mut documented = BTreeSet::new();
        schema_keys(&query_schemas(), &mut documented);
        let read = super::super::trace_keys(|| {
            for sample in samples() {
                parse_query(&sample).unwrap_or_else(|e| panic!("{sample}: {e:?}"));
            }
        });
        let missing: Vec<&String> = read.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "keys the parser reads but the schemas do not name: {missing:?}"
        );
        // And the other way round: a key the schemas name that the parser never reads is stale.
        // funnelPathsFilter's keys are read by the paths engine (engines::paths::funnel_paths).
        let engine_keys = ["funnelPathType", "funnelSource", "funnelStep"];
        let stale: Vec<&String> = documented
            .difference(&read)
            .filter(|k| !engine_keys.contains(&k.as_str()))
            .collect();
        assert!(
            stale.is_empty(),
            "keys the schemas name but the parser never reads: {stale:?}"
        );
    }

    #[test]
    fn funnel_path_types_are_the_engines() {
        for name in FUNNEL_PATH_TYPE_NAMES {
            let p = PathsOptions {
                funnel_paths: Some(
                    json!({"funnelPathType": name, "funnelStep": 2, "funnelSource": {}}),
                ),
                ..PathsOptions::default()
            };
            assert!(crate::engines::paths::funnel_paths(&p).is_ok(), "{name}");
        }
    }
}
