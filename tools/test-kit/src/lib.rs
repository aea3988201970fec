//! Test support shared by the product's end-to-end tests
//! (`crates/strata/tests`) and the tools (`tools/chaos`, `tools/torture`,
//! `tools/bench`). It is not part of the product: only dev-dependencies
//! and tools use it, and it knows the server only as a binary it starts
//! and a RESP address it talks to.
//!
//! * [`cluster`]: real `strata server` processes on loopback: start, find
//!   the leader, kill -9 / SIGTERM / SIGSTOP / restart, read INFO fields.
//! * [`proxy`]: a TCP proxy for peer links that partitions, delays and
//!   cuts connections, per directed link.
//! * [`rng`]: the seeded PRNG that makes fault schedules replayable.
//! * [`server`]: one single-node server process.
//! * [`binary`]: where the `strata` binary under test is.

pub mod binary;
pub mod cluster;
pub mod proxy;
pub mod rng;
pub mod server;

/// A number from the environment (decimal, or hex after `0x`), for test
/// knobs such as seeds and durations. Absent or empty is None; anything
/// else that is not a number stops the test: a typo must not silently run
/// the default.
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| {
            let v = v.trim();
            if let Some(hex) = v.strip_prefix("0x") {
                u64::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("bad {name}={v}"))
            } else {
                v.parse().unwrap_or_else(|_| panic!("bad {name}={v}"))
            }
        })
}
