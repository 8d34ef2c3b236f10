//! Trends actors (`persons/trends/`, docs/trends.md#actors): the actors behind one data point of a
//! trends result.
//! Pure Rust; the extension runs the one statement planned here.
//!
//! The request is the trends filter plus what the result item's `persons_urls` carry:
//! `entity_id` / `entity_type` / `entity_math` (which series), `date_from` / `date_to` (the
//! bucket, exact bounds) and `breakdown_value`. The statement returns the distinct actors (person
//! ids, or group keys when the series aggregates groups) whose events count in that point:
//!
//! ```sql
//! SELECT DISTINCT <actor>::text AS actor FROM insights.events e
//!  WHERE e.project_id = $1 AND e."timestamp" >= $from AND e."timestamp" <= $to
//!    AND <entity> AND <global properties> AND <test accounts> [AND <cohort>] [AND <breakdown = value>]
//!    AND <actor> IS NOT NULL
//! ```
//! * Every math counts the actors with at least one matching event in the bucket (for `total`
//!   and the property maths those are the persons whose events were counted; for `dau` they are
//!   exactly the counted persons).
//! * `weekly_active` / `monthly_active` with a day/hour/minute interval widen the window to the
//!   7 / 30 days ending with the bucket (as the trends statement does); in total-value displays
//!   the window is the 7 / 30 days ending at `date_to`.
//! * `first_time_for_user[_with_filters]`: the first-time condition of the series.
//! * Breakdowns: a property breakdown matches the value (`$$_posthog_breakdown_null_$$` matches a
//!   missing or empty value), a multi-breakdown each part, a cohort breakdown the cohort (or
//!   everyone for `all`). The Other bucket and histogram bins depend on the whole query range,
//!   which the data point's URL no longer carries: they are rejected (22023 on
//!   `breakdown_value`).
//! * Formulas have no actors of their own: the request names one of the series.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::compile::context::{self, with_filter_context};
use crate::compile::dates::{self, DateRange, Interval, ProjectTime};
use crate::compile::properties::{self, FilterContext, TRUE_SQL};
use crate::compile::sql::SqlBuilder;
use crate::engines::funnels::{Lookups, Project};
use crate::engines::trends::{
    BREAKDOWN_NULL, BREAKDOWN_OTHER, Math, normalize_url, parse_math, series_filters, series_meta,
};
use crate::error::{QueryError, Result};
use crate::model::{
    BreakdownProperty, BreakdownSpec, CohortRef, Entity, EntityKind, InsightKind, InsightQuery,
};

/// A planned trends-actors statement.
#[derive(Debug, Clone)]
pub struct TrendsActorsPlan {
    /// Returns one row per actor: `(actor text)`.
    pub sql: String,
    pub params: Vec<crate::compile::sql::Param>,
    /// `Some(g)` when the actors are groups of type `g` (group keys), `None` for persons.
    pub group_type_index: Option<u8>,
    /// The series label (`custom_name`, event name, action name or `All events`).
    pub label: String,
    /// The series' math.
    pub math: String,
}

fn invalid(attr: &str, detail: impl Into<String>) -> QueryError {
    QueryError::invalid(attr.to_string(), detail)
}

/// A request value as text: strings as they are, other JSON as its text; `None` when missing,
/// null or blank.
fn text_of(req: &Value, key: &str) -> Option<String> {
    match req.get(key)? {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The entity id as `persons_urls` spell it: the event name, `""` for All events, the action id.
fn entity_id_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The series the request names (PostHog's `get_target_entity`): the query's series with that
/// `entity_id` and `entity_type` (and `entity_math`, when given and one matches); else, with an
/// `entity_type`, an entity built from the three parameters; without `entity_id` the first series.
fn target_entity(q: &InsightQuery, req: &Value, lookups: &Lookups) -> Result<(usize, Entity)> {
    let id = req.get("entity_id").filter(|v| !v.is_null());
    let ty = text_of(req, "entity_type");
    let math = text_of(req, "entity_math");
    let Some(id) = id else {
        return match q.series.first() {
            Some(e) => Ok((0, e.clone())),
            None => Err(invalid(
                "entity_id",
                "An entity must be provided for target entity to be determined",
            )),
        };
    };
    let id = entity_id_text(id);
    let mut candidates = Vec::new();
    for (i, e) in q.series.iter().enumerate() {
        let meta = series_meta(e, i, lookups).map_err(|er| er.within(&format!("events__{i}")))?;
        if entity_id_text(&meta.entity_id) == id
            && ty.as_deref().is_none_or(|t| t == meta.entity_type)
        {
            candidates.push((i, e, meta.math));
        }
    }
    let picked = match &math {
        Some(m) => candidates
            .iter()
            .find(|(_, _, cm)| cm == m)
            .or(candidates.first()),
        None => candidates.first(),
    };
    if let Some((i, e, _)) = picked {
        return Ok((*i, (*e).clone()));
    }
    let kind = match ty.as_deref() {
        Some("events") => EntityKind::Event {
            name: (!id.is_empty() && id != "null").then(|| id.clone()),
        },
        Some("actions") => EntityKind::Action {
            id: id.trim().parse().map_err(|_| {
                invalid(
                    "entity_id",
                    format!("An action id must be an integer, got \"{}\"", shown(&id)),
                )
            })?,
        },
        Some(other) => {
            return Err(invalid(
                "entity_type",
                format!(
                    "entity_type must be \"events\" or \"actions\", got \"{}\"",
                    shown(other)
                ),
            ));
        }
        None => {
            return Err(invalid(
                "entity_type",
                "entity_type is required when entity_id names no series of the query",
            ));
        }
    };
    let mut e = Entity::new(kind);
    e.math = math;
    Ok((q.series.len(), e))
}

fn shown(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Plan the actors of one data point. `req` is the request object (the filter plus
/// `entity_id`, `entity_type`, `entity_math`, `breakdown_value`); `q` its parsed query, whose
/// `date_from` / `date_to` are the data point's bounds.
///
/// The phases: the series and its range; its filters (`series_filters`) and those of the
/// breakdown value (`breakdown_value_filters`); the window (`window_start`); the actor and
/// the statement.
pub fn plan_actors(
    q: &InsightQuery,
    req: &Value,
    project: &Project,
    lookups: &Lookups,
    now: DateTime<Utc>,
    earliest: Option<DateTime<Utc>>,
) -> Result<TrendsActorsPlan> {
    if q.kind != InsightKind::Trends {
        return Err(invalid(
            "insight",
            format!("Expected a trends query, got {}.", q.kind.legacy_name()),
        ));
    }
    let (index, e) = target_entity(q, req, lookups)?;
    let attr = format!("events__{index}");
    let math = parse_math(&e, &attr)?;
    let meta = series_meta(&e, index, lookups).map_err(|er| er.within(&attr))?;
    let interval = context::query_interval(q)?;
    let pt = project.pt;
    let range = context::query_range(q, interval, &pt, now, earliest)?;
    let total_value = q.trends.is_total_value();

    let mut b = SqlBuilder::new();
    let p = b.int(project.id);
    with_filter_context(project, lookups, |cx| {
        let mut filters = series_filters(q, &e, &math, &attr, &mut b, cx, now)?;
        breakdown_value_filters(q, req, &mut filters, &mut b, cx, now)?;

        let from = window_start(&math, total_value, &range, interval, &pt);
        let from_p = b.param(crate::compile::sql::Param::timestamp(from));
        let to_p = b.param(crate::compile::sql::Param::timestamp(range.to));

        let group_type_index = match (&math, q.aggregation_group_type_index) {
            (Math::UniqueGroup(g), _) => Some(*g),
            (_, Some(g)) if g <= 4 => Some(g),
            (_, Some(g)) => {
                return Err(invalid(
                    "aggregation_group_type_index",
                    format!("aggregation_group_type_index must be between 0 and 4, got {g}"),
                ));
            }
            _ => None,
        };
        let actor = match group_type_index {
            Some(g) => format!("NULLIF(e.group_{g}, '')"),
            None => "e.person_id".to_string(),
        };
        let mut w = vec![
            format!("e.project_id = {p}"),
            format!("e.\"timestamp\" >= {from_p}"),
            format!("e.\"timestamp\" <= {to_p}"),
        ];
        w.extend(filters.into_iter().filter(|f| f != TRUE_SQL));
        if matches!(math, Math::UniqueSession) {
            w.push("e.session_id <> ''".to_string());
        }
        w.push(format!("{actor} IS NOT NULL"));
        let sql = format!(
            "SELECT DISTINCT ({actor})::text AS actor FROM insights.events e WHERE {}",
            w.join(" AND ")
        );
        Ok(TrendsActorsPlan {
            sql,
            params: b.params,
            group_type_index,
            label: meta.label,
            math: meta.math,
        })
    })
}

/// The conditions of the request's `breakdown_value` (when the query has a breakdown), pushed
/// onto `filters`: the cohort of a cohort breakdown, else the breakdown value of each property.
/// The Other bucket and histogram bins are 22023.
fn breakdown_value_filters(
    q: &InsightQuery,
    req: &Value,
    filters: &mut Vec<String>,
    b: &mut SqlBuilder,
    cx: &FilterContext,
    now: DateTime<Utc>,
) -> Result<()> {
    let bd_value = req.get("breakdown_value").filter(|v| !v.is_null());
    let (Some(bd), Some(value)) = (&q.breakdown, bd_value) else {
        return Ok(());
    };
    if bd.values.is_empty() {
        return Ok(());
    }
    let value_text = entity_id_text(value);
    if value_text == BREAKDOWN_OTHER {
        return Err(invalid(
            "breakdown_value",
            "The persons of the Other breakdown bucket are not available: query a specific breakdown value.",
        ));
    }
    if bd.values.iter().any(|v| v.histogram_bin_count.is_some()) {
        return Err(invalid(
            "breakdown_value",
            "The persons of a histogram breakdown bin are not available.",
        ));
    }
    // `x` has the value `v` (the null bucket: no value).
    let mut match_value = |spec: &BreakdownSpec, key: &str, v: &str, b: &mut SqlBuilder| {
        let x = properties::breakdown_expr(&spec.kind, key, spec.group_type_index, b, cx)?;
        let x = if spec.normalize_url {
            normalize_url(&x)
        } else {
            x
        };
        filters.push(if v == BREAKDOWN_NULL {
            format!("coalesce({x}, '') = ''")
        } else {
            format!("{x} = {}", b.text(v))
        });
        Ok::<(), QueryError>(())
    };
    match &bd.values[..] {
        [one] => match &one.property {
            BreakdownProperty::Cohorts(_) => {
                if let CohortRef::Id(id) = cohort_value(value, &value_text)? {
                    let prop = json!([{"type": "cohort", "key": "id", "value": id}]);
                    filters.push(
                        properties::compile_properties_at(&prop, b, cx, now)
                            .map_err(|er| er.within("breakdown_value"))?,
                    );
                }
            }
            BreakdownProperty::Property(key) => match_value(one, key, &value_text, b)?,
        },
        many => {
            let parts: Vec<String> = match value {
                Value::Array(a) => a.iter().map(entity_id_text).collect(),
                Value::String(s) => match serde_json::from_str::<Value>(s) {
                    Ok(Value::Array(a)) => a.iter().map(entity_id_text).collect(),
                    _ => s.split("::").map(str::to_string).collect(),
                },
                other => vec![entity_id_text(other)],
            };
            if parts.len() != many.len() {
                return Err(invalid(
                    "breakdown_value",
                    format!(
                        "The breakdown value needs {} parts (one per breakdown), got {}",
                        many.len(),
                        parts.len()
                    ),
                ));
            }
            for (spec, v) in many.iter().zip(&parts) {
                let BreakdownProperty::Property(key) = &spec.property else {
                    return Err(invalid(
                        "breakdowns",
                        "Cohort breakdowns cannot be combined with other breakdowns.",
                    ));
                };
                match_value(spec, key, v, b)?;
            }
        }
    }
    Ok(())
}

/// The cohort a cohort breakdown value names: its id, or `all`.
fn cohort_value(value: &Value, value_text: &str) -> Result<CohortRef> {
    match value {
        Value::Number(n) => n.as_i64().map(CohortRef::Id),
        Value::String(s) if s.trim() == "all" => Some(CohortRef::All),
        Value::String(s) => s.trim().parse().ok().map(CohortRef::Id),
        _ => None,
    }
    .ok_or_else(|| {
        invalid(
            "breakdown_value",
            format!(
                "A cohort breakdown value must be a cohort id or \"all\", got \"{}\"",
                shown(value_text)
            ),
        )
    })
}

/// The start of the actors' window: the data point, widened for weekly/monthly active (the N
/// days ending at date_to for total values, else the N days ending with the first bucket).
fn window_start(
    math: &Math,
    total_value: bool,
    range: &DateRange,
    interval: Interval,
    pt: &ProjectTime,
) -> DateTime<Utc> {
    let Math::Active { days } = *math else {
        return range.from;
    };
    if total_value {
        return range
            .to
            .checked_sub_signed(TimeDelta::days(days))
            .and_then(|t| t.checked_add_signed(TimeDelta::microseconds(1)))
            .unwrap_or(range.from);
    }
    let first = dates::bucket_start(range.from, interval, pt);
    match interval {
        Interval::Day => dates::offset_bucket(first, Interval::Day, 1 - days, pt),
        Interval::Hour => first.checked_sub_signed(TimeDelta::hours(days * 24 - 1)),
        Interval::Minute => first.checked_sub_signed(TimeDelta::minutes(days * 1440 - 1)),
        Interval::Week | Interval::Month => Some(range.from),
    }
    .unwrap_or(range.from)
}

#[cfg(test)]
#[path = "actors_tests.rs"]
mod tests;
