//! Funnels from segments: every event of the range that the run's SQL would hand to
//! `insights._funnel_agg` (same filter, step mask, exclusion mask and breakdown, evaluated by
//! Postgres once per combination of dictionary values), read from the clean segments and the
//! heap for the rest of the range, then the engine's own final step
//! (`crate::engines::funnels::summarize_rows`). Only the way the events arrive differs.

use std::collections::HashMap;

use pg_insights_core::dense;
use pg_insights_core::engines::funnels::engine::Ev;
use pg_insights_core::engines::funnels::{EngineConfig, FunnelRun, PG_EPOCH_OFFSET_US};
use pg_insights_core::segments::EventScan;
use pgrx::prelude::*;
use serde_json::Value;

use crate::engines::funnels::Grouped;

use super::{Combos, Prepared, big_vec, changed, prepare, tail_statement, u32_at, with_segment};
use crate::context::select_rows;

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

/// The engine output of a funnel run answered from segments, or `None`: run its heap statement.
pub fn funnel_output(project_id: i64, run: &FunnelRun, cfg: &EngineConfig) -> Option<Value> {
    let Prepared {
        scan,
        days: covered,
        events,
        combos,
    } = prepare_run(project_id, run).ok()?;
    let mut bds = Breakdowns {
        on: cfg.has_breakdown,
        names: vec![None],
        ids: HashMap::new(),
    };
    // Each combination entry as the event it stamps (the timestamp filled in per event).
    let marks: Vec<Ev> = combos
        .entries
        .iter()
        .map(|(steps, excl, bd)| Ev {
            ts: 0,
            steps: *steps as u32,
            excl: *excl as u32,
            bd: bds.id(bd.as_deref()),
        })
        .collect();
    let mut rows: Vec<(i64, Ev)> = big_vec(events);
    for &day in &covered {
        with_segment(project_id, day, &scan.columns, (true, true), |f| {
            scan_segment(f, scan, &combos, &marks, &mut rows)
        })?
        .ok()?;
    }
    if let Some((sql, params)) = tail_statement(scan, &covered) {
        let tail = select_rows(&sql, &params, "segment tail", |r| {
            Ok((
                r.get::<i64>(1)?,
                r.get::<TimestampWithTimeZone>(2)?,
                r.get::<i32>(3)?.unwrap_or(0),
                r.get::<i32>(4)?.unwrap_or(0),
                r.get::<String>(5)?,
            ))
        });
        for (actor, ts, steps, excl, bd) in tail {
            if let (Some(actor), Some(ts)) = (actor, ts) {
                let bd = bds.id(bd.as_deref());
                rows.push((
                    actor,
                    Ev {
                        ts: pg_sys::TimestampTz::from(ts),
                        steps: steps as u32,
                        excl: excl as u32,
                        bd,
                    },
                ));
            }
        }
    }
    Some(crate::engines::funnels::summarize_grouped(
        cfg,
        group_by_actor(rows),
        &mut HashMap::new(),
        &bds.names,
    ))
}

/// Appends one segment's events passing the filter and inside the range. Every event is
/// written to the next free slot and the slot kept only if it passes: no branch on the filter,
/// which passes some events of a segment in no predictable order.
fn scan_segment(
    f: &super::Fetched,
    scan: &EventScan,
    combos: &Combos<Marks>,
    marks: &[Ev],
    rows: &mut Vec<(i64, Ev)>,
) -> Result<(), String> {
    if marks.is_empty() {
        return Ok(()); // the filter passes no combination
    }
    let cols = f.columns()?;
    let (persons, ix) = f.persons()?;
    let mut ts = f.deltas()?;
    rows.reserve(f.events);
    let spare = &mut rows.spare_capacity_mut()[..f.events];
    let mut kept = 0;
    for i in 0..f.events {
        let t = ts.next_value().ok_or_else(changed)?;
        let at = combos.lookup(&cols, i)?;
        let keep = (at >= 0) & (t >= scan.from_us) & (t <= scan.to_us);
        let person = *persons.get(u32_at(ix, i) as usize).ok_or_else(changed)?;
        let mut ev = *marks.get(at.max(0) as usize).ok_or_else(changed)?;
        ev.ts = t - PG_EPOCH_OFFSET_US;
        spare[kept].write((person, ev));
        kept += usize::from(keep);
    }
    if !ts.finished() {
        return Err(changed());
    }
    // SAFETY: the first `kept` spare slots were written above (`kept` ≤ the slots written).
    unsafe { rows.set_len(rows.len() + kept) };
    Ok(())
}

/// The rows grouped by actor (the final step evaluates each actor's events as one slice and
/// sorts them itself). Person ids of a project are mostly dense: a counting sort straight into
/// the grouped events, two linear passes, where their range allows; else a comparison sort.
fn group_by_actor(mut rows: Vec<(i64, Ev)>) -> Grouped {
    let keys = rows.iter().map(|r| r.0);
    let Some((min, mut start)) = dense::key_offsets(keys, rows.len()) else {
        rows.sort_unstable_by_key(|(a, e)| (*a, e.ts));
        let mut g = Grouped {
            ids: Vec::new(),
            bounds: Vec::new(),
            evs: Vec::with_capacity(rows.len()),
        };
        for (k, e) in rows {
            if g.ids.last() != Some(&k) {
                g.ids.push(k);
                g.bounds.push(g.evs.len());
            }
            g.evs.push(e);
        }
        g.bounds.push(g.evs.len());
        return g;
    };
    let mut ids = Vec::new();
    let mut bounds = Vec::new();
    for a in 0..start.len() - 1 {
        if start[a + 1] > start[a] {
            ids.push(min + a as i64);
            bounds.push(start[a]);
        }
    }
    bounds.push(rows.len());
    let mut evs = big_vec(rows.len());
    evs.resize(rows.len(), Ev::default());
    for (a, e) in rows {
        let slot = &mut start[(a - min) as usize];
        evs[*slot] = e;
        *slot += 1;
    }
    Grouped { ids, bounds, evs }
}
