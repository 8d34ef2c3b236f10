//! Trends from segments: counts and distinct persons per (bucket, breakdown), plus the heap
//! for the rest of the range; the two event sets are disjoint, so counts add and distinct
//! persons are the union of both sides' persons.

use std::collections::HashMap;

use pg_insights_core::compile::dates::ProjectTime;
use pg_insights_core::engines::trends::{Row, TrendsRun};
use pg_insights_core::segments::{Bucketer, SegMath, SegScan};
use pgrx::prelude::*;

use super::{
    Combos, DAY_US, Fetched, Prepared, changed, prepare, tail_statement, ts_us, u32_at,
    with_segment,
};
use crate::context::select_rows;

/// A run's answer from segments, or `Heap`: run its heap statement (`explain_run` says why).
pub enum Path {
    Segments(Vec<Row>),
    Heap,
}

/// What the scan accumulates per (bucket, breakdown index).
#[derive(Default)]
struct Acc {
    counts: HashMap<(i64, u32), f64>,
    /// Distinct persons: the persons of each group, and how many parts (segments, the heap)
    /// added some (one part: already distinct).
    persons: HashMap<(i64, u32), (Vec<i64>, u32)>,
}

/// Scans one segment into `acc`. `Err` when the segment is not what was listed (rebuilt with
/// other columns or values meanwhile): the caller answers from the heap instead.
fn scan_segment(
    f: &Fetched,
    day: i64,
    scan: &SegScan,
    combos: &Combos<Option<String>>,
    bucketer: &mut Bucketer,
    acc: &mut Acc,
) -> Result<(), String> {
    let n = f.events;
    let inside = day_inside(day, scan);
    let one_bucket = day_in_one_bucket(day, bucketer);
    let first = bucketer.bucket(day * DAY_US);
    let ts = if inside && one_bucket {
        None
    } else {
        Some(f.timestamps()?)
    };
    let cols = f.columns()?;
    let nbd = combos.entries.len().max(1) as u32;
    let distinct = scan.math == SegMath::DistinctPersons;
    if ts.is_none() && !distinct {
        // Counts of a day in one bucket: a histogram of the events' entries, slot 0 for the
        // rejected ones, so no branch on the filter.
        let mut hist = vec![0u64; combos.entries.len() + 1];
        for i in 0..n {
            hist[(combos.lookup(&cols, i)? + 1) as usize] += 1;
        }
        for (bd, &c) in hist.iter().enumerate().skip(1).filter(|(_, c)| **c > 0) {
            *acc.counts.entry((first, bd as u32 - 1)).or_insert(0.0) += c as f64;
        }
        return Ok(());
    }
    let (persons, person_ix): (Vec<i64>, &[u8]) = if distinct {
        f.persons()?
    } else {
        (Vec::new(), &[])
    };
    let max_groups = nbd as usize * if one_bucket { 1 } else { 32 };
    let mut seen = Seen::new(persons.len(), max_groups);
    // Groups of this segment: local bucket index * nbd + breakdown.
    let mut buckets: Vec<i64> = Vec::new();
    let mut counts: Vec<f64> = Vec::new();
    let mut last = (i64::MIN, 0u32);
    for i in 0..n {
        let bd = combos.lookup(&cols, i)?;
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
            let p = u32_at(person_ix, i);
            if p as usize >= persons.len() {
                return Err(changed());
            }
            seen.add(group, p);
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

/// The heap part: the run's own SQL over the instants of the range no clean segment covers.
fn scan_tail(scan: &SegScan, covered: &[i64], bd_index: &mut Vec<Option<String>>, acc: &mut Acc) {
    let Some((sql, params)) = tail_statement(scan, covered) else {
        return;
    };
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
fn prepare_run(
    project_id: i64,
    run: &TrendsRun,
) -> Result<Prepared<'_, SegScan, Option<String>>, String> {
    prepare(project_id, &run.seg, |r, at| r.get::<String>(at))
}

/// Which path a run takes, without running it: `Ok(segment days)` or why the heap.
pub fn explain_run(project_id: i64, run: &TrendsRun) -> Result<usize, String> {
    prepare_run(project_id, run).map(|p| p.days.len())
}

/// Answers a trends run from segments (plus the heap for the rest of its range), or says why
/// the heap statement must run instead.
pub fn trend_rows(project_id: i64, pt: &ProjectTime, run: &TrendsRun) -> Path {
    let Ok(Prepared {
        scan,
        days: covered,
        combos,
        ..
    }) = prepare_run(project_id, run)
    else {
        return Path::Heap;
    };
    let mut acc = Acc::default();
    let mut bucketer = Bucketer::new(scan.interval, scan.from_us, pt);
    for &day in &covered {
        let need_ts = !(day_inside(day, scan) && day_in_one_bucket(day, &mut bucketer));
        let distinct = scan.math == SegMath::DistinctPersons;
        let scanned = with_segment(project_id, day, &scan.columns, (need_ts, distinct), |f| {
            scan_segment(f, day, scan, &combos, &mut bucketer, &mut acc)
        });
        if !matches!(scanned, Some(Ok(()))) {
            return Path::Heap; // a segment changed during the query
        }
    }
    let mut bd_index = combos.entries.clone();
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
