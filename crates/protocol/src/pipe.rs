//! The pipe-delimited text dialect, spoken on the same port as the
//! space-separated one ([`crate::text`]), one request per line:
//!
//! ```text
//! PUT|<key>|<value...>        value = the rest of the line, `|` included
//! GET|<key>
//! DELETE|<key>
//! RANGE|<start>|<end>[|<limit>]
//! BATCH|<k1>|<v1>|<k2>|<v2>...  applied atomically
//! PING
//! CLUSTER_STATUS
//! CLUSTER_NODES
//! CLUSTER_LEADER
//! ```
//!
//! A line is in this dialect when its first word (up to the first space or
//! tab) contains a `|`, or is one of the four bare words. Command words are
//! case-insensitive. Fields use the backslash escapes of
//! [`crate::text::unescape`]; a `|` inside a key (or inside a BATCH value)
//! is written `\|` (or `\x7c`), and a backslash `\\`.

use bytes::Bytes;

use crate::text::{TextError, TextRequest, unescape};

/// Which dialect a text line is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `PUT key value`, `READ key`, ... ([`crate::text`]).
    Words,
    /// `PUT|key|value`, `GET|key`, ... (this module).
    Pipe,
}

const BARE_WORDS: [&[u8]; 4] = [
    b"PING",
    b"CLUSTER_STATUS",
    b"CLUSTER_NODES",
    b"CLUSTER_LEADER",
];

/// The dialect of `line` (see the module documentation).
pub fn dialect(line: &[u8]) -> Dialect {
    let trimmed = line.trim_ascii();
    let first_word_end = trimmed
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(trimmed.len());
    let first_word = trimmed.get(..first_word_end).unwrap_or_default();
    if first_word.contains(&b'|') || BARE_WORDS.iter().any(|w| trimmed.eq_ignore_ascii_case(w)) {
        Dialect::Pipe
    } else {
        Dialect::Words
    }
}

/// Parses a line in either dialect (without its line ending). `Ok(None)`
/// for an empty or whitespace-only line.
pub fn parse_any_line(line: &[u8]) -> Result<Option<(Dialect, TextRequest)>, TextError> {
    match dialect(line) {
        Dialect::Words => Ok(crate::text::parse_line(line)?.map(|r| (Dialect::Words, r))),
        Dialect::Pipe => parse_pipe_line(line.trim_ascii()).map(|r| Some((Dialect::Pipe, r))),
    }
}

/// Splits on `|` bytes that are not escaped (a backslash escapes the byte
/// after it). Always yields at least one (possibly empty) field.
fn split_fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    crate::text::split_unescaped(line, b'|')
}

/// The line after its first `n` unescaped `|` (None if it has fewer).
fn after_fields(line: &[u8], n: usize) -> Option<&[u8]> {
    let mut consumed = 0;
    for field in split_fields(line).take(n) {
        consumed += field.len() + 1;
    }
    line.get(consumed..).filter(|_| consumed > 0)
}

fn key(field: &[u8]) -> Result<Bytes, TextError> {
    let key = unescape(field)?;
    if key.is_empty() {
        return Err(TextError::EmptyKey);
    }
    Ok(Bytes::from(key))
}

/// Exactly `N` fields after the verb, or `usage`.
fn fields<'a, const N: usize>(
    rest: &[&'a [u8]],
    usage: &'static str,
) -> Result<[&'a [u8]; N], TextError> {
    <[&[u8]; N]>::try_from(rest).map_err(|_| TextError::WrongArguments(usage))
}

fn parse_pipe_line(line: &[u8]) -> Result<TextRequest, TextError> {
    let all: Vec<&[u8]> = split_fields(line).collect();
    let (verb, rest) = all.split_first().unwrap_or((&line, &[]));
    let is = |word: &str| verb.eq_ignore_ascii_case(word.as_bytes());
    if is("PUT") {
        const USAGE: &str = "PUT needs a key and a value: PUT|key|value";
        let [k, _] = <[&[u8]; 2]>::try_from(rest.get(..2).unwrap_or_default())
            .map_err(|_| TextError::WrongArguments(USAGE))?;
        // The value is the rest of the line: `|` in it needs no escape.
        let value = after_fields(line, 2).ok_or(TextError::WrongArguments(USAGE))?;
        return Ok(TextRequest::Put {
            key: key(k)?,
            value: Bytes::from(unescape(value)?),
        });
    }
    if is("GET") {
        let [k] = fields(rest, "GET needs exactly one key: GET|key")?;
        return Ok(TextRequest::Read { key: key(k)? });
    }
    if is("DELETE") {
        let [k] = fields(rest, "DELETE needs exactly one key: DELETE|key")?;
        return Ok(TextRequest::Delete { key: key(k)? });
    }
    if is("RANGE") {
        return parse_range(rest);
    }
    if is("BATCH") {
        return parse_batch(rest);
    }
    let bare = [
        ("PING", TextRequest::Ping),
        ("CLUSTER_STATUS", TextRequest::ClusterStatus),
        ("CLUSTER_NODES", TextRequest::ClusterNodes),
        ("CLUSTER_LEADER", TextRequest::ClusterLeader),
    ];
    for (word, request) in bare {
        if is(word) {
            return match rest {
                [] => Ok(request),
                _ => Err(TextError::WrongArguments("this command takes no arguments")),
            };
        }
    }
    Err(unknown(verb))
}

fn parse_range(rest: &[&[u8]]) -> Result<TextRequest, TextError> {
    const USAGE: &str =
        "RANGE needs a start key, an end key and an optional limit: RANGE|start|end|limit";
    let (start, end, limit) = match rest {
        [s, e] => (s, e, None),
        [s, e, l] => (s, e, Some(crate::text::parse_limit(l)?)),
        _ => return Err(TextError::WrongArguments(USAGE)),
    };
    Ok(TextRequest::ReadRange {
        start: key(start)?,
        end: key(end)?,
        limit,
    })
}

fn parse_batch(rest: &[&[u8]]) -> Result<TextRequest, TextError> {
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(TextError::WrongArguments(
            "BATCH needs key|value pairs: BATCH|k1|v1|k2|v2",
        ));
    }
    let mut keys = Vec::with_capacity(rest.len() / 2);
    let mut values = Vec::with_capacity(rest.len() / 2);
    for pair in rest.chunks_exact(2) {
        keys.push(key(pair[0])?);
        values.push(Bytes::from(unescape(pair[1])?));
    }
    Ok(TextRequest::BatchPut { keys, values })
}

fn unknown(verb: &[u8]) -> TextError {
    let shown = verb.get(..64).unwrap_or(verb);
    let mut escaped = Vec::with_capacity(shown.len());
    crate::text::escape_key(shown, &mut escaped);
    TextError::UnknownCommand(String::from_utf8_lossy(&escaped).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn pipe(line: &str) -> Result<TextRequest, TextError> {
        match parse_any_line(line.as_bytes()) {
            Ok(Some((Dialect::Pipe, r))) => Ok(r),
            Ok(other) => panic!("{line}: not the pipe dialect: {other:?}"),
            Err(e) => Err(e),
        }
    }

    #[test]
    fn the_dialect_is_told_by_the_first_word() {
        for line in [
            "PUT|k|v",
            "get|k",
            "PING",
            " ping ",
            "cluster_status",
            "BATCH|a|b",
        ] {
            assert_eq!(dialect(line.as_bytes()), Dialect::Pipe, "{line}");
        }
        for line in ["PUT k v|w", "READ k", "PING x", "", "DELETE a|b"] {
            assert_eq!(dialect(line.as_bytes()), Dialect::Words, "{line}");
        }
        // The space dialect still parses its own lines.
        assert_eq!(
            parse_any_line(b"PUT k a|b").unwrap(),
            Some((
                Dialect::Words,
                TextRequest::Put {
                    key: b("k"),
                    value: b("a|b")
                }
            ))
        );
    }

    #[test]
    fn every_command_parses() {
        assert_eq!(
            pipe("PUT|k|v|w x").unwrap(),
            TextRequest::Put {
                key: b("k"),
                value: b("v|w x")
            }
        );
        assert_eq!(
            pipe("put|k|").unwrap(),
            TextRequest::Put {
                key: b("k"),
                value: b("")
            }
        );
        assert_eq!(
            pipe("GET|a\\|b").unwrap(),
            TextRequest::Read { key: b("a|b") }
        );
        assert_eq!(
            pipe("DELETE|k").unwrap(),
            TextRequest::Delete { key: b("k") }
        );
        assert_eq!(
            pipe("RANGE|a|z").unwrap(),
            TextRequest::ReadRange {
                start: b("a"),
                end: b("z"),
                limit: None
            }
        );
        assert_eq!(
            pipe("RANGE|a|z|10").unwrap(),
            TextRequest::ReadRange {
                start: b("a"),
                end: b("z"),
                limit: Some(10)
            }
        );
        assert_eq!(
            pipe("BATCH|k1|v1|k\\|2|v\\|2").unwrap(),
            TextRequest::BatchPut {
                keys: vec![b("k1"), b("k|2")],
                values: vec![b("v1"), b("v|2")]
            }
        );
        assert_eq!(pipe("PING").unwrap(), TextRequest::Ping);
        assert_eq!(pipe("CLUSTER_STATUS").unwrap(), TextRequest::ClusterStatus);
        assert_eq!(pipe("CLUSTER_NODES").unwrap(), TextRequest::ClusterNodes);
        assert_eq!(pipe("cluster_leader").unwrap(), TextRequest::ClusterLeader);
    }

    #[test]
    fn bad_lines_are_errors_not_guesses() {
        for line in [
            "PUT|k",
            "PUT||v",
            "GET|",
            "GET|a|b",
            "DELETE|",
            "RANGE|a",
            "RANGE|a|b|0",
            "RANGE|a|b|x",
            "RANGE|a|b|1|2",
            "BATCH|k1",
            "BATCH|k1|v1|k2",
            "BATCH",
            "BATCH||v",
            "PING|x",
            "FOO|x",
            "GET|bad\\q",
        ] {
            assert!(pipe(line).is_err(), "{line}");
        }
        assert_eq!(
            pipe("FOO|x").unwrap_err(),
            TextError::UnknownCommand("FOO".into())
        );
    }

    #[test]
    fn split_fields_respects_escapes() {
        let parts: Vec<&[u8]> = split_fields(b"a|b\\|c|\\\\|").collect();
        assert_eq!(parts, vec![&b"a"[..], b"b\\|c", b"\\\\", b""]);
        assert_eq!(after_fields(b"PUT|k|v|w", 2), Some(&b"v|w"[..]));
        assert_eq!(after_fields(b"PUT|k", 2), None);
    }
}
