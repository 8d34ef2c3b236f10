//! The documented safe subset of HogQL expressions, compiled to Postgres SQL over
//! `insights.events` (alias [`FilterContext::event_alias`], `e` below).
//!
//! This comment is **the reference** for what pg_insights accepts where PostHog takes a HogQL
//! expression: `breakdown_type: "hogql"` (→ [`compile_text`]), property filters of type `hogql`
//! (→ [`compile_bool`]) and numeric uses such as `math_hogql` operands (→ [`compile_number`]).
//! Everything outside this subset is rejected **before any SQL runs** with SQLSTATE 22023,
//! `attr` = the field that held the expression, detail `Unsupported HogQL: …`. Nothing here
//! panics on any input.
//!
//! # Safety
//! * No text of the expression is ever written into the SQL: string literals, property keys and
//!   numbers become typed `$n` parameters of the [`SqlBuilder`]; identifiers, operators and
//!   function names only *select* fixed SQL fragments from the translation tables below.
//! * The compiled SQL never raises at execution for any stored data: numbers are read behind a
//!   regex guard, division and modulo by zero give NULL (`NULLIF`), dates are parsed behind a
//!   guard, out-of-range conversions give NULL, and numeric magnitudes are bounded statically
//!   (an operation whose operands could overflow `numeric` first maps operands beyond ±1e100
//!   to NULL and rounds them to 100 decimals). The one execution error left is a `match()`
//!   pattern that is not a valid Postgres regular expression (2201B), exactly like the `regex`
//!   property filter operator.
//! * Limits: at most 4000 characters; nesting (parentheses, calls, operators) at most 64 deep.
//!
//! # Lexical
//! * Literals: integers (`42`, must fit int64), floats (`1.5`, `2e-3`, `1.`), single-quoted
//!   strings (`''` and `\'` are a quote; `\\ \n \t \r \0 \b \f \a \v \" \`` are escapes; any other
//!   `\x` keeps its backslash, so `'50\%'` is a LIKE pattern), `true`, `false`, `null`.
//! * Identifiers `[A-Za-z_$][A-Za-z0-9_$]*`, or quoted with `"…"` / `` `…` ``. Keywords (`and or
//!   not like ilike in is null true false`) and function names are case-insensitive.
//! * Comments (`--`, `/*`), `||`, `?:`, lambdas, arrays, tuples, `BETWEEN`, `CASE`, `INTERVAL`,
//!   `::` casts and anything else not listed here are rejected.
//!
//! # Fields (keys are bound parameters)
//! | HogQL | SQL | type |
//! |---|---|---|
//! | `properties.$browser`, `properties.foo`, `properties['any key']`, `properties."key"` | `(e.properties ->> $k)` | unknown (text) |
//! | `properties.a.b`, `properties['a']['b']` (nested JSON) | `(e.properties #>> $path::text[])` | unknown |
//! | `person.properties.email`, `person.properties['x']` | the person's properties `->> $k` (the caller's join, or a lookup of `insights.persons` by `e.person_id`) | unknown |
//! | `group_0.properties.x` … `group_4.properties.x` | `insights.groups` properties of key `e.group_N` | unknown |
//! | `event`, `distinct_id`, `elements_chain`, `$session_id` / `session_id` | the column | text |
//! | `uuid` | `e.uuid::text` | text |
//! | `person_id` | the person's uuid as text (PostHog's `person_id`) | text |
//! | `$group_0` … `$group_4` | `NULLIF(e.group_N, '')` | text |
//! | `timestamp` | `e."timestamp"` | timestamp |
//!
//! # Operators (loosest first)
//! `or` · `and` · `not` · comparisons `= == != <> < <= > >=`, `[not] like`, `[not] ilike`,
//! `[not] in (literal, …)`, `is [not] null` (not chainable) · `+ -` · `* / %` · unary `-` ·
//! parentheses. `and(a, b, …)`, `or(a, b, …)`, `not(x)` also work as functions.
//!
//! # Types and conversions
//! Values are *text*, *unknown* (a JSON property read as text), *number* (`numeric`), *bool*,
//! *timestamp* (`timestamptz`) or *date*; the project timezone is used wherever a local calendar
//! is needed.
//! * Arithmetic and numeric functions read text/unknown through the guard
//!   `^[-+]?(d+[.d*]|.d+)([eE][-+]?d{1,2})?$` (≤ 100 characters): anything else is NULL. Bools
//!   are 0/1. Arithmetic on timestamps/dates is rejected (use `dateDiff`, `toFloat`).
//!   `a / b` and `a % b` are NULL when `b = 0`.
//! * Comparisons: number vs number/unknown/bool → numeric; bool vs bool → bool; timestamp or
//!   date vs anything but a number/bool → timestamp (text is parsed as a date, below), date vs
//!   date → date, timestamp vs number → epoch seconds; everything else → text (`COLLATE "C"`
//!   for `< <= > >=`). `x = null` is `x IS NULL`, `x != null` is `x IS NOT NULL`, other
//!   comparisons with `null` are NULL.
//! * `in (…)`: literals only (numbers, strings, `true`/`false`/`null`, negative numbers); typed
//!   like `=` against every item; `null` items never match.
//! * Bool context (filters, `if`, `and`, …): text/unknown `'true'`/`'false'` → true/false
//!   (other text → NULL), number → `<> 0`; timestamps/dates are rejected.
//!   A filter is `(expr) IS TRUE`: NULL never matches.
//! * Text of a number drops trailing zeros (`trim_scale`), of a bool is `true`/`false`, of a
//!   timestamp is `YYYY-MM-DD HH24:MI:SS` in the project timezone, of a date `YYYY-MM-DD`.
//! * Text parsed as a timestamp: `YYYY-M-D[( |T)H:MM[:SS[.f]]][Z|±HH[:MM]]` (years 1000–2999,
//!   no offset → project timezone; a day past the month's end rolls over, e.g. `2024-02-31` is
//!   March 2nd, as in property filters), 9–10 digit epoch seconds or 12–13 digit epoch
//!   milliseconds; anything else is NULL.
//! * Branches of `if`/`multiIf`/`coalesce`/`ifNull`/`least`/`greatest` share one type: all the
//!   same → that type; numbers with unknown/bool → number; a timestamp (else a date) with
//!   text/unknown → timestamp (date); otherwise text.
//!
//! # Functions (anything else → `Unsupported HogQL: unknown function 'f'`)
//! | HogQL | SQL |
//! |---|---|
//! | `toString(x)` | text of x |
//! | `toInt(x)`, `toInt64(x)` | `trunc(number)` (NULL when not numeric; timestamps → epoch seconds) |
//! | `toFloat(x)`, `toFloat64(x)` | number (timestamps → epoch seconds, dates → days since 1970-01-01) |
//! | `lower(s)`, `upper(s)`, `trim(s)` | `lower`, `upper`, `btrim` |
//! | `length(s)` | `char_length` (characters, not bytes) |
//! | `concat(a, …)` | `concat` (NULL arguments count as `''`, as HogQL) |
//! | `coalesce(a, …)`, `ifNull(a, b)` | `coalesce` |
//! | `if(c, a, b)`, `multiIf(c1, a1, …, else)` | `CASE WHEN` (a NULL condition takes the else branch) |
//! | `substring(s, offset[, length])` | `substr` (1-based; offsets ≤ 0 follow Postgres; negative length → `''`) |
//! | `replaceAll(s, from, to)` | `replace` |
//! | `round(x[, n])` | `round(x, n)`, `n` an integer literal in -30..30 (half away from zero) |
//! | `floor(x)`, `ceil(x)`, `abs(x)` | same |
//! | `least(a, …)`, `greatest(a, …)` | same (Postgres: NULL arguments are ignored) |
//! | `toDate(x)` | the project-local date of a timestamp / parsed text |
//! | `toDateTime(x)` | timestamp (text parsed; numbers are epoch seconds, NULL beyond ±1e11) |
//! | `toStartOfDay(x)` | local midnight (timestamp) |
//! | `toStartOfWeek(x[, mode])` | date; mode an integer literal, odd = Monday, even = Sunday; default = the project's week start |
//! | `toStartOfMonth(x)` | date |
//! | `now()`, `today()` | `now()`, the project-local current date |
//! | `dateDiff('unit', a, b)` | boundaries crossed from a to b on the project-local calendar; unit a string literal: second, minute, hour, day, week (Monday weeks), month, quarter, year (plural allowed) |
//! | `domain(url)`, `path(url)` | host / path of `scheme://host/path?…` via `regexp_replace`; `''` without `//` |
//! | `position(s, needle)` | `strpos` (1-based, 0 = absent) |
//! | `startsWith(s, p)`, `endsWith(s, p)` | `starts_with` (of the reversed strings for `endsWith`) |
//! | `match(s, 're')` | `s ~ $re`; the pattern must be a string literal (Postgres ARE syntax) |
//! | `empty(s)`, `notEmpty(s)` | `s = ''`, `s <> ''` |
//!
//! `like`/`ilike` patterns use `%` and `_`, with `\` escaping when the pattern is a literal (a
//! literal ending in a lone `\` is rejected); a computed pattern has no escape character.
//! Aggregates (`count`, `sum`, …), arrays (`splitByChar`, …) and every other function are
//! rejected.

use std::fmt::Display;

use crate::compile::properties::{DATE_RE, FilterContext, NUM_RE};
use crate::compile::sql::{Param, SqlBuilder};
use crate::error::{QueryError, Result};

/// The longest accepted expression, in characters.
pub const MAX_LEN: usize = 4000;

/// The deepest accepted nesting (parentheses, calls, operators).
pub const MAX_DEPTH: usize = 64;

/// `domain(url)`: the host after `scheme://` (or `//`), else `''`.
const DOMAIN_RE: &str = r"^(?:[A-Za-z][A-Za-z0-9+.-]*:)?//(?:[^/?#@]*@)?([^/?#:]*).*$|^.*$";

/// `path(url)`: the path after the host, without query and fragment, else `''`.
const PATH_RE: &str = r"^(?:[A-Za-z][A-Za-z0-9+.-]*:)?//[^/?#]*([^?#]*).*$|^.*$";

/// Static bound beyond which an operation's operands are tamed (numeric overflows near 1e131072).
const MAG_LIMIT: f64 = 20_000.0;

/// Compiled fragments longer than this are bound once through a scalar subquery instead of being
/// repeated in the SQL text (keeps the output linear in the input).
const INLINE_MAX: usize = 160;

/// The type of a compiled expression, as returned by [`compile_expr`]: `Text` and `Unknown`
/// (a property, or `null`) are SQL `text`, `Number` is `numeric`, `Bool` is `boolean`,
/// `Timestamp` is `timestamptz` (dates are returned as their local midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HogqlType {
    Text,
    Number,
    Bool,
    Timestamp,
    Unknown,
}

/// Compile `src` to one SQL expression and its type (see [`HogqlType`] for the SQL types).
/// Errors (22023) name `attr`. On error `b` is left unchanged.
pub fn compile_expr(
    src: &str,
    attr: &str,
    b: &mut SqlBuilder,
    cx: &FilterContext,
) -> Result<(String, HogqlType)> {
    with_compiler(src, attr, b, cx, |c, v| {
        Ok(match v.ty {
            Ty::Text => (v.sql, HogqlType::Text),
            Ty::Unknown => (v.sql, HogqlType::Unknown),
            Ty::Null => ("NULL::text".to_string(), HogqlType::Unknown),
            Ty::Number => (v.sql, HogqlType::Number),
            Ty::Bool => (v.sql, HogqlType::Bool),
            Ty::Timestamp | Ty::Date => (c.time(&v)?, HogqlType::Timestamp),
        })
    })
}

/// For breakdowns: the expression as text (NULL stays NULL).
pub fn compile_text(
    src: &str,
    attr: &str,
    b: &mut SqlBuilder,
    cx: &FilterContext,
) -> Result<String> {
    with_compiler(src, attr, b, cx, |c, v| Ok(c.text(&v)))
}

/// For filters: a boolean that is never NULL (`(…) IS TRUE`).
pub fn compile_bool(
    src: &str,
    attr: &str,
    b: &mut SqlBuilder,
    cx: &FilterContext,
) -> Result<String> {
    with_compiler(src, attr, b, cx, |c, v| {
        Ok(format!("({}) IS TRUE", c.boolean(&v)?))
    })
}

/// For math_hogql / numeric aggregates: a float8 expression (NULL when not numeric).
pub fn compile_number(
    src: &str,
    attr: &str,
    b: &mut SqlBuilder,
    cx: &FilterContext,
) -> Result<String> {
    with_compiler(src, attr, b, cx, |c, v| {
        let n = c.num(&v, true)?;
        Ok(c.float8(&n))
    })
}

/// Parse, compile into a scratch builder, finish with `f`, and commit the parameters only on
/// success.
fn with_compiler<T>(
    src: &str,
    attr: &str,
    b: &mut SqlBuilder,
    cx: &FilterContext,
    f: impl FnOnce(&mut Compiler, Val) -> Result<T>,
) -> Result<T> {
    let ast = parse(src, attr)?;
    let mut scratch = b.clone();
    let out = {
        let mut c = Compiler {
            attr,
            b: &mut scratch,
            cx,
            tz: None,
            aliases: 0,
        };
        let v = c.expr(&ast)?;
        f(&mut c, v)?
    };
    *b = scratch;
    Ok(out)
}

fn unsupported(attr: &str, msg: impl Display) -> QueryError {
    QueryError::invalid(attr.to_string(), format!("Unsupported HogQL: {msg}"))
}

/// At most 64 characters of user text, for error messages.
fn shown(s: &str) -> String {
    s.chars().take(64).collect()
}

// ---------------------------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Int(i64),
    Float(f64),
    Str(String),
    Ident(String),
    Quoted(String),
    Sym(&'static str),
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Int(v) => v.to_string(),
            Tok::Float(v) => v.to_string(),
            Tok::Str(s) => format!("'{}'", shown(s)),
            Tok::Ident(s) => shown(s),
            Tok::Quoted(s) => format!("\"{}\"", shown(s)),
            Tok::Sym(s) => (*s).to_string(),
        }
    }
}

/// Operators and punctuation, two-character ones first.
const SYMBOLS: [&str; 19] = [
    "==", "!=", "<>", "<=", ">=", "(", ")", "[", "]", ",", ".", "+", "-", "*", "/", "%", "=", "<",
    ">",
];

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '$'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

fn lex(src: &str, attr: &str) -> Result<Vec<Tok>> {
    let chars: Vec<char> = src.chars().collect();
    let n = chars.len();
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < n && chars[i].is_ascii_digit() {
                i += 1;
            }
            let mut float = false;
            if i < n && chars[i] == '.' {
                float = true;
                i += 1;
                while i < n && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if i < n && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < n && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < n && chars[j].is_ascii_digit() {
                    float = true;
                    i = j;
                    while i < n && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let text: String = chars[start..i].iter().collect();
            if i < n && is_ident_char(chars[i]) {
                let rest: String = chars[start..(i + 1).min(n)].iter().collect();
                return Err(unsupported(
                    attr,
                    format!("invalid number '{}'", shown(&rest)),
                ));
            }
            if float {
                match text.parse::<f64>() {
                    Ok(v) if v.is_finite() => out.push(Tok::Float(v)),
                    _ => {
                        return Err(unsupported(
                            attr,
                            format!("number {} is out of range", shown(&text)),
                        ));
                    }
                }
            } else {
                match text.parse::<i64>() {
                    Ok(v) => out.push(Tok::Int(v)),
                    Err(_) => {
                        return Err(unsupported(
                            attr,
                            format!("integer {} is out of range", shown(&text)),
                        ));
                    }
                }
            }
        } else if is_ident_start(c) {
            let start = i;
            while i < n && is_ident_char(chars[i]) {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else if c == '\'' {
            let (s, next) = lex_quoted(&chars, i, '\'', attr)?;
            out.push(Tok::Str(s));
            i = next;
        } else if c == '"' || c == '`' {
            let (s, next) = lex_quoted(&chars, i, c, attr)?;
            out.push(Tok::Quoted(s));
            i = next;
        } else {
            let two: String = chars[i..(i + 2).min(n)].iter().collect();
            if two == "--" || two == "/*" {
                return Err(unsupported(attr, "comments are not supported"));
            }
            let rest = &chars[i..];
            let sym = SYMBOLS.iter().find(|s| {
                s.chars()
                    .enumerate()
                    .all(|(k, ch)| rest.get(k) == Some(&ch))
            });
            if let Some(s) = sym {
                out.push(Tok::Sym(s));
                i += s.len();
            } else {
                return Err(unsupported(attr, format!("unexpected character '{c}'")));
            }
        }
    }
    Ok(out)
}

/// A quoted string or identifier starting at `chars[start]` (the quote `q`); returns the
/// content and the index after the closing quote.
fn lex_quoted(chars: &[char], start: usize, q: char, attr: &str) -> Result<(String, usize)> {
    let mut s = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        let c = chars[i];
        if c == q {
            if i + 1 < chars.len() && chars[i + 1] == q {
                s.push(q);
                i += 2;
                continue;
            }
            return Ok((s, i + 1));
        }
        if c == '\\' && i + 1 < chars.len() {
            let e = chars[i + 1];
            match e {
                'n' => s.push('\n'),
                't' => s.push('\t'),
                'r' => s.push('\r'),
                '0' => s.push('\0'),
                'b' => s.push('\u{8}'),
                'f' => s.push('\u{c}'),
                'a' => s.push('\u{7}'),
                'v' => s.push('\u{b}'),
                '\\' | '\'' | '"' | '`' => s.push(e),
                other => {
                    s.push('\\');
                    s.push(other);
                }
            }
            i += 2;
            continue;
        }
        s.push(c);
        i += 1;
    }
    Err(unsupported(
        attr,
        if q == '\'' {
            "unterminated string literal"
        } else {
            "unterminated quoted identifier"
        },
    ))
}

// ---------------------------------------------------------------------------------------------
// Syntax tree and parser
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Event,
    DistinctId,
    Timestamp,
    PersonId,
    SessionId,
    ElementsChain,
    Uuid,
    Group(u8),
}

#[derive(Debug, Clone, PartialEq)]
enum Field {
    Column(Column),
    Event(Vec<String>),
    Person(Vec<String>),
    Group(u8, Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn from_sym(s: &str) -> Option<Cmp> {
        Some(match s {
            "=" | "==" => Cmp::Eq,
            "!=" | "<>" => Cmp::Ne,
            "<" => Cmp::Lt,
            "<=" => Cmp::Le,
            ">" => Cmp::Gt,
            ">=" => Cmp::Ge,
            _ => return None,
        })
    }

    fn sql(self) -> &'static str {
        match self {
            Cmp::Eq => "=",
            Cmp::Ne => "<>",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    ToString,
    ToInt,
    ToFloat,
    Lower,
    Upper,
    Length,
    Concat,
    Coalesce,
    If,
    MultiIf,
    Trim,
    Substring,
    ReplaceAll,
    Round,
    Floor,
    Ceil,
    Abs,
    Least,
    Greatest,
    ToDate,
    ToDateTime,
    ToStartOfDay,
    ToStartOfWeek,
    ToStartOfMonth,
    Now,
    Today,
    DateDiff,
    Domain,
    Path,
    Position,
    StartsWith,
    EndsWith,
    Match,
    Empty,
    NotEmpty,
    And,
    Or,
    Not,
}

const VARIADIC: usize = usize::MAX;

/// (lower-case name, function, min args, max args).
const FUNCS: &[(&str, Func, usize, usize)] = &[
    ("tostring", Func::ToString, 1, 1),
    ("toint", Func::ToInt, 1, 1),
    ("toint64", Func::ToInt, 1, 1),
    ("tofloat", Func::ToFloat, 1, 1),
    ("tofloat64", Func::ToFloat, 1, 1),
    ("lower", Func::Lower, 1, 1),
    ("upper", Func::Upper, 1, 1),
    ("length", Func::Length, 1, 1),
    ("concat", Func::Concat, 1, VARIADIC),
    ("coalesce", Func::Coalesce, 1, VARIADIC),
    ("ifnull", Func::Coalesce, 2, 2),
    ("if", Func::If, 3, 3),
    ("multiif", Func::MultiIf, 3, VARIADIC),
    ("trim", Func::Trim, 1, 1),
    ("substring", Func::Substring, 2, 3),
    ("replaceall", Func::ReplaceAll, 3, 3),
    ("round", Func::Round, 1, 2),
    ("floor", Func::Floor, 1, 1),
    ("ceil", Func::Ceil, 1, 1),
    ("abs", Func::Abs, 1, 1),
    ("least", Func::Least, 1, VARIADIC),
    ("greatest", Func::Greatest, 1, VARIADIC),
    ("todate", Func::ToDate, 1, 1),
    ("todatetime", Func::ToDateTime, 1, 1),
    ("tostartofday", Func::ToStartOfDay, 1, 1),
    ("tostartofweek", Func::ToStartOfWeek, 1, 2),
    ("tostartofmonth", Func::ToStartOfMonth, 1, 1),
    ("now", Func::Now, 0, 0),
    ("today", Func::Today, 0, 0),
    ("datediff", Func::DateDiff, 3, 3),
    ("domain", Func::Domain, 1, 1),
    ("path", Func::Path, 1, 1),
    ("position", Func::Position, 2, 2),
    ("startswith", Func::StartsWith, 2, 2),
    ("endswith", Func::EndsWith, 2, 2),
    ("match", Func::Match, 2, 2),
    ("empty", Func::Empty, 1, 1),
    ("notempty", Func::NotEmpty, 1, 1),
    ("and", Func::And, 2, VARIADIC),
    ("or", Func::Or, 2, VARIADIC),
    ("not", Func::Not, 1, 1),
];

const AGGREGATES: &[&str] = &[
    "count",
    "countif",
    "countdistinct",
    "sum",
    "sumif",
    "avg",
    "avgif",
    "min",
    "max",
    "any",
    "argmin",
    "argmax",
    "median",
    "quantile",
    "uniq",
    "uniqexact",
    "grouparray",
];

const KEYWORDS: &[&str] = &[
    "and", "or", "not", "like", "ilike", "in", "is", "null", "true", "false",
];

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Null,
    Field(Field),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Arith(Arith, Box<Expr>, Box<Expr>),
    Cmp(Cmp, Box<Expr>, Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Like {
        negated: bool,
        ci: bool,
        lhs: Box<Expr>,
        pat: Box<Expr>,
    },
    In {
        negated: bool,
        lhs: Box<Expr>,
        list: Vec<Expr>,
    },
    IsNull {
        negated: bool,
        e: Box<Expr>,
    },
    Call(Func, Vec<Expr>),
}

/// An expression and the depth of its tree.
type P = (Expr, usize);

fn parse(src: &str, attr: &str) -> Result<Expr> {
    if src.chars().count() > MAX_LEN {
        return Err(unsupported(
            attr,
            format!("the expression is longer than {MAX_LEN} characters"),
        ));
    }
    let toks = lex(src, attr)?;
    if toks.is_empty() {
        return Err(unsupported(attr, "empty expression"));
    }
    let mut p = Parser {
        toks,
        pos: 0,
        nest: 0,
        attr,
    };
    let (e, _) = p.or()?;
    if let Some(t) = p.peek() {
        return Err(p.err(format!("unexpected '{}'", t.describe())));
    }
    Ok(e)
}

struct Parser<'s> {
    toks: Vec<Tok>,
    pos: usize,
    nest: usize,
    attr: &'s str,
}

impl Parser<'_> {
    fn err(&self, msg: impl Display) -> QueryError {
        unsupported(self.attr, msg)
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn peek_at(&self, k: usize) -> Option<&Tok> {
        self.toks.get(self.pos + k)
    }

    fn kw_at(&self, k: usize, kw: &str) -> bool {
        matches!(self.peek_at(k), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(kw))
    }

    fn sym_at(&self, k: usize, sym: &str) -> bool {
        matches!(self.peek_at(k), Some(Tok::Sym(s)) if *s == sym)
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let hit = self.kw_at(0, kw);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn eat_sym(&mut self, sym: &str) -> bool {
        let hit = self.sym_at(0, sym);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn expect_sym(&mut self, sym: &str) -> Result<()> {
        if self.eat_sym(sym) {
            return Ok(());
        }
        Err(match self.peek() {
            Some(t) => self.err(format!("expected '{sym}', found '{}'", t.describe())),
            None => self.err(format!("expected '{sym}' at the end of the expression")),
        })
    }

    fn enter(&mut self) -> Result<()> {
        self.nest += 1;
        if self.nest > MAX_DEPTH {
            return Err(self.too_deep());
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nest -= 1;
    }

    fn too_deep(&self) -> QueryError {
        self.err(format!("the expression is nested deeper than {MAX_DEPTH}"))
    }

    fn node(&self, e: Expr, depth: usize) -> Result<P> {
        if depth > MAX_DEPTH {
            return Err(self.too_deep());
        }
        Ok((e, depth))
    }

    fn or(&mut self) -> Result<P> {
        let (first, mut depth) = self.and()?;
        if !self.kw_at(0, "or") {
            return Ok((first, depth));
        }
        let mut items = vec![first];
        while self.eat_kw("or") {
            let (e, d) = self.and()?;
            depth = depth.max(d);
            items.push(e);
        }
        self.node(Expr::Or(items), depth + 1)
    }

    fn and(&mut self) -> Result<P> {
        let (first, mut depth) = self.not()?;
        if !self.kw_at(0, "and") {
            return Ok((first, depth));
        }
        let mut items = vec![first];
        while self.eat_kw("and") {
            let (e, d) = self.not()?;
            depth = depth.max(d);
            items.push(e);
        }
        self.node(Expr::And(items), depth + 1)
    }

    fn not(&mut self) -> Result<P> {
        if self.eat_kw("not") {
            self.enter()?;
            let (e, d) = self.not()?;
            self.leave();
            return self.node(Expr::Not(Box::new(e)), d + 1);
        }
        self.comparison()
    }

    /// At most one comparison (`a = b = c` is rejected).
    fn comparison(&mut self) -> Result<P> {
        let (lhs, dl) = self.additive()?;
        let out = if let Some(op) = self.cmp_op() {
            self.pos += 1;
            let (rhs, dr) = self.additive()?;
            self.node(Expr::Cmp(op, Box::new(lhs), Box::new(rhs)), dl.max(dr) + 1)?
        } else if self.like_ahead() {
            let negated = self.eat_kw("not");
            let ci = self.kw_at(0, "ilike");
            self.pos += 1;
            let (pat, dr) = self.additive()?;
            self.node(
                Expr::Like {
                    negated,
                    ci,
                    lhs: Box::new(lhs),
                    pat: Box::new(pat),
                },
                dl.max(dr) + 1,
            )?
        } else if self.kw_at(0, "in") || (self.kw_at(0, "not") && self.kw_at(1, "in")) {
            let negated = self.eat_kw("not");
            self.pos += 1;
            let list = self.literal_list()?;
            self.node(
                Expr::In {
                    negated,
                    lhs: Box::new(lhs),
                    list,
                },
                dl + 1,
            )?
        } else if self.eat_kw("is") {
            let negated = self.eat_kw("not");
            if !self.eat_kw("null") {
                return Err(self.err("only 'IS NULL' and 'IS NOT NULL' are supported"));
            }
            self.node(
                Expr::IsNull {
                    negated,
                    e: Box::new(lhs),
                },
                dl + 1,
            )?
        } else {
            return Ok((lhs, dl));
        };
        if self.cmp_op().is_some()
            || self.like_ahead()
            || self.kw_at(0, "in")
            || self.kw_at(0, "is")
            || (self.kw_at(0, "not") && self.kw_at(1, "in"))
        {
            return Err(self.err("chained comparisons are not supported (use parentheses)"));
        }
        Ok(out)
    }

    fn cmp_op(&self) -> Option<Cmp> {
        match self.peek() {
            Some(Tok::Sym(s)) => Cmp::from_sym(s),
            _ => None,
        }
    }

    fn like_ahead(&self) -> bool {
        let like = |k| self.kw_at(k, "like") || self.kw_at(k, "ilike");
        like(0) || (self.kw_at(0, "not") && like(1))
    }

    /// `( literal, … )` after `IN`.
    fn literal_list(&mut self) -> Result<Vec<Expr>> {
        if !self.eat_sym("(") {
            return Err(self.err("IN needs a parenthesised list of literals"));
        }
        let mut items = Vec::new();
        loop {
            items.push(self.literal()?);
            if self.eat_sym(")") {
                return Ok(items);
            }
            self.expect_sym(",")?;
        }
    }

    fn literal(&mut self) -> Result<Expr> {
        let neg = self.eat_sym("-");
        let e = match self.peek().cloned() {
            Some(Tok::Int(v)) => Expr::Int(if neg { -v } else { v }),
            Some(Tok::Float(v)) => Expr::Float(if neg { -v } else { v }),
            Some(Tok::Str(s)) if !neg => Expr::Str(s),
            Some(Tok::Ident(s)) if !neg && s.eq_ignore_ascii_case("true") => Expr::Bool(true),
            Some(Tok::Ident(s)) if !neg && s.eq_ignore_ascii_case("false") => Expr::Bool(false),
            Some(Tok::Ident(s)) if !neg && s.eq_ignore_ascii_case("null") => Expr::Null,
            _ => return Err(self.err("IN lists may only contain literals")),
        };
        self.pos += 1;
        Ok(e)
    }

    fn additive(&mut self) -> Result<P> {
        self.arith_level(
            &[("+", Arith::Add), ("-", Arith::Sub)],
            Self::multiplicative,
        )
    }

    fn multiplicative(&mut self) -> Result<P> {
        let ops = [("*", Arith::Mul), ("/", Arith::Div), ("%", Arith::Mod)];
        self.arith_level(&ops, Self::unary)
    }

    /// One left-associative arithmetic level: `next (op next)*` over the operators of `ops`.
    fn arith_level(
        &mut self,
        ops: &[(&str, Arith)],
        next: fn(&mut Self) -> Result<P>,
    ) -> Result<P> {
        let (mut lhs, mut depth) = next(self)?;
        loop {
            let Some(&(_, op)) = ops.iter().find(|(sym, _)| self.sym_at(0, sym)) else {
                return Ok((lhs, depth));
            };
            self.pos += 1;
            let (rhs, d) = next(self)?;
            depth = depth.max(d) + 1;
            lhs = self
                .node(Expr::Arith(op, Box::new(lhs), Box::new(rhs)), depth)?
                .0;
        }
    }

    fn unary(&mut self) -> Result<P> {
        if self.eat_sym("-") {
            self.enter()?;
            let (e, d) = self.unary()?;
            self.leave();
            return match e {
                Expr::Int(v) => Ok((Expr::Int(-v), d)),
                Expr::Float(v) => Ok((Expr::Float(-v), d)),
                e => self.node(Expr::Neg(Box::new(e)), d + 1),
            };
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<P> {
        let Some(tok) = self.peek().cloned() else {
            return Err(self.err("unexpected end of the expression"));
        };
        match tok {
            Tok::Int(v) => {
                self.pos += 1;
                Ok((Expr::Int(v), 1))
            }
            Tok::Float(v) => {
                self.pos += 1;
                Ok((Expr::Float(v), 1))
            }
            Tok::Str(s) => {
                self.pos += 1;
                Ok((Expr::Str(s), 1))
            }
            Tok::Sym("(") => {
                self.pos += 1;
                self.enter()?;
                let inner = self.or()?;
                if self.sym_at(0, ",") {
                    return Err(self.err("tuples are not supported"));
                }
                self.expect_sym(")")?;
                self.leave();
                Ok(inner)
            }
            Tok::Sym(s) => Err(self.err(format!("unexpected '{s}'"))),
            Tok::Ident(name) if self.sym_at(1, "(") => self.call(&name),
            Tok::Ident(name) => {
                let lower = name.to_ascii_lowercase();
                self.pos += 1;
                match lower.as_str() {
                    "true" => Ok((Expr::Bool(true), 1)),
                    "false" => Ok((Expr::Bool(false), 1)),
                    "null" => Ok((Expr::Null, 1)),
                    kw if KEYWORDS.contains(&kw) => {
                        Err(self.err(format!("unexpected keyword '{}'", shown(&name))))
                    }
                    _ => self.field(name),
                }
            }
            Tok::Quoted(name) => {
                self.pos += 1;
                self.field(name)
            }
        }
    }

    fn call(&mut self, name: &str) -> Result<P> {
        let lower = name.to_ascii_lowercase();
        let Some(&(_, func, min, max)) = FUNCS.iter().find(|(n, ..)| *n == lower) else {
            return Err(if AGGREGATES.contains(&lower.as_str()) {
                self.err(format!(
                    "aggregate function '{}' is not supported here",
                    shown(name)
                ))
            } else {
                self.err(format!("unknown function '{}'", shown(name)))
            });
        };
        self.pos += 2; // name and '('
        self.enter()?;
        let mut args = Vec::new();
        let mut depth = 0;
        if !self.eat_sym(")") {
            loop {
                let (e, d) = self.or()?;
                depth = depth.max(d);
                args.push(e);
                if self.eat_sym(")") {
                    break;
                }
                self.expect_sym(",")?;
            }
        }
        self.leave();
        if args.len() < min || args.len() > max {
            let want = match (min, max) {
                (a, b) if a == b => format!("{a}"),
                (a, VARIADIC) => format!("at least {a}"),
                (a, b) => format!("{a} to {b}"),
            };
            return Err(self.err(format!(
                "function '{}' takes {want} argument(s), got {}",
                shown(name),
                args.len()
            )));
        }
        if func == Func::MultiIf && args.len() % 2 == 0 {
            return Err(self.err("multiIf needs an odd number of arguments"));
        }
        let e = match func {
            Func::And => Expr::And(args),
            Func::Or => Expr::Or(args),
            Func::Not => Expr::Not(Box::new(args.pop().unwrap_or(Expr::Null))),
            f => Expr::Call(f, args),
        };
        self.node(e, depth + 1)
    }

    /// A field: `name` followed by `.name`, `."quoted"` or `['key']` segments.
    fn field(&mut self, first: String) -> Result<P> {
        let mut segs = vec![first];
        loop {
            if self.sym_at(0, ".") {
                match self.peek_at(1).cloned() {
                    Some(Tok::Ident(s)) | Some(Tok::Quoted(s)) => {
                        segs.push(s);
                        self.pos += 2;
                    }
                    Some(Tok::Int(v)) => {
                        return Err(
                            self.err(format!("numeric field access '.{v}' is not supported"))
                        );
                    }
                    _ => return Err(self.err("expected a name after '.'")),
                }
            } else if self.sym_at(0, "[") {
                match (self.peek_at(1).cloned(), self.sym_at(2, "]")) {
                    (Some(Tok::Str(s)), true) => {
                        segs.push(s);
                        self.pos += 3;
                    }
                    _ => return Err(self.err("only ['string'] keys are supported in [ ]")),
                }
            } else {
                break;
            }
        }
        let f = self.resolve(segs)?;
        Ok((Expr::Field(f), 1))
    }

    fn resolve(&self, mut segs: Vec<String>) -> Result<Field> {
        let rest = segs.split_off(1);
        let head = segs.pop().unwrap_or_default();
        let needs_key = |what: &str| {
            self.err(format!(
                "'{what}' needs a property key, e.g. {what}.$browser or {what}['key']"
            ))
        };
        let column = |c: Column| {
            if rest.is_empty() {
                Ok(Field::Column(c))
            } else {
                Err(self.err(format!("'{}' has no fields", shown(&head))))
            }
        };
        match head.as_str() {
            "properties" => {
                if rest.is_empty() {
                    return Err(needs_key("properties"));
                }
                Ok(Field::Event(rest))
            }
            "person" => {
                if rest.first().map(String::as_str) != Some("properties") {
                    return Err(self.err("only person.properties.<key> is supported on 'person'"));
                }
                if rest.len() < 2 {
                    return Err(needs_key("person.properties"));
                }
                Ok(Field::Person(rest[1..].to_vec()))
            }
            "group_0" | "group_1" | "group_2" | "group_3" | "group_4" => {
                let i = head.as_bytes()[6] - b'0';
                if rest.first().map(String::as_str) != Some("properties") {
                    return Err(self.err(format!(
                        "only {head}.properties.<key> is supported on '{head}'"
                    )));
                }
                if rest.len() < 2 {
                    return Err(needs_key(&format!("{head}.properties")));
                }
                Ok(Field::Group(i, rest[1..].to_vec()))
            }
            "event" => column(Column::Event),
            "distinct_id" => column(Column::DistinctId),
            "timestamp" => column(Column::Timestamp),
            "person_id" => column(Column::PersonId),
            "$session_id" | "session_id" => column(Column::SessionId),
            "elements_chain" => column(Column::ElementsChain),
            "uuid" => column(Column::Uuid),
            "$group_0" | "$group_1" | "$group_2" | "$group_3" | "$group_4" => {
                column(Column::Group(head.as_bytes()[7] - b'0'))
            }
            _ => Err(self.err(format!("unknown field '{}'", shown(&head)))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Compiler
// ---------------------------------------------------------------------------------------------

/// The internal type of a compiled value (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Text,
    Unknown,
    Number,
    Bool,
    Timestamp,
    Date,
    /// The literal `null`.
    Null,
}

/// Static bounds of a numeric value: `mag` ≥ log10 |v|, `tiny` ≤ log10 |v| for v ≠ 0, and
/// `scale` ≥ its decimal scale. They let the compiler prove that no operation overflows.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bounds {
    mag: f64,
    tiny: f64,
    scale: f64,
}

impl Bounds {
    const fn new(mag: f64, tiny: f64, scale: f64) -> Bounds {
        Bounds { mag, tiny, scale }
    }

    /// Integers of at most `digits` digits.
    const fn int(digits: f64) -> Bounds {
        Bounds::new(digits, 0.0, 0.0)
    }

    fn float(v: f64) -> Bounds {
        if v == 0.0 {
            return Bounds::int(1.0);
        }
        let l = v.abs().log10();
        // float8 → numeric keeps 15 significant digits.
        Bounds::new(l.ceil() + 1.0, l.floor() - 1.0, (16.0 - l.floor()).max(0.0))
    }

    /// The bounds of an exact result of `scale` decimals and magnitude `mag`.
    fn scaled(mag: f64, scale: f64) -> Bounds {
        Bounds::new(mag, -scale, scale)
    }

    fn join(self, o: Bounds) -> Bounds {
        Bounds::new(
            self.mag.max(o.mag),
            self.tiny.min(o.tiny),
            self.scale.max(o.scale),
        )
    }

    fn arith(op: Arith, a: Bounds, b: Bounds) -> Bounds {
        match op {
            Arith::Add | Arith::Sub => {
                Bounds::scaled(a.mag.max(b.mag) + 0.31, a.scale.max(b.scale))
            }
            Arith::Mul => {
                let scale = (a.scale + b.scale).min(16_383.0);
                Bounds::new(
                    a.mag + b.mag + 0.01,
                    (a.tiny + b.tiny - 1.0).max(-scale),
                    scale,
                )
            }
            Arith::Div => {
                let scale =
                    (a.scale.max(b.scale).max(24.0 + (b.mag - a.tiny).max(0.0))).min(1000.0);
                Bounds::scaled(a.mag - b.tiny + 0.01, scale)
            }
            Arith::Mod => Bounds::scaled(a.mag.min(b.mag), a.scale.max(b.scale)),
        }
    }

    fn tame_needed(self) -> bool {
        self.mag > 100.0 || self.tiny < -100.0 || self.scale > 100.0
    }
}

/// Property text read as a number (see [`NUM_RE`]).
const PROP_BOUNDS: Bounds = Bounds::new(200.0, -200.0, 200.0);
/// After taming: |v| ≤ 1e100, 100 decimals.
const TAME_BOUNDS: Bounds = Bounds::new(100.0, -100.0, 100.0);
/// Epoch seconds and calendar differences.
const EPOCH_BOUNDS: Bounds = Bounds::new(13.0, -6.0, 6.0);

#[derive(Debug, Clone)]
struct Val {
    sql: String,
    ty: Ty,
    nb: Bounds,
}

impl Val {
    fn new(sql: impl Into<String>, ty: Ty) -> Val {
        Val {
            sql: sql.into(),
            ty,
            nb: Bounds::int(1.0),
        }
    }

    fn num(sql: impl Into<String>, nb: Bounds) -> Val {
        Val {
            sql: sql.into(),
            ty: Ty::Number,
            nb,
        }
    }

    fn bool(sql: impl Into<String>) -> Val {
        Val::new(sql, Ty::Bool)
    }

    fn text(sql: impl Into<String>) -> Val {
        Val::new(sql, Ty::Text)
    }
}

/// The type two compared values are converted to.
fn cmp_type(a: Ty, b: Ty) -> Option<Ty> {
    use Ty::*;
    Some(match (a, b) {
        (Bool, Bool) => Bool,
        (Timestamp | Date, Bool) | (Bool, Timestamp | Date) => return None,
        (Date, Number) | (Number, Date) => return None,
        (Timestamp, Number) | (Number, Timestamp) => Number,
        (Date, Date) => Date,
        (Timestamp | Date, _) | (_, Timestamp | Date) => Timestamp,
        (Number, Number | Unknown | Bool) | (Unknown | Bool, Number) => Number,
        _ => Text,
    })
}

/// The one type of several branches (see the module doc).
fn unify(tys: &[Ty]) -> Ty {
    let set: Vec<Ty> = tys.iter().copied().filter(|t| *t != Ty::Null).collect();
    let Some(&first) = set.first() else {
        return Ty::Text;
    };
    if set.iter().all(|t| *t == first) {
        return first;
    }
    let has = |t: Ty| set.contains(&t);
    if has(Ty::Number)
        && set
            .iter()
            .all(|t| matches!(t, Ty::Number | Ty::Unknown | Ty::Bool))
    {
        return Ty::Number;
    }
    if set
        .iter()
        .all(|t| matches!(t, Ty::Timestamp | Ty::Date | Ty::Unknown | Ty::Text))
    {
        if has(Ty::Timestamp) {
            return Ty::Timestamp;
        }
        if has(Ty::Date) {
            return Ty::Date;
        }
    }
    Ty::Text
}

struct Compiler<'x, 'a> {
    attr: &'x str,
    b: &'x mut SqlBuilder,
    cx: &'x FilterContext<'a>,
    /// The placeholder of the project timezone, bound on first use.
    tz: Option<String>,
    /// Counter for unique subquery aliases.
    aliases: u32,
}

impl Compiler<'_, '_> {
    fn err(&self, msg: impl Display) -> QueryError {
        unsupported(self.attr, msg)
    }

    fn tz(&mut self) -> String {
        if let Some(t) = &self.tz {
            return t.clone();
        }
        let t = self.b.text(self.cx.pt.tz.name());
        self.tz = Some(t.clone());
        t
    }

    fn alias(&mut self, prefix: &str) -> String {
        self.aliases += 1;
        format!("{prefix}{}", self.aliases)
    }

    /// `f(x)` where `f` may mention its argument several times: short fragments are repeated,
    /// long ones are evaluated once in a scalar subquery.
    fn with_value(&mut self, x: &str, f: impl FnOnce(&str) -> String) -> String {
        if x.len() <= INLINE_MAX {
            return f(x);
        }
        let a = self.alias("pgi_h");
        let body = f(&format!("{a}.v"));
        format!("(SELECT {body} FROM (SELECT {x} AS v) {a})")
    }

    // ----- conversions -------------------------------------------------------------------------

    fn text(&mut self, v: &Val) -> String {
        match v.ty {
            Ty::Text | Ty::Unknown => v.sql.clone(),
            Ty::Null => "NULL::text".to_string(),
            Ty::Number => format!("(trim_scale({})::text)", v.sql),
            Ty::Bool => format!(
                "(CASE {} WHEN TRUE THEN 'true' WHEN FALSE THEN 'false' END)",
                v.sql
            ),
            Ty::Timestamp => {
                let tz = self.tz();
                format!(
                    "to_char({} AT TIME ZONE {tz}, 'YYYY-MM-DD HH24:MI:SS')",
                    v.sql
                )
            }
            Ty::Date => format!("to_char({}::timestamp, 'YYYY-MM-DD')", v.sql),
        }
    }

    /// As a number; `explicit` (toFloat, toInt, comparisons with timestamps) also accepts
    /// timestamps (epoch seconds) and dates (days since 1970-01-01).
    fn num(&mut self, v: &Val, explicit: bool) -> Result<Val> {
        Ok(match v.ty {
            Ty::Number => v.clone(),
            Ty::Text | Ty::Unknown => {
                let sql = self.with_value(&v.sql, |t| {
                    format!(
                        "(CASE WHEN length({t}) <= 100 AND {t} ~ '{NUM_RE}' THEN ({t})::numeric END)"
                    )
                });
                Val::num(sql, PROP_BOUNDS)
            }
            Ty::Null => Val::num("NULL::numeric", Bounds::int(1.0)),
            Ty::Bool => Val::num(format!("({}::int::numeric)", v.sql), Bounds::int(1.0)),
            Ty::Timestamp if explicit => {
                Val::num(format!("extract(epoch FROM {})", v.sql), EPOCH_BOUNDS)
            }
            Ty::Date if explicit => Val::num(
                format!("(({} - DATE '1970-01-01')::numeric)", v.sql),
                Bounds::int(7.0),
            ),
            Ty::Timestamp | Ty::Date => {
                return Err(self.err(
                    "arithmetic on a timestamp or date is not supported (use dateDiff or toFloat)",
                ));
            }
        })
    }

    fn boolean(&mut self, v: &Val) -> Result<String> {
        Ok(match v.ty {
            Ty::Bool => v.sql.clone(),
            Ty::Text | Ty::Unknown => format!(
                "(CASE {} WHEN 'true' THEN TRUE WHEN 'false' THEN FALSE END)",
                v.sql
            ),
            Ty::Number => format!("({} <> 0)", v.sql),
            Ty::Null => "NULL::boolean".to_string(),
            Ty::Timestamp | Ty::Date => {
                return Err(self.err("a timestamp or date is not a boolean condition"));
            }
        })
    }

    fn time(&mut self, v: &Val) -> Result<String> {
        Ok(match v.ty {
            Ty::Timestamp => v.sql.clone(),
            Ty::Date => {
                let tz = self.tz();
                format!("({}::timestamp AT TIME ZONE {tz})", v.sql)
            }
            Ty::Text | Ty::Unknown => self.parse_time(&v.sql),
            Ty::Null => "NULL::timestamptz".to_string(),
            Ty::Number => self.with_value(&v.sql, |n| {
                format!("(CASE WHEN abs({n}) < 1e11 THEN to_timestamp(round({n}, 6)::float8) END)")
            }),
            Ty::Bool => return Err(self.err("a boolean is not a timestamp")),
        })
    }

    fn date(&mut self, v: &Val) -> Result<String> {
        let t = match v.ty {
            Ty::Date => return Ok(v.sql.clone()),
            Ty::Null => return Ok("NULL::date".to_string()),
            Ty::Timestamp => v.sql.clone(),
            Ty::Text | Ty::Unknown => self.parse_time(&v.sql),
            Ty::Number | Ty::Bool => {
                return Err(self.err("a number or boolean is not a date"));
            }
        };
        let tz = self.tz();
        Ok(format!("(({t} AT TIME ZONE {tz})::date)"))
    }

    /// Convert to `ty` (for branches of a unified expression).
    fn convert(&mut self, v: &Val, ty: Ty) -> Result<Val> {
        Ok(match ty {
            Ty::Number => self.num(v, false)?,
            Ty::Bool => Val::bool(self.boolean(v)?),
            Ty::Timestamp => Val::new(self.time(v)?, Ty::Timestamp),
            Ty::Date => Val::new(self.date(v)?, Ty::Date),
            Ty::Unknown if v.ty == Ty::Unknown => v.clone(),
            Ty::Text | Ty::Unknown | Ty::Null => Val::text(self.text(v)),
        })
    }

    /// Guarded text → timestamptz (NULL when the text is not a date).
    fn parse_time(&mut self, t: &str) -> String {
        let tz = self.tz();
        let d = self.alias("pgi_d");
        let x = self.alias("pgi_x");
        format!(
            "(SELECT CASE \
             WHEN {d}.m IS NOT NULL THEN \
             ((make_date({d}.m[1]::int, {d}.m[2]::int, 1) + ({d}.m[3]::int - 1)) \
             + make_time(coalesce({d}.m[4], '0')::int, coalesce({d}.m[5], '0')::int, coalesce({d}.m[6], '0')::float8) \
             + make_interval(secs => coalesce(left({d}.m[7], 7), '0')::float8)) \
             AT TIME ZONE (CASE WHEN {d}.m[8] IS NULL THEN {tz} ELSE 'UTC' END) \
             - make_interval(mins => (CASE WHEN {d}.m[9] = '-' THEN -1 ELSE 1 END) \
             * (coalesce({d}.m[10], '0')::int * 60 + coalesce({d}.m[11], '0')::int)) \
             WHEN {d}.t ~ '^[0-9]{{9,10}}(\\.[0-9]{{1,6}})?$' THEN to_timestamp({d}.t::float8) \
             WHEN {d}.t ~ '^[0-9]{{12,13}}$' THEN to_timestamp({d}.t::float8 / 1000) \
             END FROM (SELECT {x}.t, regexp_match({x}.t, '{DATE_RE}') AS m \
             FROM (SELECT {t} AS t) {x}) {d})"
        )
    }

    /// Numeric → float8, NULL beyond ±1e300 (never an error).
    fn float8(&mut self, n: &Val) -> String {
        if n.nb.mag <= 300.0 && n.nb.tiny >= -300.0 {
            return format!("({}::float8)", n.sql);
        }
        self.with_value(&n.sql, |v| {
            format!("(CASE WHEN abs({v}) < 1e300 THEN round({v}, 300)::float8 END)")
        })
    }

    /// |v| ≤ 1e100 rounded to 100 decimals, else NULL.
    fn tame(&mut self, n: Val) -> Val {
        if !n.nb.tame_needed() {
            return n;
        }
        let sql = self.with_value(&n.sql, |v| {
            format!("(CASE WHEN abs({v}) <= 1e100 THEN round({v}, 100) END)")
        });
        Val::num(sql, TAME_BOUNDS)
    }

    /// A number as int4, clamped to ±1e9 (NULL stays NULL).
    fn int4(&mut self, v: &Val) -> Result<String> {
        let n = self.num(v, false)?;
        Ok(self.with_value(&n.sql, |x| {
            format!(
                "((CASE WHEN {x} < -1000000000 THEN -1000000000 WHEN {x} > 1000000000 \
                 THEN 1000000000 ELSE trunc({x}) END)::int4)"
            )
        }))
    }

    // ----- expressions -------------------------------------------------------------------------

    fn expr(&mut self, e: &Expr) -> Result<Val> {
        Ok(match e {
            Expr::Int(v) => {
                let p = self.b.int(*v);
                let digits = if *v == 0 {
                    1.0
                } else {
                    (v.unsigned_abs() as f64).log10().floor() + 1.0
                };
                Val::num(format!("{p}::numeric"), Bounds::int(digits))
            }
            Expr::Float(v) => {
                let p = self.b.param(Param::Float(*v));
                Val::num(format!("{p}::numeric"), Bounds::float(*v))
            }
            Expr::Str(s) => Val::text(self.b.text(s.as_str())),
            Expr::Bool(v) => Val::bool(if *v { "TRUE" } else { "FALSE" }),
            Expr::Null => Val::new("NULL", Ty::Null),
            Expr::Field(f) => self.field(f),
            Expr::Neg(x) => {
                let v = self.expr(x)?;
                let n = self.num(&v, false)?;
                Val::num(format!("(- {})", n.sql), n.nb)
            }
            Expr::Not(x) => {
                let v = self.expr(x)?;
                Val::bool(format!("(NOT {})", self.boolean(&v)?))
            }
            Expr::And(xs) | Expr::Or(xs) => {
                let mut parts = Vec::with_capacity(xs.len());
                for x in xs {
                    let v = self.expr(x)?;
                    parts.push(self.boolean(&v)?);
                }
                let sep = if matches!(e, Expr::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                Val::bool(format!("({})", parts.join(sep)))
            }
            Expr::Arith(op, l, r) => {
                let l = self.expr(l)?;
                let r = self.expr(r)?;
                self.arith(*op, &l, &r)?
            }
            Expr::Cmp(op, l, r) => {
                let l = self.expr(l)?;
                let r = self.expr(r)?;
                self.compare(*op, &l, &r)?
            }
            Expr::Like {
                negated,
                ci,
                lhs,
                pat,
            } => self.like(*negated, *ci, lhs, pat)?,
            Expr::In { negated, lhs, list } => self.in_list(*negated, lhs, list)?,
            Expr::IsNull { negated, e } => {
                let v = self.expr(e)?;
                let s = if v.ty == Ty::Null {
                    "NULL::text".to_string()
                } else {
                    v.sql
                };
                let not = if *negated { " NOT" } else { "" };
                Val::bool(format!("({s} IS{not} NULL)"))
            }
            Expr::Call(f, args) => self.call(*f, args)?,
        })
    }

    fn field(&mut self, f: &Field) -> Val {
        let a = self.cx.event_alias;
        match f {
            Field::Column(c) => match c {
                Column::Event => Val::text(format!("{a}.event")),
                Column::DistinctId => Val::text(format!("{a}.distinct_id")),
                Column::Timestamp => Val::new(format!("{a}.\"timestamp\""), Ty::Timestamp),
                Column::PersonId => Val::text(format!(
                    "(SELECT pgi_pu.uuid::text FROM insights.persons pgi_pu WHERE pgi_pu.id = {a}.person_id)"
                )),
                Column::SessionId => Val::text(format!("{a}.session_id")),
                Column::ElementsChain => Val::text(format!("{a}.elements_chain")),
                Column::Uuid => Val::text(format!("({a}.uuid::text)")),
                Column::Group(i) => Val::text(format!("NULLIF({a}.group_{i}, '')")),
            },
            Field::Event(path) => self.json_get(format!("{a}.properties"), path),
            Field::Person(path) => {
                let base = match self.cx.person_props {
                    Some(p) => p.to_string(),
                    None => format!(
                        "(SELECT pgi_p.properties FROM insights.persons pgi_p WHERE pgi_p.id = {a}.person_id)"
                    ),
                };
                self.json_get(base, path)
            }
            Field::Group(i, path) => {
                let base = format!(
                    "(SELECT pgi_g.properties FROM insights.groups pgi_g WHERE pgi_g.project_id = {} \
                     AND pgi_g.group_type_index = {i} AND pgi_g.group_key = {a}.group_{i})",
                    self.cx.project_param
                );
                self.json_get(base, path)
            }
        }
    }

    fn json_get(&mut self, base: String, path: &[String]) -> Val {
        let sql = if let [key] = path {
            format!("({base} ->> {})", self.b.text(key.as_str()))
        } else {
            format!(
                "({base} #>> {})",
                self.b.param(Param::TextArray(path.to_vec()))
            )
        };
        Val::new(sql, Ty::Unknown)
    }

    fn arith(&mut self, op: Arith, l: &Val, r: &Val) -> Result<Val> {
        let mut a = self.num(l, false)?;
        let mut b = self.num(r, false)?;
        let mut nb = Bounds::arith(op, a.nb, b.nb);
        if nb.mag > MAG_LIMIT || nb.scale > MAG_LIMIT {
            a = self.tame(a);
            b = self.tame(b);
            nb = Bounds::arith(op, a.nb, b.nb);
        }
        let (x, y) = (&a.sql, &b.sql);
        let sql = match op {
            Arith::Add => format!("({x} + {y})"),
            Arith::Sub => format!("({x} - {y})"),
            Arith::Mul => format!("({x} * {y})"),
            Arith::Div => format!("({x} / NULLIF({y}, 0))"),
            Arith::Mod => format!("({x} % NULLIF({y}, 0))"),
        };
        Ok(Val::num(sql, nb))
    }

    /// A value converted to a comparison type.
    fn conv(&mut self, ty: Ty, v: &Val) -> Result<String> {
        Ok(match ty {
            Ty::Number => self.num(v, true)?.sql,
            Ty::Bool => self.boolean(v)?,
            Ty::Timestamp => self.time(v)?,
            Ty::Date => self.date(v)?,
            Ty::Text | Ty::Unknown | Ty::Null => self.text(v),
        })
    }

    fn compare(&mut self, op: Cmp, l: &Val, r: &Val) -> Result<Val> {
        if l.ty == Ty::Null || r.ty == Ty::Null {
            let other = if l.ty == Ty::Null { r } else { l };
            let o = if other.ty == Ty::Null {
                "NULL::text".to_string()
            } else {
                other.sql.clone()
            };
            return Ok(Val::bool(match op {
                Cmp::Eq => format!("({o} IS NULL)"),
                Cmp::Ne => format!("({o} IS NOT NULL)"),
                _ => format!("(CASE WHEN {o} IS NULL THEN NULL::boolean END)"),
            }));
        }
        let ty = self.cmp_type(l.ty, r.ty)?;
        let x = self.conv(ty, l)?;
        let y = self.conv(ty, r)?;
        let collate = if ty == Ty::Text && !matches!(op, Cmp::Eq | Cmp::Ne) {
            " COLLATE \"C\""
        } else {
            ""
        };
        Ok(Val::bool(format!("({x}{collate} {} {y})", op.sql())))
    }

    fn cmp_type(&self, a: Ty, b: Ty) -> Result<Ty> {
        cmp_type(a, b)
            .ok_or_else(|| self.err(format!("cannot compare {} with {}", ty_name(a), ty_name(b))))
    }

    fn like(&mut self, negated: bool, ci: bool, lhs: &Expr, pat: &Expr) -> Result<Val> {
        let escape = match pat {
            Expr::Str(s) => {
                let trailing = s.chars().rev().take_while(|c| *c == '\\').count();
                if trailing % 2 == 1 {
                    return Err(self.err("a LIKE pattern must not end with a lone backslash"));
                }
                ""
            }
            _ => " ESCAPE ''",
        };
        let l = self.expr(lhs)?;
        let p = self.expr(pat)?;
        let l = self.text(&l);
        let p = self.text(&p);
        let not = if negated { "NOT " } else { "" };
        let op = if ci { "ILIKE" } else { "LIKE" };
        Ok(Val::bool(format!("({l} {not}{op} {p}{escape})")))
    }

    fn in_list(&mut self, negated: bool, lhs: &Expr, list: &[Expr]) -> Result<Val> {
        let l = self.expr(lhs)?;
        if l.ty == Ty::Null {
            return Ok(Val::bool("NULL::boolean"));
        }
        let items: Vec<&Expr> = list.iter().filter(|e| **e != Expr::Null).collect();
        if items.is_empty() {
            // Only NULLs: nothing can match.
            return Ok(Val::bool(if negated {
                format!("({} IS NOT NULL)", l.sql)
            } else {
                format!("({} IS NULL AND FALSE)", l.sql)
            }));
        }
        let mut vals = Vec::with_capacity(items.len());
        let mut ty = l.ty;
        for item in items {
            let v = self.expr(item)?;
            ty = self.cmp_type(ty, v.ty)?;
            vals.push(v);
        }
        // Re-derive against the left side: cmp_type is not associative for every mix.
        for v in &vals {
            self.cmp_type(l.ty, v.ty)?;
        }
        let x = self.conv(ty, &l)?;
        let mut ys = Vec::with_capacity(vals.len());
        for v in &vals {
            ys.push(self.conv(ty, v)?);
        }
        let not = if negated { "NOT " } else { "" };
        Ok(Val::bool(format!("({x} {not}IN ({}))", ys.join(", "))))
    }

    /// Compile `args` and convert them to their unified type.
    fn unified(&mut self, args: &[Expr]) -> Result<(Vec<Val>, Ty)> {
        let mut vals = Vec::with_capacity(args.len());
        for a in args {
            vals.push(self.expr(a)?);
        }
        let tys: Vec<Ty> = vals.iter().map(|v| v.ty).collect();
        let ty = unify(&tys);
        let mut out = Vec::with_capacity(vals.len());
        for v in &vals {
            out.push(self.convert(v, ty)?);
        }
        Ok((out, ty))
    }

    fn result(&self, sql: String, ty: Ty, vals: &[Val]) -> Val {
        let nb = vals
            .iter()
            .map(|v| v.nb)
            .reduce(Bounds::join)
            .unwrap_or(Bounds::int(1.0));
        Val { sql, ty, nb }
    }

    fn arg_text(&mut self, e: &Expr) -> Result<String> {
        let v = self.expr(e)?;
        Ok(self.text(&v))
    }

    fn arg_num(&mut self, e: &Expr, explicit: bool) -> Result<Val> {
        let v = self.expr(e)?;
        self.num(&v, explicit)
    }

    fn arg_time(&mut self, e: &Expr) -> Result<String> {
        let v = self.expr(e)?;
        self.time(&v)
    }

    fn arg_date(&mut self, e: &Expr) -> Result<String> {
        let v = self.expr(e)?;
        self.date(&v)
    }

    fn lit_int(&self, e: &Expr, what: &str, lo: i64, hi: i64) -> Result<i64> {
        match e {
            Expr::Int(v) if (lo..=hi).contains(v) => Ok(*v),
            _ => Err(self.err(format!(
                "{what} must be an integer literal from {lo} to {hi}"
            ))),
        }
    }

    fn call(&mut self, f: Func, args: &[Expr]) -> Result<Val> {
        Ok(match f {
            Func::ToString => Val::text(self.arg_text(&args[0])?),
            Func::ToInt => {
                let n = self.arg_num(&args[0], true)?;
                Val::num(format!("trunc({})", n.sql), Bounds::int(n.nb.mag.max(1.0)))
            }
            Func::ToFloat => self.arg_num(&args[0], true)?,
            Func::Lower => Val::text(format!("lower({})", self.arg_text(&args[0])?)),
            Func::Upper => Val::text(format!("upper({})", self.arg_text(&args[0])?)),
            Func::Trim => Val::text(format!("btrim({})", self.arg_text(&args[0])?)),
            Func::Length => Val::num(
                format!("(char_length({})::numeric)", self.arg_text(&args[0])?),
                Bounds::int(10.0),
            ),
            Func::Concat => {
                let mut parts = Vec::with_capacity(args.len());
                for a in args {
                    parts.push(self.arg_text(a)?);
                }
                Val::text(format!("concat({})", parts.join(", ")))
            }
            Func::Coalesce => {
                let (vals, ty) = self.unified(args)?;
                let sql = vals
                    .iter()
                    .map(|v| v.sql.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                self.result(format!("coalesce({sql})"), ty, &vals)
            }
            Func::If | Func::MultiIf => {
                let n = args.len();
                let mut conds = Vec::with_capacity(n / 2);
                for pair in args[..n - 1].chunks(2) {
                    let c = self.expr(&pair[0])?;
                    conds.push(self.boolean(&c)?);
                }
                let branches: Vec<Expr> = args[..n - 1]
                    .chunks(2)
                    .map(|p| p[1].clone())
                    .chain(std::iter::once(args[n - 1].clone()))
                    .collect();
                let (vals, ty) = self.unified(&branches)?;
                let mut sql = String::from("(CASE");
                for (c, v) in conds.iter().zip(&vals) {
                    sql.push_str(&format!(" WHEN {c} THEN {}", v.sql));
                }
                sql.push_str(&format!(" ELSE {} END)", vals[vals.len() - 1].sql));
                self.result(sql, ty, &vals)
            }
            Func::Least | Func::Greatest => {
                let (vals, ty) = self.unified(args)?;
                let name = if f == Func::Least {
                    "least"
                } else {
                    "greatest"
                };
                let collate = if matches!(ty, Ty::Text | Ty::Unknown) {
                    " COLLATE \"C\""
                } else {
                    ""
                };
                let mut parts: Vec<String> = vals.iter().map(|v| v.sql.clone()).collect();
                parts[0].push_str(collate);
                self.result(format!("{name}({})", parts.join(", ")), ty, &vals)
            }
            Func::Substring => {
                let s = self.arg_text(&args[0])?;
                let o = self.expr(&args[1])?;
                let o = self.int4(&o)?;
                match args.get(2) {
                    None => Val::text(format!("substr({s}, {o})")),
                    Some(len) => {
                        let l = self.expr(len)?;
                        let l = self.int4(&l)?;
                        Val::text(format!("substr({s}, {o}, greatest({l}, 0))"))
                    }
                }
            }
            Func::ReplaceAll => {
                let s = self.arg_text(&args[0])?;
                let from = self.arg_text(&args[1])?;
                let to = self.arg_text(&args[2])?;
                Val::text(format!("replace({s}, {from}, {to})"))
            }
            Func::Round => {
                let digits = match args.get(1) {
                    None => 0,
                    Some(e) => self.lit_int(e, "round's precision", -30, 30)?,
                };
                let n = self.arg_num(&args[0], false)?;
                let d = self.b.int(digits);
                Val::num(
                    format!("round({}, {d}::int4)", n.sql),
                    Bounds::scaled(n.nb.mag + 1.0, digits.max(0) as f64),
                )
            }
            Func::Floor | Func::Ceil => {
                let n = self.arg_num(&args[0], false)?;
                let name = if f == Func::Floor { "floor" } else { "ceil" };
                Val::num(format!("{name}({})", n.sql), Bounds::int(n.nb.mag + 1.0))
            }
            Func::Abs => {
                let n = self.arg_num(&args[0], false)?;
                Val::num(format!("abs({})", n.sql), n.nb)
            }
            Func::ToDate => Val::new(self.arg_date(&args[0])?, Ty::Date),
            Func::ToDateTime => {
                let v = self.expr(&args[0])?;
                Val::new(self.time(&v)?, Ty::Timestamp)
            }
            Func::ToStartOfDay => {
                let t = self.arg_time(&args[0])?;
                let tz = self.tz();
                Val::new(format!("date_trunc('day', {t}, {tz})"), Ty::Timestamp)
            }
            Func::ToStartOfWeek => {
                let monday = match args.get(1) {
                    None => self.cx.pt.week_start == 1,
                    Some(e) => self.lit_int(e, "toStartOfWeek's mode", 0, 9)? % 2 == 1,
                };
                let d = self.arg_date(&args[0])?;
                Val::new(
                    if monday {
                        format!("(date_trunc('week', {d}::timestamp)::date)")
                    } else {
                        format!("(date_trunc('week', ({d} + 1)::timestamp)::date - 1)")
                    },
                    Ty::Date,
                )
            }
            Func::ToStartOfMonth => {
                let d = self.arg_date(&args[0])?;
                Val::new(
                    format!("(date_trunc('month', {d}::timestamp)::date)"),
                    Ty::Date,
                )
            }
            Func::Now => Val::new("now()", Ty::Timestamp),
            Func::Today => {
                let tz = self.tz();
                Val::new(format!("((now() AT TIME ZONE {tz})::date)"), Ty::Date)
            }
            Func::DateDiff => self.date_diff(args)?,
            Func::Domain | Func::Path => {
                let s = self.arg_text(&args[0])?;
                let re = if f == Func::Domain {
                    DOMAIN_RE
                } else {
                    PATH_RE
                };
                Val::text(format!("regexp_replace({s}, '{re}', '\\1')"))
            }
            Func::Position => {
                let s = self.arg_text(&args[0])?;
                let needle = self.arg_text(&args[1])?;
                Val::num(
                    format!("(strpos({s}, {needle})::numeric)"),
                    Bounds::int(10.0),
                )
            }
            Func::StartsWith => {
                let s = self.arg_text(&args[0])?;
                let p = self.arg_text(&args[1])?;
                Val::bool(format!("starts_with({s}, {p})"))
            }
            Func::EndsWith => {
                let s = self.arg_text(&args[0])?;
                let p = self.arg_text(&args[1])?;
                Val::bool(format!("starts_with(reverse({s}), reverse({p}))"))
            }
            Func::Match => {
                let Expr::Str(pattern) = &args[1] else {
                    return Err(self.err("match's pattern must be a string literal"));
                };
                let s = self.arg_text(&args[0])?;
                let p = self.b.text(pattern.as_str());
                Val::bool(format!("({s} ~ {p})"))
            }
            Func::Empty | Func::NotEmpty => {
                let s = self.arg_text(&args[0])?;
                let op = if f == Func::Empty { "=" } else { "<>" };
                Val::bool(format!("({s} {op} '')"))
            }
            // Parsed into Expr::And / Or / Not.
            Func::And | Func::Or | Func::Not => {
                return Err(self.err("internal: logical function not lowered"));
            }
        })
    }

    fn date_diff(&mut self, args: &[Expr]) -> Result<Val> {
        let Expr::Str(raw) = &args[0] else {
            return Err(self.err("dateDiff's unit must be a string literal"));
        };
        let lower = raw.to_ascii_lowercase();
        // Only fixed unit names ever reach the SQL, never the user's spelling.
        let unit: &'static str = match lower.strip_suffix('s').unwrap_or(&lower) {
            "second" => "second",
            "minute" => "minute",
            "hour" => "hour",
            "day" => "day",
            "week" => "week",
            "month" => "month",
            "quarter" => "quarter",
            "year" => "year",
            _ => {
                return Err(self.err(format!(
                    "dateDiff unit '{}' is not supported (second, minute, hour, day, week, \
                     month, quarter, year)",
                    shown(raw)
                )));
            }
        };
        let a = self.arg_time(&args[1])?;
        let b = self.arg_time(&args[2])?;
        let tz = self.tz();
        let sql = match unit {
            "second" | "minute" | "hour" => {
                let secs = match unit {
                    "second" => "1",
                    "minute" => "60",
                    _ => "3600",
                };
                format!(
                    "div(extract(epoch FROM date_trunc('{unit}', {b}, {tz})) \
                     - extract(epoch FROM date_trunc('{unit}', {a}, {tz})), {secs})"
                )
            }
            "day" => format!(
                "((({b} AT TIME ZONE {tz})::date - ({a} AT TIME ZONE {tz})::date)::numeric)"
            ),
            "week" => format!(
                "(((date_trunc('week', {b} AT TIME ZONE {tz})::date \
                 - date_trunc('week', {a} AT TIME ZONE {tz})::date) / 7)::numeric)"
            ),
            _ => {
                let per_year = match unit {
                    "month" => "12",
                    "quarter" => "4",
                    _ => "1",
                };
                let mut index = |t: &str| {
                    let local = format!("({t} AT TIME ZONE {tz})");
                    self.with_value(&local, |v| {
                        if unit == "year" {
                            format!("extract(year FROM {v})")
                        } else {
                            format!(
                                "(extract(year FROM {v}) * {per_year} + extract({unit} FROM {v}))"
                            )
                        }
                    })
                };
                let ib = index(&b);
                let ia = index(&a);
                format!("({ib} - {ia})")
            }
        };
        Ok(Val::num(sql, EPOCH_BOUNDS))
    }
}

fn ty_name(t: Ty) -> &'static str {
    match t {
        Ty::Text => "text",
        Ty::Unknown => "a property",
        Ty::Number => "a number",
        Ty::Bool => "a boolean",
        Ty::Timestamp => "a timestamp",
        Ty::Date => "a date",
        Ty::Null => "null",
    }
}

#[cfg(test)]
#[path = "hogql_tests.rs"]
mod tests;
