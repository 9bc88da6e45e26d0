//! `SORT` and `SORT_RO`: the elements of a list, set or sorted set, sorted numerically or
//! alphabetically, by themselves or by other keys' values (`BY`), paged (`LIMIT`), projected
//! through other keys (`GET`), and returned or stored as a list (`STORE`). Cost: O(n + m log m)
//! for n elements of which m are sorted, plus one read per element for each `BY` or `GET`.

use super::lists::End;
use super::{Ctx, int_arg};
use bytes::Bytes;
use crdt::Kind;
use resp::Reply;
use resp::args::{ERR_SYNTAX, ERR_WRONGTYPE, parse_f64};
use std::cmp::Ordering;

struct SortArgs {
    by: Option<Bytes>,
    limit: Option<(i64, i64)>,
    gets: Vec<Bytes>,
    desc: bool,
    alpha: bool,
    store: Option<Bytes>,
}

fn parse(args: &[Bytes], read_only: bool) -> Result<SortArgs, Reply> {
    let mut out = SortArgs {
        by: None,
        limit: None,
        gets: Vec::new(),
        desc: false,
        alpha: false,
        store: None,
    };
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - i - 1;
        match args[i].to_ascii_lowercase().as_slice() {
            b"asc" => out.desc = false,
            b"desc" => out.desc = true,
            b"alpha" => out.alpha = true,
            b"limit" if more >= 2 => {
                out.limit = Some((int_arg(&args[i + 1])?, int_arg(&args[i + 2])?));
                i += 2;
            }
            b"store" if more >= 1 && !read_only => {
                out.store = Some(args[i + 1].clone());
                i += 1;
            }
            b"by" if more >= 1 => {
                out.by = Some(args[i + 1].clone());
                i += 1;
            }
            b"get" if more >= 1 => {
                out.gets.push(args[i + 1].clone());
                i += 1;
            }
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
        i += 1;
    }
    Ok(out)
}

/// The value `pattern` names for `element`: its first `*` replaced by the element, then a
/// string key's value or, after `->`, a hash field's. `#` names the element itself; a
/// pattern with no `*` names nothing.
fn lookup(ctx: &mut Ctx<'_, '_>, pattern: &[u8], element: &Bytes) -> Option<Bytes> {
    if pattern == b"#" {
        return Some(element.clone());
    }
    let star = pattern.iter().position(|&b| b == b'*')?;
    let (key_pattern, field) = match pattern.windows(2).rposition(|w| w == b"->") {
        Some(arrow) if arrow > star && arrow + 2 < pattern.len() => {
            (&pattern[..arrow], Some(&pattern[arrow + 2..]))
        }
        _ => (pattern, None),
    };
    let mut key = key_pattern[..star].to_vec();
    key.extend_from_slice(element);
    key.extend_from_slice(&key_pattern[star + 1..]);
    let key = Bytes::from(key);
    if crate::acl::is_reserved(&key) {
        return None; // Meridian's own keys are no client's to read
    }
    let now_ms = ctx.txn.now_ms();
    let kind = ctx.txn.live(&key)?.live_kind(now_ms)?;
    match (kind, field) {
        (Kind::String, None) => ctx.txn.live(&key)?.record.string.as_ref()?.value(),
        (Kind::Hash, Some(field)) => ctx
            .txn
            .field(&key, &Bytes::copy_from_slice(field))
            .and_then(|f| f.value()),
        _ => None,
    }
}

/// The elements of the list, set or sorted set at `key`, in its own order.
fn elements(ctx: &mut Ctx<'_, '_>, key: &Bytes) -> Result<Vec<Bytes>, Reply> {
    let now_ms = ctx.txn.now_ms();
    let kind = ctx.txn.live(key).and_then(|s| s.live_kind(now_ms));
    match kind {
        None => Ok(Vec::new()),
        Some(Kind::List) => Ok(super::lists::all_values(ctx, key)),
        Some(Kind::Set) => Ok(super::sets::members_of(ctx, key)?.into_iter().collect()),
        Some(Kind::ZSet) => Ok(super::zsets::all(ctx, key)
            .into_iter()
            .map(|(m, _)| m)
            .collect()),
        Some(_) => Err(Reply::err(ERR_WRONGTYPE)),
    }
}

fn sort_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes], read_only: bool) -> Result<Reply, Reply> {
    let opts = parse(args, read_only)?;
    let mut items = elements(ctx, &args[1])?;
    // `BY` a pattern with no `*` (`BY nosort`): the elements stay in their own order.
    let sorting = opts.by.as_ref().is_none_or(|b| b.contains(&b'*'));
    if sorting {
        let mut keyed = Vec::with_capacity(items.len());
        for item in items {
            let by = match &opts.by {
                Some(pattern) => lookup(ctx, pattern, &item),
                None => Some(item.clone()),
            };
            let score = if opts.alpha {
                0.0
            } else {
                match &by {
                    None => 0.0,
                    Some(v) => parse_f64(v).ok_or_else(|| {
                        Reply::err("ERR One or more scores can't be converted into double")
                    })?,
                }
            };
            keyed.push((item, by, score));
        }
        keyed.sort_by(|(a, by_a, sa), (b, by_b, sb)| {
            let cmp = if opts.alpha {
                match (by_a, by_b) {
                    (Some(x), Some(y)) => x.cmp(y),
                    (None, None) => Ordering::Equal,
                    (None, _) => Ordering::Less,
                    (_, None) => Ordering::Greater,
                }
            } else {
                sa.partial_cmp(sb)
                    .unwrap_or(Ordering::Equal)
                    .then_with(|| a.cmp(b))
            };
            if opts.desc { cmp.reverse() } else { cmp }
        });
        items = keyed.into_iter().map(|(item, _, _)| item).collect();
    } else if opts.desc {
        items.reverse();
    }
    if let Some((offset, count)) = opts.limit {
        let len = items.len() as i64;
        let start = offset.max(0);
        let end = if count < 0 {
            len - 1
        } else {
            start.saturating_add(count) - 1
        };
        let (start, end) = if start >= len {
            (len, len - 1)
        } else {
            (start, end.min(len - 1))
        };
        items = items[start as usize..(end + 1).max(start) as usize].to_vec();
    }
    let out: Vec<Option<Bytes>> = if opts.gets.is_empty() {
        items.into_iter().map(Some).collect()
    } else {
        let mut out = Vec::with_capacity(items.len() * opts.gets.len());
        for item in &items {
            for pattern in &opts.gets {
                out.push(lookup(ctx, pattern, item));
            }
        }
        out
    };
    let Some(dst) = opts.store else {
        return Ok(Reply::Array(
            out.into_iter()
                .map(|v| v.map_or(Reply::Null, Reply::Bulk))
                .collect(),
        ));
    };
    if ctx.txn.live(&dst).is_some() {
        let stamp = ctx.txn.stamp();
        ctx.txn.delete(&dst, stamp);
    }
    let values: Vec<Bytes> = out.into_iter().map(Option::unwrap_or_default).collect();
    if !values.is_empty() {
        ctx.txn.for_write(&dst);
        super::lists::push_values(ctx, &dst, End::Right, &values);
    }
    Ok(Reply::Int(values.len() as i64))
}

pub fn sort(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply(sort_inner(ctx, args, false))
}

pub fn sort_ro(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply(sort_inner(ctx, args, true))
}
