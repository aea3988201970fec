//! Text-protocol lines as the server reads them: `LineReader::take_line`
//! on a read buffer growing by arbitrary reads, then `looks_like_http` and
//! `parse_line` on each line.
//!
//! Input: [line limit][split seed] then the byte stream.
//! Checks, beyond no panic:
//! - the resumable framer fed in pieces and the stateless one fed
//!   everything at once cut the same lines and fail alike;
//! - a line holds no `\n` and never exceeds the limit;
//! - a parsed request re-encodes with the protocol's escapes and parses to
//!   the same request; keys are never empty, BATCHPUT pairs up;
//! - an error's text is one bounded line (the server sends `ERROR: ...`).
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use strata_fuzz::{Input, Splits};
use strata_protocol::text::{
    LineReader, TextError, TextRequest, escape_key, escape_list_item, escape_value,
    looks_like_http, parse_line, take_line,
};

/// Longest error text the checks accept: the echoed command word is cut at
/// 64 bytes and escaped (at most 4 bytes each), plus the message.
const ERROR_TEXT_BYTES_MAX: usize = 512;

fn list(items: &[Bytes], out: &mut Vec<u8>) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        escape_list_item(item, out);
    }
}

/// The line a client would write for `request`.
fn encode(request: &TextRequest) -> Vec<u8> {
    let mut line = Vec::new();
    match request {
        TextRequest::Put { key, value } => {
            line.extend_from_slice(b"PUT ");
            escape_key(key, &mut line);
            line.push(b' ');
            escape_value(value, &mut line);
        }
        TextRequest::BatchPut { keys, values } => {
            line.extend_from_slice(b"BATCHPUT ");
            list(keys, &mut line);
            line.push(b' ');
            list(values, &mut line);
        }
        TextRequest::Read { key } => {
            line.extend_from_slice(b"READ ");
            escape_key(key, &mut line);
        }
        TextRequest::Delete { key } => {
            line.extend_from_slice(b"DELETE ");
            escape_key(key, &mut line);
        }
        TextRequest::ReadRange { start, end, limit } => {
            line.extend_from_slice(b"READRANGE ");
            escape_key(start, &mut line);
            line.push(b' ');
            escape_key(end, &mut line);
            if let Some(limit) = limit {
                line.extend_from_slice(format!(" {limit}").as_bytes());
            }
        }
    }
    line
}

fn check_error(error: &TextError) {
    let text = format!("ERROR: {error}");
    assert!(!text.contains(['\r', '\n']), "{text:?}");
    assert!(text.len() <= ERROR_TEXT_BYTES_MAX, "{} bytes", text.len());
}

fn check_line(line: &Bytes, line_max: usize) {
    assert!(line.len() <= line_max, "line of {} bytes", line.len());
    assert!(!line.contains(&b'\n'));
    let _ = looks_like_http(line);
    match parse_line(line) {
        Ok(Some(request)) => {
            assert!(request.keys().all(|k| !k.is_empty()), "{request:?}");
            if let TextRequest::BatchPut { keys, values } = &request {
                assert!(!keys.is_empty());
                assert_eq!(keys.len(), values.len());
            }
            if let TextRequest::ReadRange { limit: Some(n), .. } = &request {
                assert!(*n > 0);
            }
            let again = parse_line(&encode(&request));
            assert_eq!(again, Ok(Some(request)));
        }
        Ok(None) => assert!(line.iter().all(|&b| b == b' ' || b == b'\t')),
        Err(error) => check_error(&error),
    }
}

/// Lines and the error that stopped the framer, if any.
type Framed = (Vec<Bytes>, Option<TextError>);

fn incremental(pieces: &[&[u8]], line_max: usize) -> Framed {
    let mut reader = LineReader::new();
    let mut buf = BytesMut::new();
    let mut lines = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match reader.take_line(&mut buf, line_max) {
                Ok(Some(line)) => {
                    assert!(buf.len() < before);
                    check_line(&line, line_max);
                    lines.push(line);
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before);
                    // What waits for a newline is within the limit.
                    assert!(buf.len() <= line_max.saturating_add(1));
                    break;
                }
                Err(error) => {
                    check_error(&error);
                    return (lines, Some(error));
                }
            }
        }
    }
    (lines, None)
}

fn at_once(stream: &[u8], line_max: usize) -> Framed {
    let mut buf = BytesMut::from(stream);
    let mut lines = Vec::new();
    loop {
        match take_line(&mut buf, line_max) {
            Ok(Some(line)) => lines.push(line),
            Ok(None) => return (lines, None),
            Err(error) => return (lines, Some(error)),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let line_max = match input.byte() {
        // The server's: the request size limit (64 MiB by default).
        0..=63 => 64 * 1024 * 1024,
        small => usize::from(small - 64),
    };
    let splits = Splits::new(input.byte());
    let stream = input.rest();
    let got = incremental(&splits.pieces(stream), line_max);
    let want = at_once(stream, line_max);
    assert_eq!(got, want);
});
