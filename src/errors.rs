//! Raising client errors with the right SQLSTATE.
//!
//! `error!()` and panics raise XX000, which PostgREST turns into HTTP 500; a client mistake must
//! be a 22xxx error instead. The HTTP layer reads the field name back from the DETAIL line
//! (`field: <attr>`) to fill PostHog's `attr`.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

/// The SQLSTATE classes the extension raises for bad input.
#[derive(Debug, Clone, Copy)]
pub enum ClientError {
    /// 22023 invalid_parameter_value
    InvalidParameter,
    /// 22P02 invalid_text_representation (malformed JSON, undecodable bodies)
    InvalidText,
    /// 22007 invalid_datetime_format
    InvalidDatetime,
}

impl ClientError {
    fn code(self) -> PgSqlErrorCode {
        match self {
            ClientError::InvalidParameter => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            ClientError::InvalidText => PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
            ClientError::InvalidDatetime => PgSqlErrorCode::ERRCODE_INVALID_DATETIME_FORMAT,
        }
    }
}

/// Raise a client error; never returns.
pub fn raise(kind: ClientError, message: &str, attr: Option<&str>, hint: Option<&str>) -> ! {
    let mut report = ErrorReport::new(kind.code(), message.to_string(), "pg_insights");
    if let Some(a) = attr {
        report = report.set_detail(format!("field: {a}"));
    }
    if let Some(h) = hint {
        report = report.set_hint(h);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}
