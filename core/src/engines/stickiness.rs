//! Stickiness: on how many intervals of the range was each actor active? Planning (query → one
//! SQL statement per series and period) and rendering (their rows → PostHog's result items).
//! Rules: `docs/insights.md#stickiness`.
//!
//! # Statement (per series, per period of a compare query)
//! `W` = project, `bucket_start(date_from) ≤ timestamp ≤ date_to`, the series' conditions
//! ([`context::series_conditions`]); `B` = the bucket start in the project timezone.
//! ```sql
//! SELECT s.n::int8 AS intervals, count(*)::int8 AS actors FROM (
//!   SELECT ab.actor, count(*) AS n                                  -- intervalCount = 1
//!     FROM (SELECT <actor> AS actor, B AS bucket FROM insights.events e
//!            WHERE W GROUP BY 1, 2 [HAVING count(*) <op> $value]) ab
//!    GROUP BY 1) s
//!  GROUP BY 1
//! ```
//! With `intervalCount c > 1` the per-actor count is `count(DISTINCT (N − i) / c)` where `i` is
//! the bucket's 1-based position among the range's `N` buckets (joined from a bound array), so
//! the groups of `c` buckets are anchored at the end of the range as PostHog's
//! `age(interval, timestamp, date_to) / c` is. The actors statement keeps the per-actor rows.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::compile::context::{self, bucket_param_text};
use crate::compile::dates::{self, DateRange, Interval, ProjectTime};
use crate::compile::properties::FilterContext;
use crate::compile::sql::{Param, SqlBuilder};
use crate::engines::funnels::{Lookups, Project};
use crate::engines::trends::{SeriesMeta, series_meta};
use crate::error::{QueryError, Result};
use crate::model::{InsightKind, InsightQuery, StickinessComputation};
use crate::segments::{self, PeriodRun, PeriodScan};

/// One statement: rows `(intervals int8, actors int8)`, or, when `masks`, the
/// `(first_period int4, periods int8, actors int8)` rows of [`context::actor_periods_sql`] (turn
/// them into the histogram with [`histogram_of_masks`]).
#[derive(Debug, Clone)]
pub struct StickinessRun {
    pub series_index: usize,
    pub masks: bool,
    /// Buckets of the period (before grouping by `intervalCount`).
    pub buckets: usize,
    pub interval_count: usize,
    /// The previous period of a compare query.
    pub compare: bool,
    /// Number of intervals (buckets grouped by `intervalCount`) of the run's period.
    pub intervals: usize,
    pub sql: String,
    pub params: Vec<Param>,
    /// The same mask rows from the columnar segments (crate::segments), when they can answer.
    pub seg: std::result::Result<PeriodScan, String>,
}

#[derive(Debug, Clone)]
pub struct StickinessPlan {
    pub runs: Vec<StickinessRun>,
    pub interval: Interval,
    pub series: Vec<SeriesMeta>,
    pub cumulative: bool,
    pub compared: bool,
    pub range: DateRange,
    pub pt: ProjectTime,
}

/// The statement of the actors in one data point: rows `(actor text)`.
#[derive(Debug, Clone)]
pub struct StickinessActorsPlan {
    pub sql: String,
    pub params: Vec<Param>,
    pub label: String,
}

/// Stickiness counts intervals of at most an hour: PostHog turns `minute` into `hour`.
fn interval_of(q: &InsightQuery) -> Result<Interval> {
    Ok(
        match q.interval.as_deref().map(Interval::parse).transpose()? {
            None => Interval::Day,
            Some(Interval::Minute) => Interval::Hour,
            Some(i) => i,
        },
    )
}

fn check_kind(q: &InsightQuery) -> Result<()> {
    context::expect_series_of(
        q,
        InsightKind::Stickiness,
        "At least one series is required.",
    )
}

/// The range with its start snapped to the start of its interval (PostHog reads events from
/// `start_of_interval(date_from)`).
fn resolve(
    q: &InsightQuery,
    interval: Interval,
    pt: &ProjectTime,
    now: DateTime<Utc>,
    earliest: Option<DateTime<Utc>>,
) -> Result<DateRange> {
    let mut range = context::query_range(q, interval, pt, now, earliest)?;
    range.from = dates::bucket_start(range.from, interval, pt);
    Ok(range)
}

/// Plan a stickiness query. `now` is the query time; `earliest` the project's first event (for
/// `date_from = all`).
pub fn plan(
    q: &InsightQuery,
    project: &Project,
    lookups: &Lookups,
    now: DateTime<Utc>,
    earliest: Option<DateTime<Utc>>,
) -> Result<StickinessPlan> {
    check_kind(q)?;
    let interval = interval_of(q)?;
    let pt = project.pt;
    let range = resolve(q, interval, &pt, now, earliest)?;
    let compare = context::compare_range(q, &range, now, &pt)?.map(|mut c| {
        c.from = dates::bucket_start(c.from, interval, &pt);
        c
    });
    let series = q
        .series
        .iter()
        .enumerate()
        .map(|(i, e)| series_meta(e, i, lookups))
        .collect::<Result<Vec<_>>>()?;
    let runs = context::with_filter_context(project, lookups, |cx| {
        let mut runs = Vec::new();
        for index in 0..q.series.len() {
            let periods = std::iter::once((false, &range)).chain(compare.iter().map(|c| (true, c)));
            for (is_compare, r) in periods {
                let (intervals, sql, params, seg) =
                    build(q, project, cx, index, r, interval, now, Select::Histogram)?;
                let masks = seg.is_some();
                let seg = seg.unwrap_or_else(|| Err("not the mask form".into()));
                runs.push(StickinessRun {
                    series_index: index,
                    masks,
                    buckets: dates::buckets(r, &pt).len(),
                    interval_count: q.interval_count.max(1) as usize,
                    compare: is_compare,
                    intervals,
                    sql,
                    params,
                    seg,
                });
            }
        }
        Ok::<_, QueryError>(runs)
    })?;
    Ok(StickinessPlan {
        runs,
        interval,
        series,
        cumulative: q.stickiness.computed_as == StickinessComputation::Cumulative,
        compared: compare.is_some(),
        range,
        pt,
    })
}

/// Plan the actors active in exactly `intervals` intervals (at least that many when the query is
/// cumulative) for series `series_index` of the current period.
pub fn plan_actors(
    q: &InsightQuery,
    project: &Project,
    lookups: &Lookups,
    series_index: usize,
    intervals: i64,
    now: DateTime<Utc>,
    earliest: Option<DateTime<Utc>>,
) -> Result<StickinessActorsPlan> {
    check_kind(q)?;
    let Some(entity) = q.series.get(series_index) else {
        return Err(QueryError::invalid(
            "entity_id".to_string(),
            "The entity is not a series of this query.",
        ));
    };
    let interval = interval_of(q)?;
    let range = resolve(q, interval, &project.pt, now, earliest)?;
    let label = series_meta(entity, series_index, lookups)?.label;
    let cumulative = q.stickiness.computed_as == StickinessComputation::Cumulative;
    let (_, sql, params, _) = context::with_filter_context(project, lookups, |cx| {
        build(
            q,
            project,
            cx,
            series_index,
            &range,
            interval,
            now,
            Select::Actors {
                intervals,
                at_least: cumulative,
            },
        )
    })?;
    Ok(StickinessActorsPlan { sql, params, label })
}

/// What a statement returns.
#[derive(Clone, Copy)]
enum Select {
    /// `(intervals, actors)` rows.
    Histogram,
    /// The actors with exactly (or at least) `intervals` intervals.
    Actors { intervals: i64, at_least: bool },
}

/// One statement and the number of intervals of its period; for the mask form, also its
/// columnar plan (or why the segments cannot answer it).
#[allow(clippy::too_many_arguments)] // one call site each in plan and plan_actors
fn build(
    q: &InsightQuery,
    project: &Project,
    cx: &FilterContext,
    index: usize,
    range: &DateRange,
    interval: Interval,
    now: DateTime<Utc>,
    select: Select,
) -> Result<(usize, String, Vec<Param>, MaskForm)> {
    let attr = format!("events__{index}");
    let entity = &q.series[index];
    let mut b = SqlBuilder::new();
    let p = b.int(project.id);
    let (actor, nullable) = context::actor_expr(q, entity, &attr, &mut b, cx)?;
    let mut w = context::events_in_range(&mut b, &p, range);
    let conds = context::series_conditions(
        q,
        entity,
        &attr,
        &project.test_account_filters,
        &mut b,
        cx,
        now,
    )?;
    w.extend(conds.iter().cloned());
    if nullable {
        w.push(format!("{actor} IS NOT NULL"));
    }
    // The criterion counts the events of one interval (a group of `c` buckets).
    let having = |events: &str, b: &mut SqlBuilder| match &q.stickiness.criteria {
        None => String::new(),
        Some(c) => {
            let op = match c.operator.as_str() {
                "lte" => "<=",
                "exact" => "=",
                _ => ">=",
            };
            format!(" HAVING {events} {op} {}", b.int(c.value))
        }
    };
    let buckets = dates::buckets(range, &project.pt);
    let c = q.interval_count.max(1) as usize;
    let intervals = buckets.len().div_ceil(c);
    // The common case (persons, no criterion, at most 63 buckets) feeds each event's bucket
    // position to the parallel mask aggregate instead of grouping (person, bucket) pairs.
    let mask_form = matches!(select, Select::Histogram)
        && q.stickiness.criteria.is_none()
        && !nullable
        && buckets.len() <= context::MASK_PERIODS;
    if let (true, Some(first)) = (mask_form, buckets.first()) {
        let period =
            context::sql_period_index("e.\"timestamp\"", interval, &project.pt, *first, &mut b);
        let source = format!(
            "SELECT {actor} AS actor, {period} AS period FROM insights.events e WHERE {}",
            w.join(" AND ")
        );
        let seg = segments::period_scan(PeriodRun {
            actor: &actor,
            conds: &conds,
            materialized: cx.materialized,
            interval,
            tz: project.pt.tz.name(),
            from_us: range.from.timestamp_micros(),
            to_us: range.to.timestamp_micros(),
            starts: buckets.iter().map(|t| t.timestamp_micros()).collect(),
            tail_source: format!("{source} AND {{TAIL}}"),
            params: b.params.clone(),
        });
        let (sql, params) = b.finish(&context::actor_periods_sql(&source));
        return Ok((intervals, sql, params, Some(seg)));
    }
    let bucket = dates::sql_bucket_expr("e.\"timestamp\"", interval, &project.pt, &mut b);
    let per_actor = if c == 1 {
        let h = having("count(*)", &mut b);
        format!(
            "SELECT ab.actor, count(*) AS n FROM (SELECT {actor} AS actor, {bucket} AS bucket \
             FROM insights.events e WHERE {} GROUP BY 1, 2{h}) ab GROUP BY 1",
            w.join(" AND ")
        )
    } else {
        let arr = b.param(Param::TextArray(
            buckets.iter().map(|t| bucket_param_text(*t)).collect(),
        ));
        let n = b.int(buckets.len() as i64);
        let cp = b.int(c as i64);
        let h = having("sum(ab.events)", &mut b);
        format!(
            "SELECT ag.actor, count(*) AS n FROM (SELECT ab.actor, ({n} - bk.i) / {cp} AS grp \
             FROM (SELECT {actor} AS actor, {bucket} AS bucket, count(*) AS events \
                     FROM insights.events e WHERE {} GROUP BY 1, 2) ab \
             JOIN unnest({arr}::timestamptz[]) WITH ORDINALITY AS bk(b, i) ON bk.b = ab.bucket \
             GROUP BY 1, 2{h}) ag GROUP BY 1",
            w.join(" AND ")
        )
    };
    let sql = match select {
        Select::Histogram => format!(
            "SELECT s.n::int8 AS intervals, count(*)::int8 AS actors FROM ({per_actor}) s GROUP BY 1"
        ),
        Select::Actors {
            intervals,
            at_least,
        } => {
            let op = if at_least { ">=" } else { "=" };
            format!(
                "SELECT s.actor::text AS actor FROM ({per_actor}) s WHERE s.n {op} {}",
                b.int(intervals)
            )
        }
    };
    let (sql, params) = b.finish(&sql);
    Ok((intervals, sql, params, None))
}

/// `Some` for the mask form: its columnar plan, or why the segments cannot answer it.
type MaskForm = Option<std::result::Result<PeriodScan, String>>;

/// The `(intervals, actors)` histogram of mask rows `(first_period, periods, actors)`: an
/// actor's intervals are the distinct groups `(buckets − 1 − i) / c` of its set bits `i`.
pub fn histogram_of_masks(run: &StickinessRun, masks: &[(i32, i64, i64)]) -> Vec<(i64, i64)> {
    let mut hist = vec![0i64; run.intervals + 1];
    let n = run.buckets;
    let c = run.interval_count.max(1);
    for &(_, mask, actors) in masks {
        let mask = mask as u64;
        let k = if c == 1 {
            mask.count_ones() as usize
        } else {
            let mut groups = 0u64;
            for i in (0..n.min(context::MASK_PERIODS)).filter(|i| mask >> i & 1 == 1) {
                groups |= 1 << ((n - 1 - i) / c);
            }
            groups.count_ones() as usize
        };
        if let Some(slot) = hist.get_mut(k).filter(|_| k > 0) {
            *slot += actors;
        }
    }
    (1..hist.len())
        .map(|k| (k as i64, hist[k]))
        .filter(|(_, a)| *a != 0)
        .collect()
}

/// `"3 days"`, `"1 week"`, `"2 hours or more"`.
fn interval_label(k: usize, interval: Interval, cumulative: bool) -> String {
    let unit = interval.as_str();
    let plural = if k == 1 { "" } else { "s" };
    let more = if cumulative { " or more" } else { "" };
    format!("{k} {unit}{plural}{more}")
}

/// PostHog's result items: one per series (and, with compare, `current` then `previous`).
/// `outputs[i]` are the `(intervals, actors)` rows of `plan.runs[i]`.
pub fn render(plan: &StickinessPlan, outputs: &[Vec<(i64, i64)>]) -> Value {
    let items = plan
        .runs
        .iter()
        .zip(outputs)
        .map(|(run, rows)| {
            let n = run.intervals;
            let mut data = vec![0i64; n];
            for &(k, actors) in rows {
                if let Some(slot) = usize::try_from(k).ok().filter(|k| (1..=n).contains(k)) {
                    data[slot - 1] += actors;
                }
            }
            let count: i64 = data.iter().sum();
            if plan.cumulative {
                for i in (0..n.saturating_sub(1)).rev() {
                    data[i] += data[i + 1];
                }
            }
            let meta = &plan.series[run.series_index];
            let mut item = json!({
                "action": meta.action,
                "label": meta.label,
                "count": count,
                "data": data,
                "days": (1..=n).collect::<Vec<_>>(),
                "labels": (1..=n).map(|k| interval_label(k, plan.interval, plan.cumulative)).collect::<Vec<_>>(),
            });
            if plan.compared {
                item["compare"] = json!(true);
                item["compare_label"] = json!(if run.compare { "previous" } else { "current" });
            }
            item
        })
        .collect();
    Value::Array(items)
}

/// The typed rows of a rendered result: `(series label, compare_label, intervals, actors)`.
pub fn rows(result: &Value) -> Vec<(String, Option<String>, i32, f64)> {
    let mut out = Vec::new();
    for item in result.as_array().into_iter().flatten() {
        let label = item["label"].as_str().unwrap_or_default().to_string();
        let compare = item["compare_label"].as_str().map(str::to_string);
        for (k, v) in item["data"].as_array().into_iter().flatten().enumerate() {
            let k = i32::try_from(k + 1).unwrap_or(i32::MAX);
            out.push((label.clone(), compare.clone(), k, v.as_f64().unwrap_or(0.0)));
        }
    }
    out
}

#[cfg(test)]
#[path = "stickiness_tests.rs"]
mod tests;
