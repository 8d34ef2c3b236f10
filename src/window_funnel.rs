//! `insights.window_funnel`: a ClickHouse `windowFunnel`-style aggregate for any table.
//!
//! ```sql
//! SELECT user_id, insights.window_funnel('14 days', ts, event = 'signup', event = 'pay')
//!   FROM my_events GROUP BY user_id;
//! SELECT insights.window_funnel('1 hour', 'strict_order', ts, a, b, c) FROM … GROUP BY …;
//! ```
//!
//! Returns the furthest step (0..=n) reached within `window`, measured from the first step's
//! timestamp, as ClickHouse does. The state is a plain `(timestamp, condition mask)` list kept in
//! Rust memory owned by the aggregate context (dropped with it, also on ERROR); merging two states
//! concatenates their lists and the final function sorts once, so the result does not depend on
//! how rows were split between parallel workers (or Citus shards): PARALLEL SAFE.
//!
//! The per-actor algorithm lives in `pg_insights_core::engines::funnels::engine::window_funnel`.

use pg_insights_core::SqlState;
use pg_insights_core::engines::funnels::engine::{WindowFunnelMode, window_funnel};
use pgrx::prelude::*;
use pgrx::{Internal, VariadicArray};

use crate::agg::{Reader, Writer, in_agg_context};
use crate::errors::raise;

/// At most this many conditions, as in ClickHouse: the mask is a `u32`.
const MAX_CONDITIONS: usize = 32;

#[derive(Default)]
struct WindowFunnelState {
    window_us: i64,
    conditions: u8,
    mode: u8,
    events: Vec<(i64, u32)>,
}

fn mode_bits(mode: &str) -> u8 {
    let mut bits = 0u8;
    for part in mode.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        bits |= match part {
            "strict_order" => 1,
            "strict_increase" => 2,
            "strict_deduplication" => 4,
            _ => raise(
                SqlState::InvalidParameter,
                &format!("unknown window_funnel mode \"{part}\""),
                Some("mode"),
                Some(
                    "Use a comma-separated list of strict_order, strict_increase, strict_deduplication.",
                ),
            ),
        };
    }
    bits
}

fn mode_of(bits: u8) -> WindowFunnelMode {
    WindowFunnelMode {
        strict_order: bits & 1 != 0,
        strict_increase: bits & 2 != 0,
        strict_deduplication: bits & 4 != 0,
    }
}

fn window_micros(window: &Interval) -> i64 {
    let us = window.as_micros();
    if us < 0 {
        raise(
            SqlState::InvalidParameter,
            "window_funnel window must not be negative",
            Some("window"),
            Some("Pass a positive interval such as '14 days'."),
        );
    }
    us.min(i64::MAX as i128) as i64
}

/// Shared transition: `mode` is `None` for the plain form.
fn transition(
    mut state: Internal,
    window: Option<Interval>,
    mode: Option<&str>,
    ts: Option<TimestampWithTimeZone>,
    conditions: Option<VariadicArray<bool>>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    if !state.initialized() {
        let Some(window) = window else {
            raise(
                SqlState::InvalidParameter,
                "window_funnel window must not be NULL",
                Some("window"),
                None,
            )
        };
        let init = WindowFunnelState {
            window_us: window_micros(&window),
            mode: mode.map(mode_bits).unwrap_or(0),
            ..Default::default()
        };
        // Only the first row of a group pays for the memory-context lookup.
        in_agg_context(fcinfo, || unsafe { state.insert(init) });
    }
    let s = unsafe { state.get_mut::<WindowFunnelState>() }.expect("initialized above");
    let (Some(ts), Some(conditions)) = (ts, conditions) else {
        return state;
    };
    let n = conditions.len();
    if n == 0 || n > MAX_CONDITIONS {
        raise(
            SqlState::InvalidParameter,
            &format!("window_funnel takes 1 to {MAX_CONDITIONS} conditions, got {n}"),
            Some("conditions"),
            None,
        );
    }
    s.conditions = s.conditions.max(n as u8);
    let mut mask = 0u32;
    for (i, c) in conditions.iter().enumerate() {
        if c == Some(true) {
            mask |= 1 << i;
        }
    }
    // Strict order needs the non-matching rows too: they break chains.
    if mask != 0 || s.mode & 1 != 0 {
        s.events.push((pg_sys::TimestampTz::from(ts), mask));
    }
    state
}

#[pg_extern(immutable, parallel_safe)]
fn window_funnel_sfunc(
    state: Internal,
    window: Option<Interval>,
    ts: Option<TimestampWithTimeZone>,
    conditions: Option<VariadicArray<bool>>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    transition(state, window, None, ts, conditions, fcinfo)
}

#[pg_extern(immutable, parallel_safe)]
fn window_funnel_mode_sfunc(
    state: Internal,
    window: Option<Interval>,
    mode: Option<&str>,
    ts: Option<TimestampWithTimeZone>,
    conditions: Option<VariadicArray<bool>>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    transition(
        state,
        window,
        Some(mode.unwrap_or("")),
        ts,
        conditions,
        fcinfo,
    )
}

#[pg_extern(immutable, parallel_safe)]
fn window_funnel_combine(
    mut a: Internal,
    mut b: Internal,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    let other = unsafe { b.get_mut::<WindowFunnelState>() }.map(std::mem::take);
    let Some(other) = other else { return a };
    if !a.initialized() {
        in_agg_context(fcinfo, || unsafe { a.insert(other) });
        return a;
    }
    let mine = unsafe { a.get_mut::<WindowFunnelState>() }.expect("initialized");
    mine.conditions = mine.conditions.max(other.conditions);
    if mine.events.is_empty() {
        mine.window_us = other.window_us;
        mine.mode = other.mode;
    }
    mine.events.extend_from_slice(&other.events);
    a
}

#[pg_extern(immutable, parallel_safe, strict)]
fn window_funnel_serial(state: Internal) -> Vec<u8> {
    let s = unsafe { state.get::<WindowFunnelState>() }.expect("strict: state is set");
    let mut w = Writer::with_capacity(16 + s.events.len() * 12);
    w.i64(s.window_us);
    w.u8(s.conditions);
    w.u8(s.mode);
    w.u64(s.events.len() as u64);
    for &(ts, mask) in &s.events {
        w.i64(ts);
        w.u32(mask);
    }
    w.into_bytes()
}

#[pg_extern(immutable, parallel_safe, strict)]
fn window_funnel_deserial(
    bytes: &[u8],
    _unused: Internal,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    let mut r = Reader::new(bytes);
    let window_us = r.i64();
    let conditions = r.u8();
    let mode = r.u8();
    let n = r.u64() as usize;
    let mut events = Vec::with_capacity(n);
    for _ in 0..n {
        events.push((r.i64(), r.u32()));
    }
    let s = WindowFunnelState {
        window_us,
        conditions,
        mode,
        events,
    };
    in_agg_context(fcinfo, || Internal::new(s))
}

#[pg_extern(immutable, parallel_safe)]
fn window_funnel_final(mut state: Internal) -> i32 {
    match unsafe { state.get_mut::<WindowFunnelState>() } {
        None => 0,
        Some(s) => {
            let level = window_funnel(
                s.window_us,
                s.conditions as usize,
                &mut s.events,
                mode_of(s.mode),
            );
            level as i32
        }
    }
}

extension_sql!(
    r#"
CREATE AGGREGATE insights.window_funnel("window" interval, ts timestamptz, VARIADIC conditions bool[]) (
    SFUNC            = insights.window_funnel_sfunc,
    STYPE            = internal,
    COMBINEFUNC      = insights.window_funnel_combine,
    SERIALFUNC       = insights.window_funnel_serial,
    DESERIALFUNC     = insights.window_funnel_deserial,
    FINALFUNC        = insights.window_funnel_final,
    FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL         = SAFE
);
COMMENT ON AGGREGATE insights.window_funnel(interval, timestamptz, VARIADIC bool[]) IS
  'Furthest funnel step (0..n) reached within the window, measured from the first step (ClickHouse windowFunnel semantics). Use per actor: GROUP BY user.';
CREATE AGGREGATE insights.window_funnel("window" interval, mode text, ts timestamptz, VARIADIC conditions bool[]) (
    SFUNC            = insights.window_funnel_mode_sfunc,
    STYPE            = internal,
    COMBINEFUNC      = insights.window_funnel_combine,
    SERIALFUNC       = insights.window_funnel_serial,
    DESERIALFUNC     = insights.window_funnel_deserial,
    FINALFUNC        = insights.window_funnel_final,
    FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL         = SAFE
);
COMMENT ON AGGREGATE insights.window_funnel(interval, text, timestamptz, VARIADIC bool[]) IS
  'window_funnel with ClickHouse modes: a comma-separated list of strict_order, strict_increase, strict_deduplication.';
"#,
    name = "window_funnel_aggregate",
    requires = [
        window_funnel_sfunc,
        window_funnel_mode_sfunc,
        window_funnel_combine,
        window_funnel_serial,
        window_funnel_deserial,
        window_funnel_final
    ],
);
