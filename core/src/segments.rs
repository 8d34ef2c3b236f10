//! The columnar projection of `insights.events` (docs/segments.md): the pure parts.
//!
//! A segment holds one project's events of one UTC day, sorted by time, as columns: timestamps
//! (zigzag varint deltas of Unix microseconds), persons (the day's sorted distinct person ids
//! plus one `u32` index per event) and, per dictionary column (`event` and every materialised
//! property), one `u32` id per event into the project's dictionary of that column (id 0 is
//! NULL). Postgres compresses the byte strings (lz4 TOAST) and keeps them like any other row.
//!
//! Readers never evaluate a filter row by row: a query's filter and breakdown are SQL over the
//! dictionary columns only ([`referenced_columns`] proves it), so Postgres evaluates them once
//! per combination of dictionary values ([`combo_sql`]) and the scan looks each event's
//! combination up in that table. The answer is exactly the heap path's by construction: the
//! same SQL decides, on the same values.

use chrono::{DateTime, TimeZone, Utc};

use crate::compile::dates::{self, Interval, ProjectTime};
use crate::compile::sql::Param;

/// Dictionary columns are named like this in a segment besides the materialised columns.
pub const EVENT_COLUMN: &str = "event";

/// At most this many dictionary-value combinations are evaluated for one query; beyond it the
/// query reads the heap (the combination table would cost more than it saves).
pub const MAX_COMBOS: usize = 200_000;

// ---------------------------------------------------------------------------------------------
// Codecs
// ---------------------------------------------------------------------------------------------

/// Sorted timestamps as zigzag LEB128 deltas (the first from 0). Events of a day sorted by time
/// are mostly milliseconds apart: 2–3 bytes each before compression.
pub fn encode_deltas(values: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 3);
    let mut prev = 0i64;
    for &v in values {
        let d = v.wrapping_sub(prev);
        prev = v;
        let mut z = ((d << 1) ^ (d >> 63)) as u64;
        loop {
            let byte = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    out
}

/// The inverse of [`encode_deltas`]; `None` on a truncated or overlong input.
pub fn decode_deltas(bytes: &[u8], n: usize) -> Option<Vec<i64>> {
    let mut d = Deltas::new(bytes);
    let out = (0..n)
        .map(|_| d.next_value())
        .collect::<Option<Vec<i64>>>()?;
    d.finished().then_some(out)
}

/// The values of [`encode_deltas`] one at a time (a scan decodes as it goes, without a vector).
pub struct Deltas<'a> {
    bytes: &'a [u8],
    pos: usize,
    prev: i64,
}

impl<'a> Deltas<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Deltas {
            bytes,
            pos: 0,
            prev: 0,
        }
    }

    /// The next value; `None` past the end or on an overlong varint.
    #[inline]
    pub fn next_value(&mut self) -> Option<i64> {
        let mut z = 0u64;
        let mut shift = 0;
        loop {
            let byte = *self.bytes.get(self.pos)?;
            self.pos += 1;
            if shift > 63 {
                return None;
            }
            z |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
        self.prev = self.prev.wrapping_add(d);
        Some(self.prev)
    }

    /// Every byte was read.
    pub fn finished(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

/// Fixed-width little-endian `u32`s.
pub fn encode_u32(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn decode_u32(bytes: &[u8]) -> Option<Vec<u32>> {
    bytes.len().is_multiple_of(4).then(|| {
        bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    })
}

/// Fixed-width little-endian `i64`s.
pub fn encode_i64(values: &[i64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn decode_i64(bytes: &[u8]) -> Option<Vec<i64>> {
    bytes.len().is_multiple_of(8).then(|| {
        bytes
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect()
    })
}

/// A day's persons: the sorted distinct ids and each event's index into them.
pub fn person_columns(persons: &[i64]) -> (Vec<i64>, Vec<u32>) {
    let mut dict = persons.to_vec();
    dict.sort_unstable();
    dict.dedup();
    let ix = persons
        .iter()
        .map(|p| dict.binary_search(p).unwrap_or(0) as u32)
        .collect();
    (dict, ix)
}

// ---------------------------------------------------------------------------------------------
// What a query needs from segments
// ---------------------------------------------------------------------------------------------

/// The columns of alias `e` that `sql` reads, when every one is a dictionary column (`event`
/// or the column of one of `materialized`, the filter context's (property, column) pairs);
/// `None` when it reads anything else or holds a subquery (a
/// cohort, a person property, a session): such a filter is not a function of the segment's
/// columns.
pub fn referenced_columns(sqls: &[&str], materialized: &[(String, String)]) -> Option<Vec<String>> {
    let mut cols: Vec<String> = Vec::new();
    for sql in sqls {
        if sql.to_ascii_lowercase().contains("select") {
            return None;
        }
        let b = sql.as_bytes();
        let mut i = 0;
        while let Some(pos) = sql[i..].find("e.") {
            let at = i + pos;
            i = at + 2;
            let prev = at.checked_sub(1).map(|p| b[p]);
            if prev
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'"' || c == b'.')
            {
                continue;
            }
            let rest = &sql[at + 2..];
            let name = if let Some(q) = rest.strip_prefix('"') {
                let end = q.find('"')?;
                q[..end].to_string()
            } else {
                rest.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '$')
                    .collect()
            };
            if name != EVENT_COLUMN && !materialized.iter().any(|(_, c)| *c == name) {
                return None;
            }
            if !cols.contains(&name) {
                cols.push(name);
            }
        }
    }
    cols.sort();
    Some(cols)
}

/// How a trend's run counts (the maths the segments answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegMath {
    /// `count(*)` per (bucket, breakdown).
    Count,
    /// Distinct persons per (bucket, breakdown).
    DistinctPersons,
}

/// A trends run the segments can answer, planned next to its heap statement.
#[derive(Debug, Clone)]
pub struct SegScan {
    /// The run's filters other than project and time, ANDed (`TRUE` when none), over alias `e`.
    pub filter: String,
    /// The breakdown value SQL over alias `e` (`NULL::text` without a breakdown).
    pub breakdown: String,
    /// The dictionary columns `filter` and `breakdown` read.
    pub columns: Vec<String>,
    pub math: SegMath,
    /// Inclusive range, Unix microseconds.
    pub from_us: i64,
    pub to_us: i64,
    /// `None`: one bucket for the whole range (total value), at `from_us`.
    pub interval: Option<Interval>,
    /// The heap statement for the events outside clean segments: `{TAIL}` is replaced by the
    /// condition selecting them. Count: `(bucket, breakdown, v)` rows; distinct persons:
    /// `(bucket, breakdown, actor)` distinct rows.
    pub tail_sql: String,
    /// The parameters of `filter`, `breakdown` and `tail_sql` (`$n` is `params[n-1]`).
    pub params: Vec<Param>,
}

/// The statement giving, for every combination of the dictionary values of `columns` (NULL
/// as id 0 for materialised columns), whether `filter` holds and the `values` (SQL over alias
/// `e`, each cast by the caller): `(id_1, …, id_n, pass, value_1, …)` rows. Run with the run's
/// own parameters, as it reuses the run's SQL.
pub fn combo_sql(project_id: i64, columns: &[String], filter: &str, values: &[String]) -> String {
    let mut inner = Vec::new();
    let mut from = Vec::new();
    let mut ids = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        let lit = c.replace('\'', "''");
        let null_row = if c == EVENT_COLUMN {
            String::new()
        } else {
            " UNION ALL SELECT 0, NULL::text".to_string()
        };
        from.push(format!(
            "(SELECT id, value FROM insights.segment_dict WHERE project_id = {project_id} \
             AND column_name = '{lit}'{null_row}) pgi_c{i}"
        ));
        inner.push(format!("pgi_c{i}.id AS pgi_id{i}"));
        inner.push(format!("pgi_c{i}.value AS \"{}\"", c.replace('"', "\"\"")));
        ids.push(format!("e.pgi_id{i}"));
    }
    let from = if from.is_empty() {
        "(SELECT 1) pgi_one".to_string()
    } else {
        from.join(" CROSS JOIN ")
    };
    let inner = if inner.is_empty() {
        "1 AS pgi_one".to_string()
    } else {
        inner.join(", ")
    };
    let mut select = ids;
    select.push(format!("({filter}) IS TRUE"));
    select.extend(values.iter().cloned());
    format!(
        "SELECT {} FROM (SELECT {inner} FROM {from}) e",
        select.join(", ")
    )
}

/// A run whose engine takes every event of the range passing `filter`, with values the run's
/// SQL computes per event: a funnel (`(steps)::int4`, `(exclusions)::int4`, `(breakdown)::text`,
/// as `insights._funnel_agg` would receive them) or paths (`(item)::text`, `(strip)::bool`, as
/// `insights._path_events` would).
#[derive(Debug, Clone)]
pub struct EventScan {
    /// The run's filters other than project and time, ANDed, over alias `e`.
    pub filter: String,
    /// The per-event values, SQL over alias `e`.
    pub values: Vec<String>,
    /// The dictionary columns `filter` and `values` read.
    pub columns: Vec<String>,
    /// Inclusive range, Unix microseconds.
    pub from_us: i64,
    pub to_us: i64,
    /// The run's heap statement over the events outside clean segments: `{TAIL}` is replaced
    /// by the condition selecting them. Funnels: `(person_id, timestamp, steps, exclusions,
    /// breakdown)` rows; paths: one `insights._path_events` value.
    pub tail_sql: String,
    /// The parameters of `filter`, `values` and `tail_sql`.
    pub params: Vec<Param>,
}

/// A run that feeds `(actor, period)` pairs to `insights._actor_periods` (stickiness,
/// lifecycle, recurring retention): every event of the range passing `filter` adds its person
/// and its period among `starts`.
#[derive(Debug, Clone)]
pub struct PeriodScan {
    /// The run's conditions other than project and time, ANDed, over alias `e`.
    pub filter: String,
    /// The dictionary columns `filter` reads.
    pub columns: Vec<String>,
    /// Inclusive range, Unix microseconds.
    pub from_us: i64,
    pub to_us: i64,
    pub interval: Interval,
    /// The periods' bucket starts (Unix microseconds, ascending): period `i` starts at
    /// `starts[i]`, as the heap statement's period index counts them.
    pub starts: Vec<i64>,
    /// One `insights._actor_entries` value: per actor, the entry of the events outside clean
    /// segments (`{TAIL}` is replaced by the condition selecting them) and of
    /// whatever else the run feeds the aggregate (lifecycle's creation periods).
    pub tail_sql: String,
    /// The parameters of `filter` and `tail_sql`.
    pub params: Vec<Param>,
}

impl PeriodScan {
    /// The period of an instant: the last one starting at or before it (`None` before the
    /// first), as Postgres' `width_bucket(ts, starts) - 1`. With consecutive bucket starts this
    /// is also the bucket's position, the period index of stickiness and lifecycle.
    pub fn period_of(&self, ts_us: i64) -> Option<i32> {
        let i = self.starts.partition_point(|&s| s <= ts_us);
        i.checked_sub(1).and_then(|i| i32::try_from(i).ok())
    }
}

/// What [`PeriodScan`] needs besides the run's SQL.
pub struct PeriodRun<'a> {
    /// The actor expression of the run (only `e.person_id` qualifies).
    pub actor: &'a str,
    /// The run's conditions other than project and time.
    pub conds: &'a [String],
    /// The materialised columns (segment dictionary columns besides `event`).
    pub materialized: &'a [(String, String)],
    pub interval: Interval,
    pub tz: &'a str,
    pub from_us: i64,
    pub to_us: i64,
    pub starts: Vec<i64>,
    /// `SELECT actor, period …` over alias `e` with `{TAIL}` among its conditions.
    pub tail_source: String,
    /// The parameters of `conds` and `tail_source`.
    pub params: Vec<Param>,
}

/// The columnar plan of a period run, or why the segments cannot answer it.
pub fn period_scan(r: PeriodRun) -> Result<PeriodScan, String> {
    if r.actor != "e.person_id" {
        return Err("the actors are not persons".into());
    }
    if matches!(r.interval, Interval::Hour | Interval::Minute) && !is_utc(r.tz) {
        return Err("hour buckets outside UTC".into());
    }
    let filter = if r.conds.is_empty() {
        "TRUE".to_string()
    } else {
        r.conds.join(" AND ")
    };
    let columns = referenced_columns(&[&filter], r.materialized).ok_or_else(|| {
        "a filter on something other than the event name and materialised properties".to_string()
    })?;
    Ok(PeriodScan {
        filter,
        columns,
        from_us: r.from_us,
        to_us: r.to_us,
        interval: r.interval,
        starts: r.starts,
        tail_sql: actor_entries_sql(&r.tail_source),
        params: r.params,
    })
}

/// Per actor of `(actor, period)` rows, its smallest period and mask of periods 0..62
/// ([`crate::actor_periods`]), as one value: the parallel aggregate `insights._actor_entries`
/// (one row to fetch, however many actors).
pub fn actor_entries_sql(source: &str) -> String {
    format!("SELECT insights._actor_entries(x.actor, x.period) FROM ({source}) x")
}

/// Time zones that are UTC at every instant (no offset, no DST).
pub fn is_utc(name: &str) -> bool {
    matches!(
        name,
        "UTC" | "Etc/UTC" | "Etc/GMT" | "GMT" | "Etc/Universal" | "Universal" | "Etc/Zulu" | "Zulu"
    )
}

/// The order of an event inside its segment as a tie-breaker like the heap's event uuid: a
/// segment is built in (timestamp, person, uuid) order, and events of one person at one
/// instant always lie in one segment (or all in the heap), so this orders them as their uuids.
pub fn segment_seq(day: i64, index: usize) -> u128 {
    ((day as u128) << 64) | index as u128
}

/// Maps an event's timestamp to its bucket start, remembering the last bucket: a segment's
/// events are in time order, so most calls return at once.
pub struct Bucketer<'a> {
    interval: Option<Interval>,
    pt: &'a ProjectTime,
    fixed: i64,
    cur: (i64, i64, i64),
}

impl<'a> Bucketer<'a> {
    pub fn new(interval: Option<Interval>, from_us: i64, pt: &'a ProjectTime) -> Self {
        Bucketer {
            interval,
            pt,
            fixed: from_us,
            cur: (i64::MAX, i64::MIN, 0),
        }
    }

    /// The bucket start (Unix microseconds) of `ts_us`.
    pub fn bucket(&mut self, ts_us: i64) -> i64 {
        let Some(interval) = self.interval else {
            return self.fixed;
        };
        if ts_us >= self.cur.0 && ts_us < self.cur.1 {
            return self.cur.2;
        }
        let t = Utc
            .timestamp_micros(ts_us)
            .single()
            .unwrap_or(DateTime::UNIX_EPOCH);
        let start = dates::bucket_start(t, interval, self.pt);
        let next = dates::next_bucket(start, interval, self.pt);
        let (s, n) = (start.timestamp_micros(), next.timestamp_micros());
        // Cache only a span that holds `ts` (a bucket of an ambiguous local time need not).
        self.cur = if s <= ts_us && ts_us < n && n > s {
            (s, n, s)
        } else {
            (i64::MAX, i64::MIN, s)
        };
        s
    }
}

/// The UTC day of a Unix-microsecond instant, as days since 1970-01-01.
pub fn utc_day(ts_us: i64) -> i64 {
    ts_us.div_euclid(86_400_000_000)
}

/// The heap condition selecting the events of `[from_us, to_us]` outside the covered UTC days
/// (days since 1970-01-01, sorted): `(lo, hi)` half-open microsecond intervals, the last one
/// closed at `to_us`.
pub fn uncovered_intervals(from_us: i64, to_us: i64, covered: &[i64]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut lo = from_us;
    let end = to_us.saturating_add(1);
    for &d in covered {
        let (ds, de) = (d * 86_400_000_000, (d + 1) * 86_400_000_000);
        if de <= lo || ds >= end {
            continue;
        }
        if ds > lo {
            out.push((lo, ds));
        }
        lo = lo.max(de);
    }
    if lo < end {
        out.push((lo, end));
    }
    out
}

#[cfg(test)]
#[path = "segments_tests.rs"]
mod tests;
