//! The `tokenwarden` binary.
fn main() {}
