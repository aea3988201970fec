//! redb: a copy-on-write B-tree in one file. One write transaction per
//! batch; sync on = `Durability::Immediate` (fsync at commit), sync off =
//! `Durability::None` (no fsync; the pages may reach the file, but the
//! commit only becomes the one a reopen sees with a later durable commit,
//! so even a process crash loses it: weaker than the other engines'
//! sync-off modes, which survive a process crash).

use std::path::Path;

use anyhow::{Context, Result};
use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, TableDefinition,
};
use strata_storage::StorageConfig;

use super::{Engine, OpenOptions, Reader, to_key};
use crate::data::{Batch, Key};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");

pub struct RedbEngine {
    db: Database,
    durability: Durability,
}

impl RedbEngine {
    pub fn open(dir: &Path, options: &OpenOptions) -> Result<RedbEngine> {
        // The same memory budget for cached pages as fjall's block cache.
        let cache_size_bytes = StorageConfig::new(dir).cache_size_bytes;
        let path = dir.join("data.redb");
        let db = Database::builder()
            .set_cache_size(usize::try_from(cache_size_bytes)?)
            .create(&path)
            .with_context(|| format!("opening redb at {}", path.display()))?;
        // Create the table up front so the first measured batch does not pay for it.
        let txn = db.begin_write()?;
        txn.open_table(TABLE)?;
        txn.commit()?;
        let durability = if options.sync.is_on() {
            Durability::Immediate
        } else {
            Durability::None
        };
        Ok(RedbEngine { db, durability })
    }

    fn commit(&self, batch: Option<&Batch>, durability: Durability) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(durability)?;
        if let Some(batch) = batch {
            let mut table = txn.open_table(TABLE)?;
            for (k, v) in batch.iter() {
                table.insert(k, v)?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

impl Engine for RedbEngine {
    fn write(&mut self, batch: &Batch) -> Result<()> {
        self.commit(Some(batch), self.durability)
    }

    fn make_durable(&mut self) -> Result<()> {
        // An empty Immediate commit persists every earlier None commit.
        self.commit(None, Durability::Immediate)
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TABLE)?;
        Ok(Box::new(RedbReader { _txn: txn, table }))
    }
}

struct RedbReader {
    // The table holds the snapshot on its own; the transaction is kept to
    // make the lifetime of the view obvious.
    _txn: ReadTransaction,
    table: ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl Reader for RedbReader {
    fn get(&mut self, key: &[u8], value: &mut Vec<u8>) -> Result<bool> {
        value.clear();
        match self.table.get(key)? {
            Some(v) => {
                value.extend_from_slice(v.value());
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn seek(&mut self, key: &[u8], n: usize, keys: &mut Vec<Key>) -> Result<usize> {
        keys.clear();
        let mut value_bytes = 0;
        for entry in self.table.range::<&[u8]>(key..)?.take(n) {
            let (k, v) = entry?;
            keys.push(to_key(k.value())?);
            value_bytes += v.value().len();
        }
        Ok(value_bytes)
    }
}
