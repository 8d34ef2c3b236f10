//! The SQL entry points of each insight kind (`insights.<kind>`, `<kind>_json`, `<kind>_actors`
//! and their aggregates), thin adapters over `pg_insights_core::engines`: parse the arguments,
//! plan in the core, run the planned SQL through SPI, render in the core.

pub(crate) mod actors;
pub(crate) mod correlation;
pub(crate) mod funnels;
pub(crate) mod lifecycle;
pub(crate) mod paths;
pub(crate) mod retention;
pub(crate) mod stickiness;
pub(crate) mod trends;
