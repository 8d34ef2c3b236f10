//! Cohort membership and definition checks for SQL users and the cohorts/actions API
//! (sql/api/80_actions.sql, 82_cohorts.sql). Everything compiles through
//! `pg_insights_core::compile::properties`, the compiler insights use for cohort filters, so a
//! cohort's members here and a cohort filter in an insight always agree.

use pg_insights_core::compile::context::with_filter_context;
use pg_insights_core::compile::properties;
use pg_insights_core::compile::sql::SqlBuilder;
use pg_insights_core::engines::funnels::PG_EPOCH_OFFSET_US;
use pgrx::prelude::*;

use crate::context::{load_project, parse_json, select_rows, with_lookups};
use crate::errors::raise_query_error;

fn to_chrono(t: Option<TimestampWithTimeZone>) -> chrono::DateTime<chrono::Utc> {
    t.and_then(|t| {
        chrono::DateTime::from_timestamp_micros(pg_sys::TimestampTz::from(t) + PG_EPOCH_OFFSET_US)
    })
    .unwrap_or_else(chrono::Utc::now)
}

/// SQL: `insights.cohort_person_ids(project_id, cohort_id, at DEFAULT NULL) → setof bigint`: the
/// person ids of a cohort, evaluated at `at` (NULL: now): a static cohort's stored members, or
/// its definition (person properties, behaviour, nested cohorts). A missing or deleted cohort, or
/// a definition that no longer compiles, is a 22023 error.
#[pg_extern(stable, parallel_safe)]
fn cohort_person_ids(
    project_id: i64,
    cohort_id: i64,
    at: default!(Option<TimestampWithTimeZone>, "NULL"),
) -> SetOfIterator<'static, i64> {
    let project = load_project(project_id);
    let now = to_chrono(at);
    let (sql, params) = with_lookups(project_id, |lookups| {
        with_filter_context(&project, lookups, |cx| {
            let mut b = SqlBuilder::new();
            b.int(project_id);
            let sql = properties::cohort_members_sql(cohort_id, &mut b, cx, now)?;
            Ok(b.finish(&format!("{sql} ORDER BY 1")))
        })
    })
    .unwrap_or_else(|e| raise_query_error(&e));
    let ids = select_rows(&sql, &params, "cohort members", |r| {
        Ok(r.get::<i64>(1)?.unwrap_or_default())
    });
    SetOfIterator::new(ids)
}

/// SQL: `insights._check_cohort_filters(project_id, cohort_id, filters text) → boolean`: true,
/// or the 22023/22P02 error a cohort filter with this definition would give (attr
/// `filters__…` / `groups__…`). `cohort_id` is the cohort being changed (NULL for a new one), so
/// a reference back to it is the cycle error.
#[pg_extern(stable)]
fn _check_cohort_filters(project_id: i64, cohort_id: Option<i64>, filters: &str) -> bool {
    let filters = parse_json(filters, "filters");
    let project = load_project(project_id);
    with_lookups(project_id, |lookups| {
        with_filter_context(&project, lookups, |cx| {
            properties::check_cohort_definition(cohort_id, &filters, cx, chrono::Utc::now())
        })
    })
    .map_err(|e| match e.attr.as_deref() {
        Some(a) if a.starts_with("properties") => e.within("filters"),
        _ => e,
    })
    .unwrap_or_else(|e| raise_query_error(&e));
    true
}

/// SQL: `insights._check_action_steps(project_id, steps text) → boolean`: true, or the error the
/// engines would give for these steps (attr `steps__N__…`).
#[pg_extern(stable)]
fn _check_action_steps(project_id: i64, steps: &str) -> bool {
    let steps = parse_json(steps, "steps");
    let project = load_project(project_id);
    with_lookups(project_id, |lookups| {
        with_filter_context(&project, lookups, |cx| {
            properties::check_action_steps(&steps, cx)
        })
    })
    .unwrap_or_else(|e| raise_query_error(&e));
    true
}

extension_sql!(
    r#"
-- The live cohorts of the project that contain the person (for persons/cohorts/ and SQL users).
-- A cohort whose definition no longer compiles (it references a deleted cohort or action) is
-- left out rather than failing the whole list.
CREATE FUNCTION insights.person_cohort_ids(p_project bigint, p_person bigint) RETURNS SETOF bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_id bigint;
BEGIN
    FOR v_id IN SELECT id FROM insights.cohorts WHERE project_id = p_project AND NOT deleted ORDER BY id LOOP
        BEGIN
            IF EXISTS (SELECT 1 FROM insights.cohort_person_ids(p_project, v_id) m WHERE m = p_person) THEN
                RETURN NEXT v_id;
            END IF;
        EXCEPTION WHEN invalid_parameter_value OR invalid_text_representation THEN
            NULL;
        END;
    END LOOP;
END $$;
COMMENT ON FUNCTION insights.person_cohort_ids(bigint, bigint) IS
  'Ids of the live cohorts of project p_project that contain person p_person now (static members or the evaluated definition).';
"#,
    name = "person_cohort_ids",
    requires = [cohort_person_ids]
);
