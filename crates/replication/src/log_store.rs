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
//!
//! Tail cache: `append` also keeps the entries in a bounded in-memory copy
//! of the log's tail (see `log_cache`), shared with the readers, and
//! `try_get_log_entries` serves from it whenever it holds the requested
//! start: replication reads what was appended moments ago, and a range
//! scan plus a decode per entry was a large share of the leader's CPU.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use openraft::OptionalSend;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use strata_storage::{FsyncPolicy, LogStore as EngineLog, StorageError};

use crate::log_cache::SharedLogCache;
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

/// Strict: bytes after the value are an error (postcard's `from_bytes`
/// would ignore them), as everywhere in docs/format.md.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(raw: &[u8], what: &str) -> io::Result<T> {
    let corrupt = |e: &dyn std::fmt::Display| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("corrupt {what} on disk: {e}"),
        )
    };
    match postcard::take_from_bytes(raw) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(corrupt(&format_args!("{} bytes left over", rest.len()))),
        Err(e) => Err(corrupt(&e)),
    }
}

/// The log store handed to openraft; clones share the engine, the fsync
/// thread and the tail cache.
#[derive(Clone)]
pub struct LogStore {
    log: EngineLog,
    sync_tx: Option<tokio::sync::mpsc::Sender<IOFlushed<TypeConfig>>>,
    /// Starts empty (a restart reads the engine until appends refill it).
    cache: SharedLogCache,
    /// One past the last purged index (0: nothing purged). Entries below it
    /// may still be in the engine while a background purge runs, or after
    /// a crash interrupted one; reads never return them.
    purged_end: Arc<AtomicU64>,
}

impl LogStore {
    /// `fsync`: with `always`, an append completes only after fdatasync;
    /// otherwise it completes once written (see README "Durability").
    pub fn new(log: EngineLog, fsync: FsyncPolicy) -> io::Result<LogStore> {
        check_format(&log)?;
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
        let purged: Option<LogId> = match log.get_meta(META_PURGED).map_err(storage_err)? {
            Some(raw) => Some(decode(&raw, META_PURGED)?),
            None => None,
        };
        Ok(LogStore {
            log,
            sync_tx,
            cache: SharedLogCache::new(),
            purged_end: Arc::new(AtomicU64::new(
                purged.map_or(0, |p| p.index.saturating_add(1)),
            )),
        })
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, name: &str) -> io::Result<Option<T>> {
        match self.log.get_meta(name).map_err(storage_err)? {
            Some(raw) => decode(&raw, name).map(Some),
            None => Ok(None),
        }
    }
}

/// The log's format: 1 = one `Command` per entry (before 2026-11-23),
/// 2 = one `Proposal` (1 to 256 commands) per entry, 3 = the same, with the
/// proposal's commands as one length-prefixed encoding (2026-11-24, see
/// `Proposal`). postcard is not
/// self-describing, so an entry of another format could decode as garbage
/// instead of failing: a log without this marker that holds anything is
/// refused, as is another version.
const LOG_FORMAT_VERSION: u32 = 3;
const META_FORMAT: &str = "format";

fn check_format(log: &EngineLog) -> io::Result<()> {
    let refuse = |found: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the Raft log in this data directory has format {found}; this build reads \
                 format {LOG_FORMAT_VERSION} only and there is no in-place upgrade between \
                 them: run the build that wrote it (see README, \"Cluster upgrades\")"
            ),
        )
    };
    match log.get_meta(META_FORMAT).map_err(storage_err)? {
        Some(raw) => {
            let found: u32 = decode(&raw, META_FORMAT)?;
            if found != LOG_FORMAT_VERSION {
                return Err(refuse(&found.to_string()));
            }
            Ok(())
        }
        None => {
            let used = log.last().map_err(storage_err)?.is_some()
                || log.get_meta(META_VOTE).map_err(storage_err)?.is_some()
                || log.get_meta(META_PURGED).map_err(storage_err)?.is_some();
            if used {
                return Err(refuse("1"));
            }
            // Journal order puts the marker before any entry, so whatever
            // fsync makes an entry durable makes the marker durable too.
            log.put_meta(META_FORMAT, encode(&LOG_FORMAT_VERSION)?)
                .map_err(storage_err)
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
        let start = start.max(self.purged_end.load(Ordering::Acquire));
        // The cache holds the log's tail, so when it holds `start` it holds
        // everything the engine would return from there (the same caps).
        if let Some(entries) = self
            .cache
            .read(start, end, READ_ENTRIES_MAX, READ_BYTES_MAX)
        {
            return Ok(entries);
        }
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

    /// The apply path reads `since..end` here, however long the range.
    /// openraft's default would make ONE `try_get_log_entries` call, which
    /// stops at READ_ENTRIES_MAX / READ_BYTES_MAX: past those the state
    /// machine would silently miss the rest of the range. Instead, read it
    /// page by page (each page bounded, so memory stays bounded too).
    async fn entries_stream<RB>(
        &mut self,
        range: RB,
    ) -> impl Stream<Item = Result<Entry, io::Error>> + OptionalSend
    where
        RB: RangeBounds<u64> + Clone + Debug + OptionalSend,
    {
        let (start, end) = range_to_bounds(&range);
        let pages = futures_util::stream::try_unfold(
            (self.clone(), start, true),
            move |(mut reader, next, first_page)| async move {
                if next >= end {
                    return Ok(None);
                }
                let page = reader.try_get_log_entries(next..end).await?;
                let (Some(head), Some(tail)) = (page.first(), page.last()) else {
                    // The log has nothing more in the range.
                    return Ok(None);
                };
                // Only the first page may start late (a purged prefix);
                // later pages must continue where the previous one ended.
                if !first_page && head.log_id.index != next {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "raft log hole: expected entry {next}, found {}",
                            head.log_id.index
                        ),
                    ));
                }
                let after = tail.log_id.index.saturating_add(1);
                let entries = futures_util::stream::iter(page.into_iter().map(Ok));
                Ok(Some((entries, (reader, after, false))))
            },
        );
        pages.try_flatten()
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
        // An entry at or below the purged marker is one a purge has not
        // deleted yet: the log is empty past the marker.
        let last = match (last, last_purged_log_id) {
            (Some(l), Some(p)) if l.index <= p.index => None,
            (l, _) => l,
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
        let mut cached = Vec::new();
        for e in entries {
            let raw = encode(&e)?;
            batch.push((e.log_id.index, raw.clone()));
            // A cached entry holds its proposal twice, encoded and decoded
            // (see `Proposal`): counted as twice its encoded size.
            cached.push((e, raw.len().saturating_mul(2)));
        }
        if let Err(e) = self.log.append(batch) {
            // The engine's state is unknown after a failed write; an empty
            // cache is always correct.
            self.cache.clear();
            return Err(storage_err(e));
        }
        // Readable from the cache before `append` returns, as openraft
        // requires; the fsync may still be running, which is fine (openraft
        // reads only entries it has appended, flushed or not).
        self.cache.extend(cached);
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
        let last_kept = last_log_id.map(|l| l.index);
        let from = last_kept.map_or(0, |index| index.saturating_add(1));
        // The cache first: no reader may find there an entry the engine
        // has already dropped.
        self.cache.truncate_after(last_kept);
        let log = self.log.clone();
        let result = tokio::task::spawn_blocking(move || log.truncate_from(from))
            .await
            .map_err(io_err)
            .and_then(|r| r.map_err(storage_err));
        if result.is_err() {
            // The engine may still hold entries past `last_kept` that the
            // cache no longer has; empty, the cache cannot disagree.
            self.cache.clear();
        }
        result
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        // The marker first: journal order guarantees that if any deletion
        // survives a crash, so does the marker, and get_log_state never
        // reports a log that starts after a hole.
        // The cache first, like truncation (keeping more than the engine
        // would be harmless too: purged entries stay valid).
        self.cache.purge(log_id.index);
        self.log
            .put_meta(META_PURGED, encode(&log_id)?)
            .map_err(storage_err)?;
        // The deletions run in the background: openraft awaits `purge` on
        // its core task, and deleting a snapshot's worth of entries (100k
        // by default) there stalled every write for tens of milliseconds.
        // Safe because nothing reads below the purged marker, appends and
        // truncations are above it, and entries left behind by a crash
        // are deleted by a later purge.
        self.purged_end
            .fetch_max(log_id.index.saturating_add(1), Ordering::AcqRel);
        let log = self.log.clone();
        let upto = log_id.index;
        tokio::task::spawn_blocking(move || {
            if let Err(e) = log.purge_upto(upto) {
                tracing::warn!(error = %e, upto, "raft log purge failed; entries stay on disk");
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use strata_storage::{ReplicatedStore, StorageConfig};

    use super::*;
    use crate::log_cache::tests::blank;

    /// A store in `dir`, and a log store over it (no fsync thread).
    fn open(dir: &tempfile::TempDir) -> (ReplicatedStore, LogStore) {
        let mut config = StorageConfig::new(dir.path().join("data"));
        config.cache_size_bytes = 8 * 1024 * 1024;
        config.memtable_size_bytes = 4 * 1024 * 1024;
        let store = ReplicatedStore::open(config).expect("open store");
        let log = LogStore::new(store.log_store(), FsyncPolicy::Never).expect("log store");
        (store, log)
    }

    /// Another log store over the same engine, with an empty cache: what a
    /// restart sees, and a reader that always reads the engine.
    fn reopen(store: &ReplicatedStore) -> LogStore {
        LogStore::new(store.log_store(), FsyncPolicy::Never).expect("log store")
    }

    /// Found by the `disk_records` fuzz target: values read back from the
    /// log (entries, vote, marks) decoded with bytes after them.
    #[test]
    fn values_with_bytes_after_them_are_corrupt() {
        let raw = encode(&blank(2, 3)).unwrap();
        assert_eq!(
            decode::<Entry>(&raw, "raft log entry").unwrap(),
            blank(2, 3)
        );
        let mut padded = raw.to_vec();
        padded.push(0);
        let err = decode::<Entry>(&padded, "raft log entry").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("1 bytes left over"), "{err}");
        // The log format marker: 3, then one byte too many.
        assert_eq!(decode::<u32>(&[3], "format").unwrap(), 3);
        assert!(decode::<u32>(&[3, 0], "format").is_err());
    }

    #[tokio::test]
    async fn a_log_of_another_format_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, mut log) = open(&dir);
        append(&mut log, 1, 1..=3).await;
        // Reopening a log this build wrote works.
        reopen(&store);
        let engine = store.log_store();
        engine
            .put_meta(META_FORMAT, encode(&2u32).expect("encode"))
            .expect("put");
        let err = LogStore::new(engine, FsyncPolicy::Never)
            .err()
            .expect("format 2 is refused");
        assert!(err.to_string().contains("format 2"), "{err}");
        // A used log (here: a vote) without the marker was written by a
        // build before the marker, format 1.
        let dir2 = tempfile::tempdir().expect("tempdir");
        let config = StorageConfig::new(dir2.path().join("data"));
        let store2 = ReplicatedStore::open(config).expect("open store");
        store2
            .log_store()
            .put_meta(META_VOTE, Bytes::from_static(b"x"))
            .expect("put vote");
        let err = LogStore::new(store2.log_store(), FsyncPolicy::Never)
            .err()
            .expect("an unmarked used log is refused");
        assert!(err.to_string().contains("format 1"), "{err}");
    }

    async fn append(log: &mut LogStore, term: u64, indexes: std::ops::RangeInclusive<u64>) {
        let entries: Vec<Entry> = indexes.map(|i| blank(term, i)).collect();
        log.append(entries, IOFlushed::noop())
            .await
            .expect("append");
    }

    async fn read(log: &mut LogStore, range: std::ops::Range<u64>) -> Vec<Entry> {
        log.try_get_log_entries(range).await.expect("read")
    }

    fn indexes(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(|e| e.log_id.index).collect()
    }

    /// Purge deletes in the background; until it has, and after a crash
    /// that interrupted it, the purged entries are still in the engine.
    /// Neither reads nor the log state may show them.
    #[tokio::test]
    async fn purged_entries_are_hidden_before_they_are_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, mut log) = open(&dir);
        append(&mut log, 1, 1..=5).await;
        // The marker as `purge` writes it, but no deletion: what a crash
        // right after it leaves behind.
        let purged = blank(1, 3).log_id;
        store
            .log_store()
            .put_meta(META_PURGED, encode(&purged).expect("encode"))
            .expect("marker");
        let mut restarted = reopen(&store);
        assert_eq!(indexes(&read(&mut restarted, 0..10).await), vec![4, 5]);
        let state = restarted.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id, Some(purged));
        assert_eq!(state.last_log_id.map(|l| l.index), Some(5));
        // Everything purged: the log is empty past the marker even though
        // the entries are still there.
        let all = blank(1, 5).log_id;
        store
            .log_store()
            .put_meta(META_PURGED, encode(&all).expect("encode"))
            .expect("marker");
        let mut restarted = reopen(&store);
        assert!(read(&mut restarted, 0..10).await.is_empty());
        let state = restarted.get_log_state().await.expect("state");
        assert_eq!(state.last_log_id, Some(all));
        assert_eq!(
            store.log_store().last().expect("last").map(|e| e.0),
            Some(5)
        );
        // A real purge deletes them, in the background.
        restarted.purge(all).await.expect("purge");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while store.log_store().last().expect("last").is_some() {
            assert!(std::time::Instant::now() < deadline, "purge never ran");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn cache_reads_agree_with_the_engine() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, mut log) = open(&dir);
        append(&mut log, 1, 1..=8).await;
        append(&mut log, 1, 9..=20).await;
        log.truncate_after(Some(blank(1, 15).log_id))
            .await
            .expect("truncate");
        append(&mut log, 2, 16..=25).await;
        log.purge(blank(1, 5).log_id).await.expect("purge");
        assert_eq!(log.cache.shape().0, Some(6));
        assert_eq!(log.cache.shape().1, Some(25));

        let mut engine = reopen(&store);
        for start in 0..=27 {
            for end in start..=28 {
                let cached = read(&mut log, start..end).await;
                let want = read(&mut engine, start..end).await;
                assert_eq!(cached, want, "range {start}..{end}");
            }
        }
        let replaced = read(&mut log, 15..17).await;
        assert_eq!(replaced, vec![blank(1, 15), blank(2, 16)]);
        assert_eq!(
            engine.cache.shape(),
            (None, None, 0, 0),
            "engine reads only"
        );
    }

    #[tokio::test]
    async fn after_a_restart_reads_below_the_cache_go_to_the_engine() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, mut log) = open(&dir);
        append(&mut log, 1, 1..=10).await;

        let mut restarted = reopen(&store);
        assert_eq!(read(&mut restarted, 3..6).await, read(&mut log, 3..6).await);
        append(&mut restarted, 1, 11..=20).await;
        assert_eq!(restarted.cache.shape().0, Some(11));
        assert_eq!(
            indexes(&read(&mut restarted, 5..15).await),
            (5..15).collect::<Vec<_>>()
        );
        assert_eq!(
            indexes(&read(&mut restarted, 12..100).await),
            (12..=20).collect::<Vec<_>>()
        );
        // The reader handed to openraft shares the cache.
        let mut reader = restarted.get_log_reader().await;
        append(&mut restarted, 1, 21..=21).await;
        assert_eq!(read(&mut reader, 21..22).await, vec![blank(1, 21)]);
        assert_eq!(reader.cache.shape().1, Some(21));
    }

    #[tokio::test]
    async fn truncating_everything_empties_the_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_store, mut log) = open(&dir);
        append(&mut log, 1, 1..=10).await;
        log.truncate_after(None).await.expect("truncate");
        assert_eq!(log.cache.shape(), (None, None, 0, 0));
        assert!(read(&mut log, 0..100).await.is_empty());
        append(&mut log, 2, 1..=3).await;
        assert_eq!(
            read(&mut log, 0..100).await,
            vec![blank(2, 1), blank(2, 2), blank(2, 3)]
        );
    }

    #[tokio::test]
    async fn long_ranges_are_capped_per_read_and_streamed_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, mut log) = open(&dir);
        let count = READ_ENTRIES_MAX as u64 + 1000;
        let mut next = 1;
        while next <= count {
            let last = (next + 499).min(count);
            append(&mut log, 1, next..=last).await;
            next = last + 1;
        }
        let mut engine = reopen(&store);
        for reader in [&mut log, &mut engine] {
            let capped = read(reader, 1..count + 1).await;
            assert_eq!(
                indexes(&capped),
                (1..=READ_ENTRIES_MAX as u64).collect::<Vec<_>>()
            );
            let streamed: Vec<Entry> = reader
                .entries_stream(1..count + 1)
                .await
                .map(|r| r.expect("stream"))
                .collect()
                .await;
            assert_eq!(indexes(&streamed), (1..=count).collect::<Vec<_>>());
            let tail: Vec<Entry> = reader
                .entries_stream(count - 1..)
                .await
                .map(|r| r.expect("stream"))
                .collect()
                .await;
            assert_eq!(indexes(&tail), vec![count - 1, count]);
        }
    }
}
