//! The etcd target (`--target etcd`): the same operations as the RESP
//! target, sent to etcd's v3 HTTP/JSON gateway over persistent HTTP/1.1
//! (keep-alive) connections, one request at a time per connection.
//!
//! | RESP          | etcd                                                        |
//! |---------------|-------------------------------------------------------------|
//! | `SET k v`     | `POST /v3/kv/put {"key": b64(k), "value": b64(v)}`           |
//! | `GET k`       | `POST /v3/kv/range {"key": b64(k)}` (linearizable: etcd's default) |
//! | `MSET k v ..` | `POST /v3/kv/txn`, one `request_put` per pair (all-or-nothing) |
//! | `RANGE s e LIMIT n` | `POST /v3/kv/range {"key", "range_end": e + 1, "limit": n}` |
//!
//! The HTTP connection is [`crate::http::HttpConnection`] (a hand-written
//! Content-Length-only client would not do: etcd's gateway answers errors
//! with chunked bodies and trailers).
//!
//! A 2xx answer must be etcd's JSON (an object with a `header`), or the
//! connection fails as with an unparseable RESP reply. Any other status is
//! an error reply (counted, the connection goes on), with etcd's message
//! when the body is etcd's `{"error", "message", "code"}`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::Deserialize;
use strata_protocol::resp::Reply;

use crate::http::{Format, HttpRequest, snippet};

/// Which gateway endpoint a request goes to, and how its answer is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtcdOp {
    /// `/v3/kv/put`: answered `+OK`.
    Put,
    /// `/v3/kv/range` of one key: the value, or null.
    Get,
    /// `/v3/kv/range` over a key range: an array of key, value, key, ...
    Scan,
    /// `/v3/kv/txn` of puts: `+OK` if it succeeded.
    Txn,
}

impl EtcdOp {
    pub fn path(self) -> &'static str {
        match self {
            EtcdOp::Put => "/v3/kv/put",
            EtcdOp::Get | EtcdOp::Scan => "/v3/kv/range",
            EtcdOp::Txn => "/v3/kv/txn",
        }
    }
}

/// Every gateway call is a POST of a JSON body.
fn request(op: EtcdOp, body: impl Into<Bytes>) -> HttpRequest {
    HttpRequest {
        method: hyper::Method::POST,
        path: op.path().into(),
        content_type: "application/json",
        body: body.into(),
        format: Format::Etcd(op),
    }
}

// Base64 output is `[A-Za-z0-9+/=]`, so it goes into JSON strings as is.

pub fn put(key: &[u8], value: &[u8]) -> HttpRequest {
    let body = format!(
        r#"{{"key":"{}","value":"{}"}}"#,
        BASE64.encode(key),
        BASE64.encode(value)
    );
    request(EtcdOp::Put, body)
}

pub fn get(key: &[u8]) -> HttpRequest {
    request(
        EtcdOp::Get,
        format!(r#"{{"key":"{}"}}"#, BASE64.encode(key)),
    )
}

/// Keys from `start` to `end` inclusive (etcd's `range_end` is exclusive:
/// we send `end` + a zero byte, the next possible key), at most `limit`.
pub fn scan(start: &[u8], end: &[u8], limit: u64) -> HttpRequest {
    let mut range_end = end.to_vec();
    range_end.push(0);
    let body = format!(
        r#"{{"key":"{}","range_end":"{}","limit":"{limit}"}}"#,
        BASE64.encode(start),
        BASE64.encode(&range_end)
    );
    request(EtcdOp::Scan, body)
}

/// One transaction putting every key to `value` (no compare: it always
/// succeeds). etcd refuses a key twice in one txn, where MSET lets the
/// last one win: with one value for all, dropping repeats is the same
/// write. etcd also refuses more than `--max-txn-ops` (default 128) puts.
pub fn txn_put<K: AsRef<[u8]>>(keys: &[K], value: &[u8]) -> HttpRequest {
    let value = BASE64.encode(value);
    let mut body = String::with_capacity(32 + keys.len() * (64 + value.len()));
    body.push_str(r#"{"success":["#);
    let mut seen = std::collections::HashSet::with_capacity(keys.len());
    for key in keys {
        if !seen.insert(key.as_ref()) {
            continue;
        }
        if seen.len() > 1 {
            body.push(',');
        }
        body.push_str(r#"{"request_put":{"key":""#);
        body.push_str(&BASE64.encode(key.as_ref()));
        body.push_str(r#"","value":""#);
        body.push_str(&value);
        body.push_str(r#""}}"#);
    }
    body.push_str("]}");
    request(EtcdOp::Txn, body)
}

/// The parts of etcd's answers we read. Unknown fields are ignored; int64
/// fields (revisions, count) are strings in the gateway's JSON, and we do
/// not need them.
#[derive(Debug, Deserialize)]
struct KvResponse {
    /// Present in every successful answer; required, so that a 2xx from
    /// something that is not etcd is noticed.
    #[allow(dead_code)]
    header: ResponseHeader,
    #[serde(default)]
    kvs: Vec<KeyValue>,
    /// Txn only; proto3 JSON omits `false`.
    #[serde(default)]
    succeeded: bool,
}

#[derive(Debug, Deserialize)]
struct ResponseHeader {}

#[derive(Debug, Deserialize)]
struct KeyValue {
    #[serde(default)]
    key: String,
    /// Omitted when empty (proto3).
    #[serde(default)]
    value: String,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: i64,
}

fn decode(field: &str, what: &str) -> Result<Bytes, String> {
    BASE64
        .decode(field)
        .map(Bytes::from)
        .map_err(|e| format!("malformed etcd response: {what} is not base64: {e}"))
}

/// Reads one answer as the RESP reply the same operation would get: `Ok`
/// with an error reply for a non-2xx status, `Err` (the connection is
/// unusable) for a 2xx whose body is not what etcd sends.
pub fn parse_response(op: EtcdOp, status: u16, body: &[u8]) -> Result<Reply, String> {
    if !(200..300).contains(&status) {
        let text = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(e) if !e.message.is_empty() || !e.error.is_empty() => {
                let message = if e.message.is_empty() {
                    e.error
                } else {
                    e.message
                };
                format!(
                    "ETCD HTTP {status} code {}: {}",
                    e.code,
                    snippet(message.as_bytes())
                )
            }
            _ => format!("ETCD HTTP {status}: {}", snippet(body)),
        };
        return Ok(Reply::Error(text.into()));
    }
    let response: KvResponse = serde_json::from_slice(body).map_err(|e| {
        format!(
            "malformed etcd response (HTTP {status}): {e}; body: {}",
            snippet(body)
        )
    })?;
    match op {
        EtcdOp::Put => Ok(Reply::Status("OK".into())),
        EtcdOp::Txn => Ok(if response.succeeded {
            Reply::Status("OK".into())
        } else {
            Reply::Error("ETCD txn did not succeed".into())
        }),
        EtcdOp::Get => match response.kvs.as_slice() {
            [] => Ok(Reply::Null),
            [kv] => Ok(Reply::Bulk(decode(&kv.value, "a value")?)),
            more => Err(format!(
                "malformed etcd response: {} pairs for a single-key range",
                more.len()
            )),
        },
        EtcdOp::Scan => {
            let mut items = Vec::with_capacity(2 * response.kvs.len());
            for kv in &response.kvs {
                items.push(Reply::Bulk(decode(&kv.key, "a key")?));
                items.push(Reply::Bulk(decode(&kv.value, "a value")?));
            }
            Ok(Reply::Array(items))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    use crate::client::ClientError;
    use crate::http::{HttpConnection, READ_BUF_BYTES_MAX};

    fn json(r: &HttpRequest) -> serde_json::Value {
        serde_json::from_slice(&r.body).expect("request bodies are JSON")
    }

    #[test]
    fn requests_encode_keys_and_values_in_base64() {
        let r = put(b"key:000000000001", b"v\x00\xff\"");
        assert_eq!(r.path, "/v3/kv/put");
        let v = json(&r);
        assert_eq!(v["key"], BASE64.encode("key:000000000001"));
        assert_eq!(v["value"], BASE64.encode(b"v\x00\xff\""));

        let r = get(b"a");
        assert_eq!(r.format, Format::Etcd(EtcdOp::Get));
        assert_eq!(r.path, "/v3/kv/range");
        assert_eq!(json(&r), serde_json::json!({"key": "YQ=="}));

        let r = put(b"", b"");
        assert_eq!(json(&r), serde_json::json!({"key": "", "value": ""}));
    }

    #[test]
    fn scan_end_is_inclusive_and_limited() {
        let r = scan(b"a", b"c", 10);
        assert_eq!(r.path, "/v3/kv/range");
        let v = json(&r);
        assert_eq!(v["key"], "YQ==");
        assert_eq!(v["range_end"], BASE64.encode(b"c\x00"));
        assert_eq!(v["limit"], "10");
    }

    #[test]
    fn txn_puts_every_key() {
        let r = txn_put(&[b"a", b"b", b"a"], b"v");
        assert_eq!(r.path, "/v3/kv/txn");
        assert_eq!(
            json(&r),
            serde_json::json!({"success": [
                {"request_put": {"key": "YQ==", "value": "dg=="}},
                {"request_put": {"key": "Yg==", "value": "dg=="}},
            ]})
        );
    }

    // Real etcd 3.4.23 answers, copied from curl.
    const HEADER: &str = r#""header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"2","raft_term":"2"}"#;

    #[test]
    fn real_answers_parse() {
        let put_ok = format!("{{{HEADER}}}");
        assert_eq!(
            parse_response(EtcdOp::Put, 200, put_ok.as_bytes()),
            Ok(Reply::Status("OK".into()))
        );
        let found = format!(
            r#"{{{HEADER},"kvs":[{{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}}],"count":"1"}}"#
        );
        assert_eq!(
            parse_response(EtcdOp::Get, 200, found.as_bytes()),
            Ok(Reply::Bulk(Bytes::from_static(b"bar")))
        );
        // A missing key: no kvs at all.
        assert_eq!(
            parse_response(EtcdOp::Get, 200, put_ok.as_bytes()),
            Ok(Reply::Null)
        );
        // An empty value is omitted.
        let empty = format!(r#"{{{HEADER},"kvs":[{{"key":"Zm9v"}}],"count":"1"}}"#);
        assert_eq!(
            parse_response(EtcdOp::Get, 200, empty.as_bytes()),
            Ok(Reply::Bulk(Bytes::new()))
        );
        let range = format!(
            r#"{{{HEADER},"kvs":[{{"key":"YQ==","value":"Yg=="}},{{"key":"Yw==","value":"Yg=="}}],"count":"2"}}"#
        );
        let bulk = |s: &'static [u8]| Reply::Bulk(Bytes::from_static(s));
        assert_eq!(
            parse_response(EtcdOp::Scan, 200, range.as_bytes()),
            Ok(Reply::Array(vec![
                bulk(b"a"),
                bulk(b"b"),
                bulk(b"c"),
                bulk(b"b")
            ]))
        );
        let txn = format!(
            r#"{{{HEADER},"succeeded":true,"responses":[{{"response_put":{{"header":{{"revision":"3"}}}}}}]}}"#
        );
        assert_eq!(
            parse_response(EtcdOp::Txn, 200, txn.as_bytes()),
            Ok(Reply::Status("OK".into()))
        );
        assert!(
            parse_response(EtcdOp::Txn, 200, put_ok.as_bytes())
                .expect("well-formed")
                .is_error()
        );
    }

    #[test]
    fn error_statuses_are_error_replies() {
        let body = br#"{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3}"#;
        let reply = parse_response(EtcdOp::Put, 400, body).expect("an error reply");
        assert_eq!(
            reply,
            Reply::Error("ETCD HTTP 400 code 3: etcdserver: key is not provided".into())
        );
        // Not etcd's JSON: the status and the start of the body.
        let reply =
            parse_response(EtcdOp::Get, 503, b"<html>\x00busy</html>").expect("error reply");
        assert_eq!(
            reply,
            Reply::Error("ETCD HTTP 503: <html> busy</html>".into())
        );
        let long = vec![b'x'; 10_000];
        let Reply::Error(text) = parse_response(EtcdOp::Get, 500, &long).expect("error reply")
        else {
            panic!("not an error reply");
        };
        assert!(text.len() < 300, "{text}");
    }

    #[test]
    fn malformed_success_answers_are_errors_not_panics() {
        let cases: &[(EtcdOp, &[u8])] = &[
            (EtcdOp::Put, b""),
            (EtcdOp::Put, b"not json"),
            (EtcdOp::Put, b"{}"), // no header: not etcd
            (EtcdOp::Put, b"[]"),
            (EtcdOp::Put, br#"{"header":5}"#),
            (EtcdOp::Get, br#"{"header":{},"kvs":5}"#),
            (EtcdOp::Get, br#"{"header":{},"kvs":[{"value":"!!!"}]}"#),
            (EtcdOp::Get, br#"{"header":{},"kvs":[{"value":7}]}"#),
            (
                EtcdOp::Get,
                br#"{"header":{},"kvs":[{"value":"YQ=="},{"value":"YQ=="}]}"#,
            ),
            (
                EtcdOp::Scan,
                br#"{"header":{},"kvs":[{"key":"%%","value":"YQ=="}]}"#,
            ),
            (EtcdOp::Txn, br#"{"header":{},"succeeded":"yes"}"#),
            (
                EtcdOp::Get,
                b"{\"header\":{},\"kvs\":[{\"value\":\"\xff\xfe\"}]}",
            ),
            (EtcdOp::Get, br#"{"header":{}"#),
        ];
        for (op, body) in cases {
            assert!(
                parse_response(*op, 200, body).is_err(),
                "{op:?} {}",
                String::from_utf8_lossy(body)
            );
        }
    }

    /// A one-connection fake server: reads requests (headers plus a
    /// Content-Length body) and answers each with the next canned bytes;
    /// after the last one it keeps the connection open without answering.
    async fn fake_server(answers: Vec<Vec<u8>>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            for answer in answers {
                // Read one request.
                loop {
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + length {
                            buf.drain(..end + 4 + length);
                            break;
                        }
                    }
                    let mut chunk = [0u8; 4096];
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                if socket.write_all(&answer).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        addr
    }

    async fn connect(addr: &str, body_bytes_max: usize) -> HttpConnection {
        HttpConnection::connect(
            addr,
            Duration::from_secs(5),
            Duration::from_millis(500),
            body_bytes_max,
        )
        .await
        .expect("connect")
    }

    fn ok_answer(body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn keep_alive_with_chunked_errors_and_timeout() {
        // etcd's error answer: chunked, with a trailer.
        let chunked = b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\
Trailer: Grpc-Trailer-Content-Type\r\nTransfer-Encoding: chunked\r\n\r\n\
1d\r\n{\"error\":\"x\",\"message\":\"bad\"}\r\n0\r\n\
Grpc-Trailer-Content-Type: application/grpc\r\n\r\n"
            .to_vec();
        let found = r#"{"header":{},"kvs":[{"key":"YQ==","value":"Yg=="}]}"#;
        let addr = fake_server(vec![
            ok_answer(r#"{"header":{}}"#),
            chunked,
            ok_answer(found),
        ])
        .await;
        let mut conn = connect(&addr, 1 << 20).await;
        let mut replies = Vec::new();
        conn.round_trip(&[put(b"a", b"b"), put(b"", b""), get(b"a")], |i, r, _| {
            replies.push((i, r))
        })
        .await
        .expect("three answers on one connection");
        assert_eq!(
            replies,
            vec![
                (0, Reply::Status("OK".into())),
                (1, Reply::Error("ETCD HTTP 400 code 0: bad".into())),
                (2, Reply::Bulk(Bytes::from_static(b"b"))),
            ]
        );
        // The server now stays silent: bounded by the reply timeout.
        let err = conn.request(&get(b"a")).await.expect_err("no answer");
        assert!(matches!(err, ClientError::ReplyTimeout(_)), "{err}");
    }

    #[tokio::test]
    async fn broken_http_is_an_error() {
        let huge_header = format!(
            "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\n{{}}",
            "a".repeat(2 * READ_BUF_BYTES_MAX)
        );
        let cases: Vec<(Vec<u8>, usize)> = vec![
            (b"garbage\r\n\r\n".to_vec(), 1 << 20),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"header\"".to_vec(),
                1 << 20,
            ),
            (huge_header.into_bytes(), 1 << 20),
            // A body over the allowed size.
            (
                ok_answer(&format!(r#"{{"header":{{}},"x":"{}"}}"#, "a".repeat(200))),
                100,
            ),
            // 200 but not etcd's JSON.
            (ok_answer("<html></html>"), 1 << 20),
        ];
        for (answer, body_max) in cases {
            let shown = String::from_utf8_lossy(&answer[..answer.len().min(60)]).into_owned();
            let addr = fake_server(vec![answer]).await;
            let mut conn = connect(&addr, body_max).await;
            let result = conn.request(&put(b"a", b"b")).await;
            assert!(result.is_err(), "{shown}: {result:?}");
        }
    }
}
