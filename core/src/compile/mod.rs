//! The shared front end every engine compiles through: the SQL parameter builder ([`sql`]),
//! PostHog's dates and buckets ([`dates`]), property filters ([`properties`]), the safe HogQL
//! subset ([`hogql`]), and the project context and series helpers ([`context`]).

pub mod context;
pub mod dates;
pub mod hogql;
pub mod properties;
pub mod sql;
