//! Change log entries: what one round of writes on one node changed.

use crate::VersionVector;
use bytes::Bytes;
use crdt::{Member, NodeId, Record, Stamp, StrState};
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
}

impl Change {
    /// The key the change is to.
    pub fn key(&self) -> &Bytes {
        match self {
            Change::Header { key, .. } | Change::Field { key, .. } | Change::Member { key, .. } => {
                key
            }
        }
    }
}

/// What one round of writes on `origin` changed: the unit of the change log, of shipping and
/// of applying. Entries of one origin apply in `seq` order; an entry applies only once
/// everything in `deps` has, so causal order holds on every replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl Entry {
    /// The encoded form kept in the log and sent to peers.
    pub fn encode(&self) -> Vec<u8> {
        crdt::encode(self)
    }

    /// Decodes what [`Entry::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Entry, postcard::Error> {
        crdt::decode(bytes)
    }
}
