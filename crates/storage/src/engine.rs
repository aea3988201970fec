//! The fjall database and its keyspaces. Nothing outside this crate sees
//! fjall: the rest of Strata talks to [`crate::Store`].

use std::sync::Arc;

use bytes::Bytes;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};

use crate::config::StorageConfig;
use crate::error::{Result, StorageError};
use crate::record::Record;

/// Keyspace names. `data` holds user keys; `expiry` indexes keys with a TTL
/// by time; `meta` holds Strata's own bookkeeping.
const DATA: &str = "data";
const EXPIRY: &str = "expiry";
const META: &str = "meta";

/// Meta key for the key counters (keys, keys with expiry), written in the
/// same atomic batch as the data they count.
pub(crate) const META_COUNTS: &[u8] = b"counts";

/// Every user key is stored behind this tag byte: the engine refuses empty
/// keys and Redis allows them (`SET "" v`). One byte per key buys that, and
/// leaves room for other record kinds in the same keyspace. Key order is
/// unchanged, so ranges map one to one.
const DATA_KEY_TAG: u8 = b'k';

pub(crate) fn data_key(user_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + user_key.len());
    out.push(DATA_KEY_TAG);
    out.extend_from_slice(user_key);
    out
}

/// The user key of a stored key; zero-copy.
pub(crate) fn user_key(key: &[u8], stored: Bytes) -> Result<Bytes> {
    if stored.first() != Some(&DATA_KEY_TAG) {
        return Err(StorageError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: "data key without its tag byte",
        });
    }
    Ok(stored.slice(1..))
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub keys: u64,
    pub expiring: u64,
}

impl Counts {
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.keys.to_le_bytes());
        out[8..].copy_from_slice(&self.expiring.to_le_bytes());
        out
    }

    pub fn decode(raw: &[u8]) -> Option<Counts> {
        let keys = u64::from_le_bytes(raw.get(..8)?.try_into().ok()?);
        let expiring = u64::from_le_bytes(raw.get(8..16)?.try_into().ok()?);
        (raw.len() == 16 && expiring <= keys).then_some(Counts { keys, expiring })
    }
}

pub(crate) struct Engine {
    pub db: Database,
    pub data: Keyspace,
    pub expiry: Keyspace,
    pub meta: Keyspace,
}

impl Engine {
    pub fn open(config: &StorageConfig) -> Result<Arc<Engine>> {
        config.validate().map_err(StorageError::Config)?;
        std::fs::create_dir_all(&config.data_dir)?;
        let db = Database::builder(&config.data_dir)
            .cache_size(config.cache_size_bytes)
            .max_journaling_size(config.journal_size_bytes_max)
            .open()?;
        let memtable = config.memtable_size_bytes;
        let data = db.keyspace(DATA, || {
            KeyspaceCreateOptions::default().max_memtable_size(memtable)
        })?;
        let expiry = db.keyspace(EXPIRY, || {
            KeyspaceCreateOptions::default().max_memtable_size(memtable)
        })?;
        let meta = db.keyspace(META, KeyspaceCreateOptions::default)?;
        Ok(Arc::new(Engine {
            db,
            data,
            expiry,
            meta,
        }))
    }

    /// Reads a record from the latest state (the writer's view).
    pub fn load_latest(&self, key: &[u8]) -> Result<Option<Record>> {
        match self.data.get(data_key(key))? {
            Some(raw) => decode(key, raw.into()).map(Some),
            None => Ok(None),
        }
    }

    /// The counters as last committed, or a full recount if they are
    /// missing (a crash in the middle of FLUSHALL) on a non-empty store.
    pub fn recover_counts(&self) -> Result<Counts> {
        if let Some(raw) = self.meta.get(META_COUNTS)? {
            if let Some(c) = Counts::decode(&raw) {
                return Ok(c);
            }
            tracing::warn!("key counters do not decode; recounting");
        }
        let mut counts = Counts::default();
        for guard in self.data.iter() {
            let (key, raw) = guard.into_inner()?;
            let record = decode(&key, raw.into())?;
            counts.keys += 1;
            if record.has_expiry() {
                counts.expiring += 1;
            }
        }
        Ok(counts)
    }

    pub fn persist(&self, mode: PersistMode) -> Result<()> {
        self.db.persist(mode)?;
        Ok(())
    }

    pub fn snapshot(&self) -> fjall::Snapshot {
        self.db.snapshot()
    }

    pub fn snapshot_get(&self, snap: &fjall::Snapshot, key: &[u8]) -> Result<Option<Record>> {
        match snap.get(&self.data, data_key(key))? {
            Some(raw) => decode(key, raw.into()).map(Some),
            None => Ok(None),
        }
    }
}

pub(crate) fn decode(key: &[u8], raw: Bytes) -> Result<Record> {
    Record::decode(raw).map_err(|reason| StorageError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    })
}
