//! Node-to-node frames and the handshake.
//!
//! A frame is length-delimited (4-byte big-endian length, [`FRAME_BYTES_MAX`] at most) and
//! holds a version byte, a CRC-32 of the body and the body: one [`Message`] in postcard. A
//! frame with another version, a wrong checksum or a body that does not decode ends the
//! session: the peer is broken or lying, and nothing it sent is applied.
//!
//! The handshake authenticates both sides before any data moves: each sends a [`Hello`] with
//! a fresh random challenge, then a [`Message::Proof`]: HMAC-SHA256 under the cluster secret
//! of both challenges and its own name. A node without the secret cannot answer the other's
//! challenge, and an old proof cannot be replayed against a new challenge. Mutual TLS can
//! later replace the proofs without changing anything after them.

use bytes::{Bytes, BytesMut};
use crdt::NodeId;
use hmac::{Hmac, Mac};
use replication::VersionVector;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The frame format version this node speaks. Version 11: time series (`Change::Series`,
/// `Change::Window`), pings carry the watermark's heartbeat. Version 10: nodes say where and whether they
/// serve clients (`Serving`), pings carry the round trips the sender measures; version 9: pings carry the sender's clock and
/// network coordinate and are answered (`Pong`), for round trips; version 8: keyspace events in log entries
/// (`Change::Event`), shard channels' messages; version 7: lists (`Change::Elem`, list and
/// sorted set headers); version 6: repairs carry what the sender had seen (`crdt::Seen`).
pub const VERSION: u8 = 11;
/// Most round trips a ping carries.
pub const RTTS_MAX: usize = 64;
/// Largest frame accepted: a batch of log entries is cut well below it by the sender.
pub const FRAME_BYTES_MAX: usize = 1 << 30;

pub use membership::MemberInfo;

/// The first frame each side sends.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hello {
    /// The sender.
    pub member: MemberInfo,
    /// A fresh random challenge the other side must sign.
    pub nonce: [u8; 32],
}

/// One part of a repair: the sender's full states of every key it holds in the range
/// `(after, last]` (to the end when `last` is `None`) in the differing buckets. Parts cover
/// the key space in order, with no gaps, so the receiver knows what the sender does not hold.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotPart {
    /// The range starts after this key (from the first when `None`).
    pub after: Option<Bytes>,
    /// The range ends at this key.
    pub last: Option<Bytes>,
    /// Headers, fields and members as full states.
    pub changes: Vec<replication::Change>,
}

/// What peers say to each other.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Message {
    /// Opens the handshake.
    Hello(Hello),
    /// Answers the other's challenge.
    Proof(Vec<u8>),
    /// After both proofs: what the sender holds durably and the members it knows.
    Start {
        /// The id the sender writes under (its origin in logs and vectors).
        origin: NodeId,
        /// The sender's durable version vector.
        vv: VersionVector,
        /// Every member the sender knows (itself included).
        members: Vec<MemberInfo>,
    },
    /// Log entries, shipped as the log holds them (their origin may be a third node).
    Entries(Vec<Shipped>),
    /// What the sender now holds durably.
    Ack(VersionVector),
    /// A message published on the sender's node, for subscribers here.
    Publish {
        /// On a shard channel (`SPUBLISH`).
        shard: bool,
        /// The channel.
        channel: Bytes,
        /// The message.
        message: Bytes,
    },
    /// A repair begins: the sender's state of the key buckets marked in `differ` will
    /// replace the receiver's; that state holds the effects of everything in `vv`.
    SnapshotBegin {
        /// One flag per bucket ([`crate::engine::DIGEST_BUCKETS`]).
        differ: Vec<bool>,
        /// What the sender's state covers.
        vv: VersionVector,
        /// Per origin, the sender's latest write that `vv` covers: the receiver drops what it
        /// holds of those writes that the sender no longer does (see `engine/repair.rs`).
        seen: crdt::Seen,
    },
    /// Part of a repair: an encoded [`SnapshotPart`].
    Snapshot(Bytes),
    /// The repair is complete: the receiver holds what `SnapshotBegin` said it covered.
    SnapshotDone,
    /// The log no longer holds what the receiver lacks: it is asked for its digests, so the
    /// sender can repair only the key ranges that differ.
    DigestRequest,
    /// One digest per key bucket ([`crate::engine::DIGEST_BUCKETS`]) over the sender's state.
    Digests(Vec<u64>),
    /// Keeps an idle session alive (a silent session is closed) and measures the round trip:
    /// answered at once with a [`Message::Pong`] carrying `at_us` back.
    Ping {
        /// The sender's clock when it sent it, in µs of its own monotonic time.
        at_us: u64,
        /// The sender's network coordinate.
        coordinate: routing::Coordinate,
        /// The round trips the sender measures to its peers (node id, ms; at most
        /// [`RTTS_MAX`]): every node learns the measured distances of pairs it has no link
        /// between, and predicts from coordinates only what nobody measures.
        rtts: Vec<(String, f32)>,
        /// The sender's log head when it took `hlc`: every write it stamped before `hlc` is
        /// in its log up to there (the watermark's heartbeat, `peer/watermark.rs`).
        head: u64,
        /// That HLC.
        hlc: u64,
    },
    /// The answer to a ping.
    Pong {
        /// The ping's `at_us`.
        at_us: u64,
        /// The answering node's network coordinate.
        coordinate: routing::Coordinate,
    },
    /// Where and whether the sender serves clients: sent when a session opens and again
    /// whenever it changes (caught up, draining).
    Serving(Serving),
    /// The sender is shutting down on purpose.
    Leave,
    /// A client of the sender waits for its writes to be durable in other regions (`WAIT`):
    /// sync what is held now rather than at the end of the period, so the acknowledgment
    /// comes sooner.
    SyncRequest,
}

/// What discovery (sentinel, DNS) needs to know of a node: where its clients connect, how
/// much it takes, and whether it takes clients now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Serving {
    /// Where clients reach its Redis-protocol listener (`host:port`; the TLS port when it
    /// serves TLS only).
    pub clients: String,
    /// Where clients reach it over TLS (`--tls-port`), when it serves TLS.
    pub tls_clients: Option<String>,
    /// Its sentinel listener (`--sentinel-addr`), when it runs one.
    pub sentinel: Option<String>,
    /// Its `--capacity`: its share of a region's clients, relative to the region's others.
    pub capacity: u32,
    /// Whether it takes clients now.
    pub status: Status,
}

/// Whether a node takes clients now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// It started and is still receiving what its peers wrote while it was away: clients
    /// are not sent to it yet (no failback to a node behind its peers).
    CatchingUp,
    /// It serves clients.
    Ready,
    /// It is handing its clients over (`MERIDIAN DRAIN`, or shutting down).
    Draining,
}

impl Status {
    /// The name `INFO`, `/v1/cluster` and the sentinel listener show.
    pub fn name(self) -> &'static str {
        match self {
            Status::CatchingUp => "catching_up",
            Status::Ready => "ready",
            Status::Draining => "draining",
        }
    }
}

/// One log entry in [`Message::Entries`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Shipped {
    /// The encoded [`replication::Entry`].
    pub entry: Bytes,
    /// When its origin acknowledged it to clients, by the origin's clock: sent by the origin
    /// for entries it still remembers, so the receiver measures replication lag from there.
    pub acked_ms: Option<u64>,
}

/// Why a frame was refused.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The frame is too short to hold its header.
    #[error("frame of {0} bytes is too short")]
    Short(usize),
    /// The peer speaks another version.
    #[error("frame version {0}, this node speaks {VERSION}")]
    Version(u8),
    /// The body was damaged.
    #[error("frame checksum mismatch")]
    Checksum,
    /// The body is not a message.
    #[error("frame body does not decode: {0}")]
    Decode(#[from] postcard::Error),
}

/// Encodes one message as a frame body (the length prefix is the codec's).
pub fn encode(message: &Message) -> Bytes {
    let body = postcard::to_stdvec(message).expect("messages always serialise");
    let mut frame = BytesMut::with_capacity(5 + body.len());
    frame.extend_from_slice(&[VERSION]);
    frame.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    frame.extend_from_slice(&body);
    frame.freeze()
}

/// Decodes a frame body.
pub fn decode(frame: &[u8]) -> Result<Message, FrameError> {
    if frame.len() < 5 {
        return Err(FrameError::Short(frame.len()));
    }
    if frame[0] != VERSION {
        return Err(FrameError::Version(frame[0]));
    }
    let crc = u32::from_be_bytes(frame[1..5].try_into().expect("four bytes"));
    let body = &frame[5..];
    if crc32fast::hash(body) != crc {
        return Err(FrameError::Checksum);
    }
    Ok(postcard::from_bytes(body)?)
}

/// The proof `name` gives, answering `their_nonce`, having sent `my_nonce`.
pub fn proof(secret: &[u8], their_nonce: &[u8; 32], my_nonce: &[u8; 32], name: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(b"meridian peer proof v1");
    mac.update(their_nonce);
    mac.update(my_nonce);
    mac.update(name.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Checks, in constant time, the proof `name` gave.
pub fn verify(
    secret: &[u8],
    my_nonce: &[u8; 32],
    their_nonce: &[u8; 32],
    name: &str,
    proof: &[u8],
) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(b"meridian peer proof v1");
    mac.update(my_nonce);
    mac.update(their_nonce);
    mac.update(name.as_bytes());
    mac.verify_slice(proof).is_ok()
}

/// A fresh challenge from the operating system's generator.
pub fn nonce() -> [u8; 32] {
    let mut n = [0u8; 32];
    getrandom::fill(&mut n).expect("the operating system's random source works");
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_damage_is_refused() {
        let frame = encode(&Message::Ack(VersionVector::new()));
        assert!(matches!(decode(&frame), Ok(Message::Ack(_))));
        let mut bad = frame.to_vec();
        *bad.last_mut().unwrap() ^= 1;
        assert!(matches!(decode(&bad), Err(FrameError::Checksum)));
        bad = frame.to_vec();
        bad[0] = VERSION + 1;
        assert!(matches!(decode(&bad), Err(FrameError::Version(v)) if v == VERSION + 1));
        assert!(matches!(decode(&[1, 2]), Err(FrameError::Short(2))));
    }

    #[test]
    fn a_proof_verifies_only_with_the_same_secret_and_challenges() {
        let (a, b) = (nonce(), nonce());
        let p = proof(b"secret", &b, &a, "eu-1");
        assert!(verify(b"secret", &b, &a, "eu-1", &p));
        assert!(!verify(b"other", &b, &a, "eu-1", &p));
        assert!(!verify(b"secret", &b, &nonce(), "eu-1", &p));
        assert!(!verify(b"secret", &b, &a, "us-1", &p));
    }
}
