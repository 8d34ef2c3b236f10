//! Lifecycle over the event store: `insights.lifecycle_json` (PostHog's result),
//! `insights.lifecycle` (typed rows) and `insights.lifecycle_actors` (the actors of one status
//! in one period). Planning and rendering are pure Rust in `pg_insights_core::engines::lifecycle`.

use pg_insights_core::compile::dates;
use pg_insights_core::engines::funnels::{PG_EPOCH_OFFSET_US, Project};
use pg_insights_core::engines::lifecycle::{self, LifecyclePlan};
use pg_insights_core::model::{InsightKind, InsightQuery};
use pgrx::JsonB;
use pgrx::prelude::*;
use serde_json::{Value, json};

use crate::context::{
    earliest_event, load_project, now_iso, parse_insight, parse_json, select_rows, with_lookups,
};
use crate::errors::raise_query_error;

fn plan(project: &Project, q: &InsightQuery) -> LifecyclePlan {
    let earliest = earliest_event(project.id, q);
    with_lookups(project.id, |lookups| {
        lifecycle::plan(q, project, lookups, chrono::Utc::now(), earliest)
    })
    .unwrap_or_else(|e| raise_query_error(&e))
}

/// The plan of a lifecycle query (for `insights.explain`).
pub(crate) fn plan_for(project_id: i64, query: &Value) -> LifecyclePlan {
    let project = load_project(project_id);
    plan(&project, &parse_insight(query, InsightKind::Lifecycle))
}

/// Plan and run a parsed lifecycle query: the plan and its PostHog `result` value.
pub(crate) fn run_query(project: &Project, q: &InsightQuery) -> (LifecyclePlan, Value) {
    let plan = plan(project, q);
    let rows = if plan.masks {
        let masks = crate::segments::periods::period_masks(project.id, &plan.seg)
            .unwrap_or_else(|| crate::context::select_masks(&plan.sql, &plan.params, "lifecycle"));
        lifecycle::rows_of_masks(&masks, plan.buckets.len() + 2)
    } else {
        select_rows(&plan.sql, &plan.params, "lifecycle", |row| {
            Ok((
                row.get::<i64>(1)?.unwrap_or(0),
                row.get::<String>(2)?.unwrap_or_default(),
                row.get::<i64>(3)?.unwrap_or(0),
            ))
        })
    };
    let result = lifecycle::render(&plan, &rows);
    (plan, result)
}

fn run(project_id: i64, query: &str) -> (LifecyclePlan, Value, Project) {
    let project = load_project(project_id);
    let q = parse_insight(&parse_json(query, "query"), InsightKind::Lifecycle);
    let (plan, result) = run_query(&project, &q);
    (plan, result, project)
}

/// SQL: `insights.lifecycle_json(project_id, query) → jsonb`.
#[pg_extern(stable, parallel_safe)]
fn _lifecycle_json(project_id: i64, query: &str) -> JsonB {
    let (_, result, project) = run(project_id, query);
    JsonB(json!({
        "result": result,
        "timezone": project.timezone,
        "is_cached": false,
        "last_refresh": now_iso(),
    }))
}

/// SQL: `insights.lifecycle(project_id, query)`: one row per status and period.
#[allow(clippy::type_complexity)] // pgrx spells the row type out in the signature
#[pg_extern(stable, parallel_safe)]
fn _lifecycle(
    project_id: i64,
    query: &str,
) -> TableIterator<
    'static,
    (
        name!(status, String),
        name!(bucket, Option<TimestampWithTimeZone>),
        name!(value, f64),
    ),
> {
    let (plan, result, _) = run(project_id, query);
    let rows: Vec<_> = lifecycle::rows(&plan, &result)
        .into_iter()
        .map(|(status, bucket, v)| {
            let ts =
                TimestampWithTimeZone::try_from(bucket.timestamp_micros() - PG_EPOCH_OFFSET_US)
                    .ok();
            (status, ts, v)
        })
        .collect();
    TableIterator::new(rows)
}

/// SQL: `insights.lifecycle_actors(project_id, query, target_date, status) → setof text`: the
/// actors with `status` in the period containing `target_date` (PostHog's date grammar, in the
/// project timezone).
#[pg_extern(stable, parallel_safe)]
fn _lifecycle_actors(
    project_id: i64,
    query: &str,
    target_date: &str,
    status: &str,
) -> SetOfIterator<'static, String> {
    let project = load_project(project_id);
    let q = parse_insight(&parse_json(query, "query"), InsightKind::Lifecycle);
    let now = chrono::Utc::now();
    let target = dates::parse_relative_or_absolute(target_date, now, &project.pt, "target_date")
        .map(|d| d.at().unwrap_or(now))
        .unwrap_or_else(|e| raise_query_error(&e));
    let earliest = earliest_event(project_id, &q);
    let plan = with_lookups(project_id, |lookups| {
        lifecycle::plan_actors(&q, &project, lookups, target, status, now, earliest)
    })
    .unwrap_or_else(|e| raise_query_error(&e));
    let mut ids = select_rows(&plan.sql, &plan.params, "lifecycle actors", |r| {
        Ok(r.get::<String>(1)?.unwrap_or_default())
    });
    ids.sort();
    SetOfIterator::new(ids)
}

extension_sql!(
    r#"
CREATE FUNCTION insights.lifecycle_json(project_id bigint, query jsonb) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE STRICT
RETURN insights._lifecycle_json(project_id, query::text);
COMMENT ON FUNCTION insights.lifecycle_json(bigint, jsonb) IS
  'Lifecycle as PostHog''s result body. query: a legacy LIFECYCLE filter or a LifecycleQuery.';

CREATE FUNCTION insights.lifecycle(project_id bigint, query jsonb)
RETURNS TABLE (status text, bucket timestamptz, value double precision)
LANGUAGE sql STABLE PARALLEL SAFE STRICT
BEGIN ATOMIC
    SELECT * FROM insights._lifecycle(project_id, query::text);
END;
COMMENT ON FUNCTION insights.lifecycle(bigint, jsonb) IS
  'Lifecycle as typed rows: per status (new, returning, resurrecting, dormant) and period; dormant values are negative.';

CREATE FUNCTION insights.lifecycle_actors(project_id bigint, query jsonb, target_date text, status text)
RETURNS SETOF text
LANGUAGE sql STABLE PARALLEL SAFE STRICT
BEGIN ATOMIC
    SELECT * FROM insights._lifecycle_actors(project_id, query::text, target_date, status);
END;
COMMENT ON FUNCTION insights.lifecycle_actors(bigint, jsonb, text, text) IS
  'The actors (person ids, or group keys) with one lifecycle status in the period containing target_date.';
"#,
    name = "lifecycle_sql_surface",
    requires = [_lifecycle_json, _lifecycle, _lifecycle_actors],
);
