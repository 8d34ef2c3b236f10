//! Retention over the event store: `insights.retention` (typed rows) and `insights.retention_json`
//! (PostHog's response). Planning and rendering are pure Rust in `pg_insights_core::retention`;
//! the one statement it plans groups events per actor into period bitmasks with built-in,
//! parallel-safe aggregates.

use pg_insights_core::funnels::Lookups;
use pg_insights_core::query::InsightKind;
use pg_insights_core::retention::{self, Row};
use pgrx::JsonB;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use serde_json::{Value, json};

use crate::context::{
    datum, load_project, lookup_action, lookup_cohort, now_iso, parse_insight, parse_json,
};
use crate::errors::raise_query_error;

/// Parse, plan and run a retention query: its PostHog `result` value and the project timezone.
fn run(project_id: i64, query: &Value) -> (Value, String) {
    let project = load_project(project_id);
    let q = parse_insight(query, InsightKind::Retention);
    let cohort = |id| lookup_cohort(project_id, id);
    let action = |id| lookup_action(project_id, id);
    let lookups = Lookups {
        cohort: &cohort,
        action: &action,
    };
    let plan = retention::plan(&q, &project, &lookups, chrono::Utc::now())
        .unwrap_or_else(|e| raise_query_error(&e));
    let args: Vec<DatumWithOid> = plan.params.iter().map(datum).collect();
    // No row limit: a limited SPI read runs without parallel workers.
    let rows = Spi::connect(|c| {
        let mut out = Vec::new();
        for r in c.select(&plan.sql, None, &args)? {
            out.push(Row {
                cohort: r.get::<i32>(1)?.unwrap_or(0).max(0) as usize,
                period: r.get::<i32>(2)?.unwrap_or(0).max(0) as usize,
                actors: r.get::<i64>(3)?.unwrap_or(0),
            });
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .unwrap_or_else(|e| pgrx::error!("pg_insights: retention query failed: {e}"));
    (retention::render(&plan, &rows), project.timezone)
}

/// SQL: `insights.retention_json(project_id, query) → jsonb`: PostHog's `/insights/retention/`
/// body. `query` is a legacy retention filter or a `RetentionQuery`.
#[pg_extern(stable, parallel_safe)]
fn _retention_json(project_id: i64, query: &str) -> JsonB {
    let (result, timezone) = run(project_id, &parse_json(query, "query"));
    JsonB(
        json!({"result": result, "timezone": timezone, "is_cached": false, "last_refresh": now_iso()}),
    )
}

/// SQL: `insights.retention(project_id, query)`: one row per cohort and period.
#[allow(clippy::type_complexity)] // pgrx spells the row type out in the signature
#[pg_extern(stable, parallel_safe)]
fn _retention(
    project_id: i64,
    query: &str,
) -> TableIterator<
    'static,
    (
        name!(cohort_date, String),
        name!(cohort_label, String),
        name!(period, i32),
        name!(count, i64),
        name!(percentage, f64),
    ),
> {
    let (result, _) = run(project_id, &parse_json(query, "query"));
    TableIterator::new(retention::rows(&result))
}

extension_sql!(
    r#"
CREATE FUNCTION insights.retention_json(project_id bigint, query jsonb) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE STRICT
RETURN insights._retention_json(project_id, query::text);
COMMENT ON FUNCTION insights.retention_json(bigint, jsonb) IS
  'Retention as PostHog''s /insights/retention/ body. query: a legacy retention filter or a RetentionQuery.';

CREATE FUNCTION insights.retention(project_id bigint, query jsonb)
RETURNS TABLE (cohort_date text, cohort_label text, period integer, count bigint, percentage double precision)
LANGUAGE sql STABLE PARALLEL SAFE STRICT
BEGIN ATOMIC
    SELECT * FROM insights._retention(project_id, query::text);
END;
COMMENT ON FUNCTION insights.retention(bigint, jsonb) IS
  'Retention as typed rows: one per cohort (start period) and period offset, with the cohort share in percent.';
"#,
    name = "retention_sql_surface",
    requires = [_retention_json, _retention],
);
