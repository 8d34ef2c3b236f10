//! Funnels over the event store: `insights.funnel`, `insights.funnel_json`,
//! `insights.funnel_actors` and the aggregate `insights._funnel_agg` they run.
//!
//! Planning and rendering are pure Rust in `pg_insights_core::engines::funnels`; this module adapts
//! arguments, answers the planner's lookups and runs its SQL through SPI. The aggregate collects
//! each actor's marked events (`(ts, step mask, exclusion mask, breakdown)`) in a hash map; in a
//! parallel plan every worker builds its own map, the leader merges them (combine), and the final
//! function evaluates every actor with the core engine.

use pg_insights_core::SqlState;
use pg_insights_core::engines::funnels::engine::Ev;
use pg_insights_core::engines::funnels::{self, ActorsRequest, EngineConfig, Project};
use pg_insights_core::model::InsightKind;
use pgrx::prelude::*;
use pgrx::{Internal, JsonB};
use serde_json::{Value, json};

use crate::agg::{Reader, Writer, combine, in_agg_context};
use crate::context::{
    earliest_event, load_project, now_iso, parse_insight, parse_json, select_rows, with_lookups,
};
use crate::errors::{raise, raise_query_error};
use crate::threads::{query_threads, with_signals_blocked};

// ---------------------------------------------------------------------------------------------
// The aggregate
// ---------------------------------------------------------------------------------------------

struct FunnelState {
    cfg_text: String,
    cfg: EngineConfig,
    /// `(actor id, event)` in arrival order. Appending is sequential; grouping per actor with a
    /// hash map cost a cache miss or two per row (profiled: most of the transition time).
    /// Sorted by `(actor, ts)` before serialising (in each parallel worker) or finishing.
    rows: Vec<(i64, Ev)>,
    sorted: bool,
    by_key: std::collections::HashMap<String, Vec<Ev>>,
    bd_ids: std::collections::HashMap<String, u32>,
    /// Breakdown texts by id; id 0 is "no value".
    bd_names: Vec<Option<String>>,
}

impl FunnelState {
    fn new(cfg_text: &str) -> Self {
        let cfg: EngineConfig = serde_json::from_str(cfg_text).unwrap_or_else(|e| {
            raise(
                SqlState::InvalidParameter,
                &format!("invalid funnel engine configuration: {e}"),
                Some("config"),
                Some("insights._funnel_agg is internal: call insights.funnel or insights.funnel_json."),
            )
        });
        FunnelState {
            cfg_text: cfg_text.to_string(),
            cfg,
            rows: Vec::new(),
            sorted: true,
            by_key: Default::default(),
            bd_ids: Default::default(),
            bd_names: vec![None],
        }
    }

    fn intern(&mut self, bd: &str) -> u32 {
        if let Some(&id) = self.bd_ids.get(bd) {
            return id;
        }
        let id = self.bd_names.len() as u32;
        self.bd_names.push(Some(bd.to_string()));
        self.bd_ids.insert(bd.to_string(), id);
        id
    }

    fn sort(&mut self) {
        if !self.sorted {
            self.rows.sort_unstable_by_key(|(a, e)| (*a, e.ts));
            self.sorted = true;
        }
    }

    /// Add another state's rows; two sorted runs are merged in one linear pass.
    fn absorb(&mut self, mut rows: Vec<(i64, Ev)>, sorted: bool) {
        if self.rows.is_empty() {
            self.rows = rows;
            self.sorted = sorted;
            return;
        }
        if !(self.sorted && sorted) {
            self.rows.append(&mut rows);
            self.sorted = false;
            return;
        }
        let mine = std::mem::take(&mut self.rows);
        let mut out = Vec::with_capacity(mine.len() + rows.len());
        let (mut i, mut j) = (0, 0);
        while i < mine.len() && j < rows.len() {
            if (mine[i].0, mine[i].1.ts) <= (rows[j].0, rows[j].1.ts) {
                out.push(mine[i]);
                i += 1;
            } else {
                out.push(rows[j]);
                j += 1;
            }
        }
        out.extend_from_slice(&mine[i..]);
        out.extend_from_slice(&rows[j..]);
        self.rows = out;
    }

    fn merge(&mut self, other: FunnelState) {
        // Breakdown ids are per state: map the other state's ids onto ours.
        let remap: Vec<u32> = other
            .bd_names
            .iter()
            .map(|n| match n {
                None => 0,
                Some(s) => self.intern(s),
            })
            .collect();
        let fix = |mut evs: Vec<Ev>| {
            for e in &mut evs {
                e.bd = remap[e.bd as usize];
            }
            evs
        };
        let mut rows = other.rows;
        for (_, e) in &mut rows {
            e.bd = remap[e.bd as usize];
        }
        self.absorb(rows, other.sorted);
        for (k, evs) in other.by_key {
            let evs = fix(evs);
            self.by_key.entry(k).or_default().extend_from_slice(&evs);
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[pg_extern(immutable, parallel_safe)]
fn _funnel_agg_sfunc(
    mut state: Internal,
    cfg: Option<&str>,
    actor_id: Option<i64>,
    actor_key: Option<&str>,
    ts: Option<TimestampWithTimeZone>,
    steps: Option<i32>,
    excl: Option<i32>,
    bd: Option<&str>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    if !state.initialized() {
        let init = FunnelState::new(cfg.unwrap_or("{}"));
        in_agg_context(fcinfo, || unsafe { state.insert(Some(init)) });
    }
    let Some(Some(s)) = (unsafe { state.get_mut::<Option<FunnelState>>() }) else {
        return state;
    };
    let Some(ts) = ts else { return state };
    let steps = steps.unwrap_or(0) as u32;
    let excl = excl.unwrap_or(0) as u32;
    let bd = match bd {
        Some(b) if s.cfg.has_breakdown => s.intern(b),
        _ => 0,
    };
    let ev = Ev {
        ts: pg_sys::TimestampTz::from(ts),
        steps,
        excl,
        bd,
    };
    match (actor_id, actor_key) {
        (Some(id), _) => {
            s.rows.push((id, ev));
            s.sorted = false;
        }
        (None, Some(k)) => match s.by_key.get_mut(k) {
            Some(v) => v.push(ev),
            None => {
                s.by_key.insert(k.to_string(), vec![ev]);
            }
        },
        (None, None) => {}
    }
    state
}

#[pg_extern(immutable, parallel_safe)]
fn _funnel_agg_combine(a: Internal, b: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    combine(a, b, fcinfo, |mine: &mut Option<FunnelState>, other| {
        if let Some(other) = other {
            match mine {
                Some(m) => m.merge(other),
                None => *mine = Some(other),
            }
        }
    })
}

/// One event in the serialised state: ts, step mask, exclusion mask, breakdown id.
fn write_ev(w: &mut Writer, e: &Ev) {
    w.i64(e.ts);
    w.u32(e.steps);
    w.u32(e.excl);
    w.u32(e.bd);
}

fn read_ev(r: &mut Reader) -> Ev {
    Ev {
        ts: r.i64(),
        steps: r.u32(),
        excl: r.u32(),
        bd: r.u32(),
    }
}

fn write_events(w: &mut Writer, evs: &[Ev]) {
    w.u64(evs.len() as u64);
    for e in evs {
        write_ev(w, e);
    }
}

fn read_events(r: &mut Reader) -> Vec<Ev> {
    let n = r.u64() as usize;
    (0..n).map(|_| read_ev(r)).collect()
}

#[pg_extern(immutable, parallel_safe, strict)]
fn _funnel_agg_serial(mut state: Internal) -> Vec<u8> {
    let Some(Some(s)) = (unsafe { state.get_mut::<Option<FunnelState>>() }) else {
        return Vec::new();
    };
    // Sorting here runs in every parallel worker at once; the leader then only merges.
    s.sort();
    let keyed: usize = s.by_key.values().map(Vec::len).sum();
    let mut w = Writer::with_capacity(64 + s.rows.len() * 28 + keyed * 20);
    w.bytes(s.cfg_text.as_bytes());
    w.u64(s.bd_names.len() as u64 - 1);
    for n in s.bd_names.iter().skip(1) {
        w.bytes(n.as_deref().unwrap_or_default().as_bytes());
    }
    w.u64(s.rows.len() as u64);
    for (k, e) in &s.rows {
        w.i64(*k);
        write_ev(&mut w, e);
    }
    w.u64(s.by_key.len() as u64);
    for (k, evs) in &s.by_key {
        w.bytes(k.as_bytes());
        write_events(&mut w, evs);
    }
    w.into_bytes()
}

#[pg_extern(immutable, parallel_safe, strict)]
fn _funnel_agg_deserial(
    bytes: &[u8],
    _unused: Internal,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    if bytes.is_empty() {
        return in_agg_context(fcinfo, || Internal::new(None::<FunnelState>));
    }
    let mut r = Reader::new(bytes);
    let cfg = String::from_utf8_lossy(r.bytes()).into_owned();
    let mut s = FunnelState::new(&cfg);
    let names = r.u64();
    for _ in 0..names {
        let n = String::from_utf8_lossy(r.bytes()).into_owned();
        s.intern(&n);
    }
    let n = r.u64() as usize;
    s.rows.reserve_exact(n);
    for _ in 0..n {
        let k = r.i64();
        s.rows.push((k, read_ev(&mut r)));
    }
    s.sorted = true;
    let keys = r.u64();
    for _ in 0..keys {
        let k = String::from_utf8_lossy(r.bytes()).into_owned();
        s.by_key.insert(k, read_events(&mut r));
    }
    in_agg_context(fcinfo, || Internal::new(Some(s)))
}

#[pg_extern(immutable, parallel_safe)]
fn _funnel_agg_final(mut state: Internal) -> Option<JsonB> {
    let s = unsafe { state.get_mut::<Option<FunnelState>>() }?.as_mut()?;
    s.sort();
    let rows = std::mem::take(&mut s.rows);
    Some(JsonB(summarize_rows(
        &s.cfg,
        rows,
        &mut s.by_key,
        &s.bd_names,
    )))
}

/// Actors' events grouped: actor `ids[i]` owns `evs[bounds[i]..bounds[i + 1]]`.
pub(crate) struct Grouped {
    pub ids: Vec<i64>,
    pub bounds: Vec<usize>,
    pub evs: Vec<Ev>,
}

/// The engine's final step over `(actor id, event)` rows sorted by actor (and the groups or
/// sessions of `by_key`).
pub(crate) fn summarize_rows(
    cfg: &EngineConfig,
    rows: Vec<(i64, Ev)>,
    by_key: &mut std::collections::HashMap<String, Vec<Ev>>,
    bd_names: &[Option<String>],
) -> Value {
    let mut g = Grouped {
        ids: Vec::new(),
        bounds: Vec::new(),
        evs: Vec::with_capacity(rows.len()),
    };
    for (k, e) in &rows {
        if g.ids.last() != Some(k) {
            g.ids.push(*k);
            g.bounds.push(g.evs.len());
        }
        g.evs.push(*e);
    }
    g.bounds.push(g.evs.len());
    drop(rows);
    summarize_grouped(cfg, g, by_key, bd_names)
}

/// The engine's final step: every actor evaluated on up to [`query_threads`] threads.
pub(crate) fn summarize_grouped(
    cfg: &EngineConfig,
    mut g: Grouped,
    by_key: &mut std::collections::HashMap<String, Vec<Ev>>,
    bd_names: &[Option<String>],
) -> Value {
    // Breakdown ids in value order: ties between series rank by value
    // (docs/funnels.md#breakdowns-and-attribution), not by the order rows arrived in.
    let mut order: Vec<usize> = (1..bd_names.len()).collect();
    order.sort_by(|&a, &b| bd_names[a].cmp(&bd_names[b]));
    let mut remap = vec![0u32; bd_names.len()];
    for (new, &old) in order.iter().enumerate() {
        remap[old] = new as u32 + 1;
    }
    let bd_names: Vec<Option<String>> = std::iter::once(None)
        .chain(order.iter().map(|&i| bd_names[i].clone()))
        .collect();
    if order.iter().enumerate().any(|(new, &old)| new + 1 != old) {
        for e in g.evs.iter_mut().chain(by_key.values_mut().flatten()) {
            e.bd = remap.get(e.bd as usize).copied().unwrap_or(0);
        }
    }
    let mut slices: Vec<&mut [Ev]> = Vec::with_capacity(g.ids.len());
    let mut rest: &mut [Ev] = &mut g.evs;
    for w in g.bounds.windows(2) {
        let (head, tail) = rest.split_at_mut(w[1] - w[0]);
        slices.push(head);
        rest = tail;
    }
    let actors = g
        .ids
        .iter()
        .zip(slices)
        .map(|(k, v)| (json!(k), v))
        .chain(by_key.iter_mut().map(|(k, v)| (json!(k), v.as_mut_slice())));
    let threads = query_threads();
    with_signals_blocked(|| funnels::summarize(cfg, actors, &bd_names, threads))
}

extension_sql!(
    r#"
CREATE AGGREGATE insights._funnel_agg(cfg text, actor_id int8, actor_key text, ts timestamptz, steps int4, excl int4, breakdown text) (
    SFUNC            = insights._funnel_agg_sfunc,
    STYPE            = internal,
    COMBINEFUNC      = insights._funnel_agg_combine,
    SERIALFUNC       = insights._funnel_agg_serial,
    DESERIALFUNC     = insights._funnel_agg_deserial,
    FINALFUNC        = insights._funnel_agg_final,
    FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL         = SAFE
);
COMMENT ON AGGREGATE insights._funnel_agg(text, int8, text, timestamptz, int4, int4, text) IS
  'Internal: the funnel engine aggregate run by insights.funnel / insights.funnel_json.';
"#,
    name = "funnel_aggregate",
    requires = [
        _funnel_agg_sfunc,
        _funnel_agg_combine,
        _funnel_agg_serial,
        _funnel_agg_deserial,
        _funnel_agg_final
    ],
);

// ---------------------------------------------------------------------------------------------
// The SQL entry points
// ---------------------------------------------------------------------------------------------

fn plan_query(
    project_id: i64,
    project: &Project,
    query: &Value,
    actors: Option<ActorsRequest>,
) -> funnels::FunnelPlan {
    let q = parse_insight(query, InsightKind::Funnels);
    let earliest = earliest_event(project_id, &q);
    with_lookups(project_id, |lookups| {
        funnels::plan(&q, project, lookups, chrono::Utc::now(), earliest, actors)
    })
    .unwrap_or_else(|e| raise_query_error(&e))
}

/// The plan of a funnel query without running it (for `insights.explain`).
pub(crate) fn plan_for(project_id: i64, query: &Value) -> funnels::FunnelPlan {
    plan_query(project_id, &load_project(project_id), query, None)
}

/// Parse, plan and run a funnel: the plan and one engine output per run.
pub(crate) fn run(
    project_id: i64,
    query: &Value,
    actors: Option<ActorsRequest>,
) -> (funnels::FunnelPlan, Vec<Value>, Project) {
    let project = load_project(project_id);
    let plan = plan_query(project_id, &project, query, actors);
    // Each statement is one aggregate: one jsonb row.
    let outputs = plan
        .runs
        .iter()
        .map(|r| {
            if let Some(out) = crate::segments::funnel_output(project_id, r, &plan.config) {
                return out;
            }
            select_rows(&r.sql, &r.params, "funnel", |row| {
                Ok(row.get::<JsonB>(1)?.map(|j| j.0).unwrap_or(Value::Null))
            })
            .pop()
            .unwrap_or(Value::Null)
        })
        .collect();
    (plan, outputs, project)
}

/// SQL: `insights.funnel_json(project_id, query) → jsonb`: PostHog's `/insights/funnel/` body,
/// `{"result": …, "timezone": …, "is_cached": false, "last_refresh": …}`. `query` is a legacy
/// filter (`{"insight": "FUNNELS", "events": […], …}`) or a `FunnelsQuery` node.
#[pg_extern(stable, parallel_safe)]
fn _funnel_json(project_id: i64, query: &str) -> JsonB {
    let (plan, outputs, project) = run(project_id, &parse_json(query, "query"), None);
    JsonB(json!({
        "result": funnels::render(&plan, &outputs, &format!("/api/projects/{project_id}")),
        "timezone": project.timezone,
        "is_cached": false,
        "last_refresh": now_iso(),
    }))
}

/// SQL: `insights.funnel(project_id, query)`: the funnel's steps as typed rows for BI tools, from
/// the same engine and rendering as `funnel_json` (steps visualisation).
#[allow(clippy::type_complexity)] // pgrx spells the row type out in the signature
#[pg_extern(stable, parallel_safe)]
fn _funnel(
    project_id: i64,
    query: &str,
) -> TableIterator<
    'static,
    (
        name!(breakdown_value, Option<String>),
        name!(step, i32),
        name!(name, String),
        name!(count, i64),
        name!(average_conversion_time, Option<f64>),
        name!(median_conversion_time, Option<f64>),
    ),
> {
    let (plan, outputs, _) = run(project_id, &parse_json(query, "query"), None);
    TableIterator::new(funnels::rows(&funnels::render(
        &plan,
        &outputs,
        &format!("/api/projects/{project_id}"),
    )))
}

/// SQL: `insights.funnel_actors(project_id, query, step, breakdown)`: ids of the persons (or
/// groups) who reached step `step` (1-based), or dropped off right before step `-step`.
/// Only `breakdown` may be NULL; a NULL project, query or step gives no rows, as a STRICT
/// function would (the rest of the SQL surface is STRICT; this one cannot be, for `breakdown`).
#[pg_extern(stable, parallel_safe)]
fn _funnel_actors(
    project_id: Option<i64>,
    query: Option<&str>,
    step: Option<i32>,
    breakdown: Option<&str>,
) -> SetOfIterator<'static, String> {
    let (Some(project_id), Some(query), Some(step)) = (project_id, query, step) else {
        return SetOfIterator::new(Vec::new());
    };
    if step == 0 || step == -1 {
        raise(
            SqlState::InvalidParameter,
            "funnel_step must be a step number (1, 2, …) or a negative step from -2 for drop-offs",
            Some("funnel_step"),
            None,
        );
    }
    let req = ActorsRequest {
        step: step as i64,
        breakdown: breakdown.map(|b| parse_json(b, "funnel_step_breakdown")),
        detail: false,
    };
    let (_, outputs, _) = run(project_id, &parse_json(query, "query"), Some(req));
    let mut ids: Vec<String> = outputs
        .iter()
        .flat_map(|o| {
            o.get("actors")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string())
        })
        .collect();
    ids.sort();
    ids.dedup();
    SetOfIterator::new(ids)
}

// The public signatures take jsonb; the Rust functions take its text (see `parse_json`).
extension_sql!(
    r#"
CREATE FUNCTION insights.funnel_json(project_id bigint, query jsonb) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE STRICT
RETURN insights._funnel_json(project_id, query::text);
COMMENT ON FUNCTION insights.funnel_json(bigint, jsonb) IS
  'A funnel as PostHog''s /insights/funnel/ body: {"result", "timezone", "is_cached", "last_refresh"}. query: a legacy filter or a FunnelsQuery.';

CREATE FUNCTION insights.funnel(project_id bigint, query jsonb)
RETURNS TABLE (breakdown_value text, step integer, name text, count bigint,
               average_conversion_time double precision, median_conversion_time double precision)
LANGUAGE sql STABLE PARALLEL SAFE STRICT ROWS 10
BEGIN ATOMIC
    SELECT * FROM insights._funnel(project_id, query::text);
END;
COMMENT ON FUNCTION insights.funnel(bigint, jsonb) IS
  'A funnel''s steps as typed rows (one per step and breakdown value); counts are PostHog''s (actors reaching at least that step).';

CREATE FUNCTION insights.funnel_actors(project_id bigint, query jsonb, step integer, breakdown jsonb DEFAULT NULL)
RETURNS SETOF text
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT * FROM insights._funnel_actors(project_id, query::text, step, breakdown::text);
END;
COMMENT ON FUNCTION insights.funnel_actors(bigint, jsonb, integer, jsonb) IS
  'Actor ids (persons, or group keys) who reached step N (N > 0) or dropped off right before step -N.';
"#,
    name = "funnel_sql_surface",
    requires = [_funnel_json, _funnel, _funnel_actors],
);
