//! One module per insight kind, each planning SQL over the shared front end ([`crate::compile`])
//! and rendering PostHog's result: funnels (with the per-actor engine and correlation), trends
//! (with actors and CSV export), retention, stickiness, lifecycle and paths.

pub mod funnels;
pub mod lifecycle;
pub mod paths;
pub mod retention;
pub mod stickiness;
pub mod trends;
