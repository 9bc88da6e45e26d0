//! Reclaiming state: the expiry sweep and tombstone collection.
//!
//! Both walk an index in storage in time order with a cursor kept here, so that a pass never
//! walks again over what earlier passes removed (an LSM keeps removed entries as tombstones
//! of its own until compaction drops them: walking them from the start on every tick is what
//! once kept an idle node busy). Both do a bounded amount per tick and go on at the next tick
//! while work is left, so they keep up with a burst without holding up clients' rounds.
//!
//! - **Expiry.** The `expiry` index holds each live key with a deadline under the time this
//!   node means to delete it (`txn::sweep_at`: the deadline when this node set it, a grace
//!   period later otherwise). A due key is deleted like a `DEL` from this node: the delete is
//!   logged and replicated, so the node that set a deadline expires the key for every region.
//! - **Collection.** The `graves` index holds each tombstone under the HLC of the commit that
//!   left it. [`Stability`] says up to which HLC tombstones are stable (every member applied
//!   every write concurrent with their deletes); graves up to there are collected: the item
//!   is removed if it is still the tombstone the grave names.

use super::txn::Part;
use super::{Engine, fingerprint, wall_ms};
use crate::engine::Writer;
use crdt::{Elem, Member, StrState, ZMember};
use hlc::Timestamp;
use replication::{Stability, VersionVector};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use storage::{Batch, Durability, Item, MemberKind, StorageError, Store};

/// Keys one expiry pass deletes at most (one commit, one log entry).
const EXPIRE_PER_PASS: usize = 2048;
/// Graves one collection pass reads at most.
const COLLECT_PER_PASS: usize = 4096;
/// How often the sweep looks for due keys when the last pass found all there was.
const SWEEP_PERIOD: Duration = Duration::from_millis(100);
/// Commits within this many ms share one stability checkpoint.
const CHECKPOINT_PERIOD_MS: u64 = 100;
/// Removals that make a compaction worth it at the least (see [`Engine::compact_if_worth_it`]).
const COMPACT_AFTER_REMOVALS_MIN: u64 = 1 << 16;
/// Most stability checkpoints kept (older ones are coalesced).
const CHECKPOINTS_MAX: usize = 1024;

/// When tombstones are stable: [`Stability`]'s checkpoints, with the tombstones of a repair
/// held to the vector its state covers. The engine and the simulator keep one each.
#[derive(Debug)]
pub struct Checkpoints {
    stability: Stability,
    /// A repair is being received: its tombstones' barrier is the vector its state covers,
    /// known once it ends, so no checkpoint is noted meanwhile.
    repairing: bool,
    /// Graves were written while a repair was open.
    deferred: bool,
}

impl Default for Checkpoints {
    fn default() -> Checkpoints {
        Checkpoints {
            stability: Stability::new(CHECKPOINT_PERIOD_MS, CHECKPOINTS_MAX),
            repairing: false,
            deferred: false,
        }
    }
}

impl Checkpoints {
    /// A commit at `hlc` that brought the node to `vv` wrote graves. Answers whether a
    /// checkpoint was noted (not while a repair is open).
    pub fn graves_written(&mut self, now_ms: u64, hlc: Timestamp, vv: &VersionVector) -> bool {
        if self.repairing {
            self.deferred = true;
            return false;
        }
        self.stability.note(now_ms, hlc, vv);
        true
    }

    /// A repair began: what it brings waits for the vector it covers, known when it ends.
    pub fn repair_opened(&mut self) {
        self.repairing = true;
    }

    /// The repair ended or stopped, with the node's clock at `hlc`: every grave written while
    /// it was open waits for `barrier` (the node's vector joined with what the repair's state
    /// covered). Answers whether a checkpoint was noted.
    pub fn repair_closed(&mut self, now_ms: u64, hlc: Timestamp, barrier: &VersionVector) -> bool {
        self.repairing = false;
        if !std::mem::take(&mut self.deferred) {
            return false;
        }
        self.stability.note(now_ms, hlc, barrier);
        true
    }

    /// The members hold `meet` each and `join` together.
    pub fn observe(&mut self, meet: &VersionVector, join: &VersionVector) {
        self.stability.observe(meet, join);
    }

    /// A member was removed (see [`Stability::member_removed`]).
    pub fn member_removed(&mut self) {
        self.stability.member_removed();
    }

    /// Graves up to this HLC are stable.
    pub fn stable(&self) -> Timestamp {
        self.stability.stable()
    }

    /// The barrier the oldest graves wait for.
    pub fn oldest_barrier(&self) -> Option<&VersionVector> {
        self.stability.oldest_barrier()
    }
}

/// The reclaimers' cursors and state.
pub(super) struct Reclaim {
    /// When tombstones are stable.
    pub(super) checkpoints: Checkpoints,
    /// Everything in the expiry index before this time was swept (or is newer than the
    /// index entries before it, see [`Engine::reclaimed`]).
    expiry_from: u64,
    /// The last expiry pass was cut short: go on at the next tick.
    sweep_again: bool,
    last_sweep: Option<Instant>,
    /// Graves before this HLC were collected.
    graves_from: Timestamp,
    /// Headers and members removed since the store was last compacted.
    removed: u64,
    /// A compaction is running (on a thread of its own).
    compacting: Arc<AtomicBool>,
}

impl Default for Reclaim {
    fn default() -> Reclaim {
        Reclaim {
            checkpoints: Checkpoints::default(),
            expiry_from: 0,
            sweep_again: false,
            last_sweep: None,
            graves_from: Timestamp::ZERO,
            removed: 0,
            compacting: Arc::default(),
        }
    }
}

impl Reclaim {
    /// Whether a pass was cut short and goes on at the next tick.
    pub(super) fn busy(&self) -> bool {
        self.sweep_again || self.graves_from <= self.checkpoints.stable()
    }
}

impl Engine {
    /// Bookkeeping after a commit that brought the node to `vv`: new index entries before
    /// the sweep's cursor pull it back, new graves join a stability checkpoint.
    pub(super) fn reclaimed(&mut self, batch: &Batch, vv: &VersionVector) {
        if let Some(earliest) = batch.expiry_puts.iter().map(|(at, _)| *at).min() {
            self.reclaim.expiry_from = self.reclaim.expiry_from.min(earliest);
        }
        self.reclaim.removed += (batch.removes.len() + batch.member_removes.len()) as u64;
        let graves = batch.graves.len() as i64 - batch.grave_removes.len() as i64;
        if !batch.graves.is_empty()
            && (self.reclaim.checkpoints).graves_written(wall_ms(), batch.hlc, vv)
        {
            self.publish_waiting();
        }
        super::add_signed(&self.stats.tombstones, graves);
    }

    /// Compacts the store on a thread of its own once removals since the last compaction
    /// outnumber the live keys (and at least [`COMPACT_AFTER_REMOVALS_MIN`]): iterations then
    /// cost what the live data costs again, and the rewrite's cost stays proportional to what
    /// was removed.
    fn compact_if_worth_it(&mut self) {
        let worth = COMPACT_AFTER_REMOVALS_MIN.max(self.state.live_keys);
        if self.reclaim.removed < worth || self.reclaim.compacting.swap(true, Ordering::AcqRel) {
            return;
        }
        let removed = std::mem::take(&mut self.reclaim.removed);
        let (store, compacting) = (self.store.clone(), self.reclaim.compacting.clone());
        let spawned = std::thread::Builder::new()
            .name("meridian-compact".into())
            .spawn(move || {
                let started = Instant::now();
                match store.compact() {
                    Ok(()) => tracing::info!(
                        removed,
                        seconds = started.elapsed().as_secs_f64(),
                        "compacted the store"
                    ),
                    Err(e) => tracing::error!(error = %e, "compacting the store failed"),
                }
                compacting.store(false, Ordering::Release);
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start a compaction");
            self.reclaim.compacting.store(false, Ordering::Release);
        }
    }

    /// Publishes the barrier the oldest tombstones wait for (for status pages).
    fn publish_waiting(&self) {
        let waiting = self.reclaim.checkpoints.oldest_barrier();
        let mut published = (self.stats.waiting_for.lock()).expect("no one panics holding it");
        if Some(&*published) != waiting {
            *published = waiting.cloned().unwrap_or_default();
        }
    }

    /// A repair ended: what it brought (and what was written meanwhile) waits for
    /// `barrier`, which holds what the repair's state covered.
    pub(super) fn snapshot_adopted(&mut self, barrier: &VersionVector) {
        let hlc = self.clock.last();
        if (self.reclaim.checkpoints).repair_closed(wall_ms(), hlc, barrier) {
            self.publish_waiting();
        }
    }

    /// The members hold `meet` each and `join` together.
    pub(super) fn observe_stable(&mut self, meet: &VersionVector, join: &VersionVector) {
        let removed = self.members_removed.load(Ordering::Relaxed);
        if removed != self.members_removed_seen {
            self.members_removed_seen = removed;
            self.reclaim.checkpoints.member_removed();
        }
        self.reclaim.checkpoints.observe(meet, join);
        self.publish_waiting();
    }

    /// One tick's share of reclaiming.
    pub(super) fn reclaim_tick(&mut self) {
        let now = Instant::now();
        let sweep = self.reclaim.sweep_again
            || (self.reclaim.last_sweep).is_none_or(|t| now.duration_since(t) >= SWEEP_PERIOD);
        if sweep {
            self.reclaim.last_sweep = Some(now);
            self.reclaim.sweep_again = self.expire_due();
            self.stats
                .disk_bytes
                .store(self.store.disk_bytes(), Ordering::Relaxed);
        }
        if self.reclaim.graves_from <= self.reclaim.checkpoints.stable() {
            self.collect();
        }
        // Once the sweeps are done with a burst, not in the middle of it.
        if !self.reclaim.busy() {
            self.compact_if_worth_it();
        }
    }

    /// Deletes keys whose sweep time passed, and drops index entries that no longer match
    /// their key. Answers whether the pass was cut short.
    fn expire_due(&mut self) -> bool {
        if self.writes_refused.load(Ordering::Relaxed) {
            return false;
        }
        let now_ms = wall_ms();
        let due = match self
            .store
            .due(self.reclaim.expiry_from, now_ms, EXPIRE_PER_PASS)
        {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "reading the expiry index failed");
                return false;
            }
        };
        let more = due.len() == EXPIRE_PER_PASS;
        // Entries at the last time seen may continue past the cut: read from it again.
        let next_from = match due.last() {
            Some((at, _)) if more => *at,
            _ => now_ms + 1,
        };
        if due.is_empty() {
            self.reclaim.expiry_from = next_from;
            return false;
        }
        let node = self.node;
        let (mut txn, _) = self.begin(now_ms);
        let mut expired = 0u64;
        for (at_ms, key) in due {
            let due = txn.raw(&key).is_some_and(|s| {
                super::sweep_at(&s.record, node) == Some(at_ms) && s.kind().is_some()
            });
            if due {
                let stamp = txn.stamp();
                txn.delete(&key, stamp);
                txn.event(&key, super::notify::code("expired"));
                expired += 1;
            }
            txn.remove_expiry_entry(at_ms, key);
        }
        let failed = txn.failed.take();
        let mut finished = txn.finish();
        finished.read.clear();
        if let Some(e) = failed {
            tracing::error!(error = %e, "reading keys to expire failed");
            return false;
        }
        match self.commit_local(finished) {
            Ok(_) => {
                self.reclaim.expiry_from = self.reclaim.expiry_from.max(next_from);
                metrics::counter!("meridian_expired_keys_total").increment(expired);
                self.stats.expired.fetch_add(expired, Ordering::Relaxed);
                more
            }
            Err(e) => {
                tracing::error!(error = %e, "committing expired keys failed");
                false
            }
        }
    }

    /// Collects stable graves, a bounded number per call.
    fn collect(&mut self) {
        let upto = self.reclaim.checkpoints.stable();
        let hlc = self.clock.last();
        let collection = collect_graves(self.store.as_ref(), self.reclaim.graves_from, upto, hlc);
        let Collection {
            batch,
            next_from,
            collected,
        } = match collection {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "collecting tombstones failed");
                return;
            }
        };
        if batch.grave_removes.is_empty() {
            self.reclaim.graves_from = next_from;
            return;
        }
        let released = batch.grave_removes.len() as i64;
        // Collection is durable at the next sync; a crash before it leaves the graves, and
        // they are collected again.
        let committed = self.store.commit(&batch, Durability::Buffer);
        self.windows_committed(&batch, None);
        match committed {
            Ok(()) => {
                self.unsynced.mark(Writer::Peers);
                self.written.committed(batch.removes.clone());
                for key in batch.removes {
                    self.cache.refresh(key, None);
                }
                self.reclaim.graves_from = next_from;
                self.reclaim.removed += collected;
                super::add_signed(&self.stats.tombstones, -released);
                self.stats.collected.fetch_add(collected, Ordering::Relaxed);
                metrics::counter!("meridian_tombstones_collected_total").increment(collected);
            }
            Err(e) => tracing::error!(error = %e, "collecting tombstones failed"),
        }
    }
}

/// What one collection pass removes.
pub struct Collection {
    /// The items removed and the graves released, to commit.
    pub batch: Batch,
    /// Where the next pass starts.
    pub next_from: Timestamp,
    /// How many items the batch removes.
    pub collected: u64,
}

/// One collection pass over `store`: the graves from `from` up to `upto` (at most
/// [`COLLECT_PER_PASS`]), each item removed if it is still the tombstone its grave was
/// written for, and every grave read released. `hlc` is the batch's (the node's clock). The
/// engine and the simulator both collect through this.
pub fn collect_graves(
    store: &dyn Store,
    from: Timestamp,
    upto: Timestamp,
    hlc: Timestamp,
) -> Result<Collection, StorageError> {
    let graves = store.graves(from, upto, COLLECT_PER_PASS)?;
    let next_from = match graves.last() {
        Some(g) if graves.len() == COLLECT_PER_PASS => g.hlc,
        _ => Timestamp(upto.0 + 1),
    };
    let mut batch = Batch {
        hlc,
        ..Batch::default()
    };
    for grave in graves {
        if still_the_tombstone(store, &grave)? {
            match &grave.item {
                Item::Header(key) => batch.removes.push(key.clone()),
                Item::Member(kind, key, name) => {
                    batch
                        .member_removes
                        .push((*kind, key.clone(), name.clone()))
                }
            }
        }
        batch.grave_removes.push((grave.hlc, grave.item));
    }
    let collected = (batch.removes.len() + batch.member_removes.len()) as u64;
    Ok(Collection {
        batch,
        next_from,
        collected,
    })
}

/// Whether the grave's item is still the tombstone the grave was written for: nothing live,
/// the same fingerprint.
fn still_the_tombstone(store: &dyn Store, grave: &storage::Grave) -> Result<bool, StorageError> {
    let print = match &grave.item {
        Item::Header(key) => store
            .get(key)?
            .filter(|s| s.kind().is_none())
            .map(|s| fingerprint(&s.encode())),
        Item::Member(kind, key, name) => store
            .get_member(*kind, key, name)?
            .filter(|b| !member_live(*kind, b))
            .map(|b| fingerprint(&b)),
    };
    Ok(print == Some(grave.fingerprint))
}

/// Whether a stored member state has anything live. One that does not decode counts as live,
/// so it is never collected for being unreadable.
fn member_live(kind: MemberKind, bytes: &[u8]) -> bool {
    fn live<T: Part>(bytes: &[u8]) -> bool {
        crdt::decode::<T>(bytes).map_or(true, |s| s.live())
    }
    match kind {
        MemberKind::Field => live::<StrState>(bytes),
        MemberKind::SetMember => live::<Member>(bytes),
        MemberKind::ListElem => live::<Elem>(bytes),
        MemberKind::ZMember => live::<ZMember>(bytes),
        MemberKind::Window => live::<timeseries::series::Window>(bytes),
        MemberKind::ZOrder => true,
    }
}
