//! When a job whose records fail en masse stops early: a count, or a share of the records run.

use std::fmt;
use std::str::FromStr;

/// Records a percentage limit waits for before it can stop a job: a few unlucky failures at the
/// start are not a trend.
pub const MIN_FAILURE_SAMPLE: u64 = 100;

/// How many failed records a batch tolerates before it stops (see [`BatchOptions::max_failures`]).
///
/// A failed record is one the API answered with a non-2xx status or that failed without an answer;
/// invalid input lines do not count (they send nothing). Only records run in this run count, so a
/// resumed job starts afresh.
///
/// ```
/// use tokenwarden::jobs::batch::FailureLimit;
/// assert_eq!("25".parse::<FailureLimit>(), Ok(FailureLimit::Count(25)));
/// assert_eq!("5%".parse::<FailureLimit>(), Ok(FailureLimit::Percent(5.0)));
/// assert!("lots".parse::<FailureLimit>().is_err());
/// ```
///
/// [`BatchOptions::max_failures`]: super::BatchOptions::max_failures
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FailureLimit {
    /// Stop once more than this many records have failed (0: at the first failure).
    Count(u64),
    /// Stop once more than this percentage (0 to 100) of the records run so far have failed,
    /// judged from [`MIN_FAILURE_SAMPLE`] records on.
    Percent(f64),
}

impl FailureLimit {
    /// Whether `failed` failures among `run` records run so far are too many.
    pub(crate) fn exceeded(&self, failed: u64, run: u64) -> bool {
        match *self {
            FailureLimit::Count(n) => failed > n,
            FailureLimit::Percent(p) => {
                run >= MIN_FAILURE_SAMPLE && failed as f64 * 100.0 > p * run as f64
            }
        }
    }
}

impl FromStr for FailureLimit {
    type Err = String;

    /// `N` (a count) or `N%` (a percentage, decimals allowed).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            return match p.trim().parse::<f64>() {
                Ok(p) if (0.0..=100.0).contains(&p) => Ok(FailureLimit::Percent(p)),
                _ => Err(format!(
                    "{s:?} is not a percentage from 0% to 100% (e.g. 5%)"
                )),
            };
        }
        s.parse::<u64>().map(FailureLimit::Count).map_err(|_| {
            format!("{s:?} is not a number of records (e.g. 100) or a percentage (e.g. 5%)")
        })
    }
}

impl fmt::Display for FailureLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureLimit::Count(n) => write!(f, "{n}"),
            FailureLimit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_trips_past_its_number() {
        let l = FailureLimit::Count(3);
        assert!(!l.exceeded(3, 3));
        assert!(l.exceeded(4, 4));
        assert!(FailureLimit::Count(0).exceeded(1, 1));
    }

    #[test]
    fn a_percentage_waits_for_the_minimum_sample() {
        let l = FailureLimit::Percent(10.0);
        assert!(!l.exceeded(MIN_FAILURE_SAMPLE - 1, MIN_FAILURE_SAMPLE - 1));
        assert!(l.exceeded(11, MIN_FAILURE_SAMPLE));
        assert!(
            !l.exceeded(10, MIN_FAILURE_SAMPLE),
            "exactly 10% is allowed"
        );
        assert!(!FailureLimit::Percent(100.0).exceeded(500, 500));
    }

    #[test]
    fn parses_counts_and_percentages() {
        assert_eq!("0".parse(), Ok(FailureLimit::Count(0)));
        assert_eq!(" 2.5% ".parse(), Ok(FailureLimit::Percent(2.5)));
        for bad in ["-1", "101%", "x%", "", "1e3", "NaN%"] {
            assert!(bad.parse::<FailureLimit>().is_err(), "{bad}");
        }
        assert_eq!(FailureLimit::Percent(5.0).to_string(), "5%");
    }
}
