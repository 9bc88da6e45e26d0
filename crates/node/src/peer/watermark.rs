//! How far every peer's writes have arrived here: the watermark that tells a time series'
//! buckets final (issue 16, `cmd/timeseries.rs`).
//!
//! Between rounds, the engine notes its log's head and takes an HLC (`engine::Stats::heartbeat`):
//! every write it stamped before that HLC is in its log up to that head. Pings carry it to every
//! peer, idle or not (so an origin that writes nothing still moves on). A peer's writes have
//! arrived here through the HLC of its latest heartbeat whose head this node has applied,
//! whatever path the entries took. The cluster's watermark is the least over the members that
//! are not down (gossip) nor gone; the ones left out are reported with it, not waited for.

use super::Runtime;
use crate::engine::OriginMark;
use crdt::NodeId;
use hlc::Timestamp;
use membership::Liveness;

impl Runtime {
    /// This node's heartbeat, for its pings: its log's head and an HLC.
    pub(super) fn heartbeat(&self) -> (u64, u64) {
        let (head, hlc) = *(self.shared.engine.stats.heartbeat.lock()).expect("not poisoned");
        (head, hlc.0)
    }

    /// A peer's heartbeat, from its ping.
    pub(super) fn on_heartbeat(&mut self, node: NodeId, head: u64, hlc: u64) {
        if let Some(known) = self.members.get_mut(&node) {
            known.heartbeat = known.heartbeat.max(Some((head, hlc)));
        }
    }

    /// Moves each peer's watermark on as far as what is applied here allows, and publishes
    /// them for the engine's commands and status pages.
    pub(super) fn publish_watermarks(&mut self) {
        let applied = self.shared.engine.progress.borrow().applied.clone();
        let liveness = self.gossip.livenesses();
        let mut marks = Vec::with_capacity(self.members.len());
        for (node, known) in &mut self.members {
            let origin = self.core.peer(*node).map(|p| p.origin);
            if let (Some((head, hlc)), Some(origin)) = (known.heartbeat, origin)
                && applied.get(origin) >= head
            {
                let ms = Timestamp(hlc).physical_ms();
                known.through_ms = known.through_ms.max(Some(ms));
            }
            let down = known.left
                || matches!(liveness.get(known.info.name.as_str()), Some(Liveness::Down));
            marks.push(OriginMark {
                name: known.info.name.clone(),
                through_ms: known.through_ms,
                down,
            });
        }
        *(self.shared.engine.stats.watermarks.lock()).expect("not poisoned") = marks;
    }
}
