//! The line text protocol: `PUT`, `BATCHPUT`, `READ`, `READRANGE`, `DELETE`.
//!
//! Same store, same write path as RESP; requests are answered one line at a
//! time, in order. Keys and values use the escapes of
//! [`strata_protocol::text`], so any bytes can travel on one line.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use strata_protocol::text::{
    LineReader, TextError, TextRequest, escape_key, escape_value, looks_like_http, parse_line,
};
use strata_storage::{Mutation, Op, Outcome, SetCondition, SetExpiry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::client_buffers::BufferCharge;
use crate::clients::{AtWait, ClientInfo, Protocol};
use crate::cmd::Spec;
use crate::cmd::slowlog::Client;
use crate::command_stats::{Tally, TextOutcome};
use crate::idle::IdleTimer;
use crate::request_timer::{RequestTimer, timeout_message};
use crate::shared::{PathError, Shared};

const REPLY_BUFFER_BYTES_MAX: usize = 1024 * 1024;
const BUFFER_BYTES_INITIAL: usize = 16 * 1024;

pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let idle_ms = shared.config.idle_timeout_ms;
    let id = shared.next_client_id();
    let client = Arc::new(ClientInfo::for_stream(id, Protocol::Text, &stream, peer));
    // Listed in CLIENT LIST until this function returns, however it does.
    let _registered = shared.clients.register(Arc::clone(&client));
    let mut conn = TextConn {
        stream,
        // One lazily re-armed timer per connection, as on RESP connections
        // (idle.rs says why not a timeout around every read).
        idle: IdleTimer::new((idle_ms > 0).then(|| Duration::from_millis(idle_ms))),
        request_timer: RequestTimer::new(Duration::from_millis(shared.config.request_timeout_ms)),
        charge: BufferCharge::new(Arc::clone(&shared.client_buffers), id, peer)
            .with_no_evict(client.no_evict_flag()),
        tally: Tally::new(Arc::clone(&shared)),
        peer: peer.to_string(),
        read_buf: BytesMut::with_capacity(BUFFER_BYTES_INITIAL),
        out: Vec::with_capacity(BUFFER_BYTES_INITIAL),
        client,
    };
    if let Err(e) = conn.run(&shared, &mut shutdown).await {
        tracing::debug!(client = id, error = %e, "text connection closed");
    }
}

struct TextConn {
    stream: TcpStream,
    idle: IdleTimer,
    request_timer: RequestTimer,
    charge: BufferCharge,
    /// Its command statistics (under the commands' RESP names).
    tally: Tally,
    peer: String,
    read_buf: BytesMut,
    out: Vec<u8>,
    /// This connection in CLIENT LIST (`resp=0`), and its kill switch.
    client: Arc<ClientInfo>,
}

/// Why a connection stopped waiting for bytes.
enum Wake {
    Read(usize),
    Close,
    RequestTimeout,
    Evicted,
}

impl TextConn {
    async fn run(
        &mut self,
        shared: &Shared,
        shutdown: &mut watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let line_max = shared.config.request_size_bytes_max;
        let mut reader = LineReader::new();
        loop {
            let mut progressed = false;
            // Nothing awaited since the tally's last clock reading.
            let mut fresh = false;
            loop {
                match reader.take_line(&mut self.read_buf, line_max) {
                    Ok(Some(line)) if looks_like_http(&line) => {
                        // An HTTP request: run neither it nor what follows.
                        crate::http_probe::warn(&self.peer);
                        shared.stats.protocol_errors.fetch_add(1, Relaxed);
                        self.write_out(shared).await?;
                        return Ok(());
                    }
                    Ok(Some(line)) => {
                        progressed = true;
                        let started = self.tally.text_start(fresh);
                        let from = self.out.len();
                        let handled = handle_line(shared, &self.client, &line, &mut self.out).await;
                        let client = Client {
                            addr: &self.peer,
                            info: Some(&self.client),
                        };
                        let outcome = TextOutcome {
                            started,
                            rejected: handled.rejected,
                            error: self.out[from..].starts_with(b"ERROR: "),
                            line: &line,
                            client: &client,
                        };
                        self.tally.text_line(handled.spec, outcome);
                        // Its end, read after anything it waited for, is
                        // the next line's start.
                        fresh = true;
                        if self.out.len() >= REPLY_BUFFER_BYTES_MAX {
                            self.write_out(shared).await?;
                            fresh = false;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        shared.stats.protocol_errors.fetch_add(1, Relaxed);
                        error_line(&mut self.out, &e.to_string());
                        self.write_out(shared).await?;
                        return Ok(());
                    }
                }
            }
            let client = Client {
                addr: &self.peer,
                info: Some(&self.client),
            };
            self.tally.flush(Some(&client));
            self.write_out(shared).await?;
            if *shutdown.borrow() {
                return Ok(());
            }
            self.before_wait(progressed)?;
            let n = match self.wait(shutdown).await? {
                Wake::Read(0) | Wake::Close => return Ok(()),
                Wake::Read(n) => n,
                Wake::RequestTimeout => {
                    shared.stats.request_timeouts.fetch_add(1, Relaxed);
                    let message = timeout_message(shared.config.request_timeout_ms);
                    return Err(self.last_words(message));
                }
                Wake::Evicted => return Err(self.last_words(self.charge.evicted_message())),
            };
            if !self.charge.covers(self.read_buf.len()) {
                let held = self.read_buf.len();
                if let Err(full) = self.charge.grow(held) {
                    return Err(self.last_words(full.to_string()));
                }
            }
            self.idle.touch();
            shared.stats.net_input_bytes.fetch_add(n as u64, Relaxed);
        }
    }

    async fn wait(&mut self, shutdown: &mut watch::Receiver<bool>) -> std::io::Result<Wake> {
        Ok(tokio::select! {
            biased;
            _ = self.client.killed() => Wake::Close, // CLIENT KILL
            r = self.stream.read_buf(&mut self.read_buf) => Wake::Read(r?),
            _ = self.idle.expired() => Wake::Close,
            _ = self.request_timer.expired(), if self.request_timer.running() => {
                Wake::RequestTimeout
            }
            _ = self.charge.evicted(), if self.charge.is_large() => Wake::Evicted,
            _ = shutdown.changed() => Wake::Close,
        })
    }

    /// As on RESP connections: release a large charge (and the grown
    /// buffers), start or stop the request deadline, obey an eviction.
    fn before_wait(&mut self, progressed: bool) -> std::io::Result<()> {
        if self.charge.is_large() {
            if self.charge.is_evicted() {
                return Err(self.last_words(self.charge.evicted_message()));
            }
            if self.charge.shrink(self.read_buf.len()) {
                // The line reader's scan offset stays valid: same bytes.
                let mut fresh =
                    BytesMut::with_capacity(BUFFER_BYTES_INITIAL.max(self.read_buf.len()));
                fresh.extend_from_slice(&self.read_buf);
                self.read_buf = fresh;
                self.out = Vec::with_capacity(BUFFER_BYTES_INITIAL);
            }
        }
        self.request_timer
            .before_wait(!self.read_buf.is_empty(), progressed);
        self.client.at_wait(&AtWait {
            active_ms: strata_storage::now_ms(),
            qbuf_bytes: self.read_buf.len(),
            qbuf_free_bytes: self.read_buf.capacity() - self.read_buf.len(),
            multi: -1,
            multi_mem_bytes: 0,
            tot_mem_bytes: self.charge.charged_bytes(),
            flags: 0,
            resp: 0,
        });
        Ok(())
    }

    /// An error line, sent only if the socket takes it now (the connection
    /// closes anyway), and the error that closes the connection.
    fn last_words(&mut self, message: String) -> std::io::Error {
        self.out.clear();
        error_line(&mut self.out, &message);
        let _ = self.stream.try_write(&self.out);
        std::io::Error::other(message)
    }

    async fn write_out(&mut self, shared: &Shared) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let held = self.read_buf.len() + self.out.len();
        if !self.charge.covers(held)
            && let Err(full) = self.charge.grow(held)
        {
            return Err(self.last_words(full.to_string()));
        }
        tokio::select! {
            biased;
            r = self.stream.write_all(&self.out) => r?,
            _ = self.idle.expired() => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "client did not read its replies in time",
                ));
            }
            // Part of the replies may be out: no error line after them.
            _ = self.charge.evicted(), if self.charge.is_large() => {
                return Err(std::io::Error::other(self.charge.evicted_message()));
            }
            // CLIENT KILL while the client leaves its replies unread.
            _ = self.client.killed() => {
                return Err(std::io::Error::other("closed by CLIENT KILL"));
            }
        }
        self.idle.touch();
        shared
            .stats
            .net_output_bytes
            .fetch_add(self.out.len() as u64, Relaxed);
        self.out.clear();
        Ok(())
    }
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

/// The RESP alias of a text request (CLIENT LIST's `cmd=`).
fn cmd_code(request: &TextRequest) -> u32 {
    static CODES: OnceLock<[u32; 5]> = OnceLock::new();
    let codes = CODES.get_or_init(|| {
        ["put", "batchput", "read", "readrange", "delete"].map(|name| {
            crate::cmd::lookup(name.as_bytes()).map_or(0, |s| crate::cmd::cmd_code(s, None))
        })
    });
    codes[match request {
        TextRequest::Put { .. } => 0,
        TextRequest::BatchPut { .. } => 1,
        TextRequest::Read { .. } => 2,
        TextRequest::ReadRange { .. } => 3,
        TextRequest::Delete { .. } => 4,
    }]
}

/// What a request line was, for the statistics.
struct Handled {
    /// Its RESP command (PUT is `put`...); None for an empty or malformed line.
    spec: Option<&'static Spec>,
    /// Refused before it ran.
    rejected: bool,
}

/// The RESP command a text request counts as.
fn spec_of(request: &TextRequest) -> Option<&'static Spec> {
    crate::cmd::lookup(match request {
        TextRequest::Put { .. } => b"put",
        TextRequest::BatchPut { .. } => b"batchput",
        TextRequest::Read { .. } => b"read",
        TextRequest::ReadRange { .. } => b"readrange",
        TextRequest::Delete { .. } => b"delete",
    })
}

async fn handle_line(
    shared: &Shared,
    client: &ClientInfo,
    line: &Bytes,
    out: &mut Vec<u8>,
) -> Handled {
    let request = match parse_line(line) {
        Ok(Some(r)) => r,
        Ok(None) => {
            return Handled {
                spec: None,
                rejected: false,
            };
        }
        Err(e) => {
            error_line(out, &e.to_string());
            return Handled {
                spec: None,
                rejected: false,
            };
        }
    };
    let mut handled = Handled {
        spec: spec_of(&request),
        rejected: true,
    };
    client.set_cmd(cmd_code(&request));
    let key_max = shared.config.storage.key_size_bytes_max;
    if let Some(len) = request.keys().map(Bytes::len).find(|&len| len > key_max) {
        let e = strata_storage::MutationError::KeyTooLarge { len, max: key_max };
        error_line(out, &e.to_string());
        return handled;
    }
    if let TextRequest::BatchPut { keys, values } = &request
        && keys.len() != values.len()
    {
        let e = TextError::BatchCountMismatch {
            keys: keys.len(),
            values: values.len(),
        };
        error_line(out, &e.to_string());
        return handled;
    }
    handled.rejected = false;
    run_request(shared, request, out).await;
    handled
}

async fn run_request(shared: &Shared, request: TextRequest, out: &mut Vec<u8>) {
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
            // The counts were checked in `handle_line`.
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
