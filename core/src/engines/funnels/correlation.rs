//! Funnel correlation (docs/funnels.md#correlation): which events, event properties or person
//! properties go with converting (or dropping off) in a funnel. Pure Rust; the extension runs the
//! SQL.
//!
//! Three steps, each a function here:
//! 1. [`parse_request`]: the funnel query plus the correlation parameters, in PostHog's legacy
//!    form (`funnel_correlation_type`, `funnel_correlation_names`, …) or as a
//!    `FunnelCorrelationQuery` / `FunnelCorrelationActorsQuery` node.
//! 2. The funnel engine, run in its `detail` drill-down mode (see [`crate::engines::funnels::ActorsRequest`]),
//!    gives every actor who entered the funnel: furthest step, entry time and conversion time.
//!    [`Population::from_outputs`] turns that into success/failure actors with their conversion
//!    window: `(entry, conversion)` for converted actors, `(entry, entry + window)` otherwise,
//!    both bounds exclusive and capped by the date range (PostHog's
//!    `timestamp > first_timestamp AND timestamp < coalesce(final_timestamp, first_timestamp + window)`).
//! 3. [`plan_counts`] compiles one statement over the population (bound as arrays) that counts,
//!    per candidate, the distinct successful and failed actors having it; [`result`] computes the
//!    odds ratios, drops insignificant candidates, sorts, limits and renders PostHog's body.
//!    [`plan_actors`] compiles the persons drill-down (`persons/funnel/correlation/`).
//!
//! Odds ratio with a prior of 1: `((s+1)·(F−f+1)) / ((S−s+1)·(f+1))`; `success` when > 1.

use serde_json::{Map, Value, json};

use crate::compile::context::with_filter_context;
use crate::compile::dates::DateRange;
use crate::compile::properties;
use crate::compile::sql::{Param, SqlBuilder};
use crate::engines::funnels::{Lookups, PG_EPOCH_OFFSET_US, Project, url_encode};
use crate::error::{QueryError, Result};
use crate::model::{Entity, EntityKind, InsightQuery};

/// PostHog's constants (funnel_correlation.py).
pub const MIN_PERSON_COUNT: f64 = 25.0;
pub const MIN_PERSON_PERCENTAGE: f64 = 0.02;
pub const PRIOR_COUNT: f64 = 1.0;
/// Top candidates kept per direction (success, failure).
pub const RESULT_LIMIT: usize = 10;

/// `funnel_correlation_type` / `funnelCorrelationType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorrelationType {
    Events,
    Properties,
    EventWithProperties,
}

impl CorrelationType {
    pub fn name(self) -> &'static str {
        match self {
            CorrelationType::Events => "events",
            CorrelationType::Properties => "properties",
            CorrelationType::EventWithProperties => "event_with_properties",
        }
    }
}

/// A parsed correlation request (insight or actors).
#[derive(Debug, Clone, PartialEq)]
pub struct CorrelationRequest {
    /// The funnel: a legacy filter (correlation keys removed) or a `FunnelsQuery` node.
    pub funnel: Value,
    pub kind: CorrelationType,
    /// `funnel_correlation_names`: person (or group) properties, `$all` for every one.
    pub names: Vec<String>,
    /// `funnel_correlation_exclude_names`: properties left out of `properties` correlation.
    pub exclude_names: Vec<String>,
    /// `funnel_correlation_event_names`: the events of `event_with_properties` correlation.
    pub event_names: Vec<String>,
    /// `funnel_correlation_exclude_event_names`: events left out of `events` correlation.
    pub exclude_event_names: Vec<String>,
    /// `funnel_correlation_event_exclude_property_names`: keys left out of `event_with_properties`.
    pub event_exclude_property_names: Vec<String>,
    /// The population: actors at this funnel step (1 = everyone who entered; −N = dropped
    /// before step N).
    pub funnel_step: i64,
    /// Actors drill-down: the correlated event (`{id, type, properties}`).
    pub person_entity: Option<Entity>,
    /// Actors drill-down: person property filters (`properties` correlation).
    pub property_values: Option<Value>,
    /// Actors drill-down: only converted (`true`) or only dropped (`false`) actors.
    pub converted: Option<bool>,
}

const LEGACY_KEYS: &[&str] = &[
    "funnel_correlation_type",
    "funnel_correlation_names",
    "funnel_correlation_exclude_names",
    "funnel_correlation_event_names",
    "funnel_correlation_exclude_event_names",
    "funnel_correlation_event_exclude_property_names",
    "funnel_correlation_person_entity",
    "funnel_correlation_property_values",
    "funnel_correlation_person_converted",
    "funnel_correlation_person_limit",
    "funnel_correlation_person_offset",
    "funnel_step",
    "funnel_step_breakdown",
    "funnel_custom_steps",
];

/// Decode a value that a query string may have JSON-encoded (`["a"]`, `{"id":…}`).
fn decoded(v: &Value) -> Value {
    match v {
        Value::String(s) if s.trim_start().starts_with(['[', '{']) => {
            serde_json::from_str(s).unwrap_or_else(|_| v.clone())
        }
        other => other.clone(),
    }
}

fn is_absent(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        _ => false,
    }
}

/// A list of names: a JSON list of strings, a JSON-encoded list, or one plain name.
fn name_list(m: &Map<String, Value>, key: &str) -> Result<Vec<String>> {
    if is_absent(m.get(key)) {
        return Ok(Vec::new());
    }
    match decoded(&m[key]) {
        Value::Array(a) => a
            .into_iter()
            .map(|x| match x {
                Value::String(s) => Ok(s),
                Value::Number(n) => Ok(n.to_string()),
                other => Err(QueryError::invalid(
                    key.to_string(),
                    format!("Expected a list of names, found {other}."),
                )),
            })
            .collect(),
        Value::String(s) => Ok(vec![s]),
        other => Err(QueryError::invalid(
            key.to_string(),
            format!("Expected a list of names, found {other}."),
        )),
    }
}

fn parse_type(v: Option<&Value>, attr: &str) -> Result<CorrelationType> {
    if is_absent(v) {
        return Ok(CorrelationType::Events);
    }
    match v.and_then(Value::as_str).map(str::trim) {
        Some("events") => Ok(CorrelationType::Events),
        Some("properties") => Ok(CorrelationType::Properties),
        Some("event_with_properties") => Ok(CorrelationType::EventWithProperties),
        _ => Err(QueryError::invalid(
            attr.to_string(),
            format!(
                "\"{}\" is not a valid choice: events, properties or event_with_properties.",
                v.map(|x| x
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string()))
                    .unwrap_or_default()
            ),
        )),
    }
}

fn parse_step(v: Option<&Value>, attr: &str) -> Result<i64> {
    if is_absent(v) {
        return Ok(1);
    }
    let bad = || {
        QueryError::invalid(
            attr.to_string(),
            "funnel_step must be a step number (1, 2, …) or a negative step from -2 for drop-offs.",
        )
    };
    let n = match v {
        Some(Value::Number(n)) => n.as_i64().ok_or_else(bad)?,
        Some(Value::String(s)) => s.trim().parse::<i64>().map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    if n == 0 || n == -1 || !(-64..=64).contains(&n) {
        return Err(bad());
    }
    Ok(n)
}

fn parse_bool(v: Option<&Value>, attr: &str) -> Result<Option<bool>> {
    if is_absent(v) {
        return Ok(None);
    }
    match v {
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            _ => Err(QueryError::invalid(
                attr.to_string(),
                "Must be true or false.",
            )),
        },
        _ => Err(QueryError::invalid(
            attr.to_string(),
            "Must be true or false.",
        )),
    }
}

/// The correlated event of the actors drill-down: legacy `{id, type, properties}` or an
/// `EventsNode` `{event, properties}`.
fn parse_entity(v: &Value, attr: &str) -> Result<Entity> {
    let v = decoded(v);
    let Value::Object(m) = &v else {
        return Err(QueryError::invalid(
            attr.to_string(),
            "Expected an event entity {\"id\": <event name>, \"type\": \"events\"}.",
        ));
    };
    let kind = match m.get("type").and_then(Value::as_str) {
        Some("actions") => EntityKind::Action {
            id: match m.get("id") {
                Some(Value::Number(n)) => n.as_i64(),
                Some(Value::String(s)) => s.trim().parse().ok(),
                _ => None,
            }
            .ok_or_else(|| {
                QueryError::invalid(attr.to_string(), "An action entity needs a numeric id.")
            })?,
        },
        None | Some("events") => {
            let name = m
                .get("id")
                .filter(|x| !x.is_null())
                .or_else(|| m.get("event"))
                .cloned()
                .unwrap_or(Value::Null);
            match name {
                Value::String(s) => EntityKind::Event { name: Some(s) },
                Value::Null => EntityKind::Event { name: None },
                _ => {
                    return Err(QueryError::invalid(
                        attr.to_string(),
                        "The entity id must be an event name.",
                    ));
                }
            }
        }
        Some(other) => {
            return Err(QueryError::invalid(
                attr.to_string(),
                format!("\"{other}\" is not a valid entity type: events or actions."),
            ));
        }
    };
    let mut e = Entity::new(kind);
    e.properties = decoded(m.get("properties").unwrap_or(&Value::Null));
    if !matches!(
        e.properties,
        Value::Null | Value::Array(_) | Value::Object(_)
    ) {
        return Err(QueryError::invalid(
            format!("{attr}__properties"),
            "Expected a list of property filters.",
        ));
    }
    Ok(e)
}

/// Parse a correlation request: a legacy filter with `funnel_correlation_*` keys, a
/// `FunnelCorrelationQuery {source: FunnelsActorsQuery {source: FunnelsQuery, funnelStep}}` or a
/// `FunnelCorrelationActorsQuery {source: FunnelCorrelationQuery, …}`.
pub fn parse_request(v: &Value) -> Result<CorrelationRequest> {
    let v = match v {
        Value::String(s) => serde_json::from_str::<Value>(s)
            .map_err(|e| QueryError::bad_json(None, format!("The query is not valid JSON: {e}")))?,
        other => other.clone(),
    };
    let Value::Object(m) = &v else {
        return Err(QueryError::bad_json(
            None,
            "Expected a JSON object for the query.",
        ));
    };
    match m.get("kind").and_then(Value::as_str) {
        Some("FunnelCorrelationActorsQuery") => {
            let source = m.get("source").cloned().unwrap_or(Value::Null);
            let mut req = parse_request(&source).map_err(|e| e.within("source"))?;
            if !matches!(
                source.get("kind").and_then(Value::as_str),
                Some("FunnelCorrelationQuery")
            ) {
                return Err(QueryError::invalid(
                    "source".to_string(),
                    "Expected a FunnelCorrelationQuery source.",
                ));
            }
            req.converted = parse_bool(
                m.get("funnelCorrelationPersonConverted"),
                "funnelCorrelationPersonConverted",
            )?;
            if let Some(e) = m
                .get("funnelCorrelationPersonEntity")
                .filter(|x| !x.is_null())
            {
                req.person_entity = Some(parse_entity(e, "funnelCorrelationPersonEntity")?);
            }
            if !is_absent(m.get("funnelCorrelationPropertyValues")) {
                req.property_values = Some(decoded(&m["funnelCorrelationPropertyValues"]));
            }
            Ok(req)
        }
        Some("FunnelCorrelationQuery") => {
            let actors = match m.get("source") {
                Some(Value::Object(s)) => s,
                _ => {
                    return Err(QueryError::invalid(
                        "source".to_string(),
                        "A FunnelCorrelationQuery needs a FunnelsActorsQuery source.",
                    ));
                }
            };
            let funnel = match actors.get("source") {
                Some(f @ Value::Object(_)) => f.clone(),
                _ => {
                    return Err(QueryError::invalid(
                        "source__source".to_string(),
                        "A FunnelsActorsQuery needs a FunnelsQuery source.",
                    ));
                }
            };
            Ok(CorrelationRequest {
                funnel,
                kind: parse_type(m.get("funnelCorrelationType"), "funnelCorrelationType")?,
                names: name_list(m, "funnelCorrelationNames")?,
                exclude_names: name_list(m, "funnelCorrelationExcludeNames")?,
                event_names: name_list(m, "funnelCorrelationEventNames")?,
                exclude_event_names: name_list(m, "funnelCorrelationExcludeEventNames")?,
                event_exclude_property_names: name_list(
                    m,
                    "funnelCorrelationEventExcludePropertyNames",
                )?,
                funnel_step: parse_step(actors.get("funnelStep"), "source__funnelStep")?,
                person_entity: None,
                property_values: None,
                converted: None,
            })
        }
        Some("FunnelsQuery") => {
            // A bare funnel: correlate events over everyone who entered.
            Ok(CorrelationRequest {
                funnel: v.clone(),
                kind: CorrelationType::Events,
                names: Vec::new(),
                exclude_names: Vec::new(),
                event_names: Vec::new(),
                exclude_event_names: Vec::new(),
                event_exclude_property_names: Vec::new(),
                funnel_step: 1,
                person_entity: None,
                property_values: None,
                converted: None,
            })
        }
        Some(other) => Err(QueryError::invalid(
            "kind".to_string(),
            format!("Expected a FunnelCorrelationQuery, got {other}."),
        )),
        None => {
            let mut funnel = m.clone();
            for k in LEGACY_KEYS {
                funnel.remove(*k);
            }
            let person_entity = match m.get("funnel_correlation_person_entity") {
                Some(e) if !is_absent(Some(e)) => {
                    Some(parse_entity(e, "funnel_correlation_person_entity")?)
                }
                _ => None,
            };
            Ok(CorrelationRequest {
                funnel: Value::Object(funnel),
                kind: parse_type(m.get("funnel_correlation_type"), "funnel_correlation_type")?,
                names: name_list(m, "funnel_correlation_names")?,
                exclude_names: name_list(m, "funnel_correlation_exclude_names")?,
                event_names: name_list(m, "funnel_correlation_event_names")?,
                exclude_event_names: name_list(m, "funnel_correlation_exclude_event_names")?,
                event_exclude_property_names: name_list(
                    m,
                    "funnel_correlation_event_exclude_property_names",
                )?,
                funnel_step: parse_step(m.get("funnel_step"), "funnel_step")?,
                person_entity,
                property_values: (!is_absent(m.get("funnel_correlation_property_values")))
                    .then(|| decoded(&m["funnel_correlation_property_values"])),
                converted: parse_bool(
                    m.get("funnel_correlation_person_converted"),
                    "funnel_correlation_person_converted",
                )?,
            })
        }
    }
}

impl CorrelationRequest {
    /// Event property correlation over `$autocapture`: candidates are elements chains.
    pub fn autocapture_elements(&self) -> bool {
        self.kind == CorrelationType::EventWithProperties
            && self.event_names.iter().any(|n| n == AUTOCAPTURE_EVENT)
    }
}

pub const AUTOCAPTURE_EVENT: &str = "$autocapture";
/// Between the event type and the elements chain in an autocapture candidate's value.
pub const ELEMENTS_DIVIDER: &str = "__~~__";

/// The correlation keys of a request in legacy form, for the people URLs.
fn legacy_params(req: &CorrelationRequest) -> Vec<(String, String)> {
    let list = |v: &[String]| serde_json::to_string(v).unwrap_or_default();
    let mut out = vec![(
        "funnel_correlation_type".to_string(),
        req.kind.name().to_string(),
    )];
    for (k, v) in [
        ("funnel_correlation_names", &req.names),
        ("funnel_correlation_exclude_names", &req.exclude_names),
        ("funnel_correlation_event_names", &req.event_names),
        (
            "funnel_correlation_exclude_event_names",
            &req.exclude_event_names,
        ),
        (
            "funnel_correlation_event_exclude_property_names",
            &req.event_exclude_property_names,
        ),
    ] {
        if !v.is_empty() {
            out.push((k.to_string(), list(v)));
        }
    }
    if req.funnel_step != 1 {
        out.push(("funnel_step".to_string(), req.funnel_step.to_string()));
    }
    out
}

/// Check the parameters the chosen correlation type needs (PostHog's 400s).
pub fn validate(req: &CorrelationRequest, actors: bool) -> Result<()> {
    if actors {
        return match req.kind {
            CorrelationType::Properties if req.property_values.is_none() => {
                Err(QueryError::invalid(
                    "funnel_correlation_property_values".to_string(),
                    "Property Correlation expects atleast one Property to get persons for",
                ))
            }
            CorrelationType::Properties => Ok(()),
            _ if req.person_entity.is_none() => Err(QueryError::invalid(
                "funnel_correlation_person_entity".to_string(),
                "No entity for persons specified",
            )),
            _ => Ok(()),
        };
    }
    match req.kind {
        CorrelationType::Properties if req.names.is_empty() => Err(QueryError::invalid(
            "funnel_correlation_names".to_string(),
            "Property Correlation expects atleast one Property to run correlation on",
        )),
        CorrelationType::EventWithProperties if req.event_names.is_empty() => {
            Err(QueryError::invalid(
                "funnel_correlation_event_names".to_string(),
                "Event Property Correlation expects atleast one event name to run correlation on",
            ))
        }
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// The population
// ---------------------------------------------------------------------------------------------

/// How actors are identified in the event store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorColumn {
    Person,
    Group(u8),
    Session,
}

impl ActorColumn {
    pub fn of(q: &InsightQuery) -> ActorColumn {
        match (
            q.aggregation_group_type_index,
            q.aggregate_by_hogql.as_deref().map(str::trim),
        ) {
            (Some(g), _) => ActorColumn::Group(g.min(4)),
            (None, Some(h)) if h.contains("session_id") => ActorColumn::Session,
            _ => ActorColumn::Person,
        }
    }
}

/// The funnel's actors at the requested step, each with its outcome and correlation window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Population {
    /// Person ids (persons) …
    pub ids: Vec<i64>,
    /// … or keys (groups, sessions), parallel to the vectors below.
    pub keys: Vec<String>,
    /// 1 = reached the last step, 0 = did not.
    pub success: Vec<i64>,
    /// Window bounds, exclusive, µs since 2000-01-01.
    pub from_us: Vec<i64>,
    pub to_us: Vec<i64>,
    pub success_total: u64,
    pub failure_total: u64,
}

impl Population {
    /// Build the population from the engine outputs of every funnel run
    /// (`{"outcomes": [[id, level, first_ts, final_ts|null], …]}`). An actor appearing in several
    /// runs (cohort breakdowns) keeps its furthest outcome.
    pub fn from_outputs(
        outputs: &[Value],
        actor: ActorColumn,
        num_steps: usize,
        funnel_step: i64,
        window_us: i64,
        range: &DateRange,
    ) -> Population {
        let mut best: std::collections::BTreeMap<String, (Value, usize, i64, Option<i64>)> =
            Default::default();
        for o in outputs {
            for row in o
                .get("outcomes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let (Some(id), Some(level), Some(t0)) = (
                    row.get(0),
                    row.get(1).and_then(Value::as_u64),
                    row.get(2).and_then(Value::as_i64),
                ) else {
                    continue;
                };
                let fin = row.get(3).and_then(Value::as_i64);
                let key = id
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| id.to_string());
                let level = level as usize;
                match best.get(&key) {
                    Some((_, l, _, _)) if *l >= level => {}
                    _ => {
                        best.insert(key, (id.clone(), level, t0, fin));
                    }
                }
            }
        }
        // The window never reaches past the date range (PostHog also bounds events by it).
        let range_end = range.to.timestamp_micros() - PG_EPOCH_OFFSET_US + 1;
        let mut p = Population::default();
        for (key, (id, level, t0, fin)) in best {
            let in_population = if funnel_step > 0 {
                level as i64 >= funnel_step
            } else {
                level as i64 == -funnel_step - 1
            };
            if !in_population {
                continue;
            }
            let converted = level >= num_steps;
            let end = match fin {
                Some(f) if converted => f,
                _ => t0.saturating_add(window_us),
            }
            .min(range_end);
            match actor {
                ActorColumn::Person => match id.as_i64() {
                    Some(i) => p.ids.push(i),
                    None => continue,
                },
                _ => p.keys.push(key),
            }
            p.success.push(converted as i64);
            p.from_us.push(t0);
            p.to_us.push(end.max(t0));
            if converted {
                p.success_total += 1;
            } else {
                p.failure_total += 1;
            }
        }
        p
    }

    pub fn len(&self) -> usize {
        self.success.len()
    }

    pub fn is_empty(&self) -> bool {
        self.success.is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// Planning
// ---------------------------------------------------------------------------------------------

/// The event names the funnel's steps match (action steps: their events), which are never
/// correlation candidates.
pub fn step_event_names(q: &InsightQuery, lookups: &Lookups) -> Vec<String> {
    let mut out = Vec::new();
    for e in &q.series {
        match &e.kind {
            EntityKind::Event { name: Some(n) } => out.push(n.clone()),
            EntityKind::Event { name: None } => {}
            EntityKind::Action { id } => {
                if let Some((steps, _)) = (lookups.action)(*id) {
                    for s in steps.as_array().into_iter().flatten() {
                        if let Some(ev) = s.get("event").and_then(Value::as_str) {
                            out.push(ev.to_string());
                        }
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `WITH w AS (…)`: the population as a relation `w(actor, success, t0, t1)`, from bound arrays.
/// Materialized, so each window bound is computed once per actor rather than once per joined
/// event (a quarter of the time on 100k actors × 1M events).
fn population_cte(pop: &Population, actor: ActorColumn, b: &mut SqlBuilder) -> String {
    let ids = match actor {
        ActorColumn::Person => b.param(Param::IntArray(pop.ids.clone())),
        _ => b.param(Param::TextArray(pop.keys.clone())),
    };
    let success = b.param(Param::IntArray(pop.success.clone()));
    let t0 = b.param(Param::IntArray(pop.from_us.clone()));
    let t1 = b.param(Param::IntArray(pop.to_us.clone()));
    format!(
        "w AS MATERIALIZED (SELECT u.actor, u.success = 1 AS success, \
         timestamptz '2000-01-01 00:00:00+00' + u.t0 * interval '1 microsecond' AS t0, \
         timestamptz '2000-01-01 00:00:00+00' + u.t1 * interval '1 microsecond' AS t1 \
         FROM unnest({ids}, {success}, {t0}, {t1}) AS u(actor, success, t0, t1))"
    )
}

/// The join of the population with its events inside each actor's window.
fn events_join(
    actor: ActorColumn,
    project: &str,
    range: &DateRange,
    step_names: &[String],
    b: &mut SqlBuilder,
) -> String {
    let actor_match = match actor {
        ActorColumn::Person => "e.person_id = w.actor".to_string(),
        ActorColumn::Group(g) => format!("e.group_{g} = w.actor"),
        ActorColumn::Session => "e.session_id = w.actor".to_string(),
    };
    let from = b.param(Param::timestamp(range.from));
    let to = b.param(Param::timestamp(range.to));
    let steps = b.param(Param::TextArray(step_names.to_vec()));
    format!(
        "w JOIN insights.events e ON e.project_id = {project} AND {actor_match} \
         AND e.\"timestamp\" > w.t0 AND e.\"timestamp\" < w.t1 \
         AND e.\"timestamp\" >= {from} AND e.\"timestamp\" <= {to} \
         AND e.event <> ALL({steps})"
    )
}

/// The contingency statement: rows `(event text, key text, value text, success int8, failure int8)`,
/// one per candidate (`event` null for property correlation, `key`/`value` null for events).
pub fn plan_counts(
    req: &CorrelationRequest,
    q: &InsightQuery,
    project: &Project,
    range: &DateRange,
    pop: &Population,
    step_names: &[String],
) -> (String, Vec<Param>) {
    let actor = ActorColumn::of(q);
    let mut b = SqlBuilder::new();
    let project_p = b.int(project.id);
    let w = population_cte(pop, actor, &mut b);
    let success = "count(DISTINCT w.actor) FILTER (WHERE w.success)";
    let failure = "count(DISTINCT w.actor) FILTER (WHERE NOT w.success)";
    let sql = match req.kind {
        CorrelationType::Events => {
            let join = events_join(actor, &project_p, range, step_names, &mut b);
            let excl = b.param(Param::TextArray(req.exclude_event_names.clone()));
            format!(
                "WITH {w} SELECT e.event, NULL::text, NULL::text, {success}, {failure} \
                 FROM {join} WHERE e.event <> ALL({excl}) GROUP BY e.event"
            )
        }
        CorrelationType::EventWithProperties if req.autocapture_elements() => {
            // PostHog's special case: with `$autocapture` among the events, each listed event's
            // candidate is its event type and elements chain (`elements_chain`).
            let join = events_join(actor, &project_p, range, step_names, &mut b);
            let names = b.param(Param::TextArray(req.event_names.clone()));
            let excl = b.param(Param::TextArray(req.event_exclude_property_names.clone()));
            let divider = b.text(ELEMENTS_DIVIDER);
            format!(
                "WITH {w} SELECT e.event, 'elements_chain', \
                 coalesce(e.properties ->> '$event_type', '') || {divider} || e.elements_chain, \
                 {success}, {failure} \
                 FROM {join} AND e.event = ANY({names}) \
                 WHERE 'elements_chain' <> ALL({excl}) \
                 GROUP BY 1, 2, 3 HAVING count(DISTINCT w.actor) > 2"
            )
        }
        CorrelationType::EventWithProperties => {
            let join = events_join(actor, &project_p, range, step_names, &mut b);
            let names = b.param(Param::TextArray(req.event_names.clone()));
            let excl = b.param(Param::TextArray(req.event_exclude_property_names.clone()));
            format!(
                "WITH {w} SELECT e.event, kv.key, kv.value #>> '{{}}', {success}, {failure} \
                 FROM {join} AND e.event = ANY({names}) \
                 CROSS JOIN LATERAL jsonb_each(e.properties) AS kv \
                 WHERE jsonb_typeof(kv.value) = 'string' AND kv.key <> ALL({excl}) \
                 GROUP BY 1, 2, 3 HAVING count(DISTINCT w.actor) > 2"
            )
        }
        CorrelationType::Properties => {
            let (join, props) = match actor {
                ActorColumn::Group(g) => {
                    let gp = b.int(g as i64);
                    (
                        format!(
                            "w JOIN insights.groups p ON p.project_id = {project_p} \
                             AND p.group_type_index = {gp} AND p.group_key = w.actor"
                        ),
                        "p.properties",
                    )
                }
                // Sessions have no properties of their own: their person's.
                ActorColumn::Session => (
                    format!(
                        "w JOIN LATERAL (SELECT pp.properties FROM insights.events se \
                         JOIN insights.persons pp ON pp.id = se.person_id \
                         WHERE se.project_id = {project_p} AND se.session_id = w.actor LIMIT 1) p ON TRUE"
                    ),
                    "p.properties",
                ),
                ActorColumn::Person => (
                    format!(
                        "w JOIN insights.persons p ON p.project_id = {project_p} AND p.id = w.actor"
                    ),
                    "p.properties",
                ),
            };
            // Values as PostHog's trimmed raw JSON: strings bare, other values as JSON text;
            // a named property the actor lacks is "".
            let pairs = if req.names.iter().any(|n| n == "$all") {
                format!(
                    "SELECT kv.key, coalesce(kv.value #>> '{{}}', 'null') FROM jsonb_each({props}) AS kv"
                )
            } else {
                let names = b.param(Param::TextArray(req.names.clone()));
                format!(
                    "SELECT k.name, CASE WHEN {props} ? k.name \
                     THEN coalesce({props} -> k.name #>> '{{}}', 'null') ELSE '' END \
                     FROM unnest({names}) AS k(name)"
                )
            };
            let excl = b.param(Param::TextArray(req.exclude_names.clone()));
            format!(
                "WITH {w} SELECT NULL::text, pv.key, pv.value, {success}, {failure} \
                 FROM {join} CROSS JOIN LATERAL ({pairs}) AS pv(key, value) \
                 WHERE pv.key <> ALL({excl}) GROUP BY pv.key, pv.value"
            )
        }
    };
    (sql, b.params)
}

/// The actors drill-down statement: one row per actor id (as text), in id order.
pub fn plan_actors(
    req: &CorrelationRequest,
    q: &InsightQuery,
    project: &Project,
    lookups: &Lookups,
    range: &DateRange,
    pop: &Population,
    step_names: &[String],
) -> Result<(String, Vec<Param>)> {
    let actor = ActorColumn::of(q);
    let mut b = SqlBuilder::new();
    let project_p = b.int(project.id);
    let w = population_cte(pop, actor, &mut b);
    let converted = match req.converted {
        Some(true) => " AND w.success",
        Some(false) => " AND NOT w.success",
        None => "",
    };
    let order = if actor == ActorColumn::Person {
        "w.actor"
    } else {
        "w.actor COLLATE \"C\""
    };
    let sql = with_filter_context(project, lookups, |cx| -> Result<String> {
        Ok(match req.kind {
            CorrelationType::Properties => {
                let filters = req.property_values.clone().unwrap_or(Value::Null);
                check_person_filters(&filters)?;
                let cond = properties::compile_properties(&filters, &mut b, cx)
                    .map_err(|e| e.within("funnel_correlation_property_values"))?;
                if actor != ActorColumn::Person {
                    return Err(QueryError::invalid(
                        "funnel_correlation_property_values".to_string(),
                        "Property correlation persons are only available for person funnels.",
                    ));
                }
                format!(
                    "WITH {w} SELECT w.actor::text FROM w \
                 CROSS JOIN LATERAL (SELECT w.actor AS person_id) AS e \
                 WHERE ({cond}){converted} ORDER BY {order}"
                )
            }
            _ => {
                let entity = req.person_entity.clone().ok_or_else(|| {
                    QueryError::invalid(
                        "funnel_correlation_person_entity".to_string(),
                        "No entity for persons specified",
                    )
                })?;
                let cond = properties::compile_entity(&entity, &mut b, cx)
                    .map_err(|e| e.within("funnel_correlation_person_entity"))?;
                let join = events_join(actor, &project_p, range, step_names, &mut b);
                format!(
                    "WITH {w} SELECT w.actor::text FROM {join} \
                 WHERE ({cond}){converted} GROUP BY w.actor ORDER BY {order}"
                )
            }
        })
    })?;
    Ok((sql, b.params))
}

/// Property correlation persons filter on the actor's own properties only (person properties
/// and cohorts): an event filter has no event to read here.
fn check_person_filters(v: &Value) -> Result<()> {
    let bad = |t: &str| {
        QueryError::invalid(
            "funnel_correlation_property_values".to_string(),
            format!("Only person property filters are allowed here, not \"{t}\"."),
        )
    };
    match v {
        Value::Array(a) => a.iter().try_for_each(check_person_filters),
        Value::Object(m) if m.contains_key("values") => {
            m.get("values").map(check_person_filters).unwrap_or(Ok(()))
        }
        Value::Object(m) => match m.get("type").and_then(Value::as_str) {
            Some("person")
            | Some("cohort")
            | Some("precalculated-cohort")
            | Some("static-cohort") => Ok(()),
            Some(t) => Err(bad(t)),
            None => Err(bad("event")),
        },
        Value::Null => Ok(()),
        _ => Err(QueryError::invalid(
            "funnel_correlation_property_values".to_string(),
            "Expected a list of property filters.",
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Odds ratios and rendering
// ---------------------------------------------------------------------------------------------

/// One candidate's counts, as the contingency statement returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub event: Option<String>,
    pub key: Option<String>,
    pub value: Option<String>,
    pub success_count: u64,
    pub failure_count: u64,
}

impl Candidate {
    /// PostHog's name: `event`, `event::key::value` or `key::value`.
    pub fn name(&self) -> String {
        match (&self.event, &self.key) {
            (Some(e), Some(k)) => format!("{e}::{k}::{}", self.value.as_deref().unwrap_or("")),
            (Some(e), None) => e.clone(),
            (None, Some(k)) => format!("{k}::{}", self.value.as_deref().unwrap_or("")),
            (None, None) => String::new(),
        }
    }
}

/// An odds ratio with a prior of 1 (PostHog's `get_entity_odds_ratio`).
pub fn odds_ratio(s: u64, f: u64, success_total: u64, failure_total: u64) -> f64 {
    let (s, f) = (s as f64, f as f64);
    let (st, ft) = (success_total as f64, failure_total as f64);
    ((s + PRIOR_COUNT) * (ft - f + PRIOR_COUNT)) / ((st - s + PRIOR_COUNT) * (f + PRIOR_COUNT))
}

/// Whether a candidate has too few actors to matter: `s + f < min(25, 2 % of everyone)`.
pub fn insignificant(s: u64, f: u64, success_total: u64, failure_total: u64) -> bool {
    ((s + f) as f64)
        < MIN_PERSON_COUNT.min(MIN_PERSON_PERCENTAGE * (success_total + failure_total) as f64)
}

/// A scored candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub candidate: Candidate,
    pub odds_ratio: f64,
    pub success: bool,
}

/// Score, filter, sort and limit: the top 10 success candidates by odds descending, then the
/// top 10 failure candidates by odds ascending (ties by name). `skewed` when the totals are
/// more than 10:1 apart, or when either is 0 (then no candidates).
pub fn score(
    candidates: Vec<Candidate>,
    success_total: u64,
    failure_total: u64,
) -> (Vec<Scored>, bool) {
    if success_total == 0 || failure_total == 0 {
        return (Vec::new(), true);
    }
    let (st, ft) = (success_total as f64, failure_total as f64);
    let skewed = st / ft > 10.0 || ft / st > 10.0;
    let mut ok: Vec<Scored> = Vec::new();
    let mut bad: Vec<Scored> = Vec::new();
    for c in candidates {
        if insignificant(
            c.success_count,
            c.failure_count,
            success_total,
            failure_total,
        ) {
            continue;
        }
        let odds = odds_ratio(
            c.success_count,
            c.failure_count,
            success_total,
            failure_total,
        );
        let s = Scored {
            candidate: c,
            odds_ratio: odds,
            success: odds > 1.0,
        };
        if s.success { ok.push(s) } else { bad.push(s) }
    }
    ok.sort_by(|a, b| {
        b.odds_ratio
            .total_cmp(&a.odds_ratio)
            .then_with(|| a.candidate.name().cmp(&b.candidate.name()))
    });
    bad.sort_by(|a, b| {
        a.odds_ratio
            .total_cmp(&b.odds_ratio)
            .then_with(|| a.candidate.name().cmp(&b.candidate.name()))
    });
    ok.truncate(RESULT_LIMIT);
    bad.truncate(RESULT_LIMIT);
    ok.extend(bad);
    (ok, skewed)
}

/// The people URL of a candidate: `persons/funnel/correlation/` with the funnel filter, the
/// correlation parameters and the candidate as PostHog encodes it.
fn people_url(
    base: &str,
    legacy_filter: &Value,
    req: &CorrelationRequest,
    c: &Candidate,
    converted: bool,
) -> String {
    let mut q: Vec<(String, String)> = Vec::new();
    if let Value::Object(m) = legacy_filter {
        for (k, v) in m {
            q.push((
                k.clone(),
                match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            ));
        }
    }
    q.extend(legacy_params(req));
    q.push((
        "funnel_correlation_person_converted".into(),
        if converted { "true" } else { "false" }.into(),
    ));
    match req.kind {
        CorrelationType::Events => q.push((
            "funnel_correlation_person_entity".into(),
            json!({"id": c.event, "type": "events"}).to_string(),
        )),
        CorrelationType::EventWithProperties
            if req.autocapture_elements() && c.key.as_deref() == Some("elements_chain") =>
        {
            let (_, chain) = split_elements_value(c.value.as_deref().unwrap_or(""));
            let elements = chain_to_elements(chain);
            let mut props = Vec::new();
            if let Some(first) = elements.first() {
                for key in ["tag_name", "href", "text"] {
                    if let Some(v) = first.get(key).filter(|v| !v.is_null()) {
                        props.push(json!({"key": key, "value": [v], "type": "element", "operator": "exact"}));
                    }
                }
                props.push(
                    json!({"key": "selector", "value": [build_selector(&elements)],
                                  "type": "element", "operator": "exact"}),
                );
            }
            q.push((
                "funnel_correlation_person_entity".into(),
                json!({"id": c.event, "type": "events", "properties": props}).to_string(),
            ))
        }
        CorrelationType::EventWithProperties => q.push((
            "funnel_correlation_person_entity".into(),
            json!({"id": c.event, "type": "events", "properties": [
                {"key": c.key, "value": c.value, "type": "event", "operator": "exact"}
            ]})
            .to_string(),
        )),
        CorrelationType::Properties => q.push((
            "funnel_correlation_property_values".into(),
            json!([{"key": c.key, "value": c.value, "type": "person", "operator": "exact"}])
                .to_string(),
        )),
    }
    let qs = q
        .iter()
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    format!("{base}/persons/funnel/correlation/?{qs}")
}

/// PostHog's `result`: `{"events": [...], "skewed": bool}`. `base` is the project's API prefix
/// (`/api/projects/7`) for the people URLs.
pub fn result(
    req: &CorrelationRequest,
    candidates: Vec<Candidate>,
    pop: &Population,
    legacy_filter: &Value,
    base: &str,
) -> Value {
    let (scored, skewed) = score(candidates, pop.success_total, pop.failure_total);
    let events: Vec<Value> = scored
        .iter()
        .map(|s| {
            json!({
                "event": event_definition(req, &s.candidate),
                "success_count": s.candidate.success_count,
                "failure_count": s.candidate.failure_count,
                "odds_ratio": s.odds_ratio,
                "correlation_type": if s.success { "success" } else { "failure" },
                "success_people_url": people_url(base, legacy_filter, req, &s.candidate, true),
                "failure_people_url": people_url(base, legacy_filter, req, &s.candidate, false),
            })
        })
        .collect();
    json!({"events": events, "skewed": skewed})
}

/// A candidate's `event` object: `{event, properties, elements}`; autocapture candidates carry
/// their `$event_type` and the parsed elements.
fn event_definition(req: &CorrelationRequest, c: &Candidate) -> Value {
    if req.autocapture_elements()
        && c.event.as_deref() == Some(AUTOCAPTURE_EVENT)
        && c.key.as_deref() == Some("elements_chain")
    {
        let (event_type, chain) = split_elements_value(c.value.as_deref().unwrap_or(""));
        return json!({
            "event": c.name(),
            "properties": {"$event_type": event_type},
            "elements": chain_to_elements(chain),
        });
    }
    json!({"event": c.name(), "properties": {}, "elements": []})
}

fn split_elements_value(v: &str) -> (&str, &str) {
    v.split_once(ELEMENTS_DIVIDER).unwrap_or(("", v))
}

/// An elements chain → PostHog's serialised elements (the shared parser in
/// [`crate::elements`]), each with the `event: null` PostHog's correlation serialiser adds.
pub fn chain_to_elements(chain: &str) -> Vec<Value> {
    crate::elements::parse_chain(chain)
        .iter()
        .map(|el| {
            let mut v = crate::elements::element_json(el);
            v["event"] = Value::Null;
            v
        })
        .collect()
}

/// A CSS selector for a chain (clicked element last): `[id="x"]` where an element has an id,
/// else its tag, joined by ` > `.
pub fn build_selector(elements: &[Value]) -> String {
    elements
        .iter()
        .rev()
        .map(|e| match e.get("attr_id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => format!("[id=\"{id}\"]"),
            _ => e
                .get("tag_name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        })
        .collect::<Vec<_>>()
        .join(" > ")
}

#[cfg(test)]
#[path = "correlation_tests.rs"]
mod tests;
