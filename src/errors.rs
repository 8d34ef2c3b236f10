//! Raising client errors with the right SQLSTATE.
//!
//! `error!()` and panics raise XX000, which PostgREST turns into HTTP 500; a client mistake must
//! be a 22xxx error instead. The HTTP layer reads the field name back from the DETAIL line
//! (`field: <attr>`) to fill PostHog's `attr`.

use pg_insights_core::{QueryError, SqlState};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

fn code(state: SqlState) -> PgSqlErrorCode {
    match state {
        SqlState::InvalidParameter => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        SqlState::InvalidText => PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
        SqlState::InvalidDatetime => PgSqlErrorCode::ERRCODE_INVALID_DATETIME_FORMAT,
    }
}

/// Raise a client error; never returns.
pub fn raise(state: SqlState, message: &str, attr: Option<&str>, hint: Option<&str>) -> ! {
    let mut report = ErrorReport::new(code(state), message.to_string(), "pg_insights");
    if let Some(a) = attr {
        report = report.set_detail(format!("field: {a}"));
    }
    if let Some(h) = hint {
        report = report.set_hint(h);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// Raise a core [`QueryError`] as a client error (22023/22007/22P02 with its attr).
pub fn raise_query_error(e: &QueryError) -> ! {
    raise(e.state, &e.detail, e.attr.as_deref(), None)
}
