//! Strata's network server.
//!
//! Shape (after mini-redis): [`server`] accepts connections and owns
//! [`shutdown`]; a connection is a [`transport`] (bytes in and out, through
//! a [`codec`] per protocol: RESP, [`text`]) and a request handler
//! ([`connection`]); each command family lives in its own module under
//! [`cmd`] (parse, then apply); every write goes through the one
//! [`write_path`] chosen at startup; all connections share one
//! [`shared::Shared`]. The [`http`] listener serves the JSON API and the
//! operations endpoints (`/metrics`, `/livez`, `/readyz`) over the same
//! `Shared`.

pub mod backup;
pub mod changes;
pub mod client_buffers;
pub mod clients;
pub mod cmd;
mod codec;
pub mod command_stats;
pub mod config;
mod connection;
pub mod embedding;
pub mod http;
mod http_probe;
mod idle;
pub mod memory;
mod request_timer;
pub mod runner;
pub mod search_driver;
pub mod server;
pub mod shared;
pub mod shutdown;
mod text;
mod transport;
pub mod units;
pub mod write_path;

pub use config::{ConfigError, ConfigLayer, ServerConfig};
pub use server::{ServerError, run};

/// Strata's own version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The Redis version whose command semantics Strata follows; reported in
/// HELLO and INFO because clients use it to pick features.
pub const REDIS_COMPAT_VERSION: &str = "7.2.0";
