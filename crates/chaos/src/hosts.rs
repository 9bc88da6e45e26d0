//! Hosts on one machine: a network namespace per host with a veth into one bridge, on a
//! private subnet. Partitions are iptables rules inside the namespaces. Everything made is
//! removed on drop (and leftovers of an interrupted run at the next start).

use anyhow::{Context, bail};
use std::process::Command;

/// Prefix of every namespace and link this harness makes.
const PREFIX: &str = "mrdc";

fn sh(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {}", args[0]))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The hosts of one run.
pub struct Hosts {
    /// Namespace names, one per host.
    pub names: Vec<String>,
    subnet: String,
    bridge: String,
}

impl Hosts {
    /// Removes what an interrupted run left behind.
    pub fn clean_leftovers() {
        let out = Command::new("ip").args(["netns", "list"]).output();
        if let Ok(out) = out {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let name = line.split_whitespace().next().unwrap_or("");
                if name.starts_with(PREFIX) {
                    kill_all_in(name);
                    let _ = sh(&["ip", "netns", "del", name]);
                }
            }
        }
        // A namespace goes away asynchronously; its veth's outer end may outlive it.
        if let Ok(out) = Command::new("ip").args(["-o", "link", "show"]).output() {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let name = line
                    .split(": ")
                    .nth(1)
                    .unwrap_or("")
                    .split('@')
                    .next()
                    .unwrap_or("");
                if name.starts_with(PREFIX) {
                    let _ = sh(&["ip", "link", "del", name]);
                }
            }
        }
        let _ = sh(&["ip", "link", "del", &format!("{PREFIX}br")]);
    }

    /// Makes `count` hosts, 10.231.0.1 and up.
    pub fn new(count: usize) -> anyhow::Result<Hosts> {
        if count == 0 || count > 200 {
            bail!("between 1 and 200 hosts");
        }
        Hosts::clean_leftovers();
        let mut hosts = Hosts {
            names: Vec::new(),
            subnet: "10.231.0".into(),
            bridge: format!("{PREFIX}br"),
        };
        sh(&["ip", "link", "add", &hosts.bridge, "type", "bridge"])?;
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{}.254/24", hosts.subnet),
            "dev",
            &hosts.bridge,
        ])?;
        sh(&["ip", "link", "set", &hosts.bridge, "up"])?;
        for i in 0..count {
            let ns = format!("{PREFIX}h{}", i + 1);
            let (outside, inside) = (
                format!("{PREFIX}v{}a", i + 1),
                format!("{PREFIX}v{}b", i + 1),
            );
            sh(&["ip", "netns", "add", &ns])?;
            hosts.names.push(ns.clone());
            sh(&[
                "ip", "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ])?;
            sh(&["ip", "link", "set", &inside, "netns", &ns])?;
            sh(&["ip", "link", "set", &outside, "master", &hosts.bridge, "up"])?;
            let addr = format!("{}/24", hosts.address(i));
            sh(&[
                "ip", "netns", "exec", &ns, "ip", "addr", "add", &addr, "dev", &inside,
            ])?;
            sh(&[
                "ip", "netns", "exec", &ns, "ip", "link", "set", &inside, "up",
            ])?;
            sh(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"])?;
        }
        Ok(hosts)
    }

    /// Host `i`'s address.
    pub fn address(&self, i: usize) -> String {
        format!("{}.{}", self.subnet, i + 1)
    }

    /// Drops packets from host `from` arriving at host `to` (one way).
    pub fn block(&self, from: usize, to: usize) -> anyhow::Result<()> {
        let src = self.address(from);
        sh(&[
            "ip",
            "netns",
            "exec",
            &self.names[to],
            "iptables",
            "-A",
            "INPUT",
            "-s",
            &src,
            "-j",
            "DROP",
        ])
    }

    /// Removes every partition rule.
    pub fn heal(&self) -> anyhow::Result<()> {
        for ns in &self.names {
            sh(&["ip", "netns", "exec", ns, "iptables", "-F", "INPUT"])?;
        }
        Ok(())
    }
}

fn kill_all_in(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).output();
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in &self.names {
            kill_all_in(ns);
            let _ = sh(&["ip", "netns", "del", ns]);
        }
        for i in 0..self.names.len() {
            let _ = sh(&["ip", "link", "del", &format!("{PREFIX}v{}a", i + 1)]);
        }
        let _ = sh(&["ip", "link", "del", &self.bridge]);
    }
}
