//! Sinks: the real token written to files, for programs that read it from a shared volume (a
//! sidecar's app container). Each write is atomic (a private temporary file renamed over the
//! sink) and 0600; a new token is written as soon as the manager has it, which is at its refresh
//! point (the refresh margin before expiry), so that a reader always finds a token with at least
//! that margin left. The files are removed when the agent stops.

use crate::error::AgentError;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokenwarden::{ApiClient, Bearer};

/// How a sink file holds the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SinkFormat {
    /// The token alone, no newline.
    #[default]
    Raw,
    /// `{"access_token", "token_type", "expires_in", "expires_at"}` (`expires_at` in Unix seconds).
    Json,
}

/// A file the token is written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sink {
    /// The file.
    pub path: PathBuf,
    /// How it holds the token.
    pub format: SinkFormat,
}

impl Sink {
    /// Checks that the sink can be written: its directory exists, and the file is not a symlink
    /// or a directory.
    ///
    /// # Errors
    /// [`AgentError::Sink`] saying why not.
    pub fn check(&self) -> Result<(), AgentError> {
        let err = |why: String| AgentError::Sink {
            path: self.path.display().to_string(),
            why,
        };
        let dir = parent(&self.path);
        if !dir.is_dir() {
            return Err(err(format!(
                "its directory {} does not exist",
                dir.display()
            )));
        }
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.file_type().is_symlink() => {
                Err(err("is a symlink: give the file itself".into()))
            }
            Ok(m) if !m.file_type().is_file() => Err(err("is not a regular file".into())),
            _ => Ok(()),
        }
    }

    /// Writes `bearer` to the sink, atomically and 0600.
    ///
    /// # Errors
    /// [`AgentError::Io`] when the file cannot be written.
    pub fn write(&self, bearer: &Bearer) -> Result<(), AgentError> {
        let token = bearer.access_token().expose_secret();
        let contents = zeroize::Zeroizing::new(match self.format {
            SinkFormat::Raw => token.to_string(),
            SinkFormat::Json => {
                let expires_at = bearer
                    .expires_at_wall()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                let expires_in = bearer
                    .expires_at()
                    .saturating_duration_since(tokio::time::Instant::now())
                    .as_secs();
                serde_json::json!({
                    "access_token": token,
                    "token_type": "bearer",
                    "expires_in": expires_in,
                    "expires_at": expires_at,
                })
                .to_string()
            }
        });
        // The library's one atomic replace: a private (0600) temporary file beside the sink,
        // synced and renamed over it (the directory synced too): a reader sees the old token or
        // the new one, never half of one, and a link planted at the name is replaced, not
        // followed.
        tokenwarden::fs::replace(&self.path, contents.as_bytes())
            .map_err(|e| AgentError::io("replace", &self.path, e))
    }

    /// Removes the sink file (the agent stops: the token must not outlive it there).
    pub fn remove(&self) {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %self.path.display(), error = %e, "cannot remove sink"),
        }
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// How long until the next look at the token: a tenth of what is left of it, between 50 ms and
/// 10 s. The manager refreshes at its refresh point by itself; this only notices the new token
/// soon after, at a cost of one atomic load per look.
fn next_look(left: Duration) -> Duration {
    (left / 10).clamp(Duration::from_millis(50), Duration::from_secs(10))
}

/// Keeps every sink holding the current token until cancelled.
pub(crate) async fn run(client: ApiClient, sinks: Vec<Sink>) {
    let mut written: Option<u64> = None;
    loop {
        let wait = match client.tokens().bearer().await {
            Ok(bearer) => {
                if written != Some(bearer.generation()) {
                    let mut all = true;
                    for sink in &sinks {
                        if let Err(e) = sink.write(&bearer) {
                            all = false;
                            tracing::warn!(error = %e, "sink not written");
                        }
                    }
                    if all {
                        written = Some(bearer.generation());
                        tracing::debug!(
                            generation = bearer.generation(),
                            sinks = sinks.len(),
                            "token written to the sinks"
                        );
                    }
                }
                next_look(
                    bearer
                        .expires_at()
                        .saturating_duration_since(tokio::time::Instant::now()),
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, "no token for the sinks yet");
                Duration::from_secs(1)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_often_enough_for_short_tokens_and_rarely_for_long_ones() {
        assert_eq!(
            next_look(Duration::from_secs(2)),
            Duration::from_millis(200)
        );
        assert_eq!(next_look(Duration::ZERO), Duration::from_millis(50));
        assert_eq!(
            next_look(Duration::from_secs(86_400)),
            Duration::from_secs(10)
        );
    }
}
