//! Sets: SADD, SREM, SMEMBERS, SISMEMBER, SCARD.
//!
//! Each member is its own stored state, so a write touches only the members it names.

use super::{Ctx, typed, typed_for_write};
use bytes::Bytes;
use crdt::{Kind, Member};
use resp::Reply;
use std::collections::BTreeSet;

pub fn sadd(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let key = &args[1];
    if let Err(e) = typed_for_write(ctx, key, Kind::Set) {
        return e;
    }
    let stamp = ctx.txn.stamp();
    let mut added = 0;
    for m in args[2..].iter().collect::<BTreeSet<_>>() {
        if !ctx.txn.member(key, m).is_some_and(|s| s.present()) {
            added += 1;
        }
        ctx.txn
            .apply_member(key, m, &Member::add_delta(stamp), Some(stamp));
    }
    Reply::Int(added)
}

pub fn srem(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let key = &args[1];
    match typed(ctx, key, Kind::Set) {
        Ok(Some(_)) => {}
        Ok(None) => return Reply::Int(0),
        Err(e) => return e,
    }
    let mut removed = 0;
    for m in args[2..].iter().collect::<BTreeSet<_>>() {
        if let Some(current) = ctx.txn.member(key, m).filter(Member::present) {
            removed += 1;
            ctx.txn.apply_member(key, m, &current.remove_delta(), None);
        }
    }
    Reply::Int(removed)
}

pub fn smembers(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let key = &args[1];
    match typed(ctx, key, Kind::Set) {
        Ok(Some(_)) => {}
        Ok(None) => return Reply::Set(Vec::new()),
        Err(e) => return e,
    }
    let members = ctx.txn.all_members(key);
    Reply::Set(
        members
            .into_iter()
            .filter(|(_, m)| m.present())
            .map(|(k, _)| Reply::Bulk(k))
            .collect(),
    )
}

pub fn sismember(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let key = &args[1];
    match typed(ctx, key, Kind::Set) {
        Ok(Some(_)) => Reply::Int(i64::from(
            ctx.txn.member(key, &args[2]).is_some_and(|m| m.present()),
        )),
        Ok(None) => Reply::Int(0),
        Err(e) => e,
    }
}

/// `SMISMEMBER key member [member ...]`: 1 or 0 for each.
pub fn smismember(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let key = &args[1];
    match typed(ctx, key, Kind::Set) {
        Ok(Some(_)) => Reply::Array(
            (args[2..].iter())
                .map(|m| {
                    Reply::Int(i64::from(
                        ctx.txn.member(key, m).is_some_and(|m| m.present()),
                    ))
                })
                .collect(),
        ),
        Ok(None) => Reply::Array(vec![Reply::Int(0); args.len() - 2]),
        Err(e) => e,
    }
}

pub fn scard(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match typed(ctx, &args[1], Kind::Set) {
        Ok(s) => Reply::Int(s.map_or(0, |s| s.lens.set as i64)),
        Err(e) => e,
    }
}
