//! [`Store`]: the shared core of both storage modes, and its read handle.
//!
//! The core holds the engine, the writer (the one applier, `commit.rs`) and
//! its thread, the published read view and the read cache. [`Store`] is a
//! cheap, cloneable handle to it that can read (from the latest *durable*
//! snapshot, never blocking on the writer), report, sync and shut down, but
//! not write: writes belong to the mode the store was opened in,
//! [`crate::LocalStore`] (`local.rs`) or [`crate::ReplicatedStore`]
//! (`replicated.rs`). Both hand out a `Store` for readers (the server's
//! connections), and both dereference to it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use arc_swap::ArcSwap;
use bytes::Bytes;
use fjall::PersistMode;
use tokio::sync::{mpsc, oneshot};

use crate::commit::{Failure, Versions, Writer, WriterMsg, WriterStats};
use crate::config::{FsyncPolicy, StorageConfig};
use crate::engine::{Engine, META_DELETED, META_VERSION, Mode};
use crate::error::Result;
use crate::histogram::BucketCounts;
use crate::mutation::{Limits, WatchedVersion};
use crate::observe::PublishObserver;
use crate::prefetch::Prefetcher;
use crate::read_cache::{Changes, ReadCache};
use crate::record::Record;
use crate::search::cache::PostingCache;
use crate::search::catalog::{Catalog, Latest};
use crate::search::{IndexInfo, IndexSummary, SearchAnswer, SearchError, SearchWork};
use crate::snapshot::Snapshot;
use crate::state::{Counts, due_expiry_range, split_expiry_key};
use strata_search::{IndexId, Query, SearchOptions};

/// Storage figures for INFO and benchmarks.
#[derive(Clone, Debug, Default)]
pub struct StoreStats {
    pub keys: u64,
    pub expiring_keys: u64,
    pub disk_space_bytes: u64,
    pub journal_count: u64,
    pub journal_disk_space_bytes: u64,
    pub write_buffer_size_bytes: u64,
    pub cache_size_bytes: u64,
    pub cache_capacity_bytes: u64,
    pub outstanding_flushes: u64,
    pub active_compactions: u64,
    pub compactions_completed: u64,
    pub groups_committed: u64,
    pub mutations_committed: u64,
    pub fsyncs: u64,
    pub fsync_micros_total: u64,
    pub fsync_micros_max: u64,
    pub group_size_max: u64,
    /// Groups whose old records the writer read in parallel first, because
    /// its reads were coming from disk.
    pub groups_prefetched: u64,
    /// The read cache (`read_cache.rs`): bytes held and allowed, entries,
    /// lookups answered and not, and fills refused because the key's shard
    /// changed while it was read.
    pub read_cache_size_bytes: u64,
    pub read_cache_capacity_bytes: u64,
    pub read_cache_entries: u64,
    pub read_cache_hits: u64,
    pub read_cache_misses: u64,
    pub read_cache_fills_refused: u64,
    /// The search posting cache (`search/cache.rs`): bytes held and
    /// allowed; posting lists a query found in it, and read instead.
    pub search_cache_size_bytes: u64,
    pub search_cache_capacity_bytes: u64,
    pub search_cache_hits: u64,
    pub search_cache_misses: u64,
    pub failed: Option<String>,
    /// Reads refused because they hit damaged data (see `corruption.rs`).
    pub corruption_errors: u64,
    /// The version of the published state: the last group committed on a
    /// single node, the last log index applied in a cluster.
    pub published_version: u64,
    /// Mutations per group commit, and each fsync's time in µs (bounds:
    /// [`crate::GROUP_SIZE_BOUNDS`], [`crate::FSYNC_MICROS_BOUNDS`]).
    pub group_sizes: BucketCounts,
    pub fsync_micros: BucketCounts,
    /// Bytes on disk per keyspace (`data`; in a cluster also `raftlog`
    /// and `dedupe`); the journal is `journal_disk_space_bytes`.
    pub keyspace_disk_bytes: Vec<(&'static str, u64)>,
    /// Whether the engine stalls or throttles commits right now.
    pub write_stalled: bool,
}

pub(crate) struct Inner {
    pub(crate) engine: Arc<Engine>,
    view: Arc<ArcSwap<fjall::Snapshot>>,
    /// Single-key reads look here first; kept coherent with `view` by the
    /// writer (see `read_cache.rs`).
    read_cache: Arc<ReadCache>,
    /// Decoded search posting lists (`search/cache.rs`).
    pub(crate) posting_cache: Arc<PostingCache>,
    pub(crate) stats: Arc<WriterStats>,
    pub(crate) failed: Arc<Failure>,
    /// The writer thread's queue: single-node writes, replicated jobs,
    /// shutdown.
    pub(crate) tx: mpsc::Sender<WriterMsg>,
    /// The applier's state; the writer thread holds it for each group, and
    /// so may `LocalStore::apply_inline` (see `commit.rs`).
    pub(crate) writer: Arc<std::sync::Mutex<Writer>>,
    pub(crate) config: StorageConfig,
    /// Set by `shutdown`: the background threads stop.
    pub(crate) stopping: Arc<AtomicBool>,
    /// The writer's observer of published views (`observe.rs`).
    observer: Arc<OnceLock<Arc<dyn PublishObserver>>>,
    /// The writer thread, and a single node's sweeper and fsync threads.
    pub(crate) threads: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

/// A read handle on a store of either mode: cheap to clone; all clones
/// share one engine and one writer. It has no write: see the module doc.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl Store {
    /// Opens (or creates) the core and recovers it: the engine replays its
    /// journal, then the key counters and versions are loaded and the
    /// writer thread starts. The modes' `open` call this.
    pub(crate) fn open_core(config: StorageConfig, mode: Mode) -> Result<Store> {
        let engine = Engine::open(&config, mode)?;
        let counts = Counts::recover(&engine)?;
        let catalog = Arc::new(Catalog::load(&Latest(&engine.data))?);
        let versions = versions_at_open(&engine, mode)?;
        let stats = Arc::new(WriterStats::new());
        stats.keys.store(counts.keys, Ordering::Relaxed);
        stats.expiring.store(counts.expiring, Ordering::Relaxed);
        stats
            .published_version
            .store(versions.last, Ordering::Relaxed);
        let view = Arc::new(ArcSwap::from_pointee(engine.snapshot()));
        let read_cache = Arc::new(ReadCache::new(config.read_cache_size_bytes));
        let posting_cache = Arc::new(PostingCache::new(config.search_cache_size_bytes));
        let failed = Arc::new(Failure::default());
        let observer = Arc::new(OnceLock::new());
        let writer = Writer {
            engine: engine.clone(),
            view: view.clone(),
            read_cache: read_cache.clone(),
            posting_cache: posting_cache.clone(),
            changes: Changes::default(),
            stats: stats.clone(),
            failed: failed.clone(),
            // Replicated: the log in the same journal is what gets
            // fsynced (`LogStore::sync`), never a data write.
            fsync: match mode {
                Mode::Local => config.fsync,
                Mode::Replicated => FsyncPolicy::Never,
            },
            limits: Limits {
                key_size_bytes_max: config.key_size_bytes_max,
                value_size_bytes_max: config.value_size_bytes_max,
            },
            group_mutations_max: config.group_commit_mutations_max,
            group_size_bytes_max: config.group_commit_size_bytes_max,
            counts,
            catalog,
            prefetch: Prefetcher::new(config.prefetch_slow_read_ns),
            versions,
            closed: false,
            observer: observer.clone(),
        };
        let writer = Arc::new(std::sync::Mutex::new(writer));
        let (tx, rx) = mpsc::channel(config.write_queue_len_max);
        let thread = spawn_writer(writer.clone(), rx, &config)?;
        Ok(Store {
            inner: Arc::new(Inner {
                engine,
                view,
                read_cache,
                posting_cache,
                stats,
                failed,
                tx,
                writer,
                config,
                stopping: Arc::new(AtomicBool::new(false)),
                observer,
                threads: std::sync::Mutex::new(vec![thread]),
            }),
        })
    }

    /// Starts a background thread that `shutdown` stops and joins.
    pub(crate) fn spawn_background(
        &self,
        name: &str,
        body: impl FnOnce() + Send + 'static,
    ) -> Result<()> {
        let thread = std::thread::Builder::new().name(name.into()).spawn(body)?;
        if let Ok(mut threads) = self.inner.threads.lock() {
            threads.push(thread);
        }
        Ok(())
    }

    pub fn config(&self) -> &StorageConfig {
        &self.inner.config
    }

    /// Finishes every queued mutation, fsyncs, and stops the background
    /// threads. Later submissions fail with [`StorageError::ShuttingDown`].
    pub async fn shutdown(&self) -> Result<()> {
        self.inner.stopping.store(true, Ordering::Release);
        let (done, rx) = oneshot::channel();
        let result = if self
            .inner
            .tx
            .send(WriterMsg::Shutdown { done })
            .await
            .is_ok()
        {
            rx.await.unwrap_or(Ok(()))
        } else {
            Ok(())
        };
        let threads = match self.inner.threads.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => Vec::new(),
        };
        let current = std::thread::current().id();
        for t in threads {
            if t.thread().id() != current {
                let _ = tokio::task::spawn_blocking(move || t.join()).await;
            }
        }
        result
    }

    /// A consistent view of the latest durable state.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            engine: self.inner.engine.clone(),
            snap: self.inner.view.load_full(),
        }
    }

    /// The latest state and its exact version, as one pair: every record
    /// in it has that version or a lower one, and every change with a
    /// higher version is missing from it. For backups, which say what
    /// they hold by that version. Takes the writer's lock (the writer
    /// moves the version and publishes the view under it), so it waits
    /// for a group in progress: call it where blocking is allowed.
    pub fn snapshot_with_version(&self) -> (Snapshot, u64) {
        let writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let snapshot = self.snapshot();
        (snapshot, writer.versions.last)
    }

    /// A live record (not expired at `now_ms`), from the read cache when
    /// it holds the key, else from the latest view (and then cached).
    pub fn get(&self, key: &[u8], now_ms: u64) -> Result<Option<Record>> {
        Ok(self.get_stored(key)?.filter(|r| r.is_live_at(now_ms)))
    }

    /// The stored record, expired or not, as [`Store::get`] finds it.
    fn get_stored(&self, key: &[u8]) -> Result<Option<Record>> {
        let cache = &self.inner.read_cache;
        if !cache.enabled() {
            let snap = self.snapshot();
            return snap.engine.snapshot_get(&snap.snap, key);
        }
        Ok(match cache.get(key) {
            Some(hit) => hit,
            None => {
                // The version first, then the view: see `read_cache.rs`.
                let read_at = cache.version();
                let found = self.inner.engine.snapshot_get(&self.snapshot().snap, key)?;
                cache.fill(key, read_at, &found);
                found
            }
        })
    }

    /// What WATCH keeps of `key` for [`Op::ExecVersioned`]: whether it has
    /// a live record at `now_ms`, and a version `as_of` up to which that
    /// record is the key's last modification.
    ///
    /// The published state's version is loaded first, then the record:
    /// the record comes from that state or a newer one, so it holds every
    /// modification up to that version; if it is newer still, its own
    /// version (live or expired) is taken, which it holds too. Any later
    /// write stamps a higher version. In a cluster the version is the
    /// index of the last log entry applied here, which is not behind any
    /// version a replica stamped for an entry before it: so the check at
    /// EXEC decides alike on every replica.
    pub fn watch(&self, key: &Bytes, now_ms: u64) -> Result<WatchedVersion> {
        let published = self.inner.stats.published_version.load(Ordering::Acquire);
        let stored = self.get_stored(key)?;
        Ok(WatchedVersion {
            key: key.clone(),
            existed: stored.as_ref().is_some_and(|r| r.is_live_at(now_ms)),
            as_of: stored.map_or(published, |r| r.version.max(published)),
        })
    }

    /// The version of the latest published view: every record a read
    /// makes after loading it has been written at it or later (a record's
    /// [`Record::version`] is at most the version of the view holding it).
    /// Only grows, across restarts too; in a cluster, the index of the
    /// last log entry applied here.
    pub fn published_version(&self) -> u64 {
        self.inner.stats.published_version.load(Ordering::Acquire)
    }

    /// Sets the one observer told of every published view's changes
    /// (`observe.rs`), from the next view on. False if one was set
    /// already (it stays).
    pub fn set_publish_observer(&self, observer: Arc<dyn PublishObserver>) -> bool {
        self.inner.observer.set(observer).is_ok()
    }

    /// Every live record with `start <= key <= end`, in key order, at
    /// most `limit`, with its version and expiry; the flag says whether
    /// more exist past the limit. See [`Snapshot::range`].
    pub fn range_records(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        now_ms: u64,
    ) -> Result<(Vec<(Bytes, Record)>, bool)> {
        self.snapshot().range_records(start, end, limit, now_ms)
    }

    /// See [`Snapshot::prefix_records`].
    pub fn prefix_records(
        &self,
        prefix: &[u8],
        limit: usize,
        now_ms: u64,
    ) -> Result<(Vec<(Bytes, Record)>, bool)> {
        self.snapshot().prefix_records(prefix, limit, now_ms)
    }

    /// Several keys from one snapshot, so MGET is a consistent view.
    pub fn get_many(&self, keys: &[Bytes], now_ms: u64) -> Result<Vec<Option<Record>>> {
        self.snapshot().get_many(keys, now_ms)
    }

    /// See [`Snapshot::range`].
    pub fn range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        now_ms: u64,
    ) -> Result<(Vec<(Bytes, Bytes)>, bool)> {
        self.snapshot().range(start, end, limit, now_ms)
    }

    /// See [`Snapshot::scan`].
    pub fn scan(
        &self,
        after: Option<&[u8]>,
        count: usize,
        pattern: Option<&[u8]>,
        now_ms: u64,
    ) -> Result<(Vec<Bytes>, Option<Bytes>)> {
        self.snapshot().scan(after, count, pattern, now_ms)
    }

    /// See [`Snapshot::keys`].
    pub fn keys(&self, pattern: &[u8], keys_max: usize, now_ms: u64) -> Result<Vec<Bytes>> {
        self.snapshot().keys(pattern, keys_max, now_ms)
    }

    /// Keys stored, including expired keys not yet swept (as Redis DBSIZE).
    pub fn dbsize(&self) -> u64 {
        self.inner.stats.keys.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> StoreStats {
        let e = &self.inner.engine;
        let s = &self.inner.stats;
        StoreStats {
            keys: s.keys.load(Ordering::Relaxed),
            expiring_keys: s.expiring.load(Ordering::Relaxed),
            disk_space_bytes: e.db.disk_space().unwrap_or(0),
            journal_count: e.db.journal_count() as u64,
            journal_disk_space_bytes: e.db.journal_disk_space().unwrap_or(0),
            write_buffer_size_bytes: e.db.write_buffer_size(),
            cache_size_bytes: e.db.cache_size(),
            cache_capacity_bytes: e.db.cache_capacity(),
            outstanding_flushes: e.db.outstanding_flushes() as u64,
            active_compactions: e.db.active_compactions() as u64,
            compactions_completed: e.db.compactions_completed() as u64,
            groups_committed: s.groups.load(Ordering::Relaxed),
            mutations_committed: s.mutations.load(Ordering::Relaxed),
            fsyncs: s.fsyncs.load(Ordering::Relaxed),
            fsync_micros_total: s.fsync_micros_total.load(Ordering::Relaxed),
            fsync_micros_max: s.fsync_micros_max.load(Ordering::Relaxed),
            group_size_max: s.group_size_max.load(Ordering::Relaxed),
            groups_prefetched: s.groups_prefetched.load(Ordering::Relaxed),
            read_cache_size_bytes: self.inner.read_cache.size_bytes(),
            read_cache_capacity_bytes: self.inner.read_cache.capacity_bytes(),
            read_cache_entries: self.inner.read_cache.len() as u64,
            read_cache_hits: self.inner.read_cache.hits.load(Ordering::Relaxed),
            read_cache_misses: self.inner.read_cache.misses.load(Ordering::Relaxed),
            read_cache_fills_refused: self.inner.read_cache.fills_refused.load(Ordering::Relaxed),
            search_cache_size_bytes: self.inner.posting_cache.size_bytes(),
            search_cache_capacity_bytes: self.inner.posting_cache.capacity_bytes(),
            search_cache_hits: self.inner.posting_cache.hits.load(Ordering::Relaxed),
            search_cache_misses: self.inner.posting_cache.misses.load(Ordering::Relaxed),
            failed: self.inner.failed.get(),
            corruption_errors: crate::corruption::corruption_errors(),
            published_version: s.published_version.load(Ordering::Acquire),
            group_sizes: s.group_sizes.read(),
            fsync_micros: s.fsync_micros.read(),
            keyspace_disk_bytes: e.disk_space_by_keyspace(),
            write_stalled: e.write_stalled(),
        }
    }

    /// Why the store refuses writes (a write or fsync failed; it does until
    /// a restart), or None. Cheap, unlike [`Store::stats`]: for health
    /// checks.
    pub fn failure(&self) -> Option<String> {
        self.inner.failed.get()
    }

    /// Up to `keys_max` (key, expiry time) pairs of the expiry index that are
    /// due at `now_ms`, read from the latest state; the input of an
    /// [`Op::SweepExpired`] (a replicated leader proposes it as a log entry).
    pub fn due_expiries(&self, now_ms: u64, keys_max: usize) -> Result<Vec<(Bytes, u64)>> {
        let mut out = Vec::new();
        if keys_max == 0 {
            return Ok(out);
        }
        for guard in self
            .inner
            .engine
            .data
            .range::<Vec<u8>, _>(due_expiry_range(now_ms))
        {
            let raw_key = guard.key()?;
            let Some((at, key)) = split_expiry_key(&raw_key) else {
                continue;
            };
            out.push((Bytes::copy_from_slice(key), at));
            if out.len() == keys_max {
                break;
            }
        }
        Ok(out)
    }

    /// Flushes the journal to disk now, whatever the policy.
    pub fn sync(&self) -> Result<()> {
        self.inner.engine.persist(PersistMode::SyncData)
    }

    /// Whether the key counters agree with a recount of the latest state.
    /// For tests: a full scan, and it races the writer (call it when no
    /// write is in flight).
    #[doc(hidden)]
    pub fn counts_match_recount(&self) -> Result<bool> {
        let recounted = Counts::recount(&self.inner.engine)?;
        let s = &self.inner.stats;
        Ok(recounted.keys == s.keys.load(Ordering::Relaxed)
            && recounted.expiring == s.expiring.load(Ordering::Relaxed))
    }
}

/// The versions a store starts from (see `commit::Versions`).
fn versions_at_open(engine: &Engine, mode: Mode) -> Result<Versions> {
    Ok(match mode {
        Mode::Local => {
            let ceiling = engine.load_u64(META_VERSION)?;
            Versions {
                last: ceiling,
                ceiling,
                deleted_max: 0,
            }
        }
        // `last` comes from the replication layer
        // (`ReplicatedStore::resume_versions`).
        Mode::Replicated => Versions {
            deleted_max: engine.load_u64(META_DELETED)?,
            ..Versions::default()
        },
    })
}

/// Starts the writer thread. Crash-only: if the writer ever panics, no
/// write can be answered again. It aborts (like kill -9) so a supervisor
/// restarts the server and recovery replays the journal; every
/// acknowledged write is already durable.
fn spawn_writer(
    writer: Arc<std::sync::Mutex<Writer>>,
    rx: mpsc::Receiver<WriterMsg>,
    config: &StorageConfig,
) -> Result<JoinHandle<()>> {
    let (group_mutations_max, group_size_bytes_max) = (
        config.group_commit_mutations_max,
        config.group_commit_size_bytes_max,
    );
    let thread = std::thread::Builder::new()
        .name("strata-writer".into())
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Writer::run(&writer, rx, group_mutations_max, group_size_bytes_max)
            }));
            if result.is_err() {
                tracing::error!("the storage writer panicked; aborting the process");
                std::process::abort();
            }
        })?;
    Ok(thread)
}

/// Search reads, each from one snapshot (`search/read.rs`).
impl Store {
    /// See [`Snapshot::search_matches_recount`].
    pub fn search_matches_recount(&self) -> Result<std::result::Result<(), String>> {
        self.snapshot().search_matches_recount()
    }

    pub fn search(
        &self,
        name: &str,
        query: &Query,
        opts: &SearchOptions,
        now_ms: u64,
    ) -> Result<std::result::Result<SearchAnswer, SearchError>> {
        // The version first, then the view: see `search/cache.rs`.
        let cache = &self.inner.posting_cache;
        let read_at = cache.version();
        self.snapshot()
            .search_cached(name, query, opts, now_ms, Some((cache, read_at)))
    }

    pub fn index_info(&self, name: &str) -> Result<Option<IndexInfo>> {
        self.snapshot().index_info(name, self.dbsize())
    }

    pub fn search_indexes(&self) -> Result<Vec<IndexSummary>> {
        self.snapshot().search_indexes()
    }

    pub fn pending_search_work(&self) -> Result<Vec<SearchWork>> {
        self.snapshot().pending_search_work()
    }

    pub fn embedding_targets(&self, key: &[u8], value: &[u8]) -> Result<Vec<(u32, u16, String)>> {
        self.snapshot().embedding_targets(key, value)
    }

    pub fn backfill_preview(&self, id: IndexId, keys_max: usize) -> Result<Vec<(Bytes, Record)>> {
        self.snapshot().backfill_preview(id, keys_max)
    }
}
