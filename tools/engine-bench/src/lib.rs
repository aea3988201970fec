//! Embedded storage engine comparison for Strata: fjall configured exactly
//! as strata-storage runs it, against redb, LMDB (heed) and, behind the
//! `rocksdb` feature, RocksDB. No network, no server: the engines alone, on
//! db_bench-like workloads, so an engine choice can be argued from numbers.

pub mod config;
pub mod data;
pub mod engines;
pub mod report;
pub mod workload;

pub use config::{Cli, Config, EngineKind, Format, SyncMode, Workload};
pub use workload::{CaseResult, run_all};
