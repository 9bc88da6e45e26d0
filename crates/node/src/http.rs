//! The HTTP listener: `/v1/status` (JSON) and `/metrics` (Prometheus text), for the users
//! of the Redis protocol ([`auth`]), over HTTPS with `--http-tls`.

mod auth;
mod causal;
mod series;

pub use auth::new_token;

use crate::Shared;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The body of `GET /v1/status`.
#[derive(Debug, Serialize)]
pub struct Status {
    /// This node's name.
    pub node_id: String,
    /// Its region.
    pub region: String,
    /// Meridian's version.
    pub version: &'static str,
    /// Seconds since the node started.
    pub uptime_s: u64,
    /// Live keys.
    pub keys: u64,
    /// Live keys with a deadline.
    pub expires: u64,
    /// Keys this node deleted because their deadline passed, since it started.
    pub expired_keys: u64,
    /// Tombstones held (deleted keys, fields and members kept as merge state).
    pub tombstones: u64,
    /// Tombstones collected since the node started.
    pub tombstones_collected: u64,
    /// The members the tombstones wait for before they can be collected.
    pub tombstones_held_by: Vec<String>,
    /// Open client connections.
    pub connections: usize,
    /// When acknowledged writes reach the disk.
    pub fsync: String,
    /// Bytes the store holds on disk.
    pub disk_bytes: u64,
    /// This node's own change log position (sequence of its latest write).
    pub log_seq: u64,
    /// The id this node's data directory writes under (hex; a wiped node has a new one).
    pub write_id: String,
    /// Whether writes are refused: a peer holds more of this node's writes than its data
    /// directory (restored from an old copy); wipe it and restart.
    pub writes_refused: bool,
    /// Every other member this node knows.
    pub cluster: Vec<Peer>,
}

/// One member in `/v1/status`.
#[derive(Debug, Serialize)]
pub struct Peer {
    /// Its `--node-id`.
    pub node_id: String,
    /// Its region.
    pub region: String,
    /// Its peer address.
    pub peer_addr: String,
    /// `up`, `suspect`, `down` or `left`, as gossip tells.
    pub state: &'static str,
    /// Whether a replication session with it is open.
    pub link: bool,
    /// Age of the oldest write of this node it has not acknowledged, in ms.
    pub lag_ms: u64,
    /// Entries this node holds that it has not acknowledged.
    pub lag_ops: u64,
    /// The round trip to it in ms, from the link's pings (none before the first).
    pub rtt_ms: Option<f64>,
}

/// Serves HTTP (HTTPS with `--http-tls`) until `stop` turns true.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let app = Router::new()
        .route("/v1/status", get(status))
        .route("/metrics", get(metrics))
        .route("/v1/cluster", get(cluster))
        .route("/v1/ts/{key}", get(series::get).post(series::post))
        // Inner, so after the login: causal tokens on every answer (`http/causal.rs`).
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            causal::tokens,
        ))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            auth::require,
        ))
        .with_state(shared.clone());
    if shared.config.http_tls {
        return serve_tls(listener, app, shared, stop).await;
    }
    let result = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = stop.changed().await;
    })
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "HTTP server failed");
    }
}

/// How long an HTTPS client has to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves HTTPS with the client listener's certificates (`--tls-cert-file` and the rest,
/// reloaded on SIGHUP), one task per connection, until `stop` turns true.
async fn serve_tls(
    listener: TcpListener,
    app: Router,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "HTTPS accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let Some(acceptor) = shared.certs.client() else {
            return; // --http-tls is refused at start without the TLS files
        };
        let app = app.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(socket))
                .await
            {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "refused an HTTPS client: handshake failed");
                    metrics::counter!("meridian_tls_handshake_failures_total").increment(1);
                    return;
                }
                Err(_) => return,
            };
            let service = hyper::service::service_fn(
                move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request
                        .extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    let app = app.clone();
                    async move {
                        use tower::ServiceExt;
                        app.oneshot(request.map(axum::body::Body::new)).await
                    }
                },
            );
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "HTTPS connection ended");
                    }
                }
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

async fn status(State(shared): State<Arc<Shared>>) -> Json<Status> {
    let stats = &shared.engine.stats;
    Json(Status {
        node_id: shared.config.node_id.clone(),
        region: shared.config.region.clone(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: shared.started.elapsed().as_secs(),
        keys: stats.live_keys.load(Ordering::Relaxed),
        expires: stats.expires.load(Ordering::Relaxed),
        expired_keys: stats.expired.load(Ordering::Relaxed),
        tombstones: stats.tombstones.load(Ordering::Relaxed),
        tombstones_collected: stats.collected.load(Ordering::Relaxed),
        tombstones_held_by: shared.cluster.collection_held_by(),
        connections: shared.connections.load(Ordering::Relaxed),
        fsync: format!("{:?}", shared.config.fsync).to_lowercase(),
        disk_bytes: stats.disk_bytes.load(Ordering::Relaxed),
        log_seq: shared
            .engine
            .progress
            .borrow()
            .applied
            .get(shared.engine.node),
        write_id: format!("{:016x}", shared.engine.node.0),
        writes_refused: shared.engine.writes_refused(),
        cluster: shared
            .cluster
            .view
            .borrow()
            .members
            .iter()
            .map(|m| Peer {
                node_id: m.info.name.clone(),
                region: m.info.region.clone(),
                peer_addr: m.info.peer_addr.clone(),
                state: m.state.name(),
                link: m.link,
                lag_ms: m.lag_ms,
                lag_ops: m.lag_ops,
                rtt_ms: m.rtt_ms,
            })
            .collect(),
    })
}

/// The body of `GET /v1/cluster`: every member with the round trip this node measures to it
/// and its network coordinate, and the region-by-region matrix of round trips.
#[derive(Debug, Serialize)]
pub struct Cluster {
    /// This node.
    pub node_id: String,
    /// Its region.
    pub region: String,
    /// Its network coordinate.
    pub coordinate: routing::Coordinate,
    /// Every other member.
    pub members: Vec<ClusterMember>,
    /// `regions[a][b]`: the round trip in ms between the nearest nodes of regions `a` and
    /// `b`: measured where one of them is this node, predicted from the coordinates for pairs
    /// this node has no link between. Absent while unknown.
    pub regions: BTreeMap<String, BTreeMap<String, f64>>,
    /// Whether this node takes clients: `catching_up`, `ready` or `draining`.
    pub serving: &'static str,
    /// Per region, the node discovery sends its clients to (absent while none is ready).
    pub discovery: BTreeMap<String, String>,
    /// The cluster's watermark here (ms): every write stamped before it by every member not
    /// down is applied here (time series' buckets turn final by it).
    pub watermark_ms: u64,
    /// How far each peer's writes have arrived here, and whether the watermark leaves it out.
    pub watermarks: Vec<crate::engine::OriginMark>,
}

/// One member in `/v1/cluster`.
#[derive(Debug, Serialize)]
pub struct ClusterMember {
    /// Its `--node-id`.
    pub node_id: String,
    /// Its region.
    pub region: String,
    /// `up`, `suspect`, `down` or `left`.
    pub state: &'static str,
    /// The round trip this node measures to it, in ms.
    pub rtt_ms: Option<f64>,
    /// Its network coordinate, as it last sent it.
    pub coordinate: Option<routing::Coordinate>,
    /// Whether it takes clients, as it said over the open link (absent without one).
    pub serving: Option<&'static str>,
    /// Where its clients connect, as it said.
    pub clients: Option<String>,
}

async fn cluster(State(shared): State<Arc<Shared>>) -> Json<Cluster> {
    let view = shared.cluster.view.borrow().clone();
    let me = (&shared.config.node_id, &shared.config.region);
    let regions = crate::discovery::region_matrix(&shared.config.region, &view);
    Json(Cluster {
        node_id: me.0.clone(),
        region: me.1.clone(),
        coordinate: view.coordinate.clone(),
        members: (view.members.iter())
            .map(|m| ClusterMember {
                node_id: m.info.name.clone(),
                region: m.info.region.clone(),
                state: m.state.name(),
                rtt_ms: m.rtt_ms,
                coordinate: m.coordinate.clone(),
                serving: m.serving.as_ref().map(|s| s.status.name()),
                clients: m.serving.as_ref().map(|s| s.clients.clone()),
            })
            .collect(),
        regions,
        serving: (view.serving.as_ref()).map_or("catching_up", |s| s.status.name()),
        discovery: {
            let picture = crate::discovery::Picture::of(&shared);
            (picture.regions().into_iter())
                .filter_map(|r| Some((r.clone(), picture.answer(&r, &r)?.name)))
                .collect()
        },
        watermark_ms: shared.engine.stats.watermark(crate::engine::wall_ms()).0,
        watermarks: shared
            .engine
            .stats
            .watermarks
            .lock()
            .expect("not poisoned")
            .clone(),
    })
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let stats = &shared.engine.stats;
    metrics::gauge!("meridian_keys").set(stats.live_keys.load(Ordering::Relaxed) as f64);
    metrics::gauge!("meridian_keys_with_expiry").set(stats.expires.load(Ordering::Relaxed) as f64);
    metrics::gauge!("meridian_tombstones").set(stats.tombstones.load(Ordering::Relaxed) as f64);
    metrics::gauge!("meridian_tombstones_held_by_members")
        .set(shared.cluster.collection_held_by().len() as f64);
    metrics::gauge!("meridian_storage_bytes").set(stats.disk_bytes.load(Ordering::Relaxed) as f64);
    metrics::gauge!("meridian_uptime_seconds").set(shared.started.elapsed().as_secs_f64());
    let view = shared.cluster.view.borrow().clone();
    for (from, row) in crate::discovery::region_matrix(&shared.config.region, &view) {
        for (to, ms) in row {
            metrics::gauge!("meridian_region_rtt_seconds", "from" => from.clone(), "to" => to)
                .set(ms / 1000.0);
        }
    }
    match &shared.metrics {
        Some(handle) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain")],
            "no metrics recorder installed\n".into(),
        ),
    }
}
