//! Blocked clients: `BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP BZPOPMIN BZPOPMAX BZMPOP`.
//!
//! The engine runs the command; when it finds nothing to take, the engine parks the client
//! and serves it, in arrival order, in the round of the write that feeds one of its keys (a
//! local push, or peers' entries from another region): see `engine/blocked.rs`. The
//! connection only waits for the answer, and at the command's timeout asks the engine to
//! unpark the client, which then answers with the command's null.

use super::connection::Session;
use crate::Shared;
use crate::cmd::{self, Spec};
use bytes::Bytes;
use resp::Reply;
use tokio::time::Instant;

/// Runs the blocking command `args` (of `spec`) until it takes something or times out, and
/// answers as Redis does: what it took, or its null.
pub async fn wait(
    shared: &Shared,
    session: &mut Session,
    spec: &'static Spec,
    args: Vec<Bytes>,
) -> Reply {
    let (_, timeout) = cmd::blocking_wait(spec.name, &args);
    // A client blocks in one command at a time: its id names the wait (`CLIENT UNBLOCK`).
    let id = session.id;
    let answer = match shared.engine.block(id, (spec, args)).await {
        Ok(answer) => answer,
        Err(e) => return Reply::Error(format!("ERR {e}")),
    };
    tokio::pin!(answer);
    let ran = match timeout {
        None => answer.await,
        Some(timeout) => {
            tokio::select! {
                ran = &mut answer => ran,
                _ = tokio::time::sleep_until(Instant::now() + timeout) => {
                    // Served meanwhile, or unparked with its null: either way one answer.
                    shared.engine.unblock(id).await;
                    answer.await
                }
            }
        }
    };
    match ran {
        Ok(mut ran) => {
            if let Some(seq) = ran.seq {
                session.last_write = seq;
            }
            ran.replies.pop().unwrap_or(Reply::Null)
        }
        Err(_) => Reply::err("ERR the engine has stopped"),
    }
}
