//! [`LogStore`]: the replicated log of a replicated store.
//!
//! The log is the replication layer's (crates/replication runs Raft over
//! it); storage keeps its entries and metadata as opaque bytes and knows
//! only that they are numbered. A second keyspace ("raftlog", a name kept
//! for existing data directories) in the same fjall database as the data
//! (see `engine.rs`): one journal fsync ([`LogStore::sync`]) makes the log
//! and every batch applied before it durable together, and after a crash
//! the journal replays a prefix of both, so the applied state never runs
//! ahead of a log that was lost.
//!
//! Keys: `e` ++ be_u64(index) -> entry payload (big-endian, so key order is
//! index order); `m` ++ name -> the replication layer's own metadata (vote,
//! purged and committed log ids). The payloads are opaque here.
//!
//! All calls block on the engine; the caller runs them on blocking threads.
//! They do not go through the writer thread: the log is written by the
//! replication layer ahead of applying, and only the data is serialised by
//! the writer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use fjall::Keyspace;

use crate::commit::{Failure, WriterStats, sync_and_measure};
use crate::engine::{Engine, check_value_size};
use crate::error::{Result, StorageError};

const TAG_ENTRY: u8 = b'e';
const TAG_META: u8 = b'm';
const ENTRY_KEY_LEN: usize = 9;
/// Tombstones per purge batch: bounds the batch's memory however far a
/// purge reaches (a snapshot can cover millions of entries).
const PURGE_BATCH_ENTRIES_MAX: u64 = 16_384;

fn entry_key(index: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENTRY_KEY_LEN);
    out.push(TAG_ENTRY);
    out.extend_from_slice(&index.to_be_bytes());
    out
}

/// Every entry key sorts below this.
fn entries_end() -> Vec<u8> {
    vec![TAG_ENTRY + 1]
}

fn entry_index(key: &[u8]) -> Result<u64> {
    match key.split_first() {
        Some((&TAG_ENTRY, rest)) if rest.len() == 8 => {
            let mut be = [0u8; 8];
            be.copy_from_slice(rest);
            Ok(u64::from_be_bytes(be))
        }
        _ => Err(StorageError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: "bad log entry key",
        }),
    }
}

fn meta_key(name: &str) -> Result<Vec<u8>> {
    // The engine panics on keys over 65535 bytes; refuse them here.
    if name.len() >= u16::MAX as usize {
        return Err(StorageError::Config(format!(
            "log meta name of {} bytes is too long",
            name.len()
        )));
    }
    let mut out = Vec::with_capacity(1 + name.len());
    out.push(TAG_META);
    out.extend_from_slice(name.as_bytes());
    Ok(out)
}

/// The log handle; cheap to clone, shares the store's engine. Only a
/// [`crate::ReplicatedStore`] hands one out.
#[derive(Clone)]
pub struct LogStore {
    engine: Arc<Engine>,
    stats: Arc<WriterStats>,
    failed: Arc<Failure>,
    /// No entry below this index exists (a hint, 0 = unknown): purges scan
    /// from here. Why: a purge's deletions stay as tombstones until
    /// compaction, and a scan from index 0 walks every one of them again,
    /// which made each purge cost O(all entries ever purged).
    purged_below: Arc<AtomicU64>,
    purge_serial: Arc<std::sync::Mutex<()>>,
}

impl LogStore {
    pub(crate) fn new(engine: Arc<Engine>, stats: Arc<WriterStats>, failed: Arc<Failure>) -> Self {
        LogStore {
            engine,
            stats,
            failed,
            purged_below: Arc::new(AtomicU64::new(0)),
            purge_serial: Arc::new(std::sync::Mutex::new(())),
        }
    }

    fn log(&self) -> Result<&Keyspace> {
        // Always open: only a replicated store, which opens the log's
        // keyspace, hands out a `LogStore`.
        self.engine
            .log
            .as_ref()
            .ok_or_else(|| StorageError::Config("the log's keyspace is not open".into()))
    }

    /// The log shares the store's sticky failure: after a failed write or
    /// fsync, the state of the journal (which holds both) is unknown.
    fn writable(&self) -> Result<&Keyspace> {
        let log = self.log()?;
        match self.failed.get() {
            Some(reason) => Err(StorageError::Failed(reason)),
            None => Ok(log),
        }
    }

    fn failure(&self, e: impl Into<StorageError>) -> StorageError {
        let e = e.into();
        let reason = e.to_string();
        tracing::error!(error = %reason, "log write failed; refusing all further writes");
        self.failed.set(reason);
        e
    }

    /// Appends (index, payload) pairs in ONE engine batch. No fsync.
    pub fn append(&self, entries: Vec<(u64, Bytes)>) -> Result<()> {
        let log = self.writable()?;
        let mut batch = self.engine.db.batch();
        if let Some(&(first, _)) = entries.first() {
            // Raft never appends below a purge; if it did, the purge hint
            // must not hide the entry from the next purge.
            self.purged_below.fetch_min(first, Ordering::AcqRel);
        }
        for (index, payload) in entries {
            check_value_size(payload.len())?;
            batch.insert(log, entry_key(index), payload);
        }
        batch.commit().map_err(|e| self.failure(e))
    }

    /// fdatasync of the shared journal: makes the log and the data durable.
    pub fn sync(&self) -> Result<()> {
        self.writable()?;
        sync_and_measure(&self.engine, &self.stats).map_err(|e| self.failure(e))
    }

    /// Entries with `start <= index < end`, in order. Stops after
    /// `max_entries`, or once the payloads reach `max_bytes`; always returns
    /// at least one entry if the range has one.
    pub fn range(
        &self,
        start: u64,
        end: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<(u64, Bytes)>> {
        let log = self.log()?;
        let mut out = Vec::new();
        if start >= end {
            return Ok(out);
        }
        let mut size_bytes = 0usize;
        for guard in log.range(entry_key(start)..entry_key(end)) {
            let (key, payload) = guard.into_inner()?;
            let index = entry_index(&key)?;
            size_bytes = size_bytes.saturating_add(payload.len());
            out.push((index, payload.into()));
            if out.len() >= max_entries || size_bytes >= max_bytes {
                break;
            }
        }
        Ok(out)
    }

    /// The last entry (highest index), if any.
    pub fn last(&self) -> Result<Option<(u64, Bytes)>> {
        let log = self.log()?;
        match log.range(vec![TAG_ENTRY]..entries_end()).next_back() {
            Some(guard) => {
                let (key, payload) = guard.into_inner()?;
                Ok(Some((entry_index(&key)?, payload.into())))
            }
            None => Ok(None),
        }
    }

    /// Deletes every entry with index >= `from`, in one batch, then fsyncs:
    /// Raft must not see a truncated (conflicting) entry come back after a
    /// crash once it has appended the replacement.
    pub fn truncate_from(&self, from: u64) -> Result<()> {
        let log = self.writable()?;
        let removed = self.remove_range(log, entry_key(from)..entries_end())?;
        if removed > 0 {
            self.sync()?;
        }
        Ok(())
    }

    /// Deletes every entry with index <= `upto`. No fsync: purging is
    /// advisory (entries that come back are already applied).
    ///
    /// Blind deletes, no scan: the log is contiguous from its first entry
    /// to its last (Raft appends at last + 1 and truncates suffixes), so
    /// the keys to delete are exactly first..=min(upto, last). Two seeks
    /// find those ends. Why: scanning the entries to delete read every
    /// payload back and cost as much as appending them had.
    pub fn purge_upto(&self, upto: u64) -> Result<()> {
        let log = self.writable()?;
        // Purges run off the Raft core's task; one at a time keeps the
        // hint's bookkeeping simple.
        let _serial = self
            .purge_serial
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let hint = self.purged_below.load(Ordering::Acquire);
        let first = match log.range(entry_key(hint)..entries_end()).next() {
            Some(guard) => entry_index(&guard.key()?)?,
            None => return Ok(()),
        };
        let last = match log.range(vec![TAG_ENTRY]..entries_end()).next_back() {
            Some(guard) => entry_index(&guard.key()?)?,
            None => return Ok(()),
        };
        let end = upto.min(last);
        let mut from = first;
        while from <= end {
            let chunk_end = end.min(from.saturating_add(PURGE_BATCH_ENTRIES_MAX - 1));
            let mut batch = self.engine.db.batch();
            for index in from..=chunk_end {
                // Plain (not weak) tombstones: an index can be written
                // more than once (truncated, then appended again).
                batch.remove(log, entry_key(index));
            }
            batch.commit().map_err(|e| self.failure(e))?;
            // Only after the deletions are in the engine: a failed purge
            // leaves the hint where it was.
            self.purged_below
                .fetch_max(chunk_end.saturating_add(1), Ordering::AcqRel);
            match chunk_end.checked_add(1) {
                Some(next) => from = next,
                None => break,
            }
        }
        Ok(())
    }

    fn remove_range(&self, log: &Keyspace, range: std::ops::Range<Vec<u8>>) -> Result<usize> {
        let mut batch = self.engine.db.batch();
        let mut removed = 0;
        for guard in log.range(range) {
            // Plain (not weak) tombstones: an index can be written more
            // than once (truncated, then appended again).
            batch.remove(log, guard.key()?);
            removed += 1;
        }
        if removed > 0 {
            batch.commit().map_err(|e| self.failure(e))?;
        }
        Ok(removed)
    }

    /// Writes a meta value (e.g. "vote", "purged", "committed"). No fsync
    /// (callers call [`LogStore::sync`] when they need durability).
    pub fn put_meta(&self, name: &str, value: Bytes) -> Result<()> {
        let log = self.writable()?;
        let key = meta_key(name)?;
        check_value_size(value.len())?;
        log.insert(key, value).map_err(|e| self.failure(e))
    }

    pub fn get_meta(&self, name: &str) -> Result<Option<Bytes>> {
        let log = self.log()?;
        Ok(log.get(meta_key(name)?)?.map(Into::into))
    }
}
