//! Outbound peer connections: openraft's network (append, vote, snapshot,
//! leader transfer) and the connection used to forward client requests.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use openraft::BasicNode;
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::alias::SnapshotOf;
use tokio::io::{AsyncReadExt, BufWriter};
use tokio::net::TcpStream;

use crate::auth::{ClusterSecret, WarnEvery};
use crate::state_machine::{SNAPSHOT_CRC_BYTES, SnapshotFile};
use crate::types::{NodeId, TypeConfig, Vote};
use crate::wire::{
    Request, Response, SNAPSHOT_CHUNK_BYTES, decode_frame, take_frame, with_timeout, write_frame,
};

/// Bound on establishing a peer connection.
const CONNECT_TIMEOUT_MS: u64 = 1_000;
/// Bound on the authentication handshake after connecting (two round
/// trips; generous for slow links, since a connection is then reused).
const HANDSHAKE_TIMEOUT_MS: u64 = 5_000;
/// Refusals by peers are logged at most this often.
const REFUSAL_WARN_INTERVAL_MS: u64 = 1_000;
static REFUSALS: WarnEvery = WarnEvery::new(REFUSAL_WARN_INTERVAL_MS);
/// A peer that is down is reported at most this often (per peer): openraft
/// retries it every heartbeat, and one line per retry drowns the log.
const PEER_DOWN_WARN_INTERVAL_MS: u64 = 5_000;
/// Bound on one snapshot chunk's send (a slow link fails instead of hanging).
const SNAPSHOT_CHUNK_TIMEOUT_MS: u64 = 30_000;
/// Bound on the receiver's install after the last chunk.
const SNAPSHOT_INSTALL_TIMEOUT_MS: u64 = 600_000;

/// One open connection to a peer, request/response at a time.
///
/// Cancel-safe: a call may be dropped at any await (openraft drops a
/// heartbeat at one heartbeat interval; a caller's timeout drops its call),
/// and the connection stays usable. Why it matters: a connection that
/// still owes the answer to an abandoned request would hand that answer to
/// the next call as its own, e.g. a follower's acknowledgement counted for a
/// later heartbeat round, which a linearizable read relies on. So:
/// - responses are read into `read_buf` with `read_buf` (which loses
///   nothing when dropped), and a frame is taken out only when whole;
/// - `answer_owed` is set while a request written whole has not had its
///   response read; the next call reads and discards that response first
///   (a connection answers in order, one response per request). A call
///   writes only once nothing is owed, so at most one answer is ever owed;
/// - `writing` is set while a request is being written: a write dropped
///   half-way leaves a partial frame on the wire, and the connection is
///   then refused (`is_usable`) rather than reused.
pub struct PeerConn {
    reader: tokio::net::tcp::OwnedReadHalf,
    read_buf: BytesMut,
    writer: BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    answer_owed: bool,
    writing: bool,
}

/// A connection's read buffer between frames: most responses fit; a
/// larger one grows the buffer for as long as it takes to read it.
const READ_BUF_BYTES: usize = 64 * 1024;

impl PeerConn {
    /// Connects to node `to` (0: whichever node listens at `addr`) and
    /// proves `secret` both ways (`auth.rs`). A refusal either way is
    /// logged here, and is a `PermissionDenied` error.
    pub async fn connect(
        from: NodeId,
        to: NodeId,
        addr: &str,
        secret: &ClusterSecret,
    ) -> io::Result<PeerConn> {
        let mut stream = with_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS), async {
            TcpStream::connect(addr).await
        })
        .await?;
        stream.set_nodelay(true)?;
        let handshake = crate::auth::open(&mut stream, secret, from, to);
        match tokio::time::timeout(Duration::from_millis(HANDSHAKE_TIMEOUT_MS), handshake).await {
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "peer handshake timed out",
                ));
            }
            Ok(Err(e)) => {
                if e.is_auth_failure()
                    && let Some(left_out) = REFUSALS.allow()
                {
                    tracing::warn!(
                        peer = %addr,
                        error = %e,
                        similar_refusals_not_logged = left_out,
                        "peer connection refused"
                    );
                }
                return Err(e.into());
            }
            Ok(Ok(_)) => {}
        }
        let (r, w) = stream.into_split();
        Ok(PeerConn {
            reader: r,
            read_buf: BytesMut::with_capacity(READ_BUF_BYTES),
            writer: BufWriter::with_capacity(64 * 1024, w),
            answer_owed: false,
            writing: false,
        })
    }

    /// Whether the next call may use this connection: no request was cut
    /// half-way. (An owed answer does not make it unusable: the next call
    /// waits for it within its own timeout, and a peer that never sends it
    /// fails that call, which drops the connection.)
    pub fn is_usable(&self) -> bool {
        !self.writing
    }

    /// Sends `req` and returns its response; answers still owed to
    /// abandoned calls are read and discarded first, within `timeout`.
    pub async fn call(&mut self, req: &Request, timeout: Duration) -> io::Result<Response> {
        with_timeout(timeout, async {
            if !self.is_usable() {
                return Err(io::Error::other(
                    "peer connection unusable after an abandoned call",
                ));
            }
            if self.answer_owed {
                let _stale: Response = self.read_response().await?;
                self.answer_owed = false;
            }
            self.writing = true;
            write_frame(&mut self.writer, req).await?;
            self.writing = false;
            self.answer_owed = true;
            let response = self.read_response().await?;
            self.answer_owed = false;
            Ok(response)
        })
        .await
    }

    /// Reads one whole response frame; cancel-safe (see the type).
    async fn read_response<T: serde::de::DeserializeOwned>(&mut self) -> io::Result<T> {
        loop {
            if let Some(frame) = take_frame(&mut self.read_buf)? {
                if self.read_buf.is_empty() && frame.len() >= READ_BUF_BYTES {
                    // `read_buf` grew for this frame, and still shares that
                    // allocation with it (its `capacity` no longer shows
                    // it): its next `reserve` would take it back whole, and
                    // keep it for as long as the connection lives (a pooled
                    // one: indefinitely). Nothing is buffered, so a fresh
                    // buffer loses nothing.
                    self.read_buf = BytesMut::with_capacity(READ_BUF_BYTES);
                }
                return decode_frame(&frame);
            }
            if self.reader.read_buf(&mut self.read_buf).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed the connection",
                ));
            }
        }
    }
}

/// Creates one client per target; openraft asks for separate clients for
/// replication, heartbeats and snapshots, so they never queue behind
/// each other on one connection.
#[derive(Clone)]
pub struct Network {
    pub self_id: NodeId,
    /// The least time an append or vote may take. openraft derives its RPC
    /// budget from the heartbeat interval; on a link whose round trip
    /// exceeds that, every append would time out and replication would
    /// stall for good. Appends that are slow but arrive keep the cluster
    /// writing; an election timeout is the natural bound.
    pub rpc_timeout_floor: Duration,
    /// Woken when this node finds, while sending it, that its own snapshot
    /// file fails its checksum: the node then builds a fresh one (which
    /// replaces the bad file). Without it a follower that needs a snapshot
    /// would be sent the same bad file until the next scheduled snapshot,
    /// which on an idle cluster never comes.
    pub snapshot_corrupt: Arc<tokio::sync::Notify>,
    /// What every connection proves (`auth.rs`).
    pub secret: ClusterSecret,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            from: self.self_id,
            target,
            addr: node.addr.clone(),
            conn: None,
            connecting: None,
            rpc_timeout_floor: self.rpc_timeout_floor,
            snapshot_corrupt: Arc::clone(&self.snapshot_corrupt),
            secret: self.secret.clone(),
            down_warnings: WarnEvery::new(PEER_DOWN_WARN_INTERVAL_MS),
        }
    }
}

pub struct PeerClient {
    from: NodeId,
    target: NodeId,
    addr: String,
    conn: Option<PeerConn>,
    /// A connection being set up, in its own task. Why a task: the
    /// handshake takes two round trips, and openraft drops a heartbeat
    /// call at one heartbeat interval; on a link whose round trip exceeds
    /// that, a handshake inside the call would be dropped every time and
    /// the link would never connect. The next call waits for the same task.
    connecting: Option<tokio::task::JoinHandle<io::Result<PeerConn>>>,
    rpc_timeout_floor: Duration,
    snapshot_corrupt: Arc<tokio::sync::Notify>,
    secret: ClusterSecret,
    /// Rate limit of the "peer unreachable" warning for this peer.
    down_warnings: WarnEvery,
}

impl Drop for PeerClient {
    fn drop(&mut self) {
        if let Some(task) = self.connecting.take() {
            task.abort();
        }
    }
}

fn unreachable_err(e: &io::Error) -> RPCError<TypeConfig> {
    RPCError::Unreachable(Unreachable::new(e))
}

fn network_err(e: &io::Error) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::new(e))
}

fn remote_err(msg: String) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::from_string(msg))
}

impl PeerClient {
    async fn call(
        &mut self,
        req: Request,
        option: &RPCOption,
    ) -> Result<Response, RPCError<TypeConfig>> {
        // A call dropped half-way (openraft drops a heartbeat at one
        // heartbeat interval) leaves the connection in place: `PeerConn`
        // skips the answer it still owes, or reports itself unusable.
        // Reconnecting instead would cost a round trip more per heartbeat,
        // and on a link whose round trip is over half an interval every
        // later heartbeat would then miss its interval too.
        if self.conn.as_ref().is_some_and(|c| !c.is_usable()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            let (from, target) = (self.from, self.target);
            let (addr, secret) = (self.addr.clone(), self.secret.clone());
            let task = self.connecting.get_or_insert_with(|| {
                tokio::spawn(async move { PeerConn::connect(from, target, &addr, &secret).await })
            });
            // Cancel-safe: a dropped call leaves the task in `connecting`.
            let joined = task.await;
            self.connecting = None;
            let conn = joined
                .map_err(|e| io::Error::other(e.to_string()))
                .and_then(|r| r)
                .map_err(|e| {
                    self.warn_down(&e);
                    unreachable_err(&e)
                })?;
            self.conn = Some(conn);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(remote_err("no connection".into()));
        };
        let timeout = option.soft_ttl().max(self.rpc_timeout_floor);
        match conn.call(&req, timeout).await {
            Ok(r) => Ok(r),
            Err(e) => {
                // The stream position is unknown after a failure: reconnect.
                self.conn = None;
                Err(network_err(&e))
            }
        }
    }

    /// Logs that the peer cannot be reached, at most once per
    /// [`PEER_DOWN_WARN_INTERVAL_MS`]. Refusals (a wrong secret) are
    /// logged where they are found, by `PeerConn::connect`.
    fn warn_down(&self, e: &io::Error) {
        if e.kind() == io::ErrorKind::PermissionDenied {
            return;
        }
        if let Some(left_out) = self.down_warnings.allow() {
            tracing::warn!(
                peer = %self.addr,
                node = self.target,
                error = %e,
                similar_not_logged = left_out,
                "peer unreachable; retrying"
            );
        }
    }

    async fn send_snapshot(
        &mut self,
        vote: Vote,
        snapshot: SnapshotOf<TypeConfig, SnapshotFile>,
    ) -> io::Result<Response> {
        // A dedicated connection: a transfer can take long, and a failed
        // one leaves nothing half-read on a shared connection.
        let mut conn = PeerConn::connect(self.from, self.target, &self.addr, &self.secret).await?;
        let mut file = tokio::fs::File::open(&snapshot.snapshot.path).await?;
        let size_bytes = file.metadata().await?.len();
        let begin = Request::SnapshotBegin {
            vote,
            last_log_id: snapshot.meta.last_log_id,
            membership: snapshot.meta.last_membership.clone(),
            size_bytes,
        };
        let chunk_timeout = Duration::from_millis(SNAPSHOT_CHUNK_TIMEOUT_MS);
        with_timeout(chunk_timeout, write_frame(&mut conn.writer, &begin)).await?;
        let mut sent = 0u64;
        let mut buf = vec![0u8; SNAPSHOT_CHUNK_BYTES];
        // The file's last 4 bytes are the crc32 of everything before them
        // (state_machine.rs); checking it as the file streams by costs no
        // extra read.
        let body_bytes = size_bytes.saturating_sub(SNAPSHOT_CRC_BYTES as u64);
        let mut crc = crc32fast::Hasher::new();
        let mut trailer = Vec::with_capacity(SNAPSHOT_CRC_BYTES);
        while sent < size_bytes {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "snapshot file shrank while being sent",
                ));
            }
            let body_in_chunk = body_bytes.saturating_sub(sent).min(n as u64) as usize;
            crc.update(&buf[..body_in_chunk]);
            trailer.extend_from_slice(&buf[body_in_chunk..n]);
            sent += n as u64;
            let chunk = Request::SnapshotChunk(buf[..n].to_vec());
            with_timeout(chunk_timeout, write_frame(&mut conn.writer, &chunk)).await?;
        }
        if trailer[..] != crc.finalize().to_le_bytes() {
            tracing::error!(
                file = %snapshot.snapshot.path.display(),
                "this node's snapshot file fails its checksum; building a new one"
            );
            self.snapshot_corrupt.notify_one();
        }
        with_timeout(
            Duration::from_millis(SNAPSHOT_INSTALL_TIMEOUT_MS),
            conn.read_response(),
        )
        .await
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(Request::Append(rpc), &option).await? {
            Response::Append(Ok(r)) => Ok(r),
            Response::Append(Err(e)) => Err(remote_err(e)),
            other => Err(remote_err(format!("unexpected reply to append: {other:?}"))),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(Request::Vote(rpc), &option).await? {
            Response::Vote(Ok(r)) => Ok(r),
            Response::Vote(Err(e)) => Err(remote_err(e)),
            other => Err(remote_err(format!("unexpected reply to vote: {other:?}"))),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(Request::PreVote(rpc), &option).await? {
            Response::Vote(Ok(r)) => Ok(r),
            Response::Vote(Err(e)) => Err(remote_err(e)),
            other => Err(remote_err(format!(
                "unexpected reply to pre-vote: {other:?}"
            ))),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: SnapshotOf<TypeConfig, SnapshotFile>,
        cancel: impl Future<Output = ReplicationClosed> + openraft::OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let result = tokio::select! {
            r = self.send_snapshot(vote, snapshot) => r,
            closed = cancel => return Err(StreamingError::Closed(closed)),
        };
        match result {
            Ok(Response::Snapshot(Ok(r))) => Ok(r),
            Ok(Response::Snapshot(Err(e))) => {
                Err(StreamingError::Network(NetworkError::from_string(e)))
            }
            Ok(other) => Err(StreamingError::Network(NetworkError::from_string(format!(
                "unexpected reply to snapshot: {other:?}"
            )))),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                Err(StreamingError::Unreachable(Unreachable::new(&e)))
            }
            Err(e) => Err(StreamingError::Network(NetworkError::new(&e))),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(Request::TransferLeader(req), &option).await? {
            Response::TransferLeader(Ok(r)) => Ok(r),
            Response::TransferLeader(Err(e)) => Err(remote_err(e)),
            other => Err(remote_err(format!(
                "unexpected reply to transfer: {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{NodeStatus, read_frame};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Instant;
    use tokio::io::BufReader;
    use tokio::net::TcpListener;

    /// How many connections and requests a test peer has received, and
    /// how many requests it answered.
    #[derive(Default)]
    struct Seen {
        connections: AtomicU64,
        received: AtomicU64,
        answered: AtomicU64,
    }

    /// A peer that answers every `Status` request with the request's global
    /// sequence number (1, 2, ...) in `term`, the first one only after
    /// `first_delay`.
    async fn numbering_peer(first_delay: Duration) -> (String, Arc<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Seen::default());
        let counters = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let counters = Arc::clone(&counters);
                counters.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let Some((mut r, mut w)) = accept_peer(stream).await else {
                        return;
                    };
                    while let Ok(Some(Request::Status)) = read_frame(&mut r).await {
                        let n = counters.received.fetch_add(1, Ordering::SeqCst) + 1;
                        if n == 1 {
                            tokio::time::sleep(first_delay).await;
                        }
                        let status = NodeStatus {
                            term: n,
                            ..NodeStatus::default()
                        };
                        let sent = write_frame(&mut w, &Response::Status(status)).await;
                        counters.answered.fetch_add(1, Ordering::SeqCst);
                        if sent.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, seen)
    }

    /// The peer side of a test connection: past the handshake (as node 2,
    /// no secret), the frame reader and the writer; `None` if the
    /// handshake fails.
    async fn accept_peer(
        mut stream: TcpStream,
    ) -> Option<(
        BufReader<tokio::net::tcp::OwnedReadHalf>,
        tokio::net::tcp::OwnedWriteHalf,
    )> {
        crate::auth::accept(&mut stream, &ClusterSecret::none(), 2)
            .await
            .ok()?;
        let (r, w) = stream.into_split();
        Some((BufReader::new(r), w))
    }

    /// A client of node 2 at `addr`, as openraft would get one.
    fn client(addr: String, rpc_timeout_floor: Duration) -> PeerClient {
        PeerClient {
            from: 1,
            target: 2,
            addr,
            conn: None,
            connecting: None,
            rpc_timeout_floor,
            snapshot_corrupt: Arc::new(tokio::sync::Notify::new()),
            secret: ClusterSecret::none(),
            down_warnings: WarnEvery::new(PEER_DOWN_WARN_INTERVAL_MS),
        }
    }

    /// Polls `done` every millisecond for at most 10 s.
    async fn wait_until(done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "test peer too slow");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn term_of(r: Response) -> u64 {
        match r {
            Response::Status(s) => s.term,
            other => panic!("unexpected response {other:?}"),
        }
    }

    /// openraft's heartbeat worker drops an RPC future at its own timeout.
    /// The next call on the same client must read its own response, never
    /// the abandoned call's answer arriving late.
    #[tokio::test]
    async fn a_call_abandoned_half_way_never_answers_the_next_one() {
        let (addr, seen) = numbering_peer(Duration::from_millis(200)).await;
        let mut client = client(addr, Duration::from_secs(5));
        let option = RPCOption::new(Duration::from_secs(5));
        // The first call is dropped once its request has arrived, as a
        // timeout around it would drop it.
        tokio::select! {
            // Checked first: should both be ready, the request has arrived.
            biased;
            () = wait_until(|| seen.received.load(Ordering::SeqCst) >= 1) => {}
            r = client.call(Request::Status, &option) => panic!("answered early: {r:?}"),
        }
        // Its late answer is sent before the next call.
        wait_until(|| seen.answered.load(Ordering::SeqCst) >= 1).await;
        let second = client.call(Request::Status, &option).await.unwrap();
        assert_eq!(
            term_of(second),
            2,
            "the second call read another call's answer"
        );
        let third = client.call(Request::Status, &option).await.unwrap();
        assert_eq!(term_of(third), 3);
        assert_eq!(seen.received.load(Ordering::SeqCst), 3);
        // The connection survived the abandoned call: no reconnect, which
        // on a slow link would cost the next heartbeat a round trip more.
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    }

    /// A large response grows the read buffer only while it is read: a
    /// connection kept in a pool must not hold the largest answer it ever
    /// got.
    #[tokio::test]
    async fn the_read_buffer_shrinks_back_after_a_large_response() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let Some((mut r, mut w)) = accept_peer(stream).await else {
                return;
            };
            while let Ok(Some(Request::Status)) = read_frame(&mut r).await {
                let status = NodeStatus {
                    client_addr: "x".repeat(4 << 20),
                    ..NodeStatus::default()
                };
                if write_frame(&mut w, &Response::Status(status))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let mut conn = PeerConn::connect(1, 2, &addr, &ClusterSecret::none())
            .await
            .unwrap();
        for _ in 0..2 {
            match conn.call(&Request::Status, Duration::from_secs(10)).await {
                Ok(Response::Status(s)) => assert_eq!(s.client_addr.len(), 4 << 20),
                other => panic!("unexpected {other:?}"),
            }
            // A buffer that still owned the large allocation would take
            // it back whole at its next reserve (as the next read does).
            conn.read_buf.reserve(1);
            assert!(
                conn.read_buf.capacity() <= READ_BUF_BYTES,
                "read buffer kept {} bytes",
                conn.read_buf.capacity()
            );
        }
    }

    /// A call dropped while its request is half written leaves a partial
    /// frame on the wire: the connection must not be used again.
    #[tokio::test]
    async fn a_connection_whose_write_was_cut_is_not_reused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let connections = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&connections);
        tokio::spawn(async move {
            // The first connection is accepted, authenticated and then
            // never read, so a large request stalls half-way once the
            // socket buffers are full.
            let Ok((mut stalled, _)) = listener.accept().await else {
                return;
            };
            if crate::auth::accept(&mut stalled, &ClusterSecret::none(), 2)
                .await
                .is_err()
            {
                return;
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            if let Some((mut r, mut w)) = accept_peer(stream).await
                && let Ok(Some(Request::Status)) = read_frame(&mut r).await
            {
                let status = NodeStatus {
                    term: 7,
                    ..NodeStatus::default()
                };
                let _ = write_frame(&mut w, &Response::Status(status)).await;
            }
            drop(stalled);
        });
        let mut client = client(addr, Duration::ZERO);
        let patient = RPCOption::new(Duration::from_secs(10));
        let big = Request::SnapshotChunk(vec![0u8; 32 << 20]);
        // Dropped once the write has stalled (nothing reads it).
        tokio::select! {
            r = client.call(big, &patient) => panic!("a 32 MiB request went through: {r:?}"),
            () = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
        assert!(client.conn.as_ref().is_some_and(|c| !c.is_usable()));
        let answer = client.call(Request::Status, &patient).await.unwrap();
        assert_eq!(term_of(answer), 7);
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    /// A call dropped while its connection is still in the handshake (a
    /// heartbeat on a link slower than its interval) leaves the handshake
    /// running; the next call uses that connection instead of starting over.
    #[tokio::test]
    async fn a_handshake_outlives_a_call_dropped_during_it() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let connections = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    // A slow link: the handshake starts late.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let Some((mut r, mut w)) = accept_peer(stream).await else {
                        return;
                    };
                    while let Ok(Some(Request::Status)) = read_frame(&mut r).await {
                        let status = NodeStatus {
                            term: 5,
                            ..NodeStatus::default()
                        };
                        if write_frame(&mut w, &Response::Status(status))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        let mut client = client(addr, Duration::ZERO);
        let patient = RPCOption::new(Duration::from_secs(10));
        tokio::select! {
            r = client.call(Request::Status, &patient) => panic!("answered early: {r:?}"),
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        assert!(client.conn.is_none() && client.connecting.is_some());
        let answer = client.call(Request::Status, &patient).await.unwrap();
        assert_eq!(term_of(answer), 5);
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }

    /// An abandoned call whose answer never comes makes the next call time
    /// out, and the one after that reconnects.
    #[tokio::test]
    async fn a_connection_that_owes_an_unanswerable_call_is_replaced() {
        let (addr, seen) = numbering_peer(Duration::from_secs(3_600)).await;
        let mut client = client(addr, Duration::ZERO);
        // Generous limits for the calls that must not time out (a loaded
        // machine may pause this test), a short one for the call that must.
        let patient = RPCOption::new(Duration::from_secs(10));
        let short = RPCOption::new(Duration::from_millis(200));
        tokio::select! {
            biased;
            () = wait_until(|| seen.received.load(Ordering::SeqCst) >= 1) => {}
            r = client.call(Request::Status, &patient) => panic!("answered early: {r:?}"),
        }
        // Waits for the owed answer, times out, and drops the connection.
        assert!(client.call(Request::Status, &short).await.is_err());
        let third = client.call(Request::Status, &patient).await.unwrap();
        assert_eq!(term_of(third), 2);
        assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
    }
}
