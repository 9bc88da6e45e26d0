//! Faults on a schedule: partitions (two halves, one node isolated, a bridge, one way), kill -9
//! and restart, SIGSTOP/SIGCONT, clock skew within and beyond the maximum offset. WAN delay
//! with jitter is set for the whole run when enabled (see `main.rs`).

use crate::cluster::Cluster;
use crate::hosts::Hosts;
use crate::workload::Rng;
use std::time::Duration;

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
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 5] = [
        Fault::Partition,
        Fault::Kill,
        Fault::Pause,
        Fault::Skew,
        Fault::Wan,
    ];

    /// Parses `partition`, `kill`, `pause`, `skew`, `wan`.
    pub fn parse(s: &str) -> Option<Fault> {
        Some(match s {
            "partition" => Fault::Partition,
            "kill" => Fault::Kill,
            "pause" => Fault::Pause,
            "skew" => Fault::Skew,
            "wan" => Fault::Wan,
            _ => return None,
        })
    }
}

/// Applies one fault of a kind from `faults` (not `Wan`), holds it, and undoes it. Answers a
/// description for the summary.
pub fn one(
    faults: &[Fault],
    hosts: &Hosts,
    cluster: &mut Cluster,
    rng: &mut Rng,
    t_ms: u64,
) -> anyhow::Result<String> {
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
        Fault::Wan => unreachable!("filtered out"),
    };
    Ok(format!("t={t_ms} {what} for {} ms", hold.as_millis()))
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
