//! How rounds become change log entries, and how peers' entries are applied: the part of the
//! engine that the simulator runs too.

use super::{Finished, Txn};
use crdt::NodeId;
use hlc::Timestamp;
use replication::{Entry, VersionVector};
use storage::LogPut;

/// Adds the log entry of a round of local writes to its batch, with the version vector it
/// brings the node to (`vv`, advanced here). Answers the entry's sequence number, or `None`
/// when the round changed nothing.
pub fn seal(
    finished: &mut Finished,
    node: NodeId,
    hlc: Timestamp,
    vv: &mut VersionVector,
) -> Option<u64> {
    if finished.changes.is_empty() {
        return None;
    }
    let seq = vv.get(node) + 1;
    let entry = Entry {
        origin: node,
        seq,
        hlc,
        deps: vv.without(node),
        changes: std::mem::take(&mut finished.changes),
    };
    finished.batch.log_puts.push((node.0, seq, entry.encode()));
    vv.advance(node, seq);
    finished.batch.version_vector = Some(crdt::encode(vv));
    Some(seq)
}

/// Applies peers' entries through `txn`, each the next of its origin with its dependencies
/// held, advancing `vv`. Entries already held are skipped. Stops at the first entry that
/// cannot apply (a gap, a missing dependency, or a timestamp too far ahead of this node's
/// clock) and says why. Answers the log records of the entries applied; the caller puts them
/// and `vv` into the batch.
pub fn apply_entries(
    txn: &mut Txn<'_>,
    vv: &mut VersionVector,
    entries: &[Entry],
) -> (Vec<LogPut>, Option<String>) {
    let mut log_puts = Vec::new();
    let now_ms = txn.now_ms();
    for entry in entries {
        let have = vv.get(entry.origin);
        if entry.seq <= have {
            continue;
        }
        if entry.seq != have + 1 || !vv.dominates(&entry.deps) {
            let problem = format!(
                "entry {} of {:?} does not follow what this node holds",
                entry.seq, entry.origin
            );
            return (log_puts, Some(problem));
        }
        if let Err(e) = txn.observe(now_ms, entry.hlc) {
            metrics::counter!("meridian_clock_offset_rejected_total").increment(1);
            tracing::error!(origin = ?entry.origin, error = %e, "refusing a peer's entry");
            return (log_puts, Some(e.to_string()));
        }
        for change in &entry.changes {
            txn.apply_change(change);
        }
        log_puts.push((entry.origin.0, entry.seq, entry.encode()));
        vv.advance(entry.origin, entry.seq);
        let lag_ms = now_ms.saturating_sub(entry.hlc.physical_ms());
        metrics::histogram!("meridian_replication_apply_lag_seconds")
            .record(lag_ms as f64 / 1000.0);
    }
    (log_puts, None)
}
