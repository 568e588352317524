//! Which proxy a request goes through: the standard variables, read as curl and reqwest read them,
//! with two rules on top. Loopback never goes through a proxy (a local simulator, or a token
//! endpoint on the same machine, is not something a corporate proxy can or should reach), and
//! plain `http://` through a proxy is refused, because a proxy reads a plain request whole, bearer
//! token included (through `https://` it only relays encrypted bytes).

use crate::error::{Error, Result};
use hyper_util::client::proxy::matcher::Matcher;
use std::sync::Arc;
use url::Url;

/// Always added to `NO_PROXY`: every name and address of this machine's loopback interface.
const LOOPBACK: &str = "localhost,127.0.0.0/8,::1,::ffff:127.0.0.0/104";

/// The proxy settings of a client: which proxy (if any) each request goes through.
///
/// [`ProxyConfig::from_env`] (the default of [`ApiClientBuilder`](crate::ApiClientBuilder) and of
/// [`TokenEndpoint`](crate::TokenEndpoint)) reads `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and
/// `NO_PROXY` (or their lower-case forms) with curl's rules, except that:
/// - **loopback** (`localhost`, `*.localhost`, `127.0.0.0/8`, `::1`) never goes through a proxy;
/// - **plain `http://` through a proxy is refused** with [`Error::Config`], unless allowed with
///   [`allow_plain_http`](Self::allow_plain_http): the proxy would read the bearer token.
///
/// As in curl and reqwest, the variables are ignored inside a CGI script (`REQUEST_METHOD` set),
/// where `HTTP_PROXY` can come from a request header ("httpoxy").
///
/// ```
/// use tokenwarden::client::ProxyConfig;
/// let proxies = ProxyConfig::from_vars(|name| match name {
///     "HTTPS_PROXY" => Some("http://proxy.corp.example:3128".to_string()),
///     "NO_PROXY" => Some(".internal.example".to_string()),
///     _ => None,
/// });
/// let via = |u: &str| proxies.proxy_for(&url::Url::parse(u).unwrap());
/// assert_eq!(via("https://api.mypurecloud.ie/api/v2/users").as_deref(), Some("proxy.corp.example:3128"));
/// assert_eq!(via("https://billing.internal.example/").as_deref(), None);
/// assert_eq!(via("http://127.0.0.1:8080/oauth/token").as_deref(), None); // loopback: never
/// ```
#[derive(Clone)]
pub struct ProxyConfig {
    /// The proxy for `http://` targets, as given (may hold credentials: never printed).
    http: Option<String>,
    /// The proxy for `https://` targets, as given.
    https: Option<String>,
    /// `NO_PROXY`, with the loopback entries added.
    no_proxy: String,
    /// The same rules as a matcher, to decide before a request is sent.
    matcher: Arc<Matcher>,
    allow_plain_http: bool,
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Proxy URLs can carry credentials: only whether each is set.
        f.debug_struct("ProxyConfig")
            .field("http", &self.http.is_some())
            .field("https", &self.https.is_some())
            .field("no_proxy", &self.no_proxy)
            .field("allow_plain_http", &self.allow_plain_http)
            .finish()
    }
}

impl Default for ProxyConfig {
    /// [`ProxyConfig::from_env`].
    fn default() -> Self {
        Self::from_env()
    }
}

impl ProxyConfig {
    /// The settings in this process's environment (see the type's documentation).
    pub fn from_env() -> Self {
        if std::env::var_os("REQUEST_METHOD").is_some() {
            return Self::none();
        }
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// The settings given by `var`, which looks up a variable by its name (`HTTPS_PROXY`,
    /// `https_proxy`, `HTTP_PROXY`, `http_proxy`, `ALL_PROXY`, `all_proxy`, `NO_PROXY`,
    /// `no_proxy`; the upper-case name is asked first). For tests and for settings that come from
    /// somewhere else than the environment.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let first = |names: [&str; 2]| {
            names
                .into_iter()
                .find_map(&var)
                .filter(|v| !v.trim().is_empty())
        };
        let all = first(["ALL_PROXY", "all_proxy"]);
        let http = first(["HTTP_PROXY", "http_proxy"]).or_else(|| all.clone());
        let https = first(["HTTPS_PROXY", "https_proxy"]).or(all);
        let no_proxy = match first(["NO_PROXY", "no_proxy"]) {
            Some(list) => format!("{list},{LOOPBACK}"),
            None => LOOPBACK.to_string(),
        };
        Self::new(http, https, no_proxy)
    }

    /// No proxy for anything.
    pub fn none() -> Self {
        Self::new(None, None, LOOPBACK.to_string())
    }

    fn new(http: Option<String>, https: Option<String>, no_proxy: String) -> Self {
        // A proxy's password (`http://user:pw@proxy:3128`) is a secret like the client's: a proxy
        // or server echoing it, or an error quoting the setting, is scrubbed.
        for p in [&http, &https].into_iter().flatten() {
            if let Some(pw) = Url::parse(p).ok().as_ref().and_then(Url::password) {
                crate::redact::register_secret(pw);
                if let Ok(decoded) = percent_encoding::percent_decode_str(pw).decode_utf8() {
                    crate::redact::register_secret(&decoded);
                }
            }
        }
        let mut m = Matcher::builder().no(no_proxy.as_str());
        if let Some(p) = &http {
            m = m.http(p.as_str());
        }
        if let Some(p) = &https {
            m = m.https(p.as_str());
        }
        Self {
            http,
            https,
            no_proxy,
            matcher: Arc::new(m.build()),
            allow_plain_http: false,
        }
    }

    /// Lets plain `http://` requests go through a proxy (default: refused, because the proxy
    /// would see the bearer token). Only for test networks.
    pub fn allow_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }

    /// The proxy (`host:port`, without credentials) a request to `url` goes through, if any.
    pub fn proxy_for(&self, url: &Url) -> Option<String> {
        self.route(url)?;
        let uri: http::Uri = url.as_str().parse().ok()?;
        let via = self.matcher.intercept(&uri)?;
        Some(via.uri().authority()?.to_string())
    }

    /// Whether `url`'s host is this machine's loopback interface: `localhost` or a name under it
    /// (`sim.localhost`, RFC 6761), an address in `127.0.0.0/8`, `::1` or `::ffff:127.0.0.0/104`.
    /// Such requests never go through a proxy, and plain `http://` to them needs no permission.
    ///
    /// A name with a trailing dot (`localhost.`) is not loopback: it is a different name to the
    /// resolver (a DNS query, which need not answer 127.0.0.1) and to `NO_PROXY` matching, so it is
    /// treated like any other host (proxied if the variables say so, and then refused over plain
    /// http).
    ///
    /// ```
    /// use tokenwarden::client::ProxyConfig;
    /// let is = |u: &str| ProxyConfig::is_loopback(&url::Url::parse(u).unwrap());
    /// assert!(is("http://127.0.0.1:8080/") && is("http://sim.localhost/") && is("http://[::1]/"));
    /// assert!(!is("http://localhost./") && !is("https://api.mypurecloud.ie/"));
    /// ```
    pub fn is_loopback(url: &Url) -> bool {
        match url.host() {
            Some(url::Host::Domain(d)) => {
                let d = d.to_ascii_lowercase();
                d == "localhost" || d.ends_with(".localhost")
            }
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => {
                ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
            None => false,
        }
    }

    /// The proxy URL (as configured: it may hold credentials) that a request to `url` goes
    /// through. The one decision behind [`proxy_for`](Self::proxy_for), [`check`](Self::check)
    /// and the HTTP client itself ([`apply`](Self::apply)): what is checked is what is sent.
    fn route(&self, url: &Url) -> Option<&str> {
        if Self::is_loopback(url) {
            return None;
        }
        let uri: http::Uri = url.as_str().parse().ok()?;
        self.matcher.intercept(&uri)?;
        match url.scheme() {
            "https" => self.https.as_deref(),
            "http" => self.http.as_deref(),
            _ => None,
        }
    }

    /// Refuses a plain `http://` request to `url` that would go through a proxy.
    ///
    /// # Errors
    /// [`Error::Config`], naming the target's origin and the proxy (never its credentials).
    pub(crate) fn check(&self, url: &Url) -> Result<()> {
        if url.scheme() != "http" || self.allow_plain_http {
            return Ok(());
        }
        match self.proxy_for(url) {
            None => Ok(()),
            Some(proxy) => Err(Error::Config(format!(
                "{} would go through the proxy {proxy} over plain http, where the proxy could read the access token: use https, or exclude the host with NO_PROXY",
                crate::error::excerpt(&url.origin().ascii_serialization(), 200)
            ))),
        }
    }

    /// `builder` with these settings: the environment is not read again by reqwest.
    ///
    /// # Errors
    /// [`Error::Config`] when a proxy setting is not a URL (the message names the setting only:
    /// the value can hold credentials).
    pub(crate) fn apply(&self, builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder> {
        let builder = builder.no_proxy();
        let bad = |which: &str| {
            Error::Config(format!(
                "the {which} proxy setting (HTTP(S)_PROXY / ALL_PROXY) is not a proxy URL"
            ))
        };
        if let Some(p) = &self.http {
            reqwest::Proxy::http(p.as_str()).map_err(|_| bad("http"))?;
        }
        if let Some(p) = &self.https {
            reqwest::Proxy::https(p.as_str()).map_err(|_| bad("https"))?;
        }
        if self.http.is_none() && self.https.is_none() {
            return Ok(builder);
        }
        // reqwest asks `route` itself for every connection: its own NO_PROXY matching would
        // disagree with ours on names such as `localhost.`, and send loopback-looking traffic,
        // checked as direct, through the proxy.
        let config = self.clone();
        Ok(builder.proxy(reqwest::Proxy::custom(move |url| {
            config.route(url).map(str::to_string)
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> ProxyConfig {
        ProxyConfig::from_vars(move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    fn via(p: &ProxyConfig, u: &str) -> Option<String> {
        p.proxy_for(&Url::parse(u).unwrap())
    }

    #[test]
    fn loopback_never_goes_through_a_proxy() {
        let p = vars(&[
            ("HTTP_PROXY", "http://proxy.example:3128"),
            ("HTTPS_PROXY", "http://proxy.example:3128"),
            ("ALL_PROXY", "http://proxy.example:3128"),
        ]);
        for u in [
            "http://127.0.0.1:8080/oauth/token",
            "http://127.1.2.3/",
            "https://localhost:8443/api/v2/users",
            "http://LOCALHOST/",
            "http://sim.localhost:8080/",
            "http://[::1]:8080/",
            "http://[::ffff:127.0.0.1]:8080/",
        ] {
            assert_eq!(via(&p, u), None, "{u}");
            assert!(p.check(&Url::parse(u).unwrap()).is_ok(), "{u}");
        }
        assert_eq!(
            via(&p, "https://api.mypurecloud.ie/api/v2/users").as_deref(),
            Some("proxy.example:3128")
        );
        assert_eq!(
            via(&p, "http://10.0.0.1/").as_deref(),
            Some("proxy.example:3128")
        );
    }

    #[test]
    fn regression_a_trailing_dot_name_is_one_decision_proxied_and_refused_over_http() {
        // `localhost.` was taken for loopback here (checked as direct) while reqwest's NO_PROXY
        // matching sent it to the proxy: the token request went through it in clear text.
        let p = vars(&[
            ("HTTP_PROXY", "http://proxy.example:3128"),
            ("HTTPS_PROXY", "http://proxy.example:3128"),
        ]);
        for u in [
            "http://localhost.:8080/oauth/token",
            "http://sim.localhost.:8080/",
        ] {
            let url = Url::parse(u).unwrap();
            assert!(!ProxyConfig::is_loopback(&url), "{u}");
            assert_eq!(via(&p, u).as_deref(), Some("proxy.example:3128"), "{u}");
            assert!(p.check(&url).is_err(), "{u}");
        }
        // The client asks the same function: loopback direct, the rest through the proxy.
        assert_eq!(p.route(&Url::parse("http://localhost:1/").unwrap()), None);
        assert_eq!(
            p.route(&Url::parse("https://localhost.:1/").unwrap()),
            Some("http://proxy.example:3128")
        );
    }

    #[test]
    fn variables_are_read_as_curl_reads_them() {
        // ALL_PROXY is the fallback of both; the scheme's own variable wins; NO_PROXY excludes
        // domains with their subdomains, and IP ranges.
        let p = vars(&[
            ("ALL_PROXY", "http://all.example:1"),
            ("https_proxy", "http://secure.example:2"),
            ("no_proxy", "internal.example, 10.0.0.0/8"),
        ]);
        assert_eq!(
            via(&p, "https://api.example/").as_deref(),
            Some("secure.example:2")
        );
        assert_eq!(
            via(&p, "http://api.example/").as_deref(),
            Some("all.example:1")
        );
        assert_eq!(via(&p, "https://a.internal.example/"), None);
        assert_eq!(via(&p, "https://internal.example/"), None);
        assert_eq!(via(&p, "https://10.1.2.3/"), None);
        assert_eq!(
            via(&p, "https://notinternal.example/").as_deref(),
            Some("secure.example:2")
        );
        // Nothing set: nothing proxied. Empty values count as unset.
        assert_eq!(via(&ProxyConfig::none(), "https://api.example/"), None);
        let empty = vars(&[("HTTPS_PROXY", " ")]);
        assert_eq!(via(&empty, "https://api.example/"), None);
    }

    #[test]
    fn plain_http_through_a_proxy_is_refused_unless_allowed() {
        let p = vars(&[("HTTP_PROXY", "http://user:pw@proxy.example:3128")]);
        let target = Url::parse("http://api.example.test/api/v2/users?x=1").unwrap();
        let err = p.check(&target).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        assert!(
            msg.contains("http://api.example.test") && msg.contains("proxy.example:3128"),
            "{msg}"
        );
        assert!(
            !msg.contains("pw"),
            "no proxy credentials in messages: {msg}"
        );
        assert!(p.clone().allow_plain_http(true).check(&target).is_ok());
        // https through the same variables is not proxied at all (no HTTPS_PROXY).
        assert!(
            p.check(&Url::parse("https://api.example.test/").unwrap())
                .is_ok()
        );
        assert!(!format!("{p:?}").contains("pw"));
    }

    #[test]
    fn a_bad_proxy_setting_is_a_clear_error_without_its_value() {
        let p = vars(&[("HTTPS_PROXY", "http://user:secret@[bad")]);
        let err = p.apply(reqwest::Client::builder()).unwrap_err();
        assert!(err.to_string().contains("https proxy setting"), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}
