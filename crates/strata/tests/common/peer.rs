//! The peer protocol spoken by hand, as a stranger or a confused peer
//! would: the authentication handshake (crates/replication/src/auth.rs)
//! with any secret, and raw frames. Every read and write is bounded.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub use strata_replication::ClusterSecret;
use strata_replication::auth::{HELLO_BYTES, NONCE_BYTES, Role, VERDICT_BYTES};
use strata_replication::wire::preamble;

/// Bound on every read and write of a hand-made peer connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A raw TCP connection to a peer port with bounded I/O.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to peer port");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Runs the opener's side of the handshake with `secret`, claiming to be
/// node `from`. `Ok(true)`: accepted (and the acceptor proved the same
/// secret); `Ok(false)`: refused by the acceptor.
pub fn handshake(
    stream: &mut TcpStream,
    secret: &ClusterSecret,
    from: u64,
    to: u64,
) -> io::Result<bool> {
    let opener_nonce: [u8; NONCE_BYTES] = rand::random();
    let mut first = preamble(from, to).to_vec();
    first.extend_from_slice(&opener_nonce);
    stream.write_all(&first)?;
    let mut hello = [0u8; HELLO_BYTES];
    stream.read_exact(&mut hello)?;
    let acceptor = u64::from_le_bytes(hello[..8].try_into().unwrap());
    let acceptor_nonce: [u8; NONCE_BYTES] = hello[8..].try_into().unwrap();
    let nonces = (&opener_nonce, &acceptor_nonce);
    stream.write_all(&secret.proof(Role::Opener, nonces, from, acceptor))?;
    let mut verdict = [0u8; VERDICT_BYTES];
    stream.read_exact(&mut verdict)?;
    if verdict[0] != 1 {
        assert_eq!(verdict, [0u8; VERDICT_BYTES], "a refusal is all zeros");
        return Ok(false);
    }
    let expected = secret.proof(Role::Acceptor, nonces, from, acceptor);
    assert_eq!(verdict[1..], expected, "the acceptor's proof");
    Ok(true)
}

/// One frame: u32 LE length ++ payload.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// Reads one frame's payload.
pub fn read_frame(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    assert!(len < 1 << 20, "a small test response, got {len} bytes");
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload)?;
    Ok(payload)
}

/// Whether the other side closed the connection (EOF or reset) rather
/// than going on: reads what is left, bounded by [`IO_TIMEOUT`].
pub fn closed_by_peer(stream: &mut TcpStream) -> Result<(), String> {
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) if rest.is_empty() => Ok(()),
        Ok(_) => Err(format!(
            "{} more bytes before the close: {rest:?}",
            rest.len()
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(()),
        Err(e) => Err(format!("still open or failed: {e}")),
    }
}

/// `Request::Status` as postcard encodes it (variant 8 of `wire::Request`).
pub const STATUS_REQUEST: [u8; 1] = [8];
/// `Response::Status` starts with its variant, 6.
pub const STATUS_RESPONSE_VARIANT: u8 = 6;

/// `Request::Admin(AdminRequest::Remove { id })` for an id below 128 (a
/// one-byte varint): variant 9, then `Remove`, variant 3 of `AdminRequest`.
pub fn admin_remove(id: u8) -> [u8; 3] {
    assert!(id < 128);
    [9, 3, id]
}

/// `Request::Admin(AdminRequest::AddLearner { id, peer_addr })`.
pub fn admin_add_learner(id: u8, peer_addr: &str) -> Vec<u8> {
    assert!(id < 128 && peer_addr.len() < 128);
    let mut out = vec![9, 0, id, peer_addr.len() as u8];
    out.extend_from_slice(peer_addr.as_bytes());
    out
}
