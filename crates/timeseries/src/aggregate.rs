//! Aggregation over time buckets, as `TS.RANGE key from to [ALIGN align] AGGREGATION
//! aggregator bucketDuration [BUCKETTIMESTAMP -|~|+] [EMPTY]` computes it.
//!
//! A sample at `t` falls in the bucket that starts at `t - ((t - align) mod duration)`. Each
//! bucket with samples gives one sample: its timestamp (the bucket's start, middle or end) and
//! the aggregate of its values. With `EMPTY`, the buckets without samples between the first
//! and the last bucket with samples are reported too: `sum` and `count` as 0, `last` as the
//! last value before the bucket, `twa` interpolated linearly between the samples around it, the
//! others as NaN (RedisTimeSeries's documented values). Variances use Welford's running sums,
//! so their last digits may differ from RedisTimeSeries's sum-of-squares formula.

use crate::Sample;

/// One of RedisTimeSeries's aggregators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Aggregator {
    /// The mean.
    Avg,
    /// The sum.
    Sum,
    /// The least value.
    Min,
    /// The greatest value.
    Max,
    /// The greatest less the least.
    Range,
    /// How many samples.
    Count,
    /// The value with the lowest timestamp.
    First,
    /// The value with the highest timestamp.
    Last,
    /// Population standard deviation.
    StdP,
    /// Sample standard deviation.
    StdS,
    /// Population variance.
    VarP,
    /// Sample variance.
    VarS,
    /// Time-weighted average: each value weighted by the time it holds in the bucket, from
    /// the midpoint with the sample before it to the midpoint with the sample after it.
    Twa,
}

impl Aggregator {
    /// Every aggregator, by name.
    pub const ALL: [Aggregator; 13] = [
        Aggregator::Avg,
        Aggregator::Sum,
        Aggregator::Min,
        Aggregator::Max,
        Aggregator::Range,
        Aggregator::Count,
        Aggregator::First,
        Aggregator::Last,
        Aggregator::StdP,
        Aggregator::StdS,
        Aggregator::VarP,
        Aggregator::VarS,
        Aggregator::Twa,
    ];

    /// The aggregator named `name`, in any case.
    pub fn parse(name: &[u8]) -> Option<Aggregator> {
        Aggregator::ALL
            .into_iter()
            .find(|a| a.name().as_bytes().eq_ignore_ascii_case(name))
    }

    /// Its name in commands and in `TS.INFO`.
    pub fn name(self) -> &'static str {
        match self {
            Aggregator::Avg => "avg",
            Aggregator::Sum => "sum",
            Aggregator::Min => "min",
            Aggregator::Max => "max",
            Aggregator::Range => "range",
            Aggregator::Count => "count",
            Aggregator::First => "first",
            Aggregator::Last => "last",
            Aggregator::StdP => "std.p",
            Aggregator::StdS => "std.s",
            Aggregator::VarP => "var.p",
            Aggregator::VarS => "var.s",
            Aggregator::Twa => "twa",
        }
    }
}

/// Which instant of its bucket an aggregated sample carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BucketTimestamp {
    /// Its start (`-`, the default).
    #[default]
    Start,
    /// Its middle (`~`).
    Mid,
    /// Its end (`+`): the next bucket's start.
    End,
}

/// How samples are bucketed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buckets {
    /// The bucket's length in ms (positive).
    pub duration: i64,
    /// A timestamp some bucket starts at (`ALIGN`).
    pub align: i64,
    /// Which instant each aggregated sample carries.
    pub stamp: BucketTimestamp,
    /// Report empty buckets too (`EMPTY`).
    pub empty: bool,
}

impl Buckets {
    /// The start of the bucket `t` falls in.
    pub fn start_of(&self, t: i64) -> i64 {
        let offset = (i128::from(t) - i128::from(self.align)).rem_euclid(i128::from(self.duration));
        (i128::from(t) - offset) as i64
    }

    fn stamp_of(&self, start: i64) -> i64 {
        match self.stamp {
            BucketTimestamp::Start => start,
            BucketTimestamp::Mid => start.saturating_add(self.duration / 2),
            BucketTimestamp::End => start.saturating_add(self.duration),
        }
    }
}

/// `samples` (in increasing timestamp order) aggregated by `agg` per bucket. `before` and
/// `after` are the samples just outside them, if any: `twa` interpolates to the buckets' edges
/// from them, and an empty bucket's `last` is the last value before it.
pub fn aggregate(
    samples: &[Sample],
    agg: Aggregator,
    buckets: &Buckets,
    before: Option<Sample>,
    after: Option<Sample>,
) -> Vec<Sample> {
    assert!(buckets.duration > 0, "buckets last at least 1 ms");
    let mut out = Vec::new();
    let mut i = 0;
    let mut previous: Option<Sample> = before;
    let mut last_start: Option<i64> = None;
    while i < samples.len() {
        let start = buckets.start_of(samples[i].0);
        let end = start.saturating_add(buckets.duration);
        let mut j = i;
        while j < samples.len() && samples[j].0 < end {
            j += 1;
        }
        if buckets.empty
            && let Some(last) = last_start
        {
            let mut gap = last.saturating_add(buckets.duration);
            while gap < start {
                let value = empty_value(
                    agg,
                    gap,
                    buckets.duration,
                    previous,
                    samples.get(i).copied(),
                );
                out.push((buckets.stamp_of(gap), value));
                gap = gap.saturating_add(buckets.duration);
            }
        }
        let next = samples.get(j).copied().or(after);
        let value = match agg {
            Aggregator::Twa => twa(start, end, &samples[i..j], previous, next),
            _ => fold(agg, &samples[i..j]),
        };
        out.push((buckets.stamp_of(start), value));
        previous = Some(samples[j - 1]);
        last_start = Some(start);
        i = j;
    }
    out
}

/// The value of a bucket without samples, from the samples around it.
fn empty_value(
    agg: Aggregator,
    start: i64,
    duration: i64,
    previous: Option<Sample>,
    next: Option<Sample>,
) -> f64 {
    match agg {
        Aggregator::Sum | Aggregator::Count => 0.0,
        Aggregator::Last => previous.map_or(f64::NAN, |p| p.1),
        Aggregator::Twa => match (previous, next) {
            (Some(p), Some(n)) => {
                let end = start.saturating_add(duration);
                (at(p, n, start) + at(p, n, end)) / 2.0
            }
            _ => f64::NAN,
        },
        _ => f64::NAN,
    }
}

/// The value at `t` on the line from `a` to `b`.
fn at(a: Sample, b: Sample, t: i64) -> f64 {
    if b.0 == a.0 {
        return b.1;
    }
    let share = (t as f64 - a.0 as f64) / (b.0 as f64 - a.0 as f64);
    a.1 + (b.1 - a.1) * share
}

/// The time-weighted average of the bucket `[start, end)` holding `samples`, as RedisTimeSeries
/// weighs it: the series is a step function where each sample holds from the midpoint with its
/// previous sample to the midpoint with its next one (the series' first sample reaches back,
/// and its last forward, by half the gap to their one neighbour); the bucket's average is
/// that function's mean over the part of the bucket it covers. So the samples just outside
/// (`previous`, `next`) weigh in for the part of the bucket up to their midpoint. A series of
/// one sample averages to its value.
fn twa(
    start: i64,
    end: i64,
    samples: &[Sample],
    previous: Option<Sample>,
    next: Option<Sample>,
) -> f64 {
    let points: Vec<Sample> = (previous.into_iter())
        .chain(samples.iter().copied())
        .chain(next)
        .collect();
    if points.len() == 1 {
        return points[0].1;
    }
    let t = |k: usize| points[k].0 as f64;
    let last = points.len() - 1;
    let (mut weighted, mut weights) = (0.0, 0.0);
    for (k, point) in points.iter().enumerate() {
        let left = match k {
            0 => t(0) - (t(1) - t(0)) / 2.0,
            _ => (t(k - 1) + t(k)) / 2.0,
        };
        let right = match k {
            k if k == last => t(k) + (t(k) - t(k - 1)) / 2.0,
            _ => (t(k) + t(k + 1)) / 2.0,
        };
        let weight = right.min(end as f64) - left.max(start as f64);
        if weight > 0.0 {
            weighted += point.1 * weight;
            weights += weight;
        }
    }
    if weights > 0.0 {
        weighted / weights
    } else {
        samples.iter().map(|s| s.1).sum::<f64>() / samples.len() as f64
    }
}

/// Every aggregator but `twa`, over one bucket's samples (at least one).
fn fold(agg: Aggregator, samples: &[Sample]) -> f64 {
    let values = samples.iter().map(|s| s.1);
    let n = samples.len() as f64;
    match agg {
        Aggregator::Sum => values.sum(),
        Aggregator::Count => n,
        Aggregator::Avg => values.sum::<f64>() / n,
        Aggregator::Min => values.fold(f64::INFINITY, f64::min),
        Aggregator::Max => values.fold(f64::NEG_INFINITY, f64::max),
        Aggregator::Range => {
            let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
            hi - lo
        }
        Aggregator::First => samples[0].1,
        Aggregator::Last => samples[samples.len() - 1].1,
        Aggregator::VarP | Aggregator::VarS | Aggregator::StdP | Aggregator::StdS => {
            // Welford's running mean and sum of squared differences: no cancellation.
            let (mut mean, mut m2) = (0.0, 0.0);
            for (k, v) in values.enumerate() {
                let delta = v - mean;
                mean += delta / (k + 1) as f64;
                m2 += delta * (v - mean);
            }
            let var = match agg {
                Aggregator::VarP | Aggregator::StdP => m2 / n,
                _ if n > 1.0 => m2 / (n - 1.0),
                _ => 0.0,
            };
            match agg {
                Aggregator::StdP | Aggregator::StdS => var.sqrt(),
                _ => var,
            }
        }
        Aggregator::Twa => unreachable!("twa needs the bucket's edges"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by(duration: i64) -> Buckets {
        Buckets {
            duration,
            align: 0,
            stamp: BucketTimestamp::Start,
            empty: false,
        }
    }

    const SAMPLES: [Sample; 6] = [
        (10, 1.0),
        (20, 3.0),
        (30, 5.0),
        (40, 7.0),
        (65, 10.0),
        (70, 2.0),
    ];

    fn run(agg: Aggregator, buckets: &Buckets) -> Vec<Sample> {
        aggregate(&SAMPLES, agg, buckets, None, None)
    }

    #[test]
    fn every_aggregator_gives_its_exact_value_per_bucket() {
        let b = by(50);
        let cases: [(Aggregator, [f64; 2]); 12] = [
            (Aggregator::Sum, [16.0, 12.0]),
            (Aggregator::Count, [4.0, 2.0]),
            (Aggregator::Avg, [4.0, 6.0]),
            (Aggregator::Min, [1.0, 2.0]),
            (Aggregator::Max, [7.0, 10.0]),
            (Aggregator::Range, [6.0, 8.0]),
            (Aggregator::First, [1.0, 10.0]),
            (Aggregator::Last, [7.0, 2.0]),
            (Aggregator::VarP, [5.0, 16.0]),
            (Aggregator::VarS, [20.0 / 3.0, 32.0]),
            (Aggregator::StdP, [5f64.sqrt(), 4.0]),
            (Aggregator::StdS, [(20.0f64 / 3.0).sqrt(), 32f64.sqrt()]),
        ];
        for (agg, want) in cases {
            let got = run(agg, &b);
            assert_eq!(
                got.iter().map(|s| s.0).collect::<Vec<_>>(),
                [0, 50],
                "{agg:?}"
            );
            for (g, w) in got.iter().zip(want) {
                assert!((g.1 - w).abs() < 1e-12, "{agg:?}: {} != {w}", g.1);
            }
            assert_eq!(
                Aggregator::parse(agg.name().to_uppercase().as_bytes()),
                Some(agg)
            );
        }
        // A single sample: sample variance 0, as RedisTimeSeries answers.
        assert_eq!(
            aggregate(&[(5, 3.0)], Aggregator::VarS, &b, None, None),
            [(0, 0.0)]
        );
    }

    #[test]
    fn twa_weighs_each_sample_by_the_time_it_holds() {
        // Bucket [0, 50): samples 1, 3, 5, 7 at 10..40, then (65, 10) after the bucket. 1 holds
        // from 5 (the series' first sample reaches back half its gap) to 15, 3 and 5 hold 10 ms
        // each, 7 holds from 35 to the midpoint with 65 (52.5), cut at 50.
        let got = run(Aggregator::Twa, &by(50));
        let want = (1.0 * 10.0 + 3.0 * 10.0 + 5.0 * 10.0 + 7.0 * 15.0) / 45.0;
        assert!((got[0].1 - want).abs() < 1e-12, "{} != {want}", got[0].1);
        // [50, 100): 7 (before the bucket) holds to 52.5, 10 from there to 67.5, and 2, the
        // series' last sample, from 67.5 to 72.5 (half its gap forward).
        let want = (7.0 * 2.5 + 10.0 * 15.0 + 2.0 * 5.0) / 22.5;
        assert!((got[1].1 - want).abs() < 1e-12, "{} != {want}", got[1].1);
        // A value held long weighs more than one held briefly; a lone sample is its value.
        let uneven = [(0, 0.0), (90, 0.0), (100, 10.0)];
        let twa = aggregate(&uneven, Aggregator::Twa, &by(1000), None, None)[0].1;
        // 0 holds 0..45 (cut at the bucket start) and 45..95, 10 holds 95..105.
        assert!((twa - 10.0 * 10.0 / 105.0).abs() < 1e-12, "{twa}");
        assert_eq!(
            aggregate(&[(7, 4.5)], Aggregator::Twa, &by(10), None, None),
            [(0, 4.5)]
        );
    }

    #[test]
    fn align_bucket_timestamps_and_empty_buckets() {
        let aligned = Buckets { align: 5, ..by(20) };
        let starts: Vec<i64> = run(Aggregator::Count, &aligned)
            .iter()
            .map(|s| s.0)
            .collect();
        assert_eq!(starts, [5, 25, 65]);
        assert_eq!(aligned.start_of(-1), -15);
        for (stamp, want) in [
            (BucketTimestamp::Start, [0, 50]),
            (BucketTimestamp::Mid, [25, 75]),
            (BucketTimestamp::End, [50, 100]),
        ] {
            let b = Buckets { stamp, ..by(50) };
            let got: Vec<i64> = run(Aggregator::Sum, &b).iter().map(|s| s.0).collect();
            assert_eq!(got, want);
        }
        let empty = Buckets {
            empty: true,
            ..by(10)
        };
        // Buckets 50 and 60 hold nothing between 40 and 65.
        let sums = run(Aggregator::Sum, &empty);
        assert_eq!(
            sums,
            [
                (10, 1.0),
                (20, 3.0),
                (30, 5.0),
                (40, 7.0),
                (50, 0.0),
                (60, 10.0),
                (70, 2.0)
            ]
        );
        let lasts = run(Aggregator::Last, &empty);
        assert_eq!(lasts[4], (50, 7.0));
        let maxes = run(Aggregator::Max, &empty);
        assert!(maxes[4].1.is_nan());
        let twa = run(Aggregator::Twa, &empty);
        // Between (40, 7) and (65, 10): the line's value at 50 and 60, averaged.
        assert!((twa[4].1 - (8.2 + 9.4) / 2.0).abs() < 1e-9, "{}", twa[4].1);
    }
}
