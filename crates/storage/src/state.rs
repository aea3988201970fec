//! The derived state: what the store keeps up besides the records
//! themselves, in the same batch as the records they describe.
//!
//! - The key counters ([`Counts`]): keys stored, and keys with an expiry.
//! - The expiry index: `x` ++ be_u64(expire_at_ms) ++ user key -> empty,
//!   keys in expiry order, which the sweeper (single node) or the leader's
//!   proposals (replicated) read to find what is due.
//!
//! One home for both: [`GroupState`], the [`State`] every mutation is
//! applied against, keeps them in step with every `put` and `delete` of a
//! group, in both modes. A future derived index (search) belongs here too.
//! Why here and not in `mutation.rs`: the state machine says *what* changes;
//! how a change reaches the engine and what else it updates is storage's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use fjall::OwnedWriteBatch;

use crate::engine::{Engine, META_COUNTS, TAG_DATA, TAG_EXPIRY, data_key, decode, tagged};
use crate::error::Result;
use crate::mutation::{Embedding, MutationError, State};
use crate::prefetch::Prefetched;
use crate::read_cache::ReadCache;
use crate::record::{Record, expiry_index_key, split_expiry_index_key};
use crate::search::cache::ShardSet;
use crate::search::catalog::Catalog;
use crate::search::upkeep::{GroupIo, Upkeep};

/// The key counters (DBSIZE and INFO's `expires`): stored under
/// `META_COUNTS` in the batch of every group that changes them.
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

    /// The counters as last committed, or a full recount if they are
    /// missing (a crash in the middle of FLUSHALL) on a non-empty store.
    pub(crate) fn recover(engine: &Engine) -> Result<Counts> {
        if let Some(raw) = engine.data.get(META_COUNTS)? {
            if let Some(c) = Counts::decode(&raw) {
                return Ok(c);
            }
            tracing::warn!("key counters do not decode; recounting");
        }
        Counts::recount(engine)
    }

    /// The counters from the records themselves: a full scan of the
    /// latest state. At open when the stored ones are missing, and in
    /// tests, to check the upkeep (`Store::counts_match_recount`).
    pub(crate) fn recount(engine: &Engine) -> Result<Counts> {
        let mut counts = Counts::default();
        for guard in engine.data.prefix([TAG_DATA]) {
            let (key, raw) = guard.into_inner()?;
            counts.count(&decode(&key, raw.into())?);
        }
        Ok(counts)
    }

    /// Adds one stored record.
    pub(crate) fn count(&mut self, record: &Record) {
        self.keys += 1;
        if record.has_expiry() {
            self.expiring += 1;
        }
    }
}

pub(crate) fn expiry_key(expire_at_ms: u64, user_key: &[u8]) -> Vec<u8> {
    tagged(TAG_EXPIRY, &expiry_index_key(expire_at_ms, user_key))
}

/// The (time, user key) of an expiry entry, or None for any other entry.
pub(crate) fn split_expiry_key(stored: &[u8]) -> Option<(u64, &[u8])> {
    match stored.split_first() {
        Some((&TAG_EXPIRY, rest)) => split_expiry_index_key(rest),
        _ => None,
    }
}

/// Expiry entries due at or before `now_ms`: from the first expiry entry up
/// to, not including, time `now_ms + 1`.
pub(crate) fn due_expiry_range(now_ms: u64) -> std::ops::Range<Vec<u8>> {
    vec![TAG_EXPIRY]..tagged(TAG_EXPIRY, &now_ms.saturating_add(1).to_be_bytes())
}

/// One group's view of the state: its own writes first, then the engine.
pub(crate) struct GroupState<'a> {
    engine: &'a Engine,
    pub batch: OwnedWriteBatch,
    pub(crate) overlay: HashMap<Bytes, Option<Record>>,
    /// The read cache, when it agrees with the engine: only while nothing
    /// written is unpublished (see `with_read_cache`).
    read_cache: Option<&'a ReadCache>,
    /// Old records read before the group was applied (`prefetch.rs`):
    /// exactly what the engine would answer, as only this thread writes it.
    prefetched: Prefetched,
    pub counts: Counts,
    pub clear_requested: bool,
    /// The version every `put` stamps (the group's number or the log
    /// entry's index), and `State::deleted_max` as of now.
    pub version: u64,
    pub deleted_max: u64,
    /// Reads that went to the engine, and their total time: the evidence
    /// for switching prefetching on.
    pub engine_reads: u64,
    pub engine_read_ns: u64,
    /// Search indexes: the catalog as this group changes it, and the
    /// entries it writes beside each record (`search/upkeep.rs`).
    pub(crate) search: Upkeep,
}

/// A group made into one batch, and what the writer must learn of it.
pub struct Finished {
    pub batch: OwnedWriteBatch,
    /// Every key the group wrote, with its final record (None: deleted).
    pub changed: HashMap<Bytes, Option<Record>>,
    /// The search catalog as the group leaves it.
    pub catalog: Arc<Catalog>,
    /// Posting lists the group changed, by posting-cache shard.
    pub lists_changed: ShardSet,
}

impl<'a> GroupState<'a> {
    pub fn new(engine: &'a Engine, counts: Counts, capacity: usize) -> Self {
        GroupState {
            engine,
            batch: engine.db.batch(),
            overlay: HashMap::with_capacity(capacity),
            prefetched: Prefetched::new(),
            read_cache: None,
            counts,
            clear_requested: false,
            version: 0,
            deleted_max: 0,
            engine_reads: 0,
            engine_read_ns: 0,
            search: Upkeep::default(),
        }
    }

    /// The search catalog as the group starts (the writer's copy).
    pub fn with_catalog(mut self, catalog: Arc<Catalog>) -> Self {
        self.search = Upkeep::new(catalog);
        self
    }

    /// Lets the group's reads use the read cache. Pass it only when the
    /// published view holds everything the engine does (no unpublished
    /// changes): the cache agrees with that view, and the group's own
    /// writes are in the overlay, which is looked at first.
    pub fn with_read_cache(mut self, read_cache: Option<&'a ReadCache>) -> Self {
        self.read_cache = read_cache;
        self
    }

    /// The version to stamp, and the highest version deleted so far.
    pub fn with_versions(mut self, version: u64, deleted_max: u64) -> Self {
        self.version = version;
        self.deleted_max = deleted_max;
        self
    }

    pub fn with_prefetched(mut self, prefetched: Prefetched) -> Self {
        self.prefetched = prefetched;
        self
    }

    /// The group's engine batch, and the final record (or deletion) of every
    /// key it wrote. Data keys are written here, once per key, with the
    /// last value the group gave them, instead of once per write: a group
    /// that writes one key many times (a pipeline of SETs or INCRs on a hot
    /// key) costs one memtable insert and one journal record for it. The
    /// batch is atomic, so only the group's final state can ever be seen or
    /// recovered anyway. Expiry-index keys were written as they came (each
    /// expiry time is a different key; within a batch the last write of a
    /// key wins).
    pub fn into_batch(mut self) -> Finished {
        let catalog = self.search.finish(&mut GroupIo {
            engine: self.engine,
            batch: &mut self.batch,
        });
        let lists_changed = std::mem::take(&mut self.search.lists_changed);
        let mut batch = self.batch;
        for (key, record) in &self.overlay {
            match record {
                Some(r) => batch.insert(&self.engine.data, data_key(key), r.encode()),
                None => batch.remove(&self.engine.data, data_key(key)),
            }
        }
        Finished {
            batch,
            changed: self.overlay,
            catalog,
            lists_changed,
        }
    }
}

impl State for GroupState<'_> {
    fn load(&mut self, key: &Bytes) -> Result<Option<Record>> {
        if let Some(entry) = self.overlay.get(key) {
            return Ok(entry.clone());
        }
        if let Some(entry) = self.prefetched.get(key) {
            return Ok(entry.clone());
        }
        if let Some(hit) = self.read_cache.and_then(|c| c.get(key)) {
            return Ok(hit);
        }
        // The version before the read, as for any fill (`read_cache.rs`).
        let read_at = self.read_cache.map(|c| c.version());
        let started = Instant::now();
        let loaded = self.engine.load_latest(key)?;
        self.engine_reads += 1;
        self.engine_read_ns = self
            .engine_read_ns
            .saturating_add(started.elapsed().as_nanos() as u64);
        if let (Some(c), Some(read_at)) = (self.read_cache, read_at) {
            c.fill(key, read_at, &loaded);
        }
        Ok(loaded)
    }

    fn put(&mut self, key: Bytes, record: Record) -> Result<()> {
        // Never 0, which marks the records of builds before versions.
        let record = record.with_version(self.version.max(1));
        let old = self.load(&key)?;
        // Saturating: counters that disagree with the data (they cannot,
        // short of disk corruption) must not take the writer down.
        match &old {
            None => self.counts.keys = self.counts.keys.saturating_add(1),
            Some(o) if o.has_expiry() => {
                self.counts.expiring = self.counts.expiring.saturating_sub(1)
            }
            Some(_) => {}
        }
        if record.has_expiry() {
            self.counts.expiring = self.counts.expiring.saturating_add(1);
        }
        let old_at = old.as_ref().map_or(0, |o| o.expire_at_ms);
        if old_at != record.expire_at_ms {
            if old_at != 0 {
                self.batch
                    .remove(&self.engine.data, expiry_key(old_at, &key));
            }
            if record.has_expiry() {
                self.batch.insert(
                    &self.engine.data,
                    expiry_key(record.expire_at_ms, &key),
                    Bytes::new(),
                );
            }
        }
        if !self.search.catalog.is_empty() {
            let mut io = GroupIo {
                engine: self.engine,
                batch: &mut self.batch,
            };
            let old_value = old.as_ref().map(|o| &o.value);
            self.search
                .index_write(&mut io, &key, old_value, Some(&record.value))?;
        }
        // The data key itself is written once per group (`into_batch`).
        self.overlay.insert(key, Some(record));
        Ok(())
    }

    fn delete(&mut self, key: &Bytes) -> Result<()> {
        let Some(old) = self.load(key)? else {
            return Ok(());
        };
        self.deleted_max = self.deleted_max.max(old.version);
        self.counts.keys = self.counts.keys.saturating_sub(1);
        if old.has_expiry() {
            self.counts.expiring = self.counts.expiring.saturating_sub(1);
            self.batch
                .remove(&self.engine.data, expiry_key(old.expire_at_ms, key));
        }
        if !self.search.catalog.is_empty() {
            let mut io = GroupIo {
                engine: self.engine,
                batch: &mut self.batch,
            };
            self.search
                .index_write(&mut io, key, Some(&old.value), None)?;
        }
        self.overlay.insert(key.clone(), None);
        Ok(())
    }

    fn clear(&mut self) -> Result<()> {
        // FLUSHALL is not a batch operation in the engine; the writer runs
        // it on its own, between groups (see `Writer::flush_all`).
        self.clear_requested = true;
        Ok(())
    }

    fn deleted_max(&self) -> u64 {
        self.deleted_max
    }

    fn version(&self) -> u64 {
        // As `put` stamps it.
        self.version.max(1)
    }

    fn create_index(
        &mut self,
        definition: &[u8],
    ) -> Result<std::result::Result<(), MutationError>> {
        let mut io = GroupIo {
            engine: self.engine,
            batch: &mut self.batch,
        };
        self.search
            .create_index(&mut io, self.counts.keys, definition)
    }

    fn drop_index(&mut self, name: &str) -> Result<std::result::Result<(), MutationError>> {
        let mut io = GroupIo {
            engine: self.engine,
            batch: &mut self.batch,
        };
        self.search.drop_index(&mut io, name)
    }

    fn backfill_index(&mut self, id: u32, keys_max: u32) -> Result<bool> {
        let mut io = GroupIo {
            engine: self.engine,
            batch: &mut self.batch,
        };
        self.search
            .backfill_page(&mut io, &self.overlay, id, keys_max)
    }

    fn purge_index(&mut self, id: u32, entries_max: u32) -> Result<bool> {
        let mut io = GroupIo {
            engine: self.engine,
            batch: &mut self.batch,
        };
        self.search.purge_page(&mut io, id, entries_max)
    }

    fn set_embeddings(&mut self, embeddings: Vec<Embedding>) {
        self.search.embeddings = embeddings;
    }
}
