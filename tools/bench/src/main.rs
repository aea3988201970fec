//! `strata-bench`: a RESP load generator. It works against any RESP server
//! (Strata, Redis, Valkey, ...); only `ycsb-e` needs Strata's `RANGE`. With
//! `--target etcd` it sends the same operations to etcd v3's HTTP/JSON
//! gateway instead (see `etcd.rs`), so one tool measures both.
//!
//! ```text
//! strata-bench --workload set                                  # 10 s of SETs, 50 connections
//! strata-bench --workload get --load --pipeline 16             # pre-fill, then pipelined GETs
//! strata-bench --workload ycsb-a --distribution zipfian --load --duration-s 30
//! strata-bench --workload mset --batch 100 --requests 100000
//! strata-bench --workload ycsb-e --scan-length 10 --load --format json --label strata-always
//! strata-bench --addr 127.0.0.1:6379 --workload set --format csv --output redis.csv --label redis
//! strata-bench --target etcd --addr 127.0.0.1:2379 --workload get --load --keyspace 10000
//! ```
//!
//! How it measures: every connection is one tokio task that writes a
//! pipeline of `--pipeline` requests, then reads all their replies (as
//! `redis-benchmark -P` does). A request's latency runs from the write of
//! its pipeline to the parse of its own reply; read-modify-writes (ycsb-f)
//! span both their GET and SET. Each connection records into its own HDR
//! histograms, merged at the end. The first `--warmup-s` seconds are not
//! measured. Throughput is measured operations divided by the time from the
//! end of the warm-up to the last measured reply. The etcd target cannot
//! pipeline (HTTP/1.1): each connection has one request in flight.
//!
//! Keys are `key:` plus 12 zero-padded digits, so key order is index order
//! and `RANGE` scans are meaningful. Inserts (ycsb-d, ycsb-e) write new keys
//! after the keyspace. With `--seed` every connection's key and operation
//! stream is reproducible (insert numbering, shared by all connections, is
//! the only part that depends on timing).
//!
//! Exit codes: 0 success; 1 the run finished but a connection failed, the
//! load failed, or nothing was measured; 2 bad arguments or no connection;
//! 3 the workload is not supported by the server (ycsb-e without RANGE).

mod cli;
mod client;
mod commands;
mod etcd;
mod http;
mod keys;
mod report;
mod runner;
mod strata_http;
mod target;
mod values;
mod workload;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{Args, Format, Stop};
use crate::client::{error_text, is_unknown_command};
use crate::keys::{Distribution, Zipfian, key_bytes, stripe_start};
use crate::report::{LoadReport, Report, round1, round3};
use crate::runner::{
    PRECISE_HISTOGRAMS_CONNECTIONS_MAX, Plan, RunStop, Schedule, Shared, load_connection,
    run_connection,
};
use crate::target::{Conn, ConnectOptions};
use crate::values::{Pool, ValueKind, WordPool};
use crate::workload::Workload;

const EXIT_RUN_FAILED: u8 = 1;
const EXIT_SETUP_FAILED: u8 = 2;
const EXIT_UNSUPPORTED: u8 = 3;

/// Load-phase pipelines: at least this deep (whatever --pipeline is), as
/// long as a pipeline stays under [`LOAD_PIPELINE_BYTES_MAX`].
const LOAD_PIPELINE_MIN: u64 = 64;
const LOAD_PIPELINE_BYTES_MAX: u64 = 1024 * 1024;
/// Failed connections listed individually on stderr; the rest are counted.
const FAILURES_SHOWN_MAX: usize = 10;
/// Share of error replies above which we warn.
const ERROR_SHARE_WARN: f64 = 0.01;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(msg) = args.validate() {
        eprintln!("error: {msg}");
        return ExitCode::from(EXIT_SETUP_FAILED);
    }
    raise_fd_limit(args.connections);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        builder.worker_threads(threads as usize);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_SETUP_FAILED);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_SETUP_FAILED)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<u8> {
    let seed = args.seed.unwrap_or_else(rand::random);
    let sigfig = if args.connections <= PRECISE_HISTOGRAMS_CONNECTIONS_MAX {
        3
    } else {
        2
    };
    let zipf = (args.distribution == Distribution::Zipfian)
        .then(|| Zipfian::new(args.keyspace, args.zipf_theta));
    let latest_zipf =
        (args.workload == Workload::YcsbD).then(|| Zipfian::new(args.keyspace, args.zipf_theta));
    let value_size_bytes = usize::try_from(args.value_size).context("--value-size too large")?;
    let commands = match &args.commands_file {
        Some(path) => {
            let commands = commands::Commands::load(path)
                .with_context(|| format!("--commands-file {}", path.display()))?;
            eprintln!(
                "replaying {} commands from {}",
                commands.count(),
                path.display()
            );
            Some(Arc::new(commands))
        }
        None => None,
    };
    let plan = Arc::new(Plan {
        target: args.target,
        workload: args.workload,
        distribution: args.distribution,
        keyspace: args.keyspace,
        value_size_bytes,
        value_pool: (args.values == ValueKind::Random).then(|| Pool::new(value_size_bytes, seed)),
        word_pool: (args.values == ValueKind::Words).then(|| WordPool::new(seed)),
        commands,
        batch: args.batch,
        scan_length: args.scan_length,
        pipeline: args.pipeline as usize,
        connections: args.connections,
        seed,
        zipf,
        latest_zipf,
        histogram_sigfig: sigfig,
    });

    let mut conns = connect_all(&args).await?;

    if args.workload == Workload::YcsbE
        && let Some(Conn::Resp(conn)) = conns.first_mut()
    {
        // Probe RANGE once before loading or measuring anything, so a server
        // without it (Redis) gets a clear answer instead of 100% errors.
        let key = key_bytes(0);
        let reply = conn
            .request(&[b"RANGE".as_slice(), &key, &key, b"LIMIT", b"1"])
            .await
            .context("probing RANGE")?;
        if is_unknown_command(&reply) {
            eprintln!(
                "error: workload ycsb-e needs Strata's RANGE command, which the server at {} \
                 does not support ({}); ycsb-e is unsupported on this target",
                args.addr,
                error_text(&reply).unwrap_or_default()
            );
            return Ok(EXIT_UNSUPPORTED);
        }
    }

    let load = if args.load {
        let (conns_back, load, ok) = load_phase(conns, &plan, &args).await;
        if !ok {
            eprintln!("error: the load phase failed; not running the workload");
            return Ok(EXIT_RUN_FAILED);
        }
        conns = conns_back;
        Some(load)
    } else {
        None
    };

    // The measured phase.
    let shared = Arc::new(Shared::default());
    let start = Instant::now();
    let measure_start = start + Duration::from_secs_f64(args.warmup_s);
    let stop = match args.stop() {
        Stop::After(d) => RunStop::At(measure_start + d),
        Stop::Requests(n) => RunStop::Requests(n),
    };
    let schedule = Schedule {
        measure_start,
        stop,
    };
    let progress = run_progress(&args, &shared, start, measure_start);
    let handles: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(id, conn)| {
            tokio::spawn(run_connection(
                conn,
                id as u64,
                plan.clone(),
                shared.clone(),
                schedule,
            ))
        })
        .collect();
    let mut stats = Vec::with_capacity(handles.len());
    for handle in handles {
        stats.push(handle.await.context("a connection task panicked")?);
    }
    progress.finish();

    let last = stats.iter().filter_map(|s| s.last_completion).max();
    let duration_s = last.map_or(0.0, |t| {
        t.saturating_duration_since(measure_start).as_secs_f64()
    });
    let merged = report::merge(&stats, duration_s, sigfig);

    let failures: Vec<&String> = stats.iter().filter_map(|s| s.failure.as_ref()).collect();
    for failure in failures.iter().take(FAILURES_SHOWN_MAX) {
        eprintln!("error: {failure}");
    }
    if failures.len() > FAILURES_SHOWN_MAX {
        eprintln!(
            "error: ... and {} more connections stopped early",
            failures.len() - FAILURES_SHOWN_MAX
        );
    }
    let all = &merged.all;
    if all.ops > 0 && all.errors as f64 > ERROR_SHARE_WARN * all.ops as f64 {
        let sample = stats.iter().find_map(|s| s.first_error.clone());
        eprintln!(
            "warning: {} of {} operations ({:.1}%) failed (error reply or no reply){}",
            all.errors,
            all.ops,
            100.0 * all.errors as f64 / all.ops as f64,
            sample.map(|e| format!("; first: {e}")).unwrap_or_default()
        );
    }
    if all.ops == 0 {
        eprintln!("warning: no operation was measured");
    }
    let exit = if !failures.is_empty() || all.ops == 0 {
        EXIT_RUN_FAILED
    } else {
        0
    };

    let report = Report {
        label: args.label.clone(),
        target: args.addr.clone(),
        protocol: args.target.name(),
        workload: args.workload.name(),
        distribution: match (args.workload, args.distribution) {
            (Workload::YcsbD, _) => "latest",
            (_, Distribution::Uniform) => "uniform",
            (_, Distribution::Zipfian) => "zipfian",
            (_, Distribution::Sequential) => "sequential",
        },
        zipf_theta: (args.distribution == Distribution::Zipfian
            || args.workload == Workload::YcsbD)
            .then_some(args.zipf_theta),
        connections: args.connections,
        pipeline: args.pipeline,
        keyspace: args.keyspace,
        value_size_bytes: args.value_size,
        values: args.values.name(),
        batch: (args.workload == Workload::Mset).then_some(args.batch),
        scan_length: (args.workload == Workload::YcsbE).then_some(args.scan_length),
        seed,
        warmup_s: args.warmup_s,
        duration_s: round3(duration_s),
        load,
        ops: all.ops,
        errors: all.errors,
        ops_per_s: all.ops_per_s,
        latency_us: all.latency_us,
        by_op: merged.by_op,
        failed_connections: failures.len() as u64,
    };
    let mixed = args.workload.is_mixed();
    let text = match args.format {
        Format::Table => report::table(&report, mixed),
        Format::Csv => report::csv(&report, mixed),
        Format::Json => report::json(&report),
    };
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(exit)
}

/// Opens every connection before anything is sent, so all start together
/// and a wrong address fails fast.
async fn connect_all(args: &Args) -> anyhow::Result<Vec<Conn>> {
    let options = ConnectOptions {
        connect_timeout: Duration::from_secs_f64(args.connect_timeout_s),
        reply_timeout: Duration::from_secs_f64(args.reply_timeout_s),
        body_bytes_max: args.http_body_bytes_max(),
    };
    let target = args.target;
    let handles: Vec<_> = (0..args.connections)
        .map(|_| {
            let addr = args.addr.clone();
            tokio::spawn(async move { Conn::connect(target, &addr, options).await })
        })
        .collect();
    let mut conns = Vec::with_capacity(handles.len());
    let mut first_error = None;
    let mut failed = 0usize;
    for handle in handles {
        match handle.await.context("a connect task panicked")? {
            Ok(conn) => conns.push(conn),
            Err(err) => {
                failed += 1;
                first_error.get_or_insert(err);
            }
        }
    }
    if let Some(err) = first_error {
        bail!(
            "{failed} of {} connections failed; first: {err}",
            args.connections
        );
    }
    Ok(conns)
}

/// Pre-fills the keyspace: connection `i` writes its own contiguous stripe
/// with pipelined SETs (etcd: one put after the other). Returns the connections, the report and whether
/// every connection finished.
async fn load_phase(
    conns: Vec<Conn>,
    plan: &Arc<Plan>,
    args: &Args,
) -> (Vec<Conn>, LoadReport, bool) {
    let per_request_bytes = args.request_bytes_max().max(1);
    let depth = args.pipeline.max(
        LOAD_PIPELINE_MIN
            .min(LOAD_PIPELINE_BYTES_MAX / per_request_bytes)
            .max(1),
    ) as usize;
    let loaded = Arc::new(AtomicU64::new(0));
    let progress = {
        let (a, b) = (loaded.clone(), loaded.clone());
        Progress::start(
            args.keyspace,
            "load",
            None,
            move |_| a.load(Ordering::Relaxed),
            move || b.load(Ordering::Relaxed),
        )
    };
    let started = Instant::now();
    let n = conns.len() as u64;
    let handles: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(id, mut conn)| {
            let plan = plan.clone();
            let loaded = loaded.clone();
            let id = id as u64;
            let begin = stripe_start(plan.keyspace, id, n);
            let end = stripe_start(plan.keyspace, id + 1, n);
            tokio::spawn(async move {
                let stats = load_connection(&mut conn, id, &plan, begin, end, depth, &loaded).await;
                (conn, stats)
            })
        })
        .collect();
    let mut conns = Vec::new();
    let mut keys = 0;
    let mut errors = 0;
    let mut first_error = None;
    let mut ok = true;
    for handle in handles {
        match handle.await {
            Ok((conn, stats)) => {
                keys += stats.keys;
                errors += stats.errors;
                if first_error.is_none() {
                    first_error = stats.first_error;
                }
                match stats.failure {
                    Some(failure) => {
                        eprintln!("error: {failure}");
                        ok = false;
                    }
                    None => conns.push(conn),
                }
            }
            Err(err) => {
                eprintln!("error: a load task panicked: {err}");
                ok = false;
            }
        }
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    progress.finish();
    if errors > 0 {
        eprintln!(
            "warning: {errors} of {keys} load SETs got error replies{}",
            first_error
                .map(|e| format!("; first: {e}"))
                .unwrap_or_default()
        );
    }
    let report = LoadReport {
        keys,
        errors,
        duration_s: round3(elapsed_s),
        keys_per_s: if elapsed_s > 0.0 {
            round1(keys as f64 / elapsed_s)
        } else {
            0.0
        },
    };
    (conns, report, ok)
}

/// The progress bar of the measured phase: time-based for --duration-s,
/// count-based for --requests.
fn run_progress(
    args: &Args,
    shared: &Arc<Shared>,
    start: Instant,
    measure_start: Instant,
) -> Progress {
    let count = {
        let shared = shared.clone();
        move || shared.completed.load(Ordering::Relaxed)
    };
    match args.stop() {
        Stop::After(d) => {
            let len_ms = ((measure_start - start) + d).as_millis() as u64;
            let position =
                move |now: Instant| now.saturating_duration_since(start).as_millis() as u64;
            Progress::start(len_ms, "run", Some(measure_start), position, count)
        }
        Stop::Requests(n) => {
            let position = {
                let count = count.clone();
                move |_: Instant| count()
            };
            Progress::start(n, "run", Some(measure_start), position, count)
        }
    }
}

/// An indicatif bar on stderr, drawn only when stderr is a terminal, fed by
/// a tokio task that samples counters every 100 ms.
struct Progress {
    bar: Option<ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// `position(now)` places the bar; `count()` is the number of operations
    /// done, shown with its rate. Before `warmup_until` the phase reads
    /// "warmup".
    fn start(
        len: u64,
        phase: &'static str,
        warmup_until: Option<Instant>,
        position: impl Fn(Instant) -> u64 + Send + 'static,
        count: impl Fn() -> u64 + Send + 'static,
    ) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress {
                bar: None,
                ticker: None,
            };
        }
        let bar = ProgressBar::new(len);
        let style =
            ProgressStyle::with_template("{prefix:>6} [{elapsed_precise}] {wide_bar} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        let warming = warmup_until.is_some_and(|t| Instant::now() < t);
        bar.set_prefix(if warming { "warmup" } else { phase });
        let ticking = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(100));
            let mut last = (Instant::now(), 0u64);
            loop {
                interval.tick().await;
                let now = Instant::now();
                let done = count();
                let dt_s = now.saturating_duration_since(last.0).as_secs_f64();
                let rate = if dt_s > 0.0 {
                    done.saturating_sub(last.1) as f64 / dt_s
                } else {
                    0.0
                };
                last = (now, done);
                let warming = warmup_until.is_some_and(|t| now < t);
                ticking.set_prefix(if warming { "warmup" } else { phase });
                ticking.set_position(position(now));
                ticking.set_message(format!("{done} done, {rate:.0}/s"));
            }
        });
        Progress {
            bar: Some(bar),
            ticker: Some(ticker),
        }
    }

    fn finish(self) {
        if let Some(ticker) = self.ticker {
            ticker.abort();
        }
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Each connection needs a file descriptor; the common soft limit of 1024
/// would make more connections fail with EMFILE. Raise the soft limit
/// towards the hard limit if needed (best effort).
fn raise_fd_limit(connections: u64) {
    let wanted = connections + 64;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        if limit.rlim_cur >= wanted as libc::rlim_t {
            return;
        }
        limit.rlim_cur = (wanted as libc::rlim_t).min(limit.rlim_max);
        let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}
