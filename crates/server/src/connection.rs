//! A client connection's request handler, whatever its protocol (after
//! mini-redis's `Handler`): requests from its [`Transport`] become
//! commands, commands become actions, outcomes become replies. The RESP and
//! text listeners both run it, so every command is counted, logged,
//! checked and executed the same way on both.
//!
//! Pipelining: every complete request in the read buffer is dispatched
//! before the connection waits. A write ([`Kind::Write`]) only joins the
//! connection's one pending list; the list goes through the write path
//! ([`crate::write_path`]) as one batch when a reply must go out: before
//! any other command runs, and before the connection waits. So a pipeline
//! of N writes is one group commit, one inline round or one log batch (the
//! write path chose which at startup; the connection does not know).
//! Replies stay in request order, and a read in a pipeline sees the writes
//! sent before it. In cluster mode a read ([`Kind::Read`]) first waits for
//! a read point (one per batch of requests that arrived together, unless a
//! write came between).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use strata_protocol::resp::Reply;

use crate::clients::ClientInfo;
use crate::cmd::slowlog::Client;
use crate::cmd::{self, Action, Cost, Ctx, Kind, Spec};
use crate::codec::{Codec, Parsed};
use crate::command_stats::Tally;
use crate::shared::{Session, Shared};
use crate::shutdown::Shutdown;
use crate::transport::{Closing, Transport};
use crate::write_path::{PathError, Pending};

/// Pending writes per connection before the connection commits them.
const PIPELINE_WRITES_MAX: usize = 1024;

struct Handler<C> {
    transport: Transport<C>,
    shared: Arc<Shared>,
    session: Session,
    /// This connection's writes not yet committed, in request order.
    writes: Pending,
    /// Cluster mode: reads wait for a read point first.
    barrier_needed: bool,
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
    /// Its command statistics, added into the shared ones before it waits.
    tally: Tally,
}

/// Whether the connection goes on after a request.
enum Next {
    Continue,
    Close,
}

/// Where a request's synchronous part stopped ([`Handler::start`]).
enum Step {
    /// Answered, or joined the pending writes: nothing to wait for.
    Done,
    /// Inside MULTI: queued after the pending writes.
    Queue(Option<&'static Spec>, Vec<Bytes>),
    /// An unknown command: answered after the pending writes.
    Unknown(Vec<Bytes>),
    /// Runs after the pending writes and, for a read, a read point.
    Settle(&'static Spec, Vec<Bytes>),
    /// It ran; what it asked for waits (a commit, a cluster call, a close).
    Act(Action),
}

pub async fn serve<C: Codec>(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: Shutdown,
) {
    let _ = stream.set_nodelay(true);
    let id = shared.next_client_id();
    let client = Arc::new(ClientInfo::for_stream(id, C::PROTOCOL, &stream, peer));
    // Listed in CLIENT LIST until this function returns, however it does.
    let _registered = shared.clients.register(Arc::clone(&client));
    let mut handler = Handler {
        transport: Transport::<C>::new(stream, peer, Arc::clone(&client), Arc::clone(&shared)),
        session: Session::for_client(client),
        writes: shared.write_path.pending(),
        barrier_needed: shared.write_path.reads_need_barrier(),
        tally: Tally::new(Arc::clone(&shared)),
        shared,
        barrier_fresh: false,
        now_ms: None,
        clock_ms: strata_storage::now_ms(),
    };
    match handler.run(&mut shutdown).await {
        Ok(()) => {}
        Err(e) => tracing::debug!(client = id, error = %e, "connection closed"),
    }
}

impl<C: Codec> Handler<C> {
    /// The connection's life: run what is buffered, answer it, wait for
    /// more. Each step is an `async fn` awaited in place: its future is
    /// part of this one, so the per-request path allocates nothing and
    /// boxes nothing.
    async fn run(&mut self, shutdown: &mut Shutdown) -> std::io::Result<()> {
        loop {
            let Some(progressed) = self.dispatch_buffered().await? else {
                return Ok(());
            };
            self.end_batch().await?;
            if shutdown.is_shutdown() || !self.wait(progressed, shutdown).await? {
                return Ok(());
            }
        }
    }

    /// Dispatches every complete request already buffered. Returns
    /// whether one completed since the last wait (the partial one left in
    /// the buffer, if any, is then a new request), or None to close.
    async fn dispatch_buffered(&mut self) -> std::io::Result<Option<bool>> {
        let mut progressed = false;
        loop {
            let args = match self.transport.parse() {
                Parsed::Request(args) => args,
                Parsed::Incomplete => return Ok(Some(progressed)),
                Parsed::Skipped => {
                    progressed = true;
                    continue;
                }
                Parsed::Refused(reply) => {
                    progressed = true;
                    self.refused(&reply).await;
                    continue;
                }
                Parsed::Fatal(reply) => {
                    self.protocol_error(Some(&reply)).await?;
                    return Ok(None);
                }
                Parsed::Http => {
                    self.protocol_error(None).await?;
                    return Ok(None);
                }
            };
            progressed = true;
            // Most requests finish here without an await (a GET that needs
            // no read point, a write joining the pending list): a future
            // per request, built and dropped, measured 3% more
            // instructions per GET `-P 16`.
            let step = self.start(args);
            if !matches!(step, Step::Done)
                && let Next::Close = self.finish(step).await?
            {
                return Ok(None);
            }
            if self.writes.len() >= PIPELINE_WRITES_MAX || self.transport.reply_buffer_full() {
                self.drain_pending().await;
                self.flush().await?;
                self.now_ms = None;
            }
        }
    }

    /// One request's synchronous part: counted, then run if nothing must
    /// be waited for first; otherwise the step that waits.
    fn start(&mut self, args: Vec<Bytes>) -> Step {
        let spec = args.first().and_then(|name| cmd::lookup(name));
        let (in_multi, fresh) = (self.session.tx.is_some(), self.now_ms.is_some());
        let client = Client::from(&self.session);
        self.tally.start(spec, in_multi, fresh, &client);
        // Inside MULTI: queue (one branch for connections that never use
        // it).
        if in_multi && !spec.is_some_and(cmd::tx::runs_in_multi) {
            return Step::Queue(spec, args);
        }
        let Some(spec) = spec else {
            return Step::Unknown(args);
        };
        if self.must_settle(spec) {
            return Step::Settle(spec, args);
        }
        self.run_now(spec, args)
    }

    /// Whether a command must wait before it runs: anything but a write
    /// runs after the pending writes; a read in cluster mode after a read
    /// point (unless one covers it already or the connection is READONLY).
    fn must_settle(&self, spec: &Spec) -> bool {
        spec.kind != Kind::Write && (!self.writes.is_empty() || self.read_point_due(spec))
    }

    fn read_point_due(&self, spec: &Spec) -> bool {
        spec.kind == Kind::Read
            && self.barrier_needed
            && !self.session.readonly
            && !self.barrier_fresh
    }

    /// Runs a command whose turn has come; what it asked for is done at
    /// once when that needs no wait.
    fn run_now(&mut self, spec: &'static Spec, args: Vec<Bytes>) -> Step {
        match self.execute(spec, args) {
            Action::Write(m) => match crate::embedding::plan(&self.shared, m) {
                Ok(m) => self.writes.push(m),
                Err(job) => return Step::Act(Action::Embed(job)),
            },
            Action::Reply(r) if self.writes.is_empty() => self.reply(&r),
            action => return Step::Act(action),
        }
        Step::Done
    }

    /// The rest of a request that had to wait.
    async fn finish(&mut self, step: Step) -> std::io::Result<Next> {
        let action = match step {
            Step::Done => return Ok(Next::Continue),
            Step::Queue(spec, args) => {
                self.queue_in_multi(spec, &args).await?;
                return Ok(Next::Continue);
            }
            Step::Unknown(args) => {
                self.drain_pending().await;
                self.reply(&cmd::unknown_command(&args));
                return Ok(Next::Continue);
            }
            Step::Settle(spec, args) => {
                if let Err(e) = self.before_run(spec).await {
                    self.reply(&cmd::path_error(&e));
                    return Ok(Next::Continue);
                }
                match self.run_now(spec, args) {
                    Step::Act(action) => action,
                    _ => return Ok(Next::Continue),
                }
            }
            Step::Act(action) => action,
        };
        self.act(action).await
    }

    /// Before a command other than a write: the writes before it are
    /// committed (it sees them; replies stay in order). Before a read in
    /// cluster mode: the ReadIndex point (READONLY connections skip it).
    async fn before_run(&mut self, spec: &Spec) -> Result<(), PathError> {
        if spec.kind == Kind::Write {
            return Ok(());
        }
        self.drain_pending().await;
        if self.read_point_due(spec) {
            self.now_ms = None;
            self.shared.write_path.read_barrier().await?;
            self.barrier_fresh = true;
        }
        Ok(())
    }

    /// Runs the command's handler: a reply, or something to do.
    fn execute(&mut self, spec: &'static Spec, args: Vec<Bytes>) -> Action {
        let now_ms = *self.now_ms.get_or_insert_with(strata_storage::now_ms);
        self.clock_ms = now_ms;
        let mut ctx = Ctx {
            shared: &self.shared,
            session: &mut self.session,
            now_ms,
        };
        let action = cmd::execute(spec, &mut ctx, &args);
        self.tally.ran(args, &action, &Client::from(&self.session));
        // Only a write joins the pending list: anything else runs after
        // the writes before it, which a mutation from another kind would
        // not wait for.
        debug_assert!(
            !matches!(action, Action::Write(_)) || spec.kind == Kind::Write,
            "{} returned a mutation but is not a write",
            spec.name
        );
        // A command that may take long makes the cached time stale for the
        // next one. Writes only build their mutation here.
        if spec.kind != Kind::Write && spec.cost == Cost::Slow {
            self.now_ms = None;
        }
        action
    }

    /// Does what the command asked for.
    async fn act(&mut self, action: Action) -> std::io::Result<Next> {
        match action {
            Action::Reply(r) => {
                self.drain_pending().await;
                self.reply(&r);
            }
            Action::Write(m) => self.writes.push(m),
            Action::Cluster(call) => {
                self.drain_pending().await;
                let r = cmd::cluster::run(&self.shared, call).await;
                self.now_ms = None;
                self.reply(&r);
            }
            Action::Backup(call) => {
                self.drain_pending().await;
                let r = cmd::backup::run(&self.shared, call).await;
                self.now_ms = None;
                self.reply(&r);
            }
            Action::Exec(plan) => {
                self.drain_pending().await;
                // A read after it needs a read point after it.
                self.barrier_fresh = false;
                let mutation = match crate::embedding::plan(&self.shared, plan.mutation) {
                    Ok(m) => m,
                    Err(job) => match crate::embedding::run(&self.shared, job).await {
                        Ok(m) => m,
                        Err(refusal) => {
                            self.now_ms = None;
                            self.reply(&refusal);
                            return Ok(Next::Continue);
                        }
                    },
                };
                let path = &self.shared.write_path;
                let result = path.write(&mut self.writes, mutation).await;
                self.now_ms = None;
                self.reply(&cmd::tx::exec_reply(plan.replies, result));
            }
            Action::Search(call) => {
                self.drain_pending().await;
                self.barrier_fresh = false;
                let r = cmd::search::run(&self.shared, &mut self.writes, call).await;
                self.now_ms = None;
                self.reply(&r);
            }
            Action::Embed(job) => {
                // The writes before it wait with it: replies stay in order.
                let embedded = crate::embedding::run(&self.shared, job).await;
                self.now_ms = None;
                match embedded {
                    Ok(m) => self.writes.push(m),
                    Err(refusal) => {
                        self.drain_pending().await;
                        self.reply(&refusal);
                    }
                }
            }
            Action::Close(r) => {
                self.drain_pending().await;
                self.reply(&r);
                self.flush().await?;
                return Ok(Next::Close);
            }
        }
        Ok(Next::Continue)
    }

    /// After the buffered requests: their writes committed, CLIENT LIST's
    /// view published (before the replies go out: a client that has its
    /// reply sees the state it left in CLIENT LIST), the statistics added
    /// in, the replies sent.
    async fn end_batch(&mut self) -> std::io::Result<()> {
        self.drain_pending().await;
        let charged = self.transport.charged_bytes();
        self.session
            .publish_at_wait(self.transport.read_buf(), charged, self.clock_ms);
        self.tally.flush(Some(&Client::from(&self.session)));
        self.flush().await
    }

    /// Waits for more bytes (true), or a reason to close (false, or an
    /// error after last words).
    async fn wait(&mut self, progressed: bool, shutdown: &mut Shutdown) -> std::io::Result<bool> {
        let extra_bytes = self.tx_bytes();
        if let Err(c) = self.transport.before_wait(progressed, extra_bytes) {
            return Err(self.close(c));
        }
        self.barrier_fresh = false;
        let woke = match self.transport.wait_for_bytes(shutdown).await {
            Ok(woke) => woke,
            Err(c) => return Err(self.close(c)),
        };
        self.now_ms = None;
        Ok(woke)
    }

    /// Commits the pending writes through the write path, in order, and
    /// encodes their replies. If there were any, time has passed (the
    /// cached clock is dropped), and a read after them needs a read point
    /// after them.
    async fn drain_pending(&mut self) {
        if self.writes.is_empty() {
            return;
        }
        self.now_ms = None;
        self.barrier_fresh = false;
        self.shared.write_path.commit(&mut self.writes).await;
        for result in self.writes.outcomes() {
            let reply = cmd::write_reply(result);
            send(&mut self.transport, &mut self.tally, &self.session, &reply);
        }
    }

    /// Queues a command of an open transaction and answers QUEUED (or
    /// the refusal).
    async fn queue_in_multi(
        &mut self,
        spec: Option<&'static Spec>,
        args: &[Bytes],
    ) -> std::io::Result<()> {
        let max = self.shared.config.request_size_bytes_max;
        let Some(tx) = self.session.tx.as_mut() else {
            return Ok(());
        };
        let reply = cmd::tx::queue(tx, spec, args, max);
        // The queue holds its arguments past this request: it counts
        // against the client buffers bound.
        if let Err(c) = self.transport.hold(self.tx_bytes()) {
            return Err(self.close(c));
        }
        self.drain_pending().await;
        self.reply(&reply);
        Ok(())
    }

    /// A malformed request the stream survives: counted like an unknown
    /// command, answered in order.
    async fn refused(&mut self, reply: &Reply) {
        let fresh = self.now_ms.is_some();
        let client = Client::from(&self.session);
        self.tally.start(None, false, fresh, &client);
        self.drain_pending().await;
        self.reply(reply);
    }

    /// The stream position is lost (`reply`), or an HTTP request came
    /// (None: run nothing more, not even what follows it in this read, its
    /// body): answer what came before, then close.
    async fn protocol_error(&mut self, reply: Option<&Reply>) -> std::io::Result<()> {
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

    fn reply(&mut self, r: &Reply) {
        send(&mut self.transport, &mut self.tally, &self.session, r);
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self.transport.flush().await {
            Ok(()) => Ok(()),
            Err(c) => Err(self.close(c)),
        }
    }

    /// The error that closes the connection; last words are counted as a
    /// reply and sent if the socket takes them now.
    fn close(&mut self, closing: Closing) -> std::io::Error {
        match closing {
            Closing::Io(e) => e,
            Closing::LastWords(message) => {
                let reply = Reply::error(format!("ERR {message}"));
                self.tally.replied(&reply, &Client::from(&self.session));
                self.transport.last_words(&reply, self.session.protocol);
                std::io::Error::other(message)
            }
        }
    }
}

/// Counts a reply and encodes it (a free function: the pending writes'
/// outcomes are borrowed while their replies are sent).
#[inline]
fn send<C: Codec>(transport: &mut Transport<C>, tally: &mut Tally, session: &Session, r: &Reply) {
    tally.replied(r, &Client::from(session));
    transport.encode(r, session.protocol);
}
