//! The Strata HTTP target (`--target http`): the same operations as the
//! RESP target, sent to Strata's HTTP/JSON API (`--http-listen`), one
//! request at a time per keep-alive connection, so it can be set against
//! etcd's gateway with the same load loop.
//!
//! | RESP          | Strata HTTP                                               |
//! |---------------|-----------------------------------------------------------|
//! | `SET k v`     | `PUT /v1/kv/<k>`, the value as the body                   |
//! | `GET k`       | `GET /v1/kv/<k>?raw` (linearizable in a cluster), 404 = nil |
//! | `MSET k v ..` | `POST /v1/txn`, one `set` per pair (all or nothing)        |
//! | `RANGE s e LIMIT n` | `GET /v1/kv/?start=<s>&end=<e>&limit=<n>&keys`, keys only |
//!
//! A scan asks for keys only (`&keys`): RESP's RANGE answers pairs, but the
//! benchmark counts answers, not bytes, and a JSON list of keys is what the
//! API offers without base64.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use hyper::Method;
use serde::Deserialize;
use strata_protocol::resp::Reply;

use crate::http::{Format, HttpRequest, snippet};

/// Which operation a request is, and so how its answer is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrataOp {
    /// PUT: answered `true`.
    Put,
    /// GET `?raw`: the bare value, or 404.
    Get,
    /// A range of keys: a JSON array of key strings.
    Scan,
    /// `/v1/txn`: 200 when every operation was applied.
    Txn,
}

/// Percent-encodes everything but RFC 3986's unreserved characters and
/// `:` (the benchmark's keys are `key:<digits>`), so any key is one path
/// segment or one query value.
fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn request(op: StrataOp, method: Method, path: String, body: Bytes) -> HttpRequest {
    HttpRequest {
        method,
        path,
        content_type: if op == StrataOp::Txn {
            "application/json"
        } else {
            "application/octet-stream"
        },
        body,
        format: Format::Strata(op),
    }
}

pub fn put(key: &[u8], value: &[u8]) -> HttpRequest {
    let path = format!("/v1/kv/{}", encode(key));
    request(
        StrataOp::Put,
        Method::PUT,
        path,
        Bytes::copy_from_slice(value),
    )
}

pub fn get(key: &[u8]) -> HttpRequest {
    let path = format!("/v1/kv/{}?raw", encode(key));
    request(StrataOp::Get, Method::GET, path, Bytes::new())
}

/// Keys from `start` to `end`, both inclusive, at most `limit`.
pub fn scan(start: &[u8], end: &[u8], limit: u64) -> HttpRequest {
    let path = format!(
        "/v1/kv/?start={}&end={}&limit={limit}&keys",
        encode(start),
        encode(end)
    );
    request(StrataOp::Scan, Method::GET, path, Bytes::new())
}

/// One transaction setting every key to `value`.
pub fn txn_put<K: AsRef<[u8]>>(keys: &[K], value: &[u8]) -> HttpRequest {
    let value = BASE64.encode(value);
    let mut body = String::with_capacity(2 + keys.len() * (48 + value.len()));
    body.push('[');
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        // serde_json quotes any key, binary ones too (lossily: the
        // benchmark's keys are ASCII).
        let key = serde_json::to_string(&String::from_utf8_lossy(key.as_ref()))
            .unwrap_or_else(|_| "\"\"".into());
        body.push_str(r#"{"KV":{"Verb":"set","Key":"#);
        body.push_str(&key);
        body.push_str(r#","Value":""#);
        body.push_str(&value);
        body.push_str(r#""}}"#);
    }
    body.push(']');
    request(StrataOp::Txn, Method::POST, "/v1/txn".into(), body.into())
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: String,
}

/// Reads one answer as the RESP reply the same operation would get: `Ok`
/// with an error reply for an error status (a 404 on GET is nil), `Err`
/// (the connection is unusable) for a success whose body is not what
/// Strata sends.
pub fn parse_response(op: StrataOp, status: u16, body: &[u8]) -> Result<Reply, String> {
    if op == StrataOp::Get && status == 404 {
        return Ok(Reply::Null);
    }
    if !(200..300).contains(&status) {
        let message = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(e) if !e.error.is_empty() => snippet(e.error.as_bytes()),
            _ => snippet(body),
        };
        return Ok(Reply::Error(format!("HTTP {status}: {message}").into()));
    }
    let malformed = |what: &str| format!("malformed Strata answer ({what}): {}", snippet(body));
    match op {
        StrataOp::Get => Ok(Reply::Bulk(Bytes::copy_from_slice(body))),
        StrataOp::Put => match body.trim_ascii() {
            b"true" => Ok(Reply::Status("OK".into())),
            b"false" => Ok(Reply::Error("PUT answered false".into())),
            _ => Err(malformed("PUT")),
        },
        StrataOp::Txn => Ok(Reply::Status("OK".into())),
        StrataOp::Scan => {
            let keys: Vec<String> =
                serde_json::from_slice(body).map_err(|_| malformed("a key list"))?;
            Ok(Reply::Array(
                keys.into_iter()
                    .map(|k| Reply::Bulk(Bytes::from(k)))
                    .collect(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_path_segment() {
        assert_eq!(put(b"key:0001", b"v").path, "/v1/kv/key:0001");
        assert_eq!(get(b"a/b c%").path, "/v1/kv/a%2Fb%20c%25?raw");
        assert_eq!(get(b"\xff").path, "/v1/kv/%FF?raw");
        assert_eq!(
            scan(b"a", b"b&c", 5).path,
            "/v1/kv/?start=a&end=b%26c&limit=5&keys"
        );
        assert_eq!(put(b"k", b"\x00v").body.as_ref(), b"\x00v");
    }

    #[test]
    fn txn_is_consul_shaped() {
        let r = txn_put(&[b"a".as_slice(), b"\"q"], b"v");
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
        assert_eq!(
            v,
            serde_json::json!([
                {"KV": {"Verb": "set", "Key": "a", "Value": "dg=="}},
                {"KV": {"Verb": "set", "Key": "\"q", "Value": "dg=="}},
            ])
        );
        assert_eq!(r.method, Method::POST);
    }

    #[test]
    fn answers_read_as_resp_replies() {
        let get = StrataOp::Get;
        assert_eq!(parse_response(get, 404, b"{}"), Ok(Reply::Null));
        assert_eq!(
            parse_response(get, 200, b"v\x00"),
            Ok(Reply::Bulk(Bytes::from_static(b"v\x00")))
        );
        assert_eq!(
            parse_response(StrataOp::Put, 200, b"true\n"),
            Ok(Reply::Status("OK".into()))
        );
        assert!(parse_response(StrataOp::Put, 200, b"<html>").is_err());
        assert_eq!(
            parse_response(StrataOp::Put, 503, br#"{"error":"no leader"}"#),
            Ok(Reply::Error("HTTP 503: no leader".into()))
        );
        assert_eq!(
            parse_response(StrataOp::Scan, 200, br#"["a","b"]"#),
            Ok(Reply::Array(vec![
                Reply::Bulk(Bytes::from_static(b"a")),
                Reply::Bulk(Bytes::from_static(b"b")),
            ]))
        );
        assert!(parse_response(StrataOp::Scan, 200, b"{").is_err());
    }
}
