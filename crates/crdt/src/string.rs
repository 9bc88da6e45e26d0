//! A string that is also a counter.

use crate::{Merge, NodeId, Stamp, keep_later};
use bytes::Bytes;
use hlc::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One node's running total of increments on one counter. Only that node writes it, so the
/// version (the HLC of its latest increment) orders its values.
///
/// A total runs within a *generation*, named by the HLC of the increment that opened it. A
/// node opens a new generation when it increments a counter whose total a reset (`SET`,
/// `DEL`) has observed in full, or that it holds no total for. This is what lets a deleted
/// counter be forgotten (its tombstone collected): a node that no longer holds its old total
/// starts a new generation at zero, and a replica that still holds the tombstone counts the
/// new generation in full instead of subtracting the old total's baseline from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    /// HLC of the node's latest increment.
    pub version: Timestamp,
    /// Sum of the node's increments in this generation (wrapping; see [`StrState::counter`]).
    pub sum: i64,
    /// The generation: the HLC of the increment that opened it.
    pub since: Timestamp,
}

impl Contribution {
    /// What a reset that saw `base` of this node observed of this total: `None` when it
    /// observed all of it, else the part to subtract (zero for a generation it never saw).
    fn observed_part(&self, base: Option<&Contribution>) -> Option<i64> {
        match base {
            None => Some(0),
            Some(b) if (self.since, self.version) <= (b.since, b.version) => None,
            Some(b) if self.since == b.since => Some(b.sum),
            Some(_) => Some(0),
        }
    }
}

impl Merge for Contribution {
    fn merge(&mut self, other: &Self) {
        if other.version > self.version {
            *self = *other;
        }
    }
}

/// What the `SET`s and `DEL`s of a value observed of the counter contributions, so that views
/// subtract them: increments none of them observed stay on top.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reset {
    /// The resetting write.
    pub stamp: Stamp,
    /// Each node's contribution as the resetting write saw it.
    pub baseline: BTreeMap<NodeId, Contribution>,
}

/// The value of a string key or a hash field.
///
/// Its view (what `GET` answers) is the latest visible `SET` plus the increments no reset has
/// observed. Components, each a lattice:
/// - `written`: the latest `SET`/`APPEND` (last writer wins);
/// - `cleared`: the latest write a `DEL` observed; a written value at or below it is gone;
/// - `contributions`: per node, its running increment total;
/// - `reset`: the latest `SET`/`DEL` stamp with the contributions any of them observed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrState {
    written: Option<(Stamp, Bytes)>,
    cleared: Option<Stamp>,
    contributions: BTreeMap<NodeId, Contribution>,
    reset: Option<Reset>,
}

/// The value is not an integer, so it cannot be incremented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("value is not an integer or out of range")]
pub struct NotInteger;

impl Merge for StrState {
    fn merge(&mut self, other: &Self) {
        keep_later(&mut self.written, &other.written);
        self.cleared = self.cleared.max(other.cleared);
        crate::merge_map(&mut self.contributions, &other.contributions);
        self.reset.merge(&other.reset);
    }
}

/// Resets join: what any of them observed stays observed (per node the latest total seen).
/// Were the latest reset to replace the others, a reset made by a node that had forgotten a
/// collected tombstone (and so observed nothing of the totals it held) would make the totals
/// that tombstone's reset had observed count again at every replica still holding them
/// (found by the simulator once tombstones were collected).
impl Merge for Reset {
    fn merge(&mut self, other: &Self) {
        self.stamp = self.stamp.max(other.stamp);
        crate::merge_map(&mut self.baseline, &other.baseline);
    }
}

impl StrState {
    fn written_visible(&self) -> Option<&(Stamp, Bytes)> {
        self.written
            .as_ref()
            .filter(|(s, _)| Some(*s) > self.cleared)
    }

    fn baseline(&self, node: &NodeId) -> Option<&Contribution> {
        self.reset.as_ref().and_then(|r| r.baseline.get(node))
    }

    /// Contributions with increments no reset has observed, as (node, contribution, baseline sum).
    fn unobserved(&self) -> impl Iterator<Item = (&NodeId, &Contribution, i64)> {
        self.contributions.iter().filter_map(|(node, c)| {
            c.observed_part(self.baseline(node))
                .map(|base| (node, c, base))
        })
    }

    /// Whether the value exists (a visible `SET`, or increments since the last reset).
    pub fn exists(&self) -> bool {
        self.written_visible().is_some() || self.unobserved().next().is_some()
    }

    /// The latest live write, which decides the key's type when types clash.
    pub fn top(&self) -> Option<Stamp> {
        let written = self.written_visible().map(|(s, _)| *s);
        let counted = self
            .unobserved()
            .map(|(n, c, _)| Stamp::new(c.version, *n))
            .max();
        written.max(counted)
    }

    /// Sum of the increments no reset observed. Computed wide and clamped: replicas that each
    /// stayed in range may together overflow, and every replica clamps alike.
    fn delta(&self) -> i64 {
        let total: i128 = self
            .unobserved()
            .map(|(_, c, base)| i128::from(c.sum) - i128::from(base))
            .sum();
        total.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// What `GET` answers, or `None` when the value does not exist.
    ///
    /// When the latest `SET` wrote something that is not an integer and concurrent increments
    /// made elsewhere arrive, the string wins and those increments are not shown: there is
    /// no number to add them to. Every replica decides the same way.
    pub fn value(&self) -> Option<Bytes> {
        let has_delta = self.unobserved().next().is_some();
        match (self.written_visible(), has_delta) {
            (None, false) => None,
            (Some((_, v)), false) => Some(v.clone()),
            (written, true) => {
                let base = match written {
                    None => 0,
                    Some((_, v)) => match resp::args::parse_i64(v) {
                        Some(n) => n,
                        None => return Some(v.clone()),
                    },
                };
                Some(Bytes::from(base.saturating_add(self.delta()).to_string()))
            }
        }
    }

    /// The value as a counter: 0 when absent, an error when it is not an integer.
    pub fn counter(&self) -> Result<i64, NotInteger> {
        match self.value() {
            None => Ok(0),
            Some(v) => resp::args::parse_i64(&v).ok_or(NotInteger),
        }
    }

    /// Drops the writes and increments a replica holding `theirs` had seen (`seen` says
    /// which) and no longer holds: it deleted them and collected the tombstone. What deletes
    /// observed (`cleared`, the reset) stays: it only hides writes. See [`crate::Seen`].
    pub fn drop_seen(&mut self, theirs: Option<&StrState>, seen: &crate::Seen) {
        if let Some((stamp, _)) = &self.written {
            let held = theirs.and_then(|t| t.written.as_ref().map(|(s, _)| s)) >= Some(stamp);
            if !held && seen.covers(*stamp) {
                self.written = None;
            }
        }
        self.contributions.retain(|node, c| {
            let held = theirs
                .and_then(|t| t.contributions.get(node))
                .is_some_and(|t| t.version >= c.version);
            held || !seen.covers(Stamp::new(c.version, *node))
        });
    }

    /// The delta of `SET value` at `stamp`: a new written value that resets every contribution
    /// observed here.
    pub fn set_delta(&self, stamp: Stamp, value: Bytes) -> StrState {
        StrState {
            written: Some((stamp, value)),
            cleared: None,
            contributions: BTreeMap::new(),
            reset: Some(Reset {
                stamp,
                baseline: self.contributions.clone(),
            }),
        }
    }

    /// The delta of deleting this value at `stamp`: it clears what it observed; concurrent
    /// writes it did not observe survive.
    pub fn delete_delta(&self, stamp: Stamp) -> StrState {
        StrState {
            written: None,
            cleared: self.written.as_ref().map(|(s, _)| *s),
            contributions: BTreeMap::new(),
            reset: Some(Reset {
                stamp,
                baseline: self.contributions.clone(),
            }),
        }
    }

    /// The delta of adding `by` (which the caller checked for overflow) at `stamp`: the node's
    /// total goes on while some of it is unobserved; otherwise a new generation opens (see
    /// [`Contribution`]).
    pub fn incr_delta(&self, stamp: Stamp, by: i64) -> StrState {
        let open = self
            .contributions
            .get(&stamp.node)
            .filter(|c| c.observed_part(self.baseline(&stamp.node)).is_some());
        let contribution = match open {
            Some(c) => Contribution {
                version: stamp.hlc,
                sum: c.sum.wrapping_add(by),
                since: c.since,
            },
            None => Contribution {
                version: stamp.hlc,
                sum: by,
                since: stamp.hlc,
            },
        };
        let mut contributions = BTreeMap::new();
        contributions.insert(stamp.node, contribution);
        StrState {
            written: None,
            cleared: None,
            contributions,
            reset: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(hlc: u64, node: u64) -> Stamp {
        Stamp::new(Timestamp(hlc), NodeId(node))
    }

    fn apply(s: &mut StrState, d: StrState) {
        s.merge(&d);
    }

    #[test]
    fn counters_from_three_nodes_sum_exactly() {
        let mut replicas = vec![StrState::default(); 3];
        let mut deltas = Vec::new();
        for (i, r) in replicas.iter_mut().enumerate() {
            for k in 0..5 {
                let d = r.incr_delta(st(10 + k, i as u64), 1 + i as i64);
                apply(r, d.clone());
                deltas.push(d);
            }
        }
        for r in &mut replicas {
            for d in &deltas {
                r.merge(d);
            }
            assert_eq!(r.counter(), Ok(5 + 10 + 15));
        }
    }

    #[test]
    fn set_resets_observed_increments_only() {
        let mut a = StrState::default();
        let d1 = a.incr_delta(st(1, 1), 5);
        apply(&mut a, d1.clone());
        let mut b = a.clone();
        // Concurrently: node 1 sets 100 having seen its +5; node 2 adds 3 unseen by that SET.
        let set = a.set_delta(st(5, 1), Bytes::from("100"));
        let inc = b.incr_delta(st(4, 2), 3);
        apply(&mut a, set.clone());
        apply(&mut b, inc.clone());
        a.merge(&inc);
        b.merge(&set);
        assert_eq!(a, b);
        assert_eq!(a.counter(), Ok(103));
    }

    #[test]
    fn delete_keeps_unobserved_concurrent_set() {
        let mut a = StrState::default();
        let first = a.set_delta(st(1, 1), Bytes::from("x"));
        apply(&mut a, first);
        let mut b = a.clone();
        let del = a.delete_delta(st(3, 1));
        let later = b.set_delta(st(2, 2), Bytes::from("y"));
        apply(&mut a, del.clone());
        assert_eq!(a.value(), None);
        a.merge(&later);
        b.merge(&del);
        b.merge(&later);
        assert_eq!(a.value(), Some(Bytes::from("y")));
        assert_eq!(a, b);
    }

    #[test]
    fn incr_after_delete_starts_from_zero() {
        let mut a = StrState::default();
        for k in 1..=3 {
            let d = a.incr_delta(st(k, 1), 10);
            apply(&mut a, d);
        }
        let d = a.delete_delta(st(4, 1));
        apply(&mut a, d);
        assert!(!a.exists());
        let d = a.incr_delta(st(5, 1), 1);
        apply(&mut a, d);
        assert_eq!(a.value(), Some(Bytes::from("1")));
    }

    #[test]
    fn a_node_that_forgot_a_deleted_counter_counts_from_zero_everywhere() {
        // Node 1 counted to 10; a delete observed it. Node 1 collects the tombstone (forgets
        // the key), node 2 still holds it; node 1 increments by 1.
        let mut held = StrState::default();
        let d = held.incr_delta(st(1, 1), 10);
        apply(&mut held, d);
        let del = held.delete_delta(st(2, 2));
        apply(&mut held, del);
        assert!(!held.exists());
        let mut forgot = StrState::default();
        let inc = forgot.incr_delta(st(3, 1), 1);
        apply(&mut forgot, inc.clone());
        held.merge(&inc);
        assert_eq!(forgot.counter(), Ok(1));
        assert_eq!(held.counter(), Ok(1));
    }

    #[test]
    fn a_reset_by_a_node_that_forgot_the_key_does_not_bring_back_observed_totals() {
        // Node 1 counted 4; node 2 deleted it (observing that). Node 1 then forgot the key
        // (collected), node 3 did not. A new life: node 2 increments, node 1 deletes again,
        // observing only what it holds now.
        let mut held = StrState::default();
        let d = held.incr_delta(st(1, 1), 4);
        apply(&mut held, d);
        let del = held.delete_delta(st(2, 2));
        apply(&mut held, del);
        let mut forgot = StrState::default();
        let inc = forgot.incr_delta(st(3, 2), 5);
        apply(&mut forgot, inc.clone());
        held.merge(&inc);
        let del = forgot.delete_delta(st(4, 1));
        apply(&mut forgot, del.clone());
        held.merge(&del);
        assert!(!forgot.exists());
        assert!(!held.exists(), "node 1's old total stays observed");
    }

    #[test]
    fn increments_after_a_reset_that_saw_them_open_a_new_generation() {
        let mut a = StrState::default();
        let d = a.incr_delta(st(1, 1), 10);
        apply(&mut a, d);
        let set = a.set_delta(st(2, 1), Bytes::from("5"));
        apply(&mut a, set);
        let inc = a.incr_delta(st(3, 1), 2);
        assert_eq!(inc.contributions[&NodeId(1)].since, Timestamp(3));
        apply(&mut a, inc);
        assert_eq!(a.counter(), Ok(7));
        // An increment while some of the total is unobserved continues the generation.
        let more = a.incr_delta(st(4, 1), 1);
        assert_eq!(more.contributions[&NodeId(1)].since, Timestamp(3));
        apply(&mut a, more);
        assert_eq!(a.counter(), Ok(8));
    }

    #[test]
    fn non_integer_set_wins_over_concurrent_increments() {
        let mut a = StrState::default();
        let set = a.set_delta(st(5, 1), Bytes::from("hello"));
        let inc = a.incr_delta(st(4, 2), 3);
        a.merge(&set);
        a.merge(&inc);
        assert_eq!(a.value(), Some(Bytes::from("hello")));
    }

    #[test]
    fn a_collected_counter_does_not_add_its_old_total_to_a_new_one() {
        // Mine: node 1 counted 5 at 10. Theirs: that total was deleted and collected, then
        // node 2 counted 1 at 20; they saw node 1 up to 10.
        let mut mine = StrState::default().incr_delta(st(10, 1), 5);
        let theirs = StrState::default().incr_delta(st(20, 2), 1);
        let mut seen = crate::Seen::default();
        seen.advance(NodeId(1), Timestamp(10));
        seen.advance(NodeId(2), Timestamp(20));
        mine.drop_seen(Some(&theirs), &seen);
        mine.merge(&theirs);
        assert_eq!(mine.counter(), Ok(1));
        // Increments they had not seen stay.
        let mut later = StrState::default().incr_delta(st(11, 1), 4);
        later.drop_seen(Some(&theirs), &seen);
        later.merge(&theirs);
        assert_eq!(later.counter(), Ok(5));
    }
}
