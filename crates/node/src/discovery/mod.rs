//! Discovery (issue 15): which node a client should use, told the ways clients ask.
//!
//! Every node computes the same answers from its view of the cluster (who is up, linked and
//! ready, their capacities, the round trips between regions) with [`routing::pick`], so
//! clients that ask several nodes get one answer. A region's answer is one of its ready nodes,
//! or, when it has none, the ready node of the region nearest to it.
//!
//! - [`sentinel`]: a Sentinel-compatible listener (`--sentinel-addr`): each region is a master
//!   name; `+switch-master` is published when an answer changes.
//! - [`dns`]: an authoritative DNS server (`--dns-addr`, `--dns-zone`): a region's name
//!   resolves to its ready nodes, the zone's own name to those of the client's region.
//! - [`follow`] keeps the answers current and publishes the switches.

pub mod dns;
pub mod sentinel;

use crate::Shared;
use crate::peer::{ClusterView, Status};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Mutex, Weak};
use tokio::sync::broadcast;

/// Switch announcements a slow sentinel subscriber may have waiting before it is cut off.
const SWITCH_BACKLOG: usize = 1024;

/// A node discovery names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Named {
    /// Its `--node-id`.
    pub name: String,
    /// Its region.
    pub region: String,
    /// Where its clients connect.
    pub addr: SocketAddr,
    /// Where its clients connect over TLS, when it serves TLS.
    pub tls_addr: Option<SocketAddr>,
    /// Its `--capacity`.
    pub capacity: u32,
}

/// A member's sentinel listener.
#[derive(Clone, Debug)]
pub struct Sentinel {
    /// Its `--node-id`.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// What discovery sees of the cluster at one moment: every node it may name (this one
/// included), and the round trips between regions.
pub struct Picture {
    candidates: Vec<routing::Candidate>,
    addrs: BTreeMap<String, (SocketAddr, Option<SocketAddr>)>,
    /// The sentinel listeners of the members this node is linked to (this one excluded).
    pub sentinels: Vec<Sentinel>,
    regions: BTreeMap<String, BTreeMap<String, f64>>,
}

impl Picture {
    /// The picture from this node's view of the cluster.
    pub fn of(shared: &Shared) -> Picture {
        let view = shared.cluster.view.borrow().clone();
        Picture::from_view(&shared.config, &view)
    }

    fn from_view(config: &crate::NodeConfig, view: &ClusterView) -> Picture {
        let mut candidates = vec![routing::Candidate {
            name: config.node_id.clone(),
            region: config.region.clone(),
            healthy: (view.serving.as_ref()).is_some_and(|s| s.status == Status::Ready),
            capacity: config.capacity,
        }];
        let tls = (config.tls.as_ref())
            .map(|t| config.reachable(SocketAddr::new(config.resp_addr.ip(), t.port)));
        let mut addrs = BTreeMap::from([(config.node_id.clone(), (config.client_addr(), tls))]);
        let mut sentinels = Vec::new();
        for m in &view.members {
            let Some(serving) = &m.serving else {
                // Never heard from over a link: not a node to name, but its region exists.
                candidates.push(routing::Candidate {
                    name: m.info.name.clone(),
                    region: m.info.region.clone(),
                    healthy: false,
                    capacity: 0,
                });
                continue;
            };
            let Ok(addr) = serving.clients.parse() else {
                continue;
            };
            candidates.push(routing::Candidate {
                name: m.info.name.clone(),
                region: m.info.region.clone(),
                healthy: m.takes_clients(),
                capacity: serving.capacity,
            });
            let tls = serving.tls_clients.as_ref().and_then(|a| a.parse().ok());
            addrs.insert(m.info.name.clone(), (addr, tls));
            if let Some(Ok(addr)) = serving.sentinel.as_ref().map(|s| s.parse()) {
                sentinels.push(Sentinel {
                    name: m.info.name.clone(),
                    addr,
                });
            }
        }
        Picture {
            candidates,
            addrs,
            sentinels,
            regions: region_matrix(&config.region, view),
        }
    }

    /// Every region of the cluster.
    pub fn regions(&self) -> BTreeSet<String> {
        self.candidates.iter().map(|c| c.region.clone()).collect()
    }

    /// The node for clients of `region`, keyed by `key` (a sentinel asks by the region's name,
    /// so all its clients get one node); none when no node is ready.
    pub fn answer(&self, region: &str, key: &str) -> Option<Named> {
        let distance = |a: &str, b: &str| match a == b {
            true => Some(0.0),
            false => self.regions.get(a).and_then(|row| row.get(b)).copied(),
        };
        let picked = routing::pick(region, key, &self.candidates, distance)?;
        self.named(picked)
    }

    fn named(&self, c: &routing::Candidate) -> Option<Named> {
        let (addr, tls_addr) = *self.addrs.get(&c.name)?;
        Some(Named {
            name: c.name.clone(),
            region: c.region.clone(),
            addr,
            tls_addr,
            capacity: c.capacity,
        })
    }

    /// Node `name`, ready or not, when its address is known.
    pub fn node(&self, name: &str) -> Option<Named> {
        let c = self.candidates.iter().find(|c| c.name == name)?;
        self.named(c)
    }

    /// The ready nodes of `region`, or, when it has none, those of the ready region nearest
    /// to it (DNS answers them all).
    pub fn ready_nodes(&self, region: &str) -> Vec<Named> {
        let Some(first) = self.answer(region, region) else {
            return Vec::new();
        };
        (self.candidates.iter())
            .filter(|c| c.healthy && c.capacity > 0 && c.region == first.region)
            .filter_map(|c| self.named(c))
            .collect()
    }
}

/// The round trips between the nearest nodes of each pair of regions, in ms: measured, by this
/// node (of region `mine`) or by one of the pair's ends (peers send what they measure with their
/// pings); predicted from the network coordinates only for pairs nobody measures.
pub fn region_matrix(mine: &str, view: &ClusterView) -> BTreeMap<String, BTreeMap<String, f64>> {
    type Matrix = BTreeMap<String, BTreeMap<String, f64>>;
    fn note(m: &mut Matrix, a: &str, b: &str, ms: f64) {
        for (x, y) in [(a, b), (b, a)] {
            let slot = m.entry(x.to_string()).or_default();
            let best = slot.entry(y.to_string()).or_insert(ms);
            *best = best.min(ms);
        }
    }
    let region: BTreeMap<&str, &str> = (view.members.iter())
        .map(|m| (m.info.name.as_str(), m.info.region.as_str()))
        .collect();
    let (mut measured, mut predicted) = (Matrix::new(), Matrix::new());
    for (i, m) in view.members.iter().enumerate() {
        if let Some(ms) = m.rtt_ms {
            note(&mut measured, mine, &m.info.region, ms);
        }
        for (peer, ms) in &m.rtts {
            // Its distance to this node is measured here too; to others, as it says.
            if let Some(other) = region.get(peer.as_str()) {
                note(&mut measured, &m.info.region, other, f64::from(*ms));
            }
        }
        for other in &view.members[i + 1..] {
            if let (Some(a), Some(b)) = (&m.coordinate, &other.coordinate) {
                note(
                    &mut predicted,
                    &m.info.region,
                    &other.info.region,
                    a.distance_ms(b),
                );
            }
        }
    }
    for (a, row) in predicted {
        for (b, ms) in row {
            let slot = measured.entry(a.clone()).or_default();
            slot.entry(b).or_insert(ms);
        }
    }
    measured
}

/// The answers last given per region, and the switches between them.
pub struct Discovery {
    answers: Mutex<BTreeMap<String, Named>>,
    switches: broadcast::Sender<String>,
}

impl Default for Discovery {
    fn default() -> Self {
        Discovery {
            answers: Mutex::default(),
            switches: broadcast::channel(SWITCH_BACKLOG).0,
        }
    }
}

impl Discovery {
    /// The last answer given for `region` (kept while no node is ready, so that `SENTINEL
    /// MASTERS` can say which node it was and that it is down).
    pub fn last(&self, region: &str) -> Option<Named> {
        self.answers
            .lock()
            .expect("not poisoned")
            .get(region)
            .cloned()
    }

    /// `+switch-master` messages from now on: `<region> <old ip> <old port> <new ip> <new
    /// port>`.
    pub fn switches(&self) -> broadcast::Receiver<String> {
        self.switches.subscribe()
    }

    /// Records the current answers; publishes a switch for each region whose answer moved
    /// (with TLS addresses when the sentinel listener speaks TLS).
    fn update(&self, picture: &Picture, tls: bool) {
        let addr = |n: &Named| match tls {
            true => n.tls_addr.unwrap_or(n.addr),
            false => n.addr,
        };
        let mut answers = self.answers.lock().expect("not poisoned");
        for region in picture.regions() {
            let Some(now) = picture.answer(&region, &region) else {
                continue;
            };
            match answers.get(&region) {
                Some(was) if addr(was) == addr(&now) => {}
                Some(was) => {
                    let message = format!(
                        "{region} {} {} {} {}",
                        addr(was).ip(),
                        addr(was).port(),
                        addr(&now).ip(),
                        addr(&now).port()
                    );
                    tracing::info!(%region, from = %was.name, to = %now.name, "discovery: clients of the region move");
                    metrics::counter!("meridian_discovery_switches_total", "region" => region.clone())
                        .increment(1);
                    let _ = self.switches.send(message);
                    answers.insert(region, now);
                }
                None => {
                    answers.insert(region, now);
                }
            }
        }
    }
}

/// Keeps the answers current: recomputed at every change of the cluster view (every 100 ms
/// at most), until the node stops.
pub async fn follow(shared: Weak<Shared>) {
    let Some(mut view) = shared.upgrade().map(|s| s.cluster.view.clone()) else {
        return;
    };
    while view.changed().await.is_ok() {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let tls = shared.config.sentinel_tls;
        shared.discovery.update(&Picture::of(&shared), tls);
    }
}

/// Drains this node (`MERIDIAN DRAIN`, and every shutdown): discovery stops naming it, and
/// once the peers have heard it ([`crate::HAND_OVER`]), every client connection but `except`
/// closes, so clients reconnect where discovery now sends them. Answers how many closed.
pub async fn drain(shared: &Shared, except: Option<u64>) -> usize {
    shared.cluster.drain(true);
    let linked = shared.cluster.view.borrow().members.iter().any(|m| m.link);
    let others = shared.clients.list(&crate::server::clients::Filter {
        skip: except,
        ..Default::default()
    });
    if linked && !others.is_empty() {
        tracing::info!(
            clients = others.len(),
            "handing clients over: discovery no longer names this node"
        );
        tokio::time::sleep(crate::HAND_OVER).await;
    }
    shared.clients.kill(&crate::server::clients::Filter {
        skip: except,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::{MemberState, MemberView, Serving};

    fn member(name: &str, region: &str, port: u16, status: Status) -> MemberView {
        MemberView {
            info: membership::MemberInfo {
                name: name.into(),
                region: region.into(),
                peer_addr: "127.0.0.1:1".into(),
            },
            state: MemberState::Up,
            link: true,
            lag_ops: 0,
            rtt_ms: Some(if region == "us" { 80.0 } else { 150.0 }),
            coordinate: None,
            rtts: Vec::new(),
            lag_ms: 0,
            has_own: 0,
            holds_collection: false,
            serving: Some(Serving {
                clients: format!("127.0.0.1:{port}"),
                tls_clients: None,
                sentinel: None,
                capacity: 1,
                status,
            }),
            quiet_ms: Some(100),
        }
    }

    fn picture(eu: Status, members: Vec<MemberView>) -> Picture {
        let mut config = crate::NodeConfig::with_defaults("eu-1", "/nonexistent".into());
        config.region = "eu".into();
        config.resp_addr = "127.0.0.1:7000".parse().unwrap();
        let view = ClusterView {
            members,
            coordinate: Default::default(),
            serving: Some(Serving {
                clients: "127.0.0.1:7000".into(),
                tls_clients: None,
                sentinel: None,
                capacity: 1,
                status: eu,
            }),
        };
        Picture::from_view(&config, &view)
    }

    fn port(p: &Picture, region: &str) -> Option<u16> {
        p.answer(region, region).map(|n| n.addr.port())
    }

    #[test]
    fn only_ready_linked_and_recently_heard_nodes_are_named() {
        let members = || {
            vec![
                member("us-1", "us", 7001, Status::Ready),
                member("ap-1", "ap", 7002, Status::Ready),
            ]
        };
        let p = picture(Status::Ready, members());
        assert_eq!(
            (port(&p, "eu"), port(&p, "us"), port(&p, "ap")),
            (Some(7000), Some(7001), Some(7002))
        );
        // This node draining or catching up: its region goes to the nearest (us, 80 ms).
        for status in [Status::Draining, Status::CatchingUp] {
            assert_eq!(port(&picture(status, members()), "eu"), Some(7001));
        }
        // us catching up, unlinked, silent for 2 s, or down: ap's clients stay at ap, us's go
        // to eu (nearest of the rest).
        let mut catching = members();
        catching[0].serving.as_mut().unwrap().status = Status::CatchingUp;
        let mut unlinked = members();
        unlinked[0].link = false;
        let mut quiet = members();
        quiet[0].quiet_ms = Some(crate::peer::QUIET_MS_MAX);
        let mut down = members();
        down[0].state = MemberState::Down;
        for view in [catching, unlinked, quiet, down] {
            let p = picture(Status::Ready, view);
            assert_eq!((port(&p, "us"), port(&p, "ap")), (Some(7000), Some(7002)));
        }
        // Nobody ready: no answer, and the regions are still known.
        let mut none = members();
        none.iter_mut().for_each(|m| m.link = false);
        let p = picture(Status::Draining, none);
        assert_eq!(port(&p, "ap"), None);
        assert_eq!(p.regions().len(), 3);
    }

    #[test]
    fn a_switch_is_published_when_an_answer_moves() {
        let discovery = Discovery::default();
        let mut switches = discovery.switches();
        let members = vec![member("us-1", "us", 7001, Status::Ready)];
        discovery.update(&picture(Status::Ready, members.clone()), false);
        discovery.update(&picture(Status::Ready, members.clone()), false);
        assert!(switches.try_recv().is_err(), "nothing moved");
        discovery.update(&picture(Status::Draining, members.clone()), false);
        assert_eq!(
            switches.try_recv().unwrap(),
            "eu 127.0.0.1 7000 127.0.0.1 7001"
        );
        assert_eq!(discovery.last("eu").unwrap().name, "us-1");
    }
}
