//! Stickiness, lifecycle and recurring retention from segments: each actor's smallest period and mask of periods
//! (`pg_insights_core::actor_periods`), as `insights._actor_periods` gives them over the heap.
//! A segment adds every (person, period) pair it holds once; the heap adds, per actor, the
//! entry of the rest of the range (and lifecycle's creation periods). Entries merge by actor, so
//! the histogram is the heap path's whatever side an event was read from.

use std::collections::HashMap;

use pg_insights_core::actor_periods::{ActorPeriods, Entry};
use pg_insights_core::compile::sql::Param;
use pg_insights_core::engines::retention::RetentionSeg;
use pg_insights_core::segments::PeriodScan;

use super::{
    Combos, DAY_US, Fetched, Prepared, changed, prepare, tail_statement, u32_at, with_segment,
};
use crate::agg::FxBuild;
use crate::context::select_rows;
use crate::engines::retention::decode_entries;

/// Which path a run takes, without running it: `Ok(segment days)` or why the heap.
pub fn explain_run(project_id: i64, seg: &Result<PeriodScan, String>) -> Result<usize, String> {
    prepare(project_id, seg, |_, _| Ok(())).map(|p| p.days.len())
}

/// The persons of one period seen in a segment: a bitmap over the day's person indexes,
/// emptied into the state when the period changes (events are in time order, so each period
/// is one run of events).
struct Run {
    period: Option<i32>,
    bits: Vec<u64>,
}

impl Run {
    /// Marks person index `p` (`Err` if out of range: the segment is not what was listed).
    #[inline]
    fn set(&mut self, p: usize) -> Result<(), String> {
        *self.bits.get_mut(p / 64).ok_or_else(changed)? |= 1 << (p % 64);
        Ok(())
    }

    fn flush(&mut self, persons: &[i64], acc: &mut ActorPeriods) {
        if let Some(p) = self.period.take() {
            for (w, word) in self.bits.iter_mut().enumerate() {
                let mut b = std::mem::take(word);
                while b != 0 {
                    if let Some(&person) = persons.get(w * 64 + b.trailing_zeros() as usize) {
                        acc.add(person, p);
                    }
                    b &= b - 1;
                }
            }
        }
    }
}

/// Scans one segment into `acc`. `Err` when the segment is not what was listed.
fn scan_segment(
    f: &Fetched,
    day: i64,
    scan: &PeriodScan,
    (combos, masks): (&Combos<()>, Option<&[u64]>),
    acc: &mut ActorPeriods,
) -> Result<(), String> {
    let (persons, ix) = f.persons()?;
    let cols = f.columns()?;
    let mut run = Run {
        period: None,
        bits: vec![0u64; persons.len().div_ceil(64)],
    };
    let fixed = fixed_period(day, scan);
    if let (Some(p), Some(masks), [col]) = (fixed, masks, cols.as_slice()) {
        // The common case (day buckets in UTC, the whole day in range, a filter on one
        // column such as the event name): one period, and no branch on the filter.
        run.period = Some(p);
        for i in 0..f.events {
            let m = masks.get(u32_at(col, i) as usize).ok_or_else(changed)?;
            let p = u32_at(ix, i) as usize;
            *run.bits.get_mut(p / 64).ok_or_else(changed)? |= (1 << (p % 64)) & m;
        }
    } else if let Some(p) = fixed {
        run.period = Some(p);
        for i in 0..f.events {
            if combos.lookup(&cols, i)? >= 0 {
                run.set(u32_at(ix, i) as usize)?;
            }
        }
    } else {
        let mut ts = f.deltas()?;
        for i in 0..f.events {
            let t = ts.next_value().ok_or_else(changed)?;
            if combos.lookup(&cols, i)? < 0 || t < scan.from_us || t > scan.to_us {
                continue;
            }
            let Some(period) = scan.period_of(t) else {
                continue;
            };
            if run.period != Some(period) {
                run.flush(&persons, acc);
                run.period = Some(period);
            }
            run.set(u32_at(ix, i) as usize)?;
        }
        if !ts.finished() {
            return Err(changed());
        }
    }
    run.flush(&persons, acc);
    Ok(())
}

/// The one period of every event of the UTC day, when the whole day lies in the range and in
/// one period (no per-event time then).
fn fixed_period(day: i64, scan: &PeriodScan) -> Option<i32> {
    let (lo, hi) = (day * DAY_US, (day + 1) * DAY_US - 1);
    let inside = scan.from_us <= lo && hi <= scan.to_us;
    let p = scan.period_of(lo)?;
    (inside && scan.period_of(hi) == Some(p)).then_some(p)
}

/// The heap part: per actor, the entry of the events outside clean segments (plus what the
/// run adds besides events), sorted by actor.
fn tail_entries(scan: &PeriodScan, covered: &[i64]) -> Vec<Entry> {
    let (sql, params) = tail_statement(scan, covered).unwrap_or_else(|| {
        (
            scan.tail_sql.replace("{TAIL}", "FALSE"),
            scan.params.clone(),
        )
    });
    select_rows(&sql, &params, "segment tail", |r| {
        Ok(r.get::<&[u8]>(1)?.map(decode_entries))
    })
    .into_iter()
    .flatten()
    .next()
    .unwrap_or_default()
}

/// A run's `(first_period, periods, actors)` rows from segments (plus the heap for the rest of
/// its range), or `None`: run its heap statement (`explain_run` says why).
pub fn period_masks(
    project_id: i64,
    seg: &Result<PeriodScan, String>,
) -> Option<Vec<(i32, i64, i64)>> {
    let Prepared {
        scan,
        days: covered,
        combos,
        ..
    } = prepare(project_id, seg, |_, _| Ok(())).ok()?;
    let mut acc = ActorPeriods::default();
    let masks = combos.pass_masks();
    for &day in &covered {
        let need_ts = fixed_period(day, scan).is_none();
        let scanned = with_segment(project_id, day, &scan.columns, (need_ts, true), |f| {
            let filter = (&combos, masks.as_deref());
            scan_segment(f, day, scan, filter, &mut acc)
        });
        if !matches!(scanned, Some(Ok(()))) {
            return None; // a segment changed during the query
        }
    }
    acc.merge(ActorPeriods::from_sorted(tail_entries(scan, &covered)));
    let mut hist: HashMap<(i32, u64), i64, FxBuild> = HashMap::default();
    for e in acc.entries() {
        *hist.entry((e.first, e.mask)).or_insert(0) += 1;
    }
    Some(
        hist.into_iter()
            .map(|((first, mask), n)| (first, mask as i64, n))
            .collect(),
    )
}

/// A recurring retention from segments ([`RetentionSeg`]): its cells statement with the actors'
/// masks grouped into its first two parameters, or `None`: run the plan's own statement.
pub fn retention_cells(
    project_id: i64,
    seg: &Result<RetentionSeg, String>,
) -> Option<(String, Vec<Param>)> {
    let rs = seg.as_ref().ok()?;
    let rows = period_masks(project_id, &Ok(rs.scan.clone()))?;
    let mut by_mask: HashMap<i64, i64, FxBuild> = HashMap::default();
    for (_, mask, actors) in rows.into_iter().filter(|r| r.1 != 0) {
        *by_mask.entry(mask).or_insert(0) += actors;
    }
    let (masks, actors): (Vec<i64>, Vec<i64>) = by_mask.into_iter().unzip();
    let mut params = rs.params.clone();
    if params.len() < 2 {
        return None;
    }
    params[0] = Param::IntArray(masks);
    params[1] = Param::IntArray(actors);
    Some((rs.sql.clone(), params))
}
