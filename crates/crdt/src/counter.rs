//! The counting part of a value: per node, a running total of its increments, and what the
//! resets of the value (`SET`, `DEL`, `ZADD`, `ZREM`) observed of those totals. Integers count
//! strings and hash fields (`INCR`), floats the scores of sorted set members (`ZINCRBY`).

use crate::{Merge, NodeId, Stamp};
use hlc::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A number a counter counts in.
pub trait Number:
    Copy + Default + PartialEq + Eq + std::fmt::Debug + Serialize + DeserializeOwned
{
    /// `self + by` as a node's running total grows.
    fn plus(self, by: Self) -> Self;
    /// The sum of `(total, baseline)` differences over nodes, in node order (so every replica
    /// computes it alike).
    fn sum_of(parts: impl Iterator<Item = (Self, Self)>) -> Self;
}

/// Integer totals wrap; their sum is computed wide and clamped: replicas that each stayed in
/// range may together overflow, and every replica clamps alike.
impl Number for i64 {
    fn plus(self, by: i64) -> i64 {
        self.wrapping_add(by)
    }
    fn sum_of(parts: impl Iterator<Item = (i64, i64)>) -> i64 {
        let total: i128 = parts.map(|(t, b)| i128::from(t) - i128::from(b)).sum();
        total.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
}

/// A 64-bit float that equals itself bit for bit (so states holding one compare as values).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Float(pub f64);

impl PartialEq for Float {
    fn eq(&self, other: &Float) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Float {}

impl Number for Float {
    fn plus(self, by: Float) -> Float {
        Float(self.0 + by.0)
    }
    fn sum_of(parts: impl Iterator<Item = (Float, Float)>) -> Float {
        Float(parts.map(|(t, b)| t.0 - b.0).sum())
    }
}

/// One node's running total of increments on one counter. Only that node writes it, so the
/// version (the HLC of its latest increment) orders its values.
///
/// A total runs within a *generation*, named by the HLC of the increment that opened it. A
/// node opens a new generation when it increments a counter whose total a reset has observed
/// in full, or that it holds no total for. This is what lets a deleted counter be forgotten
/// (its tombstone collected): a node that no longer holds its old total starts a new
/// generation at zero, and a replica that still holds the tombstone counts the new generation
/// in full instead of subtracting the old total's baseline from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution<N = i64> {
    /// HLC of the node's latest increment.
    pub version: Timestamp,
    /// Sum of the node's increments in this generation.
    pub sum: N,
    /// The generation: the HLC of the increment that opened it.
    pub since: Timestamp,
}

impl<N: Number> Contribution<N> {
    /// What a reset that saw `base` of this node observed of this total: `None` when it
    /// observed all of it, else the part to subtract (zero for a generation it never saw).
    fn observed_part(&self, base: Option<&Contribution<N>>) -> Option<N> {
        match base {
            None => Some(N::default()),
            Some(b) if (self.since, self.version) <= (b.since, b.version) => None,
            Some(b) if self.since == b.since => Some(b.sum),
            Some(_) => Some(N::default()),
        }
    }
}

impl<N: Copy> Merge for Contribution<N> {
    fn merge(&mut self, other: &Self) {
        if other.version > self.version {
            *self = *other;
        }
    }
}

/// What the resets of a value observed of the counter contributions, so that views subtract
/// them: increments none of them observed stay on top.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reset<N = i64> {
    /// The latest resetting write.
    pub stamp: Stamp,
    /// Each node's contribution as the resetting writes saw it.
    pub baseline: BTreeMap<NodeId, Contribution<N>>,
}

/// Resets join: what any of them observed stays observed (per node the latest total seen).
/// Were the latest reset to replace the others, a reset made by a node that had forgotten a
/// collected tombstone (and so observed nothing of the totals it held) would make the totals
/// that tombstone's reset had observed count again at every replica still holding them
/// (found by the simulator once tombstones were collected).
impl<N: Copy> Merge for Reset<N> {
    fn merge(&mut self, other: &Self) {
        self.stamp = self.stamp.max(other.stamp);
        crate::merge_map(&mut self.baseline, &other.baseline);
    }
}

/// Per node its running total, and what resets observed of them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter<N = i64> {
    pub(crate) contributions: BTreeMap<NodeId, Contribution<N>>,
    reset: Option<Reset<N>>,
}

impl<N: Number> Merge for Counter<N> {
    fn merge(&mut self, other: &Self) {
        crate::merge_map(&mut self.contributions, &other.contributions);
        self.reset.merge(&other.reset);
    }
}

impl<N: Number> Counter<N> {
    fn baseline(&self, node: &NodeId) -> Option<&Contribution<N>> {
        self.reset.as_ref().and_then(|r| r.baseline.get(node))
    }

    /// Contributions with increments no reset has observed, as (node, contribution, baseline sum).
    fn unobserved(&self) -> impl Iterator<Item = (&NodeId, &Contribution<N>, N)> {
        self.contributions.iter().filter_map(|(node, c)| {
            c.observed_part(self.baseline(node))
                .map(|base| (node, c, base))
        })
    }

    /// Whether some increment is not observed by any reset.
    pub fn counting(&self) -> bool {
        self.unobserved().next().is_some()
    }

    /// The latest increment no reset observed.
    pub fn top(&self) -> Option<Stamp> {
        self.unobserved()
            .map(|(n, c, _)| Stamp::new(c.version, *n))
            .max()
    }

    /// The sum of the increments no reset observed.
    pub fn total(&self) -> N {
        N::sum_of(self.unobserved().map(|(_, c, base)| (c.sum, base)))
    }

    /// Drops the increments a replica holding `theirs` had seen (`seen` says which) and no
    /// longer holds. What resets observed stays: it only hides increments.
    pub fn drop_seen(&mut self, theirs: Option<&Counter<N>>, seen: &crate::Seen) {
        self.contributions.retain(|node, c| {
            let held = theirs
                .and_then(|t| t.contributions.get(node))
                .is_some_and(|t| t.version >= c.version);
            held || !seen.covers(Stamp::new(c.version, *node))
        });
    }

    /// The delta of a reset at `stamp`: it observes every contribution held here.
    pub fn reset_delta(&self, stamp: Stamp) -> Counter<N> {
        Counter {
            contributions: BTreeMap::new(),
            reset: Some(Reset {
                stamp,
                baseline: self.contributions.clone(),
            }),
        }
    }

    /// The delta of adding `by` at `stamp`: the node's total goes on while some of it is
    /// unobserved; otherwise a new generation opens (see [`Contribution`]).
    pub fn incr_delta(&self, stamp: Stamp, by: N) -> Counter<N> {
        let open = self
            .contributions
            .get(&stamp.node)
            .filter(|c| c.observed_part(self.baseline(&stamp.node)).is_some());
        let contribution = match open {
            Some(c) => Contribution {
                version: stamp.hlc,
                sum: c.sum.plus(by),
                since: c.since,
            },
            None => Contribution {
                version: stamp.hlc,
                sum: by,
                since: stamp.hlc,
            },
        };
        Counter {
            contributions: BTreeMap::from([(stamp.node, contribution)]),
            reset: None,
        }
    }
}
