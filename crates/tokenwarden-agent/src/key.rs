//! The agent key: what a local program presents to prove it may use the organisation's token,
//! and the local credential derived from it (what the agent's token endpoint hands out).

use crate::error::AgentError;
use base64::Engine as _;
use hmac::{KeyInit as _, Mac as _};
use std::path::Path;
use zeroize::Zeroizing;

/// The environment variable that gives the key instead of a key file.
pub const KEY_ENV: &str = "TOKENWARDEN_AGENT_KEY";

/// Random bytes in a key the agent creates.
pub const KEY_BYTES: usize = 32;

/// Shortest key accepted from a file or [`KEY_ENV`]: a guessable key would hand the token to
/// any local program.
pub const MIN_KEY_LEN: usize = 32;

/// The most of a key file read.
const MAX_KEY_FILE: u64 = 4096;

/// Prefix of local credentials, so that one is recognisable in a bug report (never a real token).
const LOCAL_PREFIX: &str = "twl_";

/// The agent key. Its `Debug` output hides it; it is compared in constant time.
#[derive(Clone)]
pub struct AgentKey {
    key: Zeroizing<String>,
    /// The local credential: an HMAC of a fixed label under the key, so that it is stable across
    /// restarts with the same key (a client holding it keeps working) and reveals nothing of it.
    local: Zeroizing<String>,
}

impl std::fmt::Debug for AgentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentKey([redacted])")
    }
}

impl AgentKey {
    /// A key from its text (a file's first line, or [`KEY_ENV`]), trimmed.
    ///
    /// # Errors
    /// [`AgentError::Key`] if it is shorter than [`MIN_KEY_LEN`] or not printable ASCII.
    pub fn from_text(text: &str) -> Result<Self, AgentError> {
        Self::parse(text).map_err(|why| AgentError::Key(format!("the key {why}")))
    }

    /// [`from_text`](Self::from_text), the error being what is wrong with the key (for a message
    /// that names where it came from).
    fn parse(text: &str) -> Result<Self, String> {
        let key = text.trim();
        if key.len() < MIN_KEY_LEN {
            return Err(format!("must be at least {MIN_KEY_LEN} characters long"));
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be printable ASCII without spaces".into());
        }
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(b"tokenwarden-agent local credential v1");
        let digest = mac.finalize().into_bytes();
        let local = format!(
            "{LOCAL_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
        );
        // The key and the local credential are secrets: scrubbed from anything shown.
        tokenwarden::redact::register_secret(key);
        tokenwarden::redact::register_secret(&local);
        Ok(Self {
            key: Zeroizing::new(key.to_string()),
            local: Zeroizing::new(local),
        })
    }

    /// A fresh random key held in memory only (`tokenwarden exec`).
    pub fn generate() -> Self {
        Self::from_text(&random_key()).expect("a generated key is valid")
    }

    /// The key in `path`, created (0600, [`KEY_BYTES`] random bytes in hex) when missing.
    ///
    /// The file is created whole or not at all (written to a private temporary file, then linked
    /// into place only if nothing is there): of several agents started at once on a missing file,
    /// one creates it and the others read its key, so that all hold the same.
    ///
    /// # Errors
    /// [`AgentError::Key`] if the file is a symlink, not a regular file, readable or writable by
    /// the group or others, in a directory that others can write to and that is not sticky (it,
    /// or one above it: see [`tokenwarden::fs::check_parent_dirs`]), or holds no valid key; [`AgentError::Io`] if it cannot be read or
    /// created.
    pub fn load_or_create(path: &Path) -> Result<Self, AgentError> {
        let from_file = |text: &str| {
            Self::parse(text).map_err(|why| {
                AgentError::Key(format!("file {}: the key in it {why}", path.display()))
            })
        };
        // Another user who can write to a directory on the way could replace the file (or the
        // directory) with their own, and so choose the key. A missing directory is left to the
        // creation below, which says what to do.
        match tokenwarden::fs::check_parent_dirs(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(AgentError::Key(format!("file {e}")));
            }
            Err(e) => return Err(AgentError::io("check the directory of", path, e)),
        }
        if let Some(text) = read_private(path)? {
            return from_file(&text);
        }
        let text = Zeroizing::new(random_key());
        let line = Zeroizing::new(format!("{}\n", text.as_str()));
        match tokenwarden::fs::create_private_with(path, line.as_bytes()) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "created a new agent key file (0600)");
                Self::from_text(&text)
            }
            // Another agent created it in between: its key is the one.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match read_private(path)? {
                Some(text) => from_file(&text),
                None => Err(AgentError::io("create", path, e)),
            },
            Err(e) => Err(AgentError::io("create", path, e)),
        }
    }

    /// The key itself, to hand to a child process (`exec`). Never log it.
    pub fn expose(&self) -> &str {
        &self.key
    }

    /// The local credential handed out by the agent's token endpoint. Never log it.
    pub fn local_credential(&self) -> &str {
        &self.local
    }

    /// Whether `presented` is the key.
    pub fn is_key(&self, presented: &str) -> bool {
        constant_time_eq(presented.as_bytes(), self.key.as_bytes())
    }

    /// Whether `presented` is the key or the local credential.
    pub fn accepts(&self, presented: &str) -> bool {
        // Both compared, always: the time taken says nothing about which one was close.
        let key = self.is_key(presented);
        let local = constant_time_eq(presented.as_bytes(), self.local.as_bytes());
        key | local
    }
}

/// Equality that takes the same time wherever the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_key() -> String {
    use rand::RngCore as _;
    let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
    rand::rng().fill_bytes(bytes.as_mut());
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first line of the key file at `path`, `None` when there is none. Opened through the
/// library's one private-file rule (`tokenwarden::fs`): never through a symbolic link, and only
/// a regular file of the user's that nobody else may read or write.
fn read_private(path: &Path) -> Result<Option<Zeroizing<String>>, AgentError> {
    use std::io::Read as _;
    let file = match tokenwarden::fs::open_private(path) {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(AgentError::Key(format!(
                "file {} {e}: it must be a regular file of yours that only you can read \
                 (chmod 600 on it; give the key file itself, not a symlink)",
                path.display()
            )));
        }
        Err(e) => return Err(AgentError::io("open", path, e)),
    };
    let mut text = Zeroizing::new(String::new());
    file.take(MAX_KEY_FILE)
        .read_to_string(&mut text)
        .map_err(|e| AgentError::io("read", path, e))?;
    let first = Zeroizing::new(text.lines().next().unwrap_or_default().to_string());
    Ok(Some(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_local_credentials() {
        let k = AgentKey::from_text(&"k".repeat(40)).unwrap();
        assert!(k.accepts(&"k".repeat(40)));
        assert!(k.accepts(k.local_credential()));
        assert!(!k.accepts(&"k".repeat(39)));
        assert!(!k.accepts(""));
        assert!(k.is_key(&"k".repeat(40)) && !k.is_key(k.local_credential()));
        assert!(k.local_credential().starts_with(LOCAL_PREFIX));
        // Stable for the same key, different for another.
        let again = AgentKey::from_text(&"k".repeat(40)).unwrap();
        assert_eq!(again.local_credential(), k.local_credential());
        let other = AgentKey::generate();
        assert_ne!(other.local_credential(), k.local_credential());
        assert_eq!(other.expose().len(), 2 * KEY_BYTES);
        assert!(!format!("{k:?}").contains("kkkk"));
        assert!(AgentKey::from_text("short").is_err());
        assert!(AgentKey::from_text(&format!("{} x", "k".repeat(40))).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_error_says_agent_key_and_the_path_once() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.key");
        let shown = path.display().to_string();
        std::fs::write(&path, "too-short\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let short = AgentKey::load_or_create(&path).unwrap_err().to_string();
        assert_eq!(
            short,
            format!("agent key: file {shown}: the key in it must be at least 32 characters long")
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let open = AgentKey::load_or_create(&path).unwrap_err().to_string();
        let text = AgentKey::from_text("short").unwrap_err().to_string();
        assert_eq!(
            text,
            "agent key: the key must be at least 32 characters long"
        );
        for e in [&short, &open, &text] {
            assert_eq!(e.matches("agent key").count(), 1, "{e}");
            assert!(e.matches(shown.as_str()).count() <= 1, "{e}");
        }
        assert!(
            open.starts_with(&format!(
                "agent key: file {shown} can be read by other users"
            )),
            "{open}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn key_files_are_created_private_and_refused_when_not() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.key");
        let created = AgentKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let read = AgentKey::load_or_create(&path).unwrap();
        assert_eq!(read.expose(), created.expose());
        assert_eq!(read.expose().len(), 64);

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = AgentKey::load_or_create(&path).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        assert!(!e.contains(created.expose()), "{e}");

        let link = dir.path().join("link.key");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let e = AgentKey::load_or_create(&link).unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");
        // A dangling symlink is not followed to create a file elsewhere either.
        let dangling = dir.path().join("dangling.key");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &dangling).unwrap();
        assert!(AgentKey::load_or_create(&dangling).is_err());
        assert!(!dir.path().join("elsewhere").exists());
    }
}
