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
}
