//! Deterministic simulated data, generated on demand from an index (nothing is materialised, so a
//! million users cost nothing). Tests can use these functions to know what the server will answer.

use serde_json::{Value, json};

use crate::time::format_unix_ms;

const FIRST: [&str; 20] = [
    "Ada",
    "Alan",
    "Barbara",
    "Claude",
    "Dennis",
    "Edsger",
    "Frances",
    "Grace",
    "Hedy",
    "Ivan",
    "John",
    "Ken",
    "Leslie",
    "Margaret",
    "Niklaus",
    "Radia",
    "Shafi",
    "Tim",
    "Vint",
    "Whitfield",
];
const LAST: [&str; 25] = [
    "Lovelace",
    "Turing",
    "Liskov",
    "Shannon",
    "Ritchie",
    "Dijkstra",
    "Allen",
    "Hopper",
    "Lamarr",
    "Sutherland",
    "McCarthy",
    "Thompson",
    "Lamport",
    "Hamilton",
    "Wirth",
    "Perlman",
    "Goldwasser",
    "Berners-Lee",
    "Cerf",
    "Diffie",
    "Knuth",
    "Hoare",
    "Milner",
    "Backus",
    "Kay",
];
const CITIES: [&str; 8] = [
    "Dublin",
    "Indianapolis",
    "Sydney",
    "Tokyo",
    "Frankfurt",
    "Sao Paulo",
    "Mumbai",
    "Toronto",
];

const DEPARTMENTS: [&str; 4] = ["Sales", "Support", "Engineering", "Billing"];
const TITLES: [&str; 3] = ["Agent", "Senior Agent", "Supervisor"];
const MEDIA: [&str; 4] = ["voice", "chat", "email", "message"];

/// A bijective 64-bit mixer (the SplitMix64 finalizer).
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uuid-looking string derived from two 64-bit values (unique for distinct `a`).
pub(crate) fn uuidish(a: u64, b: u64) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// Parse `prefix` followed by at least 6 digits in canonical zero-padded form.
fn parse_indexed(id: &str, prefix: &str) -> Option<usize> {
    let digits = id.strip_prefix(prefix)?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let i: usize = digits.parse().ok()?;
    (format!("{i:06}") == digits).then_some(i)
}

/// Id of user `i` (0-based): `user-000042`.
pub fn user_id(i: usize) -> String {
    format!("user-{i:06}")
}

/// Index of a user id produced by [`user_id`] (does not check the configured user count).
pub fn parse_user_id(id: &str) -> Option<usize> {
    parse_indexed(id, "user-")
}

/// Display name of user `i`.
pub fn user_name(i: usize) -> String {
    format!(
        "{} {}",
        FIRST[i % FIRST.len()],
        LAST[(i / FIRST.len()) % LAST.len()]
    )
}

/// The JSON of user `i`, as `GET /api/v2/users/{id}` answers it.
pub fn user(i: usize) -> Value {
    let id = user_id(i);
    let first = FIRST[i % FIRST.len()];
    let last = LAST[(i / FIRST.len()) % LAST.len()];
    let email = format!(
        "{}.{}.{i}@example.com",
        first.to_lowercase(),
        last.to_lowercase()
    );
    json!({
        "id": id,
        "name": format!("{first} {last}"),
        "division": {"id": "division-home", "name": "Home", "selfUri": "/api/v2/authorization/divisions/division-home"},
        "email": email,
        "username": email,
        "department": DEPARTMENTS[i % DEPARTMENTS.len()],
        "title": TITLES[i % TITLES.len()],
        "state": if i % 50 == 49 { "inactive" } else { "active" },
        "acdAutoAnswer": false,
        "version": 1 + (i % 7),
        "selfUri": format!("/api/v2/users/{id}"),
    })
}

/// Id of external contact `i` (0-based): `contact-000042`.
pub fn contact_id(i: usize) -> String {
    format!("contact-{i:06}")
}

/// The JSON of external contact `i`.
pub fn contact(i: usize) -> Value {
    let id = contact_id(i);
    let h = mix64(i as u64 ^ 0xC0A7_AC75);
    json!({
        "id": id,
        "firstName": FIRST[(i / 3) % FIRST.len()],
        "lastName": LAST[(i / 7) % LAST.len()],
        "workEmail": format!("contact{i}@customer.example"),
        "workPhone": {"display": format!("+1 317-555-{:04}", h % 10_000), "e164": format!("+1317555{:04}", h % 10_000)},
        "address": {"city": CITIES[i % CITIES.len()]},
        "type": "Customer",
        "version": 1,
        "selfUri": format!("/api/v2/externalcontacts/contacts/{id}"),
    })
}

/// Id of conversation `i` (0-based): a uuid-looking string, unique per index.
pub fn conversation_id(i: usize) -> String {
    let a = mix64(i as u64);
    uuidish(a, mix64(a ^ 0x5EED))
}

/// Start of conversation `i` of `n` spread evenly over `[start_ms, end_ms)` (Unix milliseconds).
pub fn conversation_start_ms(i: usize, n: usize, start_ms: u64, end_ms: u64) -> u64 {
    if n == 0 {
        return start_ms;
    }
    let span = u128::from(end_ms.saturating_sub(start_ms));
    start_ms + (i as u128 * span / n as u128) as u64
}

/// Longest simulated conversation, in milliseconds (30 s to 15.5 min).
pub const MAX_CONVERSATION_MS: u64 = 930_000;

/// End of conversation `i` that started at `start_ms` (Unix ms): 30 s to 15.5 min later.
pub fn conversation_end_ms(i: usize, start_ms: u64) -> u64 {
    let h = mix64(i as u64 ^ 0xC0FF_EE00);
    start_ms + 30_000 + (h % (MAX_CONVERSATION_MS - 30_000))
}

/// The JSON of conversation `i` (starting at `start_ms`, Unix ms), as the analytics routes answer
/// it. `users` is the configured user count (the agent is one of them).
pub fn conversation(i: usize, start_ms: u64, users: usize) -> Value {
    let h = mix64(i as u64 ^ 0xC0FF_EE00);
    let end_ms = conversation_end_ms(i, start_ms);
    let outbound = i.is_multiple_of(3);
    let direction = if outbound { "outbound" } else { "inbound" };
    let cid = conversation_id(i);
    let agent = i % users.max(1);
    let media = MEDIA[(h >> 20) as usize % MEDIA.len()];
    json!({
        "conversationId": cid,
        "conversationStart": format_unix_ms(start_ms),
        "conversationEnd": format_unix_ms(end_ms),
        "originatingDirection": direction,
        "divisionIds": ["division-home"],
        "mediaStatsMinConversationMos": 4.0 + (h % 50) as f64 / 100.0,
        "participants": [
            {
                "participantId": uuidish(mix64(h), mix64(h ^ 1)),
                "participantName": format!("Customer {i}"),
                "purpose": "customer",
                "sessions": [{"mediaType": media, "direction": direction}],
            },
            {
                "participantId": uuidish(mix64(h ^ 2), mix64(h ^ 3)),
                "participantName": user_name(agent),
                "purpose": "agent",
                "userId": user_id(agent),
                "sessions": [{"mediaType": media, "direction": direction}],
            },
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(user_id(42), "user-000042");
        assert_eq!(parse_user_id("user-000042"), Some(42));
        assert_eq!(parse_user_id("user-42"), None);
        assert_eq!(parse_user_id("user-0000042"), None);
        assert_eq!(parse_user_id(&user_id(1_234_567)), Some(1_234_567));
        assert_ne!(conversation_id(1), conversation_id(2));
        assert_eq!(conversation_id(7).len(), 36);
        assert_eq!(conversation_start_ms(0, 10, 1000, 2000), 1000);
        assert_eq!(conversation_start_ms(5, 10, 1000, 2000), 1500);
    }
}
