//! Test hooks (feature `test-util`): what a test of code built on tokenwarden needs to make the
//! library deterministic, kept out of the public API otherwise.

pub use crate::clock::{FixedJitter, RandomJitter};
