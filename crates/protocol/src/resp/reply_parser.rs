//! The client's reply parser: the full RESP2 and RESP3 reply grammar.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};

use crate::find_byte;

use super::request::read_length_line;
use super::*;

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
    match marker {
        b'$' | b'!' | b'=' => read_blob_header(buf, pos, marker, limits),
        b'*' | b'%' | b'~' | b'>' | b'|' => read_aggregate_header(buf, pos, marker, limits),
        b'+' | b'-' | b':' | b',' | b'(' | b'_' | b'#' => {
            read_line_header(buf, pos, marker, limits)
        }
        other => Err(ProtocolError::InvalidReplyType(other)),
    }
}

fn too_large(size_bytes: u64, limits: &ReplyLimits) -> ProtocolError {
    ProtocolError::ReplyTooLarge {
        size_bytes,
        size_bytes_max: limits.reply_size_bytes_max,
    }
}

/// A length-prefixed blob: bulk string `$`, blob error `!`, verbatim `=`.
fn read_blob_header(
    buf: &[u8],
    pos: usize,
    marker: u8,
    limits: &ReplyLimits,
) -> Result<Option<(Header, usize)>, ProtocolError> {
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
        return Err(too_large(end, limits));
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

/// An aggregate's count line: array, map, set, push, attribute.
fn read_aggregate_header(
    buf: &[u8],
    pos: usize,
    marker: u8,
    limits: &ReplyLimits,
) -> Result<Option<(Header, usize)>, ProtocolError> {
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
        return Err(too_large(size_min, limits));
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

/// A one-line scalar: status, error, integer, double, big number, null,
/// boolean.
fn read_line_header(
    buf: &[u8],
    pos: usize,
    marker: u8,
    limits: &ReplyLimits,
) -> Result<Option<(Header, usize)>, ProtocolError> {
    let start = pos + 1;
    let search_end = buf.len().min(limits.reply_size_bytes_max.saturating_add(1));
    let newline = buf
        .get(start..search_end)
        .and_then(|window| find_byte(b'\n', window))
        .map(|offset| start + offset);
    let Some(newline) = newline else {
        if buf.len() > limits.reply_size_bytes_max {
            return Err(too_large(buf.len() as u64, limits));
        }
        return Ok(None);
    };
    let end = newline + 1;
    if end > limits.reply_size_bytes_max {
        return Err(too_large(end as u64, limits));
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
        b':' => Header::Integer(parse_i64(line).ok_or(ProtocolError::InvalidReply("integer"))?),
        b',' => Header::Double(parse_double(line).ok_or(ProtocolError::InvalidReply("double"))?),
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
