//! SQL entry points of the element-chain parser in `core/src/elements.rs`: ingestion renders
//! `$elements` arrays with it, the chain store is keyed by its hash, and the elements API
//! serialises chains with it.

use pg_insights_core::elements;
use pgrx::prelude::*;

/// A `$elements` array (posthog-js's shape) → PostHog's chain string; '' for no elements.
#[pg_extern(immutable, strict, parallel_safe)]
fn elements_chain_render(elements: pgrx::JsonB) -> String {
    elements::render_chain(&elements::elements_from_json(&elements.0))
}

/// A chain → PostHog's serialised elements (`[{text, tag_name, attr_class, …, order}]`).
/// Never raises: a malformed chain yields whatever elements can be read from it.
#[pg_extern(immutable, strict, parallel_safe)]
fn elements_chain_parse(chain: &str) -> pgrx::JsonB {
    pgrx::JsonB(elements::chain_json(chain))
}

/// PostHog's `ElementGroup.hash` of a chain (md5 hex of its elements' JSON).
#[pg_extern(immutable, strict, parallel_safe)]
fn elements_chain_hash(chain: &str) -> String {
    elements::chain_hash(chain)
}

/// SQL: `insights._elements_stats(project_id, include, properties, filter_test_accounts,
/// date_from, date_to, limit, offset) → jsonb`: up to `limit + 1` `elements/stats/` items
/// (`{count, hash, type, elements}`), most clicked first. Bad properties or include → 22023
/// naming the field.
#[allow(clippy::too_many_arguments)] // one SQL argument per API parameter
#[pg_extern(stable, parallel_safe)]
fn _elements_stats(
    project_id: i64,
    include: Vec<String>,
    properties: pgrx::JsonB,
    filter_test_accounts: bool,
    date_from: TimestampWithTimeZone,
    date_to: TimestampWithTimeZone,
    limit: i64,
    offset: i64,
) -> pgrx::JsonB {
    use pg_insights_core::compile::context::with_filter_context;
    let to_us = |t: TimestampWithTimeZone| {
        pg_sys::TimestampTz::from(t) + pg_insights_core::engines::funnels::PG_EPOCH_OFFSET_US
    };
    let project = crate::context::load_project(project_id);
    let req = elements::StatsRequest {
        project_id,
        include,
        properties: &properties.0,
        filter_test_accounts,
        from_us: to_us(date_from),
        to_us: to_us(date_to),
        limit,
        offset,
    };
    let (sql, params) = crate::context::with_lookups(project_id, |lookups| {
        with_filter_context(&project, lookups, |cx| elements::stats_sql(&req, cx))
    })
    .unwrap_or_else(|e| crate::errors::raise_query_error(&e));
    let rows = crate::context::select_rows(&sql, &params, "elements stats", |row| {
        Ok(elements::stats_item(
            &row.get::<String>(1)?.unwrap_or_default(),
            &row.get::<String>(2)?.unwrap_or_default(),
            row.get::<i64>(3)?.unwrap_or(0),
        ))
    });
    pgrx::JsonB(serde_json::Value::Array(rows))
}
