//! Minimal RFC 3339 formatting and parsing (UTC), enough for Genesys intervals.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let d = i64::from(d);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Milliseconds since the Unix epoch (times before 1970 clamp to 0).
pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Format as `YYYY-MM-DDTHH:MM:SS.mmmZ` (the shape Genesys uses).
pub fn format_rfc3339(t: SystemTime) -> String {
    format_unix_ms(unix_ms(t))
}

/// Format Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub(crate) fn format_unix_ms(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let millis = ms % 1000;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

fn num(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Parse an RFC 3339 timestamp (`2024-01-01T00:00:00Z`, `2024-01-01T00:00:00.000Z`,
/// `2024-01-01T02:00:00+02:00`, ...) into a `SystemTime`. Returns `None` if malformed or before 1970.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = num(&b[0..4])?;
    let month = num(&b[5..7])?;
    let day = num(&b[8..10])?;
    let hour = num(&b[11..13])?;
    let min = num(&b[14..16])?;
    let sec = num(&b[17..19])?;
    if !(1..=12).contains(&month) || day == 0 || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let mdays = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if day > mdays[(month - 1) as usize] {
        return None;
    }
    let mut i = 19;
    let mut nanos: u64 = 0;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &b[start..i];
        if frac.is_empty() {
            return None;
        }
        let mut scale = 100_000_000u64;
        for &c in frac.iter().take(9) {
            nanos += u64::from(c - b'0') * scale;
            scale /= 10;
        }
    }
    let rest = &b[i..];
    let offset_secs: i64 = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = num(&[*h1, *h2])?;
            let m = num(&[*m1, *m2])?;
            if h > 23 || m > 59 {
                return None;
            }
            let o = i64::from(h * 3600 + m * 60);
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + min * 60 + sec) - offset_secs;
    if secs < 0 {
        return None;
    }
    Some(UNIX_EPOCH + Duration::new(secs as u64, nanos as u32))
}

/// Parse a Genesys interval `start/end` (two RFC 3339 timestamps); `start` must be before `end`.
pub fn parse_interval(s: &str) -> Option<(SystemTime, SystemTime)> {
    let (a, b) = s.split_once('/')?;
    let a = parse_rfc3339(a.trim())?;
    let b = parse_rfc3339(b.trim())?;
    (a < b).then_some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let t = parse_rfc3339("2024-01-01T00:00:00Z").unwrap();
        assert_eq!(unix_ms(t), 1_704_067_200_000);
        assert_eq!(format_rfc3339(t), "2024-01-01T00:00:00.000Z");
        let t = parse_rfc3339("2024-02-29T23:59:59.123+01:00").unwrap();
        assert_eq!(format_rfc3339(t), "2024-02-29T22:59:59.123Z");
        assert!(parse_rfc3339("2023-02-29T00:00:00Z").is_none());
        assert!(parse_rfc3339("2024-01-01 garbage").is_none());
        assert!(parse_rfc3339("2024-01-01T00:00:00").is_none());
        for ms in [0u64, 951_782_400_000, 4_102_444_799_999, 1_709_251_199_999] {
            let s = format_unix_ms(ms);
            assert_eq!(unix_ms(parse_rfc3339(&s).unwrap()), ms, "{s}");
        }
        assert!(parse_interval("2024-01-02T00:00:00Z/2024-01-01T00:00:00Z").is_none());
        assert!(parse_interval("2024-01-01T00:00:00Z/2024-01-02T00:00:00Z").is_some());
    }
}
