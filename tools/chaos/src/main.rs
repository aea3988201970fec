//! `strata-chaos`: runs seeded chaos runs against a Strata cluster and
//! checks linearizability and durability. See the crate README.
//!
//! Exit status: 0 every seed passed, 1 some seed failed a check, 2 a run
//! could not be carried out (setup problem: binary missing, no leader at
//! start, ...).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use strata_chaos::run::{ChaosConfig, FaultKind, KeepDir, run};

#[derive(Parser, Debug)]
#[command(
    name = "strata-chaos",
    version,
    about = "Fault injection + linearizability checking for a Strata Raft cluster"
)]
struct Args {
    /// Run exactly this seed (decimal or 0x-hex); replays its fault
    /// schedule.
    #[arg(long, value_parser = parse_u64, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run this many seeds: --first-seed, --first-seed + 1, ...
    #[arg(long)]
    seeds: Option<u64>,
    /// First seed of --seeds (default: derived from the clock, printed).
    #[arg(long, value_parser = parse_u64)]
    first_seed: Option<u64>,
    /// Seconds of client load and faults per seed.
    #[arg(long, default_value_t = 30)]
    duration_s: u64,
    /// Nodes in the cluster (3 or 5 make sense).
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Concurrent client threads.
    #[arg(long, default_value_t = 5)]
    clients: u64,
    /// Register keys (SET/GET/DEL).
    #[arg(long, default_value_t = 3)]
    registers: u64,
    /// Counter keys (INCR/GET).
    #[arg(long, default_value_t = 2)]
    counters: u64,
    /// The `strata` binary (default: `strata` next to this program).
    #[arg(long)]
    strata_bin: Option<PathBuf>,
    /// Fault kinds to use, comma-separated: partition, oneway, delay, loss,
    /// kill, pause, powerloss (default: all). powerloss needs `cc` to build
    /// its LD_PRELOAD shim; without it, it is dropped with a notice.
    #[arg(long, value_delimiter = ',')]
    faults: Option<Vec<String>>,
    #[arg(long, default_value_t = 50)]
    heartbeat_ms: u64,
    #[arg(long, default_value_t = 300)]
    election_timeout_ms: u64,
    #[arg(long, default_value_t = 1_000)]
    forward_timeout_ms: u64,
    /// Snapshot every N applied entries (small, so that lagging nodes are
    /// brought back by snapshot installs).
    #[arg(long, default_value_t = 200)]
    snapshot_logs: u64,
    /// --fsync of the nodes (server default if not given: always). With
    /// `never`, powerloss faults may lose acknowledged writes (a self-test
    /// of the fault; expect FAIL).
    #[arg(long)]
    fsync: Option<String>,
    /// Keep run directories (data, logs, history.txt): always, on-failure,
    /// never.
    #[arg(long, default_value = "on-failure")]
    keep_dir: String,
    /// Put run directories here instead of a temp dir.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Search-step budget of the linearizability check per key.
    #[arg(long, default_value_t = strata_chaos::checker::DEFAULT_STEP_BUDGET)]
    check_budget: u64,
    /// Do not print faults as they happen.
    #[arg(long)]
    quiet: bool,
    /// Self-test of the checker: clients read with READONLY (local reads,
    /// allowed to be stale). With partitions, runs should FAIL.
    #[arg(long)]
    stale_reads: bool,
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let parsed = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|e| format!("{s}: {e}"))
}

fn default_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("strata-chaos"));
    exe.with_file_name(format!("strata{}", std::env::consts::EXE_SUFFIX))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let bin = args.strata_bin.clone().unwrap_or_else(default_bin);
    if !bin.is_file() {
        eprintln!(
            "error: strata binary {} not found (build it: cargo build --release -p strata, or pass --strata-bin)",
            bin.display()
        );
        return ExitCode::from(2);
    }
    if !strata_chaos::cluster::supports_cluster(&bin) {
        eprintln!(
            "error: {} has no cluster support (`strata server --help` lists no --node-id)",
            bin.display()
        );
        return ExitCode::from(2);
    }
    let keep_dir = match args.keep_dir.as_str() {
        "always" => KeepDir::Always,
        "on-failure" => KeepDir::OnFailure,
        "never" => KeepDir::Never,
        other => {
            eprintln!("error: --keep-dir {other}: expected always, on-failure or never");
            return ExitCode::from(2);
        }
    };
    let faults = match &args.faults {
        None => FaultKind::ALL.to_vec(),
        Some(names) => {
            let mut kinds = Vec::new();
            for name in names {
                match FaultKind::parse(name.trim()) {
                    Some(k) => kinds.push(k),
                    None => {
                        eprintln!("error: unknown fault kind {name:?}");
                        return ExitCode::from(2);
                    }
                }
            }
            kinds
        }
    };
    let seeds: Vec<u64> = match (args.seed, args.seeds) {
        (Some(seed), _) => vec![seed],
        (None, n) => {
            let first = args.first_seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(1)
            });
            (0..n.unwrap_or(1)).map(|i| first.wrapping_add(i)).collect()
        }
    };
    println!(
        "strata-chaos: {} seed(s) from {}, {} s each, {} nodes, {} clients, faults {:?}, bin {}",
        seeds.len(),
        seeds[0],
        args.duration_s,
        args.nodes,
        args.clients,
        faults.iter().map(|k| k.name()).collect::<Vec<_>>(),
        bin.display()
    );
    let mut passed = Vec::new();
    let mut failed = Vec::new();
    let mut errors = Vec::new();
    for seed in seeds {
        let mut config = ChaosConfig::new(&bin, seed, Duration::from_secs(args.duration_s));
        config.nodes = args.nodes;
        config.clients = args.clients;
        config.registers = args.registers;
        config.counters = args.counters;
        config.heartbeat_ms = args.heartbeat_ms;
        config.election_timeout_ms = args.election_timeout_ms;
        config.forward_timeout_ms = args.forward_timeout_ms;
        config.snapshot_logs = args.snapshot_logs;
        config.fsync = args.fsync.clone();
        config.faults = faults.clone();
        config.keep_dir = keep_dir;
        config.base_dir = args.dir.clone();
        config.check_budget = args.check_budget;
        config.verbose = !args.quiet;
        config.stale_reads = args.stale_reads;
        println!(
            "--- seed {seed} (replay: strata-chaos --seed {seed} --duration-s {} --nodes {}) ---",
            args.duration_s, args.nodes
        );
        match run(&config) {
            Ok(report) => {
                print!("{report}");
                if report.pass {
                    passed.push(seed);
                } else {
                    failed.push(seed);
                }
            }
            Err(e) => {
                println!("seed {seed}: ERROR (run not carried out): {e:#}");
                errors.push(seed);
            }
        }
    }
    println!(
        "summary: {} passed, {} failed, {} errors{}{}",
        passed.len(),
        failed.len(),
        errors.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!("; failing seeds: {failed:?}")
        },
        if errors.is_empty() {
            String::new()
        } else {
            format!("; seeds with errors: {errors:?}")
        }
    );
    if !failed.is_empty() {
        ExitCode::from(1)
    } else if !errors.is_empty() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
