//! Hybrid logical clock (HLC).
//!
//! A timestamp is 64 bits: the high 48 hold physical milliseconds since the Unix epoch, the low
//! 16 a logical counter. This is the scheme of CockroachDB and of the `uhlc` crate: a timestamp
//! is always at least the physical clock, never goes backwards on one node, and a node that
//! receives a remote timestamp moves past it, so causally later events carry later timestamps
//! even when the nodes' physical clocks disagree.
//!
//! The clock never reads the time itself. Every call takes `now_ms`, the caller's physical
//! time, so a simulation can give each node its own skew. A remote timestamp further ahead of
//! local physical time than the maximum offset is refused: accepting it would drag this node's
//! clock (and every later write it stamps) into the future.
//!
//! ```
//! use hlc::{Clock, Timestamp};
//! let mut clock = Clock::new(500);
//! let a = clock.now(1_000);
//! let b = clock.now(1_000); // same millisecond: the logical counter moves on
//! assert!(b > a);
//! let remote = Timestamp::new(1_200, 3);
//! let c = clock.observe(1_000, remote).unwrap(); // 200 ms ahead: within the 500 ms bound
//! assert!(c > remote);
//! assert!(clock.observe(1_000, Timestamp::new(9_000, 0)).is_err());
//! ```
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};
use std::fmt;

/// Bits of the logical counter in a timestamp.
const LOGICAL_BITS: u32 = 16;
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;
/// Largest physical time a timestamp can carry (48 bits of milliseconds: year 10889).
const PHYSICAL_MAX_MS: u64 = (1 << 48) - 1;

/// One HLC timestamp: physical milliseconds in the high 48 bits, a logical counter in the low 16.
/// Ordered as a plain integer, which orders by physical time and then by counter.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The zero timestamp, earlier than every timestamp a clock hands out.
    pub const ZERO: Timestamp = Timestamp(0);

    /// Builds a timestamp from its two parts. Panics on a physical time beyond 48 bits, which
    /// no real clock reaches.
    pub fn new(physical_ms: u64, logical: u16) -> Timestamp {
        assert!(
            physical_ms <= PHYSICAL_MAX_MS,
            "physical time {physical_ms} ms beyond 48 bits"
        );
        Timestamp((physical_ms << LOGICAL_BITS) | u64::from(logical))
    }

    /// Physical milliseconds since the Unix epoch.
    pub fn physical_ms(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    /// Logical counter within the millisecond.
    pub fn logical(self) -> u16 {
        (self.0 & LOGICAL_MASK) as u16
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.physical_ms(), self.logical())
    }
}

/// Why a clock refused to advance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// A remote timestamp is further ahead of local physical time than the maximum offset.
    /// The clock is untouched; the sender's clock (or ours) is wrong, and an operator should
    /// know. Happens in normal operation only when clocks are badly synchronised.
    #[error(
        "remote timestamp {remote} is {ahead_ms} ms ahead of local time, beyond the {max_offset_ms} ms maximum offset"
    )]
    OffsetExceeded {
        /// The refused timestamp.
        remote: Timestamp,
        /// How far ahead of local physical time it was.
        ahead_ms: u64,
        /// The configured bound.
        max_offset_ms: u64,
    },
    /// The logical counter would overflow its 16 bits: more than 65,535 events in one
    /// millisecond while the physical clock stands still. The clock is untouched; the caller
    /// retries on the next millisecond.
    #[error("logical counter exhausted within one millisecond")]
    LogicalOverflow,
}

/// The clock of one node. Not thread-safe by itself: one owner (the node's engine) drives it.
#[derive(Debug, Clone)]
pub struct Clock {
    last: Timestamp,
    max_offset_ms: u64,
}

impl Clock {
    /// A clock that refuses remote timestamps more than `max_offset_ms` ahead of local time.
    pub fn new(max_offset_ms: u64) -> Clock {
        Clock {
            last: Timestamp::ZERO,
            max_offset_ms,
        }
    }

    /// A clock that resumes after `last`, the highest timestamp this node handed out or saw
    /// before it restarted, so that timestamps stay monotonic across restarts even when the
    /// physical clock was set back meanwhile.
    pub fn resume(max_offset_ms: u64, last: Timestamp) -> Clock {
        Clock {
            last,
            max_offset_ms,
        }
    }

    /// The highest timestamp handed out or observed so far.
    pub fn last(&self) -> Timestamp {
        self.last
    }

    /// The configured maximum offset in milliseconds.
    pub fn max_offset_ms(&self) -> u64 {
        self.max_offset_ms
    }

    /// A timestamp for a local event: greater than every timestamp before it.
    pub fn now(&mut self, now_ms: u64) -> Timestamp {
        match self.try_now(now_ms) {
            Ok(ts) => ts,
            // 65,536 events within one frozen millisecond: borrow the next millisecond, which
            // keeps the order; the physical part catches up as real time passes.
            Err(_) => {
                self.last = Timestamp::new(self.last.physical_ms() + 1, 0);
                self.last
            }
        }
    }

    fn try_now(&mut self, now_ms: u64) -> Result<Timestamp, ClockError> {
        let now_ms = now_ms.min(PHYSICAL_MAX_MS);
        let next = if now_ms > self.last.physical_ms() {
            Timestamp::new(now_ms, 0)
        } else {
            self.bump_logical(self.last)?
        };
        self.last = next;
        Ok(next)
    }

    /// Observes a timestamp received from another node and returns a local timestamp later than
    /// both it and every earlier local one. Refuses (and stays untouched) when `remote` is more
    /// than the maximum offset ahead of `now_ms`.
    pub fn observe(&mut self, now_ms: u64, remote: Timestamp) -> Result<Timestamp, ClockError> {
        let ahead_ms = remote.physical_ms().saturating_sub(now_ms);
        if ahead_ms > self.max_offset_ms {
            return Err(ClockError::OffsetExceeded {
                remote,
                ahead_ms,
                max_offset_ms: self.max_offset_ms,
            });
        }
        let now_ms = now_ms.min(PHYSICAL_MAX_MS);
        let top = self.last.max(remote);
        let next = if now_ms > top.physical_ms() {
            Timestamp::new(now_ms, 0)
        } else {
            self.bump_logical(top)?
        };
        self.last = next;
        Ok(next)
    }

    fn bump_logical(&self, ts: Timestamp) -> Result<Timestamp, ClockError> {
        if ts.logical() == u16::MAX {
            return Err(ClockError::LogicalOverflow);
        }
        Ok(Timestamp(ts.0 + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn physical_time_moving_on_resets_the_counter() {
        let mut c = Clock::new(500);
        assert_eq!(c.now(10), Timestamp::new(10, 0));
        assert_eq!(c.now(10), Timestamp::new(10, 1));
        assert_eq!(c.now(11), Timestamp::new(11, 0));
    }

    #[test]
    fn physical_clock_going_back_does_not_move_timestamps_back() {
        let mut c = Clock::new(500);
        c.now(1_000);
        assert_eq!(c.now(900), Timestamp::new(1_000, 1));
    }

    #[test]
    fn remote_ahead_within_bound_is_followed() {
        let mut c = Clock::new(500);
        c.now(1_000);
        assert_eq!(
            c.observe(1_000, Timestamp::new(1_400, 7)),
            Ok(Timestamp::new(1_400, 8))
        );
        assert_eq!(c.now(1_001), Timestamp::new(1_400, 9));
    }

    #[test]
    fn remote_beyond_bound_is_refused_and_clock_untouched() {
        let mut c = Clock::new(500);
        let before = c.now(1_000);
        let err = c.observe(1_000, Timestamp::new(1_501, 0)).unwrap_err();
        assert_eq!(
            err,
            ClockError::OffsetExceeded {
                remote: Timestamp::new(1_501, 0),
                ahead_ms: 501,
                max_offset_ms: 500
            }
        );
        assert_eq!(c.last(), before);
    }

    #[test]
    fn counter_overflow_borrows_next_millisecond() {
        let mut c = Clock::resume(500, Timestamp::new(5, u16::MAX));
        assert_eq!(c.now(5), Timestamp::new(6, 0));
    }

    #[test]
    fn resume_keeps_monotonic_after_restart() {
        let mut c = Clock::resume(500, Timestamp::new(2_000, 3));
        assert_eq!(c.now(1_000), Timestamp::new(2_000, 4));
    }

    proptest! {
        /// Whatever the physical clock does and whatever remote timestamps arrive, every
        /// timestamp handed out is greater than the previous one and than every accepted
        /// remote timestamp, and never behind physical time.
        #[test]
        fn monotonic_and_after_observed(events in proptest::collection::vec((0u64..10_000, proptest::option::of(0u64..11_000)), 1..200)) {
            let mut c = Clock::new(500);
            let mut prev = Timestamp::ZERO;
            for (now_ms, remote) in events {
                let ts = match remote {
                    None => c.now(now_ms),
                    Some(r) => {
                        let remote = Timestamp::new(r, 0);
                        match c.observe(now_ms, remote) {
                            Ok(ts) => { prop_assert!(ts > remote); ts }
                            Err(_) => { prop_assert!(r > now_ms + 500); continue }
                        }
                    }
                };
                prop_assert!(ts > prev);
                prop_assert!(ts.physical_ms() >= now_ms);
                prev = ts;
            }
        }
    }
}
