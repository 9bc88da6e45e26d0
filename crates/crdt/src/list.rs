//! A list: a sequence CRDT whose elements are stored one by one, under their positions.
//!
//! Every element gets a [`Position`] when it is inserted, never changed afterwards. Positions
//! are dense and totally ordered: between any two there is room for another, and the order is
//! the byte order of their encodings, so a list's elements are one range of storage keys in
//! list order. A position's levels carry the stamp of the write that made them, so positions
//! made concurrently by two regions differ and every replica orders them alike: concurrent
//! pushes are all kept.
//!
//! An element's value is a last-writer-wins register (`LSET`); a removal (a pop, `LREM`,
//! `LTRIM`) takes away the values it observed, so a concurrent `LSET` elsewhere survives it.

use crate::{Merge, Stamp, keep_later};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One level of a position: a digit, and the stamp of the write that chose it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Level {
    digit: u64,
    stamp: Stamp,
}

/// Bytes one level takes: digit, HLC and node, each 8 bytes big-endian.
const LEVEL_BYTES: usize = 24;

/// Where the first element of an empty list goes: the middle, so that a queue can grow
/// 2^63 pushes to either end before positions get a second level.
const MIDDLE: u64 = 1 << 63;

/// Where an element sits in its list. Compared level by level (digit, then stamp), a shorter
/// position before any longer one it is a prefix of; [`Position::encode`] keeps this order as
/// byte order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position(Vec<Level>);

impl Position {
    /// The storage form: 24 bytes a level.
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.0.len() * LEVEL_BYTES);
        for l in &self.0 {
            out.extend_from_slice(&l.digit.to_be_bytes());
            out.extend_from_slice(&l.stamp.hlc.0.to_be_bytes());
            out.extend_from_slice(&l.stamp.node.0.to_be_bytes());
        }
        Bytes::from(out)
    }

    /// Reads what [`Position::encode`] wrote; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Position> {
        if bytes.is_empty() || !bytes.len().is_multiple_of(LEVEL_BYTES) {
            return None;
        }
        let word = |b: &[u8]| u64::from_be_bytes(b.try_into().expect("8 bytes"));
        Some(Position(
            bytes
                .chunks_exact(LEVEL_BYTES)
                .map(|c| Level {
                    digit: word(&c[..8]),
                    stamp: Stamp::new(
                        hlc::Timestamp(word(&c[8..16])),
                        crate::NodeId(word(&c[16..])),
                    ),
                })
                .collect(),
        ))
    }

    /// Positions for `count` elements pushed at once after `last` (the list's last element,
    /// if any) by the write at `stamp`, in list order. The elements of one push stay together
    /// in the list even when another region pushed concurrently.
    pub fn append(last: Option<&Position>, stamp: Stamp, count: usize) -> Vec<Position> {
        let first = match last.map(|p| p.0[0].digit) {
            None => Some(MIDDLE),
            Some(d) => d.checked_add(1),
        };
        match first {
            Some(digit) => Self::group(Level { digit, stamp }, stamp, count, false),
            None => Self::spread(last, None, stamp, count),
        }
    }

    /// Positions for `count` elements pushed at once before `first` by the write at `stamp`,
    /// in push order: each goes before the one pushed ahead of it, as `LPUSH` does, so the
    /// last of them is first in the list.
    pub fn prepend(first: Option<&Position>, stamp: Stamp, count: usize) -> Vec<Position> {
        let head = match first.map(|p| p.0[0].digit) {
            None => Some(MIDDLE),
            // A last digit is never 0 (see `between`).
            Some(d) => d.checked_sub(1).filter(|d| *d > 0),
        };
        match head {
            Some(digit) => Self::group(Level { digit, stamp }, stamp, count, true),
            None => {
                let mut in_order = Self::spread(None, first, stamp, count);
                in_order.reverse();
                in_order
            }
        }
    }

    /// One element at `top`, or several under it on a second level.
    fn group(top: Level, stamp: Stamp, count: usize, backwards: bool) -> Vec<Position> {
        if count == 1 {
            return vec![Position(vec![top])];
        }
        (0..count as u64)
            .map(|i| {
                let digit = if backwards { MIDDLE - i } else { MIDDLE + i };
                Position(vec![top, Level { digit, stamp }])
            })
            .collect()
    }

    /// `count` positions in order strictly between `after` and `before` (either end open).
    fn spread(
        after: Option<&Position>,
        before: Option<&Position>,
        stamp: Stamp,
        count: usize,
    ) -> Vec<Position> {
        let mut out: Vec<Position> = Vec::with_capacity(count);
        for _ in 0..count {
            let p = Position::between(out.last().or(after), before, stamp);
            out.push(p);
        }
        out
    }

    /// A position strictly between `after` and `before` (either end open), made by the write
    /// at `stamp`. `after` must be before `before`.
    pub fn between(after: Option<&Position>, before: Option<&Position>, stamp: Stamp) -> Position {
        let empty = Position(Vec::new());
        let p = after.unwrap_or(&empty);
        // Whether what is built so far equals `before`'s prefix of the same length: only then
        // does `before` bound the next level.
        let mut bounded = before.is_some();
        let mut out = Vec::new();
        for i in 0.. {
            let lo = p.0.get(i).map(|l| l.digit);
            let hi = if bounded {
                before.and_then(|q| q.0.get(i)).map(|l| l.digit)
            } else {
                None
            };
            // Room strictly between lo (or 0: a position's last digit is never 0) and hi (or
            // above u64::MAX)?
            let low = lo.map_or(1, |d| u128::from(d) + 1);
            let high = hi.map_or(u128::from(u64::MAX) + 1, u128::from);
            if low < high {
                let digit = (low + (high - low) / 2) as u64;
                out.push(Level { digit, stamp });
                return Position(out);
            }
            // No room at this level: copy `after`'s level and go one deeper. Past `after`'s
            // end, `before` bounds this level with a digit of 0 or 1: copy its level if 0
            // (it is not its last, so it goes deeper), else take 0, below it.
            let level = match (p.0.get(i), hi) {
                (Some(l), _) => *l,
                (None, Some(0)) => before.expect("a bound").0[i],
                (None, _) => Level { digit: 0, stamp },
            };
            bounded = bounded && before.and_then(|q| q.0.get(i)) == Some(&level);
            out.push(level);
        }
        unreachable!("a deeper level always has room")
    }
}

/// One element: its value (last writer wins) and the latest value a removal observed. It is
/// in the list while its value is newer than what any removal observed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Elem {
    value: Option<(Stamp, Bytes)>,
    removed: Option<Stamp>,
}

impl Merge for Elem {
    fn merge(&mut self, other: &Self) {
        keep_later(&mut self.value, &other.value);
        self.removed = self.removed.max(other.removed);
    }
}

impl Elem {
    /// The delta of writing `value` at `stamp` (an insert, or `LSET`).
    pub fn write_delta(stamp: Stamp, value: Bytes) -> Elem {
        Elem {
            value: Some((stamp, value)),
            removed: None,
        }
    }

    /// The delta of removing the element as observed here.
    pub fn remove_delta(&self) -> Elem {
        Elem {
            value: None,
            removed: self.value.as_ref().map(|(s, _)| *s),
        }
    }

    /// The element's value while it is in the list.
    pub fn value(&self) -> Option<&Bytes> {
        self.value
            .as_ref()
            .filter(|(s, _)| Some(*s) > self.removed)
            .map(|(_, v)| v)
    }

    /// Whether the element is in the list.
    pub fn present(&self) -> bool {
        self.value().is_some()
    }

    /// The latest write, while the element is in the list.
    pub fn top(&self) -> Option<Stamp> {
        self.value
            .as_ref()
            .filter(|(s, _)| Some(*s) > self.removed)
            .map(|(s, _)| *s)
    }

    /// Drops the value a replica holding `theirs` had seen (`seen` says which) and no longer
    /// holds: it removed the element and collected the tombstone. See [`crate::Seen`].
    pub fn drop_seen(&mut self, theirs: Option<&Elem>, seen: &crate::Seen) {
        if let Some((stamp, _)) = &self.value {
            let held = theirs.and_then(|t| t.value.as_ref().map(|(s, _)| s)) >= Some(stamp);
            if !held && seen.covers(*stamp) {
                self.value = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeId;
    use hlc::Timestamp;
    use proptest::prelude::*;

    fn st(hlc: u64, node: u64) -> Stamp {
        Stamp::new(Timestamp(hlc), NodeId(node))
    }

    fn ordered(ps: &[Position]) -> bool {
        ps.windows(2)
            .all(|w| w[0] < w[1] && w[0].encode() < w[1].encode())
    }

    #[test]
    fn pushes_to_either_end_stay_one_level_deep() {
        let mut list = Position::append(None, st(1, 1), 1);
        for i in 0..100 {
            let tail = Position::append(list.last(), st(2 + i, 1), 1);
            list.extend(tail);
            let head = Position::prepend(list.first(), st(200 + i, 1), 1);
            list.splice(0..0, head);
        }
        assert!(ordered(&list));
        assert!(list.iter().all(|p| p.0.len() == 1));
    }

    #[test]
    fn a_multi_element_push_stays_together_beside_a_concurrent_one() {
        let start = Position::append(None, st(1, 1), 1);
        let a = Position::append(start.last(), st(5, 1), 3);
        let b = Position::append(start.last(), st(5, 2), 3);
        let mut all: Vec<Position> = a.iter().chain(&b).cloned().collect();
        all.sort();
        assert_eq!(all, [a, b].concat());
        // LPUSH x y z: z is first.
        let pre = Position::prepend(start.first(), st(6, 1), 3);
        assert!(pre[2] < pre[1] && pre[1] < pre[0] && pre[0] < start[0]);
    }

    #[test]
    fn positions_decode_to_themselves() {
        let p = Position::append(None, st(7, 3), 2).pop().unwrap();
        assert_eq!(Position::decode(&p.encode()), Some(p));
        assert_eq!(Position::decode(b"short"), None);
    }

    proptest! {
        /// Inserting between neighbours, at either end and at the open ends, in any order,
        /// always yields a position strictly between, in value and in byte order.
        #[test]
        fn between_is_strictly_between(steps in proptest::collection::vec((any::<u8>(), 0u8..4), 1..200)) {
            let mut list: Vec<Position> = Vec::new();
            for (n, (at, how)) in steps.into_iter().enumerate() {
                let stamp = st(n as u64 + 1, u64::from(how));
                let i = if list.is_empty() { 0 } else { usize::from(at) % (list.len() + 1) };
                let p = match how {
                    0 => Position::append(list.last(), stamp, 1).remove(0),
                    1 => Position::prepend(list.first(), stamp, 1).remove(0),
                    _ => Position::between(i.checked_sub(1).map(|j| &list[j]), list.get(i), stamp),
                };
                let i = match how { 0 => list.len(), 1 => 0, _ => i };
                list.insert(i, p);
                prop_assert!(ordered(&list));
            }
        }
    }

    fn elem() -> impl Strategy<Value = Elem> {
        // One stamp names one write, so it always carries the same value.
        let stamp = (1u64..6, 1u64..3).prop_map(|(h, n)| st(h, n));
        (
            proptest::option::of(stamp.clone()),
            proptest::option::of(stamp),
        )
            .prop_map(|(value, removed)| Elem {
                value: value.map(|s| (s, Bytes::from(format!("{s:?}")))),
                removed,
            })
    }

    proptest! {
        #[test]
        fn elements_merge_as_a_lattice(a in elem(), b in elem(), c in elem()) {
            let join = |x: &Elem, y: &Elem| { let mut z = x.clone(); z.merge(y); z };
            prop_assert_eq!(join(&a, &b), join(&b, &a));
            prop_assert_eq!(join(&join(&a, &b), &c), join(&a, &join(&b, &c)));
            prop_assert_eq!(join(&a, &a), a.clone());
        }
    }

    #[test]
    fn between_adjacent_digits_goes_deeper() {
        let a = Position(vec![Level {
            digit: 5,
            stamp: st(1, 1),
        }]);
        let b = Position(vec![Level {
            digit: 6,
            stamp: st(1, 1),
        }]);
        let c = Position::between(Some(&a), Some(&b), st(2, 2));
        assert!(a < c && c < b && c.0.len() == 2);
        let one = Position(vec![Level {
            digit: 1,
            stamp: st(1, 1),
        }]);
        let d = Position::between(None, Some(&one), st(3, 2));
        assert!(d < one);
        let e = Position::between(None, Some(&d), st(4, 2));
        assert!(e < d);
    }

    #[test]
    fn a_remove_takes_only_what_it_observed() {
        let stamp = st(1, 1);
        let mut a = Elem::write_delta(stamp, Bytes::from_static(b"x"));
        let mut b = a.clone();
        let rm = a.remove_delta();
        let set = Elem::write_delta(st(2, 2), Bytes::from_static(b"y"));
        a.merge(&rm);
        assert!(!a.present());
        a.merge(&set);
        b.merge(&set);
        b.merge(&rm);
        assert_eq!(a, b);
        assert_eq!(a.value().map(|v| &v[..]), Some(&b"y"[..]));
    }
}
