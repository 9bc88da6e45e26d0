//! Where clients should go (design section 5b, issue 15), with no I/O: how far each member is.
//!
//! - [`Rtt`]: the round trip to one peer, from the link's pings: the minimum of the recent
//!   samples (queueing only ever adds to a round trip) smoothed by an EWMA, so one slow
//!   answer moves nothing and a real change of path shows within a few samples.
//! - [`Coordinate`]: Vivaldi network coordinates (Dabek et al., as Serf and Consul use them):
//!   each node places itself in a small Euclidean space plus a height (its access link) so that
//!   distances between coordinates predict round trips, also between pairs of members that
//!   have no link with each other.
//! - [`pick`]: which node a client asking for a region should use: a healthy node of the
//!   region (weighted by capacity), else the healthy node nearest to the region; the same
//!   answer from every node that has the same view.
#![deny(missing_docs)]

mod pick;
mod rtt;
mod vivaldi;

pub use pick::{Candidate, pick};
pub use rtt::Rtt;
pub use vivaldi::{Coordinate, DIMENSIONS};
