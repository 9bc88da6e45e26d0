//! The peer runtime: links to other nodes, and the replication core driven over them.
//!
//! One task (the *runtime*) owns the [`replication::Replicator`] core and the member table.
//! Everything else reports to it through [`Event`]s:
//! - the listener and the dialer run each new connection's handshake ([`session`]) in a task
//!   of its own, then hand the established session over;
//! - each session has a reader task (frames in, as events) and a writer task (messages out,
//!   after the simulated WAN delay when one is configured);
//! - the engine publishes what it applied and synced (a watch channel), which the runtime
//!   feeds to the core; entries the core releases go to the engine through one applier task,
//!   so they arrive in the order the core chose.
//!
//! The runtime carries out the core's effects: it reads log ranges from the store and ships
//! them, sends acknowledgements, and hands entries to the applier. Every 10 ms (100 ms when idle) it ticks the
//! core; every second it pings each session (a silent session is closed after 5 s) and
//! redials members it has no session with.
//!
//! Membership is SWIM gossip ([`membership::Membership`], over UDP on the peer port, every
//! datagram encrypted and authenticated under the gossip keyring, see [`gossip`]): a node announces itself to its seeds and
//! to the members it remembers, learns every member from the gossip (and from each handshake's
//! member list), and sees each as up, suspect or down as the probes tell, or left when it said
//! so on shutdown. Whether a replication session with it is open is its `link`: a member
//! this node cannot reach but others can is up with its link down, and its writes arrive
//! relayed.

mod distance;
mod gossip;
mod links;
mod repair;
mod serving;
pub mod session;
mod watermark;
pub mod wire;

use crate::Shared;
use crate::engine::{ReadAhead, Remote};
use bytes::Bytes;
use crdt::NodeId;
use futures_util::StreamExt;
use membership::{Liveness, Membership};
use replication::{Config, Effect, Entry, Replicator, VersionVector};
pub use serving::CAPACITY_MAX;
use session::{Established, SessionError};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use wire::{MemberInfo, Message, Shipped};
pub use wire::{Serving, Status};

/// Most changes of peers' entries that queued up, gathered into one commit.
const COALESCE_CHANGES_MAX: usize = 65_536;
/// Messages queued for one peer before the runtime stops queueing (the core ships again).
const SESSION_QUEUE_MAX: usize = 1024;
/// Events waiting for the runtime.
const EVENTS_MAX: usize = 4096;
/// Handshakes running at once; further connections are closed.
const HANDSHAKES_MAX: usize = 64;
/// Bytes of log entries per frame.
const SHIP_FRAME_BYTES: usize = 4 << 20;
/// Keys per snapshot frame.
const SNAPSHOT_KEYS: usize = 256;
/// Most members a node keeps track of.
const MEMBERS_MAX: usize = 1024;
/// Longest node or region name accepted from a peer.
const NAME_BYTES_MAX: usize = 255;
/// The member table, kept across restarts so a node knows whom to reach (and whom the log
/// must be kept for) before anyone reaches it.
pub const MEMBERS_FILE: &str = "members.json";
/// The write ids members announced, and those of forgotten members: see [`WriteIds`].
pub const WRITE_IDS_FILE: &str = "write_ids.json";

/// The write id each member last announced, and the one each forgotten member wrote under
/// when it was forgotten (`CLUSTER FORGET`). A forgotten member may come back only under a
/// new one, with its data directory wiped: the others went on collecting tombstones without
/// waiting for its writes, so its old state and the writes it made concurrently with
/// collected deletes would bring those deletes' effects back (a counter would count again
/// what a `DEL` had reset, for one). Kept in [`WRITE_IDS_FILE`].
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct WriteIds {
    announced: BTreeMap<String, u64>,
    forgotten: BTreeMap<String, u64>,
}

/// A member whose session has brought nothing for this long (two missed pongs) is not named
/// to clients: a node cut off is passed over within about two seconds, sooner than gossip
/// declares it down, and its session closes at [`session::SILENCE_TIMEOUT`].
pub const QUIET_MS_MAX: u64 = 2000;

/// Whether a member is alive, as gossip tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// It answers probes (directly, or through other members).
    Up,
    /// It missed a probe; it is declared down unless it answers soon.
    Suspect,
    /// Declared down (dead, paused, or cut off from everyone), or not heard of yet.
    Down,
    /// It announced that it shut down.
    Left,
}

impl MemberState {
    /// The name status pages show.
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Up => "up",
            MemberState::Suspect => "suspect",
            MemberState::Down => "down",
            MemberState::Left => "left",
        }
    }
}

/// One member as status pages, `INFO` and `WAIT` see it.
#[derive(Clone, Debug)]
pub struct MemberView {
    /// Its name and addresses.
    pub info: MemberInfo,
    /// Its state.
    pub state: MemberState,
    /// Whether a replication session with it is open.
    pub link: bool,
    /// Entries this node holds that it has not acknowledged.
    pub lag_ops: u64,
    /// The round trip to it, from the link's pings (`distance.rs`), once measured.
    pub rtt_ms: Option<f64>,
    /// Its network coordinate, as it last sent it.
    pub coordinate: Option<routing::Coordinate>,
    /// The round trips it measures to its peers, as it last sent them (node id, ms).
    pub rtts: Vec<(String, f32)>,
    /// Age of the oldest own entry it has not acknowledged.
    pub lag_ms: u64,
    /// The highest own sequence number it holds durably.
    pub has_own: u64,
    /// Whether this node's tombstones wait for it: it does not yet hold the barrier of the
    /// oldest checkpoint (see `replication::Stability`), typically because it is down.
    pub holds_collection: bool,
    /// Where and whether it serves clients, as it said over the open session (none without
    /// one).
    pub serving: Option<Serving>,
    /// How long the open session has been silent, in ms (it brings a pong every second).
    pub quiet_ms: Option<u64>,
}

impl MemberView {
    /// Whether discovery may send clients to it: up by gossip, linked to this node and heard
    /// from within [`QUIET_MS_MAX`], and saying it is ready (caught up, not draining).
    pub fn takes_clients(&self) -> bool {
        self.link
            && self.quiet_ms.is_some_and(|ms| ms < QUIET_MS_MAX)
            && matches!(self.state, MemberState::Up | MemberState::Suspect)
            && self
                .serving
                .as_ref()
                .is_some_and(|s| s.status == Status::Ready)
    }
}

/// The cluster as this node sees it.
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    /// Every other member heard of.
    pub members: Vec<MemberView>,
    /// This node's network coordinate.
    pub coordinate: routing::Coordinate,
    /// Where and whether this node serves clients.
    pub serving: Option<Serving>,
}

/// What connections and the HTTP server use of the peer runtime.
pub struct Handle {
    events: mpsc::Sender<Event>,
    /// The cluster, republished every 100 ms when it changed.
    pub view: watch::Receiver<ClusterView>,
    isolated: Arc<AtomicBool>,
}

impl Handle {
    /// The members this node's tombstones wait for (see `MemberView::holds_collection`).
    pub fn collection_held_by(&self) -> Vec<String> {
        let view = self.view.borrow();
        (view.members.iter())
            .filter(|m| m.holds_collection)
            .map(|m| m.info.name.clone())
            .collect()
    }

    /// Sends a published message to every connected peer (best effort, as pub/sub is).
    pub fn publish(&self, kind: crate::pubsub::Kind, channel: &Bytes, message: &Bytes) {
        let _ = self.events.try_send(Event::Publish {
            shard: kind == crate::pubsub::Kind::Shard,
            channel: channel.clone(),
            message: message.clone(),
        });
    }

    /// Asks every connected peer to sync what it holds now (`WAIT` is waiting for it).
    pub fn request_sync(&self) {
        let _ = self.events.try_send(Event::SyncRequested);
    }

    /// Removes a member for good (`CLUSTER FORGET`): it no longer holds back log truncation.
    /// Refused while it is up.
    pub fn forget(&self, name: &str) -> Result<(), String> {
        let view = self.view.borrow();
        match view.members.iter().find(|m| m.info.name == name) {
            None => Err(format!("ERR unknown node {name}")),
            Some(m) if m.link || matches!(m.state, MemberState::Up | MemberState::Suspect) => Err(
                format!("ERR node {name} is up: stop it before forgetting it"),
            ),
            Some(_) => {
                let _ = self.events.try_send(Event::Forget(name.to_string()));
                Ok(())
            }
        }
    }

    /// Stops (`true`) or resumes (`false`) naming this node to clients: draining, peers
    /// learn it at once and discovery answers move elsewhere. Resuming waits for catch-up
    /// again.
    pub fn drain(&self, on: bool) {
        let _ = self.events.try_send(Event::Drain(on));
    }

    /// Cuts this node off from every peer (`true`) or lets it reconnect (`false`): the
    /// demo's stand-in for a network partition.
    pub fn set_isolated(&self, isolated: bool) {
        self.isolated.store(isolated, Ordering::Relaxed);
    }
}

/// The receiving ends the runtime starts with.
pub struct Parts {
    events_tx: mpsc::Sender<Event>,
    events: mpsc::Receiver<Event>,
    view: watch::Sender<ClusterView>,
    isolated: Arc<AtomicBool>,
}

/// Makes the channels between the runtime and everyone else.
pub fn channels() -> (Handle, Parts) {
    let (events_tx, events) = mpsc::channel(EVENTS_MAX);
    let (view, view_rx) = watch::channel(ClusterView::default());
    let isolated = Arc::new(AtomicBool::new(false));
    let handle = Handle {
        events: events_tx.clone(),
        view: view_rx,
        isolated: isolated.clone(),
    };
    let parts = Parts {
        events_tx,
        events,
        view,
        isolated,
    };
    (handle, parts)
}

/// What the runtime hears about.
pub enum Event {
    /// A handshake finished.
    Session {
        /// Who dialled: the tie-break when two nodes dial each other at once.
        dialer: String,
        /// What the handshake learned.
        established: Box<Established>,
    },
    /// A session's reader got a message.
    Message {
        /// The session.
        sid: u64,
        /// The message.
        message: Message,
    },
    /// A session's reader stopped.
    Closed {
        /// The session.
        sid: u64,
        /// Why.
        error: SessionError,
    },
    /// A dial finished (successfully or not).
    Dialed {
        /// The address dialled.
        addr: String,
        /// Whom it reached.
        reached: Result<String, String>,
    },
    /// A client published a message here.
    Publish {
        /// On a shard channel (`SPUBLISH`).
        shard: bool,
        /// The channel.
        channel: Bytes,
        /// The message.
        message: Bytes,
    },
    /// A client here waits for peers to hold its writes durably.
    SyncRequested,
    /// The engine refused entries the core released.
    ApplyFailed(String),
    /// This node's digests, asked for by `peer`, are ready.
    DigestsComputed {
        /// Who asked.
        peer: NodeId,
        /// One per key bucket.
        digests: Vec<u64>,
    },
    /// A repair from `peer` could not be applied (or another is in progress): the session
    /// closes, and the peer repairs this node again when it reconnects.
    RepairRefused {
        /// The repairing peer.
        peer: NodeId,
        /// Why.
        error: String,
    },
    /// A snapshot for a peer is queued to its session in full.
    SnapshotSent {
        /// The peer.
        peer: NodeId,
        /// What the snapshot covers.
        vv: VersionVector,
    },
    /// A member is removed for good.
    Forget(String),
    /// A gossip datagram arrived.
    Datagram(Bytes),
    /// A gossip timer is due.
    Timer(membership::Timer),
    /// Start (`true`) or stop draining.
    Drain(bool),
}

struct Session {
    sid: u64,
    dialer: String,
    tx: mpsc::Sender<(Instant, Message)>,
    reader: AbortHandle,
}

struct Known {
    info: MemberInfo,
    /// The round trip to it, from the session's pings.
    rtt: routing::Rtt,
    /// Its network coordinate, as it last sent it.
    coordinate: Option<routing::Coordinate>,
    /// The round trips it measures to its peers, as it last sent them (node id, ms).
    rtts: Vec<(String, f32)>,
    /// It said it shut down, and has not been heard of since.
    left: bool,
    /// Where and whether it serves clients, as it said over the open session.
    serving: Option<Serving>,
    /// What it held durably when the session opened: this node has caught up with it once
    /// it has applied as much (`serving.rs`).
    since: Option<VersionVector>,
    /// When the open session last brought anything (pongs come every second).
    heard: Option<Instant>,
    session: Option<Session>,
    last_dial: Option<Instant>,
    /// Its latest watermark heartbeat: its log's head and an HLC (`watermark.rs`).
    heartbeat: Option<(u64, u64)>,
    /// Every write it stamped before this (ms) is applied here.
    through_ms: Option<u64>,
}

/// A `--join` address and whom it turned out to be.
struct Seed {
    addr: String,
    reached: Option<String>,
    last_dial: Option<Instant>,
}

struct Runtime {
    shared: Arc<Shared>,
    me: MemberInfo,
    secret: Arc<Vec<u8>>,
    core: Replicator,
    gossip: Membership,
    socket: Arc<UdpSocket>,
    members: BTreeMap<NodeId, Known>,
    seeds: Vec<Seed>,
    sessions: BTreeMap<u64, NodeId>,
    next_sid: u64,
    events_tx: mpsc::Sender<Event>,
    apply_tx: mpsc::Sender<Remote>,
    view: watch::Sender<ClusterView>,
    isolated: Arc<AtomicBool>,
    started: Instant,
    handshakes: Arc<Semaphore>,
    /// The log position last handed to the engine for truncation.
    truncated: VersionVector,
    /// Peers the log cannot serve, asked for their digests: a repair starts on the answer.
    repairing: std::collections::BTreeSet<NodeId>,
    /// Members to repair because a member was forgotten (`CLUSTER FORGET`): what it had
    /// spread may sit on some members and not others outside every log (the ranges of a
    /// repair it began and did not finish), so the members left repair each other once.
    /// Kept in memory: a restart before they ran drops them.
    reconcile: std::collections::BTreeSet<NodeId>,
    /// Those of `reconcile` being repaired now: back to `reconcile` if the session closes
    /// before the repair was sent (a peer receiving another member's repair refuses it and
    /// closes), done once it was.
    reconciling: std::collections::BTreeSet<NodeId>,
    /// Peers whose digests are being computed: one computation per peer at a time (a peer
    /// asking again meanwhile gets the answer already coming), two at a time in all.
    digesting: Arc<std::sync::Mutex<std::collections::BTreeSet<NodeId>>>,
    digest_slots: Arc<Semaphore>,
    /// Peers asked for a sync (see `sync_on_request`).
    sync_wanted: Arc<tokio::sync::Notify>,
    write_ids: WriteIds,
    /// This node's network coordinate (`distance.rs`).
    coordinate: routing::Coordinate,
    /// Where and whether this node serves clients (`serving.rs`).
    serving: Serving,
}

/// Runs the peer runtime on `listener` (replication) and `socket` (gossip) until `stop` turns
/// true; then tells every peer it leaves.
pub async fn run(
    shared: Arc<Shared>,
    listener: TcpListener,
    socket: UdpSocket,
    parts: Parts,
    mut stop: watch::Receiver<bool>,
) {
    let config = &shared.config;
    let me = MemberInfo {
        name: config.node_id.clone(),
        region: config.region.clone(),
        peer_addr: match config.advertise_addr {
            Some(a) => a.to_string(),
            None => listener
                .local_addr()
                .map_or(config.peer_addr.to_string(), |a| a.to_string()),
        },
    };
    let progress = shared.engine.progress.borrow().clone();
    let node = shared.engine.node;
    let (apply_tx, apply_rx) = mpsc::channel::<Remote>(64);
    tokio::spawn(apply_loop(
        shared.clone(),
        apply_rx,
        parts.events_tx.clone(),
    ));
    let secret = Arc::new(
        config
            .cluster_secret
            .clone()
            .unwrap_or_default()
            .into_bytes(),
    );
    // Each start is a newer identity than the last (milliseconds of the wall clock), so
    // members replace what they knew of this node's previous run.
    let bump = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).expect("the OS has randomness");
    let socket = Arc::new(socket);
    tokio::spawn(gossip::receive_loop(
        shared.certs.clone(),
        socket.clone(),
        parts.events_tx.clone(),
        parts.isolated.clone(),
    ));
    let mut runtime = Runtime {
        core: Replicator::new(node, Config::default(), progress.applied, progress.durable),
        gossip: Membership::new(me.clone(), bump, u64::from_le_bytes(seed)),
        socket,
        me,
        secret,
        members: BTreeMap::new(),
        seeds: config
            .join
            .iter()
            .map(|addr| Seed {
                addr: addr.clone(),
                reached: None,
                last_dial: None,
            })
            .collect(),
        sessions: BTreeMap::new(),
        next_sid: 1,
        events_tx: parts.events_tx,
        apply_tx,
        view: parts.view,
        isolated: parts.isolated,
        started: Instant::now(),
        handshakes: Arc::new(Semaphore::new(HANDSHAKES_MAX)),
        truncated: VersionVector::new(),
        repairing: Default::default(),
        reconcile: Default::default(),
        reconciling: Default::default(),
        digesting: Default::default(),
        digest_slots: Arc::new(Semaphore::new(2)),
        sync_wanted: Arc::new(tokio::sync::Notify::new()),
        write_ids: WriteIds::default(),
        coordinate: routing::Coordinate::default(),
        serving: serving::own(config),
        shared,
    };
    // Holds the engine: stopped with the runtime, so the engine can stop too.
    let syncer = tokio::spawn(sync_on_request(
        runtime.shared.clone(),
        runtime.sync_wanted.clone(),
    ));
    runtime.load_members();
    runtime.load_write_ids();
    for addr in runtime.shared.config.join.clone() {
        runtime.gossip.announce(&addr);
    }
    let remembered: Vec<String> = runtime
        .members
        .values()
        .map(|k| k.info.peer_addr.clone())
        .collect();
    for addr in remembered {
        runtime.gossip.announce(&addr);
    }
    runtime.carry_out_gossip();
    let mut events = parts.events;
    let mut progress = runtime.shared.engine.progress.clone();
    // The core ticks every 10 ms while anything is in flight, every 100 ms when idle (an
    // idle node stays idle: see `Replicator::idle`).
    let mut last_tick = tokio::time::Instant::now();
    let mut last_view = last_tick;
    let mut last_second = last_tick;
    let mut last_ping = last_tick;
    // Dial the seeds and remembered members at once, not a second from now.
    runtime.every_second();
    loop {
        let period = if runtime.core.idle() {
            TICK_IDLE
        } else {
            TICK_BUSY
        };
        tokio::select! {
            _ = stop.changed() => break,
            Some(event) = events.recv() => runtime.on_event(event).await,
            Ok(()) = progress.changed() => {
                let p = progress.borrow_and_update().clone();
                let now = runtime.now_ms();
                runtime.core.applied(now, p.applied, p.durable);
                // Ship what just became durable now rather than at the next tick.
                runtime.core.tick(now);
            }
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    runtime.accept(stream);
                }
            }
            _ = tokio::time::sleep_until(last_tick + period) => {
                last_tick = tokio::time::Instant::now();
                runtime.core.tick(runtime.now_ms());
                if last_tick.duration_since(last_view) >= TICK_IDLE {
                    last_view = last_tick;
                    runtime.check_caught_up();
                    runtime.publish_view();
                }
                if last_tick.duration_since(last_second) >= Duration::from_secs(1) {
                    last_second = last_tick;
                    runtime.every_second();
                } else if runtime.settling() && last_tick.duration_since(last_ping) >= PING_SETTLING {
                    runtime.ping_all();
                }
                if last_tick.duration_since(last_ping) >= PING_SETTLING {
                    last_ping = last_tick;
                }
            }
        }
        runtime.carry_out().await;
        runtime.carry_out_gossip();
    }
    runtime.leave().await;
    syncer.abort();
}

/// How often peers are pinged while this node's coordinate is unsure of its place (once a
/// second otherwise, with the rest of `every_second`).
const PING_SETTLING: Duration = Duration::from_millis(200);

/// How often the replication core ticks while entries are in flight.
const TICK_BUSY: Duration = Duration::from_millis(10);
/// How often it ticks when every connected peer holds all this node could ship it.
const TICK_IDLE: Duration = Duration::from_millis(100);

/// Whether a member someone listed looks like one: a name, a bounded region, an address.
fn plausible(m: &MemberInfo) -> bool {
    !m.name.is_empty()
        && m.name.len() <= NAME_BYTES_MAX
        && m.region.len() <= NAME_BYTES_MAX
        && m.peer_addr.parse::<std::net::SocketAddr>().is_ok()
}

/// Syncs the engine whenever a peer asks (its client waits in `WAIT`), one sync at a time:
/// however many ask while one runs, one more follows. The durable vector it advances reaches
/// the peers with the next acknowledgment.
async fn sync_on_request(shared: Arc<Shared>, wanted: Arc<tokio::sync::Notify>) {
    loop {
        wanted.notified().await;
        if let Err(e) = shared.engine.sync().await {
            tracing::error!(error = %e, "sync asked for by a peer failed");
        }
    }
}

/// Hands released entries and snapshot parts to the engine in order; reports refusals back.
/// Two stages: while the engine applies one large batch of entries, the headers of the next
/// are read from the store on a blocking thread (`engine/ahead.rs`); entries released while
/// the engine is busy are gathered into one batch, so a stall is followed by one commit
/// rather than one per entry.
async fn apply_loop(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Remote>,
    events: mpsc::Sender<Event>,
) {
    let (ready_tx, mut ready) = mpsc::channel::<(Remote, Option<ReadAhead>)>(1);
    let engine = shared.engine.clone();
    tokio::spawn(async move {
        let mut held = None;
        loop {
            let work = match held.take() {
                Some(work) => work,
                None => match rx.recv().await {
                    Some(work) => work,
                    None => return,
                },
            };
            let work = match work {
                // Entries that queued while the engine was busy go in one commit.
                Remote::Entries(mut entries) => {
                    let mut changes: usize = entries.iter().map(|e| e.changes.len()).sum();
                    while changes < COALESCE_CHANGES_MAX {
                        match rx.try_recv() {
                            Ok(Remote::Entries(more)) => {
                                changes += more.iter().map(|e| e.changes.len()).sum::<usize>();
                                entries.extend(more);
                            }
                            Ok(other) => {
                                held = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    Remote::Entries(entries)
                }
                other => other,
            };
            let ahead = match work {
                Remote::Entries(entries) if ReadAhead::worth_it(&entries) => {
                    let engine = engine.clone();
                    let read = tokio::task::spawn_blocking(move || {
                        let ahead = engine.read_ahead(&entries);
                        (entries, ahead)
                    });
                    let Ok((entries, ahead)) = read.await else {
                        return;
                    };
                    // A failed read is only a lost shortcut: the engine reads again.
                    (Remote::Entries(entries), ahead.ok())
                }
                other => (other, None),
            };
            if ready_tx.send(ahead).await.is_err() {
                return;
            }
        }
    });
    while let Some((work, ahead)) = ready.recv().await {
        let repairing = work.repairing_peer();
        if let Err(e) = shared.engine.apply_read_ahead(work, ahead).await {
            let event = match repairing {
                Some(peer) => Event::RepairRefused { peer, error: e },
                None => Event::ApplyFailed(e),
            };
            let _ = events.send(event).await;
        }
    }
}

impl Runtime {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn member_list(&self) -> Vec<MemberInfo> {
        std::iter::once(self.me.clone())
            .chain(self.members.values().map(|k| k.info.clone()))
            .collect()
    }

    fn is_isolated(&self) -> bool {
        self.isolated.load(Ordering::Relaxed)
    }

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::Session {
                dialer,
                established,
            } => self.opened(dialer, *established),
            Event::Message { sid, message } => self.on_message(sid, message).await,
            Event::Closed { sid, error } => {
                if let Some(node) = self.sessions.remove(&sid) {
                    tracing::info!(peer = ?self.members.get(&node).map(|k| &k.info.name), error = %error, "peer session closed");
                    self.close(node, false);
                }
            }
            Event::Dialed { addr, reached } => {
                if let Some(seed) = self.seeds.iter_mut().find(|s| s.addr == addr)
                    && let Ok(name) = reached
                {
                    seed.reached = Some(name);
                }
            }
            Event::Publish {
                shard,
                channel,
                message,
            } => {
                let now = Instant::now();
                for known in self.members.values() {
                    if let Some(s) = &known.session {
                        let msg = Message::Publish {
                            shard,
                            channel: channel.clone(),
                            message: message.clone(),
                        };
                        let _ = s.tx.try_send((now, msg));
                    }
                }
            }
            Event::SyncRequested => {
                for node in self.sessions.values() {
                    self.send(*node, Message::SyncRequest);
                }
            }
            Event::ApplyFailed(e) => {
                tracing::warn!(error = %e, "entries not applied; they will arrive again");
                self.core.apply_failed();
            }
            Event::DigestsComputed { peer, digests } => {
                if let Some(tx) = self.session_tx(peer) {
                    let _ = tx.send((Instant::now(), Message::Digests(digests))).await;
                }
            }
            Event::RepairRefused { peer, error } => {
                tracing::warn!(peer = ?self.members.get(&peer).map(|k| &k.info.name), %error, "repair refused; closing the session");
                self.close(peer, false);
            }
            Event::SnapshotSent { peer, vv } => {
                self.reconciling.remove(&peer);
                let now = self.now_ms();
                self.core.snapshot_sent(now, peer, &vv);
            }
            Event::Datagram(payload) => {
                if let Err(e) = self.gossip.receive(&payload) {
                    metrics::counter!("meridian_gossip_rejected_total", "reason" => "refused")
                        .increment(1);
                    tracing::debug!(error = %e, "gossip datagram dropped");
                }
            }
            Event::Timer(timer) => self.gossip.timer(timer),
            Event::Drain(on) => self.drain(on),
            Event::Forget(name) => {
                let node = NodeId::from_name(&name);
                if self.members.get(&node).is_some_and(|k| k.session.is_none()) {
                    let origin = (self.write_ids.announced.get(&name).copied())
                        .or_else(|| self.core.peer(node).map(|p| p.origin.0))
                        .unwrap_or(node.0);
                    self.write_ids.forgotten.insert(name.clone(), origin);
                    self.save_write_ids();
                    self.members.remove(&node);
                    self.core.remove_peer(node);
                    self.shared.engine.member_removed();
                    // The next second tells the engine what the members left hold.
                    self.truncated = VersionVector::new();
                    self.save_members();
                    tracing::info!(peer = %name, "member forgotten");
                    self.reconcile = self.members.keys().copied().collect();
                    let open: Vec<NodeId> = (self.members.iter())
                        .filter(|(_, k)| k.session.is_some())
                        .map(|(n, _)| *n)
                        .collect();
                    for peer in open {
                        self.start_snapshot(peer);
                    }
                }
            }
        }
    }

    /// A handshake finished: keep the session unless one with that peer stays.
    fn opened(&mut self, dialer: String, established: Established) {
        let Established {
            peer,
            origin,
            vv,
            members,
            link,
        } = established;
        if self.is_isolated() {
            return;
        }
        let mine = self.core.me();
        if origin == mine {
            // Two data directories with one id (one copied from the other): both would
            // number their writes alike, and each would drop the other's as already held.
            metrics::counter!("meridian_peer_protocol_errors_total").increment(1);
            tracing::error!(peer = %peer.name, "the peer writes under this node's own id (a copied data directory?); closing");
            return;
        }
        if self.write_ids.forgotten.get(&peer.name) == Some(&origin.0) {
            metrics::counter!("meridian_peer_protocol_errors_total").increment(1);
            tracing::error!(
                peer = %peer.name,
                "the peer was forgotten (CLUSTER FORGET) and came back with its old data; closing: wipe its data directory and start it again to rejoin"
            );
            return;
        }
        let mut changed = self.write_ids.forgotten.remove(&peer.name).is_some();
        changed |= self.write_ids.announced.insert(peer.name.clone(), origin.0) != Some(origin.0);
        if changed {
            self.save_write_ids();
        }
        self.check_own_writes(&peer.name, &vv);
        let node = NodeId::from_name(&peer.name);
        let newcomer = !self.members.contains_key(&node);
        if let Some(old) = self.members.get(&node).and_then(|k| k.session.as_ref()) {
            // Both nodes may dial each other at once; both keep the session the node with
            // the smaller name dialled, so exactly one survives.
            let preferred = self.me.name.as_str().min(peer.name.as_str());
            let keep_new = dialer == preferred || old.dialer == dialer;
            if !keep_new {
                return;
            }
            self.close(node, false);
        }
        let sid = self.next_sid;
        self.next_sid += 1;
        let (sink, stream) = link.split();
        let (tx, rx) = mpsc::channel(SESSION_QUEUE_MAX);
        let delay = session::Delay {
            base: self.shared.config.wan_delay(&self.me.region, &peer.region),
            jitter: std::time::Duration::from_millis(self.shared.config.wan_jitter_ms),
        };
        tokio::spawn(session::write_loop(sink, rx, delay));
        let events = self.events_tx.clone();
        let reader = tokio::spawn(async move {
            let error = session::read_loop(stream, sid, events.clone()).await;
            let _ = events.send(Event::Closed { sid, error }).await;
        })
        .abort_handle();
        tracing::info!(peer = %peer.name, region = %peer.region, "peer session open");
        metrics::counter!("meridian_peer_sessions_opened_total").increment(1);
        self.sessions.insert(sid, node);
        // A new session keeps what the last one measured.
        let (rtt, coordinate, rtts) = (self.members.get(&node))
            .map(|k| (k.rtt.clone(), k.coordinate.clone(), k.rtts.clone()))
            .unwrap_or_default();
        let (heartbeat, through_ms) = (self.members.get(&node))
            .map(|k| (k.heartbeat, k.through_ms))
            .unwrap_or_default();
        self.members.insert(
            node,
            Known {
                info: peer,
                rtt,
                coordinate,
                rtts,
                left: false,
                serving: None,
                since: Some(vv.clone()),
                heard: Some(Instant::now()),
                session: Some(Session {
                    sid,
                    dialer,
                    tx,
                    reader,
                }),
                last_dial: None,
                heartbeat,
                through_ms,
            },
        );
        self.send(node, Message::Serving(self.serving.clone()));
        let now = self.now_ms();
        self.core.connected(now, node, origin, vv);
        if self.reconcile.contains(&node) {
            self.start_snapshot(node);
        }
        self.learn(members);
        if newcomer {
            self.save_members();
        }
    }

    /// Refuses writes when `peer` holds (`vv`) more of this node's writes than this node
    /// does. Own entries ship only once on this disk, so only a disk that went back in time
    /// shows this (restored from an old copy). Writing on would reuse sequence numbers the
    /// peer holds. Checked when a session opens and at each acknowledgment (a peer's durable
    /// vector may catch up with what it received only after the session opened).
    fn check_own_writes(&self, peer: &str, vv: &VersionVector) {
        let mine = self.core.me();
        let ours = self.core.applied_vv().get(mine);
        if vv.get(mine) > ours && !self.shared.engine.writes_refused() {
            tracing::error!(
                peer,
                theirs = vv.get(mine),
                ours,
                "a peer holds more of this node's writes than its data directory (restored from an old copy?); refusing writes: wipe the data directory and restart"
            );
            self.shared.engine.refuse_writes();
        }
    }

    /// Closes the session with `node`, if any; `left` when it said it shut down.
    fn close(&mut self, node: NodeId, left: bool) {
        if let Some(known) = self.members.get_mut(&node) {
            if let Some(s) = known.session.take() {
                s.reader.abort();
                self.sessions.remove(&s.sid);
            }
            known.left |= left;
            known.serving = None;
            known.since = None;
            self.repairing.remove(&node);
            if self.reconciling.remove(&node) {
                self.reconcile.insert(node);
            }
            self.core.disconnected(node);
            // A repair it was sending stops here (best effort: a full queue leaves the
            // engine to notice the silence, see `engine/repair.rs`).
            let _ = (self.apply_tx).try_send(Remote::RepairAbandoned { from: node });
        }
    }

    fn learn(&mut self, members: Vec<MemberInfo>) {
        let mut new = false;
        for m in members {
            if m.name == self.me.name {
                continue;
            }
            // A peer's list is not trusted blindly: the table is bounded.
            if !plausible(&m) || self.members.len() >= MEMBERS_MAX {
                tracing::warn!(member = ?m, "ignoring a member a peer listed");
                continue;
            }
            let node = NodeId::from_name(&m.name);
            if self.members.contains_key(&node) {
                continue;
            }
            self.members.insert(
                node,
                Known {
                    info: m,
                    rtt: Default::default(),
                    coordinate: None,
                    rtts: Vec::new(),
                    left: false,
                    serving: None,
                    since: None,
                    heard: None,
                    session: None,
                    last_dial: None,
                    heartbeat: None,
                    through_ms: None,
                },
            );
            self.core.add_peer(node);
            new = true;
        }
        if new {
            self.save_members();
        }
    }

    /// Carries out what the gossip core asked for.
    fn carry_out_gossip(&mut self) {
        for effect in self.gossip.take_effects() {
            match effect {
                membership::Effect::Send {
                    to,
                    region,
                    payload,
                } => {
                    if !self.is_isolated() {
                        let delay = self.shared.config.wan_delay(&self.me.region, &region);
                        let datagram = gossip::seal(&self.shared, &payload);
                        gossip::send(&self.socket, &to, delay, datagram);
                    }
                }
                membership::Effect::Schedule { after, timer } => {
                    gossip::schedule(&self.events_tx, after, timer);
                }
                membership::Effect::Up(info) => {
                    tracing::info!(peer = %info.name, region = %info.region, "member up");
                    let node = NodeId::from_name(&info.name);
                    match self.members.get_mut(&node) {
                        Some(known) => {
                            known.left = false;
                            if known.info != info && plausible(&info) {
                                // It restarted elsewhere: dial its new address from now on.
                                known.info = info;
                                self.save_members();
                            }
                        }
                        None => self.learn(vec![info]),
                    }
                }
                membership::Effect::Down(info) => {
                    tracing::info!(peer = %info.name, "member declared down");
                }
                membership::Effect::Rejoined => {
                    tracing::warn!(
                        "this node had been declared down (cut off or paused); rejoined"
                    );
                }
            }
        }
    }

    fn members_path(&self) -> std::path::PathBuf {
        self.shared.config.data_dir.join(MEMBERS_FILE)
    }

    /// Reads the member table a previous run left.
    fn load_members(&mut self) {
        let path = self.members_path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            return;
        };
        match serde_json::from_str::<Vec<MemberInfo>>(&text) {
            Ok(members) => self.learn(members),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable member table")
            }
        }
    }

    fn write_ids_path(&self) -> std::path::PathBuf {
        self.shared.config.data_dir.join(WRITE_IDS_FILE)
    }

    /// Reads the write ids a previous run left.
    fn load_write_ids(&mut self) {
        let path = self.write_ids_path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            return;
        };
        match serde_json::from_str(&text) {
            Ok(ids) => self.write_ids = ids,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable table of write ids")
            }
        }
    }

    /// Writes the write ids (to a temporary file, then renamed over the old one), synced: a
    /// forgotten member's must not be lost by a crash.
    fn save_write_ids(&self) {
        let path = self.write_ids_path();
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(&self.write_ids).expect("write ids serialise");
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            use std::io::Write;
            f.write_all(text.as_bytes())?;
            f.sync_all()
        });
        if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, &path)) {
            tracing::error!(path = %path.display(), error = %e, "saving the table of write ids failed");
        }
    }

    /// Writes the member table (to a temporary file, then renamed over the old one).
    fn save_members(&self) {
        if !self.members.is_empty() {
            self.shared.engine.keep_tombstones();
        }
        let members: Vec<&MemberInfo> = self.members.values().map(|k| &k.info).collect();
        let path = self.members_path();
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(&members).expect("member infos serialise");
        if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path)) {
            tracing::warn!(path = %path.display(), error = %e, "saving the member table failed");
        }
    }

    async fn on_message(&mut self, sid: u64, message: Message) {
        let Some(&node) = self.sessions.get(&sid) else {
            return;
        };
        if let Some(known) = self.members.get_mut(&node) {
            known.heard = Some(Instant::now());
        }
        let now = self.now_ms();
        match message {
            Message::Entries(shipped) => {
                let mut entries = Vec::with_capacity(shipped.len());
                for Shipped { entry, acked_ms } in &shipped {
                    let problem = match Entry::decode(entry) {
                        Ok(mut e) if e.seq > 0 => {
                            e.acked_ms = *acked_ms;
                            entries.push(e);
                            continue;
                        }
                        Ok(_) => "an entry numbered 0".to_string(),
                        Err(e) => format!("an entry that does not decode: {e}"),
                    };
                    metrics::counter!("meridian_peer_protocol_errors_total").increment(1);
                    tracing::warn!(problem, "peer broke the protocol; closing the session");
                    self.close(node, false);
                    return;
                }
                metrics::counter!("meridian_replication_received_total")
                    .increment(entries.len() as u64);
                self.core.received(entries);
            }
            Message::Ack(vv) => {
                if let Some(known) = self.members.get(&node) {
                    self.check_own_writes(&known.info.name, &vv);
                }
                let before = self.core.peer_has_own(node);
                self.core.acked(now, node, &vv);
                if self.core.peer_has_own(node) != before {
                    // `WAIT` counts what peers hold of this node's writes: tell it now.
                    self.publish_view();
                }
            }
            Message::SyncRequest => {
                // One sync at a time; requests meanwhile make one more.
                self.sync_wanted.notify_one();
            }
            Message::Publish {
                shard,
                channel,
                message,
            } => {
                let kind = match shard {
                    true => crate::pubsub::Kind::Shard,
                    false => crate::pubsub::Kind::Channel,
                };
                self.shared.hub.publish_to(kind, &channel, &message);
            }
            Message::SnapshotBegin { differ, vv, seen } => {
                let begin = Remote::RepairBegin {
                    from: node,
                    differ,
                    covers: crate::engine::Applied { vv, seen },
                };
                let _ = self.apply_tx.send(begin).await;
            }
            Message::Snapshot(bytes) => match crdt::decode::<wire::SnapshotPart>(&bytes) {
                Ok(part) => {
                    let part = Remote::RepairPart {
                        from: node,
                        after: part.after,
                        last: part.last,
                        changes: part.changes,
                    };
                    let _ = self.apply_tx.send(part).await;
                }
                Err(e) => {
                    metrics::counter!("meridian_peer_protocol_errors_total").increment(1);
                    tracing::warn!(error = %e, "peer sent a snapshot part that does not decode; closing");
                    self.close(node, false);
                }
            },
            Message::SnapshotDone => {
                tracing::info!(peer = ?self.members.get(&node).map(|k| &k.info.name), "snapshot received");
                let _ = self.apply_tx.send(Remote::RepairEnd { from: node }).await;
            }
            Message::DigestRequest => {
                // One computation per peer at a time; its answer goes to the peer's session
                // current when it is done (a request from a session replaced meanwhile would
                // otherwise be answered on the closed one, and the repair would wait forever).
                if !self.digesting.lock().expect("not poisoned").insert(node) {
                    return;
                }
                let store = self.shared.engine.store().clone();
                let (digesting, slots) = (self.digesting.clone(), self.digest_slots.clone());
                let events = self.events_tx.clone();
                tokio::spawn(async move {
                    let computed = repair::digests(store, &slots).await;
                    digesting.lock().expect("not poisoned").remove(&node);
                    if let Some(digests) = computed {
                        let _ = events
                            .send(Event::DigestsComputed {
                                peer: node,
                                digests,
                            })
                            .await;
                    }
                });
            }
            Message::Digests(theirs) => {
                if theirs.len() != crate::engine::DIGEST_BUCKETS {
                    metrics::counter!("meridian_peer_protocol_errors_total").increment(1);
                    tracing::warn!(
                        buckets = theirs.len(),
                        "peer sent digests of another shape; closing"
                    );
                    self.close(node, false);
                } else if self.repairing.remove(&node) {
                    if self.reconcile.remove(&node) {
                        self.reconciling.insert(node);
                    }
                    self.repair(node, theirs);
                }
            }
            Message::Ping {
                at_us,
                coordinate,
                rtts,
                head,
                hlc,
            } => {
                self.on_heartbeat(node, head, hlc);
                self.on_ping(node, at_us, coordinate, rtts);
            }
            Message::Pong { at_us, coordinate } => self.on_pong(node, at_us, coordinate),
            Message::Serving(serving) => self.on_serving(node, serving),
            Message::Leave => {
                tracing::info!(peer = ?self.members.get(&node).map(|k| &k.info.name), "peer left");
                self.close(node, true);
            }
            Message::Hello(_) | Message::Proof(_) | Message::Start { .. } => {
                metrics::counter!("meridian_peer_protocol_errors_total").increment(1);
                tracing::warn!("peer repeated its handshake; closing");
                self.close(node, false);
            }
        }
    }

    /// Carries out what the core asked for.
    async fn carry_out(&mut self) {
        for effect in self.core.take_effects() {
            match effect {
                Effect::Ship {
                    peer,
                    origin,
                    from,
                    to,
                } => self.ship(peer, origin, from, to),
                Effect::Ack { peer, vv } => self.send(peer, Message::Ack(vv)),
                Effect::Apply(entries) => {
                    // Waiting here slows the readers, and through TCP the senders.
                    let _ = self.apply_tx.send(Remote::Entries(entries)).await;
                }
            }
        }
    }

    fn send(&self, peer: NodeId, message: Message) {
        if let Some(s) = self.members.get(&peer).and_then(|k| k.session.as_ref()) {
            // A full queue drops the message; the core ships again what stays unacknowledged.
            let _ = s.tx.try_send((Instant::now(), message));
        }
    }

    fn ship(&mut self, peer: NodeId, origin: NodeId, from: u64, to: u64) {
        let want = (to - from + 1) as usize;
        let entries = match self.shared.engine.store().log_range(origin.0, from, want) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "reading the change log failed");
                return;
            }
        };
        if entries.first().map(|(s, _)| *s) != Some(from) {
            // Truncated: every member known then had these entries; this peer is new, was
            // wiped, or was forgotten and came back. It gets the whole state instead.
            self.start_snapshot(peer);
            return;
        }
        let mut frame = Vec::new();
        let mut bytes = 0;
        let own = origin == self.core.me();
        for (seq, entry) in entries {
            if seq > to {
                break;
            }
            bytes += entry.len();
            let acked_ms = own.then(|| self.shared.engine.acked.get(seq)).flatten();
            frame.push(Shipped { entry, acked_ms });
            if bytes >= SHIP_FRAME_BYTES {
                self.send(peer, Message::Entries(std::mem::take(&mut frame)));
                bytes = 0;
            }
        }
        if !frame.is_empty() {
            self.send(peer, Message::Entries(frame));
        }
    }

    fn session_tx(&self, peer: NodeId) -> Option<mpsc::Sender<(Instant, Message)>> {
        self.members
            .get(&peer)
            .and_then(|k| k.session.as_ref())
            .map(|s| s.tx.clone())
    }

    fn every_second(&mut self) {
        let truncatable = self.core.truncatable();
        if self.core.settled()
            && truncatable != self.truncated
            && truncatable.ahead_of(&self.truncated) > 0
        {
            self.shared
                .engine
                .stable(truncatable.clone(), self.core.members_join());
            self.truncated = truncatable;
        }
        let now = Instant::now();
        if self.is_isolated() {
            let connected: Vec<NodeId> = self.sessions.values().copied().collect();
            for node in connected {
                self.close(node, false);
            }
            return;
        }
        self.ping_all();
        self.publish_watermarks();
        let retry = Duration::from_secs(1);
        let due = |last: Option<Instant>| last.is_none_or(|t| now.duration_since(t) >= retry);
        let mut dials = Vec::new();
        for known in self.members.values_mut() {
            if known.session.is_none() && !known.left && due(known.last_dial) {
                known.last_dial = Some(now);
                dials.push(known.info.peer_addr.clone());
            }
        }
        for seed in &mut self.seeds {
            let covered = seed.reached.as_ref().is_some_and(|name| {
                *name == self.me.name || self.members.contains_key(&NodeId::from_name(name))
            });
            if !covered && due(seed.last_dial) {
                seed.last_dial = Some(now);
                dials.push(seed.addr.clone());
            }
        }
        for addr in dials {
            self.dial(addr);
        }
    }

    fn publish_view(&self) {
        let now = self.now_ms();
        let liveness = self.gossip.livenesses();
        let waiting_for = (self.shared.engine.stats.waiting_for.lock())
            .expect("no one panics holding it")
            .clone();
        let members = self
            .members
            .iter()
            .map(|(node, k)| MemberView {
                info: k.info.clone(),
                state: state_of(k, liveness.get(k.info.name.as_str()).copied()),
                link: k.session.is_some(),
                lag_ops: self.core.lag_ops(*node),
                lag_ms: self.core.lag_ms(now, *node),
                rtt_ms: k.rtt.ms(),
                coordinate: k.coordinate.clone(),
                rtts: k.rtts.clone(),
                has_own: self.core.peer_has_own(*node),
                holds_collection: self
                    .core
                    .peer(*node)
                    .is_some_and(|p| !p.acked.dominates(&waiting_for)),
                serving: k.serving.clone(),
                quiet_ms: (k.session.as_ref().and(k.heard)).map(|t| t.elapsed().as_millis() as u64),
            })
            .collect();
        let coordinate = self.coordinate.clone();
        self.view.send_replace(ClusterView {
            members,
            coordinate,
            serving: Some(self.serving.clone()),
        });
    }

    /// Tells every peer this node leaves, and gives the writers a moment to send it.
    async fn leave(&mut self) {
        self.gossip.leave();
        self.carry_out_gossip();
        let now = Instant::now();
        for known in self.members.values() {
            if let Some(s) = &known.session {
                let _ = s.tx.try_send((now, Message::Leave));
            }
        }
        for known in self.members.values_mut() {
            if let Some(s) = known.session.take() {
                s.reader.abort();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A member's state: left if it said so, else what gossip tells (`liveness`).
fn state_of(known: &Known, liveness: Option<Liveness>) -> MemberState {
    if known.left {
        return MemberState::Left;
    }
    match liveness {
        Some(Liveness::Alive) => MemberState::Up,
        Some(Liveness::Suspect) => MemberState::Suspect,
        Some(Liveness::Down) => MemberState::Down,
        // Not heard of by gossip yet, but a session is direct evidence.
        None if known.session.is_some() => MemberState::Up,
        None => MemberState::Down,
    }
}
