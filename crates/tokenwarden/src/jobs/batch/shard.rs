//! [`Shard`]: one part of a batch split over several processes or machines by a stable hash of
//! each record's id, so that every record belongs to exactly one part.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;

/// Part `index` of `count` (index from 0, as Kubernetes Indexed Jobs' `JOB_COMPLETION_INDEX`).
///
/// A record belongs to the shard whose index is the first 8 bytes of the SHA-256 of its id (as
/// text: `"r1"` and `1` are the ids `r1` and `1`), read as a big-endian unsigned number, modulo
/// `count`: stable across runs, machines and versions, and easy to compute elsewhere
/// (`int.from_bytes(hashlib.sha256(id.encode()).digest()[:8], "big") % count` in Python). An
/// input line without a readable id belongs to shard 0, so that it is reported once. So the
/// outputs of shards 0 to `count - 1`, put together (`cat`), hold every record of the input
/// exactly once.
///
/// ```
/// use tokenwarden::jobs::batch::Shard;
/// let shard: Shard = "1/4".parse().unwrap();
/// assert_eq!((shard.index(), shard.count()), (1, 4));
/// let owners = (0..4).filter(|i| Shard::new(*i, 4).unwrap().takes("user-000042")).count();
/// assert_eq!(owners, 1);
/// assert!("4/4".parse::<Shard>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// Part `index` (from 0) of `count`.
    ///
    /// # Errors
    /// A message when `count` is 0 or `index` is not below it.
    pub fn new(index: u32, count: u32) -> Result<Self, String> {
        if count == 0 {
            return Err("the shard count must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is not below the count {count} (indexes start at 0)"
            ));
        }
        Ok(Self { index, count })
    }

    /// This shard's index, from 0.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How many shards there are.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether the record with id `key` belongs to this shard.
    pub fn takes(&self, key: &str) -> bool {
        let digest = Sha256::digest(key.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first) % u64::from(self.count) == u64::from(self.index)
    }

    /// Whether this shard reports the input lines that have no readable id.
    pub fn takes_lines_without_id(&self) -> bool {
        self.index == 0
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `INDEX/COUNT`, e.g. `0/4`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: use INDEX/COUNT with INDEX from 0, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index = i.trim().parse().map_err(|_| bad())?;
        let count = n.trim().parse().map_err(|_| bad())?;
        Shard::new(index, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_belongs_to_exactly_one_shard_and_the_split_is_even() {
        let shards: Vec<Shard> = (0..4).map(|i| Shard::new(i, 4).unwrap()).collect();
        let mut sizes = [0u32; 4];
        for n in 0..4000 {
            let id = format!("user-{n:06}");
            let owners: Vec<usize> = (0..4).filter(|i| shards[*i].takes(&id)).collect();
            assert_eq!(owners.len(), 1, "{id}");
            sizes[owners[0]] += 1;
        }
        for s in sizes {
            assert!((850..=1150).contains(&s), "{sizes:?}");
        }
    }

    #[test]
    fn the_hash_is_the_documented_one() {
        // sha256("r1") = 9f0e7b7c...: int.from_bytes(digest[:8], "big") % 7 in Python.
        let digest = Sha256::digest(b"r1");
        let n = u64::from_be_bytes(digest[..8].try_into().unwrap());
        let expected = u32::try_from(n % 7).unwrap();
        assert!(Shard::new(expected, 7).unwrap().takes("r1"));
        assert!(Shard::new(0, 1).unwrap().takes("anything"));
    }

    #[test]
    fn parses_index_over_count() {
        assert_eq!("0/1".parse::<Shard>(), Shard::new(0, 1));
        assert_eq!(
            " 3 / 4 ".parse::<Shard>().map(|s| s.to_string()),
            Ok("3/4".into())
        );
        for bad in ["4/4", "1/0", "-1/4", "1", "a/b", "1/4/5", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
