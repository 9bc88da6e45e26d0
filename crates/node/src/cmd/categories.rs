//! Redis's ACL categories (`@read`, `@write`, `@dangerous`, ...) of every command, and of
//! every subcommand of the commands that have them: what `+@category` and `-@category` rules
//! of `ACL SETUSER` allow and deny, and what `ACL CAT` lists. They are Redis 7.0's, command by
//! command (each command's own categories and those its flags imply: a write is `@write`, a
//! command that is not `@fast` is `@slow`, an administrative one `@admin` and `@dangerous`).

/// The categories, in `ACL CAT`'s order; a category is the bit at its index (`hyperloglog`,
/// `geo` and `stream` have no command here).
pub const NAMES: [&str; 21] = [
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

const KEYSPACE: u32 = 1 << 0;
const READ: u32 = 1 << 1;
const WRITE: u32 = 1 << 2;
const SET: u32 = 1 << 3;
const SORTEDSET: u32 = 1 << 4;
const LIST: u32 = 1 << 5;
const HASH: u32 = 1 << 6;
const STRING: u32 = 1 << 7;
const BITMAP: u32 = 1 << 8;
const PUBSUB: u32 = 1 << 12;
const ADMIN: u32 = 1 << 13;
const FAST: u32 = 1 << 14;
const SLOW: u32 = 1 << 15;
const BLOCKING: u32 = 1 << 16;
const DANGEROUS: u32 = 1 << 17;
const CONNECTION: u32 = 1 << 18;
const TRANSACTION: u32 = 1 << 19;
const SCRIPTING: u32 = 1 << 20;

/// The bit of category `name` (without the `@`), if there is one.
pub fn bit(name: &str) -> Option<u32> {
    let at = NAMES.iter().position(|n| n.eq_ignore_ascii_case(name))?;
    Some(1 << at)
}

/// The names of the categories in `bits`.
pub fn names(bits: u32) -> impl Iterator<Item = &'static str> {
    (0..NAMES.len())
        .filter(move |i| bits & (1 << i) != 0)
        .map(|i| NAMES[i])
}

/// The categories of command `name` (lower case), or of its subcommand `sub` (lower case)
/// for commands that have subcommands (`client|kill` is `@admin @dangerous ...`, `client|id`
/// is not). 0 for an unknown subcommand.
pub fn of(name: &str, sub: &str) -> u32 {
    match (name, sub) {
        ("acl", "deluser")
        | ("acl", "dryrun")
        | ("acl", "getuser")
        | ("acl", "list")
        | ("acl", "load")
        | ("acl", "log")
        | ("acl", "save")
        | ("acl", "setuser")
        | ("acl", "users")
        | ("cluster", "addslots")
        | ("cluster", "addslotsrange")
        | ("cluster", "bumpepoch")
        | ("cluster", "count-failure-reports")
        | ("cluster", "delslots")
        | ("cluster", "delslotsrange")
        | ("cluster", "failover")
        | ("cluster", "flushslots")
        | ("cluster", "forget")
        | ("cluster", "meet")
        | ("cluster", "replicas")
        | ("cluster", "replicate")
        | ("cluster", "reset")
        | ("cluster", "saveconfig")
        | ("cluster", "set-config-epoch")
        | ("cluster", "setslot")
        | ("cluster", "slaves")
        | ("config", "get")
        | ("config", "resetstat")
        | ("config", "rewrite")
        | ("config", "set")
        | ("latency", "doctor")
        | ("latency", "graph")
        | ("latency", "histogram")
        | ("latency", "history")
        | ("latency", "latest")
        | ("latency", "reset")
        | ("monitor", _)
        | ("slowlog", "get")
        | ("slowlog", "len")
        | ("slowlog", "reset")
        // Meridian's own: hand this node's clients over (`MERIDIAN DRAIN`), and back.
        | ("meridian", "drain")
        | ("meridian", "undrain") => ADMIN | SLOW | DANGEROUS,
        ("acl", "cat")
        | ("acl", "genpass")
        | ("acl", "help")
        | ("acl", "whoami")
        | ("cluster", "countkeysinslot")
        | ("cluster", "getkeysinslot")
        | ("cluster", "help")
        | ("cluster", "info")
        | ("cluster", "keyslot")
        | ("cluster", "links")
        | ("cluster", "myid")
        | ("cluster", "nodes")
        | ("cluster", "shards")
        | ("cluster", "slots")
        | ("config", "help")
        | ("latency", "help")
        | ("memory", "doctor")
        | ("memory", "help")
        | ("memory", "malloc-stats")
        | ("memory", "purge")
        | ("memory", "stats")
        | ("pubsub", "help")
        | ("slowlog", "help") => SLOW,
        ("client", "caching")
        | ("client", "getname")
        | ("client", "getredir")
        | ("client", "help")
        | ("client", "id")
        | ("client", "info")
        | ("client", "reply")
        | ("client", "setname")
        | ("client", "tracking")
        | ("client", "trackinginfo")
        | ("command", "count")
        | ("command", "docs")
        | ("command", "getkeys")
        | ("command", "getkeysandflags")
        | ("command", "help")
        | ("command", "info")
        | ("command", "list")
        | ("wait", _)
        // Meridian's own: causal tokens (`server::causal`), like WAIT.
        | ("meridian", _) => SLOW | CONNECTION,
        ("zdiff", _)
        | ("zinter", _)
        | ("zintercard", _)
        | ("zrandmember", _)
        | ("zrange", _)
        | ("zrangebylex", _)
        | ("zrangebyscore", _)
        | ("zrevrange", _)
        | ("zrevrangebylex", _)
        | ("zrevrangebyscore", _)
        | ("zscan", _)
        | ("zunion", _) => READ | SORTEDSET | SLOW,
        ("function", "dump")
        | ("function", "help")
        | ("function", "kill")
        | ("function", "list")
        | ("function", "stats")
        | ("script", "debug")
        | ("script", "exists")
        | ("script", "flush")
        | ("script", "help")
        | ("script", "kill")
        | ("script", "load") => SLOW | SCRIPTING,
        ("psubscribe", _)
        | ("pubsub", "channels")
        | ("pubsub", "numpat")
        | ("pubsub", "numsub")
        | ("pubsub", "shardchannels")
        | ("pubsub", "shardnumsub")
        | ("punsubscribe", _)
        | ("ssubscribe", _)
        | ("subscribe", _)
        | ("sunsubscribe", _)
        | ("unsubscribe", _) => PUBSUB | SLOW,
        ("append", _)
        | ("decr", _)
        | ("decrby", _)
        | ("getdel", _)
        | ("getex", _)
        | ("getset", _)
        | ("incr", _)
        | ("incrby", _)
        | ("incrbyfloat", _)
        | ("setnx", _) => WRITE | STRING | FAST,
        ("dbsize", _)
        | ("exists", _)
        | ("expiretime", _)
        | ("pexpiretime", _)
        | ("pttl", _)
        | ("touch", _)
        | ("ttl", _)
        | ("type", _) => KEYSPACE | READ | FAST,
        ("expire", _)
        | ("expireat", _)
        | ("move", _)
        | ("persist", _)
        | ("pexpire", _)
        | ("pexpireat", _)
        | ("renamenx", _)
        | ("unlink", _) => KEYSPACE | WRITE | FAST,
        ("zdiffstore", _)
        | ("zinterstore", _)
        | ("zmpop", _)
        | ("zrangestore", _)
        | ("zremrangebylex", _)
        | ("zremrangebyrank", _)
        | ("zremrangebyscore", _)
        | ("zunionstore", _) => WRITE | SORTEDSET | SLOW,
        ("auth", _)
        | ("echo", _)
        | ("hello", _)
        | ("ping", _)
        | ("quit", _)
        | ("reset", _)
        | ("select", _) => FAST | CONNECTION,
        ("linsert", _)
        | ("lmove", _)
        | ("lmpop", _)
        | ("lrem", _)
        | ("lset", _)
        | ("ltrim", _)
        | ("rpoplpush", _) => WRITE | LIST | SLOW,
        ("sdiff", _)
        | ("sinter", _)
        | ("sintercard", _)
        | ("smembers", _)
        | ("srandmember", _)
        | ("sscan", _)
        | ("sunion", _) => READ | SET | SLOW,
        ("zcard", _)
        | ("zcount", _)
        | ("zlexcount", _)
        | ("zmscore", _)
        | ("zrank", _)
        | ("zrevrank", _)
        | ("zscore", _) => READ | SORTEDSET | FAST,
        ("client", "kill")
        | ("client", "list")
        | ("client", "no-evict")
        | ("client", "pause")
        | ("client", "unblock")
        | ("client", "unpause") => ADMIN | SLOW | DANGEROUS | CONNECTION,
        ("hdel", _)
        | ("hincrby", _)
        | ("hincrbyfloat", _)
        | ("hmset", _)
        | ("hset", _)
        | ("hsetnx", _) => WRITE | HASH | FAST,
        ("lpop", _) | ("lpush", _) | ("lpushx", _) | ("rpop", _) | ("rpush", _) | ("rpushx", _) => {
            WRITE | LIST | FAST
        }
        ("mset", _)
        | ("msetnx", _)
        | ("psetex", _)
        | ("set", _)
        | ("setex", _)
        | ("setrange", _) => WRITE | STRING | SLOW,
        ("object", "encoding")
        | ("object", "freq")
        | ("object", "idletime")
        | ("object", "refcount")
        | ("randomkey", _)
        | ("scan", _) => KEYSPACE | READ | SLOW,
        ("blmove", _) | ("blmpop", _) | ("blpop", _) | ("brpop", _) | ("brpoplpush", _) => {
            WRITE | LIST | SLOW | BLOCKING
        }
        ("hexists", _) | ("hget", _) | ("hlen", _) | ("hmget", _) | ("hstrlen", _) => {
            READ | HASH | FAST
        }
        ("hgetall", _) | ("hkeys", _) | ("hrandfield", _) | ("hscan", _) | ("hvals", _) => {
            READ | HASH | SLOW
        }
        ("zadd", _) | ("zincrby", _) | ("zpopmax", _) | ("zpopmin", _) | ("zrem", _) => {
            WRITE | SORTEDSET | FAST
        }
        ("discard", _) | ("multi", _) | ("unwatch", _) | ("watch", _) => FAST | TRANSACTION,
        ("function", "delete")
        | ("function", "flush")
        | ("function", "load")
        | ("function", "restore") => WRITE | SLOW | SCRIPTING,
        ("sadd", _) | ("smove", _) | ("spop", _) | ("srem", _) => WRITE | SET | FAST,
        ("copy", _) | ("del", _) | ("rename", _) => KEYSPACE | WRITE | SLOW,
        ("get", _) | ("mget", _) | ("strlen", _) => READ | STRING | FAST,
        ("getrange", _) | ("lcs", _) | ("substr", _) => READ | STRING | SLOW,
        ("lindex", _) | ("lpos", _) | ("lrange", _) => READ | LIST | SLOW,
        ("scard", _) | ("sismember", _) | ("smismember", _) => READ | SET | FAST,
        ("sdiffstore", _) | ("sinterstore", _) | ("sunionstore", _) => WRITE | SET | SLOW,
        ("bitcount", _) | ("bitpos", _) => READ | BITMAP | SLOW,
        ("bitop", _) | ("setbit", _) => WRITE | BITMAP | SLOW,
        ("bzpopmax", _) | ("bzpopmin", _) => WRITE | SORTEDSET | FAST | BLOCKING,
        ("flushall", _) | ("flushdb", _) => KEYSPACE | WRITE | SLOW | DANGEROUS,
        ("publish", _) | ("spublish", _) => PUBSUB | FAST,
        ("bzmpop", _) => WRITE | SORTEDSET | SLOW | BLOCKING,
        ("exec", _) => SLOW | TRANSACTION,
        ("getbit", _) => READ | BITMAP | FAST,
        ("info", _) => SLOW | DANGEROUS,
        ("keys", _) => KEYSPACE | READ | SLOW | DANGEROUS,
        ("llen", _) => READ | LIST | FAST,
        ("memory", "usage") => READ | SLOW,
        ("object", "help") => KEYSPACE | SLOW,
        ("sort", _) => WRITE | SET | SORTEDSET | LIST | SLOW | DANGEROUS,
        ("sort_ro", _) => READ | SET | SORTEDSET | LIST | SLOW | DANGEROUS,
        ("swapdb", _) => KEYSPACE | WRITE | FAST | DANGEROUS,
        ("time", _) => FAST,
        ("role", _) => ADMIN | FAST | DANGEROUS,
        // RedisTimeSeries's commands.
        ("ts.add", _)
        | ("ts.madd", _)
        | ("ts.incrby", _)
        | ("ts.decrby", _)
        | ("ts.create", _)
        | ("ts.alter", _)
        | ("ts.createrule", _)
        | ("ts.deleterule", _) => WRITE | FAST,
        ("ts.fuse", _) => WRITE | SLOW,
        ("ts.del", _) => WRITE | SLOW,
        ("ts.get", _) | ("ts.info", _) => READ | FAST,
        ("ts.read", _) => READ | SLOW | BLOCKING,
        ("ts.range", _)
        | ("ts.revrange", _)
        | ("ts.mget", _)
        | ("ts.mrange", _)
        | ("ts.mrevrange", _)
        | ("ts.nrange", _)
        | ("ts.nrevrange", _)
        | ("ts.queryindex", _)
        | ("ts.querylabels", _) => READ | SLOW,

        _ => 0,
    }
}

/// Whether command `name` is a container of subcommands, each with its own categories and
/// rights (`+client|list`).
pub fn has_subcommands(name: &str) -> bool {
    matches!(
        name,
        "acl"
            | "client"
            | "cluster"
            | "command"
            | "config"
            | "function"
            | "latency"
            | "memory"
            | "meridian"
            | "object"
            | "pubsub"
            | "script"
            | "slowlog"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_are_redis_s() {
        let of = |n: &str, s: &str| names(super::of(n, s)).collect::<Vec<_>>();
        assert_eq!(of("get", ""), ["read", "string", "fast"]);
        assert_eq!(
            of("sort", ""),
            ["write", "set", "sortedset", "list", "slow", "dangerous"]
        );
        assert_eq!(
            of("client", "kill"),
            ["admin", "slow", "dangerous", "connection"]
        );
        assert_eq!(of("client", "id"), ["slow", "connection"]);
        assert_eq!(of("blpop", ""), ["write", "list", "slow", "blocking"]);
        assert_eq!(bit("WRITE"), Some(WRITE));
        assert_eq!(bit("nope"), None);
    }

    #[test]
    fn every_command_has_categories() {
        for spec in crate::cmd::COMMANDS {
            if has_subcommands(spec.name) {
                continue;
            }
            assert_ne!(of(spec.name, ""), 0, "{} has no category", spec.name);
            let fast_or_slow = of(spec.name, "") & (FAST | SLOW);
            assert!(
                fast_or_slow == FAST || fast_or_slow == SLOW,
                "{}",
                spec.name
            );
        }
    }
}
