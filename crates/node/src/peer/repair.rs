//! Anti-entropy repairs, the sending side: a peer the log cannot serve (new, wiped, or
//! forgotten and back) is asked for one digest per key bucket; this node sends its state of
//! every bucket whose digest differs, in key order and in parts that cover the key space with
//! no gap, so that the peer can replace its state there with this one (see
//! `engine/repair.rs` for the receiving side).

use super::{Event, Runtime, SNAPSHOT_KEYS};
use crate::engine::Applied;
use crate::peer::wire::{Message, SnapshotPart};
use bytes::Bytes;
use crdt::NodeId;
use replication::Change;
use std::sync::Arc;
use storage::{StateRead, StorageError, Store};
use tokio::sync::Semaphore;
use tokio::time::Instant;

impl Runtime {
    /// The log no longer holds what `peer` lacks (it is new, was wiped, or was forgotten):
    /// asks for its digests; the repair follows in [`Runtime::repair`]. Nothing ships to it
    /// meanwhile.
    pub(super) fn start_snapshot(&mut self, peer: NodeId) {
        if self.session_tx(peer).is_none() || self.repairing.contains(&peer) {
            return;
        }
        self.core.snapshot_started(peer);
        self.repairing.insert(peer);
        let name = &self.members[&peer].info.name;
        tracing::info!(peer = %name, "the log no longer holds what the peer lacks: comparing digests");
        self.send(peer, Message::DigestRequest);
    }

    /// Anti-entropy: sends `peer` the full state of every key in the buckets whose digests
    /// differ from `theirs`, then tells it what the states cover; shipping goes on from there.
    ///
    /// Digests, parts and the vector the peer adopts all come from one view of the store:
    /// read live, parts would hold effects of entries beyond the vector, which the peer, once
    /// it holds the vector, would never take again; those of a forgotten member then lived
    /// on some replicas and not others (the simulator found it).
    pub(super) fn repair(&mut self, peer: NodeId, theirs: Vec<u64>) {
        let Some(tx) = self.session_tx(peer) else {
            return;
        };
        let name = self.members[&peer].info.name.clone();
        metrics::counter!("meridian_snapshots_sent_total").increment(1);
        let store = self.shared.engine.store().clone();
        let events = self.events_tx.clone();
        let slots = self.digest_slots.clone();
        tokio::spawn(async move {
            let prepared = {
                let Ok(_slot) = slots.acquire().await else {
                    return;
                };
                tokio::task::spawn_blocking(move || prepare(store.as_ref())).await
            };
            let (view, covers, ours) = match prepared {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "reading the state to repair a peer failed");
                    return;
                }
                Err(_) => return,
            };
            let differ: Vec<bool> = ours.iter().zip(&theirs).map(|(a, b)| a != b).collect();
            let count = differ.iter().filter(|d| **d).count();
            metrics::counter!("meridian_antientropy_buckets_sent_total").increment(count as u64);
            tracing::info!(
                peer = %name,
                differ = count,
                of = crate::engine::DIGEST_BUCKETS,
                "repairing the key ranges whose digests differ"
            );
            let begin = Message::SnapshotBegin {
                differ: differ.clone(),
                vv: covers.vv.clone(),
                seen: covers.seen.clone(),
            };
            if tx.send((Instant::now(), begin)).await.is_err() {
                return;
            }
            let mut after: Option<Bytes> = None;
            loop {
                let chunk = {
                    let view = view.clone();
                    let from = after.clone();
                    tokio::task::spawn_blocking(move || {
                        crate::engine::snapshot_chunk(view.as_ref(), from.as_deref(), SNAPSHOT_KEYS)
                    })
                    .await
                };
                let (mut changes, last) = match chunk {
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "reading a snapshot failed");
                        return;
                    }
                    Err(_) => return,
                };
                changes.retain(|c| differ[crate::engine::bucket_of(c.key())]);
                let keys = changes
                    .iter()
                    .filter(|c| matches!(c, Change::Header { .. }))
                    .count();
                metrics::counter!("meridian_antientropy_keys_sent_total").increment(keys as u64);
                // Every range is sent, empty or not: the receiver drops what it holds in the
                // differing buckets of a range that this node does not.
                let part = SnapshotPart {
                    after: after.clone(),
                    last: last.clone(),
                    changes,
                };
                let part = Message::Snapshot(Bytes::from(crdt::encode(&part)));
                if tx.send((Instant::now(), part)).await.is_err() {
                    return;
                }
                match last {
                    Some(k) => after = Some(k),
                    None => break,
                }
            }
            if tx
                .send((Instant::now(), Message::SnapshotDone))
                .await
                .is_ok()
            {
                let vv = covers.vv;
                let _ = events.send(Event::SnapshotSent { peer, vv }).await;
            }
        });
    }
}

/// The view a repair sends, what it covers, and its digests.
type Prepared = (Arc<dyn StateRead>, Applied, Vec<u64>);

/// Reads [`Prepared`] from `store`. What the view holds is synced
/// before any of it leaves: were this node to lose it in a crash, it would write other
/// entries under the same numbers, and the peer, holding these, would never take them.
fn prepare(store: &dyn Store) -> Result<Prepared, StorageError> {
    let view: Arc<dyn StateRead> = Arc::from(store.view());
    store.sync()?;
    let covers = Applied::from_stored(view.version_vector()?)?;
    let digests = crate::engine::digests(view.as_ref())?;
    Ok((view, covers, digests))
}

/// This node's digests, computed off the async workers once one of `slots` is free (a full
/// scan: bounded for requests from peers and for repairs alike).
pub(super) async fn digests(store: Arc<dyn storage::Store>, slots: &Semaphore) -> Option<Vec<u64>> {
    let _slot = slots.acquire().await.ok()?;
    match tokio::task::spawn_blocking(move || crate::engine::digests(store.as_ref())).await {
        Ok(Ok(d)) => Some(d),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "computing digests failed");
            None
        }
        Err(_) => None,
    }
}
