//! Paths over the event store: `insights.paths_json` (PostHog's `/insights/path/` body) and
//! `insights.paths` (typed edges). The statement reads each person's events in time order;
//! sessions, cleaning and edges are pure Rust in `pg_insights_core::engines::paths`.

use pg_insights_core::engines::funnels::{ActorsRequest, Project};
use pg_insights_core::engines::paths::{self, ActorKeys, FunnelScope, PathEvents, PathsPlan};
use pg_insights_core::model::InsightKind;
use pgrx::prelude::*;
use pgrx::{Internal, JsonB};
use serde_json::{Value, json};

use crate::agg::{combine, in_agg_context};
use crate::context::{
    earliest_event, load_project, now_iso, parse_insight, parse_json, select_rows, with_lookups,
};
use crate::errors::raise_query_error;

/// The project's `path_cleaning_filters` (applied with `path_replacements`).
fn team_cleaning(project_id: i64) -> Value {
    Spi::get_one_with_args::<JsonB>(
        "SELECT path_cleaning_filters FROM insights.projects WHERE id = $1",
        &[project_id.into()],
    )
    .ok()
    .flatten()
    .map(|j| j.0)
    .unwrap_or_else(|| json!([]))
}

/// Funnel paths: run the funnel (detailed outcomes) and keep each person's part of it.
fn funnel_scope(project_id: i64, fp: &paths::FunnelPaths) -> FunnelScope {
    let detail = ActorsRequest {
        step: 1,
        breakdown: None,
        detail: true,
    };
    let (plan, outputs, _) = crate::engines::funnels::run(project_id, &fp.source, Some(detail));
    let window_us = plan.config.window_us;
    FunnelScope {
        windows: paths::funnel_windows(fp, &outputs, window_us),
        window_us,
    }
}

/// Parse and plan a paths query, then read every person's events (from segments where they
/// can answer, else with the plan's statement).
fn read(project_id: i64, query: &str) -> (PathsPlan, PathEvents, Project) {
    let project = load_project(project_id);
    let plan = plan_query(&project, &parse_json(query, "query"));
    let events = crate::segments::paths::path_events(project_id, &plan).unwrap_or_else(|| {
        let state = select_rows(&plan.sql, &plan.params, "paths", |row| {
            Ok(row.get::<Vec<u8>>(1)?.unwrap_or_default())
        });
        state
            .first()
            .map(|b| PathEvents::from_bytes(b))
            .unwrap_or_default()
    });
    (plan, events, project)
}

/// The plan of a paths query (for `insights.explain`).
pub(crate) fn plan_for(project_id: i64, query: &Value) -> PathsPlan {
    plan_query(&load_project(project_id), query)
}

fn plan_query(project: &Project, query: &Value) -> PathsPlan {
    let project_id = project.id;
    let q = parse_insight(query, InsightKind::Paths);
    let funnel = paths::funnel_paths(&q.paths)
        .unwrap_or_else(|e| raise_query_error(&e))
        .map(|fp| funnel_scope(project_id, &fp));
    let earliest = earliest_event(project_id, &q);
    let team = team_cleaning(project_id);
    with_lookups(project_id, |lookups| {
        paths::plan(
            &q,
            project,
            &team,
            lookups,
            chrono::Utc::now(),
            earliest,
            funnel,
        )
    })
    .unwrap_or_else(|e| raise_query_error(&e))
}

fn run(project_id: i64, query: &str) -> (Value, Project) {
    let (plan, events, project) = read(project_id, query);
    let threads = crate::threads::query_threads();
    let result =
        crate::threads::with_signals_blocked(|| paths::render_state_on(&plan, events, threads));
    (result, project)
}

/// SQL: `insights.paths_json(project_id, query) → jsonb`.
#[pg_extern(stable, parallel_safe)]
fn _paths_json(project_id: i64, query: &str) -> JsonB {
    let (result, project) = run(project_id, query);
    JsonB(json!({
        "result": result,
        "timezone": project.timezone,
        "is_cached": false,
        "last_refresh": now_iso(),
    }))
}

/// SQL: `insights.paths(project_id, query)`: the selected edges, in PostHog's order.
#[allow(clippy::type_complexity)] // pgrx spells the row type out in the signature
#[pg_extern(stable, parallel_safe)]
fn _paths(
    project_id: i64,
    query: &str,
) -> TableIterator<
    'static,
    (
        name!(source, String),
        name!(target, String),
        name!(value, i64),
        name!(average_conversion_time, f64),
    ),
> {
    let (plan, events, _) = read(project_id, query);
    let threads = crate::threads::query_threads();
    TableIterator::new(crate::threads::with_signals_blocked(|| {
        paths::render_rows_on(&plan, events, threads)
    }))
}

/// SQL: `insights.paths_actors(project_id, query, start_key, end_key, dropoff_key) → setof
/// text`: the persons behind one node or edge of a paths result (PostHog's `persons/path/`).
/// The keys may be NULL; a NULL project or query gives no rows, as a STRICT function would.
#[pg_extern(stable, parallel_safe)]
fn _paths_actors(
    project_id: Option<i64>,
    query: Option<&str>,
    start_key: Option<&str>,
    end_key: Option<&str>,
    dropoff_key: Option<&str>,
) -> SetOfIterator<'static, String> {
    let (Some(project_id), Some(query)) = (project_id, query) else {
        return SetOfIterator::new(Vec::new());
    };
    let key = |k: Option<&str>| {
        k.map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_string)
    };
    let keys = ActorKeys {
        start: key(start_key),
        end: key(end_key),
        dropoff: key(dropoff_key),
    };
    let (plan, events, _) = read(project_id, query);
    let ids = paths::actors(&plan, events, &keys).unwrap_or_else(|e| raise_query_error(&e));
    SetOfIterator::new(ids.into_iter().map(|id| id.to_string()).collect::<Vec<_>>())
}

// ---------------------------------------------------------------------------------------------
// insights._path_events: every matching event, items interned, gathered across parallel workers
// ---------------------------------------------------------------------------------------------

#[pg_extern(immutable, parallel_safe)]
fn _path_events_sfunc(
    mut state: Internal,
    actor: Option<i64>,
    ts: Option<TimestampWithTimeZone>,
    uuid: Option<pgrx::Uuid>,
    item: Option<&str>,
    strip: Option<bool>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    if !state.initialized() {
        in_agg_context(fcinfo, || unsafe { state.insert(PathEvents::default()) });
    }
    let (Some(actor), Some(ts)) = (actor, ts) else {
        return state;
    };
    let us = pg_sys::TimestampTz::from(ts) + pg_insights_core::engines::funnels::PG_EPOCH_OFFSET_US;
    if let Some(s) = unsafe { state.get_mut::<PathEvents>() } {
        let uuid = uuid
            .map(|u| u128::from_be_bytes(*u.as_bytes()))
            .unwrap_or(0);
        s.add(
            actor,
            us,
            uuid,
            item.unwrap_or_default(),
            strip.unwrap_or(false),
        );
    }
    state
}

#[pg_extern(immutable, parallel_safe)]
fn _path_events_combine(a: Internal, b: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    combine(a, b, fcinfo, PathEvents::merge)
}

#[pg_extern(immutable, parallel_safe, strict)]
fn _path_events_serial(mut state: Internal) -> Vec<u8> {
    // Sorted here, in the parallel worker: the leader then merges sorted runs instead of sorting
    // every row alone (render_state's sort is run-adaptive).
    unsafe { state.get_mut::<PathEvents>() }
        .map(|s| {
            s.sort_rows();
            s.to_bytes()
        })
        .unwrap_or_default()
}

#[pg_extern(immutable, parallel_safe, strict)]
fn _path_events_deserial(
    bytes: &[u8],
    _unused: Internal,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    let s = PathEvents::from_bytes(bytes);
    in_agg_context(fcinfo, || Internal::new(s))
}

#[pg_extern(immutable, parallel_safe)]
fn _path_events_final(mut state: Internal) -> Option<Vec<u8>> {
    unsafe { state.get_mut::<PathEvents>() }.map(|s| s.to_bytes())
}

extension_sql!(
    r#"
CREATE AGGREGATE insights._path_events(actor int8, ts timestamptz, uuid uuid, item text, strip boolean) (
    SFUNC            = insights._path_events_sfunc,
    STYPE            = internal,
    COMBINEFUNC      = insights._path_events_combine,
    SERIALFUNC       = insights._path_events_serial,
    DESERIALFUNC     = insights._path_events_deserial,
    FINALFUNC        = insights._path_events_final,
    FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL         = SAFE
);
COMMENT ON AGGREGATE insights._path_events(int8, timestamptz, uuid, text, boolean) IS
  'Internal: the events of a paths query (actor, time, uuid for ties, item; strip removes one trailing slash), items interned; run by insights.paths.';
"#,
    name = "path_events_aggregate",
    requires = [
        _path_events_sfunc,
        _path_events_combine,
        _path_events_serial,
        _path_events_deserial,
        _path_events_final
    ],
);

extension_sql!(
    r#"
CREATE FUNCTION insights.paths_json(project_id bigint, query jsonb) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE STRICT
RETURN insights._paths_json(project_id, query::text);
COMMENT ON FUNCTION insights.paths_json(bigint, jsonb) IS
  'Paths as PostHog''s /insights/path/ body. query: a legacy PATHS filter or a PathsQuery.';

CREATE FUNCTION insights.paths(project_id bigint, query jsonb)
RETURNS TABLE (source text, target text, value bigint, average_conversion_time double precision)
LANGUAGE sql STABLE PARALLEL SAFE STRICT
BEGIN ATOMIC
    SELECT * FROM insights._paths(project_id, query::text);
END;
COMMENT ON FUNCTION insights.paths(bigint, jsonb) IS
  'Paths as typed edges (source "<step>_<item>", target, number of paths, mean time between them in ms).';

CREATE FUNCTION insights.paths_actors(project_id bigint, query jsonb, start_key text DEFAULT NULL,
                                      end_key text DEFAULT NULL, dropoff_key text DEFAULT NULL)
RETURNS SETOF text
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT * FROM insights._paths_actors(project_id, query::text, start_key, end_key, dropoff_key);
END;
COMMENT ON FUNCTION insights.paths_actors(bigint, jsonb, text, text, text) IS
  'Person ids behind a paths node or edge: start_key and end_key (the edge), end_key (reached the node), start_key (went on from it), dropoff_key (the path ends there). Keys are "<step>_<item>".';
"#,
    name = "paths_sql_surface",
    requires = [_paths_json, _paths, _paths_actors, "path_events_aggregate"],
);
