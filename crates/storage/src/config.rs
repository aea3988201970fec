//! Storage configuration: durability policy, memory bounds, limits.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// When an acknowledged write becomes durable.
///
/// In every mode a write has reached the operating system (the journal's
/// `write(2)`) before it is acknowledged, so every acknowledged write
/// survives `kill -9` of the server. The modes differ in what survives a
/// power loss or kernel crash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Acknowledge only after `fdatasync` of the journal. Survives power loss.
    #[default]
    Always,
    /// Acknowledge after the write; `fdatasync` at least every `interval_ms`.
    /// A power loss can lose up to that window, like Redis `appendfsync everysec`.
    Periodic { interval_ms: u64 },
    /// Never call `fdatasync` explicitly; the OS writes back when it likes.
    Never,
}

impl FromStr for FsyncPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            "periodic" => Ok(FsyncPolicy::Periodic { interval_ms: 1000 }),
            _ => {
                let Some(ms) = s.strip_prefix("periodic:") else {
                    return Err(format!(
                        "invalid fsync policy {s:?}: expected always, periodic:<ms> or never"
                    ));
                };
                let interval_ms: u64 = ms.trim_end_matches("ms").parse().map_err(|_| {
                    format!("invalid fsync policy {s:?}: periodic:<ms> needs a whole number of milliseconds")
                })?;
                if !(1..=60_000).contains(&interval_ms) {
                    return Err(format!(
                        "invalid fsync policy {s:?}: the interval must be 1..=60000 ms"
                    ));
                }
                Ok(FsyncPolicy::Periodic { interval_ms })
            }
        }
    }
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncPolicy::Always => write!(f, "always"),
            FsyncPolicy::Periodic { interval_ms } => write!(f, "periodic:{interval_ms}"),
            FsyncPolicy::Never => write!(f, "never"),
        }
    }
}

/// The largest key the engine can hold is 65535 bytes; the expiry index
/// prefixes an 8-byte timestamp, so user keys stop short of that.
pub const KEY_SIZE_BYTES_LIMIT: usize = 65_000;
/// The engine stores values up to 4 GiB; we stay far below, because a value
/// lives in memory whole while it is read or written.
pub const VALUE_SIZE_BYTES_LIMIT: usize = 512 * 1024 * 1024;

/// Largest read cache (and search posting cache) accepted (1 TiB): every setting has a bound, and a
/// size far past any machine's memory is a mistake to refuse, not to try.
pub const READ_CACHE_SIZE_BYTES_LIMIT: u64 = 1 << 40;

/// Mean read time from which the writer's reads are taken to come from
/// disk, and it prefetches a group's old records (`prefetch.rs`). A
/// memtable or block-cache hit is 1–5 µs; a page-cache hit that must
/// decompress a block is tens of µs; a disk read is 100 µs or more.
pub const PREFETCH_SLOW_READ_NS_DEFAULT: u64 = 50_000;

/// The engine's own minimum journal size.
pub const JOURNAL_SIZE_BYTES_MIN: u64 = 64 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    pub fsync: FsyncPolicy,
    /// Block cache for reads.
    pub cache_size_bytes: u64,
    /// The read cache of whole records for single-key reads, in front of
    /// the engine (see `read_cache.rs`); 0 switches it off.
    pub read_cache_size_bytes: u64,
    /// The search posting cache: decoded posting lists of query terms and
    /// decoded vector fields, half each, in front of the engine (see
    /// `search/cache.rs`); 0 switches it off.
    pub search_cache_size_bytes: u64,
    /// One memtable's size before it is flushed to an SSTable.
    pub memtable_size_bytes: u64,
    /// Journal size before memtables are force-flushed. It bounds the replay
    /// work after a crash (and so the recovery time) and, with the memtable
    /// size, the memory that unflushed writes can hold: past it the engine
    /// flushes and stalls writers until it catches up.
    pub journal_size_bytes_max: u64,
    pub key_size_bytes_max: usize,
    pub value_size_bytes_max: usize,
    /// Mutations waiting for the writer. Past it, submitters wait (backpressure).
    pub write_queue_len_max: usize,
    /// Mutations in one group commit.
    pub group_commit_mutations_max: usize,
    /// Payload bytes in one group commit.
    pub group_commit_size_bytes_max: usize,
    /// How often the expiry sweeper looks for expired keys.
    pub expiry_sweep_interval_ms: u64,
    /// Expired keys removed per sweep round.
    pub expiry_sweep_keys_max: usize,
    /// Mean time of the writer's reads from which it reads a group's old
    /// records in parallel before applying it (see `prefetch.rs`); 0
    /// prefetches every group. Not a server flag: the default is measured,
    /// and tests set 0 to drive the prefetch path.
    pub prefetch_slow_read_ns: u64,
}

impl StorageConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StorageConfig {
            data_dir: data_dir.into(),
            fsync: FsyncPolicy::Always,
            cache_size_bytes: 256 * 1024 * 1024,
            read_cache_size_bytes: 64 * 1024 * 1024,
            search_cache_size_bytes: 512 * 1024 * 1024,
            memtable_size_bytes: 32 * 1024 * 1024,
            journal_size_bytes_max: 256 * 1024 * 1024,
            key_size_bytes_max: 16 * 1024,
            value_size_bytes_max: 16 * 1024 * 1024,
            write_queue_len_max: 8192,
            group_commit_mutations_max: 4096,
            group_commit_size_bytes_max: 64 * 1024 * 1024,
            expiry_sweep_interval_ms: 100,
            expiry_sweep_keys_max: 1000,
            prefetch_slow_read_ns: PREFETCH_SLOW_READ_NS_DEFAULT,
        }
    }

    /// Checks the settings against each other and against the engine's limits.
    pub fn validate(&self) -> Result<(), String> {
        if self.key_size_bytes_max == 0 || self.key_size_bytes_max > KEY_SIZE_BYTES_LIMIT {
            return Err(format!(
                "key_size_bytes_max must be 1..={KEY_SIZE_BYTES_LIMIT}, got {}",
                self.key_size_bytes_max
            ));
        }
        if self.value_size_bytes_max == 0 || self.value_size_bytes_max > VALUE_SIZE_BYTES_LIMIT {
            return Err(format!(
                "value_size_bytes_max must be 1..={VALUE_SIZE_BYTES_LIMIT}, got {}",
                self.value_size_bytes_max
            ));
        }
        if self.memtable_size_bytes < 1024 * 1024 {
            return Err("memtable_size_bytes must be at least 1 MiB".into());
        }
        // The engine asserts (panics) below 64 MiB: refuse it here instead.
        if self.journal_size_bytes_max < JOURNAL_SIZE_BYTES_MIN {
            return Err(format!(
                "journal_size_bytes_max must be at least {JOURNAL_SIZE_BYTES_MIN} (64 MiB)"
            ));
        }
        if self.journal_size_bytes_max < self.memtable_size_bytes {
            return Err("journal_size_bytes_max must be at least memtable_size_bytes".into());
        }
        if self.cache_size_bytes < 1024 * 1024 {
            return Err("cache_size_bytes must be at least 1 MiB".into());
        }
        if self.read_cache_size_bytes > READ_CACHE_SIZE_BYTES_LIMIT {
            return Err(format!(
                "read_cache_size_bytes must be at most {READ_CACHE_SIZE_BYTES_LIMIT}"
            ));
        }
        if self.search_cache_size_bytes > READ_CACHE_SIZE_BYTES_LIMIT {
            return Err(format!(
                "search_cache_size_bytes must be at most {READ_CACHE_SIZE_BYTES_LIMIT}"
            ));
        }
        if self.write_queue_len_max == 0
            || self.group_commit_mutations_max == 0
            || self.group_commit_size_bytes_max == 0
            || self.expiry_sweep_keys_max == 0
            || self.expiry_sweep_interval_ms == 0
        {
            return Err("queue, group and sweep limits must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_policy_parses_and_prints() {
        for s in ["always", "never", "periodic:5", "periodic:1000"] {
            let p: FsyncPolicy = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
        }
        let mut c = StorageConfig::new("x");
        c.journal_size_bytes_max = 1024 * 1024;
        assert!(c.validate().is_err());
        assert_eq!(
            "periodic".parse::<FsyncPolicy>().unwrap(),
            FsyncPolicy::Periodic { interval_ms: 1000 }
        );
        for bad in [
            "",
            "sometimes",
            "periodic:",
            "periodic:0",
            "periodic:-1",
            "periodic:x",
        ] {
            assert!(bad.parse::<FsyncPolicy>().is_err(), "{bad}");
        }
    }
}
