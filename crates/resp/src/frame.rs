//! Splitting a byte stream into commands.
//!
//! [`parse_command`] looks at the front of a buffer. When a whole command is there it removes
//! it and returns its arguments as [`Bytes`] that share the buffer's memory (no copy); when more
//! bytes are needed it leaves the buffer alone and returns `Ok(None)`. Malformed input returns
//! a [`ProtocolError`]: the caller answers it and closes the connection, as Redis does, because
//! after a framing error nothing later in the stream can be trusted.

use bytes::{Buf, Bytes, BytesMut};

/// Bounds on what one command may contain. Defaults are Redis 7's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string (`proto-max-bulk-len`): 512 MiB.
    pub max_bulk_len: usize,
    /// Most elements in one command's array.
    pub max_multibulk_len: usize,
    /// Longest inline command line, and longest `*`/`$` header line: 64 KiB.
    pub max_inline_len: usize,
    /// The client has not logged in: errors say so, as Redis's do.
    pub unauthenticated: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_multibulk_len: 1024 * 1024,
            max_inline_len: 64 * 1024,
            unauthenticated: false,
        }
    }
}

impl Limits {
    /// What a client that has not logged in may send, as Redis bounds it: 10 arguments of
    /// at most 16 KiB each.
    pub fn unauthenticated() -> Limits {
        Limits {
            max_bulk_len: 16 * 1024,
            max_multibulk_len: 10,
            unauthenticated: true,
            ..Limits::default()
        }
    }
}

/// A framing error. The text is what Redis answers after `-ERR `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub &'static str);

/// Removes one command from the front of `buf`.
///
/// Returns `Ok(Some(args))` for a command, `Ok(None)` when the buffer holds only part of one
/// (nothing is consumed), and skips empty commands (`*0`, `*-1`, blank inline lines) by
/// consuming them and looking at what follows. `args` is never empty.
pub fn parse_command(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    loop {
        if buf.is_empty() {
            return Ok(None);
        }
        let parsed = if buf[0] == b'*' {
            parse_multibulk(buf, limits)?
        } else {
            parse_inline(buf, limits)?
        };
        match parsed {
            Parsed::Incomplete => return Ok(None),
            Parsed::Empty => continue,
            Parsed::Command(args) => return Ok(Some(args)),
        }
    }
}

enum Parsed {
    Incomplete,
    /// A command with no arguments, already consumed.
    Empty,
    Command(Vec<Bytes>),
}

/// Finds the `\r\n`-terminated line starting at `from`; returns the index of its `\r`.
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let newline = buf[from..].iter().position(|&b| b == b'\n')? + from;
    // A header line must end in "\r\n"; Redis searches for '\r' and requires '\n' after it.
    if newline > from && buf[newline - 1] == b'\r' {
        Some(newline - 1)
    } else {
        Some(usize::MAX)
    }
}

/// Parses a decimal integer the way Redis's `string2ll` does: optional '-', digits, no spaces,
/// no leading '+', no overflow.
fn parse_int(digits: &[u8]) -> Option<i64> {
    crate::args::parse_i64(digits)
}

fn parse_multibulk(buf: &mut BytesMut, limits: &Limits) -> Result<Parsed, ProtocolError> {
    let Some(end) = find_crlf(buf, 1) else {
        if buf.len() > limits.max_inline_len {
            return Err(ProtocolError("too big mbulk count string"));
        }
        return Ok(Parsed::Incomplete);
    };
    if end == usize::MAX {
        return Err(ProtocolError("invalid multibulk length"));
    }
    let count = parse_int(&buf[1..end]).ok_or(ProtocolError("invalid multibulk length"))?;
    if count > limits.max_multibulk_len as i64 {
        return Err(ProtocolError(match limits.unauthenticated {
            true => "unauthenticated multibulk length",
            false => "invalid multibulk length",
        }));
    }
    if count <= 0 {
        buf.advance(end + 2);
        return Ok(Parsed::Empty);
    }
    let count = count as usize;
    // First pass: find where each argument lies without consuming, so that an incomplete
    // command leaves the buffer as it was.
    let mut spans = Vec::with_capacity(count.min(1024));
    let mut pos = end + 2;
    for _ in 0..count {
        if pos >= buf.len() {
            return Ok(Parsed::Incomplete);
        }
        if buf[pos] != b'$' {
            return Err(ProtocolError(expected_dollar(buf[pos])));
        }
        let Some(line_end) = find_crlf(buf, pos + 1) else {
            if buf.len() - pos > limits.max_inline_len {
                return Err(ProtocolError("too big bulk count string"));
            }
            return Ok(Parsed::Incomplete);
        };
        if line_end == usize::MAX {
            return Err(ProtocolError("invalid bulk length"));
        }
        let len = parse_int(&buf[pos + 1..line_end]).ok_or(ProtocolError("invalid bulk length"))?;
        if len as u64 > limits.max_bulk_len as u64 && limits.unauthenticated {
            return Err(ProtocolError("unauthenticated bulk length"));
        }
        if len < 0 || len as u64 > limits.max_bulk_len as u64 {
            return Err(ProtocolError("invalid bulk length"));
        }
        let start = line_end + 2;
        let stop = start + len as usize;
        if buf.len() < stop + 2 {
            return Ok(Parsed::Incomplete);
        }
        if &buf[stop..stop + 2] != b"\r\n" {
            return Err(ProtocolError("invalid bulk format"));
        }
        spans.push((start, stop));
        pos = stop + 2;
    }
    let frame = buf.split_to(pos).freeze();
    Ok(Parsed::Command(
        spans.into_iter().map(|(a, b)| frame.slice(a..b)).collect(),
    ))
}

/// Redis names the byte it found instead of '$' (`expected '$', got 'f'`).
fn expected_dollar(found: u8) -> &'static str {
    // One text per byte, made once: the error type holds a `&'static str`.
    static TEXTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let texts = TEXTS.get_or_init(|| {
        (0..=255u8)
            .map(|b| format!("expected '$', got '{}'", b as char))
            .collect()
    });
    &texts[usize::from(found)]
}

fn parse_inline(buf: &mut BytesMut, limits: &Limits) -> Result<Parsed, ProtocolError> {
    let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > limits.max_inline_len {
            return Err(ProtocolError("too big inline request"));
        }
        return Ok(Parsed::Incomplete);
    };
    if newline > limits.max_inline_len {
        return Err(ProtocolError("too big inline request"));
    }
    let line = buf.split_to(newline + 1);
    let mut text = &line[..newline];
    if text.last() == Some(&b'\r') {
        text = &text[..text.len() - 1];
    }
    let args = split_inline(text).ok_or(ProtocolError("unbalanced quotes in request"))?;
    if args.is_empty() {
        return Ok(Parsed::Empty);
    }
    if args.len() > limits.max_multibulk_len {
        return Err(ProtocolError("invalid multibulk length"));
    }
    Ok(Parsed::Command(args.into_iter().map(Bytes::from).collect()))
}

/// Splits an inline line into arguments as Redis's `sdssplitargs` does: white space separates,
/// "double quotes" take escapes (`\n`, `\xHH`, ...), 'single quotes' take only `\'`. Returns
/// `None` on unbalanced quotes or a closing quote not followed by white space.
pub fn split_inline(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            return Some(args);
        }
        let mut arg = Vec::new();
        match line[i] {
            b'"' => {
                i += 1;
                loop {
                    let &c = line.get(i)?;
                    if c == b'"' {
                        i += 1;
                        break;
                    }
                    if c == b'\\' && i + 3 < line.len() && line[i + 1] == b'x' {
                        let hex = |b: u8| (b as char).to_digit(16);
                        if let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3])) {
                            arg.push((h * 16 + l) as u8);
                            i += 4;
                            continue;
                        }
                    }
                    if c == b'\\' && i + 1 < line.len() {
                        arg.push(match line[i + 1] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            other => other,
                        });
                        i += 2;
                        continue;
                    }
                    arg.push(c);
                    i += 1;
                }
                if i < line.len() && !line[i].is_ascii_whitespace() {
                    return None;
                }
            }
            b'\'' => {
                i += 1;
                loop {
                    let &c = line.get(i)?;
                    if c == b'\'' {
                        i += 1;
                        break;
                    }
                    if c == b'\\' && line.get(i + 1) == Some(&b'\'') {
                        arg.push(b'\'');
                        i += 2;
                        continue;
                    }
                    arg.push(c);
                    i += 1;
                }
                if i < line.len() && !line[i].is_ascii_whitespace() {
                    return None;
                }
            }
            _ => {
                while i < line.len() && !line[i].is_ascii_whitespace() {
                    arg.push(line[i]);
                    i += 1;
                }
            }
        }
        args.push(arg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(args) = parse_command(&mut buf, &Limits::default())? {
            out.push(args.iter().map(|a| a.to_vec()).collect());
        }
        Ok(out)
    }

    #[test]
    fn a_client_not_logged_in_sends_ten_arguments_of_16_kib_at_most() {
        let limits = Limits::unauthenticated();
        let mut many = BytesMut::from(&b"*11\r\n"[..]);
        assert_eq!(
            parse_command(&mut many, &limits),
            Err(ProtocolError("unauthenticated multibulk length"))
        );
        let mut big = BytesMut::from(&b"*2\r\n$4\r\nauth\r\n$16385\r\n"[..]);
        assert_eq!(
            parse_command(&mut big, &limits),
            Err(ProtocolError("unauthenticated bulk length"))
        );
        let mut fits = BytesMut::from(&b"*2\r\n$4\r\nauth\r\n$2\r\npw\r\n"[..]);
        assert!(matches!(parse_command(&mut fits, &limits), Ok(Some(_))));
    }

    #[test]
    fn multibulk_and_pipelining() {
        let got = parse_all(b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n").unwrap();
        assert_eq!(
            got,
            vec![vec![b"PING".to_vec()], vec![b"GET".to_vec(), b"k".to_vec()]]
        );
    }

    #[test]
    fn binary_safe_bulk() {
        let got = parse_all(b"*2\r\n$3\r\nSET\r\n$4\r\na\r\nb\r\n").unwrap();
        assert_eq!(got[0][1], b"a\r\nb".to_vec());
    }

    #[test]
    fn incomplete_consumes_nothing() {
        let full = b"*2\r\n$3\r\nGET\r\n$5\r\nhello\r\n";
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(
                parse_command(&mut buf, &Limits::default()),
                Ok(None),
                "cut at {cut}"
            );
            assert_eq!(&buf[..], &full[..cut]);
        }
    }

    #[test]
    fn inline_with_quotes() {
        let got = parse_all(b"set \"a b\" 'c\\'d' \"\\x41\\n\"\r\n\r\nPING\n").unwrap();
        assert_eq!(
            got[0],
            vec![
                b"set".to_vec(),
                b"a b".to_vec(),
                b"c'd".to_vec(),
                b"A\n".to_vec()
            ]
        );
        assert_eq!(got[1], vec![b"PING".to_vec()]);
    }

    #[test]
    fn errors_match_redis() {
        assert_eq!(
            parse_all(b"*x\r\n"),
            Err(ProtocolError("invalid multibulk length"))
        );
        assert_eq!(
            parse_all(b"*1\r\n$x\r\n"),
            Err(ProtocolError("invalid bulk length"))
        );
        assert_eq!(
            parse_all(b"*1\r\n$-1\r\n"),
            Err(ProtocolError("invalid bulk length"))
        );
        assert_eq!(
            parse_all(b"*1\r\n:1\r\n"),
            Err(ProtocolError("expected '$', got ':'"))
        );
        // Whatever byte stands where '$' should, as Redis names it.
        assert_eq!(
            parse_all(b"*1\r\nfoo\r\n"),
            Err(ProtocolError("expected '$', got 'f'"))
        );
        assert_eq!(
            parse_all(b"set \"a\r\n"),
            Err(ProtocolError("unbalanced quotes in request"))
        );
        assert_eq!(
            parse_all(b"*1\r\n$1\r\nab\r\n"),
            Err(ProtocolError("invalid bulk format"))
        );
        let limits = Limits {
            max_bulk_len: 4,
            max_multibulk_len: 2,
            max_inline_len: 16,
            unauthenticated: false,
        };
        let mut big = BytesMut::from(&b"*1\r\n$5\r\n"[..]);
        assert_eq!(
            parse_command(&mut big, &limits),
            Err(ProtocolError("invalid bulk length"))
        );
        let mut many = BytesMut::from(&b"*3\r\n"[..]);
        assert_eq!(
            parse_command(&mut many, &limits),
            Err(ProtocolError("invalid multibulk length"))
        );
        let mut long = BytesMut::from(&[b'a'; 17][..]);
        assert_eq!(
            parse_command(&mut long, &limits),
            Err(ProtocolError("too big inline request"))
        );
    }

    #[test]
    fn empty_commands_are_skipped() {
        assert_eq!(
            parse_all(b"*0\r\n*-1\r\n\r\n*1\r\n$1\r\nx\r\n").unwrap(),
            vec![vec![b"x".to_vec()]]
        );
    }

    fn encode(args: &[Vec<u8>]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    proptest! {
        /// Fuzzing the parser with arbitrary bytes: it never panics, and whatever it accepts it
        /// consumes (no endless loop on the same bytes).
        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut buf = BytesMut::from(&input[..]);
            let limits = Limits { max_bulk_len: 64, max_multibulk_len: 8, max_inline_len: 128, unauthenticated: false };
            let mut guard = 0;
            while let Ok(Some(args)) = parse_command(&mut buf, &limits) {
                prop_assert!(!args.is_empty());
                guard += 1;
                prop_assert!(guard <= input.len());
            }
        }

        /// Mutating a valid frame in one byte never panics.
        #[test]
        fn mutated_frames_never_panic(
            args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 1..5),
            at in any::<prop::sample::Index>(), byte in any::<u8>())
        {
            let mut bytes = encode(&args);
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let mut buf = BytesMut::from(&bytes[..]);
            let _ = parse_command(&mut buf, &Limits::default());
        }

        /// Any command encoded as a RESP array parses back to itself, however it is split
        /// across reads.
        #[test]
        fn roundtrip_in_pieces(
            args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6),
            cut in any::<prop::sample::Index>())
        {
            let bytes = encode(&args);
            let cut = cut.index(bytes.len());
            let mut buf = BytesMut::from(&bytes[..cut]);
            let first = parse_command(&mut buf, &Limits::default()).unwrap();
            prop_assert!(first.is_none());
            buf.extend_from_slice(&bytes[cut..]);
            let got = parse_command(&mut buf, &Limits::default()).unwrap().unwrap();
            prop_assert_eq!(got.iter().map(|b| b.to_vec()).collect::<Vec<_>>(), args);
            prop_assert!(buf.is_empty());
        }
    }
}
