//! The precedence, tested for every pair of sources of every setting that several sources can
//! give, including the settings a region or a token URL stands for; then the messages.

use super::table::{Key, SETTINGS};
use super::*;
use exit::{CONFIG, USAGE};

/// The CLI's exit statuses for the two kinds of error (its `exit` module maps them so).
mod exit {
    pub(super) const USAGE: u8 = 2;
    pub(super) const CONFIG: u8 = 3;

    pub(super) fn code(e: &crate::Error) -> u8 {
        if e.is_usage() { USAGE } else { CONFIG }
    }
}
use std::collections::BTreeMap;
use tokenwarden::{Region, grant::ClientAuth};

/// A source as a test places a value in it; the secret has more than one way per source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Src {
    Flag,
    FlagFile,
    FlagStdin,
    Env,
    Tw,
    TwFile,
    Gc,
}

impl Src {
    fn rank(self) -> u8 {
        match self {
            Src::Flag | Src::FlagFile | Src::FlagStdin => 0,
            Src::Env => 1,
            Src::Tw | Src::TwFile => 2,
            Src::Gc => 3,
        }
    }

    /// The label `Settings::sources` and `tokenwarden config` give it, for `key`.
    fn label(self, key: Key) -> String {
        let spec = key.spec();
        match self {
            Src::Flag => spec.flags[0].to_string(),
            Src::FlagFile => "--client-secret-file".into(),
            Src::FlagStdin => "--client-secret-stdin".into(),
            Src::Env => spec.env.unwrap_or_default().to_string(),
            Src::Tw => format!("{} in profile 'default'", spec.profile[0]),
            Src::TwFile => "client_secret_file in profile 'default'".into(),
            Src::Gc => format!("{} in gc profile 'DEFAULT'", spec.gc[0]),
        }
    }
}

/// The sources that can give `key`, each way once.
fn sources_of(key: Key) -> Vec<Src> {
    let spec = key.spec();
    let mut v = Vec::new();
    if !spec.flags.is_empty() {
        v.push(Src::Flag);
    }
    if key == Key::ClientSecret {
        v.extend([Src::FlagFile, Src::FlagStdin]);
    }
    if spec.env.is_some() {
        v.push(Src::Env);
    }
    if !spec.profile.is_empty() {
        v.push(Src::Tw);
    }
    if key == Key::ClientSecret {
        v.push(Src::TwFile);
    }
    if !spec.gc.is_empty() {
        v.push(Src::Gc);
    }
    v
}

/// Flags, environment, both files and standard input, built up by [`Case::set`].
#[derive(Default)]
struct Case {
    flags: Flags,
    env: BTreeMap<String, String>,
    tw: Vec<String>,
    gc: Vec<String>,
    stdin: String,
    secret_files: Vec<(String, String)>,
}

impl Case {
    fn set(&mut self, key: Key, src: Src, value: &str) -> &mut Self {
        let spec = key.spec();
        match src {
            Src::Flag => {
                let v = Some(value.to_string());
                let f = &mut self.flags;
                match key {
                    Key::Region => f.region = v,
                    Key::TokenUrl => f.token_url = v,
                    Key::ApiBase => f.api_base = v,
                    Key::ClientId => f.client_id = v,
                    Key::ClientSecret => f.client_secret = Some(FlagSecret::from(value)),
                    Key::ClientAuth => {
                        f.client_auth = Some(if value == "form" { "form" } else { "basic" }.into())
                    }
                    Key::Scope => f.scope = v,
                    Key::Grant => f.as_user = value == "user",
                    Key::AuthorizeUrl => f.authorize_url = v,
                    Key::RedirectUri => f.redirect_uri = v,
                    Key::TokenStore => f.token_store = v,
                    Key::AccessToken => panic!("no flag for the access token"),
                }
            }
            Src::FlagFile => {
                let name = format!("flag-secret-{value}");
                self.secret_files.push((name.clone(), format!("{value}\n")));
                self.flags.client_secret_file = Some(PathBuf::from(format!("@DIR@/{name}")));
            }
            Src::FlagStdin => {
                self.flags.client_secret_stdin = true;
                self.stdin = format!("{value}\n");
            }
            Src::Env => {
                self.env
                    .insert(spec.env.unwrap().to_string(), value.to_string());
            }
            Src::Tw => self.tw.push(format!("{} = {value:?}", spec.profile[0])),
            Src::TwFile => {
                let name = format!("profile-secret-{value}");
                self.secret_files.push((name.clone(), format!("{value}\n")));
                self.tw.push(format!("client_secret_file = {name:?}"));
            }
            Src::Gc => self.gc.push(format!("{} = {value:?}", spec.gc[0])),
        }
        self
    }

    /// Writes the files and reads every source.
    fn layers(&self, dir: &std::path::Path) -> Result<Layers> {
        let tw = dir.join("tw.toml");
        let gc = dir.join("gc.toml");
        std::fs::write(&tw, format!("[default]\n{}\n", self.tw.join("\n"))).unwrap();
        std::fs::write(&gc, format!("[DEFAULT]\n{}\n", self.gc.join("\n"))).unwrap();
        for (name, text) in &self.secret_files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let mut flags = self.flags.clone();
        if let Some(p) = &flags.client_secret_file {
            let p = p.to_string_lossy().replace("@DIR@", &dir.to_string_lossy());
            flags.client_secret_file = Some(PathBuf::from(p));
        }
        let env = self.env.clone();
        let env_fn = move |k: &str| env.get(k).cloned();
        let inputs = Inputs {
            flags: &flags,
            env: &env_fn,
            default_config: Some(tw),
            gc_config: Some(gc),
        };
        Layers::collect(&inputs)
    }

    fn run(&self) -> Result<(Settings, Vec<Warning>, Vec<Row>)> {
        let dir = tempfile::tempdir().unwrap();
        let mut layers = self.layers(dir.path())?;
        let warnings = std::mem::take(&mut layers.warnings);
        let rows = explain(&layers);
        let stdin = self.stdin.clone();
        let settings = settings_from(layers, &mut || Ok(zeroize::Zeroizing::new(stdin.clone())))?;
        Ok((settings, warnings, rows))
    }

    #[track_caller]
    fn ok(&self) -> (Settings, Vec<Warning>, Vec<Row>) {
        self.run().unwrap_or_else(|e| panic!("{e:#}"))
    }

    #[track_caller]
    fn err(&self) -> (u8, String) {
        match self.run() {
            Ok((s, ..)) => panic!("resolved, expected an error: {s:?}"),
            Err(e) => (exit::code(&e), format!("{e:#}")),
        }
    }
}

fn source_of<'a>(s: &'a Settings, what: &str) -> &'a str {
    s.sources
        .iter()
        .find(|(w, _)| w == what)
        .map_or("", |(_, f)| f.as_str())
}

fn row<'a>(rows: &'a [Row], name: &str) -> &'a Row {
    rows.iter().find(|r| r.name == name).unwrap()
}

fn client(s: &Settings) -> (String, String) {
    match &s.credentials {
        Credentials::Client { id, secret } => (id.clone(), secret.expose_secret().to_string()),
        Credentials::User { id, secret } => (
            id.clone(),
            secret
                .as_ref()
                .map(|s| s.expose_secret().to_string())
                .unwrap_or_default(),
        ),
        Credentials::Static(_) => panic!("static token"),
    }
}

/// Every other setting given by flags, so that only `key` is in play.
fn baseline(key: Key) -> Case {
    let mut c = Case::default();
    if !matches!(
        key,
        Key::Region | Key::TokenUrl | Key::ApiBase | Key::AuthorizeUrl
    ) {
        c.set(
            Key::TokenUrl,
            Src::Flag,
            "https://login.base.example/oauth/token",
        );
    }
    if matches!(key, Key::ApiBase | Key::AuthorizeUrl) {
        // A token URL gives an API base (and an authorize URL) at its own rank: keep it at the
        // profile, where the explicit setting beats it.
        c.set(
            Key::TokenUrl,
            Src::Tw,
            "https://login.base.example/oauth/token",
        );
    }
    if key != Key::ClientId {
        c.set(Key::ClientId, Src::Flag, "id-base");
    }
    if key != Key::ClientSecret {
        c.flags.client_secret = Some(FlagSecret::from("secret-base"));
    }
    c
}

/// Two distinct values of `key` for the higher (`hi`) and the lower source.
fn values(key: Key) -> (&'static str, &'static str) {
    match key {
        Key::Region => ("eu-west-1", "ap-south-1"),
        Key::TokenUrl => (
            "https://login.hi.example/oauth/token",
            "https://login.lo.example/oauth/token",
        ),
        Key::ApiBase => ("https://api.hi.example", "https://api.lo.example"),
        Key::ClientId => ("id-hi", "id-lo"),
        Key::ClientSecret => ("secret-hi", "secret-lo"),
        Key::ClientAuth => ("form", "basic"),
        Key::Scope => ("scope-hi", "scope-lo"),
        Key::TokenStore => ("redis://hi.example", "file:/lo"),
        Key::AccessToken => ("tok-hi", "tok-lo"),
        Key::Grant => ("user", "client_credentials"),
        Key::AuthorizeUrl => (
            "https://login.hi.example/oauth/authorize",
            "https://login.lo.example/oauth/authorize",
        ),
        Key::RedirectUri => (
            "http://127.0.0.1:1111/callback",
            "http://127.0.0.1:2222/callback",
        ),
    }
}

/// What the settings say the effective value of `key` is, and where it came from.
fn effective(s: &Settings, key: Key) -> (String, String) {
    match key {
        Key::Region => {
            let region = ["eu-west-1", "ap-south-1"]
                .into_iter()
                .find(|r| Region::parse(r).unwrap().token_url() == s.token_url_text())
                .unwrap_or("?");
            let from = source_of(s, "token URL");
            (
                region.into(),
                from.trim_start_matches("region, from ").into(),
            )
        }
        Key::TokenUrl => (
            s.token_url_text().to_string(),
            source_of(s, "token URL").into(),
        ),
        Key::ApiBase => (s.api_base.clone(), source_of(s, "API base").into()),
        Key::ClientId => (client(s).0, source_of(s, "client id").into()),
        Key::ClientSecret => (client(s).1, source_of(s, "client secret").into()),
        Key::ClientAuth => (
            match s.client_auth {
                ClientAuth::FormFields => "form".into(),
                _ => "basic".into(),
            },
            String::new(),
        ),
        Key::Scope => (s.scope.clone().unwrap_or_default(), String::new()),
        Key::Grant => (
            match s.credentials {
                Credentials::User { .. } => "user".into(),
                _ => "client_credentials".into(),
            },
            String::new(),
        ),
        Key::AuthorizeUrl => (s.authorize_url.clone().unwrap_or_default(), String::new()),
        Key::RedirectUri => (s.redirect_uri.clone(), String::new()),
        Key::TokenStore => s
            .token_store
            .as_ref()
            .map(|n| (n.value.clone(), n.place.clone()))
            .unwrap_or_default(),
        Key::AccessToken => unreachable!(),
    }
}

#[test]
fn every_pair_of_sources_of_every_setting_is_ranked_flags_env_profile_gc() {
    let mut pairs = 0;
    for spec in SETTINGS.iter().filter(|s| s.key != Key::AccessToken) {
        let key = spec.key;
        let srcs = sources_of(key);
        for &hi in &srcs {
            for &lo in srcs.iter().filter(|lo| lo.rank() > hi.rank()) {
                let (v_hi, v_lo) = values(key);
                let mut case = baseline(key);
                case.set(key, lo, v_lo).set(key, hi, v_hi);
                let what = format!("{} from {hi:?} over {lo:?}", spec.name);
                let (s, _, rows) = case.ok();
                let (value, from) = effective(&s, key);
                assert_eq!(value, v_hi, "{what}");
                assert!(
                    from.is_empty() || from.starts_with(&hi.label(key)),
                    "{what}: from {from:?}"
                );
                // `tokenwarden config` agrees, and shows the loser as overridden.
                let r = row(&rows, spec.name);
                let shown_hi = if spec.secret { "[set]" } else { v_hi };
                assert!(
                    r.value.as_deref().unwrap_or("").starts_with(shown_hi),
                    "{what}: {r:?}"
                );
                assert!(
                    r.source
                        .as_deref()
                        .unwrap_or("")
                        .starts_with(&hi.label(key)),
                    "{what}: {r:?}"
                );
                assert_eq!(r.overridden.len(), 1, "{what}: {r:?}");
                assert!(
                    r.overridden[0].1.starts_with(&lo.label(key)),
                    "{what}: {r:?}"
                );
                pairs += 1;
            }
        }
    }
    // region 6, token_url 3, api_base 3, client_id 6, client_secret 17 (7 ways over 4 ranks),
    // client_auth 3, scope 3, grant 3, authorize_url 3, redirect_uri 3, token_store 3.
    assert_eq!(pairs, 53);
}

/// A region and a URL at sources of different ranks: the more specific source decides, whichever
/// key it used. (A profile's `token_url` used to beat `GENESYSCLOUD_REGION`.)
#[test]
fn regression_a_region_and_an_endpoint_url_are_ranked_by_source_not_by_key() {
    let region = Region::parse("eu-west-1").unwrap();
    let t_url = "https://login.other.example/oauth/token";
    let a_url = "https://api.other.example";
    let mut checked = 0;
    for r_src in sources_of(Key::Region) {
        for (key, url) in [(Key::TokenUrl, t_url), (Key::ApiBase, a_url)] {
            for u_src in sources_of(key)
                .into_iter()
                .filter(|s| s.rank() != r_src.rank())
            {
                let mut case = baseline(Key::Region);
                case.set(Key::Region, r_src, "eu-west-1")
                    .set(key, u_src, url);
                let what = format!("region from {r_src:?}, {key:?} from {u_src:?}");
                let (s, _, _) = case.ok();
                let region_wins = r_src.rank() < u_src.rank();
                match (key, region_wins) {
                    (Key::TokenUrl, true) | (Key::ApiBase, true) => {
                        assert_eq!(s.token_url_text(), region.token_url(), "{what}");
                        assert_eq!(s.api_base, region.api_base(), "{what}");
                    }
                    (Key::TokenUrl, false) => {
                        // The URL's source also gives the API base, beside it.
                        assert_eq!(s.token_url_text(), t_url, "{what}");
                        assert_eq!(s.api_base, "https://api.other.example", "{what}");
                    }
                    _ => {
                        assert_eq!(s.api_base, a_url, "{what}");
                        assert_eq!(s.token_url_text(), region.token_url(), "{what}");
                    }
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 18);
}

#[test]
fn within_one_source_the_explicit_url_beats_the_region() {
    for src in [Src::Flag, Src::Env, Src::Tw] {
        let mut case = baseline(Key::Region);
        case.set(Key::Region, src, "eu-west-1").set(
            Key::TokenUrl,
            src,
            "https://login.other.example/oauth/token",
        );
        let (s, ..) = case.ok();
        assert_eq!(
            s.token_url_text(),
            "https://login.other.example/oauth/token",
            "{src:?}"
        );
        assert_eq!(
            s.api_base, "https://api.mypurecloud.ie",
            "{src:?}: region's API"
        );
    }
}

#[test]
fn a_token_url_beats_an_api_base_from_a_lower_source() {
    // --token-url points at another provider: a profile's api_base belongs to another setup.
    let mut case = baseline(Key::TokenUrl);
    case.set(
        Key::TokenUrl,
        Src::Flag,
        "http://127.0.0.1:8080/oauth/token",
    )
    .set(Key::ApiBase, Src::Tw, "https://api.mypurecloud.ie");
    let (s, _, rows) = case.ok();
    assert_eq!(s.api_base, "http://127.0.0.1:8080");
    assert_eq!(
        row(&rows, "api_base").source.as_deref(),
        Some("derived from the token URL (--token-url)")
    );
    assert_eq!(row(&rows, "api_base").overridden.len(), 1);
}

#[test]
fn the_access_token_in_the_environment_against_each_source_of_client_credentials() {
    for src in [Src::Flag, Src::Env, Src::Tw, Src::Gc] {
        let mut case = Case::default();
        case.set(Key::Region, Src::Flag, "eu-west-1")
            .set(Key::AccessToken, Src::Env, "tok-env")
            .set(Key::ClientId, src, "id")
            .set(Key::ClientSecret, src, "secret");
        let (s, _, rows) = case.ok();
        let client_wins = src.rank() <= 1;
        assert_eq!(
            matches!(s.credentials, Credentials::Client { .. }),
            client_wins,
            "{src:?}"
        );
        let note = |name| row(&rows, name).note.clone().unwrap_or_default();
        if client_wins {
            assert!(note("access_token").starts_with("not used"), "{src:?}");
        } else {
            assert!(note("client_id").starts_with("not used"), "{src:?}");
            assert_eq!(
                source_of(&s, "access token"),
                "GENESYSCLOUD_ACCESS_TOKEN",
                "{src:?}"
            );
        }
    }
}

#[test]
fn id_and_secret_may_come_from_different_sources() {
    let mut case = Case::default();
    case.set(Key::Region, Src::Gc, "mypurecloud.jp")
        .set(Key::ClientId, Src::Env, "id-env")
        .set(Key::ClientSecret, Src::Tw, "secret-tw");
    let (s, ..) = case.ok();
    assert_eq!(s.api_base, "https://api.mypurecloud.jp");
    assert_eq!(client(&s), ("id-env".into(), "secret-tw".into()));
    let hint = s.credentials_hint();
    assert!(
        hint.contains("\"id-env\" (from GENESYSCLOUD_OAUTHCLIENT_ID)"),
        "{hint}"
    );
    assert!(
        hint.contains("secret from client_secret in profile 'default'"),
        "{hint}"
    );
    assert!(!hint.contains("secret-tw"), "{hint}");
}

#[test]
fn an_invalid_region_in_the_environment_does_not_matter_when_both_urls_are_given() {
    let mut case = baseline(Key::TokenUrl);
    case.set(Key::Region, Src::Env, "mars-1")
        .set(Key::TokenUrl, Src::Flag, "http://127.0.0.1:9/oauth/token")
        .set(Key::ApiBase, Src::Flag, "http://127.0.0.1:9");
    let (s, _, rows) = case.ok();
    assert_eq!(s.api_base, "http://127.0.0.1:9");
    assert!(
        row(&rows, "region")
            .note
            .as_deref()
            .unwrap()
            .starts_with("not used")
    );
    // Used, it is an error that names the variable (exit 3: configuration, not typed).
    let mut case = baseline(Key::Region);
    case.set(Key::Region, Src::Env, "eu-west-9");
    let (code, m) = case.err();
    assert_eq!(code, CONFIG);
    assert_eq!(
        m,
        "unknown region 'eu-west-9' in GENESYSCLOUD_REGION; did you mean eu-west-1 or eu-west-2?"
    );
    // Typed, it is a usage error in one short line.
    let mut case = baseline(Key::Region);
    case.set(Key::Region, Src::Flag, "eu-west-9");
    assert_eq!(
        case.err(),
        (
            USAGE,
            "unknown region 'eu-west-9'; did you mean eu-west-1 or eu-west-2?".into()
        )
    );
}

#[test]
fn regression_a_token_url_that_is_not_a_url_is_an_error_not_a_panic() {
    let mut case = baseline(Key::TokenUrl);
    case.set(Key::TokenUrl, Src::Flag, "not-a-url");
    let (code, m) = case.err();
    assert_eq!(code, USAGE);
    assert!(
        m.starts_with("token URL 'not-a-url' (--token-url) is not usable"),
        "{m}"
    );
    let mut case = baseline(Key::ApiBase);
    case.set(Key::ApiBase, Src::Tw, "::");
    let (code, m) = case.err();
    assert_eq!(code, CONFIG);
    assert!(m.contains("api_base in profile 'default'"), "{m}");
}

#[test]
fn plain_http_off_loopback_is_refused_naming_the_flag_that_allows_it() {
    let mut case = baseline(Key::TokenUrl);
    case.set(Key::TokenUrl, Src::Env, "http://tokens.example/oauth/token");
    let (code, m) = case.err();
    assert_eq!(code, CONFIG);
    assert!(m.contains("(TOKENWARDEN_TOKEN_URL) is plain http"), "{m}");
    assert!(m.contains("--allow-insecure-http"), "{m}");
    case.flags.allow_insecure_http = true;
    assert_eq!(case.ok().0.api_base, "http://tokens.example");
}

#[test]
fn missing_settings_say_what_to_set() {
    let (code, m) = Case::default().err();
    assert_eq!(code, CONFIG);
    assert!(m.starts_with("no region or token URL"), "{m}");
    let mut case = Case::default();
    case.set(Key::Region, Src::Flag, "eu-west-1");
    assert!(case.err().1.starts_with("no credentials"));
    case.set(Key::ClientId, Src::Gc, "gc-id");
    let m = case.err().1;
    assert!(m.starts_with("no client secret for client id 'gc-id' (from client_credentials in gc profile 'DEFAULT'"), "{m}");
    let mut case = Case::default();
    case.set(Key::Region, Src::Flag, "eu-west-1")
        .set(Key::ClientSecret, Src::Env, "s");
    assert!(case.err().1.starts_with("no client id"));
}

#[test]
fn secret_files_missing_or_empty() {
    let mut case = baseline(Key::ClientSecret);
    case.flags.client_secret_file = Some(PathBuf::from("/no/such/secret"));
    let (code, m) = case.err();
    assert_eq!(code, USAGE, "a file named on the command line");
    assert!(m.contains("/no/such/secret"), "{m}");
    let mut case = baseline(Key::ClientSecret);
    case.tw
        .push("client_secret_file = \"/no/such/secret\"".into());
    assert_eq!(case.err().0, CONFIG, "a file named in a profile");
    let mut case = baseline(Key::ClientSecret);
    case.set(Key::ClientSecret, Src::FlagStdin, "");
    let (code, m) = case.err();
    assert_eq!(code, CONFIG);
    assert!(m.contains("standard input"), "{m}");
    // A losing secret file is never read, so it may be missing.
    let mut case = baseline(Key::ClientSecret);
    case.set(Key::ClientSecret, Src::Env, "from-env");
    case.tw
        .push("client_secret_file = \"/no/such/secret\"".into());
    assert_eq!(client(&case.ok().0).1, "from-env");
}

#[test]
fn the_secret_on_the_command_line_is_warned_about_always() {
    let (_, w, _) = baseline(Key::Region)
        .set(Key::Region, Src::Flag, "eu-west-1")
        .ok();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].always && w[0].text.contains("process list"), "{w:?}");
}

/// Reads flags, `env` and the gc file only (no tokenwarden file at the default place).
fn collect(
    flags: &Flags,
    env: &dyn Fn(&str) -> Option<String>,
    gc_config: Option<PathBuf>,
) -> Result<Layers> {
    Layers::collect(&Inputs {
        flags,
        env,
        default_config: None,
        gc_config,
    })
}

#[test]
fn config_files_and_profiles_named_explicitly_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let flags = Flags {
        config: Some(dir.path().join("missing.toml")),
        ..Flags::default()
    };
    let e = collect(&flags, &|_| None, None).unwrap_err();
    assert_eq!(exit::code(&e), USAGE);
    assert!(
        e.to_string()
            .contains("missing.toml (--config) does not exist"),
        "{e}"
    );

    let env = |k: &str| (k == "TOKENWARDEN_CONFIG").then(|| "/no/such.toml".to_string());
    let e = collect(&Flags::default(), &env, None).unwrap_err();
    assert_eq!(exit::code(&e), CONFIG);
    assert!(
        e.to_string()
            .contains("(TOKENWARDEN_CONFIG) does not exist"),
        "{e}"
    );

    // A profile asked for by name, with the near ones offered.
    let mut case = baseline(Key::Region);
    case.flags.profile = Some("defualt".into());
    let (code, m) = case.err();
    assert_eq!(code, USAGE);
    assert!(m.starts_with("profile 'defualt' not found in"), "{m}");
    assert!(m.ends_with("did you mean default or DEFAULT?"), "{m}");
    let mut case = baseline(Key::Region);
    case.env.insert("TOKENWARDEN_PROFILE".into(), "prod".into());
    let (code, m) = case.err();
    assert_eq!(code, CONFIG);
    assert!(m.ends_with("profiles there: default, DEFAULT"), "{m}");
}

#[test]
fn a_broken_gc_file_is_warned_about_and_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let gc = dir.path().join("gc.toml");
    std::fs::write(&gc, "[DEFAULT\nclient_secret = \"gc-secret-value\"").unwrap();
    let flags = Flags {
        region: Some("eu-west-1".into()),
        ..Flags::default()
    };
    let l = collect(&flags, &|_| None, Some(gc)).unwrap();
    assert!(l.given.iter().all(|(k, _)| *k == Key::Region));
    assert_eq!(l.warnings.len(), 1);
    assert!(
        l.warnings[0]
            .text
            .starts_with("ignoring the gc CLI's config")
    );
    assert!(!l.warnings[0].text.contains("gc-secret-value"));
}

#[test]
fn a_broken_tokenwarden_file_is_a_configuration_error_without_its_text() {
    let mut case = baseline(Key::Region);
    case.set(Key::Region, Src::Flag, "eu-west-1");
    case.tw
        .push("client_secret = \"hunter2-secret-in-a-broken-line".into());
    let (code, m) = case.err();
    assert_eq!(code, CONFIG);
    assert!(m.contains("is not valid TOML: line 2, column"), "{m}");
    assert!(!m.contains("hunter2"), "{m}");
}

mod hostile_files {
    use super::super::file::{Dialect, read_profile};
    use proptest::prelude::*;
    use std::path::Path;

    /// TOML-ish text: fragments that tokenise, in any order, so the parser goes deep.
    fn tomlish() -> impl Strategy<Value = String> {
        let fragment = prop_oneof![
            Just("[default]\n".to_string()),
            Just("[DEFAULT]\n".to_string()),
            Just("[a.b]\n".to_string()),
            Just("[[arr]]\n".to_string()),
            Just("region = \"eu-west-1\"\n".to_string()),
            Just("client_secret = 123\n".to_string()),
            Just("client_secret_file = \"~/x\"\n".to_string()),
            Just("token_url = [1, [2, [3]]]\n".to_string()),
            Just("api_base = { x = 1 }\n".to_string()),
            Just("client_id = \"\"\n".to_string()),
            Just("regoin = 'x'\n".to_string()),
            Just("\"\\u00e9\" = 1\n".to_string()),
            Just("x = 1979-05-27T07:32:00Z\n".to_string()),
            Just("=".to_string()),
            Just("\"".to_string()),
            Just("[".to_string()),
            Just("\n".to_string()),
            "[a-z_]{1,12}".prop_map(|k| format!("{k} = \"v\"\n")),
            any::<String>(),
        ];
        proptest::collection::vec(fragment, 0..24).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn reading_a_profile_never_panics(text in tomlish(), wanted in "[a-zA-Z]{0,8}") {
            for dialect in [Dialect::Tokenwarden, Dialect::Gc] {
                match read_profile(&text, Path::new("/x.toml"), &wanted, dialect) {
                    // Errors are one line: the place and what is wrong.
                    Err(e) => prop_assert!(!e.contains('\n'), "{e}"),
                    Ok(r) => prop_assert!(r.found || r.given.is_empty()),
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(text in any::<String>()) {
            let _ = read_profile(&text, Path::new("/x.toml"), "default", Dialect::Tokenwarden);
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        for open in ["[", "{a="] {
            let text = format!("[default]\nregion = {}", open.repeat(100_000));
            let r = read_profile(&text, Path::new("/x.toml"), "default", Dialect::Tokenwarden);
            assert!(r.is_err());
        }
    }
}
