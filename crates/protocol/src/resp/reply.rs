//! The [`Reply`] value and its encoder, in RESP2 or RESP3.

use std::borrow::Cow;
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::find_byte;

use super::*;

/// A reply value. RESP3-only variants are downgraded for RESP2 clients
/// exactly as Redis does (see [`encode_reply`]).
///
/// `Status` and `Error` take `Cow<'static, str>` so the hot fixed replies
/// (`+OK`, `-ERR syntax error`, ...) allocate nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Simple string, `+OK`.
    Status(Cow<'static, str>),
    /// Error with its prefix, e.g. `ERR unknown command` or `WRONGTYPE ...`.
    /// `\r` and `\n` are replaced by spaces when encoded.
    Error(Cow<'static, str>),
    /// `:<n>`.
    Integer(i64),
    /// Bulk string.
    Bulk(Bytes),
    /// Missing value: RESP2 `$-1`, RESP3 `_`.
    Null,
    /// Missing aggregate: RESP2 `*-1`, RESP3 `_`.
    NullArray,
    /// `*<n>`.
    Array(Vec<Reply>),
    /// RESP3 `%<n>`; RESP2 flat array `k1 v1 k2 v2 ...`.
    Map(Vec<(Reply, Reply)>),
    /// RESP3 `~<n>`; RESP2 array.
    Set(Vec<Reply>),
    /// RESP3 out-of-band `><n>`; RESP2 array.
    Push(Vec<Reply>),
    /// RESP3 `,<x>`; RESP2 bulk string of the same text.
    Double(f64),
    /// RESP3 `#t`/`#f`; RESP2 integer 1/0.
    Boolean(bool),
    /// RESP3 `(<digits>`; RESP2 bulk string.
    BigNumber(Bytes),
    /// RESP3 `=<len>\r\n<fmt>:<text>`; RESP2 bulk string of `text`.
    Verbatim {
        /// Three-byte format, `txt` or `mkd`.
        format: [u8; 3],
        /// The text without the format prefix.
        text: Bytes,
    },
}

impl Reply {
    /// `+OK`.
    pub const fn ok() -> Reply {
        Reply::Status(Cow::Borrowed("OK"))
    }

    /// A status reply.
    pub fn status(text: impl Into<Cow<'static, str>>) -> Reply {
        Reply::Status(text.into())
    }

    /// An error reply; `text` includes the prefix (`ERR ...`).
    pub fn error(text: impl Into<Cow<'static, str>>) -> Reply {
        Reply::Error(text.into())
    }

    /// A bulk string reply.
    pub fn bulk(bytes: impl Into<Bytes>) -> Reply {
        Reply::Bulk(bytes.into())
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

/// Appends `reply` to `out` in the given protocol version.
///
/// RESP2 downgrades, as Redis does: Map -> flat array, Set/Push -> array,
/// Double/BigNumber/Verbatim -> bulk string, Boolean -> integer 1/0,
/// Null -> `$-1`, NullArray -> `*-1`.
pub fn encode_reply(reply: &Reply, version: ProtocolVersion, out: &mut BytesMut) {
    let resp3 = version == ProtocolVersion::Resp3;
    match reply {
        Reply::Status(text) => put_simple_line(out, b'+', text.as_bytes()),
        Reply::Error(text) => put_simple_line(out, b'-', text.as_bytes()),
        Reply::Integer(n) => put_integer_line(out, b':', *n),
        Reply::Bulk(bytes) => put_bulk(out, bytes),
        Reply::Null if resp3 => out.put_slice(b"_\r\n"),
        Reply::NullArray if resp3 => out.put_slice(b"_\r\n"),
        Reply::Null => out.put_slice(b"$-1\r\n"),
        Reply::NullArray => out.put_slice(b"*-1\r\n"),
        Reply::Array(items) => encode_aggregate(out, b'*', items, version),
        Reply::Set(items) => encode_aggregate(out, if resp3 { b'~' } else { b'*' }, items, version),
        Reply::Push(items) => {
            encode_aggregate(out, if resp3 { b'>' } else { b'*' }, items, version)
        }
        Reply::Map(pairs) => {
            if resp3 {
                put_length_line(out, b'%', pairs.len());
            } else {
                put_length_line(out, b'*', pairs.len().saturating_mul(2));
            }
            for (key, value) in pairs {
                encode_reply(key, version, out);
                encode_reply(value, version, out);
            }
        }
        Reply::Double(value) => {
            let mut text = DoubleText::default();
            text.format(*value);
            if resp3 {
                put_simple_line(out, b',', text.as_bytes());
            } else {
                put_bulk(out, text.as_bytes());
            }
        }
        Reply::Boolean(value) => match (resp3, value) {
            (true, true) => out.put_slice(b"#t\r\n"),
            (true, false) => out.put_slice(b"#f\r\n"),
            (false, true) => out.put_slice(b":1\r\n"),
            (false, false) => out.put_slice(b":0\r\n"),
        },
        Reply::BigNumber(digits) => {
            if resp3 {
                put_simple_line(out, b'(', digits);
            } else {
                put_bulk(out, digits);
            }
        }
        Reply::Verbatim { format, text } => {
            if resp3 {
                put_length_line(out, b'=', text.len() + 4);
                out.reserve(text.len() + 6);
                out.put_slice(format);
                out.put_u8(b':');
                out.put_slice(text);
                out.put_slice(b"\r\n");
            } else {
                put_bulk(out, text);
            }
        }
    }
}

fn encode_aggregate(out: &mut BytesMut, marker: u8, items: &[Reply], version: ProtocolVersion) {
    put_length_line(out, marker, items.len());
    for item in items {
        encode_reply(item, version, out);
    }
}

/// Writes `<marker><text>\r\n`, replacing any `\r`/`\n` in `text` with a
/// space so a message can never inject a second reply.
fn put_simple_line(out: &mut BytesMut, marker: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(marker);
    if text.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend(
            text.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    } else {
        out.put_slice(text);
    }
    out.put_slice(b"\r\n");
}

pub(super) fn put_bulk(out: &mut BytesMut, bytes: &[u8]) {
    out.reserve(bytes.len() + 24);
    put_length_line(out, b'$', bytes.len());
    out.put_slice(bytes);
    out.put_slice(b"\r\n");
}

pub(super) fn put_length_line(out: &mut BytesMut, marker: u8, len: usize) {
    let mut digits = [0u8; 20];
    let text = format_u64(len as u64, &mut digits);
    out.reserve(text.len() + 3);
    out.put_u8(marker);
    out.put_slice(text);
    out.put_slice(b"\r\n");
}

fn put_integer_line(out: &mut BytesMut, marker: u8, value: i64) {
    let mut digits = [0u8; 20];
    let text = format_u64(value.unsigned_abs(), &mut digits);
    out.reserve(text.len() + 4);
    out.put_u8(marker);
    if value < 0 {
        out.put_u8(b'-');
    }
    out.put_slice(text);
    out.put_slice(b"\r\n");
}

/// Decimal digits of `value`, written right-aligned into `buf` (20 bytes
/// hold `u64::MAX`); avoids `fmt` machinery on the hot path.
fn format_u64(mut value: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        if let Some(slot) = buf.get_mut(start) {
            *slot = b'0' + (value % 10) as u8;
        }
        value /= 10;
        if value == 0 || start == 0 {
            break;
        }
    }
    buf.get(start..).unwrap_or_default()
}

/// A double formatted like Redis's `d2string` (RESP3 `,` replies and their
/// RESP2 bulk form): `inf`, `-inf`, `nan`, `0`/`-0`, integral values in
/// ±2^62 as plain integers, everything else as the shortest round-tripping
/// decimal in `fpconv_dtoa`'s layout (`1.5`, `0.001`, `1e+300`, `1.5e-07`).
#[derive(Default)]
pub(super) struct DoubleText {
    buf: [u8; 32],
    len: usize,
}

impl DoubleText {
    pub(super) fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
    }

    pub(super) fn format(&mut self, value: f64) {
        const INTEGRAL_ABS_MAX: f64 = (i64::MAX / 2) as f64;
        if value.is_nan() {
            self.push(b"nan");
        } else if value.is_infinite() {
            self.push(if value < 0.0 { b"-inf" } else { b"inf" });
        } else if value == 0.0 {
            self.push(if value.is_sign_negative() {
                b"-0"
            } else {
                b"0"
            });
        } else if (-INTEGRAL_ABS_MAX..=INTEGRAL_ABS_MAX).contains(&value) && value.fract() == 0.0 {
            let mut digits = [0u8; 20];
            if value < 0.0 {
                self.push(b"-");
            }
            // Exact: |value| is integral and below 2^62.
            let text = format_u64(value.abs() as u64, &mut digits);
            self.push(text);
        } else {
            self.format_shortest(value);
        }
    }

    /// The shortest round-tripping digits of `value` (Rust's `{:e}` finds
    /// them), laid out as fpconv's `emit_digits` does.
    fn format_shortest(&mut self, value: f64) {
        let Some(shortest) = ShortestDigits::of(value.abs()) else {
            return;
        };
        if value < 0.0 {
            self.push(b"-");
        }
        self.emit_digits(shortest.digits(), shortest.k);
    }

    /// fpconv's `emit_digits`, case by case in its order (so the two can be
    /// compared line by line): the number `digits * 10^k` as an integer
    /// with trailing zeros, a plain decimal fraction, or in scientific
    /// notation with an exponent of at least two digits.
    fn emit_digits(&mut self, digits: &[u8], k: i64) {
        let ndigits = digits.len() as i64;
        let exp_abs = (k + ndigits - 1).abs();
        if k >= 0 && exp_abs < ndigits + 7 {
            self.push(digits);
            for _ in 0..k {
                self.push(b"0");
            }
            return;
        }
        if k < 0 && (k > -7 || exp_abs < 4) {
            let offset = ndigits + k;
            if offset <= 0 {
                self.push(b"0.");
                for _ in 0..-offset {
                    self.push(b"0");
                }
                self.push(digits);
            } else {
                let (int_part, frac_part) = digits.split_at((offset as usize).min(digits.len()));
                self.push(int_part);
                self.push(b".");
                self.push(frac_part);
            }
            return;
        }
        let (first, rest) = digits.split_at(digits.len().min(1));
        self.push(first);
        if !rest.is_empty() {
            self.push(b".");
            self.push(rest);
        }
        self.push(if k + ndigits - 1 < 0 { b"e-" } else { b"e+" });
        let mut exp_digits = [0u8; 20];
        let exp_text = format_u64(exp_abs.unsigned_abs(), &mut exp_digits);
        // fpconv pads exponents to two digits ("e+05"); keep its layout.
        if exp_text.len() < 2 {
            self.push(b"0");
        }
        self.push(exp_text);
    }
}

/// A non-negative double's shortest round-tripping decimal digits: the
/// value is `digits * 10^k`.
struct ShortestDigits {
    buf: [u8; 24],
    len: usize,
    k: i64,
}

impl ShortestDigits {
    /// `None` only if `{:e}` does not fit the fixed buffer (it always
    /// does for an f64).
    fn of(value: f64) -> Option<ShortestDigits> {
        let mut scientific = FmtBuf::default();
        fmt::write(&mut scientific, format_args!("{value:e}")).ok()?;
        let text = scientific.as_bytes();
        let (mantissa, exponent) = match find_byte(b'e', text) {
            Some(e) => (
                text.get(..e).unwrap_or_default(),
                text.get(e + 1..).unwrap_or_default(),
            ),
            None => (text, b"0".as_slice()),
        };
        let mut shortest = ShortestDigits {
            buf: [0u8; 24],
            len: 0,
            k: 0,
        };
        for &b in mantissa.iter().filter(|b| b.is_ascii_digit()) {
            if let Some(slot) = shortest.buf.get_mut(shortest.len) {
                *slot = b;
                shortest.len += 1;
            }
        }
        let exponent: i64 = std::str::from_utf8(exponent)
            .ok()
            .and_then(|e| e.parse().ok())
            .unwrap_or(0);
        // `{:e}` puts one digit before the point: value = d.ddd * 10^exponent.
        shortest.k = exponent - (shortest.len as i64 - 1);
        Some(shortest)
    }

    fn digits(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// Fixed-size `fmt::Write` sink, to format a double without allocating.
#[derive(Default)]
struct FmtBuf {
    buf: [u8; 32],
    len: usize,
}

impl FmtBuf {
    pub(super) fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

impl fmt::Write for FmtBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let slot = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
