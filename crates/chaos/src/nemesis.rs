//! Faults on a schedule: partitions (two halves, one node isolated, a bridge, one way), kill -9
//! and restart, SIGSTOP/SIGCONT, clock skew within and beyond the maximum offset, a disk
//! wiped. WAN delay with jitter is set for the whole run when enabled (see `main.rs`).

use crate::cluster::Cluster;
use crate::history::{History, Op, Outcome};
use crate::hosts::Hosts;
use crate::workload::Rng;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The kinds of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Network partitions of every shape.
    Partition,
    /// kill -9 and restart.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Pause,
    /// A node's clock skewed within and beyond the maximum offset.
    Skew,
    /// WAN delay with jitter on every peer link.
    Wan,
    /// kill -9, the data directory removed, and a restart: the node comes back empty.
    Wipe,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 6] = [
        Fault::Partition,
        Fault::Kill,
        Fault::Pause,
        Fault::Skew,
        Fault::Wan,
        Fault::Wipe,
    ];

    /// Parses `partition`, `kill`, `pause`, `skew`, `wan`, `wipe`.
    pub fn parse(s: &str) -> Option<Fault> {
        Some(match s {
            "partition" => Fault::Partition,
            "kill" => Fault::Kill,
            "pause" => Fault::Pause,
            "skew" => Fault::Skew,
            "wan" => Fault::Wan,
            "wipe" => Fault::Wipe,
            _ => return None,
        })
    }
}

/// Applies one fault of a kind from `faults` (not `Wan`), holds it, and undoes it. Answers a
/// description for the summary. `held` quiets a node's clients; a wipe goes in `history`.
pub fn one(
    faults: &[Fault],
    hosts: &Hosts,
    cluster: &mut Cluster,
    rng: &mut Rng,
    held: &[AtomicBool],
    history: &History,
) -> anyhow::Result<String> {
    let t_ms = history.now_ms();
    let timed: Vec<Fault> = faults
        .iter()
        .copied()
        .filter(|f| *f != Fault::Wan)
        .collect();
    if timed.is_empty() {
        std::thread::sleep(Duration::from_secs(5));
        return Ok(format!("t={t_ms} nothing"));
    }
    let n = cluster.nodes.len();
    let hold = Duration::from_millis(2000 + rng.below(6000));
    let a = rng.below(n as u64) as usize;
    let fault = timed[rng.below(timed.len() as u64) as usize];
    let what = match fault {
        Fault::Partition => {
            let (what, pairs) = partition(n, a, rng);
            for (x, y) in &pairs {
                hosts.block(*x, *y)?;
            }
            std::thread::sleep(hold);
            hosts.heal()?;
            what
        }
        Fault::Kill => {
            cluster.kill(a);
            std::thread::sleep(hold);
            cluster.start(a, None)?;
            format!("kill -9 {}", cluster.nodes[a].name)
        }
        Fault::Pause => {
            cluster.pause(a);
            std::thread::sleep(hold);
            cluster.resume(a);
            format!("pause {}", cluster.nodes[a].name)
        }
        Fault::Skew => {
            let skew = [0.3, -0.3, 1.5][rng.below(3) as usize];
            cluster.stop(a);
            cluster.start(a, Some(skew))?;
            std::thread::sleep(hold);
            cluster.stop(a);
            cluster.start(a, None)?;
            format!("clock of {} {skew:+} s", cluster.nodes[a].name)
        }
        Fault::Wipe => {
            return Ok(format!(
                "t={t_ms} {}",
                wipe(cluster, a, hold, held, history)?
            ));
        }
        Fault::Wan => unreachable!("filtered out"),
    };
    Ok(format!("t={t_ms} {what} for {} ms", hold.as_millis()))
}

/// Wipes node `a`'s disk once every peer holds all of its own writes, so no acknowledged
/// write can be lost with it, and restarts it after `down`. Its clients pause (their calls in
/// flight end within the client timeout), then INFO must show every peer linked and
/// `lag_ms:0` (nothing of this node's it has not acknowledged durably). The wipe is recorded
/// in the history: the node comes back empty and catches up, so its clients' reads start a
/// new session there (see `check.rs`). Answers a description without the time.
fn wipe(
    cluster: &mut Cluster,
    a: usize,
    down: Duration,
    held: &[AtomicBool],
    history: &History,
) -> anyhow::Result<String> {
    let name = cluster.nodes[a].name.clone();
    if !cluster.running(a) || cluster.nodes[a].paused {
        return Ok(format!("wipe {name} skipped (not running)"));
    }
    held[a].store(true, Ordering::Relaxed);
    std::thread::sleep(crate::workload::TIMEOUT + Duration::from_millis(300));
    let peers = cluster.nodes.len() - 1;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut quiet = false;
    while Instant::now() < deadline {
        if cluster.peers_holding_all(a) == Some(peers) {
            quiet = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !quiet {
        held[a].store(false, Ordering::Relaxed);
        return Ok(format!("wipe {name} skipped (a peer lacks its writes)"));
    }
    cluster.kill(a);
    let at_ms = history.now_ms();
    history.record(Op {
        client: usize::MAX,
        node: a,
        f: "wipe".into(),
        key: String::new(),
        arg: None,
        invoke_ms: at_ms,
        complete_ms: at_ms,
        outcome: Outcome::Ok,
        read: serde_json::Value::Null,
    });
    cluster.wipe(a)?;
    // Its clients try again at once, so writes reach the empty node before its peers have
    // told it anything (a node that reused its old write id lost exactly those).
    held[a].store(false, Ordering::Relaxed);
    std::thread::sleep(down);
    cluster.start(a, None)?;
    Ok(format!("wipe {name}, down for {} ms", down.as_millis()))
}

/// A partition around node `a`: answers its description and the (from, to) pairs to block.
fn partition(n: usize, a: usize, rng: &mut Rng) -> (String, Vec<(usize, usize)>) {
    let both = |x: usize, y: usize| [(x, y), (y, x)];
    match rng.below(4) {
        0 => {
            let pairs = (0..n)
                .filter(|&b| b != a)
                .flat_map(|b| both(a, b))
                .collect();
            (format!("isolate n{}", a + 1), pairs)
        }
        1 => {
            let mut side: Vec<bool> = (0..n).map(|_| rng.below(2) == 0).collect();
            side[a] = true;
            side[(a + 1) % n] = false;
            let pairs = (0..n)
                .flat_map(|x| (0..n).map(move |y| (x, y)))
                .filter(|&(x, y)| side[x] && !side[y])
                .flat_map(|(x, y)| both(x, y))
                .collect();
            (format!("halves {side:?}"), pairs)
        }
        2 if n >= 3 => {
            // `a` bridges two groups that cannot reach each other.
            let others: Vec<usize> = (0..n).filter(|&x| x != a).collect();
            let (left, right) = others.split_at(others.len() / 2);
            let pairs = left
                .iter()
                .flat_map(|&x| right.iter().flat_map(move |&y| both(x, y)))
                .collect();
            (
                format!("bridge n{} between {left:?} and {right:?}", a + 1),
                pairs,
            )
        }
        _ => {
            let b = (a + 1 + rng.below(n as u64 - 1) as usize) % n;
            (format!("one-way n{} -/-> n{}", a + 1, b + 1), vec![(a, b)])
        }
    }
}
