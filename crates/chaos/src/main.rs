//! `cargo run --release -p chaos -- --nodes 5 --time 60 --nemesis all`
//!
//! Fault testing of a real Meridian cluster, as root: makes a network namespace per node on
//! one bridge, starts `meridian server` in each, drives clients over real RESP connections
//! while a nemesis partitions, kills, pauses, skews and wipes nodes, records every operation in a
//! JSONL history, heals everything, waits for convergence, reads every node's final state and
//! checks it against the history. Prints a summary and exits 1 on any anomaly.

mod check;
mod client;
mod cluster;
mod history;
mod hosts;
mod nemesis;
mod workload;

use anyhow::{Context, bail};
use clap::Parser;
use client::{Client, Reply};
use history::{History, Outcome};
use nemesis::Fault;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "Fault testing of a real Meridian cluster (needs root)")]
struct Args {
    /// Nodes, one per network namespace.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Seconds of workload under faults.
    #[arg(long, default_value_t = 60)]
    time: u64,
    /// Faults: `all` or a comma-separated list of partition, kill, pause, skew, wan, wipe.
    #[arg(long, default_value = "all")]
    nemesis: String,
    /// Seed of the workload and the fault schedule [default: the clock].
    #[arg(long)]
    seed: Option<u64>,
    /// Seconds the healed cluster has to converge.
    #[arg(long, default_value_t = 60)]
    converge: u64,
    /// Clients per node.
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// Where the history and the node logs go [default: target/chaos/<seed>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Only check a finished run again: the directory holding its history.jsonl and
    /// final-state.json.
    #[arg(long)]
    check: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chaos: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// The meridian binary next to this one, built first when run through cargo.
fn meridian_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("no directory")?;
    if let Ok(cargo) = std::env::var("CARGO") {
        let release = dir.ends_with("release");
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "-q", "-p", "meridian"]);
        if release {
            cmd.arg("--release");
        }
        if !cmd.status()?.success() {
            bail!("building meridian failed");
        }
    }
    let binary = dir.join("meridian");
    if !binary.exists() {
        bail!(
            "{} is missing: cargo build --release -p meridian",
            binary.display()
        );
    }
    Ok(binary)
}

/// Checks a finished run's saved history and final state again.
fn recheck(dir: &std::path::Path) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(dir.join("history.jsonl"))?;
    let ops: Vec<history::Op> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("reading history.jsonl")?;
    let state: check::FinalState =
        serde_json::from_str(&std::fs::read_to_string(dir.join("final-state.json"))?)?;
    report(&ops, &state)
}

/// Checks and prints; answers whether the run is clean.
fn report(ops: &[history::Op], state: &check::FinalState) -> anyhow::Result<bool> {
    if !check::converged(state) {
        println!("ANOMALY: the nodes' final states differ");
        return Ok(false);
    }
    let anomalies = check::all(ops, &state[0]);
    for a in &anomalies {
        println!("ANOMALY: {}", a.what);
        for op in a.ops.iter().take(30) {
            println!("  {}", serde_json::to_string(op)?);
        }
    }
    println!(
        "{}: {} anomalies",
        if anomalies.is_empty() { "PASS" } else { "FAIL" },
        anomalies.len()
    );
    Ok(anomalies.is_empty())
}

fn run(args: Args) -> anyhow::Result<bool> {
    if let Some(dir) = &args.check {
        return recheck(dir);
    }
    if std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() != "0")
        .unwrap_or(true)
    {
        bail!("needs root (network namespaces and iptables)");
    }
    let faults: Vec<Fault> = if args.nemesis == "all" {
        Fault::ALL.to_vec()
    } else {
        args.nemesis
            .split(',')
            .map(|s| Fault::parse(s.trim()).with_context(|| format!("unknown fault {s:?}")))
            .collect::<anyhow::Result<_>>()?
    };
    if faults.contains(&Fault::Skew) && !std::path::Path::new(cluster::FAKETIME_LIB).exists() {
        bail!("the skew fault needs libfaketime (apt-get install faketime)");
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    let binary = meridian_binary()?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("target/chaos/{seed}")));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    println!(
        "chaos: {} nodes, {} s, faults {:?}, seed {seed}; history and logs in {}",
        args.nodes,
        args.time,
        faults,
        out.display()
    );

    let hosts = hosts::Hosts::new(args.nodes)?;
    let mut extra = Vec::new();
    if faults.contains(&Fault::Wan) {
        extra.extend(["--wan-delay".into(), "eu-us=40,us-ap=75,eu-ap=110".into()]);
        extra.extend(["--wan-jitter-ms".into(), "20".into()]);
    }
    let mut cluster = cluster::Cluster::new(&hosts, &binary, &out, extra);
    for i in 0..args.nodes {
        cluster.start(i, None)?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while (0..args.nodes).any(|i| cluster.connected_peers(i) != Some(args.nodes - 1)) {
        if Instant::now() > deadline {
            bail!("the cluster did not form within 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let history = Arc::new(History::create(&out.join("history.jsonl"))?);
    let stop = Arc::new(AtomicBool::new(false));
    let held: Arc<Vec<AtomicBool>> =
        Arc::new((0..args.nodes).map(|_| AtomicBool::new(false)).collect());
    let mut clients = Vec::new();
    for node in 0..args.nodes {
        for c in 0..args.clients {
            let id = node * args.clients + c;
            let (addr, history, stop) = (cluster.nodes[node].addr, history.clone(), stop.clone());
            let held = held.clone();
            clients.push(std::thread::spawn(move || {
                workload::run_client(id, node, addr, seed, history, stop, held)
            }));
        }
    }

    let mut rng = workload::Rng::new(seed);
    let mut applied = Vec::new();
    let end = Instant::now() + Duration::from_secs(args.time);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(500 + rng.below(2000)));
        let what = nemesis::one(&faults, &hosts, &mut cluster, &mut rng, &held, &history)?;
        println!("  {what}");
        applied.push(what);
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }

    // Heal everything.
    hosts.heal()?;
    for i in 0..args.nodes {
        if cluster.nodes[i].paused {
            cluster.resume(i);
        }
        if cluster.nodes[i].skew.is_some() {
            cluster.stop(i);
        }
        if !cluster.running(i) {
            cluster.start(i, None)?;
        }
    }
    let healed = Instant::now();
    let client_count = args.nodes * args.clients;
    let mut state = read_all(&cluster, client_count);
    while !check::converged(&state) && healed.elapsed() < Duration::from_secs(args.converge) {
        std::thread::sleep(Duration::from_millis(250));
        state = read_all(&cluster, client_count);
    }
    let converged_ms = healed.elapsed().as_millis();
    let ops = history.ops();
    std::fs::write(
        out.join("final-state.json"),
        serde_json::to_string_pretty(&state)?,
    )?;
    let count = |o: Outcome| ops.iter().filter(|op| op.outcome == o).count();
    println!(
        "operations: {} ok, {} failed, {} unknown; {} faults",
        count(Outcome::Ok),
        count(Outcome::Fail),
        count(Outcome::Unknown),
        applied.len()
    );
    if !check::converged(&state) {
        println!(
            "ANOMALY: no convergence {} s after the heal; keys that differ:",
            args.converge
        );
        for key in state[0].keys() {
            if state.iter().all(|s| s.get(key) == state[0].get(key)) {
                continue;
            }
            for (i, s) in state.iter().enumerate() {
                let shown = match s.get(key) {
                    Some(Value::Array(items)) => format!("{} members", items.len()),
                    Some(v) => v.to_string(),
                    None => "-".into(),
                };
                println!("  {key} on n{}: {shown}", i + 1);
            }
        }
        println!(
            "  every node's state: {}",
            out.join("final-state.json").display()
        );
        return Ok(false);
    }
    println!("converged {converged_ms} ms after the heal");
    // Membership heals too: every node sees every other up, with a replication link.
    let all_up = |views: &[Option<Vec<String>>]| {
        views.iter().all(|v| {
            v.as_ref().is_some_and(|v| {
                v.len() == args.nodes - 1 && v.iter().all(|p| p.ends_with(" up link=up"))
            })
        })
    };
    let mut views: Vec<_> = (0..args.nodes).map(|i| cluster.peer_views(i)).collect();
    while !all_up(&views) && healed.elapsed() < Duration::from_secs(args.converge) {
        std::thread::sleep(Duration::from_millis(250));
        views = (0..args.nodes).map(|i| cluster.peer_views(i)).collect();
    }
    if !all_up(&views) {
        println!(
            "ANOMALY: members do not all see each other up {} s after the heal:",
            args.converge
        );
        for (i, v) in views.iter().enumerate() {
            println!("  n{} sees {v:?}", i + 1);
        }
        return Ok(false);
    }
    println!(
        "every member up everywhere {} ms after the heal",
        healed.elapsed().as_millis()
    );
    let clean = report(&ops, &state)?;
    println!("replay the fault schedule: --seed {seed}");
    Ok(clean)
}

/// Every node's answer for every key the workload touches (a node that does not answer shows
/// as an error, so it never looks converged).
fn read_all(cluster: &cluster::Cluster, clients: usize) -> check::FinalState {
    let mut keys: Vec<(String, &'static [u8])> = Vec::new();
    for k in 0..workload::KEYS {
        keys.push((format!("r{k}"), b"GET"));
        keys.push((format!("c{k}"), b"GET"));
        keys.push((format!("s{k}"), b"SMEMBERS"));
    }
    for c in 0..clients {
        keys.push((format!("own{c}"), b"GET"));
    }
    cluster
        .nodes
        .iter()
        .map(|n| {
            let mut c = Client::new(n.addr, Duration::from_secs(2));
            keys.iter()
                .map(|(key, cmd)| {
                    let v = match c.call(&[cmd, key.as_bytes()]) {
                        Ok(Reply::Error(e)) => Value::String(format!("error: {e}")),
                        Ok(r) => workload::to_json(&r),
                        Err(_) => Value::String(format!("{} did not answer", n.name)),
                    };
                    (key.clone(), v)
                })
                .collect::<BTreeMap<_, _>>()
        })
        .collect()
}
