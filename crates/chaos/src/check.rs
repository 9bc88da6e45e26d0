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
/// A wipe of the client's node (the `wipe` fault) starts a new session: the node comes back
/// empty and catches up, so reads there may show less until it has (the final state must
/// still hold every acknowledged write, `own_final`).
/// A write whose outcome is unknown may take effect at any time after it was sent (a command
/// stuck in a paused node's socket runs when the node resumes, after later writes, and wins
/// by its later stamp), so a read showing such a write's value is allowed.
fn own_reads(ops: &[Op], out: &mut Vec<Anomaly>) {
    let mut by_client: BTreeMap<usize, Vec<&Op>> = BTreeMap::new();
    for o in ops.iter().filter(|o| o.key.starts_with("own")) {
        by_client.entry(o.client).or_default().push(o);
    }
    let mut wipes: Vec<(usize, u64)> = (ops.iter())
        .filter(|o| o.f == "wipe")
        .map(|o| (o.node, o.invoke_ms))
        .collect();
    wipes.sort_unstable_by_key(|&(_, at)| at);
    for (client, mut own) in by_client {
        own.sort_by_key(|o| o.invoke_ms);
        let node = own[0].node;
        let mut wipes = wipes.iter().filter(|&&(n, _)| n == node).map(|&(_, at)| at);
        let mut next_wipe = wipes.next();
        let mut written = 0u64;
        let mut seen = 0u64;
        let mut unknown: BTreeSet<u64> = BTreeSet::new();
        for (i, o) in own.iter().enumerate() {
            while next_wipe.is_some_and(|at| at <= o.invoke_ms) {
                (written, seen) = (0, 0);
                next_wipe = wipes.next();
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(
        client: usize,
        f: &str,
        key: &str,
        arg: Option<&str>,
        at: (u64, u64),
        outcome: Outcome,
        read: Value,
    ) -> Op {
        Op {
            client,
            node: client,
            f: f.into(),
            key: key.into(),
            arg: arg.map(str::to_string),
            invoke_ms: at.0,
            complete_ms: at.1,
            outcome,
            read,
        }
    }

    fn state(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn whats(ops: &[Op], end: &BTreeMap<String, Value>) -> Vec<String> {
        all(ops, end).into_iter().map(|a| a.what).collect()
    }

    #[test]
    fn counters_count_acknowledged_increments_and_allow_unknown_ones() {
        let ops = vec![
            op(
                0,
                "incrby",
                "c0",
                Some("2"),
                (0, 1),
                Outcome::Ok,
                Value::Null,
            ),
            op(
                1,
                "incrby",
                "c0",
                Some("3"),
                (0, 1),
                Outcome::Unknown,
                Value::Null,
            ),
            op(
                1,
                "incrby",
                "c0",
                Some("7"),
                (0, 1),
                Outcome::Fail,
                Value::Null,
            ),
        ];
        for fine in ["2", "5"] {
            assert!(whats(&ops, &state(&[("c0", json!(fine))])).is_empty());
        }
        for lost_or_invented in ["1", "9"] {
            assert_eq!(
                whats(&ops, &state(&[("c0", json!(lost_or_invented))])).len(),
                1
            );
        }
    }

    #[test]
    fn a_register_older_than_a_write_acknowledged_well_after_it_is_an_anomaly() {
        let ops = vec![
            op(
                0,
                "set",
                "r0",
                Some("old"),
                (0, 10),
                Outcome::Ok,
                Value::Null,
            ),
            op(
                1,
                "set",
                "r0",
                Some("new"),
                (10 + LWW_MARGIN_MS + 1, 10 + LWW_MARGIN_MS + 5),
                Outcome::Ok,
                Value::Null,
            ),
        ];
        assert!(whats(&ops, &state(&[("r0", json!("new"))])).is_empty());
        assert_eq!(whats(&ops, &state(&[("r0", json!("old"))])).len(), 1);
        assert_eq!(whats(&ops, &state(&[("r0", json!("never"))])).len(), 1);
    }

    #[test]
    fn sets_are_add_wins_and_lose_nothing_acknowledged() {
        let ops = vec![
            op(0, "sadd", "s0", Some("a"), (0, 1), Outcome::Ok, Value::Null),
            op(0, "sadd", "s0", Some("b"), (0, 1), Outcome::Ok, Value::Null),
            op(1, "srem", "s0", Some("b"), (2, 3), Outcome::Ok, json!(1)),
        ];
        assert!(whats(&ops, &state(&[("s0", json!(["a"]))])).is_empty());
        // `a` lost; `b` back after its acknowledged removal; `z` never added.
        assert_eq!(whats(&ops, &state(&[("s0", json!(["b", "z"]))])).len(), 3);
    }

    /// Chaos seed 104: a SET stuck in a paused node's socket (unknown to the client) ran after
    /// the client's next, acknowledged SET and won by its later stamp; reading its value is
    /// legal. Reading an older acknowledged value is not.
    #[test]
    fn a_read_may_show_an_unknown_write_that_landed_late_but_not_an_older_acknowledged_one() {
        let ops = vec![
            op(
                4,
                "set",
                "own4",
                Some("2745"),
                (0, 1),
                Outcome::Ok,
                Value::Null,
            ),
            op(
                4,
                "set",
                "own4",
                Some("2746"),
                (2, 1502),
                Outcome::Unknown,
                Value::Null,
            ),
            op(
                4,
                "set",
                "own4",
                Some("2747"),
                (1503, 1600),
                Outcome::Ok,
                Value::Null,
            ),
            op(
                4,
                "get",
                "own4",
                None,
                (1601, 1602),
                Outcome::Ok,
                json!("2746"),
            ),
        ];
        assert!(whats(&ops, &state(&[("own4", json!("2746"))])).is_empty());
        let mut stale = ops.clone();
        stale[3].read = json!("2745");
        let found = whats(&stale, &state(&[("own4", json!("2747"))]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("read-your-writes"));
        // A final value below the last acknowledged write, not an unknown one, is lost data.
        assert_eq!(
            whats(&ops[..1], &state(&[("own4", json!("2744"))])).len(),
            1
        );
    }

    /// A node wiped between a client's write and its read comes back empty: the read starts
    /// a new session there. The final state must still hold the write.
    #[test]
    fn a_wipe_of_the_clients_node_starts_a_new_session_but_loses_nothing() {
        let mut ops = vec![
            op(
                2,
                "set",
                "own2",
                Some("7"),
                (0, 1),
                Outcome::Ok,
                Value::Null,
            ),
            op(2, "get", "own2", None, (20, 21), Outcome::Ok, Value::Null),
        ];
        let stale = whats(&ops, &state(&[("own2", json!("7"))]));
        assert_eq!(stale.len(), 1, "without a wipe the empty read is stale");
        let mut wipe = op(
            usize::MAX,
            "wipe",
            "",
            None,
            (10, 10),
            Outcome::Ok,
            Value::Null,
        );
        wipe.node = 2;
        ops.push(wipe.clone());
        assert!(whats(&ops, &state(&[("own2", json!("7"))])).is_empty());
        assert_eq!(
            whats(&ops, &state(&[("own2", Value::Null)])).len(),
            1,
            "the write must survive the wipe"
        );
        // Another node's wipe changes nothing for this client.
        wipe.node = 1;
        ops[2] = wipe;
        assert_eq!(whats(&ops, &state(&[("own2", json!("7"))])).len(), 1);
    }
}
