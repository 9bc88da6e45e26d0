//! Commands a connection answers itself: connection state, server information, pub/sub.

use super::clients::{Filter, Shown};
use super::connection::Session;
use super::tracking;
use crate::Shared;
use crate::cmd::{COMMANDS, Runs, keyspec};
use crate::engine::{FsyncPolicy, notify};
use crate::glob::glob_match;
use crate::pubsub::Kind;
use bytes::{Bytes, BytesMut};
use resp::args::{ERR_NOT_INTEGER, ERR_SYNTAX, parse_i64};
use resp::{Protocol, Reply};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Whether the connection goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep serving.
    Continue,
    /// Close after writing the replies so far.
    Close,
}

/// The Redis version whose behaviour Meridian's commands follow.
pub const REDIS_COMPAT_VERSION: &str = "7.0.15";

/// Commands a RESP2 connection may run while subscribed.
pub fn allowed_when_subscribed(name: &str) -> bool {
    matches!(
        name,
        "subscribe"
            | "unsubscribe"
            | "psubscribe"
            | "punsubscribe"
            | "ssubscribe"
            | "sunsubscribe"
            | "ping"
            | "quit"
            | "reset"
    )
}

/// Whether `args` (un)subscribes: its confirmations are pushes, which `CLIENT REPLY OFF` and
/// `SKIP` do not silence (as in Redis 7).
pub fn pushes(args: &[Bytes]) -> bool {
    let name = args[0].to_ascii_lowercase();
    matches!(
        name.as_slice(),
        b"subscribe"
            | b"unsubscribe"
            | b"psubscribe"
            | b"punsubscribe"
            | b"ssubscribe"
            | b"sunsubscribe"
    )
}

/// Runs connection command `name` (looked up and arity-checked), writing its replies.
pub fn run(
    shared: &Shared,
    session: &mut Session,
    name: &str,
    args: &[Bytes],
    out: &mut BytesMut,
) -> Flow {
    let reply = match name {
        "ping" | "echo" | "time" => answer(session, name, args),
        "hello" => hello(shared, session, args),
        "auth" => auth(shared, session, args),
        "acl" => acl(shared, session, args),
        "select" => match parse_i64(&args[1]) {
            Some(0) => Reply::OK,
            Some(_) => Reply::err("ERR DB index is out of range"),
            None => Reply::err(ERR_NOT_INTEGER),
        },
        "quit" => {
            Reply::OK.encode(session.protocol, out);
            return Flow::Close;
        }
        "reset" => reset(shared, session),
        "monitor" => {
            session.monitor = Some(shared.monitors.subscribe());
            Reply::OK
        }
        "client" => client(shared, session, args),
        "command" => command(args),
        "config" => config(shared, args),
        "info" => info(shared, args),
        // Every node is a master of the same data, with no replicas of its own.
        "role" => Reply::Array(vec![
            Reply::bulk("master"),
            Reply::Int((shared.engine.progress.borrow().applied).get(shared.engine.node) as i64),
            Reply::Array(Vec::new()),
        ]),
        "slowlog" => shared.slowlog.command(args),
        "latency" => shared.slowlog.latency(args),
        "cluster" => cluster(shared, args),
        "function" | "script" => scripting(name, args),
        "wait" => unreachable!("WAIT waits for the engine: run by the connection"),
        "publish" | "spublish" => {
            let kind = if name == "spublish" {
                Kind::Shard
            } else {
                Kind::Channel
            };
            shared.cluster.publish(kind, &args[1], &args[2]);
            Reply::Int(shared.hub.publish_to(kind, &args[1], &args[2]))
        }
        "pubsub" => pubsub(shared, args),
        "subscribe" | "psubscribe" | "ssubscribe" => {
            subscribe(shared, session, &args[1..], name, out);
            return Flow::Continue;
        }
        "unsubscribe" | "punsubscribe" | "sunsubscribe" => {
            unsubscribe(shared, session, &args[1..], name, out);
            return Flow::Continue;
        }
        other => unreachable!("{other} is not a connection command"),
    };
    reply.encode(session.protocol, out);
    Flow::Continue
}

/// The answer to `PING`, `ECHO` or `TIME`: connection commands that touch nothing, and so
/// may also be queued in a transaction.
pub fn answer(session: &Session, name: &str, args: &[Bytes]) -> Reply {
    match name {
        "ping" => ping(session, args),
        "echo" => Reply::Bulk(args[1].clone()),
        "time" => time(),
        other => unreachable!("{other} is not answered without the node"),
    }
}

/// `TIME`: seconds and microseconds of the wall clock.
fn time() -> Reply {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    Reply::Array(vec![
        Reply::bulk((micros / 1_000_000).to_string()),
        Reply::bulk((micros % 1_000_000).to_string()),
    ])
}

fn ping(session: &Session, args: &[Bytes]) -> Reply {
    if args.len() > 2 {
        return Reply::wrong_arity("ping");
    }
    if session.subscribed() && session.protocol == Protocol::Resp2 {
        return Reply::Array(vec![
            Reply::bulk("pong"),
            Reply::Bulk(args.get(1).cloned().unwrap_or_default()),
        ]);
    }
    match args.get(1) {
        Some(m) => Reply::Bulk(m.clone()),
        None => Reply::Simple("PONG"),
    }
}

fn hello(shared: &Shared, session: &mut Session, args: &[Bytes]) -> Reply {
    let mut protocol = session.protocol;
    if let Some(v) = args.get(1) {
        protocol = match parse_i64(v) {
            Some(2) => Protocol::Resp2,
            Some(3) => Protocol::Resp3,
            Some(_) => return Reply::err("NOPROTO unsupported protocol version"),
            None => return Reply::err("ERR Protocol version is not an integer or out of range"),
        };
    }
    let mut name = None;
    let mut login = None;
    let mut i = 2;
    while i < args.len() {
        match args[i].to_ascii_uppercase().as_slice() {
            b"AUTH" if i + 2 < args.len() => {
                login = Some((&args[i + 1], &args[i + 2]));
                i += 3;
            }
            b"SETNAME" if i + 1 < args.len() => {
                if let Err(e) = check_client_name(&args[i + 1]) {
                    return e;
                }
                name = Some(args[i + 1].clone());
                i += 2;
            }
            _ => {
                return Reply::Error(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(&args[i])
                ));
            }
        }
    }
    if let Some((user, password)) = login
        && let Err(e) = log_in(shared, session, user, password)
    {
        return e;
    }
    if !session.authenticated {
        return Reply::err(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        );
    }
    session.protocol = protocol;
    if name.is_some() {
        session.name = name;
    }
    Reply::Map(vec![
        (Reply::bulk("server"), Reply::bulk("meridian")),
        (Reply::bulk("version"), Reply::bulk(REDIS_COMPAT_VERSION)),
        (
            Reply::bulk("proto"),
            Reply::Int(if protocol == Protocol::Resp3 { 3 } else { 2 }),
        ),
        (Reply::bulk("id"), Reply::Int(session.id as i64)),
        (Reply::bulk("mode"), Reply::bulk("standalone")),
        (Reply::bulk("role"), Reply::bulk("master")),
        (
            Reply::bulk("modules"),
            Reply::Array(vec![Reply::Map(vec![
                (Reply::bulk("name"), Reply::bulk("timeseries")),
                (Reply::bulk("ver"), Reply::Int(TIMESERIES_VERSION)),
                (Reply::bulk("path"), Reply::bulk("built-in")),
                (Reply::bulk("args"), Reply::Array(vec![])),
            ])]),
        ),
        (
            Reply::bulk("meridian_version"),
            Reply::bulk(env!("CARGO_PKG_VERSION")),
        ),
        (
            Reply::bulk("region"),
            Reply::bulk(shared.config.region.clone()),
        ),
    ])
}

/// `AUTH [user] password`: logs the connection in (`acl.rs` decides).
fn auth(shared: &Shared, session: &mut Session, args: &[Bytes]) -> Reply {
    let (user, password) = match args.len() {
        2 if shared.users.open() => {
            return Reply::err(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            );
        }
        2 => (
            &Bytes::from_static(crate::acl::DEFAULT_USER.as_bytes()),
            &args[1],
        ),
        3 => (&args[1], &args[2]),
        _ => return Reply::err(ERR_SYNTAX),
    };
    match log_in(shared, session, user, password) {
        Ok(()) => Reply::OK,
        Err(e) => e,
    }
}

/// Logs the connection in as `user`, or answers why not (the same for every reason).
fn log_in(
    shared: &Shared,
    session: &mut Session,
    user: &Bytes,
    password: &Bytes,
) -> Result<(), Reply> {
    match shared.users.login(user, password) {
        Ok(()) => {
            session.authenticated = true;
            session.user = String::from_utf8_lossy(user).into_owned();
            Ok(())
        }
        Err(text) => {
            tracing::info!(client = session.id, addr = %session.client.addr, "refused a login");
            metrics::counter!("meridian_auth_failures_total").increment(1);
            shared.users.log_login(user, session.client.line(None));
            Err(Reply::err(text))
        }
    }
}

/// Whether `args` is an `ACL` call that changes the cluster's users (run by [`acl_write`]).
pub fn is_acl_write(args: &[Bytes]) -> bool {
    args.len() >= 2
        && [&b"SETUSER"[..], b"DELUSER", b"LOAD", b"TOKEN"]
            .iter()
            .any(|s| args[1].eq_ignore_ascii_case(s))
        && match args[1].to_ascii_uppercase().as_slice() {
            b"LOAD" => args.len() == 2,
            b"TOKEN" => args.len() == 3,
            _ => args.len() >= 3,
        }
}

/// `ACL SETUSER`, `ACL DELUSER`, `ACL LOAD`, and Meridian's `ACL TOKEN <user>` (a new
/// bearer token for HTTP, a password of the user: `http::auth`): written to the cluster's
/// user table, which every node follows (`server::users`).
pub async fn acl_write(shared: &Shared, args: &[Bytes]) -> Reply {
    let users = &shared.users;
    let mut token = None;
    let entries = match args[1].to_ascii_uppercase().as_slice() {
        b"TOKEN" => {
            let name = String::from_utf8_lossy(&args[2]).into_owned();
            if !users.exists(&name) {
                return Reply::Error(format!("ERR User '{name}' does not exist"));
            }
            let new = crate::http::new_token(&name);
            let rule = Bytes::from(format!(">{new}"));
            token = Some(new);
            users.set_entry(&name, &[rule]).map(|e| vec![e])
        }
        b"SETUSER" => {
            let name = String::from_utf8_lossy(&args[2]).into_owned();
            users.set_entry(&name, &args[3..]).map(|e| vec![e])
        }
        b"DELUSER" => users.delete_entries(&args[2..]).map_err(String::from),
        _ => users.load().map_err(|e| format!("ERR {e}")),
    };
    let entries = match entries {
        Ok(entries) => entries,
        Err(e) => return Reply::Error(e),
    };
    let deleted = entries.len();
    match super::users::write(shared, entries).await {
        Err(reply) => reply,
        Ok(()) if let Some(token) = token => Reply::bulk(token),
        Ok(()) if args[1].eq_ignore_ascii_case(b"DELUSER") => Reply::Int(deleted as i64),
        Ok(()) => Reply::OK,
    }
}

/// `ACL ...`: users and their rights (`acl.rs`); the calls that change users are
/// [`acl_write`]'s.
fn acl(shared: &Shared, session: &Session, args: &[Bytes]) -> Reply {
    let sub = args[1].to_ascii_uppercase();
    let users = &shared.users;
    match (sub.as_slice(), args.len()) {
        (b"WHOAMI", 2) => Reply::bulk(session.user.clone()),
        (b"USERS", 2) => Reply::Array(users.names().into_iter().map(Reply::bulk).collect()),
        (b"LIST", 2) => Reply::Array(users.list().into_iter().map(Reply::bulk).collect()),
        (b"GETUSER", 3) => match users.describe(&String::from_utf8_lossy(&args[2])) {
            None => Reply::Null,
            Some(fields) => Reply::Map(
                (fields.into_iter())
                    .map(|(k, v)| (Reply::bulk(k), v))
                    .collect(),
            ),
        },
        (b"CAT", 2) => Reply::Array(
            crate::cmd::categories::NAMES
                .iter()
                .map(|c| Reply::bulk(*c))
                .collect(),
        ),
        (b"CAT", 3) => {
            let Some(bit) = crate::cmd::categories::bit(&String::from_utf8_lossy(&args[2])) else {
                return Reply::Error(format!(
                    "ERR Unknown category '{}'",
                    String::from_utf8_lossy(&args[2])
                ));
            };
            Reply::Array(
                (COMMANDS.iter())
                    .filter(|c| crate::cmd::categories::of(c.name, "") & bit != 0)
                    .map(|c| Reply::bulk(c.name))
                    .collect(),
            )
        }
        (b"DRYRUN", n) if n >= 4 => {
            let user = String::from_utf8_lossy(&args[2]).into_owned();
            if users.describe(&user).is_none() {
                return Reply::Error(format!("ERR User '{user}' not found"));
            }
            let call = &args[3..];
            let Some(spec) = crate::cmd::lookup(&call[0]) else {
                return Reply::Error(format!(
                    "ERR Command '{}' not found",
                    String::from_utf8_lossy(&call[0])
                ));
            };
            if !crate::cmd::arity_ok(spec, call.len()) {
                return Reply::wrong_arity(spec.name);
            }
            match users.check(&user, spec, call) {
                Ok(()) => Reply::OK,
                // As Redis words it for DRYRUN: the same reason, about the user named.
                Err(denied) => Reply::bulk(
                    denied
                        .reply_text()
                        .replacen("NOPERM this user", "This user", 1),
                ),
            }
        }
        (b"GENPASS", 2 | 3) => {
            let bits = match args.get(2).map(|b| parse_i64(b)) {
                None => 256,
                Some(Some(b)) if (1..=4096).contains(&b) => b as usize,
                Some(_) => {
                    return Reply::err(
                        "ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096",
                    );
                }
            };
            let mut random = vec![0u8; bits.div_ceil(8)];
            getrandom::fill(&mut random).expect("the operating system's random source works");
            let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
            Reply::bulk(hex[..bits.div_ceil(4)].to_string())
        }
        (b"HELP", 2) => Reply::Array(
            [
                "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CAT [<category>]",
                "    List all commands that belong to <category>, or all command categories",
                "    when no category is specified.",
                "DELUSER <username> [<username> ...]",
                "    Delete a list of users.",
                "DRYRUN <username> <command> [<arg> ...]",
                "    Returns whether the user can execute the given command without executing the command.",
                "GETUSER <username>",
                "    Get the user's details.",
                "LOG [<count> | RESET]",
                "    Show the ACL log entries.",
                "LOAD",
                "    Reload users from the ACL file.",
                "SAVE",
                "    Save the current config to the ACL file.",
                "GENPASS [<bits>]",
                "    Generate a secure 256-bit user password. The optional `bits` argument can",
                "    be used to specify a different size.",
                "LIST",
                "    Show users details in config file format.",
                "SETUSER <username> <attribute> [<attribute> ...]",
                "    Create or modify a user with the specified attributes.",
                "TOKEN <username>",
                "    (Meridian) Make a bearer token for HTTP: a new password of the user.",
                "USERS",
                "    List all the registered usernames.",
                "WHOAMI",
                "    Return the current connection username.",
                "HELP",
                "    Print this help.",
            ]
            .into_iter()
            .map(Reply::Simple)
            .collect(),
        ),
        (b"SAVE", 2) => match users.save() {
            Ok(()) => Reply::OK,
            Err(e) => Reply::Error(format!("ERR {e}")),
        },
        (b"LOG", 2 | 3) => match args.get(2) {
            Some(r) if r.eq_ignore_ascii_case(b"reset") => {
                users.reset_log();
                Reply::OK
            }
            count => {
                let count = match count.map(|c| parse_i64(c)) {
                    None => 10,
                    Some(Some(n)) if n >= 0 => n as usize,
                    Some(_) => {
                        return Reply::err("ERR value is out of range, must be positive");
                    }
                };
                Reply::Array(
                    (users.log_entries(count).into_iter())
                        .map(|fields| {
                            Reply::Map(fields.into_iter().map(|(k, v)| (Reply::bulk(k), v)).collect())
                        })
                        .collect(),
                )
            }
        },
        (
            b"WHOAMI" | b"USERS" | b"LIST" | b"HELP" | b"SETUSER" | b"DELUSER" | b"GETUSER"
            | b"CAT" | b"DRYRUN" | b"GENPASS" | b"LOAD" | b"SAVE" | b"LOG",
            _,
        ) => Reply::Error(format!(
            "ERR wrong number of arguments for 'acl|{}' command",
            String::from_utf8_lossy(&sub).to_lowercase()
        )),
        _ => Reply::Error(format!(
            "ERR unknown subcommand '{}'. Try ACL HELP.",
            String::from_utf8_lossy(&args[1])
        )),
    }
}

fn reset(shared: &Shared, session: &mut Session) -> Reply {
    if let Some(sub) = session.subscriber.take() {
        shared.hub.unregister(sub.id);
    }
    session.channels.clear();
    session.patterns.clear();
    session.shard_channels.clear();
    session.protocol = Protocol::Resp2;
    session.name = None;
    session.multi = None;
    session.watched.clear();
    session.monitor = None;
    session.tracking = false;
    session.caching = None;
    shared.tracking.disable(session.id);
    // Back to the default user: logged in only if it needs no password.
    session.authenticated = shared.users.open();
    session.user = crate::acl::DEFAULT_USER.into();
    Reply::Simple("RESET")
}

fn check_client_name(name: &[u8]) -> Result<(), Reply> {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(Reply::err(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

/// Whether a `CLIENT` command is `CLIENT UNBLOCK` (which waits for the engine).
/// `CLIENT PAUSE ...` or `CLIENT UNPAUSE`: never held by a pause.
pub fn is_pause_control(args: &[Bytes]) -> bool {
    (args.get(1))
        .is_some_and(|s| s.eq_ignore_ascii_case(b"pause") || s.eq_ignore_ascii_case(b"unpause"))
}

pub fn is_unblock(args: &[Bytes]) -> bool {
    args.get(1)
        .is_some_and(|a| a.eq_ignore_ascii_case(b"unblock"))
}

/// `CLIENT UNBLOCK id [TIMEOUT|ERROR]`: 1 if the client was blocked, 0 otherwise.
pub async fn client_unblock(shared: &Shared, args: &[Bytes]) -> Reply {
    let error = match args.get(3).map(|a| a.to_ascii_uppercase()) {
        None => false,
        Some(m) if m == b"TIMEOUT" => false,
        Some(m) if m == b"ERROR" => true,
        Some(_) => return Reply::err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"),
    };
    if !(3..=4).contains(&args.len()) {
        return Reply::wrong_arity("client|unblock");
    }
    let Some(id) = parse_i64(&args[2]) else {
        return Reply::err(ERR_NOT_INTEGER);
    };
    let found = id >= 0 && shared.engine.unblock_client(id as u64, error).await;
    Reply::Int(i64::from(found))
}

fn client(shared: &Shared, session: &mut Session, args: &[Bytes]) -> Reply {
    let sub = args[1].to_ascii_uppercase();
    match (sub.as_slice(), args.len()) {
        (b"ID", 2) => Reply::Int(session.id as i64),
        (b"GETNAME", 2) => session.name.clone().map_or(Reply::Null, Reply::Bulk),
        (b"SETNAME", 3) => match check_client_name(&args[2]) {
            Ok(()) => {
                session.name = if args[2].is_empty() {
                    None
                } else {
                    Some(args[2].clone())
                };
                Reply::OK
            }
            Err(e) => e,
        },
        (b"SETINFO", 4) => Reply::OK,
        (b"INFO", 2) => {
            Reply::Verbatim(format!("{}\n", session.client.line(Some(frame_len(args)))))
        }
        (b"LIST", _) => match client_filter(session, &args[2..], true) {
            Ok(filter) => {
                let lines: String = (shared.clients.list(&filter).iter())
                    .map(|c| c.line((c.id == session.id).then(|| frame_len(args))) + "\n")
                    .collect();
                Reply::Verbatim(lines)
            }
            Err(e) => e,
        },
        (b"KILL", 2) => Reply::err("ERR wrong number of arguments for 'client|kill' command"),
        (b"KILL", 3) => {
            // The old form: one address, OK or an error.
            let filter = Filter {
                addr: Some(String::from_utf8_lossy(&args[2]).into_owned()),
                ..Filter::default()
            };
            match shared.clients.kill(&filter) {
                0 => Reply::err("ERR No such client"),
                _ => Reply::OK,
            }
        }
        (b"KILL", _) => match client_filter(session, &args[2..], false) {
            Ok(Filter { user: Some(u), .. }) if !shared.users.exists(&u) => {
                Reply::Error(format!("ERR No such user '{u}'"))
            }
            Ok(filter) => Reply::Int(shared.clients.kill(&filter) as i64),
            Err(e) => e,
        },
        (b"REPLY", 3) => match args[2].to_ascii_uppercase().as_slice() {
            b"ON" => {
                session.reply_off = false;
                Reply::OK
            }
            b"OFF" => {
                session.reply_off = true;
                Reply::OK
            }
            b"SKIP" => {
                // As in Redis, SKIP means nothing while replies are off.
                session.skip_next = !session.reply_off;
                Reply::OK
            }
            _ => Reply::err(ERR_SYNTAX),
        },
        (b"NO-EVICT" | b"NO-TOUCH", 3) => Reply::OK,
        (b"PAUSE", 3 | 4) => {
            let all = match args.get(3).map(|m| m.to_ascii_uppercase()) {
                None => true,
                Some(m) if m == b"ALL" => true,
                Some(m) if m == b"WRITE" => false,
                Some(_) => return Reply::err(ERR_SYNTAX),
            };
            match parse_i64(&args[2]) {
                Some(ms) if ms >= 0 => {
                    let until = tokio::time::Instant::now() + Duration::from_millis(ms as u64);
                    shared.pause.pause(until, all);
                    Reply::OK
                }
                _ => Reply::err("ERR timeout is not an integer or out of range"),
            }
        }
        (b"UNPAUSE", 2) => {
            shared.pause.unpause();
            Reply::OK
        }
        (b"GETREDIR", 2) => match shared.tracking.mode(session.id) {
            None => Reply::Int(-1),
            Some(mode) => Reply::Int(mode.redirect.map_or(0, |r| r as i64)),
        },
        (b"TRACKING", n) if n >= 3 => client_tracking(shared, session, &args[2..]),
        (b"CACHING", 3) => client_caching(shared, session, &args[2]),
        (b"TRACKINGINFO", 2) => client_trackinginfo(shared, session),
        (
            b"ID" | b"GETNAME" | b"SETNAME" | b"SETINFO" | b"INFO" | b"NO-EVICT" | b"NO-TOUCH"
            | b"REPLY" | b"GETREDIR" | b"TRACKING" | b"CACHING" | b"TRACKINGINFO" | b"PAUSE"
            | b"UNPAUSE",
            _,
        ) => Reply::Error(format!(
            "ERR wrong number of arguments for 'client|{}' command",
            String::from_utf8_lossy(&sub).to_lowercase()
        )),
        _ => Reply::Error(format!(
            "ERR unknown subcommand '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(&args[1])
        )),
    }
}

/// `CLIENT TRACKING on|off [REDIRECT id] [BCAST] [PREFIX p ...] [OPTIN] [OPTOUT] [NOLOOP]`,
/// with Redis's errors.
fn client_tracking(shared: &Shared, session: &mut Session, args: &[Bytes]) -> Reply {
    let on = match args[0].to_ascii_lowercase().as_slice() {
        b"on" => true,
        b"off" => false,
        _ => return Reply::err(ERR_SYNTAX),
    };
    let mut mode = tracking::Mode::default();
    let mut prefixes = Vec::new();
    let mut bcast = false;
    let mut i = 1;
    while i < args.len() {
        match args[i].to_ascii_lowercase().as_slice() {
            b"redirect" if i + 1 < args.len() => {
                if mode.redirect.is_some() {
                    return Reply::err("ERR A client can only redirect to a single other client");
                }
                match parse_i64(&args[i + 1]) {
                    Some(id) if id > 0 => mode.redirect = Some(id as u64),
                    _ => return Reply::err("ERR Invalid client ID"),
                }
                i += 1;
            }
            b"bcast" => bcast = true,
            b"optin" => mode.optin = true,
            b"optout" => mode.optout = true,
            b"noloop" => mode.noloop = true,
            b"prefix" if i + 1 < args.len() => {
                prefixes.push(args[i + 1].clone());
                i += 1;
            }
            _ => return Reply::err(ERR_SYNTAX),
        }
        i += 1;
    }
    if !on {
        session.tracking = false;
        shared.tracking.disable(session.id);
        return Reply::OK;
    }
    let had = shared.tracking.mode(session.id);
    if had.as_ref().is_some_and(|h| h.bcast.is_some() != bcast) {
        return Reply::err(
            "ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.",
        );
    }
    if !bcast && !prefixes.is_empty() {
        return Reply::err("ERR PREFIX option requires BCAST mode to be enabled");
    }
    if bcast && (mode.optin || mode.optout) {
        return Reply::err("ERR OPTIN and OPTOUT are not compatible with BCAST");
    }
    if mode.optin && mode.optout {
        return Reply::err("ERR You can't use both OPTIN and OPTOUT");
    }
    if let Some(h) = &had
        && (h.optin && mode.optout || h.optout && mode.optin)
    {
        return Reply::err(
            "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.",
        );
    }
    if let Some(r) = mode.redirect
        && r != session.id
        && !shared.clients.exists(r)
    {
        return Reply::err("ERR The client ID you want redirect to does not exist");
    }
    if bcast {
        if prefixes.is_empty() {
            prefixes.push(Bytes::new());
        }
        // Prefixes may not overlap, with each other or with those the client has.
        let mut all: Vec<Bytes> = had.and_then(|h| h.bcast).unwrap_or_default();
        for p in &prefixes {
            let overlaps = |q: &&Bytes| *q != p && (q.starts_with(p) || p.starts_with(q));
            if let Some(other) = all.iter().chain(prefixes.iter()).find(overlaps) {
                return Reply::Error(format!(
                    "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(other)
                ));
            }
        }
        for p in prefixes {
            if !all.contains(&p) {
                all.push(p);
            }
        }
        mode.bcast = Some(all);
    }
    session.caching = None;
    session.tracking = true;
    shared.tracking.enable(session.id, mode);
    Reply::OK
}

/// `CLIENT CACHING yes|no`: whether the next command's keys are tracked (OPTIN, OPTOUT).
fn client_caching(shared: &Shared, session: &mut Session, arg: &[u8]) -> Reply {
    let Some(mode) = shared
        .tracking
        .mode(session.id)
        .filter(|m| m.optin || m.optout)
    else {
        return Reply::err(
            "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
        );
    };
    match arg.to_ascii_lowercase().as_slice() {
        b"yes" if mode.optin => session.caching = Some(true),
        b"no" if mode.optout => session.caching = Some(false),
        b"yes" => {
            return Reply::err(
                "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            );
        }
        b"no" => {
            return Reply::err(
                "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            );
        }
        _ => return Reply::err(ERR_SYNTAX),
    }
    Reply::OK
}

/// `CLIENT TRACKINGINFO`: flags, redirect and prefixes, as Redis answers.
fn client_trackinginfo(shared: &Shared, session: &Session) -> Reply {
    let mode = shared.tracking.mode(session.id);
    let mut flags = Vec::new();
    let (redirect, prefixes) = match &mode {
        None => {
            flags.push("off");
            (-1, Vec::new())
        }
        Some(m) => {
            flags.push("on");
            if m.bcast.is_some() {
                flags.push("bcast");
            }
            if m.optin {
                flags.push("optin");
                if session.caching == Some(true) {
                    flags.push("caching-yes");
                }
            }
            if m.optout {
                flags.push("optout");
                if session.caching == Some(false) {
                    flags.push("caching-no");
                }
            }
            if m.noloop {
                flags.push("noloop");
            }
            if shared.tracking.broken(session.id) {
                flags.push("broken_redirect");
            }
            let prefixes = m.bcast.clone().unwrap_or_default();
            (m.redirect.map_or(0, |r| r as i64), prefixes)
        }
    };
    Reply::Map(vec![
        (
            Reply::bulk("flags"),
            Reply::Set(flags.into_iter().map(Reply::bulk).collect()),
        ),
        (Reply::bulk("redirect"), Reply::Int(redirect)),
        (
            Reply::bulk("prefixes"),
            Reply::Array(prefixes.into_iter().map(Reply::Bulk).collect()),
        ),
    ])
}

/// The filters of `CLIENT LIST [TYPE t] [ID id ...]` (`list`) or `CLIENT KILL <filter value>
/// ...`, with Redis's errors.
fn client_filter(session: &Session, args: &[Bytes], list: bool) -> Result<Filter, Reply> {
    let mut filter = Filter::default();
    if !list {
        filter.skip = Some(session.id);
    }
    let mut i = 0;
    while i < args.len() {
        let opt = args[i].to_ascii_uppercase();
        let value = args.get(i + 1).ok_or_else(|| Reply::err(ERR_SYNTAX))?;
        match opt.as_slice() {
            b"ID" if list => {
                for id in &args[i + 1..] {
                    match parse_i64(id) {
                        Some(n) if n > 0 => filter.ids.push(n as u64),
                        _ => return Err(Reply::err("ERR Invalid client ID")),
                    }
                }
                i = args.len();
                continue;
            }
            b"ID" => match parse_i64(value) {
                Some(n) if n > 0 => filter.ids.push(n as u64),
                _ => return Err(Reply::err("ERR client-id should be greater than 0")),
            },
            b"TYPE" => match value.to_ascii_lowercase().as_slice() {
                b"normal" => filter.pubsub = Some(false),
                b"pubsub" => filter.pubsub = Some(true),
                b"master" | b"replica" | b"slave" => filter.none = true,
                _ => {
                    return Err(Reply::Error(format!(
                        "ERR Unknown client type '{}'",
                        String::from_utf8_lossy(value)
                    )));
                }
            },
            b"ADDR" if !list => filter.addr = Some(String::from_utf8_lossy(value).into_owned()),
            b"LADDR" if !list => filter.laddr = Some(String::from_utf8_lossy(value).into_owned()),
            b"SKIPME" if !list => match value.to_ascii_lowercase().as_slice() {
                b"yes" => filter.skip = Some(session.id),
                b"no" => filter.skip = None,
                _ => return Err(Reply::err(ERR_SYNTAX)),
            },
            b"USER" if !list => filter.user = Some(String::from_utf8_lossy(value).into_owned()),
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
        i += 2;
    }
    Ok(filter)
}

/// Whether the command is `CLIENT REPLY ON`, which is answered though replies were off.
pub fn restores_replies(args: &[Bytes]) -> bool {
    args.len() == 3
        && args[0].eq_ignore_ascii_case(b"client")
        && args[1].eq_ignore_ascii_case(b"reply")
        && args[2].eq_ignore_ascii_case(b"on")
}

/// Whether the command is `CLIENT REPLY OFF` or `SKIP`, whose own replies are not sent.
pub fn silences(args: &[Bytes]) -> bool {
    args.len() == 3
        && args[0].eq_ignore_ascii_case(b"client")
        && args[1].eq_ignore_ascii_case(b"reply")
        && (args[2].eq_ignore_ascii_case(b"off") || args[2].eq_ignore_ascii_case(b"skip"))
}

/// The size of `args` as a RESP request.
fn frame_len(args: &[Bytes]) -> usize {
    let digits = |n: usize| n.to_string().len();
    let words: usize = args
        .iter()
        .map(|a| 1 + digits(a.len()) + 2 + a.len() + 2)
        .sum();
    1 + digits(args.len()) + 2 + words
}

/// What `CLIENT LIST` shows of the connection as it runs `args`.
pub fn shown(session: &Session, args: &[Bytes]) -> Shown {
    let name = String::from_utf8_lossy(&args[0]).to_lowercase();
    let container = matches!(
        name.as_str(),
        "client" | "config" | "object" | "memory" | "cluster" | "command" | "function" | "script"
    );
    let cmd = match args.get(1) {
        Some(sub) if container => format!("{name}|{}", String::from_utf8_lossy(sub).to_lowercase()),
        _ => name,
    };
    Shown {
        name: session.name.clone(),
        cmd,
        resp: if session.protocol == Protocol::Resp3 {
            3
        } else {
            2
        },
        sub: session.channels.len(),
        psub: session.patterns.len(),
        ssub: session.shard_channels.len(),
        multi: session.multi.as_ref().map_or(-1, |q| q.queued() as i64),
        blocked: false,
        monitor: session.monitor.is_some(),
        user: session.user.clone(),
        channels: (session.channels.iter())
            .chain(&session.shard_channels)
            .cloned()
            .collect(),
        patterns: session.patterns.iter().cloned().collect(),
    }
}

fn command_info(spec: &crate::cmd::Spec) -> Reply {
    let (first, last, step, movable) = keyspec::legacy(keyspec::keys_of(spec));
    let mut flags = vec![Reply::Simple(if spec.write { "write" } else { "readonly" })];
    if matches!(spec.runs, Runs::Connection) {
        flags = vec![Reply::Simple("fast")];
    }
    if movable {
        flags.push(Reply::Simple("movablekeys"));
    }
    Reply::Array(vec![
        Reply::bulk(spec.name),
        Reply::Int(i64::from(spec.arity)),
        Reply::Set(flags),
        Reply::Int(first),
        Reply::Int(last),
        Reply::Int(step),
        // ACL categories, tips.
        Reply::Set(
            crate::cmd::categories::names(crate::cmd::categories::of(spec.name, ""))
                .map(|c| Reply::Status(format!("@{c}")))
                .collect(),
        ),
        Reply::Set(Vec::new()),
        Reply::Array(keyspec::key_specs(spec).into_iter().map(key_spec).collect()),
        // Subcommands.
        Reply::Array(Vec::new()),
    ])
}

/// One key spec as `COMMAND INFO` shows it (Redis 7.0's shape).
fn key_spec((flags, search): (&'static str, keyspec::Search)) -> Reply {
    let map = |pairs: Vec<(&'static str, Reply)>| {
        Reply::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (Reply::bulk(k), v))
                .collect(),
        )
    };
    let (begin, find) = match search {
        keyspec::Search::Range {
            index,
            lastkey,
            keystep,
        } => (
            ("index", map(vec![("index", Reply::Int(index))])),
            (
                "range",
                map(vec![
                    ("lastkey", Reply::Int(lastkey)),
                    ("keystep", Reply::Int(keystep)),
                    ("limit", Reply::Int(0)),
                ]),
            ),
        ),
        keyspec::Search::Counted { index } => (
            ("index", map(vec![("index", Reply::Int(index))])),
            (
                "keynum",
                map(vec![
                    ("keynumidx", Reply::Int(0)),
                    ("firstkey", Reply::Int(1)),
                    ("keystep", Reply::Int(1)),
                ]),
            ),
        ),
        keyspec::Search::Unknown => (("unknown", map(vec![])), ("unknown", map(vec![]))),
    };
    let part = |(kind, spec): (&'static str, Reply)| {
        map(vec![("type", Reply::bulk(kind)), ("spec", spec)])
    };
    map(vec![
        ("flags", flag_set(flags)),
        ("begin_search", part(begin)),
        ("find_keys", part(find)),
    ])
}

/// Key-spec flags (`"RW access delete"`) as the set of words Redis answers.
fn flag_set(flags: &'static str) -> Reply {
    Reply::Set(flags.split_whitespace().map(Reply::Simple).collect())
}

fn command(args: &[Bytes]) -> Reply {
    let Some(sub) = args.get(1) else {
        return Reply::Array(COMMANDS.iter().map(command_info).collect());
    };
    let sub = sub.to_ascii_uppercase();
    let arity = |min: usize| {
        (args.len() < min).then(|| {
            let sub = String::from_utf8_lossy(&sub).to_lowercase();
            Reply::Error(format!(
                "ERR wrong number of arguments for 'command|{sub}' command"
            ))
        })
    };
    match sub.as_slice() {
        b"COUNT" => Reply::Int(COMMANDS.len() as i64),
        b"LIST" => command_list(&args[2..]),
        b"INFO" => Reply::Array(
            args[2..]
                .iter()
                .map(|n| crate::cmd::lookup(n).map_or(Reply::NullArray, command_info))
                .collect(),
        ),
        b"GETKEYS" => arity(3).unwrap_or_else(|| command_getkeys(&args[2..], false)),
        b"GETKEYSANDFLAGS" => arity(3).unwrap_or_else(|| command_getkeys(&args[2..], true)),
        // No documentation is served; redis-cli then simply shows no hints.
        b"DOCS" => Reply::Map(vec![]),
        _ => Reply::Error(format!(
            "ERR unknown subcommand '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(&args[1])
        )),
    }
}

/// `COMMAND GETKEYS cmd args...` (and `GETKEYSANDFLAGS`, with each key's flags): the keys of
/// that call, found as the node finds them.
fn command_getkeys(call: &[Bytes], with_flags: bool) -> Reply {
    let Some(spec) = crate::cmd::lookup(&call[0]) else {
        return Reply::err("ERR Invalid command specified");
    };
    if !crate::cmd::arity_ok(spec, call.len()) {
        return Reply::err("ERR Invalid number of arguments specified for command");
    }
    match keyspec::flags_of_call(spec, call) {
        Ok(keys) => Reply::Array(
            (keys.into_iter())
                .map(|(at, flags)| match with_flags {
                    true => Reply::Array(vec![Reply::Bulk(call[at].clone()), flag_set(flags)]),
                    false => Reply::Bulk(call[at].clone()),
                })
                .collect(),
        ),
        Err(keyspec::NoKeys::None) => Reply::err("ERR The command has no key arguments"),
        Err(keyspec::NoKeys::Invalid) => Reply::err("ERR Invalid arguments specified for command"),
    }
}

/// `COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]`. No modules
/// are loaded; ACL categories come with users (not yet): a category Redis has is refused
/// with a clear error rather than answered wrongly, any other name has no commands.
fn command_list(filter: &[Bytes]) -> Reply {
    let names = |keep: &dyn Fn(&str) -> bool| {
        let kept = COMMANDS.iter().filter(|s| keep(s.name));
        Reply::Array(kept.map(|s| Reply::bulk(s.name)).collect())
    };
    match filter {
        [] => names(&|_| true),
        [by, kind, value] if by.eq_ignore_ascii_case(b"filterby") => {
            match kind.to_ascii_lowercase().as_slice() {
                b"module" => Reply::Array(Vec::new()),
                b"pattern" => names(&|n| glob_match(value, n.as_bytes(), true)),
                b"aclcat" => match crate::cmd::categories::bit(&String::from_utf8_lossy(value)) {
                    Some(bit) => names(&|n| crate::cmd::categories::of(n, "") & bit != 0),
                    None => Reply::Array(Vec::new()),
                },
                _ => Reply::err(ERR_SYNTAX),
            }
        }
        _ => Reply::err(ERR_SYNTAX),
    }
}

/// Configuration as `CONFIG GET` reports it: Redis's names for what Meridian has, so that
/// tools such as redis-benchmark find what they ask for.
/// `FUNCTION` and `SCRIPT`: Meridian runs no server-side code, so there is never anything to
/// flush, list or find; loading or running code is refused with a clear error.
fn scripting(name: &str, args: &[Bytes]) -> Reply {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    match (name, sub.as_str()) {
        (_, "flush") => match args.get(2).map(|a| a.to_ascii_lowercase()) {
            None if args.len() == 2 => Reply::OK,
            Some(m) if args.len() == 3 && (m == b"async" || m == b"sync") => Reply::OK,
            _ => Reply::err(ERR_SYNTAX),
        },
        ("function", "list") => Reply::Array(Vec::new()),
        ("function", "stats") => Reply::Map(vec![
            (Reply::bulk("running_script"), Reply::Null),
            (Reply::bulk("engines"), Reply::Map(Vec::new())),
        ]),
        ("script", "exists") => Reply::Array(vec![Reply::Int(0); args.len() - 2]),
        (_, "kill") => Reply::err("NOTBUSY No scripts in execution right now."),
        _ => Reply::Error(format!(
            "ERR {} {} is not supported: Meridian runs no server-side scripts or functions",
            name.to_ascii_uppercase(),
            sub.to_ascii_uppercase()
        )),
    }
}

fn config_table(shared: &Shared) -> Vec<(&'static str, String)> {
    let c = &shared.config;
    let appendfsync = match c.fsync {
        FsyncPolicy::Always => "always",
        FsyncPolicy::Batch => "everysec",
        FsyncPolicy::Never => "no",
    };
    vec![
        ("save", String::new()),
        ("appendonly", "yes".into()),
        ("appendfsync", appendfsync.into()),
        ("databases", "1".into()),
        ("maxclients", c.max_clients.to_string()),
        ("proto-max-bulk-len", c.limits.max_bulk_len.to_string()),
        ("client-query-buffer-limit", c.max_query_buffer.to_string()),
        ("port", c.resp_addr.port().to_string()),
        ("bind", c.resp_addr.ip().to_string()),
        ("dir", c.data_dir.display().to_string()),
        ("timeout", "0".into()),
        (
            "notify-keyspace-events",
            notify::format(shared.notifier.flags.load(Ordering::Relaxed)),
        ),
    ]
    .into_iter()
    .chain(
        INTEGERS
            .iter()
            .map(|&(name, ..)| (name, integer(shared, name).to_string())),
    )
    .collect()
}

/// Integer parameters `CONFIG SET` changes on the running node, with their bounds.
const INTEGERS: &[(&str, i64, i64)] = &[
    ("tracking-table-max-keys", 0, i64::MAX),
    ("slowlog-log-slower-than", i64::MIN, i64::MAX),
    ("slowlog-max-len", 0, i64::MAX),
    ("latency-monitor-threshold", 0, i64::MAX),
    ("acllog-max-len", 0, i64::MAX),
];

/// The value of one of [`INTEGERS`].
fn integer(shared: &Shared, name: &str) -> i64 {
    let log = &shared.slowlog;
    match name {
        "tracking-table-max-keys" => shared.tracking.max_keys() as i64,
        "slowlog-log-slower-than" => log.slower_than_us.load(Ordering::Relaxed),
        "slowlog-max-len" => log.max_len.load(Ordering::Relaxed) as i64,
        "latency-monitor-threshold" => log.latency_threshold_ms.load(Ordering::Relaxed) as i64,
        "acllog-max-len" => shared.users.log_max.load(Ordering::Relaxed) as i64,
        _ => unreachable!("{name} is not an integer parameter"),
    }
}

/// Sets one of [`INTEGERS`] (checked against its bounds).
fn set_integer(shared: &Shared, name: &str, value: i64) {
    let log = &shared.slowlog;
    match name {
        "tracking-table-max-keys" => shared.tracking.set_max_keys(value as usize),
        "slowlog-log-slower-than" => log.slower_than_us.store(value, Ordering::Relaxed),
        "slowlog-max-len" => log.set_max_len(value as usize),
        "latency-monitor-threshold" => {
            (log.latency_threshold_ms).store(value as u64, Ordering::Relaxed)
        }
        "acllog-max-len" => {
            (shared.users.log_max).store(value as usize, Ordering::Relaxed);
            shared.users.trim_log();
        }
        _ => unreachable!("{name} is not an integer parameter"),
    }
}

/// Parameters that only tune how Redis encodes values in memory or runs its own background
/// work: `CONFIG SET` takes them (clients and test suites set them) and `CONFIG GET` reports
/// them, with no effect on Meridian, and Redis's defaults until set. Numeric ones (those whose
/// default is a number) must be integers; the others `yes` or `no`.
const TUNING: &[(&str, &str)] = &[
    ("hash-max-listpack-entries", "128"),
    ("hash-max-listpack-value", "64"),
    ("hash-max-ziplist-entries", "128"),
    ("hash-max-ziplist-value", "64"),
    ("set-max-intset-entries", "512"),
    ("set-max-listpack-entries", "128"),
    ("set-max-listpack-value", "64"),
    ("zset-max-listpack-entries", "128"),
    ("zset-max-listpack-value", "64"),
    ("zset-max-ziplist-entries", "128"),
    ("zset-max-ziplist-value", "64"),
    ("list-max-listpack-size", "-2"),
    ("list-max-ziplist-size", "-2"),
    ("list-compress-depth", "0"),
    ("stream-node-max-bytes", "4096"),
    ("stream-node-max-entries", "100"),
    ("hz", "10"),
    ("active-defrag-cycle-min", "1"),
    ("active-defrag-cycle-max", "25"),
    ("lfu-log-factor", "10"),
    ("lfu-decay-time", "1"),
    ("activedefrag", "no"),
    ("dynamic-hz", "yes"),
    ("lazyfree-lazy-eviction", "no"),
    ("lazyfree-lazy-expire", "no"),
    ("lazyfree-lazy-server-del", "no"),
    ("lazyfree-lazy-user-del", "no"),
    ("lazyfree-lazy-user-flush", "no"),
    ("activerehashing", "yes"),
    ("lua-time-limit", "5000"),
    ("busy-reply-threshold", "5000"),
];

/// `CONFIG SET name value [name value ...]`: all or nothing, as in Redis 7.
fn config_set(shared: &Shared, args: &[Bytes]) -> Reply {
    if args.len() < 4 || !args.len().is_multiple_of(2) {
        return Reply::wrong_arity("config|set");
    }
    let mut accepted = Vec::new();
    let mut events = None;
    let mut integers = Vec::new();
    for pair in args[2..].chunks(2) {
        let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
        let value = String::from_utf8_lossy(&pair[1]).into_owned();
        if let Some(&(name, low, high)) = INTEGERS.iter().find(|(n, ..)| *n == name) {
            match value.parse::<i64>() {
                Ok(n) if (low..=high).contains(&n) => integers.push((name, n)),
                Ok(_) => {
                    return Reply::Error(format!(
                        "ERR CONFIG SET failed (possibly related to argument '{name}') - argument must be between {low} and {high} inclusive"
                    ));
                }
                Err(_) => {
                    return Reply::Error(format!(
                        "ERR CONFIG SET failed (possibly related to argument '{name}') - argument couldn't be parsed into an integer"
                    ));
                }
            }
            continue;
        }
        if name == "notify-keyspace-events" {
            match notify::parse(&pair[1]) {
                Some(flags) => events = Some(flags),
                None => {
                    return Reply::err(
                        "ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'.",
                    );
                }
            }
            continue;
        }
        // Setting a parameter to what it already is changes nothing: accepted (test suites
        // set `save ""` as a matter of course).
        if config_table(shared)
            .iter()
            .any(|(n, v)| *n == name && *v == value)
        {
            continue;
        }
        let Some(numeric) = (TUNING.iter().find(|(n, _)| *n == name))
            .map(|(_, default)| default.parse::<i64>().is_ok())
        else {
            return Reply::Error(format!(
                "ERR CONFIG SET of '{name}' is not supported here: Meridian's settings are flags of `meridian server` (see --help); restart the node with them"
            ));
        };
        let valid = if numeric {
            value.parse::<i64>().is_ok()
        } else {
            matches!(value.to_ascii_lowercase().as_str(), "yes" | "no")
        };
        if !valid {
            let why = if numeric {
                "argument couldn't be parsed into an integer"
            } else {
                "argument must be 'yes' or 'no'"
            };
            return Reply::Error(format!(
                "ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"
            ));
        }
        accepted.push((name, value));
    }
    shared.tuning.lock().expect("not poisoned").extend(accepted);
    if let Some(flags) = events {
        shared.notifier.flags.store(flags, Ordering::Relaxed);
    }
    for (name, value) in integers {
        set_integer(shared, name, value);
    }
    Reply::OK
}

fn config(shared: &Shared, args: &[Bytes]) -> Reply {
    match args[1].to_ascii_uppercase().as_slice() {
        b"GET" if args.len() >= 3 => {
            let mut table = config_table(shared);
            let tuning = shared.tuning.lock().expect("not poisoned");
            table.extend(TUNING.iter().map(|(name, default)| {
                let value = tuning.get(*name).map_or(*default, String::as_str);
                (*name, value.to_string())
            }));
            drop(tuning);
            let mut pairs = Vec::new();
            for (name, value) in &table {
                if args[2..]
                    .iter()
                    .any(|p| glob_match(p, name.as_bytes(), true))
                {
                    pairs.push((Reply::bulk(*name), Reply::bulk(value.clone())));
                }
            }
            Reply::Map(pairs)
        }
        b"GET" => Reply::wrong_arity("config|get"),
        b"SET" => config_set(shared, args),
        b"RESETSTAT" if args.len() == 2 => {
            // The counters of INFO stats that count since a moment (not what is held now).
            let stats = &shared.engine.stats;
            for counter in [&stats.hits, &stats.misses, &stats.expired] {
                counter.store(0, Ordering::Relaxed);
            }
            shared.commands_total.store(0, Ordering::Relaxed);
            shared.connections_total.store(0, Ordering::Relaxed);
            Reply::OK
        }
        _ => Reply::Error(format!(
            "ERR unknown subcommand '{}'. Try CONFIG HELP.",
            String::from_utf8_lossy(&args[1])
        )),
    }
}

/// The RedisTimeSeries version whose commands the time series follow (1.12.3), as modules
/// report versions.
const TIMESERIES_VERSION: i64 = 11203;

fn info(shared: &Shared, args: &[Bytes]) -> Reply {
    let c = &shared.config;
    let wanted: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_lowercase())
        .collect();
    let all = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| w == "all" || w == "everything" || w == "default");
    let show = |section: &str| all || wanted.iter().any(|w| w == section);
    let keys = shared.engine.stats.live_keys.load(Ordering::Relaxed);
    let mut text = String::new();
    if show("server") {
        text.push_str(&format!(
            "# Server\r\nredis_version:{REDIS_COMPAT_VERSION}\r\nmeridian_version:{}\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:{}\r\nnode_id:{}\r\nregion:{}\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            os_name(),
            std::env::consts::ARCH,
            usize::BITS,
            c.node_id,
            c.region,
            std::process::id(),
            c.resp_addr.port(),
            shared.started.elapsed().as_secs(),
            shared.started.elapsed().as_secs() / 86_400,
        ));
    }
    if show("clients") {
        text.push_str(&format!(
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{}\r\ntracking_clients:{}\r\n\r\n",
            shared.connections.load(Ordering::Relaxed),
            c.max_clients,
            shared.engine.blocked.load(Ordering::Relaxed),
            shared.tracking.counts().clients,
        ));
    }
    if show("memory") {
        let rss = resident_bytes();
        text.push_str(&format!(
            "# Memory\r\nused_memory:{rss}\r\nused_memory_human:{:.2}M\r\nused_memory_rss:{rss}\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\nmem_allocator:libc\r\n\r\n",
            rss as f64 / (1 << 20) as f64
        ));
    }
    if show("persistence") {
        text.push_str(&format!(
            "# Persistence\r\nloading:0\r\nfsync_policy:{:?}\r\ndisk_bytes:{}\r\n\r\n",
            c.fsync,
            shared.engine.stats.disk_bytes.load(Ordering::Relaxed)
        ));
    }
    let stats = &shared.engine.stats;
    let tracked = shared.tracking.counts();
    if show("stats") {
        text.push_str(&format!(
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nexpired_keys:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\ntracking_total_keys:{}\r\ntracking_total_items:{}\r\ntracking_total_prefixes:{}\r\ntombstones:{}\r\ntombstones_collected:{}\r\ntombstones_held_by:{}\r\n{}\r\n",
            shared.connections_total.load(Ordering::Relaxed),
            shared.commands_total.load(Ordering::Relaxed),
            stats.expired.load(Ordering::Relaxed),
            stats.hits.load(Ordering::Relaxed),
            stats.misses.load(Ordering::Relaxed),
            tracked.keys,
            tracked.items,
            tracked.prefixes,
            stats.tombstones.load(Ordering::Relaxed),
            stats.collected.load(Ordering::Relaxed),
            shared.cluster.collection_held_by().join(","),
            (crate::acl::DENIED_REASONS.iter().zip(shared.users.denied()))
                .map(|(reason, n)| format!("acl_access_denied_{reason}:{n}\r\n"))
                .collect::<String>(),
        ));
    }
    if show("replication") {
        text.push_str(&replication_section(shared));
    }
    if show("modules") {
        // The time series commands are built in; named as RedisTimeSeries's module so that
        // clients that look for it find them.
        text.push_str(&format!(
            "# Modules\r\nmodule:name=timeseries,ver={TIMESERIES_VERSION},api=1,filters=0,usedby=[],using=[],options=[]\r\n\r\n"
        ));
    }
    if show("keyspace") && keys > 0 {
        text.push_str(&format!(
            "# Keyspace\r\ndb0:keys={keys},expires={},avg_ttl={}\r\n\r\n",
            stats.expires.load(Ordering::Relaxed),
            stats.avg_ttl_ms(crate::engine::wall_ms()),
        ));
    }
    Reply::Verbatim(text)
}

/// The process's resident memory in bytes (`/proc/self/statm`), 0 where unknown. Meridian
/// has no allocator of its own to count: what it holds is what the process holds.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// The operating system as `uname` names it with its release (`Linux 6.1.0`), as Redis
/// reports it in `INFO server`.
fn os_name() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    match std::env::consts::OS {
        "linux" => format!("Linux {}", release.trim()),
        other => other.to_string(),
    }
}

/// `CLUSTER FORGET node-id`: removes a member that is down for good, so that it stops
/// holding back log truncation. Should it come back, it gets a snapshot.
fn cluster(shared: &Shared, args: &[Bytes]) -> Reply {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    match (sub.as_str(), args.len()) {
        ("forget", 3) => match shared.cluster.forget(&String::from_utf8_lossy(&args[2])) {
            Ok(()) => Reply::Simple("OK"),
            Err(e) => Reply::Error(e),
        },
        ("forget", _) => Reply::err("ERR wrong number of arguments for 'cluster|forget' command"),
        _ => Reply::Error(format!(
            "ERR unknown subcommand '{}'. Try CLUSTER FORGET.",
            String::from_utf8_lossy(&args[1])
        )),
    }
}

/// `INFO replication`: this node, then one line per peer with its region, state (as gossip
/// tells), link (whether a replication session is open) and lag.
fn replication_section(shared: &Shared) -> String {
    let c = &shared.config;
    let view = shared.cluster.view.borrow().clone();
    let up = view.members.iter().filter(|m| m.link).count();
    let progress = shared.engine.progress.borrow().clone();
    let mut text = format!(
        "# Replication\r\nrole:master\r\nnode_id:{}\r\nregion:{}\r\nwrite_id:{:016x}\r\n\
         serving:{}\r\nwrites_refused:{}\r\nlog_seq:{}\r\nknown_peers:{}\r\nconnected_peers:{up}\r\n",
        c.node_id,
        c.region,
        shared.engine.node.0,
        view.serving
            .as_ref()
            .map_or("catching_up", |s| s.status.name()),
        u8::from(shared.engine.writes_refused()),
        progress.applied.get(shared.engine.node),
        view.members.len(),
    );
    for (i, m) in view.members.iter().enumerate() {
        text.push_str(&format!(
            "peer{i}:name={},region={},addr={},state={},link={},lag_ms={},lag_ops={},rtt_ms={},serving={}\r\n",
            m.info.name,
            m.info.region,
            m.info.peer_addr,
            m.state.name(),
            if m.link { "up" } else { "down" },
            m.lag_ms,
            m.lag_ops,
            m.rtt_ms.map_or("-".to_string(), |ms| format!("{ms:.2}")),
            m.serving.as_ref().map_or("-", |s| s.status.name()),
        ));
    }
    text.push_str("\r\n");
    text
}

/// How many regions hold the write with sequence `seq` durably, this one included.
fn regions_holding(shared: &Shared, seq: u64) -> i64 {
    let durable_here = shared
        .engine
        .progress
        .borrow()
        .durable
        .get(shared.engine.node)
        >= seq;
    let view = shared.cluster.view.borrow();
    let mut regions: Vec<&str> = view
        .members
        .iter()
        .filter(|m| m.has_own >= seq && m.info.region != shared.config.region)
        .map(|m| m.info.region.as_str())
        .collect();
    regions.sort_unstable();
    regions.dedup();
    regions.len() as i64 + i64::from(durable_here)
}

/// `WAIT numregions timeout`: blocks until the connection's last write is durable in
/// `numregions` regions (this one counts once its disk has it), or until `timeout`
/// milliseconds passed (0: no limit), and answers how many regions hold it. Under
/// `--fsync batch` or `never` it first asks for an fsync here.
pub async fn wait(shared: &Shared, last_write: u64, args: &[Bytes]) -> Reply {
    let (Some(regions), Some(timeout)) = (parse_i64(&args[1]), parse_i64(&args[2])) else {
        return Reply::err(ERR_NOT_INTEGER);
    };
    if timeout < 0 {
        return Reply::err("ERR timeout is negative");
    }
    if let Err(e) = shared.engine.sync().await {
        return Reply::Error(format!(
            "ERR storage failure, writes may not be durable: {e}"
        ));
    }
    if regions_holding(shared, last_write) < regions {
        // Peers sync what they received on a period; ask them not to wait for it.
        shared.cluster.request_sync();
    }
    let deadline = (timeout > 0)
        .then(|| tokio::time::Instant::now() + std::time::Duration::from_millis(timeout as u64));
    let mut view = shared.cluster.view.clone();
    loop {
        let held = regions_holding(shared, last_write);
        if held >= regions {
            return Reply::Int(held);
        }
        let changed = view.changed();
        let outcome = match deadline {
            Some(d) => tokio::time::timeout_at(d, changed).await.ok(),
            None => Some(changed.await),
        };
        match outcome {
            Some(Ok(())) => {}
            // Timed out, or the node is stopping: answer what is held now.
            _ => return Reply::Int(regions_holding(shared, last_write)),
        }
    }
}

/// What a subscription command is: its kind of names, and how it calls itself in replies.
fn subscription(name: &str) -> (Kind, &'static str) {
    match name {
        "subscribe" => (Kind::Channel, "subscribe"),
        "psubscribe" => (Kind::Pattern, "psubscribe"),
        "ssubscribe" => (Kind::Shard, "ssubscribe"),
        "unsubscribe" => (Kind::Channel, "unsubscribe"),
        "punsubscribe" => (Kind::Pattern, "punsubscribe"),
        _ => (Kind::Shard, "sunsubscribe"),
    }
}

/// The session's subscriptions of `kind`.
fn subscribed_to(session: &mut Session, kind: Kind) -> &mut BTreeSet<Bytes> {
    match kind {
        Kind::Channel => &mut session.channels,
        Kind::Pattern => &mut session.patterns,
        Kind::Shard => &mut session.shard_channels,
    }
}

/// The count a (un)subscription reply carries: channels and patterns together, shard
/// channels apart, as in Redis 7.
fn subscription_count(session: &Session, kind: Kind) -> i64 {
    match kind {
        Kind::Shard => session.shard_channels.len() as i64,
        _ => (session.channels.len() + session.patterns.len()) as i64,
    }
}

fn subscribe(
    shared: &Shared,
    session: &mut Session,
    names: &[Bytes],
    name: &str,
    out: &mut BytesMut,
) {
    let id = match &session.subscriber {
        Some(s) => s.id,
        None => {
            let s = shared.hub.register();
            let id = s.id;
            session.subscriber = Some(s);
            id
        }
    };
    let (kind, reply) = subscription(name);
    for name in names {
        if subscribed_to(session, kind).insert(name.clone()) {
            shared.hub.subscribe(id, name.clone(), kind);
        }
        let count = subscription_count(session, kind);
        Reply::Push(vec![
            Reply::bulk(reply),
            Reply::Bulk(name.clone()),
            Reply::Int(count),
        ])
        .encode(session.protocol, out);
    }
}

fn unsubscribe(
    shared: &Shared,
    session: &mut Session,
    names: &[Bytes],
    name: &str,
    out: &mut BytesMut,
) {
    let (kind, reply) = subscription(name);
    let names: Vec<Bytes> = if names.is_empty() {
        subscribed_to(session, kind).iter().cloned().collect()
    } else {
        names.to_vec()
    };
    if names.is_empty() {
        let count = subscription_count(session, kind);
        Reply::Push(vec![Reply::bulk(reply), Reply::Null, Reply::Int(count)])
            .encode(session.protocol, out);
        return;
    }
    for name in names {
        if subscribed_to(session, kind).remove(&name)
            && let Some(s) = &session.subscriber
        {
            shared.hub.unsubscribe(s.id, &name, kind);
        }
        let count = subscription_count(session, kind);
        Reply::Push(vec![
            Reply::bulk(reply),
            Reply::Bulk(name),
            Reply::Int(count),
        ])
        .encode(session.protocol, out);
    }
}

/// `PUBSUB CHANNELS|NUMSUB|NUMPAT|SHARDCHANNELS|SHARDNUMSUB`: this node's subscriptions.
fn pubsub(shared: &Shared, args: &[Bytes]) -> Reply {
    let sub = args[1].to_ascii_uppercase();
    let names = |kind| match args.len() {
        2 | 3 => {
            let active = shared.hub.active(kind, args.get(2).map(|p| p.as_ref()));
            Reply::Array(active.into_iter().map(Reply::Bulk).collect())
        }
        _ => Reply::wrong_arity(&format!(
            "pubsub|{}",
            String::from_utf8_lossy(&sub).to_lowercase()
        )),
    };
    // A flat array of channel, count (not a map, in RESP3 too, as Redis 7.0 answers).
    let counts = |kind| {
        let count = |c: &Bytes| Reply::Int(shared.hub.count(kind, c) as i64);
        let pairs = args[2..]
            .iter()
            .flat_map(|c| [Reply::Bulk(c.clone()), count(c)]);
        Reply::Array(pairs.collect())
    };
    match sub.as_slice() {
        b"CHANNELS" => names(Kind::Channel),
        b"SHARDCHANNELS" => names(Kind::Shard),
        b"NUMSUB" => counts(Kind::Channel),
        b"SHARDNUMSUB" => counts(Kind::Shard),
        b"NUMPAT" if args.len() == 2 => Reply::Int(shared.hub.patterns() as i64),
        b"NUMPAT" => Reply::wrong_arity("pubsub|numpat"),
        b"HELP" => Reply::Array(
            [
                "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CHANNELS [<pattern>]",
                "    Return the currently active channels matching a <pattern> (default: '*').",
                "NUMPAT",
                "    Return number of subscriptions to patterns.",
                "NUMSUB [<channel> ...]",
                "    Return the number of subscribers for the specified channels, excluding",
                "    pattern subscriptions(default: no channels).",
                "SHARDCHANNELS [<pattern>]",
                "    Return the currently active shard level channels matching a <pattern> (default: '*').",
                "SHARDNUMSUB [<shardchannel> ...]",
                "    Return the number of subscribers for the specified shard level channel(s)",
                "HELP",
                "    Prints this help.",
            ]
            .into_iter()
            .map(Reply::Simple)
            .collect(),
        ),
        _ => Reply::Error(format!(
            "ERR unknown subcommand '{}'. Try PUBSUB HELP.",
            String::from_utf8_lossy(&args[1])
        )),
    }
}
