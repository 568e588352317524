//! How fast requests may go: a fixed request rate ([`RateLimit`] and its GCRA step) and the rate
//! budget a fleet shares ([`SharedBudget`]).

mod budget;
pub(crate) mod ratelimit;

pub use budget::SharedBudget;
pub use ratelimit::RateLimit;
