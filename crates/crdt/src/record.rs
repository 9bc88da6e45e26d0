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
    /// Elements in the list.
    pub list: u64,
    /// Present sorted set members.
    pub zset: u64,
    /// Windows of a time series with samples left.
    pub series: u64,
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
    /// A list.
    List,
    /// A sorted set.
    ZSet,
    /// A time series (its header is kept beside the record, by the storage layer).
    TimeSeries,
}

impl Kind {
    /// The name `TYPE` answers.
    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Hash => "hash",
            Kind::Set => "set",
            Kind::List => "list",
            Kind::ZSet => "zset",
            Kind::TimeSeries => "TSDB-TYPE",
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
    /// The list part's header; the elements are stored apart.
    pub list: Option<Collection>,
    /// The sorted set part's header; the members are stored apart.
    pub zset: Option<Collection>,
    /// When the key expires: last writer wins.
    pub expiry: Option<(Stamp, Option<u64>)>,
}

impl Merge for Record {
    fn merge(&mut self, other: &Self) {
        self.string.merge(&other.string);
        self.hash.merge(&other.hash);
        self.set.merge(&other.set);
        self.list.merge(&other.list);
        self.zset.merge(&other.zset);
        keep_later(&mut self.expiry, &other.expiry);
    }
}

impl Record {
    /// The type clients see, or `None` when nothing is live (ignoring expiry), given how many
    /// fields and members are live. When concurrent writes left more than one type live, the
    /// one with the latest write wins; ties cannot happen, as no two writes share a stamp.
    pub fn kind(&self, lens: Lens) -> Option<Kind> {
        self.kind_top(lens).map(|(_, k)| k)
    }

    /// [`Record::kind`] with the latest write to that part.
    pub fn kind_top(&self, lens: Lens) -> Option<(Stamp, Kind)> {
        let collection = |c: &Option<Collection>, len: u64| c.filter(|_| len > 0).map(|c| c.top);
        let candidates = [
            (Kind::String, self.string.as_ref().and_then(StrState::top)),
            (Kind::Hash, collection(&self.hash, lens.hash)),
            (Kind::Set, collection(&self.set, lens.set)),
            (Kind::List, collection(&self.list, lens.list)),
            (Kind::ZSet, collection(&self.zset, lens.zset)),
        ];
        candidates
            .into_iter()
            .filter_map(|(k, top)| top.map(|t| (t, k)))
            .max_by_key(|(t, _)| *t)
    }

    /// The latest write to the key's header or to any of its parts (expiry included).
    pub fn last_write(&self) -> Option<Stamp> {
        let parts = [self.hash, self.set, self.list, self.zset].map(|c| c.map(|c| c.top));
        (parts.into_iter())
            .chain([
                self.string.as_ref().and_then(StrState::top),
                self.expiry.map(|(s, _)| s),
            ])
            .flatten()
            .max()
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
            expiry: Some((stamp, None)),
            ..Record::default()
        }
    }

    /// A header delta recording a write at `stamp` to a field, member or element of `kind`.
    pub fn touch_delta(stamp: Stamp, kind: Kind) -> Record {
        let mut record = Record::default();
        let part = match kind {
            Kind::Hash => &mut record.hash,
            Kind::Set => &mut record.set,
            Kind::List => &mut record.list,
            Kind::ZSet => &mut record.zset,
            Kind::String | Kind::TimeSeries => unreachable!("not a collection's header"),
        };
        *part = Some(Collection { top: stamp });
        record
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
        let parts = [
            (&mut self.hash, theirs.and_then(|t| t.hash)),
            (&mut self.set, theirs.and_then(|t| t.set)),
            (&mut self.list, theirs.and_then(|t| t.list)),
            (&mut self.zset, theirs.and_then(|t| t.zset)),
        ];
        for (mine, theirs) in parts {
            if mine.is_some_and(|c| gone(c.top, theirs.map(|c| c.top))) {
                *mine = None;
            }
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
