//! Online backups in progress: the registry behind `BACKUP BEGIN`, `NEXT`
//! and `END` (`cmd/backup.rs`).
//!
//! A backup is a [`BackupStream`] over one storage snapshot (consistent:
//! one published state and its version), cut into chunks of at most
//! [`CHUNK_SIZE_BYTES`] as a client asks for them, so neither side ever
//! holds more than a chunk or two (and the largest record). The client
//! names the offset it wants: the next one, or the last one again (a
//! resend after a lost reply, on the same or a new connection, gets the
//! same bytes). At most [`BACKUPS_MAX`] are open at once, because each
//! holds a snapshot, and a held snapshot keeps the engine from dropping
//! old versions. A backup nobody asks anything of for
//! `--backup-idle-timeout-ms` is dropped (a task per backup watches it),
//! so a client that died cannot pin a snapshot forever.
//!
//! It knows nothing of RESP; `cmd/backup.rs` parses and replies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_storage::BackupStream;

/// Open backups at most: each holds a snapshot.
pub const BACKUPS_MAX: usize = 4;
/// The largest chunk one `BACKUP NEXT` returns.
pub const CHUNK_SIZE_BYTES: usize = 1024 * 1024;
/// `--backup-idle-timeout-ms`'s default: a client between two chunks is
/// milliseconds apart; a minute is a client that is gone.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;

/// Why a backup call was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BackupRefusal {
    #[error("{BACKUPS_MAX} backups are already in progress; wait for one to finish")]
    TooMany,
    #[error("no backup {0:016x} (it finished, was ended, or was idle too long)")]
    Unknown(u64),
    #[error("backup {id:016x} is at byte {at}, not {asked}")]
    Offset { id: u64, at: u64, asked: u64 },
    #[error("backup {0:016x} is serving another request")]
    Busy(u64),
    #[error("backup {id:016x} failed: {reason}")]
    Failed { id: u64, reason: String },
}

struct Open {
    /// `None` while a chunk is being cut (on a blocking thread), and once
    /// the file is complete (the snapshot is let go at once).
    stream: Option<Box<BackupStream>>,
    /// Bytes handed out.
    offset: u64,
    /// The last chunk handed out and its offset, for a resend.
    last: Option<(u64, Bytes)>,
    complete: bool,
    last_used: Instant,
    started: Instant,
}

/// What `BACKUP LIST` shows of one backup.
#[derive(Clone, Debug)]
pub struct BackupInfo {
    pub id: u64,
    pub offset: u64,
    pub complete: bool,
    pub idle_ms: u64,
    pub age_ms: u64,
}

pub struct Backups {
    open: Mutex<HashMap<u64, Open>>,
    idle_timeout: Duration,
}

impl Backups {
    pub fn new(idle_timeout_ms: u64) -> Arc<Backups> {
        Arc::new(Backups {
            open: Mutex::new(HashMap::new()),
            idle_timeout: Duration::from_millis(idle_timeout_ms),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Open>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether another backup may begin now (checked before the work of
    /// taking a snapshot; [`Backups::register`] checks again).
    pub fn has_room(&self) -> bool {
        self.lock().len() < BACKUPS_MAX
    }

    /// Registers a new backup and starts watching it for idleness; returns
    /// its id. Must run inside the runtime.
    pub fn register(self: &Arc<Self>, stream: BackupStream) -> Result<u64, BackupRefusal> {
        let id = {
            let mut open = self.lock();
            if open.len() >= BACKUPS_MAX {
                return Err(BackupRefusal::TooMany);
            }
            let mut id = random_id();
            while id == 0 || open.contains_key(&id) {
                id = random_id();
            }
            let now = Instant::now();
            open.insert(
                id,
                Open {
                    stream: Some(Box::new(stream)),
                    offset: 0,
                    last: None,
                    complete: false,
                    last_used: now,
                    started: now,
                },
            );
            id
        };
        tokio::spawn(expire_when_idle(
            Arc::downgrade(self),
            id,
            self.idle_timeout,
        ));
        Ok(id)
    }

    /// The chunk at `offset`: the next one (cut now, on a blocking thread),
    /// or the last one again. `None` once the file is complete.
    pub async fn next(&self, id: u64, offset: u64) -> Result<Option<Bytes>, BackupRefusal> {
        let mut stream = {
            let mut open = self.lock();
            let entry = open.get_mut(&id).ok_or(BackupRefusal::Unknown(id))?;
            entry.last_used = Instant::now();
            if let Some((at, chunk)) = &entry.last
                && *at == offset
            {
                return Ok(Some(chunk.clone()));
            }
            if offset != entry.offset {
                return Err(BackupRefusal::Offset {
                    id,
                    at: entry.offset,
                    asked: offset,
                });
            }
            if entry.complete {
                return Ok(None);
            }
            entry.stream.take().ok_or(BackupRefusal::Busy(id))?
        };
        let cut = tokio::task::spawn_blocking(move || {
            let chunk = stream.next_chunk(CHUNK_SIZE_BYTES);
            (stream, chunk)
        })
        .await;
        let mut open = self.lock();
        let (stream, chunk) = match cut {
            Ok(done) => done,
            Err(e) => {
                open.remove(&id);
                return Err(failed(id, e.to_string()));
            }
        };
        // Ended (END) while the chunk was cut: it is dropped here.
        let entry = open.get_mut(&id).ok_or(BackupRefusal::Unknown(id))?;
        entry.last_used = Instant::now();
        match chunk {
            Err(e) => {
                open.remove(&id);
                Err(failed(id, e.to_string()))
            }
            Ok(chunk) if chunk.is_empty() => {
                // Complete: the snapshot goes now; the entry stays (a few
                // bytes) so that a resend of this request gets the same
                // answer, until END or the idle timeout.
                entry.complete = true;
                entry.last = None;
                Ok(None)
            }
            Ok(chunk) => {
                debug_assert_eq!(stream.offset(), offset + chunk.len() as u64);
                entry.offset = stream.offset();
                entry.last = Some((offset, chunk.clone()));
                entry.stream = Some(stream);
                Ok(Some(chunk))
            }
        }
    }

    /// Drops a backup; false if there was none.
    pub fn end(&self, id: u64) -> bool {
        self.lock().remove(&id).is_some()
    }

    pub fn list(&self) -> Vec<BackupInfo> {
        let now = Instant::now();
        let mut out: Vec<BackupInfo> = self
            .lock()
            .iter()
            .map(|(id, b)| BackupInfo {
                id: *id,
                offset: b.offset,
                complete: b.complete,
                idle_ms: now.duration_since(b.last_used).as_millis() as u64,
                age_ms: now.duration_since(b.started).as_millis() as u64,
            })
            .collect();
        out.sort_by_key(|b| b.id);
        out
    }
}

fn failed(id: u64, reason: String) -> BackupRefusal {
    tracing::warn!(backup = format!("{id:016x}"), %reason, "backup failed");
    BackupRefusal::Failed { id, reason }
}

/// Drops backup `id` once it has been idle for `timeout` (not while a
/// chunk is being cut); ends when the backup or the registry is gone.
async fn expire_when_idle(backups: Weak<Backups>, id: u64, timeout: Duration) {
    let mut wait = timeout;
    loop {
        tokio::time::sleep(wait).await;
        let Some(backups) = backups.upgrade() else {
            return;
        };
        let mut open = backups.lock();
        let Some(entry) = open.get(&id) else {
            return;
        };
        let idle = entry.last_used.elapsed();
        let cutting = entry.stream.is_none() && !entry.complete;
        if idle >= timeout && !cutting {
            open.remove(&id);
            tracing::info!(
                backup = format!("{id:016x}"),
                idle_ms = idle.as_millis() as u64,
                "backup dropped: idle too long"
            );
            return;
        }
        wait = timeout.saturating_sub(idle).max(Duration::from_millis(10));
    }
}

/// A backup id: unpredictable, so that a client cannot stumble on another
/// one's backup by counting.
fn random_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.write_u64(strata_storage::now_ms());
    h.finish()
}
