//! The transport half of a connection, shared by every protocol (after
//! mini-redis's `Connection`): the stream, the read and reply buffers, the
//! codec that frames one and fills the other, the idle and request timers,
//! the connection's share of the client buffers, flushing, and waiting for
//! bytes. It knows nothing of commands, sessions, writes or statistics
//! beyond its byte counters: the request handler ([`crate::connection`])
//! decides what the requests do.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::BytesMut;
use strata_protocol::resp::{ProtocolVersion, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client_buffers::{BufferCharge, BuffersFull};
use crate::clients::ClientInfo;
use crate::codec::{Codec, Parsed};
use crate::idle::IdleTimer;
use crate::request_timer::RequestTimer;
use crate::shared::Shared;
use crate::shutdown::Shutdown;

/// Reply bytes buffered before they are sent, whatever the pipeline holds.
const REPLY_BUFFER_BYTES_MAX: usize = 1024 * 1024;
const READ_BUFFER_BYTES_INITIAL: usize = 16 * 1024;
/// A payload whose header announces at least this much gets its room
/// charged and reserved at once (as Redis does past 32 KiB): growing by
/// doubling copies the buffer at every step, and the allocator may keep
/// each smaller copy; and a request the client buffers cannot hold is
/// refused before its bytes arrive.
const PRESIZE_BYTES_MIN: usize = 64 * 1024;

/// Why the connection must close now.
pub enum Closing {
    /// With this error message, sent as a reply if the socket takes it
    /// at once (buffers full, evicted, request timeout).
    LastWords(String),
    /// Without a word: the stream failed, or a reply may be half out.
    Io(std::io::Error),
}

impl From<std::io::Error> for Closing {
    fn from(e: std::io::Error) -> Closing {
        Closing::Io(e)
    }
}

/// Why the transport stopped waiting for bytes.
enum Wake {
    Read(usize),
    Close,
    RequestTimeout,
    Evicted,
}

pub struct Transport<C> {
    stream: TcpStream,
    /// Frames requests and renders replies (RESP or text).
    codec: C,
    read_buf: BytesMut,
    write_buf: BytesMut,
    /// Its kill switch (CLIENT KILL) ends waits and flushes.
    client: Arc<ClientInfo>,
    shared: Arc<Shared>,
    /// Closes the connection after `--idle-timeout-ms` without reads or
    /// writes, and bounds how long a client may leave its replies unread.
    idle: IdleTimer,
    /// Closes the connection when a request takes longer than
    /// `--request-timeout-ms` to arrive.
    request_timer: RequestTimer,
    /// This connection's share of `--client-buffers-size-bytes-max`.
    charge: BufferCharge,
}

impl<C: Codec> Transport<C> {
    pub fn new(
        stream: TcpStream,
        peer: SocketAddr,
        client: Arc<ClientInfo>,
        shared: Arc<Shared>,
    ) -> Transport<C> {
        let config = &shared.config;
        let idle_ms = config.idle_timeout_ms;
        Transport {
            stream,
            codec: C::new(config),
            read_buf: BytesMut::with_capacity(READ_BUFFER_BYTES_INITIAL),
            write_buf: BytesMut::with_capacity(READ_BUFFER_BYTES_INITIAL),
            charge: BufferCharge::new(Arc::clone(&shared.client_buffers), client.id, peer)
                .with_no_evict(client.no_evict_flag()),
            request_timer: RequestTimer::new(Duration::from_millis(config.request_timeout_ms)),
            idle: IdleTimer::new((idle_ms > 0).then(|| Duration::from_millis(idle_ms))),
            client,
            shared,
        }
    }

    /// The next request in the read buffer, if complete.
    #[inline]
    pub fn parse(&mut self) -> Parsed {
        self.codec.parse(&mut self.read_buf)
    }

    /// Appends a reply to the reply buffer.
    #[inline]
    pub fn encode(&mut self, reply: &Reply, version: ProtocolVersion) {
        self.codec.encode(reply, version, &mut self.write_buf);
    }

    /// Enough replies are buffered to send them now.
    pub fn reply_buffer_full(&self) -> bool {
        self.write_buf.len() >= REPLY_BUFFER_BYTES_MAX
    }

    pub fn read_buf(&self) -> &BytesMut {
        &self.read_buf
    }

    pub fn charged_bytes(&self) -> u64 {
        self.charge.charged_bytes()
    }

    /// Makes sure the charge covers the read buffer plus `extra_bytes`
    /// held elsewhere for this connection (a transaction's queue).
    pub fn hold(&mut self, extra_bytes: usize) -> Result<(), Closing> {
        let held = self.read_buf.len() + extra_bytes;
        if !self.charge.covers(held) {
            self.charge.grow(held).map_err(|full| refusal(&full))?;
        }
        Ok(())
    }

    /// Sends the buffered replies. Bounded by the idle timer; ends early
    /// on CLIENT KILL or an eviction.
    pub async fn flush(&mut self) -> Result<(), Closing> {
        if self.write_buf.is_empty() {
            return Ok(());
        }
        let n = self.write_buf.len();
        self.hold(n)?;
        let evicted = tokio::select! {
            biased;
            r = self.stream.write_all(&self.write_buf) => {
                r?;
                false
            }
            _ = self.idle.expired() => {
                return Err(Closing::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "client did not read its replies in time",
                )));
            }
            _ = self.charge.evicted(), if self.charge.is_large() => true,
            // CLIENT KILL while the client leaves its replies unread.
            _ = self.client.killed() => {
                return Err(Closing::Io(std::io::Error::other("closed by CLIENT KILL")));
            }
        };
        if evicted {
            // Part of a reply may be out: no error reply after it.
            let message = self.charge.evicted_message();
            return Err(Closing::Io(std::io::Error::other(message)));
        }
        self.idle.touch();
        self.shared
            .stats
            .net_output_bytes
            .fetch_add(n as u64, Relaxed);
        self.write_buf.clear();
        Ok(())
    }

    /// Before waiting for bytes: a large payload announced by the partial
    /// request in the buffer gets its room (charged first), a large charge
    /// goes back to what the buffers hold (`extra_bytes`: held elsewhere,
    /// a transaction's queue; grown buffers are replaced by small ones),
    /// the request deadline starts or stops, and an eviction is obeyed.
    /// `progressed`: a request completed since the last wait.
    pub fn before_wait(&mut self, progressed: bool, extra_bytes: usize) -> Result<(), Closing> {
        let pending_frame_bytes = self.codec.pending_frame_bytes();
        if pending_frame_bytes >= PRESIZE_BYTES_MIN
            && pending_frame_bytes > self.read_buf.capacity()
        {
            if !self.charge.covers(pending_frame_bytes) {
                self.charge
                    .grow(pending_frame_bytes)
                    .map_err(|full| refusal(&full))?;
            }
            let additional = pending_frame_bytes.saturating_sub(self.read_buf.len());
            self.read_buf.reserve(additional);
        }
        if self.charge.is_large() {
            if self.charge.is_evicted() {
                return Err(Closing::LastWords(self.charge.evicted_message()));
            }
            if self
                .charge
                .shrink(self.read_buf.len().max(pending_frame_bytes) + extra_bytes)
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

    /// Waits for more bytes (true), or a reason to close: CLIENT KILL, idle
    /// timeout, shutdown, end of stream (false), a request timeout or an
    /// eviction (an error, with last words).
    pub async fn wait_for_bytes(&mut self, shutdown: &mut Shutdown) -> Result<bool, Closing> {
        let wake = tokio::select! {
            // Biased: no random branch order to draw per request.
            biased;
            _ = self.client.killed() => Wake::Close, // CLIENT KILL
            r = self.stream.read_buf(&mut self.read_buf) => Wake::Read(r?),
            _ = self.idle.expired() => Wake::Close, // idle too long
            _ = self.request_timer.expired(), if self.request_timer.running() => {
                Wake::RequestTimeout
            }
            _ = self.charge.evicted(), if self.charge.is_large() => Wake::Evicted,
            () = shutdown.recv() => Wake::Close,
        };
        let n = match wake {
            Wake::Read(0) | Wake::Close => return Ok(false),
            Wake::Read(n) => n,
            Wake::RequestTimeout => {
                self.shared.stats.request_timeouts.fetch_add(1, Relaxed);
                let timeout_ms = self.shared.config.request_timeout_ms;
                return Err(Closing::LastWords(crate::request_timer::timeout_message(
                    timeout_ms,
                )));
            }
            Wake::Evicted => return Err(Closing::LastWords(self.charge.evicted_message())),
        };
        self.hold(0)?;
        self.idle.touch();
        self.shared
            .stats
            .net_input_bytes
            .fetch_add(n as u64, Relaxed);
        Ok(true)
    }

    /// Sends `reply` alone (dropping replies not yet sent) if the socket
    /// takes it now: the connection closes anyway, and a client that does
    /// not read must not delay that.
    pub fn last_words(&mut self, reply: &Reply, version: ProtocolVersion) {
        self.write_buf.clear();
        self.encode(reply, version);
        let _ = self.stream.try_write(&self.write_buf);
    }
}

/// The bound on client buffers has no room for this connection's request
/// or reply.
fn refusal(full: &BuffersFull) -> Closing {
    Closing::LastWords(full.to_string())
}
