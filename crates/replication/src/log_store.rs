//! The Raft log and vote, kept in Strata's storage engine.
//!
//! Entries live in the engine's `raftlog` keyspace (see
//! `strata_storage::LogStore`), which shares one journal with the data: one
//! fdatasync makes both durable, and journal order is write order, so a vote
//! is never persisted ahead of the log entries written before it.
//!
//! Group commit: `append` writes the entries and hands its completion
//! callback to one fsync thread. That thread takes every callback waiting,
//! runs ONE fdatasync, then completes them all in order. openraft keeps
//! submitting while a sync runs, so under load one fsync covers many
//! appends, exactly like the single-node writer's groups.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};

use bytes::Bytes;
use openraft::OptionalSend;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use strata_storage::{FsyncPolicy, LogStore as EngineLog, StorageError};

use crate::types::{Entry, LogId, TypeConfig, Vote};

const META_VOTE: &str = "vote";
const META_PURGED: &str = "purged";
const META_COMMITTED: &str = "committed";

/// Entries read in one `try_get_log_entries` call at most; openraft asks
/// for bounded ranges already, this is the backstop.
const READ_ENTRIES_MAX: usize = 4096;
/// Bytes read in one call at most (at least one entry is always returned).
const READ_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Appends waiting for the fsync thread. Past it, `append` waits: that is
/// the backpressure that bounds memory when the disk is slow.
const SYNC_QUEUE_LEN_MAX: usize = 65_536;

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn storage_err(e: StorageError) -> io::Error {
    io::Error::other(e)
}

pub(crate) fn encode<T: serde::Serialize>(v: &T) -> io::Result<Bytes> {
    postcard::to_allocvec(v).map(Bytes::from).map_err(io_err)
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(raw: &[u8], what: &str) -> io::Result<T> {
    postcard::from_bytes(raw).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("corrupt {what} on disk: {e}"),
        )
    })
}

/// The log store handed to openraft; clones share the engine and the
/// fsync thread.
#[derive(Clone)]
pub struct LogStore {
    log: EngineLog,
    sync_tx: Option<tokio::sync::mpsc::Sender<IOFlushed<TypeConfig>>>,
}

impl LogStore {
    /// `fsync`: with `always`, an append completes only after fdatasync;
    /// otherwise it completes once written (see README "Durability").
    pub fn new(log: EngineLog, fsync: FsyncPolicy) -> io::Result<LogStore> {
        let sync_tx = match fsync {
            FsyncPolicy::Always => {
                let (tx, rx) = tokio::sync::mpsc::channel(SYNC_QUEUE_LEN_MAX);
                let log = log.clone();
                std::thread::Builder::new()
                    .name("strata-raftlog-sync".into())
                    .spawn(move || sync_loop(log, rx))?;
                Some(tx)
            }
            FsyncPolicy::Periodic { interval_ms } => {
                // Appends complete once written; this thread bounds how
                // much a power loss can take. It lives as long as the
                // process, like the server that owns the store.
                let log = log.clone();
                std::thread::Builder::new()
                    .name("strata-raftlog-periodic-sync".into())
                    .spawn(move || {
                        loop {
                            std::thread::sleep(std::time::Duration::from_millis(interval_ms));
                            if let Err(e) = log.sync() {
                                tracing::error!(error = %e, "periodic raft log fsync failed");
                                return;
                            }
                        }
                    })?;
                None
            }
            FsyncPolicy::Never => None,
        };
        Ok(LogStore { log, sync_tx })
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, name: &str) -> io::Result<Option<T>> {
        match self.log.get_meta(name).map_err(storage_err)? {
            Some(raw) => decode(&raw, name).map(Some),
            None => Ok(None),
        }
    }
}

/// One fdatasync per batch of waiting appends; completions in order.
fn sync_loop(log: EngineLog, mut rx: tokio::sync::mpsc::Receiver<IOFlushed<TypeConfig>>) {
    let mut batch = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let result = log.sync().map_err(|e| e.to_string());
        for cb in batch.drain(..) {
            cb.io_completed(result.clone().map_err(io::Error::other));
        }
    }
}

fn range_to_bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (start, end) = range_to_bounds(&range);
        let raw = self
            .log
            .range(start, end, READ_ENTRIES_MAX, READ_BYTES_MAX)
            .map_err(storage_err)?;
        let mut out = Vec::with_capacity(raw.len());
        for (index, payload) in raw {
            let entry: Entry = decode(&payload, "raft log entry")?;
            // The key and the entry must agree; a mismatch is corruption.
            if entry.log_id.index != index {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "raft log entry at index {index} claims index {}",
                        entry.log_id.index
                    ),
                ));
            }
            out.push(entry);
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.read_meta(META_VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged_log_id: Option<LogId> = self.read_meta(META_PURGED)?;
        let last = match self.log.last().map_err(storage_err)? {
            Some((_, payload)) => Some(decode::<Entry>(&payload, "raft log entry")?.log_id),
            None => None,
        };
        Ok(LogState {
            last_log_id: last.or(last_purged_log_id),
            last_purged_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        // A vote must be on disk before it is acted upon (Raft safety).
        let raw = encode(vote)?;
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || {
            log.put_meta(META_VOTE, raw)?;
            log.sync()
        })
        .await
        .map_err(io_err)?
        .map_err(storage_err)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Advisory (lets a restart apply up to it at once); no fsync.
        if let Some(c) = committed {
            self.log
                .put_meta(META_COMMITTED, encode(&c)?)
                .map_err(storage_err)?;
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        self.read_meta(META_COMMITTED)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = Vec::new();
        for e in entries {
            batch.push((e.log_id.index, encode(&e)?));
        }
        self.log.append(batch).map_err(storage_err)?;
        match &self.sync_tx {
            // Waits only when the queue is full (backpressure).
            Some(tx) => tx
                .send(callback)
                .await
                .map_err(|_| io::Error::other("raft log fsync thread stopped"))?,
            None => callback.io_completed(Ok(())),
        }
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |l| l.index + 1);
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || log.truncate_from(from))
            .await
            .map_err(io_err)?
            .map_err(storage_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        // The marker first: journal order guarantees that if any deletion
        // survives a crash, so does the marker, and get_log_state never
        // reports a log that starts after a hole.
        self.log
            .put_meta(META_PURGED, encode(&log_id)?)
            .map_err(storage_err)?;
        self.log.purge_upto(log_id.index).map_err(storage_err)
    }
}
