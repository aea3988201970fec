//! Strata's storage layer.
//!
//! A narrow interface over the fjall LSM engine:
//! - reads ([`Store::get`], [`Store::range`], [`Store::scan`], or several from
//!   one [`Snapshot`]) from the latest durable state;
//! - writes as [`Mutation`]s through one group-commit writer
//!   ([`Store::submit`]), applied in order by the state machine
//!   [`mutation::apply`];
//! - durability per [`FsyncPolicy`]; expiry by a background sweeper that
//!   itself writes through the same path;
//! - or, in replicated mode ([`StorageConfig::replicated`]), writes only as
//!   committed Raft log entries ([`Store::apply_log`], [`LogEntry`]), with
//!   the log itself in the same database ([`LogStore`]). Storage knows
//!   nothing of Raft: the replication layer drives these calls.

mod check;
mod commit;
mod config;
mod corruption;
mod engine;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod inline_round;
pub mod mutation;
pub mod pattern;
mod prefetch;
mod raft_log;
mod read_cache;
pub mod record;
mod replicated;
mod snapshot;
mod store;

pub use check::{
    CheckError, CheckReport, Damage, JournalRepair, RepairReport, check_data_dir, repair_journals,
};
pub use config::{
    FsyncPolicy, KEY_SIZE_BYTES_LIMIT, READ_CACHE_SIZE_BYTES_LIMIT, StorageConfig,
    VALUE_SIZE_BYTES_LIMIT,
};
pub use corruption::corruption_errors;
pub use error::{Result, StorageError};
pub use mutation::{
    ExpireCondition, GetExChange, Limits, Mutation, MutationError, Op, Outcome, SetCondition,
    SetExpiry, Step, Watched, WatchedVersion, record_digest,
};
pub use raft_log::LogStore;
pub use record::Record;
pub use replicated::{LogEntry, RequestId};
pub use snapshot::Snapshot;
pub use store::{Store, StoreStats, Ticket, now_ms};
