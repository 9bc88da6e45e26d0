//! Property tests: the lattice laws and convergence under any delivery order.

use crate::{HashState, Merge, NodeId, Record, SetState, Stamp, StrState};
use bytes::Bytes;
use hlc::Clock;
use proptest::prelude::*;

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

/// The delta a replica computes for `op` against its current state.
fn delta(state: &Record, stamp: Stamp, op: &Op) -> Record {
    let string = state.string.clone().unwrap_or_default();
    let hash = state.hash.clone().unwrap_or_default();
    let set = state.set.clone().unwrap_or_default();
    match op {
        Op::Set(v) => {
            let mut d = state.delete_delta(stamp);
            d.string = Some(string.set_delta(stamp, Bytes::from(v.to_string())));
            d
        }
        Op::Del => state.delete_delta(stamp),
        Op::Incr(by) => Record {
            string: Some(string.incr_delta(stamp, i64::from(*by))),
            ..Record::default()
        },
        Op::HSet(f, v) => {
            let field = hash.field(&b(*f)).cloned().unwrap_or_default();
            let fd = field.set_delta(stamp, Bytes::from(v.to_string()));
            Record {
                hash: Some(HashState::field_delta(b(*f), fd)),
                ..Record::default()
            }
        }
        Op::HDel(f) => {
            let field = hash.field(&b(*f)).cloned().unwrap_or_default();
            Record {
                hash: Some(HashState::field_delta(b(*f), field.delete_delta(stamp))),
                ..Record::default()
            }
        }
        Op::HIncr(f, by) => {
            let field = hash.field(&b(*f)).cloned().unwrap_or_default();
            let fd = field.incr_delta(stamp, i64::from(*by));
            Record {
                hash: Some(HashState::field_delta(b(*f), fd)),
                ..Record::default()
            }
        }
        Op::SAdd(m) => Record {
            set: Some(SetState::add_delta(stamp, [&b(*m)])),
            ..Record::default()
        },
        Op::SRem(m) => Record {
            set: Some(set.remove_delta([&b(*m)])),
            ..Record::default()
        },
        Op::Expire(at) => Record::expiry_delta(stamp, at.map(u64::from)),
    }
}

/// One step of a run: replica `at` performs `op`, or delivers pending delta `deliver` to
/// replica `at`.
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
    replicas: Vec<Record>,
    deltas: Vec<Record>,
    /// Every state any replica passed through, for the lattice laws.
    seen: Vec<Record>,
}

fn run(steps: &[Step]) -> Run {
    let mut replicas = vec![Record::default(); 3];
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
    /// replicas hold the same state and show the same values.
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
        let join = |x: &Record, y: &Record| { let mut z = x.clone(); z.merge(y); z };
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

    /// Encoding round-trips every reachable state.
    #[test]
    fn encoding_roundtrip(steps in proptest::collection::vec(step(), 1..30)) {
        for r in run(&steps).replicas {
            prop_assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        }
    }
}
