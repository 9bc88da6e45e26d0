//! An add-wins (observed-remove) set: the state of one member.

use crate::{Merge, NodeId, Stamp};
use hlc::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One member's history: per node, its latest add, and per node, the latest add a remove
/// observed. The member is present while some node's latest add was not observed by any
/// remove, so a remove takes away only the adds it saw and a concurrent add wins.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    added: BTreeMap<NodeId, Timestamp>,
    removed: BTreeMap<NodeId, Timestamp>,
}

fn max_into(into: &mut BTreeMap<NodeId, Timestamp>, from: &BTreeMap<NodeId, Timestamp>) {
    for (node, ts) in from {
        let mine = into.entry(*node).or_insert(*ts);
        *mine = (*mine).max(*ts);
    }
}

impl Merge for Member {
    fn merge(&mut self, other: &Self) {
        max_into(&mut self.added, &other.added);
        max_into(&mut self.removed, &other.removed);
    }
}

impl Member {
    fn live_adds(&self) -> impl Iterator<Item = Stamp> + '_ {
        self.added
            .iter()
            .filter(|(node, ts)| self.removed.get(node).is_none_or(|r| *ts > r))
            .map(|(node, ts)| Stamp::new(*ts, *node))
    }

    /// Whether the member is in the set.
    pub fn present(&self) -> bool {
        self.live_adds().next().is_some()
    }
}

impl Member {
    /// The latest add no remove observed, if any.
    pub fn top(&self) -> Option<Stamp> {
        self.live_adds().max()
    }

    /// The delta of adding the member at `stamp`.
    pub fn add_delta(stamp: Stamp) -> Member {
        Member {
            added: BTreeMap::from([(stamp.node, stamp.hlc)]),
            removed: BTreeMap::new(),
        }
    }

    /// Drops the adds a replica holding `theirs` had seen (`seen` says which) and no longer
    /// holds: it removed them and collected the tombstone. Removes stay (they only hide adds).
    /// See [`crate::Seen`].
    pub fn drop_seen(&mut self, theirs: Option<&Member>, seen: &crate::Seen) {
        self.added.retain(|node, ts| {
            let held = theirs.and_then(|t| t.added.get(node)) >= Some(ts);
            held || !seen.covers(Stamp::new(*ts, *node))
        });
    }

    /// The delta of removing the member: it loses the adds observed here.
    pub fn remove_delta(&self) -> Member {
        Member {
            added: BTreeMap::new(),
            removed: self.added.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(hlc: u64, node: u64) -> Stamp {
        Stamp::new(Timestamp(hlc), NodeId(node))
    }

    #[test]
    fn concurrent_add_wins_over_remove() {
        let mut a = Member::add_delta(st(1, 1));
        let mut b = a.clone();
        let rm = a.remove_delta();
        let add = Member::add_delta(st(2, 2));
        a.merge(&rm);
        assert!(!a.present());
        b.merge(&add);
        a.merge(&add);
        b.merge(&rm);
        assert!(a.present() && b.present());
        assert_eq!(a, b);
    }

    #[test]
    fn re_add_after_remove_from_same_node() {
        let mut a = Member::add_delta(st(1, 1));
        let rm = a.remove_delta();
        a.merge(&rm);
        a.merge(&Member::add_delta(st(3, 1)));
        assert!(a.present());
    }

    fn seen(upto: &[(u64, u64)]) -> crate::Seen {
        let mut seen = crate::Seen::default();
        for (node, hlc) in upto {
            seen.advance(NodeId(*node), Timestamp(*hlc));
        }
        seen
    }

    #[test]
    fn a_collected_member_does_not_come_back_from_a_stale_copy() {
        // Node 1 added at 5; elsewhere it was removed and the tombstone collected: that
        // replica saw node 1 up to 7 and holds nothing of the member.
        let mut stale = Member::add_delta(st(5, 1));
        stale.drop_seen(None, &seen(&[(1, 7)]));
        assert!(!stale.present());
        // An add that replica had not seen stays.
        let mut newer = Member::add_delta(st(9, 1));
        newer.drop_seen(None, &seen(&[(1, 7)]));
        assert!(newer.present());
    }

    #[test]
    fn a_remove_the_other_replica_has_not_seen_stays() {
        let theirs = Member::add_delta(st(5, 1));
        let mut mine = theirs.clone();
        mine.merge(&mine.remove_delta());
        mine.drop_seen(Some(&theirs), &seen(&[(1, 5)]));
        mine.merge(&theirs);
        assert!(!mine.present());
    }
}
