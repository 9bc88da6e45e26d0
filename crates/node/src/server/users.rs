//! Users across the cluster: `ACL SETUSER`, `ACL DELUSER` and `ACL LOAD` write the cluster's
//! user table ([`acl::USERS_KEY`], a hash replicated like any write), and every node follows
//! the table: after each commit that touched it, local or replicated, the node reads it again
//! and its users become its base users with the table on top (`acl::Users::apply_table`).
//!
//! Then, as Redis does, clients of a deleted user are disconnected, and so are subscribers
//! whose user lost the right to a channel or pattern they are subscribed to.

use crate::Shared;
use crate::acl;
use bytes::Bytes;
use resp::Reply;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Notify;

/// Writes `entries` (user name, rules or empty for deleted) to the cluster's table, then
/// applies the table here (so the client that asked sees its change at once).
pub async fn write(shared: &Shared, entries: Vec<(String, String)>) -> Result<(), Reply> {
    if entries.is_empty() {
        return Ok(());
    }
    let spec = crate::cmd::lookup(b"HSET").expect("HSET is a command");
    let mut args = vec![
        Bytes::from_static(b"HSET"),
        Bytes::from_static(acl::USERS_KEY),
    ];
    for (name, rules) in entries {
        args.push(Bytes::from(name));
        args.push(Bytes::from(rules));
    }
    let mut done = shared
        .engine
        .run(vec![(spec, args)])
        .await
        .map_err(|e| Reply::Error(format!("ERR {e}")))?;
    if let Reply::Error(e) = done.replies.remove(0) {
        return Err(Reply::Error(e));
    }
    refresh(shared);
    Ok(())
}

/// The cluster's table as this node holds it.
fn read_table(shared: &Shared) -> BTreeMap<String, String> {
    let spec = crate::cmd::lookup(b"HGETALL").expect("HGETALL is a command");
    let args = [
        Bytes::from_static(b"HGETALL"),
        Bytes::from_static(acl::USERS_KEY),
    ];
    let pairs = match shared.engine.read(spec, &args) {
        Reply::Array(items) => items,
        Reply::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        other => {
            tracing::error!(reply = ?other, "reading the users table failed");
            return BTreeMap::new();
        }
    };
    let text = |r: &Reply| match r {
        Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    };
    pairs
        .chunks(2)
        .filter(|pair| pair.len() == 2)
        .map(|pair| (text(&pair[0]), text(&pair[1])))
        .collect()
}

/// Reads the table again and applies it: clients of deleted users, and subscribers that
/// lost rights to what they are subscribed to, are disconnected.
pub fn refresh(shared: &Shared) {
    let changed = shared.users.apply_table(read_table(shared));
    if changed.is_empty() {
        return;
    }
    let users = &shared.users;
    shared
        .clients
        .kill_unless(&changed, |user, channels, patterns| {
            users.allows_subscriptions(user, channels, patterns)
        });
}

/// Whether a commit of `keys` (none: a flush) changed the users table.
pub fn touches_table(keys: Option<&[Bytes]>) -> bool {
    keys.is_some_and(|keys| keys.iter().any(|k| k.as_ref() == acl::USERS_KEY))
}

/// Follows the table: reads it once now, then again each time `changed` is notified (by the
/// engine's commit hook, for local and replicated writes alike).
pub async fn follow(shared: std::sync::Weak<Shared>, changed: Arc<Notify>) {
    loop {
        match shared.upgrade() {
            Some(shared) => refresh(&shared),
            None => return,
        }
        changed.notified().await;
    }
}
