//! [`ReplicatedStore`]: a store that changes only by applying a replicated
//! log, so that every replica holds the same state.
//!
//! Storage does not run consensus: the replication layer (crates/replication,
//! which runs Raft) decides which entries are committed and drives these
//! calls. What storage keeps for it, it keeps without interpreting:
//! - the log itself ([`LogStore`], `log.rs`): entries and metadata as
//!   opaque bytes, in a keyspace of the same database, so one fsync makes
//!   the log and the applied data durable together;
//! - the applied mark: opaque bytes written in the same batch as the
//!   effects of the entries it names;
//! - request records (`requests.rs`): the outcomes of requests that carry a
//!   [`crate::RequestId`], so a resend is answered rather than applied twice.
//!
//! Every change runs on the core's writer thread (`log_apply.rs`), serial
//! with every other. There is no other write: no `submit`, no expiry sweeper
//! (expiry deletes are log entries the leader proposes, from
//! [`Store::due_expiries`]; a local sweeper would make replicas diverge),
//! and no fsync of data writes (the log's fsync covers them). Reads are the
//! core's: a `ReplicatedStore` dereferences to [`Store`].

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::commit::{Writer, WriterMsg};
use crate::config::StorageConfig;
use crate::engine::Mode;
use crate::error::{Result, StorageError};
use crate::log::LogStore;
use crate::log_apply::{self, LogEntry, SnapshotEntries};
use crate::mutation::Outcome;
use crate::store::Store;

/// A replicated store: reads (through [`Store`]) and the calls that apply
/// the replicated log. Cheap to clone; all clones share one engine and one
/// writer. It has no `submit`: its state changes only through the log.
#[derive(Clone)]
pub struct ReplicatedStore {
    store: Store,
}

/// Why `Deref`: a replicated store *is* the core plus log application;
/// every read of [`Store`] is one of this store too.
impl std::ops::Deref for ReplicatedStore {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.store
    }
}

impl ReplicatedStore {
    /// Opens (or creates) the store and recovers it (`Store::open_core`),
    /// with the log's keyspaces. Starts no sweeper and no fsync thread.
    pub fn open(config: StorageConfig) -> Result<ReplicatedStore> {
        Ok(ReplicatedStore {
            store: Store::open_core(config, Mode::Replicated)?,
        })
    }

    /// A read handle on this store, for readers that must not write.
    pub fn reader(&self) -> Store {
        self.store.clone()
    }

    /// Runs `job` on the writer thread, serial with every other change,
    /// and waits for its answer.
    async fn run_on_writer<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Writer) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        let job = Box::new(move |w: &mut Writer| {
            let _ = reply.send(job(w));
        });
        self.inner
            .tx
            .send(WriterMsg::Run(job))
            .await
            .map_err(|_| StorageError::ShuttingDown)?;
        rx.await.map_err(|_| StorageError::ShuttingDown)?
    }

    /// Applies committed entries in order, on the writer thread, as one
    /// engine batch with the applied mark of the LAST entry (a FLUSHALL
    /// splits the batch; each part carries its own last entry's mark). No
    /// fsync. Publishes a new read view, then returns one [`Outcome`] per
    /// entry ([`Outcome::Ok`] for entries without a mutation). `Err` is a
    /// storage failure, which the caller must treat as fatal.
    ///
    /// An entry with a [`crate::RequestId`] whose (now_ms, id) was seen before is
    /// not applied; it answers the stored outcome (refusals included).
    pub async fn apply_log(&self, entries: Vec<LogEntry>) -> Result<Vec<Outcome>> {
        self.run_on_writer(move |w| log_apply::apply_log(w, entries))
            .await
    }

    /// The applied mark in the latest published view (None on a fresh store).
    pub fn applied_mark(&self) -> Result<Option<Bytes>> {
        self.snapshot().applied_mark()
    }

    /// Physically removes dedupe records whose now_ms < `older_than_ms`, at
    /// most `max` per call (on the writer thread, one batch, no fsync).
    /// Returns how many were removed.
    pub async fn evict_requests(&self, older_than_ms: u64, max: usize) -> Result<usize> {
        self.run_on_writer(move |w| log_apply::evict_requests(w, older_than_ms, max))
            .await
    }

    /// Replaces the whole state with raw entries as produced by
    /// [`Snapshot::export`], on the writer thread: clears the keyspace,
    /// loads the entries in bounded batches, writes `applied_mark` LAST,
    /// fsyncs, and publishes a new view. A crash in the middle leaves the
    /// applied mark absent, never a half state that claims to be complete.
    /// Entries that do not look like an export are refused as
    /// [`StorageError::Corrupt`] (the store is then empty or half loaded,
    /// without a mark: install again).
    ///
    /// `applied_index` is the log index the snapshot ends at (in
    /// `applied_mark` too, which only the replication layer decodes): the
    /// version of the installed state (see [`LogEntry::index`]).
    pub async fn install(
        &self,
        entries: SnapshotEntries,
        applied_mark: Bytes,
        applied_index: u64,
    ) -> Result<()> {
        self.run_on_writer(move |w| log_apply::install(w, entries, applied_mark, applied_index))
            .await
    }

    /// Tells a replicated store, once at start, the log index of the last
    /// entry applied to it, which the replication layer reads from the
    /// applied mark: the version of its state, which WATCH reads
    /// ([`Store::watch`]). Why not stored by the store itself: the mark
    /// already holds it, in the same batch as the effects, and a data
    /// directory of a build before versions has nothing else. Until it
    /// is called the state's version is 0, which makes WATCH rely on
    /// record versions alone.
    pub async fn resume_versions(&self, applied_index: u64) -> Result<()> {
        self.run_on_writer(move |w| {
            w.versions.last = applied_index;
            w.publish();
            Ok(())
        })
        .await
    }

    /// The log handle: the replication layer's log, in this store's
    /// database (see `log.rs`).
    pub fn log_store(&self) -> LogStore {
        LogStore::new(
            self.inner.engine.clone(),
            self.inner.stats.clone(),
            self.inner.failed.clone(),
        )
    }
}
