//! Funnels from segments: every event of the range that the run's SQL would hand to
//! `insights._funnel_agg` (same filter, step mask, exclusion mask and breakdown, evaluated by
//! Postgres once per combination of dictionary values), read from the clean segments and the
//! heap for the rest of the range, then the engine's own final step
//! (`crate::engines::funnels::summarize_rows`). Only the way the events arrive differs.

use std::collections::HashMap;

use pg_insights_core::engines::funnels::engine::Ev;
use pg_insights_core::engines::funnels::{EngineConfig, FunnelRun, PG_EPOCH_OFFSET_US};
use pg_insights_core::segments::EventScan;
use pgrx::prelude::*;
use serde_json::Value;

use crate::engines::funnels::Grouped;

use super::{Combos, Prepared, big_vec, changed, prepare, tail_statement, u32_at, with_segments};
use crate::context::select_rows;
use crate::threads::for_each_part;
use crate::threads::query_threads;

/// What an event passing the filter carries: (step mask, exclusion mask, breakdown).
type Marks = (i32, i32, Option<String>);

/// The clean segments a funnel run would read and its combination table, or why the heap.
fn prepare_run(project_id: i64, run: &FunnelRun) -> Result<Prepared<'_, EventScan, Marks>, String> {
    prepare(project_id, &run.seg, |r, at| {
        Ok((
            r.get::<i32>(at)?.unwrap_or(0),
            r.get::<i32>(at + 1)?.unwrap_or(0),
            r.get::<String>(at + 2)?,
        ))
    })
}

/// Which path a funnel run takes, without running it: `Ok(segment days)` or why the heap.
pub fn explain_run(project_id: i64, run: &FunnelRun) -> Result<usize, String> {
    prepare_run(project_id, run).map(|p| p.days.len())
}

/// Breakdown ids as the aggregate assigns them: 0 is no value, texts get 1, 2, … in order.
struct Breakdowns {
    on: bool,
    names: Vec<Option<String>>,
    ids: HashMap<String, u32>,
}

impl Breakdowns {
    fn id(&mut self, bd: Option<&str>) -> u32 {
        match bd {
            Some(b) if self.on => match self.ids.get(b) {
                Some(&id) => id,
                None => {
                    let id = self.names.len() as u32;
                    self.names.push(Some(b.to_string()));
                    self.ids.insert(b.to_string(), id);
                    id
                }
            },
            _ => 0,
        }
    }
}

/// An event passing the filter as a segment scan keeps it: its actor, its time (Postgres
/// microseconds) and its entry in the marks (step, exclusion and breakdown), 24 bytes where the
/// engine's event with its actor takes 32: the rows are written once and read twice.
#[derive(Clone, Copy)]
struct Row {
    actor: i64,
    ts: i64,
    at: u32,
}

/// The rows of one thread's share of the segments (a run of consecutive days), with a bound on
/// their actors (the smallest and largest person of its segments).
struct Part {
    index: usize,
    rows: Vec<Row>,
    lo: i64,
    hi: i64,
    failed: Option<String>,
}

/// Segments fetched by one statement hold about this many events (their detoasted columns stay
/// in memory until the statement's rows are scanned: some tens of megabytes).
const BATCH_EVENTS: usize = 2_000_000;

/// The engine output of a funnel run answered from segments, or `None`: run its heap statement.
pub fn funnel_output(project_id: i64, run: &FunnelRun, cfg: &EngineConfig) -> Option<Value> {
    let Prepared {
        scan,
        days,
        day_events,
        combos,
        ..
    } = prepare_run(project_id, run).ok()?;
    let mut bds = Breakdowns {
        on: cfg.has_breakdown,
        names: vec![None],
        ids: HashMap::new(),
    };
    // Each combination entry as the event it stamps (the timestamp filled in per event).
    let mut marks: Vec<Ev> = combos
        .entries
        .iter()
        .map(|(steps, excl, bd)| Ev {
            ts: 0,
            steps: *steps as u32,
            excl: *excl as u32,
            bd: bds.id(bd.as_deref()),
        })
        .collect();
    let mut parts = scan_parts(project_id, scan, &combos, &days, &day_events)?;
    if let Some(tail) = tail_rows(scan, &days, &mut bds, &mut marks) {
        parts.push(tail);
    }
    Some(crate::engines::funnels::summarize_grouped(
        cfg,
        group_by_actor(&mut parts, &marks),
        &mut HashMap::new(),
        &bds.names,
    ))
}

/// The rows of the clean segments, decoded on the query's threads, each writing its own rows:
/// part `t` takes the `t`-th of as many runs of consecutive days, so the parts in order hold
/// every actor's events in time order (the final step then sorts sorted slices). `None` when a
/// segment changed meanwhile.
fn scan_parts(
    project_id: i64,
    scan: &EventScan,
    combos: &Combos<Marks>,
    days: &[i64],
    day_events: &[usize],
) -> Option<Vec<Part>> {
    let runs = split_runs(day_events, query_threads());
    let mut parts: Vec<Part> = runs
        .iter()
        .enumerate()
        .map(|(t, r)| Part {
            index: t,
            rows: big_vec(day_events[r.clone()].iter().sum()),
            lo: i64::MAX,
            hi: i64::MIN,
            failed: None,
        })
        .collect();
    let mut next: Vec<usize> = runs.iter().map(|r| r.start).collect();
    while next.iter().zip(&runs).any(|(n, r)| *n < r.end) {
        // The next days of every part, about BATCH_EVENTS in all, fetched by one statement.
        let take: Vec<std::ops::Range<usize>> = next
            .iter()
            .zip(&runs)
            .map(|(&n, r)| n..batch_end(day_events, n, r.end, BATCH_EVENTS / runs.len()))
            .collect();
        let batch: Vec<i64> = take.iter().flat_map(|t| days[t.clone()].to_vec()).collect();
        with_segments(project_id, &batch, &scan.columns, (true, true), |segs| {
            for_each_part(&mut parts, |p| {
                let before: usize = take[..p.index].iter().map(|t| t.len()).sum();
                for f in &segs[before..before + take[p.index].len()] {
                    if p.failed.is_none() {
                        p.failed = scan_segment(f, scan, combos, p).err();
                    }
                }
            })
        })?;
        next = take.iter().map(|t| t.end).collect();
    }
    parts.iter().all(|p| p.failed.is_none()).then_some(parts)
}

/// `threads` runs of consecutive days (at most one per day) with about as many events each.
fn split_runs(day_events: &[usize], threads: usize) -> Vec<std::ops::Range<usize>> {
    let parts = threads.clamp(1, day_events.len().max(1));
    let total: usize = day_events.iter().sum();
    let mut runs = Vec::with_capacity(parts);
    let (mut start, mut seen) = (0, 0);
    for (i, n) in day_events.iter().enumerate() {
        seen += n;
        let left = day_events.len() - i - 1;
        let want = runs.len() + 1;
        if want < parts && (seen * parts >= total * want || left == parts - want) {
            runs.push(start..i + 1);
            start = i + 1;
        }
    }
    runs.push(start..day_events.len());
    runs
}

/// The end of the days from `from` (before `end`) holding about `budget` events: at least one.
fn batch_end(day_events: &[usize], from: usize, end: usize, budget: usize) -> usize {
    let mut to = from;
    let mut n = 0;
    while to < end && (to == from || n + day_events[to] <= budget) {
        n += day_events[to];
        to += 1;
    }
    to
}

/// The events of the range no clean segment covers, from the heap, as one more part (their
/// step, exclusion and breakdown added to the marks).
fn tail_rows(
    scan: &EventScan,
    covered: &[i64],
    bds: &mut Breakdowns,
    marks: &mut Vec<Ev>,
) -> Option<Part> {
    let (sql, params) = tail_statement(scan, covered)?;
    let tail = select_rows(&sql, &params, "segment tail", |r| {
        Ok((
            r.get::<i64>(1)?,
            r.get::<TimestampWithTimeZone>(2)?,
            r.get::<i32>(3)?.unwrap_or(0),
            r.get::<i32>(4)?.unwrap_or(0),
            r.get::<String>(5)?,
        ))
    });
    let mut part = Part {
        index: usize::MAX,
        rows: Vec::with_capacity(tail.len()),
        lo: i64::MAX,
        hi: i64::MIN,
        failed: None,
    };
    let mut seen: HashMap<(u32, u32, u32), u32> = HashMap::new();
    for (actor, ts, steps, excl, bd) in tail {
        let (Some(actor), Some(ts)) = (actor, ts) else {
            continue;
        };
        let ev = Ev {
            ts: 0,
            steps: steps as u32,
            excl: excl as u32,
            bd: bds.id(bd.as_deref()),
        };
        let at = *seen.entry((ev.steps, ev.excl, ev.bd)).or_insert_with(|| {
            marks.push(ev);
            marks.len() as u32 - 1
        });
        part.lo = part.lo.min(actor);
        part.hi = part.hi.max(actor);
        part.rows.push(Row {
            actor,
            ts: pg_sys::TimestampTz::from(ts),
            at,
        });
    }
    Some(part)
}

/// Appends one segment's events passing the filter and inside the range. Every event is
/// written to the next free slot and the slot kept only if it passes: no branch on the filter,
/// which passes some events of a segment in no predictable order.
fn scan_segment(
    f: &super::Fetched,
    scan: &EventScan,
    combos: &Combos<Marks>,
    part: &mut Part,
) -> Result<(), String> {
    if combos.entries.is_empty() {
        return Ok(()); // the filter passes no combination
    }
    let cols = f.columns()?;
    let (persons, ix) = f.persons()?;
    if let (Some(&lo), Some(&hi)) = (persons.first(), persons.last()) {
        part.lo = part.lo.min(lo); // persons are stored sorted
        part.hi = part.hi.max(hi);
    }
    let mut ts = f.deltas()?;
    let rows = &mut part.rows;
    rows.reserve(f.events);
    let spare = &mut rows.spare_capacity_mut()[..f.events];
    let mut kept = 0;
    for i in 0..f.events {
        let t = ts.next_value().ok_or_else(changed)?;
        let at = combos.lookup(&cols, i)?;
        let keep = (at >= 0) & (t >= scan.from_us) & (t <= scan.to_us);
        let actor = *persons.get(u32_at(ix, i) as usize).ok_or_else(changed)?;
        spare[kept].write(Row {
            actor,
            ts: t - PG_EPOCH_OFFSET_US,
            at: at.max(0) as u32,
        });
        kept += usize::from(keep);
    }
    if !ts.finished() {
        return Err(changed());
    }
    // SAFETY: the first `kept` spare slots were written above (`kept` ≤ the slots written).
    unsafe { rows.set_len(rows.len() + kept) };
    Ok(())
}

/// The engine's events, where the scatter writes them from several threads.
struct Out(*mut Ev);
// SAFETY: the threads write disjoint slots (see `group_by_actor`).
unsafe impl Sync for Out {}

/// The rows grouped by actor (the final step evaluates each actor's events as one slice and
/// sorts them itself, so the order inside a group does not matter). Person ids of a project are
/// mostly dense: a counting sort, its count and scatter passes on each part's own thread,
/// where their range allows; else a comparison sort.
fn group_by_actor(parts: &mut [Part], marks: &[Ev]) -> Grouped {
    let total: usize = parts.iter().map(|p| p.rows.len()).sum();
    let live = parts.iter().filter(|p| !p.rows.is_empty());
    let lo = live.clone().map(|p| p.lo).min().unwrap_or(0);
    let hi = live.map(|p| p.hi).max().unwrap_or(0);
    let span = hi.abs_diff(lo) as usize;
    if total == 0 || total >= u32::MAX as usize || span > total.saturating_mul(4).max(1 << 16) {
        return sort_by_actor(parts, marks);
    }
    let mut counts = for_each_part(parts, |p| {
        let mut c = vec![0u32; span + 1];
        for r in &p.rows {
            c[(r.actor - lo) as usize] += 1;
        }
        c
    });
    // Each actor's slots: those of part 0's rows first, then part 1's, …; `counts` becomes
    // where each part writes its next row of each actor.
    let (mut ids, mut bounds) = (Vec::new(), Vec::new());
    let mut at = 0u32;
    for a in 0..=span {
        let first = at;
        for c in counts.iter_mut() {
            let n = c[a];
            c[a] = at;
            at += n;
        }
        if at > first {
            ids.push(lo + a as i64);
            bounds.push(first as usize);
        }
    }
    bounds.push(total);
    let mut evs: Vec<Ev> = big_vec(total);
    let out = Out(evs.as_mut_ptr());
    let mut work: Vec<(&Part, Vec<u32>)> = parts.iter().zip(counts).collect();
    for_each_part(&mut work, |(p, next)| {
        let out = &out;
        for r in &p.rows {
            let slot = &mut next[(r.actor - lo) as usize];
            // SAFETY: `*slot` < `total` (the capacity); every (part, actor) pair owns its own
            // range of slots, so each slot is written by one thread, once.
            unsafe {
                out.0.add(*slot as usize).write(Ev {
                    ts: r.ts,
                    ..marks[r.at as usize]
                })
            };
            *slot += 1;
        }
    });
    // SAFETY: the scatter wrote every one of the `total` slots (one per row).
    unsafe { evs.set_len(total) };
    Grouped { ids, bounds, evs }
}

/// [`group_by_actor`] for actors spread too thinly for a counting sort.
fn sort_by_actor(parts: &[Part], marks: &[Ev]) -> Grouped {
    let mut rows: Vec<&Row> = parts.iter().flat_map(|p| &p.rows).collect();
    rows.sort_unstable_by_key(|r| r.actor);
    let mut g = Grouped {
        ids: Vec::new(),
        bounds: Vec::new(),
        evs: Vec::with_capacity(rows.len()),
    };
    for r in rows {
        if g.ids.last() != Some(&r.actor) {
            g.ids.push(r.actor);
            g.bounds.push(g.evs.len());
        }
        g.evs.push(Ev {
            ts: r.ts,
            ..marks[r.at as usize]
        });
    }
    g.bounds.push(g.evs.len());
    g
}
