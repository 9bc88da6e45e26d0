//! An in-memory [`Store`] for simulations and unit tests.

use crate::{Batch, Durability, StorageError, Store, expiry_key, split_expiry_key};
use bytes::Bytes;
use crdt::Record;
use hlc::Timestamp;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

/// Everything in ordered maps; `commit` is atomic by construction.
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    data: BTreeMap<Bytes, Record>,
    expiry: BTreeSet<Vec<u8>>,
    hlc: Timestamp,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }
}

impl Store for MemStore {
    fn get(&self, key: &[u8]) -> Result<Option<Record>, StorageError> {
        Ok(self.data.get(key).cloned())
    }

    fn commit(&mut self, batch: Batch, _durability: Durability) -> Result<(), StorageError> {
        for (key, record) in batch.puts {
            if let Some(at) = record.expires_at_ms() {
                self.expiry.insert(expiry_key(at, &key));
            }
            self.data.insert(key, record);
        }
        for key in batch.removes {
            self.data.remove(&key);
        }
        for (at, key) in batch.expiry_removes {
            self.expiry.remove(&expiry_key(at, &key));
        }
        self.hlc = self.hlc.max(batch.hlc);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
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
            .data
            .range((start, Bound::Unbounded))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<(u64, Bytes)>, StorageError> {
        Ok(self
            .expiry
            .iter()
            .filter_map(|k| split_expiry_key(k))
            .take_while(|(at, _)| *at <= now_ms)
            .take(limit)
            .collect())
    }

    fn last_hlc(&self) -> Result<Timestamp, StorageError> {
        Ok(self.hlc)
    }

    fn disk_bytes(&self) -> u64 {
        0
    }
}
