//! Lists: the pushes (LPUSH RPUSH LPUSHX RPUSHX LINSERT), pops (LPOP RPOP LMOVE RPOPLPUSH
//! LMPOP), reads (LLEN LRANGE LINDEX LPOS) and edits (LSET LREM LTRIM). The blocking forms
//! run these on the connection's task (`server::blocking`).
//!
//! Each element is its own stored state under its position (`crdt::Position`), in list order,
//! so a push or a pop reads and writes only the elements at that end, and a range read walks
//! from the nearer end. Costs: pushes and pops O(k) for k elements; LINDEX, LSET and LRANGE
//! O(distance from the nearer end + elements returned); LLEN O(1); LINSERT, LREM and LPOS
//! O(elements walked); LTRIM O(elements removed). Removed elements stay as tombstones until
//! every region has seen the removal, and walks step over them meanwhile.

use super::{Ctx, int_arg, timeout_arg, typed, typed_for_write};
use bytes::Bytes;
use crdt::{Elem, Kind, Position};
use resp::Reply;
use resp::args::ERR_SYNTAX;

const ERR_NO_SUCH_KEY: &str = "ERR no such key";
const ERR_INDEX: &str = "ERR index out of range";

/// Which end of a list.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The head (`LEFT`).
    Left,
    /// The tail (`RIGHT`).
    Right,
}

impl End {
    fn parse(arg: &[u8]) -> Option<End> {
        if arg.eq_ignore_ascii_case(b"left") {
            Some(End::Left)
        } else if arg.eq_ignore_ascii_case(b"right") {
            Some(End::Right)
        } else {
            None
        }
    }
}

/// The list's length as this round sees it (0 when absent), or WRONGTYPE.
fn len_of(ctx: &mut Ctx<'_, '_>, key: &Bytes) -> Result<u64, Reply> {
    Ok(typed(ctx, key, Kind::List)?.map_or(0, |s| s.lens.list))
}

/// Up to `n` elements after skipping `skip`, walking from `end`: (position, value) in walk
/// order.
fn walk(ctx: &mut Ctx<'_, '_>, key: &Bytes, end: End, skip: u64, n: u64) -> Vec<(Bytes, Bytes)> {
    let mut out = Vec::new();
    let mut skipped = 0;
    if n == 0 {
        return out;
    }
    ctx.txn
        .walk_parts::<Elem>(key, end == End::Right, |pos, elem| {
            if let Some(v) = elem.value() {
                if skipped < skip {
                    skipped += 1;
                } else {
                    out.push((pos.clone(), v.clone()));
                }
            }
            (out.len() as u64) < n
        });
    out
}

/// The elements at indexes `start..=stop` (within `0..len`), in list order, read from the
/// nearer end.
fn slice(
    ctx: &mut Ctx<'_, '_>,
    key: &Bytes,
    len: u64,
    start: u64,
    stop: u64,
) -> Vec<(Bytes, Bytes)> {
    let n = stop - start + 1;
    if start <= len - 1 - stop {
        walk(ctx, key, End::Left, start, n)
    } else {
        let mut v = walk(ctx, key, End::Right, len - 1 - stop, n);
        v.reverse();
        v
    }
}

/// Redis's index rule: negative counts from the end. `None` when out of range.
fn index_in(len: u64, index: i64) -> Option<u64> {
    let i = if index < 0 {
        i128::from(len) + i128::from(index)
    } else {
        i128::from(index)
    };
    (0..i128::from(len)).contains(&i).then_some(i as u64)
}

/// Redis's range rule (LRANGE, LTRIM, ZRANGE): the indexes kept, or `None` when the range is
/// empty.
pub(super) fn range_in(len: u64, start: i64, stop: i64) -> Option<(u64, u64)> {
    let len = i128::from(len);
    let norm = |i: i64| {
        if i < 0 {
            len + i128::from(i)
        } else {
            i128::from(i)
        }
    };
    let start = norm(start).max(0);
    let stop = norm(stop).min(len - 1);
    (start <= stop && start < len).then_some((start as u64, stop as u64))
}

/// Pushes `values` at `end` of the list at `key` (which the caller checked is a list or
/// absent), in argument order: each `LPUSH`ed value goes before the previous one.
pub(super) fn push_values(ctx: &mut Ctx<'_, '_>, key: &Bytes, end: End, values: &[Bytes]) -> u64 {
    let neighbour = walk(ctx, key, end, 0, 1)
        .pop()
        .and_then(|(p, _)| Position::decode(&p));
    let stamp = ctx.txn.stamp();
    let positions = match end {
        End::Left => Position::prepend(neighbour.as_ref(), stamp, values.len()),
        End::Right => Position::append(neighbour.as_ref(), stamp, values.len()),
    };
    for (pos, value) in positions.iter().zip(values) {
        let delta = Elem::write_delta(stamp, value.clone());
        ctx.txn.apply_part(key, &pos.encode(), &delta, Some(stamp));
    }
    ctx.txn.raw(key).map_or(0, |s| s.lens.list)
}

fn push(ctx: &mut Ctx<'_, '_>, args: &[Bytes], end: End, only_existing: bool) -> Reply {
    let key = &args[1];
    match typed(ctx, key, Kind::List) {
        Err(e) => return e,
        Ok(None) if only_existing => return Reply::Int(0),
        Ok(_) => {}
    }
    ctx.txn.for_write(key);
    Reply::Int(push_values(ctx, key, end, &args[2..]) as i64)
}

pub fn lpush(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    push(ctx, args, End::Left, false)
}

pub fn rpush(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    push(ctx, args, End::Right, false)
}

pub fn lpushx(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    push(ctx, args, End::Left, true)
}

pub fn rpushx(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    push(ctx, args, End::Right, true)
}

/// Removes up to `n` elements from `end` of the list at `key` and returns them in pop order.
pub(super) fn pop_values(ctx: &mut Ctx<'_, '_>, key: &Bytes, end: End, n: u64) -> Vec<Bytes> {
    let taken = walk(ctx, key, end, 0, n);
    for (pos, _) in &taken {
        remove_at(ctx, key, pos);
    }
    taken.into_iter().map(|(_, v)| v).collect()
}

fn remove_at(ctx: &mut Ctx<'_, '_>, key: &Bytes, pos: &Bytes) {
    if let Some(elem) = ctx.txn.part::<Elem>(key, pos) {
        ctx.txn.apply_part(key, pos, &elem.remove_delta(), None);
    }
}

/// A positive count argument, with Redis's error text.
fn positive(arg: &[u8]) -> Result<u64, Reply> {
    match resp::args::parse_i64(arg) {
        Some(n) if n >= 0 => Ok(n as u64),
        _ => Err(Reply::err("ERR value is out of range, must be positive")),
    }
}

fn pop(ctx: &mut Ctx<'_, '_>, args: &[Bytes], end: End) -> Reply {
    super::reply((|| {
        if args.len() > 3 {
            let name = String::from_utf8_lossy(&args[0]).to_lowercase();
            return Err(Reply::Error(format!(
                "ERR wrong number of arguments for '{name}' command"
            )));
        }
        let count = args.get(2).map(|c| positive(c)).transpose()?;
        let key = &args[1];
        if len_of(ctx, key)? == 0 {
            return Ok(if count.is_some() {
                Reply::NullArray
            } else {
                Reply::Null
            });
        }
        Ok(match count {
            None => pop_values(ctx, key, end, 1)
                .pop()
                .map_or(Reply::Null, Reply::Bulk),
            Some(n) => Reply::Array(
                pop_values(ctx, key, end, n)
                    .into_iter()
                    .map(Reply::Bulk)
                    .collect(),
            ),
        })
    })())
}

pub fn lpop(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    pop(ctx, args, End::Left)
}

pub fn rpop(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    pop(ctx, args, End::Right)
}

pub fn llen(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply(len_of(ctx, &args[1]).map(|n| Reply::Int(n as i64)))
}

pub fn lrange(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply((|| {
        let (start, stop) = (int_arg(&args[2])?, int_arg(&args[3])?);
        let key = &args[1];
        let len = len_of(ctx, key)?;
        let Some((start, stop)) = range_in(len, start, stop) else {
            return Ok(Reply::Array(Vec::new()));
        };
        let items = slice(ctx, key, len, start, stop);
        Ok(Reply::Array(
            items.into_iter().map(|(_, v)| Reply::Bulk(v)).collect(),
        ))
    })())
}

/// The element at `index` (Redis's rule), as (position, value).
fn at_index(ctx: &mut Ctx<'_, '_>, key: &Bytes, len: u64, index: i64) -> Option<(Bytes, Bytes)> {
    let i = index_in(len, index)?;
    slice(ctx, key, len, i, i).pop()
}

pub fn lindex(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply((|| {
        let index = int_arg(&args[2])?;
        let key = &args[1];
        let len = len_of(ctx, key)?;
        Ok(at_index(ctx, key, len, index).map_or(Reply::Null, |(_, v)| Reply::Bulk(v)))
    })())
}

pub fn lset(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply((|| {
        let key = &args[1];
        let index = int_arg(&args[2])?;
        if typed(ctx, key, Kind::List)?.is_none() {
            return Err(Reply::err(ERR_NO_SUCH_KEY));
        }
        let len = len_of(ctx, key)?;
        let (pos, _) = at_index(ctx, key, len, index).ok_or_else(|| Reply::err(ERR_INDEX))?;
        let stamp = ctx.txn.stamp();
        let delta = Elem::write_delta(stamp, args[3].clone());
        ctx.txn.apply_part(key, &pos, &delta, Some(stamp));
        Ok(Reply::OK)
    })())
}

pub fn linsert(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply((|| {
        let key = &args[1];
        let before = if args[2].eq_ignore_ascii_case(b"before") {
            true
        } else if args[2].eq_ignore_ascii_case(b"after") {
            false
        } else {
            return Err(Reply::err(ERR_SYNTAX));
        };
        if typed(ctx, key, Kind::List)?.is_none() {
            return Ok(Reply::Int(0));
        }
        // The pivot's position and its present neighbour on the side of the insert.
        let pivot = &args[3];
        let mut prev: Option<Bytes> = None;
        let mut found: Option<(Option<Bytes>, Bytes)> = None;
        let mut next: Option<Bytes> = None;
        ctx.txn.walk_parts::<Elem>(key, false, |pos, elem| {
            let Some(v) = elem.value() else { return true };
            if found.is_some() {
                next = Some(pos.clone());
                return false;
            }
            if v == pivot {
                found = Some((prev.clone(), pos.clone()));
                return !before;
            }
            prev = Some(pos.clone());
            true
        });
        let Some((prev, at)) = found else {
            return Ok(Reply::Int(-1));
        };
        let (low, high) = if before {
            (prev, Some(at))
        } else {
            (Some(at), next)
        };
        let (low, high) = (
            low.as_ref().and_then(|p| Position::decode(p)),
            high.as_ref().and_then(|p| Position::decode(p)),
        );
        let stamp = ctx.txn.stamp();
        let pos = Position::between(low.as_ref(), high.as_ref(), stamp);
        let delta = Elem::write_delta(stamp, args[4].clone());
        ctx.txn.apply_part(key, &pos.encode(), &delta, Some(stamp));
        Ok(Reply::Int(len_of(ctx, key)? as i64))
    })())
}

pub fn lrem(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply((|| {
        let key = &args[1];
        let count = int_arg(&args[2])?;
        if len_of(ctx, key)? == 0 {
            return Ok(Reply::Int(0));
        }
        let limit = if count == 0 {
            u64::MAX
        } else {
            count.unsigned_abs()
        };
        let value = &args[3];
        let mut matches = Vec::new();
        ctx.txn.walk_parts::<Elem>(key, count < 0, |pos, elem| {
            if elem.value() == Some(value) {
                matches.push(pos.clone());
            }
            (matches.len() as u64) < limit
        });
        for pos in &matches {
            remove_at(ctx, key, pos);
        }
        Ok(Reply::Int(matches.len() as i64))
    })())
}

pub fn ltrim(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply((|| {
        let key = &args[1];
        let (start, stop) = (int_arg(&args[2])?, int_arg(&args[3])?);
        let len = len_of(ctx, key)?;
        if len == 0 {
            return Ok(Reply::OK);
        }
        let (head, tail) = match range_in(len, start, stop) {
            Some((start, stop)) => (start, len - 1 - stop),
            None => (len, 0),
        };
        let mut doomed = walk(ctx, key, End::Left, 0, head);
        doomed.extend(walk(ctx, key, End::Right, 0, tail));
        for (pos, _) in &doomed {
            remove_at(ctx, key, pos);
        }
        Ok(Reply::OK)
    })())
}

pub fn lpos(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply((|| {
        let key = &args[1];
        let (mut rank, mut count, mut maxlen) = (1i64, None, 0u64);
        let mut opts = args[3..].chunks(2);
        for pair in opts.by_ref() {
            let [name, value] = pair else {
                return Err(Reply::err(ERR_SYNTAX));
            };
            let n = int_arg(value)?;
            if name.eq_ignore_ascii_case(b"rank") {
                if n == 0 {
                    return Err(Reply::err(
                        "ERR RANK can't be zero: use 1 to start from the first match, 2 from \
                         the second ... or use negative to start from the end of the list",
                    ));
                }
                if n == i64::MIN {
                    return Err(Reply::err(
                        "ERR value is out of range, value must between -9223372036854775807 \
                         and 9223372036854775807",
                    ));
                }
                rank = n;
            } else if name.eq_ignore_ascii_case(b"count") {
                if n < 0 {
                    return Err(Reply::err("ERR COUNT can't be negative"));
                }
                count = Some(n as u64);
            } else if name.eq_ignore_ascii_case(b"maxlen") {
                if n < 0 {
                    return Err(Reply::err("ERR MAXLEN can't be negative"));
                }
                maxlen = n as u64;
            } else {
                return Err(Reply::err(ERR_SYNTAX));
            }
        }
        let len = len_of(ctx, key)?;
        let want = match count {
            Some(0) => u64::MAX,
            Some(n) => n,
            None => 1,
        };
        let value = &args[2];
        let backwards = rank < 0;
        let mut skip = rank.unsigned_abs() - 1;
        let (mut index, mut walked) = (0u64, 0u64);
        let mut found = Vec::new();
        ctx.txn.walk_parts::<Elem>(key, backwards, |_, elem| {
            let Some(v) = elem.value() else { return true };
            if maxlen != 0 && walked >= maxlen {
                return false;
            }
            walked += 1;
            if v == value {
                if skip > 0 {
                    skip -= 1;
                } else {
                    found.push(if backwards { len - 1 - index } else { index });
                }
            }
            index += 1;
            (found.len() as u64) < want
        });
        Ok(match count {
            Some(_) => Reply::Array(found.into_iter().map(|i| Reply::Int(i as i64)).collect()),
            None => found.first().map_or(Reply::Null, |i| Reply::Int(*i as i64)),
        })
    })())
}

/// `LMOVE`'s work, once the source is known to be a non-empty list (or absent): the moved
/// element, or `None` when the source is empty.
pub(super) fn move_one(
    ctx: &mut Ctx<'_, '_>,
    src: &Bytes,
    dst: &Bytes,
    from: End,
    to: End,
) -> Result<Option<Bytes>, Reply> {
    if len_of(ctx, src)? == 0 {
        return Ok(None);
    }
    typed(ctx, dst, Kind::List)?;
    let Some(value) = pop_values(ctx, src, from, 1).pop() else {
        return Ok(None);
    };
    typed_for_write(ctx, dst, Kind::List)?;
    push_values(ctx, dst, to, std::slice::from_ref(&value));
    Ok(Some(value))
}

pub fn lmove(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let (Some(from), Some(to)) = (End::parse(&args[3]), End::parse(&args[4])) else {
        return Reply::err(ERR_SYNTAX);
    };
    super::reply(
        move_one(ctx, &args[1], &args[2], from, to).map(|v| v.map_or(Reply::Null, Reply::Bulk)),
    )
}

pub fn rpoplpush(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply(
        move_one(ctx, &args[1], &args[2], End::Right, End::Left)
            .map(|v| v.map_or(Reply::Null, Reply::Bulk)),
    )
}

/// `LMPOP`'s arguments after the name (and, for `BLMPOP`, the timeout): keys, end, count.
pub(super) fn parse_mpop(args: &[Bytes]) -> Result<(Vec<Bytes>, End, u64), Reply> {
    let numkeys = resp::args::parse_i64(&args[0])
        .filter(|n| *n > 0)
        .ok_or_else(|| Reply::err("ERR numkeys should be greater than 0"))?;
    let numkeys = usize::try_from(numkeys).unwrap_or(usize::MAX);
    if numkeys > args.len().saturating_sub(2) {
        return Err(Reply::err(ERR_SYNTAX));
    }
    let keys = args[1..=numkeys].to_vec();
    let rest = &args[numkeys + 1..];
    let end = rest
        .first()
        .and_then(|a| End::parse(a))
        .ok_or_else(|| Reply::err(ERR_SYNTAX))?;
    let count = match &rest[1..] {
        [] => 1,
        [name, n] if name.eq_ignore_ascii_case(b"count") => resp::args::parse_i64(n)
            .filter(|n| *n > 0)
            .ok_or_else(|| Reply::err("ERR count should be greater than 0"))?
            as u64,
        _ => return Err(Reply::err(ERR_SYNTAX)),
    };
    Ok((keys, end, count))
}

/// Pops from the first non-empty list of `keys`: `[key, [elements]]`, or `None` when all are
/// empty.
pub(super) fn mpop(
    ctx: &mut Ctx<'_, '_>,
    keys: &[Bytes],
    end: End,
    count: u64,
) -> Result<Option<Reply>, Reply> {
    for key in keys {
        if len_of(ctx, key)? > 0 {
            let values = pop_values(ctx, key, end, count);
            return Ok(Some(Reply::Array(vec![
                Reply::Bulk(key.clone()),
                Reply::Array(values.into_iter().map(Reply::Bulk).collect()),
            ])));
        }
    }
    Ok(None)
}

pub fn lmpop(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply(
        parse_mpop(&args[1..])
            .and_then(|(keys, end, count)| mpop(ctx, &keys, end, count))
            .map(|r| r.unwrap_or(Reply::NullArray)),
    )
}

/// `BLPOP` and `BRPOP` without the wait: `[key, element]` from the first non-empty list,
/// or a null array.
fn bpop(ctx: &mut Ctx<'_, '_>, args: &[Bytes], end: End) -> Reply {
    super::reply((|| {
        timeout_arg(&args[args.len() - 1])?;
        let keys = &args[1..args.len() - 1];
        Ok(match mpop(ctx, keys, end, 1)? {
            Some(Reply::Array(mut popped)) => {
                let Some(Reply::Array(mut values)) = popped.pop() else {
                    unreachable!("mpop answers [key, [values]]")
                };
                popped.push(values.pop().unwrap_or(Reply::Null));
                Reply::Array(popped)
            }
            _ => Reply::NullArray,
        })
    })())
}

pub fn blpop(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    bpop(ctx, args, End::Left)
}

pub fn brpop(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    bpop(ctx, args, End::Right)
}

pub fn blmove(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let (Some(from), Some(to)) = (End::parse(&args[3]), End::parse(&args[4])) else {
        return Reply::err(ERR_SYNTAX);
    };
    super::reply(timeout_arg(&args[5]).and_then(|_| {
        move_one(ctx, &args[1], &args[2], from, to).map(|v| v.map_or(Reply::Null, Reply::Bulk))
    }))
}

pub fn brpoplpush(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply(timeout_arg(&args[3]).and_then(|_| {
        move_one(ctx, &args[1], &args[2], End::Right, End::Left)
            .map(|v| v.map_or(Reply::Null, Reply::Bulk))
    }))
}

pub fn blmpop(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply(
        timeout_arg(&args[1])
            .and_then(|_| parse_mpop(&args[2..]))
            .and_then(|(keys, end, count)| mpop(ctx, &keys, end, count))
            .map(|r| r.unwrap_or(Reply::NullArray)),
    )
}

/// Every element of the list at `key`, in order (for COPY and RENAME).
pub(super) fn all_values(ctx: &mut Ctx<'_, '_>, key: &Bytes) -> Vec<Bytes> {
    walk(ctx, key, End::Left, 0, u64::MAX)
        .into_iter()
        .map(|(_, v)| v)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_redis() {
        assert_eq!(range_in(5, 0, -1), Some((0, 4)));
        assert_eq!(range_in(5, -100, 100), Some((0, 4)));
        assert_eq!(range_in(5, 3, 1), None);
        assert_eq!(range_in(5, 5, 10), None);
        assert_eq!(range_in(5, -2, -1), Some((3, 4)));
        assert_eq!(range_in(0, 0, -1), None);
        assert_eq!(index_in(3, -1), Some(2));
        assert_eq!(index_in(3, 3), None);
        assert_eq!(index_in(3, -4), None);
    }
}
