//! The pages a walk has been to, so that a server sending it back to one (A → B → A) stops the
//! listing with an error instead of looping forever and growing the output without end.
//!
//! The first [`REMEMBERED`] pages are kept as 128-bit hashes (16 bytes each, about 3 MB at most):
//! a revisit among them is caught at once. Past that, a listing of that many pages keeps one page
//! as a mark, moved to the current page after 1, 2, 4, 8, ... more pages (Brent's cycle
//! detection): a cycle there is caught within a few times the pages before and in it, in constant
//! memory.

use crate::keyset::KeySet;

/// Pages remembered one by one.
pub(super) const REMEMBERED: u64 = 100_000;

/// The visits of one walk.
#[derive(Debug, Default)]
pub(super) struct Visits {
    seen: KeySet,
    count: u64,
    mark: Option<u128>,
    next_mark: u64,
}

impl Visits {
    /// Records a visit to the page `key` (its URL, or what the page held); false if the walk was
    /// there before.
    pub(super) fn first_visit(&mut self, key: &str) -> bool {
        let hash = self.seen.hash(key);
        if self.mark == Some(hash) || self.seen.contains(key) {
            return false;
        }
        self.count += 1;
        if self.count <= REMEMBERED {
            self.seen.insert(key);
        } else {
            // Pages past the remembered ones: the mark moves at 1, 2, 4, 8, ... of them.
            let past = self.count - REMEMBERED;
            if past >= self.next_mark {
                self.mark = Some(hash);
                self.next_mark = past.saturating_mul(2);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revisit_is_caught_at_once_while_pages_are_remembered() {
        let mut v = Visits::default();
        assert!(v.first_visit("/users?pageNumber=1"));
        assert!(v.first_visit("/users?pageNumber=2"));
        assert!(!v.first_visit("/users?pageNumber=1"));
        assert!(!v.first_visit("/users?pageNumber=2"));
    }

    #[test]
    fn a_cycle_past_the_remembered_pages_is_caught_within_twice_its_length() {
        let mut v = Visits::default();
        for i in 0..REMEMBERED {
            assert!(v.first_visit(&format!("p{i}")));
        }
        // Then a cycle of 1000 pages, entered after 5000 more: caught, in bounded time.
        let page = |n: u64| {
            if n < 5_000 {
                format!("q{n}")
            } else {
                format!("c{}", (n - 5_000) % 1_000)
            }
        };
        let caught = (0..100_000).find(|n| !v.first_visit(&page(*n)));
        let n = caught.expect("the cycle is caught");
        assert!(n < 4 * (5_000 + 1_000), "{n}");
    }
}
