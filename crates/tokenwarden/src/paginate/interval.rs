//! Time intervals for the analytics APIs: what a person types (`START/END`, `START/P7D`), and a
//! long interval cut into slices that one query or job accepts.

use crate::duration::{human, span};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

/// The longest interval tokenwarden puts into one analytics query or job: 31 days.
///
/// Genesys documents, for the conversation details query: "if no filter is supplied, you will be
/// limited to an interval no longer than seven days. If you do provide a filter, the limit
/// increases to 31 days" (developer.genesys.cloud, Analytics > Detail queries,
/// `/analyticsdatamanagement/analytics/detail/index`). The asynchronous jobs endpoint documents no
/// interval limit of its own (UNCONFIRMED; its page only says jobs are meant for bulk exports), so
/// each job is kept within the query's 31 days, which works under either answer.
pub const MAX_SLICE: Duration = Duration::from_secs(31 * 86_400);

/// Most slices one interval is cut into (a year of hourly slices fits).
const MAX_SLICES: u64 = 10_000;

/// A time interval `[start, end)`, as the Genesys analytics APIs take it.
///
/// Parsed from ISO-8601 `START/END`, `START/DURATION` or `DURATION/END`, where a time is an RFC 3339
/// timestamp with its offset (`2024-01-01T00:00:00Z`, `2024-01-01T02:00:00+02:00`) or a date
/// (`2024-01-01`, midnight UTC), and a duration is ISO-8601 (`P7D`, `PT6H`, `P1M`) or short
/// (`7d`, `6h`); calendar units count in UTC. Shown as Genesys writes it:
/// `2024-01-01T00:00:00.000Z/2024-01-08T00:00:00.000Z`.
///
/// ```
/// use tokenwarden::paginate::Interval;
/// let week: Interval = "2024-01-01/P7D".parse()?;
/// assert_eq!(week.to_string(), "2024-01-01T00:00:00.000Z/2024-01-08T00:00:00.000Z");
/// let days = week.slices(std::time::Duration::from_secs(86_400))?;
/// assert_eq!(days.len(), 7);
/// # Ok::<(), tokenwarden::paginate::IntervalError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    start: Timestamp,
    end: Timestamp,
}

/// Why an interval or a slice length was refused, in words that say what to type instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntervalError(String);

impl fmt::Display for IntervalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IntervalError {}

impl Interval {
    /// `[start, end)`.
    ///
    /// # Errors
    /// When `start` is not before `end`, or a time is outside what a timestamp can hold.
    pub fn new(start: SystemTime, end: SystemTime) -> Result<Self, IntervalError> {
        let conv = |t: SystemTime| {
            Timestamp::try_from(t).map_err(|e| IntervalError(format!("time out of range: {e}")))
        };
        Self::checked(conv(start)?, conv(end)?)
    }

    fn checked(start: Timestamp, end: Timestamp) -> Result<Self, IntervalError> {
        if start >= end {
            return Err(IntervalError(format!(
                "the interval's start ({}) must be before its end ({})",
                genesys_time(start),
                genesys_time(end)
            )));
        }
        Ok(Self { start, end })
    }

    /// The first instant in the interval.
    pub fn start(&self) -> SystemTime {
        SystemTime::from(self.start)
    }

    /// The first instant after the interval.
    pub fn end(&self) -> SystemTime {
        SystemTime::from(self.end)
    }

    /// How long the interval is.
    pub fn duration(&self) -> Duration {
        self.end.duration_since(self.start).unsigned_abs()
    }

    /// The interval cut into consecutive slices of at most `length`, with boundaries on multiples
    /// of `length` counted from midnight UTC of the start day (so daily slices are UTC days, as the
    /// analytics indexes are); the first and last slice may be shorter.
    ///
    /// # Errors
    /// When `length` is zero or longer than [`MAX_SLICE`], or the interval would need more than
    /// 10,000 slices.
    pub fn slices(&self, length: Duration) -> Result<Vec<Interval>, IntervalError> {
        check_slice_length(length)?;
        let len = SignedDuration::try_from(length)
            .map_err(|e| IntervalError(format!("slice length out of range: {e}")))?;
        let day_start = self
            .start
            .to_zoned(TimeZone::UTC)
            .start_of_day()
            .map_err(|e| IntervalError(e.to_string()))?
            .timestamp();
        let len_ns = len.as_nanos();
        let first_boundary_k = self.start.duration_since(day_start).as_nanos() / len_ns + 1;
        let span_ns = self.end.duration_since(day_start).as_nanos();
        let count = (span_ns - 1) / len_ns + 1 - (first_boundary_k - 1);
        if count as u64 > MAX_SLICES {
            return Err(IntervalError(format!(
                "{self} cut into slices of {} would make {count} slices (at most {MAX_SLICES}): use longer slices",
                human(length)
            )));
        }
        let mut out = Vec::with_capacity(count as usize);
        let mut from = self.start;
        let mut k = first_boundary_k;
        while from < self.end {
            let boundary = day_start
                .checked_add(SignedDuration::from_nanos_i128(k * len_ns))
                .map_err(|e| IntervalError(e.to_string()))?;
            let to = boundary.min(self.end);
            out.push(Interval {
                start: from,
                end: to,
            });
            from = to;
            k += 1;
        }
        Ok(out)
    }

    pub(crate) fn start_ts(&self) -> Timestamp {
        self.start
    }

    pub(crate) fn end_ts(&self) -> Timestamp {
        self.end
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", genesys_time(self.start), genesys_time(self.end))
    }
}

impl FromStr for Interval {
    type Err = IntervalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shown = crate::error::excerpt(s, 120);
        let bad = |why: &str| {
            IntervalError(format!(
                "interval {shown:?}: {why}; use START/END in ISO-8601, e.g. 2024-01-01T00:00:00Z/2024-01-08T00:00:00Z (or 2024-01-01/P7D)"
            ))
        };
        let (a, b) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| bad("no '/' between start and end"))?;
        let (a, b) = (a.trim(), b.trim());
        let (start, end) = match (time(a), time(b)) {
            (Ok(start), Ok(end)) => (start, end),
            (Ok(start), Err(e)) => match span(b) {
                Some(d) => (start, shift(start, d, 1).map_err(|e| bad(&e))?),
                None => return Err(bad(&format!("end: {e}"))),
            },
            (Err(e), Ok(end)) => match span(a) {
                Some(d) => (shift(end, d, -1).map_err(|e| bad(&e))?, end),
                None => return Err(bad(&format!("start: {e}"))),
            },
            (Err(e), Err(_)) => return Err(bad(&format!("start: {e}"))),
        };
        Interval::checked(start, end).map_err(|e| bad(&e.0))
    }
}

/// A slice length as typed, in tokenwarden's one [duration grammar](crate::duration): `1d`,
/// `6h`, `90m`, `P1D`, `PT6H`.
///
/// # Errors
/// When it is not a duration, uses months or years (their length varies), is zero, or is longer
/// than [`MAX_SLICE`].
pub fn parse_slice_length(s: &str) -> Result<Duration, IntervalError> {
    let d = crate::duration::parse(s).map_err(|e| {
        let shown = crate::error::excerpt(s, 60);
        IntervalError(format!("slice {shown:?}: {e}"))
    })?;
    check_slice_length(d)?;
    Ok(d)
}

fn check_slice_length(d: Duration) -> Result<(), IntervalError> {
    if d.is_zero() {
        return Err(IntervalError("a slice must be longer than zero".into()));
    }
    if d > MAX_SLICE {
        return Err(IntervalError(format!(
            "a slice of {} is longer than one analytics query may span (31 days)",
            human(d)
        )));
    }
    Ok(())
}

/// A time: RFC 3339 with an offset, or a date (midnight UTC).
fn time(s: &str) -> Result<Timestamp, String> {
    let has_time = s.contains(['T', 't', ' ']);
    if has_time {
        return s.parse::<Timestamp>().map_err(|_| {
            if s.parse::<jiff::civil::DateTime>().is_ok() {
                format!("{s:?} has no UTC offset (add Z for UTC)")
            } else {
                format!("{s:?} is not a date or time")
            }
        });
    }
    s.parse::<jiff::civil::Date>()
        .map_err(|_| format!("{s:?} is not a date or time"))?
        .to_zoned(TimeZone::UTC)
        .map(|z| z.timestamp())
        .map_err(|e| e.to_string())
}

/// `t` moved by `span` (`sign` 1 or -1), calendar units in UTC.
fn shift(t: Timestamp, span: Span, sign: i64) -> Result<Timestamp, String> {
    let span = if sign < 0 { span.negate() } else { span };
    t.to_zoned(TimeZone::UTC)
        .checked_add(span)
        .map(|z| z.timestamp())
        .map_err(|e| e.to_string())
}

/// `2024-01-01T00:00:00.000Z`, the shape Genesys uses.
pub(crate) fn genesys_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(s: &str) -> Interval {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_what_people_type() {
        let week = "2024-01-01T00:00:00.000Z/2024-01-08T00:00:00.000Z";
        assert_eq!(
            iv("2024-01-01T00:00:00Z/2024-01-08T00:00:00Z").to_string(),
            week
        );
        assert_eq!(iv("2024-01-01/2024-01-08").to_string(), week);
        assert_eq!(iv("2024-01-01/P7D").to_string(), week);
        assert_eq!(iv("2024-01-01T00:00:00Z/7d").to_string(), week);
        assert_eq!(iv("P7D/2024-01-08T00:00:00Z").to_string(), week);
        assert_eq!(
            iv("2024-01-01T02:00:00+02:00/PT6H").to_string(),
            "2024-01-01T00:00:00.000Z/2024-01-01T06:00:00.000Z"
        );
        // Months count in UTC: January has 31 days, February 2024 29.
        assert_eq!(
            iv("2024-01-01/P2M").to_string(),
            "2024-01-01T00:00:00.000Z/2024-03-01T00:00:00.000Z"
        );
        assert_eq!(
            iv(" 2024-01-01T00:00:00.250Z / 2024-01-01T00:00:01Z ").to_string(),
            "2024-01-01T00:00:00.250Z/2024-01-01T00:00:01.000Z"
        );
    }

    #[test]
    fn refuses_garbage_with_what_to_type() {
        for bad in [
            "garbage",
            "yesterday/today",
            "2024-01-08/2024-01-01",
            "2024-01-01/2024-01-01",
            "2024-01-01T00:00:00/2024-01-02T00:00:00",
            "P1D/P2D",
            "2024-01-01/-P1D",
            "2024-13-01/2024-01-02",
            "",
        ] {
            let e = bad.parse::<Interval>().unwrap_err().to_string();
            assert!(e.contains("START/END"), "{bad}: {e}");
        }
        let e = "2024-01-01T00:00:00/P1D".parse::<Interval>().unwrap_err();
        assert!(e.to_string().contains("add Z"), "{e}");
        let e = "2024-01-08/2024-01-01".parse::<Interval>().unwrap_err();
        assert!(e.to_string().contains("before its end"), "{e}");
        // Hostile text is shortened and shown printable.
        let e = format!("\u{1b}[2J{}", "x".repeat(5000))
            .parse::<Interval>()
            .unwrap_err()
            .to_string();
        assert!(e.len() < 600 && !e.contains('\u{1b}'), "{e}");
    }

    #[test]
    fn daily_slices_are_utc_days() {
        let day = Duration::from_secs(86_400);
        let s = iv("2024-01-01T12:00:00Z/2024-01-04T06:00:00Z")
            .slices(day)
            .unwrap();
        let shown: Vec<String> = s.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "2024-01-01T12:00:00.000Z/2024-01-02T00:00:00.000Z",
                "2024-01-02T00:00:00.000Z/2024-01-03T00:00:00.000Z",
                "2024-01-03T00:00:00.000Z/2024-01-04T00:00:00.000Z",
                "2024-01-04T00:00:00.000Z/2024-01-04T06:00:00.000Z",
            ]
        );
        // A slice longer than the interval: one slice, the interval itself.
        let one = iv("2024-01-01T12:00:00Z/2024-01-01T13:00:00Z");
        assert_eq!(one.slices(day).unwrap(), vec![one]);
        // Six-hour slices line up on 00, 06, 12, 18 UTC.
        let s = iv("2024-01-01T05:00:00Z/2024-01-01T13:00:00Z")
            .slices(Duration::from_secs(6 * 3600))
            .unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(
            s[1].to_string(),
            "2024-01-01T06:00:00.000Z/2024-01-01T12:00:00.000Z"
        );
        // Slices cover the interval exactly, end to end.
        let whole = iv("2024-01-01T00:17:00Z/2024-02-11T03:00:00Z");
        let s = whole.slices(Duration::from_secs(7 * 86_400)).unwrap();
        assert_eq!(s.first().unwrap().start_ts(), whole.start_ts());
        assert_eq!(s.last().unwrap().end_ts(), whole.end_ts());
        assert!(s.windows(2).all(|w| w[0].end_ts() == w[1].start_ts()));
        assert!(
            s.iter()
                .all(|x| x.duration() <= Duration::from_secs(7 * 86_400))
        );
    }

    #[test]
    fn slice_lengths_within_the_api_limit() {
        assert_eq!(
            parse_slice_length("1d").unwrap(),
            Duration::from_secs(86_400)
        );
        assert_eq!(
            parse_slice_length("P1D").unwrap(),
            Duration::from_secs(86_400)
        );
        assert_eq!(
            parse_slice_length("6h").unwrap(),
            Duration::from_secs(6 * 3600)
        );
        assert_eq!(parse_slice_length("31d").unwrap(), MAX_SLICE);
        for bad in ["32d", "0d", "P1M", "-1d", "soon", ""] {
            assert!(parse_slice_length(bad).is_err(), "{bad}");
        }
        let e = parse_slice_length("32d").unwrap_err().to_string();
        assert!(e.contains("31 days"), "{e}");
        let tiny = iv("2020-01-01/2024-01-01").slices(Duration::from_secs(60));
        assert!(tiny.unwrap_err().to_string().contains("at most"));
    }
}
