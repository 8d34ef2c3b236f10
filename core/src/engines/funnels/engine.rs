//! The per-actor funnel engine: PostHog's funnel semantics (ordered, strict, unordered), funnel
//! trends, ClickHouse's `windowFunnel`, and the aggregation of per-actor outcomes into PostHog's
//! step results.
//!
//! The SQL layer computes, per actor (person, group, …), the events that matter and marks each one
//! with bitmasks ([`Ev`]); everything here is plain Rust over those marks. The state machines
//! implement the rules of docs/funnels.md (step orders through time to convert), checked against
//! PostHog's funnel UDF (`funnel-udf/src/{steps,unordered_steps,trends,unordered_trends}.rs`).
//!
//! Cost: one in-place sort (O(n log n)); the ordered and strict machines are O(n) after it
//! (O(n · steps) for strict resets), the unordered one O(n · steps). Nothing is allocated per event:
//! a run allocates its scratch state once.
//!
//! # Semantic choices where PostHog's behaviour is unclear
//!
//! * **Tie order.** Events are sorted by `(ts, steps, excl, bd)`, so results never depend on input
//!   order. Inside a group of events sharing one timestamp, PostHog's rules apply: one event (or
//!   several with identical marks) is processed as is; a group of *different* events is expanded into
//!   one entry per matched step, processed by step number, with exclusions and strict resets ignored
//!   and no physical event used twice in a chain (F19, F33, F47).
//! * **Which events an actor has.** For ordered and unordered funnels, events with `steps == 0` and
//!   no exclusion are ignored (PostHog never sees them). For strict funnels every event counts and an
//!   event with `steps == 0` resets all chains.
//! * **first_touch / last_touch** take the first / last non-null (`bd != 0`) value over *all* the
//!   actor's events handed in (step and exclusion events; every event for strict funnels), not only
//!   the chosen chain. This is what PostHog's `argMinIf(prop, timestamp, notEmpty(prop))` over the
//!   UDF's input does; B9 holds either way. With no non-null value the outcome has `bd == 0`.
//! * **all_events**: one run per distinct value, null (`bd == 0`) included as a value of its own
//!   (PostHog's `[""]` series), each run seeing only the events carrying that value (B6, U1).
//! * **step(i)**: one run per distinct value among the events matching step `i` (null included);
//!   in each run the event filling step `i` must carry that value. An actor with no step-`i` event
//!   gets **no outcome at all** (PostHog's `test_funnel_step_breakdown_with_step_one_attribution_
//!   incomplete_funnel`: "funnel items that never reach step_1 are NULLed out"). For unordered
//!   funnels the values come from all the actor's events and the event that makes the count go from
//!   `i` to `i + 1` must carry the value (PostHog's unordered UDF).
//! * **Optional steps** (ordered/strict): an event for step `k` may attach to the nearest earlier
//!   present chain across optional steps. A skipped step is flagged in [`Outcome::skipped`] and gets
//!   the timestamp of the previous done step in `step_ts`, so its conversion time is 0 (ignored by the
//!   averages) and the next step's time is measured from the last step actually done. [`Tally`]
//!   counts an actor at step `k` only when the chain did step `k` (PostHog's `steps_bitfield`), so
//!   counts with optional steps need not be monotone. Bit 0 of `optional_steps` is ignored (the first
//!   step cannot be optional). The step-attribution check is made on the step being filled.
//! * **Unordered events matching a step and an exclusion**: the exclusion clears the state first,
//!   then the event is queued as a step (PostHog's UDF cannot represent such an event).
//! * **Funnel trends**: see [`evaluate_trends_detailed`].
//! * **windowFunnel ties**: see [`window_funnel`].
//! * **Median**: ClickHouse `median` (linear interpolation): the mean of the two middle values for an
//!   even count (C2: `[7200, 3600]` → 5400). Exact at every size (ClickHouse samples above 8192).
//! * **time_to_convert bins**: see [`time_to_convert_bins`].

use std::collections::BTreeMap;

/// Most steps (and exclusions) a funnel can have: one bit each in a `u32`.
pub const MAX_STEPS: usize = 32;

/// Breakdown id of the merged "Other" series produced by [`Tally::finish`]. Callers must not use
/// it for a real value.
pub const OTHER_BD: u32 = u32::MAX;

const NONE: u32 = u32::MAX;

/// One event of one actor, as the SQL layer marks it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ev {
    /// Microseconds since the epoch.
    pub ts: i64,
    /// Bit k set = matches funnel step k (0-based). 0 = matches no step (only kept for strict
    /// funnels, which reset on any other event).
    pub steps: u32,
    /// Bit j set = matches exclusion j (index into [`Spec::exclusions`]).
    pub excl: u32,
    /// Breakdown value id assigned by the caller; 0 = null/missing value.
    pub bd: u32,
}

/// Funnel order type (`funnelOrderType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Ordered,
    Strict,
    Unordered,
}

/// Breakdown attribution (`breakdownAttributionType` + `breakdownAttributionValue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribution {
    FirstTouch,
    LastTouch,
    AllEvents,
    /// The value of the event that fulfilled this 0-based step.
    Step(usize),
}

/// What to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub order: Order,
    /// 1..=32.
    pub num_steps: usize,
    /// Conversion window in microseconds, measured from the step-0 timestamp, inclusive.
    pub window_us: i64,
    /// (from_step, to_step), 0-based, already validated.
    pub exclusions: Vec<(usize, usize)>,
    /// Only matters when `has_breakdown`.
    pub attribution: Attribution,
    pub has_breakdown: bool,
    /// Bit k = step k is `optionalInFunnel` (ordered/strict only).
    pub optional_steps: u32,
}

/// The result of one actor for one breakdown value.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Attributed breakdown value id (0 when no breakdown or null).
    pub bd: u32,
    /// Furthest step reached, 1..=num_steps (never 0: actors not entering or excluded produce no
    /// outcome).
    pub level: usize,
    /// Timestamps (µs) of steps 0..level of the chosen chain (`len == level`). A skipped optional
    /// step repeats the previous timestamp. Unordered funnels: the entry timestamps, sorted.
    pub step_ts: Vec<i64>,
    /// Bit k = optional step k was skipped by the chosen chain (always 0 without optional steps).
    pub skipped: u32,
}

/// Evaluate one actor. `events` may be in any order; the function sorts it (see the module docs for
/// the tie rules). Returns no outcome when the actor never did step 0 or is excluded; one outcome
/// normally; several for `AllEvents` / `Step(i)` attribution when the actor's events carry several
/// values (sorted by `bd`).
pub fn evaluate(spec: &Spec, events: &mut [Ev]) -> Vec<Outcome> {
    let cx = Cx::new(spec);
    let mut out = Vec::new();
    if cx.n == 0 {
        return out;
    }
    let mut scratch = Scratch::default();
    let attribution = spec.has_breakdown.then_some(spec.attribution);
    for_each_run(&cx, attribution, events, |evs, attr, bd| {
        let found = match cx.order {
            Order::Unordered => {
                unordered_run(&cx, evs, attr, &mut scratch.next).map(|(level, ts)| Outcome {
                    bd,
                    level,
                    step_ts: ts[..level].to_vec(),
                    skipped: 0,
                })
            }
            _ => ordered_run(&cx, evs, attr, &mut scratch.slots).map(|(level, c)| Outcome {
                bd,
                level,
                step_ts: c.ts[..level].to_vec(),
                skipped: c.skipped & step_mask(level),
            }),
        };
        out.extend(found);
    });
    out
}

/// Funnel trends (viz "trends", docs/funnels.md#funnel-trends) without breakdown: one
/// `(bucket, level)` per entry bucket, sorted by bucket. `bucket_of(ts)` maps an event timestamp to
/// its bucket key (the interval start).
///
/// The last step of `spec` is the conversion target, so pass a spec truncated to
/// `funnelToStep + 1` steps, or use [`evaluate_trends_detailed`], which takes `to_step`. A bucket
/// counts as "reached from" when `level >= funnelFromStep + 1` and as converted when
/// `level == num_steps`. Breakdown fields of `spec` are ignored here.
pub fn evaluate_trends(
    spec: &Spec,
    events: &mut [Ev],
    bucket_of: &dyn Fn(i64) -> i64,
) -> Vec<(i64, usize)> {
    let to_step = spec.num_steps.clamp(1, MAX_STEPS) - 1;
    trends_impl(spec, events, bucket_of, to_step, false)
        .into_iter()
        .map(|t| (t.bucket, t.level))
        .collect()
}

/// One actor's result for one trends bucket and breakdown value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrendOutcome {
    pub bucket: i64,
    pub bd: u32,
    /// Furthest step reached by the bucket's entries; `>= to_step + 1` means converted.
    pub level: usize,
}

/// Funnel trends with PostHog's newest UDF semantics, breakdown attribution included (same value
/// rules as [`evaluate`]), converting at the 0-based `to_step` (`funnelToStep`, default
/// `num_steps - 1`). Sorted by `(bucket, bd)`.
///
/// Ordered/strict: each step-0 event opens (or restarts) the entry of *its own* bucket; a bucket
/// keeps one state whose later step-0 events restart the chain, and it stops at its first conversion
/// (level `to_step + 1`; later step-0 events of that bucket are ignored). Exclusions inside the
/// window mark the bucket: an excluded bucket that never progressed is dropped ("partial"), and if
/// any bucket progressed through an excluded chain ("full"), every non-converted bucket of the actor
/// is dropped while converted ones stay. Unordered: the entry of a window is its oldest queued event,
/// a bucket keeps the most steps seen, exclusions clear the queues. The caller counts
/// `reached_from` as `level >= funnelFromStep + 1` and `reached_to` as `level >= to_step + 1`.
pub fn evaluate_trends_detailed(
    spec: &Spec,
    events: &mut [Ev],
    bucket_of: &dyn Fn(i64) -> i64,
    to_step: usize,
) -> Vec<TrendOutcome> {
    trends_impl(spec, events, bucket_of, to_step, spec.has_breakdown)
}

/// Modes of ClickHouse `windowFunnel` (`strict_once` and `allow_reentry` are not supported).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowFunnelMode {
    pub strict_order: bool,
    pub strict_increase: bool,
    pub strict_deduplication: bool,
}

/// ClickHouse `windowFunnel(window, modes…)(ts, cond1…condN)` (docs/funnels.md#windowfunnel) for
/// the generic aggregate: `events` are `(ts, mask)` with bit k = condition k; returns the level
/// 0..=n. The window is measured from the chain's first step (`ts <= first + window`).
///
/// Matches ClickHouse 26.9 (checked with chdb): rows are expanded into one entry per matched
/// condition and sorted by `(ts, condition)`, so at one timestamp lower conditions come first and a
/// single row matching conditions 1 and 2 reaches level 2 (a "later step first" reading does not
/// match the source). In `strict_order` mode rows matching nothing are entries that come before all
/// others at their timestamp and stop the search once a chain has started, as does a step whose
/// previous level was never reached. `strict_deduplication`: a repeated condition (other than the
/// first) stops the search, and the level found so far is returned (the post-#37177 behaviour).
/// `strict_increase`: a step must be strictly later than the previous one.
pub fn window_funnel(
    window: i64,
    num_conditions: usize,
    events: &mut [(i64, u32)],
    mode: WindowFunnelMode,
) -> u32 {
    let n = num_conditions.min(MAX_STEPS);
    if n == 0 || events.is_empty() {
        return 0;
    }
    let full = step_mask(n);
    events.sort_unstable_by_key(|e| e.0);
    let mut reached: u32 = 0;
    let mut first = [0i64; MAX_STEPS];
    let mut last = [0i64; MAX_STEPS];
    let mut started = false;
    let mut i = 0;
    'scan: while i < events.len() {
        let ts = events[i].0;
        let mut j = i + 1;
        while j < events.len() && events[j].0 == ts {
            j += 1;
        }
        let group = &events[i..j];
        i = j;
        if mode.strict_order && started && group.iter().any(|e| e.1 & full == 0) {
            break;
        }
        let union = group.iter().fold(0, |m, e| m | e.1) & full;
        for c in bits_ascending(union) {
            for _ in group.iter().filter(|e| e.1 & (1 << c) != 0) {
                if c == 0 {
                    first[0] = ts;
                    last[0] = ts;
                    reached |= 1;
                    started = true;
                } else if (mode.strict_deduplication && reached & (1 << c) != 0)
                    || (mode.strict_order && started && reached & (1 << (c - 1)) == 0)
                {
                    // A repeated condition, or a step whose previous level was never reached.
                    break 'scan;
                } else if reached & (1 << (c - 1)) != 0 {
                    let f = first[c - 1];
                    let ok = within(ts, f, window) && (!mode.strict_increase || last[c - 1] < ts);
                    if ok {
                        first[c] = f;
                        last[c] = ts;
                        reached |= 1 << c;
                        if c + 1 == n {
                            return n as u32;
                        }
                    }
                }
            }
        }
    }
    32 - reached.leading_zeros()
}

/// Accumulates outcomes of all actors into PostHog's step results: counts, and average/median
/// conversion times over positive values only, per breakdown value.
#[derive(Debug, Clone)]
pub struct Tally {
    num_steps: usize,
    by_bd: BTreeMap<u32, Acc>,
}

/// One breakdown series of the funnel result.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesResult {
    /// Breakdown value id; [`OTHER_BD`] for the merged "Other" series.
    pub bd: u32,
    pub steps: Vec<StepResult>,
}

/// One step of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct StepResult {
    pub count: u64,
    /// Seconds from the previous step; `None` for step 0 or when no actor has a positive time.
    pub average_conversion_time: Option<f64>,
    pub median_conversion_time: Option<f64>,
}

#[derive(Debug, Clone)]
struct Acc {
    counts: Vec<u64>,
    /// Raw positive conversion times (seconds) per step, kept so merged series stay exact.
    times: Vec<Vec<f64>>,
}

impl Acc {
    fn new(n: usize) -> Self {
        Acc {
            counts: vec![0; n],
            times: vec![Vec::new(); n],
        }
    }

    fn merge(&mut self, other: Acc) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        for (a, b) in self.times.iter_mut().zip(other.times) {
            a.extend(b);
        }
    }

    fn result(self, bd: u32) -> SeriesResult {
        let steps = self
            .counts
            .into_iter()
            .zip(self.times)
            .enumerate()
            .map(|(k, (count, mut times))| {
                let (average, median) = if k == 0 {
                    (None, None)
                } else {
                    (mean(&times), median(&mut times))
                };
                StepResult {
                    count,
                    average_conversion_time: average,
                    median_conversion_time: median,
                }
            })
            .collect();
        SeriesResult { bd, steps }
    }
}

impl Tally {
    pub fn new(num_steps: usize) -> Self {
        Tally {
            num_steps: num_steps.min(MAX_STEPS),
            by_bd: BTreeMap::new(),
        }
    }

    /// Count one outcome: at every step its chain did (skipped optional steps are not counted), and
    /// its positive step-to-step times.
    pub fn add(&mut self, o: &Outcome) {
        let n = self.num_steps;
        let acc = self.by_bd.entry(o.bd).or_insert_with(|| Acc::new(n));
        let level = o.level.min(n);
        for k in 0..level {
            if o.skipped & (1 << k) == 0 {
                acc.counts[k] += 1;
            }
        }
        let reached = level.min(o.step_ts.len());
        for k in 1..reached {
            let t = (o.step_ts[k] as i128 - o.step_ts[k - 1] as i128) as f64 / 1e6;
            if t > 0.0 {
                acc.times[k].push(t);
            }
        }
    }

    /// Add another tally's outcomes after this one's (kept conversion times keep that order).
    pub fn merge(&mut self, other: Tally) {
        let n = self.num_steps;
        for (bd, acc) in other.by_bd {
            self.by_bd
                .entry(bd)
                .or_insert_with(|| Acc::new(n))
                .merge(acc);
        }
    }

    /// Breakdown values ranked as docs/funnels.md#breakdowns-and-attribution says (deepest step
    /// count desc, then the previous step, …; ties by `bd` ascending), the top `limit` kept in that
    /// order, the rest merged into one last series with `bd = OTHER_BD` ("Other"), unless
    /// `no_other` (cohort breakdowns: all kept) or `limit` is `None`. Merged counts add up and
    /// merged times are recomputed from the raw times. No outcome at all gives an empty list
    /// (PostHog's `results: []`).
    pub fn finish(self, limit: Option<usize>, no_other: bool) -> Vec<SeriesResult> {
        let n = self.num_steps;
        let mut ranked: Vec<(u32, Acc)> = self.by_bd.into_iter().collect();
        ranked.sort_by(|(a_bd, a), (b_bd, b)| {
            (0..n)
                .rev()
                .map(|k| b.counts[k].cmp(&a.counts[k]))
                .find(|o| o.is_ne())
                .unwrap_or_else(|| a_bd.cmp(b_bd))
        });
        let keep = match limit {
            Some(l) if !no_other => l.min(ranked.len()),
            _ => ranked.len(),
        };
        let rest = ranked.split_off(keep);
        let mut out: Vec<SeriesResult> =
            ranked.into_iter().map(|(bd, acc)| acc.result(bd)).collect();
        if !rest.is_empty() {
            let mut other = Acc::new(n);
            for (_, acc) in rest {
                other.merge(acc);
            }
            out.push(other.result(OTHER_BD));
        }
        out
    }
}

/// `time_to_convert` histogram (docs/funnels.md#time-to-convert), as PostHog's query computes it:
/// bin count = `bin_count` clamped to 1..=90, else `ceil(cbrt(converters))` clamped to 1..=60 (a
/// perfect cube counts as exact); `min = floor(min time)`, `max = ceil(max time)`, width =
/// `ceil((max - min) / bins)` or 60 s when that is 0; `bins + 1` entries starting at
/// `min + i * width`; a time `t` counts in entry `floor((t - min) / width)`. No converters gives
/// zero counts from 0 (min = max = 0, width 60). Non-finite times are ignored. F44: `[60, 360]` →
/// `[(60, 1), (210, 0), (360, 1)]`.
pub fn time_to_convert_bins(times: &[f64], bin_count: Option<u32>) -> Vec<(f64, u64)> {
    let finite = || times.iter().copied().filter(|t| t.is_finite());
    let count = finite().count();
    let bins = match bin_count {
        Some(b) => b.clamp(1, 90) as usize,
        None => exact_cbrt_ceil(count).clamp(1, 60),
    };
    let (min, max) = finite()
        .fold(None, |acc: Option<(f64, f64)>, t| match acc {
            None => Some((t, t)),
            Some((lo, hi)) => Some((lo.min(t), hi.max(t))),
        })
        .map_or((0.0, 0.0), |(lo, hi)| (lo.floor(), hi.ceil()));
    let raw = ((max - min) / bins as f64).ceil();
    let width = if raw > 0.0 { raw } else { 60.0 };
    let mut out: Vec<(f64, u64)> = (0..=bins)
        .map(|i| ((min + i as f64 * width).round(), 0))
        .collect();
    for t in finite() {
        let idx = ((t - min) / width).floor();
        if idx >= 0.0 && idx <= bins as f64 {
            out[idx as usize].1 += 1;
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// Shared context
// ------------------------------------------------------------------------------------------------

struct Cx {
    n: usize,
    order: Order,
    full: u32,
    window: i64,
    optional: u32,
    /// Per exclusion j: the chain slots (number of completed steps) it poisons, `from+1..=to`.
    excl_marks: [u32; MAX_STEPS],
    /// Bits of the exclusions that exist.
    excl_any: u32,
}

impl Cx {
    fn new(spec: &Spec) -> Self {
        let n = spec.num_steps.min(MAX_STEPS);
        let mut excl_marks = [0u32; MAX_STEPS];
        for (mark, &(from, to)) in excl_marks.iter_mut().zip(&spec.exclusions) {
            let hi = to.min(n.saturating_sub(1));
            for i in from.saturating_add(1)..=hi {
                *mark |= 1 << i;
            }
        }
        let optional = match spec.order {
            Order::Unordered => 0,
            _ => spec.optional_steps & step_mask(n) & !1,
        };
        Cx {
            n,
            order: spec.order,
            full: step_mask(n),
            window: spec.window_us.max(0),
            optional,
            excl_marks,
            excl_any: step_mask(spec.exclusions.len().min(MAX_STEPS)),
        }
    }

    fn strict(&self) -> bool {
        self.order == Order::Strict
    }

    fn marks(&self, excl: u32) -> u32 {
        bits_ascending(excl & self.excl_any).fold(0, |m, j| m | self.excl_marks[j])
    }

    fn is_exclusion(&self, e: &Ev) -> bool {
        match self.order {
            Order::Unordered => e.excl & self.excl_any != 0,
            _ => self.marks(e.excl) != 0,
        }
    }

    /// Whether the event takes part at all (PostHog's UDF input).
    fn relevant(&self, e: &Ev) -> bool {
        self.strict() || e.steps & self.full != 0 || self.is_exclusion(e)
    }
}

#[derive(Default)]
struct Scratch {
    slots: Vec<Chain>,
    next: Vec<u32>,
}

/// Sorts `events` and calls `run(events, step_constraint, bd)` once per attributed value.
fn for_each_run(
    cx: &Cx,
    attribution: Option<Attribution>,
    events: &mut [Ev],
    mut run: impl FnMut(&[Ev], Option<(usize, u32)>, u32),
) {
    match attribution {
        Some(Attribution::AllEvents) => {
            events.sort_unstable_by_key(|e| (e.bd, e.ts, e.steps, e.excl));
            for chunk in events.chunk_by(|a, b| a.bd == b.bd) {
                run(chunk, None, chunk[0].bd);
            }
        }
        Some(Attribution::Step(i)) => {
            sort_events(events);
            let mut values: Vec<u32> = events
                .iter()
                .filter(|e| cx.relevant(e))
                .filter(|e| cx.order == Order::Unordered || (i < cx.n && e.steps & (1 << i) != 0))
                .map(|e| e.bd)
                .collect();
            values.sort_unstable();
            values.dedup();
            for v in values {
                run(events, Some((i, v)), v);
            }
        }
        other => {
            sort_events(events);
            let mut touched = events.iter().filter(|e| cx.relevant(e) && e.bd != 0);
            let bd = match other {
                Some(Attribution::FirstTouch) => touched.next().map_or(0, |e| e.bd),
                Some(Attribution::LastTouch) => touched.next_back().map_or(0, |e| e.bd),
                _ => 0,
            };
            run(events, None, bd);
        }
    }
}

fn sort_events(events: &mut [Ev]) {
    events.sort_unstable_by_key(|e| (e.ts, e.steps, e.excl, e.bd));
}

fn step_mask(n: usize) -> u32 {
    if n >= 32 { u32::MAX } else { (1u32 << n) - 1 }
}

/// `ts - start <= window`, without overflow.
fn within(ts: i64, start: i64, window: i64) -> bool {
    ts as i128 - start as i128 <= window as i128
}

fn bits_ascending(mut m: u32) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (m != 0).then(|| {
            let b = m.trailing_zeros() as usize;
            m &= m - 1;
            b
        })
    })
}

fn bits_descending(mut m: u32) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (m != 0).then(|| {
            let b = 31 - m.leading_zeros() as usize;
            m &= !(1 << b);
            b
        })
    })
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// `ceil(cbrt(count))`, exact for perfect cubes.
fn exact_cbrt_ceil(count: usize) -> usize {
    let c = (count as f64).cbrt();
    let r = c.round();
    if r * r * r == count as f64 {
        r as usize
    } else {
        c.ceil() as usize
    }
}

// ------------------------------------------------------------------------------------------------
// Ordered and strict funnels
// ------------------------------------------------------------------------------------------------

/// A candidate chain: the slot index it sits in is the number of steps it completed.
#[derive(Clone, Copy)]
struct Chain {
    present: bool,
    excluded: bool,
    /// Step-0 timestamp: the window is measured from it.
    start: i64,
    skipped: u32,
    ts: [i64; MAX_STEPS],
    /// Index (in the run's slice) of the event that filled each step, `NONE` when skipped.
    ev: [u32; MAX_STEPS],
}

const EMPTY_CHAIN: Chain = Chain {
    present: false,
    excluded: false,
    start: 0,
    skipped: 0,
    ts: [0; MAX_STEPS],
    ev: [NONE; MAX_STEPS],
};

struct Ordered<'a> {
    cx: &'a Cx,
    /// `slots[k]` = latest chain that completed k steps; `slots[0]` is the virtual chain of the
    /// current timestamp group.
    slots: &'a mut [Chain],
    attr: Option<(usize, u32)>,
    max_level: usize,
    max: Chain,
}

/// PostHog's ordered/strict UDF for one actor and one attribution value: the furthest level and the
/// chain that first reached it, or `None` when the actor never entered or is excluded.
fn ordered_run(
    cx: &Cx,
    evs: &[Ev],
    attr: Option<(usize, u32)>,
    slots: &mut Vec<Chain>,
) -> Option<(usize, Chain)> {
    let n = cx.n;
    if slots.len() == n + 1 {
        slots.iter_mut().for_each(|c| c.present = false);
    } else {
        slots.clear();
        slots.resize(n + 1, EMPTY_CHAIN);
    }
    let mut st = Ordered {
        cx,
        slots: &mut slots[..],
        attr,
        max_level: 0,
        max: EMPTY_CHAIN,
    };
    let mut i = 0;
    while i < evs.len() {
        let ts = evs[i].ts;
        let mut j = i + 1;
        while j < evs.len() && evs[j].ts == ts {
            j += 1;
        }
        st.group(evs, i, j);
        if st.slots[n].present {
            break;
        }
        i = j;
    }
    (st.max_level > 0 && !st.max.excluded).then_some((st.max_level, st.max))
}

impl Ordered<'_> {
    fn group(&mut self, evs: &[Ev], i: usize, j: usize) {
        let cx = self.cx;
        let entry = &mut self.slots[0];
        entry.present = true;
        entry.excluded = false;
        entry.start = evs[i].ts;
        entry.skipped = 0;
        let mut count = 0;
        let mut key = None;
        let mut all_equal = true;
        let mut union = 0;
        for e in evs[i..j].iter().filter(|e| cx.relevant(e)) {
            count += 1;
            let k = (e.steps & cx.full, cx.marks(e.excl));
            union |= k.0;
            match key {
                None => key = Some(k),
                Some(first) => all_equal &= first == k,
            }
        }
        if count == 0 {
            return;
        }
        if all_equal {
            for (off, e) in evs[i..j].iter().enumerate() {
                if cx.relevant(e) {
                    self.process(e, (i + off) as u32);
                }
            }
        } else {
            // Different events at one instant: one entry per matched step, by step number;
            // exclusions and strict resets are ignored, no event is used twice in a chain.
            for b in bits_ascending(union) {
                for (off, e) in evs[i..j].iter().enumerate() {
                    if e.steps & (1 << b) != 0 {
                        self.step(e, (i + off) as u32, b + 1, false, true);
                    }
                }
            }
        }
    }

    fn process(&mut self, e: &Ev, idx: u32) {
        let steps = e.steps & self.cx.full;
        for i in bits_descending(self.cx.marks(e.excl)) {
            self.step(e, idx, i + 1, true, false);
        }
        for b in bits_descending(steps) {
            self.step(e, idx, b + 1, false, false);
        }
        if self.cx.strict() {
            for s in 1..=self.cx.n {
                if steps & (1 << (s - 1)) == 0 {
                    self.slots[s].present = false;
                }
            }
        }
    }

    fn in_window(&self, p: usize, ts: i64) -> bool {
        let c = &self.slots[p];
        c.present && within(ts, c.start, self.cx.window)
    }

    /// Event `e` as 1-based step `s` (or, when `exclusion`, as the marker poisoning slot `s - 1`).
    fn step(&mut self, e: &Ev, idx: u32, s: usize, exclusion: bool, multi: bool) {
        let cx = self.cx;
        let mut p = s - 1;
        let mut inw = self.in_window(p, e.ts);
        while p > 0 && !inw && cx.optional & (1 << (p - 1)) != 0 {
            p -= 1;
            inw = self.in_window(p, e.ts);
        }
        if !inw {
            return;
        }
        let prev = &self.slots[p];
        if self.slots[s].present && self.slots[s].start == prev.start {
            return; // this chain already reached step s
        }
        if exclusion {
            if !prev.excluded {
                self.slots[p].excluded = true;
                if self.max_level == p && within(e.ts, self.max.start, cx.window) {
                    self.max.excluded = true;
                }
            }
            return;
        }
        if self.attr.is_some_and(|(i, v)| i == s - 1 && e.bd != v) {
            return;
        }
        if multi && prev.ev[..p].contains(&idx) {
            return;
        }
        let update_max = s > self.max_level || (s == self.max_level && self.max.excluded);
        let (done, rest) = self.slots.split_at_mut(s);
        let prev = &done[p];
        if !prev.excluded {
            extend_chain(&mut rest[0], prev, p, s, e.ts, idx);
            if update_max {
                copy_chain(&mut self.max, &rest[0], s);
            }
        } else if update_max {
            extend_chain(&mut self.max, prev, p, s, e.ts, idx);
        }
        if update_max {
            self.max_level = s;
        }
    }
}

/// Writes into `dst` the chain `prev` (which completed `p` steps) extended to step `s` by the
/// event at `ts`, skipping the optional steps in between. Only the used prefix is copied.
fn extend_chain(dst: &mut Chain, prev: &Chain, p: usize, s: usize, ts: i64, idx: u32) {
    copy_chain(dst, prev, p);
    dst.present = true;
    let carry = if p > 0 { prev.ts[p - 1] } else { ts };
    for k in p..s - 1 {
        dst.ts[k] = carry;
        dst.ev[k] = NONE;
        dst.skipped |= 1 << k;
    }
    dst.ts[s - 1] = ts;
    dst.ev[s - 1] = idx;
}

/// Copies the flags and the first `len` steps of `src` into `dst`.
fn copy_chain(dst: &mut Chain, src: &Chain, len: usize) {
    dst.present = src.present;
    dst.excluded = src.excluded;
    dst.start = src.start;
    dst.skipped = src.skipped & step_mask(len);
    dst.ts[..len].copy_from_slice(&src.ts[..len]);
    dst.ev[..len].copy_from_slice(&src.ev[..len]);
}

// ------------------------------------------------------------------------------------------------
// Unordered funnels
// ------------------------------------------------------------------------------------------------

/// One FIFO queue of event indices per step, linked through a shared `next` array.
struct Queues {
    n: usize,
    head: [u32; MAX_STEPS],
    tail: [u32; MAX_STEPS],
    completed: usize,
}

impl Queues {
    fn new(n: usize) -> Self {
        Queues {
            n,
            head: [NONE; MAX_STEPS],
            tail: [NONE; MAX_STEPS],
            completed: 0,
        }
    }

    fn clear(&mut self) {
        self.head = [NONE; MAX_STEPS];
        self.tail = [NONE; MAX_STEPS];
        self.completed = 0;
    }

    /// The step whose front entry is oldest (lowest step on ties) and that timestamp.
    fn oldest(&self, evs: &[Ev]) -> Option<(usize, i64)> {
        let mut best: Option<(usize, i64)> = None;
        for s in 0..self.n {
            let h = self.head[s];
            if h != NONE {
                let t = evs[h as usize].ts;
                if best.is_none_or(|(_, bt)| t < bt) {
                    best = Some((s, t));
                }
            }
        }
        best
    }

    fn pop(&mut self, s: usize, next: &[u32]) {
        let h = self.head[s];
        self.head[s] = next[h as usize];
        if self.head[s] == NONE {
            self.tail[s] = NONE;
            self.completed -= 1;
        }
    }

    fn push(&mut self, s: usize, k: u32, next: &mut [u32]) {
        next[k as usize] = NONE;
        if self.tail[s] == NONE {
            self.head[s] = k;
            self.completed += 1;
        } else {
            next[self.tail[s] as usize] = k;
        }
        self.tail[s] = k;
    }

    /// Of the steps in `steps`, the one whose latest entry is oldest (empty first, lowest on ties).
    fn choose(&self, evs: &[Ev], steps: u32) -> usize {
        let mut best = (usize::MAX, i64::MAX);
        for s in bits_ascending(steps) {
            let t = self.tail[s];
            let key = if t == NONE {
                i64::MIN
            } else {
                evs[t as usize].ts
            };
            if best.0 == usize::MAX || key < best.1 {
                best = (s, key);
            }
        }
        best.0
    }

    /// Sorted front timestamps of the non-empty queues.
    fn fronts(&self, evs: &[Ev], out: &mut [i64; MAX_STEPS]) {
        let mut k = 0;
        for s in 0..self.n {
            if self.head[s] != NONE {
                out[k] = evs[self.head[s] as usize].ts;
                k += 1;
            }
        }
        out[..k].sort_unstable();
    }
}

/// PostHog's unordered UDF for one actor and one attribution value: the most distinct steps seen
/// within one window and their (sorted) entry timestamps, recorded when the queues change (eviction,
/// completion, last event); an exclusion clears unrecorded progress.
fn unordered_run(
    cx: &Cx,
    evs: &[Ev],
    attr: Option<(usize, u32)>,
    next: &mut Vec<u32>,
) -> Option<(usize, [i64; MAX_STEPS])> {
    let n = cx.n;
    let last = evs.iter().rposition(|e| cx.relevant(e))?;
    next.clear();
    next.resize(evs.len(), NONE);
    let mut q = Queues::new(n);
    let mut max_level = 0;
    let mut max_ts = [0i64; MAX_STEPS];
    let mut record = |q: &Queues, max_level: &mut usize| {
        if q.completed > *max_level {
            *max_level = q.completed;
            q.fronts(evs, &mut max_ts);
        }
    };
    for (k, e) in evs.iter().enumerate().take(last + 1) {
        if !cx.relevant(e) {
            continue;
        }
        while let Some((s, t)) = q.oldest(evs) {
            if q.completed < n && within(e.ts, t, cx.window) {
                break;
            }
            record(&q, &mut max_level);
            q.pop(s, next);
        }
        if cx.is_exclusion(e) {
            q.clear();
        }
        let steps = e.steps & cx.full;
        if steps != 0 {
            let s = q.choose(evs, steps);
            let blocked = attr.is_some_and(|(i, v)| q.completed == i && e.bd != v);
            if !blocked {
                q.push(s, k as u32, next);
            }
        }
        if max_level == n {
            break;
        }
        if k == last {
            record(&q, &mut max_level);
        }
    }
    (max_level > 0).then_some((max_level, max_ts))
}

// ------------------------------------------------------------------------------------------------
// Funnel trends
// ------------------------------------------------------------------------------------------------

fn trends_impl(
    spec: &Spec,
    events: &mut [Ev],
    bucket_of: &dyn Fn(i64) -> i64,
    to_step: usize,
    breakdown: bool,
) -> Vec<TrendOutcome> {
    let cx = Cx::new(spec);
    let mut out = Vec::new();
    if cx.n == 0 {
        return out;
    }
    let to_level = (to_step + 1).clamp(1, cx.n);
    let attribution = breakdown.then_some(spec.attribution);
    let mut next = Vec::new();
    let mut buckets = Vec::new();
    let mut intervals = Vec::new();
    let mut slots = Vec::new();
    for_each_run(&cx, attribution, events, |evs, attr, bd| match cx.order {
        Order::Unordered => {
            let mut found = Vec::new();
            unordered_trend_run(
                &cx,
                evs,
                attr,
                bucket_of,
                &mut next,
                &mut buckets,
                &mut found,
            );
            out.extend(
                found
                    .into_iter()
                    .map(|(bucket, level)| TrendOutcome { bucket, bd, level }),
            );
        }
        _ => {
            let mut run = TrendRun {
                cx: &cx,
                attr,
                to_level,
                intervals: &mut intervals,
                slots: &mut slots,
            };
            run.run(evs, bucket_of);
            let fully_excluded = intervals
                .iter()
                .any(|iv| !iv.converted && iv.max_excl == Excl::Full);
            for iv in intervals.iter() {
                if iv.converted {
                    out.push(TrendOutcome {
                        bucket: iv.bucket,
                        bd,
                        level: to_level,
                    });
                } else if !fully_excluded && iv.max_excl != Excl::Partial {
                    out.push(TrendOutcome {
                        bucket: iv.bucket,
                        bd,
                        level: iv.max_level,
                    });
                }
            }
        }
    });
    out.sort_unstable_by_key(|t| (t.bucket, t.bd));
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Excl {
    Not,
    /// An exclusion hit the bucket's furthest chain.
    Partial,
    /// The bucket progressed through an excluded chain.
    Full,
}

#[derive(Debug, Clone, Copy, Default)]
struct TSlot {
    present: bool,
    excluded: bool,
    start: i64,
}

struct Interval {
    bucket: i64,
    converted: bool,
    max_level: usize,
    max_ts: i64,
    max_excl: Excl,
    /// This bucket's chain slots are `slots[base..base + n + 1]`.
    base: usize,
}

struct TrendRun<'a> {
    cx: &'a Cx,
    attr: Option<(usize, u32)>,
    to_level: usize,
    intervals: &'a mut Vec<Interval>,
    slots: &'a mut Vec<TSlot>,
}

impl TrendRun<'_> {
    fn run(&mut self, evs: &[Ev], bucket_of: &dyn Fn(i64) -> i64) {
        self.intervals.clear();
        self.slots.clear();
        let cx = self.cx;
        for e in evs.iter().filter(|e| cx.relevant(e)) {
            let steps = e.steps & cx.full;
            for i in bits_descending(cx.marks(e.excl)) {
                self.step(e, i + 1, true, bucket_of);
            }
            for b in bits_descending(steps) {
                self.step(e, b + 1, false, bucket_of);
            }
            if cx.strict() {
                for iv in self.intervals.iter().filter(|iv| !iv.converted) {
                    for s in 1..=cx.n {
                        if steps & (1 << (s - 1)) == 0 {
                            self.slots[iv.base + s].present = false;
                        }
                    }
                }
            }
        }
    }

    fn step(&mut self, e: &Ev, s: usize, exclusion: bool, bucket_of: &dyn Fn(i64) -> i64) {
        let cx = self.cx;
        let n = cx.n;
        let unmatched = self.attr.is_some_and(|(i, v)| i == s - 1 && e.bd != v);
        if s == 1 {
            if unmatched {
                return;
            }
            let bucket = bucket_of(e.ts);
            let fresh_at = match self.intervals.iter().position(|iv| iv.bucket == bucket) {
                Some(k) if self.intervals[k].converted => return,
                Some(k) => {
                    let iv = &self.intervals[k];
                    if iv.max_level == 1 && iv.max_excl != Excl::Not {
                        Some(k)
                    } else {
                        self.slots[iv.base + 1] = TSlot {
                            present: true,
                            excluded: false,
                            start: e.ts,
                        };
                        None
                    }
                }
                None => {
                    let base = self.slots.len();
                    self.slots.resize(base + n + 1, TSlot::default());
                    self.intervals.push(Interval {
                        bucket,
                        converted: false,
                        max_level: 0,
                        max_ts: 0,
                        max_excl: Excl::Not,
                        base,
                    });
                    Some(self.intervals.len() - 1)
                }
            };
            if let Some(k) = fresh_at {
                let iv = &mut self.intervals[k];
                self.slots[iv.base..iv.base + n + 1].fill(TSlot::default());
                self.slots[iv.base + 1] = TSlot {
                    present: true,
                    excluded: false,
                    start: e.ts,
                };
                iv.max_level = 1;
                iv.max_ts = e.ts;
                iv.max_excl = Excl::Not;
                iv.converted = self.to_level == 1;
            }
            return;
        }
        for iv in self.intervals.iter_mut().filter(|iv| !iv.converted) {
            let prev = self.slots[iv.base + s - 1];
            let cur = self.slots[iv.base + s];
            if !prev.present || !within(e.ts, prev.start, cx.window) {
                continue;
            }
            if cur.present && cur.start == prev.start {
                continue;
            }
            if exclusion {
                if !prev.excluded {
                    self.slots[iv.base + s - 1].excluded = true;
                    if iv.max_level == s - 1 && within(e.ts, iv.max_ts, cx.window) {
                        iv.max_excl = Excl::Partial;
                    }
                }
                continue;
            }
            if unmatched {
                continue;
            }
            if !prev.excluded {
                self.slots[iv.base + s] = TSlot {
                    present: true,
                    excluded: false,
                    start: prev.start,
                };
            }
            if self.slots[iv.base + self.to_level].present {
                iv.converted = true;
            } else if s > iv.max_level || (s == iv.max_level && iv.max_excl == Excl::Partial) {
                iv.max_level = s;
                iv.max_ts = e.ts;
                iv.max_excl = if prev.excluded { Excl::Full } else { Excl::Not };
            }
        }
    }
}

/// Unordered funnel trends for one actor and value: `(bucket, most steps)` per entry bucket, the
/// entry of a window being its oldest queued event.
fn unordered_trend_run(
    cx: &Cx,
    evs: &[Ev],
    attr: Option<(usize, u32)>,
    bucket_of: &dyn Fn(i64) -> i64,
    next: &mut Vec<u32>,
    buckets: &mut Vec<i64>,
    found: &mut Vec<(i64, usize)>,
) {
    let n = cx.n;
    let Some(last) = evs.iter().rposition(|e| cx.relevant(e)) else {
        return;
    };
    next.clear();
    next.resize(evs.len(), NONE);
    buckets.clear();
    buckets.resize(evs.len(), 0);
    let mut q = Queues::new(n);
    let record = |found: &mut Vec<(i64, usize)>, bucket: i64, completed: usize| match found
        .iter_mut()
        .find(|(b, _)| *b == bucket)
    {
        Some(entry) => entry.1 = entry.1.max(completed),
        None => found.push((bucket, completed)),
    };
    for (k, e) in evs.iter().enumerate().take(last + 1) {
        if !cx.relevant(e) {
            continue;
        }
        while let Some((s, t)) = q.oldest(evs) {
            if q.completed < n && within(e.ts, t, cx.window) {
                break;
            }
            let h = q.head[s] as usize;
            record(found, buckets[h], q.completed);
            q.pop(s, next);
        }
        if cx.is_exclusion(e) {
            q.clear();
        }
        let steps = e.steps & cx.full;
        if steps != 0 {
            let s = q.choose(evs, steps);
            let blocked = attr.is_some_and(|(i, v)| q.completed == i && e.bd != v);
            if !blocked {
                buckets[k] = bucket_of(e.ts);
                q.push(s, k as u32, next);
            }
        }
        if k == last {
            while let Some((s, _)) = q.oldest(evs) {
                let h = q.head[s] as usize;
                record(found, buckets[h], q.completed);
                q.pop(s, next);
            }
        }
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
