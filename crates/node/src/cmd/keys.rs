//! Keys: DEL, UNLINK, EXISTS, TYPE, the EXPIRE family, TTL, PTTL, PERSIST, KEYS, SCAN, DBSIZE,
//! FLUSHALL, RENAME, RENAMENX, COPY, TOUCH, RANDOMKEY.

use super::{Ctx, int_arg, random, reply};
use crate::glob::glob_match;
use bytes::Bytes;
use crdt::{Kind, Member, Record};
use resp::Reply;
use resp::args::ERR_SYNTAX;

pub fn del(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let mut removed = 0;
    for key in &args[1..] {
        if ctx.txn.live(key).is_some() {
            let stamp = ctx.txn.stamp();
            ctx.txn.delete(key, stamp);
            removed += 1;
        }
    }
    Reply::Int(removed)
}

pub fn exists(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    Reply::Int(
        args[1..]
            .iter()
            .filter(|k| ctx.txn.live(k).is_some())
            .count() as i64,
    )
}

pub fn type_(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let now_ms = ctx.txn.now_ms();
    let kind = ctx.txn.live(&args[1]).and_then(|r| r.live_kind(now_ms));
    Reply::Simple(kind.map_or("none", |k| k.name()))
}

pub fn expire(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(expire_generic(ctx, args, 1000, false, "expire"))
}

pub fn pexpire(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(expire_generic(ctx, args, 1, false, "pexpire"))
}

pub fn expireat(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(expire_generic(ctx, args, 1000, true, "expireat"))
}

pub fn pexpireat(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(expire_generic(ctx, args, 1, true, "pexpireat"))
}

/// `EXPIRETIME` / `PEXPIRETIME`: the deadline as a Unix time in `unit_ms`, -1 without one,
/// -2 when the key does not exist.
fn expire_time(ctx: &mut Ctx<'_, '_>, key: &Bytes, unit_ms: u64) -> Reply {
    Reply::Int(match ctx.txn.live(key) {
        None => -2,
        Some(r) => r
            .record
            .expires_at_ms()
            .map_or(-1, |at| (at / unit_ms) as i64),
    })
}

pub fn expiretime(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    expire_time(ctx, &args[1], 1000)
}

pub fn pexpiretime(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    expire_time(ctx, &args[1], 1)
}

/// The `EXPIRE` family: a deadline `args[2]` units of `unit_ms` from now, or at that Unix
/// time when `absolute`.
fn expire_generic(
    ctx: &mut Ctx<'_, '_>,
    args: &[Bytes],
    unit_ms: i64,
    absolute: bool,
    name: &str,
) -> Result<Reply, Reply> {
    let key = &args[1];
    let amount = int_arg(&args[2])?;
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &args[3..] {
        match opt.to_ascii_uppercase().as_slice() {
            b"NX" => nx = true,
            b"XX" => xx = true,
            b"GT" => gt = true,
            b"LT" => lt = true,
            _ => {
                return Err(Reply::Error(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(opt)
                )));
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(Reply::err(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(Reply::err(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    let now_ms = ctx.txn.now_ms() as i64;
    let invalid = || Reply::Error(format!("ERR invalid expire time in '{name}' command"));
    let base = if absolute { 0 } else { now_ms };
    let at = amount
        .checked_mul(unit_ms)
        .and_then(|ms| ms.checked_add(base))
        .ok_or_else(invalid)?;
    let Some(record) = ctx.txn.live(key) else {
        return Ok(Reply::Int(0));
    };
    let current = record.record.expires_at_ms().map(|c| c as i64);
    let allowed = match current {
        None => !(xx || gt),
        Some(c) => !nx && (!gt || at > c) && (!lt || at < c),
    };
    if !allowed {
        return Ok(Reply::Int(0));
    }
    let stamp = ctx.txn.stamp();
    if at <= now_ms {
        // A deadline in the past deletes the key at once, as in Redis.
        ctx.txn.delete(key, stamp);
    } else {
        ctx.txn
            .apply(key, &Record::expiry_delta(stamp, Some(at as u64)));
    }
    Ok(Reply::Int(1))
}

fn ttl_ms(ctx: &mut Ctx<'_, '_>, key: &Bytes) -> Option<Option<u64>> {
    let now_ms = ctx.txn.now_ms();
    let record = ctx.txn.live(key)?;
    Some(
        record
            .record
            .expires_at_ms()
            .map(|at| at.saturating_sub(now_ms)),
    )
}

pub fn ttl(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    Reply::Int(match ttl_ms(ctx, &args[1]) {
        None => -2,
        Some(None) => -1,
        Some(Some(ms)) => ms.div_ceil(1000).min(ms.saturating_add(500) / 1000) as i64,
    })
}

pub fn pttl(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    Reply::Int(match ttl_ms(ctx, &args[1]) {
        None => -2,
        Some(None) => -1,
        Some(Some(ms)) => ms as i64,
    })
}

pub fn persist(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let key = &args[1];
    match ctx.txn.live(key) {
        Some(r) if r.record.expires_at_ms().is_some() => {
            let stamp = ctx.txn.stamp();
            ctx.txn.apply(key, &Record::expiry_delta(stamp, None));
            Reply::Int(1)
        }
        _ => Reply::Int(0),
    }
}

/// How many stored records one step of a key walk reads.
const WALK_CHUNK: usize = 1024;

/// Live keys after `after` matching `pattern` and `kind`, reading at most `budget` records.
/// Returns the keys and the last key read (`None` when the walk reached the end).
fn walk(
    ctx: &mut Ctx<'_, '_>,
    mut after: Option<Bytes>,
    budget: usize,
    pattern: Option<&[u8]>,
    kind: Option<&[u8]>,
) -> Result<(Vec<Bytes>, Option<Bytes>), Reply> {
    let now_ms = ctx.txn.now_ms();
    let mut out = Vec::new();
    let mut read = 0;
    while read < budget {
        let chunk = ctx
            .txn
            .scan(after.as_deref(), WALK_CHUNK.min(budget - read))
            .map_err(|e| Reply::Error(format!("ERR storage failure: {e}")))?;
        if chunk.is_empty() {
            return Ok((out, None));
        }
        read += chunk.len();
        for (key, record) in &chunk {
            let Some(k) = record.live_kind(now_ms) else {
                continue;
            };
            if pattern.is_some_and(|p| !glob_match(p, key, false)) {
                continue;
            }
            if kind.is_some_and(|t| !t.eq_ignore_ascii_case(k.name().as_bytes())) {
                continue;
            }
            out.push(key.clone());
        }
        after = chunk.last().map(|(k, _)| k.clone());
    }
    Ok((out, after))
}

pub fn keys(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match walk(ctx, None, usize::MAX, Some(&args[1]), None) {
        Ok((keys, _)) => Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
        Err(e) => e,
    }
}

/// The arguments of the `SCAN` family.
struct ScanArgs {
    cursor: u64,
    count: usize,
    pattern: Option<Bytes>,
    kind: Option<Bytes>,
}

impl ScanArgs {
    /// `cursor` and the `options` after it (`MATCH`, `COUNT`, and `TYPE` when `typed`).
    fn parse(cursor: &[u8], options: &[Bytes], typed: bool) -> Result<ScanArgs, Reply> {
        let cursor = std::str::from_utf8(cursor)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| Reply::err("ERR invalid cursor"))?;
        let mut parsed = ScanArgs {
            cursor,
            count: 10,
            pattern: None,
            kind: None,
        };
        for pair in options.chunks(2) {
            let [option, value] = pair else {
                return Err(Reply::err(ERR_SYNTAX));
            };
            match option.to_ascii_uppercase().as_slice() {
                b"COUNT" => {
                    let n = int_arg(value)?;
                    if n < 1 {
                        return Err(Reply::err(ERR_SYNTAX));
                    }
                    parsed.count = n.min(1 << 20) as usize;
                }
                b"MATCH" => parsed.pattern = Some(value.clone()),
                b"TYPE" if typed => parsed.kind = Some(value.clone()),
                _ => return Err(Reply::err(ERR_SYNTAX)),
            }
        }
        Ok(parsed)
    }
}

pub fn scan(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(scan_inner(ctx, args))
}

fn scan_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Result<Reply, Reply> {
    let ScanArgs {
        cursor,
        count,
        pattern,
        kind,
    } = ScanArgs::parse(&args[1], &args[2..], true)?;
    let after = if cursor == 0 {
        None
    } else {
        Some(
            ctx.state
                .cursors
                .resume(cursor)
                .ok_or_else(|| Reply::err("ERR invalid cursor"))?,
        )
    };
    let (keys, last) = walk(ctx, after, count, pattern.as_deref(), kind.as_deref())?;
    let next = last.map_or(0, |k| ctx.state.cursors.park(k));
    Ok(Reply::Array(vec![
        Reply::bulk(next.to_string()),
        Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
    ]))
}

/// Most live keys one `FLUSHALL`/`FLUSHDB` deletes: it is one round and one log entry (an
/// observed remove of every key, so writes made concurrently elsewhere survive), which must
/// stay bounded. Larger keyspaces are refused with a clear error.
const FLUSH_KEYS_MAX: i64 = 100_000;

/// `FLUSHALL` / `FLUSHDB` `[ASYNC | SYNC]` (one database: the same thing): deletes every
/// key, as `DEL` would, in one round.
pub fn flushall(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(flush(ctx, args))
}

fn flush(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Result<Reply, Reply> {
    match &args[1..] {
        [] => {}
        [mode]
            if [&b"ASYNC"[..], b"SYNC"]
                .iter()
                .any(|m| mode.eq_ignore_ascii_case(m)) => {}
        _ => return Err(Reply::err(ERR_SYNTAX)),
    }
    let live = live_keys(ctx);
    if live > FLUSH_KEYS_MAX {
        return Err(Reply::Error(format!(
            "ERR {} of {live} keys is refused: at most {FLUSH_KEYS_MAX} at once here; delete in batches (SCAN and UNLINK)",
            String::from_utf8_lossy(&args[0]).to_uppercase()
        )));
    }
    let (keys, _) = walk(ctx, None, usize::MAX, None, None)?;
    for key in keys {
        let stamp = ctx.txn.stamp();
        ctx.txn.delete(&key, stamp);
    }
    Ok(Reply::OK)
}

/// Live keys as the round sees them: its own changes count too, so a pipeline's `DBSIZE`
/// sees its earlier writes.
fn live_keys(ctx: &Ctx<'_, '_>) -> i64 {
    (ctx.state.live_keys as i64 + ctx.txn.live_delta()).max(0)
}

pub fn dbsize(ctx: &mut Ctx<'_, '_>, _args: &[Bytes]) -> Reply {
    Reply::Int(live_keys(ctx))
}

/// What a client reads of a key, to write it again under another name.
enum Value {
    String(Bytes),
    Hash(Vec<(Bytes, Bytes)>),
    Set(Vec<Bytes>),
    List(Vec<Bytes>),
    ZSet(Vec<(Bytes, f64)>),
    Series(super::timeseries::Copied),
}

/// The value and deadline of the live key `key`.
fn read_value(ctx: &mut Ctx<'_, '_>, key: &Bytes) -> Option<(Value, Option<u64>)> {
    let now_ms = ctx.txn.now_ms();
    let stored = ctx.txn.live(key)?;
    let at = stored.record.expires_at_ms();
    let value = match stored.live_kind(now_ms)? {
        Kind::String => Value::String(stored.record.string.as_ref()?.value()?),
        Kind::Hash => Value::Hash(super::hashes::entries(ctx, key).ok()?),
        Kind::Set => Value::Set(
            super::sets::members_of(ctx, key)
                .ok()?
                .into_iter()
                .collect(),
        ),
        Kind::List => Value::List(super::lists::all_values(ctx, key)),
        Kind::ZSet => Value::ZSet(super::zsets::all(ctx, key)),
        Kind::TimeSeries => Value::Series(super::timeseries::read_copy(ctx, key)?),
    };
    Some((value, at))
}

/// Writes `value` with the deadline `at` under `key`, which holds nothing live.
fn write_value(ctx: &mut Ctx<'_, '_>, key: &Bytes, value: Value, at: Option<u64>) {
    let stamp = ctx.txn.stamp();
    match value {
        Value::String(v) => super::strings::write_string(ctx, key, v, Some(at)),
        Value::Hash(fields) => {
            for (f, v) in fields {
                let current = ctx.txn.field(key, &f).unwrap_or_default();
                ctx.txn
                    .apply_field(key, &f, &current.set_delta(stamp, v), stamp);
            }
            ctx.txn.apply(key, &Record::expiry_delta(stamp, at));
        }
        Value::Set(members) => {
            for m in members {
                ctx.txn
                    .apply_member(key, &m, &Member::add_delta(stamp), Some(stamp));
            }
            ctx.txn.apply(key, &Record::expiry_delta(stamp, at));
        }
        Value::List(values) => {
            super::lists::push_values(ctx, key, super::lists::End::Right, &values);
            let stamp = ctx.txn.stamp();
            ctx.txn.apply(key, &Record::expiry_delta(stamp, at));
        }
        Value::ZSet(items) => {
            super::zsets::write_all(ctx, key, items);
            let stamp = ctx.txn.stamp();
            ctx.txn.apply(key, &Record::expiry_delta(stamp, at));
        }
        Value::Series(copied) => {
            super::timeseries::write_copy(ctx, key, copied);
            let stamp = ctx.txn.stamp();
            ctx.txn.apply(key, &Record::expiry_delta(stamp, at));
        }
    }
}

/// Deletes `key` if it holds anything live.
fn delete_if_live(ctx: &mut Ctx<'_, '_>, key: &Bytes) -> bool {
    if ctx.txn.live(key).is_none() {
        return false;
    }
    let stamp = ctx.txn.stamp();
    ctx.txn.delete(key, stamp);
    true
}

/// `RENAME` and `RENAMENX`: the key's value and deadline move to the new name (written there
/// anew, and deleted under the old one).
fn rename_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes], nx: bool) -> Reply {
    let (src, dst) = (&args[1], &args[2]);
    let Some((value, at)) = read_value(ctx, src) else {
        return Reply::err("ERR no such key");
    };
    if src == dst {
        return if nx { Reply::Int(0) } else { Reply::OK };
    }
    if nx && ctx.txn.live(dst).is_some() {
        return Reply::Int(0);
    }
    delete_if_live(ctx, dst);
    delete_if_live(ctx, src);
    write_value(ctx, dst, value, at);
    if nx { Reply::Int(1) } else { Reply::OK }
}

pub fn rename(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    rename_inner(ctx, args, false)
}

pub fn renamenx(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    rename_inner(ctx, args, true)
}

/// `COPY source destination [DB 0] [REPLACE]`.
pub fn copy(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let (src, dst) = (&args[1], &args[2]);
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        match args[i].to_ascii_uppercase().as_slice() {
            b"REPLACE" => replace = true,
            b"DB" if i + 1 < args.len() => {
                match resp::args::parse_i64(&args[i + 1]) {
                    Some(0) => {}
                    Some(_) => return Reply::err("ERR DB index is out of range"),
                    None => return Reply::err(resp::args::ERR_NOT_INTEGER),
                }
                i += 1;
            }
            _ => return Reply::err(ERR_SYNTAX),
        }
        i += 1;
    }
    if src == dst {
        return Reply::err("ERR source and destination objects are the same");
    }
    let Some((value, at)) = read_value(ctx, src) else {
        return Reply::Int(0);
    };
    if ctx.txn.live(dst).is_some() {
        if !replace {
            return Reply::Int(0);
        }
        delete_if_live(ctx, dst);
    }
    write_value(ctx, dst, value, at);
    Reply::Int(1)
}

/// `TOUCH key [key ...]`: how many exist (no access times are kept here).
pub fn touch(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    exists(ctx, args)
}

/// `RANDOMKEY`: one of the live keys among a window read past a random name drawn from the
/// alphabet of the first and last keys (`random.rs`: keys after a sparse stretch come up
/// more often than others), or nil when there is none.
pub fn randomkey(ctx: &mut Ctx<'_, '_>, _args: &[Bytes]) -> Reply {
    reply((|| {
        let (first, _) = walk(ctx, None, random::WINDOW, None, None)?;
        let mut alphabet = random::Alphabet::default();
        for key in first.iter().chain(&ctx.txn.last_keys(random::WINDOW)) {
            alphabet.learn(key);
        }
        let (mut found, _) = walk(ctx, Some(alphabet.draw()), random::WINDOW, None, None)?;
        // Nothing live in that window: any live key will do, from the first on.
        let mut after = None;
        while found.is_empty() {
            let (keys, next) = walk(ctx, after, WALK_CHUNK, None, None)?;
            found = keys;
            match next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        Ok(match found.is_empty() {
            true => Reply::Null,
            false => Reply::Bulk(found.swap_remove(random::below(found.len()))),
        })
    })())
}

/// Collections this small are answered whole by one `SSCAN`/`HSCAN` call (cursor 0), as Redis
/// answers its compact encodings.
const SCAN_WHOLE_MAX: usize = 128;

/// `SSCAN` and `HSCAN`: `items` (in byte order, every live member or field with its value)
/// paged from `cursor` by `COUNT`, filtered by `MATCH`. Each call reads the whole collection
/// (as `SMEMBERS` does); the cursor parks the last name answered.
pub(super) fn scan_collection(
    ctx: &mut Ctx<'_, '_>,
    args: &[Bytes],
    items: Vec<(Bytes, Option<Bytes>)>,
) -> Result<Reply, Reply> {
    let ScanArgs {
        cursor,
        count,
        pattern,
        ..
    } = ScanArgs::parse(&args[2], &args[3..], false)?;
    let after = match cursor {
        0 => None,
        c => Some((ctx.state.cursors.resume(c)).ok_or_else(|| Reply::err("ERR invalid cursor"))?),
    };
    let whole = items.len() <= SCAN_WHOLE_MAX;
    let mut rest = (items.into_iter()).filter(|(name, _)| after.as_ref().is_none_or(|a| name > a));
    let take = if whole { usize::MAX } else { count };
    let page: Vec<(Bytes, Option<Bytes>)> = rest.by_ref().take(take).collect();
    let more = rest.next().is_some();
    let next = match page.last() {
        Some((last, _)) if more => ctx.state.cursors.park(last.clone()),
        _ => 0,
    };
    let out = (page.into_iter())
        .filter(|(name, _)| pattern.as_ref().is_none_or(|p| glob_match(p, name, false)))
        .flat_map(|(name, value)| std::iter::once(Reply::Bulk(name)).chain(value.map(Reply::Bulk)))
        .collect();
    Ok(Reply::Array(vec![
        Reply::bulk(next.to_string()),
        Reply::Array(out),
    ]))
}

/// `MOVE key db`, as Redis answers with one database: the only index is 0, this one.
pub fn move_(_ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match resp::args::parse_i64(&args[2]) {
        None => Reply::err(resp::args::ERR_NOT_INTEGER),
        Some(0) => Reply::err("ERR source and destination objects are the same"),
        Some(_) => Reply::err("ERR DB index is out of range"),
    }
}

/// `SWAPDB index1 index2`, as Redis answers with one database.
pub fn swapdb(_ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match (
        resp::args::parse_i64(&args[1]),
        resp::args::parse_i64(&args[2]),
    ) {
        (None, _) => Reply::err("ERR invalid first DB index"),
        (_, None) => Reply::err("ERR invalid second DB index"),
        (Some(0), Some(0)) => Reply::OK,
        _ => Reply::err("ERR DB index is out of range"),
    }
}

/// `MEMORY USAGE key [SAMPLES count]`: about how many bytes the key takes in storage (its
/// name, header, and every part's name and state, as stored); `MEMORY HELP`. Walks the
/// whole key: O(parts).
pub fn memory(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let sub = args[1].to_ascii_uppercase();
    match sub.as_slice() {
        b"USAGE"
            if args.len() == 3 || (args.len() == 5 && args[3].eq_ignore_ascii_case(b"samples")) =>
        {
            let key = &args[2];
            let now_ms = ctx.txn.now_ms();
            let Some(stored) = ctx.txn.live(key).cloned() else {
                return Reply::Null;
            };
            let mut bytes = key.len() + stored.encode().len();
            let parts =
                |v: Vec<(Bytes, Vec<u8>)>| v.iter().map(|(n, s)| n.len() + s.len()).sum::<usize>();
            bytes += match stored.live_kind(now_ms) {
                Some(Kind::Hash) => parts(encoded(ctx.txn.all_fields(key))),
                Some(Kind::Set) => parts(encoded(ctx.txn.all_members(key))),
                Some(Kind::List) => parts(encoded(ctx.txn.all_parts::<crdt::Elem>(key))),
                Some(Kind::ZSet) => parts(encoded(ctx.txn.all_parts::<crdt::ZMember>(key))),
                Some(Kind::TimeSeries) => parts(encoded(
                    ctx.txn.all_parts::<timeseries::series::Window>(key),
                )),
                _ => 0,
            };
            Reply::Int(bytes as i64)
        }
        b"HELP" if args.len() == 2 => Reply::Array(
            [
                "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "USAGE <key> [SAMPLES <count>]",
                "    Return memory in bytes used by <key> and its value, as stored.",
                "HELP",
                "    Print this help.",
            ]
            .into_iter()
            .map(Reply::Simple)
            .collect(),
        ),
        b"USAGE" | b"HELP" => Reply::Error(format!(
            "ERR wrong number of arguments for 'memory|{}' command",
            String::from_utf8_lossy(&sub).to_lowercase()
        )),
        _ => unknown_subcommand("MEMORY", &args[1]),
    }
}

/// Redis's reply to an unknown subcommand of `command`.
fn unknown_subcommand(command: &str, sub: &[u8]) -> Reply {
    Reply::Error(format!(
        "ERR unknown subcommand '{}'. Try {command} HELP.",
        String::from_utf8_lossy(sub)
    ))
}

fn encoded<T: serde::Serialize>(parts: Vec<(Bytes, T)>) -> Vec<(Bytes, Vec<u8>)> {
    parts
        .into_iter()
        .map(|(n, s)| (n, crdt::encode(&s)))
        .collect()
}

/// `OBJECT ENCODING|FREQ|IDLETIME|REFCOUNT key`, `OBJECT HELP`. Meridian stores every value
/// one way; `ENCODING` names the encoding Redis would use for a value of this type and size
/// (by its element count against the `*-max-listpack-entries` defaults, not by value sizes);
/// `IDLETIME` counts from the key's latest write (reads are not tracked); `REFCOUNT` is 1;
/// `FREQ` answers as Redis does without an LFU eviction policy.
pub fn object(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let sub = args[1].to_ascii_uppercase();
    if sub.as_slice() == b"HELP" && args.len() == 2 {
        return Reply::Array(
            [
                "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "ENCODING <key>",
                "    Return the kind of internal representation Redis would use for <key>.",
                "FREQ <key>",
                "    Return the access frequency index of <key> (LFU eviction only).",
                "IDLETIME <key>",
                "    Return the seconds since <key> was last written.",
                "REFCOUNT <key>",
                "    Return the reference count of <key> (always 1).",
                "HELP",
                "    Print this help.",
            ]
            .into_iter()
            .map(Reply::Simple)
            .collect(),
        );
    }
    if !matches!(
        sub.as_slice(),
        b"ENCODING" | b"FREQ" | b"IDLETIME" | b"REFCOUNT" | b"HELP"
    ) {
        return unknown_subcommand("OBJECT", &args[1]);
    }
    if args.len() != 3 {
        let name = format!("object|{}", String::from_utf8_lossy(&sub).to_lowercase());
        return Reply::Error(format!(
            "ERR wrong number of arguments for '{name}' command"
        ));
    }
    let now_ms = ctx.txn.now_ms();
    let Some(stored) = ctx.txn.live(&args[2]).cloned() else {
        return Reply::Null;
    };
    match sub.as_slice() {
        b"REFCOUNT" => Reply::Int(1),
        b"FREQ" => Reply::err(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ),
        b"IDLETIME" => {
            let last = stored
                .record
                .last_write()
                .map_or(now_ms, |s| s.hlc.physical_ms());
            Reply::Int((now_ms.saturating_sub(last) / 1000) as i64)
        }
        _ => {
            let small = |n: u64| n <= 128;
            let lens = stored.lens;
            let name = match stored.live_kind(now_ms) {
                Some(Kind::String) => {
                    let value = stored
                        .record
                        .string
                        .as_ref()
                        .and_then(|s| s.value())
                        .unwrap_or_default();
                    if value.len() <= 20 && resp::args::parse_i64(&value).is_some() {
                        "int"
                    } else if value.len() <= 44 {
                        "embstr"
                    } else {
                        "raw"
                    }
                }
                Some(Kind::Hash) if small(lens.hash) => "listpack",
                Some(Kind::Hash) => "hashtable",
                Some(Kind::Set) if lens.set <= 512 => "intset_or_hashtable",
                Some(Kind::Set) => "hashtable",
                // Redis 7.0 keeps every list as a quicklist.
                Some(Kind::List) => "quicklist",
                Some(Kind::ZSet) if small(lens.zset) => "listpack",
                Some(Kind::ZSet) => "skiplist",
                // A module type's value, as Redis names it.
                Some(Kind::TimeSeries) => "raw",
                None => return Reply::Null,
            };
            let name = if name == "intset_or_hashtable" {
                let all_ints = super::sets::members_of(ctx, &args[2])
                    .map(|m| m.iter().all(|m| resp::args::parse_i64(m).is_some()))
                    .unwrap_or(false);
                if all_ints { "intset" } else { "hashtable" }
            } else {
                name
            };
            Reply::bulk(name)
        }
    }
}
