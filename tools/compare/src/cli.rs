//! Command-line options.

use std::path::PathBuf;

use clap::Parser;

use crate::model::Level;

/// Benchmarks strata against redis-server side by side, one server at a
/// time, at three durability levels; prints strata ÷ redis ratios and
/// writes JSON, markdown and SVG charts.
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
        })
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
}
