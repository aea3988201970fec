//! The fjall database, its keyspaces and the layout of keys in them.
//! Nothing outside this crate sees fjall: the rest of Strata talks to
//! [`crate::Store`] and the two modes on it.
//!
//! What the keys *mean* for the derived state (key counters, expiry index)
//! is `state.rs`'s; the engine only stores and finds them.

use std::sync::Arc;

use bytes::Bytes;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};

use crate::config::{KEY_SIZE_BYTES_LIMIT, StorageConfig};
use crate::error::{Result, StorageError};
use crate::record::Record;

/// Which keyspaces a store opens: the mode decides it at open, and a data
/// directory keeps the layout of the mode it was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// One node (`LocalStore`): the data keyspace only.
    Local,
    /// Applying a replicated log (`ReplicatedStore`): the data keyspace, the
    /// log's and the request records'.
    Replicated,
}

/// Everything lives in ONE keyspace, each kind of entry behind its own tag
/// byte. Why one: the engine can only drop a journal file once every
/// keyspace with data in it has flushed its memtable. A small keyspace
/// written on every commit (counters) or rarely (the expiry index) would
/// hardly ever fill its memtable, so it would pin the journal, and replay
/// after a crash would grow toward `journal_size_bytes_max`. With one
/// keyspace, a memtable flush frees the journal, and recovery replays at
/// most about one memtable.
const KEYSPACE: &str = "data";

/// The replicated log of a replicated store (see `log.rs`). The name on
/// disk is historical ("raftlog"; the log's entries are the replication
/// layer's, which runs Raft) and must stay: data directories carry it. A
/// second keyspace in the SAME database, so that one journal fsync makes both the
/// log and the applied data durable, and the journal's order keeps them
/// consistent after a crash (recovery replays a prefix of both). It does
/// not pin the journal the way a counters keyspace would: it is written on
/// every commit, so its memtable fills and flushes like the data's.
const LOG_KEYSPACE: &str = "raftlog";

/// Retry dedupe records of a replicated store (see `requests.rs`). Their
/// own keyspace, not the data's, because FLUSHALL clears the data keyspace
/// and must not clear them: a resend of a request applied BEFORE a
/// FLUSHALL must still be answered from its record, not applied again on
/// the flushed store. Like the log, it is written on every group that
/// carries request ids, so its memtable fills and flushes under write load;
/// when writes are rare, `journal_size_bytes_max` still bounds the journal
/// it pins.
const DEDUPE_KEYSPACE: &str = "dedupe";

/// fjall sleeps inside `commit` (100 ms steps) while this many memtables
/// wait to be flushed...
pub(crate) const STALL_SEALED_MEMTABLES: usize = 4;
/// ...and throttles commits from this many L0 runs.
pub(crate) const THROTTLE_L0_TABLES: usize = 20;

/// `k` ++ user key -> record. The tag also lets the engine, which refuses
/// empty keys, store Redis's empty key.
pub(crate) const TAG_DATA: u8 = b'k';
/// `m` ++ name -> Strata's own bookkeeping.
pub(crate) const TAG_META: u8 = b'm';
/// `x` ++ be_u64(expire_at_ms) ++ user key -> empty: keys by expiry time.
pub(crate) const TAG_EXPIRY: u8 = b'x';

pub(crate) fn tagged(tag: u8, rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + rest.len());
    out.push(tag);
    out.extend_from_slice(rest);
    out
}

/// Meta key for the key counters (keys, keys with expiry), written in the
/// same atomic batch as the data they count.
pub(crate) const META_COUNTS: &[u8] = b"mcounts";

/// Meta key for the single-node version ceiling (`commit::Versions`): a
/// little-endian u64, every record version is at or below it. Not in a
/// replicated store, whose versions are log indices.
pub(crate) const META_VERSION: &[u8] = b"mversion";

/// Meta key for `Versions::deleted_max` in a replicated store: a
/// little-endian u64, part of the replicated state (snapshots carry it).
pub(crate) const META_DELETED: &[u8] = b"mdeleted";

pub(crate) fn encode_u64(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// Strict: exactly 8 bytes.
pub(crate) fn decode_u64(raw: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(raw.try_into().ok()?))
}

/// Meta key for the replication layer's applied mark (replicated mode),
/// written in the same atomic batch as the effects of the entries it marks.
/// The bytes are opaque here; the name on disk is historical and stays.
pub(crate) const META_APPLIED: &[u8] = b"mraft.applied";

/// `m` `r` ++ be_u64(now_ms) ++ be_u64(session) ++ be_u64(seq) -> the
/// postcard-encoded outcomes of replicated requests (retry dedupe), in the
/// [`DEDUPE_KEYSPACE`]. Time first, so eviction of old records is one range
/// scan. The `m` tag is kept although the keyspace is their own, so that a
/// snapshot stream (data and dedupe keyspaces merged in key order) keeps
/// the format it had when they lived with the data. Note that
/// [`META_APPLIED`] shares the `mr` prefix: in a stream, dedupe keys are
/// told apart by their exact length, [`DEDUPE_KEY_LEN`].
pub(crate) const DEDUPE_PREFIX: &[u8] = b"mr";
pub(crate) const DEDUPE_KEY_LEN: usize = 2 + 3 * 8;

pub(crate) fn dedupe_key(now_ms: u64, session: u64, seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(DEDUPE_KEY_LEN);
    out.extend_from_slice(DEDUPE_PREFIX);
    out.extend_from_slice(&now_ms.to_be_bytes());
    out.extend_from_slice(&session.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

/// Dedupe records of requests accepted before `older_than_ms`. Dedupe
/// keys are the only 26-byte keys in this range; filter on the length.
pub(crate) fn dedupe_range_before(older_than_ms: u64) -> std::ops::Range<Vec<u8>> {
    let mut end = DEDUPE_PREFIX.to_vec();
    end.extend_from_slice(&older_than_ms.to_be_bytes());
    dedupe_key(0, 0, 0)..end
}

/// Whether a key from a snapshot stream (or an old data keyspace) is a
/// dedupe record's.
pub(crate) fn is_dedupe_key(key: &[u8]) -> bool {
    key.len() == DEDUPE_KEY_LEN && key.starts_with(DEDUPE_PREFIX)
}

/// Records moved per batch by [`Engine::move_dedupe_records`]: bounds the
/// memory of a migration.
const MIGRATE_BATCH_ENTRIES_MAX: usize = 4096;

/// The engine's own limits, which it enforces by panicking: bytes from a
/// peer are checked against them first.
pub(crate) const ENGINE_KEY_SIZE_BYTES_MAX: usize = u16::MAX as usize;
pub(crate) const ENGINE_VALUE_SIZE_BYTES_MAX: u64 = u32::MAX as u64;

pub(crate) fn check_value_size(len: usize) -> Result<()> {
    if len as u64 > ENGINE_VALUE_SIZE_BYTES_MAX {
        return Err(StorageError::Config(format!(
            "a value of {len} bytes is larger than the engine stores ({ENGINE_VALUE_SIZE_BYTES_MAX})"
        )));
    }
    Ok(())
}

pub(crate) fn corrupt(key: &[u8], reason: &'static str) -> StorageError {
    StorageError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    }
}

/// Whether a user key can be stored at all. `apply` refuses longer keys,
/// so none exists, and a read of one must not reach the engine: it asserts
/// on key length (aborting the process) in lookups and range bounds alike.
pub(crate) fn storable(user_key: &[u8]) -> bool {
    user_key.len() <= KEY_SIZE_BYTES_LIMIT
}

pub(crate) fn data_key(user_key: &[u8]) -> Vec<u8> {
    tagged(TAG_DATA, user_key)
}

/// The user key of a stored key; zero-copy.
pub(crate) fn user_key(key: &[u8], stored: Bytes) -> Result<Bytes> {
    if stored.first() != Some(&TAG_DATA) {
        return Err(noted(StorageError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: "data key without its tag byte",
        }));
    }
    Ok(stored.slice(1..))
}

pub(crate) struct Engine {
    pub db: Database,
    /// The one data keyspace; see [`KEYSPACE`].
    pub data: Keyspace,
    /// The replicated log (`log.rs`); opened only in replicated mode, so a
    /// single-node data directory keeps exactly its old layout.
    pub log: Option<Keyspace>,
    /// Retry dedupe records; opened only in replicated mode. See
    /// [`DEDUPE_KEYSPACE`].
    pub dedupe: Option<Keyspace>,
}

impl Engine {
    pub fn open(config: &StorageConfig, mode: Mode) -> Result<Arc<Engine>> {
        config.validate().map_err(StorageError::Config)?;
        std::fs::create_dir_all(&config.data_dir)?;
        let db = Database::builder(&config.data_dir)
            .cache_size(config.cache_size_bytes)
            .max_journaling_size(config.journal_size_bytes_max)
            .open()?;
        let memtable = config.memtable_size_bytes;
        let data = db.keyspace(KEYSPACE, || {
            KeyspaceCreateOptions::default().max_memtable_size(memtable)
        })?;
        let (log, dedupe) = if mode == Mode::Replicated {
            let open = |name| {
                db.keyspace(name, || {
                    KeyspaceCreateOptions::default().max_memtable_size(memtable)
                })
            };
            (Some(open(LOG_KEYSPACE)?), Some(open(DEDUPE_KEYSPACE)?))
        } else {
            (None, None)
        };
        let engine = Engine {
            db,
            data,
            log,
            dedupe,
        };
        engine.move_dedupe_records()?;
        engine.drop_dedupe_records_without_mark()?;
        Ok(Arc::new(engine))
    }

    /// Whether a commit might sleep in the engine's write stall (see
    /// [`STALL_SEALED_MEMTABLES`]). Checked with margin (half of each
    /// threshold), because an inline commit runs on a network thread, which
    /// must not sleep.
    pub fn under_write_pressure(&self) -> bool {
        self.data.sealed_memtable_count() >= STALL_SEALED_MEMTABLES / 2
            || self.data.l0_table_count() >= THROTTLE_L0_TABLES / 2
    }

    /// Whether commits stall or are throttled now, by the engine's own
    /// thresholds (for monitoring: a gauge read at scrape time, so the
    /// writer pays nothing for it).
    pub fn write_stalled(&self) -> bool {
        self.data.sealed_memtable_count() >= STALL_SEALED_MEMTABLES
            || self.data.l0_table_count() >= THROTTLE_L0_TABLES
    }

    /// Bytes on disk per keyspace, by their names on disk (the journal,
    /// which they share, is `Database::journal_disk_space`).
    pub fn disk_space_by_keyspace(&self) -> Vec<(&'static str, u64)> {
        let mut out = vec![(KEYSPACE, self.data.disk_space())];
        if let Some(log) = &self.log {
            out.push((LOG_KEYSPACE, log.disk_space()));
        }
        if let Some(dedupe) = &self.dedupe {
            out.push((DEDUPE_KEYSPACE, dedupe.disk_space()));
        }
        out
    }

    /// The dedupe keyspace, or an error on a store that is not replicated.
    pub fn dedupe(&self) -> Result<&Keyspace> {
        self.dedupe.as_ref().ok_or_else(|| {
            StorageError::Config("dedupe records need a replicated store".to_string())
        })
    }

    /// A replicated store without an applied mark is rebuilt from the
    /// start: from the first log entry, or by installing a snapshot. The
    /// mark is missing on a new store, and after a crash in the middle of
    /// FLUSHALL or of a snapshot install, which clear the data keyspace
    /// (mark included) before they write the new mark. The dedupe records
    /// survive those clears, so they would describe entries that are about
    /// to be applied again: a replayed resend would find the record its
    /// own first proposal wrote and be skipped on this replica alone, and
    /// later entries would get other outcomes than on the other replicas.
    /// So they go too; the replay writes them again.
    fn drop_dedupe_records_without_mark(&self) -> Result<()> {
        let Some(dedupe) = &self.dedupe else {
            return Ok(());
        };
        if self.data.get(META_APPLIED)?.is_some() || dedupe.is_empty()? {
            return Ok(());
        }
        tracing::info!("no applied mark: dropping the dedupe records before the rebuild");
        dedupe.clear()?;
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    /// Data directories written before the dedupe keyspace existed keep
    /// their records in the data keyspace, where FLUSHALL would clear them:
    /// move them, in bounded batches. Each batch inserts and removes in one
    /// atomic step, so a crash part way leaves every record in exactly one
    /// place, and the next open finishes the move. A no-op (one empty range
    /// probe) once done.
    fn move_dedupe_records(&self) -> Result<()> {
        let Some(dedupe) = &self.dedupe else {
            return Ok(());
        };
        let mut moved = 0u64;
        // Each pass starts after the last key moved: starting from the
        // prefix again would walk every tombstone left so far (quadratic).
        let mut after: Option<fjall::UserKey> = None;
        loop {
            let mut batch = self.db.batch();
            let mut in_batch = 0usize;
            let start = match after.take() {
                Some(k) => std::ops::Bound::Excluded(k.to_vec()),
                None => std::ops::Bound::Included(DEDUPE_PREFIX.to_vec()),
            };
            // Just past every key with the prefix: the prefix with its
            // last byte incremented.
            let mut end_key = DEDUPE_PREFIX.to_vec();
            if let Some(last) = end_key.last_mut() {
                *last += 1;
            }
            let end = std::ops::Bound::Excluded(end_key);
            for guard in self.data.range::<Vec<u8>, _>((start, end)) {
                let (key, value) = guard.into_inner()?;
                // The applied mark shares the prefix; see DEDUPE_PREFIX.
                if !is_dedupe_key(&key) {
                    continue;
                }
                batch.remove(&self.data, key.clone());
                batch.insert(dedupe, key.clone(), value);
                after = Some(key);
                in_batch += 1;
                if in_batch == MIGRATE_BATCH_ENTRIES_MAX {
                    break;
                }
            }
            if in_batch == 0 {
                break;
            }
            batch.commit()?;
            moved += in_batch as u64;
        }
        if moved > 0 {
            self.db.persist(PersistMode::SyncAll)?;
            tracing::info!(
                records = moved,
                "moved dedupe records to their own keyspace"
            );
        }
        Ok(())
    }

    /// Reads a record from the latest state (the writer's view).
    pub fn load_latest(&self, key: &[u8]) -> Result<Option<Record>> {
        if !storable(key) {
            return Ok(None);
        }
        match self.data.get(data_key(key))? {
            Some(raw) => decode(key, raw.into()).map(Some),
            None => Ok(None),
        }
    }

    /// A meta key holding a u64 (`META_VERSION`, `META_DELETED`), 0 when
    /// absent (a store written before versions, or new).
    pub fn load_u64(&self, meta_key: &'static [u8]) -> Result<u64> {
        match self.data.get(meta_key)? {
            None => Ok(0),
            Some(raw) => decode_u64(&raw).ok_or_else(|| {
                noted(StorageError::Corrupt {
                    key: String::from_utf8_lossy(meta_key).into_owned(),
                    reason: "version counter is not 8 bytes",
                })
            }),
        }
    }

    pub fn persist(&self, mode: PersistMode) -> Result<()> {
        self.db.persist(mode)?;
        Ok(())
    }

    pub fn snapshot(&self) -> fjall::Snapshot {
        self.db.snapshot()
    }

    pub fn snapshot_get(&self, snap: &fjall::Snapshot, key: &[u8]) -> Result<Option<Record>> {
        if !storable(key) {
            return Ok(None);
        }
        match snap.get(&self.data, data_key(key))? {
            Some(raw) => decode(key, raw.into()).map(Some),
            None => Ok(None),
        }
    }
}

pub(crate) fn decode(key: &[u8], raw: Bytes) -> Result<Record> {
    Record::decode(raw).map_err(|reason| {
        noted(StorageError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason,
        })
    })
}

/// Stored bytes that do not decode are corruption too: counted like the
/// engine's own (see `corruption.rs`).
fn noted(e: StorageError) -> StorageError {
    crate::corruption::note(&e);
    e
}
