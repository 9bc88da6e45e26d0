//! Strings and counters: GET, SET and its older forms (SETNX, SETEX, PSETEX, GETSET), MGET,
//! MSET, MSETNX, GETDEL, INCR family, INCRBYFLOAT, STRLEN, APPEND.

use super::{Ctx, int_arg, reply, typed, typed_for_write};
use bytes::Bytes;
use crdt::{Kind, Record, StrState};
use resp::Reply;
use resp::args::{ERR_NOT_FLOAT, ERR_NOT_INTEGER, ERR_OVERFLOW, ERR_SYNTAX, ERR_WRONGTYPE};
use storage::Stored;

fn string_of(stored: Option<&Stored>) -> StrState {
    stored
        .and_then(|s| s.record.string.clone())
        .unwrap_or_default()
}

fn value_of(stored: Option<&Stored>) -> Option<Bytes> {
    stored
        .and_then(|s| s.record.string.as_ref())
        .and_then(StrState::value)
}

pub fn get(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match typed(ctx, &args[1], Kind::String) {
        Ok(r) => value_of(r).map_or(Reply::Null, Reply::Bulk),
        Err(e) => e,
    }
}

pub fn mget(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let items = args[1..]
        .iter()
        .map(|key| match typed(ctx, key, Kind::String) {
            Ok(r) => value_of(r).map_or(Reply::Null, Reply::Bulk),
            Err(_) => Reply::Null,
        })
        .collect();
    Reply::Array(items)
}

/// Writes `value` as the key's string, replacing whatever type it held. `expiry`: `None`
/// keeps the current deadline (KEEPTTL), `Some(at)` sets it (`Some(None)`: no deadline).
pub(super) fn write_string(
    ctx: &mut Ctx<'_, '_>,
    key: &Bytes,
    value: Bytes,
    expiry: Option<Option<u64>>,
) {
    let current = ctx.txn.for_write(key);
    let stamp = ctx.txn.stamp();
    if current.kind().is_some_and(|k| k != Kind::String) {
        // SET replaces a key of any type: its fields or members go.
        ctx.txn.clear_collections(key, stamp);
    }
    let delta = Record {
        string: Some(string_of(Some(&current)).set_delta(stamp, value)),
        expiry: expiry.map(|at| (stamp, at)),
        ..Record::default()
    };
    ctx.txn.apply(key, &delta);
}

enum Condition {
    Always,
    IfAbsent,
    IfPresent,
}

pub fn set(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(set_inner(ctx, args))
}

fn set_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Result<Reply, Reply> {
    let (key, value) = (&args[1], &args[2]);
    let mut condition = Condition::Always;
    let mut get_old = false;
    let mut expiry: Option<Option<u64>> = Some(None);
    let mut expiry_given = false;
    let mut i = 3;
    while i < args.len() {
        let opt = args[i].to_ascii_uppercase();
        let has_next = i + 1 < args.len();
        match opt.as_slice() {
            b"NX" if !matches!(condition, Condition::IfPresent) => condition = Condition::IfAbsent,
            b"XX" if !matches!(condition, Condition::IfAbsent) => condition = Condition::IfPresent,
            b"GET" => get_old = true,
            b"KEEPTTL" if !expiry_given => {
                expiry = None;
                expiry_given = true;
            }
            b"EX" | b"PX" | b"EXAT" | b"PXAT" if !expiry_given && has_next => {
                let n = int_arg(&args[i + 1])?;
                let at = deadline(ctx.txn.now_ms(), &opt, n)
                    .ok_or_else(|| Reply::err("ERR invalid expire time in 'set' command"))?;
                expiry = Some(Some(at));
                expiry_given = true;
                i += 1;
            }
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
        i += 1;
    }
    let now_ms = ctx.txn.now_ms();
    let old = match ctx.txn.live(key) {
        None => None,
        Some(r) if r.live_kind(now_ms) == Some(Kind::String) => Some(value_of(Some(r))),
        Some(_) if get_old => return Err(Reply::err(ERR_WRONGTYPE)),
        Some(_) => Some(None),
    };
    let exists = old.is_some();
    let old_reply = || old.clone().flatten().map_or(Reply::Null, Reply::Bulk);
    let go = match condition {
        Condition::Always => true,
        Condition::IfAbsent => !exists,
        Condition::IfPresent => exists,
    };
    if !go {
        return Ok(if get_old { old_reply() } else { Reply::Null });
    }
    write_string(ctx, key, value.clone(), expiry);
    Ok(if get_old { old_reply() } else { Reply::OK })
}

/// The absolute deadline for `EX`/`PX`/`EXAT`/`PXAT n`, or `None` when Redis calls it invalid.
pub(super) fn deadline(now_ms: u64, unit: &[u8], n: i64) -> Option<u64> {
    if n <= 0 {
        return None;
    }
    let n = n as u64;
    let at = match unit {
        b"EX" => n.checked_mul(1000)?.checked_add(now_ms)?,
        b"PX" => n.checked_add(now_ms)?,
        b"EXAT" => n.checked_mul(1000)?,
        _ => n,
    };
    // Any deadline Redis takes: milliseconds that fit a signed 64-bit integer.
    (at <= i64::MAX as u64).then_some(at)
}

pub fn mset(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    if args.len().is_multiple_of(2) {
        return Reply::wrong_arity("mset");
    }
    for pair in args[1..].chunks(2) {
        write_string(ctx, &pair[0], pair[1].clone(), Some(None));
    }
    Reply::OK
}

/// `SET` with the options `extra`, for the commands that are its older forms.
fn set_with(
    ctx: &mut Ctx<'_, '_>,
    key: &Bytes,
    value: &Bytes,
    extra: &[&'static [u8]],
) -> Result<Reply, Reply> {
    let mut args = vec![Bytes::from_static(b"set"), key.clone(), value.clone()];
    args.extend(extra.iter().map(|o| Bytes::from_static(o)));
    set_inner(ctx, &args)
}

/// `SETNX key value`: 1 when it set the key, 0 when the key existed (of any type).
pub fn setnx(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match set_with(ctx, &args[1], &args[2], &[b"NX"]) {
        Ok(Reply::Null) => Reply::Int(0),
        Ok(_) => Reply::Int(1),
        Err(e) => e,
    }
}

/// `SETEX key seconds value`.
pub fn setex(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    set_expiring(ctx, args, b"EX", "setex")
}

/// `PSETEX key milliseconds value`.
pub fn psetex(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    set_expiring(ctx, args, b"PX", "psetex")
}

fn set_expiring(ctx: &mut Ctx<'_, '_>, args: &[Bytes], unit: &[u8], name: &str) -> Reply {
    let n = match int_arg(&args[2]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let Some(at) = deadline(ctx.txn.now_ms(), unit, n) else {
        return Reply::Error(format!("ERR invalid expire time in '{name}' command"));
    };
    write_string(ctx, &args[1], args[3].clone(), Some(Some(at)));
    Reply::OK
}

/// `GETSET key value`: `SET key value GET`.
pub fn getset(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(set_with(ctx, &args[1], &args[2], &[b"GET"]))
}

/// `MSETNX key value [key value ...]`: sets them all only if none exists.
pub fn msetnx(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    if args.len().is_multiple_of(2) {
        return Reply::wrong_arity("msetnx");
    }
    if args[1..]
        .chunks(2)
        .any(|pair| ctx.txn.live(&pair[0]).is_some())
    {
        return Reply::Int(0);
    }
    mset(ctx, args);
    Reply::Int(1)
}

pub fn getdel(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let value = match typed(ctx, key, Kind::String) {
        Ok(r) => value_of(r),
        Err(e) => return e,
    };
    if value.is_some() {
        let stamp = ctx.txn.stamp();
        ctx.txn.delete(key, stamp);
    }
    value.map_or(Reply::Null, Reply::Bulk)
}

fn incr_by(ctx: &mut Ctx<'_, '_>, key: &Bytes, by: i64) -> Reply {
    let current = match typed_for_write(ctx, key, Kind::String) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let string = string_of(Some(&current));
    let Ok(value) = string.counter() else {
        return Reply::err(ERR_NOT_INTEGER);
    };
    let Some(new) = value.checked_add(by) else {
        return Reply::err(ERR_OVERFLOW);
    };
    let stamp = ctx.txn.stamp();
    let delta = Record {
        string: Some(string.incr_delta(stamp, by)),
        ..Record::default()
    };
    ctx.txn.apply(key, &delta);
    Reply::Int(new)
}

pub fn incr(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    incr_by(ctx, &args[1], 1)
}

pub fn decr(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    incr_by(ctx, &args[1], -1)
}

pub fn incrby(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match int_arg(&args[2]) {
        Ok(by) => incr_by(ctx, &args[1], by),
        Err(e) => e,
    }
}

pub fn decrby(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match int_arg(&args[2]) {
        Ok(i64::MIN) => Reply::err("ERR decrement would overflow"),
        Ok(by) => incr_by(ctx, &args[1], -by),
        Err(e) => e,
    }
}

/// INCRBYFLOAT writes its result as a plain value: concurrent float increments in different
/// regions are last-writer-wins, not summed (integer counters are the summing type).
pub fn incrbyfloat(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let Some(by) = resp::args::parse_f64(&args[2]) else {
        return Reply::err(ERR_NOT_FLOAT);
    };
    let current = match typed_for_write(ctx, key, Kind::String) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let value = match value_of(Some(&current)) {
        None => 0.0,
        Some(v) => match resp::args::parse_f64(&v) {
            Some(f) => f,
            None => return Reply::err(ERR_NOT_FLOAT),
        },
    };
    let new = value + by;
    if !new.is_finite() {
        return Reply::err("ERR increment would produce NaN or Infinity");
    }
    let text = Bytes::from(resp::args::format_f64(new));
    write_string(ctx, key, text.clone(), None);
    Reply::Bulk(text)
}

pub fn strlen(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match typed(ctx, &args[1], Kind::String) {
        Ok(r) => Reply::Int(value_of(r).map_or(0, |v| v.len() as i64)),
        Err(e) => e,
    }
}

pub fn append(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let current = match typed_for_write(ctx, key, Kind::String) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let mut value = value_of(Some(&current))
        .map(|v| v.to_vec())
        .unwrap_or_default();
    if value.len() + args[2].len() > ctx.state.max_value_len {
        return Reply::err("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
    }
    value.extend_from_slice(&args[2]);
    let len = value.len() as i64;
    write_string(ctx, key, Bytes::from(value), None);
    Reply::Int(len)
}

/// The range `[start, end]` of something `len` long (bytes or bits), with negative indexes
/// from the end, clamped as `GETRANGE` and `BITCOUNT` clamp it; `None` when it is empty.
fn clamp_range(len: usize, start: i64, end: i64) -> Option<(usize, usize)> {
    let len = len as i64;
    let index = |i: i64| if i < 0 { (len + i).max(0) } else { i };
    let (start, end) = (index(start), index(end).min(len - 1));
    (len > 0 && start <= end).then_some((start as usize, end as usize))
}

/// `GETRANGE key start end` (and `SUBSTR`, its old name).
pub fn getrange(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let (start, end) = match (int_arg(&args[2]), int_arg(&args[3])) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let value = match typed(ctx, &args[1], Kind::String) {
        Ok(r) => value_of(r).unwrap_or_default(),
        Err(e) => return e,
    };
    if start < 0 && end < 0 && start > end {
        return Reply::Bulk(Bytes::new());
    }
    match clamp_range(value.len(), start, end) {
        Some((s, e)) => Reply::Bulk(value.slice(s..=e)),
        None => Reply::Bulk(Bytes::new()),
    }
}

/// `SETRANGE key offset value`: the key's bytes from `offset` on are overwritten (zero bytes
/// fill any gap). The whole string stays one last-writer-wins value.
pub fn setrange(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let offset = match int_arg(&args[2]) {
        Ok(o) if o >= 0 => o as usize,
        Ok(_) => return Reply::err("ERR offset is out of range"),
        Err(e) => return e,
    };
    let current = match typed_for_write(ctx, key, Kind::String) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let value = value_of(Some(&current)).unwrap_or_default();
    let patch = &args[3];
    if patch.is_empty() {
        return Reply::Int(value.len() as i64);
    }
    if offset.saturating_add(patch.len()) > ctx.state.max_value_len {
        return Reply::err("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
    }
    let mut bytes = value.to_vec();
    if bytes.len() < offset + patch.len() {
        bytes.resize(offset + patch.len(), 0);
    }
    bytes[offset..offset + patch.len()].copy_from_slice(patch);
    let len = bytes.len() as i64;
    write_string(ctx, key, Bytes::from(bytes), None);
    Reply::Int(len)
}

/// `GETEX key [EX s | PX ms | EXAT t | PXAT t | PERSIST]`: the value, with the deadline set or
/// removed.
pub fn getex(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(getex_inner(ctx, args))
}

fn getex_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Result<Reply, Reply> {
    let key = &args[1];
    let now_ms = ctx.txn.now_ms();
    // None: leave the deadline; Some(None): remove it; Some(Some(at)): set it.
    let change: Option<Option<u64>> = match &args[2..] {
        [] => None,
        [word] if word.eq_ignore_ascii_case(b"PERSIST") => Some(None),
        [unit, n] => {
            let unit = unit.to_ascii_uppercase();
            if !matches!(unit.as_slice(), b"EX" | b"PX" | b"EXAT" | b"PXAT") {
                return Err(Reply::err(ERR_SYNTAX));
            }
            let n = int_arg(n)?;
            let at = deadline(now_ms, &unit, n)
                .ok_or_else(|| Reply::err("ERR invalid expire time in 'getex' command"))?;
            Some(Some(at))
        }
        _ => return Err(Reply::err(ERR_SYNTAX)),
    };
    let Some(value) = value_of(typed(ctx, key, Kind::String)?) else {
        return Ok(Reply::Null);
    };
    let current = ctx.txn.live(key).and_then(|s| s.record.expires_at_ms());
    match change {
        None => {}
        Some(None) if current.is_none() => {}
        Some(at) => {
            let stamp = ctx.txn.stamp();
            ctx.txn.apply(key, &Record::expiry_delta(stamp, at));
        }
    }
    Ok(Reply::Bulk(value))
}

/// Bit offsets `SETBIT` takes: a string grows to at most 512 MB, as in Redis.
const BIT_OFFSET_MAX: i64 = (512 << 20) * 8 - 1;

/// `SETBIT key offset value`: the bit (most significant first in each byte) is set, the
/// string growing with zero bytes; answers the bit's old value. The whole string stays one
/// last-writer-wins value.
pub fn setbit(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let Some(offset) = resp::args::parse_i64(&args[2]).filter(|o| (0..=BIT_OFFSET_MAX).contains(o))
    else {
        return Reply::err("ERR bit offset is not an integer or out of range");
    };
    let on = match args[3].as_ref() {
        b"0" => false,
        b"1" => true,
        _ => return Reply::err("ERR bit is not an integer or out of range"),
    };
    let current = match typed_for_write(ctx, key, Kind::String) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let (byte, mask) = ((offset / 8) as usize, 0x80u8 >> (offset % 8));
    if byte + 1 > ctx.state.max_value_len {
        return Reply::err("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
    }
    let mut bytes = value_of(Some(&current))
        .map(|v| v.to_vec())
        .unwrap_or_default();
    if bytes.len() <= byte {
        bytes.resize(byte + 1, 0);
    }
    let old = bytes[byte] & mask != 0;
    if on {
        bytes[byte] |= mask;
    } else {
        bytes[byte] &= !mask;
    }
    write_string(ctx, key, Bytes::from(bytes), None);
    Reply::Int(i64::from(old))
}

/// `GETBIT key offset`.
pub fn getbit(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let Some(offset) = resp::args::parse_i64(&args[2]).filter(|o| (0..=BIT_OFFSET_MAX).contains(o))
    else {
        return Reply::err("ERR bit offset is not an integer or out of range");
    };
    let value = match typed(ctx, &args[1], Kind::String) {
        Ok(r) => value_of(r).unwrap_or_default(),
        Err(e) => return e,
    };
    let bit = value
        .get((offset / 8) as usize)
        .is_some_and(|b| b & (0x80 >> (offset % 8)) != 0);
    Reply::Int(i64::from(bit))
}

/// The range `[start, end]` of `BITCOUNT`/`BITPOS` in bits, from arguments in bytes or bits
/// (negative from the end), clamped to a value of `len` bytes; `None` when empty.
fn bit_range(len: usize, start: i64, end: i64, in_bits: bool) -> Option<(u64, u64)> {
    if in_bits {
        clamp_range(len * 8, start, end).map(|(s, e)| (s as u64, e as u64))
    } else {
        clamp_range(len, start, end).map(|(s, e)| (s as u64 * 8, e as u64 * 8 + 7))
    }
}

/// Parses `[start end [BYTE|BIT]]` after `args[at]`; `end` may be left out when `optional_end`.
fn range_args(
    args: &[Bytes],
    at: usize,
    optional_end: bool,
) -> Result<Option<(i64, Option<i64>, bool)>, Reply> {
    let rest = &args[at..];
    if rest.is_empty() {
        return Ok(None);
    }
    if rest.len() == 1 && !optional_end || rest.len() > 3 {
        return Err(Reply::err(ERR_SYNTAX));
    }
    let start = int_arg(&rest[0])?;
    let end = rest.get(1).map(|e| int_arg(e)).transpose()?;
    let in_bits = match rest.get(2) {
        None => false,
        Some(u) if u.eq_ignore_ascii_case(b"BYTE") => false,
        Some(u) if u.eq_ignore_ascii_case(b"BIT") => true,
        Some(_) => return Err(Reply::err(ERR_SYNTAX)),
    };
    Ok(Some((start, end, in_bits)))
}

fn bit_at(value: &[u8], bit: u64) -> bool {
    value[(bit / 8) as usize] & (0x80 >> (bit % 8)) != 0
}

/// `BITCOUNT key [start end [BYTE|BIT]]`.
pub fn bitcount(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(bitcount_inner(ctx, args))
}

fn bitcount_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Result<Reply, Reply> {
    let range = range_args(args, 2, false)?;
    let value = value_of(typed(ctx, &args[1], Kind::String)?).unwrap_or_default();
    let (start, end, in_bits) = match range {
        None => (0, -1, false),
        Some((s, e, b)) => (s, e.unwrap_or(-1), b),
    };
    // As Redis: both from the end and crossed is empty, before clamping.
    if start < 0 && end < 0 && start > end {
        return Ok(Reply::Int(0));
    }
    let Some((first, last)) = bit_range(value.len(), start, end, in_bits) else {
        return Ok(Reply::Int(0));
    };
    Ok(Reply::Int(
        (first..=last).filter(|&b| bit_at(&value, b)).count() as i64,
    ))
}

/// `BITPOS key bit [start [end [BYTE|BIT]]]`: the first bit set to `bit` in the range. Looking
/// for a 0 with no end given, the string counts as followed by zeros, as in Redis.
pub fn bitpos(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(bitpos_inner(ctx, args))
}

fn bitpos_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Result<Reply, Reply> {
    let want = match int_arg(&args[2])? {
        0 => false,
        1 => true,
        _ => return Err(Reply::err("ERR The bit argument must be 1 or 0.")),
    };
    let range = range_args(args, 3, true)?;
    let Some(value) = value_of(typed(ctx, &args[1], Kind::String)?) else {
        return Ok(Reply::Int(if want { -1 } else { 0 }));
    };
    let (start, end, in_bits, end_given) = match range {
        None => (0, -1, false, false),
        Some((s, e, b)) => (s, e.unwrap_or(-1), b, e.is_some()),
    };
    let Some((first, last)) = bit_range(value.len(), start, end, in_bits) else {
        return Ok(Reply::Int(-1));
    };
    if let Some(pos) = (first..=last).find(|&b| bit_at(&value, b) == want) {
        return Ok(Reply::Int(pos as i64));
    }
    Ok(Reply::Int(match want || end_given {
        true => -1,
        // No 0 in the range and no end given: the first bit past the string.
        false => (last + 1) as i64,
    }))
}

/// `BITOP AND|OR|XOR|NOT destkey key [key ...]`: the result (as long as the longest source,
/// shorter ones counted as zero-padded) replaces `destkey`; an empty result deletes it.
pub fn bitop(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(bitop_inner(ctx, args))
}

fn bitop_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Result<Reply, Reply> {
    let op = args[1].to_ascii_uppercase();
    if !matches!(op.as_slice(), b"AND" | b"OR" | b"XOR" | b"NOT") {
        return Err(Reply::err(ERR_SYNTAX));
    }
    let sources = &args[3..];
    if op == b"NOT" && sources.len() != 1 {
        return Err(Reply::err(
            "ERR BITOP NOT must be called with a single source key.",
        ));
    }
    let mut values = Vec::with_capacity(sources.len());
    for key in sources {
        values.push(value_of(typed(ctx, key, Kind::String)?).unwrap_or_default());
    }
    let len = values.iter().map(Bytes::len).max().unwrap_or(0);
    let byte = |v: &Bytes, i: usize| v.get(i).copied().unwrap_or(0);
    let result: Vec<u8> = (0..len)
        .map(|i| {
            let mut bytes = values.iter().map(|v| byte(v, i));
            let first = bytes.next().unwrap_or(0);
            match op.as_slice() {
                b"AND" => bytes.fold(first, |a, b| a & b),
                b"OR" => bytes.fold(first, |a, b| a | b),
                b"XOR" => bytes.fold(first, |a, b| a ^ b),
                _ => !first,
            }
        })
        .collect();
    let dest = &args[2];
    if result.is_empty() {
        if ctx.txn.live(dest).is_some() {
            let stamp = ctx.txn.stamp();
            ctx.txn.delete(dest, stamp);
        }
    } else {
        write_string(ctx, dest, Bytes::from(result), Some(None));
    }
    Ok(Reply::Int(len as i64))
}

/// Most cells of the table `LCS` fills ((len1 + 1) × (len2 + 1), 4 bytes each): 64 MiB.
const LCS_CELLS_MAX: usize = 1 << 24;

/// `LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]`: the longest common subsequence
/// of two strings (missing keys count as empty), its length, or the matching ranges, walked
/// as Redis walks them.
pub fn lcs(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(lcs_inner(ctx, args))
}

fn lcs_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Result<Reply, Reply> {
    let mut strings = Vec::with_capacity(2);
    for key in &args[1..3] {
        match typed(ctx, key, Kind::String) {
            Ok(r) => strings.push(value_of(r).unwrap_or_default()),
            Err(_) => {
                return Err(Reply::err(
                    "ERR The specified keys must contain string values",
                ));
            }
        }
    }
    let (mut len_only, mut idx, mut with_len, mut min_len) = (false, false, false, 0i64);
    let mut i = 3;
    while i < args.len() {
        match args[i].to_ascii_uppercase().as_slice() {
            b"LEN" => len_only = true,
            b"IDX" => idx = true,
            b"WITHMATCHLEN" => with_len = true,
            b"MINMATCHLEN" if i + 1 < args.len() => {
                min_len = int_arg(&args[i + 1])?.max(0);
                i += 1;
            }
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
        i += 1;
    }
    if len_only && idx {
        return Err(Reply::err(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    let (a, b) = (&strings[0], &strings[1]);
    let (n, m) = (a.len(), b.len());
    if (n + 1).saturating_mul(m + 1) > LCS_CELLS_MAX {
        return Err(Reply::Error(format!(
            "ERR LCS of strings this long is refused here: at most {LCS_CELLS_MAX} table cells"
        )));
    }
    // table[i][j]: the LCS length of a[..i] and b[..j].
    let width = m + 1;
    let mut table = vec![0u32; (n + 1) * width];
    for i in 1..=n {
        for j in 1..=m {
            table[i * width + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    let total = table[n * width + m] as usize;
    if len_only {
        return Ok(Reply::Int(total as i64));
    }
    let mut common = vec![0u8; total];
    let mut matches = Vec::new();
    let (mut i, mut j, mut at) = (n, m, total);
    // The range being tracked, in a and in b; `None` between ranges.
    let mut range: Option<((usize, usize), (usize, usize))> = None;
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            common[at - 1] = a[i - 1];
            range = match range {
                None => Some(((i - 1, i - 1), (j - 1, j - 1))),
                Some(((a0, a1), (b0, b1))) if a0 == i && b0 == j => {
                    Some(((a0 - 1, a1), (b0 - 1, b1)))
                }
                Some(r) => {
                    emit = true;
                    Some(r)
                }
            };
            if range.is_some_and(|((a0, _), (b0, _))| a0 == 0 || b0 == 0) {
                emit = true;
            }
            at -= 1;
            i -= 1;
            j -= 1;
        } else {
            if table[(i - 1) * width + j] > table[i * width + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            emit = range.is_some();
        }
        if emit && let Some(((a0, a1), (b0, b1))) = range.take() {
            let len = (a1 - a0 + 1) as i64;
            if min_len == 0 || len >= min_len {
                let pair = |x: usize, y: usize| {
                    Reply::Array(vec![Reply::Int(x as i64), Reply::Int(y as i64)])
                };
                let mut item = vec![pair(a0, a1), pair(b0, b1)];
                if with_len {
                    item.push(Reply::Int(len));
                }
                matches.push(Reply::Array(item));
            }
        }
    }
    if !idx {
        return Ok(Reply::Bulk(Bytes::from(common)));
    }
    Ok(Reply::Map(vec![
        (Reply::bulk("matches"), Reply::Array(matches)),
        (Reply::bulk("len"), Reply::Int(total as i64)),
    ]))
}
