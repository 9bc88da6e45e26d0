//! One suite, every backend: what the node relies on from a store.

use bytes::Bytes;
use crdt::{Merge, NodeId, Record, Stamp, StrState};
use hlc::Timestamp;
use storage::{Batch, Durability, FjallStore, MemStore, Store};

fn record(value: &str, hlc: u64, expires: Option<u64>) -> Record {
    let stamp = Stamp::new(Timestamp(hlc), NodeId(1));
    let mut r = Record {
        string: Some(StrState::default().set_delta(stamp, Bytes::from(value.to_string()))),
        ..Record::default()
    };
    r.merge(&Record::expiry_delta(stamp, expires));
    r
}

fn suite(store: &dyn Store) {
    assert_eq!(store.get(b"a").unwrap(), None);
    let batch = Batch {
        puts: vec![
            (Bytes::from("a"), record("1", 5, None)),
            (Bytes::from("b"), record("2", 6, Some(100))),
            (Bytes::from("c"), record("3", 7, Some(50))),
        ],
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

    assert_eq!(store.due(49, 10).unwrap(), vec![]);
    assert_eq!(
        store.due(100, 10).unwrap(),
        vec![(50, Bytes::from("c")), (100, Bytes::from("b"))]
    );

    let batch = Batch {
        removes: vec![Bytes::from("c")],
        expiry_removes: vec![(50, Bytes::from("c"))],
        hlc: Timestamp(8),
        ..Batch::default()
    };
    store.commit(&batch, Durability::Buffer).unwrap();
    store.sync().unwrap();
    assert_eq!(store.get(b"c").unwrap(), None);
    assert_eq!(store.due(100, 10).unwrap(), vec![(100, Bytes::from("b"))]);
    assert_eq!(store.last_hlc().unwrap(), Timestamp(8));
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
            hlc: Timestamp(9),
            ..Batch::default()
        };
        s.commit(&batch, Durability::Sync).unwrap();
    }
    let s = FjallStore::open(dir.path(), 8 << 20).unwrap();
    assert_eq!(s.get(b"k").unwrap(), Some(record("v", 9, Some(123))));
    assert_eq!(s.due(200, 10).unwrap(), vec![(123, Bytes::from("k"))]);
    assert_eq!(s.last_hlc().unwrap(), Timestamp(9));
}
