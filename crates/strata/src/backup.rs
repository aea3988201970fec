//! `strata backup save|status|restore`: the operator's side of backups.
//!
//! `save` asks a running server for its backup a chunk at a time (`BACKUP
//! BEGIN`, `NEXT`, `END`), writes the chunks to `<file>.tmp-<pid>` and
//! checks them with the same reader `status` and `restore` use while they
//! arrive; only a complete, verified file is renamed to `<file>`. Memory
//! stays at about a chunk (1 MiB) and the largest record, whatever the
//! store's size. The file format and the restore are `strata_storage`'s
//! (`backup.rs`, `restore.rs`); seeding a cluster asks
//! `strata_replication` for the first node's applied mark.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use strata_client::resp::Reply;
use strata_client::{Client, ClientError, ClientOptions};
use strata_storage::{
    BACKUP_FORMAT_VERSION, BackupError, BackupHeader, BackupReader, BackupSummary, RestoreMode,
};

/// Bound on connecting, and on each request (a chunk is 1 MiB; BEGIN may
/// wait for a cluster's read point).
const CONNECT_TIMEOUT_MS: u64 = 5_000;
const REQUEST_TIMEOUT_MS: u64 = 60_000;
/// A chunk request that fails on the network is sent again on a new
/// connection this many times (the server resends the same bytes).
const CHUNK_ATTEMPTS_MAX: u32 = 5;
const RETRY_PAUSE_MS: u64 = 500;
/// Buffer of the file reader in `status` and `restore`.
const FILE_BUFFER_BYTES: usize = 1024 * 1024;

#[derive(clap::Subcommand, Debug)]
pub enum BackupCommand {
    /// Save an online, consistent backup of the server at --addr (a single
    /// node or any cluster node) to FILE, replacing FILE only once the new
    /// backup is complete and verified.
    Save {
        /// Where to write the backup.
        file: PathBuf,
        /// Cluster: back up this node's state without first confirming a
        /// read point with a quorum (for a node cut off from its cluster;
        /// the backup may miss the latest acknowledged writes).
        #[arg(long)]
        stale: bool,
    },
    /// Verify a backup file whole (structure, every record, checksum) and
    /// describe it. Exit 0 intact, 1 damaged, 2 could not read.
    Status {
        /// The backup file.
        file: PathBuf,
    },
    /// Build a new data directory from a backup file, for a single node or
    /// (with --initial-cluster) for the first node of a new cluster. The
    /// directory must not exist or be empty; nothing is left behind if the
    /// file is damaged. Exit 0 restored, 1 damaged file, 2 other errors.
    Restore {
        /// The backup file.
        file: PathBuf,
        /// The new data directory (the server's --data-dir).
        #[arg(long)]
        data_dir: PathBuf,
        /// Seed a new cluster: `ID=HOST:PORT`, the one node this directory
        /// is for and its peer address, exactly as that node is then
        /// started with `--initial-cluster`. Add the other nodes with
        /// `--join` (README, "Backup and restore").
        #[arg(long, value_name = "ID=HOST:PORT")]
        initial_cluster: Option<String>,
    },
}

pub fn run(addr: &str, command: BackupCommand) -> ExitCode {
    let result = match command {
        BackupCommand::Save { file, stale } => save(addr, &file, stale),
        BackupCommand::Status { file } => status(&file),
        BackupCommand::Restore {
            file,
            data_dir,
            initial_cluster,
        } => restore(&file, &data_dir, initial_cluster.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let damaged = e.chain().any(|c| {
                c.downcast_ref::<BackupError>()
                    .is_some_and(BackupError::is_damage)
            });
            ExitCode::from(if damaged { 1 } else { 2 })
        }
    }
}

fn connect(addr: &str) -> Result<Client, ClientError> {
    Client::connect_with(
        addr,
        ClientOptions {
            connect_timeout_ms: CONNECT_TIMEOUT_MS,
            io_timeout_ms: REQUEST_TIMEOUT_MS,
            ..ClientOptions::default()
        },
    )
}

fn save(addr: &str, file: &Path, stale: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut client = connect(addr)?;
    let mut begin = vec!["BACKUP", "BEGIN"];
    if stale {
        begin.push("STALE");
    }
    let reply = client.call(&begin)?;
    let id = match &reply {
        Reply::Array(items) if items.len() == 4 => match &items[0] {
            Reply::Bulk(id) => String::from_utf8_lossy(id).into_owned(),
            _ => bail!("BACKUP BEGIN: unexpected reply {reply:?}"),
        },
        Reply::Error(e) => bail!("BACKUP BEGIN: {e}"),
        other => bail!("BACKUP BEGIN: unexpected reply {other:?}"),
    };
    let tmp = temp_path(file);
    let result = receive(addr, client, &id, &tmp);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        // Let the server drop the snapshot now rather than at its timeout.
        if let Ok(mut c) = connect(addr) {
            let _ = c.call(&["BACKUP", "END", &id]);
        }
    }
    let (header, summary) = result?;
    fs::rename(&tmp, file).with_context(|| format!("rename to {}", file.display()))?;
    sync_parent(file)?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "saved {}: {} keys, {} bytes, version {} (taken at {} from {}), in {:.1} s ({:.1} MB/s), \
         peak RSS {:.1} MB",
        file.display(),
        summary.keys,
        summary.file_bytes,
        header.version,
        rfc3339(header.taken_at_ms),
        source_name(&header),
        secs,
        summary.file_bytes as f64 / 1e6 / secs.max(1e-9),
        crate::allocator::peak_rss_bytes() as f64 / 1e6,
    );
    Ok(())
}

/// Receives the whole backup into `tmp`, checking it as it arrives, then
/// ends it on the server. The file is fsynced before this returns.
fn receive(
    addr: &str,
    client: Client,
    id: &str,
    tmp: &Path,
) -> anyhow::Result<(BackupHeader, BackupSummary)> {
    let out = File::create(tmp).with_context(|| format!("create {}", tmp.display()))?;
    let mut source = Chunks {
        addr,
        client: Some(client),
        id,
        offset: 0,
        pending: Bytes::new(),
        complete: false,
        sink: BufWriter::with_capacity(FILE_BUFFER_BYTES, out),
    };
    let (header, summary) = {
        let mut reader = BackupReader::open(&mut source)?;
        reader.verify_to_end()?;
        (reader.header().clone(), reader.summary().clone())
    };
    // The reader's last step looked for a byte after the checksum, which
    // asked the server for more: it said the file is complete.
    debug_assert!(source.complete);
    let file = source.sink.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    if let Some(mut client) = source.client.take() {
        let _ = client.call(&["BACKUP", "END", id]);
    }
    Ok((header, summary))
}

/// The backup's bytes as a `Read`, fetched a chunk at a time and copied to
/// `sink` as they arrive.
struct Chunks<'a> {
    addr: &'a str,
    /// `None` after a network error, until the next attempt reconnects.
    client: Option<Client>,
    id: &'a str,
    offset: u64,
    pending: Bytes,
    complete: bool,
    sink: BufWriter<File>,
}

impl Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pending.is_empty() && !self.complete {
            self.fetch()?;
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending.split_to(n));
        Ok(n)
    }
}

impl Chunks<'_> {
    /// The next chunk (or the end), resending the request on a new
    /// connection after a network error.
    fn fetch(&mut self) -> io::Result<()> {
        let offset = self.offset.to_string();
        let args = ["BACKUP", "NEXT", self.id, &offset];
        let mut attempt = 0;
        let reply = loop {
            attempt += 1;
            let result = match self.client.as_mut() {
                Some(c) => c.call(&args),
                None => connect(self.addr).and_then(|c| self.client.insert(c).call(&args)),
            };
            match result {
                // The same request, resent while the server still cuts the
                // chunk for the first one (whose reply was lost): wait.
                Ok(Reply::Error(e))
                    if e.contains("serving another request") && attempt < CHUNK_ATTEMPTS_MAX =>
                {
                    std::thread::sleep(Duration::from_millis(RETRY_PAUSE_MS));
                }
                Ok(reply) => break reply,
                Err(e) if attempt >= CHUNK_ATTEMPTS_MAX => {
                    return Err(io::Error::other(format!(
                        "BACKUP NEXT at byte {offset}: {e} ({attempt} attempts)"
                    )));
                }
                Err(e) => {
                    eprintln!("warning: BACKUP NEXT at byte {offset}: {e}; retrying");
                    self.client = None;
                    std::thread::sleep(Duration::from_millis(RETRY_PAUSE_MS));
                }
            }
        };
        match reply {
            Reply::Bulk(chunk) if !chunk.is_empty() => {
                self.sink.write_all(&chunk)?;
                self.offset += chunk.len() as u64;
                self.pending = chunk;
            }
            Reply::Null => self.complete = true,
            Reply::Error(e) => return Err(io::Error::other(format!("BACKUP NEXT: {e}"))),
            other => {
                return Err(io::Error::other(format!(
                    "BACKUP NEXT: unexpected reply {other:?}"
                )));
            }
        }
        Ok(())
    }
}

/// `<file>.tmp-<pid>`, beside the file (same file system: the rename is
/// atomic).
fn temp_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    file.with_file_name(name)
}

fn sync_parent(file: &Path) -> io::Result<()> {
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

fn open_backup(file: &Path) -> anyhow::Result<BackupReader<BufReader<File>>> {
    let f = File::open(file).with_context(|| format!("open {}", file.display()))?;
    let reader = BackupReader::open(BufReader::with_capacity(FILE_BUFFER_BYTES, f))
        .with_context(|| format!("{} is not a usable backup", file.display()))?;
    Ok(reader)
}

fn status(file: &Path) -> anyhow::Result<()> {
    let mut reader = open_backup(file)?;
    reader
        .verify_to_end()
        .with_context(|| format!("{} is damaged", file.display()))?;
    let (h, s) = (reader.header(), reader.summary());
    println!("file: {}", file.display());
    println!(
        "format: STRATABK version {BACKUP_FORMAT_VERSION}, written by {}",
        h.server
    );
    println!(
        "taken at: {} ({} ms)",
        rfc3339(h.taken_at_ms),
        h.taken_at_ms
    );
    println!("source: {}", source_name(h));
    let meaning = if h.node_id == 0 {
        "the last commit group"
    } else {
        "the last log index applied"
    };
    println!("version: {} ({meaning})", h.version);
    println!("keys: {} ({} with an expiry)", s.keys, s.expiring_keys);
    println!("value bytes: {}", s.value_bytes);
    println!("file bytes: {}", s.file_bytes);
    println!("ok: structure, every record and the checksum verified");
    Ok(())
}

fn restore(file: &Path, data_dir: &Path, initial_cluster: Option<&str>) -> anyhow::Result<()> {
    let seed = initial_cluster.map(parse_seed).transpose()?;
    let reader = open_backup(file)?;
    let mode = match &seed {
        None => RestoreMode::SingleNode,
        Some((id, peer)) => {
            let index = strata_storage::seed_index(reader.header());
            RestoreMode::ClusterSeed {
                applied_mark: strata_replication::seed_applied_mark(index, *id, peer)?,
            }
        }
    };
    let started = Instant::now();
    let report = strata_storage::restore_data_dir(reader, data_dir, mode, strata_storage::now_ms())
        .with_context(|| format!("restore {} into {}", file.display(), data_dir.display()))?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "restored {} keys into {} ({} expired since the backup, skipped), version {}, in {:.1} s ({:.1} MB/s)",
        report.keys_restored,
        data_dir.display(),
        report.keys_expired,
        report.header.version,
        secs,
        report.summary.file_bytes as f64 / 1e6 / secs.max(1e-9),
    );
    if let Some((id, peer)) = seed {
        println!(
            "next: start node {id} with --data-dir {} --node-id {id} --initial-cluster {id}={peer}; \
             it leads a one-node cluster. Then start each other node with an empty data \
             directory and --join {peer}: it receives the data as a snapshot.",
            data_dir.display()
        );
    }
    Ok(())
}

/// `ID=HOST:PORT`: exactly one node.
fn parse_seed(s: &str) -> anyhow::Result<(u64, String)> {
    let mut nodes = strata_server::config::parse_initial_cluster(s)
        .map_err(|e| anyhow!("--initial-cluster {s:?}: {e}"))?;
    if nodes.len() != 1 {
        bail!(
            "--initial-cluster names {} nodes; a restore seeds one node (ID=HOST:PORT), \
             and the others join it",
            nodes.len()
        );
    }
    Ok(nodes.remove(0))
}

fn source_name(h: &BackupHeader) -> String {
    match h.node_id {
        0 => "a single node".to_string(),
        id => format!("cluster node {id}"),
    }
}

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_796_644_800_000), "2026-12-07T12:00:00.000Z");
    }

    #[test]
    fn a_seed_is_one_node() {
        assert_eq!(
            parse_seed("3=10.0.0.3:7380").unwrap(),
            (3, "10.0.0.3:7380".to_string())
        );
        assert!(parse_seed("1=a:1,2=b:2").is_err());
        assert!(parse_seed("0=a:1").is_err());
        assert!(parse_seed("1").is_err());
    }

    #[test]
    fn temp_files_sit_beside_the_file() {
        let p = temp_path(Path::new("/x/y/b.sbk"));
        assert_eq!(p.parent(), Some(Path::new("/x/y")));
        assert!(
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("b.sbk.tmp-")
        );
    }
}
