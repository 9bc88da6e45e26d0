//! Server replies and their encoding for RESP2 and RESP3.
//!
//! One [`Reply`] value encodes differently per protocol: a RESP3 map is a flat array in RESP2,
//! a null is `$-1` (or `*-1` for a missing array), a double is a bulk string, a boolean an
//! integer. Commands build replies once and the connection encodes them for its protocol.

use bytes::{BufMut, Bytes, BytesMut};

/// The protocol version a connection speaks, chosen with `HELLO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2, the default of every new connection.
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

/// One reply to a client.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK` and friends: text with no CR or LF.
    Simple(&'static str),
    /// A simple string built at run time (must hold no CR or LF).
    Status(String),
    /// `-ERR ...`: the full text including the error code word.
    Error(String),
    /// `:n`
    Int(i64),
    /// `$n` bytes.
    Bulk(Bytes),
    /// The null reply (`$-1` in RESP2, `_` in RESP3).
    Null,
    /// A missing array (`*-1` in RESP2, `_` in RESP3).
    NullArray,
    /// `*n` items.
    Array(Vec<Reply>),
    /// `%n` pairs in RESP3; a flat array in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// An array of two-item arrays in RESP3; a flat array in RESP2 (`HRANDFIELD ...
    /// WITHVALUES`, `ZRANGE ... WITHSCORES`).
    Pairs(Vec<(Reply, Reply)>),
    /// `~n` items in RESP3; an array in RESP2.
    Set(Vec<Reply>),
    /// `,x` in RESP3; a bulk string in RESP2; formatted as Redis 7.0 formats doubles (`%.17g`).
    Double(f64),
    /// `>n` items in RESP3 (out-of-band pushes such as pub/sub messages); an array in RESP2.
    Push(Vec<Reply>),
    /// `=n txt:...` in RESP3; a bulk string in RESP2.
    Verbatim(String),
    /// Replies shaped apart for each protocol, `(resp2, resp3)`: for commands whose RESP3
    /// reply is not the RESP2 one re-typed (RedisTimeSeries's `TS.MRANGE` is an array of
    /// `[key, labels, samples]` in RESP2 and a map by key in RESP3).
    PerProtocol(Box<(Reply, Reply)>),
}

impl Reply {
    /// `+OK`
    pub const OK: Reply = Reply::Simple("OK");

    /// An error reply from a static text that already starts with its code (`ERR ...`).
    pub fn err(text: &str) -> Reply {
        Reply::Error(text.to_string())
    }

    /// A bulk string from anything byte-like.
    pub fn bulk(bytes: impl Into<Bytes>) -> Reply {
        Reply::Bulk(bytes.into())
    }

    /// The wrong-number-of-arguments error Redis gives for `command`.
    pub fn wrong_arity(command: &str) -> Reply {
        Reply::Error(format!(
            "ERR wrong number of arguments for '{}' command",
            command.to_ascii_lowercase()
        ))
    }

    /// `resp2` to RESP2 clients, `resp3` to RESP3 ones.
    pub fn per_protocol(resp2: Reply, resp3: Reply) -> Reply {
        Reply::PerProtocol(Box::new((resp2, resp3)))
    }

    /// Whether this reply is an error.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends this reply, encoded for `protocol`, to `out`.
    pub fn encode(&self, protocol: Protocol, out: &mut BytesMut) {
        let resp3 = protocol == Protocol::Resp3;
        match self {
            Reply::Simple(s) => line(out, b'+', s.as_bytes()),
            Reply::Status(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(s) => line(out, b'-', s.as_bytes()),
            Reply::Int(n) => {
                out.put_u8(b':');
                put_int(out, *n);
                out.put_slice(b"\r\n");
            }
            Reply::Bulk(b) => bulk(out, b),
            Reply::Null if resp3 => out.put_slice(b"_\r\n"),
            Reply::Null => out.put_slice(b"$-1\r\n"),
            Reply::NullArray if resp3 => out.put_slice(b"_\r\n"),
            Reply::NullArray => out.put_slice(b"*-1\r\n"),
            Reply::Array(items) => items_of(out, b'*', items, protocol),
            Reply::Set(items) => items_of(out, if resp3 { b'~' } else { b'*' }, items, protocol),
            Reply::Push(items) => items_of(out, if resp3 { b'>' } else { b'*' }, items, protocol),
            Reply::Map(pairs) => {
                if resp3 {
                    header(out, b'%', pairs.len());
                } else {
                    header(out, b'*', pairs.len() * 2);
                }
                for (k, v) in pairs {
                    k.encode(protocol, out);
                    v.encode(protocol, out);
                }
            }
            Reply::Pairs(pairs) => {
                header(out, b'*', if resp3 { pairs.len() } else { pairs.len() * 2 });
                for (k, v) in pairs {
                    if resp3 {
                        header(out, b'*', 2);
                    }
                    k.encode(protocol, out);
                    v.encode(protocol, out);
                }
            }
            Reply::Double(d) => {
                let text = crate::args::format_score(*d);
                if resp3 {
                    line(out, b',', text.as_bytes());
                } else {
                    bulk(out, text.as_bytes());
                }
            }
            Reply::PerProtocol(shapes) => {
                if resp3 {
                    shapes.1.encode(protocol, out);
                } else {
                    shapes.0.encode(protocol, out);
                }
            }
            Reply::Verbatim(text) => {
                if resp3 {
                    header(out, b'=', text.len() + 4);
                    out.put_slice(b"txt:");
                    out.put_slice(text.as_bytes());
                    out.put_slice(b"\r\n");
                } else {
                    bulk(out, text.as_bytes());
                }
            }
        }
    }
}

fn put_int(out: &mut BytesMut, n: i64) {
    let mut buf = itoa_buf(n);
    out.put_slice(buf.as_bytes_mut());
}

/// Formats an integer without going through `fmt` machinery on the hot path.
fn itoa_buf(n: i64) -> IntText {
    let mut text = IntText {
        bytes: [0; 20],
        start: 20,
    };
    let negative = n < 0;
    let mut v = n.unsigned_abs();
    loop {
        text.start -= 1;
        text.bytes[text.start] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if negative {
        text.start -= 1;
        text.bytes[text.start] = b'-';
    }
    text
}

struct IntText {
    bytes: [u8; 20],
    start: usize,
}

impl IntText {
    fn as_bytes_mut(&mut self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

fn line(out: &mut BytesMut, kind: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(kind);
    out.put_slice(text);
    out.put_slice(b"\r\n");
}

fn header(out: &mut BytesMut, kind: u8, len: usize) {
    out.put_u8(kind);
    put_int(out, len as i64);
    out.put_slice(b"\r\n");
}

fn bulk(out: &mut BytesMut, bytes: &[u8]) {
    out.reserve(bytes.len() + 16);
    header(out, b'$', bytes.len());
    out.put_slice(bytes);
    out.put_slice(b"\r\n");
}

fn items_of(out: &mut BytesMut, kind: u8, items: &[Reply], protocol: Protocol) {
    header(out, kind, items.len());
    for item in items {
        item.encode(protocol, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &Reply, p: Protocol) -> String {
        let mut out = BytesMut::new();
        r.encode(p, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn encodings_per_protocol() {
        use Protocol::*;
        assert_eq!(enc(&Reply::OK, Resp2), "+OK\r\n");
        assert_eq!(enc(&Reply::Int(-42), Resp2), ":-42\r\n");
        assert_eq!(
            enc(&Reply::Int(i64::MIN), Resp2),
            ":-9223372036854775808\r\n"
        );
        assert_eq!(enc(&Reply::Null, Resp2), "$-1\r\n");
        assert_eq!(enc(&Reply::Null, Resp3), "_\r\n");
        assert_eq!(enc(&Reply::NullArray, Resp2), "*-1\r\n");
        let map = Reply::Map(vec![(Reply::bulk("a"), Reply::Int(1))]);
        assert_eq!(enc(&map, Resp2), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&map, Resp3), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&Reply::Double(1.5), Resp2), "$3\r\n1.5\r\n");
        assert_eq!(enc(&Reply::Double(1.5), Resp3), ",1.5\r\n");
        assert_eq!(
            enc(&Reply::Verbatim("hi".into()), Resp3),
            "=6\r\ntxt:hi\r\n"
        );
    }
}
