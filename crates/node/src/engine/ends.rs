//! Where the live parts of a list, or of a sorted set's order, begin and end.
//!
//! A pop removes a list's first (or last) element. On a cluster of one the element goes from
//! the store at once, elsewhere it stays as a tombstone until every region has seen the
//! removal; either way the storage engine keeps something under its name (its own tombstone
//! until compaction drops it), and a walk from that end of the list passes over all of them.
//! After 100k pushes, popping them one by one cost O(popped so far) each: 250 pops a second.
//! `ZPOPMIN` on a sorted set's order entries is the same.
//!
//! So the engine remembers, per key, a name below which nothing is live and one at or above
//! which nothing is live, learned from the walks rounds make (the first live part a walk
//! from an end meets). A write can only make a part live where it writes, so bounds are
//! widened over every part written: within a round (`Txn::bounds_of`) as it writes, and here,
//! before a batch commits, over every part the batch writes; after the commit, what the round
//! learned replaces them. Only the engine thread's rounds use the bounds: reads on other
//! threads read a view of the store (`Store::view`), which may be older than the bounds, and
//! walk from the real ends.
//! A walk from an end starts at the bound. Losing a bound is always safe (the walk starts at
//! the end again), so the map is bounded by dropping everything when it is full, and it lives
//! in memory only.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Mutex;
use storage::{Batch, MemberKind};

/// Most keys with bounds; past it the map starts over.
const KEYS_MAX: usize = 1 << 16;

/// Whether walks of `kind` keep bounds: the kinds popped from their ends.
pub fn bounded(kind: MemberKind) -> bool {
    matches!(kind, MemberKind::ListElem | MemberKind::ZOrder)
}

/// The parts a batch writes of the kinds whose walks keep bounds.
fn bounded_parts(batch: &Batch) -> impl Iterator<Item = (MemberKind, &Bytes, &Bytes)> {
    let parts = batch
        .member_puts
        .iter()
        .map(|(kind, key, name, _)| (*kind, key, name));
    parts.filter(|(kind, _, _)| bounded(*kind))
}

/// What is known of one key's live parts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bounds {
    /// Nothing live sorts before this name: where a walk from the first part starts
    /// (inclusive).
    pub first: Option<Bytes>,
    /// Nothing live sorts at or after this name: where a walk from the last part starts
    /// (exclusive).
    pub end: Option<Bytes>,
}

impl Bounds {
    /// Widens the bounds so that `name` is inside them.
    pub fn widen(&mut self, name: &Bytes) {
        if self.first.as_ref().is_some_and(|f| name < f) {
            self.first = Some(name.clone());
        }
        if self.end.as_ref().is_some_and(|e| name >= e) {
            self.end = Some(after(name));
        }
    }
}

/// Bounds a round learned of a key by walking it.
#[derive(Clone, Debug)]
pub struct Learned {
    pub kind: MemberKind,
    pub key: Bytes,
    pub bounds: Bounds,
}

/// The smallest name after `name` in byte order.
pub fn after(name: &[u8]) -> Bytes {
    let mut next = Vec::with_capacity(name.len() + 1);
    next.extend_from_slice(name);
    next.push(0);
    Bytes::from(next)
}

/// The bounds of every key walked lately. Written by the engine thread; read by it and by
/// connections running reads on their own threads.
#[derive(Debug, Default)]
pub struct Ends {
    map: Mutex<HashMap<(MemberKind, Bytes), Bounds>>,
}

impl Ends {
    /// What is known of `key`'s parts of `kind` (nothing when it was never walked).
    pub fn get(&self, kind: MemberKind, key: &Bytes) -> Bounds {
        let map = self.map.lock().expect("ends lock");
        map.get(&(kind, key.clone())).cloned().unwrap_or_default()
    }

    /// Before `batch` commits: widens the bounds of the keys it writes parts under, so that no
    /// reader ever skips a part that is stored.
    pub fn before_commit(&self, batch: &Batch) {
        self.widen(bounded_parts(batch));
    }

    /// After `batch` committed: takes what its round learned. The round kept those bounds
    /// wide over every part it made live after learning them, so they replace what is here
    /// (widening them again over the batch would undo what pops learned: a pop writes a
    /// tombstone where the part was).
    pub fn after_commit(&self, learned: Vec<Learned>) {
        self.learn(learned);
    }

    /// Widens the bounds of the keys that `writes` (kind, key, part name) write under, so
    /// that each written part is inside them.
    fn widen<'w>(&self, writes: impl Iterator<Item = (MemberKind, &'w Bytes, &'w Bytes)>) {
        let mut map = self.map.lock().expect("ends lock");
        if map.is_empty() {
            return;
        }
        for (kind, key, name) in writes {
            if let Some(b) = map.get_mut(&(kind, key.clone())) {
                b.widen(name);
            }
        }
    }

    /// Records what a committed round learned.
    fn learn(&self, learned: Vec<Learned>) {
        let mut map = self.map.lock().expect("ends lock");
        for Learned { kind, key, bounds } in learned {
            if map.len() >= KEYS_MAX {
                map.clear();
            }
            let b = map.entry((kind, key)).or_default();
            if bounds.first.is_some() {
                b.first = bounds.first;
            }
            if bounds.end.is_some() {
                b.end = bounds.end;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn learn(ends: &Ends, first: Option<&str>, end: Option<&str>) {
        ends.learn(vec![Learned {
            kind: MemberKind::ListElem,
            key: b("k"),
            bounds: Bounds {
                first: first.map(b),
                end: end.map(b),
            },
        }]);
    }

    #[test]
    fn a_write_outside_the_bounds_widens_them() {
        let ends = Ends::default();
        learn(&ends, Some("m"), Some("p"));
        let key = b("k");
        let writes = [b("a"), b("n"), b("z")];
        ends.widen(writes.iter().map(|n| (MemberKind::ListElem, &key, n)));
        let got = ends.get(MemberKind::ListElem, &key);
        assert_eq!(got.first, Some(b("a")));
        assert_eq!(got.end, Some(after(b"z")));
        assert!(got.end.unwrap() > b("z"));
    }

    #[test]
    fn writes_inside_or_to_other_kinds_change_nothing() {
        let ends = Ends::default();
        learn(&ends, Some("c"), Some("x"));
        let key = b("k");
        let inside = [b("c"), b("d"), b("w")];
        ends.widen(inside.iter().map(|n| (MemberKind::ListElem, &key, n)));
        let other = [b("a")];
        ends.widen(other.iter().map(|n| (MemberKind::ZOrder, &key, n)));
        let got = ends.get(MemberKind::ListElem, &key);
        assert_eq!((got.first, got.end), (Some(b("c")), Some(b("x"))));
    }

    #[test]
    fn learning_replaces_only_what_was_learned() {
        let ends = Ends::default();
        learn(&ends, Some("c"), Some("x"));
        learn(&ends, Some("e"), None);
        let got = ends.get(MemberKind::ListElem, &b("k"));
        assert_eq!((got.first, got.end), (Some(b("e")), Some(b("x"))));
    }
}
