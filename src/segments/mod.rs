//! The columnar projection of `insights.events` (sql/segments.sql, docs/segments.md): building a
//! day's segment, and what every reader shares: the clean days of a range, the combination table
//! of a query's filter, fetching and decoding a segment, and `insights.explain`.
//!
//! The pure parts (codecs, which queries qualify, buckets) are in `pg_insights_core::segments`.
//! A run is answered from the clean segments of its range and, for every other instant of the
//! range, from the heap with the run's own SQL (`tail_sql`); the two event sets are disjoint.
//! Readers: [`trends`] (counts and distinct persons per bucket), [`funnels`] (the funnel
//! engine's events), [`periods`] (each person's periods, for stickiness and lifecycle),
//! [`paths`] (the paths engine's events).

use std::borrow::Cow;
use std::collections::HashMap;

use pg_insights_core::compile::sql::{Param, quote_ident};
use pg_insights_core::engines::funnels::PG_EPOCH_OFFSET_US;
use pg_insights_core::segments as seg;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::{SpiError, SpiHeapTupleData};

use crate::context::{USE_SEGMENTS, select_rows};

pub mod funnels;
pub mod paths;
pub mod periods;
pub mod trends;

pub use funnels::funnel_output;
pub use trends::{Path, trend_rows};

const DAY_US: i64 = 86_400_000_000;

fn ts_us(t: TimestampWithTimeZone) -> i64 {
    pg_sys::TimestampTz::from(t) + PG_EPOCH_OFFSET_US
}

fn spi_fail(what: &str, e: impl std::fmt::Display) -> ! {
    pgrx::error!("pg_insights: segment {what} failed: {e}")
}

const CHANGED: &str = "a segment changed during the query";

#[cold]
fn changed() -> String {
    CHANGED.to_string()
}

// ---------------------------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------------------------

/// One dictionary column being encoded: the project's ids, extended with the day's new values.
struct DictColumn {
    name: String,
    ids: HashMap<String, u32>,
    next: u32,
    new_values: Vec<(i32, String)>,
    out: Vec<u32>,
}

impl DictColumn {
    fn load(project_id: i64, name: &str) -> DictColumn {
        let rows = select_rows(
            "SELECT id, value FROM insights.segment_dict WHERE project_id = $1 AND column_name = $2",
            &[Param::Int(project_id), Param::Text(name.to_string())],
            "dictionary",
            |r| {
                Ok((
                    r.get::<i32>(1)?.unwrap_or(0),
                    r.get::<String>(2)?.unwrap_or_default(),
                ))
            },
        );
        let next = rows.iter().map(|(id, _)| *id as u32).max().unwrap_or(0) + 1;
        DictColumn {
            name: name.to_string(),
            ids: rows.into_iter().map(|(id, v)| (v, id as u32)).collect(),
            next,
            new_values: Vec::new(),
            out: Vec::new(),
        }
    }

    fn push(&mut self, v: Option<String>) {
        let id = match v {
            None => 0,
            Some(v) => match self.ids.get(&v) {
                Some(&id) => id,
                None => {
                    let id = self.next;
                    self.next += 1;
                    self.new_values.push((id as i32, v.clone()));
                    self.ids.insert(v, id);
                    id
                }
            },
        };
        self.out.push(id);
    }
}

/// SQL: `insights._segment_build(project_id, day)`: encodes the day's events (called by
/// `insights.seal_segment`, which has locked the day's row). Returns the number of events.
#[pg_extern]
fn _segment_build(project_id: i64, day: pgrx::datum::Date) -> i32 {
    let d = i64::from(day.to_unix_epoch_days());
    let columns: Vec<String> = Spi::get_one::<Vec<String>>("SELECT insights._segment_columns()")
        .unwrap_or_else(|e| spi_fail("columns", e))
        .unwrap_or_default();
    let mut dicts: Vec<DictColumn> = columns
        .iter()
        .map(|c| DictColumn::load(project_id, c))
        .collect();
    let cols: Vec<String> = columns
        .iter()
        .map(|c| format!("e.{}", quote_ident(c)))
        .collect();
    let sql = format!(
        "SELECT e.\"timestamp\", e.person_id, pg_column_size(e.*)::int8, {} FROM insights.events e \
         WHERE e.project_id = $1 AND e.\"timestamp\" >= $2 AND e.\"timestamp\" < $3 \
         ORDER BY e.\"timestamp\", e.person_id, e.uuid",
        cols.join(", ")
    );
    let (mut ts, mut persons, mut heap_bytes) = (Vec::new(), Vec::new(), 0i64);
    let params = [
        Param::Int(project_id),
        Param::Timestamp(d * DAY_US),
        Param::Timestamp((d + 1) * DAY_US),
    ];
    select_rows(&sql, &params, "segment build", |r| {
        ts.push(r.get::<TimestampWithTimeZone>(1)?.map(ts_us).unwrap_or(0));
        persons.push(r.get::<i64>(2)?.unwrap_or(0));
        heap_bytes += r.get::<i64>(3)?.unwrap_or(0);
        for (i, dict) in dicts.iter_mut().enumerate() {
            dict.push(r.get::<String>(4 + i)?);
        }
        Ok(())
    });
    let (person_dict, person_ix) = seg::person_columns(&persons);
    let n = ts.len() as i32;
    Spi::connect_mut(|c| {
        for dict in &dicts {
            if dict.new_values.is_empty() {
                continue;
            }
            let (ids, values): (Vec<i32>, Vec<String>) = dict.new_values.iter().cloned().unzip();
            let args: [DatumWithOid; 4] = [
                project_id.into(),
                dict.name.clone().into(),
                ids.into(),
                values.into(),
            ];
            c.update(
                "INSERT INTO insights.segment_dict (project_id, column_name, id, value) \
                 SELECT $1, $2, unnest($3::int4[]), unnest($4::text[])",
                None,
                &args,
            )?;
        }
        let args: [DatumWithOid; 8] = [
            project_id.into(),
            day.into(),
            n.into(),
            columns.clone().into(),
            seg::encode_deltas(&ts).into(),
            seg::encode_i64(&person_dict).into(),
            seg::encode_u32(&person_ix).into(),
            heap_bytes.into(),
        ];
        c.update(
            "UPDATE insights.event_segments SET dirty = false, events = $3, columns = $4, ts = $5, \
             persons = $6, person_ix = $7, heap_bytes = $8, built_at = now() \
             WHERE project_id = $1 AND day = $2",
            None,
            &args,
        )?;
        let args: [DatumWithOid; 2] = [project_id.into(), day.into()];
        c.update(
            "DELETE FROM insights.event_segment_columns WHERE project_id = $1 AND day = $2",
            None,
            &args,
        )?;
        for dict in &dicts {
            let args: [DatumWithOid; 4] = [
                project_id.into(),
                day.into(),
                dict.name.clone().into(),
                seg::encode_u32(&dict.out).into(),
            ];
            c.update(
                "INSERT INTO insights.event_segment_columns (project_id, day, column_name, ids) \
                 VALUES ($1, $2, $3, $4)",
                None,
                &args,
            )?;
        }
        Ok::<_, pgrx::spi::SpiError>(())
    })
    .unwrap_or_else(|e| spi_fail("write", e));
    n
}

// ---------------------------------------------------------------------------------------------
// Reading: what every reader shares
// ---------------------------------------------------------------------------------------------

/// Segments are read only with the setting on.
fn enabled() -> Result<(), String> {
    if USE_SEGMENTS.get() {
        Ok(())
    } else {
        Err("pg_insights.use_segments is off".into())
    }
}

/// What the shared steps (listing the clean days, the combination table, the heap tail) read of
/// a reader's plan; one implementation per plan type of `pg_insights_core::segments`.
trait ReadPlan {
    fn parts(&self) -> Parts<'_>;
}

struct Parts<'a> {
    /// Inclusive range, Unix microseconds.
    from_us: i64,
    to_us: i64,
    columns: &'a [String],
    filter: &'a str,
    /// The per-event values the combination table computes (SQL over alias `e`).
    values: Cow<'a, [String]>,
    /// The heap statement, `{TAIL}` standing for the instants no clean segment covers.
    tail_sql: &'a str,
    params: &'a [Param],
}

impl ReadPlan for seg::SegScan {
    fn parts(&self) -> Parts<'_> {
        Parts {
            from_us: self.from_us,
            to_us: self.to_us,
            columns: &self.columns,
            filter: &self.filter,
            values: Cow::Owned(vec![format!("({})::text", self.breakdown)]),
            tail_sql: &self.tail_sql,
            params: &self.params,
        }
    }
}

impl ReadPlan for seg::EventScan {
    fn parts(&self) -> Parts<'_> {
        Parts {
            from_us: self.from_us,
            to_us: self.to_us,
            columns: &self.columns,
            filter: &self.filter,
            values: Cow::Borrowed(&self.values),
            tail_sql: &self.tail_sql,
            params: &self.params,
        }
    }
}

impl ReadPlan for seg::PeriodScan {
    fn parts(&self) -> Parts<'_> {
        Parts {
            from_us: self.from_us,
            to_us: self.to_us,
            columns: &self.columns,
            filter: &self.filter,
            values: Cow::Borrowed(&[]),
            tail_sql: &self.tail_sql,
            params: &self.params,
        }
    }
}

/// A run ready to read: its scan, the clean days of its range (UTC days since 1970-01-01,
/// ascending) with their number of events, and its combination table.
struct Prepared<'a, S, E> {
    scan: &'a S,
    days: Vec<i64>,
    day_events: Vec<usize>,
    combos: Combos<E>,
}

/// A run's clean days and combination table, with the entries `read` makes of the values, or
/// why it reads the heap.
fn prepare<S: ReadPlan, E: PartialEq>(
    project_id: i64,
    seg: &Result<S, String>,
    read: impl Fn(&SpiHeapTupleData, usize) -> Result<E, SpiError>,
) -> Result<Prepared<'_, S, E>, String> {
    enabled()?;
    let scan = seg.as_ref().map_err(|why| why.clone())?;
    let p = scan.parts();
    let (days, day_events) = covered_days(project_id, p.from_us, p.to_us, p.columns)?;
    let combos = load_combos(project_id, p.columns, p.filter, &p.values, p.params, read)?;
    Ok(Prepared {
        scan,
        days,
        day_events,
        combos,
    })
}

/// Per query: for every combination of the dictionary ids of the scan's columns, the index of
/// its entry (what the query's SQL gives for those values) or -1 when the filter rejects it.
struct Combos<E> {
    sizes: Vec<usize>,
    table: Vec<i32>,
    entries: Vec<E>,
}

impl<E> Combos<E> {
    /// The entry of event `i` given the segment's dictionary columns ([`Fetched::columns`]);
    /// `Err` on an id the dictionary did not have when the table was made (a concurrent
    /// rebuild).
    /// Called once per event by every reader: always inlined, the error built out of line.
    #[inline(always)]
    fn lookup(&self, cols: &[&[u8]], i: usize) -> Result<i32, String> {
        let idx = match cols {
            [] => 0,
            [col] => u32_at(col, i) as usize,
            _ => {
                let (mut idx, mut stride) = (0usize, 1usize);
                for (c, col) in cols.iter().enumerate() {
                    let id = u32_at(col, i) as usize;
                    if id >= self.sizes[c] {
                        return Err(changed());
                    }
                    idx += id * stride;
                    stride *= self.sizes[c];
                }
                idx
            }
        };
        match self.table.get(idx) {
            Some(&e) => Ok(e),
            None => Err(changed()),
        }
    }

    /// For a filter over one dictionary column: per dictionary id, all ones when the filter
    /// passes, else zero, so a scan can mask instead of branch (a filter passing half of the
    /// events at random mispredicts half of its branches).
    fn pass_masks(&self) -> Option<Vec<u64>> {
        (self.sizes.len() == 1).then(|| {
            self.table
                .iter()
                .map(|&e| if e >= 0 { u64::MAX } else { 0 })
                .collect()
        })
    }
}

/// An empty vector with room for `n` items whose memory the kernel may back with huge pages.
/// A query's event vectors are tens of megabytes written once: with 4 kB pages, faulting them
/// in cost about a fifth of a funnel's time (perf, 10M events); transparent huge pages set to
/// `madvise` (the Debian default) take this hint, `never` ignores it.
fn big_vec<T>(n: usize) -> Vec<T> {
    const HUGE: usize = 2 << 20;
    let v: Vec<T> = Vec::with_capacity(n);
    let (ptr, len) = (
        v.as_ptr() as usize,
        n.saturating_mul(std::mem::size_of::<T>()),
    );
    let start = ptr.next_multiple_of(HUGE);
    let end = (ptr + len) & !(HUGE - 1);
    if end > start {
        // SAFETY: advice only, on whole pages inside the vector's own allocation.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
    v
}

/// Little-endian `u32` number `i` of a stored column (the caller has checked the length).
#[inline(always)]
fn u32_at(col: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([col[4 * i], col[4 * i + 1], col[4 * i + 2], col[4 * i + 3]])
}

/// Evaluates `filter` and `values` (SQL over alias `e`) once per combination of the dictionary
/// values of `columns`; `read(row, first)` reads the values starting at column `first`.
fn load_combos<E: PartialEq>(
    project_id: i64,
    columns: &[String],
    filter: &str,
    values: &[String],
    params: &[Param],
    read: impl Fn(&SpiHeapTupleData, usize) -> Result<E, SpiError>,
) -> Result<Combos<E>, String> {
    let mut sizes = Vec::new();
    for c in columns {
        let max = select_rows(
            "SELECT coalesce(max(id), 0) FROM insights.segment_dict WHERE project_id = $1 AND column_name = $2",
            &[Param::Int(project_id), Param::Text(c.clone())],
            "dictionary size",
            |r| Ok(r.get::<i32>(1)?.unwrap_or(0)),
        );
        sizes.push(max.first().copied().unwrap_or(0) as usize + 1);
    }
    let total = sizes.iter().product::<usize>();
    if total > seg::MAX_COMBOS {
        return Err(format!(
            "{total} combinations of dictionary values (limit {})",
            seg::MAX_COMBOS
        ));
    }
    let sql = seg::combo_sql(project_id, columns, filter, values);
    let k = columns.len();
    let rows = select_rows(&sql, params, "segment filter", |r| {
        let mut idx = 0usize;
        let mut stride = 1usize;
        for (i, size) in sizes.iter().enumerate() {
            idx += r.get::<i32>(i + 1)?.unwrap_or(0) as usize * stride;
            stride *= size;
        }
        Ok((
            idx,
            r.get::<bool>(k + 1)?.unwrap_or(false),
            read(&r, k + 2)?,
        ))
    });
    let mut table = vec![-1i32; total];
    let mut entries: Vec<E> = Vec::new();
    for (idx, pass, e) in rows {
        if pass && idx < total {
            let at = match entries.iter().position(|x| *x == e) {
                Some(at) => at,
                None => {
                    entries.push(e);
                    entries.len() - 1
                }
            };
            table[idx] = at as i32;
        }
    }
    Ok(Combos {
        sizes,
        table,
        entries,
    })
}

/// One segment's columns, as fetched: borrowed from the detoasted values (valid while the
/// statement's result is), so no column is copied before it is decoded.
struct Fetched<'a> {
    events: usize,
    ts: Option<&'a [u8]>,
    persons: Option<&'a [u8]>,
    person_ix: Option<&'a [u8]>,
    ids: Vec<Option<&'a [u8]>>,
}

impl Fetched<'_> {
    /// The dictionary columns as stored (`events` little-endian `u32`s each): read in place,
    /// never copied.
    fn columns(&self) -> Result<Vec<&[u8]>, String> {
        self.ids
            .iter()
            .map(|ids| {
                ids.filter(|b| b.len() == 4 * self.events)
                    .ok_or_else(changed)
            })
            .collect()
    }

    /// The day's distinct persons and, as stored, each event's index into them (`u32`s, read
    /// with [`u32_at`]; users check the index, out of range only in a corrupt segment).
    fn persons(&self) -> Result<(Vec<i64>, &[u8]), String> {
        let p = seg::decode_i64(self.persons.ok_or_else(changed)?).ok_or_else(changed)?;
        let ix = self
            .person_ix
            .filter(|b| b.len() == 4 * self.events)
            .ok_or_else(changed)?;
        Ok((p, ix))
    }

    fn timestamps(&self) -> Result<Vec<i64>, String> {
        seg::decode_deltas(self.ts.ok_or_else(changed)?, self.events).ok_or_else(changed)
    }

    /// The timestamps one at a time (check [`seg::Deltas::finished`] after the last).
    fn deltas(&self) -> Result<seg::Deltas<'_>, String> {
        Ok(seg::Deltas::new(self.ts.ok_or_else(changed)?))
    }
}

/// The statement reading the clean segments of `days` (UTC days since 1970-01-01) with the
/// given dictionary columns, by day; its parameters.
fn segment_read(
    project_id: i64,
    days: &[i64],
    columns: &[String],
    (need_ts, need_persons): (bool, bool),
) -> (String, Vec<Param>) {
    let mut joins = String::new();
    let mut sel = Vec::new();
    let mut params = vec![Param::Int(project_id), Param::IntArray(days.to_vec())];
    for (i, c) in columns.iter().enumerate() {
        params.push(Param::Text(c.clone()));
        joins.push_str(&format!(
            " LEFT JOIN insights.event_segment_columns c{i} ON c{i}.project_id = s.project_id \
             AND c{i}.day = s.day AND c{i}.column_name = ${}::text",
            params.len()
        ));
        sel.push(format!(", c{i}.ids"));
    }
    let pick = |yes: bool, col: &str| {
        if yes {
            format!("s.{col}")
        } else {
            "NULL::bytea".into()
        }
    };
    let sql = format!(
        "SELECT s.events, {}, {}, {}{} FROM insights.event_segments s{joins} \
         WHERE s.project_id = $1 AND NOT s.dirty AND s.day = ANY \
         (ARRAY(SELECT DATE '1970-01-01' + d::int4 FROM unnest($2::int8[]) d)) ORDER BY s.day",
        pick(need_ts, "ts"),
        pick(need_persons, "persons"),
        pick(need_persons, "person_ix"),
        sel.concat(),
    );
    (sql, params)
}

/// A row of [`segment_read`] as fetched.
fn fetched<'a>(r: &SpiHeapTupleData, columns: usize) -> Result<Fetched<'a>, SpiError> {
    let mut ids = Vec::with_capacity(columns);
    for i in 0..columns {
        ids.push(r.get::<&[u8]>(5 + i)?);
    }
    Ok(Fetched {
        events: r.get::<i32>(1)?.unwrap_or(0).max(0) as usize,
        ts: r.get::<&[u8]>(2)?,
        persons: r.get::<&[u8]>(3)?,
        person_ix: r.get::<&[u8]>(4)?,
        ids,
    })
}

/// `scan` over one clean segment with the given dictionary columns (`None` if it is no longer
/// clean).
fn with_segment<R>(
    project_id: i64,
    day: i64,
    columns: &[String],
    need: (bool, bool),
    scan: impl FnOnce(&Fetched) -> R,
) -> Option<R> {
    // One day: `with_segments` calls back only with its one segment.
    with_segments(project_id, &[day], columns, need, |segs| scan(&segs[0]))
}

/// `scan` over the clean segments of `days` (ascending), given together: one statement, whose
/// detoasted values stay valid until `scan` returns (`None` if one is no longer clean).
fn with_segments<R>(
    project_id: i64,
    days: &[i64],
    columns: &[String],
    need: (bool, bool),
    scan: impl FnOnce(&[Fetched]) -> R,
) -> Option<R> {
    let (sql, params) = segment_read(project_id, days, columns, need);
    let args: Vec<DatumWithOid> = params.iter().map(crate::context::datum).collect();
    Spi::connect(|c| {
        let rows = c.select(&sql, None, &args)?;
        let segments = rows
            .map(|r| fetched(&r, columns.len()))
            .collect::<Result<Vec<Fetched>, SpiError>>()?;
        Ok::<_, SpiError>((segments.len() == days.len()).then(|| scan(&segments)))
    })
    .unwrap_or_else(|e| spi_fail("read", e))
}

/// The clean segments of `[from_us, to_us]` holding `columns` (UTC days since 1970-01-01,
/// ascending) and each one's number of events (readers size their vectors with them once:
/// growing them would copy them and fault their pages in again), or why there is nothing to
/// read.
fn covered_days(
    project_id: i64,
    from_us: i64,
    to_us: i64,
    columns: &[String],
) -> Result<(Vec<i64>, Vec<usize>), String> {
    let rows = select_rows(
        "SELECT (s.day - DATE '1970-01-01')::int8, s.events FROM insights.event_segments s \
         WHERE s.project_id = $1 AND s.day >= ($2::timestamptz AT TIME ZONE 'UTC')::date \
         AND s.day <= ($3::timestamptz AT TIME ZONE 'UTC')::date AND NOT s.dirty \
         AND s.columns @> $4::text[] ORDER BY 1",
        &[
            Param::Int(project_id),
            Param::Timestamp(from_us),
            Param::Timestamp(to_us),
            Param::TextArray(columns.to_vec()),
        ],
        "segment list",
        |r| {
            Ok((
                r.get::<i64>(1)?.unwrap_or(0),
                r.get::<i32>(2)?.unwrap_or(0).max(0) as usize,
            ))
        },
    );
    if rows.is_empty() {
        return Err("no clean segment in the range".into());
    }
    Ok(rows.into_iter().unzip())
}

/// A run's heap statement restricted to the instants of its range no clean segment covers:
/// `None` when there are none. Its extra parameters follow the run's.
fn tail_statement(scan: &impl ReadPlan, covered: &[i64]) -> Option<(String, Vec<Param>)> {
    let Parts {
        from_us,
        to_us,
        tail_sql,
        params,
        ..
    } = scan.parts();
    let intervals = seg::uncovered_intervals(from_us, to_us, covered);
    if intervals.is_empty() {
        return None;
    }
    let mut params = params.to_vec();
    let mut conds = Vec::new();
    for (lo, hi) in intervals {
        params.push(Param::Timestamp(lo));
        let a = params.len();
        params.push(Param::Timestamp(hi));
        conds.push(format!(
            "(e.\"timestamp\" >= ${a}::timestamptz AND e.\"timestamp\" < ${}::timestamptz)",
            a + 1
        ));
    }
    Some((
        tail_sql.replace("{TAIL}", &format!("({})", conds.join(" OR "))),
        params,
    ))
}

/// One explain row: `segments` with how many clean days, or `heap` and why.
fn explain_row(
    series: usize,
    compare: bool,
    r: Result<usize, String>,
) -> (i32, bool, String, String) {
    let (path, detail) = match r {
        Ok(days) => (
            "segments".to_string(),
            format!("{days} clean segment(s), the heap for the rest of the range"),
        ),
        Err(why) => ("heap".to_string(), why),
    };
    (series as i32, compare, path, detail)
}

/// SQL: `insights.explain(project_id, query)`: for each statement of a query, whether it reads
/// the columnar segments or the heap, and why. Plans the query without running it. `series` is
/// the trends series (or the funnel run: one per cohort of a cohort breakdown).
#[allow(clippy::type_complexity)]
#[pg_extern(stable)]
fn explain(
    project_id: i64,
    query: pgrx::JsonB,
) -> TableIterator<
    'static,
    (
        name!(series, i32),
        name!(compare, bool),
        name!(path, String),
        name!(detail, String),
    ),
> {
    use pg_insights_core::model::{InsightKind, parse_query};
    let kind = parse_query(&query.0)
        .map(|q| q.kind)
        .unwrap_or_else(|e| crate::errors::raise_query_error(&e));
    let rows: Vec<(i32, bool, String, String)> = match kind {
        InsightKind::Trends => crate::engines::trends::plan_for(project_id, &query.0)
            .map(|plan| {
                plan.runs
                    .iter()
                    .map(|r| {
                        explain_row(
                            r.series_index,
                            r.compare,
                            trends::explain_run(project_id, r),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        InsightKind::Funnels => crate::engines::funnels::plan_for(project_id, &query.0)
            .runs
            .iter()
            .enumerate()
            .map(|(i, r)| explain_row(i, false, funnels::explain_run(project_id, r)))
            .collect(),
        InsightKind::Stickiness => crate::engines::stickiness::plan_for(project_id, &query.0)
            .runs
            .iter()
            .map(|r| {
                let path = periods::explain_run(project_id, &r.seg);
                explain_row(r.series_index, r.compare, path)
            })
            .collect(),
        InsightKind::Lifecycle => {
            let plan = crate::engines::lifecycle::plan_for(project_id, &query.0);
            vec![explain_row(
                0,
                false,
                periods::explain_run(project_id, &plan.seg),
            )]
        }
        InsightKind::Retention => {
            let project = crate::context::load_project(project_id);
            let plan = crate::engines::retention::plan_for(&project, &query.0);
            let seg = plan.seg.map(|s| s.scan);
            vec![explain_row(
                0,
                false,
                periods::explain_run(project_id, &seg),
            )]
        }
        InsightKind::Paths => {
            let plan = crate::engines::paths::plan_for(project_id, &query.0);
            vec![explain_row(0, false, paths::explain_run(project_id, &plan))]
        }
    };
    TableIterator::new(rows)
}
