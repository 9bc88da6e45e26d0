//! Session guarantees across nodes (issue 15): `MERIDIAN TOKEN` answers a causal token, the
//! version of everything this node had applied when asked, so of everything the connection
//! wrote and read before it (each of its commands ran, and its writes committed, before the
//! next). `MERIDIAN WAITFOR <token> <timeout_ms>` on any node blocks until that node has
//! applied at least what the token names and answers OK, or answers `-TRYAGAIN` at the
//! timeout (never without bound). A client that carries its token to the next node and waits
//! for it there keeps read-your-writes and monotonic reads across a failover.
//!
//! A token is `ct1:` then, per origin, its write id in hex and the sequence, comma-separated
//! (`ct1:1f3a...-42,...`): opaque to clients, checked when given back.

use crate::Shared;
use bytes::Bytes;
use crdt::NodeId;
use replication::VersionVector;
use resp::Reply;

const PREFIX: &str = "ct1:";
/// Origins a token may name (a cluster has at most this many members: `peer::MEMBERS_MAX`).
const ORIGINS_MAX: usize = 1024;
/// The longest wait `MERIDIAN WAITFOR` accepts, in ms.
const WAIT_MAX_MS: u64 = 3_600_000;

/// The token of what this node has applied now.
pub fn token(shared: &Shared) -> String {
    let applied = shared.engine.progress.borrow().applied.clone();
    let parts: Vec<String> = applied
        .iter()
        .map(|(origin, seq)| format!("{:x}-{seq}", origin.0))
        .collect();
    format!("{PREFIX}{}", parts.join(","))
}

/// The version a token names; `None` if it is not a token.
pub fn parse(token: &[u8]) -> Option<VersionVector> {
    let text = std::str::from_utf8(token).ok()?.strip_prefix(PREFIX)?;
    let mut vv = VersionVector::new();
    if text.is_empty() {
        return Some(vv);
    }
    let parts: Vec<&str> = text.split(',').collect();
    if parts.len() > ORIGINS_MAX {
        return None;
    }
    for part in parts {
        let (origin, seq) = part.split_once('-')?;
        let origin = u64::from_str_radix(origin, 16).ok()?;
        let seq: u64 = seq.parse().ok()?;
        vv.advance(NodeId(origin), seq);
    }
    Some(vv)
}

/// `MERIDIAN TOKEN` and `MERIDIAN WAITFOR <token> <timeout_ms>`.
pub async fn meridian(shared: &Shared, client: u64, args: &[Bytes]) -> Reply {
    let sub = args[1].to_ascii_uppercase();
    match (sub.as_slice(), args.len()) {
        (b"TOKEN", 2) => Reply::bulk(token(shared)),
        (b"DRAIN", 2) => Reply::Int(crate::discovery::drain(shared, Some(client)).await as i64),
        (b"UNDRAIN", 2) => {
            shared.cluster.drain(false);
            Reply::OK
        }
        (b"WAITFOR", 4) => {
            let Some(want) = parse(&args[2]) else {
                return Reply::err("ERR invalid token: use what MERIDIAN TOKEN answered");
            };
            let timeout = std::str::from_utf8(&args[3])
                .ok()
                .and_then(|t| t.parse::<u64>().ok())
                .filter(|ms| (1..=WAIT_MAX_MS).contains(ms));
            let Some(timeout) = timeout else {
                return Reply::Error(format!(
                    "ERR timeout must be an integer between 1 and {WAIT_MAX_MS} ms"
                ));
            };
            wait_for(shared, &want, std::time::Duration::from_millis(timeout)).await
        }
        (b"HELP", 2) => Reply::Array(
            [
                "MERIDIAN <subcommand> [<arg> ...]. Subcommands are:",
                "TOKEN",
                "    A causal token: the version of everything this node has applied.",
                "WAITFOR <token> <timeout_ms>",
                "    Wait until this node has applied what the token names; -TRYAGAIN at the timeout.",
                "DRAIN",
                "    Hand this node's clients over: discovery stops naming it, then the other",
                "    clients' connections close (they reconnect where discovery sends them).",
                "    Answers how many were closed.",
                "UNDRAIN",
                "    Be named again, once caught up with the peers.",
                "HELP",
                "    Print this help.",
            ]
            .into_iter()
            .map(Reply::Simple)
            .collect(),
        ),
        _ => Reply::Error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try MERIDIAN HELP.",
            String::from_utf8_lossy(&args[1])
        )),
    }
}

async fn wait_for(shared: &Shared, want: &VersionVector, timeout: std::time::Duration) -> Reply {
    match reach(shared, want, timeout).await {
        Reach::Done => Reply::OK,
        Reach::Stopping => Reply::err("ERR the node is shutting down"),
        Reach::TimedOut => {
            Reply::err("TRYAGAIN this node has not yet applied everything the token names")
        }
    }
}

/// How a wait for a token ended.
pub enum Reach {
    /// The node has applied what the token names.
    Done,
    /// Not within the time given.
    TimedOut,
    /// The node is stopping.
    Stopping,
}

/// Waits until this node has applied `want`, for `timeout` at most.
pub async fn reach(shared: &Shared, want: &VersionVector, timeout: std::time::Duration) -> Reach {
    let mut progress = shared.engine.progress.clone();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if progress.borrow_and_update().applied.dominates(want) {
            return Reach::Done;
        }
        match tokio::time::timeout_at(deadline, progress.changed()).await {
            Ok(Ok(())) => continue,
            Ok(Err(_)) => return Reach::Stopping,
            Err(_) => return Reach::TimedOut,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_read_back_and_nonsense_is_refused() {
        let mut vv = VersionVector::new();
        vv.advance(NodeId(0x1f3a), 42);
        vv.advance(NodeId(7), 3);
        let text = format!(
            "{PREFIX}{}",
            vv.iter()
                .map(|(o, s)| format!("{:x}-{s}", o.0))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(parse(text.as_bytes()), Some(vv));
        assert_eq!(parse(b"ct1:"), Some(VersionVector::new()));
        for bad in [
            &b"ct2:1-1"[..],
            b"ct1:zz-1",
            b"ct1:1-",
            b"ct1:1",
            b"1-1",
            b"ct1:1-1,",
            b"\xff",
        ] {
            assert_eq!(parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        let long = format!("{PREFIX}{}", vec!["1-1"; ORIGINS_MAX + 1].join(","));
        assert_eq!(parse(long.as_bytes()), None);
    }
}
