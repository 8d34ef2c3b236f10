//! The SQL builder: the only way compiled fragments receive user values.
//!
//! A value is appended with [`SqlBuilder::param`], which stores it and writes `$n` into the SQL.
//! Nothing a user sends is ever formatted into the SQL text itself; identifiers that come from
//! code (table and column names) are fixed strings, and the rare identifier that comes from data
//! goes through [`quote_ident`].

/// A bound parameter value. The adapter maps each variant to a Postgres datum of the type named
/// by [`Param::pg_type`], and the builder writes the placeholder with an explicit cast, so the
/// planner never has to guess (`$3::text[]`).
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    TextArray(Vec<String>),
    IntArray(Vec<i64>),
    /// Microseconds since the Unix epoch, UTC.
    Timestamp(i64),
    /// A calendar date: year, month, day (a `date` constant the planner can fold, unlike a
    /// `text` parameter cast to `date`, whose cast depends on `DateStyle`).
    Date(i32, u8, u8),
    Json(serde_json::Value),
}

impl Param {
    /// A `timestamptz` parameter for an instant.
    pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> Param {
        Param::Timestamp(t.timestamp_micros())
    }

    /// A `date` parameter for a calendar day.
    pub fn date(d: chrono::NaiveDate) -> Param {
        use chrono::Datelike;
        Param::Date(d.year(), d.month() as u8, d.day() as u8)
    }

    /// The SQL type the placeholder is cast to.
    pub fn pg_type(&self) -> &'static str {
        match self {
            Param::Text(_) => "text",
            Param::Int(_) => "int8",
            Param::Float(_) => "float8",
            Param::Bool(_) => "bool",
            Param::TextArray(_) => "text[]",
            Param::IntArray(_) => "int8[]",
            Param::Timestamp(_) => "timestamptz",
            Param::Date(..) => "date",
            Param::Json(_) => "jsonb",
        }
    }
}

/// SQL text plus its parameters, built together so `$n` always matches `params[n-1]`.
#[derive(Debug, Default, Clone)]
pub struct SqlBuilder {
    pub params: Vec<Param>,
}

impl SqlBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The statement with only the parameters it references, renumbered in order. For statements
    /// assembled from parts bound up front, where a branch may not use every part (a trends
    /// statement of active users reads its own window start, not the range start).
    pub fn finish(self, sql: &str) -> (String, Vec<Param>) {
        let mut used = vec![false; self.params.len()];
        map_placeholders(sql, used.len(), |n| {
            used[n - 1] = true;
            n
        });
        if used.iter().all(|&u| u) {
            return (sql.to_string(), self.params);
        }
        let mut renumber = vec![0; self.params.len()];
        let mut params = Vec::new();
        for (i, p) in self.params.into_iter().enumerate() {
            if used[i] {
                params.push(p);
                renumber[i] = params.len();
            }
        }
        let out = map_placeholders(sql, renumber.len(), |n| renumber[n - 1]);
        (out, params)
    }

    /// Store a value and return its typed placeholder, e.g. `$4::text`.
    pub fn param(&mut self, p: Param) -> String {
        let ty = p.pg_type();
        // Re-use an identical earlier value: keeps statements short when a value repeats.
        if let Some(i) = self.params.iter().position(|q| q == &p) {
            return format!("${}::{}", i + 1, ty);
        }
        self.params.push(p);
        format!("${}::{}", self.params.len(), ty)
    }

    pub fn text(&mut self, s: impl Into<String>) -> String {
        self.param(Param::Text(s.into()))
    }

    pub fn int(&mut self, v: i64) -> String {
        self.param(Param::Int(v))
    }
}

/// Quote an identifier the way Postgres' `quote_ident` does (always quoted, `"` doubled).
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// `sql` with every typed placeholder `$n::` of a parameter (1 ≤ n ≤ `count`) renumbered to
/// `$f(n)::`; any other `$` text is kept.
fn map_placeholders(sql: &str, count: usize, mut f: impl FnMut(usize) -> usize) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        let n: usize = rest[at + 1..at + 1 + digits].parse().unwrap_or(0);
        if rest[at + 1 + digits..].starts_with("::") && (1..=count).contains(&n) {
            out.push_str(&format!("${}", f(n)));
        } else {
            out.push_str(&rest[at..at + 1 + digits]);
        }
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
#[path = "sql_tests.rs"]
mod tests;
