//! The engine thread over an in-memory store: rounds, failures and the key count.

use bytes::Bytes;
use node::cmd;
use node::engine::{self, EngineConfig, EngineHandle, FsyncPolicy};
use resp::Reply;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use storage::{Batch, Durability, MemStore, MemberKind, StateRead, StorageError, Store, Stored};

/// A store that fails commits while `failing` is set, and counts commits. A stand-in for a
/// full disk or a failed fsync, used only in this test.
#[derive(Default)]
struct FlakyStore {
    inner: MemStore,
    failing: AtomicBool,
    commits: AtomicUsize,
    /// Commits that asked to be on disk before returning.
    synced_commits: AtomicUsize,
    /// Members handed out by member reads.
    members_read: AtomicUsize,
}

impl FlakyStore {
    fn count(
        &self,
        read: Result<Vec<(Bytes, Bytes)>, StorageError>,
    ) -> Result<Vec<(Bytes, Bytes)>, StorageError> {
        if let Ok(members) = &read {
            self.members_read.fetch_add(members.len(), Ordering::SeqCst);
        }
        read
    }
}

impl StateRead for FlakyStore {
    fn scan_members(
        &self,
        kind: MemberKind,
        key: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, StorageError> {
        self.count(self.inner.scan_members(kind, key, after, limit))
    }
    fn scan(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Stored)>, StorageError> {
        self.inner.scan(after, limit)
    }
    fn version_vector(&self) -> Result<Option<Bytes>, StorageError> {
        self.inner.version_vector()
    }
    fn get(&self, key: &[u8]) -> Result<Option<Stored>, StorageError> {
        self.inner.get(key)
    }

    fn get_member(
        &self,
        kind: MemberKind,
        key: &[u8],
        member: &[u8],
    ) -> Result<Option<Bytes>, StorageError> {
        self.inner.get_member(kind, key, member)
    }

    fn scan_members_back(
        &self,
        kind: MemberKind,
        key: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, StorageError> {
        self.count(self.inner.scan_members_back(kind, key, before, limit))
    }

    fn last_keys(&self, limit: usize) -> Result<Vec<Bytes>, StorageError> {
        self.inner.last_keys(limit)
    }
}

impl Store for FlakyStore {
    fn view(&self) -> Box<dyn StateRead> {
        self.inner.view()
    }
    fn commit(&self, batch: &Batch, durability: Durability) -> Result<(), StorageError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StorageError::Corrupt {
                key: "-".into(),
                reason: "injected failure".into(),
            });
        }
        self.commits.fetch_add(1, Ordering::SeqCst);
        if durability == Durability::Sync {
            self.synced_commits.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.commit(batch, durability)
    }
    fn sync(&self) -> Result<(), StorageError> {
        self.inner.sync()
    }
    fn due(
        &self,
        from_ms: u64,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Bytes)>, StorageError> {
        self.inner.due(from_ms, now_ms, limit)
    }
    fn graves(
        &self,
        from: hlc::Timestamp,
        upto: hlc::Timestamp,
        limit: usize,
    ) -> Result<Vec<storage::Grave>, StorageError> {
        self.inner.graves(from, upto, limit)
    }
    fn count_graves(&self) -> Result<u64, StorageError> {
        self.inner.count_graves()
    }
    fn format(&self) -> Result<Option<u32>, StorageError> {
        self.inner.format()
    }
    fn set_format(&self, format: u32) -> Result<(), StorageError> {
        self.inner.set_format(format)
    }
    fn log_range(
        &self,
        origin: u64,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Bytes)>, StorageError> {
        self.inner.log_range(origin, from, limit)
    }
    fn last_hlc(&self) -> Result<hlc::Timestamp, StorageError> {
        self.inner.last_hlc()
    }
    fn origin(&self) -> Result<Option<u64>, StorageError> {
        self.inner.origin()
    }
    fn set_origin(&self, origin: u64) -> Result<(), StorageError> {
        self.inner.set_origin(origin)
    }
    fn disk_bytes(&self) -> u64 {
        0
    }
}

fn start(store: Arc<FlakyStore>) -> EngineHandle {
    start_as("n1", store)
}

/// A node named `name` on a fresh store.
fn node(name: &str) -> (Arc<FlakyStore>, EngineHandle) {
    let store = Arc::new(FlakyStore::default());
    (store.clone(), start_as(name, store))
}

/// The id the node on `store` writes under.
fn origin_of(store: &FlakyStore) -> crdt::NodeId {
    crdt::NodeId(
        store
            .inner
            .origin()
            .unwrap()
            .expect("recorded when the engine opened"),
    )
}

/// The one entry `store` holds of its own node's writes (its log as stored, and decoded).
fn only_entry(store: &FlakyStore) -> (Vec<(u64, Bytes)>, replication::Entry) {
    let logged = store.inner.log_range(origin_of(store).0, 1, 10).unwrap();
    assert_eq!(logged.len(), 1, "one round, one entry");
    let entry = replication::Entry::decode(&logged[0].1).unwrap();
    (logged, entry)
}

fn start_as(name: &str, store: Arc<FlakyStore>) -> EngineHandle {
    let config = EngineConfig {
        node_name: name.into(),
        fsync: FsyncPolicy::Always,
        max_offset_ms: 500,
        max_value_len: 1 << 20,
        drop_tombstones: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        notifier: Default::default(),
        invalidate: None,
        took: None,
    };
    engine::spawn(store, config).expect("engine starts").0
}

async fn run(engine: &EngineHandle, commands: &[&[&str]]) -> Vec<Reply> {
    let commands = commands
        .iter()
        .map(|words| {
            let args: Vec<Bytes> = words.iter().map(|w| Bytes::from(w.to_string())).collect();
            (cmd::lookup(&args[0]).expect("known command"), args)
        })
        .collect();
    engine.run(commands).await.expect("engine alive").replies
}

#[tokio::test]
async fn a_failed_commit_applies_nothing_and_reads_go_on() {
    let store = Arc::new(FlakyStore::default());
    let engine = start(store.clone());
    assert_eq!(run(&engine, &[&["SET", "k", "1"]]).await, vec![Reply::OK]);

    store.failing.store(true, Ordering::SeqCst);
    let replies = run(
        &engine,
        &[&["SET", "k", "2"], &["INCR", "n"], &["GET", "k"]],
    )
    .await;
    for r in &replies {
        assert!(
            matches!(r, Reply::Error(e) if e.starts_with("ERR storage failure")),
            "{r:?}"
        );
    }
    // A request that only reads is answered from what is committed.
    assert_eq!(
        run(&engine, &[&["GET", "k"], &["DBSIZE"]]).await,
        vec![Reply::bulk("1"), Reply::Int(1)]
    );

    store.failing.store(false, Ordering::SeqCst);
    // Nothing of the failed round was applied, not even in the engine's cache.
    assert_eq!(
        run(&engine, &[&["GET", "k"], &["GET", "n"], &["DBSIZE"]]).await,
        vec![Reply::bulk("1"), Reply::Null, Reply::Int(1)]
    );
    assert_eq!(
        engine.read(
            cmd::lookup(b"get").unwrap(),
            &[Bytes::from("get"), Bytes::from("k")]
        ),
        Reply::bulk("1")
    );
}

#[tokio::test]
async fn commands_of_one_round_see_each_other_and_count_keys() {
    let store = Arc::new(FlakyStore::default());
    let engine = start(store.clone());
    let replies = run(
        &engine,
        &[
            &["SET", "a", "1"],
            &["INCR", "a"],
            &["SADD", "s", "x"],
            &["KEYS", "*"],
            &["DEL", "a"],
            &["DBSIZE"],
        ],
    )
    .await;
    assert_eq!(
        replies,
        vec![
            Reply::OK,
            Reply::Int(2),
            Reply::Int(1),
            Reply::Array(vec![Reply::bulk("a"), Reply::bulk("s")]),
            Reply::Int(1),
            Reply::Int(1),
        ]
    );
    assert_eq!(
        store.commits.load(Ordering::SeqCst),
        1,
        "one round, one commit"
    );
}

#[tokio::test]
async fn concurrent_clients_all_land() {
    let store = Arc::new(FlakyStore::default());
    let engine = start(store.clone());
    let mut tasks = Vec::new();
    for i in 0..200 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("k{i}");
            run(&engine, &[&["SET", &key, "v"]]).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), vec![Reply::OK]);
    }
    assert_eq!(run(&engine, &[&["DBSIZE"]]).await, vec![Reply::Int(200)]);
}

#[tokio::test]
async fn deleted_state_is_removed_until_the_node_has_peers_then_kept() {
    let store = Arc::new(FlakyStore::default());
    let engine = start(store.clone());
    run(
        &engine,
        &[&["SET", "a", "1"], &["SADD", "s", "x"], &["DEL", "a", "s"]],
    )
    .await;
    // Alone, nothing is kept of what was deleted (expired keys would otherwise fill the disk).
    assert_eq!(store.inner.get(b"a").unwrap(), None);
    assert_eq!(store.inner.get(b"s").unwrap(), None);
    assert!(
        store
            .inner
            .scan_members(MemberKind::SetMember, b"s", None, 10)
            .unwrap()
            .is_empty()
    );

    engine.keep_tombstones();
    run(
        &engine,
        &[&["SET", "b", "1"], &["SADD", "t", "x"], &["DEL", "b", "t"]],
    )
    .await;
    // With peers, what a delete observed stays, to judge their concurrent writes.
    let b = store.inner.get(b"b").unwrap().expect("a tombstone");
    assert_eq!(b.kind(), None);
    assert_eq!(
        store
            .inner
            .scan_members(MemberKind::SetMember, b"t", None, 10)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        run(&engine, &[&["EXISTS", "b", "t"], &["DBSIZE"]]).await,
        vec![Reply::Int(0), Reply::Int(0)]
    );
}

/// Repairs `to` with the whole state of `store` (the store of `from`), which covers
/// `covers`, in parts of two keys.
async fn repair(
    to: &EngineHandle,
    from: &EngineHandle,
    store: &dyn Store,
    covers: engine::Applied,
) -> Result<(), String> {
    let from = from.node;
    let differ = vec![true; engine::DIGEST_BUCKETS];
    to.apply(engine::Remote::RepairBegin {
        from,
        differ,
        covers,
    })
    .await?;
    let mut after: Option<Bytes> = None;
    loop {
        let (changes, last) = engine::snapshot_chunk(store, after.as_deref(), 2).unwrap();
        let part = engine::Remote::RepairPart {
            from,
            after: after.clone(),
            last: last.clone(),
            changes,
        };
        to.apply(part).await?;
        match last {
            Some(k) => after = Some(k),
            None => break,
        }
    }
    to.apply(engine::Remote::RepairEnd { from }).await
}

/// What `engine`'s state holds now, as its store records it.
fn applied(engine: &EngineHandle) -> engine::Applied {
    engine::Applied::from_stored(engine.store().version_vector().unwrap()).unwrap()
}

/// What a client reads of each key.
async fn values(engine: &EngineHandle, keys: &[&str]) -> Vec<Reply> {
    let commands: Vec<Vec<&str>> = keys.iter().map(|k| vec!["GET", k]).collect();
    let commands: Vec<&[&str]> = commands.iter().map(|c| c.as_slice()).collect();
    run(engine, &commands).await
}

/// A repair replaces this node's state in the buckets it covers: what the repairing peer had
/// seen and no longer holds (it deleted and collected it) goes, and what this node wrote
/// that the peer had not seen is kept.
#[tokio::test]
async fn a_repair_drops_what_the_peer_collected_and_keeps_what_it_did_not_see() {
    let ((a, ea), (b, eb)) = (node("n1"), node("n2"));
    run(&ea, &[&["SET", "live", "a"]]).await;
    for (k, v) in [("doomed", "old"), ("h", "x"), ("mine", "unseen")] {
        run(&eb, &[&["SET", k, v]]).await;
    }
    run(&eb, &[&["SADD", "s", "m1", "m2"]]).await;
    // The peer's state covers b's first two writes (it held them, deleted "doomed" and
    // collected the tombstone; "h" is a new incarnation there) but not b's later ones.
    run(&ea, &[&["HSET", "h", "f", "1"]]).await;
    let mut covers = applied(&ea);
    covers.vv.set(eb.node, 2);
    let (_, second) = b.log_range(eb.node.0, 2, 1).unwrap().remove(0);
    let second = replication::Entry::decode(&second).unwrap();
    covers.seen.advance(eb.node, second.hlc);
    repair(&eb, &ea, a.as_ref(), covers).await.unwrap();
    assert_eq!(
        values(&eb, &["live", "doomed", "mine"]).await,
        vec![
            Reply::Bulk(Bytes::from("a")),
            Reply::Null,
            Reply::Bulk(Bytes::from("unseen"))
        ]
    );
    assert_eq!(
        run(&eb, &[&["TYPE", "h"], &["SMEMBERS", "s"], &["DBSIZE"]]).await,
        vec![
            Reply::Simple("hash"),
            Reply::Set(vec![
                Reply::Bulk(Bytes::from("m1")),
                Reply::Bulk(Bytes::from("m2"))
            ]),
            Reply::Int(4),
        ]
    );
}

/// One repair at a time: a second peer's is refused until the first ends.
#[tokio::test]
async fn a_second_repair_waits_for_the_first() {
    let ((_, ea), (_, eb)) = (node("n1"), node("n2"));
    let (_, ec) = node("n3");
    run(&ea, &[&["SET", "k", "v"]]).await;
    let covers = applied(&ea);
    let begin = |from| engine::Remote::RepairBegin {
        from,
        differ: vec![true; engine::DIGEST_BUCKETS],
        covers: covers.clone(),
    };
    eb.apply(begin(ea.node)).await.unwrap();
    assert!(eb.apply(begin(ec.node)).await.is_err());
    let part = engine::Remote::RepairPart {
        from: ec.node,
        after: None,
        last: None,
        changes: Vec::new(),
    };
    assert!(
        eb.apply(part).await.is_err(),
        "a part without its beginning"
    );
    eb.apply(engine::Remote::RepairAbandoned { from: ea.node })
        .await
        .unwrap();
    eb.apply(begin(ec.node)).await.unwrap();
}

#[tokio::test]
async fn digests_differ_exactly_in_the_buckets_of_keys_that_differ() {
    let (a, b) = (
        Arc::new(FlakyStore::default()),
        Arc::new(FlakyStore::default()),
    );
    let (ea, eb) = (start(a.clone()), start(b.clone()));
    let load = [
        &["SET", "s", "v"][..],
        &["HSET", "h", "f1", "1", "f2", "2"],
        &["SADD", "set", "x", "y"],
        &["INCRBY", "n", "5"],
    ];
    run(&ea, &load).await;
    let before = engine::digests(a.as_ref()).unwrap();
    assert_eq!(before.len(), engine::DIGEST_BUCKETS);
    assert!(
        before.iter().any(|d| *d != 0),
        "a store with keys has digests"
    );
    assert_eq!(
        engine::digests(b.as_ref()).unwrap(),
        vec![0; engine::DIGEST_BUCKETS],
        "an empty store digests to zeros"
    );
    // The same state, reached on another store, digests the same.
    repair(&eb, &ea, a.as_ref(), applied(&ea)).await.unwrap();
    assert_eq!(engine::digests(b.as_ref()).unwrap(), before);
    // A field changed on one side: only the bucket of that key differs.
    run(&ea, &[&["HSET", "h", "f2", "3"]]).await;
    let after = engine::digests(a.as_ref()).unwrap();
    let differ: Vec<usize> = (0..engine::DIGEST_BUCKETS)
        .filter(|&i| after[i] != before[i])
        .collect();
    assert_eq!(differ, vec![engine::bucket_of(b"h")]);
}

#[tokio::test]
async fn a_peers_write_is_what_the_next_local_command_sees_cached_or_not() {
    let ((a, ea), (b, eb)) = (node("n1"), node("n2"));
    // Both keys are in n1's record cache after this.
    run(&ea, &[&["SET", "k", "1"], &["INCRBY", "n", "5"]]).await;
    // Later stamps on n2 (a later millisecond), so its SET wins.
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    run(
        &eb,
        &[
            &["SET", "k", "2"],
            &["INCRBY", "n", "3"],
            &["SET", "fresh", "x"],
        ],
    )
    .await;
    let (logged, entry) = only_entry(&b);
    ea.apply(engine::Remote::Entries(vec![entry]))
        .await
        .unwrap();
    assert_eq!(
        run(
            &ea,
            &[&["GET", "k"], &["INCRBY", "n", "1"], &["GET", "fresh"]]
        )
        .await,
        vec![
            Reply::Bulk(Bytes::from("2")),
            Reply::Int(9),
            Reply::Bulk(Bytes::from("x"))
        ]
    );
    // The peer's entry is logged once, as it arrived; n1's own log holds its two rounds.
    assert_eq!(a.inner.log_range(origin_of(&b).0, 1, 10).unwrap(), logged);
    assert_eq!(a.inner.log_range(origin_of(&a).0, 1, 10).unwrap().len(), 2);
}

#[tokio::test]
async fn a_read_ahead_value_that_a_later_commit_changed_is_not_used() {
    let ((_, ea), (b, eb)) = (node("n1"), node("n2"));
    run(&eb, &[&["INCRBY", "n", "3"], &["SET", "k", "2"]]).await;
    let (_, entry) = only_entry(&b);
    // Read ahead while n1 holds neither key; then a local write to `n` commits before the
    // entry is applied, so what was read of `n` is stale and what was read of `k` is not.
    let ahead = ea.read_ahead(std::slice::from_ref(&entry)).unwrap();
    run(&ea, &[&["INCRBY", "n", "5"]]).await;
    ea.apply_read_ahead(engine::Remote::Entries(vec![entry]), Some(ahead))
        .await
        .unwrap();
    assert_eq!(
        run(&ea, &[&["GET", "n"], &["GET", "k"]]).await,
        vec![Reply::Bulk(Bytes::from("8")), Reply::Bulk(Bytes::from("2"))]
    );
}

/// A peer's entry is durable at its origin: the receiver shows it at once, without waiting for
/// its own disk, and reports holding it (what `WAIT` and truncation count) only once synced:
/// by the next sync of its own, or by a client's commit, whose fsync covers it too.
#[tokio::test]
async fn a_peers_entry_shows_at_once_and_counts_as_held_once_synced() {
    let ((a, ea), (b, eb)) = (node("n1"), node("n2"));
    run(&ea, &[&["SET", "k", "1"]]).await;
    let (_, entry) = only_entry(&a);
    let origin = entry.origin;
    let before = b.synced_commits.load(Ordering::SeqCst);
    eb.apply(engine::Remote::Entries(vec![entry]))
        .await
        .unwrap();
    assert_eq!(
        b.synced_commits.load(Ordering::SeqCst),
        before,
        "the apply did not wait for the disk"
    );
    assert_eq!(
        run(&eb, &[&["GET", "k"]]).await,
        vec![Reply::Bulk(Bytes::from("1"))]
    );
    let progress = eb.progress.borrow().clone();
    assert_eq!(progress.applied.get(origin), 1);
    assert_eq!(progress.durable.get(origin), 0, "not synced yet");
    // The periodic sync: the first tick after its period (100 ms; this test has no ticker).
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let ticker = eb.weak_sender().upgrade().unwrap();
    ticker.send(engine::Request::Tick).await.unwrap();
    let mut progress = eb.progress.clone();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        progress.wait_for(|p| p.durable.get(origin) == 1),
    )
    .await
    .expect("the tick synced the peer's entry")
    .unwrap();

    // A client's commit under `--fsync always` covers a peer's entry applied before it.
    run(&eb, &[&["SET", "mine", "x"]]).await;
    let (_, mine) = only_entry(&b);
    let (_, ec) = node("n3");
    ec.apply(engine::Remote::Entries(vec![only_entry(&a).1]))
        .await
        .unwrap();
    ec.apply(engine::Remote::Entries(vec![mine])).await.unwrap();
    assert_eq!(ec.progress.borrow().durable.get(origin), 0);
    run(&ec, &[&["SET", "own", "y"]]).await;
    let durable = ec.progress.borrow().durable.clone();
    assert_eq!(
        (durable.get(origin), durable.get(origin_of(&b))),
        (1, 1),
        "the client's fsync covered both peers' entries"
    );
}

/// Truncation drops exactly the entries up to what every member holds, each time: the second
/// time from where the first stopped (kept by the engine, not searched for again).
#[tokio::test]
async fn truncation_drops_the_entries_every_member_holds_and_no_others() {
    let (store, engine) = node("n1");
    let me = engine.node;
    let held = |store: &FlakyStore| -> Vec<u64> {
        let log = store.inner.log_range(me.0, 0, 100).unwrap();
        log.into_iter().map(|(seq, _)| seq).collect()
    };
    for i in 0..3 {
        run(&engine, &[&["SET", "k", &i.to_string()]]).await;
    }
    let upto = |seq| {
        let mut vv = replication::VersionVector::new();
        vv.advance(me, seq);
        vv
    };
    engine.stable(upto(2), upto(3));
    // Requests run in order: this one runs after the truncation.
    run(&engine, &[&["GET", "k"]]).await;
    assert_eq!(held(&store), vec![3]);
    for i in 3..5 {
        run(&engine, &[&["SET", "k", &i.to_string()]]).await;
    }
    engine.stable(upto(4), upto(5));
    run(&engine, &[&["GET", "k"]]).await;
    assert_eq!(held(&store), vec![5]);
    engine.stable(upto(4), upto(5));
    run(&engine, &[&["GET", "k"]]).await;
    assert_eq!(held(&store), vec![5], "nothing more to drop");
}

/// Runs `words` (one command per string, words split on spaces) in one round.
async fn round(engine: &EngineHandle, commands: &[String]) -> Vec<Reply> {
    let words: Vec<Vec<&str>> = commands.iter().map(|c| c.split(' ').collect()).collect();
    let commands: Vec<&[&str]> = words.iter().map(|w| w.as_slice()).collect();
    run(engine, &commands).await
}

#[tokio::test]
async fn pops_read_a_few_elements_however_many_were_popped_before() {
    for keep_tombstones in [false, true] {
        let (store, engine) = node("n1");
        if keep_tombstones {
            engine.keep_tombstones();
        }
        for chunk in 0..20 {
            let pushes: Vec<String> = (0..100)
                .map(|i| format!("RPUSH q v{}", chunk * 100 + i))
                .collect();
            round(&engine, &pushes).await;
        }
        for _ in 0..10 {
            let pops: Vec<String> = (0..50).map(|_| "LPOP q".to_string()).collect();
            round(&engine, &pops).await;
            let pops: Vec<String> = (0..50).map(|_| "RPOP q".to_string()).collect();
            round(&engine, &pops).await;
        }
        store.members_read.store(0, Ordering::SeqCst);
        let popped = run(&engine, &[&["LPOP", "q"], &["RPOP", "q"]]).await;
        let read = store.members_read.load(Ordering::SeqCst);
        assert_eq!(
            popped,
            vec![
                Reply::Bulk(Bytes::from("v500")),
                Reply::Bulk(Bytes::from("v1499"))
            ]
        );
        // The 1000 popped before (tombstones when peers may need them) are not walked over.
        assert!(
            read < 40,
            "two pops read {read} elements (tombstones kept: {keep_tombstones})"
        );
    }
}

#[tokio::test]
async fn random_picks_from_a_large_set_read_a_window_spread_over_it_and_pop_each_once() {
    let (store, engine) = node("n1");
    // Names with a shared prefix: a pick that entered at a random byte string would land
    // before or after all of them and answer the first name every time.
    let n = 3000;
    for chunk in 0..n / 500 {
        let adds: Vec<String> = (0..500)
            .map(|i| format!("SADD s member:{}", chunk * 500 + i))
            .collect();
        round(&engine, &adds).await;
    }
    store.members_read.store(0, Ordering::SeqCst);
    let picks: Vec<String> = (0..200).map(|_| "SRANDMEMBER s".to_string()).collect();
    let picked = round(&engine, &picks).await;
    let read = store.members_read.load(Ordering::SeqCst);
    // Reading the whole set would be 3000 per pick.
    assert!(read < 200 * 100, "200 picks read {read} members of {n}");
    let distinct: HashSet<Bytes> = (picked.into_iter())
        .map(|r| match r {
            Reply::Bulk(b) => b,
            other => panic!("SRANDMEMBER answered {other:?}"),
        })
        .collect();
    assert!(
        distinct.len() > 100,
        "200 picks found {} members",
        distinct.len()
    );
    // Every leading digit's stretch of names comes up (the alphabet is learned).
    for digit in b'1'..=b'9' {
        let hit = distinct.iter().any(|b| b[7] == digit);
        assert!(hit, "no pick began with {}", digit as char);
    }
    // SPOP takes every member exactly once, whatever the picks.
    let mut popped = HashSet::new();
    for _ in 0..n / 500 {
        let pops: Vec<String> = (0..500).map(|_| "SPOP s".to_string()).collect();
        for reply in round(&engine, &pops).await {
            let Reply::Bulk(member) = reply else {
                panic!("SPOP answered {reply:?} with members left");
            };
            assert!(popped.insert(member.clone()), "{member:?} popped twice");
        }
    }
    assert_eq!(popped.len(), n);
    assert_eq!(run(&engine, &[&["SPOP", "s"]]).await, vec![Reply::Null]);
}

#[tokio::test]
async fn lists_pushed_and_popped_at_both_ends_read_as_a_deque_would() {
    for keep_tombstones in [false, true] {
        for seed in 1..=6u64 {
            let (_, engine) = node("n1");
            if keep_tombstones {
                engine.keep_tombstones();
            }
            let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut next = move |n: u64| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng % n
            };
            let mut model = std::collections::VecDeque::new();
            let mut value = 0;
            for _ in 0..120 {
                let mut commands = Vec::new();
                let mut expected = Vec::new();
                for _ in 0..=next(12) {
                    let command =
                        match next(6) {
                            0 | 1 => {
                                value += 1;
                                let front = next(2) == 0;
                                if front {
                                    model.push_front(value);
                                } else {
                                    model.push_back(value);
                                }
                                expected.push(Reply::Int(model.len() as i64));
                                format!("{} l {value}", if front { "LPUSH" } else { "RPUSH" })
                            }
                            2 | 3 => {
                                let front = next(2) == 0;
                                let got = if front {
                                    model.pop_front()
                                } else {
                                    model.pop_back()
                                };
                                expected.push(got.map_or(Reply::Null, |v| {
                                    Reply::Bulk(Bytes::from(v.to_string()))
                                }));
                                (if front { "LPOP l" } else { "RPOP l" }).to_string()
                            }
                            4 => {
                                let items = model
                                    .iter()
                                    .map(|v| Reply::Bulk(Bytes::from(v.to_string())));
                                expected.push(Reply::Array(items.collect()));
                                "LRANGE l 0 -1".to_string()
                            }
                            _ => {
                                expected.push(Reply::Int(model.len() as i64));
                                "LLEN l".to_string()
                            }
                        };
                    commands.push(command);
                }
                let got = round(&engine, &commands).await;
                assert_eq!(
                    got, expected,
                    "seed {seed}, tombstones kept {keep_tombstones}: {commands:?}"
                );
            }
            // The engine thread's view, and a read on this thread (which starts at the same
            // bounds), agree with the model.
            let items: Vec<Reply> = model
                .iter()
                .map(|v| Reply::Bulk(Bytes::from(v.to_string())))
                .collect();
            let spec = cmd::lookup(b"LRANGE").unwrap();
            let args = ["LRANGE", "l", "0", "-1"].map(|w| Bytes::from(w.to_string()));
            assert_eq!(engine.read(spec, &args), Reply::Array(items));
        }
    }
}
