//! Keyspace notifications (`notify-keyspace-events`), as Redis publishes them.
//!
//! After each command of a round, the engine names what the command did to each key it wrote
//! (Redis's event names: `set`, `lpush`, `hincrby`, `rename_from`, `del` when a collection
//! emptied, `new` when the key appeared, `expired` when the sweep removed it). The events go
//! into the round's change log entry (`Change::Event`), so every region that applies the
//! entry publishes them too, whatever its own clients did; each node publishes, once the
//! round has committed, the events its flags enable: on `__keyspace@0__:<key>` (flag `K`) and
//! `__keyevent@0__:<event>` (flag `E`), to its own subscribers.

use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// A class of events, as `notify-keyspace-events` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Class {
    Generic = 1 << 0,
    String = 1 << 1,
    List = 1 << 2,
    Set = 1 << 3,
    Hash = 1 << 4,
    ZSet = 1 << 5,
    Expired = 1 << 6,
    Evicted = 1 << 7,
    Stream = 1 << 8,
    KeyMiss = 1 << 9,
    Module = 1 << 10,
    New = 1 << 11,
}

const KEYSPACE: u32 = 1 << 12;
const KEYEVENT: u32 = 1 << 13;
/// `A`: every class but key misses and new keys.
const ALL: u32 = 0x1ff | Class::Module as u32;

/// The flag letters, in the order Redis writes them back.
const LETTERS: &[(char, u32)] = &[
    ('g', Class::Generic as u32),
    ('$', Class::String as u32),
    ('l', Class::List as u32),
    ('s', Class::Set as u32),
    ('h', Class::Hash as u32),
    ('z', Class::ZSet as u32),
    ('x', Class::Expired as u32),
    ('e', Class::Evicted as u32),
    ('t', Class::Stream as u32),
    ('d', Class::Module as u32),
    ('n', Class::New as u32),
];

/// The flags of `notify-keyspace-events`, or `None` for a letter Redis does not know.
pub fn parse(flags: &[u8]) -> Option<u32> {
    let mut out = 0;
    for &c in flags {
        out |= match c {
            b'A' => ALL,
            b'K' => KEYSPACE,
            b'E' => KEYEVENT,
            b'm' => Class::KeyMiss as u32,
            c => LETTERS.iter().find(|(l, _)| *l as u8 == c)?.1,
        };
    }
    Some(out)
}

/// `flags` as `CONFIG GET notify-keyspace-events` shows them.
pub fn format(flags: u32) -> String {
    let mut out = String::new();
    if flags & ALL == ALL {
        out.push('A');
    } else {
        out.extend(
            (LETTERS.iter())
                .filter(|(_, bit)| flags & bit != 0)
                .map(|(l, _)| *l),
        );
    }
    if flags & KEYSPACE != 0 {
        out.push('K');
    }
    if flags & KEYEVENT != 0 {
        out.push('E');
    }
    if flags & Class::KeyMiss as u32 != 0 {
        out.push('m');
    }
    out
}

/// Every event the node names, with its class: the index is its code in `Change::Event`.
/// Codes are stored in change logs and sent to peers: append only.
pub const EVENTS: &[(&str, Class)] = &[
    ("set", Class::String),
    ("expire", Class::Generic),
    ("del", Class::Generic),
    ("new", Class::New),
    ("expired", Class::Expired),
    ("incrby", Class::String),
    ("decrby", Class::String),
    ("incrbyfloat", Class::String),
    ("setrange", Class::String),
    ("append", Class::String),
    ("setbit", Class::String),
    ("persist", Class::Generic),
    ("rename_from", Class::Generic),
    ("rename_to", Class::Generic),
    ("copy_to", Class::Generic),
    ("sortstore", Class::List),
    ("lpush", Class::List),
    ("rpush", Class::List),
    ("lpop", Class::List),
    ("rpop", Class::List),
    ("lset", Class::List),
    ("linsert", Class::List),
    ("lrem", Class::List),
    ("ltrim", Class::List),
    ("sadd", Class::Set),
    ("srem", Class::Set),
    ("spop", Class::Set),
    ("sinterstore", Class::Set),
    ("sunionstore", Class::Set),
    ("sdiffstore", Class::Set),
    ("hset", Class::Hash),
    ("hdel", Class::Hash),
    ("hincrby", Class::Hash),
    ("hincrbyfloat", Class::Hash),
    ("zadd", Class::ZSet),
    ("zincr", Class::ZSet),
    ("zrem", Class::ZSet),
    ("zremrangebyrank", Class::ZSet),
    ("zremrangebyscore", Class::ZSet),
    ("zremrangebylex", Class::ZSet),
    ("zpopmin", Class::ZSet),
    ("zpopmax", Class::ZSet),
    ("zunionstore", Class::ZSet),
    ("zinterstore", Class::ZSet),
    ("zdiffstore", Class::ZSet),
    ("zrangestore", Class::ZSet),
];

/// The code of the event named `name`.
pub fn code(name: &str) -> u8 {
    let at = EVENTS.iter().position(|(n, _)| *n == name);
    at.expect("every event the node names is in EVENTS") as u8
}

/// A key a command wrote, as the command found it and left it.
pub struct Written {
    pub key: Bytes,
    /// Which of the command's keys it is (0 for the first), when it is one of them.
    pub role: Option<usize>,
    pub live_before: bool,
    pub live_after: bool,
}

/// The events a command (`args`, name lower-cased in `name`) raised on the keys it wrote,
/// in Redis's order: its own event, then `del` if it emptied the key, `new` first if it
/// created it.
pub fn events(name: &str, args: &[Bytes], written: &[Written]) -> Vec<(Bytes, u8)> {
    let mut out = Vec::new();
    let word = |i: usize| {
        args.get(i)
            .map(|a| a.to_ascii_lowercase())
            .unwrap_or_default()
    };
    if matches!(name, "flushall" | "flushdb") {
        return out; // as Redis: a flush names no key
    }
    for w in written {
        let own: &[&str] = match (name, w.role) {
            ("set", _)
                if args[3..].iter().any(|a| {
                    matches!(
                        a.to_ascii_lowercase().as_slice(),
                        b"ex" | b"px" | b"exat" | b"pxat"
                    )
                }) =>
            {
                &["set", "expire"]
            }
            ("setex" | "psetex", _) => &["set", "expire"],
            ("set" | "setnx" | "getset" | "mset" | "msetnx" | "bitop", _) => &["set"],
            ("incr" | "incrby", _) => &["incrby"],
            ("decr" | "decrby", _) => &["decrby"],
            ("getdel" | "del" | "unlink", _) => &["del"],
            ("getex", _) if word(2) == b"persist".as_slice() => &["persist"],
            ("getex", _) => &["expire"],
            ("expire" | "pexpire" | "expireat" | "pexpireat", _) => &["expire"],
            ("rename" | "renamenx", Some(0)) => &["rename_from"],
            ("rename" | "renamenx", _) => &["rename_to"],
            ("copy", _) => &["copy_to"],
            ("sort", _) => &["sortstore"],
            ("lpushx", _) => &["lpush"],
            ("rpushx", _) => &["rpush"],
            ("blpop", _) => &["lpop"],
            ("brpop", _) => &["rpop"],
            ("rpoplpush" | "brpoplpush", Some(0)) => &["rpop"],
            ("rpoplpush" | "brpoplpush", _) => &["lpush"],
            ("lmove" | "blmove", role) => {
                let (side, verb) = if role == Some(0) {
                    (3, "pop")
                } else {
                    (4, "push")
                };
                match (word(side).as_slice(), verb) {
                    (b"left", "pop") => &["lpop"],
                    (b"left", _) => &["lpush"],
                    (_, "pop") => &["rpop"],
                    _ => &["rpush"],
                }
            }
            ("lmpop" | "blmpop", _) => {
                if args.iter().any(|a| a.eq_ignore_ascii_case(b"left")) {
                    &["lpop"]
                } else {
                    &["rpop"]
                }
            }
            ("zmpop" | "bzmpop", _) => {
                if args.iter().any(|a| a.eq_ignore_ascii_case(b"min")) {
                    &["zpopmin"]
                } else {
                    &["zpopmax"]
                }
            }
            ("bzpopmin", _) => &["zpopmin"],
            ("bzpopmax", _) => &["zpopmax"],
            ("smove", Some(0)) => &["srem"],
            ("smove", _) => &["sadd"],
            ("hmset" | "hsetnx", _) => &["hset"],
            ("zincrby", _) => &["zincr"],
            ("zadd", _) if args.iter().any(|a| a.eq_ignore_ascii_case(b"incr")) => &["zincr"],
            (name, _) => match EVENTS.iter().find(|(n, _)| *n == name) {
                Some((n, _)) => std::slice::from_ref(n),
                None => &[],
            },
        };
        let stored = matches!(
            name,
            "sinterstore"
                | "sunionstore"
                | "sdiffstore"
                | "zunionstore"
                | "zinterstore"
                | "zdiffstore"
                | "zrangestore"
                | "sort"
                | "copy"
                | "bitop"
        );
        if w.live_after && !w.live_before {
            out.push((w.key.clone(), code("new")));
        }
        if stored && !w.live_after {
            // A store whose result is empty deletes the destination.
            if w.live_before {
                out.push((w.key.clone(), code("del")));
            }
            continue;
        }
        out.extend(own.iter().map(|e| (w.key.clone(), code(e))));
        if w.live_before && !w.live_after && !own.contains(&"del") && !own.contains(&"rename_from")
        {
            out.push((w.key.clone(), code("del")));
        }
    }
    out
}

/// Publishes a message on a channel of this node's pub/sub.
pub type Publish = Arc<dyn Fn(&Bytes, &Bytes) + Send + Sync>;

/// Which events this node publishes, and where.
#[derive(Clone)]
pub struct Notifier {
    /// `notify-keyspace-events`, parsed; 0 publishes nothing.
    pub flags: Arc<AtomicU32>,
    publish: Option<Publish>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let flags = format(self.flags.load(Ordering::Relaxed));
        f.debug_struct("Notifier").field("flags", &flags).finish()
    }
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier {
            flags: Arc::new(AtomicU32::new(0)),
            publish: None,
        }
    }
}

impl Notifier {
    /// Publishes through `publish`, with no events enabled yet.
    pub fn new(publish: Publish) -> Notifier {
        Notifier {
            publish: Some(publish),
            ..Notifier::default()
        }
    }

    /// Publishes `events` (key, code) as the flags ask.
    pub fn fire(&self, events: &[(Bytes, u8)]) {
        let flags = self.flags.load(Ordering::Relaxed);
        let Some(publish) = self
            .publish
            .as_ref()
            .filter(|_| flags & (KEYSPACE | KEYEVENT) != 0)
        else {
            return;
        };
        for (key, code) in events {
            let Some((name, class)) = EVENTS.get(usize::from(*code)) else {
                continue; // a newer peer's event: nothing to name it by
            };
            if flags & *class as u32 == 0 {
                continue;
            }
            if flags & KEYSPACE != 0 {
                let mut channel = b"__keyspace@0__:".to_vec();
                channel.extend_from_slice(key);
                publish(&Bytes::from(channel), &Bytes::from_static(name.as_bytes()));
            }
            if flags & KEYEVENT != 0 {
                let channel = Bytes::from(format!("__keyevent@0__:{name}"));
                publish(&channel, key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_and_write_back_as_redis_does() {
        for (set, shown) in [
            ("gKE", "gKE"),
            ("$lshzxeKE", "$lshzxeKE"),
            ("KA", "AK"),
            ("EA", "AE"),
        ] {
            assert_eq!(format(parse(set.as_bytes()).unwrap()), shown);
        }
        assert_eq!(parse(b""), Some(0));
        assert_eq!(parse(b"Kq"), None);
    }

    fn w(key: &str, role: usize, before: bool, after: bool) -> Written {
        Written {
            key: Bytes::from(key.to_string()),
            role: Some(role),
            live_before: before,
            live_after: after,
        }
    }

    fn names(events: Vec<(Bytes, u8)>) -> Vec<String> {
        let name = |(k, c): (Bytes, u8)| {
            format!("{} {}", EVENTS[c as usize].0, String::from_utf8_lossy(&k))
        };
        events.into_iter().map(name).collect()
    }

    fn args(words: &str) -> Vec<Bytes> {
        words
            .split(' ')
            .map(|w| Bytes::from(w.to_string()))
            .collect()
    }

    #[test]
    fn commands_name_their_events() {
        let ev = |cmd: &str, written: &[Written]| {
            let a = args(cmd);
            names(events(&String::from_utf8_lossy(&a[0]), &a, written))
        };
        assert_eq!(
            ev("set k v ex 10", &[w("k", 0, false, true)]),
            ["new k", "set k", "expire k"]
        );
        assert_eq!(ev("rpop l", &[w("l", 0, true, false)]), ["rpop l", "del l"]);
        assert_eq!(
            ev(
                "lmove a b left right",
                &[w("a", 0, true, true), w("b", 1, true, true)]
            ),
            ["lpop a", "rpush b"]
        );
        assert_eq!(
            ev(
                "rename a b",
                &[w("a", 0, true, false), w("b", 1, false, true)]
            ),
            ["rename_from a", "new b", "rename_to b"]
        );
        assert_eq!(
            ev("sinterstore d a b", &[w("d", 0, true, false)]),
            ["del d"]
        );
        assert_eq!(ev("hmset h a 1", &[w("h", 0, true, true)]), ["hset h"]);
        assert_eq!(ev("zadd z incr 1 m", &[w("z", 0, true, true)]), ["zincr z"]);
    }
}
