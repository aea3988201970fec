//! Per-command statistics (INFO commandstats, errorstats, latencystats),
//! the instantaneous rates, and the slow log's feed.
//!
//! **A command's time** runs from when the server starts running it until
//! its reply is ready. For a read that is its execution (in a cluster,
//! with its ReadIndex round); for a write it includes waiting for its
//! group commit (the fsync under `--fsync always`, the Raft round in a
//! cluster), because that wait is the write's work here; Redis's fsync
//! happens after its command and is not counted. A command that must wait
//! for the writes pipelined before it (a read after them) starts when
//! they are answered, so their commit is not counted twice.
//!
//! **Cost on the hot path.** Each connection counts into its own [`Tally`]
//! (plain integers: no atomics, no locks) and adds it into the shared
//! [`CommandStats`] when it is about to wait for bytes, before a command
//! that may read the stats (INFO and every other non-`fast` read), and
//! every [`SAMPLES_MAX`] commands. The clock is the real cost: reading it
//! took about 60 to 100 ns on the VMs this was measured on (the TSC is
//! trapped there), so the tally reads it once per immediate reply (that
//! reading is also the next command's start) and once per batch of writes
//! answered together, never twice per command.
//!
//! Redis's meanings: a **rejected** call was refused before it ran (wrong
//! arity, a key over `key-size-bytes-max`, an unknown subcommand, or
//! anything refused while a transaction queues it) and is not a call; a
//! **failed** call ran and answered an error. Commands inside MULTI are
//! counted when EXEC runs them, as calls of their own name (failed when
//! their reply in EXEC's array is an error); their time is EXEC's.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use strata_protocol::resp::Reply;

use crate::cmd::slowlog::Client;
use crate::cmd::{self, Action, Spec, TABLE};
use crate::shared::{ServerStats, Shared};

/// Latency samples a connection holds before it adds them (and its
/// counters) into the shared statistics: bounds its memory (8 bytes a
/// sample) and how far the shared numbers lag behind a long pipeline.
pub const SAMPLES_MAX: usize = 512;
/// Distinct error codes errorstats tracks (Redis's ERROR_STATS_NUMBER);
/// past it, errorstats stops until CONFIG RESETSTAT, as in Redis.
const ERROR_CODES_MAX: usize = 128;
/// Redis's latency histograms: 1 ns to 1 s, 2 significant digits (a
/// longer command is recorded as 1 s).
const LATENCY_NS_MIN: u64 = 1;
const LATENCY_NS_MAX: u64 = 1_000_000_000;
const LATENCY_SIGFIG: u8 = 2;
/// Redis samples the instantaneous rates every 100 ms and averages 16.
pub const RATE_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);
const RATE_SAMPLES: usize = 16;

/// The shared side: one set of counters per command of [`TABLE`].
pub struct CommandStats {
    commands: Box<[Counters]>,
    errors: Mutex<ErrorTable>,
    rates: Mutex<Rates>,
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    nanos: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    /// Created at the command's first call; dropped by RESETSTAT.
    latency: Mutex<Option<Box<Histogram<u64>>>>,
}

#[derive(Default)]
struct ErrorTable {
    counts: BTreeMap<String, u64>,
    total: u64,
    disabled: bool,
}

/// What INFO shows as `instantaneous_*`.
#[derive(Default)]
struct Rates {
    /// The previous sample: when, and the counters then.
    last: Option<(Instant, [u64; 3])>,
    /// Per second: commands, input bytes, output bytes.
    samples: [[u64; RATE_SAMPLES]; 3],
    next: usize,
}

impl Default for CommandStats {
    fn default() -> Self {
        CommandStats {
            commands: TABLE.iter().map(|_| Counters::default()).collect(),
            errors: Mutex::default(),
            rates: Mutex::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl CommandStats {
    /// Adds a connection's tally.
    fn add(&self, local: &[Local], samples: &[(u16, u32)]) {
        for l in local {
            let Some(c) = self.commands.get(usize::from(l.idx)) else {
                continue;
            };
            for (counter, n) in [
                (&c.calls, l.calls),
                (&c.nanos, l.nanos),
                (&c.rejected, l.rejected),
                (&c.failed, l.failed),
            ] {
                if n > 0 {
                    counter.fetch_add(n, Relaxed);
                }
            }
            let mut mine = samples.iter().filter(|(i, _)| *i == l.idx).peekable();
            if mine.peek().is_none() {
                continue;
            }
            let mut latency = lock(&c.latency);
            if latency.is_none() {
                *latency =
                    Histogram::new_with_bounds(LATENCY_NS_MIN, LATENCY_NS_MAX, LATENCY_SIGFIG)
                        .ok()
                        .map(Box::new);
            }
            if let Some(h) = latency.as_mut() {
                for &(_, ns) in mine {
                    h.saturating_record(u64::from(ns).clamp(LATENCY_NS_MIN, LATENCY_NS_MAX));
                }
            }
        }
    }

    /// Counts an error reply under its code (the first word, as Redis).
    pub fn count_error(&self, text: &str) {
        let code = error_code(text);
        let mut t = lock(&self.errors);
        t.total += 1;
        if t.disabled {
            return;
        }
        if let Some(n) = t.counts.get_mut(code) {
            *n += 1;
        } else if t.counts.len() >= ERROR_CODES_MAX {
            tracing::warn!(
                "errorstats stopped counting new error codes: {ERROR_CODES_MAX} distinct codes \
                 were seen (CONFIG RESETSTAT starts it again)"
            );
            t.counts.clear();
            t.counts.insert("ERRORSTATS_DISABLED".into(), 1);
            t.disabled = true;
        } else {
            t.counts.insert(code.to_string(), 1);
        }
    }

    pub fn total_error_replies(&self) -> u64 {
        lock(&self.errors).total
    }

    /// CONFIG RESETSTAT.
    pub fn reset(&self) {
        for c in self.commands.iter() {
            for counter in [&c.calls, &c.nanos, &c.rejected, &c.failed] {
                counter.store(0, Relaxed);
            }
            *lock(&c.latency) = None;
        }
        *lock(&self.errors) = ErrorTable::default();
        *lock(&self.rates) = Rates::default();
    }

    /// `cmdstat_<name>:calls=…,usec=…,usec_per_call=…,rejected_calls=…,failed_calls=…`
    /// for every command called or refused since the start or RESETSTAT.
    pub fn write_commandstats(&self, out: &mut String) {
        for (spec, c) in TABLE.iter().zip(self.commands.iter()) {
            let calls = c.calls.load(Relaxed);
            let rejected = c.rejected.load(Relaxed);
            let failed = c.failed.load(Relaxed);
            if calls == 0 && rejected == 0 && failed == 0 {
                continue;
            }
            let nanos = c.nanos.load(Relaxed);
            let per_call = if calls == 0 {
                0.0
            } else {
                nanos as f64 / 1000.0 / calls as f64
            };
            let _ = write!(
                out,
                "cmdstat_{}:calls={calls},usec={},usec_per_call={per_call:.2},rejected_calls={rejected},failed_calls={failed}\r\n",
                spec.name,
                nanos / 1000,
            );
        }
    }

    /// `errorstat_<CODE>:count=…`, in code order.
    pub fn write_errorstats(&self, out: &mut String) {
        for (code, n) in &lock(&self.errors).counts {
            let _ = write!(out, "errorstat_{code}:count={n}\r\n");
        }
    }

    /// `latency_percentiles_usec_<name>:p50=…,p99=…,p99.9=…`.
    pub fn write_latencystats(&self, out: &mut String) {
        for (spec, c) in TABLE.iter().zip(self.commands.iter()) {
            let latency = lock(&c.latency);
            let Some(h) = latency.as_ref().filter(|h| !h.is_empty()) else {
                continue;
            };
            let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            let _ = write!(
                out,
                "latency_percentiles_usec_{}:p50={:.3},p99={:.3},p99.9={:.3}\r\n",
                spec.name,
                us(0.5),
                us(0.99),
                us(0.999),
            );
        }
    }

    /// Every command called or refused since the start or RESETSTAT, as
    /// `/metrics` shows it: its counters, and its latency samples counted
    /// per bucket of `bounds_ns` (inclusive upper bounds, ascending; one
    /// more bucket at the end for the rest). Bucket edges are exact to the
    /// histogram's 2 significant digits, and a command slower than 1 s was
    /// recorded as 1 s (see `LATENCY_NS_MAX`). Takes each command's
    /// histogram lock briefly, at scrape time only.
    pub fn each_command(&self, bounds_ns: &[u64], mut f: impl FnMut(CommandSample)) {
        for (spec, c) in TABLE.iter().zip(self.commands.iter()) {
            let calls = c.calls.load(Relaxed);
            let rejected = c.rejected.load(Relaxed);
            let failed = c.failed.load(Relaxed);
            if calls == 0 && rejected == 0 && failed == 0 {
                continue;
            }
            let mut latency = vec![0u64; bounds_ns.len() + 1];
            if let Some(h) = lock(&c.latency).as_ref() {
                for v in h.iter_recorded() {
                    let ns = h.lowest_equivalent(v.value_iterated_to());
                    let i = bounds_ns.partition_point(|&b| b < ns);
                    if let Some(n) = latency.get_mut(i) {
                        *n += v.count_at_value();
                    }
                }
            }
            f(CommandSample {
                name: spec.name,
                calls,
                failed,
                rejected,
                nanos: c.nanos.load(Relaxed),
                latency,
            });
        }
    }

    /// errorstats' counts by error code, in code order.
    pub fn error_counts(&self) -> Vec<(String, u64)> {
        lock(&self.errors)
            .counts
            .iter()
            .map(|(code, n)| (code.clone(), *n))
            .collect()
    }

    /// One sample of the instantaneous rates (every 100 ms).
    fn sample_rates(&self, now: Instant, values: [u64; 3]) {
        let mut r = lock(&self.rates);
        if let Some((then, before)) = r.last {
            let secs = now.duration_since(then).as_secs_f64();
            let slot = r.next;
            for (i, (v, b)) in values.iter().zip(before).enumerate() {
                // After RESETSTAT a counter may be below its last sample.
                let delta = v.saturating_sub(b) as f64;
                r.samples[i][slot] = if secs > 0.0 { (delta / secs) as u64 } else { 0 };
            }
            r.next = (slot + 1) % RATE_SAMPLES;
        }
        r.last = Some((now, values));
    }

    /// Commands per second, input and output bytes per second: the
    /// average of the last 16 samples (1.6 s), as Redis computes them.
    pub fn rates(&self) -> [u64; 3] {
        let r = lock(&self.rates);
        r.samples
            .map(|s| s.iter().sum::<u64>() / RATE_SAMPLES as u64)
    }
}

/// One command's statistics as [`CommandStats::each_command`] reads them.
pub struct CommandSample {
    pub name: &'static str,
    /// Calls that ran (failed ones included), refusals before running.
    pub calls: u64,
    pub failed: u64,
    pub rejected: u64,
    /// Time of the calls that have a latency sample, in ns.
    pub nanos: u64,
    /// Latency samples per bucket (not cumulative), the last one for
    /// everything above the last bound.
    pub latency: Vec<u64>,
}

/// Samples the instantaneous rates every 100 ms until shutdown.
pub async fn sample_rates(shared: Arc<Shared>, mut shutdown: crate::shutdown::Shutdown) {
    let mut tick = tokio::time::interval(RATE_SAMPLE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.recv() => return,
        }
        let s: &ServerStats = &shared.stats;
        s.commands.sample_rates(
            Instant::now(),
            [
                s.commands_processed.load(Relaxed),
                s.net_input_bytes.load(Relaxed),
                s.net_output_bytes.load(Relaxed),
            ],
        );
    }
}

/// An error reply's code, as Redis finds it: the first word if a space
/// comes within 32 bytes, else `ERR`. Characters INFO cannot carry are
/// never part of our codes, but `:` or `#` would become `_` in Redis.
pub fn error_code(text: &str) -> &str {
    let head = &text.as_bytes()[..text.len().min(32)];
    match head.iter().position(|&b| b == b' ') {
        Some(end) if end > 0 => {
            let code = &text[..end];
            if code
                .bytes()
                .any(|b| matches!(b, b':' | b'#' | b'\r' | b'\n'))
            {
                "ERR"
            } else {
                code
            }
        }
        _ => "ERR",
    }
}

/// Whether an error reply is a refusal before the command ran (Redis's
/// rejected calls). By text, so that every module's refusals count alike:
/// arity (commands and subcommands), keys over the size limit, and
/// unknown subcommands.
pub fn is_rejection(text: &str) -> bool {
    [
        "ERR wrong number of arguments",
        "ERR unknown subcommand",
        "ERR key too large",
    ]
    .iter()
    .any(|p| text.starts_with(p))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    Failed,
    Rejected,
}

fn verdict(reply: &Reply) -> Verdict {
    match reply {
        Reply::Error(text) if is_rejection(text) => Verdict::Rejected,
        Reply::Error(_) => Verdict::Failed,
        _ => Verdict::Ok,
    }
}

/// What the tally needs to know of each command, by table index.
#[derive(Clone, Copy)]
struct Role {
    /// Not a write and not `fast` (INFO, CONFIG, SLOWLOG, KEYS...): the
    /// connection's tally is added in first, so INFO sees the commands
    /// pipelined before it.
    reads_stats: bool,
    exec: bool,
    /// MULTI and DISCARD start a transaction's queue afresh.
    clears_queue: bool,
}

fn roles() -> &'static [Role] {
    static ROLES: OnceLock<Vec<Role>> = OnceLock::new();
    ROLES.get_or_init(|| {
        TABLE
            .iter()
            .map(|s| Role {
                reads_stats: s.kind != cmd::Kind::Write && s.cost == cmd::Cost::Slow,
                exec: s.name == "exec",
                clears_queue: matches!(s.name, "multi" | "discard"),
            })
            .collect()
    })
}

/// A command's counts since the connection last added them in.
#[derive(Clone, Copy)]
struct Local {
    idx: u16,
    calls: u64,
    nanos: u64,
    rejected: u64,
    failed: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Ran; its reply comes later (a write, a cluster call).
    Run,
    Exec,
    /// Queued by MULTI: a refusal is a rejected call, QUEUED is no call.
    Queued,
    /// Not a command we know: only errorstats counts it.
    Unknown,
}

/// A command whose reply comes after other work.
struct Inflight {
    idx: u16,
    kind: Kind,
    started: Option<Instant>,
    args: Vec<Bytes>,
}

/// Answered, waiting for the clock reading that ends it.
struct Answered {
    idx: u16,
    started: Instant,
    verdict: Verdict,
    args: Vec<Bytes>,
}

/// One connection's statistics between two additions into the shared
/// ones. The RESP connection calls `start` when a request is parsed, `ran`
/// after `cmd::execute`, `replied` for every reply, in order, and `flush`
/// before it waits for bytes (RESP and text connections alike).
pub struct Tally {
    shared: Arc<Shared>,
    requests: u64,
    local: Vec<Local>,
    samples: Vec<(u16, u32)>,
    inflight: VecDeque<Inflight>,
    answered: Vec<Answered>,
    /// The command now running, and its start.
    current: Option<(u16, Instant)>,
    /// The latest clock reading.
    clock: Option<Instant>,
    /// Commands an open transaction queued, counted when EXEC runs them.
    queued: Vec<u16>,
    /// The slow log's threshold, read again at every flush.
    slower_than_us: i64,
}

impl Tally {
    pub fn new(shared: Arc<Shared>) -> Tally {
        let slower_than_us = shared.slowlog.slower_than_us();
        Tally {
            shared,
            requests: 0,
            local: Vec::new(),
            samples: Vec::new(),
            inflight: VecDeque::new(),
            answered: Vec::new(),
            current: None,
            clock: None,
            queued: Vec::new(),
            slower_than_us,
        }
    }

    fn read_clock(&mut self) -> Instant {
        let now = Instant::now();
        self.clock = Some(now);
        now
    }

    fn local(&mut self, idx: u16) -> &mut Local {
        let pos = match self.local.iter().rposition(|l| l.idx == idx) {
            Some(pos) => pos,
            None => {
                self.local.push(Local {
                    idx,
                    calls: 0,
                    nanos: 0,
                    rejected: 0,
                    failed: 0,
                });
                self.local.len() - 1
            }
        };
        &mut self.local[pos]
    }

    /// A request was parsed: `spec` is None for an unknown command.
    /// `fresh`: nothing was awaited since the tally last read the clock
    /// (the connection's cached wall time is still valid), so that
    /// reading is this command's start.
    pub fn start(
        &mut self,
        spec: Option<&'static Spec>,
        in_multi: bool,
        fresh: bool,
        client: &Client<'_>,
    ) {
        self.requests += 1;
        self.current = None;
        let Some(idx) = spec.and_then(cmd::spec_index) else {
            self.inflight.push_back(Inflight {
                idx: u16::MAX,
                kind: Kind::Unknown,
                started: None,
                args: Vec::new(),
            });
            return;
        };
        if in_multi && !spec.is_some_and(cmd::tx::runs_in_multi) {
            self.inflight.push_back(Inflight {
                idx,
                kind: Kind::Queued,
                started: None,
                args: Vec::new(),
            });
            return;
        }
        if roles()[usize::from(idx)].reads_stats {
            self.flush(Some(client));
        }
        let started = match self.clock {
            Some(t) if fresh => t,
            _ => self.read_clock(),
        };
        self.current = Some((idx, started));
    }

    /// `cmd::execute` returned `action`: an immediate reply is counted
    /// now; anything else when its reply comes.
    pub fn ran(&mut self, args: Vec<Bytes>, action: &Action, client: &Client<'_>) {
        let Some((idx, started)) = self.current.take() else {
            return;
        };
        let role = roles()[usize::from(idx)];
        match action {
            Action::Reply(r) | Action::Close(r) => {
                if role.clears_queue {
                    self.queued.clear();
                }
                let end = self.read_clock();
                self.finish(idx, started, end, verdict(r), &args, Some(client));
            }
            _ => self.inflight.push_back(Inflight {
                idx,
                kind: if role.exec { Kind::Exec } else { Kind::Run },
                started: Some(started),
                args,
            }),
        }
    }

    /// A reply is being sent. Replies come in request order, so one whose
    /// command is in flight belongs to the oldest such command.
    pub fn replied(&mut self, reply: &Reply, client: &Client<'_>) {
        if let Reply::Error(text) = reply {
            self.shared.stats.commands.count_error(text);
        }
        let Some(entry) = self.inflight.pop_front() else {
            return;
        };
        match (entry.kind, entry.started) {
            (Kind::Queued, _) => match reply {
                Reply::Error(_) => self.local(entry.idx).rejected += 1,
                Reply::Status(s)
                    if s == "QUEUED" && self.queued.len() < cmd::tx::QUEUED_COMMANDS_MAX =>
                {
                    self.queued.push(entry.idx);
                }
                _ => {}
            },
            (Kind::Run | Kind::Exec, Some(started)) => {
                if entry.kind == Kind::Exec {
                    self.count_exec(reply);
                }
                self.answered.push(Answered {
                    idx: entry.idx,
                    started,
                    verdict: verdict(reply),
                    args: entry.args,
                });
            }
            _ => {}
        }
        // The last of a batch answered together: one clock reading ends
        // them all, and starts the command that waited for them.
        if self.inflight.is_empty() && (!self.answered.is_empty() || self.current.is_some()) {
            let now = self.read_clock();
            self.settle(now, Some(client));
            if let Some((_, started)) = self.current.as_mut() {
                *started = now;
            }
        }
    }

    /// EXEC ran the queued commands: each is a call of its own, failed
    /// (and in errorstats) when its reply in EXEC's array is an error.
    fn count_exec(&mut self, reply: &Reply) {
        let queued = std::mem::take(&mut self.queued);
        let Reply::Array(items) = reply else {
            return;
        };
        for item in items {
            if let Reply::Error(text) = item {
                self.shared.stats.commands.count_error(text);
            }
        }
        if items.len() == queued.len() {
            for (&idx, item) in queued.iter().zip(items) {
                let l = self.local(idx);
                l.calls += 1;
                if item.is_error() {
                    l.failed += 1;
                }
            }
        }
    }

    fn settle(&mut self, end: Instant, client: Option<&Client<'_>>) {
        for a in std::mem::take(&mut self.answered) {
            self.finish(a.idx, a.started, end, a.verdict, &a.args, client);
        }
    }

    fn finish(
        &mut self,
        idx: u16,
        started: Instant,
        end: Instant,
        verdict: Verdict,
        args: &[Bytes],
        client: Option<&Client<'_>>,
    ) {
        if verdict == Verdict::Rejected {
            self.local(idx).rejected += 1;
            return;
        }
        let nanos =
            u64::try_from(end.saturating_duration_since(started).as_nanos()).unwrap_or(u64::MAX);
        let l = self.local(idx);
        l.calls += 1;
        l.nanos = l.nanos.saturating_add(nanos);
        if verdict == Verdict::Failed {
            l.failed += 1;
        }
        self.samples
            .push((idx, u32::try_from(nanos).unwrap_or(u32::MAX)));
        let us = nanos / 1000;
        if self.slower_than_us >= 0
            && us >= self.slower_than_us.unsigned_abs()
            && let Some(client) = client
        {
            self.shared.slowlog.push(args, us, client);
        }
        if self.samples.len() >= SAMPLES_MAX {
            self.publish();
        }
    }

    /// Adds this connection's counts into the shared statistics and reads
    /// the slow log's threshold again. Called before the connection waits
    /// for bytes, before a command that reads the statistics, and on drop.
    pub fn flush(&mut self, client: Option<&Client<'_>>) {
        if !self.answered.is_empty() {
            let now = self.read_clock();
            self.settle(now, client);
        }
        self.publish();
        self.slower_than_us = self.shared.slowlog.slower_than_us();
    }

    fn publish(&mut self) {
        let stats = &self.shared.stats;
        if self.requests > 0 {
            stats.commands_processed.fetch_add(self.requests, Relaxed);
            self.requests = 0;
        }
        if !self.local.is_empty() {
            stats.commands.add(&self.local, &self.samples);
            self.local.clear();
            self.samples.clear();
        }
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        self.flush(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_the_first_word_as_in_redis() {
        assert_eq!(error_code("ERR syntax error"), "ERR");
        assert_eq!(error_code("WRONGTYPE Operation against a key"), "WRONGTYPE");
        assert_eq!(error_code("EXECABORT Transaction discarded"), "EXECABORT");
        assert_eq!(error_code("NOSPACEINTHISVERYLONGERRORTEXTATALL"), "ERR");
        assert_eq!(error_code(&format!("{} x", "A".repeat(40))), "ERR");
        assert_eq!(error_code(" leading space"), "ERR");
        assert_eq!(error_code("a:b c"), "ERR");
        assert_eq!(error_code(""), "ERR");
    }

    #[test]
    fn rejections_are_refusals_before_running() {
        assert!(is_rejection(
            "ERR wrong number of arguments for 'get' command"
        ));
        assert!(is_rejection(
            "ERR wrong number of arguments for 'config|get' command"
        ));
        assert!(is_rejection("ERR unknown subcommand 'x'. Try CONFIG HELP."));
        assert!(is_rejection(
            "ERR key too large (70000 bytes; the limit is 16384, see key-size-bytes-max)"
        ));
        assert!(!is_rejection("ERR syntax error"));
        assert!(!is_rejection("ERR value is not an integer or out of range"));
        assert!(!is_rejection("WRONGTYPE Operation against a key"));
    }

    #[test]
    fn counts_are_added_and_shown_in_redis_format() {
        let stats = CommandStats::default();
        let get = cmd::spec_index(cmd::lookup(b"get").unwrap()).unwrap();
        let set = cmd::spec_index(cmd::lookup(b"set").unwrap()).unwrap();
        let local = [
            Local {
                idx: get,
                calls: 4,
                nanos: 10_000,
                rejected: 1,
                failed: 0,
            },
            Local {
                idx: set,
                calls: 0,
                nanos: 0,
                rejected: 2,
                failed: 0,
            },
        ];
        let samples = [(get, 1_000), (get, 2_000), (get, 3_000), (get, 4_000)];
        stats.add(&local, &samples);
        stats.add(&local[..1], &[]);
        let mut out = String::new();
        stats.write_commandstats(&mut out);
        assert_eq!(
            out,
            "cmdstat_get:calls=8,usec=20,usec_per_call=2.50,rejected_calls=2,failed_calls=0\r\n\
             cmdstat_set:calls=0,usec=0,usec_per_call=0.00,rejected_calls=2,failed_calls=0\r\n"
        );
        let mut out = String::new();
        stats.write_latencystats(&mut out);
        assert!(
            out.starts_with("latency_percentiles_usec_get:p50=2.0") && out.contains(",p99=4.0"),
            "{out}"
        );
        stats.reset();
        let mut out = String::new();
        stats.write_commandstats(&mut out);
        stats.write_latencystats(&mut out);
        assert_eq!(out, "");
    }

    #[test]
    fn errorstats_stop_at_their_bound_until_reset() {
        let stats = CommandStats::default();
        stats.count_error("ERR syntax error");
        stats.count_error("WRONGTYPE x");
        stats.count_error("ERR other");
        let mut out = String::new();
        stats.write_errorstats(&mut out);
        assert_eq!(
            out,
            "errorstat_ERR:count=2\r\nerrorstat_WRONGTYPE:count=1\r\n"
        );
        for i in 0..ERROR_CODES_MAX {
            stats.count_error(&format!("E{i} x"));
        }
        let mut out = String::new();
        stats.write_errorstats(&mut out);
        assert_eq!(out, "errorstat_ERRORSTATS_DISABLED:count=1\r\n");
        assert_eq!(stats.total_error_replies(), 3 + ERROR_CODES_MAX as u64);
        stats.reset();
        stats.count_error("ERR x");
        let mut out = String::new();
        stats.write_errorstats(&mut out);
        assert_eq!(out, "errorstat_ERR:count=1\r\n");
    }

    #[test]
    fn rates_average_sixteen_samples_per_second() {
        let stats = CommandStats::default();
        let t0 = Instant::now();
        stats.sample_rates(t0, [0, 0, 0]);
        assert_eq!(stats.rates(), [0, 0, 0]);
        for i in 1..=16u64 {
            let t = t0 + RATE_SAMPLE_INTERVAL * i as u32;
            stats.sample_rates(t, [i * 100, i * 1000, i * 10]);
        }
        // 100 commands per 100 ms: 1,000 a second.
        assert_eq!(stats.rates(), [1000, 10_000, 100]);
        stats.reset();
        assert_eq!(stats.rates(), [0, 0, 0]);
    }
}
