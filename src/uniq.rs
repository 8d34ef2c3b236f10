//! `insights._uniq_actors`: distinct actors per (bucket, breakdown), as one parallel aggregate.
//!
//! The DAU-style trend maths (`dau`) count the distinct persons of every (bucket, breakdown)
//! group. In SQL that is `SELECT DISTINCT bucket, breakdown, actor` followed by a count per group,
//! which Postgres runs as a sort or a hash aggregate over every distinct triple, then a second
//! aggregate in the leader. This aggregate does both steps in one pass: every process (the leader
//! and each parallel worker) keeps a hash set of `(group, actor)` keys, where `group` packs small
//! per-state ids of the bucket and of the breakdown text; the combine function merges the sets
//! (remapping the ids), and the final function counts the keys of each group.
//!
//! The bucket and breakdown values are computed by the same SQL expressions as before (the SQL
//! builder passes them as arguments), and keys are compared exactly (bucket timestamps, breakdown
//! bytes, actor ids; NULL is its own value), so the counts are exactly those of
//! `count(*) … FROM (SELECT DISTINCT bucket, breakdown, actor …) GROUP BY bucket, breakdown`.
//!
//! The final function returns the groups as a `bytea`, expanded into rows by
//! `insights._uniq_actors_rows(bytea)`.

use std::collections::{HashMap, HashSet};

use pgrx::Internal;
use pgrx::prelude::*;

use crate::agg::{FxBuild, Reader, Writer, combine, in_agg_context};

/// One distinct key: the packed (bucket id, breakdown id) group and the actor.
#[derive(Hash, PartialEq, Eq, Clone, Copy)]
struct Key {
    group: u64,
    actor: i64,
}

fn group(bucket: u32, bd: u32) -> u64 {
    (u64::from(bucket) << 32) | u64::from(bd)
}

#[derive(Default)]
struct UniqState {
    /// Bucket values by id (`None` is a NULL bucket).
    buckets: Vec<Option<i64>>,
    bucket_ids: HashMap<Option<i64>, u32, FxBuild>,
    /// Breakdown texts by id (`None` is a NULL breakdown).
    bds: Vec<Option<Box<str>>>,
    bd_ids: HashMap<Box<str>, u32, FxBuild>,
    null_bd: Option<u32>,
    /// The previous row's bucket: rows mostly arrive in time order.
    last_bucket: Option<(Option<i64>, u32)>,
    keys: HashSet<Key, FxBuild>,
}

impl UniqState {
    fn bucket_id(&mut self, b: Option<i64>) -> u32 {
        if let Some((v, id)) = self.last_bucket
            && v == b
        {
            return id;
        }
        let id = match self.bucket_ids.get(&b) {
            Some(&id) => id,
            None => {
                let id = self.buckets.len() as u32;
                self.buckets.push(b);
                self.bucket_ids.insert(b, id);
                id
            }
        };
        self.last_bucket = Some((b, id));
        id
    }

    fn bd_id(&mut self, bd: Option<&str>) -> u32 {
        match bd {
            None => match self.null_bd {
                Some(id) => id,
                None => {
                    let id = self.bds.len() as u32;
                    self.bds.push(None);
                    self.null_bd = Some(id);
                    id
                }
            },
            Some(s) => match self.bd_ids.get(s) {
                Some(&id) => id,
                None => {
                    let id = self.bds.len() as u32;
                    self.bds.push(Some(s.into()));
                    self.bd_ids.insert(s.into(), id);
                    id
                }
            },
        }
    }

    fn merge(&mut self, other: UniqState) {
        let bmap: Vec<u32> = other.buckets.iter().map(|b| self.bucket_id(*b)).collect();
        let dmap: Vec<u32> = other.bds.iter().map(|d| self.bd_id(d.as_deref())).collect();
        if self.keys.is_empty()
            && bmap.iter().enumerate().all(|(i, &v)| i as u32 == v)
            && dmap.iter().enumerate().all(|(i, &v)| i as u32 == v)
        {
            self.keys = other.keys;
            return;
        }
        self.keys.reserve(other.keys.len());
        for k in other.keys {
            let b = bmap[(k.group >> 32) as usize];
            let d = dmap[(k.group & 0xffff_ffff) as usize];
            self.keys.insert(Key {
                group: group(b, d),
                actor: k.actor,
            });
        }
    }
}

#[pg_extern(immutable, parallel_safe)]
fn _uniq_actors_sfunc(
    mut state: Internal,
    bucket: Option<TimestampWithTimeZone>,
    breakdown: Option<&str>,
    actor: Option<i64>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    if !state.initialized() {
        in_agg_context(fcinfo, || unsafe { state.insert(UniqState::default()) });
    }
    let Some(actor) = actor else { return state };
    let Some(s) = (unsafe { state.get_mut::<UniqState>() }) else {
        return state;
    };
    let b = s.bucket_id(bucket.map(pg_sys::TimestampTz::from));
    let d = s.bd_id(breakdown);
    s.keys.insert(Key {
        group: group(b, d),
        actor,
    });
    state
}

/// The UTC form: the bucket is `ts` floored to a multiple of `width_us` microseconds since
/// 2000-01-01 00:00 UTC, which is `date_trunc('day' | 'hour' | 'minute', ts)` in UTC.
#[pg_extern(immutable, parallel_safe)]
fn _uniq_actors_utc_sfunc(
    mut state: Internal,
    ts: Option<TimestampWithTimeZone>,
    width_us: Option<i64>,
    breakdown: Option<&str>,
    actor: Option<i64>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    if !state.initialized() {
        in_agg_context(fcinfo, || unsafe { state.insert(UniqState::default()) });
    }
    let Some(actor) = actor else { return state };
    let Some(s) = (unsafe { state.get_mut::<UniqState>() }) else {
        return state;
    };
    let bucket = ts.map(|t| {
        let us = pg_sys::TimestampTz::from(t);
        match width_us {
            Some(w) if w > 0 => us - us.rem_euclid(w),
            _ => us,
        }
    });
    let b = s.bucket_id(bucket);
    let d = s.bd_id(breakdown);
    s.keys.insert(Key {
        group: group(b, d),
        actor,
    });
    state
}

#[pg_extern(immutable, parallel_safe)]
fn _uniq_actors_combine(a: Internal, b: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    combine(a, b, fcinfo, UniqState::merge)
}

fn write_opt_i64(w: &mut Writer, v: Option<i64>) {
    match v {
        None => w.u8(0),
        Some(v) => {
            w.u8(1);
            w.i64(v);
        }
    }
}

fn read_opt_i64(r: &mut Reader) -> Option<i64> {
    match r.u8() {
        0 => None,
        _ => Some(r.i64()),
    }
}

fn write_opt_str(w: &mut Writer, v: Option<&str>) {
    match v {
        None => w.u8(0),
        Some(s) => {
            w.u8(1);
            w.bytes(s.as_bytes());
        }
    }
}

fn read_opt_str(r: &mut Reader) -> Option<String> {
    match r.u8() {
        0 => None,
        _ => Some(String::from_utf8_lossy(r.bytes()).into_owned()),
    }
}

#[pg_extern(immutable, parallel_safe, strict)]
fn _uniq_actors_serial(mut state: Internal) -> Vec<u8> {
    let Some(s) = (unsafe { state.get_mut::<UniqState>() }) else {
        return Vec::new();
    };
    let mut w = Writer::with_capacity(64 + s.keys.len() * 16);
    w.u64(s.buckets.len() as u64);
    for b in &s.buckets {
        write_opt_i64(&mut w, *b);
    }
    w.u64(s.bds.len() as u64);
    for d in &s.bds {
        write_opt_str(&mut w, d.as_deref());
    }
    w.u64(s.keys.len() as u64);
    for k in &s.keys {
        w.u64(k.group);
        w.i64(k.actor);
    }
    w.into_bytes()
}

#[pg_extern(immutable, parallel_safe, strict)]
fn _uniq_actors_deserial(
    bytes: &[u8],
    _unused: Internal,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    let mut s = UniqState::default();
    if !bytes.is_empty() {
        let mut r = Reader::new(bytes);
        let n = r.u64();
        for _ in 0..n {
            let b = read_opt_i64(&mut r);
            s.bucket_id(b);
        }
        let n = r.u64();
        for _ in 0..n {
            let d = read_opt_str(&mut r);
            s.bd_id(d.as_deref());
        }
        let n = r.u64() as usize;
        s.keys.reserve(n);
        for _ in 0..n {
            let group = r.u64();
            let actor = r.i64();
            s.keys.insert(Key { group, actor });
        }
    }
    in_agg_context(fcinfo, || Internal::new(s))
}

/// The groups and their distinct-actor counts, serialised: `n`, then per group the bucket
/// (optional µs since 2000-01-01), the breakdown (optional text) and the count.
#[pg_extern(immutable, parallel_safe)]
fn _uniq_actors_final(mut state: Internal) -> Option<Vec<u8>> {
    let s = unsafe { state.get_mut::<UniqState>() }?;
    let mut counts: HashMap<u64, i64, FxBuild> = HashMap::default();
    for k in &s.keys {
        *counts.entry(k.group).or_insert(0) += 1;
    }
    let mut w = Writer::with_capacity(16 + counts.len() * 32);
    w.u64(counts.len() as u64);
    for (g, c) in counts {
        write_opt_i64(&mut w, s.buckets[(g >> 32) as usize]);
        write_opt_str(&mut w, s.bds[(g & 0xffff_ffff) as usize].as_deref());
        w.i64(c);
    }
    Some(w.into_bytes())
}

/// SQL: `insights._uniq_actors_rows(bytea)`: the final value of `insights._uniq_actors` as rows.
#[allow(clippy::type_complexity)] // pgrx spells the row type out in the signature
#[pg_extern(immutable, parallel_safe, strict)]
fn _uniq_actors_rows(
    state: &[u8],
) -> TableIterator<
    'static,
    (
        name!(bucket, Option<TimestampWithTimeZone>),
        name!(breakdown, Option<String>),
        name!(v, i64),
    ),
> {
    let mut rows = Vec::new();
    if !state.is_empty() {
        let mut r = Reader::new(state);
        let n = r.u64();
        for _ in 0..n {
            let b = read_opt_i64(&mut r).and_then(|us| TimestampWithTimeZone::try_from(us).ok());
            let d = read_opt_str(&mut r);
            let c = r.i64();
            rows.push((b, d, c));
        }
    }
    TableIterator::new(rows)
}

extension_sql!(
    r#"
CREATE AGGREGATE insights._uniq_actors(bucket timestamptz, breakdown text, actor int8) (
    SFUNC            = insights._uniq_actors_sfunc,
    STYPE            = internal,
    COMBINEFUNC      = insights._uniq_actors_combine,
    SERIALFUNC       = insights._uniq_actors_serial,
    DESERIALFUNC     = insights._uniq_actors_deserial,
    FINALFUNC        = insights._uniq_actors_final,
    FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL         = SAFE
);
COMMENT ON AGGREGATE insights._uniq_actors(timestamptz, text, int8) IS
  'Internal: distinct actors per (bucket, breakdown), run by insights.trend for math dau; expand with insights._uniq_actors_rows.';
CREATE AGGREGATE insights._uniq_actors_utc(ts timestamptz, width_us int8, breakdown text, actor int8) (
    SFUNC            = insights._uniq_actors_utc_sfunc,
    STYPE            = internal,
    COMBINEFUNC      = insights._uniq_actors_combine,
    SERIALFUNC       = insights._uniq_actors_serial,
    DESERIALFUNC     = insights._uniq_actors_deserial,
    FINALFUNC        = insights._uniq_actors_final,
    FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL         = SAFE
);
COMMENT ON AGGREGATE insights._uniq_actors_utc(timestamptz, int8, text, int8) IS
  'Internal: insights._uniq_actors with the bucket = ts floored to width_us (UTC day/hour/minute buckets).';
"#,
    name = "uniq_actors_aggregate",
    requires = [
        _uniq_actors_sfunc,
        _uniq_actors_utc_sfunc,
        _uniq_actors_combine,
        _uniq_actors_serial,
        _uniq_actors_deserial,
        _uniq_actors_final,
        _uniq_actors_rows
    ],
);
