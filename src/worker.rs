//! The background worker that runs asynchronous insight queries (PostHog's `refresh=async` modes)
//! and, when none is queued, the calculations of large cohorts (`insights.calculate_next_cohort`).
//!
//! Registered by `_PG_init` when the library is in `shared_preload_libraries`; it connects to the
//! database named by `pg_insights.worker_database` and drains `insights.query_tasks`
//! (sql/tasks.sql) one task per transaction. All of a task's logic is SQL
//! (`insights.claim_query_task`, `insights.run_query_task`); this loop only schedules it:
//! - a query error is caught inside `run_query_task` and recorded on the task: the worker goes on;
//! - anything else that escapes (say, the database being dropped) ends the process, and the
//!   postmaster starts a new worker after `RESTART_AFTER`; it first re-queues what the old one
//!   left running (`insights.recover_query_tasks`), failing a task on its second crash;
//! - `insights.cancel_query_task` interrupts a running task with pg_cancel_backend (SIGINT keeps
//!   PostgreSQL's statement-cancel handler; only SIGHUP and SIGTERM are taken over here, so a
//!   shutdown lets the current task finish and then stops the loop);
//! - SIGTERM ends the loop with exit code 1: at server shutdown nothing is restarted anyway, and
//!   after a `pg_terminate_backend` the postmaster starts a fresh worker (exit code 0 would
//!   unregister it for good).
//!
//! Until the extension exists in that database the worker just sleeps.

use std::ffi::CString;
use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;

static WORKER_DATABASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"insights"));
static WORKER_NAPTIME_MS: GucSetting<i32> = GucSetting::<i32>::new(250);
static WORKER_ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);

const RESTART_AFTER: Duration = Duration::from_secs(5);

/// Called from `_PG_init` while shared_preload_libraries are loaded (the only time a static
/// background worker can be registered).
pub fn register() {
    GucRegistry::define_string_guc(
        c"pg_insights.worker_database",
        c"Database whose insights.query_tasks the pg_insights background worker runs.",
        c"The worker runs asynchronous insight queries (refresh=async) of this database.",
        &WORKER_DATABASE,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_insights.worker_naptime_ms",
        c"How often the pg_insights worker looks for queued queries when idle (milliseconds).",
        c"",
        &WORKER_NAPTIME_MS,
        10,
        60_000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"pg_insights.worker_enabled",
        c"Start the pg_insights background worker for asynchronous insight queries.",
        c"",
        &WORKER_ENABLED,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    if !WORKER_ENABLED.get() {
        return;
    }
    BackgroundWorkerBuilder::new("pg_insights query worker")
        .set_type("pg_insights query worker")
        .set_library("pg_insights")
        .set_function("pg_insights_worker_main")
        .enable_spi_access()
        .set_restart_time(Some(RESTART_AFTER))
        .load();
}

/// Whether the extension is installed in the worker's database (it may be created later).
fn extension_ready() -> bool {
    BackgroundWorker::transaction(|| {
        Spi::get_one::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_insights')
                AND to_regclass('insights.query_tasks') IS NOT NULL",
        )
        .ok()
        .flatten()
        .unwrap_or(false)
    })
}

/// Claim the next queued task (its own transaction, so `running` is visible to pollers and to
/// cancel), then run it in a second transaction. Whether a task was found.
fn run_one() -> bool {
    let claimed: Option<pgrx::Uuid> = BackgroundWorker::transaction(|| {
        Spi::get_one::<pgrx::Uuid>("SELECT insights.claim_query_task()")
            .ok()
            .flatten()
    });
    // Without a query task, a cohort calculation (sql: insights.calculate_next_cohort).
    let Some(id) = claimed else {
        return BackgroundWorker::transaction(|| {
            Spi::get_one::<bool>("SELECT insights.calculate_next_cohort()")
                .ok()
                .flatten()
                .unwrap_or(false)
        });
    };
    BackgroundWorker::transaction(|| {
        let _ =
            Spi::get_one_with_args::<String>("SELECT insights.run_query_task($1)", &[id.into()]);
    });
    true
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn pg_insights_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let database = WORKER_DATABASE
        .get()
        .and_then(|c| c.into_string().ok())
        .unwrap_or_else(|| "insights".to_string());
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    let naptime = || Duration::from_millis(WORKER_NAPTIME_MS.get().max(10) as u64);

    let mut recovered = false;
    'serve: while BackgroundWorker::wait_latch(Some(naptime())) {
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        if !extension_ready() {
            recovered = false;
            continue;
        }
        if !recovered {
            let n = BackgroundWorker::transaction(|| {
                Spi::get_one::<i32>("SELECT insights.recover_query_tasks()")
                    .ok()
                    .flatten()
                    .unwrap_or(0)
            });
            if n > 0 {
                log!(
                    "pg_insights worker: re-queued or failed {n} task(s) left running by a previous worker"
                );
            }
            recovered = true;
        }
        // Drain the queue before sleeping again; stop promptly on shutdown.
        while run_one() {
            if BackgroundWorker::sigterm_received() {
                break 'serve;
            }
        }
    }
    unsafe { pg_sys::proc_exit(1) };
}
