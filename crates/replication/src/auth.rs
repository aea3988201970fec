//! Peer authentication: every peer connection proves, before anything else
//! is read from it, that both ends hold the same cluster secret.
//!
//! The handshake, right after TCP connect (the opener is the node that
//! connects, the acceptor the node that listens):
//!
//! 1. opener -> acceptor: the 24-byte preamble (`wire.rs`) ++ a random
//!    32-byte nonce `n_o`;
//! 2. acceptor -> opener: its node id (u64 LE) ++ a random 32-byte nonce
//!    `n_a` (the acceptor refuses first, without answering, a preamble
//!    addressed to another node id);
//! 3. opener -> acceptor: `proof_o` (32 bytes);
//! 4. acceptor -> opener: 1 ++ `proof_a` if `proof_o` is right, else 33
//!    zero bytes, and the acceptor closes.
//!
//! `proof_r = HMAC-SHA256(secret, magic ++ role r ++ n_o ++ n_a ++ from ++
//! acceptor id)`. The secret never travels; both nonces make every proof
//! single-use (no replay), the role label makes the acceptor's proof
//! useless as the opener's, and both ends refuse a link to their own id
//! (no reflection of a node's handshake back to itself). The ids bind the
//! proof to the two node ids, not to the TCP connection: a stranger on the
//! path, or one that a joining node (`--join`, which does not know the
//! acceptor's id) connects to, can relay a handshake; without TLS nothing
//! stops an on-path attacker anyway (README, Securing a cluster). The opener proves first, so the acceptor computes nothing
//! for a stranger that a stranger could use. Proofs are compared in
//! constant time (`hmac`'s `verify_slice`).
//!
//! Until step 4 the acceptor reads exactly 88 bytes (56 + 32) into fixed
//! arrays: an unauthenticated peer can make it allocate nothing else.
//!
//! A node without a configured secret uses the empty key: nodes that all
//! run without a secret (on loopback, or with `--cluster-secret-file
//! none`) still talk, and a node with a secret refuses one without (and
//! the other way round), each side logging why.

use std::fmt;
use std::io;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::types::NodeId;
use crate::wire::{PREAMBLE_BYTES, PREAMBLE_MAGIC, parse_preamble, preamble};

pub const NONCE_BYTES: usize = 32;
pub const PROOF_BYTES: usize = 32;
/// What the opener sends first: preamble ++ nonce.
pub const OPEN_BYTES: usize = PREAMBLE_BYTES + NONCE_BYTES;
/// The acceptor's hello: its id ++ its nonce.
pub const HELLO_BYTES: usize = 8 + NONCE_BYTES;
/// The acceptor's verdict: 1 (accepted) or 0, then its proof (or zeros).
pub const VERDICT_BYTES: usize = 1 + PROOF_BYTES;
/// A secret shorter than this is refused (guessable).
pub const SECRET_BYTES_MIN: usize = 16;
/// A secret file longer than this is refused (not a secret file).
pub const SECRET_BYTES_MAX: usize = 4096;

/// Which end of the connection a proof is from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Opener,
    Acceptor,
}

impl Role {
    fn label(self) -> &'static [u8] {
        match self {
            Role::Opener => b"opener",
            Role::Acceptor => b"acceptor",
        }
    }
}

/// The shared cluster secret, or none (the empty key). Its `Debug` never
/// shows the bytes.
#[derive(Clone)]
pub struct ClusterSecret(std::sync::Arc<[u8]>);

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_none() {
            f.write_str("ClusterSecret(none)")
        } else {
            f.write_str("ClusterSecret(<redacted>)")
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the cluster secret file {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error(
        "the cluster secret file {path} holds {len} bytes (surrounding whitespace ignored); \
         it needs {SECRET_BYTES_MIN} to {SECRET_BYTES_MAX} (e.g. `openssl rand -hex 32 > {path}`)"
    )]
    Size { path: String, len: usize },
}

impl ClusterSecret {
    /// No secret: peers prove nothing beyond knowing the protocol.
    pub fn none() -> ClusterSecret {
        ClusterSecret(std::sync::Arc::from(&[][..]))
    }

    pub fn is_none(&self) -> bool {
        self.0.is_empty()
    }

    /// The file's bytes without surrounding ASCII whitespace (so a file
    /// written with `echo` works), `SECRET_BYTES_MIN..=SECRET_BYTES_MAX`
    /// of them.
    pub fn read_file(path: &Path) -> Result<ClusterSecret, SecretError> {
        use std::io::Read;
        let shown = path.display().to_string();
        let read_err = |source| SecretError::Read {
            path: shown.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let mut raw = Vec::new();
        // One byte more than any whitespace-padded secret could need
        // tells "too large" apart without reading a huge file whole.
        file.take(2 * SECRET_BYTES_MAX as u64 + 1)
            .read_to_end(&mut raw)
            .map_err(read_err)?;
        let secret = raw.trim_ascii();
        if !(SECRET_BYTES_MIN..=SECRET_BYTES_MAX).contains(&secret.len()) {
            return Err(SecretError::Size {
                path: shown,
                len: secret.len(),
            });
        }
        Ok(ClusterSecret(std::sync::Arc::from(secret)))
    }

    /// `proof_role` over one handshake's transcript.
    pub fn proof(
        &self,
        role: Role,
        nonces: (&[u8; NONCE_BYTES], &[u8; NONCE_BYTES]),
        from: NodeId,
        acceptor: NodeId,
    ) -> [u8; PROOF_BYTES] {
        self.mac(role, nonces, from, acceptor)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Whether `proof` is `role`'s proof over the transcript, in constant
    /// time.
    fn verify(
        &self,
        role: Role,
        nonces: (&[u8; NONCE_BYTES], &[u8; NONCE_BYTES]),
        from: NodeId,
        acceptor: NodeId,
        proof: &[u8],
    ) -> bool {
        self.mac(role, nonces, from, acceptor)
            .verify_slice(proof)
            .is_ok()
    }

    fn mac(
        &self,
        role: Role,
        (opener_nonce, acceptor_nonce): (&[u8; NONCE_BYTES], &[u8; NONCE_BYTES]),
        from: NodeId,
        acceptor: NodeId,
    ) -> Hmac<Sha256> {
        // HMAC takes keys of any length, the empty one included.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(PREAMBLE_MAGIC);
        mac.update(role.label());
        mac.update(opener_nonce);
        mac.update(acceptor_nonce);
        mac.update(&from.to_le_bytes());
        mac.update(&acceptor.to_le_bytes());
        mac
    }
}

/// Why a handshake failed. `Refused` and `BadProof` are authentication
/// failures (a wrong or missing secret, or a stranger); the rest are
/// protocol or I/O errors.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("peer handshake: {0}")]
    Io(#[from] io::Error),
    #[error(
        "the peer refused this node's proof: wrong or missing cluster secret \
         (--cluster-secret-file must name the same secret on every node)"
    )]
    Refused,
    #[error(
        "the peer failed to prove it holds the cluster secret \
         (wrong or missing --cluster-secret-file, or not a member)"
    )]
    BadProof,
    #[error("peer connection for node {to} reached node {acceptor}")]
    WrongNode { to: NodeId, acceptor: NodeId },
    #[error("cannot draw a random nonce: {0}")]
    Random(String),
}

impl HandshakeError {
    /// A failed proof either way: worth a warning, unlike a peer that
    /// merely went away.
    pub fn is_auth_failure(&self) -> bool {
        matches!(self, HandshakeError::Refused | HandshakeError::BadProof)
    }
}

impl From<HandshakeError> for io::Error {
    fn from(e: HandshakeError) -> io::Error {
        match e {
            HandshakeError::Io(e) => e,
            e @ (HandshakeError::Refused | HandshakeError::BadProof) => {
                io::Error::new(io::ErrorKind::PermissionDenied, e)
            }
            e => io::Error::new(io::ErrorKind::InvalidData, e),
        }
    }
}

fn nonce() -> Result<[u8; NONCE_BYTES], HandshakeError> {
    let mut n = [0u8; NONCE_BYTES];
    getrandom::fill(&mut n).map_err(|e| HandshakeError::Random(e.to_string()))?;
    Ok(n)
}

/// The opener's side; returns the acceptor's node id. The caller bounds
/// it with a timeout.
pub async fn open<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    secret: &ClusterSecret,
    from: NodeId,
    to: NodeId,
) -> Result<NodeId, HandshakeError> {
    let opener_nonce = nonce()?;
    let mut first = [0u8; OPEN_BYTES];
    first[..PREAMBLE_BYTES].copy_from_slice(&preamble(from, to));
    first[PREAMBLE_BYTES..].copy_from_slice(&opener_nonce);
    stream.write_all(&first).await?;
    stream.flush().await?;
    let mut hello = [0u8; HELLO_BYTES];
    stream.read_exact(&mut hello).await?;
    let (id, acceptor_nonce) = hello.split_at(8);
    let acceptor = u64::from_le_bytes(id.try_into().unwrap_or_default());
    // An acceptor claiming our own id is our own acceptor reflected back
    // (a stranger relaying our nonce to it): never sign for that link.
    if (to != 0 && acceptor != to) || acceptor == from {
        return Err(HandshakeError::WrongNode { to, acceptor });
    }
    let acceptor_nonce: [u8; NONCE_BYTES] = acceptor_nonce.try_into().unwrap_or_default();
    let nonces = (&opener_nonce, &acceptor_nonce);
    // Sent even if the acceptor's proof will be wrong: the acceptor then
    // learns (and logs) that this link is refused, instead of a bare EOF.
    let proof = secret.proof(Role::Opener, nonces, from, acceptor);
    stream.write_all(&proof).await?;
    stream.flush().await?;
    let mut verdict = [0u8; VERDICT_BYTES];
    stream.read_exact(&mut verdict).await?;
    if verdict[0] != 1 {
        return Err(HandshakeError::Refused);
    }
    if !secret.verify(Role::Acceptor, nonces, from, acceptor, &verdict[1..]) {
        return Err(HandshakeError::BadProof);
    }
    Ok(acceptor)
}

/// The acceptor's side; returns `(from, to)` of the preamble. Reads
/// exactly [`OPEN_BYTES`] + [`PROOF_BYTES`]. The caller bounds it with a
/// timeout.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    secret: &ClusterSecret,
    local: NodeId,
) -> Result<(NodeId, NodeId), HandshakeError> {
    let mut first = [0u8; OPEN_BYTES];
    stream.read_exact(&mut first).await?;
    let (raw_preamble, opener_nonce) = first.split_at(PREAMBLE_BYTES);
    let raw_preamble: [u8; PREAMBLE_BYTES] = raw_preamble.try_into().unwrap_or_default();
    let (from, to) = parse_preamble(&raw_preamble)?;
    // A connection meant for another node id (an address now used by a
    // different node) must not reach this node's Raft.
    // An opener claiming this node's own id is a reflection (a stranger
    // relaying this node's own outgoing handshake): no node opens to itself.
    if (to != 0 && to != local) || from == local {
        return Err(HandshakeError::WrongNode {
            to,
            acceptor: local,
        });
    }
    let opener_nonce: [u8; NONCE_BYTES] = opener_nonce.try_into().unwrap_or_default();
    let acceptor_nonce = nonce()?;
    let mut hello = [0u8; HELLO_BYTES];
    hello[..8].copy_from_slice(&local.to_le_bytes());
    hello[8..].copy_from_slice(&acceptor_nonce);
    stream.write_all(&hello).await?;
    stream.flush().await?;
    let mut proof = [0u8; PROOF_BYTES];
    stream.read_exact(&mut proof).await?;
    let nonces = (&opener_nonce, &acceptor_nonce);
    let mut verdict = [0u8; VERDICT_BYTES];
    if !secret.verify(Role::Opener, nonces, from, local, &proof) {
        // Best effort: the refused opener may already be gone.
        let _ = stream.write_all(&verdict).await;
        let _ = stream.flush().await;
        return Err(HandshakeError::BadProof);
    }
    verdict[0] = 1;
    verdict[1..].copy_from_slice(&secret.proof(Role::Acceptor, nonces, from, local));
    stream.write_all(&verdict).await?;
    stream.flush().await?;
    Ok((from, to))
}

/// At most one warning per interval for a flood of refused peers (a
/// misconfigured node retries every heartbeat); the next warning says how
/// many were left out.
pub(crate) struct WarnEvery {
    interval_ms: u64,
    last_ms: std::sync::atomic::AtomicU64,
    suppressed: std::sync::atomic::AtomicU64,
}

impl WarnEvery {
    pub(crate) const fn new(interval_ms: u64) -> WarnEvery {
        WarnEvery {
            interval_ms,
            last_ms: std::sync::atomic::AtomicU64::new(0),
            suppressed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Some(left out since the last warning)` if a warning may go out now.
    pub(crate) fn allow(&self) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        let now = strata_storage::now_ms();
        let last = self.last_ms.load(Relaxed);
        if (last == 0 || now.saturating_sub(last) >= self.interval_ms)
            && self
                .last_ms
                .compare_exchange(last, now.max(1), Relaxed, Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Relaxed));
        }
        self.suppressed.fetch_add(1, Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> ClusterSecret {
        ClusterSecret(std::sync::Arc::from(s.as_bytes()))
    }

    async fn run(
        opener_secret: ClusterSecret,
        acceptor_secret: ClusterSecret,
        to: NodeId,
    ) -> (
        Result<NodeId, HandshakeError>,
        Result<(NodeId, NodeId), HandshakeError>,
    ) {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let opener = async move { open(&mut a, &opener_secret, 1, to).await };
        let acceptor = async move { accept(&mut b, &acceptor_secret, 2).await };
        tokio::join!(opener, acceptor)
    }

    #[tokio::test]
    async fn same_secret_or_none_on_both_sides_is_accepted() {
        let s = secret("0123456789abcdef-shared");
        let (o, a) = run(s.clone(), s, 2).await;
        assert_eq!(o.unwrap(), 2);
        assert_eq!(a.unwrap(), (1, 2));
        let (o, a) = run(ClusterSecret::none(), ClusterSecret::none(), 0).await;
        assert_eq!(o.unwrap(), 2);
        assert_eq!(a.unwrap(), (1, 0));
    }

    #[tokio::test]
    async fn a_different_or_missing_secret_is_refused_on_both_sides() {
        let pairs = [
            (
                secret("0123456789abcdef-one"),
                secret("0123456789abcdef-two"),
            ),
            (ClusterSecret::none(), secret("0123456789abcdef-two")),
            (secret("0123456789abcdef-one"), ClusterSecret::none()),
        ];
        for (opener, acceptor) in pairs {
            let (o, a) = run(opener, acceptor, 2).await;
            assert!(matches!(o, Err(HandshakeError::Refused)), "{o:?}");
            assert!(matches!(a, Err(HandshakeError::BadProof)), "{a:?}");
        }
    }

    #[tokio::test]
    async fn a_connection_for_another_node_is_refused_before_any_answer() {
        let s = secret("0123456789abcdef-shared");
        let (o, a) = run(s.clone(), s, 9).await;
        assert!(o.is_err());
        assert!(matches!(a, Err(HandshakeError::WrongNode { to: 9, .. })));
    }

    #[test]
    fn proofs_depend_on_role_nonces_and_ids() {
        let s = secret("0123456789abcdef-shared");
        let (n1, n2) = ([1u8; NONCE_BYTES], [2u8; NONCE_BYTES]);
        let base = s.proof(Role::Opener, (&n1, &n2), 1, 2);
        assert!(s.verify(Role::Opener, (&n1, &n2), 1, 2, &base));
        assert_ne!(base, s.proof(Role::Acceptor, (&n1, &n2), 1, 2));
        assert_ne!(base, s.proof(Role::Opener, (&n2, &n1), 1, 2));
        assert_ne!(base, s.proof(Role::Opener, (&n1, &n2), 3, 2));
        assert_ne!(base, s.proof(Role::Opener, (&n1, &n2), 1, 3));
        assert!(!s.verify(Role::Opener, (&n1, &n2), 1, 2, &base[..31]));
    }

    #[test]
    fn secret_files_are_trimmed_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "  0123456789abcdef\n").unwrap();
        let s = ClusterSecret::read_file(&path).unwrap();
        assert_eq!(&*s.0, b"0123456789abcdef");
        assert_eq!(format!("{s:?}"), "ClusterSecret(<redacted>)");
        std::fs::write(&path, "short\n").unwrap();
        assert!(matches!(
            ClusterSecret::read_file(&path),
            Err(SecretError::Size { len: 5, .. })
        ));
        std::fs::write(&path, vec![b'x'; 3 * SECRET_BYTES_MAX]).unwrap();
        assert!(matches!(
            ClusterSecret::read_file(&path),
            Err(SecretError::Size { .. })
        ));
        assert!(matches!(
            ClusterSecret::read_file(&dir.path().join("missing")),
            Err(SecretError::Read { .. })
        ));
    }
}
