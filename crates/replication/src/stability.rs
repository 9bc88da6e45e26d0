//! Causal stability: when a tombstone may be forgotten.
//!
//! A tombstone (a deleted key, field or member, kept as merge state) judges writes that were
//! concurrent with its delete: an observed-remove takes away only what it saw, so a write it
//! did not see must still find it. Once no such write can arrive any more, at this node or any
//! other, the tombstone decides nothing and can go. Writes made after a node applied the
//! delete follow it causally: merged into nothing or into the tombstone they give the same
//! result (their stamps are later, and counters open a new generation, see
//! `crdt::Contribution`). So the question is only about writes concurrent with the delete.
//!
//! A node answers it from the version vectors its peers acknowledge (what each member holds
//! durably), in two phases per *checkpoint* (the HLC of a commit that left tombstones, with
//! the node's version vector after it, the *barrier* `B`):
//! 1. When every member holds `B` (the meet of all members' vectors dominates it), each has
//!    applied the deletes; every write a member made before that is numbered at most what it
//!    reported then. The join `S` of all reported vectors at that moment covers all of them.
//! 2. When every member holds `S` (the meet dominates it), every write concurrent with the
//!    deletes has been applied everywhere: the checkpoint's tombstones may go, at every node
//!    that reaches the same conclusion by the same rule.
//!
//! A member that is down holds both phases back, as it holds back log truncation; removing it
//! from the cluster (`CLUSTER FORGET`) releases them: checkpoints past phase 1 go through it
//! again without it (its join may hold writes only it had, which are given up with it).
//! Checkpoints are coalesced (a later barrier is always safe for earlier tombstones: vectors
//! only grow), so their number is bounded however long a member stays away.

use crate::VersionVector;
use hlc::Timestamp;
use std::collections::VecDeque;

/// One checkpoint: tombstones written up to `hlc`, with the node's vector after them.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Checkpoint {
    /// The HLC of the latest commit the checkpoint covers.
    hlc: Timestamp,
    /// The node's version vector after that commit.
    barrier: VersionVector,
    /// The join of all members' vectors once every member held `barrier` (phase 1 passed).
    seen: Option<VersionVector>,
    /// When the checkpoint was opened (node time), so commits close together share one.
    opened_ms: u64,
}

/// Tracks checkpoints and tells which tombstones are stable.
#[derive(Clone, Debug)]
pub struct Stability {
    checkpoints: VecDeque<Checkpoint>,
    /// Commits within this many ms of a checkpoint's opening join it.
    period_ms: u64,
    /// Most checkpoints kept; beyond it the two oldest are coalesced.
    max: usize,
    /// Tombstones up to this HLC are stable.
    stable: Timestamp,
}

impl Stability {
    /// No checkpoints; commits within `period_ms` share one; at most `max` kept.
    pub fn new(period_ms: u64, max: usize) -> Stability {
        assert!(max >= 2, "coalescing needs room for two checkpoints");
        Stability {
            checkpoints: VecDeque::new(),
            period_ms,
            max,
            stable: Timestamp::ZERO,
        }
    }

    /// A commit at `hlc` left tombstones; the node's vector after it is `vv`. Commits are
    /// noted in HLC order.
    pub fn note(&mut self, now_ms: u64, hlc: Timestamp, vv: &VersionVector) {
        if let Some(last) = self.checkpoints.back_mut() {
            debug_assert!(hlc >= last.hlc, "checkpoints are noted in HLC order");
            if last.seen.is_none() && now_ms < last.opened_ms.saturating_add(self.period_ms) {
                last.hlc = hlc;
                last.barrier.merge(vv);
                return;
            }
        }
        self.checkpoints.push_back(Checkpoint {
            hlc,
            barrier: vv.clone(),
            seen: None,
            opened_ms: now_ms,
        });
        if self.checkpoints.len() > self.max {
            // The oldest's tombstones wait for the next one's barrier too: a later (larger)
            // barrier is safe for them.
            let oldest = self.checkpoints.pop_front().expect("more than max >= 2");
            let next = self.checkpoints.front_mut().expect("more than max >= 2");
            debug_assert!(next.barrier.dominates(&oldest.barrier));
            next.barrier.merge(&oldest.barrier);
        }
    }

    /// Every member (this node included) holds `meet`; together they hold `join`. Answers the
    /// HLC up to which tombstones are now stable, when that moved.
    pub fn observe(&mut self, meet: &VersionVector, join: &VersionVector) -> Option<Timestamp> {
        for c in self.checkpoints.iter_mut() {
            if c.seen.is_none() && meet.dominates(&c.barrier) {
                c.seen = Some(join.clone());
            }
        }
        let before = self.stable;
        while let Some(front) = self.checkpoints.front() {
            match &front.seen {
                Some(seen) if meet.dominates(seen) => {
                    self.stable = self.stable.max(front.hlc);
                    self.checkpoints.pop_front();
                }
                _ => break,
            }
        }
        (self.stable > before).then_some(self.stable)
    }

    /// A member was removed (`CLUSTER FORGET`): joins taken while it was a member may hold
    /// writes of its that no other member has and never will (they are given up), so the
    /// checkpoints past phase 1 go through it again, with the members left.
    pub fn member_removed(&mut self) {
        for c in self.checkpoints.iter_mut() {
            c.seen = None;
        }
    }

    /// Tombstones up to this HLC are stable.
    pub fn stable(&self) -> Timestamp {
        self.stable
    }

    /// The barrier of the oldest checkpoint still waiting for its first phase: a member
    /// whose vector does not hold it is what holds collection back.
    pub fn oldest_barrier(&self) -> Option<&VersionVector> {
        self.checkpoints
            .iter()
            .find(|c| c.seen.is_none())
            .map(|c| &c.barrier)
    }

    /// Checkpoints waiting.
    pub fn pending(&self) -> usize {
        self.checkpoints.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crdt::NodeId;

    fn vv(pairs: &[(u64, u64)]) -> VersionVector {
        let mut v = VersionVector::new();
        for &(o, s) in pairs {
            v.set(NodeId(o), s);
        }
        v
    }

    #[test]
    fn stable_only_after_every_member_holds_what_all_had_when_they_held_the_delete() {
        let mut s = Stability::new(100, 16);
        // A delete at node 1, seq 5; node 2 had written up to 3 meanwhile.
        s.note(0, Timestamp(10), &vv(&[(1, 5), (2, 3)]));
        // Node 2 has not got the delete yet.
        assert_eq!(
            s.observe(&vv(&[(1, 4), (2, 3)]), &vv(&[(1, 5), (2, 3)])),
            None
        );
        // Node 2 holds it, and wrote up to 7 before (concurrent writes); we hold 6 of them.
        assert_eq!(
            s.observe(&vv(&[(1, 5), (2, 6)]), &vv(&[(1, 5), (2, 7)])),
            None
        );
        // Node 2's seventh write, concurrent with the delete, is everywhere now.
        assert_eq!(
            s.observe(&vv(&[(1, 5), (2, 7)]), &vv(&[(1, 6), (2, 9)])),
            Some(Timestamp(10))
        );
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn a_removed_members_writes_no_one_else_has_do_not_hold_collection_for_ever() {
        let mut s = Stability::new(100, 16);
        s.note(0, Timestamp(10), &vv(&[(1, 5)]));
        // Every member holds the delete; member 3 had written up to 4, which it alone holds.
        assert_eq!(s.observe(&vv(&[(1, 5)]), &vv(&[(1, 5), (3, 4)])), None);
        // Member 3 is forgotten before its writes reach anyone: they are given up.
        assert_eq!(
            s.observe(&vv(&[(1, 6), (3, 2)]), &vv(&[(1, 6), (3, 2)])),
            None
        );
        s.member_removed();
        // Phase 1 again with the members left (who hold 2 of member 3's writes), then 2.
        assert_eq!(
            s.observe(&vv(&[(1, 6), (3, 1)]), &vv(&[(1, 6), (3, 2)])),
            None
        );
        assert_eq!(
            s.observe(&vv(&[(1, 6), (3, 2)]), &vv(&[(1, 6), (3, 2)])),
            Some(Timestamp(10))
        );
    }

    #[test]
    fn a_checkpoint_waits_for_the_ones_before_it() {
        let mut s = Stability::new(100, 16);
        s.note(0, Timestamp(10), &vv(&[(1, 5)]));
        s.note(500, Timestamp(20), &vv(&[(1, 6)]));
        // Phase 1 for both, phase 2 for neither yet: the join then was ahead of the meet.
        assert_eq!(s.observe(&vv(&[(1, 6)]), &vv(&[(1, 8)])), None);
        assert_eq!(
            s.observe(&vv(&[(1, 8)]), &vv(&[(1, 8)])),
            Some(Timestamp(20))
        );
    }

    #[test]
    fn commits_within_the_period_share_a_checkpoint_and_the_number_is_bounded() {
        let mut s = Stability::new(100, 3);
        s.note(0, Timestamp(1), &vv(&[(1, 1)]));
        s.note(50, Timestamp(2), &vv(&[(1, 2)]));
        assert_eq!(s.pending(), 1);
        for (i, t) in [(200, 3), (400, 4), (600, 5), (800, 6)] {
            s.note(i, Timestamp(t), &vv(&[(1, t)]));
        }
        assert_eq!(s.pending(), 3);
        // The coalesced oldest waits for the barrier of the one it joined.
        assert_eq!(s.observe(&vv(&[(1, 3)]), &vv(&[(1, 3)])), None);
        assert_eq!(
            s.observe(&vv(&[(1, 4)]), &vv(&[(1, 4)])),
            Some(Timestamp(4))
        );
    }

    #[test]
    fn a_member_that_holds_nothing_holds_everything_back() {
        let mut s = Stability::new(100, 16);
        s.note(0, Timestamp(10), &vv(&[(1, 5)]));
        // A member that never told what it holds contributes an empty vector to the meet.
        assert_eq!(s.observe(&VersionVector::new(), &vv(&[(1, 5)])), None);
        assert_eq!(s.stable(), Timestamp::ZERO);
    }
}
