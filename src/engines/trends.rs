//! Trends over the event store: `insights.trend` (typed rows) and `insights.trend_json`
//! (PostHog's response). Planning and rendering are pure Rust in `pg_insights_core::engines::trends`; each
//! planned statement returns `(bucket, breakdown, value)` rows, aggregated by Postgres itself.

use pg_insights_core::engines::trends::{self, Row};
use pg_insights_core::model::{InsightKind, parse_query_as};
use pgrx::JsonB;
use pgrx::prelude::*;
use serde_json::{Value, json};

use crate::context::{
    earliest_event, load_project, now_iso, parse_insight, parse_json, select_rows, with_lookups,
};
use crate::errors::raise_query_error;
use crate::segments::{self, Path};

/// Parse, plan and run a query sent to `/insights/trend/`: its PostHog `result` value and the
/// project. A legacy filter selecting stickiness or lifecycle (`insight`, or `shown_as`) runs
/// that engine, as PostHog's trend endpoint does.
pub(crate) fn run(
    project_id: i64,
    query: &Value,
) -> (Value, pg_insights_core::engines::funnels::Project) {
    let project = load_project(project_id);
    let q = parse_query_as(query, InsightKind::Trends).unwrap_or_else(|e| raise_query_error(&e));
    match q.kind {
        InsightKind::Stickiness => {
            let result = crate::engines::stickiness::run_query(&project, &q);
            return (result, project);
        }
        InsightKind::Lifecycle => {
            let (_, result) = crate::engines::lifecycle::run_query(&project, &q);
            return (result, project);
        }
        _ => {}
    }
    let plan = plan_insight(project_id, &project, query);
    let outputs: Vec<Vec<Row>> = plan
        .runs
        .iter()
        .map(|r| {
            if let Path::Segments(rows) = segments::trend_rows(project_id, &project.pt, r) {
                return rows;
            }
            select_rows(&r.sql, &r.params, "trends", |row| {
                let bucket_us = row
                    .get::<TimestampWithTimeZone>(1)?
                    .map(|t| {
                        pg_sys::TimestampTz::from(t)
                            + pg_insights_core::engines::funnels::PG_EPOCH_OFFSET_US
                    })
                    .unwrap_or(0);
                Ok(Row {
                    bucket_us,
                    breakdown: row.get::<String>(2)?,
                    value: row.get::<f64>(3)?.unwrap_or(0.0),
                })
            })
        })
        .collect();
    (trends::render(&plan, &outputs), project)
}

fn plan_insight(
    project_id: i64,
    project: &pg_insights_core::engines::funnels::Project,
    query: &Value,
) -> trends::TrendsPlan {
    let q = parse_insight(query, InsightKind::Trends);
    let earliest = earliest_event(project_id, &q);
    with_lookups(project_id, |lookups| {
        trends::plan(&q, project, lookups, chrono::Utc::now(), earliest)
    })
    .unwrap_or_else(|e| raise_query_error(&e))
}

/// The plan of a trends query (for `insights.explain`); `None` for other insight kinds.
pub(crate) fn plan_for(project_id: i64, query: &Value) -> Option<trends::TrendsPlan> {
    let q = parse_query_as(query, InsightKind::Trends).unwrap_or_else(|e| raise_query_error(&e));
    if q.kind != InsightKind::Trends {
        return None;
    }
    let project = load_project(project_id);
    Some(plan_insight(project_id, &project, query))
}

/// SQL: `insights.trend_json(project_id, query) → jsonb`: PostHog's `/insights/trend/` body.
/// `query` is a legacy trends filter or a `TrendsQuery`.
#[pg_extern(stable, parallel_safe)]
fn _trend_json(project_id: i64, query: &str) -> JsonB {
    let (result, project) = run(project_id, &parse_json(query, "query"));
    JsonB(json!({
        "result": result,
        "timezone": project.timezone,
        "is_cached": false,
        "last_refresh": now_iso(),
    }))
}

/// SQL: `insights.trend(project_id, query)`: one row per series, breakdown value and bucket.
#[allow(clippy::type_complexity)] // pgrx spells the row type out in the signature
#[pg_extern(stable, parallel_safe)]
fn _trend(
    project_id: i64,
    query: &str,
) -> TableIterator<
    'static,
    (
        name!(series, String),
        name!(breakdown_value, Option<String>),
        name!(bucket, Option<TimestampWithTimeZone>),
        name!(value, f64),
    ),
> {
    let query = parse_json(query, "query");
    parse_insight(&query, InsightKind::Trends); // typed trend rows are for trends only
    let (result, project) = run(project_id, &query);
    let rows: Vec<_> = trends::rows(&result, &project.pt)
        .into_iter()
        .map(|(series, bd, bucket_us, v)| {
            let ts = bucket_us.and_then(|us| {
                TimestampWithTimeZone::try_from(
                    us - pg_insights_core::engines::funnels::PG_EPOCH_OFFSET_US,
                )
                .ok()
            });
            (series, bd, ts, v)
        })
        .collect();
    TableIterator::new(rows)
}

extension_sql!(
    r#"
CREATE FUNCTION insights.trend_json(project_id bigint, query jsonb) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE STRICT
RETURN insights._trend_json(project_id, query::text);
COMMENT ON FUNCTION insights.trend_json(bigint, jsonb) IS
  'Trends as PostHog''s /insights/trend/ body. query: a legacy trends filter or a TrendsQuery.';

CREATE FUNCTION insights.trend(project_id bigint, query jsonb)
RETURNS TABLE (series text, breakdown_value text, bucket timestamptz, value double precision)
LANGUAGE sql STABLE PARALLEL SAFE STRICT
BEGIN ATOMIC
    SELECT * FROM insights._trend(project_id, query::text);
END;
COMMENT ON FUNCTION insights.trend(bigint, jsonb) IS
  'Trends as typed rows: one per series, breakdown value and bucket (bucket NULL for total-value displays).';
"#,
    name = "trend_sql_surface",
    requires = [_trend_json, _trend],
);
