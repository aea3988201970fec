//! Command line and the validated run configuration.

use std::fmt;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Parser, ValueEnum};
use serde::Serialize;

/// Keys are always 16 bytes (16 ASCII decimal digits), like db_bench's
/// default `--key_size=16`; fixed so every engine sees the same key shape.
pub const KEY_SIZE_BYTES: usize = 16;

/// Largest key space: the shuffled key order is held in memory (8 bytes per
/// key), and 10 M keys already take minutes per engine on a small machine.
pub const NUM_MAX: u64 = 10_000_000;
/// Measured operations per case, same reasoning as [`NUM_MAX`].
pub const OPS_MAX: u64 = 10_000_000;
pub const VALUE_SIZE_BYTES_MAX: usize = 1024 * 1024;
pub const BATCH_MAX: usize = 100_000;
pub const SEEK_LEN_MAX: usize = 1000;
/// Raw data (keys + values) one case may write: protects the disk, and
/// LMDB's memory map is sized from it.
pub const DATA_SIZE_BYTES_MAX: u64 = 4 * 1024 * 1024 * 1024;
pub const CASE_TIME_LIMIT_S_MAX: u64 = 3600;
pub const REPEAT_MAX: u32 = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Fjall,
    Redb,
    Lmdb,
    Rocksdb,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Fjall => "fjall",
            EngineKind::Redb => "redb",
            EngineKind::Lmdb => "lmdb",
            EngineKind::Rocksdb => "rocksdb",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Empty store; write keys 0..writes in ascending order.
    Fillseq,
    /// Empty store; write `writes` distinct keys of 0..num in random order.
    Fillrandom,
    /// After an (untimed) fill of all num keys: point reads of random keys.
    Readrandom,
    /// After an (untimed) fill: seek to a random key, read the next --seek-len entries.
    Seekrandom,
    /// After an (untimed) fill: write random existing keys (with repeats).
    Overwrite,
}

impl Workload {
    pub const ALL: [Workload; 5] = [
        Workload::Fillseq,
        Workload::Fillrandom,
        Workload::Readrandom,
        Workload::Seekrandom,
        Workload::Overwrite,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Fillseq => "fillseq",
            Workload::Fillrandom => "fillrandom",
            Workload::Readrandom => "readrandom",
            Workload::Seekrandom => "seekrandom",
            Workload::Overwrite => "overwrite",
        }
    }

    /// Writes are batched and synced; reads ignore --batch and --sync.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Workload::Fillseq | Workload::Fillrandom | Workload::Overwrite
        )
    }

    /// Whether the case starts from a store holding all `num` keys.
    pub fn needs_fill(self) -> bool {
        matches!(
            self,
            Workload::Readrandom | Workload::Seekrandom | Workload::Overwrite
        )
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Every write batch is durable (fdatasync or the engine's equivalent)
    /// before the next one starts.
    On,
    /// Each engine's no-fsync mode: data reaches the OS (or stays in the
    /// engine's memory, redb) but a power loss can lose it.
    Off,
}

impl SyncMode {
    pub fn is_on(self) -> bool {
        self == SyncMode::On
    }

    pub fn name(self) -> &'static str {
        match self {
            SyncMode::On => "on",
            SyncMode::Off => "off",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// Embedded storage engine comparison (no network): fjall configured as
/// Strata uses it, redb, LMDB (heed) and, with `--features rocksdb`, RocksDB.
///
/// Write workloads go in batches: `--batch N` puts N keys in ONE atomic
/// write batch / transaction, and with `--sync on` makes each batch durable
/// (one fsync) before the next starts. Batch 1 is one client writing alone;
/// batch 100 is how Strata's group commit behaves under load (many clients'
/// writes share one batch and one fsync).
#[derive(Parser, Debug, Clone)]
#[command(name = "strata-engine-bench", version)]
pub struct Cli {
    /// Engines to compare, comma-separated. rocksdb needs `--features rocksdb`.
    #[arg(long, value_delimiter = ',', default_value = "fjall,redb,lmdb")]
    pub engines: Vec<EngineKind>,

    /// Workloads, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "fillseq,fillrandom,readrandom,seekrandom,overwrite"
    )]
    pub workloads: Vec<Workload>,

    /// Key space: keys are 0..num, 16 bytes each. Read and overwrite
    /// workloads first fill all of them (untimed).
    #[arg(long, default_value_t = 100_000)]
    pub num: u64,

    /// Measured writes per write case [default: num]. fillseq/fillrandom
    /// need writes <= num (every write is a new key).
    #[arg(long)]
    pub writes: Option<u64>,

    /// Measured reads (or seeks) per read case [default: num].
    #[arg(long)]
    pub reads: Option<u64>,

    /// Value size in bytes (incompressible random bytes, key copied into
    /// the first 16 so reads can be checked).
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,

    /// Keys per write batch, comma-separated to compare several.
    #[arg(long, value_delimiter = ',', default_value = "1,100")]
    pub batch: Vec<usize>,

    /// Durability per write batch: on, off, or on,off.
    #[arg(long, value_delimiter = ',', default_value = "off")]
    pub sync: Vec<SyncMode>,

    /// Entries read after each seek in seekrandom.
    #[arg(long, default_value_t = 10)]
    pub seek_len: usize,

    /// Parent directory for the per-case data directories [default: the
    /// system temp dir]. Put it on the disk you care about: a tmpfs makes
    /// fsync free.
    #[arg(long)]
    pub dir: Option<PathBuf>,

    /// Keep each case's data directory instead of removing it.
    #[arg(long)]
    pub keep: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Seed for key order and values; the same for every engine, so all
    /// engines see the same operation sequence.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Stop a case's measured phase after this many seconds; the result is
    /// then marked "truncated" (its rate is still valid for what ran).
    #[arg(long, default_value_t = 600)]
    pub case_time_limit_s: u64,

    /// Run every case this many times (the engines take turns, so a busy
    /// machine slows them alike) and report the run with the median ops/s,
    /// plus the min..max spread. Use 3 or more on a shared machine.
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
}

/// A validated configuration; see [`Cli`] for the meaning of each field.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    pub engines: Vec<EngineKind>,
    pub workloads: Vec<Workload>,
    pub num: u64,
    pub writes: u64,
    pub reads: u64,
    pub value_size_bytes: usize,
    pub batches: Vec<usize>,
    pub syncs: Vec<SyncMode>,
    pub seek_len: usize,
    pub dir: Option<PathBuf>,
    pub keep: bool,
    pub seed: u64,
    pub case_time_limit_s: u64,
    pub repeat: u32,
}

impl Cli {
    pub fn into_config(self) -> Result<(Config, Format)> {
        let format = self.format;
        let config = Config {
            engines: dedup(self.engines),
            workloads: dedup(self.workloads),
            num: self.num,
            writes: self.writes.unwrap_or(self.num),
            reads: self.reads.unwrap_or(self.num),
            value_size_bytes: self.value_size,
            batches: dedup(self.batch),
            syncs: dedup(self.sync),
            seek_len: self.seek_len,
            dir: self.dir,
            keep: self.keep,
            seed: self.seed,
            case_time_limit_s: self.case_time_limit_s,
            repeat: self.repeat,
        };
        config.validate()?;
        Ok((config, format))
    }
}

impl Config {
    /// A small configuration for tests: every default engine and workload,
    /// sync off.
    pub fn small(num: u64) -> Config {
        Config {
            engines: vec![EngineKind::Fjall, EngineKind::Redb, EngineKind::Lmdb],
            workloads: Workload::ALL.to_vec(),
            num,
            writes: num,
            reads: num,
            value_size_bytes: 100,
            batches: vec![1, 100],
            syncs: vec![SyncMode::Off],
            seek_len: 10,
            dir: None,
            keep: false,
            seed: 42,
            case_time_limit_s: 600,
            repeat: 1,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.engines.is_empty() {
            bail!("--engines: give at least one engine");
        }
        if self.workloads.is_empty() {
            bail!("--workloads: give at least one workload");
        }
        if self.engines.contains(&EngineKind::Rocksdb) && !cfg!(feature = "rocksdb") {
            bail!(
                "--engines rocksdb: RocksDB support is not compiled in; rebuild with \
                 `cargo build -p strata-engine-bench --release --features rocksdb` \
                 (a ~20 min C++ build on 2 cores)"
            );
        }
        if !(1..=NUM_MAX).contains(&self.num) {
            bail!("--num must be 1..={NUM_MAX}, got {}", self.num);
        }
        if !(1..=OPS_MAX).contains(&self.writes) {
            bail!("--writes must be 1..={OPS_MAX}, got {}", self.writes);
        }
        if !(1..=OPS_MAX).contains(&self.reads) {
            bail!("--reads must be 1..={OPS_MAX}, got {}", self.reads);
        }
        let fills_new_keys = self
            .workloads
            .iter()
            .any(|w| matches!(w, Workload::Fillseq | Workload::Fillrandom));
        if fills_new_keys && self.writes > self.num {
            bail!(
                "--writes ({}) must not exceed --num ({}) for fillseq/fillrandom: \
                 every write there is a new key of 0..num",
                self.writes,
                self.num
            );
        }
        if !(1..=VALUE_SIZE_BYTES_MAX).contains(&self.value_size_bytes) {
            bail!(
                "--value-size must be 1..={VALUE_SIZE_BYTES_MAX} bytes, got {}",
                self.value_size_bytes
            );
        }
        if self.batches.is_empty() {
            bail!("--batch: give at least one batch size");
        }
        if let Some(&b) = self
            .batches
            .iter()
            .find(|&&b| !(1..=BATCH_MAX).contains(&b))
        {
            bail!("--batch must be 1..={BATCH_MAX}, got {b}");
        }
        if self.syncs.is_empty() {
            bail!("--sync: give on, off or on,off");
        }
        if !(1..=SEEK_LEN_MAX).contains(&self.seek_len) {
            bail!(
                "--seek-len must be 1..={SEEK_LEN_MAX}, got {}",
                self.seek_len
            );
        }
        if !(1..=CASE_TIME_LIMIT_S_MAX).contains(&self.case_time_limit_s) {
            bail!(
                "--case-time-limit-s must be 1..={CASE_TIME_LIMIT_S_MAX}, got {}",
                self.case_time_limit_s
            );
        }
        if !(1..=REPEAT_MAX).contains(&self.repeat) {
            bail!("--repeat must be 1..={REPEAT_MAX}, got {}", self.repeat);
        }
        let data_size_bytes = self.data_size_bytes();
        if data_size_bytes > DATA_SIZE_BYTES_MAX {
            bail!(
                "a case would write {} MiB of raw keys and values, more than the {} MiB limit: \
                 lower --num/--writes or --value-size",
                data_size_bytes >> 20,
                DATA_SIZE_BYTES_MAX >> 20
            );
        }
        if let Some(dir) = &self.dir
            && !dir.is_dir()
        {
            bail!("--dir {}: not an existing directory", dir.display());
        }
        Ok(())
    }

    /// Raw bytes (keys + values) the biggest case writes: overwrite fills
    /// all num keys, then writes `writes` more.
    pub fn data_size_bytes(&self) -> u64 {
        let entry = (KEY_SIZE_BYTES + self.value_size_bytes) as u64;
        self.num.saturating_add(self.writes).saturating_mul(entry)
    }
}

fn dedup<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}
