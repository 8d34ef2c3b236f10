//! Behavioural cohort criteria (docs/api.md#cohorts): "the person performed an event (or an
//! action) N times in the last X days" and its relatives, compiled in *person scope* to
//! subqueries over the person's events (`insights.events`, whose `person_id` is rewritten on
//! merges, so a merged person's events all count).
//!
//! Shapes (PostHog's cohort filters):
//! * `{"type":"behavioral","value":KIND,"key":EVENT|ACTION_ID,"event_type":"events"|"actions",
//!   "time_value":N,"time_interval":"hour"|"day"|"week"|"month"|"year","event_filters":[…]}`
//!   with KIND one of `performed_event` (at least once in the window; `explicit_datetime` may
//!   replace the window start), `performed_event_multiple` (`operator` gte/gt/lte/lt/eq/exact and
//!   `operator_value`), `performed_event_first_time` (the first matching event ever falls in the
//!   window), `stopped_performing_event` (performed in [now − time, now − seq_time) and not since;
//!   `seq_time_value` / `seq_time_interval`). `restarted_performing_event`,
//!   `performed_event_regularly` and `performed_event_sequence` are rejected (22023 on `…__value`).
//! * Legacy groups `{"event_id"|"action_id", "days", "count", "count_operator"}`: performed
//!   `count_operator count` times (default: at least once) in the last `days` days (all time
//!   without `days`).
//!
//! Windows are `(start, now)`, both exclusive, as PostHog's `timestamp > now() - INTERVAL …
//! AND timestamp < now()`; months and years are calendar months in UTC.

use chrono::{DateTime, Months, TimeDelta, Utc};
use serde_json::{Map, Value};

use super::{Compiler, FilterContext, and_all, bad_json, invalid, shown};
use crate::compile::dates::{self, ParsedDate};
use crate::compile::sql::{Param, SqlBuilder};
use crate::error::{QueryError, Result};

/// What a criterion counts: events of one name, or events matching an action.
enum Target {
    Event(String),
    Action(i64),
}

/// A comparison of the number of matching events.
#[derive(Clone, Copy, PartialEq)]
enum CountOp {
    Gte,
    Gt,
    Lte,
    Lt,
    Eq,
}

impl CountOp {
    fn sql(self) -> &'static str {
        match self {
            CountOp::Gte => ">=",
            CountOp::Gt => ">",
            CountOp::Lte => "<=",
            CountOp::Lt => "<",
            CountOp::Eq => "=",
        }
    }
}

/// One count condition: matching events in `(since, until)` compared with `n`.
struct Count<'t> {
    target: &'t Target,
    filters: &'t Value,
    since: Option<DateTime<Utc>>,
    until: DateTime<Utc>,
    op: CountOp,
    n: i64,
}

impl Compiler<'_, '_> {
    /// A `type: behavioral` filter (person scope only; the caller applies `negation`).
    pub(super) fn behavioral(
        &mut self,
        m: &Map<String, Value>,
        attr: &str,
        b: &mut SqlBuilder,
    ) -> Result<String> {
        let vattr = format!("{attr}__value");
        let kind = match m.get("value") {
            Some(Value::String(s)) => s.as_str(),
            None | Some(Value::Null) => return Err(invalid(&vattr, "This field is required.")),
            Some(_) => return Err(bad_json(&vattr, "Not a valid string.")),
        };
        let target = behavioral_target(m, attr)?;
        let filters = m.get("event_filters").unwrap_or(&Value::Null);
        let now = self.now;
        let count = |since, until, op, n| Count {
            target: &target,
            filters,
            since,
            until,
            op,
            n,
        };
        match kind {
            "performed_event" => {
                let since = match m.get("explicit_datetime").filter(|v| !v.is_null()) {
                    Some(v) => self.explicit_start(v, &format!("{attr}__explicit_datetime"))?,
                    None => window_start(m, attr, "time_value", "time_interval", now)?,
                };
                self.count_condition(count(Some(since), now, CountOp::Gte, 1), attr, b)
            }
            "performed_event_multiple" => {
                let since = window_start(m, attr, "time_value", "time_interval", now)?;
                let (op, n) = count_operator(m, attr, "operator", "operator_value")?;
                self.count_condition(count(Some(since), now, op, n), attr, b)
            }
            "performed_event_first_time" => {
                let since = window_start(m, attr, "time_value", "time_interval", now)?;
                self.first_time(&target, filters, since, attr, b)
            }
            "stopped_performing_event" => {
                let since = window_start(m, attr, "time_value", "time_interval", now)?;
                let seq = window_start(m, attr, "seq_time_value", "seq_time_interval", now)?;
                if seq <= since {
                    return Err(invalid(
                        &format!("{attr}__seq_time_value"),
                        "The period in which the event stopped must be shorter than the whole period",
                    ));
                }
                let before =
                    self.count_condition(count(Some(since), seq, CountOp::Gte, 1), attr, b)?;
                // "Not since": nothing in [seq, now); the seq boundary itself belongs here.
                let since_seq = seq - TimeDelta::microseconds(1);
                let after =
                    self.count_condition(count(Some(since_seq), now, CountOp::Eq, 0), attr, b)?;
                Ok(format!("({before} AND {after})"))
            }
            "restarted_performing_event"
            | "performed_event_regularly"
            | "performed_event_sequence" => Err(invalid(
                &vattr,
                format!(
                    "The behavioral cohort filter '{kind}' is not supported: it cannot be evaluated exactly here"
                ),
            )),
            other => Err(invalid(
                &vattr,
                format!("Unknown behavioral cohort filter '{}'", shown(other)),
            )),
        }
    }

    /// A legacy cohort group with `event_id` or `action_id` (ANDed with its `properties` by the
    /// caller).
    pub(super) fn legacy_behavioral(
        &mut self,
        m: &Map<String, Value>,
        attr: &str,
        b: &mut SqlBuilder,
    ) -> Result<String> {
        let target = match (
            m.get("action_id").filter(|v| !v.is_null()),
            m.get("event_id"),
        ) {
            (Some(v), _) => Target::Action(id_value(v, &format!("{attr}__action_id"))?),
            (None, Some(Value::String(e))) if !e.is_empty() => Target::Event(e.clone()),
            (None, _) => {
                return Err(invalid(
                    &format!("{attr}__event_id"),
                    "Not a valid event name.",
                ));
            }
        };
        let since = match m.get("days").filter(|v| !v.is_null()) {
            None => None,
            Some(v) => {
                let days = positive(v, &format!("{attr}__days"))?;
                Some(
                    shift(self.now, days, "day")
                        .ok_or_else(|| invalid(&format!("{attr}__days"), "Too many days"))?,
                )
            }
        };
        let (op, n) = if m.get("count").is_some_and(|v| !v.is_null()) {
            count_operator(m, attr, "count_operator", "count")?
        } else {
            (CountOp::Gte, 1)
        };
        let c = Count {
            target: &target,
            filters: &Value::Null,
            since,
            until: self.now,
            op,
            n,
        };
        self.count_condition(c, attr, b)
    }

    /// `explicit_datetime`: an absolute or relative date in the project timezone.
    fn explicit_start(&self, v: &Value, attr: &str) -> Result<DateTime<Utc>> {
        let s = v
            .as_str()
            .ok_or_else(|| bad_json(attr, "Not a valid string."))?;
        match dates::parse_relative_or_absolute(s, self.now, self.cx.pt, attr)? {
            ParsedDate::Absolute { at, .. } | ParsedDate::Relative { at, .. } => Ok(at),
            ParsedDate::All => Ok(DateTime::<Utc>::MIN_UTC),
        }
    }

    /// The person's matching events, compiled over a fresh alias of `insights.events`: the
    /// target (an event name, or the action's steps) and the criterion's `event_filters`.
    fn matching_events(
        &mut self,
        target: &Target,
        filters: &Value,
        attr: &str,
        b: &mut SqlBuilder,
    ) -> Result<(String, String)> {
        self.aliases += 1;
        let ea = format!("pgi_b{}", self.aliases);
        let sub_cx = FilterContext {
            event_alias: &ea,
            project_param: self.cx.project_param.clone(),
            ..*self.cx
        };
        let mut sub = Compiler::new(&sub_cx, self.now);
        sub.aliases = self.aliases;
        sub.cohort_stack = self.cohort_stack.clone();
        let matcher = match target {
            Target::Event(name) => format!("({ea}.event = {})", b.text(name.as_str())),
            Target::Action(id) => sub.action(*id, b).map_err(|e| QueryError {
                attr: Some(format!("{attr}__key")),
                ..e
            })?,
        };
        let props = sub.properties(filters, &format!("{attr}__event_filters"), b)?;
        self.aliases = sub.aliases;
        let pid = self.person_id();
        let cond = and_all(vec![
            format!("{ea}.project_id = {}", self.cx.project_param),
            format!("{ea}.person_id = {pid}"),
            matcher,
            props,
        ]);
        Ok((ea, cond))
    }

    fn count_condition(&mut self, c: Count, attr: &str, b: &mut SqlBuilder) -> Result<String> {
        let (ea, cond) = self.matching_events(c.target, c.filters, attr, b)?;
        let mut window = Vec::new();
        if let Some(since) = c.since {
            window.push(format!(
                "{ea}.\"timestamp\" > {}",
                b.param(Param::timestamp(since))
            ));
        }
        window.push(format!(
            "{ea}.\"timestamp\" < {}",
            b.param(Param::timestamp(c.until))
        ));
        let from = format!(
            "FROM insights.events {ea} WHERE {cond} AND {}",
            window.join(" AND ")
        );
        Ok(match (c.op, c.n) {
            (CountOp::Gte, 1) | (CountOp::Gt, 0) => format!("(EXISTS (SELECT 1 {from}))"),
            (CountOp::Eq, 0) | (CountOp::Lte, 0) | (CountOp::Lt, 1) => {
                format!("(NOT EXISTS (SELECT 1 {from}))")
            }
            (op, n) => format!("((SELECT count(*) {from}) {} {})", op.sql(), b.int(n)),
        })
    }

    /// The person's first matching event ever falls after `since` (and before now).
    fn first_time(
        &mut self,
        target: &Target,
        filters: &Value,
        since: DateTime<Utc>,
        attr: &str,
        b: &mut SqlBuilder,
    ) -> Result<String> {
        let (ea, cond) = self.matching_events(target, filters, attr, b)?;
        let first =
            format!("(SELECT min({ea}.\"timestamp\") FROM insights.events {ea} WHERE {cond})");
        Ok(format!(
            "coalesce({first} > {} AND {first} < {}, false)",
            b.param(Param::timestamp(since)),
            b.param(Param::timestamp(self.now))
        ))
    }
}

/// `key` + `event_type`: an event name, or an action id.
fn behavioral_target(m: &Map<String, Value>, attr: &str) -> Result<Target> {
    let kattr = format!("{attr}__key");
    let key = m.get("key").filter(|v| !v.is_null());
    match m
        .get("event_type")
        .and_then(Value::as_str)
        .unwrap_or("events")
    {
        "events" => match key {
            Some(Value::String(s)) if !s.is_empty() => Ok(Target::Event(s.clone())),
            None => Err(invalid(&kattr, "This field is required.")),
            Some(_) => Err(bad_json(&kattr, "Not a valid event name.")),
        },
        "actions" => match key {
            Some(v) => Ok(Target::Action(id_value(v, &kattr)?)),
            None => Err(invalid(&kattr, "This field is required.")),
        },
        other => Err(invalid(
            &format!("{attr}__event_type"),
            format!(
                "event_type must be events or actions, got '{}'",
                shown(other)
            ),
        )),
    }
}

/// An id as a JSON number or a numeric string.
fn id_value(v: &Value, attr: &str) -> Result<i64> {
    let id = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    id.filter(|&i| i > 0)
        .ok_or_else(|| invalid(attr, "A valid action id is required."))
}

/// A positive whole number (JSON number or numeric string), at most 100 000.
fn positive(v: &Value, attr: &str) -> Result<i64> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    n.filter(|&n| (1..=100_000).contains(&n)).ok_or_else(|| {
        invalid(
            attr,
            "A positive whole number (at most 100000) is required.",
        )
    })
}

/// `now` minus `n` units (calendar months and years).
fn shift(now: DateTime<Utc>, n: i64, unit: &str) -> Option<DateTime<Utc>> {
    let months = |k: i64| now.checked_sub_months(Months::new(u32::try_from(k).ok()?));
    match unit {
        "minute" => now.checked_sub_signed(TimeDelta::try_minutes(n)?),
        "hour" => now.checked_sub_signed(TimeDelta::try_hours(n)?),
        "day" => now.checked_sub_signed(TimeDelta::try_days(n)?),
        "week" => now.checked_sub_signed(TimeDelta::try_weeks(n)?),
        "month" => months(n),
        "year" => months(n.checked_mul(12)?),
        _ => None,
    }
}

/// The start of a `time_value` + `time_interval` window ending now.
fn window_start(
    m: &Map<String, Value>,
    attr: &str,
    value_key: &str,
    interval_key: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>> {
    let vattr = format!("{attr}__{value_key}");
    let n = match m.get(value_key).filter(|v| !v.is_null()) {
        Some(v) => positive(v, &vattr)?,
        None => return Err(invalid(&vattr, "This field is required.")),
    };
    let iattr = format!("{attr}__{interval_key}");
    let unit = match m.get(interval_key) {
        Some(Value::String(u)) => u.as_str(),
        None | Some(Value::Null) => return Err(invalid(&iattr, "This field is required.")),
        Some(_) => return Err(bad_json(&iattr, "Not a valid string.")),
    };
    if !["minute", "hour", "day", "week", "month", "year"].contains(&unit) {
        return Err(invalid(
            &iattr,
            format!(
                "The interval must be minute, hour, day, week, month or year, got '{}'",
                shown(unit)
            ),
        ));
    }
    shift(now, n, unit).ok_or_else(|| invalid(&vattr, "The period is too long."))
}

/// A count comparison: `op_key` (gte default, gt, lte, lt, eq/exact) and the whole number at
/// `value_key` (0 or more).
fn count_operator(
    m: &Map<String, Value>,
    attr: &str,
    op_key: &str,
    value_key: &str,
) -> Result<(CountOp, i64)> {
    let op = match m.get(op_key).and_then(Value::as_str) {
        None | Some("gte") => CountOp::Gte,
        Some("gt") => CountOp::Gt,
        Some("lte") => CountOp::Lte,
        Some("lt") => CountOp::Lt,
        Some("eq") | Some("exact") => CountOp::Eq,
        Some(other) => {
            return Err(invalid(
                &format!("{attr}__{op_key}"),
                format!(
                    "The count operator must be gte, gt, lte, lt or eq, got '{}'",
                    shown(other)
                ),
            ));
        }
    };
    let vattr = format!("{attr}__{value_key}");
    let n = match m.get(value_key) {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        None | Some(Value::Null) => return Err(invalid(&vattr, "This field is required.")),
        _ => None,
    }
    .filter(|&n| (0..=1_000_000_000).contains(&n))
    .ok_or_else(|| invalid(&vattr, "A whole number of times (0 or more) is required."))?;
    Ok((op, n))
}
