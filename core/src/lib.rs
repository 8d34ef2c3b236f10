//! Pure-Rust core of pg_insights.
//!
//! Everything here is plain Rust with plain `#[test]`s: no Postgres, no pgrx. The extension crate
//! (`pg_insights`) is a thin adapter that parses SQL arguments, runs the SQL this crate compiles
//! through SPI, and feeds the rows back into the engines here.
//!
//! Layout, by layer:
//! - [`error`]: the one error type, carrying a SQLSTATE class and PostHog's `attr`.
//! - [`model`]: one typed model for legacy `filters` JSON and query nodes (`FunnelsQuery`, …).
//! - [`compile`]: the shared front end: SQL parameters, dates, property filters, HogQL, and the
//!   project context every planner uses.
//! - [`engines`]: one module per insight kind (funnels, trends, retention, stickiness,
//!   lifecycle, paths), each planning SQL and rendering PostHog's response.

pub mod actor_periods;
pub mod compile;
pub mod dense;
pub mod elements;
pub mod engines;
pub mod error;
pub mod model;
pub mod par;
pub mod segments;

pub use error::{QueryError, SqlState};
