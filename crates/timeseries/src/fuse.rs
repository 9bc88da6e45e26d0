//! Fusing the readings of a group of sensors into one series: `TS.MRANGE ... GROUPBY label
//! REDUCE reducer` and fused series (a series computed from every series a filter matches).
//!
//! A reducer combines the values the group's series hold at one instant. Besides
//! RedisTimeSeries's reducers (the aggregators but `first`, `last` and `twa`), three suited to
//! sensors that disagree or fail:
//! - `median`: the middle value (the mean of the two middle ones for an even count), which one
//!   stuck or wild sensor cannot move far;
//! - `trimmed_mean`: the mean once the lowest and highest fifth of the values are set aside
//!   ([`TRIM`] of each end, rounded down; nothing is trimmed from fewer than five values);
//! - `ivw_mean`: the inverse-variance weighted mean, each sensor weighted by one over the
//!   variance of its own readings over the range read (its noise), so a noisy sensor counts
//!   less; a sensor whose readings did not vary weighs as the least noisy one that did, and
//!   when none varied it is the plain mean.
//!
//! Every replica computes the same result from the same merged samples: the inputs are sorted
//! before they are combined, so the order series are read in does not change a bit of it.

use crate::Sample;
use crate::aggregate::{Aggregator, BucketTimestamp, Buckets, aggregate};
use std::collections::BTreeMap;

/// The fraction of values `trimmed_mean` sets aside at each end.
pub const TRIM: f64 = 0.2;

/// How the values of one instant across a group's series are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Reducer {
    /// One of the aggregators over the instant's values.
    Agg(Aggregator),
    /// The middle value.
    Median,
    /// The mean without the lowest and highest fifth.
    TrimmedMean,
    /// The inverse-variance weighted mean.
    IvwMean,
}

impl Reducer {
    /// The reducer named `name`, in any case.
    pub fn parse(name: &[u8]) -> Option<Reducer> {
        let lower = name.to_ascii_lowercase();
        match lower.as_slice() {
            b"median" => return Some(Reducer::Median),
            b"trimmed_mean" => return Some(Reducer::TrimmedMean),
            b"ivw_mean" => return Some(Reducer::IvwMean),
            _ => {}
        }
        let agg = Aggregator::parse(name)?;
        (!matches!(agg, Aggregator::First | Aggregator::Last | Aggregator::Twa))
            .then_some(Reducer::Agg(agg))
    }

    /// Its name, as replies show it.
    pub fn name(self) -> &'static str {
        match self {
            Reducer::Agg(a) => a.name(),
            Reducer::Median => "median",
            Reducer::TrimmedMean => "trimmed_mean",
            Reducer::IvwMean => "ivw_mean",
        }
    }

    /// The group's series (each in time order) reduced per instant held by any of them.
    pub fn reduce(self, series: &[Vec<Sample>]) -> Vec<Sample> {
        let weights = match self {
            Reducer::IvwMean => inverse_variances(series),
            _ => vec![1.0; series.len()],
        };
        let mut at: BTreeMap<i64, Vec<(f64, f64)>> = BTreeMap::new();
        for (s, w) in series.iter().zip(&weights) {
            for &(t, v) in s {
                at.entry(t).or_default().push((v, *w));
            }
        }
        at.into_iter()
            .map(|(t, mut values)| {
                values.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
                (t, self.combine(t, &values))
            })
            .collect()
    }

    /// One instant's `(value, weight)`s, sorted, combined.
    fn combine(self, t: i64, values: &[(f64, f64)]) -> f64 {
        let n = values.len();
        match self {
            Reducer::Agg(agg) => {
                let points: Vec<Sample> = values.iter().map(|(v, _)| (t, *v)).collect();
                let one = Buckets {
                    duration: 1,
                    align: t,
                    stamp: BucketTimestamp::Start,
                    empty: false,
                };
                aggregate(&points, agg, &one, None, None)
                    .first()
                    .map_or(f64::NAN, |s| s.1)
            }
            Reducer::Median if n % 2 == 1 => values[n / 2].0,
            Reducer::Median => (values[n / 2 - 1].0 + values[n / 2].0) / 2.0,
            Reducer::TrimmedMean => {
                let cut = if n < 5 { 0 } else { (n as f64 * TRIM) as usize };
                let kept = &values[cut..n - cut];
                kept.iter().map(|(v, _)| v).sum::<f64>() / kept.len() as f64
            }
            Reducer::IvwMean => {
                let total: f64 = values.iter().map(|(_, w)| w).sum();
                values.iter().map(|(v, w)| v * w).sum::<f64>() / total
            }
        }
    }
}

/// One weight per series: one over the variance of its values (population), with the series
/// that did not vary weighed as the least noisy one that did (all 1 when none did).
fn inverse_variances(series: &[Vec<Sample>]) -> Vec<f64> {
    let variance = |s: &Vec<Sample>| {
        let n = s.len() as f64;
        if s.len() < 2 {
            return 0.0;
        }
        let mean = s.iter().map(|x| x.1).sum::<f64>() / n;
        s.iter().map(|x| (x.1 - mean).powi(2)).sum::<f64>() / n
    };
    let variances: Vec<f64> = series.iter().map(variance).collect();
    let least = variances
        .iter()
        .copied()
        .filter(|v| *v > 0.0 && v.is_finite())
        .fold(f64::INFINITY, f64::min);
    variances
        .into_iter()
        .map(|v| match (v > 0.0 && v.is_finite(), least.is_finite()) {
            (true, _) => 1.0 / v,
            (false, true) => 1.0 / least,
            (false, false) => 1.0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(values: &[f64]) -> Vec<Vec<Sample>> {
        values.iter().map(|v| vec![(10, *v)]).collect()
    }

    #[test]
    fn robust_reducers_resist_a_wild_sensor() {
        let readings = at(&[20.0, 21.0, 22.0, 19.0, 500.0]);
        assert_eq!(Reducer::Median.reduce(&readings), [(10, 21.0)]);
        assert_eq!(Reducer::TrimmedMean.reduce(&readings), [(10, 21.0)]);
        let mean = Reducer::Agg(Aggregator::Avg).reduce(&readings)[0].1;
        assert!((mean - 116.4).abs() < 1e-9);
        assert_eq!(Reducer::Median.reduce(&at(&[1.0, 4.0])), [(10, 2.5)]);
        assert_eq!(
            Reducer::TrimmedMean.reduce(&at(&[1.0, 2.0, 9.0])),
            [(10, 4.0)]
        );
    }

    #[test]
    fn the_inverse_variance_mean_trusts_the_quiet_sensor() {
        // A quiet sensor (variance 1) and a noisy one (variance 100).
        let quiet: Vec<Sample> = vec![(0, 9.0), (1, 11.0), (2, 10.0)];
        let noisy: Vec<Sample> = vec![(0, 0.0), (1, 20.0), (2, 40.0)];
        let fused = Reducer::IvwMean.reduce(&[quiet.clone(), noisy.clone()]);
        // Weights 1/(2/3) and 1/(800/3): the fused value stays near the quiet sensor's.
        let (wq, wn) = (1.5, 3.0 / 800.0);
        let want = (10.0 * wq + 40.0 * wn) / (wq + wn);
        assert!((fused[2].1 - want).abs() < 1e-12, "{fused:?}");
        // Neither varied: the plain mean.
        let flat = Reducer::IvwMean.reduce(&[vec![(0, 1.0)], vec![(0, 3.0)]]);
        assert_eq!(flat, [(0, 2.0)]);
    }

    #[test]
    fn the_order_series_come_in_changes_nothing() {
        let a: Vec<Sample> = vec![(0, 0.1), (1, 0.7)];
        let b: Vec<Sample> = vec![(0, 0.2), (1, 0.3)];
        let c: Vec<Sample> = vec![(0, 1e16), (1, -3.3)];
        for r in [
            Reducer::Agg(Aggregator::Sum),
            Reducer::IvwMean,
            Reducer::TrimmedMean,
        ] {
            let one = r.reduce(&[a.clone(), b.clone(), c.clone()]);
            let other = r.reduce(&[c.clone(), a.clone(), b.clone()]);
            let bits = |x: &[Sample]| x.iter().map(|s| s.1.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&one), bits(&other), "{r:?}");
        }
    }

    #[test]
    fn names_parse_back() {
        for name in ["median", "trimmed_mean", "ivw_mean", "avg", "sum", "std.p"] {
            assert_eq!(Reducer::parse(name.as_bytes()).unwrap().name(), name);
        }
        assert_eq!(Reducer::parse(b"twa"), None);
        assert_eq!(Reducer::parse(b"first"), None);
    }
}
