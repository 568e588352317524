//! A compact set of string keys kept as 128-bit hashes: the records a batch has done, the pages a
//! listing has been to.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};

/// A compact set of record keys: 128-bit hashes (two independent SipHash keys), so a million done
/// records cost about 32 MB whatever their ids look like, with a collision chance below 10⁻²⁰.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    set: HashSet<u128>,
    hashers: (std::hash::RandomState, std::hash::RandomState),
}

impl KeySet {
    /// The 128-bit hash `key` is kept as (stable for this set).
    pub(crate) fn hash(&self, key: &str) -> u128 {
        let mut a = self.hashers.0.build_hasher();
        a.write(key.as_bytes());
        let mut b = self.hashers.1.build_hasher();
        b.write(key.as_bytes());
        ((a.finish() as u128) << 64) | b.finish() as u128
    }

    /// Adds `key`; false if it was there already.
    pub(crate) fn insert(&mut self, key: &str) -> bool {
        let h = self.hash(key);
        self.set.insert(h)
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        self.set.contains(&self.hash(key))
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }
}
