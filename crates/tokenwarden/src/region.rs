//! Genesys Cloud regions: a region name (`eu-west-1`) or domain (`mypurecloud.ie`) to API and login
//! hosts.

use crate::error::Error;

/// Every Genesys Cloud region: (name, domain).
pub const REGIONS: &[(&str, &str)] = &[
    ("us-east-1", "mypurecloud.com"),
    ("eu-west-1", "mypurecloud.ie"),
    ("ap-southeast-2", "mypurecloud.com.au"),
    ("ap-northeast-1", "mypurecloud.jp"),
    ("eu-central-1", "mypurecloud.de"),
    ("us-west-2", "usw2.pure.cloud"),
    ("ca-central-1", "cac1.pure.cloud"),
    ("ap-northeast-2", "apne2.pure.cloud"),
    ("eu-west-2", "euw2.pure.cloud"),
    ("ap-south-1", "aps1.pure.cloud"),
    ("us-east-2", "use2.us-gov-pure.cloud"),
    ("sa-east-1", "sae1.pure.cloud"),
    ("me-central-1", "mec1.pure.cloud"),
    ("ap-northeast-3", "apne3.pure.cloud"),
    ("eu-central-2", "euc2.pure.cloud"),
    ("mx-central-1", "mxc1.pure.cloud"),
    ("ap-southeast-1", "apse1.pure.cloud"),
    ("eusc-de-east-1", "edee1.eusc-pure.cloud"),
];

/// A Genesys Cloud region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    name: &'static str,
    domain: &'static str,
}

impl Region {
    /// Looks up a region by name (`eu-west-1`) or domain (`mypurecloud.ie`, also with an `api.` or
    /// `login.` prefix or an `https://` scheme), ignoring case.
    ///
    /// ```
    /// let r = tokenwarden::Region::parse("mypurecloud.ie").unwrap();
    /// assert_eq!(r.name(), "eu-west-1");
    /// assert_eq!(r.token_url(), "https://login.mypurecloud.ie/oauth/token");
    /// assert_eq!(r.api_base(), "https://api.mypurecloud.ie");
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] naming the known regions when `s` is none of them.
    pub fn parse(s: &str) -> Result<Region, Error> {
        let t = s.trim().to_ascii_lowercase();
        let t = t
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/');
        let t = t
            .strip_prefix("api.")
            .or_else(|| t.strip_prefix("login."))
            .unwrap_or(t);
        REGIONS
            .iter()
            .find(|(name, domain)| *name == t || *domain == t)
            .map(|(name, domain)| Region { name, domain })
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown Genesys Cloud region {s:?}; use a region name or domain: {}",
                    REGIONS
                        .iter()
                        .map(|(n, d)| format!("{n} ({d})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }

    /// The region name, e.g. `eu-west-1`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The domain, e.g. `mypurecloud.ie`.
    pub fn domain(&self) -> &'static str {
        self.domain
    }

    /// The API base URL, e.g. `https://api.mypurecloud.ie`.
    pub fn api_base(&self) -> String {
        format!("https://api.{}", self.domain)
    }

    /// The token endpoint, e.g. `https://login.mypurecloud.ie/oauth/token`.
    pub fn token_url(&self) -> String {
        format!("https://login.{}/oauth/token", self.domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_eighteen_by_name_and_domain() {
        assert_eq!(REGIONS.len(), 18);
        for (name, domain) in REGIONS {
            assert_eq!(Region::parse(name).unwrap().domain(), *domain);
            assert_eq!(Region::parse(domain).unwrap().name(), *name);
            assert_eq!(
                Region::parse(&format!("https://api.{domain}/"))
                    .unwrap()
                    .name(),
                *name
            );
        }
        assert_eq!(
            Region::parse("US-EAST-1").unwrap().domain(),
            "mypurecloud.com"
        );
        let e = Region::parse("mars-1").unwrap_err().to_string();
        assert!(e.contains("eu-west-1"), "{e}");
    }
}
