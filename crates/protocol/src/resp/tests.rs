use bytes::{Bytes, BytesMut};

use super::reply::DoubleText;
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
        parse_all(
            br#"SET "a b" 'c\'d'"#.iter().chain(b"\r\n").copied().collect::<Vec<_>>().as_slice()
        )
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
