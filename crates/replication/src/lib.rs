//! Strata's replication: Raft through openraft, behind a thin adapter.
//!
//! - [`types`]: openraft's type configuration; a log entry is a [`Command`]
//!   (one write, with its retry id).
//! - [`log_store`]: the Raft log and vote in Strata's storage engine, with
//!   group-committed fsyncs.
//! - [`state_machine`]: committed entries applied to the [`strata_storage::Store`];
//!   snapshots as streamed files.
//! - [`wire`], [`auth`], [`network`], `peer_server`: the peer protocol over
//!   TCP, and the handshake that proves the cluster secret.
//! - [`node`]: [`ClusterNode`], what the server uses: write batches, read
//!   barriers, status, membership changes, graceful hand-over.

pub mod auth;
#[doc(hidden)]
pub mod fuzzing;
mod log_cache;
pub mod log_store;
mod member_health;
pub mod network;
pub mod node;
mod peer_server;
mod proposer;
pub mod state_machine;
pub mod types;
pub mod wire;

pub use auth::{ClusterSecret, SecretError};
pub use node::{
    ClusterConfig, ClusterError, ClusterNode, ClusterStatus, DEDUPE_WINDOW_MS, StepDown,
};
pub use state_machine::seed_applied_mark;
pub use types::{Command, NodeId, Proposal};
pub use wire::{AdminRequest, NodeStatus};
