//! A run of samples in one compressed chunk, Gorilla's way.
//!
//! Layout: a 20-byte header (the sample count, little-endian `u32`; the first and the last
//! timestamps, `i64`) and a bit stream, most significant bit first:
//! - the first value, 64 bits;
//! - per following sample, its timestamp as the change of the gap since the previous one (the
//!   delta-of-delta): `0` when the gap did not change, else `10` and 7 bits, `110` and 9,
//!   `1110` and 12 (two's complement), or `1111` and the whole 64-bit timestamp;
//! - then its value as the XOR with the previous value: `0` when equal, else `10` and the
//!   bits inside the previous window of meaningful bits when the XOR fits in it, else `11`, 5
//!   bits of leading zeros, 6 bits of length (64 written as 0) and the meaningful bits.
//!
//! Timestamps never decrease inside a chunk (one may repeat: several writes of one instant). Decoding checks every length against
//! what the chunk holds: damaged bytes are an error, never a panic or a huge allocation.

use crate::Sample;

/// Bytes before the bit stream.
const HEADER: usize = 20;

/// A chunk that does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkError(pub &'static str);

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "damaged chunk: {}", self.0)
    }
}

impl std::error::Error for ChunkError {}

/// Samples, compressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    bytes: Vec<u8>,
}

impl Chunk {
    /// `samples`, which must be in timestamp order, compressed.
    pub fn encode(samples: &[Sample]) -> Chunk {
        assert!(
            samples.windows(2).all(|w| w[0].0 <= w[1].0),
            "a chunk's timestamps never decrease"
        );
        let mut bytes = Vec::with_capacity(HEADER + samples.len() * 2);
        bytes.extend_from_slice(&(samples.len() as u32).to_le_bytes());
        let (first, last) = match (samples.first(), samples.last()) {
            (Some(f), Some(l)) => (f.0, l.0),
            _ => (0, 0),
        };
        bytes.extend_from_slice(&first.to_le_bytes());
        bytes.extend_from_slice(&last.to_le_bytes());
        let mut bits = Writer { bytes, free: 0 };
        let Some(&(mut ts, mut value)) = samples.first() else {
            return Chunk { bytes: bits.bytes };
        };
        bits.push(value.to_bits(), 64);
        let mut gap: i64 = 0;
        let mut window: Option<(u32, u32)> = None;
        for &(t, v) in &samples[1..] {
            let new_gap = t.wrapping_sub(ts);
            let dod = new_gap.wrapping_sub(gap);
            match dod {
                0 => bits.push(0, 1),
                -64..=63 => {
                    bits.push(0b10, 2);
                    bits.push(dod as u64, 7);
                }
                -256..=255 => {
                    bits.push(0b110, 3);
                    bits.push(dod as u64, 9);
                }
                -2048..=2047 => {
                    bits.push(0b1110, 4);
                    bits.push(dod as u64, 12);
                }
                _ => {
                    bits.push(0b1111, 4);
                    bits.push(t as u64, 64);
                }
            }
            let xor = value.to_bits() ^ v.to_bits();
            if xor == 0 {
                bits.push(0, 1);
            } else {
                let leading = xor.leading_zeros().min(31);
                let trailing = xor.trailing_zeros();
                match window {
                    Some((lead, trail)) if leading >= lead && trailing >= trail => {
                        bits.push(0b10, 2);
                        bits.push(xor >> trail, 64 - lead - trail);
                    }
                    _ => {
                        let length = 64 - leading - trailing;
                        bits.push(0b11, 2);
                        bits.push(u64::from(leading), 5);
                        bits.push(u64::from(length % 64), 6);
                        bits.push(xor >> trailing, length);
                        window = Some((leading, trailing));
                    }
                }
            }
            (ts, value, gap) = (t, v, new_gap);
        }
        Chunk { bytes: bits.bytes }
    }

    /// A chunk from stored bytes; only the header is checked here.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Chunk, ChunkError> {
        if bytes.len() < HEADER {
            return Err(ChunkError("shorter than its header"));
        }
        let chunk = Chunk { bytes };
        // Every sample after the first takes at least two bits.
        let stream_bits = (chunk.bytes.len() - HEADER) * 8;
        if !chunk.is_empty() && (stream_bits < 64 || (chunk.len() - 1) * 2 > stream_bits - 64) {
            return Err(ChunkError("more samples than bits"));
        }
        if chunk.first_ts() > chunk.last_ts() {
            return Err(ChunkError("first timestamp after the last"));
        }
        Ok(chunk)
    }

    /// The encoded chunk.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// How many samples it holds.
    pub fn len(&self) -> usize {
        u32::from_le_bytes(self.bytes[0..4].try_into().expect("four bytes")) as usize
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its first timestamp (0 when empty).
    pub fn first_ts(&self) -> i64 {
        i64::from_le_bytes(self.bytes[4..12].try_into().expect("eight bytes"))
    }

    /// Its last timestamp (0 when empty).
    pub fn last_ts(&self) -> i64 {
        i64::from_le_bytes(self.bytes[12..20].try_into().expect("eight bytes"))
    }

    /// Every sample.
    pub fn decode(&self) -> Result<Vec<Sample>, ChunkError> {
        self.range(i64::MIN, i64::MAX)
    }

    /// The samples from `from` to `to`, both included: nothing is decoded when the chunk lies
    /// outside, and decoding stops past `to`.
    pub fn range(&self, from: i64, to: i64) -> Result<Vec<Sample>, ChunkError> {
        let count = self.len();
        if count == 0 || self.last_ts() < from || self.first_ts() > to {
            return Ok(Vec::new());
        }
        let mut bits = Reader {
            bytes: &self.bytes[HEADER..],
            at: 0,
        };
        let damaged = || ChunkError("the bit stream ends early");
        let mut ts = self.first_ts();
        let mut value = bits.read(64).ok_or_else(damaged)?;
        let mut out = Vec::new();
        if ts >= from {
            out.push((ts, f64::from_bits(value)));
        }
        let mut gap: i64 = 0;
        let mut window: Option<(u32, u32)> = None;
        for _ in 1..count {
            let t = match bits.prefix(4).ok_or_else(damaged)? {
                0 => ts.wrapping_add(gap),
                n @ 1..=3 => {
                    let width = [7, 9, 12][n - 1];
                    let dod = sign_extend(bits.read(width).ok_or_else(damaged)?, width);
                    ts.wrapping_add(gap.wrapping_add(dod))
                }
                _ => bits.read(64).ok_or_else(damaged)? as i64,
            };
            if t < ts {
                return Err(ChunkError("timestamps go back"));
            }
            let xor = match bits.prefix(2).ok_or_else(damaged)? {
                0 => 0,
                1 => {
                    let (lead, trail) = window.ok_or(ChunkError("no window to reuse"))?;
                    bits.read(64 - lead - trail).ok_or_else(damaged)? << trail
                }
                _ => {
                    let leading = bits.read(5).ok_or_else(damaged)? as u32;
                    let length = match bits.read(6).ok_or_else(damaged)? as u32 {
                        0 => 64,
                        n => n,
                    };
                    if leading + length > 64 {
                        return Err(ChunkError("a value's bits overflow"));
                    }
                    let trailing = 64 - leading - length;
                    window = Some((leading, trailing));
                    bits.read(length).ok_or_else(damaged)? << trailing
                }
            };
            gap = t.wrapping_sub(ts);
            ts = t;
            value ^= xor;
            if ts > to {
                break;
            }
            if ts >= from {
                out.push((ts, f64::from_bits(value)));
            }
        }
        if ts != self.last_ts() && ts <= to {
            return Err(ChunkError("the last timestamp is not the header's"));
        }
        Ok(out)
    }
}

/// `value`'s low `width` bits as a signed number.
pub(crate) fn sign_extend(value: u64, width: u32) -> i64 {
    let shift = 64 - width;
    ((value << shift) as i64) >> shift
}

/// Appends bits, most significant first.
pub(crate) struct Writer {
    pub(crate) bytes: Vec<u8>,
    /// Bits still free in the last byte.
    pub(crate) free: u32,
}

impl Writer {
    /// The low `n` bits of `value` (`n` up to 64).
    pub(crate) fn push(&mut self, value: u64, n: u32) {
        let mut left = n;
        while left > 0 {
            if self.free == 0 {
                self.bytes.push(0);
                self.free = 8;
            }
            let take = left.min(self.free);
            let part = (value >> (left - take)) & ((1u64 << take) - 1);
            let last = self.bytes.last_mut().expect("a byte was pushed");
            *last |= (part as u8) << (self.free - take);
            self.free -= take;
            left -= take;
        }
    }
}

/// Reads bits, most significant first.
pub(crate) struct Reader<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) at: usize,
}

impl Reader<'_> {
    /// The next `n` bits (`n` up to 64), none past the end.
    pub(crate) fn read(&mut self, n: u32) -> Option<u64> {
        if n == 0 {
            return Some(0);
        }
        if self.at + n as usize > self.bytes.len() * 8 {
            return None;
        }
        let mut value = 0u64;
        for _ in 0..n {
            let bit = (self.bytes[self.at / 8] >> (7 - self.at % 8)) & 1;
            value = (value << 1) | u64::from(bit);
            self.at += 1;
        }
        Some(value)
    }

    /// How many `1` bits come before a `0`, up to `max` (a `0` after `max` ones is not read).
    pub(crate) fn prefix(&mut self, max: usize) -> Option<usize> {
        let mut ones = 0;
        while ones < max {
            if self.read(1)? == 0 {
                return Some(ones);
            }
            ones += 1;
        }
        Some(ones)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn same(a: &[Sample], b: &[Sample]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.0 == y.0 && x.1.to_bits() == y.1.to_bits())
    }

    /// A regular series, as sensors send: one reading a second, a temperature with one
    /// decimal moving slowly.
    fn regular(n: usize) -> Vec<Sample> {
        (0..n)
            .map(|i| {
                let t = 1_700_000_000_000 + i as i64 * 1000;
                let v = (200.0 + 50.0 * (i as f64 / 300.0).sin()).round() / 10.0;
                (t, v)
            })
            .collect()
    }

    #[test]
    fn a_regular_series_costs_under_four_bytes_a_sample() {
        let samples = regular(4096);
        let chunk = Chunk::encode(&samples);
        assert!(same(&chunk.decode().unwrap(), &samples));
        let per_sample = chunk.as_bytes().len() as f64 / samples.len() as f64;
        println!("regular series: {per_sample:.2} bytes a sample");
        assert!(per_sample < 4.0, "{per_sample:.2} bytes a sample");
        // A constant series: about two bits a sample.
        let flat: Vec<Sample> = (0..4096).map(|i| (i * 10, 1.5)).collect();
        let chunk = Chunk::encode(&flat);
        assert!(chunk.as_bytes().len() < HEADER + 8 + 4096 / 4 + 2);
        assert!(same(&chunk.decode().unwrap(), &flat));
    }

    #[test]
    fn a_range_reads_only_what_it_needs_and_the_header_answers_outside() {
        let samples = regular(1000);
        let chunk = Chunk::encode(&samples);
        let (from, to) = (samples[100].0, samples[199].0);
        assert!(same(&chunk.range(from, to).unwrap(), &samples[100..200]));
        assert!(same(
            &chunk.range(from + 1, to - 1).unwrap(),
            &samples[101..199]
        ));
        assert!(chunk.range(0, samples[0].0 - 1).unwrap().is_empty());
        assert!(
            chunk
                .range(samples[999].0 + 1, i64::MAX)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            (chunk.len(), chunk.first_ts(), chunk.last_ts()),
            (1000, samples[0].0, samples[999].0)
        );
        let empty = Chunk::encode(&[]);
        assert!(empty.is_empty() && empty.decode().unwrap().is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_samples_read_back_exactly(
            start in any::<i64>(),
            gaps in prop::collection::vec(prop_oneof![
                Just(1000i64), 1..100i64, 1..5000i64, 1..i64::MAX / 4096
            ], 0..300),
            values in prop::collection::vec(prop_oneof![
                any::<f64>(), (0..1000i32).prop_map(|v| f64::from(v) / 10.0), Just(f64::NAN)
            ], 300),
        ) {
            let mut ts = start.min(i64::MAX - i64::MAX / 2);
            let mut samples = vec![(ts, values[0])];
            for (gap, value) in gaps.iter().zip(&values[1..]) {
                let Some(next) = ts.checked_add(*gap) else { break };
                ts = next;
                samples.push((ts, *value));
            }
            let chunk = Chunk::encode(&samples);
            prop_assert!(same(&chunk.decode().unwrap(), &samples));
            let stored = Chunk::from_bytes(chunk.as_bytes().to_vec()).unwrap();
            prop_assert!(same(&stored.decode().unwrap(), &samples));
        }

        #[test]
        fn damaged_bytes_are_an_error_or_samples_never_a_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..200),
            flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        ) {
            // Arbitrary bytes, and real chunks with a few bytes changed.
            for mut candidate in [bytes, Chunk::encode(&regular(50)).as_bytes().to_vec()] {
                for (at, x) in &flips {
                    if !candidate.is_empty() {
                        let i = at % candidate.len();
                        candidate[i] ^= x;
                    }
                }
                if let Ok(chunk) = Chunk::from_bytes(candidate)
                    && let Ok(samples) = chunk.decode()
                {
                    prop_assert!(samples.windows(2).all(|w| w[0].0 <= w[1].0));
                    prop_assert!(samples.len() <= chunk.len());
                }
            }
        }
    }
}
