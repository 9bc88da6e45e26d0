//! Clients blocked in `BLPOP` and kin, parked on the engine thread.
//!
//! A blocking command runs at once like any write; when it finds nothing to take (its handler
//! answers a null), the client is parked here, in arrival order. At the end of every round,
//! before the round commits, the parked clients one of whose keys the round wrote and that now
//! holds something to take are served in arrival order, inside the round: their pops commit
//! with the push that fed them, a client served by one pop can feed the next (`BLMOVE` chains),
//! and the pusher's reply comes after them, as in Redis. After peers' entries commit, the
//! parked clients whose keys now hold something are served in a round of their own (their pops
//! are this node's writes). A client is unparked at its timeout (the connection asks, and gets
//! the null its command first answered) or when its connection is gone.

use super::{Command, Ran};
use crate::cmd::{self, Ctx, Spec};
use bytes::Bytes;
use crdt::Kind;
use resp::Reply;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::oneshot;

/// A client waiting for something to take.
pub(super) struct Parked {
    id: u64,
    spec: &'static Spec,
    args: Vec<Bytes>,
    keys: Vec<Bytes>,
    /// What the command answered when it found nothing: its answer at the timeout.
    empty: Reply,
    reply: oneshot::Sender<Ran>,
}

/// A parked client served in a round, with its reply (sent once the round commits).
pub(super) struct Served {
    reply: oneshot::Sender<Ran>,
    answer: Reply,
}

impl Served {
    /// A client answered by a round.
    pub(super) fn new(reply: oneshot::Sender<Ran>, answer: Reply) -> Served {
        Served { reply, answer }
    }

    /// Sends the answer; `seq` is the round's log entry.
    pub(super) fn send(self, seq: Option<u64>) {
        let _ = self.reply.send(Ran {
            replies: vec![self.answer],
            aborted: false,
            seq,
        });
    }

    /// The round failed to commit: the pop did not happen.
    pub(super) fn fail(self, error: &str) {
        let _ = self.reply.send(Ran {
            replies: vec![Reply::Error(error.to_string())],
            aborted: false,
            seq: None,
        });
    }
}

/// The parked clients, in arrival order.
#[derive(Default)]
pub(super) struct Parking {
    queue: VecDeque<Parked>,
    /// How many are parked (`INFO clients`' `blocked_clients`).
    pub(super) count: Arc<AtomicU64>,
}

/// Whether the command's answer means it found nothing to take.
pub(super) fn found_nothing(reply: &Reply) -> bool {
    matches!(reply, Reply::Null | Reply::NullArray)
}

impl Parking {
    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Parks a client whose command (`spec`, `args`) answered `empty`.
    pub(super) fn park(
        &mut self,
        id: u64,
        (spec, args): Command,
        empty: Reply,
        reply: oneshot::Sender<Ran>,
    ) {
        let (keys, _) = cmd::blocking_wait(spec.name, &args);
        self.queue.push_back(Parked {
            id,
            spec,
            args,
            keys,
            empty,
            reply,
        });
        self.count.store(self.queue.len() as u64, Ordering::Relaxed);
    }

    /// Unparks client `id` (its timeout passed, or `CLIENT UNBLOCK`): it gets its command's
    /// empty answer, or with `error` Redis's `UNBLOCKED` error. Whether it was parked.
    pub(super) fn unpark(&mut self, id: u64, error: bool) -> bool {
        let Some(at) = self.queue.iter().position(|p| p.id == id) else {
            return false;
        };
        let parked = self.queue.remove(at).expect("found");
        let answer = if error {
            Reply::err("UNBLOCKED client unblocked via CLIENT UNBLOCK")
        } else {
            parked.empty
        };
        let _ = parked.reply.send(Ran {
            replies: vec![answer],
            aborted: false,
            seq: None,
        });
        self.count.store(self.queue.len() as u64, Ordering::Relaxed);
        true
    }

    /// Serves, in arrival order, the parked clients one of whose keys holds something to take
    /// in `ctx`'s round (only keys the round wrote, when `written_only`), again and again while
    /// serving one readies another. Clients whose connection is gone are dropped.
    pub(super) fn serve(&mut self, ctx: &mut Ctx<'_, '_>, written_only: bool) -> Vec<Served> {
        let mut served = Vec::new();
        loop {
            let mut progressed = false;
            let mut i = 0;
            while i < self.queue.len() {
                let parked = &self.queue[i];
                if parked.reply.is_closed() {
                    self.queue.remove(i);
                    continue;
                }
                let due = |key: &Bytes| {
                    (!written_only || ctx.txn.wrote(key)) && ready(ctx, parked.spec, key)
                };
                if !parked.keys.iter().any(due) {
                    i += 1;
                    continue;
                }
                ctx.txn.set_writer(parked.id);
                let answer = cmd::execute(ctx, parked.spec, &parked.args);
                if found_nothing(&answer) {
                    i += 1;
                    continue;
                }
                let parked = self.queue.remove(i).expect("in range");
                served.push(Served {
                    reply: parked.reply,
                    answer,
                });
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        self.count.store(self.queue.len() as u64, Ordering::Relaxed);
        served
    }
}

/// Whether `key` holds something the blocking command `spec` takes: a non-empty sorted set for
/// the `BZ` commands, a non-empty list for the others. A key of another type does not wake a
/// client (Redis waits past it).
fn ready(ctx: &mut Ctx<'_, '_>, spec: &Spec, key: &Bytes) -> bool {
    let now_ms = ctx.txn.now_ms();
    let Some(stored) = ctx.txn.live(key) else {
        return false;
    };
    match stored.live_kind(now_ms) {
        Some(Kind::List) => !spec.name.starts_with("bz") && stored.lens.list > 0,
        Some(Kind::ZSet) => spec.name.starts_with("bz") && stored.lens.zset > 0,
        // A series woke a `TS.READ`: it runs again and says whether enough has come.
        Some(Kind::TimeSeries) => spec.name == "ts.read",
        _ => false,
    }
}
