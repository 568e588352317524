//! Where a request goes: paths and `nextUri`s resolved against the API base, and the one check
//! that what people type and what batch inputs hold stays on the API's origin.

use super::{ApiClient, policy};
use crate::error::{Error, Result, excerpt};
use url::Url;

impl ApiClient {
    /// Resolves a path (or `nextUri`) against the API base; absolute URLs are kept as they are.
    pub(crate) fn resolve(&self, path_or_url: &str) -> Result<Url> {
        resolve(&self.inner.core.origin, path_or_url)
    }

    /// Where a path typed by a person sends a request, checked as the batch engine checks its
    /// records: a path below the API base starting with one `/`, or an absolute URL, whose
    /// target stays on the API's origin. `//host/x`, `/\\host/x` and `http://other-host/x` are
    /// refused, as is a path without its leading `/` (`api/v2/users` would resolve against the
    /// base's own path).
    ///
    /// ```no_run
    /// # fn run(client: tokenwarden::ApiClient) {
    /// assert!(client.url_on_origin("/api/v2/users/me").is_ok());
    /// assert!(client.url_on_origin("//elsewhere.example/x").is_err());
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] saying why, in words that start with the path.
    pub fn url_on_origin(&self, path_or_url: &str) -> Result<Url> {
        let absolute = Url::parse(path_or_url).is_ok();
        if !absolute && !path_or_url.starts_with('/') {
            return Err(Error::Config(format!(
                "path '{}' must start with / (e.g. /api/v2/users)",
                excerpt(path_or_url, QUOTED_PATH)
            )));
        }
        // An absolute URL replaces the base when joined: its own origin is what is checked.
        locate(&self.inner.core.origin, path_or_url)
            .map_err(|why| Error::Config(format!("path {why}")))
    }
}

/// Longest excerpt of a refused path quoted in its error.
const QUOTED_PATH: usize = 200;

/// `path` resolved against `base` as requests resolve it, if the result stays on the base's
/// origin; otherwise why not (a phrase after "path"). The one origin check of what people type
/// and what batch inputs hold: a URL parser reads `/\\host/x` as `//host/x` and drops tabs and
/// newlines, so a check of the text alone is not enough, and paths with control characters are
/// refused outright.
pub(crate) fn locate(base: &Url, path: &str) -> std::result::Result<Url, String> {
    let quoted = || excerpt(path, QUOTED_PATH);
    if path.chars().any(char::is_control) {
        return Err(format!(
            "'{}' contains control characters (a URL parser would drop them): not sent",
            quoted()
        ));
    }
    let url = base
        .join(path)
        .map_err(|e| format!("'{}' is not a valid path ({e}): not sent", quoted()))?;
    // `Url::origin` equality, without its two allocations (this runs for every forwarded request).
    if !policy::same_origin(&url, base) {
        return Err(format!(
            "'{}' leads away from the API ({} instead of {}): not sent",
            quoted(),
            url.origin().ascii_serialization(),
            base.origin().ascii_serialization()
        ));
    }
    Ok(url)
}

/// `path_or_url` against `base`: absolute `http(s)` URLs as they are, anything else as a reference
/// relative to the base (Genesys paths start with `/api/v2/`).
pub(crate) fn resolve(base: &Url, path_or_url: &str) -> Result<Url> {
    match Url::parse(path_or_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(u),
        Ok(u) => Err(Error::Config(format!(
            "unsupported URL scheme {} in {}",
            excerpt(u.scheme(), 40),
            excerpt(path_or_url, 200)
        ))),
        Err(_) => base.join(path_or_url).map_err(|e| {
            Error::Config(format!(
                "{} is not a path or URL: {e}",
                excerpt(path_or_url, 200)
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_paths_and_next_uris() {
        let base = Url::parse("https://api.mypurecloud.ie").unwrap();
        assert_eq!(
            resolve(&base, "/api/v2/users?pageSize=25&pageNumber=2")
                .unwrap()
                .as_str(),
            "https://api.mypurecloud.ie/api/v2/users?pageSize=25&pageNumber=2"
        );
        assert_eq!(
            resolve(&base, "https://other.example/x").unwrap().as_str(),
            "https://other.example/x"
        );
        assert!(resolve(&base, "ftp://x/y").is_err());
        let local = Url::parse("http://127.0.0.1:4000/").unwrap();
        assert_eq!(
            resolve(&local, "/api/v2/users").unwrap().as_str(),
            "http://127.0.0.1:4000/api/v2/users"
        );
    }
}
