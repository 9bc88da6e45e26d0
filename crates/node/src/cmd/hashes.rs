//! Hashes: HSET, HMSET, HGET, HMGET, HDEL, HGETALL, HLEN, HEXISTS, HINCRBY, HKEYS, HVALS.

use super::{Ctx, int_arg, typed, typed_for_write};
use bytes::Bytes;
use crdt::{HashState, Kind, Merge, Record};
use resp::Reply;
use resp::args::ERR_OVERFLOW;

fn hash_of(record: Option<&Record>) -> Option<&HashState> {
    record.and_then(|r| r.hash.as_ref())
}

/// Sets field/value pairs; returns how many fields are new.
fn set_fields(ctx: &mut Ctx<'_, '_>, args: &[Bytes], name: &str) -> Result<i64, Reply> {
    if !args.len().is_multiple_of(2) {
        return Err(Reply::wrong_arity(name));
    }
    let key = &args[1];
    let current = typed_for_write(ctx, key, Kind::Hash)?;
    let hash = current.hash.unwrap_or_default();
    let stamp = ctx.txn.stamp();
    let mut delta = HashState::default();
    let mut added = 0;
    for pair in args[2..].chunks(2) {
        let field = hash.field(&pair[0]).cloned().unwrap_or_default();
        let fresh = !field.exists() && hash_of_delta_missing(&delta, &pair[0]);
        if fresh {
            added += 1;
        }
        delta.merge(&HashState::field_delta(
            pair[0].clone(),
            field.set_delta(stamp, pair[1].clone()),
        ));
    }
    ctx.txn.apply(
        key,
        &Record {
            hash: Some(delta),
            ..Record::default()
        },
    );
    Ok(added)
}

/// Whether the delta being built has not yet set `field` (a field named twice counts once).
fn hash_of_delta_missing(delta: &HashState, field: &[u8]) -> bool {
    delta.field(field).is_none()
}

pub fn hset(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    set_fields(ctx, args, "hset").map_or_else(|e| e, Reply::Int)
}

pub fn hmset(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    set_fields(ctx, args, "hmset").map_or_else(|e| e, |_| Reply::OK)
}

pub fn hget(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match typed(ctx, &args[1], Kind::Hash) {
        Ok(r) => hash_of(r)
            .and_then(|h| h.get(&args[2]))
            .map_or(Reply::Null, Reply::Bulk),
        Err(e) => e,
    }
}

pub fn hmget(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match typed(ctx, &args[1], Kind::Hash) {
        Ok(r) => {
            let h = hash_of(r);
            Reply::Array(
                args[2..]
                    .iter()
                    .map(|f| h.and_then(|h| h.get(f)).map_or(Reply::Null, Reply::Bulk))
                    .collect(),
            )
        }
        Err(e) => e,
    }
}

pub fn hdel(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let current = match typed(ctx, key, Kind::Hash) {
        Ok(Some(r)) => r.clone(),
        Ok(None) => return Reply::Int(0),
        Err(e) => return e,
    };
    let hash = current.hash.unwrap_or_default();
    let stamp = ctx.txn.stamp();
    let mut delta = HashState::default();
    let mut removed = 0;
    for name in &args[2..] {
        if let Some(field) = hash.field(name).filter(|f| f.exists())
            && hash_of_delta_missing(&delta, name)
        {
            removed += 1;
            delta.merge(&HashState::field_delta(
                name.clone(),
                field.delete_delta(stamp),
            ));
        }
    }
    if removed > 0 {
        ctx.txn.apply(
            key,
            &Record {
                hash: Some(delta),
                ..Record::default()
            },
        );
    }
    Reply::Int(removed)
}

pub fn hgetall(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match typed(ctx, &args[1], Kind::Hash) {
        Ok(r) => Reply::Map(
            hash_of(r)
                .map(|h| {
                    h.entries()
                        .map(|(k, v)| (Reply::Bulk(k.clone()), Reply::Bulk(v)))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        Err(e) => e,
    }
}

pub fn hlen(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match typed(ctx, &args[1], Kind::Hash) {
        Ok(r) => Reply::Int(hash_of(r).map_or(0, |h| h.len() as i64)),
        Err(e) => e,
    }
}

pub fn hexists(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match typed(ctx, &args[1], Kind::Hash) {
        Ok(r) => Reply::Int(i64::from(
            hash_of(r).and_then(|h| h.get(&args[2])).is_some(),
        )),
        Err(e) => e,
    }
}

pub fn hincrby(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let (key, name) = (&args[1], &args[2]);
    let by = match int_arg(&args[3]) {
        Ok(by) => by,
        Err(e) => return e,
    };
    let current = match typed_for_write(ctx, key, Kind::Hash) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let field = current
        .hash
        .as_ref()
        .and_then(|h| h.field(name))
        .cloned()
        .unwrap_or_default();
    let Ok(value) = field.counter() else {
        return Reply::err("ERR hash value is not an integer");
    };
    let Some(new) = value.checked_add(by) else {
        return Reply::err(ERR_OVERFLOW);
    };
    let stamp = ctx.txn.stamp();
    let delta = HashState::field_delta(name.clone(), field.incr_delta(stamp, by));
    ctx.txn.apply(
        key,
        &Record {
            hash: Some(delta),
            ..Record::default()
        },
    );
    Reply::Int(new)
}

pub fn hkeys(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match typed(ctx, &args[1], Kind::Hash) {
        Ok(r) => Reply::Array(
            hash_of(r)
                .map(|h| h.entries().map(|(k, _)| Reply::Bulk(k.clone())).collect())
                .unwrap_or_default(),
        ),
        Err(e) => e,
    }
}

pub fn hvals(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match typed(ctx, &args[1], Kind::Hash) {
        Ok(r) => Reply::Array(
            hash_of(r)
                .map(|h| h.entries().map(|(_, v)| Reply::Bulk(v)).collect())
                .unwrap_or_default(),
        ),
        Err(e) => e,
    }
}
