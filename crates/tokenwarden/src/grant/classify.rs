//! What a token endpoint's answer means: a token, or a failure classified for the retry loop.

use super::{FetchError, TokenResponse};
use crate::error::{Error, excerpt};
use crate::secret::{AccessToken, RefreshToken};
use std::time::Duration;

#[derive(serde::Deserialize)]
struct RawToken {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct RawError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// A 2xx answer's token, or what is wrong with it (never quoting the body: it may hold a token).
pub(super) fn parse_token(status: u16, body: &[u8]) -> Result<TokenResponse, String> {
    let raw: RawToken = serde_json::from_slice(body).map_err(|e| {
        format!(
            "HTTP {status}, {} bytes, {}",
            body.len(),
            e.to_string().split(" at line").next().unwrap_or_default()
        )
    })?;
    if raw.access_token.is_empty() {
        return Err("empty access_token".into());
    }
    crate::token::check_header_safe(&raw.access_token).map_err(|p| p.to_string())?;
    if let Some(t) = raw.token_type.as_deref()
        && !t.eq_ignore_ascii_case("bearer")
    {
        return Err(format!(
            "token_type is {:?}, not \"bearer\": tokenwarden can only send bearer tokens",
            excerpt(t, 40)
        ));
    }
    Ok(TokenResponse {
        expires_in: expires_in(raw.expires_in.as_ref())?,
        access_token: AccessToken::new(raw.access_token),
        refresh_token: raw
            .refresh_token
            .filter(|r| !r.is_empty())
            .map(RefreshToken::new),
        token_type: raw.token_type,
    })
}

/// `expires_in` as a duration: absent or `null` is `None` (the manager assumes its default
/// lifetime); a positive number, or a string holding one, is that many seconds (saturating; the
/// manager's policy applies its floor and ceiling). Zero, a negative number, NaN, an infinity or
/// any other JSON type is refused: the token endpoint contradicts itself, and guessing could mean
/// using a dead token or asking for a new one on every request.
pub(super) fn expires_in(value: Option<&serde_json::Value>) -> Result<Option<Duration>, String> {
    let seconds = match value {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    let kind = match value {
        Some(serde_json::Value::String(_)) => "a string",
        Some(serde_json::Value::Bool(_)) => "a boolean",
        Some(serde_json::Value::Array(_)) => "an array",
        Some(serde_json::Value::Object(_)) => "an object",
        _ => "a number",
    };
    match seconds {
        // Positive, however small: at least a nanosecond (the policy's floor applies later).
        Some(s) if s.is_finite() && s > 0.0 => Ok(Some(
            Duration::try_from_secs_f64(s)
                .unwrap_or(Duration::MAX)
                .max(Duration::from_nanos(1)),
        )),
        Some(s) if s.is_nan() => Err(format!("expires_in is {kind} that is not a number")),
        Some(s) if s.is_infinite() => Err(format!("expires_in is {kind} that is infinite")),
        Some(s) => Err(format!(
            "expires_in is {s}: the token would be expired before it is used"
        )),
        None => Err(format!("expires_in is {kind}, not a number of seconds")),
    }
}

/// Turns a token endpoint answer into a token or a classified failure. Pure, so every case is tested.
pub(crate) fn classify(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    location: Option<String>,
    grant: &'static str,
    host: &str,
) -> Result<TokenResponse, FetchError> {
    if (200..300).contains(&status) {
        return parse_token(status, body)
            .map_err(|detail| FetchError::Fatal(Error::TokenDecode { detail }));
    }
    let mut err: RawError = serde_json::from_slice(body).unwrap_or_default();
    // The `error` code is server text like the rest: it reaches log lines and messages, so it is
    // scrubbed, escaped and shortened like them (a code is a short word; 60 is generous).
    err.error = err.error.map(|e| excerpt(&e, 60));
    let description = err
        .error_description
        .clone()
        .or(err.description.clone())
        .or(err.message.clone())
        .map(|d| excerpt(&d, 300));
    let reason = format!(
        "HTTP {status}{}{}",
        err.error
            .as_deref()
            .map(|e| format!(" {e}"))
            .unwrap_or_default(),
        description
            .as_deref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default()
    );
    if status == 429 || (500..600).contains(&status) || status == 408 {
        return Err(FetchError::Transient {
            reason,
            retry_after,
        });
    }
    // Genesys throttles token creation with 400 invalid_request "rate limit exceeded; ...".
    let throttled = [&err.description, &err.error_description, &err.message]
        .iter()
        .any(|d| {
            d.as_deref().is_some_and(|d| {
                d.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("rate limit exceeded")
            })
        });
    if status == 400 && throttled {
        return Err(FetchError::Transient {
            reason,
            retry_after,
        });
    }
    if (300..400).contains(&status) {
        return Err(FetchError::Fatal(Error::Config(format!(
            "the token endpoint at {host} redirected (HTTP {status}{}); token requests never follow redirects: check the token URL or region",
            location
                .map(|l| format!(" to {}", excerpt(&l, 200)))
                .unwrap_or_default()
        ))));
    }
    let code = err.error.clone();
    let hint = match code.as_deref() {
        Some("invalid_client") | Some("unauthorized") => format!(
            "check the client id and secret, that the OAuth client exists and is enabled, and that it belongs to the region of {host}"
        ),
        Some("unauthorized_client") | Some("unsupported_grant_type") => format!(
            "the OAuth client is not allowed to use the {grant} grant: check its grant type"
        ),
        Some("invalid_grant") if grant == "refresh_token" => {
            "the refresh token was revoked, expired or already used: sign in again to get a new one"
                .to_string()
        }
        Some("invalid_grant") if grant == "authorization_code" => {
            "the sign-in code was refused (used already, expired, issued for another client or redirect URI, or its PKCE verifier does not match): sign in again".to_string()
        }
        Some("invalid_grant") => {
            "the grant was rejected: check the OAuth client's grant type and credentials".into()
        }
        Some("invalid_scope") => "a requested scope is not allowed for this OAuth client".into(),
        _ if status == 404 => format!("no token endpoint at {host}: check the region or token URL"),
        _ => format!(
            "check the client id and secret, that the OAuth client is enabled and allows the {grant} grant, and the region ({host})"
        ),
    };
    Err(FetchError::Fatal(Error::Credentials {
        status,
        code,
        description,
        hint,
    }))
}
