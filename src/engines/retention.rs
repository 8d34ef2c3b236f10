//! Retention over the event store: `insights.retention` (typed rows) and `insights.retention_json`
//! (PostHog's response). Planning and rendering are pure Rust in `pg_insights_core::engines::retention`;
//! the one statement it plans groups events per actor into period bitmasks with built-in,
//! parallel-safe aggregates.

use pg_insights_core::actor_periods::{ActorPeriods, Entry};
use pg_insights_core::engines::funnels::Project;
use pg_insights_core::engines::retention::{self, Row};
use pg_insights_core::model::InsightKind;
use pgrx::prelude::*;
use pgrx::{Internal, JsonB};
use serde_json::{Value, json};

use crate::agg::{FxBuild, Reader, Writer, combine, in_agg_context};
use crate::context::{load_project, now_iso, parse_insight, parse_json, select_rows, with_lookups};
use crate::errors::raise_query_error;

/// The plan of a retention query (also for `insights.explain`).
pub(crate) fn plan_for(project: &Project, query: &Value) -> retention::RetentionPlan {
    let q = parse_insight(query, InsightKind::Retention);
    with_lookups(project.id, |lookups| {
        retention::plan(&q, project, lookups, chrono::Utc::now())
    })
    .unwrap_or_else(|e| raise_query_error(&e))
}

/// Parse, plan and run a retention query: its PostHog `result` value and the project timezone.
/// A recurring retention of one entity may read segments (`retention_cells`).
fn run(project_id: i64, query: &Value) -> (Value, String) {
    let project = load_project(project_id);
    let plan = plan_for(&project, query);
    let with_breakdown = plan.breakdown.is_some();
    let (sql, params) = crate::segments::periods::retention_cells(project_id, &plan.seg)
        .unwrap_or_else(|| (plan.sql.clone(), plan.params.clone()));
    let rows = select_rows(&sql, &params, "retention", |r| {
        let breakdown = if with_breakdown {
            r.get::<String>(4)?
        } else {
            None
        };
        Ok((
            breakdown,
            Row {
                cohort: r.get::<i32>(1)?.unwrap_or(0).max(0) as usize,
                period: r.get::<i32>(2)?.unwrap_or(0).max(0) as usize,
                actors: r.get::<i64>(3)?.unwrap_or(0),
            },
        ))
    });
    if with_breakdown {
        return (retention::render_breakdown(&plan, &rows), project.timezone);
    }
    let rows: Vec<Row> = rows.into_iter().map(|(_, row)| row).collect();
    (retention::render(&plan, &rows), project.timezone)
}

/// SQL: `insights.retention_json(project_id, query) → jsonb`: PostHog's `/insights/retention/`
/// body. `query` is a legacy retention filter or a `RetentionQuery`.
#[pg_extern(stable, parallel_safe)]
fn _retention_json(project_id: i64, query: &str) -> JsonB {
    let (result, timezone) = run(project_id, &parse_json(query, "query"));
    JsonB(
        json!({"result": result, "timezone": timezone, "is_cached": false, "last_refresh": now_iso()}),
    )
}

/// SQL: `insights.retention(project_id, query)`: one row per cohort and period.
#[allow(clippy::type_complexity)] // pgrx spells the row type out in the signature
#[pg_extern(stable, parallel_safe)]
fn _retention(
    project_id: i64,
    query: &str,
) -> TableIterator<
    'static,
    (
        name!(cohort_date, String),
        name!(cohort_label, String),
        name!(period, i32),
        name!(count, i64),
        name!(percentage, f64),
    ),
> {
    let query = parse_json(query, "query");
    if parse_insight(&query, InsightKind::Retention)
        .breakdown
        .is_some_and(|b| !b.values.is_empty())
    {
        crate::errors::raise(
            pg_insights_core::SqlState::InvalidParameter,
            "insights.retention (typed rows) has no breakdown column: use insights.retention_json for retention breakdowns.",
            Some("breakdown"),
            None,
        );
    }
    let (result, _) = run(project_id, &query);
    TableIterator::new(retention::rows(&result))
}

extension_sql!(
    r#"
CREATE FUNCTION insights.retention_json(project_id bigint, query jsonb) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE STRICT
RETURN insights._retention_json(project_id, query::text);
COMMENT ON FUNCTION insights.retention_json(bigint, jsonb) IS
  'Retention as PostHog''s /insights/retention/ body. query: a legacy retention filter or a RetentionQuery.';

CREATE FUNCTION insights.retention(project_id bigint, query jsonb)
RETURNS TABLE (cohort_date text, cohort_label text, period integer, count bigint, percentage double precision)
LANGUAGE sql STABLE PARALLEL SAFE STRICT
BEGIN ATOMIC
    SELECT * FROM insights._retention(project_id, query::text);
END;
COMMENT ON FUNCTION insights.retention(bigint, jsonb) IS
  'Retention as typed rows: one per cohort (start period) and period offset, with the cohort share in percent.';
"#,
    name = "retention_sql_surface",
    requires = [_retention_json, _retention],
);

// ---------------------------------------------------------------------------------------------
// insights.retention_flags: ClickHouse `retention`-style building block for any table
// ---------------------------------------------------------------------------------------------

/// At most 32 conditions: one bit each in the low half of the `int8` state; the high half holds
/// the condition count, so the state is a plain `int8` that `int8or` combines (parallel safe, and
/// no serialisation at all).
const MAX_RETENTION_CONDITIONS: usize = 32;

#[pg_extern(immutable, parallel_safe)]
fn retention_flags_sfunc(state: i64, conditions: Option<pgrx::VariadicArray<bool>>) -> i64 {
    let Some(conditions) = conditions else {
        return state;
    };
    let n = conditions.len();
    if n == 0 || n > MAX_RETENTION_CONDITIONS {
        crate::errors::raise(
            pg_insights_core::SqlState::InvalidParameter,
            &format!("retention_flags takes 1 to {MAX_RETENTION_CONDITIONS} conditions, got {n}"),
            Some("conditions"),
            None,
        );
    }
    let mut bits = state | ((n as i64) << 32);
    for (i, c) in conditions.iter().enumerate() {
        if c == Some(true) {
            bits |= 1 << i;
        }
    }
    bits
}

/// `r[1]` = condition 1 held for some row; `r[i]` = condition 1 and condition i both held
/// (ClickHouse's `retention(cond1, …, condN)`).
#[pg_extern(immutable, parallel_safe)]
fn retention_flags_final(state: i64) -> Vec<bool> {
    let n = ((state >> 32) & 0x3f) as usize;
    let first = state & 1 != 0;
    (0..n).map(|i| first && state & (1 << i) != 0).collect()
}

extension_sql!(
    r#"
CREATE AGGREGATE insights.retention_flags(VARIADIC conditions bool[]) (
    SFUNC       = insights.retention_flags_sfunc,
    STYPE       = int8,
    INITCOND    = '0',
    COMBINEFUNC = int8or,
    FINALFUNC   = insights.retention_flags_final,
    PARALLEL    = SAFE
);
COMMENT ON AGGREGATE insights.retention_flags(VARIADIC bool[]) IS
  'ClickHouse retention(): r[1] = condition 1 held for some row of the group, r[i] = condition 1 and condition i both held. Use per actor (GROUP BY user), then sum per index.';
"#,
    name = "retention_flags_aggregate",
    requires = [retention_flags_sfunc, retention_flags_final],
);

// ---------------------------------------------------------------------------------------------
// insights._actor_periods: each actor's first period and set of periods, as a histogram
// ---------------------------------------------------------------------------------------------

// The state (per actor: the smallest period seen, −1 = before the range, and the bit mask of the
// periods 0..62 seen; buffered and grouped in bulk) is pure Rust:
// pg_insights_core::actor_periods. Retention over the person-days rollup needs nothing else per
// person: the cohort of a first-time retention is the first period, and both masks of a
// recurring one are the period mask (core/src/engines/retention.rs).

#[pg_extern(immutable, parallel_safe)]
fn _actor_periods_sfunc(
    mut state: Internal,
    actor: Option<i64>,
    period: Option<i32>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    if !state.initialized() {
        in_agg_context(fcinfo, || unsafe { state.insert(ActorPeriods::default()) });
    }
    let (Some(actor), Some(p)) = (actor, period) else {
        return state;
    };
    if let Some(s) = unsafe { state.get_mut::<ActorPeriods>() } {
        s.add(actor, p);
    }
    state
}

#[pg_extern(immutable, parallel_safe)]
fn _actor_periods_combine(a: Internal, b: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    combine(a, b, fcinfo, ActorPeriods::merge)
}

/// The serial form (and `insights._actor_entries`' value): the entries in actor order.
#[pg_extern(immutable, parallel_safe, strict)]
fn _actor_periods_serial(mut state: Internal) -> Vec<u8> {
    let Some(s) = (unsafe { state.get_mut::<ActorPeriods>() }) else {
        return Vec::new();
    };
    let entries = s.entries();
    let mut w = Writer::with_capacity(8 + entries.len() * 20);
    w.u64(entries.len() as u64);
    for e in entries {
        w.i64(e.actor);
        w.u32(e.first as u32);
        w.u64(e.mask);
    }
    w.into_bytes()
}

/// The entries of a serial form (`_actor_periods_serial`), in actor order.
pub(crate) fn decode_entries(bytes: &[u8]) -> Vec<Entry> {
    let mut entries = Vec::new();
    if !bytes.is_empty() {
        let mut r = Reader::new(bytes);
        let n = r.u64() as usize;
        entries.reserve(n);
        for _ in 0..n {
            let actor = r.i64();
            let first = r.u32() as i32;
            let mask = r.u64();
            entries.push(Entry { actor, first, mask });
        }
    }
    entries
}

#[pg_extern(immutable, parallel_safe, strict)]
fn _actor_periods_deserial(
    bytes: &[u8],
    _unused: Internal,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    let entries = decode_entries(bytes);
    in_agg_context(fcinfo, || Internal::new(ActorPeriods::from_sorted(entries)))
}

/// The histogram: `n`, then per distinct (first period, period mask) the number of actors.
#[pg_extern(immutable, parallel_safe)]
fn _actor_periods_final(mut state: Internal) -> Option<Vec<u8>> {
    let s = unsafe { state.get_mut::<ActorPeriods>() }?;
    let mut hist: std::collections::HashMap<(i32, u64), i64, FxBuild> = Default::default();
    for e in s.entries() {
        *hist.entry((e.first, e.mask)).or_insert(0) += 1;
    }
    let mut w = Writer::with_capacity(8 + hist.len() * 20);
    w.u64(hist.len() as u64);
    for ((f, m), n) in hist {
        w.u32(f as u32);
        w.u64(m);
        w.i64(n);
    }
    Some(w.into_bytes())
}

/// SQL: `insights._actor_periods_rows(bytea)`: the final value of `insights._actor_periods` as
/// rows `(first_period, periods, actors)`; `periods` is the mask as `int8`.
#[allow(clippy::type_complexity)] // pgrx spells the row type out in the signature
#[pg_extern(immutable, parallel_safe, strict)]
fn _actor_periods_rows(
    state: &[u8],
) -> TableIterator<
    'static,
    (
        name!(first_period, i32),
        name!(periods, i64),
        name!(actors, i64),
    ),
> {
    let mut rows = Vec::new();
    if !state.is_empty() {
        let mut r = Reader::new(state);
        let n = r.u64();
        for _ in 0..n {
            let f = r.u32() as i32;
            let m = r.u64() as i64;
            rows.push((f, m, r.i64()));
        }
    }
    TableIterator::new(rows)
}

extension_sql!(
    r#"
CREATE AGGREGATE insights._actor_periods(actor int8, period int4) (
    SFUNC            = insights._actor_periods_sfunc,
    STYPE            = internal,
    COMBINEFUNC      = insights._actor_periods_combine,
    SERIALFUNC       = insights._actor_periods_serial,
    DESERIALFUNC     = insights._actor_periods_deserial,
    FINALFUNC        = insights._actor_periods_final,
    FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL         = SAFE
);
COMMENT ON AGGREGATE insights._actor_periods(int8, int4) IS
  'Internal: per actor the first period and the mask of periods 0..62, counted per distinct pair; run by insights.retention over the person-days rollup, expand with insights._actor_periods_rows.';

CREATE AGGREGATE insights._actor_entries(actor int8, period int4) (
    SFUNC            = insights._actor_periods_sfunc,
    STYPE            = internal,
    COMBINEFUNC      = insights._actor_periods_combine,
    SERIALFUNC       = insights._actor_periods_serial,
    DESERIALFUNC     = insights._actor_periods_deserial,
    FINALFUNC        = insights._actor_periods_serial,
    FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL         = SAFE
);
COMMENT ON AGGREGATE insights._actor_entries(int8, int4) IS
  'Internal: per actor the first period and the mask of periods 0..62, as one value (the entries in actor order); the heap part of a stickiness or lifecycle query answered from segments.';
"#,
    name = "actor_periods_aggregate",
    requires = [
        _actor_periods_sfunc,
        _actor_periods_combine,
        _actor_periods_serial,
        _actor_periods_deserial,
        _actor_periods_final,
        _actor_periods_rows
    ],
);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn retention_flags_follow_clickhouse() {
        // ClickHouse's documented example: uid 0 active on days 1, 2, 3 of (1, 2, 3, 4, 5).
        let r = Spi::get_one::<Vec<bool>>(
            "SELECT insights.retention_flags(d = 1, d = 2, d = 3, d = 5)
               FROM (VALUES (1), (2), (3), (3)) v(d)",
        )
        .unwrap()
        .unwrap();
        assert_eq!(r, vec![true, true, true, false]);
        // Without the first condition nothing counts.
        let r = Spi::get_one::<Vec<bool>>(
            "SELECT insights.retention_flags(d = 0, d = 2) FROM (VALUES (1), (2)) v(d)",
        )
        .unwrap()
        .unwrap();
        assert_eq!(r, vec![false, false]);
    }

    #[pg_test]
    fn actor_periods_histogram_serial_and_parallel() {
        // Actor 1: periods −1 (before the range), 0 and 2; actor 2: 1 and 1; actor 3: 0 and 2;
        // actor 4: only a NULL period (ignored, so absent).
        let q = "SELECT string_agg(format('%s:%s:%s', first_period, periods, actors), ' ' ORDER BY first_period, periods)
                   FROM insights._actor_periods_rows((SELECT insights._actor_periods(a, p) FROM t))";
        Spi::run("CREATE TABLE t (a int8, p int4)").unwrap();
        Spi::run("INSERT INTO t VALUES (1, -1), (1, 0), (1, 2), (2, 1), (2, 1), (3, 2), (3, 0), (4, NULL)")
            .unwrap();
        assert_eq!(
            Spi::get_one::<String>(q).unwrap().as_deref(),
            Some("-1:5:1 0:5:1 1:2:1")
        );
        // 100,000 rows over 5,000 actors: a parallel plan gives the serial histogram.
        Spi::run("TRUNCATE t").unwrap();
        Spi::run(
            "INSERT INTO t SELECT g % 5000, (g * 7919) % 11 - 1 FROM generate_series(1, 100000) g",
        )
        .unwrap();
        Spi::run("ANALYZE t").unwrap();
        Spi::run("SET max_parallel_workers_per_gather = 0").unwrap();
        let serial = Spi::get_one::<String>(q).unwrap();
        Spi::run("SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0").unwrap();
        let parallel = Spi::get_one::<String>(q).unwrap();
        assert_eq!(serial, parallel);
        let total = Spi::get_one::<i64>(
            "SELECT sum(actors)::int8 FROM insights._actor_periods_rows((SELECT insights._actor_periods(a, p) FROM t))",
        )
        .unwrap();
        assert_eq!(total, Some(5000));
    }

    #[pg_test]
    fn retention_flags_parallel_equals_serial() {
        Spi::run(
            "CREATE TABLE rf AS SELECT g % 1000 AS u, g % 7 AS d FROM generate_series(1, 100000) g",
        )
        .unwrap();
        Spi::run("ANALYZE rf").unwrap();
        let q =
            "SELECT sum((r)[1]::int) || ',' || sum((r)[2]::int) || ',' || sum((r)[3]::int) FROM (
                   SELECT u, insights.retention_flags(d = 0, d = 1, d = 6) r FROM rf GROUP BY u) s";
        Spi::run("SET max_parallel_workers_per_gather = 0").unwrap();
        let serial = Spi::get_one::<String>(q).unwrap();
        Spi::run("SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0").unwrap();
        let parallel = Spi::get_one::<String>(q).unwrap();
        assert_eq!(serial, parallel);
        assert_eq!(serial.as_deref(), Some("1000,1000,1000"));
    }
}
