//! Runs every load against every server, one server at a time.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::cli::Plan;
use crate::model::{LOADS, Level, Load, Measurement, Server, redis_benchmark_test_name};
use crate::parse::{parse_redis_benchmark_csv, parse_strata_bench_json};
use crate::process::{ServerProcess, command, run_captured, start_redis, start_strata};

/// The programs a run needs.
#[derive(Debug, Clone)]
pub struct Tools {
    pub strata: PathBuf,
    pub strata_bench: PathBuf,
    pub redis_server: PathBuf,
    pub redis_benchmark: PathBuf,
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

/// Runs every load of `plan` against each server and level; every
/// failure becomes a measurement with a note rather than an abort, so a
/// long run always produces a table.
pub fn run_all(plan: &Plan, tools: &Tools) -> Vec<Measurement> {
    let mut measurements = Vec::new();
    let started = Instant::now();
    let servers_total = plan.levels.len() * 2;
    let mut server_index = 0;
    for &level in &plan.levels {
        // Back to back, so both sides of a ratio see the same machine state.
        for server_kind in [Server::Strata, Server::Redis] {
            server_index += 1;
            let server = match server_kind {
                Server::Strata => start_strata(&tools.strata, level),
                Server::Redis => start_redis(&tools.redis_server, level),
            };
            let mut server = match server {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    for load in LOADS {
                        measurements.extend(missing_for_load(
                            level,
                            server_kind,
                            load,
                            &format!("server did not start: {e}"),
                        ));
                    }
                    continue;
                }
            };
            eprintln!(
                "[{server_index}/{servers_total}] {} (pid {}, {}) at {:.0} s",
                server.name,
                server.pid(),
                server.addr,
                started.elapsed().as_secs_f64()
            );
            for load in LOADS {
                let t = Instant::now();
                let got = measure(plan, tools, &server, level, server_kind, load);
                for m in &got {
                    eprintln!(
                        "    {:<10} {:>10} ops/s  p99 {:>9}  {}",
                        m.test,
                        m.ops_per_s.map_or("-".into(), |v| format!("{v:.0}")),
                        m.p99_latency_us
                            .map_or("-".into(), |us| format!("{:.3} ms", us / 1000.0)),
                        m.note.as_deref().unwrap_or("")
                    );
                }
                eprintln!("    ({:.1} s)", t.elapsed().as_secs_f64());
                measurements.extend(got);
            }
            server.stop();
        }
    }
    measurements
}

fn missing_for_load(level: Level, server: Server, load: Load, note: &str) -> Vec<Measurement> {
    match load {
        Load::RedisBenchmark { pipeline } => REDIS_BENCHMARK_TESTS
            .iter()
            .map(|t| {
                Measurement::missing(
                    level,
                    server,
                    redis_benchmark_test_name(t, pipeline),
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
        return missing_for_load(level, server_kind, load, reason);
    }
    let result = match load {
        Load::RedisBenchmark { pipeline } => {
            measure_redis_benchmark(plan, tools, server, level, server_kind, pipeline)
        }
        Load::Ycsb(letter) => {
            measure_ycsb(plan, tools, server, level, server_kind, letter).map(|m| vec![m])
        }
    };
    result.unwrap_or_else(|e| missing_for_load(level, server_kind, load, &format!("{e:#}")))
}

fn measure_redis_benchmark(
    plan: &Plan,
    tools: &Tools,
    server: &ServerProcess,
    level: Level,
    server_kind: Server,
    pipeline: u32,
) -> Result<Vec<Measurement>> {
    let mut cmd = command(
        &tools.redis_benchmark,
        [
            "-h".to_string(),
            server.addr.ip().to_string(),
            "-p".into(),
            server.addr.port().to_string(),
            "-t".into(),
            REDIS_BENCHMARK_TESTS.join(","),
            "-c".into(),
            plan.connections.to_string(),
            "-n".into(),
            plan.requests.to_string(),
            "-P".into(),
            pipeline.to_string(),
            "--csv".into(),
        ],
    );
    let finished = run_captured(&mut cmd, redis_benchmark_timeout(plan))?;
    if !finished.success() {
        anyhow::bail!("redis-benchmark: {}", finished.failure_summary());
    }
    let rows = parse_redis_benchmark_csv(&finished.stdout)?;
    Ok(rows
        .into_iter()
        .map(|r| Measurement {
            level,
            server: server_kind,
            test: redis_benchmark_test_name(&r.test, pipeline),
            tool: "redis-benchmark".into(),
            ops_per_s: Some(r.ops_per_s),
            p50_latency_us: r.p50_latency_us,
            p99_latency_us: r.p99_latency_us,
            note: None,
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
    let mut cmd = command(
        &tools.strata_bench,
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
    })
}
