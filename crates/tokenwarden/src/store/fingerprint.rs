//! The keyed fingerprint of a client secret kept next to a cached token: HMAC-SHA256 under a random
//! key that lives in the cache directory (0600). A plain hash of a low-entropy secret could be
//! brute-forced from a copy of the cache; without the key the fingerprint reveals nothing.

use crate::error::Error;
use crate::fs::PrivateDir;
use crate::secret::ClientSecret;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The key file's name in the cache directory.
pub(super) const KEY_FILE: &str = "fingerprint.key";
pub(super) const KEY_LEN: usize = 32;
/// Separates this use of the key from any later one.
const DOMAIN: &[u8] = b"tokenwarden client secret fingerprint v1\0";

/// The cache directory's fingerprint key.
pub(super) struct FingerprintKey(Zeroizing<[u8; KEY_LEN]>);

impl FingerprintKey {
    /// The key of `dir`, created (random, 0600) when there is none yet. A key file that is not a
    /// key is replaced (fingerprints made with it can no longer be checked: their tokens are
    /// fetched again); one that fails the safety checks is an error.
    pub(super) fn load_or_create(dir: &PrivateDir) -> Result<Self, Error> {
        for _ in 0..2 {
            match dir.read(KEY_FILE, 2 * KEY_LEN + 1)? {
                Some(text) => {
                    if let Some(key) = parse(&text) {
                        return Ok(key);
                    }
                    tracing::warn!(
                        path = %dir.join(KEY_FILE).display(),
                        "the token cache's fingerprint key is damaged; replacing it"
                    );
                    dir.replace(KEY_FILE, &new_key_file())?;
                }
                // Another process may create it at the same moment: whoever links first wins,
                // and the other reads the winner's key.
                None => {
                    dir.create_new(KEY_FILE, &new_key_file())?;
                }
            }
        }
        dir.read(KEY_FILE, 2 * KEY_LEN + 1)?
            .and_then(|text| parse(&text))
            .ok_or_else(|| {
                Error::store(format!(
                    "{} keeps changing or cannot be read back; is another program writing to the token cache directory?",
                    dir.join(KEY_FILE).display()
                ))
            })
    }

    /// A key from its bytes (kept elsewhere than in a directory: a fleet's shared store).
    #[cfg(feature = "redis")]
    pub(super) fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The fingerprint of `secret`, as stored: `hmac-sha256:` and 64 hex digits.
    pub(super) fn fingerprint(&self, secret: &ClientSecret) -> String {
        format!(
            "hmac-sha256:{}",
            hex(&self.mac(secret).finalize().into_bytes())
        )
    }

    /// Whether `stored` is the fingerprint of `secret` (compared in constant time).
    pub(super) fn matches(&self, secret: &ClientSecret, stored: &str) -> bool {
        let Some(bytes) = stored.strip_prefix("hmac-sha256:").and_then(unhex) else {
            return false;
        };
        self.mac(secret).verify_slice(&bytes).is_ok()
    }

    fn mac(&self, secret: &ClientSecret) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256>>::new_from_slice(self.0.as_slice())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(DOMAIN);
        mac.update(secret.expose_secret().as_bytes());
        mac
    }
}

fn new_key_file() -> Zeroizing<Vec<u8>> {
    let key = Zeroizing::new(rand::random::<[u8; KEY_LEN]>());
    let mut text = Zeroizing::new(hex(key.as_slice()).into_bytes());
    text.push(b'\n');
    text
}

fn parse(text: &[u8]) -> Option<FingerprintKey> {
    let text = std::str::from_utf8(text).ok()?.trim_end_matches('\n');
    let bytes = Zeroizing::new(unhex(text)?);
    let key: [u8; KEY_LEN] = bytes.as_slice().try_into().ok()?;
    Some(FingerprintKey(Zeroizing::new(key)))
}

/// Lower-case hex.
pub(super) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

pub(super) fn unhex(s: &str) -> Option<Vec<u8>> {
    let nibbles = s
        .chars()
        .map(|c| c.to_digit(16).and_then(|d| u8::try_from(d).ok()))
        .collect::<Option<Vec<u8>>>()?;
    if nibbles.len() % 2 != 0 {
        return None;
    }
    Some(nibbles.chunks(2).map(|p| (p[0] << 4) | p[1]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> FingerprintKey {
        FingerprintKey(Zeroizing::new([byte; KEY_LEN]))
    }

    #[test]
    fn fingerprint_is_keyed_and_checked() {
        let s = ClientSecret::new("fingerprint-test-secret-1");
        let f = key(1).fingerprint(&s);
        assert!(f.starts_with("hmac-sha256:") && f.len() == 12 + 64, "{f}");
        assert!(key(1).matches(&s, &f));
        assert!(!key(2).matches(&s, &f), "another cache's key");
        assert!(!key(1).matches(&ClientSecret::new("fingerprint-test-secret-2"), &f));
        assert!(!key(1).matches(&s, "hmac-sha256:zz"));
        assert!(!key(1).matches(&s, &f[12..]));
        assert!(!f.contains("fingerprint-test-secret-1"));
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(unhex("00abff"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("+1"), None);
        assert!(parse(b"00\n").is_none());
        assert!(parse(&new_key_file()).is_some());
    }
}
