//! Where and how to export: `--otlp-endpoint` and the standard `OTEL_EXPORTER_OTLP_*` variables,
//! read as the OpenTelemetry specification defines them (OTLP exporter configuration).
//!
//! - `OTEL_EXPORTER_OTLP_ENDPOINT` is a base URL: `/v1/traces` and `/v1/metrics` are appended to
//!   its path. `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `..._METRICS_ENDPOINT` are used as they are.
//!   `--otlp-endpoint` is a base URL like the first and wins over all three.
//! - `OTEL_EXPORTER_OTLP_HEADERS` (and `..._TRACES_HEADERS`, `..._METRICS_HEADERS`, which win for
//!   their signal): `key=value` pairs separated by commas, values percent-decoded.
//! - `OTEL_EXPORTER_OTLP_TIMEOUT` (and the per-signal ones): milliseconds, default 10000.
//! - `OTEL_EXPORTER_OTLP_PROTOCOL` (and the per-signal ones): only `http/protobuf` (the default)
//!   is spoken; `grpc` and `http/json` are refused with a message saying so.
//! - `OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none`, `OTEL_METRICS_EXPORTER=none` turn
//!   export (or one signal) off.
//!
//! A signal is exported only when an endpoint for it is given (the flag, the base variable or its
//! own variable): tokenwarden does not send to `localhost:4318` unasked. Header values are
//! secrets (they often carry an API key): no message, error or Debug output shows one.

use http::{HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;
use url::Url;

/// The export timeout when no variable sets one (the specification's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where one signal (traces or metrics) goes.
#[derive(Clone)]
pub struct SignalTarget {
    /// The full URL the export is POSTed to.
    pub endpoint: Url,
    /// Extra headers (values are secrets: never shown).
    pub headers: HeaderMap,
    /// How long one export may take.
    pub timeout: Duration,
}

impl std::fmt::Debug for SignalTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalTarget")
            .field("endpoint", &shown_url(&self.endpoint))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What to export where.
#[derive(Debug, Clone)]
pub struct OtlpSettings {
    /// Spans, if exported.
    pub traces: Option<SignalTarget>,
    /// Metrics, if exported.
    pub metrics: Option<SignalTarget>,
}

/// A setting that cannot be used; the message names the variable, never a header value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

impl OtlpSettings {
    /// The settings from `--otlp-endpoint` (`flag`) and the variables `var` looks up (`None`
    /// for a variable that is unset or empty); `Ok(None)`: nothing to export.
    ///
    /// # Errors
    /// An endpoint that is no http(s) URL, a malformed header list or timeout, or a protocol
    /// other than `http/protobuf`.
    pub fn resolve(
        flag: Option<&str>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<OtlpSettings>, SettingsError> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let base = match flag {
            Some(f) => Some(("--otlp-endpoint", f.to_string())),
            None => var("OTEL_EXPORTER_OTLP_ENDPOINT").map(|v| ("OTEL_EXPORTER_OTLP_ENDPOINT", v)),
        };
        let signal = |name: &str, path: &str| -> Result<Option<SignalTarget>, SettingsError> {
            let upper = name.to_ascii_uppercase();
            if var(&format!("OTEL_{upper}_EXPORTER"))
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("none"))
            {
                return Ok(None);
            }
            let own_var = format!("OTEL_EXPORTER_OTLP_{upper}_ENDPOINT");
            let endpoint = match (&base, flag, var(&own_var)) {
                (Some((what, b)), Some(_), _) | (Some((what, b)), None, None) => {
                    with_signal_path(&parse_url(what, b)?, path)
                }
                (_, None, Some(own)) => parse_url(&own_var, &own)?,
                (None, _, _) => return Ok(None),
            };
            let protocol_var = format!("OTEL_EXPORTER_OTLP_{upper}_PROTOCOL");
            let (pvar, protocol) = match var(&protocol_var) {
                Some(p) => (protocol_var, p),
                None => (
                    "OTEL_EXPORTER_OTLP_PROTOCOL".to_string(),
                    var("OTEL_EXPORTER_OTLP_PROTOCOL").unwrap_or_else(|| "http/protobuf".into()),
                ),
            };
            match protocol.trim() {
                "http/protobuf" => {}
                "grpc" => {
                    return Err(SettingsError(format!(
                        "{pvar}=grpc: tokenwarden exports OTLP over HTTP only; set {pvar}=http/protobuf and point the endpoint at the collector's OTLP/HTTP port (4318 by default)"
                    )));
                }
                other => {
                    return Err(SettingsError(format!(
                        "{pvar}={other}: tokenwarden exports OTLP as http/protobuf only; set {pvar}=http/protobuf"
                    )));
                }
            }
            let headers_var = format!("OTEL_EXPORTER_OTLP_{upper}_HEADERS");
            let headers = match var(&headers_var) {
                Some(h) => parse_headers(&headers_var, &h)?,
                None => match var("OTEL_EXPORTER_OTLP_HEADERS") {
                    Some(h) => parse_headers("OTEL_EXPORTER_OTLP_HEADERS", &h)?,
                    None => HeaderMap::new(),
                },
            };
            let timeout_var = format!("OTEL_EXPORTER_OTLP_{upper}_TIMEOUT");
            let timeout = match var(&timeout_var) {
                Some(t) => parse_timeout(&timeout_var, &t)?,
                None => match var("OTEL_EXPORTER_OTLP_TIMEOUT") {
                    Some(t) => parse_timeout("OTEL_EXPORTER_OTLP_TIMEOUT", &t)?,
                    None => DEFAULT_TIMEOUT,
                },
            };
            Ok(Some(SignalTarget {
                endpoint,
                headers,
                timeout,
            }))
        };
        let traces = signal("traces", "v1/traces")?;
        let metrics = signal("metrics", "v1/metrics")?;
        Ok((traces.is_some() || metrics.is_some()).then_some(OtlpSettings { traces, metrics }))
    }
}

/// An endpoint URL: http or https, with a host.
fn parse_url(what: &str, text: &str) -> Result<Url, SettingsError> {
    let url = Url::parse(text.trim()).map_err(|e| {
        SettingsError(format!(
            "{what}: not a URL ({e}); give one like http://localhost:4318"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(SettingsError(format!(
            "{what}: {} is not an http(s) URL with a host; give one like http://localhost:4318",
            shown_url(&url)
        )));
    }
    Ok(url)
}

/// `base` with `/v1/traces` (or metrics) appended to its path, as the specification says for
/// `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn with_signal_path(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!("{}/{path}", base.path().trim_end_matches('/'));
    url.set_path(&joined);
    url
}

/// `key=value,key2=value2` (W3C Baggage's format, values percent-decoded).
fn parse_headers(what: &str, text: &str) -> Result<HeaderMap, SettingsError> {
    let mut map = HeaderMap::new();
    for (i, entry) in text.split(',').enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let Some((key, value)) = entry.split_once('=') else {
            return Err(SettingsError(format!(
                "{what}: entry {} has no '=' (the format is key=value,key2=value2)",
                i + 1
            )));
        };
        let key = key.trim();
        let name = HeaderName::from_bytes(key.as_bytes()).map_err(|_| {
            SettingsError(format!(
                "{what}: entry {} has no valid header name before its '='",
                i + 1
            ))
        })?;
        let decoded = percent_encoding::percent_decode_str(value.trim()).decode_utf8_lossy();
        let mut value = HeaderValue::from_str(&decoded).map_err(|_| {
            SettingsError(format!(
                "{what}: the value of {name} is not a valid header value"
            ))
        })?;
        value.set_sensitive(true);
        map.append(name, value);
    }
    Ok(map)
}

fn parse_timeout(what: &str, text: &str) -> Result<Duration, SettingsError> {
    text.trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| {
            SettingsError(format!(
                "{what}={}: not a whole number of milliseconds",
                text.trim()
            ))
        })
}

/// A URL as messages show it: scheme, host, port and path (no user, password or query, which
/// could hold a key).
pub(crate) fn shown_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(
        flag: Option<&str>,
        vars: &[(&str, &str)],
    ) -> Result<Option<OtlpSettings>, SettingsError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        OtlpSettings::resolve(flag, |k| vars.get(k).cloned())
    }

    #[test]
    fn nothing_configured_exports_nothing() {
        assert!(resolve(None, &[]).unwrap().is_none());
        assert!(
            resolve(None, &[("OTEL_EXPORTER_OTLP_HEADERS", "a=b")])
                .unwrap()
                .is_none()
        );
        assert!(
            resolve(Some("http://c:4318"), &[("OTEL_SDK_DISABLED", "true")])
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_base_endpoint_gets_signal_paths_and_signal_endpoints_are_used_as_they_are() {
        let s = resolve(None, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")])
            .unwrap()
            .unwrap();
        assert_eq!(
            s.traces.unwrap().endpoint.as_str(),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            s.metrics.unwrap().endpoint.as_str(),
            "http://c:4318/v1/metrics"
        );
        let s = resolve(None, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c/base/")])
            .unwrap()
            .unwrap();
        assert_eq!(
            s.traces.unwrap().endpoint.as_str(),
            "https://c/base/v1/traces"
        );
        let s = resolve(
            None,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:1/custom"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.traces.unwrap().endpoint.as_str(), "http://t:1/custom");
        assert_eq!(
            s.metrics.unwrap().endpoint.as_str(),
            "http://c:4318/v1/metrics"
        );
        // Only one signal's endpoint: only that signal.
        let s = resolve(
            None,
            &[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:1/x")],
        )
        .unwrap()
        .unwrap();
        assert!(s.traces.is_none());
        assert_eq!(s.metrics.unwrap().endpoint.as_str(), "http://m:1/x");
    }

    #[test]
    fn the_flag_wins_over_every_endpoint_variable() {
        let s = resolve(
            Some("http://flag:4318"),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:1/custom"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            s.traces.unwrap().endpoint.as_str(),
            "http://flag:4318/v1/traces"
        );
        assert_eq!(
            s.metrics.unwrap().endpoint.as_str(),
            "http://flag:4318/v1/metrics"
        );
    }

    #[test]
    fn headers_timeouts_and_protocols() {
        let s = resolve(
            Some("http://c:4318"),
            &[
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "api-key=s%3Dcr%2Cet, x-team = a b",
                ),
                ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "only=metrics"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
                ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "700"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ],
        )
        .unwrap()
        .unwrap();
        let t = s.traces.unwrap();
        assert_eq!(t.headers["api-key"], "s=cr,et");
        assert_eq!(t.headers["x-team"], "a b");
        assert_eq!(t.timeout, Duration::from_millis(700));
        let m = s.metrics.unwrap();
        assert_eq!(m.headers.len(), 1);
        assert_eq!(m.headers["only"], "metrics");
        assert_eq!(m.timeout, Duration::from_millis(2500));
        // Debug shows header names, never values.
        let shown = format!("{t:?}");
        assert!(
            shown.contains("api-key") && !shown.contains("s=cr"),
            "{shown}"
        );

        let e = resolve(Some("http://c"), &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap_err();
        assert!(
            e.0.contains("OTLP over HTTP only") && e.0.contains("http/protobuf"),
            "{e}"
        );
        let e = resolve(
            Some("http://c"),
            &[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")],
        )
        .unwrap_err();
        assert!(e.0.contains("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"), "{e}");
        let e = resolve(
            Some("http://c"),
            &[("OTEL_EXPORTER_OTLP_HEADERS", "k=v,hush-secret")],
        )
        .unwrap_err();
        assert!(e.0.contains("entry 2") && !e.0.contains("hush"), "{e}");
        let e = resolve(Some("http://c"), &[("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")]).unwrap_err();
        assert!(e.0.contains("milliseconds"), "{e}");
        let e = resolve(Some("ftp://c"), &[]).unwrap_err();
        assert!(e.0.contains("--otlp-endpoint"), "{e}");
        assert!(
            resolve(Some("http://c"), &[("OTEL_TRACES_EXPORTER", "none")])
                .unwrap()
                .unwrap()
                .traces
                .is_none()
        );
    }
}
