//! The engine's write-through cache of decoded records.
//!
//! Profiling pipelined writes showed the engine thread spending most of its time looking keys
//! up in the storage engine (memtable skip list, table blocks) and decoding them. The engine is
//! the only writer, so a cache it fills after each successful commit is exact: it never holds a
//! record that is not committed, and a miss falls through to the store. Eviction is first in,
//! first out, with a bound on entries. Records are boxed: a decoded record is 240 bytes, and
//! the map moves its entries whenever it grows or rehashes out its tombstones (profiling a
//! catch-up showed most of the cache's time there).

use bytes::Bytes;
use std::collections::VecDeque;

/// foldhash, seeded at random per process, as in `txn.rs`; the cache is bounded.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use storage::Stored;

/// Records the engine holds decoded. `None` caches "not in the store".
#[derive(Debug)]
pub struct RecordCache {
    map: HashMap<Bytes, Option<Box<Stored>>>,
    order: VecDeque<Bytes>,
    entries_max: usize,
}

impl RecordCache {
    /// An empty cache of at most `entries_max` keys (0 disables it).
    pub fn new(entries_max: usize) -> RecordCache {
        RecordCache {
            map: HashMap::default(),
            order: VecDeque::new(),
            entries_max,
        }
    }

    /// The cached record of `key`: `Some(None)` when the key is known to be absent.
    pub fn get(&self, key: &[u8]) -> Option<Option<Stored>> {
        self.map.get(key).map(|r| r.as_deref().cloned())
    }

    /// Remembers what is committed under `key`.
    pub fn insert(&mut self, key: Bytes, record: Option<Stored>) {
        if self.entries_max == 0 {
            return;
        }
        if self.map.insert(key.clone(), record.map(Box::new)).is_none() {
            self.order.push_back(key);
            while self.order.len() > self.entries_max {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }

    /// Updates `key` if it is cached; caches nothing new.
    pub fn refresh(&mut self, key: Bytes, record: Option<Stored>) {
        if let Some(cached) = self.map.get_mut(&key) {
            *cached = record.map(Box::new);
        }
    }

    /// Number of cached keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_first_in_first_out() {
        let mut c = RecordCache::new(2);
        c.insert(Bytes::from("a"), None);
        c.insert(Bytes::from("b"), Some(Stored::default()));
        c.insert(Bytes::from("a"), Some(Stored::default()));
        assert_eq!(c.len(), 2);
        c.insert(Bytes::from("c"), None);
        assert_eq!(c.len(), 2);
        assert!(c.get(b"a").is_none());
        assert_eq!(c.get(b"b"), Some(Some(Stored::default())));
        assert_eq!(c.get(b"c"), Some(None));
    }

    #[test]
    fn refresh_updates_what_is_cached_and_adds_nothing() {
        let mut c = RecordCache::new(4);
        c.insert(Bytes::from("a"), None);
        c.refresh(Bytes::from("a"), Some(Stored::default()));
        c.refresh(Bytes::from("b"), Some(Stored::default()));
        assert_eq!(c.get(b"a"), Some(Some(Stored::default())));
        assert!(c.get(b"b").is_none());
        assert_eq!(c.len(), 1);
    }
}
