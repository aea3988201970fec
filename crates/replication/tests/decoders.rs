//! Property tests for the node's decoders of bytes from peers and from
//! disk: the stable-toolchain counterpart of the `peer_frame`,
//! `disk_records` and `snapshot_file` fuzz targets (fuzz/README.md), so
//! that `cargo test` exercises every decoder without nightly.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use strata_replication::Proposal;
use strata_replication::auth::{
    self, ClusterSecret, HELLO_BYTES, OPEN_BYTES, PROOF_BYTES, VERDICT_BYTES,
};
use strata_replication::fuzzing;
use strata_replication::wire::{
    Request, Response, decode_frame, read_frame, take_frame, write_frame,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Cases per run: 256 in `cargo test`; `STRATA_FUZZ_CASES=N` for a
/// longer run (fuzz/README.md).
fn cases() -> u32 {
    std::env::var("STRATA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(fut)
}

/// A peer that sends `data` at most `piece` bytes per read and swallows
/// what is written to it.
struct Peer<'a> {
    data: &'a [u8],
    piece: usize,
    consumed: usize,
}

impl AsyncRead for Peer<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let start = self.consumed;
        let n = (self.data.len() - start)
            .min(self.piece)
            .min(buf.remaining());
        buf.put_slice(&self.data[start..start + n]);
        self.consumed += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Peer<'_> {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Bytes as a decoder meets them: random, or small values that hit enum
/// variants and lengths.
fn raw() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![vec(any::<u8>(), 0..64), vec(0u8..12, 0..64)]
}

/// Frames: a length prefix (mostly the payload's own) and a payload.
fn frames() -> impl Strategy<Value = Vec<u8>> {
    let frame = (
        raw(),
        prop_oneof![4 => Just(None), 1 => any::<u32>().prop_map(Some)],
    )
        .prop_map(|(payload, len)| {
            let len = len.unwrap_or(payload.len() as u32);
            let mut out = len.to_le_bytes().to_vec();
            out.extend_from_slice(&payload);
            out
        });
    vec(frame, 0..4).prop_map(|frames| frames.concat())
}

fn padded(raw: &[u8]) -> Vec<u8> {
    let mut out = raw.to_vec();
    out.push(0);
    out
}

/// A decoded frame re-encoded, or `Err` for a frame that is refused.
fn reencode<T: serde::Serialize + serde::de::DeserializeOwned>(msg: &T) -> Vec<u8> {
    let mut frame = Vec::new();
    block_on(write_frame(&mut frame, msg)).unwrap();
    let again: T = decode_frame(&frame[4..]).unwrap();
    let mut frame_again = Vec::new();
    block_on(write_frame(&mut frame_again, &again)).unwrap();
    assert_eq!(frame_again, frame);
    frame
}

/// The peer server's reader and the outbound connection's reader find the
/// same frames and decode them alike.
fn readers_agree<T: serde::Serialize + serde::de::DeserializeOwned>(data: &[u8], piece: usize) {
    let mut peer = Peer {
        data,
        piece,
        consumed: 0,
    };
    let mut by_read_frame = Vec::new();
    loop {
        match block_on(read_frame::<_, T>(&mut peer)) {
            Ok(Some(msg)) => by_read_frame.push(Ok(reencode(&msg))),
            Ok(None) => break,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                by_read_frame.push(Err(()));
                break;
            }
            Err(_) => break,
        }
    }
    let mut buf = BytesMut::new();
    let mut by_take_frame = Vec::new();
    'pieces: for chunk in data.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            match take_frame(&mut buf) {
                Ok(Some(payload)) => match decode_frame::<T>(&payload) {
                    Ok(msg) => by_take_frame.push(Ok(reencode(&msg))),
                    Err(_) => {
                        by_take_frame.push(Err(()));
                        break 'pieces;
                    }
                },
                Ok(None) => break,
                Err(_) => {
                    by_take_frame.push(Err(()));
                    break 'pieces;
                }
            }
        }
    }
    assert_eq!(by_read_frame, by_take_frame);
}

const SNAPSHOT_END: u32 = u32::MAX;

/// A snapshot file as the node writes it: no log id, the default
/// membership, these entries.
fn snapshot_file(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let header = [0u8; 4];
    let mut out = b"STRATASN".to_vec();
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    for (k, v) in entries {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }
    out.extend_from_slice(&SNAPSHOT_END.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Damage done to a file before it is read.
#[derive(Debug, Clone)]
enum Damage {
    None,
    Flip(usize, u8),
    Truncate(usize),
    Append(Vec<u8>),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn request_frames_read_alike(data in frames(), piece in 1usize..40) {
        readers_agree::<Request>(&data, piece);
    }

    #[test]
    fn response_frames_read_alike(data in frames(), piece in 1usize..40) {
        readers_agree::<Response>(&data, piece);
    }

    /// Only the fixed-size handshake is read, and a peer that cannot know
    /// the other side's nonce is never accepted.
    #[test]
    fn handshakes_with_any_bytes_fail_within_their_sizes(
        data in vec(any::<u8>(), 0..120),
        magic in any::<bool>(),
        local in 0u64..4,
        piece in 1usize..100,
    ) {
        let mut data = data;
        if magic && data.len() >= 8 {
            data[..8].copy_from_slice(b"STRATAP4");
        }
        let mut peer = Peer { data: &data, piece, consumed: 0 };
        let accepted = block_on(auth::accept(&mut peer, &ClusterSecret::none(), local));
        prop_assert!(accepted.is_err());
        prop_assert!(peer.consumed <= OPEN_BYTES + PROOF_BYTES);
        let mut peer = Peer { data: &data, piece, consumed: 0 };
        let opened = block_on(auth::open(&mut peer, &ClusterSecret::none(), 1, local));
        prop_assert!(opened.is_err());
        prop_assert!(peer.consumed <= HELLO_BYTES + VERDICT_BYTES);
    }

    #[test]
    fn log_values_decode_strictly(raw in raw(), which in 0usize..4) {
        if let Ok(entry) = fuzzing::log_entry(&raw) {
            prop_assert!(fuzzing::log_entry(&padded(&raw)).is_err());
            let encoded = postcard::to_allocvec(&entry).unwrap();
            prop_assert_eq!(fuzzing::log_entry(&encoded).unwrap(), entry);
        }
        let name = ["vote", "purged", "committed", "format"][which];
        if let Ok(encoded) = fuzzing::log_meta(name, &raw) {
            prop_assert!(fuzzing::log_meta(name, &padded(&raw)).is_err());
            prop_assert_eq!(fuzzing::log_meta(name, &encoded).unwrap(), encoded);
        }
        if let Ok((last, encoded)) = fuzzing::applied_mark(&raw) {
            prop_assert!(fuzzing::applied_mark(&padded(&raw)).is_err());
            prop_assert_eq!(fuzzing::applied_mark(&encoded).unwrap(), (last, encoded));
        }
    }

    #[test]
    fn proposals_decode_strictly(raw in raw()) {
        if let Ok(p) = Proposal::decode(Bytes::from(raw.clone())) {
            let _ = p.check();
            prop_assert!(Proposal::decode(Bytes::from(padded(&raw))).is_err());
            let again = postcard::to_allocvec(p.commands()).unwrap();
            prop_assert_eq!(Proposal::decode(Bytes::from(again)).unwrap(), p);
        }
    }

    /// The verifier accepts exactly the files whose entries all stream
    /// out, and only files of exactly the written shape.
    #[test]
    fn snapshot_files_verify_only_when_whole(
        entries in vec((vec(any::<u8>(), 0..12), vec(any::<u8>(), 0..12)), 0..5),
        damage in prop_oneof![
            2 => Just(Damage::None),
            1 => (any::<usize>(), 1u8..).prop_map(|(i, x)| Damage::Flip(i, x)),
            1 => any::<usize>().prop_map(Damage::Truncate),
            1 => vec(any::<u8>(), 1..8).prop_map(Damage::Append),
        ],
    ) {
        let written = snapshot_file(&entries);
        let mut file = written.clone();
        match &damage {
            Damage::None => {}
            Damage::Flip(i, x) => {
                let i = i % file.len();
                file[i] ^= x;
            }
            Damage::Truncate(n) => file.truncate(n % file.len()),
            Damage::Append(extra) => file.extend_from_slice(extra),
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.snap");
        std::fs::write(&path, &file).unwrap();
        let verified = fuzzing::verify_snapshot_file(&path);
        let streamed = fuzzing::snapshot_entries(&path)
            .map_err(|_| ())
            .and_then(|it| it.collect::<Result<Vec<_>, _>>().map_err(|_| ()));
        prop_assert_eq!(verified.is_ok(), streamed.is_ok());
        if matches!(damage, Damage::None) {
            let want: Vec<(Bytes, Bytes)> = entries
                .iter()
                .map(|(k, v)| (Bytes::from(k.clone()), Bytes::from(v.clone())))
                .collect();
            prop_assert_eq!(streamed.unwrap(), want);
        } else {
            // The checksum catches every flip and cut; nothing may follow it.
            prop_assert!(verified.is_err(), "{:?} verified", damage);
        }
    }
}
