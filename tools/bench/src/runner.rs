//! The per-connection load loops (load phase and measured run) and the
//! statistics they collect.
//!
//! Each connection sends its requests in pipelines of `--pipeline`
//! requests, like `redis-benchmark -P`: it writes the whole pipeline, reads
//! every reply, then sends the next one. A request's latency runs from the
//! moment its pipeline is written to the moment its own reply is parsed.
//! The operations are built as a target-neutral [`Batch`] (RESP commands or
//! etcd HTTP requests); etcd runs with `--pipeline 1`, one request in flight.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use strata_protocol::resp::Reply;

use crate::client::error_text;
use crate::keys::{KeyChooser, Zipfian, key_bytes, key_max, latest_index};
use crate::target::{Batch, Conn, Target};
use crate::values::Values;
use crate::workload::{OpKind, Workload};

/// Latencies are recorded in microseconds up to this value; anything
/// slower saturates (the reply timeout ends a connection long before).
pub const LATENCY_MAX_US: u64 = 3_600_000_000;
/// Histogram precision: 3 significant digits (0.1%) cost ~90 KB per
/// histogram (u32 counts); above this many connections we use 2 digits (1%,
/// ~13 KB), so 10,000 connections with two operation types need ~260 MB
/// instead of ~1.8 GB.
pub const PRECISE_HISTOGRAMS_CONNECTIONS_MAX: u64 = 256;

/// Everything a connection needs to generate its requests; shared, read-only.
#[derive(Debug, Clone)]
pub struct Plan {
    pub target: Target,
    pub workload: Workload,
    pub distribution: crate::keys::Distribution,
    pub keyspace: u64,
    pub value_size_bytes: usize,
    /// `Some` for `--values random`: the pool every write cuts its value from.
    pub value_pool: Option<crate::values::Pool>,
    /// `Some` for `--values words`: the text every write cuts its value from.
    pub word_pool: Option<crate::values::WordPool>,
    /// `Some` for `--workload commands`: the commands to replay.
    pub commands: Option<Arc<crate::commands::Commands>>,
    pub batch: u64,
    pub scan_length: u64,
    pub pipeline: usize,
    pub connections: u64,
    pub seed: u64,
    /// Scrambled-zipfian ranks over the keyspace (only if zipfian is chosen).
    pub zipf: Option<Zipfian>,
    /// Ranks for ycsb-d's "latest" reads.
    pub latest_zipf: Option<Zipfian>,
    pub histogram_sigfig: u8,
}

/// When the measured phase starts and how it ends.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub measure_start: Instant,
    pub stop: RunStop,
}

#[derive(Debug, Clone, Copy)]
pub enum RunStop {
    /// No new operation starts at or after this instant.
    At(Instant),
    /// This many measured operations in total, over all connections.
    Requests(u64),
}

/// Counters shared by all connections.
#[derive(Debug, Default)]
pub struct Shared {
    /// Inserts issued so far (ycsb-d/e); insert `n` writes key `keyspace + n`.
    pub inserts_issued: AtomicU64,
    /// Inserts acknowledged; ycsb-d reads the latest acknowledged keys.
    pub inserts_acked: AtomicU64,
    /// Measured operations claimed (requests mode).
    pub claimed: AtomicU64,
    /// Measured operations completed (progress display only).
    pub completed: AtomicU64,
    /// The next command of `--workload commands` (modulo their count).
    pub commands_next: AtomicU64,
}

/// Per-operation-type results of one connection (or, merged, of the run).
#[derive(Debug)]
pub struct KindStats<C: hdrhistogram::Counter> {
    pub ops: u64,
    pub errors: u64,
    pub latency_us: Histogram<C>,
}

/// One connection's results.
#[derive(Debug)]
pub struct ConnStats {
    pub by_kind: [Option<KindStats<u32>>; OpKind::ALL.len()],
    /// When the last measured operation completed.
    pub last_completion: Option<Instant>,
    /// The first error reply seen, for the warning message.
    pub first_error: Option<String>,
    /// Why the connection stopped early, if it did.
    pub failure: Option<String>,
    sigfig: u8,
}

impl ConnStats {
    fn new(sigfig: u8) -> ConnStats {
        ConnStats {
            by_kind: Default::default(),
            last_completion: None,
            first_error: None,
            failure: None,
            sigfig,
        }
    }

    fn record(&mut self, kind: OpKind, latency: Duration, error: bool) {
        let sigfig = self.sigfig;
        let stats = self.by_kind[kind.index()].get_or_insert_with(|| KindStats {
            ops: 0,
            errors: 0,
            latency_us: new_histogram(sigfig),
        });
        stats.ops += 1;
        stats.errors += u64::from(error);
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        stats.latency_us.saturating_record(us);
    }

    fn note_error(&mut self, reply: &Reply) {
        if self.first_error.is_none() {
            self.first_error = error_text(reply);
        }
    }
}

/// A latency histogram in microseconds.
pub fn new_histogram<C: hdrhistogram::Counter>(sigfig: u8) -> Histogram<C> {
    // Constant, valid bounds (1 <= low, high >= 2 * low, sigfig <= 5):
    // creation cannot fail.
    Histogram::new_with_bounds(1, LATENCY_MAX_US, sigfig.clamp(1, 5))
        .expect("constant histogram bounds are valid")
}

/// A request on the wire, waiting for its reply.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    kind: OpKind,
    /// When the operation started (for an RMW's SET: when its GET was sent).
    started: Instant,
    measured: bool,
    /// Set on the GET of a read-modify-write: the key to SET next.
    rmw_key: Option<u64>,
}

/// The SET half of a read-modify-write, sent in the next pipeline.
#[derive(Debug, Clone, Copy)]
struct RmwSet {
    key: u64,
    started: Instant,
    measured: bool,
}

/// A connection's deterministic generator: seeded from the run seed and
/// the connection number, so `--seed` reproduces every key stream.
pub fn connection_rng(seed: u64, connection: u64) -> SmallRng {
    // SplitMix64 step so neighbouring connection numbers give unrelated
    // streams.
    let mut z = seed ^ connection.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    SmallRng::seed_from_u64(z ^ (z >> 31))
}

/// Generates one connection's requests.
struct Generator<'a> {
    plan: &'a Plan,
    shared: &'a Shared,
    rng: SmallRng,
    keys: KeyChooser,
    values: Values,
}

impl Generator<'_> {
    /// Appends a new operation to `out`; returns its kind and, for an RMW,
    /// the key its SET will write.
    fn encode_next(&mut self, out: &mut Batch) -> (OpKind, Option<u64>) {
        let kind = self.plan.workload.draw(&mut self.rng);
        let mut rmw_key = None;
        match kind {
            OpKind::Set | OpKind::Update => {
                let key = key_bytes(self.keys.next_index(&mut self.rng));
                out.set(&key, self.values.next(&mut self.rng));
            }
            OpKind::Get | OpKind::Read => {
                let index = match (self.plan.workload, &self.plan.latest_zipf) {
                    (Workload::YcsbD, Some(zipf)) => {
                        let acked = self.shared.inserts_acked.load(Ordering::Relaxed);
                        let latest = (self.plan.keyspace - 1).saturating_add(acked);
                        latest_index(zipf, latest, &mut self.rng)
                    }
                    _ => self.keys.next_index(&mut self.rng),
                };
                out.get(&key_bytes(index));
            }
            OpKind::Mset => {
                let keys: Vec<[u8; crate::keys::KEY_LEN_BYTES]> = (0..self.plan.batch)
                    .map(|_| key_bytes(self.keys.next_index(&mut self.rng)))
                    .collect();
                let value = self.values.next(&mut self.rng);
                out.mset(&keys, value);
            }
            OpKind::Insert => {
                let n = self.shared.inserts_issued.fetch_add(1, Ordering::Relaxed);
                let key = key_bytes(self.plan.keyspace.saturating_add(n));
                out.set(&key, self.values.next(&mut self.rng));
            }
            OpKind::Scan => {
                // From a chosen key to the end of the key space, cut at
                // --scan-length pairs: YCSB's "scan N records from key".
                let start = key_bytes(self.keys.next_index(&mut self.rng));
                out.scan(&start, &key_max(), self.plan.scan_length);
            }
            OpKind::Rmw => {
                let index = self.keys.next_index(&mut self.rng);
                out.get(&key_bytes(index));
                rmw_key = Some(index);
            }
            OpKind::Command => {
                // main() builds `commands` whenever the workload is
                // `commands`; without it nothing is sent and the batch's
                // count mismatch ends the connection with an error.
                if let Some(commands) = &self.plan.commands {
                    let index = self.shared.commands_next.fetch_add(1, Ordering::Relaxed);
                    out.raw(commands.get(index));
                }
            }
        }
        (kind, rmw_key)
    }

    fn encode_rmw_set(&mut self, key: u64, out: &mut Batch) {
        out.set(&key_bytes(key), self.values.next(&mut self.rng));
    }
}

/// How many new operations a pipeline that starts at `now` may carry.
fn new_ops_allowed(schedule: &Schedule, shared: &Shared, now: Instant, room: usize) -> usize {
    match schedule.stop {
        RunStop::At(end) => {
            if now >= end {
                0
            } else {
                room
            }
        }
        RunStop::Requests(total) => {
            if now < schedule.measure_start {
                // Warm-up operations are not counted against --requests.
                return room;
            }
            let prev = shared.claimed.fetch_add(room as u64, Ordering::Relaxed);
            total.saturating_sub(prev).min(room as u64) as usize
        }
    }
}

/// The measured run of one connection: warm-up, then measurement, until
/// the schedule says stop. Never panics on network data; a broken
/// connection ends this connection's run with `failure` set.
pub async fn run_connection(
    mut conn: Conn,
    id: u64,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    schedule: Schedule,
) -> ConnStats {
    let mut rng = connection_rng(plan.seed, id);
    let values = Values::new(
        plan.value_pool.as_ref(),
        plan.word_pool.as_ref(),
        plan.value_size_bytes,
        &mut rng,
    );
    let keys = KeyChooser::new(
        plan.distribution,
        plan.keyspace,
        plan.zipf,
        id,
        plan.connections,
    );
    let mut generator = Generator {
        plan: &plan,
        shared: &shared,
        rng,
        keys,
        values,
    };
    let mut stats = ConnStats::new(plan.histogram_sigfig);
    let mut out = Batch::new(plan.target);
    let mut in_flight: Vec<InFlight> = Vec::with_capacity(plan.pipeline);
    let mut rmw_sets: VecDeque<RmwSet> = VecDeque::new();

    loop {
        out.clear();
        in_flight.clear();
        let sent_at = Instant::now();
        let measured = sent_at >= schedule.measure_start;
        // Pending RMW halves first: they belong to operations already started.
        while in_flight.len() < plan.pipeline {
            let Some(set) = rmw_sets.pop_front() else {
                break;
            };
            generator.encode_rmw_set(set.key, &mut out);
            in_flight.push(InFlight {
                kind: OpKind::Rmw,
                started: set.started,
                measured: set.measured,
                rmw_key: None,
            });
        }
        let room = plan.pipeline - in_flight.len();
        let allowed = if room > 0 {
            new_ops_allowed(&schedule, &shared, sent_at, room)
        } else {
            0
        };
        for _ in 0..allowed {
            let (kind, rmw_key) = generator.encode_next(&mut out);
            in_flight.push(InFlight {
                kind,
                started: sent_at,
                measured,
                rmw_key,
            });
        }
        if in_flight.is_empty() {
            break;
        }

        let mut replies = 0usize;
        let mut completed_measured = 0u64;
        let result = conn
            .round_trip(&out, in_flight.len(), |index, reply, at| {
                replies += 1;
                let Some(op) = in_flight.get(index).copied() else {
                    return;
                };
                let error = reply.is_error();
                if error {
                    stats.note_error(&reply);
                }
                if let (Some(key), false) = (op.rmw_key, error) {
                    // The GET of a read-modify-write: the operation goes on.
                    rmw_sets.push_back(RmwSet {
                        key,
                        started: op.started,
                        measured: op.measured,
                    });
                    return;
                }
                if op.kind == OpKind::Insert && !error {
                    shared.inserts_acked.fetch_add(1, Ordering::Relaxed);
                }
                if op.measured {
                    stats.record(op.kind, at.saturating_duration_since(op.started), error);
                    stats.last_completion = Some(at);
                    completed_measured += 1;
                }
            })
            .await;
        shared
            .completed
            .fetch_add(completed_measured, Ordering::Relaxed);
        if let Err(err) = result {
            // Requests without a reply count as failed operations, with the
            // time waited so far as their latency.
            let now = Instant::now();
            for op in in_flight.iter().skip(replies).filter(|op| op.measured) {
                stats.record(op.kind, now.saturating_duration_since(op.started), true);
                stats.last_completion = Some(now);
            }
            for set in rmw_sets.drain(..).filter(|s| s.measured) {
                stats.record(
                    OpKind::Rmw,
                    now.saturating_duration_since(set.started),
                    true,
                );
            }
            stats.failure = Some(format!("connection {id}: {err}; it stopped early"));
            break;
        }
    }
    stats
}

/// Result of one connection's share of the load phase.
#[derive(Debug, Default)]
pub struct LoadStats {
    pub keys: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub failure: Option<String>,
}

/// Writes keys `[start, end)` with pipelined SETs of `depth` requests.
pub async fn load_connection(
    conn: &mut Conn,
    id: u64,
    plan: &Plan,
    start: u64,
    end: u64,
    depth: usize,
    loaded: &AtomicU64,
) -> LoadStats {
    // A different stream from the run's, so the run's values do not depend
    // on whether --load was given.
    let mut rng = connection_rng(plan.seed ^ 0x4C4F_4144, id);
    let values = Values::new(
        plan.value_pool.as_ref(),
        plan.word_pool.as_ref(),
        plan.value_size_bytes,
        &mut rng,
    );
    let mut stats = LoadStats::default();
    let mut out = Batch::new(plan.target);
    let mut next = start;
    while next < end {
        out.clear();
        let count = (end - next).min(depth as u64);
        for index in next..next + count {
            out.set(&key_bytes(index), values.next(&mut rng));
        }
        let result = conn
            .round_trip(&out, count as usize, |_, reply, _| {
                if reply.is_error() {
                    stats.errors += 1;
                    if stats.first_error.is_none() {
                        stats.first_error = error_text(&reply);
                    }
                }
            })
            .await;
        if let Err(err) = result {
            stats.failure = Some(format!("connection {id} (load): {err}"));
            break;
        }
        stats.keys += count;
        loaded.fetch_add(count, Ordering::Relaxed);
        next += count;
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn connection_streams_are_deterministic_and_distinct() {
        let a: Vec<u64> = (0..8)
            .map(|_| 0)
            .scan(connection_rng(1, 0), |r, _| Some(r.random()))
            .collect();
        let b: Vec<u64> = (0..8)
            .map(|_| 0)
            .scan(connection_rng(1, 0), |r, _| Some(r.random()))
            .collect();
        let c: Vec<u64> = (0..8)
            .map(|_| 0)
            .scan(connection_rng(1, 1), |r, _| Some(r.random()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn values_are_printable_and_sized() {
        let mut rng = connection_rng(3, 0);
        let v = crate::values::make_text_value(&mut rng, 100);
        assert_eq!(v.len(), 100);
        assert!(v.iter().all(u8::is_ascii_alphanumeric));
    }

    #[test]
    fn requests_mode_grants_exactly_the_total() {
        let shared = Shared::default();
        let now = Instant::now();
        let schedule = Schedule {
            measure_start: now,
            stop: RunStop::Requests(10),
        };
        let mut granted = 0;
        for _ in 0..5 {
            granted += new_ops_allowed(&schedule, &shared, now, 4);
        }
        assert_eq!(granted, 10);
    }
}
