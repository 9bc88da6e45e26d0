//! Server configuration: flags over `MERIDIAN_*` environment variables over a TOML file over
//! defaults. Every flag is also a key of the file, spelled the same (`node-id = "eu-1"`).

use anyhow::{Context, bail};
use clap::Args;
use node::{FsyncPolicy, NodeConfig};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Flags of `meridian server`. Each is optional here so that a missing flag falls through to
/// the environment (clap reads `MERIDIAN_*`), then to the file, then to the default.
#[derive(Args, Debug, Default)]
pub struct ServerArgs {
    /// TOML file with any of the settings below.
    #[arg(long, env = "MERIDIAN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Unique name of this node [default: host name].
    #[arg(long, env = "MERIDIAN_NODE_ID")]
    pub node_id: Option<String>,
    /// Region (point of presence) this node serves [default: local].
    #[arg(long, env = "MERIDIAN_REGION")]
    pub region: Option<String>,
    /// Where the node keeps its data [default: ./meridian-data].
    #[arg(long, env = "MERIDIAN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Redis-protocol listener; port 0 with --tls-port: TLS only, no plain port
    /// [default: 127.0.0.1:7379].
    #[arg(long, env = "MERIDIAN_RESP_ADDR")]
    pub resp_addr: Option<SocketAddr>,
    /// HTTP listener [default: 127.0.0.1:7380].
    #[arg(long, env = "MERIDIAN_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// Node-to-node listener, TCP and UDP [default: 127.0.0.1:7381].
    #[arg(long, env = "MERIDIAN_PEER_ADDR")]
    pub peer_addr: Option<SocketAddr>,
    /// The address other nodes reach this one's peer listener at [default: --peer-addr];
    /// required when --peer-addr binds every interface (0.0.0.0 or [::]).
    #[arg(long, env = "MERIDIAN_ADVERTISE_ADDR")]
    pub advertise_addr: Option<SocketAddr>,
    /// Comma-separated peer addresses to join.
    #[arg(long, env = "MERIDIAN_JOIN", value_delimiter = ',')]
    pub join: Option<Vec<String>>,
    /// always (ack after fsync, group commit), batch (fsync every 10 ms), never [default: always].
    #[arg(long, env = "MERIDIAN_FSYNC")]
    pub fsync: Option<String>,
    /// Secret shared by all nodes of one cluster.
    #[arg(long, env = "MERIDIAN_CLUSTER_SECRET")]
    pub cluster_secret: Option<String>,
    /// Most client connections at once [default: 10000].
    #[arg(long, env = "MERIDIAN_MAX_CLIENTS")]
    pub max_clients: Option<usize>,
    /// Largest bulk string in bytes [default: 536870912].
    #[arg(long, env = "MERIDIAN_MAX_BULK_LEN")]
    pub max_bulk_len: Option<usize>,
    /// Most elements in one command [default: 1048576].
    #[arg(long, env = "MERIDIAN_MAX_MULTIBULK_LEN")]
    pub max_multibulk_len: Option<usize>,
    /// Longest inline command in bytes [default: 65536].
    #[arg(long, env = "MERIDIAN_MAX_INLINE_LEN")]
    pub max_inline_len: Option<usize>,
    /// Most bytes buffered for one client's unfinished command [default: 1073741824].
    #[arg(long, env = "MERIDIAN_MAX_QUERY_BUFFER")]
    pub max_query_buffer: Option<usize>,
    /// Largest clock offset accepted from a peer, in ms [default: 500].
    #[arg(long, env = "MERIDIAN_MAX_CLOCK_OFFSET_MS")]
    pub max_clock_offset_ms: Option<u64>,
    /// Block cache of the storage engine in bytes [default: 67108864].
    #[arg(long, env = "MERIDIAN_CACHE_BYTES")]
    pub cache_bytes: Option<u64>,
    /// Simulated one-way WAN delay added to what this node sends to other regions, for
    /// testing on one machine: comma-separated `regionA-regionB=ms` [default: none].
    #[arg(long, env = "MERIDIAN_WAN_DELAY", value_delimiter = ',')]
    pub wan_delay: Option<Vec<String>>,
    /// Up to this many ms more, at random, per message to any peer (testing) [default: 0].
    #[arg(long, env = "MERIDIAN_WAN_JITTER_MS")]
    pub wan_jitter_ms: Option<u64>,
    /// The password of the default user: clients log in with AUTH before anything else
    /// [default: none, every client is the default user].
    #[arg(long, env = "MERIDIAN_REQUIREPASS")]
    pub requirepass: Option<String>,
    /// yes: without a password, accept clients from loopback only; no: from anywhere
    /// [default: yes].
    #[arg(long, env = "MERIDIAN_PROTECTED_MODE")]
    pub protected_mode: Option<String>,
    /// Port for RESP over TLS, on the --resp-addr address, beside the plain port; with
    /// --certs-dir, the certificate, key and client CA default to node.crt, node.key and
    /// ca.crt there [default: none].
    #[arg(long, env = "MERIDIAN_TLS_PORT")]
    pub tls_port: Option<u16>,
    /// The node's certificate chain, PEM (needed with --tls-port).
    #[arg(long, env = "MERIDIAN_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of --tls-cert-file, PEM.
    #[arg(long, env = "MERIDIAN_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// The CA that signs client certificates, PEM.
    #[arg(long, env = "MERIDIAN_TLS_CA_CERT_FILE")]
    pub tls_ca_cert_file: Option<PathBuf>,
    /// yes: TLS clients must present a certificate signed by the CA; optional: they may; no:
    /// they are not asked [default: yes].
    #[arg(long, env = "MERIDIAN_TLS_AUTH_CLIENTS")]
    pub tls_auth_clients: Option<String>,
    /// Directory with the cluster CA (ca.crt) and this node's certificate and key (node.crt,
    /// node.key, from `meridian cert create-node`): peer links run over mutual TLS, each
    /// node's certificate checked against the node id it claims [default: none].
    #[arg(long, env = "MERIDIAN_CERTS_DIR")]
    pub certs_dir: Option<PathBuf>,
    /// The gossip keyring: one key per line (64 hex digits, `meridian keyring generate`), the
    /// first encrypting what this node sends, all accepted; reloaded on SIGHUP
    /// [default: one key derived from --cluster-secret].
    #[arg(long, env = "MERIDIAN_GOSSIP_KEYRING")]
    pub gossip_keyring: Option<PathBuf>,
    /// Serve /metrics without a login (the status and the rest still need one).
    #[arg(long, env = "MERIDIAN_METRICS_PUBLIC")]
    pub metrics_public: bool,
    /// Serve HTTPS on --http-addr with the TLS files (--tls-cert-file and the rest, or those in
    /// --certs-dir); needs --tls-port.
    #[arg(long, env = "MERIDIAN_HTTP_TLS")]
    pub http_tls: bool,
    /// Allow peer links without TLS on a non-loopback --peer-addr (a warning is logged).
    #[arg(long, env = "MERIDIAN_INSECURE_PEERS")]
    pub insecure_peers: bool,
    /// Users, in Redis's ACL file format, loaded at start (the file must exist) and written by
    /// ACL SAVE; not with --requirepass (set the default user's password in the file).
    #[arg(long, env = "MERIDIAN_ACLFILE")]
    pub aclfile: Option<PathBuf>,
    /// This node's share of its region's clients relative to the region's other nodes:
    /// discovery names a node of capacity 2 to twice the clients of one of 1; 0: never
    /// named [default: 1].
    #[arg(long, env = "MERIDIAN_CAPACITY")]
    pub capacity: Option<u32>,
    /// Serve Sentinel-compatible discovery here: each region is a master name, answered with
    /// its nearest healthy node (redis-py's Sentinel, ioredis's sentinels) [default: off].
    #[arg(long, env = "MERIDIAN_SENTINEL_ADDR")]
    pub sentinel_addr: Option<SocketAddr>,
    /// The sentinel listener speaks TLS, with the client TLS files (--tls-port's, or those of
    /// --certs-dir); needs --tls-port.
    #[arg(long, env = "MERIDIAN_SENTINEL_TLS")]
    pub sentinel_tls: bool,
    /// Serve discovery by DNS here (UDP): names in --dns-zone resolve to the nearest ready
    /// nodes [default: off].
    #[arg(long, env = "MERIDIAN_DNS_ADDR")]
    pub dns_addr: Option<SocketAddr>,
    /// Take sensor readings over MQTT 3.1.1 and 5 here (topic `sensors/<group>/<device>/<metric>`,
    /// payload a number or JSON; README "Time series") [default: off].
    #[arg(long, env = "MERIDIAN_MQTT_ADDR")]
    pub mqtt_addr: Option<SocketAddr>,
    /// The zone the DNS server answers for [default: meridian.].
    #[arg(long, env = "MERIDIAN_DNS_ZONE")]
    pub dns_zone: Option<String>,
    /// Client address ranges and their regions, comma-separated `cidr=region`
    /// (10.1.0.0/16=eu): a client asking for the zone's name gets its region's nodes
    /// [default: none: this node's region].
    #[arg(long, env = "MERIDIAN_DNS_SUBNETS", value_delimiter = ',')]
    pub dns_subnets: Option<Vec<String>>,
}

/// The same settings as read from the TOML file.
#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileConfig {
    node_id: Option<String>,
    region: Option<String>,
    data_dir: Option<PathBuf>,
    resp_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    peer_addr: Option<SocketAddr>,
    advertise_addr: Option<SocketAddr>,
    join: Option<Vec<String>>,
    fsync: Option<String>,
    cluster_secret: Option<String>,
    max_clients: Option<usize>,
    max_bulk_len: Option<usize>,
    max_multibulk_len: Option<usize>,
    max_inline_len: Option<usize>,
    max_query_buffer: Option<usize>,
    max_clock_offset_ms: Option<u64>,
    cache_bytes: Option<u64>,
    wan_delay: Option<Vec<String>>,
    wan_jitter_ms: Option<u64>,
    requirepass: Option<String>,
    protected_mode: Option<String>,
    tls_port: Option<u16>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    tls_ca_cert_file: Option<PathBuf>,
    tls_auth_clients: Option<String>,
    aclfile: Option<PathBuf>,
    capacity: Option<u32>,
    sentinel_addr: Option<SocketAddr>,
    sentinel_tls: Option<bool>,
    dns_addr: Option<SocketAddr>,
    mqtt_addr: Option<SocketAddr>,
    dns_zone: Option<String>,
    dns_subnets: Option<Vec<String>>,
    certs_dir: Option<PathBuf>,
    gossip_keyring: Option<PathBuf>,
    insecure_peers: Option<bool>,
    metrics_public: Option<bool>,
    http_tls: Option<bool>,
}

/// Parses `eu-us=40` into `("eu", "us", 40)`.
pub fn parse_wan_delay(s: &str) -> anyhow::Result<(String, String, u64)> {
    let parse = || {
        let (pair, ms) = s.split_once('=')?;
        let (a, b) = pair.split_once('-')?;
        Some((a.to_string(), b.to_string(), ms.trim().parse().ok()?))
    };
    parse().with_context(|| format!("--wan-delay wants regionA-regionB=ms, not {s:?}"))
}

fn parse_fsync(s: &str) -> anyhow::Result<FsyncPolicy> {
    Ok(match s {
        "always" => FsyncPolicy::Always,
        "batch" => FsyncPolicy::Batch,
        "never" => FsyncPolicy::Never,
        other => bail!("--fsync must be always, batch or never, not {other:?}"),
    })
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "meridian".into())
}

/// The TLS listener's settings: none without --tls-port; with it, the certificate and key.
fn tls_config(
    port: Option<u16>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
    auth: Option<String>,
) -> anyhow::Result<Option<node::tls::TlsConfig>> {
    let Some(port) = port else {
        if cert.is_some() || key.is_some() || ca.is_some() || auth.is_some() {
            bail!(
                "--tls-cert-file, --tls-key-file, --tls-ca-cert-file and --tls-auth-clients need --tls-port"
            );
        }
        return Ok(None);
    };
    let auth_clients = match auth.as_deref().unwrap_or("yes") {
        "yes" => node::tls::ClientAuth::Required,
        "optional" => node::tls::ClientAuth::Optional,
        "no" => node::tls::ClientAuth::No,
        other => bail!("--tls-auth-clients must be yes, optional or no, not {other:?}"),
    };
    let (Some(cert_file), Some(key_file)) = (cert, key) else {
        bail!("--tls-port needs --tls-cert-file and --tls-key-file");
    };
    Ok(Some(node::tls::TlsConfig {
        port,
        cert_file,
        key_file,
        ca_cert_file: ca,
        auth_clients,
    }))
}

/// Resolves flags, environment, file and defaults into a node configuration, and checks it.
pub fn resolve(args: ServerArgs) -> anyhow::Result<NodeConfig> {
    let file: FileConfig = match &args.config {
        None => FileConfig::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
    };
    let node_id = args.node_id.or(file.node_id).unwrap_or_else(host_name);
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("./meridian-data"));
    let mut c = NodeConfig::with_defaults(&node_id, data_dir);
    macro_rules! pick {
        ($field:ident, $target:expr) => {
            if let Some(v) = args.$field.or(file.$field) {
                $target = v;
            }
        };
    }
    pick!(region, c.region);
    pick!(resp_addr, c.resp_addr);
    pick!(http_addr, c.http_addr);
    pick!(peer_addr, c.peer_addr);
    pick!(join, c.join);
    pick!(max_clients, c.max_clients);
    pick!(max_bulk_len, c.limits.max_bulk_len);
    pick!(max_multibulk_len, c.limits.max_multibulk_len);
    pick!(max_inline_len, c.limits.max_inline_len);
    pick!(max_query_buffer, c.max_query_buffer);
    pick!(max_clock_offset_ms, c.max_offset_ms);
    pick!(cache_bytes, c.cache_bytes);
    pick!(wan_jitter_ms, c.wan_jitter_ms);
    if let Some(f) = args.fsync.or(file.fsync) {
        c.fsync = parse_fsync(&f)?;
    }
    c.cluster_secret = args.cluster_secret.or(file.cluster_secret);
    c.requirepass = args.requirepass.or(file.requirepass);
    c.aclfile = args.aclfile.or(file.aclfile);
    c.capacity = args.capacity.or(file.capacity).unwrap_or(1);
    if c.capacity > node::peer::CAPACITY_MAX {
        bail!("--capacity must be at most {}", node::peer::CAPACITY_MAX);
    }
    c.sentinel_addr = args.sentinel_addr.or(file.sentinel_addr);
    c.sentinel_tls = args.sentinel_tls || file.sentinel_tls.unwrap_or(false);
    c.dns_addr = args.dns_addr.or(file.dns_addr);
    c.mqtt_addr = args.mqtt_addr.or(file.mqtt_addr);
    if let Some(zone) = args.dns_zone.or(file.dns_zone) {
        c.dns_zone = zone;
    }
    for entry in args.dns_subnets.or(file.dns_subnets).unwrap_or_default() {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let Some((cidr, region)) = entry.split_once('=') else {
            bail!("--dns-subnets wants cidr=region (10.1.0.0/16=eu), not {entry:?}");
        };
        c.dns_subnets
            .push((cidr.trim().to_string(), region.trim().to_string()));
    }
    if c.dns_addr.is_some() {
        // Checked here so a wrong zone or range stops the start with its reason.
        node::discovery::dns::Zone::new(&c.dns_zone, &c.dns_subnets).map_err(anyhow::Error::msg)?;
    }
    if c.requirepass.is_some() && c.aclfile.is_some() {
        bail!(
            "--requirepass and --aclfile do not go together: set the default user's password in the ACL file (user default on >password ...)"
        );
    }
    if c.requirepass.as_deref() == Some("") {
        bail!("--requirepass must not be empty (leave it out for no password)");
    }
    c.certs_dir = args.certs_dir.or(file.certs_dir);
    // With --certs-dir, the TLS port serves the node's certificate and checks clients
    // against the cluster CA unless told other files.
    let from_certs = |name: &str| c.certs_dir.as_ref().map(|d| d.join(name));
    let tls_port = args.tls_port.or(file.tls_port);
    let in_certs = |name: &str| tls_port.and_then(|_| from_certs(name));
    c.tls = tls_config(
        tls_port,
        args.tls_cert_file
            .or(file.tls_cert_file)
            .or_else(|| in_certs(node::tls::NODE_CERT)),
        args.tls_key_file
            .or(file.tls_key_file)
            .or_else(|| in_certs(node::tls::NODE_KEY)),
        args.tls_ca_cert_file
            .or(file.tls_ca_cert_file)
            .or_else(|| in_certs(node::tls::CA_CERT)),
        args.tls_auth_clients.or(file.tls_auth_clients),
    )?;
    if let Some(p) = args.protected_mode.or(file.protected_mode) {
        c.protected_mode = match p.as_str() {
            "yes" => true,
            "no" => false,
            other => bail!("--protected-mode must be yes or no, not {other:?}"),
        };
    }
    c.advertise_addr = args.advertise_addr.or(file.advertise_addr);
    for pair in args.wan_delay.or(file.wan_delay).unwrap_or_default() {
        if !pair.trim().is_empty() {
            c.wan_delay_ms.push(parse_wan_delay(&pair)?);
        }
    }
    c.join.retain(|p| !p.trim().is_empty());
    if node_id.is_empty() {
        bail!("--node-id must not be empty");
    }
    c.insecure_peers = args.insecure_peers || file.insecure_peers.unwrap_or(false);
    c.gossip_keyring = args.gossip_keyring.or(file.gossip_keyring);
    c.metrics_public = args.metrics_public || file.metrics_public.unwrap_or(false);
    c.http_tls = args.http_tls || file.http_tls.unwrap_or(false);
    if c.resp_addr.port() == 0 && c.tls.is_none() {
        bail!(
            "--resp-addr with port 0 turns the plain RESP port off: set --tls-port for clients to connect"
        );
    }
    if c.sentinel_tls && (c.tls.is_none() || c.sentinel_addr.is_none()) {
        bail!(
            "--sentinel-tls serves the sentinel listener over TLS with the client TLS files: set --sentinel-addr and --tls-port (or --certs-dir with --tls-port)"
        );
    }
    if c.http_tls && c.tls.is_none() {
        bail!(
            "--http-tls serves HTTPS with the TLS files: set --tls-port and its files (or --certs-dir)"
        );
    }
    if !c.peer_addr.ip().is_loopback() {
        if c.certs_dir.is_none() && !c.insecure_peers {
            bail!(
                "--peer-addr {} is not a loopback address: set --certs-dir (mutual TLS between nodes, see meridian cert) or say --insecure-peers",
                c.peer_addr
            );
        }
        if c.cluster_secret.is_none() && c.gossip_keyring.is_none() {
            bail!(
                "--peer-addr {} is not a loopback address: set --gossip-keyring (or --cluster-secret) so gossip is encrypted",
                c.peer_addr
            );
        }
    }
    let advertised = c.advertise_addr.unwrap_or(c.peer_addr);
    if advertised.ip().is_unspecified() || advertised.port() == 0 {
        bail!(
            "peers cannot reach {advertised}: set --advertise-addr to the address they reach this node's --peer-addr at"
        );
    }
    if c.max_clients == 0
        || c.limits.max_bulk_len == 0
        || c.limits.max_multibulk_len == 0
        || c.limits.max_inline_len == 0
    {
        bail!("limits must be positive");
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_wins_over_file_and_file_over_default() {
        let dir = std::env::temp_dir().join(format!("meridian-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("m.toml");
        std::fs::write(
            &file,
            "node-id = \"from-file\"\nregion = \"eu\"\nfsync = \"batch\"\nmax-clients = 7\n",
        )
        .unwrap();
        let args = ServerArgs {
            config: Some(file.clone()),
            node_id: Some("from-flag".into()),
            ..ServerArgs::default()
        };
        let c = resolve(args).unwrap();
        assert_eq!(c.node_id, "from-flag");
        assert_eq!(c.region, "eu");
        assert_eq!(c.fsync, FsyncPolicy::Batch);
        assert_eq!(c.max_clients, 7);
        assert_eq!(c.resp_addr.port(), 7379);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn non_loopback_peer_needs_tls_or_a_secret_and_consent() {
        let peer = |certs: bool, insecure: bool, secret: bool| ServerArgs {
            peer_addr: Some("10.1.2.3:7381".parse().unwrap()),
            certs_dir: certs.then(|| PathBuf::from("certs")),
            insecure_peers: insecure,
            cluster_secret: secret.then(|| "s".to_string()),
            ..ServerArgs::default()
        };
        let refused = resolve(peer(false, false, true)).unwrap_err().to_string();
        assert!(refused.contains("--insecure-peers"), "{refused}");
        let refused = resolve(peer(false, true, false)).unwrap_err().to_string();
        assert!(refused.contains("--cluster-secret"), "{refused}");
        assert!(resolve(peer(false, true, true)).unwrap().insecure_peers);
        let refused = resolve(peer(true, false, false)).unwrap_err().to_string();
        assert!(refused.contains("--gossip-keyring"), "{refused}");
        assert!(
            resolve(peer(true, false, true))
                .unwrap()
                .certs_dir
                .is_some()
        );
    }

    #[test]
    fn a_peer_listener_on_every_interface_needs_an_advertised_address() {
        let bound = |advertise: Option<&str>| ServerArgs {
            peer_addr: Some("0.0.0.0:7381".parse().unwrap()),
            advertise_addr: advertise.map(|a| a.parse().unwrap()),
            cluster_secret: Some("s".into()),
            insecure_peers: true,
            ..ServerArgs::default()
        };
        let refused = resolve(bound(None)).unwrap_err().to_string();
        assert!(refused.contains("--advertise-addr"), "{refused}");
        let c = resolve(bound(Some("10.1.2.3:7381"))).unwrap();
        assert_eq!(c.advertise_addr, Some("10.1.2.3:7381".parse().unwrap()));
    }

    #[test]
    fn discovery_settings_that_cannot_work_are_refused_with_the_reason() {
        let args = |f: fn(&mut ServerArgs)| {
            let mut a = ServerArgs::default();
            f(&mut a);
            resolve(a)
        };
        let refused = |f| args(f).unwrap_err().to_string();
        // A TLS sentinel needs the client TLS files and a sentinel address.
        let no_tls = refused(|a| {
            a.sentinel_addr = Some("127.0.0.1:26379".parse().unwrap());
            a.sentinel_tls = true;
        });
        assert!(no_tls.contains("--sentinel-tls"), "{no_tls}");
        let capacity = refused(|a| a.capacity = Some(node::peer::CAPACITY_MAX + 1));
        assert!(capacity.contains("--capacity"), "{capacity}");
        let subnet = refused(|a| {
            a.dns_addr = Some("127.0.0.1:5353".parse().unwrap());
            a.dns_subnets = Some(vec!["10.1.0.0/16".into()]);
        });
        assert!(subnet.contains("cidr=region"), "{subnet}");
        let range = refused(|a| {
            a.dns_addr = Some("127.0.0.1:5353".parse().unwrap());
            a.dns_subnets = Some(vec!["10.1.0.0/99=eu".into()]);
        });
        assert!(range.contains("--dns-subnet"), "{range}");
        let c = args(|a| {
            a.dns_addr = Some("127.0.0.1:5353".parse().unwrap());
            a.dns_zone = Some("db.example".into());
            a.dns_subnets = Some(vec!["10.1.0.0/16=eu".into(), " ".into()]);
            a.capacity = Some(3);
        })
        .unwrap();
        assert_eq!(
            c.dns_subnets,
            [("10.1.0.0/16".to_string(), "eu".to_string())]
        );
        assert_eq!((c.capacity, c.dns_zone.as_str()), (3, "db.example"));
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir =
            std::env::temp_dir().join(format!("meridian-config-test2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("m.toml");
        std::fs::write(&file, "nodeid = \"typo\"\n").unwrap();
        let args = ServerArgs {
            config: Some(file),
            ..ServerArgs::default()
        };
        assert!(resolve(args).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
