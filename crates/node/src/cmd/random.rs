//! Random picks: `SPOP`, `SRANDMEMBER`, `HRANDFIELD`, `ZRANDMEMBER` and `RANDOMKEY`.
//!
//! A small collection is read whole and picked from uniformly, as Redis does. A large one
//! is not: the store keeps parts in name order with no index by position, so reading the
//! whole collection per pick made each call O(n) (`SPOP` on a 60k-member set ran at a few
//! hundred calls a second). A large collection is instead entered at a random name and a
//! window of the live parts that follow it is read, one of which is picked. A random name
//! drawn from raw bytes would almost always fall before or after every name that shares a
//! prefix (`user:1` ... `user:99999`), so the name is drawn from the names' own alphabet,
//! position by position, learned from the first and last names of the collection
//! ([`Alphabet`]). The pick
//! is not exactly uniform (names after a sparse stretch come up more often), which Redis
//! documents of its own `SRANDMEMBER` too. A collection read whole costs O(n); a large one
//! O(count + 3 x 8) parts read (the two ends and the window).

use super::Ctx;
use crate::engine::Part;
use bytes::Bytes;
use resp::Reply;

const ERR_RANGE: &str =
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";

/// Collections up to this size are read whole for a pick: exactly uniform.
pub(super) const READ_WHOLE: usize = 512;
/// How many names of each end teach a draw the alphabet, and how many live parts past the
/// random name a pick chooses among. Small: each part read costs a step of the storage
/// engine's iterator, and a pick runs on the engine thread (`SPOP`); 8 already spreads picks
/// over a set of names with a shared prefix (`tests/engine.rs`).
pub(super) const WINDOW: usize = 8;

/// A random number from the operating system.
pub(super) fn random() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    u64::from_le_bytes(bytes)
}

/// A random index below `n` (which is not 0).
pub(super) fn below(n: usize) -> usize {
    (random() % n as u64) as usize
}

/// `count` distinct items picked at random (all of them when there are fewer).
pub(super) fn pick<T>(items: Vec<T>, count: usize) -> Vec<T> {
    let mut items = items;
    let count = count.min(items.len());
    for i in 0..count {
        let j = i + below(items.len() - i);
        items.swap(i, j);
    }
    items.truncate(count);
    items
}

/// How many distinct parts to draw `count` repeating picks from, of a collection of `len`:
/// a window's worth more than the picks, so that few picks do not all repeat one part.
pub(super) fn pool(count: u64, len: usize) -> usize {
    count.saturating_add(WINDOW as u64).min(len as u64) as usize
}

/// `count` items picked at random, each independently (so they may repeat); none from none.
pub(super) fn pick_repeating<T: Clone>(items: &[T], count: u64) -> Vec<T> {
    if items.is_empty() {
        return Vec::new();
    }
    (0..count)
        .map(|_| items[below(items.len())].clone())
        .collect()
}

/// The count argument of `SRANDMEMBER`, `HRANDFIELD` and `ZRANDMEMBER`, if given (negative:
/// picks may repeat).
pub(super) fn count_arg(arg: Option<&Bytes>) -> Result<Option<i64>, Reply> {
    match arg.map(|c| resp::args::parse_i64(c)) {
        None => Ok(None),
        Some(Some(i64::MIN)) => Err(Reply::err(ERR_RANGE)),
        Some(Some(n)) if n > -(1 << 40) => Ok(Some(n)),
        // Redis refuses counts whose reply would overflow; Meridian bounds them lower.
        Some(Some(_)) => Err(Reply::err("ERR value is out of range")),
        Some(_) => Err(Reply::err(resp::args::ERR_NOT_INTEGER)),
    }
}

/// Draws names shaped like a sample of real ones. A key space mixes families of names
/// (`user:...`, `session:...`, a few lone keys), so a draw first picks a family, by the first
/// byte of a random sample, as often as the samples hold it; then, among that family's
/// samples, the length of a random one, and at each position a byte between the least and
/// greatest they hold there (between `user:1...` and `user:9...` lie `user:2...` and on).
#[derive(Default)]
pub(super) struct Alphabet {
    names: Vec<Bytes>,
}

impl Alphabet {
    pub(super) fn learn(&mut self, name: &Bytes) {
        self.names.push(name.clone());
    }

    /// A random name (empty before any sample).
    pub(super) fn draw(&self) -> Bytes {
        if self.names.is_empty() {
            return Bytes::new();
        }
        let first = self.names[below(self.names.len())].first();
        let family: Vec<&Bytes> = (self.names.iter()).filter(|n| n.first() == first).collect();
        let len = family[below(family.len())].len();
        (0..len)
            .map(|i| {
                let at = family.iter().filter_map(|n| n.get(i).copied());
                let (low, high) = at.fold((u8::MAX, 0), |(l, h), b| (l.min(b), h.max(b)));
                low + below(usize::from(high - low) + 1) as u8
            })
            .collect::<Vec<u8>>()
            .into()
    }
}

/// Up to `count` distinct live parts of `key`, which holds `len` of them, picked at random.
pub(super) fn parts<T: Part>(
    ctx: &mut Ctx<'_, '_>,
    key: &Bytes,
    len: usize,
    count: usize,
) -> Vec<(Bytes, T)> {
    let count = count.min(len);
    if count == 0 {
        return Vec::new();
    }
    if len <= READ_WHOLE || count >= len / 2 {
        let live = (ctx.txn.all_parts::<T>(key).into_iter())
            .filter(|(_, p)| p.live())
            .collect();
        return pick(live, count);
    }
    let mut alphabet = Alphabet::default();
    for backwards in [false, true] {
        let mut seen = 0;
        ctx.txn.walk_parts::<T>(key, backwards, |name, part| {
            if part.live() {
                alphabet.learn(name);
                seen += 1;
            }
            seen < WINDOW
        });
    }
    let start = alphabet.draw();
    let want = count.max(WINDOW);
    let mut window = Vec::with_capacity(want);
    let take = |window: &mut Vec<(Bytes, T)>, name: &Bytes, part: &T| {
        if part.live() {
            window.push((name.clone(), part.clone()));
        }
        window.len() < want
    };
    (ctx.txn).walk_parts_after::<T>(key, Some(start.clone()), |name, part| {
        take(&mut window, name, part)
    });
    if window.len() < want {
        // Past the last name: on from the first, up to where the window began.
        ctx.txn.walk_parts_after::<T>(key, None, |name, part| {
            name <= &start && take(&mut window, name, part)
        });
    }
    pick(window, count)
}
