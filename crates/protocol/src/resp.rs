//! RESP2/RESP3 codec.
//!
//! Server side: [`parse_request`] / [`RequestParser`] frame requests out of a
//! connection's read buffer, [`encode_reply`] writes [`Reply`] values in the
//! client's negotiated [`ProtocolVersion`].
//!
//! Client side: [`encode_request`] writes a command, [`parse_reply`] /
//! [`ReplyParser`] read the full RESP2 + RESP3 reply grammar.
//!
//! Request arguments and bulk replies are zero-copy [`Bytes`] slices of the
//! frame split off the read buffer: one atomic refcount bump per argument,
//! no copying of payloads.

use std::borrow::Cow;
use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::find_byte;

/// Limits applied while parsing client requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Largest request (all headers and payloads of one command) accepted.
    /// Also bounds a single bulk argument and an inline command line.
    pub request_size_bytes_max: usize,
    /// Largest number of arguments (command name included) in one request.
    pub args_count_max: usize,
}

impl Default for RequestLimits {
    /// Redis's defaults: 512 MiB bulk strings, 1 Mi arguments for
    /// unauthenticated multibulk requests.
    fn default() -> Self {
        RequestLimits {
            request_size_bytes_max: 512 * 1024 * 1024,
            args_count_max: 1024 * 1024,
        }
    }
}

/// Limits applied while parsing server replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Largest reply (all nested elements together) accepted.
    pub reply_size_bytes_max: usize,
    /// Largest element count declared by a single aggregate (array, map
    /// pairs count twice, set, push, attribute).
    pub elements_count_max: usize,
    /// Deepest nesting of aggregates accepted.
    pub depth_max: usize,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        ReplyLimits {
            reply_size_bytes_max: 512 * 1024 * 1024,
            elements_count_max: 64 * 1024 * 1024,
            depth_max: 64,
        }
    }
}

/// Protocol version negotiated with `HELLO`; decides how RESP3-only reply
/// types are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProtocolVersion {
    /// RESP2, the default for every new connection.
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

/// A malformed or over-limit request or reply.
///
/// `Display` is the Redis-style message *without* the leading `ERR `, so a
/// server replies with `format!("ERR {err}")` and then closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// `*<n>` with a malformed count.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// `$<n>` with a malformed or negative length.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// A multibulk request element that is not a bulk string.
    #[error("Protocol error: expected '$', got '{}'", ByteDisplay(*.0))]
    ExpectedBulk(u8),
    /// Bulk payload not followed by `\r\n`.
    #[error("Protocol error: bulk string not terminated by CRLF")]
    MissingCrlf,
    /// Inline command with an unterminated quote or a closing quote that is
    /// not followed by a space.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// A request (declared or buffered) larger than
    /// [`RequestLimits::request_size_bytes_max`].
    #[error(
        "Protocol error: request too large ({size_bytes} bytes; the limit is {size_bytes_max})"
    )]
    RequestTooLarge {
        /// Size declared or buffered so far.
        size_bytes: u64,
        /// The configured limit.
        size_bytes_max: usize,
    },
    /// An inline command line longer than [`INLINE_REQUEST_BYTES_MAX`] (or
    /// the request limit, if smaller) without a newline.
    #[error("Protocol error: too big inline request (the limit is {size_bytes_max} bytes)")]
    InlineTooLarge {
        /// The limit in force.
        size_bytes_max: usize,
    },
    /// More arguments than [`RequestLimits::args_count_max`].
    #[error("Protocol error: too many arguments ({count}; the limit is {count_max})")]
    TooManyArgs {
        /// Declared argument count.
        count: u64,
        /// The configured limit.
        count_max: usize,
    },
    /// A reply starting with a byte that is not a RESP type marker.
    #[error("Protocol error: invalid reply type '{}'", ByteDisplay(*.0))]
    InvalidReplyType(u8),
    /// A syntactically invalid reply element.
    #[error("Protocol error: invalid {0} in reply")]
    InvalidReply(&'static str),
    /// A reply larger than [`ReplyLimits::reply_size_bytes_max`].
    #[error("Protocol error: reply too large ({size_bytes} bytes; the limit is {size_bytes_max})")]
    ReplyTooLarge {
        /// Size declared or buffered so far.
        size_bytes: u64,
        /// The configured limit.
        size_bytes_max: usize,
    },
    /// An aggregate declaring more than [`ReplyLimits::elements_count_max`]
    /// elements.
    #[error("Protocol error: too many elements in reply ({count}; the limit is {count_max})")]
    TooManyElements {
        /// Declared element count.
        count: u64,
        /// The configured limit.
        count_max: usize,
    },
    /// Aggregates nested deeper than [`ReplyLimits::depth_max`].
    #[error("Protocol error: reply nested deeper than {depth_max} levels")]
    ReplyTooDeep {
        /// The configured limit.
        depth_max: usize,
    },
}

/// Shows a byte as Redis's `%c` would, but keeps control bytes readable and
/// out of the single-line error reply.
struct ByteDisplay(u8);

impl fmt::Display for ByteDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() || self.0 == b' ' {
            write!(f, "{}", char::from(self.0))
        } else {
            write!(f, "\\x{:02x}", self.0)
        }
    }
}

// ---------------------------------------------------------------------------
// Requests (server side)
// ---------------------------------------------------------------------------

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

    fn parse_multibulk(
        &mut self,
        buf: &mut BytesMut,
        limits: &RequestLimits,
    ) -> Result<Step, ProtocolError> {
        let resumed = match self.pending.take() {
            // The bounds check keeps a contract violation (buffer shrunk
            // between calls) from turning into an out-of-range slice.
            Some(Pending::Multibulk { args_count, pos })
                if pos <= buf.len() && self.spans.len() <= args_count =>
            {
                Some((args_count, pos))
            }
            _ => None,
        };
        let (args_count, mut pos) = match resumed {
            Some(state) => state,
            None => {
                self.spans.clear();
                let Some((count, header_end)) =
                    read_length_line(buf, 1, ProtocolError::InvalidMultibulkLength)?
                else {
                    return Ok(Step::Incomplete);
                };
                if count <= 0 {
                    buf.advance(header_end);
                    return Ok(Step::Skipped);
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
                (args_count, header_end)
            }
        };

        while self.spans.len() < args_count {
            let Some(&marker) = buf.get(pos) else {
                self.pending = Some(Pending::Multibulk { args_count, pos });
                return Ok(Step::Incomplete);
            };
            if marker != b'$' {
                return Err(ProtocolError::ExpectedBulk(marker));
            }
            let Some((len, data_start)) =
                read_length_line(buf, pos + 1, ProtocolError::InvalidBulkLength)?
            else {
                self.pending = Some(Pending::Multibulk { args_count, pos });
                return Ok(Step::Incomplete);
            };
            if len < 0 {
                return Err(ProtocolError::InvalidBulkLength);
            }
            // Size check on the declared length, before waiting for (or
            // allocating room for) the payload.
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
            let data_end = end - 2;
            if buf.len() < end {
                // Re-reading this short header next time is cheaper than
                // remembering it; the payload is never re-scanned.
                self.pending = Some(Pending::Multibulk { args_count, pos });
                self.pending_frame_bytes = end;
                return Ok(Step::Incomplete);
            }
            if buf.get(data_end..end) != Some(b"\r\n".as_slice()) {
                return Err(ProtocolError::MissingCrlf);
            }
            self.spans.push((data_start, data_end));
            pos = end;
        }

        let frame = buf.split_to(pos).freeze();
        let args = self
            .spans
            .drain(..)
            .map(|(start, end)| frame.slice(start..end))
            .collect();
        Ok(Step::Request(args))
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

/// Parses `[-]<digits>\r\n` starting at `buf[start]`; returns the value and
/// the index just past `\n`, or `None` if the line is not complete yet.
///
/// Strict like Redis's `string2ll`: no sign other than a leading `-`, no
/// leading zeros, no empty number. Bounded: at most 19 digits are examined.
fn read_length_line(
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
            Some(b'"') => {
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Err(ProtocolError::UnbalancedQuotes),
                        Some(b'\\') => {
                            let hex = bytes.get(i + 1..i + 4).and_then(|esc| match esc {
                                [b'x', hi, lo] => Some((hex_value(*hi)?, hex_value(*lo)?)),
                                _ => None,
                            });
                            if let Some((hi, lo)) = hex {
                                arg.push(hi << 4 | lo);
                                i += 4;
                            } else if let Some(&c) = bytes.get(i + 1) {
                                arg.push(match c {
                                    b'n' => b'\n',
                                    b'r' => b'\r',
                                    b't' => b'\t',
                                    b'b' => 0x08,
                                    b'a' => 0x07,
                                    other => other,
                                });
                                i += 2;
                            } else {
                                return Err(ProtocolError::UnbalancedQuotes);
                            }
                        }
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(&c) => {
                            arg.push(c);
                            i += 1;
                        }
                    }
                }
                return closing_quote_end(bytes, i);
            }
            Some(b'\'') => {
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Err(ProtocolError::UnbalancedQuotes),
                        Some(b'\\') if bytes.get(i + 1) == Some(&b'\'') => {
                            arg.push(b'\'');
                            i += 2;
                        }
                        Some(b'\'') => {
                            i += 1;
                            break;
                        }
                        Some(&c) => {
                            arg.push(c);
                            i += 1;
                        }
                    }
                }
                return closing_quote_end(bytes, i);
            }
            Some(&c) => {
                arg.push(c);
                i += 1;
            }
        }
    }
}

/// A closing quote must be followed by a separator or the end of the line.
fn closing_quote_end(bytes: &[u8], i: usize) -> Result<usize, ProtocolError> {
    match bytes.get(i) {
        Some(&b) if !is_inline_space(b) => Err(ProtocolError::UnbalancedQuotes),
        _ => Ok(i),
    }
}

// ---------------------------------------------------------------------------
// Requests (client side)
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------

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

fn put_bulk(out: &mut BytesMut, bytes: &[u8]) {
    out.reserve(bytes.len() + 24);
    put_length_line(out, b'$', bytes.len());
    out.put_slice(bytes);
    out.put_slice(b"\r\n");
}

fn put_length_line(out: &mut BytesMut, marker: u8, len: usize) {
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
struct DoubleText {
    buf: [u8; 32],
    len: usize,
}

impl DoubleText {
    fn as_bytes(&self) -> &[u8] {
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

    fn format(&mut self, value: f64) {
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

    /// Re-lays out Rust's shortest round-trip digits (`{:e}`) the way
    /// fpconv's `emit_digits` does.
    fn format_shortest(&mut self, value: f64) {
        let mut scientific = FmtBuf::default();
        if fmt::write(&mut scientific, format_args!("{:e}", value.abs())).is_err() {
            return;
        }
        let text = scientific.as_bytes();
        let (mantissa, exponent) = match find_byte(b'e', text) {
            Some(e) => (
                text.get(..e).unwrap_or_default(),
                text.get(e + 1..).unwrap_or_default(),
            ),
            None => (text, b"0".as_slice()),
        };
        let mut digits = [0u8; 24];
        let mut digits_len = 0usize;
        for &b in mantissa.iter().filter(|b| b.is_ascii_digit()) {
            if let Some(slot) = digits.get_mut(digits_len) {
                *slot = b;
                digits_len += 1;
            }
        }
        let digits = digits.get(..digits_len).unwrap_or_default();
        let exponent: i64 = std::str::from_utf8(exponent)
            .ok()
            .and_then(|e| e.parse().ok())
            .unwrap_or(0);
        let ndigits = digits_len as i64;
        // value = digits * 10^k
        let k = exponent - (ndigits - 1);
        let exp_abs = (k + ndigits - 1).abs();

        if value < 0.0 {
            self.push(b"-");
        }
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

/// Fixed-size `fmt::Write` sink, to format a double without allocating.
#[derive(Default)]
struct FmtBuf {
    buf: [u8; 32],
    len: usize,
}

impl FmtBuf {
    fn as_bytes(&self) -> &[u8] {
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

// ---------------------------------------------------------------------------
// Replies (client side)
// ---------------------------------------------------------------------------

/// Parses one reply from the front of `buf` (see [`ReplyParser::parse`]).
///
/// Stateless; clients reading large replies should keep a [`ReplyParser`].
pub fn parse_reply(
    buf: &mut BytesMut,
    limits: &ReplyLimits,
) -> Result<Option<Reply>, ProtocolError> {
    ReplyParser::default().parse(buf, limits)
}

/// Incremental reply parser; keep one per connection.
///
/// Like [`RequestParser`], the caller must only append to the buffer
/// between calls. The parser first validates the reply's extent without
/// allocating (resuming where it stopped), and builds the [`Reply`] tree only
/// once the whole reply is buffered, so a huge reply costs one scan plus one
/// build no matter how many reads it arrives in.
#[derive(Debug, Default)]
pub struct ReplyParser {
    /// Bytes of the current reply validated so far.
    pos: usize,
    /// Elements still expected at each open nesting level; empty when no
    /// reply is in progress.
    remaining: Vec<u64>,
}

/// One element header, as read from the buffer.
enum Header {
    Status(usize, usize),
    Error(usize, usize),
    Integer(i64),
    Bulk(usize, usize),
    Null,
    NullArray,
    Double(f64),
    Boolean(bool),
    BigNumber(usize, usize),
    Verbatim([u8; 3], usize, usize),
    Array(u64),
    Map(u64),
    Set(u64),
    Push(u64),
    Attribute(u64),
}

impl ReplyParser {
    /// A parser with no partial reply.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets any partially parsed reply.
    pub fn reset(&mut self) {
        self.pos = 0;
        self.remaining.clear();
    }

    /// Parses one reply from the front of `buf`: `Ok(None)` if the reply is
    /// not complete yet (nothing consumed), otherwise the reply is split off
    /// the buffer. RESP3 attributes (`|`) are validated and skipped. After an
    /// error the stream position is lost; close the connection.
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
        limits: &ReplyLimits,
    ) -> Result<Option<Reply>, ProtocolError> {
        let result = self.skim(buf, limits);
        match result {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(err) => {
                self.reset();
                return Err(err);
            }
        }
        let frame = buf.split_to(self.pos).freeze();
        self.reset();
        let mut pos = 0;
        build_reply(&frame, &mut pos, limits, 0).map(Some)
    }

    /// Advances over complete elements; true once the reply is complete.
    fn skim(&mut self, buf: &[u8], limits: &ReplyLimits) -> Result<bool, ProtocolError> {
        if self.remaining.is_empty() || self.pos > buf.len() {
            self.pos = 0;
            self.remaining.clear();
            self.remaining.push(1);
        }
        loop {
            while self.remaining.last() == Some(&0) {
                self.remaining.pop();
            }
            if self.remaining.is_empty() {
                return Ok(true);
            }
            let Some((header, next)) = read_header(buf, self.pos, limits)? else {
                return Ok(false);
            };
            let (consumes_slot, children) = match header {
                Header::Array(n) | Header::Set(n) | Header::Push(n) => (true, n),
                Header::Map(n) => (true, n.saturating_mul(2)),
                // An attribute is extra data before the element it
                // annotates, so it does not fill the parent's slot.
                Header::Attribute(n) => (false, n.saturating_mul(2)),
                _ => (true, 0),
            };
            if consumes_slot && let Some(top) = self.remaining.last_mut() {
                *top = top.saturating_sub(1);
            }
            if children > 0 {
                // The root slot is not a nesting level.
                if self.remaining.len() > limits.depth_max {
                    return Err(ProtocolError::ReplyTooDeep {
                        depth_max: limits.depth_max,
                    });
                }
                self.remaining.push(children);
            }
            self.pos = next;
        }
    }
}

/// Builds the reply starting at `frame[*pos]`. The frame was fully validated
/// by [`ReplyParser::skim`], so errors here are defensive only.
fn build_reply(
    frame: &Bytes,
    pos: &mut usize,
    limits: &ReplyLimits,
    depth: usize,
) -> Result<Reply, ProtocolError> {
    let truncated = ProtocolError::InvalidReply("framing");
    if depth > limits.depth_max {
        return Err(ProtocolError::ReplyTooDeep {
            depth_max: limits.depth_max,
        });
    }
    loop {
        let (header, next) = read_header(frame, *pos, limits)?.ok_or(truncated.clone())?;
        *pos = next;
        let text = |start: usize, end: usize| -> Cow<'static, str> {
            Cow::Owned(
                String::from_utf8_lossy(frame.get(start..end).unwrap_or_default()).into_owned(),
            )
        };
        let mut children = |n: u64| -> Result<Vec<Reply>, ProtocolError> {
            // n was checked against elements_count_max and every element
            // is present in the frame, so this allocation is bounded.
            let mut items = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
            for _ in 0..n {
                items.push(build_reply(frame, pos, limits, depth + 1)?);
            }
            Ok(items)
        };
        return Ok(match header {
            Header::Status(start, end) => Reply::Status(text(start, end)),
            Header::Error(start, end) => Reply::Error(text(start, end)),
            Header::Integer(n) => Reply::Integer(n),
            Header::Bulk(start, end) => Reply::Bulk(frame.slice(start..end)),
            Header::Null => Reply::Null,
            Header::NullArray => Reply::NullArray,
            Header::Double(value) => Reply::Double(value),
            Header::Boolean(value) => Reply::Boolean(value),
            Header::BigNumber(start, end) => Reply::BigNumber(frame.slice(start..end)),
            Header::Verbatim(format, start, end) => Reply::Verbatim {
                format,
                text: frame.slice(start..end),
            },
            Header::Array(n) => Reply::Array(children(n)?),
            Header::Set(n) => Reply::Set(children(n)?),
            Header::Push(n) => Reply::Push(children(n)?),
            Header::Map(n) => {
                let flat = children(n.saturating_mul(2))?;
                let mut pairs = Vec::with_capacity(flat.len() / 2);
                let mut flat = flat.into_iter();
                while let (Some(key), Some(value)) = (flat.next(), flat.next()) {
                    pairs.push((key, value));
                }
                Reply::Map(pairs)
            }
            Header::Attribute(n) => {
                // Discard the attribute and parse the element it annotates.
                children(n.saturating_mul(2))?;
                continue;
            }
        });
    }
}

/// Reads one element header at `buf[pos]`. Scalars are read whole; for
/// aggregates only the `<marker><count>\r\n` line is read. Returns the
/// header and the position after it, or `None` if incomplete.
fn read_header(
    buf: &[u8],
    pos: usize,
    limits: &ReplyLimits,
) -> Result<Option<(Header, usize)>, ProtocolError> {
    let Some(&marker) = buf.get(pos) else {
        return Ok(None);
    };
    let too_large = |size_bytes: u64| ProtocolError::ReplyTooLarge {
        size_bytes,
        size_bytes_max: limits.reply_size_bytes_max,
    };
    match marker {
        b'$' | b'!' | b'=' => {
            let err = ProtocolError::InvalidReply("bulk length");
            let Some((len, data_start)) = read_length_line(buf, pos + 1, err.clone())? else {
                return Ok(None);
            };
            if len < 0 {
                return if len == -1 && marker == b'$' {
                    Ok(Some((Header::Null, data_start)))
                } else {
                    Err(err)
                };
            }
            let end = (data_start as u64)
                .saturating_add(len.unsigned_abs())
                .saturating_add(2);
            if end > limits.reply_size_bytes_max as u64 {
                return Err(too_large(end));
            }
            let end = end as usize;
            let data_end = end - 2;
            if buf.len() < end {
                return Ok(None);
            }
            if buf.get(data_end..end) != Some(b"\r\n".as_slice()) {
                return Err(ProtocolError::InvalidReply("bulk terminator"));
            }
            let header = match marker {
                b'$' => Header::Bulk(data_start, data_end),
                b'!' => Header::Error(data_start, data_end),
                _ => match buf.get(data_start..data_end) {
                    Some([f0, f1, f2, b':', ..]) => {
                        Header::Verbatim([*f0, *f1, *f2], data_start + 4, data_end)
                    }
                    _ => return Err(ProtocolError::InvalidReply("verbatim string")),
                },
            };
            Ok(Some((header, end)))
        }
        b'*' | b'%' | b'~' | b'>' | b'|' => {
            let err = ProtocolError::InvalidReply("aggregate length");
            let Some((count, next)) = read_length_line(buf, pos + 1, err.clone())? else {
                return Ok(None);
            };
            if count < 0 {
                return if count == -1 && marker == b'*' {
                    Ok(Some((Header::NullArray, next)))
                } else {
                    Err(err)
                };
            }
            let count = count.unsigned_abs();
            let elements = if matches!(marker, b'%' | b'|') {
                count.saturating_mul(2)
            } else {
                count
            };
            if elements > limits.elements_count_max as u64 {
                return Err(ProtocolError::TooManyElements {
                    count: elements,
                    count_max: limits.elements_count_max,
                });
            }
            // Every element takes at least 3 bytes (`_\r\n`), so a count
            // the size limit cannot hold is rejected before it is trusted.
            let size_min = (next as u64).saturating_add(elements.saturating_mul(3));
            if size_min > limits.reply_size_bytes_max as u64 {
                return Err(too_large(size_min));
            }
            let header = match marker {
                b'*' => Header::Array(count),
                b'%' => Header::Map(count),
                b'~' => Header::Set(count),
                b'>' => Header::Push(count),
                _ => Header::Attribute(count),
            };
            Ok(Some((header, next)))
        }
        b'+' | b'-' | b':' | b',' | b'(' | b'_' | b'#' => {
            let start = pos + 1;
            let search_end = buf.len().min(limits.reply_size_bytes_max.saturating_add(1));
            let newline = buf
                .get(start..search_end)
                .and_then(|window| find_byte(b'\n', window))
                .map(|offset| start + offset);
            let Some(newline) = newline else {
                if buf.len() > limits.reply_size_bytes_max {
                    return Err(too_large(buf.len() as u64));
                }
                return Ok(None);
            };
            let end = newline + 1;
            if end > limits.reply_size_bytes_max {
                return Err(too_large(end as u64));
            }
            let Some(line_end) = newline
                .checked_sub(1)
                .filter(|&cr| cr >= start && buf.get(cr) == Some(&b'\r'))
            else {
                return Err(ProtocolError::InvalidReply("line terminator"));
            };
            let line = buf.get(start..line_end).unwrap_or_default();
            let header = match marker {
                b'+' => Header::Status(start, line_end),
                b'-' => Header::Error(start, line_end),
                b':' => {
                    Header::Integer(parse_i64(line).ok_or(ProtocolError::InvalidReply("integer"))?)
                }
                b',' => {
                    Header::Double(parse_double(line).ok_or(ProtocolError::InvalidReply("double"))?)
                }
                b'(' => {
                    let digits = line.strip_prefix(b"-").unwrap_or(line);
                    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                        return Err(ProtocolError::InvalidReply("big number"));
                    }
                    Header::BigNumber(start, line_end)
                }
                b'_' if line.is_empty() => Header::Null,
                b'#' if line == b"t" => Header::Boolean(true),
                b'#' if line == b"f" => Header::Boolean(false),
                b'_' => return Err(ProtocolError::InvalidReply("null")),
                _ => return Err(ProtocolError::InvalidReply("boolean")),
            };
            Ok(Some((header, end)))
        }
        other => Err(ProtocolError::InvalidReplyType(other)),
    }
}

/// Strict decimal i64 (optional leading `-` or `+`, at least one digit).
fn parse_i64(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// RESP3 double: decimal or exponent notation, `inf`, `-inf`, `nan`.
fn parse_double(text: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(text).ok()?;
    // Rust also accepts "infinity"; RESP3 only knows these spellings, but
    // accepting more from a server is harmless.
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RequestLimits {
        RequestLimits::default()
    }

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(args) = parse_request(&mut buf, &limits())? {
            out.push(args);
        }
        Ok(out)
    }

    fn args(list: &[&str]) -> Vec<Bytes> {
        list.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    fn err_text(input: &[u8]) -> String {
        match parse_all(input) {
            Err(err) => err.to_string(),
            Ok(reqs) => panic!("expected an error, got {reqs:?}"),
        }
    }

    #[test]
    fn multibulk_request() {
        let reqs = parse_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n").unwrap();
        assert_eq!(reqs, vec![args(&["SET", "k", "hello"])]);
    }

    #[test]
    fn an_incomplete_payload_tells_the_room_it_needs() {
        let mut parser = RequestParser::new();
        let head = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n";
        let mut buf = BytesMut::from(&head[..]);
        buf.extend_from_slice(b"abc");
        assert_eq!(parser.parse(&mut buf, &limits()), Ok(None));
        assert_eq!(parser.pending_frame_bytes(), head.len() + 100_000 + 2);
        // Not known before a length header, nor for inline commands.
        parser.reset();
        let mut buf = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$1"[..]);
        assert_eq!(parser.parse(&mut buf, &limits()), Ok(None));
        assert_eq!(parser.pending_frame_bytes(), 0);
        parser.reset();
        let mut buf = BytesMut::from(&b"SET k v"[..]);
        assert_eq!(parser.parse(&mut buf, &limits()), Ok(None));
        assert_eq!(parser.pending_frame_bytes(), 0);
    }

    #[test]
    fn empty_multibulks_are_skipped() {
        let reqs = parse_all(b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(reqs, vec![args(&["PING"])]);
    }

    #[test]
    fn inline_requests() {
        assert_eq!(parse_all(b"PING\r\n").unwrap(), vec![args(&["PING"])]);
        assert_eq!(
            parse_all(b"set k v\n").unwrap(),
            vec![args(&["set", "k", "v"])]
        );
        assert_eq!(
            parse_all(br#"SET "a b" 'c\'d'"#.iter().chain(b"\r\n").copied().collect::<Vec<_>>().as_slice())
                .unwrap(),
            vec![args(&["SET", "a b", "c'd"])]
        );
        assert_eq!(
            parse_all(b"\r\n\n  \t \nECHO \"\\x41\\n\\\"q\\\\\" x\"y z\"\n").unwrap(),
            vec![vec![
                Bytes::from_static(b"ECHO"),
                Bytes::from_static(b"A\n\"q\\"),
                Bytes::from_static(b"xy z"),
            ]]
        );
        assert_eq!(
            parse_all(b"a 'x\\y' \"\\t\\r\\b\\a\\z\" ''\n").unwrap(),
            vec![vec![
                Bytes::from_static(b"a"),
                Bytes::from_static(b"x\\y"),
                Bytes::from_static(b"\t\r\x08\x07z"),
                Bytes::new(),
            ]]
        );
    }

    #[test]
    fn inline_incomplete_then_complete() {
        let mut parser = RequestParser::new();
        let mut buf = BytesMut::from(&b"GET fo"[..]);
        assert_eq!(parser.parse(&mut buf, &limits()).unwrap(), None);
        assert_eq!(buf.len(), 6);
        buf.extend_from_slice(b"o\r\n");
        assert_eq!(
            parser.parse(&mut buf, &limits()).unwrap(),
            Some(args(&["GET", "foo"]))
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn exact_error_messages() {
        assert_eq!(
            err_text(b"*x\r\n"),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(
            err_text(b"*1\r\n$-1\r\n"),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            err_text(b"*1\r\n$abc\r\n"),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            err_text(b"*1\r\nx3\r\n"),
            "Protocol error: expected '$', got 'x'"
        );
        assert_eq!(
            err_text(b"*1\r\n\x013\r\n"),
            "Protocol error: expected '$', got '\\x01'"
        );
        assert_eq!(
            err_text(b"SET \"a\n"),
            "Protocol error: unbalanced quotes in request"
        );
        assert_eq!(
            err_text(b"SET 'a'b\n"),
            "Protocol error: unbalanced quotes in request"
        );
        assert_eq!(
            err_text(b"SET \"a\"b\n"),
            "Protocol error: unbalanced quotes in request"
        );
        assert_eq!(
            err_text(b"*1\r\n$1\r\nab\r\n"),
            "Protocol error: bulk string not terminated by CRLF"
        );
        let small = RequestLimits {
            request_size_bytes_max: 100,
            args_count_max: 3,
        };
        let mut buf = BytesMut::from(&b"*1\r\n$1000\r\n"[..]);
        assert_eq!(
            parse_request(&mut buf, &small).unwrap_err().to_string(),
            "Protocol error: request too large (1013 bytes; the limit is 100)"
        );
        let mut buf = BytesMut::from(&b"*4\r\n"[..]);
        assert_eq!(
            parse_request(&mut buf, &small).unwrap_err().to_string(),
            "Protocol error: too many arguments (4; the limit is 3)"
        );
        let mut buf = BytesMut::from(&b"a b c d\n"[..]);
        assert_eq!(
            parse_request(&mut buf, &small).unwrap_err(),
            ProtocolError::TooManyArgs {
                count: 4,
                count_max: 3
            }
        );
        let mut buf = BytesMut::from(vec![b'a'; 101].as_slice());
        assert_eq!(
            parse_request(&mut buf, &small).unwrap_err().to_string(),
            "Protocol error: too big inline request (the limit is 100 bytes)"
        );
        // Inline lines stop at 64 KiB whatever the request limit, as in Redis.
        let mut buf = BytesMut::from(vec![b'a'; INLINE_REQUEST_BYTES_MAX + 1].as_slice());
        assert_eq!(
            parse_request(&mut buf, &RequestLimits::default()).unwrap_err(),
            ProtocolError::InlineTooLarge {
                size_bytes_max: INLINE_REQUEST_BYTES_MAX
            }
        );
        // 100 bytes without a newline may still be a valid line.
        let mut buf = BytesMut::from(vec![b'a'; 100].as_slice());
        assert_eq!(parse_request(&mut buf, &small).unwrap(), None);
    }

    #[test]
    fn strict_length_lines() {
        for bad in [
            &b"*01\r\n"[..],
            b"*+1\r\n",
            b"*-0\r\n",
            b"*\r\n",
            b"*1\rx",
            b"*99999999999999999999\r\n",
        ] {
            assert!(parse_all(bad).is_err(), "{bad:?}");
        }
        // Incomplete, not an error.
        assert_eq!(parse_all(b"*1").unwrap(), vec![] as Vec<Vec<Bytes>>);
        assert_eq!(parse_all(b"*1\r").unwrap(), vec![] as Vec<Vec<Bytes>>);
        assert_eq!(parse_all(b"*-").unwrap(), vec![] as Vec<Vec<Bytes>>);
    }

    fn encoded(reply: &Reply, version: ProtocolVersion) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_reply(reply, version, &mut out);
        out.to_vec()
    }

    #[test]
    fn reply_encoding() {
        use ProtocolVersion::*;
        assert_eq!(encoded(&Reply::ok(), Resp2), b"+OK\r\n");
        assert_eq!(
            encoded(&Reply::error("ERR a\r\nb"), Resp2),
            b"-ERR a  b\r\n"
        );
        assert_eq!(encoded(&Reply::Integer(-42), Resp2), b":-42\r\n");
        assert_eq!(
            encoded(&Reply::Integer(i64::MIN), Resp2),
            b":-9223372036854775808\r\n"
        );
        assert_eq!(encoded(&Reply::bulk("hi"), Resp3), b"$2\r\nhi\r\n");
        assert_eq!(encoded(&Reply::Null, Resp2), b"$-1\r\n");
        assert_eq!(encoded(&Reply::NullArray, Resp2), b"*-1\r\n");
        assert_eq!(encoded(&Reply::Null, Resp3), b"_\r\n");
        assert_eq!(encoded(&Reply::NullArray, Resp3), b"_\r\n");
        let map = Reply::Map(vec![(Reply::bulk("a"), Reply::Integer(1))]);
        assert_eq!(encoded(&map, Resp2), b"*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(encoded(&map, Resp3), b"%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(
            encoded(&Reply::Set(vec![Reply::Integer(1)]), Resp3),
            b"~1\r\n:1\r\n"
        );
        assert_eq!(encoded(&Reply::Boolean(true), Resp2), b":1\r\n");
        assert_eq!(encoded(&Reply::Boolean(false), Resp3), b"#f\r\n");
        assert_eq!(encoded(&Reply::Double(1.5), Resp3), b",1.5\r\n");
        assert_eq!(encoded(&Reply::Double(1.5), Resp2), b"$3\r\n1.5\r\n");
        let verbatim = Reply::Verbatim {
            format: *b"txt",
            text: Bytes::from_static(b"hello"),
        };
        assert_eq!(encoded(&verbatim, Resp3), b"=9\r\ntxt:hello\r\n");
        assert_eq!(encoded(&verbatim, Resp2), b"$5\r\nhello\r\n");
        assert_eq!(
            encoded(&Reply::BigNumber(Bytes::from_static(b"-123")), Resp3),
            b"(-123\r\n"
        );
        assert_eq!(encoded(&Reply::Push(vec![]), Resp3), b">0\r\n");
    }

    fn double_text(value: f64) -> String {
        let mut text = DoubleText::default();
        text.format(value);
        String::from_utf8(text.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn doubles_like_redis() {
        let cases: &[(f64, &str)] = &[
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (0.0, "0"),
            (-0.0, "-0"),
            (3.0, "3"),
            (-17.0, "-17"),
            (1.5, "1.5"),
            (-0.25, "-0.25"),
            (0.1, "0.1"),
            (0.001, "0.001"),
            (1e-7, "1e-07"),
            (1.5e-7, "1.5e-07"),
            (123.456, "123.456"),
            (1e300, "1e+300"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (1e22, "1e+22"),
            (4.611686018427388e18, "4611686018427387904"),
            (1e19, "1e+19"),
            (1.25e25, "1.25e+25"),
        ];
        for &(value, text) in cases {
            assert_eq!(double_text(value), text, "{value:e}");
            if !value.is_nan() {
                assert_eq!(text.parse::<f64>().unwrap().to_bits(), value.to_bits());
            }
        }
    }

    #[test]
    fn reply_parsing() {
        let mut buf = BytesMut::from(
            &b"|1\r\n+ttl\r\n:3\r\n%2\r\n+a\r\n*2\r\n:1\r\n,-inf\r\n$-1\r\n_\r\n=9\r\nmkd:hi yo\r\n!3\r\nERR\r\n"[..],
        );
        let l = ReplyLimits::default();
        let map = parse_reply(&mut buf, &l).unwrap().unwrap();
        assert_eq!(
            map,
            Reply::Map(vec![
                (
                    Reply::status("a"),
                    Reply::Array(vec![Reply::Integer(1), Reply::Double(f64::NEG_INFINITY)])
                ),
                (Reply::Null, Reply::Null),
            ])
        );
        assert_eq!(
            parse_reply(&mut buf, &l).unwrap().unwrap(),
            Reply::Verbatim {
                format: *b"mkd",
                text: Bytes::from_static(b"hi yo")
            }
        );
        assert_eq!(
            parse_reply(&mut buf, &l).unwrap().unwrap(),
            Reply::error("ERR")
        );
        assert!(buf.is_empty());
        assert_eq!(parse_reply(&mut buf, &l).unwrap(), None);
    }

    #[test]
    fn reply_limits() {
        let l = ReplyLimits {
            reply_size_bytes_max: 1000,
            elements_count_max: 10,
            depth_max: 2,
        };
        let mut buf = BytesMut::from(&b"$5000000000\r\n"[..]);
        assert!(matches!(
            parse_reply(&mut buf, &l),
            Err(ProtocolError::ReplyTooLarge { .. })
        ));
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        assert!(matches!(
            parse_reply(&mut buf, &l),
            Err(ProtocolError::TooManyElements { .. })
        ));
        let mut buf = BytesMut::from(&b"*1\r\n*1\r\n:1\r\n"[..]);
        assert!(parse_reply(&mut buf, &l).unwrap().is_some());
        let mut buf = BytesMut::from(&b"*1\r\n*1\r\n*1\r\n:1\r\n"[..]);
        assert_eq!(
            parse_reply(&mut buf, &l),
            Err(ProtocolError::ReplyTooDeep { depth_max: 2 })
        );
        let mut buf = BytesMut::from(&b"?\r\n"[..]);
        assert_eq!(
            parse_reply(&mut buf, &l).unwrap_err().to_string(),
            "Protocol error: invalid reply type '?'"
        );
    }
}
