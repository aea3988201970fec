//! LMDB through heed: a copy-on-write B-tree in a memory-mapped file. One
//! write transaction per batch; sync on = default flags (the commit writes
//! the pages and fdatasyncs before it returns), sync off = `MDB_NOSYNC`
//! (pages are written to the OS, never flushed by the commit).

use std::ops::Bound;
use std::path::Path;

use anyhow::{Context, Result};
use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, RoTxn, WithTls};

use super::{Engine, OpenOptions, Reader, to_key};
use crate::data::{Batch, Key};

/// LMDB needs its maximum size up front (the memory map). It is address
/// space, not memory or disk: the file grows with the data. Copy-on-write
/// B-trees hold old and new pages during a transaction, and pages are
/// never full, hence the generous factor.
const MAP_SIZE_FACTOR: u64 = 4;
const MAP_SIZE_BYTES_MIN: u64 = 1 << 30;

pub struct LmdbEngine {
    env: Env,
    db: Database<'static, Bytes, Bytes>,
}

impl LmdbEngine {
    pub fn open(dir: &Path, options: &OpenOptions) -> Result<LmdbEngine> {
        let map_size_bytes = options
            .data_size_bytes
            .saturating_mul(MAP_SIZE_FACTOR)
            .max(MAP_SIZE_BYTES_MIN)
            .next_multiple_of(1 << 20);
        let mut env_options = EnvOpenOptions::new();
        env_options.map_size(usize::try_from(map_size_bytes)?);
        if !options.sync.is_on() {
            // SAFETY: NO_SYNC only weakens durability (a crash of the OS can
            // lose recent commits); the bench never relies on it surviving.
            unsafe {
                env_options.flags(EnvFlags::NO_SYNC);
            }
        }
        // SAFETY: the directory is private to this case: no other process
        // or Env maps the file, so it cannot change under the map.
        let env = unsafe { env_options.open(dir) }
            .with_context(|| format!("opening LMDB in {}", dir.display()))?;
        let wtxn = env.write_txn()?;
        let db = env
            .create_databases_and_commit(wtxn, |opener, wtxn| {
                opener
                    .create_database::<Bytes, Bytes>(wtxn, None)
                    .map(CommitOrAbort::<_, ()>::Commit)
            })
            .context("creating the LMDB database")?
            .unwrap_commit();
        Ok(LmdbEngine { env, db })
    }
}

impl Engine for LmdbEngine {
    fn write(&mut self, batch: &Batch) -> Result<()> {
        let mut wtxn = self.env.write_txn()?;
        for (k, v) in batch.iter() {
            self.db.put(&mut wtxn, k, v)?;
        }
        wtxn.commit()?;
        Ok(())
    }

    fn make_durable(&mut self) -> Result<()> {
        self.env.force_sync()?;
        Ok(())
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(LmdbReader {
            txn: self.env.read_txn()?,
            db: self.db,
        }))
    }
}

struct LmdbReader<'env> {
    txn: RoTxn<'env, WithTls>,
    db: Database<'static, Bytes, Bytes>,
}

impl Reader for LmdbReader<'_> {
    fn get(&mut self, key: &[u8], value: &mut Vec<u8>) -> Result<bool> {
        value.clear();
        match self.db.get(&self.txn, key)? {
            Some(v) => {
                value.extend_from_slice(v);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn seek(&mut self, key: &[u8], n: usize, keys: &mut Vec<Key>) -> Result<usize> {
        keys.clear();
        let mut value_bytes = 0;
        let range: (Bound<&[u8]>, Bound<&[u8]>) = (Bound::Included(key), Bound::Unbounded);
        for entry in self.db.range(&self.txn, &range)?.take(n) {
            let (k, v) = entry?;
            keys.push(to_key(k)?);
            value_bytes += v.len();
        }
        Ok(value_bytes)
    }
}
