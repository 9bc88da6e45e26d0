//! The recorded history: one line of JSON per operation.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The node answered and the write (or read) took effect.
    Ok,
    /// It certainly did not take effect (refused connection, error reply).
    Fail,
    /// No answer: it may or may not have taken effect.
    Unknown,
}

/// One operation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Op {
    /// The client (each stays on one node).
    pub client: usize,
    /// The node's index.
    pub node: usize,
    /// `set`, `get`, `incrby`, `sadd`, `srem`, `smembers`.
    pub f: String,
    /// The key.
    pub key: String,
    /// What was written (value, increment, member).
    pub arg: Option<String>,
    /// When the client sent it, ms since the run started.
    pub invoke_ms: u64,
    /// When the answer came (or the client gave up).
    pub complete_ms: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// What a read returned; for SREM, how many members it removed.
    pub read: serde_json::Value,
}

/// Where operations go: memory for the checkers, and a JSONL file.
pub struct History {
    started: Instant,
    ops: Mutex<Vec<Op>>,
    file: Mutex<std::io::BufWriter<std::fs::File>>,
}

impl History {
    /// A history written to `path`.
    pub fn create(path: &std::path::Path) -> anyhow::Result<History> {
        Ok(History {
            started: Instant::now(),
            ops: Mutex::new(Vec::new()),
            file: Mutex::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
        })
    }

    /// Milliseconds since the run started.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Records a finished operation.
    pub fn record(&self, op: Op) {
        let line = serde_json::to_string(&op).expect("ops serialise");
        let mut file = self.file.lock().expect("history lock");
        let _ = writeln!(file, "{line}");
        self.ops.lock().expect("history lock").push(op);
    }

    /// Every operation so far.
    pub fn ops(&self) -> Vec<Op> {
        let _ = self.file.lock().expect("history lock").flush();
        self.ops.lock().expect("history lock").clone()
    }
}
