//! Property tests: the lattice laws and convergence under any delivery order, on a model of
//! one key as the node stores it: the header record, the hash fields and the set members.

use crate::{Kind, Lens, Member, Merge, NodeId, Record, Stamp, StrState};
use bytes::Bytes;
use hlc::Clock;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// One key: what a write's delta and a replica's state both look like.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Key {
    record: Record,
    fields: BTreeMap<Bytes, StrState>,
    members: BTreeMap<Bytes, Member>,
}

impl Merge for Key {
    fn merge(&mut self, other: &Self) {
        self.record.merge(&other.record);
        crate::merge_map(&mut self.fields, &other.fields);
        crate::merge_map(&mut self.members, &other.members);
    }
}

impl Key {
    fn lens(&self) -> Lens {
        Lens {
            hash: self.fields.values().filter(|f| f.exists()).count() as u64,
            set: self.members.values().filter(|m| m.present()).count() as u64,
            ..Lens::default()
        }
    }

    fn kind(&self) -> Option<Kind> {
        self.record.kind(self.lens())
    }

    /// The delta of deleting the key: the header, every live field and member.
    fn delete(&self, stamp: Stamp) -> Key {
        Key {
            record: self.record.delete_delta(stamp),
            fields: self
                .fields
                .iter()
                .filter(|(_, f)| f.exists())
                .map(|(k, f)| (k.clone(), f.delete_delta(stamp)))
                .collect(),
            members: self
                .members
                .iter()
                .filter(|(_, m)| m.present())
                .map(|(k, m)| (k.clone(), m.remove_delta()))
                .collect(),
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Set(u8),
    Del,
    Incr(i8),
    HSet(u8, u8),
    HDel(u8),
    HIncr(u8, i8),
    SAdd(u8),
    SRem(u8),
    Expire(Option<u16>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<u8>().prop_map(|v| Op::Set(v % 4)),
        Just(Op::Del),
        any::<i8>().prop_map(Op::Incr),
        (0u8..3, 0u8..4).prop_map(|(f, v)| Op::HSet(f, v)),
        (0u8..3).prop_map(Op::HDel),
        (0u8..3, any::<i8>()).prop_map(|(f, b)| Op::HIncr(f, b)),
        (0u8..4).prop_map(Op::SAdd),
        (0u8..4).prop_map(Op::SRem),
        proptest::option::of(any::<u16>()).prop_map(Op::Expire),
    ]
}

fn b(n: u8) -> Bytes {
    Bytes::from(vec![b'a' + n])
}

fn field_delta(state: &Key, stamp: Stamp, name: u8, f: impl Fn(&StrState) -> StrState) -> Key {
    let field = state.fields.get(&b(name)).cloned().unwrap_or_default();
    Key {
        record: Record::touch_delta(stamp, Kind::Hash),
        fields: BTreeMap::from([(b(name), f(&field))]),
        members: BTreeMap::new(),
    }
}

/// The delta a replica computes for `op` against its current state, as the node does.
fn delta(state: &Key, stamp: Stamp, op: &Op) -> Key {
    let string = state.record.string.clone().unwrap_or_default();
    match op {
        Op::Set(v) => {
            let mut d = state.delete(stamp);
            d.record.string = Some(string.set_delta(stamp, Bytes::from(v.to_string())));
            d
        }
        Op::Del => state.delete(stamp),
        Op::Incr(by) => Key {
            record: Record {
                string: Some(string.incr_delta(stamp, i64::from(*by))),
                ..Record::default()
            },
            ..Key::default()
        },
        Op::HSet(f, v) => field_delta(state, stamp, *f, |s| {
            s.set_delta(stamp, Bytes::from(v.to_string()))
        }),
        Op::HDel(f) => field_delta(state, stamp, *f, |s| s.delete_delta(stamp)),
        Op::HIncr(f, by) => field_delta(state, stamp, *f, |s| s.incr_delta(stamp, i64::from(*by))),
        Op::SAdd(m) => Key {
            record: Record::touch_delta(stamp, Kind::Set),
            members: BTreeMap::from([(b(*m), Member::add_delta(stamp))]),
            ..Key::default()
        },
        Op::SRem(m) => Key {
            members: BTreeMap::from([(
                b(*m),
                state
                    .members
                    .get(&b(*m))
                    .cloned()
                    .unwrap_or_default()
                    .remove_delta(),
            )]),
            ..Key::default()
        },
        Op::Expire(at) => Key {
            record: Record::expiry_delta(stamp, at.map(u64::from)),
            ..Key::default()
        },
    }
}

/// One step of a run: replica `at` performs `op`, or delivers a pending delta to replica `at`.
#[derive(Debug, Clone)]
enum Step {
    Local {
        at: usize,
        op: Op,
        now_ms: u64,
    },
    Deliver {
        at: usize,
        pick: prop::sample::Index,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0usize..3, op(), 0u64..50).prop_map(|(at, op, now_ms)| Step::Local { at, op, now_ms }),
        (0usize..3, any::<prop::sample::Index>()).prop_map(|(at, pick)| Step::Deliver { at, pick }),
    ]
}

struct Run {
    replicas: Vec<Key>,
    deltas: Vec<Key>,
    /// Every state any replica passed through, for the lattice laws.
    seen: Vec<Key>,
}

fn run(steps: &[Step]) -> Run {
    let mut replicas = vec![Key::default(); 3];
    let mut clocks = vec![Clock::new(1_000); 3];
    let mut deltas = Vec::new();
    let mut seen = Vec::new();
    for s in steps {
        match s {
            Step::Local { at, op, now_ms } => {
                let stamp = Stamp::new(clocks[*at].now(*now_ms), NodeId(*at as u64));
                let d = delta(&replicas[*at], stamp, op);
                replicas[*at].merge(&d);
                deltas.push(d);
            }
            Step::Deliver { at, pick } if !deltas.is_empty() => {
                replicas[*at].merge(&deltas[pick.index(deltas.len())]);
            }
            Step::Deliver { .. } => {}
        }
        seen.extend(replicas.iter().cloned());
    }
    Run {
        replicas,
        deltas,
        seen,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// After every replica receives every delta, in whatever order and however often, all
    /// replicas hold the same state and show the same type.
    #[test]
    fn replicas_converge(steps in proptest::collection::vec(step(), 1..60), order in any::<u64>()) {
        let Run { mut replicas, deltas, .. } = run(&steps);
        for (i, r) in replicas.iter_mut().enumerate() {
            let n = deltas.len();
            for k in 0..n {
                // A different rotation per replica, then everything again: order and
                // duplication must not matter.
                let j = (k + (order as usize).wrapping_mul(i + 1)) % n;
                r.merge(&deltas[j]);
            }
            for d in deltas.iter().rev() {
                r.merge(d);
            }
        }
        prop_assert_eq!(&replicas[0], &replicas[1]);
        prop_assert_eq!(&replicas[1], &replicas[2]);
        prop_assert_eq!(replicas[0].kind(), replicas[2].kind());
    }

    /// Merge is commutative, associative and idempotent on every state a run reaches.
    #[test]
    fn lattice_laws(steps in proptest::collection::vec(step(), 1..40),
                    picks in proptest::collection::vec(any::<prop::sample::Index>(), 3)) {
        let Run { seen, .. } = run(&steps);
        let a = &seen[picks[0].index(seen.len())];
        let b = &seen[picks[1].index(seen.len())];
        let c = &seen[picks[2].index(seen.len())];
        let join = |x: &Key, y: &Key| { let mut z = x.clone(); z.merge(y); z };
        prop_assert_eq!(join(a, b), join(b, a));
        prop_assert_eq!(join(&join(a, b), c), join(a, &join(b, c)));
        prop_assert_eq!(join(a, a), a.clone());
    }

    /// With only increments, every replica's counter equals the sum of all increments.
    #[test]
    fn increments_sum_exactly(incs in proptest::collection::vec((0usize..3, any::<i32>()), 1..50)) {
        let mut replicas = vec![StrState::default(); 3];
        let mut deltas = Vec::new();
        for (k, (at, by)) in incs.iter().enumerate() {
            let stamp = Stamp::new(hlc::Timestamp(k as u64 + 1), NodeId(*at as u64));
            let d = replicas[*at].incr_delta(stamp, i64::from(*by));
            replicas[*at].merge(&d);
            deltas.push(d);
        }
        let total: i64 = incs.iter().map(|(_, by)| i64::from(*by)).sum();
        for r in &mut replicas {
            for d in &deltas { r.merge(d); }
            prop_assert_eq!(r.counter(), Ok(total));
        }
    }

    /// With only SETs, every replica shows the value of the write with the highest stamp.
    #[test]
    fn last_writer_wins(writes in proptest::collection::vec((0usize..3, 0u64..20, any::<u8>()), 1..30)) {
        let mut replicas = vec![StrState::default(); 3];
        let mut clocks = vec![Clock::new(1_000); 3];
        let mut deltas = Vec::new();
        let mut best: Option<(Stamp, Bytes)> = None;
        for (at, now_ms, v) in writes {
            let stamp = Stamp::new(clocks[at].now(now_ms), NodeId(at as u64));
            let value = Bytes::from(vec![v]);
            let d = replicas[at].set_delta(stamp, value.clone());
            replicas[at].merge(&d);
            deltas.push(d);
            if best.as_ref().is_none_or(|(s, _)| stamp > *s) { best = Some((stamp, value)); }
        }
        for r in &mut replicas {
            for d in deltas.iter().rev() { r.merge(d); }
            prop_assert_eq!(r.value(), best.as_ref().map(|(_, v)| v.clone()));
        }
    }

    /// Encoding round-trips every reachable header.
    #[test]
    fn encoding_roundtrip(steps in proptest::collection::vec(step(), 1..30)) {
        for r in run(&steps).replicas {
            prop_assert_eq!(crate::decode::<Record>(&crate::encode(&r.record)).unwrap(), r.record);
        }
    }
}
