//! Strata's storage layer.
//!
//! A narrow interface over the fjall LSM engine:
//! - reads ([`Store::get`], [`Store::range`], [`Store::scan`], or several from
//!   one [`Snapshot`]) from the latest durable state;
//! - writes as [`Mutation`]s through one group-commit writer
//!   ([`Store::submit`]), applied in order by the state machine
//!   [`mutation::apply`];
//! - durability per [`FsyncPolicy`]; expiry by a background sweeper that
//!   itself writes through the same path.

mod commit;
mod config;
mod engine;
mod error;
pub mod mutation;
pub mod pattern;
pub mod record;
mod snapshot;
mod store;

pub use config::{FsyncPolicy, KEY_SIZE_BYTES_LIMIT, StorageConfig, VALUE_SIZE_BYTES_LIMIT};
pub use error::{Result, StorageError};
pub use mutation::{
    ExpireCondition, GetExChange, Mutation, MutationError, Op, Outcome, SetCondition, SetExpiry,
};
pub use record::Record;
pub use snapshot::Snapshot;
pub use store::{Store, StoreStats, Ticket, now_ms};
