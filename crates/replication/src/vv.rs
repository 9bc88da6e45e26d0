//! Version vectors: per origin node, the highest contiguous sequence number held.

use crdt::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// For each origin, the highest sequence number such that every entry of that origin up to it
/// is held. An origin that is absent counts as 0 (nothing held). Sequence numbers start at 1.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionVector(BTreeMap<NodeId, u64>);

impl VersionVector {
    /// The empty vector (nothing held).
    pub fn new() -> VersionVector {
        VersionVector::default()
    }

    /// The highest contiguous sequence of `origin` held.
    pub fn get(&self, origin: NodeId) -> u64 {
        self.0.get(&origin).copied().unwrap_or(0)
    }

    /// Records that everything of `origin` up to `seq` is held. Never moves backwards.
    pub fn advance(&mut self, origin: NodeId, seq: u64) {
        let slot = self.0.entry(origin).or_insert(0);
        *slot = (*slot).max(seq);
    }

    /// Sets what is held of `origin` to `seq`, backwards too (for a sender's optimistic view
    /// of a peer, when what it shipped may have been lost).
    pub fn set(&mut self, origin: NodeId, seq: u64) {
        if seq == 0 {
            self.0.remove(&origin);
        } else {
            self.0.insert(origin, seq);
        }
    }

    /// Whether everything `other` holds is held here too.
    pub fn dominates(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|(o, &s)| self.get(*o) >= s)
    }

    /// Joins `other` in: the element-wise maximum.
    pub fn merge(&mut self, other: &VersionVector) {
        for (o, &s) in &other.0 {
            self.advance(*o, s);
        }
    }

    /// The element-wise minimum over the origins of either.
    pub fn meet(&self, other: &VersionVector) -> VersionVector {
        let mut out = VersionVector::new();
        for o in self.0.keys().chain(other.0.keys()) {
            let s = self.get(*o).min(other.get(*o));
            if s > 0 {
                out.0.insert(*o, s);
            }
        }
        out
    }

    /// Origins with what is held of each.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, u64)> + '_ {
        self.0.iter().map(|(o, s)| (*o, *s))
    }

    /// The same vector without `origin`.
    pub fn without(&self, origin: NodeId) -> VersionVector {
        let mut out = self.clone();
        out.0.remove(&origin);
        out
    }

    /// How many entries this holds that `other` does not.
    pub fn ahead_of(&self, other: &VersionVector) -> u64 {
        self.iter()
            .map(|(o, s)| s.saturating_sub(other.get(o)))
            .sum()
    }
}

impl FromIterator<(NodeId, u64)> for VersionVector {
    fn from_iter<I: IntoIterator<Item = (NodeId, u64)>>(iter: I) -> Self {
        let mut vv = VersionVector::new();
        for (o, s) in iter {
            vv.advance(o, s);
        }
        vv
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vv() -> impl Strategy<Value = VersionVector> {
        proptest::collection::vec((0u64..4, 0u64..20), 0..6)
            .prop_map(|v| v.into_iter().map(|(o, s)| (NodeId(o), s)).collect())
    }

    proptest! {
        #[test]
        fn merge_dominates_both(a in vv(), b in vv()) {
            let mut m = a.clone();
            m.merge(&b);
            prop_assert!(m.dominates(&a) && m.dominates(&b));
            prop_assert_eq!(m.ahead_of(&a), b.ahead_of(&a));
        }

        #[test]
        fn meet_is_dominated_by_both(a in vv(), b in vv()) {
            let m = a.meet(&b);
            prop_assert!(a.dominates(&m) && b.dominates(&m));
            prop_assert_eq!(m.meet(&a), m.clone());
        }
    }

    #[test]
    fn absent_origin_is_zero_and_advance_never_goes_back() {
        let mut v = VersionVector::new();
        assert_eq!(v.get(NodeId(7)), 0);
        v.advance(NodeId(7), 5);
        v.advance(NodeId(7), 3);
        assert_eq!(v.get(NodeId(7)), 5);
        assert!(v.dominates(&VersionVector::new()));
        assert!(!VersionVector::new().dominates(&v));
    }
}
