//! `strata-chaos`: fault injection and consistency checking for a Strata
//! Raft cluster.
//!
//! * [`proxy`]: a TCP proxy for the peer links that partitions, delays
//!   (with jitter, reordering across connections) and cuts connections
//!   (message loss), per directed link.
//! * [`checker`]: a linearizability checker (Wing & Gong / Porcupine
//!   style) for per-key histories of SET / GET / INCR / DEL with
//!   unknown-outcome operations.
//! * [`cluster`], [`proxy`] and [`rng`] live in `strata-test-kit`
//!   (`tools/test-kit`), shared with the product's end-to-end tests;
//!   re-exported here under their old paths.
//! * [`powerloss`]: the `powerloss` fault: an `LD_PRELOAD` shim that logs
//!   every fsync, and the rewind of a dead node's files to what was synced.
//! * [`iofault`]: the I/O fault: an `LD_PRELOAD` shim that fails the data
//!   directory's writes or syncs with EIO or ENOSPC from a chosen moment.
//! * [`run`]: one chaos run (a seed): cluster behind the proxy, random
//!   clients, a seeded fault schedule, heal, converge, check.
//! * [`rng`]: the seeded PRNG that makes schedules replayable.

pub mod checker;
pub mod iofault;
pub mod powerloss;
pub mod run;

pub use strata_test_kit::{cluster, proxy, rng};
