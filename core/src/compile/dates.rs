//! PostHog's date semantics: the relative/absolute date grammar, range snapping, interval
//! buckets and their labels, compare periods, funnel windows and retention ranges.
//!
//! Everything is computed relative to an injected `now` (never the wall clock), in the project
//! timezone, with the project's week start. Local times that do not exist (spring-forward gap)
//! or exist twice (fall-back fold) are resolved exactly the way Postgres resolves them, so the
//! buckets computed here always match the bucket keys the SQL produces:
//! * a gap uses the offset in effect *before* the transition (02:30 → 03:30 PDT);
//! * a fold uses the offset in effect *after* the transition (the later instant).
//!
//! Resolved dates are limited to the years 1..=9999: far inside both chrono's and Postgres'
//! ranges, so later arithmetic on a range can neither overflow nor fail in the database.

use chrono::{
    DateTime, Datelike, FixedOffset, MappedLocalTime, Months, NaiveDate, NaiveDateTime, NaiveTime,
    Offset, TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

use crate::compile::sql::SqlBuilder;
use crate::error::{QueryError, Result};

/// The most buckets one range may produce: bounds memory and keeps zero-filling cheap
/// (a year of hours is 8,760; a month of minutes 44,640).
pub const MAX_BUCKETS: usize = 100_000;

/// `date_from=all` with a team that has no events starts here (PostHog's older fallback; the
/// newest behaviour is unclear; see docs/dates.md#date-grammar).
const ALL_FALLBACK_YEAR: i32 = 2015;

/// A `QueryError::invalid` with a `&str` attr.
fn invalid(attr: &str, detail: impl Into<String>) -> QueryError {
    QueryError::invalid(attr.to_string(), detail)
}

// ---------------------------------------------------------------------------------------------
// Project time
// ---------------------------------------------------------------------------------------------

/// The project's timezone and first day of the week (0 = Sunday, 1 = Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectTime {
    pub tz: Tz,
    pub week_start: u8,
}

impl ProjectTime {
    /// From the team settings: an IANA name such as `"US/Pacific"` and `week_start_day`.
    pub fn new(tz_name: &str, week_start: u8) -> Result<ProjectTime> {
        let tz = tz_name.trim().parse::<Tz>().map_err(|_| {
            invalid(
                "timezone",
                format!("Unknown timezone: '{}'", shown(tz_name)),
            )
        })?;
        if week_start > 1 {
            return Err(invalid(
                "week_start_day",
                format!("week_start_day must be 0 (Sunday) or 1 (Monday), got {week_start}"),
            ));
        }
        Ok(ProjectTime { tz, week_start })
    }

    /// UTC with weeks starting on Sunday: PostHog's team defaults.
    pub fn utc() -> ProjectTime {
        ProjectTime {
            tz: Tz::UTC,
            week_start: 0,
        }
    }
}

impl Default for ProjectTime {
    fn default() -> Self {
        ProjectTime::utc()
    }
}

/// The UTC offset of the project timezone at an instant.
fn offset_at(t: DateTime<Utc>, pt: &ProjectTime) -> FixedOffset {
    pt.tz.offset_from_utc_datetime(&t.naive_utc()).fix()
}

/// The wall-clock time of an instant in the project timezone. Checked, unlike chrono's
/// `naive_local()`, which panics when the offset pushes an extreme instant out of range.
fn to_local(t: DateTime<Utc>, pt: &ProjectTime) -> Option<NaiveDateTime> {
    let offset = TimeDelta::seconds(offset_at(t, pt).local_minus_utc().into());
    t.naive_utc().checked_add_signed(offset)
}

/// The instant of a project-local wall-clock time, with Postgres' gap and fold rules.
fn local_to_utc(naive: NaiveDateTime, pt: &ProjectTime) -> Option<DateTime<Utc>> {
    match pt.tz.from_local_datetime(&naive) {
        MappedLocalTime::Single(t) => Some(t.to_utc()),
        // Fold: Postgres prefers the offset after the transition, which is the later instant.
        MappedLocalTime::Ambiguous(_, later) => Some(later.to_utc()),
        MappedLocalTime::None => {
            // Gap: Postgres applies the offset in effect before the transition. Transitions are
            // months apart, so one day earlier is safely before it.
            let before = naive.checked_sub_signed(TimeDelta::days(1))?;
            let offset = pt.tz.offset_from_utc_datetime(&before).fix();
            let secs = TimeDelta::seconds(offset.local_minus_utc().into());
            Some(naive.checked_sub_signed(secs)?.and_utc())
        }
    }
}

/// Local midnight at the start of `date`.
fn local_midnight(date: NaiveDate, pt: &ProjectTime) -> Option<DateTime<Utc>> {
    local_to_utc(date.and_time(NaiveTime::MIN), pt)
}

/// 23:59:59.999999 local on `date`: PostHog's inclusive end of a day.
fn local_day_end(date: NaiveDate, pt: &ProjectTime) -> Option<DateTime<Utc>> {
    local_to_utc(date.and_hms_micro_opt(23, 59, 59, 999_999)?, pt)
}

/// Whether an instant lies in the supported years 1..=9999.
fn in_supported_range(t: DateTime<Utc>) -> bool {
    (1..=9999).contains(&t.year())
}

/// At most 64 characters of a user value, for error messages.
fn shown(s: &str) -> String {
    s.chars().take(64).collect()
}

// ---------------------------------------------------------------------------------------------
// Intervals and calendar units
// ---------------------------------------------------------------------------------------------

/// A bucket interval of trends, funnel trends, retention periods and so on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Interval {
    Minute,
    Hour,
    #[default]
    Day,
    Week,
    Month,
}

impl Interval {
    /// Case-insensitive, singular or plural (`day`, `Day`, `days`); unknown → invalid `interval`.
    pub fn parse(s: &str) -> Result<Interval> {
        Self::parse_name(s).ok_or_else(|| {
            invalid(
                "interval",
                format!(
                    "Invalid interval '{}': expected one of minute, hour, day, week, month",
                    shown(s)
                ),
            )
        })
    }

    fn parse_name(s: &str) -> Option<Interval> {
        let lower = s.trim().to_ascii_lowercase();
        let singular = lower.strip_suffix('s').unwrap_or(&lower);
        match singular {
            "minute" => Some(Interval::Minute),
            "hour" => Some(Interval::Hour),
            "day" => Some(Interval::Day),
            "week" => Some(Interval::Week),
            "month" => Some(Interval::Month),
            _ => None,
        }
    }

    /// PostHog's lower-case name (`"day"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Minute => "minute",
            Interval::Hour => "hour",
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
        }
    }

    /// The capitalised name retention uses in labels (`"Day 0"`).
    pub fn title(self) -> &'static str {
        match self {
            Interval::Minute => "Minute",
            Interval::Hour => "Hour",
            Interval::Day => "Day",
            Interval::Week => "Week",
            Interval::Month => "Month",
        }
    }

    fn unit(self) -> Unit {
        match self {
            Interval::Minute => Unit::Minute,
            Interval::Hour => Unit::Hour,
            Interval::Day => Unit::Day,
            Interval::Week => Unit::Week,
            Interval::Month => Unit::Month,
        }
    }
}

/// The unit of a relative date (`-3d` → `Day`), also used for snapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Unit {
    /// A unit letter of the relative grammar. `M` is minutes, `m` months; `H D W Q Y` are
    /// accepted upper-case too.
    fn from_letter(c: char) -> Option<Unit> {
        match c {
            's' => Some(Unit::Second),
            'M' => Some(Unit::Minute),
            'h' | 'H' => Some(Unit::Hour),
            'd' | 'D' => Some(Unit::Day),
            'w' | 'W' => Some(Unit::Week),
            'm' => Some(Unit::Month),
            'q' | 'Q' => Some(Unit::Quarter),
            'y' | 'Y' => Some(Unit::Year),
            _ => None,
        }
    }

    /// The fixed length of a clock unit; calendar units (day and up) have none, since a local
    /// day can be 23 or 25 hours.
    fn clock_length(self) -> Option<TimeDelta> {
        match self {
            Unit::Second => Some(TimeDelta::seconds(1)),
            Unit::Minute => Some(TimeDelta::minutes(1)),
            Unit::Hour => Some(TimeDelta::hours(1)),
            _ => None,
        }
    }
}

/// Move `t` by `n` units (negative = into the past). Clock units move the instant; calendar
/// units move the local wall-clock time, clamping the day of month (Jan 31 − 1 month = Dec 31).
fn shift(t: DateTime<Utc>, unit: Unit, n: i64, pt: &ProjectTime) -> Option<DateTime<Utc>> {
    let local = to_local(t, pt)?;
    let shifted = match unit {
        Unit::Second => return t.checked_add_signed(TimeDelta::try_seconds(n)?),
        Unit::Minute => return t.checked_add_signed(TimeDelta::try_minutes(n)?),
        Unit::Hour => return t.checked_add_signed(TimeDelta::try_hours(n)?),
        Unit::Day => local.checked_add_signed(TimeDelta::try_days(n)?)?,
        Unit::Week => local.checked_add_signed(TimeDelta::try_weeks(n)?)?,
        Unit::Month => add_months(local, n)?,
        Unit::Quarter => add_months(local, n.checked_mul(3)?)?,
        Unit::Year => add_months(local, n.checked_mul(12)?)?,
    };
    local_to_utc(shifted, pt)
}

/// Signed month arithmetic with day-of-month clamping.
fn add_months(local: NaiveDateTime, n: i64) -> Option<NaiveDateTime> {
    let months = Months::new(u32::try_from(n.unsigned_abs()).ok()?);
    if n >= 0 {
        local.checked_add_months(months)
    } else {
        local.checked_sub_months(months)
    }
}

/// Days from the start of the week to `date` (0..=6) for the project's week start.
fn days_into_week(date: NaiveDate, week_start: u8) -> i64 {
    let from_sunday = i64::from(date.weekday().num_days_from_sunday());
    (from_sunday + 7 - i64::from(week_start)) % 7
}

/// The first day of the calendar unit (day and up) containing `date`.
fn unit_first_day(date: NaiveDate, unit: Unit, week_start: u8) -> Option<NaiveDate> {
    match unit {
        Unit::Week => date.checked_sub_signed(TimeDelta::days(days_into_week(date, week_start))),
        Unit::Month => date.with_day(1),
        Unit::Quarter => NaiveDate::from_ymd_opt(date.year(), (date.month() - 1) / 3 * 3 + 1, 1),
        Unit::Year => NaiveDate::from_ymd_opt(date.year(), 1, 1),
        Unit::Second | Unit::Minute | Unit::Hour | Unit::Day => Some(date),
    }
}

/// The last day of the calendar unit (day and up) containing `date`.
fn unit_last_day(date: NaiveDate, unit: Unit, week_start: u8) -> Option<NaiveDate> {
    let first = unit_first_day(date, unit, week_start)?;
    let next = match unit {
        Unit::Week => first.checked_add_signed(TimeDelta::days(7))?,
        Unit::Month => first.checked_add_months(Months::new(1))?,
        Unit::Quarter => first.checked_add_months(Months::new(3))?,
        Unit::Year => first.checked_add_months(Months::new(12))?,
        Unit::Second | Unit::Minute | Unit::Hour | Unit::Day => return Some(date),
    };
    next.pred_opt()
}

/// Truncate to the start of the unit. Clock units subtract the local minutes/seconds from the
/// instant, so the two 01:xx hours of a fall-back night stay distinct (as in Postgres'
/// `date_trunc('hour', ts, tz)`); calendar units go through local midnight.
fn unit_start(t: DateTime<Utc>, unit: Unit, pt: &ProjectTime) -> Option<DateTime<Utc>> {
    let local = to_local(t, pt)?;
    let seconds = match unit {
        Unit::Second => 0,
        Unit::Minute => local.second(),
        Unit::Hour => local.minute() * 60 + local.second(),
        _ => return local_midnight(unit_first_day(local.date(), unit, pt.week_start)?, pt),
    };
    let back =
        TimeDelta::seconds(seconds.into()) + TimeDelta::nanoseconds(local.nanosecond().into());
    t.checked_sub_signed(back)
}

/// The inclusive end of the unit: 23:59:59.999999 local of its last day for calendar units,
/// one microsecond before the next start for clock units.
fn unit_end(t: DateTime<Utc>, unit: Unit, pt: &ProjectTime) -> Option<DateTime<Utc>> {
    match unit.clock_length() {
        Some(len) => unit_start(t, unit, pt)?
            .checked_add_signed(len)?
            .checked_sub_signed(TimeDelta::microseconds(1)),
        None => local_day_end(
            unit_last_day(to_local(t, pt)?.date(), unit, pt.week_start)?,
            pt,
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing date_from / date_to
// ---------------------------------------------------------------------------------------------

/// `Start` / `End` suffix of a relative date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snap {
    Start,
    End,
}

/// A parsed `date_from` / `date_to` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParsedDate {
    /// `all`: the caller substitutes the team's earliest event.
    All,
    /// An absolute date or datetime; `has_time` is false for a bare `YYYY-MM-DD`.
    Absolute { at: DateTime<Utc>, has_time: bool },
    /// A relative date such as `-7d` or `-1mStart`, already applied to `now`.
    Relative {
        at: DateTime<Utc>,
        unit: Unit,
        snap: Option<Snap>,
    },
}

impl ParsedDate {
    /// The resolved instant; `None` for `all`.
    pub fn at(&self) -> Option<DateTime<Utc>> {
        match *self {
            ParsedDate::All => None,
            ParsedDate::Absolute { at, .. } | ParsedDate::Relative { at, .. } => Some(at),
        }
    }
}

/// Parse PostHog's date grammar (docs/dates.md#date-grammar) relative to `now` in the project
/// timezone.
///
/// * Absolute: `YYYY-M-D` (padding optional), optionally followed by `T` or a space and
///   `H:MM[:SS[.ffffff]]`, optionally followed by `Z` or `±HH[:MM]` (an explicit offset wins
///   over the project timezone). A bare date is local midnight.
/// * Relative: `[-][N]<unit>[Start|End]`, unit one of `s M h d w m q y` (`H D W Q Y` too; `M`
///   is minutes, `m` months), N missing = 0. The offset always goes into the past, so the
///   leading `-` is optional: `7d` means the same as `-7d`. `Start`/`End` snap after the offset.
/// * `all` → [`ParsedDate::All`].
///
/// Anything else, and dates outside the years 1..=9999, is a 22007 error on `attr`.
pub fn parse_relative_or_absolute(
    input: &str,
    now: DateTime<Utc>,
    pt: &ProjectTime,
    attr: &str,
) -> Result<ParsedDate> {
    let s = input.trim();
    let bad = || {
        QueryError::bad_date(
            attr,
            format!(
                "Invalid date '{}' for {attr}: expected YYYY-MM-DD, an ISO 8601 datetime, a \
                 relative date such as -7d, -1mStart or dStart, or all",
                shown(input)
            ),
        )
    };
    if s.eq_ignore_ascii_case("all") {
        return Ok(ParsedDate::All);
    }
    let parsed = if looks_absolute(s) {
        let abs = parse_absolute(s).ok_or_else(bad)?;
        let at = abs.to_utc(pt).ok_or_else(bad)?;
        ParsedDate::Absolute {
            at,
            has_time: abs.has_time,
        }
    } else {
        let spec = parse_relative(s).ok_or_else(bad)?;
        let at = spec.apply(now, pt).ok_or_else(bad)?;
        ParsedDate::Relative {
            at,
            unit: spec.unit,
            snap: spec.snap,
        }
    };
    match parsed.at() {
        Some(at) if !in_supported_range(at) => Err(QueryError::bad_date(
            attr,
            format!(
                "Date '{}' for {attr} is outside the years 1 to 9999",
                shown(input)
            ),
        )),
        _ => Ok(parsed),
    }
}

/// `YYYY-` starts every absolute date; relative dates never have a `-` after digits.
fn looks_absolute(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

/// An absolute date as written: local wall-clock time plus an explicit offset if any.
struct AbsoluteDate {
    local: NaiveDateTime,
    offset: Option<FixedOffset>,
    has_time: bool,
}

impl AbsoluteDate {
    fn to_utc(&self, pt: &ProjectTime) -> Option<DateTime<Utc>> {
        match self.offset {
            Some(offset) => Some(offset.from_local_datetime(&self.local).single()?.to_utc()),
            None => local_to_utc(self.local, pt),
        }
    }
}

/// A byte cursor: the absolute grammar is small enough that a hand-written scanner is clearer
/// than a regex dependency.
struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    /// Between `min` and `max` ASCII digits: their value and how many were read.
    fn digits(&mut self, min: usize, max: usize) -> Option<(u32, usize)> {
        let rest = self.bytes.get(self.pos..)?;
        let count = rest
            .iter()
            .take(max)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if count < min {
            return None;
        }
        // At most 9 digits are ever requested, which fits in u32.
        let value = rest[..count]
            .iter()
            .fold(0u32, |v, b| v * 10 + u32::from(b - b'0'));
        self.pos += count;
        Some((value, count))
    }

    fn number(&mut self, min: usize, max: usize) -> Option<u32> {
        self.digits(min, max).map(|(v, _)| v)
    }

    /// Consume one byte if it is one of `options`.
    fn eat(&mut self, options: &[u8]) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        options.contains(&b).then(|| {
            self.pos += 1;
            b
        })
    }

    fn done(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

fn parse_absolute(s: &str) -> Option<AbsoluteDate> {
    let mut sc = Scanner {
        bytes: s.as_bytes(),
        pos: 0,
    };
    let year = sc.number(4, 4)?;
    sc.eat(b"-")?;
    let month = sc.number(1, 2)?;
    sc.eat(b"-")?;
    let day = sc.number(1, 2)?;
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    if sc.done() {
        return Some(AbsoluteDate {
            local: date.and_time(NaiveTime::MIN),
            offset: None,
            has_time: false,
        });
    }
    sc.eat(b"Tt ")?;
    let time = parse_time(&mut sc)?;
    let offset = if sc.done() {
        None
    } else {
        Some(parse_offset(&mut sc)?)
    };
    sc.done().then_some(AbsoluteDate {
        local: date.and_time(time),
        offset,
        has_time: true,
    })
}

/// `H:MM[:SS[.fraction]]`; the fraction is truncated to microseconds like Postgres does.
fn parse_time(sc: &mut Scanner<'_>) -> Option<NaiveTime> {
    let hour = sc.number(1, 2)?;
    sc.eat(b":")?;
    let minute = sc.number(2, 2)?;
    let (mut second, mut micro) = (0, 0);
    if sc.eat(b":").is_some() {
        second = sc.number(2, 2)?;
        if sc.eat(b".,").is_some() {
            let (value, count) = sc.digits(1, 9)?;
            let nanos = value * 10u32.pow(u32::try_from(9 - count).ok()?);
            micro = nanos / 1000;
        }
    }
    NaiveTime::from_hms_micro_opt(hour, minute, second, micro)
}

/// `Z` or `±HH[[:]MM]`.
fn parse_offset(sc: &mut Scanner<'_>) -> Option<FixedOffset> {
    if sc.eat(b"Zz").is_some() {
        return FixedOffset::east_opt(0);
    }
    let sign = if sc.eat(b"+-")? == b'-' { -1 } else { 1 };
    let hours = sc.number(2, 2)?;
    let colon = sc.eat(b":").is_some();
    let minutes = if colon {
        sc.number(2, 2)?
    } else {
        sc.number(0, 2)?
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    let seconds = i32::try_from(hours * 3600 + minutes * 60).ok()?;
    FixedOffset::east_opt(sign * seconds)
}

/// `[-][N]<unit>[Start|End]`, parsed but not yet applied.
#[derive(Debug, Clone, Copy)]
struct RelativeSpec {
    n: i64,
    unit: Unit,
    snap: Option<Snap>,
}

impl RelativeSpec {
    /// Go `n` units back from `now`, then snap.
    fn apply(&self, now: DateTime<Utc>, pt: &ProjectTime) -> Option<DateTime<Utc>> {
        let shifted = shift(now, self.unit, self.n.checked_neg()?, pt)?;
        match self.snap {
            None => Some(shifted),
            Some(Snap::Start) => unit_start(shifted, self.unit, pt),
            Some(Snap::End) => unit_end(shifted, self.unit, pt),
        }
    }
}

fn parse_relative(s: &str) -> Option<RelativeSpec> {
    let rest = s.strip_prefix('-').unwrap_or(s);
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    // The digits are ASCII, so `digits` is a char boundary.
    let (number, rest) = rest.split_at(digits);
    let n = if number.is_empty() {
        0
    } else {
        number.parse::<i64>().ok()?
    };
    let mut chars = rest.chars();
    let unit = Unit::from_letter(chars.next()?)?;
    let snap = match chars.as_str() {
        "" => None,
        "Start" => Some(Snap::Start),
        "End" => Some(Snap::End),
        _ => return None,
    };
    Some(RelativeSpec { n, unit, snap })
}

// ---------------------------------------------------------------------------------------------
// Date ranges (docs/dates.md#range-resolution)
// ---------------------------------------------------------------------------------------------

/// A resolved, snapped query range. Both bounds are inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub interval: Interval,
    /// `explicitDate`: the bounds were used exactly as given, without snapping.
    pub explicit_date: bool,
}

impl DateRange {
    /// `from ≤ t ≤ to`, PostHog's inclusive test.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.from <= t && t <= self.to
    }
}

/// Resolve `date_from` / `date_to` exactly as PostHog's QueryDateRange does
/// (docs/dates.md#range-resolution).
///
/// * Missing (or blank) date_from: today 00:00 local − 7 days; missing date_to: `now`.
/// * A relative date_from is truncated to the start of its day (of its hour for `-Nh`), except
///   with `interval = minute` or `explicit_date`. `all` becomes `earliest_event` (or
///   2015-01-01 local when the team has no events) and is truncated like a relative day.
/// * date_to becomes 23:59:59.999999 of its local day for day/week/month. For hour (and, by
///   analogy, minute) a relative or missing date_to becomes the end of its hour (minute) while
///   an absolute one is kept exactly. `explicit_date` keeps both bounds exactly.
/// * `from > to` is invalid (`date_from`), and so is a range of more than [`MAX_BUCKETS`].
pub fn resolve_range(
    date_from: Option<&str>,
    date_to: Option<&str>,
    interval: Interval,
    explicit_date: bool,
    now: DateTime<Utc>,
    pt: &ProjectTime,
    earliest_event: Option<DateTime<Utc>>,
) -> Result<DateRange> {
    let from = resolve_from(date_from, interval, explicit_date, now, pt, earliest_event)?;
    let to = resolve_to(date_to, interval, explicit_date, now, pt)?;
    if from > to {
        return Err(invalid(
            "date_from",
            format!("date_from ({from}) must not be after date_to ({to})"),
        ));
    }
    check_bucket_count(from, to, interval)?;
    Ok(DateRange {
        from,
        to,
        interval,
        explicit_date,
    })
}

/// `None` for a missing or blank value: PostHog treats an empty date as not given.
fn non_blank(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.trim().is_empty())
}

fn out_of_range(attr: &str) -> QueryError {
    QueryError::bad_date(attr, format!("{attr} is outside the supported date range"))
}

fn resolve_from(
    date_from: Option<&str>,
    interval: Interval,
    explicit_date: bool,
    now: DateTime<Utc>,
    pt: &ProjectTime,
    earliest_event: Option<DateTime<Utc>>,
) -> Result<DateTime<Utc>> {
    let Some(s) = non_blank(date_from) else {
        let today = to_local(now, pt).map(|local| local.date());
        let week_ago = today.and_then(|d| d.checked_sub_signed(TimeDelta::days(7)));
        return week_ago
            .and_then(|d| local_midnight(d, pt))
            .ok_or_else(|| out_of_range("date_from"));
    };
    let (at, truncate_to) = match parse_relative_or_absolute(s, now, pt, "date_from")? {
        ParsedDate::All => (all_start(earliest_event, pt)?, Some(Unit::Day)),
        ParsedDate::Absolute { at, .. } => (at, None),
        ParsedDate::Relative {
            at,
            unit: Unit::Hour,
            ..
        } => (at, Some(Unit::Hour)),
        ParsedDate::Relative { at, .. } => (at, Some(Unit::Day)),
    };
    match truncate_to {
        Some(unit) if !explicit_date && interval != Interval::Minute => {
            unit_start(at, unit, pt).ok_or_else(|| out_of_range("date_from"))
        }
        _ => Ok(at),
    }
}

/// Where `date_from=all` starts.
fn all_start(earliest_event: Option<DateTime<Utc>>, pt: &ProjectTime) -> Result<DateTime<Utc>> {
    match earliest_event {
        Some(t) => Ok(t),
        None => NaiveDate::from_ymd_opt(ALL_FALLBACK_YEAR, 1, 1)
            .and_then(|d| local_midnight(d, pt))
            .ok_or_else(|| out_of_range("date_from")),
    }
}

fn resolve_to(
    date_to: Option<&str>,
    interval: Interval,
    explicit_date: bool,
    now: DateTime<Utc>,
    pt: &ProjectTime,
) -> Result<DateTime<Utc>> {
    let (at, relative) = match non_blank(date_to) {
        None => (now, true),
        Some(s) => match parse_relative_or_absolute(s, now, pt, "date_to")? {
            ParsedDate::All => {
                return Err(QueryError::bad_date(
                    "date_to",
                    "'all' is only allowed in date_from",
                ));
            }
            ParsedDate::Absolute { at, .. } => (at, false),
            ParsedDate::Relative { at, .. } => (at, true),
        },
    };
    let snap_to = match interval {
        _ if explicit_date => None,
        Interval::Day | Interval::Week | Interval::Month => Some(Unit::Day),
        Interval::Hour if relative => Some(Unit::Hour),
        Interval::Minute if relative => Some(Unit::Minute),
        Interval::Hour | Interval::Minute => None,
    };
    match snap_to {
        Some(unit) => unit_end(at, unit, pt).ok_or_else(|| out_of_range("date_to")),
        None => Ok(at),
    }
}

/// Reject ranges that would produce more than [`MAX_BUCKETS`] buckets, estimated from the
/// shortest possible bucket (a DST day is 23 h).
fn check_bucket_count(from: DateTime<Utc>, to: DateTime<Utc>, interval: Interval) -> Result<()> {
    let shortest_seconds: i64 = match interval {
        Interval::Minute => 60,
        Interval::Hour => 1800,
        Interval::Day => 23 * 3600,
        Interval::Week => 7 * 86400 - 3600,
        Interval::Month => 28 * 86400 - 3600,
    };
    let estimate = (to - from).num_seconds() / shortest_seconds + 2;
    if estimate > MAX_BUCKETS as i64 {
        return Err(invalid(
            "interval",
            format!(
                "The range from {from} to {to} has too many {} buckets (more than {MAX_BUCKETS}); \
                 use a larger interval or a shorter range",
                interval.as_str()
            ),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Buckets (docs/dates.md#intervals-and-buckets)
// ---------------------------------------------------------------------------------------------

/// The start of the bucket containing `ts`, truncated in project-local time (DST-correct: a
/// local day may last 23 or 25 hours; weeks start on the project's week start). Matches
/// [`sql_bucket_expr`]. Only at the very edge of chrono's range can truncation fail; `ts` is
/// then returned unchanged rather than panicking.
pub fn bucket_start(ts: DateTime<Utc>, interval: Interval, pt: &ProjectTime) -> DateTime<Utc> {
    unit_start(ts, interval.unit(), pt).unwrap_or(ts)
}

/// The bucket `n` buckets after (negative: before) the bucket starting at `start`.
pub fn offset_bucket(
    start: DateTime<Utc>,
    interval: Interval,
    n: i64,
    pt: &ProjectTime,
) -> Option<DateTime<Utc>> {
    let unit = interval.unit();
    if let Some(len) = unit.clock_length() {
        let moved = start.checked_add_signed(len.checked_mul(i32::try_from(n).ok()?)?)?;
        return unit_start(moved, unit, pt);
    }
    // Calendar buckets move by local dates, then return to local midnight.
    let date = to_local(start, pt)?.date();
    let moved = match interval {
        Interval::Week => date.checked_add_signed(TimeDelta::try_weeks(n)?)?,
        Interval::Month => add_months(date.and_time(NaiveTime::MIN), n)?.date(),
        _ => date.checked_add_signed(TimeDelta::try_days(n)?)?,
    };
    local_midnight(unit_first_day(moved, unit, pt.week_start)?, pt)
}

/// The start of the bucket after the one starting at `start`. Returns `start` itself only at
/// the edge of chrono's range (callers stop when there is no progress).
pub fn next_bucket(start: DateTime<Utc>, interval: Interval, pt: &ProjectTime) -> DateTime<Utc> {
    offset_bucket(start, interval, 1, pt)
        .filter(|next| *next > start)
        .unwrap_or(start)
}

/// Every bucket start from the bucket containing `range.from` to the one containing
/// `range.to`: the zero-fill source. At most [`MAX_BUCKETS`].
pub fn buckets(range: &DateRange, pt: &ProjectTime) -> Vec<DateTime<Utc>> {
    buckets_between(range.from, range.to, range.interval, pt)
}

fn buckets_between(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    interval: Interval,
    pt: &ProjectTime,
) -> Vec<DateTime<Utc>> {
    let last = bucket_start(to, interval, pt);
    let mut out = Vec::new();
    let mut b = bucket_start(from, interval, pt);
    while b <= last && out.len() < MAX_BUCKETS {
        out.push(b);
        let next = next_bucket(b, interval, pt);
        if next <= b {
            break;
        }
        b = next;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Labels
// ---------------------------------------------------------------------------------------------

/// The `days` entry of a bucket: `"2020-01-09"` for day/week/month, `"2020-01-09 13:00:00"`
/// for hour/minute, in local time.
pub fn day_string(bucket: DateTime<Utc>, interval: Interval, pt: &ProjectTime) -> String {
    let format = match interval {
        Interval::Minute | Interval::Hour => "%Y-%m-%d %H:%M:%S",
        Interval::Day | Interval::Week | Interval::Month => "%Y-%m-%d",
    };
    local_or_utc(bucket, pt).format(format).to_string()
}

/// The `labels` entry of a bucket: `"9-Jan-2020"` for day/week/month (the bucket's first day),
/// and the newest hour form `"9-Jan 00:00"` for hour/minute.
pub fn label_string(bucket: DateTime<Utc>, interval: Interval, pt: &ProjectTime) -> String {
    let format = match interval {
        Interval::Minute | Interval::Hour => "%-d-%b %H:%M",
        Interval::Day | Interval::Week | Interval::Month => "%-d-%b-%Y",
    };
    local_or_utc(bucket, pt).format(format).to_string()
}

/// An ISO 8601 timestamp in local time with its offset, `Z` when the offset is zero (the way
/// PostHog's API renders datetimes, e.g. retention's `"2020-06-10T00:00:00Z"`).
pub fn iso_string(t: DateTime<Utc>, pt: &ProjectTime) -> String {
    let offset = offset_at(t, pt);
    let fraction = if t.nanosecond() == 0 { "" } else { "%.6f" };
    let mut s = local_or_utc(t, pt)
        .format(&format!("%Y-%m-%dT%H:%M:%S{fraction}"))
        .to_string();
    match offset.local_minus_utc() {
        0 => s.push('Z'),
        _ => s.push_str(&offset.to_string()),
    }
    s
}

/// Local time for display; at the edge of chrono's range, where there is none, the UTC time.
fn local_or_utc(t: DateTime<Utc>, pt: &ProjectTime) -> NaiveDateTime {
    to_local(t, pt).unwrap_or_else(|| t.naive_utc())
}

// ---------------------------------------------------------------------------------------------
// SQL
// ---------------------------------------------------------------------------------------------

/// A Postgres expression truncating the timestamptz expression `ts_sql` (a column expression
/// from code, never user input) to its bucket start in the project timezone, as timestamptz.
/// The timezone name is a bound parameter. Matches [`bucket_start`]:
/// * minute/hour use `date_trunc(unit, ts, tz)`, which keeps the original UTC offset, so the
///   two 01:xx hours of a fall-back night stay two buckets;
/// * day/week/month truncate the local timestamp and convert back; `date_trunc('week')` is
///   Monday-based, so Sunday weeks shift by +1 day before truncating and −1 day after (on the
///   timezone-less local timestamp, where a day is always a calendar day).
pub fn sql_bucket_expr(
    ts_sql: &str,
    interval: Interval,
    pt: &ProjectTime,
    b: &mut SqlBuilder,
) -> String {
    let tz = b.text(pt.tz.name());
    match interval {
        Interval::Minute => format!("date_trunc('minute', {ts_sql}, {tz})"),
        Interval::Hour => format!("date_trunc('hour', {ts_sql}, {tz})"),
        Interval::Week if pt.week_start == 0 => format!(
            "((date_trunc('week', ({ts_sql} AT TIME ZONE {tz}) + interval '1 day') \
             - interval '1 day') AT TIME ZONE {tz})"
        ),
        Interval::Day | Interval::Week | Interval::Month => format!(
            "(date_trunc('{}', {ts_sql} AT TIME ZONE {tz}) AT TIME ZONE {tz})",
            interval.as_str()
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Compare (docs/dates.md#compare-periods)
// ---------------------------------------------------------------------------------------------

/// The previous period for `compare: true`: the same number of buckets immediately before
/// `range`, computed on the snapped bounds. For snapped day/week/month ranges this is
/// `[from − (to − from), from)` aligned to local days (01-15..01-19 → 01-10..01-14), counted in
/// local days so a 23/25-hour DST day does not shift it; for hour/minute ranges it is aligned
/// to the hour/minute; an explicit range is shifted exactly (`to' = from − 1µs`).
///
/// Takes the project time (the brief had only the range) because the local-day alignment needs
/// the timezone.
pub fn previous_period(range: &DateRange, pt: &ProjectTime) -> DateRange {
    let previous = match range.interval {
        _ if range.explicit_date => exact_previous(range),
        Interval::Minute => clock_previous(range, Unit::Minute, pt),
        Interval::Hour => clock_previous(range, Unit::Hour, pt),
        Interval::Day | Interval::Week | Interval::Month => calendar_previous(range, pt),
    };
    // Only fails at the edge of chrono's range; keeping the range is better than panicking.
    previous.unwrap_or(*range)
}

/// The equal-length window ending one microsecond before `from`.
fn exact_previous(range: &DateRange) -> Option<DateRange> {
    let to = range.from.checked_sub_signed(TimeDelta::microseconds(1))?;
    let from = to.checked_sub_signed(range.to - range.from)?;
    Some(DateRange { from, to, ..*range })
}

/// Hour/minute ranges: end just before `from`, start at the unit containing `to' − length`.
fn clock_previous(range: &DateRange, unit: Unit, pt: &ProjectTime) -> Option<DateRange> {
    let exact = exact_previous(range)?;
    let from = unit_start(exact.from, unit, pt)?;
    Some(DateRange { from, ..exact })
}

/// Day-based ranges: as many local days as the current range spans, ending the day before.
fn calendar_previous(range: &DateRange, pt: &ProjectTime) -> Option<DateRange> {
    let first = to_local(range.from, pt)?.date();
    let last = to_local(range.to, pt)?.date();
    let days = (last - first).num_days() + 1;
    let from = local_midnight(first.checked_sub_signed(TimeDelta::try_days(days)?)?, pt)?;
    let to = local_day_end(first.pred_opt()?, pt)?;
    Some(DateRange { from, to, ..*range })
}

/// `compare_to` (`"-1w"`, `"-2d"`, `"-1m"`…): shift both bounds back by that relative amount
/// with the calendar arithmetic of the date grammar (local wall clock, month clamping), so a
/// month shift can change the number of day buckets (03-01..03-31 − 1m → 02-01..02-29).
/// `Start`/`End` suffixes, absolute dates and `all` are invalid (22007, `compare_to`).
/// `now` is unused: the shift is relative to the range, not to the clock; it stays in the
/// signature the engines were given.
pub fn shift_range(
    range: &DateRange,
    compare_to: &str,
    _now: DateTime<Utc>,
    pt: &ProjectTime,
) -> Result<DateRange> {
    let bad = || {
        QueryError::bad_date(
            "compare_to",
            format!(
                "Invalid compare_to '{}': expected a relative offset such as -1w",
                shown(compare_to)
            ),
        )
    };
    let spec = parse_relative(compare_to.trim())
        .filter(|s| s.snap.is_none())
        .ok_or_else(bad)?;
    let back = spec.n.checked_neg().ok_or_else(bad)?;
    let from = shift(range.from, spec.unit, back, pt).filter(|t| in_supported_range(*t));
    let to = shift(range.to, spec.unit, back, pt).filter(|t| in_supported_range(*t));
    match (from, to) {
        (Some(from), Some(to)) => Ok(DateRange { from, to, ..*range }),
        _ => Err(bad()),
    }
}

// ---------------------------------------------------------------------------------------------
// Funnel windows (docs/dates.md#funnel-conversion-windows)
// ---------------------------------------------------------------------------------------------

/// A funnel conversion window in absolute seconds (DST never stretches it). Units `second`,
/// `minute`, `hour`, `day`, `week` (7 days), `month` (31 days), case-insensitive, singular or
/// plural. `n` must be ≥ 1 (`funnel_window_interval`); an unknown unit is invalid
/// (`funnel_window_interval_unit`).
pub fn window_seconds(n: i64, unit: &str) -> Result<i64> {
    let lower = unit.trim().to_ascii_lowercase();
    let unit_seconds: i64 = match lower.strip_suffix('s').unwrap_or(&lower) {
        "second" => 1,
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        "week" => 7 * 86_400,
        "month" => 31 * 86_400,
        _ => {
            return Err(invalid(
                "funnel_window_interval_unit",
                format!(
                    "Invalid funnel window unit '{}': expected second, minute, hour, day, week \
                     or month",
                    shown(unit)
                ),
            ));
        }
    };
    if n < 1 {
        return Err(invalid(
            "funnel_window_interval",
            format!("funnel_window_interval must be at least 1, got {n}"),
        ));
    }
    n.checked_mul(unit_seconds).ok_or_else(|| {
        invalid(
            "funnel_window_interval",
            format!("funnel_window_interval {n} is too large"),
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Retention (docs/dates.md#retention-periods)
// ---------------------------------------------------------------------------------------------

/// A retention `period` (`"Day"`, `"week"`, …): hour, day, week or month; else invalid `period`.
pub fn parse_retention_period(s: &str) -> Result<Interval> {
    match Interval::parse_name(s) {
        Some(Interval::Minute) | None => Err(invalid(
            "period",
            format!(
                "Invalid retention period '{}': expected Hour, Day, Week or Month",
                shown(s)
            ),
        )),
        Some(period) => Ok(period),
    }
}

/// Retention cohorts (docs/dates.md#retention-periods): the exclusive end is
/// `start_of_period(date_to) + 1 period` (date_to defaults to `now`); cohorts are the
/// `total_intervals` periods before it, or, when `date_from` is given, every period from
/// `start_of_period(date_from)` up to the end. Periods are truncated in the project timezone; weeks
/// follow the week start. Returns the cohort starts and the exclusive end.
pub fn retention_range(
    date_from: Option<&str>,
    date_to: Option<&str>,
    period: Interval,
    total_intervals: u32,
    now: DateTime<Utc>,
    pt: &ProjectTime,
) -> Result<(Vec<DateTime<Utc>>, DateTime<Utc>)> {
    if period == Interval::Minute {
        return Err(invalid(
            "period",
            "Retention periods are Hour, Day, Week or Month",
        ));
    }
    if total_intervals == 0 {
        return Err(invalid(
            "total_intervals",
            "total_intervals must be at least 1",
        ));
    }
    let to = retention_bound(date_to, now, pt, "date_to")?.unwrap_or(now);
    let last_start = bucket_start(to, period, pt);
    let end = next_bucket(last_start, period, pt);
    let first_start = match retention_bound(date_from, now, pt, "date_from")? {
        Some(from) => bucket_start(from, period, pt),
        None => offset_bucket(last_start, period, 1 - i64::from(total_intervals), pt)
            .ok_or_else(|| out_of_range("date_to"))?,
    };
    if first_start > last_start {
        return Err(invalid("date_from", "date_from must not be after date_to"));
    }
    check_bucket_count(first_start, last_start, period)?;
    Ok((buckets_between(first_start, last_start, period, pt), end))
}

/// A retention bound as an instant; `all` is not meaningful for retention.
fn retention_bound(
    s: Option<&str>,
    now: DateTime<Utc>,
    pt: &ProjectTime,
    attr: &str,
) -> Result<Option<DateTime<Utc>>> {
    let Some(s) = non_blank(s) else {
        return Ok(None);
    };
    match parse_relative_or_absolute(s, now, pt, attr)?.at() {
        Some(at) => Ok(Some(at)),
        None => Err(QueryError::bad_date(
            attr,
            format!("'all' is not supported for retention {attr}"),
        )),
    }
}

#[cfg(test)]
#[path = "dates_tests.rs"]
mod tests;
