//! Transactions: `MULTI`, `EXEC`, `DISCARD`, `WATCH`, `UNWATCH`.
//!
//! Commands after `MULTI` are checked (name, arity) and queued; `EXEC` sends the queued data
//! commands to the engine as one request, which runs them in one round: no other client's
//! command runs between them, and their writes are one log entry, so every region applies
//! the transaction whole or not yet. A command refused while queueing makes `EXEC` answer
//! `EXECABORT`, as in Redis; an error while running (a wrong type) is that command's reply and
//! the others run. `WATCH` notes how many commits had written each key (`engine::Touches`,
//! counted per slot of keys); the engine compares at the start of the transaction's round, and
//! any write since (by a client here, a write replicated from another region, an expiry)
//! aborts it: `EXEC` answers a null array.

use super::connection::Session;
use crate::Shared;
use crate::cmd::{self, Runs, Spec};
use crate::engine::Command;
use bytes::Bytes;
use resp::Reply;

/// Connection commands a transaction may hold (they answer without touching data).
const QUEUEABLE: &[&str] = &["ping", "echo", "time"];

/// A transaction being queued.
#[derive(Default)]
pub struct Queued {
    commands: Vec<(&'static Spec, Vec<Bytes>)>,
    /// A command was refused while queueing: `EXEC` aborts.
    failed: bool,
}

impl Queued {
    /// How many commands are queued (`CLIENT LIST`'s `multi`).
    pub fn queued(&self) -> usize {
        self.commands.len()
    }

    /// A command was refused while queueing (no right to run it): `EXEC` aborts.
    pub fn refuse(&mut self) {
        self.failed = true;
    }

    /// Whether a queued command may write (`CLIENT PAUSE WRITE` holds the `EXEC`).
    pub fn writes(&self) -> bool {
        self.commands.iter().any(|(spec, _)| spec.write)
    }
}

/// The commands that act on the transaction itself rather than being queued.
pub fn is_control(name: &str) -> bool {
    matches!(name, "multi" | "exec" | "discard" | "watch" | "unwatch")
}

/// Inside `MULTI`: queues `args` and answers `QUEUED`, or refuses it (the transaction will
/// abort). `None` for what runs at once even inside a transaction (control commands, `QUIT`,
/// `RESET`).
pub fn queue(session: &mut Session, args: &[Bytes]) -> Option<Reply> {
    let queued = session.multi.as_mut()?;
    let spec = match cmd::lookup(&args[0]) {
        Some(spec) if is_control(spec.name) || matches!(spec.name, "quit" | "reset") => {
            return None;
        }
        Some(spec) if cmd::arity_ok(spec, args.len()) => spec,
        Some(spec) => {
            queued.failed = true;
            return Some(Reply::wrong_arity(spec.name));
        }
        None => {
            queued.failed = true;
            return Some(cmd::unknown_command(args));
        }
    };
    if matches!(spec.runs, Runs::Connection) && !QUEUEABLE.contains(&spec.name) {
        queued.failed = true;
        return Some(Reply::Error(format!(
            "ERR Command '{}' is not allowed inside a transaction here",
            spec.name
        )));
    }
    queued.commands.push((spec, args.to_vec()));
    Some(Reply::Simple("QUEUED"))
}

/// Runs a control command.
pub async fn control(shared: &Shared, session: &mut Session, name: &str, args: &[Bytes]) -> Reply {
    match name {
        "multi" if session.multi.is_some() => Reply::err("ERR MULTI calls can not be nested"),
        "multi" => {
            session.multi = Some(Queued::default());
            Reply::OK
        }
        "discard" => match session.multi.take() {
            None => Reply::err("ERR DISCARD without MULTI"),
            Some(_) => {
                session.watched.clear();
                Reply::OK
            }
        },
        "watch" if session.multi.is_some() => Reply::err("ERR WATCH inside MULTI is not allowed"),
        "watch" => {
            let touches = &shared.engine.touches;
            (session.watched).extend(args[1..].iter().map(|k| (k.clone(), touches.get(k))));
            Reply::OK
        }
        "unwatch" => {
            session.watched.clear();
            Reply::OK
        }
        "exec" => exec(shared, session).await,
        other => unreachable!("{other} is not a transaction command"),
    }
}

async fn exec(shared: &Shared, session: &mut Session) -> Reply {
    let Some(queued) = session.multi.take() else {
        return Reply::err("ERR EXEC without MULTI");
    };
    let watched = std::mem::take(&mut session.watched);
    if !queued.failed {
        for (_, args) in &queued.commands {
            shared.monitors.feed(session.client.addr, args);
        }
    }
    shared
        .monitors
        .feed(session.client.addr, &[Bytes::from_static(b"exec")]);
    if queued.failed {
        return Reply::err("EXECABORT Transaction discarded because of previous errors.");
    }
    let data: Vec<Command> = (queued.commands.iter())
        .filter(|(spec, _)| !matches!(spec.runs, Runs::Connection))
        .cloned()
        .collect();
    let mut data_replies = Vec::new().into_iter();
    if !data.is_empty() || !watched.is_empty() {
        match shared.engine.run_watched(session.id, data, watched).await {
            Ok(ran) if ran.aborted => return Reply::NullArray,
            Ok(ran) => {
                if let Some(seq) = ran.seq {
                    session.last_write = seq;
                }
                data_replies = ran.replies.into_iter();
            }
            Err(e) => return Reply::Error(format!("ERR {e}")),
        }
    }
    let replies = (queued.commands.iter())
        .map(|(spec, args)| match spec.runs {
            Runs::Connection => super::commands::answer(session, spec.name, args),
            _ => data_replies
                .next()
                .expect("the engine answers every command"),
        })
        .collect();
    Reply::Array(replies)
}
