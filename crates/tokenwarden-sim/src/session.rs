//! Sign-ins: authorization codes, the sessions they open, and the sessions' rotating refresh
//! tokens.
//!
//! A code is bound to the client, the redirect URI and the PKCE challenge it was issued for,
//! works once and for a short time ([`SimConfig::authorization_code_ttl`]). Exchanging it opens a
//! session (a user signed in to a client); each refresh-token grant consumes the session's current
//! refresh token and issues the next one. A refresh token presented again after it was used is
//! remembered as a reuse and, by default, revokes the whole session
//! ([`SimConfig::refresh_token_reuse_revokes_session`]). Sessions may have an absolute lifetime
//! ([`SimConfig::refresh_token_lifetime`]).
//!
//! One mutex guards all of it: sign-ins are rare next to API calls, and it is never held across an
//! `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

use crate::config::SimConfig;
use crate::ids::random_b64;
use crate::sync::lock;

/// An issued authorization code.
#[derive(Debug)]
struct Code {
    client_id: Arc<str>,
    redirect_uri: String,
    /// The S256 PKCE challenge, if the request carried one.
    challenge: Option<String>,
    scope: Option<String>,
    user: usize,
    expires: Instant,
    used: bool,
    /// The session its exchange opened, revoked if the code is presented again.
    session: Option<u64>,
}

/// A signed-in user of a client.
#[derive(Debug)]
struct Session {
    client_id: Arc<str>,
    user: usize,
    /// No refresh token of the session works after this.
    ends: Option<Instant>,
    revoked: bool,
}

#[derive(Debug)]
struct Refresh {
    n: u64,
    session: u64,
    used: bool,
}

#[derive(Debug, Default)]
struct Book {
    codes: HashMap<String, Code>,
    sessions: HashMap<u64, Session>,
    refresh: HashMap<String, Refresh>,
    next_session: u64,
    next_refresh: u64,
}

/// A session a token grant acts for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grantee {
    pub(crate) session: u64,
    pub(crate) user: usize,
}

/// What to ask for at `/oauth/authorize`.
#[derive(Debug)]
pub(crate) struct CodeRequest<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) redirect_uri: &'a str,
    pub(crate) challenge: Option<&'a str>,
    pub(crate) scope: Option<&'a str>,
    pub(crate) user: usize,
}

/// What a token request presented with an authorization code.
#[derive(Debug)]
pub(crate) struct CodeExchange<'a> {
    pub(crate) code: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) redirect_uri: Option<&'a str>,
    pub(crate) verifier: Option<&'a str>,
}

/// Why a code or refresh token was refused: the `invalid_grant` description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub(crate) description: &'static str,
    /// A session to revoke (a code or refresh token replayed).
    pub(crate) revoke: Option<u64>,
    /// A used refresh token was presented again.
    pub(crate) reuse: bool,
}

impl Refused {
    fn new(description: &'static str) -> Self {
        Self {
            description,
            revoke: None,
            reuse: false,
        }
    }
}

/// The outcome of consuming a refresh token: its journal number, and the session or the refusal.
pub(crate) type Consumed = (Option<u64>, Result<Grantee, Refused>);

/// Every sign-in of the simulator.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    book: Mutex<Book>,
}

/// The S256 challenge of `verifier`: `BASE64URL(SHA256(verifier))`.
pub(crate) fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl Sessions {
    /// Issues a code for `req`, valid for `cfg.authorization_code_ttl`.
    pub(crate) fn issue_code(&self, req: &CodeRequest<'_>, cfg: &SimConfig) -> String {
        let code = random_b64(32);
        let mut book = lock(&self.book);
        // Expired codes go, so a long-running simulator does not keep them all.
        let now = Instant::now();
        book.codes.retain(|_, c| c.expires > now || c.used);
        book.codes.insert(
            code.clone(),
            Code {
                client_id: req.client_id.into(),
                redirect_uri: req.redirect_uri.to_owned(),
                challenge: req.challenge.map(str::to_owned),
                scope: req.scope.map(str::to_owned),
                user: req.user,
                expires: now + cfg.authorization_code_ttl,
                used: false,
                session: None,
            },
        );
        code
    }

    /// Exchanges a code: checks client, redirect URI, PKCE verifier and expiry, marks it used
    /// (whatever the outcome, so a code cannot be tried twice) and opens a session.
    pub(crate) fn exchange_code(
        &self,
        x: &CodeExchange<'_>,
        cfg: &SimConfig,
    ) -> Result<(Grantee, Option<String>), Refused> {
        let mut book = lock(&self.book);
        let Some(code) = book.codes.get_mut(x.code) else {
            return Err(Refused::new("authorization code is invalid"));
        };
        if &*code.client_id != x.client_id {
            return Err(Refused::new(
                "authorization code was issued to another client",
            ));
        }
        if code.used {
            // RFC 6749 §4.1.2: a code used twice revokes what it gave.
            return Err(Refused {
                revoke: code.session,
                ..Refused::new("authorization code has already been used")
            });
        }
        code.used = true;
        if Instant::now() >= code.expires {
            return Err(Refused::new("authorization code has expired"));
        }
        if x.redirect_uri != Some(code.redirect_uri.as_str()) {
            return Err(Refused::new(
                "redirect_uri does not match the one the authorization code was issued for",
            ));
        }
        match (&code.challenge, x.verifier) {
            (None, _) => {}
            (Some(_), None) => return Err(Refused::new("code_verifier is required (PKCE)")),
            (Some(challenge), Some(v)) if s256(v) != *challenge => {
                return Err(Refused::new(
                    "code_verifier does not match the code_challenge (PKCE)",
                ));
            }
            (Some(_), Some(_)) => {}
        }
        let (user, scope) = (code.user, code.scope.clone());
        let grantee = open(&mut book, x.client_id, user, cfg);
        if let Some(code) = book.codes.get_mut(x.code) {
            code.session = Some(grantee.session);
        }
        Ok((grantee, scope))
    }

    /// Opens a session for `user` of `client_id` directly (no code), as if signed in earlier.
    pub(crate) fn open(&self, client_id: &str, user: usize, cfg: &SimConfig) -> Grantee {
        open(&mut lock(&self.book), client_id, user, cfg)
    }

    /// Issues the next refresh token of `session`.
    pub(crate) fn issue_refresh_token(&self, session: u64) -> (String, u64) {
        let rt = random_b64(36);
        let mut book = lock(&self.book);
        book.next_refresh += 1;
        let n = book.next_refresh;
        book.refresh.insert(
            rt.clone(),
            Refresh {
                n,
                session,
                used: false,
            },
        );
        (rt, n)
    }

    /// Consumes refresh token `rt` of `client_id`.
    pub(crate) fn consume_refresh_token(&self, rt: &str, client_id: &str) -> Consumed {
        let mut book = lock(&self.book);
        let Some(r) = book.refresh.get(rt) else {
            return (
                None,
                Err(Refused::new("refresh token is invalid or revoked")),
            );
        };
        let (n, session_id, used) = (r.n, r.session, r.used);
        let Some(session) = book.sessions.get(&session_id) else {
            return (Some(n), Err(Refused::new("refresh token is revoked")));
        };
        if &*session.client_id != client_id {
            return (
                Some(n),
                Err(Refused::new("refresh token was issued to another client")),
            );
        }
        if used {
            return (
                Some(n),
                Err(Refused {
                    revoke: Some(session_id),
                    reuse: true,
                    ..Refused::new("refresh token has already been used")
                }),
            );
        }
        if session.revoked {
            return (Some(n), Err(Refused::new("refresh token is revoked")));
        }
        if session.ends.is_some_and(|end| Instant::now() >= end) {
            return (
                Some(n),
                Err(Refused::new(
                    "refresh token has expired: the sign-in is too old, sign in again",
                )),
            );
        }
        let user = session.user;
        if let Some(r) = book.refresh.get_mut(rt) {
            r.used = true;
        }
        (
            Some(n),
            Ok(Grantee {
                session: session_id,
                user,
            }),
        )
    }

    /// Revokes a session: none of its refresh tokens works any more. (Its access tokens are
    /// revoked by the caller, who holds them.)
    pub(crate) fn revoke(&self, session: u64) {
        if let Some(s) = lock(&self.book).sessions.get_mut(&session) {
            s.revoked = true;
        }
    }

    /// Revokes every session.
    pub(crate) fn revoke_all(&self) {
        for s in lock(&self.book).sessions.values_mut() {
            s.revoked = true;
        }
    }
}

fn open(book: &mut Book, client_id: &str, user: usize, cfg: &SimConfig) -> Grantee {
    book.next_session += 1;
    let session = book.next_session;
    book.sessions.insert(
        session,
        Session {
            client_id: client_id.into(),
            user,
            ends: cfg.refresh_token_lifetime.map(|d| Instant::now() + d),
            revoked: false,
        },
    );
    Grantee { session, user }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SimConfig {
        SimConfig::default()
    }

    fn request<'a>(challenge: Option<&'a str>) -> CodeRequest<'a> {
        CodeRequest {
            client_id: "c",
            redirect_uri: "http://127.0.0.1:1/cb",
            challenge,
            scope: None,
            user: 3,
        }
    }

    #[test]
    fn a_code_is_bound_to_client_redirect_and_verifier_and_works_once() {
        let s = Sessions::default();
        let challenge = s256("the-verifier");
        let exchange = |code: &str, client: &str, redirect: &str, verifier: &str| {
            s.exchange_code(
                &CodeExchange {
                    code,
                    client_id: client,
                    redirect_uri: Some(redirect),
                    verifier: Some(verifier),
                },
                &cfg(),
            )
        };
        let code = s.issue_code(&request(Some(&challenge)), &cfg());
        assert!(
            exchange(&code, "other", "http://127.0.0.1:1/cb", "the-verifier")
                .unwrap_err()
                .description
                .contains("another client")
        );
        let code2 = s.issue_code(&request(Some(&challenge)), &cfg());
        assert!(
            exchange(&code2, "c", "http://127.0.0.1:2/cb", "the-verifier")
                .unwrap_err()
                .description
                .contains("redirect_uri")
        );
        let code3 = s.issue_code(&request(Some(&challenge)), &cfg());
        assert!(
            exchange(&code3, "c", "http://127.0.0.1:1/cb", "wrong")
                .unwrap_err()
                .description
                .contains("code_verifier")
        );
        let (g, _) = exchange(&code, "c", "http://127.0.0.1:1/cb", "the-verifier").unwrap();
        assert_eq!(g.user, 3);
        let again = exchange(&code, "c", "http://127.0.0.1:1/cb", "the-verifier").unwrap_err();
        assert!(again.description.contains("already been used"));
        assert_eq!(again.revoke, Some(g.session));
    }

    #[test]
    fn refresh_tokens_rotate_and_a_reuse_is_reported() {
        let s = Sessions::default();
        let g = s.open("c", 1, &cfg());
        let (rt1, n1) = s.issue_refresh_token(g.session);
        let (n, ok) = s.consume_refresh_token(&rt1, "c");
        assert_eq!(n, Some(n1));
        assert_eq!(ok.unwrap().session, g.session);
        let (_, again) = s.consume_refresh_token(&rt1, "c");
        let refused = again.unwrap_err();
        assert!(refused.reuse);
        assert_eq!(refused.revoke, Some(g.session));
        assert!(s.consume_refresh_token("nope", "c").1.is_err());
    }

    #[test]
    fn s256_is_the_rfc_7636_example() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
