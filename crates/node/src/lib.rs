//! The Meridian node: everything that does I/O.
//!
//! A tour of the data path, from a client's command to the disk:
//! 1. [`server`] accepts Redis-protocol connections. Each connection's task reads bytes, splits
//!    them into commands with `resp::parse_command`, answers connection commands itself
//!    (`HELLO`, `CLIENT`, pub/sub, ...) and sends runs of data commands to the engine.
//! 2. [`engine`] is one OS thread that owns the keyspace. It runs the commands of every waiting
//!    connection as one round against a [`engine::Txn`], where each write becomes a CRDT delta
//!    stamped with the node's hybrid logical clock and merged into the key's record; then it
//!    commits the round as one batch (one fsync under `--fsync always`) and answers.
//! 3. [`cmd`] holds the command table and the data commands, one file per family.
//! 4. [`http`] serves `/v1/status` and `/metrics`.
//!
//! [`run`] starts all of it and stops it gracefully when told to.

pub mod acl;
pub mod cmd;
pub mod config;
pub mod discovery;
pub mod engine;
pub mod glob;
pub mod http;
pub mod mqtt;
pub mod peer;
pub mod pubsub;
pub mod server;
pub mod tls;

pub use config::NodeConfig;
pub use engine::FsyncPolicy;

use engine::EngineConfig;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;
use storage::FjallStore;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// What every connection and the HTTP server share.
pub struct Shared {
    /// The settings the node runs with.
    pub config: NodeConfig,
    /// The way to the engine thread.
    pub engine: engine::EngineHandle,
    /// Pub/sub subscriptions.
    pub hub: Arc<pubsub::Hub>,
    /// Keyspace notifications: which are on (`notify-keyspace-events`).
    pub notifier: engine::notify::Notifier,
    /// The peer runtime: cluster view, cross-region publish.
    pub cluster: peer::Handle,
    /// When the node started.
    pub started: Instant,
    /// `CLIENT PAUSE`.
    pub pause: server::pause::Pause,
    /// Users and their passwords.
    pub users: acl::Users,
    /// TLS certificates of the client listener and the peer links (reloaded on SIGHUP).
    pub certs: Arc<tls::Certs>,
    /// Commands that ran long (`SLOWLOG`, `LATENCY`).
    pub slowlog: Arc<server::slowlog::Slowlog>,
    /// Open client connections.
    pub connections: std::sync::atomic::AtomicUsize,
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// The next client id (`CLIENT ID`).
    pub next_client_id: AtomicU64,
    /// Renders `/metrics`, when a recorder is installed.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Parameters set with `CONFIG SET` that only tune Redis's own encodings: kept and
    /// reported by `CONFIG GET`, with no effect here.
    pub tuning: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
    /// Commands run since start (`INFO stats`).
    pub commands_total: AtomicU64,
    /// Open client connections, for `CLIENT LIST` and `CLIENT KILL`.
    pub clients: Arc<server::clients::Clients>,
    /// Client-side caching: who is told when which keys change.
    pub tracking: Arc<server::tracking::Tracking>,
    /// Connections in `MONITOR`.
    pub monitors: server::Monitors,
    /// The answers discovery gives (sentinel, DNS), and their changes.
    pub discovery: discovery::Discovery,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The storage engine could not open the data directory.
    #[error("opening storage in {dir}: {source}")]
    Storage {
        /// The data directory.
        dir: String,
        /// The engine's error.
        source: storage::StorageError,
    },
    /// A listener could not bind.
    #[error("binding {what} on {addr}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: std::net::SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// The TLS settings do not make a TLS listener (a file missing or wrong).
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The ACL file could not be read, or a line of it is wrong.
    #[error("--aclfile: {0}")]
    Acl(String),
    /// The DNS zone or subnet table is wrong.
    #[error("{0}")]
    Dns(String),
}

/// Binds one of the node's listeners.
async fn bind(what: &'static str, addr: std::net::SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })
}

/// Runs a node until `shutdown` completes, then stops gracefully: no new connections, every
/// connection finishes the command it is running, the engine commits and syncs, and `run`
/// returns. `ready` is called once the listeners are bound.
pub async fn run(
    config: NodeConfig,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(&Arc<Shared>),
) -> Result<(), StartError> {
    let certs = Arc::new(tls::Certs::load(&config)?);
    let users = match &config.aclfile {
        Some(path) => acl::Users::from_file(path).map_err(StartError::Acl)?,
        None => acl::Users::new(config.requirepass.as_deref()),
    };
    std::fs::create_dir_all(&config.data_dir).ok();
    let store = FjallStore::open(&config.data_dir, config.cache_bytes).map_err(|source| {
        StartError::Storage {
            dir: config.data_dir.display().to_string(),
            source,
        }
    })?;
    // Keyspace events are published by the engine thread, to this node's subscribers.
    let hub = Arc::new(pubsub::Hub::default());
    let notifier = engine::notify::Notifier::new({
        let hub = hub.clone();
        Arc::new(move |channel, message| {
            hub.publish(channel, message);
        })
    });
    // Client-side caching: every commit's keys go to the tracking table.
    let clients = Arc::new(server::clients::Clients::default());
    let tracking = Arc::new(server::tracking::Tracking::new(clients.clone()));
    // The cluster's users (`server::users`): read again after each commit that changed them.
    let users_changed = Arc::new(tokio::sync::Notify::new());
    let invalidate: engine::Invalidate = {
        let tracking = tracking.clone();
        let users_changed = users_changed.clone();
        Arc::new(move |keys, written_by| {
            if server::users::touches_table(keys) {
                users_changed.notify_one();
                // Meridian's own keys are no tracking client's business.
                let keys: Vec<bytes::Bytes> = (keys.unwrap_or_default().iter())
                    .filter(|k| !acl::is_reserved(k))
                    .cloned()
                    .collect();
                return tracking.invalidate(Some(&keys), written_by);
            }
            tracking.invalidate(keys, written_by)
        })
    };
    // SLOWLOG and LATENCY: the engine times each data command it runs.
    let slowlog = Arc::new(server::slowlog::Slowlog::new(clients.clone()));
    let took: engine::Took = {
        let slowlog = slowlog.clone();
        Arc::new(move |client, args, took| slowlog.took(client, args, took))
    };
    let engine_config = EngineConfig {
        invalidate: Some(invalidate),
        took: Some(took),
        notifier: notifier.clone(),
        node_name: config.node_id.clone(),
        fsync: config.fsync,
        max_offset_ms: config.max_offset_ms,
        max_value_len: config.limits.max_bulk_len,
        // A node that never had a peer removes deleted state at once (as a single node should,
        // or expired keys would fill the disk). Once it joins or is joined, tombstones stay:
        // they judge peers' late concurrent writes (collecting them needs causal stability).
        drop_tombstones: Arc::new(std::sync::atomic::AtomicBool::new(
            config.join.is_empty() && !config.data_dir.join(peer::MEMBERS_FILE).exists(),
        )),
    };
    let (engine, engine_thread) =
        engine::spawn(Arc::new(store), engine_config).map_err(|source| StartError::Storage {
            dir: config.data_dir.display().to_string(),
            source,
        })?;

    // Port 0 with TLS: no plain port, as Redis's `port 0` (clients speak TLS only).
    let resp_listener = match config.resp_addr.port() == 0 && config.tls.is_some() {
        true => None,
        false => Some(bind("the RESP listener", config.resp_addr).await?),
    };
    let tls_listener = match &config.tls {
        Some(t) => {
            let addr = std::net::SocketAddr::new(config.resp_addr.ip(), t.port);
            Some(bind("the TLS listener", addr).await?)
        }
        None => None,
    };
    let http_listener = bind("the HTTP listener", config.http_addr).await?;
    let sentinel_listener = match config.sentinel_addr {
        Some(addr) => Some(bind("the sentinel listener", addr).await?),
        None => None,
    };
    let dns = match config.dns_addr {
        Some(addr) => {
            let zone = discovery::dns::Zone::new(&config.dns_zone, &config.dns_subnets)
                .map_err(StartError::Dns)?;
            let socket =
                tokio::net::UdpSocket::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind {
                        what: "the DNS socket (UDP)",
                        addr,
                        source,
                    })?;
            Some((socket, zone))
        }
        None => None,
    };

    let mqtt_listener = match config.mqtt_addr {
        Some(addr) => Some(bind("the MQTT listener", addr).await?),
        None => None,
    };
    let peer_listener = bind("the peer listener", config.peer_addr).await?;
    // Gossip (SWIM) uses UDP on the same port as the replication links.
    let gossip_addr = peer_listener.local_addr().unwrap_or(config.peer_addr);
    let gossip_socket = tokio::net::UdpSocket::bind(gossip_addr)
        .await
        .map_err(|source| StartError::Bind {
            what: "the gossip socket (UDP)",
            addr: gossip_addr,
            source,
        })?;
    let (cluster, cluster_parts) = peer::channels();
    let shared = Arc::new(Shared {
        config,
        engine,
        hub,
        notifier,
        cluster,
        started: Instant::now(),
        connections: Default::default(),
        connections_total: AtomicU64::new(0),
        next_client_id: AtomicU64::new(1),
        metrics,
        tuning: Default::default(),
        commands_total: AtomicU64::new(0),
        clients,
        slowlog,
        pause: Default::default(),
        users,
        certs,
        tracking,
        monitors: Default::default(),
        discovery: Default::default(),
    });
    server::users::refresh(&shared);
    tokio::spawn(server::users::follow(
        Arc::downgrade(&shared),
        users_changed,
    ));
    ready(&shared);

    // Time for the engine: flushes under --fsync batch, reclaims expired keys and tombstones.
    tokio::spawn(shared.engine.clone().tick());

    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection holds a clone; when all are dropped, every connection has finished.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let http_task = tokio::spawn(http::serve(http_listener, shared.clone(), stop_rx.clone()));
    let peer_task = tokio::spawn(peer::run(
        shared.clone(),
        peer_listener,
        gossip_socket,
        cluster_parts,
        stop_rx.clone(),
    ));
    tokio::spawn(reload_on_hangup(shared.certs.clone()));
    tokio::spawn(discovery::follow(Arc::downgrade(&shared)));
    if let Some((socket, zone)) = dns {
        tokio::spawn(discovery::dns::serve(
            socket,
            zone,
            shared.clone(),
            stop_rx.clone(),
        ));
    }
    if let Some(listener) = mqtt_listener {
        tokio::spawn(mqtt::serve(listener, shared.clone(), stop_rx.clone()));
    }
    if let Some(listener) = sentinel_listener {
        tokio::spawn(discovery::sentinel::serve(
            listener,
            shared.clone(),
            stop_rx.clone(),
        ));
    }
    let tls_task = tls_listener.map(|listener| {
        tokio::spawn(server::accept_loop(
            listener,
            true,
            shared.clone(),
            stop_rx.clone(),
            done_tx.clone(),
        ))
    });
    let accept_task = resp_listener.map(|listener| {
        tokio::spawn(server::accept_loop(
            listener,
            false,
            shared.clone(),
            stop_rx,
            done_tx,
        ))
    });

    shutdown.await;
    // Clients are handed over first: discovery stops naming this node, then they close.
    discovery::drain(&shared, None).await;
    tracing::info!("shutting down: finishing in-flight commands");
    let _ = stop_tx.send(true);
    if let Some(task) = accept_task {
        let _ = task.await;
    }
    if let Some(task) = tls_task {
        let _ = task.await;
    }
    let _ = done_rx.recv().await;
    let _ = http_task.await;
    let _ = peer_task.await;
    // The last engine handle goes with `shared`; the engine then commits, syncs and stops.
    drop(shared);
    let _ = tokio::task::spawn_blocking(move || engine_thread.join()).await;
    tracing::info!("stopped");
    Ok(())
}

/// How long a node that stops or drains waits, after telling its peers, before it closes its
/// clients' connections: time for the peers to hear it and for discovery to name another
/// node, so the clients that reconnect at once are sent elsewhere.
pub const HAND_OVER: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads the TLS certificates and the gossip keyring again on every SIGHUP (a renewed node
/// certificate, a new CA, a key installed, used or removed):
/// new connections use them, established ones go on. Files that do not load are logged and
/// the node keeps what it had.
async fn reload_on_hangup(certs: Arc<tls::Certs>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: certificates will not reload");
        return;
    };
    while hangups.recv().await.is_some() {
        match certs.reload() {
            Ok(()) => {
                tracing::info!("SIGHUP: reloaded certificates and gossip keys");
                metrics::counter!("meridian_tls_reloads_total").increment(1);
            }
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: kept the old certificates and gossip keys");
                metrics::counter!("meridian_tls_reload_failures_total").increment(1);
            }
        }
    }
}
