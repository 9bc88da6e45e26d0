//! The replication core: a state machine with no I/O.
//!
//! The runtime feeds it what happens (a peer connected with its version vector, entries
//! arrived, the engine applied and synced, a peer acknowledged, time passed) and carries out
//! the [`Effect`]s it asks for (ship a range of the log to a peer, acknowledge, hand entries to
//! the engine). The simulator drives the very same core with virtual time.
//!
//! Rules:
//! - Own entries ship to every connected peer as soon as they are durable here, so a crash
//!   that loses an un-fsynced tail can never reuse a sequence number a peer already holds.
//! - Entries of a third origin are relayed to a peer only when that peer has not acknowledged
//!   them `relay_after_ms` after we held them: the origin is probably cut off from it. A
//!   region that reaches only one other still gets everything, without every entry crossing
//!   every link twice in the healthy case.
//! - Acknowledgements carry the receiver's *durable* version vector; whatever was shipped
//!   and is not acknowledged within `resend_after_ms` ships again (messages may be lost).
//! - Received entries wait in a bounded inbox until their predecessor of the same origin and
//!   everything in their `deps` has been handed to the engine; then they go in that order.

use crate::{Entry, VersionVector};
use crdt::NodeId;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Tunables of the core; every one is a bound or a delay.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long a peer may go without acknowledging a third origin's entry we hold before we
    /// relay it ourselves.
    pub relay_after_ms: u64,
    /// How long shipped entries may go unacknowledged before they are shipped again.
    pub resend_after_ms: u64,
    /// Most entries one [`Effect::Ship`] covers.
    pub ship_batch_max: u64,
    /// Most entries of one origin shipped to one peer and not yet acknowledged.
    pub in_flight_max: u64,
    /// Most out-of-order entries held while their predecessors are missing.
    pub inbox_max: usize,
    /// How long entries of one origin may wait in the inbox with none of them released
    /// before they are dropped: their predecessors may never come (a write id given up with
    /// `CLUSTER FORGET`); a sender that still lacks an acknowledgment ships them again.
    pub inbox_wait_ms: u64,
    /// Most own entries whose local apply time is remembered (for lag in milliseconds).
    pub own_times_max: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            relay_after_ms: 1000,
            resend_after_ms: 3000,
            ship_batch_max: 256,
            in_flight_max: 16_384,
            inbox_max: 65_536,
            inbox_wait_ms: 30_000,
            own_times_max: 100_000,
        }
    }
}

/// What the core asks the runtime to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Read the entries `from..=to` of `origin` from the log and send them to `peer`.
    Ship {
        /// The receiver.
        peer: NodeId,
        /// Whose entries.
        origin: NodeId,
        /// First sequence number.
        from: u64,
        /// Last sequence number.
        to: u64,
    },
    /// Tell `peer` what this node holds durably.
    Ack {
        /// The receiver.
        peer: NodeId,
        /// This node's durable version vector.
        vv: VersionVector,
    },
    /// Apply these entries, in this order, through the engine; then report with
    /// [`Replicator::applied`] (or [`Replicator::apply_failed`]).
    Apply(Vec<Entry>),
}

/// What this node knows of one peer.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Whether a session with it is open.
    pub connected: bool,
    /// The id it writes under (its origin in logs and vectors), as its session told. Usually
    /// the member's own id; a node whose disk was wiped comes back under a new one, and its
    /// old id is an origin like any third node's: it gets those entries back.
    pub origin: NodeId,
    /// What it holds durably, as it last told us.
    pub acked: VersionVector,
    /// What we have shipped to it in this session (it may not have arrived yet).
    sent: VersionVector,
    /// Per third origin: the sequence we held and since when, while the peer lags behind it.
    waiting: BTreeMap<NodeId, (u64, u64)>,
    /// Per origin: when the peer last acknowledged more of it, or shipping to it started
    /// from idle. An origin whose shipped entries go unacknowledged for `resend_after_ms` is
    /// shipped again from what the peer acknowledged, even while other origins flow.
    progress_ms: BTreeMap<NodeId, u64>,
    /// When the session opened: the progress time of origins not in `progress_ms`.
    opened_ms: u64,
    /// The durable vector last acknowledged to it.
    acked_to_peer: Option<VersionVector>,
    /// When it was last acknowledged. The acknowledgement is repeated every
    /// `resend_after_ms` even when nothing changed: one that was lost would otherwise leave the
    /// peer's view of this node stale for as long as the cluster is quiet, and with it the
    /// peer's log truncation and tombstone collection.
    acked_to_peer_ms: u64,
    /// A snapshot is on its way to it: nothing ships until it is done.
    snapshotting: bool,
}

impl Peer {
    /// A peer not connected (yet) that holds `vv`.
    fn new(origin: NodeId, vv: VersionVector) -> Peer {
        Peer {
            connected: false,
            origin,
            sent: vv.clone(),
            acked: vv,
            waiting: BTreeMap::new(),
            progress_ms: BTreeMap::new(),
            opened_ms: 0,
            acked_to_peer: None,
            acked_to_peer_ms: 0,
            snapshotting: false,
        }
    }
}

/// The replication state of one node.
pub struct Replicator {
    me: NodeId,
    config: Config,
    applied: VersionVector,
    durable: VersionVector,
    /// `applied` plus what was handed to the engine and not yet reported applied.
    scheduled: VersionVector,
    peers: BTreeMap<NodeId, Peer>,
    inbox: BTreeMap<(NodeId, u64), Entry>,
    /// Per origin with entries in the inbox: what was scheduled of it when they were last
    /// seen waiting, and since when nothing more was.
    stalled: BTreeMap<NodeId, (u64, u64)>,
    /// When the inbox was last looked over for stalled origins.
    stall_check_ms: Option<u64>,
    /// Members that have not acknowledged anything since a member was removed (see
    /// [`Replicator::settled`]).
    unsettled: BTreeSet<NodeId>,
    /// Own sequence numbers with the time they were applied here, oldest first.
    own_times: VecDeque<(u64, u64)>,
    effects: Vec<Effect>,
}

impl Replicator {
    /// The core of node `me`, which holds `applied` (and `durable` of it on disk).
    pub fn new(
        me: NodeId,
        config: Config,
        applied: VersionVector,
        durable: VersionVector,
    ) -> Replicator {
        Replicator {
            me,
            config,
            scheduled: applied.clone(),
            applied,
            durable,
            peers: BTreeMap::new(),
            inbox: BTreeMap::new(),
            stalled: BTreeMap::new(),
            stall_check_ms: None,
            unsettled: BTreeSet::new(),
            own_times: VecDeque::new(),
            effects: Vec::new(),
        }
    }

    /// This node.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// What this node has applied.
    pub fn applied_vv(&self) -> &VersionVector {
        &self.applied
    }

    /// What this node holds durably.
    pub fn durable_vv(&self) -> &VersionVector {
        &self.durable
    }

    /// Every peer heard of, connected or not.
    pub fn peers(&self) -> impl Iterator<Item = (NodeId, &Peer)> {
        self.peers.iter().map(|(id, p)| (*id, p))
    }

    /// One peer.
    pub fn peer(&self, id: NodeId) -> Option<&Peer> {
        self.peers.get(&id)
    }

    /// Entries waiting in the inbox for their predecessors.
    pub fn inbox_len(&self) -> usize {
        self.inbox.len()
    }

    /// The effects asked for since the last call.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// A session with `peer`, which writes as `origin`, opened; it holds `vv` durably.
    /// Shipping restarts from there.
    pub fn connected(&mut self, now_ms: u64, peer: NodeId, origin: NodeId, vv: VersionVector) {
        assert_ne!(peer, self.me, "a node does not peer with itself");
        let mut p = Peer::new(origin, vv);
        p.connected = true;
        p.opened_ms = now_ms;
        self.peers.insert(peer, p);
    }

    /// A member known from before (a restart, a peer's member list) that has not connected
    /// yet: it holds back log truncation until it tells what it has.
    pub fn add_peer(&mut self, peer: NodeId) {
        if peer != self.me {
            // Until it connects, it is taken to write under its member id (the usual case).
            self.peers
                .entry(peer)
                .or_insert_with(|| Peer::new(peer, VersionVector::new()));
        }
    }

    /// A member removed for good (`CLUSTER FORGET`, only while it is down): it no longer holds
    /// back log truncation and tombstone collection. Its entries waiting in the inbox are
    /// dropped: it shipped them before it went down, and no other member may ever hold them
    /// (what no one held when it was forgotten is given up; a member holding some ships them
    /// again). Until every member left has acknowledged again, what they hold is not known
    /// well enough to judge stability by (see [`Replicator::settled`]).
    pub fn remove_peer(&mut self, peer: NodeId) {
        let Some(gone) = self.peers.remove(&peer) else {
            return;
        };
        self.inbox
            .retain(|(origin, _), _| *origin != gone.origin && *origin != peer);
        self.unsettled = self.peers.keys().copied().collect();
    }

    /// Whether every member acknowledged since the last one was removed. Until then the
    /// acknowledgments on hand may predate entries of the removed member that some member
    /// applied before it forgot it too: a join taken from them for tombstone stability
    /// could miss writes concurrent with the deletes, which would arrive after collection.
    pub fn settled(&self) -> bool {
        self.unsettled.is_empty()
    }

    /// What every member (and this node's disk) holds: log entries up to this may go.
    pub fn truncatable(&self) -> VersionVector {
        self.peers
            .values()
            .fold(self.durable.clone(), |vv, p| vv.meet(&p.acked))
    }

    /// What the members (this node included) hold together: the join of what each told.
    /// With [`Replicator::truncatable`] (their meet) it decides when tombstones are stable
    /// (see [`crate::Stability`]).
    pub fn members_join(&self) -> VersionVector {
        self.peers.values().fold(self.applied.clone(), |mut vv, p| {
            vv.merge(&p.acked);
            vv
        })
    }

    /// The log no longer holds what `peer` lacks: the runtime sends it a snapshot of the
    /// whole state instead; nothing ships to it meanwhile.
    pub fn snapshot_started(&mut self, peer: NodeId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.snapshotting = true;
        }
    }

    /// The snapshot sent to `peer` holds the effects of everything in `vv`; shipping goes on
    /// from there.
    pub fn snapshot_sent(&mut self, now_ms: u64, peer: NodeId, vv: &VersionVector) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.snapshotting = false;
            p.sent.merge(vv);
            p.progress_ms.clear();
            p.opened_ms = now_ms;
        }
    }

    /// The session with `peer` closed. What it acknowledged is kept (for lag and truncation).
    pub fn disconnected(&mut self, peer: NodeId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.connected = false;
            p.waiting.clear();
        }
    }

    /// `peer` holds `vv` durably.
    pub fn acked(&mut self, now_ms: u64, peer: NodeId, vv: &VersionVector) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        self.unsettled.remove(&peer);
        for (origin, seq) in vv.iter() {
            if seq > p.acked.get(origin) {
                p.progress_ms.insert(origin, now_ms);
            }
        }
        p.acked.merge(vv);
        // The peer may hold entries we never sent it (relayed by a third node).
        p.sent.merge(vv);
    }

    /// Entries arrived (from any peer, possibly duplicated or out of order).
    pub fn received(&mut self, entries: Vec<Entry>) {
        for e in entries {
            assert_ne!(e.seq, 0, "sequence numbers start at 1");
            if e.seq <= self.scheduled.get(e.origin) || e.origin == self.me {
                continue;
            }
            if self.inbox.len() >= self.config.inbox_max {
                // Dropped: the sender ships it again when it stays unacknowledged.
                continue;
            }
            self.inbox.insert((e.origin, e.seq), e);
        }
        self.drain_inbox();
    }

    /// Hands every entry whose predecessors are scheduled to the engine, in causal order.
    fn drain_inbox(&mut self) {
        let mut ready = Vec::new();
        loop {
            let origins: BTreeSet<NodeId> = self.inbox.keys().map(|(o, _)| *o).collect();
            let before = ready.len();
            for origin in origins {
                while let Some(e) = self
                    .inbox
                    .get(&(origin, self.scheduled.get(origin) + 1))
                    .filter(|e| self.scheduled.dominates(&e.deps))
                {
                    let key = (origin, e.seq);
                    let e = self.inbox.remove(&key).expect("just found");
                    self.scheduled.advance(origin, e.seq);
                    ready.push(e);
                }
            }
            if ready.len() == before {
                break;
            }
        }
        if !ready.is_empty() {
            let scheduled = &self.scheduled;
            self.inbox.retain(|(o, s), _| *s > scheduled.get(*o));
            self.effects.push(Effect::Apply(ready));
        }
    }

    /// The engine applied up to `applied`, of which `durable` is on disk.
    pub fn applied(&mut self, now_ms: u64, applied: VersionVector, durable: VersionVector) {
        let own_before = self.applied.get(self.me);
        for seq in own_before + 1..=applied.get(self.me) {
            if self.own_times.len() == self.config.own_times_max {
                self.own_times.pop_front();
            }
            self.own_times.push_back((seq, now_ms));
        }
        if !self.scheduled.dominates(&applied) {
            // The engine holds more than was scheduled (a repair brought a peer's state):
            // what waits in the inbox up to there will never be needed.
            self.scheduled.merge(&applied);
            let scheduled = &self.scheduled;
            self.inbox.retain(|(o, s), _| *s > scheduled.get(*o));
        }
        self.applied = applied;
        self.durable = durable;
        self.drain_inbox();
    }

    /// The engine did not apply what it was handed (for example a timestamp too far ahead):
    /// forget what was scheduled; it arrives again when it stays unacknowledged.
    pub fn apply_failed(&mut self) {
        self.scheduled = self.applied.clone();
        self.inbox.clear();
        self.stalled.clear();
    }

    /// Drops the inbox entries of origins none of whose entries was released for
    /// [`Config::inbox_wait_ms`] (looked over once a second).
    fn drop_stalled(&mut self, now_ms: u64) {
        if self.stall_check_ms.is_some_and(|t| now_ms < t + 1000) {
            return;
        }
        self.stall_check_ms = Some(now_ms);
        let waiting: BTreeSet<NodeId> = self.inbox.keys().map(|(o, _)| *o).collect();
        self.stalled.retain(|o, _| waiting.contains(o));
        let mut dropped = BTreeSet::new();
        for origin in waiting {
            let scheduled = self.scheduled.get(origin);
            let (seq, since) = self.stalled.entry(origin).or_insert((scheduled, now_ms));
            if *seq != scheduled {
                (*seq, *since) = (scheduled, now_ms);
            } else if now_ms.saturating_sub(*since) >= self.config.inbox_wait_ms {
                dropped.insert(origin);
            }
        }
        if !dropped.is_empty() {
            self.inbox.retain(|(o, _), _| !dropped.contains(o));
            self.stalled.retain(|o, _| !dropped.contains(o));
        }
    }

    /// Time passed: ship, resend, acknowledge.
    pub fn tick(&mut self, now_ms: u64) {
        self.drop_stalled(now_ms);
        let ids: Vec<NodeId> = self.peers.keys().copied().collect();
        for id in ids {
            if self.peers[&id].connected {
                self.tick_peer(now_ms, id);
            }
        }
    }

    /// Whether nothing is in flight: no early arrivals wait, and every connected peer has
    /// acknowledged everything this node could ship it and heard this node's latest
    /// acknowledgement. The runtime ticks less often then.
    pub fn idle(&self) -> bool {
        self.inbox.is_empty()
            && self.peers.values().filter(|p| p.connected).all(|p| {
                p.acked_to_peer.as_ref() == Some(&self.durable)
                    && self.applied.iter().all(|(origin, held)| {
                        let limit = if origin == self.me {
                            self.durable.get(origin)
                        } else {
                            held
                        };
                        origin == p.origin || p.acked.get(origin) >= limit
                    })
            })
    }

    fn tick_peer(&mut self, now_ms: u64, id: NodeId) {
        let me = self.me;
        let config = self.config.clone();
        let p = self.peers.get_mut(&id).expect("caller checked");
        if p.acked_to_peer.as_ref() != Some(&self.durable)
            || now_ms.saturating_sub(p.acked_to_peer_ms) >= config.resend_after_ms
        {
            p.acked_to_peer = Some(self.durable.clone());
            p.acked_to_peer_ms = now_ms;
            self.effects.push(Effect::Ack {
                peer: id,
                vv: self.durable.clone(),
            });
        }
        let stalled: Vec<NodeId> = p
            .sent
            .iter()
            .filter(|&(origin, sent)| {
                let since = p.progress_ms.get(&origin).copied().unwrap_or(p.opened_ms);
                sent > p.acked.get(origin) && now_ms.saturating_sub(since) >= config.resend_after_ms
            })
            .map(|(origin, _)| origin)
            .collect();
        for origin in stalled {
            p.sent.set(origin, p.acked.get(origin));
            p.progress_ms.insert(origin, now_ms);
        }
        if p.snapshotting {
            return;
        }
        for (origin, held) in self.applied.iter() {
            if origin == p.origin {
                continue;
            }
            let limit = if origin == me {
                self.durable.get(me)
            } else {
                held
            };
            let acked = p.acked.get(origin);
            let start = p.sent.get(origin).max(acked) + 1;
            if start > limit {
                p.waiting.remove(&origin);
                continue;
            }
            if origin != me && !relay_due(p, origin, acked, limit, now_ms, &config) {
                continue;
            }
            let in_flight = start - 1 - acked;
            if in_flight >= config.in_flight_max {
                continue;
            }
            let room = config.in_flight_max - in_flight;
            let to = limit.min(start + config.ship_batch_max.min(room) - 1);
            if p.sent.get(origin) <= acked {
                p.progress_ms.insert(origin, now_ms);
            }
            p.sent.advance(origin, to);
            self.effects.push(Effect::Ship {
                peer: id,
                origin,
                from: start,
                to,
            });
        }
    }

    /// How many entries `peer` lacks that this node holds.
    pub fn lag_ops(&self, peer: NodeId) -> u64 {
        self.peers
            .get(&peer)
            .map_or(0, |p| self.applied.without(p.origin).ahead_of(&p.acked))
    }

    /// How long the oldest own entry that `peer` has not acknowledged has been applied here.
    pub fn lag_ms(&self, now_ms: u64, peer: NodeId) -> u64 {
        let Some(p) = self.peers.get(&peer) else {
            return 0;
        };
        let acked = p.acked.get(self.me);
        if acked >= self.applied.get(self.me) {
            return 0;
        }
        self.own_times
            .iter()
            .find(|(seq, _)| *seq > acked)
            .map_or(0, |(_, at)| now_ms.saturating_sub(*at))
    }

    /// The highest own sequence `peer` holds durably.
    pub fn peer_has_own(&self, peer: NodeId) -> u64 {
        self.peers.get(&peer).map_or(0, |p| p.acked.get(self.me))
    }
}

/// Whether the peer has lagged behind entries of a third origin for long enough that we
/// relay them. Tracks one target at a time: the sequence we held when the wait began.
fn relay_due(
    p: &mut Peer,
    origin: NodeId,
    acked: u64,
    limit: u64,
    now_ms: u64,
    c: &Config,
) -> bool {
    match p.waiting.get(&origin).copied() {
        Some((target, since)) if acked < target => now_ms.saturating_sub(since) >= c.relay_after_ms,
        _ => {
            p.waiting.insert(origin, (limit, now_ms));
            false
        }
    }
}

#[cfg(test)]
mod tests;
