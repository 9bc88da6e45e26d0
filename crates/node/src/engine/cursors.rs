//! SCAN cursors.
//!
//! Redis clients treat a cursor as a number (redis-py parses it as an integer), but our
//! keyspace is ordered by key, so a position is a key. The engine parks the last key a SCAN
//! step returned under a fresh number and resumes from it. The table is bounded: the oldest
//! parked cursors are forgotten first, and resuming a forgotten one is an error.

use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};

/// Most cursors kept at once.
const CURSORS_MAX: usize = 16 * 1024;

/// Parked SCAN positions.
#[derive(Debug, Default)]
pub struct Cursors {
    next_id: u64,
    parked: BTreeMap<u64, Bytes>,
    order: VecDeque<u64>,
}

impl Cursors {
    /// Parks `last_key` and returns the cursor number that resumes after it (never 0).
    pub fn park(&mut self, last_key: Bytes) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.parked.insert(id, last_key);
        self.order.push_back(id);
        while self.order.len() > CURSORS_MAX {
            if let Some(old) = self.order.pop_front() {
                self.parked.remove(&old);
            }
        }
        id
    }

    /// The key a cursor resumes after, if the cursor is still known. A cursor may be resumed
    /// more than once (a client retrying a step).
    pub fn resume(&self, id: u64) -> Option<Bytes> {
        self.parked.get(&id).cloned()
    }
}
