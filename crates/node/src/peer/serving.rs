//! Where and whether this node serves clients, told to every peer: discovery (sentinel, DNS)
//! names only nodes that said they are ready.
//!
//! A node starts *catching up*: it is not named until it has applied everything its peers
//! held when their sessions opened (so a node coming back does not get its clients back while
//! it is behind), then it is *ready*. Draining (`MERIDIAN DRAIN`, and every shutdown) makes it
//! *draining*: peers stop naming it at once, and its clients are then closed so they ask
//! discovery again.

use super::{Runtime, Serving, Status};
use crate::NodeConfig;
use crdt::NodeId;
use membership::Liveness;
use std::net::SocketAddr;
use std::time::Duration;

/// How long a starting node waits for members it remembers (or seeds) that it has not
/// reached, before it serves without them: one that is down must not keep it out for good.
const REACH_WAIT: Duration = Duration::from_secs(5);
/// The same for a member gossip says is up but that this node has no session with (links
/// are dialled every second; a member up but unreachable from here gives up after this).
const REACH_ALIVE_WAIT: Duration = Duration::from_secs(30);
/// Longest address or name accepted in a peer's `Serving`.
const ADDR_BYTES_MAX: usize = 255;
/// Largest capacity accepted from a peer (and from `--capacity`).
pub const CAPACITY_MAX: u32 = 1_000_000;

/// This node's announcement as it starts: catching up.
pub(super) fn own(config: &NodeConfig) -> Serving {
    Serving {
        clients: config.client_addr().to_string(),
        tls_clients: (config.tls.as_ref()).map(|t| {
            config
                .reachable(SocketAddr::new(config.resp_addr.ip(), t.port))
                .to_string()
        }),
        sentinel: config
            .sentinel_addr
            .map(|a| config.reachable(a).to_string()),
        capacity: config.capacity,
        status: Status::CatchingUp,
    }
}

impl Runtime {
    /// Becomes ready once caught up: it has had a session with every member it knows (and
    /// reached every seed), and has applied everything each of those peers held when its
    /// session opened (of other origins than this node). A member it cannot reach does not
    /// keep it out for good: one gossip says is down after [`REACH_WAIT`], one gossip says is
    /// up (it may be reachable only through others) after [`REACH_ALIVE_WAIT`].
    pub(super) fn check_caught_up(&mut self) {
        if self.serving.status != Status::CatchingUp {
            return;
        }
        let applied = self.shared.engine.progress.borrow().applied.clone();
        let mine = self.core.me();
        let liveness = self.gossip.livenesses();
        let waited = self.started.elapsed();
        let mut behind = false;
        let mut unreached = self.seeds.iter().any(|s| s.reached.is_none());
        let mut unreached_alive = false;
        for known in self.members.values().filter(|k| !k.left) {
            match (&known.session, &known.since) {
                (Some(_), Some(since)) => behind |= !applied.dominates(&since.without(mine)),
                _ => match liveness.get(known.info.name.as_str()) {
                    Some(Liveness::Alive) => unreached_alive = true,
                    _ => unreached = true,
                },
            }
        }
        let waiting = behind
            || (unreached && waited < REACH_WAIT)
            || (unreached_alive && waited < REACH_ALIVE_WAIT);
        if !waiting {
            tracing::info!("caught up with the peers: ready for clients");
            self.set_status(Status::Ready);
        }
    }

    /// `MERIDIAN DRAIN` (and shutdown) on, `MERIDIAN UNDRAIN` off.
    pub(super) fn drain(&mut self, on: bool) {
        match (on, self.serving.status) {
            (true, Status::Draining) | (false, Status::CatchingUp | Status::Ready) => {}
            (true, _) => {
                tracing::info!("draining: discovery stops naming this node");
                self.set_status(Status::Draining);
            }
            (false, Status::Draining) => {
                tracing::info!("no longer draining");
                self.set_status(Status::CatchingUp);
                self.check_caught_up();
            }
        }
        self.publish_view();
    }

    fn set_status(&mut self, status: Status) {
        self.serving.status = status;
        for node in self.sessions.values() {
            self.send(*node, super::Message::Serving(self.serving.clone()));
        }
    }

    /// A peer says where and whether it serves clients.
    pub(super) fn on_serving(&mut self, node: NodeId, serving: Serving) {
        let addr = |a: &String| a.len() <= ADDR_BYTES_MAX && a.parse::<SocketAddr>().is_ok();
        let plausible = addr(&serving.clients)
            && serving.tls_clients.as_ref().is_none_or(addr)
            && serving.sentinel.as_ref().is_none_or(addr)
            && serving.capacity <= CAPACITY_MAX;
        if !plausible {
            metrics::counter!("meridian_peer_protocol_errors_total").increment(1);
            tracing::warn!(
                ?serving,
                "peer announced an implausible client address; ignored"
            );
            return;
        }
        if let Some(known) = self.members.get_mut(&node) {
            if known.serving.as_ref().map(|s| s.status) != Some(serving.status) {
                tracing::info!(peer = %known.info.name, status = serving.status.name(), "peer serving status");
            }
            known.serving = Some(serving);
        }
    }
}
