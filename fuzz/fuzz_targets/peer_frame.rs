//! What a peer can send: request and response frames, as the peer server
//! (`read_frame`) and the outbound connection (`take_frame` +
//! `decode_frame`) read them, and both sides of the authentication
//! handshake, all over an in-memory peer that delivers the input in
//! arbitrary pieces.
//!
//! Input: [which][split seed][parameter] then the peer's bytes.
//! Checks, beyond no panic:
//! - both frame readers find the same frames and decode them alike;
//! - a decoded frame re-encodes (`write_frame`) to bytes that decode to
//!   the same encoding again;
//! - the handshake reads no more than its fixed sizes and never accepts
//!   a peer that cannot know the nonce it must sign.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use strata_fuzz::{Input, MemoryPeer, Splits, ready};
use strata_replication::auth::{
    self, ClusterSecret, HELLO_BYTES, OPEN_BYTES, PROOF_BYTES, VERDICT_BYTES,
};
use strata_replication::wire::{
    PREAMBLE_BYTES, Request, Response, decode_frame, parse_preamble, preamble, read_frame,
    take_frame, write_frame,
};

/// A frame's fate: its message re-encoded as a frame, or a decode error.
type Decoded = Result<Vec<u8>, ()>;

fn reencode<T: Serialize + DeserializeOwned>(msg: &T) -> Vec<u8> {
    let mut frame = Vec::new();
    ready(write_frame(&mut frame, msg)).expect("a decoded message encodes");
    // Encoding is a function of the value: decoding the frame again and
    // encoding gives the same bytes.
    let again: T = decode_frame(&frame[4..]).expect("a re-encoded frame decodes");
    let mut frame_again = Vec::new();
    ready(write_frame(&mut frame_again, &again)).expect("encodes again");
    assert_eq!(frame_again, frame);
    frame
}

/// The peer server's loop: `read_frame` until the stream ends or fails.
fn with_read_frame<T: Serialize + DeserializeOwned>(bytes: &[u8], seed: u8) -> Vec<Decoded> {
    let mut peer = MemoryPeer::new(bytes, Splits::new(seed));
    let mut out = Vec::new();
    loop {
        match ready(read_frame::<_, T>(&mut peer)) {
            Ok(Some(msg)) => out.push(Ok(reencode(&msg))),
            Ok(None) => return out,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                // A frame that is whole but does not decode, or too large.
                out.push(Err(()));
                return out;
            }
            // The stream ended inside a frame.
            Err(_) => return out,
        }
    }
}

/// The outbound connection's loop: fill a buffer, take whole frames.
fn with_take_frame<T: Serialize + DeserializeOwned>(bytes: &[u8], seed: u8) -> Vec<Decoded> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in Splits::new(seed).pieces(bytes) {
        buf.extend_from_slice(piece);
        loop {
            match take_frame(&mut buf) {
                Ok(Some(payload)) => match decode_frame::<T>(&payload) {
                    Ok(msg) => out.push(Ok(reencode(&msg))),
                    Err(_) => {
                        out.push(Err(()));
                        return out;
                    }
                },
                Ok(None) => break,
                Err(_) => {
                    out.push(Err(()));
                    return out;
                }
            }
        }
    }
    out
}

fn frames<T: Serialize + DeserializeOwned>(bytes: &[u8], seed: u8) {
    let a = with_read_frame::<T>(bytes, seed);
    let b = with_take_frame::<T>(bytes, seed.wrapping_add(1));
    assert_eq!(a, b);
}

/// The acceptor's side: the input is what the opener sends.
fn accept(bytes: &[u8], seed: u8, local: u8) {
    let mut peer = MemoryPeer::new(bytes, Splits::new(seed));
    let result = ready(auth::accept(
        &mut peer,
        &ClusterSecret::none(),
        u64::from(local),
    ));
    assert!(
        peer.consumed <= OPEN_BYTES + PROOF_BYTES,
        "read {}",
        peer.consumed
    );
    // The opener's proof signs the acceptor's fresh random nonce.
    assert!(
        result.is_err(),
        "accepted a handshake written before the nonce"
    );
}

/// The opener's side: the input is what the acceptor answers.
fn open(bytes: &[u8], seed: u8, to: u8) {
    let mut peer = MemoryPeer::new(bytes, Splits::new(seed));
    let result = ready(auth::open(
        &mut peer,
        &ClusterSecret::none(),
        1,
        u64::from(to),
    ));
    assert!(
        peer.consumed <= HELLO_BYTES + VERDICT_BYTES,
        "read {}",
        peer.consumed
    );
    assert!(
        result.is_err(),
        "accepted a verdict written before the nonce"
    );
}

fn preamble_round_trip(bytes: &[u8]) {
    let Some(raw) = bytes.get(..PREAMBLE_BYTES) else {
        return;
    };
    let raw: [u8; PREAMBLE_BYTES] = raw.try_into().unwrap();
    if let Ok((from, to)) = parse_preamble(&raw) {
        assert_eq!(preamble(from, to), raw);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let which = input.byte();
    let seed = input.byte();
    let parameter = input.byte();
    let bytes = input.rest();
    match which % 5 {
        0 => frames::<Request>(bytes, seed),
        1 => frames::<Response>(bytes, seed),
        2 => accept(bytes, seed, parameter),
        3 => open(bytes, seed, parameter),
        _ => preamble_round_trip(bytes),
    }
});
