//! `POST /v1/txn`: an atomic batch in Consul's request format,
//! `[{"KV": {"Verb": "set", "Key": "k", "Value": "<base64>"}}, …]`, run
//! as one `KV.TXN` command (`crate::cmd::kv`): one mutation, so one group
//! on a single node and one log entry in a cluster, all or nothing.
//!
//! Verbs: `set`, `cas` (`Index`), `get`, `delete`, `delete-cas`
//! (`Index`), `check-index` (`Index`), `check-not-exists`; `TtlMs` on a
//! set or cas is Strata's. Checks compare exact versions against the state
//! before the batch. Answers: 200 `{"Results": [...], "Errors": null,
//! "Index": v}` with a result per set, cas (its key and new
//! `ModifyIndex`) and get (the entry, or null for a missing key); or 409
//! `{"Results": null, "Errors": [{"OpIndex": i, "What": "..."}]}` when a
//! check failed, and nothing was written.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::Deserialize;
use strata_protocol::resp::Reply;

use super::kv::{body_of, number, runner, word};
use super::kv_codec::{Entry, Query, error_of, json_response, unexpected, written_json};
use super::{ApiError, AppState};
use crate::runner::Ran;

#[derive(Deserialize)]
struct TxnOp {
    #[serde(rename = "KV")]
    kv: Option<KvOp>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KvOp {
    verb: String,
    key: String,
    value: Option<String>,
    index: Option<u64>,
    ttl_ms: Option<u64>,
    flags: Option<u64>,
    session: Option<String>,
}

/// What an op answers in `Results`.
enum Answer {
    /// set, cas: the key and the batch's version.
    Written(Bytes),
    /// get: the entry, or null.
    Read(Bytes),
    /// delete, delete-cas: an answer the command gives, not shown.
    Hidden,
}

/// The command's arguments, and what to make of its reply.
struct Plan {
    args: Vec<Bytes>,
    answers: Vec<Answer>,
    /// For each check, in order, the op that made it.
    check_ops: Vec<usize>,
}

pub async fn txn(State(state): State<AppState>, req: Request) -> Response {
    run(&state, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn run(state: &AppState, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    Query::parse(parts.uri.query(), &[])?;
    // Not a "simple" request: a web page cannot make a browser send it
    // to a loopback port without a CORS preflight, which is never granted.
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the ops as Content-Type: application/json (curl --json)",
        ));
    }
    let body = body_of(state, body).await?;
    let ops: Vec<TxnOp> = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a list of ops: {e}")))?;
    if ops.is_empty() {
        return Err(ApiError::bad_request("a transaction needs at least one op"));
    }
    let plan = plan(ops)?;
    let ran = runner(state, &parts, false).run(plan.args).await;
    respond(ran, &plan.answers, &plan.check_ops)
}

fn plan(ops: Vec<TxnOp>) -> Result<Plan, ApiError> {
    let mut plan = Plan {
        args: vec![word("KV.TXN")],
        answers: Vec::new(),
        check_ops: Vec::new(),
    };
    for (i, op) in ops.into_iter().enumerate() {
        let bad = |what: &str| ApiError::bad_request(format!("op {i}: {what}"));
        let Some(kv) = op.kv else {
            return Err(bad("only KV ops are supported"));
        };
        if kv.flags.unwrap_or(0) != 0 || kv.session.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(bad("Flags and Session are not supported"));
        }
        plan_op(&mut plan, i, kv).map_err(|what| bad(&what))?;
    }
    Ok(plan)
}

fn plan_op(plan: &mut Plan, i: usize, kv: KvOp) -> Result<(), String> {
    let key = Bytes::from(kv.key);
    let index = || kv.index.map(number).ok_or("this verb needs an Index");
    let value = || -> Result<Bytes, String> {
        let text = kv.value.as_deref().unwrap_or("");
        BASE64
            .decode(text)
            .map(Bytes::from)
            .map_err(|e| format!("Value is not base64: {e}"))
    };
    let ttl = number(kv.ttl_ms.unwrap_or(0));
    let args = &mut plan.args;
    match kv.verb.as_str() {
        "set" => {
            args.extend([word("SET"), key.clone(), value()?, ttl]);
            plan.answers.push(Answer::Written(key));
        }
        "cas" => {
            args.extend([word("CAS"), key.clone(), index()?, value()?, ttl]);
            plan.answers.push(Answer::Written(key));
            plan.check_ops.push(i);
        }
        "get" => {
            args.extend([word("GET"), key.clone()]);
            plan.answers.push(Answer::Read(key));
        }
        "delete" => {
            args.extend([word("DEL"), key]);
            plan.answers.push(Answer::Hidden);
        }
        "delete-cas" => {
            args.extend([word("DELCAS"), key, index()?]);
            plan.answers.push(Answer::Hidden);
            plan.check_ops.push(i);
        }
        "check-index" => {
            args.extend([word("CHECK"), key, index()?]);
            plan.check_ops.push(i);
        }
        "check-not-exists" => {
            args.extend([word("CHECK"), key, number(0)]);
            plan.check_ops.push(i);
        }
        other => {
            return Err(format!(
                "verb {other:?} is not supported (set, cas, get, delete, delete-cas, \
                 check-index, check-not-exists)"
            ));
        }
    }
    Ok(())
}

/// KV.TXN's reply as Consul's answer.
fn respond(ran: Ran, answers: &[Answer], check_ops: &[usize]) -> Result<Response, ApiError> {
    let Reply::Array(parts) = &ran.reply else {
        return Err(error_of(ran));
    };
    match parts.as_slice() {
        [
            Reply::Status(s),
            Reply::Integer(version),
            Reply::Array(outcomes),
        ] if s == "OK" => {
            let version = u64::try_from(*version).unwrap_or(0);
            let results = results(answers, outcomes, version)?;
            let body = serde_json::json!({"Results": results, "Errors": null, "Index": version});
            Ok(json_response(StatusCode::OK, version, body, &[]))
        }
        [Reply::Status(s), Reply::Integer(check), Reply::Integer(at)] if s == "CONFLICT" => {
            let op = usize::try_from(*check)
                .ok()
                .and_then(|c| check_ops.get(c))
                .copied()
                .ok_or_else(unexpected)?;
            let what = format!("check failed: the key's index is {at}");
            let body = serde_json::json!({
                "Results": null,
                "Errors": [{"OpIndex": op, "What": what}],
            });
            Ok(json_response(StatusCode::CONFLICT, ran.index, body, &[]))
        }
        _ => Err(unexpected()),
    }
}

/// One result per set, cas and get, in op order.
fn results(
    answers: &[Answer],
    outcomes: &[Reply],
    version: u64,
) -> Result<Vec<serde_json::Value>, ApiError> {
    if answers.len() != outcomes.len() {
        return Err(unexpected());
    }
    let now_ms = strata_storage::now_ms();
    let mut out = Vec::new();
    for (answer, outcome) in answers.iter().zip(outcomes) {
        let kv = match (answer, outcome) {
            (Answer::Hidden, _) => continue,
            (Answer::Written(key), _) => Ok(written_json(key, version)),
            (Answer::Read(key), Reply::Array(records)) => match records.as_slice() {
                [Reply::Null] => Ok(serde_json::Value::Null),
                [Reply::Array(fields)] => {
                    let entry = Entry::new(key, fields, now_ms).ok_or_else(unexpected)?;
                    serde_json::to_value(entry)
                }
                _ => return Err(unexpected()),
            },
            (Answer::Read(_), _) => return Err(unexpected()),
        };
        out.push(serde_json::json!({ "KV": kv.map_err(|_| unexpected())? }));
    }
    Ok(out)
}
