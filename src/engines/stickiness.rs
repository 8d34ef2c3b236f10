//! Stickiness over the event store: `insights.stickiness_json` (PostHog's result),
//! `insights.stickiness` (typed rows) and `insights.stickiness_actors` (the actors behind one
//! data point). Planning and rendering are pure Rust in `pg_insights_core::engines::stickiness`.

use pg_insights_core::engines::funnels::Project;
use pg_insights_core::engines::stickiness::{self, StickinessPlan};
use pg_insights_core::model::{EntityKind, InsightKind, InsightQuery};
use pgrx::JsonB;
use pgrx::prelude::*;
use serde_json::{Value, json};

use crate::context::{
    earliest_event, load_project, now_iso, parse_insight, parse_json, select_rows, with_lookups,
};
use crate::errors::raise_query_error;
use crate::segments::periods as segments;

fn plan(project: &Project, q: &InsightQuery) -> StickinessPlan {
    let earliest = earliest_event(project.id, q);
    with_lookups(project.id, |lookups| {
        stickiness::plan(q, project, lookups, chrono::Utc::now(), earliest)
    })
    .unwrap_or_else(|e| raise_query_error(&e))
}

/// The plan of a stickiness query (for `insights.explain`).
pub(crate) fn plan_for(project_id: i64, query: &Value) -> StickinessPlan {
    let project = load_project(project_id);
    plan(&project, &parse_insight(query, InsightKind::Stickiness))
}

/// Plan and run a parsed stickiness query: its PostHog `result` value.
pub(crate) fn run_query(project: &Project, q: &InsightQuery) -> Value {
    let plan = plan(project, q);
    let outputs: Vec<Vec<(i64, i64)>> = plan
        .runs
        .iter()
        .map(|r| {
            if r.masks {
                let masks = segments::period_masks(project.id, &r.seg).unwrap_or_else(|| {
                    crate::context::select_masks(&r.sql, &r.params, "stickiness")
                });
                return stickiness::histogram_of_masks(r, &masks);
            }
            select_rows(&r.sql, &r.params, "stickiness", |row| {
                Ok((
                    row.get::<i64>(1)?.unwrap_or(0),
                    row.get::<i64>(2)?.unwrap_or(0),
                ))
            })
        })
        .collect();
    stickiness::render(&plan, &outputs)
}

fn run(project_id: i64, query: &str) -> (Value, Project) {
    let project = load_project(project_id);
    let q = parse_insight(&parse_json(query, "query"), InsightKind::Stickiness);
    (run_query(&project, &q), project)
}

/// SQL: `insights.stickiness_json(project_id, query) → jsonb`.
#[pg_extern(stable, parallel_safe)]
fn _stickiness_json(project_id: i64, query: &str) -> JsonB {
    let (result, project) = run(project_id, query);
    JsonB(json!({
        "result": result,
        "timezone": project.timezone,
        "is_cached": false,
        "last_refresh": now_iso(),
    }))
}

/// SQL: `insights.stickiness(project_id, query)`: one row per series, period and interval count.
#[allow(clippy::type_complexity)] // pgrx spells the row type out in the signature
#[pg_extern(stable, parallel_safe)]
fn _stickiness(
    project_id: i64,
    query: &str,
) -> TableIterator<
    'static,
    (
        name!(series, String),
        name!(compare_label, Option<String>),
        name!(intervals, i32),
        name!(actors, f64),
    ),
> {
    let (result, _) = run(project_id, query);
    TableIterator::new(stickiness::rows(&result))
}

/// The series an actors request means: `entity_id` / `entity_type` (default `events`) among the
/// query's series, else the first series; an entity that is not a series is added bare, as
/// PostHog does.
fn actors_series(q: &mut InsightQuery, query: &Value) -> usize {
    let Some(id) = query.get("entity_id").filter(|v| !v.is_null()) else {
        return 0;
    };
    let is_action = query.get("entity_type").and_then(Value::as_str) == Some("actions");
    let wanted = match (is_action, id) {
        (true, Value::Number(n)) => n.as_i64().map(|id| EntityKind::Action { id }),
        (true, Value::String(s)) => s.trim().parse().ok().map(|id| EntityKind::Action { id }),
        (false, Value::String(s)) => Some(EntityKind::Event {
            name: Some(s.clone()),
        }),
        _ => None,
    };
    let Some(wanted) = wanted else {
        raise_query_error(&pg_insights_core::QueryError::invalid(
            "entity_id".to_string(),
            "entity_id must be an event name, or an action id with entity_type actions.",
        ))
    };
    if let Some(i) = q.series.iter().position(|e| e.kind == wanted) {
        return i;
    }
    q.series.push(pg_insights_core::model::Entity::new(wanted));
    q.series.len() - 1
}

/// SQL: `insights.stickiness_actors(project_id, query, intervals) → setof text`: the actors
/// (person ids, or group keys) active in exactly `intervals` intervals (at least that many for a
/// cumulative query). `query` may name the series with `entity_id` / `entity_type`.
#[pg_extern(stable, parallel_safe)]
fn _stickiness_actors(
    project_id: i64,
    query: &str,
    intervals: i64,
) -> SetOfIterator<'static, String> {
    let project = load_project(project_id);
    let raw = parse_json(query, "query");
    let mut q = parse_insight(&raw, InsightKind::Stickiness);
    let index = actors_series(&mut q, &raw);
    let earliest = earliest_event(project_id, &q);
    let plan = with_lookups(project_id, |lookups| {
        stickiness::plan_actors(
            &q,
            &project,
            lookups,
            index,
            intervals,
            chrono::Utc::now(),
            earliest,
        )
    })
    .unwrap_or_else(|e| raise_query_error(&e));
    let mut ids = select_rows(&plan.sql, &plan.params, "stickiness actors", |r| {
        Ok(r.get::<String>(1)?.unwrap_or_default())
    });
    ids.sort();
    SetOfIterator::new(ids)
}

extension_sql!(
    r#"
CREATE FUNCTION insights.stickiness_json(project_id bigint, query jsonb) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE STRICT
RETURN insights._stickiness_json(project_id, query::text);
COMMENT ON FUNCTION insights.stickiness_json(bigint, jsonb) IS
  'Stickiness as PostHog''s result body. query: a legacy STICKINESS filter or a StickinessQuery.';

CREATE FUNCTION insights.stickiness(project_id bigint, query jsonb)
RETURNS TABLE (series text, compare_label text, intervals integer, actors double precision)
LANGUAGE sql STABLE PARALLEL SAFE STRICT
BEGIN ATOMIC
    SELECT * FROM insights._stickiness(project_id, query::text);
END;
COMMENT ON FUNCTION insights.stickiness(bigint, jsonb) IS
  'Stickiness as typed rows: per series (and compare period), the actors active in exactly `intervals` intervals (at least, when cumulative).';

CREATE FUNCTION insights.stickiness_actors(project_id bigint, query jsonb, intervals bigint)
RETURNS SETOF text
LANGUAGE sql STABLE PARALLEL SAFE STRICT
BEGIN ATOMIC
    SELECT * FROM insights._stickiness_actors(project_id, query::text, intervals);
END;
COMMENT ON FUNCTION insights.stickiness_actors(bigint, jsonb, bigint) IS
  'The actors (person ids, or group keys) of one stickiness data point; entity_id / entity_type in the query pick the series.';
"#,
    name = "stickiness_sql_surface",
    requires = [_stickiness_json, _stickiness, _stickiness_actors],
);
