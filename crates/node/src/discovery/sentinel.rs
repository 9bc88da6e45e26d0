//! The Sentinel-compatible discovery listener (`--sentinel-addr`).
//!
//! Clients written for Redis Sentinel (redis-py's `Sentinel(...).master_for(name)`, ioredis's
//! `sentinels` option) find their node here unchanged: each region is a master name, and
//! `SENTINEL get-master-addr-by-name <region>` answers the node discovery picks for it (see
//! the module above). Every node is a master of the same data, so there are no replicas; the
//! other nodes' listeners are the other sentinels. When an answer changes, `+switch-master` is
//! published to subscribers, as Sentinel does after a failover. Discovery is read-only: the
//! commands that configure or fail over a Sentinel are refused.
//!
//! Logins follow the node's users: when the default user has a password, clients `AUTH` (as
//! on the data port) before asking; without one, protected mode refuses clients from outside
//! loopback, as on the data port. With `--sentinel-tls` the listener speaks TLS with the
//! client TLS files (between regions, a password must not cross in clear).

use super::{Named, Picture};
use crate::Shared;
use bytes::{Bytes, BytesMut};
use resp::{Protocol, Reply};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, broadcast, watch};

/// Connections served at once; more are closed at once.
const CONNECTIONS_MAX: usize = 1024;
/// How long a client has to finish the TLS handshake (`--sentinel-tls`).
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The channel Sentinel announces failovers on.
const SWITCH_CHANNEL: &str = "+switch-master";
/// What `down-after-milliseconds` reports: a node is no longer named once its link has been
/// silent this long (the session timeout) or gossip declared it down, usually sooner.
const DOWN_AFTER_MS: &str = "5000";
/// The answer to commands that would configure or fail over a Sentinel.
const READ_ONLY: &str = "ERR Meridian's discovery is read-only: every node is a master of the same data, and each region's master is the nearest ready node, chosen from the cluster's own view";

/// Serves sentinel clients on `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    while let Some((socket, peer)) =
        crate::server::accept_next(&listener, &mut stop, "sentinel").await
    {
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "refused a sentinel client: connection limit reached");
            continue;
        };
        let _ = socket.set_nodelay(true);
        let (shared, stop) = (shared.clone(), stop.clone());
        // `--sentinel-tls`: the client TLS files, as loaded last (SIGHUP reloads them).
        let tls = match shared.config.sentinel_tls {
            true => shared.certs.client(),
            false => None,
        };
        tokio::spawn(async move {
            let served = match tls {
                None => connection(socket, peer, shared, stop).await,
                Some(tls) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(socket)).await {
                        Ok(Ok(stream)) => connection(stream, peer, shared, stop).await,
                        _ => {
                            tracing::info!(%peer, "refused a sentinel client: TLS handshake failed");
                            metrics::counter!("meridian_tls_handshake_failures_total").increment(1);
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "sentinel client gone");
            }
            drop(slot);
        });
    }
}

/// One client's state.
struct Client {
    protocol: Protocol,
    authenticated: bool,
    channels: BTreeSet<Bytes>,
    patterns: BTreeSet<Bytes>,
    switches: Option<broadcast::Receiver<String>>,
}

impl Client {
    fn subscriptions(&self) -> i64 {
        (self.channels.len() + self.patterns.len()) as i64
    }
}

async fn connection(
    mut socket: impl crate::server::Stream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    if crate::server::refused_by_protected_mode(&shared, peer, &mut socket).await? {
        return Ok(());
    }
    let mut client = Client {
        protocol: Protocol::Resp2,
        authenticated: shared.users.open(),
        channels: BTreeSet::new(),
        patterns: BTreeSet::new(),
        switches: None,
    };
    let limits = resp::Limits::unauthenticated();
    let mut buf = BytesMut::with_capacity(4096);
    let mut out = BytesMut::new();
    loop {
        tokio::select! {
            read = socket.read_buf(&mut buf) => {
                if read? == 0 {
                    return Ok(());
                }
                loop {
                    let args = match resp::parse_command(&mut buf, &limits) {
                        Ok(Some(args)) => args,
                        Ok(None) => break,
                        Err(e) => {
                            Reply::Error(format!("ERR {e}")).encode(client.protocol, &mut out);
                            socket.write_all(&out).await?;
                            return Ok(());
                        }
                    };
                    if !command(&shared, &mut client, &args, &mut out) {
                        socket.write_all(&out).await?;
                        return Ok(());
                    }
                }
                if buf.len() > limits.max_inline_len.max(limits.max_bulk_len) * 2 {
                    return Ok(()); // a command that never ends
                }
            }
            switch = next_switch(&mut client.switches) => match switch {
                Ok(message) => deliver(&client, &message, &mut out),
                // Too far behind: cut off, as Sentinel cuts off slow subscribers.
                Err(_) => return Ok(()),
            },
            _ = stop.changed() => return Ok(()),
        }
        if !out.is_empty() {
            socket.write_all(&out).await?;
            out.clear();
        }
    }
}

async fn next_switch(
    rx: &mut Option<broadcast::Receiver<String>>,
) -> Result<String, broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// A switch announcement to a subscribed client.
fn deliver(client: &Client, message: &str, out: &mut BytesMut) {
    let channel = Bytes::from_static(SWITCH_CHANNEL.as_bytes());
    let payload = Reply::bulk(message.to_string());
    if client.channels.contains(&channel) {
        Reply::Push(vec![
            Reply::bulk("message"),
            Reply::Bulk(channel.clone()),
            payload.clone(),
        ])
        .encode(client.protocol, out);
    }
    for pattern in &client.patterns {
        if crate::glob::glob_match(pattern, &channel, false) {
            Reply::Push(vec![
                Reply::bulk("pmessage"),
                Reply::Bulk(pattern.clone()),
                Reply::Bulk(channel.clone()),
                payload.clone(),
            ])
            .encode(client.protocol, out);
        }
    }
}

/// Runs one command, writing its replies to `out`; false when the connection is to close.
fn command(shared: &Shared, client: &mut Client, args: &[Bytes], out: &mut BytesMut) -> bool {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let reply = match name.as_str() {
        "quit" => {
            Reply::OK.encode(client.protocol, out);
            return false;
        }
        "auth" => auth(shared, client, &args[1..]),
        "hello" => hello(shared, client, &args[1..]),
        "ping" if client.authenticated => match (args.len(), client.subscriptions() > 0) {
            (1, false) => Reply::Simple("PONG"),
            (2, false) => Reply::Bulk(args[1].clone()),
            (n, true) if n <= 2 => Reply::Array(vec![
                Reply::bulk("pong"),
                Reply::Bulk(args.get(1).cloned().unwrap_or_default()),
            ]),
            _ => Reply::wrong_arity("ping"),
        },
        _ if !client.authenticated => Reply::err("NOAUTH Authentication required."),
        "subscribe" | "psubscribe" if args.len() >= 2 => {
            subscribe(shared, client, &name, &args[1..], out);
            return true;
        }
        "unsubscribe" | "punsubscribe" => {
            unsubscribe(client, &name, &args[1..], out);
            return true;
        }
        _ if client.subscriptions() > 0 => Reply::Error(format!(
            "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
        )),
        "sentinel" if args.len() >= 2 => sentinel(shared, &args[1..]),
        "role" => Reply::Array(vec![
            Reply::bulk("sentinel"),
            Reply::Array(
                Picture::of(shared)
                    .regions()
                    .into_iter()
                    .map(Reply::bulk)
                    .collect(),
            ),
        ]),
        "info" => Reply::Verbatim(info(shared)),
        "client" if args.len() >= 2 => match args[1].to_ascii_lowercase().as_slice() {
            b"setname" | b"setinfo" => Reply::OK,
            b"getname" => Reply::Null,
            _ => Reply::err("ERR unknown subcommand for CLIENT on a sentinel"),
        },
        _ => Reply::Error(format!(
            "ERR unknown command '{}', with args beginning with: {}",
            String::from_utf8_lossy(&args[0]),
            args[1..]
                .iter()
                .map(|a| format!("'{}' ", String::from_utf8_lossy(a)))
                .collect::<String>()
        )),
    };
    reply.encode(client.protocol, out);
    true
}

fn auth(shared: &Shared, client: &mut Client, args: &[Bytes]) -> Reply {
    let (user, password) = match args {
        [password] => (crate::acl::DEFAULT_USER.as_bytes(), password),
        [user, password] => (user.as_ref(), password),
        _ => return Reply::wrong_arity("auth"),
    };
    match shared.users.login(user, password) {
        Ok(()) => {
            client.authenticated = true;
            Reply::OK
        }
        Err(e) => Reply::err(e),
    }
}

/// `HELLO [protover [AUTH user pass] [SETNAME name]]`.
fn hello(shared: &Shared, client: &mut Client, args: &[Bytes]) -> Reply {
    let mut protocol = client.protocol;
    if let Some(version) = args.first() {
        protocol = match version.as_ref() {
            b"2" => Protocol::Resp2,
            b"3" => Protocol::Resp3,
            _ => return Reply::err("NOPROTO unsupported protocol version"),
        };
    }
    let mut rest = args.iter().skip(1);
    while let Some(word) = rest.next() {
        match word.to_ascii_lowercase().as_slice() {
            b"auth" => {
                let (Some(user), Some(password)) = (rest.next(), rest.next()) else {
                    return Reply::err("ERR Syntax error in HELLO option 'auth'");
                };
                if let Err(e) = shared.users.login(user, password) {
                    return Reply::err(e);
                }
                client.authenticated = true;
            }
            b"setname" if rest.next().is_some() => {}
            _ => return Reply::err("ERR Syntax error in HELLO option"),
        }
    }
    if !client.authenticated {
        return Reply::err(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        );
    }
    client.protocol = protocol;
    let proto = if protocol == Protocol::Resp3 { 3 } else { 2 };
    Reply::Map(vec![
        (Reply::bulk("server"), Reply::bulk("meridian")),
        (
            Reply::bulk("version"),
            Reply::bulk(crate::server::REDIS_COMPAT_VERSION),
        ),
        (Reply::bulk("proto"), Reply::Int(proto)),
        (Reply::bulk("id"), Reply::Int(0)),
        (Reply::bulk("mode"), Reply::bulk("sentinel")),
        (Reply::bulk("role"), Reply::bulk("sentinel")),
        (Reply::bulk("modules"), Reply::Array(Vec::new())),
    ])
}

fn subscribe(
    shared: &Shared,
    client: &mut Client,
    name: &str,
    targets: &[Bytes],
    out: &mut BytesMut,
) {
    if client.switches.is_none() {
        client.switches = Some(shared.discovery.switches());
    }
    for target in targets {
        if name == "subscribe" {
            client.channels.insert(target.clone());
        } else {
            client.patterns.insert(target.clone());
        }
        Reply::Push(vec![
            Reply::bulk(name.to_string()),
            Reply::Bulk(target.clone()),
            Reply::Int(client.subscriptions()),
        ])
        .encode(client.protocol, out);
    }
}

fn unsubscribe(client: &mut Client, name: &str, targets: &[Bytes], out: &mut BytesMut) {
    let set = match name {
        "unsubscribe" => &mut client.channels,
        _ => &mut client.patterns,
    };
    let targets: Vec<Bytes> = match targets.is_empty() {
        true => set.iter().cloned().collect(),
        false => targets.to_vec(),
    };
    let mut replies = Vec::new();
    for target in &targets {
        set.remove(target);
        replies.push(target.clone());
    }
    let mut none = replies.is_empty();
    for target in replies {
        Reply::Push(vec![
            Reply::bulk(name.to_string()),
            Reply::Bulk(target),
            Reply::Int(client.subscriptions()),
        ])
        .encode(client.protocol, out);
        none = false;
    }
    if none {
        Reply::Push(vec![
            Reply::bulk(name.to_string()),
            Reply::Null,
            Reply::Int(client.subscriptions()),
        ])
        .encode(client.protocol, out);
    }
    if client.subscriptions() == 0 {
        client.switches = None;
    }
}

/// `SENTINEL <subcommand> ...`.
fn sentinel(shared: &Shared, args: &[Bytes]) -> Reply {
    let sub = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let picture = Picture::of(shared);
    let region = args.get(1).map(|a| String::from_utf8_lossy(a).into_owned());
    let known = |region: &Option<String>| {
        region
            .as_ref()
            .filter(|r| picture.regions().contains(*r))
            .cloned()
    };
    match (sub.as_str(), args.len()) {
        ("get-master-addr-by-name" | "get-primary-addr-by-name", 2) => {
            let Some(region) = known(&region) else {
                return Reply::NullArray;
            };
            match current(shared, &picture, &region) {
                Some((named, _)) => Reply::Array(vec![
                    Reply::bulk(named.addr.ip().to_string()),
                    Reply::bulk(named.addr.port().to_string()),
                ]),
                None => Reply::NullArray,
            }
        }
        ("masters" | "primaries", 1) => Reply::Array(
            (picture.regions().iter())
                .filter_map(|r| master(shared, &picture, r))
                .collect(),
        ),
        ("master" | "primary", 2) => {
            match known(&region).and_then(|r| master(shared, &picture, &r)) {
                Some(reply) => reply,
                None => Reply::err("ERR No such master with that name"),
            }
        }
        ("replicas" | "slaves", 2) => match known(&region) {
            Some(_) => Reply::Array(Vec::new()),
            None => Reply::err("ERR No such master with that name"),
        },
        ("sentinels", 2) => match known(&region) {
            Some(_) => Reply::Array(
                (picture.sentinels.iter())
                    .map(|s| {
                        fields(vec![
                            ("name", s.name.clone()),
                            ("ip", s.addr.ip().to_string()),
                            ("port", s.addr.port().to_string()),
                            ("runid", run_id(&s.name)),
                            ("flags", "sentinel".into()),
                            ("link-pending-commands", "0".into()),
                            ("link-refcount", "1".into()),
                            ("last-hello-message", "0".into()),
                            ("voted-leader", "?".into()),
                            ("voted-leader-epoch", "0".into()),
                        ])
                    })
                    .collect(),
            ),
            None => Reply::err("ERR No such master with that name"),
        },
        ("ckquorum", 2) => match known(&region) {
            Some(_) => Reply::Status(format!(
                "OK {} usable Sentinels. Quorum and failover authorization can be reached",
                picture.sentinels.len() + 1
            )),
            None => Reply::err("ERR No such master with that name"),
        },
        ("myid", 1) => Reply::bulk(run_id(&shared.config.node_id)),
        (
            "monitor"
            | "remove"
            | "set"
            | "reset"
            | "failover"
            | "flushconfig"
            | "config"
            | "simulate-failure"
            | "debug"
            | "is-master-down-by-addr",
            _,
        ) => Reply::err(READ_ONLY),
        ("help", 1) => Reply::Array(
            [
                "SENTINEL <subcommand> [<arg> ...]. Subcommands are:",
                "GET-MASTER-ADDR-BY-NAME <region>",
                "    The address of the node clients of <region> should use.",
                "MASTERS",
                "    Every region, as a master.",
                "MASTER <region>",
                "    One region, as a master.",
                "REPLICAS <region>",
                "    None: every node is a master.",
                "SENTINELS <region>",
                "    The other nodes' sentinel listeners.",
                "CKQUORUM <region>",
                "    Always reachable: answers come from the cluster's view, not a vote.",
                "MYID",
                "    This node's id.",
            ]
            .into_iter()
            .map(Reply::Simple)
            .collect(),
        ),
        _ => Reply::Error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{sub}'. Try SENTINEL HELP."
        )),
    }
}

/// The node named for `region` now, and whether it is ready; when no node is ready, the one
/// named last (so that `SENTINEL MASTERS` can show it down, as Sentinel shows a master
/// it lost).
fn current(shared: &Shared, picture: &Picture, region: &str) -> Option<(Named, bool)> {
    let (mut named, up) = match picture.answer(region, region) {
        Some(named) => (named, true),
        None => (shared.discovery.last(region)?, false),
    };
    // Clients of a TLS sentinel speak TLS: they are sent to the node's TLS port.
    if shared.config.sentinel_tls
        && let Some(tls) = named.tls_addr
    {
        named.addr = tls;
    }
    Some((named, up))
}

/// One region as `SENTINEL MASTERS` shows a master.
fn master(shared: &Shared, picture: &Picture, region: &str) -> Option<Reply> {
    let (named, up) = current(shared, picture, region)?;
    let flags = if up { "master" } else { "master,s_down,o_down" };
    Some(fields(vec![
        ("name", region.to_string()),
        ("ip", named.addr.ip().to_string()),
        ("port", named.addr.port().to_string()),
        ("runid", run_id(&named.name)),
        ("flags", flags.into()),
        ("link-pending-commands", "0".into()),
        ("link-refcount", "1".into()),
        ("last-ping-sent", "0".into()),
        ("last-ok-ping-reply", "0".into()),
        ("last-ping-reply", "0".into()),
        ("down-after-milliseconds", DOWN_AFTER_MS.into()),
        ("info-refresh", "0".into()),
        ("role-reported", "master".into()),
        ("role-reported-time", "0".into()),
        ("config-epoch", "0".into()),
        ("num-slaves", "0".into()),
        ("num-other-sentinels", picture.sentinels.len().to_string()),
        ("quorum", "1".into()),
        ("failover-timeout", "0".into()),
        ("parallel-syncs", "0".into()),
    ]))
}

/// A Sentinel-style record: field names and values as bulk strings (a map in RESP3, a flat
/// array in RESP2).
fn fields(pairs: Vec<(&'static str, String)>) -> Reply {
    Reply::Map(
        pairs
            .into_iter()
            .map(|(k, v)| (Reply::bulk(k), Reply::bulk(v)))
            .collect(),
    )
}

/// A 40-hex-digit id for a node, as Sentinel's run ids look (stable: from its name).
fn run_id(name: &str) -> String {
    let h = crdt::NodeId::from_name(name).0;
    let mixed = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    format!("{h:016x}{mixed:016x}{:08x}", (h >> 32) as u32)
}

/// `INFO` of a sentinel: its regions as masters.
fn info(shared: &Shared) -> String {
    let picture = Picture::of(shared);
    let regions = picture.regions();
    let mut text = format!(
        "# Server\r\nredis_version:{}\r\nredis_mode:sentinel\r\nnode_id:{}\r\nregion:{}\r\n\r\n# Sentinel\r\nsentinel_masters:{}\r\nsentinel_tilt:0\r\nsentinel_running_scripts:0\r\nsentinel_scripts_queue_length:0\r\nsentinel_simulate_failure_flags:0\r\n",
        crate::server::REDIS_COMPAT_VERSION,
        shared.config.node_id,
        shared.config.region,
        regions.len()
    );
    for (i, region) in regions.iter().enumerate() {
        if let Some((named, up)) = current(shared, &picture, region) {
            text.push_str(&format!(
                "master{i}:name={region},status={},address={},slaves=0,sentinels={}\r\n",
                if up { "ok" } else { "sdown" },
                named.addr,
                picture.sentinels.len() + 1
            ));
        }
    }
    text
}
