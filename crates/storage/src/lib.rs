//! Strata's storage layer.
//!
//! A narrow interface over the fjall LSM engine, opened in one of two
//! modes, each its own type on a shared core:
//! - [`LocalStore`]: a single node. Writes are [`Mutation`]s through one
//!   group-commit writer ([`LocalStore::submit`], or inline on the caller's
//!   thread when no fsync is awaited), applied in order by the state machine
//!   [`mutation::apply`]; durability per [`FsyncPolicy`]; expiry by a
//!   background sweeper that itself writes through the same path.
//! - [`ReplicatedStore`]: one replica of a replicated log. Writes are only
//!   committed log entries ([`ReplicatedStore::apply_log`], [`LogEntry`]),
//!   applied by the same state machine on the same writer; snapshots are
//!   exported and installed whole.
//!
//! Both read through the core, [`Store`] (a cheap read handle either mode
//! hands out, and which both dereference to): [`Store::get`],
//! [`Store::range`], [`Store::scan`], or several from one [`Snapshot`], from
//! the latest durable state. A write on the wrong mode does not compile.
//!
//! Backups: [`BackupStream`] writes a backup file of one consistent state
//! ([`Store::snapshot_with_version`]) a chunk at a time, [`BackupReader`]
//! reads and checks one, [`restore_data_dir`] builds a data directory from
//! one, all or nothing.
//!
//! Storage does not run consensus, but it does keep what the replication
//! layer (crates/replication, Raft) needs stored with the data, without
//! interpreting it: the log ([`LogStore`], opaque numbered entries, in the
//! same database so one fsync covers log and data), the applied mark
//! (opaque bytes written in the batch of the entries it names) and
//! request records for retry dedupe ([`RequestId`]). See `replicated.rs`.

mod backup;
mod check;
mod clock;
mod commit;
mod config;
mod corruption;
mod engine;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod histogram;
mod inline_round;
mod local;
mod log;
mod log_apply;
pub mod mutation;
mod observe;
pub mod pattern;
mod prefetch;
mod read_cache;
pub mod record;
mod replicated;
mod requests;
mod restore;
mod search;
mod snapshot;
mod state;
mod store;

pub use backup::{
    BACKUP_FORMAT_VERSION, BackupError, BackupHeader, BackupReader, BackupRecord, BackupStream,
    BackupSummary,
};
pub use check::{
    CheckError, CheckReport, Damage, JournalRepair, RepairReport, check_data_dir, repair_journals,
};
pub use clock::now_ms;
pub use config::{
    FsyncPolicy, KEY_SIZE_BYTES_LIMIT, READ_CACHE_SIZE_BYTES_LIMIT, StorageConfig,
    VALUE_SIZE_BYTES_LIMIT,
};
pub use corruption::corruption_errors;
pub use error::{Result, StorageError};
pub use histogram::{BucketCounts, FSYNC_MICROS_BOUNDS, GROUP_SIZE_BOUNDS};
pub use local::{LocalStore, Ticket};
pub use log::LogStore;
pub use log_apply::{LogEntry, SnapshotEntries};
pub use mutation::{
    Embedding, ExpireCondition, GetExChange, Limits, Mutation, MutationError, Op, Outcome,
    SetCondition, SetExpiry, Step, VersionCheck, Watched, WatchedVersion, record_digest,
};
pub use observe::{PublishObserver, Published};
pub use record::Record;
pub use replicated::ReplicatedStore;
pub use requests::RequestId;
pub use restore::{RestoreMode, RestoreReport, restore_data_dir, seed_index};
pub use search::{
    BACKFILL_KEYS_MAX, CREATE_BACKFILL_KEYS_MAX, IndexInfo, IndexSummary, PURGE_ENTRIES_MAX,
    SEARCH_INDEXES_MAX, SearchAnswer, SearchError, SearchHit, SearchWork,
};
pub use snapshot::Snapshot;
pub use store::{Store, StoreStats};
