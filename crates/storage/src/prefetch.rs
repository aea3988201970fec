//! Parallel reads of a group's old records, for data larger than RAM.
//!
//! Every write reads its key's old record before it changes it (DBSIZE,
//! the expiry index, NX/XX, INCR), and it does so on the one writer thread.
//! While the data is in memory such a read takes about a microsecond. Once
//! the data is on disk it is a random disk read (about 0.15 ms here), and
//! the writer makes them one after another: measured, SET throughput on a
//! 10 GiB store in a 1 GiB cgroup fell to about one SET per disk read.
//!
//! So when the writer's reads are slow, it reads all the keys of a group on
//! several threads at once before applying the group, and the group's
//! state answers from those results. This is exact, not a cache: the
//! writer is the only thread that writes the engine, so nothing can change
//! what a read returns between the prefetch and the apply. (Compactions
//! rewrite files, never what a key reads as.)
//!
//! The switch is measured, not configured. While off, the writer times its
//! own reads; a group whose reads averaged at least `slow_read_ns` turns
//! prefetching on. While on, the prefetch times its reads; a group that
//! averaged under half of that turns it off again, so data that fits in
//! memory never pays for the threads.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;

use crate::engine::Engine;
use crate::mutation::{Mutation, Op};
use crate::record::Record;

/// Most threads one prefetch uses. Enough to keep a disk queue busy;
/// threads are scoped, so they exist only while a group is read.
pub const PREFETCH_THREADS_MAX: usize = 16;

/// Fewest keys a thread is given: below this, spawning costs more than the
/// reads it overlaps.
const KEYS_PER_THREAD_MIN: usize = 2;

/// Fewest reads a group must make before its mean time may switch the mode:
/// one read says little.
const READS_TO_DECIDE_MIN: u64 = 4;

/// Whether the writer prefetches, and the evidence for it.
#[derive(Debug)]
pub(crate) struct Prefetcher {
    slow_read_ns: u64,
    enabled: bool,
    /// Serial reads seen since the last decision, and their total time:
    /// summed across groups, because a small group (one inline SET makes
    /// one or two reads) never has enough reads to decide on its own.
    serial_reads: u64,
    serial_read_ns: u64,
}

/// What one prefetch found: old records by key. A key whose read failed is
/// absent, so the writer's own read meets the error and reports it.
pub(crate) type Prefetched = HashMap<Bytes, Option<Record>>;

/// One read thread's records and the time its reads took, in ns.
type ThreadResult = (Vec<(Bytes, Option<Record>)>, u64);

impl Prefetcher {
    /// `slow_read_ns == 0` prefetches every group (tests use it to drive
    /// both paths through the same model).
    pub fn new(slow_read_ns: u64) -> Prefetcher {
        Prefetcher {
            slow_read_ns,
            enabled: slow_read_ns == 0,
            serial_reads: 0,
            serial_read_ns: 0,
        }
    }

    /// Whether groups are prefetched: the writer's reads come from disk.
    pub fn is_on(&self) -> bool {
        self.enabled
    }

    /// Reads the old records of `group` in parallel if prefetching is on;
    /// an empty map otherwise.
    pub fn fetch(&mut self, engine: &Engine, group: &[&Mutation]) -> Prefetched {
        if !self.enabled {
            return Prefetched::new();
        }
        let mut keys: Vec<&Bytes> = Vec::new();
        for m in group {
            op_keys(&m.op, &mut keys);
        }
        keys.sort_unstable();
        keys.dedup();
        if keys.len() < KEYS_PER_THREAD_MIN {
            return Prefetched::new();
        }
        let threads = (keys.len() / KEYS_PER_THREAD_MIN).clamp(1, PREFETCH_THREADS_MAX);
        let chunk = keys.len().div_ceil(threads);
        let results: Vec<ThreadResult> = std::thread::scope(|scope| {
            let handles: Vec<_> = keys
                .chunks(chunk)
                .filter_map(|part| {
                    // A thread the OS refuses to create only loses its
                    // part of the prefetch: the writer reads those keys.
                    let builder = std::thread::Builder::new().name("strata-prefetch".into());
                    builder
                        .spawn_scoped(scope, move || {
                            let started = Instant::now();
                            let found: Vec<(Bytes, Option<Record>)> = part
                                .iter()
                                .filter_map(|key| {
                                    engine.load_latest(key).ok().map(|r| ((*key).clone(), r))
                                })
                                .collect();
                            (found, started.elapsed().as_nanos() as u64)
                        })
                        .ok()
                })
                .collect();
            handles
                .into_iter()
                // A panicking read thread loses only its prefetch: the
                // writer reads those keys itself.
                .filter_map(|h| h.join().ok())
                .collect()
        });
        let mut prefetched = Prefetched::with_capacity(keys.len());
        let mut read_ns = 0u64;
        for (found, ns) in results {
            read_ns = read_ns.saturating_add(ns);
            prefetched.extend(found);
        }
        let reads = keys.len() as u64;
        if self.slow_read_ns > 0 && reads >= READS_TO_DECIDE_MIN {
            // Each thread's time covers its reads one after another, so the
            // sum over threads is the sum of the reads.
            if read_ns / reads < self.slow_read_ns / 2 {
                self.enabled = false;
            }
        }
        prefetched
    }

    /// After a group applied without prefetching: its own reads' count and
    /// total time decide whether the next group prefetches.
    pub fn observe_serial_reads(&mut self, reads: u64, read_ns: u64) {
        if self.enabled {
            return;
        }
        self.serial_reads = self.serial_reads.saturating_add(reads);
        self.serial_read_ns = self.serial_read_ns.saturating_add(read_ns);
        if self.serial_reads < READS_TO_DECIDE_MIN {
            return;
        }
        if self.serial_read_ns / self.serial_reads >= self.slow_read_ns {
            self.enabled = true;
        }
        self.serial_reads = 0;
        self.serial_read_ns = 0;
    }

    #[cfg(test)]
    pub fn enabled(&self) -> bool {
        self.enabled
    }
}

/// The keys whose old records applying `op` reads.
fn op_keys<'a>(op: &'a Op, out: &mut Vec<&'a Bytes>) {
    let _ = op.try_for_each_key(|k| {
        out.push(k);
        Ok::<(), std::convert::Infallible>(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_on_after_slow_reads_and_off_after_fast_ones() {
        let mut p = Prefetcher::new(50_000);
        assert!(!p.enabled());
        p.observe_serial_reads(2, 2 * 100_000); // too few reads to decide
        assert!(!p.enabled());
        p.observe_serial_reads(10, 10 * 10_000); // fast: memory
        assert!(!p.enabled());
        p.observe_serial_reads(10, 10 * 60_000); // slow: disk
        assert!(p.enabled());
        assert!(Prefetcher::new(0).enabled());
        // Groups of one read each (inline SETs) decide together.
        let mut p = Prefetcher::new(50_000);
        for _ in 0..READS_TO_DECIDE_MIN - 1 {
            p.observe_serial_reads(1, 150_000);
            assert!(!p.enabled());
        }
        p.observe_serial_reads(1, 150_000);
        assert!(p.enabled());
    }

    #[test]
    fn every_keyed_op_names_its_keys() {
        let k = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        let ops = [
            Op::MSet {
                pairs: vec![(k("a"), k("1")), (k("b"), k("2"))],
                if_none_exist: false,
            },
            Op::Rename {
                from: k("c"),
                to: k("d"),
                if_absent: false,
            },
            Op::Delete { keys: vec![k("e")] },
            Op::FlushAll,
        ];
        let mut out = Vec::new();
        for op in &ops {
            op_keys(op, &mut out);
        }
        let names: Vec<&[u8]> = out.iter().map(|b| b.as_ref()).collect();
        assert_eq!(names, vec![b"a" as &[u8], b"b", b"c", b"d", b"e"]);
    }
}
