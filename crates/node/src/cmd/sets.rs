//! Sets: SADD, SREM, SMEMBERS, SISMEMBER, SCARD.

use super::{Ctx, typed, typed_for_write};
use bytes::Bytes;
use crdt::{Kind, Record, SetState};
use resp::Reply;
use std::collections::BTreeSet;

fn set_of(record: Option<&Record>) -> Option<&SetState> {
    record.and_then(|r| r.set.as_ref())
}

pub fn sadd(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let current = match typed_for_write(ctx, key, Kind::Set) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let members: BTreeSet<&Bytes> = args[2..].iter().collect();
    let added = members
        .iter()
        .filter(|m| !set_of(Some(&current)).is_some_and(|s| s.contains(m)))
        .count();
    let stamp = ctx.txn.stamp();
    ctx.txn.apply(
        key,
        &Record {
            set: Some(SetState::add_delta(stamp, members)),
            ..Record::default()
        },
    );
    Reply::Int(added as i64)
}

pub fn srem(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let set = match typed(ctx, key, Kind::Set) {
        Ok(Some(r)) => r.set.clone().unwrap_or_default(),
        Ok(None) => return Reply::Int(0),
        Err(e) => return e,
    };
    let members: BTreeSet<&Bytes> = args[2..].iter().filter(|m| set.contains(m)).collect();
    if !members.is_empty() {
        ctx.txn.apply(
            key,
            &Record {
                set: Some(set.remove_delta(members.iter().copied())),
                ..Record::default()
            },
        );
    }
    Reply::Int(members.len() as i64)
}

pub fn smembers(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match typed(ctx, &args[1], Kind::Set) {
        Ok(r) => Reply::Set(
            set_of(r)
                .map(|s| s.members().cloned().map(Reply::Bulk).collect())
                .unwrap_or_default(),
        ),
        Err(e) => e,
    }
}

pub fn sismember(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match typed(ctx, &args[1], Kind::Set) {
        Ok(r) => Reply::Int(i64::from(set_of(r).is_some_and(|s| s.contains(&args[2])))),
        Err(e) => e,
    }
}

pub fn scard(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    match typed(ctx, &args[1], Kind::Set) {
        Ok(r) => Reply::Int(set_of(r).map_or(0, |s| s.len() as i64)),
        Err(e) => e,
    }
}
