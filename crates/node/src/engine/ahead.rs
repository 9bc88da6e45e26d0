//! Reading ahead: the headers a batch of peers' entries will merge into, read from the store
//! off the engine thread while the engine applies the batch before it.
//!
//! Profiling a 1M-write catch-up showed the engine thread busy the whole time and half of it
//! in the store's point lookups (memtable skip list, table blocks), while the second core sat
//! partly idle. The engine is the only writer, so what a lookup found stays true until the
//! engine commits that key again: each read-ahead remembers the engine's commit count when it
//! began, the engine remembers which keys its recent commits wrote, and a read-ahead value is
//! used only for keys no commit since then wrote.

use super::txn::Touched;
use bytes::Bytes;
use replication::{Change, Entry};
use std::collections::VecDeque;
use std::collections::hash_map;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use storage::{StorageError, Store};

/// The round's map of keys (`txn.rs`): the engine adopts it as it is. Bounded by a batch.
pub type Headers = std::collections::HashMap<Bytes, Touched, foldhash::fast::RandomState>;

/// Commits whose written keys the engine remembers. A read-ahead older than this window is
/// not used (the engine reads again).
const WINDOW_COMMITS: usize = 64;

/// Batches with fewer changes are applied without reading ahead: the engine is then rarely
/// busy, and reading first would only add a step to replication lag.
const READ_AHEAD_CHANGES_MIN: usize = 1024;

/// Headers read from the store for a batch, and the engine's commit count before the reads.
#[derive(Debug)]
pub struct ReadAhead {
    since: u64,
    headers: Headers,
}

impl ReadAhead {
    /// Reads every header that `entries` change. `commits` is the engine's published commit
    /// count; it is loaded before the first lookup.
    pub fn read(
        store: &dyn Store,
        commits: &AtomicU64,
        entries: &[Entry],
    ) -> Result<ReadAhead, StorageError> {
        let since = commits.load(Ordering::Acquire);
        let changes = entries.iter().map(|e| e.changes.len()).sum();
        // Sized for every change: the round that adopts the map adds no more than that.
        let mut headers = Headers::with_capacity_and_hasher(changes, Default::default());
        for key in entries.iter().flat_map(|e| &e.changes).map(Change::key) {
            if let hash_map::Entry::Vacant(slot) = headers.entry(key.clone()) {
                slot.insert(Touched::read(store.get(key)?, true));
            }
        }
        Ok(ReadAhead { since, headers })
    }

    /// Whether a batch of `entries` is worth reading ahead.
    pub fn worth_it(entries: &[Entry]) -> bool {
        entries.iter().map(|e| e.changes.len()).sum::<usize>() >= READ_AHEAD_CHANGES_MIN
    }
}

/// The keys the engine's recent commits wrote, and the published commit count.
#[derive(Debug, Default)]
pub struct Written {
    /// Published after each commit is visible in the store.
    commits: Arc<AtomicU64>,
    /// (commit number, keys it wrote), oldest first, at most [`WINDOW_COMMITS`].
    recent: VecDeque<(u64, Vec<Bytes>)>,
}

impl Written {
    /// The count readers load before reading ahead.
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.commits.clone()
    }

    /// A commit that wrote `keys` is visible in the store.
    pub fn committed(&mut self, keys: Vec<Bytes>) {
        let n = self.commits.load(Ordering::Relaxed) + 1;
        if self.recent.len() == WINDOW_COMMITS {
            self.recent.pop_front();
        }
        self.recent.push_back((n, keys));
        // Only now, after the store shows the commit: a reader that loads `n` and then reads
        // a key sees what commit `n` wrote; one that loaded less treats the key as stale.
        self.commits.store(n, Ordering::Release);
    }

    /// The read-ahead values still true now: those of keys no commit since wrote. Nothing if
    /// the window no longer reaches back to when the reads began.
    pub fn usable(&self, ahead: ReadAhead) -> Headers {
        let now = self.commits.load(Ordering::Relaxed);
        let oldest = self.recent.front().map_or(now + 1, |(n, _)| *n);
        if ahead.since < now && ahead.since + 1 < oldest {
            return Headers::default();
        }
        let mut headers = ahead.headers;
        let since = self.recent.iter().filter(|(n, _)| *n > ahead.since);
        for key in since.flat_map(|(_, keys)| keys) {
            headers.remove(key);
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ahead(since: u64, keys: &[&str]) -> ReadAhead {
        ReadAhead {
            since,
            headers: keys
                .iter()
                .map(|k| (Bytes::from(k.to_string()), Touched::read(None, true)))
                .collect(),
        }
    }

    fn keys(usable: Headers) -> Vec<String> {
        let mut out: Vec<String> = usable
            .into_keys()
            .map(|k| String::from_utf8(k.to_vec()).unwrap())
            .collect();
        out.sort();
        out
    }

    #[test]
    fn values_of_keys_written_since_the_reads_began_are_dropped() {
        let mut w = Written::default();
        w.committed(vec![Bytes::from("a")]);
        let since = w.counter().load(Ordering::Acquire);
        w.committed(vec![Bytes::from("b")]);
        w.committed(vec![]);
        assert_eq!(keys(w.usable(ahead(since, &["a", "b", "c"]))), ["a", "c"]);
        // Nothing committed since: all of it holds.
        let now = w.counter().load(Ordering::Acquire);
        assert_eq!(keys(w.usable(ahead(now, &["a", "b"]))), ["a", "b"]);
    }

    #[test]
    fn a_read_ahead_older_than_the_window_is_not_used() {
        let mut w = Written::default();
        for _ in 0..WINDOW_COMMITS + 1 {
            w.committed(vec![Bytes::from("x")]);
        }
        assert!(w.usable(ahead(0, &["a"])).is_empty());
        let recent = w.counter().load(Ordering::Acquire) - 2;
        assert_eq!(keys(w.usable(ahead(recent, &["a", "x"]))), ["a"]);
    }
}
