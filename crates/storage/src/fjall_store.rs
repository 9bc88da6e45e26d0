//! The durable [`Store`] on fjall.

use crate::{
    Batch, Durability, Grave, MemberKind, StateRead, StorageError, Store, Stored, decode,
    expiry_key, grave_key, log_key, member_key, member_prefix, split_expiry_key, split_grave,
    split_log_key,
};
use bytes::Bytes;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};
use hlc::Timestamp;
use std::ops::Bound;
use std::path::Path;

const META_HLC: &[u8] = b"hlc";
const META_VV: &[u8] = b"vv";
const META_ORIGIN: &[u8] = b"origin";
const META_FORMAT: &[u8] = b"format";

/// Memtable size of the data and member keyspaces (fjall's default is 64 MiB). Smaller
/// memtables keep point lookups in the skip list short and the resident memory low. Measured
/// against 32 MiB (bench/RESULTS.md notes): 32 MiB took 10-15% less CPU to receive a 1M-write
/// catch-up and flushed 4x less often, but held 1M keys in 243 MiB instead of 133 (more than
/// redis-server) and ran pipelined SET and SADD ~10% slower.
const MEMTABLE_BYTES: u64 = 8 << 20;

/// Most bytes of journal kept (fjall's default is 512 MiB): beyond it the keyspaces holding
/// the oldest journal are flushed so it can go. Small keyspaces written on every commit (the
/// metadata) never fill a memtable of their own, so this is what bounds the journals, and so
/// the disk a node uses beyond its data under churn.
const JOURNALS_BYTES_MAX: u64 = 128 << 20;

/// Headers, members, the expiry index and metadata, one fjall keyspace each.
pub struct FjallStore {
    db: Database,
    data: Keyspace,
    members: Keyspace,
    expiry: Keyspace,
    graves: Keyspace,
    meta: Keyspace,
    log: Keyspace,
}

impl FjallStore {
    /// Bytes on disk of each keyspace's tables (journals and memtables apart), by name.
    pub fn keyspace_bytes(&self) -> [(&'static str, u64); 6] {
        [
            ("data", self.data.disk_space()),
            ("members", self.members.disk_space()),
            ("expiry", self.expiry.disk_space()),
            ("graves", self.graves.disk_space()),
            ("meta", self.meta.disk_space()),
            ("log", self.log.disk_space()),
        ]
    }

    /// Opens (or creates) the store in `dir`, recovering from the journal after a crash.
    /// `cache_bytes` bounds the block cache.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<FjallStore, StorageError> {
        // Every write batch carries its own durability; fjall must not fsync on its own
        // schedule behind our back, nor skip what we ask for.
        let db = Database::builder(dir)
            .cache_size(cache_bytes)
            .manual_journal_persist(true)
            .max_journaling_size(JOURNALS_BYTES_MAX)
            .open()?;
        let options = || KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES);
        let data = db.keyspace("data", options)?;
        let members = db.keyspace("members", options)?;
        let expiry = db.keyspace("expiry", KeyspaceCreateOptions::default)?;
        let graves = db.keyspace("graves", KeyspaceCreateOptions::default)?;
        let meta = db.keyspace("meta", KeyspaceCreateOptions::default)?;
        // Log entries are large (a whole round's deltas) and short-lived (dropped once every
        // member has them): kept apart from the index, compaction does not rewrite them.
        let log = db.keyspace("log", || {
            KeyspaceCreateOptions::default()
                .with_kv_separation(Some(fjall::KvSeparationOptions::default()))
        })?;
        Ok(FjallStore {
            db,
            data,
            members,
            expiry,
            graves,
            meta,
            log,
        })
    }
}

/// A [`FjallStore`]'s state at one moment (a fjall snapshot across its keyspaces).
struct FjallView {
    snapshot: fjall::Snapshot,
    data: Keyspace,
    members: Keyspace,
    meta: Keyspace,
}

/// Up to `limit` headers from `iter`.
fn collect_headers(iter: fjall::Iter, limit: usize) -> Result<Vec<(Bytes, Stored)>, StorageError> {
    let mut out = Vec::new();
    for guard in iter.take(limit) {
        let (k, v) = guard.into_inner()?;
        out.push((Bytes::copy_from_slice(&k), decode(&k, &v)?));
    }
    Ok(out)
}

/// Up to `limit` members from `iter`, as long as their keys start with `prefix`.
fn collect_members(
    iter: impl Iterator<Item = fjall::Guard>,
    prefix: &[u8],
    limit: usize,
) -> Result<Vec<(Bytes, Bytes)>, StorageError> {
    let mut out = Vec::new();
    for guard in iter {
        if out.len() >= limit {
            break;
        }
        let (k, v) = guard.into_inner()?;
        let Some(member) = k.strip_prefix(prefix) else {
            break;
        };
        out.push((Bytes::copy_from_slice(member), Bytes::copy_from_slice(&v)));
    }
    Ok(out)
}

/// The range after `after` (everything when `None`).
fn after_bound(after: Option<&[u8]>) -> (Bound<&[u8]>, Bound<&[u8]>) {
    (
        after.map_or(Bound::Unbounded, Bound::Excluded),
        Bound::Unbounded,
    )
}

impl StateRead for FjallStore {
    fn scan(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Stored)>, StorageError> {
        collect_headers(self.data.range::<&[u8], _>(after_bound(after)), limit)
    }

    fn scan_members(
        &self,
        kind: MemberKind,
        key: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, StorageError> {
        let prefix = member_prefix(kind, key);
        let iter = match after {
            None => self.members.prefix(&prefix),
            Some(a) => self
                .members
                .range::<Vec<u8>, _>((Bound::Excluded(member_key(kind, key, a)), Bound::Unbounded)),
        };
        collect_members(iter, &prefix, limit)
    }

    fn version_vector(&self) -> Result<Option<Bytes>, StorageError> {
        Ok(self.meta.get(META_VV)?.map(|v| Bytes::copy_from_slice(&v)))
    }
    fn get(&self, key: &[u8]) -> Result<Option<Stored>, StorageError> {
        match self.data.get(key)? {
            None => Ok(None),
            Some(bytes) => decode(key, &bytes).map(Some),
        }
    }

    fn get_member(
        &self,
        kind: MemberKind,
        key: &[u8],
        member: &[u8],
    ) -> Result<Option<Bytes>, StorageError> {
        Ok(self
            .members
            .get(member_key(kind, key, member))?
            .map(|v| Bytes::copy_from_slice(&v)))
    }

    fn scan_members_back(
        &self,
        kind: MemberKind,
        key: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, StorageError> {
        let prefix = member_prefix(kind, key);
        let iter = match before {
            None => self.members.prefix(&prefix),
            Some(b) => self.members.range::<Vec<u8>, _>((
                Bound::Included(prefix.clone()),
                Bound::Excluded(member_key(kind, key, b)),
            )),
        };
        collect_members(iter.rev(), &prefix, limit)
    }

    fn last_keys(&self, limit: usize) -> Result<Vec<Bytes>, StorageError> {
        let mut out = Vec::new();
        for guard in self.data.iter().rev().take(limit) {
            out.push(Bytes::copy_from_slice(&guard.key()?));
        }
        Ok(out)
    }
}

impl StateRead for FjallView {
    fn scan(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Stored)>, StorageError> {
        let iter = self
            .snapshot
            .range::<&[u8], _>(&self.data, after_bound(after));
        collect_headers(iter, limit)
    }

    fn scan_members(
        &self,
        kind: MemberKind,
        key: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, StorageError> {
        let prefix = member_prefix(kind, key);
        let iter = match after {
            None => self.snapshot.prefix(&self.members, &prefix),
            Some(a) => self.snapshot.range::<Vec<u8>, _>(
                &self.members,
                (Bound::Excluded(member_key(kind, key, a)), Bound::Unbounded),
            ),
        };
        collect_members(iter, &prefix, limit)
    }

    fn version_vector(&self) -> Result<Option<Bytes>, StorageError> {
        let vv = self.snapshot.get(&self.meta, META_VV)?;
        Ok(vv.map(|v| Bytes::copy_from_slice(&v)))
    }

    fn get(&self, key: &[u8]) -> Result<Option<Stored>, StorageError> {
        match self.snapshot.get(&self.data, key)? {
            None => Ok(None),
            Some(bytes) => decode(key, &bytes).map(Some),
        }
    }

    fn get_member(
        &self,
        kind: MemberKind,
        key: &[u8],
        member: &[u8],
    ) -> Result<Option<Bytes>, StorageError> {
        let value = (self.snapshot).get(&self.members, member_key(kind, key, member))?;
        Ok(value.map(|v| Bytes::copy_from_slice(&v)))
    }

    fn scan_members_back(
        &self,
        kind: MemberKind,
        key: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, StorageError> {
        let prefix = member_prefix(kind, key);
        let iter = match before {
            None => self.snapshot.prefix(&self.members, &prefix),
            Some(b) => self.snapshot.range::<Vec<u8>, _>(
                &self.members,
                (
                    Bound::Included(prefix.clone()),
                    Bound::Excluded(member_key(kind, key, b)),
                ),
            ),
        };
        collect_members(iter.rev(), &prefix, limit)
    }

    fn last_keys(&self, limit: usize) -> Result<Vec<Bytes>, StorageError> {
        let mut out = Vec::new();
        for guard in self.snapshot.iter(&self.data).rev().take(limit) {
            out.push(Bytes::copy_from_slice(&guard.key()?));
        }
        Ok(out)
    }
}

impl Store for FjallStore {
    fn view(&self) -> Box<dyn StateRead> {
        Box::new(FjallView {
            snapshot: self.db.snapshot(),
            data: self.data.clone(),
            members: self.members.clone(),
            meta: self.meta.clone(),
        })
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
        for (key, stored) in &batch.puts {
            writes.insert(&self.data, key.as_ref(), stored.encode());
        }
        for (at, key) in &batch.expiry_puts {
            writes.insert(&self.expiry, expiry_key(*at, key), []);
        }
        for (item, fingerprint) in &batch.graves {
            writes.insert(
                &self.graves,
                grave_key(batch.hlc, item),
                fingerprint.to_be_bytes(),
            );
        }
        for (hlc, item) in &batch.grave_removes {
            writes.remove(&self.graves, grave_key(*hlc, item));
        }
        for key in &batch.removes {
            writes.remove(&self.data, key.as_ref());
        }
        for (kind, key, member, value) in &batch.member_puts {
            writes.insert(
                &self.members,
                member_key(*kind, key, member),
                value.as_slice(),
            );
        }
        for (kind, key, member) in &batch.member_removes {
            writes.remove(&self.members, member_key(*kind, key, member));
        }
        for (at, key) in &batch.expiry_removes {
            writes.remove(&self.expiry, expiry_key(*at, key));
        }
        for (origin, seq, entry) in &batch.log_puts {
            writes.insert(&self.log, log_key(*origin, *seq), entry.as_slice());
        }
        for (origin, seq) in &batch.log_removes {
            writes.remove(&self.log, log_key(*origin, *seq));
        }
        if let Some(vv) = &batch.version_vector {
            writes.insert(&self.meta, META_VV, vv.as_slice());
        }
        writes.insert(&self.meta, META_HLC, batch.hlc.0.to_be_bytes());
        writes.commit()?;
        Ok(())
    }

    fn sync(&self) -> Result<(), StorageError> {
        self.db.persist(PersistMode::SyncData)?;
        Ok(())
    }

    fn due(
        &self,
        from_ms: u64,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Bytes)>, StorageError> {
        let start = from_ms.to_be_bytes();
        let end = (now_ms.saturating_add(1)).to_be_bytes();
        let mut out = Vec::new();
        if from_ms > now_ms {
            return Ok(out);
        }
        for guard in self.expiry.range(&start[..]..&end[..]).take(limit) {
            let k = guard.key()?;
            if let Some(entry) = split_expiry_key(&k) {
                out.push(entry);
            }
        }
        Ok(out)
    }

    fn graves(
        &self,
        from: Timestamp,
        upto: Timestamp,
        limit: usize,
    ) -> Result<Vec<Grave>, StorageError> {
        let mut out = Vec::new();
        if from > upto {
            return Ok(out);
        }
        let start = from.0.to_be_bytes();
        let end = upto.0.saturating_add(1).to_be_bytes();
        for guard in self.graves.range(&start[..]..&end[..]).take(limit) {
            let (k, v) = guard.into_inner()?;
            match split_grave(&k, &v) {
                Some(grave) => out.push(grave),
                None => {
                    return Err(StorageError::Corrupt {
                        key: "(grave index)".into(),
                        reason: format!("undecodable entry of {} bytes", k.len()),
                    });
                }
            }
        }
        Ok(out)
    }

    fn count_graves(&self) -> Result<u64, StorageError> {
        let mut n = 0;
        for guard in self.graves.iter() {
            guard.key()?;
            n += 1;
        }
        Ok(n)
    }

    fn format(&self) -> Result<Option<u32>, StorageError> {
        Ok(match self.meta.get(META_FORMAT)? {
            None => None,
            Some(v) => Some(u32::from_be_bytes(v[..].try_into().map_err(|_| {
                StorageError::Corrupt {
                    key: "(format)".into(),
                    reason: format!("{} bytes, not 4", v.len()),
                }
            })?)),
        })
    }

    fn set_format(&self, format: u32) -> Result<(), StorageError> {
        self.meta.insert(META_FORMAT, format.to_be_bytes())?;
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    fn log_range(
        &self,
        origin: u64,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Bytes)>, StorageError> {
        let mut out = Vec::new();
        for guard in self
            .log
            .range(log_key(origin, from)..=log_key(origin, u64::MAX))
            .take(limit)
        {
            let (k, v) = guard.into_inner()?;
            if let Some((_, seq)) = split_log_key(&k) {
                out.push((seq, Bytes::copy_from_slice(&v)));
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

    fn origin(&self) -> Result<Option<u64>, StorageError> {
        Ok(match self.meta.get(META_ORIGIN)? {
            None => None,
            Some(v) => Some(u64::from_be_bytes(v[..].try_into().map_err(|_| {
                StorageError::Corrupt {
                    key: "(origin)".into(),
                    reason: format!("{} bytes, not 8", v.len()),
                }
            })?)),
        })
    }

    fn set_origin(&self, origin: u64) -> Result<(), StorageError> {
        self.meta.insert(META_ORIGIN, origin.to_be_bytes())?;
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    fn disk_bytes(&self) -> u64 {
        self.db.disk_space().unwrap_or(0)
    }

    fn compact(&self) -> Result<(), StorageError> {
        for keyspace in [&self.data, &self.members, &self.expiry, &self.graves] {
            // Tombstones still in the memtable are written out first, so the rewrite sees them.
            keyspace.rotate_memtable_and_wait()?;
            keyspace.major_compact()?;
        }
        Ok(())
    }
}

impl Drop for FjallStore {
    fn drop(&mut self) {
        if let Err(e) = self.db.persist(PersistMode::SyncAll) {
            tracing::error!(error = %e, "final flush of the store failed");
        }
    }
}
