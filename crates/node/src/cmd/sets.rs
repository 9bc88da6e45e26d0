//! Sets: SADD, SREM, SMEMBERS, SISMEMBER, SMISMEMBER, SCARD, the set algebra (SINTER, SUNION,
//! SDIFF, their STORE forms, SINTERCARD), SMOVE, SPOP, SRANDMEMBER.
//!
//! Each member is its own stored state, so a write touches only the members it names.

use super::{Ctx, random, typed, typed_for_write};
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
    members_of(ctx, &args[1]).map_or_else(|e| e, set_reply)
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

/// The present members of the set at `key` (none when absent), or WRONGTYPE.
pub(super) fn members_of(ctx: &mut Ctx<'_, '_>, key: &Bytes) -> Result<BTreeSet<Bytes>, Reply> {
    if typed(ctx, key, Kind::Set)?.is_none() {
        return Ok(BTreeSet::new());
    }
    Ok((ctx.txn.all_members(key).into_iter())
        .filter(|(_, m)| m.present())
        .map(|(name, _)| name)
        .collect())
}

#[derive(Clone, Copy)]
enum Algebra {
    Inter,
    Union,
    Diff,
}

/// The intersection, union or difference of the sets at `keys` (every key is checked for its
/// type first, as Redis does).
fn combine(ctx: &mut Ctx<'_, '_>, keys: &[Bytes], op: Algebra) -> Result<BTreeSet<Bytes>, Reply> {
    let mut sets = Vec::with_capacity(keys.len());
    for key in keys {
        sets.push(members_of(ctx, key)?);
    }
    let mut sets = sets.into_iter();
    let first = sets.next().unwrap_or_default();
    Ok(sets.fold(first, |acc, s| match op {
        Algebra::Inter => acc.intersection(&s).cloned().collect(),
        Algebra::Union => acc.union(&s).cloned().collect(),
        Algebra::Diff => acc.difference(&s).cloned().collect(),
    }))
}

fn set_reply(members: BTreeSet<Bytes>) -> Reply {
    Reply::Set(members.into_iter().map(Reply::Bulk).collect())
}

pub fn sinter(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    combine(ctx, &args[1..], Algebra::Inter).map_or_else(|e| e, set_reply)
}

pub fn sunion(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    combine(ctx, &args[1..], Algebra::Union).map_or_else(|e| e, set_reply)
}

pub fn sdiff(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    combine(ctx, &args[1..], Algebra::Diff).map_or_else(|e| e, set_reply)
}

/// `S*STORE destination key [key ...]`: the result replaces `destination` (whatever it held;
/// deleted when the result is empty). Answers its size.
fn store(ctx: &mut Ctx<'_, '_>, args: &[Bytes], op: Algebra) -> Reply {
    let members = match combine(ctx, &args[2..], op) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let dest = &args[1];
    if ctx.txn.live(dest).is_some() {
        let stamp = ctx.txn.stamp();
        ctx.txn.delete(dest, stamp);
    }
    if !members.is_empty() {
        let stamp = ctx.txn.stamp();
        for m in &members {
            ctx.txn
                .apply_member(dest, m, &Member::add_delta(stamp), Some(stamp));
        }
    }
    Reply::Int(members.len() as i64)
}

pub fn sinterstore(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    store(ctx, args, Algebra::Inter)
}

pub fn sunionstore(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    store(ctx, args, Algebra::Union)
}

pub fn sdiffstore(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    store(ctx, args, Algebra::Diff)
}

/// `SINTERCARD numkeys key [key ...] [LIMIT limit]`.
pub fn sintercard(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply(sintercard_inner(ctx, args))
}

fn sintercard_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Result<Reply, Reply> {
    let numkeys = resp::args::parse_i64(&args[1])
        .filter(|n| *n > 0)
        .ok_or_else(|| Reply::err("ERR numkeys should be greater than 0"))?
        as usize;
    let rest = &args[2..];
    if numkeys > rest.len() {
        return Err(Reply::err(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    let mut limit = 0usize;
    match &rest[numkeys..] {
        [] => {}
        [word, n] if word.eq_ignore_ascii_case(b"LIMIT") => {
            limit = resp::args::parse_i64(n)
                .filter(|n| *n >= 0)
                .ok_or_else(|| Reply::err("ERR LIMIT can't be negative"))?
                as usize;
        }
        _ => return Err(Reply::err(resp::args::ERR_SYNTAX)),
    }
    let count = combine(ctx, &rest[..numkeys], Algebra::Inter)?.len();
    Ok(Reply::Int(match limit {
        0 => count,
        l => count.min(l),
    } as i64))
}

/// `SMOVE source destination member`.
pub fn smove(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let (src, dst, member) = (&args[1], &args[2], &args[3]);
    // As Redis: a missing source answers 0 before either type is checked.
    if ctx.txn.live(src).is_none() {
        return Reply::Int(0);
    }
    for key in [src, dst] {
        if let Err(e) = typed(ctx, key, Kind::Set) {
            return e;
        }
    }
    let present = ctx.txn.member(src, member).filter(Member::present);
    let Some(current) = present else {
        return Reply::Int(0);
    };
    if src != dst {
        ctx.txn
            .apply_member(src, member, &current.remove_delta(), None);
        // As Redis, a member already in the destination leaves it untouched (a `WATCH` on it
        // holds, and no `sadd` event fires).
        let there = ctx.txn.member(dst, member).is_some_and(|m| m.present());
        if !there {
            let stamp = ctx.txn.stamp();
            ctx.txn
                .apply_member(dst, member, &Member::add_delta(stamp), Some(stamp));
        }
    }
    Reply::Int(1)
}

/// `SPOP key [count]`: removes and answers random members (`random.rs` says how they are
/// picked: O(count) reads past a random point of a large set).
pub fn spop(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let count = match args.get(2).map(|c| resp::args::parse_i64(c)) {
        None => None,
        Some(Some(n)) if n >= 0 => Some(n as usize),
        Some(_) => return Reply::err("ERR value is out of range, must be positive"),
    };
    if args.len() > 3 {
        return Reply::err(resp::args::ERR_SYNTAX);
    }
    let len = match typed(ctx, key, Kind::Set) {
        Ok(s) => s.map_or(0, |s| s.lens.set as usize),
        Err(e) => return e,
    };
    let picked = random::parts::<Member>(ctx, key, len, count.unwrap_or(1));
    for (name, member) in &picked {
        ctx.txn
            .apply_member(key, name, &member.remove_delta(), None);
    }
    let mut names = picked.into_iter().map(|(name, _)| name);
    match count {
        None => names.next().map_or(Reply::Null, Reply::Bulk),
        Some(_) => set_reply(names.collect()),
    }
}

/// `SRANDMEMBER key [count]`: random members; a negative count may repeat them.
pub fn srandmember(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let count = match random::count_arg(args.get(2)) {
        Ok(c) => c,
        Err(e) => return e,
    };
    if args.len() > 3 {
        return Reply::err(resp::args::ERR_SYNTAX);
    }
    let len = match typed(ctx, key, Kind::Set) {
        Ok(s) => s.map_or(0, |s| s.lens.set as usize),
        Err(e) => return e,
    };
    let bulks = |picked: Vec<(Bytes, Member)>| -> Vec<Reply> {
        picked.into_iter().map(|(m, _)| Reply::Bulk(m)).collect()
    };
    match count {
        None => (random::parts::<Member>(ctx, key, len, 1).into_iter())
            .next()
            .map_or(Reply::Null, |(m, _)| Reply::Bulk(m)),
        Some(n) if n >= 0 => Reply::Array(bulks(random::parts(ctx, key, len, n as usize))),
        Some(n) => {
            let n = n.unsigned_abs();
            let pool = random::parts::<Member>(ctx, key, len, random::pool(n, len));
            Reply::Array(bulks(random::pick_repeating(&pool, n)))
        }
    }
}

/// `SSCAN key cursor [MATCH pattern] [COUNT count]`.
pub fn sscan(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let items = match members_of(ctx, &args[1]) {
        Ok(m) => m.into_iter().map(|m| (m, None)).collect(),
        Err(e) => return e,
    };
    super::reply(super::keys::scan_collection(ctx, args, items))
}
