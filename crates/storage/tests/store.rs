//! One suite, every backend: what the node relies on from a store.

use bytes::Bytes;
use crdt::{Merge, NodeId, Record, Stamp, StrState};
use hlc::Timestamp;
use storage::{
    Batch, Durability, FjallStore, Grave, Item, MemStore, MemberKind, StateRead, Store, Stored,
};

fn record(value: &str, hlc: u64, expires: Option<u64>) -> Stored {
    let stamp = Stamp::new(Timestamp(hlc), NodeId(1));
    let mut r = Record {
        string: Some(StrState::default().set_delta(stamp, Bytes::from(value.to_string()))),
        ..Record::default()
    };
    r.merge(&Record::expiry_delta(stamp, expires));
    Stored {
        record: r,
        lens: Default::default(),
        series: None,
    }
}

fn graves_suite(store: &dyn Store) {
    assert_eq!(
        store.format().unwrap(),
        None,
        "a new store has no format yet"
    );
    store.set_format(storage::FORMAT).unwrap();
    assert_eq!(store.format().unwrap(), Some(storage::FORMAT));
    let header = Item::Header(Bytes::from("k"));
    let field = Item::Member(MemberKind::Field, Bytes::from("h"), Bytes::from("f"));
    let member = Item::Member(MemberKind::SetMember, Bytes::from("s"), Bytes::from("m"));
    let at = |hlc, graves: Vec<(Item, u64)>| Batch {
        graves,
        hlc: Timestamp(hlc),
        ..Batch::default()
    };
    store
        .commit(
            &at(20, vec![(field.clone(), 2), (member.clone(), 3)]),
            Durability::Sync,
        )
        .unwrap();
    store
        .commit(&at(10, vec![(header.clone(), 1)]), Durability::Sync)
        .unwrap();
    store
        .commit(&at(30, vec![(header.clone(), 4)]), Durability::Sync)
        .unwrap();
    let grave = |hlc, item: &Item, fingerprint| Grave {
        hlc: Timestamp(hlc),
        item: item.clone(),
        fingerprint,
    };
    assert_eq!(store.count_graves().unwrap(), 4);
    // Oldest first, bounded by HLC and by count.
    assert_eq!(
        store.graves(Timestamp::ZERO, Timestamp(20), 10).unwrap(),
        vec![
            grave(10, &header, 1),
            grave(20, &field, 2),
            grave(20, &member, 3)
        ]
    );
    assert_eq!(
        store.graves(Timestamp(11), Timestamp(99), 2).unwrap(),
        vec![grave(20, &field, 2), grave(20, &member, 3)]
    );
    let batch = Batch {
        grave_removes: vec![
            (Timestamp(10), header.clone()),
            (Timestamp(20), field.clone()),
        ],
        hlc: Timestamp(31),
        ..Batch::default()
    };
    store.commit(&batch, Durability::Sync).unwrap();
    assert_eq!(
        store.graves(Timestamp::ZERO, Timestamp(99), 10).unwrap(),
        vec![grave(20, &member, 3), grave(30, &header, 4)]
    );
    assert_eq!(store.count_graves().unwrap(), 2);
}

fn suite(store: &dyn Store) {
    assert_eq!(store.get(b"a").unwrap(), None);
    assert_eq!(
        store.origin().unwrap(),
        None,
        "a new store has no write id yet"
    );
    store.set_origin(0xfeed).unwrap();
    assert_eq!(store.origin().unwrap(), Some(0xfeed));
    let batch = Batch {
        puts: vec![
            (Bytes::from("a"), record("1", 5, None)),
            (Bytes::from("b"), record("2", 6, Some(100))),
            (Bytes::from("c"), record("3", 7, Some(50))),
        ],
        expiry_puts: vec![(100, Bytes::from("b")), (50, Bytes::from("c"))],
        hlc: Timestamp(7),
        ..Batch::default()
    };
    store.commit(&batch, Durability::Sync).unwrap();
    assert_eq!(store.get(b"b").unwrap(), Some(record("2", 6, Some(100))));
    assert_eq!(store.last_hlc().unwrap(), Timestamp(7));

    let keys: Vec<_> = store
        .scan(None, 10)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        vec![Bytes::from("a"), Bytes::from("b"), Bytes::from("c")]
    );
    let after_a: Vec<_> = store
        .scan(Some(b"a"), 1)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(after_a, vec![Bytes::from("b")]);

    assert_eq!(store.due(0, 49, 10).unwrap(), vec![]);
    assert_eq!(
        store.due(0, 100, 10).unwrap(),
        vec![(50, Bytes::from("c")), (100, Bytes::from("b"))]
    );
    // From a cursor: nothing before it, however due.
    assert_eq!(
        store.due(51, 100, 10).unwrap(),
        vec![(100, Bytes::from("b"))]
    );
    assert_eq!(store.due(101, 100, 10).unwrap(), vec![]);

    let batch = Batch {
        removes: vec![Bytes::from("c")],
        expiry_removes: vec![(50, Bytes::from("c"))],
        hlc: Timestamp(8),
        ..Batch::default()
    };
    store.commit(&batch, Durability::Buffer).unwrap();
    store.sync().unwrap();
    assert_eq!(store.get(b"c").unwrap(), None);
    assert_eq!(
        store.due(0, 100, 10).unwrap(),
        vec![(100, Bytes::from("b"))]
    );
    assert_eq!(store.last_hlc().unwrap(), Timestamp(8));

    // Members: one prefix per key and kind, in byte order, apart from other keys and kinds.
    let m = |kind, key: &str, member: &str, v: &str| {
        (
            kind,
            Bytes::from(key.to_string()),
            Bytes::from(member.to_string()),
            v.as_bytes().to_vec(),
        )
    };
    let batch = Batch {
        member_puts: vec![
            m(MemberKind::Field, "h", "b", "2"),
            m(MemberKind::Field, "h", "a", "1"),
            m(MemberKind::Field, "h2", "a", "x"),
            m(MemberKind::SetMember, "h", "a", "s"),
        ],
        ..Batch::default()
    };
    store.commit(&batch, Durability::Sync).unwrap();
    assert_eq!(
        store.get_member(MemberKind::Field, b"h", b"a").unwrap(),
        Some(Bytes::from("1"))
    );
    assert_eq!(
        store.get_member(MemberKind::Field, b"h", b"zz").unwrap(),
        None
    );
    let all = store
        .scan_members(MemberKind::Field, b"h", None, 10)
        .unwrap();
    assert_eq!(
        all,
        vec![
            (Bytes::from("a"), Bytes::from("1")),
            (Bytes::from("b"), Bytes::from("2"))
        ]
    );
    let after = store
        .scan_members(MemberKind::Field, b"h", Some(b"a"), 10)
        .unwrap();
    assert_eq!(after, vec![(Bytes::from("b"), Bytes::from("2"))]);
    assert_eq!(
        store
            .scan_members(MemberKind::SetMember, b"h", None, 10)
            .unwrap()
            .len(),
        1
    );
    let batch = Batch {
        member_removes: vec![(MemberKind::Field, Bytes::from("h"), Bytes::from("a"))],
        ..Batch::default()
    };
    store.commit(&batch, Durability::Sync).unwrap();
    assert_eq!(
        store
            .scan_members(MemberKind::Field, b"h", None, 10)
            .unwrap()
            .len(),
        1
    );
    log_suite(store);
}

/// The change log: ranges per origin in sequence order, removal, the version vector.
fn log_suite(store: &dyn Store) {
    assert_eq!(store.version_vector().unwrap(), None);
    let batch = Batch {
        log_puts: vec![
            (2, 1, b"b1".to_vec()),
            (1, 1, b"a1".to_vec()),
            (1, 2, b"a2".to_vec()),
            (1, 3, b"a3".to_vec()),
        ],
        version_vector: Some(b"vv".to_vec()),
        ..Batch::default()
    };
    store.commit(&batch, Durability::Sync).unwrap();
    let range = store.log_range(1, 2, 10).unwrap();
    assert_eq!(
        range,
        vec![(2, Bytes::from("a2")), (3, Bytes::from("a3"))],
        "only origin 1, from seq 2"
    );
    assert_eq!(store.log_range(1, 1, 1).unwrap().len(), 1);
    assert_eq!(store.log_first(2).unwrap(), Some(1));
    assert_eq!(store.version_vector().unwrap(), Some(Bytes::from("vv")));
    let batch = Batch {
        log_removes: vec![(1, 1), (1, 2)],
        ..Batch::default()
    };
    store.commit(&batch, Durability::Sync).unwrap();
    assert_eq!(store.log_first(1).unwrap(), Some(3));
    assert_eq!(store.log_first(3).unwrap(), None);
}

/// A view keeps the state, members and version vector of the moment it was taken.
fn view_suite(store: &dyn Store) {
    let member = |m: &str| {
        (
            MemberKind::SetMember,
            Bytes::from("s"),
            Bytes::from(m.to_string()),
            b"x".to_vec(),
        )
    };
    let first = Batch {
        puts: vec![
            (Bytes::from("a"), record("1", 1, None)),
            (Bytes::from("s"), record("2", 2, None)),
        ],
        member_puts: vec![member("m1")],
        version_vector: Some(b"vv1".to_vec()),
        ..Batch::default()
    };
    store.commit(&first, Durability::Buffer).unwrap();
    let view = store.view();
    let second = Batch {
        puts: vec![(Bytes::from("b"), record("3", 3, None))],
        removes: vec![Bytes::from("a")],
        member_puts: vec![member("m2")],
        version_vector: Some(b"vv2".to_vec()),
        ..Batch::default()
    };
    store.commit(&second, Durability::Buffer).unwrap();
    let keys = |rows: Vec<(Bytes, Stored)>| rows.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(
        keys(view.scan(None, 10).unwrap()),
        vec![Bytes::from("a"), Bytes::from("s")]
    );
    assert_eq!(
        keys(view.scan(Some(b"a"), 10).unwrap()),
        vec![Bytes::from("s")]
    );
    let members = view
        .scan_members(MemberKind::SetMember, b"s", None, 10)
        .unwrap();
    assert_eq!(members, vec![(Bytes::from("m1"), Bytes::from("x"))]);
    assert_eq!(view.version_vector().unwrap(), Some(Bytes::from("vv1")));
    // Point reads of the view see the first state too (reads of several keys see one state).
    assert_eq!(view.get(b"a").unwrap(), Some(record("1", 1, None)));
    assert_eq!(view.get(b"b").unwrap(), None);
    assert_eq!(store.get(b"a").unwrap(), None);
    assert!(
        (view.get_member(MemberKind::SetMember, b"s", b"m2").unwrap()).is_none()
            && (store
                .get_member(MemberKind::SetMember, b"s", b"m2")
                .unwrap())
            .is_some()
    );
    let back = view.scan_members_back(MemberKind::SetMember, b"s", None, 10);
    assert_eq!(back.unwrap(), vec![(Bytes::from("m1"), Bytes::from("x"))]);
    assert_eq!(
        view.last_keys(10).unwrap(),
        vec![Bytes::from("s"), Bytes::from("a")]
    );
    assert_eq!(
        keys(store.scan(None, 10).unwrap()),
        vec![Bytes::from("b"), Bytes::from("s")]
    );
    assert_eq!(store.version_vector().unwrap(), Some(Bytes::from("vv2")));
}

#[test]
fn view_mem_store() {
    view_suite(&MemStore::new());
}

#[test]
fn view_fjall_store() {
    let dir = tempfile::tempdir().unwrap();
    view_suite(&FjallStore::open(dir.path(), 8 << 20).unwrap());
}

#[test]
fn graves_mem_store() {
    graves_suite(&MemStore::new());
}

#[test]
fn graves_fjall_store() {
    let dir = tempfile::tempdir().unwrap();
    graves_suite(&FjallStore::open(dir.path(), 8 << 20).unwrap());
}

#[test]
fn mem_store() {
    suite(&MemStore::new());
}

#[test]
fn fjall_store() {
    let dir = tempfile::tempdir().unwrap();
    suite(&FjallStore::open(dir.path(), 8 << 20).unwrap());
}

#[test]
fn fjall_store_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = FjallStore::open(dir.path(), 8 << 20).unwrap();
        let batch = Batch {
            puts: vec![(Bytes::from("k"), record("v", 9, Some(123)))],
            expiry_puts: vec![(123, Bytes::from("k"))],
            graves: vec![(Item::Header(Bytes::from("gone")), 7)],
            hlc: Timestamp(9),
            ..Batch::default()
        };
        s.commit(&batch, Durability::Sync).unwrap();
        s.set_origin(42).unwrap();
        s.set_format(storage::FORMAT).unwrap();
    }
    let s = FjallStore::open(dir.path(), 8 << 20).unwrap();
    assert_eq!(s.origin().unwrap(), Some(42));
    assert_eq!(s.format().unwrap(), Some(storage::FORMAT));
    assert_eq!(s.count_graves().unwrap(), 1);
    assert_eq!(s.get(b"k").unwrap(), Some(record("v", 9, Some(123))));
    assert_eq!(s.due(0, 200, 10).unwrap(), vec![(123, Bytes::from("k"))]);
    assert_eq!(s.last_hlc().unwrap(), Timestamp(9));
}

/// Members read from either end: a list's elements from its head or its tail, in pages,
/// never straying into another key's members or another kind.
fn members_both_ways(store: &dyn Store) {
    let put = |kind, key: &str, m: &str| {
        (
            kind,
            Bytes::from(key.to_string()),
            Bytes::from(m.to_string()),
            vec![1],
        )
    };
    let batch = Batch {
        member_puts: vec![
            put(MemberKind::ListElem, "l", "a"),
            put(MemberKind::ListElem, "l", "b"),
            put(MemberKind::ListElem, "l", "c"),
            put(MemberKind::ListElem, "l2", "z"),
            put(MemberKind::ListElem, "k", "y"),
            put(MemberKind::SetMember, "l", "s"),
        ],
        ..Batch::default()
    };
    store.commit(&batch, Durability::Sync).unwrap();
    let names = |page: Vec<(Bytes, Bytes)>| page.into_iter().map(|(m, _)| m).collect::<Vec<_>>();
    let back = store
        .scan_members_back(MemberKind::ListElem, b"l", None, 2)
        .unwrap();
    assert_eq!(names(back), ["c", "b"]);
    let back = store
        .scan_members_back(MemberKind::ListElem, b"l", Some(b"b"), 10)
        .unwrap();
    assert_eq!(names(back), ["a"]);
    let fwd = store
        .scan_members(MemberKind::ListElem, b"l", Some(b"a"), 10)
        .unwrap();
    assert_eq!(names(fwd), ["b", "c"]);
    assert!(
        store
            .scan_members_back(MemberKind::ListElem, b"none", None, 10)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn members_both_ways_mem_store() {
    members_both_ways(&MemStore::new());
}

#[test]
fn members_both_ways_fjall_store() {
    let dir = tempfile::tempdir().unwrap();
    members_both_ways(&FjallStore::open(dir.path(), 8 << 20).unwrap());
}
