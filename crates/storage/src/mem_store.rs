//! An in-memory [`Store`] for simulations and unit tests.

use crate::{
    Batch, Durability, Grave, MemberKind, StorageError, Store, Stored, expiry_key, grave_key,
    log_key, member_key, member_prefix, split_expiry_key, split_grave, split_log_key,
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
    graves: BTreeMap<Vec<u8>, u64>,
    hlc: Timestamp,
    log: BTreeMap<[u8; 16], Bytes>,
    version_vector: Option<Bytes>,
    origin: Option<u64>,
    format: Option<u32>,
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

impl crate::StateRead for MemStore {
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

    fn version_vector(&self) -> Result<Option<Bytes>, StorageError> {
        Ok(self.lock().version_vector.clone())
    }
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

    fn scan_members_back(
        &self,
        kind: MemberKind,
        key: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, StorageError> {
        let prefix = member_prefix(kind, key);
        let end = match before {
            None => past(&prefix).map_or(Bound::Unbounded, Bound::Excluded),
            Some(b) => Bound::Excluded(member_key(kind, key, b)),
        };
        let inner = self.lock();
        Ok(inner
            .members
            .range((Bound::Included(prefix.clone()), end))
            .rev()
            .take_while(|(k, _)| k.starts_with(&prefix))
            .take(limit)
            .map(|(k, v)| (Bytes::copy_from_slice(&k[prefix.len()..]), v.clone()))
            .collect())
    }

    fn last_keys(&self, limit: usize) -> Result<Vec<Bytes>, StorageError> {
        Ok(self.lock().data.keys().rev().take(limit).cloned().collect())
    }
}

impl Store for MemStore {
    fn view(&self) -> Box<dyn crate::StateRead> {
        Box::new(self.snapshot())
    }

    fn commit(&self, batch: &Batch, _durability: Durability) -> Result<(), StorageError> {
        let mut guard = self.lock();
        let this = &mut *guard;
        for (key, stored) in &batch.puts {
            this.data.insert(key.clone(), stored.clone());
        }
        for (at, key) in &batch.expiry_puts {
            this.expiry.insert(expiry_key(*at, key));
        }
        for (item, fingerprint) in &batch.graves {
            this.graves.insert(grave_key(batch.hlc, item), *fingerprint);
        }
        for (hlc, item) in &batch.grave_removes {
            this.graves.remove(&grave_key(*hlc, item));
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

    fn due(
        &self,
        from_ms: u64,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Bytes)>, StorageError> {
        Ok(self
            .lock()
            .expiry
            .range(from_ms.to_be_bytes().to_vec()..)
            .filter_map(|k| split_expiry_key(k))
            .take_while(|(at, _)| *at <= now_ms)
            .take(limit)
            .collect())
    }

    fn graves(
        &self,
        from: Timestamp,
        upto: Timestamp,
        limit: usize,
    ) -> Result<Vec<Grave>, StorageError> {
        Ok(self
            .lock()
            .graves
            .range(from.0.to_be_bytes().to_vec()..)
            .filter_map(|(k, v)| split_grave(k, &v.to_be_bytes()))
            .take_while(|g| g.hlc <= upto)
            .take(limit)
            .collect())
    }

    fn count_graves(&self) -> Result<u64, StorageError> {
        Ok(self.lock().graves.len() as u64)
    }

    fn format(&self) -> Result<Option<u32>, StorageError> {
        Ok(self.lock().format)
    }

    fn set_format(&self, format: u32) -> Result<(), StorageError> {
        self.lock().format = Some(format);
        Ok(())
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

/// The first key after every key that starts with `prefix` (`None`: there is none).
fn past(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < u8::MAX {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}
