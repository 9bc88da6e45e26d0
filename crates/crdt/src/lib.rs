//! Meridian's merge types (design section 3).
//!
//! Every value Meridian stores is a state-based CRDT: a join-semilattice whose [`Merge::merge`]
//! is commutative, associative and idempotent. A write is applied by computing a *delta* (a
//! small state holding only what the write changed) and merging it into the stored state. A
//! node applies its own writes and its peers' writes the same way, so replicas may receive
//! deltas in any order, more than once, by any path, and still converge.
//!
//! A tour:
//! - [`Stamp`]: an HLC timestamp and the writing node: the total order every node computes the
//!   same way.
//! - [`StrState`]: a string that is also a counter. `SET` is last-writer-wins; `INCR` adds to a
//!   per-node contribution; a `SET` resets the contributions its node had observed, so
//!   increments it had not observed are added on top.
//! - A hash is a [`StrState`] per field; a set a [`Member`] per member (add wins: a remove
//!   takes away only the adds it observed); a list an [`Elem`] per element, stored under its
//!   [`Position`] (a sequence CRDT: concurrent pushes are all kept, in one order); a sorted
//!   set a [`ZMember`] per member (add wins; the score is last-writer-wins with concurrent
//!   increments summed on top). Fields, members and elements are separate states, stored and
//!   replicated one by one.
//! - [`Record`]: one key's header: its string part, the [`Collection`] headers of its hash and
//!   set parts, and its expiry. When concurrent writes gave one key two types, the type with
//!   the latest write is the one clients see; the other stays merged underneath, so the rule
//!   is itself a lattice.
//!
//! What a delete leaves behind is a tombstone (what it observed), kept so that a late
//! concurrent write can be judged; tombstones are collected once every replica has seen them.
#![deny(missing_docs)]

mod counter;
mod list;
mod record;
mod set;
mod string;
mod zset;

pub use counter::{Contribution, Counter, Float, Number, Reset};
pub use list::{Elem, Position};
pub use record::{Collection, Kind, Lens, Record};
pub use set::Member;
pub use string::{NotInteger, StrState};
pub use zset::{ZMember, order_entry, score_key, split_order_entry};

use hlc::Timestamp;
use serde::{Deserialize, Serialize};

/// The id a node writes under, in stamps, logs and counter slots: 64 bits, so that every node
/// orders equal timestamps the same way without carrying names in every value. A node records
/// its id in its data directory when the directory is created (`node::engine`): a hash of its
/// name (`--node-id`), mixed with a random number for directories created since ids were
/// recorded, so a wiped node comes back under a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl NodeId {
    /// The id of the node named `name`: FNV-1a over its bytes, fixed forever because stored
    /// values carry it.
    pub fn from_name(name: &str) -> NodeId {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in name.as_bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        NodeId(hash)
    }
}

/// When and where a write happened. Ordered by HLC, then node id: a total order on writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    /// The writing node's hybrid logical clock at the write.
    pub hlc: Timestamp,
    /// The writing node.
    pub node: NodeId,
}

impl Stamp {
    /// A stamp from its parts.
    pub fn new(hlc: Timestamp, node: NodeId) -> Stamp {
        Stamp { hlc, node }
    }
}

/// Which writes a replica's state has seen: per writing node, the stamp clock of its latest
/// write applied. A node's clock only grows, and it applies its peers' writes in each
/// writer's order, so the writes of node `n` a state includes are exactly those stamped at or
/// before `seen[n]`.
///
/// It makes merges of whole states safe once tombstones are collected (an anti-entropy
/// repair): a replica that had seen a write and no longer holds it deleted it and collected
/// its tombstone, so another replica's copy of that write must not be merged back (it would
/// come back to life). The `drop_seen` methods of the merge types drop such copies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen(std::collections::BTreeMap<NodeId, Timestamp>);

impl Seen {
    /// Whether the write stamped `stamp` is in this state's past.
    pub fn covers(&self, stamp: Stamp) -> bool {
        self.0.get(&stamp.node).is_some_and(|hlc| stamp.hlc <= *hlc)
    }

    /// `node`'s writes up to `hlc` were applied.
    pub fn advance(&mut self, node: NodeId, hlc: Timestamp) {
        let mine = self.0.entry(node).or_insert(hlc);
        *mine = (*mine).max(hlc);
    }

    /// Everything either saw.
    pub fn merge(&mut self, other: &Seen) {
        for (node, hlc) in &other.0 {
            self.advance(*node, *hlc);
        }
    }
}

/// A join-semilattice.
///
/// Laws, for all states `a`, `b`, `c` (checked by property tests in this crate):
/// - commutative: `a ⊔ b == b ⊔ a`
/// - associative: `(a ⊔ b) ⊔ c == a ⊔ (b ⊔ c)`
/// - idempotent: `a ⊔ a == a`
pub trait Merge {
    /// Joins `other` into `self`.
    fn merge(&mut self, other: &Self);
}

impl<T: Merge + Clone> Merge for Option<T> {
    fn merge(&mut self, other: &Self) {
        match (self.as_mut(), other) {
            (_, None) => {}
            (None, Some(o)) => *self = Some(o.clone()),
            (Some(s), Some(o)) => s.merge(o),
        }
    }
}

/// Encodes a field, member or record state for storage and the wire (postcard, compact).
pub fn encode<T: Serialize>(state: &T) -> Vec<u8> {
    postcard::to_stdvec(state).expect("merge states always serialise")
}

/// Decodes what [`encode`] wrote.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}

/// Joins two maps key by key.
fn merge_map<K: Ord + Clone, V: Merge + Clone>(
    into: &mut std::collections::BTreeMap<K, V>,
    from: &std::collections::BTreeMap<K, V>,
) {
    for (k, v) in from {
        match into.get_mut(k) {
            Some(mine) => mine.merge(v),
            None => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Keeps the greater of two stamped values (last writer wins). Equal stamps name the same
/// write, so which copy is kept does not matter.
fn keep_later<T: Clone>(into: &mut Option<(Stamp, T)>, from: &Option<(Stamp, T)>) {
    if let Some((s, v)) = from
        && into.as_ref().is_none_or(|(mine, _)| s > mine)
    {
        *into = Some((*s, v.clone()));
    }
}

#[cfg(test)]
mod laws;
