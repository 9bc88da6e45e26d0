//! `cargo run --release -p sim -- --seeds N` runs N seeds and prints each failing one with the
//! command that replays it; `--seed S` runs one seed and prints what happened.

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: sim [--seeds N] [--start S] [--seed S] [--time SECONDS]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut seeds = 100u64;
    let mut start = 1u64;
    let mut single = None;
    let mut time_s = None;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (args[i].as_str(), value) {
            ("--seeds", Some(v)) => seeds = v,
            ("--start", Some(v)) => start = v,
            ("--seed", Some(v)) => single = Some(v),
            ("--time", Some(v)) => time_s = Some(v),
            _ => return usage(),
        }
        i += 2;
    }
    let options = |seed| {
        let mut o = sim::default_options(seed);
        if let Some(t) = time_s {
            o.faulty_ms = t * 1000;
        }
        o
    };
    if let Some(seed) = single {
        let o = options(seed);
        println!("seed {seed}: {o:?}");
        return match sim::run(o) {
            Ok(s) => {
                for f in &s.faults {
                    println!("  {f}");
                }
                println!(
                    "ok: {} acknowledged writes, {} keys, converged {} ms after the heal, \
                     every member alive everywhere after {} ms, {} tombstones collected, \
                     {} log entries truncated, {} repairs",
                    s.acknowledged,
                    s.keys,
                    s.converged_ms,
                    s.members_ms,
                    s.collected,
                    s.truncated,
                    s.repairs
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("FAILED:\n{e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut failed = Vec::new();
    let mut worst_converge = 0;
    let mut worst_members = 0;
    let (mut collected, mut truncated, mut repairs) = (0, 0, 0);
    for seed in start..start + seeds {
        match sim::run(options(seed)) {
            Ok(s) => {
                collected += s.collected;
                truncated += s.truncated;
                repairs += s.repairs;
                worst_converge = worst_converge.max(s.converged_ms);
                worst_members = worst_members.max(s.members_ms);
            }
            Err(e) => {
                println!("seed {seed} FAILED:\n{e}");
                println!("replay: cargo run --release -p sim -- --seed {seed}\n");
                failed.push(seed);
            }
        }
    }
    println!(
        "{} seeds from {start}: {} failed; slowest convergence {worst_converge} ms after the heal, \
         slowest membership {worst_members} ms; {collected} tombstones collected, \
         {truncated} log entries truncated, {repairs} repairs",
        seeds,
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
