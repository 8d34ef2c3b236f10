//! Retention over the event store: planning (query → one SQL statement) and rendering (the
//! statement's rows → PostHog's response). Pure Rust; the extension runs the SQL. The rules:
//! docs/retention.md.
//!
//! # The statement
//!
//! Periods are numbered `0..n` from the first cohort's start (`n` = number of cohorts, at most
//! [`MAX_PERIODS`]). An event's period is `width_bucket(ts, ARRAY[start_0, …, start_{n-1}]) - 1`:
//! a binary search over the period starts that [`dates::retention_range`] computed in the project
//! timezone, so the SQL needs no timezone arithmetic per row and buckets exactly like the Rust
//! side (DST days of 23/25 hours, Sunday/Monday weeks, months); events before the range get −1.
//! The starts are bound parameters in an `ARRAY[…]` constructor: SPI's one-shot plans fold it to
//! one constant array.
//!
//! 1. **Per actor** (person, or group key with `aggregation_group_type_index`), one `GROUP BY`
//!    over the events builds two `int8` bit masks: `t` (bit c = the actor is in cohort c) and `r`
//!    (bit p = the actor returned in period p). The masks are built with `bit_or`, `min`, `count`
//!    and `bool_or`, builtin aggregates with combine functions, so Postgres runs this step as a
//!    parallel partial aggregate (the expensive step: one pass over the events, no arrays, no
//!    sorting, 16 bytes of state per actor). This is the reason for masks rather than
//!    `array_agg(DISTINCT period)`, which is neither parallel nor cheap.
//!    * `retention_recurring`: `t` = every period with a target event in the range.
//!    * `retention_first_time`: `t` = the period of the actor's first target event matching the
//!      filters, over all time before the range end (`min(ts)`); no cohort when it falls before the
//!      range (docs/retention.md#cohorts). When the returning entity differs, the events come from
//!      a `UNION ALL` of two arms (target history; returning events in the range only), each an
//!      index range scan, so a frequent returning event's history is never read.
//!    * `retention_first_ever_occurrence`: the first target event ignoring the target entity's own
//!      properties must also match them (`min` with and without the properties agree), as
//!      PostHog; global properties and test-account filters still apply to that first event.
//!    * `minimumOccurrences` m > 1: a first `GROUP BY (actor, period)` counts returning events, and
//!      `r` keeps the periods with at least m of them (the cohort size is unaffected).
//!    * With ≤ 31 periods in recurring mode both masks come from one `bit_or` (target bits in the
//!      low half, returning bits in the high half): one `width_bucket` per event instead of two.
//! 2. Actors are grouped by `(t, r)`: most actors share a pattern, so the expansion below runs
//!    over a few thousand weighted rows rather than millions of actors.
//! 3. **Expansion**: for every set bit c of `t` and every k in `0..min(total_intervals, n - c)`,
//!    the actor counts in cell (c, k) when k = 0 (`values[0]` is the cohort size, R12) or when
//!    bit c + k of `r` is set; cumulative: when any bit ≥ c + k of `r` within the lookahead is set.
//!
//! ```sql
//! SELECT c.c::int4 AS cohort_index, k.k::int4 AS period_index, sum(x.w)::int8 AS actors
//!   FROM (SELECT a.t, a.r, count(*) AS w
//!           FROM (SELECT <cohort mask> AS t, coalesce(<return mask>, 0) AS r
//!                   FROM (SELECT <actor> AS actor, <mask aggregates>
//!                           FROM insights.events e WHERE <range, names, filters> GROUP BY 1) g) a
//!          WHERE a.t <> 0 GROUP BY a.t, a.r) x
//!  CROSS JOIN LATERAL generate_series(0, $n - 1) AS c(c)
//!  CROSS JOIN LATERAL generate_series(0, least($kmax, $n - c.c) - 1) AS k(k)
//!  WHERE ((x.t >> c.c::int4) & 1) = 1 AND (k.k = 0 OR <returned at c + k>)
//!  GROUP BY 1, 2 ORDER BY 1, 2
//! ```
//!
//! Rows absent from the result are zero cells; [`render`] zero-fills the full
//! `cohorts × total_intervals` matrix of docs/retention.md#result (cells past the range end are
//! always 0).
//!
//! Range (docs/retention.md#periods-and-range): `[start of the first cohort, start of the period
//! after date_to)`. Global `properties` and test-account filters apply to every event, the
//! entities' own properties to their own entity only (R15–R19).
//!
//! Breakdowns (one property; cohort, histogram and multiple breakdowns are 22023): each actor's
//! value is that of its first target event (`array_agg(bd ORDER BY ts)[1]` per actor, joined to
//! step 1, PostHog's `argMin`), the masks are grouped by `(t, r, bd)` and the statement returns a
//! fourth column; [`render_breakdown`] ranks, limits and renders one matrix per value.
//!
//! Actors ([`plan_actors`]): step 1 only, filtered to the actors of one cohort.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::compile::context::with_filter_context;
use crate::compile::dates::{self, Interval, ProjectTime};
use crate::compile::properties::{self, FilterContext, TRUE_SQL};
use crate::compile::sql::{Param, SqlBuilder};
use crate::engines::funnels::{Lookups, Project};
use crate::error::{QueryError, Result};
use crate::model::{
    BreakdownProperty, BreakdownSpec, Entity, EntityKind, InsightQuery, RetentionOptions,
    RetentionType,
};
use crate::segments::{self, PeriodRun, PeriodScan};

/// The most periods (cohorts, and values per cohort) one retention query may have: every period
/// is one bit of an `int8` mask (the sign bit stays unused).
pub const MAX_PERIODS: usize = 63;

/// Up to this many periods, recurring retention packs both masks into one `int8`.
const PACKED_MAX_PERIODS: usize = 31;

/// The cohorts of a retention query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRange {
    /// Start of every cohort period, oldest first, in the project timezone's calendar.
    pub starts: Vec<DateTime<Utc>>,
    /// Exclusive end: the start of the period after `date_to`.
    pub end: DateTime<Utc>,
}

/// A planned retention query: the statement to run and what [`render`] needs.
#[derive(Debug, Clone)]
pub struct RetentionPlan {
    /// Returns rows `(cohort_index int4, period_index int4, actors int8)`, see [`Row`].
    pub sql: String,
    pub params: Vec<Param>,
    pub range: RetentionRange,
    /// Values per cohort row: `total_intervals` (PostHog's lookahead).
    pub intervals: usize,
    pub period: Interval,
    pub pt: ProjectTime,
    pub retention_type: RetentionType,
    pub cumulative: bool,
    /// With a breakdown, the statement has a fourth column `breakdown text` (NULL: no value)
    /// and [`render_breakdown`] renders it.
    pub breakdown: Option<RetentionBreakdown>,
    /// The same rows from the columnar segments (crate::segments), when they can answer.
    pub seg: std::result::Result<RetentionSeg, String>,
}

/// A retention answered from segments: recurring, one entity for cohort and return, persons,
/// no breakdown, `minimumOccurrences` 1. Every actor's cohort mask and return mask are then the
/// same mask, its periods with a matching event, which the segments give ([`PeriodScan`]); the
/// plan's own cells statement then runs over the masks grouped with their actor counts.
#[derive(Debug, Clone)]
pub struct RetentionSeg {
    pub scan: PeriodScan,
    /// The cells statement over `unnest($1::int8[], $2::int8[]) AS (mask, actors)`: fill the
    /// first two parameters in.
    pub sql: String,
    pub params: Vec<Param>,
}

/// How breakdown values are kept (docs/retention.md#breakdowns: top `limit` by total cohort size,
/// the rest in Other unless hidden).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionBreakdown {
    pub limit: usize,
    pub hide_other: bool,
}

/// One row of the statement: `actors` distinct actors of cohort `cohort` (0 = oldest) returned in
/// its period `period` (0 = the cohort period itself: the cohort size). Missing cells are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub cohort: usize,
    pub period: usize,
    pub actors: i64,
}

/// The actor a retention counts.
enum Actor {
    Person,
    Group(u8),
}

/// Where step 1 reads its events from, and how it tells their roles apart: SQL for the actor,
/// the timestamp, and the target (with / without its properties) and returning conditions.
struct Source {
    from: String,
    actor: String,
    ts: String,
    t: String,
    tb: String,
    r: String,
    /// Returning and inside the range (first-time modes also scan older target events).
    r_in_range: String,
    /// The breakdown value of the row's event, with a breakdown.
    bd: Option<String>,
    /// One scan of the events: its conditions other than project and time.
    filters: Vec<String>,
}

/// Whether an entity has no property filters of its own.
fn no_properties(e: &Entity) -> bool {
    match &e.properties {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// An event by name without filters of its own: matched exactly by an `event IN (…)` filter.
fn bare_event(e: &Entity) -> bool {
    no_properties(e) && matches!(&e.kind, EntityKind::Event { name: Some(_) })
}

/// "All events" without filters of its own: every event of the project.
fn any_event(e: &Entity) -> bool {
    no_properties(e) && matches!(&e.kind, EntityKind::Event { name: None })
}

fn invalid(attr: &str, detail: impl Into<String>) -> QueryError {
    QueryError::invalid(attr.to_string(), detail)
}

/// `(a OR b)`, simplified when either is TRUE or both are the same.
fn or2(a: &str, b: &str) -> String {
    if a == TRUE_SQL || b == TRUE_SQL {
        TRUE_SQL.to_string()
    } else if a == b {
        a.to_string()
    } else {
        format!("({a} OR {b})")
    }
}

/// `(a AND b)`, simplified when either is TRUE.
fn and2(a: &str, b: &str) -> String {
    match (a, b) {
        (TRUE_SQL, x) | (x, TRUE_SQL) => x.to_string(),
        _ => format!("({a} AND {b})"),
    }
}

/// The event names an entity can match, when it can only match named events: an event by name,
/// or an action whose every step names its event. `None` for "All events" and open actions.
fn entity_event_names(e: &Entity, lookups: &Lookups) -> Option<Vec<String>> {
    match &e.kind {
        EntityKind::Event { name } => name.clone().map(|n| vec![n]),
        EntityKind::Action { id } => {
            let (steps, _) = (lookups.action)(*id)?;
            let steps = steps.as_array()?;
            if steps.is_empty() {
                return None;
            }
            steps
                .iter()
                .map(|s| {
                    s.get("event")
                        .and_then(Value::as_str)
                        .filter(|n| !n.is_empty())
                        .map(str::to_string)
                })
                .collect()
        }
    }
}

/// Plan a retention query (docs/retention.md). `now` is the query time (default `date_to`, relative
/// dates).
pub fn plan(
    q: &InsightQuery,
    project: &Project,
    lookups: &Lookups,
    now: DateTime<Utc>,
) -> Result<RetentionPlan> {
    plan_inner(q, project, lookups, now, None)
}

/// Plan the retention actors of one cohort (`persons/retention/?selected_interval=c`,
/// docs/retention.md#actors): a statement returning one row `(actor text, r int8)` per actor of
/// cohort `c` (0 = the oldest cohort), `r` being the actor's return mask over all periods;
/// [`appearances`] turns it into the actor's appearances. `selected_interval` outside the cohorts
/// is 22023 on `selected_interval`.
pub fn plan_actors(
    q: &InsightQuery,
    project: &Project,
    lookups: &Lookups,
    now: DateTime<Utc>,
    selected_interval: i64,
) -> Result<RetentionPlan> {
    if selected_interval < 0 {
        return Err(invalid(
            "selected_interval",
            format!("selected_interval must be 0 or more, got {selected_interval}"),
        ));
    }
    plan_inner(q, project, lookups, now, Some(selected_interval as usize))
}

/// The appearances of an actor of cohort `cohort` with return mask `r` (a row of
/// [`plan_actors`]' statement): the period offsets `k` (0 = the cohort period, always present)
/// within the cohort's `min(total_intervals, cohorts − cohort)` values at which the actor
/// returned (with `minimumOccurrences` applied, never cumulated).
pub fn appearances(plan: &RetentionPlan, cohort: usize, r: i64) -> Vec<i32> {
    let n = plan.range.starts.len();
    let len = plan.intervals.min(n.saturating_sub(cohort));
    (0..len)
        .filter(|&k| k == 0 || (cohort + k < 63 && (r >> (cohort + k)) & 1 == 1))
        .map(|k| k as i32)
        .collect()
}

/// The phases of a retention plan, in order: the breakdown spec and the periods are checked
/// first; then, over one builder, the entity conditions, the period bounds and the filters every
/// event passes are bound; [`sources`] picks the scan, [`actor_masks`] builds the per-actor
/// cohort and return masks over it, and the statement is either the actors of one cohort
/// ([`actors_statement`]) or the (cohort, period) cells ([`cells_statement`]).
fn plan_inner(
    q: &InsightQuery,
    project: &Project,
    lookups: &Lookups,
    now: DateTime<Utc>,
    selected: Option<usize>,
) -> Result<RetentionPlan> {
    let r = &q.retention;
    let bd_spec = breakdown_spec(q, selected)?;
    if let Some(g) = q.aggregation_group_type_index
        && g > 4
    {
        return Err(invalid(
            "aggregation_group_type_index",
            format!("aggregation_group_type_index must be between 0 and 4, got {g}"),
        ));
    }
    let periods = periods(q, project, now)?;
    let actor = match q.aggregation_group_type_index {
        Some(g) => Actor::Group(g),
        None => Actor::Person,
    };

    let mut b = SqlBuilder::new();
    let project_param = b.int(project.id);
    with_filter_context(project, lookups, |cx| {
        let conds = entity_conditions(&q.retention, &mut b, cx, now)?;
        let bounds = Bounds::timestamps(&periods, &mut b);
        let (common, actor_sql) = common_filters(q, project, &actor, &mut b, cx, now)?;

        // The person-days rollup (sql/rollups.sql) holds exactly what this query reads when every
        // event of the project counts, per person, in periods of whole local days: its rows
        // replace the events (about 9× fewer in the benchmark), with the period bounds as local
        // dates.
        let rollup = project.rollups
            && bd_spec.is_none()
            && matches!(actor, Actor::Person)
            && periods.period != Interval::Hour
            && min_occ_of(q) == 1
            && any_event(&r.target_entity)
            && any_event(&r.returning_entity)
            && common.is_empty();
        let bounds = if rollup {
            Bounds::local_days(&periods, &project.pt, &mut b)
        } else {
            bounds
        };

        // The breakdown value of an event (text, NULL when missing).
        let bd_expr = match &bd_spec {
            Some((spec, key)) => {
                let x =
                    properties::breakdown_expr(&spec.kind, key, spec.group_type_index, &mut b, cx)?;
                Some(if spec.normalize_url {
                    crate::engines::trends::normalize_url(&x)
                } else {
                    x
                })
            }
            None => None,
        };

        let scan = Scan {
            project_param: &project_param,
            bounds: &bounds,
            conds: &conds,
            common,
            actor_sql,
            bd_expr,
        };
        let src = sources(q, lookups, rollup, scan, &mut b);
        let bucket = format!("(width_bucket({}, {}) - 1)", src.ts, bounds.starts);
        let seg = if selected.is_some() {
            Err("the actors of one cohort".to_string())
        } else {
            seg_plan(
                q,
                project,
                &periods,
                (rollup, bd_spec.is_some()),
                &src,
                &bucket,
                cx,
                &b,
            )
        };
        let masks = actor_masks(
            q,
            periods.starts.len(),
            rollup,
            &bounds,
            &bucket,
            &src,
            &mut b,
        );
        match selected {
            Some(c) => actors_statement(q, project, periods, c, &masks, b),
            None => {
                let x = grouped_actors(q.retention.retention_type, rollup, &src, &bucket, &masks);
                let mut plan = cells_statement(q, project, periods, src.bd.is_some(), &x, b)?;
                plan.seg = seg;
                Ok(plan)
            }
        }
    })
}

/// One property breakdown (docs/retention.md#breakdowns): the spec and its property key, `None`
/// without a breakdown.
/// The actors of a cohort ignore it. Several breakdowns, cohorts and histograms are 22023.
fn breakdown_spec(
    q: &InsightQuery,
    selected: Option<usize>,
) -> Result<Option<(&BreakdownSpec, String)>> {
    Ok(match &q.breakdown {
        Some(bd) if !bd.values.is_empty() && selected.is_none() => {
            if bd.values.len() > 1 {
                return Err(invalid(
                    "breakdowns",
                    "Retention supports one breakdown property, not several.",
                ));
            }
            let spec = &bd.values[0];
            let BreakdownProperty::Property(key) = &spec.property else {
                return Err(invalid(
                    "breakdown",
                    "Cohort breakdowns are not supported for retention: break down by a property.",
                ));
            };
            if spec.histogram_bin_count.is_some() {
                return Err(invalid(
                    "breakdown_histogram_bin_count",
                    "Histogram breakdowns are not supported for retention.",
                ));
            }
            Some((spec, key.clone()))
        }
        _ => None,
    })
}

/// The cohort periods of a query and their lookahead, within [`MAX_PERIODS`].
#[derive(Clone)]
struct Periods {
    /// `total_intervals`: values per cohort row.
    lookahead: usize,
    period: Interval,
    starts: Vec<DateTime<Utc>>,
    end: DateTime<Utc>,
}

/// The query's periods (docs/retention.md#periods-and-range): 22023 beyond [`MAX_PERIODS`]
/// intervals or cohorts.
fn periods(q: &InsightQuery, project: &Project, now: DateTime<Utc>) -> Result<Periods> {
    let r = &q.retention;
    let lookahead = r.total_intervals as usize;
    if lookahead > MAX_PERIODS {
        return Err(invalid(
            "total_intervals",
            format!("Retention supports at most {MAX_PERIODS} intervals, got {lookahead}"),
        ));
    }
    let period = dates::parse_retention_period(r.period.name())?;
    let (starts, end) = dates::retention_range(
        q.date_from.as_deref(),
        q.date_to.as_deref(),
        period,
        r.total_intervals,
        now,
        &project.pt,
    )?;
    let n = starts.len();
    if n > MAX_PERIODS {
        return Err(invalid(
            "date_from",
            format!(
                "Retention supports at most {MAX_PERIODS} cohorts, got {n}: shorten the date range or use a longer period"
            ),
        ));
    }
    Ok(Periods {
        lookahead,
        period,
        starts,
        end,
    })
}

/// The SQL conditions of the entities.
struct EntityConditions {
    target: String,
    returning: String,
    /// The target entity without its own properties (first-ever occurrence: it finds the first
    /// event); the target condition in the other modes.
    target_bare: String,
}

fn entity_conditions(
    r: &RetentionOptions,
    b: &mut SqlBuilder,
    cx: &FilterContext,
    now: DateTime<Utc>,
) -> Result<EntityConditions> {
    let target = properties::compile_entity_at(&r.target_entity, b, cx, now)
        .map_err(|e| e.within("target_entity"))?;
    let returning = properties::compile_entity_at(&r.returning_entity, b, cx, now)
        .map_err(|e| e.within("returning_entity"))?;
    let target_bare = if r.retention_type == RetentionType::FirstEverOccurrence {
        let mut bare = r.target_entity.clone();
        bare.properties = json!([]);
        properties::compile_entity_at(&bare, b, cx, now).map_err(|e| e.within("target_entity"))?
    } else {
        target.clone()
    };
    Ok(EntityConditions {
        target,
        returning,
        target_bare,
    })
}

/// The bound period bounds: the range start, its exclusive end and the `ARRAY[…]` of the
/// period starts (timestamps, or local dates over the rollup).
struct Bounds {
    start: String,
    end: String,
    starts: String,
}

impl Bounds {
    fn timestamps(p: &Periods, b: &mut SqlBuilder) -> Bounds {
        let start = b.param(Param::timestamp(p.starts[0]));
        let end = b.param(Param::timestamp(p.end));
        let starts = format!(
            "ARRAY[{}]",
            p.starts
                .iter()
                .map(|s| b.param(Param::timestamp(*s)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Bounds { start, end, starts }
    }

    /// The rollup's bounds: local dates in the project timezone.
    fn local_days(p: &Periods, pt: &ProjectTime, b: &mut SqlBuilder) -> Bounds {
        let mut day =
            |t: &DateTime<Utc>| b.param(Param::date(t.with_timezone(&pt.tz).date_naive()));
        let list: Vec<String> = p.starts.iter().map(&mut day).collect();
        Bounds {
            start: day(&p.starts[0]),
            end: day(&p.end),
            starts: format!("ARRAY[{}]", list.join(", ")),
        }
    }
}

/// Filters every scanned event passes (global properties, test accounts, the group key) and
/// the actor's SQL.
fn common_filters(
    q: &InsightQuery,
    project: &Project,
    actor: &Actor,
    b: &mut SqlBuilder,
    cx: &FilterContext,
    now: DateTime<Utc>,
) -> Result<(Vec<String>, String)> {
    let mut common = Vec::new();
    let global = properties::compile_properties_at(&q.properties, b, cx, now)?;
    if global != TRUE_SQL {
        common.push(global);
    }
    if q.filter_test_accounts {
        let t = properties::compile_properties_at(&project.test_account_filters, b, cx, now)
            .map_err(|e| e.within("filter_test_accounts"))?;
        if t != TRUE_SQL {
            common.push(t);
        }
    }
    let actor_sql = match actor {
        Actor::Person => "e.person_id".to_string(),
        Actor::Group(g) => {
            common.push(format!("e.group_{g} <> ''"));
            format!("e.group_{g}")
        }
    };
    Ok((common, actor_sql))
}

/// What [`sources`] builds the scan from.
struct Scan<'a> {
    project_param: &'a str,
    bounds: &'a Bounds,
    conds: &'a EntityConditions,
    common: Vec<String>,
    actor_sql: String,
    bd_expr: Option<String>,
}

/// `e.event IN (…)` over the names, sorted and deduplicated. Text parameters, not one array:
/// the entities bound these names already, so the placeholders are shared and every parameter
/// stays referenced.
fn name_filter(mut names: Vec<String>, b: &mut SqlBuilder) -> String {
    names.sort();
    names.dedup();
    let list: Vec<String> = names.into_iter().map(|n| b.text(n)).collect();
    format!("e.event IN ({})", list.join(", "))
}

/// The scanned events: the rollup, two arms (first-time modes with another returning entity),
/// or one scan of the events.
fn sources(
    q: &InsightQuery,
    lookups: &Lookups,
    rollup: bool,
    scan: Scan,
    b: &mut SqlBuilder,
) -> Source {
    let r = &q.retention;
    let mode = r.retention_type;
    let names = Names {
        t: entity_event_names(&r.target_entity, lookups),
        r: entity_event_names(&r.returning_entity, lookups),
        target_is_name: bare_event(&r.target_entity)
            || (mode == RetentionType::FirstEverOccurrence
                && matches!(&r.target_entity.kind, EntityKind::Event { name: Some(_) })),
    };
    if rollup {
        rollup_source(mode, scan.project_param, scan.bounds)
    } else if mode != RetentionType::Recurring && scan.conds.target_bare != scan.conds.returning {
        two_arm_source(r, scan, names, b)
    } else {
        one_scan_source(r, scan, names, b)
    }
}

/// The event names the entities can match ([`entity_event_names`]).
struct Names {
    t: Option<Vec<String>>,
    r: Option<Vec<String>>,
    /// Whether the events that can start a cohort are exactly those of one event name.
    target_is_name: bool,
}

/// The person-days rollup: one row per person and local day with events.
fn rollup_source(mode: RetentionType, project_param: &str, bounds: &Bounds) -> Source {
    let Bounds {
        start: start_p,
        end: end_p,
        ..
    } = bounds;
    let mut w = vec![
        format!("e.project_id = {project_param}"),
        format!("e.day < {end_p}"),
    ];
    let in_range = format!("e.day >= {start_p}");
    if mode == RetentionType::Recurring {
        w.push(in_range.clone());
    }
    Source {
        from: format!("insights.person_days e WHERE {}", w.join(" AND ")),
        actor: "e.person_id".into(),
        ts: "e.day".into(),
        t: TRUE_SQL.into(),
        tb: TRUE_SQL.into(),
        r: TRUE_SQL.into(),
        r_in_range: if mode == RetentionType::Recurring {
            TRUE_SQL.into()
        } else {
            in_range
        },
        bd: None,
        filters: Vec::new(),
    }
}

/// First-time modes with another returning entity: two arms, so that the target arm reads the
/// target's history (for its first event) and the returning arm only the range (each an index
/// range scan on (project, event, timestamp)).
fn two_arm_source(r: &RetentionOptions, scan: Scan, names: Names, b: &mut SqlBuilder) -> Source {
    let (project_param, actor_sql, c) = (scan.project_param, &scan.actor_sql, scan.conds);
    let (start_p, end_p) = (&scan.bounds.start, &scan.bounds.end);
    let ets = "e.\"timestamp\"";
    let mut w1 = vec![
        format!("e.project_id = {project_param}"),
        format!("{ets} < {end_p}"),
    ];
    if let Some(names) = names.t {
        w1.push(name_filter(names, b));
    }
    if c.target_bare != TRUE_SQL && !names.target_is_name {
        w1.push(c.target_bare.clone());
    }
    w1.extend(scan.common.iter().cloned());
    let mut w2 = vec![
        format!("e.project_id = {project_param}"),
        format!("{ets} >= {start_p}"),
        format!("{ets} < {end_p}"),
    ];
    if let Some(names) = names.r {
        w2.push(name_filter(names, b));
    }
    if c.returning != TRUE_SQL && !bare_event(&r.returning_entity) {
        w2.push(c.returning.clone());
    }
    w2.extend(scan.common);
    let is_t = if c.target == c.target_bare {
        "true".to_string()
    } else {
        c.target.clone()
    };
    let (bd1, bd2) = match &scan.bd_expr {
        Some(x) => (format!(", ({x})::text AS bd"), ", NULL::text".to_string()),
        None => (String::new(), String::new()),
    };
    Source {
        from: format!(
            "(SELECT {actor_sql} AS actor, {ets} AS ts, {is_t} AS is_t, true AS is_tb, false AS is_r{bd1} \
             FROM insights.events e WHERE {} \
             UNION ALL SELECT {actor_sql}, {ets}, false, false, true{bd2} \
             FROM insights.events e WHERE {}) u",
            w1.join(" AND "),
            w2.join(" AND ")
        ),
        bd: scan.bd_expr.as_ref().map(|_| "u.bd".to_string()),
        actor: "u.actor".into(),
        ts: "u.ts".into(),
        t: "u.is_t".into(),
        tb: "u.is_tb".into(),
        r: "u.is_r".into(),
        r_in_range: "u.is_r".into(),
        filters: Vec::new(),
    }
}

/// One scan of the events: recurring mode, or a first-time mode whose returning entity is the
/// target's scan condition.
fn one_scan_source(r: &RetentionOptions, scan: Scan, names: Names, b: &mut SqlBuilder) -> Source {
    let (project_param, c) = (scan.project_param, scan.conds);
    let mode = r.retention_type;
    let ets = "e.\"timestamp\"";
    let in_range = format!("{ets} >= {}", scan.bounds.start);
    let mut w = vec![
        format!("e.project_id = {project_param}"),
        format!("{ets} < {}", scan.bounds.end),
    ];
    if mode == RetentionType::Recurring {
        w.push(in_range.clone());
    }
    let in_range_conds = w.len();
    if let (Some(mut list), Some(more)) = (names.t, names.r) {
        list.extend(more);
        w.push(name_filter(list, b));
    }
    let relevant = match mode {
        RetentionType::Recurring => or2(&c.target, &c.returning),
        // One scan in the first-time modes only when the returning entity is the target's
        // scan condition: every returning event is a target event.
        _ => c.target_bare.clone(),
    };
    // With bare event names the name filter is exactly the condition above.
    let names_suffice = match mode {
        RetentionType::Recurring => bare_event(&r.target_entity) && bare_event(&r.returning_entity),
        _ => names.target_is_name,
    };
    if relevant != TRUE_SQL && !names_suffice {
        w.push(relevant);
    }
    w.extend(scan.common);
    Source {
        from: format!("insights.events e WHERE {}", w.join(" AND ")),
        filters: w[in_range_conds..].to_vec(),
        bd: scan.bd_expr,
        actor: scan.actor_sql,
        ts: ets.into(),
        t: c.target.clone(),
        tb: c.target_bare.clone(),
        r: c.returning.clone(),
        r_in_range: if mode == RetentionType::Recurring {
            c.returning.clone()
        } else {
            and2(&c.returning, &in_range)
        },
    }
}

/// Step 1's result: a subquery `g` with one row per actor, and the SQL reading the cohort mask
/// `t` and the return mask `r` from it.
struct Masks {
    g: String,
    t: String,
    r: String,
}

/// Step 1, per-actor masks (`bucket`: an event's period), with the breakdown value of each
/// actor's first target event joined when there is a breakdown.
fn actor_masks(
    q: &InsightQuery,
    n: usize,
    rollup: bool,
    bounds: &Bounds,
    bucket: &str,
    src: &Source,
    b: &mut SqlBuilder,
) -> Masks {
    let mode = q.retention.retention_type;
    let (ts, t_cond, tb_cond) = (&src.ts, &src.t, &src.tb);
    let mut first_ts_aggs = vec![format!("min({ts}) FILTER (WHERE {t_cond}) AS t0")];
    if mode == RetentionType::FirstEverOccurrence {
        first_ts_aggs.push(format!("min({ts}) FILTER (WHERE {tb_cond}) AS tb"));
    }
    let scan = MaskScan {
        mode,
        bucket,
        bounds,
        src,
        first_ts_aggs,
    };
    let min_occ = min_occ_of(q);
    let (g, t, r) = if min_occ == 1 {
        scan.per_actor(n, rollup || bare_event(&q.retention.target_entity))
    } else {
        scan.with_minimum(&b.int(i64::from(min_occ)))
    };
    Masks {
        g: with_breakdown_join(g, src),
        t,
        r,
    }
}

/// What step 1 builds the masks from: the scan, an event's period (`bucket`) and the
/// aggregates of the actor's first target event (first-time modes).
struct MaskScan<'a> {
    mode: RetentionType,
    bucket: &'a str,
    bounds: &'a Bounds,
    src: &'a Source,
    first_ts_aggs: Vec<String>,
}

impl MaskScan<'_> {
    /// [`actor_masks`] with `minimumOccurrences` 1: one `GROUP BY` actor. `bare_target`: every
    /// scanned event is a target event when the target and returning conditions agree (the name
    /// filter or the rollup says so).
    fn per_actor(self, n: usize, bare_target: bool) -> (String, String, String) {
        let (mode, bucket, src) = (self.mode, self.bucket, self.src);
        let (from, actor_sql) = (&src.from, &src.actor);
        let (t_cond, r_cond, r_in_range) = (&src.t, &src.r, &src.r_in_range);
        let mut aggs = Vec::new();
        let (t_expr, r_expr) = match mode {
            RetentionType::Recurring if n <= PACKED_MAX_PERIODS => {
                // Target bits 0..31, returning bits 32..63 of one mask: one bucket lookup per event.
                let flags = if t_cond == r_cond && bare_target {
                    // Every scanned event is both (the name filter says so).
                    "4294967297::int8".to_string()
                } else if t_cond == r_cond {
                    format!("CASE WHEN {t_cond} THEN 4294967297::int8 ELSE 0::int8 END")
                } else {
                    format!(
                        "(CASE WHEN {t_cond} THEN 1::int8 ELSE 0::int8 END | CASE WHEN {r_cond} THEN 4294967296::int8 ELSE 0::int8 END)"
                    )
                };
                aggs.push(format!("bit_or({flags} << {bucket}) AS m"));
                (
                    "(g.m & 4294967295::int8)".to_string(),
                    "(g.m >> 32)".to_string(),
                )
            }
            RetentionType::Recurring => {
                aggs.push(format!(
                    "bit_or(1::int8 << {bucket}) FILTER (WHERE {t_cond}) AS t"
                ));
                aggs.push(format!(
                    "bit_or(1::int8 << {bucket}) FILTER (WHERE {r_cond}) AS r"
                ));
                ("g.t".to_string(), "g.r".to_string())
            }
            _ => {
                aggs.extend(self.first_ts_aggs);
                aggs.push(format!(
                    "bit_or(1::int8 << {bucket}) FILTER (WHERE {r_in_range}) AS r"
                ));
                (
                    first_cohort_mask(mode, &self.bounds.start, &self.bounds.starts),
                    "g.r".to_string(),
                )
            }
        };
        let g = format!(
            "SELECT {actor_sql} AS actor, {} FROM {from} GROUP BY 1",
            aggs.join(", ")
        );
        (g, t_expr, r_expr)
    }

    /// [`actor_masks`] with `minimumOccurrences` > 1 (bound as `m_p`): count returning events per
    /// (actor, period) first.
    fn with_minimum(self, m_p: &str) -> (String, String, String) {
        let (mode, bucket, src) = (self.mode, self.bucket, self.src);
        let (from, actor_sql) = (&src.from, &src.actor);
        let (t_cond, r_cond, r_in_range) = (&src.t, &src.r, &src.r_in_range);
        let mut inner = Vec::new();
        let mut outer = Vec::new();
        let t_expr = match mode {
            RetentionType::Recurring => {
                inner.push(format!("bool_or({t_cond}) AS has_t"));
                inner.push(format!("count(*) FILTER (WHERE {r_cond}) AS rc"));
                outer.push("bit_or(1::int8 << s.p) FILTER (WHERE s.has_t) AS t".to_string());
                "g.t".to_string()
            }
            _ => {
                inner.extend(self.first_ts_aggs);
                inner.push(format!("count(*) FILTER (WHERE {r_in_range}) AS rc"));
                outer.push("min(s.t0) AS t0".to_string());
                if mode == RetentionType::FirstEverOccurrence {
                    outer.push("min(s.tb) AS tb".to_string());
                }
                first_cohort_mask(mode, &self.bounds.start, &self.bounds.starts)
            }
        };
        outer.push(format!(
            "bit_or(1::int8 << s.p) FILTER (WHERE s.p >= 0 AND s.rc >= {m_p}) AS r"
        ));
        let g = format!(
            "SELECT s.actor, {} FROM (SELECT {actor_sql} AS actor, {bucket} AS p, {} FROM {from} GROUP BY 1, 2) s GROUP BY s.actor",
            outer.join(", "),
            inner.join(", ")
        );
        (g, t_expr, "g.r".to_string())
    }
}

/// Breakdown: each actor's value is that of its first target event (PostHog's argMin).
fn with_breakdown_join(g: String, src: &Source) -> String {
    let Source {
        from,
        actor: actor_sql,
        ts,
        t: t_cond,
        bd,
        ..
    } = src;
    match bd {
        Some(bd) => format!(
            "SELECT g0.*, bdq.bd FROM ({g}) g0 LEFT JOIN (SELECT {actor_sql} AS actor, \
             (array_agg(({bd})::text ORDER BY {ts}) FILTER (WHERE {t_cond}))[1] AS bd \
             FROM {from} GROUP BY 1) bdq ON bdq.actor = g0.actor"
        ),
        None => g,
    }
}

/// The actors of cohort `c` with their return masks.
fn actors_statement(
    q: &InsightQuery,
    project: &Project,
    periods: Periods,
    c: usize,
    masks: &Masks,
    mut b: SqlBuilder,
) -> Result<RetentionPlan> {
    let Masks {
        g,
        t: t_expr,
        r: r_expr,
    } = masks;
    let n = periods.starts.len();
    if c >= n {
        return Err(invalid(
            "selected_interval",
            format!("selected_interval must be below the number of cohorts ({n}), got {c}"),
        ));
    }
    let c_p = b.int(c as i64);
    let sql = format!(
        "SELECT a.actor::text AS actor, a.r FROM (SELECT g.actor, {t_expr} AS t, coalesce({r_expr}, 0::int8) AS r \
         FROM ({g}) g) a WHERE ((a.t >> {c_p}::int4) & 1::int8) = 1::int8"
    );
    // The rollup reads local dates: the timestamp bounds bound above go unused.
    let (sql, params) = b.finish(&sql);
    Ok(retention_plan(q, project, periods, sql, params, None))
}

/// Step 2: actors grouped by mask pair, with their number `w` (and breakdown value).
fn grouped_actors(
    mode: RetentionType,
    rollup: bool,
    src: &Source,
    bucket: &str,
    masks: &Masks,
) -> String {
    let Masks {
        g,
        t: t_expr,
        r: r_expr,
    } = masks;
    let (bd_sel, bd_a) = if src.bd.is_some() {
        (", g.bd", ", a.bd")
    } else {
        ("", "")
    };
    if rollup {
        // Over the rollup, one Rust aggregate keeps each person's first period and period mask
        // and returns how many persons share each pair (`insights._actor_periods`, parallel, a
        // hash map instead of a per-person GROUP BY); the masks follow from the pair.
        let t_of = if mode == RetentionType::Recurring {
            "p.periods".to_string()
        } else {
            "CASE WHEN p.first_period >= 0 THEN 1::int8 << p.first_period ELSE 0::int8 END"
                .to_string()
        };
        let from = &src.from;
        format!(
            "SELECT a.t, a.r, sum(a.w)::int8 AS w \
             FROM (SELECT {t_of} AS t, p.periods AS r, p.actors AS w \
             FROM (SELECT insights._actor_periods(e.person_id, {bucket}::int4) AS s FROM {from}) u \
             CROSS JOIN LATERAL insights._actor_periods_rows(u.s) p) a \
             WHERE a.t <> 0 GROUP BY a.t, a.r"
        )
    } else {
        format!(
            "SELECT a.t, a.r{bd_a}, count(*) AS w \
             FROM (SELECT {t_expr} AS t, coalesce({r_expr}, 0::int8) AS r{bd_sel} FROM ({g}) g) a \
             WHERE a.t <> 0 GROUP BY a.t, a.r{bd_a}"
        )
    }
}

/// Step 3: expand the grouped actors `x` into (cohort, period) cells (`with_breakdown`: a
/// fourth column).
fn cells_statement(
    q: &InsightQuery,
    project: &Project,
    periods: Periods,
    with_breakdown: bool,
    x: &str,
    mut b: SqlBuilder,
) -> Result<RetentionPlan> {
    let r = &q.retention;
    let (n, lookahead) = (periods.starts.len(), periods.lookahead);
    let n_p = b.int(n as i64);
    let kmax_p = b.int(lookahead.min(n) as i64);
    let returned = if r.cumulative {
        let look = if lookahead >= MAX_PERIODS {
            i64::MAX
        } else {
            (1i64 << lookahead) - 1
        };
        let look_p = b.int(look);
        format!("(((x.r >> c.c::int4) & {look_p}) >> k.k::int4) <> 0::int8")
    } else {
        "((x.r >> (c.c + k.k)::int4) & 1::int8) = 1::int8".to_string()
    };
    let (bd_x, bd_group) = if with_breakdown {
        (", x.bd::text AS breakdown", ", 4")
    } else {
        ("", "")
    };
    let sql = format!(
        "SELECT c.c::int4 AS cohort_index, k.k::int4 AS period_index, sum(x.w)::int8 AS actors{bd_x} \
         FROM ({x}) x \
         CROSS JOIN LATERAL generate_series(0, {n_p} - 1) AS c(c) \
         CROSS JOIN LATERAL generate_series(0, least({kmax_p}, {n_p} - c.c) - 1) AS k(k) \
         WHERE ((x.t >> c.c::int4) & 1::int8) = 1::int8 AND (k.k = 0 OR {returned}) \
         GROUP BY 1, 2{bd_group} ORDER BY 1, 2{bd_group}"
    );
    let (sql, params) = b.finish(&sql);
    let breakdown = with_breakdown.then(|| RetentionBreakdown {
        limit: q
            .breakdown
            .as_ref()
            .and_then(|b| b.limit)
            .map(|l| l as usize)
            .unwrap_or(crate::engines::trends::DEFAULT_BREAKDOWN_LIMIT)
            .max(1),
        hide_other: q.breakdown.as_ref().is_some_and(|b| b.hide_other),
    });
    Ok(retention_plan(q, project, periods, sql, params, breakdown))
}

/// The plan around a finished statement.
fn retention_plan(
    q: &InsightQuery,
    project: &Project,
    periods: Periods,
    sql: String,
    params: Vec<Param>,
    breakdown: Option<RetentionBreakdown>,
) -> RetentionPlan {
    RetentionPlan {
        sql,
        params,
        range: RetentionRange {
            starts: periods.starts,
            end: periods.end,
        },
        intervals: periods.lookahead,
        period: periods.period,
        pt: project.pt,
        retention_type: q.retention.retention_type,
        cumulative: q.retention.cumulative,
        breakdown,
        seg: Err("not planned".into()),
    }
}

/// The columnar plan of a retention ([`RetentionSeg`]), or why the segments cannot answer it.
#[allow(clippy::too_many_arguments)] // one call site, in plan_inner
fn seg_plan(
    q: &InsightQuery,
    project: &Project,
    periods: &Periods,
    (rollup, has_breakdown): (bool, bool),
    src: &Source,
    bucket: &str,
    cx: &FilterContext,
    b: &SqlBuilder,
) -> std::result::Result<RetentionSeg, String> {
    if rollup {
        return Err("the person-days rollup answers it".into());
    }
    if q.retention.retention_type != RetentionType::Recurring || src.t != src.r {
        return Err("not a recurring retention of one entity".into());
    }
    if has_breakdown || min_occ_of(q) != 1 {
        return Err("a breakdown or minimum occurrences".into());
    }
    if periods.starts.len() > crate::compile::context::MASK_PERIODS {
        return Err("more than 63 periods".into());
    }
    let from_us = periods.starts[0].timestamp_micros();
    let scan = segments::period_scan(PeriodRun {
        actor: &src.actor,
        conds: &src.filters,
        materialized: cx.materialized,
        interval: periods.period,
        tz: project.pt.tz.name(),
        from_us,
        to_us: periods.end.timestamp_micros() - 1,
        starts: periods
            .starts
            .iter()
            .map(|t| t.timestamp_micros())
            .collect(),
        tail_source: format!(
            "SELECT {} AS actor, {bucket} AS period FROM {} AND {{TAIL}}",
            src.actor, src.from
        ),
        params: b.params.clone(),
    })?;
    // Two distinct placeholder values: the builder would give equal values one parameter.
    let mut b2 = SqlBuilder::new();
    let masks = b2.param(Param::IntArray(vec![0]));
    let actors = b2.param(Param::IntArray(vec![1]));
    if (masks.as_str(), actors.as_str()) != ("$1::int8[]", "$2::int8[]") {
        return Err("the cells statement's parameters".into());
    }
    let x = format!("SELECT u.m AS t, u.m AS r, u.w FROM unnest({masks}, {actors}) AS u(m, w)");
    let cells =
        cells_statement(q, project, periods.clone(), false, &x, b2).map_err(|e| e.to_string())?;
    Ok(RetentionSeg {
        scan,
        sql: cells.sql,
        params: cells.params,
    })
}

/// `minimumOccurrences`, at least 1.
fn min_occ_of(q: &InsightQuery) -> u32 {
    q.retention.minimum_occurrences.max(1)
}

/// The cohort mask of an actor in the first-time modes: the bit of the period of its first
/// target event (`g.t0`), when that is inside the range (and, first-ever, unfiltered-first).
fn first_cohort_mask(mode: RetentionType, start_p: &str, starts_arr: &str) -> String {
    let ever = if mode == RetentionType::FirstEverOccurrence {
        " AND g.t0 = g.tb"
    } else {
        ""
    };
    format!(
        "CASE WHEN g.t0 >= {start_p}{ever} THEN 1::int8 << (width_bucket(g.t0, {starts_arr}) - 1) ELSE 0::int8 END"
    )
}

// ---------------------------------------------------------------------------------------------
// Rendering PostHog's response
// ---------------------------------------------------------------------------------------------

/// The zero-filled `cohorts × intervals` count matrix of the rows (out-of-range rows ignored,
/// duplicates summed).
pub fn matrix(plan: &RetentionPlan, rows: &[Row]) -> Vec<Vec<i64>> {
    let mut m = vec![vec![0i64; plan.intervals]; plan.range.starts.len()];
    for row in rows {
        if let Some(cell) = m.get_mut(row.cohort).and_then(|r| r.get_mut(row.period)) {
            *cell = cell.saturating_add(row.actors);
        }
    }
    m
}

/// PostHog's `result` (docs/retention.md#result): one item per cohort, oldest first,
/// `{"values":[{"count","label":"Day k","people":[]},…], "label":"Day c", "date", "breakdown_value":null}`
/// with `total_intervals` values each (zero-padded), `date` the cohort start in the project
/// timezone (`2020-06-10T00:00:00Z`, or with its offset).
pub fn render(plan: &RetentionPlan, rows: &[Row]) -> Value {
    let title = plan.period.title();
    let m = matrix(plan, rows);
    Value::Array(
        plan.range
            .starts
            .iter()
            .zip(m)
            .enumerate()
            .map(|(c, (start, counts))| {
                json!({
                    "values": counts
                        .iter()
                        .enumerate()
                        .map(|(k, count)| json!({"count": count, "label": format!("{title} {k}"), "people": []}))
                        .collect::<Vec<_>>(),
                    "label": format!("{title} {c}"),
                    "date": dates::iso_string(*start, &plan.pt),
                    "breakdown_value": Value::Null,
                })
            })
            .collect(),
    )
}

/// PostHog's `result` with a breakdown: the full matrix of [`render`] per breakdown value
/// (`rows` are `(breakdown, row)`; a missing or empty value is
/// `$$_posthog_breakdown_null_$$`), values ranked by their total cohort size (the sum of the
/// cohorts' `values[0]`; ties by value), the top `limit` kept and the rest summed into
/// `$$_posthog_breakdown_other_$$` (each actor has one value, so the sums are exact) unless
/// hidden. Values with no actor in any cohort do not appear.
pub fn render_breakdown(plan: &RetentionPlan, rows: &[(Option<String>, Row)]) -> Value {
    use crate::engines::trends::{BREAKDOWN_NULL, BREAKDOWN_OTHER};
    let bd = plan.breakdown.unwrap_or(RetentionBreakdown {
        limit: crate::engines::trends::DEFAULT_BREAKDOWN_LIMIT,
        hide_other: false,
    });
    let mut groups: Vec<(String, Vec<Row>)> = Vec::new();
    for (v, row) in rows {
        let key = v
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(BREAKDOWN_NULL)
            .to_string();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(*row),
            None => groups.push((key, vec![*row])),
        }
    }
    let size = |g: &[Row]| -> i64 { g.iter().filter(|r| r.period == 0).map(|r| r.actors).sum() };
    groups.retain(|(_, g)| size(g) > 0);
    groups.sort_by(|(ka, a), (kb, b)| size(b).cmp(&size(a)).then_with(|| ka.cmp(kb)));
    let mut kept: Vec<(String, Vec<Row>)> = Vec::new();
    let mut other: Vec<Row> = Vec::new();
    for (i, (k, g)) in groups.into_iter().enumerate() {
        if i < bd.limit {
            kept.push((k, g));
        } else {
            other.extend(g);
        }
    }
    if !other.is_empty() && !bd.hide_other {
        kept.push((BREAKDOWN_OTHER.to_string(), other));
    }
    let mut out = Vec::new();
    for (k, g) in kept {
        if let Value::Array(items) = render(plan, &g) {
            for mut item in items {
                if let Value::Object(m) = &mut item {
                    m.insert("breakdown_value".into(), json!(k));
                }
                out.push(item);
            }
        }
    }
    Value::Array(out)
}

/// One typed row for BI tools: (cohort date ISO, cohort label, period index, count, percentage
/// of the cohort size 0–100, 0 for an empty cohort).
pub type RetentionRow = (String, String, i32, i64, f64);

/// Flatten a rendered result into [`RetentionRow`]s, cohort by cohort, period by period.
pub fn rows(result: &Value) -> Vec<RetentionRow> {
    let mut out = Vec::new();
    for cohort in result.as_array().into_iter().flatten() {
        let date = cohort
            .get("date")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let label = cohort
            .get("label")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let values = cohort
            .get("values")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let count_of = |v: &Value| v.get("count").and_then(Value::as_i64).unwrap_or(0);
        let size = values.first().map(count_of).unwrap_or(0);
        for (k, v) in values.iter().enumerate() {
            let count = count_of(v);
            let pct = if size == 0 {
                0.0
            } else {
                count as f64 * 100.0 / size as f64
            };
            out.push((date.clone(), label.clone(), k as i32, count, pct));
        }
    }
    out
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
