//! The durable [`Store`] on fjall.

use crate::{Batch, Durability, StorageError, Store, decode, expiry_key, split_expiry_key};
use bytes::Bytes;
use crdt::Record;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use hlc::Timestamp;
use std::path::Path;

const META_HLC: &[u8] = b"hlc";

/// Records in fjall, one keyspace each for data, the expiry index and metadata.
pub struct FjallStore {
    db: Database,
    data: Keyspace,
    expiry: Keyspace,
    meta: Keyspace,
}

impl FjallStore {
    /// Opens (or creates) the store in `dir`, recovering from the journal after a crash.
    /// `cache_bytes` bounds the block cache.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<FjallStore, StorageError> {
        // Every write batch carries its own durability; fjall must not fsync on its own
        // schedule behind our back, nor skip what we ask for.
        let db = Database::builder(dir)
            .cache_size(cache_bytes)
            .manual_journal_persist(true)
            .open()?;
        let data = db.keyspace("data", || {
            KeyspaceCreateOptions::default().max_memtable_size(8 << 20)
        })?;
        let expiry = db.keyspace("expiry", KeyspaceCreateOptions::default)?;
        let meta = db.keyspace("meta", KeyspaceCreateOptions::default)?;
        Ok(FjallStore {
            db,
            data,
            expiry,
            meta,
        })
    }
}

impl Store for FjallStore {
    fn get(&self, key: &[u8]) -> Result<Option<Record>, StorageError> {
        match self.data.get(key)? {
            None => Ok(None),
            Some(bytes) => decode(key, &bytes).map(Some),
        }
    }

    fn commit(&self, batch: &Batch, durability: Durability) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mode = match durability {
            Durability::Sync => PersistMode::SyncData,
            Durability::Buffer => PersistMode::Buffer,
        };
        let mut writes = self.db.batch().durability(Some(mode));
        for (key, record) in &batch.puts {
            if let Some(at) = record.expires_at_ms() {
                writes.insert(&self.expiry, expiry_key(at, key), []);
            }
            writes.insert(&self.data, key.as_ref(), record.encode());
        }
        for key in &batch.removes {
            writes.remove(&self.data, key.as_ref());
        }
        for (at, key) in &batch.expiry_removes {
            writes.remove(&self.expiry, expiry_key(*at, key));
        }
        writes.insert(&self.meta, META_HLC, batch.hlc.0.to_be_bytes());
        writes.commit()?;
        Ok(())
    }

    fn sync(&self) -> Result<(), StorageError> {
        self.db.persist(PersistMode::SyncData)?;
        Ok(())
    }

    fn scan(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Record)>, StorageError> {
        let iter = match after {
            None => self.data.iter(),
            Some(a) => self
                .data
                .range::<&[u8], _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
        };
        let mut out = Vec::new();
        for guard in iter.take(limit) {
            let (k, v) = guard.into_inner()?;
            out.push((Bytes::copy_from_slice(&k), decode(&k, &v)?));
        }
        Ok(out)
    }

    fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<(u64, Bytes)>, StorageError> {
        let end = (now_ms.saturating_add(1)).to_be_bytes();
        let mut out = Vec::new();
        for guard in self.expiry.range(..&end[..]).take(limit) {
            let k = guard.key()?;
            if let Some(entry) = split_expiry_key(&k) {
                out.push(entry);
            }
        }
        Ok(out)
    }

    fn last_hlc(&self) -> Result<Timestamp, StorageError> {
        Ok(match self.meta.get(META_HLC)? {
            Some(v) if v.len() == 8 => Timestamp(u64::from_be_bytes(
                v[..].try_into().expect("length checked"),
            )),
            _ => Timestamp::ZERO,
        })
    }

    fn disk_bytes(&self) -> u64 {
        self.db.disk_space().unwrap_or(0)
    }
}

impl Drop for FjallStore {
    fn drop(&mut self) {
        if let Err(e) = self.db.persist(PersistMode::SyncAll) {
            tracing::error!(error = %e, "final flush of the store failed");
        }
    }
}
