//! One round of commands: reads see the round's own writes; writes collect into one batch.
//!
//! A key is a header ([`Stored`]: its record and live counts) plus, for hashes and sets, one
//! stored state per field or member. Every change is a CRDT delta merged into what the round
//! sees; the header's live counts follow each field's and member's liveness.

use super::RecordCache;
use super::ends::{Bounds, Ends, Learned};
use super::windows::WindowCache;
use bytes::Bytes;
use crdt::{Elem, Kind, Lens, Member, Merge, NodeId, Record, Stamp, StrState, ZMember};
use hlc::Clock;
use replication::Change;
use std::cell::RefCell;
use std::collections::BTreeMap;
use timeseries::header::Header as SeriesHeader;
use timeseries::series::Window;

/// Hash maps of the engine's hot path. foldhash (already in the build through hashbrown) made
/// pipelined writes 10-20% faster than SipHash in an A/B run with redis-benchmark -P 16. It is
/// seeded at random per process; the maps it serves are bounded (one round's keys).
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use storage::{Batch, Item, MemberKind, StateRead, StorageError, Stored};

/// How long past a key's deadline a node waits before it deletes the key itself, when the
/// deadline was set by another node. The node that set the deadline deletes the key at once
/// and its delete reaches every region (expiry replicates as a delete, see ARCHITECTURE.md);
/// the others step in only when it did not arrive, so one expiring key costs the cluster one
/// delete and not one per region. Reads never see an expired key either way.
pub const EXPIRY_GRACE_MS: u64 = 2000;

/// When this node means to reclaim the key: at its deadline when the deadline is this node's
/// write, [`EXPIRY_GRACE_MS`] later otherwise. The expiry index is kept in this time.
pub fn sweep_at(record: &Record, node: NodeId) -> Option<u64> {
    let (stamp, at) = record.expiry?;
    let at = at?;
    Some(if stamp.node == node {
        at
    } else {
        at.saturating_add(EXPIRY_GRACE_MS)
    })
}

/// A short hash of a tombstone's stored bytes, kept in its grave (see `storage::Grave`).
pub fn fingerprint(bytes: &[u8]) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    u64::from_be_bytes(
        digest[..8]
            .try_into()
            .expect("a SHA-256 digest has 32 bytes"),
    )
}

/// The deadline of a key that counts in `INFO keyspace`'s `expires` (live, with a deadline).
fn deadline(stored: Option<&Stored>) -> Option<u64> {
    stored
        .filter(|s| s.kind().is_some())?
        .record
        .expires_at_ms()
}

/// A key as the round left it, and whether it was live before the round touched it.
#[derive(Debug)]
pub(super) struct Touched {
    stored: Option<Stored>,
    live_before: bool,
    deadline_before: Option<u64>,
    dirty: bool,
    /// Read from the store (not the cache): worth caching even if the round fails.
    from_store: bool,
}

impl Touched {
    /// A key as read, not yet changed by the round.
    pub(super) fn read(stored: Option<Stored>, from_store: bool) -> Touched {
        let live_before = stored.as_ref().is_some_and(|s| s.kind().is_some());
        let deadline_before = deadline(stored.as_ref());
        Touched {
            stored,
            live_before,
            deadline_before,
            dirty: false,
            from_store,
        }
    }
}

/// A field or member as the round left it.
pub struct TouchedMember<T> {
    state: Option<T>,
    dirty: bool,
}

/// A round's parts of one kind: per key, by name, so that walks read them in order.
pub struct Parts<T>(HashMap<Bytes, BTreeMap<Bytes, TouchedMember<T>>>);

impl<T> Default for Parts<T> {
    fn default() -> Self {
        Parts(HashMap::default())
    }
}

impl<T> Parts<T> {
    fn get(&self, key: &Bytes, name: &Bytes) -> Option<&TouchedMember<T>> {
        self.0.get(key)?.get(name)
    }

    fn get_mut(&mut self, key: &Bytes, name: &Bytes) -> Option<&mut TouchedMember<T>> {
        self.0.get_mut(key)?.get_mut(name)
    }

    fn insert(&mut self, key: &Bytes, name: Bytes, part: TouchedMember<T>) {
        match self.0.get_mut(key) {
            Some(parts) => {
                parts.insert(name, part);
            }
            None => {
                self.0.insert(key.clone(), BTreeMap::from([(name, part)]));
            }
        }
    }

    /// The round's parts of `key`, by name.
    fn of(&self, key: &Bytes) -> Option<&BTreeMap<Bytes, TouchedMember<T>>> {
        self.0.get(key)
    }

    fn remove_key(&mut self, key: &Bytes) {
        self.0.remove(key);
    }

    /// Every part as `(key, name, part)`.
    fn into_parts(self) -> impl Iterator<Item = (Bytes, Bytes, TouchedMember<T>)> {
        (self.0.into_iter())
            .flat_map(|(key, parts)| parts.into_iter().map(move |(n, t)| (key.clone(), n, t)))
    }
}

/// The state of one stored part of a collection key: a hash field, a set member, a list
/// element. What differs between them is here; the round handles them all alike.
pub trait Part: Merge + Clone + Default + serde::Serialize + serde::de::DeserializeOwned {
    /// Where parts of this kind are stored.
    const STORED: MemberKind;
    /// The type of key they belong to.
    const TYPE: Kind;
    /// Whether the part counts (a live field, a present member or element).
    fn live(&self) -> bool;
    /// The header's live count of parts of this kind, when it keeps one.
    fn len(lens: &mut Lens) -> Option<&mut u64>;
    /// The round's parts of this kind.
    fn parts<'t>(txn: &'t mut Txn<'_>) -> &'t mut Parts<Self>;
    /// The round's parts of this kind, to read.
    fn parts_ref<'t>(txn: &'t Txn<'_>) -> &'t Parts<Self>;
    /// The change the log records for `delta`.
    fn change(key: Bytes, name: Bytes, delta: Self, stamp: Option<Stamp>) -> Change;
    /// The part's place in its key's order, when the key keeps one (a sorted set member's
    /// score, while it is in the set).
    fn order(&self) -> Option<f64> {
        None
    }
    /// The part as committed, from the engine's cache when it keeps parts of this kind
    /// decoded (taken out: the round moves it back in at commit).
    fn cached(_txn: &Txn<'_>, _key: &Bytes, _name: &Bytes) -> Option<Self> {
        None
    }
}

impl Part for StrState {
    const STORED: MemberKind = MemberKind::Field;
    const TYPE: Kind = Kind::Hash;
    fn live(&self) -> bool {
        self.exists()
    }
    fn len(lens: &mut Lens) -> Option<&mut u64> {
        Some(&mut lens.hash)
    }
    fn parts<'t>(txn: &'t mut Txn<'_>) -> &'t mut Parts<Self> {
        &mut txn.fields
    }
    fn parts_ref<'t>(txn: &'t Txn<'_>) -> &'t Parts<Self> {
        &txn.fields
    }
    fn change(key: Bytes, field: Bytes, delta: Self, stamp: Option<Stamp>) -> Change {
        let stamp = stamp.expect("a field write has a stamp");
        Change::Field {
            key,
            field,
            delta,
            stamp,
        }
    }
}

impl Part for Member {
    const STORED: MemberKind = MemberKind::SetMember;
    const TYPE: Kind = Kind::Set;
    fn live(&self) -> bool {
        self.present()
    }
    fn len(lens: &mut Lens) -> Option<&mut u64> {
        Some(&mut lens.set)
    }
    fn parts<'t>(txn: &'t mut Txn<'_>) -> &'t mut Parts<Self> {
        &mut txn.members
    }
    fn parts_ref<'t>(txn: &'t Txn<'_>) -> &'t Parts<Self> {
        &txn.members
    }
    fn change(key: Bytes, member: Bytes, delta: Self, stamp: Option<Stamp>) -> Change {
        Change::Member {
            key,
            member,
            delta,
            stamp,
        }
    }
}

impl Part for Elem {
    const STORED: MemberKind = MemberKind::ListElem;
    const TYPE: Kind = Kind::List;
    fn live(&self) -> bool {
        self.present()
    }
    fn len(lens: &mut Lens) -> Option<&mut u64> {
        Some(&mut lens.list)
    }
    fn parts<'t>(txn: &'t mut Txn<'_>) -> &'t mut Parts<Self> {
        &mut txn.elems
    }
    fn parts_ref<'t>(txn: &'t Txn<'_>) -> &'t Parts<Self> {
        &txn.elems
    }
    fn change(key: Bytes, pos: Bytes, delta: Self, stamp: Option<Stamp>) -> Change {
        Change::Elem {
            key,
            pos,
            delta,
            stamp,
        }
    }
}

impl Part for ZMember {
    const STORED: MemberKind = MemberKind::ZMember;
    const TYPE: Kind = Kind::ZSet;
    fn live(&self) -> bool {
        self.present()
    }
    fn len(lens: &mut Lens) -> Option<&mut u64> {
        Some(&mut lens.zset)
    }
    fn parts<'t>(txn: &'t mut Txn<'_>) -> &'t mut Parts<Self> {
        &mut txn.zmembers
    }
    fn parts_ref<'t>(txn: &'t Txn<'_>) -> &'t Parts<Self> {
        &txn.zmembers
    }
    fn change(key: Bytes, member: Bytes, delta: Self, stamp: Option<Stamp>) -> Change {
        Change::ZMember {
            key,
            member,
            delta,
            stamp,
        }
    }
    fn order(&self) -> Option<f64> {
        self.score()
    }
}

/// A window of a series' samples.
impl Part for Window {
    const STORED: MemberKind = MemberKind::Window;
    const TYPE: Kind = Kind::TimeSeries;
    fn live(&self) -> bool {
        Window::live(self)
    }
    fn len(lens: &mut Lens) -> Option<&mut u64> {
        Some(&mut lens.series)
    }
    fn parts<'t>(txn: &'t mut Txn<'_>) -> &'t mut Parts<Self> {
        &mut txn.windows
    }
    fn parts_ref<'t>(txn: &'t Txn<'_>) -> &'t Parts<Self> {
        &txn.windows
    }
    fn cached(txn: &Txn<'_>, key: &Bytes, name: &Bytes) -> Option<Self> {
        txn.window_cache?.borrow_mut().take(key, name)
    }
    fn change(key: Bytes, start: Bytes, delta: Self, stamp: Option<Stamp>) -> Change {
        Change::Window {
            key,
            start,
            delta,
            stamp,
        }
    }
}

/// The stored members of `key` with the round's versions of them on top, in byte order.
fn with_overlay<T: Clone>(
    stored: Vec<(Bytes, T)>,
    overlay: &Parts<T>,
    key: &Bytes,
) -> Vec<(Bytes, T)> {
    let mut all: BTreeMap<Bytes, T> = stored.into_iter().collect();
    for (name, t) in overlay.of(key).into_iter().flatten() {
        if let Some(state) = &t.state {
            all.insert(name.clone(), state.clone());
        }
    }
    all.into_iter().collect()
}

/// The parts a round wrote, as `(kind, key, name, live, encoded state)`.
fn drain<T: Part>(parts: Parts<T>, out: &mut Vec<(MemberKind, Bytes, Bytes, bool, Vec<u8>)>) {
    out.extend(parts.into_parts().filter_map(|(key, name, t)| {
        let state = t.state.filter(|_| t.dirty)?;
        Some((T::STORED, key, name, state.live(), crdt::encode(&state)))
    }));
}

/// What a finished round hands back to the engine.
pub struct Finished {
    /// The writes to commit.
    pub batch: Batch,
    /// The change in the number of live keys if the batch commits.
    pub live_delta: i64,
    /// The change in the number of live keys with a deadline if the batch commits.
    pub expires_delta: i64,
    /// The change in the sum of their deadlines (ms), for `INFO keyspace`'s `avg_ttl`.
    pub deadlines_delta: i128,
    /// The deltas merged, in order: what the change log records of this round.
    pub changes: Vec<Change>,
    /// Keys the round read from the store and did not change, with what it found.
    pub read: Vec<(Bytes, Option<Stored>)>,
    /// What the round's walks learned of where keys' live parts begin and end.
    pub learned: Vec<Learned>,
    /// Keyspace events to publish once the batch commits.
    pub events: Vec<(Bytes, u8)>,
    /// Keys written by clients' commands, with the client's id (`CLIENT TRACKING NOLOOP`).
    pub written_by: Vec<(Bytes, u64)>,
    /// A client's command emptied the keyspace.
    pub flushed: bool,
    /// The live windows of series the round held, decoded: what the store holds of them
    /// once the batch commits.
    pub windows: Vec<(Bytes, Bytes, Window)>,
}

/// The first and last names of a round's parts of a key.
fn names_span<T>(parts: &BTreeMap<Bytes, TouchedMember<T>>) -> Option<(Bytes, Bytes)> {
    let low = parts.first_key_value()?.0.clone();
    let high = parts.last_key_value()?.0.clone();
    Some((low, high))
}

/// How many members one step of a member walk reads.
const MEMBER_CHUNK: usize = 1024;

/// A walk over the stored members of `key` of one kind, with the round's on top, from just
/// past `from` (from the first or last when `None`).
struct Walk<'k> {
    kind: MemberKind,
    key: &'k Bytes,
    from: Option<Bytes>,
    backwards: bool,
    /// Where the key's live parts begin and end, as this round knows (`ends.rs`): a walk
    /// from an end starts there, and answers what it learned.
    bounds: Option<Bounds>,
}

impl Walk<'_> {
    /// Visits the members in order until `visit` returns false; `overlay` picks the round's
    /// members of the key out of `txn`, `live` tells which states count. A walk with bounds
    /// answers what it learned of them.
    fn run<T: serde::de::DeserializeOwned + Clone>(
        self,
        txn: &Txn<'_>,
        overlay: impl for<'t> Fn(&'t Txn<'_>) -> Option<&'t BTreeMap<Bytes, TouchedMember<T>>>,
        live: impl Fn(&T) -> bool,
        mut visit: impl FnMut(&Bytes, &T) -> bool,
    ) -> Result<Option<Bounds>, StorageError> {
        let Walk {
            kind,
            key,
            from,
            backwards,
            bounds,
        } = self;
        let empty = BTreeMap::new();
        let overlay = overlay(txn).unwrap_or(&empty);
        let store = txn.store;
        let from_store = !txn.forgotten.contains(key);
        let bounded = bounds.is_some();
        // Where the walk starts: just past `cursor`, or at `inclusive` itself.
        let mut cursor: Option<Bytes> = from;
        let mut inclusive: Option<Bytes> = None;
        if let Some(bounds) = bounds {
            if backwards {
                cursor = bounds.end;
            } else {
                inclusive = bounds.first;
            }
        }
        let start = inclusive.clone().or_else(|| cursor.clone());
        // What the walk learns: the first and last names it met, the first live one.
        let (mut met_first, mut met_last, mut first_live) = (None, None, None::<Bytes>);
        let mut note = |name: &Bytes, state: &T| {
            if met_first.is_none() {
                met_first = Some(name.clone());
            }
            met_last = Some(name.clone());
            if first_live.is_none() && live(state) {
                first_live = Some(name.clone());
            }
            visit(name, state)
        };
        // Most walks stop within a few parts (a push or pop at an end): read a few first and
        // more as the walk goes on (reading 1024 per push made LPUSH 50x slower).
        let mut want = 8;
        let completed = loop {
            let mut chunk = if !from_store {
                Vec::new()
            } else if backwards {
                store.scan_members_back(kind, key, cursor.as_deref(), want)?
            } else {
                let after = inclusive.as_deref().or(cursor.as_deref());
                store.scan_members(kind, key, after, want)?
            };
            // The chunk covers the names from the cursor to its last (to the end when the
            // store ran out): the round's parts in that span go in too, on top.
            let edge = (chunk.len() == want).then(|| chunk[chunk.len() - 1].0.clone());
            if let (Some(at), true) = (&inclusive, from_store) {
                // The scan starts past `at`: it is read by itself.
                if let Some(bytes) = store.get_member(kind, key, at)? {
                    chunk.insert(0, (at.clone(), bytes));
                }
            }
            want = (want * 4).min(MEMBER_CHUNK);
            use std::ops::Bound::{Excluded, Included, Unbounded};
            let (low, high) = if backwards {
                let high = cursor.as_ref().map_or(Unbounded, Excluded);
                (edge.as_ref().map_or(Unbounded, Included), high)
            } else {
                let low = match (&inclusive, &cursor) {
                    (Some(at), _) => Included(at),
                    (None, Some(c)) => Excluded(c),
                    (None, None) => Unbounded,
                };
                (low, edge.as_ref().map_or(Unbounded, Included))
            };
            let mine = (overlay.range::<Bytes, _>((low, high)))
                .filter_map(|(name, t)| Some((name, t.state.as_ref()?)));
            let mine: Box<dyn Iterator<Item = (&Bytes, &T)>> = match backwards {
                true => Box::new(mine.rev()),
                false => Box::new(mine),
            };
            // Both in walk order: merge them, the round's part over the stored one.
            let (mut stored, mut mine) = (chunk.into_iter().peekable(), mine.peekable());
            let go_on = loop {
                let from_stored = match (stored.peek(), mine.peek()) {
                    (None, None) => break true,
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (Some((s, _)), Some((m, _))) => (s < *m) != backwards && s != *m,
                };
                let visited = if from_stored {
                    let (name, bytes) = stored.next().expect("peeked");
                    let state = crdt::decode(&bytes).map_err(|e| StorageError::Corrupt {
                        key: String::from_utf8_lossy(key).into_owned(),
                        reason: e.to_string(),
                    })?;
                    note(&name, &state)
                } else {
                    let (name, state) = mine.next().expect("peeked");
                    stored.next_if(|(s, _)| s == name);
                    note(name, state)
                };
                if !visited {
                    break false;
                }
            };
            if !go_on || edge.is_none() {
                break go_on;
            }
            cursor = edge;
            inclusive = None;
        };
        if !bounded {
            return Ok(None);
        }
        let mut bounds = Bounds::default();
        match (first_live, backwards) {
            (Some(name), false) => bounds.first = Some(name),
            (Some(name), true) => bounds.end = Some(super::ends::after(&name)),
            // Nothing live from the start to the end: nothing live at all.
            (None, _) if completed => {
                let (low, high) = if backwards {
                    (met_last, met_first)
                } else {
                    (met_first, met_last)
                };
                bounds.first = high.map(|h| super::ends::after(&h)).or(start.clone());
                bounds.end = low.or(start);
            }
            (None, _) => return Ok(None),
        }
        Ok(Some(bounds))
    }
}

/// The state one round of commands works on: the store underneath, this round's changes on
/// top. Nothing reaches the store until [`Txn::finish`] hands back the batch.
pub struct Txn<'a> {
    store: &'a dyn StateRead,
    cache: Option<&'a RecordCache>,
    /// Decoded windows of series, as committed (`windows.rs`).
    window_cache: Option<&'a RefCell<WindowCache>>,
    clock: &'a mut Clock,
    node: NodeId,
    now_ms: u64,
    touched: HashMap<Bytes, Touched>,
    fields: Parts<StrState>,
    members: Parts<Member>,
    elems: Parts<Elem>,
    zmembers: Parts<ZMember>,
    windows: Parts<Window>,
    /// Sorted set order entries (`crdt::order_entry`) the round added (true) or removed.
    order: Parts<bool>,
    expiry_removes: Vec<(u64, Bytes)>,
    /// Whether state with nothing live is removed from storage. True for a cluster of one,
    /// where no peer can send a concurrent write that the tombstone would have to judge.
    drop_tombstones: bool,
    /// Changes merged so far (headers, fields, members): tells whether a command wrote.
    writes: u64,
    /// The deltas merged so far, in order.
    changes: Vec<Change>,
    /// Where in `changes` each window's change of this round is (see [`Txn::record`]).
    window_changes: HashMap<(Bytes, Bytes), usize>,
    /// Whether merged deltas are recorded in `changes`: not when replaying peers' entries,
    /// which are logged as they arrived.
    record_changes: bool,
    /// Keys whose stored state this round replaces (a repair, see `repair.rs`): reads see
    /// nothing of what is stored under them, and what the round does not write again goes.
    forgotten: std::collections::HashSet<Bytes>,
    /// The stored members of the forgotten keys.
    forgotten_members: Vec<(MemberKind, Bytes, Bytes)>,
    /// Set when a read failed: the round must not commit what it computed from a wrong view.
    pub failed: Option<StorageError>,
    /// Where the live parts of walked keys begin and end, when the round may use them.
    ends: Option<&'a Ends>,
    /// The keys the running command wrote so far, with whether each was live before it.
    command_writes: Vec<(Bytes, bool)>,
    command_keys: std::collections::HashSet<Bytes>,
    /// Keyspace events raised or applied this round: published if it commits.
    events: Vec<(Bytes, u8)>,
    /// Whose commands run now (a client id, 0 for none), and the keys each client wrote.
    writer: u64,
    written_by: Vec<(Bytes, u64)>,
    flushed: bool,
    /// Those bounds as this round knows them: learned by its walks, or taken from `ends`
    /// (widened over the round's parts), and widened by every part it makes live since.
    bounds: HashMap<(MemberKind, Bytes), Bounds>,
}

impl<'a> Txn<'a> {
    /// A round at physical time `now_ms`, reading through `cache` when given.
    pub fn new(
        store: &'a dyn StateRead,
        cache: Option<&'a RecordCache>,
        clock: &'a mut Clock,
        node: NodeId,
        now_ms: u64,
        drop_tombstones: bool,
    ) -> Self {
        Txn {
            store,
            cache,
            window_cache: None,
            clock,
            node,
            now_ms,
            touched: HashMap::default(),
            fields: Parts::default(),
            members: Parts::default(),
            elems: Parts::default(),
            zmembers: Parts::default(),
            windows: Parts::default(),
            order: Parts::default(),
            expiry_removes: Vec::new(),
            drop_tombstones,
            writes: 0,
            changes: Vec::new(),
            window_changes: HashMap::default(),
            record_changes: true,
            forgotten: Default::default(),
            forgotten_members: Vec::new(),
            failed: None,
            ends: None,
            bounds: HashMap::default(),
            command_writes: Vec::new(),
            command_keys: Default::default(),
            events: Vec::new(),
            writer: 0,
            written_by: Vec::new(),
            flushed: false,
        }
    }

    /// Reads windows of series through `cache` (taken out of it, put back at commit).
    pub fn with_windows(mut self, cache: &'a RefCell<WindowCache>) -> Self {
        self.window_cache = Some(cache);
        self
    }

    /// Lets walks from a key's ends start at its bounds (`ends.rs`).
    pub fn with_ends(mut self, ends: &'a Ends) -> Self {
        self.ends = Some(ends);
        self
    }

    /// Replaces what is stored under `key` (its header `stored`) with nothing: the round
    /// starts the key afresh, and whatever it does not write again is removed at commit.
    pub fn forget(&mut self, key: &Bytes, stored: &Stored) {
        for kind in [
            MemberKind::Field,
            MemberKind::SetMember,
            MemberKind::ListElem,
            MemberKind::ZMember,
            MemberKind::ZOrder,
            MemberKind::Window,
        ] {
            let mut after: Option<Bytes> = None;
            loop {
                let page =
                    match (self.store).scan_members(kind, key, after.as_deref(), MEMBER_CHUNK) {
                        Ok(page) => page,
                        Err(e) => return self.fail(e),
                    };
                let done = page.len() < MEMBER_CHUNK;
                after = page.last().map(|(m, _)| m.clone());
                (self.forgotten_members)
                    .extend(page.into_iter().map(|(m, _)| (kind, key.clone(), m)));
                if done {
                    break;
                }
            }
        }
        self.fields.remove_key(key);
        self.members.remove_key(key);
        self.elems.remove_key(key);
        self.zmembers.remove_key(key);
        self.windows.remove_key(key);
        self.order.remove_key(key);
        self.bounds.retain(|(_, k), _| k != key);
        self.writes += 1;
        self.touched.insert(
            key.clone(),
            Touched {
                stored: None,
                live_before: stored.kind().is_some(),
                deadline_before: deadline(Some(stored)),
                dirty: true,
                from_store: false,
            },
        );
        self.forgotten.insert(key.clone());
    }

    /// Makes this a round that replays about `changes` deltas of peers' entries: the deltas
    /// are not recorded again (the entries are logged as they arrived), and the key map is
    /// sized for them up front (growing it showed in the profile of a catch-up).
    pub fn replaying(&mut self, changes: usize) {
        self.record_changes = false;
        self.touched
            .reserve(changes.saturating_sub(self.touched.len()));
    }

    /// Headers read from the store before the round began, still true (see `ahead.rs`): the
    /// round uses them instead of reading again. A round that has touched nothing yet takes
    /// the map as it is (re-inserting a batch's keys showed in the profile of a catch-up).
    pub(super) fn preload(&mut self, headers: HashMap<Bytes, Touched>) {
        if self.touched.is_empty() {
            self.touched = headers;
            return;
        }
        for (key, touched) in headers {
            self.touched.entry(key).or_insert(touched);
        }
    }

    /// A command starts: [`Txn::command_writes`] tells what it writes.
    pub fn begin_command(&mut self) {
        self.command_keys.clear();
        self.command_writes.clear();
    }

    /// The keys the command since [`Txn::begin_command`] wrote, in the order it first wrote
    /// them, each with whether it was live before.
    pub fn command_writes(&mut self) -> Vec<(Bytes, bool)> {
        self.command_keys.clear();
        if self.writer != 0 {
            let writer = self.writer;
            (self.written_by).extend(self.command_writes.iter().map(|(k, _)| (k.clone(), writer)));
        }
        std::mem::take(&mut self.command_writes)
    }

    /// A client's command emptied the keyspace (`FLUSHALL`, `FLUSHDB`).
    pub fn flushed(&mut self) {
        self.flushed = true;
    }

    /// The commands from here on are client `writer`'s (0: no client's).
    pub fn set_writer(&mut self, writer: u64) {
        self.writer = writer;
    }

    /// A keyspace event on `key` (`notify.rs`): logged with the round's changes, published
    /// once the round commits.
    pub fn event(&mut self, key: &Bytes, event: u8) {
        if crate::acl::is_reserved(key) {
            return; // writes to Meridian's own keys raise no client-visible event
        }
        self.record(|| Change::Event {
            key: key.clone(),
            event,
        });
        self.events.push((key.clone(), event));
    }

    fn record(&mut self, change: impl FnOnce() -> Change) {
        if !self.record_changes {
            return;
        }
        // A round's writes to one window of a series go into one change: merged, they are
        // the same delta (merges are joins, so where in the entry it sits changes nothing),
        // and the log holds one window per round instead of one per sample.
        match change() {
            Change::Window {
                key,
                start,
                delta,
                stamp,
            } => match self.window_changes.get(&(key.clone(), start.clone())) {
                Some(&at) => {
                    if let Some(Change::Window {
                        delta: mine,
                        stamp: top,
                        ..
                    }) = self.changes.get_mut(at)
                    {
                        mine.merge(&delta);
                        *top = (*top).max(stamp);
                    }
                }
                None => {
                    self.window_changes
                        .insert((key.clone(), start.clone()), self.changes.len());
                    self.changes.push(Change::Window {
                        key,
                        start,
                        delta,
                        stamp,
                    });
                }
            },
            change => self.changes.push(change),
        }
    }

    /// The round's physical time in milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// A fresh stamp for one write.
    pub fn stamp(&mut self) -> Stamp {
        Stamp::new(self.clock.now(self.now_ms), self.node)
    }

    /// Advances the clock past a peer's timestamp, or refuses one too far ahead.
    pub fn observe(&mut self, now_ms: u64, remote: hlc::Timestamp) -> Result<(), hlc::ClockError> {
        self.clock.observe(now_ms, remote).map(|_| ())
    }

    fn fail(&mut self, e: StorageError) {
        tracing::error!(error = %e, "read failed");
        self.failed.get_or_insert(e);
    }

    /// The key's header as this round sees it, expired or not. A storage failure reads as
    /// absent and marks the round failed, so nothing computed from it is committed.
    pub fn raw(&mut self, key: &Bytes) -> Option<&Stored> {
        if !self.touched.contains_key(key) {
            let cached = self.cache.and_then(|c| c.get(key));
            let from_store = cached.is_none();
            let stored = match cached {
                Some(s) => s,
                None => self.store.get(key).unwrap_or_else(|e| {
                    self.fail(e);
                    None
                }),
            };
            self.touched
                .insert(key.clone(), Touched::read(stored, from_store));
        }
        self.touched[key].stored.as_ref()
    }

    /// The key's header if it is live now (present and not expired).
    pub fn live(&mut self, key: &Bytes) -> Option<&Stored> {
        let now_ms = self.now_ms;
        self.raw(key).filter(|s| s.live_kind(now_ms).is_some())
    }

    /// The header a write starts from. An expired key is deleted first, as Redis does, so the
    /// write creates a fresh key with no leftover parts or deadline.
    pub fn for_write(&mut self, key: &Bytes) -> Stored {
        let now_ms = self.now_ms;
        let expired = self.raw(key).is_some_and(|s| s.record.expired(now_ms));
        if expired {
            let stamp = self.stamp();
            self.delete(key, stamp);
        }
        self.raw(key).cloned().unwrap_or_default()
    }

    fn header_mut(&mut self, key: &Bytes) -> &mut Stored {
        let now_ms = self.now_ms;
        let live = self.raw(key).is_some_and(|s| s.live_kind(now_ms).is_some());
        if self.command_keys.insert(key.clone()) {
            self.command_writes.push((key.clone(), live));
        }
        self.writes += 1;
        let entry = self.touched.get_mut(key).expect("raw() inserted the key");
        entry.dirty = true;
        entry.stored.get_or_insert_with(Stored::default)
    }

    /// Merges a header delta into the key.
    pub fn apply(&mut self, key: &Bytes, delta: &Record) {
        self.header_mut(key).record.merge(delta);
        self.record(|| Change::Header {
            key: key.clone(),
            delta: delta.clone(),
        });
    }

    /// Merges a delta into the key's series header.
    pub fn apply_series(&mut self, key: &Bytes, delta: &SeriesHeader) {
        (self.header_mut(key).series.get_or_insert_default()).merge(delta);
        self.record(|| Change::Series {
            key: key.clone(),
            delta: delta.clone(),
        });
    }

    /// Merges a delta that a peer's log entry carries, exactly as its origin merged it.
    pub fn apply_change(&mut self, change: &Change) {
        match change {
            Change::Header { key, delta } => self.apply(key, delta),
            Change::Field {
                key,
                field,
                delta,
                stamp,
            } => self.apply_field(key, field, delta, *stamp),
            Change::Member {
                key,
                member,
                delta,
                stamp,
            } => self.apply_member(key, member, delta, *stamp),
            Change::Elem {
                key,
                pos,
                delta,
                stamp,
            } => self.apply_part(key, pos, delta, *stamp),
            Change::ZMember {
                key,
                member,
                delta,
                stamp,
            } => self.apply_part(key, member, delta, *stamp),
            Change::Series { key, delta } => self.apply_series(key, delta),
            Change::Window {
                key,
                start,
                delta,
                stamp,
            } => self.apply_part(key, start, delta, *stamp),
            Change::Event { key, event } => self.event(key, *event),
        }
    }

    /// A hash field's state, live or not.
    pub fn field(&mut self, key: &Bytes, name: &Bytes) -> Option<StrState> {
        self.part(key, name)
    }

    /// A set member's state, present or not.
    pub fn member(&mut self, key: &Bytes, name: &Bytes) -> Option<Member> {
        self.part(key, name)
    }

    /// A part's state (field, member, element), live or not.
    pub fn part<T: Part>(&mut self, key: &Bytes, name: &Bytes) -> Option<T> {
        if let Some(t) = T::parts(self).get(key, name) {
            return t.state.clone();
        }
        let state = self.load_part::<T>(key, name);
        T::parts(self).insert(
            key,
            name.clone(),
            TouchedMember {
                state: state.clone(),
                dirty: false,
            },
        );
        state
    }

    /// Runs `read` on a part's state as this round sees it (loaded once a round), without a
    /// copy of it: a window of a series holds thousands of samples.
    pub fn with_part<T: Part, R>(
        &mut self,
        key: &Bytes,
        name: &Bytes,
        read: impl FnOnce(Option<&T>) -> R,
    ) -> R {
        if T::parts(self).get(key, name).is_none() {
            let state = self.load_part::<T>(key, name);
            let part = TouchedMember {
                state,
                dirty: false,
            };
            T::parts(self).insert(key, name.clone(), part);
        }
        read(T::parts(self).get(key, name).and_then(|t| t.state.as_ref()))
    }

    /// A part's state, moved out of the round (the caller puts it back, changed): no copy.
    fn take_part<T: Part>(&mut self, key: &Bytes, name: &Bytes) -> Option<T> {
        if let Some(t) = T::parts(self).get_mut(key, name) {
            return t.state.take();
        }
        self.load_part::<T>(key, name)
    }

    /// A part as committed: from the engine's cache of its kind, else from the store.
    fn load_part<T: Part>(&mut self, key: &Bytes, name: &Bytes) -> Option<T> {
        if self.forgotten.contains(key) {
            return None;
        }
        T::cached(self, key, name).or_else(|| self.load_member(T::STORED, key, name))
    }

    fn load_member<T: serde::de::DeserializeOwned>(
        &mut self,
        kind: MemberKind,
        key: &[u8],
        name: &[u8],
    ) -> Option<T> {
        if self.forgotten.contains(key) {
            return None;
        }
        let bytes = match self.store.get_member(kind, key, name) {
            Ok(b) => b?,
            Err(e) => {
                self.fail(e);
                return None;
            }
        };
        match crdt::decode(&bytes) {
            Ok(state) => Some(state),
            Err(e) => {
                let key = String::from_utf8_lossy(key).into_owned();
                self.fail(StorageError::Corrupt {
                    key,
                    reason: e.to_string(),
                });
                None
            }
        }
    }

    /// Merges `delta` into a hash field written at `stamp`, keeping the header in step.
    pub fn apply_field(&mut self, key: &Bytes, name: &Bytes, delta: &StrState, stamp: Stamp) {
        self.apply_part(key, name, delta, Some(stamp));
    }

    /// Merges `delta` into a set member, keeping the header in step. `stamp` is the write's
    /// stamp when it adds.
    pub fn apply_member(
        &mut self,
        key: &Bytes,
        name: &Bytes,
        delta: &Member,
        stamp: Option<Stamp>,
    ) {
        self.apply_part(key, name, delta, stamp);
    }

    /// Merges `delta` into a part of `key` (a field, member or element), keeping the header
    /// in step: its live count, and its latest write when `stamp` (the write's) is given.
    pub fn apply_part<T: Part>(
        &mut self,
        key: &Bytes,
        name: &Bytes,
        delta: &T,
        stamp: Option<Stamp>,
    ) {
        let mut state: T = self.take_part(key, name).unwrap_or_default();
        let before = state.live();
        let placed = state.order();
        state.merge(delta);
        let after = state.live();
        let place = state.order();
        if placed != place {
            self.reorder(key, name, placed, place);
        }
        if after {
            self.widen_bounds(T::STORED, key, name);
        }
        T::parts(self).insert(
            key,
            name.clone(),
            TouchedMember {
                state: Some(state),
                dirty: true,
            },
        );
        let header = self.header_mut(key);
        if let Some(stamp) = stamp {
            header.touch(stamp, T::TYPE);
        }
        if let Some(len) = T::len(&mut header.lens) {
            *len = *len + u64::from(after) - u64::from(before);
        }
        self.record(|| T::change(key.clone(), name.clone(), delta.clone(), stamp));
    }

    /// Moves a sorted set member in its key's order, from `placed` to `place`.
    fn reorder(&mut self, key: &Bytes, name: &Bytes, placed: Option<f64>, place: Option<f64>) {
        let moves = [(placed, false), (place, true)];
        for (score, live) in moves {
            if let Some(score) = score {
                let entry = Bytes::from(crdt::order_entry(score, name));
                if live {
                    self.widen_bounds(MemberKind::ZOrder, key, &entry);
                }
                let state = Some(live);
                (self.order).insert(key, entry, TouchedMember { state, dirty: true });
            }
        }
    }

    /// Walks the sorted set at `key` in order (from the highest when `backwards`), from just
    /// past the order entry prefix `from` (`crdt::order_entry`, or a score's
    /// `crdt::score_key`), as this round sees it, visiting `(score, member)` until `visit`
    /// returns false.
    pub fn walk_order(
        &mut self,
        key: &Bytes,
        from: Option<Bytes>,
        backwards: bool,
        mut visit: impl FnMut(f64, &[u8]) -> bool,
    ) {
        let bounds = from
            .is_none()
            .then(|| self.bounds_of(MemberKind::ZOrder, key))
            .flatten();
        let walk = Walk {
            kind: MemberKind::ZOrder,
            key,
            from,
            backwards,
            bounds,
        };
        let walked = walk.run(
            self,
            |txn| txn.order.of(key),
            |live| *live,
            |entry, live| match crdt::split_order_entry(entry) {
                Some((score, member)) if *live => visit(score, member),
                _ => true,
            },
        );
        self.walked(MemberKind::ZOrder, key, walked);
    }

    /// Every field of a hash (live or not), in byte order, as this round sees them.
    pub fn all_fields(&mut self, key: &Bytes) -> Vec<(Bytes, StrState)> {
        self.all_parts(key)
    }

    /// Every member of a set (present or not), in byte order, as this round sees them.
    pub fn all_members(&mut self, key: &Bytes) -> Vec<(Bytes, Member)> {
        self.all_parts(key)
    }

    /// Every part of `key` of one kind (live or not), in byte order, as this round sees them.
    pub fn all_parts<T: Part>(&mut self, key: &Bytes) -> Vec<(Bytes, T)> {
        let stored = self.scan_all_members(T::STORED, key);
        with_overlay(stored, T::parts(self), key)
    }

    /// Walks the parts of `key` of one kind in byte order (from the last when `backwards`),
    /// live or not, as this round sees them, until `visit` returns false. The store is read a
    /// chunk at a time, so a walk that stops early reads little of a long list.
    pub fn walk_parts<T: Part>(
        &mut self,
        key: &Bytes,
        backwards: bool,
        visit: impl FnMut(&Bytes, &T) -> bool,
    ) {
        let walk = Walk {
            kind: T::STORED,
            key,
            from: None,
            backwards,
            bounds: self.bounds_of(T::STORED, key),
        };
        let walked = walk.run(self, |txn| T::parts_ref(txn).of(key), T::live, visit);
        self.walked(T::STORED, key, walked);
    }

    /// Walks the parts of `key` of one kind in byte order from just past `after` (from the
    /// first when `None`), live or not, as this round sees them, until `visit` returns false.
    pub fn walk_parts_after<T: Part>(
        &mut self,
        key: &Bytes,
        after: Option<Bytes>,
        visit: impl FnMut(&Bytes, &T) -> bool,
    ) {
        let walk = Walk {
            kind: T::STORED,
            key,
            from: after,
            backwards: false,
            bounds: None,
        };
        let walked = walk.run(self, |txn| T::parts_ref(txn).of(key), T::live, visit);
        self.walked(T::STORED, key, walked);
    }

    /// The names of up to `limit` keys at the far end of the key space, as committed (a
    /// sample for a random pick: the round's own writes are left out).
    pub fn last_keys(&mut self, limit: usize) -> Vec<Bytes> {
        match self.store.last_keys(limit) {
            Ok(mut keys) => {
                keys.retain(|k| !crate::acl::is_reserved(k));
                keys
            }
            Err(e) => {
                self.fail(e);
                Vec::new()
            }
        }
    }

    /// Where the live parts of `key` of `kind` begin and end as this round knows, when walks
    /// of the kind keep bounds. The first time a round asks, it takes what earlier rounds
    /// learned, widened over every part the round holds of the key.
    fn bounds_of(&mut self, kind: MemberKind, key: &Bytes) -> Option<Bounds> {
        let ends = self.ends.filter(|_| super::ends::bounded(kind))?;
        let id = (kind, key.clone());
        if let Some(b) = self.bounds.get(&id) {
            return Some(b.clone());
        }
        let mut b = ends.get(kind, key);
        let held = match kind {
            MemberKind::ListElem => self.elems.of(key).map(names_span),
            _ => self.order.of(key).map(names_span),
        };
        if let Some(Some((low, high))) = held {
            b.widen(&low);
            b.widen(&high);
        }
        self.bounds.insert(id, b.clone());
        Some(b)
    }

    /// Takes in what a walk found: a failed read, or bounds learned.
    fn walked(
        &mut self,
        kind: MemberKind,
        key: &Bytes,
        walked: Result<Option<Bounds>, StorageError>,
    ) {
        match walked {
            Ok(Some(learned)) => {
                let b = self.bounds.entry((kind, key.clone())).or_default();
                if learned.first.is_some() {
                    b.first = learned.first;
                }
                if learned.end.is_some() {
                    b.end = learned.end;
                }
            }
            Ok(None) => {}
            Err(e) => self.fail(e),
        }
    }

    /// Widens the round's bounds of `key` over a part it made live.
    fn widen_bounds(&mut self, kind: MemberKind, key: &Bytes, name: &Bytes) {
        if let Some(b) = self.bounds.get_mut(&(kind, key.clone())) {
            b.widen(name);
        }
    }

    fn scan_all_members<T: serde::de::DeserializeOwned>(
        &mut self,
        kind: MemberKind,
        key: &Bytes,
    ) -> Vec<(Bytes, T)> {
        let mut out = Vec::new();
        if self.forgotten.contains(key) {
            return out;
        }
        let mut after: Option<Bytes> = None;
        loop {
            let chunk = match self
                .store
                .scan_members(kind, key, after.as_deref(), MEMBER_CHUNK)
            {
                Ok(c) => c,
                Err(e) => {
                    self.fail(e);
                    return out;
                }
            };
            let done = chunk.len() < MEMBER_CHUNK;
            after = chunk.last().map(|(m, _)| m.clone());
            for (name, bytes) in chunk {
                match crdt::decode(&bytes) {
                    Ok(state) => out.push((name, state)),
                    Err(e) => {
                        let key = String::from_utf8_lossy(key).into_owned();
                        self.fail(StorageError::Corrupt {
                            key,
                            reason: e.to_string(),
                        });
                        return out;
                    }
                }
            }
            if done {
                return out;
            }
        }
    }

    /// Removes every live field and member of the key, as observed here.
    pub fn clear_collections(&mut self, key: &Bytes, stamp: Stamp) {
        let lens = self.raw(key).map(|s| s.lens).unwrap_or_default();
        if lens.hash > 0 {
            for (name, field) in self.all_fields(key) {
                if field.exists() {
                    self.apply_field(key, &name, &field.delete_delta(stamp), stamp);
                }
            }
        }
        if lens.set > 0 {
            for (name, member) in self.all_members(key) {
                if member.present() {
                    self.apply_member(key, &name, &member.remove_delta(), None);
                }
            }
        }
        if lens.list > 0 {
            for (pos, elem) in self.all_parts::<Elem>(key) {
                if elem.present() {
                    self.apply_part(key, &pos, &elem.remove_delta(), None);
                }
            }
        }
        if lens.zset > 0 {
            for (name, member) in self.all_parts::<ZMember>(key) {
                if member.present() {
                    self.apply_part(key, &name, &member.remove_delta(stamp), None);
                }
            }
        }
    }

    /// Deletes the key at `stamp`: its string, fields and members as observed here, and its
    /// deadline.
    pub fn delete(&mut self, key: &Bytes, stamp: Stamp) {
        self.clear_collections(key, stamp);
        // A series: its settings reset (the header's delete) and every window's samples
        // removed as observed here (a sample written concurrently elsewhere, in a window this
        // node did not hold, stays, as a concurrent add to a set does), so the windows become
        // tombstones collected like any.
        if self.raw(key).and_then(|s| s.series.as_ref()).is_some() {
            for (start, window) in self.all_parts::<Window>(key) {
                if window.live() {
                    let mut delta = Window::default();
                    delta.delete(timeseries::series::Delete {
                        from: i64::MIN,
                        to: i64::MAX,
                        stamp,
                    });
                    self.apply_part(key, &start, &delta, None);
                }
            }
            let delta = SeriesHeader {
                deleted: Some(stamp),
                ..SeriesHeader::default()
            };
            self.apply_series(key, &delta);
        }
        let delta = self
            .raw(key)
            .map(|s| s.record.delete_delta(stamp))
            .unwrap_or_default();
        self.apply(key, &delta);
    }

    /// Whether this round wrote `key` so far.
    pub fn wrote(&self, key: &Bytes) -> bool {
        self.touched.get(key).is_some_and(|t| t.dirty)
    }

    /// How many keys this round's changes so far would add (or, negative, remove).
    pub fn live_delta(&self) -> i64 {
        self.touched
            .iter()
            .filter(|(k, t)| t.dirty && !crate::acl::is_reserved(k))
            .map(|(_, t)| {
                i64::from(t.stored.as_ref().is_some_and(|s| s.kind().is_some()))
                    - i64::from(t.live_before)
            })
            .sum()
    }

    /// How many changes this round has merged so far; unchanged across a command that did
    /// not write.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// Up to about `limit` headers after `after` in key order, as this round sees them: the
    /// store's with this round's changes on top, including keys this round created.
    pub fn scan(
        &mut self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Stored)>, StorageError> {
        let stored = self.store.scan(after, limit)?;
        // Past the last stored key returned, the store may hold more: only round keys up to
        // it can be merged in. When the store ran out, every later round key belongs here.
        let upper = if stored.len() == limit {
            stored.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        let mut merged: BTreeMap<Bytes, Option<Stored>> =
            stored.into_iter().map(|(k, r)| (k, Some(r))).collect();
        for (key, t) in &self.touched {
            let after_ok = after.is_none_or(|a| key.as_ref() > a);
            let upper_ok = upper.as_ref().is_none_or(|u| key <= u);
            // A key the store returned shows as this round left it; a key this round wrote
            // joins the list when it falls inside the range the store covered.
            if (t.dirty && after_ok && upper_ok) || merged.contains_key(key) {
                merged.insert(key.clone(), t.stored.clone());
            }
        }
        // Meridian's own keys (`acl::RESERVED_PREFIX`) are no client's to list.
        Ok(merged
            .into_iter()
            .filter(|(k, _)| !crate::acl::is_reserved(k))
            .filter_map(|(k, r)| r.map(|r| (k, r)))
            .collect())
    }

    /// Drops a stale expiry index entry.
    pub fn remove_expiry_entry(&mut self, at_ms: u64, key: Bytes) {
        self.expiry_removes.push((at_ms, key));
    }

    /// The batch to commit, the change in live keys it makes, and what the round read. Every
    /// header, field or member the round leaves with nothing live is either removed (a
    /// cluster of one) or kept as a tombstone with a grave, to be collected once stable.
    pub fn finish(self) -> Finished {
        let mut batch = Batch {
            expiry_removes: self.expiry_removes,
            hlc: self.clock.last(),
            ..Batch::default()
        };
        let mut live_delta = 0i64;
        let mut expires_delta = 0i64;
        let mut deadlines_delta = 0i128;
        let mut read = Vec::new();
        let failed = self.failed.is_some();
        for (key, t) in self.touched {
            if !t.dirty {
                if t.from_store && !failed {
                    read.push((key, t.stored));
                }
                continue;
            }
            let Some(stored) = t.stored else {
                // Forgotten and not written again.
                debug_assert!(self.forgotten.contains(&key));
                live_delta -= i64::from(t.live_before);
                expires_delta -= i64::from(t.deadline_before.is_some());
                deadlines_delta -= i128::from(t.deadline_before.unwrap_or(0));
                batch.removes.push(key);
                continue;
            };
            let live_after = stored.kind().is_some();
            // Meridian's own keys are not counted among the clients' keys.
            if !crate::acl::is_reserved(&key) {
                live_delta += i64::from(live_after) - i64::from(t.live_before);
            }
            let deadline_after = deadline(Some(&stored));
            expires_delta +=
                i64::from(deadline_after.is_some()) - i64::from(t.deadline_before.is_some());
            deadlines_delta += i128::from(deadline_after.unwrap_or(0))
                - i128::from(t.deadline_before.unwrap_or(0));
            if live_after && let Some(at) = sweep_at(&stored.record, self.node) {
                batch.expiry_puts.push((at, key.clone()));
            }
            if live_after {
                batch.puts.push((key, stored));
            } else if self.drop_tombstones {
                batch.removes.push(key);
            } else {
                let print = fingerprint(&stored.encode());
                batch.graves.push((Item::Header(key.clone()), print));
                batch.puts.push((key, stored));
            }
        }
        let mut members = Vec::new();
        drain(self.fields, &mut members);
        drain(self.members, &mut members);
        drain(self.elems, &mut members);
        drain(self.zmembers, &mut members);
        // Windows are encoded like the other parts and also handed back decoded, for the
        // engine's cache once the batch commits (those the round only read too).
        let mut windows = Vec::new();
        for (key, name, t) in self.windows.into_parts() {
            let Some(state) = t.state else { continue };
            let live = state.live();
            if t.dirty {
                let bytes = crdt::encode(&state);
                members.push((MemberKind::Window, key.clone(), name.clone(), live, bytes));
            }
            if live && !failed {
                windows.push((key, name, state));
            }
        }
        // Order entries are derived: stored while live, removed otherwise, never tombstones.
        let (placed, unplaced): (Vec<_>, Vec<_>) = (self.order.into_parts())
            .filter(|(_, _, t)| t.dirty)
            .partition(|(_, _, t)| t.state == Some(true));
        let placed: Vec<_> = (placed.into_iter())
            .map(|(key, entry, _)| (MemberKind::ZOrder, key, entry, crdt::encode(&true)))
            .collect();
        (batch.member_removes).extend(
            unplaced
                .into_iter()
                .map(|(key, entry, _)| (MemberKind::ZOrder, key, entry)),
        );
        let written: std::collections::HashSet<(MemberKind, &Bytes, &Bytes)> = (members.iter())
            .map(|(kind, k, m, _, _)| (*kind, k, m))
            .chain(placed.iter().map(|(kind, k, m, _)| (*kind, k, m)))
            .collect();
        let gone: Vec<_> = (self.forgotten_members.into_iter())
            .filter(|(kind, k, m)| !written.contains(&(*kind, k, m)))
            .collect();
        drop(written);
        batch.member_removes.extend(gone);
        batch.member_puts.extend(placed);
        for (kind, key, name, live, bytes) in members {
            if live {
                batch.member_puts.push((kind, key, name, bytes));
            } else if self.drop_tombstones {
                batch.member_removes.push((kind, key, name));
            } else {
                let item = Item::Member(kind, key.clone(), name.clone());
                batch.graves.push((item, fingerprint(&bytes)));
                batch.member_puts.push((kind, key, name, bytes));
            }
        }
        if !batch.graves.is_empty() {
            // A fresh timestamp: graves of every later commit sort strictly after these, so
            // the collector, which moves past a stable HLC once it has collected it, never
            // leaves a later grave behind it.
            batch.hlc = self.clock.now(self.now_ms);
        }
        Finished {
            batch,
            live_delta,
            expires_delta,
            deadlines_delta,
            changes: self.changes,
            read,
            events: self.events,
            written_by: self.written_by,
            flushed: self.flushed,
            windows,
            learned: if failed || self.ends.is_none() {
                Vec::new()
            } else {
                (self.bounds.into_iter())
                    .map(|((kind, key), bounds)| Learned { kind, key, bounds })
                    .collect()
            },
        }
    }
}
