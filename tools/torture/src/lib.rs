//! The strata-torture cycle loop (the binary's documentation is in
//! `main.rs`): write, kill -9, restart, verify, repeat.
//!
//! [`run`] is the whole tool minus argument parsing and printing, so the
//! integration test can drive it against the real server binary.

pub mod report;
pub mod resp;
pub mod search;
pub mod server;
pub mod verify;
pub mod workload;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use report::{CycleReport, RecoveryKill, Stats, Summary, Violation, ViolationKind};
use resp::{CallError, Conn, Reply};
use server::{Killed, ServerProcess, ServerSpec};
use verify::{Checker, Model};
use workload::{CONNECT_TIMEOUT, CycleFlags, IO_TIMEOUT, OpCounts, WriterLog, WriterPlan};

/// Earlier keys offered to each writer per cycle for DELs.
const DELETE_POOL_PER_WRITER: usize = 64;
/// How much of the server log a failure report shows.
const LOG_TAIL_BYTES: u64 = 4000;
/// At most this many violations are kept in the summary.
const VIOLATIONS_KEPT: usize = 100;
/// At most this many are reported as they are found (a server that loses
/// everything would otherwise print a line per key).
const VIOLATIONS_PRINTED: u64 = 50;

/// Everything that defines a run.
#[derive(Debug, Clone)]
pub struct Config {
    pub strata_bin: PathBuf,
    /// None: a fresh temp dir. Some: must be absent or empty.
    pub data_dir: Option<PathBuf>,
    /// Keep the temp dir (data and server log) even when the run passes.
    pub keep: bool,
    pub fsync: String,
    pub server_args: Vec<String>,
    pub writers: usize,
    pub seed: u64,
    pub kill_min_ms: u64,
    pub kill_max_ms: u64,
    /// Stop after this many cycles (None: no limit, see `duration`).
    pub cycles: Option<u32>,
    /// Stop starting cycles after this long (None: no limit).
    pub duration: Option<Duration>,
    pub value_bytes_max: usize,
    /// Earlier single keys re-checked per cycle (and a quarter as many
    /// batches); everything is checked at the end anyway.
    pub sample_keys: usize,
    /// Chance per cycle (percent) of one more kill while the server is
    /// recovering, before the restart that gets verified.
    pub recovery_kill_pct: u32,
    pub ready_timeout: Duration,
    /// Go on after a failing cycle (default: stop there, keep the data).
    pub keep_going: bool,
    /// RUST_LOG for the server.
    pub server_log_filter: String,
    /// A shell command run after every kill, before the restart (e.g. tell
    /// LazyFS to drop its unsynced pages: a simulated power loss).
    pub after_kill_cmd: Option<String>,
    /// Create a search index over every key at the first start, and after
    /// every restart check that it agrees with the keys stored (index
    /// entries are written in the same batch as their record).
    pub search: bool,
}

/// The server's RUST_LOG by default: its own info lines plus the engine's
/// flush and compaction messages, from which the report tells whether kills
/// landed inside a flush or compaction.
pub const DEFAULT_SERVER_LOG_FILTER: &str = "info,fjall=debug,lsm_tree=debug";

impl Config {
    /// Defaults of the binary, for a given server binary and seed.
    pub fn new(strata_bin: PathBuf, seed: u64) -> Config {
        Config {
            strata_bin,
            data_dir: None,
            keep: false,
            fsync: "always".into(),
            server_args: Vec::new(),
            writers: 8,
            seed,
            kill_min_ms: 50,
            kill_max_ms: 500,
            cycles: None,
            duration: None,
            value_bytes_max: 4096,
            sample_keys: 1000,
            recovery_kill_pct: 10,
            ready_timeout: Duration::from_secs(60),
            keep_going: false,
            server_log_filter: DEFAULT_SERVER_LOG_FILTER.into(),
            after_kill_cmd: None,
            search: false,
        }
    }

    fn cycles_limit(&self) -> Option<u32> {
        match (self.cycles, self.duration) {
            (None, None) => Some(20),
            (c, _) => c,
        }
    }

    /// A command line that repeats this run's operation sequences and kill
    /// delays up to `cycles` (not the thread interleaving: that is timing).
    pub fn replay_command(&self, cycles: u32) -> String {
        let mut cmd = format!(
            "strata-torture --strata {} --seed {:#x} --cycles {cycles} --writers {} --kill-min-ms {} --kill-max-ms {} --fsync {} --value-bytes-max {} --recovery-kill-pct {}",
            self.strata_bin.display(),
            self.seed,
            self.writers,
            self.kill_min_ms,
            self.kill_max_ms,
            self.fsync,
            self.value_bytes_max,
            self.recovery_kill_pct,
        );
        for a in &self.server_args {
            cmd.push_str(&format!(" --server-arg={a}"));
        }
        if let Some(hook) = &self.after_kill_cmd {
            cmd.push_str(&format!(" --after-kill-cmd '{hook}'"));
        }
        cmd
    }

    fn validate(&self) -> anyhow::Result<()> {
        if !self.strata_bin.is_file() {
            bail!(
                "strata binary not found at {} (build it with `cargo build --release -p strata`, or pass --strata PATH)",
                self.strata_bin.display()
            );
        }
        if self.writers == 0 || self.writers > usize::from(u16::MAX) {
            bail!("--writers must be 1..=65535");
        }
        if self.kill_min_ms > self.kill_max_ms {
            bail!("--kill-min-ms must not exceed --kill-max-ms");
        }
        if self.recovery_kill_pct > 100 {
            bail!("--recovery-kill-pct must be 0..=100");
        }
        if self.value_bytes_max == 0 {
            bail!("--value-bytes-max must be at least 1");
        }
        Ok(())
    }
}

/// Progress, as it happens.
pub enum Event<'a> {
    /// The first server is up (data dir, server log).
    Started {
        data_dir: &'a Path,
        log: &'a Path,
    },
    Cycle(&'a CycleReport),
    Violation(&'a Violation),
    /// Human-oriented context for a failure (e.g. a server log tail).
    Note(&'a str),
}

/// Runs the whole torture: cycles, then a full final check. `Err` only for
/// problems of the tool or its setup (no binary, a bad server flag, an
/// unkillable process); anything the server does wrong is in the summary.
pub fn run(cfg: &Config, on: &mut dyn FnMut(Event<'_>)) -> anyhow::Result<Summary> {
    cfg.validate()?;
    let started = Instant::now();

    let (tmp, data_dir, log_path) = match &cfg.data_dir {
        None => {
            let tmp = tempfile::Builder::new()
                .prefix("strata-torture-")
                .tempdir()
                .context("create a temp dir")?;
            let data = tmp.path().join("data");
            let log = tmp.path().join("server.log");
            (Some(tmp), data, log)
        }
        Some(dir) => {
            // Without a trailing slash, so that the log lands beside it.
            let dir: PathBuf = dir.components().collect();
            if let Ok(mut entries) = std::fs::read_dir(&dir)
                && entries.next().is_some()
            {
                bail!(
                    "--data-dir {} is not empty: the verification must know every key in the store",
                    dir.display()
                );
            }
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("create --data-dir {}", dir.display()))?;
            let mut log = dir.as_os_str().to_owned();
            log.push(".server.log");
            (None, dir.clone(), PathBuf::from(log))
        }
    };
    let spec = ServerSpec {
        bin: cfg.strata_bin.clone(),
        data_dir: data_dir.clone(),
        log_path: log_path.clone(),
        fsync: cfg.fsync.clone(),
        extra_args: cfg.server_args.clone(),
        log_filter: cfg.server_log_filter.clone(),
    };

    let mut state = RunState::default();
    // Two streams: kill timing draws a fixed amount of randomness per cycle,
    // so the kill delays are a function of the seed alone; sampling for DELs
    // and checks depends on how many keys exist (timing), so it has its own.
    let mut kill_rng = StdRng::seed_from_u64(cfg.seed);
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0x5A4D_504C_4553_0000);
    let mut model = Model::new(cfg.writers);

    // The first start is not a recovery; a failure here is a setup error
    // (typically a bad --server-arg), so it is an Err with the log.
    let mut server = spec.spawn()?;
    let (mut addr, first_ready) = match server.wait_ready(cfg.ready_timeout) {
        Ok(ready) => ready,
        Err(e) => bail!(
            "the server did not start: {e}\n--- server log tail ---\n{}",
            server::log_tail(&log_path, LOG_TAIL_BYTES)
        ),
    };
    on(Event::Started {
        data_dir: &data_dir,
        log: &log_path,
    });
    if cfg.search {
        search::create_index(addr).context("create the search index (--search)")?;
    }
    // The latest start-up time: recovery kills are aimed within it.
    let mut last_ready_ms = first_ready.as_secs_f64() * 1000.0;
    let mut healthy = true;

    let mut cycle: u32 = 0;
    loop {
        if cfg.cycles_limit().is_some_and(|n| cycle >= n)
            || cfg.duration.is_some_and(|d| started.elapsed() >= d)
        {
            break;
        }
        let cycle_started = Instant::now();
        let mut violations: Vec<Violation> = Vec::new();

        // 1. Writers until the kill.
        let pools = model.delete_pools(cfg.writers, &mut rng, DELETE_POOL_PER_WRITER);
        let flags = Arc::new(CycleFlags::default());
        let (connected_tx, connected_rx) = mpsc::channel();
        let (log_tx, log_rx) = mpsc::channel::<WriterLog>();
        let mut handles = Vec::with_capacity(cfg.writers);
        for (w, pool) in pools.into_iter().enumerate() {
            let writer = u16::try_from(w).context("writer number")?;
            let plan = WriterPlan {
                cycle,
                writer,
                rng_seed: workload::writer_seed(cfg.seed, cycle, writer),
                counter_start: model.counters[w],
                delete_pool: pool,
                value_bytes_max: cfg.value_bytes_max,
            };
            let flags = flags.clone();
            let connected = connected_tx.clone();
            let log_tx = log_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("torture-writer-{w}"))
                .spawn(move || {
                    let log = workload::run_writer(addr, plan, &flags, connected);
                    let _ = log_tx.send(log);
                })
                .context("spawn a writer thread")?;
            handles.push(handle);
        }
        drop(log_tx);
        // The kill timer starts once every writer is connected (or failed).
        let connect_deadline = Instant::now() + CONNECT_TIMEOUT + Duration::from_secs(5);
        for _ in 0..cfg.writers {
            let left = connect_deadline.saturating_duration_since(Instant::now());
            if connected_rx.recv_timeout(left).is_err() {
                break;
            }
        }
        let kill_after_ms = kill_rng.random_range(cfg.kill_min_ms..=cfg.kill_max_ms);
        let recovery_kill_roll = kill_rng.random_range(0..100u32);
        let recovery_kill_fraction: f64 = kill_rng.random();
        std::thread::sleep(Duration::from_millis(kill_after_ms));

        // 2. kill -9.
        flags.killing.store(true, Ordering::SeqCst);
        let killed = server.kill9()?;
        flags.stop.store(true, Ordering::SeqCst);
        if let Killed::AlreadyExited(status) = killed {
            violations.push(Violation::new(
                ViolationKind::Crashed,
                cycle,
                None,
                format!("the server exited by itself ({status}) before it was killed"),
            ));
        }
        let engine = server::engine_activity(&log_path, server.log_offset());
        run_after_kill(cfg, &data_dir)?;
        // Every writer ends at its next request (the connection is dead) or
        // within IO_TIMEOUT; waiting longer means the tool is broken.
        let mut logs = Vec::with_capacity(cfg.writers);
        let logs_deadline = Instant::now() + IO_TIMEOUT + Duration::from_secs(10);
        for _ in 0..cfg.writers {
            let left = logs_deadline.saturating_duration_since(Instant::now());
            match log_rx.recv_timeout(left) {
                Ok(log) => logs.push(log),
                Err(_) => bail!("a writer thread did not finish within {IO_TIMEOUT:?} of the kill"),
            }
        }
        for h in handles {
            if h.join().is_err() {
                bail!("a writer thread panicked");
            }
        }
        logs.sort_by_key(|l| l.writer);
        let mut acked = OpCounts::default();
        let mut in_flight = 0;
        for log in &mut logs {
            acked.add(&log.acked);
            in_flight += log.in_flight;
            violations.append(&mut log.violations);
        }

        // 3. Sometimes, one more kill while the server recovers.
        let mut recovery_kill = None;
        if recovery_kill_roll < cfg.recovery_kill_pct {
            let mut p = spec.spawn()?;
            // Within the last recovery time, so that most land inside it.
            let after_ms = (recovery_kill_fraction * last_ready_ms * 0.9) as u64;
            std::thread::sleep(Duration::from_millis(after_ms));
            let before_ready = !p.ready_line_seen();
            if let Killed::AlreadyExited(status) = p.kill9()? {
                violations.push(Violation::new(
                    ViolationKind::Recovery,
                    cycle,
                    None,
                    format!("the server exited by itself ({status}) while recovering"),
                ));
            }
            run_after_kill(cfg, &data_dir)?;
            recovery_kill = Some(RecoveryKill {
                after_ms,
                before_ready,
            });
        }

        // 4. Restart, and time it.
        server = spec.spawn()?;
        let mut report = CycleReport {
            cycle,
            kill_after_ms,
            acked,
            in_flight,
            in_flight_applied: 0,
            recovery_kill,
            ready_ms: None,
            first_get_ms: None,
            engine,
            dbsize: None,
            violations: 0,
            elapsed_s: 0.0,
        };
        match restart(&mut server, cfg.ready_timeout) {
            Err(detail) => {
                violations.push(Violation::new(ViolationKind::Recovery, cycle, None, detail));
                healthy = false;
            }
            Ok((new_addr, ready, first_get, mut conn)) => {
                addr = new_addr;
                let ready_ms = ready.as_secs_f64() * 1000.0;
                last_ready_ms = ready_ms;
                report.ready_ms = Some(ready_ms);
                report.first_get_ms = Some(first_get.as_secs_f64() * 1000.0);
                state.ready_ms.push(ready_ms);
                state.first_get_ms.push(first_get.as_secs_f64() * 1000.0);

                // 5. Verify.
                let mut checker = Checker::new(&mut conn, cycle, cfg.value_bytes_max);
                let result = checker.cycle(&mut model, &logs, cfg.sample_keys, &mut rng);
                violations.append(&mut checker.violations);
                if cfg.search {
                    violations.extend(search::check_index(&mut conn, cycle));
                }
                match result {
                    Ok(check) => {
                        report.in_flight_applied = check.in_flight_applied;
                        report.dbsize = Some(check.dbsize);
                    }
                    Err(e) => {
                        violations.push(verification_failed(cycle, &e));
                        healthy = false;
                    }
                }
            }
        }

        let fresh: Vec<Violation> = violations.into_iter().filter(|v| state.admit(v)).collect();
        report.violations = fresh.len() as u64;
        report.elapsed_s = cycle_started.elapsed().as_secs_f64();
        state.record_cycle(&report);
        on(Event::Cycle(&report));
        let failed = !fresh.is_empty();
        for v in fresh {
            state.emit(v, on);
        }
        cycle += 1;
        if failed {
            let tail = server::log_tail(&log_path, LOG_TAIL_BYTES);
            on(Event::Note(&format!(
                "cycle {} failed; server log tail ({}):\n{tail}",
                cycle - 1,
                log_path.display()
            )));
        }
        if !healthy || (failed && !cfg.keep_going) {
            break;
        }
    }

    // 6. The final full check, on the last restarted server.
    let mut final_keys = None;
    if healthy {
        let last = cycle.saturating_sub(1);
        let mut final_violations = Vec::new();
        match Conn::connect(addr, CONNECT_TIMEOUT, IO_TIMEOUT) {
            Ok(mut conn) => {
                let mut checker = Checker::new(&mut conn, last, cfg.value_bytes_max);
                let result = checker.everything(&mut model);
                final_violations.append(&mut checker.violations);
                match result {
                    Ok(n) => final_keys = Some(n),
                    Err(e) => final_violations.push(verification_failed(last, &e)),
                }
            }
            Err(e) => final_violations.push(verification_failed(last, &CallError::Io(e))),
        }
        for v in final_violations {
            state.record_violation(v, on);
        }
    }
    // (After a failed restart the server may well be gone: already reported.)
    if let (true, Ok(Killed::AlreadyExited(status))) = (healthy, server.kill9()) {
        let v = Violation::new(
            ViolationKind::Crashed,
            cycle.saturating_sub(1),
            None,
            format!("the server exited by itself ({status}) before the end of the run"),
        );
        state.record_violation(v, on);
    }
    drop(server);

    let passed = state.violation_count == 0;
    let kept_dir = match tmp {
        Some(tmp) if cfg.keep || !passed => Some(tmp.keep().display().to_string()),
        Some(tmp) => {
            // Removal failures are not the server's fault; just say so.
            if let Err(e) = tmp.close() {
                on(Event::Note(&format!("could not remove the temp dir: {e}")));
            }
            None
        }
        None => Some(data_dir.display().to_string()),
    };
    Ok(state.summary(cfg, cycle, final_keys, kept_dir, started.elapsed(), passed))
}

/// Waits for the ready line, then for the first successful GET, both
/// bounded by `timeout`; returns a connection for the verification.
fn restart(
    server: &mut ServerProcess,
    timeout: Duration,
) -> Result<(std::net::SocketAddr, Duration, Duration, Conn), String> {
    let (addr, ready) = server
        .wait_ready(timeout)
        .map_err(|e| format!("restart failed: the server {e}"))?;
    let deadline = server.spawned_at() + timeout;
    let mut last_error = String::new();
    while Instant::now() < deadline {
        if let Some(status) = server.exited() {
            return Err(format!(
                "restart failed: the server exited ({status}) after its ready line, before answering a GET"
            ));
        }
        match Conn::connect(addr, CONNECT_TIMEOUT, IO_TIMEOUT) {
            Ok(mut conn) => match conn.call(&["GET", "ctr:0"]) {
                Ok(Reply::Bulk(_)) => {
                    return Ok((addr, ready, server.spawned_at().elapsed(), conn));
                }
                Ok(other) => last_error = format!("GET answered {other:?}"),
                Err(e) => last_error = e.to_string(),
            },
            Err(e) => last_error = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(format!(
        "restart failed: ready, but no successful GET within {timeout:?} of the spawn ({last_error})"
    ))
}

/// How long `--after-kill-cmd` may run.
const HOOK_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `--after-kill-cmd` (if any) with `sh -c`, bounded; the data dir is
/// in `$STRATA_TORTURE_DATA_DIR`. A failing hook is a setup error.
fn run_after_kill(cfg: &Config, data_dir: &Path) -> anyhow::Result<()> {
    let Some(cmd) = &cfg.after_kill_cmd else {
        return Ok(());
    };
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("STRATA_TORTURE_DATA_DIR", data_dir)
        .stdin(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("run --after-kill-cmd {cmd:?}"))?;
    let deadline = Instant::now() + HOOK_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().context("wait for --after-kill-cmd")? {
            if !status.success() {
                bail!("--after-kill-cmd {cmd:?} failed: {status}");
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            // Our own child, through its handle (its pid).
            let _ = child.kill();
            let _ = child.wait();
            bail!("--after-kill-cmd {cmd:?} did not finish within {HOOK_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn verification_failed(cycle: u32, e: &CallError) -> Violation {
    Violation::new(
        ViolationKind::Reply,
        cycle,
        None,
        format!("verification could not complete: {e}"),
    )
}

/// Totals across cycles.
#[derive(Default)]
struct RunState {
    acked: OpCounts,
    in_flight: u64,
    in_flight_applied: u64,
    ready_ms: Vec<f64>,
    first_get_ms: Vec<f64>,
    recovery_kills: u64,
    recovery_kills_before_ready: u64,
    kills_in_flush: u64,
    kills_in_merge: u64,
    flushes: u64,
    merges: u64,
    violation_count: u64,
    seen: std::collections::HashSet<(ViolationKind, Option<String>)>,
    by_kind: std::collections::BTreeMap<ViolationKind, u64>,
    violations: Vec<Violation>,
}

impl RunState {
    fn record_cycle(&mut self, c: &CycleReport) {
        self.acked.add(&c.acked);
        self.in_flight += c.in_flight;
        self.in_flight_applied += c.in_flight_applied;
        if let Some(rk) = c.recovery_kill {
            self.recovery_kills += 1;
            self.recovery_kills_before_ready += u64::from(rk.before_ready);
        }
        self.kills_in_flush += u64::from(c.engine.in_flush);
        self.kills_in_merge += u64::from(c.engine.in_merge);
        self.flushes += c.engine.flushes;
        self.merges += c.engine.merges;
    }

    fn record_violation(&mut self, v: Violation, on: &mut dyn FnMut(Event<'_>)) {
        if self.admit(&v) {
            self.emit(v, on);
        }
    }

    /// Whether a violation is new. Each is counted once per (kind, key): a
    /// torn batch or a corrupt value stays in the store and would be found
    /// again by later checks.
    fn admit(&mut self, v: &Violation) -> bool {
        v.key.is_none() || self.seen.insert((v.kind, v.key.clone()))
    }

    /// Counts an admitted violation and reports it.
    fn emit(&mut self, v: Violation, on: &mut dyn FnMut(Event<'_>)) {
        self.violation_count += 1;
        *self.by_kind.entry(v.kind).or_default() += 1;
        if self.violation_count <= VIOLATIONS_PRINTED {
            on(Event::Violation(&v));
        } else if self.violation_count == VIOLATIONS_PRINTED + 1 {
            on(Event::Note(
                "more violations: counted in the summary, not printed",
            ));
        }
        if self.violations.len() < VIOLATIONS_KEPT {
            self.violations.push(v);
        }
    }

    fn summary(
        self,
        cfg: &Config,
        cycles: u32,
        final_keys: Option<u64>,
        kept_dir: Option<String>,
        elapsed: Duration,
        passed: bool,
    ) -> Summary {
        let count = |k| self.by_kind.get(&k).copied().unwrap_or(0);
        let lost = count(ViolationKind::Lost);
        let torn = count(ViolationKind::Torn);
        Summary {
            seed: format!("{:#x}", cfg.seed),
            cycles,
            writers: cfg.writers,
            fsync: cfg.fsync.clone(),
            server_args: cfg.server_args.clone(),
            acked: self.acked,
            acked_total: self.acked.total(),
            in_flight: self.in_flight,
            in_flight_applied: self.in_flight_applied,
            lost,
            torn,
            other_violations: self.violation_count - lost - torn,
            violations_by_kind: self.by_kind,
            violations: self.violations,
            ready: Stats::of(&self.ready_ms),
            first_get: Stats::of(&self.first_get_ms),
            recovery_kills: self.recovery_kills,
            recovery_kills_before_ready: self.recovery_kills_before_ready,
            kills_in_flush: self.kills_in_flush,
            kills_in_merge: self.kills_in_merge,
            flushes: self.flushes,
            merges: self.merges,
            final_keys,
            kept_dir,
            replay: cfg.replay_command(cycles.max(1)),
            elapsed_s: elapsed.as_secs_f64(),
            passed,
        }
    }
}
