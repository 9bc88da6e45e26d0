//! Receiving an anti-entropy repair: a peer's state replaces this node's, range by range.
//!
//! A peer whose log cannot serve this node (new, wiped, or forgotten with `CLUSTER FORGET`
//! and back) sends, for the key buckets whose digests differ, the full state of everything
//! it holds there, in key order, each part naming the key range it covers. Merging that
//! state into this node's would not be enough once tombstones are collected: an item the
//! peer deleted and then forgot would stay here, alive (a resurrected delete), and an item
//! deleted and written again there would merge with its old self here. So within each
//! covered range of a differing bucket, this node's items are *replaced* by the peer's.
//!
//! Nothing this node holds is lost by that. The peer's state holds the effects of every
//! entry in the vector `vv` it announced first. What this node holds beyond `vv` is read from
//! its own log when the repair begins (the log keeps every entry a member has not
//! acknowledged, and the peer is a member), and everything it commits while the repair runs
//! is added to it; these changes are merged again over the peer's state of each range, in the
//! same commit that replaces it. So each range is, at every moment and across a crash,
//! either this node's old state or the peer's state plus everything this node had beyond it.
//!
//! The log may not hold all this node has beyond `vv`: part of it came by an earlier repair
//! (a repair adopts state, not log entries). Refusing then could leave two nodes each waiting
//! for what only the other holds (the simulator found it). The peer's state is *merged* into
//! this node's instead, which is safe for a node the peer counted as a member when it
//! collected tombstones: it had applied every collected delete, so it holds no item alive
//! that the peer collected. The nodes the peer did not count are new, wiped, or forgotten, and
//! a forgotten member may only return wiped (its old write id is refused): all start empty.
//!
//! One repair at a time: a second peer's is refused (its session closes, and it tries again
//! when it reconnects).
//!
//! [`Repair`] is the part the simulator runs too (over its own store and clock); the engine
//! adds the commits, the cache and the bookkeeping of tombstones.

use super::{Engine, Finished, Txn, Writer, bucket_of, wall_ms};
use bytes::Bytes;
use crdt::NodeId;
use replication::{Change, Entry, VersionVector};
use std::collections::HashMap;
use storage::{Store, Stored};

/// Most changes held for replay; a repair that needs more is refused (the peer tries again
/// later, when this node's writes have reached it and fewer are beyond what it holds).
const REPLAY_CHANGES_MAX: usize = 1 << 20;
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
    /// What the peer's state covers.
    vv: VersionVector,
    /// This node's changes beyond `vv` in differing buckets, by key, in order.
    replay: HashMap<Bytes, Vec<Change>>,
    replay_len: usize,
    /// The log no longer holds all this node has beyond `vv` (part of it came by an earlier
    /// repair): the peer's state is merged into this node's instead of replacing it.
    merge: bool,
    /// When the peer last sent a part (wall ms).
    heard_ms: u64,
}

impl Repair {
    /// `from` begins a repair of the buckets in `differ` with a state that covers `vv`, at
    /// `now_ms`; this node, whose store is `store`, holds `own`. Reads from the log what
    /// this node holds beyond `vv`, to merge it again over the peer's state.
    pub fn begin(
        store: &dyn Store,
        own: &VersionVector,
        from: NodeId,
        differ: Vec<bool>,
        vv: VersionVector,
        now_ms: u64,
    ) -> Result<Repair, String> {
        if differ.len() != super::DIGEST_BUCKETS {
            return Err(format!("a repair of {} buckets", differ.len()));
        }
        let mut repair = Repair {
            from,
            differ,
            vv,
            replay: HashMap::new(),
            replay_len: 0,
            merge: false,
            heard_ms: now_ms,
        };
        'origins: for (origin, held) in own.iter() {
            let mut next = repair.vv.get(origin) + 1;
            while next <= held {
                let chunk = (store.log_range(origin.0, next, 256)).map_err(|e| e.to_string())?;
                match chunk.first() {
                    Some((seq, _)) if *seq == next => {}
                    _ => {
                        repair.merge = true;
                        break 'origins;
                    }
                }
                for (seq, bytes) in chunk {
                    let entry = Entry::decode(&bytes).map_err(|e| e.to_string())?;
                    entry.changes.iter().for_each(|c| repair.hold_one(c));
                    next = seq + 1;
                }
                if repair.replay_len > REPLAY_CHANGES_MAX {
                    return Err("too much to keep over the repair; later".into());
                }
            }
        }
        if repair.merge {
            repair.replay.clear();
            repair.replay_len = 0;
        }
        Ok(repair)
    }

    /// Whether the peer's state is merged into this node's rather than replacing it (see
    /// the module's documentation).
    pub fn merges(&self) -> bool {
        self.merge
    }

    /// The peer sending it.
    pub fn from(&self) -> NodeId {
        self.from
    }

    /// What the peer's state covers.
    pub fn covers(&self) -> &VersionVector {
        &self.vv
    }

    fn hold_one(&mut self, change: &Change) {
        if !self.merge && self.differ[bucket_of(change.key())] {
            self.replay
                .entry(change.key().clone())
                .or_default()
                .push(change.clone());
            self.replay_len += 1;
        }
    }

    /// Keeps changes this node committed while the repair runs (its clients' writes, peers'
    /// entries), to merge them again over the peer's state. Fails when that is too much to
    /// keep: the repair must then stop.
    pub fn hold<'a>(
        &mut self,
        changes: impl IntoIterator<Item = &'a Change>,
    ) -> Result<(), String> {
        changes.into_iter().for_each(|c| self.hold_one(c));
        if self.replay_len > REPLAY_CHANGES_MAX {
            return Err("too much written during the repair".into());
        }
        Ok(())
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

    /// One part: `mine` (from [`Repair::items_in`] over the part's range) is replaced by the
    /// peer's `changes`, with what this node holds beyond the peer's state merged again on
    /// top, in `txn`. Answers the round to commit (in one commit, so that a crash leaves the
    /// range whole either way).
    pub fn replace(
        &self,
        mut txn: Txn<'_>,
        mine: &[(Bytes, Stored)],
        changes: &[Change],
    ) -> Result<Finished, String> {
        txn.replaying(changes.len() + mine.len());
        if !self.merge {
            for (key, stored) in mine {
                txn.forget(key, stored);
            }
        }
        for change in changes {
            txn.apply_change(change);
        }
        let keys = (mine.iter().map(|(k, _)| k)).chain(changes.iter().map(Change::key));
        let mut replayed = std::collections::HashSet::new();
        for key in keys {
            if replayed.insert(key.clone())
                && let Some(kept) = self.replay.get(key)
            {
                kept.iter().for_each(|c| txn.apply_change(c));
            }
        }
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
        barrier.merge(&self.vv);
        barrier
    }
}

impl Engine {
    /// `from` starts a repair of the buckets in `differ`; its state covers `vv`.
    pub(super) fn repair_begin(
        &mut self,
        from: NodeId,
        differ: Vec<bool>,
        vv: VersionVector,
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
        let repair = Repair::begin(self.store.as_ref(), &self.vv, from, differ, vv, wall_ms())?;
        tracing::info!(
            buckets = repair.differ.iter().filter(|d| **d).count(),
            kept = repair.replay_len,
            merges = repair.merge,
            "repair begins"
        );
        self.repair = Some(repair);
        // Tombstones the repair brings wait for the vector it covers (see `reclaim.rs`).
        self.reclaim.checkpoints.repair_opened();
        Ok(())
    }

    /// Keeps what this node commits during a repair, to merge it again over the peer's state.
    pub(super) fn hold_for_repair<'a>(&mut self, changes: impl IntoIterator<Item = &'a Change>) {
        let Some(repair) = &mut self.repair else {
            return;
        };
        if let Err(e) = repair.hold(changes) {
            tracing::warn!(error = %e, "abandoning the repair");
            self.repair_closed(None);
        }
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
        let (txn, _) = self.begin(wall_ms());
        let finished = repair.replace(txn, &mine, changes)?;
        let vv = self.vv.clone();
        self.commit_with(finished, vv, Writer::Peers)
            .map_err(|e| e.to_string())
    }

    /// The repair from `from` ended: this node holds what its state covered.
    pub(super) fn repair_end(&mut self, from: NodeId, vv: VersionVector) -> Result<(), String> {
        if self.repair.as_ref().is_none_or(|r| r.from != from) {
            return Err("a repair's end without its beginning".into());
        }
        let mut adopted = self.vv.clone();
        adopted.merge(&vv);
        let finished = self.bare(adopted.clone());
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
