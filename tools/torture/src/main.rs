//! `strata-torture`: a long-running kill -9 durability torture for a strata
//! server.
//!
//! # What it does
//!
//! It starts `strata server` (on `127.0.0.1:0`, a fresh temp data dir,
//! `--fsync always` unless told otherwise) and repeats a cycle:
//!
//! 1. `--writers` connections write concurrently, one request at a time
//!    each: SET of a new key, MSET of 2–8 new keys, DEL of a key known to
//!    exist (from this cycle or an earlier one), INCR of the writer's own
//!    counter. Every write is logged before it is sent and marked
//!    acknowledged only when its complete success reply has arrived.
//! 2. After a random (seeded) `--kill-min-ms`..`--kill-max-ms`, the server
//!    gets SIGKILL. The write each writer had in flight is unacknowledged:
//!    it may or may not have been applied.
//! 3. Sometimes (`--recovery-kill-pct`) the server is started and killed
//!    again while it is still recovering.
//! 4. It restarts on the same data dir; the time to the `ready` line and to
//!    the first successful GET is recorded.
//! 5. It verifies. Every key except the counters is written at most once
//!    and its value is a function of its name, so every key is either absent
//!    or holds exactly that value, acknowledged or not. Then:
//!    - every acknowledged SET / MSET is present (else **lost**);
//!    - no MSET is partly applied, acknowledged or not (else **torn**);
//!    - every acknowledged DEL stays deleted; a counter is at least its last
//!      acknowledged INCR and at most the INCRs sent (never goes backwards);
//!      no value is one that was never written; keys seen after an earlier
//!      restart are unchanged (a random sample each cycle); DBSIZE equals
//!      the exact number of keys the tool knows exist; an INCR answers
//!      exactly the previous value + 1; a DEL of a key known to exist
//!      answers 1; the server never exits by itself and always comes back.
//!
//! At the end, every key ever written is checked once more, and a full SCAN
//! must find exactly the expected keys (no phantoms). Any violation prints
//! the seed, the cycle and the exact key, keeps the data dir, and makes the
//! exit status 1 (2 for a problem of the tool or its setup).
//!
//! # What it covers
//!
//! A crash of the server *process* at an arbitrary instruction: SIGKILL
//! cannot be caught, so the process stops wherever it is: in the middle of
//! parsing, of applying a group, of the journal `write(2)`, between the
//! write and the `fdatasync`, while answering, or inside the engine's
//! background work. With a small memtable
//! (`--server-arg=--memtable-size-bytes=1048576`) flushes and compactions
//! run every few cycles, and the report counts how many kills landed inside
//! one (read from the engine's debug log; best effort). The extra kills
//! during recovery cover a crash while the journal is being replayed.
//!
//! # What it cannot cover (on an ordinary machine)
//!
//! A killed process leaves the kernel's page cache intact: everything it
//! had `write(2)`-n still reaches the disk. So this tool does **not** test
//! that acknowledged writes were `fdatasync`-ed: it passes with
//! `--fsync never` too. Not covered:
//!
//! - power loss or a kernel crash (losing the page cache): the only test of
//!   `--fsync always` vs `periodic`/`never`;
//! - torn or reordered sector writes, lost or misdirected writes, bit rot;
//! - a full disk (ENOSPC) and failing `write`/`fsync` (EIO), i.e. the
//!   server's "read-only after a failed fsync" path.
//!
//! How one could (none of this is possible without root/FUSE, and none of
//! it was run here):
//!
//! - LazyFS (a FUSE file system with its own page cache): put `--data-dir`
//!   on a LazyFS mount and pass `--after-kill-cmd 'echo lazyfs::clear-cache
//!   > /tmp/faults.fifo'`; every kill then also loses whatever was not
//!   fsynced, like a power cut, and `--fsync never` should start failing.
//!   LazyFS can also inject torn writes (`torn-op`, `torn-seq`).
//! - device-mapper: `dm-flakey` with `drop_writes` (switch the table after
//!   the kill, unmount, remount: unflushed writes are gone) or
//!   `error_writes` (EIO), `dm-log-writes` + `replay-log` to recover from
//!   every flush point of a recorded run, `dm-error` for EIO.
//! - a VM (QEMU/KVM, disk cache mode that honours flushes such as
//!   `cache=none`) killed or reset from the host: the guest's page cache
//!   dies with it, what the guest fsynced survives.
//! - ENOSPC: a small loop device or tmpfs as the data dir.
//!
//! # Replay
//!
//! `--seed` fixes the kill delays, the recovery kills and each writer's
//! choice of operations. How many writes fit before a kill, the thread
//! interleaving and the instruction the kill hits are timing, so a replay
//! re-runs the same scenario, not the same execution; a violation's report
//! names the cycle and the exact key, and the data dir is kept to inspect.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use strata_torture::report::{cycle_line, summary_table};
use strata_torture::{Config, DEFAULT_SERVER_LOG_FILTER, Event, run};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
}

/// kill -9 a strata server under concurrent writers, over and over, and
/// verify after every restart that no acknowledged write was lost and no
/// batch is torn.
#[derive(Debug, Parser)]
#[command(name = "strata-torture", version)]
struct Args {
    /// The strata binary [default: `strata` next to this executable].
    #[arg(long, value_name = "PATH")]
    strata: Option<PathBuf>,
    /// Data directory; must be absent or empty, and is kept [default: a
    /// fresh temp dir, removed at the end unless --keep or a failure].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Keep the temp dir (data and server log) even if the run passes.
    #[arg(long)]
    keep: bool,
    /// The server's --fsync mode (always, periodic:<ms>, never).
    #[arg(long, default_value = "always")]
    fsync: String,
    /// Extra argument for `strata server` (repeatable), e.g.
    /// --server-arg=--memtable-size-bytes=1048576. --listen, --text-listen,
    /// --data-dir and --fsync are set by the tool.
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Concurrent writer connections.
    #[arg(long, default_value_t = 8)]
    writers: usize,
    /// Seed (decimal or 0x-hex) [default: random, printed].
    #[arg(long, value_parser = parse_seed)]
    seed: Option<u64>,
    /// Shortest time the writers run before the kill.
    #[arg(long, default_value_t = 50)]
    kill_min_ms: u64,
    /// Longest time the writers run before the kill.
    #[arg(long, default_value_t = 500)]
    kill_max_ms: u64,
    /// Number of kill/restart cycles [default: 20, or unlimited with
    /// --duration-s].
    #[arg(long)]
    cycles: Option<u32>,
    /// Start no new cycle after this many seconds.
    #[arg(long)]
    duration_s: Option<u64>,
    /// Largest value written; one value in 8 is 64 bytes..this, the rest
    /// under 64 bytes. Raise it to fill small memtables faster (it must fit
    /// the server's --value-size-bytes-max).
    #[arg(long, default_value_t = 4096)]
    value_bytes_max: usize,
    /// Earlier single keys re-checked per cycle (plus a quarter as many
    /// MSET batches); everything is re-checked at the end anyway.
    #[arg(long, default_value_t = 1000)]
    sample_keys: usize,
    /// Chance per cycle, in percent, of one more kill during recovery.
    #[arg(long, default_value_t = 10)]
    recovery_kill_pct: u32,
    /// How long a (re)start may take to print its ready line.
    #[arg(long, default_value_t = 60)]
    ready_timeout_s: u64,
    /// Go on after a failing cycle instead of stopping there.
    #[arg(long)]
    keep_going: bool,
    /// RUST_LOG for the server (the default enables the engine messages the
    /// flush/compaction counts are read from).
    #[arg(long, default_value = DEFAULT_SERVER_LOG_FILTER)]
    server_log_filter: String,
    /// Shell command run after every kill, before the restart, with the data
    /// dir in $STRATA_TORTURE_DATA_DIR; e.g. drop LazyFS's unsynced pages to
    /// turn each kill into a simulated power loss (see the docs).
    #[arg(long, value_name = "CMD")]
    after_kill_cmd: Option<String>,
    /// Also keep a search index over every key (FT.CREATE at the first
    /// start) and check after every restart that its document count
    /// agrees with DBSIZE.
    #[arg(long)]
    search: bool,
    /// Output: one line per cycle and a summary table, or JSON lines.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

fn parse_seed(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => s.replace('_', "").parse(),
    };
    parsed.map_err(|e| format!("not a u64 (decimal or 0x-hex): {e}"))
}

/// `strata` in the directory of this executable: `cargo build` puts both
/// binaries of the workspace into the same target/<profile> directory.
fn default_strata_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locate this executable")?;
    let dir = exe
        .parent()
        .context("this executable has no parent directory")?;
    Ok(dir.join(format!("strata{}", std::env::consts::EXE_SUFFIX)))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match real_main(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("strata-torture: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Ok(passed), or Err for a problem of the tool or its setup.
fn real_main(args: Args) -> anyhow::Result<bool> {
    let strata_bin = match args.strata {
        Some(p) => p,
        None => default_strata_bin()?,
    };
    let seed = args.seed.unwrap_or_else(rand::random);
    let cfg = Config {
        data_dir: args.data_dir,
        keep: args.keep,
        fsync: args.fsync,
        server_args: args.server_args,
        writers: args.writers,
        kill_min_ms: args.kill_min_ms,
        kill_max_ms: args.kill_max_ms,
        cycles: args.cycles,
        duration: args.duration_s.map(Duration::from_secs),
        value_bytes_max: args.value_bytes_max,
        sample_keys: args.sample_keys,
        recovery_kill_pct: args.recovery_kill_pct,
        ready_timeout: Duration::from_secs(args.ready_timeout_s),
        keep_going: args.keep_going,
        server_log_filter: args.server_log_filter,
        after_kill_cmd: args.after_kill_cmd,
        search: args.search,
        ..Config::new(strata_bin, seed)
    };
    let format = args.format;
    // Stdout is the report (a pipe to `tee` or `jq` must see every line as
    // it happens); stderr has violations in table mode and notes.
    let mut out = std::io::stdout().lock();
    let mut on = |event: Event<'_>| {
        let line = match (format, event) {
            (Format::Table, Event::Started { data_dir, log }) => format!(
                "strata-torture: seed {:#x}, {} writers, kill after {}..{} ms, --fsync {}; data {}, server log {}",
                cfg.seed,
                cfg.writers,
                cfg.kill_min_ms,
                cfg.kill_max_ms,
                cfg.fsync,
                data_dir.display(),
                log.display()
            ),
            (Format::Json, Event::Started { data_dir, log }) => serde_json::json!({
                "event": "start",
                "seed": format!("{:#x}", cfg.seed),
                "writers": cfg.writers,
                "fsync": cfg.fsync,
                "server_args": cfg.server_args,
                "data_dir": data_dir,
                "server_log": log,
            })
            .to_string(),
            (Format::Table, Event::Cycle(c)) => cycle_line(c),
            (Format::Json, Event::Cycle(c)) => json_line("cycle", c),
            (Format::Table, Event::Violation(v)) => {
                eprintln!("VIOLATION (seed {:#x}): {v}", cfg.seed);
                return;
            }
            (Format::Json, Event::Violation(v)) => json_line("violation", v),
            (_, Event::Note(note)) => {
                eprintln!("{note}");
                return;
            }
        };
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    let summary = run(&cfg, &mut on)?;
    // The closure's borrow of `out` ended with `run`.
    let text = match format {
        Format::Table => format!("summary:\n{}", summary_table(&summary)),
        Format::Json => json_line("summary", &summary),
    };
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
    if !summary.passed {
        eprintln!(
            "strata-torture: FAILED (seed {:#x}); replay with: {}",
            cfg.seed, summary.replay
        );
    }
    Ok(summary.passed)
}

/// `{"event": <event>, ...fields of value}` on one line.
fn json_line<T: serde::Serialize>(event: &str, value: &T) -> String {
    let mut v = serde_json::to_value(value)
        .unwrap_or_else(|e| serde_json::json!({ "serialization_error": e.to_string() }));
    if let Some(map) = v.as_object_mut() {
        map.insert("event".into(), event.into());
    }
    v.to_string()
}
