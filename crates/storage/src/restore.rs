//! Restoring a backup file (`backup.rs`) into a new data directory.
//!
//! All or nothing: the directory is built under a temporary name next to
//! the target, and renamed to it only once the whole file was read and
//! checked (checksum included) and the engine was closed; on any error
//! the temporary directory is removed and the target never appears. A
//! target that exists must be an empty directory.
//!
//! The records are written verbatim (their versions and expiry times
//! kept); what the engine derives from them is rebuilt in the same
//! batches: the expiry index, the key counters, and the version state of
//! the mode the directory is for. A record that has expired since the
//! backup was taken is skipped. Nothing here knows Raft: a cluster
//! seed's applied mark is bytes from the replication layer, as in
//! `ReplicatedStore::install`.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use fjall::PersistMode;

use crate::backup::{BackupError, BackupHeader, BackupReader, BackupSummary};
use crate::config::StorageConfig;
use crate::engine::{Engine, META_APPLIED, META_COUNTS, META_VERSION, Mode, data_key, encode_u64};
use crate::state::{Counts, expiry_key};

/// Records per engine batch, and bytes (about): bounds the memory of a
/// restore, as `log_apply::install`'s batches do.
const RESTORE_BATCH_ENTRIES_MAX: usize = 4096;
const RESTORE_BATCH_SIZE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// What the directory is for.
pub enum RestoreMode {
    /// A single node (`strata server` without cluster flags). Its version
    /// ceiling is set to the backup's version, so every later write is
    /// stamped above every restored record.
    SingleNode,
    /// The first node of a new cluster: the data of a replicated store,
    /// with `applied_mark` (written last) saying it has applied the log up
    /// to the index [`seed_index`] gives. The replication layer makes the
    /// mark; see README, "Backup and restore".
    ClusterSeed { applied_mark: Bytes },
}

/// The log index a cluster seeded from a backup with `header` starts
/// after: its version (no record is newer), and at least 1, so that the
/// seed is past openraft's first entry (index 0).
pub fn seed_index(header: &BackupHeader) -> u64 {
    header.version.max(1)
}

/// What a restore did.
#[derive(Clone, Debug)]
pub struct RestoreReport {
    pub header: BackupHeader,
    /// The whole file's figures (every record, expired since or not).
    pub summary: BackupSummary,
    pub keys_restored: u64,
    /// Records that expired between the backup and `now_ms`: not restored.
    pub keys_expired: u64,
}

/// Restores the backup `reader` reads into a new data directory `target`
/// (see the module doc). Records that expired before `now_ms` are skipped.
pub fn restore_data_dir<R: Read>(
    reader: BackupReader<R>,
    target: &Path,
    mode: RestoreMode,
    now_ms: u64,
) -> Result<RestoreReport, BackupError> {
    check_target(target)?;
    let (parent, temp) = temp_dir_for(target)?;
    if temp.exists() {
        // Same name, same pid: a leftover of an interrupted earlier run.
        fs::remove_dir_all(&temp)?;
    }
    fs::create_dir(&temp)?;
    let built = load(reader, &temp, mode, now_ms).and_then(|report| {
        fs::rename(&temp, target).map_err(|e| {
            BackupError::Target(format!(
                "cannot move the restored directory into place at {}: {e}",
                target.display()
            ))
        })?;
        Ok(report)
    });
    match built {
        Ok(report) => {
            fs::File::open(&parent)?.sync_all()?;
            Ok(report)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&temp);
            Err(e)
        }
    }
}

/// A target must not exist, or be an empty directory.
fn check_target(target: &Path) -> Result<(), BackupError> {
    match fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::Target(format!(
                    "{} is not empty: restore only into a new or empty directory",
                    target.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BackupError::Target(format!(
            "cannot use {} as the data directory: {e}",
            target.display()
        ))),
    }
}

/// The target's parent (created if missing) and the temporary directory
/// beside the target: the same file system, so the final rename is atomic.
fn temp_dir_for(target: &Path) -> Result<(PathBuf, PathBuf), BackupError> {
    let name = target
        .file_name()
        .ok_or_else(|| BackupError::Target(format!("{} names no directory", target.display())))?;
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent)?;
    let temp = parent.join(format!(
        ".{}.restore-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    Ok((parent, temp))
}

/// Loads every record into a new engine in `dir`, writes the derived and
/// mode-specific keys last, makes it all durable, closes the engine and
/// opens it again to check the result reads back.
fn load<R: Read>(
    mut reader: BackupReader<R>,
    dir: &Path,
    mode: RestoreMode,
    now_ms: u64,
) -> Result<RestoreReport, BackupError> {
    let engine_mode = match mode {
        RestoreMode::SingleNode => Mode::Local,
        RestoreMode::ClusterSeed { .. } => Mode::Replicated,
    };
    let config = StorageConfig::new(dir);
    let engine = Engine::open(&config, engine_mode)?;
    let header = reader.header().clone();
    let (counts, expired, mut batch) = load_records(&mut reader, &engine, now_ms)?;
    // Only now is the whole file known intact: the rest is written last.
    batch.insert(&engine.data, META_COUNTS, counts.encode().to_vec());
    match mode {
        RestoreMode::SingleNode => {
            batch.insert(&engine.data, META_VERSION, encode_u64(header.version));
        }
        RestoreMode::ClusterSeed { applied_mark } => {
            batch.insert(&engine.data, META_APPLIED, applied_mark);
        }
    }
    batch.commit().map_err(crate::StorageError::from)?;
    engine.persist(PersistMode::SyncAll)?;
    drop(engine);
    // Reopening proves the engine let go of the directory (its lock) and
    // that what was written last reads back.
    let engine = Engine::open(&config, engine_mode)?;
    let reread = Counts::recover(&engine)?;
    if reread != counts {
        return Err(BackupError::Target(format!(
            "the restored directory reads back {reread:?}, expected {counts:?}"
        )));
    }
    drop(engine);
    Ok(RestoreReport {
        header,
        summary: reader.summary().clone(),
        keys_restored: counts.keys,
        keys_expired: expired,
    })
}

/// Writes every record live at `now_ms` (and its expiry index entry) in
/// bounded batches; returns the counts, the records skipped as expired,
/// and the last batch, not yet committed.
fn load_records<R: Read>(
    reader: &mut BackupReader<R>,
    engine: &Engine,
    now_ms: u64,
) -> Result<(Counts, u64, fjall::OwnedWriteBatch), BackupError> {
    let mut counts = Counts::default();
    let mut expired = 0u64;
    let mut batch = engine.db.batch();
    let (mut batch_entries, mut batch_size_bytes) = (0usize, 0usize);
    while let Some(item) = reader.next_record()? {
        if !item.record.is_live_at(now_ms) {
            expired += 1;
            continue;
        }
        batch_size_bytes += item.key.len() + item.raw.len();
        if item.record.has_expiry() {
            counts.expiring += 1;
            batch.insert(
                &engine.data,
                expiry_key(item.record.expire_at_ms, &item.key),
                Vec::new(),
            );
        }
        counts.keys += 1;
        batch.insert(&engine.data, data_key(&item.key), item.raw);
        batch_entries += 1;
        if batch_entries >= RESTORE_BATCH_ENTRIES_MAX
            || batch_size_bytes >= RESTORE_BATCH_SIZE_BYTES_MAX
        {
            std::mem::replace(&mut batch, engine.db.batch())
                .commit()
                .map_err(crate::StorageError::from)?;
            (batch_entries, batch_size_bytes) = (0, 0);
        }
    }
    Ok((counts, expired, batch))
}
