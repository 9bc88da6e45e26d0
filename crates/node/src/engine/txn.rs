//! One round of commands: reads see the round's own writes; writes collect into one batch.

use super::RecordCache;
use bytes::Bytes;
use crdt::{Merge, NodeId, Record, Stamp};
use hlc::Clock;
use std::collections::HashMap;
use storage::{Batch, StorageError, Store};

/// A key as the round left it, and whether it was live before the round touched it.
struct Touched {
    record: Option<Record>,
    live_before: bool,
    dirty: bool,
    /// Read from the store (not the cache): worth caching even if the round fails.
    from_store: bool,
}

/// What a finished round hands back to the engine.
pub struct Finished {
    /// The writes to commit.
    pub batch: Batch,
    /// The change in the number of live keys if the batch commits.
    pub live_delta: i64,
    /// Keys the round read from the store and did not change, with what it found.
    pub read: Vec<(Bytes, Option<Record>)>,
}

/// The state one round of commands works on: the store underneath, this round's changes on
/// top. Nothing reaches the store until [`Txn::finish`] hands back the batch.
pub struct Txn<'a> {
    store: &'a dyn Store,
    cache: Option<&'a RecordCache>,
    clock: &'a mut Clock,
    node: NodeId,
    now_ms: u64,
    touched: HashMap<Bytes, Touched>,
    expiry_removes: Vec<(u64, Bytes)>,
    /// Whether a record with nothing live is removed from storage. True for a cluster of one,
    /// where no peer can send a concurrent write that the tombstone would have to judge.
    drop_tombstones: bool,
    /// Set when a read failed: the round must not commit what it computed from a wrong view.
    pub failed: Option<StorageError>,
}

impl<'a> Txn<'a> {
    /// A round at physical time `now_ms`, reading through `cache` when given.
    pub fn new(
        store: &'a dyn Store,
        cache: Option<&'a RecordCache>,
        clock: &'a mut Clock,
        node: NodeId,
        now_ms: u64,
        drop_tombstones: bool,
    ) -> Self {
        Txn {
            store,
            cache,
            clock,
            node,
            now_ms,
            touched: HashMap::new(),
            expiry_removes: Vec::new(),
            drop_tombstones,
            failed: None,
        }
    }

    /// The round's physical time in milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// A fresh stamp for one write.
    pub fn stamp(&mut self) -> Stamp {
        Stamp::new(self.clock.now(self.now_ms), self.node)
    }

    /// The key's record as this round sees it, expired or not. A storage failure reads as
    /// absent and marks the round failed, so nothing computed from it is committed.
    pub fn raw(&mut self, key: &Bytes) -> Option<&Record> {
        if !self.touched.contains_key(key) {
            let cached = self.cache.and_then(|c| c.get(key)).cloned();
            let from_store = cached.is_none();
            let record = match cached {
                Some(r) => r,
                None => match self.store.get(key) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, "read failed");
                        self.failed.get_or_insert(e);
                        None
                    }
                },
            };
            let live_before = record.as_ref().is_some_and(|r| r.kind().is_some());
            let touched = Touched {
                record,
                live_before,
                dirty: false,
                from_store,
            };
            self.touched.insert(key.clone(), touched);
        }
        self.touched[key].record.as_ref()
    }

    /// The key's record if it is live now (present and not expired).
    pub fn live(&mut self, key: &Bytes) -> Option<&Record> {
        let now_ms = self.now_ms;
        self.raw(key).filter(|r| r.live_kind(now_ms).is_some())
    }

    /// The record a write starts from. An expired key is deleted first, as Redis does, so the
    /// write creates a fresh key with no leftover parts or deadline.
    pub fn for_write(&mut self, key: &Bytes) -> Record {
        let now_ms = self.now_ms;
        let current = self.raw(key).cloned().unwrap_or_default();
        if current.expired(now_ms) {
            let stamp = self.stamp();
            let delta = current.delete_delta(stamp);
            self.apply(key, &delta);
            return self.raw(key).cloned().unwrap_or_default();
        }
        current
    }

    /// Merges `delta` into the key's record.
    pub fn apply(&mut self, key: &Bytes, delta: &Record) {
        self.raw(key);
        let entry = self.touched.get_mut(key).expect("raw() inserted the key");
        entry
            .record
            .get_or_insert_with(Record::default)
            .merge(delta);
        entry.dirty = true;
    }

    /// How many keys this round has changed so far.
    pub fn dirty_count(&self) -> usize {
        self.touched.values().filter(|t| t.dirty).count()
    }

    /// Up to about `limit` records after `after` in key order, as this round sees them: the
    /// store's records with this round's changes on top, including keys this round created.
    pub fn scan(
        &mut self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Record)>, StorageError> {
        let stored = self.store.scan(after, limit)?;
        // Past the last stored key returned, the store may hold more: only round keys up to
        // it can be merged in. When the store ran out, every later round key belongs here.
        let upper = if stored.len() == limit {
            stored.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        let mut merged: std::collections::BTreeMap<Bytes, Option<Record>> =
            stored.into_iter().map(|(k, r)| (k, Some(r))).collect();
        for (key, t) in &self.touched {
            let after_ok = after.is_none_or(|a| key.as_ref() > a);
            let upper_ok = upper.as_ref().is_none_or(|u| key <= u);
            // A key the store returned shows as this round left it; a key this round wrote
            // joins the list when it falls inside the range the store covered.
            if (t.dirty && after_ok && upper_ok) || merged.contains_key(key) {
                merged.insert(key.clone(), t.record.clone());
            }
        }
        Ok(merged
            .into_iter()
            .filter_map(|(k, r)| r.map(|r| (k, r)))
            .collect())
    }

    /// Drops a stale expiry index entry.
    pub fn remove_expiry_entry(&mut self, at_ms: u64, key: Bytes) {
        self.expiry_removes.push((at_ms, key));
    }

    /// The batch to commit, the change in live keys it makes, and what the round read.
    pub fn finish(self) -> Finished {
        let mut batch = Batch {
            expiry_removes: self.expiry_removes,
            hlc: self.clock.last(),
            ..Batch::default()
        };
        let mut live_delta = 0i64;
        let mut read = Vec::new();
        let failed = self.failed.is_some();
        for (key, t) in self.touched {
            if !t.dirty {
                if t.from_store && !failed {
                    read.push((key, t.record));
                }
                continue;
            }
            let record = t.record.expect("a dirty key has a record");
            let live_after = record.kind().is_some();
            live_delta += i64::from(live_after) - i64::from(t.live_before);
            if !live_after && self.drop_tombstones {
                batch.removes.push(key);
            } else {
                batch.puts.push((key, record));
            }
        }
        Finished {
            batch,
            live_delta,
            read,
        }
    }
}
