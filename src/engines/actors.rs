//! Insight drill-downs and exports: `insights.trend_actors` / `insights.trend_actors_meta`
//! (`persons/trends/`, docs/trends.md#actors), `insights.retention_actors` (`persons/retention/`,
//! docs/retention.md#actors) and `insights.trend_csv` (`format=csv`, docs/trends.md#csv-export).
//! Planning and rendering are pure Rust in `pg_insights_core::{trends_actors, retention,
//! trends_export}`.

use pg_insights_core::compile::dates::{self, Interval};
use pg_insights_core::engines::retention;
use pg_insights_core::engines::trends::{actors as trends_actors, export as trends_export};
use pg_insights_core::model::InsightKind;
use pgrx::JsonB;
use pgrx::prelude::*;
use serde_json::{Value, json};

use crate::context::{
    earliest_event, load_project, parse_insight, parse_json, select_rows, with_lookups,
};
use crate::errors::raise_query_error;

fn plan_trend_actors(project_id: i64, query: &Value) -> trends_actors::TrendsActorsPlan {
    let project = load_project(project_id);
    let q = parse_insight(query, InsightKind::Trends);
    let earliest = earliest_event(project_id, &q);
    with_lookups(project_id, |lookups| {
        trends_actors::plan_actors(&q, query, &project, lookups, chrono::Utc::now(), earliest)
    })
    .unwrap_or_else(|e| raise_query_error(&e))
}

/// SQL: `insights.trend_actors(project_id, query) → setof text`: the actors (person ids, or
/// group keys) of one trends data point.
#[pg_extern(stable, parallel_safe)]
fn _trend_actors(project_id: i64, query: &str) -> SetOfIterator<'static, String> {
    let plan = plan_trend_actors(project_id, &parse_json(query, "query"));
    let mut ids = select_rows(&plan.sql, &plan.params, "trends actors", |r| {
        Ok(r.get::<String>(1)?.unwrap_or_default())
    });
    ids.sort();
    SetOfIterator::new(ids)
}

/// SQL: `insights.trend_actors_meta(project_id, query) → jsonb`: what the data point's actors
/// are, without running anything: `{"label", "math", "group_type_index"}`.
#[pg_extern(stable, parallel_safe)]
fn _trend_actors_meta(project_id: i64, query: &str) -> JsonB {
    let plan = plan_trend_actors(project_id, &parse_json(query, "query"));
    JsonB(json!({
        "label": plan.label,
        "math": plan.math,
        "group_type_index": plan.group_type_index,
    }))
}

/// SQL: `insights.retention_actors(project_id, query, selected_interval)`: the actors of cohort
/// `selected_interval` with their appearances (period offsets from the cohort period).
#[pg_extern(stable, parallel_safe)]
fn _retention_actors(
    project_id: i64,
    query: &str,
    selected_interval: i64,
) -> TableIterator<'static, (name!(actor, String), name!(appearances, Vec<i32>))> {
    let project = load_project(project_id);
    let query = parse_json(query, "query");
    let q = parse_insight(&query, InsightKind::Retention);
    let plan = with_lookups(project_id, |lookups| {
        retention::plan_actors(&q, &project, lookups, chrono::Utc::now(), selected_interval)
    })
    .unwrap_or_else(|e| raise_query_error(&e));
    let c = selected_interval as usize;
    let rows = select_rows(&plan.sql, &plan.params, "retention actors", |r| {
        Ok((
            r.get::<String>(1)?.unwrap_or_default(),
            r.get::<i64>(2)?.unwrap_or(0),
        ))
    });
    TableIterator::new(
        rows.into_iter()
            .map(move |(actor, mask)| (actor, retention::appearances(&plan, c, mask))),
    )
}

/// SQL: `insights.trend_csv(project_id, query, export_name)`: PostHog's CSV export of a trends
/// query and its attachment file name.
#[pg_extern(stable, parallel_safe)]
fn _trend_csv(
    project_id: Option<i64>,
    query: Option<&str>,
    export_name: Option<&str>,
) -> TableIterator<'static, (name!(csv, String), name!(filename, String))> {
    let (Some(project_id), Some(query)) = (project_id, query) else {
        crate::errors::raise(
            pg_insights_core::SqlState::InvalidParameter,
            "project_id and query are required",
            Some(if project_id.is_none() {
                "project_id"
            } else {
                "query"
            }),
            None,
        )
    };
    let query = parse_json(query, "query");
    let (result, project) = crate::engines::trends::run(project_id, &query);
    let q = parse_insight(&query, InsightKind::Trends);
    let interval = match &q.interval {
        Some(i) => Interval::parse(i).unwrap_or_else(|e| raise_query_error(&e)),
        None => Interval::Day,
    };
    let earliest = earliest_event(project_id, &q);
    let range = dates::resolve_range(
        q.date_from.as_deref(),
        q.date_to.as_deref(),
        interval,
        q.explicit_date,
        chrono::Utc::now(),
        &project.pt,
        earliest,
    )
    .unwrap_or_else(|e| raise_query_error(&e));
    let day = |t| dates::day_string(t, Interval::Day, &project.pt);
    let from = (q.date_from.as_deref().map(str::trim) != Some("all")).then(|| day(range.from));
    let filename = trends_export::trends_csv_filename(export_name, from.as_deref(), &day(range.to));
    TableIterator::once((trends_export::trends_csv(&result), filename))
}

extension_sql!(
    r#"
CREATE FUNCTION insights.trend_actors(project_id bigint, query jsonb) RETURNS SETOF text
LANGUAGE sql STABLE PARALLEL SAFE STRICT
BEGIN ATOMIC
    SELECT * FROM insights._trend_actors(project_id, query::text);
END;
COMMENT ON FUNCTION insights.trend_actors(bigint, jsonb) IS
  'Actor ids (persons, or group keys) behind one trends data point. query: the trends filter plus entity_id, entity_type, entity_math, date_from/date_to of the point and breakdown_value (what persons_urls carry).';

CREATE FUNCTION insights.trend_actors_meta(project_id bigint, query jsonb) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE STRICT
RETURN insights._trend_actors_meta(project_id, query::text);
COMMENT ON FUNCTION insights.trend_actors_meta(bigint, jsonb) IS
  'What insights.trend_actors returns for this request: {"label", "math", "group_type_index"} (group_type_index null: persons).';

CREATE FUNCTION insights.retention_actors(project_id bigint, query jsonb, selected_interval integer)
RETURNS TABLE (actor text, appearances integer[])
LANGUAGE sql STABLE PARALLEL SAFE STRICT
BEGIN ATOMIC
    SELECT * FROM insights._retention_actors(project_id, query::text, selected_interval);
END;
COMMENT ON FUNCTION insights.retention_actors(bigint, jsonb, integer) IS
  'Actors (persons, or group keys) of retention cohort selected_interval (0 = oldest), with the period offsets at which each appeared (0 = the cohort period).';

CREATE FUNCTION insights.trend_csv(project_id bigint, query jsonb, export_name text DEFAULT NULL)
RETURNS TABLE (csv text, filename text)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT * FROM insights._trend_csv(project_id, query::text, export_name);
END;
COMMENT ON FUNCTION insights.trend_csv(bigint, jsonb, text) IS
  'A trends query as PostHog''s CSV export (format=csv): one row per result item, a column per bucket label; with the attachment file name.';
"#,
    name = "actors_sql_surface",
    requires = [
        _trend_actors,
        _trend_actors_meta,
        _retention_actors,
        _trend_csv
    ],
);
