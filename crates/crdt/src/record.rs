//! One key: its typed states and its expiry.

use crate::{Merge, SetState, Stamp, StrState, keep_later};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The fields of a hash key, each a string/counter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashState {
    fields: BTreeMap<Bytes, StrState>,
}

impl Merge for HashState {
    fn merge(&mut self, other: &Self) {
        crate::merge_map(&mut self.fields, &other.fields);
    }
}

impl HashState {
    /// A field's state, live or not.
    pub fn field(&self, name: &[u8]) -> Option<&StrState> {
        self.fields.get(name)
    }

    /// A live field's value.
    pub fn get(&self, name: &[u8]) -> Option<Bytes> {
        self.fields.get(name).and_then(StrState::value)
    }

    /// Live fields and their values, in byte order of the field names.
    pub fn entries(&self) -> impl Iterator<Item = (&Bytes, Bytes)> {
        self.fields
            .iter()
            .filter_map(|(k, v)| v.value().map(|v| (k, v)))
    }

    /// Number of live fields.
    pub fn len(&self) -> usize {
        self.fields.values().filter(|f| f.exists()).count()
    }

    /// Whether no field is live.
    pub fn is_empty(&self) -> bool {
        !self.fields.values().any(StrState::exists)
    }

    /// The latest live write, which decides the key's type when types clash.
    pub fn top(&self) -> Option<Stamp> {
        self.fields.values().filter_map(StrState::top).max()
    }

    /// A delta that changes one field.
    pub fn field_delta(name: Bytes, delta: StrState) -> HashState {
        HashState {
            fields: BTreeMap::from([(name, delta)]),
        }
    }

    /// The delta of deleting every live field at `stamp`.
    pub fn clear_delta(&self, stamp: Stamp) -> HashState {
        let fields = self
            .fields
            .iter()
            .filter(|(_, f)| f.exists())
            .map(|(k, f)| (k.clone(), f.delete_delta(stamp)))
            .collect();
        HashState { fields }
    }
}

/// A key's expiry: when it expires (milliseconds since the Unix epoch), or never. Last writer
/// wins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiry(pub Option<(Stamp, Option<u64>)>);

/// The type a key shows to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A string (counters are strings, as in Redis).
    String,
    /// A hash.
    Hash,
    /// A set.
    Set,
}

impl Kind {
    /// The name `TYPE` answers.
    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Hash => "hash",
            Kind::Set => "set",
        }
    }
}

/// Everything stored under one key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The string/counter part.
    pub string: Option<StrState>,
    /// The hash part.
    pub hash: Option<HashState>,
    /// The set part.
    pub set: Option<SetState>,
    /// When the key expires: last writer wins.
    pub expiry: Option<(Stamp, Option<u64>)>,
}

impl Merge for Record {
    fn merge(&mut self, other: &Self) {
        self.string.merge(&other.string);
        self.hash.merge(&other.hash);
        self.set.merge(&other.set);
        keep_later(&mut self.expiry, &other.expiry);
    }
}

impl Record {
    /// The type clients see, or `None` when nothing is live (ignoring expiry). When concurrent
    /// writes left more than one type live, the one with the latest live write wins; ties
    /// cannot happen, as no two writes share a stamp.
    pub fn kind(&self) -> Option<Kind> {
        let candidates = [
            (Kind::String, self.string.as_ref().and_then(StrState::top)),
            (Kind::Hash, self.hash.as_ref().and_then(HashState::top)),
            (Kind::Set, self.set.as_ref().and_then(SetState::top)),
        ];
        candidates
            .into_iter()
            .filter_map(|(k, top)| top.map(|t| (t, k)))
            .max_by_key(|(t, _)| *t)
            .map(|(_, k)| k)
    }

    /// When the key expires, if it does.
    pub fn expires_at_ms(&self) -> Option<u64> {
        self.expiry.and_then(|(_, at)| at)
    }

    /// Whether the key has expired at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms().is_some_and(|at| at <= now_ms)
    }

    /// The type clients see at `now_ms`: `None` when absent or expired.
    pub fn live_kind(&self, now_ms: u64) -> Option<Kind> {
        if self.expired(now_ms) {
            None
        } else {
            self.kind()
        }
    }

    /// The delta of deleting the key at `stamp`: every live part cleared as observed here, and
    /// the expiry removed so that a later write starts with none.
    pub fn delete_delta(&self, stamp: Stamp) -> Record {
        Record {
            string: self
                .string
                .as_ref()
                .filter(|s| s.exists())
                .map(|s| s.delete_delta(stamp)),
            hash: self
                .hash
                .as_ref()
                .map(|h| h.clear_delta(stamp))
                .filter(|h| !h.fields.is_empty()),
            set: self
                .set
                .as_ref()
                .map(SetState::clear_delta)
                .filter(|s| *s != SetState::default()),
            expiry: Some((stamp, None)),
        }
    }

    /// A delta that only sets the expiry.
    pub fn expiry_delta(stamp: Stamp, at_ms: Option<u64>) -> Record {
        Record {
            expiry: Some((stamp, at_ms)),
            ..Record::default()
        }
    }

    /// Encodes for storage and the wire (postcard, compact).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("a record always serialises")
    }

    /// Decodes what [`Record::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Record, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}
