//! Hashes: HSET, HMSET, HSETNX, HGET, HMGET, HDEL, HGETALL, HLEN, HEXISTS, HSTRLEN, HINCRBY,
//! HINCRBYFLOAT, HKEYS, HVALS, HRANDFIELD.
//!
//! Each field is its own stored state, so a write touches only the fields it names.

use super::{Ctx, int_arg, random, typed, typed_for_write};
use bytes::Bytes;
use crdt::{Kind, StrState};
use resp::Reply;
use resp::args::ERR_OVERFLOW;
use std::collections::BTreeMap;

/// Sets field/value pairs; returns how many fields are new.
fn set_fields(ctx: &mut Ctx<'_, '_>, args: &[Bytes], name: &str) -> Result<i64, Reply> {
    if !args.len().is_multiple_of(2) {
        return Err(Reply::wrong_arity(name));
    }
    let key = &args[1];
    typed_for_write(ctx, key, Kind::Hash)?;
    let stamp = ctx.txn.stamp();
    // A field named twice takes its last value, as in Redis.
    let pairs: BTreeMap<&Bytes, &Bytes> = args[2..].chunks(2).map(|p| (&p[0], &p[1])).collect();
    let mut added = 0;
    for (field, value) in pairs {
        let current = ctx.txn.field(key, field).unwrap_or_default();
        if !current.exists() {
            added += 1;
        }
        ctx.txn
            .apply_field(key, field, &current.set_delta(stamp, value.clone()), stamp);
    }
    Ok(added)
}

pub fn hset(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    set_fields(ctx, args, "hset").map_or_else(|e| e, Reply::Int)
}

/// `HSETNX key field value`: 1 when it set the field, 0 when the field existed.
pub fn hsetnx(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match field_value(ctx, &args[1], &args[2]) {
        Ok(Some(_)) => Reply::Int(0),
        Ok(None) => set_fields(ctx, args, "hsetnx").map_or_else(|e| e, |_| Reply::Int(1)),
        Err(e) => e,
    }
}

/// `HSTRLEN key field`: the length of the field's value, 0 when it is missing.
pub fn hstrlen(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match field_value(ctx, &args[1], &args[2]) {
        Ok(v) => Reply::Int(v.map_or(0, |v| v.len() as i64)),
        Err(e) => e,
    }
}

pub fn hmset(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    set_fields(ctx, args, "hmset").map_or_else(|e| e, |_| Reply::OK)
}

/// The value of a field of a live hash (`Ok(None)` when the key or field is missing).
fn field_value(ctx: &mut Ctx<'_, '_>, key: &Bytes, field: &Bytes) -> Result<Option<Bytes>, Reply> {
    if typed(ctx, key, Kind::Hash)?.is_none() {
        return Ok(None);
    }
    Ok(ctx.txn.field(key, field).and_then(|f| f.value()))
}

pub fn hget(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match field_value(ctx, &args[1], &args[2]) {
        Ok(v) => v.map_or(Reply::Null, Reply::Bulk),
        Err(e) => e,
    }
}

pub fn hmget(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let mut items = Vec::with_capacity(args.len() - 2);
    for field in &args[2..] {
        match field_value(ctx, &args[1], field) {
            Ok(v) => items.push(v.map_or(Reply::Null, Reply::Bulk)),
            Err(e) => return e,
        }
    }
    Reply::Array(items)
}

pub fn hexists(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match field_value(ctx, &args[1], &args[2]) {
        Ok(v) => Reply::Int(i64::from(v.is_some())),
        Err(e) => e,
    }
}

pub fn hdel(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let key = &args[1];
    match typed(ctx, key, Kind::Hash) {
        Ok(Some(_)) => {}
        Ok(None) => return Reply::Int(0),
        Err(e) => return e,
    }
    let stamp = ctx.txn.stamp();
    let mut removed = 0;
    for field in &args[2..] {
        if let Some(current) = ctx.txn.field(key, field).filter(StrState::exists) {
            removed += 1;
            ctx.txn
                .apply_field(key, field, &current.delete_delta(stamp), stamp);
        }
    }
    Reply::Int(removed)
}

/// Live fields and values of a live hash, in byte order of the field names.
pub(super) fn entries(ctx: &mut Ctx<'_, '_>, key: &Bytes) -> Result<Vec<(Bytes, Bytes)>, Reply> {
    if typed(ctx, key, Kind::Hash)?.is_none() {
        return Ok(Vec::new());
    }
    Ok(ctx
        .txn
        .all_fields(key)
        .into_iter()
        .filter_map(|(k, f)| f.value().map(|v| (k, v)))
        .collect())
}

pub fn hgetall(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match entries(ctx, &args[1]) {
        Ok(e) => Reply::Map(
            e.into_iter()
                .map(|(k, v)| (Reply::Bulk(k), Reply::Bulk(v)))
                .collect(),
        ),
        Err(e) => e,
    }
}

pub fn hkeys(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match entries(ctx, &args[1]) {
        Ok(e) => Reply::Array(e.into_iter().map(|(k, _)| Reply::Bulk(k)).collect()),
        Err(e) => e,
    }
}

pub fn hvals(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match entries(ctx, &args[1]) {
        Ok(e) => Reply::Array(e.into_iter().map(|(_, v)| Reply::Bulk(v)).collect()),
        Err(e) => e,
    }
}

pub fn hlen(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match typed(ctx, &args[1], Kind::Hash) {
        Ok(s) => Reply::Int(s.map_or(0, |s| s.lens.hash as i64)),
        Err(e) => e,
    }
}

pub fn hincrby(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let (key, name) = (&args[1], &args[2]);
    let by = match int_arg(&args[3]) {
        Ok(by) => by,
        Err(e) => return e,
    };
    if let Err(e) = typed_for_write(ctx, key, Kind::Hash) {
        return e;
    }
    let field = ctx.txn.field(key, name).unwrap_or_default();
    let Ok(value) = field.counter() else {
        return Reply::err("ERR hash value is not an integer");
    };
    let Some(new) = value.checked_add(by) else {
        return Reply::err(ERR_OVERFLOW);
    };
    let stamp = ctx.txn.stamp();
    ctx.txn
        .apply_field(key, name, &field.incr_delta(stamp, by), stamp);
    Reply::Int(new)
}

/// `HINCRBYFLOAT key field increment`: the field becomes the sum, written as a value (last
/// writer wins, as `INCRBYFLOAT` on a string).
pub fn hincrbyfloat(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let (key, name) = (&args[1], &args[2]);
    let Some(by) = resp::args::parse_f64(&args[3]) else {
        return Reply::err(resp::args::ERR_NOT_FLOAT);
    };
    if by.is_infinite() {
        return Reply::err("ERR value is NaN or Infinity");
    }
    if let Err(e) = typed_for_write(ctx, key, Kind::Hash) {
        return e;
    }
    let field = ctx.txn.field(key, name).unwrap_or_default();
    let value = match field.value() {
        None => 0.0,
        Some(v) => match resp::args::parse_f64(&v) {
            Some(f) => f,
            None => return Reply::err("ERR hash value is not a float"),
        },
    };
    // Redis 7.0 lets a sum overflow to `inf` here (unlike INCRBYFLOAT); so does this.
    let new = value + by;
    let text = Bytes::from(resp::args::format_f64(new));
    let stamp = ctx.txn.stamp();
    ctx.txn
        .apply_field(key, name, &field.set_delta(stamp, text.clone()), stamp);
    Reply::Bulk(text)
}

/// `HRANDFIELD key [count [WITHVALUES]]`: random fields; a negative count may repeat them
/// (`random.rs` says how they are picked).
pub fn hrandfield(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let count = match random::count_arg(args.get(2)) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let with_values = match args.get(3) {
        None => false,
        Some(w) if w.eq_ignore_ascii_case(b"WITHVALUES") && args.len() == 4 => true,
        Some(_) => return Reply::err(resp::args::ERR_SYNTAX),
    };
    let len = match typed(ctx, key, Kind::Hash) {
        Ok(h) => h.map_or(0, |h| h.lens.hash as usize),
        Err(e) => return e,
    };
    let picked: Vec<(Bytes, StrState)> = match count {
        None => {
            return (random::parts::<StrState>(ctx, key, len, 1).into_iter())
                .next()
                .map_or(Reply::Null, |(f, _)| Reply::Bulk(f));
        }
        Some(n) if n >= 0 => random::parts(ctx, key, len, n as usize),
        Some(n) => {
            let n = n.unsigned_abs();
            let pool = random::parts::<StrState>(ctx, key, len, random::pool(n, len));
            random::pick_repeating(&pool, n)
        }
    };
    let value = |f: StrState| Reply::Bulk(f.value().unwrap_or_default());
    if with_values {
        Reply::Pairs(
            (picked.into_iter())
                .map(|(name, f)| (Reply::Bulk(name), value(f)))
                .collect(),
        )
    } else {
        Reply::Array(picked.into_iter().map(|(f, _)| Reply::Bulk(f)).collect())
    }
}

/// `HSCAN key cursor [MATCH pattern] [COUNT count]`: fields with their values.
pub fn hscan(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let items = match entries(ctx, &args[1]) {
        Ok(fields) => fields.into_iter().map(|(f, v)| (f, Some(v))).collect(),
        Err(e) => return e,
    };
    super::reply(super::keys::scan_collection(ctx, args, items))
}
