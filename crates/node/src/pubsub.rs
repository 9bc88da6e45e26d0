//! Publish/subscribe on this node.
//!
//! Every subscribed connection registers one bounded channel; `PUBLISH` pushes the message to
//! every channel subscribed to it by name or pattern. A subscriber that falls so far behind
//! that its channel is full is disconnected (as Redis does past its pub/sub output-buffer
//! limit) rather than letting memory grow without bound.

use crate::glob::glob_match;
use bytes::Bytes;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Messages one subscriber may have waiting before it is cut off.
pub const SUBSCRIBER_QUEUE_MAX: usize = 16 * 1024;

/// How a subscription names what it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A channel, by name (`SUBSCRIBE`).
    Channel,
    /// Channels matching a glob pattern (`PSUBSCRIBE`).
    Pattern,
    /// A shard channel, by name (`SSUBSCRIBE`): a namespace of its own, published to with
    /// `SPUBLISH`.
    Shard,
}

/// A message for a subscriber.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// On a channel it subscribed to by name.
    Message {
        /// The channel.
        channel: Bytes,
        /// The payload.
        payload: Bytes,
    },
    /// On a channel matching a pattern it subscribed to.
    PMessage {
        /// The pattern.
        pattern: Bytes,
        /// The channel.
        channel: Bytes,
        /// The payload.
        payload: Bytes,
    },
    /// On a shard channel it subscribed to.
    SMessage {
        /// The shard channel.
        channel: Bytes,
        /// The payload.
        payload: Bytes,
    },
}

/// A registered subscriber's end.
pub struct Subscriber {
    /// Its identity in the hub.
    pub id: SubscriberId,
    /// Where its messages arrive.
    pub rx: mpsc::Receiver<Delivery>,
    /// Set when a message could not be queued: the subscriber lost messages and is cut off.
    pub overflowed: Arc<AtomicBool>,
}

/// A subscriber's identity in the hub.
pub type SubscriberId = u64;

#[derive(Default)]
struct Inner {
    next_id: SubscriberId,
    senders: HashMap<SubscriberId, (mpsc::Sender<Delivery>, Arc<AtomicBool>)>,
    channels: HashMap<Bytes, BTreeSet<SubscriberId>>,
    patterns: HashMap<Bytes, BTreeSet<SubscriberId>>,
    shards: HashMap<Bytes, BTreeSet<SubscriberId>>,
}

impl Inner {
    fn map(&mut self, kind: Kind) -> &mut HashMap<Bytes, BTreeSet<SubscriberId>> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shards,
        }
    }
}

/// All subscriptions of this node.
#[derive(Default)]
pub struct Hub {
    inner: Mutex<Inner>,
}

impl Hub {
    /// Registers a subscriber; messages arrive on its receiver.
    pub fn register(&self) -> Subscriber {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE_MAX);
        let overflowed = Arc::new(AtomicBool::new(false));
        let mut inner = self.inner.lock().expect("pubsub lock");
        inner.next_id += 1;
        let id = inner.next_id;
        inner.senders.insert(id, (tx, overflowed.clone()));
        Subscriber { id, rx, overflowed }
    }

    /// Removes a subscriber and all its subscriptions.
    pub fn unregister(&self, id: SubscriberId) {
        let mut inner = self.inner.lock().expect("pubsub lock");
        inner.senders.remove(&id);
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            inner.map(kind).retain(|_, subs| {
                subs.remove(&id);
                !subs.is_empty()
            });
        }
    }

    /// Subscribes `id` to `name`, a channel, pattern or shard channel as `kind` says.
    pub fn subscribe(&self, id: SubscriberId, name: Bytes, kind: Kind) {
        let mut inner = self.inner.lock().expect("pubsub lock");
        inner.map(kind).entry(name).or_default().insert(id);
    }

    /// Unsubscribes `id` from `name`.
    pub fn unsubscribe(&self, id: SubscriberId, name: &Bytes, kind: Kind) {
        let mut inner = self.inner.lock().expect("pubsub lock");
        let map = inner.map(kind);
        if let Some(subs) = map.get_mut(name) {
            subs.remove(&id);
            if subs.is_empty() {
                map.remove(name);
            }
        }
    }

    /// The channels (or shard channels) with subscribers whose names match `pattern` (all
    /// when `None`), in byte order: `PUBSUB CHANNELS`, `PUBSUB SHARDCHANNELS`.
    pub fn active(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let mut inner = self.inner.lock().expect("pubsub lock");
        let names = inner.map(kind).keys();
        let mut out: Vec<Bytes> = names
            .filter(|n| pattern.is_none_or(|p| glob_match(p, n, false)))
            .cloned()
            .collect();
        out.sort();
        out
    }

    /// How many subscribers `name` has: `PUBSUB NUMSUB`, `PUBSUB SHARDNUMSUB`.
    pub fn count(&self, kind: Kind, name: &Bytes) -> usize {
        let mut inner = self.inner.lock().expect("pubsub lock");
        inner.map(kind).get(name).map_or(0, BTreeSet::len)
    }

    /// How many patterns have subscribers: `PUBSUB NUMPAT`.
    pub fn patterns(&self) -> usize {
        self.inner.lock().expect("pubsub lock").patterns.len()
    }

    /// Delivers a message on a channel (`PUBLISH`: to its subscribers and those of matching
    /// patterns) or a shard channel (`SPUBLISH`); returns how many subscriptions received it.
    pub fn publish_to(&self, kind: Kind, channel: &Bytes, payload: &Bytes) -> i64 {
        let inner = self.inner.lock().expect("pubsub lock");
        let mut receivers = 0;
        let mut deliver = |id: &SubscriberId, d: Delivery| {
            if let Some((tx, overflowed)) = inner.senders.get(id) {
                receivers += 1;
                if tx.try_send(d).is_err() {
                    // Full: a message is lost, so the subscriber must go. Its connection sees
                    // the flag and closes; it unregisters itself.
                    overflowed.store(true, Ordering::Relaxed);
                }
            }
        };
        if kind == Kind::Shard {
            for id in inner.shards.get(channel).into_iter().flatten() {
                let (channel, payload) = (channel.clone(), payload.clone());
                deliver(id, Delivery::SMessage { channel, payload });
            }
            return receivers;
        }
        if let Some(subs) = inner.channels.get(channel) {
            for id in subs {
                deliver(
                    id,
                    Delivery::Message {
                        channel: channel.clone(),
                        payload: payload.clone(),
                    },
                );
            }
        }
        for (pattern, subs) in &inner.patterns {
            if glob_match(pattern, channel, false) {
                for id in subs {
                    deliver(
                        id,
                        Delivery::PMessage {
                            pattern: pattern.clone(),
                            channel: channel.clone(),
                            payload: payload.clone(),
                        },
                    );
                }
            }
        }
        receivers
    }

    /// Delivers a message on a channel (`PUBLISH`).
    pub fn publish(&self, channel: &Bytes, payload: &Bytes) -> i64 {
        self.publish_to(Kind::Channel, channel, payload)
    }
}
