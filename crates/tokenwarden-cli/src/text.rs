//! Text helpers for the command line's messages: counts in words, times as Genesys writes them.
//! Durations are shown with [`tokenwarden::duration::human`], as the library's messages show
//! them.

use std::time::SystemTime;

/// `n` and `word`, pluralised with an `s` when `n` is not 1: `1 page`, `2 pages`.
pub(crate) fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// `t` as RFC 3339 UTC with milliseconds, `2024-01-01T00:00:00.000Z` (the shape Genesys uses);
/// a time outside what a timestamp holds is shown as the nearest one it holds.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let ts = jiff::Timestamp::try_from(t).unwrap_or(if t < SystemTime::UNIX_EPOCH {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    });
    ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_read_like_words() {
        assert_eq!(plural(1, "page"), "1 page");
        assert_eq!(plural(0, "page"), "0 pages");
        assert_eq!(plural(3, "attempt"), "3 attempts");
    }

    #[test]
    fn times_as_genesys_writes_them() {
        let t = |ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        assert_eq!(rfc3339(t(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(t(1_704_067_200_250)), "2024-01-01T00:00:00.250Z");
        // A leap day and the last millisecond of a year.
        assert_eq!(rfc3339(t(1_709_208_000_000)), "2024-02-29T12:00:00.000Z");
        assert_eq!(rfc3339(t(1_735_689_599_999)), "2024-12-31T23:59:59.999Z");
        assert!(
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::MAX / 4))
                .starts_with("9999-")
        );
    }
}
