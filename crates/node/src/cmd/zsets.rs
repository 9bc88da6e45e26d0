//! Sorted sets: ZADD and ZINCRBY, ZREM, the reads (ZCARD ZSCORE ZMSCORE ZRANK ZREVRANK ZCOUNT
//! ZLEXCOUNT ZRANDMEMBER ZSCAN), the ranges (ZRANGE with BYSCORE BYLEX REV LIMIT WITHSCORES, and
//! its older forms), the pops (ZPOPMIN ZPOPMAX ZMPOP and their blocking forms), the range
//! removals and the algebra (ZUNION ZINTER ZDIFF, their STORE forms, ZINTERCARD, ZRANGESTORE).
//!
//! Each member is its own stored state (`crdt::ZMember`), and the node keeps the members'
//! order (score, then member) as entries of their own (`storage::MemberKind::ZOrder`), so
//! ranges read only what they answer. Costs, for n members: ZSCORE, ZMSCORE O(1) per member;
//! ZADD, ZINCRBY, ZREM O(1) per member; ZRANGE by rank O(distance from the nearer end +
//! returned); by score O(returned + LIMIT offset); by lex O(members before the range +
//! returned); ZRANK O(rank), ZREVRANK O(n - rank); ZCOUNT O(counted); ZLEXCOUNT O(n); pops
//! O(popped); the algebra and ZRANDMEMBER O(total size of the inputs).

use super::lists::End;
use super::{Ctx, int_arg, random, timeout_arg, typed, typed_for_write};
use bytes::Bytes;
use crdt::{Kind, ZMember};
use resp::Reply;
use resp::args::{ERR_NOT_FLOAT, ERR_SYNTAX, parse_f64};
use std::collections::BTreeMap;

const ERR_NAN: &str = "ERR resulting score is not a number (NaN)";
const ERR_MINMAX_FLOAT: &str = "ERR min or max is not a float";
const ERR_LEX: &str = "ERR min or max not valid string range item";

/// The sorted set's size (0 when absent), or WRONGTYPE.
fn zlen(ctx: &mut Ctx<'_, '_>, key: &Bytes) -> Result<u64, Reply> {
    Ok(typed(ctx, key, Kind::ZSet)?.map_or(0, |s| s.lens.zset))
}

fn score_of(ctx: &mut Ctx<'_, '_>, key: &Bytes, member: &Bytes) -> Option<f64> {
    ctx.txn.part::<ZMember>(key, member).and_then(|m| m.score())
}

/// A score argument: a float, not NaN (`-0` reads as `0`).
fn score_arg(arg: &[u8]) -> Result<f64, Reply> {
    parse_f64(arg)
        .map(|s| s + 0.0)
        .ok_or_else(|| Reply::err(ERR_NOT_FLOAT))
}

fn set_score(ctx: &mut Ctx<'_, '_>, key: &Bytes, member: &Bytes, score: f64) {
    let current = ctx.txn.part::<ZMember>(key, member).unwrap_or_default();
    let stamp = ctx.txn.stamp();
    ctx.txn
        .apply_part(key, member, &current.set_delta(stamp, score), Some(stamp));
}

fn incr_score(ctx: &mut Ctx<'_, '_>, key: &Bytes, member: &Bytes, by: f64) {
    let current = ctx.txn.part::<ZMember>(key, member).unwrap_or_default();
    let stamp = ctx.txn.stamp();
    ctx.txn
        .apply_part(key, member, &current.incr_delta(stamp, by), Some(stamp));
}

fn remove(ctx: &mut Ctx<'_, '_>, key: &Bytes, member: &Bytes) -> bool {
    match ctx.txn.part::<ZMember>(key, member) {
        Some(current) if current.present() => {
            let stamp = ctx.txn.stamp();
            ctx.txn
                .apply_part(key, member, &current.remove_delta(stamp), None);
            true
        }
        _ => false,
    }
}

fn scored(items: Vec<(Bytes, f64)>, with_scores: bool) -> Reply {
    if with_scores {
        Reply::Pairs(
            (items.into_iter())
                .map(|(m, s)| (Reply::Bulk(m), Reply::Double(s)))
                .collect(),
        )
    } else {
        Reply::Array(items.into_iter().map(|(m, _)| Reply::Bulk(m)).collect())
    }
}

pub fn zadd(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply(zadd_inner(ctx, args))
}

fn zadd_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Result<Reply, Reply> {
    let key = &args[1];
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, false);
    let mut i = 2;
    while let Some(flag) = args.get(i) {
        let flag = flag.to_ascii_lowercase();
        match flag.as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"gt" => gt = true,
            b"lt" => lt = true,
            b"ch" => ch = true,
            b"incr" => incr = true,
            _ => break,
        }
        i += 1;
    }
    let pairs = &args[i..];
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Err(Reply::err(ERR_SYNTAX));
    }
    if nx && xx {
        return Err(Reply::err(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if (gt || lt) && (nx || (gt && lt)) {
        return Err(Reply::err(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if incr && pairs.len() > 2 {
        return Err(Reply::err(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    let scores = (pairs.chunks(2))
        .map(|p| score_arg(&p[0]))
        .collect::<Result<Vec<f64>, Reply>>()?;
    typed(ctx, key, Kind::ZSet)?;
    let (mut added, mut changed) = (0, 0);
    let mut incr_result = None;
    for (pair, score) in pairs.chunks(2).zip(scores) {
        let member = &pair[1];
        let current = score_of(ctx, key, member);
        match current {
            Some(_) if nx => continue,
            None if xx => continue,
            Some(cur) => {
                let new = if incr { cur + score } else { score };
                if new.is_nan() {
                    return Err(Reply::err(ERR_NAN));
                }
                if (lt && new >= cur) || (gt && new <= cur) {
                    continue;
                }
                incr_result = Some(new);
                if new != cur {
                    typed_for_write(ctx, key, Kind::ZSet)?;
                    if incr {
                        incr_score(ctx, key, member, score);
                    } else {
                        set_score(ctx, key, member, new);
                    }
                    changed += 1;
                }
            }
            None => {
                typed_for_write(ctx, key, Kind::ZSet)?;
                if incr {
                    incr_score(ctx, key, member, score);
                } else {
                    set_score(ctx, key, member, score);
                }
                incr_result = Some(score);
                added += 1;
            }
        }
    }
    Ok(if incr {
        incr_result.map_or(Reply::Null, Reply::Double)
    } else {
        Reply::Int(if ch { added + changed } else { added })
    })
}

pub fn zincrby(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply((|| {
        let (key, member) = (&args[1], &args[3]);
        let by = score_arg(&args[2])?;
        typed_for_write(ctx, key, Kind::ZSet)?;
        let new = score_of(ctx, key, member).unwrap_or(0.0) + by;
        if new.is_nan() {
            return Err(Reply::err(ERR_NAN));
        }
        incr_score(ctx, key, member, by);
        Ok(Reply::Double(new))
    })())
}

pub fn zrem(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply((|| {
        let key = &args[1];
        if zlen(ctx, key)? == 0 {
            return Ok(Reply::Int(0));
        }
        let removed = args[2..].iter().filter(|m| remove(ctx, key, m)).count();
        Ok(Reply::Int(removed as i64))
    })())
}

pub fn zcard(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply(zlen(ctx, &args[1]).map(|n| Reply::Int(n as i64)))
}

pub fn zscore(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply((|| {
        if zlen(ctx, &args[1])? == 0 {
            return Ok(Reply::Null);
        }
        Ok(score_of(ctx, &args[1], &args[2]).map_or(Reply::Null, Reply::Double))
    })())
}

pub fn zmscore(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply((|| {
        let present = zlen(ctx, &args[1])? > 0;
        Ok(Reply::Array(
            (args[2..].iter())
                .map(|m| {
                    let score = present.then(|| score_of(ctx, &args[1], m)).flatten();
                    score.map_or(Reply::Null, Reply::Double)
                })
                .collect(),
        ))
    })())
}

fn rank(ctx: &mut Ctx<'_, '_>, args: &[Bytes], rev: bool) -> Result<Reply, Reply> {
    let (key, member) = (&args[1], &args[2]);
    if zlen(ctx, key)? == 0 {
        return Ok(Reply::Null);
    }
    let Some(score) = score_of(ctx, key, member) else {
        return Ok(Reply::Null);
    };
    let mut rank = 0i64;
    ctx.txn.walk_order(key, None, rev, |s, m| {
        if s == score && m == &member[..] {
            return false;
        }
        rank += 1;
        true
    });
    Ok(Reply::Int(rank))
}

pub fn zrank(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply(rank(ctx, args, false))
}

pub fn zrevrank(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply(rank(ctx, args, true))
}

/// One end of a score range.
#[derive(Clone, Copy)]
struct ScoreBound {
    value: f64,
    exclusive: bool,
}

impl ScoreBound {
    fn parse(arg: &[u8]) -> Result<ScoreBound, Reply> {
        let (exclusive, text) = match arg.strip_prefix(b"(") {
            Some(rest) => (true, rest),
            None => (false, arg),
        };
        let value = parse_f64(text).ok_or_else(|| Reply::err(ERR_MINMAX_FLOAT))?;
        Ok(ScoreBound { value, exclusive })
    }

    fn below(&self, score: f64) -> bool {
        score < self.value || (self.exclusive && score == self.value)
    }

    fn above(&self, score: f64) -> bool {
        score > self.value || (self.exclusive && score == self.value)
    }
}

/// One end of a lexicographic range.
#[derive(Clone)]
enum LexBound {
    Lowest,
    Highest,
    Inclusive(Bytes),
    Exclusive(Bytes),
}

impl LexBound {
    fn parse(arg: &Bytes) -> Result<LexBound, Reply> {
        match arg.first() {
            Some(b'-') if arg.len() == 1 => Ok(LexBound::Lowest),
            Some(b'+') if arg.len() == 1 => Ok(LexBound::Highest),
            Some(b'[') => Ok(LexBound::Inclusive(arg.slice(1..))),
            Some(b'(') => Ok(LexBound::Exclusive(arg.slice(1..))),
            _ => Err(Reply::err(ERR_LEX)),
        }
    }

    /// Whether `m` is below this bound taken as a minimum.
    fn below(&self, m: &[u8]) -> bool {
        match self {
            LexBound::Lowest => false,
            LexBound::Highest => true,
            LexBound::Inclusive(b) => m < &b[..],
            LexBound::Exclusive(b) => m <= &b[..],
        }
    }

    /// Whether `m` is above this bound taken as a maximum.
    fn above(&self, m: &[u8]) -> bool {
        match self {
            LexBound::Lowest => true,
            LexBound::Highest => false,
            LexBound::Inclusive(b) => m > &b[..],
            LexBound::Exclusive(b) => m >= &b[..],
        }
    }
}

enum By {
    Rank(i64, i64),
    Score(ScoreBound, ScoreBound),
    Lex(LexBound, LexBound),
}

/// A range query: what bounds it, its direction, `LIMIT offset count`.
struct Range {
    by: By,
    rev: bool,
    limit: Option<(i64, i64)>,
}

/// Which form of the range command runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `ZRANGE` and `ZRANGESTORE`: BYSCORE, BYLEX and REV are options.
    Any,
    /// `ZRANGEBYSCORE` and `ZREVRANGEBYSCORE`.
    Score(bool),
    /// `ZRANGEBYLEX` and `ZREVRANGEBYLEX`.
    Lex(bool),
    /// `ZREVRANGE`.
    RevRank,
}

/// Parses `min max [options]` (`args` starts at min) of a range command. Returns the range and
/// whether WITHSCORES was given.
fn parse_range(args: &[Bytes], form: Form, store: bool) -> Result<(Range, bool), Reply> {
    let (mut by_score, mut by_lex, mut rev) = match form {
        Form::Any => (false, false, false),
        Form::Score(rev) => (true, false, rev),
        Form::Lex(rev) => (false, true, rev),
        Form::RevRank => (false, false, true),
    };
    let (mut with_scores, mut limit) = (false, None);
    let mut i = 2;
    while i < args.len() {
        let opt = args[i].to_ascii_lowercase();
        match opt.as_slice() {
            b"withscores" if !store => with_scores = true,
            b"limit" if i + 2 < args.len() => {
                limit = Some((int_arg(&args[i + 1])?, int_arg(&args[i + 2])?));
                i += 2;
            }
            b"byscore" if form == Form::Any => by_score = true,
            b"bylex" if form == Form::Any => by_lex = true,
            b"rev" if form == Form::Any => rev = true,
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
        i += 1;
    }
    if by_score && by_lex {
        return Err(Reply::err(ERR_SYNTAX));
    }
    if limit.is_some() && !by_score && !by_lex {
        return Err(Reply::err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if with_scores && by_lex {
        return Err(Reply::err(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    // The reverse forms by score and by lex take the maximum first.
    let (lo, hi) = if rev && (by_score || by_lex) {
        (&args[1], &args[0])
    } else {
        (&args[0], &args[1])
    };
    let by = if by_score {
        By::Score(ScoreBound::parse(lo)?, ScoreBound::parse(hi)?)
    } else if by_lex {
        By::Lex(LexBound::parse(lo)?, LexBound::parse(hi)?)
    } else {
        By::Rank(int_arg(lo)?, int_arg(hi)?)
    };
    Ok((Range { by, rev, limit }, with_scores))
}

/// The members a range selects, in reply order, with their scores.
fn select(ctx: &mut Ctx<'_, '_>, key: &Bytes, range: &Range) -> Result<Vec<(Bytes, f64)>, Reply> {
    let len = zlen(ctx, key)?;
    if len == 0 {
        return Ok(Vec::new());
    }
    let (mut offset, mut count) = match range.limit {
        Some((o, _)) if o < 0 => return Ok(Vec::new()),
        Some((o, c)) => (o as u64, if c < 0 { u64::MAX } else { c as u64 }),
        None => (0, u64::MAX),
    };
    if count == 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let rev = range.rev;
    let mut take = |out: &mut Vec<(Bytes, f64)>, score: f64, m: &[u8]| {
        if offset > 0 {
            offset -= 1;
        } else {
            out.push((Bytes::copy_from_slice(m), score));
            count -= 1;
        }
        count > 0
    };
    match &range.by {
        By::Rank(start, stop) => {
            let Some((start, stop)) = super::lists::range_in(len, *start, *stop) else {
                return Ok(out);
            };
            // In ascending order, the indexes wanted.
            let (a, b) = if rev {
                (len - 1 - stop, len - 1 - start)
            } else {
                (start, stop)
            };
            let from_tail = a > len - 1 - b;
            let mut skip = if from_tail { len - 1 - b } else { a };
            let mut want = b - a + 1;
            ctx.txn.walk_order(key, None, from_tail, |score, m| {
                if skip > 0 {
                    skip -= 1;
                    return true;
                }
                out.push((Bytes::copy_from_slice(m), score));
                want -= 1;
                want > 0
            });
            if from_tail != rev {
                out.reverse();
            }
        }
        By::Score(min, max) => {
            if min.value > max.value || (min.value == max.value && (min.exclusive || max.exclusive))
            {
                return Ok(out);
            }
            let from = if rev {
                let mut k = crdt::score_key(max.value).to_vec();
                k.push(1);
                k
            } else {
                crdt::score_key(min.value).to_vec()
            };
            ctx.txn
                .walk_order(key, Some(Bytes::from(from)), rev, |score, m| {
                    if rev && max.above(score) || !rev && min.below(score) {
                        return true;
                    }
                    if rev && min.below(score) || !rev && max.above(score) {
                        return false;
                    }
                    take(&mut out, score, m)
                });
        }
        By::Lex(min, max) => {
            ctx.txn.walk_order(key, None, rev, |score, m| {
                if rev && max.above(m) || !rev && min.below(m) {
                    return true;
                }
                if rev && min.below(m) || !rev && max.above(m) {
                    return false;
                }
                take(&mut out, score, m)
            });
        }
    }
    Ok(out)
}

fn range_command(ctx: &mut Ctx<'_, '_>, args: &[Bytes], form: Form) -> Reply {
    super::reply((|| {
        let (range, with_scores) = parse_range(&args[2..], form, false)?;
        let items = select(ctx, &args[1], &range)?;
        Ok(scored(items, with_scores))
    })())
}

pub fn zrange(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    range_command(ctx, args, Form::Any)
}

pub fn zrevrange(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    range_command(ctx, args, Form::RevRank)
}

pub fn zrangebyscore(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    range_command(ctx, args, Form::Score(false))
}

pub fn zrevrangebyscore(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    range_command(ctx, args, Form::Score(true))
}

pub fn zrangebylex(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    range_command(ctx, args, Form::Lex(false))
}

pub fn zrevrangebylex(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    range_command(ctx, args, Form::Lex(true))
}

pub fn zcount(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply((|| {
        let by = By::Score(ScoreBound::parse(&args[2])?, ScoreBound::parse(&args[3])?);
        let range = Range {
            by,
            rev: false,
            limit: None,
        };
        Ok(Reply::Int(select(ctx, &args[1], &range)?.len() as i64))
    })())
}

pub fn zlexcount(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply((|| {
        let by = By::Lex(LexBound::parse(&args[2])?, LexBound::parse(&args[3])?);
        let range = Range {
            by,
            rev: false,
            limit: None,
        };
        Ok(Reply::Int(select(ctx, &args[1], &range)?.len() as i64))
    })())
}

fn remove_range(ctx: &mut Ctx<'_, '_>, args: &[Bytes], by: Result<By, Reply>) -> Reply {
    super::reply((|| {
        let range = Range {
            by: by?,
            rev: false,
            limit: None,
        };
        let key = &args[1];
        let doomed = select(ctx, key, &range)?;
        for (m, _) in &doomed {
            remove(ctx, key, m);
        }
        Ok(Reply::Int(doomed.len() as i64))
    })())
}

pub fn zremrangebyrank(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let by = int_arg(&args[2]).and_then(|a| Ok(By::Rank(a, int_arg(&args[3])?)));
    remove_range(ctx, args, by)
}

pub fn zremrangebyscore(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let by =
        ScoreBound::parse(&args[2]).and_then(|a| Ok(By::Score(a, ScoreBound::parse(&args[3])?)));
    remove_range(ctx, args, by)
}

pub fn zremrangebylex(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    let by = LexBound::parse(&args[2]).and_then(|a| Ok(By::Lex(a, LexBound::parse(&args[3])?)));
    remove_range(ctx, args, by)
}

/// Removes up to `n` members from the low (`Left`) or high end, in pop order.
fn pop_members(ctx: &mut Ctx<'_, '_>, key: &Bytes, end: End, n: u64) -> Vec<(Bytes, f64)> {
    let mut taken = Vec::new();
    if n == 0 {
        return taken;
    }
    ctx.txn
        .walk_order(key, None, end == End::Right, |score, m| {
            taken.push((Bytes::copy_from_slice(m), score));
            (taken.len() as u64) < n
        });
    for (m, _) in &taken {
        remove(ctx, key, m);
    }
    taken
}

fn zpop(ctx: &mut Ctx<'_, '_>, args: &[Bytes], end: End) -> Reply {
    super::reply((|| {
        if args.len() > 3 {
            return Err(Reply::err(ERR_SYNTAX));
        }
        let count = match args.get(2) {
            None => None,
            Some(c) => match resp::args::parse_i64(c) {
                Some(n) if n >= 0 => Some(n as u64),
                Some(_) => return Err(Reply::err("ERR value is out of range, must be positive")),
                None => return Err(Reply::err(resp::args::ERR_NOT_INTEGER)),
            },
        };
        let key = &args[1];
        if zlen(ctx, key)? == 0 {
            return Ok(Reply::Array(Vec::new()));
        }
        let popped = pop_members(ctx, key, end, count.unwrap_or(1));
        Ok(match count {
            None => Reply::Array(
                (popped.into_iter())
                    .flat_map(|(m, s)| [Reply::Bulk(m), Reply::Double(s)])
                    .collect(),
            ),
            Some(_) => scored(popped, true),
        })
    })())
}

pub fn zpopmin(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    zpop(ctx, args, End::Left)
}

pub fn zpopmax(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    zpop(ctx, args, End::Right)
}

/// `BZPOPMIN` and `BZPOPMAX` without the wait: `[key, member, score]` from the first
/// non-empty sorted set, or a null array.
fn bzpop(ctx: &mut Ctx<'_, '_>, args: &[Bytes], end: End) -> Reply {
    super::reply((|| {
        timeout_arg(&args[args.len() - 1])?;
        for key in &args[1..args.len() - 1] {
            if zlen(ctx, key)? > 0 {
                let (m, s) = pop_members(ctx, key, end, 1).remove(0);
                return Ok(Reply::Array(vec![
                    Reply::Bulk(key.clone()),
                    Reply::Bulk(m),
                    Reply::Double(s),
                ]));
            }
        }
        Ok(Reply::NullArray)
    })())
}

pub fn bzpopmin(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    bzpop(ctx, args, End::Left)
}

pub fn bzpopmax(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    bzpop(ctx, args, End::Right)
}

/// `ZMPOP`'s work on `numkeys key... MIN|MAX [COUNT n]`.
fn zmpop_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Result<Reply, Reply> {
    let mut words = args.to_vec();
    // The list form's parser reads LEFT|RIGHT where this one has MIN|MAX.
    let numkeys = resp::args::parse_i64(&args[0]).unwrap_or(0);
    if let Some(w) = usize::try_from(numkeys)
        .ok()
        .and_then(|n| words.get_mut(n + 1))
    {
        if w.eq_ignore_ascii_case(b"min") {
            *w = Bytes::from_static(b"left");
        } else if w.eq_ignore_ascii_case(b"max") {
            *w = Bytes::from_static(b"right");
        } else {
            *w = Bytes::from_static(b"?");
        }
    }
    let (keys, end, count) = super::lists::parse_mpop(&words)?;
    for key in &keys {
        if zlen(ctx, key)? > 0 {
            let popped = pop_members(ctx, key, end, count);
            return Ok(Reply::Array(vec![
                Reply::Bulk(key.clone()),
                Reply::Array(
                    (popped.into_iter())
                        .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
                        .collect(),
                ),
            ]));
        }
    }
    Ok(Reply::NullArray)
}

pub fn zmpop(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply(zmpop_inner(ctx, &args[1..]))
}

pub fn bzmpop(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply(timeout_arg(&args[1]).and_then(|_| zmpop_inner(ctx, &args[2..])))
}

/// The members of the sorted set (or plain set, each scoring 1) at `key`, by member.
fn inputs_of(ctx: &mut Ctx<'_, '_>, key: &Bytes) -> Result<BTreeMap<Bytes, f64>, Reply> {
    let now_ms = ctx.txn.now_ms();
    let kind = ctx.txn.live(key).and_then(|s| s.live_kind(now_ms));
    match kind {
        None => Ok(BTreeMap::new()),
        Some(Kind::Set) => Ok((super::sets::members_of(ctx, key)?.into_iter())
            .map(|m| (m, 1.0))
            .collect()),
        Some(Kind::ZSet) => Ok(all(ctx, key).into_iter().collect()),
        Some(_) => Err(Reply::err(resp::args::ERR_WRONGTYPE)),
    }
}

/// Every member of the sorted set at `key` with its score, in order.
pub(super) fn all(ctx: &mut Ctx<'_, '_>, key: &Bytes) -> Vec<(Bytes, f64)> {
    let mut out = Vec::new();
    ctx.txn.walk_order(key, None, false, |score, m| {
        out.push((Bytes::copy_from_slice(m), score));
        true
    });
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// Parses `numkeys key... [WEIGHTS w...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]` and computes
/// the result, sorted by score then member. Returns it and whether WITHSCORES was given.
fn algebra(
    ctx: &mut Ctx<'_, '_>,
    name: &str,
    args: &[Bytes],
    op: Op,
    store: bool,
) -> Result<(Vec<(Bytes, f64)>, bool), Reply> {
    let numkeys = int_arg(&args[0])?;
    if numkeys < 1 {
        return Err(Reply::Error(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        )));
    }
    let numkeys = numkeys as usize;
    if numkeys > args.len() - 1 {
        return Err(Reply::err(ERR_SYNTAX));
    }
    let keys = &args[1..=numkeys];
    let mut weights = vec![1.0; numkeys];
    let (mut aggregate, mut with_scores) = (Aggregate::Sum, false);
    let mut i = numkeys + 1;
    while i < args.len() {
        let opt = args[i].to_ascii_lowercase();
        match opt.as_slice() {
            b"weights" if op != Op::Diff && i + numkeys < args.len() => {
                for (w, arg) in weights.iter_mut().zip(&args[i + 1..=i + numkeys]) {
                    *w = parse_f64(arg)
                        .ok_or_else(|| Reply::err("ERR weight value is not a float"))?;
                }
                i += numkeys;
            }
            b"aggregate" if op != Op::Diff && i + 1 < args.len() => {
                aggregate = match args[i + 1].to_ascii_lowercase().as_slice() {
                    b"sum" => Aggregate::Sum,
                    b"min" => Aggregate::Min,
                    b"max" => Aggregate::Max,
                    _ => return Err(Reply::err(ERR_SYNTAX)),
                };
                i += 1;
            }
            b"withscores" if !store => with_scores = true,
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
        i += 1;
    }
    let mut inputs = Vec::with_capacity(numkeys);
    for key in keys {
        inputs.push(inputs_of(ctx, key)?);
    }
    let weighed = |score: f64, w: f64| {
        let v = score * w;
        if v.is_nan() { 0.0 } else { v }
    };
    let combine = |acc: f64, v: f64| {
        let r = match aggregate {
            Aggregate::Sum => acc + v,
            Aggregate::Min => acc.min(v),
            Aggregate::Max => acc.max(v),
        };
        if r.is_nan() { 0.0 } else { r }
    };
    let mut result: BTreeMap<Bytes, f64> = BTreeMap::new();
    let mut sets = inputs.into_iter().zip(weights);
    let (first, w0) = sets.next().expect("at least one input");
    match op {
        Op::Diff => {
            let rest: Vec<_> = sets.map(|(s, _)| s).collect();
            result = (first.into_iter())
                .filter(|(m, _)| !rest.iter().any(|s| s.contains_key(m)))
                .collect();
        }
        Op::Union => {
            result = first
                .into_iter()
                .map(|(m, s)| (m, weighed(s, w0)))
                .collect();
            for (set, w) in sets {
                for (m, s) in set {
                    let v = weighed(s, w);
                    result
                        .entry(m)
                        .and_modify(|acc| *acc = combine(*acc, v))
                        .or_insert(v);
                }
            }
        }
        Op::Inter => {
            let rest: Vec<_> = sets.collect();
            for (m, s) in first {
                let mut acc = weighed(s, w0);
                let mut everywhere = true;
                for (set, w) in &rest {
                    match set.get(&m) {
                        Some(v) => acc = combine(acc, weighed(*v, *w)),
                        None => {
                            everywhere = false;
                            break;
                        }
                    }
                }
                if everywhere {
                    result.insert(m, acc);
                }
            }
        }
    }
    let mut out: Vec<(Bytes, f64)> = result.into_iter().collect();
    out.sort_by(|(ma, sa), (mb, sb)| sa.total_cmp(sb).then_with(|| ma.cmp(mb)));
    Ok((out, with_scores))
}

fn algebra_command(ctx: &mut Ctx<'_, '_>, args: &[Bytes], op: Op) -> Reply {
    let name = String::from_utf8_lossy(&args[0]).to_lowercase();
    super::reply(algebra(ctx, &name, &args[1..], op, false).map(|(items, ws)| scored(items, ws)))
}

/// Replaces whatever `dst` holds with the sorted set `items`; answers its size.
fn store_result(ctx: &mut Ctx<'_, '_>, dst: &Bytes, items: Vec<(Bytes, f64)>) -> Reply {
    if ctx.txn.live(dst).is_some() {
        let stamp = ctx.txn.stamp();
        ctx.txn.delete(dst, stamp);
    }
    let n = items.len();
    if n > 0 {
        ctx.txn.for_write(dst);
    }
    for (m, s) in items {
        set_score(ctx, dst, &m, s);
    }
    Reply::Int(n as i64)
}

fn algebra_store(ctx: &mut Ctx<'_, '_>, args: &[Bytes], op: Op) -> Reply {
    let name = String::from_utf8_lossy(&args[0]).to_lowercase();
    match algebra(ctx, &name, &args[2..], op, true) {
        Ok((items, _)) => store_result(ctx, &args[1], items),
        Err(e) => e,
    }
}

pub fn zunion(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    algebra_command(ctx, args, Op::Union)
}

pub fn zinter(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    algebra_command(ctx, args, Op::Inter)
}

pub fn zdiff(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    algebra_command(ctx, args, Op::Diff)
}

pub fn zunionstore(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    algebra_store(ctx, args, Op::Union)
}

pub fn zinterstore(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    algebra_store(ctx, args, Op::Inter)
}

pub fn zdiffstore(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    algebra_store(ctx, args, Op::Diff)
}

pub fn zintercard(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply((|| {
        let numkeys = int_arg(&args[1])?;
        if numkeys < 1 {
            return Err(Reply::err(
                "ERR at least 1 input key is needed for 'zintercard' command",
            ));
        }
        let numkeys = numkeys as usize;
        if numkeys > args.len() - 2 {
            return Err(Reply::err(ERR_SYNTAX));
        }
        let limit = match &args[2 + numkeys..] {
            [] => 0,
            [name, n] if name.eq_ignore_ascii_case(b"limit") => match resp::args::parse_i64(n) {
                Some(l) if l >= 0 => l as usize,
                _ => return Err(Reply::err("ERR LIMIT can't be negative")),
            },
            _ => return Err(Reply::err(ERR_SYNTAX)),
        };
        let mut words = vec![args[0].clone()];
        words.extend_from_slice(&args[1..2 + numkeys]);
        let (items, _) = algebra(ctx, "zintercard", &words[1..], Op::Inter, true)?;
        let n = if limit == 0 {
            items.len()
        } else {
            items.len().min(limit)
        };
        Ok(Reply::Int(n as i64))
    })())
}

pub fn zrangestore(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply((|| {
        let (range, _) = parse_range(&args[3..], Form::Any, true)?;
        let items = select(ctx, &args[2], &range)?;
        Ok(store_result(ctx, &args[1], items))
    })())
}

/// `ZRANDMEMBER key [count [WITHSCORES]]`: random members; a negative count may repeat
/// them (`random.rs` says how they are picked).
pub fn zrandmember(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply((|| {
        let key = &args[1];
        let count = random::count_arg(args.get(2))?;
        let with_scores = match args.get(3) {
            None => false,
            Some(w) if w.eq_ignore_ascii_case(b"withscores") && args.len() == 4 => true,
            Some(_) => return Err(Reply::err(ERR_SYNTAX)),
        };
        let len = zlen(ctx, key)? as usize;
        let scores = |picked: Vec<(Bytes, ZMember)>| -> Vec<(Bytes, f64)> {
            (picked.into_iter())
                .map(|(m, z)| (m, z.score().unwrap_or_default()))
                .collect()
        };
        let picked = match count {
            None => {
                return Ok((random::parts::<ZMember>(ctx, key, len, 1).into_iter())
                    .next()
                    .map_or(Reply::Null, |(m, _)| Reply::Bulk(m)));
            }
            Some(n) if n >= 0 => scores(random::parts(ctx, key, len, n as usize)),
            Some(n) => {
                let n = n.unsigned_abs();
                let pool = scores(random::parts(ctx, key, len, random::pool(n, len)));
                random::pick_repeating(&pool, n)
            }
        };
        Ok(scored(picked, with_scores))
    })())
}

/// `ZSCAN key cursor [MATCH pattern] [COUNT count]`: members with their scores.
pub fn zscan(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    super::reply((|| {
        zlen(ctx, &args[1])?;
        let mut items: Vec<(Bytes, Option<Bytes>)> = (all(ctx, &args[1]).into_iter())
            .map(|(m, s)| (m, Some(Bytes::from(resp::args::format_score(s)))))
            .collect();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        super::keys::scan_collection(ctx, args, items)
    })())
}

/// Writes the sorted set `items` under `key` (which holds nothing live) for COPY and RENAME.
pub(super) fn write_all(ctx: &mut Ctx<'_, '_>, key: &Bytes, items: Vec<(Bytes, f64)>) {
    for (m, s) in items {
        set_score(ctx, key, &m, s);
    }
}
