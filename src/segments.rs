//! The columnar projection of `insights.events` (sql/segments.sql, docs/segments.md): building a
//! day's segment, and answering a trends run from segments plus the heap.
//!
//! The pure parts (codecs, which queries qualify, buckets) are in `pg_insights_core::segments`.
//! Here: SPI in and out, and the scan loop. A run is answered from the clean segments of its
//! range and, for every other instant of the range, from the heap with the run's own SQL
//! (`SegScan::tail_sql`); the two row sets are disjoint, so counts add and distinct persons are
//! the union of both sides' persons.

use std::collections::HashMap;

use pg_insights_core::compile::dates::ProjectTime;
use pg_insights_core::compile::sql::{Param, quote_ident};
use pg_insights_core::engines::funnels::PG_EPOCH_OFFSET_US;
use pg_insights_core::engines::trends::{Row, TrendsRun};
use pg_insights_core::segments::{self as seg, Bucketer, SegMath, SegScan};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;

use crate::context::{USE_SEGMENTS, select_rows};

const DAY_US: i64 = 86_400_000_000;

fn ts_us(t: TimestampWithTimeZone) -> i64 {
    pg_sys::TimestampTz::from(t) + PG_EPOCH_OFFSET_US
}

fn spi_fail(what: &str, e: impl std::fmt::Display) -> ! {
    pgrx::error!("pg_insights: segment {what} failed: {e}")
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
         ORDER BY e.\"timestamp\", e.person_id",
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
// Reading
// ---------------------------------------------------------------------------------------------

/// A run's answer from segments, or `Heap`: run its heap statement (`explain_run` says why).
pub enum Path {
    Segments(Vec<Row>),
    Heap,
}

/// Per query: for every combination of the dictionary ids of the scan's columns, the
/// breakdown index of an event passing the filter (-1: filtered out).
struct Combos {
    sizes: Vec<usize>,
    table: Vec<i32>,
    breakdowns: Vec<Option<String>>,
}

fn load_combos(project_id: i64, scan: &SegScan) -> Result<Combos, String> {
    let mut sizes = Vec::new();
    for c in &scan.columns {
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
    let sql = seg::combo_sql(project_id, &scan.columns, &scan.filter, &scan.breakdown);
    let k = scan.columns.len();
    let rows = select_rows(&sql, &scan.params, "segment filter", |r| {
        let mut idx = 0usize;
        let mut stride = 1usize;
        for (i, size) in sizes.iter().enumerate() {
            idx += r.get::<i32>(i + 1)?.unwrap_or(0) as usize * stride;
            stride *= size;
        }
        Ok((
            idx,
            r.get::<bool>(k + 1)?.unwrap_or(false),
            r.get::<String>(k + 2)?,
        ))
    });
    let mut table = vec![-1i32; total];
    let mut breakdowns: Vec<Option<String>> = Vec::new();
    for (idx, pass, bd) in rows {
        if pass && idx < total {
            let b = match breakdowns.iter().position(|x| *x == bd) {
                Some(b) => b,
                None => {
                    breakdowns.push(bd);
                    breakdowns.len() - 1
                }
            };
            table[idx] = b as i32;
        }
    }
    Ok(Combos {
        sizes,
        table,
        breakdowns,
    })
}

/// What the scan accumulates per (bucket, breakdown index).
#[derive(Default)]
struct Acc {
    counts: HashMap<(i64, u32), f64>,
    /// Distinct persons: the persons of each group, and how many parts (segments, the heap)
    /// added some (one part: already distinct).
    persons: HashMap<(i64, u32), (Vec<i64>, u32)>,
}

/// One segment's columns, as fetched.
struct Fetched {
    events: usize,
    ts: Option<Vec<u8>>,
    persons: Option<Vec<u8>>,
    person_ix: Option<Vec<u8>>,
    ids: Vec<Option<Vec<u8>>>,
}

fn fetch_segment(project_id: i64, day: i64, scan: &SegScan, need_ts: bool) -> Option<Fetched> {
    let distinct = scan.math == SegMath::DistinctPersons;
    let mut joins = String::new();
    let mut sel = Vec::new();
    let mut params = vec![Param::Int(project_id), Param::Timestamp(day * DAY_US)];
    for (i, c) in scan.columns.iter().enumerate() {
        params.push(Param::Text(c.clone()));
        joins.push_str(&format!(
            " LEFT JOIN insights.event_segment_columns c{i} ON c{i}.project_id = s.project_id \
             AND c{i}.day = s.day AND c{i}.column_name = ${}::text",
            params.len()
        ));
        sel.push(format!("c{i}.ids"));
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
         WHERE s.project_id = $1 AND s.day = ($2::timestamptz AT TIME ZONE 'UTC')::date AND NOT s.dirty",
        pick(need_ts, "ts"),
        pick(distinct, "persons"),
        pick(distinct, "person_ix"),
        sel.iter().map(|s| format!(", {s}")).collect::<String>(),
    );
    let k = scan.columns.len();
    select_rows(&sql, &params, "segment read", |r| {
        let mut ids = Vec::with_capacity(k);
        for i in 0..k {
            ids.push(r.get::<Vec<u8>>(5 + i)?);
        }
        Ok(Fetched {
            events: r.get::<i32>(1)?.unwrap_or(0).max(0) as usize,
            ts: r.get::<Vec<u8>>(2)?,
            persons: r.get::<Vec<u8>>(3)?,
            person_ix: r.get::<Vec<u8>>(4)?,
            ids,
        })
    })
    .into_iter()
    .next()
}

/// Scans one segment into `acc`. `Err` when the segment is not what was listed (rebuilt with
/// other columns or values meanwhile): the caller answers from the heap instead.
fn scan_segment(
    f: &Fetched,
    day: i64,
    scan: &SegScan,
    combos: &Combos,
    bucketer: &mut Bucketer,
    acc: &mut Acc,
) -> Result<(), String> {
    let changed = || "a segment changed during the query".to_string();
    let n = f.events;
    let inside = day_inside(day, scan);
    let one_bucket = day_in_one_bucket(day, bucketer);
    let first = bucketer.bucket(day * DAY_US);
    let ts = if inside && one_bucket {
        None
    } else {
        let bytes = f.ts.as_ref().ok_or_else(changed)?;
        Some(seg::decode_deltas(bytes, n).ok_or_else(changed)?)
    };
    let mut cols = Vec::with_capacity(f.ids.len());
    for ids in &f.ids {
        let v = seg::decode_u32(ids.as_ref().ok_or_else(changed)?).ok_or_else(changed)?;
        if v.len() != n {
            return Err(changed());
        }
        cols.push(v);
    }
    let nbd = combos.breakdowns.len().max(1) as u32;
    let distinct = scan.math == SegMath::DistinctPersons;
    let (persons, person_ix) = if distinct {
        let p = seg::decode_i64(f.persons.as_ref().ok_or_else(changed)?).ok_or_else(changed)?;
        let ix = seg::decode_u32(f.person_ix.as_ref().ok_or_else(changed)?).ok_or_else(changed)?;
        if ix.len() != n || ix.iter().any(|&i| i as usize >= p.len()) {
            return Err(changed());
        }
        (p, ix)
    } else {
        (Vec::new(), Vec::new())
    };
    let max_groups = nbd as usize * if one_bucket { 1 } else { 32 };
    let mut seen = Seen::new(persons.len(), max_groups);
    // Groups of this segment: local bucket index * nbd + breakdown.
    let mut buckets: Vec<i64> = Vec::new();
    let mut counts: Vec<f64> = Vec::new();
    let mut last = (i64::MIN, 0u32);
    for i in 0..n {
        let mut idx = 0usize;
        let mut stride = 1usize;
        for (c, col) in cols.iter().enumerate() {
            let id = col[i] as usize;
            if id >= combos.sizes[c] {
                return Err(changed());
            }
            idx += id * stride;
            stride *= combos.sizes[c];
        }
        let bd = combos.table[idx];
        if bd < 0 {
            continue;
        }
        let b = match &ts {
            None => first,
            Some(ts) => {
                let t = ts[i];
                if t < scan.from_us || t > scan.to_us {
                    continue;
                }
                bucketer.bucket(t)
            }
        };
        let local = if last.0 == b {
            last.1
        } else {
            let l = match buckets.iter().position(|&x| x == b) {
                Some(l) => l as u32,
                None => {
                    buckets.push(b);
                    (buckets.len() - 1) as u32
                }
            };
            last = (b, l);
            l
        };
        let group = local * nbd + bd as u32;
        if distinct {
            seen.add(group, person_ix[i]);
        } else {
            if counts.len() <= group as usize {
                counts.resize(group as usize + 1, 0.0);
            }
            counts[group as usize] += 1.0;
        }
    }
    let key = |g: u32| (buckets[(g / nbd) as usize], g % nbd);
    for (g, c) in counts.iter().enumerate() {
        if *c > 0.0 {
            *acc.counts.entry(key(g as u32)).or_insert(0.0) += c;
        }
    }
    let mut prev_group = u32::MAX;
    seen.drain(|g, p| {
        let entry = acc.persons.entry(key(g)).or_insert_with(|| (Vec::new(), 0));
        if g != prev_group {
            entry.1 += 1;
            prev_group = g;
        }
        entry.0.push(persons[p as usize]);
    });
    Ok(())
}

/// The distinct (group, person index) pairs of one segment: a bitmap of the day's persons per
/// group while those stay small (setting a bit costs a few nanoseconds), else a list sorted at
/// the end.
enum Seen {
    Bits { words: usize, maps: Vec<Vec<u64>> },
    List(Vec<u64>),
}

impl Seen {
    const MAX_BITS: usize = 1 << 28;

    fn new(persons: usize, max_groups: usize) -> Seen {
        if persons.saturating_mul(max_groups) <= Self::MAX_BITS {
            Seen::Bits {
                words: persons.div_ceil(64),
                maps: Vec::new(),
            }
        } else {
            Seen::List(Vec::new())
        }
    }

    fn add(&mut self, group: u32, person: u32) {
        match self {
            Seen::Bits { words, maps } => {
                let g = group as usize;
                if maps.len() <= g {
                    maps.resize_with(g + 1, Vec::new);
                }
                if maps[g].is_empty() {
                    maps[g] = vec![0u64; *words];
                }
                maps[g][(person / 64) as usize] |= 1u64 << (person % 64);
            }
            Seen::List(v) => v.push((u64::from(group) << 32) | u64::from(person)),
        }
    }

    /// Every pair once, by group then person.
    fn drain(self, mut f: impl FnMut(u32, u32)) {
        match self {
            Seen::Bits { maps, .. } => {
                for (g, map) in maps.iter().enumerate() {
                    for (w, &word) in map.iter().enumerate() {
                        let mut bits = word;
                        while bits != 0 {
                            let b = bits.trailing_zeros();
                            f(g as u32, (w * 64) as u32 + b);
                            bits &= bits - 1;
                        }
                    }
                }
            }
            Seen::List(mut v) => {
                v.sort_unstable();
                v.dedup();
                for h in v {
                    f((h >> 32) as u32, (h & 0xffff_ffff) as u32);
                }
            }
        }
    }
}

/// The whole UTC day lies in the run's range: no per-event range check.
fn day_inside(day: i64, scan: &SegScan) -> bool {
    scan.from_us <= day * DAY_US && (day + 1) * DAY_US - 1 <= scan.to_us
}

/// Every instant of the UTC day falls in one bucket: no per-event bucket (buckets are monotone
/// in time, so the first and last instant decide).
fn day_in_one_bucket(day: i64, bucketer: &mut Bucketer) -> bool {
    bucketer.bucket(day * DAY_US) == bucketer.bucket((day + 1) * DAY_US - 1)
}

/// The clean segments of the run's range holding the columns it reads (UTC days since
/// 1970-01-01, ascending).
fn covered_days(project_id: i64, scan: &SegScan) -> Vec<i64> {
    select_rows(
        "SELECT (s.day - DATE '1970-01-01')::int8 FROM insights.event_segments s \
         WHERE s.project_id = $1 AND s.day >= ($2::timestamptz AT TIME ZONE 'UTC')::date \
         AND s.day <= ($3::timestamptz AT TIME ZONE 'UTC')::date AND NOT s.dirty \
         AND s.columns @> $4::text[] ORDER BY 1",
        &[
            Param::Int(project_id),
            Param::Timestamp(scan.from_us),
            Param::Timestamp(scan.to_us),
            Param::TextArray(scan.columns.clone()),
        ],
        "segment list",
        |r| Ok(r.get::<i64>(1)?.unwrap_or(0)),
    )
}

/// The heap part: the run's own SQL over the instants of the range no clean segment covers.
fn scan_tail(scan: &SegScan, covered: &[i64], bd_index: &mut Vec<Option<String>>, acc: &mut Acc) {
    let intervals = seg::uncovered_intervals(scan.from_us, scan.to_us, covered);
    if intervals.is_empty() {
        return;
    }
    let mut params = scan.params.clone();
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
    let sql = scan
        .tail_sql
        .replace("{TAIL}", &format!("({})", conds.join(" OR ")));
    let mut bd_id = |bd: Option<String>| -> u32 {
        match bd_index.iter().position(|x| *x == bd) {
            Some(i) => i as u32,
            None => {
                bd_index.push(bd);
                (bd_index.len() - 1) as u32
            }
        }
    };
    let rows = select_rows(&sql, &params, "segment tail", |r| {
        let bucket = r.get::<TimestampWithTimeZone>(1)?.map(ts_us).unwrap_or(0);
        Ok((
            bucket,
            r.get::<String>(2)?,
            r.get::<f64>(3).ok().flatten(),
            r.get::<i64>(3).ok().flatten(),
        ))
    });
    let mut touched: Vec<(i64, u32)> = Vec::new();
    for (bucket, bd, v, actor) in rows {
        let key = (bucket, bd_id(bd));
        match scan.math {
            SegMath::Count => *acc.counts.entry(key).or_insert(0.0) += v.unwrap_or(0.0),
            SegMath::DistinctPersons => {
                let e = acc.persons.entry(key).or_insert_with(|| (Vec::new(), 0));
                if !touched.contains(&key) {
                    touched.push(key);
                    e.1 += 1;
                }
                e.0.extend(actor);
            }
        }
    }
}

/// The clean segments a run would read and its combination table, or why it reads the heap.
fn prepare(project_id: i64, run: &TrendsRun) -> Result<(&SegScan, Vec<i64>, Combos), String> {
    if !USE_SEGMENTS.get() {
        return Err("pg_insights.use_segments is off".into());
    }
    let scan = run.seg.as_ref().map_err(|why| why.clone())?;
    let covered = covered_days(project_id, scan);
    if covered.is_empty() {
        return Err("no clean segment in the range".into());
    }
    let combos = load_combos(project_id, scan)?;
    Ok((scan, covered, combos))
}

/// Which path a run takes, without running it: `Ok(segment days)` or why the heap.
pub fn explain_run(project_id: i64, run: &TrendsRun) -> Result<usize, String> {
    prepare(project_id, run).map(|(_, covered, _)| covered.len())
}

/// Answers a trends run from segments (plus the heap for the rest of its range), or says why
/// the heap statement must run instead.
pub fn trend_rows(project_id: i64, pt: &ProjectTime, run: &TrendsRun) -> Path {
    let (scan, covered, combos) = match prepare(project_id, run) {
        Ok(p) => p,
        Err(_) => return Path::Heap,
    };
    let mut acc = Acc::default();
    let mut bucketer = Bucketer::new(scan.interval, scan.from_us, pt);
    for &day in &covered {
        let need_ts = !(day_inside(day, scan) && day_in_one_bucket(day, &mut bucketer));
        let Some(f) = fetch_segment(project_id, day, scan, need_ts) else {
            return Path::Heap; // a segment changed during the query
        };
        if scan_segment(&f, day, scan, &combos, &mut bucketer, &mut acc).is_err() {
            return Path::Heap; // a segment changed during the query
        }
    }
    let mut bd_index = combos.breakdowns.clone();
    scan_tail(scan, &covered, &mut bd_index, &mut acc);
    let mut rows: Vec<Row> = match scan.math {
        SegMath::Count => acc
            .counts
            .into_iter()
            .map(|((b, bd), v)| Row {
                bucket_us: b,
                breakdown: bd_index[bd as usize].clone(),
                value: v,
            })
            .collect(),
        SegMath::DistinctPersons => acc
            .persons
            .into_iter()
            .map(|((b, bd), (mut p, parts))| {
                if parts > 1 {
                    p.sort_unstable();
                    p.dedup();
                }
                Row {
                    bucket_us: b,
                    breakdown: bd_index[bd as usize].clone(),
                    value: p.len() as f64,
                }
            })
            .collect(),
    };
    rows.sort_by(|a, b| (a.bucket_us, &a.breakdown).cmp(&(b.bucket_us, &b.breakdown)));
    Path::Segments(rows)
}

/// SQL: `insights.explain(project_id, query)`: for each statement of a query, whether it reads
/// the columnar segments or the heap, and why. Does not run the query.
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
    let rows: Vec<(i32, bool, String, String)> =
        match crate::engines::trends::plan_for(project_id, &query.0) {
            Some(plan) => plan
                .runs
                .iter()
                .map(|r| {
                    let (path, detail) = match explain_run(project_id, r) {
                        Ok(days) => (
                            "segments".to_string(),
                            format!("{days} clean segment(s), the heap for the rest of the range"),
                        ),
                        Err(why) => ("heap".to_string(), why),
                    };
                    (r.series_index as i32, r.compare, path, detail)
                })
                .collect(),
            None => vec![(
                0,
                false,
                "heap".into(),
                "only trends read segments so far".into(),
            )],
        };
    TableIterator::new(rows)
}
