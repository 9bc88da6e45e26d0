//! Who a client is: the node's users and their passwords, the one place that decides whether
//! a client may log in (`AUTH`, `HELLO ... AUTH`) and whether it starts logged in.
//!
//! A node has the `default` user. Without `--requirepass` it has no password (`nopass`):
//! every client starts logged in as it, as with Redis, and protected mode then lets only
//! loopback clients connect (`server::connection`). With `--requirepass`, clients start
//! logged out and may run only `AUTH`, `HELLO`, `QUIT` and `RESET` until they log in.
//!
//! Passwords are kept as SHA-256 digests only and compared in constant time, as Redis keeps
//! them. Other users are made with `ACL SETUSER` and Redis's rules ([`User::apply`]): which
//! commands (by name, subcommand or category, applied in order), which keys (to read, to
//! write) and which pub/sub channels. [`Users::check`] is asked before every command runs.
//!
//! Users are cluster-wide. A node starts with its *base* users (`--aclfile` in Redis's format,
//! or the default user with `--requirepass`); every change made with `ACL SETUSER`, `ACL
//! DELUSER` or `ACL LOAD` on any node is written as one field of the hash [`USERS_KEY`] (the
//! user's name, valued with its rules as `ACL LIST` shows them, or empty once deleted) and
//! replicated with every other write through the change log. A hash field merges as a
//! string does: last writer wins by (HLC, node id), so concurrent changes to one user settle
//! on the later one everywhere, and a delete, being a write of its own, is not undone by an
//! older concurrent change (design section 3). A node's users are its base users with the
//! table's entries on top ([`Users::apply_table`]). Clients never see the key: it is refused
//! by name ([`is_reserved`]) and left out of scans, counts and notifications.

use crate::cmd::{Spec, categories, keyspec};
use crate::glob::glob_match;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// What `ACL LOAD` and `ACL SAVE` answer on a node started without `--aclfile`.
const NO_ACL_FILE: &str = "This node is not configured to use an ACL file: start it with --aclfile to load and save users";

/// Keys with this prefix are Meridian's own, replicated like data and hidden from clients.
pub const RESERVED_PREFIX: &[u8] = b"\xff\x00meridian.";
/// The hash of the cluster's users: a field per user, valued with its rules (empty: deleted).
pub const USERS_KEY: &[u8] = b"\xff\x00meridian.users";

/// Whether `key` is one of Meridian's own.
pub fn is_reserved(key: &[u8]) -> bool {
    key.starts_with(RESERVED_PREFIX)
}

/// The reply to a client naming a reserved key.
pub const RESERVED_KEY: &str =
    "ERR keys starting with \\xff\\x00meridian. are reserved for Meridian";

/// The name of the user a client is before it says otherwise.
pub const DEFAULT_USER: &str = "default";

/// Why a login was refused: Redis's text, the same whether the user is unknown, disabled or
/// the password wrong (so a client learns nothing of which users exist).
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// One user.
#[derive(Clone, Debug)]
pub struct User {
    enabled: bool,
    /// Logs in with any password.
    nopass: bool,
    /// SHA-256 digests of its passwords.
    passwords: BTreeSet<[u8; 32]>,
    /// Every command allowed before `commands` apply (`+@all`), or none (`-@all`).
    all_commands: bool,
    /// `+...` and `-...` command rules since the last `allcommands`/`nocommands`, in order.
    commands: Vec<CommandRule>,
    /// Key patterns, each with whether it allows reading and writing (`~` both, `%R~`, `%W~`).
    keys: Vec<(Bytes, bool, bool)>,
    /// Channel patterns (`&`).
    channels: Vec<Bytes>,
}

/// One `+` or `-` rule of a user's commands.
#[derive(Clone, Debug, PartialEq)]
struct CommandRule {
    allow: bool,
    what: Commands,
}

#[derive(Clone, Debug, PartialEq)]
enum Commands {
    /// A category (its bit).
    Category(u32, &'static str),
    /// A command, with all its subcommands.
    Command(&'static str),
    /// One subcommand of a command.
    Subcommand(&'static str, String),
    /// A command of Redis that Meridian does not serve (and may one day), with its
    /// subcommand if named: kept as written, so that ACL files made for Redis load, and
    /// allowing nothing here.
    Unserved(String),
}

/// Redis 7.0's commands that Meridian does not serve: rules may name them (`-debug`,
/// `+eval`), as ACL files written for Redis do.
const UNSERVED: &[&str] = &[
    "asking",
    "bgrewriteaof",
    "bgsave",
    "bitfield",
    "bitfield_ro",
    "debug",
    "dump",
    "eval",
    "eval_ro",
    "evalsha",
    "evalsha_ro",
    "failover",
    "fcall",
    "fcall_ro",
    "function",
    "geoadd",
    "geodist",
    "geohash",
    "geopos",
    "georadius",
    "georadius_ro",
    "georadiusbymember",
    "georadiusbymember_ro",
    "geosearch",
    "geosearchstore",
    "lastsave",
    "lolwut",
    "migrate",
    "module",
    "pfadd",
    "pfcount",
    "pfdebug",
    "pfmerge",
    "pfselftest",
    "psync",
    "readonly",
    "readwrite",
    "replconf",
    "replicaof",
    "restore",
    "restore-asking",
    "save",
    "script",
    "shutdown",
    "slaveof",
    "sync",
    "xack",
    "xadd",
    "xautoclaim",
    "xclaim",
    "xdel",
    "xgroup",
    "xinfo",
    "xlen",
    "xpending",
    "xrange",
    "xread",
    "xreadgroup",
    "xrevrange",
    "xsetid",
    "xtrim",
];

/// Why a command may not run: `NOPERM` and what was missing (the command, or the key or
/// channel refused).
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    Command(String),
    Key(Bytes),
    Channel(Bytes),
}

impl Denied {
    /// The error a client reads, as Redis 7.0 words it.
    pub fn reply_text(&self) -> String {
        match self {
            Denied::Command(name) => {
                format!("NOPERM this user has no permissions to run the '{name}' command")
            }
            Denied::Key(_) => {
                "NOPERM this user has no permissions to access one of the keys used as arguments"
                    .into()
            }
            Denied::Channel(_) => "NOPERM this user has no permissions to access one of the channels used as arguments".into(),
        }
    }
}

impl User {
    /// A user as `ACL SETUSER name` makes it: off, no password, no rights.
    fn new() -> User {
        User {
            enabled: false,
            nopass: false,
            passwords: BTreeSet::new(),
            all_commands: false,
            commands: Vec::new(),
            keys: Vec::new(),
            channels: Vec::new(),
        }
    }

    /// The default user of a node without a password: on, any password, every right.
    fn open() -> User {
        User {
            enabled: true,
            nopass: true,
            all_commands: true,
            keys: vec![(Bytes::from_static(b"*"), true, true)],
            channels: vec![Bytes::from_static(b"*")],
            ..User::new()
        }
    }

    fn accepts(&self, password: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        let given = sha256(password);
        // Every digest is compared, each in constant time: the time taken says nothing of
        // which one matched, or how much of one.
        let matched = (self.passwords.iter()).fold(false, |found, kept| found | same(kept, &given));
        self.nopass || matched
    }

    /// Applies one `ACL SETUSER` rule, or says why it is not one (Redis's reason text).
    pub fn apply(&mut self, rule: &[u8]) -> Result<(), String> {
        let text = String::from_utf8_lossy(rule);
        let lower = text.to_ascii_lowercase();
        match lower.as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            "resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            "allkeys" => self.keys = vec![(Bytes::from_static(b"*"), true, true)],
            "resetkeys" => self.keys.clear(),
            "allchannels" => self.channels = vec![Bytes::from_static(b"*")],
            "resetchannels" => self.channels.clear(),
            "allcommands" => {
                self.all_commands = true;
                self.commands.clear();
            }
            "nocommands" => {
                self.all_commands = false;
                self.commands.clear();
            }
            "reset" => *self = User::new(),
            _ => return self.apply_valued(rule),
        }
        Ok(())
    }

    fn apply_valued(&mut self, rule: &[u8]) -> Result<(), String> {
        let (first, rest) = rule.split_first().ok_or("Syntax error")?;
        // What is kept as written (patterns, command names) must read back from the rules as
        // `ACL LIST`, ACL files and the cluster's user table hold them: words of text.
        if matches!(first, b'~' | b'%' | b'&' | b'+' | b'-')
            && std::str::from_utf8(rest).map_or(true, |t| t.chars().any(char::is_whitespace))
        {
            return Err("Patterns and command names must be text without spaces".into());
        }
        match first {
            b'>' => {
                self.passwords.insert(sha256(rest));
                self.nopass = false;
            }
            b'<' => {
                if !self.passwords.remove(&sha256(rest)) {
                    return Err(
                        "The password you are trying to remove from the user does not exist".into(),
                    );
                }
            }
            b'#' | b'!' => {
                let digest = unhex(rest).ok_or(
                    "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters",
                )?;
                if *first == b'#' {
                    self.passwords.insert(digest);
                    self.nopass = false;
                } else if !self.passwords.remove(&digest) {
                    return Err(
                        "The password you are trying to remove from the user does not exist".into(),
                    );
                }
            }
            b'~' => self.add_keys(rest, true, true)?,
            b'%' => {
                let at = rest.iter().position(|&b| b == b'~').ok_or("Syntax error")?;
                let (perms, pattern) = (&rest[..at], &rest[at + 1..]);
                let (mut read, mut write) = (false, false);
                for p in perms {
                    match p.to_ascii_uppercase() {
                        b'R' => read = true,
                        b'W' => write = true,
                        _ => return Err("Syntax error".into()),
                    }
                }
                if !read && !write {
                    return Err("Syntax error".into());
                }
                self.add_keys(pattern, read, write)?;
            }
            b'&' => {
                if self.channels.iter().any(|c| c.as_ref() == b"*") {
                    return Err("Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels".into());
                }
                self.channels.push(Bytes::copy_from_slice(rest));
            }
            b'+' | b'-' => {
                let what = commands_of(rest)?;
                let allow = *first == b'+';
                if let Commands::Subcommand(name, _) = &what
                    && !allow
                    && !categories::has_subcommands(name)
                {
                    return Err(
                        "Adding a first-arg rule is only supported to allow commands".into(),
                    );
                }
                if what == Commands::Category(u32::MAX, "all") {
                    self.all_commands = allow;
                    self.commands.clear();
                } else {
                    self.commands.push(CommandRule { allow, what });
                }
            }
            _ => return Err("Syntax error".into()),
        }
        Ok(())
    }

    fn add_keys(&mut self, pattern: &[u8], read: bool, write: bool) -> Result<(), String> {
        if self
            .keys
            .iter()
            .any(|(k, r, w)| k.as_ref() == b"*" && *r && *w)
        {
            return Err("Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns".into());
        }
        self.keys
            .push((Bytes::copy_from_slice(pattern), read, write));
        Ok(())
    }

    /// Whether the user may run command `name` (subcommand `sub`, lower case, for commands
    /// that have them): the rules in order, the last that speaks of it decides.
    /// Whether the rules allow command `name` with subcommand `sub` ("" for a command without
    /// any) and first argument `first` (for first-arg rules of commands without subcommands).
    fn may_run(&self, name: &str, sub: &str, first: &str) -> bool {
        let cats = categories::of(name, sub);
        let mut allowed = self.all_commands;
        for rule in &self.commands {
            let hit = match &rule.what {
                Commands::Category(bit, _) => cats & bit != 0,
                Commands::Command(n) => *n == name,
                Commands::Subcommand(n, s) => {
                    *n == name && (s == sub || (sub.is_empty() && s == first))
                }
                Commands::Unserved(_) => false,
            };
            if hit {
                allowed = rule.allow;
            }
        }
        allowed
    }

    /// Whether `key` matches a pattern that allows reading (`read`) and writing (`write`) it;
    /// neither: any pattern.
    fn may_touch(&self, key: &[u8], read: bool, write: bool) -> bool {
        let (mut can_read, mut can_write, mut any) = (false, false, false);
        for (pattern, r, w) in &self.keys {
            if glob_match(pattern, key, false) {
                can_read |= r;
                can_write |= w;
                any = true;
            }
        }
        any && (!read || can_read) && (!write || can_write)
    }

    fn may_use_channel(&self, channel: &[u8], is_pattern: bool) -> bool {
        self.channels.iter().any(|allowed| match is_pattern {
            // A pattern subscription must be one the user was given, word for word.
            true => allowed.as_ref() == b"*" || allowed.as_ref() == channel,
            false => glob_match(allowed, channel, false),
        })
    }

    /// Every command, key and channel (the default user's rights): nothing to look at.
    fn unrestricted(&self) -> bool {
        let everything = |p: &Bytes| p.as_ref() == b"*";
        self.all_commands
            && self.commands.is_empty()
            && self.keys.iter().any(|(k, r, w)| everything(k) && *r && *w)
            && self.channels.iter().any(everything)
    }

    /// Whether the user may run this call; `Err` says what it lacks.
    fn check(&self, spec: &Spec, args: &[Bytes]) -> Result<(), Denied> {
        // Logging in is every user's right (Redis's `no-auth` commands skip the check).
        if self.unrestricted() || no_auth(spec.name.as_bytes()) {
            return Ok(());
        }
        let first = args
            .get(1)
            .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase());
        let sub = first
            .clone()
            .filter(|_| categories::has_subcommands(spec.name));
        let first = first.as_deref().unwrap_or("");
        if !self.may_run(spec.name, sub.as_deref().unwrap_or(""), first) {
            return Err(Denied::Command(match sub {
                Some(sub) => format!("{}|{sub}", spec.name),
                None => spec.name.to_string(),
            }));
        }
        if let Ok(keys) = keyspec::flags_of_call(spec, args) {
            for (at, flags) in keys {
                let read = flags.contains("access");
                let write = ["insert", "update", "delete"]
                    .iter()
                    .any(|f| flags.contains(f));
                if !self.may_touch(&args[at], read, write) {
                    return Err(Denied::Key(args[at].clone()));
                }
            }
        }
        let channels: &[Bytes] = match spec.name {
            "publish" | "spublish" => &args[1..2],
            "subscribe" | "ssubscribe" | "psubscribe" => &args[1..],
            _ => &[],
        };
        let patterns = spec.name == "psubscribe";
        if let Some(c) = channels.iter().find(|c| !self.may_use_channel(c, patterns)) {
            return Err(Denied::Channel(c.clone()));
        }
        Ok(())
    }

    /// The command rules as `ACL LIST` and `ACL GETUSER` write them.
    fn command_rules(&self) -> String {
        let mut out = vec![if self.all_commands { "+@all" } else { "-@all" }.to_string()];
        for rule in &self.commands {
            let sign = if rule.allow { '+' } else { '-' };
            out.push(match &rule.what {
                Commands::Category(_, name) => format!("{sign}@{name}"),
                Commands::Command(name) => format!("{sign}{name}"),
                Commands::Subcommand(name, sub) => format!("{sign}{name}|{sub}"),
                Commands::Unserved(word) => format!("{sign}{word}"),
            });
        }
        out.join(" ")
    }

    fn key_rules(&self) -> String {
        let rules: Vec<String> = (self.keys.iter())
            .map(|(p, r, w)| {
                let p = String::from_utf8_lossy(p);
                match (r, w) {
                    (true, true) => format!("~{p}"),
                    (true, false) => format!("%R~{p}"),
                    _ => format!("%W~{p}"),
                }
            })
            .collect();
        rules.join(" ")
    }

    fn channel_rules(&self) -> String {
        let rules: Vec<String> = (self.channels.iter())
            .map(|c| format!("&{}", String::from_utf8_lossy(c)))
            .collect();
        rules.join(" ")
    }

    /// `ACL LIST`'s rules for it.
    fn rules(&self) -> String {
        let mut rules = vec![if self.enabled { "on" } else { "off" }.to_string()];
        if self.nopass {
            rules.push("nopass".into());
        }
        rules.extend(self.passwords.iter().map(|p| format!("#{}", hex(p))));
        let keys = self.key_rules();
        if !keys.is_empty() {
            rules.push(keys);
        }
        let all_channels = self.channels.iter().any(|c| c.as_ref() == b"*");
        rules.push(match self.channels.is_empty() {
            true => "resetchannels".into(),
            false if all_channels => self.channel_rules(),
            // As Redis 7.0 writes it: a subset of channels starts from none.
            false => format!("resetchannels {}", self.channel_rules()),
        });
        rules.push(self.command_rules());
        rules.join(" ")
    }

    /// `ACL GETUSER`'s description.
    fn describe(&self) -> Vec<(&'static str, resp::Reply)> {
        use resp::Reply;
        let mut flags = vec![Reply::bulk(if self.enabled { "on" } else { "off" })];
        if self.nopass {
            flags.push(Reply::bulk("nopass"));
        }
        vec![
            ("flags", Reply::Array(flags)),
            (
                "passwords",
                Reply::Array(self.passwords.iter().map(|p| Reply::bulk(hex(p))).collect()),
            ),
            ("commands", Reply::bulk(self.command_rules())),
            ("keys", Reply::bulk(self.key_rules())),
            ("channels", Reply::bulk(self.channel_rules())),
            ("selectors", Reply::Array(Vec::new())),
        ]
    }
}

/// What a `+`/`-` rule names: `@category`, `command` or `command|subcommand`.
const UNKNOWN_COMMAND: &str = "Unknown command or category name in ACL";

fn commands_of(word: &[u8]) -> Result<Commands, &'static str> {
    let word = std::str::from_utf8(word)
        .map_err(|_| UNKNOWN_COMMAND)?
        .to_ascii_lowercase();
    if let Some(cat) = word.strip_prefix('@') {
        if cat == "all" {
            return Ok(Commands::Category(u32::MAX, "all"));
        }
        let at = (categories::NAMES.iter().position(|n| *n == cat)).ok_or(UNKNOWN_COMMAND)?;
        return Ok(Commands::Category(1 << at, categories::NAMES[at]));
    }
    let (name, sub) = match word.split_once('|') {
        Some((name, sub)) => (name, Some(sub)),
        None => (word.as_str(), None),
    };
    let Some(spec) = crate::cmd::lookup(name.as_bytes()) else {
        return match UNSERVED.contains(&name) && sub.is_none_or(|s| !s.is_empty()) {
            true => Ok(Commands::Unserved(word.clone())),
            false => Err(UNKNOWN_COMMAND),
        };
    };
    let Some(sub) = sub else {
        return Ok(Commands::Command(spec.name));
    };
    if categories::has_subcommands(spec.name) {
        if let Some((sub, _)) = sub.split_once('|')
            && categories::of(spec.name, sub) != 0
        {
            return Err("Allowing first-arg of a subcommand is not supported");
        }
        return match categories::of(spec.name, sub) != 0 {
            true => Ok(Commands::Subcommand(spec.name, sub.to_string())),
            false => Err(UNKNOWN_COMMAND),
        };
    }
    // A command without subcommands, allowed with one first argument (`+select|0`).
    match !sub.is_empty() && !sub.contains('|') {
        true => Ok(Commands::Subcommand(spec.name, sub.to_string())),
        false => Err(UNKNOWN_COMMAND),
    }
}

/// The node's users, the ACL file they are loaded from and saved to, if any, and the log of
/// refusals (`ACL LOG`).
pub struct Users {
    /// The users in force: `base` with `table` on top.
    users: RwLock<BTreeMap<String, User>>,
    /// The users this node started with (`--aclfile`, `--requirepass`).
    base: RwLock<BTreeMap<String, User>>,
    /// The cluster's table as last read ([`USERS_KEY`]): a user's rules, or empty if deleted.
    table: RwLock<BTreeMap<String, String>>,
    file: Option<PathBuf>,
    log: Mutex<VecDeque<Refusal>>,
    /// Refusals since start, by reason (`INFO stats` `acl_access_denied_*`).
    denied: [AtomicU64; 4],
    /// Refusals `ACL LOG` keeps (`acllog-max-len`).
    pub log_max: std::sync::atomic::AtomicUsize,
}

/// The reasons of refusals, in the order of `Users::denied`.
pub const DENIED_REASONS: [&str; 4] = ["auth", "cmd", "key", "channel"];

/// Refusals kept by `ACL LOG` by default (Redis's `acllog-max-len`), and how long a repeat of
/// the same refusal counts into the entry before it instead of making a new one.
const LOG_MAX: usize = 128;
const LOG_GROUP: Duration = Duration::from_secs(60);

/// One `ACL LOG` entry: a refused command, key, channel, or login.
struct Refusal {
    /// `command`, `key`, `channel` or `auth`.
    reason: &'static str,
    /// `toplevel` or `multi`.
    context: &'static str,
    /// The command, key or channel refused (`AUTH` for a login).
    object: String,
    username: String,
    client_info: String,
    count: u64,
    first: Instant,
    last: Instant,
}

impl Users {
    /// Notes a refusal in `ACL LOG`: a repeat (same reason, context, object and user) within a
    /// minute counts into the entry before it.
    pub fn log_refusal(&self, denied: &Denied, in_multi: bool, user: &str, client_info: String) {
        let (reason, object) = match denied {
            Denied::Command(name) => ("command", name.clone()),
            Denied::Key(key) => ("key", String::from_utf8_lossy(key).into_owned()),
            Denied::Channel(c) => ("channel", String::from_utf8_lossy(c).into_owned()),
        };
        let context = if in_multi { "multi" } else { "toplevel" };
        self.log(reason, context, object, user, client_info);
    }

    /// Notes a refused login in `ACL LOG`.
    pub fn log_login(&self, user: &[u8], client_info: String) {
        let user = String::from_utf8_lossy(user);
        self.log("auth", "toplevel", "AUTH".into(), &user, client_info);
    }

    fn log(
        &self,
        reason: &'static str,
        context: &'static str,
        object: String,
        user: &str,
        client_info: String,
    ) {
        let counted = match reason {
            "auth" => 0,
            "command" => 1,
            "key" => 2,
            _ => 3,
        };
        self.denied[counted].fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut log = self.log.lock().expect("not poisoned");
        if let Some(same) = log.iter_mut().find(|e| {
            e.reason == reason
                && e.context == context
                && e.object == object
                && e.username == user
                && now.duration_since(e.last) < LOG_GROUP
        }) {
            same.count += 1;
            same.last = now;
            same.client_info = client_info;
            return;
        }
        log.push_front(Refusal {
            reason,
            context,
            object,
            username: user.to_string(),
            client_info,
            count: 1,
            first: now,
            last: now,
        });
        log.truncate(self.log_max.load(Ordering::Relaxed));
    }

    /// Drops the oldest entries beyond `acllog-max-len`.
    pub fn trim_log(&self) {
        let max = self.log_max.load(Ordering::Relaxed);
        self.log.lock().expect("not poisoned").truncate(max);
    }

    /// `ACL LOG [count]`: the newest entries first, as Redis 7.0 shows them.
    pub fn log_entries(&self, count: usize) -> Vec<Vec<(&'static str, resp::Reply)>> {
        use resp::Reply;
        let now = Instant::now();
        let log = self.log.lock().expect("not poisoned");
        (log.iter().take(count))
            .map(|e| {
                vec![
                    ("count", Reply::Int(e.count as i64)),
                    ("reason", Reply::bulk(e.reason)),
                    ("context", Reply::bulk(e.context)),
                    ("object", Reply::bulk(e.object.clone())),
                    ("username", Reply::bulk(e.username.clone())),
                    (
                        "age-seconds",
                        Reply::Double(now.duration_since(e.first).as_secs_f64()),
                    ),
                    ("client-info", Reply::bulk(e.client_info.clone())),
                ]
            })
            .collect()
    }

    /// Refusals since start, by [`DENIED_REASONS`].
    pub fn denied(&self) -> [u64; 4] {
        self.denied.each_ref().map(|d| d.load(Ordering::Relaxed))
    }

    /// `ACL LOG RESET`.
    pub fn reset_log(&self) {
        self.log.lock().expect("not poisoned").clear();
    }
}

impl Users {
    /// The users of a node started with `requirepass` (the default user's password), if any.
    pub fn new(requirepass: Option<&str>) -> Users {
        let mut default = User::open();
        if let Some(password) = requirepass {
            default.nopass = false;
            default.passwords.insert(sha256(password.as_bytes()));
        }
        let users = BTreeMap::from([(DEFAULT_USER.to_string(), default)]);
        Users {
            users: RwLock::new(users.clone()),
            base: RwLock::new(users),
            table: RwLock::default(),
            file: None,
            log: Mutex::default(),
            denied: Default::default(),
            log_max: LOG_MAX.into(),
        }
    }

    /// The users of `--aclfile` (which must exist): `Err` names the line that is wrong.
    pub fn from_file(path: &Path) -> Result<Users, String> {
        let users = Users {
            users: RwLock::default(),
            base: RwLock::default(),
            table: RwLock::default(),
            file: Some(path.to_path_buf()),
            log: Mutex::default(),
            denied: Default::default(),
            log_max: LOG_MAX.into(),
        };
        let loaded = users.read_file()?;
        *users.base.write().expect("not poisoned") = loaded.clone();
        *users.users.write().expect("not poisoned") = loaded;
        Ok(users)
    }

    /// Users as an ACL file (Redis's format: a line `user <name> <rule>...` per user) sets
    /// them: all or none; `Err` names the line and the reason. A file without `default` leaves
    /// the default user as a new node has it.
    pub fn parse_file(text: &str, origin: &str) -> Result<BTreeMap<String, User>, String> {
        let mut users = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let at = || format!("{origin}:{}", n + 1);
            match words.as_slice() {
                [] => continue,
                ["user", name, rules @ ..] => {
                    let mut user = User::new();
                    for rule in rules {
                        user.apply(rule.as_bytes()).map_err(|why| {
                            format!(
                                "{}: Error in user declaration '{name}' at '{rule}': {why}",
                                at()
                            )
                        })?;
                    }
                    if users.insert(name.to_string(), user).is_some() {
                        return Err(format!("{}: duplicate user '{name}'", at()));
                    }
                }
                _ => return Err(format!("{}: should start with user keyword", at())),
            }
        }
        users
            .entry(DEFAULT_USER.to_string())
            .or_insert_with(User::open);
        Ok(users)
    }

    fn read_file(&self) -> Result<BTreeMap<String, User>, String> {
        let path = self.file.as_ref().ok_or(NO_ACL_FILE)?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading the ACL file {}: {e}", path.display()))?;
        Users::parse_file(&text, &path.display().to_string())
    }

    /// `ACL LOAD`: the table entries that make the cluster's users those of the ACL file (each
    /// of its users with its rules, every other user deleted), or, when a line is wrong, the
    /// reason (and nothing changes). The file also becomes this node's base.
    pub fn load(&self) -> Result<Vec<(String, String)>, String> {
        let loaded = self.read_file()?;
        let users = self.users.read().expect("not poisoned");
        let mut entries: Vec<(String, String)> = (users.keys())
            .filter(|name| !loaded.contains_key(*name))
            .map(|name| (name.clone(), String::new()))
            .collect();
        entries.extend(loaded.iter().map(|(name, u)| (name.clone(), u.rules())));
        drop(users);
        *self.base.write().expect("not poisoned") = loaded;
        Ok(entries)
    }

    /// The cluster's table as it now reads: the users in force become the base users with it
    /// on top. Answers the users that were deleted or disabled, or whose rights changed (their
    /// clients must be looked at again).
    pub fn apply_table(&self, table: BTreeMap<String, String>) -> Vec<String> {
        let mut users = self.users.write().expect("not poisoned");
        let mut next = self.base.read().expect("not poisoned").clone();
        for (name, line) in &table {
            if line.is_empty() {
                // The default user cannot be deleted (no node writes that): it stays as the
                // base has it.
                if name != DEFAULT_USER {
                    next.remove(name);
                }
                continue;
            }
            let mut user = User::new();
            let parsed = line
                .split_whitespace()
                .try_for_each(|r| user.apply(r.as_bytes()));
            match parsed {
                Ok(()) => {
                    next.insert(name.clone(), user);
                }
                // Written by a node that understood it: a newer rule this node does not know.
                Err(why) => {
                    tracing::error!(user = %name, %why, "a replicated user's rules are not understood here; the user is left out")
                }
            }
        }
        next.entry(DEFAULT_USER.to_string())
            .or_insert_with(User::open);
        let changed = (users.iter())
            .filter(|(name, old)| next.get(*name).is_none_or(|new| new.rules() != old.rules()))
            .map(|(name, _)| name.clone())
            .collect();
        *users = next;
        *self.table.write().expect("not poisoned") = table;
        changed
    }

    /// The table entry `ACL SETUSER name rule...` writes: the user's rules after these (all
    /// of them apply, or none: the first bad one is named).
    pub fn set_entry(&self, name: &str, rules: &[Bytes]) -> Result<(String, String), String> {
        if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '\0') {
            return Err("ERR Usernames can't contain spaces or null characters".into());
        }
        let users = self.users.read().expect("not poisoned");
        let mut user = users.get(name).cloned().unwrap_or_else(User::new);
        for rule in rules {
            user.apply(rule).map_err(|why| {
                format!(
                    "ERR Error in ACL SETUSER modifier '{}': {why}",
                    String::from_utf8_lossy(rule)
                )
            })?;
        }
        Ok((name.to_string(), user.rules()))
    }

    /// The table entries `ACL DELUSER name...` writes: one per existing user.
    pub fn delete_entries(&self, names: &[Bytes]) -> Result<Vec<(String, String)>, &'static str> {
        if names.iter().any(|n| n.as_ref() == DEFAULT_USER.as_bytes()) {
            return Err("ERR The 'default' user cannot be removed");
        }
        let users = self.users.read().expect("not poisoned");
        let names: BTreeSet<String> = (names.iter())
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .filter(|n| users.contains_key(n))
            .collect();
        Ok(names.into_iter().map(|n| (n, String::new())).collect())
    }

    /// Whether `user` (still there) may hold these subscriptions to channels and patterns. A
    /// user turned off keeps its connections, as in Redis; one deleted keeps none.
    pub fn allows_subscriptions(&self, user: &str, channels: &[Bytes], patterns: &[Bytes]) -> bool {
        let users = self.users.read().expect("not poisoned");
        users.get(user).is_some_and(|u| {
            channels.iter().all(|c| u.may_use_channel(c, false))
                && patterns.iter().all(|p| u.may_use_channel(p, true))
        })
    }

    /// Whether `user` exists.
    pub fn exists(&self, user: &str) -> bool {
        self.users.read().expect("not poisoned").contains_key(user)
    }

    /// `ACL SAVE`: writes the users to the ACL file (a new file renamed over the old one, so a
    /// crash leaves one or the other; readable by the node's user only: it holds digests).
    pub fn save(&self) -> Result<(), String> {
        use std::io::Write;
        let path = self.file.as_ref().ok_or(NO_ACL_FILE)?;
        let fail = |e: std::io::Error| format!("writing the ACL file {}: {e}", path.display());
        let mut text = self.list().join("\n");
        text.push('\n');
        let fresh = path.with_extension("tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&fresh)
            .map_err(fail)?;
        file.write_all(text.as_bytes()).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        std::fs::rename(&fresh, path).map_err(fail)
    }

    /// Whether a new client starts logged in (as the default user): it is on, with no
    /// password. Protected mode looks at the same.
    pub fn open(&self) -> bool {
        let users = self.users.read().expect("not poisoned");
        users
            .get(DEFAULT_USER)
            .is_some_and(|u| u.enabled && u.nopass)
    }

    /// Checks a login; `Err` holds the reply.
    pub fn login(&self, user: &[u8], password: &[u8]) -> Result<(), &'static str> {
        let users = self.users.read().expect("not poisoned");
        let name = std::str::from_utf8(user).map_err(|_| WRONGPASS)?;
        match users.get(name) {
            Some(u) if u.accepts(password) => Ok(()),
            _ => Err(WRONGPASS),
        }
    }

    /// Whether `user` may run this call (a user deleted since it logged in may run nothing).
    pub fn check(&self, user: &str, spec: &Spec, args: &[Bytes]) -> Result<(), Denied> {
        let users = self.users.read().expect("not poisoned");
        match users.get(user) {
            Some(u) => u.check(spec, args),
            None => Err(Denied::Command(spec.name.to_string())),
        }
    }

    /// `ACL GETUSER name`.
    pub fn describe(&self, name: &str) -> Option<Vec<(&'static str, resp::Reply)>> {
        self.users
            .read()
            .expect("not poisoned")
            .get(name)
            .map(User::describe)
    }

    /// The names of the users, in order (`ACL USERS`).
    pub fn names(&self) -> Vec<String> {
        self.users
            .read()
            .expect("not poisoned")
            .keys()
            .cloned()
            .collect()
    }

    /// `ACL LIST`: a line of rules per user.
    pub fn list(&self) -> Vec<String> {
        let users = self.users.read().expect("not poisoned");
        (users.iter())
            .map(|(name, u)| format!("user {name} {}", u.rules()))
            .collect()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Equal, in a time that does not depend on where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Redis's `no-auth` commands: a client runs them before it logs in, and every user may run
/// them (logging in is everyone's right).
pub fn no_auth(name: &[u8]) -> bool {
    [b"auth" as &[u8], b"hello", b"quit", b"reset"]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
}

/// `bytes` in lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A SHA-256 digest written as 64 lower-case hex digits (`#<hash>`).
fn unhex(text: &[u8]) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in text.chunks(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Users {
        /// `ACL SETUSER` as the cluster table carries it, applied here at once.
        fn set(&self, name: &str, rules: &[Bytes]) -> Result<(), String> {
            let (name, line) = self.set_entry(name, rules)?;
            let mut table = self.table.read().unwrap().clone();
            table.insert(name, line);
            self.apply_table(table);
            Ok(())
        }
    }

    fn words(text: &str) -> Vec<Bytes> {
        text.split_whitespace()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn the_cluster_table_goes_on_top_of_the_base_users_and_round_trips_every_rule() {
        let users = Users::new(Some("base-pw"));
        let rules = "on >pw nopass ~cache:* %R~ro:* &news +@read -@dangerous +client|id -get";
        let entry = users.set_entry("alice", &words(rules)).unwrap();
        let mut table = BTreeMap::from([entry.clone()]);
        assert_eq!(users.apply_table(table.clone()), Vec::<String>::new());
        // Read back from its rules, the user is the same user.
        let again = users.set_entry("alice", &[]).unwrap();
        assert_eq!(again, entry);
        assert_eq!(users.login(b"alice", b"anything"), Ok(()));
        assert_eq!(users.login(b"default", b"base-pw"), Ok(()));

        // The table's default user replaces the base one; a deleted user goes; the default
        // user, deleted or not, is always there.
        table.insert(
            "default".into(),
            users.set_entry("default", &words(">new")).unwrap().1,
        );
        table.insert("alice".into(), String::new());
        let changed = users.apply_table(table);
        assert_eq!(changed, ["alice", "default"]);
        assert_eq!(users.login(b"alice", b"anything"), Err(WRONGPASS));
        assert_eq!(users.login(b"default", b"new"), Ok(()));
        assert!(!users.exists("alice"));
        users.apply_table(BTreeMap::from([("default".into(), String::new())]));
        assert!(users.exists("default"), "the base default user comes back");
        assert_eq!(users.login(b"default", b"base-pw"), Ok(()));
        assert_eq!(users.login(b"default", b"other"), Err(WRONGPASS));
        assert!(users.delete_entries(&words("default")).is_err());
    }

    #[test]
    fn first_arg_rules_and_rules_naming_redis_commands_meridian_does_not_serve() {
        let u = user("on -@all +select|0 -debug +eval ~*");
        assert!(u.may_run("select", "", "0") && !u.may_run("select", "", "1"));
        assert!(!u.may_run("get", "", ""));
        // Kept as written (an ACL file made for Redis loads), allowing nothing here.
        assert_eq!(u.command_rules(), "-@all +select|0 -debug +eval");
        let mut u = User::new();
        for (rule, why) in [
            ("-select|0", "first-arg rule is only supported to allow"),
            (
                "+config|get|appendonly",
                "first-arg of a subcommand is not supported",
            ),
            ("+get|a|b", "Unknown command"),
            ("+config|nosuch", "Unknown command"),
            ("+nosuch", "Unknown command"),
        ] {
            let err = u.apply(rule.as_bytes()).unwrap_err();
            assert!(err.contains(why), "{rule}: {err}");
        }
        let users = Users::new(None);
        assert!(
            users
                .set_entry("a a", &[])
                .unwrap_err()
                .contains("can't contain spaces")
        );
        // A subset of channels is written from none, as Redis 7.0 writes it.
        users
            .set("hp", &words("on nopass resetchannels &foo +@all"))
            .unwrap();
        assert!(
            users
                .list()
                .contains(&"user hp on nopass resetchannels &foo +@all".to_string())
        );
    }

    #[test]
    fn without_a_password_everyone_is_the_default_user() {
        let users = Users::new(None);
        assert!(users.open());
        assert_eq!(users.login(b"default", b"anything"), Ok(()));
        assert_eq!(users.login(b"nobody", b"anything"), Err(WRONGPASS));
        assert_eq!(users.list(), ["user default on nopass ~* &* +@all"]);
    }

    #[test]
    fn requirepass_is_the_default_users_password_kept_as_a_digest() {
        let users = Users::new(Some("s3cret"));
        assert!(!users.open());
        assert_eq!(users.login(b"default", b"s3cret"), Ok(()));
        assert_eq!(users.login(b"default", b"s3cre"), Err(WRONGPASS));
        assert_eq!(users.login(b"default", b""), Err(WRONGPASS));
        assert_eq!(users.login(b"\xff", b"s3cret"), Err(WRONGPASS));
        let [line] = users.list().try_into().expect("one user");
        // The digest of "s3cret", never the password itself.
        assert!(!line.contains("s3cret"));
        assert!(line.starts_with("user default on #") && line.ends_with(" ~* &* +@all"));
        assert_eq!(line.split(' ').nth(3).map(str::len), Some(65));
    }

    fn spec(name: &str) -> &'static Spec {
        crate::cmd::lookup(name.as_bytes()).expect("known")
    }

    fn call(words: &str) -> Vec<Bytes> {
        words
            .split(' ')
            .map(|w| Bytes::from(w.to_string()))
            .collect()
    }

    fn user(rules: &str) -> User {
        let mut u = User::new();
        for rule in rules.split(' ') {
            u.apply(rule.as_bytes()).expect(rule);
        }
        u
    }

    #[test]
    fn command_rules_apply_in_order() {
        let u = user("on +@all -@dangerous +flushall ~*");
        assert!(u.may_run("get", "", "") && u.may_run("flushall", "", ""));
        assert!(!u.may_run("keys", "", ""));
        let u = user("+client -client|kill");
        assert!(u.may_run("client", "list", "") && !u.may_run("client", "kill", ""));
        let u = user("allcommands -get nocommands +set");
        assert!(u.may_run("set", "", "") && !u.may_run("get", "", ""));
        assert_eq!(u.command_rules(), "-@all +set");
    }

    #[test]
    fn keys_are_checked_for_what_the_command_does_to_them() {
        let u = user("+@all %R~r:* %W~w:* ~rw:*");
        let ok = |words: &str| u.check(spec(words.split(' ').next().unwrap()), &call(words));
        assert_eq!(ok("get r:1"), Ok(()));
        assert_eq!(ok("set r:1 v"), Err(Denied::Key("r:1".into())));
        assert_eq!(ok("set w:1 v"), Ok(()));
        assert_eq!(ok("get w:1"), Err(Denied::Key("w:1".into())));
        assert_eq!(ok("lmove rw:1 w:1 left right"), Ok(()));
        assert_eq!(
            ok("lmove w:1 rw:1 left right"),
            Err(Denied::Key("w:1".into()))
        );
        // Neither reading nor writing (EXISTS): any pattern will do.
        assert_eq!(ok("exists w:1 r:1"), Ok(()));
        assert_eq!(ok("exists other"), Err(Denied::Key("other".into())));
    }

    #[test]
    fn bad_rules_say_why() {
        let mut u = User::new();
        assert_eq!(u.apply(b"bogus"), Err("Syntax error".into()));
        assert_eq!(
            u.apply(b"+nocommand"),
            Err("Unknown command or category name in ACL".into())
        );
        assert_eq!(
            u.apply(b"+@nocategory"),
            Err("Unknown command or category name in ACL".into())
        );
        assert_eq!(
            u.apply(b"+client|nosub"),
            Err("Unknown command or category name in ACL".into())
        );
        assert!(
            u.apply(b"#abc")
                .unwrap_err()
                .contains("exactly 64 characters")
        );
        assert!(
            u.apply(b"<never-set")
                .unwrap_err()
                .contains("does not exist")
        );
        u.apply(b"allkeys").unwrap();
        assert!(
            u.apply(b"~more:*")
                .unwrap_err()
                .contains("after the * pattern")
        );
        let digest = hex(&sha256(b"pw"));
        u.apply(format!("#{digest}").as_bytes()).unwrap();
        u.apply(b"on").unwrap();
        assert!(u.accepts(b"pw"));
        u.apply(format!("!{digest}").as_bytes()).unwrap();
        assert!(!u.accepts(b"pw"));
    }

    #[test]
    fn pattern_subscriptions_need_the_pattern_itself() {
        let u = user("+@all &news.*");
        let ok = |words: &str| u.check(spec(words.split(' ').next().unwrap()), &call(words));
        assert_eq!(ok("subscribe news.a news.b"), Ok(()));
        assert_eq!(ok("psubscribe news.*"), Ok(()));
        assert_eq!(
            ok("psubscribe news.a*"),
            Err(Denied::Channel("news.a*".into()))
        );
        assert_eq!(
            ok("publish sports x"),
            Err(Denied::Channel("sports".into()))
        );
    }

    #[test]
    fn an_acl_file_is_read_whole_and_what_acl_list_writes_reads_back() {
        let users = Users::new(Some("pw"));
        let rules: Vec<Bytes> = "on >alice-pw ~cache:* %R~ro:* &news.* +@read -get +client|id"
            .split(' ')
            .map(|r| Bytes::from(r.to_string()))
            .collect();
        users.set("alice", &rules).unwrap();
        let text = users.list().join("\n");
        let read = Users::parse_file(&text, "f").unwrap();
        let again: Vec<String> = (read.iter())
            .map(|(name, u)| format!("user {name} {}", u.rules()))
            .collect();
        assert_eq!(again, users.list());
        assert!(read["alice"].accepts(b"alice-pw") && read["default"].accepts(b"pw"));
        // Without `default`, the default user is a new node's; a bad line names itself.
        let only = Users::parse_file("user bob on nopass +@all ~*\n", "f").unwrap();
        assert!(only["default"].nopass && only["bob"].accepts(b"x"));
        assert_eq!(
            Users::parse_file("\nuser bob on +nope\n", "f").unwrap_err(),
            "f:2: Error in user declaration 'bob' at '+nope': Unknown command or category name in ACL"
        );
        assert!(
            Users::parse_file("bob on\n", "f")
                .unwrap_err()
                .starts_with("f:1:")
        );
    }

    #[test]
    fn comparison_is_equality() {
        let a = sha256(b"a");
        let mut b = a;
        assert!(same(&a, &b));
        b[31] ^= 1;
        assert!(!same(&a, &b));
    }
}
