//! Response helpers: Genesys error bodies, OAuth error bodies, query parsing.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::ids::random_uuid;

/// Marker response extension: close the connection instead of answering (see `drop_rate`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct DropConnection;

/// A JSON response with the given status.
pub(crate) fn json_response(status: u16, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The Genesys API error body.
pub(crate) fn genesys_error_body(status: u16, code: &str, message: &str) -> Value {
    json!({
        "message": message,
        "code": code,
        "status": status,
        "contextId": random_uuid(),
        "details": [],
        "errors": [],
    })
}

/// A Genesys API error response.
pub(crate) fn genesys_error(status: u16, code: &str, message: &str) -> Response {
    json_response(status, &genesys_error_body(status, code, message))
}

/// 400 `bad.request`.
pub(crate) fn bad_request(message: &str) -> Response {
    genesys_error(400, "bad.request", message)
}

/// A 400 `bad.request` with its message, for handlers that return `Result<Response, BadRequest>`
/// and stop at the first parameter they cannot take with `?`.
pub(crate) struct BadRequest(pub(crate) String);

impl From<String> for BadRequest {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        bad_request(&self.0)
    }
}

/// 404 `not.found`.
pub(crate) fn not_found(message: &str) -> Response {
    genesys_error(404, "not.found", message)
}

/// The Genesys error code and default message for a status.
pub(crate) fn status_code_and_message(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => (
            "bad.request",
            "The request could not be understood by the server due to malformed syntax.",
        ),
        401 => ("bad.credentials", "Invalid login credentials."),
        403 => (
            "missing.any.permissions",
            "Unable to perform the requested action. You are missing the required permission for this action.",
        ),
        404 => ("not.found", "The requested resource was not found."),
        405 => (
            "method.not.allowed",
            "The requested method is not allowed for this resource.",
        ),
        408 => ("request.timeout", "The request timed out."),
        409 => (
            "conflict",
            "The request conflicts with the current state of the resource.",
        ),
        413 => ("request.entity.too.large", "The request is too large."),
        415 => ("unsupported.media.type", "Unsupported media type."),
        429 => ("too.many.requests", "Rate limit exceeded the maximum."),
        500 => (
            "internal.server.error",
            "The server encountered an unexpected condition which prevented it from fulfilling the request.",
        ),
        501 => ("not.implemented", "Not implemented."),
        502 => (
            "bad.gateway",
            "The server received an invalid response from an upstream server.",
        ),
        503 => (
            "service.unavailable",
            "Service Unavailable - The server is currently unavailable (because it is overloaded or down for maintenance).",
        ),
        504 => ("request.timeout", "The request timed out."),
        _ => ("error", "Simulated error."),
    }
}

/// The OAuth token-endpoint error body `{"error","description","error_description"}`.
pub(crate) fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    let mut resp = json_response(
        status,
        &json!({
            "error": error,
            "description": description,
            "error_description": description,
        }),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A response with no body.
pub(crate) fn empty(status: u16) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::NO_CONTENT);
    resp
}

/// Parsed query string (first value wins).
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(q: Option<&str>) -> Self {
        Self(
            q.map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default(),
        )
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// A positive integer parameter within `1..=max` (default when absent), else a message for a
    /// 400 response.
    pub(crate) fn bounded(&self, key: &str, default: usize, max: usize) -> Result<usize, String> {
        match self.get(key) {
            None | Some("") => Ok(default.min(max.max(1))),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n >= 1 && n <= max => Ok(n),
                _ => Err(format!(
                    "Value [{v}] is not valid for parameter [{key}]. Allowable values are: 1 to {max}"
                )),
            },
        }
    }
}

/// Make the response an error response for an internal failure (a panicking handler).
pub(crate) fn internal_error() -> Response {
    let (code, message) = status_code_and_message(500);
    genesys_error(500, code, message).into_response()
}
