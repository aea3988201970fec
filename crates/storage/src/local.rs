//! [`LocalStore`]: a single node's store, written by its own clients.
//!
//! Writes are [`Mutation`]s: submitted to the writer thread's queue
//! ([`LocalStore::submit`], [`LocalStore::enqueue`] and its [`Ticket`]),
//! or, when no fsync is awaited, committed on the caller's thread in an
//! inline round (`inline_round.rs`). Durability is the [`FsyncPolicy`]'s;
//! a periodic policy runs an fsync thread. Expiry is active: a sweeper
//! thread deletes due keys through the same write path.
//!
//! Reads are the core's: a `LocalStore` dereferences to [`Store`], and
//! [`LocalStore::reader`] hands out a plain read handle.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::clock::now_ms;
use crate::commit::{WriterMsg, check_outcome_count, sync_and_measure};
use crate::config::{FsyncPolicy, StorageConfig};
use crate::engine::Mode;
use crate::error::{Result, StorageError};
use crate::inline_round::{self, Answer, Member, Rounds};
use crate::mutation::{Mutation, Op, Outcome};
use crate::store::Store;

/// A queued mutation's outcome, ready once it is applied and durable.
pub struct Ticket(oneshot::Receiver<Result<Outcome>>);

impl Ticket {
    pub async fn outcome(self) -> Result<Outcome> {
        self.0.await.map_err(|_| StorageError::ShuttingDown)?
    }
}

/// A single node's store: reads (through [`Store`]) and writes. Cheap to
/// clone; all clones share one engine and one writer.
///
/// Only this mode has writes of its own:
///
/// ```no_run
/// # async fn f(store: strata_storage::LocalStore, m: strata_storage::Mutation) {
/// let _ = store.submit(m).await;
/// # }
/// ```
///
/// A replicated store has none (a compile error, not a run-time refusal):
///
/// ```compile_fail
/// # async fn f(store: strata_storage::ReplicatedStore, m: strata_storage::Mutation) {
/// let _ = store.submit(m).await;
/// # }
/// ```
#[derive(Clone)]
pub struct LocalStore {
    store: Store,
    /// The open inline commit round (see `inline_round.rs`).
    rounds: Arc<Rounds>,
    /// Whether [`LocalStore::apply_inline`] may commit on the caller's
    /// thread: only when no fsync is awaited (periodic or never).
    inline_writes: bool,
}

/// Why `Deref`: a single node's store *is* the core plus writes; every read
/// of [`Store`] is one of this store too, with no second copy of each.
impl std::ops::Deref for LocalStore {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.store
    }
}

impl LocalStore {
    /// Opens (or creates) the store and recovers it (`Store::open_core`),
    /// then starts the expiry sweeper and, with a periodic fsync policy,
    /// the fsync thread.
    pub fn open(config: StorageConfig) -> Result<LocalStore> {
        let inline_writes = !matches!(config.fsync, FsyncPolicy::Always);
        let store = LocalStore {
            store: Store::open_core(config, Mode::Local)?,
            rounds: Arc::new(Rounds::default()),
            inline_writes,
        };
        if let FsyncPolicy::Periodic { interval_ms } = store.config().fsync {
            let s = store.clone();
            store.spawn_background("strata-fsync", move || s.periodic_sync_loop(interval_ms))?;
        }
        let s = store.clone();
        store.spawn_background("strata-expiry", move || s.expiry_sweep_loop())?;
        Ok(store)
    }

    /// A read handle on this store, for readers that must not write.
    pub fn reader(&self) -> Store {
        self.store.clone()
    }

    /// Submits a mutation and waits until it is applied and as durable as
    /// the fsync policy promises. Waits for queue space when the writer is
    /// behind: that is the backpressure that bounds memory.
    pub async fn submit(&self, mutation: Mutation) -> Result<Outcome> {
        self.enqueue(mutation).await?.outcome().await
    }

    /// Queues a mutation without waiting for its outcome, so a connection
    /// can queue a whole pipeline and let it land in one group commit.
    /// Waits only for queue space (backpressure).
    pub async fn enqueue(&self, mutation: Mutation) -> Result<Ticket> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .send(WriterMsg::Apply { mutation, reply })
            .await
            .map_err(|_| StorageError::ShuttingDown)?;
        Ok(Ticket(rx))
    }

    /// Whether [`LocalStore::apply_inline`] can ever commit here (no fsync
    /// is awaited: `periodic` or `never`). A caller may use
    /// it to gather a pipeline's writes for one inline group.
    pub fn writes_inline(&self) -> bool {
        self.inline_writes
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
    /// from [`LocalStore::submit`], published before this returns.
    pub fn apply_inline(&self, mutations: &[Mutation]) -> Option<Vec<Result<Outcome>>> {
        let refs: Vec<&Mutation> = mutations.iter().collect();
        self.apply_inline_refs(&refs)
    }

    fn apply_inline_refs(&self, mutations: &[&Mutation]) -> Option<Vec<Result<Outcome>>> {
        // FLUSHALL clears the keyspace and fsyncs: milliseconds that must
        // not stall a network thread.
        if !self.inline_writes
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
        // Crash-only, as on the writer thread (`Store::spawn_writer`): an
        // apply that panics leaves the engine and the writer's state unknown.
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
    /// [`LocalStore::apply_inline`] answers `None`): submit them through the
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
        if !self.inline_writes
            || mutations.is_empty()
            || mutations.iter().any(|m| matches!(m.op, Op::FlushAll))
        {
            return Err(mutations);
        }
        let len = mutations.len();
        let (answer, rx) = oneshot::channel();
        let round = self.rounds.join(Member { mutations, answer });
        if others_may_join {
            // Let every other ready connection run (and join) first.
            tokio::task::yield_now().await;
        }
        if let Some(members) = self.rounds.take(round) {
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
                    // The same check as the writer thread's: crash-only.
                    let mutations = run.iter().map(|m| m.mutations.len()).sum();
                    check_outcome_count(mutations, outcomes.len());
                    let mut outcomes = outcomes.into_iter();
                    for m in run {
                        let mine: Vec<Result<Outcome>> =
                            outcomes.by_ref().take(m.mutations.len()).collect();
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
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .blocking_send(WriterMsg::Apply { mutation, reply })
            .map_err(|_| StorageError::ShuttingDown)?;
        rx.blocking_recv().map_err(|_| StorageError::ShuttingDown)?
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
}
