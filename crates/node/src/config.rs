//! A node's settings, as the binary resolved them from flags, environment and file.

use crate::engine::FsyncPolicy;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Unique name of this node.
    pub node_id: String,
    /// Region (point of presence) this node serves.
    pub region: String,
    /// Where the node keeps its data.
    pub data_dir: PathBuf,
    /// Redis-protocol listener.
    pub resp_addr: SocketAddr,
    /// HTTP listener.
    pub http_addr: SocketAddr,
    /// Node-to-node listener (TCP for replication, UDP for gossip).
    pub peer_addr: SocketAddr,
    /// Where peers reach the peer listener, when not at `peer_addr` (which may bind every
    /// interface, or sit behind a NAT).
    pub advertise_addr: Option<SocketAddr>,
    /// Seed peers to join.
    pub join: Vec<String>,
    /// When acknowledged writes reach the disk.
    pub fsync: FsyncPolicy,
    /// Secret peers prove to each other.
    pub cluster_secret: Option<String>,
    /// Frame limits of the Redis protocol.
    pub limits: resp::Limits,
    /// Most client connections at once.
    pub max_clients: usize,
    /// Most bytes buffered for one client's unfinished command.
    pub max_query_buffer: usize,
    /// Largest clock offset accepted from a peer.
    pub max_offset_ms: u64,
    /// Bytes of block cache for the storage engine.
    pub cache_bytes: u64,
    /// Simulated one-way WAN delay between pairs of regions, in milliseconds (both ways):
    /// added by each node to what it sends, for the demo and tests on one machine.
    pub wan_delay_ms: Vec<(String, String, u64)>,
    /// Up to this many milliseconds more, at random, per message to any peer (testing).
    pub wan_jitter_ms: u64,
    /// The default user's password (`AUTH`); none: clients start logged in.
    pub requirepass: Option<String>,
    /// Without a password, accept clients from loopback only (Redis's protected mode).
    pub protected_mode: bool,
    /// RESP over TLS on a second port (`--tls-port`), when set.
    pub tls: Option<crate::tls::TlsConfig>,
    /// The cluster CA and this node's certificate for mutual TLS on peer links.
    pub certs_dir: Option<PathBuf>,
    /// The gossip keyring file (keys to open gossip with, the first to seal); none: one key
    /// derived from `cluster_secret`.
    pub gossip_keyring: Option<PathBuf>,
    /// Peer links without TLS on a non-loopback address (warned about at start).
    pub insecure_peers: bool,
    /// `/metrics` answers without a login.
    pub metrics_public: bool,
    /// The HTTP listener speaks HTTPS, with the `tls` files.
    pub http_tls: bool,
    /// Users are loaded from (and `ACL SAVE`d to) this file, in Redis's format.
    pub aclfile: Option<PathBuf>,
    /// This node's share of its region's clients, relative to the region's other nodes
    /// (discovery weighs its answers by it; 0: never named).
    pub capacity: u32,
    /// The Sentinel-compatible discovery listener, when set.
    pub sentinel_addr: Option<SocketAddr>,
    /// The sentinel listener speaks TLS with the `tls` files.
    pub sentinel_tls: bool,
    /// The discovery DNS server (UDP), when set.
    pub dns_addr: Option<SocketAddr>,
    /// The zone it answers for.
    pub dns_zone: String,
    /// Client address ranges and their regions (`10.1.0.0/16`, `eu`): a client asking for the
    /// zone's own name gets the nodes of its range's region.
    pub dns_subnets: Vec<(String, String)>,
    /// The MQTT listener devices write readings to (`mqtt.rs`), when set.
    pub mqtt_addr: Option<SocketAddr>,
}

impl NodeConfig {
    /// A configuration with the design's defaults, for tests and the demo.
    pub fn with_defaults(node_id: &str, data_dir: PathBuf) -> NodeConfig {
        NodeConfig {
            node_id: node_id.to_string(),
            region: "local".into(),
            data_dir,
            resp_addr: "127.0.0.1:7379".parse().expect("literal address"),
            http_addr: "127.0.0.1:7380".parse().expect("literal address"),
            peer_addr: "127.0.0.1:7381".parse().expect("literal address"),
            advertise_addr: None,
            join: Vec::new(),
            fsync: FsyncPolicy::Always,
            cluster_secret: None,
            limits: resp::Limits::default(),
            max_clients: 10_000,
            max_query_buffer: 1024 * 1024 * 1024,
            max_offset_ms: 500,
            cache_bytes: 64 * 1024 * 1024,
            wan_delay_ms: Vec::new(),
            wan_jitter_ms: 0,
            requirepass: None,
            protected_mode: true,
            tls: None,
            certs_dir: None,
            gossip_keyring: None,
            metrics_public: false,
            http_tls: false,
            insecure_peers: false,
            aclfile: None,
            capacity: 1,
            sentinel_addr: None,
            sentinel_tls: false,
            dns_addr: None,
            dns_zone: "meridian.".into(),
            dns_subnets: Vec::new(),
            mqtt_addr: None,
        }
    }

    /// Where clients reach this node's Redis-protocol listener: the plain port, or the TLS
    /// port when there is no plain one, at an address others can reach (see
    /// [`NodeConfig::reachable`]).
    pub fn client_addr(&self) -> SocketAddr {
        let mut addr = self.resp_addr;
        if addr.port() == 0
            && let Some(tls) = &self.tls
        {
            addr.set_port(tls.port);
        }
        self.reachable(addr)
    }

    /// `addr` as others reach it: a listener bound to every interface (`0.0.0.0`, `[::]`) is
    /// reached at the address peers reach this node at (`--advertise-addr`).
    pub fn reachable(&self, addr: SocketAddr) -> SocketAddr {
        if !addr.ip().is_unspecified() {
            return addr;
        }
        let host = self.advertise_addr.unwrap_or(self.peer_addr).ip();
        SocketAddr::new(host, addr.port())
    }

    /// The simulated one-way delay from region `from` to region `to`.
    pub fn wan_delay(&self, from: &str, to: &str) -> std::time::Duration {
        let ms = self
            .wan_delay_ms
            .iter()
            .find(|(a, b, _)| (a == from && b == to) || (a == to && b == from))
            .map_or(0, |(_, _, ms)| *ms);
        std::time::Duration::from_millis(ms)
    }
}
