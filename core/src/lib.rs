//! Pure-Rust core of pg_insights.
//!
//! Everything here is plain Rust with plain `#[test]`s: no Postgres, no pgrx. The extension crate
//! (`pg_insights`) is a thin adapter that parses SQL arguments, runs the SQL this crate compiles
//! through SPI, and feeds the rows back into the engines here.
//!
//! Layout (shared front end first, then one module per insight kind):
//! - [`error`]: the one error type, carrying a SQLSTATE class and PostHog's `attr`.
//! - [`sql`]: the parameter builder: user values only ever become `$n` placeholders.
//! - [`dates`]: PostHog's relative/absolute date grammar, range snapping, interval buckets.
//! - [`properties`]: property filters (event, person, cohort, element, group, …) compiled to SQL.
//! - [`hogql`]: the documented safe subset of HogQL expressions, compiled to SQL.
//! - [`query`]: one typed model for legacy `filters` JSON and query nodes (`FunnelsQuery`, …).
//! - [`funnel_engine`]: the per-actor funnel state machine (ordered, strict, unordered).
//! - [`funnels`]: funnel planning (query → SQL + engine config) and PostHog response rendering.
//! - [`correlation`]: funnel correlation (odds ratios of events and properties, §8.3).
//! - [`series`]: what the per-actor engines share (filter context, series conditions, actor).
//! - [`stickiness`], [`lifecycle`]: the per-actor period insights.
//! - [`paths`]: path edges (SQL reads each person's events; sessions and edges in Rust).

pub mod correlation;
pub mod dates;
pub mod error;
pub mod funnel_engine;
pub mod funnels;
pub mod hogql;
pub mod lifecycle;
pub mod paths;
pub mod properties;
pub mod query;
pub mod retention;
pub mod series;
pub mod sql;
pub mod stickiness;
pub mod trends;
pub mod trends_actors;
pub mod trends_export;

pub use error::{QueryError, SqlState};
