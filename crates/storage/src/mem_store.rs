//! An in-memory [`Store`] for simulations and unit tests.

use crate::{Batch, Durability, StorageError, Store, expiry_key, split_expiry_key};
use bytes::Bytes;
use crdt::Record;
use hlc::Timestamp;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Mutex;

/// Everything in ordered maps behind one lock; `commit` is atomic by construction.
#[derive(Debug, Default)]
pub struct MemStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    data: BTreeMap<Bytes, Record>,
    expiry: BTreeSet<Vec<u8>>,
    hlc: Timestamp,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .expect("a MemStore user panicked while holding the lock")
    }
}

impl Store for MemStore {
    fn get(&self, key: &[u8]) -> Result<Option<Record>, StorageError> {
        Ok(self.lock().data.get(key).cloned())
    }

    fn commit(&self, batch: &Batch, _durability: Durability) -> Result<(), StorageError> {
        let mut this = self.lock();
        let this = &mut *this;
        for (key, record) in &batch.puts {
            if let Some(at) = record.expires_at_ms() {
                this.expiry.insert(expiry_key(at, key));
            }
            this.data.insert(key.clone(), record.clone());
        }
        for key in &batch.removes {
            this.data.remove(key);
        }
        for (at, key) in &batch.expiry_removes {
            this.expiry.remove(&expiry_key(*at, key));
        }
        this.hlc = this.hlc.max(batch.hlc);
        Ok(())
    }

    fn sync(&self) -> Result<(), StorageError> {
        Ok(())
    }

    fn scan(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Record)>, StorageError> {
        let start = after.map_or(Bound::Unbounded, |a| {
            Bound::Excluded(Bytes::copy_from_slice(a))
        });
        Ok(self
            .lock()
            .data
            .range((start, Bound::Unbounded))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<(u64, Bytes)>, StorageError> {
        Ok(self
            .lock()
            .expiry
            .iter()
            .filter_map(|k| split_expiry_key(k))
            .take_while(|(at, _)| *at <= now_ms)
            .take(limit)
            .collect())
    }

    fn last_hlc(&self) -> Result<Timestamp, StorageError> {
        Ok(self.lock().hlc)
    }

    fn disk_bytes(&self) -> u64 {
        0
    }
}
