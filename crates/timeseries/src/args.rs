//! The arguments of the `TS.*` commands, parsed with no I/O, and their errors in RedisTimeSeries's
//! words (`ERR TSDB: ...`), so that clients written for it read the same answers.
//!
//! Options come in any order after the fixed arguments; an option given twice takes its last
//! value; a word that is no option is an error.

use crate::aggregate::{Aggregator, BucketTimestamp};

/// An error reply's text.
pub type Error = &'static str;

/// What to do with a sample at a timestamp the series already holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Policy {
    /// Refuse it (RedisTimeSeries's default).
    #[default]
    Block,
    /// Keep the value there.
    First,
    /// Keep the new value.
    Last,
    /// Keep the lower.
    Min,
    /// Keep the higher.
    Max,
    /// Add them.
    Sum,
}

impl Policy {
    /// The policy named `name`, in any case.
    pub fn parse(name: &[u8]) -> Option<Policy> {
        [
            Policy::Block,
            Policy::First,
            Policy::Last,
            Policy::Min,
            Policy::Max,
            Policy::Sum,
        ]
        .into_iter()
        .find(|p| p.name().as_bytes().eq_ignore_ascii_case(name))
    }

    /// Its name, as `TS.INFO` shows it.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Block => "block",
            Policy::First => "first",
            Policy::Last => "last",
            Policy::Min => "min",
            Policy::Max => "max",
            Policy::Sum => "sum",
        }
    }
}

/// How a series stores its samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Encoding {
    /// Gorilla chunks (the default).
    #[default]
    Compressed,
    /// Accepted for compatibility; stored compressed all the same.
    Uncompressed,
}

/// The options of `TS.CREATE` and `TS.ALTER` (and those `TS.ADD` takes for a new series).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesOptions {
    /// `RETENTION ms` (0: keep everything).
    pub retention_ms: Option<u64>,
    /// `ENCODING COMPRESSED|UNCOMPRESSED`.
    pub encoding: Option<Encoding>,
    /// `CHUNK_SIZE bytes`: a multiple of 8, from 48 to 1048576.
    pub chunk_size: Option<u64>,
    /// `DUPLICATE_POLICY policy` (`ON_DUPLICATE policy` for one `TS.ADD`).
    pub duplicate_policy: Option<Policy>,
    /// `IGNORE maxTimeDiff maxValDiff`: a sample this close to the last one is dropped.
    pub ignore: Option<(u64, f64)>,
    /// `LABELS label value ...` (last, it takes the rest).
    pub labels: Option<Vec<(String, String)>>,
}

/// Parses `TS.CREATE key` options (`args` after the key). `ON_DUPLICATE` is `TS.ADD`'s word:
/// accepted where `on_duplicate` says.
pub fn series_options(args: &[&[u8]], on_duplicate: bool) -> Result<SeriesOptions, Error> {
    let mut out = SeriesOptions::default();
    let mut i = 0;
    while i < args.len() {
        let word = args[i].to_ascii_uppercase();
        let value = |n: usize| args.get(i + n).copied();
        match word.as_slice() {
            b"RETENTION" => {
                let ms = value(1).and_then(parse_u64);
                out.retention_ms = Some(ms.ok_or("ERR TSDB: Couldn't parse RETENTION")?);
                i += 2;
            }
            b"ENCODING" => {
                let name = value(1).ok_or("ERR TSDB: unknown ENCODING parameter")?;
                out.encoding = Some(match name.to_ascii_uppercase().as_slice() {
                    b"COMPRESSED" => Encoding::Compressed,
                    b"UNCOMPRESSED" => Encoding::Uncompressed,
                    _ => return Err("ERR TSDB: unknown ENCODING parameter"),
                });
                i += 2;
            }
            b"CHUNK_SIZE" => {
                let size = value(1)
                    .and_then(parse_u64)
                    .ok_or("ERR TSDB: invalid CHUNK_SIZE value")?;
                if !(48..=1_048_576).contains(&size) || !size.is_multiple_of(8) {
                    return Err(
                        "ERR TSDB: CHUNK_SIZE value must be a multiple of 8 in the range [48 .. 1048576]",
                    );
                }
                out.chunk_size = Some(size);
                i += 2;
            }
            b"DUPLICATE_POLICY" => {
                let name = value(1).ok_or("ERR TSDB: Couldn't parse DUPLICATE_POLICY")?;
                out.duplicate_policy =
                    Some(Policy::parse(name).ok_or("ERR TSDB: Unknown DUPLICATE_POLICY")?);
                i += 2;
            }
            b"ON_DUPLICATE" if on_duplicate => {
                let name = value(1).ok_or("ERR TSDB: Couldn't parse ON_DUPLICATE")?;
                out.duplicate_policy =
                    Some(Policy::parse(name).ok_or("ERR TSDB: Unknown ON_DUPLICATE policy")?);
                i += 2;
            }
            b"IGNORE" => {
                let time = value(1).and_then(parse_u64);
                let diff = value(2).and_then(parse_f64).filter(|v| *v >= 0.0);
                match (time, diff) {
                    (Some(t), Some(v)) => out.ignore = Some((t, v)),
                    _ => return Err("ERR TSDB: Couldn't parse IGNORE"),
                }
                i += 3;
            }
            b"LABELS" => {
                let rest = &args[i + 1..];
                if !rest.len().is_multiple_of(2) {
                    return Err("ERR TSDB: Couldn't parse LABELS");
                }
                let mut labels = Vec::new();
                for pair in rest.chunks(2) {
                    let (name, value) = (text(pair[0])?, text(pair[1])?);
                    if name.is_empty() || value.is_empty() || value.contains(['(', ')', ',']) {
                        return Err("ERR TSDB: Couldn't parse LABELS");
                    }
                    labels.retain(|(n, _)| *n != name);
                    labels.push((name, value));
                }
                out.labels = Some(labels);
                i = args.len();
            }
            _ => return Err("ERR TSDB: wrong arguments"),
        }
    }
    Ok(out)
}

/// Where a range ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// `-`: the series' first sample.
    First,
    /// `+`: its last.
    Last,
    /// A timestamp in ms.
    At(u64),
}

/// `ALIGN`: where buckets start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Align {
    /// At multiples of the bucket's length (from 0).
    #[default]
    Zero,
    /// At the range's start (`start`, `-`).
    Start,
    /// At the range's end (`end`, `+`).
    End,
    /// At this timestamp.
    At(u64),
}

/// The aggregation of a range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Aggregation {
    /// The aggregator.
    pub aggregator: Aggregator,
    /// The bucket's length in ms.
    pub bucket_ms: u64,
    /// Which instant of its bucket each result carries.
    pub stamp: BucketTimestamp,
    /// Empty buckets reported too.
    pub empty: bool,
}

/// The arguments of `TS.RANGE` and `TS.REVRANGE` (and the range part of `TS.MRANGE`).
#[derive(Clone, Debug, PartialEq)]
pub struct RangeOptions {
    /// The range's start.
    pub from: Bound,
    /// Its end.
    pub to: Bound,
    /// `LATEST`: include the compaction's bucket still open.
    pub latest: bool,
    /// `FILTER_BY_TS ts...`: only these timestamps.
    pub filter_ts: Vec<u64>,
    /// `FILTER_BY_VALUE min max`: only values in `[min, max]`.
    pub filter_value: Option<(f64, f64)>,
    /// `COUNT n`: at most this many results.
    pub count: Option<u64>,
    /// `ALIGN align`.
    pub align: Align,
    /// `AGGREGATION aggregator bucketDuration [BUCKETTIMESTAMP bt] [EMPTY]`.
    pub aggregation: Option<Aggregation>,
    /// `WITHSTATUS` (Meridian's): each sample also says whether it is final (see the node's
    /// `cmd/timeseries.rs`).
    pub with_status: bool,
}

/// Most timestamps `FILTER_BY_TS` takes.
pub const FILTER_TS_MAX: usize = 128;

/// Parses `from to [options]` of `TS.RANGE key from to ...` (`args` after the key).
/// `TS.MRANGE`'s own words (`FILTER` and what follows it) end the options: `stop_at` names
/// them.
pub fn range_options(args: &[&[u8]], stop_at: &[&[u8]]) -> Result<(RangeOptions, usize), Error> {
    let (Some(from), Some(to)) = (args.first(), args.get(1)) else {
        return Err("ERR wrong number of arguments for 'ts.range' command");
    };
    let bound = |word: &[u8], edge: &[u8], open: Bound, error: Error| match word {
        w if w == edge => Ok(open),
        w => parse_u64(w).map(Bound::At).ok_or(error),
    };
    let mut out = RangeOptions {
        from: bound(from, b"-", Bound::First, "ERR TSDB: wrong fromTimestamp")?,
        to: bound(to, b"+", Bound::Last, "ERR TSDB: wrong toTimestamp")?,
        latest: false,
        filter_ts: Vec::new(),
        filter_value: None,
        count: None,
        align: Align::Zero,
        aggregation: None,
        with_status: false,
    };
    let mut aligned = false;
    let mut i = 2;
    while i < args.len() {
        let word = args[i].to_ascii_uppercase();
        if stop_at.iter().any(|s| s.eq_ignore_ascii_case(&word)) {
            break;
        }
        match word.as_slice() {
            b"WITHSTATUS" => {
                out.with_status = true;
                i += 1;
            }
            b"LATEST" => {
                out.latest = true;
                i += 1;
            }
            b"FILTER_BY_TS" => {
                let mut j = i + 1;
                while j < args.len()
                    && let Some(ts) = parse_u64(args[j])
                {
                    if out.filter_ts.len() == FILTER_TS_MAX {
                        return Err("ERR TSDB: too many FILTER_BY_TS timestamps");
                    }
                    out.filter_ts.push(ts);
                    j += 1;
                }
                if j == i + 1 {
                    return Err("ERR TSDB: FILTER_BY_TS one or more arguments are missing");
                }
                out.filter_ts.sort_unstable();
                out.filter_ts.dedup();
                i = j;
            }
            b"FILTER_BY_VALUE" => {
                let (Some(min), Some(max)) = (args.get(i + 1), args.get(i + 2)) else {
                    return Err("ERR TSDB: FILTER_BY_VALUE one or more arguments are missing");
                };
                let min = parse_f64(min).ok_or("ERR TSDB: Couldn't parse MIN")?;
                let max = parse_f64(max).ok_or("ERR TSDB: Couldn't parse MAX")?;
                out.filter_value = Some((min, max));
                i += 3;
            }
            b"COUNT" => {
                let n = args
                    .get(i + 1)
                    .ok_or("ERR TSDB: COUNT argument is missing")?;
                out.count = Some(parse_u64(n).ok_or("ERR TSDB: Couldn't parse COUNT")?);
                i += 2;
            }
            b"ALIGN" => {
                let a = args.get(i + 1).ok_or("ERR TSDB: unknown ALIGN parameter")?;
                out.align = match a.to_ascii_lowercase().as_slice() {
                    b"start" | b"-" => Align::Start,
                    b"end" | b"+" => Align::End,
                    other => {
                        Align::At(parse_u64(other).ok_or("ERR TSDB: unknown ALIGN parameter")?)
                    }
                };
                aligned = true;
                i += 2;
            }
            b"AGGREGATION" => {
                let name = args
                    .get(i + 1)
                    .ok_or("ERR TSDB: Couldn't parse AGGREGATION")?;
                let aggregator =
                    Aggregator::parse(name).ok_or("ERR TSDB: Unknown aggregation type")?;
                let bucket = args
                    .get(i + 2)
                    .ok_or("ERR TSDB: Couldn't parse AGGREGATION")?;
                let bucket_ms = resp_i64(bucket).ok_or("ERR TSDB: Couldn't parse AGGREGATION")?;
                if bucket_ms <= 0 {
                    return Err("ERR TSDB: bucketDuration must be greater than zero");
                }
                let mut agg = Aggregation {
                    aggregator,
                    bucket_ms: bucket_ms as u64,
                    stamp: BucketTimestamp::Start,
                    empty: false,
                };
                i += 3;
                while let Some(word) = args.get(i).map(|w| w.to_ascii_uppercase()) {
                    match word.as_slice() {
                        b"BUCKETTIMESTAMP" => {
                            let bt = args
                                .get(i + 1)
                                .ok_or("ERR TSDB: BUCKETTIMESTAMP is missing")?;
                            agg.stamp = match bt.to_ascii_lowercase().as_slice() {
                                b"-" | b"start" | b"low" => BucketTimestamp::Start,
                                b"~" | b"mid" => BucketTimestamp::Mid,
                                b"+" | b"end" | b"high" => BucketTimestamp::End,
                                _ => return Err("ERR TSDB: unknown BUCKETTIMESTAMP parameter"),
                            };
                            i += 2;
                        }
                        b"EMPTY" => {
                            agg.empty = true;
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.aggregation = Some(agg);
            }
            _ => return Err("ERR TSDB: wrong arguments"),
        }
    }
    if out.with_status && out.aggregation.is_some() {
        return Err("ERR TSDB: WITHSTATUS does not go with AGGREGATION");
    }
    if aligned {
        if out.aggregation.is_none() {
            return Err("ERR TSDB: ALIGN parameter can only be used with AGGREGATION");
        }
        if out.align == Align::Start && out.from == Bound::First {
            return Err("ERR TSDB: start alignment can only be used with explicit start timestamp");
        }
        if out.align == Align::End && out.to == Bound::Last {
            return Err("ERR TSDB: end alignment can only be used with explicit end timestamp");
        }
    }
    Ok((out, i))
}

/// Most aggregators one key of `TS.NRANGE` may name (`avg,max,...`).
pub const NRANGE_AGGREGATORS_MAX: usize = 16;

/// Parses `from to [options]` of `TS.NRANGE numkeys key... from to ...` (`args` after the
/// keys). Its `AGGREGATION` names one aggregator list per key (`avg,max sum 1000` for two
/// keys) before the shared bucket duration; the lists come back beside the options, whose
/// `aggregation` carries the first key's first aggregator and the shared settings.
pub fn nrange_options(
    args: &[&[u8]],
    keys: usize,
) -> Result<(RangeOptions, Vec<Vec<Aggregator>>), Error> {
    if keys == 0 {
        return Err("ERR TSDB: numkeys must be a positive integer");
    }
    let mut rest: Vec<&[u8]> = args.to_vec();
    let mut lists = Vec::new();
    // Past `from to`, the only words that are not numbers or keywords are aggregator lists.
    if let Some(at) = (2..rest.len()).find(|&i| rest[i].eq_ignore_ascii_case(b"AGGREGATION")) {
        // The lists run to the bucket's duration, the first number after them.
        let end = (at + 1..rest.len())
            .find(|&i| resp_i64(rest[i]).is_some())
            .ok_or("ERR TSDB: Couldn't parse AGGREGATION")?;
        if end - (at + 1) != keys {
            return Err("ERR TSDB: AGGREGATION takes one aggregator list per key");
        }
        for spec in &rest[at + 1..end] {
            let mut list = Vec::new();
            for name in spec.split(|&b| b == b',') {
                let aggregator =
                    Aggregator::parse(name).ok_or("ERR TSDB: Unknown aggregation type")?;
                if list.contains(&aggregator) {
                    return Err("ERR TSDB: an aggregator is named twice for one key");
                }
                list.push(aggregator);
            }
            if list.len() > NRANGE_AGGREGATORS_MAX {
                return Err("ERR TSDB: at most 16 aggregators a key");
            }
            lists.push(list);
        }
        // The first list's first name stands for them all in what the range parser reads.
        rest.drain(at + 2..end);
        rest[at + 1] = lists[0][0].name().as_bytes();
    }
    let (options, used) = range_options(&rest, &[])?;
    debug_assert_eq!(used, rest.len());
    if options.with_status {
        return Err("ERR TSDB: WITHSTATUS does not go with TS.NRANGE");
    }
    Ok((options, lists))
}

/// One condition of a `FILTER` (`TS.MGET`, `TS.MRANGE`, `TS.QUERYINDEX`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Matcher {
    /// `label=value` (`label=(a,b)`: one of them).
    Is(String, Vec<String>),
    /// `label!=value` (`label!=(a,b)`: none of them).
    IsNot(String, Vec<String>),
    /// `label!=`: the series has the label.
    Has(String),
    /// `label=`: the series does not have the label.
    Lacks(String),
}

impl Matcher {
    /// Whether a series with `labels` passes.
    pub fn matches(&self, labels: &[(String, String)]) -> bool {
        let value = |name: &str| labels.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        match self {
            Matcher::Is(name, values) => value(name).is_some_and(|v| values.contains(v)),
            Matcher::IsNot(name, values) => value(name).is_none_or(|v| !values.contains(v)),
            Matcher::Has(name) => value(name).is_some(),
            Matcher::Lacks(name) => value(name).is_none(),
        }
    }
}

/// Parses a `FILTER`'s expressions: at least one must be a positive match (`l=v` or
/// `l=(v,w)`), as RedisTimeSeries asks, so a filter never means "every series".
pub fn filter(exprs: &[&[u8]]) -> Result<Vec<Matcher>, Error> {
    const BAD: Error = "ERR TSDB: failed parsing labels";
    let mut out = Vec::new();
    for expr in exprs {
        let expr = text(expr).map_err(|_| BAD)?;
        let (name, negated, value) = match expr.split_once("!=") {
            Some((n, v)) => (n, true, v),
            None => match expr.split_once('=') {
                Some((n, v)) => (n, false, v),
                None => return Err(BAD),
            },
        };
        if name.is_empty() {
            return Err(BAD);
        }
        let values: Vec<String> = match value.strip_prefix('(') {
            Some(list) => {
                let list = list.strip_suffix(')').ok_or(BAD)?;
                list.split(',').map(str::to_string).collect()
            }
            None if value.is_empty() => Vec::new(),
            None => vec![value.to_string()],
        };
        let name = name.to_string();
        out.push(match (negated, values.is_empty()) {
            (false, false) => Matcher::Is(name, values),
            (true, false) => Matcher::IsNot(name, values),
            (true, true) => Matcher::Has(name),
            (false, true) => Matcher::Lacks(name),
        });
    }
    if !out.iter().any(|m| matches!(m, Matcher::Is(..))) {
        return Err("ERR TSDB: please provide at least one matcher");
    }
    Ok(out)
}

fn text(word: &[u8]) -> Result<String, Error> {
    String::from_utf8(word.to_vec()).map_err(|_| "ERR TSDB: labels must be UTF-8 text")
}

fn resp_i64(word: &[u8]) -> Option<i64> {
    std::str::from_utf8(word).ok()?.parse().ok()
}

fn parse_u64(word: &[u8]) -> Option<u64> {
    let n = resp_i64(word)?;
    u64::try_from(n).ok()
}

fn parse_f64(word: &[u8]) -> Option<f64> {
    let v: f64 = std::str::from_utf8(word).ok()?.parse().ok()?;
    (!v.is_nan()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<&[u8]> {
        s.split_whitespace().map(str::as_bytes).collect()
    }

    #[test]
    fn series_options_parse_in_any_order_and_refuse_with_redistimeseries_texts() {
        let got = series_options(
            &words(
                "DUPLICATE_POLICY last RETENTION 60000 CHUNK_SIZE 128 LABELS room kitchen floor 1",
            ),
            false,
        )
        .unwrap();
        assert_eq!(got.retention_ms, Some(60000));
        assert_eq!(got.chunk_size, Some(128));
        assert_eq!(got.duplicate_policy, Some(Policy::Last));
        assert_eq!(
            got.labels.unwrap(),
            [
                ("room".into(), "kitchen".into()),
                ("floor".into(), "1".into())
            ]
        );
        for (args, error) in [
            ("RETENTION -1", "ERR TSDB: Couldn't parse RETENTION"),
            ("RETENTION", "ERR TSDB: Couldn't parse RETENTION"),
            (
                "CHUNK_SIZE 100",
                "ERR TSDB: CHUNK_SIZE value must be a multiple of 8 in the range [48 .. 1048576]",
            ),
            (
                "DUPLICATE_POLICY often",
                "ERR TSDB: Unknown DUPLICATE_POLICY",
            ),
            ("ENCODING zip", "ERR TSDB: unknown ENCODING parameter"),
            ("LABELS a", "ERR TSDB: Couldn't parse LABELS"),
            ("LABELS a (b)", "ERR TSDB: Couldn't parse LABELS"),
            ("ON_DUPLICATE sum", "ERR TSDB: wrong arguments"),
            ("BOGUS", "ERR TSDB: wrong arguments"),
        ] {
            assert_eq!(series_options(&words(args), false), Err(error), "{args}");
        }
        let add = series_options(&words("ON_DUPLICATE SUM IGNORE 10 0.5"), true).unwrap();
        assert_eq!(
            (add.duplicate_policy, add.ignore),
            (Some(Policy::Sum), Some((10, 0.5)))
        );
    }

    #[test]
    fn nrange_options_take_one_aggregator_list_a_key() {
        let (got, lists) =
            nrange_options(&words("- + COUNT 2 AGGREGATION avg,max sum 1000 EMPTY"), 2).unwrap();
        assert_eq!(
            lists,
            [
                vec![Aggregator::Avg, Aggregator::Max],
                vec![Aggregator::Sum]
            ]
        );
        let agg = got.aggregation.unwrap();
        assert_eq!(
            (agg.aggregator, agg.bucket_ms, agg.empty),
            (Aggregator::Avg, 1000, true)
        );
        assert_eq!(got.count, Some(2));
        let (plain, lists) = nrange_options(&words("10 20 FILTER_BY_VALUE 1 2"), 3).unwrap();
        assert!(lists.is_empty() && plain.aggregation.is_none());
        for (args, error) in [
            (
                "- + AGGREGATION avg 1000",
                "ERR TSDB: AGGREGATION takes one aggregator list per key",
            ),
            (
                "- + AGGREGATION avg sum max 1000",
                "ERR TSDB: AGGREGATION takes one aggregator list per key",
            ),
            (
                "- + AGGREGATION avg,avg sum 1000",
                "ERR TSDB: an aggregator is named twice for one key",
            ),
            (
                "- + AGGREGATION avg,bogus sum 1000",
                "ERR TSDB: Unknown aggregation type",
            ),
            (
                "- + AGGREGATION avg",
                "ERR TSDB: Couldn't parse AGGREGATION",
            ),
            (
                "- + WITHSTATUS",
                "ERR TSDB: WITHSTATUS does not go with TS.NRANGE",
            ),
        ] {
            assert_eq!(
                nrange_options(&words(args), 2).map(|_| ()),
                Err(error),
                "{args}"
            );
        }
    }

    #[test]
    fn range_options_parse_with_aggregation_and_alignment() {
        let (got, used) = range_options(
            &words("- + FILTER_BY_TS 30 10 20 FILTER_BY_VALUE 1 5 COUNT 3 ALIGN 5 AGGREGATION twa 10 BUCKETTIMESTAMP ~ EMPTY"),
            &[],
        )
        .unwrap();
        assert_eq!(used, 19);
        assert_eq!((got.from, got.to), (Bound::First, Bound::Last));
        assert_eq!(got.filter_ts, [10, 20, 30]);
        assert_eq!(got.filter_value, Some((1.0, 5.0)));
        assert_eq!((got.count, got.align), (Some(3), Align::At(5)));
        let agg = got.aggregation.unwrap();
        assert_eq!(
            (agg.aggregator, agg.bucket_ms, agg.stamp, agg.empty),
            (Aggregator::Twa, 10, BucketTimestamp::Mid, true)
        );
        // TS.MRANGE's FILTER ends the range's options.
        let (_, used) = range_options(&words("100 200 COUNT 1 FILTER a=b"), &[b"FILTER"]).unwrap();
        assert_eq!(used, 4);
        for (args, error) in [
            ("x +", "ERR TSDB: wrong fromTimestamp"),
            ("- -5", "ERR TSDB: wrong toTimestamp"),
            (
                "- + AGGREGATION median 10",
                "ERR TSDB: Unknown aggregation type",
            ),
            (
                "- + AGGREGATION avg 0",
                "ERR TSDB: bucketDuration must be greater than zero",
            ),
            (
                "- + ALIGN 5",
                "ERR TSDB: ALIGN parameter can only be used with AGGREGATION",
            ),
            (
                "- 100 ALIGN start AGGREGATION avg 10",
                "ERR TSDB: start alignment can only be used with explicit start timestamp",
            ),
            (
                "0 + ALIGN + AGGREGATION avg 10",
                "ERR TSDB: end alignment can only be used with explicit end timestamp",
            ),
            ("- + COUNT", "ERR TSDB: COUNT argument is missing"),
            (
                "- + FILTER_BY_VALUE 1",
                "ERR TSDB: FILTER_BY_VALUE one or more arguments are missing",
            ),
            (
                "- + FILTER_BY_TS",
                "ERR TSDB: FILTER_BY_TS one or more arguments are missing",
            ),
        ] {
            assert_eq!(
                range_options(&words(args), &[]).map(|_| ()),
                Err(error),
                "{args}"
            );
        }
    }

    #[test]
    fn filters_match_labels_as_redistimeseries_defines_them() {
        let labels = [
            ("room".to_string(), "kitchen".to_string()),
            ("floor".to_string(), "1".to_string()),
        ];
        let passes = |exprs: &str| {
            filter(&words(exprs))
                .unwrap()
                .iter()
                .all(|m| m.matches(&labels))
        };
        assert!(passes("room=kitchen"));
        assert!(passes("room=(hall,kitchen) floor!=2"));
        assert!(passes("room=kitchen floor!= sensor="));
        assert!(!passes("room=kitchen floor="));
        assert!(!passes("room=kitchen floor!=(1,2)"));
        assert!(!passes("room=hall"));
        assert_eq!(
            filter(&words("room!=x")),
            Err("ERR TSDB: please provide at least one matcher")
        );
        assert_eq!(
            filter(&words("room")),
            Err("ERR TSDB: failed parsing labels")
        );
        assert_eq!(filter(&words("=x")), Err("ERR TSDB: failed parsing labels"));
    }
}
