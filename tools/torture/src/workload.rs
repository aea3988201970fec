//! Keys, values and the writer threads.
//!
//! Every key except the per-writer counters is written at most once, under
//! a name that says who wrote it when (`s:<cycle>:<writer>:<seq>`), with a
//! value that is a pure function of the name. So after a crash every key
//! can only be absent or hold exactly that value, whether its write was
//! acknowledged or still in flight: anything else is corruption. Counters
//! only go up (INCR), so "at least the last acknowledged value, at most the
//! last attempted one" is checkable too.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::report::{Violation, ViolationKind};
use crate::resp::{CallError, Conn, Reply};

/// Connect timeout for writer and checker connections (loopback).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on any one request/reply. Writes wait for an fsync; 30 s is far
/// beyond any healthy fsync and only stops a hung server from hanging us.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Who wrote a key, when: unique per write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WriteId {
    pub cycle: u32,
    pub writer: u16,
    pub seq: u32,
}

/// Key of a single SET.
pub fn single_key(id: WriteId) -> String {
    format!("s:{}:{}:{}", id.cycle, id.writer, id.seq)
}

/// Key `j` of an MSET batch.
pub fn batch_key(id: WriteId, j: u8) -> String {
    format!("b:{}:{}:{}:{j}", id.cycle, id.writer, id.seq)
}

/// The INCR counter owned by one writer.
pub fn counter_key(writer: u16) -> String {
    format!("ctr:{writer}")
}

/// The one value a key can ever have: `<key>=` then pseudo-random bytes
/// (all 256 byte values, so binary safety is exercised), the length and
/// bytes derived from the key. One value in 8 is large (64 bytes up to
/// `value_bytes_max`, to fill memtables), the rest are under 64 bytes.
pub fn value_for(key: &str, value_bytes_max: usize) -> Vec<u8> {
    let h = fnv1a(key.as_bytes());
    let target = if h.is_multiple_of(8) && value_bytes_max > 64 {
        64 + (h >> 3) as usize % (value_bytes_max - 64 + 1)
    } else {
        (h >> 3) as usize % 64
    };
    let mut v = Vec::with_capacity(target.max(key.len() + 1));
    v.extend_from_slice(key.as_bytes());
    v.push(b'=');
    let mut state = h;
    while v.len() < target {
        let word = splitmix64(&mut state).to_le_bytes();
        let n = (target - v.len()).min(word.len());
        v.extend_from_slice(&word[..n]);
    }
    v
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// SplitMix64: a tiny, good-enough stream for value bytes and seed mixing.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The RNG seed of one writer in one cycle, derived from the run's seed so
/// that a run's operation sequences are a function of `--seed`.
pub fn writer_seed(seed: u64, cycle: u32, writer: u16) -> u64 {
    let mut s = seed ^ (u64::from(cycle) << 20) ^ u64::from(writer);
    splitmix64(&mut s)
}

/// What one writer does in one cycle.
#[derive(Debug, Clone)]
pub struct WriterPlan {
    pub cycle: u32,
    pub writer: u16,
    pub rng_seed: u64,
    /// The counter's value at the start of the cycle (0 = absent): the
    /// first INCR must answer this + 1.
    pub counter_start: u64,
    /// Single keys from earlier cycles, known present, that this writer may
    /// delete: `(index in the model, id)`. No other writer touches them.
    pub delete_pool: Vec<(usize, WriteId)>,
    pub value_bytes_max: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct NewSingle {
    pub seq: u32,
    pub acked: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct NewBatch {
    pub seq: u32,
    pub len: u8,
    pub acked: bool,
}

#[derive(Debug, Clone, Copy)]
pub enum DelTarget {
    /// A key from an earlier cycle (index into the model's singles).
    Earlier { model_index: usize, id: WriteId },
    /// A key this writer set in this cycle (index into `WriterLog::singles`).
    ThisCycle { local: usize },
}

#[derive(Debug, Clone, Copy)]
pub struct DelRecord {
    pub target: DelTarget,
    pub acked: bool,
}

/// Acknowledged operations by type.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct OpCounts {
    pub sets: u64,
    pub msets: u64,
    /// Keys written by the acknowledged MSETs.
    pub mset_keys: u64,
    pub dels: u64,
    pub incrs: u64,
}

impl OpCounts {
    /// Acknowledged write commands.
    pub fn total(&self) -> u64 {
        self.sets + self.msets + self.dels + self.incrs
    }

    pub fn add(&mut self, o: &OpCounts) {
        self.sets += o.sets;
        self.msets += o.msets;
        self.mset_keys += o.mset_keys;
        self.dels += o.dels;
        self.incrs += o.incrs;
    }
}

/// Everything one writer attempted in one cycle, in order, with whether
/// each write was acknowledged. Intent is recorded *before* sending, so a
/// write in flight at the kill is in the log, unacknowledged.
#[derive(Debug, Default)]
pub struct WriterLog {
    pub writer: u16,
    pub singles: Vec<NewSingle>,
    pub batches: Vec<NewBatch>,
    pub dels: Vec<DelRecord>,
    pub incr_attempted: u64,
    pub incr_acked: u64,
    pub acked: OpCounts,
    /// Writes sent but not acknowledged (0 or 1: a writer stops at the
    /// first failure).
    pub in_flight: u64,
    pub violations: Vec<Violation>,
}

/// Flags shared by the writers of one cycle.
#[derive(Debug, Default)]
pub struct CycleFlags {
    /// Set just *before* the kill: a connection error after this is the
    /// expected effect of the kill; one before it is a server failure.
    pub killing: AtomicBool,
    /// Set after the kill: stop even if the connection still seems fine.
    pub stop: AtomicBool,
}

enum Op {
    Set(usize),
    Mset(usize),
    Incr,
    Del(usize),
}

/// One writer: its own connection, a seeded mix of SET 40% / MSET 25% /
/// INCR 20% / DEL 15%, one request at a time, until the connection fails
/// (the kill) or `stop`. Sends on `connected` once it has connected (or
/// failed to), so that the kill timer starts when everyone is writing.
pub fn run_writer(
    addr: SocketAddr,
    plan: WriterPlan,
    flags: &CycleFlags,
    connected: mpsc::Sender<()>,
) -> WriterLog {
    let mut log = WriterLog {
        writer: plan.writer,
        ..WriterLog::default()
    };
    let conn = Conn::connect(addr, CONNECT_TIMEOUT, IO_TIMEOUT);
    let _ = connected.send(());
    let mut conn = match conn {
        Ok(c) => c,
        Err(e) => {
            if !flags.killing.load(Ordering::SeqCst) {
                log.violations.push(Violation::new(
                    ViolationKind::Reply,
                    plan.cycle,
                    None,
                    format!(
                        "writer {} could not connect to a running server: {e}",
                        plan.writer
                    ),
                ));
            }
            return log;
        }
    };
    let mut rng = StdRng::seed_from_u64(plan.rng_seed);
    let mut pool = plan.delete_pool;
    // This cycle's acknowledged singles not yet chosen for a DEL.
    let mut own_deletable: Vec<usize> = Vec::new();
    let mut seq: u32 = 0;
    let mut args: Vec<Vec<u8>> = Vec::with_capacity(17);

    while !flags.stop.load(Ordering::Relaxed) {
        let id = WriteId {
            cycle: plan.cycle,
            writer: plan.writer,
            seq,
        };
        seq = seq.wrapping_add(1);
        args.clear();
        let roll = rng.random_range(0..100u32);
        let can_del = !pool.is_empty() || !own_deletable.is_empty();
        let op = if roll < 40 || (roll >= 85 && !can_del) {
            let key = single_key(id);
            let value = value_for(&key, plan.value_bytes_max);
            args.push(b"SET".to_vec());
            args.push(key.into_bytes());
            args.push(value);
            log.singles.push(NewSingle {
                seq: id.seq,
                acked: false,
            });
            Op::Set(log.singles.len() - 1)
        } else if roll < 65 {
            let len = rng.random_range(2..=8u8);
            args.push(b"MSET".to_vec());
            for j in 0..len {
                let key = batch_key(id, j);
                let value = value_for(&key, plan.value_bytes_max);
                args.push(key.into_bytes());
                args.push(value);
            }
            log.batches.push(NewBatch {
                seq: id.seq,
                len,
                acked: false,
            });
            Op::Mset(log.batches.len() - 1)
        } else if roll < 85 {
            args.push(b"INCR".to_vec());
            args.push(counter_key(plan.writer).into_bytes());
            log.incr_attempted += 1;
            Op::Incr
        } else {
            // Half the deletes hit keys from earlier cycles (already in
            // SSTables after flushes), half this cycle's (in the memtable).
            let earlier = !pool.is_empty() && (own_deletable.is_empty() || rng.random_bool(0.5));
            let (target, key) = if earlier {
                let (model_index, old) = pool.swap_remove(rng.random_range(0..pool.len()));
                (
                    DelTarget::Earlier {
                        model_index,
                        id: old,
                    },
                    single_key(old),
                )
            } else {
                let local = own_deletable.swap_remove(rng.random_range(0..own_deletable.len()));
                let old = WriteId {
                    seq: log.singles[local].seq,
                    ..id
                };
                (DelTarget::ThisCycle { local }, single_key(old))
            };
            args.push(b"DEL".to_vec());
            args.push(key.into_bytes());
            log.dels.push(DelRecord {
                target,
                acked: false,
            });
            Op::Del(log.dels.len() - 1)
        };

        let reply = conn.call(&args);
        let key_text = || String::from_utf8_lossy(&args[1]).into_owned();
        let expected = match op {
            Op::Set(_) | Op::Mset(_) => Reply::Simple("OK".into()),
            Op::Incr => Reply::Int(
                i64::try_from(plan.counter_start + log.incr_acked + 1).unwrap_or(i64::MAX),
            ),
            Op::Del(_) => Reply::Int(1),
        };
        match reply {
            Ok(r) if r == expected => {}
            Err(CallError::Io(e)) => {
                log.in_flight += 1;
                if !flags.killing.load(Ordering::SeqCst) {
                    log.violations.push(Violation::new(
                        ViolationKind::Reply,
                        plan.cycle,
                        Some(key_text()),
                        format!("connection failed while the server was running: {e}"),
                    ));
                }
                break;
            }
            other => {
                // A complete reply, but not the success we expect.
                log.in_flight += 1;
                let (kind, detail) = match (&op, &other) {
                    (Op::Incr, Ok(Reply::Int(n))) => (
                        ViolationKind::Counter,
                        format!(
                            "INCR answered {n}, expected {expected:?} (writer {}'s counter, incremented only by it)",
                            plan.writer
                        ),
                    ),
                    (Op::Del(_), Ok(Reply::Int(0))) => (
                        ViolationKind::Lost,
                        "DEL answered 0: a key known to be present was missing".to_string(),
                    ),
                    _ => (
                        ViolationKind::Reply,
                        format!("unexpected reply {other:?}, expected {expected:?}"),
                    ),
                };
                log.violations
                    .push(Violation::new(kind, plan.cycle, Some(key_text()), detail));
                break;
            }
        }
        match op {
            Op::Set(i) => {
                log.singles[i].acked = true;
                own_deletable.push(i);
                log.acked.sets += 1;
            }
            Op::Mset(i) => {
                log.batches[i].acked = true;
                log.acked.msets += 1;
                log.acked.mset_keys += u64::from(log.batches[i].len);
            }
            Op::Incr => {
                log.incr_acked += 1;
                log.acked.incrs += 1;
            }
            Op::Del(i) => {
                log.dels[i].acked = true;
                log.acked.dels += 1;
            }
        }
    }
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_a_function_of_the_key() {
        let a = value_for("s:1:2:3", 4096);
        assert_eq!(a, value_for("s:1:2:3", 4096));
        assert!(a.starts_with(b"s:1:2:3="));
        assert_ne!(a, value_for("s:1:2:4", 4096));
        let mut large = 0;
        for i in 0..1000 {
            let key = format!("b:0:0:{i}:0");
            let v = value_for(&key, 4096);
            assert!(v.len() <= 4096);
            if v.len() >= 64 {
                large += 1;
            }
        }
        assert!((60..200).contains(&large), "{large} large values in 1000");
    }
}
