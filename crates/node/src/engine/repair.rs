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
//! One repair at a time: a second peer's is refused (its session closes, and it tries again
//! when it reconnects).

use super::{Engine, Writer, bucket_of, wall_ms};
use bytes::Bytes;
use crdt::NodeId;
use replication::{Change, Entry, VersionVector};
use std::collections::HashMap;
use storage::Stored;

/// Most changes held for replay; a repair that needs more is refused (the peer tries again
/// later, when this node's writes have reached it and fewer are beyond what it holds).
const REPLAY_CHANGES_MAX: usize = 1 << 20;
/// A repair that has sent nothing for this long gives way to another peer's (its peer went
/// away without this node hearing of it).
const REPAIR_SILENCE_MS: u64 = 60_000;
/// Headers read per step while finding this node's items in a range.
const SCAN_CHUNK: usize = 1024;

/// A repair being received.
pub(super) struct Repair {
    from: NodeId,
    /// Which buckets the peer sends.
    differ: Vec<bool>,
    /// What the peer's state covers.
    vv: VersionVector,
    /// This node's changes beyond `vv` in differing buckets, by key, in order.
    replay: HashMap<Bytes, Vec<Change>>,
    replay_len: usize,
    /// When the peer last sent a part (wall ms).
    heard_ms: u64,
}

impl Repair {
    fn hold(&mut self, change: &Change) {
        if self.differ[bucket_of(change.key())] {
            self.replay
                .entry(change.key().clone())
                .or_default()
                .push(change.clone());
            self.replay_len += 1;
        }
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
        if differ.len() != super::DIGEST_BUCKETS {
            return Err(format!("a repair of {} buckets", differ.len()));
        }
        let mut repair = Repair {
            from,
            differ,
            vv,
            replay: HashMap::new(),
            replay_len: 0,
            heard_ms: wall_ms(),
        };
        for (origin, held) in self.vv.iter() {
            let mut next = repair.vv.get(origin) + 1;
            while next <= held {
                let chunk =
                    (self.store.log_range(origin.0, next, 256)).map_err(|e| e.to_string())?;
                match chunk.first() {
                    Some((seq, _)) if *seq == next => {}
                    _ => return Err("the log no longer holds what the repair must keep".into()),
                }
                for (seq, bytes) in chunk {
                    let entry = Entry::decode(&bytes).map_err(|e| e.to_string())?;
                    entry.changes.iter().for_each(|c| repair.hold(c));
                    next = seq + 1;
                }
                if repair.replay_len > REPLAY_CHANGES_MAX {
                    return Err("too much to keep over the repair; later".into());
                }
            }
        }
        tracing::info!(
            buckets = repair.differ.iter().filter(|d| **d).count(),
            kept = repair.replay_len,
            "repair begins"
        );
        self.repair = Some(repair);
        // Tombstones the repair brings wait for the vector it covers (see `reclaim.rs`).
        self.reclaim.snapshot_open = true;
        Ok(())
    }

    /// Keeps what this node commits during a repair, to merge it again over the peer's state.
    pub(super) fn hold_for_repair<'a>(&mut self, changes: impl IntoIterator<Item = &'a Change>) {
        let Some(repair) = &mut self.repair else {
            return;
        };
        changes.into_iter().for_each(|c| repair.hold(c));
        if repair.replay_len > REPLAY_CHANGES_MAX {
            tracing::warn!("abandoning the repair: too much written meanwhile");
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
        repair.heard_ms = wall_ms();
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
        let mine = self.items_in(repair, after, last.as_ref())?;
        let (mut txn, _) = self.begin(wall_ms());
        txn.replaying(changes.len() + mine.len());
        for (key, stored) in &mine {
            txn.forget(key, stored);
        }
        for change in changes {
            txn.apply_change(change);
        }
        let keys = (mine.iter().map(|(k, _)| k)).chain(changes.iter().map(Change::key));
        let mut replayed = std::collections::HashSet::new();
        for key in keys {
            if replayed.insert(key.clone())
                && let Some(kept) = repair.replay.get(key)
            {
                kept.iter().for_each(|c| txn.apply_change(c));
            }
        }
        let failed = txn.failed.take();
        let mut finished = txn.finish();
        finished.read.clear();
        if let Some(e) = failed {
            return Err(e.to_string());
        }
        let vv = self.vv.clone();
        self.commit_with(finished, vv, Writer::Peers)
            .map_err(|e| e.to_string())
    }

    /// This node's headers in `(after, last]` in the repair's buckets.
    fn items_in(
        &self,
        repair: &Repair,
        after: Option<Bytes>,
        last: Option<&Bytes>,
    ) -> Result<Vec<(Bytes, Stored)>, String> {
        let mut out = Vec::new();
        let mut cursor = after;
        loop {
            let chunk =
                (self.store.scan(cursor.as_deref(), SCAN_CHUNK)).map_err(|e| e.to_string())?;
            let full = chunk.len() == SCAN_CHUNK;
            cursor = chunk.last().map(|(k, _)| k.clone());
            for (key, stored) in chunk {
                if last.is_some_and(|l| key > *l) {
                    return Ok(out);
                }
                if repair.differ[bucket_of(&key)] {
                    out.push((key, stored));
                }
            }
            if !full {
                return Ok(out);
            }
        }
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
        let mut barrier = self.vv.clone();
        barrier.merge(&repair.vv);
        self.snapshot_adopted(&barrier);
    }
}
