//! Sealing gossip datagrams: encrypted and authenticated (ChaCha20-Poly1305, from ring) under
//! the cluster's gossip keyring, so that names, regions and addresses are not readable on the
//! wire and a datagram from outside the cluster changes nothing.
//!
//! A datagram is `version (1) | key id (4) | nonce (12) | sealed (sent_at_ms (8) | payload) |
//! tag (16)`, the first 17 bytes authenticated as associated data. The key id (the first
//! bytes of the key's SHA-256) names which key of the ring sealed it. `sent_at_ms` is the
//! sender's wall clock: a datagram older or newer than [`WINDOW_MS`] is dropped, and within
//! the window a [`ReplayGuard`] drops a nonce seen before, so a recorded datagram cannot be
//! replayed.
//!
//! A [`Keyring`] holds every key a node accepts; the first seals. Rotation without downtime,
//! as Serf and Consul do it: install the new key on every node (accepted, not yet used), then
//! make it first on every node (used; the old one still accepted), then remove the old one.
//! The runtime hands in time and nonces; nothing here does I/O.

use bytes::{BufMut, Bytes, BytesMut};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use sha2::{Digest, Sha256};
use std::collections::{HashSet, VecDeque};

/// The datagram format version.
pub const VERSION: u8 = 2;
/// Bytes before the sealed part: version, key id, nonce.
pub const HEADER_BYTES: usize = 1 + 4 + 12;
/// Bytes a datagram adds to its payload.
pub const OVERHEAD_BYTES: usize = HEADER_BYTES + 8 + 16;
/// How far a datagram's send time may be from the receiver's clock.
pub const WINDOW_MS: u64 = 30_000;
/// Bytes of one gossip key.
pub const KEY_BYTES: usize = 32;
/// Keeps keys derived from a cluster secret apart from anything else made from it.
const DOMAIN: &[u8] = b"meridian gossip key v2";
/// Most nonces a replay guard remembers (beyond them, the oldest are forgotten early).
const SEEN_MAX: usize = 1 << 16;

/// Why a datagram was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Too short or another format version: not a datagram of ours.
    Malformed,
    /// Sealed under a key this node does not hold (another cluster, or a key removed).
    UnknownKey,
    /// The tag does not verify: forged or damaged.
    Forged,
    /// Sent longer ago (or further ahead) than the window.
    Stale,
    /// Its nonce was seen before within the window.
    Replayed,
}

impl Rejected {
    /// The label metrics count it under.
    pub fn name(self) -> &'static str {
        match self {
            Rejected::Malformed => "malformed",
            Rejected::UnknownKey => "unknown_key",
            Rejected::Forged => "forged",
            Rejected::Stale => "stale",
            Rejected::Replayed => "replayed",
        }
    }
}

struct Key {
    id: [u8; 4],
    key: LessSafeKey,
}

/// The id a key is known by: the first 4 bytes of its SHA-256, in hex.
pub fn key_id(key: &[u8; KEY_BYTES]) -> String {
    Sha256::digest(key)[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The gossip keys a node accepts; the first seals what it sends.
pub struct Keyring {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self
            .keys
            .iter()
            .map(|k| k.id.iter().map(|b| format!("{b:02x}")).collect())
            .collect();
        f.debug_struct("Keyring").field("ids", &ids).finish()
    }
}

impl Keyring {
    /// A ring of `keys`, the first used to seal; none if `keys` is empty.
    pub fn new(keys: &[[u8; KEY_BYTES]]) -> Option<Keyring> {
        if keys.is_empty() {
            return None;
        }
        let keys = keys
            .iter()
            .map(|k| {
                let mut id = [0; 4];
                id.copy_from_slice(&Sha256::digest(k)[..4]);
                let unbound = UnboundKey::new(&CHACHA20_POLY1305, k).expect("32-byte key");
                Key {
                    id,
                    key: LessSafeKey::new(unbound),
                }
            })
            .collect();
        Some(Keyring { keys })
    }

    /// A ring of one key derived from a cluster secret (for clusters without a keyring file).
    pub fn from_secret(secret: &[u8]) -> Keyring {
        let mut h = Sha256::new();
        h.update(DOMAIN);
        h.update(secret);
        let key: [u8; KEY_BYTES] = h.finalize().into();
        Keyring::new(&[key]).expect("one key")
    }

    /// `payload` sealed under the first key, sent at `sent_at_ms` (wall clock) with `nonce`
    /// (never used twice with one key: the runtime draws it at random).
    pub fn seal(&self, payload: &[u8], sent_at_ms: u64, nonce: [u8; 12]) -> Bytes {
        let key = &self.keys[0];
        let mut header = [0u8; HEADER_BYTES];
        header[0] = VERSION;
        header[1..5].copy_from_slice(&key.id);
        header[5..].copy_from_slice(&nonce);
        let mut sealed = Vec::with_capacity(8 + payload.len() + 16);
        sealed.extend_from_slice(&sent_at_ms.to_le_bytes());
        sealed.extend_from_slice(payload);
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(header),
                &mut sealed,
            )
            .expect("a datagram is far below ChaCha20-Poly1305's limit");
        let mut out = BytesMut::with_capacity(HEADER_BYTES + sealed.len());
        out.put_slice(&header);
        out.put_slice(&sealed);
        out.freeze()
    }

    /// The send time, nonce and payload of `datagram` if a key of this ring sealed it.
    pub fn open(&self, datagram: &[u8]) -> Result<(u64, [u8; 12], Vec<u8>), Rejected> {
        if datagram.len() < OVERHEAD_BYTES || datagram[0] != VERSION {
            return Err(Rejected::Malformed);
        }
        let (header, sealed) = datagram.split_at(HEADER_BYTES);
        let key = self
            .keys
            .iter()
            .find(|k| k.id == header[1..5])
            .ok_or(Rejected::UnknownKey)?;
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&header[5..]);
        let mut buf = sealed.to_vec();
        let plain = key
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(header),
                &mut buf,
            )
            .map_err(|_| Rejected::Forged)?;
        let sent_at = u64::from_le_bytes(plain[..8].try_into().expect("8 bytes"));
        Ok((sent_at, nonce, plain[8..].to_vec()))
    }
}

/// Drops datagrams sent outside the window, and nonces seen within it.
#[derive(Default)]
pub struct ReplayGuard {
    order: VecDeque<(u64, [u8; 12])>,
    seen: HashSet<[u8; 12]>,
}

impl ReplayGuard {
    /// Whether a datagram sent at `sent_at_ms` with `nonce` may pass at `now_ms`; it is
    /// remembered if so.
    pub fn admit(&mut self, sent_at_ms: u64, nonce: [u8; 12], now_ms: u64) -> Result<(), Rejected> {
        if sent_at_ms.abs_diff(now_ms) > WINDOW_MS {
            return Err(Rejected::Stale);
        }
        // Forget what fell out of the window (datagrams from then are refused as stale).
        while let Some(&(at, n)) = self.order.front() {
            if at + WINDOW_MS >= now_ms && self.order.len() < SEEN_MAX {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&n);
        }
        if !self.seen.insert(nonce) {
            return Err(Rejected::Replayed);
        }
        self.order.push_back((sent_at_ms, nonce));
        Ok(())
    }
}

/// Parses a keyring file: one key per line, 64 hex digits; blank lines and lines starting
/// with `#` are skipped. The first key seals.
pub fn parse_keyring(text: &str) -> Result<Vec<[u8; KEY_BYTES]>, String> {
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        keys.push(parse_key(line).map_err(|e| format!("line {}: {e}", i + 1))?);
    }
    if keys.is_empty() {
        return Err("no key".into());
    }
    Ok(keys)
}

/// Parses one key: 64 hex digits.
pub fn parse_key(hex: &str) -> Result<[u8; KEY_BYTES], String> {
    let hex = hex.trim();
    if hex.len() != 2 * KEY_BYTES || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("a gossip key is 64 hex digits (32 bytes)".into());
    }
    let mut key = [0u8; KEY_BYTES];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("checked hex");
    }
    Ok(key)
}

/// A key as the keyring file holds it.
pub fn format_key(key: &[u8; KEY_BYTES]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn sealed_datagrams_open_only_under_a_key_of_the_ring_and_hide_the_payload() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let old = Keyring::new(&[a]).unwrap();
        let datagram = old.seal(b"eu-1 10.0.0.1:7381", NOW, [7; 12]);
        assert!(
            !datagram.windows(4).any(|w| w == b"eu-1"),
            "the payload is not readable"
        );
        assert_eq!(old.open(&datagram).unwrap().2, b"eu-1 10.0.0.1:7381");

        // Rotation: a ring holding both opens what either seals; a ring without the key does
        // not.
        let both = Keyring::new(&[b, a]).unwrap();
        assert_eq!(both.open(&datagram).unwrap().0, NOW);
        let new_only = Keyring::new(&[b]).unwrap();
        assert_eq!(
            old.open(&both.seal(b"x", NOW, [8; 12])),
            Err(Rejected::UnknownKey)
        );
        assert_eq!(new_only.open(&datagram), Err(Rejected::UnknownKey));

        // Damage anywhere, cut short, another version.
        for i in [0usize, 3, 10, 20, datagram.len() - 1] {
            let mut bad = datagram.to_vec();
            bad[i] ^= 1;
            assert!(old.open(&bad).is_err(), "byte {i} flipped");
        }
        assert_eq!(
            old.open(&datagram[..OVERHEAD_BYTES - 1]),
            Err(Rejected::Malformed)
        );
        let mut v1 = datagram.to_vec();
        v1[0] = 1;
        assert_eq!(old.open(&v1), Err(Rejected::Malformed));
        // Another cluster's secret.
        let other = Keyring::from_secret(b"guess");
        assert_eq!(
            Keyring::from_secret(b"s3cret").open(&other.seal(b"x", NOW, [9; 12])),
            Err(Rejected::UnknownKey)
        );
    }

    #[test]
    fn replays_and_stale_datagrams_are_refused() {
        let mut guard = ReplayGuard::default();
        assert_eq!(guard.admit(NOW, [1; 12], NOW), Ok(()));
        assert_eq!(guard.admit(NOW, [1; 12], NOW + 5), Err(Rejected::Replayed));
        assert_eq!(guard.admit(NOW, [2; 12], NOW + WINDOW_MS), Ok(()));
        assert_eq!(
            guard.admit(NOW, [3; 12], NOW + WINDOW_MS + 1),
            Err(Rejected::Stale)
        );
        assert_eq!(
            guard.admit(NOW + WINDOW_MS + 1, [4; 12], NOW),
            Err(Rejected::Stale)
        );
        // Long after, the first nonce is forgotten, and its datagram refused as stale.
        let later = NOW + 3 * WINDOW_MS;
        assert_eq!(guard.admit(later, [9; 12], later), Ok(()));
        assert!(!guard.seen.contains(&[1; 12]));
        assert_eq!(guard.admit(NOW, [1; 12], later), Err(Rejected::Stale));
    }

    #[test]
    fn keyring_files_parse_and_refuse_what_is_not_a_key() {
        let key = format_key(&[0xab; 32]);
        let text = format!("# rotated 2026-12-06\n{key}\n\n{}\n", format_key(&[1; 32]));
        let keys = parse_keyring(&text).unwrap();
        assert_eq!(keys, vec![[0xab; 32], [1; 32]]);
        assert!(parse_keyring("# nothing\n").is_err());
        assert!(parse_keyring("abc\n").unwrap_err().starts_with("line 1"));
        assert!(parse_key(&"g".repeat(64)).is_err());
        assert_eq!(key_id(&[0xab; 32]).len(), 8);
    }
}
