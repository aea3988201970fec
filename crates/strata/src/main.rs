//! `strata`: the server and the command-line client in one binary.
//!
//! This is the binary's edge: errors become `anyhow` reports and exit codes
//! here, and nowhere else.

mod backup;
mod cli;
mod offline;
mod search_cli;

/// mimalloc instead of glibc's malloc. Why: under YCSB-A the server spent
/// 9% of its network thread in glibc `malloc`/`free` (including
/// `malloc_consolidate`); see docs/perf-log/2026-11-23-allocator.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use strata_server::{ConfigLayer, ServerConfig};

#[derive(Parser, Debug)]
#[command(
    name = "strata",
    version,
    about = "Strata: a durable, Redis-compatible key-value store"
)]
struct Cli {
    /// Server address for client commands (before the command:
    /// `strata --addr HOST:PORT get k`).
    // Not `global`: a global flag is listed in `strata server --help`,
    // where it means nothing (the server's address is `--listen`).
    #[arg(long, env = "STRATA_ADDR", default_value = "127.0.0.1:7379")]
    addr: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server.
    #[command(after_help = UNITS_HELP)]
    Server(Box<ServerArgs>),
    /// Verify a stopped server's data directory: every journal, and every
    /// table file against its recorded checksum. Exit 0 clean, 1 damaged,
    /// 2 could not check.
    Check(offline::DataDirArgs),
    /// After a start refused over a damaged journal: copy the journals
    /// aside, then cut the damaged one at its last valid batch (losing the
    /// writes after it). Exit 0 repaired or nothing to do, 2 error.
    Repair(offline::RepairArgs),
    /// Online backups and restores: `save` a running server's store to a
    /// file (`strata --addr HOST:PORT backup save FILE`), `status` to
    /// verify a file, `restore` it into a new data directory.
    Backup {
        #[command(subcommand)]
        command: backup::BackupCommand,
    },
    /// Print a completion script for a shell: `strata completions bash >
    /// /etc/bash_completion.d/strata` (zsh: a `_strata` file in $fpath;
    /// fish: ~/.config/fish/completions/strata.fish).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    #[command(flatten)]
    Client(cli::ClientCommand),
}

const UNITS_HELP: &str = "Sizes (*-bytes*) take units: 64KiB, 256MiB, 1GiB, 10MB (a plain \
number is bytes). Durations (*-ms) too: 500ms, 10s, 2m, 1h (a plain number is milliseconds). \
The same in STRATA_* variables and the config file.";

#[derive(clap::Args, Debug)]
struct ServerArgs {
    /// TOML file with settings (same names as the flags, with underscores).
    #[arg(long, env = "STRATA_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Log line format on stderr: `text` for people, `json` (one object
    /// per line) for log shippers.
    #[arg(long, env = "STRATA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(flatten)]
    settings: ConfigLayer,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(args) => match run_server(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Check(args) => offline::check(&args),
        Command::Repair(args) => offline::repair(&args),
        Command::Backup { command } => backup::run(&cli.addr, command),
        Command::Completions { shell } => completions(shell),
        Command::Client(command) => cli::run(&cli.addr, command),
    }
}

/// Writes the completion script for `shell` to stdout; generated from the
/// same definitions as the parser, so it cannot fall behind it.
fn completions(shell: clap_complete::Shell) -> ExitCode {
    use clap::CommandFactory;
    use std::io::Write;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "strata", &mut script);
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&script).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // `strata completions bash | head` closes stdout early: not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: writing the completion script: {e}");
            ExitCode::from(2)
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

fn run_server(args: Box<ServerArgs>) -> anyhow::Result<()> {
    init_logging(args.log_format);
    allocator::keep_freed_memory_longer();
    strata_server::memory::set_allocator_probe(allocator::memory);
    // Flags and STRATA_* variables (clap merges those two, flags first)
    // override the file; the file overrides the defaults.
    let file = match &args.config {
        Some(path) => ConfigLayer::from_file(path)?,
        None => ConfigLayer::default(),
    };
    let config = ServerConfig::resolve(args.settings.over(file))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.io_threads)
        .enable_all()
        .thread_name("strata-io")
        .build()?;
    runtime.block_on(async {
        // Register the handlers before the server announces `ready`: a
        // signal that arrives right after must still mean "shut down
        // gracefully", not the default action (death by signal).
        let shutdown = shutdown_signal()?;
        strata_server::run(config, shutdown).await?;
        anyhow::Ok(())
    })?;
    Ok(())
}

mod allocator {
    //! One mimalloc setting for the server, and its memory counters.

    use std::ffi::{c_int, c_long};

    // mimalloc's C API (the library the `mimalloc` crate links).
    unsafe extern "C" {
        fn mi_option_get(option: c_int) -> c_long;
        fn mi_option_set(option: c_int, value: c_long);
        fn mi_process_info(
            elapsed_msecs: *mut usize,
            user_msecs: *mut usize,
            system_msecs: *mut usize,
            current_rss: *mut usize,
            peak_rss: *mut usize,
            current_commit: *mut usize,
            peak_commit: *mut usize,
            page_faults: *mut usize,
        );
    }

    /// What mimalloc holds from the OS (its committed bytes, now and at
    /// most), for INFO `used_memory` and `used_memory_peak`.
    pub(crate) fn memory() -> strata_server::memory::AllocatorMemory {
        let (mut current, mut peak) = (0usize, 0usize);
        // SAFETY: mimalloc writes the counters it is given and skips null
        // pointers; both outputs are valid, writable `usize`s.
        unsafe {
            mi_process_info(
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut current,
                &mut peak,
                std::ptr::null_mut(),
            )
        };
        strata_server::memory::AllocatorMemory {
            used_bytes: current as u64,
            peak_bytes: peak as u64,
            name: "mimalloc",
        }
    }

    /// The process's peak resident set size so far (the OS's figure, as
    /// mimalloc reads it), for `strata backup save`'s report.
    pub(crate) fn peak_rss_bytes() -> u64 {
        let mut peak = 0usize;
        // SAFETY: as in `memory`: one valid, writable output, nulls elsewhere.
        unsafe {
            mi_process_info(
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut peak,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        peak as u64
    }

    /// `mi_option_purge_delay` in mimalloc v3's `mi_option_t`, the version
    /// libmimalloc-sys 0.1.49 builds. Checked against its default below
    /// before it is set, so that a renumbered enum is never written blind.
    const MI_OPTION_PURGE_DELAY: c_int = 15;
    const PURGE_DELAY_DEFAULT_MS: c_long = 1_000;
    /// Freed memory goes back to the kernel after this long unused.
    const PURGE_DELAY_MS: c_long = 10_000;

    /// Why: with the default delay of 1 s, mimalloc returned pages to the
    /// kernel that the server needed again moments later, and each fault
    /// on them zeroed a fresh (often 2 MiB, transparent huge) page: on a
    /// 3-node cluster under pipelined SETs, 16,000 to 32,000 faults per
    /// 3 million SETs on the leader, and `clear_page_erms` up to 11% of its
    /// CPU. With 10 s: 290 to 2,000 faults, 3.5% less CPU on all nodes and
    /// 5% more SETs per second (docs/perf-log/2026-11-24-cluster-encoded-once.md,
    /// "mimalloc's purge delay").
    /// Memory still goes back to the kernel, 10 s after it was freed.
    pub(crate) fn keep_freed_memory_longer() {
        // An operator's own setting wins (mimalloc reads it itself).
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: both functions take and return integers only.
        // `mi_option_set` is a plain store into mimalloc's option table,
        // not synchronized: this runs before the tokio runtime or any other
        // thread of ours exists (logging starts none).
        let current = unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) };
        if current != PURGE_DELAY_DEFAULT_MS {
            tracing::warn!(
                current,
                "mimalloc's purge delay option is not where this build expects it; left as is"
            );
            return;
        }
        // SAFETY: as above.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    // The engine logs every flush at info, and openraft every election,
    // vote and membership step: ours is the useful level for both.
    // openraft also warns on every failed heartbeat and replication call
    // (ten lines a second for a peer that is down) and on every failed
    // progress update (one a second); the network layer logs
    // that once every few seconds per peer instead (replication/network.rs).
    // lsm-tree logs an ERROR on every read of a damaged block (thousands a
    // second under load); strata_storage logs the same error rate-limited,
    // with what to do (see its `corruption.rs`).
    // An empty RUST_LOG (`export RUST_LOG=`) means "not set", not "off".
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| EnvFilter::try_new(v).ok());
    let filter = from_env.unwrap_or_else(|| {
        EnvFilter::new(
            "info,fjall=warn,lsm_tree=warn,lsm_tree::table::block=off,openraft=warn,\
             openraft::core::heartbeat=error,openraft::replication=error,\
             openraft::engine::handler::replication_handler=error",
        )
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Registers SIGINT and SIGTERM handlers now; the returned future resolves
/// on the first of them.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => tracing::info!("SIGINT received"),
            _ = term.recv() => tracing::info!("SIGTERM received"),
        }
    })
}
