//! `SLOWLOG` and `LATENCY`: commands that ran longer than a threshold.
//!
//! Every command is timed where it runs: a data command inside the engine's round (the time
//! `cmd::execute` took, so neither the wait for the engine thread nor the commit and fsync,
//! as Redis times only the command's own work), a read or connection command on its
//! connection. `EXEC` itself is not logged; the commands it runs are, as in Redis.
//!
//! - `SLOWLOG` keeps the last `slowlog-max-len` (128) commands slower than
//!   `slowlog-log-slower-than` µs (10,000; 0 logs every command, a negative value none), with
//!   at most 32 arguments of at most 128 bytes each, and passwords redacted.
//! - `LATENCY` keeps, when `latency-monitor-threshold` (ms, 0: off, as in Redis) is set, the
//!   latest and worst spike of the `command` event and its last 160 spikes, one per second.

use super::clients::Clients;
use bytes::Bytes;
use resp::Reply;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Arguments kept of a logged command, and bytes kept of each, as Redis keeps.
const MAX_ARGS: usize = 32;
const MAX_ARG_BYTES: usize = 128;
/// Spikes kept per event (Redis's `LATENCY_TS_LEN`).
const HISTORY: usize = 160;
/// The one event measured here: a command's own run time.
const EVENT: &str = "command";

struct Entry {
    id: u64,
    at_s: u64,
    micros: u64,
    args: Vec<Bytes>,
    addr: String,
    name: Bytes,
}

#[derive(Default)]
struct Spikes {
    /// (unix seconds, ms), oldest first, one per second.
    history: VecDeque<(u64, u64)>,
    max_ms: u64,
}

/// The slow log and the latency monitor of one node.
pub struct Slowlog {
    clients: Arc<Clients>,
    /// `slowlog-log-slower-than`, µs.
    pub slower_than_us: AtomicI64,
    /// `slowlog-max-len`.
    pub max_len: AtomicUsize,
    /// `latency-monitor-threshold`, ms.
    pub latency_threshold_ms: AtomicU64,
    next_id: AtomicU64,
    entries: Mutex<VecDeque<Entry>>,
    spikes: Mutex<Spikes>,
}

impl Slowlog {
    pub fn new(clients: Arc<Clients>) -> Slowlog {
        Slowlog {
            clients,
            slower_than_us: AtomicI64::new(10_000),
            max_len: AtomicUsize::new(128),
            latency_threshold_ms: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            entries: Mutex::new(VecDeque::new()),
            spikes: Mutex::new(Spikes::default()),
        }
    }

    /// Takes in that `client` ran `args` in `took`.
    pub fn took(&self, client: u64, args: &[Bytes], took: Duration) {
        let micros = took.as_micros() as u64;
        let slower_than = self.slower_than_us.load(Ordering::Relaxed);
        let threshold_ms = self.latency_threshold_ms.load(Ordering::Relaxed);
        let logged = slower_than >= 0 && micros >= slower_than as u64;
        let spike = threshold_ms > 0 && micros / 1000 >= threshold_ms;
        if !logged && !spike {
            return;
        }
        let at_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        if spike {
            let mut spikes = self.spikes.lock().expect("not poisoned");
            let ms = micros / 1000;
            spikes.max_ms = spikes.max_ms.max(ms);
            match spikes.history.back_mut() {
                Some((s, worst)) if *s == at_s => *worst = (*worst).max(ms),
                _ => {
                    if spikes.history.len() == HISTORY {
                        spikes.history.pop_front();
                    }
                    spikes.history.push_back((at_s, ms));
                }
            }
        }
        if !logged {
            return;
        }
        let (addr, name) = self.clients.describe(client).unwrap_or_default();
        let entry = Entry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            at_s,
            micros,
            args: kept_args(args),
            addr,
            name,
        };
        let max_len = self.max_len.load(Ordering::Relaxed);
        let mut entries = self.entries.lock().expect("not poisoned");
        entries.push_front(entry);
        entries.truncate(max_len);
    }

    /// Applies a new `slowlog-max-len` to what is kept.
    pub fn set_max_len(&self, max_len: usize) {
        self.max_len.store(max_len, Ordering::Relaxed);
        self.entries.lock().expect("not poisoned").truncate(max_len);
    }

    /// `SLOWLOG subcommand ...`.
    pub fn command(&self, args: &[Bytes]) -> Reply {
        let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
        let mut entries = self.entries.lock().expect("not poisoned");
        match (sub.as_str(), args.len()) {
            ("get", 2 | 3) => {
                let count = match args.get(2).map(|c| resp::args::parse_i64(c)) {
                    None => 10,
                    Some(Some(-1)) => usize::MAX,
                    Some(Some(n)) if n >= 0 => n as usize,
                    Some(_) => {
                        return Reply::err("ERR count should be greater than or equal to -1");
                    }
                };
                Reply::Array(entries.iter().take(count).map(Entry::reply).collect())
            }
            ("len", 2) => Reply::Int(entries.len() as i64),
            ("reset", 2) => {
                entries.clear();
                Reply::OK
            }
            ("help", 2) => help(&[
                "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET [<count>]",
                "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
                "LEN",
                "    Return the length of the slowlog.",
                "RESET",
                "    Reset the slowlog.",
            ]),
            _ => unknown_subcommand("SLOWLOG", &args[1]),
        }
    }

    /// `LATENCY subcommand ...`.
    pub fn latency(&self, args: &[Bytes]) -> Reply {
        let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
        let mut spikes = self.spikes.lock().expect("not poisoned");
        let events = |name: &[u8]| name.eq_ignore_ascii_case(EVENT.as_bytes());
        match sub.as_str() {
            "latest" if args.len() == 2 => match spikes.history.back() {
                None => Reply::Array(Vec::new()),
                Some(&(at, ms)) => Reply::Array(vec![Reply::Array(vec![
                    Reply::bulk(EVENT),
                    Reply::Int(at as i64),
                    Reply::Int(ms as i64),
                    Reply::Int(spikes.max_ms as i64),
                ])]),
            },
            "history" if args.len() == 3 => match events(&args[2]) {
                false => Reply::Array(Vec::new()),
                true => Reply::Array(
                    (spikes.history.iter())
                        .map(|&(at, ms)| {
                            Reply::Array(vec![Reply::Int(at as i64), Reply::Int(ms as i64)])
                        })
                        .collect(),
                ),
            },
            "reset" => {
                let all = args.len() == 2;
                if (all || args[2..].iter().any(|e| events(e))) && !spikes.history.is_empty() {
                    *spikes = Spikes::default();
                    Reply::Int(1)
                } else {
                    Reply::Int(0)
                }
            }
            "doctor" if args.len() == 2 => {
                let threshold = self.latency_threshold_ms.load(Ordering::Relaxed);
                let text = match (threshold, spikes.history.back()) {
                    (0, _) => "The latency monitor is off: set latency-monitor-threshold (ms) \
                               with CONFIG SET to measure command spikes."
                        .to_string(),
                    (_, None) => {
                        format!("No command took {threshold} ms or more since the last reset.")
                    }
                    (_, Some(_)) => format!(
                        "{} second(s) with a command of {threshold} ms or more in the last {HISTORY} kept; \
                         the worst took {} ms. SLOWLOG GET names the commands.",
                        spikes.history.len(),
                        spikes.max_ms
                    ),
                };
                Reply::Verbatim(text)
            }
            "help" if args.len() == 2 => help(&[
                "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "DOCTOR",
                "    Return a human readable latency analysis report.",
                "HISTORY <event>",
                "    Return time-latency samples for the <event> class.",
                "LATEST",
                "    Return the latest latency samples for all events.",
                "RESET [<event> ...]",
                "    Reset latency data of one or more <event> classes.",
                "    (default: reset all data for all event classes)",
            ]),
            _ => unknown_subcommand("LATENCY", &args[1]),
        }
    }
}

impl Entry {
    fn reply(&self) -> Reply {
        Reply::Array(vec![
            Reply::Int(self.id as i64),
            Reply::Int(self.at_s as i64),
            Reply::Int(self.micros as i64),
            Reply::Array(self.args.iter().cloned().map(Reply::Bulk).collect()),
            Reply::bulk(self.addr.clone()),
            Reply::Bulk(self.name.clone()),
        ])
    }
}

/// The arguments a log entry keeps: secrets redacted, at most 32 (the last saying how many
/// more there were), each cut at 128 bytes (saying how many more it had).
fn kept_args(args: &[Bytes]) -> Vec<Bytes> {
    let shown = args.len().min(MAX_ARGS);
    let mut kept = Vec::with_capacity(shown);
    for (i, arg) in args.iter().enumerate().take(shown) {
        if shown < args.len() && i == shown - 1 {
            let more = args.len() - shown + 1;
            kept.push(Bytes::from(format!("... ({more} more arguments)")));
        } else if super::monitor::redacted(args, i) {
            kept.push(Bytes::from_static(b"(redacted)"));
        } else if arg.len() > MAX_ARG_BYTES {
            let mut cut = arg[..MAX_ARG_BYTES].to_vec();
            let more = arg.len() - MAX_ARG_BYTES;
            cut.extend_from_slice(format!("... ({more} more bytes)").as_bytes());
            kept.push(Bytes::from(cut));
        } else {
            kept.push(arg.clone());
        }
    }
    kept
}

fn help(lines: &[&'static str]) -> Reply {
    let end = ["HELP", "    Print this help."];
    Reply::Array(lines.iter().chain(&end).map(|l| Reply::Simple(l)).collect())
}

fn unknown_subcommand(command: &str, sub: &[u8]) -> Reply {
    Reply::Error(format!(
        "ERR unknown subcommand '{}'. Try {command} HELP.",
        String::from_utf8_lossy(sub)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> Slowlog {
        Slowlog::new(Arc::new(Clients::default()))
    }

    fn words(args: &[&str]) -> Vec<Bytes> {
        args.iter().map(|a| Bytes::from(a.to_string())).collect()
    }

    #[test]
    fn keeps_the_newest_commands_over_the_threshold_up_to_the_length() {
        let log = log();
        log.took(1, &words(&["get", "fast"]), Duration::from_micros(9_999));
        for i in 0..130 {
            log.took(
                1,
                &words(&["set", &i.to_string(), "v"]),
                Duration::from_millis(10),
            );
        }
        assert_eq!(log.command(&words(&["slowlog", "len"])), Reply::Int(128));
        let Reply::Array(got) = log.command(&words(&["slowlog", "get", "1"])) else {
            panic!("not an array");
        };
        let Reply::Array(entry) = &got[0] else {
            panic!("not an entry");
        };
        assert_eq!(entry[0], Reply::Int(129));
        assert_eq!(entry[2], Reply::Int(10_000));
        assert_eq!(
            entry[3],
            Reply::Array(vec![
                Reply::bulk("set"),
                Reply::bulk("129"),
                Reply::bulk("v")
            ])
        );
        log.set_max_len(5);
        assert_eq!(log.command(&words(&["slowlog", "len"])), Reply::Int(5));
        assert_eq!(log.command(&words(&["slowlog", "reset"])), Reply::OK);
        assert_eq!(log.command(&words(&["slowlog", "len"])), Reply::Int(0));
    }

    #[test]
    fn long_commands_are_cut_and_secrets_hidden() {
        let many: Vec<String> = (0..40).map(|i| i.to_string()).collect();
        let mut args = vec!["sadd".to_string()];
        args.extend(many);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let kept = kept_args(&words(&args));
        assert_eq!(kept.len(), 32);
        assert_eq!(kept[31], Bytes::from("... (10 more arguments)"));
        let long = "x".repeat(200);
        let kept = kept_args(&words(&["set", "k", &long]));
        assert_eq!(
            kept[2],
            Bytes::from(format!("{}... (72 more bytes)", "x".repeat(128)))
        );
        let kept = kept_args(&words(&["auth", "user", "secret"]));
        assert_eq!(
            kept[1..],
            [Bytes::from("(redacted)"), Bytes::from("(redacted)")]
        );
    }

    #[test]
    fn latency_spikes_are_kept_only_with_a_threshold() {
        let log = log();
        log.took(1, &words(&["get", "k"]), Duration::from_millis(50));
        assert_eq!(
            log.latency(&words(&["latency", "latest"])),
            Reply::Array(vec![])
        );
        log.latency_threshold_ms.store(20, Ordering::Relaxed);
        log.took(1, &words(&["get", "k"]), Duration::from_millis(19));
        assert_eq!(
            log.latency(&words(&["latency", "latest"])),
            Reply::Array(vec![])
        );
        log.took(1, &words(&["get", "k"]), Duration::from_millis(30));
        let Reply::Array(latest) = log.latency(&words(&["latency", "latest"])) else {
            panic!("not an array");
        };
        let Reply::Array(event) = &latest[0] else {
            panic!("not an event");
        };
        assert_eq!(event[0], Reply::bulk("command"));
        assert_eq!(event[2..], [Reply::Int(30), Reply::Int(30)]);
        assert_eq!(log.latency(&words(&["latency", "reset"])), Reply::Int(1));
        assert_eq!(
            log.latency(&words(&["latency", "latest"])),
            Reply::Array(vec![])
        );
    }
}
