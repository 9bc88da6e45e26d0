//! Receiving an anti-entropy repair: a peer's state replaces this node's, range by range,
//! with what this node holds that the peer has not seen merged back on top.
//!
//! A peer whose log cannot serve this node (new, wiped, or forgotten with `CLUSTER FORGET`
//! and back) sends, for the key buckets whose digests differ, the full state of everything
//! it holds there, in key order, each part naming the key range it covers. Merging that
//! state into this node's would not be enough once tombstones are collected: an item the
//! peer deleted and then forgot would stay here, alive (a resurrected delete), and an item
//! deleted and written again there would merge with its old self here.
//!
//! The peer reads every part from one view of its store, and says at the beginning what that
//! view had *seen* ([`crdt::Seen`]: per writer, the clock of its latest write applied) along
//! with the vector it covers. Within each part's range of a
//! differing bucket, this node's items are replaced by the peer's, and then its own state of
//! those keys is merged back minus what the peer had seen and no longer holds (the
//! `drop_seen` methods of the merge types): writes the peer never saw stay (this node's own
//! recent writes, entries that did not reach the peer), and so do this node's deletes (they
//! only hide writes); writes the peer saw and holds merge as they are; writes the peer saw
//! and no longer holds were deleted there and their tombstones collected, and go. Each range
//! is replaced in one commit, so at every moment and across a crash it is either this node's
//! old state or the repaired one.
//!
//! This is safe whatever this node's state came from, including an earlier repair by
//! another peer (the simulator found both a deadlock when such a node refused repairs, and
//! resurrected deletes when it merged them without this filter).
//!
//! One repair at a time: a second peer's is refused (its session closes, and it tries again
//! when it reconnects).
//!
//! [`Repair`] is the part the simulator runs too (over its own store and clock); the engine
//! adds the commits, the cache and the bookkeeping of tombstones.

use super::{Applied, Engine, Finished, Txn, Writer, bucket_of, key_state, wall_ms};
use bytes::Bytes;
use crdt::{NodeId, Seen, Stamp};
use hlc::Timestamp;
use replication::{Change, VersionVector};
use std::collections::HashMap;
use storage::{Store, Stored};

/// A repair that has sent nothing for this long gives way to another peer's (its peer went
/// away without this node hearing of it).
const REPAIR_SILENCE_MS: u64 = 60_000;
/// Headers read per step while finding this node's items in a range.
const SCAN_CHUNK: usize = 1024;

/// A repair being received.
pub struct Repair {
    from: NodeId,
    /// Which buckets the peer sends.
    differ: Vec<bool>,
    /// What the peer's state covers: this node holds it once the repair ends.
    covers: Applied,
    /// When the peer last sent a part (wall ms).
    heard_ms: u64,
}

impl Repair {
    /// `from` begins a repair of the buckets in `differ` with a state that covers `covers`,
    /// at `now_ms`.
    pub fn begin(
        from: NodeId,
        differ: Vec<bool>,
        covers: Applied,
        now_ms: u64,
    ) -> Result<Repair, String> {
        if differ.len() != super::DIGEST_BUCKETS {
            return Err(format!("a repair of {} buckets", differ.len()));
        }
        Ok(Repair {
            from,
            differ,
            covers,
            heard_ms: now_ms,
        })
    }

    /// The peer sending it.
    pub fn from(&self) -> NodeId {
        self.from
    }

    /// What the peer's state covers.
    pub fn covers(&self) -> &Applied {
        &self.covers
    }

    /// The peer sent a part at `now_ms`.
    pub fn heard(&mut self, now_ms: u64) {
        self.heard_ms = now_ms;
    }

    /// This node's headers with keys in `(after, last]` (to the end when `last` is `None`)
    /// in the repair's buckets: what a part over that range replaces.
    pub fn items_in(
        &self,
        store: &dyn Store,
        after: Option<Bytes>,
        last: Option<&Bytes>,
    ) -> Result<Vec<(Bytes, Stored)>, String> {
        let mut out = Vec::new();
        let mut cursor = after;
        loop {
            let chunk = (store.scan(cursor.as_deref(), SCAN_CHUNK)).map_err(|e| e.to_string())?;
            let full = chunk.len() == SCAN_CHUNK;
            cursor = chunk.last().map(|(k, _)| k.clone());
            for (key, stored) in chunk {
                if last.is_some_and(|l| key > *l) {
                    return Ok(out);
                }
                if self.differ[bucket_of(&key)] {
                    out.push((key, stored));
                }
            }
            if !full {
                return Ok(out);
            }
        }
    }

    /// This node's full state of the keys `mine` (from [`Repair::items_in`]).
    pub fn own_state(store: &dyn Store, mine: &[(Bytes, Stored)]) -> Result<Vec<Change>, String> {
        let mut own = Vec::new();
        for (key, stored) in mine {
            key_state(store, key.clone(), stored.clone(), &mut own).map_err(|e| e.to_string())?;
        }
        Ok(own)
    }

    /// One part: `mine` (from [`Repair::items_in`] over the part's range, whose full state
    /// is `own`) is replaced by the peer's `changes`, with what the peer had not seen of `own`
    /// merged back, in `txn`. Answers the round to commit (in one commit, so that a crash
    /// leaves the range whole either way).
    pub fn replace(
        &self,
        mut txn: Txn<'_>,
        mine: &[(Bytes, Stored)],
        own: Vec<Change>,
        changes: &[Change],
    ) -> Result<Finished, String> {
        let seen = &self.covers.seen;
        txn.replaying(changes.len() + own.len());
        for (key, stored) in mine {
            txn.forget(key, stored);
        }
        let theirs: HashMap<(&Bytes, u8, &Bytes), &Change> =
            changes.iter().map(|c| (identity(c), c)).collect();
        let kept: Vec<Change> = own
            .into_iter()
            .filter_map(|c| {
                let t = theirs.get(&identity(&c)).copied();
                unseen(c, t, seen)
            })
            .collect();
        changes.iter().for_each(|c| txn.apply_change(c));
        kept.iter().for_each(|c| txn.apply_change(c));
        let failed = txn.failed.take();
        let mut finished = txn.finish();
        finished.read.clear();
        match failed {
            Some(e) => Err(e.to_string()),
            None => Ok(finished),
        }
    }

    /// What the node holds once the repair ended, if it held `own` before: its graves (the
    /// repair's, and those written meanwhile) wait for this.
    pub fn barrier(&self, own: &VersionVector) -> VersionVector {
        let mut barrier = own.clone();
        barrier.merge(&self.covers.vv);
        barrier
    }
}

/// What names a change's item: its key, the part (header, field, member) and the field's or
/// member's name.
fn identity(change: &Change) -> (&Bytes, u8, &Bytes) {
    static NONE: Bytes = Bytes::new();
    match change {
        Change::Header { key, .. } => (key, 0, &NONE),
        Change::Field { key, field, .. } => (key, 1, field),
        Change::Member { key, member, .. } => (key, 2, member),
        Change::Elem { key, pos, .. } => (key, 3, pos),
        Change::ZMember { key, member, .. } => (key, 4, member),
        Change::Event { key, .. } => (key, 5, &NONE),
        Change::Series { key, .. } => (key, 6, &NONE),
        Change::Window { key, start, .. } => (key, 7, start),
    }
}

/// This node's item `mine` minus what the peer, whose item is `theirs` (if it has one), had
/// seen and no longer holds; `None` when nothing is left.
fn unseen(mine: Change, theirs: Option<&Change>, seen: &Seen) -> Option<Change> {
    match mine {
        Change::Header { key, mut delta } => {
            let theirs = match theirs {
                Some(Change::Header { delta, .. }) => Some(delta),
                _ => None,
            };
            delta.drop_seen(theirs, seen);
            (delta != crdt::Record::default()).then_some(Change::Header { key, delta })
        }
        Change::Field {
            key,
            field,
            mut delta,
            ..
        } => {
            let theirs = match theirs {
                Some(Change::Field { delta, .. }) => Some(delta),
                _ => None,
            };
            delta.drop_seen(theirs, seen);
            let stamp = (delta.top()).unwrap_or(Stamp::new(Timestamp::ZERO, NodeId(0)));
            (delta != crdt::StrState::default()).then_some(Change::Field {
                key,
                field,
                delta,
                stamp,
            })
        }
        Change::Member {
            key,
            member,
            mut delta,
            ..
        } => {
            let theirs = match theirs {
                Some(Change::Member { delta, .. }) => Some(delta),
                _ => None,
            };
            delta.drop_seen(theirs, seen);
            let stamp = delta.top();
            (delta != crdt::Member::default()).then_some(Change::Member {
                key,
                member,
                delta,
                stamp,
            })
        }
        Change::Elem {
            key,
            pos,
            mut delta,
            ..
        } => {
            let theirs = match theirs {
                Some(Change::Elem { delta, .. }) => Some(delta),
                _ => None,
            };
            delta.drop_seen(theirs, seen);
            let stamp = delta.top();
            (delta != crdt::Elem::default()).then_some(Change::Elem {
                key,
                pos,
                delta,
                stamp,
            })
        }
        Change::ZMember {
            key,
            member,
            mut delta,
            ..
        } => {
            let theirs = match theirs {
                Some(Change::ZMember { delta, .. }) => Some(delta),
                _ => None,
            };
            delta.drop_seen(theirs, seen);
            let stamp = delta.top();
            (delta != crdt::ZMember::default()).then_some(Change::ZMember {
                key,
                member,
                delta,
                stamp,
            })
        }
        Change::Series { key, mut delta } => {
            let theirs = match theirs {
                Some(Change::Series { delta, .. }) => Some(delta),
                _ => None,
            };
            delta.drop_seen(theirs, seen);
            (delta != timeseries::header::Header::default())
                .then_some(Change::Series { key, delta })
        }
        Change::Window {
            key,
            start,
            mut delta,
            ..
        } => {
            let theirs = match theirs {
                Some(Change::Window { delta, .. }) => Some(delta),
                _ => None,
            };
            delta.drop_seen(theirs, seen);
            let stamp = delta.top();
            (delta != timeseries::series::Window::default()).then_some(Change::Window {
                key,
                start,
                delta,
                stamp,
            })
        }
        // Events are not state: a repair carries none.
        Change::Event { .. } => None,
    }
}

impl Engine {
    /// `from` starts a repair of the buckets in `differ`; its state covers `covers`.
    pub(super) fn repair_begin(
        &mut self,
        from: NodeId,
        differ: Vec<bool>,
        covers: Applied,
    ) -> Result<(), String> {
        if let Some(open) = &self.repair
            && open.from != from
        {
            if wall_ms().saturating_sub(open.heard_ms) < REPAIR_SILENCE_MS {
                return Err("another peer's repair is in progress".into());
            }
            tracing::warn!("a silent repair gives way to another peer's");
            self.repair_closed(None);
        }
        let repair = Repair::begin(from, differ, covers, wall_ms())?;
        tracing::info!(
            buckets = repair.differ.iter().filter(|d| **d).count(),
            "repair begins"
        );
        self.repair = Some(repair);
        // Tombstones the repair brings wait for the vector it covers (see `reclaim.rs`).
        self.reclaim.checkpoints.repair_opened();
        Ok(())
    }

    /// One part of the repair: the peer's items with keys in `(after, last]` (to the end when
    /// `last` is `None`).
    pub(super) fn repair_part(
        &mut self,
        from: NodeId,
        after: Option<Bytes>,
        last: Option<Bytes>,
        changes: Vec<Change>,
    ) -> Result<(), String> {
        let Some(mut repair) = self.repair.take_if(|r| r.from == from) else {
            return Err("a repair part without its beginning".into());
        };
        repair.heard(wall_ms());
        let result = self.replace_range(&repair, after, last, &changes);
        self.repair = Some(repair);
        result
    }

    fn replace_range(
        &mut self,
        repair: &Repair,
        after: Option<Bytes>,
        last: Option<Bytes>,
        changes: &[Change],
    ) -> Result<(), String> {
        let mine = repair.items_in(self.store.as_ref(), after, last.as_ref())?;
        let own = Repair::own_state(self.store.as_ref(), &mine)?;
        let applied = self.applied();
        let (txn, _) = self.begin(wall_ms());
        let finished = repair.replace(txn, &mine, own, changes)?;
        self.commit_with(finished, applied, Writer::Peers)
            .map_err(|e| e.to_string())
    }

    /// The repair from `from` ended: this node holds what its state covered.
    pub(super) fn repair_end(&mut self, from: NodeId) -> Result<(), String> {
        let Some(repair) = self.repair.as_ref().filter(|r| r.from == from) else {
            return Err("a repair's end without its beginning".into());
        };
        let mut adopted = self.applied();
        adopted.merge(&repair.covers);
        let finished = self.bare(&adopted);
        self.commit_with(finished, adopted, Writer::Peers)
            .map_err(|e| e.to_string())?;
        self.repair_closed(Some(from));
        Ok(())
    }

    /// The repair from `from` (any, when `None`) stopped, finished or not. Every range it
    /// replaced is whole; the ranges it did not reach keep this node's state.
    pub(super) fn repair_closed(&mut self, from: Option<NodeId>) {
        let Some(repair) = self.repair.take_if(|r| from.is_none_or(|f| r.from == f)) else {
            return;
        };
        let barrier = repair.barrier(&self.vv);
        self.snapshot_adopted(&barrier);
    }
}
