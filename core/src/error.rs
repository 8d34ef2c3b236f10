//! One error type for everything a client can get wrong.
//!
//! Each error knows its SQLSTATE (so PostgREST and SQL users see a 22xxx code, never XX000) and
//! PostHog's `attr` (the offending field), which the HTTP layer puts into
//! `{"type":"validation_error","code":"invalid_input","detail":…,"attr":…}`.

use std::fmt;

/// The SQLSTATE class of a client error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlState {
    /// 22023 invalid_parameter_value: a value of the right type that is not allowed.
    InvalidParameter,
    /// 22007 invalid_datetime_format: a date string that does not parse.
    InvalidDatetime,
    /// 22P02 invalid_text_representation: malformed JSON or a value of the wrong type.
    InvalidText,
}

impl SqlState {
    /// The five-character SQLSTATE code.
    pub fn code(self) -> &'static str {
        match self {
            SqlState::InvalidParameter => "22023",
            SqlState::InvalidDatetime => "22007",
            SqlState::InvalidText => "22P02",
        }
    }
}

/// A client error: what was wrong (`detail`), where (`attr`), and its SQLSTATE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub state: SqlState,
    pub detail: String,
    pub attr: Option<String>,
}

impl QueryError {
    /// A bad parameter value (22023).
    pub fn invalid(attr: impl Into<Option<String>>, detail: impl Into<String>) -> Self {
        QueryError {
            state: SqlState::InvalidParameter,
            detail: detail.into(),
            attr: attr.into(),
        }
    }

    /// A date string that does not parse (22007).
    pub fn bad_date(attr: &str, detail: impl Into<String>) -> Self {
        QueryError {
            state: SqlState::InvalidDatetime,
            detail: detail.into(),
            attr: Some(attr.to_string()),
        }
    }

    /// Malformed JSON or a value of the wrong JSON type (22P02).
    pub fn bad_json(attr: impl Into<Option<String>>, detail: impl Into<String>) -> Self {
        QueryError {
            state: SqlState::InvalidText,
            detail: detail.into(),
            attr: attr.into(),
        }
    }

    /// Prefix the attr with a parent field, PostHog style (`a__b`).
    pub fn within(mut self, parent: &str) -> Self {
        self.attr = Some(match self.attr {
            Some(a) => format!("{parent}__{a}"),
            None => parent.to_string(),
        });
        self
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for QueryError {}

pub type Result<T> = std::result::Result<T, QueryError>;
