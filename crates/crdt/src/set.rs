//! An add-wins (observed-remove) set.

use crate::{Merge, NodeId, Stamp};
use bytes::Bytes;
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

/// The members of a set key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetState {
    members: BTreeMap<Bytes, Member>,
}

impl Merge for SetState {
    fn merge(&mut self, other: &Self) {
        crate::merge_map(&mut self.members, &other.members);
    }
}

impl SetState {
    /// Whether `member` is in the set.
    pub fn contains(&self, member: &[u8]) -> bool {
        self.members.get(member).is_some_and(Member::present)
    }

    /// The members present, in byte order.
    pub fn members(&self) -> impl Iterator<Item = &Bytes> {
        self.members
            .iter()
            .filter(|(_, m)| m.present())
            .map(|(k, _)| k)
    }

    /// How many members are present.
    pub fn len(&self) -> usize {
        self.members().count()
    }

    /// Whether no member is present.
    pub fn is_empty(&self) -> bool {
        self.members().next().is_none()
    }

    /// The latest live add, which decides the key's type when types clash.
    pub fn top(&self) -> Option<Stamp> {
        self.members.values().flat_map(Member::live_adds).max()
    }

    /// The delta of adding `members` at `stamp`.
    pub fn add_delta<'a>(stamp: Stamp, members: impl IntoIterator<Item = &'a Bytes>) -> SetState {
        let mut delta = SetState::default();
        for m in members {
            let entry = delta.members.entry(m.clone()).or_default();
            entry.added.insert(stamp.node, stamp.hlc);
        }
        delta
    }

    /// The delta of removing `members`: each loses the adds observed here.
    pub fn remove_delta<'a>(&self, members: impl IntoIterator<Item = &'a Bytes>) -> SetState {
        let mut delta = SetState::default();
        for m in members {
            if let Some(current) = self.members.get(m).filter(|c| c.present()) {
                delta.members.insert(
                    m.clone(),
                    Member {
                        added: BTreeMap::new(),
                        removed: current.added.clone(),
                    },
                );
            }
        }
        delta
    }

    /// The delta of removing every member present.
    pub fn clear_delta(&self) -> SetState {
        let present: Vec<Bytes> = self.members().cloned().collect();
        self.remove_delta(present.iter())
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
        let x = Bytes::from("x");
        let mut a = SetState::default();
        a.merge(&SetState::add_delta(st(1, 1), [&x]));
        let mut b = a.clone();
        let rm = a.remove_delta([&x]);
        let add = SetState::add_delta(st(2, 2), [&x]);
        a.merge(&rm);
        assert!(!a.contains(&x));
        b.merge(&add);
        a.merge(&add);
        b.merge(&rm);
        assert!(a.contains(&x) && b.contains(&x));
        assert_eq!(a, b);
    }

    #[test]
    fn re_add_after_remove_from_same_node() {
        let x = Bytes::from("x");
        let mut a = SetState::default();
        a.merge(&SetState::add_delta(st(1, 1), [&x]));
        let rm = a.remove_delta([&x]);
        a.merge(&rm);
        a.merge(&SetState::add_delta(st(3, 1), [&x]));
        assert!(a.contains(&x));
        assert_eq!(a.len(), 1);
    }
}
