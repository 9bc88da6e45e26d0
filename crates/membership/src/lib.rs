//! Who is in the cluster and who is alive, for Meridian (design section 5), with no I/O.
//!
//! A tour:
//! - [`MemberInfo`]: a node as others know it (name, region, peer address).
//! - [`Membership`]: SWIM failure detection and gossip, wrapping the foca crate. Members probe
//!   each other; a member that does not answer is probed indirectly through others (so a node
//!   that one peer cannot reach but others can stays alive), then suspected, then declared
//!   down; every change rides on the probes to everyone. A node declared down while it was only
//!   cut off or paused learns so when it is heard again and rejoins under a renewed identity.
//! - Datagrams: foca carries no encryption or authentication, so the runtime seals every
//!   payload under the cluster's gossip [`Keyring`] (ChaCha20-Poly1305) and opens what
//!   arrives; one that does not open, or is replayed ([`ReplayGuard`]), changes nothing.
//!
//! The runtime (the node, or the simulator) hands in the payloads that arrived and the
//! timers that fired, and carries out the [`Effect`]s: send a payload, schedule a timer,
//! learn that a member is up or down.
#![deny(missing_docs)]

mod datagram;
mod identity;

pub use datagram::{
    KEY_BYTES, Keyring, OVERHEAD_BYTES, Rejected, ReplayGuard, WINDOW_MS, format_key, key_id,
    parse_key, parse_keyring,
};
pub use identity::MemberInfo;

use bytes::Bytes;
use foca::{AccumulatingRuntime, Foca, NoCustomBroadcast, OwnedNotification, PostcardCodec};
use identity::Id;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::num::{NonZeroU8, NonZeroUsize};
use std::time::Duration;

/// Largest foca payload in one datagram (a safe size below common MTUs).
pub const PAYLOAD_BYTES_MAX: usize = 1400;

/// Why a datagram changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Authenticated but not understood by the SWIM core (a bug or a newer peer). Nothing is
    /// touched.
    #[error("gossip datagram refused: {0}")]
    Refused(String),
}

/// What SWIM believes about a member, liveliest first (the order `min` picks by).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Liveness {
    /// Answered a probe (directly or through another member) recently.
    Alive,
    /// Missed a probe; declared down unless it refutes in time.
    Suspect,
    /// Declared down by the cluster.
    Down,
}

/// A timer the runtime hands back after its delay.
#[derive(Clone, Debug)]
pub struct Timer(Due);

#[derive(Clone, Debug)]
enum Due {
    /// One of foca's.
    Foca(foca::Timer<Id>),
    /// Our own: announce again if no member is active.
    Reannounce,
}

/// How often a node with no active member announces itself again.
const REANNOUNCE_EVERY: Duration = Duration::from_secs(1);
/// Addresses announced to at once when no member is active.
const REANNOUNCE_FANOUT: usize = 8;
/// Addresses remembered for announcing.
const ADDRS_MAX: usize = 1024;
/// Seconds (reannounce ticks) a suspicion may last before this node declares the member down
/// itself: foca's own timer for it is dropped when this node rejoins, and a member that
/// never hears of the suspicion never refutes it, so it would stay suspect forever.
const SUSPECT_TICKS_MAX: u32 = 8;

/// What the runtime must do.
#[derive(Clone, Debug)]
pub enum Effect {
    /// Send `payload` to the peer address `to` (in `region`, for simulated WAN delay; empty
    /// when unknown, as for a seed address), sealed by the runtime.
    Send {
        /// The destination's peer address.
        to: String,
        /// The destination's region.
        region: String,
        /// What to seal and send.
        payload: Bytes,
    },
    /// Hand `timer` back through [`Membership::timer`] after `after`.
    Schedule {
        /// The delay.
        after: Duration,
        /// The timer.
        timer: Timer,
    },
    /// A member is alive: new, back after being down, or under new addresses.
    Up(MemberInfo),
    /// A member was declared down.
    Down(MemberInfo),
    /// This node had been declared down (it was cut off or paused) and rejoined.
    Rejoined,
}

/// The SWIM timings: a probe every second, indirect probes after 600 ms without an answer
/// (room for a 220 ms WAN round trip and jitter), suspicion for 3 s. A dead node is known as
/// down everywhere about 5 s after it stops answering.
fn config() -> foca::Config {
    let mut c = foca::Config::simple();
    c.probe_period = Duration::from_millis(1000);
    c.probe_rtt = Duration::from_millis(600);
    c.num_indirect_probes = NonZeroUsize::new(3).expect("non-zero");
    c.max_transmissions = NonZeroU8::new(8).expect("non-zero");
    c.suspect_to_down_after = Duration::from_secs(3);
    c.max_packet_size = NonZeroUsize::new(PAYLOAD_BYTES_MAX).expect("non-zero");
    // Tell a member we believe down that we do, so it rejoins once a partition heals.
    c.notify_down_members = true;
    let every = |ms, n| {
        Some(foca::PeriodicParams {
            frequency: Duration::from_millis(ms),
            num_members: NonZeroUsize::new(n).expect("non-zero"),
        })
    };
    c.periodic_gossip = every(200, 3);
    c.periodic_announce = every(10_000, 1);
    // Members declared down are asked again, so halves of a healed partition find each other.
    c.periodic_announce_to_down_members = every(3_000, 2);
    c
}

/// One node's view of the cluster: the SWIM core and its pending effects.
pub struct Membership {
    foca: Foca<Id, PostcardCodec, SmallRng, NoCustomBroadcast>,
    out: AccumulatingRuntime<Id>,
    effects: Vec<Effect>,
    /// Every address announced to or heard of: where to look when no member is active
    /// (foca itself then stays silent, and after a partition in which both halves renewed
    /// their identities neither would speak first).
    addrs: Vec<String>,
    next_addr: usize,
    /// Whether foca is connected: some active member knows our current identity. It is not
    /// after a rejoin, and then messages to the identities it remembers may be ignored (they
    /// renewed too), so it announces to addresses until it is.
    connected: bool,
    /// Members seen suspect at consecutive reannounce ticks, and for how many.
    suspects: Vec<(Id, u16, u32)>,
}

impl Membership {
    /// This node as `me`. `bump` must grow from one start of the node to the next (the
    /// runtime uses its start time), so that its new identity wins over the old one; `seed`
    /// feeds the probe order.
    pub fn new(me: MemberInfo, bump: u64, seed: u64) -> Membership {
        let foca = Foca::new(
            Id { info: me, bump },
            config(),
            SmallRng::seed_from_u64(seed),
            PostcardCodec,
        );
        Membership {
            foca,
            out: AccumulatingRuntime::new(),
            effects: vec![Effect::Schedule {
                after: REANNOUNCE_EVERY,
                timer: Timer(Due::Reannounce),
            }],
            addrs: Vec::new(),
            next_addr: 0,
            connected: false,
            suspects: Vec::new(),
        }
    }

    /// This node's current identity.
    pub fn me(&self) -> &MemberInfo {
        &self.foca.identity().info
    }

    /// Asks the node at `addr` (a seed, or a member remembered from an earlier run) to let
    /// this one in; its answer brings the members it knows.
    pub fn announce(&mut self, addr: &str) {
        self.remember(addr);
        let dst = Id::placeholder(addr);
        // An announce only fails to encode, which cannot happen for our own identity.
        let _ = self.foca.announce(dst, &mut self.out);
        self.drain();
    }

    /// A payload arrived (opened by the runtime).
    pub fn receive(&mut self, payload: &[u8]) -> Result<(), Error> {
        let result = self.foca.handle_data(payload, &mut self.out);
        self.drain();
        match result {
            Ok(()) => Ok(()),
            // Our own datagram bounced back (a member listed our address): not an error.
            Err(foca::Error::DataFromOurselves) => Ok(()),
            Err(e) => Err(Error::Refused(e.to_string())),
        }
    }

    /// A timer scheduled earlier is due.
    pub fn timer(&mut self, timer: Timer) {
        match timer.0 {
            // Timer errors mean a stale timer foca no longer cares about.
            Due::Foca(t) => drop(self.foca.handle_timer(t, &mut self.out)),
            Due::Reannounce => {
                self.effects.push(Effect::Schedule {
                    after: REANNOUNCE_EVERY,
                    timer: Timer(Due::Reannounce),
                });
                self.end_stale_suspicions();
                if !self.connected && !self.addrs.is_empty() {
                    for _ in 0..REANNOUNCE_FANOUT.min(self.addrs.len()) {
                        self.next_addr = (self.next_addr + 1) % self.addrs.len();
                        let dst = Id::placeholder(&self.addrs[self.next_addr]);
                        let _ = self.foca.announce(dst, &mut self.out);
                    }
                }
            }
        }
        self.drain();
    }

    /// Declares down the members that stayed suspect (same identity and incarnation) for
    /// [`SUSPECT_TICKS_MAX`] ticks. If one is alive after all, it learns so, renews its
    /// identity and is up again everywhere within seconds.
    fn end_stale_suspicions(&mut self) {
        let mut seen = Vec::new();
        let mut stale = Vec::new();
        for m in self.foca.iter_members() {
            if m.state() != foca::State::Suspect {
                continue;
            }
            let ticks = self
                .suspects
                .iter()
                .find(|(id, inc, _)| id == m.id() && *inc == m.incarnation())
                .map_or(0, |(_, _, t)| *t)
                + 1;
            if ticks > SUSPECT_TICKS_MAX {
                stale.push(foca::Member::down(m.id().clone()));
            } else {
                seen.push((m.id().clone(), m.incarnation(), ticks));
            }
        }
        self.suspects = seen;
        if !stale.is_empty() {
            let _ = self.foca.apply_many(stale.into_iter(), true, &mut self.out);
        }
    }

    fn remember(&mut self, addr: &str) {
        if addr != self.me().peer_addr
            && self.addrs.len() < ADDRS_MAX
            && !self.addrs.iter().any(|a| a == addr)
        {
            self.addrs.push(addr.to_string());
        }
    }

    /// Tells a few members this node leaves; it stops taking part.
    pub fn leave(&mut self) {
        let _ = self.foca.leave_cluster(&mut self.out);
        self.drain();
    }

    /// What SWIM believes about the member named `name`, if it knows it.
    pub fn liveness(&self, name: &str) -> Option<Liveness> {
        self.livenesses().get(name).copied()
    }

    /// What SWIM believes about every member it knows, by name, in one pass. A node that
    /// moved to another address is two identities, the old one down: the liveliest counts.
    pub fn livenesses(&self) -> std::collections::BTreeMap<&str, Liveness> {
        let mut out = std::collections::BTreeMap::new();
        for m in self.foca.iter_membership_state() {
            let l = match m.state() {
                foca::State::Alive => Liveness::Alive,
                foca::State::Suspect => Liveness::Suspect,
                foca::State::Down => Liveness::Down,
            };
            out.entry(m.id().info.name.as_str())
                .and_modify(|best: &mut Liveness| *best = (*best).min(l))
                .or_insert(l);
        }
        out
    }

    /// Members SWIM holds as alive or suspect.
    pub fn active(&self) -> impl Iterator<Item = &MemberInfo> {
        self.foca.iter_members().map(|m| &m.id().info)
    }

    /// The effects of everything handed in since the last call.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    fn drain(&mut self) {
        while let Some((to, payload)) = self.out.to_send() {
            self.effects.push(Effect::Send {
                to: to.info.peer_addr.clone(),
                region: to.info.region.clone(),
                payload,
            });
        }
        while let Some((after, timer)) = self.out.to_schedule() {
            self.effects.push(Effect::Schedule {
                after,
                timer: Timer(Due::Foca(timer)),
            });
        }
        let mut notifications = Vec::new();
        while let Some(n) = self.out.to_notify() {
            notifications.push(n);
        }
        let up_follows = |id: &Id, rest: &[OwnedNotification<Id>]| {
            rest.iter()
                .any(|n| matches!(n, OwnedNotification::MemberUp(up) if up == id))
        };
        for (i, n) in notifications.iter().enumerate() {
            let n = n.clone();
            match n {
                OwnedNotification::MemberUp(id) => {
                    self.remember(&id.info.peer_addr);
                    self.effects.push(Effect::Up(id.info));
                }
                // A member restarted or rejoined under a new identity: up if it is active
                // (said once: foca follows a rename that revives a member with its MemberUp).
                OwnedNotification::Rename(_, id) => {
                    if !up_follows(&id, &notifications[i + 1..])
                        && self.foca.iter_members().any(|m| *m.id() == id)
                    {
                        self.remember(&id.info.peer_addr);
                        self.effects.push(Effect::Up(id.info));
                    }
                }
                OwnedNotification::MemberDown(id) => self.effects.push(Effect::Down(id.info)),
                OwnedNotification::Rejoin(_) => {
                    self.connected = false;
                    self.effects.push(Effect::Rejoined);
                }
                OwnedNotification::Active => self.connected = true,
                OwnedNotification::Idle | OwnedNotification::Defunct => self.connected = false,
            }
        }
    }
}

#[cfg(test)]
mod tests;
