//! Client-side caching: `CLIENT TRACKING`, `CLIENT CACHING`, `CLIENT GETREDIR`,
//! `CLIENT TRACKINGINFO`.
//!
//! A tracking client is told when a key it read may have changed, so it can drop what it
//! cached. In the default mode the node remembers which clients read which keys (after each
//! read-only command, the keys it named); in `BCAST` mode a client names key prefixes instead
//! and hears of every write under them. Every commit of the engine (clients' writes here,
//! writes replicated from other regions, expiries) passes the keys it wrote to
//! [`Tracking::invalidate`], which queues one invalidation per client on the client's
//! connection (or on the connection it redirects to): a RESP3 `invalidate` push, or for a
//! RESP2 redirect target a message on `__redis__:invalidate`. A key is forgotten once its
//! readers are told, as in Redis. The table is bounded (`tracking-table-max-keys`, Redis's
//! default of one million): past it, the oldest keys are invalidated and forgotten.

use super::clients::{Clients, Push};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Keys remembered at most, by default.
pub const TABLE_MAX_KEYS: usize = 1_000_000;

/// `INFO`'s figures of the tracking table.
pub struct Counts {
    /// Keys remembered (default mode).
    pub keys: usize,
    /// Key and reader pairs.
    pub items: usize,
    /// BCAST prefixes.
    pub prefixes: usize,
    /// Clients tracking.
    pub clients: usize,
}

/// How one client tracks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mode {
    /// Where its invalidations go: another client's id.
    pub redirect: Option<u64>,
    /// `BCAST`, with its prefixes (one empty prefix for every key).
    pub bcast: Option<Vec<Bytes>>,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
}

impl Inner {
    /// Whether a write may concern the table.
    fn busy(&self) -> bool {
        !self.modes.is_empty() || !self.readers.is_empty()
    }
}

#[derive(Default)]
struct Inner {
    /// Default mode: the clients that read each key, and the keys in the order first read.
    readers: HashMap<Bytes, BTreeSet<u64>>,
    order: VecDeque<Bytes>,
    /// BCAST mode: the clients of each prefix.
    prefixes: BTreeMap<Bytes, BTreeSet<u64>>,
    /// Every tracking client's mode.
    modes: HashMap<u64, Mode>,
    /// Redirect targets found gone: their tracking clients are told once.
    broken: BTreeSet<u64>,
    max_keys: usize,
}

/// The node's tracking table.
pub struct Tracking {
    inner: Mutex<Inner>,
    /// Whether any client tracks or any key is remembered: commits skip the table while
    /// neither.
    any: AtomicBool,
    clients: Arc<Clients>,
}

impl Tracking {
    /// An empty table whose invalidations go to `clients`' connections.
    pub fn new(clients: Arc<Clients>) -> Tracking {
        Tracking {
            inner: Mutex::new(Inner {
                max_keys: TABLE_MAX_KEYS,
                ..Inner::default()
            }),
            any: AtomicBool::new(false),
            clients,
        }
    }

    /// Turns tracking on for `client` in `mode` (replacing a mode it had).
    pub fn enable(&self, client: u64, mode: Mode) {
        let mut inner = self.inner.lock().expect("tracking lock");
        for prefix in mode.bcast.iter().flatten() {
            inner
                .prefixes
                .entry(prefix.clone())
                .or_default()
                .insert(client);
        }
        inner.modes.insert(client, mode);
        inner.broken.remove(&client);
        self.any.store(true, Ordering::Relaxed);
    }

    /// Turns tracking off for `client` (also when its connection ends). Keys it read stay
    /// until they change; their invalidation then skips it.
    pub fn disable(&self, client: u64) {
        let mut inner = self.inner.lock().expect("tracking lock");
        if inner.modes.remove(&client).is_none() {
            return;
        }
        inner.prefixes.retain(|_, clients| {
            clients.remove(&client);
            !clients.is_empty()
        });
        inner.broken.remove(&client);
        self.any.store(inner.busy(), Ordering::Relaxed);
    }

    /// `client`'s mode, when it tracks.
    pub fn mode(&self, client: u64) -> Option<Mode> {
        self.inner
            .lock()
            .expect("tracking lock")
            .modes
            .get(&client)
            .cloned()
    }

    /// Whether `client`'s redirect target went away.
    pub fn broken(&self, client: u64) -> bool {
        self.inner
            .lock()
            .expect("tracking lock")
            .broken
            .contains(&client)
    }

    /// `tracking-table-max-keys` (0: Redis's meaning, no bound): keys past it go at once.
    pub fn set_max_keys(&self, max: usize) {
        let mut inner = self.inner.lock().expect("tracking lock");
        inner.max_keys = max;
        self.evict(&mut inner);
    }

    /// `tracking-table-max-keys` as set.
    pub fn max_keys(&self) -> usize {
        self.inner.lock().expect("tracking lock").max_keys
    }

    /// What `INFO` shows of the table.
    pub fn counts(&self) -> Counts {
        let inner = self.inner.lock().expect("tracking lock");
        Counts {
            keys: inner.readers.len(),
            items: inner.readers.values().map(BTreeSet::len).sum(),
            prefixes: inner.prefixes.len(),
            clients: inner.modes.len(),
        }
    }

    /// `client` read `keys`: tell it when they change.
    pub fn remember(&self, client: u64, keys: impl Iterator<Item = Bytes>) {
        let mut inner = self.inner.lock().expect("tracking lock");
        for key in keys {
            let readers = inner.readers.entry(key.clone()).or_default();
            let fresh = readers.is_empty();
            readers.insert(client);
            if fresh {
                inner.order.push_back(key);
            }
        }
        // Keys invalidated since stay in the order until it is swept here.
        if inner.order.len() > 2 * inner.readers.len() + 1024 {
            let Inner { order, readers, .. } = &mut *inner;
            order.retain(|k| readers.contains_key(k));
        }
        self.any.store(true, Ordering::Relaxed);
        self.evict(&mut inner);
    }

    /// Past the bound, the oldest keys go, and their readers drop what they cached.
    fn evict(&self, inner: &mut Inner) {
        let mut evicted = Vec::new();
        while inner.max_keys > 0 && inner.readers.len() > inner.max_keys {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(readers) = inner.readers.remove(&old) {
                evicted.push((old, readers));
            }
        }
        // One invalidation per key, as Redis sends them.
        for (key, readers) in evicted {
            let to = readers
                .into_iter()
                .map(|r| (r, vec![key.clone()]))
                .collect();
            self.send(inner, to);
        }
    }

    /// Keys changed (`None`: every key, a flush): their readers and the BCAST clients of
    /// their prefixes are told, and the keys are forgotten. A `NOLOOP` client is not told of
    /// the keys it wrote itself (`written_by`: key, client).
    pub fn invalidate(&self, keys: Option<&[Bytes]>, written_by: &[(Bytes, u64)]) {
        if !self.any.load(Ordering::Relaxed) {
            return;
        }
        let mut inner = self.inner.lock().expect("tracking lock");
        let mut to: BTreeMap<u64, Vec<Bytes>> = BTreeMap::new();
        let Some(keys) = keys else {
            inner.readers.clear();
            inner.order.clear();
            let all: Vec<u64> = inner.modes.keys().copied().collect();
            for client in all {
                self.deliver(&mut inner, client, None);
            }
            self.any.store(inner.busy(), Ordering::Relaxed);
            return;
        };
        // BCAST clients hear once per prefix, as in Redis.
        let mut by_prefix: BTreeMap<(u64, Bytes), Vec<Bytes>> = BTreeMap::new();
        for key in keys {
            if let Some(readers) = inner.readers.remove(key) {
                for r in readers {
                    to.entry(r).or_default().push(key.clone());
                }
            }
            for (prefix, clients) in &inner.prefixes {
                if key.starts_with(prefix) {
                    for c in clients {
                        by_prefix
                            .entry((*c, prefix.clone()))
                            .or_default()
                            .push(key.clone());
                    }
                }
            }
        }
        if !written_by.is_empty() {
            let own = |client: &u64, key: &Bytes| {
                inner.modes.get(client).is_some_and(|m| m.noloop)
                    && written_by.iter().any(|(k, c)| c == client && k == key)
            };
            for (client, keys) in to.iter_mut() {
                keys.retain(|k| !own(client, k));
            }
            for ((client, _), keys) in by_prefix.iter_mut() {
                keys.retain(|k| !own(client, k));
            }
        }
        to.retain(|_, keys| !keys.is_empty());
        self.any.store(inner.busy(), Ordering::Relaxed);
        self.send(&mut inner, to);
        for ((client, _), mut keys) in by_prefix.into_iter().filter(|(_, k)| !k.is_empty()) {
            keys.dedup();
            self.deliver(&mut inner, client, Some(keys));
        }
    }

    /// Tells readers of keys. A reader that has since switched to BCAST mode is not told of
    /// what it read before, as in Redis.
    fn send(&self, inner: &mut Inner, to: BTreeMap<u64, Vec<Bytes>>) {
        for (client, mut keys) in to {
            if inner.modes.get(&client).is_some_and(|m| m.bcast.is_some()) {
                continue;
            }
            keys.dedup();
            self.deliver(inner, client, Some(keys));
        }
    }

    /// Queues an invalidation of `keys` (`None`: all) for `client`, on its connection or the
    /// one it redirects to.
    fn deliver(&self, inner: &mut Inner, client: u64, keys: Option<Vec<Bytes>>) {
        let Some(mode) = inner.modes.get(&client) else {
            return; // stopped tracking since it read
        };
        let target = mode.redirect.unwrap_or(client);
        if self.clients.push(target, Push::Invalidate(keys)) {
            return;
        }
        if mode.redirect.is_some() && inner.broken.insert(client) {
            // The redirect target is gone: the tracking client hears of it once.
            self.clients.push(client, Push::RedirectBroken(target));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::from(s.to_string())
    }

    fn setup() -> (Arc<Clients>, Tracking) {
        let clients = Arc::new(Clients::default());
        let addr = "127.0.0.1:1".parse().unwrap();
        for id in 1..=3 {
            clients.register(id, addr, addr);
        }
        let tracking = Tracking::new(clients.clone());
        (clients, tracking)
    }

    async fn pushes(clients: &Clients, id: u64) -> Vec<Push> {
        let client = clients
            .list(&Default::default())
            .into_iter()
            .find(|c| c.id == id);
        let client = client.expect("registered");
        tokio::time::timeout(std::time::Duration::from_millis(50), client.pushed())
            .await
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn readers_hear_once_and_noloop_clients_not_of_their_own_writes() {
        let (clients, tracking) = setup();
        tracking.enable(1, Mode::default());
        let noloop = Mode {
            noloop: true,
            ..Mode::default()
        };
        tracking.enable(2, noloop);
        tracking.remember(1, [b("k")].into_iter());
        tracking.remember(2, [b("k")].into_iter());
        tracking.invalidate(Some(&[b("k")]), &[(b("k"), 2)]);
        assert_eq!(
            pushes(&clients, 1).await,
            [Push::Invalidate(Some(vec![b("k")]))]
        );
        assert_eq!(pushes(&clients, 2).await, []);
        tracking.invalidate(Some(&[b("k")]), &[]);
        assert_eq!(pushes(&clients, 1).await, [], "told once until read again");
    }

    #[tokio::test]
    async fn bcast_prefixes_hear_apart_and_a_full_table_evicts_key_by_key() {
        let (clients, tracking) = setup();
        let bcast = Mode {
            redirect: Some(3),
            bcast: Some(vec![b("a:"), b("b:")]),
            ..Mode::default()
        };
        tracking.enable(1, bcast);
        tracking.invalidate(Some(&[b("a:1"), b("b:1"), b("c:1")]), &[]);
        let got = pushes(&clients, 3).await;
        assert_eq!(got.len(), 2, "one invalidation per prefix: {got:?}");
        tracking.enable(2, Mode::default());
        tracking.remember(2, [b("x"), b("y"), b("z")].into_iter());
        tracking.set_max_keys(1);
        let got = pushes(&clients, 2).await;
        let one = |k| Push::Invalidate(Some(vec![b(k)]));
        assert_eq!(got, [one("x"), one("y")]);
        assert_eq!(tracking.counts().keys, 1);
    }
}
