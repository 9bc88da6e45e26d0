//! A window of a series as a CRDT: every region writes samples; the replicas merge to the same
//! state in any order, and read the same values.
//!
//! The state is the set of writes (timestamp, value, and the write's stamp: the writing node's
//! hybrid logical clock and id) and the set of range deletes (`TS.DEL from to`, stamped the
//! same way). Merging is the union of both sets, so it is commutative, associative and
//! idempotent. What a replica reads at a timestamp is decided from the set, under the series'
//! duplicate policy, the same way everywhere:
//! - a write is removed by a delete whose range holds its timestamp and whose stamp is later
//!   (a delete removes what it could have observed; a concurrent write stamped later stays);
//! - among the writes left at one timestamp: `LAST` keeps the latest stamp, `FIRST` and `BLOCK`
//!   the earliest (a node refuses a duplicate it sees locally under `BLOCK`; two regions that
//!   wrote the same instant concurrently keep the first), `MIN`/`MAX` the lowest/highest value,
//!   `SUM` adds every write (each write is one reading added, as RedisTimeSeries adds them).
//!
//! Stored, a window keeps its stamps beside the samples in the same bit-packed way: the gap
//! between when a sample was written and the instant it names changes little from one sample
//! to the next, so a regular real-time series costs a few bits a stamp (see the tests).

use crate::Sample;
use crate::args::Policy;
use crate::chunk::{Chunk, ChunkError, Reader, Writer, sign_extend};
use crdt::{NodeId, Seen};
use hlc::Timestamp;

/// Who wrote, and when: the order of concurrent writes ([`crdt::Stamp`]).
pub use crdt::Stamp;

fn ms_of(stamp: Stamp) -> i64 {
    stamp.hlc.physical_ms() as i64
}

fn counter_of(stamp: Stamp) -> u64 {
    u64::from(stamp.hlc.logical())
}

/// One sample written. Equal when every bit is (so a NaN equals itself).
#[derive(Clone, Copy, Debug)]
pub struct Write {
    /// The instant it names (ms).
    pub ts: i64,
    /// Its value.
    pub value: f64,
    /// Who wrote it, when.
    pub stamp: Stamp,
}

impl PartialEq for Write {
    fn eq(&self, other: &Write) -> bool {
        (self.ts, self.value.to_bits(), self.stamp)
            == (other.ts, other.value.to_bits(), other.stamp)
    }
}

impl Eq for Write {}

/// `TS.DEL from to`, as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Delete {
    /// The first instant removed.
    pub from: i64,
    /// The last instant removed.
    pub to: i64,
    /// Who deleted, when.
    pub stamp: Stamp,
}

/// A window of one series: the writes and deletes of its time range.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// Ordered by (timestamp, stamp), no two with one stamp at one timestamp.
    writes: Vec<Write>,
    /// Ordered, without repeats.
    deletes: Vec<Delete>,
}

fn write_key(w: &Write) -> (i64, Stamp) {
    (w.ts, w.stamp)
}

impl Window {
    /// Adds a write (a delta of one write, merged). One stamp names one write at an instant;
    /// should two differ in value all the same, the higher bits win, so merging stays a join.
    pub fn write(&mut self, write: Write) {
        let found = self
            .writes
            .binary_search_by_key(&write_key(&write), write_key);
        match found {
            Ok(at) if write.value.to_bits() > self.writes[at].value.to_bits() => {
                self.writes[at] = write;
            }
            Ok(_) => {}
            Err(at) => self.writes.insert(at, write),
        }
    }

    /// Adds a delete.
    pub fn delete(&mut self, delete: Delete) {
        if let Err(at) = self.deletes.binary_search(&delete) {
            self.deletes.insert(at, delete);
        }
    }

    /// Joins `other` into this window.
    pub fn merge(&mut self, other: &Window) {
        for w in &other.writes {
            self.write(*w);
        }
        for d in &other.deletes {
            self.delete(*d);
        }
    }

    /// How many writes and deletes it holds: what it weighs in memory.
    pub fn weight(&self) -> usize {
        self.writes.len() + self.deletes.len()
    }

    /// The writes held (deleted ones included, until collected).
    pub fn writes(&self) -> &[Write] {
        &self.writes
    }

    /// What a reader sees from `from` to `to` (both included) under `policy`: one sample per
    /// timestamp with a write left.
    pub fn read(&self, policy: Policy, from: i64, to: i64) -> Vec<Sample> {
        (self.read_stamped(policy, from, to).into_iter())
            .map(|(t, v, _)| (t, v))
            .collect()
    }

    /// [`Window::read`], each sample with when its latest write was made (ms, by the writer's
    /// clock): what tells a late sample.
    pub fn read_stamped(&self, policy: Policy, from: i64, to: i64) -> Vec<(i64, f64, i64)> {
        let start = self.writes.partition_point(|w| w.ts < from);
        let mut out = Vec::new();
        let mut i = start;
        while i < self.writes.len() && self.writes[i].ts <= to {
            let ts = self.writes[i].ts;
            let mut j = i;
            while j < self.writes.len() && self.writes[j].ts == ts {
                j += 1;
            }
            let live = || self.writes[i..j].iter().filter(|w| !self.deleted(w));
            if let Some(value) = resolve(policy, live()) {
                let written = live().map(|w| ms_of(w.stamp)).max().unwrap_or(0);
                out.push((ts, value, written));
            }
            i = j;
        }
        out
    }

    /// Whether any write is left (not removed by a delete).
    pub fn live(&self) -> bool {
        self.writes.iter().any(|w| !self.deleted(w))
    }

    /// The highest timestamp with a write left.
    pub fn newest(&self) -> Option<i64> {
        self.writes
            .iter()
            .rev()
            .find(|w| !self.deleted(w))
            .map(|w| w.ts)
    }

    /// The latest stamp of any write or delete held.
    pub fn top(&self) -> Option<Stamp> {
        let writes = self.writes.iter().map(|w| w.stamp);
        writes.chain(self.deletes.iter().map(|d| d.stamp)).max()
    }

    /// Drops what a replica holding `theirs` had seen (`seen` says which) and no longer
    /// holds: it deleted it and collected it (see [`crdt::Seen`]).
    pub fn drop_seen(&mut self, theirs: Option<&Window>, seen: &Seen) {
        let held_write = |w: &Write| {
            theirs.is_some_and(|t| {
                t.writes
                    .binary_search_by_key(&write_key(w), write_key)
                    .is_ok()
            })
        };
        let held_delete = |d: &Delete| theirs.is_some_and(|t| t.deletes.binary_search(d).is_ok());
        self.writes
            .retain(|w| !seen.covers(w.stamp) || held_write(w));
        self.deletes
            .retain(|d| !seen.covers(d.stamp) || held_delete(d));
    }

    fn deleted(&self, w: &Write) -> bool {
        (self.deletes.iter()).any(|d| d.from <= w.ts && w.ts <= d.to && d.stamp > w.stamp)
    }

    /// The window as stored: its samples as a [`Chunk`], then its stamps bit-packed, then its
    /// deletes.
    pub fn encode(&self) -> Vec<u8> {
        let samples: Vec<Sample> = self.writes.iter().map(|w| (w.ts, w.value)).collect();
        let chunk = Chunk::encode(&samples);
        let mut out = Vec::new();
        out.extend_from_slice(&(chunk.as_bytes().len() as u32).to_le_bytes());
        out.extend_from_slice(chunk.as_bytes());
        // Stamps: the writers' ids once, then per write its writer's index, its clock's
        // millisecond as the change of its lag behind the sample's instant, and its counter.
        let mut nodes: Vec<u64> = self.writes.iter().map(|w| w.stamp.node.0).collect();
        nodes.sort_unstable();
        nodes.dedup();
        out.extend_from_slice(&(nodes.len() as u32).to_le_bytes());
        for n in &nodes {
            out.extend_from_slice(&n.to_le_bytes());
        }
        let index_bits = index_bits(nodes.len());
        let mut bits = Writer {
            bytes: Vec::new(),
            free: 0,
        };
        // Per write: `1` and the change of the counter when the clock's millisecond is the
        // previous write's (a batch written in one round); else `0`, the change of the lag,
        // and the counter.
        let mut lag: i64 = 0;
        let mut previous: Option<Stamp> = None;
        for w in &self.writes {
            let at = nodes.binary_search(&w.stamp.node.0).expect("listed") as u64;
            bits.push(at, index_bits);
            let (ms, counter) = (ms_of(w.stamp), counter_of(w.stamp));
            match previous.map(|p| (ms_of(p), counter_of(p))) {
                Some((p_ms, p_counter)) if p_ms == ms => {
                    bits.push(1, 1);
                    match counter.wrapping_sub(p_counter) {
                        d @ 1..=16 => {
                            bits.push(0, 1);
                            bits.push(d - 1, 4);
                        }
                        _ => {
                            bits.push(1, 1);
                            bits.push(counter, 16);
                        }
                    }
                }
                _ => {
                    bits.push(0, 1);
                    let new_lag = ms.wrapping_sub(w.ts);
                    match new_lag.wrapping_sub(lag) {
                        0 => bits.push(0, 1),
                        d @ -64..=63 => {
                            bits.push(0b10, 2);
                            bits.push(d as u64, 7);
                        }
                        d @ -2048..=2047 => {
                            bits.push(0b110, 3);
                            bits.push(d as u64, 12);
                        }
                        _ => {
                            bits.push(0b111, 3);
                            bits.push(ms as u64, 48);
                        }
                    }
                    match counter {
                        0 => bits.push(0, 1),
                        c => {
                            bits.push(1, 1);
                            bits.push(c, 16);
                        }
                    }
                }
            }
            lag = ms.wrapping_sub(w.ts);
            previous = Some(w.stamp);
        }
        out.extend_from_slice(&(bits.bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&bits.bytes);
        out.extend_from_slice(&(self.deletes.len() as u32).to_le_bytes());
        for d in &self.deletes {
            for part in [d.from as u64, d.to as u64, d.stamp.hlc.0, d.stamp.node.0] {
                out.extend_from_slice(&part.to_le_bytes());
            }
        }
        out
    }

    /// A window from its stored bytes; damaged bytes are an error.
    pub fn decode(bytes: &[u8]) -> Result<Window, ChunkError> {
        let mut at = 0;
        let mut take = |n: usize| -> Result<&[u8], ChunkError> {
            let part = bytes
                .get(at..at + n)
                .ok_or(ChunkError("the window ends early"))?;
            at += n;
            Ok(part)
        };
        let u32_of = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("four bytes")) as usize;
        let u64_of = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("eight bytes"));
        let chunk_len = u32_of(take(4)?);
        let samples = Chunk::from_bytes(take(chunk_len)?.to_vec())?.decode()?;
        let node_count = u32_of(take(4)?);
        if node_count > samples.len() {
            return Err(ChunkError("more writers than writes"));
        }
        let mut nodes = Vec::with_capacity(node_count);
        for _ in 0..node_count {
            nodes.push(u64_of(take(8)?));
        }
        let bits_len = u32_of(take(4)?);
        let mut bits = Reader {
            bytes: take(bits_len)?,
            at: 0,
        };
        let damaged = || ChunkError("the stamps end early");
        let index_bits = index_bits(nodes.len());
        let mut writes = Vec::with_capacity(samples.len());
        let mut lag: i64 = 0;
        let mut previous: Option<(i64, u64)> = None;
        for &(ts, value) in &samples {
            let index = bits.read(index_bits).ok_or_else(damaged)? as usize;
            let node = *nodes.get(index).ok_or(ChunkError("no such writer"))?;
            let same_ms = bits.read(1).ok_or_else(damaged)? == 1;
            let (ms, counter) = match previous {
                Some((p_ms, p_counter)) if same_ms => {
                    let counter = match bits.read(1).ok_or_else(damaged)? {
                        0 => p_counter + 1 + bits.read(4).ok_or_else(damaged)?,
                        _ => bits.read(16).ok_or_else(damaged)?,
                    };
                    (p_ms, counter & 0xffff)
                }
                None if same_ms => return Err(ChunkError("a first stamp names no millisecond")),
                _ => {
                    let ms = match bits.prefix(3).ok_or_else(damaged)? {
                        0 => ts.wrapping_add(lag),
                        1 => ts.wrapping_add(
                            lag.wrapping_add(sign_extend(bits.read(7).ok_or_else(damaged)?, 7)),
                        ),
                        2 => ts.wrapping_add(
                            lag.wrapping_add(sign_extend(bits.read(12).ok_or_else(damaged)?, 12)),
                        ),
                        _ => bits.read(48).ok_or_else(damaged)? as i64,
                    };
                    let counter = match bits.read(1).ok_or_else(damaged)? {
                        0 => 0,
                        _ => bits.read(16).ok_or_else(damaged)?,
                    };
                    (ms, counter)
                }
            };
            lag = ms.wrapping_sub(ts);
            previous = Some((ms, counter));
            let hlc = Timestamp(((ms as u64) << 16) | counter);
            writes.push(Write {
                ts,
                value,
                stamp: Stamp::new(hlc, NodeId(node)),
            });
        }
        let delete_count = u32_of(take(4)?);
        if delete_count > bytes.len() / 32 {
            return Err(ChunkError("more deletes than bytes"));
        }
        let mut deletes = Vec::with_capacity(delete_count);
        for _ in 0..delete_count {
            let part = take(32)?;
            deletes.push(Delete {
                from: u64_of(&part[0..8]) as i64,
                to: u64_of(&part[8..16]) as i64,
                stamp: Stamp::new(
                    Timestamp(u64_of(&part[16..24])),
                    NodeId(u64_of(&part[24..32])),
                ),
            });
        }
        let ordered = writes
            .windows(2)
            .all(|w| write_key(&w[0]) < write_key(&w[1]))
            && deletes.windows(2).all(|d| d[0] < d[1]);
        if !ordered {
            return Err(ChunkError("writes or deletes out of order"));
        }
        Ok(Window { writes, deletes })
    }
}

impl crdt::Merge for Window {
    fn merge(&mut self, other: &Window) {
        Window::merge(self, other);
    }
}

/// Stored and sent as [`Window::encode`] writes it.
impl serde::Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.encode())
    }
}

impl<'de> serde::Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Window, D::Error> {
        struct Bytes;
        impl serde::de::Visitor<'_> for Bytes {
            type Value = Window;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an encoded window of a series")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Window, E> {
                Window::decode(v).map_err(E::custom)
            }
        }
        d.deserialize_bytes(Bytes)
    }
}

/// Bits to name one of `n` writers.
fn index_bits(n: usize) -> u32 {
    usize::BITS - n.saturating_sub(1).leading_zeros()
}

/// The value a reader sees from the writes left at one timestamp.
fn resolve<'a>(policy: Policy, writes: impl Iterator<Item = &'a Write>) -> Option<f64> {
    let mut writes = writes.peekable();
    writes.peek()?;
    Some(match policy {
        Policy::Last => writes.max_by_key(|w| w.stamp)?.value,
        Policy::First | Policy::Block => writes.min_by_key(|w| w.stamp)?.value,
        Policy::Min => writes.map(|w| w.value).fold(f64::INFINITY, f64::min),
        Policy::Max => writes.map(|w| w.value).fold(f64::NEG_INFINITY, f64::max),
        Policy::Sum => writes.map(|w| w.value).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stamp(ms: u64, node: u64) -> Stamp {
        Stamp::new(Timestamp(ms << 16), NodeId(node))
    }

    fn w(ts: i64, value: f64, ms: u64, node: u64) -> Write {
        Write {
            ts,
            value,
            stamp: stamp(ms, node),
        }
    }

    #[test]
    fn concurrent_writes_of_one_instant_resolve_by_the_policy_everywhere() {
        let mut eu = Window::default();
        let mut us = Window::default();
        eu.write(w(1000, 20.0, 5000, 1));
        us.write(w(1000, 25.0, 5001, 2));
        us.write(w(1000, 5.0, 4999, 2));
        let mut a = eu.clone();
        a.merge(&us);
        let mut b = us.clone();
        b.merge(&eu);
        assert_eq!(a, b);
        for (policy, want) in [
            (Policy::Last, 25.0),
            (Policy::First, 5.0),
            (Policy::Block, 5.0),
            (Policy::Min, 5.0),
            (Policy::Max, 25.0),
            (Policy::Sum, 50.0),
        ] {
            assert_eq!(a.read(policy, 0, 2000), [(1000, want)], "{policy:?}");
        }
    }

    #[test]
    fn a_delete_removes_what_it_could_have_seen_and_a_later_concurrent_write_stays() {
        let mut win = Window::default();
        win.write(w(10, 1.0, 100, 1));
        win.write(w(20, 2.0, 100, 1));
        win.write(w(30, 3.0, 300, 2)); // written after the delete's clock, concurrently
        win.delete(Delete {
            from: 0,
            to: 30,
            stamp: stamp(200, 1),
        });
        assert_eq!(win.read(Policy::Last, i64::MIN, i64::MAX), [(30, 3.0)]);
        // A sample written after the delete is there, as is everything outside its range.
        win.write(w(15, 9.0, 400, 1));
        win.write(w(40, 4.0, 150, 2));
        assert_eq!(
            win.read(Policy::Last, 0, 100),
            [(15, 9.0), (30, 3.0), (40, 4.0)]
        );
    }

    #[test]
    fn a_regular_real_time_series_costs_few_bytes_a_sample_with_its_stamps() {
        // One reading a second, written 20-40 ms after the instant it names, by one node.
        let mut win = Window::default();
        for i in 0..3600i64 {
            let ts = 1_700_000_000_000 + i * 1000;
            let value = (200.0 + 50.0 * (i as f64 / 300.0).sin()).round() / 10.0;
            let lag = 20 + (i * 7919 % 21);
            win.write(w(ts, value, (ts + lag) as u64, 42));
        }
        let bytes = win.encode();
        let per_sample = bytes.len() as f64 / 3600.0;
        println!("regular series with stamps: {per_sample:.2} bytes a sample");
        assert!(per_sample < 4.0, "{per_sample:.2} bytes a sample");
        assert_eq!(Window::decode(&bytes).unwrap(), win);
    }

    fn arb_window() -> impl Strategy<Value = Window> {
        let write = (0..50i64, -5..5i32, 0..40u64, 0..3u64, 0..3u64).prop_map(
            |(ts, v, ms, counter, node)| Write {
                ts,
                value: f64::from(v),
                stamp: Stamp::new(Timestamp((ms << 16) | counter), NodeId(node)),
            },
        );
        let delete =
            (0..50i64, 0..20i64, 0..40u64, 0..3u64).prop_map(|(from, len, ms, node)| Delete {
                from,
                to: from + len,
                stamp: stamp(ms, node),
            });
        (
            prop::collection::vec(write, 0..30),
            prop::collection::vec(delete, 0..3),
        )
            .prop_map(|(writes, deletes)| {
                let mut win = Window::default();
                writes.into_iter().for_each(|x| win.write(x));
                deletes.into_iter().for_each(|d| win.delete(d));
                win
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn merge_is_a_join(a in arb_window(), b in arb_window(), c in arb_window()) {
            let join = |x: &Window, y: &Window| { let mut z = x.clone(); z.merge(y); z };
            prop_assert_eq!(join(&a, &b), join(&b, &a));
            prop_assert_eq!(join(&join(&a, &b), &c), join(&a, &join(&b, &c)));
            prop_assert_eq!(join(&a, &a), a.clone());
            // Every replica reads the same, whatever order the writes came in.
            for policy in [Policy::Last, Policy::First, Policy::Min, Policy::Max, Policy::Sum] {
                prop_assert_eq!(
                    join(&a, &b).read(policy, 0, 100),
                    join(&b, &a).read(policy, 0, 100)
                );
            }
        }

        #[test]
        fn windows_read_back_exactly_and_damage_is_an_error(
            win in arb_window(),
            flips in prop::collection::vec((any::<usize>(), 1..=255u8), 0..3),
        ) {
            let bytes = win.encode();
            prop_assert_eq!(Window::decode(&bytes).unwrap(), win);
            let mut damaged = bytes.clone();
            for (at, x) in flips {
                let i = at % damaged.len();
                damaged[i] ^= x;
            }
            // Never a panic; a damaged window that still decodes is well ordered.
            if let Ok(back) = Window::decode(&damaged) {
                prop_assert!(back.writes.windows(2).all(|w| write_key(&w[0]) < write_key(&w[1])));
            }
        }
    }
}
