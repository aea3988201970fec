//! `strata-compare`: see the library docs and `strata-compare --help`.
//! Usually run through `bench/compare`, which builds everything in release.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result, bail};
use clap::Parser;

use strata_compare::cli::{Args, Plan};
use strata_compare::model::{KeyMode, LoadKind, Server};
use strata_compare::process::{
    VALKEY_VERSION_PREFIX, ensure_redis, ensure_valkey, server_version_number, version_of,
};
use strata_compare::report::{RunInfo, read_saved, utc_timestamp, write_all};
use strata_compare::runner::{Tools, run_all};
use strata_compare::table::{ratio_rows, render_text};

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `name` next to this executable (both are built into the same target
/// directory), unless `given`.
fn sibling_binary(given: &Option<PathBuf>, name: &str) -> Result<PathBuf> {
    let path = match given {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .context("locating this executable")?
            .with_file_name(name),
    };
    if !path.is_file() {
        bail!(
            "{} not found; build it with `cargo build --release -p {name}` (bench/compare does) or pass --{name} PATH",
            path.display()
        );
    }
    Ok(path)
}

fn replot(args: &Args, json: &Path) -> Result<()> {
    let saved = read_saved(json)?;
    let rows = ratio_rows(&saved.measurements);
    print!("{}", render_text(&rows));
    println!();
    for path in write_all(&args.out, &saved.run, &saved.measurements, &rows)? {
        println!("wrote {}", display_relative(&path));
    }
    Ok(())
}

/// `--valkey PATH`: any version is accepted, with a warning unless 8.1.
fn given_valkey(path: PathBuf) -> Result<PathBuf> {
    if !path.is_file() {
        bail!("--valkey {} is not a file", path.display());
    }
    let version = version_of(&path);
    if !server_version_number(&version).is_some_and(|v| v.starts_with(VALKEY_VERSION_PREFIX)) {
        eprintln!(
            "warning: --valkey {} is {version:?}, not {VALKEY_VERSION_PREFIX}x",
            path.display()
        );
    }
    Ok(path)
}

/// The programs of `plan`, finding (or installing) the peers. Valkey asked
/// for by default but not available is dropped from `plan.peers` and
/// reported in the returned notes, loudly; asked for by name, it is an
/// error.
fn find_tools(args: &Args, plan: &mut Plan) -> Result<(Tools, Vec<String>)> {
    let strata = sibling_binary(&args.strata, "strata")?;
    let strata_bench = if plan.loads.contains(&LoadKind::Ycsb) {
        Some(sibling_binary(&args.strata_bench, "strata-bench")?)
    } else {
        None
    };
    let (redis_server, redis_benchmark) = ensure_redis()?;
    let mut peers = Vec::new();
    let mut skipped = Vec::new();
    for &peer in &plan.peers {
        let path = match peer {
            Server::Redis => redis_server.clone(),
            Server::Valkey => match args.valkey.clone().map_or_else(ensure_valkey, given_valkey) {
                Ok(path) => path,
                Err(e) if !args.valkey_required() => {
                    eprintln!("warning: valkey is skipped: {e:#}");
                    skipped.push(format!("valkey ({e:#})"));
                    continue;
                }
                Err(e) => return Err(e),
            },
            Server::Baseline => {
                let path = args.baseline.clone().context("--baseline is missing")?;
                if !path.is_file() {
                    bail!("--baseline {} is not a file", path.display());
                }
                path
            }
            Server::Strata => continue,
        };
        peers.push((peer, path));
    }
    plan.peers = peers.iter().map(|(s, _)| *s).collect();
    let tools = Tools {
        strata,
        strata_bench,
        redis_benchmark,
        peers,
    };
    Ok((tools, skipped))
}

fn run(args: &Args) -> Result<()> {
    if let Some(json) = &args.replot {
        return replot(args, json);
    }
    if let Some(report) = &args.plot_data_size {
        let path = strata_compare::data_size::plot_report(report)?;
        println!("wrote {}", display_relative(&path));
        return Ok(());
    }
    let mut plan = args.plan().map_err(anyhow::Error::msg)?;
    let (tools, skipped) = find_tools(args, &mut plan)?;
    let peer_path = |s: Server| tools.peers.iter().find(|(p, _)| *p == s).map(|(_, p)| p);
    let started_at = SystemTime::now();
    let started = Instant::now();
    eprintln!("strata-compare: {}", describe(&plan));

    let measurements = run_all(&plan, &tools);
    let rows = ratio_rows(&measurements);
    println!();
    print!("{}", render_text(&rows));
    for s in &skipped {
        println!("not run: {s}");
    }

    let info = RunInfo {
        timestamp_utc: utc_timestamp(started_at),
        command: std::iter::once("bench/compare".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        os: os_description(),
        strata_version: version_of(&tools.strata),
        redis_server_version: peer_path(Server::Redis).map_or_else(String::new, |p| version_of(p)),
        redis_benchmark_version: version_of(&tools.redis_benchmark),
        valkey_server_version: peer_path(Server::Valkey).map(|p| version_of(p)),
        baseline: peer_path(Server::Baseline)
            .map(|p| format!("{} ({})", p.display(), version_of(p))),
        skipped,
        plan,
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    let written = write_all(&args.out, &info, &measurements, &rows)?;
    println!();
    for path in &written {
        println!("wrote {}", display_relative(path));
    }
    println!("total {:.0} s", info.elapsed_s);
    if measurements.iter().all(|m| m.ops_per_s.is_none()) {
        bail!("no test produced a result");
    }
    Ok(())
}

/// One line on what this run will do.
fn describe(plan: &Plan) -> String {
    let keys: Vec<String> = plan
        .key_modes
        .iter()
        .map(|k| match k {
            KeyMode::Random => format!("on {} random keys", plan.random_keys),
            KeyMode::Single => "on a single key".to_string(),
        })
        .collect();
    format!(
        "levels {:?}, peers {:?}, {} round(s), {} requests per redis-benchmark test {}, {} s per YCSB run",
        plan.levels.iter().map(|l| l.name()).collect::<Vec<_>>(),
        plan.peers.iter().map(|p| p.name()).collect::<Vec<_>>(),
        plan.rounds,
        plan.requests,
        keys.join(" and "),
        plan.duration_s
    )
}

fn os_description() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!(" {}", s.trim()))
        .unwrap_or_default();
    format!("{}{kernel}", std::env::consts::OS)
}

fn display_relative(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}
