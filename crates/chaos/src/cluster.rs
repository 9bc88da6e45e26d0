//! Meridian nodes as real processes, one per host namespace, and the faults done to them.

use crate::client::{Client, Reply};
use crate::hosts::Hosts;
use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's libfaketime lives.
pub const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
/// The regions nodes are spread over.
const REGIONS: [&str; 3] = ["eu", "us", "ap"];

/// One node.
pub struct Node {
    /// `n1`, `n2`, ...
    pub name: String,
    /// Its region.
    pub region: String,
    /// Its Redis-protocol address.
    pub addr: SocketAddr,
    ns: String,
    peer_addr: String,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// Stopped with SIGSTOP.
    pub paused: bool,
    /// Clock offset in seconds while skewed.
    pub skew: Option<f64>,
}

/// The cluster of one run.
pub struct Cluster {
    /// Its nodes, by host index.
    pub nodes: Vec<Node>,
    binary: PathBuf,
    extra: Vec<String>,
}

impl Cluster {
    /// A node per host, data under `base`; `extra` flags go to every node.
    pub fn new(hosts: &Hosts, binary: &Path, base: &Path, extra: Vec<String>) -> Cluster {
        let nodes = hosts
            .names
            .iter()
            .enumerate()
            .map(|(i, ns)| Node {
                name: format!("n{}", i + 1),
                region: REGIONS[i % 3].to_string(),
                addr: format!("{}:7379", hosts.address(i))
                    .parse()
                    .expect("literal address"),
                ns: ns.clone(),
                peer_addr: format!("{}:7381", hosts.address(i)),
                data_dir: base.join(format!("n{}", i + 1)),
                log: base.join(format!("n{}.log", i + 1)),
                child: None,
                paused: false,
                skew: None,
            })
            .collect();
        Cluster {
            nodes,
            binary: binary.to_path_buf(),
            extra,
        }
    }

    /// Starts node `i` (with its clock `skew` seconds off) and waits until it answers.
    pub fn start(&mut self, i: usize, skew: Option<f64>) -> anyhow::Result<()> {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i && *j < 2)
            .map(|(_, n)| n.peer_addr.clone())
            .collect();
        let n = &mut self.nodes[i];
        let host = n
            .peer_addr
            .split(':')
            .next()
            .expect("host:port")
            .to_string();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &n.ns]).arg(&self.binary).args([
            "server",
            "--node-id",
            &n.name,
            "--region",
            &n.region,
            "--data-dir",
            &n.data_dir.display().to_string(),
            "--resp-addr",
            &format!("{host}:7379"),
            "--http-addr",
            &format!("{host}:7380"),
            "--peer-addr",
            &n.peer_addr,
            "--cluster-secret",
            "chaos",
            // Plain peer links between the namespaces (TLS on peer links is tested by
            // tests/test_peer_tls.py); the node warns at start.
            "--insecure-peers",
            "--fsync",
            "always",
            // The checker's clients connect from outside the node's namespace.
            "--protected-mode",
            "no",
        ]);
        if !seeds.is_empty() {
            cmd.args(["--join", &seeds.join(",")]);
        }
        cmd.args(&self.extra);
        if let Some(s) = skew {
            cmd.env("FAKETIME", format!("{s:+}"))
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .env("LD_PRELOAD", FAKETIME_LIB);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)
            .with_context(|| format!("opening {}", n.log.display()))?;
        cmd.stdout(Stdio::null()).stderr(log);
        n.child = Some(cmd.spawn().context("starting meridian")?);
        n.paused = false;
        n.skew = skew;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut probe = Client::new(n.addr, Duration::from_millis(500));
        while Instant::now() < deadline {
            if let Ok(Reply::Simple(p)) = probe.call(&[b"PING"])
                && p == "PONG"
            {
                return Ok(());
            }
            if let Some(status) = n.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!(
                    "{} exited at start with {status}; see {}",
                    n.name,
                    n.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("{} did not answer within 20 s", n.name)
    }

    fn signal(&self, i: usize, signal: &str) {
        if let Some(c) = &self.nodes[i].child {
            let _ = Command::new("kill")
                .args([signal, &c.id().to_string()])
                .output();
        }
    }

    /// Whether node `i`'s process runs.
    pub fn running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// SIGKILL.
    pub fn kill(&mut self, i: usize) {
        self.signal(i, "-KILL");
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.wait();
        }
        self.nodes[i].paused = false;
    }

    /// SIGTERM, and wait for the exit.
    pub fn stop(&mut self, i: usize) {
        if self.nodes[i].paused {
            self.resume(i);
        }
        self.signal(i, "-TERM");
        if let Some(mut c) = self.nodes[i].child.take() {
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Removes node `i`'s data directory (the node must be stopped).
    pub fn wipe(&mut self, i: usize) -> anyhow::Result<()> {
        assert!(!self.running(i), "wipe a stopped node");
        let dir = &self.nodes[i].data_dir;
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
    }

    /// SIGSTOP.
    pub fn pause(&mut self, i: usize) {
        self.signal(i, "-STOP");
        self.nodes[i].paused = true;
    }

    /// SIGCONT.
    pub fn resume(&mut self, i: usize) {
        self.signal(i, "-CONT");
        self.nodes[i].paused = false;
    }

    /// Node `i`'s INFO replication text.
    fn replication_info(&self, i: usize) -> Option<String> {
        let mut c = Client::new(self.nodes[i].addr, Duration::from_secs(1));
        match c.call(&[b"INFO", b"replication"]) {
            Ok(Reply::Bulk(Some(text))) => Some(String::from_utf8_lossy(&text).into_owned()),
            _ => None,
        }
    }

    /// Peers node `i` has a session with, from INFO replication.
    pub fn connected_peers(&self, i: usize) -> Option<usize> {
        self.replication_info(i)?
            .lines()
            .find_map(|l| l.strip_prefix("connected_peers:"))
            .and_then(|v| v.trim().parse().ok())
    }

    /// How many peers hold every write of node `i`'s own durably, as node `i` tells: linked,
    /// with `lag_ms:0`.
    pub fn peers_holding_all(&self, i: usize) -> Option<usize> {
        let info = self.replication_info(i)?;
        let holding = info
            .lines()
            .filter(|l| l.starts_with("peer"))
            .filter(|l| {
                let fields: Vec<&str> = l.split([':', ',']).collect();
                fields.contains(&"link=up") && fields.contains(&"lag_ms=0")
            })
            .count();
        Some(holding)
    }

    /// How node `i` sees each peer: `name state link` (gossip state, replication link).
    pub fn peer_views(&self, i: usize) -> Option<Vec<String>> {
        let info = self.replication_info(i)?;
        let views = info
            .lines()
            .filter(|l| l.starts_with("peer"))
            .map(|l| {
                let field = |name: &str| {
                    l.split([':', ','])
                        .find_map(|kv| kv.strip_prefix(name))
                        .unwrap_or("?")
                        .to_string()
                };
                format!(
                    "{} {} link={}",
                    field("name="),
                    field("state="),
                    field("link=")
                )
            })
            .collect();
        Some(views)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}
