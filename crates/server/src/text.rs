//! The line text protocol: `PUT`, `BATCHPUT`, `READ`, `READRANGE`, `DELETE`.
//!
//! Same store, same write path as RESP; requests are answered one line at a
//! time, in order. Keys and values use the escapes of
//! [`strata_protocol::text`], so any bytes can travel on one line.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use strata_protocol::text::{
    LineReader, TextError, TextRequest, escape_key, escape_value, looks_like_http, parse_line,
};
use strata_storage::{Mutation, Op, Outcome, SetCondition, SetExpiry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::idle::IdleTimer;
use crate::shared::{PathError, Shared};

const REPLY_BUFFER_BYTES_MAX: usize = 1024 * 1024;

pub async fn serve(stream: TcpStream, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    if let Err(e) = run(stream, &shared, &mut shutdown).await {
        tracing::debug!(error = %e, "text connection closed");
    }
}

async fn run(
    mut stream: TcpStream,
    shared: &Shared,
    shutdown: &mut watch::Receiver<bool>,
) -> std::io::Result<()> {
    let idle_ms = shared.config.idle_timeout_ms;
    // One lazily re-armed timer per connection, as on RESP connections
    // (idle.rs says why not a timeout around every read).
    let mut idle = IdleTimer::new((idle_ms > 0).then(|| Duration::from_millis(idle_ms)));
    let line_max = shared.config.request_size_bytes_max;
    let mut reader = LineReader::new();
    let mut read_buf = BytesMut::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        loop {
            match reader.take_line(&mut read_buf, line_max) {
                Ok(Some(line)) if looks_like_http(&line) => {
                    // An HTTP request: run neither it nor what follows.
                    let peer = stream.peer_addr().map(|a| a.to_string());
                    crate::http_probe::warn(peer.as_deref().unwrap_or("unknown"));
                    shared.stats.protocol_errors.fetch_add(1, Relaxed);
                    write_out(&mut stream, &mut out, &mut idle).await?;
                    return Ok(());
                }
                Ok(Some(line)) => {
                    shared.stats.commands_processed.fetch_add(1, Relaxed);
                    handle_line(shared, &line, &mut out).await;
                    if out.len() >= REPLY_BUFFER_BYTES_MAX {
                        write_out(&mut stream, &mut out, &mut idle).await?;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    shared.stats.protocol_errors.fetch_add(1, Relaxed);
                    error_line(&mut out, &e.to_string());
                    write_out(&mut stream, &mut out, &mut idle).await?;
                    return Ok(());
                }
            }
        }
        write_out(&mut stream, &mut out, &mut idle).await?;
        if *shutdown.borrow() {
            return Ok(());
        }
        let n = tokio::select! {
            biased;
            r = stream.read_buf(&mut read_buf) => r?,
            _ = idle.expired() => return Ok(()),
            _ = shutdown.changed() => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
        idle.touch();
        shared.stats.net_input_bytes.fetch_add(n as u64, Relaxed);
    }
}

async fn write_out(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    idle: &mut IdleTimer,
) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    tokio::select! {
        biased;
        r = stream.write_all(out) => r?,
        _ = idle.expired() => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client did not read its replies in time",
            ));
        }
    }
    idle.touch();
    out.clear();
    Ok(())
}

fn error_line(out: &mut Vec<u8>, message: &str) {
    out.extend_from_slice(b"ERROR: ");
    out.extend(
        message
            .bytes()
            .map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
    );
    out.push(b'\n');
}

fn storage_error_line(out: &mut Vec<u8>, e: &impl std::fmt::Display) {
    error_line(out, &e.to_string());
}

async fn write(shared: &Shared, op: Op) -> Result<Outcome, PathError> {
    shared
        .write(Mutation {
            now_ms: strata_storage::now_ms(),
            op,
        })
        .await
}

async fn handle_line(shared: &Shared, line: &Bytes, out: &mut Vec<u8>) {
    let request = match parse_line(line) {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => return error_line(out, &e.to_string()),
    };
    let key_max = shared.config.storage.key_size_bytes_max;
    if let Some(len) = request.keys().map(Bytes::len).find(|&len| len > key_max) {
        let e = strata_storage::MutationError::KeyTooLarge { len, max: key_max };
        return error_line(out, &e.to_string());
    }
    // Linearizable reads in cluster mode (a no-op on a single node).
    if matches!(
        request,
        TextRequest::Read { .. } | TextRequest::ReadRange { .. }
    ) && let Err(e) = shared.read_barrier().await
    {
        return storage_error_line(out, &e);
    }
    match request {
        TextRequest::Put { key, value } => {
            let op = Op::Set {
                key,
                value,
                condition: SetCondition::Always,
                expiry: SetExpiry::Clear,
                return_old: false,
            };
            ok_or_error(out, write(shared, op).await);
        }
        TextRequest::BatchPut { keys, values } => {
            if keys.len() != values.len() {
                let e = TextError::BatchCountMismatch {
                    keys: keys.len(),
                    values: values.len(),
                };
                return error_line(out, &e.to_string());
            }
            let pairs = keys.into_iter().zip(values).collect();
            let op = Op::MSet {
                pairs,
                if_none_exist: false,
            };
            ok_or_error(out, write(shared, op).await);
        }
        TextRequest::Read { key } => match shared.store.get(&key, strata_storage::now_ms()) {
            Ok(Some(r)) => {
                escape_value(&r.value, out);
                out.push(b'\n');
            }
            Ok(None) => out.extend_from_slice(b"NOT_FOUND\n"),
            Err(e) => storage_error_line(out, &e),
        },
        TextRequest::ReadRange { start, end, limit } => {
            let max = shared.config.reply_elements_max;
            let take = limit.map_or(max, |l| (l as usize).min(max));
            match shared
                .store
                .range(&start, &end, take, strata_storage::now_ms())
            {
                Ok((pairs, more)) => {
                    for (k, v) in pairs {
                        escape_key(&k, out);
                        out.extend_from_slice(b": ");
                        escape_value(&v, out);
                        out.push(b'\n');
                    }
                    out.extend_from_slice(if more { b"MORE\n" } else { b"END\n" });
                }
                Err(e) => storage_error_line(out, &e),
            }
        }
        TextRequest::Delete { key } => match write(shared, Op::Delete { keys: vec![key] }).await {
            Ok(Outcome::Int(0)) => out.extend_from_slice(b"NOT_FOUND\n"),
            Ok(Outcome::Int(_)) => out.extend_from_slice(b"OK\n"),
            Ok(other) => error_line(out, &format!("unexpected outcome {other:?}")),
            Err(e) => storage_error_line(out, &e),
        },
    }
}

fn ok_or_error(out: &mut Vec<u8>, result: Result<Outcome, PathError>) {
    match result {
        Ok(Outcome::Refused(e)) => error_line(out, &e.to_string()),
        Ok(_) => out.extend_from_slice(b"OK\n"),
        Err(e) => storage_error_line(out, &e),
    }
}
