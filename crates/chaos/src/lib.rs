//! `strata-chaos`: fault injection and consistency checking for a Strata
//! Raft cluster.
//!
//! * [`proxy`]: a TCP proxy for the peer links that partitions, delays
//!   (with jitter, reordering across connections) and cuts connections
//!   (message loss), per directed link.
//! * [`checker`]: a linearizability checker (Wing & Gong / Porcupine
//!   style) for per-key histories of SET / GET / INCR / DEL with
//!   unknown-outcome operations.
//! * [`cluster`]: real `strata server` processes on loopback: start, find
//!   the leader, kill -9 / SIGTERM / SIGSTOP / restart, read INFO fields.
//!   Also used by the end-to-end tests in `crates/strata/tests`.
//! * [`powerloss`]: the `powerloss` fault: an `LD_PRELOAD` shim that logs
//!   every fsync, and the rewind of a dead node's files to what was synced.
//! * [`run`]: one chaos run (a seed): cluster behind the proxy, random
//!   clients, a seeded fault schedule, heal, converge, check.
//! * [`rng`]: the seeded PRNG that makes schedules replayable.

pub mod checker;
pub mod cluster;
pub mod powerloss;
pub mod proxy;
pub mod rng;
pub mod run;
