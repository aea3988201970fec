//! Requests: the server's parser (RESP arrays and inline commands) and the
//! client's encoder.

use std::ops::ControlFlow;

use bytes::{Buf, Bytes, BytesMut};

use crate::find_byte;

use super::reply::{put_bulk, put_length_line};
use super::*;

/// Parses one request from the front of `buf` (see [`RequestParser::parse`]).
///
/// Stateless: a request arriving in many small reads is re-scanned from its
/// start on every call. Servers should keep a [`RequestParser`] per
/// connection instead, which resumes where it stopped.
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &RequestLimits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    RequestParser::default().parse(buf, limits)
}

/// Incremental request parser; keep one per connection.
///
/// Between calls the caller must only *append* to the buffer (or call
/// [`RequestParser::reset`]): the parser remembers how far into the buffer
/// it has already validated, so a large request arriving in many reads is
/// scanned once, not once per read.
#[derive(Debug, Default)]
pub struct RequestParser {
    pending: Option<Pending>,
    /// Argument byte ranges of the multibulk request being parsed, relative
    /// to the buffer start. Kept across requests to reuse its allocation.
    spans: Vec<(usize, usize)>,
    /// See [`RequestParser::pending_frame_bytes`].
    pending_frame_bytes: usize,
}

#[derive(Debug, Clone, Copy)]
enum Pending {
    /// A multibulk request whose header (`*<n>\r\n`) ended before `pos` and
    /// whose first `spans.len()` arguments are complete.
    Multibulk { args_count: usize, pos: usize },
    /// An inline command whose first `scanned_bytes` bytes hold no `\n`.
    Inline { scanned_bytes: usize },
}

enum Step {
    Incomplete,
    /// Consumed an empty request (`*0`, `*-1`, blank inline line).
    Skipped,
    Request(Vec<Bytes>),
}

/// Longest inline command line, as Redis's `PROTO_INLINE_MAX_SIZE`: inline
/// commands are for humans and benchmarks; real clients send multibulk.
/// Without it a client that never sends `\n` could make the server buffer
/// a whole request-size worth of bytes per connection.
pub const INLINE_REQUEST_BYTES_MAX: usize = 64 * 1024;

/// Longest run of digits accepted in a length header. `i64::MAX` has 19
/// digits; anything longer is rejected without waiting for `\r\n`.
const LENGTH_DIGITS_MAX: usize = 19;

impl RequestParser {
    /// A parser with no partial request.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets any partially parsed request; call after modifying the buffer
    /// in any way other than appending.
    pub fn reset(&mut self) {
        self.pending = None;
        self.spans.clear();
        self.pending_frame_bytes = 0;
    }

    /// After `parse` returned `Ok(None)`: the buffer length the request
    /// needs at least, when the header of an argument whose payload has
    /// not all arrived declared it (through that argument's end); 0
    /// otherwise. A server can reserve a large payload's room once, and
    /// account for it, instead of growing the buffer by doubling (each
    /// doubling copies, and the allocator may keep every smaller copy).
    pub fn pending_frame_bytes(&self) -> usize {
        self.pending_frame_bytes
    }

    /// Parses one request from the front of `buf`.
    ///
    /// * `Ok(None)`: the buffer holds only a prefix of a request, which was
    ///   not consumed (empty requests before it were). A prefix of a valid
    ///   request never yields an error.
    /// * `Ok(Some(args))`: the request was split off the buffer; `args` are
    ///   zero-copy slices of it and never empty.
    ///
    /// Accepts RESP multibulk requests (`*<n>\r\n$<len>\r\n<bytes>\r\n...`)
    /// and inline commands (a line not starting with `*`, split like
    /// `redis-cli` with `"..."` / `'...'` quoting). Empty requests (`*0`,
    /// `*-1`, blank lines) are consumed and skipped, as Redis does.
    ///
    /// After an error the connection is unusable: reply with the error and
    /// close, since the stream position is lost.
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
        limits: &RequestLimits,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        self.pending_frame_bytes = 0;
        loop {
            let Some(&first) = buf.first() else {
                self.reset();
                return Ok(None);
            };
            let step = if first == b'*' {
                self.parse_multibulk(buf, limits)
            } else {
                self.parse_inline(buf, limits)
            };
            match step {
                Ok(Step::Incomplete) => return Ok(None),
                Ok(Step::Skipped) => continue,
                Ok(Step::Request(args)) => return Ok(Some(args)),
                Err(err) => {
                    self.reset();
                    return Err(err);
                }
            }
        }
    }

    /// A multibulk request, resumed where the last call stopped: its
    /// header, then one bulk argument at a time until all have arrived.
    fn parse_multibulk(
        &mut self,
        buf: &mut BytesMut,
        limits: &RequestLimits,
    ) -> Result<Step, ProtocolError> {
        let (args_count, mut pos) = match self.resume_multibulk(buf) {
            Some(resumed) => resumed,
            None => match self.start_multibulk(buf, limits)? {
                ControlFlow::Continue(started) => started,
                ControlFlow::Break(step) => return Ok(step),
            },
        };
        while self.spans.len() < args_count {
            match read_bulk(buf, pos, limits)? {
                Bulk::Complete { data_start, end } => {
                    self.spans.push((data_start, end - 2));
                    pos = end;
                }
                Bulk::Incomplete { frame_bytes } => {
                    // Re-reading this short header next time is cheaper than
                    // remembering it; the payload is never re-scanned.
                    self.pending = Some(Pending::Multibulk { args_count, pos });
                    self.pending_frame_bytes = frame_bytes;
                    return Ok(Step::Incomplete);
                }
            }
        }
        debug_assert_eq!(self.spans.len(), args_count);
        let frame = buf.split_to(pos).freeze();
        let args = self
            .spans
            .drain(..)
            .map(|(start, end)| frame.slice(start..end))
            .collect();
        Ok(Step::Request(args))
    }

    /// The arguments count and the position to go on from, if a call
    /// stopped inside this request.
    fn resume_multibulk(&mut self, buf: &BytesMut) -> Option<(usize, usize)> {
        match self.pending.take() {
            // The bounds check keeps a contract violation (buffer shrunk
            // between calls) from turning into an out-of-range slice.
            Some(Pending::Multibulk { args_count, pos })
                if pos <= buf.len() && self.spans.len() <= args_count =>
            {
                Some((args_count, pos))
            }
            _ => None,
        }
    }

    /// Reads the header `*<n>\r\n`: `Continue((n, header_end))`, or
    /// `Break(step)` when there is no argument to read (incomplete
    /// header, or an empty request, consumed).
    fn start_multibulk(
        &mut self,
        buf: &mut BytesMut,
        limits: &RequestLimits,
    ) -> Result<ControlFlow<Step, (usize, usize)>, ProtocolError> {
        self.spans.clear();
        let Some((count, header_end)) =
            read_length_line(buf, 1, ProtocolError::InvalidMultibulkLength)?
        else {
            return Ok(ControlFlow::Break(Step::Incomplete));
        };
        if count <= 0 {
            buf.advance(header_end);
            return Ok(ControlFlow::Break(Step::Skipped));
        }
        let count_u64 = count.unsigned_abs();
        let args_count = usize::try_from(count_u64)
            .ok()
            .filter(|&n| n <= limits.args_count_max)
            .ok_or(ProtocolError::TooManyArgs {
                count: count_u64,
                count_max: limits.args_count_max,
            })?;
        // Reserve little up front: the count is untrusted until the
        // arguments actually arrive.
        self.spans.reserve(args_count.min(64));
        Ok(ControlFlow::Continue((args_count, header_end)))
    }

    fn parse_inline(
        &mut self,
        buf: &mut BytesMut,
        limits: &RequestLimits,
    ) -> Result<Step, ProtocolError> {
        let scanned = match self.pending.take() {
            Some(Pending::Inline { scanned_bytes }) if scanned_bytes <= buf.len() => scanned_bytes,
            _ => 0,
        };
        // A line may hold inline_max bytes before its '\n'.
        let inline_max = limits.request_size_bytes_max.min(INLINE_REQUEST_BYTES_MAX);
        let search_end = buf.len().min(inline_max.saturating_add(1));
        let newline = buf
            .get(scanned..search_end)
            .and_then(|window| find_byte(b'\n', window))
            .map(|offset| scanned + offset);
        let Some(newline) = newline else {
            if buf.len() > inline_max {
                return Err(ProtocolError::InlineTooLarge {
                    size_bytes_max: inline_max,
                });
            }
            self.pending = Some(Pending::Inline {
                scanned_bytes: search_end,
            });
            return Ok(Step::Incomplete);
        };
        let frame = buf.split_to(newline + 1).freeze();
        let line_end = match newline.checked_sub(1) {
            Some(cr) if frame.get(cr) == Some(&b'\r') => cr,
            _ => newline,
        };
        let args = split_inline_args(&frame.slice(..line_end), limits)?;
        if args.is_empty() {
            return Ok(Step::Skipped);
        }
        Ok(Step::Request(args))
    }
}

/// One bulk argument of a multibulk request, as far as it has arrived.
enum Bulk {
    /// Not all here yet. `frame_bytes`: the buffer length the request
    /// needs at least, once the argument's header declared its length;
    /// 0 before (see [`RequestParser::pending_frame_bytes`]).
    Incomplete { frame_bytes: usize },
    /// The payload starts at `data_start`; `end` is past its `\r\n`.
    Complete { data_start: usize, end: usize },
}

/// Reads the bulk argument `$<len>\r\n<bytes>\r\n` at `buf[pos]`. The
/// size limit is checked on the declared length, before waiting for (or
/// allocating room for) the payload.
#[inline]
fn read_bulk(buf: &[u8], pos: usize, limits: &RequestLimits) -> Result<Bulk, ProtocolError> {
    let Some(&marker) = buf.get(pos) else {
        return Ok(Bulk::Incomplete { frame_bytes: 0 });
    };
    if marker != b'$' {
        return Err(ProtocolError::ExpectedBulk(marker));
    }
    let Some((len, data_start)) = read_length_line(buf, pos + 1, ProtocolError::InvalidBulkLength)?
    else {
        return Ok(Bulk::Incomplete { frame_bytes: 0 });
    };
    if len < 0 {
        return Err(ProtocolError::InvalidBulkLength);
    }
    let end = (data_start as u64)
        .saturating_add(len.unsigned_abs())
        .saturating_add(2);
    if end > limits.request_size_bytes_max as u64 {
        return Err(ProtocolError::RequestTooLarge {
            size_bytes: end,
            size_bytes_max: limits.request_size_bytes_max,
        });
    }
    // `end` fits in usize: it is at most request_size_bytes_max.
    let end = end as usize;
    if buf.len() < end {
        return Ok(Bulk::Incomplete { frame_bytes: end });
    }
    if buf.get(end - 2..end) != Some(b"\r\n".as_slice()) {
        return Err(ProtocolError::MissingCrlf);
    }
    Ok(Bulk::Complete { data_start, end })
}

/// Parses `[-]<digits>\r\n` starting at `buf[start]`; returns the value and
/// the index just past `\n`, or `None` if the line is not complete yet.
///
/// Strict like Redis's `string2ll`: no sign other than a leading `-`, no
/// leading zeros, no empty number. Bounded: at most 19 digits are examined.
pub(super) fn read_length_line(
    buf: &[u8],
    start: usize,
    err: ProtocolError,
) -> Result<Option<(i64, usize)>, ProtocolError> {
    let line = buf.get(start..).unwrap_or_default();
    let negative = line.first() == Some(&b'-');
    let digits_start = usize::from(negative);
    let mut value: i64 = 0;
    let mut i = digits_start;
    loop {
        match line.get(i) {
            None => return Ok(None),
            Some(&b) if b.is_ascii_digit() => {
                if i - digits_start >= LENGTH_DIGITS_MAX {
                    return Err(err);
                }
                value = value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(i64::from(b - b'0')))
                    .ok_or_else(|| err.clone())?;
                i += 1;
            }
            Some(b'\r') => break,
            Some(_) => return Err(err),
        }
    }
    let digits = line.get(digits_start..i).unwrap_or_default();
    let leading_zero = digits.len() > 1 && digits.first() == Some(&b'0');
    if digits.is_empty() || leading_zero || (negative && value == 0) {
        return Err(err);
    }
    match line.get(i + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((if negative { -value } else { value }, start + i + 2))),
        Some(_) => Err(err),
    }
}

/// Separators of inline arguments (Redis's `sdssplitargs`, plus NUL which
/// ends the C string there).
fn is_inline_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits an inline command line the way `sdssplitargs` does.
///
/// Unquoted arguments are zero-copy slices of `line`; only arguments with
/// quotes are copied (they need unescaping).
fn split_inline_args(line: &Bytes, limits: &RequestLimits) -> Result<Vec<Bytes>, ProtocolError> {
    let bytes: &[u8] = line;
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while bytes.get(i).is_some_and(|&b| is_inline_space(b)) {
            i += 1;
        }
        if i >= bytes.len() {
            return Ok(args);
        }
        if args.len() >= limits.args_count_max {
            return Err(ProtocolError::TooManyArgs {
                count: args.len() as u64 + 1,
                count_max: limits.args_count_max,
            });
        }
        let start = i;
        while let Some(&b) = bytes.get(i) {
            if is_inline_space(b) || b == b'"' || b == b'\'' {
                break;
            }
            i += 1;
        }
        match bytes.get(i) {
            Some(b'"') | Some(b'\'') => {
                let mut arg = bytes.get(start..i).unwrap_or_default().to_vec();
                i = read_quoted_arg(bytes, i, &mut arg)?;
                args.push(Bytes::from(arg));
            }
            _ => args.push(line.slice(start..i)),
        }
    }
}

/// Continues an inline argument at a quote (`bytes[i]` is `"` or `'`);
/// returns the index after the argument. Quotes may open anywhere inside an
/// argument (`a"b c"` is `ab c`), but a closing quote must end it.
fn read_quoted_arg(bytes: &[u8], mut i: usize, arg: &mut Vec<u8>) -> Result<usize, ProtocolError> {
    loop {
        match bytes.get(i) {
            None => return Ok(i),
            Some(&b) if is_inline_space(b) => return Ok(i),
            Some(&quote @ (b'"' | b'\'')) => {
                let after = read_quoted(bytes, i + 1, arg, quote)?;
                return closing_quote_end(bytes, after);
            }
            Some(&c) => {
                arg.push(c);
                i += 1;
            }
        }
    }
}

/// The inside of a quoted part from `bytes[i]` up to its closing `quote`;
/// returns the index after it. In `"..."` a backslash starts a C escape;
/// in `'...'` only `\'` is an escape, any other backslash is itself.
fn read_quoted(
    bytes: &[u8],
    mut i: usize,
    arg: &mut Vec<u8>,
    quote: u8,
) -> Result<usize, ProtocolError> {
    loop {
        match bytes.get(i) {
            None => return Err(ProtocolError::UnbalancedQuotes),
            Some(b'\\') if quote == b'"' => i = read_c_escape(bytes, i, arg)?,
            Some(b'\\') if bytes.get(i + 1) == Some(&b'\'') => {
                arg.push(b'\'');
                i += 2;
            }
            Some(&c) if c == quote => return Ok(i + 1),
            Some(&c) => {
                arg.push(c);
                i += 1;
            }
        }
    }
}

/// The C escape at `bytes[i]` (a backslash) inside `"..."`: `\xHH`, `\n`,
/// `\r`, `\t`, `\b`, `\a`, or any other byte standing for itself; returns
/// the index after it.
fn read_c_escape(bytes: &[u8], i: usize, arg: &mut Vec<u8>) -> Result<usize, ProtocolError> {
    let hex = bytes.get(i + 1..i + 4).and_then(|esc| match esc {
        [b'x', hi, lo] => Some((hex_value(*hi)?, hex_value(*lo)?)),
        _ => None,
    });
    if let Some((hi, lo)) = hex {
        arg.push(hi << 4 | lo);
        return Ok(i + 4);
    }
    let &c = bytes.get(i + 1).ok_or(ProtocolError::UnbalancedQuotes)?;
    arg.push(match c {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'b' => 0x08,
        b'a' => 0x07,
        other => other,
    });
    Ok(i + 2)
}

/// A closing quote must be followed by a separator or the end of the line.
fn closing_quote_end(bytes: &[u8], i: usize) -> Result<usize, ProtocolError> {
    match bytes.get(i) {
        Some(&b) if !is_inline_space(b) => Err(ProtocolError::UnbalancedQuotes),
        _ => Ok(i),
    }
}

/// Appends one request, as a RESP array of bulk strings, to `out`.
///
/// Generic so callers can pass `&[&[u8]]`, `&[Vec<u8>]`, `&[Bytes]` or
/// `&[&str]` without building an intermediate slice of slices.
pub fn encode_request<A: AsRef<[u8]>>(args: &[A], out: &mut BytesMut) {
    let payload_bytes: usize = args.iter().map(|a| a.as_ref().len() + 16).sum();
    out.reserve(payload_bytes + 16);
    put_length_line(out, b'*', args.len());
    for arg in args {
        put_bulk(out, arg.as_ref());
    }
}
