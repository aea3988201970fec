//! fjall, opened and written exactly the way strata-storage does it
//! (crates/storage/src/engine.rs and commit.rs): same database and keyspace
//! options from `StorageConfig::new`, one `WriteBatch` per group, then
//! `persist(SyncData)` in fsync-always mode.

use std::path::Path;

use anyhow::{Context, Result};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable, Snapshot};
use strata_storage::StorageConfig;

use super::{Engine, OpenOptions, Reader, to_key};
use crate::data::{Batch, Key};

pub struct FjallEngine {
    db: Database,
    data: Keyspace,
    sync: bool,
    // Strata opens these two as well; they stay empty here, but they are
    // part of the database Strata runs (journal shared by all keyspaces).
    _expiry: Keyspace,
    _meta: Keyspace,
}

impl FjallEngine {
    pub fn open(dir: &Path, options: &OpenOptions) -> Result<FjallEngine> {
        // Strata's defaults, taken from strata-storage itself so the bench
        // follows them when they change.
        let config = StorageConfig::new(dir);
        let db = Database::builder(dir)
            .cache_size(config.cache_size_bytes)
            .max_journaling_size(config.journal_size_bytes_max)
            .open()
            .with_context(|| format!("opening fjall in {}", dir.display()))?;
        let memtable = config.memtable_size_bytes;
        let data = db.keyspace("data", || {
            KeyspaceCreateOptions::default().max_memtable_size(memtable)
        })?;
        let expiry = db.keyspace("expiry", || {
            KeyspaceCreateOptions::default().max_memtable_size(memtable)
        })?;
        let meta = db.keyspace("meta", KeyspaceCreateOptions::default)?;
        Ok(FjallEngine {
            db,
            data,
            sync: options.sync.is_on(),
            _expiry: expiry,
            _meta: meta,
        })
    }
}

impl Engine for FjallEngine {
    fn write(&mut self, batch: &Batch) -> Result<()> {
        // `db.batch()` commits with PersistMode::Buffer: the journal is
        // written to the OS (survives a process crash), like Strata's
        // `--fsync never`. Sync on adds the fdatasync Strata's
        // `--fsync always` does after every group.
        let mut b = self.db.batch();
        for (k, v) in batch.iter() {
            b.insert(&self.data, k, v);
        }
        b.commit()?;
        if self.sync {
            self.db.persist(PersistMode::SyncData)?;
        }
        Ok(())
    }

    fn make_durable(&mut self) -> Result<()> {
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(FjallReader {
            snapshot: self.db.snapshot(),
            data: self.data.clone(),
        }))
    }
}

/// Reads through a snapshot, as Strata's readers do.
struct FjallReader {
    snapshot: Snapshot,
    data: Keyspace,
}

impl Reader for FjallReader {
    fn get(&mut self, key: &[u8], value: &mut Vec<u8>) -> Result<bool> {
        value.clear();
        match self.snapshot.get(&self.data, key)? {
            Some(v) => {
                value.extend_from_slice(&v);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn seek(&mut self, key: &[u8], n: usize, keys: &mut Vec<Key>) -> Result<usize> {
        keys.clear();
        let mut value_bytes = 0;
        for guard in self.snapshot.range(&self.data, key..).take(n) {
            let (k, v) = guard.into_inner()?;
            keys.push(to_key(&k)?);
            value_bytes += v.len();
        }
        Ok(value_bytes)
    }
}
