//! The command table and the commands that run on the engine thread, one file per family.
//!
//! Every command Meridian knows is in [`COMMANDS`] with its Redis arity (positive: exactly that
//! many arguments including the name; negative: at least that many) and where it runs: data
//! commands run on the engine thread inside a round ([`Txn`]); connection commands (`HELLO`,
//! `CLIENT`, `SUBSCRIBE`, ...) run on the connection's task in `server::connection`.

pub mod categories;
mod hashes;
mod keys;
pub mod keyspec;
mod lists;
mod random;
mod sets;
mod sort;
mod strings;
mod timeseries;
mod zsets;

use crate::engine::{EngineState, Txn};
use bytes::Bytes;
use crdt::Kind;
use resp::Reply;
use resp::args::ERR_WRONGTYPE;
use std::sync::atomic::Ordering;
use storage::Stored;

/// What a data command runs with: the round's view of the keyspace and the engine's state.
pub struct Ctx<'r, 'a> {
    /// The round.
    pub txn: &'r mut Txn<'a>,
    /// Counters and cursors that outlive rounds.
    pub state: &'r mut EngineState,
}

type Handler = fn(&mut Ctx<'_, '_>, &[Bytes]) -> Reply;

/// Where a command runs.
#[derive(Clone, Copy)]
pub enum Runs {
    /// On the engine thread, with access to the keyspace.
    Engine(Handler),
    /// On the connection's task, against what is committed: a read of one or a few keys.
    /// Going through the engine thread would cost two thread hand-offs per request, which
    /// halved read throughput when measured (bench/RESULTS.md); fjall serves these point reads
    /// from memory in microseconds, and any thread may read it.
    Read(Handler),
    /// On the connection's task.
    Connection,
}

/// One entry of the command table.
pub struct Spec {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis arity: exact when positive, minimum when negative (counting the name).
    pub arity: i32,
    /// Whether it may change data (reported by `COMMAND`).
    pub write: bool,
    /// Where it runs.
    pub runs: Runs,
    /// Whether a client waits when it finds nothing (`BLPOP` and kin): the handler answers
    /// at once, with a null when there is nothing to take, and the connection retries it as
    /// the keys change, until the command's timeout (`server::blocking`). Inside `MULTI` the
    /// null answer stands, as in Redis.
    pub blocking: bool,
}

const fn data(name: &'static str, arity: i32, write: bool, f: Handler) -> Spec {
    Spec {
        name,
        arity,
        write,
        runs: Runs::Engine(f),
        blocking: false,
    }
}

const fn blocking(name: &'static str, arity: i32, f: Handler) -> Spec {
    Spec {
        name,
        arity,
        write: true,
        runs: Runs::Engine(f),
        blocking: true,
    }
}

const fn read(name: &'static str, arity: i32, f: Handler) -> Spec {
    Spec {
        name,
        arity,
        write: false,
        runs: Runs::Read(f),
        blocking: false,
    }
}

const fn conn(name: &'static str, arity: i32) -> Spec {
    Spec {
        name,
        arity,
        write: false,
        runs: Runs::Connection,
        blocking: false,
    }
}

/// Every command, as `COMMAND` lists them.
pub static COMMANDS: &[Spec] = &[
    // strings and counters
    read("get", 2, strings::get),
    data("set", -3, true, strings::set),
    read("mget", -2, strings::mget),
    data("mset", -3, true, strings::mset),
    data("msetnx", -3, true, strings::msetnx),
    data("setnx", 3, true, strings::setnx),
    data("setex", 4, true, strings::setex),
    data("psetex", 4, true, strings::psetex),
    data("getset", 3, true, strings::getset),
    data("getdel", 2, true, strings::getdel),
    data("incr", 2, true, strings::incr),
    data("decr", 2, true, strings::decr),
    data("incrby", 3, true, strings::incrby),
    data("decrby", 3, true, strings::decrby),
    data("incrbyfloat", 3, true, strings::incrbyfloat),
    read("strlen", 2, strings::strlen),
    read("getrange", 4, strings::getrange),
    read("substr", 4, strings::getrange),
    data("setrange", 4, true, strings::setrange),
    data("getex", -2, true, strings::getex),
    data("setbit", 4, true, strings::setbit),
    read("getbit", 3, strings::getbit),
    read("bitcount", -2, strings::bitcount),
    read("bitpos", -3, strings::bitpos),
    data("bitop", -4, true, strings::bitop),
    read("lcs", -3, strings::lcs),
    data("append", 3, true, strings::append),
    // keys
    data("del", -2, true, keys::del),
    data("unlink", -2, true, keys::del),
    read("exists", -2, keys::exists),
    read("type", 2, keys::type_),
    data("expire", -3, true, keys::expire),
    data("pexpire", -3, true, keys::pexpire),
    data("expireat", -3, true, keys::expireat),
    data("pexpireat", -3, true, keys::pexpireat),
    read("expiretime", 2, keys::expiretime),
    read("pexpiretime", 2, keys::pexpiretime),
    read("ttl", 2, keys::ttl),
    read("pttl", 2, keys::pttl),
    data("persist", 2, true, keys::persist),
    data("keys", 2, false, keys::keys),
    data("scan", -2, false, keys::scan),
    data("dbsize", 1, false, keys::dbsize),
    data("flushall", -1, true, keys::flushall),
    data("rename", 3, true, keys::rename),
    data("renamenx", 3, true, keys::renamenx),
    data("copy", -3, true, keys::copy),
    read("touch", -2, keys::touch),
    data("randomkey", 1, false, keys::randomkey),
    read("move", 3, keys::move_),
    read("swapdb", 3, keys::swapdb),
    data("flushdb", -1, true, keys::flushall),
    data("sort", -2, true, sort::sort),
    read("memory", -2, keys::memory),
    read("object", -2, keys::object),
    read("sort_ro", -2, sort::sort_ro),
    // hashes
    data("hset", -4, true, hashes::hset),
    data("hmset", -4, true, hashes::hmset),
    data("hsetnx", 4, true, hashes::hsetnx),
    read("hstrlen", 3, hashes::hstrlen),
    read("hget", 3, hashes::hget),
    read("hmget", -3, hashes::hmget),
    data("hdel", -3, true, hashes::hdel),
    read("hgetall", 2, hashes::hgetall),
    read("hlen", 2, hashes::hlen),
    read("hexists", 3, hashes::hexists),
    data("hincrby", 4, true, hashes::hincrby),
    data("hincrbyfloat", 4, true, hashes::hincrbyfloat),
    read("hrandfield", -2, hashes::hrandfield),
    data("hscan", -3, false, hashes::hscan),
    read("hkeys", 2, hashes::hkeys),
    read("hvals", 2, hashes::hvals),
    // sets
    data("sadd", -3, true, sets::sadd),
    data("srem", -3, true, sets::srem),
    read("smembers", 2, sets::smembers),
    read("sismember", 3, sets::sismember),
    read("smismember", -3, sets::smismember),
    read("scard", 2, sets::scard),
    read("sinter", -2, sets::sinter),
    read("sunion", -2, sets::sunion),
    read("sdiff", -2, sets::sdiff),
    data("sinterstore", -3, true, sets::sinterstore),
    data("sunionstore", -3, true, sets::sunionstore),
    data("sdiffstore", -3, true, sets::sdiffstore),
    read("sintercard", -3, sets::sintercard),
    data("smove", 4, true, sets::smove),
    data("spop", -2, true, sets::spop),
    read("srandmember", -2, sets::srandmember),
    data("sscan", -3, false, sets::sscan),
    // lists
    data("lpush", -3, true, lists::lpush),
    data("rpush", -3, true, lists::rpush),
    data("lpushx", -3, true, lists::lpushx),
    data("rpushx", -3, true, lists::rpushx),
    data("lpop", -2, true, lists::lpop),
    data("rpop", -2, true, lists::rpop),
    read("llen", 2, lists::llen),
    read("lrange", 4, lists::lrange),
    read("lindex", 3, lists::lindex),
    data("lset", 4, true, lists::lset),
    data("linsert", 5, true, lists::linsert),
    data("lrem", 4, true, lists::lrem),
    data("ltrim", 4, true, lists::ltrim),
    read("lpos", -3, lists::lpos),
    data("lmove", 5, true, lists::lmove),
    data("rpoplpush", 3, true, lists::rpoplpush),
    data("lmpop", -4, true, lists::lmpop),
    blocking("blpop", -3, lists::blpop),
    blocking("brpop", -3, lists::brpop),
    blocking("blmove", 6, lists::blmove),
    blocking("brpoplpush", 4, lists::brpoplpush),
    blocking("blmpop", -5, lists::blmpop),
    // sorted sets
    data("zadd", -4, true, zsets::zadd),
    data("zincrby", 4, true, zsets::zincrby),
    data("zrem", -3, true, zsets::zrem),
    read("zcard", 2, zsets::zcard),
    read("zscore", 3, zsets::zscore),
    read("zmscore", -3, zsets::zmscore),
    read("zrank", 3, zsets::zrank),
    read("zrevrank", 3, zsets::zrevrank),
    read("zrange", -4, zsets::zrange),
    read("zrevrange", -4, zsets::zrevrange),
    read("zrangebyscore", -4, zsets::zrangebyscore),
    read("zrevrangebyscore", -4, zsets::zrevrangebyscore),
    read("zrangebylex", -4, zsets::zrangebylex),
    read("zrevrangebylex", -4, zsets::zrevrangebylex),
    read("zcount", 4, zsets::zcount),
    read("zlexcount", 4, zsets::zlexcount),
    data("zremrangebyrank", 4, true, zsets::zremrangebyrank),
    data("zremrangebyscore", 4, true, zsets::zremrangebyscore),
    data("zremrangebylex", 4, true, zsets::zremrangebylex),
    data("zpopmin", -2, true, zsets::zpopmin),
    data("zpopmax", -2, true, zsets::zpopmax),
    data("zmpop", -4, true, zsets::zmpop),
    blocking("bzpopmin", -3, zsets::bzpopmin),
    blocking("bzpopmax", -3, zsets::bzpopmax),
    blocking("bzmpop", -5, zsets::bzmpop),
    read("zunion", -3, zsets::zunion),
    read("zinter", -3, zsets::zinter),
    read("zdiff", -3, zsets::zdiff),
    data("zunionstore", -4, true, zsets::zunionstore),
    data("zinterstore", -4, true, zsets::zinterstore),
    data("zdiffstore", -4, true, zsets::zdiffstore),
    read("zintercard", -3, zsets::zintercard),
    data("zrangestore", -5, true, zsets::zrangestore),
    read("zrandmember", -2, zsets::zrandmember),
    data("zscan", -3, false, zsets::zscan),
    // time series (RedisTimeSeries's commands)
    data("ts.create", -2, true, timeseries::create),
    data("ts.alter", -2, true, timeseries::alter),
    data("ts.add", -4, true, timeseries::add),
    data("ts.madd", -4, true, timeseries::madd),
    data("ts.incrby", -3, true, timeseries::incrby),
    data("ts.decrby", -3, true, timeseries::decrby),
    data("ts.del", 4, true, timeseries::del),
    data("ts.createrule", -6, true, timeseries::createrule),
    data("ts.deleterule", 3, true, timeseries::deleterule),
    data("ts.fuse", -9, true, timeseries::fuse),
    read("ts.get", -2, timeseries::get),
    read("ts.range", -4, timeseries::range),
    read("ts.revrange", -4, timeseries::revrange),
    read("ts.info", -2, timeseries::info),
    data("ts.mget", -3, false, timeseries::mget),
    data("ts.mrange", -5, false, timeseries::mrange),
    data("ts.mrevrange", -5, false, timeseries::mrevrange),
    data("ts.queryindex", -2, false, timeseries::queryindex),
    read("ts.nrange", -5, timeseries::nrange),
    read("ts.nrevrange", -5, timeseries::nrevrange),
    Spec {
        name: "ts.read",
        arity: -3,
        write: false,
        runs: Runs::Engine(timeseries::read),
        blocking: true,
    },
    data("ts.querylabels", -2, false, timeseries::querylabels),
    // connection and server
    conn("monitor", 1),
    conn("ping", -1),
    conn("echo", 2),
    conn("hello", -1),
    conn("auth", -2),
    conn("acl", -2),
    conn("select", 2),
    conn("quit", -1),
    conn("reset", 1),
    conn("client", -2),
    conn("command", -1),
    conn("config", -2),
    conn("info", -1),
    conn("role", 1),
    conn("slowlog", -2),
    conn("latency", -2),
    conn("time", 1),
    conn("wait", 3),
    conn("meridian", -2),
    conn("cluster", -2),
    conn("function", -2),
    conn("script", -2),
    conn("multi", 1),
    conn("exec", 1),
    conn("discard", 1),
    conn("watch", -2),
    conn("unwatch", 1),
    conn("publish", 3),
    conn("spublish", 3),
    conn("pubsub", -2),
    conn("ssubscribe", -2),
    conn("sunsubscribe", -1),
    conn("subscribe", -2),
    conn("unsubscribe", -1),
    conn("psubscribe", -2),
    conn("punsubscribe", -1),
];

/// Looks a command up by name, in any case.
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    COMMANDS
        .iter()
        .find(|s| s.name.as_bytes().eq_ignore_ascii_case(name))
}

/// Whether `argc` arguments (counting the name) fit `spec`'s arity.
pub fn arity_ok(spec: &Spec, argc: usize) -> bool {
    let argc = argc as i32;
    if spec.arity >= 0 {
        argc == spec.arity
    } else {
        argc >= -spec.arity
    }
}

/// The reply Redis gives to a command it does not know.
pub fn unknown_command(args: &[Bytes]) -> Reply {
    let name = String::from_utf8_lossy(&args[0]);
    let mut text = format!(
        "ERR unknown command '{}', with args beginning with: ",
        truncate(&name)
    );
    for a in args.iter().skip(1).take(8) {
        text.push_str(&format!("'{}' ", truncate(&String::from_utf8_lossy(a))));
    }
    Reply::Error(text)
}

fn truncate(s: &str) -> String {
    s.chars().take(128).collect()
}

/// Runs a data command whose name and arity the caller already checked.
pub fn execute(ctx: &mut Ctx<'_, '_>, spec: &Spec, args: &[Bytes]) -> Reply {
    let handler = match spec.runs {
        Runs::Engine(handler) | Runs::Read(handler) => handler,
        Runs::Connection => unreachable!("connection command {} sent to the engine", spec.name),
    };
    ctx.txn.begin_command();
    let reply = handler(ctx, args);
    if matches!(spec.name, "flushall" | "flushdb") {
        ctx.txn.flushed();
    }
    let written = ctx.txn.command_writes();
    if !written.is_empty() {
        notify_written(ctx, spec, args, written);
    }
    if !spec.write {
        count_lookups(ctx, spec, args);
    }
    reply
}

/// Counts the keys a read command found and missed (`INFO` `keyspace_hits/misses`, as Redis
/// counts its read lookups). The command read them already: they come from the round.
fn count_lookups(ctx: &mut Ctx<'_, '_>, spec: &Spec, args: &[Bytes]) {
    let Ok(positions) = keyspec::positions(spec, args) else {
        return;
    };
    let now_ms = ctx.txn.now_ms();
    let hits = (positions.iter())
        .filter(|&&at| (ctx.txn.raw(&args[at])).is_some_and(|s| s.live_kind(now_ms).is_some()))
        .count();
    let stats = &ctx.state.stats;
    stats.hits.fetch_add(hits as u64, Ordering::Relaxed);
    (stats.misses).fetch_add((positions.len() - hits) as u64, Ordering::Relaxed);
}

/// Raises the keyspace events of a command that wrote `written` (`engine::notify`).
fn notify_written(ctx: &mut Ctx<'_, '_>, spec: &Spec, args: &[Bytes], written: Vec<(Bytes, bool)>) {
    use crate::engine::notify;
    let roles = keyspec::positions(spec, args).unwrap_or_default();
    // Each key's first place among the command's keys (a map: `TS.MADD` names hundreds).
    let mut first: std::collections::HashMap<&[u8], usize> =
        std::collections::HashMap::with_capacity(roles.len());
    for (role, &at) in roles.iter().enumerate() {
        first.entry(&args[at][..]).or_insert(role);
    }
    let now_ms = ctx.txn.now_ms();
    let written: Vec<notify::Written> = (written.into_iter())
        .map(|(key, live_before)| {
            let role = first.get(&key[..]).copied();
            let live_after = (ctx.txn.raw(&key)).is_some_and(|s| s.live_kind(now_ms).is_some());
            notify::Written {
                key,
                role,
                live_before,
                live_after,
            }
        })
        .collect();
    for (key, event) in notify::events(spec.name, args, &written) {
        ctx.txn.event(&key, event);
    }
}

/// The live header of `key` if it has `kind`; `Err(WRONGTYPE)` if it has another.
fn typed<'t>(
    ctx: &'t mut Ctx<'_, '_>,
    key: &Bytes,
    kind: Kind,
) -> Result<Option<&'t Stored>, Reply> {
    let now_ms = ctx.txn.now_ms();
    match ctx.txn.live(key) {
        None => Ok(None),
        Some(r) if r.live_kind(now_ms) == Some(kind) => Ok(Some(r)),
        Some(_) => Err(Reply::err(ERR_WRONGTYPE)),
    }
}

/// For a write: the header to start from, after checking it is absent or of `kind`.
fn typed_for_write(ctx: &mut Ctx<'_, '_>, key: &Bytes, kind: Kind) -> Result<Stored, Reply> {
    typed(ctx, key, kind)?;
    Ok(ctx.txn.for_write(key))
}

/// Parses an integer argument with Redis's error text.
fn int_arg(arg: &[u8]) -> Result<i64, Reply> {
    resp::args::parse_i64(arg).ok_or_else(|| Reply::err(resp::args::ERR_NOT_INTEGER))
}

/// A blocking command's timeout in seconds (0: none), with Redis's error texts.
fn timeout_arg(arg: &[u8]) -> Result<f64, Reply> {
    let t = resp::args::parse_f64(arg)
        .filter(|t| t.is_finite())
        .ok_or_else(|| Reply::err("ERR timeout is not a float or out of range"))?;
    if t < 0.0 {
        return Err(Reply::err("ERR timeout is negative"));
    }
    Ok(t)
}

/// Fixes what a blocking command's arguments mean at its arrival, before it runs (and
/// perhaps parks to run again): `TS.READ key $` reads what comes after the series' newest
/// sample at arrival, not at each wake.
pub fn pin_arrival(ctx: &mut Ctx<'_, '_>, spec: &Spec, args: &mut [Bytes]) {
    if spec.name == "ts.read" {
        timeseries::pin_read(ctx, args);
    }
}

/// The keys a blocking command waits on and its timeout (`None`: for ever), for a command
/// its handler has already accepted.
pub fn blocking_wait(name: &str, args: &[Bytes]) -> (Vec<Bytes>, Option<std::time::Duration>) {
    let n = args.len();
    if name == "ts.read" {
        // `TS.READ key from [BLOCK ms count] ...`: the wait in milliseconds (0: for ever).
        let ms = (args.iter().position(|a| a.eq_ignore_ascii_case(b"BLOCK")))
            .and_then(|at| args.get(at + 1))
            .and_then(|ms| resp::args::parse_i64(ms))
            .filter(|ms| *ms > 0);
        let timeout = ms.map(|ms| std::time::Duration::from_millis(ms as u64));
        return (vec![args[1].clone()], timeout);
    }
    let (keys, timeout) = match name {
        "blmove" | "brpoplpush" => (vec![args[1].clone()], &args[n - 1]),
        "blmpop" | "bzmpop" => {
            let numkeys = resp::args::parse_i64(&args[2]).unwrap_or(0).max(0) as usize;
            let end = (3 + numkeys).min(n);
            (args[3..end].to_vec(), &args[1])
        }
        _ => (args[1..n - 1].to_vec(), &args[n - 1]),
    };
    let secs = timeout_arg(timeout).unwrap_or(0.0);
    let timeout = (secs > 0.0).then(|| std::time::Duration::from_secs_f64(secs.min(1e9)));
    (keys, timeout)
}

/// Unwraps a `Result<Reply, Reply>` into the reply to send.
fn reply(r: Result<Reply, Reply>) -> Reply {
    r.unwrap_or_else(|e| e)
}
