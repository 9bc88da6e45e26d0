//! How far each peer is: every second each session is pinged with this node's clock and
//! network coordinate; the peer answers at once with a pong carrying the clock back, so the
//! round trip is measured on one clock (simulated WAN delay included both ways, as a real
//! path's would be). Each round trip feeds the peer's [`routing::Rtt`] and moves this node's
//! [`routing::Coordinate`] (Vivaldi); the peer's coordinate is kept as it last sent it.

use super::{Known, Runtime};
use crate::peer::wire::{Message, RTTS_MAX};
use crdt::NodeId;
use routing::{Coordinate, DIMENSIONS};
use tokio::time::Instant;

/// The coordinate's relative error below which it is settled.
const SETTLED_ERROR: f64 = 0.2;

impl Runtime {
    /// This node's clock for pings, in µs since it started.
    fn clock_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    /// Whether this node's coordinate is still unsure of its place: it is pinged for more
    /// often then (a new node settles in seconds, not tens of seconds).
    pub(super) fn settling(&self) -> bool {
        self.coordinate.error > SETTLED_ERROR
    }

    /// Pings every open session.
    pub(super) fn ping_all(&self) {
        let (now, at_us) = (Instant::now(), self.clock_us());
        let rtts: Vec<(String, f32)> = (self.members.values())
            .filter_map(|k| Some((k.info.name.clone(), k.rtt.ms()? as f32)))
            .take(RTTS_MAX)
            .collect();
        let (head, hlc) = self.heartbeat();
        for known in self.members.values() {
            if let Some(s) = &known.session {
                let ping = Message::Ping {
                    at_us,
                    coordinate: self.coordinate.clone(),
                    rtts: rtts.clone(),
                    head,
                    hlc,
                };
                let _ = s.tx.try_send((now, ping));
            }
        }
    }

    /// A peer's ping: answered at once.
    pub(super) fn on_ping(
        &mut self,
        node: NodeId,
        at_us: u64,
        coordinate: Coordinate,
        mut rtts: Vec<(String, f32)>,
    ) {
        if let Some(known) = self.members.get_mut(&node) {
            remember(known, coordinate);
            // A peer's list is bounded and its figures plausible, or it is not kept.
            rtts.retain(|(name, ms)| name.len() <= 255 && ms.is_finite() && *ms >= 0.0);
            rtts.truncate(RTTS_MAX);
            known.rtts = rtts;
        }
        if let Some(tx) = self.session_tx(node) {
            let coordinate = self.coordinate.clone();
            let _ = tx.try_send((Instant::now(), Message::Pong { at_us, coordinate }));
        }
    }

    /// The answer to one of this node's pings: a round trip.
    pub(super) fn on_pong(&mut self, node: NodeId, at_us: u64, coordinate: Coordinate) {
        let now_us = self.clock_us();
        if at_us > now_us {
            return; // not one of ours
        }
        let rtt_ms = (now_us - at_us) as f64 / 1000.0;
        let Some(known) = self.members.get_mut(&node) else {
            return;
        };
        known.rtt.sample(rtt_ms);
        // The coordinate moves by the filtered round trip, not the sample: a pong that queued
        // behind a burst of entries must not move this node away from everyone (discovery
        // would then see the regions' distances change under load, and its answers flap).
        let filtered = known.rtt.ms().unwrap_or(rtt_ms);
        if coordinate.is_sane() {
            self.coordinate.update(
                &coordinate,
                filtered,
                nudge(&self.me.name, &known.info.name),
            );
        }
        remember(known, coordinate);
        if let Some(ms) = known.rtt.ms() {
            metrics::gauge!("meridian_peer_rtt_seconds", "peer" => known.info.name.clone())
                .set(ms / 1000.0);
        }
    }
}

fn remember(known: &mut Known, coordinate: Coordinate) {
    if coordinate.is_sane() {
        known.coordinate = Some(coordinate);
    }
}

/// A direction for two nodes on one point, fixed per pair (from the names) and distinct for
/// the two ends (each pushes away from the other).
fn nudge(me: &str, peer: &str) -> [f64; DIMENSIONS] {
    let seed = me
        .bytes()
        .chain([0])
        .chain(peer.bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    std::array::from_fn(|i| {
        let bits = seed.rotate_left(8 * i as u32) & 0xff;
        bits as f64 / 255.0 - 0.5
    })
}
