//! One client connection: read, split into commands, run, answer, in order.

use super::clients::Push;
use super::commands::{self, Flow};
use super::{blocking, multi};
use crate::Shared;
use crate::cmd::{self, Runs};
use crate::engine::Command;
use crate::pubsub::{Delivery, Subscriber};
use bytes::{Bytes, BytesMut};
use resp::{Protocol, Reply, parse_command};
use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A client's byte stream: a TCP socket, or TLS over one.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}
use tokio::sync::{broadcast, watch};

/// What a connection remembers between commands.
pub struct Session {
    /// `CLIENT ID`.
    pub id: u64,
    /// `CLIENT SETNAME`.
    pub name: Option<Bytes>,
    /// RESP2 or RESP3.
    pub protocol: Protocol,
    /// Set once the connection subscribes to anything.
    pub subscriber: Option<Subscriber>,
    /// Channels subscribed by name.
    pub channels: BTreeSet<Bytes>,
    /// Patterns subscribed.
    pub patterns: BTreeSet<Bytes>,
    /// Shard channels subscribed (`SSUBSCRIBE`).
    pub shard_channels: BTreeSet<Bytes>,
    /// The change log sequence number of this connection's last write (`WAIT`).
    pub last_write: u64,
    /// A transaction being queued (`MULTI`).
    pub multi: Option<super::multi::Queued>,
    /// Keys watched (`WATCH`), with their write counts then.
    pub watched: Vec<(Bytes, u64)>,
    /// `CLIENT REPLY OFF`: no replies until `CLIENT REPLY ON`.
    pub reply_off: bool,
    /// `CLIENT REPLY SKIP`: no reply to the next command.
    pub skip_next: bool,
    /// How `CLIENT LIST` sees this connection.
    pub client: Arc<super::clients::Client>,
    /// `CLIENT CACHING yes|no`, for the next command (tracking OPTIN, OPTOUT).
    pub caching: Option<bool>,
    /// `CLIENT TRACKING on` (its mode is in `server::tracking`).
    pub tracking: bool,
    /// Set once the connection runs `MONITOR`: the lines to show it.
    pub monitor: Option<broadcast::Receiver<Bytes>>,
    /// Logged in (as `user`): until then only `AUTH`, `HELLO`, `QUIT` and `RESET` run.
    pub authenticated: bool,
    /// The user it is (`ACL WHOAMI`).
    pub user: String,
}

impl Session {
    /// Whether the connection is in subscribed state.
    pub fn subscribed(&self) -> bool {
        !self.channels.is_empty() || !self.patterns.is_empty() || !self.shard_channels.is_empty()
    }
}

/// What a client outside loopback reads before the node closes its connection, while protected
/// mode is on and the default user has no password (Redis's `DENIED` reply, naming
/// Meridian's settings).
const DENIED: &str = "-DENIED Meridian is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. To accept clients from other hosts, either set a password with --requirepass (clients then log in with AUTH), or, on a network you trust, restart the node with --protected-mode no.\r\n";

/// Protected mode: while the default user has no password, a client from outside loopback
/// reads [`DENIED`] and is closed (true then). The data port and the sentinel listener both.
pub(crate) async fn refused_by_protected_mode(
    shared: &Shared,
    addr: SocketAddr,
    socket: &mut impl Stream,
) -> std::io::Result<bool> {
    if !shared.users.open()
        || !shared.config.protected_mode
        || addr.ip().to_canonical().is_loopback()
    {
        return Ok(false);
    }
    tracing::warn!(%addr, "refused a client from outside loopback: protected mode, and no password is set");
    metrics::counter!("meridian_protected_mode_refusals_total").increment(1);
    socket.write_all(DENIED.as_bytes()).await?;
    linger(socket).await;
    Ok(true)
}

/// Bytes requested from the socket per read.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// Most bytes of a pipeline taken in at once: see [`read_ahead`].
const READ_AHEAD_MAX: usize = 256 * 1024;

/// After a read that filled the buffer, takes in what else the client has already sent,
/// without waiting for more, up to [`READ_AHEAD_MAX`]: the pipeline's commands then reach
/// the engine as one round, not one round per [`READ_CHUNK`] (profiled: sixteen pipelined
/// `TS.MADD` of 4 KB each ran as four rounds of four, and a round's cost is mostly per key).
pub(crate) async fn read_ahead(
    socket: &mut impl Stream,
    input: &mut BytesMut,
) -> std::io::Result<()> {
    while input.len() < READ_AHEAD_MAX {
        input.reserve(READ_CHUNK);
        let spare = input.capacity() - input.len();
        // Polled once: `read_buf` is cancel-safe, so nothing read is lost when it waits.
        let read = tokio::select! {
            biased;
            read = socket.read_buf(input) => read?,
            () = std::future::ready(()) => return Ok(()),
        };
        if read < spare {
            break; // the socket is drained (or at its end, which the next read sees)
        }
    }
    Ok(())
}

/// Serves one connection until the client leaves, breaks the protocol, or the node stops.
pub async fn serve(
    mut socket: impl Stream,
    addr: SocketAddr,
    laddr: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    if refused_by_protected_mode(&shared, addr, &mut socket).await? {
        return Ok(());
    }
    let id = shared.next_client_id.fetch_add(1, Ordering::Relaxed);
    let client = shared.clients.register(id, addr, laddr);
    let mut session = Session {
        id,
        reply_off: false,
        skip_next: false,
        client,
        name: None,
        protocol: Protocol::Resp2,
        subscriber: None,
        channels: BTreeSet::new(),
        patterns: BTreeSet::new(),
        shard_channels: BTreeSet::new(),
        last_write: 0,
        multi: None,
        watched: Vec::new(),
        monitor: None,
        caching: None,
        tracking: false,
        authenticated: shared.users.open(),
        user: crate::acl::DEFAULT_USER.into(),
    };
    let result = serve_session(&mut socket, &shared, &mut stop, &mut session).await;
    if let Some(sub) = session.subscriber.take() {
        shared.hub.unregister(sub.id);
    }
    shared.clients.remove(session.id);
    shared.tracking.disable(session.id);
    result
}

async fn serve_session(
    socket: &mut impl Stream,
    shared: &Shared,
    stop: &mut watch::Receiver<bool>,
    session: &mut Session,
) -> std::io::Result<()> {
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut output = BytesMut::with_capacity(READ_CHUNK);
    let mut commands = VecDeque::new();
    loop {
        let mut broken = None;
        // A client that has not logged in gets Redis's tighter frame limits, one command at
        // a time: the frames after its `AUTH` are read with the limits of who it then is.
        let limits = match session.authenticated {
            true => shared.config.limits,
            false => resp::Limits::unauthenticated(),
        };
        let mut unread = false;
        loop {
            if !session.authenticated && !commands.is_empty() {
                unread = !input.is_empty();
                break;
            }
            match parse_command(&mut input, &limits) {
                Ok(Some(args)) => commands.push_back(args),
                Ok(None) => break,
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            }
        }
        while !commands.is_empty() {
            let next = run_commands(shared, session, &mut commands, &mut output).await;
            socket.write_all(&output).await?;
            output.clear();
            if session.client.is_killed() {
                return Ok(());
            }
            match next {
                Next::Continue => {}
                Next::Close => return Ok(()),
                Next::Block(spec, args) => {
                    // Blocked: the client's later commands wait; a client that goes away
                    // ends the wait.
                    let protocol = session.protocol;
                    let client = session.client.clone();
                    let wait = blocking::wait(shared, session, spec, args);
                    tokio::pin!(wait);
                    let reply = loop {
                        tokio::select! {
                            reply = &mut wait => break reply,
                            read = socket.read_buf(&mut input) => {
                                if read? == 0 || input.len() > shared.config.max_query_buffer {
                                    return Ok(());
                                }
                            }
                            _ = stop.changed() => return Ok(()),
                            _ = client.killed() => return Ok(()),
                        }
                    };
                    reply.encode(protocol, &mut output);
                    socket.write_all(&output).await?;
                    output.clear();
                }
                Next::Pause(write) => {
                    // Held by `CLIENT PAUSE`: the replies so far are out; the client's next
                    // command runs once the pause ends.
                    let wait = shared.pause.wait(write);
                    tokio::pin!(wait);
                    loop {
                        tokio::select! {
                            () = &mut wait => break,
                            read = socket.read_buf(&mut input) => {
                                if read? == 0 || input.len() > shared.config.max_query_buffer {
                                    return Ok(());
                                }
                            }
                            _ = stop.changed() => return Ok(()),
                            _ = session.client.killed() => return Ok(()),
                        }
                    }
                }
            }
        }
        if let Some(e) = broken {
            // Nothing after a framing error can be trusted: answer and close, as Redis does.
            tracing::info!(client = session.id, error = %e, "closing a connection that broke the protocol");
            metrics::counter!("meridian_protocol_errors_total").increment(1);
            Reply::Error(format!("ERR {e}")).encode(session.protocol, &mut output);
            socket.write_all(&output).await?;
            linger(socket).await;
            return Ok(());
        }
        if unread {
            continue;
        }
        if input.len() > shared.config.max_query_buffer {
            tracing::warn!(
                client = session.id,
                bytes = input.len(),
                "closing a client whose query buffer passed the limit"
            );
            metrics::counter!("meridian_query_buffer_overflows_total").increment(1);
            return Ok(());
        }
        if input.is_empty() && input.capacity() > 4 * READ_CHUNK {
            input = BytesMut::with_capacity(READ_CHUNK); // what a read-ahead grew goes
        }
        input.reserve(READ_CHUNK);
        let spare = input.capacity() - input.len();
        let event = tokio::select! {
            read = socket.read_buf(&mut input) => Event::Read(read?),
            delivery = recv(session.subscriber.as_mut()) => Event::Delivery(delivery),
            line = monitored(session.monitor.as_mut()) => Event::Monitored(line),
            pushes = session.client.pushed() => Event::Pushed(pushes),
            _ = stop.changed() => return Ok(()),
            _ = session.client.killed() => return Ok(()),
        };
        // Killed (`CLIENT KILL`, its user deleted) while its command came in: the select
        // may have taken the read, but what a killed client sends is not run.
        if session.client.is_killed() {
            return Ok(());
        }
        match event {
            Event::Read(0) => return Ok(()),
            // Only for a logged-in client: one that is not gets Redis's tight limits.
            Event::Read(n) if n == spare && session.authenticated => {
                read_ahead(socket, &mut input).await?;
            }
            Event::Read(_) => {}
            Event::Monitored(Ok(line)) => {
                output.extend_from_slice(&line);
                // Drain what else is waiting, so a busy node is shown in few syscalls.
                while output.len() < 1 << 20
                    && let Some(Ok(line)) = session.monitor.as_mut().map(|m| m.try_recv())
                {
                    output.extend_from_slice(&line);
                }
                socket.write_all(&output).await?;
                output.clear();
            }
            Event::Pushed(pushes) => {
                for p in pushes {
                    encode_push(session, p, &mut output);
                }
                socket.write_all(&output).await?;
                output.clear();
            }
            Event::Monitored(Err(_)) => {
                tracing::warn!(
                    client = session.id,
                    "closing a monitor that fell too far behind"
                );
                return Ok(());
            }
            Event::Delivery(delivery) => {
                if let Some(d) = delivery {
                    push(session.protocol, d, &mut output);
                    // Drain what else is waiting, so a busy channel is written in few syscalls.
                    while output.len() < 1 << 20
                        && let Some(d) = session
                            .subscriber
                            .as_mut()
                            .and_then(|s| s.rx.try_recv().ok())
                    {
                        push(session.protocol, d, &mut output);
                    }
                    socket.write_all(&output).await?;
                    output.clear();
                }
                if session
                    .subscriber
                    .as_ref()
                    .is_some_and(|s| s.overflowed.load(Ordering::Relaxed))
                {
                    tracing::warn!(
                        client = session.id,
                        "closing a subscriber that fell too far behind"
                    );
                    return Ok(());
                }
            }
        }
    }
}

/// Before closing a connection the node refuses (a broken protocol, protected mode): ends the
/// sending side and reads
/// (for a moment, a bounded amount) what the client had already sent, so that the closing
/// does not reset the connection and the client reads the error that says why.
async fn linger(socket: &mut impl Stream) {
    let _ = socket.shutdown().await;
    let mut sink = [0u8; 16 * 1024];
    let drain = async {
        let mut left: usize = 1 << 20;
        while left > 0 {
            match socket.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_millis(500), drain).await;
}

enum Event {
    Read(usize),
    Delivery(Option<Delivery>),
    Monitored(Result<Bytes, broadcast::error::RecvError>),
    Pushed(Vec<Push>),
}

/// A push as the connection's protocol carries it: RESP3 pushes, or for a RESP2 client (a
/// redirect target) a message on `__redis__:invalidate`.
fn encode_push(session: &Session, push: Push, out: &mut BytesMut) {
    let reply = match push {
        Push::Invalidate(keys) => {
            let keys = keys.map_or(Reply::NullArray, |k| {
                Reply::Array(k.into_iter().map(Reply::Bulk).collect())
            });
            if session.protocol == Protocol::Resp3 {
                Reply::Push(vec![Reply::bulk("invalidate"), keys])
            } else if session.channels.contains(INVALIDATE_CHANNEL) {
                Reply::Push(vec![
                    Reply::bulk("message"),
                    Reply::bulk("__redis__:invalidate"),
                    keys,
                ])
            } else {
                return;
            }
        }
        Push::RedirectBroken(to) if session.protocol == Protocol::Resp3 => Reply::Push(vec![
            Reply::bulk("tracking-redir-broken"),
            Reply::Int(to as i64),
        ]),
        Push::RedirectBroken(_) => return,
    };
    reply.encode(session.protocol, out);
}

/// Where a RESP2 redirect target hears of invalidations.
const INVALIDATE_CHANNEL: &[u8] = b"__redis__:invalidate";

async fn monitored(
    monitor: Option<&mut broadcast::Receiver<Bytes>>,
) -> Result<Bytes, broadcast::error::RecvError> {
    match monitor {
        Some(m) => m.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv(subscriber: Option<&mut Subscriber>) -> Option<Delivery> {
    match subscriber {
        Some(s) => s.rx.recv().await,
        None => std::future::pending().await,
    }
}

fn push(protocol: Protocol, delivery: Delivery, out: &mut BytesMut) {
    let items = match delivery {
        Delivery::Message { channel, payload } => {
            vec![
                Reply::bulk("message"),
                Reply::Bulk(channel),
                Reply::Bulk(payload),
            ]
        }
        Delivery::PMessage {
            pattern,
            channel,
            payload,
        } => {
            vec![
                Reply::bulk("pmessage"),
                Reply::Bulk(pattern),
                Reply::Bulk(channel),
                Reply::Bulk(payload),
            ]
        }
        Delivery::SMessage { channel, payload } => {
            vec![
                Reply::bulk("smessage"),
                Reply::Bulk(channel),
                Reply::Bulk(payload),
            ]
        }
    };
    Reply::Push(items).encode(protocol, out);
}

/// What the connection does after a pipeline ran.
enum Next {
    /// Read more.
    Continue,
    /// Close after writing the replies so far.
    Close,
    /// Wait in a blocking command (`server::blocking`) before the rest of the pipeline.
    Block(&'static cmd::Spec, Vec<Bytes>),
    /// Wait out `CLIENT PAUSE` before the next command (one that may write, when true).
    Pause(bool),
}

/// Whether `CLIENT PAUSE` holds `args` back now, and if so whether as a write. Commands
/// queued inside `MULTI` are not held (their `EXEC` is); neither are `CLIENT PAUSE` and
/// `CLIENT UNPAUSE`.
fn paused(
    shared: &Shared,
    session: &Session,
    spec: Option<&cmd::Spec>,
    args: &[Bytes],
) -> Option<bool> {
    let spec = spec?;
    if session.multi.is_some() && !multi::is_control(spec.name) {
        return None;
    }
    if spec.name == "client" && commands::is_pause_control(args) {
        return None;
    }
    let write = match spec.name {
        "exec" => session.multi.as_ref().is_some_and(|q| q.writes()),
        "publish" | "spublish" => true,
        _ => spec.write,
    };
    shared.pause.holds(write).then_some(write)
}

/// Runs a pipeline of commands in order, writing each reply to `out`, up to a blocking
/// command (which the caller runs before the commands after it). Consecutive data commands go
/// to the engine as one request.
async fn run_commands(
    shared: &Shared,
    session: &mut Session,
    commands: &mut VecDeque<Vec<Bytes>>,
    out: &mut BytesMut,
) -> Next {
    let mut batch: Vec<Command> = Vec::new();
    while let Some(args) = commands.front() {
        // Looked up once: the pause, the rights and the dispatch below all ask.
        let found = cmd::lookup(&args[0]);
        if let Some(write) = paused(shared, session, found, args) {
            flush(shared, session, &mut batch, out).await;
            return Next::Pause(write);
        }
        let args = commands.pop_front().expect("looked at");
        shared.commands_total.fetch_add(1, Ordering::Relaxed);
        // `CLIENT REPLY OFF|SKIP`: the command runs, its reply is dropped (so is that of the
        // `CLIENT REPLY OFF|SKIP` itself). The replies before it go out first.
        let skipped = std::mem::take(&mut session.skip_next);
        let silent = (session.reply_off || skipped)
            && !commands::restores_replies(&args)
            && !commands::pushes(&args);
        let silences = commands::silences(&args);
        if silent || silences {
            flush(shared, session, &mut batch, out).await;
        }
        let mark = out.len();
        session.client.update(commands::shown(session, &args));
        'command: {
            if !session.authenticated && !crate::acl::no_auth(&args[0]) {
                flush(shared, session, &mut batch, out).await;
                Reply::err("NOAUTH Authentication required.").encode(session.protocol, out);
                break 'command;
            }
            // Meridian's own keys (the cluster's users) are no client's to name.
            if let Some(spec) = found.filter(|s| cmd::arity_ok(s, args.len()))
                && names_reserved_key(spec, &args)
            {
                flush(shared, session, &mut batch, out).await;
                if let Some(queued) = session.multi.as_mut() {
                    queued.refuse();
                }
                Reply::err(crate::acl::RESERVED_KEY).encode(session.protocol, out);
                break 'command;
            }
            // What the user may run (`acl.rs`); inside MULTI a refusal aborts the EXEC.
            if let Some(spec) = found.filter(|s| cmd::arity_ok(s, args.len()))
                && !multi::is_control(spec.name)
                && let Err(denied) = shared.users.check(&session.user, spec, &args)
            {
                flush(shared, session, &mut batch, out).await;
                if let Some(queued) = session.multi.as_mut() {
                    queued.refuse();
                }
                metrics::counter!("meridian_acl_denied_total").increment(1);
                let info = session.client.line(None);
                (shared.users).log_refusal(&denied, session.multi.is_some(), &session.user, info);
                Reply::Error(denied.reply_text()).encode(session.protocol, out);
                break 'command;
            }
            if let Some(reply) = multi::queue(session, &args) {
                flush(shared, session, &mut batch, out).await;
                reply.encode(session.protocol, out);
                break 'command;
            }
            let spec = match found {
                Some(spec) if cmd::arity_ok(spec, args.len()) => spec,
                Some(spec) => {
                    flush(shared, session, &mut batch, out).await;
                    Reply::wrong_arity(spec.name).encode(session.protocol, out);
                    break 'command;
                }
                None => {
                    flush(shared, session, &mut batch, out).await;
                    cmd::unknown_command(&args).encode(session.protocol, out);
                    break 'command;
                }
            };
            // Shown to monitors as it runs; `EXEC` shows the commands it runs first
            // (`multi::exec`).
            if !matches!(spec.name, "exec" | "monitor") {
                shared.monitors.feed(session.client.addr, &args);
            }
            if session.subscribed()
                && session.protocol == Protocol::Resp2
                && !commands::allowed_when_subscribed(spec.name)
            {
                flush(shared, session, &mut batch, out).await;
                Reply::Error(format!(
                    "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                    spec.name
                ))
                .encode(session.protocol, out);
                break 'command;
            }
            if session.tracking {
                remember_reads(shared, session, spec, &args);
            }
            match spec.runs {
                Runs::Engine(_) if spec.blocking => {
                    flush(shared, session, &mut batch, out).await;
                    return Next::Block(spec, args);
                }
                Runs::Engine(_) => batch.push((spec, args)),
                Runs::Read(_) => {
                    // After the writes before it, so the client reads its own writes.
                    flush(shared, session, &mut batch, out).await;
                    let started = Instant::now();
                    let reply = shared.engine.read(spec, &args);
                    shared.slowlog.took(session.id, &args, started.elapsed());
                    reply.encode(session.protocol, out);
                }
                Runs::Connection if multi::is_control(spec.name) => {
                    flush(shared, session, &mut batch, out).await;
                    multi::control(shared, session, spec.name, &args)
                        .await
                        .encode(session.protocol, out);
                }
                Runs::Connection if spec.name == "client" && commands::is_unblock(&args) => {
                    flush(shared, session, &mut batch, out).await;
                    commands::client_unblock(shared, &args)
                        .await
                        .encode(session.protocol, out);
                }
                Runs::Connection if spec.name == "acl" && commands::is_acl_write(&args) => {
                    flush(shared, session, &mut batch, out).await;
                    commands::acl_write(shared, &args)
                        .await
                        .encode(session.protocol, out);
                }
                Runs::Connection if spec.name == "meridian" => {
                    flush(shared, session, &mut batch, out).await;
                    super::causal::meridian(shared, session.id, &args)
                        .await
                        .encode(session.protocol, out);
                }
                Runs::Connection if spec.name == "wait" => {
                    flush(shared, session, &mut batch, out).await;
                    commands::wait(shared, session.last_write, &args)
                        .await
                        .encode(session.protocol, out);
                }
                Runs::Connection => {
                    flush(shared, session, &mut batch, out).await;
                    let started = Instant::now();
                    let flow = commands::run(shared, session, spec.name, &args, out);
                    shared.slowlog.took(session.id, &args, started.elapsed());
                    // What it changed (a name, subscriptions, the protocol) shows at once.
                    session.client.update(commands::shown(session, &args));
                    if flow == Flow::Close {
                        return Next::Close;
                    }
                }
            }
        }
        if silent || silences {
            flush(shared, session, &mut batch, out).await;
            out.truncate(mark);
        }
    }
    flush(shared, session, &mut batch, out).await;
    Next::Continue
}

/// Whether the call names one of Meridian's own keys (`acl::RESERVED_PREFIX`).
fn names_reserved_key(spec: &cmd::Spec, args: &[Bytes]) -> bool {
    cmd::keyspec::positions(spec, args)
        .is_ok_and(|at| at.iter().any(|&i| crate::acl::is_reserved(&args[i])))
}

/// A tracking client is about to read: the keys it reads are remembered first, so that a
/// write after the read invalidates them (`server::tracking`).
fn remember_reads(shared: &Shared, session: &mut Session, spec: &cmd::Spec, args: &[Bytes]) {
    let caching = session.caching.take();
    if spec.write || matches!(spec.runs, Runs::Connection) {
        if spec.name == "client" {
            session.caching = caching; // CLIENT CACHING sets it for the next command
        }
        return;
    }
    let Some(mode) = shared.tracking.mode(session.id) else {
        return;
    };
    let tracked = mode.bcast.is_none()
        && (!mode.optin || caching == Some(true))
        && (!mode.optout || caching != Some(false));
    if tracked && let Ok(at) = cmd::keyspec::positions(spec, args) {
        shared
            .tracking
            .remember(session.id, at.into_iter().map(|i| args[i].clone()));
    }
}

/// Sends the waiting data commands to the engine and writes their replies.
async fn flush(
    shared: &Shared,
    session: &mut Session,
    batch: &mut Vec<Command>,
    out: &mut BytesMut,
) {
    if batch.is_empty() {
        return;
    }
    let count = batch.len();
    let started = Instant::now();
    match (shared.engine)
        .run_watched(session.id, std::mem::take(batch), Vec::new())
        .await
    {
        Ok(ran) => {
            if let Some(seq) = ran.seq {
                session.last_write = seq;
            }
            for reply in ran.replies {
                reply.encode(session.protocol, out);
            }
        }
        Err(e) => {
            for _ in 0..count {
                Reply::Error(format!("ERR {e}")).encode(session.protocol, out);
            }
        }
    }
    metrics::histogram!("meridian_request_seconds").record(started.elapsed().as_secs_f64());
}
