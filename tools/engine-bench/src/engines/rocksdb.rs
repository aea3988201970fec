//! RocksDB (behind the `rocksdb` feature): an LSM tree like fjall, given
//! the same memtable, WAL and block cache budget as Strata gives fjall.
//! One `WriteBatch` per batch; sync on = `WriteOptions::set_sync(true)`
//! (fdatasync of the WAL before the write returns), sync off = sync false
//! (the WAL is written to the OS, not flushed).

use std::path::Path;

use anyhow::{Context, Result};
use rocksdb::{BlockBasedOptions, Cache, DB, Options, WriteBatch, WriteOptions};
use strata_storage::StorageConfig;

use super::{Engine, OpenOptions, Reader, to_key};
use crate::data::{Batch, Key};

pub struct RocksEngine {
    db: DB,
    write_options: WriteOptions,
    // The block cache must outlive the DB that uses it.
    _cache: Cache,
}

impl RocksEngine {
    pub fn open(dir: &Path, options: &OpenOptions) -> Result<RocksEngine> {
        let config = StorageConfig::new(dir);
        let mut db_options = Options::default();
        db_options.create_if_missing(true);
        db_options.set_write_buffer_size(usize::try_from(config.memtable_size_bytes)?);
        db_options.set_max_total_wal_size(config.journal_size_bytes_max);
        let cache = Cache::new_lru_cache(usize::try_from(config.cache_size_bytes)?);
        let mut table_options = BlockBasedOptions::default();
        table_options.set_block_cache(&cache);
        db_options.set_block_based_table_factory(&table_options);
        let db = DB::open(&db_options, dir)
            .with_context(|| format!("opening RocksDB in {}", dir.display()))?;
        let mut write_options = WriteOptions::default();
        write_options.set_sync(options.sync.is_on());
        Ok(RocksEngine {
            db,
            write_options,
            _cache: cache,
        })
    }
}

impl Engine for RocksEngine {
    fn write(&mut self, batch: &Batch) -> Result<()> {
        let mut b = WriteBatch::default();
        for (k, v) in batch.iter() {
            b.put(k, v);
        }
        self.db.write_opt(b, &self.write_options)?;
        Ok(())
    }

    fn make_durable(&mut self) -> Result<()> {
        self.db.flush_wal(true)?;
        Ok(())
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        // Reads see the latest state: nothing writes during a read phase,
        // so an explicit snapshot would only add a cost the others lack.
        Ok(Box::new(RocksReader { db: &self.db }))
    }
}

struct RocksReader<'db> {
    db: &'db DB,
}

impl Reader for RocksReader<'_> {
    fn get(&mut self, key: &[u8], value: &mut Vec<u8>) -> Result<bool> {
        value.clear();
        match self.db.get_pinned(key)? {
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
        // A fresh iterator per seek, like db_bench's default
        // (--reuse_iterators=false) and like the other engines here.
        let mut it = self.db.raw_iterator();
        it.seek(key);
        while keys.len() < n && it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            keys.push(to_key(k)?);
            value_bytes += v.len();
            it.next();
        }
        it.status()?;
        Ok(value_bytes)
    }
}
