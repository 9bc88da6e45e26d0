//! Blocked clients: `BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP`.
//!
//! A blocking command's handler runs on the engine like any write and answers at once, with a
//! null when there is nothing to take (`cmd::Spec::blocking`). The connection then waits: it
//! notes its keys' write counts ([`crate::engine::Touches`]), sleeps until a commit writes some
//! key, and runs the handler again when one of its keys' counts moved. Commits of peers'
//! entries count, so a push in another region wakes a client blocked here once it arrives.
//!
//! When several clients wait on one list, a push wakes them all and the first to reach the
//! engine takes the element; the rest wait again (Redis serves them in order of arrival).

use super::connection::Session;
use crate::Shared;
use crate::cmd::{self, Spec};
use bytes::Bytes;
use resp::Reply;
use tokio::time::Instant;

/// Runs the blocking command `args` (of `spec`) until it takes something or times out, and
/// answers as Redis does: what it took, or the handler's null.
pub async fn wait(
    shared: &Shared,
    session: &mut Session,
    spec: &'static Spec,
    args: Vec<Bytes>,
) -> Reply {
    let touches = &shared.engine.touches;
    let (keys, timeout) = cmd::blocking_wait(spec.name, &args);
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let changed = touches.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let mut counts: Vec<u64> = keys.iter().map(|k| touches.get(k)).collect();
        let reply = match shared.engine.run(vec![(spec, args.clone())]).await {
            Ok(mut ran) => {
                if let Some(seq) = ran.seq {
                    session.last_write = seq;
                }
                ran.replies.pop().unwrap_or(Reply::Null)
            }
            Err(e) => return Reply::Error(format!("ERR {e}")),
        };
        if !matches!(reply, Reply::Null | Reply::NullArray) {
            return reply;
        }
        // Nothing to take: wait for a commit that writes one of the keys.
        loop {
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = changed.as_mut() => {}
                _ = sleep => return reply,
            }
            changed.set(touches.changed());
            changed.as_mut().enable();
            let now: Vec<u64> = keys.iter().map(|k| touches.get(k)).collect();
            if now != counts {
                break;
            }
            counts = now;
        }
    }
}
