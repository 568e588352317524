//! The settings and how each source spells them: the one table behind resolution, `tokenwarden
//! config` and the README's configuration section.

/// A connection setting that several sources can give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Key {
    Region,
    TokenUrl,
    ApiBase,
    ClientId,
    ClientSecret,
    AccessToken,
    ClientAuth,
    Scope,
    Grant,
    AuthorizeUrl,
    RedirectUri,
    TokenStore,
}

/// How one setting is spelled by each source.
#[derive(Debug)]
pub(crate) struct Spec {
    pub(crate) key: Key,
    /// The name in `tokenwarden config` output (and the main key in a profile).
    pub(crate) name: &'static str,
    /// Flags, the first being the plain one.
    pub(crate) flags: &'static [&'static str],
    /// The environment variable.
    pub(crate) env: Option<&'static str>,
    /// Keys in a tokenwarden profile.
    pub(crate) profile: &'static [&'static str],
    /// Keys in a gc CLI profile.
    pub(crate) gc: &'static [&'static str],
    /// Shown as `[set]`, never as its value.
    pub(crate) secret: bool,
}

/// The environment variables Genesys users already set (the gc CLI, the Terraform provider).
pub(crate) const ENV_REGION: &str = "GENESYSCLOUD_REGION";
pub(crate) const ENV_CLIENT_ID: &str = "GENESYSCLOUD_OAUTHCLIENT_ID";
pub(crate) const ENV_CLIENT_SECRET: &str = "GENESYSCLOUD_OAUTHCLIENT_SECRET";
pub(crate) const ENV_ACCESS_TOKEN: &str = "GENESYSCLOUD_ACCESS_TOKEN";
/// tokenwarden's own: where the config file is and which profile to use.
pub(crate) const ENV_CONFIG: &str = "TOKENWARDEN_CONFIG";
pub(crate) const ENV_GRANT: &str = "TOKENWARDEN_GRANT";
pub(crate) const ENV_PROFILE: &str = "TOKENWARDEN_PROFILE";

/// Every setting, in the order `tokenwarden config` shows them.
pub(crate) const SETTINGS: &[Spec] = &[
    Spec {
        key: Key::Region,
        name: "region",
        flags: &["--region"],
        env: Some(ENV_REGION),
        profile: &["region", "environment"],
        gc: &["environment"],
        secret: false,
    },
    Spec {
        key: Key::TokenUrl,
        name: "token_url",
        flags: &["--token-url"],
        env: Some("TOKENWARDEN_TOKEN_URL"),
        profile: &["token_url"],
        gc: &[],
        secret: false,
    },
    Spec {
        key: Key::ApiBase,
        name: "api_base",
        flags: &["--api-base"],
        env: Some("TOKENWARDEN_API_BASE"),
        profile: &["api_base"],
        gc: &[],
        secret: false,
    },
    Spec {
        key: Key::ClientId,
        name: "client_id",
        flags: &["--client-id"],
        env: Some(ENV_CLIENT_ID),
        profile: &["client_id"],
        gc: &["client_credentials"],
        secret: false,
    },
    Spec {
        key: Key::ClientSecret,
        name: "client_secret",
        flags: &[
            "--client-secret",
            "--client-secret-file",
            "--client-secret-stdin",
        ],
        env: Some(ENV_CLIENT_SECRET),
        profile: &["client_secret", "client_secret_file"],
        gc: &["client_secret"],
        secret: true,
    },
    Spec {
        key: Key::AccessToken,
        name: "access_token",
        flags: &[],
        env: Some(ENV_ACCESS_TOKEN),
        profile: &[],
        gc: &[],
        secret: true,
    },
    Spec {
        key: Key::ClientAuth,
        name: "client_auth",
        flags: &["--client-auth"],
        env: Some("TOKENWARDEN_CLIENT_AUTH"),
        profile: &["client_auth"],
        gc: &[],
        secret: false,
    },
    Spec {
        key: Key::Scope,
        name: "scope",
        flags: &["--scope"],
        env: Some("TOKENWARDEN_SCOPE"),
        profile: &["scope"],
        gc: &[],
        secret: false,
    },
    Spec {
        key: Key::Grant,
        name: "grant",
        flags: &["--as-user"],
        env: Some(ENV_GRANT),
        profile: &["grant"],
        gc: &[],
        secret: false,
    },
    Spec {
        key: Key::AuthorizeUrl,
        name: "authorize_url",
        flags: &["--authorize-url"],
        env: Some("TOKENWARDEN_AUTHORIZE_URL"),
        profile: &["authorize_url"],
        gc: &[],
        secret: false,
    },
    Spec {
        key: Key::RedirectUri,
        name: "redirect_uri",
        flags: &["--redirect-uri"],
        env: Some("TOKENWARDEN_REDIRECT_URI"),
        profile: &["redirect_uri"],
        gc: &[],
        secret: false,
    },
    // A Redis URL's password is masked where it is shown (`Given::shown`).
    Spec {
        key: Key::TokenStore,
        name: "token_store",
        flags: &["--token-store"],
        env: Some("TOKENWARDEN_TOKEN_STORE"),
        profile: &["token_store"],
        gc: &[],
        secret: false,
    },
];

impl Key {
    /// This setting's row in [`SETTINGS`].
    pub(crate) fn spec(self) -> &'static Spec {
        SETTINGS
            .iter()
            .find(|s| s.key == self)
            .unwrap_or(&SETTINGS[0])
    }

    /// How to set it, for a setting nobody set: "set with --scope, TOKENWARDEN_SCOPE or scope
    /// in a profile".
    pub(crate) fn how_to_set(self) -> String {
        let s = self.spec();
        let mut ways: Vec<String> = s.flags.iter().take(1).map(|f| f.to_string()).collect();
        ways.extend(s.env.map(str::to_string));
        ways.extend(s.profile.first().map(|k| format!("{k} in a profile")));
        let ways: Vec<&str> = ways.iter().map(String::as_str).collect();
        format!("set with {}", super::endpoint::or_list(&ways))
    }
}

/// Every key a tokenwarden profile may hold, for "did you mean" on a typo.
pub(crate) fn profile_keys() -> impl Iterator<Item = &'static str> {
    SETTINGS.iter().flat_map(|s| s.profile.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_one_row() {
        for s in SETTINGS {
            assert_eq!(s.key.spec().name, s.name);
            assert_eq!(SETTINGS.iter().filter(|t| t.key == s.key).count(), 1);
        }
        assert_eq!(
            Key::Scope.how_to_set(),
            "set with --scope, TOKENWARDEN_SCOPE or scope in a profile"
        );
        assert_eq!(
            Key::AccessToken.how_to_set(),
            "set with GENESYSCLOUD_ACCESS_TOKEN"
        );
    }
}
