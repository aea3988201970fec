//! The key-value API's codec, as `text.rs` is the text protocol's: a
//! request's path and query become the arguments of the command it stands
//! for, and that command's `Reply` becomes JSON. No command semantics
//! here: `crate::cmd::kv` and the other commands have them.
//!
//! Keys are bytes: the path after `/v1/kv/` and query values are
//! percent-decoded (`%FF` is a byte; in the query `+` is a space). In
//! JSON a key or value that is UTF-8 is a plain string; one that is not
//! is base64, and the entry says so (`"KeyEncoding"`, `"Encoding"`).

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::Serialize;
use strata_protocol::resp::Reply;

use super::ApiError;
use crate::runner::Ran;

/// The header with the store's version a response was read at (or a
/// write answered at): the `index` of the next blocking query.
pub const INDEX_HEADER: &str = "x-strata-index";
/// The same, under Consul's name, for clients written for Consul.
pub const CONSUL_INDEX_HEADER: &str = "x-consul-index";
/// Query parameters one request may carry.
const QUERY_PARAMS_MAX: usize = 16;

/// A request's query: names and percent-decoded values, in order.
pub struct Query(Vec<(String, Bytes)>);

impl Query {
    /// Parses `raw` (`a=1&b&c=%FF`); names must be among `known`.
    pub fn parse(raw: Option<&str>, known: &[&str]) -> Result<Query, ApiError> {
        let mut params = Vec::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            if params.len() == QUERY_PARAMS_MAX {
                return Err(ApiError::bad_request(format!(
                    "more than {QUERY_PARAMS_MAX} query parameters"
                )));
            }
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !known.contains(&name) {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {name:?}; this endpoint takes: {}",
                    known.join(", ")
                )));
            }
            let value = percent_decode(value.as_bytes(), true)?;
            params.push((name.to_string(), Bytes::from(value)));
        }
        Ok(Query(params))
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    pub fn bytes(&self, name: &str) -> Option<&Bytes> {
        self.0.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// A non-negative integer parameter.
    pub fn u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        let Some(raw) = self.bytes(name) else {
            return Ok(None);
        };
        std::str::from_utf8(raw)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("{name} must be a non-negative integer")))
    }

    /// A duration parameter in milliseconds (see [`duration_ms`]).
    pub fn duration_ms(&self, name: &str) -> Result<Option<u64>, ApiError> {
        let Some(raw) = self.bytes(name) else {
            return Ok(None);
        };
        duration_ms(raw)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!(
                "{name} must be a duration: a number with a unit (ms, s, m, h) or seconds alone, like 10s"
            )))
    }
}

/// `1500ms`, `10s`, `2m`, `1h`, or a plain number of seconds, as
/// Consul's durations (a fraction is allowed: `1.5s`); None otherwise or
/// past a day's worth (any limit that takes one is far below).
pub fn duration_ms(raw: &[u8]) -> Option<u64> {
    const DAY_MS: f64 = 86_400_000.0;
    let text = std::str::from_utf8(raw).ok()?;
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_ms = match unit {
        "ms" => 1.0,
        "" | "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return None,
    };
    let n: f64 = number.parse().ok()?;
    let ms = n * unit_ms;
    (ms.is_finite() && (0.0..=DAY_MS).contains(&ms)).then_some(ms.round() as u64)
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`).
pub fn percent_decode(raw: &[u8], plus_is_space: bool) -> Result<Vec<u8>, ApiError> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' => {
                let byte = raw
                    .get(i + 1..i + 3)
                    .and_then(|h| Some(hex(h[0])? << 4 | hex(h[1])?))
                    .ok_or_else(|| ApiError::bad_request("bad percent-encoding in the URL"))?;
                out.push(byte);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The key a `/v1/kv/<key>` path names (empty for `/v1/kv/`).
pub fn key_of(path: &str) -> Result<Bytes, ApiError> {
    let rest = path
        .strip_prefix("/v1/kv")
        .map(|r| r.strip_prefix('/').unwrap_or(r))
        .unwrap_or("");
    Ok(Bytes::from(percent_decode(rest.as_bytes(), false)?))
}

/// Text as a JSON string: itself when UTF-8, else base64 and the name of
/// that encoding.
fn text_or_base64(bytes: &[u8]) -> (String, Option<&'static str>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), None),
        Err(_) => (BASE64.encode(bytes), Some("base64")),
    }
}

/// One key's entry, Consul's field names where Consul has the field.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Entry {
    key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_encoding: Option<&'static str>,
    /// None: a deleted key (`&changed`), or a transaction's write.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    /// `text` or `base64`, when there is a value.
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<&'static str>,
    modify_index: u64,
    /// Milliseconds left before it expires; null when it does not.
    ttl_ms: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
}

impl Entry {
    /// From a command's `[value, version, expiretime-ms]` (`cmd::kv`);
    /// `now_ms` turns the expiry time into what is left of it.
    pub fn new(key: &[u8], fields: &[Reply], now_ms: u64) -> Option<Entry> {
        let [value, Reply::Integer(version), Reply::Integer(at)] = fields else {
            return None;
        };
        let (key, key_encoding) = text_or_base64(key);
        let (value, encoding, deleted) = match value {
            Reply::Bulk(v) => {
                let (text, enc) = text_or_base64(v);
                (Some(text), Some(enc.unwrap_or("text")), false)
            }
            _ => (None, None, true),
        };
        let ttl_ms = u64::try_from(*at).ok().map(|at| at.saturating_sub(now_ms));
        Some(Entry {
            key,
            key_encoding,
            value,
            encoding,
            modify_index: u64::try_from(*version).unwrap_or(0),
            ttl_ms,
            deleted,
        })
    }
}

/// A write's result in a transaction: its key and the version it was
/// stamped with (Consul's shape: no value).
pub fn written_json(key: &[u8], version: u64) -> serde_json::Value {
    let mut json = match key_json(key) {
        serde_json::Value::String(text) => serde_json::json!({ "Key": text }),
        object => object,
    };
    json["ModifyIndex"] = version.into();
    json
}

/// A key alone (`?keys`): a string when UTF-8, else an object with the
/// base64 and its encoding.
pub fn key_json(key: &[u8]) -> serde_json::Value {
    match text_or_base64(key) {
        (text, None) => serde_json::Value::String(text),
        (b64, Some(enc)) => serde_json::json!({"Key": b64, "KeyEncoding": enc}),
    }
}

/// One item of a listing: an entry, or a key alone.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Listed {
    Entry(Entry),
    Key(serde_json::Value),
}

/// A listing's `[entries, more, (full)]` as JSON: entries or keys.
pub fn listing_json(items: &[Reply], now_ms: u64) -> Result<Vec<Listed>, ApiError> {
    items
        .iter()
        .map(|item| match item {
            Reply::Bulk(key) => Ok(Listed::Key(key_json(key))),
            Reply::Array(fields) => match fields.split_first() {
                Some((Reply::Bulk(key), rest)) => Entry::new(key, rest, now_ms)
                    .map(Listed::Entry)
                    .ok_or_else(unexpected),
                _ => Err(unexpected()),
            },
            _ => Err(unexpected()),
        })
        .collect()
}

pub fn unexpected() -> ApiError {
    ApiError::internal("unexpected reply from the command")
}

/// An error reply of a command as the HTTP status that says it; a typed
/// failure of the write path or read barrier when there is one.
pub fn error_of(ran: Ran) -> ApiError {
    if let Some(e) = ran.failed {
        return ApiError::from(e);
    }
    let Reply::Error(text) = &ran.reply else {
        return unexpected();
    };
    let text: &str = text;
    let message = text.strip_prefix("ERR ").unwrap_or(text).to_string();
    if text.starts_with("CLUSTERDOWN") {
        ApiError::no_leader(message)
    } else if text.starts_with("TRYAGAIN") {
        ApiError::unavailable("try_again", message)
    } else if text.contains("shutting down") {
        ApiError::unavailable("shutting_down", message)
    } else if text.contains("too large") || text.contains("reply-elements-max") {
        ApiError::too_large(message)
    } else if text.starts_with("ERR storage") || text.contains("corrupt") {
        ApiError::internal(message)
    } else {
        ApiError::bad_request(message)
    }
}

/// The index headers, both names.
pub fn index_headers(index: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(INDEX_HEADER, HeaderValue::from(index));
    headers.insert(CONSUL_INDEX_HEADER, HeaderValue::from(index));
    headers
}

/// A JSON answer with the index headers (and `extra` ones).
pub fn json_response(
    status: StatusCode,
    index: u64,
    body: impl Serialize,
    extra: &[(&'static str, &'static str)],
) -> Response {
    let mut headers = index_headers(index);
    for &(name, value) in extra {
        headers.insert(name, HeaderValue::from_static(value));
    }
    (status, headers, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_consuls() {
        assert_eq!(duration_ms(b"10s"), Some(10_000));
        assert_eq!(duration_ms(b"1500ms"), Some(1_500));
        assert_eq!(duration_ms(b"1.5s"), Some(1_500));
        assert_eq!(duration_ms(b"2m"), Some(120_000));
        assert_eq!(duration_ms(b"1h"), Some(3_600_000));
        assert_eq!(duration_ms(b"7"), Some(7_000));
        for bad in [&b""[..], b"s", b"-1s", b"10x", b"1e3s", b"25h", b"\xff"] {
            assert_eq!(duration_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn keys_and_queries_are_percent_decoded_bytes() {
        assert_eq!(key_of("/v1/kv/a/b%20c").unwrap(), Bytes::from("a/b c"));
        assert_eq!(key_of("/v1/kv/%FF+").unwrap(), Bytes::from(&b"\xff+"[..]));
        assert_eq!(key_of("/v1/kv/").unwrap(), Bytes::new());
        assert!(key_of("/v1/kv/%F").is_err());
        let q = Query::parse(
            Some("recurse&start=a+b&limit=3"),
            &["recurse", "start", "limit"],
        );
        let q = q.unwrap();
        assert!(q.has("recurse"));
        assert_eq!(q.bytes("start").unwrap(), &Bytes::from("a b"));
        assert_eq!(q.u64("limit").unwrap(), Some(3));
        assert!(Query::parse(Some("nope=1"), &["recurse"]).is_err());
        let bad = Query::parse(Some("limit=-1"), &["limit"]).unwrap();
        assert!(bad.u64("limit").is_err());
    }

    #[test]
    fn entries_say_how_their_bytes_are_encoded() {
        let fields = [
            Reply::Bulk(Bytes::from_static(b"\xff\x00")),
            Reply::Integer(7),
            Reply::Integer(10_500),
        ];
        let e = serde_json::to_value(Entry::new(b"k", &fields, 10_000).unwrap()).unwrap();
        assert_eq!(e["Key"], "k");
        assert!(e.get("KeyEncoding").is_none());
        assert_eq!(e["Value"], "/wA=");
        assert_eq!(e["Encoding"], "base64");
        assert_eq!(e["ModifyIndex"], 7);
        assert_eq!(e["TtlMs"], 500);
        let fields = [
            Reply::Bulk(Bytes::from("hé")),
            Reply::Integer(1),
            Reply::Integer(-1),
        ];
        let e = serde_json::to_value(Entry::new(b"\xfe", &fields, 0).unwrap()).unwrap();
        assert_eq!(e["Value"], "hé");
        assert_eq!(e["Encoding"], "text");
        assert_eq!(e["KeyEncoding"], "base64");
        assert!(e["TtlMs"].is_null());
        assert_eq!(key_json(b"a"), serde_json::json!("a"));
    }
}
