//! Ids the simulator hands out or journals: token and refresh-token ids (never the tokens
//! themselves), random opaque strings and uuid-looking ids.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::data::uuidish;

/// The journal id of the token with sequence number `seq`.
pub(crate) fn token_id(seq: u64) -> String {
    format!("tok-{seq}")
}

/// The journal id of refresh token number `n` (`rt-7`): never the token itself.
pub(crate) fn refresh_token_id(n: u64) -> String {
    format!("rt-{n}")
}

/// `n` random bytes, base64url without padding.
pub(crate) fn random_b64(n: usize) -> String {
    let mut buf = [0u8; 48];
    let n = n.min(buf.len());
    rand::Rng::fill(&mut rand::rng(), &mut buf[..n]);
    URL_SAFE_NO_PAD.encode(&buf[..n])
}

/// A fresh random uuid-looking id (error `contextId`s).
pub(crate) fn random_uuid() -> String {
    uuidish(rand::random(), rand::random())
}
