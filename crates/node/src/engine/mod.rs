//! The engine thread: the one owner of the keyspace.
//!
//! Connections send their data commands here in [`Request`]s. The thread takes whatever
//! requests are waiting (a *round*), runs their commands one after another against a [`Txn`]
//! (so every command is atomic and sees all earlier ones, as in Redis), commits the round's
//! writes as one batch, and only then answers. Under `--fsync always` the batch is on disk
//! before any client hears "OK", and all clients of a round share one fsync: group commit.
//!
//! Storage calls block, which is why this is an OS thread and not an async task.

mod ahead;
mod blocked;
mod cache;
mod cursors;
mod ends;
mod log;
pub mod notify;
mod reclaim;
mod repair;
mod txn;
mod windows;

pub use ahead::ReadAhead;
pub use cache::RecordCache;
pub use cursors::Cursors;
pub use ends::{Ends, Learned};
pub use log::{
    AckTimes, Applied, DIGEST_BUCKETS, apply_entries, bucket_of, digests, key_state, seal,
    snapshot_chunk, truncation,
};
pub use reclaim::{Checkpoints, Collection, collect_graves};
pub use repair::Repair;
pub use txn::{EXPIRY_GRACE_MS, Finished, Part, Txn, fingerprint, sweep_at};

use crate::cmd::{self, Ctx, Spec};
use bytes::Bytes;
use crdt::{NodeId, Seen};
use hlc::{Clock, Timestamp};
use replication::{Change, Entry, VersionVector};
use resp::Reply;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use storage::{Durability, MemberKind, StorageError, Store};
use timeseries::series::Window;
use tokio::sync::{mpsc, oneshot, watch};
use windows::WindowCache;

/// When acknowledged writes reach the disk (`--fsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Acknowledge only after fsync; concurrent clients share fsyncs.
    Always,
    /// Acknowledge at once; fsync at least every 10 ms.
    Batch,
    /// Leave flushing to the operating system.
    Never,
}

/// One data command, already looked up and arity-checked by the connection.
pub type Command = (&'static Spec, Vec<Bytes>);

/// What the engine thread is asked to do.
pub enum Request {
    /// Run these commands in order and answer with one reply each.
    Commands {
        /// The asking connection's client id (0 when none): what it writes, it wrote.
        client: u64,
        /// The commands.
        commands: Vec<Command>,
        /// Keys watched (`WATCH`) with their [`Touches`] count then: if a key was written
        /// since, nothing runs and the answer says aborted.
        watch: Vec<(Bytes, u64)>,
        /// Where the replies go.
        reply: oneshot::Sender<Ran>,
    },
    /// Apply what peers sent.
    Apply {
        /// What to apply.
        work: Remote,
        /// Headers read ahead for it, if any.
        ahead: Option<ReadAhead>,
        /// Whether all of it was applied.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// What the members hold: every one of them `meet`, together `join`. Log entries up to
    /// `meet` are dropped; tombstones that became stable are collected.
    Stable {
        /// The meet of every member's durable vector (this node's included).
        meet: VersionVector,
        /// The join of every member's vector.
        join: VersionVector,
    },
    /// Time passed: flush under `--fsync batch`, expire due keys.
    Tick,
    /// Make everything committed so far durable, then answer (`WAIT`).
    Sync(oneshot::Sender<Result<(), String>>),
    /// Run a blocking command (`BLPOP` and kin); when it finds nothing to take, park the
    /// client until something comes (`blocked.rs`).
    Block {
        /// The connection's name for this wait, for [`Request::Unblock`].
        id: u64,
        /// The command.
        command: Command,
        /// Where the answer goes.
        reply: oneshot::Sender<Ran>,
    },
    /// The wait `id` timed out (or `CLIENT UNBLOCK`): answer it with its empty reply, or
    /// with `error` the `UNBLOCKED` error, if it is still parked.
    Unblock {
        /// As given in [`Request::Block`].
        id: u64,
        /// Answer an error instead of the empty reply.
        error: bool,
        /// Told whether it was parked.
        reply: Option<oneshot::Sender<bool>>,
    },
}

/// Slots of [`Touches`]: keys share a slot by hash, so a write to one aborts a transaction
/// watching another of the same slot now and then (Redis too aborts on writes that change
/// nothing); 64k slots keep that rare.
const TOUCH_SLOTS: usize = 1 << 16;

/// What `WATCH` compares: per slot of keys, how many commits wrote a key of it (clients'
/// writes, peers' entries, expiry, repairs). Counted after the commit is visible.
#[derive(Debug)]
pub struct Touches(Box<[AtomicU64]>);

impl Default for Touches {
    fn default() -> Touches {
        Touches((0..TOUCH_SLOTS).map(|_| AtomicU64::new(0)).collect())
    }
}

impl Touches {
    fn slot(&self, key: &[u8]) -> &AtomicU64 {
        &self.0[crc32fast::hash(key) as usize % TOUCH_SLOTS]
    }

    /// The count of `key`'s slot now.
    pub fn get(&self, key: &[u8]) -> u64 {
        self.slot(key).load(Ordering::Acquire)
    }

    fn touch(&self, key: &[u8]) {
        self.slot(key).fetch_add(1, Ordering::Release);
    }
}

/// What peers send the engine to apply.
#[derive(Debug)]
pub enum Remote {
    /// Log entries, each the next of its origin, in this order.
    Entries(Vec<Entry>),
    /// A peer begins an anti-entropy repair of the key buckets marked in `differ`; its state
    /// holds the effects of everything in `covers` (see `repair.rs`).
    RepairBegin {
        /// The repairing peer (its write id).
        from: NodeId,
        /// Which of the [`DIGEST_BUCKETS`] buckets it sends.
        differ: Vec<bool>,
        /// What its state covers.
        covers: Applied,
    },
    /// The peer's full states of every key it holds in `(after, last]` (to the end when
    /// `last` is `None`) in the differing buckets: they replace this node's there.
    RepairPart {
        /// The repairing peer.
        from: NodeId,
        /// The range starts after this key (from the first when `None`).
        after: Option<Bytes>,
        /// The range ends at this key.
        last: Option<Bytes>,
        /// Headers, fields and members, as full states.
        changes: Vec<Change>,
    },
    /// The repair ended: this node now holds what the peer's state covered.
    RepairEnd {
        /// The repairing peer.
        from: NodeId,
    },
    /// The repairing peer went away before the end.
    RepairAbandoned {
        /// The peer.
        from: NodeId,
    },
}

impl Remote {
    /// The peer whose repair this is part of, if it is.
    pub fn repairing_peer(&self) -> Option<NodeId> {
        match self {
            Remote::Entries(_) => None,
            Remote::RepairBegin { from, .. }
            | Remote::RepairPart { from, .. }
            | Remote::RepairEnd { from, .. }
            | Remote::RepairAbandoned { from } => Some(*from),
        }
    }
}

/// What running a request's commands gave.
#[derive(Debug)]
pub struct Ran {
    /// One reply per command (none when aborted).
    pub replies: Vec<Reply>,
    /// A watched key had changed: nothing ran.
    pub aborted: bool,
    /// When the commands wrote: the sequence number of the log entry holding the writes.
    pub seq: Option<u64>,
}

/// What the engine has applied, and how much of it is on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Everything committed.
    pub applied: VersionVector,
    /// Everything committed and fsynced.
    pub durable: VersionVector,
}

/// Figures the engine publishes for status pages and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Live keys (including expired keys not yet reclaimed, as Redis counts them).
    pub live_keys: AtomicU64,
    /// Live keys with a deadline (`INFO keyspace` `expires`).
    pub expires: AtomicU64,
    /// The sum of their deadlines, ms (`avg_ttl`: the mean deadline less now).
    pub deadlines: std::sync::Mutex<i128>,
    /// Keys this node deleted because their deadline passed, since it started.
    pub expired: AtomicU64,
    /// Tombstones held (graves: a tombstone changed twice has two until the older goes).
    pub tombstones: AtomicU64,
    /// Tombstones collected since the node started.
    pub collected: AtomicU64,
    /// The oldest barrier tombstones wait for (see `replication::Stability`): a member whose
    /// vector does not hold it is what holds collection back. Empty when none waits.
    pub waiting_for: std::sync::Mutex<VersionVector>,
    /// Bytes the store holds on disk.
    pub disk_bytes: AtomicU64,
    /// Keys read commands found live (`INFO` `keyspace_hits`).
    pub hits: AtomicU64,
    /// Keys read commands looked for and did not find (`keyspace_misses`).
    pub misses: AtomicU64,
    /// This node's watermark heartbeat: its log's head and an HLC taken between rounds, so
    /// every write it stamped before that HLC is in its log up to that head (peers ping it
    /// to each other, see `peer/watermark.rs`).
    pub heartbeat: std::sync::Mutex<(u64, Timestamp)>,
    /// How far each peer's writes have arrived here (`peer/watermark.rs`).
    pub watermarks: std::sync::Mutex<Vec<OriginMark>>,
}

/// How far one peer's writes have arrived here.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OriginMark {
    /// The peer's name.
    pub name: String,
    /// Every write it stamped before this (ms, its clock) is applied here; `None` before its
    /// first heartbeat arrived.
    pub through_ms: Option<u64>,
    /// Gossip says it is down (or it left): the cluster's watermark does not wait for it.
    pub down: bool,
}

impl Stats {
    /// The cluster's watermark at `now_ms`: every write stamped before it, by every member not
    /// down, is applied here (this node's own up to now). With the members it leaves out.
    pub fn watermark(&self, now_ms: u64) -> (u64, Vec<String>) {
        let marks = self.watermarks.lock().expect("not poisoned");
        let mut low = now_ms;
        let mut down = Vec::new();
        for m in marks.iter() {
            if m.down {
                down.push(m.name.clone());
            } else {
                low = low.min(m.through_ms.unwrap_or(0));
            }
        }
        (low, down)
    }
}

/// State that outlives a round.
pub struct EngineState {
    /// Number of live keys.
    pub live_keys: u64,
    /// Open SCAN cursors.
    pub cursors: Cursors,
    /// Largest value a command may build (APPEND): `proto-max-bulk-len`.
    pub max_value_len: usize,
    /// Where read commands count their hits and misses.
    pub stats: Arc<Stats>,
}

/// Settings of the engine.
#[derive(Clone)]
pub struct EngineConfig {
    /// This node's name.
    pub node_name: String,
    /// When writes reach the disk.
    pub fsync: FsyncPolicy,
    /// Maximum clock offset accepted from peers.
    pub max_offset_ms: u64,
    /// Largest value a command may build.
    pub max_value_len: usize,
    /// Whether state with nothing live (a tombstone) is removed at once. True while the node
    /// has never had a peer; turned off for good once it has one, because a tombstone judges a
    /// peer's late concurrent write (see [`EngineHandle::keep_tombstones`]).
    pub drop_tombstones: Arc<std::sync::atomic::AtomicBool>,
    /// Where keyspace events are published, and which (`notify.rs`).
    pub notifier: notify::Notifier,
    /// Told the keys of every commit (`server::tracking`: client-side caching).
    pub invalidate: Option<Invalidate>,
    /// Told each data command's run time (`SLOWLOG`, `LATENCY`).
    pub took: Option<Took>,
}

/// Told the keys a commit wrote (`None` after a flush: every key), and which of them each
/// client wrote (`Finished::written_by`).
pub type Invalidate = Arc<dyn Fn(Option<&[Bytes]>, &[(Bytes, u64)]) + Send + Sync>;

/// Told how long each data command took to run in its round, with the client that sent it
/// (`server::slowlog`).
pub type Took = Arc<dyn Fn(u64, &[Bytes], Duration) + Send + Sync>;

/// Runs `command`, telling `took` (when set) how long it ran.
fn timed(
    took: &Option<Took>,
    client: u64,
    args: &[Bytes],
    command: impl FnOnce() -> Reply,
) -> Reply {
    let Some(took) = took else {
        return command();
    };
    let started = Instant::now();
    let reply = command();
    took(client, args, started.elapsed());
    reply
}

impl Stats {
    /// The mean time to live of the keys with a deadline, ms (0 when none). Exact, where
    /// Redis samples; keys past their deadline that the sweep has not reached yet pull it
    /// down a little.
    pub fn avg_ttl_ms(&self, now_ms: u64) -> u64 {
        let expires = self.expires.load(Ordering::Relaxed);
        if expires == 0 {
            return 0;
        }
        let mean = *self.deadlines.lock().expect("not poisoned") / i128::from(expires);
        u64::try_from(mean - i128::from(now_ms)).unwrap_or(0)
    }
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("node_name", &self.node_name)
            .field("fsync", &self.fsync)
            .field("notifier", &self.notifier)
            .finish_non_exhaustive()
    }
}

/// How a connection reaches the engine.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Request>,
    store: Arc<dyn Store>,
    max_value_len: usize,
    /// Published figures.
    pub stats: Arc<Stats>,
    /// What the engine has applied and synced, updated after every commit and fsync.
    pub progress: watch::Receiver<Progress>,
    /// This node's id in stamps and logs.
    pub node: NodeId,
    drop_tombstones: Arc<std::sync::atomic::AtomicBool>,
    /// Set when peers hold more of this node's writes than its disk (see
    /// [`EngineHandle::refuse_writes`]).
    writes_refused: Arc<std::sync::atomic::AtomicBool>,
    /// How many members were removed (see [`EngineHandle::member_removed`]).
    members_removed: Arc<AtomicU64>,
    /// The engine's commit count, for reading ahead.
    commits: Arc<AtomicU64>,
    /// Clients parked in a blocking command.
    pub blocked: Arc<AtomicU64>,
    /// What `WATCH` compares (see [`Touches`]).
    pub touches: Arc<Touches>,
    /// When this node acknowledged its latest own log entries.
    pub acked: Arc<AckTimes>,
    pace: Arc<Pace>,
}

/// The engine thread is gone (shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the engine has stopped")]
pub struct EngineGone;

impl EngineHandle {
    /// Runs `commands` on the engine and waits for their replies.
    pub async fn run(&self, commands: Vec<Command>) -> Result<Ran, EngineGone> {
        self.run_watched(0, commands, Vec::new()).await
    }

    /// Runs `commands` in one round (their writes are one log entry), unless one of the
    /// `watch`ed keys was written since its count was taken ([`Touches`]).
    pub async fn run_watched(
        &self,
        client: u64,
        commands: Vec<Command>,
        watch: Vec<(Bytes, u64)>,
    ) -> Result<Ran, EngineGone> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Commands {
                client,
                commands,
                watch,
                reply,
            })
            .await
            .map_err(|_| EngineGone)?;
        rx.await.map_err(|_| EngineGone)
    }

    /// Runs a blocking command: the answer comes when it took something, or, after
    /// [`EngineHandle::unblock`], its empty reply.
    pub async fn block(
        &self,
        id: u64,
        command: Command,
    ) -> Result<oneshot::Receiver<Ran>, EngineGone> {
        let (reply, rx) = oneshot::channel();
        (self.tx)
            .send(Request::Block { id, command, reply })
            .await
            .map_err(|_| EngineGone)?;
        Ok(rx)
    }

    /// The blocking command `id` timed out.
    pub async fn unblock(&self, id: u64) {
        let request = Request::Unblock {
            id,
            error: false,
            reply: None,
        };
        let _ = self.tx.send(request).await;
    }

    /// `CLIENT UNBLOCK`: unparks the blocking command `id`, with the `UNBLOCKED` error when
    /// `error`. Whether it was parked.
    pub async fn unblock_client(&self, id: u64, error: bool) -> bool {
        let (reply, rx) = oneshot::channel();
        let request = Request::Unblock {
            id,
            error,
            reply: Some(reply),
        };
        if self.tx.send(request).await.is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Applies what peers sent through the engine.
    pub async fn apply(&self, work: Remote) -> Result<(), String> {
        self.apply_read_ahead(work, None).await
    }

    /// [`EngineHandle::apply`] with headers read ahead by [`EngineHandle::read_ahead`].
    pub async fn apply_read_ahead(
        &self,
        work: Remote,
        ahead: Option<ReadAhead>,
    ) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Apply { work, ahead, reply })
            .await
            .map_err(|_| EngineGone.to_string())?;
        rx.await.map_err(|_| EngineGone.to_string())?
    }

    /// Reads the headers `entries` change from the store, on the calling thread (blocking),
    /// for the engine to use when it applies them.
    pub fn read_ahead(&self, entries: &[replication::Entry]) -> Result<ReadAhead, StorageError> {
        ReadAhead::read(self.store.as_ref(), &self.commits, entries)
    }

    /// From now on deleted state is kept as tombstones: the node has (or had) peers.
    pub fn keep_tombstones(&self) {
        self.drop_tombstones.store(false, Ordering::Relaxed);
    }

    /// From now on commands that write are refused, and keys are no longer expired here: a
    /// peer holds more of this node's own writes than its disk does (its data directory was
    /// restored from an old copy, or a disk lost synced writes). New writes would reuse
    /// sequence numbers the peers hold, and they would drop them as duplicates.
    pub fn refuse_writes(&self) {
        self.writes_refused.store(true, Ordering::Relaxed);
    }

    /// Whether [`EngineHandle::refuse_writes`] was called.
    pub fn writes_refused(&self) -> bool {
        self.writes_refused.load(Ordering::Relaxed)
    }

    /// A member was removed from the cluster (`CLUSTER FORGET`): tombstone checkpoints are
    /// judged again without it at the next [`EngineHandle::stable`].
    pub fn member_removed(&self) {
        self.members_removed.fetch_add(1, Ordering::Relaxed);
    }

    /// Tells the engine what the members hold: every one `meet`, together `join`. It drops
    /// log entries up to `meet` and collects the tombstones that became stable (best effort:
    /// a busy engine gets the next one).
    pub fn stable(&self, meet: VersionVector, join: VersionVector) {
        let _ = self.tx.try_send(Request::Stable { meet, join });
    }

    /// The store, for reading the change log.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Runs a read-only command on the calling thread against what is committed. It sees
    /// every write that was acknowledged before it started.
    pub fn read(&self, spec: &'static Spec, args: &[Bytes]) -> Reply {
        metrics::counter!("meridian_commands_total", "command" => spec.name).increment(1);
        // Reads never stamp anything, so a throwaway clock serves.
        let mut clock = Clock::new(0);
        // One state for the whole command: read piece by piece from the store, an `MGET` or
        // `HGETALL` could see part of a batch the engine commits meanwhile (half a
        // transaction). The bounds of list ends (`ends.rs`) are not used: they follow the
        // store's latest state, which may have moved past the view's.
        let view = self.store.view();
        let mut txn = Txn::new(view.as_ref(), None, &mut clock, NodeId(0), wall_ms(), false);
        let mut state = EngineState {
            live_keys: 0,
            cursors: Cursors::default(),
            max_value_len: self.max_value_len,
            stats: self.stats.clone(),
        };
        let reply = cmd::execute(
            &mut Ctx {
                txn: &mut txn,
                state: &mut state,
            },
            spec,
            args,
        );
        debug_assert_eq!(
            txn.writes(),
            0,
            "{} is marked read-only but wrote",
            spec.name
        );
        match txn.failed {
            Some(e) => Reply::Error(format!("ERR storage failure: {e}")),
            None => reply,
        }
    }

    /// Waits until everything the engine committed so far is on disk (a no-op under
    /// `--fsync always`, where every commit already is).
    pub async fn sync(&self) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Sync(reply))
            .await
            .map_err(|_| EngineGone.to_string())?;
        rx.await.map_err(|_| EngineGone.to_string())?
    }

    /// A sender that does not keep the engine alive (the ticker's; tests tick by hand).
    pub fn weak_sender(&self) -> mpsc::WeakSender<Request> {
        self.tx.downgrade()
    }

    /// Sends the engine a [`Request::Tick`] every 5 ms while it has timed work (unsynced
    /// commits, a sweep or a collection cut short), every 100 ms otherwise, so that an idle
    /// node stays idle. Ends when the engine does.
    pub async fn tick(self) {
        let ticker = self.weak_sender();
        let pace = self.pace.clone();
        drop(self);
        loop {
            let period = if pace.busy.load(Ordering::Relaxed) {
                TICK_BUSY
            } else {
                TICK_IDLE
            };
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = pace.wake.notified() => {}
            }
            let Some(tx) = ticker.upgrade() else { return };
            // A full queue means the engine is busy; it will see the next tick.
            let _ = tx.try_send(Request::Tick);
        }
    }
}

/// How often the engine ticks while it has timed work.
const TICK_BUSY: Duration = Duration::from_millis(5);
/// How often it ticks otherwise (the expiry sweep's period).
const TICK_IDLE: Duration = Duration::from_millis(100);

/// Whether the engine has timed work, shared with its ticker.
#[derive(Debug, Default)]
struct Pace {
    busy: std::sync::atomic::AtomicBool,
    /// Woken when the engine turns busy, so the ticker does not sleep out a slow period.
    wake: tokio::sync::Notify,
}

/// Most requests one round takes, so one round's latency stays bounded.
const ROUND_REQUESTS_MAX: usize = 256;
/// Requests that may wait for the engine before senders wait too (backpressure).
const QUEUE_REQUESTS_MAX: usize = 4096;
/// Records the engine keeps decoded (see `cache.rs`).
const CACHE_ENTRIES_MAX: usize = 128 * 1024;
/// Samples (writes and deletes) of series the engine keeps decoded (see `windows.rs`):
/// about 40 MB at 40 bytes a write.
const WINDOW_CACHE_WEIGHT_MAX: usize = 1 << 20;

/// Wall-clock milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The answer to a write while peers hold more of this node's writes than its disk.
const WRITES_REFUSED: &str = "ERR writes refused: peers hold more of this node's own writes than \
its data directory (restored from an old copy?); wipe the data directory and restart the node";

/// The id this node writes under: recorded in the store the first time it opens. A new data
/// directory gets an id of its own (the name's hash mixed with a random number), so a node
/// whose disk was wiped starts a fresh log instead of reusing sequence numbers (and counter
/// slots) that its peers already hold under its old id: its old writes come back from them
/// as another origin's. A directory that wrote before ids were recorded keeps the name's
/// hash, the id its log and stamps already carry. (A directory restored from an old copy
/// keeps its id; its peers show it, see [`EngineHandle::refuse_writes`].)
fn origin(store: &dyn Store, name: &str, fresh: bool) -> Result<NodeId, StorageError> {
    if let Some(id) = store.origin()? {
        return Ok(NodeId(id));
    }
    let named = NodeId::from_name(name);
    let id = if fresh {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).expect("the operating system's random source works");
        NodeId(named.0 ^ u64::from_le_bytes(random))
    } else {
        named
    };
    store.set_origin(id.0)?;
    Ok(id)
}

/// Opens the engine over `store` and starts its thread. Counts the live keys first, so
/// `DBSIZE` is right from the first command.
pub fn spawn(
    store: Arc<dyn Store>,
    config: EngineConfig,
) -> Result<(EngineHandle, std::thread::JoinHandle<()>), StorageError> {
    let clock = Clock::resume(config.max_offset_ms, store.last_hlc()?);
    let stored_vv = store.version_vector()?;
    // Nothing ever committed: a new data directory (see `origin`).
    let fresh = stored_vv.is_none();
    check_format(store.as_ref(), fresh)?;
    let (live_keys, expires, deadlines) = count_live(store.as_ref())?;
    let tombstones = store.count_graves()?;
    let Applied { vv, seen } = Applied::from_stored(stored_vv)?;
    // What was committed before a restart is on disk: the final sync saw to it, or the
    // crash lost what was not and the store holds what survived.
    let progress = Progress {
        applied: vv.clone(),
        durable: vv.clone(),
    };
    let (progress_tx, progress_rx) = watch::channel(progress);
    let node = origin(store.as_ref(), &config.node_name, fresh)?;
    let stats = Arc::new(Stats::default());
    stats.live_keys.store(live_keys, Ordering::Relaxed);
    stats.expires.store(expires, Ordering::Relaxed);
    *stats.deadlines.lock().expect("not poisoned") = deadlines;
    stats.tombstones.store(tombstones, Ordering::Relaxed);
    stats
        .disk_bytes
        .store(store.disk_bytes(), Ordering::Relaxed);
    let (tx, rx) = mpsc::channel(QUEUE_REQUESTS_MAX);
    let written = ahead::Written::default();
    let touches = Arc::new(Touches::default());
    let acked = Arc::new(AckTimes::default());
    let writes_refused = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let members_removed = Arc::new(AtomicU64::new(0));
    let pace = Arc::new(Pace::default());
    let parking = blocked::Parking::default();
    let ends = Arc::new(ends::Ends::default());
    let handle = EngineHandle {
        blocked: parking.count.clone(),
        pace: pace.clone(),
        writes_refused: writes_refused.clone(),
        members_removed: members_removed.clone(),
        tx,
        acked: acked.clone(),
        commits: written.counter(),
        touches: touches.clone(),
        store: store.clone(),
        max_value_len: config.max_value_len,
        stats: stats.clone(),
        progress: progress_rx,
        node,
        drop_tombstones: config.drop_tombstones.clone(),
    };
    let mut reclaim = reclaim::Reclaim::default();
    if tombstones > 0 {
        // What was known of these tombstones' barriers went with the last run: the vector
        // now is larger than each of them, so it is a safe barrier for all.
        reclaim.checkpoints.graves_written(0, clock.last(), &vv);
    }
    let engine = Engine {
        parking,
        repair: None,
        pace,
        reclaim,
        store,
        clock,
        node,
        vv,
        seen,
        progress: progress_tx,
        state: EngineState {
            live_keys,
            cursors: Cursors::default(),
            max_value_len: config.max_value_len,
            stats: stats.clone(),
        },
        config,
        stats,
        unsynced: Unsynced::default(),
        command_counts: HashMap::new(),
        cache: RecordCache::new(CACHE_ENTRIES_MAX),
        windows: RefCell::new(WindowCache::new(WINDOW_CACHE_WEIGHT_MAX)),
        ends,
        written,
        touches,
        acked,
        log_first: HashMap::new(),
        writes_refused,
        members_removed,
        members_removed_seen: 0,
    };
    let thread = std::thread::Builder::new()
        .name("meridian-engine".into())
        .spawn(move || engine.run(rx))
        .expect("spawning the engine thread");
    Ok((handle, thread))
}

/// Refuses a data directory in a format this build cannot read, and records the format in a
/// new one.
fn check_format(store: &dyn Store, fresh: bool) -> Result<(), StorageError> {
    match store.format()? {
        Some(storage::FORMAT) => Ok(()),
        // Format 4 only added keyspace events to the log, format 5 time series (series
        // headers beside the records, read from older headers by `storage::Stored::decode`,
        // and their windows): a format 3 or 4 directory reads as it is, and is marked 5 so
        // that older builds, which cannot read what this one writes, refuse it.
        Some(3 | 4) => store.set_format(storage::FORMAT),
        None if fresh => store.set_format(storage::FORMAT),
        found => Err(StorageError::Corrupt {
            key: "(format)".into(),
            reason: format!(
                "the data directory is in format {}, this build reads format {}: wipe it \
                 and start the node again (its peers repair it)",
                found.unwrap_or(1),
                storage::FORMAT
            ),
        }),
    }
}

/// Live keys, how many of them have a deadline, and the sum of those deadlines.
fn count_live(store: &dyn Store) -> Result<(u64, u64, i128), StorageError> {
    let (mut live, mut expires, mut deadlines) = (0, 0, 0);
    let mut after: Option<Bytes> = None;
    loop {
        let chunk = store.scan(after.as_deref(), 4096)?;
        let Some((last, _)) = chunk.last() else {
            return Ok((live, expires, deadlines));
        };
        after = Some(last.clone());
        let clients = |k: &Bytes| !crate::acl::is_reserved(k);
        for (_, s) in chunk
            .iter()
            .filter(|(k, s)| s.kind().is_some() && clients(k))
        {
            live += 1;
            if let Some(at) = s.record.expires_at_ms() {
                expires += 1;
                deadlines += i128::from(at);
            }
        }
    }
}

struct Engine {
    /// Clients parked in blocking commands (`blocked.rs`).
    parking: blocked::Parking,
    /// An anti-entropy repair being received (`repair.rs`).
    repair: Option<repair::Repair>,
    /// Whether the ticker should tick fast.
    pace: Arc<Pace>,
    /// The expiry sweep and tombstone collection (`reclaim.rs`).
    reclaim: reclaim::Reclaim,
    store: Arc<dyn Store>,
    clock: Clock,
    node: NodeId,
    /// Everything committed: own entries and peers' entries applied.
    vv: VersionVector,
    /// Per origin, its latest write applied (with `vv`, an [`Applied`]).
    seen: Seen,
    progress: watch::Sender<Progress>,
    state: EngineState,
    config: EngineConfig,
    stats: Arc<Stats>,
    /// What was committed without fsync since the last sync.
    unsynced: Unsynced,
    command_counts: HashMap<&'static str, u64>,
    cache: RecordCache,
    /// Windows of series the engine keeps decoded (`windows.rs`).
    windows: RefCell<WindowCache>,
    /// Where the live parts of lists and sorted sets begin and end (`ends.rs`).
    ends: Arc<ends::Ends>,
    /// Which keys recent commits wrote: tells which read-ahead values still hold.
    written: ahead::Written,
    /// Writes per slot of keys, for `WATCH`.
    touches: Arc<Touches>,
    /// When own log entries were acknowledged.
    acked: Arc<AckTimes>,
    /// Per origin, the first entry the log holds after the last truncation. Read from the
    /// store once, then kept here: finding it again there walks over every entry truncated
    /// so far, which the storage engine keeps as tombstones until compaction drops them (a
    /// truncation took 4-7 ms of the engine's time after a minute at 10k writes/s).
    log_first: HashMap<u64, u64>,
    /// See [`EngineHandle::refuse_writes`].
    writes_refused: Arc<std::sync::atomic::AtomicBool>,
    /// How many members were removed (see [`EngineHandle::member_removed`]).
    members_removed: Arc<AtomicU64>,
    /// How many of those the tombstone checkpoints have taken into account.
    members_removed_seen: u64,
}

/// Commits not yet on disk: the oldest of each kind, which says when the tick syncs.
#[derive(Debug, Default)]
struct Unsynced {
    /// Clients' writes (under `--fsync batch` or `never`).
    clients: Option<Instant>,
    /// Peers' writes and log truncation, which are durable elsewhere.
    peers: Option<Instant>,
}

/// How long peers' writes may wait for this node's disk (unless a client's commit, a `WAIT`
/// or a peer's request syncs sooner). Every sync blocks the engine for as long as the disk
/// takes, and on a busy disk that is tens of milliseconds now and then: a peer entry that
/// arrives meanwhile waits. Syncing these only every 100 ms instead of every 10 ms shortens the lag tail (see
/// bench/RESULTS.md); what peers are told this node holds trails by as much.
const PEERS_SYNC_PERIOD: Duration = Duration::from_millis(100);

impl Unsynced {
    fn any(&self) -> bool {
        self.clients.is_some() || self.peers.is_some()
    }

    /// A commit of `writer`'s writes did not sync.
    fn mark(&mut self, writer: Writer) {
        let oldest = match writer {
            Writer::Clients => &mut self.clients,
            Writer::Peers => &mut self.peers,
        };
        oldest.get_or_insert_with(Instant::now);
    }

    /// Whether the oldest unsynced commit has waited long enough under `policy`.
    fn due(&self, policy: FsyncPolicy) -> bool {
        let (clients, peers) = match policy {
            FsyncPolicy::Always | FsyncPolicy::Batch => {
                (Duration::from_millis(10), PEERS_SYNC_PERIOD)
            }
            // Peers receive only what is on disk here (so a crash can never take back an
            // entry a peer holds): under `never` the log is still synced once a second.
            FsyncPolicy::Never => (Duration::from_secs(1), Duration::from_secs(1)),
        };
        self.clients.is_some_and(|t| t.elapsed() >= clients)
            || self.peers.is_some_and(|t| t.elapsed() >= peers)
    }
}

/// Whose writes a commit holds: it decides what the commit caches and whether it waits for
/// the disk.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writer {
    /// This node's clients (and its own expiry). Every key written is cached: clients are
    /// likely to read or write it again. Under `--fsync always` the commit is on disk before
    /// it returns, since clients hear "OK" next.
    Clients,
    /// Peers: their log entries, snapshot parts and adopted vectors. Only keys already cached
    /// are refreshed (peers' writes would otherwise evict what local clients use, and churning
    /// the cache took 8% of a catch-up's engine time). The commit never waits for the disk:
    /// the writes are durable at their origin already (it ships only what it synced), so they
    /// are visible here at once and reach this disk with the next sync: the tick's within
    /// [`PEERS_SYNC_PERIOD`], or any sooner (a client commit's, a `WAIT`'s, a peer's request:
    /// one journal, so an fsync covers everything before it). Peers learn of it from the
    /// durable vector, which only syncs advance.
    Peers,
}

/// A blocking command taken into a round: the wait's id, the command, where its answer goes.
type Block = (u64, Command, oneshot::Sender<Ran>);

/// One request taken into a round, with its replies once run.
struct Pending {
    /// The connection's client id (0 when none).
    client: u64,
    commands: Vec<Command>,
    watch: Vec<(Bytes, u64)>,
    reply: oneshot::Sender<Ran>,
    replies: Vec<Reply>,
    wrote: bool,
    aborted: bool,
}

impl Engine {
    fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        while let Some(first) = rx.blocking_recv() {
            let mut round = Vec::new();
            let mut blocks = Vec::new();
            let mut unblocks = Vec::new();
            let mut tick = false;
            let mut syncs = Vec::new();
            let mut next = Some(first);
            while let Some(request) = next.take() {
                match request {
                    Request::Commands {
                        client,
                        commands,
                        watch,
                        reply,
                    } => round.push(Pending {
                        client,
                        commands,
                        watch,
                        reply,
                        replies: Vec::new(),
                        wrote: false,
                        aborted: false,
                    }),
                    Request::Apply { work, ahead, reply } => {
                        // Peers' entries go in their own commit, ahead of the round so far:
                        // nothing in the round depends on them.
                        let result = self.apply_remote(work, ahead);
                        let _ = reply.send(result);
                        if !self.parking.is_empty() {
                            self.serve_parked();
                        }
                    }
                    Request::Block { id, command, reply } => blocks.push((id, command, reply)),
                    Request::Unblock { id, error, reply } => unblocks.push((id, error, reply)),
                    Request::Stable { meet, join } => {
                        self.truncate(&meet);
                        self.observe_stable(&meet, &join);
                    }
                    Request::Tick => tick = true,
                    Request::Sync(reply) => syncs.push(reply),
                }
                if round.len() + blocks.len() < ROUND_REQUESTS_MAX {
                    next = rx.try_recv().ok();
                }
            }
            if !round.is_empty() || !blocks.is_empty() {
                self.run_round(round, blocks);
            }
            // After the round: a wait that timed out may have been parked by it.
            for (id, error, reply) in unblocks {
                let found = self.parking.unpark(id, error);
                if let Some(reply) = reply {
                    let _ = reply.send(found);
                }
            }
            if !syncs.is_empty() {
                // After the round, so a WAIT covers the writes sent before it.
                let result = self.sync().map_err(|e| e.to_string());
                for reply in syncs {
                    let _ = reply.send(result.clone());
                }
            }
            if tick {
                self.tick();
            }
            let busy = self.unsynced.any() || self.reclaim.busy();
            if busy && !self.pace.busy.swap(true, Ordering::Relaxed) {
                self.pace.wake.notify_one();
            } else if !busy {
                self.pace.busy.store(false, Ordering::Relaxed);
            }
        }
        if let Err(e) = self.store.sync() {
            tracing::error!(error = %e, "final sync failed");
        }
        tracing::info!("engine stopped");
    }

    fn durability(&self) -> Durability {
        match self.config.fsync {
            FsyncPolicy::Always => Durability::Sync,
            FsyncPolicy::Batch | FsyncPolicy::Never => Durability::Buffer,
        }
    }

    /// A round at `now_ms` over the store and the cache, with the engine's state beside it.
    fn begin(&mut self, now_ms: u64) -> (Txn<'_>, &mut EngineState) {
        let txn = Txn::new(
            self.store.as_ref(),
            Some(&self.cache),
            &mut self.clock,
            self.node,
            now_ms,
            self.config.drop_tombstones.load(Ordering::Relaxed),
        )
        .with_ends(&self.ends)
        .with_windows(&self.windows);
        (txn, &mut self.state)
    }

    fn run_round(&mut self, mut round: Vec<Pending>, blocks: Vec<Block>) {
        for pending in &round {
            for (spec, _) in &pending.commands {
                *self.command_counts.entry(spec.name).or_default() += 1;
            }
        }
        for (_, (spec, _), _) in &blocks {
            *self.command_counts.entry(spec.name).or_default() += 1;
        }
        let refused = self.writes_refused.load(Ordering::Relaxed);
        let touches = self.touches.clone();
        let took = self.config.took.clone();
        let mut parking = std::mem::take(&mut self.parking);
        let (mut txn, state) = self.begin(wall_ms());
        for pending in &mut round {
            if refused && pending.commands.iter().any(|(spec, _)| spec.write) {
                pending.replies = (pending.commands.iter())
                    .map(|_| Reply::Error(WRITES_REFUSED.into()))
                    .collect();
                continue;
            }
            // Written by a commit since the watch, or earlier in this round.
            let touched = |key: &Bytes, count: u64| touches.get(key) != count || txn.wrote(key);
            if (pending.watch.iter()).any(|(key, count)| touched(key, *count)) {
                pending.aborted = true;
                continue;
            }
            let mut ctx = Ctx {
                txn: &mut txn,
                state: &mut *state,
            };
            let writes_before = ctx.txn.writes();
            ctx.txn.set_writer(pending.client);
            for (spec, args) in &pending.commands {
                let reply = timed(&took, pending.client, args, || {
                    cmd::execute(&mut ctx, spec, args)
                });
                pending.replies.push(reply);
            }
            pending.wrote = ctx.txn.writes() != writes_before;
        }
        // Blocking commands, then the parked clients this round fed (see `blocked.rs`).
        let mut ctx = Ctx {
            txn: &mut txn,
            state: &mut *state,
        };
        let mut served = Vec::new();
        for (id, (spec, mut args), reply) in blocks {
            let answer = if refused {
                Reply::Error(WRITES_REFUSED.into())
            } else {
                ctx.txn.set_writer(id);
                cmd::pin_arrival(&mut ctx, spec, &mut args);
                timed(&took, id, &args, || cmd::execute(&mut ctx, spec, &args))
            };
            if blocked::found_nothing(&answer) {
                parking.park(id, (spec, args), answer, reply);
            } else {
                served.push(blocked::Served::new(reply, answer));
            }
        }
        if !refused && !parking.is_empty() {
            served.extend(parking.serve(&mut ctx, true));
        }
        let failed = txn.failed.take();
        let mut finished = txn.finish();
        self.parking = parking;
        for (key, record) in std::mem::take(&mut finished.read) {
            self.cache.insert(key, record);
        }
        let outcome = match failed {
            Some(e) => Err(e),
            None => self.commit_local(finished),
        };
        match outcome {
            Ok(seq) => {
                for p in round {
                    let seq = seq.filter(|_| p.wrote);
                    // A connection that went away does not care for its replies.
                    let _ = p.reply.send(Ran {
                        replies: p.replies,
                        aborted: p.aborted,
                        seq,
                    });
                }
                served.into_iter().for_each(|s| s.send(seq));
            }
            Err(e) => {
                let message = format!("ERR storage failure, write not applied: {e}");
                served.into_iter().for_each(|s| s.fail(&message));
                self.fail_round(round, &e);
            }
        }
        self.flush_command_counts();
    }

    /// Serves the parked clients whose keys peers' entries just fed, in a round of their own.
    fn serve_parked(&mut self) {
        let mut parking = std::mem::take(&mut self.parking);
        let (mut txn, state) = self.begin(wall_ms());
        let mut ctx = Ctx {
            txn: &mut txn,
            state,
        };
        let served = parking.serve(&mut ctx, false);
        let failed = txn.failed.take();
        let finished = txn.finish();
        self.parking = parking;
        if served.is_empty() {
            return;
        }
        match failed.map_or_else(|| self.commit_local(finished), Err) {
            Ok(seq) => served.into_iter().for_each(|s| s.send(seq)),
            Err(e) => {
                let message = format!("ERR storage failure, write not applied: {e}");
                served.into_iter().for_each(|s| s.fail(&message));
            }
        }
    }

    /// Commits a finished round of local writes with its change log entry. Answers the
    /// entry's sequence number, if the round wrote.
    fn commit_local(&mut self, mut finished: Finished) -> Result<Option<u64>, StorageError> {
        if finished.changes.is_empty() && finished.batch.is_empty() {
            if let Some(invalidate) = self.config.invalidate.as_ref().filter(|_| finished.flushed) {
                invalidate(None, &[]); // an empty keyspace flushed: caches go all the same
            }
            // Windows the round only read are still as committed.
            self.windows_committed(&finished.batch, Some(finished.windows));
            return Ok(None);
        }
        let mut applied = self.applied();
        let seq = seal(&mut finished, self.node, self.clock.last(), &mut applied);
        self.commit(finished, applied)?;
        Ok(seq)
    }

    /// What this node's state holds.
    fn applied(&self) -> Applied {
        Applied {
            vv: self.vv.clone(),
            seen: self.seen.clone(),
        }
    }

    /// Commits a batch that brings the node to `applied`, then updates the cache, the counts
    /// and the published progress.
    fn commit(&mut self, finished: Finished, applied: Applied) -> Result<(), StorageError> {
        self.commit_with(finished, applied, Writer::Clients)
    }

    /// [`Engine::commit`] of what `writer` wrote.
    fn commit_with(
        &mut self,
        finished: Finished,
        applied: Applied,
        writer: Writer,
    ) -> Result<(), StorageError> {
        let Applied { vv, seen } = applied;
        let durability = match writer {
            Writer::Clients => self.durability(),
            Writer::Peers => Durability::Buffer,
        };
        let started = Instant::now();
        // Bounds widen before the writes land, so no reader skips a stored part; what the
        // round learned replaces them once it has committed (`ends.rs`).
        self.ends.before_commit(&finished.batch);
        let result = self.store.commit(&finished.batch, durability);
        self.windows_committed(&finished.batch, result.is_ok().then_some(finished.windows));
        if result.is_ok() {
            self.ends.after_commit(finished.learned);
            self.config.notifier.fire(&finished.events);
        }
        // Taken or not, these keys may differ now from what a read-ahead found.
        let keys = finished.batch.puts.iter().map(|(k, _)| k);
        let keys: Vec<Bytes> = keys.chain(&finished.batch.removes).cloned().collect();
        if result.is_ok() {
            keys.iter().for_each(|k| self.touches.touch(k));
            if let Some(invalidate) = &self.config.invalidate {
                // After a flush, every cached key goes: one invalidation, not one per key.
                let keys = (!finished.flushed).then_some(keys.as_slice());
                invalidate(keys, &finished.written_by);
            }
        }
        self.written.committed(keys);
        result?;
        if durability == Durability::Sync {
            metrics::histogram!("meridian_fsync_seconds").record(started.elapsed().as_secs_f64());
            // The fsync covered every commit before this one too.
            self.unsynced = Unsynced::default();
        } else {
            self.unsynced.mark(writer);
        }
        self.reclaimed(&finished.batch, &vv);
        self.remember(finished.batch, writer);
        self.state.live_keys = self
            .state
            .live_keys
            .saturating_add_signed(finished.live_delta);
        self.stats
            .live_keys
            .store(self.state.live_keys, Ordering::Relaxed);
        add_signed(&self.stats.expires, finished.expires_delta);
        *self.stats.deadlines.lock().expect("not poisoned") += finished.deadlines_delta;
        let own = vv.get(self.node);
        if writer == Writer::Clients && own > self.vv.get(self.node) {
            // Clients hear of it now; noted before the progress below lets it ship.
            self.acked.record(own, wall_ms());
        }
        self.vv = vv;
        self.seen = seen;
        let durable = (durability == Durability::Sync).then(|| self.vv.clone());
        self.progress.send_if_modified(|p| {
            let before = p.clone();
            p.applied = self.vv.clone();
            if let Some(d) = durable {
                p.durable = d;
            }
            *p != before
        });
        Ok(())
    }

    /// Keeps the window cache exact after a commit: every window the batch put or removed
    /// goes (whether or not the commit took), then the windows the round held go back in
    /// as committed (`held`, when it took).
    fn windows_committed(&self, batch: &storage::Batch, held: Option<Vec<(Bytes, Bytes, Window)>>) {
        let mut cache = self.windows.borrow_mut();
        let puts = (batch.member_puts.iter()).map(|(kind, key, name, _)| (kind, key, name));
        let removes = (batch.member_removes.iter()).map(|(kind, key, name)| (kind, key, name));
        for (_, key, name) in puts
            .chain(removes)
            .filter(|(k, _, _)| **k == MemberKind::Window)
        {
            cache.forget(key, name);
        }
        for (key, name, window) in held.into_iter().flatten() {
            cache.insert(key, name, window);
        }
    }

    /// A commit that only records `applied`.
    fn bare(&self, applied: &Applied) -> Finished {
        Finished {
            batch: storage::Batch {
                version_vector: Some(applied.encode()),
                hlc: self.clock.last(),
                ..storage::Batch::default()
            },
            live_delta: 0,
            expires_delta: 0,
            deadlines_delta: 0,
            changes: Vec::new(),
            read: Vec::new(),
            learned: Vec::new(),
            events: Vec::new(),
            written_by: Vec::new(),
            flushed: false,
            windows: Vec::new(),
        }
    }

    /// Drops log entries up to `upto` (every member holds them), a bounded number per call.
    fn truncate(&mut self, upto: &VersionVector) {
        let (batch, firsts) = match truncation(
            self.store.as_ref(),
            upto,
            &self.log_first,
            self.clock.last(),
        ) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "reading the change log failed");
                return;
            }
        };
        if batch.log_removes.is_empty() {
            return;
        }
        let removed = batch.log_removes.len() as u64;
        match self.store.commit(&batch, Durability::Buffer) {
            Ok(()) => {
                self.log_first.extend(firsts);
                self.unsynced.mark(Writer::Peers);
                metrics::counter!("meridian_log_truncated_total").increment(removed);
            }
            Err(e) => tracing::error!(error = %e, "truncating the change log failed"),
        }
    }

    /// Makes everything committed durable, if anything is not yet.
    fn sync(&mut self) -> Result<(), StorageError> {
        if !self.unsynced.any() {
            return Ok(());
        }
        let started = Instant::now();
        self.store.sync()?;
        metrics::histogram!("meridian_fsync_seconds").record(started.elapsed().as_secs_f64());
        self.unsynced = Unsynced::default();
        let vv = self.vv.clone();
        self.progress.send_if_modified(|p| {
            let changed = p.durable != vv;
            p.durable = vv;
            changed
        });
        Ok(())
    }

    /// Applies peers' entries, each the next of its origin, in one commit. Stops at the first
    /// that cannot apply (a gap, or a timestamp too far ahead of this node's clock) and commits
    /// those before it.
    fn apply_remote(&mut self, work: Remote, ahead: Option<ReadAhead>) -> Result<(), String> {
        let entries = match work {
            Remote::Entries(entries) => entries,
            Remote::RepairBegin {
                from,
                differ,
                covers,
            } => {
                return self.repair_begin(from, differ, covers);
            }
            Remote::RepairPart {
                from,
                after,
                last,
                changes,
            } => return self.repair_part(from, after, last, changes),
            Remote::RepairEnd { from } => {
                // The log now has a gap before what follows the repair.
                self.log_first.clear();
                return self.repair_end(from);
            }
            Remote::RepairAbandoned { from } => {
                self.repair_closed(Some(from));
                return Ok(());
            }
        };
        let mut applied = self.applied();
        let ahead = ahead.map(|a| self.written.usable(a)).unwrap_or_default();
        let (mut txn, _) = self.begin(wall_ms());
        txn.preload(ahead);
        txn.replaying(entries.iter().map(|e| e.changes.len()).sum());
        let (log_puts, problem) = apply_entries(&mut txn, &mut applied, &entries);
        let failed = txn.failed.take();
        let mut finished = txn.finish();
        finished.read.clear();
        if let Some(e) = failed {
            return Err(e.to_string());
        }
        if !log_puts.is_empty() {
            finished.batch.log_puts = log_puts;
            finished.batch.version_vector = Some(applied.encode());
            metrics::counter!("meridian_replication_applied_total")
                .increment(finished.batch.log_puts.len() as u64);
            let before = self.vv.clone();
            self.commit_with(finished, applied, Writer::Peers)
                .map_err(|e| {
                    metrics::counter!("meridian_storage_errors_total").increment(1);
                    e.to_string()
                })?;
            // Replication lag: from the origin's acknowledgment of the write to its commit
            // here. An entry that did not come straight from its origin counts from its
            // stamp, taken before the origin committed: a little longer.
            let now_ms = wall_ms();
            for e in entries.iter().filter(|e| e.seq > before.get(e.origin)) {
                let lag_ms = now_ms.saturating_sub(e.lag_since_ms());
                metrics::histogram!("meridian_replication_lag_seconds")
                    .record(lag_ms as f64 / 1000.0);
            }
        }
        problem.map_or(Ok(()), Err)
    }

    /// Caches what a batch committed.
    fn remember(&mut self, batch: storage::Batch, writer: Writer) {
        let puts = batch.puts.into_iter().map(|(k, r)| (k, Some(r)));
        let removes = batch.removes.into_iter().map(|k| (k, None));
        for (key, record) in puts.chain(removes) {
            match writer {
                Writer::Clients => self.cache.insert(key, record),
                Writer::Peers => self.cache.refresh(key, record),
            }
        }
    }

    /// The round's batch did not commit. Requests that wrote get an error for every command;
    /// requests that only read are run again against what is committed, so they neither fail
    /// needlessly nor show data that never became durable.
    fn fail_round(&mut self, round: Vec<Pending>, error: &StorageError) {
        tracing::error!(error = %error, "commit failed; the round's writes are not applied");
        metrics::counter!("meridian_storage_errors_total").increment(1);
        let message = format!("ERR storage failure, write not applied: {error}");
        for p in round {
            if p.aborted {
                let _ = p.reply.send(Ran {
                    replies: Vec::new(),
                    aborted: true,
                    seq: None,
                });
                continue;
            }
            if !p.wrote {
                let (mut txn, state) = self.begin(wall_ms());
                let mut ctx = Ctx {
                    txn: &mut txn,
                    state,
                };
                let replies: Vec<Reply> = p
                    .commands
                    .iter()
                    .map(|(spec, args)| cmd::execute(&mut ctx, spec, args))
                    .collect();
                if txn.writes() == 0 && txn.failed.is_none() {
                    let _ = p.reply.send(Ran {
                        replies,
                        aborted: false,
                        seq: None,
                    });
                    continue;
                }
            }
            let replies = p
                .commands
                .iter()
                .map(|_| Reply::Error(message.clone()))
                .collect();
            let _ = p.reply.send(Ran {
                replies,
                aborted: false,
                seq: None,
            });
        }
    }

    fn flush_command_counts(&mut self) {
        for (name, n) in self.command_counts.drain() {
            metrics::counter!("meridian_commands_total", "command" => name).increment(n);
        }
    }

    fn tick(&mut self) {
        // Between rounds: every write stamped before this HLC is in the log up to its head.
        let hlc = self.clock.now(wall_ms());
        *self.stats.heartbeat.lock().expect("not poisoned") = (self.vv.get(self.node), hlc);
        if self.unsynced.due(self.config.fsync)
            && let Err(e) = self.sync()
        {
            tracing::error!(error = %e, "periodic fsync failed");
            // Tried again a period from now.
            self.unsynced = Unsynced {
                clients: self.unsynced.clients.map(|_| Instant::now()),
                peers: self.unsynced.peers.map(|_| Instant::now()),
            };
        }
        self.reclaim_tick();
    }
}

/// Adds a signed change to a published count.
fn add_signed(count: &AtomicU64, delta: i64) {
    if delta != 0 {
        let now = count.load(Ordering::Relaxed).saturating_add_signed(delta);
        count.store(now, Ordering::Relaxed);
    }
}
