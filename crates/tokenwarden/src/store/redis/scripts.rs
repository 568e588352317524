//! The Lua scripts: each step that must not interleave with another process's runs in one of
//! these, atomically, on the Redis server (and on its clock: `TIME`, so that machines whose
//! clocks differ share one schedule).

use ::redis::Script;
use std::sync::LazyLock;

/// Releases the refresh lock if this holder still holds it (compare-and-delete).
/// KEYS: lock. ARGV: fence. Returns 1 if released.
pub(super) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0",
    )
});

/// Extends the refresh lock's lease if this holder still holds it.
/// KEYS: lock. ARGV: fence, lease in ms. Returns 1 if extended.
pub(super) static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0",
    )
});

/// Saves a token record (a hash) expiring with the token, unless another holder holds the lock
/// (fenced: a refresh whose lease ran out does not overwrite the token of the one that took over).
/// KEYS: token, lock. ARGV: fence ('' without a lock), ttl in ms, then field/value pairs.
/// Returns 1 if saved.
pub(super) static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1",
    )
});

/// Reads the token record and how long it has left, in ms by Redis's clock (so that machines
/// whose clocks differ agree on when the token expires).
/// KEYS: token. Returns {fields and values, PTTL}.
pub(super) static LOAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(r"return {redis.call('HGETALL', KEYS[1]), redis.call('PTTL', KEYS[1])}")
});

/// Removes the token record if it still holds the rejected token (compare-and-delete on its
/// SHA-256, so the token itself is not sent again).
/// KEYS: token. ARGV: SHA-256 of the rejected token, hex. Returns 1 if removed.
pub(super) static INVALIDATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('HGET', KEYS[1], 'token_sha256') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0",
    )
});

/// The fleet's fingerprint key: created once (random, from the first holder), then read.
/// KEYS: key. ARGV: a new random key, hex. Returns the key in force.
pub(super) static FINGERPRINT_KEY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])",
    )
});

/// The GCRA step, as [`reserve`](crate::rate::ratelimit::reserve) but on the server: the
/// theoretical arrival time of the next request, in microseconds of the server's clock.
/// KEYS: schedule. ARGV: interval µs, tolerance µs. Returns the wait in µs.
pub(super) static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return wait",
    )
});

/// Moves the schedule so that nobody starts before `wait` from now.
/// KEYS: schedule. ARGV: wait µs. Returns 1.
pub(super) static HOLD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local hold = now + tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if tat < hold then
  redis.call('SET', KEYS[1], string.format('%.0f', hold), 'PX', math.ceil((hold - now) / 1000) + 1000)
end
return 1",
    )
});
