//! The durable keyspace.
//!
//! Meridian keeps every key's [`Record`] (its merge state) in an embedded LSM engine. The
//! node's engine thread is the only writer: it reads records, computes deltas, and commits
//! each round of commands as one atomic [`Batch`] with the round's durability, so that many
//! clients share one fsync (group commit).
//!
//! [`Store`] is the narrow trait the node uses. [`FjallStore`] is the durable backend;
//! [`MemStore`] keeps everything in memory for simulations and unit tests, where fjall's
//! background threads would make runs irreproducible. One test suite (`tests/store.rs`) runs
//! against both.
//!
//! Layout: keyspace `data` maps a user key to its [`Stored`] header (its record and how many
//! hash fields, set members and list elements are live); `members` holds each hash field, set
//! member and list element (named by its position, so a list's elements are in list order)
//! under `kind (1 byte) ++ key length (4 bytes, big-endian) ++ key ++ member`, so a key's
//! members are one prefix and a write to one of them touches only it; `expiry` holds an index
//! entry `sweep_ms (8 bytes, big-endian) ++ key` for every key with a deadline (the time the
//! node means to reclaim it, chosen by the node), so the expiry sweep reads only what is due;
//! `graves` holds one entry `hlc (8 bytes) ++ item` for each tombstone (a header, field or
//! member with nothing live) written at that HLC, valued with a fingerprint of the tombstone,
//! so that tombstones are collected oldest first once every member has seen them; `log` holds the change log, each entry under
//! `origin (8 bytes) ++ seq (8 bytes)`, big-endian, written in the same batch as the data it
//! changed; `meta` holds the node's version vector and the highest HLC timestamp committed, so a
//! restarted node's clock resumes above everything it wrote.
#![deny(missing_docs)]

mod fjall_store;
mod mem_store;

pub use fjall_store::FjallStore;
pub use mem_store::MemStore;

use bytes::Bytes;
use crdt::{Lens, Record};
use hlc::Timestamp;
use serde::{Deserialize, Serialize};

/// What `data` holds for a key: its header record and how many of its hash fields and set
/// members are live (derived by the node as it changes them, so that `HLEN`, `SCARD` and the
/// key's type need no scan).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The key's header.
    pub record: Record,
    /// Live fields and members.
    pub lens: Lens,
    /// The time series part's header; its windows of samples are stored apart. Kept here
    /// rather than in the record so that headers stored before series existed read as they
    /// are (see [`Stored::decode`]).
    pub series: Option<Box<timeseries::header::Header>>,
}

/// [`Stored`] as stores of format 4 wrote it (no series).
#[derive(Deserialize)]
struct StoredV4 {
    record: Record,
    lens: [u64; 4],
}

impl Stored {
    /// The type clients see (ignoring expiry). When concurrent writes left more than one type
    /// live, the one with the latest write wins.
    pub fn kind(&self) -> Option<crdt::Kind> {
        // A series is live once created and not deleted since, or while samples are left
        // (samples written concurrently with a delete that did not see them stay).
        let series = self.series.as_ref().and_then(|h| {
            h.live_top()
                .or_else(|| h.top.filter(|_| self.lens.series > 0))
        });
        match (self.record.kind_top(self.lens), series) {
            (Some((top, kind)), Some(s)) if top > s => Some(kind),
            (_, Some(_)) => Some(crdt::Kind::TimeSeries),
            (other, None) => other.map(|(_, k)| k),
        }
    }

    /// The type clients see at `now_ms`: `None` when absent or expired.
    pub fn live_kind(&self, now_ms: u64) -> Option<crdt::Kind> {
        if self.record.expired(now_ms) {
            None
        } else {
            self.kind()
        }
    }

    /// The latest write to the key's header or any of its parts.
    pub fn last_write(&self) -> Option<crdt::Stamp> {
        let series = self.series.as_ref().and_then(|h| h.top);
        self.record.last_write().max(series)
    }

    /// Records a write at `stamp` to a part of `kind` in the header.
    pub fn touch(&mut self, stamp: crdt::Stamp, kind: crdt::Kind) {
        match kind {
            crdt::Kind::TimeSeries => {
                let header = self.series.get_or_insert_default();
                header.top = header.top.max(Some(stamp));
            }
            kind => crdt::Merge::merge(&mut self.record, &Record::touch_delta(stamp, kind)),
        }
    }

    /// Decodes what [`Stored::encode`] wrote, or a header stored before series existed.
    pub fn decode(bytes: &[u8]) -> Result<Stored, postcard::Error> {
        crdt::decode(bytes).or_else(|e| match crdt::decode::<StoredV4>(bytes) {
            Ok(old) => {
                let [hash, set, list, zset] = old.lens;
                let lens = Lens {
                    hash,
                    set,
                    list,
                    zset,
                    series: 0,
                };
                Ok(Stored {
                    record: old.record,
                    lens,
                    series: None,
                })
            }
            Err(_) => Err(e),
        })
    }

    /// Encodes for storage.
    pub fn encode(&self) -> Vec<u8> {
        crdt::encode(self)
    }
}

/// Which kind of member: a hash field or a set member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberKind {
    /// A hash field (its state is a `crdt::StrState`).
    Field,
    /// A set member (its state is a `crdt::Member`).
    SetMember,
    /// A list element, named by its `crdt::Position` (its state is a `crdt::Elem`).
    ListElem,
    /// A sorted set member (its state is a `crdt::ZMember`).
    ZMember,
    /// A sorted set member's place in the set's order, named by `crdt::order_entry` (score,
    /// then member). Derived by the node from the members' states as it changes them; never
    /// replicated, never a tombstone.
    ZOrder,
    /// A window of a time series' samples (a `timeseries::series::Window`), named by the
    /// window's first instant (8 bytes, big-endian), so a range read scans only its windows.
    Window,
}

impl MemberKind {
    fn tag(self) -> u8 {
        match self {
            MemberKind::Field => b'h',
            MemberKind::SetMember => b's',
            MemberKind::ListElem => b'l',
            MemberKind::ZMember => b'z',
            MemberKind::ZOrder => b'o',
            MemberKind::Window => b'w',
        }
    }
}

/// One stored piece of state: a key's header, or one hash field or set member.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Item {
    /// The header stored in `data` under this key.
    Header(Bytes),
    /// One member: its kind, key and name.
    Member(MemberKind, Bytes, Bytes),
}

impl Item {
    fn encode(&self) -> Vec<u8> {
        match self {
            Item::Header(key) => {
                let mut k = Vec::with_capacity(1 + key.len());
                k.push(b'k');
                k.extend_from_slice(key);
                k
            }
            Item::Member(kind, key, member) => member_key(*kind, key, member),
        }
    }

    fn decode(bytes: &[u8]) -> Option<Item> {
        let (&tag, rest) = bytes.split_first()?;
        let kind = match tag {
            b'k' => return Some(Item::Header(Bytes::copy_from_slice(rest))),
            b'h' => MemberKind::Field,
            b's' => MemberKind::SetMember,
            b'l' => MemberKind::ListElem,
            b'z' => MemberKind::ZMember,
            b'o' => MemberKind::ZOrder,
            b'w' => MemberKind::Window,
            _ => return None,
        };
        let (len, rest) = rest.split_at_checked(4)?;
        let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
        let (key, member) = rest.split_at_checked(len)?;
        Some(Item::Member(
            kind,
            Bytes::copy_from_slice(key),
            Bytes::copy_from_slice(member),
        ))
    }
}

/// A tombstone waiting to be collected: the item, the HLC of the commit that left it with
/// nothing live, and a fingerprint of the state it was left in. A tombstone changed again
/// gets a new grave; the collector removes the item only when its state still has the
/// fingerprint of the grave being collected, so an older grave never collects a newer
/// tombstone early.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grave {
    /// When the item was left with nothing live.
    pub hlc: Timestamp,
    /// What was left.
    pub item: Item,
    /// A hash of the state as it was left (chosen by the node).
    pub fingerprint: u64,
}

fn grave_key(hlc: Timestamp, item: &Item) -> Vec<u8> {
    let mut k = hlc.0.to_be_bytes().to_vec();
    k.extend_from_slice(&item.encode());
    k
}

fn split_grave(k: &[u8], v: &[u8]) -> Option<Grave> {
    let (hlc, item) = k.split_at_checked(8)?;
    Some(Grave {
        hlc: Timestamp(u64::from_be_bytes(hlc.try_into().ok()?)),
        item: Item::decode(item)?,
        fingerprint: u64::from_be_bytes(v.try_into().ok()?),
    })
}

/// The version of the stored format this build writes and reads. Format 5 added time series
/// (`Stored::series`, `MemberKind::Window`, their log changes). Format 4 added keyspace
/// events to log entries (`Change::Event`; format 3 directories are read as they are). Format 3 added lists and
/// sorted sets to headers; format 2 added counter generations (`crdt::Contribution::since`)
/// and the grave index; format 1 (no marker). Older formats cannot be decoded by this build.
pub const FORMAT: u32 = 5;

/// The storage key prefix of all members of `kind` under `key`.
fn member_prefix(kind: MemberKind, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(5 + key.len());
    k.push(kind.tag());
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// The storage key of one member.
fn member_key(kind: MemberKind, key: &[u8], member: &[u8]) -> Vec<u8> {
    let mut k = member_prefix(kind, key);
    k.extend_from_slice(member);
    k
}

/// How hard a commit pushes its data to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Return only once the data is on disk (fsync).
    Sync,
    /// Hand the data to the operating system; a later [`Store::sync`] makes it durable. It
    /// survives a crash of the process but not of the machine.
    Buffer,
}

/// A storage failure. Every variant means the operation did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The engine failed (I/O error, full disk, failed fsync). After a failed fsync the engine
    /// refuses further writes until restarted, because what reached the disk is unknown; reads
    /// keep working.
    #[error("storage engine: {0}")]
    Engine(#[from] fjall::Error),
    /// A stored record does not decode: the data on disk is corrupt or from a newer version.
    #[error("corrupt record for key {key:?}: {reason}")]
    Corrupt {
        /// The key whose record failed to decode (lossy UTF-8 for the message).
        key: String,
        /// The decoder's complaint.
        reason: String,
    },
}

/// A change log entry to store: origin node id, sequence number, encoded entry.
pub type LogPut = (u64, u64, Vec<u8>);

/// One atomic unit of writes.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// Keys to store with their new headers.
    pub puts: Vec<(Bytes, Stored)>,
    /// Keys to remove entirely (records with nothing left worth keeping).
    pub removes: Vec<Bytes>,
    /// Members to store: kind, key, member, encoded state.
    pub member_puts: Vec<(MemberKind, Bytes, Bytes, Vec<u8>)>,
    /// Members to remove entirely.
    pub member_removes: Vec<(MemberKind, Bytes, Bytes)>,
    /// Expiry index entries to add: `(sweep_ms, key)`.
    pub expiry_puts: Vec<(u64, Bytes)>,
    /// Expiry index entries that are stale and can go: `(sweep_ms, key)`.
    pub expiry_removes: Vec<(u64, Bytes)>,
    /// Tombstones this batch leaves, with their fingerprints: their graves are stored under
    /// the batch's `hlc`.
    pub graves: Vec<(Item, u64)>,
    /// Graves collected (or outlived by a newer grave or a live state): `(hlc, item)`.
    pub grave_removes: Vec<(Timestamp, Item)>,
    /// The highest HLC timestamp used by the writes, kept so the clock resumes above it.
    pub hlc: Timestamp,
    /// Change log entries to store.
    pub log_puts: Vec<LogPut>,
    /// Change log entries to drop (truncation): origin node id, sequence number.
    pub log_removes: Vec<(u64, u64)>,
    /// The node's encoded version vector after this batch, when it changes.
    pub version_vector: Option<Vec<u8>>,
}

impl Batch {
    /// Whether the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty()
            && self.removes.is_empty()
            && self.member_puts.is_empty()
            && self.member_removes.is_empty()
            && self.expiry_puts.is_empty()
            && self.expiry_removes.is_empty()
            && self.graves.is_empty()
            && self.grave_removes.is_empty()
            && self.log_puts.is_empty()
            && self.log_removes.is_empty()
            && self.version_vector.is_none()
    }
}

/// Reads of the state. A [`Store`] reads its current state; a view ([`Store::view`]) the
/// state one moment left it: what a repair sends a peer, read over seconds or minutes while
/// the node goes on, must be one state (the version vector stored with it says exactly what
/// it holds).
pub trait StateRead: Send + Sync {
    /// Up to `limit` records with keys strictly after `after` (from the first key when
    /// `None`), in key order.
    fn scan(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Stored)>, StorageError>;

    /// Up to `limit` members of `key` after `after` (from the first when `None`), in byte order.
    fn scan_members(
        &self,
        kind: MemberKind,
        key: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, StorageError>;

    /// The encoded version vector committed with this state.
    fn version_vector(&self) -> Result<Option<Bytes>, StorageError>;

    /// The header stored under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Stored>, StorageError>;

    /// The encoded state of one member of `key`.
    fn get_member(
        &self,
        kind: MemberKind,
        key: &[u8],
        member: &[u8],
    ) -> Result<Option<Bytes>, StorageError>;

    /// Up to `limit` members of `key` before `before` (from the last when `None`), in
    /// descending byte order: a list read from its tail.
    fn scan_members_back(
        &self,
        kind: MemberKind,
        key: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, StorageError>;

    /// The names of up to `limit` keys from the last one back (tombstones included): what a
    /// random pick samples of the key space's far end.
    fn last_keys(&self, limit: usize) -> Result<Vec<Bytes>, StorageError>;
}

/// The node's view of durable storage. One thread writes (the engine); any thread may read,
/// and a read sees each committed batch whole or not at all (a reader that reads more than
/// once, and must see one state, reads a [`Store::view`]).
pub trait Store: StateRead {
    /// The state as it is now, unchanged by later commits for as long as it is held (hold it
    /// briefly: the storage engine keeps what later commits replace until it is dropped).
    fn view(&self) -> Box<dyn StateRead>;

    /// Applies `batch` atomically: after a crash either all of it is there or none.
    fn commit(&self, batch: &Batch, durability: Durability) -> Result<(), StorageError>;

    /// Makes everything committed so far durable (fsync).
    fn sync(&self) -> Result<(), StorageError>;

    /// Up to `limit` expiry index entries with sweep times from `from_ms` to `now_ms`,
    /// earliest first. The node keeps `from_ms` at what it has swept already, so a sweep
    /// never walks again over the entries it removed (an LSM keeps them as tombstones until
    /// compaction drops them).
    fn due(
        &self,
        from_ms: u64,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Bytes)>, StorageError>;

    /// Up to `limit` graves with HLCs from `from` to `upto`, oldest first.
    fn graves(
        &self,
        from: Timestamp,
        upto: Timestamp,
        limit: usize,
    ) -> Result<Vec<Grave>, StorageError>;

    /// How many graves the store holds (counted by a walk: for start-up).
    fn count_graves(&self) -> Result<u64, StorageError>;

    /// The stored format's version, once recorded.
    fn format(&self) -> Result<Option<u32>, StorageError>;

    /// Records the stored format's version, durably.
    fn set_format(&self, format: u32) -> Result<(), StorageError>;

    /// Up to `limit` change log entries of `origin` from sequence `from` on, in order, with
    /// their sequence numbers.
    fn log_range(
        &self,
        origin: u64,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Bytes)>, StorageError>;

    /// The lowest sequence number of `origin` the log still holds.
    fn log_first(&self, origin: u64) -> Result<Option<u64>, StorageError> {
        Ok(self.log_range(origin, 0, 1)?.first().map(|(seq, _)| *seq))
    }

    /// The highest HLC timestamp ever committed.
    fn last_hlc(&self) -> Result<Timestamp, StorageError>;

    /// The id this store's node writes under (its origin in the change log), once recorded.
    fn origin(&self) -> Result<Option<u64>, StorageError>;

    /// Records the id this store's node writes under, durably (before any write names it).
    fn set_origin(&self, origin: u64) -> Result<(), StorageError>;

    /// Bytes on disk (zero for memory).
    fn disk_bytes(&self) -> u64;

    /// Rewrites the keyspaces that deletes shrink (headers, members, the expiry and grave
    /// indexes) so that what was removed stops costing reads: an LSM keeps a removed key as a
    /// tombstone of its own until compaction reaches its last level, and iterations (`SCAN`,
    /// the sweeps) walk over every one. Blocks for as long as the rewrite takes; the node calls
    /// it off the engine thread once removals outnumber live keys. A no-op in memory.
    fn compact(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

/// The log key of an entry: big-endian origin then sequence, so one origin's entries are
/// one range in sequence order.
fn log_key(origin: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&origin.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Splits a log key back into origin and sequence.
fn split_log_key(k: &[u8]) -> Option<(u64, u64)> {
    let origin = u64::from_be_bytes(k.get(..8)?.try_into().ok()?);
    let seq = u64::from_be_bytes(k.get(8..16)?.try_into().ok()?);
    Some((origin, seq))
}

/// The index key of a deadline: big-endian so that byte order is time order.
fn expiry_key(at_ms: u64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + key.len());
    k.extend_from_slice(&at_ms.to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// Splits an index key back into deadline and key.
fn split_expiry_key(k: &[u8]) -> Option<(u64, Bytes)> {
    let (at, key) = k.split_at_checked(8)?;
    Some((
        u64::from_be_bytes(at.try_into().ok()?),
        Bytes::copy_from_slice(key),
    ))
}

fn decode(key: &[u8], bytes: &[u8]) -> Result<Stored, StorageError> {
    Stored::decode(bytes).map_err(|e| StorageError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crdt::{Merge, NodeId, Stamp, StrState};

    #[derive(Serialize)]
    struct OldStored {
        record: Record,
        lens: [u64; 4],
    }

    #[test]
    fn headers_stored_before_series_existed_read_as_they_are() {
        let stamp = Stamp::new(Timestamp(5 << 16), NodeId(3));
        let mut record = Record {
            string: Some(StrState::default().set_delta(stamp, Bytes::from("v"))),
            ..Record::default()
        };
        record.merge(&Record::expiry_delta(stamp, Some(99)));
        let lens = Lens {
            hash: 2,
            ..Lens::default()
        };
        let old = crdt::encode(&OldStored {
            record: record.clone(),
            lens: [2, 0, 0, 0],
        });
        let read = Stored::decode(&old).unwrap();
        assert_eq!(
            read,
            Stored {
                record,
                lens,
                series: None
            }
        );
        // And what this build writes reads back, series included.
        let mut new = read.clone();
        new.touch(stamp, crdt::Kind::TimeSeries);
        assert_eq!(Stored::decode(&new.encode()).unwrap(), new);
        assert_eq!(new.kind(), Some(crdt::Kind::TimeSeries));
        assert!(Stored::decode(&old[..old.len() - 1]).is_err());
    }
}
