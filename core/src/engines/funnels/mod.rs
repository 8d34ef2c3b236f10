//! Funnels over the event store: planning (query → SQL + engine configuration) and rendering
//! (engine output → PostHog's response shape). Pure Rust; the extension runs the SQL.
//!
//! One query shape serves every funnel: the planner marks each event of the date range with the
//! steps and exclusions it matches (bit masks) and its breakdown value, and feeds them to the
//! `insights._funnel_agg` aggregate, which collects them per actor (in parallel workers when the
//! planner chooses) and, in its final function, runs [`summarize`] over every actor:
//!
//! ```sql
//! SELECT insights._funnel_agg($cfg, e.person_id, NULL, e."timestamp", <steps mask>, <excl mask>, <breakdown>)
//!   FROM insights.events e
//!  WHERE e.project_id = $p AND e."timestamp" BETWEEN $from AND $to AND (<any step or exclusion>) AND <filters>
//! ```
//!
//! Cohort breakdowns run the statement once per cohort with a membership filter.

pub mod correlation;
pub mod engine;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::compile::context::{self, with_filter_context};
use crate::compile::dates::{self, DateRange, Interval, ProjectTime};
use crate::compile::properties::{self, FilterContext};
use crate::engines::funnels::engine::{Attribution, Ev, Order, Spec, Tally};
use crate::error::{QueryError, Result};
use crate::model::{BreakdownProperty, CohortRef, Entity, EntityKind, FunnelOrder, InsightQuery};
use crate::segments::{self, EventScan};
// The project context lives in compile::context; re-exported for the engines' callers.
pub use crate::compile::context::{Lookups, PG_EPOCH_OFFSET_US, Project, url_encode};
use crate::compile::sql::{Param, SqlBuilder};

/// Drill-down request: the actors who reached step `step` (1-based), or who dropped before it
/// (negative step), optionally for one breakdown value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ActorsRequest {
    pub step: i64,
    pub breakdown: Option<Value>,
    /// Funnel correlation: instead of ids, every actor who entered the funnel with its furthest
    /// step and timestamps, `{"outcomes": [[id, level, first_ts, final_ts|null, [step_ts…]], …]}`
    /// (µs since 2000-01-01; `final_ts` is the last step's time for converted actors, `step_ts`
    /// the times of steps 1..=level of the chosen chain; funnel paths read those). `step` and
    /// `breakdown` are ignored.
    #[serde(default)]
    pub detail: bool,
}

/// The engine configuration, passed as the aggregate's first (constant) argument.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EngineConfig {
    pub order: String,
    pub num_steps: usize,
    pub window_us: i64,
    pub exclusions: Vec<(usize, usize)>,
    pub attribution: String,
    pub attribution_step: usize,
    pub has_breakdown: bool,
    pub optional_steps: u32,
    pub viz: String,
    pub breakdown_limit: Option<usize>,
    pub no_other: bool,
    pub from_step: usize,
    pub to_step: usize,
    pub bin_count: Option<u32>,
    /// Funnel trends: bucket entries by this interval in the project's timezone.
    pub interval: String,
    pub timezone: String,
    pub week_start: u8,
    pub actors: Option<ActorsRequest>,
}

impl EngineConfig {
    pub fn spec(&self) -> Spec {
        Spec {
            order: match self.order.as_str() {
                "strict" => Order::Strict,
                "unordered" => Order::Unordered,
                _ => Order::Ordered,
            },
            num_steps: self.num_steps,
            window_us: self.window_us,
            exclusions: self.exclusions.clone(),
            attribution: match self.attribution.as_str() {
                "last_touch" => Attribution::LastTouch,
                "all_events" => Attribution::AllEvents,
                "step" => Attribution::Step(self.attribution_step),
                _ => Attribution::FirstTouch,
            },
            has_breakdown: self.has_breakdown,
            optional_steps: self.optional_steps,
        }
    }
}

/// One statement to run; cohort breakdowns have one per cohort.
#[derive(Debug, Clone)]
pub struct FunnelRun {
    pub sql: String,
    pub params: Vec<Param>,
    /// Cohort breakdowns: (breakdown value, cohort name).
    pub cohort: Option<(Value, String)>,
    /// The same run over the columnar segments, or why not (crate::segments).
    pub seg: std::result::Result<EventScan, String>,
}

/// Display data of one step.
#[derive(Debug, Clone)]
pub struct StepMeta {
    pub action_id: Value,
    pub name: String,
    pub custom_name: Option<String>,
    pub kind: &'static str,
}

#[derive(Debug, Clone)]
pub struct FunnelPlan {
    pub runs: Vec<FunnelRun>,
    pub config: EngineConfig,
    pub range: DateRange,
    pub steps: Vec<StepMeta>,
    /// How breakdown values are boxed: event/person/hogql values in a list, group values plain.
    pub boxed_breakdown: bool,
    /// The legacy filter, for the people URLs.
    pub legacy_filter: Value,
}

fn entity_display(e: &Entity, lookups: &Lookups) -> Result<StepMeta> {
    Ok(match &e.kind {
        EntityKind::Event { name: Some(n) } => StepMeta {
            action_id: json!(n),
            name: e.name.clone().unwrap_or_else(|| n.clone()),
            custom_name: e.custom_name.clone(),
            kind: "events",
        },
        EntityKind::Event { name: None } => StepMeta {
            action_id: Value::Null,
            name: "All events".into(),
            custom_name: e.custom_name.clone(),
            kind: "events",
        },
        EntityKind::Action { id } => {
            let (_, name) = (lookups.action)(*id).ok_or_else(|| {
                QueryError::invalid(
                    "actions".to_string(),
                    format!("Action {id} does not exist."),
                )
            })?;
            StepMeta {
                action_id: json!(id),
                name,
                custom_name: e.custom_name.clone(),
                kind: "actions",
            }
        }
    })
}

/// Plan a funnel. `now` is the query time; `earliest` the project's first event (for `all`).
///
/// The phases, in the order they bind parameters: the step and exclusion masks
/// (`step_masks`), the breakdown (`breakdown_of`), the actor columns, the engine
/// configuration (`engine_config`), the filters shared by every run (`shared_filters`), then
/// one statement per cohort.
pub fn plan(
    q: &InsightQuery,
    project: &Project,
    lookups: &Lookups,
    now: DateTime<Utc>,
    earliest: Option<DateTime<Utc>>,
    actors: Option<ActorsRequest>,
) -> Result<FunnelPlan> {
    q.validate_funnel()?;
    let interval = context::query_interval(q)?;
    let range = context::query_range(q, interval, &project.pt, now, earliest)?;
    let steps = q
        .series
        .iter()
        .map(|e| entity_display(e, lookups))
        .collect::<Result<Vec<_>>>()?;

    let mut b = SqlBuilder::new();
    let project_param = b.int(project.id);
    with_filter_context(project, lookups, |cx| {
        let masks = step_masks(q, &mut b, cx, now)?;
        let FunnelBreakdown {
            boxed: boxed_breakdown,
            expr: bd_expr,
            mut cohorts,
            no_other,
        } = breakdown_of(q, lookups, &mut b, cx)?;
        let has_breakdown = q.breakdown.is_some() && cohorts[0].0.is_none();
        // Cohort breakdowns run once per cohort, so a drill-down into one cohort's series is that
        // cohort's run, without a per-actor breakdown test.
        let mut actors = actors;
        if cohorts[0].0.is_some()
            && let Some(want) = actors.as_mut().and_then(|a| a.breakdown.take())
        {
            keep_drilldown_cohort(&mut cohorts, want)?;
        }
        let (actor_id, actor_key, actor_filter) = actor_columns(q)?;
        let config = engine_config(q, project, interval, has_breakdown, no_other, actors);
        if config
            .actors
            .as_ref()
            .and_then(|a| a.breakdown.as_ref())
            .is_some()
            && !has_breakdown
            && cohorts[0].0.is_none()
        {
            return Err(QueryError::invalid(
                "funnel_step_breakdown".to_string(),
                "funnel_step_breakdown needs a breakdown in the query.",
            ));
        }
        let cfg_param = b.text(serde_json::to_string(&config).expect("config serializes"));
        let where_ = shared_filters(q, project, &project_param, &range, &masks, &mut b, cx)?;

        let StepMasks {
            steps: steps_mask,
            exclusions: excl_mask,
            ..
        } = &masks;
        let mut runs = Vec::new();
        for (cohort, value, name) in cohorts {
            let mut rb = b.clone();
            let mut w = where_.clone();
            if let Some(CohortRef::Id(id)) = cohort {
                let prop = json!([{"type": "cohort", "key": "id", "value": id}]);
                w.push(properties::compile_properties(&prop, &mut rb, cx)?);
            }
            let sql = format!(
                "SELECT insights._funnel_agg({cfg_param}, {actor_id}, {actor_key}, e.\"timestamp\", ({steps_mask})::int4, ({excl_mask})::int4, ({bd_expr})::text) \
                 FROM insights.events e WHERE {}{actor_filter}",
                w.join(" AND ")
            );
            let seg = match cohort {
                Some(_) => Err("a cohort breakdown".to_string()),
                None if actor_id != "e.person_id" => {
                    Err("aggregation by groups or sessions".into())
                }
                None => funnel_scan(&where_, [steps_mask, excl_mask, &bd_expr], &range, cx, &rb),
            };
            runs.push(FunnelRun {
                sql,
                params: rb.params,
                cohort: cohort.map(|_| (value, name)),
                seg,
            });
        }
        Ok(FunnelPlan {
            runs,
            config,
            range,
            steps,
            boxed_breakdown,
            legacy_filter: q.to_legacy_filter(),
        })
    })
}

/// The columnar plan of a funnel run (crate::segments): its filters, masks and breakdown read
/// only the event name and materialised properties. `where_` starts with the project and range
/// conditions of [`context::events_in_range`].
fn funnel_scan(
    where_: &[String],
    [steps, excl, bd]: [&str; 3],
    range: &DateRange,
    cx: &FilterContext,
    b: &SqlBuilder,
) -> std::result::Result<EventScan, String> {
    let filter = match &where_[3..] {
        [] => "TRUE".to_string(),
        rest => rest.join(" AND "),
    };
    let values = vec![
        format!("({steps})::int4"),
        format!("({excl})::int4"),
        format!("({bd})::text"),
    ];
    let mut sqls: Vec<&str> = vec![&filter];
    sqls.extend(values.iter().map(String::as_str));
    let columns = segments::referenced_columns(&sqls, cx.materialized).ok_or_else(|| {
        "a step, filter or breakdown on something other than the event name and materialised properties"
            .to_string()
    })?;
    let tail_sql = format!(
        "SELECT e.person_id, e.\"timestamp\", {} FROM insights.events e WHERE {} AND {{TAIL}}",
        values.join(", "),
        where_.join(" AND ")
    );
    Ok(EventScan {
        filter,
        values,
        columns,
        from_us: range.from.timestamp_micros(),
        to_us: range.to.timestamp_micros(),
        tail_sql,
        params: b.params.clone(),
    })
}

/// The step and exclusion conditions of a funnel and the SQL of their bit masks.
struct StepMasks {
    step_conds: Vec<String>,
    excl_conds: Vec<String>,
    /// Every step and exclusion is a bare event name: the masks are array lookups by name.
    plain_names: bool,
    /// SQL of the steps an event matches (bit i = step i).
    steps: String,
    /// SQL of the exclusions an event matches (bit j = exclusion j).
    exclusions: String,
}

fn step_masks(
    q: &InsightQuery,
    b: &mut SqlBuilder,
    cx: &FilterContext,
    now: DateTime<Utc>,
) -> Result<StepMasks> {
    let f = &q.funnel;
    let mut step_conds = Vec::with_capacity(q.series.len());
    for (i, e) in q.series.iter().enumerate() {
        let cond = properties::compile_entity(e, b, cx)
            .map_err(|err| err.within(&format!("events__{i}")))?;
        let cond = match e.math.as_deref() {
            Some(m @ ("first_time_for_user" | "first_time_for_user_with_filters")) => {
                properties::first_time_condition(
                    e,
                    &cond,
                    m == "first_time_for_user_with_filters",
                    b,
                    cx,
                    now,
                )?
            }
            _ => cond,
        };
        step_conds.push(cond);
    }
    let mut excl_conds = Vec::with_capacity(f.exclusions.len());
    for (j, x) in f.exclusions.iter().enumerate() {
        excl_conds.push(
            properties::compile_entity(&x.entity, b, cx)
                .map_err(|err| err.within(&format!("exclusions__{j}")))?,
        );
    }
    let mask = |conds: &[String]| -> String {
        if conds.is_empty() {
            return "0".into();
        }
        conds
            .iter()
            .enumerate()
            .map(|(i, c)| format!("(CASE WHEN {c} THEN {} ELSE 0 END)", 1u64 << i))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let plain_names = plain_name_bits(q);
    let (steps, exclusions) = match &plain_names {
        Some((names, step_bits, excl_bits)) => {
            let names_p = b.param(Param::TextArray(names.clone()));
            let pos = format!("array_position({names_p}, e.event)");
            let sm = b.param(Param::IntArray(step_bits.clone()));
            let xm = if excl_bits.iter().any(|&m| m != 0) {
                format!(
                    "coalesce(({})[{pos}], 0)",
                    b.param(Param::IntArray(excl_bits.clone()))
                )
            } else {
                "0".to_string()
            };
            (format!("coalesce(({sm})[{pos}], 0)"), xm)
        }
        None => (mask(&step_conds), mask(&excl_conds)),
    };
    Ok(StepMasks {
        step_conds,
        excl_conds,
        plain_names: plain_names.is_some(),
        steps,
        exclusions,
    })
}

/// The common case, every step and exclusion a bare event name: one array lookup per row gives
/// both masks, instead of a CASE per step (the executor's per-row cost is what limits funnels on
/// large tables). Returns the sorted distinct names and, per name, its step bits and exclusion
/// bits; `None` when some step or exclusion is not a bare name.
fn plain_name_bits(q: &InsightQuery) -> Option<(Vec<String>, Vec<i64>, Vec<i64>)> {
    let bare_name = |e: &Entity| match &e.kind {
        EntityKind::Event { name: Some(n) }
            if properties_empty(&e.properties)
                && !e
                    .math
                    .as_deref()
                    .unwrap_or_default()
                    .starts_with("first_time_for_user") =>
        {
            Some(n.clone())
        }
        _ => None,
    };
    let s: Vec<String> = q.series.iter().map(bare_name).collect::<Option<_>>()?;
    let x: Vec<String> = q
        .funnel
        .exclusions
        .iter()
        .map(|x| bare_name(&x.entity))
        .collect::<Option<_>>()?;
    let mut names: Vec<String> = s.iter().chain(x.iter()).cloned().collect();
    names.sort();
    names.dedup();
    let bits = |list: &[String], name: &str| -> i64 {
        list.iter()
            .enumerate()
            .filter(|(_, n)| n.as_str() == name)
            .fold(0i64, |m, (i, _)| m | (1 << i))
    };
    let step_bits: Vec<i64> = names.iter().map(|n| bits(&s, n)).collect();
    let excl_bits: Vec<i64> = names.iter().map(|n| bits(&x, n)).collect();
    Some((names, step_bits, excl_bits))
}

/// A funnel's breakdown.
struct FunnelBreakdown {
    /// [`FunnelPlan::boxed_breakdown`]: event/person/hogql values in a list, group values plain.
    boxed: bool,
    /// SQL of an event's breakdown value (text).
    expr: String,
    /// One run per entry: `(cohort, breakdown value, name)`; `[(None, null, "")]` without a
    /// cohort breakdown.
    cohorts: Vec<(Option<CohortRef>, Value, String)>,
    /// Cohort breakdowns never merge values into Other.
    no_other: bool,
}

fn breakdown_of(
    q: &InsightQuery,
    lookups: &Lookups,
    b: &mut SqlBuilder,
    cx: &FilterContext,
) -> Result<FunnelBreakdown> {
    let mut out = FunnelBreakdown {
        boxed: true,
        expr: "NULL::text".to_string(),
        cohorts: vec![(None, Value::Null, String::new())],
        no_other: false,
    };
    let Some(bd) = &q.breakdown else {
        return Ok(out);
    };
    let spec = &bd.values[0];
    match &spec.property {
        BreakdownProperty::Cohorts(list) => {
            out.no_other = true;
            out.cohorts = list
                .iter()
                .map(|c| match c {
                    CohortRef::All => Ok((Some(*c), json!(0), "all users".to_string())),
                    CohortRef::Id(id) => {
                        let (_, _, name) = (lookups.cohort)(*id).ok_or_else(|| {
                            QueryError::invalid(
                                "breakdown".to_string(),
                                format!("Cohort {id} does not exist."),
                            )
                        })?;
                        Ok((Some(*c), json!(id), name))
                    }
                })
                .collect::<Result<_>>()?;
        }
        BreakdownProperty::Property(key) => {
            if bd.values.len() > 1 {
                let parts = bd
                    .values
                    .iter()
                    .map(|s| match &s.property {
                        BreakdownProperty::Property(k) => {
                            properties::breakdown_expr(&s.kind, k, s.group_type_index, b, cx)
                                .map(|x| format!("coalesce({x}, '')"))
                        }
                        BreakdownProperty::Cohorts(_) => Err(QueryError::invalid(
                            "breakdowns".to_string(),
                            "Cohort breakdowns cannot be combined with other breakdowns.",
                        )),
                    })
                    .collect::<Result<Vec<_>>>()?;
                // A JSON array text keeps multi-breakdown tuples intact through one text value.
                out.expr = format!("jsonb_build_array({})::text", parts.join(", "));
            } else {
                out.boxed = spec.kind != "group";
                out.expr =
                    properties::breakdown_expr(&spec.kind, key, spec.group_type_index, b, cx)?;
            }
        }
    }
    Ok(out)
}

/// A drill-down into one cohort of a cohort breakdown: keep that cohort's run (`want` is its
/// id, name, `all`, or a one-element array of one of those); 22023 when it is none of them.
fn keep_drilldown_cohort(
    cohorts: &mut Vec<(Option<CohortRef>, Value, String)>,
    want: Value,
) -> Result<()> {
    let want = match want {
        Value::Array(mut a) if a.len() == 1 => a.remove(0),
        w => w,
    };
    let want_text = want
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| want.to_string());
    cohorts.retain(|(_, value, name)| {
        serde_json::to_string(value).is_ok_and(|v| v == want_text)
            || *name == want_text
            || (want_text == "all" && *value == json!(0))
    });
    if cohorts.is_empty() {
        return Err(QueryError::invalid(
            "funnel_step_breakdown".to_string(),
            format!("{want_text} is not a cohort of this breakdown."),
        ));
    }
    Ok(())
}

/// The actor: persons, groups of one type, or sessions. SQL of the aggregate's actor id and
/// actor key arguments, and a filter on the events (leading ` AND`, or empty).
fn actor_columns(q: &InsightQuery) -> Result<(String, String, String)> {
    Ok(match q.aggregation_group_type_index {
        Some(g) => (
            "NULL::int8".to_string(),
            format!("e.group_{g}"),
            format!(" AND e.group_{g} <> ''"),
        ),
        None => match q.aggregate_by_hogql.as_deref().map(str::trim) {
            None | Some("person_id") | Some("") => (
                "e.person_id".to_string(),
                "NULL::text".to_string(),
                String::new(),
            ),
            Some("properties.$session_id")
            | Some("$session_id")
            | Some("properties[\"$session_id\"]") => (
                "NULL::int8".to_string(),
                "e.session_id".to_string(),
                " AND e.session_id IS NOT NULL AND e.session_id <> ''".to_string(),
            ),
            Some(other) => {
                return Err(QueryError::invalid(
                    "funnel_aggregate_by_hogql".to_string(),
                    format!(
                        "Unsupported aggregation expression \"{other}\": use person_id or properties.$session_id."
                    ),
                ));
            }
        },
    })
}

/// The engine configuration of a funnel query.
fn engine_config(
    q: &InsightQuery,
    project: &Project,
    interval: Interval,
    has_breakdown: bool,
    no_other: bool,
    actors: Option<ActorsRequest>,
) -> EngineConfig {
    let f = &q.funnel;
    let n = q.series.len();
    EngineConfig {
        order: f.order.name().to_string(),
        num_steps: n,
        window_us: f.window_seconds().saturating_mul(1_000_000),
        exclusions: f
            .exclusions
            .iter()
            .map(|x| (x.from_step, x.to_step))
            .collect(),
        attribution: f.attribution.name().to_string(),
        attribution_step: f.attribution_value.unwrap_or(0) as usize,
        has_breakdown,
        optional_steps: q
            .series
            .iter()
            .enumerate()
            .filter(|(_, e)| e.optional_in_funnel)
            .fold(0u32, |m, (i, _)| m | (1 << i)),
        viz: f.viz.name().to_string(),
        breakdown_limit: q
            .breakdown
            .as_ref()
            .map(|bd| bd.limit.unwrap_or(25) as usize),
        no_other: no_other || q.breakdown.as_ref().is_some_and(|bd| bd.hide_other),
        from_step: f.from_step.unwrap_or(0),
        to_step: f.to_step.unwrap_or(n - 1),
        bin_count: f.bin_count,
        interval: interval.as_str().to_string(),
        timezone: project.timezone.clone(),
        week_start: project.pt.week_start,
        actors,
    }
}

/// Filters shared by every run: project, range, the prefilter on step and exclusion events,
/// the query's properties and the test-account filters.
fn shared_filters(
    q: &InsightQuery,
    project: &Project,
    project_param: &str,
    range: &DateRange,
    masks: &StepMasks,
    b: &mut SqlBuilder,
    cx: &FilterContext,
) -> Result<Vec<String>> {
    let f = &q.funnel;
    let mut where_ = context::events_in_range(b, project_param, range);
    if f.order != FunnelOrder::Strict {
        // Index-friendly prefilter when every step and exclusion is a plain event name.
        let names: Option<Vec<String>> = q
            .series
            .iter()
            .map(|e| &e.kind)
            .chain(f.exclusions.iter().map(|x| &x.entity.kind))
            .map(|k| match k {
                EntityKind::Event { name: Some(n) } => Some(n.clone()),
                _ => None,
            })
            .collect();
        if let Some(mut names) = names {
            names.sort();
            names.dedup();
            where_.push(format!(
                "e.event = ANY({})",
                b.param(Param::TextArray(names))
            ));
        }
        // With bare event names the ANY above is exactly "matches a step or an exclusion".
        if !masks.plain_names {
            let any: Vec<&String> = masks
                .step_conds
                .iter()
                .chain(masks.excl_conds.iter())
                .collect();
            where_.push(format!(
                "({})",
                any.iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(" OR ")
            ));
        }
    }
    let global =
        properties::compile_properties(&q.properties, b, cx).map_err(|e| e.within("properties"))?;
    if global != "TRUE" {
        where_.push(global);
    }
    if q.filter_test_accounts {
        let t = properties::compile_properties(&project.test_account_filters, b, cx)
            .map_err(|e| e.within("filter_test_accounts"))?;
        if t != "TRUE" {
            where_.push(t);
        }
    }
    Ok(where_)
}

/// Whether a raw property filter value filters nothing (`null`, `[]`, `{}`, an empty group).
fn properties_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.iter().all(properties_empty),
        Value::Object(m) => {
            m.is_empty() || m.get("values").is_some_and(properties_empty) && m.len() <= 2
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// The engine's final step (runs inside the aggregate's final function)
// ---------------------------------------------------------------------------------------------

/// Summarize every actor's events. `actors` yields each actor's events (unsorted) and its id as
/// JSON (for drill-downs); `bd_names[id]` is the breakdown text of value id (`0` = null).
///
/// `threads` > 1 lets the steps evaluation of a large funnel run on that many threads (see
/// [`tally_steps`]); the other outputs are computed by the caller alone.
pub fn summarize<'a>(
    cfg: &EngineConfig,
    actors: impl Iterator<Item = (Value, &'a mut [Ev])>,
    bd_names: &[Option<String>],
    threads: usize,
) -> Value {
    let spec = cfg.spec();
    if let Some(req) = &cfg.actors {
        return summarize_actors(cfg, &spec, req, actors, bd_names);
    }
    match cfg.viz.as_str() {
        "trends" => {
            let pt = ProjectTime::new(&cfg.timezone, cfg.week_start).unwrap_or_default();
            let interval = Interval::parse(&cfg.interval).unwrap_or(Interval::Day);
            let bucket_of = |ts: i64| -> i64 {
                let t = Utc
                    .timestamp_micros(ts + PG_EPOCH_OFFSET_US)
                    .single()
                    .unwrap_or_default();
                dates::bucket_start(t, interval, &pt).timestamp_micros()
            };
            // (breakdown id, bucket) → (entered, converted)
            let mut per_bucket: std::collections::BTreeMap<(u32, i64), (u64, u64)> =
                Default::default();
            for (_, evs) in actors {
                for t in engine::evaluate_trends_detailed(&spec, evs, &bucket_of, cfg.to_step) {
                    let e = per_bucket.entry((t.bd, t.bucket)).or_default();
                    if t.level > cfg.from_step {
                        e.0 += 1;
                        if t.level > cfg.to_step {
                            e.1 += 1;
                        }
                    }
                }
            }
            json!({"buckets": per_bucket
                .into_iter()
                .map(|((bd, b), (entered, converted))| json!([b, entered, converted, bd_label(bd, bd_names)]))
                .collect::<Vec<_>>()})
        }
        "time_to_convert" => {
            let mut times = Vec::new();
            for (_, evs) in actors {
                for o in engine::evaluate(&spec, evs) {
                    if o.level > cfg.to_step {
                        times
                            .push((o.step_ts[cfg.to_step] - o.step_ts[cfg.from_step]) as f64 / 1e6);
                    }
                }
            }
            let avg = if times.is_empty() {
                None
            } else {
                Some(times.iter().sum::<f64>() / times.len() as f64)
            };
            let bins = engine::time_to_convert_bins(&times, cfg.bin_count);
            json!({"bins": bins, "average_conversion_time": avg})
        }
        _ => {
            let slices: Vec<&mut [Ev]> = actors.map(|(_, evs)| evs).collect();
            let tally = tally_steps(&spec, cfg.num_steps, slices, threads);
            let series = tally.finish(cfg.breakdown_limit, cfg.no_other);
            json!({"series": series.iter().map(|s| json!({
                "breakdown": bd_label(s.bd, bd_names),
                "steps": s.steps.iter().map(|st| json!([st.count, st.average_conversion_time, st.median_conversion_time])).collect::<Vec<_>>(),
            })).collect::<Vec<_>>()})
        }
    }
}

/// Actors per thread below which another thread is not worth starting.
const MIN_ACTORS_PER_THREAD: usize = 20_000;

/// Evaluate every actor and tally the outcomes, on up to `threads` threads: the actors are cut
/// into contiguous chunks, each evaluated into its own [`Tally`] (the engine is pure Rust and
/// shares nothing), and the tallies are merged in chunk order, so counts and the order of the
/// kept conversion times (hence averages and medians, to the last bit) are those of one pass.
/// The first chunk runs on the calling thread; a thread that cannot be started is done there too
/// ([`crate::par::for_each_part`]).
/// Inside PostgreSQL the caller blocks signals first (`src/threads.rs`), so that the server's
/// signal handlers never run on these threads.
pub fn tally_steps(
    spec: &Spec,
    num_steps: usize,
    mut actors: Vec<&mut [Ev]>,
    threads: usize,
) -> Tally {
    let threads = threads.clamp(1, (actors.len() / MIN_ACTORS_PER_THREAD).max(1));
    let per = actors.len().div_ceil(threads).max(1);
    let mut chunks: Vec<&mut [&mut [Ev]]> = actors.chunks_mut(per).collect();
    let tallies = crate::par::for_each_part(&mut chunks, |chunk| {
        let mut t = Tally::new(num_steps);
        for evs in chunk.iter_mut() {
            for o in engine::evaluate(spec, evs) {
                t.add(&o);
            }
        }
        t
    });
    let mut total = Tally::new(num_steps);
    for t in tallies {
        total.merge(t);
    }
    total
}

/// The breakdown label of a value id: `Other` for the merged rest
/// (docs/funnels.md#breakdowns-and-attribution), `""` for null.
fn bd_label(bd: u32, names: &[Option<String>]) -> Value {
    if bd == u32::MAX {
        return json!("Other");
    }
    json!(
        names
            .get(bd as usize)
            .cloned()
            .flatten()
            .unwrap_or_default()
    )
}

fn summarize_actors<'a>(
    cfg: &EngineConfig,
    spec: &Spec,
    req: &ActorsRequest,
    actors: impl Iterator<Item = (Value, &'a mut [Ev])>,
    bd_names: &[Option<String>],
) -> Value {
    let mut out = Vec::new();
    if req.detail {
        for (id, evs) in actors {
            // Several outcomes (per-value attribution): the furthest, then the earliest completion.
            let best = engine::evaluate(spec, evs)
                .into_iter()
                .filter(|o| o.level > 0 && !o.step_ts.is_empty())
                .max_by(|a, b| {
                    a.level
                        .cmp(&b.level)
                        .then(b.step_ts.last().cmp(&a.step_ts.last()))
                });
            if let Some(o) = best {
                let last = (o.level >= cfg.num_steps).then(|| o.step_ts[o.level - 1]);
                out.push(json!([id, o.level, o.step_ts[0], last, o.step_ts]));
            }
        }
        return json!({ "outcomes": out });
    }
    for (id, evs) in actors {
        let outcomes = engine::evaluate(spec, evs);
        let hit = outcomes.iter().any(|o| {
            let bd_ok = match &req.breakdown {
                None => true,
                Some(want) => breakdown_matches(want, &bd_label(o.bd, bd_names)),
            };
            let step_ok = if req.step > 0 {
                o.level as i64 >= req.step
            } else {
                // Dropped before step |s|: reached the previous step but not this one.
                o.level as i64 == -req.step - 1
            };
            bd_ok && step_ok
        });
        if hit {
            out.push(id);
        }
    }
    let _ = cfg;
    json!({"actors": out})
}

/// Whether a requested breakdown value (`"Chrome"`, `["Chrome"]`, `["a","b"]`) names `label`.
fn breakdown_matches(want: &Value, label: &Value) -> bool {
    let want = match want {
        Value::Array(a) if a.len() == 1 => &a[0],
        w => w,
    };
    match (want, label) {
        (Value::String(w), Value::String(l)) => {
            w == l || serde_json::from_str::<Value>(l).ok().as_ref() == Some(&json!([w]))
        }
        (Value::Array(_), Value::String(l)) => {
            serde_json::from_str::<Value>(l).ok().as_ref() == Some(want)
        }
        (w, l) => l
            .as_str()
            .is_some_and(|l| serde_json::from_str::<Value>(l).ok().as_ref() == Some(w)),
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering PostHog's response
// ---------------------------------------------------------------------------------------------

/// Render the engine outputs of every run into PostHog's `result` value. `people_url_base` is
/// the project's API prefix (`/api/projects/7`): people URLs point at its `persons/funnel/`.
pub fn render(plan: &FunnelPlan, outputs: &[Value], people_url_base: &str) -> Value {
    let cfg = &plan.config;
    match cfg.viz.as_str() {
        "trends" => render_trends(plan, outputs),
        "time_to_convert" => {
            let out = outputs.first().cloned().unwrap_or(Value::Null);
            json!({
                "bins": out.get("bins").cloned().unwrap_or(json!([])),
                "average_conversion_time": out.get("average_conversion_time").cloned().unwrap_or(Value::Null),
            })
        }
        _ => render_steps(plan, outputs, people_url_base),
    }
}

fn render_steps(plan: &FunnelPlan, outputs: &[Value], people_url_base: &str) -> Value {
    let cfg = &plan.config;
    let unordered = cfg.order == "unordered";
    let mut all_series: Vec<Value> = Vec::new();
    let breakdown_mode = plan.config.has_breakdown || plan.runs.iter().any(|r| r.cohort.is_some());
    for (run, out) in plan.runs.iter().zip(outputs) {
        let series = out
            .get("series")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for s in series {
            let steps = s
                .get("steps")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if steps
                .first()
                .and_then(|st| st.get(0))
                .and_then(Value::as_u64)
                .unwrap_or(0)
                == 0
            {
                continue;
            }
            let (bd_name, bd_value) = match &run.cohort {
                Some((value, name)) => (json!(name), value.clone()),
                None if breakdown_mode => {
                    let label = s.get("breakdown").cloned().unwrap_or(json!(""));
                    let v = breakdown_value(&label, plan.boxed_breakdown);
                    (v.clone(), v)
                }
                None => (Value::Null, Value::Null),
            };
            let rendered: Vec<Value> = steps
                .iter()
                .enumerate()
                .map(|(i, st)| {
                    let meta = &plan.steps[i];
                    let (action_id, name) = if unordered {
                        (Value::Null, format!("Completed {} step{}", i + 1, if i == 0 { "" } else { "s" }))
                    } else {
                        (meta.action_id.clone(), meta.name.clone())
                    };
                    let mut step = json!({
                        "action_id": action_id,
                        "name": name,
                        "custom_name": if unordered { Value::Null } else { json!(meta.custom_name) },
                        "order": i,
                        "type": meta.kind,
                        "count": st.get(0).cloned().unwrap_or(json!(0)),
                        "people": [],
                        "average_conversion_time": st.get(1).cloned().unwrap_or(Value::Null),
                        "median_conversion_time": st.get(2).cloned().unwrap_or(Value::Null),
                        "converted_people_url": people_url(people_url_base, plan, (i + 1) as i64, breakdown_mode.then_some(&bd_value)),
                        "dropped_people_url": if i == 0 { Value::Null } else {
                            json!(people_url(people_url_base, plan, -((i + 1) as i64), breakdown_mode.then_some(&bd_value)))
                        },
                    });
                    if breakdown_mode {
                        step["breakdown"] = bd_name.clone();
                        step["breakdown_value"] = bd_value.clone();
                    }
                    step
                })
                .collect();
            all_series.push(Value::Array(rendered));
        }
    }
    if breakdown_mode {
        Value::Array(all_series)
    } else {
        all_series.into_iter().next().unwrap_or(json!([]))
    }
}

/// The breakdown value as PostHog shows it: a list for event/person/hogql breakdowns (a
/// multi-breakdown tuple is already a JSON list), a plain string for groups, `Other` as is.
fn breakdown_value(label: &Value, boxed: bool) -> Value {
    let s = label.as_str().unwrap_or_default();
    if s.starts_with('[')
        && let Ok(Value::Array(a)) = serde_json::from_str::<Value>(s)
    {
        return Value::Array(
            a.into_iter()
                .map(|v| {
                    json!(
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    )
                })
                .collect(),
        );
    }
    if boxed { json!([s]) } else { json!(s) }
}

fn people_url(base: &str, plan: &FunnelPlan, step: i64, breakdown: Option<&Value>) -> String {
    let mut q: Vec<(String, String)> = Vec::new();
    if let Value::Object(m) = &plan.legacy_filter {
        for (k, v) in m {
            let s = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            q.push((k.clone(), s));
        }
    }
    q.push(("funnel_step".into(), step.to_string()));
    if let Some(b) = breakdown {
        q.push(("funnel_step_breakdown".into(), b.to_string()));
    }
    let qs = q
        .iter()
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    format!("{base}/persons/funnel/?{qs}")
}

fn render_trends(plan: &FunnelPlan, outputs: &[Value]) -> Value {
    let pt = ProjectTime::new(&plan.config.timezone, plan.config.week_start).unwrap_or_default();
    let interval = plan.range.interval;
    // breakdown label → bucket → (entered, converted); one series per label, in first-seen order.
    type Counts = std::collections::HashMap<i64, (u64, u64)>;
    let mut series: Vec<(Value, Counts)> = Vec::new();
    if let Some(rows) = outputs
        .first()
        .and_then(|o| o.get("buckets"))
        .and_then(Value::as_array)
    {
        for row in rows {
            let label = if plan.config.has_breakdown {
                row.get(3).cloned().unwrap_or(json!(""))
            } else {
                json!("all")
            };
            let i = match series.iter().position(|(l, _)| *l == label) {
                Some(i) => i,
                None => {
                    series.push((label, Default::default()));
                    series.len() - 1
                }
            };
            let k = row.get(0).and_then(Value::as_i64).unwrap_or(0);
            let e = row.get(1).and_then(Value::as_u64).unwrap_or(0);
            let c = row.get(2).and_then(Value::as_u64).unwrap_or(0);
            series[i].1.insert(k, (e, c));
        }
    }
    if series.is_empty() {
        series.push((json!("all"), Default::default()));
    }
    let buckets = dates::buckets(&plan.range, &pt);
    let days: Vec<Value> = buckets
        .iter()
        .map(|b| json!(dates::day_string(*b, interval, &pt)))
        .collect();
    let labels: Vec<Value> = buckets
        .iter()
        .map(|b| json!(dates::label_string(*b, interval, &pt)))
        .collect();
    let out: Vec<Value> = series
        .into_iter()
        .map(|(label, counts)| {
            let mut data = Vec::new();
            let mut entered_v = Vec::new();
            let mut converted_v = Vec::new();
            for bk in &buckets {
                let (e, c) = counts
                    .get(&bk.timestamp_micros())
                    .copied()
                    .unwrap_or((0, 0));
                let rate = if e == 0 {
                    0.0
                } else {
                    (c as f64 / e as f64 * 10000.0).round() / 100.0
                };
                data.push(json!(rate));
                entered_v.push(json!(e));
                converted_v.push(json!(c));
            }
            let breakdown_value = if plan.config.has_breakdown {
                breakdown_value(&label, plan.boxed_breakdown)
            } else {
                json!(["all"])
            };
            json!({
                "count": data.len(),
                "data": data,
                "days": days,
                "labels": labels,
                "breakdown_value": breakdown_value,
                "entered_count": entered_v,
                "converted_count": converted_v,
            })
        })
        .collect();
    Value::Array(out)
}

/// Flatten a rendered steps result into typed rows for `insights.funnel` (one engine, two forms):
/// (breakdown_value as text, step 1-based, name, count, average, median).
pub type StepRow = (Option<String>, i32, String, i64, Option<f64>, Option<f64>);

pub fn rows(result: &Value) -> Vec<StepRow> {
    let mut out = Vec::new();
    let series: Vec<&Value> = match result.as_array() {
        Some(a) if a.first().is_some_and(Value::is_array) => a.iter().collect(),
        Some(a) if !a.is_empty() => vec![result],
        _ => Vec::new(),
    };
    for s in series {
        for st in s.as_array().into_iter().flatten() {
            let bd = st.get("breakdown_value").map(|v| match v {
                Value::Array(a) if a.len() == 1 => a[0]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| a[0].to_string()),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            out.push((
                bd,
                st.get("order").and_then(Value::as_i64).unwrap_or(0) as i32 + 1,
                st.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                st.get("count").and_then(Value::as_i64).unwrap_or(0),
                st.get("average_conversion_time").and_then(Value::as_f64),
                st.get("median_conversion_time").and_then(Value::as_f64),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests;
