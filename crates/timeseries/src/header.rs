//! A series' header as a merge type: what the series is (its settings, labels and rules),
//! apart from its samples, which live in windows ([`crate::series::Window`]).
//!
//! Every setting is a last-writer-wins register, so two regions that alter one series
//! concurrently end with the later alteration of each setting. `TS.DEL`-ing the whole key
//! (`DEL`) records its stamp in `deleted`: settings written before it read as unset (the
//! defaults), and the series is live again only once something is written after it. `top` is
//! the latest write to the series, samples included: it decides the key's type when types
//! clash, as collections' headers do.

use crate::aggregate::Aggregator;
use crate::args::{Encoding, Policy};
use crdt::{Merge, Seen, Stamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How long after a bucket's end samples are still expected, unless a rule says otherwise.
pub const LATENESS_MS: u64 = 5_000;

/// A stamped value: the later stamp wins.
pub type Lww<T> = Option<(Stamp, T)>;

fn keep_later<T: Clone>(into: &mut Lww<T>, from: &Lww<T>) {
    if let Some((s, v)) = from
        && into.as_ref().is_none_or(|(mine, _)| s > mine)
    {
        *into = Some((*s, v.clone()));
    }
}

/// A compaction rule: the destination series holds `aggregator` over buckets of
/// `bucket_ms` starting at `align_ms` (modulo the bucket).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// How each bucket's samples are summarised.
    pub aggregator: Aggregator,
    /// The bucket's length.
    pub bucket_ms: u64,
    /// Where buckets start.
    pub align_ms: u64,
    /// How long after a bucket's end samples are still expected (`LATENESS`): the bucket is
    /// final once the cluster's watermark has passed its end plus this.
    pub lateness_ms: u64,
}

/// A fused series: every series whose labels pass `filter` (`FILTER` expressions), each
/// aggregated by `aggregator` over buckets of `bucket_ms`, the buckets then combined across the
/// series by `reducer` (`TS.FUSE`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fusion {
    /// The `FILTER` expressions naming the group.
    pub filter: Vec<String>,
    /// How each series is summarised per bucket.
    pub aggregator: Aggregator,
    /// The bucket's length.
    pub bucket_ms: u64,
    /// How the series' buckets are combined.
    pub reducer: crate::fuse::Reducer,
    /// How long after a bucket's end samples are still expected.
    pub lateness_ms: u64,
}

/// The header of a series key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The latest write to the series (a sample, a setting, a rule).
    pub top: Option<Stamp>,
    /// The latest delete of the whole series.
    pub deleted: Option<Stamp>,
    /// `RETENTION` in ms (0: keep everything).
    pub retention: Lww<u64>,
    /// `DUPLICATE_POLICY`.
    pub policy: Lww<Policy>,
    /// `CHUNK_SIZE` in bytes (reported; windows are sized by time, see the node).
    pub chunk_size: Lww<u64>,
    /// `ENCODING`.
    pub encoding: Lww<Encoding>,
    /// `IGNORE maxTimeDiff maxValDiff` (the value difference as f64 bits).
    pub ignore: Lww<(u64, u64)>,
    /// `LABELS`.
    pub labels: Lww<Vec<(String, String)>>,
    /// Compaction rules by destination key; `None` once deleted.
    pub rules: BTreeMap<Vec<u8>, Lww<Option<Rule>>>,
    /// The series whose rule writes into this one, if any (`None` once deleted).
    pub source: Lww<Option<Vec<u8>>>,
    /// What this series fuses, when it is a fused series.
    pub fusion: Lww<Option<Fusion>>,
}

impl Merge for Header {
    fn merge(&mut self, other: &Header) {
        self.top = self.top.max(other.top);
        self.deleted = self.deleted.max(other.deleted);
        keep_later(&mut self.retention, &other.retention);
        keep_later(&mut self.policy, &other.policy);
        keep_later(&mut self.chunk_size, &other.chunk_size);
        keep_later(&mut self.encoding, &other.encoding);
        keep_later(&mut self.ignore, &other.ignore);
        keep_later(&mut self.labels, &other.labels);
        keep_later(&mut self.source, &other.source);
        keep_later(&mut self.fusion, &other.fusion);
        for (dest, rule) in other.rules.iter().filter(|(_, r)| r.is_some()) {
            keep_later(self.rules.entry(dest.clone()).or_default(), rule);
        }
    }
}

impl Header {
    /// The latest write, if the series is live: written to since its last delete.
    pub fn live_top(&self) -> Option<Stamp> {
        self.top.filter(|t| Some(*t) > self.deleted)
    }

    /// A setting's value, unless a delete came after it.
    fn current<'a, T>(&self, field: &'a Lww<T>) -> Option<&'a T> {
        field
            .as_ref()
            .filter(|(s, _)| Some(*s) > self.deleted)
            .map(|(_, v)| v)
    }

    /// `RETENTION` (0: keep everything).
    pub fn retention_ms(&self) -> u64 {
        self.current(&self.retention).copied().unwrap_or(0)
    }

    /// `DUPLICATE_POLICY`, `None` when not set (the node's default applies).
    pub fn policy(&self) -> Option<Policy> {
        self.current(&self.policy).copied()
    }

    /// `CHUNK_SIZE`, `None` when not set.
    pub fn chunk_size(&self) -> Option<u64> {
        self.current(&self.chunk_size).copied()
    }

    /// `ENCODING`.
    pub fn encoding(&self) -> Encoding {
        self.current(&self.encoding).copied().unwrap_or_default()
    }

    /// `IGNORE`: `(maxTimeDiff, maxValDiff)`, zeros when not set.
    pub fn ignore(&self) -> (u64, f64) {
        let (t, v) = self.current(&self.ignore).copied().unwrap_or((0, 0));
        (t, f64::from_bits(v))
    }

    /// The labels.
    pub fn labels(&self) -> &[(String, String)] {
        self.current(&self.labels).map_or(&[], |l| l.as_slice())
    }

    /// The live rules, by destination key.
    pub fn rules(&self) -> impl Iterator<Item = (&[u8], &Rule)> {
        self.rules.iter().filter_map(|(dest, rule)| {
            let rule = self.current(rule)?.as_ref()?;
            Some((dest.as_slice(), rule))
        })
    }

    /// The series whose rule writes into this one.
    pub fn source(&self) -> Option<&[u8]> {
        self.current(&self.source)?.as_deref()
    }

    /// What the series fuses, when it is a fused series.
    pub fn fusion(&self) -> Option<&Fusion> {
        self.current(&self.fusion)?.as_ref()
    }

    /// Drops what a replica holding `theirs` had seen (`seen` says which) and no longer
    /// holds (see [`crdt::Seen`]).
    pub fn drop_seen(&mut self, theirs: Option<&Header>, seen: &Seen) {
        fn drop<T>(mine: &mut Lww<T>, theirs: Option<Stamp>, seen: &Seen) {
            if let Some((s, _)) = mine
                && theirs < Some(*s)
                && seen.covers(*s)
            {
                *mine = None;
            }
        }
        let gone = |mine: Option<Stamp>, theirs: Option<Stamp>| {
            mine.filter(|s| !(theirs < Some(*s) && seen.covers(*s)))
        };
        self.top = gone(self.top, theirs.and_then(|t| t.top));
        self.deleted = gone(self.deleted, theirs.and_then(|t| t.deleted));
        let stamp = |f: fn(&Header) -> Option<Stamp>| theirs.and_then(f);
        drop(
            &mut self.retention,
            stamp(|t| t.retention.map(|x| x.0)),
            seen,
        );
        drop(&mut self.policy, stamp(|t| t.policy.map(|x| x.0)), seen);
        drop(
            &mut self.chunk_size,
            stamp(|t| t.chunk_size.map(|x| x.0)),
            seen,
        );
        drop(&mut self.encoding, stamp(|t| t.encoding.map(|x| x.0)), seen);
        drop(&mut self.ignore, stamp(|t| t.ignore.map(|x| x.0)), seen);
        drop(
            &mut self.labels,
            stamp(|t| t.labels.as_ref().map(|x| x.0)),
            seen,
        );
        drop(
            &mut self.source,
            stamp(|t| t.source.as_ref().map(|x| x.0)),
            seen,
        );
        for (dest, rule) in &mut self.rules {
            let theirs = theirs.and_then(|t| t.rules.get(dest)?.as_ref().map(|x| x.0));
            drop(rule, theirs, seen);
        }
        self.rules.retain(|_, rule| rule.is_some());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crdt::NodeId;
    use hlc::Timestamp;
    use proptest::prelude::*;

    fn stamp(ms: u64, node: u64) -> Stamp {
        Stamp::new(Timestamp(ms << 16), NodeId(node))
    }

    #[test]
    fn settings_before_a_delete_read_as_unset_and_a_later_write_revives_the_series() {
        let mut h = Header {
            top: Some(stamp(10, 1)),
            retention: Some((stamp(10, 1), 5000)),
            labels: Some((stamp(10, 1), vec![("room".into(), "a".into())])),
            ..Header::default()
        };
        assert_eq!(h.retention_ms(), 5000);
        h.merge(&Header {
            deleted: Some(stamp(20, 2)),
            ..Header::default()
        });
        assert_eq!(h.live_top(), None);
        assert_eq!(h.retention_ms(), 0);
        assert!(h.labels().is_empty());
        h.merge(&Header {
            top: Some(stamp(30, 1)),
            ..Header::default()
        });
        assert_eq!(h.live_top(), Some(stamp(30, 1)));
        assert_eq!(h.retention_ms(), 0);
    }

    fn arb_header() -> impl Strategy<Value = Header> {
        let s = || (0..20u64, 0..3u64).prop_map(|(ms, n)| stamp(ms, n));
        (
            prop::option::of(s()),
            prop::option::of(s()),
            prop::option::of(s()),
            prop::option::of(s()),
            prop::collection::btree_map(
                prop::sample::select(vec![b"x".to_vec(), b"y".to_vec()]),
                prop::option::of((s(), any::<bool>())),
                0..2,
            ),
        )
            // One stamp names one write: values follow from their stamps.
            .prop_map(|(top, deleted, retention, label, rules)| Header {
                top,
                deleted,
                retention: retention.map(|s| (s, s.hlc.0 % 7)),
                labels: label.map(|s| (s, vec![("l".to_string(), s.node.0.to_string())])),
                rules: rules
                    .into_iter()
                    .filter(|(_, r)| r.is_some())
                    .map(|(k, r)| {
                        let r = r.map(|(s, live)| {
                            let rule = live.then_some(Rule {
                                aggregator: Aggregator::Avg,
                                bucket_ms: s.hlc.0,
                                align_ms: 0,
                                lateness_ms: 0,
                            });
                            (s, rule)
                        });
                        (k, r)
                    })
                    .collect(),
                ..Header::default()
            })
    }

    proptest! {
        #[test]
        fn merge_is_a_join(a in arb_header(), b in arb_header(), c in arb_header()) {
            let join = |x: &Header, y: &Header| { let mut z = x.clone(); z.merge(y); z };
            prop_assert_eq!(join(&a, &b), join(&b, &a));
            prop_assert_eq!(join(&join(&a, &b), &c), join(&a, &join(&b, &c)));
            prop_assert_eq!(join(&a, &a), a.clone());
            let bytes = postcard::to_stdvec(&a).unwrap();
            prop_assert_eq!(postcard::from_bytes::<Header>(&bytes).unwrap(), a);
        }
    }
}
