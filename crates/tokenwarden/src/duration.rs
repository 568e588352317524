//! Durations as people write and read them: one grammar for every duration tokenwarden takes, and
//! one way of showing a duration in a message.
//!
//! The grammar ([`parse`]) is the same for a command-line flag, a profile setting and an analytics
//! slice length:
//! - a number and a unit: `1500ms`, `5s`, `2.5m`, `1h`, `1d` (units `ms`, `s`/`sec`, `m`/`min`,
//!   `h`, `d`; a space between the two is fine);
//! - a bare number of seconds: `7`, `0.5`;
//! - several units (`1h30m`, `2w`) or ISO-8601 (`PT6H`, `P1D`), as [jiff](https://docs.rs/jiff)
//!   reads spans.
//!
//! A day is 24 hours and a week 7 days; months and years are refused, since their length varies.
//! An interval's end given as a duration (`paginate::Interval`'s `START/P1M`) is the one
//! place calendar units count, from the interval's start.
//!
//! [`human`] shows a duration the way every message of tokenwarden (the library's and the
//! command line's) writes it: `250 ms`, `2.5 s`, `1 min 30 s`, `2 h 5 min`, `1 d 6 h`.

use jiff::{Span, SpanRelativeTo};
use std::fmt;
use std::time::Duration;

/// Why a text is not a duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DurationError {
    /// Not a duration at all (no number, an unknown unit).
    NotADuration,
    /// Below zero.
    Negative,
    /// Months or years, whose length varies.
    VariableLength,
    /// Longer than a duration can hold.
    TooLong,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotADuration => "not a duration (e.g. 500ms, 5s, 2m, 1h, 1d, PT6H)",
            Self::Negative => "not a positive duration",
            Self::VariableLength => {
                "months and years vary in length: use days, hours, minutes or seconds"
            }
            Self::TooLong => "too long",
        })
    }
}

impl std::error::Error for DurationError {}

/// Reads a duration in tokenwarden's one grammar (see the [module](self)): `1500ms`, `5s`, `2m`,
/// `1h`, `1d`, `1h30m`, `PT6H`, `P1D`, or a bare number of seconds. Zero is a duration; callers
/// that need more say so.
///
/// ```
/// use std::time::Duration;
/// use tokenwarden::duration::{DurationError, parse};
///
/// assert_eq!(parse("1500ms"), Ok(Duration::from_millis(1500)));
/// assert_eq!(parse("7"), Ok(Duration::from_secs(7)));
/// assert_eq!(parse("1d"), parse("P1D"));
/// assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
/// assert_eq!(parse("P1M"), Err(DurationError::VariableLength));
/// ```
///
/// # Errors
/// When the text is not a duration, is negative, uses months or years, or is longer than a
/// [`Duration`] holds.
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    if let Some(d) = number_and_unit(s) {
        return d;
    }
    if s.starts_with('-') {
        return Err(DurationError::Negative);
    }
    let span = s.parse::<Span>().map_err(|_| DurationError::NotADuration)?;
    if span.is_negative() {
        return Err(DurationError::Negative);
    }
    let d = span
        .to_duration(SpanRelativeTo::days_are_24_hours())
        .map_err(|_| DurationError::VariableLength)?;
    Duration::try_from(d).map_err(|_| DurationError::Negative)
}

/// `NUMBER [UNIT]` with one of the simple units, or `None` when the text is not of that shape
/// (then it may still be a span: `1h30m`, `P1D`).
fn number_and_unit(s: &str) -> Option<Result<Duration, DurationError>> {
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((s, ""), |i| (&s[..i], &s[i..]));
    let per_unit = match unit.trim() {
        "ms" => 0.001,
        "" | "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return None,
    };
    let n: f64 = num.trim().parse().ok()?;
    let secs = n * per_unit;
    Some(if secs.is_nan() || secs < 0.0 {
        Err(DurationError::Negative)
    } else {
        Duration::try_from_secs_f64(secs).map_err(|_| DurationError::TooLong)
    })
}

/// An ISO-8601 or short duration (`P7D`, `7d`, `P1M`) with calendar units kept, for a time that
/// moves by it; `None` if it is not one or is not positive.
pub(crate) fn span(s: &str) -> Option<Span> {
    if s.is_empty() || s.starts_with('-') {
        return None;
    }
    s.parse::<Span>().ok().filter(|sp| sp.is_positive())
}

/// A duration for people, as every message of tokenwarden writes it: `250 ms`, `2.5 s`, `45 s`,
/// `1 min 30 s`, `2 h 5 min`, `1 d 6 h`.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(tokenwarden::duration::human(Duration::from_millis(2538)), "2.5 s");
/// assert_eq!(tokenwarden::duration::human(Duration::from_secs(86_399)), "23 h 59 min");
/// ```
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86_400 {
        return match (s / 86_400, (s % 86_400) / 3600) {
            (days, 0) => format!("{days} d"),
            (days, h) => format!("{days} d {h} h"),
        };
    }
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, _) if d < Duration::from_secs(1) => format!("{} ms", d.as_millis()),
        (0, 0, s) if s < 10 && d.subsec_millis() >= 50 => format!("{:.1} s", d.as_secs_f64()),
        (0, 0, s) => format!("{s} s"),
        (0, m, 0) => format!("{m} min"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, 0, _) => format!("{h} h"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Result<Duration, DurationError> {
        Ok(Duration::from_secs(n))
    }

    #[test]
    fn one_grammar_for_flags_and_slices() {
        // What the command line's flags took.
        assert_eq!(parse("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("5s"), secs(5));
        assert_eq!(parse("5 sec"), secs(5));
        assert_eq!(parse("2m"), secs(120));
        assert_eq!(parse("2.5min"), secs(150));
        assert_eq!(parse("1h"), secs(3600));
        assert_eq!(parse(" 7 "), secs(7));
        assert_eq!(parse("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("0"), secs(0));
        // What slice lengths took.
        assert_eq!(parse("1d"), secs(86_400));
        assert_eq!(parse("P1D"), secs(86_400));
        assert_eq!(parse("PT6H"), secs(6 * 3600));
        assert_eq!(parse("1h30m"), secs(5400));
        assert_eq!(parse("1w"), secs(7 * 86_400));
        assert_eq!(parse("1.5d"), secs(129_600));
    }

    #[test]
    fn refusals_say_why() {
        for bad in [
            "",
            "soon",
            "5y2",
            "5 parsecs",
            "NaN",
            "inf",
            "1e300h",
            "s",
            "ms",
        ] {
            assert_eq!(parse(bad), Err(DurationError::NotADuration), "{bad:?}");
        }
        for neg in ["-1s", "-1", "-P1D", "-1h30m"] {
            assert_eq!(parse(neg), Err(DurationError::Negative), "{neg:?}");
        }
        for varies in ["P1M", "5y", "1 month"] {
            assert_eq!(
                parse(varies),
                Err(DurationError::VariableLength),
                "{varies:?}"
            );
        }
        assert_eq!(
            parse("99999999999999999999999"),
            Err(DurationError::TooLong)
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = parse(&s);
        }

        #[test]
        fn any_number_with_a_simple_unit(n in proptest::num::f64::ANY, unit in "(ms|s|m|h|d|)") {
            let _ = parse(&format!("{n}{unit}"));
        }

        #[test]
        fn whole_seconds_read_back(n in 0u64..10_000_000) {
            proptest::prop_assert_eq!(parse(&format!("{n}s")), secs(n));
            proptest::prop_assert_eq!(parse(&n.to_string()), secs(n));
        }
    }

    #[test]
    fn durations_read_like_words() {
        let ms = Duration::from_millis;
        assert_eq!(human(ms(250)), "250 ms");
        assert_eq!(human(ms(2_538)), "2.5 s");
        assert_eq!(human(ms(2_010)), "2 s");
        assert_eq!(human(ms(45_900)), "45 s");
        assert_eq!(human(ms(90_000)), "1 min 30 s");
        assert_eq!(human(ms(300_000)), "5 min");
        assert_eq!(human(ms(7_500_000)), "2 h 5 min");
        // Exactly at the day, a second before, and past it.
        assert_eq!(human(ms(86_399_000)), "23 h 59 min");
        assert_eq!(human(ms(86_400_000)), "1 d");
        assert_eq!(human(ms(108_000_000)), "1 d 6 h");
        assert_eq!(human(Duration::from_secs(32 * 86_400)), "32 d");
    }
}
