//! Argument parsers shared by every command, with the exact error texts of Redis 7.

/// `value is not an integer or out of range`
pub const ERR_NOT_INTEGER: &str = "ERR value is not an integer or out of range";
/// `value is not a valid float`
pub const ERR_NOT_FLOAT: &str = "ERR value is not a valid float";
/// `syntax error`
pub const ERR_SYNTAX: &str = "ERR syntax error";
/// Operation against a key holding the wrong kind of value.
pub const ERR_WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
/// `increment or decrement would overflow`
pub const ERR_OVERFLOW: &str = "ERR increment or decrement would overflow";

/// Parses a signed 64-bit decimal integer exactly as Redis's `string2ll`: an optional '-',
/// then digits with no leading zero (except "0" itself), no '+', no spaces, no overflow.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let (negative, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || (digits[0] == b'0' && (digits.len() > 1 || negative)) {
        return None;
    }
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(d - b'0');
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(digit)?
        } else {
            value.checked_add(digit)?
        };
    }
    Some(value)
}

/// Parses a float the way Redis's `string2ld` accepts it: no surrounding spaces, not NaN.
/// `inf` and `-inf` are accepted (Redis accepts them as arguments; INCRBYFLOAT then refuses
/// an infinite result).
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(s).ok()?;
    if text.is_empty() || text.trim() != text {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    let value = match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ if lower.contains("inf") || lower.contains("nan") => return None,
        _ => text.parse::<f64>().ok()?,
    };
    if value.is_nan() { None } else { Some(value) }
}

/// Formats a float as Redis does for INCRBYFLOAT (`%.17Lg`, trailing zeros removed): the
/// shortest text that reads back to the same value, never in exponent form for ordinary values.
pub fn format_f64(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if value == value.trunc() && value.abs() < 1e17 {
        return format!("{}", value as i128);
    }
    let text = format!("{value}");
    if text.contains('e') {
        format!("{value:.17}").trim_end_matches('0').to_string()
    } else {
        text
    }
}

/// Formats a float as Redis 7.0 replies with a double (`%.17g`): sorted set scores.
pub fn format_score(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.into();
    }
    if value.is_nan() {
        return "nan".into();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // The exponent %g decides by: that of the value rounded to 17 significant digits.
    let sci = format!("{value:.16e}");
    let (mantissa, exp) = sci.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("an exponent");
    let trim = |t: &str| -> String {
        if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            t.to_string()
        }
    };
    if (-4..17).contains(&exp) {
        trim(&format!("{value:.*}", (16 - exp) as usize))
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_as_redis_7_0() {
        for (v, text) in [
            (1.1, "1.1000000000000001"),
            (1e20, "1e+20"),
            (0.1, "0.10000000000000001"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (1e-5, "1.0000000000000001e-05"),
            (0.30000000000000004, "0.30000000000000004"),
            (1.0, "1"),
            (-2.5, "-2.5"),
            (0.0001, "0.0001"),
            (1e16, "10000000000000000"),
            (1e17, "1e+17"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(format_score(v), text);
        }
    }

    #[test]
    fn integers_as_redis() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"+1",
            b" 1",
            b"1 ",
            b"01",
            b"-0",
            b"9223372036854775808",
            b"1.0",
            b"-",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn floats_as_redis() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"5e3"), Some(5000.0));
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b"abc"), None);
    }

    #[test]
    fn float_format() {
        assert_eq!(format_f64(10.5), "10.5");
        assert_eq!(format_f64(3.0), "3");
        assert_eq!(format_f64(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_f64(5.0e3), "5000");
    }
}
