//! The `powerloss` fault: a crash that also loses what the OS had not yet
//! written to disk.
//!
//! kill -9 keeps the page cache, so a killed server never loses a write
//! that reached the kernel. A power loss does lose every byte that was not
//! fsynced. To model it, each server runs under an `LD_PRELOAD` shim
//! ([`SHIM_SOURCE`], `syncshim.c`, compiled at run time with `cc`) that
//! appends a line to `$STRATA_SYNC_LOG` after every successful `fsync`,
//! `fdatasync`, `sync_file_range(WAIT_AFTER)`, `syncfs` and `rename*`. After
//! the SIGKILL, [`lose_unsynced`] rewinds every regular file under the data
//! directory to what the log says was durable, then the node restarts.
//!
//! The model, per regular file (matched by path AND inode number, so a
//! path reused by a new file does not inherit the old file's record):
//!
//! * the last sync record says `size` and `horizon`: the file was `size`
//!   bytes long and its content up to `horizon` was written before that
//!   sync. A longer file is truncated to `size` (bytes appended later are
//!   lost); bytes after `horizon` are zeroed (truncate to `horizon`, extend
//!   back), which is exact for a preallocated file written sequentially
//!   from offset 0, like fjall's journals (`set_len(64 MiB)`, then
//!   appends into the zeros). `horizon < size` is only recorded for such a
//!   writer (see `syncshim.c`); otherwise it is the size.
//! * a rename (`rename`, `renameat`, `renameat2` through libc) moves the
//!   record of its source to its target.
//! * no record: the file's content never reached the disk. If its
//!   directory was fsynced at some point, the name may be durable: the file
//!   is kept, emptied (like ext4's zero-length files after a crash);
//!   otherwise it is deleted. Without this, fjall's `lock` file (created
//!   empty, never fsynced, its directory fsynced right after) would vanish
//!   and the database could not be opened again, a state no real power
//!   loss produces. Directory fsyncs are used for this decision only; the
//!   entries of a directory are otherwise never rolled back.
//!
//! Limits: exact for append-only and preallocated-sequential files
//! (journals, SSTs, the snapshot files); approximate for files rewritten in
//! place (the old content is not restored: only lengths and the zeroed
//! tail are modelled); renames done with raw system calls (tempfile's
//! `persist` uses rustix, not libc) are not seen, so such a target counts as
//! unsynced unless it was fsynced under its new name (lsm-tree's
//! `rewrite_atomic` does fsync it); deletions and directory entries are
//! never resurrected or rolled back; `O_DIRECT`, `O_SYNC`/`O_DSYNC` writes
//! and `msync` are not recorded (Strata uses none of them).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The C source of the `LD_PRELOAD` shim.
pub const SHIM_SOURCE: &str = include_str!("syncshim.c");
/// The file name of the compiled shim.
pub const SHIM_FILE: &str = "libstrata_syncshim.so";
/// The environment variable naming the sync log.
pub const SYNC_LOG_ENV: &str = "STRATA_SYNC_LOG";
/// The sync log's file name in a node's directory (next to `data/`).
pub const SYNC_LOG_FILE: &str = "synced.log";

/// Compiles the shim into `dir` (`cc -shared -fPIC -O2 ... -ldl`); returns
/// the absolute path of the library. Fails when `cc` is missing or the
/// compilation fails.
pub fn build_shim(dir: &Path) -> anyhow::Result<PathBuf> {
    compile_shim(dir, "syncshim.c", SHIM_SOURCE, SHIM_FILE)
}

/// Compiles an `LD_PRELOAD` shim's C `source` into `dir/lib_file`; returns
/// the library's absolute path.
pub fn compile_shim(
    dir: &Path,
    source_file: &str,
    source: &str,
    lib_file: &str,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("canonicalize {}", dir.display()))?;
    let source_path = dir.join(source_file);
    std::fs::write(&source_path, source)
        .with_context(|| format!("write {}", source_path.display()))?;
    let lib = dir.join(lib_file);
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&lib)
        .arg(&source_path)
        .arg("-ldl")
        .output()
        .context("run cc (is a C compiler installed?)")?;
    if !out.status.success() {
        bail!(
            "cc failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(lib)
}

/// What the log says about one file's last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileRecord {
    pub ino: u64,
    /// Length of the file when it was synced.
    pub size: u64,
    /// End of the content written before the sync (`<= size`).
    pub horizon: u64,
}

/// A parsed sync log: the last record of every path.
#[derive(Debug, Default, Clone)]
pub struct SyncLog {
    pub files: HashMap<PathBuf, FileRecord>,
    /// Directories that were fsynced at least once.
    pub dirs: HashSet<PathBuf>,
    pub lines: u64,
    /// Lines that did not parse (a torn last line cannot happen with one
    /// O_APPEND write per line; counted anyway).
    pub bad_lines: u64,
}

impl SyncLog {
    /// Reads the log at `path`; a missing file is an empty log.
    pub fn read(path: &Path) -> io::Result<SyncLog> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(SyncLog::parse(&String::from_utf8_lossy(&bytes))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(SyncLog::default()),
            Err(e) => Err(e),
        }
    }

    /// Parses log lines (format: see `syncshim.c`), in order.
    pub fn parse(text: &str) -> SyncLog {
        let mut log = SyncLog::default();
        for line in text.lines() {
            if line.is_empty() {
                continue;
            }
            log.lines += 1;
            if !log.apply(line) {
                log.bad_lines += 1;
            }
        }
        log
    }

    fn apply(&mut self, line: &str) -> bool {
        let mut fields = line.splitn(5, '\t');
        let kind = fields.next();
        let Some(ino) = fields.next().and_then(|s| s.parse::<u64>().ok()) else {
            return false;
        };
        match kind {
            Some("F") => {
                let (Some(size), Some(horizon), Some(path)) = (
                    fields.next().and_then(|s| s.parse::<u64>().ok()),
                    fields.next().and_then(|s| s.parse::<u64>().ok()),
                    fields.next(),
                ) else {
                    return false;
                };
                self.files.insert(
                    PathBuf::from(path),
                    FileRecord {
                        ino,
                        size,
                        horizon: horizon.min(size),
                    },
                );
                true
            }
            Some("D") => {
                let (Some(_), Some(_), Some(path)) = (fields.next(), fields.next(), fields.next())
                else {
                    return false;
                };
                self.dirs.insert(PathBuf::from(path));
                true
            }
            Some("R") => {
                // R <ino> <to> <from>: paths contain no tab (ours do not).
                let rest: Vec<&str> = fields.collect();
                let [to, from] = rest[..] else {
                    return false;
                };
                let (to, from) = (PathBuf::from(to), PathBuf::from(from));
                if let Some(rec) = self.files.get(&from).copied()
                    && rec.ino == ino
                {
                    self.files.remove(&from);
                    self.files.insert(to, rec);
                }
                true
            }
            _ => false,
        }
    }
}

/// What [`lose_unsynced`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LossReport {
    /// Regular files looked at.
    pub files: u64,
    /// Files cut back to their synced length, and the bytes cut.
    pub truncated: u64,
    pub truncated_bytes: u64,
    /// Files whose unsynced content after the horizon was zeroed, and the
    /// bytes (from the horizon to the last non-zero byte) lost.
    pub zeroed: u64,
    pub zeroed_bytes: u64,
    /// Never-synced files removed (their directory was never fsynced).
    pub deleted: u64,
    pub deleted_bytes: u64,
    /// Never-synced files kept empty (their directory was fsynced).
    pub emptied: u64,
    pub emptied_bytes: u64,
    /// What happened to each file that lost something: `<path relative to
    /// the data dir> <action> <bytes>`.
    pub details: Vec<String>,
}

impl LossReport {
    /// Bytes lost in total.
    pub fn bytes(&self) -> u64 {
        self.truncated_bytes + self.zeroed_bytes + self.deleted_bytes + self.emptied_bytes
    }

    pub fn add(&mut self, o: &LossReport) {
        self.files += o.files;
        self.truncated += o.truncated;
        self.truncated_bytes += o.truncated_bytes;
        self.zeroed += o.zeroed;
        self.zeroed_bytes += o.zeroed_bytes;
        self.deleted += o.deleted;
        self.deleted_bytes += o.deleted_bytes;
        self.emptied += o.emptied;
        self.emptied_bytes += o.emptied_bytes;
        self.details.extend(o.details.iter().cloned());
    }
}

impl fmt::Display for LossReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} B lost: {} files truncated (-{} B), {} tails zeroed ({} B), \
             {} unsynced files deleted ({} B), {} emptied ({} B); {} files seen",
            self.bytes(),
            self.truncated,
            self.truncated_bytes,
            self.zeroed,
            self.zeroed_bytes,
            self.deleted,
            self.deleted_bytes,
            self.emptied,
            self.emptied_bytes,
            self.files
        )?;
        if !self.details.is_empty() {
            write!(f, " [{}]", self.details.join(", "))?;
        }
        Ok(())
    }
}

/// Rewinds every regular file under `data_dir` to its durable state
/// according to `log` (see the module documentation). The process using
/// the directory must be dead.
pub fn lose_unsynced(data_dir: &Path, log: &SyncLog) -> io::Result<LossReport> {
    let mut report = LossReport::default();
    let root = match data_dir.canonicalize() {
        Ok(root) => root,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    collect_files(&root, &mut files)?;
    files.sort();
    for path in files {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        report.files += 1;
        let len = meta.len();
        let name = path
            .strip_prefix(&root)
            .unwrap_or(&path)
            .display()
            .to_string();
        match log.files.get(&path).filter(|r| r.ino == meta.ino()) {
            Some(rec) => {
                let file = OpenOptions::new().read(true).write(true).open(&path)?;
                if len > rec.size {
                    file.set_len(rec.size)?;
                    report.truncated += 1;
                    report.truncated_bytes += len - rec.size;
                    report
                        .details
                        .push(format!("{name} truncated -{} B", len - rec.size));
                }
                let end = len.min(rec.size);
                if rec.horizon < end {
                    let mut file = file;
                    if let Some(last) = last_nonzero(&mut file, rec.horizon, end)? {
                        file.set_len(rec.horizon)?;
                        file.set_len(end)?;
                        report.zeroed += 1;
                        report.zeroed_bytes += last + 1 - rec.horizon;
                        report.details.push(format!(
                            "{name} zeroed after {} ({} B)",
                            rec.horizon,
                            last + 1 - rec.horizon
                        ));
                    }
                }
            }
            None => {
                let dir_synced = path.parent().is_some_and(|p| log.dirs.contains(p));
                if dir_synced {
                    if len > 0 {
                        OpenOptions::new().write(true).open(&path)?.set_len(0)?;
                    }
                    report.emptied += 1;
                    report.emptied_bytes += len;
                    if len > 0 {
                        report
                            .details
                            .push(format!("{name} never synced: emptied ({len} B)"));
                    }
                } else {
                    std::fs::remove_file(&path)?;
                    report.deleted += 1;
                    report.deleted_bytes += len;
                    report
                        .details
                        .push(format!("{name} never synced: deleted ({len} B)"));
                }
            }
        }
    }
    Ok(report)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_files(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// The offset of the last non-zero byte in `[from, to)`, reading only the
/// data extents (holes read as zeros).
fn last_nonzero(file: &mut File, from: u64, to: u64) -> io::Result<Option<u64>> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    let mut last = None;
    let mut pos = from;
    let mut buf = vec![0u8; 1 << 20];
    while pos < to {
        // SAFETY: lseek(2) on a descriptor we own; moves only our offset.
        let data = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
        if data < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENXIO) {
                break; // no data after pos
            }
            // SEEK_DATA unsupported: read everything.
            return scan(file, &mut buf, pos, to, last);
        }
        let data = data as u64;
        if data >= to {
            break;
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data as libc::off_t, libc::SEEK_HOLE) };
        let hole = if hole < 0 { to } else { (hole as u64).min(to) };
        last = scan(file, &mut buf, data, hole, last)?;
        pos = hole;
    }
    Ok(last)
}

fn scan(
    file: &mut File,
    buf: &mut [u8],
    from: u64,
    to: u64,
    mut last: Option<u64>,
) -> io::Result<Option<u64>> {
    file.seek(SeekFrom::Start(from))?;
    let mut pos = from;
    while pos < to {
        let want = ((to - pos) as usize).min(buf.len());
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        if let Some(i) = buf[..n].iter().rposition(|&b| b != 0) {
            last = Some(pos + i as u64);
        }
        pos += n as u64;
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn ino(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().ino()
    }

    /// The shim under coreutils: `sync FILE` is fsync, `sync -d` fdatasync,
    /// `sync -f` syncfs, `sync DIR` a directory fsync, `mv` a rename.
    #[test]
    fn shim_records_syncs_and_renames() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let shim = build_shim(&root.join("shim")).expect("build the shim (is cc installed?)");
        let work = root.join("work");
        std::fs::create_dir(&work).unwrap();
        let log_path = root.join(SYNC_LOG_FILE);
        let status = Command::new("sh")
            .arg("-c")
            .arg(
                "printf hello > a && sync a && printf more >> a && sync -d a && mv a b \
                 && sync . && printf x > c",
            )
            .current_dir(&work)
            .env("LD_PRELOAD", &shim)
            .env(SYNC_LOG_ENV, &log_path)
            .status()
            .unwrap();
        assert!(status.success());
        let text = std::fs::read_to_string(&log_path).unwrap();
        let b = work.join("b");
        let ino_b = ino(&b);
        assert_eq!(
            text,
            format!(
                "F\t{ino_b}\t5\t5\t{a}\nF\t{ino_b}\t9\t9\t{a}\nR\t{ino_b}\t{b}\t{a}\n\
                 D\t{}\t-1\t-1\t{}\n",
                ino(&work),
                work.display(),
                a = work.join("a").display(),
                b = b.display(),
            )
        );
        let log = SyncLog::parse(&text);
        assert_eq!(log.files.len(), 1);
        assert_eq!(
            log.files[&b],
            FileRecord {
                ino: ino_b,
                size: 9,
                horizon: 9
            }
        );
        // `c` was never synced, but its directory was: kept, emptied.
        std::fs::write(&b, b"hellomoreLOST").unwrap();
        let lost = lose_unsynced(&work, &log).unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), b"hellomore");
        assert_eq!(std::fs::read(work.join("c")).unwrap(), b"");
        assert_eq!((lost.truncated_bytes, lost.emptied_bytes), (4, 1));
    }

    #[test]
    fn parse_lines() {
        let log = SyncLog::parse(
            "F\t7\t100\t40\t/d/a\nD\t3\t-1\t-1\t/d\nF\t8\t10\t10\t/d/t\nR\t8\t/d/b\t/d/t\n\
             R\t9\t/d/c\t/d/a\nbogus\nF\t1\tx\t1\t/d/z\n",
        );
        assert_eq!(log.lines, 7);
        assert_eq!(log.bad_lines, 2);
        assert_eq!(
            log.files[Path::new("/d/a")],
            FileRecord {
                ino: 7,
                size: 100,
                horizon: 40
            }
        );
        // Renamed with a matching inode: moved. A mismatching rename
        // (inode 9 is not /d/a's) leaves the record where it was.
        assert!(!log.files.contains_key(Path::new("/d/t")));
        assert_eq!(log.files[Path::new("/d/b")].size, 10);
        assert!(!log.files.contains_key(Path::new("/d/c")));
        assert!(log.dirs.contains(Path::new("/d")));
    }

    #[test]
    fn rewinds_files() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let sub = root.join("sub");
        std::fs::create_dir(&sub).unwrap();
        // Appended after its sync at 5 bytes.
        let app = root.join("append");
        std::fs::write(&app, b"12345678").unwrap();
        // Preallocated to 1 MiB, synced with 3 bytes written, then 4 more.
        let pre = root.join("journal");
        let mut f = File::create(&pre).unwrap();
        f.set_len(1 << 20).unwrap();
        f.write_all(b"abcdefg").unwrap();
        drop(f);
        // Synced completely.
        let ok = root.join("ok");
        std::fs::write(&ok, b"xyz").unwrap();
        // Never synced, directory never synced / synced.
        let gone = sub.join("gone");
        std::fs::write(&gone, b"123").unwrap();
        let empty = root.join("lock");
        std::fs::write(&empty, b"42").unwrap();
        // Same path as a record, but another inode.
        let reused = root.join("reused");
        std::fs::write(&reused, b"new").unwrap();
        let text = format!(
            "F\t{}\t5\t5\t{}\nF\t{}\t{}\t3\t{}\nF\t{}\t3\t3\t{}\nD\t1\t-1\t-1\t{}\nF\t{}\t3\t3\t{}\n",
            ino(&app),
            app.display(),
            ino(&pre),
            1 << 20,
            pre.display(),
            ino(&ok),
            ok.display(),
            root.display(),
            ino(&reused) + 1,
            reused.display(),
        );
        let log = SyncLog::parse(&text);
        let report = lose_unsynced(&root, &log).unwrap();
        assert_eq!(std::fs::read(&app).unwrap(), b"12345");
        let journal = std::fs::read(&pre).unwrap();
        assert_eq!(journal.len(), 1 << 20);
        assert_eq!(&journal[..3], b"abc");
        assert!(journal[3..].iter().all(|&b| b == 0));
        assert_eq!(std::fs::read(&ok).unwrap(), b"xyz");
        assert!(!gone.exists());
        assert_eq!(std::fs::read(&empty).unwrap(), b"");
        assert_eq!(std::fs::read(&reused).unwrap(), b"");
        assert_eq!(
            report,
            LossReport {
                files: 6,
                truncated: 1,
                truncated_bytes: 3,
                zeroed: 1,
                zeroed_bytes: 4,
                deleted: 1,
                deleted_bytes: 3,
                emptied: 2,
                emptied_bytes: 5,
                details: vec![
                    "append truncated -3 B".to_string(),
                    "journal zeroed after 3 (4 B)".to_string(),
                    "lock never synced: emptied (2 B)".to_string(),
                    "reused never synced: emptied (3 B)".to_string(),
                    "sub/gone never synced: deleted (3 B)".to_string(),
                ],
            }
        );
        // Idempotent: a second pass loses nothing more.
        let again = lose_unsynced(&root, &log).unwrap();
        assert_eq!(again.bytes(), 0, "{again}");
    }
}
