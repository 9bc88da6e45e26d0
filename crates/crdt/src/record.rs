//! One key: its typed states and its expiry.

use crate::{Merge, Stamp, StrState, keep_later};
use serde::{Deserialize, Serialize};

/// The header of a hash or set key. Its fields or members are stored apart, each under its
/// own storage key, so that a write to one of a million fields touches only that field. The
/// header keeps the highest stamp of any write to them, which decides the key's type when
/// types clash (a max register, so a lattice).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collection {
    /// The latest write to any field or member.
    pub top: Stamp,
}

impl Merge for Collection {
    fn merge(&mut self, other: &Self) {
        self.top = self.top.max(other.top);
    }
}

/// How many fields or members of a key are live. Derived from the stored fields and members
/// and kept beside the record by the storage layer; never merged, never replicated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lens {
    /// Live hash fields.
    pub hash: u64,
    /// Present set members.
    pub set: u64,
}

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
    /// The hash part's header; the fields are stored apart.
    pub hash: Option<Collection>,
    /// The set part's header; the members are stored apart.
    pub set: Option<Collection>,
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
    /// The type clients see, or `None` when nothing is live (ignoring expiry), given how many
    /// fields and members are live. When concurrent writes left more than one type live, the
    /// one with the latest write wins; ties cannot happen, as no two writes share a stamp.
    pub fn kind(&self, lens: Lens) -> Option<Kind> {
        let collection = |c: &Option<Collection>, len: u64| c.filter(|_| len > 0).map(|c| c.top);
        let candidates = [
            (Kind::String, self.string.as_ref().and_then(StrState::top)),
            (Kind::Hash, collection(&self.hash, lens.hash)),
            (Kind::Set, collection(&self.set, lens.set)),
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
    pub fn live_kind(&self, lens: Lens, now_ms: u64) -> Option<Kind> {
        if self.expired(now_ms) {
            None
        } else {
            self.kind(lens)
        }
    }

    /// The header part of deleting the key at `stamp`: the string cleared as observed here,
    /// and the expiry removed so that a later write starts with none. The caller clears every
    /// live field and member with their own deltas.
    pub fn delete_delta(&self, stamp: Stamp) -> Record {
        Record {
            string: self
                .string
                .as_ref()
                .filter(|s| s.exists())
                .map(|s| s.delete_delta(stamp)),
            hash: None,
            set: None,
            expiry: Some((stamp, None)),
        }
    }

    /// A header delta recording a write at `stamp` to a field (`Hash`) or a member (`Set`).
    pub fn touch_delta(stamp: Stamp, kind: Kind) -> Record {
        let c = Some(Collection { top: stamp });
        match kind {
            Kind::Hash => Record {
                hash: c,
                ..Record::default()
            },
            Kind::Set => Record {
                set: c,
                ..Record::default()
            },
            Kind::String => unreachable!("strings have no members"),
        }
    }

    /// Drops what a replica holding `theirs` had seen (`seen` says which) and no longer holds:
    /// it deleted it and collected the tombstone. See [`crate::Seen`].
    pub fn drop_seen(&mut self, theirs: Option<&Record>, seen: &crate::Seen) {
        if let Some(string) = &mut self.string {
            string.drop_seen(theirs.and_then(|t| t.string.as_ref()), seen);
            if *string == StrState::default() {
                self.string = None;
            }
        }
        let gone = |mine: Stamp, theirs: Option<Stamp>| theirs < Some(mine) && seen.covers(mine);
        if self
            .hash
            .is_some_and(|c| gone(c.top, theirs.and_then(|t| t.hash).map(|c| c.top)))
        {
            self.hash = None;
        }
        if self
            .set
            .is_some_and(|c| gone(c.top, theirs.and_then(|t| t.set).map(|c| c.top)))
        {
            self.set = None;
        }
        if self
            .expiry
            .is_some_and(|(s, _)| gone(s, theirs.and_then(|t| t.expiry).map(|(s, _)| s)))
        {
            self.expiry = None;
        }
    }

    /// A delta that only sets the expiry.
    pub fn expiry_delta(stamp: Stamp, at_ms: Option<u64>) -> Record {
        Record {
            expiry: Some((stamp, at_ms)),
            ..Record::default()
        }
    }
}
