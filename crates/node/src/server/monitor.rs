//! `MONITOR`: every command the node's clients send, as it runs, to the connections that ask.
//!
//! Lines go through one bounded broadcast channel; a monitor that falls a whole channel
//! behind is disconnected (Redis cuts it off at its output buffer limit) rather than letting
//! the node buffer without bound. Nothing is formatted while no connection monitors. Passwords
//! are not shown (`AUTH`, `HELLO ... AUTH`), as in Redis.

use bytes::Bytes;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// Lines a monitor may have waiting before it is cut off.
const BACKLOG: usize = 16 * 1024;

/// The node's monitors.
pub struct Monitors {
    tx: broadcast::Sender<Bytes>,
}

impl Default for Monitors {
    fn default() -> Self {
        Monitors {
            tx: broadcast::channel(BACKLOG).0,
        }
    }
}

impl Monitors {
    /// A new monitor's end.
    pub fn subscribe(&self) -> broadcast::Receiver<Bytes> {
        self.tx.subscribe()
    }

    /// Shows `args`, sent by the client at `addr`, to every monitor.
    pub fn feed(&self, addr: SocketAddr, args: &[Bytes]) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let _ = self.tx.send(line(SystemTime::now(), addr, args));
    }
}

/// A monitor's line: a status reply with the time, database and client, and the command's
/// words quoted.
pub fn line(at: SystemTime, addr: SocketAddr, args: &[Bytes]) -> Bytes {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut out = format!(
        "+{}.{:06} [0 {addr}]",
        since.as_secs(),
        since.subsec_micros()
    )
    .into_bytes();
    for (i, word) in args.iter().enumerate() {
        out.push(b' ');
        if redacted(args, i) {
            out.extend_from_slice(b"\"(redacted)\"");
        } else {
            quote(word, &mut out);
        }
    }
    out.extend_from_slice(b"\r\n");
    Bytes::from(out)
}

/// Whether the word at `i` is a secret: every argument of `AUTH`, the two after `HELLO`'s
/// `AUTH`.
pub(super) fn redacted(args: &[Bytes], i: usize) -> bool {
    if args[0].eq_ignore_ascii_case(b"auth") {
        return i > 0;
    }
    if args[0].eq_ignore_ascii_case(b"hello") {
        let auth = args.iter().position(|a| a.eq_ignore_ascii_case(b"auth"));
        return auth.is_some_and(|at| i == at + 1 || i == at + 2);
    }
    false
}

/// `word` in double quotes, with the escapes Redis uses (`\"`, `\\`, `\n`, `\r`, `\t`, `\a`,
/// `\b`, and `\xHH` for other bytes that do not print).
fn quote(word: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in word {
        match b {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            7 => out.extend_from_slice(b"\\a"),
            8 => out.extend_from_slice(b"\\b"),
            b if b.is_ascii_graphic() || b == b' ' => out.push(b),
            b => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn show(words: &[&[u8]]) -> String {
        let at = UNIX_EPOCH + Duration::from_micros(1_339_518_083_107_412);
        let args: Vec<Bytes> = words.iter().map(|w| Bytes::copy_from_slice(w)).collect();
        let addr = "127.0.0.1:60866".parse().unwrap();
        String::from_utf8(line(at, addr, &args).to_vec()).unwrap()
    }

    #[test]
    fn lines_read_as_redis_writes_them() {
        assert_eq!(
            show(&[b"set", b"k", b"a \"b\"\n\x01"]),
            "+1339518083.107412 [0 127.0.0.1:60866] \"set\" \"k\" \"a \\\"b\\\"\\n\\x01\"\r\n"
        );
    }

    #[test]
    fn passwords_are_not_shown() {
        assert!(
            show(&[b"auth", b"u", b"pw"]).ends_with("\"auth\" \"(redacted)\" \"(redacted)\"\r\n")
        );
        assert!(
            show(&[b"hello", b"2", b"AUTH", b"u", b"pw", b"SETNAME", b"n"])
                .ends_with("\"2\" \"AUTH\" \"(redacted)\" \"(redacted)\" \"SETNAME\" \"n\"\r\n")
        );
    }
}
