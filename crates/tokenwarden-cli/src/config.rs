//! Connection settings: flags > environment > tokenwarden's profile > the gc CLI's profile.

use crate::args::{ClientAuthArg, GlobalArgs};
use anyhow::{Context as _, Result, anyhow, bail};
use std::path::{Path, PathBuf};
use tokenwarden::{AccessToken, ClientSecret, Region};

/// The environment variables Genesys users already set (the gc CLI, the Terraform provider).
pub(crate) const ENV_REGION: &str = "GENESYSCLOUD_REGION";
pub(crate) const ENV_CLIENT_ID: &str = "GENESYSCLOUD_OAUTHCLIENT_ID";
pub(crate) const ENV_CLIENT_SECRET: &str = "GENESYSCLOUD_OAUTHCLIENT_SECRET";
pub(crate) const ENV_ACCESS_TOKEN: &str = "GENESYSCLOUD_ACCESS_TOKEN";

/// How to authenticate.
#[derive(Debug, Clone)]
pub(crate) enum Credentials {
    /// Client credentials grant.
    Client { id: String, secret: ClientSecret },
    /// A token supplied directly; it cannot be refreshed.
    Static(AccessToken),
}

/// Resolved connection settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) token_url: String,
    pub(crate) api_base: String,
    pub(crate) credentials: Credentials,
    pub(crate) client_auth: tokenwarden::ClientAuth,
    pub(crate) scope: Option<String>,
    pub(crate) allow_insecure_http: bool,
    /// Where each setting came from, for `check` and -v.
    pub(crate) sources: Vec<(String, String)>,
}

/// One profile, from either config file.
#[derive(Debug, Default, Clone)]
struct Profile {
    origin: String,
    region: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_file: Option<PathBuf>,
    token_url: Option<String>,
    api_base: Option<String>,
    client_auth: Option<String>,
}

/// Where the config files are.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub(crate) tokenwarden_config: Option<PathBuf>,
    pub(crate) gc_config: Option<PathBuf>,
}

impl Paths {
    pub(crate) fn from_system(explicit: Option<&Path>) -> Self {
        Self {
            tokenwarden_config: explicit
                .map(Path::to_path_buf)
                .or_else(|| dirs::config_dir().map(|d| d.join("tokenwarden").join("config.toml"))),
            gc_config: dirs::home_dir().map(|h| h.join(".gc").join("config.toml")),
        }
    }
}

fn read_toml(path: &Path) -> Result<Option<toml::Table>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.parse::<toml::Table>().with_context(|| {
            format!("config file {} is not valid TOML", path.display())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn get_str(t: &toml::Table, key: &str) -> Option<String> {
    t.get(key)
        .and_then(|v| v.as_str())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Finds a section by name, ignoring case (`default` matches gc's `[DEFAULT]`).
fn section<'a>(t: &'a toml::Table, name: &str) -> Option<&'a toml::Table> {
    t.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_table())
}

fn load_profiles(paths: &Paths, name: Option<&str>) -> Result<(Option<Profile>, Option<Profile>)> {
    let wanted = name.unwrap_or("default");
    let mut tw = None;
    if let Some(p) = &paths.tokenwarden_config
        && let Some(t) = read_toml(p)?
        && let Some(s) = section(&t, wanted)
    {
        tw = Some(Profile {
            origin: format!("profile {wanted} in {}", p.display()),
            region: get_str(s, "region").or_else(|| get_str(s, "environment")),
            client_id: get_str(s, "client_id"),
            client_secret: get_str(s, "client_secret"),
            client_secret_file: get_str(s, "client_secret_file").map(expand_home),
            token_url: get_str(s, "token_url"),
            api_base: get_str(s, "api_base"),
            client_auth: get_str(s, "client_auth"),
        });
    }
    let mut gc = None;
    if let Some(p) = &paths.gc_config
        && let Some(t) = read_toml(p)?
        && let Some(s) = section(&t, wanted)
    {
        gc = Some(Profile {
            origin: format!("gc profile {wanted} in {}", p.display()),
            region: get_str(s, "environment"),
            client_id: get_str(s, "client_credentials"),
            client_secret: get_str(s, "client_secret"),
            ..Profile::default()
        });
    }
    if let (Some(n), None, None) = (name, &tw, &gc) {
        bail!(
            "profile {n:?} not found in {} or {}",
            paths
                .tokenwarden_config
                .as_deref()
                .map_or("(no config dir)".into(), |p| p.display().to_string()),
            paths
                .gc_config
                .as_deref()
                .map_or("(no home dir)".into(), |p| p.display().to_string())
        );
    }
    Ok((tw, gc))
}

fn expand_home(s: String) -> PathBuf {
    match (s.strip_prefix("~/"), dirs::home_dir()) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(s),
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").trim().to_string()
}

fn read_secret_file(p: &Path) -> Result<String> {
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("reading the client secret from {}", p.display()))?;
    let s = first_line(&text);
    if s.is_empty() {
        bail!("the client secret file {} is empty", p.display());
    }
    Ok(s)
}

/// A value and where it came from.
struct Pick<T> {
    value: T,
    from: String,
}

fn pick<T>(cands: impl IntoIterator<Item = (Option<T>, String)>) -> Option<Pick<T>> {
    cands
        .into_iter()
        .find_map(|(v, from)| v.map(|value| Pick { value, from }))
}

/// Resolves the settings. `env` reads an environment variable, `stdin` reads standard input
/// (injected for tests). Returns the settings and warnings to show.
pub(crate) fn resolve(
    g: &GlobalArgs,
    env: &dyn Fn(&str) -> Option<String>,
    paths: &Paths,
    stdin: &mut dyn FnMut() -> Result<String>,
) -> Result<(Settings, Vec<String>)> {
    let mut warnings = Vec::new();
    let env_nonempty = |k: &str| {
        env(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let (tw, gc) = load_profiles(paths, g.profile.as_deref())?;
    let prof = |f: &dyn Fn(&Profile) -> Option<String>| -> Vec<(Option<String>, String)> {
        [&tw, &gc]
            .into_iter()
            .flatten()
            .map(|p| (f(p), p.origin.clone()))
            .collect()
    };

    let flag = |v: &Option<String>, name: &str| (v.clone(), format!("--{name}"));
    let envv = |k: &str| (env_nonempty(k), k.to_string());

    let region = pick(
        [flag(&g.region, "region"), envv(ENV_REGION)]
            .into_iter()
            .chain(prof(&|p| p.region.clone())),
    );
    let region_parsed = match &region {
        Some(r) => {
            Some(Region::parse(&r.value).with_context(|| format!("region from {}", r.from))?)
        }
        None => None,
    };
    let token_url = pick(
        [flag(&g.token_url, "token-url")]
            .into_iter()
            .chain(prof(&|p| p.token_url.clone()))
            .chain([(
                region_parsed.as_ref().map(Region::token_url),
                region.as_ref().map_or(String::new(), |r| format!("region ({})", r.from)),
            )]),
    )
    .ok_or_else(|| {
        anyhow!(
            "no region or token URL: set --region (or {ENV_REGION}, e.g. eu-west-1 or mypurecloud.ie), or --token-url for another OAuth provider or the simulator"
        )
    })?;
    let api_base = pick(
        [flag(&g.api_base, "api-base")]
            .into_iter()
            .chain(prof(&|p| p.api_base.clone()))
            .chain([(
                region_parsed.as_ref().map(Region::api_base),
                "region".to_string(),
            )])
            .chain([(
                derive_api_base(&token_url.value),
                "derived from the token URL".to_string(),
            )]),
    )
    .expect("derived api base is always Some for a URL, else region is set");

    // Credentials: flags and environment first, then profiles; a static token (environment)
    // beats profile credentials but not client credentials given as flags or environment.
    let secret_flag: Option<Pick<String>> = if let Some(s) = &g.client_secret {
        warnings.push(
            "--client-secret on the command line is visible to other users in the process list; prefer GENESYSCLOUD_OAUTHCLIENT_SECRET, --client-secret-file or --client-secret-stdin".into(),
        );
        Some(Pick {
            value: s.clone(),
            from: "--client-secret".into(),
        })
    } else if let Some(p) = &g.client_secret_file {
        Some(Pick {
            value: read_secret_file(p)?,
            from: format!("--client-secret-file {}", p.display()),
        })
    } else if g.client_secret_stdin {
        let s = first_line(&stdin()?);
        if s.is_empty() {
            bail!("--client-secret-stdin: standard input held no secret");
        }
        Some(Pick {
            value: s,
            from: "standard input".into(),
        })
    } else {
        None
    };
    let id_direct = pick([flag(&g.client_id, "client-id"), envv(ENV_CLIENT_ID)]);
    let secret_direct = secret_flag.or_else(|| pick([envv(ENV_CLIENT_SECRET)]));
    let static_token = pick([envv(ENV_ACCESS_TOKEN)]);

    let mut profile_secret = None;
    for p in [&tw, &gc].into_iter().flatten() {
        if let Some(s) = &p.client_secret {
            profile_secret = Some(Pick {
                value: s.clone(),
                from: p.origin.clone(),
            });
            break;
        }
        if let Some(f) = &p.client_secret_file {
            profile_secret = Some(Pick {
                value: read_secret_file(f)?,
                from: format!("{} (client_secret_file)", p.origin),
            });
            break;
        }
    }
    let id_any = id_direct.or_else(|| pick(prof(&|p| p.client_id.clone())));
    let direct_secret_given = secret_direct.is_some();
    let secret_any = secret_direct.or(profile_secret);

    let mut sources = vec![
        ("token URL".to_string(), token_url.from.clone()),
        ("API base".to_string(), api_base.from.clone()),
    ];
    let credentials_given_directly =
        direct_secret_given || id_any.as_ref().is_some_and(|i| !i.from.contains("profile"));
    let credentials = match (id_any, secret_any, static_token) {
        (Some(id), Some(secret), tok) if tok.is_none() || credentials_given_directly => {
            sources.push(("client id".into(), id.from));
            sources.push(("client secret".into(), secret.from));
            Credentials::Client {
                id: id.value,
                secret: ClientSecret::new(secret.value),
            }
        }
        (_, _, Some(tok)) => {
            sources.push(("access token".into(), tok.from));
            Credentials::Static(AccessToken::new(tok.value))
        }
        (Some(_), None, None) => bail!(
            "no client secret: set {ENV_CLIENT_SECRET}, or use --client-secret-file / --client-secret-stdin, or put client_secret in a profile"
        ),
        (None, _, None) => bail!(
            "no credentials: set {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET} (or --client-id and a secret option, or a profile), or {ENV_ACCESS_TOKEN}"
        ),
        (Some(_), Some(_), None) => unreachable!("covered by the first arm"),
    };

    let client_auth = match g.client_auth {
        Some(ClientAuthArg::Form) => tokenwarden::ClientAuth::FormFields,
        Some(ClientAuthArg::Basic) => tokenwarden::ClientAuth::Basic,
        None => match pick(prof(&|p| p.client_auth.clone())) {
            Some(p) if p.value.eq_ignore_ascii_case("form") => tokenwarden::ClientAuth::FormFields,
            Some(p) if p.value.eq_ignore_ascii_case("basic") => tokenwarden::ClientAuth::Basic,
            Some(p) => bail!("client_auth {:?} in {}: use basic or form", p.value, p.from),
            None => tokenwarden::ClientAuth::Basic,
        },
    };
    Ok((
        Settings {
            token_url: token_url.value,
            api_base: api_base.value,
            credentials,
            client_auth,
            scope: g.scope.clone(),
            allow_insecure_http: g.allow_insecure_http,
            sources,
        },
        warnings,
    ))
}

impl Settings {
    /// Which credentials were used and where they came from (never the secret itself), for
    /// messages about rejected credentials: with four places to set them, the usual mistake is
    /// a stale one winning.
    pub(crate) fn credentials_hint(&self) -> String {
        let from = |what: &str| {
            self.sources
                .iter()
                .find(|(w, _)| w == what)
                .map_or("?", |(_, f)| f.as_str())
        };
        match &self.credentials {
            Credentials::Client { id, .. } => format!(
                "used client id {id:?} (from {}) and the client secret from {}, at {}",
                from("client id"),
                from("client secret"),
                self.token_url
            ),
            Credentials::Static(_) => {
                format!("used the access token from {}", from("access token"))
            }
        }
    }
}

/// `https://login.X/oauth/token` → `https://api.X`; otherwise the token URL's origin.
fn derive_api_base(token_url: &str) -> Option<String> {
    let u = url::Url::parse(token_url).ok()?;
    let host = u.host_str()?;
    let host = host
        .strip_prefix("login.")
        .map_or_else(|| host.to_string(), |rest| format!("api.{rest}"));
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    Some(match u.port() {
        Some(p) => format!("{}://{host}:{p}", u.scheme()),
        None => format!("{}://{host}", u.scheme()),
    })
}

/// The environment as the process sees it.
pub(crate) fn process_env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn no_stdin() -> impl FnMut() -> Result<String> {
        || Ok(String::new())
    }

    fn run(
        g: GlobalArgs,
        env: &[(&str, &str)],
        tw: Option<&str>,
        gc: Option<&str>,
    ) -> Result<(Settings, Vec<String>)> {
        let dir = tempfile::tempdir().unwrap();
        let twp = dir.path().join("tw.toml");
        let gcp = dir.path().join("gc.toml");
        if let Some(t) = tw {
            std::fs::write(&twp, t).unwrap();
        }
        if let Some(t) = gc {
            std::fs::write(&gcp, t).unwrap();
        }
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let paths = Paths {
            tokenwarden_config: Some(twp),
            gc_config: Some(gcp),
        };
        resolve(&g, &move |k| env.get(k).cloned(), &paths, &mut no_stdin())
    }

    fn client(s: &Settings) -> (String, String) {
        match &s.credentials {
            Credentials::Client { id, secret } => (id.clone(), secret.expose_secret().to_string()),
            Credentials::Static(_) => panic!("static"),
        }
    }

    #[test]
    fn environment_as_genesys_users_set_it() {
        let (s, w) = run(
            GlobalArgs::default(),
            &[
                (ENV_REGION, "mypurecloud.ie"),
                (ENV_CLIENT_ID, "id-env"),
                (ENV_CLIENT_SECRET, "secret-env"),
            ],
            None,
            None,
        )
        .unwrap();
        assert_eq!(s.token_url, "https://login.mypurecloud.ie/oauth/token");
        assert_eq!(s.api_base, "https://api.mypurecloud.ie");
        assert_eq!(client(&s), ("id-env".into(), "secret-env".into()));
        assert!(w.is_empty());
    }

    #[test]
    fn flags_beat_env_beat_profile_beat_gc() {
        let tw = "[default]\nregion = \"eu-central-1\"\nclient_id = \"id-tw\"\nclient_secret = \"s-tw\"\n";
        let gc = "[DEFAULT]\nenvironment = \"mypurecloud.jp\"\nclient_credentials = \"id-gc\"\nclient_secret = \"s-gc\"\n";
        let (s, _) = run(GlobalArgs::default(), &[], None, Some(gc)).unwrap();
        assert_eq!(s.api_base, "https://api.mypurecloud.jp");
        assert_eq!(client(&s).0, "id-gc");
        let (s, _) = run(GlobalArgs::default(), &[], Some(tw), Some(gc)).unwrap();
        assert_eq!(s.api_base, "https://api.mypurecloud.de");
        assert_eq!(client(&s), ("id-tw".into(), "s-tw".into()));
        let (s, _) = run(
            GlobalArgs::default(),
            &[(ENV_REGION, "us-west-2"), (ENV_CLIENT_ID, "id-env")],
            Some(tw),
            Some(gc),
        )
        .unwrap();
        assert_eq!(s.api_base, "https://api.usw2.pure.cloud");
        assert_eq!(client(&s), ("id-env".into(), "s-tw".into()));
        let g = GlobalArgs {
            region: Some("ap-south-1".into()),
            client_id: Some("id-flag".into()),
            client_secret: Some("s-flag".into()),
            ..GlobalArgs::default()
        };
        let (s, w) = run(g, &[(ENV_REGION, "us-west-2")], Some(tw), Some(gc)).unwrap();
        assert_eq!(s.api_base, "https://api.aps1.pure.cloud");
        assert_eq!(client(&s), ("id-flag".into(), "s-flag".into()));
        assert!(w[0].contains("process list"), "{w:?}");
    }

    #[test]
    fn named_profiles_and_missing_ones() {
        let tw = "[prod]\nregion = \"eu-west-2\"\nclient_id = \"p\"\nclient_secret = \"q\"\n";
        let g = GlobalArgs {
            profile: Some("prod".into()),
            ..GlobalArgs::default()
        };
        let (s, _) = run(g, &[], Some(tw), None).unwrap();
        assert_eq!(s.api_base, "https://api.euw2.pure.cloud");
        let g = GlobalArgs {
            profile: Some("nope".into()),
            ..GlobalArgs::default()
        };
        let e = run(g, &[], Some(tw), None).unwrap_err().to_string();
        assert!(e.contains("profile \"nope\" not found"), "{e}");
    }

    #[test]
    fn token_url_for_other_providers_and_the_simulator() {
        let g = GlobalArgs {
            token_url: Some("http://127.0.0.1:8080/oauth/token".into()),
            ..GlobalArgs::default()
        };
        let (s, _) = run(
            g,
            &[(ENV_CLIENT_ID, "a"), (ENV_CLIENT_SECRET, "b")],
            None,
            None,
        )
        .unwrap();
        assert_eq!(s.api_base, "http://127.0.0.1:8080");
        assert_eq!(
            derive_api_base("https://login.example.com/oauth/token").as_deref(),
            Some("https://api.example.com")
        );
    }

    #[test]
    fn static_token_from_the_environment() {
        let (s, _) = run(
            GlobalArgs::default(),
            &[(ENV_REGION, "us-east-1"), (ENV_ACCESS_TOKEN, "tok")],
            None,
            None,
        )
        .unwrap();
        assert!(matches!(s.credentials, Credentials::Static(_)));
        // Client credentials in the environment win: they can refresh.
        let (s, _) = run(
            GlobalArgs::default(),
            &[
                (ENV_REGION, "us-east-1"),
                (ENV_ACCESS_TOKEN, "tok"),
                (ENV_CLIENT_ID, "i"),
                (ENV_CLIENT_SECRET, "s"),
            ],
            None,
            None,
        )
        .unwrap();
        assert!(matches!(s.credentials, Credentials::Client { .. }));
    }

    #[test]
    fn clear_errors() {
        let e = run(GlobalArgs::default(), &[], None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no region"), "{e}");
        let e = run(GlobalArgs::default(), &[(ENV_REGION, "mars-2")], None, None).unwrap_err();
        assert!(
            format!("{e:#}").contains("unknown Genesys Cloud region"),
            "{e:#}"
        );
        let e = run(
            GlobalArgs::default(),
            &[(ENV_REGION, "eu-west-1"), (ENV_CLIENT_ID, "x")],
            None,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no client secret"), "{e}");
        let e = run(
            GlobalArgs::default(),
            &[(ENV_REGION, "eu-west-1")],
            None,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no credentials"), "{e}");
    }

    #[test]
    fn the_credentials_hint_names_the_sources_never_the_secret() {
        let (s, _) = run(
            GlobalArgs {
                client_id: Some("id-flag".into()),
                ..GlobalArgs::default()
            },
            &[(ENV_REGION, "eu-west-1"), (ENV_CLIENT_SECRET, "s3cret")],
            None,
            None,
        )
        .unwrap();
        let h = s.credentials_hint();
        assert!(h.contains("\"id-flag\" (from --client-id)"), "{h}");
        assert!(
            h.contains(&format!("secret from {ENV_CLIENT_SECRET}")),
            "{h}"
        );
        assert!(
            h.contains("https://login.mypurecloud.ie/oauth/token"),
            "{h}"
        );
        assert!(!h.contains("s3cret"), "{h}");
    }

    #[test]
    fn secret_from_a_file_or_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        std::fs::write(&f, "from-file\n").unwrap();
        let g = GlobalArgs {
            region: Some("us-east-1".into()),
            client_id: Some("i".into()),
            client_secret_file: Some(f),
            ..GlobalArgs::default()
        };
        let paths = Paths {
            tokenwarden_config: None,
            gc_config: None,
        };
        let (s, w) = resolve(&g, &|_| None, &paths, &mut no_stdin()).unwrap();
        assert_eq!(client(&s).1, "from-file");
        assert!(w.is_empty());
        let g = GlobalArgs {
            region: Some("us-east-1".into()),
            client_id: Some("i".into()),
            client_secret_stdin: true,
            ..GlobalArgs::default()
        };
        let (s, _) = resolve(&g, &|_| None, &paths, &mut || Ok("piped\n".into())).unwrap();
        assert_eq!(client(&s).1, "piped");
    }
}
