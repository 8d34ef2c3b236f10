//! What every insight entry point shares: binding planner parameters, loading the project,
//! answering the planner's lookups, parsing jsonb arguments and the query itself.

use pg_insights_core::compile::dates::ProjectTime;
use pg_insights_core::compile::sql::Param;
use pg_insights_core::engines::funnels::{self, Lookups, Project};
use pg_insights_core::model::{InsightKind, InsightQuery, parse_query_as};
use pg_insights_core::{QueryError, SqlState};
use pgrx::JsonB;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::{SpiError, SpiHeapTupleData};
use serde_json::{Value, json};

use crate::errors::{raise, raise_query_error};

/// `pg_insights.use_rollups`: engines may read `insights.person_days` (sql/rollups.sql) where it
/// gives the same answer as the events. Off: every query reads the events (A/B checks).
pub static USE_ROLLUPS: pgrx::guc::GucSetting<bool> = pgrx::guc::GucSetting::<bool>::new(true);

/// `pg_insights.use_segments`: trends may read the columnar segments (sql/segments.sql) where
/// they give the same answer as the events. Off: every query reads the events.
pub static USE_SEGMENTS: pgrx::guc::GucSetting<bool> = pgrx::guc::GucSetting::<bool>::new(true);

/// Registers the session settings (from `_PG_init`, whether preloaded or loaded on demand).
pub fn register_gucs() {
    pgrx::guc::GucRegistry::define_bool_guc(
        c"pg_insights.use_rollups",
        c"Let insight engines read the person-days rollup where it gives the same answer as the events.",
        c"Off makes every query read insights.events (for A/B checks and benchmarks).",
        &USE_ROLLUPS,
        pgrx::guc::GucContext::Userset,
        pgrx::guc::GucFlags::default(),
    );
    pgrx::guc::GucRegistry::define_bool_guc(
        c"pg_insights.use_segments",
        c"Let insight engines read the columnar segments of insights.events where they give the same answer.",
        c"Off makes every query read the heap (for A/B checks and benchmarks); insights.explain says which path a query takes.",
        &USE_SEGMENTS,
        pgrx::guc::GucContext::Userset,
        pgrx::guc::GucFlags::default(),
    );
}

/// Bind a planner parameter as a Postgres datum of the type its placeholder names.
pub(crate) fn datum(p: &Param) -> DatumWithOid<'static> {
    match p {
        Param::Text(s) => s.clone().into(),
        Param::Int(v) => (*v).into(),
        Param::Float(v) => (*v).into(),
        Param::Bool(v) => (*v).into(),
        Param::TextArray(v) => v.clone().into(),
        Param::IntArray(v) => v.clone().into(),
        Param::Timestamp(us) => TimestampWithTimeZone::try_from(us - funnels::PG_EPOCH_OFFSET_US)
            .unwrap_or_else(|_| {
                raise(
                    SqlState::InvalidDatetime,
                    "timestamp out of range",
                    Some("date_from"),
                    None,
                )
            })
            .into(),
        Param::Json(v) => JsonB(v.clone()).into(),
        Param::Date(y, m, d) => pgrx::datum::Date::new(*y, *m, *d)
            .unwrap_or_else(|_| {
                raise(
                    SqlState::InvalidDatetime,
                    "date out of range",
                    Some("date_from"),
                    None,
                )
            })
            .into(),
    }
}

pub fn load_project(project_id: i64) -> Project {
    let row = Spi::connect(|c| {
        let t = c.select(
            "SELECT timezone, week_start_day::int4, test_account_filters FROM insights.projects WHERE id = $1",
            Some(1),
            &[project_id.into()],
        )?;
        let mut out = None;
        for r in t {
            out = Some((
                r.get::<String>(1)?.unwrap_or_else(|| "UTC".into()),
                r.get::<i32>(2)?.unwrap_or(0),
                r.get::<JsonB>(3)?.map(|j| j.0).unwrap_or(json!([])),
            ));
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .unwrap_or_else(|e| pgrx::error!("pg_insights: project lookup failed: {e}"));
    let Some((tz, week_start, test_filters)) = row else {
        raise(
            SqlState::InvalidParameter,
            &format!("Project {project_id} does not exist."),
            Some("project_id"),
            Some("List projects with: SELECT id, name FROM insights.projects;"),
        )
    };
    let pt = ProjectTime::new(&tz, week_start as u8).unwrap_or_else(|e| raise_query_error(&e));
    Project {
        id: project_id,
        pt,
        timezone: tz,
        test_account_filters: test_filters,
        rollups: USE_ROLLUPS.get(),
        materialized: materialized_properties(),
    }
}

/// The materialised event properties (sql/materialize.sql) whose column exists: a restore that
/// recreated the table without it must not make queries name a missing column.
fn materialized_properties() -> Vec<(String, String)> {
    Spi::connect(|c| {
        let t = c.select(
            "SELECT m.property, m.column_name FROM insights.materialized_properties m
               JOIN pg_attribute a ON a.attrelid = 'insights.events'::regclass
                                  AND a.attname = m.column_name AND NOT a.attisdropped
              ORDER BY 1",
            None,
            &[],
        )?;
        let mut out = Vec::new();
        for r in t {
            if let (Some(k), Some(col)) = (r.get::<String>(1)?, r.get::<String>(2)?) {
                out.push((k, col));
            }
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .unwrap_or_else(|e| pgrx::error!("pg_insights: materialised properties lookup failed: {e}"))
}

fn lookup_cohort(project_id: i64, id: i64) -> Option<(bool, Value, String)> {
    Spi::connect(|c| {
        let t = c.select(
            "SELECT is_static, filters, name FROM insights.cohorts WHERE project_id = $1 AND id = $2 AND NOT deleted",
            Some(1),
            &[project_id.into(), id.into()],
        )?;
        let mut out = None;
        for r in t {
            out = Some((
                r.get::<bool>(1)?.unwrap_or(false),
                r.get::<JsonB>(2)?.map(|j| j.0).unwrap_or(json!({})),
                r.get::<String>(3)?.unwrap_or_default(),
            ));
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .ok()
    .flatten()
}

fn lookup_action(project_id: i64, id: i64) -> Option<(Value, String)> {
    Spi::connect(|c| {
        let t = c.select(
            "SELECT steps, name FROM insights.actions WHERE project_id = $1 AND id = $2 AND NOT deleted",
            Some(1),
            &[project_id.into(), id.into()],
        )?;
        let mut out = None;
        for r in t {
            out = Some((r.get::<JsonB>(1)?.map(|j| j.0).unwrap_or(json!([])), r.get::<String>(2)?.unwrap_or_default()));
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .ok()
    .flatten()
}

/// Parse a jsonb argument that arrives as text. pgrx's own jsonb conversion panics (XX000) on
/// values serde_json cannot hold (numbers beyond f64, nesting deeper than 128); here they are
/// client errors (22P02) naming the field.
pub fn parse_json(text: &str, attr: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| {
        raise(
            SqlState::InvalidText,
            &format!("JSON parse error - {e}"),
            Some(attr),
            Some("Numbers must fit a double and nesting must stay under 128 levels."),
        )
    })
}

pub fn now_iso() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Parse an insight query of `kind` (a legacy filter or a query node); another kind is a 22023.
pub fn parse_insight(query: &Value, kind: InsightKind) -> InsightQuery {
    let q = parse_query_as(query, kind).unwrap_or_else(|e| raise_query_error(&e));
    if q.kind != kind {
        raise_query_error(&QueryError::invalid(
            "insight".to_string(),
            format!(
                "Expected a {} query, got {}.",
                kind.legacy_name(),
                q.kind.legacy_name()
            ),
        ));
    }
    q
}

/// The project's first event, needed only for `date_from: all`.
pub fn earliest_event(project_id: i64, q: &InsightQuery) -> Option<chrono::DateTime<chrono::Utc>> {
    if q.date_from.as_deref().map(str::trim) != Some("all") {
        return None;
    }
    Spi::get_one_with_args::<TimestampWithTimeZone>(
        "SELECT min(\"timestamp\") FROM insights.events WHERE project_id = $1",
        &[project_id.into()],
    )
    .ok()
    .flatten()
    .map(|t| {
        let us = pg_sys::TimestampTz::from(t) + funnels::PG_EPOCH_OFFSET_US;
        chrono::DateTime::from_timestamp_micros(us).unwrap_or_default()
    })
}

/// Answer the planner's lookups (cohorts, actions) for `project_id` while `f` plans.
pub fn with_lookups<R>(project_id: i64, f: impl FnOnce(&Lookups) -> R) -> R {
    let cohort = |id| lookup_cohort(project_id, id);
    let action = |id| lookup_action(project_id, id);
    f(&Lookups {
        cohort: &cohort,
        action: &action,
    })
}

/// Run a planned statement with its parameters and map every row.
///
/// Every row is requested, never a limited number: Postgres runs a plan with a row limit without
/// parallel workers (ExecutePlan turns parallel mode off when `numberTuples != 0`), so even a
/// one-row aggregate is read this way (not with `Spi::get_one_with_args`).
pub fn select_rows<T>(
    sql: &str,
    params: &[Param],
    what: &str,
    mut map: impl FnMut(SpiHeapTupleData<'_>) -> Result<T, SpiError>,
) -> Vec<T> {
    let args: Vec<DatumWithOid> = params.iter().map(datum).collect();
    Spi::connect(|c| {
        c.select(sql, None, &args)?
            .map(&mut map)
            .collect::<Result<Vec<T>, SpiError>>()
    })
    .unwrap_or_else(|e| pgrx::error!("pg_insights: {what} query failed: {e}"))
}

/// Run a statement over `insights._actor_periods` (`series::actor_periods_sql`): its
/// `(first_period, periods, actors)` rows.
pub fn select_masks(sql: &str, params: &[Param], what: &str) -> Vec<(i32, i64, i64)> {
    select_rows(sql, params, what, |row| {
        Ok((
            row.get::<i32>(1)?.unwrap_or(0),
            row.get::<i64>(2)?.unwrap_or(0),
            row.get::<i64>(3)?.unwrap_or(0),
        ))
    })
}
