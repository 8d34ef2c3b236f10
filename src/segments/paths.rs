//! Paths from segments: every event the run's SQL would hand to `insights._path_events` (same
//! filter, same item and strip flag, evaluated by Postgres once per combination of dictionary
//! values), read from the clean segments, plus the heap's state for the rest of the range. The
//! engine (`pg_insights_core::engines::paths::render_state`) sorts each person's events itself.

use pg_insights_core::engines::paths::{PathEvents, PathsPlan};
use pg_insights_core::segments::{EventScan, segment_seq};

use super::{Combos, Fetched, Prepared, changed, prepare, tail_statement, u32_at, with_segment};
use crate::context::select_rows;

/// The clean segments of a paths run and its combination table, or why it reads the heap.
fn prepare_run(
    project_id: i64,
    plan: &PathsPlan,
) -> Result<Prepared<'_, EventScan, (String, bool)>, String> {
    prepare(project_id, &plan.seg, |r, at| {
        Ok((
            r.get::<String>(at)?.unwrap_or_default(),
            r.get::<bool>(at + 1)?.unwrap_or(false),
        ))
    })
}

/// Which path a paths run takes, without running it: `Ok(segment days)` or why the heap.
pub fn explain_run(project_id: i64, plan: &PathsPlan) -> Result<usize, String> {
    prepare_run(project_id, plan).map(|p| p.days.len())
}

/// Appends one segment's events passing the filter and inside the range; `items[e]` is the
/// interned item of combination entry `e`.
fn scan_segment(
    f: &Fetched,
    day: i64,
    scan: &EventScan,
    combos: &Combos<(String, bool)>,
    items: &[u32],
    out: &mut PathEvents,
) -> Result<(), String> {
    let cols = f.columns()?;
    let (persons, ix) = f.persons()?;
    let mut ts = f.deltas()?;
    for i in 0..f.events {
        let t = ts.next_value().ok_or_else(changed)?;
        let e = combos.lookup(&cols, i)?;
        if e < 0 || t < scan.from_us || t > scan.to_us {
            continue;
        }
        let person = *persons.get(u32_at(ix, i) as usize).ok_or_else(changed)?;
        out.push(person, t, segment_seq(day, i), items[e as usize]);
    }
    if !ts.finished() {
        return Err(changed());
    }
    Ok(())
}

/// The events of a paths run from segments (plus the heap for the rest of its range), or
/// `None`: run its heap statement (`explain_run` says why).
pub fn path_events(project_id: i64, plan: &PathsPlan) -> Option<PathEvents> {
    let Prepared {
        scan,
        days: covered,
        day_events,
        combos,
    } = prepare_run(project_id, plan).ok()?;
    let mut out = PathEvents::default();
    let items: Vec<u32> = combos
        .entries
        .iter()
        .map(|(item, strip)| out.intern(item, *strip))
        .collect();
    out.reserve(day_events.iter().sum());
    for &day in &covered {
        with_segment(project_id, day, &scan.columns, (true, true), |f| {
            scan_segment(f, day, scan, &combos, &items, &mut out)
        })?
        .ok()?;
    }
    if let Some((sql, params)) = tail_statement(scan, &covered) {
        let tail = select_rows(&sql, &params, "segment tail", |r| {
            Ok(r.get::<&[u8]>(1)?.map(PathEvents::from_bytes))
        });
        if let Some(state) = tail.into_iter().flatten().next() {
            out.merge(state);
        }
    }
    Some(out)
}
