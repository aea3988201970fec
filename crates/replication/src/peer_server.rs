//! Inbound peer connections: Raft RPCs into openraft, forwarded client
//! requests into the [`ClusterNode`]. Every connection first passes the
//! authentication handshake (`auth.rs`); nothing else is read before.

use std::io;
use std::time::Duration;

use openraft::storage::Snapshot;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

use crate::auth::{HandshakeError, WarnEvery};
use crate::node::ClusterNode;
use crate::state_machine::{SnapshotFile, incoming_path, verify_snapshot};
use crate::types::SnapshotMeta;
use crate::wire::{ForwardError, Request, Response, read_frame, write_frame};

/// Peer connections open at once at most (each is a task and a socket).
const PEER_CONNECTIONS_MAX: usize = 1024;
/// A peer must complete the handshake (preamble included) promptly.
const HANDSHAKE_TIMEOUT_MS: u64 = 5_000;
/// Refused peers are logged at most this often (a misconfigured node
/// retries every heartbeat).
const REFUSAL_WARN_INTERVAL_MS: u64 = 1_000;
static REFUSALS: WarnEvery = WarnEvery::new(REFUSAL_WARN_INTERVAL_MS);
/// Idle peer connections are closed (openraft reconnects when needed).
const PEER_IDLE_TIMEOUT_MS: u64 = 300_000;
/// Bound on one snapshot chunk's arrival.
const SNAPSHOT_CHUNK_TIMEOUT_MS: u64 = 30_000;

/// Handshakes under way at once. Apart from the connection slots, so that
/// strangers holding sockets open without proving anything (each for up to
/// the handshake timeout) cannot take the slots real peers reconnect into.
const HANDSHAKES_MAX: usize = 64;

pub(crate) async fn serve(listener: TcpListener, node: ClusterNode) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(PEER_CONNECTIONS_MAX));
    let handshakes = std::sync::Arc::new(tokio::sync::Semaphore::new(HANDSHAKES_MAX));
    loop {
        if node.is_stopping() {
            return;
        }
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "peer accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(handshake) = handshakes.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "too many peer handshakes under way; refusing one");
            continue;
        };
        let node = node.clone();
        let slots = slots.clone();
        tokio::spawn(async move {
            let authenticated = authenticate(stream, &node, peer).await;
            drop(handshake);
            match authenticated {
                Ok(stream) => {
                    let Ok(_permit) = slots.try_acquire_owned() else {
                        tracing::warn!(%peer, "too many peer connections; refusing one");
                        return;
                    };
                    if let Err(e) = handle(stream, node).await {
                        tracing::debug!(%peer, error = %e, "peer connection closed");
                    }
                }
                Err(e) if e.is_auth_failure() => {
                    if let Some(left_out) = REFUSALS.allow() {
                        tracing::warn!(
                            %peer,
                            error = %e,
                            similar_refusals_not_logged = left_out,
                            "refused a peer connection: it did not prove the cluster secret"
                        );
                    }
                }
                Err(e) => tracing::debug!(%peer, error = %e, "peer handshake failed"),
            }
        });
    }
}

/// Runs the acceptor's side of the handshake on the bare socket: no
/// buffer is allocated for a peer until it has proved the secret.
async fn authenticate(
    mut stream: TcpStream,
    node: &ClusterNode,
    peer: std::net::SocketAddr,
) -> Result<TcpStream, HandshakeError> {
    stream.set_nodelay(true)?;
    let handshake = crate::auth::accept(&mut stream, node.secret(), node.id());
    let (from, _to) = tokio::time::timeout(Duration::from_millis(HANDSHAKE_TIMEOUT_MS), handshake)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no handshake"))??;
    tracing::trace!(%peer, from, "peer authenticated");
    Ok(stream)
}

async fn handle(stream: TcpStream, node: ClusterNode) -> io::Result<()> {
    let (r, w) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, r);
    let mut writer = BufWriter::with_capacity(64 * 1024, w);
    loop {
        let req: Request = match tokio::time::timeout(
            Duration::from_millis(PEER_IDLE_TIMEOUT_MS),
            read_frame(&mut reader),
        )
        .await
        {
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) | Err(_) => return Ok(()),
            Ok(Err(e)) => return Err(e),
        };
        let resp = match req {
            Request::SnapshotBegin {
                vote,
                last_log_id,
                membership,
                size_bytes,
            } => {
                let meta = SnapshotMeta {
                    last_log_id,
                    last_membership: membership,
                };
                Response::Snapshot(
                    receive_snapshot(&node, &mut reader, vote, meta, size_bytes).await,
                )
            }
            other => dispatch(&node, other).await,
        };
        // A failed transfer may have stopped part-way through a chunk
        // frame (its timeout dropped the read), or left chunks unread: the
        // stream position is unknown, and reading on would take snapshot
        // data for requests. The sender gets the error, then the
        // connection closes.
        let transfer_failed = matches!(resp, Response::Snapshot(Err(_)));
        if let Response::Snapshot(Err(e)) = &resp {
            tracing::warn!(error = %e, "snapshot transfer refused");
        }
        write_frame(&mut writer, &resp).await?;
        writer.flush().await?;
        if transfer_failed {
            return Ok(());
        }
    }
}

async fn dispatch(node: &ClusterNode, req: Request) -> Response {
    // Once this node is stopping, its Raft core may be gone, and openraft
    // logs an ERROR for every call into a stopped core (a peer's
    // leadership hand-over during a cluster-wide SIGTERM, say). Refusing
    // here tells the peer the same without the false alarm.
    if node.is_stopping() {
        const STOPPING: &str = "node is shutting down";
        match &req {
            Request::Append(_) => return Response::Append(Err(STOPPING.into())),
            Request::Vote(_) | Request::PreVote(_) => return Response::Vote(Err(STOPPING.into())),
            Request::TransferLeader(_) => return Response::TransferLeader(Err(STOPPING.into())),
            _ => {}
        }
    }
    let raft = node.raft();
    match req {
        Request::Append(rpc) => {
            Response::Append(raft.append_entries(rpc).await.map_err(|e| e.to_string()))
        }
        Request::Vote(rpc) => Response::Vote(raft.vote(rpc).await.map_err(|e| e.to_string())),
        Request::PreVote(rpc) => {
            Response::Vote(raft.pre_vote(rpc).await.map_err(|e| e.to_string()))
        }
        Request::TransferLeader(rpc) => Response::TransferLeader(
            raft.handle_transfer_leader(rpc)
                .await
                .map_err(|e| e.to_string()),
        ),
        Request::WriteBatch(cmds) => Response::WriteBatch(node.handle_forwarded_writes(cmds).await),
        Request::ReadIndex => {
            // As long as a follower waits for the answer (when every node
            // has the same `--forward-timeout-ms`): a shorter wait would
            // fail reads the follower could still have served.
            Response::ReadIndex(node.read_index_local(node.forward_timeout()).await)
        }
        Request::Status => Response::Status(node.node_status()),
        Request::FailedMembers => Response::FailedMembers(node.failed_members_as_leader()),
        Request::Admin(a) => Response::Admin(match node.admin_forwarded(a).await {
            Ok(()) => Ok(()),
            Err(crate::node::ClusterError::Refused(m)) => Err(ForwardError::Refused(m)),
            Err(e) => Err(ForwardError::Unavailable(e.to_string())),
        }),
        Request::SnapshotBegin { .. } | Request::SnapshotChunk(_) => {
            Response::Snapshot(Err("snapshot chunk outside a transfer".into()))
        }
    }
}

/// Receives chunk frames into a temporary file, fsyncs it, then hands it
/// to openraft, which installs it through the state machine.
async fn receive_snapshot<R: tokio::io::AsyncRead + Unpin>(
    node: &ClusterNode,
    reader: &mut R,
    vote: crate::types::Vote,
    meta: SnapshotMeta,
    size_bytes: u64,
) -> Result<openraft::raft::SnapshotResponse<crate::types::TypeConfig>, String> {
    let path = incoming_path(node.snapshot_dir());
    let result = async {
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| e.to_string())?;
        receive_chunks(
            reader,
            &mut file,
            size_bytes,
            Duration::from_millis(SNAPSHOT_CHUNK_TIMEOUT_MS),
        )
        .await?;
        file.sync_all().await.map_err(|e| e.to_string())?;
        drop(file);
        // Verified here, before openraft sees it: a snapshot that fails
        // its checks inside openraft's install is a storage error, which
        // stops this node's Raft. A corrupt or mislabelled file (say, a
        // bad disk under the leader's copy) is a failed transfer instead.
        let check = path.clone();
        let header = tokio::task::spawn_blocking(move || verify_snapshot(&check))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("received snapshot is unusable: {e}"))?;
        if header.last_log_id != meta.last_log_id {
            return Err(format!(
                "received snapshot holds {:?}, announced as {:?}",
                header.last_log_id, meta.last_log_id
            ));
        }
        let snapshot = Snapshot {
            meta,
            snapshot: SnapshotFile { path: path.clone() },
        };
        node.raft()
            .install_full_snapshot(vote, snapshot)
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    // On success the state machine renamed the file; on failure it is
    // garbage.
    let _ = tokio::fs::remove_file(&path).await;
    result
}

/// Copies exactly `size_bytes` of snapshot chunk frames from `reader` into
/// `file`, each frame due within `chunk_timeout`. An error leaves the
/// stream at an unknown position (a frame may be half read), so the caller
/// must close the connection.
async fn receive_chunks<R, W>(
    reader: &mut R,
    file: &mut W,
    size_bytes: u64,
    chunk_timeout: Duration,
) -> Result<(), String>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut received = 0u64;
    while received < size_bytes {
        let chunk: Request = tokio::time::timeout(chunk_timeout, read_frame(reader))
            .await
            .map_err(|_| "snapshot chunk timed out".to_string())?
            .map_err(|e| e.to_string())?
            .ok_or("peer closed during snapshot")?;
        let Request::SnapshotChunk(data) = chunk else {
            return Err("expected a snapshot chunk".to_string());
        };
        received += data.len() as u64;
        if received > size_bytes {
            return Err(format!(
                "snapshot larger than announced ({size_bytes} bytes)"
            ));
        }
        file.write_all(&data).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::write_frame;

    async fn frame(req: &Request) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame(&mut out, req).await.unwrap();
        out
    }

    /// A chunk that stops half-way is cut by its timeout (the sender may
    /// be alive and silent); the bytes before it are kept, none after.
    #[tokio::test(start_paused = true)]
    async fn a_chunk_that_stalls_half_way_times_out() {
        let whole = frame(&Request::SnapshotChunk(vec![7u8; 1000])).await;
        let second = frame(&Request::SnapshotChunk(vec![8u8; 1000])).await;
        let (mut sender, mut receiver) = tokio::io::duplex(1 << 16);
        sender.write_all(&whole).await.unwrap();
        sender.write_all(&second[..second.len() / 2]).await.unwrap();
        let mut file = Vec::new();
        let started = tokio::time::Instant::now();
        let result = receive_chunks(
            &mut receiver,
            &mut file,
            2000,
            Duration::from_millis(SNAPSHOT_CHUNK_TIMEOUT_MS),
        )
        .await;
        assert_eq!(result, Err("snapshot chunk timed out".to_string()));
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(SNAPSHOT_CHUNK_TIMEOUT_MS),
            "the timeout is per chunk, counted from the stalled one"
        );
        assert_eq!(file, vec![7u8; 1000]);
        drop(sender);
    }

    /// Chunks must add up to the announced size exactly, and nothing else
    /// may arrive in the middle of a transfer.
    #[tokio::test]
    async fn chunks_must_match_the_announced_size_and_kind() {
        let timeout = Duration::from_secs(10);
        let two = [
            frame(&Request::SnapshotChunk(vec![1u8; 600])).await,
            frame(&Request::SnapshotChunk(vec![2u8; 600])).await,
        ]
        .concat();
        let mut file = Vec::new();
        assert_eq!(
            receive_chunks(&mut &two[..], &mut file, 1200, timeout).await,
            Ok(())
        );
        assert_eq!(file.len(), 1200);

        let mut file = Vec::new();
        assert_eq!(
            receive_chunks(&mut &two[..], &mut file, 1000, timeout).await,
            Err("snapshot larger than announced (1000 bytes)".to_string())
        );

        let mut file = Vec::new();
        assert_eq!(
            receive_chunks(&mut &two[..], &mut file, 2000, timeout).await,
            Err("peer closed during snapshot".to_string())
        );

        let mixed = frame(&Request::Status).await;
        let mut file = Vec::new();
        assert_eq!(
            receive_chunks(&mut &mixed[..], &mut file, 10, timeout).await,
            Err("expected a snapshot chunk".to_string())
        );
    }
}
