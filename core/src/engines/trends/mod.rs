//! Trends over the event store: planning (query → SQL statements) and rendering (their rows →
//! PostHog's `result` list). Pure Rust; the extension runs the SQL through SPI.
//!
//! # Runs
//! One statement ([`TrendsRun`]) per (cohort of a cohort breakdown) × series × period (current,
//! then previous when `compare`), in the order PostHog emits its result items. Every statement
//! returns rows `(bucket timestamptz, breakdown text, value float8)`, one per (bucket, breakdown
//! value) with data; `breakdown` is NULL without a breakdown (and for missing values), and the
//! value is never NULL. Total-value displays (docs/trends.md#displays) run one aggregation over the
//! whole range per series: their `bucket` is the range start and is ignored. Every user value is a
//! `$n` parameter of the same [`Param`] kinds as funnels.
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
//! # Math (docs/trends.md#maths)
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
//! * `hogql`: one aggregate call around the safe HogQL subset ([`crate::compile::hogql`]): `count()`,
//!   `count(*)`, `count(distinct x)`, `uniq(x)`, `uniqExact(x)`, `sum/avg/min/max/median(x)`.
//!   Anything else is 22023 on `events__i__math_hogql`.
//!
//! # Rendering (docs/trends.md, result items to formulas)
//! Zero-filled buckets; breakdown values ranked by their total (desc, ties by value asc), the top
//! `breakdown_limit` (25, WorldMap 250) kept and the rest summed into
//! `$$_posthog_breakdown_other_$$` (unless `breakdown_hide_other_aggregation`); missing or empty
//! values are `$$_posthog_breakdown_null_$$` (ranked like any value, shown after the regular
//! ones, before Other); all-zero breakdown rows are dropped. Smoothing (floor of the trailing
//! mean) comes before the cumulative running sum. Formulas are evaluated per bucket on the
//! rendered series (division by zero → 0), aligned by breakdown value.

pub mod actors;
pub mod export;

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value, json};

use crate::compile::context::{self, with_filter_context};
use crate::compile::dates::{self, DateRange, Interval, ProjectTime};
use crate::compile::properties::{self, FilterContext, NUM_RE};
use crate::compile::sql::{Param, SqlBuilder};
use crate::engines::funnels::{Lookups, Project, url_encode};
use crate::error::{QueryError, Result};
use crate::model::{BreakdownProperty, CohortRef, Entity, EntityKind, InsightKind, InsightQuery};
use crate::segments::{self, SegMath, SegScan, is_utc};

/// The breakdown value of events without one (docs/trends.md#breakdowns).
pub const BREAKDOWN_NULL: &str = "$$_posthog_breakdown_null_$$";
/// The breakdown value of the merged values beyond the limit (docs/trends.md#breakdowns).
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
    /// The same run over the columnar segments, when they can answer it (crate::segments).
    pub seg: std::result::Result<SegScan, String>,
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
            crate::compile::hogql::compile_text(x, attr, b, cx)?
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
            let x = crate::compile::hogql::compile_number(arg, attr, b, cx)?;
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
// Formulas (docs/trends.md#formulas)
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

/// Evaluate with missing series as 0 and division by zero as 0 (docs/trends.md#formulas); never NaN
/// or infinite.
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

/// A run's heap statement, its parameters, and its columnar plan (or why there is none).
type PlannedRun = (String, Vec<Param>, std::result::Result<SegScan, String>);

/// One run's statement: the filters and the range ([`run_filters`]), the breakdown
/// ([`breakdown_sql`]), then the math's aggregation ([`Run::math_sql`]).
fn build_run(
    s: &Shared,
    index: usize,
    range: &DateRange,
    cohort: Option<CohortRef>,
) -> Result<PlannedRun> {
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
    let seg = if with.is_empty() {
        run.seg_scan(&math, &mut b)
    } else {
        Err("a histogram breakdown".to_string())
    };
    // The active-user maths read from their own window start: the range start may go unread.
    let seg = seg.map(|mut scan| {
        scan.params = b.params.clone();
        scan
    });
    let (sql, params) = b.finish(&sql);
    Ok((sql, params, seg))
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

    /// The columnar plan of this run (crate::segments), when the segments can answer it:
    /// a count or distinct persons, filters and breakdown over the event name and
    /// materialised columns only, buckets the segment reader computes exactly as
    /// [`dates::sql_bucket_expr`] (calendar buckets in any timezone; clock buckets in UTC).
    fn seg_scan(&self, math: &Math, b: &mut SqlBuilder) -> std::result::Result<SegScan, String> {
        let s = self.s;
        let seg_math = match math {
            _ if s.cumulative && !s.total_value && matches!(math, Math::Dau) => {
                return Err("a cumulative distinct count".into());
            }
            Math::Total => SegMath::Count,
            Math::Dau if self.actor == "e.person_id" => SegMath::DistinctPersons,
            _ => return Err("a math other than total or persons (dau)".into()),
        };
        let interval = match s.interval {
            _ if s.total_value => None,
            Interval::Day | Interval::Week | Interval::Month => Some(s.interval),
            Interval::Hour | Interval::Minute if is_utc(s.project.pt.tz.name()) => Some(s.interval),
            _ => return Err("hour or minute buckets outside UTC".into()),
        };
        if self.src != "insights.events e" {
            return Err("a breakdown that joins another table".into());
        }
        let filter = if self.filters.is_empty() {
            "TRUE".to_string()
        } else {
            self.filters.join(" AND ")
        };
        let columns = segments::referenced_columns(&[&filter, &self.bd], s.cx.materialized).ok_or_else(|| {
            "a filter or breakdown on something other than the event name and materialised properties"
                .to_string()
        })?;
        let w = format!("{} AND {{TAIL}}", self.w);
        let (bk, bd, src) = (self.bucket_expr(b), &self.bd, &self.src);
        let tail_sql = match seg_math {
            SegMath::Count => {
                let group_by = if s.total_value { "2" } else { "1, 2" };
                format!(
                    "SELECT {bk} AS bucket, {bd} AS breakdown, count(*)::float8 AS v FROM {src} \
                     WHERE {w} GROUP BY {group_by}"
                )
            }
            SegMath::DistinctPersons => format!(
                "SELECT DISTINCT {bk} AS bucket, {bd} AS breakdown, e.person_id AS actor FROM {src} WHERE {w}"
            ),
        };
        Ok(SegScan {
            filter,
            breakdown: self.bd.clone(),
            columns,
            math: seg_math,
            from_us: self.range.from.timestamp_micros(),
            to_us: self.range.to.timestamp_micros(),
            interval,
            tail_sql,
            params: Vec::new(),
        })
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
                // The N days ending at date_to (docs/trends.md#displays).
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

/// `breakdown_normalize_url`: drop the query and fragment, then trailing slashes (`/` stays).
pub(crate) fn normalize_url(x: &str) -> String {
    format!(
        "(SELECT CASE WHEN pgi_u.u = '' AND pgi_u.o <> '' THEN '/' ELSE pgi_u.u END FROM \
         (SELECT rtrim(regexp_replace({x}, '[?#].*$', ''), '/') AS u, {x} AS o) pgi_u)"
    )
}

/// The bin label `[lo,hi]` of `pgi_hx.x` among `k` equal-width bins over `[pgi_mm.lo,
/// pgi_mm.hi]`; the last bin ends at max + 0.01 (docs/trends.md#breakdowns; PostHog's trends test
/// case T19); edges floored to 2 decimals.
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
    let interval = context::query_interval(q)?;
    let pt = project.pt;
    let range = context::query_range(q, interval, &pt, now, earliest)?;
    let compare_range = context::compare_range(q, &range, now, &pt)?;
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
                    let (sql, params, seg) =
                        build_run(&shared, index, r, cohort.as_ref().map(|c| c.0))?;
                    runs.push(TrendsRun {
                        series_index: index,
                        compare,
                        total_value: shared.total_value,
                        sql,
                        params,
                        seg,
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
mod tests;
