//! [`ApiResponse`]: an API answer, read in full, and its helpers (JSON, text, status check).

use crate::error::{Error, Result, body_excerpt, excerpt, shown_path};
use ::http::{HeaderMap, Method, StatusCode};
use bytes::Bytes;
use url::Url;

/// An API answer, read in full.
#[derive(Clone)]
pub struct ApiResponse {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl std::fmt::Debug for ApiResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiResponse")
            .field("method", &self.method)
            .field("path", &self.url.path())
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl ApiResponse {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The body, consuming the response.
    pub fn into_body(self) -> Bytes {
        self.body
    }

    /// The URL that answered (after redirects).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The body decoded as JSON into `T`.
    ///
    /// # Errors
    /// [`Error::Decode`] with the parser's complaint and an excerpt of the body.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Decode {
            what: format!(
                "the answer to {} {} (HTTP {})",
                self.method,
                shown_path(&self.url),
                self.status.as_u16()
            ),
            // The parser's complaint can quote the body ("unknown field `...`"): server text.
            detail: format!(
                "{}; body: {}",
                excerpt(&e.to_string(), 200),
                body_excerpt(&self.body, 200)
            ),
        })
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The response itself if its status is 2xx.
    ///
    /// # Errors
    /// [`Error::Status`] with the method, path, status and an excerpt of the body otherwise.
    pub fn error_for_status(self) -> Result<Self> {
        if self.status.is_success() {
            return Ok(self);
        }
        Err(Error::Status {
            method: self.method.to_string(),
            path: shown_path(&self.url),
            status: self.status.as_u16(),
            body: body_excerpt(&self.body, 300),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &'static str) -> ApiResponse {
        ApiResponse {
            method: Method::GET,
            url: Url::parse("https://api.example/api/v2/users?secret=no").unwrap(),
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn response_helpers() {
        let ok = resp(200, r#"{"a":1}"#);
        let v: serde_json::Value = ok.json().unwrap();
        assert_eq!(v["a"], 1);
        assert!(ok.error_for_status().is_ok());
        let e = resp(404, r#"{"message":"nope"}"#)
            .error_for_status()
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("404") && msg.contains("/api/v2/users") && msg.contains("nope"));
        assert!(
            !msg.contains("secret=no"),
            "no query strings in errors: {msg}"
        );
        let e = resp(200, "not json")
            .json::<serde_json::Value>()
            .unwrap_err();
        assert!(matches!(e, Error::Decode { .. }), "{e}");
    }

    #[test]
    fn server_text_in_errors_is_scrubbed_and_escaped() {
        // A server that echoes a secret (in the body, or in a redirect path) and sends terminal
        // escapes: neither reaches an error message.
        const SECRET: &str = "server-echoed-secret-value-42";
        crate::redact::register_secret(SECRET);
        let echo = |body: String| ApiResponse {
            url: Url::parse(&format!("https://api.example/api/v2/users/{SECRET}")).unwrap(),
            body: Bytes::from(body),
            ..resp(500, "")
        };
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Strict {}
        let unknown_field = echo(format!("{{\"{SECRET}\": 1}}"))
            .json::<Strict>()
            .unwrap_err();
        let Error::Decode { detail, .. } = &unknown_field else {
            panic!("{unknown_field:?}")
        };
        // The parser's own complaint names the field: it is scrubbed too, not only the body.
        let complaint = detail.split("; body:").next().unwrap();
        assert!(complaint.contains(crate::redact::REDACTED), "{complaint}");
        let raw = echo(format!("{SECRET}\x1b[2J not json"));
        for e in [
            unknown_field.clone(),
            raw.json::<u32>().unwrap_err(),
            raw.clone().error_for_status().unwrap_err(),
        ] {
            let msg = e.to_string();
            assert!(!msg.contains(SECRET), "{msg}");
            assert!(msg.contains(crate::redact::REDACTED), "{msg}");
            assert!(!msg.contains('\x1b'), "{msg}");
        }
    }
}
