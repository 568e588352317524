//! How requests reach a server: the HTTP client every request goes through (timeouts, the
//! proxy decision, the body cap) and the URL rules (no plain `http://` but to loopback).

pub(crate) mod http;
pub(crate) mod proxy;

pub use proxy::ProxyConfig;
