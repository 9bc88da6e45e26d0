//! The simulated world: nodes, a network with a delay matrix, faults and a client workload, all
//! driven by one queue of events in virtual time.

use crate::node::{MAX_OFFSET_MS, SimNode};
use crate::rng::Rng;
use bytes::Bytes;
use crdt::{NodeId, Stamp};
use hlc::Timestamp;
use node::engine::Applied;
use replication::{Change, Effect, Entry, VersionVector};
use resp::Reply;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;
use storage::{MemStore, StateRead};

/// One-way delays between the three regions (eu, us, ap), in milliseconds.
const DELAY_MS: [[u64; 3]; 3] = [[1, 40, 110], [40, 1, 75], [110, 75, 1]];
/// Extra random delay per message: reorders messages on one link.
const JITTER_MS: u64 = 20;
/// Virtual time before the first event, so physical clocks look real.
const EPOCH_MS: u64 = 1_700_000_000_000;
/// How long after the heal the cluster has to converge.
const CONVERGE_MS_MAX: u64 = 120_000;
/// How long after that every tombstone has to be collected.
const GRAVES_MS_MAX: u64 = 30_000;
/// How long after the heal every node has to see every other alive.
const MEMBERS_MS_MAX: u64 = 30_000;
/// Keys a repair part reads (few, so that repairs run over many parts, interleaved with
/// everything else).
const REPAIR_KEYS: usize = 4;
/// How long a repair waits between parts.
const REPAIR_PART_MS: u64 = 2;

/// What a run does.
#[derive(Clone, Debug)]
pub struct Options {
    /// The seed: the same seed replays the same run.
    pub seed: u64,
    /// Nodes in the cluster (spread over three regions).
    pub nodes: usize,
    /// How long faults and the workload run, in virtual milliseconds.
    pub faulty_ms: u64,
    /// Client commands per virtual second, over the whole cluster.
    pub ops_per_sec: u64,
    /// Whether some crashes also wipe the node's disk (only when everything it holds is on
    /// another node's disk too, so no acknowledged write can be lost with it).
    pub wipes: bool,
    /// Whether clients also delete and write again (`DEL`, `HDEL`, `SREM` of members added
    /// again) on keys of their own, drawn from a second random stream so that the rest of
    /// the run (faults included) is the same with or without them. What they leave is checked
    /// by convergence: every replica must show the same, before and after tombstones are
    /// collected.
    pub deletes: bool,
    /// Whether nodes truncate their logs and crashed members are sometimes forgotten
    /// (`CLUSTER FORGET`), so that a member the logs can no longer serve (wiped, forgotten)
    /// is brought up to date by an anti-entropy repair. Forgetting draws from a third random
    /// stream.
    pub repairs: bool,
    /// Whether clients also run the commands that write from other keys' state or replace a
    /// key whole (`RENAME`, `COPY`, `SMOVE`, `S*STORE`, `SETRANGE`, `GETEX`, `HSETNX`,
    /// `MSETNX`, `SETNX`, `RENAMENX`) on the keys of [`Options::deletes`], the list commands
    /// (pushes, pops, `LINSERT`, `LSET`, `LREM`, `LTRIM`, `LMOVE`) on lists and the sorted set
    /// commands (`ZADD`, `ZINCRBY`, `ZREM`, pops, range removals, `ZUNIONSTORE`) on sorted sets
    /// of their own, drawn from a fourth random stream; checked by convergence.
    pub derived: bool,
    /// Whether clients also write time series (`TS.CREATE`, `TS.ADD` with every duplicate
    /// policy, `TS.MADD`, `TS.INCRBY`, `TS.DEL`, `TS.ALTER`, `DEL`) on series of their own,
    /// drawn from a fifth random stream; checked by convergence.
    pub series: bool,
}

/// What a passing run reports.
#[derive(Debug)]
pub struct Summary {
    /// Writes acknowledged to clients.
    pub acknowledged: usize,
    /// Faults injected.
    pub faults: Vec<String>,
    /// Virtual milliseconds from heal to convergence.
    pub converged_ms: u64,
    /// Virtual milliseconds from heal until every node saw every other alive.
    pub members_ms: u64,
    /// Live keys at the end.
    pub keys: usize,
    /// Tombstones collected, over all nodes.
    pub collected: u64,
    /// Log entries truncated, over all nodes.
    pub truncated: u64,
    /// Repairs received to their end, over all nodes.
    pub repairs: u64,
}

#[derive(Debug)]
enum Msg {
    Entries(Vec<Entry>),
    Ack(VersionVector),
    // The rest travel in order and are never lost on a session (as on its TCP stream), see
    // `World::send_stream`.
    /// "Your log cannot serve me: send me your digests."
    DigestRequest,
    Digests(Vec<u64>),
    RepairBegin {
        differ: Vec<bool>,
        covers: Applied,
    },
    RepairPart {
        after: Option<Bytes>,
        last: Option<Bytes>,
        changes: Vec<Change>,
    },
    RepairEnd,
}

/// A repair being sent: node `from` sends `to`, on session `session`, the state of the buckets
/// in `differ` held by `view` (as it was when the repair began, covering `covers`), from the
/// key after `after` on.
#[derive(Debug)]
struct Sending {
    from: usize,
    to: usize,
    session: u64,
    differ: Vec<bool>,
    view: Arc<MemStore>,
    covers: Applied,
    after: Option<Bytes>,
}

#[derive(Debug)]
enum Event {
    Tick(usize),
    Sync(usize),
    Client,
    Deliver {
        from: usize,
        to: usize,
        /// The receiver's incarnation when the message was sent.
        incarnation: u64,
        /// The session it was sent on: it arrives only while that session is open, as on
        /// a TCP connection (closed, it delivers nothing more).
        session: u64,
        /// Whether it travels in order and is never lost (see [`World::send_stream`]);
        /// otherwise it may be lost, duplicated or reordered.
        stream: bool,
        msg: Msg,
    },
    /// A repair sends its next part.
    RepairSend(Sending),
    Nemesis,
    Restart(usize),
    /// A gossip datagram arrives (at whichever process runs at `to` by then, as UDP does).
    Datagram {
        to: usize,
        bytes: Bytes,
    },
    /// A gossip timer of node `node`'s process `incarnation` is due.
    GossipTimer {
        node: usize,
        incarnation: u64,
        timer: membership::Timer,
    },
    Unblock(Vec<(usize, usize)>),
    LinkCheck,
}

/// A write a client was told succeeded.
#[derive(Debug, Clone)]
pub(crate) enum Acked {
    /// `SET key value`, which got `stamp`.
    Set {
        key: Bytes,
        value: Bytes,
        stamp: Stamp,
    },
    /// `INCRBY key by`, or `HINCRBY key field by`.
    Add {
        key: Bytes,
        field: Option<Bytes>,
        by: i64,
    },
    /// `SADD key member` (every member is added once, by one write).
    Sadd { key: Bytes, member: Bytes },
    /// `SREM key member`; `removed` when it found the member.
    Srem {
        key: Bytes,
        member: Bytes,
        removed: bool,
    },
}

/// A write executed and waiting for its node's sync to be acknowledged.
struct Waiting {
    node: usize,
    acked: Acked,
    hlc: Timestamp,
    /// Its log entry (origin, sequence number).
    entry: (NodeId, u64),
}

/// The whole simulated cluster.
pub struct World {
    opts: Options,
    rng: Rng,
    now: u64,
    nodes: Vec<SimNode>,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: BTreeMap<u64, Event>,
    next_event: u64,
    sessions: BTreeMap<(usize, usize), u64>,
    next_epoch: u64,
    blocked: BTreeSet<(usize, usize)>,
    loss: f64,
    duplicate: f64,
    acked: Vec<Acked>,
    /// The log entry of each of `acked`.
    acked_entries: Vec<(NodeId, u64)>,
    waiting: Vec<Waiting>,
    last_acked_hlc: Vec<Timestamp>,
    members: Vec<(Bytes, Bytes)>,
    next_value: u64,
    faults: Vec<String>,
    violations: Vec<String>,
    workload_on: bool,
    /// The second random stream (see [`Options::deletes`]).
    extra: Rng,
    /// The third random stream (see [`Options::repairs`]).
    forgets: Rng,
    /// The fourth random stream (see [`Options::derived`]).
    derived: Rng,
    /// The fifth random stream (see [`Options::series`]).
    series: Rng,
    /// When the last stream message on each directed link arrives.
    stream_at: BTreeMap<(usize, usize), u64>,
    /// Per node, the peers it asked for digests and has not yet heard from.
    repairing: Vec<BTreeSet<usize>>,
    /// Per node, the members it is to repair after a member was forgotten (the runtime's
    /// `reconcile`).
    reconcile: Vec<BTreeSet<usize>>,
    /// Acknowledged writes (indices into `acked`) that only a forgotten member held when it
    /// was wiped to return: given up by `CLUSTER FORGET`.
    given_up: BTreeSet<usize>,
    /// Per node, the members it forgot (`CLUSTER FORGET`) and has not accepted back, with
    /// the write id each wrote under then.
    forgotten: Vec<BTreeMap<usize, NodeId>>,
    /// What happened, when `SIM_TRACE` is set (printed when the run fails).
    trace: Vec<String>,
    tracing: bool,
    watched: Vec<String>,
}

impl World {
    /// A cluster set up from the seed: fsync modes, clock skews, loss and duplication rates.
    pub fn new(opts: Options) -> World {
        let opts_seed = opts.seed;
        let mut rng = Rng::new(opts.seed);
        let nodes = (0..opts.nodes)
            .map(|i| {
                let region = i % 3;
                let always = rng.chance(0.5);
                let skew = rng.below(MAX_OFFSET_MS + 1);
                let seed = rng.below(u64::MAX);
                SimNode::new(format!("n{i}"), region, always, skew, seed)
            })
            .collect::<Vec<_>>();
        let loss = [0.0, 0.01, 0.05][rng.below(3) as usize];
        let duplicate = [0.0, 0.02][rng.below(2) as usize];
        let n = nodes.len();
        let mut world = World {
            opts,
            rng,
            now: EPOCH_MS,
            nodes,
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            next_event: 0,
            sessions: BTreeMap::new(),
            next_epoch: 1,
            blocked: BTreeSet::new(),
            loss,
            duplicate,
            acked: Vec::new(),
            acked_entries: Vec::new(),
            waiting: Vec::new(),
            last_acked_hlc: vec![Timestamp::ZERO; n],
            members: Vec::new(),
            next_value: 0,
            faults: Vec::new(),
            violations: Vec::new(),
            workload_on: true,
            extra: Rng::new(opts_seed ^ 0x5eed_de1e_7e5a_11ed),
            forgets: Rng::new(opts_seed ^ 0xf0f0_6e75_0000_0003),
            derived: Rng::new(opts_seed ^ 0xde71_7ed0_0000_0004),
            series: Rng::new(opts_seed ^ 0x5e71_e500_0000_0005),
            stream_at: BTreeMap::new(),
            repairing: vec![BTreeSet::new(); n],
            reconcile: vec![BTreeSet::new(); n],
            forgotten: vec![BTreeMap::new(); n],
            given_up: BTreeSet::new(),
            trace: Vec::new(),
            tracing: std::env::var_os("SIM_TRACE").is_some(),
            watched: Vec::new(),
        };
        for i in 0..n {
            let at = world.rng.below(10);
            world.schedule(at, Event::Tick(i));
            // The engine syncs on its own schedule, out of step with the replication ticks.
            let at = world.rng.below(10);
            world.schedule(at, Event::Sync(i));
        }
        // Every node knows every member (the runtime's member table), connected or not: one
        // that never told what it holds holds back truncation and collection.
        world.add_members();
        // Every node joins the first one (`--join n0`).
        world.carry_out_gossip(0);
        for i in 1..n {
            world.nodes[i].gossip.announce("n0");
            world.carry_out_gossip(i);
        }
        world.schedule(0, Event::LinkCheck);
        world.schedule(1, Event::Client);
        world.schedule(500, Event::Nemesis);
        world
    }

    fn schedule(&mut self, after_ms: u64, event: Event) {
        let id = self.next_event;
        self.next_event += 1;
        self.queue.push(Reverse((self.now + after_ms, id)));
        self.events.insert(id, event);
    }

    fn node_index(&self, id: NodeId) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .expect("the core names only cluster members")
    }

    /// Runs the faulty phase, heals everything, and checks the outcome. A failure lists the
    /// faults injected.
    pub fn run(mut self) -> Result<Summary, String> {
        self.run_checked().map_err(|e| {
            if std::env::var_os("SIM_TRACE").is_some() {
                eprintln!("{}", self.trace.join("\n"));
            }
            format!("{e}\nfaults:\n  {}", self.faults.join("\n  "))
        })
    }

    fn run_checked(&mut self) -> Result<Summary, String> {
        let heal_at = EPOCH_MS + self.opts.faulty_ms;
        self.run_until(heal_at);
        self.workload_on = false;
        self.blocked.clear();
        for i in 0..self.nodes.len() {
            if !self.nodes[i].up {
                self.wipe_if_forgotten(i);
                self.restart(i);
            }
        }
        let deadline = heal_at + CONVERGE_MS_MAX;
        let mut converged_at = None;
        while self.now < deadline {
            let step = self.now + 100;
            self.run_until(step);
            if self.quiet() {
                converged_at = Some(self.now);
                break;
            }
        }
        self.violations
            .extend(self.nodes.iter().flat_map(|n| n.violations.clone()));
        if !self.violations.is_empty() {
            return Err(self.violations.join("\n"));
        }
        let Some(converged_at) = converged_at else {
            let vvs: Vec<String> = self
                .nodes
                .iter()
                .map(|n| format!("{}: {:?} inbox {}", n.name, n.vv, n.core.inbox_len()))
                .collect();
            return Err(format!(
                "no convergence {} s after the heal:\n{}",
                CONVERGE_MS_MAX / 1000,
                vvs.join("\n")
            ));
        };
        let keys = crate::check::final_state(self)?;
        let members_deadline = heal_at + MEMBERS_MS_MAX;
        while !self.members_agree() {
            if self.now >= members_deadline {
                return Err(format!(
                    "members do not see each other alive {} s after the heal:\n{}",
                    MEMBERS_MS_MAX / 1000,
                    self.member_views()
                ));
            }
            let step = self.now + 100;
            self.run_until(step);
        }
        // Healed and quiet, every member holds every delete and every entry: every tombstone
        // and (with truncation) every log entry goes, and what clients read is still what it
        // was.
        let graves_deadline = self.now + GRAVES_MS_MAX;
        let truncates = self.opts.repairs;
        while (self.nodes.iter()).any(|n| n.graves() > 0 || (truncates && n.log_len() > 0)) {
            if self.now >= graves_deadline {
                let left: Vec<String> = (self.nodes.iter())
                    .map(|n| {
                        let why = if n.graves() > 0 {
                            n.waiting_for()
                        } else {
                            String::new()
                        };
                        format!("{}: {} (log {}) {why}", n.name, n.graves(), n.log_len())
                    })
                    .collect();
                return Err(format!(
                    "tombstones or log entries left {} s after the cluster was quiet: {}",
                    GRAVES_MS_MAX / 1000,
                    left.join(", ")
                ));
            }
            let step = self.now + 100;
            self.run_until(step);
        }
        let after = crate::check::final_state(self)?;
        if after != keys {
            return Err(format!("{keys} live keys before collection, {after} after"));
        }
        Ok(Summary {
            acknowledged: self.acked.len(),
            faults: self.faults.clone(),
            converged_ms: converged_at - heal_at,
            members_ms: self.now - heal_at,
            keys,
            collected: self.nodes.iter().map(|n| n.collected).sum(),
            truncated: self.nodes.iter().map(|n| n.truncated).sum(),
            repairs: self.nodes.iter().map(|n| n.repairs).sum(),
        })
    }

    /// Whether every node is up, synced, holds the same entries and waits for nothing.
    fn quiet(&self) -> bool {
        let first = &self.nodes[0].vv;
        self.nodes.iter().all(|n| {
            n.up && n.vv == *first && n.durable == n.vv && n.core.inbox_len() == 0 && !n.repairing()
        }) && self.waiting.is_empty()
            && self.repairing.iter().all(BTreeSet::is_empty)
    }

    /// Whether every node's gossip holds every other node alive.
    fn members_agree(&self) -> bool {
        self.nodes.iter().all(|a| {
            self.nodes
                .iter()
                .filter(|b| b.name != a.name)
                .all(|b| a.gossip.liveness(&b.name) == Some(membership::Liveness::Alive))
        })
    }

    fn member_views(&self) -> String {
        let mut out = String::new();
        for a in &self.nodes {
            let views: Vec<String> = self
                .nodes
                .iter()
                .filter(|b| b.name != a.name)
                .map(|b| format!("{}={:?}", b.name, a.gossip.liveness(&b.name)))
                .collect();
            out.push_str(&format!("{} sees {}\n", a.name, views.join(" ")));
        }
        out
    }

    /// Restarts node `i`: it announces itself to every member it knew (as a node does from
    /// its saved member table).
    /// Every node's replication core knows every other member (as `members.json` tells a
    /// restarted node).
    /// Members a node forgot are left out while they write under the id they were forgotten
    /// with; back wiped (under a new one), they are members again, as the runtime learns
    /// them from its peers' member lists.
    fn add_members(&mut self) {
        let ids: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
        let origins: Vec<NodeId> = self.nodes.iter().map(|n| n.origin).collect();
        for (b, node) in self.nodes.iter_mut().enumerate() {
            for (a, &id) in ids.iter().enumerate() {
                if a != b && self.forgotten[b].get(&a) != Some(&origins[a]) {
                    node.core.add_peer(id);
                }
            }
        }
    }

    /// Node `a`, down, comes back: wiped if a member forgot it, as it must (its peers refuse
    /// its old write id, see [`World::link_check`]). The writes of that id that no other
    /// member holds in the end are given up (see [`World::acked_writes`]).
    fn wipe_if_forgotten(&mut self, a: usize) {
        let origin = self.nodes[a].origin;
        if !(self.forgotten.iter()).any(|f| f.get(&a) == Some(&origin)) {
            return;
        }
        // What the other members hold: in memory when up, on disk when down.
        let held: Vec<VersionVector> = (self.nodes.iter().enumerate())
            .filter(|(b, _)| *b != a)
            .map(|(_, n)| {
                if n.up {
                    n.vv.clone()
                } else {
                    n.durable.clone()
                }
            })
            .collect();
        for (i, (origin, seq)) in self.acked_entries.iter().enumerate() {
            if !held.iter().any(|vv| vv.get(*origin) >= *seq) {
                self.given_up.insert(i);
            }
        }
        let salt = self.forgets.below(u64::MAX);
        self.nodes[a].wipe(salt);
        // Whom it had forgotten was in its data directory too.
        self.forgotten[a].clear();
        self.reconcile[a].clear();
        self.last_acked_hlc[a] = Timestamp::ZERO;
        self.faults.push(format!(
            "t={} {} wiped, as a forgotten member must be to return",
            self.t(),
            self.nodes[a].name
        ));
    }

    fn restart(&mut self, i: usize) {
        self.repairing[i].clear();
        let seed = self.rng.below(u64::MAX);
        self.nodes[i].restart(seed);
        self.add_members();
        for b in 0..self.nodes.len() {
            if b != i {
                let addr = self.nodes[b].name.clone();
                self.nodes[i].gossip.announce(&addr);
            }
        }
        self.carry_out_gossip(i);
    }

    /// Carries out node `i`'s gossip effects.
    fn carry_out_gossip(&mut self, i: usize) {
        for effect in self.nodes[i].gossip.take_effects() {
            match effect {
                membership::Effect::Send { to, payload, .. } => {
                    let to = self
                        .nodes
                        .iter()
                        .position(|n| n.name == to)
                        .expect("gossip names only cluster members");
                    for delay in self.network(i, to) {
                        let bytes = payload.clone();
                        self.schedule(delay, Event::Datagram { to, bytes });
                    }
                }
                membership::Effect::Schedule { after, timer } => {
                    let incarnation = self.nodes[i].incarnation;
                    let event = Event::GossipTimer {
                        node: i,
                        incarnation,
                        timer,
                    };
                    self.schedule(after.as_millis() as u64, event);
                }
                membership::Effect::Up(_)
                | membership::Effect::Down(_)
                | membership::Effect::Rejoined => {}
            }
        }
    }

    fn run_until(&mut self, until: u64) {
        while let Some(Reverse((at, id))) = self.queue.peek().copied() {
            if at > until {
                break;
            }
            self.queue.pop();
            self.now = at;
            let event = self
                .events
                .remove(&id)
                .expect("every queued id has an event");
            self.handle(event);
            if self.tracing
                && let Ok(watch) = std::env::var("SIM_WATCH")
            {
                self.watch(&watch);
            }
        }
        self.now = until;
    }

    /// Traces each change of `SISMEMBER key member` (`SIM_WATCH=key:member`), of `HGET key
    /// field` (`SIM_WATCH=key#field`) or of `GET key` (`SIM_WATCH=key`) on every node.
    fn watch(&mut self, watch: &str) {
        let now = self.now;
        self.watched.resize(self.nodes.len(), String::new());
        for i in 0..self.nodes.len() {
            if !self.nodes[i].up {
                continue;
            }
            let reply = match (watch.split_once(':'), watch.split_once('#')) {
                (Some((key, member)), _) => {
                    self.nodes[i].read(now, &[b"SISMEMBER", key.as_bytes(), member.as_bytes()])
                }
                (_, Some((key, field))) => {
                    self.nodes[i].read(now, &[b"HGET", key.as_bytes(), field.as_bytes()])
                }
                _ => self.nodes[i].read(now, &[b"GET", watch.as_bytes()]),
            };
            let shown = format!("{reply:?}");
            if self.watched[i] != shown {
                self.watched[i] = shown.clone();
                self.trace(|| format!("WATCH n{i} {watch} = {shown}"));
            }
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick(i) => {
                self.schedule(10, Event::Tick(i));
                if self.nodes[i].up {
                    let (now, node) = (self.now, &mut self.nodes[i]);
                    node.core
                        .applied(now, node.vv.clone(), node.durable.clone());
                    node.core.tick(now);
                    node.collect(now);
                    self.carry_out(i);
                }
            }
            Event::Sync(i) => {
                self.schedule(10, Event::Sync(i));
                if self.nodes[i].up && self.nodes[i].sync() {
                    self.acknowledge_synced(i);
                }
            }
            Event::Client => {
                if self.workload_on {
                    let gap = (1000 / self.opts.ops_per_sec.max(1)).max(1);
                    let next = self.rng.between(0, 2 * gap);
                    self.schedule(next, Event::Client);
                    self.client_op();
                }
            }
            Event::Deliver {
                from,
                to,
                incarnation,
                session,
                stream,
                msg,
            } => self.deliver(from, to, incarnation, session, stream, msg),
            Event::RepairSend(sending) => self.repair_send(sending),
            Event::Nemesis => {
                if self.workload_on {
                    let next = self.rng.between(1000, 3000);
                    self.schedule(next, Event::Nemesis);
                    self.nemesis();
                }
            }
            Event::Restart(i) => {
                if !self.nodes[i].up {
                    let origin = self.nodes[i].origin;
                    if (self.forgotten.iter()).any(|f| f.get(&i) == Some(&origin)) {
                        self.wipe_if_forgotten(i);
                    } else if self.opts.wipes && self.rng.chance(0.5) && self.held_elsewhere(i) {
                        // Its disk was replaced while it was down.
                        let salt = self.rng.below(u64::MAX);
                        self.nodes[i].wipe(salt);
                        // A new id: its stamps are ordered afresh.
                        self.last_acked_hlc[i] = Timestamp::ZERO;
                        self.faults
                            .push(format!("t={} wipe {}", self.t(), self.nodes[i].name));
                    }
                    self.restart(i);
                }
            }
            Event::Datagram { to, bytes } => {
                if self.nodes[to].up {
                    let result = self.nodes[to].gossip.receive(&bytes);
                    if let Err(e) = result {
                        self.violations.push(format!(
                            "{}: a member's datagram refused: {e}",
                            self.nodes[to].name
                        ));
                    }
                    self.carry_out_gossip(to);
                }
            }
            Event::GossipTimer {
                node,
                incarnation,
                timer,
            } => {
                // A crashed process's timers die with it.
                if self.nodes[node].up && self.nodes[node].incarnation == incarnation {
                    self.nodes[node].gossip.timer(timer);
                    self.carry_out_gossip(node);
                }
            }
            Event::Unblock(pairs) => {
                for p in pairs {
                    self.blocked.remove(&p);
                }
            }
            Event::LinkCheck => {
                self.schedule(100, Event::LinkCheck);
                self.link_check();
                self.causal_check();
            }
        }
    }

    /// Opens sessions between nodes that can reach each other both ways, closes the others.
    fn link_check(&mut self) {
        let n = self.nodes.len();
        for a in 0..n {
            for b in a + 1..n {
                let can = self.nodes[a].up
                    && self.nodes[b].up
                    && !self.blocked.contains(&(a, b))
                    && !self.blocked.contains(&(b, a));
                let open = self.sessions.contains_key(&(a, b));
                // A node that forgot the other refuses it under the write id it had then:
                // what it wrote since the others last heard of it may be concurrent with
                // deletes whose tombstones are collected, and would merge differently where
                // they are not. Wiped, it writes under a new id and is accepted.
                let refused =
                    |x: usize, y: usize| self.forgotten[x].get(&y) == Some(&self.nodes[y].origin);
                let can = can && !refused(a, b) && !refused(b, a);
                if can && !open {
                    self.forgotten[a].remove(&b);
                    self.forgotten[b].remove(&a);
                    self.sessions.insert((a, b), self.next_epoch);
                    self.next_epoch += 1;
                    let (ida, idb) = (self.nodes[a].id, self.nodes[b].id);
                    let (oa, ob) = (self.nodes[a].origin, self.nodes[b].origin);
                    let (da, db) = (self.nodes[a].durable.clone(), self.nodes[b].durable.clone());
                    let now = self.now;
                    self.nodes[a].core.connected(now, idb, ob, db);
                    self.nodes[b].core.connected(now, ida, oa, da);
                } else if !can && open {
                    self.close_session(a, b);
                }
            }
        }
        self.reconcile_open();
    }

    /// Starts the repairs a forget left to do on the sessions that are open.
    fn reconcile_open(&mut self) {
        for i in 0..self.nodes.len() {
            let due: Vec<usize> = (self.reconcile[i].iter().copied())
                .filter(|&p| self.epoch(i, p).is_some())
                .collect();
            for p in due {
                self.start_repair(i, p);
            }
        }
    }

    fn epoch(&self, a: usize, b: usize) -> Option<u64> {
        self.sessions.get(&(a.min(b), a.max(b))).copied()
    }

    /// The session between `a` and `b` closes (a link check found the link cut, a stream
    /// message could not pass, or a repair was refused): each side's core hears of it, a
    /// repair either side was receiving from the other stops.
    fn close_session(&mut self, a: usize, b: usize) {
        if self.sessions.remove(&(a.min(b), a.max(b))).is_none() {
            return;
        }
        self.trace(|| format!("session n{a}-n{b} closed"));
        let (ida, idb) = (self.nodes[a].id, self.nodes[b].id);
        let now = self.now;
        self.nodes[a].core.disconnected(idb);
        self.nodes[b].core.disconnected(ida);
        self.repairing[a].remove(&b);
        self.repairing[b].remove(&a);
        self.nodes[a].repair_closed(now, Some(idb));
        self.nodes[b].repair_closed(now, Some(ida));
    }

    /// Sends a message on the session's stream: it arrives after everything sent before it
    /// on this link, and is never lost nor duplicated; when the link is cut, the session
    /// breaks instead (see [`World::deliver`]).
    fn send_stream(&mut self, from: usize, to: usize, msg: Msg) {
        let Some(session) = self.epoch(from, to) else {
            return;
        };
        let base = DELAY_MS[self.nodes[from].region][self.nodes[to].region];
        let at = (self.now + base).max(self.stream_at.get(&(from, to)).copied().unwrap_or(0));
        self.stream_at.insert((from, to), at);
        let incarnation = self.nodes[to].incarnation;
        let event = Event::Deliver {
            from,
            to,
            incarnation,
            session,
            stream: true,
            msg,
        };
        self.schedule(at - self.now, event);
    }

    /// Node `i`'s log cannot serve `peer` (truncated, or adopted by a repair): it asks for
    /// the peer's digests, and ships nothing to it meanwhile (the runtime's `start_snapshot`).
    fn start_repair(&mut self, i: usize, peer: usize) {
        if self.epoch(i, peer).is_none() || self.repairing[i].contains(&peer) {
            return;
        }
        let id = self.nodes[peer].id;
        self.nodes[i].core.snapshot_started(id);
        self.repairing[i].insert(peer);
        self.trace(|| format!("n{i} asks n{peer} for digests"));
        self.send_stream(i, peer, Msg::DigestRequest);
    }

    /// Node `from` sends `to` its state of the differing buckets after `after` (one part),
    /// read from the view the repair began with (as the runtime does while its engine goes
    /// on); after the last part, the end, and shipping goes on from what the view covers.
    fn repair_send(&mut self, sending: Sending) {
        let (from, to, after) = (sending.from, sending.to, sending.after.clone());
        if self.epoch(from, to) != Some(sending.session) || !self.nodes[from].up {
            return;
        }
        let (mut changes, last) =
            node::engine::snapshot_chunk(sending.view.as_ref(), after.as_deref(), REPAIR_KEYS)
                .expect("the memory store does not fail");
        changes.retain(|c| sending.differ[node::engine::bucket_of(c.key())]);
        self.trace(|| {
            let keys: Vec<_> = (changes.iter())
                .filter(|c| matches!(c, Change::Header { .. }))
                .map(|c| String::from_utf8_lossy(c.key()).into_owned())
                .collect();
            format!("n{from} sends n{to} ({after:?}, {last:?}]: {keys:?}")
        });
        let part = Msg::RepairPart {
            after,
            last: last.clone(),
            changes,
        };
        self.send_stream(from, to, part);
        match last {
            Some(last) => {
                let next = Sending {
                    after: Some(last),
                    ..sending
                };
                self.schedule(REPAIR_PART_MS, Event::RepairSend(next));
            }
            None => {
                self.send_stream(from, to, Msg::RepairEnd);
                let (now, id) = (self.now, self.nodes[to].id);
                self.nodes[from]
                    .core
                    .snapshot_sent(now, id, &sending.covers.vv);
                self.carry_out(from);
            }
        }
    }

    /// After which delays copies of a message from `from` reach `to`: none across a
    /// partition or when it is lost, two when it is duplicated.
    fn network(&mut self, from: usize, to: usize) -> Vec<u64> {
        if self.blocked.contains(&(from, to)) || self.rng.chance(self.loss) {
            return Vec::new();
        }
        let base = DELAY_MS[self.nodes[from].region][self.nodes[to].region];
        let copies = if self.rng.chance(self.duplicate) {
            2
        } else {
            1
        };
        (0..copies)
            .map(|_| base + self.rng.below(JITTER_MS + 1))
            .collect()
    }

    fn send(&mut self, from: usize, to: usize, msg: Msg) {
        let Some(session) = self.epoch(from, to) else {
            return;
        };
        let incarnation = self.nodes[to].incarnation;
        let delays = self.network(from, to);
        if delays.is_empty() {
            return;
        }
        let copies = delays.len();
        if copies == 2 {
            let twin = match &msg {
                Msg::Entries(e) => Msg::Entries(e.clone()),
                Msg::Ack(vv) => Msg::Ack(vv.clone()),
                _ => unreachable!("stream messages go by send_stream"),
            };
            self.schedule(
                delays[1],
                Event::Deliver {
                    from,
                    to,
                    incarnation,
                    session,
                    stream: false,
                    msg: twin,
                },
            );
        }
        self.schedule(
            delays[0],
            Event::Deliver {
                from,
                to,
                incarnation,
                session,
                stream: false,
                msg,
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &mut self,
        from: usize,
        to: usize,
        incarnation: u64,
        session: u64,
        stream: bool,
        msg: Msg,
    ) {
        // What was sent reaches the receiver while their session is open (even if the sender
        // died meanwhile: the kernel sends what the socket holds, until the receiver notices),
        // but not across a partition, and not a receiver that restarted.
        if !self.nodes[to].up
            || self.nodes[to].incarnation != incarnation
            || self.epoch(from, to) != Some(session)
        {
            return;
        }
        if self.blocked.contains(&(from, to)) {
            // A stream cannot lose a message and go on: a cut link breaks its session.
            if stream {
                self.close_session(from, to);
            }
            return;
        }
        let from_id = self.nodes[from].id;
        let now = self.now;
        let refused = match msg {
            Msg::Entries(entries) => {
                self.nodes[to].core.received(entries);
                Ok(())
            }
            Msg::Ack(vv) => {
                self.nodes[to].core.acked(now, from_id, &vv);
                Ok(())
            }
            Msg::DigestRequest => {
                let digests = self.nodes[to].digests();
                self.send_stream(to, from, Msg::Digests(digests));
                Ok(())
            }
            Msg::Digests(theirs) => {
                if self.repairing[to].remove(&from) {
                    self.reconcile[to].remove(&from);
                    // One view for the digests, the parts and the vector (as the runtime's
                    // `prepare`), on disk before any of it leaves: a crash must not take
                    // back what a peer adopts.
                    if self.nodes[to].sync() {
                        self.acknowledge_synced(to);
                    }
                    let view = Arc::new(self.nodes[to].view());
                    let stored = view.version_vector().expect("memory");
                    let covers = Applied::from_stored(stored).expect("the node wrote it");
                    let vv = covers.vv.clone();
                    let ours = node::engine::digests(view.as_ref()).expect("memory");
                    let differ: Vec<bool> = ours.iter().zip(&theirs).map(|(a, b)| a != b).collect();
                    self.send_stream(
                        to,
                        from,
                        Msg::RepairBegin {
                            differ: differ.clone(),
                            covers: covers.clone(),
                        },
                    );
                    let session = self.epoch(to, from).expect("the stream just passed");
                    self.trace(|| format!("n{to} repairs n{from} up to {vv:?}"));
                    let first = Sending {
                        from: to,
                        to: from,
                        session,
                        differ,
                        view,
                        covers,
                        after: None,
                    };
                    self.schedule(0, Event::RepairSend(first));
                }
                Ok(())
            }
            Msg::RepairBegin { differ, covers } => {
                self.nodes[to].repair_begin(now, from_id, differ, covers)
            }
            Msg::RepairPart {
                after,
                last,
                changes,
            } => self.nodes[to].repair_part(now, from_id, after, last, &changes),
            Msg::RepairEnd => {
                self.trace(|| format!("n{to} adopts n{from}'s repair"));
                let node = &mut self.nodes[to];
                let ended = node.repair_end(now, from_id);
                if ended.is_ok() {
                    node.core
                        .applied(now, node.vv.clone(), node.durable.clone());
                }
                ended
            }
        };
        if let Err(e) = &refused {
            let e = e.clone();
            self.trace(|| format!("n{to} refused n{from}'s repair: {e}"));
        }
        if refused.is_err() {
            // As the runtime does: the session closes, and the peer tries again when it
            // connects again.
            self.close_session(from, to);
        }
        self.carry_out(to);
    }

    /// Carries out node `i`'s effects until it asks for nothing more.
    fn carry_out(&mut self, i: usize) {
        loop {
            let effects = self.nodes[i].core.take_effects();
            if effects.is_empty() {
                return;
            }
            for effect in effects {
                match effect {
                    Effect::Ship {
                        peer,
                        origin,
                        from,
                        to,
                    } => {
                        let peer = self.node_index(peer);
                        match self.nodes[i].log_range(origin, from, to) {
                            Some(entries) => self.send(i, peer, Msg::Entries(entries)),
                            None => self.start_repair(i, peer),
                        }
                    }
                    Effect::Ack { peer, vv } => {
                        let peer = self.node_index(peer);
                        self.send(i, peer, Msg::Ack(vv));
                    }
                    Effect::Apply(entries) => {
                        if self.tracing {
                            for e in &entries {
                                let keys: Vec<_> = (e.changes.iter())
                                    .map(|c| String::from_utf8_lossy(c.key()).into_owned())
                                    .collect();
                                let (o, q) = (e.origin, e.seq);
                                self.trace(|| format!("n{i} applies {o:?}/{q} {keys:?}"));
                            }
                        }
                        let now = self.now;
                        let node = &mut self.nodes[i];
                        node.apply(now, &entries);
                        node.core
                            .applied(now, node.vv.clone(), node.durable.clone());
                    }
                }
            }
        }
    }

    fn fresh(&mut self, prefix: &str) -> Bytes {
        self.next_value += 1;
        Bytes::from(format!("{prefix}{}", self.next_value))
    }

    /// One command of the delete family on node `i` (see [`Options::deletes`]): writes and
    /// deletes that race each other across regions on a few keys.
    fn delete_op(&mut self, i: usize) {
        let k = self.extra.below(3);
        let field = format!("f{}", self.extra.below(3));
        let member = format!("m{}", self.extra.below(4));
        let value = self.fresh("d");
        let by = self.extra.between(1, 5).to_string();
        let (x, y, z, w) = (
            format!("x{k}"),
            format!("y{k}"),
            format!("z{k}"),
            format!("w{k}"),
        );
        let words: Vec<&[u8]> = match self.extra.below(8) {
            0 => vec![b"SET", x.as_bytes(), &value],
            1 => vec![b"INCRBY", y.as_bytes(), by.as_bytes()],
            2 => vec![b"HSET", z.as_bytes(), field.as_bytes(), &value],
            3 => vec![b"HINCRBY", z.as_bytes(), b"n", by.as_bytes()],
            4 => vec![b"HDEL", z.as_bytes(), field.as_bytes()],
            5 => vec![b"SADD", w.as_bytes(), member.as_bytes()],
            6 => vec![b"SREM", w.as_bytes(), member.as_bytes()],
            _ => vec![
                b"DEL",
                x.as_bytes(),
                y.as_bytes(),
                z.as_bytes(),
                w.as_bytes(),
            ],
        };
        self.execute_traced(i, &words);
    }

    /// Runs a client command on node `i` whose outcome only convergence checks, and traces it.
    fn execute_traced(&mut self, i: usize, words: &[&[u8]]) {
        let done = self.nodes[i].execute(self.now, words);
        let seq = self.nodes[i].vv.get(self.nodes[i].origin);
        self.trace(|| {
            let words: Vec<_> = words.iter().map(|w| String::from_utf8_lossy(w)).collect();
            format!("n{i} {} -> {:?} (entry {seq})", words.join(" "), done.reply)
        });
    }

    /// One command of the derived family on node `i` (see [`Options::derived`]), on the keys
    /// of the delete family.
    fn derived_op(&mut self, i: usize) {
        let r = &mut self.derived;
        let (a, b, c) = (r.below(3), r.below(3), r.below(3));
        let member = format!("m{}", r.below(4));
        let offset = r.below(6).to_string();
        let pick = r.below(32);
        let index = (r.below(7) as i64 - 3).to_string();
        let score = (r.below(9) as i64 - 4).to_string();
        let value = self.fresh("g");
        let (xa, xb, za, zb) = (
            format!("x{a}"),
            format!("x{b}"),
            format!("z{a}"),
            format!("z{b}"),
        );
        let (wa, wb, wc) = (format!("w{a}"), format!("w{b}"), format!("w{c}"));
        let (la, lb) = (format!("l{a}"), format!("l{b}"));
        let (ka, kb) = (format!("k{a}"), format!("k{b}"));
        let side = |n: u64| {
            if n.is_multiple_of(2) {
                &b"LEFT"[..]
            } else {
                b"RIGHT"
            }
        };
        let words: Vec<&[u8]> = match pick {
            0 => vec![b"RENAME", xa.as_bytes(), xb.as_bytes()],
            1 => vec![b"COPY", za.as_bytes(), zb.as_bytes(), b"REPLACE"],
            2 => vec![b"SMOVE", wa.as_bytes(), wb.as_bytes(), member.as_bytes()],
            3 => vec![b"SINTERSTORE", wa.as_bytes(), wb.as_bytes(), wc.as_bytes()],
            4 => vec![b"SUNIONSTORE", wa.as_bytes(), wb.as_bytes(), wc.as_bytes()],
            5 => vec![b"SDIFFSTORE", wa.as_bytes(), wb.as_bytes(), wc.as_bytes()],
            6 => vec![b"SETRANGE", xa.as_bytes(), offset.as_bytes(), &value],
            7 => vec![b"GETEX", xa.as_bytes(), b"EX", b"1000"],
            8 => vec![b"HSETNX", za.as_bytes(), member.as_bytes(), &value],
            9 => vec![b"MSETNX", xa.as_bytes(), &value, xb.as_bytes(), &value],
            10 => vec![b"RENAMENX", za.as_bytes(), zb.as_bytes()],
            11 => vec![b"SETNX", xa.as_bytes(), &value],
            12 | 13 => vec![b"RPUSH", la.as_bytes(), &value, b"t"],
            14 => vec![b"LPUSH", la.as_bytes(), &value],
            15 => vec![b"LPOP", la.as_bytes()],
            16 => vec![b"RPOP", la.as_bytes(), b"2"],
            17 => vec![b"LINSERT", la.as_bytes(), b"BEFORE", b"t", &value],
            18 => vec![b"LSET", la.as_bytes(), index.as_bytes(), &value],
            19 => vec![b"LREM", la.as_bytes(), index.as_bytes(), b"t"],
            20 => vec![b"LTRIM", la.as_bytes(), b"0", index.as_bytes()],
            21 => vec![b"LMOVE", la.as_bytes(), lb.as_bytes(), side(a), side(b)],
            22 => vec![b"RENAME", la.as_bytes(), lb.as_bytes()],
            23 => vec![b"DEL", la.as_bytes()],
            24 | 25 => vec![b"ZADD", ka.as_bytes(), score.as_bytes(), member.as_bytes()],
            26 => vec![
                b"ZINCRBY",
                ka.as_bytes(),
                score.as_bytes(),
                member.as_bytes(),
            ],
            27 => vec![b"ZREM", ka.as_bytes(), member.as_bytes()],
            28 => vec![b"ZPOPMIN", ka.as_bytes()],
            29 => vec![
                b"ZREMRANGEBYSCORE",
                ka.as_bytes(),
                b"-inf",
                score.as_bytes(),
            ],
            30 => vec![
                b"ZUNIONSTORE",
                kb.as_bytes(),
                b"2",
                ka.as_bytes(),
                kb.as_bytes(),
            ],
            _ => vec![
                b"ZADD",
                ka.as_bytes(),
                b"GT",
                score.as_bytes(),
                member.as_bytes(),
            ],
        };
        self.execute_traced(i, &words);
    }

    /// One command of the series family on node `i` (see [`Options::series`]): samples from
    /// every region on a few instants of a few series, so that writes of one instant race.
    fn series_op(&mut self, i: usize) {
        let r = &mut self.series;
        let key = format!("ts{}", r.below(3));
        let other = format!("ts{}", r.below(3));
        let ts = (r.below(8) * 25_000).to_string();
        let ts2 = (r.below(8) * 25_000).to_string();
        let value = (r.below(9) as i64 - 4).to_string();
        let policy: &[u8] =
            [&b"LAST"[..], b"FIRST", b"MIN", b"MAX", b"SUM", b"BLOCK"][r.below(6) as usize];
        let words: Vec<&[u8]> = match r.below(12) {
            0 => vec![b"TS.CREATE", key.as_bytes(), b"DUPLICATE_POLICY", policy],
            1 => vec![
                b"TS.ALTER",
                key.as_bytes(),
                b"LABELS",
                b"room",
                value.as_bytes(),
            ],
            2 => vec![b"TS.DEL", key.as_bytes(), ts.as_bytes(), ts2.as_bytes()],
            3 => vec![b"DEL", key.as_bytes()],
            4 => vec![b"TS.INCRBY", key.as_bytes(), value.as_bytes()],
            5 => vec![
                b"TS.MADD",
                key.as_bytes(),
                ts.as_bytes(),
                value.as_bytes(),
                other.as_bytes(),
                ts2.as_bytes(),
                value.as_bytes(),
            ],
            6 => vec![
                b"TS.ADD",
                key.as_bytes(),
                ts.as_bytes(),
                value.as_bytes(),
                b"ON_DUPLICATE",
                policy,
            ],
            7 => vec![b"TS.ALTER", key.as_bytes(), b"DUPLICATE_POLICY", policy],
            _ => vec![b"TS.ADD", key.as_bytes(), ts.as_bytes(), value.as_bytes()],
        };
        self.execute_traced(i, &words);
    }

    /// One client command on a random node that is up.
    fn client_op(&mut self) {
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].up)
            .collect();
        if up.is_empty() {
            return;
        }
        let i = up[self.rng.below(up.len() as u64) as usize];
        if self.opts.deletes && self.extra.chance(0.3) {
            self.delete_op(i);
        }
        if self.opts.derived && self.derived.chance(0.15) {
            self.derived_op(i);
        }
        if self.opts.series && self.series.chance(0.15) {
            self.series_op(i);
        }
        let k = self.rng.below(4);
        match self.rng.below(100) {
            0..30 => {
                let key = Bytes::from(format!("r{k}"));
                let value = self.fresh("v");
                let done = self.nodes[i].execute(self.now, &[b"SET", &key, &value]);
                let stamp = Stamp::new(done.hlc, self.nodes[i].origin);
                self.written(i, done.hlc, Acked::Set { key, value, stamp });
            }
            30..50 => {
                let key = Bytes::from(format!("c{k}"));
                let by = self.rng.between(1, 5) as i64;
                let done =
                    self.nodes[i].execute(self.now, &[b"INCRBY", &key, by.to_string().as_bytes()]);
                self.written(
                    i,
                    done.hlc,
                    Acked::Add {
                        key,
                        field: None,
                        by,
                    },
                );
            }
            50..60 => {
                let key = Bytes::from(format!("h{k}"));
                let field = Bytes::from(format!("f{}", self.rng.below(3)));
                let by = self.rng.between(1, 5) as i64;
                let done = self.nodes[i].execute(
                    self.now,
                    &[b"HINCRBY", &key, &field, by.to_string().as_bytes()],
                );
                self.written(
                    i,
                    done.hlc,
                    Acked::Add {
                        key,
                        field: Some(field),
                        by,
                    },
                );
            }
            60..75 => {
                let key = Bytes::from(format!("s{k}"));
                let member = self.fresh("m");
                let done = self.nodes[i].execute(self.now, &[b"SADD", &key, &member]);
                let seq = self.nodes[i].vv.get(self.nodes[i].origin);
                self.trace(|| format!("n{i} SADD {key:?} {member:?} (entry {seq})"));
                self.members.push((key.clone(), member.clone()));
                self.written(i, done.hlc, Acked::Sadd { key, member });
            }
            75..88 => {
                if self.members.is_empty() {
                    return;
                }
                let pick = self.rng.below(self.members.len() as u64) as usize;
                let (key, member) = self.members[pick].clone();
                let done = self.nodes[i].execute(self.now, &[b"SREM", &key, &member]);
                let removed = done.reply == Reply::Int(1);
                let seq = self.nodes[i].vv.get(self.nodes[i].origin);
                self.trace(|| format!("n{i} SREM {key:?} {member:?} -> {removed} (entry {seq})"));
                if done.wrote {
                    self.written(
                        i,
                        done.hlc,
                        Acked::Srem {
                            key,
                            member,
                            removed,
                        },
                    );
                }
            }
            _ => {
                // A client that writes A and then B on one node: no node may ever show more
                // of B than of A.
                for key in [&b"causal-a"[..], b"causal-b"] {
                    let done = self.nodes[i].execute(self.now, &[b"INCR", key]);
                    let key = Bytes::copy_from_slice(key);
                    let acked = Acked::Add {
                        key,
                        field: None,
                        by: 1,
                    };
                    self.written(i, done.hlc, acked);
                }
            }
        }
    }

    /// A write executed on node `i`: acknowledged now under `always`, after the sync otherwise.
    fn written(&mut self, i: usize, hlc: Timestamp, acked: Acked) {
        let origin = self.nodes[i].origin;
        let entry = (origin, self.nodes[i].vv.get(origin));
        if self.nodes[i].always {
            self.acknowledge(i, hlc, acked, entry);
        } else {
            self.waiting.push(Waiting {
                node: i,
                acked,
                hlc,
                entry,
            });
        }
    }

    fn acknowledge_synced(&mut self, i: usize) {
        let (now_synced, rest): (Vec<Waiting>, Vec<Waiting>) =
            self.waiting.drain(..).partition(|w| w.node == i);
        self.waiting = rest;
        for w in now_synced {
            self.acknowledge(w.node, w.hlc, w.acked, w.entry);
        }
    }

    fn acknowledge(&mut self, i: usize, hlc: Timestamp, acked: Acked, entry: (NodeId, u64)) {
        // An SREM takes no stamp (an observed remove names the adds it saw), so it does not
        // advance the clock; every other write does.
        let stamped = !matches!(acked, Acked::Srem { .. });
        if stamped && hlc <= self.last_acked_hlc[i] {
            self.violations.push(format!(
                "{}: HLC went backwards: {hlc:?} after {:?} ({acked:?})",
                self.nodes[i].name, self.last_acked_hlc[i]
            ));
        }
        self.last_acked_hlc[i] = hlc;
        self.acked.push(acked);
        self.acked_entries.push(entry);
    }

    /// Injects one fault.
    fn nemesis(&mut self) {
        let n = self.nodes.len();
        let a = self.rng.below(n as u64) as usize;
        match self.rng.below(4) {
            0 => {
                if self.nodes[a].up {
                    let node = &self.nodes[a];
                    let (vv, durable) = (node.vv.clone(), node.durable.clone());
                    let always = node.always;
                    self.trace(|| {
                        format!("n{a} crashes (always {always}) at {vv:?}, durable {durable:?}")
                    });
                    self.nodes[a].crash();
                    // Writes waiting for its sync were never acknowledged: gone, as allowed.
                    self.waiting.retain(|w| w.node != a);
                    let back = self.rng.between(200, 4000);
                    self.faults.push(format!(
                        "t={} crash {} for {back} ms",
                        self.t(),
                        self.nodes[a].name
                    ));
                    self.schedule(back, Event::Restart(a));
                    self.link_check();
                    if self.opts.repairs && self.forgets.chance(0.3) {
                        // `CLUSTER FORGET` on every other member: it no longer holds back
                        // truncation nor collection, and a repair brings it back.
                        let id = self.nodes[a].id;
                        let origin = self.nodes[a].origin;
                        for b in (0..n).filter(|&b| b != a) {
                            self.forgotten[b].insert(a, origin);
                            self.nodes[b].forget(id);
                            // What the forgotten member had spread may sit on some members
                            // and not others, outside every log (a repair it did not finish):
                            // the members left repair each other.
                            self.reconcile[b].extend((0..n).filter(|&c| c != a && c != b));
                            self.reconcile[b].remove(&a);
                        }
                        self.reconcile[a].clear();
                        self.reconcile_open();
                        self.faults
                            .push(format!("t={} forget {}", self.t(), self.nodes[a].name));
                    }
                }
            }
            1 => {
                let pairs: Vec<(usize, usize)> = (0..n)
                    .filter(|&b| b != a)
                    .flat_map(|b| [(a, b), (b, a)])
                    .collect();
                self.block(pairs, &format!("isolate {}", self.nodes[a].name));
            }
            2 => {
                let mut side: Vec<bool> = (0..n).map(|_| self.rng.chance(0.5)).collect();
                side[a] = true;
                let pairs: Vec<(usize, usize)> = (0..n)
                    .flat_map(|x| (0..n).map(move |y| (x, y)))
                    .filter(|&(x, y)| side[x] != side[y])
                    .collect();
                self.block(pairs, &format!("split {side:?}"));
            }
            _ => {
                let b = (a + 1 + self.rng.below(n as u64 - 1) as usize) % n;
                let what = format!("one-way {} -/-> {}", self.nodes[a].name, self.nodes[b].name);
                self.block(vec![(a, b)], &what);
            }
        }
    }

    /// Whether every entry node `a` holds durably is on another node's disk too (the only
    /// wipe that loses no acknowledged write).
    fn held_elsewhere(&self, a: usize) -> bool {
        self.nodes[a].durable.iter().all(|(origin, seq)| {
            (0..self.nodes.len()).any(|b| b != a && self.nodes[b].durable.get(origin) >= seq)
        })
    }

    fn block(&mut self, pairs: Vec<(usize, usize)>, what: &str) {
        let heal = self.rng.between(500, 5000);
        self.faults
            .push(format!("t={} {what} for {heal} ms", self.t()));
        for p in &pairs {
            self.blocked.insert(*p);
        }
        self.schedule(heal, Event::Unblock(pairs));
    }

    fn t(&self) -> u64 {
        self.now - EPOCH_MS
    }

    /// Notes what happened, when tracing.
    fn trace(&mut self, what: impl FnOnce() -> String) {
        if self.tracing {
            let line = format!("t={} {}", self.t(), what());
            self.trace.push(line);
        }
    }

    /// No node shows more increments of `causal-b` than of `causal-a`.
    fn causal_check(&mut self) {
        let now = self.now;
        for node in self.nodes.iter_mut().filter(|n| n.up) {
            let a = int(&node.read(now, &[b"GET", b"causal-a"]));
            let b = int(&node.read(now, &[b"GET", b"causal-b"]));
            if b > a {
                self.violations.push(format!(
                    "{} at t={}: causal-b = {b} but causal-a = {a}: B visible without A",
                    node.name,
                    now - EPOCH_MS
                ));
            }
        }
    }

    pub(crate) fn nodes_mut(&mut self) -> (&mut Vec<SimNode>, u64) {
        (&mut self.nodes, self.now)
    }

    /// The acknowledged writes the cluster must hold: all but those only a forgotten member
    /// held (given up by `CLUSTER FORGET`) that no member holds when the cluster converged.
    pub(crate) fn acked_writes(&self) -> Vec<Acked> {
        let held = &self.nodes[0].vv;
        (self.acked.iter().zip(&self.acked_entries).enumerate())
            .filter(|(i, (_, (origin, seq)))| {
                !self.given_up.contains(i) || *seq <= held.get(*origin)
            })
            .map(|(_, (a, _))| a.clone())
            .collect()
    }
}

/// The integer a GET answered (absent counts as 0).
pub(crate) fn int(reply: &Reply) -> i64 {
    match reply {
        Reply::Bulk(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(i64::MIN),
        _ => 0,
    }
}
