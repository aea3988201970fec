//! `/v1/kv/<key>`: keys over HTTP, shaped like Consul's KV API. Every
//! request becomes one command (two for `DELETE ?recurse`) run by a
//! [`Runner`], as a RESP connection would run it (`crate::runner`):
//!
//! | request | command |
//! |---|---|
//! | `GET /v1/kv/k` | `KV.GET k` |
//! | `GET …?raw` | `GET k` |
//! | `GET …?recurse`, `?keys` (`&limit=`, `&changed`) | `KV.PREFIX k [KEYSONLY] [LIMIT n] [CHANGED index]` |
//! | `GET /v1/kv/?start=a&end=b` (`&limit=`, `&keys`) | `KV.RANGE a b [LIMIT n] [KEYSONLY]` |
//! | `PUT /v1/kv/k` (`?ttl=`) | `SET k body [PX ms]` |
//! | `PUT …?cas=n` | `KV.TXN CAS k n body ttl-ms` |
//! | `DELETE /v1/kv/k` | `DEL k` |
//! | `DELETE …?cas=n` | `KV.TXN DELCAS k n` |
//! | `DELETE …?recurse` | `KV.PREFIX k KEYSONLY LIMIT max`, then `DEL keys…` |
//!
//! Reads are linearizable unless `?stale`; `?index=&wait=` blocks first
//! (`blocking.rs`). Every answer carries the index headers.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use strata_protocol::resp::Reply;
use tower_http::timeout::TimeoutLayer;

use super::blocking::BLOCKING_WAIT_MS_MAX;
use super::kv_codec::{
    Entry, Query, error_of, index_headers, json_response, key_of, listing_json, unexpected,
};
use super::{ApiError, AppState, blocking};
use crate::changes::Scope;
use crate::runner::{Ran, Runner};

const GET_PARAMS: &[&str] = &[
    "raw", "recurse", "keys", "start", "end", "limit", "index", "wait", "changed", "stale",
];
const PUT_PARAMS: &[&str] = &["cas", "ttl"];
const DELETE_PARAMS: &[&str] = &["cas", "recurse"];

/// Bound on one request's handler beyond a blocking query's longest wait:
/// a guard (a read or write is bounded by the write path's own timeouts).
pub const KV_TIMEOUT_MARGIN_MS: u64 = 60_000;

/// The key-value API's routes (`/v1/kv/…`, `/v1/txn`).
pub fn routes() -> Router<AppState> {
    let bound = Duration::from_millis(BLOCKING_WAIT_MS_MAX + KV_TIMEOUT_MARGIN_MS);
    Router::new()
        .route("/v1/kv", get(read).put(write).delete(delete))
        .route("/v1/kv/", get(read).put(write).delete(delete))
        .route("/v1/kv/{*key}", get(read).put(write).delete(delete))
        .route("/v1/txn", post(super::txn::txn))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            bound,
        ))
}

pub fn word(w: &'static str) -> Bytes {
    Bytes::from_static(w.as_bytes())
}

pub fn number(n: u64) -> Bytes {
    Bytes::from(n.to_string())
}

/// A runner for this request: its client's address, and `stale`.
pub fn runner(state: &AppState, req: &Parts, stale: bool) -> Runner {
    let peer = req
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "http".to_string(), |c| c.0.to_string());
    Runner::new(state.shared.clone(), peer, stale)
}

/// The request's body, whole, within the request size limit (413 past it).
pub async fn body_of(state: &AppState, body: Body) -> Result<Bytes, ApiError> {
    let max = state.shared.config.request_size_bytes_max;
    axum::body::to_bytes(body, max).await.map_err(|e| {
        ApiError::too_large(format!(
            "the body is over {max} bytes (request-size-bytes-max), or broke off: {e}"
        ))
    })
}

/// 404 with the index headers: a blocking query on a missing key needs
/// the index as much as one on a present key.
fn not_found_at(index: u64, message: String) -> Response {
    let mut response = ApiError::not_found(message).into_response();
    response.headers_mut().extend(index_headers(index));
    response
}

fn answer(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

// Handlers take the request apart first: its body is not `Sync`, so a
// reference to the whole request cannot be held across an await.
async fn read(State(state): State<AppState>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    answer(read_inner(&state, &parts).await)
}

async fn read_inner(state: &AppState, req: &Parts) -> Result<Response, ApiError> {
    let key = key_of(req.uri.path())?;
    let q = Query::parse(req.uri.query(), GET_PARAMS)?;
    let listing = q.has("recurse") || q.has("keys");
    if q.has("start") || q.has("end") {
        if q.has("index") || q.has("recurse") || q.has("changed") {
            return Err(ApiError::bad_request(
                "a range (?start=&end=) takes limit, keys and stale only",
            ));
        }
        return range(&mut runner(state, req, q.has("stale")), &q).await;
    }
    if q.has("changed") && !listing {
        return Err(ApiError::bad_request(
            "&changed goes with ?recurse or ?keys",
        ));
    }
    let scope = if listing {
        Scope::Prefix(key.clone())
    } else {
        Scope::Key(key.clone())
    };
    blocking::wait_for_change(state, scope, &q).await?;
    // After the wait: a runner counts as a writer while it lives (the
    // inline commit rounds wait for writers that may join them).
    let mut runner = runner(state, req, q.has("stale"));
    if listing {
        list(&mut runner, key, &q).await
    } else if q.has("raw") {
        raw(&mut runner, key).await
    } else {
        one(&mut runner, key).await
    }
}

fn shown(key: &[u8]) -> String {
    crate::cmd::show(key, 200)
}

async fn one(runner: &mut Runner, key: Bytes) -> Result<Response, ApiError> {
    let ran = runner.run(vec![word("KV.GET"), key.clone()]).await;
    match &ran.reply {
        Reply::Null => Ok(not_found_at(ran.index, format!("no key {:?}", shown(&key)))),
        Reply::Array(fields) => {
            let entry =
                Entry::new(&key, fields, strata_storage::now_ms()).ok_or_else(unexpected)?;
            Ok(json_response(StatusCode::OK, ran.index, entry, &[]))
        }
        _ => Err(error_of(ran)),
    }
}

async fn raw(runner: &mut Runner, key: Bytes) -> Result<Response, ApiError> {
    let ran = runner.run(vec![word("GET"), key.clone()]).await;
    match ran.reply {
        Reply::Null => Ok(not_found_at(ran.index, format!("no key {:?}", shown(&key)))),
        Reply::Bulk(value) => {
            let mut headers = index_headers(ran.index);
            let octets = HeaderValue::from_static("application/octet-stream");
            headers.insert(header::CONTENT_TYPE, octets);
            Ok((StatusCode::OK, headers, value).into_response())
        }
        _ => Err(error_of(ran)),
    }
}

/// LIMIT and KEYSONLY, as the query asks.
fn listing_args(args: &mut Vec<Bytes>, q: &Query) -> Result<(), ApiError> {
    if let Some(limit) = q.u64("limit")? {
        args.extend([word("LIMIT"), number(limit)]);
    }
    if q.has("keys") {
        args.push(word("KEYSONLY"));
    }
    Ok(())
}

async fn list(runner: &mut Runner, prefix: Bytes, q: &Query) -> Result<Response, ApiError> {
    let mut args = vec![word("KV.PREFIX"), prefix.clone()];
    listing_args(&mut args, q)?;
    let changed = q.has("changed");
    if changed {
        let since = q.u64("index")?.unwrap_or(0);
        args.extend([word("CHANGED"), number(since)]);
    }
    let ran = runner.run(args).await;
    if ran.reply.is_error() {
        return Err(error_of(ran));
    }
    let (items, more, full) = listing_parts(&ran)?;
    let json = listing_json(items, strata_storage::now_ms())?;
    let mut extra = Vec::new();
    if more {
        extra.push(("x-strata-more", "true"));
    }
    if changed {
        extra.push(("x-strata-changed", if full { "full" } else { "delta" }));
    } else if json.is_empty() {
        return Ok(not_found_at(
            ran.index,
            format!("no key under {:?}", shown(&prefix)),
        ));
    }
    Ok(json_response(StatusCode::OK, ran.index, json, &extra))
}

/// A listing's `[entries, more, (full)]` (errors are taken out first:
/// [`error_of`]).
fn listing_parts(ran: &Ran) -> Result<(&[Reply], bool, bool), ApiError> {
    match &ran.reply {
        Reply::Array(parts) => match parts.as_slice() {
            [Reply::Array(items), Reply::Integer(more), rest @ ..] => {
                let full = matches!(rest, [Reply::Integer(1)]);
                Ok((items, *more == 1, full))
            }
            _ => Err(unexpected()),
        },
        _ => Err(unexpected()),
    }
}

async fn range(runner: &mut Runner, q: &Query) -> Result<Response, ApiError> {
    let (Some(start), Some(end)) = (q.bytes("start"), q.bytes("end")) else {
        return Err(ApiError::bad_request(
            "a range takes both ?start= and &end=",
        ));
    };
    let mut args = vec![word("KV.RANGE"), start.clone(), end.clone()];
    listing_args(&mut args, q)?;
    let ran = runner.run(args).await;
    if ran.reply.is_error() {
        return Err(error_of(ran));
    }
    let (items, more, _) = listing_parts(&ran)?;
    let json = listing_json(items, strata_storage::now_ms())?;
    let extra: &[_] = if more {
        &[("x-strata-more", "true")]
    } else {
        &[]
    };
    Ok(json_response(StatusCode::OK, ran.index, json, extra))
}

async fn write(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    answer(write_inner(&state, &parts, body).await)
}

async fn write_inner(state: &AppState, req: &Parts, body: Body) -> Result<Response, ApiError> {
    let key = key_of(req.uri.path())?;
    let q = Query::parse(req.uri.query(), PUT_PARAMS)?;
    let cas = q.u64("cas")?;
    let ttl_ms = q.duration_ms("ttl")?;
    if ttl_ms == Some(0) {
        return Err(ApiError::bad_request("ttl must be at least 1ms"));
    }
    let value = body_of(state, body).await?;
    let mut runner = runner(state, req, false);
    let Some(version) = cas else {
        let mut args = vec![word("SET"), key, value];
        if let Some(ms) = ttl_ms {
            args.extend([word("PX"), number(ms)]);
        }
        let ran = runner.run(args).await;
        return match ran.reply {
            Reply::Status(_) => Ok(json_response(StatusCode::OK, ran.index, true, &[])),
            _ => Err(error_of(ran)),
        };
    };
    let ttl = number(ttl_ms.unwrap_or(0));
    let args = vec![
        word("KV.TXN"),
        word("CAS"),
        key,
        number(version),
        value,
        ttl,
    ];
    checked(runner.run(args).await)
}

/// A single compare-and-set's answer: `true` (200, the index header the
/// write's version), or `false` (409).
fn checked(ran: Ran) -> Result<Response, ApiError> {
    match &ran.reply {
        Reply::Array(parts) => match parts.as_slice() {
            [Reply::Status(s), Reply::Integer(version), ..] if s == "OK" => {
                let version = u64::try_from(*version).unwrap_or(0);
                Ok(json_response(StatusCode::OK, version, true, &[]))
            }
            [Reply::Status(s), ..] if s == "CONFLICT" => {
                Ok(json_response(StatusCode::CONFLICT, ran.index, false, &[]))
            }
            _ => Err(unexpected()),
        },
        _ => Err(error_of(ran)),
    }
}

async fn delete(State(state): State<AppState>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    answer(delete_inner(&state, &parts).await)
}

async fn delete_inner(state: &AppState, req: &Parts) -> Result<Response, ApiError> {
    let key = key_of(req.uri.path())?;
    let q = Query::parse(req.uri.query(), DELETE_PARAMS)?;
    let mut runner = runner(state, req, false);
    if q.has("recurse") {
        if q.has("cas") {
            return Err(ApiError::bad_request(
                "?recurse and ?cas do not go together",
            ));
        }
        return delete_prefix(state, &mut runner, key).await;
    }
    if let Some(version) = q.u64("cas")? {
        let args = vec![word("KV.TXN"), word("DELCAS"), key, number(version)];
        return checked(runner.run(args).await);
    }
    let ran = runner.run(vec![word("DEL"), key]).await;
    match ran.reply {
        Reply::Integer(_) => Ok(json_response(StatusCode::OK, ran.index, true, &[])),
        _ => Err(error_of(ran)),
    }
}

/// The keys under `prefix` as of a read, then one DEL of them all (one
/// mutation: all of them or none). A key created under the prefix after
/// the read stays. More keys than `reply-elements-max`: refused, nothing
/// deleted.
async fn delete_prefix(
    state: &AppState,
    runner: &mut Runner,
    prefix: Bytes,
) -> Result<Response, ApiError> {
    let max = state.shared.config.reply_elements_max as u64;
    let args = vec![
        word("KV.PREFIX"),
        prefix,
        word("KEYSONLY"),
        word("LIMIT"),
        number(max),
    ];
    let ran = runner.run(args).await;
    if ran.reply.is_error() {
        return Err(error_of(ran));
    }
    let (items, more, _) = listing_parts(&ran)?;
    if more {
        return Err(ApiError::too_large(format!(
            "more than {max} keys under the prefix (reply-elements-max); delete longer prefixes first"
        )));
    }
    let mut del = vec![word("DEL")];
    for item in items {
        let Reply::Bulk(key) = item else {
            return Err(unexpected());
        };
        del.push(key.clone());
    }
    if del.len() == 1 {
        return Ok(json_response(StatusCode::OK, ran.index, true, &[]));
    }
    let ran = runner.run(del).await;
    match ran.reply {
        Reply::Integer(_) => Ok(json_response(StatusCode::OK, ran.index, true, &[])),
        _ => Err(error_of(ran)),
    }
}
