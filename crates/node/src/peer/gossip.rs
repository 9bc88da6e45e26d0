//! The UDP side of membership: datagrams in and out of the [`membership::Membership`] core
//! the peer runtime owns, and its timers.
//!
//! Every datagram is sealed under the gossip keyring (`--gossip-keyring`, or a key derived
//! from `--cluster-secret`; ChaCha20-Poly1305, see [`membership::Keyring`]) with this node's
//! wall clock and a random nonce, so names, regions and addresses are not readable on the
//! wire. Arrivals that do not open under a key of the ring, were sent outside the window, or
//! repeat a nonce are dropped here and counted by reason
//! (`meridian_gossip_rejected_total{reason=...}`).

use super::Event;
use crate::Shared;
use crate::tls::Certs;
use bytes::Bytes;
use membership::ReplayGuard;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Milliseconds of the wall clock.
fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `payload` as a datagram for the members: sealed under the keyring's first key.
pub fn seal(shared: &Shared, payload: &[u8]) -> Bytes {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).expect("the OS has randomness");
    shared.certs.keyring().seal(payload, wall_ms(), nonce)
}

/// Receives datagrams, opens them, and hands the payloads of genuine, fresh ones to the
/// runtime.
pub async fn receive_loop(
    certs: Arc<Certs>,
    socket: Arc<UdpSocket>,
    events: mpsc::Sender<Event>,
    isolated: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; membership::OVERHEAD_BYTES + membership::PAYLOAD_BYTES_MAX + 64];
    let mut guard = ReplayGuard::default();
    loop {
        // Until the runtime is gone: then the socket is let go (a node started again in the
        // same process binds the same port).
        let received = tokio::select! {
            received = socket.recv_from(&mut buf) => received,
            () = events.closed() => return,
        };
        let Ok((n, from)) = received else {
            continue;
        };
        if isolated.load(Ordering::Relaxed) || n == buf.len() {
            // Cut off (the demo's partition), or larger than any datagram a member sends.
            continue;
        }
        let opened = certs
            .keyring()
            .open(&buf[..n])
            .and_then(|(sent, nonce, payload)| {
                guard.admit(sent, nonce, wall_ms())?;
                Ok(payload)
            });
        match opened {
            // A full queue means the runtime is busy; gossip tolerates losing a datagram.
            Ok(payload) => drop(events.try_send(Event::Datagram(Bytes::from(payload)))),
            Err(why) => {
                metrics::counter!("meridian_gossip_rejected_total", "reason" => why.name())
                    .increment(1);
                tracing::debug!(%from, reason = why.name(), "gossip datagram dropped");
            }
        }
    }
}

/// Sends `datagram` to `to` after `delay` (the simulated WAN), if `to` is an address.
pub fn send(socket: &Arc<UdpSocket>, to: &str, delay: Duration, datagram: Bytes) {
    let Ok(addr) = to.parse::<SocketAddr>() else {
        // A seed given by host name: resolve it off the runtime's task.
        let (socket, to) = (socket.clone(), to.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Ok(mut addrs) = tokio::net::lookup_host(&to).await
                && let Some(addr) = addrs.next()
            {
                let _ = socket.send_to(&datagram, addr).await;
            }
        });
        return;
    };
    if delay.is_zero() {
        // Lost if the socket buffer is full, as any datagram may be.
        let _ = socket.try_send_to(&datagram, addr);
    } else {
        let socket = socket.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = socket.send_to(&datagram, addr).await;
        });
    }
}

/// Hands `timer` back to the runtime after `after`.
pub fn schedule(events: &mpsc::Sender<Event>, after: Duration, timer: membership::Timer) {
    let events = events.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        let _ = events.send(Event::Timer(timer)).await;
    });
}
