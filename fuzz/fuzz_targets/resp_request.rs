//! RESP requests as the server frames them: `RequestParser::parse` on a
//! connection's read buffer, growing by arbitrary reads.
//!
//! Input: [limits mode][size][count][split seed] then the byte stream.
//! Checks, beyond no panic:
//! - the resumable parser fed in pieces and the stateless one fed
//!   everything at once frame the same requests, fail alike and leave the
//!   same bytes;
//! - `Ok(None)` never consumes a partial request; a request is never empty,
//!   never has more than `args_count_max` arguments nor an argument over
//!   `request_size_bytes_max`; the reservation hint stays under the limit;
//! - what parses re-encodes (`encode_request`) and parses to the same args;
//! - an error's text is one line (the server sends it as `-ERR ...`).
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use strata_fuzz::{Input, Splits};
use strata_protocol::resp::{
    ProtocolError, RequestLimits, RequestParser, encode_request, parse_request,
};

/// Everything one parser produced from a stream: the requests, the error
/// that stopped it (if any), and the bytes left in its buffer.
#[derive(Debug, PartialEq)]
struct Framed {
    requests: Vec<Vec<Bytes>>,
    error: Option<ProtocolError>,
    left: Vec<u8>,
}

fn limits(input: &mut Input<'_>) -> RequestLimits {
    let (mode, size, count) = (input.byte(), input.byte(), input.byte());
    if mode % 4 == 0 {
        // The server's defaults: 64 MiB requests, the argument count
        // bounded by what such a request can hold (see connection.rs).
        let request_size_bytes_max = 64 * 1024 * 1024;
        return RequestLimits {
            request_size_bytes_max,
            args_count_max: RequestLimits::default()
                .args_count_max
                .min(request_size_bytes_max / 6),
        };
    }
    // Small limits, to reach every limit path with short inputs.
    RequestLimits {
        request_size_bytes_max: usize::from(size) * 4 + usize::from(mode & 3),
        args_count_max: usize::from(count % 16),
    }
}

fn check_request(args: &[Bytes], limits: &RequestLimits) {
    assert!(!args.is_empty(), "an empty request came out");
    assert!(args.len() <= limits.args_count_max, "{} args", args.len());
    for arg in args {
        assert!(
            arg.len() <= limits.request_size_bytes_max,
            "arg of {} bytes",
            arg.len()
        );
    }
    // Round trip through the client's encoder.
    let mut encoded = BytesMut::new();
    encode_request(args, &mut encoded);
    let again = parse_request(&mut encoded, &RequestLimits::default())
        .expect("an encoded request parses")
        .expect("an encoded request is whole");
    assert_eq!(again, args);
    assert!(encoded.is_empty());
}

/// The server's loop: append a read, take every whole request.
fn incremental(pieces: &[&[u8]], limits: &RequestLimits) -> Framed {
    let mut parser = RequestParser::new();
    let mut buf = BytesMut::new();
    let mut requests = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match parser.parse(&mut buf, limits) {
                Ok(Some(args)) => {
                    assert!(buf.len() < before);
                    check_request(&args, limits);
                    requests.push(args);
                }
                Ok(None) => {
                    // Only skipped empty requests may have been consumed.
                    assert!(buf.len() <= before);
                    let hint = parser.pending_frame_bytes();
                    assert!(hint <= limits.request_size_bytes_max, "hint {hint}");
                    assert!(
                        hint == 0 || hint > buf.len(),
                        "hint {hint} for {}",
                        buf.len()
                    );
                    break;
                }
                Err(error) => {
                    let text = format!("ERR {error}");
                    assert!(!text.contains(['\r', '\n']), "{text:?}");
                    return Framed {
                        requests,
                        error: Some(error),
                        left: buf.to_vec(),
                    };
                }
            }
        }
    }
    Framed {
        requests,
        error: None,
        left: buf.to_vec(),
    }
}

/// The stateless parser over the whole stream at once.
fn at_once(stream: &[u8], limits: &RequestLimits) -> Framed {
    let mut buf = BytesMut::from(stream);
    let mut requests = Vec::new();
    loop {
        match parse_request(&mut buf, limits) {
            Ok(Some(args)) => requests.push(args),
            Ok(None) => {
                return Framed {
                    requests,
                    error: None,
                    left: buf.to_vec(),
                };
            }
            Err(error) => {
                return Framed {
                    requests,
                    error: Some(error),
                    left: buf.to_vec(),
                };
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let limits = limits(&mut input);
    let splits = Splits::new(input.byte());
    let stream = input.rest();
    let pieces = splits.pieces(stream);
    let got = incremental(&pieces, &limits);
    let want = at_once(stream, &limits);
    // An error is decided by the bytes, not by where reads ended; only
    // the bytes left behind an error may differ (how far the parser got).
    assert_eq!(got.requests, want.requests);
    assert_eq!(
        got.error.is_some(),
        want.error.is_some(),
        "{got:?} vs {want:?}"
    );
    if got.error.is_none() {
        assert_eq!(got.left, want.left);
    }
});
