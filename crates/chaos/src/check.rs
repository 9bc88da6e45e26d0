//! Checkers over the history and the final state every node holds.

use crate::history::{Op, Outcome};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// What each node answered for each key at the end.
pub type FinalState = Vec<BTreeMap<String, Value>>;

/// One anomaly, with the operations that show it.
pub struct Anomaly {
    /// What is wrong.
    pub what: String,
    /// The smallest slice of history that shows it.
    pub ops: Vec<Op>,
}

fn writes<'a>(ops: &'a [Op], f: &str, key: &str) -> impl Iterator<Item = &'a Op> {
    let (f, key) = (f.to_string(), key.to_string());
    ops.iter().filter(move |o| o.f == f && o.key == key)
}

fn str_of(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// Runs every checker; `state` is the converged state (every node's equal).
pub fn all(ops: &[Op], state: &BTreeMap<String, Value>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for (key, value) in state {
        match key.chars().next() {
            Some('c') => counter(ops, key, value, &mut out),
            Some('r') => register(ops, key, value, &mut out),
            Some('s') => set(ops, key, value, &mut out),
            Some('o') => own_final(ops, key, value, &mut out),
            _ => {}
        }
    }
    own_reads(ops, &mut out);
    out
}

/// Each counter between the sum of acknowledged increments and that plus the unknown ones.
fn counter(ops: &[Op], key: &str, value: &Value, out: &mut Vec<Anomaly>) {
    let mut low = 0i64;
    let mut high = 0i64;
    for o in writes(ops, "incrby", key) {
        let by: i64 = o.arg.as_deref().and_then(|a| a.parse().ok()).unwrap_or(0);
        match o.outcome {
            Outcome::Ok => {
                low += by;
                high += by;
            }
            Outcome::Unknown => high += by,
            Outcome::Fail => {}
        }
    }
    let got: i64 = str_of(value).and_then(|s| s.parse().ok()).unwrap_or(0);
    if got < low || got > high {
        out.push(Anomaly {
            what: format!("counter {key} is {got}; acknowledged increments sum to {low}, with unknown ones {high}"),
            ops: writes(ops, "incrby", key).filter(|o| o.outcome != Outcome::Fail).cloned().collect(),
        });
    }
}

/// Each register holds a value some acknowledged or unknown SET wrote (never one that failed,
/// never nothing once a SET was acknowledged).
fn register(ops: &[Op], key: &str, value: &Value, out: &mut Vec<Anomaly>) {
    let possible: BTreeSet<String> = writes(ops, "set", key)
        .filter(|o| o.outcome != Outcome::Fail)
        .filter_map(|o| o.arg.clone())
        .collect();
    let acked = writes(ops, "set", key).any(|o| o.outcome == Outcome::Ok);
    let ok = match str_of(value) {
        Some(v) => possible.contains(&v),
        None => !acked,
    };
    if !ok {
        out.push(Anomaly {
            what: format!("register {key} is {value}, which no acknowledged or unknown SET wrote"),
            ops: writes(ops, "set", key).cloned().collect(),
        });
        return;
    }
    // Last writer wins by (HLC, node id). Clocks may disagree by the skew the nemesis applies
    // plus the maximum offset, so real-time order decides only beyond that margin: an
    // acknowledged SET invoked more than LWW_MARGIN_MS after the winner was acknowledged must
    // have the higher stamp and should have won.
    let Some(winner) = writes(ops, "set", key)
        .find(|o| o.outcome == Outcome::Ok && o.arg.as_deref() == str_of(value).as_deref())
    else {
        return; // the winner's SET is unknown: it may have run at any time
    };
    if let Some(later) = writes(ops, "set", key)
        .find(|o| o.outcome == Outcome::Ok && o.invoke_ms > winner.complete_ms + LWW_MARGIN_MS)
    {
        out.push(Anomaly {
            what: format!(
                "register {key} ends with {value}, but {:?} was acknowledged after it by more than any clock skew",
                later.arg
            ),
            ops: vec![winner.clone(), later.clone()],
        });
    }
}

/// Clock skew the nemesis may apply to each of two nodes (1.5 s) plus the maximum offset.
const LWW_MARGIN_MS: u64 = 1500 + 1500 + 500;

/// Sets as add-wins: every member was added; an acknowledged add survives unless a remove
/// that saw it (acknowledged, or unknown) took it away; an acknowledged remove that found the
/// member (added once) leaves it gone.
fn set(ops: &[Op], key: &str, value: &Value, out: &mut Vec<Anomaly>) {
    let present: BTreeSet<String> = value
        .as_array()
        .map(|a| a.iter().filter_map(str_of).collect())
        .unwrap_or_default();
    // Each member's adds and removes, gathered once.
    let mut by_member: BTreeMap<&str, (Vec<&Op>, Vec<&Op>)> = BTreeMap::new();
    for o in ops.iter().filter(|o| o.key == key) {
        let Some(m) = o.arg.as_deref() else { continue };
        match o.f.as_str() {
            "sadd" => by_member.entry(m).or_default().0.push(o),
            "srem" => by_member.entry(m).or_default().1.push(o),
            _ => {}
        }
    }
    for m in &present {
        let added = by_member
            .get(m.as_str())
            .is_some_and(|(adds, _)| adds.iter().any(|o| o.outcome != Outcome::Fail));
        if !added {
            out.push(slice_for(
                ops,
                key,
                m,
                format!("set {key} holds {m}, which was never added"),
            ));
        }
    }
    for (m, (adds, removes)) in &by_member {
        if !adds.iter().any(|o| o.outcome == Outcome::Ok) {
            continue;
        }
        let found = |o: &&&Op| o.outcome == Outcome::Ok && o.read == 1;
        let removed_for_sure = removes.iter().any(|o| found(&o));
        let maybe_removed = removes
            .iter()
            .any(|o| o.outcome == Outcome::Unknown || found(&o));
        let here = present.contains(*m);
        if removed_for_sure && here {
            out.push(slice_for(
                ops,
                key,
                m,
                format!("set {key} holds {m} after an acknowledged SREM removed it"),
            ));
        } else if !maybe_removed && !here {
            out.push(slice_for(
                ops,
                key,
                m,
                format!("set {key} lost {m}: acknowledged SADD, never removed"),
            ));
        }
    }
}

fn slice_for(ops: &[Op], key: &str, member: &str, what: String) -> Anomaly {
    Anomaly {
        what,
        ops: ops
            .iter()
            .filter(|o| o.key == key && o.arg.as_deref() == Some(member))
            .cloned()
            .collect(),
    }
}

/// A client's own register ends at least at its last acknowledged write, or at the value of
/// one of its unknown writes (which may have landed last).
fn own_final(ops: &[Op], key: &str, value: &Value, out: &mut Vec<Anomaly>) {
    let value_of = |o: &Op| o.arg.as_deref().and_then(|a| a.parse::<u64>().ok());
    let last = writes(ops, "set", key)
        .filter(|o| o.outcome == Outcome::Ok)
        .filter_map(value_of)
        .max();
    let got = str_of(value).and_then(|s| s.parse::<u64>().ok());
    let landed_late =
        writes(ops, "set", key).any(|o| o.outcome == Outcome::Unknown && value_of(o) == got);
    if let Some(last) = last
        && !landed_late
        && got.is_none_or(|g| g < last)
    {
        out.push(Anomaly {
            what: format!("{key} ends at {value}, before its last acknowledged write {last}"),
            ops: ops.iter().filter(|o| o.key == key).cloned().collect(),
        });
    }
}

/// Read-your-writes and monotonic reads: a client's read of its own register shows at least
/// its last acknowledged write before the read, and never less than an earlier read showed.
/// A write whose outcome is unknown may take effect at any time after it was sent (a command
/// stuck in a paused node's socket runs when the node resumes, after later writes, and wins
/// by its later stamp), so a read showing such a write's value is allowed.
fn own_reads(ops: &[Op], out: &mut Vec<Anomaly>) {
    let mut by_client: BTreeMap<usize, Vec<&Op>> = BTreeMap::new();
    for o in ops.iter().filter(|o| o.key.starts_with("own")) {
        by_client.entry(o.client).or_default().push(o);
    }
    for (client, mut own) in by_client {
        own.sort_by_key(|o| o.invoke_ms);
        let mut written = 0u64;
        let mut seen = 0u64;
        let mut unknown: BTreeSet<u64> = BTreeSet::new();
        for (i, o) in own.iter().enumerate() {
            let arg = || {
                o.arg
                    .as_deref()
                    .and_then(|a| a.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            match (o.f.as_str(), o.outcome) {
                ("set", Outcome::Ok) => written = written.max(arg()),
                ("set", Outcome::Unknown) => {
                    unknown.insert(arg());
                }
                ("get", Outcome::Ok) => {
                    let v = str_of(&o.read)
                        .and_then(|s| s.parse::<u64>().ok())
                        .unwrap_or(0);
                    if unknown.contains(&v) {
                        continue;
                    }
                    let what = if v < written {
                        Some(format!(
                            "client {client} read {v} after its acknowledged write {written} (read-your-writes)"
                        ))
                    } else if v < seen {
                        Some(format!(
                            "client {client} read {v} after reading {seen} (monotonic reads)"
                        ))
                    } else {
                        None
                    };
                    if let Some(what) = what {
                        let from = i.saturating_sub(5);
                        out.push(Anomaly {
                            what,
                            ops: own[from..=i].iter().map(|o| (*o).clone()).collect(),
                        });
                    }
                    seen = seen.max(v);
                }
                _ => {}
            }
        }
    }
}

/// Whether every node answered the same.
pub fn converged(state: &FinalState) -> bool {
    state.windows(2).all(|w| w[0] == w[1])
}
