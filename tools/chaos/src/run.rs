//! One chaos run: a cluster behind the fault proxy, random clients, a
//! seeded fault schedule, then convergence and the checks.
//!
//! 1. Start `nodes` servers whose `--initial-cluster` names the proxy's
//!    listeners, so that every peer byte passes the proxy. Clients talk to
//!    the nodes' RESP ports directly.
//! 2. `clients` threads issue random operations, one at a time, to random
//!    nodes: GET / SET (unique values) / DEL on a few register keys, INCR /
//!    GET on a few counter keys, and SET of never-rewritten unique keys.
//!    Every operation is recorded with its call and return time; a write
//!    with no definite reply (`-CLUSTERDOWN`, `-TRYAGAIN`, a timeout, a
//!    closed connection) is recorded with an unknown outcome.
//! 3. Meanwhile the nemesis applies the [`schedule`] derived from the seed:
//!    isolating a node or a minority, one-way partitions, delays with
//!    jitter, message loss, kill -9 + restart, power loss (kill -9, then
//!    every byte that was not fsynced is lost, see [`crate::powerloss`]) +
//!    restart, SIGSTOP + SIGCONT; each is held for a while and then healed.
//! 4. After `duration`: everything is healed and restarted, the run waits
//!    (bounded) for a leader and for every node to apply everything
//!    committed, then reads every key through the leader (linearizable,
//!    added to the histories) and through every node with `READONLY`.
//! 5. Checks: each register/counter key's history is linearizable
//!    ([`crate::checker`]); every acknowledged unique write is present with
//!    its value and nothing else is there; each counter is between its
//!    acknowledged and attempted INCRs; all replicas hold the same values;
//!    no node died on its own; no reply was an error outside the contract.
//!
//! The seed fixes the fault schedule (kinds, targets, times, durations) and
//! each client's choice of operations, keys and nodes. Thread timing is not
//! reproducible, so a replay re-runs the same scenario, not the same
//! execution. Targets named "the leader" are resolved when the fault
//! starts, and the report says which node it was.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use strata_client::resp::Reply;
use strata_client::{Client, ClientError};

use crate::checker::{self, Entry, Op, Ret, Verdict};
use crate::cluster::{Cluster, ClusterConfig, POLL, connect};
use crate::powerloss::{self, LossReport, SyncLog};
use crate::proxy::{Proxy, ProxyStats};
use crate::rng::Rng;

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    pub bin: PathBuf,
    pub seed: u64,
    /// How long the clients run and faults are injected.
    pub duration: Duration,
    pub nodes: u64,
    pub clients: u64,
    /// Register keys `r0..` (SET / GET / DEL).
    pub registers: u64,
    /// Counter keys `c0..` (INCR / GET).
    pub counters: u64,
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
    pub forward_timeout_ms: u64,
    pub snapshot_logs: u64,
    pub fsync: Option<String>,
    /// Which fault kinds the schedule may use.
    pub faults: Vec<FaultKind>,
    /// Bound on reaching a leader and full replication after healing.
    pub converge_timeout: Duration,
    /// Search-step bound of the linearizability check, per key.
    pub check_budget: u64,
    pub keep_dir: KeepDir,
    /// Where run directories go (a temp dir by default).
    pub base_dir: Option<PathBuf>,
    /// Print faults as they happen (stderr).
    pub verbose: bool,
    /// Self-test of the checker: clients read with `READONLY` (fast local
    /// reads, allowed to be stale), so a run with partitions should FAIL
    /// the linearizability check.
    pub stale_reads: bool,
}

impl ChaosConfig {
    pub fn new(bin: impl Into<PathBuf>, seed: u64, duration: Duration) -> ChaosConfig {
        ChaosConfig {
            bin: bin.into(),
            seed,
            duration,
            nodes: 3,
            clients: 5,
            registers: 3,
            counters: 2,
            heartbeat_ms: 50,
            election_timeout_ms: 300,
            forward_timeout_ms: 1_000,
            snapshot_logs: 200,
            fsync: None,
            faults: FaultKind::ALL.to_vec(),
            converge_timeout: Duration::from_secs(60),
            check_budget: checker::DEFAULT_STEP_BUDGET,
            keep_dir: KeepDir::OnFailure,
            base_dir: None,
            verbose: false,
            stale_reads: false,
        }
    }

    /// The per-request bound of the clients: the server's forward timeout
    /// plus slack. A reply later than this counts as unknown.
    fn op_timeout(&self) -> Duration {
        Duration::from_millis(self.forward_timeout_ms + 2_000)
    }
}

/// When to keep a run's directory (data, logs, history).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepDir {
    Never,
    OnFailure,
    Always,
}

/// The kinds of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// Cut a node (or, with 5+ nodes, a minority) off from the others.
    Partition,
    /// A node cannot open connections to the others; they can to it.
    OneWay,
    /// Delay with jitter on every link of a node, or on all links.
    Delay,
    /// Connections of a node's links die at random points.
    Loss,
    /// kill -9, restart after the hold time.
    Kill,
    /// SIGSTOP, SIGCONT after the hold time.
    Pause,
    /// kill -9, then everything not fsynced is lost (files rewound to what
    /// the sync log says was durable), restart after the hold time.
    PowerLoss,
}

impl FaultKind {
    pub const ALL: [FaultKind; 7] = [
        FaultKind::Partition,
        FaultKind::OneWay,
        FaultKind::Delay,
        FaultKind::Loss,
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::PowerLoss,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::OneWay => "oneway",
            FaultKind::Delay => "delay",
            FaultKind::Loss => "loss",
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::PowerLoss => "powerloss",
        }
    }

    pub fn parse(s: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Relative frequency in schedules.
    fn weight(self) -> u64 {
        match self {
            FaultKind::Partition => 4,
            FaultKind::OneWay => 1,
            FaultKind::Delay => 2,
            FaultKind::Loss => 2,
            FaultKind::Kill => 3,
            FaultKind::Pause => 1,
            FaultKind::PowerLoss => 2,
        }
    }
}

/// Whom a fault hits; "the leader" is resolved when the fault starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Leader,
    Node(u64),
    /// Several nodes (a minority), fixed by the seed.
    Nodes(Vec<u64>),
    /// Every link.
    All,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Leader => write!(f, "the leader"),
            Target::Node(n) => write!(f, "node {n}"),
            Target::Nodes(ns) => write!(f, "nodes {ns:?}"),
            Target::All => write!(f, "all links"),
        }
    }
}

/// One fault of the schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    pub target: Target,
    /// Start, from the start of the client phase.
    pub at: Duration,
    /// How long it lasts before it is healed.
    pub hold: Duration,
    pub delay_ms: u64,
    pub jitter_ms: u64,
    pub loss: f64,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            FaultKind::Partition => format!("partition {} from the rest", self.target),
            FaultKind::OneWay => {
                format!("one-way partition: {} cannot reach the others", self.target)
            }
            FaultKind::Delay => format!(
                "delay {} ms + jitter {} ms on {}",
                self.delay_ms, self.jitter_ms, self.target
            ),
            FaultKind::Loss => format!(
                "loss {:.0}% per chunk on {}",
                self.loss * 100.0,
                self.target
            ),
            FaultKind::Kill => format!("kill -9 {}, restart after the hold", self.target),
            FaultKind::Pause => format!("SIGSTOP {}, SIGCONT after the hold", self.target),
            FaultKind::PowerLoss => format!(
                "power loss of {}: kill -9, un-fsynced data lost, restart after the hold",
                self.target
            ),
        };
        write!(
            f,
            "t={:.2}s {what} for {:.2}s",
            self.at.as_secs_f64(),
            self.hold.as_secs_f64()
        )
    }
}

/// The fault schedule of `seed`: one fault at a time, each held 1–4 s
/// (kills and power losses: 0.5–3 s of downtime), with 0.5–2 s of calm in between, from 1 s
/// into the run until 1.5 s before its end.
pub fn schedule(seed: u64, duration: Duration, nodes: u64, kinds: &[FaultKind]) -> Vec<Fault> {
    let mut rng = Rng::derive(seed, 0xFA17);
    let mut out = Vec::new();
    if kinds.is_empty() || nodes == 0 {
        return out;
    }
    let total: u64 = kinds.iter().map(|k| k.weight()).sum();
    let end = duration.saturating_sub(Duration::from_millis(1_500));
    let mut t = Duration::from_secs(1);
    let ids: Vec<u64> = (1..=nodes).collect();
    while t < end {
        let mut pick = rng.below(total);
        let mut kind = kinds[0];
        for k in kinds {
            if pick < k.weight() {
                kind = *k;
                break;
            }
            pick -= k.weight();
        }
        let one_node = |rng: &mut Rng| {
            if rng.chance(0.5) {
                Target::Leader
            } else {
                Target::Node(*rng.pick(&ids))
            }
        };
        let target = match kind {
            FaultKind::Partition if nodes >= 5 && rng.chance(0.5) => {
                let size = rng.range(2, (nodes - 1) / 2);
                let mut pool = ids.clone();
                let mut side = Vec::new();
                for _ in 0..size {
                    let i = rng.below(pool.len() as u64) as usize;
                    side.push(pool.swap_remove(i));
                }
                side.sort_unstable();
                Target::Nodes(side)
            }
            FaultKind::Delay | FaultKind::Loss if rng.chance(0.3) => Target::All,
            _ => one_node(&mut rng),
        };
        let hold_ms = match kind {
            FaultKind::Kill | FaultKind::PowerLoss => rng.range(500, 3_000),
            _ => rng.range(1_000, 4_000),
        };
        let hold = Duration::from_millis(hold_ms)
            .min(end.saturating_sub(t).max(Duration::from_millis(500)));
        let (delay_ms, jitter_ms) = if kind == FaultKind::Delay {
            (rng.range(5, 150), rng.range(0, 100))
        } else {
            (0, 0)
        };
        let loss = if kind == FaultKind::Loss {
            rng.range(1, 10) as f64 / 100.0
        } else {
            0.0
        };
        out.push(Fault {
            kind,
            target,
            at: t,
            hold,
            delay_ms,
            jitter_ms,
            loss,
        });
        t += hold + Duration::from_millis(rng.range(500, 2_000));
    }
    out
}

/// The result of one run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub seed: u64,
    pub pass: bool,
    pub failures: Vec<String>,
    /// Faults as applied, with resolved targets.
    pub faults: Vec<String>,
    pub counts: OpCounts,
    /// Longest time without any acknowledged write, and when it began.
    pub longest_write_gap: Duration,
    pub longest_write_gap_at: Duration,
    pub proxy: ProxyStats,
    /// From the end of the client phase to convergence.
    pub converge_time: Duration,
    pub final_applied_index: u64,
    /// Per key: operations checked and the verdict in words.
    pub checks: Vec<String>,
    pub unique_acked: u64,
    pub unique_present: u64,
    pub elapsed: Duration,
    /// The run's directory if it was kept.
    pub kept_dir: Option<PathBuf>,
    /// Remarks about the run itself (e.g. a fault kind disabled).
    pub notes: Vec<String>,
    /// Power-loss faults applied, and what they lost in total.
    pub powerlosses: u64,
    pub powerloss: LossReport,
}

/// Operation counts of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpCounts {
    pub reads_ok: u64,
    pub reads_failed: u64,
    pub writes_ok: u64,
    pub writes_unknown: u64,
    /// Definite errors that the model expects (INCR of a non-integer).
    pub writes_refused: u64,
    /// Error replies outside the contract.
    pub unexpected: u64,
    pub connect_failures: u64,
}

impl OpCounts {
    fn add(&mut self, o: &OpCounts) {
        self.reads_ok += o.reads_ok;
        self.reads_failed += o.reads_failed;
        self.writes_ok += o.writes_ok;
        self.writes_unknown += o.writes_unknown;
        self.writes_refused += o.writes_refused;
        self.unexpected += o.unexpected;
        self.connect_failures += o.connect_failures;
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {}: {} ({:.1} s)",
            self.seed,
            if self.pass { "PASS" } else { "FAIL" },
            self.elapsed.as_secs_f64()
        )?;
        writeln!(f, "  faults ({}):", self.faults.len())?;
        for fault in &self.faults {
            writeln!(f, "    {fault}")?;
        }
        for note in &self.notes {
            writeln!(f, "  NOTE: {note}")?;
        }
        if self.powerlosses > 0 {
            // The per-file details are on the fault lines above.
            let total = LossReport {
                details: Vec::new(),
                ..self.powerloss.clone()
            };
            writeln!(f, "  power losses: {}, in total {total}", self.powerlosses)?;
        }
        let c = &self.counts;
        writeln!(
            f,
            "  ops: {} reads ok, {} reads failed, {} writes acknowledged, {} writes unknown, \
             {} writes refused, {} unexpected errors, {} failed connects",
            c.reads_ok,
            c.reads_failed,
            c.writes_ok,
            c.writes_unknown,
            c.writes_refused,
            c.unexpected,
            c.connect_failures
        )?;
        writeln!(
            f,
            "  longest time without an acknowledged write: {:.2}s (from t={:.2}s)",
            self.longest_write_gap.as_secs_f64(),
            self.longest_write_gap_at.as_secs_f64()
        )?;
        let p = &self.proxy;
        writeln!(
            f,
            "  proxy: {} connections, {} refused (partition), {} cut by partition, {} cut by loss, \
             {} delayed chunks, {} bytes",
            p.connections,
            p.refused_partitioned,
            p.cut_partition,
            p.cut_loss,
            p.delayed_chunks,
            p.bytes
        )?;
        writeln!(
            f,
            "  converged {:.2}s after the client phase, applied index {}",
            self.converge_time.as_secs_f64(),
            self.final_applied_index
        )?;
        for check in &self.checks {
            writeln!(f, "  {check}")?;
        }
        for failure in &self.failures {
            writeln!(
                f,
                "  FAILURE: {}",
                failure.trim_end().replace('\n', "\n    ")
            )?;
        }
        if let Some(dir) = &self.kept_dir {
            writeln!(f, "  kept: {}", dir.display())?;
        }
        Ok(())
    }
}

/// What one client did.
#[derive(Default)]
struct ClientLog {
    /// Register and counter operations, by key.
    entries: Vec<(String, Entry)>,
    /// Unique keys: key, value, acknowledged (false: unknown).
    uniques: Vec<(String, String, bool)>,
    counts: OpCounts,
    unexpected: Vec<String>,
    /// Return times of acknowledged writes (ns since start).
    write_acks: Vec<u64>,
}

struct ClientSpec {
    id: u64,
    seed: u64,
    nodes: Vec<(u64, SocketAddr)>,
    registers: u64,
    counters: u64,
    timeout: Duration,
    start: Instant,
    stop: Arc<AtomicBool>,
    stale_reads: bool,
}

/// How a reply is classified.
enum Outcome {
    Done(Ret),
    /// No definite answer; the write may or may not have happened.
    Unknown,
    /// An error reply outside the contract.
    Unexpected(String),
}

fn is_cluster_error(e: &str) -> bool {
    e.starts_with("CLUSTERDOWN") || e.starts_with("TRYAGAIN")
}

fn classify(op: &Op, reply: Result<Reply, ClientError>) -> Outcome {
    let reply = match reply {
        Ok(r) => r,
        Err(_) => return Outcome::Unknown,
    };
    match (op, reply) {
        (_, Reply::Error(e)) if is_cluster_error(&e) => Outcome::Unknown,
        (Op::Incr, Reply::Error(e)) if e.contains("not an integer") => Outcome::Done(Ret::Err),
        (_, Reply::Error(e)) => Outcome::Unexpected(e.to_string()),
        (Op::Set(_), Reply::Status(s)) if s == "OK" => Outcome::Done(Ret::Ok),
        (Op::Get, Reply::Bulk(b)) => Outcome::Done(Ret::Value(Some(b.to_vec()))),
        (Op::Get, Reply::Null) => Outcome::Done(Ret::Value(None)),
        (Op::Incr | Op::Del, Reply::Integer(n)) => Outcome::Done(Ret::Int(n)),
        (op, other) => Outcome::Unexpected(format!("reply {other:?} to {op:?}")),
    }
}

fn client_loop(spec: ClientSpec) -> ClientLog {
    let mut rng = Rng::derive(spec.seed, 0xC11E_0000 + spec.id);
    let mut log = ClientLog::default();
    let mut conn: Option<(u64, Client)> = None;
    let mut seq = 0u64;
    let now_ns = |start: Instant| start.elapsed().as_nanos() as u64;
    while !spec.stop.load(Ordering::Relaxed) {
        if conn.is_none() || rng.chance(0.05) {
            let (node, addr) = *rng.pick(&spec.nodes);
            let connected = connect(addr, spec.timeout).and_then(|mut c| {
                if spec.stale_reads {
                    match c.call(&["READONLY"])? {
                        Reply::Status(_) => {}
                        other => bail!("READONLY: {other:?}"),
                    }
                }
                Ok(c)
            });
            match connected {
                Ok(c) => conn = Some((node, c)),
                Err(_) => {
                    log.counts.connect_failures += 1;
                    conn = None;
                    std::thread::sleep(Duration::from_millis(rng.range(20, 100)));
                    continue;
                }
            }
        }
        let Some((node, client)) = conn.as_mut() else {
            continue;
        };
        let node = *node;
        seq += 1;
        let dice = rng.below(100);
        // 15%: a unique key, written once.
        if dice < 15 {
            let key = format!("u:{}:{seq}", spec.id);
            let value = format!("v:{}:{seq}", spec.id);
            let reply = client.call(&["SET", &key, &value]);
            let broken = reply.is_err();
            match classify(&Op::Set(value.clone().into_bytes()), reply) {
                Outcome::Done(_) => {
                    log.counts.writes_ok += 1;
                    log.write_acks.push(now_ns(spec.start));
                    log.uniques.push((key, value, true));
                }
                Outcome::Unknown => {
                    log.counts.writes_unknown += 1;
                    log.uniques.push((key, value, false));
                    backoff(&mut rng, &mut conn, broken);
                }
                Outcome::Unexpected(e) => {
                    log.counts.unexpected += 1;
                    log.unexpected
                        .push(format!("client {} node {node}: SET {key}: {e}", spec.id));
                    log.uniques.push((key, value, false));
                }
            }
            continue;
        }
        let (key, op) = if dice < 50 {
            let k = rng.below(spec.registers + spec.counters);
            let key = if k < spec.registers {
                format!("r{k}")
            } else {
                format!("c{}", k - spec.registers)
            };
            (key, Op::Get)
        } else if dice < 75 {
            let key = format!("r{}", rng.below(spec.registers));
            (key, Op::Set(format!("{}-{seq}", spec.id).into_bytes()))
        } else if dice < 80 {
            (format!("r{}", rng.below(spec.registers)), Op::Del)
        } else {
            (format!("c{}", rng.below(spec.counters)), Op::Incr)
        };
        let args: Vec<Vec<u8>> = match &op {
            Op::Get => vec![b"GET".to_vec(), key.clone().into_bytes()],
            Op::Set(v) => vec![b"SET".to_vec(), key.clone().into_bytes(), v.clone()],
            Op::Del => vec![b"DEL".to_vec(), key.clone().into_bytes()],
            Op::Incr => vec![b"INCR".to_vec(), key.clone().into_bytes()],
        };
        let call = now_ns(spec.start);
        let reply = client.call(&args);
        let ret_time = now_ns(spec.start);
        let broken = reply.is_err();
        let is_read = op == Op::Get;
        let outcome = classify(&op, reply);
        let ret = match outcome {
            Outcome::Done(ret) => {
                if is_read {
                    log.counts.reads_ok += 1;
                } else if ret == Ret::Err {
                    log.counts.writes_refused += 1;
                } else {
                    log.counts.writes_ok += 1;
                    log.write_acks.push(ret_time);
                }
                Some((ret_time, ret))
            }
            Outcome::Unknown => {
                if is_read {
                    log.counts.reads_failed += 1;
                } else {
                    log.counts.writes_unknown += 1;
                }
                backoff(&mut rng, &mut conn, broken);
                None
            }
            Outcome::Unexpected(e) => {
                log.counts.unexpected += 1;
                log.unexpected.push(format!(
                    "client {} node {node}: {} {key}: {e}",
                    spec.id,
                    String::from_utf8_lossy(&args[0])
                ));
                None
            }
        };
        if is_read && ret.is_none() {
            continue;
        }
        log.entries.push((
            key,
            Entry {
                client: spec.id,
                node,
                op,
                call,
                ret,
            },
        ));
    }
    log
}

/// After a failed operation: drop a broken connection (or, half the time,
/// a working one, to try another node) and wait a little.
fn backoff(rng: &mut Rng, conn: &mut Option<(u64, Client)>, broken: bool) {
    if broken || rng.chance(0.5) {
        *conn = None;
    }
    std::thread::sleep(Duration::from_millis(rng.range(20, 100)));
}

/// Runs one seed. `Err` means the run could not be carried out (setup);
/// a consistency problem is a `Report` with `pass == false`.
pub fn run(config: &ChaosConfig) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut report = Report {
        seed: config.seed,
        ..Report::default()
    };
    let mut proxy = Proxy::new(config.seed ^ 0x9E0_C5EED);
    let mut cluster_config = ClusterConfig::new(&config.bin, config.nodes);
    cluster_config.heartbeat_ms = config.heartbeat_ms;
    cluster_config.election_timeout_ms = config.election_timeout_ms;
    cluster_config.forward_timeout_ms = Some(config.forward_timeout_ms);
    cluster_config.snapshot_logs = Some(config.snapshot_logs);
    cluster_config.fsync = config.fsync.clone();
    // Every peer link then runs the authentication handshake through the
    // fault proxy (delays and cut connections included).
    cluster_config.cluster_secret = true;
    cluster_config.base_dir = config
        .base_dir
        .as_ref()
        .map(|d| d.join(format!("seed-{}", config.seed)));
    if let Some(dir) = &cluster_config.base_dir
        && dir.exists()
    {
        std::fs::remove_dir_all(dir).with_context(|| format!("clear {}", dir.display()))?;
    }
    for id in 1..=config.nodes {
        let addr = proxy.add_node(id).context("proxy listener")?;
        cluster_config.advertise.insert(id, addr);
    }
    let mut cluster = Cluster::prepare(cluster_config)?;
    let mut config = config.clone();
    if config.faults.contains(&FaultKind::PowerLoss) {
        setup_powerloss(&mut config, &mut cluster, &mut report)?;
    }
    let config = &config;
    for id in cluster.ids() {
        proxy.set_target(id, cluster.node(id).peer_listen);
    }
    for id in cluster.ids() {
        cluster.node_mut(id).start()?;
    }
    let result = drive(config, &mut cluster, &proxy, &mut report);
    report.proxy = proxy.stats();
    proxy.shutdown();
    cluster.kill_all();
    if let Err(e) = result {
        report.failures.push(format!(
            "run aborted: {e:#}\nlogs:\n{}",
            cluster.logs_tail(30)
        ));
    }
    report.pass = report.failures.is_empty();
    let keep = match config.keep_dir {
        KeepDir::Always => true,
        KeepDir::OnFailure => !report.pass,
        KeepDir::Never => false,
    };
    if keep {
        report.kept_dir = Some(cluster.keep_dir());
    } else if config.base_dir.is_some() {
        // A temp dir goes away with the cluster; a chosen one is ours to
        // clean up.
        let _ = std::fs::remove_dir_all(cluster.base_dir());
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Builds the sync shim into the run's directory and starts every node
/// under it (`LD_PRELOAD`, `STRATA_SYNC_LOG=<node dir>/synced.log`). If it
/// cannot be built (no `cc`), the powerloss fault is dropped from the
/// schedule with a notice on stderr and in the report; if it was the only
/// fault kind, the run is not carried out.
fn setup_powerloss(
    config: &mut ChaosConfig,
    cluster: &mut Cluster,
    report: &mut Report,
) -> anyhow::Result<()> {
    let shim = match powerloss::build_shim(cluster.base_dir()) {
        Ok(shim) => shim,
        Err(e) => {
            config.faults.retain(|k| *k != FaultKind::PowerLoss);
            if config.faults.is_empty() {
                return Err(e.context("the powerloss fault needs the sync shim"));
            }
            let note =
                format!("the powerloss fault is DISABLED: cannot build the sync shim: {e:#}");
            eprintln!("seed {}: {note}", config.seed);
            report.notes.push(note);
            return Ok(());
        }
    };
    let preload = match std::env::var("LD_PRELOAD") {
        Ok(other) if !other.trim().is_empty() => format!("{}:{other}", shim.display()),
        _ => shim.display().to_string(),
    };
    for id in cluster.ids() {
        let node = cluster.node_mut(id);
        let log = std::path::absolute(node.dir().join(powerloss::SYNC_LOG_FILE))?;
        node.set_env("LD_PRELOAD", &preload);
        node.set_env(powerloss::SYNC_LOG_ENV, &log.display().to_string());
    }
    Ok(())
}

/// Kills node `id` with SIGKILL and rewinds its files to what its sync log
/// says was durable. Returns what was lost.
fn power_loss(cluster: &mut Cluster, id: u64) -> anyhow::Result<LossReport> {
    let node = cluster.node_mut(id);
    node.kill9();
    let log_path = node.dir().join(powerloss::SYNC_LOG_FILE);
    let log = SyncLog::read(&log_path).with_context(|| format!("read {}", log_path.display()))?;
    if log.lines == 0 {
        // The server syncs when it creates its database: an empty log means
        // the shim is not loaded, and rewinding would wipe the node.
        bail!(
            "node {id}: the sync log {} is empty (is the shim loaded? see {})",
            log_path.display(),
            node.log_path.display()
        );
    }
    powerloss::lose_unsynced(&node.data_dir, &log)
        .with_context(|| format!("rewind node {id}'s files to their synced state"))
}

fn drive(
    config: &ChaosConfig,
    cluster: &mut Cluster,
    proxy: &Proxy,
    report: &mut Report,
) -> anyhow::Result<()> {
    let leader = cluster
        .wait_for_leader(Duration::from_secs(30))
        .context("initial leader")?;
    if config.verbose {
        eprintln!("seed {}: cluster up, leader {leader}", config.seed);
    }
    let ids = cluster.ids();
    let nodes: Vec<(u64, SocketAddr)> = ids
        .iter()
        .map(|&id| (id, cluster.node(id).resp_addr))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut handles = Vec::new();
    for id in 0..config.clients {
        let spec = ClientSpec {
            id,
            seed: config.seed,
            nodes: nodes.clone(),
            registers: config.registers.max(1),
            counters: config.counters.max(1),
            timeout: config.op_timeout(),
            start,
            stop: Arc::clone(&stop),
            stale_reads: config.stale_reads,
        };
        let spawned = std::thread::Builder::new()
            .name(format!("chaos-client-{id}"))
            .spawn(move || client_loop(spec));
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                for handle in handles {
                    let _ = handle.join();
                }
                return Err(e).context("spawn a client thread");
            }
        }
    }

    // The nemesis runs here, on the thread that owns the processes.
    let plan = schedule(config.seed, config.duration, config.nodes, &config.faults);
    let nemesis = nemesis(config, cluster, proxy, &plan, start, report);
    stop.store(true, Ordering::Relaxed);
    let mut logs = Vec::new();
    for handle in handles {
        match handle.join() {
            Ok(log) => logs.push(log),
            Err(_) => report.failures.push("a client thread panicked".into()),
        }
    }
    let client_phase_end = start.elapsed();
    nemesis?;

    // Heal everything and bring every node back.
    proxy.heal();
    for id in cluster.ids() {
        let node = cluster.node_mut(id);
        node.resume();
        if !node.is_running() {
            node.start()
                .with_context(|| format!("restart node {id} after the run"))?;
        }
    }
    let leader = cluster
        .wait_for_leader(config.converge_timeout)
        .context("leader after healing")?;
    report.final_applied_index = cluster
        .wait_converged(&ids, config.converge_timeout)
        .context("convergence after healing")?;
    report.converge_time = start.elapsed().saturating_sub(client_phase_end);
    if config.verbose {
        eprintln!(
            "seed {}: converged at index {} (leader {leader})",
            config.seed, report.final_applied_index
        );
    }

    // Collect the histories.
    let mut histories: BTreeMap<Vec<u8>, Vec<Entry>> = BTreeMap::new();
    for k in 0..config.registers.max(1) {
        histories.insert(format!("r{k}").into_bytes(), Vec::new());
    }
    for k in 0..config.counters.max(1) {
        histories.insert(format!("c{k}").into_bytes(), Vec::new());
    }
    let mut uniques = Vec::new();
    let mut acks = Vec::new();
    for log in logs {
        report.counts.add(&log.counts);
        for (key, entry) in log.entries {
            histories.entry(key.into_bytes()).or_default().push(entry);
        }
        uniques.extend(log.uniques);
        acks.extend(log.write_acks);
        for u in log.unexpected.iter().take(20) {
            report.failures.push(format!("unexpected reply: {u}"));
        }
    }
    let (gap, gap_at) = longest_gap(&mut acks, client_phase_end.as_nanos() as u64);
    report.longest_write_gap = gap;
    report.longest_write_gap_at = gap_at;

    // Final reads through the leader, recorded in the histories.
    let final_client = config.clients;
    let mut leader_client = cluster.node(leader).client(config.op_timeout())?;
    let mut final_values: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
    let keys: Vec<Vec<u8>> = histories.keys().cloned().collect();
    for key in &keys {
        let (call, reply, ret_time) = read_with_retry(&mut leader_client, &[b"GET", key], start)?;
        let value = match reply {
            Reply::Bulk(b) => Some(b.to_vec()),
            Reply::Null => None,
            other => bail!("final GET {}: {other:?}", String::from_utf8_lossy(key)),
        };
        final_values.insert(key.clone(), value.clone());
        histories.entry(key.clone()).or_default().push(Entry {
            client: final_client,
            node: leader,
            op: Op::Get,
            call,
            ret: Some((ret_time, Ret::Value(value))),
        });
    }

    // Replicas: every node's local (READONLY) read equals the leader's.
    for &id in &ids {
        let mut c = cluster.node(id).client(config.op_timeout())?;
        match c.call(&["READONLY"])? {
            Reply::Status(_) => {}
            other => bail!("READONLY on node {id}: {other:?}"),
        }
        for key in &keys {
            let local = match c.call(&[b"GET".as_slice(), key])? {
                Reply::Bulk(b) => Some(b.to_vec()),
                Reply::Null => None,
                other => bail!("READONLY GET on node {id}: {other:?}"),
            };
            if local != final_values[key] {
                report.failures.push(format!(
                    "replicas diverge: key {} is {:?} on node {id} (READONLY) but {:?} on the leader {leader}",
                    String::from_utf8_lossy(key),
                    local.as_deref().map(String::from_utf8_lossy),
                    final_values[key].as_deref().map(String::from_utf8_lossy),
                ));
            }
        }
    }

    // Unique keys: acknowledged ones present, unknown ones absent or exact.
    check_uniques(&mut leader_client, &uniques, start, report)?;

    // Counters: between acknowledged and attempted INCRs (no DEL on them).
    for k in 0..config.counters.max(1) {
        let key = format!("c{k}").into_bytes();
        let history = &histories[&key];
        let acked = history
            .iter()
            .filter(|e| e.op == Op::Incr && matches!(e.ret, Some((_, Ret::Int(_)))))
            .count() as i64;
        let unknown = history
            .iter()
            .filter(|e| e.op == Op::Incr && e.ret.is_none())
            .count() as i64;
        let value = final_values[&key]
            .as_deref()
            .map(|v| String::from_utf8_lossy(v).parse::<i64>().unwrap_or(-1))
            .unwrap_or(0);
        let verdict = if (acked..=acked + unknown).contains(&value) {
            "ok"
        } else {
            report.failures.push(format!(
                "counter c{k} is {value}, but {acked} INCRs were acknowledged and {unknown} unknown \
                 (expected {acked}..={})",
                acked + unknown
            ));
            "FAIL"
        };
        report.checks.push(format!(
            "counter c{k}: final {value}, acknowledged INCRs {acked}, unknown {unknown}: {verdict}"
        ));
    }

    // Linearizability per key.
    for (key, history) in &histories {
        let name = String::from_utf8_lossy(key).into_owned();
        let unknown = history.iter().filter(|e| e.ret.is_none()).count();
        let checked = Instant::now();
        let verdict = checker::check_with_budget(history, config.check_budget);
        let took = checked.elapsed().as_secs_f64();
        match verdict {
            Verdict::Ok => report.checks.push(format!(
                "linearizable {name}: ok ({} ops, {unknown} unknown, checked in {took:.2}s)",
                history.len()
            )),
            Verdict::Inconclusive(i) => {
                report.checks.push(format!(
                    "linearizable {name}: INCONCLUSIVE after {} steps ({} ops, {unknown} unknown)",
                    i.steps,
                    history.len()
                ));
                report.failures.push(format!(
                    "linearizability of {name} not decided within the step budget {}",
                    config.check_budget
                ));
            }
            Verdict::Violation(v) => {
                report.checks.push(format!(
                    "linearizable {name}: VIOLATION ({} ops, {unknown} unknown)",
                    history.len()
                ));
                report.failures.push(format!("key {name}: {v}"));
            }
        }
    }

    // The full history of a failing run, for analysis.
    if !report.failures.is_empty() {
        let mut text = String::new();
        for (key, history) in &histories {
            let mut sorted: Vec<&Entry> = history.iter().collect();
            sorted.sort_by_key(|e| e.call);
            for e in sorted {
                let _ = writeln!(text, "{} {e}", String::from_utf8_lossy(key));
            }
        }
        let path = cluster.base_dir().join("history.txt");
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        report
            .failures
            .push(format!("full history: {}", path.display()));
    }
    Ok(())
}

/// A read retried (bounded) over `-TRYAGAIN`/`-CLUSTERDOWN`; returns call
/// time, reply and return time of the successful attempt.
fn read_with_retry(
    client: &mut Client,
    args: &[&[u8]],
    start: Instant,
) -> anyhow::Result<(u64, Reply, u64)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let call = start.elapsed().as_nanos() as u64;
        let reply = client.call(args)?;
        let ret = start.elapsed().as_nanos() as u64;
        match reply {
            Reply::Error(e) if is_cluster_error(&e) && Instant::now() < deadline => {
                std::thread::sleep(POLL);
            }
            Reply::Error(e) => bail!("final read: {e}"),
            reply => return Ok((call, reply, ret)),
        }
    }
}

fn check_uniques(
    client: &mut Client,
    uniques: &[(String, String, bool)],
    start: Instant,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut lost = Vec::new();
    let mut wrong = Vec::new();
    let mut unknown_present = 0;
    for chunk in uniques.chunks(200) {
        let mut args: Vec<&[u8]> = vec![b"MGET"];
        args.extend(chunk.iter().map(|(k, _, _)| k.as_bytes()));
        let (_, reply, _) = read_with_retry(client, &args, start)?;
        let Reply::Array(values) = reply else {
            bail!("MGET: unexpected reply {reply:?}");
        };
        if values.len() != chunk.len() {
            bail!(
                "MGET of {} keys returned {} values",
                chunk.len(),
                values.len()
            );
        }
        for ((key, value, acked), got) in chunk.iter().zip(values) {
            let got = match got {
                Reply::Bulk(b) => Some(b.to_vec()),
                Reply::Null => None,
                other => bail!("MGET value {other:?}"),
            };
            match (&got, acked) {
                (Some(v), _) if v != value.as_bytes() => wrong.push(format!(
                    "{key} = {:?} (written: {value:?})",
                    String::from_utf8_lossy(v)
                )),
                (Some(_), true) => report.unique_present += 1,
                (Some(_), false) => unknown_present += 1,
                (None, true) => lost.push(key.clone()),
                (None, false) => {}
            }
        }
    }
    report.unique_acked = uniques.iter().filter(|u| u.2).count() as u64;
    let unknown = uniques.len() as u64 - report.unique_acked;
    report.checks.push(format!(
        "unique writes: {} acknowledged, {} lost; {unknown} unknown, {unknown_present} of them present; {} wrong values",
        report.unique_acked,
        lost.len(),
        wrong.len()
    ));
    if !lost.is_empty() {
        report.failures.push(format!(
            "{} acknowledged writes lost, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(10)]
        ));
    }
    if !wrong.is_empty() {
        report.failures.push(format!(
            "{} keys with values never written, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(10)]
        ));
    }
    Ok(())
}

/// The longest interval (and its start) between acknowledged writes in
/// `[0, end]`.
fn longest_gap(acks: &mut [u64], end: u64) -> (Duration, Duration) {
    acks.sort_unstable();
    let mut prev = 0u64;
    let mut best = (0u64, 0u64);
    for &t in acks.iter().chain(std::iter::once(&end)) {
        if t.saturating_sub(prev) > best.0 {
            best = (t - prev, prev);
        }
        prev = prev.max(t);
    }
    (Duration::from_nanos(best.0), Duration::from_nanos(best.1))
}

/// Applies the schedule; returns when the client phase is over. Checks
/// every poll that no node died on its own.
fn nemesis(
    config: &ChaosConfig,
    cluster: &mut Cluster,
    proxy: &Proxy,
    plan: &[Fault],
    start: Instant,
    report: &mut Report,
) -> anyhow::Result<()> {
    let ids = cluster.ids();
    // Nodes we stopped on purpose (killed, or paused).
    let mut killed: BTreeSet<u64> = BTreeSet::new();
    let wait_until = |cluster: &mut Cluster,
                      killed: &BTreeSet<u64>,
                      report: &mut Report,
                      at: Duration|
     -> anyhow::Result<()> {
        loop {
            for id in cluster.ids() {
                if !killed.contains(&id) && !cluster.node_mut(id).is_running() {
                    let status = cluster.node(id).last_exit;
                    report.failures.push(format!(
                        "node {id} exited on its own ({status:?}) at t={:.2}s; log tail:\n{}",
                        start.elapsed().as_secs_f64(),
                        cluster.node(id).log_tail(30)
                    ));
                    bail!("node {id} died");
                }
            }
            let now = start.elapsed();
            if now >= at {
                return Ok(());
            }
            std::thread::sleep((at - now).min(Duration::from_millis(100)));
        }
    };
    for fault in plan {
        wait_until(cluster, &killed, report, fault.at)?;
        let targets: Vec<u64> = match &fault.target {
            Target::Leader => {
                let running = cluster.running_ids();
                let leader = cluster.agreed_leader(&running).or_else(|| {
                    // No agreement right now: whoever a majority names.
                    let views = cluster.leader_views(&running);
                    views
                        .values()
                        .find_map(|v| v.as_ref().ok().cloned().flatten().map(|l| l.id))
                });
                vec![leader.unwrap_or(ids[(fault.at.as_millis() as usize) % ids.len()])]
            }
            Target::Node(n) => vec![*n],
            Target::Nodes(ns) => ns.clone(),
            Target::All => ids.clone(),
        };
        let resolved = match &fault.target {
            Target::Leader => format!(" [leader = node {}]", targets[0]),
            _ => String::new(),
        };
        let line = format!(
            "{fault}{resolved} (applied at t={:.2}s)",
            start.elapsed().as_secs_f64()
        );
        if config.verbose {
            eprintln!("seed {}: {line}", config.seed);
        }
        report.faults.push(line);
        match fault.kind {
            FaultKind::Partition => proxy.split(&targets, &ids),
            FaultKind::OneWay => {
                for &a in &targets {
                    for &b in ids.iter().filter(|b| !targets.contains(b)) {
                        proxy.update_link(a, b, |f| f.partitioned = true);
                    }
                }
            }
            FaultKind::Delay => proxy.delay(&targets, &ids, fault.delay_ms, fault.jitter_ms),
            FaultKind::Loss => proxy.loss(&targets, &ids, fault.loss),
            FaultKind::Kill => {
                for &id in &targets {
                    killed.insert(id);
                    cluster.node_mut(id).kill9();
                }
            }
            FaultKind::Pause => {
                for &id in &targets {
                    killed.insert(id);
                    cluster.node(id).pause();
                }
            }
            FaultKind::PowerLoss => {
                for &id in &targets {
                    killed.insert(id);
                    let lost = power_loss(cluster, id)?;
                    let detail = format!("; node {id}: {lost}");
                    if config.verbose {
                        eprintln!("seed {}: power loss{detail}", config.seed);
                    }
                    if let Some(line) = report.faults.last_mut() {
                        line.push_str(&detail);
                    }
                    report.powerlosses += 1;
                    report.powerloss.add(&lost);
                }
            }
        }
        wait_until(cluster, &killed, report, fault.at + fault.hold)?;
        match fault.kind {
            FaultKind::Kill | FaultKind::PowerLoss => {
                for &id in &targets {
                    cluster
                        .node_mut(id)
                        .start()
                        .with_context(|| format!("restart node {id}"))?;
                    killed.remove(&id);
                }
            }
            FaultKind::Pause => {
                for &id in &targets {
                    cluster.node(id).resume();
                    killed.remove(&id);
                }
            }
            _ => proxy.heal(),
        }
        if config.verbose {
            eprintln!(
                "seed {}: healed at t={:.2}s",
                config.seed,
                start.elapsed().as_secs_f64()
            );
        }
    }
    wait_until(cluster, &killed, report, config.duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_deterministic_and_bounded() {
        let d = Duration::from_secs(30);
        let a = schedule(42, d, 3, &FaultKind::ALL);
        let b = schedule(42, d, 3, &FaultKind::ALL);
        assert_eq!(a, b);
        assert_ne!(a, schedule(43, d, 3, &FaultKind::ALL));
        assert!(a.len() >= 4, "{a:?}");
        let mut prev_end = Duration::ZERO;
        for f in &a {
            assert!(f.at >= prev_end, "faults overlap: {a:?}");
            assert!(f.at + f.hold <= d, "{f}");
            prev_end = f.at + f.hold;
            match &f.target {
                Target::Node(n) => assert!((1..=3).contains(n)),
                Target::Nodes(ns) => panic!("minority of 3 nodes is one node: {ns:?}"),
                _ => {}
            }
        }
        let only_kill = schedule(1, d, 3, &[FaultKind::Kill]);
        assert!(only_kill.iter().all(|f| f.kind == FaultKind::Kill));
        let five = schedule(5, Duration::from_secs(200), 5, &[FaultKind::Partition]);
        assert!(
            five.iter()
                .any(|f| matches!(&f.target, Target::Nodes(ns) if ns.len() == 2))
        );
        assert!(schedule(1, d, 3, &[]).is_empty());
    }

    #[test]
    fn fault_kinds_parse() {
        for k in FaultKind::ALL {
            assert_eq!(FaultKind::parse(k.name()), Some(k));
        }
        assert_eq!(FaultKind::parse("nope"), None);
    }

    #[test]
    fn gaps() {
        let mut acks = vec![5, 1, 2, 10];
        assert_eq!(
            longest_gap(&mut acks, 12),
            (Duration::from_nanos(5), Duration::from_nanos(5))
        );
        assert_eq!(
            longest_gap(&mut [], 7),
            (Duration::from_nanos(7), Duration::ZERO)
        );
    }

    #[test]
    fn classification() {
        let set = Op::Set(b"v".to_vec());
        assert!(matches!(
            classify(&set, Ok(Reply::ok())),
            Outcome::Done(Ret::Ok)
        ));
        assert!(matches!(
            classify(&set, Ok(Reply::Error("CLUSTERDOWN no leader".into()))),
            Outcome::Unknown
        ));
        assert!(matches!(
            classify(&set, Ok(Reply::Error("TRYAGAIN leader changed".into()))),
            Outcome::Unknown
        ));
        assert!(matches!(
            classify(&set, Err(ClientError::Closed)),
            Outcome::Unknown
        ));
        assert!(matches!(
            classify(
                &Op::Incr,
                Ok(Reply::Error(
                    "ERR value is not an integer or out of range".into()
                ))
            ),
            Outcome::Done(Ret::Err)
        ));
        assert!(matches!(
            classify(&set, Ok(Reply::Error("ERR boom".into()))),
            Outcome::Unexpected(_)
        ));
        assert!(matches!(
            classify(&Op::Get, Ok(Reply::Null)),
            Outcome::Done(Ret::Value(None))
        ));
        assert!(matches!(
            classify(&Op::Del, Ok(Reply::Integer(1))),
            Outcome::Done(Ret::Int(1))
        ));
    }
}
