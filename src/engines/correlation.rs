//! Funnel correlation: `insights.funnel_correlation_json` and `insights.funnel_correlation_actors`.
//!
//! Parsing, planning, scoring and rendering are pure Rust in `pg_insights_core::engines::funnels::correlation`;
//! this module runs the funnel engine in its per-actor `detail` mode, then the contingency (or
//! drill-down) statement over that population, through SPI.

use pg_insights_core::engines::funnels::correlation::{
    self, ActorColumn, Candidate, CorrelationRequest, Population,
};
use pg_insights_core::engines::funnels::{self, ActorsRequest, FunnelPlan, Project};
use pg_insights_core::model::{InsightKind, InsightQuery};
use pgrx::JsonB;
use pgrx::prelude::*;
use serde_json::{Value, json};

use crate::context::{
    earliest_event, load_project, now_iso, parse_insight, parse_json, select_rows, with_lookups,
};
use crate::errors::raise_query_error;

struct Prepared {
    req: CorrelationRequest,
    q: InsightQuery,
    plan: FunnelPlan,
    project: Project,
    pop: Population,
    step_names: Vec<String>,
}

/// Parse the request, run the funnel engine for every actor's outcome, build the population.
fn prepare(project_id: i64, query: &str, actors: bool) -> Prepared {
    let req = correlation::parse_request(&parse_json(query, "query"))
        .unwrap_or_else(|e| raise_query_error(&e));
    correlation::validate(&req, actors).unwrap_or_else(|e| raise_query_error(&e));
    let project = load_project(project_id);
    let q = parse_insight(&req.funnel, InsightKind::Funnels);
    let earliest = earliest_event(project_id, &q);
    let detail = ActorsRequest {
        step: 1,
        breakdown: None,
        detail: true,
    };
    let (plan, step_names) = with_lookups(project_id, |lookups| {
        funnels::plan(
            &q,
            &project,
            lookups,
            chrono::Utc::now(),
            earliest,
            Some(detail),
        )
        .map(|p| (p, correlation::step_event_names(&q, lookups)))
    })
    .unwrap_or_else(|e| raise_query_error(&e));
    let outputs: Vec<Value> = plan
        .runs
        .iter()
        .map(|r| {
            select_rows(&r.sql, &r.params, "funnel correlation", |row| {
                Ok(row.get::<JsonB>(1)?.map(|j| j.0).unwrap_or(Value::Null))
            })
            .pop()
            .unwrap_or(Value::Null)
        })
        .collect();
    let pop = Population::from_outputs(
        &outputs,
        ActorColumn::of(&q),
        plan.config.num_steps,
        req.funnel_step,
        plan.config.window_us,
        &plan.range,
    );
    Prepared {
        req,
        q,
        plan,
        project,
        pop,
        step_names,
    }
}

/// SQL: `insights.funnel_correlation_json(project_id, query) → jsonb`: PostHog's
/// `/insights/funnel/correlation/` body, `{"result": {"events": […], "skewed": …}, …}`.
#[pg_extern(stable, parallel_safe)]
fn _funnel_correlation_json(project_id: i64, query: &str) -> JsonB {
    let p = prepare(project_id, query, false);
    let candidates = if p.pop.success_total == 0 || p.pop.failure_total == 0 {
        Vec::new()
    } else {
        let (sql, params) = correlation::plan_counts(
            &p.req,
            &p.q,
            &p.project,
            &p.plan.range,
            &p.pop,
            &p.step_names,
        );
        select_rows(&sql, &params, "funnel correlation", |row| {
            Ok(Candidate {
                event: row.get::<String>(1)?,
                key: row.get::<String>(2)?,
                value: row.get::<String>(3)?,
                success_count: row.get::<i64>(4)?.unwrap_or(0).max(0) as u64,
                failure_count: row.get::<i64>(5)?.unwrap_or(0).max(0) as u64,
            })
        })
    };
    let result = correlation::result(
        &p.req,
        candidates,
        &p.pop,
        &p.plan.legacy_filter,
        &format!("/api/projects/{project_id}"),
    );
    JsonB(json!({
        "result": result,
        "timezone": p.project.timezone,
        "is_cached": false,
        "last_refresh": now_iso(),
    }))
}

/// SQL: `insights.funnel_correlation_actors(project_id, query)`: ids of the persons (or group
/// keys) behind a correlation: those who did `funnel_correlation_person_entity` in their funnel
/// window, or match `funnel_correlation_property_values`, optionally only converted
/// (`funnel_correlation_person_converted = true`) or dropped (`false`).
#[pg_extern(stable, parallel_safe)]
fn _funnel_correlation_actors(project_id: i64, query: &str) -> SetOfIterator<'static, String> {
    let p = prepare(project_id, query, true);
    if p.pop.is_empty() {
        return SetOfIterator::new(Vec::new());
    }
    let (sql, params) = with_lookups(project_id, |lookups| {
        correlation::plan_actors(
            &p.req,
            &p.q,
            &p.project,
            lookups,
            &p.plan.range,
            &p.pop,
            &p.step_names,
        )
    })
    .unwrap_or_else(|e| raise_query_error(&e));
    let ids = select_rows(&sql, &params, "funnel correlation actors", |row| {
        Ok(row.get::<String>(1)?.unwrap_or_default())
    });
    SetOfIterator::new(ids)
}

extension_sql!(
    r#"
CREATE FUNCTION insights.funnel_correlation_json(project_id bigint, query jsonb) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE STRICT
RETURN insights._funnel_correlation_json(project_id, query::text);
COMMENT ON FUNCTION insights.funnel_correlation_json(bigint, jsonb) IS
  'Funnel correlation as PostHog''s /insights/funnel/correlation/ body: {"result": {"events", "skewed"}, …}. query: a legacy funnel filter with funnel_correlation_* keys, or a FunnelCorrelationQuery.';

CREATE FUNCTION insights.funnel_correlation_actors(project_id bigint, query jsonb)
RETURNS SETOF text
LANGUAGE sql STABLE PARALLEL SAFE STRICT
BEGIN ATOMIC
    SELECT * FROM insights._funnel_correlation_actors(project_id, query::text);
END;
COMMENT ON FUNCTION insights.funnel_correlation_actors(bigint, jsonb) IS
  'Actor ids behind a funnel correlation: funnel_correlation_person_entity (events) or funnel_correlation_property_values (properties), with funnel_correlation_person_converted true/false.';
"#,
    name = "funnel_correlation_sql_surface",
    requires = [_funnel_correlation_json, _funnel_correlation_actors],
);
