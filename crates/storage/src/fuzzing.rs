//! Entry points for the coverage-guided fuzz targets (`fuzz/` at the
//! repository root, see its README): this crate's private decoders of
//! bytes read from disk or received from a peer, reachable from outside
//! without making them API. Each calls the decoder the store itself uses.
//! Not for product code; nothing here is stable.

use bytes::Bytes;

use crate::error::Result;
use crate::log_apply::check_snapshot_entry;
use crate::record::Record;
use crate::requests::{decode_record, encode_record};
use crate::state::{Counts, split_expiry_key};

/// A dedupe record (a value of the dedupe keyspace), decoded as a resend
/// lookup and a snapshot install decode it; returns its re-encoding.
pub fn dedupe_record(raw: &[u8]) -> Result<Vec<u8>> {
    let members = decode_record(b"fuzz", raw)?;
    encode_record(b"fuzz", &members)
}

/// The key counters (meta key `mcounts`) as a store reads them at open:
/// `(keys, expiring)` and their re-encoding.
pub fn counts(raw: &[u8]) -> Option<((u64, u64), [u8; 16])> {
    let counts = Counts::decode(raw)?;
    Some(((counts.keys, counts.expiring), counts.encode()))
}

/// The (time, user key) of a stored expiry index key (`x` ++ be_u64 ++
/// user key), or None for any other stored key.
pub fn expiry_key(stored: &[u8]) -> Option<(u64, &[u8])> {
    split_expiry_key(stored)
}

/// One (key, value) of a snapshot stream, checked as `ReplicatedStore::install`
/// checks it before writing anything: the decoded record of a data entry.
pub fn snapshot_entry(
    key: &[u8],
    value: &Bytes,
    previous: Option<&[u8]>,
) -> Result<Option<Record>> {
    check_snapshot_entry(key, value, previous)
}
