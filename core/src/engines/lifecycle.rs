//! Lifecycle: per period, how many actors were new, returning, resurrecting, and (negative)
//! dormant. Planning (query → one SQL statement) and rendering (its rows → PostHog's four
//! items). Rules: `docs/insights.md#lifecycle`.
//!
//! # Statement
//! The window is the output periods `first … last` plus one period on each side: the one before
//! tells returning from resurrecting in `first` and gives `first` its dormant actors; the one
//! after is where the actors of `last` would go dormant (dropped). Periods are numbered by their
//! 1-based position `i` in the bound array of the window's bucket starts, so "the period before"
//! is `i − 1` in every timezone and interval.
//! ```sql
//! WITH pgi_bk AS (SELECT * FROM unnest($buckets::timestamptz[]) WITH ORDINALITY AS bk(b, i)),
//! pgi_ap AS (SELECT <actor> AS actor, B AS b FROM insights.events e WHERE W GROUP BY 1, 2),
//! pgi_s AS (SELECT ap.actor, ap.b, bk.i, lag(bk.i) OVER w AS prev, lead(bk.i) OVER w AS next
//!             FROM pgi_ap ap JOIN pgi_bk bk ON bk.b = ap.b
//!           WINDOW w AS (PARTITION BY ap.actor ORDER BY bk.i)),
//! pgi_st AS (SELECT actor, i, CASE WHEN prev IS NULL AND b = <created bucket of actor> THEN 'new'
//!                                  WHEN prev = i - 1 THEN 'returning' ELSE 'resurrecting' END AS status
//!              FROM pgi_s
//!            UNION ALL
//!            SELECT actor, i + 1, 'dormant' FROM pgi_s WHERE next IS NULL OR next > i + 1)
//! SELECT i::int8, status, count(*)::int8 FROM pgi_st WHERE i BETWEEN 2 AND <N+1> GROUP BY 1, 2
//! ```
//! Each (actor, period) appears once per status, so `count(*)` counts distinct actors. The
//! created bucket is `B(persons.created_at)` (groups: `B(groups.created_at)`).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::compile::context::{self, bucket_param_text};
use crate::compile::dates::{self, DateRange, Interval, ProjectTime};
use crate::compile::properties::FilterContext;
use crate::compile::sql::{Param, SqlBuilder};
use crate::engines::funnels::{Lookups, Project};
use crate::engines::trends::{SeriesMeta, series_meta};
use crate::error::{QueryError, Result};
use crate::model::{InsightKind, InsightQuery};
use crate::segments::{self, PeriodRun, PeriodScan};

/// The four statuses, in PostHog's item order.
pub const STATUSES: [&str; 4] = ["new", "returning", "resurrecting", "dormant"];

#[derive(Debug, Clone)]
pub struct LifecyclePlan {
    /// Rows `(period int8, status text, actors int8)`; period 2 is the first output bucket. When
    /// `masks`, the `(first_period, periods, actors)` rows of [`context::actor_periods_sql`]
    /// instead (turn them into the same rows with [`rows_of_masks`]).
    pub sql: String,
    pub masks: bool,
    pub params: Vec<Param>,
    /// The output bucket starts, `first … last`.
    pub buckets: Vec<DateTime<Utc>>,
    pub interval: Interval,
    pub pt: ProjectTime,
    pub series: SeriesMeta,
    /// The mask rows from the columnar segments (crate::segments), when they can answer.
    pub seg: std::result::Result<PeriodScan, String>,
}

/// The statement of the actors of one status in one period: rows `(actor text)`.
#[derive(Debug, Clone)]
pub struct LifecycleActorsPlan {
    pub sql: String,
    pub params: Vec<Param>,
    pub label: String,
}

/// The parts planning and actors share.
struct Frame {
    interval: Interval,
    /// Output buckets `first … last`.
    buckets: Vec<DateTime<Utc>>,
    /// `first − 1 … last + 1`.
    window: Vec<DateTime<Utc>>,
}

fn frame(
    q: &InsightQuery,
    pt: &ProjectTime,
    now: DateTime<Utc>,
    earliest: Option<DateTime<Utc>>,
) -> Result<Frame> {
    context::expect_series_of(q, InsightKind::Lifecycle, "Lifecycle needs one series.")?;
    let interval = match q.interval.as_deref().map(Interval::parse).transpose()? {
        None => Interval::Day,
        Some(Interval::Minute) => Interval::Hour,
        Some(i) => i,
    };
    let range: DateRange = context::query_range(q, interval, pt, now, earliest)?;
    let buckets = dates::buckets(&range, pt);
    let edge = |b: Option<&DateTime<Utc>>, n: i64| {
        b.and_then(|b| dates::offset_bucket(*b, interval, n, pt))
            .ok_or_else(|| QueryError::bad_date("date_from", "The date range is out of range."))
    };
    let before = edge(buckets.first(), -1)?;
    let after = edge(buckets.last(), 1)?;
    let mut window = Vec::with_capacity(buckets.len() + 2);
    window.push(before);
    window.extend(buckets.iter().copied());
    window.push(after);
    Ok(Frame {
        interval,
        buckets,
        window,
    })
}

/// Lifecycle has no series math (PostHog ignores it): the actors are persons, or the groups of
/// the query's `aggregation_group_type_index`, whatever math a converted trends filter carries.
fn without_math(q: &InsightQuery) -> InsightQuery {
    let mut q = q.clone();
    for e in &mut q.series {
        e.math = None;
        e.math_group_type_index = None;
        e.math_hogql = None;
    }
    q
}

/// Plan a lifecycle query (the first series; a node with more is rejected at parse time).
pub fn plan(
    q: &InsightQuery,
    project: &Project,
    lookups: &Lookups,
    now: DateTime<Utc>,
    earliest: Option<DateTime<Utc>>,
) -> Result<LifecyclePlan> {
    let q = &without_math(q);
    let f = frame(q, &project.pt, now, earliest)?;
    let mut meta = series_meta(&q.series[0], 0, lookups)?;
    if let Value::Object(m) = &mut meta.action {
        m.insert("math".into(), json!("total"));
        // PostHog's lifecycle items carry an action's id as text.
        if let Some(Value::Number(id)) = m.get("id") {
            let id = id.to_string();
            m.insert("id".into(), json!(id));
        }
    }
    let mask_form =
        q.aggregation_group_type_index.is_none() && f.window.len() <= context::MASK_PERIODS;
    let (sql, params, seg) = context::with_filter_context(project, lookups, |cx| {
        if mask_form {
            build_masks(q, project, cx, &f, now)
        } else {
            let (sql, params) = build(q, project, cx, &f, now, None)?;
            Ok((sql, params, Err("not the mask form".into())))
        }
    })?;
    Ok(LifecyclePlan {
        sql,
        masks: mask_form,
        params,
        seg,
        buckets: f.buckets,
        interval: f.interval,
        pt: project.pt,
        series: meta,
    })
}

/// Plan the actors with `status` in the period containing `target` (PostHog's
/// `persons/lifecycle/` `target_date`, snapped in the project timezone).
pub fn plan_actors(
    q: &InsightQuery,
    project: &Project,
    lookups: &Lookups,
    target: DateTime<Utc>,
    status: &str,
    now: DateTime<Utc>,
    earliest: Option<DateTime<Utc>>,
) -> Result<LifecycleActorsPlan> {
    if !STATUSES.contains(&status) {
        return Err(QueryError::invalid(
            "lifecycle_type".to_string(),
            format!("\"{status}\" is not a valid choice: new, returning, resurrecting or dormant."),
        ));
    }
    let q = &without_math(q);
    let f = frame(q, &project.pt, now, earliest)?;
    let target = dates::bucket_start(target, f.interval, &project.pt);
    let period = f
        .window
        .iter()
        .position(|b| *b == target)
        .map(|i| i as i64 + 1);
    let label = series_meta(&q.series[0], 0, lookups)?.label;
    let (sql, params) = context::with_filter_context(project, lookups, |cx| {
        // A target outside the window has no actors: period 0 never matches.
        build(q, project, cx, &f, now, Some((period.unwrap_or(0), status)))
    })?;
    Ok(LifecycleActorsPlan { sql, params, label })
}

/// The statement; `actors` = `Some((period, status))` selects the actors of one data point.
fn build(
    q: &InsightQuery,
    project: &Project,
    cx: &FilterContext,
    f: &Frame,
    now: DateTime<Utc>,
    actors: Option<(i64, &str)>,
) -> Result<(String, Vec<Param>)> {
    let entity = &q.series[0];
    let attr = "events__0";
    let pt = &project.pt;
    let mut b = SqlBuilder::new();
    let p = b.int(project.id);
    let (actor, nullable) = context::actor_expr(q, entity, attr, &mut b, cx)?;
    let (first, end) = (f.window[0], f.window[f.window.len() - 1]);
    let end = dates::offset_bucket(end, f.interval, 1, pt).unwrap_or(end);
    let mut w = vec![
        format!("e.project_id = {p}"),
        format!("e.\"timestamp\" >= {}", b.param(Param::timestamp(first))),
        format!("e.\"timestamp\" < {}", b.param(Param::timestamp(end))),
    ];
    w.extend(context::series_conditions(
        q,
        entity,
        attr,
        &project.test_account_filters,
        &mut b,
        cx,
        now,
    )?);
    if nullable {
        w.push(format!("{actor} IS NOT NULL"));
    }
    let bucket = dates::sql_bucket_expr("e.\"timestamp\"", f.interval, pt, &mut b);
    let created = match q.aggregation_group_type_index {
        Some(g) => {
            let created = dates::sql_bucket_expr("g.created_at", f.interval, pt, &mut b);
            format!(
                "(SELECT {created} FROM insights.groups g WHERE g.project_id = {p} \
                 AND g.group_type_index = {} AND g.group_key = s.actor)",
                b.int(i64::from(g))
            )
        }
        None => {
            let created = dates::sql_bucket_expr("pp.created_at", f.interval, pt, &mut b);
            format!("(SELECT {created} FROM insights.persons pp WHERE pp.id = s.actor)")
        }
    };
    let arr = b.param(Param::TextArray(
        f.window.iter().map(|t| bucket_param_text(*t)).collect(),
    ));
    let last = b.int(f.buckets.len() as i64 + 1);
    let select = match actors {
        None => "SELECT st.i::int8, st.status, count(*)::int8 FROM pgi_st st \
                 WHERE st.i BETWEEN 2 AND {last} GROUP BY 1, 2"
            .replace("{last}", &last),
        Some((period, status)) => format!(
            "SELECT st.actor::text FROM pgi_st st WHERE st.i = {} AND st.status = {}",
            b.int(period),
            b.text(status)
        ),
    };
    let sql = format!(
        "WITH pgi_bk AS (SELECT * FROM unnest({arr}::timestamptz[]) WITH ORDINALITY AS bk(b, i)), \
         pgi_ap AS (SELECT {actor} AS actor, {bucket} AS b FROM insights.events e WHERE {w} GROUP BY 1, 2), \
         pgi_s AS (SELECT ap.actor, ap.b, bk.i, lag(bk.i) OVER w AS prev, lead(bk.i) OVER w AS next \
                     FROM pgi_ap ap JOIN pgi_bk bk ON bk.b = ap.b \
                   WINDOW w AS (PARTITION BY ap.actor ORDER BY bk.i)), \
         pgi_st AS (SELECT s.actor, s.i, CASE WHEN s.prev IS NULL AND s.b = {created} THEN 'new' \
                                          WHEN s.prev = s.i - 1 THEN 'returning' \
                                          ELSE 'resurrecting' END AS status FROM pgi_s s \
                    UNION ALL \
                    SELECT s.actor, s.i + 1, 'dormant' FROM pgi_s s WHERE s.next IS NULL OR s.next > s.i + 1) \
         {select}",
        w = w.join(" AND ")
    );
    Ok(b.finish(&sql))
}

/// Marks a person's creation period in the mask aggregate: fed as period `CREATED - i` (below
/// every real period, so the aggregate's smallest period carries it).
const CREATED: i32 = -1000;

/// The mask form (persons, at most 63 window periods): every matching event feeds its window
/// position, and every person created inside the window feeds `CREATED - position`, to the
/// parallel `insights._actor_periods` aggregate; [`rows_of_masks`] derives the statuses.
fn build_masks(
    q: &InsightQuery,
    project: &Project,
    cx: &FilterContext,
    f: &Frame,
    now: DateTime<Utc>,
) -> Result<(String, Vec<Param>, std::result::Result<PeriodScan, String>)> {
    let entity = &q.series[0];
    let pt = &project.pt;
    let mut b = SqlBuilder::new();
    let p = b.int(project.id);
    let (first, end) = (f.window[0], f.window[f.window.len() - 1]);
    let end = dates::offset_bucket(end, f.interval, 1, pt).unwrap_or(end);
    let (from_p, to_p) = (
        b.param(Param::timestamp(first)),
        b.param(Param::timestamp(end)),
    );
    let mut w = vec![
        format!("e.project_id = {p}"),
        format!("e.\"timestamp\" >= {from_p}"),
        format!("e.\"timestamp\" < {to_p}"),
    ];
    let conds = context::series_conditions(
        q,
        entity,
        "events__0",
        &project.test_account_filters,
        &mut b,
        cx,
        now,
    )?;
    w.extend(conds.iter().cloned());
    let period = context::sql_period_index("e.\"timestamp\"", f.interval, pt, first, &mut b);
    let created = context::sql_period_index("pp.created_at", f.interval, pt, first, &mut b);
    let events = format!(
        "SELECT e.person_id AS actor, {period} AS period FROM insights.events e WHERE {}",
        w.join(" AND ")
    );
    let created = format!(
        "SELECT pp.id, {CREATED} - {created} FROM insights.persons pp WHERE pp.project_id = {p} \
            AND pp.created_at >= {from_p} AND pp.created_at < {to_p}"
    );
    // The segments answer the events; the creation periods always come from the persons table.
    let seg = segments::period_scan(PeriodRun {
        actor: "e.person_id",
        conds: &conds,
        materialized: cx.materialized,
        interval: f.interval,
        tz: pt.tz.name(),
        from_us: first.timestamp_micros(),
        to_us: end.timestamp_micros() - 1,
        starts: f.window.iter().map(|t| t.timestamp_micros()).collect(),
        tail_source: format!("{events} AND {{TAIL}} UNION ALL {created}"),
        params: b.params.clone(),
    });
    let source = format!("{events} UNION ALL {created}");
    let (sql, params) = b.finish(&context::actor_periods_sql(&source));
    Ok((sql, params, seg))
}

/// The statement's `(period, status, actors)` rows from mask rows `(first_period, periods,
/// actors)`: bit `i` of `periods` is window position `i + 1`; a `first_period` at or below
/// [`CREATED`] names the creation period. `window` is the number of window periods.
pub fn rows_of_masks(masks: &[(i32, i64, i64)], window: usize) -> Vec<(i64, String, i64)> {
    let mut tally: std::collections::BTreeMap<(i64, &str), i64> = Default::default();
    for &(first, mask, actors) in masks {
        let mask = mask as u64;
        if mask == 0 {
            continue; // created in the window, no matching event
        }
        let created = (first <= CREATED).then(|| i64::from(CREATED - first));
        let lowest = i64::from(mask.trailing_zeros());
        let bit = |i: i64| (0..window as i64).contains(&i) && mask >> i & 1 == 1;
        for i in (0..window as i64).filter(|i| bit(*i)) {
            let status = if i == lowest && created == Some(i) {
                "new"
            } else if bit(i - 1) {
                "returning"
            } else {
                "resurrecting"
            };
            *tally.entry((i + 1, status)).or_default() += actors;
            if !bit(i + 1) {
                *tally.entry((i + 2, "dormant")).or_default() += actors;
            }
        }
    }
    tally
        .into_iter()
        .map(|((period, status), n)| (period, status.to_string(), n))
        .collect()
}

/// PostHog's four items (new, returning, resurrecting, dormant). `rows` are the statement's
/// `(period, status, actors)`.
pub fn render(plan: &LifecyclePlan, rows: &[(i64, String, i64)]) -> Value {
    let n = plan.buckets.len();
    let days: Vec<String> = plan
        .buckets
        .iter()
        .map(|b| dates::day_string(*b, plan.interval, &plan.pt))
        .collect();
    let labels: Vec<String> = plan
        .buckets
        .iter()
        .map(|b| dates::label_string(*b, plan.interval, &plan.pt))
        .collect();
    let items = STATUSES
        .iter()
        .map(|status| {
            let sign = if *status == "dormant" { -1.0 } else { 1.0 };
            let mut data = vec![0.0f64; n];
            for (period, s, actors) in rows {
                let slot = usize::try_from(*period - 2).ok().filter(|i| *i < n);
                if let (Some(i), true) = (slot, s == status) {
                    data[i] += sign * *actors as f64;
                }
            }
            json!({
                "action": plan.series.action,
                "label": format!("{} - {status}", plan.series.label),
                "status": status,
                "count": data.iter().sum::<f64>(),
                "data": data,
                "days": days,
                "labels": labels,
            })
        })
        .collect();
    Value::Array(items)
}

/// The typed rows of a rendered result: `(status, bucket, value)`.
pub fn rows(plan: &LifecyclePlan, result: &Value) -> Vec<(String, DateTime<Utc>, f64)> {
    let mut out = Vec::new();
    for item in result.as_array().into_iter().flatten() {
        let status = item["status"].as_str().unwrap_or_default();
        for (b, v) in plan
            .buckets
            .iter()
            .zip(item["data"].as_array().into_iter().flatten())
        {
            out.push((status.to_string(), *b, v.as_f64().unwrap_or(0.0)));
        }
    }
    out
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
