//! Property tests for the RESP codec and the text protocol.

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use strata_protocol::resp::{
    ProtocolError, ProtocolVersion, Reply, ReplyLimits, ReplyParser, RequestLimits, RequestParser,
    encode_reply, encode_request, parse_reply, parse_request,
};
use strata_protocol::text::{
    self, LineReader, TextRequest, escape_key, escape_list_item, escape_value, parse_line,
    take_line, unescape,
};

fn limits() -> RequestLimits {
    RequestLimits::default()
}

fn arg() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..20),
        // Occasionally large enough to span many chunks.
        vec(any::<u8>(), 100..2000),
        // Bytes that look like protocol syntax.
        vec(
            prop::sample::select(b"*$\r\n0123-+:_ \"'\\x".to_vec()),
            0..12
        ),
    ]
}

fn request() -> impl Strategy<Value = Vec<Vec<u8>>> {
    vec(arg(), 1..8)
}

/// An inline command that redis-cli could type: tokens free of whitespace
/// and quotes, not starting with '*'.
fn inline_request() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let token = vec(
        any::<u8>().prop_filter("plain inline byte", |&b| {
            !matches!(
                b,
                b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0 | b'"' | b'\''
            )
        }),
        1..10,
    )
    .prop_filter("not a multibulk", |t| t.first() != Some(&b'*'));
    vec(token, 1..5)
}

#[derive(Debug, Clone)]
enum Wire {
    Multibulk(Vec<Vec<u8>>),
    Inline(Vec<Vec<u8>>),
}

impl Wire {
    fn args(&self) -> &[Vec<u8>] {
        match self {
            Wire::Multibulk(args) | Wire::Inline(args) => args,
        }
    }

    fn encode(&self, out: &mut BytesMut) {
        match self {
            Wire::Multibulk(args) => encode_request(args, out),
            Wire::Inline(args) => {
                out.extend_from_slice(&args.join(&b' '));
                out.extend_from_slice(b"\r\n");
            }
        }
    }
}

fn wire() -> impl Strategy<Value = Wire> {
    prop_oneof![
        3 => request().prop_map(Wire::Multibulk),
        1 => inline_request().prop_map(Wire::Inline),
    ]
}

fn to_vecs(args: Vec<Bytes>) -> Vec<Vec<u8>> {
    args.into_iter().map(|a| a.to_vec()).collect()
}

/// Feeds `stream` to one parser in the given chunk sizes, collecting every
/// request. Checks that `Ok(None)` never consumes.
fn parse_in_chunks(stream: &[u8], chunk_sizes: &[usize]) -> Vec<Vec<Vec<u8>>> {
    let mut parser = RequestParser::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut fed = 0;
    let mut sizes = chunk_sizes.iter().cycle();
    while fed < stream.len() {
        let size = (*sizes.next().unwrap()).max(1).min(stream.len() - fed);
        buf.extend_from_slice(&stream[fed..fed + size]);
        fed += size;
        loop {
            let before = buf.len();
            match parser.parse(&mut buf, &limits()) {
                Ok(Some(args)) => out.push(to_vecs(args)),
                Ok(None) => {
                    assert_eq!(buf.len(), before, "Ok(None) consumed bytes");
                    break;
                }
                Err(err) => panic!("valid stream failed: {err}"),
            }
        }
    }
    assert!(buf.is_empty(), "leftover bytes: {buf:?}");
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn request_round_trip(args in request()) {
        let mut buf = BytesMut::new();
        encode_request(&args, &mut buf);
        let parsed = parse_request(&mut buf, &limits()).unwrap().unwrap();
        prop_assert_eq!(to_vecs(parsed), args);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn request_prefixes_are_incomplete(args in request()) {
        let mut full = BytesMut::new();
        encode_request(&args, &mut full);
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            prop_assert_eq!(parse_request(&mut buf, &limits()), Ok(None));
            prop_assert_eq!(buf.len(), cut);
        }
    }

    #[test]
    fn request_byte_by_byte_and_chunks(
        requests in vec(wire(), 1..6),
        chunk_sizes in vec(1usize..64, 1..10),
    ) {
        let mut stream = BytesMut::new();
        for request in &requests {
            request.encode(&mut stream);
        }
        let expected: Vec<Vec<Vec<u8>>> = requests.iter().map(|r| r.args().to_vec()).collect();
        prop_assert_eq!(&parse_in_chunks(&stream, &[1]), &expected);
        prop_assert_eq!(&parse_in_chunks(&stream, &chunk_sizes), &expected);
    }

    #[test]
    fn every_split_point_of_a_pipeline(requests in vec(wire(), 1..5)) {
        let mut stream = BytesMut::new();
        for request in &requests {
            request.encode(&mut stream);
        }
        let expected: Vec<Vec<Vec<u8>>> = requests.iter().map(|r| r.args().to_vec()).collect();
        // Stateless parser, two reads split at every point.
        for split in 0..=stream.len() {
            let mut buf = BytesMut::from(&stream[..split]);
            let mut got = Vec::new();
            while let Some(args) = parse_request(&mut buf, &limits()).unwrap() {
                got.push(to_vecs(args));
            }
            buf.extend_from_slice(&stream[split..]);
            while let Some(args) = parse_request(&mut buf, &limits()).unwrap() {
                got.push(to_vecs(args));
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(&got, &expected);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        data in prop_oneof![
            vec(any::<u8>(), 0..300),
            vec(prop::sample::select(b"*$\r\n0123456789-\"' ax\\".to_vec()), 0..300),
        ],
        request_size_bytes_max in 1usize..400,
        args_count_max in 1usize..10,
    ) {
        let limits = RequestLimits { request_size_bytes_max, args_count_max };
        let mut parser = RequestParser::new();
        let mut buf = BytesMut::new();
        // Feed in two halves so the resumable state is exercised too.
        let (head, tail) = data.split_at(data.len() / 2);
        for part in [head, tail] {
            buf.extend_from_slice(part);
            loop {
                let before = buf.len();
                match parser.parse(&mut buf, &limits) {
                    Ok(Some(args)) => {
                        prop_assert!(buf.len() < before);
                        prop_assert!(!args.is_empty());
                        prop_assert!(args.len() <= args_count_max);
                        prop_assert!(args.iter().all(|a| a.len() <= request_size_bytes_max));
                    }
                    Ok(None) => {
                        // Only skipped empty requests may have been consumed.
                        prop_assert!(buf.len() <= before);
                        prop_assert!(buf.len() <= request_size_bytes_max.saturating_add(1) || buf.first() == Some(&b'*'));
                        break;
                    }
                    Err(_) => {
                        prop_assert!(buf.len() <= before);
                        return Ok(());
                    }
                }
            }
        }
    }

    #[test]
    fn huge_declared_lengths_error_immediately(len in 1025u64..u64::MAX / 2, count in 1025u64..u64::MAX / 2) {
        let small = RequestLimits { request_size_bytes_max: 1024, args_count_max: 1024 };
        let mut buf = BytesMut::from(format!("*1\r\n${len}\r\n").as_bytes());
        let is_too_large = matches!(
            parse_request(&mut buf, &small),
            Err(ProtocolError::RequestTooLarge { .. }) | Err(ProtocolError::InvalidBulkLength)
        );
        prop_assert!(is_too_large);
        let mut buf = BytesMut::from(format!("*{count}\r\n").as_bytes());
        let is_too_many = matches!(
            parse_request(&mut buf, &small),
            Err(ProtocolError::TooManyArgs { .. }) | Err(ProtocolError::InvalidMultibulkLength)
        );
        prop_assert!(is_too_many);
        let reply_limits = ReplyLimits { reply_size_bytes_max: 1024, elements_count_max: 1 << 40, depth_max: 8 };
        for header in [format!("${len}\r\n"), format!("*{count}\r\n"), format!("%{count}\r\n")] {
            let mut buf = BytesMut::from(header.as_bytes());
            prop_assert!(parse_reply(&mut buf, &reply_limits).is_err(), "{}", header);
        }
    }
}

// ---------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------

fn text_without_crlf() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _:.-]{0,20}"
}

fn scalar_reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        text_without_crlf().prop_map(Reply::status),
        text_without_crlf().prop_map(|t| Reply::error(format!("ERR {t}"))),
        any::<i64>().prop_map(Reply::Integer),
        vec(any::<u8>(), 0..40).prop_map(Reply::bulk),
        Just(Reply::Null),
        Just(Reply::NullArray),
        any::<f64>().prop_map(Reply::Double),
        any::<bool>().prop_map(Reply::Boolean),
        "-?[1-9][0-9]{0,40}".prop_map(|d| Reply::BigNumber(Bytes::from(d))),
        (
            prop::sample::select(vec![*b"txt", *b"mkd"]),
            vec(any::<u8>(), 0..40)
        )
            .prop_map(|(format, text)| Reply::Verbatim {
                format,
                text: Bytes::from(text)
            }),
    ]
}

fn any_reply() -> impl Strategy<Value = Reply> {
    scalar_reply().prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Reply::Array),
            vec(inner.clone(), 0..6).prop_map(Reply::Set),
            vec(inner.clone(), 0..6).prop_map(Reply::Push),
            vec((inner.clone(), inner), 0..4).prop_map(Reply::Map),
        ]
    })
}

/// What a reply looks like after encoding in `version` and parsing back.
fn expected_after_round_trip(reply: &Reply, version: ProtocolVersion) -> Reply {
    let resp3 = version == ProtocolVersion::Resp3;
    let list = |items: &[Reply]| {
        items
            .iter()
            .map(|r| expected_after_round_trip(r, version))
            .collect::<Vec<_>>()
    };
    match reply {
        Reply::NullArray if resp3 => Reply::Null,
        Reply::Array(items) => Reply::Array(list(items)),
        Reply::Set(items) if resp3 => Reply::Set(list(items)),
        Reply::Push(items) if resp3 => Reply::Push(list(items)),
        Reply::Set(items) | Reply::Push(items) => Reply::Array(list(items)),
        Reply::Map(pairs) if resp3 => Reply::Map(
            pairs
                .iter()
                .map(|(k, v)| {
                    (
                        expected_after_round_trip(k, version),
                        expected_after_round_trip(v, version),
                    )
                })
                .collect(),
        ),
        Reply::Map(pairs) => Reply::Array(
            pairs
                .iter()
                .flat_map(|(k, v)| {
                    [
                        expected_after_round_trip(k, version),
                        expected_after_round_trip(v, version),
                    ]
                })
                .collect(),
        ),
        Reply::Double(value) if !resp3 => {
            // RESP2 sends the text as a bulk string; it must parse back exactly.
            let mut out = BytesMut::new();
            encode_reply(reply, version, &mut out);
            let text = String::from_utf8(out.to_vec()).unwrap();
            let body = text.split("\r\n").nth(1).unwrap().to_string();
            let parsed: f64 = body.parse().unwrap();
            assert!(parsed.to_bits() == value.to_bits() || (parsed.is_nan() && value.is_nan()));
            Reply::bulk(body)
        }
        Reply::Boolean(value) if !resp3 => Reply::Integer(i64::from(*value)),
        Reply::BigNumber(digits) if !resp3 => Reply::Bulk(digits.clone()),
        Reply::Verbatim { text, .. } if !resp3 => Reply::Bulk(text.clone()),
        other => other.clone(),
    }
}

/// Equality that treats NaN doubles as equal.
fn same(a: &Reply, b: &Reply) -> bool {
    match (a, b) {
        (Reply::Double(x), Reply::Double(y)) => {
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
        }
        (Reply::Array(x), Reply::Array(y))
        | (Reply::Set(x), Reply::Set(y))
        | (Reply::Push(x), Reply::Push(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Reply::Map(x), Reply::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ak, av), (bk, bv))| same(ak, bk) && same(av, bv))
        }
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn reply_round_trip(
        replies in vec(any_reply(), 1..4),
        resp3 in any::<bool>(),
        chunk in 1usize..50,
    ) {
        let version = if resp3 { ProtocolVersion::Resp3 } else { ProtocolVersion::Resp2 };
        let mut stream = BytesMut::new();
        for reply in &replies {
            encode_reply(reply, version, &mut stream);
        }
        let expected: Vec<Reply> = replies.iter().map(|r| expected_after_round_trip(r, version)).collect();

        // All at once.
        let mut buf = stream.clone();
        for want in &expected {
            let got = parse_reply(&mut buf, &ReplyLimits::default()).unwrap().unwrap();
            prop_assert!(same(&got, want), "got {:?} want {:?}", got, want);
        }
        prop_assert!(buf.is_empty());

        // In chunks, with the resumable parser.
        let mut parser = ReplyParser::new();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(reply) = parser.parse(&mut buf, &ReplyLimits::default()).unwrap() {
                got.push(reply);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got.len(), expected.len());
        for (got, want) in got.iter().zip(&expected) {
            prop_assert!(same(got, want), "got {:?} want {:?}", got, want);
        }
    }

    #[test]
    fn reply_prefixes_are_incomplete(reply in any_reply(), resp3 in any::<bool>()) {
        let version = if resp3 { ProtocolVersion::Resp3 } else { ProtocolVersion::Resp2 };
        let mut full = BytesMut::new();
        encode_reply(&reply, version, &mut full);
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            prop_assert_eq!(parse_reply(&mut buf, &ReplyLimits::default()), Ok(None));
            prop_assert_eq!(buf.len(), cut);
        }
    }

    #[test]
    fn arbitrary_reply_bytes_never_panic(
        data in prop_oneof![
            vec(any::<u8>(), 0..300),
            vec(prop::sample::select(b"*$%~>|=!,(#_:+-\r\n0123456789tf".to_vec()), 0..300),
        ],
        depth_max in 0usize..5,
    ) {
        let limits = ReplyLimits { reply_size_bytes_max: 200, elements_count_max: 50, depth_max };
        let mut parser = ReplyParser::new();
        let mut buf = BytesMut::new();
        let (head, tail) = data.split_at(data.len() / 2);
        for part in [head, tail] {
            buf.extend_from_slice(part);
            loop {
                let before = buf.len();
                match parser.parse(&mut buf, &limits) {
                    Ok(Some(_)) => prop_assert!(buf.len() < before),
                    Ok(None) => {
                        prop_assert_eq!(buf.len(), before);
                        break;
                    }
                    Err(_) => return Ok(()),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Text protocol
// ---------------------------------------------------------------------------

fn key_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 1..30),
        vec(prop::sample::select(b"a ,:\\\t\r\n\0x".to_vec()), 1..12),
        "\\PC{1,10}".prop_map(String::into_bytes),
    ]
}

fn value_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..60),
        vec(prop::sample::select(b"a ,:\\\t\r\n\0x".to_vec()), 0..12),
        "\\PC{0,20}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn escape_round_trip(bytes in value_bytes()) {
        for escape in [escape_value, escape_key, escape_list_item] {
            let mut escaped = Vec::new();
            escape(&bytes, &mut escaped);
            prop_assert_eq!(unescape(&escaped).unwrap(), bytes.clone());
            // One safe line: no raw control bytes at all.
            prop_assert!(!escaped.iter().any(|&b| b < 0x20 || b == 0x7f));
        }
        let mut key = Vec::new();
        escape_key(&bytes, &mut key);
        prop_assert!(!key.contains(&b' '));
        let mut item = Vec::new();
        escape_list_item(&bytes, &mut item);
        prop_assert_eq!(text::split_list(&item).count(), 1);
    }

    #[test]
    fn parse_line_never_panics(line in prop_oneof![
        vec(any::<u8>(), 0..200),
        (prop::sample::select(vec!["PUT ", "BATCHPUT ", "READ ", "READRANGE ", "DELETE ", "put\t"]),
         vec(prop::sample::select(b"a ,:\\\txn0s9".to_vec()), 0..40))
            .prop_map(|(cmd, rest)| [cmd.as_bytes(), &rest].concat()),
    ]) {
        let _ = parse_line(&line);
    }

    #[test]
    fn put_round_trip(key in key_bytes(), value in value_bytes()) {
        let mut line = b"PUT ".to_vec();
        escape_key(&key, &mut line);
        line.push(b' ');
        escape_value(&value, &mut line);
        let parsed = parse_line(&line).unwrap().unwrap();
        prop_assert_eq!(parsed, TextRequest::Put { key: Bytes::from(key), value: Bytes::from(value) });
    }

    #[test]
    fn batchput_round_trip(pairs in vec((key_bytes(), value_bytes()), 1..6)) {
        let mut line = b"batchput ".to_vec();
        for (i, (key, _)) in pairs.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            escape_list_item(key, &mut line);
        }
        line.push(b' ');
        for (i, (_, value)) in pairs.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            escape_list_item(value, &mut line);
        }
        let parsed = parse_line(&line).unwrap().unwrap();
        let (keys, values): (Vec<_>, Vec<_>) = pairs
            .into_iter()
            .map(|(k, v)| (Bytes::from(k), Bytes::from(v)))
            .unzip();
        prop_assert_eq!(parsed, TextRequest::BatchPut { keys, values });
    }

    #[test]
    fn read_delete_readrange_round_trip(start in key_bytes(), end in key_bytes(), limit in proptest::option::of(1u64..)) {
        let mut key = Vec::new();
        escape_key(&start, &mut key);
        let mut end_key = Vec::new();
        escape_key(&end, &mut end_key);
        let read = [b"READ ".as_slice(), &key].concat();
        prop_assert_eq!(parse_line(&read).unwrap().unwrap(), TextRequest::Read { key: Bytes::from(start.clone()) });
        let delete = [b"DELETE\t".as_slice(), &key, b"  "].concat();
        prop_assert_eq!(parse_line(&delete).unwrap().unwrap(), TextRequest::Delete { key: Bytes::from(start.clone()) });
        let mut range = [b"READRANGE ".as_slice(), &key, b" ", &end_key].concat();
        if let Some(limit) = limit {
            range.extend_from_slice(format!(" {limit}").as_bytes());
        }
        prop_assert_eq!(
            parse_line(&range).unwrap().unwrap(),
            TextRequest::ReadRange { start: Bytes::from(start), end: Bytes::from(end), limit }
        );
    }

    #[test]
    fn line_framing_in_chunks(
        lines in vec(vec(any::<u8>().prop_filter("no newline", |&b| b != b'\n'), 0..40), 1..8),
        crlf in any::<bool>(),
        chunk in 1usize..30,
    ) {
        // A line that ends in '\r' before a plain '\n' would lose that '\r'.
        let lines: Vec<Vec<u8>> = lines
            .into_iter()
            .map(|mut l| { while l.last() == Some(&b'\r') { l.pop(); } l })
            .collect();
        let mut stream = Vec::new();
        for line in &lines {
            stream.extend_from_slice(line);
            stream.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        }
        let mut reader = LineReader::new();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(line) = reader.take_line(&mut buf, 40).unwrap() {
                got.push(line.to_vec());
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, lines);
    }

    #[test]
    fn take_line_never_panics(data in vec(any::<u8>(), 0..100), max in 0usize..50) {
        let mut buf = BytesMut::from(data.as_slice());
        loop {
            let before = buf.len();
            match take_line(&mut buf, max) {
                Ok(Some(line)) => {
                    prop_assert!(line.len() <= max);
                    prop_assert!(buf.len() < before);
                }
                Ok(None) => {
                    prop_assert_eq!(buf.len(), before);
                    prop_assert!(buf.len() <= max + 1);
                    break;
                }
                Err(_) => break,
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Any bytes, framed in pieces and at once: the stable counterpart of the
// `resp_request` and `text_line` fuzz targets (fuzz/README.md)
// ---------------------------------------------------------------------------

/// Requests, the error that stopped the parser, and the bytes it left.
type RespFramed = (Vec<Vec<Bytes>>, Option<ProtocolError>, Vec<u8>);

fn resp_in_pieces(stream: &[u8], piece: usize, limits: &RequestLimits) -> RespFramed {
    let mut parser = RequestParser::new();
    let mut buf = BytesMut::new();
    let mut requests = Vec::new();
    for chunk in stream.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            match parser.parse(&mut buf, limits) {
                Ok(Some(args)) => requests.push(args),
                Ok(None) => {
                    assert!(parser.pending_frame_bytes() <= limits.request_size_bytes_max);
                    break;
                }
                Err(e) => return (requests, Some(e), buf.to_vec()),
            }
        }
    }
    (requests, None, buf.to_vec())
}

fn resp_at_once(stream: &[u8], limits: &RequestLimits) -> RespFramed {
    let mut buf = BytesMut::from(stream);
    let mut requests = Vec::new();
    loop {
        match parse_request(&mut buf, limits) {
            Ok(Some(args)) => requests.push(args),
            Ok(None) => return (requests, None, buf.to_vec()),
            Err(e) => return (requests, Some(e), buf.to_vec()),
        }
    }
}

/// The line a client would write for `request`.
fn text_line_of(request: &TextRequest) -> Vec<u8> {
    let list = |items: &[Bytes], out: &mut Vec<u8>| {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            escape_list_item(item, out);
        }
    };
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
        TextRequest::Read { key } | TextRequest::Delete { key } => {
            let word: &[u8] = if matches!(request, TextRequest::Read { .. }) {
                b"READ "
            } else {
                b"DELETE "
            };
            line.extend_from_slice(word);
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
        // The pipe dialect's bare words.
        TextRequest::Ping => line.extend_from_slice(b"PING"),
        TextRequest::ClusterStatus => line.extend_from_slice(b"CLUSTER_STATUS"),
        TextRequest::ClusterNodes => line.extend_from_slice(b"CLUSTER_NODES"),
        TextRequest::ClusterLeader => line.extend_from_slice(b"CLUSTER_LEADER"),
        TextRequest::Search { mode, index, query } => {
            line.extend_from_slice(b"SEARCH ");
            line.extend_from_slice(mode);
            line.push(b' ');
            escape_key(index, &mut line);
            line.push(b' ');
            escape_value(query, &mut line);
        }
    }
    line
}

/// A line in either dialect, without the dialect.
fn parse_either(line: &[u8]) -> Result<Option<TextRequest>, strata_protocol::text::TextError> {
    strata_protocol::pipe::parse_any_line(line).map(|r| r.map(|(_, request)| request))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A server reads a stream in arbitrary pieces: where the reads end
    /// must not change the requests, whether it fails, or what is left;
    /// an error's text is one line (it is sent as `-ERR ...`).
    #[test]
    fn resp_pieces_and_whole_agree_on_any_bytes(
        data in prop_oneof![
            vec(any::<u8>(), 0..300),
            vec(prop::sample::select(b"*$\r\n0123456789-\"' ax\\".to_vec()), 0..300),
        ],
        piece in 1usize..40,
        request_size_bytes_max in 0usize..400,
        args_count_max in 0usize..10,
    ) {
        let limits = RequestLimits { request_size_bytes_max, args_count_max };
        let (requests, error, left) = resp_in_pieces(&data, piece, &limits);
        let (want_requests, want_error, want_left) = resp_at_once(&data, &limits);
        prop_assert_eq!(&requests, &want_requests);
        prop_assert_eq!(error.is_some(), want_error.is_some());
        if let Some(e) = error {
            let text = format!("ERR {e}");
            prop_assert!(!text.contains(['\r', '\n']), "{}", text);
        } else {
            prop_assert_eq!(left, want_left);
        }
        for args in requests {
            let mut encoded = BytesMut::new();
            encode_request(&args, &mut encoded);
            prop_assert_eq!(parse_request(&mut encoded, &RequestLimits::default()).unwrap().unwrap(), args);
        }
    }

    /// The same for text lines; a request that parses re-encodes with
    /// the protocol's escapes and parses to the same request, and an
    /// error's text is one bounded line (it is sent as `ERROR: ...`).
    #[test]
    fn text_pieces_and_whole_agree_on_any_bytes(
        data in prop_oneof![
            vec(any::<u8>(), 0..300),
            (prop::sample::select(vec!["PUT ", "BATCHPUT ", "READ ", "READRANGE ", "DELETE ", "put\t"]),
             vec(prop::sample::select(b"a ,:\\\txn0s9\r\n".to_vec()), 0..60))
                .prop_map(|(cmd, rest)| [cmd.as_bytes(), &rest].concat()),
        ],
        piece in 1usize..40,
        line_max in 0usize..80,
    ) {
        let mut reader = LineReader::new();
        let mut buf = BytesMut::new();
        let mut lines = Vec::new();
        let mut error = None;
        'pieces: for chunk in data.chunks(piece) {
            buf.extend_from_slice(chunk);
            loop {
                match reader.take_line(&mut buf, line_max) {
                    Ok(Some(line)) => lines.push(line),
                    Ok(None) => break,
                    Err(e) => {
                        error = Some(e);
                        break 'pieces;
                    }
                }
            }
        }
        let mut whole = BytesMut::from(data.as_slice());
        let mut want = Vec::new();
        let want_error = loop {
            match take_line(&mut whole, line_max) {
                Ok(Some(line)) => want.push(line),
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        prop_assert_eq!(&lines, &want);
        prop_assert_eq!(&error, &want_error);
        for line in lines {
            prop_assert!(line.len() <= line_max);
            // Both dialects: what parses is rewritten in the space dialect
            // (or as a bare word) and parses the same.
            match parse_either(&line) {
                Ok(Some(request)) => {
                    prop_assert!(request.keys().all(|k| !k.is_empty()));
                    prop_assert_eq!(parse_either(&text_line_of(&request)), Ok(Some(request)));
                }
                Ok(None) => {}
                Err(e) => {
                    let text = format!("ERROR: {e}");
                    prop_assert!(!text.contains(['\r', '\n']) && text.len() <= 512, "{}", text);
                }
            }
        }
    }
}
