//! The client's side, for Meridian's own tools (the chaos workload, the demo's client): a
//! command encoded as clients send it, and a RESP2 reply parsed from the front of a buffer.

use crate::frame::ProtocolError;

/// A reply as a RESP2 client reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `+OK` and other simple strings.
    Simple(String),
    /// `-ERR ...`.
    Error(String),
    /// `:n`.
    Int(i64),
    /// `$n` (none for the null bulk string).
    Bulk(Option<Vec<u8>>),
    /// `*n` (empty for the null array).
    Array(Vec<Value>),
}

/// Deepest nesting of arrays accepted in a reply.
const DEPTH_MAX: usize = 32;

/// `args` as a RESP array of bulk strings.
pub fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let mut frame = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        frame.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        frame.extend_from_slice(a);
        frame.extend_from_slice(b"\r\n");
    }
    frame
}

/// One reply from the front of `buf` and the bytes it took; none while `buf` holds only part
/// of one.
pub fn parse_value(buf: &[u8]) -> Result<Option<(Value, usize)>, ProtocolError> {
    parse_at(buf, 0)
}

fn parse_at(buf: &[u8], depth: usize) -> Result<Option<(Value, usize)>, ProtocolError> {
    if depth > DEPTH_MAX {
        return Err(ProtocolError("reply nested too deep"));
    }
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let (Some(&kind), rest) = (buf.first(), &buf[1.min(end)..end]) else {
        return Err(ProtocolError("empty reply"));
    };
    let text = || String::from_utf8_lossy(rest).into_owned();
    let number = || {
        (std::str::from_utf8(rest).ok())
            .and_then(|t| t.parse::<i64>().ok())
            .ok_or(ProtocolError("invalid length in reply"))
    };
    let head = end + 2;
    Ok(Some(match kind {
        b'+' => (Value::Simple(text()), head),
        b'-' => (Value::Error(text()), head),
        b':' => (Value::Int(number()?), head),
        b'$' => match number()? {
            -1 => (Value::Bulk(None), head),
            n if n < 0 => return Err(ProtocolError("invalid bulk length in reply")),
            n => {
                let n = n as usize;
                if buf.len() < head + n + 2 {
                    return Ok(None);
                }
                (
                    Value::Bulk(Some(buf[head..head + n].to_vec())),
                    head + n + 2,
                )
            }
        },
        b'*' => match number()? {
            -1 => (Value::Array(Vec::new()), head),
            n if n < 0 => return Err(ProtocolError("invalid array length in reply")),
            n => {
                let mut items = Vec::new();
                let mut at = head;
                for _ in 0..n {
                    let Some((item, used)) = parse_at(&buf[at..], depth + 1)? else {
                        return Ok(None);
                    };
                    items.push(item);
                    at += used;
                }
                (Value::Array(items), at)
            }
        },
        _ => return Err(ProtocolError("unknown reply type")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_whole_or_wait_for_more() {
        let whole = b"*3\r\n+OK\r\n$3\r\nabc\r\n*2\r\n:-7\r\n$-1\r\n-ERR no\r\n";
        let (value, used) = parse_value(whole).unwrap().unwrap();
        assert_eq!(
            value,
            Value::Array(vec![
                Value::Simple("OK".into()),
                Value::Bulk(Some(b"abc".to_vec())),
                Value::Array(vec![Value::Int(-7), Value::Bulk(None)]),
            ])
        );
        assert_eq!(
            parse_value(&whole[used..]).unwrap().unwrap().0,
            Value::Error("ERR no".into())
        );
        for cut in 0..used {
            assert_eq!(parse_value(&whole[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(parse_value(b"?x\r\n").is_err());
        assert!(parse_value(b"$-5\r\n").is_err());
        assert!(parse_value(&b"*1\r\n".repeat(40)).is_err());
        assert_eq!(
            encode_command(&[b"GET", b"k"]),
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
        );
    }
}
