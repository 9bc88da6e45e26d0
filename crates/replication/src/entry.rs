//! Change log entries: what one round of writes on one node changed.

use crate::VersionVector;
use bytes::Bytes;
use crdt::{Elem, Member, NodeId, Record, Stamp, StrState, ZMember};
use hlc::Timestamp;
use serde::{Deserialize, Serialize};

/// One delta, as the node's engine merged it. Applying the same changes on another replica,
/// in any order and any number of times, gives the same state there (the merge laws).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// A delta of a key's header (string part, collection headers, expiry).
    Header {
        /// The key.
        key: Bytes,
        /// The delta.
        delta: Record,
    },
    /// A delta of one hash field, written at `stamp`.
    Field {
        /// The key.
        key: Bytes,
        /// The field.
        field: Bytes,
        /// The delta.
        delta: StrState,
        /// The write's stamp (moves the hash header's latest write).
        stamp: Stamp,
    },
    /// A delta of one set member; `stamp` is the write's stamp when it adds.
    Member {
        /// The key.
        key: Bytes,
        /// The member.
        member: Bytes,
        /// The delta.
        delta: Member,
        /// The adding write's stamp; `None` for a remove.
        stamp: Option<Stamp>,
    },
    /// A delta of one list element; `stamp` is the write's stamp when it inserts or sets.
    Elem {
        /// The key.
        key: Bytes,
        /// The element's position (a `crdt::Position`'s encoding).
        pos: Bytes,
        /// The delta.
        delta: Elem,
        /// The writing stamp; `None` for a remove.
        stamp: Option<Stamp>,
    },
    /// A delta of one sorted set member; `stamp` is the write's stamp when it adds.
    ZMember {
        /// The key.
        key: Bytes,
        /// The member.
        member: Bytes,
        /// The delta.
        delta: ZMember,
        /// The adding write's stamp; `None` for a remove.
        stamp: Option<Stamp>,
    },
    /// A delta of a time series' header (settings, labels, rules, a delete of the series).
    Series {
        /// The key.
        key: Bytes,
        /// The delta.
        delta: timeseries::header::Header,
    },
    /// A delta of one window of a time series' samples; `stamp` is the write's stamp.
    Window {
        /// The key.
        key: Bytes,
        /// The window's first instant (8 bytes, big-endian).
        start: Bytes,
        /// The delta: the samples written, or a range deleted.
        delta: timeseries::series::Window,
        /// The writing stamp.
        stamp: Option<Stamp>,
    },
    /// A keyspace event the origin's command raised on `key` (its code in
    /// `node::engine::notify::EVENTS`). Changes no state: every replica that applies the
    /// entry publishes it to its own subscribers.
    Event {
        /// The key.
        key: Bytes,
        /// The event's code.
        event: u8,
    },
}

impl Change {
    /// The key the change is to.
    pub fn key(&self) -> &Bytes {
        match self {
            Change::Header { key, .. }
            | Change::Field { key, .. }
            | Change::Member { key, .. }
            | Change::Elem { key, .. }
            | Change::ZMember { key, .. }
            | Change::Series { key, .. }
            | Change::Window { key, .. }
            | Change::Event { key, .. } => key,
        }
    }
}

/// What one round of writes on `origin` changed: the unit of the change log, of shipping and
/// of applying. Entries of one origin apply in `seq` order; an entry applies only once
/// everything in `deps` has, so causal order holds on every replica.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    /// The node whose clients wrote.
    pub origin: NodeId,
    /// Position in the origin's log: 1, 2, 3, ... with no gaps.
    pub seq: u64,
    /// The origin's clock after the round: the highest stamp in `changes`.
    pub hlc: Timestamp,
    /// What the origin had applied from other origins when it wrote (the writes it may have
    /// read).
    pub deps: VersionVector,
    /// The deltas, in the order they were merged.
    pub changes: Vec<Change>,
    /// The bytes this entry was decoded from, kept so that storing or forwarding it does not
    /// encode it again. Not part of the entry's value (ignored by equality).
    #[serde(skip)]
    pub encoded: Option<Bytes>,
    /// When the origin acknowledged this entry's writes to its clients, by the origin's
    /// clock: known to a receiver when the origin shipped the entry itself, soon after. Lag
    /// is measured from here. Not part of the entry's value (not encoded, ignored by
    /// equality).
    #[serde(skip)]
    pub acked_ms: Option<u64>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        (self.origin, self.seq, self.hlc, &self.deps, &self.changes)
            == (
                other.origin,
                other.seq,
                other.hlc,
                &other.deps,
                &other.changes,
            )
    }
}

impl Eq for Entry {}

impl Entry {
    /// A new entry (not decoded from anywhere).
    pub fn new(
        origin: NodeId,
        seq: u64,
        hlc: Timestamp,
        deps: VersionVector,
        changes: Vec<Change>,
    ) -> Entry {
        Entry {
            origin,
            seq,
            hlc,
            deps,
            changes,
            encoded: None,
            acked_ms: None,
        }
    }

    /// The encoded form kept in the log and sent to peers: the bytes it was decoded from,
    /// when it was.
    pub fn encode(&self) -> Vec<u8> {
        match &self.encoded {
            Some(bytes) => bytes.to_vec(),
            None => crdt::encode(self),
        }
    }

    /// When, by its origin's clock, replication lag counts from: the origin's acknowledgment
    /// when known, else the entry's stamp (taken just before the origin committed: a little
    /// earlier).
    pub fn lag_since_ms(&self) -> u64 {
        self.acked_ms.unwrap_or_else(|| self.hlc.physical_ms())
    }

    /// Decodes what [`Entry::encode`] wrote, keeping the bytes.
    pub fn decode(bytes: &Bytes) -> Result<Entry, postcard::Error> {
        let mut entry: Entry = crdt::decode(bytes)?;
        entry.encoded = Some(bytes.clone());
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decoded_entry_encodes_to_the_bytes_it_came_from_and_compares_by_value() {
        let key = Bytes::from("k");
        let entry = Entry::new(
            NodeId(7),
            3,
            Timestamp::new(10, 1),
            VersionVector::new(),
            vec![Change::Header {
                key,
                delta: Record::default(),
            }],
        );
        let bytes = Bytes::from(entry.encode());
        let decoded = Entry::decode(&bytes).unwrap();
        assert_eq!(decoded, entry);
        assert_eq!(decoded.encode(), bytes.to_vec());
        assert_eq!(decoded.encoded.as_ref(), Some(&bytes));
    }

    #[test]
    fn lag_counts_from_the_acknowledgment_when_the_origin_sent_it() {
        let mut entry = Entry::new(
            NodeId(7),
            3,
            Timestamp::new(1_000, 0),
            VersionVector::new(),
            Vec::new(),
        );
        assert_eq!(entry.lag_since_ms(), 1_000);
        let mut decoded = Entry::decode(&Bytes::from(entry.encode())).unwrap();
        assert_eq!(
            decoded.acked_ms, None,
            "the acknowledgment is not in the encoding"
        );
        decoded.acked_ms = Some(1_004);
        assert_eq!(decoded.lag_since_ms(), 1_004);
        assert_eq!(decoded, entry, "nor part of the entry's value");
        entry.acked_ms = Some(1_004);
        assert_eq!(entry.lag_since_ms(), 1_004);
    }
}
