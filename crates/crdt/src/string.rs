//! A string that is also a counter.

use crate::counter::Counter;
use crate::{Merge, Stamp, keep_later};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The value of a string key or a hash field.
///
/// Its view (what `GET` answers) is the latest visible `SET` plus the increments no reset has
/// observed. Components, each a lattice:
/// - `written`: the latest `SET`/`APPEND` (last writer wins);
/// - `cleared`: the latest write a `DEL` observed; a written value at or below it is gone;
/// - `counter`: per node, its running increment total, and what `SET`s and `DEL`s observed
///   of them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrState {
    written: Option<(Stamp, Bytes)>,
    cleared: Option<Stamp>,
    counter: Counter,
}

/// The value is not an integer, so it cannot be incremented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("value is not an integer or out of range")]
pub struct NotInteger;

impl Merge for StrState {
    fn merge(&mut self, other: &Self) {
        keep_later(&mut self.written, &other.written);
        self.cleared = self.cleared.max(other.cleared);
        self.counter.merge(&other.counter);
    }
}

impl StrState {
    fn written_visible(&self) -> Option<&(Stamp, Bytes)> {
        self.written
            .as_ref()
            .filter(|(s, _)| Some(*s) > self.cleared)
    }

    /// Whether the value exists (a visible `SET`, or increments since the last reset).
    pub fn exists(&self) -> bool {
        self.written_visible().is_some() || self.counter.counting()
    }

    /// The latest live write, which decides the key's type when types clash.
    pub fn top(&self) -> Option<Stamp> {
        let written = self.written_visible().map(|(s, _)| *s);
        written.max(self.counter.top())
    }

    /// What `GET` answers, or `None` when the value does not exist.
    ///
    /// When the latest `SET` wrote something that is not an integer and concurrent increments
    /// made elsewhere arrive, the string wins and those increments are not shown: there is
    /// no number to add them to. Every replica decides the same way.
    pub fn value(&self) -> Option<Bytes> {
        match (self.written_visible(), self.counter.counting()) {
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
                Some(Bytes::from(
                    base.saturating_add(self.counter.total()).to_string(),
                ))
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
        self.counter.drop_seen(theirs.map(|t| &t.counter), seen);
    }

    /// The delta of `SET value` at `stamp`: a new written value that resets every contribution
    /// observed here.
    pub fn set_delta(&self, stamp: Stamp, value: Bytes) -> StrState {
        StrState {
            written: Some((stamp, value)),
            cleared: None,
            counter: self.counter.reset_delta(stamp),
        }
    }

    /// The delta of deleting this value at `stamp`: it clears what it observed; concurrent
    /// writes it did not observe survive.
    pub fn delete_delta(&self, stamp: Stamp) -> StrState {
        StrState {
            written: None,
            cleared: self.written.as_ref().map(|(s, _)| *s),
            counter: self.counter.reset_delta(stamp),
        }
    }

    /// The delta of adding `by` (which the caller checked for overflow) at `stamp` (see
    /// [`crate::Contribution`] for when a new generation opens).
    pub fn incr_delta(&self, stamp: Stamp, by: i64) -> StrState {
        StrState {
            written: None,
            cleared: None,
            counter: self.counter.incr_delta(stamp, by),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeId;
    use hlc::Timestamp;

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
        assert_eq!(inc.counter.contributions[&NodeId(1)].since, Timestamp(3));
        apply(&mut a, inc);
        assert_eq!(a.counter(), Ok(7));
        // An increment while some of the total is unobserved continues the generation.
        let more = a.incr_delta(st(4, 1), 1);
        assert_eq!(more.counter.contributions[&NodeId(1)].since, Timestamp(3));
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
