//! One member of a sorted set.

use crate::counter::{Counter, Float};
use crate::{Member, Merge, Stamp, keep_later};
use serde::{Deserialize, Serialize};

/// A sorted set member: whether it is in the set, and its score.
///
/// - Membership is a set member's ([`Member`]): add wins, a remove (`ZREM`, a pop) takes away
///   the adds it observed.
/// - The score is the latest `ZADD`'s (last writer wins) plus the `ZINCRBY` increments no
///   `ZADD` or `ZREM` observed, summed per node as counters are ([`Counter`]): concurrent
///   increments in two regions both count.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZMember {
    member: Member,
    written: Option<(Stamp, Float)>,
    cleared: Option<Stamp>,
    counter: Counter<Float>,
}

impl Merge for ZMember {
    fn merge(&mut self, other: &Self) {
        self.member.merge(&other.member);
        keep_later(&mut self.written, &other.written);
        self.cleared = self.cleared.max(other.cleared);
        self.counter.merge(&other.counter);
    }
}

impl ZMember {
    /// Whether the member is in the set.
    pub fn present(&self) -> bool {
        self.member.present()
    }

    /// The member's score while it is in the set. Increments summed from several regions can
    /// meet as `inf + -inf` (each region refuses a NaN it would make itself): such a score
    /// reads as 0 everywhere.
    pub fn score(&self) -> Option<f64> {
        if !self.present() {
            return None;
        }
        let base = (self.written)
            .filter(|(s, _)| Some(*s) > self.cleared)
            .map_or(0.0, |(_, v)| v.0);
        let score = base + self.counter.total().0;
        Some(if score.is_nan() { 0.0 } else { score })
    }

    /// The latest add no remove observed: the key's latest write, for its type.
    pub fn top(&self) -> Option<Stamp> {
        self.member.top()
    }

    /// The delta of `ZADD` setting the score to `score` at `stamp`: it adds the member and
    /// resets the increments observed here.
    pub fn set_delta(&self, stamp: Stamp, score: f64) -> ZMember {
        ZMember {
            member: Member::add_delta(stamp),
            written: Some((stamp, Float(score))),
            cleared: None,
            counter: self.counter.reset_delta(stamp),
        }
    }

    /// The delta of `ZINCRBY by` at `stamp`: it adds the member (at 0 when it was absent) and
    /// adds `by` to this node's total.
    pub fn incr_delta(&self, stamp: Stamp, by: f64) -> ZMember {
        ZMember {
            member: Member::add_delta(stamp),
            written: None,
            cleared: None,
            counter: self.counter.incr_delta(stamp, Float(by)),
        }
    }

    /// The delta of removing the member at `stamp`: it takes away the adds, score and
    /// increments observed here; concurrent ones survive.
    pub fn remove_delta(&self, stamp: Stamp) -> ZMember {
        ZMember {
            member: self.member.remove_delta(),
            written: None,
            cleared: self.written.map(|(s, _)| s),
            counter: self.counter.reset_delta(stamp),
        }
    }

    /// Drops what a replica holding `theirs` had seen (`seen` says which) and no longer holds:
    /// it removed the member and collected the tombstone. See [`crate::Seen`].
    pub fn drop_seen(&mut self, theirs: Option<&ZMember>, seen: &crate::Seen) {
        self.member.drop_seen(theirs.map(|t| &t.member), seen);
        if let Some((stamp, _)) = &self.written {
            let held = theirs.and_then(|t| t.written.as_ref().map(|(s, _)| s)) >= Some(stamp);
            if !held && seen.covers(*stamp) {
                self.written = None;
            }
        }
        self.counter.drop_seen(theirs.map(|t| &t.counter), seen);
    }
}

/// The storage name of a member's place in its set's order: its score, as 8 bytes whose byte
/// order is the scores' order, a zero byte, and the member. (`-0` sorts as `0`.)
pub fn order_entry(score: f64, member: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + member.len());
    out.extend_from_slice(&score_key(score));
    out.push(0);
    out.extend_from_slice(member);
    out
}

/// Reads back what [`order_entry`] wrote.
pub fn split_order_entry(entry: &[u8]) -> Option<(f64, &[u8])> {
    let (score, rest) = entry.split_at_checked(8)?;
    let (&0, member) = rest.split_first()? else {
        return None;
    };
    let bits = u64::from_be_bytes(score.try_into().ok()?);
    let bits = if bits >> 63 == 1 {
        bits & !(1 << 63)
    } else {
        !bits
    };
    Some((f64::from_bits(bits), member))
}

/// 8 bytes whose byte order is the order of the scores.
pub fn score_key(score: f64) -> [u8; 8] {
    let score = if score == 0.0 { 0.0 } else { score };
    let bits = score.to_bits();
    let bits = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    };
    bits.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeId;
    use hlc::Timestamp;

    fn st(hlc: u64, node: u64) -> Stamp {
        Stamp::new(Timestamp(hlc), NodeId(node))
    }

    #[test]
    fn concurrent_increments_both_count_on_top_of_the_add() {
        let mut a = ZMember::default();
        a.merge(&a.set_delta(st(1, 1), 10.0));
        let mut b = a.clone();
        let da = a.incr_delta(st(2, 1), 1.5);
        let db = b.incr_delta(st(2, 2), 2.0);
        a.merge(&da);
        b.merge(&db);
        a.merge(&db);
        b.merge(&da);
        assert_eq!(a, b);
        assert_eq!(a.score(), Some(13.5));
    }

    #[test]
    fn an_add_concurrent_with_a_remove_wins_and_a_remove_resets_the_score() {
        let mut a = ZMember::default();
        a.merge(&a.set_delta(st(1, 1), 5.0));
        a.merge(&a.incr_delta(st(2, 1), 1.0));
        let rm = a.remove_delta(st(3, 1));
        let mut b = a.clone();
        a.merge(&rm);
        assert_eq!(a.score(), None);
        a.merge(&a.incr_delta(st(4, 1), 2.0));
        assert_eq!(a.score(), Some(2.0), "ZINCRBY after ZREM starts from 0");
        let add = b.set_delta(st(3, 2), 7.0);
        b.merge(&add);
        b.merge(&rm);
        assert_eq!(b.score(), Some(7.0));
    }

    #[test]
    fn order_entries_sort_as_scores() {
        let scores = [
            f64::NEG_INFINITY,
            -1e300,
            -2.5,
            -0.0,
            0.0,
            1e-300,
            3.0,
            1e300,
            f64::INFINITY,
        ];
        let mut entries: Vec<_> = scores.iter().map(|s| order_entry(*s, b"m")).collect();
        let sorted = entries.clone();
        entries.sort();
        assert_eq!(entries, sorted);
        assert_eq!(
            split_order_entry(&order_entry(-2.5, b"x\0y")),
            Some((-2.5, &b"x\0y"[..]))
        );
        assert_eq!(
            split_order_entry(&order_entry(-0.0, b"")),
            Some((0.0, &b""[..]))
        );
    }
}
