//! The workloads, their measurement and their correctness checks.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::config::{Config, EngineKind, SyncMode, Workload};
use crate::data::{Batch, Key, ValueSource, key, key_index, value_matches};
use crate::engines::{self, Engine, OpenOptions};

/// Keys per batch in the untimed setup fill: large enough that the fill is
/// quick even with sync on, small enough to stay far below any engine's
/// transaction size limits.
const FILL_BATCH_KEYS: usize = 1000;

/// After a write workload, this many written keys (all of them if fewer)
/// are read back and checked, untimed.
const VERIFY_KEYS_MAX: u64 = 2000;

/// Latencies up to one hour, 3 significant digits.
const LATENCY_NS_MAX: u64 = 3_600_000_000_000;

/// One measured combination. `sync` and `batch` are None for reads, which
/// neither batch nor sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Case {
    pub engine: EngineKind,
    pub workload: Workload,
    pub sync: Option<SyncMode>,
    pub batch: Option<usize>,
}

impl Case {
    pub fn label(&self) -> String {
        match (self.sync, self.batch) {
            (Some(sync), Some(batch)) => format!(
                "{} {} sync={} batch={}",
                self.engine,
                self.workload,
                sync.name(),
                batch
            ),
            _ => format!("{} {}", self.engine, self.workload),
        }
    }
}

/// What one latency sample covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LatencyPer {
    /// One read, or one seek plus its nexts.
    Op,
    /// One write batch (= one op when the batch size is 1).
    Batch,
}

#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    pub engine: EngineKind,
    pub workload: Workload,
    pub sync: Option<SyncMode>,
    pub batch: Option<usize>,
    /// Keys written, keys read, or seeks done.
    pub ops: u64,
    pub elapsed_s: f64,
    pub ops_per_s: f64,
    /// Runs of this case (--repeat); the figures are the median run's.
    pub repeats: u32,
    /// Slowest and fastest run's ops/s.
    pub ops_per_s_min: f64,
    pub ops_per_s_max: f64,
    pub latency_per: LatencyPer,
    pub latency_p50_us: f64,
    pub latency_p99_us: f64,
    pub latency_max_us: f64,
    /// Space the engine's files take on disk (allocated blocks) at the end.
    pub disk_size_bytes: u64,
    /// The case hit --case-time-limit-s; `ops` is what ran.
    pub truncated: bool,
    /// What was checked, e.g. "hits 100000/100000".
    pub check: String,
}

/// Every case the configuration asks for, workload-major: the engines run
/// one after another on the same case, so slow drift on a shared machine
/// (other builds, page cache) affects them alike.
pub fn cases(config: &Config) -> Vec<Case> {
    let mut out = Vec::new();
    for &workload in &config.workloads {
        if workload.is_write() {
            for &sync in &config.syncs {
                for &batch in &config.batches {
                    for &engine in &config.engines {
                        out.push(Case {
                            engine,
                            workload,
                            sync: Some(sync),
                            batch: Some(batch),
                        });
                    }
                }
            }
        } else {
            for &engine in &config.engines {
                out.push(Case {
                    engine,
                    workload,
                    sync: None,
                    batch: None,
                });
            }
        }
    }
    out
}

/// Runs every case `config.repeat` times and keeps, per case, the run with
/// the median ops/s; `progress` gets a line before and after each run.
pub fn run_all(config: &Config, mut progress: impl FnMut(&str)) -> Result<Vec<CaseResult>> {
    config.validate()?;
    let cases = cases(config);
    let runs_total = cases.len() * config.repeat as usize;
    let mut run_no = 0;
    let mut results = Vec::with_capacity(cases.len());
    // The engines of one (workload, sync, batch) are adjacent in `cases`;
    // repeating the group as a whole makes the engines take turns.
    for group in
        cases.chunk_by(|a, b| (a.workload, a.sync, a.batch) == (b.workload, b.sync, b.batch))
    {
        let mut runs: Vec<Vec<CaseResult>> = vec![Vec::new(); group.len()];
        for _ in 0..config.repeat {
            for (case, runs) in group.iter().zip(&mut runs) {
                run_no += 1;
                progress(&format!("[{run_no}/{runs_total}] {} ...", case.label()));
                let result = run_case(config, case).with_context(|| case.label())?;
                progress(&format!(
                    "[{run_no}/{runs_total}] {}: {:.0} ops/s, p50 {:.1} us, p99 {:.1} us per {}{}",
                    case.label(),
                    result.ops_per_s,
                    result.latency_p50_us,
                    result.latency_p99_us,
                    match result.latency_per {
                        LatencyPer::Op => "op",
                        LatencyPer::Batch => "batch",
                    },
                    if result.truncated { " (truncated)" } else { "" },
                ));
                runs.push(result);
            }
        }
        results.extend(runs.into_iter().map(median_run));
    }
    Ok(results)
}

/// The run with the median ops/s (the upper one of an even count), with
/// the spread of all runs.
fn median_run(mut runs: Vec<CaseResult>) -> CaseResult {
    runs.sort_by(|a, b| a.ops_per_s.total_cmp(&b.ops_per_s));
    let min = runs.first().map_or(0.0, |r| r.ops_per_s);
    let max = runs.last().map_or(0.0, |r| r.ops_per_s);
    let repeats = runs.len() as u32;
    let mut median = runs.swap_remove(runs.len() / 2);
    median.repeats = repeats;
    median.ops_per_s_min = min;
    median.ops_per_s_max = max;
    median
}

/// The seed of a case: the same for every engine, so all of them see the
/// same keys, values and order.
fn case_seed(seed: u64, case: &Case) -> u64 {
    let mut h = DefaultHasher::new();
    (seed, case.workload, case.sync, case.batch).hash(&mut h);
    h.finish()
}

pub fn run_case(config: &Config, case: &Case) -> Result<CaseResult> {
    let parent = config.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix(&format!("engine-bench-{}-{}-", case.engine, case.workload))
        .tempdir_in(&parent)
        .with_context(|| format!("creating a data directory in {}", parent.display()))?;
    let mut rng = StdRng::seed_from_u64(case_seed(config.seed, case));
    let values = ValueSource::new(config.value_size_bytes, &mut rng);
    let options = OpenOptions {
        sync: case.sync.unwrap_or(SyncMode::Off),
        data_size_bytes: config.data_size_bytes(),
    };
    let mut engine = engines::open(case.engine, dir.path(), &options)?;
    if case.workload.needs_fill() {
        fill(engine.as_mut(), config.num, &values, &mut rng).context("setup fill")?;
    }
    let limit = Duration::from_secs(config.case_time_limit_s);
    let measured = match case.workload {
        Workload::Fillseq => {
            let order = KeyOrder::Sequential;
            write_phase(
                engine.as_mut(),
                config,
                case,
                &order,
                &values,
                &mut rng,
                limit,
            )?
        }
        Workload::Fillrandom => {
            let mut permutation: Vec<u64> = (0..config.num).collect();
            permutation.shuffle(&mut rng);
            permutation.truncate(usize::try_from(config.writes)?);
            let order = KeyOrder::Listed(permutation);
            write_phase(
                engine.as_mut(),
                config,
                case,
                &order,
                &values,
                &mut rng,
                limit,
            )?
        }
        Workload::Overwrite => {
            let order = KeyOrder::Uniform { num: config.num };
            write_phase(
                engine.as_mut(),
                config,
                case,
                &order,
                &values,
                &mut rng,
                limit,
            )?
        }
        Workload::Readrandom => read_phase(engine.as_ref(), config, &mut rng, limit)?,
        Workload::Seekrandom => seek_phase(engine.as_ref(), config, &mut rng, limit)?,
    };
    // Close the engine before measuring, so everything it buffers is out.
    drop(engine);
    let disk_size_bytes = disk_usage_bytes(dir.path())?;
    if config.keep {
        let kept: PathBuf = dir.keep();
        eprintln!("kept {} data in {}", case.label(), kept.display());
    }
    let elapsed_s = measured.elapsed.as_secs_f64();
    let ops_per_s = measured.ops as f64 / elapsed_s.max(1e-9);
    let us = |q: f64| measured.latency_ns.value_at_quantile(q) as f64 / 1000.0;
    Ok(CaseResult {
        engine: case.engine,
        workload: case.workload,
        sync: case.sync,
        batch: case.batch,
        ops: measured.ops,
        elapsed_s,
        ops_per_s,
        repeats: 1,
        ops_per_s_min: ops_per_s,
        ops_per_s_max: ops_per_s,
        latency_per: if case.workload.is_write() {
            LatencyPer::Batch
        } else {
            LatencyPer::Op
        },
        latency_p50_us: us(0.5),
        latency_p99_us: us(0.99),
        latency_max_us: measured.latency_ns.max() as f64 / 1000.0,
        disk_size_bytes,
        truncated: measured.truncated,
        check: measured.check,
    })
}

struct Measured {
    ops: u64,
    elapsed: Duration,
    latency_ns: Histogram<u64>,
    truncated: bool,
    check: String,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3).expect("constant histogram bounds are valid")
}

fn record(h: &mut Histogram<u64>, elapsed: Duration) {
    // Saturating: a sample past an hour is clamped rather than lost.
    h.saturating_record(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).max(1));
}

/// Writes keys 0..num in order, untimed, then makes them durable: the
/// starting state of the read and overwrite workloads.
fn fill(engine: &mut dyn Engine, num: u64, values: &ValueSource, rng: &mut StdRng) -> Result<()> {
    let mut batch = Batch::new(FILL_BATCH_KEYS, values.value_size_bytes());
    let mut next = 0;
    while next < num {
        batch.clear();
        let end = num.min(next + FILL_BATCH_KEYS as u64);
        for i in next..end {
            batch.push(i, values, rng);
        }
        engine.write(&batch)?;
        next = end;
    }
    engine.make_durable()
}

enum KeyOrder {
    /// Write n is key n.
    Sequential,
    /// Write n is `keys[n]` (fillrandom: a shuffled prefix of 0..num).
    Listed(Vec<u64>),
    /// Every write draws a key of 0..num, repeats allowed (overwrite).
    Uniform { num: u64 },
}

impl KeyOrder {
    fn key_at(&self, n: u64, rng: &mut StdRng) -> u64 {
        match self {
            KeyOrder::Sequential => n,
            KeyOrder::Listed(keys) => keys[n as usize],
            KeyOrder::Uniform { num } => rng.random_range(0..*num),
        }
    }
}

fn write_phase(
    engine: &mut dyn Engine,
    config: &Config,
    case: &Case,
    order: &KeyOrder,
    values: &ValueSource,
    rng: &mut StdRng,
    limit: Duration,
) -> Result<Measured> {
    let batch_keys = case.batch.expect("write cases have a batch size");
    let mut batch = Batch::new(batch_keys, values.value_size_bytes());
    let mut latency_ns = histogram();
    let mut done = 0u64;
    let mut truncated = false;
    // Wall time covers making the batches too (a few ns per key, as in
    // db_bench); the latency samples cover only the engine's write.
    let start = Instant::now();
    while done < config.writes {
        batch.clear();
        let n = (config.writes - done).min(batch_keys as u64);
        for j in done..done + n {
            batch.push(order.key_at(j, rng), values, rng);
        }
        let t = Instant::now();
        engine.write(&batch)?;
        record(&mut latency_ns, t.elapsed());
        done += n;
        if done < config.writes && start.elapsed() > limit {
            truncated = true;
            break;
        }
    }
    let elapsed = start.elapsed();
    let check = verify_writes(engine, config, order, done, rng)?;
    Ok(Measured {
        ops: done,
        elapsed,
        latency_ns,
        truncated,
        check,
    })
}

/// Reads back written keys (all of them, or a random sample of
/// [`VERIFY_KEYS_MAX`]) and checks each value belongs to its key.
fn verify_writes(
    engine: &dyn Engine,
    config: &Config,
    order: &KeyOrder,
    done: u64,
    rng: &mut StdRng,
) -> Result<String> {
    let mut reader = engine.reader()?;
    let mut value = Vec::with_capacity(config.value_size_bytes);
    let checked = match order {
        // Overwrite only rewrote keys that the fill wrote: any key must be there.
        KeyOrder::Uniform { num } => (0..VERIFY_KEYS_MAX.min(*num))
            .map(|_| rng.random_range(0..*num))
            .collect::<Vec<_>>(),
        _ if done <= VERIFY_KEYS_MAX => (0..done).map(|n| order.key_at(n, rng)).collect(),
        _ => (0..VERIFY_KEYS_MAX)
            .map(|_| {
                let n = rng.random_range(0..done);
                order.key_at(n, rng)
            })
            .collect(),
    };
    for &i in &checked {
        let k = key(i);
        if !reader.get(&k, &mut value)? {
            bail!("written key {i} is missing when read back");
        }
        if !value_matches(&k, &value, config.value_size_bytes) {
            bail!("written key {i} reads back a value that is not its own");
        }
    }
    Ok(format!("{} written keys read back", checked.len()))
}

fn read_phase(
    engine: &dyn Engine,
    config: &Config,
    rng: &mut StdRng,
    limit: Duration,
) -> Result<Measured> {
    let mut reader = engine.reader()?;
    let mut value = Vec::with_capacity(config.value_size_bytes);
    let mut latency_ns = histogram();
    let mut hits = 0u64;
    let mut done = 0u64;
    let mut first_miss = None;
    let mut truncated = false;
    let start = Instant::now();
    while done < config.reads {
        let i = rng.random_range(0..config.num);
        let k = key(i);
        let t = Instant::now();
        let found = reader.get(&k, &mut value)?;
        record(&mut latency_ns, t.elapsed());
        if found && value_matches(&k, &value, config.value_size_bytes) {
            hits += 1;
        } else if first_miss.is_none() {
            first_miss = Some(i);
        }
        done += 1;
        // Checking the clock every read would cost as much as some reads.
        if done.is_multiple_of(1024) && done < config.reads && start.elapsed() > limit {
            truncated = true;
            break;
        }
    }
    let elapsed = start.elapsed();
    if let Some(i) = first_miss {
        bail!(
            "{} of {done} reads missed or returned a wrong value after a full fill \
             (first: key {i}); every key of 0..num was written",
            done - hits
        );
    }
    Ok(Measured {
        ops: done,
        elapsed,
        latency_ns,
        truncated,
        check: format!("hits {hits}/{done}"),
    })
}

fn seek_phase(
    engine: &dyn Engine,
    config: &Config,
    rng: &mut StdRng,
    limit: Duration,
) -> Result<Measured> {
    let mut reader = engine.reader()?;
    let mut keys: Vec<Key> = Vec::with_capacity(config.seek_len);
    let mut latency_ns = histogram();
    let mut entries = 0u64;
    let mut done = 0u64;
    let mut truncated = false;
    let start = Instant::now();
    while done < config.reads {
        let i = rng.random_range(0..config.num);
        let t = Instant::now();
        let value_bytes = reader.seek(&key(i), config.seek_len, &mut keys)?;
        record(&mut latency_ns, t.elapsed());
        if let Err(why) = check_seek(i, config.num, config.seek_len, &keys) {
            bail!("seek to key {i}: {why}");
        }
        if value_bytes != keys.len() * config.value_size_bytes {
            bail!(
                "seek to key {i}: read {value_bytes} value bytes for {} entries of {} bytes",
                keys.len(),
                config.value_size_bytes
            );
        }
        entries += keys.len() as u64;
        done += 1;
        if done.is_multiple_of(1024) && done < config.reads && start.elapsed() > limit {
            truncated = true;
            break;
        }
    }
    let elapsed = start.elapsed();
    Ok(Measured {
        ops: done,
        elapsed,
        latency_ns,
        truncated,
        check: format!("{done} seeks in order, {entries} entries"),
    })
}

/// After a full fill of 0..num, a seek to key `start` reading `seek_len`
/// entries must return exactly start, start+1, ... (fewer near the end).
pub fn check_seek(start: u64, num: u64, seek_len: usize, keys: &[Key]) -> Result<(), String> {
    let expected = (seek_len as u64).min(num.saturating_sub(start));
    if keys.len() as u64 != expected {
        return Err(format!("got {} entries, expected {expected}", keys.len()));
    }
    for (offset, k) in keys.iter().enumerate() {
        let want = start + offset as u64;
        if key_index(k) != Some(want) {
            return Err(format!(
                "entry {offset} is {:?}, expected key {want} (out of order or missing)",
                String::from_utf8_lossy(k)
            ));
        }
    }
    Ok(())
}

/// Bytes the directory's files occupy on disk (allocated blocks, not
/// apparent sizes: B-tree files can be sparse or preallocated).
fn disk_usage_bytes(dir: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                // st_blocks is in 512-byte units whatever the block size.
                total += meta.blocks() * 512;
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seek_check_accepts_only_the_next_keys_in_order() {
        let keys: Vec<Key> = (5..15).map(key).collect();
        assert!(check_seek(5, 100, 10, &keys).is_ok());
        // Near the end there are fewer keys.
        let tail: Vec<Key> = (97..100).map(key).collect();
        assert!(check_seek(97, 100, 10, &tail).is_ok());
        assert!(check_seek(97, 100, 10, &keys[..3]).is_err());
        // Out of order, a gap, too few.
        let mut swapped = keys.clone();
        swapped.swap(2, 3);
        assert!(check_seek(5, 100, 10, &swapped).is_err());
        let gap: Vec<Key> = (5..16).filter(|&i| i != 8).map(key).collect();
        assert!(check_seek(5, 100, 10, &gap).is_err());
        assert!(check_seek(5, 100, 10, &keys[..9]).is_err());
    }

    #[test]
    fn cases_cover_writes_per_sync_and_batch_and_reads_once() {
        let mut config = Config::small(10);
        config.syncs = vec![SyncMode::On, SyncMode::Off];
        let all = cases(&config);
        // 3 write workloads x 2 syncs x 2 batches x 3 engines + 2 reads x 3 engines.
        assert_eq!(all.len(), 3 * 2 * 2 * 3 + 2 * 3);
        assert!(
            all.iter()
                .filter(|c| !c.workload.is_write())
                .all(|c| c.sync.is_none() && c.batch.is_none())
        );
    }
}
