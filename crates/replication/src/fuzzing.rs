//! Entry points for the coverage-guided fuzz targets (`fuzz/` at the
//! repository root, see its README): this crate's private decoders of
//! bytes read from disk, reachable from outside without making them API.
//! Each calls the decoder the node itself uses. The peer protocol's
//! decoders (`wire`, `auth`) and `Proposal::decode` are public already.
//! Not for product code; nothing here is stable.

use std::io;
use std::path::Path;

use bytes::Bytes;

use crate::log_store::{decode, encode};
use crate::state_machine::{AppliedMark, SnapshotReader, verify_snapshot};
use crate::types::{Entry, LogId, Vote};

/// A Raft log entry's payload (`raftlog` keyspace, key `e` ++ index), as
/// the log store decodes it.
pub fn log_entry(raw: &[u8]) -> io::Result<Entry> {
    decode(raw, "raft log entry")
}

/// The Raft log's meta values (`vote`, `purged`, `committed`, `format`),
/// each decoded as the log store decodes it; returns its re-encoding.
pub fn log_meta(name: &str, raw: &[u8]) -> io::Result<Bytes> {
    match name {
        "vote" => encode(&decode::<Vote>(raw, name)?),
        "purged" => encode(&decode::<LogId>(raw, name)?),
        "committed" => encode(&decode::<Option<LogId>>(raw, name)?),
        "format" => encode(&decode::<u32>(raw, name)?),
        _ => Err(io::Error::other(format!("no meta value named {name}"))),
    }
}

/// The applied mark (meta key `mraft.applied` of the data), as the state
/// machine decodes it: its last applied log id, and its re-encoding.
pub fn applied_mark(raw: &[u8]) -> io::Result<(Option<LogId>, Bytes)> {
    let mark: AppliedMark = decode(raw, "applied mark")?;
    Ok((mark.last_applied, encode(&mark)?))
}

/// Reads and checks a whole snapshot file as a node does before it
/// installs one (received from the leader, or found at start): the last
/// log id its header names.
pub fn verify_snapshot_file(path: &Path) -> io::Result<Option<LogId>> {
    verify_snapshot(path).map(|header| header.last_log_id)
}

/// A snapshot file's entries, streamed as the store's install reads them
/// (the checksum is checked after the last one).
pub fn snapshot_entries(
    path: &Path,
) -> io::Result<impl Iterator<Item = strata_storage::Result<(Bytes, Bytes)>>> {
    SnapshotReader::open(path)
}
