//! The UDP side of membership: datagrams in and out of the [`membership::Membership`] core
//! the peer runtime owns, and its timers.

use super::Event;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Receives datagrams and hands authentic-looking ones to the runtime. The runtime's core
/// checks each one's tag; this loop only drops what cannot be ours at all.
pub async fn receive_loop(
    socket: Arc<UdpSocket>,
    events: mpsc::Sender<Event>,
    isolated: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 1 + membership::TAG_BYTES + membership::PAYLOAD_BYTES_MAX + 64];
    loop {
        let Ok((n, _from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if isolated.load(Ordering::Relaxed) || n == buf.len() {
            // Cut off (the demo's partition), or larger than any datagram a member sends.
            continue;
        }
        // A full queue means the runtime is busy; gossip tolerates losing a datagram.
        let _ = events.try_send(Event::Datagram(Bytes::copy_from_slice(&buf[..n])));
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
