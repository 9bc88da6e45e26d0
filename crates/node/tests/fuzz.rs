//! Fuzzing, with proptest so that it runs in CI with every test: the peer frame decoder (and
//! the log entries and repair parts frames carry) and the ACL rule parser never panic,
//! whatever bytes a peer or an administrator sends. The seeds are real frames and the rules
//! of `corpus/acl_rules.txt`, mutated; failing cases proptest finds are kept in
//! `proptest-regressions/` next to this file and replayed first on every run.

use bytes::Bytes;
use crdt::{NodeId, Record};
use node::acl::Users;
use node::peer::wire::{self, Hello, MemberInfo, Message, Shipped, SnapshotPart};
use proptest::prelude::*;
use replication::{Change, Entry, VersionVector};

fn member() -> MemberInfo {
    MemberInfo {
        name: "eu-1".into(),
        region: "eu".into(),
        peer_addr: "10.0.0.1:7381".into(),
    }
}

/// Real frames of every shape that carries data.
fn seed_frames() -> Vec<Bytes> {
    let mut vv = VersionVector::new();
    vv.advance(NodeId(7), 3);
    let entry = Entry::new(
        NodeId(7),
        3,
        hlc::Timestamp::new(10, 1),
        vv.clone(),
        vec![
            Change::Header {
                key: Bytes::from("k"),
                delta: Record::default(),
            },
            Change::Event {
                key: Bytes::from("k"),
                event: 1,
            },
        ],
    );
    let part = SnapshotPart {
        after: Some(Bytes::from("a")),
        last: None,
        changes: entry.changes.clone(),
    };
    [
        Message::Hello(Hello {
            member: member(),
            nonce: [9; 32],
        }),
        Message::Proof(vec![1, 2, 3]),
        Message::Start {
            origin: NodeId(7),
            vv: vv.clone(),
            members: vec![member()],
        },
        Message::Entries(vec![Shipped {
            entry: Bytes::from(entry.encode()),
            acked_ms: Some(12),
        }]),
        Message::Ack(vv.clone()),
        Message::Publish {
            shard: false,
            channel: Bytes::from("news"),
            message: Bytes::from("hello"),
        },
        Message::Snapshot(Bytes::from(crdt::encode(&part))),
        Message::Digests(vec![1, 2, 3]),
    ]
    .iter()
    .map(wire::encode)
    .collect()
}

/// `body` as a frame with a correct checksum: the decoder gets past the CRC to the body.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut frame = vec![wire::VERSION];
    frame.extend_from_slice(&crc32fast::hash(body).to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

/// Decodes a frame as the peer runtime does, down to what it carries.
fn decode_all(frame: &[u8]) {
    match wire::decode(frame) {
        Ok(Message::Entries(shipped)) => {
            for s in shipped {
                let _ = Entry::decode(&s.entry);
            }
        }
        Ok(Message::Snapshot(bytes)) => {
            let _ = crdt::decode::<SnapshotPart>(&bytes);
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary bodies behind a good checksum never panic the decoder.
    #[test]
    fn arbitrary_peer_frames_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        decode_all(&framed(&body));
        decode_all(&body);
    }

    /// Real frames with bytes of their body changed (and the checksum made right again).
    #[test]
    fn mutated_peer_frames_never_panic(
        seed in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let frames = seed_frames();
        let frame = &frames[seed.index(frames.len())];
        let mut body = frame[5..].to_vec();
        for (at, byte) in edits {
            let i = at.index(body.len());
            body[i] = byte;
        }
        body.truncate(cut.index(body.len() + 1));
        decode_all(&framed(&body));
    }

    /// Arbitrary rules never panic `ACL SETUSER`; whatever it accepts reads back from the rules
    /// it lists as the same user.
    #[test]
    fn arbitrary_acl_rules_never_panic(rules in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..24), 0..6)) {
        let users = Users::new(None);
        let rules: Vec<Bytes> = rules.into_iter().map(Bytes::from).collect();
        if let Ok((name, line)) = users.set_entry("fuzz", &rules) {
            let again = users.set_entry(&name, &[]).map(|(_, l)| l);
            prop_assert!(again.is_ok());
            let reread: Vec<Bytes> = line.split_whitespace().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect();
            let fresh = Users::new(None);
            prop_assert_eq!(fresh.set_entry(&name, &reread).map(|(_, l)| l), Ok(line));
        }
    }

    /// The corpus's rules with bytes changed, as `ACL SETUSER` and as an ACL file's lines.
    #[test]
    fn mutated_acl_rules_never_panic(
        seed in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let corpus: Vec<&str> = include_str!("corpus/acl_rules.txt")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect();
        let mut line = corpus[seed.index(corpus.len())].as_bytes().to_vec();
        for (at, byte) in edits {
            let i = at.index(line.len());
            line[i] = byte;
        }
        let rules: Vec<Bytes> = line.split(|&b| b == b' ').map(Bytes::copy_from_slice).collect();
        let _ = Users::new(None).set_entry("fuzz", &rules);
        let text = format!("user fuzz {}\n", String::from_utf8_lossy(&line));
        let _ = Users::parse_file(&text, "fuzz");
    }
}

#[test]
fn the_seed_frames_and_rules_are_valid() {
    for frame in seed_frames() {
        assert!(wire::decode(&frame).is_ok());
    }
    for line in include_str!("corpus/acl_rules.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let rules: Vec<Bytes> = line
            .split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        assert!(Users::new(None).set_entry("seed", &rules).is_ok(), "{line}");
    }
}
