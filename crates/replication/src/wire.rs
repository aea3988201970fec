//! The peer protocol: how nodes talk to each other over TCP.
//!
//! A connection starts with a 24-byte preamble, `STRATAP4` ++ u64 LE from
//! ++ u64 LE to, so the receiver can refuse a connection meant for another
//! node (an address reused by a different node must never receive its
//! Raft traffic), and so a fault-injecting proxy can tell links apart.
//! The preamble opens the authentication handshake (`auth.rs`): nonces and
//! HMAC proofs of the cluster secret, of fixed sizes. Only after it, each
//! message is a frame: u32 LE length ++ postcard payload, read in steps of
//! at most [`FRAME_READ_STEP_BYTES`] so that memory grows with the bytes
//! that actually arrive, never with the length a peer declares.
//! A connection carries one request at a time: request frame, then
//! response frame (a snapshot is a begin frame, chunk frames, then one
//! response).
//!
//! The digit is the protocol version: 2 since log entries carry
//! `Proposal`s, 3 since a proposal travels as one encoding of its commands,
//! 4 since the authentication handshake follows the preamble.
//! postcard frames are not self-describing, so nodes of
//! different versions must refuse each other at the preamble rather than
//! misread each other's entries.

use std::io;
use std::time::Duration;

use bytes::BytesMut;

use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use strata_storage::Outcome;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::types::{Command, LogId, NodeId, StoredMembership, TypeConfig, Vote};

pub const PREAMBLE_MAGIC: &[u8; 8] = b"STRATAP4";
pub const PREAMBLE_BYTES: usize = 24;
/// The largest frame accepted. An append batch of entries with values at
/// the 16 MiB default limit stays far below; a frame claiming more is a
/// bug or an attack, refused before allocating.
pub const FRAME_BYTES_MAX: usize = 1 << 30;
/// A frame's payload is read (and its buffer grown) this much at a time:
/// a peer that declares a large frame and sends little costs little.
pub const FRAME_READ_STEP_BYTES: usize = 64 * 1024;
/// Snapshot data travels in chunks of this size.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;

pub fn preamble(from: NodeId, to: NodeId) -> [u8; PREAMBLE_BYTES] {
    let mut out = [0u8; PREAMBLE_BYTES];
    out[..8].copy_from_slice(PREAMBLE_MAGIC);
    out[8..16].copy_from_slice(&from.to_le_bytes());
    out[16..].copy_from_slice(&to.to_le_bytes());
    out
}

/// (from, to) of a preamble, or an error for anything else.
pub fn parse_preamble(raw: &[u8; PREAMBLE_BYTES]) -> io::Result<(NodeId, NodeId)> {
    if &raw[..8] != PREAMBLE_MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a Strata peer connection (bad preamble)",
        ));
    }
    let mut from = [0u8; 8];
    from.copy_from_slice(&raw[8..16]);
    let mut to = [0u8; 8];
    to.copy_from_slice(&raw[16..]);
    Ok((u64::from_le_bytes(from), u64::from_le_bytes(to)))
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    TransferLeader(TransferLeaderRequest<TypeConfig>),
    /// Starts a snapshot transfer; chunk frames follow.
    SnapshotBegin {
        vote: Vote,
        last_log_id: Option<LogId>,
        membership: StoredMembership,
        size_bytes: u64,
    },
    SnapshotChunk(#[serde(with = "serde_bytes_compat")] Vec<u8>),
    /// A connection's pipeline of writes, forwarded by a node that is not
    /// the leader; applied in order.
    WriteBatch(Vec<Command>),
    /// Asks the leader for a linearizable read point (ReadIndex).
    ReadIndex,
    /// This node's view of itself, for CLUSTER NODES and ROLE.
    Status,
    /// A membership change, forwarded to the leader.
    Admin(AdminRequest),
    /// Asks the leader which members it has not heard from lately
    /// (`member_health`). Appended last: variants are encoded by position.
    FailedMembers,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum AdminRequest {
    AddLearner {
        id: NodeId,
        peer_addr: String,
    },
    /// Learner first, wait for it to catch up, then voter.
    AddVoter {
        id: NodeId,
        peer_addr: String,
    },
    Promote {
        id: NodeId,
    },
    Remove {
        id: NodeId,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    Append(Result<AppendEntriesResponse<TypeConfig>, String>),
    Vote(Result<VoteResponse<TypeConfig>, String>),
    TransferLeader(Result<openraft::raft::TransferLeaderResponse<TypeConfig>, String>),
    Snapshot(Result<SnapshotResponse<TypeConfig>, String>),
    WriteBatch(Result<Vec<Outcome>, ForwardError>),
    ReadIndex(Result<u64, ForwardError>),
    Status(NodeStatus),
    Admin(Result<(), ForwardError>),
    /// The members the leader has not heard from lately.
    FailedMembers(Result<Vec<NodeId>, ForwardError>),
}

/// Why a forwarded request was not served.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum ForwardError {
    /// The receiver is not the leader; it names the leader it knows.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    /// The request failed at the leader (a membership change refused, a
    /// stale forwarded command, ...). Final: retrying will not help.
    #[error("{0}")]
    Refused(String),
    /// The node is shutting down or failed; try another.
    #[error("{0}")]
    Unavailable(String),
}

/// A node's description of itself.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: NodeId,
    pub client_addr: String,
    pub peer_addr: String,
    pub role: String,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub last_log_index: u64,
    pub applied_index: u64,
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> io::Result<()> {
    let payload = postcard::to_allocvec(msg).map_err(io::Error::other)?;
    if payload.len() > FRAME_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("peer frame of {} bytes exceeds the limit", payload.len()),
        ));
    }
    let mut buf = Vec::with_capacity(4 + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&payload);
    w.write_all(&buf).await?;
    w.flush().await
}

/// Reads one frame; `None` on a clean end of stream before a frame.
pub async fn read_frame<R: AsyncRead + Unpin, T: serde::de::DeserializeOwned>(
    r: &mut R,
) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > FRAME_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("peer frame of {len} bytes exceeds the limit"),
        ));
    }
    let mut payload = Vec::with_capacity(len.min(FRAME_READ_STEP_BYTES));
    while payload.len() < len {
        // `resize` grows the allocation geometrically, so a large frame
        // costs amortised copies, and never more than twice what arrived
        // plus one step.
        let start = payload.len();
        payload.resize(start + (len - start).min(FRAME_READ_STEP_BYTES), 0);
        r.read_exact(&mut payload[start..]).await?;
    }
    decode_frame(&payload).map(Some)
}

/// Takes one whole frame's payload off the front of `buf`, or `None` if
/// `buf` does not hold a whole frame yet (then room for the next bytes of
/// it is reserved, at most [`FRAME_READ_STEP_BYTES`]: the declared length
/// is never reserved up front).
/// Keeps partial frames in `buf`, so a reader that fills `buf` with the
/// cancel-safe `read_buf` loses nothing when its future is dropped.
pub fn take_frame(buf: &mut BytesMut) -> io::Result<Option<BytesMut>> {
    let Some(len) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if len > FRAME_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("peer frame of {len} bytes exceeds the limit"),
        ));
    }
    if buf.len() < 4 + len {
        buf.reserve((4 + len - buf.len()).min(FRAME_READ_STEP_BYTES));
        return Ok(None);
    }
    let mut frame = buf.split_to(4 + len);
    let _ = frame.split_to(4);
    Ok(Some(frame))
}

/// Decodes one frame's payload; bytes left over are an error (postcard's
/// `from_bytes` would ignore them, and a frame that decodes only in part
/// is not the frame that was sent).
pub fn decode_frame<T: serde::de::DeserializeOwned>(payload: &[u8]) -> io::Result<T> {
    match postcard::take_from_bytes(payload) {
        Ok((msg, [])) => Ok(msg),
        Ok((_, rest)) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad peer frame: {} bytes left over", rest.len()),
        )),
        Err(e) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad peer frame: {e}"),
        )),
    }
}

/// Runs `fut` with a deadline, turning expiry into a `TimedOut` error.
pub async fn with_timeout<T>(
    timeout: Duration,
    fut: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "peer request timed out",
        )),
    }
}

/// postcard encodes `Vec<u8>` as a length-prefixed sequence of bytes
/// already; this module keeps the field's intent explicit and lets the
/// encoding change in one place.
mod serde_bytes_compat {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let b: &[u8] = <&[u8]>::deserialize(d)?;
        Ok(b.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preamble_round_trips_and_rejects_garbage() {
        let p = preamble(3, 7);
        assert_eq!(parse_preamble(&p).unwrap(), (3, 7));
        let mut bad = p;
        bad[0] = b'X';
        assert!(parse_preamble(&bad).is_err());
    }

    #[tokio::test]
    async fn take_frame_keeps_partial_frames_and_refuses_oversized_or_padded_ones() {
        let mut encoded = Vec::new();
        write_frame(&mut encoded, &Request::ReadIndex)
            .await
            .unwrap();
        write_frame(&mut encoded, &Request::SnapshotChunk(vec![7; 100]))
            .await
            .unwrap();
        // Fed one byte at a time, as a slow socket would: each frame comes
        // out exactly when its last byte arrives.
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for (i, b) in encoded.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            if let Some(frame) = take_frame(&mut buf).unwrap() {
                frames.push((i, decode_frame::<Request>(&frame).unwrap()));
            }
        }
        assert!(buf.is_empty());
        assert_eq!(frames.len(), 2);
        assert!(matches!(frames[0].1, Request::ReadIndex));
        assert!(matches!(&frames[1].1, Request::SnapshotChunk(d) if d == &vec![7; 100]));
        assert_eq!(frames[1].0, encoded.len() - 1);
        // A length over the limit is refused before anything is reserved.
        let mut huge = BytesMut::from(&((FRAME_BYTES_MAX + 1) as u32).to_le_bytes()[..]);
        assert!(take_frame(&mut huge).is_err());
        // A payload with bytes after the message is not that message.
        let mut padded = postcard::to_allocvec(&Request::ReadIndex).unwrap();
        padded.push(0);
        assert!(decode_frame::<Request>(&padded).is_err());
    }

    /// A forwarded write nested 5,000 transactions deep (20 KiB) overflowed
    /// the stack while its frame decoded, aborting the node (the shape the
    /// `disk_records` fuzz target found in log entries): now a bad frame.
    #[test]
    fn a_deeply_nested_write_is_a_bad_frame_not_a_stack_overflow() {
        let levels = 5_000;
        // Request::WriteBatch (variant 6) of one Command: no request id,
        // no retry, limits 256 and 256, then the mutation: now_ms 1 and
        // Op::Exec (14) with one Step::Write (0), down to an empty Exec.
        let mut payload = vec![6, 1, 0, 0, 0x80, 0x02, 0x80, 0x02, 1];
        for _ in 1..levels {
            payload.extend_from_slice(&[14, 1, 0]);
        }
        payload.extend_from_slice(&[14, 0, 0]);
        payload.extend(std::iter::repeat_n(0u8, levels - 1));
        let err = decode_frame::<Request>(&payload).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // The same shape one level deep is a good frame.
        let one = [6, 1, 0, 0, 0x80, 0x02, 0x80, 0x02, 1, 14, 0, 0];
        assert!(matches!(
            decode_frame::<Request>(&one),
            Ok(Request::WriteBatch(commands)) if commands.len() == 1
        ));
    }

    /// Hands out its bytes and records the largest read it was asked for.
    struct RecordingReader<'a> {
        data: &'a [u8],
        largest_read_bytes: usize,
    }

    impl tokio::io::AsyncRead for RecordingReader<'_> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            self.largest_read_bytes = self.largest_read_bytes.max(buf.remaining());
            let n = buf.remaining().min(self.data.len());
            buf.put_slice(&self.data[..n]);
            self.data = &self.data[n..];
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// A peer that declares a 1 GiB frame and sends 100 KiB of it is read
    /// in steps: the buffer never reaches the declared size.
    #[tokio::test]
    async fn a_declared_length_is_never_allocated_up_front() {
        let mut data = (FRAME_BYTES_MAX as u32).to_le_bytes().to_vec();
        data.extend_from_slice(&vec![0u8; 100 * 1024]);
        let mut r = RecordingReader {
            data: &data,
            largest_read_bytes: 0,
        };
        let err = read_frame::<_, Request>(&mut r).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(
            r.largest_read_bytes <= FRAME_READ_STEP_BYTES,
            "asked for {} bytes at once",
            r.largest_read_bytes
        );
        // The connection side: a header alone reserves one step at most.
        let mut buf = BytesMut::from(&(FRAME_BYTES_MAX as u32).to_le_bytes()[..]);
        assert!(take_frame(&mut buf).unwrap().is_none());
        assert!(
            buf.capacity() <= 2 * FRAME_READ_STEP_BYTES,
            "{}",
            buf.capacity()
        );
        // A frame read in many steps is still the frame that was sent.
        let mut whole = Vec::new();
        let big = Request::SnapshotChunk(vec![9u8; 3 * FRAME_READ_STEP_BYTES + 17]);
        write_frame(&mut whole, &big).await.unwrap();
        match read_frame::<_, Request>(&mut &whole[..]).await.unwrap() {
            Some(Request::SnapshotChunk(d)) => {
                assert_eq!(d, vec![9u8; 3 * FRAME_READ_STEP_BYTES + 17])
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn frames_round_trip_and_refuse_oversized_lengths() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Request::ReadIndex).await.unwrap();
        write_frame(&mut buf, &Request::SnapshotChunk(vec![1, 2, 3]))
            .await
            .unwrap();
        let mut r = &buf[..];
        assert!(matches!(
            read_frame::<_, Request>(&mut r).await.unwrap(),
            Some(Request::ReadIndex)
        ));
        match read_frame::<_, Request>(&mut r).await.unwrap() {
            Some(Request::SnapshotChunk(d)) => assert_eq!(d, vec![1, 2, 3]),
            other => panic!("unexpected {other:?}"),
        }
        assert!(read_frame::<_, Request>(&mut r).await.unwrap().is_none());
        let huge = ((FRAME_BYTES_MAX + 1) as u32).to_le_bytes();
        let mut r = &huge[..];
        assert!(read_frame::<_, Request>(&mut r).await.is_err());
        // A frame whose payload does not decode is an error, not a panic.
        let mut junk = 3u32.to_le_bytes().to_vec();
        junk.extend_from_slice(&[0xff, 0xff, 0xff]);
        let mut r = &junk[..];
        assert!(read_frame::<_, Request>(&mut r).await.is_err());
    }
}
