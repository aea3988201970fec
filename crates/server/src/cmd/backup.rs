//! BACKUP: an online backup, a chunk per request (README, "Backup and
//! restore"; the registry is `crate::backup`, the file format
//! `strata_storage::BackupStream`).
//!
//! - `BACKUP BEGIN [STALE]`: takes a consistent snapshot of this node's
//!   store and its version. In a cluster it first waits for a read point,
//!   like a linearizable read, so the backup holds every write
//!   acknowledged before it (STALE skips that: a node without a quorum
//!   can still be backed up, as of what it has applied). Answers
//!   `[id, version, taken_at_ms, chunk_size_bytes]`.
//! - `BACKUP NEXT id offset`: the file's bytes from `offset` (at most a
//!   chunk), or nil once it is complete. `offset` is the bytes received
//!   so far; asking for the last chunk's offset again resends it.
//! - `BACKUP END id`: drops the backup (done, or abandoned).
//! - `BACKUP LIST`: `[id, offset, complete, idle_ms, age_ms]` per backup.
//!
//! Parsing is synchronous (an [`Action::Backup`]); running is not
//! ([`run`]): BEGIN may wait for a read point and for the writer's lock,
//! and NEXT reads from the engine on a blocking thread.

use strata_protocol::resp::Reply;
use strata_storage::BackupHeader;

use super::args::{self, is};
use super::{Action, Ctx};
use crate::backup::{BackupRefusal, CHUNK_SIZE_BYTES};
use crate::shared::Shared;

/// A parsed BACKUP request, run by the connection.
pub enum BackupCall {
    Begin { stale: bool },
    Next { id: u64, offset: u64 },
    End { id: u64 },
    List,
}

pub fn backup(_ctx: &mut Ctx<'_>, a: &[bytes::Bytes]) -> Action {
    match parse(a) {
        Ok(call) => Action::Backup(call),
        Err(reply) => reply.into(),
    }
}

fn parse(a: &[bytes::Bytes]) -> Result<BackupCall, Reply> {
    let sub = &a[1];
    let want = |n: usize| {
        if a.len() == n {
            Ok(())
        } else {
            Err(args::wrong_arity(&format!(
                "backup|{}",
                String::from_utf8_lossy(sub).to_lowercase()
            )))
        }
    };
    if is(sub, "begin") {
        return match a.get(2) {
            None => Ok(BackupCall::Begin { stale: false }),
            Some(opt) if a.len() == 3 && is(opt, "stale") => Ok(BackupCall::Begin { stale: true }),
            Some(_) => Err(args::syntax()),
        };
    }
    if is(sub, "next") {
        want(4)?;
        let offset = args::int(&a[3])
            .ok()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| Reply::error("ERR the offset must be a non-negative integer"))?;
        return Ok(BackupCall::Next {
            id: backup_id(&a[2])?,
            offset,
        });
    }
    if is(sub, "end") {
        want(3)?;
        return Ok(BackupCall::End {
            id: backup_id(&a[2])?,
        });
    }
    if is(sub, "list") {
        want(2)?;
        return Ok(BackupCall::List);
    }
    Err(Reply::error(format!(
        "ERR unknown subcommand '{}'. Try BACKUP BEGIN, NEXT, END, LIST.",
        args::show(sub, 64)
    )))
}

/// A backup id: the 16 hex digits BEGIN answered.
fn backup_id(raw: &[u8]) -> Result<u64, Reply> {
    std::str::from_utf8(raw)
        .ok()
        .filter(|s| s.len() == 16)
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .ok_or_else(|| Reply::error("ERR a backup id is the 16 hex digits BACKUP BEGIN answered"))
}

fn int(v: u64) -> Reply {
    Reply::Integer(i64::try_from(v).unwrap_or(i64::MAX))
}

fn refused(e: BackupRefusal) -> Reply {
    Reply::error(format!("ERR {e}"))
}

/// Runs a BACKUP request.
pub async fn run(shared: &Shared, call: BackupCall) -> Reply {
    match call {
        BackupCall::Begin { stale } => begin(shared, stale).await,
        BackupCall::Next { id, offset } => match shared.backups.next(id, offset).await {
            Ok(Some(chunk)) => Reply::Bulk(chunk),
            Ok(None) => Reply::Null,
            Err(e) => refused(e),
        },
        BackupCall::End { id } => {
            if shared.backups.end(id) {
                Reply::ok()
            } else {
                refused(BackupRefusal::Unknown(id))
            }
        }
        BackupCall::List => Reply::Array(
            shared
                .backups
                .list()
                .into_iter()
                .map(|b| {
                    Reply::Array(vec![
                        Reply::bulk(format!("{:016x}", b.id)),
                        int(b.offset),
                        Reply::Integer(i64::from(b.complete)),
                        int(b.idle_ms),
                        int(b.age_ms),
                    ])
                })
                .collect(),
        ),
    }
}

async fn begin(shared: &Shared, stale: bool) -> Reply {
    if !shared.backups.has_room() {
        return refused(BackupRefusal::TooMany);
    }
    if !stale && let Err(e) = shared.write_path.read_barrier().await {
        return super::path_error(&e);
    }
    let store = shared.store.clone();
    let node_id = shared.cluster.as_ref().map_or(0, |n| n.id());
    let taken_at_ms = strata_storage::now_ms();
    // The writer's lock may be held for a whole group: not on a network
    // thread.
    let made = tokio::task::spawn_blocking(move || {
        let (snapshot, version) = store.snapshot_with_version();
        let header = BackupHeader {
            taken_at_ms,
            version,
            node_id,
            server: format!("strata {}", crate::VERSION),
        };
        strata_storage::BackupStream::new(&snapshot, header)
    })
    .await;
    let stream = match made {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return super::storage_error(&e),
        Err(e) => return Reply::error(format!("ERR backup could not start: {e}")),
    };
    let version = stream.header().version;
    match shared.backups.register(stream) {
        Ok(id) => {
            tracing::info!(backup = format!("{id:016x}"), version, "backup started");
            Reply::Array(vec![
                Reply::bulk(format!("{id:016x}")),
                int(version),
                int(taken_at_ms),
                int(CHUNK_SIZE_BYTES as u64),
            ])
        }
        Err(e) => refused(e),
    }
}
