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
    Json(serde_json::Value),
}

impl Param {
    /// A `timestamptz` parameter for an instant.
    pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> Param {
        Param::Timestamp(t.timestamp_micros())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_and_typed() {
        let mut b = SqlBuilder::new();
        assert_eq!(b.text("a"), "$1::text");
        assert_eq!(b.int(7), "$2::int8");
        assert_eq!(b.text("a"), "$1::text", "an identical value is reused");
        assert_eq!(b.param(Param::TextArray(vec!["x".into()])), "$3::text[]");
        assert_eq!(b.params.len(), 3);
    }

    #[test]
    fn quote_ident_doubles_quotes() {
        assert_eq!(quote_ident(r#"a"b; drop"#), r#""a""b; drop""#);
    }
}
