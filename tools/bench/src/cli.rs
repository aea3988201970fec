//! Command-line settings and their validation.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::keys::{Distribution, KEY_INDEX_LIMIT, KEY_LEN_BYTES};
use crate::target::Target;
use crate::values::ValueKind;
use crate::workload::Workload;

/// Hard caps: every setting is bounded so a typo cannot exhaust memory or
/// file descriptors.
pub const CONNECTIONS_MAX: u64 = 10_000;
pub const PIPELINE_MAX: u64 = 1024;
pub const BATCH_MAX: u64 = 10_000;
pub const SCAN_LENGTH_MAX: u64 = 10_000;
pub const VALUE_SIZE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Largest keyspace; the rest of the 10^12 key indices is room for inserts.
pub const KEYSPACE_MAX: u64 = KEY_INDEX_LIMIT / 10;
/// Largest pipeline of requests one connection may have encoded at once.
pub const PIPELINE_BYTES_MAX: u64 = 256 * 1024 * 1024;
pub const DURATION_S_MAX: f64 = 7.0 * 24.0 * 3600.0;
pub const REQUESTS_MAX: u64 = 1_000_000_000_000;
pub const THREADS_MAX: u64 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// A RESP load generator; works against Strata and any other RESP server,
/// and against etcd's HTTP/JSON gateway (`--target etcd`).
#[derive(Debug, Clone, Parser)]
#[command(name = "strata-bench", version, about, long_about = None)]
pub struct Args {
    /// Server address, host:port (etcd: its client port, e.g. 127.0.0.1:2379).
    #[arg(long, default_value = "127.0.0.1:7379")]
    pub addr: String,

    /// Protocol: RESP; etcd v3's HTTP/JSON gateway (SET -> put, GET ->
    /// linearizable range, MSET -> txn of puts, RANGE -> range with limit);
    /// or Strata's HTTP API (SET -> PUT /v1/kv/k, GET -> GET /v1/kv/k?raw,
    /// MSET -> POST /v1/txn, RANGE -> a key range). Both HTTP targets send
    /// one request at a time per HTTP/1.1 keep-alive connection.
    #[arg(long, value_enum, default_value_t = Target::Resp)]
    pub target: Target,

    /// Concurrent connections (one task each).
    #[arg(long, short = 'c', default_value_t = 50,
          value_parser = clap::value_parser!(u64).range(1..=CONNECTIONS_MAX))]
    pub connections: u64,

    /// Requests in flight per connection (pipeline depth).
    #[arg(long, short = 'P', default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=PIPELINE_MAX))]
    pub pipeline: u64,

    /// Number of distinct keys (key:000000000000 .. key:<keyspace-1>).
    #[arg(long, default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..=KEYSPACE_MAX))]
    pub keyspace: u64,

    /// How keys are chosen (ycsb-d reads always use YCSB's "latest").
    #[arg(long, value_enum, default_value_t = Distribution::Uniform)]
    pub distribution: Distribution,

    /// Skew of the zipfian distribution, in (0, 1); YCSB's default.
    #[arg(long, default_value_t = 0.99)]
    pub zipf_theta: f64,

    /// Size of every value written, in bytes.
    #[arg(long, default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(0..=VALUE_SIZE_BYTES_MAX))]
    pub value_size: u64,

    /// How values are made: `text` reuses one printable value per
    /// connection (compressible, like redis-benchmark); `random` sends
    /// different random bytes with every write (incompressible, so bytes on
    /// disk are about bytes sent).
    #[arg(long, value_enum, default_value_t = ValueKind::Text)]
    pub values: ValueKind,

    /// What to send.
    #[arg(long, value_enum, default_value_t = Workload::Set)]
    pub workload: Workload,

    /// The commands `--workload commands` replays: RESP arrays of bulk
    /// strings, back to back, as a client sends them. All connections walk
    /// the file in order from one shared cursor, wrapping at its end.
    #[arg(long)]
    pub commands_file: Option<PathBuf>,

    /// Keys per MSET (workload mset).
    #[arg(long, default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=BATCH_MAX))]
    pub batch: u64,

    /// Pairs per RANGE scan (workload ycsb-e).
    #[arg(long, default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=SCAN_LENGTH_MAX))]
    pub scan_length: u64,

    /// Measured run time in seconds [default: 10].
    #[arg(long, conflicts_with = "requests")]
    pub duration_s: Option<f64>,

    /// Measured requests in total, instead of a duration.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=REQUESTS_MAX))]
    pub requests: Option<u64>,

    /// Unmeasured warm-up before the measured run, in seconds.
    #[arg(long, default_value_t = 1.0)]
    pub warmup_s: f64,

    /// Pre-fill the keyspace with pipelined SETs before measuring.
    #[arg(long)]
    pub load: bool,

    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Write the report to this file (created or truncated) instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,

    /// Seed for the key and operation streams [default: random, and reported].
    #[arg(long)]
    pub seed: Option<u64>,

    /// Free text copied into csv/json rows, for side-by-side comparisons.
    #[arg(long)]
    pub label: Option<String>,

    /// Client worker threads [default: one per core]. On the server's own
    /// machine, fewer threads leave more CPU to the server (redis-benchmark
    /// uses one).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=THREADS_MAX))]
    pub threads: Option<u64>,

    /// Connect timeout, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub connect_timeout_s: f64,

    /// A reply slower than this counts as an error and ends that connection.
    #[arg(long, default_value_t = 10.0)]
    pub reply_timeout_s: f64,
}

/// When the measured run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    After(Duration),
    Requests(u64),
}

impl Args {
    /// Checks what clap's per-flag parsers cannot.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.zipf_theta > 0.0 && self.zipf_theta < 1.0) {
            return Err(format!(
                "--zipf-theta must be between 0 and 1 (exclusive), got {}",
                self.zipf_theta
            ));
        }
        if let Some(d) = self.duration_s
            && !(d > 0.0 && d <= DURATION_S_MAX)
        {
            return Err(format!(
                "--duration-s must be in (0, {DURATION_S_MAX}], got {d}"
            ));
        }
        if !(self.warmup_s >= 0.0 && self.warmup_s <= 3600.0) {
            return Err(format!(
                "--warmup-s must be in [0, 3600], got {}",
                self.warmup_s
            ));
        }
        for (name, v) in [
            ("--connect-timeout-s", self.connect_timeout_s),
            ("--reply-timeout-s", self.reply_timeout_s),
        ] {
            if !(v > 0.0 && v <= 3600.0) {
                return Err(format!("{name} must be in (0, 3600], got {v}"));
            }
        }
        if self.target != Target::Resp {
            if self.pipeline > 1 {
                return Err(format!(
                    "--target {} sends one request at a time per connection (HTTP/1.1 \
                     without pipelining); use --pipeline 1 and more --connections, not \
                     --pipeline {}",
                    self.target.name(),
                    self.pipeline
                ));
            }
            if self.addr.contains('/') {
                return Err(format!(
                    "--addr is host:port (plain HTTP), not a URL: {}",
                    self.addr
                ));
            }
        }
        match (self.workload == Workload::Commands, &self.commands_file) {
            (true, None) => return Err("--workload commands needs --commands-file".into()),
            (false, Some(_)) => {
                return Err("--commands-file is for --workload commands only".into());
            }
            (true, Some(_)) if self.target != Target::Resp => {
                return Err("--workload commands replays RESP: use --target resp".into());
            }
            _ => {}
        }
        let pipeline_bytes = self.pipeline.saturating_mul(self.request_bytes_max());
        if pipeline_bytes > PIPELINE_BYTES_MAX {
            return Err(format!(
                "one pipeline would be {} MiB of requests per connection (limit {} MiB); \
                 lower --pipeline, --batch or --value-size",
                pipeline_bytes / (1024 * 1024),
                PIPELINE_BYTES_MAX / (1024 * 1024)
            ));
        }
        Ok(())
    }

    /// Upper bound of one encoded request of this workload, in bytes.
    pub fn request_bytes_max(&self) -> u64 {
        // RESP: a bulk header `$<len>\r\n` plus trailing CRLF is at most 16
        // bytes. etcd: base64 (4/3, rounded up) plus JSON field names.
        let value_size = match self.values {
            // Pseudo-words are at most 4 syllables of 5 letters, plus a space.
            ValueKind::Words => crate::values::WORDS_PER_VALUE_MAX as u64 * 21,
            ValueKind::Text | ValueKind::Random => self.value_size,
        };
        let pair = match self.target {
            Target::Resp => KEY_LEN_BYTES as u64 + value_size + 32,
            Target::Etcd | Target::Http => {
                base64_len(KEY_LEN_BYTES as u64) + base64_len(value_size) + 64
            }
        };
        match self.workload {
            Workload::Mset => 32 + self.batch * pair,
            _ => 64 + pair,
        }
    }

    /// Largest HTTP answer body we accept: every pair a scan (or a GET)
    /// may return, in base64, plus room for etcd's revisions and header.
    pub fn http_body_bytes_max(&self) -> usize {
        let pairs = match self.workload {
            Workload::YcsbE => self.scan_length,
            _ => 1,
        };
        let pair = base64_len(KEY_LEN_BYTES as u64) + base64_len(self.value_size) + 256;
        usize::try_from(64 * 1024 + 2 * pairs * pair).unwrap_or(usize::MAX)
    }

    pub fn stop(&self) -> Stop {
        match (self.requests, self.duration_s) {
            (Some(n), _) => Stop::Requests(n),
            (None, Some(d)) => Stop::After(Duration::from_secs_f64(d)),
            (None, None) => Stop::After(Duration::from_secs(10)),
        }
    }
}

fn base64_len(bytes: u64) -> u64 {
    bytes.div_ceil(3) * 4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        let args =
            Args::try_parse_from(std::iter::once("strata-bench").chain(args.iter().copied()))
                .map_err(|e| e.to_string())?;
        args.validate()?;
        Ok(args)
    }

    #[test]
    fn defaults() {
        let a = parse(&[]).expect("defaults parse");
        assert_eq!(a.addr, "127.0.0.1:7379");
        assert_eq!(a.connections, 50);
        assert_eq!(a.pipeline, 1);
        assert_eq!(a.keyspace, 100_000);
        assert_eq!(a.value_size, 100);
        assert_eq!(a.workload, Workload::Set);
        assert_eq!(a.stop(), Stop::After(Duration::from_secs(10)));
        assert_eq!(a.warmup_s, 1.0);
        assert_eq!(a.format, Format::Table);
    }

    #[test]
    fn bounds_are_enforced() {
        assert!(parse(&["--connections", "10001"]).is_err());
        assert!(parse(&["--connections", "0"]).is_err());
        assert!(parse(&["--pipeline", "1025"]).is_err());
        assert!(parse(&["--zipf-theta", "1.0"]).is_err());
        assert!(parse(&["--duration-s", "0"]).is_err());
        assert!(parse(&["--duration-s", "1", "--requests", "5"]).is_err());
        assert!(
            parse(&[
                "--workload",
                "mset",
                "--batch",
                "10000",
                "--value-size",
                "1000000",
                "--pipeline",
                "16"
            ])
            .is_err()
        );
        let a = parse(&["--workload", "ycsb-e", "--requests", "5"]).expect("valid");
        assert_eq!(a.workload, Workload::YcsbE);
        assert_eq!(a.stop(), Stop::Requests(5));
    }

    #[test]
    fn etcd_target_is_unpipelined_host_port() {
        let a = parse(&["--target", "etcd", "--addr", "127.0.0.1:2379"]).expect("valid");
        assert_eq!(a.target, Target::Etcd);
        assert_eq!(parse(&[]).expect("defaults").target, Target::Resp);
        assert!(parse(&["--target", "etcd", "--pipeline", "2"]).is_err());
        assert!(parse(&["--target", "etcd", "--addr", "http://127.0.0.1:2379"]).is_err());
        assert!(parse(&["--target", "resp", "--pipeline", "2"]).is_ok());
        // Bodies: a scan of 1000 pairs of 1 KiB values fits.
        let a = parse(&[
            "--target",
            "etcd",
            "--workload",
            "ycsb-e",
            "--scan-length",
            "1000",
            "--value-size",
            "1024",
        ])
        .expect("valid");
        assert!(a.http_body_bytes_max() > 1000 * 1024 * 4 / 3);
    }
}
