//! Trends over the event store: planning (query → SQL statements) and rendering (their rows →
//! PostHog's `result` list). Pure Rust; the extension runs the SQL through SPI.
//!
//! # Runs
//! One statement ([`TrendsRun`]) per (cohort of a cohort breakdown) × series × period (current,
//! then previous when `compare`), in the order PostHog emits its result items. Every statement
//! returns rows `(bucket timestamptz, breakdown text, value float8)`, one per (bucket, breakdown
//! value) with data; `breakdown` is NULL without a breakdown (and for missing values), and the
//! value is never NULL. Total-value displays (§4.4) run one aggregation over the whole range per
//! series: their `bucket` is the range start and is ignored. Every user value is a `$n`
//! parameter of the same [`Param`] kinds as funnels.
//!
//! # Statement shapes (`W` = `e.project_id = $p AND e."timestamp" >= $from AND e."timestamp" <=
//! $to AND <entity> AND <global properties> AND <test account filters> [AND <cohort>]`, `B` =
//! [`dates::sql_bucket_expr`] in the project timezone, `BD` = the breakdown text)
//! ```sql
//! SELECT a.bucket, a.breakdown, coalesce(CASE WHEN abs(a.v) < 1e300 THEN a.v::float8 END, 0::float8) AS value
//!   FROM (<inner>) a
//! -- total / dau / unique_* / property / hogql / first_time:
//!   SELECT B AS bucket, BD AS breakdown, <agg> AS v FROM insights.events e WHERE W GROUP BY 1, 2
//! -- *_count_per_actor: per-actor counts per bucket, then aggregated
//!   SELECT pa.bucket, pa.breakdown, <agg>(pa.c) AS v FROM (SELECT B, BD, <actor>, count(*) AS c … GROUP BY 1, 2, 3) pa GROUP BY 1, 2
//! -- weekly_active / monthly_active (day interval): every bucket joined to the distinct
//! -- (local day, breakdown, actor) triples of the N days ending with it (N = 7 / 30); the events
//! -- read start 8 / 31 days before the range
//!   SELECT (bk.d AT TIME ZONE tz) AS bucket, ad.breakdown, count(DISTINCT ad.actor) AS v
//!     FROM generate_series($first AT TIME ZONE tz, $last AT TIME ZONE tz, interval '1 day') AS bk(d)
//!     JOIN (SELECT DISTINCT date_trunc('day', e."timestamp" AT TIME ZONE tz) AS d, BD AS breakdown, <actor> AS actor …) ad
//!       ON ad.d > bk.d - interval '7 days' AND ad.d <= bk.d GROUP BY 1, 2
//! ```
//! Hour/minute intervals use the same join over absolute hours/minutes (168 h / 720 h windows);
//! week/month intervals degrade to distinct actors per bucket (T26/T27). Cumulative displays of
//! distinct maths (`dau`, `unique_group`, `unique_session`) count each actor at its first bucket
//! (`min(B)` per actor), and the renderer sums. Histogram breakdowns add
//! `WITH pgi_mm AS MATERIALIZED (SELECT min(x), max(x) …)` and label equal-width bins.
//!
//! # Math (§4.2)
//! * `total` count(*); `dau` distinct persons (groups of `aggregation_group_type_index` when
//!   set); `unique_group` distinct non-empty `group_N`; `unique_session` distinct non-empty
//!   `session_id`.
//! * Property maths read `properties ->> math_property` through a numeric guard (at most 100
//!   characters, two-digit exponent; anything else is ignored) and aggregate as `numeric`
//!   (`percentile_cont` — linear interpolation — for median and p*); an empty bucket is 0.
//!   `math_property = "$session_duration"` takes one value per session (the session accessor of
//!   [`properties`]). Event properties only: the model has no `math_property_type`.
//! * `first_time_for_user[_with_filters]`: persons whose first-ever event of the entity (without
//!   / with the series filters, over all time) is a matching event in the bucket.
//!   `first_matching_event_for_user` is treated as `first_time_for_user_with_filters`.
//! * `hogql`: one aggregate call around the safe HogQL subset ([`crate::hogql`]): `count()`,
//!   `count(*)`, `count(distinct x)`, `uniq(x)`, `uniqExact(x)`, `sum/avg/min/max/median(x)`.
//!   Anything else is 22023 on `events__i__math_hogql`.
//!
//! # Rendering (§4.3–§4.7)
//! Zero-filled buckets; breakdown values ranked by their total (desc, ties by value asc), the top
//! `breakdown_limit` (25, WorldMap 250) kept and the rest summed into
//! `$$_posthog_breakdown_other_$$` (unless `breakdown_hide_other_aggregation`); missing or empty
//! values are `$$_posthog_breakdown_null_$$` (ranked like any value, shown after the regular
//! ones, before Other); all-zero breakdown rows are dropped. Smoothing (floor of the trailing
//! mean) comes before the cumulative running sum. Formulas are evaluated per bucket on the
//! rendered series (division by zero → 0), aligned by breakdown value.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value, json};

use crate::dates::{self, DateRange, Interval, ProjectTime};
use crate::error::{QueryError, Result};
use crate::funnels::{Lookups, Project, url_encode};
use crate::properties::{self, FilterContext, NUM_RE};
use crate::query::{BreakdownProperty, CohortRef, Entity, EntityKind, InsightKind, InsightQuery};
use crate::series::{self, with_filter_context};
use crate::sql::{Param, SqlBuilder};

/// The breakdown value of events without one (§4.5).
pub const BREAKDOWN_NULL: &str = "$$_posthog_breakdown_null_$$";
/// The breakdown value of the merged values beyond the limit (§4.5).
pub const BREAKDOWN_OTHER: &str = "$$_posthog_breakdown_other_$$";
/// Default `breakdown_limit`.
pub const DEFAULT_BREAKDOWN_LIMIT: usize = 25;
/// Default `breakdown_limit` of the WorldMap display.
pub const WORLD_MAP_BREAKDOWN_LIMIT: usize = 250;

/// Formulas nest at most this deep.
const MAX_FORMULA_DEPTH: usize = 64;

/// One statement to run.
#[derive(Debug, Clone)]
pub struct TrendsRun {
    /// Index into the query's series.
    pub series_index: usize,
    /// The previous-period run of a `compare` query.
    pub compare: bool,
    /// A total-value run (one aggregation over the range; its bucket column is ignored).
    pub total_value: bool,
    pub sql: String,
    pub params: Vec<Param>,
    /// Cohort breakdowns: (breakdown value, cohort name).
    pub cohort: Option<(Value, String)>,
}

/// One row of a run's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The bucket start, Unix microseconds.
    pub bucket_us: i64,
    pub breakdown: Option<String>,
    pub value: f64,
}

/// Display data of one series.
#[derive(Debug, Clone)]
pub struct SeriesMeta {
    /// `custom_name`, else the event name, `All events`, or the action name.
    pub label: String,
    /// The legacy entity dict of the result's `action`.
    pub action: Value,
    /// `entity_id` / `entity_type` / `entity_math` of the people URLs.
    pub entity_id: Value,
    pub entity_type: &'static str,
    pub math: String,
}

/// A parsed formula.
#[derive(Debug, Clone)]
pub struct FormulaPlan {
    pub formula: String,
    /// `custom_name`, else `Formula (<formula>)`.
    pub label: String,
    expr: Expr,
}

/// How the runs' breakdown column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakdownMode {
    None,
    /// One property (or hogql) breakdown.
    Single,
    /// Several: the column is a JSON array text.
    Multi,
    /// One run per cohort.
    Cohort,
}

#[derive(Debug, Clone)]
pub struct TrendsPlan {
    pub runs: Vec<TrendsRun>,
    pub range: DateRange,
    pub compare_range: Option<DateRange>,
    pub pt: ProjectTime,
    pub project_id: i64,
    pub series: Vec<SeriesMeta>,
    pub formulas: Vec<FormulaPlan>,
    pub display: String,
    pub total_value: bool,
    pub cumulative: bool,
    pub smoothing_intervals: u32,
    pub breakdown: BreakdownMode,
    pub breakdown_limit: usize,
    pub hide_other: bool,
    /// The query as a legacy filter (`filter` of each item, and the people URLs).
    pub legacy_filter: Value,
}

fn invalid(attr: &str, detail: impl Into<String>) -> QueryError {
    QueryError::invalid(attr.to_string(), detail)
}

/// At most 64 characters of a user value, for error messages.
fn shown(s: &str) -> String {
    s.chars().take(64).collect()
}

// ---------------------------------------------------------------------------------------------
// Math
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Agg {
    Sum,
    Avg,
    Min,
    Max,
    Pct(f64),
}

impl Agg {
    fn sql(self, x: &str) -> String {
        match self {
            Agg::Sum => format!("sum({x})"),
            Agg::Avg => format!("avg({x})"),
            Agg::Min => format!("min({x})"),
            Agg::Max => format!("max({x})"),
            Agg::Pct(p) => format!("percentile_cont({p}) WITHIN GROUP (ORDER BY ({x})::float8)"),
        }
    }

    fn property(name: &str) -> Option<Agg> {
        Some(match name {
            "sum" => Agg::Sum,
            "avg" => Agg::Avg,
            "min" => Agg::Min,
            "max" => Agg::Max,
            "median" => Agg::Pct(0.5),
            "p25" => Agg::Pct(0.25),
            "p75" => Agg::Pct(0.75),
            "p90" => Agg::Pct(0.9),
            "p95" => Agg::Pct(0.95),
            "p99" => Agg::Pct(0.99),
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Math {
    Total,
    Dau,
    Active { days: i64 },
    UniqueGroup(u8),
    UniqueSession,
    FirstTime { with_filters: bool },
    Property { agg: Agg, key: String },
    PerActor(Agg),
    Hogql(String),
}

pub(crate) fn parse_math(e: &Entity, attr: &str) -> Result<Math> {
    let name = e.math.as_deref().unwrap_or("total");
    let need = |field: &str| {
        invalid(
            &format!("{attr}__{field}"),
            format!("This field is required for math \"{name}\"."),
        )
    };
    Ok(match name {
        "total" => Math::Total,
        "dau" => Math::Dau,
        "weekly_active" => Math::Active { days: 7 },
        "monthly_active" => Math::Active { days: 30 },
        "unique_session" => Math::UniqueSession,
        "unique_group" => match e.math_group_type_index {
            Some(g) if g <= 4 => Math::UniqueGroup(g),
            Some(_) => {
                return Err(invalid(
                    &format!("{attr}__math_group_type_index"),
                    "math_group_type_index must be between 0 and 4",
                ));
            }
            None => return Err(need("math_group_type_index")),
        },
        "first_time_for_user" => Math::FirstTime {
            with_filters: false,
        },
        "first_time_for_user_with_filters" | "first_matching_event_for_user" => {
            Math::FirstTime { with_filters: true }
        }
        "hogql" => match e.math_hogql.as_deref().map(str::trim) {
            Some(h) if !h.is_empty() => Math::Hogql(h.to_string()),
            _ => return Err(need("math_hogql")),
        },
        other => {
            if let Some(agg) = Agg::property(other) {
                match e.math_property.as_deref() {
                    Some(k) if !k.is_empty() => Math::Property {
                        agg,
                        key: k.to_string(),
                    },
                    _ => return Err(need("math_property")),
                }
            } else if let Some(agg) = other
                .strip_suffix("_count_per_actor")
                .and_then(Agg::property)
                .filter(|a| *a != Agg::Sum)
            {
                Math::PerActor(agg)
            } else {
                return Err(invalid(
                    &format!("{attr}__math"),
                    format!("Unsupported math '{}' for trends", shown(other)),
                ));
            }
        }
    })
}

/// `sql` as numeric when it is text of a number, else NULL (never an error).
fn guarded_numeric(t: &str) -> String {
    format!("(CASE WHEN length({t}) <= 100 AND {t} ~ '{NUM_RE}' THEN ({t})::numeric END)")
}

/// Split `f(args)` into `("f", "args")` when the call spans the whole text (quotes respected).
fn split_call(src: &str) -> Option<(&str, &str)> {
    let open = src.find('(')?;
    let name = src[..open].trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut chars = src[open..].char_indices();
    while let Some((i, c)) = chars.next() {
        match quote {
            Some(q) => {
                if c == '\\' {
                    chars.next();
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' | '`' => quote = Some(c),
                '(' => depth += 1,
                ')' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        let end = open + i;
                        return src[end + 1..]
                            .trim()
                            .is_empty()
                            .then(|| (name, &src[open + 1..end]));
                    }
                }
                _ => {}
            },
        }
    }
    None
}

/// The aggregate SQL of a `math_hogql` expression (see the module docs for the subset).
fn hogql_aggregate(
    src: &str,
    attr: &str,
    b: &mut SqlBuilder,
    cx: &FilterContext,
) -> Result<String> {
    let unsupported = || {
        invalid(
            attr,
            format!(
                "Unsupported HogQL: math_hogql must be one aggregate call: count(), count(distinct x), \
                 uniq(x), sum(x), avg(x), min(x), max(x) or median(x); got '{}'",
                shown(src)
            ),
        )
    };
    let (name, arg) = split_call(src.trim()).ok_or_else(unsupported)?;
    let arg = arg.trim();
    let distinct = |b: &mut SqlBuilder, x: &str| -> Result<String> {
        let x = x.trim();
        if x == "person_id" {
            return Ok("count(DISTINCT e.person_id)".to_string());
        }
        Ok(format!(
            "count(DISTINCT {})",
            crate::hogql::compile_text(x, attr, b, cx)?
        ))
    };
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "count" if arg.is_empty() || arg == "*" => Ok("count(*)".to_string()),
        "count" => {
            let rest = arg
                .get(..9)
                .filter(|p| p.eq_ignore_ascii_case("distinct "))
                .map(|_| &arg[9..])
                .ok_or_else(unsupported)?;
            distinct(b, rest)
        }
        "uniq" | "uniqexact" | "count_distinct" => distinct(b, arg),
        "sum" | "avg" | "min" | "max" | "median" => {
            let x = crate::hogql::compile_number(arg, attr, b, cx)?;
            let agg = match lower.as_str() {
                "sum" => Agg::Sum,
                "avg" => Agg::Avg,
                "min" => Agg::Min,
                "max" => Agg::Max,
                _ => Agg::Pct(0.5),
            };
            Ok(agg.sql(&format!("({x})::numeric")))
        }
        _ => Err(unsupported()),
    }
}

// ---------------------------------------------------------------------------------------------
// Formulas (§4.7)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Num(f64),
    Var(usize),
    Neg(Box<Expr>),
    Bin(u8, Box<Expr>, Box<Expr>),
}

struct FormulaParser<'a> {
    src: &'a [u8],
    pos: usize,
    series: usize,
    depth: usize,
}

impl FormulaParser<'_> {
    fn err(&self, what: &str) -> QueryError {
        invalid(
            "formula",
            format!(
                "Invalid formula '{}': {what}",
                shown(&String::from_utf8_lossy(self.src))
            ),
        )
    }

    fn skip_ws(&mut self) {
        while self.pos < self.src.len() && self.src[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.src.get(self.pos).copied()
    }

    fn expr(&mut self) -> Result<Expr> {
        self.depth += 1;
        if self.depth > MAX_FORMULA_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        let mut left = self.term()?;
        while let Some(op @ (b'+' | b'-')) = self.peek() {
            self.pos += 1;
            let right = self.term()?;
            left = Expr::Bin(op, Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn term(&mut self) -> Result<Expr> {
        let mut left = self.unary()?;
        while let Some(op @ (b'*' | b'/')) = self.peek() {
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::Bin(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr> {
        match self.peek() {
            Some(b'-') => {
                self.pos += 1;
                self.depth += 1;
                if self.depth > MAX_FORMULA_DEPTH {
                    return Err(self.err("nested too deeply"));
                }
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(Expr::Neg(Box::new(inner)))
            }
            Some(b'+') => {
                self.pos += 1;
                self.depth += 1;
                if self.depth > MAX_FORMULA_DEPTH {
                    return Err(self.err("nested too deeply"));
                }
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(inner)
            }
            _ => self.atom(),
        }
    }

    fn atom(&mut self) -> Result<Expr> {
        match self.peek() {
            Some(b'(') => {
                self.pos += 1;
                let e = self.expr()?;
                if self.peek() != Some(b')') {
                    return Err(self.err("missing ')'"));
                }
                self.pos += 1;
                Ok(e)
            }
            Some(c) if c.is_ascii_digit() || c == b'.' => {
                let start = self.pos;
                while self.pos < self.src.len()
                    && (self.src[self.pos].is_ascii_digit() || self.src[self.pos] == b'.')
                {
                    self.pos += 1;
                }
                let text = String::from_utf8_lossy(&self.src[start..self.pos]);
                text.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .map(Expr::Num)
                    .ok_or_else(|| self.err(&format!("bad number '{}'", shown(&text))))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                self.pos += 1;
                if self
                    .src
                    .get(self.pos)
                    .is_some_and(|n| n.is_ascii_alphanumeric() || *n == b'_')
                {
                    return Err(self.err("series are single letters A, B, C, …"));
                }
                let i = (c.to_ascii_uppercase() - b'A') as usize;
                if i >= self.series {
                    return Err(self.err(&format!(
                        "series {} does not exist (the query has {} series)",
                        c.to_ascii_uppercase() as char,
                        self.series
                    )));
                }
                Ok(Expr::Var(i))
            }
            Some(c) => Err(self.err(&format!("unexpected '{}'", c as char))),
            None => Err(self.err("unexpected end")),
        }
    }
}

fn parse_formula(src: &str, series: usize) -> Result<Expr> {
    let mut p = FormulaParser {
        src: src.as_bytes(),
        pos: 0,
        series,
        depth: 0,
    };
    let e = p.expr()?;
    if p.peek().is_some() {
        return Err(p.err(&format!("unexpected text at position {}", p.pos + 1)));
    }
    Ok(e)
}

/// Evaluate with missing series as 0 and division by zero as 0 (§4.7); never NaN or infinite.
fn eval(e: &Expr, vars: &[f64]) -> f64 {
    let v = match e {
        Expr::Num(n) => *n,
        Expr::Var(i) => vars.get(*i).copied().unwrap_or(0.0),
        Expr::Neg(x) => -eval(x, vars),
        Expr::Bin(op, l, r) => {
            let (l, r) = (eval(l, vars), eval(r, vars));
            match op {
                b'+' => l + r,
                b'-' => l - r,
                b'*' => l * r,
                _ if r == 0.0 => 0.0,
                _ => l / r,
            }
        }
    };
    if v.is_finite() { v } else { 0.0 }
}

// ---------------------------------------------------------------------------------------------
// Planning
// ---------------------------------------------------------------------------------------------

pub(crate) fn series_meta(e: &Entity, order: usize, lookups: &Lookups) -> Result<SeriesMeta> {
    let (base, entity_id, entity_type) = match &e.kind {
        EntityKind::Event { name: Some(n) } => (n.clone(), json!(n), "events"),
        EntityKind::Event { name: None } => ("All events".to_string(), Value::Null, "events"),
        EntityKind::Action { id } => {
            let (_, name) = (lookups.action)(*id)
                .ok_or_else(|| invalid("actions", format!("Action {id} does not exist.")))?;
            (name, json!(id), "actions")
        }
    };
    let mut action = e.to_legacy(Some(order));
    let math = e.math.clone().unwrap_or_else(|| "total".to_string());
    if let Value::Object(m) = &mut action {
        m.insert("math".into(), json!(math));
        if m.get("name").is_none_or(Value::is_null) {
            m.insert("name".into(), json!(base));
        }
    }
    Ok(SeriesMeta {
        label: e
            .custom_name
            .clone()
            .filter(|c| !c.trim().is_empty())
            .unwrap_or(base),
        action,
        entity_id,
        entity_type,
        math,
    })
}

/// What every run of a query shares.
struct Shared<'a> {
    q: &'a InsightQuery,
    project: &'a Project,
    cx: &'a FilterContext<'a>,
    now: DateTime<Utc>,
    interval: Interval,
    total_value: bool,
    cumulative: bool,
}

/// One run's statement: the filters and the range ([`run_filters`]), the breakdown
/// ([`breakdown_sql`]), then the math's aggregation ([`Run::math_sql`]).
fn build_run(
    s: &Shared,
    index: usize,
    range: &DateRange,
    cohort: Option<CohortRef>,
) -> Result<(String, Vec<Param>)> {
    let e = &s.q.series[index];
    let attr = format!("events__{index}");
    let math = parse_math(e, &attr)?;
    let mut b = SqlBuilder::new();
    let p = b.int(s.project.id);
    debug_assert_eq!(p, s.cx.project_param);

    let filters = run_filters(s, e, &math, &attr, cohort, &mut b)?;
    let from_p = b.param(Param::timestamp(range.from));
    let to_p = b.param(Param::timestamp(range.to));
    let mut run = Run {
        s,
        range,
        attr,
        project_p: p,
        from_p,
        to_p,
        filters,
        w: String::new(),
        src: "insights.events e".to_string(),
        bd: String::new(),
        actor: String::new(),
    };
    run.w = run.where_at(&format!("e.\"timestamp\" >= {}", run.from_p));
    let (with, bd) = breakdown_sql(s, cohort, &run.w, &mut run.src, &mut b)?;
    run.bd = bd;

    // Actor of distinct maths.
    run.actor = match (&math, s.q.aggregation_group_type_index) {
        (Math::UniqueGroup(g), _) => format!("NULLIF(e.group_{g}, '')"),
        (Math::UniqueSession, _) => "NULLIF(e.session_id, '')".to_string(),
        (_, Some(g)) if g <= 4 => format!("NULLIF(e.group_{g}, '')"),
        _ => "e.person_id".to_string(),
    };

    let inner = run.math_sql(&math, &mut b)?;
    let sql = format!(
        "{with}SELECT a.bucket, a.breakdown, coalesce(CASE WHEN abs(a.v) < 1e300 THEN a.v::float8 END, 0::float8) AS value \
         FROM ({inner}) a"
    );
    // The active-user maths read from their own window start: the range start may go unread.
    Ok(b.finish(&sql))
}

/// The filters of a series other than time: its entity (first-time maths: the actor's first
/// such event), the query's properties and, with `filter_test_accounts`, the project's
/// test-account filters (`cx.test_account_filters`). `TRUE` ones are kept; callers drop them
/// after adding their own. Errors name `attr` (e.g. `events__0`) for the entity.
pub(crate) fn series_filters(
    q: &InsightQuery,
    e: &Entity,
    math: &Math,
    attr: &str,
    b: &mut SqlBuilder,
    cx: &FilterContext,
    now: DateTime<Utc>,
) -> Result<Vec<String>> {
    let mut filters = Vec::new();
    let ent = properties::compile_entity_at(e, b, cx, now).map_err(|er| er.within(attr))?;
    let ent = match math {
        Math::FirstTime { with_filters } => {
            properties::first_time_condition(e, &ent, *with_filters, b, cx, now)
                .map_err(|er| er.within(attr))?
        }
        _ => ent,
    };
    filters.push(ent);
    filters.push(
        properties::compile_properties_at(&q.properties, b, cx, now)
            .map_err(|er| er.within("properties"))?,
    );
    if q.filter_test_accounts {
        filters.push(
            properties::compile_properties_at(cx.test_account_filters, b, cx, now)
                .map_err(|er| er.within("filter_test_accounts"))?,
        );
    }
    Ok(filters)
}

/// A run's filters other than time: [`series_filters`] and the cohort of a cohort breakdown,
/// without `TRUE` ones.
fn run_filters(
    s: &Shared,
    e: &Entity,
    math: &Math,
    attr: &str,
    cohort: Option<CohortRef>,
    b: &mut SqlBuilder,
) -> Result<Vec<String>> {
    let mut filters = series_filters(s.q, e, math, attr, b, s.cx, s.now)?;
    if let Some(CohortRef::Id(id)) = cohort {
        let prop = json!([{"type": "cohort", "key": "id", "value": id}]);
        filters.push(
            properties::compile_properties_at(&prop, b, s.cx, s.now)
                .map_err(|er| er.within("breakdown"))?,
        );
    }
    Ok(filters.into_iter().filter(|f| f != "TRUE").collect())
}

/// A run's breakdown value SQL (`NULL::text` without a property breakdown), and the `WITH`
/// prefix of the statement (histograms: the value range over the run's events `w`, which also
/// joins `src`).
fn breakdown_sql(
    s: &Shared,
    cohort: Option<CohortRef>,
    w: &str,
    src: &mut String,
    b: &mut SqlBuilder,
) -> Result<(String, String)> {
    let cx = s.cx;
    let mut with = String::new();
    let bd = match (&s.q.breakdown, cohort) {
        (Some(bd), None) if !bd.values.is_empty() => {
            let spec = &bd.values[0];
            if bd.values.len() > 1 {
                if bd.values.iter().any(|v| v.histogram_bin_count.is_some()) {
                    return Err(invalid(
                        "breakdown_histogram_bin_count",
                        "Histogram bins are only supported on a single breakdown.",
                    ));
                }
                let parts =
                    bd.values
                        .iter()
                        .map(|v| match &v.property {
                            BreakdownProperty::Property(k) => {
                                properties::breakdown_expr(&v.kind, k, v.group_type_index, b, cx)
                                    .map(|x| {
                                        if v.normalize_url {
                                            normalize_url(&x)
                                        } else {
                                            x
                                        }
                                    })
                            }
                            BreakdownProperty::Cohorts(_) => Err(invalid(
                                "breakdowns",
                                "Cohort breakdowns cannot be combined with other breakdowns.",
                            )),
                        })
                        .collect::<Result<Vec<_>>>()?;
                format!("jsonb_build_array({})::text", parts.join(", "))
            } else {
                let BreakdownProperty::Property(key) = &spec.property else {
                    return Err(invalid("breakdown", "Unexpected cohort breakdown."));
                };
                let x = properties::breakdown_expr(&spec.kind, key, spec.group_type_index, b, cx)?;
                let x = if spec.normalize_url {
                    normalize_url(&x)
                } else {
                    x
                };
                match spec.histogram_bin_count {
                    Some(k) => {
                        let num = guarded_numeric(&x);
                        with = format!(
                            "WITH pgi_mm AS MATERIALIZED (SELECT min({num}) AS lo, max({num}) AS hi \
                             FROM insights.events e WHERE {w}) "
                        );
                        src.push_str(&format!(
                            " CROSS JOIN pgi_mm CROSS JOIN LATERAL (SELECT {num} AS x) pgi_hx"
                        ));
                        histogram_label(&b.int(i64::from(k.max(1))))
                    }
                    None => x,
                }
            }
        }
        _ => "NULL::text".to_string(),
    };
    Ok((with, bd))
}

/// What a run's math builds its statement from.
struct Run<'a, 's> {
    s: &'a Shared<'s>,
    range: &'a DateRange,
    /// `events__{index}`, for errors.
    attr: String,
    project_p: String,
    from_p: String,
    to_p: String,
    /// Filters other than time ([`run_filters`]).
    filters: Vec<String>,
    /// The run's WHERE clause over the range.
    w: String,
    /// The FROM clause: the events (and the histogram's joins).
    src: String,
    /// The breakdown value.
    bd: String,
    /// The actor of distinct maths.
    actor: String,
}

impl Run<'_, '_> {
    /// The WHERE clause with another range start condition.
    fn where_at(&self, from_cond: &str) -> String {
        let mut w = vec![
            format!("e.project_id = {}", self.project_p),
            from_cond.to_string(),
            format!("e.\"timestamp\" <= {}", self.to_p),
        ];
        w.extend(self.filters.iter().cloned());
        w.join(" AND ")
    }

    /// An event's bucket: the range start for total values.
    fn bucket_expr(&self, b: &mut SqlBuilder) -> String {
        if self.s.total_value {
            self.from_p.clone()
        } else {
            dates::sql_bucket_expr("e.\"timestamp\"", self.s.interval, &self.s.project.pt, b)
        }
    }

    /// `agg` per (bucket, breakdown) over the events passing `w`.
    fn simple(&self, b: &mut SqlBuilder, agg: &str, w: &str) -> String {
        let bk = self.bucket_expr(b);
        let (bd, src) = (&self.bd, &self.src);
        let group_by = if self.s.total_value { "2" } else { "1, 2" };
        format!(
            "SELECT {bk} AS bucket, {bd} AS breakdown, {agg} AS v FROM {src} WHERE {w} GROUP BY {group_by}"
        )
    }

    /// The statement of `(bucket, breakdown, v)` rows of the run's math.
    fn math_sql(&self, math: &Math, b: &mut SqlBuilder) -> Result<String> {
        let s = self.s;
        let total = s.total_value;
        let (bd, src, w, actor, attr) = (&self.bd, &self.src, &self.w, &self.actor, &self.attr);
        let distinct_cumulative = s.cumulative
            && !total
            && matches!(math, Math::Dau | Math::UniqueGroup(_) | Math::UniqueSession);
        Ok(match math {
            _ if distinct_cumulative => {
                let bk = self.bucket_expr(b);
                format!(
                    "SELECT f.bucket, f.breakdown, count(*) AS v FROM (SELECT min({bk}) AS bucket, {bd} AS breakdown, \
                     {actor} AS actor FROM {src} WHERE {w} AND {actor} IS NOT NULL GROUP BY 2, 3) f GROUP BY 1, 2"
                )
            }
            Math::Total => self.simple(b, "count(*)", w),
            Math::Dau if actor == "e.person_id" => self.unique_persons_sql(b),
            Math::Dau | Math::UniqueGroup(_) | Math::UniqueSession => {
                // DISTINCT rows, then count: Postgres runs SELECT DISTINCT in parallel workers,
                // while count(DISTINCT …) always runs in one process (the bench's DAU query
                // shows ~2×).
                let bk = self.bucket_expr(b);
                format!(
                    "SELECT d.bucket, d.breakdown, count(*) AS v FROM (SELECT DISTINCT {bk} AS bucket, \
                     {bd} AS breakdown, {actor} AS actor FROM {src} WHERE {w} AND {actor} IS NOT NULL) d \
                     GROUP BY 1, 2"
                )
            }
            Math::FirstTime { .. } => self.simple(b, "count(DISTINCT e.person_id)", w),
            Math::Active { days } if total => {
                // The N days ending at date_to (§4.4).
                let start = self
                    .range
                    .to
                    .checked_sub_signed(TimeDelta::days(*days))
                    .and_then(|t| t.checked_add_signed(TimeDelta::microseconds(1)))
                    .unwrap_or(self.range.from);
                let start_p = b.param(Param::timestamp(start));
                let w = self.where_at(&format!("e.\"timestamp\" >= {start_p}"));
                self.simple(b, &format!("count(DISTINCT {actor})"), &w)
            }
            Math::Active { .. } if matches!(s.interval, Interval::Week | Interval::Month) => {
                self.simple(b, &format!("count(DISTINCT {actor})"), w)
            }
            Math::Active { days } => self.active_windows_sql(*days, b),
            Math::Property { agg, key } if key == "$session_duration" => {
                let dur = properties::breakdown_expr("session", key, None, b, s.cx)
                    .map_err(|er| er.within(attr))?;
                let dur = guarded_numeric(&dur);
                let bk = self.bucket_expr(b);
                let (sel, grp) = if total {
                    (format!("{bk} AS bucket"), "2, 3")
                } else {
                    (format!("{bk} AS bucket"), "1, 2, 3")
                };
                format!(
                    "SELECT s.bucket, s.breakdown, {} AS v FROM (SELECT {sel}, {bd} AS breakdown, e.session_id AS sid, \
                     max({dur}) AS x FROM {src} WHERE {w} AND e.session_id <> '' GROUP BY {grp}) s GROUP BY 1, 2",
                    agg.sql("s.x")
                )
            }
            Math::Property { agg, key } => {
                let x = properties::breakdown_expr("event", key, None, b, s.cx)
                    .map_err(|er| er.within(attr))?;
                self.simple(b, &agg.sql(&guarded_numeric(&x)), w)
            }
            Math::PerActor(agg) => {
                let bk = self.bucket_expr(b);
                let grp = if total { "2, 3" } else { "1, 2, 3" };
                format!(
                    "SELECT pa.bucket, pa.breakdown, {} AS v FROM (SELECT {bk} AS bucket, {bd} AS breakdown, {actor} AS actor, \
                     count(*) AS c FROM {src} WHERE {w} AND {actor} IS NOT NULL GROUP BY {grp}) pa GROUP BY 1, 2",
                    agg.sql("pa.c")
                )
            }
            Math::Hogql(h) => {
                let agg = hogql_aggregate(h, &format!("{attr}__math_hogql"), b, s.cx)?;
                self.simple(b, &agg, w)
            }
        })
    }

    /// Distinct persons per (bucket, breakdown) in one parallel aggregate: a hash set of
    /// (bucket, breakdown, person) per process, merged in the leader (src/uniq.rs). Same bucket
    /// and breakdown expressions, same counts as the DISTINCT form of the other distinct maths.
    /// In UTC, day/hour/minute buckets are fixed-width steps from 2000-01-01 00:00 UTC
    /// (PostgreSQL's epoch): the aggregate floors the timestamp itself, which equals date_trunc
    /// in UTC and saves the per-row timezone conversions.
    fn unique_persons_sql(&self, b: &mut SqlBuilder) -> String {
        let s = self.s;
        let (bd, src, w, actor) = (&self.bd, &self.src, &self.w, &self.actor);
        let width_us: Option<i64> = match s.interval {
            _ if s.total_value || !is_utc(s.project.pt.tz.name()) => None,
            Interval::Day => Some(86_400_000_000),
            Interval::Hour => Some(3_600_000_000),
            Interval::Minute => Some(60_000_000),
            Interval::Week | Interval::Month => None,
        };
        let call = match width_us {
            Some(wd) => {
                let wp = b.int(wd);
                format!("insights._uniq_actors_utc(e.\"timestamp\", {wp}, {bd}, {actor})")
            }
            None => {
                let bk = self.bucket_expr(b);
                format!("insights._uniq_actors({bk}, {bd}, {actor})")
            }
        };
        format!(
            "SELECT d.bucket, d.breakdown, d.v FROM (SELECT {call} AS s \
             FROM {src} WHERE {w} AND {actor} IS NOT NULL) u CROSS JOIN LATERAL insights._uniq_actors_rows(u.s) d"
        )
    }

    /// Weekly / monthly active actors over day, hour and minute buckets: each bucket counts the
    /// distinct actors of the `days` days ending with it, so the scan starts `days + 1` days
    /// before the range.
    fn active_windows_sql(&self, days: i64, b: &mut SqlBuilder) -> String {
        let (s, range, pt) = (self.s, self.range, &self.s.project.pt);
        let (bd, src, actor) = (&self.bd, &self.src, &self.actor);
        let ext = range
            .from
            .checked_sub_signed(TimeDelta::days(days + 1))
            .unwrap_or(range.from);
        let ext_p = b.param(Param::timestamp(ext));
        let w = self.where_at(&format!("e.\"timestamp\" >= {ext_p}"));
        let first = b.param(Param::timestamp(dates::bucket_start(
            range.from, s.interval, pt,
        )));
        let last = b.param(Param::timestamp(dates::bucket_start(
            range.to, s.interval, pt,
        )));
        match s.interval {
            Interval::Day => {
                let tz = b.text(pt.tz.name());
                format!(
                    "SELECT (bk.d AT TIME ZONE {tz}) AS bucket, ad.breakdown, count(DISTINCT ad.actor) AS v \
                     FROM generate_series({first} AT TIME ZONE {tz}, {last} AT TIME ZONE {tz}, interval '1 day') AS bk(d) \
                     JOIN (SELECT DISTINCT date_trunc('day', e.\"timestamp\" AT TIME ZONE {tz}) AS d, {bd} AS breakdown, \
                     {actor} AS actor FROM {src} WHERE {w} AND {actor} IS NOT NULL) ad \
                     ON ad.d > bk.d - interval '{days} days' AND ad.d <= bk.d GROUP BY 1, 2"
                )
            }
            _ => {
                let (step, window) = match s.interval {
                    Interval::Minute => ("1 minute", format!("{} minutes", days * 1440)),
                    _ => ("1 hour", format!("{} hours", days * 24)),
                };
                let bk = self.bucket_expr(b);
                format!(
                    "SELECT bk.d AS bucket, ad.breakdown, count(DISTINCT ad.actor) AS v \
                     FROM generate_series({first}, {last}, interval '{step}') AS bk(d) \
                     JOIN (SELECT DISTINCT {bk} AS d, {bd} AS breakdown, {actor} AS actor FROM {src} \
                     WHERE {w} AND {actor} IS NOT NULL) ad \
                     ON ad.d > bk.d - interval '{window}' AND ad.d <= bk.d GROUP BY 1, 2"
                )
            }
        }
    }
}

/// Time zones that are UTC at every instant (no offset, no DST).
fn is_utc(name: &str) -> bool {
    matches!(
        name,
        "UTC" | "Etc/UTC" | "Etc/GMT" | "GMT" | "Etc/Universal" | "Universal" | "Etc/Zulu" | "Zulu"
    )
}

/// `breakdown_normalize_url`: drop the query and fragment, then trailing slashes (`/` stays).
pub(crate) fn normalize_url(x: &str) -> String {
    format!(
        "(SELECT CASE WHEN pgi_u.u = '' AND pgi_u.o <> '' THEN '/' ELSE pgi_u.u END FROM \
         (SELECT rtrim(regexp_replace({x}, '[?#].*$', ''), '/') AS u, {x} AS o) pgi_u)"
    )
}

/// The bin label `[lo,hi]` of `pgi_hx.x` among `k` equal-width bins over `[pgi_mm.lo,
/// pgi_mm.hi]`; the last bin ends at max + 0.01 (§4.5, T19); edges floored to 2 decimals.
fn histogram_label(k: &str) -> String {
    let idx = format!(
        "LEAST({k} - 1, CASE WHEN pgi_mm.hi > pgi_mm.lo THEN floor((pgi_hx.x - pgi_mm.lo) * {k} / (pgi_mm.hi - pgi_mm.lo)) ELSE 0 END)"
    );
    let lo = format!("(pgi_mm.lo + ({idx}) * (pgi_mm.hi - pgi_mm.lo) / {k})");
    let hi = format!(
        "(CASE WHEN ({idx}) >= {k} - 1 THEN pgi_mm.hi + 0.01 ELSE pgi_mm.lo + (({idx}) + 1) * (pgi_mm.hi - pgi_mm.lo) / {k} END)"
    );
    let edge = |x: &str| format!("trim_scale(floor(({x}) * 100) / 100)::text");
    format!(
        "(CASE WHEN pgi_hx.x IS NULL THEN NULL ELSE '[' || {} || ',' || {} || ']' END)",
        edge(&lo),
        edge(&hi)
    )
}

/// The cohort filter of a run (the cohort, its breakdown value and name), `None` for none.
type RunCohort = Option<(CohortRef, Value, String)>;

/// The breakdown mode of a trends query, and the cohorts of its runs (`[None]`: one run per
/// series without a cohort filter).
fn breakdown_mode(q: &InsightQuery, lookups: &Lookups) -> Result<(BreakdownMode, Vec<RunCohort>)> {
    let mut cohorts: Vec<RunCohort> = vec![None];
    let mode = match &q.breakdown {
        None => BreakdownMode::None,
        Some(bd) => match &bd.values[..] {
            [] => BreakdownMode::None,
            [one] => match &one.property {
                BreakdownProperty::Cohorts(list) => {
                    if one.histogram_bin_count.is_some() {
                        return Err(invalid(
                            "breakdown_histogram_bin_count",
                            "Histogram bins need a numeric property breakdown, not cohorts.",
                        ));
                    }
                    cohorts = list
                        .iter()
                        .map(|c| match c {
                            CohortRef::All => Ok(Some((*c, json!("all"), "all users".to_string()))),
                            CohortRef::Id(id) => {
                                let (_, _, name) = (lookups.cohort)(*id).ok_or_else(|| {
                                    invalid("breakdown", format!("Cohort {id} does not exist."))
                                })?;
                                Ok(Some((*c, json!(id), name)))
                            }
                        })
                        .collect::<Result<_>>()?;
                    if cohorts.is_empty() {
                        cohorts.push(None);
                        BreakdownMode::None
                    } else {
                        BreakdownMode::Cohort
                    }
                }
                BreakdownProperty::Property(_) => BreakdownMode::Single,
            },
            _ => BreakdownMode::Multi,
        },
    };
    Ok((mode, cohorts))
}

/// Plan a trends query. `now` is the query time; `earliest` the project's first event (for
/// `date_from = all`).
pub fn plan(
    q: &InsightQuery,
    project: &Project,
    lookups: &Lookups,
    now: DateTime<Utc>,
    earliest: Option<DateTime<Utc>>,
) -> Result<TrendsPlan> {
    if q.kind != InsightKind::Trends {
        return Err(invalid(
            "insight",
            format!("Expected a trends query, got {}.", q.kind.legacy_name()),
        ));
    }
    if q.series.is_empty() {
        return Err(invalid("events", "At least one series is required."));
    }
    if q.interval_count > 1 {
        return Err(invalid(
            "interval_count",
            "An interval count greater than 1 is not supported for trends.",
        ));
    }
    let interval = match &q.interval {
        Some(i) => Interval::parse(i)?,
        None => Interval::Day,
    };
    let pt = project.pt;
    let range = dates::resolve_range(
        q.date_from.as_deref(),
        q.date_to.as_deref(),
        interval,
        q.explicit_date,
        now,
        &pt,
        earliest,
    )?;
    let compare_range = series::compare_range(q, &range, now, &pt)?;
    let series = q
        .series
        .iter()
        .enumerate()
        .map(|(i, e)| series_meta(e, i, lookups))
        .collect::<Result<Vec<_>>>()?;
    for (i, e) in q.series.iter().enumerate() {
        parse_math(e, &format!("events__{i}"))?;
    }
    let formulas = q
        .trends
        .formulas
        .iter()
        .map(|f| {
            Ok(FormulaPlan {
                formula: f.formula.clone(),
                label: f
                    .custom_name
                    .clone()
                    .filter(|c| !c.trim().is_empty())
                    .unwrap_or_else(|| format!("Formula ({})", f.formula)),
                expr: parse_formula(&f.formula, q.series.len())?,
            })
        })
        .collect::<Result<Vec<_>>>()?;

    let (mode, cohorts) = breakdown_mode(q, lookups)?;
    let breakdown_limit = q
        .breakdown
        .as_ref()
        .and_then(|b| b.limit)
        .map(|l| l as usize)
        .unwrap_or(if q.trends.display == "WorldMap" {
            WORLD_MAP_BREAKDOWN_LIMIT
        } else {
            DEFAULT_BREAKDOWN_LIMIT
        })
        .max(1);

    let runs = with_filter_context(project, lookups, |cx| -> Result<Vec<TrendsRun>> {
        let shared = Shared {
            q,
            project,
            cx,
            now,
            interval,
            total_value: q.trends.is_total_value(),
            cumulative: q.trends.is_cumulative(),
        };
        let mut runs = Vec::new();
        for cohort in &cohorts {
            for index in 0..q.series.len() {
                let periods: &[bool] = if compare_range.is_some() {
                    &[false, true]
                } else {
                    &[false]
                };
                for &compare in periods {
                    let r = match (compare, &compare_range) {
                        (true, Some(c)) => c,
                        _ => &range,
                    };
                    let (sql, params) = build_run(&shared, index, r, cohort.as_ref().map(|c| c.0))?;
                    runs.push(TrendsRun {
                        series_index: index,
                        compare,
                        total_value: shared.total_value,
                        sql,
                        params,
                        cohort: cohort.as_ref().map(|(_, v, n)| (v.clone(), n.clone())),
                    });
                }
            }
        }
        Ok(runs)
    })?;
    Ok(TrendsPlan {
        runs,
        range,
        compare_range,
        pt,
        project_id: project.id,
        series,
        formulas,
        display: q.trends.display.clone(),
        total_value: q.trends.is_total_value(),
        cumulative: q.trends.is_cumulative(),
        smoothing_intervals: q.trends.smoothing_intervals.max(1),
        breakdown: mode,
        breakdown_limit,
        hide_other: q.breakdown.as_ref().is_some_and(|b| b.hide_other),
        legacy_filter: q.to_legacy_filter(),
    })
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// A breakdown value of one series.
#[derive(Debug, Clone)]
struct BdKey {
    /// Identity and tie-break text.
    text: String,
    /// `breakdown_value`.
    value: Value,
    /// The label part.
    label: String,
    null: bool,
}

impl BdKey {
    fn none() -> BdKey {
        BdKey {
            text: String::new(),
            value: Value::Null,
            label: String::new(),
            null: false,
        }
    }

    fn text_value(s: Option<&str>) -> BdKey {
        let s = s.filter(|s| !s.is_empty()).unwrap_or(BREAKDOWN_NULL);
        BdKey {
            text: s.to_string(),
            value: json!(s),
            label: s.to_string(),
            null: s == BREAKDOWN_NULL,
        }
    }

    fn other() -> BdKey {
        BdKey {
            text: BREAKDOWN_OTHER.to_string(),
            value: json!(BREAKDOWN_OTHER),
            label: BREAKDOWN_OTHER.to_string(),
            null: false,
        }
    }

    fn multi(s: Option<&str>) -> BdKey {
        let parts: Vec<String> = match s.map(serde_json::from_str::<Value>) {
            Some(Ok(Value::Array(items))) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) if !s.is_empty() => s,
                    Value::Null | Value::String(_) => BREAKDOWN_NULL.to_string(),
                    other => other.to_string(),
                })
                .collect(),
            _ => vec![
                s.filter(|s| !s.is_empty())
                    .unwrap_or(BREAKDOWN_NULL)
                    .to_string(),
            ],
        };
        let label = parts.join("::");
        BdKey {
            text: label.clone(),
            value: json!(parts),
            label,
            null: false,
        }
    }
}

/// One rendered series of one run.
#[derive(Debug, Clone)]
struct Group {
    key: BdKey,
    data: Vec<f64>,
    total: f64,
}

/// Buckets and their display strings of one period.
struct Period {
    range: DateRange,
    buckets: Vec<DateTime<Utc>>,
    days: Vec<Value>,
    labels: Vec<Value>,
}

impl Period {
    fn new(range: DateRange, pt: &ProjectTime) -> Period {
        let buckets = dates::buckets(&range, pt);
        let days = buckets
            .iter()
            .map(|b| json!(dates::day_string(*b, range.interval, pt)))
            .collect();
        let labels = buckets
            .iter()
            .map(|b| json!(dates::label_string(*b, range.interval, pt)))
            .collect();
        Period {
            range,
            buckets,
            days,
            labels,
        }
    }
}

/// A JSON number: integral values as integers (PostHog's counts), non-finite as 0.
fn num(v: f64) -> Value {
    if !v.is_finite() {
        return json!(0);
    }
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        return json!(v as i64);
    }
    json!(v)
}

fn smooth(data: &[f64], n: usize) -> Vec<f64> {
    (0..data.len())
        .map(|i| {
            let lo = (i + 1).saturating_sub(n);
            let w = &data[lo..=i];
            (w.iter().sum::<f64>() / w.len() as f64).floor()
        })
        .collect()
}

fn cumulate(data: &mut [f64]) {
    let mut acc = 0.0;
    for v in data.iter_mut() {
        acc += *v;
        *v = acc;
    }
}

/// The groups of one run: zero-filled, ranked, limited, smoothed and accumulated.
fn run_groups(plan: &TrendsPlan, run: &TrendsRun, period: &Period, rows: &[Row]) -> Vec<Group> {
    let n = period.buckets.len();
    let index: HashMap<i64, usize> = period
        .buckets
        .iter()
        .enumerate()
        .map(|(i, b)| (b.timestamp_micros(), i))
        .collect();
    let mut groups: Vec<Group> = Vec::new();
    let mut pos: HashMap<String, usize> = HashMap::new();
    let key_of = |bd: Option<&str>| match (&run.cohort, plan.breakdown) {
        (Some((value, name)), _) => BdKey {
            text: value.to_string(),
            value: value.clone(),
            label: name.clone(),
            null: false,
        },
        (None, BreakdownMode::Single) => BdKey::text_value(bd),
        (None, BreakdownMode::Multi) => BdKey::multi(bd),
        _ => BdKey::none(),
    };
    let mut slot = |groups: &mut Vec<Group>, key: BdKey| -> usize {
        *pos.entry(key.text.clone()).or_insert_with(|| {
            groups.push(Group {
                key,
                data: vec![0.0; if run.total_value { 0 } else { n }],
                total: 0.0,
            });
            groups.len() - 1
        })
    };
    let breakdown_mode = plan.breakdown != BreakdownMode::None;
    if !breakdown_mode {
        slot(&mut groups, BdKey::none());
    }
    for r in rows {
        let v = if r.value.is_finite() { r.value } else { 0.0 };
        if run.total_value {
            let i = slot(&mut groups, key_of(r.breakdown.as_deref()));
            groups[i].total += v;
        } else if let Some(&b) = index.get(&r.bucket_us) {
            let i = slot(&mut groups, key_of(r.breakdown.as_deref()));
            groups[i].data[b] += v;
        }
    }
    if !run.total_value {
        for g in &mut groups {
            g.total = g.data.iter().sum();
        }
    }
    if breakdown_mode {
        groups.retain(|g| {
            if run.total_value {
                g.total != 0.0
            } else {
                g.data.iter().any(|v| *v != 0.0)
            }
        });
    }
    if matches!(plan.breakdown, BreakdownMode::Single | BreakdownMode::Multi)
        && run.cohort.is_none()
    {
        groups = limit_groups(
            groups,
            plan.breakdown_limit,
            plan.hide_other,
            run.total_value,
            n,
        );
    }
    if !run.total_value {
        for g in &mut groups {
            if plan.smoothing_intervals > 1 {
                g.data = smooth(&g.data, plan.smoothing_intervals as usize);
            }
            if plan.cumulative {
                cumulate(&mut g.data);
            }
            g.total = g.data.iter().sum();
        }
    }
    groups
}

/// Rank by total (desc, ties by value asc), keep `limit`, merge the rest into Other; order the
/// kept regular values, then the null value, then Other.
fn limit_groups(
    mut groups: Vec<Group>,
    limit: usize,
    hide_other: bool,
    total_value: bool,
    n: usize,
) -> Vec<Group> {
    groups.sort_by(|a, b| {
        b.total
            .partial_cmp(&a.total)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.key.text.cmp(&b.key.text))
    });
    let rest = if groups.len() > limit {
        groups.split_off(limit)
    } else {
        Vec::new()
    };
    let (mut regular, null): (Vec<Group>, Vec<Group>) =
        groups.into_iter().partition(|g| !g.key.null);
    regular.extend(null);
    if !rest.is_empty() && !hide_other {
        let mut other = Group {
            key: BdKey::other(),
            data: vec![0.0; if total_value { 0 } else { n }],
            total: 0.0,
        };
        for g in rest {
            other.total += g.total;
            for (o, v) in other.data.iter_mut().zip(g.data) {
                *o += v;
            }
        }
        regular.push(other);
    }
    regular
}

/// What an item needs besides its numbers.
struct ItemCx<'a> {
    plan: &'a TrendsPlan,
    filter_base: Vec<(String, String)>,
    current: &'a Period,
    previous: Option<&'a Period>,
}

impl ItemCx<'_> {
    fn period(&self, compare: bool) -> &Period {
        match (compare, self.previous) {
            (true, Some(p)) => p,
            _ => self.current,
        }
    }

    fn breakdown_mode(&self) -> bool {
        self.plan.breakdown != BreakdownMode::None
    }

    /// The people URL of one bucket (or of the whole range when `bucket` is `None`).
    fn persons_url(
        &self,
        compare: bool,
        bucket: Option<usize>,
        series: Option<&SeriesMeta>,
        key: &BdKey,
    ) -> Value {
        let period = self.period(compare);
        let pt = &self.plan.pt;
        let (from, to) = match bucket.and_then(|i| period.buckets.get(i).map(|b| (i, *b))) {
            Some((i, b)) => {
                let end = period
                    .buckets
                    .get(i + 1)
                    .copied()
                    .unwrap_or_else(|| dates::next_bucket(b, period.range.interval, pt))
                    .checked_sub_signed(TimeDelta::microseconds(1))
                    .unwrap_or(b);
                (b.max(period.range.from), end.min(period.range.to))
            }
            None => (period.range.from, period.range.to),
        };
        // Cumulative displays: a point sums everything up to it, so its persons are those
        // from the start of the range.
        let from = if self.plan.cumulative {
            period.range.from
        } else {
            from
        };
        let mut q = self.filter_base.clone();
        if let Some(s) = series {
            let id = match &s.entity_id {
                Value::String(v) => v.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            q.push(("entity_id".into(), id));
            q.push(("entity_type".into(), s.entity_type.to_string()));
            q.push(("entity_math".into(), s.math.clone()));
        }
        q.push(("date_from".into(), dates::iso_string(from, pt)));
        q.push(("date_to".into(), dates::iso_string(to, pt)));
        q.push(("explicit_date".into(), "true".into()));
        if self.breakdown_mode() {
            let v = match &key.value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            q.push(("breakdown_value".into(), v));
        }
        let qs = q
            .iter()
            .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        json!({"url": format!("/api/projects/{}/persons/trends/?{qs}", self.plan.project_id)})
    }

    /// One result item.
    fn item(
        &self,
        compare: bool,
        series: Option<&SeriesMeta>,
        label: String,
        g: &Group,
        total_value: bool,
    ) -> Value {
        let period = self.period(compare);
        let mut m = Map::new();
        if total_value {
            m.insert(
                "data".into(),
                if series.is_some() {
                    json!([])
                } else {
                    Value::Null
                },
            );
            m.insert("days".into(), json!([]));
            m.insert("labels".into(), json!([]));
            m.insert("count".into(), json!(0));
            m.insert("aggregated_value".into(), num(g.total));
            m.insert(
                "persons_urls".into(),
                json!([self.persons_url(compare, None, series, &g.key)]),
            );
        } else {
            let count = if self.plan.cumulative && series.is_some() {
                g.data.last().copied().unwrap_or(0.0)
            } else {
                g.data.iter().sum()
            };
            m.insert(
                "data".into(),
                Value::Array(g.data.iter().map(|v| num(*v)).collect()),
            );
            m.insert("days".into(), Value::Array(period.days.clone()));
            m.insert("labels".into(), Value::Array(period.labels.clone()));
            m.insert("count".into(), num(count));
            m.insert(
                "persons_urls".into(),
                Value::Array(
                    (0..g.data.len())
                        .map(|i| self.persons_url(compare, Some(i), series, &g.key))
                        .collect(),
                ),
            );
        }
        m.insert("label".into(), json!(label));
        m.insert(
            "action".into(),
            match series {
                Some(s) => {
                    let mut a = s.action.clone();
                    if let Value::Object(am) = &mut a {
                        let days = if total_value {
                            json!([])
                        } else {
                            Value::Array(period.days.clone())
                        };
                        am.insert("days".into(), days);
                    }
                    a
                }
                None => Value::Null,
            },
        );
        m.insert("filter".into(), self.plan.legacy_filter.clone());
        if self.breakdown_mode() {
            m.insert("breakdown_value".into(), g.key.value.clone());
        }
        if self.plan.compare_range.is_some() {
            m.insert("compare".into(), json!(true));
            m.insert(
                "compare_label".into(),
                json!(if compare { "previous" } else { "current" }),
            );
        }
        Value::Object(m)
    }
}

/// Render every run's rows into PostHog's `result` list. `outputs[i]` are the rows of
/// `plan.runs[i]` (missing outputs count as no rows).
pub fn render(plan: &TrendsPlan, outputs: &[Vec<Row>]) -> Value {
    let current = Period::new(plan.range, &plan.pt);
    let previous = plan.compare_range.map(|r| Period::new(r, &plan.pt));
    let filter_base: Vec<(String, String)> = match &plan.legacy_filter {
        Value::Object(m) => m
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "date_from" | "date_to" | "explicit_date" | "compare" | "compare_to"
                )
            })
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), s)
            })
            .collect(),
        _ => Vec::new(),
    };
    let cx = ItemCx {
        plan,
        filter_base,
        current: &current,
        previous: previous.as_ref(),
    };
    let per_run: Vec<Vec<Group>> = plan
        .runs
        .iter()
        .enumerate()
        .map(|(i, run)| {
            let rows = outputs.get(i).map(Vec::as_slice).unwrap_or(&[]);
            run_groups(plan, run, cx.period(run.compare), rows)
        })
        .collect();

    let mut out = Vec::new();
    if plan.formulas.is_empty() {
        for (run, groups) in plan.runs.iter().zip(&per_run) {
            let meta = &plan.series[run.series_index];
            for g in groups {
                let label = if !cx.breakdown_mode() {
                    meta.label.clone()
                } else if plan.series.len() > 1 {
                    format!("{} - {}", meta.label, g.key.label)
                } else {
                    g.key.label.clone()
                };
                out.push(cx.item(run.compare, Some(meta), label, g, run.total_value));
            }
        }
        return Value::Array(out);
    }

    let periods: &[bool] = if plan.compare_range.is_some() {
        &[false, true]
    } else {
        &[false]
    };
    for f in &plan.formulas {
        for &compare in periods {
            let n = cx.period(compare).buckets.len();
            // breakdown key text → (key, per-series group)
            let mut keys: Vec<BdKey> = Vec::new();
            let mut by_series: Vec<HashMap<String, &Group>> =
                vec![HashMap::new(); plan.series.len()];
            for (run, groups) in plan.runs.iter().zip(&per_run) {
                if run.compare != compare {
                    continue;
                }
                for g in groups {
                    if !keys.iter().any(|k| k.text == g.key.text) {
                        keys.push(g.key.clone());
                    }
                    if let Some(m) = by_series.get_mut(run.series_index) {
                        m.insert(g.key.text.clone(), g);
                    }
                }
            }
            let mut results: Vec<Group> = keys
                .into_iter()
                .map(|key| {
                    let inputs: Vec<Option<&&Group>> =
                        by_series.iter().map(|m| m.get(&key.text)).collect();
                    if plan.total_value {
                        let vars: Vec<f64> =
                            inputs.iter().map(|g| g.map_or(0.0, |g| g.total)).collect();
                        Group {
                            key,
                            data: Vec::new(),
                            total: eval(&f.expr, &vars),
                        }
                    } else {
                        let data: Vec<f64> = (0..n)
                            .map(|i| {
                                let vars: Vec<f64> = inputs
                                    .iter()
                                    .map(|g| g.and_then(|g| g.data.get(i).copied()).unwrap_or(0.0))
                                    .collect();
                                eval(&f.expr, &vars)
                            })
                            .collect();
                        let total = data.iter().sum();
                        Group { key, data, total }
                    }
                })
                .collect();
            if cx.breakdown_mode() {
                results.sort_by(|a, b| {
                    b.total
                        .partial_cmp(&a.total)
                        .unwrap_or(std::cmp::Ordering::Equal)
                });
            }
            for g in &results {
                out.push(cx.item(compare, None, f.label.clone(), g, plan.total_value));
            }
        }
    }
    Value::Array(out)
}

/// Decode `%XX` escapes (invalid escapes are kept as they are).
fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The bucket start encoded in a people URL's `date_from`, as Unix microseconds.
fn url_bucket(url: Option<&Value>) -> Option<i64> {
    let url = url?.get("url")?.as_str()?;
    let query = url.split_once('?')?.1;
    let v = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("date_from="))?;
    DateTime::parse_from_rfc3339(&url_decode(v))
        .ok()
        .map(|t| t.timestamp_micros())
}

/// Typed rows of a rendered result for BI tools: (series label, breakdown value as text (a
/// multi-breakdown joined with `::`), bucket start as Unix µs, value). Total-value items give
/// one row with no bucket. Bucket instants come from the items' people URLs (`date_from`).
/// A `days` entry (`YYYY-MM-DD` or `YYYY-MM-DD HH:MM:SS`) as Unix µs in the project timezone.
fn day_bucket(day: &str, pt: &ProjectTime) -> Option<i64> {
    use chrono::TimeZone;
    let naive = chrono::NaiveDateTime::parse_from_str(day, "%Y-%m-%d %H:%M:%S")
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
                .ok()?
                .and_hms_opt(0, 0, 0)
        })?;
    Some(
        pt.tz
            .from_local_datetime(&naive)
            .earliest()?
            .timestamp_micros(),
    )
}

pub fn rows(result: &Value, pt: &ProjectTime) -> Vec<(String, Option<String>, Option<i64>, f64)> {
    let mut out = Vec::new();
    for item in result.as_array().into_iter().flatten() {
        let label = item
            .get("label")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let bd = item.get("breakdown_value").and_then(|v| match v {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Array(a) => Some(
                a.iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| x.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join("::"),
            ),
            other => Some(other.to_string()),
        });
        if let Some(v) = item.get("aggregated_value") {
            out.push((label, bd, None, v.as_f64().unwrap_or(0.0)));
            continue;
        }
        let urls = item.get("persons_urls").and_then(Value::as_array);
        let days = item.get("days").and_then(Value::as_array);
        for (i, v) in item
            .get("data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            // The bucket start is the item's `days` entry in the project's timezone; the people
            // URL's date_from is clamped to the range start for a partial first week or month.
            let bucket = days
                .and_then(|d| d.get(i))
                .and_then(Value::as_str)
                .and_then(|d| day_bucket(d, pt))
                .or_else(|| url_bucket(urls.and_then(|u| u.get(i))));
            out.push((label.clone(), bd.clone(), bucket, v.as_f64().unwrap_or(0.0)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse_query;
    use chrono::TimeZone;
    use proptest::prelude::*;

    // -----------------------------------------------------------------------------------------
    // Harness
    // -----------------------------------------------------------------------------------------

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2020, 1, 21, 12, 0, 0).unwrap()
    }

    fn project() -> Project {
        Project {
            id: 7,
            pt: ProjectTime::utc(),
            timezone: "UTC".into(),
            test_account_filters: json!([
                {"key": "email", "value": "@posthog.com", "operator": "not_icontains", "type": "person"}
            ]),
            rollups: false,
            materialized: vec![],
        }
    }

    fn cohort(id: i64) -> Option<(bool, Value, String)> {
        match id {
            1 => Some((true, json!({}), "c1".to_string())),
            2 => Some((
                false,
                json!({"properties": [{"key": "email", "value": "x", "type": "person"}]}),
                "emails".to_string(),
            )),
            _ => None,
        }
    }

    fn action(id: i64) -> Option<(Value, String)> {
        match id {
            3 => Some((json!([{"event": "sign up"}]), "Signed up".to_string())),
            _ => None,
        }
    }

    fn try_plan(v: Value) -> Result<TrendsPlan> {
        let q = parse_query(&v)?;
        plan(
            &q,
            &project(),
            &Lookups {
                cohort: &cohort,
                action: &action,
            },
            now(),
            None,
        )
    }

    fn ok(v: Value) -> TrendsPlan {
        try_plan(v.clone()).unwrap_or_else(|e| panic!("{v}: {e:?}"))
    }

    fn err(v: Value) -> QueryError {
        match try_plan(v.clone()) {
            Ok(_) => panic!("{v}: expected an error"),
            Err(e) => e,
        }
    }

    /// A TQ-range trends filter (2020-01-09..2020-01-19) with these legacy keys added.
    fn tq(extra: Value) -> Value {
        let mut base = json!({
            "insight": "TRENDS",
            "events": [{"id": "$pageview", "order": 0}],
            "date_from": "2020-01-09",
            "date_to": "2020-01-19",
        });
        if let (Value::Object(b), Value::Object(x)) = (&mut base, extra) {
            b.extend(x);
        }
        base
    }

    fn day(d: u32) -> i64 {
        Utc.with_ymd_and_hms(2020, 1, d, 0, 0, 0)
            .unwrap()
            .timestamp_micros()
    }

    fn row(d: u32, bd: Option<&str>, v: f64) -> Row {
        Row {
            bucket_us: day(d),
            breakdown: bd.map(str::to_string),
            value: v,
        }
    }

    /// Fixture "TQ" (§11.6): (person, browser, event, day of January 2020), all at 12:00Z.
    const TQ: &[(u8, &str, &str, u32)] = &[
        (1, "Chrome", "$pageview", 11),
        (1, "Chrome", "$pageview", 12),
        (1, "Chrome", "$pageview", 13),
        (1, "Chrome", "$pageview", 15),
        (1, "Chrome", "$pageview", 17),
        (1, "Chrome", "$pageview", 19),
        (1, "Chrome", "$pageleave", 11),
        (1, "Chrome", "$pageleave", 12),
        (1, "Chrome", "$pageleave", 13),
        (2, "Firefox", "$pageview", 9),
        (2, "Firefox", "$pageview", 12),
        (2, "Firefox", "$pageleave", 13),
        (3, "Edge", "$pageview", 12),
        (3, "Edge", "$pageleave", 13),
        (4, "Safari", "$pageview", 15),
        (4, "Safari", "$pageleave", 16),
    ];

    /// What a `total` run returns over TQ: count per (day, browser?) within [from, to].
    fn tq_rows(event: &str, from: u32, to: u32, persons: &[u8], by_browser: bool) -> Vec<Row> {
        let mut counts: std::collections::BTreeMap<(u32, Option<&str>), f64> = Default::default();
        for (p, browser, ev, d) in TQ {
            if *ev == event && (from..=to).contains(d) && persons.contains(p) {
                *counts
                    .entry((*d, by_browser.then_some(*browser)))
                    .or_default() += 1.0;
            }
        }
        counts.into_iter().map(|((d, b), v)| row(d, b, v)).collect()
    }

    const ALL: &[u8] = &[1, 2, 3, 4];

    fn data(item: &Value) -> Vec<f64> {
        item["data"]
            .as_array()
            .unwrap_or_else(|| panic!("no data in {item}"))
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    }

    fn items(v: &Value) -> &Vec<Value> {
        v.as_array().expect("result list")
    }

    /// Every `$n` of the statement is bound and every parameter is used.
    fn check_placeholders(run: &TrendsRun) {
        let n = run.params.len();
        for i in 1..=n {
            assert!(
                run.sql.contains(&format!("${i}::")),
                "unreferenced ${i} in {}",
                run.sql
            );
        }
        assert!(
            !run.sql.contains(&format!("${}::", n + 1)),
            "dangling ${} in {}",
            n + 1,
            run.sql
        );
    }

    // -----------------------------------------------------------------------------------------
    // Planning: SQL shapes
    // -----------------------------------------------------------------------------------------

    fn one_sql(extra: Value) -> (String, Vec<Param>) {
        let p = ok(tq(extra));
        assert_eq!(p.runs.len(), 1);
        check_placeholders(&p.runs[0]);
        (p.runs[0].sql.clone(), p.runs[0].params.clone())
    }

    fn math_sql(entity: Value) -> String {
        one_sql(json!({"events": [entity]})).0
    }

    #[test]
    fn total_sql_shape() {
        let (sql, params) = one_sql(json!({}));
        assert!(sql.starts_with(
            "SELECT a.bucket, a.breakdown, coalesce(CASE WHEN abs(a.v) < 1e300 THEN a.v::float8 END, 0::float8) AS value FROM (SELECT "
        ), "{sql}");
        assert!(sql.contains("count(*) AS v FROM insights.events e WHERE e.project_id = $1::int8"));
        assert!(
            sql.contains(
                "e.\"timestamp\" >= $3::timestamptz AND e.\"timestamp\" <= $4::timestamptz"
            ),
            "{sql}"
        );
        assert!(sql.contains("(e.event = $2::text)"));
        assert!(sql.contains("(date_trunc('day', e.\"timestamp\" AT TIME ZONE $5::text) AT TIME ZONE $5::text) AS bucket"), "{sql}");
        assert!(sql.contains("NULL::text AS breakdown"));
        assert!(sql.ends_with("GROUP BY 1, 2) a"));
        assert_eq!(params[0], Param::Int(7));
        assert_eq!(params[1], Param::Text("$pageview".into()));
        assert_eq!(params[2], Param::Timestamp(day(9)));
        assert_eq!(
            params[3],
            Param::Timestamp(day(20) - 1),
            "date_to snaps to 23:59:59.999999"
        );
        assert_eq!(params[4], Param::Text("UTC".into()));
    }

    #[test]
    fn distinct_maths_sql() {
        let dau = math_sql(json!({"id": "$pageview", "math": "dau"}));
        // Persons: the parallel distinct-actors aggregate over (bucket, breakdown, person); in
        // UTC the day bucket is computed by the aggregate from the timestamp.
        assert!(
            dau.contains("insights._uniq_actors_utc(e.\"timestamp\", $")
                && dau.contains(", NULL::text, e.person_id) AS s"),
            "{dau}"
        );
        assert!(
            dau.contains("CROSS JOIN LATERAL insights._uniq_actors_rows(u.s) d"),
            "{dau}"
        );
        // Weeks (and non-UTC zones) keep the SQL bucket expression.
        let (wk, _) =
            one_sql(json!({"events": [{"id": "$pageview", "math": "dau"}], "interval": "week"}));
        assert!(
            wk.contains("insights._uniq_actors(((date_trunc('week'"),
            "{wk}"
        );
        let g = math_sql(
            json!({"id": "$pageview", "math": "unique_group", "math_group_type_index": 2}),
        );
        assert!(g.contains("NULLIF(e.group_2, '') AS actor"), "{g}");
        let s = math_sql(json!({"id": "$pageview", "math": "unique_session"}));
        assert!(s.contains("NULLIF(e.session_id, '') AS actor"), "{s}");
        // Aggregating by groups: dau counts groups.
        let (sql, _) = one_sql(
            json!({"events": [{"id": "$pageview", "math": "dau"}], "aggregation_group_type_index": 1}),
        );
        assert!(sql.contains("NULLIF(e.group_1, '') AS actor"), "{sql}");
    }

    #[test]
    fn active_users_sql() {
        let w = math_sql(json!({"id": "$pageview", "math": "weekly_active"}));
        assert!(w.contains("FROM generate_series($"), "{w}");
        assert!(w.contains("interval '1 day') AS bk(d)"));
        assert!(w.contains("JOIN (SELECT DISTINCT date_trunc('day', e.\"timestamp\" AT TIME ZONE"));
        assert!(w.contains("ON ad.d > bk.d - interval '7 days' AND ad.d <= bk.d GROUP BY 1, 2"));
        assert!(w.contains("count(DISTINCT ad.actor) AS v"));
        let p = ok(tq(
            json!({"events": [{"id": "$pageview", "math": "monthly_active"}]}),
        ));
        let m = &p.runs[0];
        check_placeholders(m);
        assert!(m.sql.contains("interval '30 days'"));
        // The events read start 31 days before the range.
        assert!(
            m.params
                .contains(&Param::Timestamp(day(9) - 31 * 86_400_000_000))
        );
        // Week and month intervals: distinct per bucket (T26, T27).
        let (sql, _) = one_sql(
            json!({"events": [{"id": "$pageview", "math": "weekly_active"}], "interval": "week"}),
        );
        assert!(!sql.contains("generate_series"));
        assert!(sql.contains("count(DISTINCT e.person_id) AS v"));
        // Hours: absolute windows.
        let (sql, _) = one_sql(
            json!({"events": [{"id": "$pageview", "math": "weekly_active"}], "interval": "hour"}),
        );
        assert!(sql.contains("interval '1 hour') AS bk(d)"), "{sql}");
        assert!(sql.contains("interval '168 hours'"));
        // Total value: the 7 days ending at date_to.
        let p = ok(tq(
            json!({"events": [{"id": "$pageview", "math": "weekly_active"}], "display": "BoldNumber"}),
        ));
        assert!(
            p.runs[0].params.contains(&Param::Timestamp(day(13))),
            "{:?}",
            p.runs[0].params
        );
        assert!(p.runs[0].sql.contains("count(DISTINCT e.person_id) AS v"));
    }

    #[test]
    fn property_maths_sql() {
        for (math, agg) in [
            ("sum", "sum((CASE WHEN length("),
            ("avg", "avg((CASE WHEN length("),
            ("min", "min((CASE WHEN length("),
            ("max", "max((CASE WHEN length("),
            (
                "median",
                "percentile_cont(0.5) WITHIN GROUP (ORDER BY ((CASE",
            ),
            ("p75", "percentile_cont(0.75) WITHIN GROUP"),
            ("p90", "percentile_cont(0.9) WITHIN GROUP"),
            ("p95", "percentile_cont(0.95) WITHIN GROUP"),
            ("p99", "percentile_cont(0.99) WITHIN GROUP"),
        ] {
            let (sql, params) = one_sql(
                json!({"events": [{"id": "$pageview", "math": math, "math_property": "prop"}]}),
            );
            assert!(sql.contains(agg), "{math}: {sql}");
            assert!(sql.contains("(e.properties ->> $"), "{sql}");
            assert!(sql.contains(&format!("'{NUM_RE}' THEN")), "{sql}");
            assert!(params.contains(&Param::Text("prop".into())));
        }
        let s = math_sql(
            json!({"id": "$pageview", "math": "avg", "math_property": "$session_duration"}),
        );
        assert!(s.contains("e.session_id AS sid, max("), "{s}");
        assert!(s.contains("avg(s.x) AS v"));
    }

    #[test]
    fn per_actor_sql() {
        for (math, agg) in [
            ("avg_count_per_actor", "avg(pa.c)"),
            ("min_count_per_actor", "min(pa.c)"),
            ("max_count_per_actor", "max(pa.c)"),
            (
                "median_count_per_actor",
                "percentile_cont(0.5) WITHIN GROUP (ORDER BY (pa.c)::float8)",
            ),
            ("p90_count_per_actor", "percentile_cont(0.9) WITHIN GROUP"),
        ] {
            let sql = math_sql(json!({"id": "$pageview", "math": math}));
            assert!(sql.contains(agg), "{math}: {sql}");
            assert!(
                sql.contains("e.person_id AS actor, count(*) AS c FROM insights.events e"),
                "{sql}"
            );
            assert!(sql.contains("GROUP BY 1, 2, 3) pa GROUP BY 1, 2"));
        }
    }

    #[test]
    fn first_time_sql() {
        let sql = math_sql(json!({"id": "$pageview", "math": "first_time_for_user",
            "properties": [{"key": "$browser", "value": "Chrome"}]}));
        assert!(sql.contains("AND e.uuid = (SELECT e2.uuid FROM insights.events e2 WHERE e2.project_id = e.project_id AND e2.person_id = e.person_id AND (e2.event = $2::text) ORDER BY e2.\"timestamp\", e2.uuid LIMIT 1)"), "{sql}");
        assert!(sql.contains("count(DISTINCT e.person_id) AS v"));
        let with = math_sql(
            json!({"id": "$pageview", "math": "first_time_for_user_with_filters",
            "properties": [{"key": "$browser", "value": "Chrome"}]}),
        );
        assert!(with.contains("e2.properties ->>"), "{with}");
    }

    #[test]
    fn hogql_math_sql() {
        let sum = math_sql(
            json!({"id": "$pageview", "math": "hogql", "math_hogql": "sum(properties.prop)"}),
        );
        assert!(sum.contains("sum(("), "{sum}");
        assert!(sum.contains("::numeric) AS v"), "{sum}");
        let c = math_sql(
            json!({"id": "$pageview", "math": "hogql", "math_hogql": "count(distinct person_id)"}),
        );
        assert!(c.contains("count(DISTINCT e.person_id) AS v"), "{c}");
        let c = math_sql(json!({"id": "$pageview", "math": "hogql", "math_hogql": "count()"}));
        assert!(c.contains("count(*) AS v"));
        let u = math_sql(
            json!({"id": "$pageview", "math": "hogql", "math_hogql": "uniq(properties.$browser)"}),
        );
        assert!(u.contains("count(DISTINCT (e.properties ->> $"), "{u}");
        for bad in [
            "sum(properties.prop) + 1",
            "quantile(0.9)(properties.prop)",
            "properties.prop",
            "sum(count())",
            "argMax(event, timestamp)",
        ] {
            let e = err(tq(
                json!({"events": [{"id": "$pageview", "math": "hogql", "math_hogql": bad}]}),
            ));
            assert_eq!(e.state.code(), "22023", "{bad}");
            assert_eq!(
                e.attr.as_deref(),
                Some("events__0__math_hogql"),
                "{bad}: {e:?}"
            );
            assert!(
                e.detail.starts_with("Unsupported HogQL"),
                "{bad}: {}",
                e.detail
            );
        }
    }

    #[test]
    fn cumulative_distinct_counts_first_bucket() {
        let (sql, _) = one_sql(
            json!({"events": [{"id": "$pageview", "math": "dau"}], "display": "ActionsLineGraphCumulative"}),
        );
        assert!(sql.contains("FROM (SELECT min((date_trunc('day'"), "{sql}");
        assert!(sql.contains("e.person_id AS actor FROM insights.events e"));
        assert!(sql.contains("GROUP BY 2, 3) f GROUP BY 1, 2"));
        // Totals are plainly counted and summed by the renderer.
        let (sql, _) = one_sql(json!({"display": "ActionsLineGraphCumulative"}));
        assert!(sql.contains("count(*) AS v"));
    }

    #[test]
    fn total_value_runs_have_no_buckets() {
        let p = ok(tq(
            json!({"events": [{"id": "$pageview", "math": "dau"}], "display": "ActionsPie", "breakdown": "$browser"}),
        ));
        let r = &p.runs[0];
        check_placeholders(r);
        assert!(r.total_value && p.total_value);
        assert!(!r.sql.contains("date_trunc"), "{}", r.sql);
        assert!(
            r.sql.contains("insights._uniq_actors($3::timestamptz, "),
            "{}",
            r.sql
        );
        assert!(r.sql.contains(", e.person_id) AS s"), "{}", r.sql);
    }

    #[test]
    fn breakdown_sql() {
        let (sql, params) = one_sql(json!({"breakdown": "$browser"}));
        assert!(sql.contains("(e.properties ->> $"), "{sql}");
        assert!(params.contains(&Param::Text("$browser".into())));
        let (sql, _) = one_sql(json!({"breakdown": "email", "breakdown_type": "person"}));
        assert!(sql.contains("insights.persons"), "{sql}");
        let (sql, _) = one_sql(
            json!({"breakdown": "name", "breakdown_type": "group", "breakdown_group_type_index": 0}),
        );
        assert!(sql.contains("insights.groups"), "{sql}");
        let (sql, _) =
            one_sql(json!({"breakdown": "upper(properties.$browser)", "breakdown_type": "hogql"}));
        assert!(sql.contains("upper("), "{sql}");
        let (sql, _) =
            one_sql(json!({"breakdown": "distinct_id", "breakdown_type": "event_metadata"}));
        assert!(sql.contains("e.distinct_id AS breakdown"), "{sql}");
        let (sql, _) = one_sql(
            json!({"breakdowns": [{"property": "$browser", "type": "event"}, {"property": "$os", "type": "event"}]}),
        );
        assert!(sql.contains("jsonb_build_array("), "{sql}");
        let (sql, _) =
            one_sql(json!({"breakdown": "$current_url", "breakdown_normalize_url": true}));
        assert!(sql.contains("rtrim(regexp_replace("), "{sql}");
    }

    #[test]
    fn histogram_sql() {
        let (sql, params) =
            one_sql(json!({"breakdown": "prop", "breakdown_histogram_bin_count": 4}));
        assert!(
            sql.starts_with("WITH pgi_mm AS MATERIALIZED (SELECT min("),
            "{sql}"
        );
        assert!(
            sql.contains("CROSS JOIN pgi_mm CROSS JOIN LATERAL (SELECT"),
            "{sql}"
        );
        assert!(sql.contains("pgi_mm.hi + 0.01"));
        assert!(sql.contains("trim_scale(floor("));
        assert!(params.contains(&Param::Int(4)));
        let e = err(tq(json!({"breakdowns": [
            {"property": "a", "type": "event", "histogram_bin_count": 3},
            {"property": "b", "type": "event"}]})));
        assert_eq!(e.attr.as_deref(), Some("breakdown_histogram_bin_count"));
    }

    #[test]
    fn cohort_breakdown_runs_per_cohort() {
        let p = ok(tq(json!({
            "events": [{"id": "$pageview", "order": 0}, {"id": "$pageleave", "order": 1}],
            "breakdown": [1, "all"], "breakdown_type": "cohort",
        })));
        assert_eq!(p.breakdown, BreakdownMode::Cohort);
        let shape: Vec<(usize, Option<Value>)> = p
            .runs
            .iter()
            .map(|r| (r.series_index, r.cohort.as_ref().map(|c| c.0.clone())))
            .collect();
        assert_eq!(
            shape,
            vec![
                (0, Some(json!(1))),
                (1, Some(json!(1))),
                (0, Some(json!("all"))),
                (1, Some(json!("all"))),
            ]
        );
        assert!(
            p.runs[0].sql.contains("insights.cohort_people"),
            "{}",
            p.runs[0].sql
        );
        assert!(!p.runs[2].sql.contains("cohort_people"));
        assert_eq!(p.runs[0].cohort.as_ref().unwrap().1, "c1");
        assert_eq!(p.runs[2].cohort.as_ref().unwrap().1, "all users");
        for r in &p.runs {
            check_placeholders(r);
        }
        let e = err(tq(json!({"breakdown": [99], "breakdown_type": "cohort"})));
        assert_eq!(
            (e.state.code(), e.attr.as_deref()),
            ("22023", Some("breakdown"))
        );
    }

    #[test]
    fn compare_runs_follow_each_series() {
        let p = ok(tq(json!({
            "events": [{"id": "$pageview", "order": 0}, {"id": "$pageleave", "order": 1}],
            "date_from": "2020-01-15", "compare": true,
        })));
        let shape: Vec<(usize, bool)> =
            p.runs.iter().map(|r| (r.series_index, r.compare)).collect();
        assert_eq!(shape, vec![(0, false), (0, true), (1, false), (1, true)]);
        let c = p.compare_range.unwrap();
        assert_eq!(c.from.timestamp_micros(), day(10));
        assert_eq!(c.to.timestamp_micros(), day(15) - 1);
        assert!(p.runs[1].params.contains(&Param::Timestamp(day(10))));
        let p = ok(tq(json!({"compare": true, "compare_to": "-1w"})));
        assert_eq!(p.compare_range.unwrap().from.timestamp_micros(), day(2));
        let e = err(tq(json!({"compare": true, "compare_to": "2020-01-01"})));
        assert_eq!(e.attr.as_deref(), Some("compare_to"));
    }

    #[test]
    fn test_accounts_global_properties_and_series_cohort() {
        let (sql, params) = one_sql(json!({
            "filter_test_accounts": true,
            "properties": [{"key": "$browser", "value": "Chrome"}],
            "events": [{"id": "$pageview", "properties": [{"type": "cohort", "key": "id", "value": 1}]}],
        }));
        assert!(sql.contains("insights.cohort_people"), "{sql}");
        assert!(sql.contains("ILIKE"), "{sql}");
        assert!(params.contains(&Param::Text("Chrome".into())));
    }

    #[test]
    fn actions_and_all_events() {
        let p = ok(tq(
            json!({"events": [], "actions": [{"id": 3, "order": 0}]}),
        ));
        assert!(p.runs[0].sql.contains("(e.event = $2::text)"));
        assert_eq!(p.series[0].label, "Signed up");
        assert_eq!(p.series[0].action["id"], json!(3));
        assert_eq!(p.series[0].action["type"], json!("actions"));
        let p = ok(tq(json!({"events": [{"id": null}]})));
        assert_eq!(p.series[0].label, "All events");
        check_placeholders(&p.runs[0]);
        let e = err(tq(json!({"events": [], "actions": [{"id": 404}]})));
        assert_eq!(e.attr.as_deref(), Some("actions"));
    }

    #[test]
    fn validation_errors() {
        let e = err(json!({"insight": "TRENDS", "date_from": "-7d"}));
        assert_eq!(
            (e.state.code(), e.attr.as_deref()),
            ("22023", Some("events"))
        );
        let e = err(tq(json!({"formula": "A+C"})));
        assert_eq!(
            (e.state.code(), e.attr.as_deref()),
            ("22023", Some("formula"))
        );
        for bad in ["A+", "(A", "A B", "AB", "A$", "1..2", ""] {
            assert!(parse_formula(bad, 2).is_err(), "{bad}");
        }
        let deep = format!("{}A{}", "(".repeat(100), ")".repeat(100));
        assert!(parse_formula(&deep, 1).is_err());
        assert!(parse_formula(&"-".repeat(10_000), 1).is_err());
        let e = err(tq(json!({"events": [{"id": "$pageview", "math": "sum"}]})));
        assert!(
            e.attr
                .as_deref()
                .unwrap_or_default()
                .ends_with("math_property"),
            "{e:?}"
        );
        let e = err(tq(json!({"interval": "day", "interval_count": 2})));
        assert_eq!(e.attr.as_deref(), Some("interval_count"));
        let e = err(json!({"insight": "FUNNELS", "events": [{"id": "a"}, {"id": "b"}]}));
        assert_eq!(e.attr.as_deref(), Some("insight"));
    }

    #[test]
    fn params_never_contain_sql_and_values_never_reach_sql() {
        let evil = "x'); DROP TABLE insights.events; --";
        let p = ok(tq(json!({
            "events": [{"id": evil, "math": "sum", "math_property": evil,
                        "properties": [{"key": evil, "value": evil}]}],
            "properties": [{"key": evil, "value": [evil, "b"], "operator": "in"}],
            "breakdown": evil,
            "compare": true,
        })));
        for r in &p.runs {
            check_placeholders(r);
            assert!(!r.sql.contains("DROP TABLE"), "{}", r.sql);
            for prm in &r.params {
                let text = match prm {
                    Param::Text(s) => vec![s.clone()],
                    Param::TextArray(a) => a.clone(),
                    _ => vec![],
                };
                for t in text {
                    for fragment in ["SELECT", "insights.events", "e.\"timestamp\"", "$1::"] {
                        assert!(
                            !t.contains(fragment) || t == evil,
                            "SQL in a parameter: {t}"
                        );
                    }
                }
            }
            assert!(r.params.contains(&Param::Text(evil.into())));
        }
    }

    // -----------------------------------------------------------------------------------------
    // Rendering
    // -----------------------------------------------------------------------------------------

    #[test]
    fn t1_total_zero_filled() {
        let p = ok(tq(json!({})));
        let out = render(&p, &[tq_rows("$pageview", 9, 19, ALL, false)]);
        let it = &items(&out)[0];
        assert_eq!(items(&out).len(), 1);
        assert_eq!(data(it), vec![1., 0., 1., 3., 1., 0., 2., 0., 1., 0., 1.]);
        assert_eq!(it["data"][3], json!(3), "counts are JSON integers");
        assert_eq!(it["count"], json!(10));
        assert_eq!(it["label"], json!("$pageview"));
        assert_eq!(it["days"][0], json!("2020-01-09"));
        assert_eq!(it["days"][10], json!("2020-01-19"));
        assert_eq!(it["labels"][0], json!("9-Jan-2020"));
        assert_eq!(it["action"]["id"], json!("$pageview"));
        assert_eq!(it["action"]["type"], json!("events"));
        assert_eq!(it["action"]["math"], json!("total"));
        assert_eq!(it["action"]["order"], json!(0));
        assert_eq!(it["filter"]["insight"], json!("TRENDS"));
        assert!(it.get("breakdown_value").is_none());
        assert!(it.get("compare").is_none());
        let urls = it["persons_urls"].as_array().unwrap();
        assert_eq!(urls.len(), 11);
        let u0 = urls[0]["url"].as_str().unwrap();
        assert!(u0.starts_with("/api/projects/7/persons/trends/?"), "{u0}");
        assert!(
            u0.contains("entity_id=%24pageview&entity_type=events&entity_math=total"),
            "{u0}"
        );
        assert!(
            u0.contains(
                "date_from=2020-01-09T00%3A00%3A00Z&date_to=2020-01-09T23%3A59%3A59.999999Z"
            ),
            "{u0}"
        );

        // No rows at all: one all-zero item.
        let out = render(&p, &[vec![]]);
        assert_eq!(data(&items(&out)[0]), vec![0.0; 11]);
        assert_eq!(items(&out)[0]["count"], json!(0));
        // Rows outside the buckets are ignored; duplicates add up.
        let out = render(
            &p,
            &[vec![
                row(1, None, 5.0),
                row(9, None, 1.0),
                row(9, None, 2.0),
            ]],
        );
        assert_eq!(items(&out)[0]["count"], json!(3));
    }

    #[test]
    fn t3_two_series_and_custom_name() {
        let p = ok(tq(json!({"events": [
            {"id": "$pageview", "order": 0},
            {"id": "$pageleave", "order": 1, "custom_name": "Left"}]})));
        let out = render(
            &p,
            &[
                tq_rows("$pageview", 9, 19, ALL, false),
                tq_rows("$pageleave", 9, 19, ALL, false),
            ],
        );
        let counts: Vec<&Value> = items(&out).iter().map(|i| &i["count"]).collect();
        assert_eq!(counts, vec![&json!(10), &json!(6)]);
        assert_eq!(
            data(&items(&out)[1]),
            vec![0., 0., 1., 1., 3., 0., 0., 1., 0., 0., 0.]
        );
        assert_eq!(items(&out)[1]["label"], json!("Left"));
        assert_eq!(items(&out)[1]["action"]["custom_name"], json!("Left"));
    }

    #[test]
    fn t11_cohort_filtered_series_counts() {
        let p = ok(tq(json!({"date_to": "2020-01-20"})));
        let out = render(&p, &[tq_rows("$pageview", 9, 20, &[1], false)]);
        assert_eq!(
            data(&items(&out)[0]),
            vec![0., 0., 1., 1., 1., 0., 1., 0., 1., 0., 1., 0.]
        );
        assert_eq!(items(&out)[0]["count"], json!(6));
    }

    #[test]
    fn t31_cumulative() {
        let p = ok(tq(
            json!({"date_to": "2020-01-20", "display": "ActionsLineGraphCumulative"}),
        ));
        let out = render(&p, &[tq_rows("$pageview", 9, 20, ALL, false)]);
        assert_eq!(
            data(&items(&out)[0]),
            vec![1., 1., 2., 5., 6., 6., 8., 8., 9., 9., 10., 10.]
        );
        assert_eq!(
            items(&out)[0]["count"],
            json!(10),
            "cumulative count is the last value"
        );
    }

    #[test]
    fn t35_smoothing() {
        let p = ok(tq(
            json!({"date_to": "2020-01-20", "smoothing_intervals": 7}),
        ));
        let out = render(&p, &[tq_rows("$pageview", 9, 20, ALL, false)]);
        assert_eq!(
            data(&items(&out)[0]),
            vec![1., 0., 0., 1., 1., 1., 1., 1., 1., 1., 0., 0.]
        );
        assert_eq!(items(&out)[0]["count"], json!(8));
    }

    #[test]
    fn t29_property_values_render_as_given() {
        let p = ok(tq(
            json!({"date_to": "2020-01-20", "events": [{"id": "$pageview", "math": "avg", "math_property": "prop"}]}),
        ));
        let rows = vec![
            row(9, None, 20.0),
            row(11, None, 10.0),
            row(12, None, 20.0),
            row(15, None, 25.0),
            row(16, None, 12.5),
        ];
        let out = render(&p, &rows_vec(rows));
        let it = &items(&out)[0];
        assert_eq!(
            data(it),
            vec![20., 0., 10., 20., 0., 0., 25., 12.5, 0., 0., 0., 0.]
        );
        assert_eq!(it["data"][0], json!(20));
        assert_eq!(it["data"][7], json!(12.5));
        assert_eq!(it["count"], json!(87.5));
        assert_eq!(it["action"]["math_property"], json!("prop"));
    }

    fn rows_vec(r: Vec<Row>) -> Vec<Vec<Row>> {
        vec![r]
    }

    #[test]
    fn t17_breakdown_order_and_ties() {
        let p = ok(tq(
            json!({"date_to": "2020-01-20", "breakdown": "$browser"}),
        ));
        let out = render(&p, &[tq_rows("$pageview", 9, 20, ALL, true)]);
        let got: Vec<(Value, Value)> = items(&out)
            .iter()
            .map(|i| (i["breakdown_value"].clone(), i["count"].clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (json!("Chrome"), json!(6)),
                (json!("Firefox"), json!(2)),
                (json!("Edge"), json!(1)),
                (json!("Safari"), json!(1)),
            ]
        );
        assert_eq!(
            items(&out)[0]["label"],
            json!("Chrome"),
            "one series: label is the value"
        );
        assert!(
            items(&out)[0]["persons_urls"][0]["url"]
                .as_str()
                .unwrap()
                .contains("breakdown_value=Chrome")
        );
    }

    #[test]
    fn breakdown_labels_with_several_series() {
        let p = ok(tq(json!({"date_to": "2020-01-20", "breakdown": "$browser",
            "events": [{"id": "$pageview", "order": 0}, {"id": "$pageleave", "order": 1}]})));
        let out = render(
            &p,
            &[
                tq_rows("$pageview", 9, 20, ALL, true),
                tq_rows("$pageleave", 9, 20, ALL, true),
            ],
        );
        let labels: Vec<&str> = items(&out)
            .iter()
            .map(|i| i["label"].as_str().unwrap())
            .collect();
        assert_eq!(
            labels,
            vec![
                "$pageview - Chrome",
                "$pageview - Firefox",
                "$pageview - Edge",
                "$pageview - Safari",
                "$pageleave - Chrome",
                "$pageleave - Edge",
                "$pageleave - Firefox",
                "$pageleave - Safari",
            ]
        );
    }

    /// 30 breakdown values v00..v29 where v_i has i+1 events on 01-09, plus null values.
    fn many_values() -> Vec<Row> {
        let mut r: Vec<Row> = (0..30)
            .map(|i| row(9, Some(&format!("v{i:02}")), f64::from(i + 1)))
            .collect();
        r.push(row(10, None, 2.0));
        r.push(row(10, Some(""), 1.0));
        r
    }

    #[test]
    fn t32_breakdown_limit_and_other() {
        let p = ok(tq(json!({"breakdown": "k"})));
        let out = render(&p, &[many_values()]);
        let v = items(&out);
        assert_eq!(v.len(), 26, "25 values + Other");
        assert_eq!(v[0]["breakdown_value"], json!("v29"));
        assert_eq!(v[24]["breakdown_value"], json!("v05"));
        assert_eq!(v[25]["breakdown_value"], json!(BREAKDOWN_OTHER));
        // Other = v00..v04 (1+2+3+4+5) + the null value (3 events).
        assert_eq!(v[25]["count"], json!(18));
        assert_eq!(data(&v[25])[..2], [15.0, 3.0]);

        let p = ok(tq(json!({"breakdown": "k", "breakdown_limit": 10})));
        let out = render(&p, &[many_values()]);
        assert_eq!(items(&out).len(), 11);
        let p = ok(tq(
            json!({"breakdown": "k", "breakdown_limit": 10, "breakdown_hide_other_aggregation": true}),
        ));
        let out = render(&p, &[many_values()]);
        assert_eq!(items(&out).len(), 10);
        assert!(
            items(&out)
                .iter()
                .all(|i| i["breakdown_value"] != json!(BREAKDOWN_OTHER))
        );
        let p = ok(tq(json!({"breakdown": "k", "display": "WorldMap"})));
        assert_eq!(p.breakdown_limit, 250);
        let out = render(&p, &[many_values()]);
        assert_eq!(items(&out).len(), 31, "30 values + null, no Other");
        assert_eq!(items(&out)[30]["breakdown_value"], json!(BREAKDOWN_NULL));
    }

    #[test]
    fn null_value_after_regular_values_before_other() {
        let p = ok(tq(json!({"breakdown": "k", "breakdown_limit": 2})));
        let rows = vec![
            row(9, None, 9.0),
            row(9, Some("a"), 5.0),
            row(9, Some("b"), 1.0),
            row(10, Some(""), 1.0),
        ];
        let out = render(&p, &[rows]);
        let got: Vec<(Value, Value)> = items(&out)
            .iter()
            .map(|i| (i["breakdown_value"].clone(), i["count"].clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (json!("a"), json!(5)),
                (json!(BREAKDOWN_NULL), json!(10)),
                (json!(BREAKDOWN_OTHER), json!(1)),
            ]
        );
        // All-zero values are dropped.
        let p = ok(tq(json!({"breakdown": "k"})));
        let out = render(&p, &[vec![row(9, Some("z"), 0.0), row(9, Some("a"), 1.0)]]);
        assert_eq!(items(&out).len(), 1);
        // With a breakdown and no data: no items.
        assert_eq!(render(&p, &[vec![]]), json!([]));
    }

    #[test]
    fn multi_breakdown_values() {
        let p = ok(tq(
            json!({"breakdowns": [{"property": "$browser", "type": "event"}, {"property": "$os", "type": "event"}]}),
        ));
        assert_eq!(p.breakdown, BreakdownMode::Multi);
        let input = vec![
            row(9, Some(r#"["Chrome", "Mac"]"#), 2.0),
            row(9, Some(r#"["Chrome", null]"#), 1.0),
        ];
        let out = render(&p, &[input]);
        assert_eq!(items(&out)[0]["breakdown_value"], json!(["Chrome", "Mac"]));
        assert_eq!(items(&out)[0]["label"], json!("Chrome::Mac"));
        assert_eq!(
            items(&out)[1]["breakdown_value"],
            json!(["Chrome", BREAKDOWN_NULL])
        );
        let r = rows(&out, &ProjectTime::utc());
        assert_eq!(r[0].1.as_deref(), Some("Chrome::Mac"));
    }

    #[test]
    fn t21_breakdown_with_compare() {
        let p = ok(tq(
            json!({"date_from": "2020-01-15", "date_to": "2020-01-20", "breakdown": "$browser", "compare": true}),
        ));
        let out = render(
            &p,
            &[
                tq_rows("$pageview", 15, 20, ALL, true),
                tq_rows("$pageview", 9, 14, ALL, true),
            ],
        );
        let got: Vec<(Value, Value, Value)> = items(&out)
            .iter()
            .map(|i| {
                (
                    i["breakdown_value"].clone(),
                    i["count"].clone(),
                    i["compare_label"].clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (json!("Chrome"), json!(3), json!("current")),
                (json!("Safari"), json!(1), json!("current")),
                (json!("Chrome"), json!(3), json!("previous")),
                (json!("Firefox"), json!(2), json!("previous")),
                (json!("Edge"), json!(1), json!("previous")),
            ]
        );
        assert!(items(&out).iter().all(|i| i["compare"] == json!(true)));
        assert_eq!(items(&out)[0]["days"][0], json!("2020-01-15"));
        assert_eq!(
            items(&out)[2]["days"][0],
            json!("2020-01-09"),
            "previous items have their own days"
        );
        assert_eq!(items(&out)[2]["labels"][5], json!("14-Jan-2020"));
        assert_eq!(items(&out)[2]["data"].as_array().unwrap().len(), 6);
    }

    /// Rows for hand-given per-day values starting at `first`.
    fn series_rows(first: u32, values: &[f64]) -> Vec<Row> {
        values
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != 0.0)
            .map(|(i, v)| row(first + i as u32, None, *v))
            .collect()
    }

    #[test]
    fn t5_formula_with_compare() {
        let p = ok(tq(json!({
            "events": [{"id": "sign up", "order": 0}, {"id": "$pageview", "order": 1}],
            "date_from": "2020-01-15", "formula": "A+B", "compare": true,
        })));
        let out = render(
            &p,
            &[
                series_rows(15, &[1., 1., 0., 0., 1.]),
                series_rows(10, &[0., 1., 2., 3., 0.]),
                series_rows(15, &[1., 1., 1., 0., 0.]),
                series_rows(10, &[0., 2., 3., 4., 0.]),
            ],
        );
        let v = items(&out);
        assert_eq!(v.len(), 2, "the formula's series are not returned");
        assert_eq!(data(&v[0]), vec![2., 2., 1., 0., 1.]);
        assert_eq!(v[0]["count"], json!(6));
        assert_eq!(v[0]["compare_label"], json!("current"));
        assert_eq!(v[0]["label"], json!("Formula (A+B)"));
        assert_eq!(v[0]["action"], Value::Null);
        assert_eq!(data(&v[1]), vec![0., 3., 5., 7., 0.]);
        assert_eq!(v[1]["count"], json!(15));
        assert_eq!(v[1]["compare_label"], json!("previous"));
        assert_eq!(v[1]["days"][0], json!("2020-01-10"));
    }

    #[test]
    fn t7_formula_compare_bold_number() {
        let p = ok(tq(json!({
            "events": [{"id": "sign up", "order": 0}, {"id": "$pageview", "order": 1}],
            "date_from": "2020-01-15", "formula": "A+B", "compare": true, "display": "BoldNumber",
        })));
        assert!(p.runs.iter().all(|r| r.total_value));
        let tot = |v: f64| {
            vec![Row {
                bucket_us: day(15),
                breakdown: None,
                value: v,
            }]
        };
        let out = render(&p, &[tot(3.0), tot(10.0), tot(3.0), tot(5.0)]);
        let v = items(&out);
        assert_eq!(v[0]["aggregated_value"], json!(6));
        assert_eq!(v[1]["aggregated_value"], json!(15));
        for i in v {
            assert_eq!(i["count"], json!(0));
            assert_eq!(i["data"], Value::Null);
            assert_eq!(i["days"], json!([]));
        }
    }

    #[test]
    fn t30_total_value_series_items() {
        let p = ok(tq(
            json!({"display": "ActionsTable", "breakdown": "$browser"}),
        ));
        let rows = vec![
            Row {
                bucket_us: day(9),
                breakdown: Some("Chrome".into()),
                value: 6.0,
            },
            Row {
                bucket_us: day(9),
                breakdown: Some("Firefox".into()),
                value: 2.0,
            },
            Row {
                bucket_us: day(9),
                breakdown: None,
                value: 0.0,
            },
        ];
        let out = render(&p, &[rows]);
        let v = items(&out);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0]["aggregated_value"], json!(6));
        assert_eq!(v[0]["data"], json!([]));
        assert_eq!(v[0]["labels"], json!([]));
        assert_eq!(v[0]["count"], json!(0));
        assert_eq!(v[1]["breakdown_value"], json!("Firefox"));
        let r = rows_of(&out);
        assert_eq!(
            r,
            vec![
                ("Chrome".into(), Some("Chrome".into()), None, 6.0),
                ("Firefox".into(), Some("Firefox".into()), None, 2.0)
            ]
        );
    }

    fn rows_of(v: &Value) -> Vec<(String, Option<String>, Option<i64>, f64)> {
        rows(v, &ProjectTime::utc())
    }

    #[test]
    fn t13_cohort_breakdown_formulas() {
        let q = |formula: &str| {
            ok(tq(json!({
                "events": [{"id": "$pageview", "order": 0}, {"id": "$pageleave", "order": 1}],
                "date_to": "2020-01-20", "breakdown": [1, "all"], "breakdown_type": "cohort",
                "formula": formula,
            })))
        };
        let outputs = vec![
            tq_rows("$pageview", 9, 20, &[1], false),
            tq_rows("$pageleave", 9, 20, &[1], false),
            tq_rows("$pageview", 9, 20, ALL, false),
            tq_rows("$pageleave", 9, 20, ALL, false),
        ];
        let find = |out: &Value, bd: Value| -> Value {
            items(out)
                .iter()
                .find(|i| i["breakdown_value"] == bd)
                .cloned()
                .unwrap()
        };
        let out = render(&q("A+B"), &outputs);
        assert_eq!(items(&out).len(), 2);
        assert_eq!(find(&out, json!(1))["count"], json!(9));
        let all = find(&out, json!("all"));
        assert_eq!(all["count"], json!(16));
        assert_eq!(
            data(&all),
            vec![1., 0., 2., 4., 4., 0., 2., 1., 1., 0., 1., 0.]
        );
        assert_eq!(
            items(&out)[0]["breakdown_value"],
            json!("all"),
            "sorted by total desc"
        );
        let out = render(&q("B+1"), &outputs);
        let c1 = find(&out, json!(1));
        assert_eq!(c1["count"], json!(15));
        assert_eq!(
            data(&c1),
            vec![1., 1., 2., 2., 2., 1., 1., 1., 1., 1., 1., 1.]
        );
        assert_eq!(find(&out, json!("all"))["count"], json!(18));

        // Without a formula: one item per cohort and series, labelled by cohort name.
        let p = ok(tq(
            json!({"date_to": "2020-01-20", "breakdown": [1, "all"], "breakdown_type": "cohort"}),
        ));
        let out = render(
            &p,
            &[
                tq_rows("$pageview", 9, 20, &[1], false),
                tq_rows("$pageview", 9, 20, ALL, false),
            ],
        );
        let got: Vec<(Value, Value, Value)> = items(&out)
            .iter()
            .map(|i| {
                (
                    i["label"].clone(),
                    i["breakdown_value"].clone(),
                    i["count"].clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (json!("c1"), json!(1), json!(6)),
                (json!("all users"), json!("all"), json!(10)),
            ]
        );
    }

    #[test]
    fn t15_formula_breakdown_without_data() {
        let p = ok(tq(json!({
            "events": [{"id": "$pageview", "order": 0}, {"id": "$pageleave", "order": 1}],
            "breakdown": "$browser", "formula": "A+B",
        })));
        assert_eq!(render(&p, &[vec![], vec![]]), json!([]));
        // A value missing from one series counts as zeros.
        let out = render(
            &p,
            &[
                vec![row(9, Some("Chrome"), 2.0)],
                vec![row(10, Some("Safari"), 3.0)],
            ],
        );
        let got: Vec<(Value, Value)> = items(&out)
            .iter()
            .map(|i| (i["breakdown_value"].clone(), i["count"].clone()))
            .collect();
        assert_eq!(
            got,
            vec![(json!("Safari"), json!(3)), (json!("Chrome"), json!(2))]
        );
    }

    #[test]
    fn t33_division_and_division_by_zero() {
        let p = ok(tq(json!({
            "events": [{"id": "$pageview", "order": 0}, {"id": "$pageleave", "order": 1}],
            "date_from": "2020-01-09", "date_to": "2020-01-09", "formula": "B/A",
        })));
        let out = render(&p, &[vec![row(9, None, 3.0)], vec![row(9, None, 1.0)]]);
        assert_eq!(items(&out)[0]["data"], json!([0.3333333333333333]));
        let out = render(&p, &[vec![], vec![row(9, None, 1.0)]]);
        assert_eq!(items(&out)[0]["data"], json!([0]), "x/0 is 0");
    }

    #[test]
    fn formulas_arithmetic_and_names() {
        let e = parse_formula("(a + 2) * -b / 4 - 1", 2).unwrap();
        assert_eq!(eval(&e, &[2.0, 3.0]), (2.0 + 2.0) * -3.0 / 4.0 - 1.0);
        assert_eq!(
            eval(&parse_formula("A/(B-B)", 2).unwrap(), &[1.0, 5.0]),
            0.0
        );
        assert_eq!(eval(&parse_formula(".5*A", 1).unwrap(), &[4.0]), 2.0);
        let p = ok(tq(json!({
            "events": [{"id": "$pageview", "order": 0}, {"id": "$pageleave", "order": 1}],
            "formula_nodes": [{"formula": "A-B", "custom_name": "Net"}, {"formula": "A*2"}],
        })));
        let out = render(&p, &[vec![row(9, None, 3.0)], vec![row(9, None, 1.0)]]);
        let v = items(&out);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0]["label"], json!("Net"));
        assert_eq!(v[0]["count"], json!(2));
        assert_eq!(v[1]["label"], json!("Formula (A*2)"));
        assert_eq!(v[1]["count"], json!(6));
    }

    #[test]
    fn hour_interval_and_timezone_buckets() {
        let mut pr = project();
        pr.pt = ProjectTime::new("US/Pacific", 0).unwrap();
        pr.timezone = "US/Pacific".into();
        let q = parse_query(&tq(json!({"interval": "hour", "date_from": "2020-01-09", "date_to": "2020-01-09 02:00:00"}))).unwrap();
        let p = plan(
            &q,
            &pr,
            &Lookups {
                cohort: &cohort,
                action: &action,
            },
            now(),
            None,
        )
        .unwrap();
        assert!(
            p.runs[0]
                .sql
                .contains("date_trunc('hour', e.\"timestamp\", $5::text)"),
            "{}",
            p.runs[0].sql
        );
        assert!(p.runs[0].params.contains(&Param::Text("US/Pacific".into())));
        let b1 = Utc
            .with_ymd_and_hms(2020, 1, 9, 9, 0, 0)
            .unwrap()
            .timestamp_micros();
        let out = render(
            &p,
            &[vec![Row {
                bucket_us: b1,
                breakdown: None,
                value: 4.0,
            }]],
        );
        let it = &items(&out)[0];
        assert_eq!(data(it), vec![0., 4., 0.]);
        assert_eq!(it["days"][1], json!("2020-01-09 01:00:00"));
        assert_eq!(it["labels"][1], json!("9-Jan 01:00"));
        let r = rows(&out, &p.pt);
        assert_eq!(r[1], ("$pageview".to_string(), None, Some(b1), 4.0));
    }

    #[test]
    fn rows_flatten_items() {
        let p = ok(tq(
            json!({"breakdown": "$browser", "date_to": "2020-01-10"}),
        ));
        let out = render(
            &p,
            &[vec![
                row(9, Some("Chrome"), 2.0),
                row(10, Some("Chrome"), 1.0),
            ]],
        );
        assert_eq!(
            rows(&out, &ProjectTime::utc()),
            vec![
                ("Chrome".into(), Some("Chrome".into()), Some(day(9)), 2.0),
                ("Chrome".into(), Some("Chrome".into()), Some(day(10)), 1.0),
            ]
        );
        // Formula items carry their buckets too.
        let p = ok(tq(json!({"date_to": "2020-01-10", "formula": "A*3"})));
        let out = render(&p, &[vec![row(10, None, 1.0)]]);
        assert_eq!(
            rows(&out, &ProjectTime::utc())[1],
            ("Formula (A*3)".into(), None, Some(day(10)), 3.0)
        );
        assert!(rows(&json!({"not": "a list"}), &ProjectTime::utc()).is_empty());
    }

    #[test]
    fn programmatic_queries_do_not_panic() {
        let mut q = parse_query(&tq(json!({"breakdown": "$browser"}))).unwrap();
        if let Some(b) = q.breakdown.as_mut() {
            b.values.clear();
        }
        let lookups = Lookups {
            cohort: &cohort,
            action: &action,
        };
        let p = plan(&q, &project(), &lookups, now(), None).unwrap();
        assert_eq!(p.breakdown, BreakdownMode::None);
        assert!(p.runs[0].sql.contains("NULL::text AS breakdown"));
        q.series[0].math = Some("unique_group".into());
        let e = plan(&q, &project(), &lookups, now(), None).unwrap_err();
        assert_eq!(e.attr.as_deref(), Some("events__0__math_group_type_index"));
        q.series[0].math = Some("nonsense".into());
        let e = plan(&q, &project(), &lookups, now(), None).unwrap_err();
        assert_eq!(e.attr.as_deref(), Some("events__0__math"));
    }

    #[test]
    fn split_call_respects_quotes() {
        assert_eq!(split_call("sum(x)"), Some(("sum", "x")));
        assert_eq!(
            split_call("count(if(a = ')', 1, 0))"),
            Some(("count", "if(a = ')', 1, 0)"))
        );
        assert_eq!(split_call("sum(x) + sum(y)"), None);
        assert_eq!(split_call("sum(x"), None);
        assert_eq!(split_call("(x)"), None);
    }

    #[test]
    fn url_codec_round_trips() {
        let s = "a b/ü?&=%";
        assert_eq!(url_decode(&url_encode(s)), s);
        assert_eq!(url_decode("%zz%4"), "%zz%4");
    }

    // -----------------------------------------------------------------------------------------
    // Property: planning and rendering never panic
    // -----------------------------------------------------------------------------------------

    fn entity() -> impl Strategy<Value = Value> {
        let math = prop::sample::select(vec![
            "total",
            "dau",
            "weekly_active",
            "monthly_active",
            "unique_group",
            "unique_session",
            "first_time_for_user",
            "first_time_for_user_with_filters",
            "sum",
            "avg",
            "p99",
            "median",
            "max_count_per_actor",
            "p90_count_per_actor",
            "hogql",
            "bogus",
        ]);
        let hogql = prop::sample::select(vec![
            "sum(properties.prop)",
            "count()",
            "count(distinct person_id)",
            "avg(",
            "x",
            "max(toFloat(properties.a) / 0)",
            "uniq(event)",
        ]);
        (
            prop::option::of("[a-z$ ']{0,6}"),
            math,
            prop::option::of("[a-z$]{1,5}"),
            prop::option::of(0u8..6),
            hogql,
            any::<bool>(),
        )
            .prop_map(|(id, math, mp, g, h, props)| {
                let mut e = json!({"id": id, "math": math, "math_property": mp,
                    "math_group_type_index": g, "math_hogql": h});
                if props {
                    e["properties"] = json!([{"key": "$browser", "value": "Chrome"}]);
                }
                e
            })
    }

    fn trends_query() -> impl Strategy<Value = Value> {
        (
            prop::collection::vec(entity(), 0..4),
            prop::sample::select(vec![
                "ActionsLineGraph",
                "ActionsLineGraphCumulative",
                "BoldNumber",
                "ActionsPie",
                "ActionsTable",
                "WorldMap",
                "ActionsBar",
            ]),
            prop::sample::select(vec!["minute", "hour", "day", "week", "month", "year"]),
            prop::sample::select(vec![
                "-7d",
                "-1h",
                "2020-01-01",
                "-30d",
                "all",
                "-1mStart",
                "x",
            ]),
            prop::option::of(prop::sample::select(vec![
                json!("$browser"),
                json!([1, "all"]),
                json!([2]),
                json!("upper(properties.x)"),
            ])),
            prop::option::of(prop::sample::select(vec![
                "event", "cohort", "hogql", "person", "session",
            ])),
            (
                prop::option::of(1u32..5),
                prop::option::of(1u32..30),
                any::<bool>(),
            ),
            (
                any::<bool>(),
                prop::option::of(prop::sample::select(vec!["-1w", "-2d", "-1m", "z"])),
            ),
            prop::option::of("[A-D0-9+*/() -]{0,10}"),
            1u32..9,
        )
            .prop_map(
                |(
                    events,
                    display,
                    interval,
                    from,
                    bd,
                    bd_type,
                    (bins, limit, hide),
                    (cmp, cmp_to),
                    formula,
                    smooth,
                )| {
                    json!({
                        "insight": "TRENDS", "events": events, "display": display,
                        "interval": interval, "date_from": from, "breakdown": bd,
                        "breakdown_type": bd_type, "breakdown_histogram_bin_count": bins,
                        "breakdown_limit": limit, "breakdown_hide_other_aggregation": hide,
                        "compare": cmp, "compare_to": cmp_to, "formula": formula,
                        "smoothing_intervals": smooth,
                    })
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn plan_and_render_never_panic(
            v in trends_query(),
            vals in prop::collection::vec((0i64..40, prop::option::of("[a-c]{0,2}"), -5.0f64..50.0), 0..20),
        ) {
            let Ok(q) = parse_query(&v) else { return Ok(()) };
            let lookups = Lookups { cohort: &cohort, action: &action };
            let Ok(p) = plan(&q, &project(), &lookups, now(), Some(now() - TimeDelta::days(3))) else {
                return Ok(());
            };
            for r in &p.runs {
                check_placeholders(r);
            }
            let outputs: Vec<Vec<Row>> = p
                .runs
                .iter()
                .map(|_| {
                    vals.iter()
                        .map(|(h, bd, v)| Row {
                            bucket_us: p.range.from.timestamp_micros() + h * 3_600_000_000,
                            breakdown: bd.clone(),
                            value: *v,
                        })
                        .collect()
                })
                .collect();
            let out = render(&p, &outputs);
            prop_assert!(out.is_array());
            let _ = rows(&out, &ProjectTime::utc());
        }

        #[test]
        fn formulas_never_panic(s in "[A-Ca-c0-9.+*/() -]{0,30}") {
            if let Ok(e) = parse_formula(&s, 3) {
                prop_assert!(eval(&e, &[1.0, 0.0, -2.0]).is_finite());
            }
        }
    }
}
