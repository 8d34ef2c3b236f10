//! Paths over the event store: `insights.paths_json` (PostHog's `/insights/path/` body) and
//! `insights.paths` (typed edges). The statement reads each person's events in time order;
//! sessions, cleaning and edges are pure Rust in `pg_insights_core::paths`.

use pg_insights_core::funnels::Project;
use pg_insights_core::paths;
use pg_insights_core::query::InsightKind;
use pgrx::JsonB;
use pgrx::prelude::*;
use serde_json::{Value, json};

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

fn run(project_id: i64, query: &str) -> (Value, Project) {
    let project = load_project(project_id);
    let q = parse_insight(&parse_json(query, "query"), InsightKind::Paths);
    let earliest = earliest_event(project_id, &q);
    let team = team_cleaning(project_id);
    let plan = with_lookups(project_id, |lookups| {
        paths::plan(&q, &project, &team, lookups, chrono::Utc::now(), earliest)
    })
    .unwrap_or_else(|e| raise_query_error(&e));
    let persons = select_rows(&plan.sql, &plan.params, "paths", |row| {
        Ok((
            row.get::<Vec<i64>>(1)?.unwrap_or_default(),
            row.get::<Vec<String>>(2)?.unwrap_or_default(),
        ))
    });
    (paths::render(&plan, persons), project)
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
    let (result, _) = run(project_id, query);
    TableIterator::new(paths::rows(&result))
}

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
"#,
    name = "paths_sql_surface",
    requires = [_paths_json, _paths],
);
