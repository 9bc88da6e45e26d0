//! The node's client connections, as `CLIENT LIST`, `CLIENT INFO` and `CLIENT KILL` see them.
//!
//! Each connection registers when it opens and leaves when it ends; it refreshes what it
//! shows (name, protocol, subscriptions, last command) at each command, under a lock only it
//! and a `CLIENT LIST` take. `CLIENT KILL` marks a client and wakes its task, which closes the
//! connection after writing the replies it has.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio::time::Instant;

/// What a client shows, as of its latest command.
#[derive(Clone, Debug, Default)]
pub struct Shown {
    /// `CLIENT SETNAME`.
    pub name: Option<Bytes>,
    /// The latest command (`client|list` for subcommands).
    pub cmd: String,
    /// 2 or 3.
    pub resp: u8,
    /// Channels and patterns subscribed.
    pub sub: usize,
    /// Patterns subscribed.
    pub psub: usize,
    /// Shard channels subscribed.
    pub ssub: usize,
    /// Commands queued in `MULTI`, or -1 outside one.
    pub multi: i64,
    /// Waiting in a blocking command.
    pub blocked: bool,
    /// In `MONITOR`.
    pub monitor: bool,
    /// The user it is logged in as.
    pub user: String,
    /// The channels (and shard channels) it is subscribed to.
    pub channels: Vec<Bytes>,
    /// The patterns it is subscribed to.
    pub patterns: Vec<Bytes>,
}

/// Something a connection is told without asking (client-side caching, `tracking.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Push {
    /// Keys it (or a client redirecting to it) read changed; `None`: every key.
    Invalidate(Option<Vec<Bytes>>),
    /// The client it redirected invalidations to, by id, is gone.
    RedirectBroken(u64),
}

/// Pushes one connection may have waiting before it is cut off (it lost invalidations).
const PUSHES_MAX: usize = 16 * 1024;

/// One client connection.
pub struct Client {
    /// `CLIENT ID`.
    pub id: u64,
    /// The client's address.
    pub addr: SocketAddr,
    /// The node's address it connected to.
    pub laddr: SocketAddr,
    created: Instant,
    last: Mutex<(Instant, Shown)>,
    killed: AtomicBool,
    wake: Notify,
    pushes: Mutex<std::collections::VecDeque<Push>>,
    pushed: Notify,
}

impl Client {
    /// Queues `push` for the connection; one that falls too far behind is killed.
    fn push(&self, push: Push) {
        let mut pushes = self.pushes.lock().expect("not poisoned");
        if pushes.len() >= PUSHES_MAX {
            drop(pushes);
            tracing::warn!(
                client = self.id,
                "closing a client that fell too far behind its invalidations"
            );
            self.kill();
            return;
        }
        pushes.push_back(push);
        self.pushed.notify_one();
    }

    /// Completes once something is pushed, with everything waiting.
    pub async fn pushed(&self) -> Vec<Push> {
        loop {
            let pushes: Vec<Push> = self
                .pushes
                .lock()
                .expect("not poisoned")
                .drain(..)
                .collect();
            if !pushes.is_empty() {
                return pushes;
            }
            self.pushed.notified().await;
        }
    }

    /// Records the command about to run and what the client shows now.
    pub fn update(&self, shown: Shown) {
        *self.last.lock().expect("not poisoned") = (Instant::now(), shown);
    }

    /// Whether `CLIENT KILL` named this client.
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Completes once the client is killed.
    pub async fn killed(&self) {
        loop {
            let woken = self.wake.notified();
            if self.is_killed() {
                return;
            }
            woken.await;
        }
    }

    fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.wake.notify_waiters();
    }

    /// Its `CLIENT LIST` line (without the newline), in Redis 7.0's fields; the buffer
    /// figures Meridian does not keep read 0. `running` is the size of the command the client
    /// is running, when the client asks about itself: its query buffer holds that command.
    pub fn line(&self, running: Option<usize>) -> String {
        let (last, shown) = self.last.lock().expect("not poisoned").clone();
        let now = Instant::now();
        let mut flags = String::new();
        if shown.sub + shown.psub + shown.ssub > 0 {
            flags.push('P');
        }
        if shown.multi >= 0 {
            flags.push('x');
        }
        if shown.blocked {
            flags.push('b');
        }
        if shown.monitor {
            flags.push('O');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let name = shown
            .name
            .as_ref()
            .map(|n| String::from_utf8_lossy(n).into_owned());
        format!(
            "id={} addr={} laddr={} fd=0 name={} age={} idle={} flags={flags} db=0 sub={} psub={} ssub={} \
             multi={} qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 \
             events=r cmd={} user={} redir=-1 resp={}",
            self.id,
            self.addr,
            self.laddr,
            name.unwrap_or_default(),
            now.duration_since(self.created).as_secs(),
            now.duration_since(last).as_secs(),
            shown.sub,
            shown.psub,
            shown.ssub,
            shown.multi,
            running.unwrap_or(0),
            shown.cmd,
            shown.user,
            shown.resp,
        )
    }

    fn pubsub(&self) -> bool {
        let shown = &self.last.lock().expect("not poisoned").1;
        shown.sub + shown.psub + shown.ssub > 0
    }
}

/// Every open client connection.
#[derive(Default)]
pub struct Clients(Mutex<BTreeMap<u64, Arc<Client>>>);

/// Which clients a `CLIENT KILL` or `CLIENT LIST` names.
#[derive(Default)]
pub struct Filter {
    /// `ID`.
    pub ids: Vec<u64>,
    /// `TYPE normal|pubsub` (`Some(true)`: pub/sub clients).
    pub pubsub: Option<bool>,
    /// `ADDR ip:port`.
    pub addr: Option<String>,
    /// `LADDR ip:port`.
    pub laddr: Option<String>,
    /// `SKIPME yes`: the asking client is left out.
    pub skip: Option<u64>,
    /// `TYPE master|replica`: no client is one.
    pub none: bool,
    /// `USER name`: the clients logged in as it.
    pub user: Option<String>,
}

impl Filter {
    fn matches(&self, c: &Client) -> bool {
        !self.none
            && (self.ids.is_empty() || self.ids.contains(&c.id))
            && self.pubsub.is_none_or(|p| c.pubsub() == p)
            && self.addr.as_ref().is_none_or(|a| *a == c.addr.to_string())
            && self
                .laddr
                .as_ref()
                .is_none_or(|a| *a == c.laddr.to_string())
            && self.skip != Some(c.id)
            && (self.user.as_ref())
                .is_none_or(|u| *u == c.last.lock().expect("not poisoned").1.user)
    }
}

impl Clients {
    /// A connection opened.
    pub fn register(&self, id: u64, addr: SocketAddr, laddr: SocketAddr) -> Arc<Client> {
        let now = Instant::now();
        let client = Arc::new(Client {
            id,
            addr,
            laddr,
            created: now,
            last: Mutex::new((
                now,
                Shown {
                    resp: 2,
                    multi: -1,
                    cmd: "NULL".into(),
                    ..Shown::default()
                },
            )),
            killed: AtomicBool::new(false),
            wake: Notify::new(),
            pushes: Mutex::new(Default::default()),
            pushed: Notify::new(),
        });
        self.0
            .lock()
            .expect("not poisoned")
            .insert(id, client.clone());
        client
    }

    /// Queues `push` for the connection of client `id`; false when there is none.
    pub fn push(&self, id: u64, push: Push) -> bool {
        let client = self.0.lock().expect("not poisoned").get(&id).cloned();
        match client {
            Some(c) => {
                c.push(push);
                true
            }
            None => false,
        }
    }

    /// The address and name of client `id`, while it is connected.
    pub fn describe(&self, id: u64) -> Option<(String, Bytes)> {
        let clients = self.0.lock().expect("not poisoned");
        let client = clients.get(&id)?;
        let name = client.last.lock().expect("not poisoned").1.name.clone();
        Some((client.addr.to_string(), name.unwrap_or_default()))
    }

    /// Whether client `id` is connected.
    pub fn exists(&self, id: u64) -> bool {
        self.0.lock().expect("not poisoned").contains_key(&id)
    }

    /// A connection ended.
    pub fn remove(&self, id: u64) {
        self.0.lock().expect("not poisoned").remove(&id);
    }

    /// Every client, by id (taken out of the lock).
    fn all(&self) -> Vec<Arc<Client>> {
        let clients = self.0.lock().expect("not poisoned");
        clients.values().cloned().collect()
    }

    /// The clients `filter` names, by id.
    pub fn list(&self, filter: &Filter) -> Vec<Arc<Client>> {
        self.all()
            .into_iter()
            .filter(|c| filter.matches(c))
            .collect()
    }

    /// Kills the clients logged in as a user in `users` that `keep` (given the user and the
    /// client's subscribed channels and patterns) does not keep; how many.
    pub fn kill_unless(
        &self,
        users: &[String],
        keep: impl Fn(&str, &[Bytes], &[Bytes]) -> bool,
    ) -> usize {
        let mut killed = 0;
        for c in self.all() {
            let shown = c.last.lock().expect("not poisoned").1.clone();
            if users.contains(&shown.user) && !keep(&shown.user, &shown.channels, &shown.patterns) {
                tracing::info!(client = c.id, user = %shown.user, "closing a client whose user was deleted or lost rights to its subscriptions");
                c.kill();
                killed += 1;
            }
        }
        killed
    }

    /// Kills the clients `filter` names; how many.
    pub fn kill(&self, filter: &Filter) -> usize {
        let named = self.list(filter);
        named.iter().for_each(|c| c.kill());
        named.len()
    }
}
