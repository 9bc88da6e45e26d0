//! Where each command's keys are among its arguments: what `COMMAND INFO` reports (first key,
//! last key, step, and whether the keys move with the arguments) and the keys of one call
//! (`COMMAND GETKEYS`). Most commands take keys at fixed places; the others find them from a
//! count of keys (`ZUNIONSTORE dest 2 a b`, `LMPOP 2 a b LEFT`) or a keyword (`SORT ... STORE`).
//!
//! Each command's keys are also described as Redis 7.0's key specs (`COMMAND INFO`), with
//! what the command does to each (`COMMAND GETKEYSANDFLAGS`): `RO` reads, `RW` reads and
//! writes, `OW` overwrites, `RM` removes; `access` reads the value, `insert`, `update`,
//! `delete` say how it changes. The flags are Redis's, command by command.

use super::Spec;
use bytes::Bytes;

/// How a command's keys are placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// No keys.
    None,
    /// From `first` to `last` (negative: counted from the end, -1 the last argument), every
    /// `step`-th argument.
    Range { first: i64, last: i64, step: i64 },
    /// A count of keys at `at`, the keys right after it; with a destination key at 1 first
    /// when `dest`.
    Counted { at: usize, dest: bool },
    /// The key at 1, and the one after a `STORE` keyword (`SORT`).
    Sort,
    /// The key after a subcommand (`MEMORY USAGE key`, `OBJECT ENCODING key`).
    Sub,
}

/// How `spec`'s keys are placed.
pub fn keys_of(spec: &Spec) -> Keys {
    let range = |first, last, step| Keys::Range { first, last, step };
    match spec.name {
        "keys" | "scan" | "dbsize" | "flushall" | "flushdb" | "randomkey" | "swapdb" => Keys::None,
        // Series found by their labels: no key among the arguments (as RedisTimeSeries says).
        "ts.mget" | "ts.mrange" | "ts.mrevrange" | "ts.queryindex" | "ts.querylabels" => Keys::None,
        "ts.madd" => range(1, -1, 3),
        "ts.nrange" | "ts.nrevrange" => Keys::Counted { at: 1, dest: false },
        "ts.createrule" | "ts.deleterule" => range(1, 2, 1),
        "mget" | "del" | "unlink" | "exists" | "touch" | "sinter" | "sunion" | "sdiff"
        | "sinterstore" | "sunionstore" | "sdiffstore" | "watch" => range(1, -1, 1),
        "mset" | "msetnx" => range(1, -1, 2),
        "rename" | "renamenx" | "copy" | "smove" | "lmove" | "rpoplpush" | "lcs" | "blmove"
        | "brpoplpush" | "zrangestore" => range(1, 2, 1),
        "blpop" | "brpop" | "bzpopmin" | "bzpopmax" => range(1, -2, 1),
        "bitop" => range(2, -1, 1),
        "zunionstore" | "zinterstore" | "zdiffstore" => Keys::Counted { at: 2, dest: true },
        "zunion" | "zinter" | "zdiff" | "zintercard" | "sintercard" | "lmpop" | "zmpop" => {
            Keys::Counted { at: 1, dest: false }
        }
        "blmpop" | "bzmpop" => Keys::Counted { at: 2, dest: false },
        "sort" | "sort_ro" => Keys::Sort,
        "memory" | "object" => Keys::Sub,
        _ if matches!(spec.runs, super::Runs::Connection) => Keys::None,
        _ => range(1, 1, 1),
    }
}

/// What `COMMAND INFO` reports: first key, last key, step, and whether the keys move with
/// the arguments (`movablekeys`). Commands that find their keys from a count or a keyword
/// report their fixed keys, as Redis does.
pub fn legacy(keys: Keys) -> (i64, i64, i64, bool) {
    match keys {
        Keys::None | Keys::Sub => (0, 0, 0, false),
        Keys::Range { first, last, step } => (first, last, step, false),
        Keys::Counted { dest: true, .. } | Keys::Sort => (1, 1, 1, true),
        Keys::Counted { dest: false, .. } => (0, 0, 0, true),
    }
}

/// Why a call's keys cannot be found (`COMMAND GETKEYS`' errors).
#[derive(Debug, PartialEq, Eq)]
pub enum NoKeys {
    /// The command takes no keys.
    None,
    /// The arguments do not say where the keys are (a bad count of keys).
    Invalid,
}

/// The positions of the keys in `args` (the command's name at 0), for a call whose arity
/// was checked.
pub fn positions(spec: &Spec, args: &[Bytes]) -> Result<Vec<usize>, NoKeys> {
    let n = args.len() as i64;
    let found = match keys_of(spec) {
        Keys::None => return Err(NoKeys::None),
        Keys::Range { first, last, step } => {
            let last = if last < 0 { n + last } else { last.min(n - 1) };
            (first..=last)
                .step_by(step as usize)
                .map(|i| i as usize)
                .collect()
        }
        Keys::Counted { at, dest } => {
            let count = args.get(at).and_then(|c| resp::args::parse_i64(c));
            let count = count
                .filter(|c| *c > 0 && at as i64 + c < n)
                .ok_or(NoKeys::Invalid)?;
            let mut keys: Vec<usize> = if dest { vec![1] } else { Vec::new() };
            keys.extend(at + 1..=at + count as usize);
            keys
        }
        Keys::Sort => {
            let mut keys = vec![1];
            let mut i = 2;
            while i < args.len() {
                let word = args[i].to_ascii_lowercase();
                match word.as_slice() {
                    b"limit" => i += 2,
                    b"get" | b"by" => i += 1,
                    b"store" if spec.name == "sort" && i + 1 < args.len() => {
                        keys.push(i + 1);
                        i += 1;
                    }
                    _ => {}
                }
                i += 1;
            }
            keys
        }
        Keys::Sub => {
            let sub = args.get(1).map(|s| s.to_ascii_lowercase());
            let keyed = matches!(
                sub.as_deref(),
                Some(b"usage" | b"encoding" | b"freq" | b"idletime" | b"refcount")
            );
            match args.get(2) {
                Some(_) if keyed => vec![2],
                _ => return Err(NoKeys::None),
            }
        }
    };
    if found.is_empty() {
        return Err(NoKeys::None);
    }
    Ok(found)
}

/// The flags of `spec`'s key specs, in order: a command whose keys play different parts has
/// one spec per part (`RENAME`: the source, then the destination), the last one also
/// covering the keys after it (`SUNIONSTORE dest a b`: `a` and `b`).
pub fn flags_of(spec: &Spec) -> &'static [&'static str] {
    match spec.name {
        "get" | "mget" | "getrange" | "substr" | "getbit" | "bitcount" | "bitpos" | "lcs"
        | "ttl" | "pttl" | "expiretime" | "pexpiretime" | "hget" | "hmget" | "hgetall"
        | "hkeys" | "hvals" | "hrandfield" | "hscan" | "lindex" | "lpos" | "lrange" | "sdiff"
        | "sinter" | "sunion" | "sintercard" | "smembers" | "smismember" | "srandmember"
        | "sscan" | "sort_ro" | "zcount" | "zdiff" | "zinter" | "zunion" | "zintercard"
        | "zlexcount" | "zmscore" | "zrandmember" | "zrange" | "zrangebylex" | "zrangebyscore"
        | "zrank" | "zrevrange" | "zrevrangebylex" | "zrevrangebyscore" | "zrevrank" | "zscan"
        | "zscore" | "ts.get" | "ts.range" | "ts.revrange" | "ts.info" | "ts.read"
        | "ts.nrange" | "ts.nrevrange" => &["RO access"],
        "exists" | "touch" | "type" | "watch" | "strlen" | "hexists" | "hlen" | "hstrlen"
        | "llen" | "scard" | "sismember" | "zcard" | "memory" | "object" => &["RO"],
        "append" | "hsetnx" | "linsert" | "lpush" | "lpushx" | "rpush" | "rpushx" | "sadd" => {
            &["RW insert"]
        }
        "expire" | "expireat" | "pexpire" | "pexpireat" | "persist" | "hset" | "hmset" | "lset"
        | "setrange" | "zadd" | "ts.create" | "ts.alter" | "ts.add" | "ts.madd" | "ts.fuse" => {
            &["RW update"]
        }
        "ts.incrby" | "ts.decrby" => &["RW access update"],
        "ts.del" => &["RW delete"],
        "ts.createrule" | "ts.deleterule" => &["RW update", "RW update"],
        "incr" | "incrby" | "incrbyfloat" | "decr" | "decrby" | "getex" | "getset" | "setbit"
        | "hincrby" | "hincrbyfloat" | "zincrby" | "move" => &["RW access update"],
        "getdel" | "lpop" | "rpop" | "lmpop" | "blpop" | "brpop" | "blmpop" | "spop"
        | "zpopmin" | "zpopmax" | "zmpop" | "bzpopmin" | "bzpopmax" | "bzmpop" => {
            &["RW access delete"]
        }
        "hdel" | "lrem" | "ltrim" | "srem" | "zrem" | "zremrangebylex" | "zremrangebyrank"
        | "zremrangebyscore" => &["RW delete"],
        "del" | "unlink" => &["RM delete"],
        "mset" | "setex" | "psetex" => &["OW update"],
        "msetnx" | "setnx" => &["OW insert"],
        // Without `GET`, `SET` only overwrites: `GETKEYSANDFLAGS` says `OW update` then.
        "set" => &["RW access update variable_flags"],
        "lmove" | "blmove" | "rpoplpush" | "brpoplpush" | "smove" => {
            &["RW access delete", "RW insert"]
        }
        "rename" => &["RW access delete", "OW update"],
        "renamenx" => &["RW access delete", "OW insert"],
        "copy" => &["RO access", "OW update"],
        "sinterstore" => &["RW update", "RO access"],
        "bitop" | "sdiffstore" | "sunionstore" | "zdiffstore" | "zinterstore" | "zunionstore"
        | "zrangestore" => &["OW update", "RO access"],
        "sort" => &["RO access", "OW update"],
        _ => &[],
    }
}

/// The flags of each key of one call (`COMMAND GETKEYSANDFLAGS`), beside its position.
pub fn flags_of_call(spec: &Spec, args: &[Bytes]) -> Result<Vec<(usize, &'static str)>, NoKeys> {
    let at = positions(spec, args)?;
    let specs = flags_of(spec);
    Ok((at.into_iter().enumerate())
        .map(|(i, pos)| {
            let flags = match spec.name {
                "set" if !args[3..].iter().any(|a| a.eq_ignore_ascii_case(b"get")) => "OW update",
                "set" => "RW access update",
                _ => specs
                    .get(i.min(specs.len().saturating_sub(1)))
                    .copied()
                    .unwrap_or(""),
            };
            (pos, flags)
        })
        .collect())
}

/// Where a key spec starts looking, and how it finds the keys from there (Redis 7.0's
/// `begin_search` and `find_keys`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Search {
    /// From argument `index`: up to `lastkey` (relative to it; negative: from the end), every
    /// `keystep`-th.
    Range {
        index: i64,
        lastkey: i64,
        keystep: i64,
    },
    /// From argument `index`, which holds the number of keys, the keys right after it.
    Counted { index: i64 },
    /// Found by a keyword anywhere among the arguments, or from values (`SORT`).
    Unknown,
}

/// `spec`'s key specs: their flags and where they search.
pub fn key_specs(spec: &Spec) -> Vec<(&'static str, Search)> {
    let flags = flags_of(spec);
    let one = |at: i64| Search::Range {
        index: at,
        lastkey: 0,
        keystep: 1,
    };
    let searches: Vec<Search> = match keys_of(spec) {
        Keys::None => return Vec::new(),
        Keys::Range { first, last, step } if flags.len() == 1 => vec![Search::Range {
            index: first,
            lastkey: if last < 0 { last } else { last - first },
            keystep: step,
        }],
        Keys::Range { first, last, .. } => vec![
            one(first),
            Search::Range {
                index: first + 1,
                lastkey: if last < 0 { last } else { last - first - 1 },
                keystep: 1,
            },
        ],
        Keys::Counted { at, dest: false } => vec![Search::Counted { index: at as i64 }],
        Keys::Counted { at, dest: true } => vec![one(1), Search::Counted { index: at as i64 }],
        Keys::Sort => {
            // The key sorted; then the keys BY and GET read, found from its values; and
            // `SORT`'s STORE destination, wherever the keyword is.
            let mut specs = vec![("RO access", one(1)), ("RO access", Search::Unknown)];
            if spec.name == "sort" {
                specs.push(("OW update", Search::Unknown));
            }
            return specs;
        }
        Keys::Sub => vec![one(2)],
    };
    flags.iter().copied().zip(searches).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(words: &str) -> Result<Vec<String>, NoKeys> {
        let args: Vec<Bytes> = words
            .split(' ')
            .map(|w| Bytes::from(w.to_string()))
            .collect();
        let spec = crate::cmd::lookup(&args[0]).expect("known");
        let at = positions(spec, &args)?;
        Ok(at
            .iter()
            .map(|&i| String::from_utf8_lossy(&args[i]).into_owned())
            .collect())
    }

    #[test]
    fn fixed_keys() {
        assert_eq!(keys("get k").unwrap(), ["k"]);
        assert_eq!(keys("mset a 1 b 2").unwrap(), ["a", "b"]);
        assert_eq!(keys("lmove a b left right").unwrap(), ["a", "b"]);
        assert_eq!(keys("blpop a b 0").unwrap(), ["a", "b"]);
        assert_eq!(keys("bitop and d a b").unwrap(), ["d", "a", "b"]);
        assert_eq!(keys("ping"), Err(NoKeys::None));
    }

    #[test]
    fn counted_and_keyword_keys() {
        assert_eq!(
            keys("zunionstore d 2 a b weights 1 2").unwrap(),
            ["d", "a", "b"]
        );
        assert_eq!(keys("lmpop 2 a b left").unwrap(), ["a", "b"]);
        assert_eq!(keys("bzmpop 0 1 a min").unwrap(), ["a"]);
        assert_eq!(keys("zunionstore d 3 a b"), Err(NoKeys::Invalid));
        assert_eq!(keys("zunion 0 a"), Err(NoKeys::Invalid));
        assert_eq!(keys("sort k by w get # store d").unwrap(), ["k", "d"]);
        assert_eq!(keys("sort k limit 0 store").unwrap(), ["k"]);
        assert_eq!(keys("sort_ro k").unwrap(), ["k"]);
        assert_eq!(keys("memory usage k").unwrap(), ["k"]);
        assert_eq!(keys("memory doctor"), Err(NoKeys::None));
    }

    fn flags(words: &str) -> Vec<(String, &'static str)> {
        let args: Vec<Bytes> = words
            .split(' ')
            .map(|w| Bytes::from(w.to_string()))
            .collect();
        let spec = crate::cmd::lookup(&args[0]).expect("known");
        (flags_of_call(spec, &args).expect("has keys").into_iter())
            .map(|(at, f)| (String::from_utf8_lossy(&args[at]).into_owned(), f))
            .collect()
    }

    #[test]
    fn each_key_gets_the_flags_of_its_part() {
        let f = |k: &str, flags| (k.to_string(), flags);
        assert_eq!(flags("set k v"), [f("k", "OW update")]);
        assert_eq!(flags("set k v get"), [f("k", "RW access update")]);
        assert_eq!(
            flags("mset a 1 b 2"),
            [f("a", "OW update"), f("b", "OW update")]
        );
        assert_eq!(
            flags("lmove a b left right"),
            [f("a", "RW access delete"), f("b", "RW insert")]
        );
        assert_eq!(
            flags("sort k store d"),
            [f("k", "RO access"), f("d", "OW update")]
        );
        assert_eq!(
            flags("zunionstore d 2 a b"),
            [
                f("d", "OW update"),
                f("a", "RO access"),
                f("b", "RO access")
            ]
        );
    }

    #[test]
    fn every_command_with_keys_has_flags_for_them() {
        for spec in crate::cmd::COMMANDS {
            let specs = key_specs(spec);
            if keys_of(spec) == Keys::None {
                assert!(
                    flags_of(spec).is_empty(),
                    "{} has flags but no keys",
                    spec.name
                );
                continue;
            }
            assert!(!specs.is_empty(), "{} has keys but no key specs", spec.name);
            assert!(
                specs
                    .iter()
                    .all(|(f, _)| ["RO", "RW", "OW", "RM"].iter().any(|m| f.starts_with(m))),
                "{}: {specs:?}",
                spec.name
            );
        }
    }

    #[test]
    fn key_specs_place_keys_as_redis_does() {
        let lookup = |n: &str| crate::cmd::lookup(n.as_bytes()).expect("known");
        let range = |index, lastkey, keystep| Search::Range {
            index,
            lastkey,
            keystep,
        };
        assert_eq!(key_specs(lookup("mset")), [("OW update", range(1, -1, 2))]);
        assert_eq!(
            key_specs(lookup("blpop")),
            [("RW access delete", range(1, -2, 1))]
        );
        assert_eq!(
            key_specs(lookup("bitop")),
            [
                ("OW update", range(2, 0, 1)),
                ("RO access", range(3, -1, 1))
            ]
        );
        assert_eq!(
            key_specs(lookup("zinterstore")),
            [
                ("OW update", range(1, 0, 1)),
                ("RO access", Search::Counted { index: 2 })
            ]
        );
        assert_eq!(
            key_specs(lookup("rename")),
            [
                ("RW access delete", range(1, 0, 1)),
                ("OW update", range(2, 0, 1))
            ]
        );
        assert_eq!(
            key_specs(lookup("blmpop")),
            [("RW access delete", Search::Counted { index: 2 })]
        );
    }
}
