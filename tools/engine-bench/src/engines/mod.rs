//! One small interface over every engine: atomic batch writes with a fixed
//! durability mode, and reads from a consistent view.
//!
//! Each engine is configured the way it is meant to be run, with the same
//! memory budget where the engine has such a knob (Strata's cache size), so
//! the comparison is "fjall as Strata runs it" against "the others as they
//! would be run in its place".

use std::path::Path;

use anyhow::Result;

use crate::config::{EngineKind, SyncMode};
use crate::data::{Batch, Key};

mod fjall;
mod lmdb;
mod redb;
#[cfg(feature = "rocksdb")]
mod rocksdb;

/// What an engine is told when it is opened.
pub struct OpenOptions {
    /// Durability of every write batch; fixed per open because LMDB can
    /// only choose it when the environment is opened.
    pub sync: SyncMode,
    /// Upper bound of raw key + value bytes the case writes; LMDB sizes
    /// its memory map from it.
    pub data_size_bytes: u64,
}

pub trait Engine {
    /// Writes the batch as ONE atomic unit (a write batch or transaction),
    /// durable before returning when opened with [`SyncMode::On`].
    fn write(&mut self, batch: &Batch) -> Result<()>;

    /// Makes everything written so far durable. Used after the untimed
    /// setup fill, which runs with sync off to be quick.
    fn make_durable(&mut self) -> Result<()>;

    /// A consistent read view. Reads use one view for many operations, the
    /// way Strata's readers share the snapshot the writer last published,
    /// rather than paying for a transaction per read.
    fn reader(&self) -> Result<Box<dyn Reader + '_>>;
}

pub trait Reader {
    /// Copies the value of `key` into `value` (cleared first); false if the
    /// key is absent. The copy is the same for every engine and keeps the
    /// engines from being measured as handing out lazy, unread values.
    fn get(&mut self, key: &[u8], value: &mut Vec<u8>) -> Result<bool>;

    /// Seeks to the first key >= `key` and reads up to `n` entries in order,
    /// key and value, pushing the keys to `keys` (cleared first). Returns
    /// the total value bytes read, which keeps values from being skipped.
    fn seek(&mut self, key: &[u8], n: usize, keys: &mut Vec<Key>) -> Result<usize>;
}

pub fn open(kind: EngineKind, dir: &Path, options: &OpenOptions) -> Result<Box<dyn Engine>> {
    Ok(match kind {
        EngineKind::Fjall => Box::new(fjall::FjallEngine::open(dir, options)?),
        EngineKind::Redb => Box::new(redb::RedbEngine::open(dir, options)?),
        EngineKind::Lmdb => Box::new(lmdb::LmdbEngine::open(dir, options)?),
        #[cfg(feature = "rocksdb")]
        EngineKind::Rocksdb => Box::new(rocksdb::RocksEngine::open(dir, options)?),
        #[cfg(not(feature = "rocksdb"))]
        EngineKind::Rocksdb => {
            anyhow::bail!("RocksDB support is not compiled in; rebuild with --features rocksdb")
        }
    })
}

/// Copies a key the engine returned into our fixed key type; keys are
/// always 16 bytes here, anything else is a harness or engine bug.
fn to_key(k: &[u8]) -> Result<Key> {
    k.try_into()
        .map_err(|_| anyhow::anyhow!("engine returned a {}-byte key, expected 16", k.len()))
}
