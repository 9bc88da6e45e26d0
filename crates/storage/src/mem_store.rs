//! An in-memory [`Store`] for simulations and unit tests.

use crate::{
    Batch, Durability, MemberKind, StorageError, Store, Stored, expiry_key, log_key, member_key,
    member_prefix, split_expiry_key, split_log_key,
};
use bytes::Bytes;
use hlc::Timestamp;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Mutex;

/// Everything in ordered maps behind one lock; `commit` is atomic by construction.
#[derive(Debug, Default)]
pub struct MemStore {
    inner: Mutex<Inner>,
}

#[derive(Clone, Debug, Default)]
struct Inner {
    data: BTreeMap<Bytes, Stored>,
    members: BTreeMap<Vec<u8>, Bytes>,
    expiry: BTreeSet<Vec<u8>>,
    hlc: Timestamp,
    log: BTreeMap<[u8; 16], Bytes>,
    version_vector: Option<Bytes>,
    origin: Option<u64>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// A copy of everything the store holds now (a simulated disk image).
    pub fn snapshot(&self) -> MemStore {
        MemStore {
            inner: Mutex::new(self.lock().clone()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .expect("a MemStore user panicked while holding the lock")
    }
}

impl Store for MemStore {
    fn get(&self, key: &[u8]) -> Result<Option<Stored>, StorageError> {
        Ok(self.lock().data.get(key).cloned())
    }

    fn get_member(
        &self,
        kind: MemberKind,
        key: &[u8],
        member: &[u8],
    ) -> Result<Option<Bytes>, StorageError> {
        Ok(self
            .lock()
            .members
            .get(&member_key(kind, key, member))
            .cloned())
    }

    fn scan_members(
        &self,
        kind: MemberKind,
        key: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, StorageError> {
        let prefix = member_prefix(kind, key);
        let start = match after {
            None => Bound::Included(prefix.clone()),
            Some(a) => Bound::Excluded(member_key(kind, key, a)),
        };
        let inner = self.lock();
        Ok(inner
            .members
            .range((start, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(&prefix))
            .take(limit)
            .map(|(k, v)| (Bytes::copy_from_slice(&k[prefix.len()..]), v.clone()))
            .collect())
    }

    fn commit(&self, batch: &Batch, _durability: Durability) -> Result<(), StorageError> {
        let mut guard = self.lock();
        let this = &mut *guard;
        for (key, stored) in &batch.puts {
            if let Some(at) = stored.record.expires_at_ms() {
                this.expiry.insert(expiry_key(at, key));
            }
            this.data.insert(key.clone(), stored.clone());
        }
        for key in &batch.removes {
            this.data.remove(key);
        }
        for (kind, key, member, value) in &batch.member_puts {
            this.members.insert(
                member_key(*kind, key, member),
                Bytes::copy_from_slice(value),
            );
        }
        for (kind, key, member) in &batch.member_removes {
            this.members.remove(&member_key(*kind, key, member));
        }
        for (at, key) in &batch.expiry_removes {
            this.expiry.remove(&expiry_key(*at, key));
        }
        for (origin, seq, entry) in &batch.log_puts {
            this.log
                .insert(log_key(*origin, *seq), Bytes::copy_from_slice(entry));
        }
        for (origin, seq) in &batch.log_removes {
            this.log.remove(&log_key(*origin, *seq));
        }
        if let Some(vv) = &batch.version_vector {
            this.version_vector = Some(Bytes::copy_from_slice(vv));
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
    ) -> Result<Vec<(Bytes, Stored)>, StorageError> {
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

    fn log_range(
        &self,
        origin: u64,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Bytes)>, StorageError> {
        Ok(self
            .lock()
            .log
            .range(log_key(origin, from)..=log_key(origin, u64::MAX))
            .take(limit)
            .filter_map(|(k, v)| split_log_key(k).map(|(_, seq)| (seq, v.clone())))
            .collect())
    }

    fn version_vector(&self) -> Result<Option<Bytes>, StorageError> {
        Ok(self.lock().version_vector.clone())
    }

    fn last_hlc(&self) -> Result<Timestamp, StorageError> {
        Ok(self.lock().hlc)
    }

    fn origin(&self) -> Result<Option<u64>, StorageError> {
        Ok(self.lock().origin)
    }

    fn set_origin(&self, origin: u64) -> Result<(), StorageError> {
        self.lock().origin = Some(origin);
        Ok(())
    }

    fn disk_bytes(&self) -> u64 {
        0
    }
}
