//! The Redis-protocol listener and its connections.

mod blocking;
pub mod clients;
pub use monitor::Monitors;
mod commands;
mod connection;
mod monitor;
mod multi;
pub mod pause;
pub mod slowlog;
pub mod tracking;

use crate::Shared;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// Accepts connections until `stop` turns true. Each connection task holds a clone of `done`
/// so the caller can wait for all of them to finish.
pub async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let (mut socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: log, breathe, go on serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
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
        tokio::spawn(async move {
            if let Err(e) = connection::serve(socket, shared.clone(), stop).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            let open = shared.connections.fetch_sub(1, Ordering::Relaxed) - 1;
            metrics::gauge!("meridian_connections").set(open as f64);
            drop(done);
        });
    }
}
