//! Checking what the browser brings back to the redirect URI.

use super::{AuthorizationRequest, Code};
use crate::error::excerpt;
use crate::error::{AuthorizationError, CallbackProblem};
use zeroize::Zeroizing;

/// The most read of a callback request's head (request line and headers): a browser's is a few
/// hundred bytes; anything longer is not a callback.
pub const MAX_CALLBACK_HEAD: usize = 16 * 1024;

pub(super) fn check(request: &AuthorizationRequest, target: &str) -> Result<Code, CallbackProblem> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != request.redirect_uri.path() {
        return Err(CallbackProblem::NotTheCallback);
    }
    let mut state = None;
    let mut code = None;
    let mut error = None;
    let mut description = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        // The first of each wins; a second `state` cannot smuggle another one past the check.
        match k.as_ref() {
            "state" if state.is_none() => state = Some(Zeroizing::new(v.into_owned())),
            "code" if code.is_none() => code = Some(Zeroizing::new(v.into_owned())),
            "error" if error.is_none() => error = Some(v.into_owned()),
            "error_description" if description.is_none() => description = Some(v.into_owned()),
            _ => {}
        }
    }
    let matches = state
        .as_deref()
        .is_some_and(|s| constant_time_eq(s.as_bytes(), request.state.as_bytes()));
    if !matches {
        return Err(CallbackProblem::WrongState);
    }
    if let Some(error) = error {
        return Err(CallbackProblem::Refused(AuthorizationError {
            error: excerpt(&error, 60),
            description: description.map(|d| excerpt(&d, 300)),
        }));
    }
    match code {
        Some(c) if !c.is_empty() => {
            // A code is a credential until exchanged: scrubbed from anything printed.
            crate::redact::register(&c, crate::redact::Lifespan::Rotating);
            Ok(Code(c))
        }
        _ => Err(CallbackProblem::NoCode),
    }
}

/// Equality that takes as long for any two values of one length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

    fn request() -> AuthorizationRequest {
        AuthorizationCode::new(
            "https://login.example/oauth/authorize",
            TokenEndpoint::new("https://login.example/oauth/token").unwrap(),
            "c",
            "http://127.0.0.1:8765/callback",
        )
        .unwrap()
        .start()
    }

    #[test]
    fn only_the_right_state_on_the_right_path_gives_the_code() {
        let r = request();
        let state = r.state.to_string();
        let code = r
            .callback(&format!("/callback?code=abc-code-123&state={state}"))
            .unwrap();
        assert_eq!(code.expose_secret(), "abc-code-123");
        assert!(!format!("{code:?}").contains("abc-code-123"));
        assert_eq!(
            r.callback(&format!("/favicon.ico?state={state}"))
                .unwrap_err(),
            CallbackProblem::NotTheCallback
        );
        for wrong in [
            "/callback?code=x".to_string(),
            "/callback?code=x&state=nope".to_string(),
            format!("/callback?code=x&state={}", &state[..42]),
            format!("/callback?code=x&state=nope&state={state}"),
        ] {
            assert_eq!(
                r.callback(&wrong).unwrap_err(),
                CallbackProblem::WrongState,
                "{wrong}"
            );
        }
        assert_eq!(
            r.callback(&format!("/callback?state={state}")).unwrap_err(),
            CallbackProblem::NoCode
        );
    }

    #[test]
    fn a_refusal_with_the_right_state_is_explained_and_scrubbed() {
        let r = request();
        let state = r.state.to_string();
        let e = r
            .callback(&format!(
                "/callback?error=access_denied&error_description=no%1b[31m&state={state}"
            ))
            .unwrap_err();
        let CallbackProblem::Refused(refusal) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(refusal.error, "access_denied");
        assert!(!e.to_string().contains('\u{1b}'), "{e}");
        assert!(e.to_string().contains("denied"), "{e}");
        // An error without the state is not believed (anyone could send one to abort a login).
        assert_eq!(
            r.callback("/callback?error=access_denied").unwrap_err(),
            CallbackProblem::WrongState
        );
    }
}
