//! Offline verification (`strata check`) and journal repair (`strata
//! repair`) of a data directory, with the server stopped.
//!
//! Both take the engine's own lock on the directory first, so neither runs
//! beside a server that has it open. The check changes nothing: it reads
//! the journals (the engine's read-only verification, see
//! `vendor/fjall/src/journal/verify.rs`) and re-hashes every table file of
//! every keyspace against the checksum its tree recorded when the file was
//! written. That covers every byte of every block (data, index, filter),
//! read or not, which walking the keys through the engine would not.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The engine's lock file in a data directory.
const LOCK_FILE: &str = "lock";
/// The engine's keyspaces, one tree per subdirectory.
const KEYSPACES_DIR: &str = "keyspaces";
/// A tree's pointer to its current version file: version id (u64 LE),
/// the version file's xxh3-128 checksum (u128 LE), checksum type (u8, 0).
const CURRENT_FILE: &str = "current";
const CURRENT_SIZE_BYTES: usize = 8 + 16 + 1;
/// A tree's table files: `tables/<id>`.
const TABLES_DIR: &str = "tables";
/// Bound on the entries a version file may list (levels * runs * tables):
/// far above any real tree, and it keeps a damaged count from looping.
const VERSION_TABLES_MAX: u64 = 10_000_000;
/// Chunk size for hashing files.
const CHUNK_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{0} is not a Strata data directory (it has no engine lock file)")]
    NotADataDir(PathBuf),
    #[error("{0} is in use by a running server; stop it first")]
    InUse(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the journals: {0}")]
    Engine(fjall::Error),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckError + '_ {
    move |source| CheckError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One damaged file.
#[derive(Clone, Debug)]
pub struct Damage {
    pub path: PathBuf,
    pub what: String,
}

/// What `check_data_dir` found.
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    pub journal_files: u64,
    pub journal_batches: u64,
    /// A journal whose last batch is incomplete (a crash while writing
    /// it): not damage; the next start drops that batch.
    pub torn_tail: Option<(PathBuf, u64)>,
    pub trees: u64,
    pub table_files: u64,
    pub table_bytes: u64,
    pub damaged: Vec<Damage>,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty()
    }
}

/// Holds the engine's lock on a data directory while it lives.
struct DirLock(#[allow(dead_code)] File);

fn lock_dir(dir: &Path) -> Result<DirLock, CheckError> {
    let path = dir.join(LOCK_FILE);
    let file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CheckError::NotADataDir(dir.to_path_buf()));
        }
        Err(e) => return Err(io_err(&path)(e)),
    };
    match file.try_lock() {
        Ok(()) => Ok(DirLock(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(CheckError::InUse(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => Err(io_err(&path)(e)),
    }
}

/// Verifies every journal and every table file under `dir`; changes
/// nothing.
pub fn check_data_dir(dir: &Path) -> Result<CheckReport, CheckError> {
    let _lock = lock_dir(dir)?;
    let mut report = CheckReport::default();
    check_journals(dir, &mut report)?;
    let keyspaces = dir.join(KEYSPACES_DIR);
    let mut trees: Vec<PathBuf> = match std::fs::read_dir(&keyspaces) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .map(|e| e.path())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_err(&keyspaces)(e)),
    };
    trees.sort();
    for tree in trees {
        report.trees += 1;
        check_tree(&tree, &mut report)?;
    }
    Ok(report)
}

fn check_journals(dir: &Path, report: &mut CheckReport) -> Result<(), CheckError> {
    let statuses = fjall::verify_journals(dir).map_err(CheckError::Engine)?;
    for s in statuses {
        report.journal_files += 1;
        report.journal_batches += s.batches;
        match s.end {
            fjall::JournalEnd::Clean => {}
            fjall::JournalEnd::TornTail => {
                report.torn_tail = Some((s.path, s.valid_size_bytes));
            }
            fjall::JournalEnd::Corrupt { offset, reason } => report.damaged.push(Damage {
                path: s.path,
                what: format!(
                    "journal corrupt at byte offset {offset}: {reason} ({} valid batches before it)",
                    s.batches
                ),
            }),
        }
    }
    Ok(())
}

/// One tree: its version file against the checksum in `current`, then
/// every table the version lists against the checksum recorded for it.
fn check_tree(tree: &Path, report: &mut CheckReport) -> Result<(), CheckError> {
    let current_path = tree.join(CURRENT_FILE);
    let current = match std::fs::read(&current_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A tree that never wrote a version has no tables; one that
            // lost its pointer would be recreated empty on open.
            if dir_has_files(&tree.join(TABLES_DIR)) {
                report.damaged.push(Damage {
                    path: current_path,
                    what: "missing, but the tree has table files".to_string(),
                });
            }
            return Ok(());
        }
        Err(e) => return Err(io_err(&current_path)(e)),
    };
    let Some((version_id, version_checksum)) = parse_current(&current) else {
        report.damaged.push(Damage {
            path: current_path,
            what: format!("{} bytes, not a version pointer", current.len()),
        });
        return Ok(());
    };
    let version_path = tree.join(format!("v{version_id}"));
    match hash_file(&version_path) {
        Ok((_, got)) if got == version_checksum => {}
        Ok(_) => {
            report.damaged.push(Damage {
                path: version_path,
                what: "version file checksum mismatch (its table list cannot be trusted)"
                    .to_string(),
            });
            return Ok(());
        }
        Err(e) => {
            report.damaged.push(Damage {
                path: version_path,
                what: format!("version file unreadable: {e}"),
            });
            return Ok(());
        }
    }
    let tables = match read_version_tables(&version_path) {
        Ok(tables) => tables,
        Err(what) => {
            report.damaged.push(Damage {
                path: version_path,
                what,
            });
            return Ok(());
        }
    };
    for (id, expected) in tables {
        check_table(
            &tree.join(TABLES_DIR).join(id.to_string()),
            expected,
            report,
        );
    }
    Ok(())
}

fn check_table(path: &Path, expected: u128, report: &mut CheckReport) {
    report.table_files += 1;
    match hash_file(path) {
        Ok((size, got)) => {
            report.table_bytes += size;
            if got != expected {
                report.damaged.push(Damage {
                    path: path.to_path_buf(),
                    what: format!(
                        "table checksum mismatch: the file hashes to {got:032x}, \
                         its tree recorded {expected:032x} when it was written"
                    ),
                });
            }
        }
        Err(e) => report.damaged.push(Damage {
            path: path.to_path_buf(),
            what: format!("table unreadable: {e}"),
        }),
    }
}

fn dir_has_files(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut entries| entries.next().is_some())
        .unwrap_or(false)
}

fn parse_current(bytes: &[u8]) -> Option<(u64, u128)> {
    if bytes.len() != CURRENT_SIZE_BYTES || bytes.get(24) != Some(&0) {
        return None;
    }
    let id = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let checksum = u128::from_le_bytes(bytes.get(8..24)?.try_into().ok()?);
    Some((id, checksum))
}

/// The (table id, checksum) pairs of a version file's `tables` section:
/// level count (u8), then per level a run count (u8), per run a table
/// count (u32 LE), per table its id (u64 LE), checksum type (u8, 0),
/// checksum (u128 LE) and global seqno (u64 LE).
fn read_version_tables(path: &Path) -> Result<Vec<(u64, u128)>, String> {
    let archive = sfa::Reader::new(path).map_err(|e| format!("version file unreadable: {e:?}"))?;
    let section = archive
        .toc()
        .section(b"tables")
        .ok_or("version file has no tables section")?;
    let mut r = section
        .reader(path)
        .map_err(|e| format!("version file unreadable: {e}"))?;
    let mut read = |buf: &mut [u8]| {
        r.read_exact(buf)
            .map_err(|e| format!("version file tables section: {e}"))
    };
    let mut out = Vec::new();
    let mut b1 = [0u8; 1];
    read(&mut b1)?;
    for _ in 0..b1[0] {
        read(&mut b1)?;
        for _ in 0..b1[0] {
            let mut b4 = [0u8; 4];
            read(&mut b4)?;
            for _ in 0..u32::from_le_bytes(b4) {
                // id (8), checksum type (1), checksum (16), global seqno (8)
                let mut t = [0u8; 33];
                read(&mut t)?;
                if t[8] != 0 || out.len() as u64 >= VERSION_TABLES_MAX {
                    return Err("version file tables section does not decode".to_string());
                }
                let id = u64::from_le_bytes(t[..8].try_into().unwrap_or_default());
                let checksum = u128::from_le_bytes(t[9..25].try_into().unwrap_or_default());
                out.push((id, checksum));
            }
        }
    }
    Ok(out)
}

/// The size and xxh3-128 of a whole file, read in bounded chunks.
fn hash_file(path: &Path) -> std::io::Result<(u64, u128)> {
    let mut file = File::open(path)?;
    let mut hasher = xxhash_rust::xxh3::Xxh3Default::new();
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((size, hasher.digest128()));
        }
        hasher.update(buf.get(..n).unwrap_or_default());
        size += n as u64;
    }
}

/// What `repair_journals` did to one journal file.
#[derive(Clone, Debug)]
pub struct JournalRepair {
    pub path: PathBuf,
    /// Where the original was copied first.
    pub copy: PathBuf,
    pub size_bytes_before: u64,
    /// The file's new size; `None`: the file was removed (it followed the
    /// damaged one, so replaying it would apply writes after a gap).
    pub size_bytes_after: Option<u64>,
}

/// What `repair_journals` found and did.
#[derive(Clone, Debug, Default)]
pub struct RepairReport {
    /// The damage found; `None`: nothing to repair.
    pub damage: Option<Damage>,
    pub files: Vec<JournalRepair>,
    /// The directory holding the copies of every file changed.
    pub quarantine_dir: Option<PathBuf>,
}

/// The explicit operator action after a start refused over a damaged
/// journal: copies the damaged journal and every later one into
/// `dir/quarantine-<unix ms>/`, cuts the damaged one at the end of its last
/// valid batch, and removes the later ones. Every batch before the damage
/// is kept; the writes after it that had not reached a table are lost
/// (their bytes stay in the copies). Does nothing when no journal is
/// damaged (a torn tail is not damage: the next start drops it).
pub fn repair_journals(dir: &Path, now_ms: u64) -> Result<RepairReport, CheckError> {
    let _lock = lock_dir(dir)?;
    let statuses = fjall::verify_journals(dir).map_err(CheckError::Engine)?;
    let Some(first_bad) = statuses
        .iter()
        .position(|s| matches!(s.end, fjall::JournalEnd::Corrupt { .. }))
    else {
        return Ok(RepairReport::default());
    };
    let bad = &statuses[first_bad];
    let damage = Damage {
        path: bad.path.clone(),
        what: match &bad.end {
            fjall::JournalEnd::Corrupt { offset, reason } => {
                format!("journal corrupt at byte offset {offset}: {reason}")
            }
            _ => String::new(),
        },
    };
    let quarantine = dir.join(format!("quarantine-{now_ms}"));
    std::fs::create_dir(&quarantine).map_err(io_err(&quarantine))?;
    let mut files = Vec::new();
    for (i, s) in statuses.iter().enumerate().skip(first_bad) {
        let name = s.path.file_name().unwrap_or_default();
        let copy = quarantine.join(name);
        copy_synced(&s.path, &copy)?;
        let size_bytes_after = if i == first_bad {
            cut(&s.path, s.valid_size_bytes)?;
            Some(s.valid_size_bytes)
        } else {
            std::fs::remove_file(&s.path).map_err(io_err(&s.path))?;
            None
        };
        files.push(JournalRepair {
            path: s.path.clone(),
            copy,
            size_bytes_before: s.file_size_bytes,
            size_bytes_after,
        });
    }
    sync_dir(&quarantine)?;
    sync_dir(dir)?;
    Ok(RepairReport {
        damage: Some(damage),
        files,
        quarantine_dir: Some(quarantine),
    })
}

fn copy_synced(from: &Path, to: &Path) -> Result<(), CheckError> {
    std::fs::copy(from, to).map_err(io_err(from))?;
    File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(io_err(to))
}

fn cut(path: &Path, size_bytes: u64) -> Result<(), CheckError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    file.set_len(size_bytes).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

fn sync_dir(dir: &Path) -> Result<(), CheckError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err(dir))
}
