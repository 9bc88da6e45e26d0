//! The engine's cache of decoded windows of series (`timeseries::series::Window`).
//!
//! Profiling pipelined `TS.MADD` showed each round reading every window it writes from the
//! store and decoding it (a minute of a sensor, up to thousands of samples), only to add a
//! few samples and encode it again: 14% of the engine's time in the read and the decode. The
//! engine is the only writer, so a cache it fills after each commit is exact, as the record
//! cache is (`cache.rs`): after a commit, every window the batch put or removed is dropped
//! from the cache, then the windows the round held are put back as committed.
//!
//! A round *takes* a window out (no copy: a window is moved into the round, changed there, and
//! moved back at commit). A round that fails or holds a window without committing simply
//! leaves it out: a miss reads the store. Eviction is first in, first out, bounded by the
//! writes and deletes the cached windows hold, not by their number: one window of a 1 kHz
//! sensor holds 60,000 samples.

use bytes::Bytes;
use std::collections::VecDeque;
use timeseries::series::Window;

/// foldhash, seeded at random per process, as in `txn.rs`.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A window of a key, by the key and the window's stored name.
type Name = (Bytes, Bytes);

/// Decoded windows, as committed.
#[derive(Debug)]
pub struct WindowCache {
    /// Each window with the insertion that placed it (its place in `order`).
    map: HashMap<Name, (u64, Window)>,
    /// Insertions, oldest first; one whose window was taken or placed again since is stale.
    order: VecDeque<(Name, u64)>,
    inserted: u64,
    weight: usize,
    weight_max: usize,
}

fn weight_of(window: &Window) -> usize {
    window.weight() + 1
}

impl WindowCache {
    /// An empty cache holding at most `weight_max` writes and deletes (0 disables it).
    pub fn new(weight_max: usize) -> WindowCache {
        WindowCache {
            map: HashMap::default(),
            order: VecDeque::new(),
            inserted: 0,
            weight: 0,
            weight_max,
        }
    }

    /// Takes `key`'s window `name` out, if cached.
    pub fn take(&mut self, key: &Bytes, name: &Bytes) -> Option<Window> {
        let (_, window) = self.map.remove(&(key.clone(), name.clone()))?;
        self.weight -= weight_of(&window);
        Some(window)
    }

    /// Drops what is cached of `key`'s window `name`: a commit changed it.
    pub fn forget(&mut self, key: &Bytes, name: &Bytes) {
        self.take(key, name);
    }

    /// Caches `window` as what is committed of `key`'s window `name`.
    pub fn insert(&mut self, key: Bytes, name: Bytes, window: Window) {
        let weight = weight_of(&window);
        if weight > self.weight_max / 4 {
            return; // a window this large would push out most of the others
        }
        self.inserted += 1;
        let at = self.inserted;
        if let Some((_, old)) = self.map.insert((key.clone(), name.clone()), (at, window)) {
            self.weight -= weight_of(&old);
        }
        self.weight += weight;
        self.order.push_back(((key, name), at));
        while self.weight > self.weight_max {
            let Some((name, at)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&name).is_some_and(|(placed, _)| *placed == at) {
                let (_, old) = self.map.remove(&name).expect("found");
                self.weight -= weight_of(&old);
            }
        }
        // Stale insertions (taken, or placed again since) are dropped once they outnumber
        // the windows, so the queue stays within twice the map.
        if self.order.len() > 2 * self.map.len() + 1024 {
            let map = &self.map;
            (self.order).retain(|(name, at)| map.get(name).is_some_and(|(p, _)| p == at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use timeseries::series::{Stamp, Write};

    fn window(samples: i64) -> Window {
        let mut w = Window::default();
        for ts in 0..samples {
            let stamp = Stamp::new(hlc::Timestamp::new(1, ts as u16), crdt::NodeId(1));
            w.write(Write {
                ts,
                value: 1.0,
                stamp,
            });
        }
        w
    }

    fn name(n: &str) -> (Bytes, Bytes) {
        (Bytes::from("k"), Bytes::from(n.to_string()))
    }

    #[test]
    fn a_window_taken_is_gone_until_put_back() {
        let mut c = WindowCache::new(100);
        let (k, n) = name("a");
        c.insert(k.clone(), n.clone(), window(3));
        assert_eq!(c.take(&k, &n), Some(window(3)));
        assert_eq!(c.take(&k, &n), None);
        c.insert(k.clone(), n.clone(), window(4));
        c.forget(&k, &n);
        assert!(c.map.is_empty());
    }

    #[test]
    fn bounded_by_the_writes_held_oldest_out_first() {
        let mut c = WindowCache::new(20);
        let k = Bytes::from("k");
        for n in ["a", "b", "c"] {
            c.insert(k.clone(), name(n).1, window(4)); // a weight of 5 each
        }
        let a = name("a").1;
        // Taken and put back: "a" is now the newest, so "b" goes first.
        let w = c.take(&k, &a).unwrap();
        c.insert(k.clone(), a.clone(), w);
        c.insert(k.clone(), name("d").1, window(4));
        assert_eq!(c.map.len(), 4);
        c.insert(k.clone(), name("e").1, window(4));
        assert_eq!(c.map.len(), 4);
        assert!(c.take(&k, &name("b").1).is_none());
        assert!(c.take(&k, &a).is_some());
        // Larger than a quarter of the cache: not kept.
        c.insert(k.clone(), name("huge").1, window(10));
        assert!(c.take(&k, &name("huge").1).is_none());
    }
}
