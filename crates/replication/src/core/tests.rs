use super::*;
use hlc::Timestamp;

const A: NodeId = NodeId(1);
const B: NodeId = NodeId(2);
const C: NodeId = NodeId(3);

fn vv(pairs: &[(NodeId, u64)]) -> VersionVector {
    pairs.iter().copied().collect()
}

fn entry(origin: NodeId, seq: u64, deps: &[(NodeId, u64)]) -> Entry {
    Entry::new(origin, seq, Timestamp::new(seq, 0), vv(deps), Vec::new())
}

fn core(me: NodeId) -> Replicator {
    Replicator::new(
        me,
        Config::default(),
        VersionVector::new(),
        VersionVector::new(),
    )
}

fn seqs(effects: &[Effect]) -> Vec<(NodeId, u64)> {
    effects
        .iter()
        .flat_map(|e| match e {
            Effect::Apply(entries) => entries.iter().map(|e| (e.origin, e.seq)).collect(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn own_entries_ship_once_durable_and_then_not_again() {
    let mut r = core(A);
    r.connected(0, B, B, VersionVector::new());
    r.applied(0, vv(&[(A, 3)]), vv(&[(A, 1)]));
    r.tick(0);
    assert_eq!(
        r.take_effects(),
        vec![
            Effect::Ack {
                peer: B,
                vv: vv(&[(A, 1)])
            },
            Effect::Ship {
                peer: B,
                origin: A,
                from: 1,
                to: 1
            },
        ]
    );
    r.applied(1, vv(&[(A, 3)]), vv(&[(A, 3)]));
    r.tick(1);
    assert_eq!(
        r.take_effects(),
        vec![
            Effect::Ack {
                peer: B,
                vv: vv(&[(A, 3)])
            },
            Effect::Ship {
                peer: B,
                origin: A,
                from: 2,
                to: 3
            },
        ]
    );
    r.tick(2);
    assert_eq!(r.take_effects(), vec![]);
}

#[test]
fn unacknowledged_entries_ship_again_after_the_resend_delay() {
    let mut r = core(A);
    r.connected(0, B, B, VersionVector::new());
    r.applied(0, vv(&[(A, 2)]), vv(&[(A, 2)]));
    r.tick(0);
    r.take_effects();
    r.acked(10, B, &vv(&[(A, 1)]));
    r.tick(10);
    assert_eq!(r.take_effects(), vec![]);
    let resend = 10 + Config::default().resend_after_ms;
    r.tick(resend);
    assert_eq!(
        r.take_effects(),
        vec![
            // The acknowledgement is repeated too (see the next test).
            Effect::Ack {
                peer: B,
                vv: vv(&[(A, 2)])
            },
            Effect::Ship {
                peer: B,
                origin: A,
                from: 2,
                to: 2
            }
        ]
    );
}

/// An acknowledgement that was lost would leave the peer's view of this node stale while
/// nothing changes (and with it its log truncation and tombstone collection): it is repeated
/// every resend delay. Found by the simulator (tombstones never collected at one node).
#[test]
fn the_acknowledgement_is_repeated_while_nothing_changes() {
    let mut r = core(A);
    r.connected(0, B, B, VersionVector::new());
    r.applied(0, vv(&[(B, 4)]), vv(&[(B, 4)]));
    r.tick(0);
    let ack = Effect::Ack {
        peer: B,
        vv: vv(&[(B, 4)]),
    };
    assert_eq!(r.take_effects(), vec![ack.clone()]);
    r.tick(100);
    assert_eq!(r.take_effects(), vec![], "not at every tick");
    r.tick(Config::default().resend_after_ms);
    assert_eq!(r.take_effects(), vec![ack]);
}

#[test]
fn third_origin_entries_are_relayed_only_when_the_peer_stays_behind() {
    let mut r = core(A);
    r.connected(0, C, C, VersionVector::new());
    r.tick(0);
    r.take_effects();
    // A holds 5 entries of B; C has none of them.
    r.received((1..=5).map(|s| entry(B, s, &[])).collect());
    assert_eq!(seqs(&r.take_effects()).len(), 5);
    r.applied(0, vv(&[(B, 5)]), vv(&[(B, 5)]));
    r.tick(0);
    // Only the acknowledgement: B may well be reaching C directly.
    assert_eq!(
        r.take_effects(),
        vec![Effect::Ack {
            peer: C,
            vv: vv(&[(B, 5)])
        }]
    );
    let relay = Config::default().relay_after_ms;
    r.tick(relay - 1);
    assert_eq!(r.take_effects(), vec![]);
    r.tick(relay);
    assert_eq!(
        r.take_effects(),
        vec![Effect::Ship {
            peer: C,
            origin: B,
            from: 1,
            to: 5
        }]
    );
}

#[test]
fn a_peer_that_catches_up_directly_gets_no_relay() {
    let mut r = core(A);
    r.connected(0, C, C, VersionVector::new());
    r.received((1..=2).map(|s| entry(B, s, &[])).collect());
    r.applied(0, vv(&[(B, 2)]), vv(&[(B, 2)]));
    r.tick(0);
    r.take_effects();
    r.acked(500, C, &vv(&[(B, 2)]));
    r.tick(Config::default().relay_after_ms * 2);
    assert_eq!(r.take_effects(), vec![]);
}

#[test]
fn entries_apply_in_origin_order_and_after_their_dependencies() {
    let mut r = core(A);
    // B2 arrives before B1; C1 depends on B2.
    r.received(vec![entry(B, 2, &[]), entry(C, 1, &[(B, 2)])]);
    assert_eq!(seqs(&r.take_effects()), vec![]);
    assert_eq!(r.inbox_len(), 2);
    r.received(vec![entry(B, 1, &[]), entry(B, 1, &[])]);
    assert_eq!(seqs(&r.take_effects()), vec![(B, 1), (B, 2), (C, 1)]);
    assert_eq!(r.inbox_len(), 0);
    // Duplicates of what is scheduled are ignored.
    r.received(vec![entry(B, 2, &[])]);
    assert_eq!(seqs(&r.take_effects()), vec![]);
}

#[test]
fn a_failed_apply_forgets_what_was_scheduled() {
    let mut r = core(A);
    r.received(vec![entry(B, 1, &[])]);
    assert_eq!(seqs(&r.take_effects()), vec![(B, 1)]);
    r.apply_failed();
    r.received(vec![entry(B, 1, &[])]);
    assert_eq!(seqs(&r.take_effects()), vec![(B, 1)]);
}

#[test]
fn lag_counts_what_the_peer_lacks() {
    let mut r = core(A);
    r.connected(0, B, B, VersionVector::new());
    r.applied(100, vv(&[(A, 4), (C, 2)]), vv(&[(A, 4), (C, 2)]));
    assert_eq!(r.lag_ops(B), 6);
    assert_eq!(r.lag_ms(150, B), 50);
    r.acked(160, B, &vv(&[(A, 4), (C, 2)]));
    assert_eq!((r.lag_ops(B), r.lag_ms(170, B)), (0, 0));
}

#[test]
fn truncation_waits_for_every_member_including_ones_not_yet_reconnected() {
    let mut r = core(A);
    r.applied(0, vv(&[(A, 10)]), vv(&[(A, 10)]));
    r.add_peer(C);
    r.connected(0, B, B, vv(&[(A, 7)]));
    assert_eq!(r.truncatable().get(A), 0, "C has not said what it holds");
    r.connected(0, C, C, vv(&[(A, 5)]));
    assert_eq!(r.truncatable().get(A), 5);
    r.remove_peer(C);
    assert_eq!(r.truncatable().get(A), 7);
}

#[test]
fn nothing_ships_while_a_snapshot_is_on_its_way() {
    let mut r = core(A);
    r.applied(0, vv(&[(A, 10)]), vv(&[(A, 10)]));
    r.connected(0, B, B, VersionVector::new());
    r.snapshot_started(B);
    r.tick(0);
    assert_eq!(
        r.take_effects(),
        vec![Effect::Ack {
            peer: B,
            vv: vv(&[(A, 10)])
        }]
    );
    r.snapshot_sent(1, B, &vv(&[(A, 8)]));
    r.tick(1);
    assert_eq!(
        r.take_effects(),
        vec![Effect::Ship {
            peer: B,
            origin: A,
            from: 9,
            to: 10
        }]
    );
}

#[test]
fn a_lost_batch_of_one_origin_ships_again_while_other_origins_flow() {
    let mut r = core(A);
    r.connected(0, C, C, VersionVector::new());
    r.applied(0, vv(&[(A, 2)]), vv(&[(A, 2)]));
    r.tick(0);
    r.take_effects();
    // A's two entries are lost on the way; meanwhile C keeps acknowledging B's entries that
    // reach it through someone else.
    let resend = Config::default().resend_after_ms;
    for t in (100..=resend).step_by(100) {
        r.acked(t, C, &vv(&[(B, t)]));
        r.tick(t);
    }
    let shipped: Vec<Effect> = r
        .take_effects()
        .into_iter()
        .filter(|e| matches!(e, Effect::Ship { .. }))
        .collect();
    assert_eq!(
        shipped,
        vec![Effect::Ship {
            peer: C,
            origin: A,
            from: 1,
            to: 2
        }]
    );
}

#[test]
fn a_peer_back_under_a_new_id_gets_the_writes_of_its_old_one() {
    // B wrote 4 entries, which A holds; B's disk is wiped and it comes back writing as D.
    const D: NodeId = NodeId(4);
    let mut r = core(A);
    r.connected(0, B, B, VersionVector::new());
    r.received((1..=4).map(|s| entry(B, s, &[])).collect());
    r.take_effects();
    r.applied(0, vv(&[(B, 4)]), vv(&[(B, 4)]));
    r.acked(0, B, &vv(&[(B, 4)]));
    r.tick(0);
    r.take_effects();
    // While B wrote as B, A never shipped B its own entries.
    let relay = Config::default().relay_after_ms;
    r.tick(relay);
    assert_eq!(r.take_effects(), vec![]);
    r.disconnected(B);
    r.connected(relay, B, D, VersionVector::new());
    assert_eq!(
        r.truncatable(),
        VersionVector::new(),
        "B's entries are kept for it"
    );
    r.tick(relay);
    r.take_effects();
    r.tick(2 * relay);
    assert_eq!(
        r.take_effects(),
        vec![Effect::Ship {
            peer: B,
            origin: B,
            from: 1,
            to: 4
        }],
        "B's old writes go back to it, as a third origin's"
    );
    // Its new writes count as its own: they are not lag it has.
    r.applied(2 * relay, vv(&[(B, 4), (D, 2)]), vv(&[(B, 4), (D, 2)]));
    r.acked(2 * relay, B, &vv(&[(B, 4)]));
    assert_eq!(r.lag_ops(B), 0);
}

#[test]
fn entries_waiting_for_what_a_repair_brought_leave_the_inbox() {
    let mut r = core(A);
    // B's entries 5 and 6 arrive; 1 to 4 never will: a repair brings B's state up to 5.
    r.received(vec![entry(B, 5, &[]), entry(B, 6, &[])]);
    assert_eq!(r.inbox_len(), 2);
    r.applied(0, vv(&[(B, 5)]), vv(&[(B, 5)]));
    // 5 is held already; 6 follows it.
    assert_eq!(seqs(&r.take_effects()), vec![(B, 6)]);
    assert_eq!(r.inbox_len(), 0);
    // A repair beyond everything waiting empties the inbox with nothing to apply.
    r.received(vec![entry(B, 9, &[])]);
    r.applied(1, vv(&[(B, 10)]), vv(&[(B, 10)]));
    assert!(seqs(&r.take_effects()).is_empty());
    assert_eq!(r.inbox_len(), 0);
}

#[test]
fn entries_whose_predecessors_never_come_leave_the_inbox() {
    let mut r = core(A);
    // B's entry 1 was given up; 2 and 3 wait for it, and C's entries flow meanwhile.
    r.received(vec![entry(B, 2, &[]), entry(B, 3, &[])]);
    r.tick(0);
    r.received(vec![entry(C, 1, &[])]);
    assert_eq!(seqs(&r.take_effects()), vec![(C, 1)]);
    r.tick(29_000);
    assert_eq!(r.inbox_len(), 2, "still waiting within the bound");
    r.tick(30_000);
    assert_eq!(r.inbox_len(), 0);
    // An origin that makes progress is not dropped, however long the inbox holds some of it.
    r.received(vec![entry(C, 3, &[])]);
    r.tick(31_000);
    r.received(vec![entry(C, 2, &[]), entry(C, 5, &[])]);
    r.tick(50_000);
    r.tick(62_000);
    assert_eq!(r.inbox_len(), 1, "C's 5 waited 12 s since C last moved");
}

#[test]
fn a_removed_members_waiting_entries_go_and_stability_waits_for_fresh_acknowledgments() {
    let mut r = core(A);
    r.connected(0, B, B, vv(&[]));
    r.connected(0, C, C, vv(&[]));
    r.acked(0, B, &vv(&[(A, 0)]));
    r.acked(0, C, &vv(&[(A, 0)]));
    // C shipped 2 and 3 before it went down; 1 never arrived.
    r.received(vec![entry(C, 2, &[]), entry(C, 3, &[])]);
    assert!(r.settled());
    r.remove_peer(C);
    assert_eq!(r.inbox_len(), 0);
    assert!(!r.settled(), "B's last acknowledgment predates the removal");
    r.acked(1, B, &vv(&[(C, 1)]));
    assert!(r.settled());
}
