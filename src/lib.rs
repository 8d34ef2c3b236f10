//! pg_insights: PostHog-grade product analytics inside PostgreSQL.
//!
//! This crate is the thin pgrx layer: SQL entry points that adapt arguments and results, over the
//! pure-Rust core in `core/` (query model, dates, filters, SQL compilation, insight engines).
//! The data model, ingestion and administration are SQL files in `sql/`, installed in order by the
//! `extension_sql_file!` calls below.

use pgrx::prelude::*;

mod agg;
mod cohorts;
mod context;
mod elements;
mod engines;
mod errors;
mod http_body;
mod segments;
mod threads;
mod uniq;
mod util;
mod window_funnel;
mod worker;

::pgrx::pg_module_magic!(name, version);

// Tables first: everything else refers to them.
extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!("../sql/ingest.sql", name = "ingest", requires = ["schema"]);
extension_sql_file!("../sql/admin.sql", name = "admin", requires = ["schema"]);
extension_sql_file!("../sql/tasks.sql", name = "tasks", requires = ["schema"]);
extension_sql_file!(
    "../sql/rollups.sql",
    name = "rollups",
    requires = ["schema"]
);
extension_sql_file!(
    "../sql/materialize.sql",
    name = "materialize",
    requires = ["schema"]
);
extension_sql_file!(
    "../sql/segments.sql",
    name = "segments",
    requires = ["materialize"]
);
extension_sql_file!(
    "../sql/activity.sql",
    name = "activity",
    requires = ["schema"]
);

/// Library load: defines the session settings; loaded through shared_preload_libraries, it also
/// registers the background worker that runs asynchronous insight queries (src/worker.rs).
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    context::register_gucs();
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        worker::register();
    }
}

#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
