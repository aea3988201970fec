//! The writer: the one applier every change of the store goes through, in
//! both modes, and the single node's group commit.
//!
//! Single node ([`crate::LocalStore`]): connections submit [`Mutation`]s
//! into a bounded queue. The writer thread takes everything that is
//! waiting (up to the group limits), applies each mutation through
//! [`crate::mutation::apply`] against a [`GroupState`] (the group's own
//! writes first, then the engine), writes the whole group as ONE atomic
//! engine batch, makes it durable according to the [`FsyncPolicy`] with one
//! fsync, and only then publishes a new read snapshot and answers every
//! submitter.
//!
//! Replicated ([`crate::ReplicatedStore`]): the same thread runs the jobs
//! `replicated.rs` sends it ([`WriterMsg::Run`]), against the same
//! [`Writer`] state, with the same `publish`.
//!
//! Why one applier: mutations are read-modify-write (INCR, SET NX, MSETNX);
//! a single applier makes them serial, and it is exactly the shape a
//! replicated log's apply loop has. The applier's state ([`Writer`]) sits
//! behind one mutex that the writer thread holds for each group. When no
//! fsync is awaited (`--fsync periodic` or `never`, single node), a
//! connection may take that mutex itself, if it is free, and commit its own
//! pipeline's group inline (`LocalStore::apply_inline`): a commit is then
//! memory work (the journal is buffered), and the two thread hand-offs of
//! the queue cost more than the commit itself. Groups stay serial either
//! way. Why readers see only published snapshots: a reader must never see a
//! write that a crash could still take away (it was not yet durable), or it
//! could act on data that vanishes.
//!
//! Invariant, always checked: a committed group answers one outcome per
//! mutation, in order ([`check_outcome_count`]); else the process aborts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use fjall::{OwnedWriteBatch, PersistMode};
use tokio::sync::{mpsc, oneshot};

use crate::config::FsyncPolicy;
use crate::engine::{Engine, META_COUNTS, META_VERSION, encode_u64};
use crate::error::{Result, StorageError};
use crate::histogram::{Buckets, FSYNC_MICROS_BOUNDS, GROUP_SIZE_BOUNDS};
use crate::mutation::{self, Limits, Mutation, Op, Outcome};
use crate::observe::{PublishObserver, Published};
use crate::prefetch::Prefetcher;
use crate::read_cache::{Changes, ReadCache};
use crate::record::Record;
use crate::search::cache::{PostingCache, ShardSet};
use crate::search::catalog::Catalog;
use crate::state::{Counts, Finished, GroupState};

pub(crate) type Reply = oneshot::Sender<Result<Outcome>>;

pub(crate) enum WriterMsg {
    Apply {
        mutation: Mutation,
        reply: Reply,
    },
    Shutdown {
        done: oneshot::Sender<Result<()>>,
    },
    /// Work of a replicated store (apply committed entries, install a
    /// snapshot, evict request records): on this thread, so it is serial
    /// with every other change. A closure, so that the writer knows nothing
    /// of what it does (`replicated.rs` builds them); one per call, not per
    /// entry, so the allocation does not count.
    Run(Job),
}

/// A piece of work for the writer thread, run holding the writer's lock.
pub(crate) type Job = Box<dyn FnOnce(&mut Writer) + Send>;

/// Counters the writer publishes for INFO and benchmarks.
#[derive(Default)]
pub(crate) struct WriterStats {
    pub groups: AtomicU64,
    pub mutations: AtomicU64,
    pub fsyncs: AtomicU64,
    pub fsync_micros_total: AtomicU64,
    pub fsync_micros_max: AtomicU64,
    pub group_size_max: AtomicU64,
    /// Groups whose old records were read in parallel first (`prefetch.rs`).
    pub groups_prefetched: AtomicU64,
    pub keys: AtomicU64,
    pub expiring: AtomicU64,
    /// Set when a group was written but not yet fsynced (periodic mode).
    pub dirty: AtomicBool,
    /// `Versions::last` of the published view, stored after the view:
    /// a reader that loads it and then reads a record gets that state or
    /// a newer one (`Store::watch`).
    pub published_version: AtomicU64,
    /// Mutations per committed group (`histogram::GROUP_SIZE_BOUNDS`).
    pub group_sizes: Buckets,
    /// Each fsync's time, µs (`histogram::FSYNC_MICROS_BOUNDS`).
    pub fsync_micros: Buckets,
}

impl WriterStats {
    /// With the histograms' buckets (the `Default` has none).
    pub(crate) fn new() -> WriterStats {
        WriterStats {
            group_sizes: Buckets::new(&GROUP_SIZE_BOUNDS),
            fsync_micros: Buckets::new(&FSYNC_MICROS_BOUNDS),
            ..WriterStats::default()
        }
    }
}

/// Versions reserved per write of the single-node ceiling
/// (`META_VERSION`): one tiny extra write per million groups instead of
/// one per group. A restart skips what was left of the reservation
/// (2^20 per restart leaves room for 2^44 restarts in a u64).
pub(crate) const VERSION_RESERVE: u64 = 1 << 20;

/// Modification versions (see `record.rs`): the version of the committed
/// state, the single-node ceiling, and the deletions WATCH must see.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Versions {
    /// The version of the latest committed state: every record in it has
    /// this version or a lower one. Single node: the number of the last
    /// group committed (the groups are numbered from the ceiling found at
    /// open, so numbers grow across restarts). Replicated: the index of
    /// the last log entry applied, so every replica stamps alike.
    pub last: u64,
    /// Single node: every version up to here is reserved by the ceiling
    /// persisted under `META_VERSION`; a group past it writes a new one
    /// in its own batch, so no record can be durable with a version above
    /// the durable ceiling. Unused when replicated.
    pub ceiling: u64,
    /// The highest version of any record deleted (`State::deleted_max`).
    /// Replicated: state, persisted under `META_DELETED` in the batch of
    /// every group that raises it, and carried by snapshots. Single node:
    /// in memory only, from 0 at open; a WATCH cannot outlive the
    /// process, and every version after a restart is above every older
    /// one.
    pub deleted_max: u64,
}

impl Versions {
    /// The versions once single-node group `version` commits: the
    /// ceiling moves on by a reservation when the group passes it.
    fn after_group(&self, version: u64, deleted_max: u64) -> Versions {
        Versions {
            last: version,
            ceiling: if version > self.ceiling {
                version + VERSION_RESERVE - 1
            } else {
                self.ceiling
            },
            deleted_max,
        }
    }
}

pub(crate) struct Writer {
    pub engine: Arc<Engine>,
    pub view: Arc<ArcSwap<fjall::Snapshot>>,
    /// Told of every change before a view that holds it is published.
    pub read_cache: Arc<ReadCache>,
    /// Told of every changed posting list, the same way (`search/cache.rs`).
    pub posting_cache: Arc<PostingCache>,
    /// What the engine holds that the published view does not yet: every
    /// path that writes data keys adds to it, and `publish` hands it to the
    /// read cache.
    pub changes: Changes,
    pub stats: Arc<WriterStats>,
    pub failed: Arc<Failure>,
    pub fsync: FsyncPolicy,
    pub limits: Limits,
    pub group_mutations_max: usize,
    pub group_size_bytes_max: usize,
    pub counts: Counts,
    /// The search catalog as of the last committed group (`search/`).
    pub catalog: Arc<Catalog>,
    /// Parallel reads of a group's old records when reads come from disk.
    pub prefetch: Prefetcher,
    pub versions: Versions,
    /// Set (under the lock) once shutdown has made everything durable: an
    /// inline commit after that would be acknowledged but never synced.
    pub closed: bool,
    /// Told of each published view's changes (`observe.rs`); set once.
    pub observer: Arc<OnceLock<Arc<dyn PublishObserver>>>,
}

/// Locks the writer. A poisoned lock means an apply panicked, and that
/// aborts the process (crash-only, see `Store::spawn_writer`), so the
/// guard is taken as it is.
pub(crate) fn lock(writer: &Mutex<Writer>) -> MutexGuard<'_, Writer> {
    writer.lock().unwrap_or_else(|p| p.into_inner())
}

/// A sticky failure flag with its reason: once set, it stays set until the
/// process restarts. A Mutex (not an atomic) because it carries the reason;
/// it is read once per group, so the lock is never hot.
#[derive(Default)]
pub(crate) struct Failure(std::sync::Mutex<Option<String>>);

impl Failure {
    pub fn get(&self) -> Option<String> {
        self.0
            .lock()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn set(&self, reason: String) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(reason);
        }
    }
}

impl Writer {
    /// The writer thread: takes the queued messages, one group at a time,
    /// and handles each group holding the writer's lock.
    /// The group limits are passed in rather than read under the lock, so
    /// the thread never holds the lock while idle.
    pub fn run(
        writer: &Mutex<Writer>,
        mut rx: mpsc::Receiver<WriterMsg>,
        group_mutations_max: usize,
        group_size_bytes_max: usize,
    ) {
        let mut group: Vec<(Mutation, Reply)> = Vec::with_capacity(group_mutations_max);
        while let Some(first) = rx.blocking_recv() {
            let after = gather(
                first,
                &mut rx,
                &mut group,
                group_mutations_max,
                group_size_bytes_max,
            );
            if !group.is_empty() {
                let mutations: Vec<&Mutation> = group.iter().map(|(m, _)| m).collect();
                let outcomes = lock(writer).apply_group(&mutations);
                // Answered after the lock is let go (the group is published
                // already): a submitter that has its answer finds it free.
                answer(&mut group, outcomes);
            }
            match after {
                AfterGroup::Next => {}
                AfterGroup::Run(job) => job(&mut lock(writer)),
                AfterGroup::Shutdown(done) => {
                    lock(writer).shut_down(&mut rx, done);
                    return;
                }
            }
        }
        // Every sender is gone: nothing more can arrive.
        let mut w = lock(writer);
        w.closed = true;
        let _ = w.engine.persist(PersistMode::SyncAll);
    }

    /// Applies what raced into the queue before it closed, makes
    /// everything durable, and answers `done`. Nothing commits after it
    /// (`closed`, for the inline path).
    fn shut_down(&mut self, rx: &mut mpsc::Receiver<WriterMsg>, done: oneshot::Sender<Result<()>>) {
        rx.close();
        let mut group = Vec::with_capacity(1);
        while let Ok(msg) = rx.try_recv() {
            match msg {
                WriterMsg::Apply { mutation, reply } => {
                    group.push((mutation, reply));
                    let mutations: Vec<&Mutation> = group.iter().map(|(m, _)| m).collect();
                    let outcomes = self.apply_group(&mutations);
                    answer(&mut group, outcomes);
                }
                WriterMsg::Shutdown { done } => {
                    let _ = done.send(Ok(()));
                }
                WriterMsg::Run(job) => job(self),
            }
        }
        self.closed = true;
        let result = self.engine.persist(PersistMode::SyncAll);
        let _ = done.send(result);
    }

    /// Applies `mutations` as one group: one engine batch, made as durable
    /// as the policy asks, then published. One outcome per mutation, in
    /// order; a failed commit fails them all and every later group.
    pub(crate) fn apply_group(&mut self, mutations: &[&Mutation]) -> Vec<Result<Outcome>> {
        if let Some(reason) = self.failed.get() {
            return mutations
                .iter()
                .map(|_| Err(StorageError::Failed(reason.clone())))
                .collect();
        }
        let prefetched = self.prefetch.fetch(&self.engine, mutations);
        let was_prefetched = !prefetched.is_empty();
        let read_cache = self.read_cache.clone();
        // The group's number: one past the last committed (a group that
        // commits nothing leaves its number to the next).
        let version = self.versions.last + 1;
        let mut state = GroupState::new(&self.engine, self.counts, mutations.len())
            .with_versions(version, self.versions.deleted_max)
            .with_prefetched(prefetched)
            .with_read_cache(self.changes.is_empty().then_some(&*read_cache))
            .with_catalog(self.catalog.clone());
        let mut outcomes = Vec::with_capacity(mutations.len());
        for m in mutations {
            outcomes.push(mutation::apply(&mut state, m, &self.limits));
        }
        if was_prefetched {
            self.stats.groups_prefetched.fetch_add(1, Ordering::Relaxed);
        } else {
            self.prefetch
                .observe_serial_reads(state.engine_reads, state.engine_read_ns);
        }
        if outcomes.iter().any(Result::is_err) {
            // A mutation failed half-way (a read of a damaged block after
            // an earlier step wrote, inside EXEC): its first steps are in
            // the overlay. Nothing of the group is committed, and every
            // member says so; the store itself stays writable.
            return outcomes
                .into_iter()
                .map(|o| o.and_then(|_| Err(StorageError::NotCommitted)))
                .collect();
        }
        let clear_requested = state.clear_requested;
        let counts = state.counts;
        let versions = self.versions.after_group(version, state.deleted_max);
        // The newest version a FLUSHALL at the end of this group clears:
        // this group's own if it stored anything, else the last group's.
        let flushed_max = if state.overlay.values().any(Option::is_some) {
            version
        } else {
            self.versions.last
        };
        let Finished {
            mut batch,
            changed,
            catalog,
            lists_changed,
        } = state.into_batch();
        self.add_meta(&mut batch, counts, versions);
        let result = self.write(batch).and_then(|()| {
            self.versions = versions;
            self.catalog = catalog;
            if clear_requested {
                self.flush_all(flushed_max)
            } else {
                self.counts = counts;
                Ok(())
            }
        });
        let outcomes = self.finish_group(result, changed, lists_changed, outcomes);
        debug_assert_eq!(outcomes.len(), mutations.len(), "one outcome per mutation");
        outcomes
    }

    /// Adds a group's key counters and version ceiling to its batch, where
    /// they changed: in the same atomic batch as the records they describe.
    fn add_meta(&self, batch: &mut OwnedWriteBatch, counts: Counts, versions: Versions) {
        debug_assert!(counts.expiring <= counts.keys, "{counts:?}");
        if counts != self.counts {
            batch.insert(&self.engine.data, META_COUNTS, counts.encode().to_vec());
        }
        if versions.ceiling != self.versions.ceiling {
            batch.insert(
                &self.engine.data,
                META_VERSION,
                encode_u64(versions.ceiling),
            );
        }
    }

    /// After a group's commit: publish and answer, or fail the store.
    fn finish_group(
        &mut self,
        result: Result<()>,
        changed: HashMap<Bytes, Option<Record>>,
        lists_changed: ShardSet,
        outcomes: Vec<Result<Outcome>>,
    ) -> Vec<Result<Outcome>> {
        match result {
            Ok(()) => {
                // Only committed records may be written through to the read
                // cache (`read_cache.rs`); FLUSHALL marked everything.
                self.changes.keys.extend(changed);
                self.changes.search_lists.extend(&lists_changed);
                // Publish first, then answer: a client that reads after its
                // acknowledgement must see its own write.
                self.publish();
                self.count_group(outcomes.len() as u64);
                outcomes
            }
            Err(e) => {
                // Whether the batch reached the engine is unknown: should
                // anything publish later, the read cache drops everything.
                self.changes.all = true;
                let reason = e.to_string();
                tracing::error!(error = %reason, "group commit failed; refusing all further writes");
                self.failed.set(reason.clone());
                outcomes
                    .iter()
                    .map(|_| Err(StorageError::Failed(reason.clone())))
                    .collect()
            }
        }
    }

    pub(crate) fn refuse_if_failed(&self) -> Result<()> {
        match self.failed.get() {
            Some(reason) => Err(StorageError::Failed(reason)),
            None => Ok(()),
        }
    }

    /// Records a failed write: the store refuses all writes from now on,
    /// because the engine's state after a failed write is unknown.
    pub(crate) fn fail(&self, e: impl Into<StorageError>) -> StorageError {
        let e = e.into();
        let reason = e.to_string();
        tracing::error!(error = %reason, "storage write failed; refusing all further writes");
        self.failed.set(reason);
        e
    }

    /// Makes the latest engine state the readers' view, with its counters.
    pub(crate) fn publish(&mut self) {
        debug_assert!(
            self.counts.expiring <= self.counts.keys,
            "{:?}",
            self.counts
        );
        // Announce the changes before the view is stored, and the version
        // after: the order `read_cache.rs` relies on.
        let changes = std::mem::take(&mut self.changes);
        let version = self.read_cache.announce(&changes);
        let lists_version = self
            .posting_cache
            .announce(&changes.search_lists, changes.all);
        self.view.store(Arc::new(self.engine.snapshot()));
        // After the view, so that whoever sees this version reads that
        // view or a newer one.
        self.stats
            .published_version
            .store(self.versions.last, Ordering::Release);
        self.read_cache.published(version);
        self.posting_cache.published(lists_version);
        // After the version: whoever it wakes reads this view or a newer
        // one. One atomic load when nobody observes.
        if let Some(observer) = self.observer.get() {
            observer.published(&Published {
                version: self.versions.last,
                keys: &changes.keys,
                everything: changes.all,
            });
        }
        // After the view: the new records are now what every reader sees.
        self.read_cache.write_through(changes);
        self.stats.keys.store(self.counts.keys, Ordering::Relaxed);
        self.stats
            .expiring
            .store(self.counts.expiring, Ordering::Relaxed);
    }

    pub(crate) fn count_group(&self, mutations: u64) {
        self.stats.groups.fetch_add(1, Ordering::Relaxed);
        self.stats.mutations.fetch_add(mutations, Ordering::Relaxed);
        self.stats
            .group_size_max
            .fetch_max(mutations, Ordering::Relaxed);
        self.stats.group_sizes.record(mutations);
    }

    /// Writes the batch and makes it as durable as the policy asks.
    fn write(&self, batch: OwnedWriteBatch) -> Result<()> {
        batch.commit()?;
        match self.fsync {
            FsyncPolicy::Always => self.sync(),
            FsyncPolicy::Periodic { .. } => {
                self.stats.dirty.store(true, Ordering::Release);
                Ok(())
            }
            FsyncPolicy::Never => Ok(()),
        }
    }

    fn sync(&self) -> Result<()> {
        sync_and_measure(&self.engine, &self.stats)
    }

    /// FLUSHALL: the engine clears the keyspace (data, expiry index and
    /// counters together) in one journaled step, then zero counters and
    /// the version ceiling are written. A crash in between leaves the
    /// counters missing, and opening an empty store with missing counters
    /// recounts: zero. (It also leaves no ceiling, so versions start again
    /// from 1, which is harmless on an empty store.)
    fn flush_all(&mut self, flushed_max: u64) -> Result<()> {
        self.changes.all = true;
        self.engine.data.clear()?;
        self.counts = Counts::default();
        // The catalog lives in the data keyspace: FLUSHALL drops every
        // index, as RediSearch does.
        self.catalog = Arc::new(Catalog::empty());
        // Every record cleared had a version up to `flushed_max`.
        self.versions.deleted_max = self.versions.deleted_max.max(flushed_max);
        let mut batch = self.engine.db.batch();
        batch.insert(
            &self.engine.data,
            META_COUNTS,
            self.counts.encode().to_vec(),
        );
        batch.insert(
            &self.engine.data,
            META_VERSION,
            encode_u64(self.versions.ceiling),
        );
        batch.commit()?;
        self.engine.persist(PersistMode::SyncData)?;
        Ok(())
    }
}

/// What the writer thread does once a gathered group is committed.
enum AfterGroup {
    Next,
    Run(Job),
    Shutdown(oneshot::Sender<Result<()>>),
}

/// Gathers a group into `group`: `first` and whatever else is queued, up
/// to the group limits. Stops early at a FLUSHALL (which runs alone, after
/// what came before it) and at a message that is not a write, which the
/// thread handles once the group is committed.
fn gather(
    first: WriterMsg,
    rx: &mut mpsc::Receiver<WriterMsg>,
    group: &mut Vec<(Mutation, Reply)>,
    group_mutations_max: usize,
    group_size_bytes_max: usize,
) -> AfterGroup {
    let mut size_bytes = 0usize;
    let mut next = Some(first);
    while let Some(msg) = next.take() {
        match msg {
            WriterMsg::Apply { mutation, reply } => {
                size_bytes += mutation.payload_size_bytes();
                let flush_all = matches!(mutation.op, Op::FlushAll);
                group.push((mutation, reply));
                if flush_all {
                    break;
                }
            }
            WriterMsg::Shutdown { done } => return AfterGroup::Shutdown(done),
            WriterMsg::Run(job) => return AfterGroup::Run(job),
        }
        if group.len() >= group_mutations_max || size_bytes >= group_size_bytes_max {
            break;
        }
        next = rx.try_recv().ok();
    }
    AfterGroup::Next
}

/// Answers every submitter of a committed group, in order.
fn answer(group: &mut Vec<(Mutation, Reply)>, outcomes: Vec<Result<Outcome>>) {
    check_outcome_count(group.len(), outcomes.len());
    for ((_, reply), outcome) in group.drain(..).zip(outcomes) {
        let _ = reply.send(outcome);
    }
}

/// Crash-only: a committed group must answer one outcome per mutation. If
/// it ever did not, which write got which answer is unknown, and a write
/// left unanswered would look lost to a client although it is durable.
/// Abort (like kill -9, as for a panic in the applier, see
/// `Store::spawn_writer`) rather than answer wrongly or not at all. Always
/// on: it costs one comparison per group.
pub(crate) fn check_outcome_count(mutations: usize, outcomes: usize) {
    if mutations != outcomes {
        tracing::error!(
            mutations,
            outcomes,
            "a storage group answered a different number of outcomes than it had writes; aborting"
        );
        std::process::abort();
    }
}

pub(crate) fn sync_and_measure(engine: &Engine, stats: &WriterStats) -> Result<()> {
    let start = Instant::now();
    stats.dirty.store(false, Ordering::Release);
    engine.persist(PersistMode::SyncData)?;
    let micros = start.elapsed().as_micros() as u64;
    stats.fsyncs.fetch_add(1, Ordering::Relaxed);
    stats
        .fsync_micros_total
        .fetch_add(micros, Ordering::Relaxed);
    stats.fsync_micros_max.fetch_max(micros, Ordering::Relaxed);
    stats.fsync_micros.record(micros);
    Ok(())
}
