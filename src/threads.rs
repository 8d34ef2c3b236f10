//! Threads inside a backend: how many a query may use, and how they are started. Only pure Rust
//! runs on them (no palloc, no SPI, no elog): PostgreSQL is single-threaded, so every call into
//! it stays on the backend's own thread, and its signal handlers too (every signal is blocked
//! while the threads run).

use pgrx::pg_sys;

/// Threads a query's own parallel steps may use: the leader plus the parallel workers a query
/// may have (`max_parallel_workers_per_gather`, the session's parallelism budget; those workers
/// are not running when these steps run), at most the machine's cores.
pub(crate) fn query_threads() -> usize {
    let budget = 1 + unsafe { pg_sys::max_parallel_workers_per_gather }.max(0) as usize;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    budget.min(cores)
}

/// Run `f` with every signal blocked on this thread, so the threads it starts inherit a full
/// mask and PostgreSQL's signal handlers only ever run on the backend's own thread. A signal that
/// arrives meanwhile (a cancel, a timeout) is delivered when the mask is restored, and the next
/// CHECK_FOR_INTERRUPTS acts on it.
pub(crate) fn with_signals_blocked<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: sigfillset/pthread_sigmask only read and write the local sets.
    let old = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        old
    };
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    // SAFETY: as above; restores the mask saved before `f`.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    out.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// `f` over every part, each on its own thread (the first on this one), with every signal
/// blocked ([`pg_insights_core::par::for_each_part`]); the results in part order.
pub(crate) fn for_each_part<T: Send, R: Send>(
    parts: &mut [T],
    f: impl Fn(&mut T) -> R + Sync,
) -> Vec<R> {
    with_signals_blocked(|| pg_insights_core::par::for_each_part(parts, f))
}
