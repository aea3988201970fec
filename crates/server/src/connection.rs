//! A client connection, whatever its protocol: bytes become requests
//! (through its [`Codec`]), requests become actions, outcomes become reply
//! bytes. The RESP and text listeners both run this loop, so every command
//! is counted, logged, checked and executed the same way on both.
//!
//! Pipelining: every complete request in the read buffer is dispatched
//! before the connection waits. Writes are queued to the group-commit writer
//! without waiting, so a pipeline of N writes lands in one group (one
//! fsync). When no fsync is awaited (`--fsync periodic|never`), the
//! pipeline's writes are instead gathered and committed on a network thread,
//! together with those of every other connection ready at the same moment,
//! if the writer is free (`Store::apply_inline_round`: an inline commit
//! round, which may be run by another connection's task); that saves two
//! thread hand-offs per pipeline. Replies stay in request order: before
//! any non-write command runs, the writes queued ahead of it are awaited, so
//! a read in a pipeline sees the writes sent before it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::BytesMut;
use strata_storage::Ticket;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::client_buffers::{BufferCharge, BuffersFull};
use crate::clients::ClientInfo;
use crate::cmd::slowlog::Client;
use crate::cmd::{self, Action, Ctx};
use crate::codec::{Codec, Parsed};
use crate::command_stats::Tally;
use crate::idle::IdleTimer;
use crate::request_timer::RequestTimer;
use crate::shared::{Session, Shared};

/// Queued writes per connection before the connection waits for them.
const PIPELINE_WRITES_MAX: usize = 1024;
/// Reply bytes buffered before they are sent, whatever the pipeline holds.
const REPLY_BUFFER_BYTES_MAX: usize = 1024 * 1024;
const READ_BUFFER_BYTES_INITIAL: usize = 16 * 1024;
/// A payload whose header announces at least this much gets its room
/// charged and reserved at once (as Redis does past 32 KiB): growing by
/// doubling copies the buffer at every step, and the allocator may keep
/// each smaller copy; and a request the client buffers cannot hold is
/// refused before its bytes arrive.
const PRESIZE_BYTES_MIN: usize = 64 * 1024;

struct Conn<C> {
    stream: TcpStream,
    /// Frames requests and renders replies (RESP or text).
    codec: C,
    shared: Arc<Shared>,
    session: Session,
    read_buf: BytesMut,
    write_buf: BytesMut,
    pending: VecDeque<Ticket>,
    /// Single node without awaited fsyncs: the pipeline's writes, committed
    /// as one group when the connection drains (inline if it can be).
    pending_inline: Vec<strata_storage::Mutation>,
    /// Cluster mode: the pipeline's writes, sent to the log as one batch
    /// (in order) when the connection drains.
    pending_cluster: Vec<strata_storage::Mutation>,
    /// Cluster mode: a read barrier was passed after every request now in
    /// the read buffer arrived and after this connection's last write, so
    /// the reads still buffered are covered by it (one ReadIndex round per
    /// pipeline, not per GET). Cleared by new bytes and by writes.
    barrier_fresh: bool,
    /// The clock, read once per batch of requests that arrived together and
    /// again after anything this connection waited for (None = read it
    /// again): reading it per command cost 6% of the server's time in GET
    /// `-P 16` (`clock_gettime` + conversion), and requests handled back to
    /// back without a wait are microseconds apart, below the millisecond
    /// resolution that expiry uses.
    now_ms: Option<u64>,
    /// The clock when the last command started (CLIENT LIST's `idle`, with
    /// no clock read of its own).
    clock_ms: u64,
    /// Closes the connection after `--idle-timeout-ms` without reads or
    /// writes, and bounds how long a client may leave its replies unread.
    idle: IdleTimer,
    /// Closes the connection when a request takes longer than
    /// `--request-timeout-ms` to arrive.
    request_timer: RequestTimer,
    /// This connection's share of `--client-buffers-size-bytes-max`.
    charge: BufferCharge,
    /// Its command statistics, added into the shared ones before it waits.
    tally: Tally,
}

/// Why a connection stopped waiting for bytes.
enum Wake {
    Read(usize),
    Close,
    RequestTimeout,
    Evicted,
}

pub async fn serve<C: Codec>(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let idle_ms = shared.config.idle_timeout_ms;
    let id = shared.next_client_id();
    let client = Arc::new(ClientInfo::for_stream(id, C::PROTOCOL, &stream, peer));
    // Listed in CLIENT LIST until this function returns, however it does.
    let _registered = shared.clients.register(Arc::clone(&client));
    let mut conn = Conn {
        stream,
        codec: C::new(&shared.config),
        charge: BufferCharge::new(Arc::clone(&shared.client_buffers), id, peer)
            .with_no_evict(client.no_evict_flag()),
        session: Session::for_client(client),
        request_timer: RequestTimer::new(Duration::from_millis(shared.config.request_timeout_ms)),
        tally: Tally::new(Arc::clone(&shared)),
        shared,
        read_buf: BytesMut::with_capacity(READ_BUFFER_BYTES_INITIAL),
        write_buf: BytesMut::with_capacity(READ_BUFFER_BYTES_INITIAL),
        pending: VecDeque::new(),
        pending_inline: Vec::new(),
        pending_cluster: Vec::new(),
        barrier_fresh: false,
        now_ms: None,
        clock_ms: strata_storage::now_ms(),
        idle: IdleTimer::new((idle_ms > 0).then(|| Duration::from_millis(idle_ms))),
    };
    match conn.run(&mut shutdown).await {
        Ok(()) => {}
        Err(e) => tracing::debug!(client = id, error = %e, "connection closed"),
    }
}

impl<C: Codec> Conn<C> {
    /// Why ~130 lines: the per-request handling of each `Action` stays
    /// inline in this loop, so the RESP hot path does not build a nested
    /// future per request (a design choice, not measured).
    async fn run(&mut self, shutdown: &mut watch::Receiver<bool>) -> std::io::Result<()> {
        let inline_writes = self.shared.writes_inline();
        loop {
            // Whether a request completed since the last wait: the partial
            // one left in the buffer, if any, is then a new request.
            let mut progressed = false;
            // Dispatch every complete request already buffered.
            loop {
                let args = match self.codec.parse(&mut self.read_buf) {
                    Parsed::Request(args) => args,
                    Parsed::Incomplete => break,
                    Parsed::Skipped => {
                        progressed = true;
                        continue;
                    }
                    Parsed::Refused(reply) => {
                        progressed = true;
                        self.refused(&reply).await;
                        continue;
                    }
                    Parsed::Fatal(reply) => return self.protocol_error(Some(&reply)).await,
                    Parsed::Http => return self.protocol_error(None).await,
                };
                progressed = true;
                let spec = args.first().and_then(|name| cmd::lookup(name));
                let (in_multi, fresh) = (self.session.tx.is_some(), self.now_ms.is_some());
                let client = Client::from(&self.session);
                self.tally.start(spec, in_multi, fresh, &client);
                // Inside MULTI: queue (one branch for connections that never
                // use it).
                if self.session.tx.is_some() && !spec.is_some_and(cmd::tx::runs_in_multi) {
                    self.queue_in_multi(spec, &args).await?;
                    continue;
                }
                let Some(spec) = spec else {
                    self.drain_pending().await;
                    self.reply(&cmd::unknown_command(&args));
                    continue;
                };
                if !spec.write {
                    self.drain_pending().await;
                    // Linearizable reads in cluster mode: wait for the
                    // ReadIndex point first (READONLY connections skip it).
                    if cmd::reads_data(spec) && !self.session.readonly && !self.barrier_fresh {
                        self.now_ms = None;
                        if let Err(e) = self.shared.read_barrier().await {
                            self.reply(&cmd::path_error(&e));
                            continue;
                        }
                        self.barrier_fresh = true;
                    }
                }
                let now_ms = *self.now_ms.get_or_insert_with(strata_storage::now_ms);
                self.clock_ms = now_ms;
                let mut ctx = Ctx {
                    shared: &self.shared,
                    session: &mut self.session,
                    now_ms,
                };
                let action = cmd::execute(spec, &mut ctx, &args);
                self.tally.ran(args, &action, &Client::from(&self.session));
                // A command that may take long (KEYS, SCAN, RANGE, INFO: not
                // flagged `fast`) makes the cached time stale for the next
                // one. Writes only build their mutation here.
                if !spec.write && !spec.flags.contains(&"fast") {
                    self.now_ms = None;
                }
                match action {
                    Action::Reply(r) => {
                        self.drain_pending().await;
                        self.reply(&r)
                    }
                    Action::Write(m) if self.shared.cluster.is_some() => {
                        self.pending_cluster.push(m)
                    }
                    Action::Write(m) if inline_writes => self.pending_inline.push(m),
                    Action::Write(m) => match self.shared.enqueue(m).await {
                        // The queue may have been full: time may have passed.
                        Ok(ticket) => {
                            self.pending.push_back(ticket);
                            self.now_ms = None;
                        }
                        Err(e) => {
                            self.drain_pending().await;
                            self.reply(&cmd::storage_error(&e));
                        }
                    },
                    Action::Cluster(call) => {
                        self.drain_pending().await;
                        let r = cmd::cluster::run(&self.shared, call).await;
                        self.now_ms = None;
                        self.reply(&r);
                    }
                    Action::Exec(plan) => {
                        self.drain_pending().await;
                        // A read after it needs a read point after it.
                        self.barrier_fresh = false;
                        let result = self.shared.write(plan.mutation).await;
                        self.now_ms = None;
                        self.reply(&cmd::tx::exec_reply(plan.replies, result));
                    }
                    Action::Close(r) => {
                        self.drain_pending().await;
                        self.reply(&r);
                        self.flush().await?;
                        return Ok(());
                    }
                }
                if self.pending.len() + self.pending_cluster.len() + self.pending_inline.len()
                    >= PIPELINE_WRITES_MAX
                    || self.write_buf.len() >= REPLY_BUFFER_BYTES_MAX
                {
                    self.drain_pending().await;
                    self.flush().await?;
                    self.now_ms = None;
                }
            }
            self.drain_pending().await;
            // CLIENT LIST's view, before the replies go out: a client that
            // has its reply sees the state it left in CLIENT LIST.
            let charged = self.charge.charged_bytes();
            self.session
                .publish_at_wait(&self.read_buf, charged, self.clock_ms);
            self.tally.flush(Some(&Client::from(&self.session)));
            self.flush().await?;
            if *shutdown.borrow() {
                return Ok(());
            }
            self.before_wait(progressed, self.codec.pending_frame_bytes())?;
            if !self.wait_for_bytes(shutdown).await? {
                return Ok(());
            }
        }
    }

    /// Waits for more bytes (true), or a reason to close: CLIENT KILL, idle
    /// timeout, shutdown, end of stream (false), a request timeout or an
    /// eviction (an error, after last words).
    async fn wait_for_bytes(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> std::io::Result<bool> {
        self.barrier_fresh = false;
        let wake = tokio::select! {
            // Biased: no random branch order to draw per request.
            biased;
            _ = self.session.client.killed() => Wake::Close, // CLIENT KILL
            r = self.stream.read_buf(&mut self.read_buf) => Wake::Read(r?),
            _ = self.idle.expired() => Wake::Close, // idle too long
            _ = self.request_timer.expired(), if self.request_timer.running() => {
                Wake::RequestTimeout
            }
            _ = self.charge.evicted(), if self.charge.is_large() => Wake::Evicted,
            _ = shutdown.changed() => Wake::Close,
        };
        let n = match wake {
            Wake::Read(0) | Wake::Close => return Ok(false),
            Wake::Read(n) => n,
            Wake::RequestTimeout => return Err(self.request_timed_out()),
            Wake::Evicted => return Err(self.evicted()),
        };
        if !self.charge.covers(self.read_buf.len()) {
            let held = self.read_buf.len();
            self.charge.grow(held).map_err(|full| self.refuse(&full))?;
        }
        self.idle.touch();
        self.now_ms = None;
        self.shared
            .stats
            .net_input_bytes
            .fetch_add(n as u64, Relaxed);
        Ok(true)
    }

    /// Queues a command of an open transaction and answers QUEUED (or
    /// the refusal).
    async fn queue_in_multi(
        &mut self,
        spec: Option<&'static cmd::Spec>,
        args: &[bytes::Bytes],
    ) -> std::io::Result<()> {
        let max = self.shared.config.request_size_bytes_max;
        let Some(tx) = self.session.tx.as_mut() else {
            return Ok(());
        };
        let reply = cmd::tx::queue(tx, spec, args, max);
        // The queue holds its arguments past this request: it counts
        // against the client buffers bound.
        let held = self.read_buf.len() + self.tx_bytes();
        if !self.charge.covers(held) {
            self.charge.grow(held).map_err(|full| self.refuse(&full))?;
        }
        self.drain_pending().await;
        self.reply(&reply);
        Ok(())
    }

    /// A malformed request the stream survives: counted like an unknown
    /// command, answered in order.
    async fn refused(&mut self, reply: &strata_protocol::resp::Reply) {
        let fresh = self.now_ms.is_some();
        let client = Client::from(&self.session);
        self.tally.start(None, false, fresh, &client);
        self.drain_pending().await;
        self.reply(reply);
    }

    /// The stream position is lost (`reply`), or an HTTP request came
    /// (None: run nothing more, not even what follows it in this read, its
    /// body): answer what came before, then close.
    async fn protocol_error(
        &mut self,
        reply: Option<&strata_protocol::resp::Reply>,
    ) -> std::io::Result<()> {
        if reply.is_none() {
            crate::http_probe::warn(&self.session.peer);
        }
        self.shared.stats.protocol_errors.fetch_add(1, Relaxed);
        self.drain_pending().await;
        if let Some(reply) = reply {
            self.reply(reply);
        }
        self.flush().await
    }

    /// Bytes held by an open transaction's queue (0 outside MULTI).
    fn tx_bytes(&self) -> usize {
        self.session.tx.as_ref().map_or(0, |tx| tx.queued_bytes())
    }

    fn reply(&mut self, r: &strata_protocol::resp::Reply) {
        self.tally.replied(r, &Client::from(&self.session));
        self.codec
            .encode(r, self.session.protocol, &mut self.write_buf);
    }

    /// Before waiting for bytes: a large payload announced by the partial
    /// request in the buffer gets its room (charged first), a large charge
    /// goes back to what the buffers hold (and grown buffers are replaced
    /// by small ones), the request deadline starts or stops, and an
    /// eviction is obeyed.
    fn before_wait(&mut self, progressed: bool, pending_frame_bytes: usize) -> std::io::Result<()> {
        if pending_frame_bytes >= PRESIZE_BYTES_MIN
            && pending_frame_bytes > self.read_buf.capacity()
        {
            if !self.charge.covers(pending_frame_bytes) {
                self.charge
                    .grow(pending_frame_bytes)
                    .map_err(|full| self.refuse(&full))?;
            }
            let additional = pending_frame_bytes.saturating_sub(self.read_buf.len());
            self.read_buf.reserve(additional);
        }
        if self.charge.is_large() {
            if self.charge.is_evicted() {
                return Err(self.evicted());
            }
            if self
                .charge
                .shrink(self.read_buf.len().max(pending_frame_bytes) + self.tx_bytes())
            {
                // Same bytes at the same offsets: the parser's resume
                // point stays valid.
                let mut fresh =
                    BytesMut::with_capacity(READ_BUFFER_BYTES_INITIAL.max(self.read_buf.len()));
                fresh.extend_from_slice(&self.read_buf);
                self.read_buf = fresh;
                self.write_buf = BytesMut::with_capacity(READ_BUFFER_BYTES_INITIAL);
            }
        }
        self.request_timer
            .before_wait(!self.read_buf.is_empty(), progressed);
        Ok(())
    }

    /// Sends `message` as an error reply if the socket takes it now (the
    /// connection closes anyway; a client that does not read must not
    /// delay that), and returns the error that closes the connection.
    fn last_words(&mut self, message: String) -> std::io::Error {
        self.write_buf.clear();
        let reply = strata_protocol::resp::Reply::error(format!("ERR {message}"));
        self.reply(&reply);
        let _ = self.stream.try_write(&self.write_buf);
        std::io::Error::other(message)
    }

    /// The bound on client buffers has no room for this connection's
    /// request or reply.
    fn refuse(&mut self, full: &BuffersFull) -> std::io::Error {
        self.last_words(full.to_string())
    }

    /// Chosen for eviction: it held the most while client buffers were full.
    fn evicted(&mut self) -> std::io::Error {
        let message = self.charge.evicted_message();
        self.last_words(message)
    }

    fn request_timed_out(&mut self) -> std::io::Error {
        self.shared.stats.request_timeouts.fetch_add(1, Relaxed);
        let message = crate::request_timer::timeout_message(self.shared.config.request_timeout_ms);
        self.last_words(message)
    }

    /// Awaits the queued writes in order and encodes their replies. If
    /// there were any, time has passed: the cached clock is dropped.
    async fn drain_pending(&mut self) {
        if !self.pending.is_empty()
            || !self.pending_inline.is_empty()
            || !self.pending_cluster.is_empty()
        {
            self.now_ms = None;
        }
        while let Some(ticket) = self.pending.pop_front() {
            let reply = cmd::outcome_reply(ticket.outcome().await);
            self.reply(&reply);
        }
        if !self.pending_inline.is_empty() {
            let batch = std::mem::take(&mut self.pending_inline);
            let others = self.shared.stats.connections_current.load(Relaxed) > 1;
            match self.shared.apply_inline_round(batch, others).await {
                Ok(outcomes) => {
                    for outcome in outcomes {
                        self.reply(&cmd::outcome_reply(outcome));
                    }
                }
                Err(batch) => self.submit_queued(batch).await,
            }
        }
        if !self.pending_cluster.is_empty() {
            // A read after these writes needs a read point after them.
            self.barrier_fresh = false;
            let batch = std::mem::take(&mut self.pending_cluster);
            for result in self.shared.write_batch(batch).await {
                let reply = cmd::write_reply(result);
                self.reply(&reply);
            }
        }
    }

    /// Queues `batch` to the writer thread (one group, as a pipeline
    /// always was) and encodes the replies in order.
    async fn submit_queued(&mut self, batch: Vec<strata_storage::Mutation>) {
        let mut tickets = Vec::with_capacity(batch.len());
        for m in batch {
            tickets.push(self.shared.enqueue(m).await);
        }
        for ticket in tickets {
            let reply = match ticket {
                Ok(ticket) => cmd::outcome_reply(ticket.outcome().await),
                Err(e) => cmd::storage_error(&e),
            };
            self.reply(&reply);
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.write_buf.is_empty() {
            return Ok(());
        }
        let n = self.write_buf.len();
        if !self.charge.covers(self.read_buf.len() + n) {
            let held = self.read_buf.len() + n;
            self.charge.grow(held).map_err(|full| self.refuse(&full))?;
        }
        let evicted = tokio::select! {
            biased;
            r = self.stream.write_all(&self.write_buf) => {
                r?;
                false
            }
            _ = self.idle.expired() => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "client did not read its replies in time",
                ));
            }
            _ = self.charge.evicted(), if self.charge.is_large() => true,
            // CLIENT KILL while the client leaves its replies unread.
            _ = self.session.client.killed() => {
                return Err(std::io::Error::other("closed by CLIENT KILL"));
            }
        };
        if evicted {
            // Part of a reply may be out: no error reply after it.
            return Err(std::io::Error::other(self.charge.evicted_message()));
        }
        self.idle.touch();
        self.shared
            .stats
            .net_output_bytes
            .fetch_add(n as u64, Relaxed);
        self.write_buf.clear();
        Ok(())
    }
}
