//! One simulated node: the real command, transaction, log and replication code over an
//! in-memory store, with a simulated disk that loses what was not synced when it crashes.

use bytes::Bytes;
use crdt::NodeId;
use hlc::{Clock, Timestamp};
use membership::{MemberInfo, Membership};
use node::cmd::{self, Ctx};
use node::engine::{
    Applied, Checkpoints, Cursors, Ends, EngineState, Learned, Repair, Txn, apply_entries, seal,
};
use replication::{Change, Config, Entry, Replicator, VersionVector};
use resp::Reply;
use std::collections::HashMap;
use storage::{Batch, Durability, MemStore, StateRead, Store};

/// Largest clock offset the nodes accept (the design's default).
pub const MAX_OFFSET_MS: u64 = 500;

/// A node of the simulated cluster.
pub struct SimNode {
    /// `--node-id`.
    pub name: String,
    /// Index into the region delay matrix.
    pub region: usize,
    /// Its id as a member (the hash of its name).
    pub id: NodeId,
    /// The id it writes under, in stamps and logs: its member id until its disk is wiped,
    /// then a new one (as `node::engine` records one per data directory).
    pub origin: NodeId,
    /// Whether the process runs.
    pub up: bool,
    /// How many times it restarted.
    pub incarnation: u64,
    /// `--fsync always` (every commit of clients' writes durable at once) or `batch` (synced
    /// on ticks). Peers' entries are synced on ticks either way.
    pub always: bool,
    /// How far its physical clock is ahead of true time.
    pub skew_ms: u64,
    /// What the running process sees.
    store: MemStore,
    /// Where lists' and sorted sets' live parts begin and end; in memory only.
    ends: Ends,
    /// What survives a crash.
    disk: MemStore,
    /// Committed and not yet synced, in order.
    unsynced: Vec<Batch>,
    clock: Clock,
    state: EngineState,
    /// Its gossip (SWIM) core; a new one at each restart.
    pub gossip: Membership,
    /// Everything committed.
    pub vv: VersionVector,
    /// Per origin, its latest write committed.
    pub seen: crdt::Seen,
    /// Everything synced.
    pub durable: VersionVector,
    /// The replication core.
    pub core: Replicator,
    /// Problems the node itself detected (entries handed over out of causal order).
    pub violations: Vec<String>,
    /// When its tombstones are stable (in memory, as the engine keeps it).
    checkpoints: Checkpoints,
    /// A repair being received (in memory, as the engine keeps it).
    repair: Option<Repair>,
    /// Per origin, the first entry its log holds after the last truncation.
    log_first: HashMap<u64, u64>,
    /// Log entries truncated since the run began.
    pub truncated: u64,
    /// Repairs received to their end since the run began.
    pub repairs: u64,
    /// Graves before this HLC were collected.
    graves_from: Timestamp,
    /// Tombstones collected since the run began.
    pub collected: u64,
}

/// What one command did.
pub struct Executed {
    /// The reply.
    pub reply: Reply,
    /// The clock after the command: the stamp of its write, if it wrote.
    pub hlc: Timestamp,
    /// Whether it wrote.
    pub wrote: bool,
}

fn engine_state() -> EngineState {
    EngineState {
        live_keys: 0,
        cursors: Cursors::default(),
        max_value_len: 1 << 20,
        stats: Default::default(),
    }
}

impl SimNode {
    /// A fresh node with an empty disk.
    pub fn new(name: String, region: usize, always: bool, skew_ms: u64, seed: u64) -> SimNode {
        let id = NodeId::from_name(&name);
        SimNode {
            gossip: membership_core(&name, region, 1, seed),
            name,
            region,
            id,
            origin: id,
            up: true,
            incarnation: 0,
            always,
            skew_ms,
            store: MemStore::new(),
            ends: Ends::default(),
            disk: MemStore::new(),
            unsynced: Vec::new(),
            clock: Clock::new(MAX_OFFSET_MS),
            state: engine_state(),
            vv: VersionVector::new(),
            seen: crdt::Seen::default(),
            durable: VersionVector::new(),
            core: Replicator::new(
                id,
                Config::default(),
                VersionVector::new(),
                VersionVector::new(),
            ),
            violations: Vec::new(),
            checkpoints: Checkpoints::default(),
            repair: None,
            log_first: HashMap::new(),
            truncated: 0,
            repairs: 0,
            graves_from: Timestamp::ZERO,
            collected: 0,
        }
    }

    fn physical_ms(&self, now_ms: u64) -> u64 {
        now_ms + self.skew_ms
    }

    /// Commits `batch`; when `sync`, it is on disk afterwards, with everything before it (one
    /// journal), as the engine commits clients' writes under `--fsync always`. Peers' entries
    /// never wait for the disk (the engine's `Writer::Peers`).
    fn commit(&mut self, now_ms: u64, batch: Batch, sync: bool) {
        self.commit_learned(now_ms, batch, sync, Vec::new());
    }

    /// [`SimNode::commit`] of a round's batch, with what its walks learned of where lists'
    /// and sorted sets' live parts begin and end (as the engine keeps them).
    fn commit_learned(&mut self, now_ms: u64, batch: Batch, sync: bool, learned: Vec<Learned>) {
        self.ends.before_commit(&batch);
        self.store
            .commit(&batch, Durability::Sync)
            .expect("the memory store does not fail");
        self.ends.after_commit(learned);
        if !batch.graves.is_empty() {
            self.checkpoints.graves_written(now_ms, batch.hlc, &self.vv);
        }
        self.unsynced.push(batch);
        if sync {
            self.sync();
        }
    }

    /// Makes everything committed durable. Answers whether there was anything to sync.
    pub fn sync(&mut self) -> bool {
        if self.unsynced.is_empty() {
            return false;
        }
        for batch in self.unsynced.drain(..) {
            self.disk
                .commit(&batch, Durability::Sync)
                .expect("the memory store does not fail");
        }
        self.durable = self.vv.clone();
        true
    }

    /// Runs one client command as the engine would: one round, sealed into a log entry.
    pub fn execute(&mut self, now_ms: u64, words: &[&[u8]]) -> Executed {
        let args: Vec<Bytes> = words.iter().map(|w| Bytes::copy_from_slice(w)).collect();
        let spec = cmd::lookup(&args[0]).expect("the workload uses known commands");
        let physical = self.physical_ms(now_ms);
        let mut txn = round(
            &self.store,
            &self.ends,
            &mut self.clock,
            self.origin,
            physical,
        );
        let reply = cmd::execute(
            &mut Ctx {
                txn: &mut txn,
                state: &mut self.state,
            },
            spec,
            &args,
        );
        let mut finished = txn.finish();
        let hlc = self.clock.last();
        let mut applied = self.applied();
        let wrote = seal(&mut finished, self.origin, hlc, &mut applied).is_some();
        if wrote {
            (self.vv, self.seen) = (applied.vv, applied.seen);
            self.commit_learned(now_ms, finished.batch, self.always, finished.learned);
        }
        Executed { reply, hlc, wrote }
    }

    /// Applies entries the core released.
    pub fn apply(&mut self, now_ms: u64, entries: &[Entry]) {
        let physical = self.physical_ms(now_ms);
        let mut applied = self.applied();
        let mut txn = round(
            &self.store,
            &self.ends,
            &mut self.clock,
            self.origin,
            physical,
        );
        let (log_puts, problem) = apply_entries(&mut txn, &mut applied, entries);
        let mut finished = txn.finish();
        if !log_puts.is_empty() {
            finished.batch.log_puts = log_puts;
            finished.batch.version_vector = Some(applied.encode());
            (self.vv, self.seen) = (applied.vv, applied.seen);
            self.commit_learned(now_ms, finished.batch, false, finished.learned);
        }
        if let Some(problem) = problem {
            if problem.contains("does not follow") {
                self.violations
                    .push(format!("{}: the core released {problem}", self.name));
            }
            self.core.apply_failed();
        }
    }

    /// Truncates the log up to what every member holds, and collects the tombstones that
    /// are stable by what the members acknowledged, as the engine does (one pass each).
    pub fn collect(&mut self, now_ms: u64) {
        let (meet, join) = (self.core.truncatable(), self.core.members_join());
        let (batch, firsts) =
            node::engine::truncation(&self.store, &meet, &self.log_first, self.clock.last())
                .expect("the memory store does not fail");
        if !batch.log_removes.is_empty() {
            self.truncated += batch.log_removes.len() as u64;
            self.commit(now_ms, batch, false);
            self.log_first.extend(firsts);
        }
        if self.core.settled() {
            self.checkpoints.observe(&meet, &join);
        }
        let upto = self.checkpoints.stable();
        if self.graves_from > upto {
            return;
        }
        let collection =
            node::engine::collect_graves(&self.store, self.graves_from, upto, self.clock.last())
                .expect("the memory store does not fail");
        self.graves_from = collection.next_from;
        self.collected += collection.collected;
        if !collection.batch.grave_removes.is_empty() {
            self.commit(now_ms, collection.batch, false);
        }
    }

    /// Log entries it holds.
    pub fn log_len(&self) -> usize {
        (self.vv.iter())
            .map(|(origin, _)| {
                (self.store.log_range(origin.0, 0, usize::MAX))
                    .expect("the memory store does not fail")
                    .len()
            })
            .sum()
    }

    /// What holds its tombstones back: the barrier the oldest wait for, the members' meet.
    pub fn waiting_for(&self) -> String {
        let meet = self.core.truncatable();
        let (checkpoints, from) = (&self.checkpoints, self.graves_from);
        format!("checkpoints {checkpoints:?}, graves from {from:?}, the members hold {meet:?}")
    }

    /// Tombstones it holds (graves).
    pub fn graves(&self) -> u64 {
        self.store.count_graves().expect("memory")
    }

    /// Log entries of `origin` from `from` to `to`, as the store holds them; `None` when the
    /// log no longer holds the first (truncated, or a repair adopted it).
    pub fn log_range(&self, origin: NodeId, from: u64, to: u64) -> Option<Vec<Entry>> {
        let want = (to - from + 1) as usize;
        let entries =
            (self.store.log_range(origin.0, from, want)).expect("the memory store does not fail");
        if entries.first().map(|(seq, _)| *seq) != Some(from) {
            return None;
        }
        let entries = entries
            .into_iter()
            .take_while(|(seq, _)| *seq <= to)
            .map(|(_, bytes)| Entry::decode(&bytes).expect("the log holds what the node wrote"));
        Some(entries.collect())
    }

    /// What its store holds now, unchanged by later commits (what a repair it sends reads).
    pub fn view(&self) -> MemStore {
        self.store.snapshot()
    }

    /// Its digests, one per key bucket (what a peer repairing it compares).
    pub fn digests(&self) -> Vec<u64> {
        node::engine::digests(&self.store).expect("the memory store does not fail")
    }

    /// What its state holds.
    fn applied(&self) -> Applied {
        Applied {
            vv: self.vv.clone(),
            seen: self.seen.clone(),
        }
    }

    /// `from` begins a repair of the buckets in `differ`, with a state that covers `covers`.
    pub fn repair_begin(
        &mut self,
        now_ms: u64,
        from: NodeId,
        differ: Vec<bool>,
        covers: Applied,
    ) -> Result<(), String> {
        if self.repair.as_ref().is_some_and(|r| r.from() != from) {
            return Err("another peer's repair is in progress".into());
        }
        let repair = Repair::begin(from, differ, covers, now_ms)?;
        self.repair = Some(repair);
        self.checkpoints.repair_opened();
        Ok(())
    }

    /// One part of `from`'s repair: its items with keys in `(after, last]`.
    pub fn repair_part(
        &mut self,
        now_ms: u64,
        from: NodeId,
        after: Option<Bytes>,
        last: Option<Bytes>,
        changes: &[Change],
    ) -> Result<(), String> {
        let Some(repair) = self.repair.take_if(|r| r.from() == from) else {
            return Err("a repair part without its beginning".into());
        };
        let result = self.replace_range(now_ms, &repair, after, last, changes);
        self.repair = Some(repair);
        result
    }

    fn replace_range(
        &mut self,
        now_ms: u64,
        repair: &Repair,
        after: Option<Bytes>,
        last: Option<Bytes>,
        changes: &[Change],
    ) -> Result<(), String> {
        let mine = repair.items_in(&self.store, after, last.as_ref())?;
        let own = Repair::own_state(&self.store, &mine)?;
        let physical = self.physical_ms(now_ms);
        let txn = round(
            &self.store,
            &self.ends,
            &mut self.clock,
            self.origin,
            physical,
        );
        let finished = repair.replace(txn, &mine, own, changes)?;
        self.commit_learned(now_ms, finished.batch, false, finished.learned);
        Ok(())
    }

    /// `from`'s repair ended: the node holds what its state covered.
    pub fn repair_end(&mut self, now_ms: u64, from: NodeId) -> Result<(), String> {
        let Some(repair) = self.repair.as_ref().filter(|r| r.from() == from) else {
            return Err("a repair's end without its beginning".into());
        };
        let mut adopted = self.applied();
        adopted.merge(repair.covers());
        let batch = Batch {
            version_vector: Some(adopted.encode()),
            hlc: self.clock.last(),
            ..Batch::default()
        };
        (self.vv, self.seen) = (adopted.vv, adopted.seen);
        self.commit(now_ms, batch, false);
        // The log now has a gap before what follows the repair.
        self.log_first.clear();
        self.repairs += 1;
        self.repair_closed(now_ms, Some(from));
        Ok(())
    }

    /// `CLUSTER FORGET` of the member `id`, as the runtime and the engine carry it out.
    pub fn forget(&mut self, id: NodeId) {
        self.core.remove_peer(id);
        self.checkpoints.member_removed();
    }

    /// Whether it is receiving a repair.
    pub fn repairing(&self) -> bool {
        self.repair.is_some()
    }

    /// The repair from `from` (any, when `None`) stopped, finished or not.
    pub fn repair_closed(&mut self, now_ms: u64, from: Option<NodeId>) {
        let Some(repair) = self.repair.take_if(|r| from.is_none_or(|f| r.from() == f)) else {
            return;
        };
        let barrier = repair.barrier(&self.vv);
        let hlc = self.clock.last();
        self.checkpoints.repair_closed(now_ms, hlc, &barrier);
    }

    /// The process dies: everything not synced is gone.
    pub fn crash(&mut self) {
        self.up = false;
        self.repair = None;
        self.store = self.disk.snapshot();
        self.ends = Ends::default();
        self.unsynced.clear();
    }

    /// The disk of the stopped process is wiped: it will start empty, writing under a new id
    /// derived from `salt`.
    pub fn wipe(&mut self, salt: u64) {
        assert!(!self.up, "only a stopped node's disk is wiped");
        self.disk = MemStore::new();
        self.store = MemStore::new();
        self.ends = Ends::default();
        self.vv = VersionVector::new();
        self.durable = VersionVector::new();
        self.seen = crdt::Seen::default();
        let fresh = NodeId(self.id.0 ^ salt);
        self.origin = if fresh == self.origin || fresh == self.id {
            NodeId(fresh.0.wrapping_add(1))
        } else {
            fresh
        };
    }

    /// The process starts again from its disk (its gossip identity one newer).
    pub fn restart(&mut self, seed: u64) {
        self.up = true;
        self.incarnation += 1;
        self.gossip = membership_core(&self.name, self.region, self.incarnation + 1, seed);
        let stored = self.store.version_vector().expect("memory");
        let Applied { vv, seen } = Applied::from_stored(stored).expect("the node wrote it");
        self.seen = seen;
        let last = self.store.last_hlc().expect("memory");
        self.clock = Clock::resume(MAX_OFFSET_MS, last);
        self.state = engine_state();
        self.vv = vv.clone();
        self.durable = vv.clone();
        self.core = Replicator::new(self.origin, Config::default(), vv.clone(), vv.clone());
        // As the engine at start-up: every tombstone on disk waits for the vector now.
        self.checkpoints = Checkpoints::default();
        self.graves_from = Timestamp::ZERO;
        self.log_first.clear();
        if self.store.count_graves().expect("memory") > 0 {
            self.checkpoints.graves_written(0, last, &vv);
        }
    }

    /// Runs a read-only command against what the node holds.
    pub fn read(&mut self, now_ms: u64, words: &[&[u8]]) -> Reply {
        let executed = self.execute(now_ms, words);
        assert!(!executed.wrote, "{:?} is a read", words[0]);
        executed.reply
    }

    /// The stored header of `key`, for debugging.
    pub fn raw(&self, key: &[u8]) -> String {
        format!(
            "{:?}",
            self.store.get(key).expect("memory").map(|s| s.record)
        )
    }

    /// Every live key with what a client reads of it, in key order.
    pub fn dump(&mut self, now_ms: u64) -> Vec<(Bytes, String)> {
        let mut out = Vec::new();
        let mut after: Option<Bytes> = None;
        loop {
            let chunk = self
                .store
                .scan(after.as_deref(), 256)
                .expect("memory store");
            let Some((last, _)) = chunk.last() else {
                return out;
            };
            after = Some(last.clone());
            for (key, stored) in chunk {
                let read: &[&[u8]] = match stored.kind() {
                    None => continue,
                    Some(crdt::Kind::String) => &[b"GET", &key],
                    Some(crdt::Kind::Hash) => &[b"HGETALL", &key],
                    Some(crdt::Kind::Set) => &[b"SMEMBERS", &key],
                    Some(crdt::Kind::List) => &[b"LRANGE", &key, b"0", b"-1"],
                    Some(crdt::Kind::ZSet) => &[b"ZRANGE", &key, b"0", b"-1", b"WITHSCORES"],
                    Some(crdt::Kind::TimeSeries) => &[b"TS.RANGE", &key, b"-", b"+"],
                };
                let reply = self.read(now_ms, read);
                // A sorted set's walk reads the order the node keeps beside the members; walks
                // of both start where the node believes the live parts begin and end
                // (`engine/ends.rs`). The count in the key's header must match what they find.
                let (counter, found): (&[u8], _) = match &reply {
                    Reply::Pairs(items) => (b"ZCARD", items.len()),
                    Reply::Array(items) if stored.kind() == Some(crdt::Kind::List) => {
                        (b"LLEN", items.len())
                    }
                    _ => (b"", 0),
                };
                if !counter.is_empty() {
                    let count = self.read(now_ms, &[counter, &key]);
                    let found = Reply::Int(found as i64);
                    assert_eq!(count, found, "{key:?}: the walk found {found:?}");
                }
                out.push((key, format!("{reply:?}")));
            }
        }
    }
}

/// A round over `store` at `physical_ms`, as the engine begins one (no record cache, never
/// dropping deleted state: the simulated nodes always have peers).
fn round<'a>(
    store: &'a MemStore,
    ends: &'a Ends,
    clock: &'a mut Clock,
    origin: NodeId,
    physical_ms: u64,
) -> Txn<'a> {
    Txn::new(store, None, clock, origin, physical_ms, false).with_ends(ends)
}

/// The regions' names, by index into the delay matrix.
const REGIONS: [&str; 3] = ["eu", "us", "ap"];

/// A node's gossip core; its peer address is its name (the world routes by name).
fn membership_core(name: &str, region: usize, bump: u64, seed: u64) -> Membership {
    let me = MemberInfo {
        name: name.to_string(),
        region: REGIONS[region].to_string(),
        peer_addr: name.to_string(),
    };
    Membership::new(me, bump, seed)
}
