//! How rounds become change log entries, and how peers' entries are applied: the part of the
//! engine that the simulator runs too.

use super::{Finished, Txn};
use bytes::Bytes;
use crdt::{NodeId, Seen, Stamp};
use hlc::Timestamp;
use replication::{Change, Entry, VersionVector};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use storage::{Batch, LogPut, MemberKind, StateRead, StorageError, Store};

/// When this node acknowledged its most recent own log entries to clients, so that what it
/// ships carries the time replication lag counts from. Bounded: older entries are forgotten
/// (they ship in catch-ups, where lag from the acknowledgment means little).
#[derive(Debug, Default)]
pub struct AckTimes(Mutex<AckRing>);

#[derive(Debug, Default)]
struct AckRing {
    /// The sequence number of `times[0]`.
    first: u64,
    /// Wall-clock milliseconds, one per entry from `first` on.
    times: VecDeque<u64>,
}

/// Own entries whose acknowledgment times are remembered.
const ACK_TIMES_MAX: usize = 8192;

impl AckTimes {
    /// Entry `seq` was acknowledged at `ms`. Sequence numbers come in order; a gap (a round
    /// whose commit failed reuses its number) starts the record afresh.
    pub fn record(&self, seq: u64, ms: u64) {
        let mut ring = self.0.lock().expect("not poisoned");
        if ring.first + ring.times.len() as u64 != seq {
            ring.times.clear();
            ring.first = seq;
        }
        ring.times.push_back(ms);
        if ring.times.len() > ACK_TIMES_MAX {
            ring.times.pop_front();
            ring.first += 1;
        }
    }

    /// When entry `seq` was acknowledged, if it is still remembered.
    pub fn get(&self, seq: u64) -> Option<u64> {
        let ring = self.0.lock().expect("not poisoned");
        let index = seq.checked_sub(ring.first)?;
        ring.times.get(usize::try_from(index).ok()?).copied()
    }
}

/// What a node's state holds: per origin, the last entry applied (`vv`) and the clock of the
/// latest write applied (`seen`, which a repair needs: see `repair.rs`). Stored together,
/// in every commit that moves them.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Applied {
    /// Per origin, the last entry applied.
    pub vv: VersionVector,
    /// Per origin, its latest write applied.
    pub seen: Seen,
}

impl Applied {
    /// Entry `seq` of `origin`, whose writes are stamped up to `hlc`, is applied.
    pub fn advance(&mut self, origin: NodeId, seq: u64, hlc: Timestamp) {
        self.vv.advance(origin, seq);
        self.seen.advance(origin, hlc);
    }

    /// Everything either holds.
    pub fn merge(&mut self, other: &Applied) {
        self.vv.merge(&other.vv);
        self.seen.merge(&other.seen);
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        crdt::encode(self)
    }

    /// What a store's version vector record (`StateRead::version_vector`) says: nothing
    /// applied when there is none.
    pub fn from_stored(stored: Option<Bytes>) -> Result<Applied, StorageError> {
        let Some(bytes) = stored else {
            return Ok(Applied::default());
        };
        Applied::decode(&bytes).map_err(|e| StorageError::Corrupt {
            key: "(version vector)".into(),
            reason: e.to_string(),
        })
    }

    /// Reads the stored form. A directory written before `seen` was kept holds the version
    /// vector alone: its node saw nothing it can vouch for (a repair it sends then drops
    /// nothing the receiver holds).
    fn decode(bytes: &[u8]) -> Result<Applied, postcard::Error> {
        crdt::decode(bytes).or_else(|_| {
            Ok(Applied {
                vv: crdt::decode(bytes)?,
                seen: Seen::default(),
            })
        })
    }
}

/// Log entries removed per truncation at most (one commit).
const TRUNCATE_PER_PASS: u64 = 16_384;

/// One truncation pass: a batch (at `hlc`) that removes the log entries up to `upto` (every
/// member holds them), at most [`TRUNCATE_PER_PASS`], with the first entry each origin's log
/// then holds, to remember once the batch commits. `known_first` holds what earlier passes
/// answered (finding the first entry again in the store walks over every entry truncated so
/// far, which the storage engine keeps as tombstones until compaction drops them: a
/// truncation took 4-7 ms of the engine's time after a minute at 10k writes/s).
pub fn truncation(
    store: &dyn Store,
    upto: &VersionVector,
    known_first: &HashMap<u64, u64>,
    hlc: Timestamp,
) -> Result<(Batch, Vec<(u64, u64)>), StorageError> {
    let mut batch = Batch {
        hlc,
        ..Batch::default()
    };
    let mut firsts = Vec::new();
    for (origin, seq) in upto.iter() {
        let room = TRUNCATE_PER_PASS.saturating_sub(batch.log_removes.len() as u64);
        let first = match known_first.get(&origin.0) {
            Some(&first) => Some(first),
            None => store.log_first(origin.0)?,
        };
        if let Some(first) = first.filter(|&f| f <= seq && room > 0) {
            let last = seq.min(first + room - 1);
            batch
                .log_removes
                .extend((first..=last).map(|s| (origin.0, s)));
            firsts.push((origin.0, last + 1));
        }
    }
    Ok((batch, firsts))
}

/// Adds the log entry of a round of local writes to its batch, with the version vector it
/// brings the node to (`vv`, advanced here). Answers the entry's sequence number, or `None`
/// when the round changed nothing.
pub fn seal(
    finished: &mut Finished,
    node: NodeId,
    hlc: Timestamp,
    applied: &mut Applied,
) -> Option<u64> {
    if finished.changes.is_empty() {
        return None;
    }
    let seq = applied.vv.get(node) + 1;
    let entry = Entry::new(
        node,
        seq,
        hlc,
        applied.vv.without(node),
        std::mem::take(&mut finished.changes),
    );
    finished.batch.log_puts.push((node.0, seq, entry.encode()));
    applied.advance(node, seq, hlc);
    finished.batch.version_vector = Some(applied.encode());
    Some(seq)
}

/// Applies peers' entries through `txn`, each the next of its origin with its dependencies
/// held, advancing `applied`. Entries already held are skipped. Stops at the first entry that
/// cannot apply (a gap, a missing dependency, or a timestamp too far ahead of this node's
/// clock) and says why. Answers the log records of the entries applied; the caller puts them
/// and `applied` into the batch.
pub fn apply_entries(
    txn: &mut Txn<'_>,
    applied: &mut Applied,
    entries: &[Entry],
) -> (Vec<LogPut>, Option<String>) {
    let mut log_puts = Vec::new();
    let now_ms = txn.now_ms();
    for entry in entries {
        let have = applied.vv.get(entry.origin);
        if entry.seq <= have {
            continue;
        }
        if entry.seq != have + 1 || !applied.vv.dominates(&entry.deps) {
            let problem = format!(
                "entry {} of {:?} does not follow what this node holds",
                entry.seq, entry.origin
            );
            return (log_puts, Some(problem));
        }
        if let Err(e) = txn.observe(now_ms, entry.hlc) {
            metrics::counter!("meridian_clock_offset_rejected_total").increment(1);
            tracing::error!(origin = ?entry.origin, error = %e, "refusing a peer's entry");
            return (log_puts, Some(e.to_string()));
        }
        for change in &entry.changes {
            txn.apply_change(change);
        }
        log_puts.push((entry.origin.0, entry.seq, entry.encode()));
        applied.advance(entry.origin, entry.seq, entry.hlc);
    }
    (log_puts, None)
}

/// Full states of up to `keys` keys after `after`, as snapshot changes: each header, field and
/// member as it is stored. Merged into another replica, they carry every effect this replica
/// holds. Answers the changes and the last key covered (`None` when the store ran out).
pub fn snapshot_chunk<S: StateRead + ?Sized>(
    store: &S,
    after: Option<&[u8]>,
    keys: usize,
) -> Result<(Vec<Change>, Option<Bytes>), StorageError> {
    let headers = store.scan(after, keys)?;
    let last = (headers.len() == keys)
        .then(|| headers.last().map(|(k, _)| k.clone()))
        .flatten();
    let mut changes = Vec::new();
    for (key, stored) in headers {
        key_state(store, key, stored, &mut changes)?;
    }
    Ok((changes, last))
}

/// The full state of `key` (whose header is `stored`) as snapshot changes, added to `out`.
pub fn key_state<S: StateRead + ?Sized>(
    store: &S,
    key: Bytes,
    stored: storage::Stored,
    out: &mut Vec<Change>,
) -> Result<(), StorageError> {
    let zero = Stamp::new(Timestamp::ZERO, NodeId(0));
    let record = stored.record;
    let hash_top = record.hash.map_or(zero, |c| c.top);
    let set_top = record.set.map(|c| c.top);
    let list_top = record.list.map(|c| c.top);
    let zset_top = record.zset.map(|c| c.top);
    let series_top = stored.series.as_ref().and_then(|h| h.top);
    out.push(Change::Header {
        key: key.clone(),
        delta: record,
    });
    if let Some(header) = stored.series {
        out.push(Change::Series {
            key: key.clone(),
            delta: *header,
        });
    }
    for kind in [
        MemberKind::Field,
        MemberKind::SetMember,
        MemberKind::ListElem,
        MemberKind::ZMember,
        MemberKind::Window,
    ] {
        let mut from: Option<Bytes> = None;
        loop {
            let page = store.scan_members(kind, &key, from.as_deref(), 1024)?;
            let done = page.len() < 1024;
            from = page.last().map(|(m, _)| m.clone());
            for (name, bytes) in page {
                let corrupt = |e: postcard::Error| StorageError::Corrupt {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    reason: e.to_string(),
                };
                out.push(match kind {
                    MemberKind::Field => Change::Field {
                        key: key.clone(),
                        field: name,
                        delta: crdt::decode(&bytes).map_err(corrupt)?,
                        stamp: hash_top,
                    },
                    MemberKind::SetMember => Change::Member {
                        key: key.clone(),
                        member: name,
                        delta: crdt::decode(&bytes).map_err(corrupt)?,
                        stamp: set_top,
                    },
                    MemberKind::ListElem => Change::Elem {
                        key: key.clone(),
                        pos: name,
                        delta: crdt::decode(&bytes).map_err(corrupt)?,
                        stamp: list_top,
                    },
                    MemberKind::ZMember => Change::ZMember {
                        key: key.clone(),
                        member: name,
                        delta: crdt::decode(&bytes).map_err(corrupt)?,
                        stamp: zset_top,
                    },
                    MemberKind::Window => Change::Window {
                        key: key.clone(),
                        start: name,
                        delta: crdt::decode(&bytes).map_err(corrupt)?,
                        stamp: series_top,
                    },
                    MemberKind::ZOrder => unreachable!("the order is not state"),
                });
            }
            if done {
                break;
            }
        }
    }
    Ok(())
}

/// Buckets the key space falls into for anti-entropy: a node repairing a peer compares one
/// digest per bucket with the peer's and sends only the buckets that differ.
pub const DIGEST_BUCKETS: usize = 1024;

/// The bucket `key` falls into (the same on every node).
pub fn bucket_of(key: &[u8]) -> usize {
    crc32fast::hash(key) as usize % DIGEST_BUCKETS
}

/// One digest per bucket over the full state of every key in it: the XOR of a SHA-256 prefix
/// of each header, field and member as a snapshot would send it. Equal digests mean equal
/// states (up to a 2^-64 chance); states that are equal but stored differently only cost a
/// needless transfer, as merging is idempotent.
pub fn digests<S: StateRead + ?Sized>(store: &S) -> Result<Vec<u64>, StorageError> {
    use sha2::Digest;
    let mut out = vec![0u64; DIGEST_BUCKETS];
    let mut after: Option<Bytes> = None;
    loop {
        let (changes, last) = snapshot_chunk(store, after.as_deref(), 256)?;
        for change in &changes {
            let hash = sha2::Sha256::digest(crdt::encode(change));
            let prefix: [u8; 8] = hash[..8].try_into().expect("32 bytes");
            out[bucket_of(change.key())] ^= u64::from_le_bytes(prefix);
        }
        match last {
            Some(k) => after = Some(k),
            None => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_vector_stored_alone_reads_as_having_seen_nothing() {
        let mut vv = VersionVector::new();
        vv.advance(NodeId(7), 3);
        let old = Applied::decode(&crdt::encode(&vv)).unwrap();
        assert_eq!((old.vv, old.seen), (vv.clone(), Seen::default()));
        let mut applied = Applied::default();
        applied.advance(NodeId(7), 3, Timestamp(42));
        assert_eq!(Applied::decode(&applied.encode()).unwrap(), applied);
        assert!(applied.seen.covers(Stamp::new(Timestamp(42), NodeId(7))));
        assert!(!applied.seen.covers(Stamp::new(Timestamp(43), NodeId(7))));
    }

    #[test]
    fn ack_times_remember_the_latest_entries_in_order() {
        let acks = AckTimes::default();
        assert_eq!(acks.get(1), None);
        for seq in 1..=(ACK_TIMES_MAX as u64 + 10) {
            acks.record(seq, 1000 + seq);
        }
        assert_eq!(acks.get(10), None, "forgotten: beyond the bound");
        assert_eq!(acks.get(11), Some(1011));
        assert_eq!(
            acks.get(ACK_TIMES_MAX as u64 + 10),
            Some(1000 + ACK_TIMES_MAX as u64 + 10)
        );
        assert_eq!(
            acks.get(ACK_TIMES_MAX as u64 + 11),
            None,
            "not yet acknowledged"
        );
        // A gap: the times before it no longer line up with sequence numbers.
        acks.record(ACK_TIMES_MAX as u64 + 20, 7);
        assert_eq!(acks.get(ACK_TIMES_MAX as u64 + 10), None);
        assert_eq!(acks.get(ACK_TIMES_MAX as u64 + 20), Some(7));
    }
}
