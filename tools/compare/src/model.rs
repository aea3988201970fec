//! What is measured: durability levels, servers, tests and one measurement.

use serde::{Deserialize, Serialize};

/// A durability level, named after Strata's `--fsync` modes; each one is
/// paired with the Redis AOF setting that promises the same thing.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Acknowledged after fsync: strata `--fsync always`, redis `appendfsync always`.
    Always,
    /// fsync once a second in the background: strata `--fsync periodic:1000`,
    /// redis `appendfsync everysec`.
    Periodic,
    /// No fsync by the server: strata `--fsync never`, redis `appendonly no`.
    Never,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Always, Level::Periodic, Level::Never];

    pub fn name(self) -> &'static str {
        match self {
            Level::Always => "always",
            Level::Periodic => "periodic",
            Level::Never => "never",
        }
    }

    /// The value of strata's `--fsync`.
    pub fn strata_fsync(self) -> &'static str {
        match self {
            Level::Always => "always",
            Level::Periodic => "periodic:1000",
            Level::Never => "never",
        }
    }

    /// redis-server's persistence arguments (RDB snapshots are always off,
    /// see [`crate::process::start_redis`]).
    pub fn redis_args(self) -> &'static [&'static str] {
        match self {
            Level::Always => &["--appendonly", "yes", "--appendfsync", "always"],
            Level::Periodic => &["--appendonly", "yes", "--appendfsync", "everysec"],
            Level::Never => &["--appendonly", "no"],
        }
    }

    /// One line for table headers and chart captions.
    pub fn pairing(self) -> &'static str {
        match self {
            Level::Always => "strata --fsync always vs redis appendfsync always",
            Level::Periodic => "strata --fsync periodic:1000 vs redis appendfsync everysec",
            Level::Never => "strata --fsync never vs redis appendonly no",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Server {
    Strata,
    Redis,
}

impl Server {
    pub fn name(self) -> &'static str {
        match self {
            Server::Strata => "strata",
            Server::Redis => "redis",
        }
    }
}

/// One load that is run against every server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// `redis-benchmark -t set,get,mset` at this pipeline depth (1 = none);
    /// one run yields three tests.
    RedisBenchmark { pipeline: u32 },
    /// `strata-bench --workload ycsb-<letter>`.
    Ycsb(char),
}

/// Pipeline depth of the pipelined redis-benchmark run (`-P`).
pub const PIPELINE_DEPTH: u32 = 16;

/// Every load, in the order they run (and the order of the table rows).
pub const LOADS: [Load; 8] = [
    Load::RedisBenchmark { pipeline: 1 },
    Load::RedisBenchmark {
        pipeline: PIPELINE_DEPTH,
    },
    Load::Ycsb('a'),
    Load::Ycsb('b'),
    Load::Ycsb('c'),
    Load::Ycsb('d'),
    Load::Ycsb('e'),
    Load::Ycsb('f'),
];

impl Load {
    /// Whether `server` can run this load at all. YCSB-E is scans, which
    /// need Strata's `RANGE`; Redis has no ordered scan over plain keys.
    pub fn unsupported_reason(self, server: Server) -> Option<&'static str> {
        match (self, server) {
            (Load::Ycsb('e'), Server::Redis) => Some("n/a: redis has no RANGE (ordered scan)"),
            _ => None,
        }
    }
}

/// Name of a redis-benchmark test as it appears in our tables: the
/// lowercase command, plus `-P16` when pipelined. redis-benchmark calls
/// them `SET`, `GET`, `MSET (10 keys)`.
pub fn redis_benchmark_test_name(csv_name: &str, pipeline: u32) -> String {
    let command = csv_name
        .split_whitespace()
        .next()
        .unwrap_or(csv_name)
        .to_ascii_lowercase();
    if pipeline > 1 {
        format!("{command} -P{pipeline}")
    } else {
        command
    }
}

/// The result of one test against one server at one level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub level: Level,
    pub server: Server,
    /// e.g. `set`, `mset -P16`, `ycsb-a`.
    pub test: String,
    /// `redis-benchmark` or `strata-bench`.
    pub tool: String,
    /// None when the test could not run (see `note`).
    pub ops_per_s: Option<f64>,
    pub p50_latency_us: Option<f64>,
    pub p99_latency_us: Option<f64>,
    /// Why a number is missing or suspect (unsupported, failed, errors).
    pub note: Option<String>,
}

impl Measurement {
    pub fn missing(
        level: Level,
        server: Server,
        test: impl Into<String>,
        tool: &'static str,
        note: impl Into<String>,
    ) -> Measurement {
        Measurement {
            level,
            server,
            test: test.into(),
            tool: tool.to_string(),
            ops_per_s: None,
            p50_latency_us: None,
            p99_latency_us: None,
            note: Some(note.into()),
        }
    }
}
