//! Secret newtypes. Their `Debug` and `Display` print `[redacted]`, so a secret cannot reach a log line,
//! an error message or a panic by accident; reading one takes an explicit `expose_secret()`. Every
//! value wrapped here is also registered with [`crate::redact::redact`], so that a server echoing it back is
//! scrubbed too.

use crate::redact::Lifespan;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident, $lifespan:expr) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(SecretString);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                let value = value.into();
                crate::redact::register(&value, $lifespan);
                Self(SecretString::from(value))
            }

            /// The secret itself.
            ///
            /// **Security:** the returned string must only go where the secret is needed (an HTTP
            /// header or form body); never log, format or store it anywhere else.
            pub fn expose_secret(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "([redacted])"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("[redacted]")
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.expose_secret() == other.expose_secret()
            }
        }

        impl Eq for $name {}

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self::new(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::new(s)
            }
        }
    };
}

secret_type!(
    /// An OAuth client secret.
    ClientSecret,
    Lifespan::Process
);
secret_type!(
    /// An OAuth access token (sent as `Authorization: Bearer`).
    AccessToken,
    Lifespan::Rotating
);
impl AccessToken {
    /// Whether `value` can be sent as `Authorization: Bearer <value>` as it is: one or more
    /// visible ASCII characters (`!` to `~`), so nothing that could end the header or start
    /// another one (CR, LF), no other control character, no space that would split a shell word,
    /// no non-ASCII byte. Every token of RFC 6750's `b64token` syntax passes.
    ///
    /// ```
    /// use tokenwarden::AccessToken;
    /// assert!(AccessToken::is_header_value("eyJhbGciOi.J9-_~+/="));
    /// assert!(!AccessToken::is_header_value("tok\r\nX-Injected: 1"));
    /// assert!(!AccessToken::is_header_value(""));
    /// ```
    pub fn is_header_value(value: &str) -> bool {
        !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic())
    }
}

secret_type!(
    /// An OAuth refresh token (Authorization Code grant; rotated on every use by Genesys Cloud).
    RefreshToken,
    Lifespan::Rotating
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_redacted() {
        let s = ClientSecret::new("hunter2-very-secret");
        let a = AccessToken::new("tok-abc");
        let r = RefreshToken::new("rt-xyz");
        for shown in [
            format!("{s:?} {s} {s:#?}"),
            format!("{a:?} {a}"),
            format!("{r:?} {r}"),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(!shown.contains("tok-abc"), "{shown}");
            assert!(!shown.contains("rt-xyz"), "{shown}");
            assert!(shown.contains("redacted"), "{shown}");
        }
        assert_eq!(s.expose_secret(), "hunter2-very-secret");
    }

    #[test]
    fn wrapped_values_are_scrubbed_from_server_text() {
        let _s = ClientSecret::new("wrapped-client-secret-1");
        let _a = AccessToken::new("wrapped-access-token-1");
        let _r = RefreshToken::new("wrapped-refresh-token-1");
        assert_eq!(
            crate::redact::redact(
                "x wrapped-client-secret-1 wrapped-access-token-1 wrapped-refresh-token-1"
            ),
            "x [REDACTED] [REDACTED] [REDACTED]"
        );
    }
}
