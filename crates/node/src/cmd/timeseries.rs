//! Time series: the `TS.*` commands of RedisTimeSeries, over series that merge across regions
//! (issue 16; the merge types are in the `timeseries` crate).
//!
//! A series is its header (`storage::Stored::series`: settings, labels and rules as
//! last-writer-wins registers) and its samples, stored apart in windows of [`WINDOW_MS`] of
//! event time (`storage::MemberKind::Window`, named by the window's first instant,
//! big-endian): a write touches one window, a range read scans only the windows of its range.
//! Each window is a CRDT of stamped writes and range deletes, read under the series'
//! duplicate policy the same way on every replica, so concurrent samples from every region
//! merge deterministically.
//!
//! What differs from RedisTimeSeries, and why:
//! - `DUPLICATE_POLICY BLOCK` refuses a duplicate the node sees; two regions that write one
//!   instant concurrently both succeed, and every replica keeps the first (by stamp).
//! - `ON_DUPLICATE p` different from the series' policy replaces the instant's value with the
//!   result of `p` (a delete of the instant and a write, in one delta): concurrent writes
//!   stamped before it go.
//! - Retention trims by the series' newest sample, so every replica hides the same samples.
//! - A compaction rule's destination is computed from its source's merged samples when read,
//!   so every region gives the same buckets, late samples included (a bucket is recomputed
//!   whenever a sample lands in it). Its buckets closed so far are its samples; `LATEST`
//!   adds the open one.

use super::{Ctx, reply};
use bytes::Bytes;
use crdt::Kind;
use resp::Reply;
use resp::args::ERR_WRONGTYPE;
use storage::Stored;
use timeseries::Sample;
use timeseries::aggregate::{self, Aggregator, BucketTimestamp, Buckets};
use timeseries::args::{self, Align, Bound, Matcher, Policy, RangeOptions, SeriesOptions};
use timeseries::fuse::Reducer;
use timeseries::header::{Fusion, Header, LATENESS_MS, Rule};
use timeseries::series::{Delete, Window, Write};

/// The span of event time one stored window holds: a minute holds 60 samples of a sensor
/// read once a second (about 3 bytes a sample stored, with the window's own overhead), and
/// keeps the window a write rewrites small for series read a thousand times a second.
pub const WINDOW_MS: i64 = 60_000;

/// How deep compaction rules may chain (a source's source's ...).
const CHAIN_MAX: usize = 8;

const NO_KEY: &str = "ERR TSDB: the key does not exist";
const NOT_SERIES: &str = "ERR TSDB: the key is not a TSDB key";
const BAD_TS: &str = "ERR TSDB: invalid timestamp";
const BAD_VALUE: &str = "ERR TSDB: invalid value";
const BLOCKED: &str =
    "ERR TSDB: Error at upsert, update is not supported when DUPLICATE_POLICY is set to BLOCK mode";
const TOO_OLD: &str = "ERR TSDB: Timestamp is older than retention";

fn window_of(ts: i64) -> i64 {
    ts - ts.rem_euclid(WINDOW_MS)
}

fn window_name(start: i64) -> Bytes {
    Bytes::copy_from_slice(&(start as u64).to_be_bytes())
}

fn name_start(name: &[u8]) -> Option<i64> {
    Some(u64::from_be_bytes(name.try_into().ok()?) as i64)
}

fn words(args: &[Bytes]) -> Vec<&[u8]> {
    args.iter().map(|a| a.as_ref()).collect()
}

/// What `read` makes of the header of the series at `key`, if there is one; `WRONGTYPE` if
/// the key holds something else.
fn with_header<R>(
    ctx: &mut Ctx<'_, '_>,
    key: &Bytes,
    read: impl FnOnce(&Header) -> R,
) -> Result<Option<R>, Reply> {
    let now_ms = ctx.txn.now_ms();
    match ctx.txn.live(key) {
        None => Ok(None),
        Some(s) if s.live_kind(now_ms) == Some(Kind::TimeSeries) => {
            Ok(s.series.as_deref().map(read))
        }
        Some(_) => Err(Reply::err(ERR_WRONGTYPE)),
    }
}

/// The series at `key`, if there is one; `WRONGTYPE` if the key holds something else.
fn header(ctx: &mut Ctx<'_, '_>, key: &Bytes) -> Result<Option<Header>, Reply> {
    with_header(ctx, key, Header::clone)
}

/// What a write of samples needs of the series at `key` (its policy, retention, IGNORE), if
/// there is one: a copy without its labels and rules, which a write to many series would
/// otherwise copy for every sample.
fn write_header(ctx: &mut Ctx<'_, '_>, key: &Bytes) -> Result<Option<Header>, Reply> {
    with_header(ctx, key, |h| Header {
        top: h.top,
        deleted: h.deleted,
        retention: h.retention,
        policy: h.policy,
        ignore: h.ignore,
        ..Header::default()
    })
}

/// The series at `key`, which must exist.
fn existing(ctx: &mut Ctx<'_, '_>, key: &Bytes) -> Result<Header, Reply> {
    header(ctx, key)?.ok_or_else(|| Reply::err(NO_KEY))
}

/// The duplicate policy a series' reads resolve by.
fn policy_of(h: &Header) -> Policy {
    h.policy().unwrap_or_default()
}

/// A sample with when its latest write was made (ms, the writer's clock; for a computed
/// bucket, the latest of its inputs'): `(ts, value, written)`.
type Point = (i64, f64, i64);

fn unstamped(points: Vec<Point>) -> Vec<Sample> {
    points.into_iter().map(|(t, v, _)| (t, v)).collect()
}

/// The raw samples stored in `[from, to]`, as this round sees them (retention not applied).
fn stored_points(ctx: &mut Ctx<'_, '_>, key: &Bytes, h: &Header, from: i64, to: i64) -> Vec<Point> {
    // Timestamps are never negative (the commands refuse them).
    let from = from.max(0);
    if from > to {
        return Vec::new();
    }
    let policy = policy_of(h);
    let first = window_of(from);
    let after = (first > 0).then(|| window_name(first - 1));
    let mut out = Vec::new();
    ctx.txn
        .walk_parts_after::<Window>(key, after, |name, window| {
            let Some(start) = name_start(name) else {
                return true;
            };
            if start > to {
                return false;
            }
            out.extend(window.read_stamped(policy, from, to));
            true
        });
    out
}

fn stored_samples(
    ctx: &mut Ctx<'_, '_>,
    key: &Bytes,
    h: &Header,
    from: i64,
    to: i64,
) -> Vec<Sample> {
    unstamped(stored_points(ctx, key, h, from, to))
}

/// The newest sample stored, if any.
fn newest_stored(ctx: &mut Ctx<'_, '_>, key: &Bytes, h: &Header) -> Option<Sample> {
    let policy = policy_of(h);
    let mut found = None;
    ctx.txn.walk_parts::<Window>(key, true, |_, window| {
        found = window.read(policy, i64::MIN, i64::MAX).last().copied();
        found.is_none()
    });
    found
}

/// The first instant retention keeps, given the newest sample.
fn kept_from(h: &Header, newest: Option<i64>) -> i64 {
    match (h.retention_ms(), newest) {
        (0, _) | (_, None) => i64::MIN,
        (r, Some(n)) => n.saturating_sub(r as i64),
    }
}

/// A series' samples in `[from, to]` as clients read them: retention applied, and computed
/// from the source when a rule fills the series. `latest` adds a computed series' open
/// bucket.
fn samples(
    ctx: &mut Ctx<'_, '_>,
    key: &Bytes,
    h: &Header,
    from: i64,
    to: i64,
    latest: bool,
    depth: usize,
) -> Vec<Sample> {
    unstamped(points(ctx, key, h, from, to, latest, depth))
}

/// [`samples`], each with when it was written.
fn points(
    ctx: &mut Ctx<'_, '_>,
    key: &Bytes,
    h: &Header,
    from: i64,
    to: i64,
    latest: bool,
    depth: usize,
) -> Vec<Point> {
    if let Some((source, sh, rule)) = rule_into(ctx, key, h)
        && depth < CHAIN_MAX
    {
        return compacted(ctx, &source, &sh, &rule, from, to, latest, depth + 1);
    }
    if let Some(fusion) = h.fusion() {
        return fused(ctx, key, fusion, from, to, depth);
    }
    let newest = newest_stored(ctx, key, h).map(|s| s.0);
    let from = from.max(kept_from(h, newest));
    stored_points(ctx, key, h, from, to)
}

/// `raw` aggregated by `agg` per bucket, each bucket with the latest write of its inputs.
fn aggregate_points(raw: &[Point], agg: Aggregator, buckets: &Buckets) -> Vec<Point> {
    let samples: Vec<Sample> = raw.iter().map(|p| (p.0, p.1)).collect();
    let out = aggregate::aggregate(&samples, agg, buckets, None, None);
    let mut i = 0;
    (out.into_iter())
        .map(|(t, v)| {
            // Buckets come in order, as do the points: walk both once.
            let end = t.saturating_add(buckets.duration);
            let mut written = 0;
            while i < raw.len() && raw[i].0 < end {
                if raw[i].0 >= t {
                    written = written.max(raw[i].2);
                }
                i += 1;
            }
            (t, v, written)
        })
        .collect()
}

/// The rule that fills `key`, with its source and the source's header, when there is one.
fn rule_into(ctx: &mut Ctx<'_, '_>, key: &Bytes, h: &Header) -> Option<(Bytes, Header, Rule)> {
    let source = Bytes::copy_from_slice(h.source()?);
    let sh = header(ctx, &source).ok()??;
    let rule = sh.rules().find(|(d, _)| *d == key.as_ref())?.1.to_owned();
    Some((source, sh, rule))
}

fn rule_buckets(rule: &Rule) -> Buckets {
    Buckets {
        duration: rule.bucket_ms as i64,
        align: rule.align_ms as i64,
        stamp: BucketTimestamp::Start,
        empty: false,
    }
}

/// The buckets of `rule` over the source's samples, starting in `[from, to]`: those closed
/// by a later sample of the source, and with `latest` the open one too.
#[allow(clippy::too_many_arguments)]
fn compacted(
    ctx: &mut Ctx<'_, '_>,
    source: &Bytes,
    sh: &Header,
    rule: &Rule,
    from: i64,
    to: i64,
    latest: bool,
    depth: usize,
) -> Vec<Point> {
    let buckets = rule_buckets(rule);
    let first = buckets.start_of(from.max(0));
    let end = buckets.start_of(to).saturating_add(buckets.duration - 1);
    let raw = points(ctx, source, sh, first, end, false, depth);
    let newest = newest_sample(ctx, source, sh, false, depth).map(|s| s.0);
    let open = newest.map(|n| buckets.start_of(n));
    let mut out = aggregate_points(&raw, rule.aggregator, &buckets);
    out.retain(|(t, _, _)| *t >= from && *t <= to && (latest || Some(*t) != open));
    out
}

/// A fused series' samples starting in `[from, to]`: every series of its group (fused
/// series apart) aggregated per bucket, the buckets combined across the group. The newest
/// bucket holds what has arrived so far.
fn fused(
    ctx: &mut Ctx<'_, '_>,
    key: &Bytes,
    fusion: &Fusion,
    from: i64,
    to: i64,
    depth: usize,
) -> Vec<Point> {
    let exprs: Vec<&[u8]> = fusion.filter.iter().map(|e| e.as_bytes()).collect();
    let Ok(filter) = args::filter(&exprs) else {
        return Vec::new();
    };
    let Ok(group) = matching(ctx, &filter) else {
        return Vec::new();
    };
    let buckets = Buckets {
        duration: fusion.bucket_ms.min(i64::MAX as u64) as i64,
        align: 0,
        stamp: BucketTimestamp::Start,
        empty: false,
    };
    let first = buckets.start_of(from.max(0));
    let last = buckets.start_of(to).saturating_add(buckets.duration - 1);
    let mut series = Vec::new();
    let mut written: std::collections::BTreeMap<i64, i64> = Default::default();
    for (member, h) in group {
        if member == key || h.fusion().is_some() {
            continue;
        }
        let raw = points(ctx, &member, &h, first, last, false, depth + 1);
        let mut bucketed = aggregate_points(&raw, fusion.aggregator, &buckets);
        bucketed.retain(|(t, _, _)| *t >= from && *t <= to);
        for (t, _, w) in &bucketed {
            let at = written.entry(*t).or_default();
            *at = (*at).max(*w);
        }
        series.push(unstamped(bucketed));
    }
    (fusion.reducer.reduce(&series).into_iter())
        .map(|(t, v)| (t, v, written.get(&t).copied().unwrap_or(0)))
        .collect()
}

/// `TS.FUSE key AGGREGATION aggregator bucket REDUCE reducer FILTER expr...`: makes `key` a
/// fused series of every series the filter matches (created if absent; its labels and other
/// settings kept if present). Meridian's own command; `DEL key` ends it.
pub fn fuse(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(fuse_inner(ctx, args))
}

fn fuse_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Result<Reply, Reply> {
    const USAGE: &str = "ERR TSDB: TS.FUSE key AGGREGATION aggregator bucket REDUCE reducer [LATENESS ms] FILTER expr...";
    let key = &args[1];
    let mut w = words(&args[2..]);
    let mut lateness_ms = LATENESS_MS;
    if w.get(5)
        .is_some_and(|l| l.eq_ignore_ascii_case(b"LATENESS"))
    {
        lateness_ms =
            w.get(6)
                .and_then(|l| resp::args::parse_i64(l))
                .filter(|l| *l >= 0)
                .ok_or_else(|| Reply::err("ERR TSDB: Couldn't parse LATENESS"))? as u64;
        w.drain(5..7);
    }
    let (Some(agg), Some(bucket), Some(reduce), Some(reducer), Some(filter_word)) =
        (w.get(1), w.get(2), w.get(3), w.get(4), w.get(5))
    else {
        return Err(Reply::err(USAGE));
    };
    if !w[0].eq_ignore_ascii_case(b"AGGREGATION")
        || !reduce.eq_ignore_ascii_case(b"REDUCE")
        || !filter_word.eq_ignore_ascii_case(b"FILTER")
    {
        return Err(Reply::err(USAGE));
    }
    let aggregator =
        Aggregator::parse(agg).ok_or_else(|| Reply::err("ERR TSDB: Unknown aggregation type"))?;
    let bucket_ms = resp::args::parse_i64(bucket)
        .filter(|b| *b > 0)
        .ok_or_else(|| Reply::err("ERR TSDB: bucketDuration must be greater than zero"))?;
    let reducer =
        Reducer::parse(reducer).ok_or_else(|| Reply::err("ERR TSDB: failed parsing reducer"))?;
    args::filter(&w[6..]).map_err(Reply::err)?;
    let filter = (w[6..].iter())
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect();
    if header(ctx, key)?.is_none() {
        auto_create(ctx, key, &SeriesOptions::default());
    }
    let stamp = ctx.txn.stamp();
    let fusion = Fusion {
        filter,
        aggregator,
        bucket_ms: bucket_ms as u64,
        reducer,
        lateness_ms,
    };
    let delta = Header {
        top: Some(stamp),
        fusion: Some((stamp, Some(fusion))),
        ..Header::default()
    };
    ctx.txn.apply_series(key, &delta);
    Ok(Reply::OK)
}

/// A timestamp argument: `*` is now.
fn timestamp_arg(ctx: &Ctx<'_, '_>, word: &[u8]) -> Result<i64, Reply> {
    if word == b"*" {
        return Ok(ctx.txn.now_ms() as i64);
    }
    resp::args::parse_i64(word)
        .filter(|t| *t >= 0)
        .ok_or_else(|| Reply::err(BAD_TS))
}

fn value_arg(word: &[u8]) -> Result<f64, Reply> {
    resp::args::parse_f64(word)
        .filter(|v| !v.is_nan())
        .ok_or_else(|| Reply::err(BAD_VALUE))
}

/// The header delta creating a series with `options` at `stamp`.
fn create_delta(options: &SeriesOptions, stamp: crdt::Stamp) -> Header {
    Header {
        top: Some(stamp),
        retention: options.retention_ms.map(|v| (stamp, v)),
        policy: options.duplicate_policy.map(|v| (stamp, v)),
        chunk_size: options.chunk_size.map(|v| (stamp, v)),
        encoding: options.encoding.map(|v| (stamp, v)),
        ignore: options.ignore.map(|(t, v)| (stamp, (t, v.to_bits()))),
        labels: options.labels.clone().map(|v| (stamp, v)),
        ..Header::default()
    }
}

/// Writes one sample to the series at `key` (header `h`) under `policy` for a duplicate; the
/// timestamp written, or an error that changes nothing.
fn add_sample(
    ctx: &mut Ctx<'_, '_>,
    key: &Bytes,
    h: &Header,
    ts: i64,
    value: f64,
    on_duplicate: Option<Policy>,
) -> Result<i64, Reply> {
    let series_policy = policy_of(h);
    let policy = on_duplicate.unwrap_or(series_policy);
    // The newest sample, when retention or IGNORE need it (a walk from the series' end).
    let (max_time, max_value) = h.ignore();
    let ignoring = (max_time, max_value) != (0, 0.0);
    let newest = match h.retention_ms() > 0 || ignoring {
        true => newest_stored(ctx, key, h),
        false => None,
    };
    if ts < kept_from(h, newest.map(|s| s.0)) {
        return Err(Reply::err(TOO_OLD));
    }
    // IGNORE: a sample close to the newest in time and value is dropped (LAST only).
    if ignoring
        && policy == Policy::Last
        && let Some((last_ts, last_value)) = newest
        && ts >= last_ts
        && (ts - last_ts) as u64 <= max_time
        && (value - last_value).abs() <= max_value
    {
        return Ok(last_ts);
    }
    // The instant's window, as this round holds it (read and decoded once a round).
    let start = window_of(ts);
    let policy_now = policy_of(h);
    let current = ctx
        .txn
        .with_part::<Window, _>(key, &window_name(start), |w| {
            w.and_then(|w| w.read(policy_now, ts, ts).first().map(|s| s.1))
        });
    let stamp = ctx.txn.stamp();
    let mut delta = Window::default();
    let mut top = stamp;
    match current {
        Some(_) if policy == Policy::Block => return Err(Reply::err(BLOCKED)),
        Some(now) if policy != series_policy => {
            // Replace the instant's value by what `policy` makes of it: a delete of the
            // instant, then a write stamped after it.
            let value = match policy {
                Policy::First | Policy::Block => now,
                Policy::Last => value,
                Policy::Min => now.min(value),
                Policy::Max => now.max(value),
                Policy::Sum => now + value,
            };
            delta.delete(Delete {
                from: ts,
                to: ts,
                stamp,
            });
            top = ctx.txn.stamp();
            delta.write(Write {
                ts,
                value,
                stamp: top,
            });
        }
        Some(_) if policy == Policy::First => return Ok(ts),
        _ => delta.write(Write { ts, value, stamp }),
    }
    ctx.txn
        .apply_part(key, &window_name(start), &delta, Some(top));
    Ok(ts)
}

/// `TS.CREATE key [options]`.
pub fn create(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(create_inner(ctx, args))
}

fn create_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Result<Reply, Reply> {
    let key = &args[1];
    let options = args::series_options(&words(&args[2..]), false).map_err(Reply::err)?;
    if ctx.txn.live(key).is_some() {
        return Err(Reply::err("ERR TSDB: key already exists"));
    }
    auto_create(ctx, key, &options);
    Ok(Reply::OK)
}

/// `TS.ALTER key [options]`.
pub fn alter(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(alter_inner(ctx, args))
}

fn alter_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Result<Reply, Reply> {
    let key = &args[1];
    let options = args::series_options(&words(&args[2..]), false).map_err(Reply::err)?;
    if options.encoding.is_some() {
        return Err(Reply::err(
            "ERR TSDB: ENCODING is not a valid argument for TS.ALTER",
        ));
    }
    existing(ctx, key)?;
    let stamp = ctx.txn.stamp();
    ctx.txn.apply_series(key, &create_delta(&options, stamp));
    Ok(Reply::OK)
}

/// `TS.ADD key timestamp value [options]`.
pub fn add(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(add_inner(ctx, args))
}

fn add_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Result<Reply, Reply> {
    let key = &args[1];
    let ts = timestamp_arg(ctx, &args[2])?;
    let value = value_arg(&args[3])?;
    let options = args::series_options(&words(&args[4..]), true).map_err(Reply::err)?;
    let h = match write_header(ctx, key).map_err(|_| Reply::err(NOT_SERIES))? {
        Some(h) => h,
        None => auto_create(ctx, key, &options),
    };
    let on_duplicate = options.duplicate_policy.filter(|_| h.top.is_some());
    add_sample(ctx, key, &h, ts, value, on_duplicate).map(Reply::Int)
}

/// Creates the series `key`, which holds nothing live; its header.
fn auto_create(ctx: &mut Ctx<'_, '_>, key: &Bytes, options: &SeriesOptions) -> Header {
    ctx.txn.for_write(key);
    let stamp = ctx.txn.stamp();
    let delta = create_delta(options, stamp);
    ctx.txn.apply_series(key, &delta);
    ctx.txn
        .raw(key)
        .and_then(|s: &Stored| s.series.as_deref().cloned())
        .unwrap_or(delta)
}

/// `TS.MADD key timestamp value [key timestamp value ...]`: one answer per sample.
pub fn madd(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    if !(args.len() - 1).is_multiple_of(3) {
        return Reply::err("ERR wrong number of arguments for 'ts.madd' command");
    }
    let mut out = Vec::with_capacity(args.len() / 3);
    for triple in args[1..].chunks(3) {
        let one = (|| {
            let key = &triple[0];
            let ts = timestamp_arg(ctx, &triple[1])?;
            let value = value_arg(&triple[2])?;
            let h = write_header(ctx, key)
                .map_err(|_| Reply::err(NOT_SERIES))?
                .ok_or_else(|| Reply::err(NO_KEY))?;
            add_sample(ctx, key, &h, ts, value, None).map(Reply::Int)
        })();
        out.push(one.unwrap_or_else(|e| e));
    }
    Reply::Array(out)
}

/// `TS.INCRBY` and `TS.DECRBY`: adds to the newest value, at a timestamp at or after it.
fn incr(ctx: &mut Ctx<'_, '_>, args: &[Bytes], sign: f64) -> Result<Reply, Reply> {
    let key = &args[1];
    let addend = value_arg(&args[2])? * sign;
    let rest = words(&args[3..]);
    let mut at = None;
    let mut options = Vec::new();
    let mut i = 0;
    while i < rest.len() {
        if rest[i].eq_ignore_ascii_case(b"TIMESTAMP") {
            let word = rest.get(i + 1).ok_or_else(|| Reply::err(BAD_TS))?;
            at = Some(timestamp_arg(ctx, word)?);
            i += 2;
        } else {
            options.push(rest[i]);
            i += 1;
        }
    }
    let options = args::series_options(&options, false).map_err(Reply::err)?;
    let h = match header(ctx, key)? {
        Some(h) => h,
        None => auto_create(ctx, key, &options),
    };
    let ts = at.unwrap_or(ctx.txn.now_ms() as i64);
    let newest = newest_stored(ctx, key, &h);
    if newest.is_some_and(|(t, _)| ts < t) {
        return Err(Reply::err(
            "ERR TSDB: timestamp must be equal to or higher than the maximum existing timestamp",
        ));
    }
    let value = newest.map_or(0.0, |(_, v)| v) + addend;
    add_sample(ctx, key, &h, ts, value, Some(Policy::Last)).map(Reply::Int)
}

/// `TS.INCRBY key addend [TIMESTAMP ts] [options]`.
pub fn incrby(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(incr(ctx, args, 1.0))
}

/// `TS.DECRBY key subtrahend [TIMESTAMP ts] [options]`.
pub fn decrby(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(incr(ctx, args, -1.0))
}

/// `TS.DEL key from to`: how many samples it removed.
pub fn del(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(del_inner(ctx, args))
}

fn del_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Result<Reply, Reply> {
    let key = &args[1];
    let h = existing(ctx, key)?;
    let from = resp::args::parse_i64(&args[2]).ok_or_else(|| Reply::err(BAD_TS))?;
    let to = resp::args::parse_i64(&args[3]).ok_or_else(|| Reply::err(BAD_TS))?;
    let removed = stored_samples(ctx, key, &h, from, to);
    if removed.is_empty() {
        return Ok(Reply::Int(0));
    }
    let stamp = ctx.txn.stamp();
    let mut starts: Vec<i64> = removed.iter().map(|s| window_of(s.0)).collect();
    starts.dedup();
    for start in starts {
        let mut delta = Window::default();
        delta.delete(Delete {
            from: from.max(start),
            to: to.min(start + WINDOW_MS - 1),
            stamp,
        });
        ctx.txn
            .apply_part(key, &window_name(start), &delta, Some(stamp));
    }
    Ok(Reply::Int(removed.len() as i64))
}

fn sample_reply((ts, value): Sample) -> Reply {
    Reply::Array(vec![Reply::Int(ts), Reply::Double(value)])
}

/// `TS.GET key [LATEST]`.
pub fn get(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(get_inner(ctx, args))
}

fn get_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Result<Reply, Reply> {
    let key = &args[1];
    let latest = match &args[2..] {
        [] => false,
        [w] if w.eq_ignore_ascii_case(b"LATEST") => true,
        _ => return Err(Reply::err("ERR TSDB: wrong arguments")),
    };
    let h = existing(ctx, key)?;
    Ok(last_sample(ctx, key, &h, latest).map_or(Reply::Array(Vec::new()), sample_reply))
}

fn last_sample(ctx: &mut Ctx<'_, '_>, key: &Bytes, h: &Header, latest: bool) -> Option<Sample> {
    newest_sample(ctx, key, h, latest, 0)
}

/// A series' newest sample as clients read it: a computed series' last bucket, a stored
/// series' newest sample (found from its end; retention never trims the newest).
fn newest_sample(
    ctx: &mut Ctx<'_, '_>,
    key: &Bytes,
    h: &Header,
    latest: bool,
    depth: usize,
) -> Option<Sample> {
    if h.fusion().is_some() || rule_into(ctx, key, h).is_some() {
        return samples(ctx, key, h, i64::MIN, i64::MAX, latest, depth)
            .last()
            .copied();
    }
    newest_stored(ctx, key, h)
}

/// The samples `options` asks of one series, in time order (reversed by the caller).
fn range_of(
    ctx: &mut Ctx<'_, '_>,
    key: &Bytes,
    h: &Header,
    options: &RangeOptions,
    reverse: bool,
) -> Vec<Sample> {
    let (from, to) = bounds(options);
    let mut out = match options.aggregation {
        None => range_points(ctx, key, h, options, from, to)
            .into_iter()
            .map(|(t, v, _)| (t, v))
            .collect(),
        Some(agg) => {
            let align = match options.align {
                Align::Zero => 0,
                Align::Start => from.max(0),
                Align::End => to.min(i64::MAX - 1),
                Align::At(t) => t as i64,
            };
            let buckets = Buckets {
                duration: agg.bucket_ms.min(i64::MAX as u64) as i64,
                align,
                stamp: agg.stamp,
                empty: agg.empty,
            };
            let raw = unstamped(range_points(ctx, key, h, options, from, to));
            let mut out = aggregate::aggregate(&raw, agg.aggregator, &buckets, None, None);
            // A bucket that starts before the range reports at the range's start.
            if let Some(first) = out.first_mut()
                && first.0 < from
                && agg.stamp == BucketTimestamp::Start
            {
                first.0 = from;
            }
            out
        }
    };
    if reverse {
        out.reverse();
    }
    if let Some(n) = options.count {
        out.truncate(n as usize);
    }
    out
}

/// A range's first and last instants.
fn bounds(options: &RangeOptions) -> (i64, i64) {
    let at = |b: Bound, first: i64, last: i64| match b {
        Bound::First => first,
        Bound::At(t) => t.min(i64::MAX as u64) as i64,
        Bound::Last => last,
    };
    (
        at(options.from, i64::MIN, i64::MAX),
        at(options.to, i64::MIN, i64::MAX),
    )
}

/// The points of `[from, to]` that pass `options`' filters.
fn range_points(
    ctx: &mut Ctx<'_, '_>,
    key: &Bytes,
    h: &Header,
    options: &RangeOptions,
    from: i64,
    to: i64,
) -> Vec<Point> {
    let mut raw = points(ctx, key, h, from, to, options.latest, 0);
    if !options.filter_ts.is_empty() {
        raw.retain(|(t, _, _)| options.filter_ts.binary_search(&(*t as u64)).is_ok());
    }
    if let Some((min, max)) = options.filter_value {
        raw.retain(|(_, v, _)| *v >= min && *v <= max);
    }
    raw
}

/// Whether a sample (or a computed bucket) may still change: `WITHSTATUS`'s third element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// The cluster's watermark has not yet passed its end plus the lateness: samples may
    /// still arrive in it.
    Provisional = 0,
    /// It has.
    Final = 1,
    /// It holds a sample written after its end plus the lateness (a late sample, merged and
    /// the bucket recomputed): every replica says so once it holds that sample.
    Revised = 2,
}

/// How long each of a series' samples lasts and how late samples may come: a computed
/// series' buckets, a raw series' instants.
fn span_of(ctx: &mut Ctx<'_, '_>, key: &Bytes, h: &Header) -> (i64, i64) {
    if let Some((_, _, rule)) = rule_into(ctx, key, h) {
        return (rule.bucket_ms as i64, rule.lateness_ms as i64);
    }
    if let Some(f) = h.fusion() {
        return (f.bucket_ms as i64, f.lateness_ms as i64);
    }
    (0, LATENESS_MS as i64)
}

fn status_of((t, _, written): Point, (duration, lateness): (i64, i64), watermark: u64) -> Status {
    let due = t.saturating_add(duration).saturating_add(lateness);
    if written > due {
        Status::Revised
    } else if watermark as i64 >= due {
        Status::Final
    } else {
        Status::Provisional
    }
}

/// The cluster's watermark here, and the members it does not wait for.
fn watermark(ctx: &Ctx<'_, '_>) -> (u64, Vec<String>) {
    ctx.state.stats.watermark(ctx.txn.now_ms())
}

/// `TS.RANGE key from to [options]`.
pub fn range(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(range_inner(ctx, args, false))
}

/// `TS.REVRANGE key from to [options]`.
pub fn revrange(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(range_inner(ctx, args, true))
}

fn range_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes], reverse: bool) -> Result<Reply, Reply> {
    let key = &args[1];
    let (options, _) = args::range_options(&words(&args[2..]), &[]).map_err(Reply::err)?;
    let h = existing(ctx, key)?;
    if options.with_status {
        let (from, to) = bounds(&options);
        let mut out = range_points(ctx, key, &h, &options, from, to);
        if reverse {
            out.reverse();
        }
        if let Some(n) = options.count {
            out.truncate(n as usize);
        }
        let span = span_of(ctx, key, &h);
        let (mark, _) = watermark(ctx);
        let rows = (out.into_iter())
            .map(|p| {
                let status = status_of(p, span, mark) as i64;
                Reply::Array(vec![
                    Reply::Int(p.0),
                    Reply::Double(p.1),
                    Reply::Int(status),
                ])
            })
            .collect();
        return Ok(Reply::Array(rows));
    }
    let out = range_of(ctx, key, &h, &options, reverse);
    Ok(Reply::Array(out.into_iter().map(sample_reply).collect()))
}

/// Labels: `[[name, value], ...]` in RESP2, a map in RESP3.
fn labels_reply(labels: &[(String, Option<String>)]) -> Reply {
    let text = |t: &str| Reply::Bulk(Bytes::copy_from_slice(t.as_bytes()));
    let value = |v: &Option<String>| v.as_deref().map_or(Reply::Null, text);
    Reply::per_protocol(
        Reply::Array(
            (labels.iter())
                .map(|(n, v)| Reply::Array(vec![text(n), value(v)]))
                .collect(),
        ),
        Reply::Map(labels.iter().map(|(n, v)| (text(n), value(v))).collect()),
    )
}

fn all_labels(labels: &[(String, String)]) -> Vec<(String, Option<String>)> {
    (labels.iter())
        .map(|(n, v)| (n.clone(), Some(v.clone())))
        .collect()
}

/// `TS.INFO key [DEBUG]`.
pub fn info(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(info_inner(ctx, args))
}

fn info_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Result<Reply, Reply> {
    let key = &args[1];
    let h = existing(ctx, key)?;
    let all = points(ctx, key, &h, i64::MIN, i64::MAX, false, 0);
    let span = span_of(ctx, key, &h);
    let (mark, excluded) = watermark(ctx);
    let statuses: Vec<Status> = all.iter().map(|p| status_of(*p, span, mark)).collect();
    let final_through = (all.iter().zip(&statuses))
        .filter(|(_, s)| **s != Status::Provisional)
        .map(|(p, _)| p.0.saturating_add(span.0))
        .max();
    let late = statuses.iter().filter(|s| **s == Status::Revised).count();
    let mut windows = 0i64;
    let mut bytes = 0usize;
    ctx.txn.walk_parts::<Window>(key, false, |_, w| {
        windows += 1;
        bytes += w.encode().len();
        true
    });
    let text = |s: &str| Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()));
    // RESP2: `[[dest, bucket, AGGREGATOR, align], ...]`; RESP3: a map by destination.
    let rule_of = |rule: &Rule| {
        vec![
            Reply::Int(rule.bucket_ms as i64),
            text(&rule.aggregator.name().to_ascii_uppercase()),
            Reply::Int(rule.align_ms as i64),
        ]
    };
    let dest_of = |d: &[u8]| Reply::Bulk(Bytes::copy_from_slice(d));
    let rules = Reply::per_protocol(
        Reply::Array(
            h.rules()
                .map(|(dest, rule)| {
                    let mut row = vec![dest_of(dest)];
                    row.extend(rule_of(rule));
                    Reply::Array(row)
                })
                .collect(),
        ),
        Reply::Map(
            h.rules()
                .map(|(dest, rule)| (dest_of(dest), Reply::Array(rule_of(rule))))
                .collect(),
        ),
    );
    let (max_time, max_value) = h.ignore();
    let fields = vec![
        ("totalSamples", Reply::Int(all.len() as i64)),
        ("memoryUsage", Reply::Int(bytes as i64)),
        ("firstTimestamp", Reply::Int(all.first().map_or(0, |s| s.0))),
        ("lastTimestamp", Reply::Int(all.last().map_or(0, |s| s.0))),
        ("retentionTime", Reply::Int(h.retention_ms() as i64)),
        ("chunkCount", Reply::Int(windows)),
        (
            "chunkSize",
            Reply::Int(h.chunk_size().unwrap_or(4096) as i64),
        ),
        ("chunkType", text("compressed")),
        (
            "duplicatePolicy",
            h.policy().map_or(Reply::Null, |p| text(p.name())),
        ),
        ("labels", labels_reply(&all_labels(h.labels()))),
        (
            "sourceKey",
            h.source()
                .map_or(Reply::Null, |s| Reply::Bulk(Bytes::copy_from_slice(s))),
        ),
        ("rules", rules),
        ("ignoreMaxTimeDiff", Reply::Int(max_time as i64)),
        ("ignoreMaxValDiff", Reply::Double(max_value)),
        // Meridian's own: how far the cluster's writes have arrived here, and what of this
        // series is final (`WITHSTATUS`).
        ("watermark", Reply::Int(mark as i64)),
        (
            "watermarkExcludes",
            Reply::Array(excluded.iter().map(|n| text(n)).collect()),
        ),
        ("lateness", Reply::Int(span.1)),
        (
            "finalThrough",
            final_through.map_or(Reply::Null, Reply::Int),
        ),
        ("revised", Reply::Int(late as i64)),
        // Meridian's own: what a fused series fuses (`TS.FUSE`).
        (
            "fusion",
            h.fusion().map_or(Reply::Null, |f| {
                Reply::Map(vec![
                    (Reply::Simple("filter"), text(&f.filter.join(" "))),
                    (Reply::Simple("aggregation"), text(f.aggregator.name())),
                    (
                        Reply::Simple("bucketDuration"),
                        Reply::Int(f.bucket_ms as i64),
                    ),
                    (Reply::Simple("reducer"), text(f.reducer.name())),
                ])
            }),
        ),
    ];
    Ok(Reply::Map(
        fields
            .into_iter()
            .map(|(k, v)| (Reply::Simple(k), v))
            .collect(),
    ))
}

/// `TS.CREATERULE source dest AGGREGATION aggregator bucket [alignTimestamp]`.
pub fn createrule(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(createrule_inner(ctx, args))
}

fn createrule_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Result<Reply, Reply> {
    let (source, dest) = (&args[1], &args[2]);
    // Meridian's `LATENESS ms` may end the command (see `Rule::lateness_ms`).
    let mut args = args.to_vec();
    let mut lateness_ms = LATENESS_MS;
    let n = args.len();
    if n >= 8 && args[n - 2].eq_ignore_ascii_case(b"LATENESS") {
        lateness_ms = resp::args::parse_i64(&args[n - 1])
            .filter(|l| *l >= 0)
            .ok_or_else(|| Reply::err("ERR TSDB: Couldn't parse LATENESS"))?
            as u64;
        args.truncate(n - 2);
    }
    let args = args.as_slice();
    if !args[3].eq_ignore_ascii_case(b"AGGREGATION") || !(6..=7).contains(&args.len()) {
        return Err(Reply::err("ERR TSDB: wrong arguments"));
    }
    let aggregator = Aggregator::parse(&args[4])
        .ok_or_else(|| Reply::err("ERR TSDB: Unknown aggregation type"))?;
    let bucket_ms = resp::args::parse_i64(&args[5])
        .ok_or_else(|| Reply::err("ERR TSDB: Couldn't parse AGGREGATION"))?;
    if bucket_ms <= 0 {
        return Err(Reply::err(
            "ERR TSDB: bucketDuration must be greater than zero",
        ));
    }
    let align_ms = match args.get(6) {
        Some(a) => resp::args::parse_i64(a)
            .filter(|a| *a >= 0)
            .ok_or_else(|| Reply::err("ERR TSDB: Couldn't parse alignTimestamp"))?,
        None => 0,
    };
    if source == dest {
        return Err(Reply::err(
            "ERR TSDB: the source key and destination key should be different",
        ));
    }
    let sh = existing(ctx, source)?;
    let dh = existing(ctx, dest)?;
    if dh.source().is_some() {
        return Err(Reply::err(
            "ERR TSDB: the destination key already has a src rule",
        ));
    }
    // No cycles: the source must not be filled, however indirectly, from the destination.
    let mut up = sh.source().map(Bytes::copy_from_slice);
    let mut steps = 0;
    while let Some(s) = up {
        if s == dest || steps == CHAIN_MAX {
            return Err(Reply::err(
                "ERR TSDB: the destination key already has a dst rule",
            ));
        }
        steps += 1;
        up = header(ctx, &s)
            .ok()
            .flatten()
            .and_then(|h| h.source().map(Bytes::copy_from_slice));
    }
    let stamp = ctx.txn.stamp();
    let rule = Rule {
        aggregator,
        bucket_ms: bucket_ms as u64,
        align_ms: align_ms as u64,
        lateness_ms,
    };
    let mut delta = Header {
        top: Some(stamp),
        ..Header::default()
    };
    delta.rules.insert(dest.to_vec(), Some((stamp, Some(rule))));
    ctx.txn.apply_series(source, &delta);
    let delta = Header {
        top: Some(stamp),
        source: Some((stamp, Some(source.to_vec()))),
        ..Header::default()
    };
    ctx.txn.apply_series(dest, &delta);
    Ok(Reply::OK)
}

/// `TS.DELETERULE source dest`.
pub fn deleterule(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(deleterule_inner(ctx, args))
}

fn deleterule_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Result<Reply, Reply> {
    let (source, dest) = (&args[1], &args[2]);
    let sh = existing(ctx, source)?;
    if !sh.rules().any(|(d, _)| d == dest.as_ref()) {
        return Err(Reply::err("ERR TSDB: compaction rule does not exist"));
    }
    let stamp = ctx.txn.stamp();
    let mut delta = Header {
        top: Some(stamp),
        ..Header::default()
    };
    delta.rules.insert(dest.to_vec(), Some((stamp, None)));
    ctx.txn.apply_series(source, &delta);
    if header(ctx, dest).ok().flatten().is_some() {
        let delta = Header {
            top: Some(stamp),
            source: Some((stamp, None)),
            ..Header::default()
        };
        ctx.txn.apply_series(dest, &delta);
    }
    Ok(Reply::OK)
}

/// Every live series whose labels pass `filter`, in key order.
fn matching(ctx: &mut Ctx<'_, '_>, filter: &[Matcher]) -> Result<Vec<(Bytes, Header)>, Reply> {
    let now_ms = ctx.txn.now_ms();
    let mut out = Vec::new();
    let mut after: Option<Bytes> = None;
    loop {
        let page = (ctx.txn)
            .scan(after.as_deref(), 1024)
            .map_err(|e| Reply::Error(format!("ERR storage failure: {e}")))?;
        let done = page.len() < 1024;
        after = page.last().map(|(k, _)| k.clone());
        for (key, stored) in page {
            if stored.live_kind(now_ms) != Some(Kind::TimeSeries) {
                continue;
            }
            let Some(h) = stored.series else { continue };
            if filter.iter().all(|m| m.matches(h.labels())) {
                out.push((key, *h));
            }
        }
        if done {
            return Ok(out);
        }
    }
}

/// `WITHLABELS` / `SELECTED_LABELS l...` and `FILTER expr...` of `TS.MGET`/`TS.MRANGE`, from
/// `rest`; what precedes `FILTER` and is not a label option is handed back.
struct Multi {
    with_labels: bool,
    selected: Option<Vec<String>>,
    filter: Vec<Matcher>,
    group: Option<(String, Reducer)>,
}

fn multi_options(rest: &[&[u8]]) -> Result<Multi, Reply> {
    let mut out = Multi {
        with_labels: false,
        selected: None,
        filter: Vec::new(),
        group: None,
    };
    let mut i = 0;
    let mut filtered = false;
    while i < rest.len() {
        let word = rest[i].to_ascii_uppercase();
        match word.as_slice() {
            b"WITHLABELS" => {
                out.with_labels = true;
                i += 1;
            }
            b"SELECTED_LABELS" => {
                let mut names = Vec::new();
                i += 1;
                while i < rest.len() && !is_multi_word(rest[i]) {
                    names.push(String::from_utf8_lossy(rest[i]).into_owned());
                    i += 1;
                }
                if names.is_empty() {
                    return Err(Reply::err("ERR TSDB: SELECTED_LABELS requires labels"));
                }
                out.selected = Some(names);
            }
            b"FILTER" => {
                let start = i + 1;
                i = start;
                while i < rest.len() && !rest[i].eq_ignore_ascii_case(b"GROUPBY") {
                    i += 1;
                }
                out.filter = args::filter(&rest[start..i]).map_err(Reply::err)?;
                filtered = true;
            }
            b"GROUPBY" => {
                let (Some(label), Some(reduce), Some(name)) =
                    (rest.get(i + 1), rest.get(i + 2), rest.get(i + 3))
                else {
                    return Err(Reply::err("ERR TSDB: wrong arguments"));
                };
                if !reduce.eq_ignore_ascii_case(b"REDUCE") {
                    return Err(Reply::err("ERR TSDB: wrong arguments"));
                }
                let reducer = Reducer::parse(name)
                    .ok_or_else(|| Reply::err("ERR TSDB: failed parsing reducer"))?;
                out.group = Some((String::from_utf8_lossy(label).into_owned(), reducer));
                i += 4;
            }
            _ => return Err(Reply::err("ERR TSDB: wrong arguments")),
        }
    }
    if !filtered {
        return Err(Reply::err("ERR TSDB: missing FILTER argument"));
    }
    if out.with_labels && out.selected.is_some() {
        return Err(Reply::err(
            "ERR TSDB: cannot accept WITHLABELS and SELECT_LABELS together",
        ));
    }
    Ok(out)
}

fn is_multi_word(word: &[u8]) -> bool {
    [&b"FILTER"[..], b"WITHLABELS", b"GROUPBY"]
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w))
}

impl Multi {
    /// The labels a reply shows of a series: all, the selected ones, or none.
    fn labels(&self, labels: &[(String, String)]) -> Vec<(String, Option<String>)> {
        if self.with_labels {
            return all_labels(labels);
        }
        let Some(names) = &self.selected else {
            return Vec::new();
        };
        (names.iter())
            .map(|n| {
                let v = labels.iter().find(|(l, _)| l == n).map(|(_, v)| v.clone());
                (n.clone(), v)
            })
            .collect()
    }
}

/// `TS.MGET`/`TS.MRANGE` replies: `[[key, labels, rest...], ...]` in RESP2, a map of key to
/// `[labels, rest...]` in RESP3 (`rest3` may differ from `rest2`).
fn by_key(rows: Vec<(Bytes, Reply, Vec<Reply>, Vec<Reply>)>) -> Reply {
    let mut resp2 = Vec::with_capacity(rows.len());
    let mut resp3 = Vec::with_capacity(rows.len());
    for (key, labels, rest2, rest3) in rows {
        let mut row = vec![Reply::Bulk(key.clone()), labels.clone()];
        row.extend(rest2);
        resp2.push(Reply::Array(row));
        let mut row = vec![labels];
        row.extend(rest3);
        resp3.push((Reply::Bulk(key), Reply::Array(row)));
    }
    Reply::per_protocol(Reply::Array(resp2), Reply::Map(resp3))
}

/// `TS.MGET [LATEST] [WITHLABELS | SELECTED_LABELS label...] FILTER expr...`.
pub fn mget(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(mget_inner(ctx, args))
}

fn mget_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Result<Reply, Reply> {
    let mut rest = words(&args[1..]);
    let latest = rest
        .first()
        .is_some_and(|w| w.eq_ignore_ascii_case(b"LATEST"));
    if latest {
        rest.remove(0);
    }
    let multi = multi_options(&rest)?;
    let mut rows = Vec::new();
    for (key, h) in matching(ctx, &multi.filter)? {
        let last = last_sample(ctx, &key, &h, latest);
        let sample = last.map_or(Reply::Array(Vec::new()), sample_reply);
        let labels = labels_reply(&multi.labels(h.labels()));
        rows.push((key, labels, vec![sample.clone()], vec![sample]));
    }
    Ok(by_key(rows))
}

/// `TS.MRANGE from to [options] [WITHLABELS | SELECTED_LABELS ...] FILTER expr...
/// [GROUPBY label REDUCE reducer]`.
pub fn mrange(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(mrange_inner(ctx, args, false))
}

/// `TS.MREVRANGE`: as `TS.MRANGE`, newest first.
pub fn mrevrange(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(mrange_inner(ctx, args, true))
}

fn mrange_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes], reverse: bool) -> Result<Reply, Reply> {
    let all = words(&args[1..]);
    let stop: &[&[u8]] = &[b"FILTER", b"WITHLABELS", b"SELECTED_LABELS", b"GROUPBY"];
    let (options, used) = args::range_options(&all, stop).map_err(Reply::err)?;
    let multi = multi_options(&all[used..])?;
    let series = matching(ctx, &multi.filter)?;
    let samples_reply = |s: Vec<Sample>| Reply::Array(s.into_iter().map(sample_reply).collect());
    let text = |t: &str| Reply::Bulk(Bytes::copy_from_slice(t.as_bytes()));
    let mut rows = Vec::new();
    match &multi.group {
        None => {
            // RESP3 adds which aggregators made the samples.
            let aggregators: Vec<Reply> = (options.aggregation.iter())
                .map(|a| text(a.aggregator.name()))
                .collect();
            let meta = Reply::Map(vec![(text("aggregators"), Reply::Array(aggregators))]);
            for (key, h) in series {
                let samples = samples_reply(range_of(ctx, &key, &h, &options, reverse));
                let labels = labels_reply(&multi.labels(h.labels()));
                rows.push((
                    key,
                    labels,
                    vec![samples.clone()],
                    vec![meta.clone(), samples],
                ));
            }
        }
        Some((label, reducer)) => {
            // Series grouped by the label's value; each group's samples reduced per instant.
            let mut groups: std::collections::BTreeMap<String, Vec<(Bytes, Vec<Sample>)>> =
                Default::default();
            for (key, h) in series {
                let Some(value) = h.labels().iter().find(|(l, _)| l == label) else {
                    continue;
                };
                let samples = range_of(ctx, &key, &h, &options, false);
                (groups.entry(value.1.clone()).or_default()).push((key, samples));
            }
            let meta = Reply::Map(vec![(
                text("reducers"),
                Reply::Array(vec![text(reducer.name())]),
            )]);
            for (value, members) in groups {
                let sources: Vec<String> = (members.iter())
                    .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                    .collect();
                let series: Vec<Vec<Sample>> = members.into_iter().map(|(_, s)| s).collect();
                let mut reduced = reducer.reduce(&series);
                if reverse {
                    reduced.reverse();
                }
                if let Some(n) = options.count {
                    reduced.truncate(n as usize);
                }
                let name = Bytes::from(format!("{label}={value}"));
                let mut labels = vec![(label.clone(), Some(value.clone()))];
                if !multi.with_labels && multi.selected.is_none() {
                    labels.clear();
                }
                labels.push(("__reducer__".to_string(), Some(reducer.name().to_string())));
                labels.push(("__source__".to_string(), Some(sources.join(","))));
                let samples = samples_reply(reduced);
                let labels = labels_reply(&labels);
                rows.push((
                    name,
                    labels,
                    vec![samples.clone()],
                    vec![meta.clone(), samples],
                ));
            }
        }
    }
    Ok(by_key(rows))
}

/// `TS.NRANGE numkeys key... from to [options]`: each key's range (the options of `TS.RANGE`,
/// `AGGREGATION` naming one aggregator list per key, `avg,max sum 1000`), joined on time:
/// `[[ts, [value...]]...]`, a value per key (per aggregator of its list), `NaN` where a key
/// has nothing at that instant. `COUNT` keeps that many rows of the join.
pub fn nrange(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(nrange_inner(ctx, args, false))
}

/// `TS.NREVRANGE`: [`nrange`], newest row first.
pub fn nrevrange(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(nrange_inner(ctx, args, true))
}

fn nrange_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes], reverse: bool) -> Result<Reply, Reply> {
    let numkeys = (std::str::from_utf8(&args[1]).ok())
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| Reply::err("ERR TSDB: numkeys must be a positive integer"))?;
    if args.len() < 2 + numkeys + 2 {
        return Err(Reply::err("ERR TSDB: wrong number of keys or arguments"));
    }
    let keys = &args[2..2 + numkeys];
    let (options, lists) =
        args::nrange_options(&words(&args[2 + numkeys..]), numkeys).map_err(Reply::err)?;
    // Each column: a key's range under one aggregator (or its samples, unaggregated).
    let mut columns: Vec<Vec<Sample>> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let h = existing(ctx, key)?;
        let mut one = RangeOptions {
            count: None,
            ..options.clone()
        };
        match lists.get(i) {
            Some(list) => {
                for &aggregator in list {
                    if let Some(agg) = one.aggregation.as_mut() {
                        agg.aggregator = aggregator;
                    }
                    columns.push(range_of(ctx, key, &h, &one, false));
                }
            }
            None => columns.push(range_of(ctx, key, &h, &one, false)),
        }
    }
    let mut rows: std::collections::BTreeMap<i64, Vec<f64>> = Default::default();
    for (c, column) in columns.iter().enumerate() {
        for &(t, v) in column {
            rows.entry(t)
                .or_insert_with(|| vec![f64::NAN; columns.len()])[c] = v;
        }
    }
    let row = |(t, values): (i64, Vec<f64>)| {
        Reply::Array(vec![
            Reply::Int(t),
            Reply::Array(values.into_iter().map(Reply::Double).collect()),
        ])
    };
    let limit = options.count.map_or(usize::MAX, |n| n as usize);
    let out: Vec<Reply> = if reverse {
        rows.into_iter().rev().take(limit).map(row).collect()
    } else {
        rows.into_iter().take(limit).map(row).collect()
    };
    Ok(Reply::Array(out))
}

/// `TS.READ key from [BLOCK ms min_count] [MAX_COUNT n]`: the samples at or after `from`
/// (`-` the first, `+` the newest), oldest first, at most `n` of them. With `BLOCK`, a client
/// finding fewer than `min_count` waits (parked by the engine, woken by writes to the series,
/// as `BLPOP` is) until that many have come or `ms` passed (0: for ever); on the timeout it
/// gets an empty answer. `$` reads only samples after the series' newest one when the
/// command arrives ([`pin_read`]).
pub fn read(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(read_inner(ctx, args))
}

fn read_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Result<Reply, Reply> {
    let key = &args[1];
    let mut block: Option<u64> = None;
    let mut max_count: Option<usize> = None;
    let mut i = 3;
    while i < args.len() {
        let word = args[i].to_ascii_uppercase();
        match word.as_slice() {
            b"BLOCK" => {
                let (Some(ms), Some(count)) = (args.get(i + 1), args.get(i + 2)) else {
                    return Err(Reply::err("ERR TSDB: BLOCK needs milliseconds and a count"));
                };
                resp::args::parse_i64(ms)
                    .filter(|ms| *ms >= 0)
                    .ok_or_else(|| Reply::err("ERR TSDB: Couldn't parse BLOCK milliseconds"))?;
                let count = resp::args::parse_i64(count)
                    .filter(|c| *c > 0)
                    .ok_or_else(|| Reply::err("ERR TSDB: Couldn't parse BLOCK count"))?;
                block = Some(count as u64);
                i += 3;
            }
            b"MAX_COUNT" => {
                let n = args
                    .get(i + 1)
                    .and_then(|n| resp::args::parse_i64(n))
                    .filter(|n| *n > 0)
                    .ok_or_else(|| Reply::err("ERR TSDB: Couldn't parse MAX_COUNT"))?;
                max_count = Some(n as usize);
                i += 2;
            }
            _ => return Err(Reply::err("ERR TSDB: wrong arguments")),
        }
    }
    let Some(h) = header(ctx, key)? else {
        // A key that does not exist yet: a blocked reader waits for it.
        return match block {
            Some(_) => Ok(Reply::NullArray),
            None => Err(Reply::err(NO_KEY)),
        };
    };
    let from = match args[2].as_ref() {
        b"-" => i64::MIN,
        b"+" => last_sample(ctx, key, &h, false).map_or(i64::MAX, |s| s.0),
        // Unpinned (inside MULTI, where nothing blocks): nothing has come after the command.
        b"$" => return Ok(Reply::Array(Vec::new())),
        t => resp::args::parse_i64(t)
            .filter(|t| *t >= 0)
            .ok_or_else(|| Reply::err(BAD_TS))?,
    };
    let mut out = samples(ctx, key, &h, from, i64::MAX, false, 0);
    if block.is_some_and(|need| (out.len() as u64) < need) {
        return Ok(Reply::NullArray);
    }
    if let Some(n) = max_count {
        out.truncate(n);
    }
    Ok(Reply::Array(out.into_iter().map(sample_reply).collect()))
}

/// `TS.READ key $`: `$` becomes the instant after the series' newest sample as the command
/// arrives (0 for a series not there yet), so a reader parked and woken again reads from
/// the same place: samples written after its arrival with later instants. (A late sample,
/// older than that newest one, is not "after" in time and is not read.)
pub fn pin_read(ctx: &mut Ctx<'_, '_>, args: &mut [Bytes]) {
    if args.get(2).is_none_or(|from| from.as_ref() != b"$") {
        return;
    }
    let next = match header(ctx, &args[1]) {
        Ok(Some(h)) => last_sample(ctx, &args[1], &h, false).map_or(0, |s| s.0.saturating_add(1)),
        Ok(None) => 0,
        Err(_) => return, // the command answers the error itself
    };
    args[2] = Bytes::from(next.to_string());
}

/// `TS.QUERYLABELS LABELS [FILTER expr...]`: the label names of the series that pass (every
/// series without a filter); `TS.QUERYLABELS VALUES label [FILTER expr...]`: the values they
/// give `label`. A set, each name or value once.
pub fn querylabels(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(querylabels_inner(ctx, args))
}

fn querylabels_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Result<Reply, Reply> {
    let w = words(&args[1..]);
    let (label, rest) = match w.first().map(|m| m.to_ascii_uppercase()).as_deref() {
        Some(b"LABELS") => (None, &w[1..]),
        Some(b"VALUES") if w.len() >= 2 => {
            (Some(String::from_utf8_lossy(w[1]).into_owned()), &w[2..])
        }
        _ => return Err(Reply::err("ERR TSDB: wrong arguments")),
    };
    let filter = match rest.split_first() {
        None => Vec::new(),
        Some((f, exprs)) if f.eq_ignore_ascii_case(b"FILTER") && !exprs.is_empty() => {
            args::filter(exprs).map_err(Reply::err)?
        }
        _ => return Err(Reply::err("ERR TSDB: wrong arguments")),
    };
    let mut found = std::collections::BTreeSet::new();
    for (_, h) in matching(ctx, &filter)? {
        for (name, value) in h.labels() {
            match &label {
                None => found.insert(name.clone()),
                Some(l) if l == name => found.insert(value.clone()),
                Some(_) => false,
            };
        }
    }
    Ok(Reply::Set(
        found
            .into_iter()
            .map(|t| Reply::Bulk(Bytes::from(t)))
            .collect(),
    ))
}

/// `TS.QUERYINDEX filter...`: the keys of the series that pass.
pub fn queryindex(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Reply {
    reply(queryindex_inner(ctx, args))
}

fn queryindex_inner(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Result<Reply, Reply> {
    let filter = args::filter(&words(&args[1..])).map_err(Reply::err)?;
    let keys = matching(ctx, &filter)?;
    Ok(Reply::Array(
        keys.into_iter().map(|(k, _)| Reply::Bulk(k)).collect(),
    ))
}

/// A series' settings and samples, read to be written again under another name (`RENAME`,
/// `COPY`). Rules are not carried over.
pub struct Copied {
    options: SeriesOptions,
    samples: Vec<Sample>,
}

/// Reads the series at `key` to copy it.
pub fn read_copy(ctx: &mut Ctx<'_, '_>, key: &Bytes) -> Option<Copied> {
    let h = header(ctx, key).ok()??;
    let samples = samples(ctx, key, &h, i64::MIN, i64::MAX, false, 0);
    let (t, v) = h.ignore();
    Some(Copied {
        options: SeriesOptions {
            retention_ms: Some(h.retention_ms()),
            encoding: Some(h.encoding()),
            chunk_size: h.chunk_size(),
            duplicate_policy: h.policy(),
            ignore: Some((t, v)),
            labels: Some(h.labels().to_vec()),
        },
        samples,
    })
}

/// Writes `copied` as a new series at `key`, which holds nothing live.
pub fn write_copy(ctx: &mut Ctx<'_, '_>, key: &Bytes, copied: Copied) {
    let stamp = ctx.txn.stamp();
    ctx.txn
        .apply_series(key, &create_delta(&copied.options, stamp));
    let mut by_window: std::collections::BTreeMap<i64, Window> = Default::default();
    for (ts, value) in copied.samples {
        (by_window.entry(window_of(ts)).or_default()).write(Write { ts, value, stamp });
    }
    for (start, delta) in by_window {
        ctx.txn
            .apply_part(key, &window_name(start), &delta, Some(stamp));
    }
}
