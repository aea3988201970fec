//! Request records: the outcome of every request a replicated store
//! applied with a [`RequestId`], kept so that a resend of it (a client
//! retrying after a lost reply or a leader change) is answered from its
//! record instead of being applied twice.
//!
//! The records are replicated state: written in the same batch as the
//! effects they describe, carried in snapshots, so every replica decides
//! alike however its entries are grouped. They live in their own keyspace
//! (`engine.rs`, "dedupe"), which FLUSHALL does not clear: a resend of a
//! pipeline `[SET a][FLUSHALL][INCR b]` whose first attempt was applied
//! must be answered from the records, all three of them, rather than
//! applying `SET a` again on the flushed store. This file is their format;
//! `log_apply.rs` writes and reads them.

use serde::{Deserialize, Serialize};

use crate::engine::corrupt;
use crate::error::Result;
use crate::mutation::{self, Outcome};

/// Identifies one client request across retries: the session that sent it
/// and its sequence number in that session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestId {
    pub session: u64,
    pub seq: u64,
}

/// The largest answer a retry record keeps (bytes of values); a larger
/// one is recorded as `OutcomeNotKept`. Fixed, not configured: the record
/// is replicated state, the same on every replica.
pub(crate) const RECORDED_OUTCOME_BYTES_MAX: usize = 16 * 1024;
/// A group's whole retry record past this (a group of very many writes
/// with answers near the limit above) keeps no answer with values at all,
/// so that it always stays far below the engine's 4 GiB value limit.
pub(crate) const RECORD_BYTES_MAX: usize = 256 * 1024 * 1024;

/// One request as the dedupe records know it: the time its mutation was
/// stamped with, and its id. A resend carries all three unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct RequestKey {
    pub(crate) now_ms: u64,
    pub(crate) session: u64,
    pub(crate) seq: u64,
}

/// One member of a dedupe record.
#[derive(Serialize, Deserialize)]
pub(crate) struct Recorded {
    pub(crate) request: RequestKey,
    pub(crate) outcome: Outcome,
}

pub(crate) fn encode_record(key: &[u8], members: &[Recorded]) -> Result<Vec<u8>> {
    // Cannot fail for an in-memory Vec; reported rather than unwrapped.
    postcard::to_stdvec(members).map_err(|_| corrupt(key, "dedupe record does not encode"))
}

pub(crate) fn decode_record(key: &[u8], raw: &[u8]) -> Result<Vec<Recorded>> {
    mutation::decode_exact(raw).map_err(|_| corrupt(key, "dedupe record does not decode"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::StorageError;

    /// Found by the `disk_records` fuzz target (input `VAMA`, the record
    /// `[0]` plus one byte): a dedupe record decoded with bytes after it,
    /// as postcard's `from_bytes` ignores them.
    #[test]
    fn a_dedupe_record_with_bytes_after_it_is_corrupt() {
        assert!(decode_record(b"k", &[0]).unwrap().is_empty());
        let err = decode_record(b"k", &[0, 0]).err().expect("refused");
        assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
        // A record as the writer encodes it, then padded.
        let members = [Recorded {
            request: RequestKey {
                now_ms: 7,
                session: 1,
                seq: 2,
            },
            outcome: Outcome::Int(3),
        }];
        let mut raw = encode_record(b"k", &members).unwrap();
        assert_eq!(decode_record(b"k", &raw).unwrap().len(), 1);
        raw.push(0);
        assert!(decode_record(b"k", &raw).is_err());
    }
}
