//! A seeded simulation of a whole Meridian cluster in one thread.
//!
//! The nodes run Meridian's own code: the command table and transactions of `node`, the log
//! sealing and entry application of its engine, the replication core, the membership (SWIM)
//! core with its datagrams on the same simulated network, the CRDTs, over an in-memory store. What the simulator replaces is the runtime: time is virtual, the network
//! is a queue of deliveries with a per-region delay matrix, jitter (so messages reorder),
//! loss and duplication, and faults come from a nemesis: crashes that lose what was not
//! synced (nodes run `--fsync always` or `batch`), crashes that wipe the disk (the node comes
//! back empty under a new write id, as a real node does), restarts, partitions (one node isolated,
//! two halves, one-way). Each node's clock is skewed by up to the maximum offset.
//!
//! A run ([`World::run`]) has a faulty phase under a random client workload, then heals every
//! fault and checks: replicas converge and are identical; every acknowledged counter
//! increment is counted exactly once; each string holds the acknowledged SET with the highest
//! (HLC, node id); set members follow add-wins; each node's acknowledged HLCs only grow;
//! throughout, no node shows a client's second write without its first; and within 30 s of
//! the heal every node's gossip holds every other node alive. Everything random
//! comes from the seed, so a failing seed replays exactly: `cargo run --release -p sim --
//! --seed S`.
#![deny(missing_docs)]

mod check;
mod node;
mod rng;
mod world;

pub use world::{Options, Summary, World};

/// Runs one seed with the given shape.
pub fn run(opts: Options) -> Result<Summary, String> {
    World::new(opts).run()
}

/// The shape CI and the regression tests use, for `seed`.
pub fn default_options(seed: u64) -> Options {
    Options {
        seed,
        nodes: 3 + (seed % 3) as usize,
        faulty_ms: 20_000,
        ops_per_sec: 200,
        wipes: true,
        deletes: true,
        repairs: true,
        derived: true,
        series: true,
    }
}
