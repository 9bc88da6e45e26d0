//! Clients: each stays on one node and runs a random mix of register, counter and set
//! operations over a small key space, plus writes and reads of a register of its own (for
//! read-your-writes and monotonic reads).

use crate::client::{CallError, Client, Reply};
use crate::history::{History, Op, Outcome};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Keys of each kind.
pub const KEYS: usize = 4;
/// How long a client waits for an answer before it calls the operation unknown.
pub const TIMEOUT: Duration = Duration::from_millis(1500);

/// A small seeded generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// Seeded; never zero.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Runs client `id` against `addr` until `stop`; sends nothing while `held[node]` (a fault
/// needs the node quiet).
pub fn run_client(
    id: usize,
    node: usize,
    addr: SocketAddr,
    seed: u64,
    history: Arc<History>,
    stop: Arc<AtomicBool>,
    held: Arc<Vec<AtomicBool>>,
) {
    let mut client = Client::new(addr, TIMEOUT);
    let mut rng = Rng::new(seed ^ (id as u64 + 1) << 32);
    let mut n = 0u64;
    let mut own = 0u64;
    let mut added: Vec<(String, String)> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if held[node].load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        n += 1;
        let k = rng.below(KEYS as u64);
        let (f, key, arg): (&'static str, String, Option<String>) = match rng.below(100) {
            0..25 => ("set", format!("r{k}"), Some(format!("c{id}-{n}"))),
            25..35 => ("get", format!("r{k}"), None),
            35..55 => (
                "incrby",
                format!("c{k}"),
                Some((1 + rng.below(5)).to_string()),
            ),
            55..70 => {
                let member = format!("m{id}-{n}");
                added.push((format!("s{k}"), member.clone()));
                ("sadd", format!("s{k}"), Some(member))
            }
            70..80 if !added.is_empty() => {
                let (key, member) = added[rng.below(added.len() as u64) as usize].clone();
                ("srem", key, Some(member))
            }
            70..80 => ("smembers", format!("s{k}"), None),
            80..90 => {
                own += 1;
                ("set", format!("own{id}"), Some(own.to_string()))
            }
            _ => ("get", format!("own{id}"), None),
        };
        let mut args: Vec<&[u8]> = vec![f.as_bytes(), key.as_bytes()];
        if let Some(a) = &arg {
            args.push(a.as_bytes());
        }
        let invoke_ms = history.now_ms();
        let result = client.call(&args);
        let complete_ms = history.now_ms();
        let (outcome, read) = match result {
            Ok(Reply::Error(e)) => (Outcome::Fail, serde_json::Value::String(e)),
            Ok(reply) => (Outcome::Ok, to_json(&reply)),
            Err(CallError::Refused) => (Outcome::Fail, serde_json::Value::Null),
            Err(CallError::Unknown(e)) => (Outcome::Unknown, serde_json::Value::String(e)),
        };
        history.record(Op {
            client: id,
            node,
            f: f.to_string(),
            key,
            arg,
            invoke_ms,
            complete_ms,
            outcome,
            read,
        });
        if outcome != Outcome::Ok {
            // A node that is down or cut off: do not spin.
            std::thread::sleep(Duration::from_millis(100));
        } else {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A reply as JSON: strings, integers, null, sorted arrays.
pub fn to_json(reply: &Reply) -> serde_json::Value {
    match reply {
        Reply::Simple(s) | Reply::Error(s) => serde_json::Value::String(s.clone()),
        Reply::Int(i) => serde_json::Value::from(*i),
        Reply::Bulk(None) => serde_json::Value::Null,
        Reply::Bulk(Some(b)) => serde_json::Value::String(String::from_utf8_lossy(b).into_owned()),
        Reply::Array(items) => {
            let mut v: Vec<serde_json::Value> = items.iter().map(to_json).collect();
            v.sort_by_key(|x| x.to_string());
            serde_json::Value::Array(v)
        }
    }
}
