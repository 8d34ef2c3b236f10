//! The background workers that run asynchronous insight queries (PostHog's `refresh=async` modes)
//! and, when none is queued, the calculations of large cohorts (`insights.calculate_next_cohort`)
//! and the columnar segments of closed days (`insights.seal_segments`, sql/segments.sql).
//!
//! Registered by `_PG_init` when the library is in `shared_preload_libraries`, as a launcher and
//! one query worker per served database, the layout of TimescaleDB's launcher and schedulers:
//! - the **launcher** ("pg_insights launcher") connects to no database. Every few seconds it reads
//!   the shared catalogue pg_database and starts a query worker (a dynamic background worker)
//!   for each database named by `pg_insights.worker_database` (a comma-separated list, or `*`
//!   for every database that accepts connections) that has none. A named database that does
//!   not exist is logged once and waited for quietly: no process is started for it, so there is
//!   no loop of FATAL connection errors.
//! - a **query worker** ("pg_insights query worker") connects to its database. Where the
//!   extension is not installed it exits quietly at once (the launcher looks again a few seconds
//!   later, so `CREATE EXTENSION` is picked up). It holds a session advisory lock for its
//!   database, so there is never a second worker on one database (say, after a launcher
//!   restart). It drains `insights.query_tasks` (sql/tasks.sql) one task per transaction; all of a
//!   task's logic is SQL (`insights.claim_query_task`, `insights.run_query_task`):
//!   - a query error is caught inside `run_query_task` and recorded on the task: the worker goes on;
//!   - anything else that escapes ends the process; the launcher starts a new worker, which first
//!     re-queues what the old one left running (`insights.recover_query_tasks`), failing a task on
//!     its second crash;
//!   - `insights.cancel_query_task` interrupts a running task with pg_cancel_backend (SIGINT keeps
//!     PostgreSQL's statement-cancel handler; only SIGHUP and SIGTERM are taken over here, so a
//!     shutdown lets the current task finish and then stops the loop);
//!   - SIGTERM (a shutdown, `pg_terminate_backend`, `DROP DATABASE … WITH (FORCE)`) ends it; the
//!     launcher starts a fresh one if its database is still served.
//!
//! A served database can only be dropped with `DROP DATABASE … WITH (FORCE)` (or after taking it
//! out of `pg_insights.worker_database`), as with any connected session.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BackgroundWorkerStatus, DynamicBackgroundWorker,
    SignalWakeFlags,
};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;

static WORKER_DATABASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"insights"));
static WORKER_NAPTIME_MS: GucSetting<i32> = GucSetting::<i32>::new(250);
static WORKER_ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);

/// How long the launcher waits before it starts a database's worker again (after it exited or
/// found no extension), and how often it looks at the list of databases.
const RESTART_AFTER: Duration = Duration::from_secs(5);

/// The advisory lock a query worker holds in its database (one worker per database).
const WORKER_LOCK_KEY: i64 = 0x7067_695f_776b; // "pgi_wk"

/// Called from `_PG_init` while shared_preload_libraries are loaded (the only time a static
/// background worker can be registered).
pub fn register() {
    GucRegistry::define_string_guc(
        c"pg_insights.worker_database",
        c"Databases whose insights.query_tasks the pg_insights workers run: a comma-separated list, or * for all.",
        c"The launcher starts one query worker per listed database that exists; * serves every database that accepts connections and has the extension.",
        &WORKER_DATABASE,
        GucContext::Sighup,
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
        c"Start the pg_insights background workers for asynchronous insight queries.",
        c"",
        &WORKER_ENABLED,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    if !WORKER_ENABLED.get() {
        return;
    }
    BackgroundWorkerBuilder::new("pg_insights launcher")
        .set_type("pg_insights launcher")
        .set_library("pg_insights")
        .set_function("pg_insights_launcher_main")
        .enable_spi_access()
        .set_restart_time(Some(RESTART_AFTER))
        .load();
}

/// The databases the setting names: `None` for all (`*`), else the listed names.
fn configured_databases() -> Option<Vec<String>> {
    let setting = WORKER_DATABASE
        .get()
        .and_then(|c| c.into_string().ok())
        .unwrap_or_default();
    let names: Vec<String> = setting
        .split(',')
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    if names.iter().any(|n| n == "*") {
        None
    } else {
        Some(names)
    }
}

/// Names of the databases that accept connections, read from the shared catalogue pg_database
/// (the launcher is connected to no database, so it scans the catalogue instead of querying it).
fn connectable_databases() -> Vec<String> {
    BackgroundWorker::transaction(|| unsafe {
        let rel = pg_sys::table_open(pg_sys::DatabaseRelationId, pg_sys::AccessShareLock as _);
        let scan = pg_sys::table_beginscan_catalog(rel, 0, std::ptr::null_mut());
        let mut names = Vec::new();
        loop {
            let tuple = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
            if tuple.is_null() {
                break;
            }
            let row = &*(pg_sys::GETSTRUCT(tuple) as *const pg_sys::FormData_pg_database);
            if row.datallowconn && !row.datistemplate {
                let name = CStr::from_ptr(row.datname.data.as_ptr());
                names.push(name.to_string_lossy().into_owned());
            }
        }
        pg_sys::table_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as _);
        names
    })
}

/// One database's query worker as the launcher tracks it.
struct Served {
    worker: Option<DynamicBackgroundWorker>,
    started: Instant,
}

fn start_worker(database: &str) -> Option<DynamicBackgroundWorker> {
    BackgroundWorkerBuilder::new(&format!("pg_insights query worker {database}"))
        .set_type("pg_insights query worker")
        .set_library("pg_insights")
        .set_function("pg_insights_worker_main")
        .set_extra(database)
        .enable_spi_access()
        .set_restart_time(None)
        .set_notify_pid(unsafe { pg_sys::MyProcPid })
        .load_dynamic()
        .ok()
}

/// One pass of the launcher: start a worker for every served database that has none running
/// (at most every RESTART_AFTER per database); log once a named database that does not exist.
fn launch(served: &mut HashMap<String, Served>, missing_logged: &mut Vec<String>) {
    let existing = connectable_databases();
    let wanted: Vec<String> = match configured_databases() {
        None => existing,
        Some(names) => {
            for name in &names {
                let missing = !existing.contains(name);
                let logged = missing_logged.contains(name);
                if missing && !logged {
                    warning!(
                        "pg_insights launcher: database \"{name}\" does not exist (pg_insights.worker_database); waiting for it"
                    );
                    missing_logged.push(name.clone());
                } else if !missing && logged {
                    missing_logged.retain(|n| n != name);
                }
            }
            names.into_iter().filter(|n| existing.contains(n)).collect()
        }
    };
    // A database taken out of the setting: stop its worker.
    let dropped: Vec<String> = served
        .keys()
        .filter(|n| !wanted.contains(n))
        .cloned()
        .collect();
    for name in dropped {
        if let Some(worker) = served.remove(&name).and_then(|s| s.worker) {
            worker.terminate();
        }
    }
    for name in wanted {
        let entry = served.entry(name.clone()).or_insert(Served {
            worker: None,
            started: Instant::now() - RESTART_AFTER,
        });
        let running = entry.worker.as_ref().is_some_and(|w| {
            !matches!(
                w.pid(),
                Err(BackgroundWorkerStatus::Stopped | BackgroundWorkerStatus::PostmasterDied)
            )
        });
        if !running && entry.started.elapsed() >= RESTART_AFTER {
            entry.worker = start_worker(&name);
            entry.started = Instant::now();
        }
    }
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn pg_insights_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi(None, None);
    let mut served = HashMap::new();
    let mut missing_logged = Vec::new();
    launch(&mut served, &mut missing_logged);
    while BackgroundWorker::wait_latch(Some(RESTART_AFTER)) {
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        launch(&mut served, &mut missing_logged);
    }
    // The query workers stop on their own SIGTERM at shutdown; after a pg_terminate_backend of
    // the launcher they go on, and the next launcher's workers find their lock taken.
    unsafe { pg_sys::proc_exit(1) };
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

/// Take this database's worker lock (session level: it outlives the transaction).
fn take_worker_lock() -> bool {
    BackgroundWorker::transaction(|| {
        Spi::get_one_with_args::<bool>("SELECT pg_try_advisory_lock($1)", &[WORKER_LOCK_KEY.into()])
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
    // Without a query task, a cohort calculation (sql: insights.calculate_next_cohort), else one
    // columnar segment (sql/segments.sql): queries always come first.
    let Some(id) = claimed else {
        return BackgroundWorker::transaction(|| {
            Spi::get_one::<bool>("SELECT insights.calculate_next_cohort()")
                .ok()
                .flatten()
                .unwrap_or(false)
        }) || BackgroundWorker::transaction(|| {
            Spi::get_one::<bool>("SELECT insights.seal_segments(NULL, 1) > 0")
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
    BackgroundWorker::connect_worker_to_spi(Some(BackgroundWorker::get_extra()), None);
    // No extension here, or another worker serves this database: nothing to do (exit code 0,
    // so the postmaster forgets this worker; the launcher looks again later).
    if !extension_ready() || !take_worker_lock() {
        unsafe { pg_sys::proc_exit(0) };
    }
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
    let naptime = || Duration::from_millis(WORKER_NAPTIME_MS.get().max(10) as u64);
    'serve: while BackgroundWorker::wait_latch(Some(naptime())) {
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        if !extension_ready() {
            break; // DROP EXTENSION: stop; the launcher starts a worker again if it comes back.
        }
        // Drain the queue before sleeping again; stop promptly on shutdown.
        while run_one() {
            if BackgroundWorker::sigterm_received() {
                break 'serve;
            }
        }
    }
    unsafe { pg_sys::proc_exit(0) };
}
