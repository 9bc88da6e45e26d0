//! Checks of the healed cluster against what clients were told.

use crate::world::{Acked, World, int};
use bytes::Bytes;
use crdt::Stamp;
use std::collections::{BTreeMap, BTreeSet};

/// All replicas identical, and every acknowledged write present or overwritten as the merge
/// rules allow. Answers the number of live keys.
pub fn final_state(world: &mut World) -> Result<usize, String> {
    let acked = world.acked_writes();
    let (nodes, now) = world.nodes_mut();
    let dumps: Vec<Vec<(Bytes, String)>> = nodes.iter_mut().map(|n| n.dump(now)).collect();
    for (n, dump) in nodes.iter().zip(&dumps).skip(1) {
        if *dump != dumps[0] {
            let first: BTreeMap<_, _> = dumps[0].iter().cloned().collect();
            let diff: Vec<String> = dump
                .iter()
                .filter(|(k, v)| first.get(k) != Some(v))
                .map(|(k, v)| {
                    format!(
                        "{k:?}: {} has {v}, {} has {:?}",
                        n.name,
                        nodes[0].name,
                        first.get(k)
                    )
                })
                .take(5)
                .collect();
            if std::env::var_os("SIM_TRACE").is_some()
                && let Some((k, _)) = dump.iter().find(|(k, v)| first.get(k) != Some(v))
            {
                for m in nodes.iter() {
                    eprintln!("RAW {} {k:?}: {}", m.name, m.raw(k));
                }
            }
            return Err(format!(
                "replicas differ after convergence:\n{}",
                diff.join("\n")
            ));
        }
    }
    let node = &mut nodes[0];
    let mut problems = Vec::new();

    // Counters: exactly the sum of acknowledged increments.
    let mut sums: BTreeMap<(Bytes, Option<Bytes>), i64> = BTreeMap::new();
    // Strings: the acknowledged SET with the highest (HLC, node id).
    let mut winners: BTreeMap<Bytes, (Stamp, Bytes)> = BTreeMap::new();
    // Sets: each member added once; gone exactly when an acknowledged SREM found it.
    let mut added: BTreeMap<Bytes, BTreeSet<Bytes>> = BTreeMap::new();
    let mut removed: BTreeSet<(Bytes, Bytes)> = BTreeSet::new();
    for a in &acked {
        match a {
            Acked::Add { key, field, by } => {
                *sums.entry((key.clone(), field.clone())).or_default() += by;
            }
            Acked::Set { key, value, stamp } => {
                let w = winners
                    .entry(key.clone())
                    .or_insert((*stamp, value.clone()));
                if *stamp > w.0 {
                    *w = (*stamp, value.clone());
                }
            }
            Acked::Sadd { key, member } => {
                added.entry(key.clone()).or_default().insert(member.clone());
            }
            Acked::Srem {
                key,
                member,
                removed: true,
            } => {
                removed.insert((key.clone(), member.clone()));
            }
            Acked::Srem { .. } => {}
        }
    }
    for ((key, field), sum) in &sums {
        let reply = match field {
            None => node.read(now, &[b"GET", key]),
            Some(f) => node.read(now, &[b"HGET", key, f]),
        };
        if int(&reply) != *sum {
            problems.push(format!(
                "counter {key:?} {field:?} is {reply:?}, acknowledged increments sum to {sum}"
            ));
        }
    }
    for (key, (stamp, value)) in &winners {
        let reply = node.read(now, &[b"GET", key]);
        if reply != resp::Reply::Bulk(value.clone()) {
            problems.push(format!(
                "string {key:?} is {reply:?}, the latest acknowledged SET ({stamp:?}) wrote {value:?}"
            ));
        }
    }
    for (key, members) in &added {
        for m in members {
            let present = node.read(now, &[b"SISMEMBER", key, m]) == resp::Reply::Int(1);
            let want = !removed.contains(&(key.clone(), m.clone()));
            if present != want {
                problems.push(format!(
                    "set {key:?} member {m:?}: present={present}, expected {want} (add wins over removes that did not see it)"
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(dumps[0].len())
    } else {
        Err(problems.into_iter().take(10).collect::<Vec<_>>().join("\n"))
    }
}
