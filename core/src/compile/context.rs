//! What every engine's planner shares: the project ([`Project`]) and its lookups ([`Lookups`]),
//! the filter context of a project, the event conditions of one series (entity, its filters, the
//! global filters and the test-account filters), the actor a series counts, the period of a
//! compare query, bucket positions, and small helpers (URL encoding, the Postgres epoch).
//!
//! Every condition is SQL over `insights.events e` whose user values are `$n` parameters of the
//! caller's [`SqlBuilder`]; the builder's first parameter must be the project id (`$1::int8`),
//! which [`with_filter_context`] names in the context.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::compile::dates::{self, DateRange, ProjectTime};
use crate::compile::properties::{self, FilterContext};
use crate::compile::sql::{Param, SqlBuilder};
use crate::error::{QueryError, Result};
use crate::model::{Entity, InsightKind, InsightQuery};

/// What the planner needs to know about the project.
pub struct Project {
    pub id: i64,
    pub pt: ProjectTime,
    pub timezone: String,
    pub test_account_filters: Value,
    /// Whether engines may read the rollups (`insights.person_days`) where they give the same
    /// answer as the events (`pg_insights.use_rollups`).
    pub rollups: bool,
    /// Materialised event properties (key, column), see [`FilterContext::materialized`].
    pub materialized: Vec<(String, String)>,
}

/// Database lookups the planner needs (the extension answers them through SPI).
pub struct Lookups<'a> {
    /// Cohort id → (is_static, filters, name), `None` when missing or deleted.
    pub cohort: &'a dyn Fn(i64) -> Option<(bool, Value, String)>,
    /// Action id → (steps, name), `None` when missing or deleted.
    pub action: &'a dyn Fn(i64) -> Option<(Value, String)>,
}

/// Microseconds between the Unix and the Postgres epoch (2000-01-01).
pub const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// Percent-encode everything but RFC 3986 unreserved characters.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Run `f` with the filter context of `project` over `insights.events e`, whose lookups answer
/// through `lookups`. The project id must be the first parameter of every statement built in it.
pub fn with_filter_context<R>(
    project: &Project,
    lookups: &Lookups,
    f: impl FnOnce(&FilterContext) -> R,
) -> R {
    let cohort = |id: i64| (lookups.cohort)(id).map(|(is_static, filters, _)| (is_static, filters));
    let action = |id: i64| (lookups.action)(id).map(|(steps, _)| steps);
    let cx = FilterContext {
        event_alias: "e",
        project_param: "$1::int8".to_string(),
        person_props: None,
        pt: &project.pt,
        cohort: &cohort,
        action: &action,
        test_account_filters: &project.test_account_filters,
        materialized: &project.materialized,
    };
    f(&cx)
}

/// The conditions (besides project and time) an event must meet to count for `series`: the
/// entity with its own filters, the query's `properties` and, with `filter_test_accounts`, the
/// project's test-account filters. `TRUE` conditions are left out. Errors name `attr` (e.g.
/// `events__0`) for the entity.
pub fn series_conditions(
    q: &InsightQuery,
    series: &Entity,
    attr: &str,
    test_account_filters: &Value,
    b: &mut SqlBuilder,
    cx: &FilterContext,
    now: DateTime<Utc>,
) -> Result<Vec<String>> {
    let mut out =
        vec![properties::compile_entity_at(series, b, cx, now).map_err(|e| e.within(attr))?];
    out.push(
        properties::compile_properties_at(&q.properties, b, cx, now)
            .map_err(|e| e.within("properties"))?,
    );
    if q.filter_test_accounts {
        out.push(
            properties::compile_properties_at(test_account_filters, b, cx, now)
                .map_err(|e| e.within("filter_test_accounts"))?,
        );
    }
    out.retain(|c| c != "TRUE");
    Ok(out)
}

/// The actor a per-actor insight counts: the group key of `unique_group` math or of the query's
/// `aggregation_group_type_index` (empty keys are no actor), the text of `math_hogql` for
/// `hogql` math (NULL is no actor), else the person. Returns the expression and whether it can
/// be NULL (any actor but the person).
pub fn actor_expr(
    q: &InsightQuery,
    series: &Entity,
    attr: &str,
    b: &mut SqlBuilder,
    cx: &FilterContext,
) -> Result<(String, bool)> {
    let group = match series.math.as_deref() {
        Some("unique_group") => Some(series.math_group_type_index.ok_or_else(|| {
            QueryError::invalid(
                format!("{attr}__math_group_type_index"),
                "unique_group math needs math_group_type_index.",
            )
        })?),
        Some("hogql") => {
            let src = series.math_hogql.as_deref().ok_or_else(|| {
                QueryError::invalid(
                    format!("{attr}__math_hogql"),
                    "hogql math needs math_hogql.",
                )
            })?;
            let attr = format!("{attr}__math_hogql");
            return Ok((
                crate::compile::hogql::compile_text(src, &attr, b, cx)?,
                true,
            ));
        }
        _ => q.aggregation_group_type_index,
    };
    Ok(match group {
        Some(g) if g <= 4 => (format!("NULLIF(e.group_{g}, '')"), true),
        Some(g) => {
            return Err(QueryError::invalid(
                "aggregation_group_type_index".to_string(),
                format!("Group type index {g} is out of range (0 to 4)."),
            ));
        }
        None => ("e.person_id".to_string(), false),
    })
}

/// A planner's entry check: the query is of `kind` and has at least one series.
pub fn expect_series_of(q: &InsightQuery, kind: InsightKind, no_series: &str) -> Result<()> {
    if q.kind != kind {
        return Err(QueryError::invalid(
            "insight".to_string(),
            format!(
                "Expected a {} query, got {}.",
                kind.legacy_name().to_lowercase(),
                q.kind.legacy_name()
            ),
        ));
    }
    if q.series.is_empty() {
        return Err(QueryError::invalid("events".to_string(), no_series));
    }
    Ok(())
}

/// The conditions every engine's event scan starts with: the project and the range, inclusive
/// at both ends (the range's `to` is the last microsecond).
pub fn events_in_range(b: &mut SqlBuilder, project_p: &str, range: &DateRange) -> Vec<String> {
    vec![
        format!("e.project_id = {project_p}"),
        format!(
            "e.\"timestamp\" >= {}",
            b.param(Param::timestamp(range.from))
        ),
        format!("e.\"timestamp\" <= {}", b.param(Param::timestamp(range.to))),
    ]
}

/// The query's interval, `day` when it has none.
pub fn query_interval(q: &InsightQuery) -> Result<dates::Interval> {
    q.interval
        .as_deref()
        .map_or(Ok(dates::Interval::Day), dates::Interval::parse)
}

/// The query's date range (`date_from`/`date_to`/`explicit_date`) at `interval`, in the project's
/// time; `earliest` is the project's first event, for `date_from = all`.
pub fn query_range(
    q: &InsightQuery,
    interval: dates::Interval,
    pt: &ProjectTime,
    now: DateTime<Utc>,
    earliest: Option<DateTime<Utc>>,
) -> Result<DateRange> {
    dates::resolve_range(
        q.date_from.as_deref(),
        q.date_to.as_deref(),
        interval,
        q.explicit_date,
        now,
        pt,
        earliest,
    )
}

/// The previous period of a compare query: `compare_to` shifts the range, otherwise the same
/// number of buckets right before it. `None` without compare.
pub fn compare_range(
    q: &InsightQuery,
    range: &DateRange,
    now: DateTime<Utc>,
    pt: &ProjectTime,
) -> Result<Option<DateRange>> {
    let Some(c) = &q.compare else {
        return Ok(None);
    };
    Ok(Some(match c.compare_to.as_deref().map(str::trim) {
        Some(to) if !to.is_empty() => dates::shift_range(range, to, now, pt)?,
        _ => dates::previous_period(range, pt),
    }))
}

/// A bucket start as text Postgres parses back to the same instant (`timestamptz[]` params).
pub fn bucket_param_text(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The most periods the per-actor bit masks of `insights._actor_periods` hold (bits 0..62).
pub const MASK_PERIODS: usize = 63;

/// An int4 SQL expression: the 0-based position of the bucket containing `ts_sql` (a column
/// expression from code) counted from the bucket starting at `first`, in the project timezone.
/// It agrees with [`dates::sql_bucket_expr`] but avoids building timestamps: local dates for
/// day/week/month, whole hours since `first` for hours (hour buckets keep their UTC offset, so
/// the two 01:00 hours of a fall-back night stay apart). Only meaningful for `ts ≥ first`.
pub fn sql_period_index(
    ts_sql: &str,
    interval: dates::Interval,
    pt: &ProjectTime,
    first: DateTime<Utc>,
    b: &mut SqlBuilder,
) -> String {
    use dates::Interval;
    let tz = b.text(pt.tz.name());
    let local_day = dates::day_string(first, Interval::Day, pt);
    match interval {
        Interval::Minute | Interval::Hour => {
            let unit = if interval == Interval::Hour {
                "hour"
            } else {
                "minute"
            };
            let secs = if interval == Interval::Hour { 3600 } else { 60 };
            let t0 = b.param(crate::compile::sql::Param::timestamp(first));
            format!(
                "(div(extract(epoch FROM date_trunc('{unit}', {ts_sql}, {tz})) - extract(epoch FROM {t0}), {secs}))::int4"
            )
        }
        Interval::Day => {
            let d0 = date_param(&local_day, b);
            format!("(({ts_sql} AT TIME ZONE {tz})::date - {d0})")
        }
        Interval::Week => {
            let d0 = date_param(&local_day, b);
            format!("((({ts_sql} AT TIME ZONE {tz})::date - {d0}) / 7)")
        }
        Interval::Month => {
            let (y, m) = (&local_day[..4], &local_day[5..7]);
            let ym0 = b.int(y.parse::<i64>().unwrap_or(0) * 12 + m.parse::<i64>().unwrap_or(0));
            format!(
                "((extract(year FROM ({ts_sql} AT TIME ZONE {tz})) * 12 \
                 + extract(month FROM ({ts_sql} AT TIME ZONE {tz})))::int8 - {ym0})::int4"
            )
        }
    }
}

/// A `date` parameter for a local day `YYYY-MM-DD`. Not `$n::text::date`: that cast depends on
/// DateStyle, so the planner cannot fold it and it parses the text again for every row (measured:
/// ~150 ns a row, more than the rest of the period expression).
fn date_param(day: &str, b: &mut SqlBuilder) -> String {
    match chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d") {
        Ok(d) => b.param(Param::date(d)),
        Err(_) => format!("{}::date", b.text(day)),
    }
}

/// The statement over `insights._actor_periods` (the parallel per-actor mask aggregate): rows
/// `(first_period int4, periods int8, actors int8)`, the number of actors per (smallest period
/// fed, period mask) pair. `source` is a SELECT of `(actor int8, period int4)` rows.
pub fn actor_periods_sql(source: &str) -> String {
    format!(
        "SELECT p.first_period, p.periods, p.actors \
         FROM (SELECT insights._actor_periods(x.actor, x.period) AS s FROM ({source}) x) u \
         CROSS JOIN LATERAL insights._actor_periods_rows(u.s) p"
    )
}
