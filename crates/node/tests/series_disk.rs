//! What a time series costs on disk (issue 16 asks at most 4 bytes a sample for a regular
//! series once compacted): samples written through the engine into the durable store, as a
//! node writes them, then the store compacted and its windows measured.

use bytes::Bytes;
use node::cmd;
use node::engine::{self, EngineConfig, FsyncPolicy};
use std::sync::Arc;
use storage::{FjallStore, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regular_series_costs_at_most_four_bytes_a_sample_once_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FjallStore::open(dir.path(), 16 << 20).unwrap());
    let config = EngineConfig {
        node_name: "n1".into(),
        fsync: FsyncPolicy::Never,
        max_offset_ms: 500,
        max_value_len: 1 << 20,
        drop_tombstones: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        notifier: Default::default(),
        invalidate: None,
        took: None,
    };
    let engine = engine::spawn(store.clone(), config)
        .expect("engine starts")
        .0;
    let run = |words: Vec<String>| {
        let args: Vec<Bytes> = words.into_iter().map(Bytes::from).collect();
        (cmd::lookup(&args[0]).expect("known"), args)
    };
    // Ten sensors read once a second, values with one decimal moving slowly, for six hours
    // each (216,000 samples), written ten readings of every sensor per command.
    const SENSORS: usize = 10;
    const SECONDS: i64 = 21_600;
    let base = 1_700_000_000_000i64;
    let mut setup = Vec::new();
    for s in 0..SENSORS {
        setup.push(run(vec!["TS.CREATE".into(), format!("sensor:{s}")]));
    }
    engine.run(setup).await.unwrap();
    for chunk in (0..SECONDS).collect::<Vec<_>>().chunks(10 * 64) {
        let mut commands = Vec::new();
        for ten in chunk.chunks(10) {
            let mut words = vec!["TS.MADD".to_string()];
            for &t in ten {
                for s in 0..SENSORS {
                    let v = 200.0 + 50.0 * ((t as f64 + 37.0 * s as f64) / 600.0).sin();
                    words.push(format!("sensor:{s}"));
                    words.push((base + t * 1000).to_string());
                    words.push(format!("{:.1}", v.round() / 10.0));
                }
            }
            commands.push(run(words));
        }
        let done = engine.run(commands).await.unwrap();
        assert!(
            done.replies.iter().all(|r| !r.is_error()),
            "{:?}",
            done.replies[0]
        );
    }
    let samples = (SENSORS as i64 * SECONDS) as f64;
    let check = engine
        .run(vec![run(vec![
            "TS.RANGE".into(),
            "sensor:3".into(),
            "-".into(),
            "+".into(),
        ])])
        .await
        .unwrap();
    match &check.replies[0] {
        resp::Reply::Array(samples) => assert_eq!(samples.len(), SECONDS as usize),
        other => panic!("{other:?}"),
    }
    store.compact().unwrap();
    let members = store
        .keyspace_bytes()
        .into_iter()
        .find(|(name, _)| *name == "members")
        .unwrap()
        .1 as f64;
    let per_sample = members / samples;
    println!(
        "{samples} samples: windows take {members} bytes on disk, {per_sample:.2} bytes a sample \
         (every keyspace: {:?})",
        store.keyspace_bytes()
    );
    assert!(per_sample <= 4.0, "{per_sample:.2} bytes a sample");
}
