//! Strata's line text protocol: one request per line.
//!
//! ```text
//! PUT <key> <value...>            value = rest of the line, may hold spaces
//! BATCHPUT <k1,k2,...> <v1,v2,...>
//! READ <key>
//! READRANGE <start> <end> [<limit>]
//! DELETE <key>
//! SEARCH <value|text|semantic> <index> <query...>   query = rest of the line
//! ```
//!
//! Command words are case-insensitive. Keys and values use backslash
//! escapes (see [`unescape`]) so any byte string fits on one line; replies
//! use [`escape_value`] and [`escape_key`] to print them back unambiguously.

use bytes::{Bytes, BytesMut};

use crate::find_byte;

/// One parsed text-protocol request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextRequest {
    /// `PUT <key> <value>`.
    Put {
        /// Unescaped key, never empty.
        key: Bytes,
        /// Unescaped value, possibly empty.
        value: Bytes,
    },
    /// `BATCHPUT <k1,k2,...> <v1,v2,...>`, applied atomically.
    BatchPut {
        /// Unescaped keys, at least one, none empty.
        keys: Vec<Bytes>,
        /// Unescaped values, as many as `keys`.
        values: Vec<Bytes>,
    },
    /// `READ <key>`.
    Read {
        /// Unescaped key.
        key: Bytes,
    },
    /// `READRANGE <start> <end> [<limit>]`.
    ReadRange {
        /// Unescaped start key.
        start: Bytes,
        /// Unescaped end key.
        end: Bytes,
        /// Maximum number of pairs to return; positive when present.
        limit: Option<u64>,
    },
    /// `DELETE <key>`.
    Delete {
        /// Unescaped key.
        key: Bytes,
    },
    /// `PING` (pipe dialect, [`crate::pipe`]).
    Ping,
    /// `CLUSTER_STATUS` (pipe dialect): this node's role, term, leader and
    /// log indexes.
    ClusterStatus,
    /// `CLUSTER_NODES` (pipe dialect): the members.
    ClusterNodes,
    /// `CLUSTER_LEADER` (pipe dialect): the leader's id and address.
    ClusterLeader,
    /// `SEARCH <mode> <index> <query...>`: the server's SEARCH command
    /// (mode `value`, `text` or `semantic`, checked by the server).
    Search {
        /// The mode word, as written.
        mode: Bytes,
        /// Unescaped index name.
        index: Bytes,
        /// Unescaped query: the rest of the line, spaces included.
        query: Bytes,
    },
}

impl TextRequest {
    /// Every key the request names (range bounds included), so that the
    /// server can check them all against its key limit before anything
    /// else, as it does for RESP.
    pub fn keys(&self) -> impl Iterator<Item = &Bytes> {
        let (one, many): (&[Bytes], &[Bytes]) = match self {
            TextRequest::Put { key, .. }
            | TextRequest::Read { key }
            | TextRequest::Delete { key } => (std::slice::from_ref(key), &[]),
            TextRequest::BatchPut { keys, .. } => (keys, &[]),
            TextRequest::ReadRange { start, end, .. } => {
                (std::slice::from_ref(start), std::slice::from_ref(end))
            }
            TextRequest::Ping
            | TextRequest::ClusterStatus
            | TextRequest::ClusterNodes
            | TextRequest::ClusterLeader
            | TextRequest::Search { .. } => (&[], &[]),
        };
        one.iter().chain(many)
    }
}

/// A malformed text request. `Display` is the human message without the
/// `ERROR: ` prefix the server adds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// No newline within the line size limit; the server should reply and
    /// close, as the rest of the line cannot be skipped reliably.
    #[error("line too long (the limit is {line_size_bytes_max} bytes)")]
    LineTooLong {
        /// The configured limit.
        line_size_bytes_max: usize,
    },
    /// A command word that is not one of the five commands (escaped for
    /// display, truncated).
    #[error("unknown command '{0}'")]
    UnknownCommand(String),
    /// Missing or extra arguments; the message names the expected form.
    #[error("{0}")]
    WrongArguments(&'static str),
    /// `BATCHPUT` with different key and value counts.
    #[error("BATCHPUT got {keys} keys but {values} values")]
    BatchCountMismatch {
        /// Number of keys.
        keys: usize,
        /// Number of values.
        values: usize,
    },
    /// An empty key (only possible in a `BATCHPUT` key list).
    #[error("keys must not be empty")]
    EmptyKey,
    /// A `READRANGE` limit that is not a positive integer.
    #[error("READRANGE limit must be a positive integer")]
    InvalidLimit,
    /// A backslash sequence [`unescape`] does not know; holds the offending
    /// sequence, escaped for display.
    #[error("invalid escape '{0}' (known: \\\\ \\n \\r \\t \\0 \\s \\, \\| \\xHH)")]
    InvalidEscape(String),
}

/// Longest command word echoed back in an `unknown command` error, so a
/// huge garbage token cannot produce a huge error reply.
const ECHOED_COMMAND_BYTES_MAX: usize = 64;

/// Takes one line from the front of `buf` (see [`LineReader::take_line`]).
///
/// Stateless: a long line arriving in many reads is re-scanned each call;
/// servers should keep a [`LineReader`] per connection.
pub fn take_line(
    buf: &mut BytesMut,
    line_size_bytes_max: usize,
) -> Result<Option<Bytes>, TextError> {
    LineReader::default().take_line(buf, line_size_bytes_max)
}

/// Incremental line framer; keep one per connection and only append to the
/// buffer between calls. Remembers how far it searched for `\n` so a long
/// line is scanned once.
#[derive(Debug, Default)]
pub struct LineReader {
    scanned_bytes: usize,
}

impl LineReader {
    /// A reader with nothing scanned.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets scan progress; call after modifying the buffer other than by
    /// appending.
    pub fn reset(&mut self) {
        self.scanned_bytes = 0;
    }

    /// Splits one line off `buf` and returns it without its `\n` and an
    /// optional preceding `\r` (zero-copy). `Ok(None)`: no complete line
    /// yet, nothing consumed. A line whose content exceeds
    /// `line_size_bytes_max` is an error as soon as that is certain.
    pub fn take_line(
        &mut self,
        buf: &mut BytesMut,
        line_size_bytes_max: usize,
    ) -> Result<Option<Bytes>, TextError> {
        let too_long = TextError::LineTooLong {
            line_size_bytes_max,
        };
        let start = self.scanned_bytes.min(buf.len());
        // The newline of a maximal line sits at index max (LF) or max + 1
        // (CR LF): no need to look further.
        let search_end = buf.len().min(line_size_bytes_max.saturating_add(2));
        let newline = buf
            .get(start..search_end)
            .and_then(|window| find_byte(b'\n', window))
            .map(|offset| start + offset);
        let Some(newline) = newline else {
            if buf.len() > line_size_bytes_max.saturating_add(1) {
                self.scanned_bytes = 0;
                return Err(too_long);
            }
            self.scanned_bytes = search_end;
            return Ok(None);
        };
        self.scanned_bytes = 0;
        let line = buf.split_to(newline + 1).freeze();
        let content_end = match newline.checked_sub(1) {
            Some(cr) if line.get(cr) == Some(&b'\r') => cr,
            _ => newline,
        };
        if content_end > line_size_bytes_max {
            return Err(too_long);
        }
        Ok(Some(line.slice(..content_end)))
    }
}

fn is_separator(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Walks a line token by token.
struct Tokens<'a> {
    line: &'a [u8],
    pos: usize,
}

impl<'a> Tokens<'a> {
    /// The next run of non-separator bytes, skipping separators before it.
    fn next_token(&mut self) -> Option<&'a [u8]> {
        while self.line.get(self.pos).is_some_and(|&b| is_separator(b)) {
            self.pos += 1;
        }
        let start = self.pos;
        while self.line.get(self.pos).is_some_and(|&b| !is_separator(b)) {
            self.pos += 1;
        }
        self.line.get(start..self.pos).filter(|t| !t.is_empty())
    }

    /// The next token, or a `WrongArguments(usage)` error.
    fn required(&mut self, usage: &'static str) -> Result<&'a [u8], TextError> {
        self.next_token().ok_or(TextError::WrongArguments(usage))
    }

    /// The rest of the line after one separator, or a
    /// `WrongArguments(usage)` error.
    fn required_rest(&mut self, usage: &'static str) -> Result<&'a [u8], TextError> {
        self.rest_after_separator()
            .ok_or(TextError::WrongArguments(usage))
    }

    /// A `WrongArguments(usage)` error if a token is left.
    fn end(&mut self, usage: &'static str) -> Result<(), TextError> {
        match self.next_token() {
            Some(_) => Err(TextError::WrongArguments(usage)),
            None => Ok(()),
        }
    }

    /// Everything after exactly one separator at the current position, or
    /// `None` if there is no separator (the line ended).
    fn rest_after_separator(&mut self) -> Option<&'a [u8]> {
        let &b = self.line.get(self.pos)?;
        if !is_separator(b) {
            return None;
        }
        let rest = self.line.get(self.pos + 1..);
        self.pos = self.line.len();
        rest
    }
}

/// Parses one line (without its line ending). `Ok(None)` for an empty or
/// whitespace-only line, which the server ignores.
pub fn parse_line(line: &[u8]) -> Result<Option<TextRequest>, TextError> {
    let mut tokens = Tokens { line, pos: 0 };
    let Some(command) = tokens.next_token() else {
        return Ok(None);
    };
    let request = if command.eq_ignore_ascii_case(b"PUT") {
        parse_put(&mut tokens)?
    } else if command.eq_ignore_ascii_case(b"BATCHPUT") {
        parse_batch_put(&mut tokens)?
    } else if command.eq_ignore_ascii_case(b"READ") {
        let key = single_key(&mut tokens, "READ needs exactly one key")?;
        TextRequest::Read { key }
    } else if command.eq_ignore_ascii_case(b"DELETE") {
        let key = single_key(&mut tokens, "DELETE needs exactly one key")?;
        TextRequest::Delete { key }
    } else if command.eq_ignore_ascii_case(b"READRANGE") {
        parse_read_range(&mut tokens)?
    } else if command.eq_ignore_ascii_case(b"SEARCH") {
        parse_search(&mut tokens)?
    } else {
        return Err(unknown_command(command));
    };
    Ok(Some(request))
}

/// `PUT <key> <value>`: the value is the rest of the line after one
/// separator, so it may hold separators itself.
fn parse_put(tokens: &mut Tokens<'_>) -> Result<TextRequest, TextError> {
    const USAGE: &str = "PUT needs a key and a value";
    let key = tokens.required(USAGE)?;
    let value = tokens.required_rest(USAGE)?;
    Ok(TextRequest::Put {
        key: unescape_key(key)?,
        value: Bytes::from(unescape(value)?),
    })
}

/// `BATCHPUT <k1,k2,...> <v1,v2,...>`: as many values as keys.
fn parse_batch_put(tokens: &mut Tokens<'_>) -> Result<TextRequest, TextError> {
    const USAGE: &str = "BATCHPUT needs a comma-separated key list and a value list";
    let keys = tokens.required(USAGE)?;
    let values = tokens.required_rest(USAGE)?;
    let keys = split_list(keys)
        .map(unescape_key)
        .collect::<Result<Vec<_>, _>>()?;
    let values = split_list(values)
        .map(|v| unescape(v).map(Bytes::from))
        .collect::<Result<Vec<_>, _>>()?;
    if keys.len() != values.len() {
        return Err(TextError::BatchCountMismatch {
            keys: keys.len(),
            values: values.len(),
        });
    }
    Ok(TextRequest::BatchPut { keys, values })
}

/// `SEARCH <mode> <index> <query...>`: the query is the rest of the line.
fn parse_search(tokens: &mut Tokens<'_>) -> Result<TextRequest, TextError> {
    const USAGE: &str = "SEARCH needs a mode (value, text or semantic), an index and a query";
    let mode = tokens.required(USAGE)?;
    let index = tokens.required(USAGE)?;
    let query = tokens.required_rest(USAGE)?;
    Ok(TextRequest::Search {
        mode: Bytes::copy_from_slice(mode),
        index: Bytes::from(unescape(index)?),
        query: Bytes::from(unescape(query)?),
    })
}

/// `READRANGE <start> <end> [limit]`.
fn parse_read_range(tokens: &mut Tokens<'_>) -> Result<TextRequest, TextError> {
    const USAGE: &str = "READRANGE needs a start key, an end key and an optional limit";
    let start = tokens.required(USAGE)?;
    let end = tokens.required(USAGE)?;
    let limit = tokens.next_token().map(parse_limit).transpose()?;
    tokens.end(USAGE)?;
    Ok(TextRequest::ReadRange {
        start: unescape_key(start)?,
        end: unescape_key(end)?,
        limit,
    })
}

/// The error for an unknown verb, echoing at most
/// `ECHOED_COMMAND_BYTES_MAX` bytes of it, escaped.
fn unknown_command(command: &[u8]) -> TextError {
    let shown = command.get(..ECHOED_COMMAND_BYTES_MAX).unwrap_or(command);
    let mut escaped = Vec::with_capacity(shown.len());
    escape_key(shown, &mut escaped);
    TextError::UnknownCommand(String::from_utf8_lossy(&escaped).into_owned())
}

/// Whether a line is an HTTP request line (`<METHOD> <target> HTTP/<d>.<d>`,
/// e.g. `PUT /x HTTP/1.1`) or starts with `Host:`. `PUT /x HTTP/1.1` is
/// also a valid `PUT`, so without this check any web page could write to
/// the text port through a browser; servers close such connections
/// instead of running the line (see [`crate::is_http_probe_word`]).
pub fn looks_like_http(line: &[u8]) -> bool {
    let mut tokens = Tokens { line, pos: 0 };
    let Some(first) = tokens.next_token() else {
        return false;
    };
    if crate::is_http_probe_word(first) {
        return true;
    }
    let (Some(target), Some(version), None) = (
        tokens.next_token(),
        tokens.next_token(),
        tokens.next_token(),
    ) else {
        return false;
    };
    // An HTTP target is a path (`/x`), `*`, an absolute URL, or CONNECT's
    // `host:port`: `PUT mykey HTTP/1.1` stays an ordinary PUT of a value.
    let is_url = |scheme: &[u8]| {
        target
            .get(..scheme.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
    };
    let http_target = target.starts_with(b"/")
        || target == b"*"
        || is_url(b"http://")
        || is_url(b"https://")
        || first.eq_ignore_ascii_case(b"CONNECT");
    if !http_target {
        return false;
    }
    let Some(number) = version
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case(b"HTTP/"))
        .and_then(|_| version.get(5..))
    else {
        return false;
    };
    // `1.1`, `1.0`, `2.0`, and the bare `2` or `3` of newer versions.
    match number {
        [major] => major.is_ascii_digit(),
        [major, b'.', minor] => major.is_ascii_digit() && minor.is_ascii_digit(),
        _ => false,
    }
}

fn single_key(tokens: &mut Tokens<'_>, usage: &'static str) -> Result<Bytes, TextError> {
    let key = tokens.required(usage)?;
    tokens.end(usage)?;
    unescape_key(key)
}

fn unescape_key(token: &[u8]) -> Result<Bytes, TextError> {
    let key = unescape(token)?;
    if key.is_empty() {
        return Err(TextError::EmptyKey);
    }
    Ok(Bytes::from(key))
}

pub(crate) fn parse_limit(token: &[u8]) -> Result<u64, TextError> {
    if token.is_empty() || !token.iter().all(u8::is_ascii_digit) {
        return Err(TextError::InvalidLimit);
    }
    std::str::from_utf8(token)
        .ok()
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|&n| n > 0)
        .ok_or(TextError::InvalidLimit)
}

/// Splits on commas that are not escaped (a backslash escapes the byte
/// after it, so `\,` and `\\,` are handled correctly). Always yields at
/// least one (possibly empty) part.
pub fn split_list(list: &[u8]) -> impl Iterator<Item = &[u8]> {
    split_unescaped(list, b',')
}

/// Splits on `separator` bytes that are not escaped by a backslash (which
/// escapes the byte after it). Always yields at least one (possibly
/// empty) part. The list of the space dialect and the fields of the pipe
/// dialect ([`crate::pipe`]) both split this way.
pub(crate) fn split_unescaped(list: &[u8], separator: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(list);
    std::iter::from_fn(move || {
        let current = rest?;
        let mut i = 0;
        while let Some(&b) = current.get(i) {
            if b == b'\\' {
                i += 2;
            } else if b == separator {
                rest = current.get(i + 1..);
                return current.get(..i);
            } else {
                i += 1;
            }
        }
        rest = None;
        Some(current)
    })
}

/// Decodes backslash escapes: `\\` `\n` `\r` `\t` `\0` `\s` (space) `\,`
/// (comma), `\|` (pipe, for the pipe dialect) and `\xHH` (any byte). Anything else after a backslash, or a
/// trailing lone backslash, is an error.
pub fn unescape(token: &[u8]) -> Result<Vec<u8>, TextError> {
    let mut out = Vec::with_capacity(token.len());
    let mut i = 0;
    while let Some(offset) = token.get(i..).and_then(|rest| find_byte(b'\\', rest)) {
        out.extend_from_slice(token.get(i..i + offset).unwrap_or_default());
        i += offset;
        let decoded = match token.get(i + 1) {
            Some(b'\\') => b'\\',
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'0') => 0,
            Some(b's') => b' ',
            Some(b',') => b',',
            Some(b'|') => b'|',
            Some(b'x') => {
                let hex = token.get(i + 2..i + 4).and_then(|pair| match pair {
                    [hi, lo] => Some(hex_value(*hi)? << 4 | hex_value(*lo)?),
                    _ => None,
                });
                let Some(byte) = hex else {
                    let bad = token
                        .get(i..i + 4)
                        .unwrap_or(token.get(i..).unwrap_or_default());
                    return Err(invalid_escape(bad));
                };
                out.push(byte);
                i += 4;
                continue;
            }
            Some(_) => return Err(invalid_escape(token.get(i..i + 2).unwrap_or_default())),
            None => return Err(invalid_escape(b"\\")),
        };
        out.push(decoded);
        i += 2;
    }
    out.extend_from_slice(token.get(i..).unwrap_or_default());
    Ok(out)
}

fn invalid_escape(sequence: &[u8]) -> TextError {
    // Show the sequence as typed: the backslash raw, the bytes after it
    // escaped only if they are unprintable.
    let mut shown = vec![b'\\'];
    escape_key(sequence.get(1..).unwrap_or_default(), &mut shown);
    TextError::InvalidEscape(String::from_utf8_lossy(&shown).into_owned())
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends `bytes` escaped for a reply: backslash, CR, LF, TAB and NUL get
/// their short escapes; other control bytes, DEL, invalid UTF-8 and C1
/// control characters become `\xHH`. Printable ASCII (space and comma
/// included) and valid non-ASCII UTF-8 stay as they are, so text values read
/// naturally and the output is a single safe terminal line.
pub fn escape_value(bytes: &[u8], out: &mut Vec<u8>) {
    escape_into(bytes, false, false, out);
}

/// Like [`escape_value`], but also writes space as `\s`, so a key never
/// contains `": "` and a `READRANGE` reply line `<key>: <value>` splits
/// unambiguously at its first `": "`.
pub fn escape_key(bytes: &[u8], out: &mut Vec<u8>) {
    escape_into(bytes, true, false, out);
}

/// Like [`escape_key`], but also writes comma as `\,`: for one item of a
/// `BATCHPUT` key or value list, where a bare comma separates items.
pub fn escape_list_item(bytes: &[u8], out: &mut Vec<u8>) {
    escape_into(bytes, true, true, out);
}

fn escape_into(bytes: &[u8], escape_space: bool, escape_comma: bool, out: &mut Vec<u8>) {
    out.reserve(bytes.len());
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        for c in valid.chars() {
            let code = u32::from(c);
            if code < 0x80 {
                let b = code as u8;
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    0 => out.extend_from_slice(b"\\0"),
                    b' ' if escape_space => out.extend_from_slice(b"\\s"),
                    b',' if escape_comma => out.extend_from_slice(b"\\,"),
                    0x20..=0x7e => out.push(b),
                    _ => push_hex(b, out),
                }
            } else {
                let mut utf8 = [0u8; 4];
                let encoded = c.encode_utf8(&mut utf8).as_bytes();
                // C1 controls (U+0080..U+009F) act as terminal controls.
                if code < 0xa0 {
                    encoded.iter().for_each(|&b| push_hex(b, out));
                } else {
                    out.extend_from_slice(encoded);
                }
            }
        }
        for &b in chunk.invalid() {
            push_hex(b, out);
        }
    }
}

fn push_hex(b: u8, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(&[
        b'\\',
        b'x',
        HEX[usize::from(b >> 4)],
        HEX[usize::from(b & 0x0f)],
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn http_request_lines_are_recognised() {
        for line in [
            "PUT /x HTTP/1.1",
            "GET / HTTP/1.1",
            "POST /k HTTP/1.0",
            "post anything",
            "Host: 127.0.0.1:7380",
            "OPTIONS * http/1.1",
            "PRI * HTTP/2.0",
            "GET / HTTP/2",
            "GET http://example.com/ HTTP/1.1",
            "CONNECT example.com:443 HTTP/1.1",
        ] {
            assert!(looks_like_http(line.as_bytes()), "{line}");
        }
        for line in [
            "",
            "PUT /x v",
            "PUT k HTTP/1.1 and more",
            "PUT /x HTTP/",
            "PUT /x HTTP/1.12",
            "PUT /x HTTPS/1.1",
            "READ /x",
            "Host k",
            "PUT /x HTTP/x.1",
            // A value that reads like a version, with a key that is no
            // HTTP target, is an ordinary PUT.
            "PUT mykey HTTP/1.1",
        ] {
            assert!(!looks_like_http(line.as_bytes()), "{line}");
        }
    }

    fn parse(line: &str) -> Result<Option<TextRequest>, TextError> {
        parse_line(line.as_bytes())
    }

    fn err(line: &str) -> String {
        parse(line).unwrap_err().to_string()
    }

    #[test]
    fn search_takes_the_rest_of_the_line_as_its_query() {
        assert_eq!(
            parse("SEARCH text docs python  database").unwrap(),
            Some(TextRequest::Search {
                mode: b("text"),
                index: b("docs"),
                query: b("python  database"),
            })
        );
        assert_eq!(
            parse("search value my\\sidx a\\x7cb").unwrap(),
            Some(TextRequest::Search {
                mode: b("value"),
                index: b("my idx"),
                query: b("a|b"),
            })
        );
        assert!(err("SEARCH text docs").starts_with("SEARCH needs a mode"));
        assert!(err("SEARCH").starts_with("SEARCH needs a mode"));
    }

    #[test]
    fn commands() {
        assert_eq!(
            parse("PUT k hello world").unwrap(),
            Some(TextRequest::Put {
                key: b("k"),
                value: b("hello world")
            })
        );
        assert_eq!(
            parse("put  k  v ").unwrap(),
            Some(TextRequest::Put {
                key: b("k"),
                value: b(" v ")
            })
        );
        assert_eq!(
            parse("PUT k ").unwrap(),
            Some(TextRequest::Put {
                key: b("k"),
                value: b("")
            })
        );
        assert_eq!(
            parse("PUT a\\sb x\\ny\\x00\\,").unwrap(),
            Some(TextRequest::Put {
                key: b("a b"),
                value: Bytes::from_static(b"x\ny\0,")
            })
        );
        assert_eq!(
            parse("BatchPut a,b\\,c 1,two words").unwrap(),
            Some(TextRequest::BatchPut {
                keys: vec![b("a"), b("b,c")],
                values: vec![b("1"), b("two words")],
            })
        );
        assert_eq!(
            parse("BATCHPUT a,b ,").unwrap(),
            Some(TextRequest::BatchPut {
                keys: vec![b("a"), b("b")],
                values: vec![b(""), b("")]
            })
        );
        assert_eq!(
            parse("READ k").unwrap(),
            Some(TextRequest::Read { key: b("k") })
        );
        assert_eq!(
            parse("\tdelete   k  ").unwrap(),
            Some(TextRequest::Delete { key: b("k") })
        );
        assert_eq!(
            parse("READRANGE a z").unwrap(),
            Some(TextRequest::ReadRange {
                start: b("a"),
                end: b("z"),
                limit: None
            })
        );
        assert_eq!(
            parse("readrange a z 10").unwrap(),
            Some(TextRequest::ReadRange {
                start: b("a"),
                end: b("z"),
                limit: Some(10)
            })
        );
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse(" \t ").unwrap(), None);
    }

    #[test]
    fn error_messages() {
        assert_eq!(err("FOO x"), "unknown command 'FOO'");
        assert_eq!(err("PUT k"), "PUT needs a key and a value");
        assert_eq!(err("PUT"), "PUT needs a key and a value");
        assert_eq!(
            err("BATCHPUT a,b 1,2,3"),
            "BATCHPUT got 2 keys but 3 values"
        );
        assert_eq!(err("BATCHPUT a,,b 1,2,3"), "keys must not be empty");
        assert_eq!(
            err("BATCHPUT"),
            "BATCHPUT needs a comma-separated key list and a value list"
        );
        assert_eq!(err("READ"), "READ needs exactly one key");
        assert_eq!(err("READ a b"), "READ needs exactly one key");
        assert_eq!(err("DELETE a b"), "DELETE needs exactly one key");
        assert_eq!(
            err("READRANGE a"),
            "READRANGE needs a start key, an end key and an optional limit"
        );
        assert_eq!(
            err("READRANGE a b 1 2"),
            "READRANGE needs a start key, an end key and an optional limit"
        );
        assert_eq!(
            err("READRANGE a b 0"),
            "READRANGE limit must be a positive integer"
        );
        assert_eq!(
            err("READRANGE a b -1"),
            "READRANGE limit must be a positive integer"
        );
        assert_eq!(
            err("READRANGE a b 99999999999999999999"),
            "READRANGE limit must be a positive integer"
        );
        assert_eq!(
            err("PUT k a\\qb"),
            "invalid escape '\\q' (known: \\\\ \\n \\r \\t \\0 \\s \\, \\| \\xHH)"
        );
        assert!(err("PUT k a\\").starts_with("invalid escape '\\'"));
        assert!(err("PUT k \\x4").starts_with("invalid escape '\\x4'"));
        assert!(err("PUT k \\xzz").starts_with("invalid escape '\\xzz'"));
    }

    #[test]
    fn escaping() {
        let mut out = Vec::new();
        escape_value(
            b"a b,c\\d\n\r\t\0\x01\x7f\xff caf\xc3\xa9 \xc2\x85",
            &mut out,
        );
        assert_eq!(
            out,
            b"a b,c\\\\d\\n\\r\\t\\0\\x01\\x7f\\xff caf\xc3\xa9 \\xc2\\x85"
        );
        out.clear();
        escape_key(b"a b:c", &mut out);
        assert_eq!(out, b"a\\sb:c");
    }

    #[test]
    fn line_framing() {
        let mut buf = BytesMut::from(&b"READ a\r\nREAD b\nREAD"[..]);
        assert_eq!(take_line(&mut buf, 100).unwrap(), Some(b("READ a")));
        assert_eq!(take_line(&mut buf, 100).unwrap(), Some(b("READ b")));
        assert_eq!(take_line(&mut buf, 100).unwrap(), None);
        assert_eq!(&buf[..], b"READ");

        let mut reader = LineReader::new();
        let mut buf = BytesMut::from(&b"12345"[..]);
        assert_eq!(reader.take_line(&mut buf, 5).unwrap(), None);
        buf.extend_from_slice(b"\r");
        assert_eq!(reader.take_line(&mut buf, 5).unwrap(), None);
        buf.extend_from_slice(b"\n");
        assert_eq!(reader.take_line(&mut buf, 5).unwrap(), Some(b("12345")));

        let mut buf = BytesMut::from(&b"1234567"[..]);
        assert_eq!(
            take_line(&mut buf, 5).unwrap_err().to_string(),
            "line too long (the limit is 5 bytes)"
        );
        let mut buf = BytesMut::from(&b"123456\n"[..]);
        assert!(take_line(&mut buf, 5).is_err());
    }
}
