//! Replication bookkeeping for Meridian (design section 5), with no I/O.
//!
//! A tour:
//! - [`VersionVector`]: per origin node, the highest contiguous sequence number held. It
//!   says what a node has, what a peer lacks, when the log may be truncated and when `WAIT`
//!   may answer.
//! - [`Entry`] and [`Change`]: one round of writes on one node as a list of CRDT deltas,
//!   numbered per origin and carrying the version vector it depends on. Entries are what the
//!   change log holds, what peers ship and what replicas apply.
//! - [`Replicator`]: the state machine that decides what to ship to whom, holds early
//!   arrivals until they can apply in causal order, and reports lag. The node's runtime and
//!   the simulator both drive it, through [`Replicator::tick`] and the other inputs, and carry
//!   out its [`Effect`]s.
//! - [`Stability`]: when a tombstone may be forgotten, from the vectors members acknowledge
//!   (causal stability), so deleted state does not stay forever.
#![deny(missing_docs)]

mod core;
mod entry;
mod stability;
mod vv;

pub use core::{Config, Effect, Peer, Replicator};
pub use entry::{Change, Entry};
pub use stability::Stability;
pub use vv::VersionVector;
