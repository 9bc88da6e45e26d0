//! A peer that lies or breaks the protocol: the node drops the session, logs, and keeps serving
//! everyone else.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use node::peer::session::{self, SessionError};
use node::peer::wire::{self, MemberInfo, Message, Shipped};
use node::{NodeConfig, Shared};
use replication::VersionVector;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn start(dir: &std::path::Path) -> (Arc<Shared>, tokio::sync::oneshot::Sender<()>) {
    let mut config = NodeConfig::with_defaults("target", dir.to_path_buf());
    config.resp_addr = free_addr();
    config.http_addr = free_addr();
    config.peer_addr = free_addr();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(node::run(
        config,
        None,
        async move {
            let _ = stop_rx.await;
        },
        move |shared| {
            let _ = ready_tx.send(shared.clone());
        },
    ));
    (ready_rx.await.unwrap(), stop_tx)
}

fn liar() -> MemberInfo {
    MemberInfo {
        name: "liar".into(),
        region: "nowhere".into(),
        peer_addr: "127.0.0.1:1".into(),
    }
}

/// Opens an authenticated session to the node, as a peer with the right (empty) secret.
async fn session_to(shared: &Shared) -> session::Link {
    session_listing(shared, Vec::new()).await
}

/// Opens a session whose handshake lists `members`.
async fn session_listing(shared: &Shared, members: Vec<MemberInfo>) -> session::Link {
    session_as(shared, crdt::NodeId::from_name("liar"), members).await
}

/// Opens a session as a peer that writes under `origin`.
async fn session_as(
    shared: &Shared,
    origin: crdt::NodeId,
    members: Vec<MemberInfo>,
) -> session::Link {
    let stream = TcpStream::connect(shared.config.peer_addr).await.unwrap();
    let established = session::handshake(
        session::frame(Box::new(stream)),
        None,
        &liar(),
        b"",
        origin,
        VersionVector::new(),
        members,
    )
    .await
    .expect("the handshake succeeds with the right secret");
    established.link
}

/// Whether the node closes `link` within a few seconds.
async fn closed(link: &mut session::Link) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, link.next()).await {
            Err(_) => return false,
            Ok(None) | Ok(Some(Err(_))) => return true,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

fn known_members(shared: &Shared) -> usize {
    shared.cluster.view.borrow().members.len()
}

/// `SET k v` through the node's engine, as a client's command runs; answers the replies.
async fn set_k(shared: &Shared) -> Vec<resp::Reply> {
    let spec = node::cmd::lookup(b"SET").unwrap();
    let args = vec![Bytes::from("SET"), Bytes::from("k"), Bytes::from("v")];
    shared.engine.run(vec![(spec, args)]).await.unwrap().replies
}

/// The first message the node sends on `link` within 5 s that `pick` takes; `what` names it
/// in the failure.
async fn first_message<T>(
    link: &mut session::Link,
    what: &str,
    mut pick: impl FnMut(Message) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let frame = tokio::time::timeout_at(deadline, link.next())
            .await
            .unwrap_or_else(|_| panic!("no {what} within 5 s"))
            .expect("the session stays open")
            .unwrap();
        if let Some(found) = pick(wire::decode(&frame).unwrap()) {
            return found;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_and_broken_peers_are_dropped_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (shared, stop) = start(dir.path()).await;

    // An entry numbered 0 (no such position in any log).
    let mut link = session_to(&shared).await;
    let entry = replication::Entry::new(
        crdt::NodeId::from_name("liar"),
        0,
        hlc::Timestamp::ZERO,
        VersionVector::new(),
        Vec::new(),
    );
    session::send(
        &mut link,
        &Message::Entries(vec![Shipped {
            entry: Bytes::from(entry.encode()),
            acked_ms: None,
        }]),
    )
    .await
    .unwrap();
    assert!(
        closed(&mut link).await,
        "an entry numbered 0 ends the session"
    );

    // Bytes that are not an entry.
    let mut link = session_to(&shared).await;
    session::send(
        &mut link,
        &Message::Entries(vec![Shipped {
            entry: Bytes::from_static(b"\xff\xff\xff"),
            acked_ms: None,
        }]),
    )
    .await
    .unwrap();
    assert!(
        closed(&mut link).await,
        "an undecodable entry ends the session"
    );

    // A damaged frame (checksum does not match).
    let mut link = session_to(&shared).await;
    let mut frame = wire::encode(&Message::Ping {
        at_us: 1,
        coordinate: routing::Coordinate::default(),
        rtts: Vec::new(),
        head: 0,
        hlc: 0,
    })
    .to_vec();
    *frame.last_mut().unwrap() ^= 0xff;
    link.send(Bytes::from(frame)).await.unwrap();
    assert!(closed(&mut link).await, "a damaged frame ends the session");

    // A handshake repeated inside a session.
    let mut link = session_to(&shared).await;
    session::send(&mut link, &Message::Proof(vec![0; 32]))
        .await
        .unwrap();
    assert!(
        closed(&mut link).await,
        "a repeated handshake ends the session"
    );

    // A peer that writes under this node's own id (a copied data directory): each would
    // drop the other's writes as already held.
    let mut link = session_as(&shared, shared.engine.node, Vec::new()).await;
    assert!(
        closed(&mut link).await,
        "a peer with this node's id gets no session"
    );

    // A member list far beyond the table's bound, with nonsense among it.
    let mut members: Vec<MemberInfo> = (0..5000)
        .map(|i| MemberInfo {
            name: format!("ghost-{i}"),
            region: "x".into(),
            peer_addr: format!("127.0.0.{}:{}", 1 + i / 60000, 1 + i % 60000),
        })
        .collect();
    members.push(MemberInfo {
        name: String::new(),
        region: "x".into(),
        peer_addr: "not an address".into(),
    });
    let _link = session_listing(&shared, members).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        known_members(&shared) <= 1024,
        "the member table is bounded"
    );

    // A peer without the secret never gets a session.
    let stream = TcpStream::connect(shared.config.peer_addr).await.unwrap();
    let refused = session::handshake(
        session::frame(Box::new(stream)),
        None,
        &liar(),
        b"guess",
        crdt::NodeId::from_name("liar"),
        VersionVector::new(),
        Vec::new(),
    )
    .await;
    assert!(
        matches!(
            refused,
            Err(SessionError::Auth(_)) | Err(SessionError::Closed)
        ),
        "{:?}",
        refused.err()
    );

    // Gossip datagrams from a node without the secret, damaged ones and garbage: dropped
    // and counted; the node learns nothing from them.
    let before = known_members(&shared);
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut stranger = membership::Membership::new(
        MemberInfo {
            name: "stranger".into(),
            region: "x".into(),
            peer_addr: udp.local_addr().unwrap().to_string(),
        },
        1,
        7,
    );
    let wrong_key = membership::Keyring::from_secret(b"guess");
    stranger.announce(&shared.config.peer_addr.to_string());
    for effect in stranger.take_effects() {
        if let membership::Effect::Send { payload, .. } = effect {
            let datagram = wrong_key.seal(&payload, node::engine::wall_ms(), [3; 12]);
            udp.send_to(&datagram, shared.config.peer_addr)
                .await
                .unwrap();
            let mut damaged = datagram.to_vec();
            damaged[20] ^= 1;
            udp.send_to(&damaged, shared.config.peer_addr)
                .await
                .unwrap();
        }
    }
    udp.send_to(&[0xff; 3000], shared.config.peer_addr)
        .await
        .unwrap();
    udp.send_to(b"", shared.config.peer_addr).await.unwrap();
    let mut answer = [0u8; 2048];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), udp.recv_from(&mut answer))
            .await
            .is_err(),
        "the node does not answer a stranger's gossip"
    );
    assert_eq!(known_members(&shared), before);

    // And through all of it the node serves clients.
    assert_eq!(set_k(&shared).await, vec![resp::Reply::Simple("OK")]);
    drop(shared);
    let _ = stop.send(());
}

/// Replication lag counts from the origin's acknowledgment: the origin sends, with each of its
/// own entries, when it acknowledged the entry's writes, which is after the entry's stamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_ships_its_entries_with_when_it_acknowledged_them() {
    let dir = tempfile::tempdir().unwrap();
    let (shared, stop) = start(dir.path()).await;
    let mut link = session_to(&shared).await;
    let before_ms = node::engine::wall_ms();
    set_k(&shared).await;
    let heard_ms = node::engine::wall_ms();
    let shipped = first_message(&mut link, "shipped entry", |m| match m {
        Message::Entries(shipped) => Some(shipped),
        _ => None,
    })
    .await;
    assert_eq!(shipped.len(), 1);
    let entry = replication::Entry::decode(&shipped[0].entry).unwrap();
    assert_eq!((entry.origin, entry.seq), (shared.engine.node, 1));
    let acked_ms = shipped[0]
        .acked_ms
        .expect("the origin knows when it acknowledged");
    assert!(
        entry.hlc.physical_ms() <= acked_ms && (before_ms..=heard_ms).contains(&acked_ms),
        "stamped at {}, acknowledged at {acked_ms}, the client waited from {before_ms} to {heard_ms}",
        entry.hlc.physical_ms()
    );
    drop(shared);
    let _ = stop.send(());
}

/// A peer may ask for a sync (its client waits in `WAIT`) as often as it likes: the requests
/// fold into one sync at a time, the session stays open, and the acknowledgment of what the
/// peer sent comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_sync_requests_costs_one_sync_at_a_time_and_the_ack_comes() {
    let dir = tempfile::tempdir().unwrap();
    let (shared, stop) = start(dir.path()).await;
    let mut link = session_to(&shared).await;
    let origin = crdt::NodeId::from_name("liar");
    let entry = replication::Entry::new(
        origin,
        1,
        hlc::Timestamp::new(node::engine::wall_ms(), 0),
        VersionVector::new(),
        Vec::new(),
    );
    let shipped = Shipped {
        entry: Bytes::from(entry.encode()),
        acked_ms: None,
    };
    session::send(&mut link, &Message::Entries(vec![shipped]))
        .await
        .unwrap();
    for _ in 0..1000 {
        session::send(&mut link, &Message::SyncRequest)
            .await
            .unwrap();
    }
    first_message(&mut link, "acknowledgment of the entry", |m| match m {
        Message::Ack(vv) if vv.get(origin) == 1 => Some(()),
        _ => None,
    })
    .await;
    drop(shared);
    let _ = stop.send(());
}
