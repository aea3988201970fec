//! [`Store`]: the storage layer's one public handle.
//!
//! Reads go to the latest *durable* snapshot and never block on the writer.
//! Writes are [`Mutation`]s submitted to the group-commit writer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use fjall::PersistMode;
use tokio::sync::{mpsc, oneshot};

use crate::commit::{Failure, Versions, Writer, WriterMsg, WriterStats, sync_and_measure};
use crate::config::{FsyncPolicy, StorageConfig};
use crate::engine::{Engine, META_DELETED, META_VERSION};
use crate::engine::{due_expiry_range, split_expiry_key};
use crate::error::{Result, StorageError};
use crate::inline_round::{self, Answer, Member, Rounds};
use crate::mutation::{Mutation, Op, Outcome, WatchedVersion};
use crate::prefetch::Prefetcher;
use crate::read_cache::{Changes, ReadCache};
use crate::record::Record;
use crate::snapshot::Snapshot;

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

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
    pub failed: Option<String>,
    /// Reads refused because they hit damaged data (see `corruption.rs`).
    pub corruption_errors: u64,
}

pub(crate) struct Inner {
    pub(crate) engine: Arc<Engine>,
    view: Arc<ArcSwap<fjall::Snapshot>>,
    /// Single-key reads look here first; kept coherent with `view` by the
    /// writer (see `read_cache.rs`).
    read_cache: Arc<ReadCache>,
    pub(crate) stats: Arc<WriterStats>,
    pub(crate) failed: Arc<Failure>,
    pub(crate) tx: mpsc::Sender<WriterMsg>,
    /// The applier's state; the writer thread holds it for each group, and
    /// so may [`Store::apply_inline`] (see `commit.rs`).
    writer: Arc<std::sync::Mutex<Writer>>,
    /// Whether [`Store::apply_inline`] may commit on the caller's thread:
    /// only when no fsync is awaited (periodic or never) and the store is
    /// not replicated.
    inline_writes: bool,
    /// The open inline commit round (see `inline_round.rs`).
    rounds: Rounds,
    pub(crate) config: StorageConfig,
    stopping: Arc<AtomicBool>,
    threads: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

/// A queued mutation's outcome, ready once it is applied and durable.
pub struct Ticket(oneshot::Receiver<Result<Outcome>>);

impl Ticket {
    pub async fn outcome(self) -> Result<Outcome> {
        self.0.await.map_err(|_| StorageError::ShuttingDown)?
    }
}

/// Cheap to clone; all clones share one engine and one writer.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl Store {
    /// Opens (or creates) the store and recovers it: the engine replays its
    /// journal, then the key counters are loaded. A replicated store (see
    /// [`StorageConfig::replicated`]) starts no sweeper and no fsync thread.
    pub fn open(config: StorageConfig) -> Result<Store> {
        let engine = Engine::open(&config)?;
        let counts = engine.recover_counts()?;
        let versions = if config.replicated {
            // `last` comes from the replication layer (`resume_versions`).
            Versions {
                deleted_max: engine.load_u64(META_DELETED)?,
                ..Versions::default()
            }
        } else {
            let ceiling = engine.load_u64(META_VERSION)?;
            Versions {
                last: ceiling,
                ceiling,
                deleted_max: 0,
            }
        };
        let stats = Arc::new(WriterStats::default());
        stats.keys.store(counts.keys, Ordering::Relaxed);
        stats.expiring.store(counts.expiring, Ordering::Relaxed);
        stats
            .published_version
            .store(versions.last, Ordering::Relaxed);
        let view = Arc::new(ArcSwap::from_pointee(engine.snapshot()));
        let read_cache = Arc::new(ReadCache::new(config.read_cache_size_bytes));
        let failed = Arc::new(Failure::default());
        let (tx, rx) = mpsc::channel(config.write_queue_len_max);
        let writer = Writer {
            engine: engine.clone(),
            view: view.clone(),
            read_cache: read_cache.clone(),
            changes: Changes::default(),
            stats: stats.clone(),
            failed: failed.clone(),
            // Replicated: the Raft log in the same journal is what gets
            // fsynced; `submit` is refused, so this only guards the path.
            fsync: if config.replicated {
                FsyncPolicy::Never
            } else {
                config.fsync
            },
            limits: config.limits(),
            group_mutations_max: config.group_commit_mutations_max,
            group_size_bytes_max: config.group_commit_size_bytes_max,
            counts,
            prefetch: Prefetcher::new(config.prefetch_slow_read_ns),
            versions,
            closed: false,
        };
        let (group_mutations_max, group_size_bytes_max) =
            (writer.group_mutations_max, writer.group_size_bytes_max);
        let writer = Arc::new(std::sync::Mutex::new(writer));
        let thread_writer = writer.clone();
        let stopping = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        threads.push(
            std::thread::Builder::new()
                .name("strata-writer".into())
                .spawn(move || {
                    // Crash-only: if the writer ever panics, no write can be
                    // answered again. Abort (like kill -9) so a supervisor
                    // restarts the server and recovery replays the journal;
                    // every acknowledged write is already durable.
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        Writer::run(
                            &thread_writer,
                            rx,
                            group_mutations_max,
                            group_size_bytes_max,
                        )
                    }));
                    if result.is_err() {
                        tracing::error!("the storage writer panicked; aborting the process");
                        std::process::abort();
                    }
                })?,
        );
        let store = Store {
            inner: Arc::new(Inner {
                engine,
                view,
                read_cache,
                stats,
                failed,
                tx,
                writer,
                inline_writes: !config.replicated && !matches!(config.fsync, FsyncPolicy::Always),
                rounds: Rounds::default(),
                config,
                stopping,
                threads: std::sync::Mutex::new(Vec::new()),
            }),
        };
        // Replicated: expiry deletes must be log entries (a local sweeper
        // would make replicas diverge), and durability is the Raft log's.
        if !store.inner.config.replicated {
            if let FsyncPolicy::Periodic { interval_ms } = store.inner.config.fsync {
                let s = store.clone();
                threads.push(
                    std::thread::Builder::new()
                        .name("strata-fsync".into())
                        .spawn(move || s.periodic_sync_loop(interval_ms))?,
                );
            }
            let s = store.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("strata-expiry".into())
                    .spawn(move || s.expiry_sweep_loop())?,
            );
        }
        if let Ok(mut t) = store.inner.threads.lock() {
            *t = threads;
        }
        Ok(store)
    }

    pub fn config(&self) -> &StorageConfig {
        &self.inner.config
    }

    /// Submits a mutation and waits until it is applied and as durable as
    /// the fsync policy promises. Waits for queue space when the writer is
    /// behind: that is the backpressure that bounds memory. A replicated
    /// store refuses with [`StorageError::Replicated`].
    pub async fn submit(&self, mutation: Mutation) -> Result<Outcome> {
        self.enqueue(mutation).await?.outcome().await
    }

    /// Queues a mutation without waiting for its outcome, so a connection
    /// can queue a whole pipeline and let it land in one group commit.
    /// Waits only for queue space (backpressure).
    pub async fn enqueue(&self, mutation: Mutation) -> Result<Ticket> {
        self.refuse_if_replicated()?;
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .send(WriterMsg::Apply { mutation, reply })
            .await
            .map_err(|_| StorageError::ShuttingDown)?;
        Ok(Ticket(rx))
    }

    /// Whether [`Store::apply_inline`] can ever commit here (no fsync is
    /// awaited: `periodic` or `never`, and not replicated). A caller may use
    /// it to gather a pipeline's writes for one inline group.
    pub fn writes_inline(&self) -> bool {
        self.inner.inline_writes
    }

    /// Commits `mutations` as one group on the calling thread, if that can
    /// be done without waiting: the store [`writes_inline`](Self::writes_inline),
    /// the writer is not busy with a group of its own (its lock is free),
    /// and its reads are not coming from disk (then the writer thread's
    /// parallel prefetch is the faster path, and a disk read must not stall
    /// an async runtime thread), the engine is not close to a write stall
    /// (its commit would sleep), and none of them is a FLUSHALL. `None`
    /// means "not now": submit them
    /// through the queue instead, which keeps their order. Outcomes are as
    /// from [`Store::submit`], published before this returns.
    pub fn apply_inline(&self, mutations: &[Mutation]) -> Option<Vec<Result<Outcome>>> {
        let refs: Vec<&Mutation> = mutations.iter().collect();
        self.apply_inline_refs(&refs)
    }

    fn apply_inline_refs(&self, mutations: &[&Mutation]) -> Option<Vec<Result<Outcome>>> {
        // FLUSHALL clears the keyspace and fsyncs: milliseconds that must
        // not stall a network thread.
        if !self.inner.inline_writes
            || mutations.is_empty()
            || mutations.iter().any(|m| matches!(m.op, Op::FlushAll))
        {
            return None;
        }
        let mut writer = match self.inner.writer.try_lock() {
            Ok(w) => w,
            Err(std::sync::TryLockError::WouldBlock) => return None,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        };
        if writer.closed || writer.prefetch.is_on() || self.inner.engine.under_write_pressure() {
            return None;
        }
        // At most one group's worth; a longer pipeline is cut by the caller
        // (PIPELINE_WRITES_MAX) or goes through the queue.
        let size_bytes: usize = mutations.iter().map(|m| m.payload_size_bytes()).sum();
        if mutations.len() > writer.group_mutations_max || size_bytes > writer.group_size_bytes_max
        {
            return None;
        }
        // Crash-only, as on the writer thread (`Store::open`): an apply that
        // panics leaves the engine and the writer's state unknown.
        let outcomes = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            writer.apply_group(mutations)
        }));
        match outcomes {
            Ok(outcomes) => Some(outcomes),
            Err(_) => {
                tracing::error!("an inline storage write panicked; aborting the process");
                std::process::abort();
            }
        }
    }

    /// Commits `mutations` inline together with the writes of every other
    /// connection that is ready at the same moment (an inline commit round,
    /// see `inline_round.rs`): yields to the scheduler once, then commits
    /// the round unless another member already did. `Err` gives the writes
    /// back when they cannot be committed inline now (as
    /// [`Store::apply_inline`] answers `None`): submit them through the
    /// queue instead, which keeps their order. Outcomes are published
    /// before they are returned.
    ///
    /// `others_may_join`: false when the caller knows no other connection
    /// exists; then the round is committed at once. Why: the yield costs a
    /// pass of the scheduler (an `epoll_wait` when idle), 8% of a lone
    /// client's unpipelined SET rate (49.4k vs 45.6k/s, redis-benchmark
    /// `-c 1`), and nobody could join anyway.
    pub async fn apply_inline_round(
        &self,
        mutations: Vec<Mutation>,
        others_may_join: bool,
    ) -> Answer {
        if !self.inner.inline_writes
            || mutations.is_empty()
            || mutations.iter().any(|m| matches!(m.op, Op::FlushAll))
        {
            return Err(mutations);
        }
        let len = mutations.len();
        let (answer, rx) = oneshot::channel();
        let round = self.inner.rounds.join(Member { mutations, answer });
        if others_may_join {
            // Let every other ready connection run (and join) first.
            tokio::task::yield_now().await;
        }
        if let Some(members) = self.inner.rounds.take(round) {
            self.run_round(members);
        }
        match rx.await {
            Ok(answer) => answer,
            // Only if the member that took the round vanished mid-commit,
            // which aborts the process (`apply_inline_refs`).
            Err(_) => Ok((0..len).map(|_| Err(StorageError::ShuttingDown)).collect()),
        }
    }

    /// Commits a taken round, group by group, and answers every member.
    /// Awaits nothing: the members waiting for it depend on that.
    fn run_round(&self, members: Vec<Member>) {
        // A member whose connection is gone was never answered; leaving
        // its writes out is the same as a disconnect before they were sent.
        let members: Vec<Member> = members
            .into_iter()
            .filter(|m| !m.answer.is_closed())
            .collect();
        let (mutations_max, size_bytes_max) = (
            self.inner.config.group_commit_mutations_max,
            self.inner.config.group_commit_size_bytes_max,
        );
        for (i, run) in inline_round::cut(members, mutations_max, size_bytes_max)
            .into_iter()
            .enumerate()
        {
            // Bounded work per poll (`ROUND_GROUPS_MAX`): the rest queues.
            let outcomes = if i < inline_round::ROUND_GROUPS_MAX {
                let refs: Vec<&Mutation> = run.iter().flat_map(|m| m.mutations.iter()).collect();
                self.apply_inline_refs(&refs)
            } else {
                None
            };
            match outcomes {
                Some(outcomes) => {
                    let mut outcomes = outcomes.into_iter();
                    for m in run {
                        let mine: Vec<Result<Outcome>> =
                            outcomes.by_ref().take(m.mutations.len()).collect();
                        if mine.len() != m.mutations.len() {
                            // `apply_group` answers one outcome per
                            // mutation; if it ever did not, which writes of
                            // this committed group got which answer is
                            // unknown. Crash-only, as for a panic in it.
                            tracing::error!("an inline group answered too few outcomes; aborting");
                            std::process::abort();
                        }
                        let _ = m.answer.send(Ok(mine));
                    }
                }
                None => {
                    for m in run {
                        let _ = m.answer.send(Err(m.mutations));
                    }
                }
            }
        }
    }

    /// The same, from a plain thread.
    pub fn submit_blocking(&self, mutation: Mutation) -> Result<Outcome> {
        self.refuse_if_replicated()?;
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .blocking_send(WriterMsg::Apply { mutation, reply })
            .map_err(|_| StorageError::ShuttingDown)?;
        rx.blocking_recv().map_err(|_| StorageError::ShuttingDown)?
    }

    fn refuse_if_replicated(&self) -> Result<()> {
        if self.inner.config.replicated {
            return Err(StorageError::Replicated);
        }
        Ok(())
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
            failed: self.inner.failed.get(),
            corruption_errors: crate::corruption::corruption_errors(),
        }
    }

    /// Sleeps up to `ms`, waking early on shutdown. Returns false when stopping.
    fn pause(&self, ms: u64) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_millis(ms);
        while std::time::Instant::now() < deadline {
            if self.inner.stopping.load(Ordering::Acquire) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(ms.min(20)));
        }
        !self.inner.stopping.load(Ordering::Acquire)
    }

    fn periodic_sync_loop(&self, interval_ms: u64) {
        while self.pause(interval_ms) {
            if self.inner.stats.dirty.load(Ordering::Acquire)
                && let Err(e) = sync_and_measure(&self.inner.engine, &self.inner.stats)
            {
                tracing::error!(error = %e, "periodic fsync failed; refusing all further writes");
                self.inner.failed.set(e.to_string());
            }
        }
    }

    /// Active expiry: finds keys whose time has passed through the expiry
    /// index and deletes them with a mutation, so removal goes through the
    /// same ordered write path as everything else.
    fn expiry_sweep_loop(&self) {
        let interval_ms = self.inner.config.expiry_sweep_interval_ms;
        let keys_max = self.inner.config.expiry_sweep_keys_max;
        while self.pause(interval_ms) {
            loop {
                let now = now_ms();
                let entries = match self.due_expiries(now, keys_max) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!(error = %e, "expiry sweep could not read the index");
                        break;
                    }
                };
                if entries.is_empty() {
                    break;
                }
                let full = entries.len() == keys_max;
                let m = Mutation {
                    now_ms: now,
                    op: Op::SweepExpired { entries },
                };
                match self.submit_blocking(m) {
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "expiry sweep stopped");
                        return;
                    }
                }
                if !full || self.inner.stopping.load(Ordering::Acquire) {
                    break;
                }
            }
        }
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
}
