//! Sealing gossip datagrams: a version byte, an HMAC-SHA256 tag (truncated) under the cluster
//! secret, then foca's payload. Gossip is authenticated like the replication links are; it is
//! not encrypted (it carries names, regions and addresses only). A recorded datagram could be
//! replayed, which at worst repeats an old liveness claim that SWIM's incarnation numbers
//! already order.

use bytes::{BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The datagram format version.
pub const VERSION: u8 = 1;
/// Bytes of the tag kept (128 bits).
pub const TAG_BYTES: usize = 16;
/// Keeps gossip tags apart from anything else keyed by the same secret.
const DOMAIN: &[u8] = b"meridian gossip v1";

/// The MAC of `payload` under `secret`, before finalising.
fn mac(secret: &[u8], payload: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(DOMAIN);
    mac.update(payload);
    mac
}

fn tag(secret: &[u8], payload: &[u8]) -> [u8; TAG_BYTES] {
    let full = mac(secret, payload).finalize().into_bytes();
    let mut out = [0; TAG_BYTES];
    out.copy_from_slice(&full[..TAG_BYTES]);
    out
}

/// `payload` as a datagram for peers holding `secret`.
pub fn seal(secret: &[u8], payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(1 + TAG_BYTES + payload.len());
    out.put_u8(VERSION);
    out.put_slice(&tag(secret, payload));
    out.put_slice(payload);
    out.freeze()
}

/// The payload of `datagram` if it is ours and sealed under `secret`.
pub fn open<'a>(secret: &[u8], datagram: &'a [u8]) -> Option<&'a [u8]> {
    if datagram.len() < 1 + TAG_BYTES || datagram[0] != VERSION {
        return None;
    }
    let (given, payload) = datagram[1..].split_at(TAG_BYTES);
    // Constant-time comparison of the truncated tag.
    mac(secret, payload)
        .verify_truncated_left(given)
        .ok()
        .map(|()| payload)
}
