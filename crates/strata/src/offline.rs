//! `strata check` and `strata repair`: work on a stopped server's data
//! directory, without the network. The work is in `strata_storage`
//! (`check.rs`); this is the operator-facing report and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use strata_storage::{CheckReport, RepairReport};

/// A cluster node's data directory holds this (`strata_server::run`
/// puts Raft snapshots there): how `repair` recognizes one.
const RAFT_SNAPSHOTS_DIR: &str = "raft-snapshots";

#[derive(clap::Args, Debug)]
pub struct DataDirArgs {
    /// The server's data directory (its --data-dir).
    #[arg(long, env = "STRATA_DATA_DIR")]
    data_dir: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct RepairArgs {
    #[command(flatten)]
    dir: DataDirArgs,
    /// Repair a cluster node's directory anyway. Without it, repair
    /// refuses one: cutting its journal forgets log entries the node
    /// acknowledged to the leader, which Raft's guarantees rely on;
    /// rebuild the node from its peers instead (README, Troubleshooting).
    #[arg(long)]
    cluster_node: bool,
}

/// Exit 0: clean. 1: damage found. 2: could not check.
pub fn check(args: &DataDirArgs) -> ExitCode {
    match strata_storage::check_data_dir(&args.data_dir) {
        Ok(report) => {
            print_check(&report);
            if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn print_check(r: &CheckReport) {
    println!(
        "journals: {} files, {} valid batches",
        r.journal_files, r.journal_batches
    );
    if let Some((path, size_bytes)) = &r.torn_tail {
        println!(
            "journal {}: incomplete last batch after byte {size_bytes} (a crash while writing it; \
             the next start drops it)",
            path.display()
        );
    }
    println!(
        "tables: {} files ({} bytes) in {} trees",
        r.table_files, r.table_bytes, r.trees
    );
    for d in &r.damaged {
        println!("DAMAGED {}: {}", d.path.display(), d.what);
    }
    if r.is_clean() {
        println!("ok: no damage found");
    } else {
        println!(
            "{} damaged file(s). A damaged journal: `strata repair --data-dir DIR`. \
             A damaged table: restore from a backup, or rebuild a cluster node from its peers \
             (README, Troubleshooting).",
            r.damaged.len()
        );
    }
}

/// Exit 0: repaired, or nothing to repair. 2: error (or a cluster node's
/// directory without `--cluster-node`).
pub fn repair(args: &RepairArgs) -> ExitCode {
    let dir = &args.dir.data_dir;
    if dir.join(RAFT_SNAPSHOTS_DIR).is_dir() && !args.cluster_node {
        eprintln!(
            "error: {} belongs to a cluster node: rebuild it from its peers instead \
             (remove it, move the directory aside, start it with --join; README, Troubleshooting), \
             or pass --cluster-node to cut its journal anyway",
            dir.display()
        );
        return ExitCode::from(2);
    }
    match strata_storage::repair_journals(dir, strata_storage::now_ms()) {
        Ok(report) => {
            print_repair(&report);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn print_repair(r: &RepairReport) {
    let Some(damage) = &r.damage else {
        println!("no damaged journal: nothing to repair");
        return;
    };
    println!("damaged: {}: {}", damage.path.display(), damage.what);
    for f in &r.files {
        match f.size_bytes_after {
            Some(after) => println!(
                "cut {} from {} to {after} bytes (copy: {})",
                f.path.display(),
                f.size_bytes_before,
                f.copy.display()
            ),
            None => println!(
                "removed {} ({} bytes, after the damage; copy: {})",
                f.path.display(),
                f.size_bytes_before,
                f.copy.display()
            ),
        }
    }
    if let Some(dir) = &r.quarantine_dir {
        println!(
            "originals kept in {}; the server can start now (writes after the damage are lost)",
            dir.display()
        );
    }
}
