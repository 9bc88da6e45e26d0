//! The Redis-protocol listener and its connections.

mod blocking;
pub mod causal;
pub mod clients;
pub use monitor::Monitors;
mod commands;
mod connection;
pub(crate) use commands::REDIS_COMPAT_VERSION;
pub use connection::Stream;
pub(crate) use connection::{READ_CHUNK, read_ahead, refused_by_protected_mode};
mod monitor;
mod multi;
pub mod pause;
pub mod slowlog;
pub mod tracking;
pub mod users;

use crate::Shared;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// The next connection on `listener`, or `None` once `stop` changes. A failed accept (out
/// of file descriptors and the like) is logged and tried again after a breath: the listener
/// goes on serving. Shared by the data, Sentinel and MQTT listeners (`what` names which).
pub(crate) async fn accept_next(
    listener: &TcpListener,
    stop: &mut watch::Receiver<bool>,
    what: &'static str,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return None,
        };
        match accepted {
            Ok(a) => return Some(a),
            Err(e) => {
                tracing::warn!(error = %e, listener = what, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Accepts connections until `stop` turns true, over TLS when `tls` (the `--tls-port`
/// listener, with the certificates loaded last). Each connection task holds a clone of `done` so the caller can
/// wait for all of them to finish.
pub async fn accept_loop(
    listener: TcpListener,
    tls: bool,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    while let Some((mut socket, peer)) = accept_next(&listener, &mut stop, "redis").await {
        let open = shared.connections.fetch_add(1, Ordering::Relaxed);
        if open >= shared.config.max_clients {
            shared.connections.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(%peer, max_clients = shared.config.max_clients, "refused a client: connection limit reached");
            metrics::counter!("meridian_connections_rejected_total").increment(1);
            tokio::spawn(async move {
                let _ = socket
                    .write_all(b"-ERR max number of clients reached\r\n")
                    .await;
                let _ = socket.shutdown().await;
            });
            continue;
        }
        let _ = socket.set_nodelay(true);
        shared.connections_total.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("meridian_connections").set((open + 1) as f64);
        let shared = shared.clone();
        let stop = stop.clone();
        let done = done.clone();
        let tls = if tls { shared.certs.client() } else { None };
        tokio::spawn(async move {
            let served = match (socket.local_addr(), tls) {
                (Err(e), _) => Err(e),
                (Ok(laddr), None) => {
                    connection::serve(socket, peer, laddr, shared.clone(), stop).await
                }
                (Ok(laddr), Some(tls)) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(socket)).await {
                        Ok(Ok(stream)) => {
                            connection::serve(stream, peer, laddr, shared.clone(), stop).await
                        }
                        Ok(Err(e)) => {
                            tracing::info!(%peer, error = %e, "refused a TLS client: handshake failed");
                            metrics::counter!("meridian_tls_handshake_failures_total").increment(1);
                            Ok(())
                        }
                        Err(_) => {
                            tracing::info!(%peer, "refused a TLS client: no handshake in time");
                            metrics::counter!("meridian_tls_handshake_failures_total").increment(1);
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            let open = shared.connections.fetch_sub(1, Ordering::Relaxed) - 1;
            metrics::gauge!("meridian_connections").set(open as f64);
            drop(done);
        });
    }
}
