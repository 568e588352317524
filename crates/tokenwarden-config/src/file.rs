//! Config files: tokenwarden's (`[profile]` sections holding the keys of the settings table) and
//! the gc CLI's `~/.gc/config.toml` (read only; its `environment`, `client_credentials` and
//! `client_secret`). Problems are reported with the file, line and column, never the line itself:
//! it may hold a secret.

use super::source::{Given, Source, Value};
use super::table::{Key, SETTINGS, profile_keys};
use std::path::{Path, PathBuf};
use toml::Spanned;
use toml::de::{DeTable, DeValue};
use zeroize::Zeroizing;

/// Whose file it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Tokenwarden,
    Gc,
}

/// What a file held for the profile asked for.
#[derive(Debug, Default)]
pub(crate) struct ProfileRead {
    /// The profile's settings; empty when not found.
    pub(crate) given: Vec<(Key, Given)>,
    /// Whether a section of that name exists (any case).
    pub(crate) found: bool,
    /// Every section name, for "not found" messages.
    pub(crate) names: Vec<String>,
    /// Typos and ignored keys, worth a warning.
    pub(crate) warnings: Vec<String>,
}

/// Line and column (1-based, in characters) of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Reads the profile `wanted` (matched exactly, else ignoring case: gc writes `[DEFAULT]`).
///
/// # Errors
/// One line naming the file, line and column: a TOML syntax error, a setting that is not a
/// string, a setting given twice in one profile.
pub(crate) fn read_profile(
    text: &str,
    file: &Path,
    wanted: &str,
    dialect: Dialect,
) -> Result<ProfileRead, String> {
    let at = |offset: usize| {
        let (line, col) = line_col(text, offset);
        format!("{}, line {line}, column {col}", file.display())
    };
    let doc = DeTable::parse(text).map_err(|e| {
        let (line, col) = e.span().map_or((1, 1), |s| line_col(text, s.start));
        format!(
            "config file {} is not valid TOML: line {line}, column {col}: {}",
            file.display(),
            e.message()
        )
    })?;
    let doc = doc.get_ref();
    let mut read = ProfileRead::default();
    let mut chosen: Option<(&Spanned<std::borrow::Cow<'_, str>>, &DeTable<'_>)> = None;
    // Warnings with where they are in the file: the tables are not read in file order, and the
    // warnings should be.
    let mut located: Vec<(usize, String)> = Vec::new();
    for (name, value) in doc.iter() {
        match value.get_ref() {
            DeValue::Table(section) => {
                read.names.push(name.get_ref().to_string());
                let exact = name.get_ref() == wanted;
                let better = match chosen {
                    None => name.get_ref().eq_ignore_ascii_case(wanted),
                    Some((c, _)) => exact && c.get_ref() != wanted,
                };
                if better {
                    chosen = Some((name, section));
                }
            }
            _ if dialect == Dialect::Tokenwarden => located.push((
                name.span().start,
                format!(
                    "{}: '{}' is outside any [profile] section and is ignored (put it under [default])",
                    at(name.span().start),
                    name.get_ref()
                ),
            )),
            _ => {}
        }
    }
    let Some((name, section)) = chosen else {
        located.sort_by_key(|(at, _)| *at);
        read.warnings.extend(located.into_iter().map(|(_, w)| w));
        return Ok(read);
    };
    read.found = true;
    let source = match dialect {
        Dialect::Tokenwarden => Source::Profile {
            name: name.get_ref().to_string(),
            file: file.to_path_buf(),
        },
        Dialect::Gc => Source::GcProfile {
            name: name.get_ref().to_string(),
            file: file.to_path_buf(),
        },
    };
    for (key, value) in section.iter() {
        let key_name = key.get_ref().as_ref();
        let spec = SETTINGS.iter().find_map(|s| {
            let keys = match dialect {
                Dialect::Tokenwarden => s.profile,
                Dialect::Gc => s.gc,
            };
            keys.iter().find(|k| **k == key_name).map(|k| (s.key, *k))
        });
        let Some((setting, file_key)) = spec else {
            if dialect == Dialect::Tokenwarden {
                located.push((
                    key.span().start,
                    unknown_key(&at(key.span().start), key_name, &source),
                ));
            }
            continue;
        };
        let DeValue::String(s) = value.get_ref() else {
            return Err(format!(
                "{}: {file_key} in {source} must be a string",
                at(value.span().start)
            ));
        };
        if s.trim().is_empty() {
            continue;
        }
        if let Some((_, earlier)) = read.given.iter().find(|(k, _)| *k == setting) {
            return Err(format!(
                "{}: {source} sets both {} and {file_key}; keep one",
                at(key.span().start),
                earlier.file_key.unwrap_or("?")
            ));
        }
        let value = match file_key {
            "client_secret" => Value::Secret(Zeroizing::new(s.trim().to_string())),
            "client_secret_file" => Value::SecretFile(expand_path(s.trim(), file)),
            _ => Value::Text(s.trim().to_string()),
        };
        read.given.push((
            setting,
            Given {
                value,
                from: source.clone(),
                file_key: Some(file_key),
                line: Some(line_col(text, key.span().start).0),
            },
        ));
    }
    located.sort_by_key(|(at, _)| *at);
    read.warnings.extend(located.into_iter().map(|(_, w)| w));
    Ok(read)
}

fn unknown_key(at: &str, key: &str, source: &Source) -> String {
    // `at` names the file already: only the profile here.
    let source = match source {
        Source::Profile { name, .. } => format!("profile '{name}'"),
        Source::GcProfile { name, .. } => format!("gc profile '{name}'"),
        other => other.to_string(),
    };
    let near = profile_keys()
        .map(|k| (strsim::levenshtein(key, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min();
    match near {
        Some((_, k)) => {
            format!("{at}: unknown key '{key}' in {source} is ignored; did you mean '{k}'?")
        }
        None => format!(
            "{at}: unknown key '{key}' in {source} is ignored (known keys: {})",
            profile_keys().collect::<Vec<_>>().join(", ")
        ),
    }
}

/// `~/x` is in the home directory; a relative path is next to the config file that names it.
fn expand_path(s: &str, config_file: &Path) -> PathBuf {
    if let (Some(rest), Some(home)) = (s.strip_prefix("~/"), dirs::home_dir()) {
        return home.join(rest);
    }
    let p = PathBuf::from(s);
    if p.is_relative() {
        config_file.parent().map_or(p.clone(), |d| d.join(&p))
    } else {
        p
    }
}

/// Warnings about who else can read or change a file tokenwarden takes credentials or endpoints
/// from (its config file, the gc CLI's, a client secret file). Readable: it holds a client secret
/// (ssh checks private keys the same way). Changeable: another user could point `token_url` at a
/// server of theirs and receive the client secret, or swap the secret. A file is changeable when
/// another user owns it, when its group or everyone may write it, or when a directory above it
/// lets others rename or replace it (writable by group or everyone without the sticky bit, or
/// owned by another user), as the token cache's `PrivateDir` checks.
#[cfg(unix)]
pub(crate) fn exposure(file: &Path, holds_secret: bool) -> Vec<String> {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(meta) = std::fs::metadata(file) else {
        return Vec::new();
    };
    let mode = meta.mode() & 0o777;
    let me = rustix::process::geteuid().as_raw();
    let foreign = |uid: u32| uid != me && uid != 0;
    let mut warnings = Vec::new();
    let changeable = if foreign(meta.uid()) || mode & 0o022 != 0 {
        Some(format!("owner uid {}, mode {mode:o}", meta.uid()))
    } else {
        open_directory_above(file)
            .map(|dir| format!("{} lets other users replace it", dir.display()))
    };
    if let Some(why) = changeable {
        warnings.push(format!(
            "{} can be changed by other users ({why}): they could send your client secret to a server of theirs; make it and the directories above it yours and writable by you only (chmod 600 {})",
            file.display(),
            file.display()
        ));
    } else if holds_secret && mode & 0o077 != 0 {
        warnings.push(format!(
            "{} holds a secret (a client secret or a password in token_store) and other users can read it (mode {mode:o}); run: chmod 600 {}",
            file.display(),
            file.display()
        ));
    }
    warnings
}

/// The first directory above `file` in which another user can rename or replace entries: one they
/// own, or one their group or everyone may write without the sticky bit (`/tmp` is sticky: only
/// an entry's owner may rename it there).
#[cfg(unix)]
fn open_directory_above(file: &Path) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt as _;
    let me = rustix::process::geteuid().as_raw();
    let full = std::path::absolute(file).ok()?;
    full.ancestors().skip(1).find_map(|dir| {
        let meta = std::fs::metadata(dir).ok()?;
        let open = meta.mode() & 0o022 != 0 && meta.mode() & 0o1000 == 0;
        let foreign = meta.uid() != me && meta.uid() != 0;
        (open || foreign).then(|| dir.to_path_buf())
    })
}

#[cfg(not(unix))]
pub(crate) fn exposure(_file: &Path, _holds_secret: bool) -> Vec<String> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tw(text: &str, wanted: &str) -> Result<ProfileRead, String> {
        read_profile(
            text,
            Path::new("/etc/tw.toml"),
            wanted,
            Dialect::Tokenwarden,
        )
    }

    #[test]
    fn regression_a_toml_syntax_error_shows_the_place_never_the_line() {
        let text = "[default]\nclient_id = \"a\"\nclient_secret = \"hunter2-unterminated\n";
        let e = tw(text, "default").unwrap_err();
        assert!(
            e.starts_with("config file /etc/tw.toml is not valid TOML: line 3, column"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn regression_typo_warnings_come_in_line_order() {
        let r = tw(
            "[default]\nzzz = \"1\"\naaa = \"2\"\nmmm = \"3\"\n",
            "default",
        )
        .unwrap();
        let lines: Vec<&str> = r
            .warnings
            .iter()
            .map(|w| w.split(", column").next().unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                "/etc/tw.toml, line 2",
                "/etc/tw.toml, line 3",
                "/etc/tw.toml, line 4"
            ]
        );
    }

    #[test]
    fn a_typo_in_a_profile_is_warned_about_with_the_key_meant() {
        let r = tw("[default]\nregoin = \"eu-west-1\"\n", "default").unwrap();
        assert!(r.found);
        assert!(r.given.is_empty());
        assert_eq!(
            r.warnings,
            [
                "/etc/tw.toml, line 2, column 1: unknown key 'regoin' in profile 'default' is ignored; did you mean 'region'?"
            ]
        );
        let r = tw("stray = 1\n[default]\nfoo = \"x\"\n", "default").unwrap();
        assert!(
            r.warnings[0].contains("'stray' is outside any [profile] section"),
            "{r:?}"
        );
        assert!(
            r.warnings[1].contains("known keys: region, environment"),
            "{r:?}"
        );
    }

    #[test]
    fn values_must_be_strings_and_given_once() {
        let e = tw("[default]\nclient_secret = 12345678\n", "default").unwrap_err();
        assert_eq!(
            e,
            "/etc/tw.toml, line 2, column 17: client_secret in profile 'default' in /etc/tw.toml must be a string"
        );
        let e = tw(
            "[default]\nclient_secret = \"a\"\nclient_secret_file = \"b\"\n",
            "default",
        )
        .unwrap_err();
        assert!(
            e.contains("sets both client_secret and client_secret_file"),
            "{e}"
        );
    }

    #[test]
    fn profiles_match_exactly_then_ignoring_case() {
        let text = "[DEFAULT]\nenvironment = \"a\"\n[default]\nregion = \"b\"\n";
        let r = tw(text, "default").unwrap();
        assert_eq!(r.given[0].1.text(), "b");
        let r = read_profile(text, Path::new("/g"), "Default", Dialect::Gc).unwrap();
        assert_eq!(r.given[0].1.text(), "a");
        assert_eq!(r.names, ["DEFAULT", "default"]);
        let r = tw(text, "prod").unwrap();
        assert!(!r.found);
    }

    #[test]
    fn the_gc_dialect_reads_its_own_keys_and_ignores_the_rest() {
        let text = "[DEFAULT]\nenvironment = \"mypurecloud.ie\"\nclient_credentials = \"id\"\nclient_secret = \"s\"\nlogging = \"x\"\n";
        let r = read_profile(text, Path::new("/g"), "default", Dialect::Gc).unwrap();
        let mut keys: Vec<Key> = r.given.iter().map(|(k, _)| *k).collect();
        keys.sort();
        assert_eq!(keys, [Key::Region, Key::ClientId, Key::ClientSecret]);
        assert!(r.warnings.is_empty());
    }

    #[test]
    fn a_secret_file_is_found_next_to_the_config_file() {
        let r = tw("[p]\nclient_secret_file = \"s.txt\"\n", "p").unwrap();
        assert_eq!(
            r.given[0].1.value,
            Value::SecretFile(PathBuf::from("/etc/s.txt"))
        );
    }

    #[test]
    fn line_and_column_count_characters() {
        assert_eq!(line_col("ab\ncdé\nx", 0), (1, 1));
        assert_eq!(line_col("ab\ncdé\nx", 3), (2, 1));
        assert_eq!(line_col("ab\ncdé\nx", 8), (3, 1));
        assert_eq!(line_col("ab\ncdé\nx", 7), (2, 4));
        assert_eq!(line_col("ab", 99), (1, 3));
        assert_eq!(line_col("é", 1), (1, 1));
    }
}
