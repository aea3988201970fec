//! Runs every load against every server, one server at a time.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::cli::Plan;
use crate::model::{KeyMode, Level, Load, Measurement, Server, loads, redis_benchmark_test_name};
use crate::parse::{parse_redis_benchmark_csv, parse_strata_bench_json};
use crate::process::{ServerProcess, command, run_captured, start_redis_like, start_strata};

/// The programs a run needs.
#[derive(Debug, Clone)]
pub struct Tools {
    pub strata: PathBuf,
    /// Only needed when the plan has YCSB loads.
    pub strata_bench: Option<PathBuf>,
    pub redis_benchmark: PathBuf,
    /// The binary of every peer that runs, in [`Server::PEERS`] order.
    pub peers: Vec<(Server, PathBuf)>,
}

impl Tools {
    /// Every server of a run, strata first.
    fn servers(&self) -> Vec<(Server, &Path)> {
        std::iter::once((Server::Strata, self.strata.as_path()))
            .chain(self.peers.iter().map(|(s, p)| (*s, p.as_path())))
            .collect()
    }
}

/// The order servers run in within one level of `round` (from 1): strata
/// first in odd rounds, last in even ones, so that neither side of a
/// ratio always runs on the machine the other has just warmed (or
/// dirtied).
pub fn server_order<T: Copy>(servers: &[T], round: u32) -> Vec<T> {
    let mut order = servers.to_vec();
    if round.is_multiple_of(2) {
        order.reverse();
    }
    order
}

fn start(kind: Server, binary: &Path, level: Level) -> Result<ServerProcess> {
    match kind {
        Server::Strata | Server::Baseline => start_strata(binary, level, kind),
        Server::Redis | Server::Valkey => start_redis_like(binary, level, kind),
    }
}

/// redis-benchmark's tests (`-t`), in the order it runs them.
pub const REDIS_BENCHMARK_TESTS: [&str; 3] = ["set", "get", "mset"];

/// The slowest rate we are prepared to wait for in a redis-benchmark run;
/// it sets the run's timeout. fsync-bound writes on a slow disk can be a
/// few hundred per second without pipelining or group commit.
const REDIS_BENCHMARK_OPS_PER_S_MIN: u64 = 200;
/// Slack on top of every computed timeout (start-up, connection set-up).
const TIMEOUT_SLACK: Duration = Duration::from_secs(60);
/// Same idea for strata-bench's pre-fill (`--load`), which pipelines.
const LOAD_KEYS_PER_S_MIN: u64 = 500;

fn redis_benchmark_timeout(plan: &Plan) -> Duration {
    let requests = plan.requests * REDIS_BENCHMARK_TESTS.len() as u64;
    TIMEOUT_SLACK + Duration::from_secs(requests / REDIS_BENCHMARK_OPS_PER_S_MIN)
}

fn strata_bench_timeout(plan: &Plan) -> Duration {
    TIMEOUT_SLACK
        + Duration::from_secs_f64(plan.warmup_s + plan.duration_s)
        + Duration::from_secs(plan.keyspace / LOAD_KEYS_PER_S_MIN)
}

/// Runs every load of `plan` against each server and level, `plan.rounds`
/// times; every failure becomes a measurement with a note rather than an
/// abort, so a long run always produces a table.
pub fn run_all(plan: &Plan, tools: &Tools) -> Vec<Measurement> {
    let mut measurements = Vec::new();
    let started = Instant::now();
    let servers = tools.servers();
    let loads = loads(&plan.loads, &plan.key_modes);
    let servers_total = plan.levels.len() * servers.len() * plan.rounds as usize;
    let mut server_index = 0;
    for round in 1..=plan.rounds {
        for &level in &plan.levels {
            // Back to back, so all sides of a ratio see the same machine state.
            for (kind, binary) in server_order(&servers, round) {
                server_index += 1;
                let mut server = match start(kind, binary, level) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        let note = format!("server did not start: {e}");
                        for &load in &loads {
                            measurements.extend(
                                missing_for_load(level, kind, load, &note)
                                    .into_iter()
                                    .map(|m| m.in_round(round)),
                            );
                        }
                        continue;
                    }
                };
                eprintln!(
                    "[{server_index}/{servers_total}] {}{} (pid {}, {}) at {:.0} s",
                    if plan.rounds > 1 {
                        format!("round {round}: ")
                    } else {
                        String::new()
                    },
                    server.name,
                    server.pid(),
                    server.addr,
                    started.elapsed().as_secs_f64()
                );
                for &load in &loads {
                    let t = Instant::now();
                    let got = measure(plan, tools, &server, level, kind, load);
                    for m in &got {
                        print_progress(m);
                    }
                    eprintln!("    ({:.1} s)", t.elapsed().as_secs_f64());
                    measurements.extend(got.into_iter().map(|m| m.in_round(round)));
                }
                server.stop();
            }
        }
    }
    measurements
}

fn print_progress(m: &Measurement) {
    eprintln!(
        "    {:<24} {:>10} ops/s  p99 {:>9}  {}",
        m.test,
        m.ops_per_s.map_or("-".into(), |v| format!("{v:.0}")),
        m.p99_latency_us
            .map_or("-".into(), |us| format!("{:.3} ms", us / 1000.0)),
        m.note.as_deref().unwrap_or("")
    );
}

fn missing_for_load(level: Level, server: Server, load: Load, note: &str) -> Vec<Measurement> {
    match load {
        Load::RedisBenchmark { pipeline, keys } => REDIS_BENCHMARK_TESTS
            .iter()
            .map(|t| {
                Measurement::missing(
                    level,
                    server,
                    redis_benchmark_test_name(t, pipeline, keys),
                    "redis-benchmark",
                    note,
                )
            })
            .collect(),
        Load::Ycsb(letter) => vec![Measurement::missing(
            level,
            server,
            format!("ycsb-{letter}"),
            "strata-bench",
            note,
        )],
    }
}

fn measure(
    plan: &Plan,
    tools: &Tools,
    server: &ServerProcess,
    level: Level,
    server_kind: Server,
    load: Load,
) -> Vec<Measurement> {
    if let Some(reason) = load.unsupported_reason(server_kind) {
        return missing_for_load(level, server_kind, load, &reason);
    }
    let result = match load {
        Load::RedisBenchmark { pipeline, keys } => {
            measure_redis_benchmark(plan, tools, server, (level, server_kind), pipeline, keys)
        }
        Load::Ycsb(letter) => {
            measure_ycsb(plan, tools, server, level, server_kind, letter).map(|m| vec![m])
        }
    };
    result.unwrap_or_else(|e| missing_for_load(level, server_kind, load, &format!("{e:#}")))
}

/// redis-benchmark's arguments for one run against `server`.
pub fn redis_benchmark_args(
    plan: &Plan,
    server: std::net::SocketAddr,
    pipeline: u32,
    keys: KeyMode,
) -> Vec<String> {
    let mut args = vec![
        "-h".to_string(),
        server.ip().to_string(),
        "-p".into(),
        server.port().to_string(),
        "-t".into(),
        REDIS_BENCHMARK_TESTS.join(","),
        "-c".into(),
        plan.connections.to_string(),
        "-n".into(),
        plan.requests.to_string(),
        "-P".into(),
        pipeline.to_string(),
        "--csv".into(),
    ];
    if keys == KeyMode::Random {
        // `key:__rand_int__` becomes a random number below -r per request.
        args.extend(["-r".into(), plan.random_keys.to_string()]);
    }
    args
}

fn measure_redis_benchmark(
    plan: &Plan,
    tools: &Tools,
    server: &ServerProcess,
    (level, server_kind): (Level, Server),
    pipeline: u32,
    keys: KeyMode,
) -> Result<Vec<Measurement>> {
    let mut cmd = command(
        &tools.redis_benchmark,
        redis_benchmark_args(plan, server.addr, pipeline, keys),
    );
    let finished = run_captured(&mut cmd, redis_benchmark_timeout(plan))?;
    if !finished.success() {
        anyhow::bail!("redis-benchmark: {}", finished.failure_summary());
    }
    let rows = parse_redis_benchmark_csv(&finished.stdout)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let timed = r.ops_per_s.is_finite();
            Measurement {
                level,
                server: server_kind,
                test: redis_benchmark_test_name(&r.test, pipeline, keys),
                tool: "redis-benchmark".into(),
                ops_per_s: Some(r.ops_per_s).filter(|_| timed),
                p50_latency_us: r.p50_latency_us,
                p99_latency_us: r.p99_latency_us,
                note: (!timed).then(|| {
                    "redis-benchmark reports rps inf: done within 1 ms, raise --requests".into()
                }),
                round: 1,
            }
        })
        .collect())
}

/// strata-bench's exit code for "the server lacks a command this workload
/// needs" (ycsb-e without RANGE).
const STRATA_BENCH_EXIT_UNSUPPORTED: i32 = 3;

fn measure_ycsb(
    plan: &Plan,
    tools: &Tools,
    server: &ServerProcess,
    level: Level,
    server_kind: Server,
    letter: char,
) -> Result<Measurement> {
    let workload = format!("ycsb-{letter}");
    let strata_bench = tools
        .strata_bench
        .as_ref()
        .context("no strata-bench binary (needed for YCSB loads)")?;
    let mut cmd = command(
        strata_bench,
        [
            "--addr".to_string(),
            server.addr.to_string(),
            "--workload".into(),
            workload.clone(),
            "--distribution".into(),
            "zipfian".into(),
            "--load".into(),
            "--keyspace".into(),
            plan.keyspace.to_string(),
            "--connections".into(),
            plan.connections.to_string(),
            "--threads".into(),
            plan.bench_threads.to_string(),
            "--duration-s".into(),
            plan.duration_s.to_string(),
            "--warmup-s".into(),
            plan.warmup_s.to_string(),
            "--format".into(),
            "json".into(),
            "--label".into(),
            format!("{}-{}", server_kind.name(), level.name()),
        ],
    );
    let finished = run_captured(&mut cmd, strata_bench_timeout(plan))?;
    if finished.status.and_then(|s| s.code()) == Some(STRATA_BENCH_EXIT_UNSUPPORTED) {
        return Ok(Measurement::missing(
            level,
            server_kind,
            workload,
            "strata-bench",
            format!("n/a: {}", finished.failure_summary()),
        ));
    }
    let run = match parse_strata_bench_json(&finished.stdout) {
        Ok(run) => run,
        Err(e) if finished.success() => return Err(e),
        Err(_) => anyhow::bail!("strata-bench: {}", finished.failure_summary()),
    };
    // A report with errors is kept, but flagged: its numbers may flatter.
    let mut problems = Vec::new();
    if run.errors > 0 {
        problems.push(format!("{} error replies of {} ops", run.errors, run.ops));
    }
    if run.failed_connections > 0 {
        problems.push(format!("{} failed connections", run.failed_connections));
    }
    if !finished.success() {
        problems.push(finished.failure_summary());
    }
    Ok(Measurement {
        level,
        server: server_kind,
        test: workload,
        tool: "strata-bench".into(),
        ops_per_s: Some(run.ops_per_s).filter(|_| run.ops > 0),
        p50_latency_us: run.p50_latency_us,
        p99_latency_us: run.p99_latency_us,
        note: (!problems.is_empty()).then(|| problems.join("; ")),
        round: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Args;
    use clap::Parser;

    #[test]
    fn strata_alternates_between_first_and_last() {
        let servers = [Server::Strata, Server::Redis, Server::Valkey];
        assert_eq!(server_order(&servers, 1), servers);
        assert_eq!(
            server_order(&servers, 2),
            [Server::Valkey, Server::Redis, Server::Strata]
        );
        assert_eq!(server_order(&servers, 3), servers);
    }

    #[test]
    fn random_keys_pass_r_and_single_key_does_not() {
        let plan = Args::parse_from(["strata-compare", "--random-keys", "777", "--requests", "9"])
            .plan()
            .unwrap();
        let addr = "127.0.0.1:6400".parse().unwrap();
        let random = redis_benchmark_args(&plan, addr, 16, KeyMode::Random).join(" ");
        assert!(random.contains("-p 6400"), "{random}");
        assert!(random.contains("-n 9 -P 16"), "{random}");
        assert!(random.ends_with("-r 777"), "{random}");
        let single = redis_benchmark_args(&plan, addr, 1, KeyMode::Single).join(" ");
        assert!(!single.contains("-r"), "{single}");
    }
}
