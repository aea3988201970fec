//! `strata-compare`: see the library docs and `strata-compare --help`.
//! Usually run through `bench/compare`, which builds everything in release.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result, bail};
use clap::Parser;

use strata_compare::cli::Args;
use strata_compare::process::{ensure_redis, version_of};
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

fn run(args: &Args) -> Result<()> {
    if let Some(json) = &args.replot {
        return replot(args, json);
    }
    if let Some(report) = &args.plot_data_size {
        let path = strata_compare::data_size::plot_report(report)?;
        println!("wrote {}", display_relative(&path));
        return Ok(());
    }
    let plan = args.plan().map_err(anyhow::Error::msg)?;
    let strata = sibling_binary(&args.strata, "strata")?;
    let strata_bench = sibling_binary(&args.strata_bench, "strata-bench")?;
    let (redis_server, redis_benchmark) = ensure_redis()?;
    let tools = Tools {
        strata,
        strata_bench,
        redis_server,
        redis_benchmark,
    };
    let started_at = SystemTime::now();
    let started = Instant::now();
    eprintln!(
        "strata-compare: levels {:?}, {} requests per redis-benchmark test, {} s per YCSB run",
        plan.levels.iter().map(|l| l.name()).collect::<Vec<_>>(),
        plan.requests,
        plan.duration_s
    );

    let measurements = run_all(&plan, &tools);
    let rows = ratio_rows(&measurements);
    println!();
    print!("{}", render_text(&rows));

    let info = RunInfo {
        timestamp_utc: utc_timestamp(started_at),
        command: std::iter::once("bench/compare".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        os: os_description(),
        strata_version: version_of(&tools.strata),
        redis_server_version: version_of(&tools.redis_server),
        redis_benchmark_version: version_of(&tools.redis_benchmark),
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
