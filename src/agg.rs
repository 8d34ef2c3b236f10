//! Shared plumbing for the hand-written aggregates (`CREATE AGGREGATE … STYPE = internal`).
//!
//! pgrx 0.18's `#[pg_aggregate]` generates a wrong DESERIALFUNC signature for internal states
//! (pgrx #2351), so the aggregates are plain `#[pg_extern]` functions plus SQL. States are Rust
//! values handed to Postgres with [`Internal`], allocated while the aggregate's memory context is
//! current so they are dropped with it (also when the query fails).

use std::hash::{BuildHasherDefault, Hasher};

use pgrx::prelude::*;

/// Run `f` with the aggregate memory context current. Call it only when a state is created (once
/// per group): looking the context up crosses the FFI boundary, which is costly per row.
pub fn in_agg_context<R>(fcinfo: pg_sys::FunctionCallInfo, f: impl FnOnce() -> R) -> R {
    let mut agg_ctx: pg_sys::MemoryContext = std::ptr::null_mut();
    if unsafe { pg_sys::AggCheckCallContext(fcinfo, &mut agg_ctx) } == 0 {
        // Only reachable by calling a support function directly, which needs an `internal`
        // argument and so cannot be done from SQL.
        pgrx::error!("pg_insights aggregate support function called outside an aggregate");
    }
    unsafe { pgrx::PgMemoryContexts::For(agg_ctx).switch_to(|_| f()) }
}

/// The body of a COMBINEFUNC for a state type `S` whose `Default` is the empty state: `b`'s state
/// becomes `a`'s when `a` has none (allocated in the aggregate context), else `merge` folds it in.
pub fn combine<S: Default + 'static>(
    mut a: pgrx::Internal,
    mut b: pgrx::Internal,
    fcinfo: pg_sys::FunctionCallInfo,
    merge: impl FnOnce(&mut S, S),
) -> pgrx::Internal {
    let Some(other) = (unsafe { b.get_mut::<S>() }).map(std::mem::take) else {
        return a;
    };
    if !a.initialized() {
        in_agg_context(fcinfo, || unsafe { a.insert(other) });
        return a;
    }
    if let Some(mine) = unsafe { a.get_mut::<S>() } {
        merge(mine, other);
    }
    a
}

/// Little-endian byte writer for SERIALFUNCs.
pub struct Writer(Vec<u8>);

impl Writer {
    pub fn with_capacity(n: usize) -> Self {
        Writer(Vec::with_capacity(n))
    }
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// The matching reader for DESERIALFUNCs. The bytes always come from our own SERIALFUNC, so a
/// short read is an internal error, reported cleanly rather than by a panic.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        if self.buf.len() - self.pos < n {
            pgrx::error!(
                "pg_insights: truncated aggregate state ({} bytes)",
                self.buf.len()
            );
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        s
    }
    pub fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().expect("4 bytes"))
    }
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().expect("8 bytes"))
    }
    pub fn i64(&mut self) -> i64 {
        i64::from_le_bytes(self.take(8).try_into().expect("8 bytes"))
    }
    pub fn bytes(&mut self) -> &'a [u8] {
        let n = self.u64() as usize;
        self.take(n)
    }
}

/// A small multiplicative hasher (FxHash-like): the keys are integers and short strings, and
/// SipHash costs more than the rest of the transition function.
#[derive(Default, Clone, Copy)]
pub struct Fx(u64);

const K: u64 = 0xf135_7aea_2e62_a9c5;

impl Hasher for Fx {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 59));
        }
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0 ^ i).wrapping_mul(K).rotate_left(20);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}

/// Hash maps and sets of aggregate states use [`Fx`].
pub type FxBuild = BuildHasherDefault<Fx>;
