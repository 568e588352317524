//! Typed URLs: [`TokenUrl`] (a token endpoint) and [`ApiBase`] (an API's base), each parsed and
//! checked once where it enters the library, and compared in one normalised form everywhere after
//! (the token endpoint, the client, the stores' keys, the session file).
//!
//! The normalisation is the `url` crate's parse ([WHATWG URL](https://url.spec.whatwg.org/)): the
//! scheme and host in lower case, the default port dropped (`:443` for `https`, `:80` for `http`),
//! an empty path written `/` (`https://api.example` is `https://api.example/`), percent-encoding
//! made uniform. Nothing else is changed: a path keeps its case and its trailing slash or lack of
//! one, so that a URL sent is the URL given.

use crate::error::{Error, excerpt};
use std::fmt;
use url::Url;

/// Rejects a URL that is not `http(s)` with a host: `what` names it in the message.
fn http_with_host(url: Url, what: &str) -> Result<Url, Error> {
    // The scheme rule is transport's one; plain `http://` is the endpoint's or client's call.
    super::check_scheme(&url, true, what)?;
    if url.host_str().is_none() {
        return Err(Error::Config(format!("{what} {url} has no host")));
    }
    Ok(url)
}

/// The accessors, conversions and traits both URL types share.
macro_rules! typed_url {
    ($name:ident, $into:ident, $into_fn:ident) => {
        impl $name {
            /// The parsed URL.
            pub fn url(&self) -> &Url {
                &self.0
            }

            /// The URL in its normalised form.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }

            /// The parsed URL, consuming this.
            pub fn into_url(self) -> Url {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name))
                    .field(&self.as_str())
                    .finish()
            }
        }

        impl std::ops::Deref for $name {
            type Target = Url;
            fn deref(&self) -> &Url {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl From<&$name> for $name {
            fn from(u: &$name) -> $name {
                u.clone()
            }
        }

        impl From<$name> for Url {
            fn from(u: $name) -> Url {
                u.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Self::parse(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;
            fn try_from(s: &str) -> Result<Self, Error> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self, Error> {
                Self::parse(&s)
            }
        }

        impl TryFrom<Url> for $name {
            type Error = Error;
            fn try_from(u: Url) -> Result<Self, Error> {
                Self::parse(u.as_str())
            }
        }

        #[doc = concat!("What a [`", stringify!($name), "`] can be made from where one is asked for: ")]
        #[doc = concat!("the type itself, or text (`&str`, `&String`) or a [`Url`] checked as [`", stringify!($name), "::parse`] checks it.")]
        pub trait $into {
            #[doc = concat!("The [`", stringify!($name), "`].")]
            ///
            /// # Errors
            /// [`Error::Config`] saying why the text is not one.
            fn $into_fn(self) -> Result<$name, Error>;
        }

        impl $into for $name {
            fn $into_fn(self) -> Result<$name, Error> {
                Ok(self)
            }
        }

        impl $into for &$name {
            fn $into_fn(self) -> Result<$name, Error> {
                Ok(self.clone())
            }
        }

        impl $into for &str {
            fn $into_fn(self) -> Result<$name, Error> {
                $name::parse(self)
            }
        }

        impl $into for &String {
            fn $into_fn(self) -> Result<$name, Error> {
                $name::parse(self)
            }
        }

        impl $into for Url {
            fn $into_fn(self) -> Result<$name, Error> {
                $name::try_from(self)
            }
        }

        impl $into for &Url {
            fn $into_fn(self) -> Result<$name, Error> {
                $name::parse(self.as_str())
            }
        }
    };
}

/// The URL of an OAuth 2.0 token endpoint (e.g. `https://login.mypurecloud.ie/oauth/token`):
/// an `http(s)` URL with a host, in its normalised form (scheme and host in lower case, the
/// default port dropped, an empty path written `/`; the path otherwise as given). Two spellings
/// of one endpoint are equal, and key the same stored tokens.
///
/// Whether plain `http://` may be used is the endpoint's decision, not the URL's:
/// [`TokenEndpoint::new`](crate::TokenEndpoint::new) refuses it but to loopback.
///
/// ```
/// use tokenwarden::TokenUrl;
///
/// let a = TokenUrl::parse("HTTPS://Login.MyPureCloud.IE:443/oauth/token")?;
/// assert_eq!(a.as_str(), "https://login.mypurecloud.ie/oauth/token");
/// assert_eq!(a, TokenUrl::parse("https://login.mypurecloud.ie/oauth/token")?);
/// assert!(TokenUrl::parse("login.mypurecloud.ie/oauth/token").is_err());
/// assert!(TokenUrl::parse("ftp://login.example/oauth/token").is_err());
/// # Ok::<(), tokenwarden::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenUrl(Url);

impl TokenUrl {
    /// Parses and checks `url`.
    ///
    /// # Errors
    /// [`Error::Config`] if it is not a URL, or its scheme is not `http` or `https`.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let parsed = Url::parse(url)
            .map_err(|e| Error::Config(format!("token URL {url:?} is not a URL: {e}")))?;
        http_with_host(parsed, "token URL").map(Self)
    }

    /// Refuses plain `http://` to a host other than loopback, unless `insecure_ok`.
    pub(crate) fn check_secure(&self, insecure_ok: bool) -> Result<(), Error> {
        super::check_scheme(&self.0, insecure_ok, "token URL")
    }
}

typed_url!(TokenUrl, IntoTokenUrl, into_token_url);

/// The base URL of an API (e.g. `https://api.mypurecloud.ie`): an `http(s)` URL with a host, in
/// its normalised form (as [`TokenUrl`]'s: `https://API.mypurecloud.ie:443` is
/// `https://api.mypurecloud.ie/`). Requests go to paths resolved against it, and the token only
/// ever to its origin.
///
/// ```
/// use tokenwarden::ApiBase;
///
/// let base = ApiBase::parse("https://API.mypurecloud.ie")?;
/// assert_eq!(base.as_str(), "https://api.mypurecloud.ie/");
/// assert!(ApiBase::parse("not a url").is_err());
/// # Ok::<(), tokenwarden::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ApiBase(Url);

impl ApiBase {
    /// Parses and checks `url`.
    ///
    /// # Errors
    /// [`Error::Config`] if it is not a URL, or its scheme is not `http` or `https`.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let parsed = Url::parse(url).map_err(|e| {
            Error::Config(format!("API base {} is not a URL: {e}", excerpt(url, 200)))
        })?;
        http_with_host(parsed, "API base").map(Self)
    }

    /// Refuses plain `http://` to a host other than loopback, unless `insecure_ok`.
    pub(crate) fn check_secure(&self, insecure_ok: bool) -> Result<(), Error> {
        super::check_scheme(&self.0, insecure_ok, "API base")
    }
}

typed_url!(ApiBase, IntoApiBase, into_api_base);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_normalisation() {
        for (given, normalised) in [
            (
                "HTTPS://Login.Example:443/oauth/token",
                "https://login.example/oauth/token",
            ),
            ("https://login.example", "https://login.example/"),
            ("http://127.0.0.1:80/t", "http://127.0.0.1/t"),
            ("http://127.0.0.1:8080/t/", "http://127.0.0.1:8080/t/"),
            (
                "https://login.example/OAuth/Token",
                "https://login.example/OAuth/Token",
            ),
        ] {
            assert_eq!(TokenUrl::parse(given).unwrap().as_str(), normalised);
            assert_eq!(ApiBase::parse(given).unwrap().as_str(), normalised);
            assert_eq!(
                TokenUrl::parse(given).unwrap(),
                TokenUrl::parse(normalised).unwrap()
            );
        }
    }

    #[test]
    fn refusals_say_why() {
        let msg = |r: Result<TokenUrl, Error>| r.unwrap_err().to_string();
        assert!(msg(TokenUrl::parse("not a url")).contains("is not a URL"));
        assert!(msg(TokenUrl::parse("ftp://x.example/t")).contains("unsupported scheme \"ftp\""));
        assert!(msg(TokenUrl::parse("mailto:me@x.example")).contains("unsupported scheme"));
        let e = ApiBase::parse("file:///etc/passwd")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("API base") && e.contains("unsupported scheme"),
            "{e}"
        );
        // Plain http is a decision of the user of the URL, not of the URL.
        let plain = TokenUrl::parse("http://login.example/t").unwrap();
        assert!(plain.check_secure(false).is_err());
        assert!(plain.check_secure(true).is_ok());
        assert!(
            TokenUrl::parse("http://127.0.0.1:9/t")
                .unwrap()
                .check_secure(false)
                .is_ok()
        );
    }

    #[test]
    fn conversions_check_as_parse_does() {
        let url = "https://login.example/t";
        let parsed = TokenUrl::parse(url).unwrap();
        assert_eq!(url.into_token_url().unwrap(), parsed);
        assert_eq!((&url.to_string()).into_token_url().unwrap(), parsed);
        assert_eq!((&parsed).into_token_url().unwrap(), parsed);
        assert_eq!(TokenUrl::try_from(parsed.url().clone()).unwrap(), parsed);
        assert!("nope".into_token_url().is_err());
        assert!(
            Url::parse("data:text/plain,x")
                .unwrap()
                .into_api_base()
                .is_err()
        );
        assert_eq!(
            format!("{parsed:?}"),
            "TokenUrl(\"https://login.example/t\")"
        );
    }
}
