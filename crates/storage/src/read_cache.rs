//! The read cache: a bounded hash map of recently read records in front of
//! the engine, for single-key reads (`GET` and friends).
//!
//! Why: a point read in the LSM tree walks the memtable's skiplist and then
//! each table's filter and blocks. Profiled under `GET -P 16` on 100,000
//! keys, the skiplist walk alone was 60% of the server's CPU (cache misses on
//! its nodes and key comparisons); a hash lookup is one or two cache misses.
//!
//! # Coherence
//! Readers read from the writer's *published view* (see `commit.rs`), so
//! the cache must agree with that view, never with the engine underneath.
//! Every published view has a version, counted by the writer. Keys are
//! spread over [`SHARDS`] shards, and each shard remembers the version of
//! the last published change to any of its keys (`changed_at`).
//!
//! - The writer, BEFORE it publishes version `v`, takes the shard lock of
//!   each key the new view changes, sets `changed_at = v` and removes the
//!   key's entry (announce). Then it stores the view, then the version,
//!   and only then writes the new records into the cache (write-through).
//! - A reader that misses loads the version `r` FIRST, then the view (so the
//!   view it reads is at least version `r`), reads the engine, and inserts
//!   what it read only if, under the shard lock, `changed_at <= r`: no change
//!   to the shard has been announced since the reader's view.
//! - A reader that hits returns the entry without any lock.
//!
//! Because the announce removes the entries, from the moment a view is
//! stored until its records are written through, readers of those keys
//! miss and read the view itself.
//!
//! Invariant: an entry always holds its key's record in the latest
//! published view. An insert that passed the check holds the record of
//! view `r`, and no change to the key was announced after `r`; any later
//! change removes the entry, under the same lock, before its view is
//! stored, and only a committed record of a stored view is written
//! through. A hit racing with that removal returns the record of the view
//! that is still the latest, so the read orders before the write, which no
//! reader can see yet. Hence a GET agrees with snapshot reads (MGET,
//! EXISTS) of the same or later views, never goes back in time, and never
//! sees half of an MSET. The new record is never cached before its view is
//! stored: a reader could see it, and the next one, after an eviction, the
//! old record in the old view.
//!
//! Changes the writer cannot list key by key (FLUSHALL, installing a Raft
//! snapshot) announce every shard and clear the whole cache, and nothing
//! of that view is written through.
//!
//! Only single-key reads use it. MGET, ranges and scans read one snapshot:
//! the cache answers key by key, each from the latest view, and a
//! multi-key read must see all its keys in one view.

use std::hash::BuildHasher;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::record::Record;

/// Shards of the version table. A power of two; enough that the writer,
/// announcing a group's keys, rarely blocks a filling reader and a busy key
/// rarely refuses fills of its neighbours.
pub(crate) const SHARDS: usize = 1024;

/// Bookkeeping bytes counted for each entry on top of its key and value:
/// the cache's own slot, the `Bytes` headers and the record's fields. An
/// estimate, so the byte bound holds within tens of percent.
pub(crate) const ENTRY_OVERHEAD_BYTES: u64 = 96;

/// Records with larger values are not cached: one would evict thousands of
/// small ones, and copying them out of the engine is not the cost we save.
pub(crate) const VALUE_SIZE_CACHED_BYTES_MAX: usize = 64 * 1024;

/// Entries the cache is sized for per byte of capacity, for its tables:
/// one per this many bytes (a 100-byte value with a 16-byte key and the
/// overhead).
const ENTRY_SIZE_BYTES_TYPICAL: u64 = 212;

/// What the writer's next view changes.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// User keys whose records the view changes, with their new records
    /// (None: deleted), in the order they were written.
    pub keys: Vec<(Bytes, Option<Record>)>,
    /// The view changes keys it cannot list (FLUSHALL, a snapshot install).
    pub all: bool,
    /// Search posting lists the view changes, by posting-cache shard
    /// (`search/cache.rs`); `all` changes every list too.
    pub search_lists: crate::search::cache::ShardSet,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && !self.all
    }
}

/// A copy that owns its bytes. Why: a value read from the engine is a
/// slice of a whole decompressed block, and a written one a slice of the
/// client's request frame (up to the request size limit); cached as
/// slices, a 100-byte entry would keep kilobytes or megabytes alive that
/// its weight does not count, and the byte bound would not hold.
fn owned(found: &Cached) -> Cached {
    found.as_ref().map(|r| {
        Record::new(Bytes::copy_from_slice(&r.value), r.expire_at_ms).with_version(r.version)
    })
}

#[derive(Clone, Copy)]
struct Weigh;

impl quick_cache::Weighter<Bytes, Option<Record>> for Weigh {
    fn weight(&self, key: &Bytes, val: &Option<Record>) -> u64 {
        let value = val.as_ref().map_or(0, |r| r.value.len());
        key.len() as u64 + value as u64 + ENTRY_OVERHEAD_BYTES
    }
}

/// A cached answer: the record, or `None` for a key the view does not hold.
pub(crate) type Cached = Option<Record>;

pub(crate) struct ReadCache {
    /// `None` when the cache is switched off (capacity 0).
    entries: Option<quick_cache::sync::Cache<Bytes, Cached, Weigh>>,
    /// Per shard: the version of the last published view that changed one
    /// of its keys. The lock also orders fills against announcements.
    changed_at: Box<[Mutex<u64>]>,
    /// The version of the latest published view.
    version: AtomicU64,
    hasher: std::collections::hash_map::RandomState,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Fills refused because the shard changed during the read.
    pub fills_refused: AtomicU64,
}

impl ReadCache {
    pub fn new(capacity_bytes: u64) -> ReadCache {
        let entries = (capacity_bytes > 0).then(|| {
            let items = (capacity_bytes / ENTRY_SIZE_BYTES_TYPICAL).max(16);
            quick_cache::sync::Cache::with_weighter(
                usize::try_from(items).unwrap_or(usize::MAX),
                capacity_bytes,
                Weigh,
            )
        });
        ReadCache {
            entries,
            changed_at: (0..SHARDS).map(|_| Mutex::new(0)).collect(),
            version: AtomicU64::new(0),
            hasher: Default::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            fills_refused: AtomicU64::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.entries.is_some()
    }

    fn shard(&self, key: &[u8]) -> &Mutex<u64> {
        // SHARDS is a power of two; the mask keeps the index in bounds.
        &self.changed_at[(self.hasher.hash_one(key) as usize) & (SHARDS - 1)]
    }

    /// The cached answer for `key`, if any.
    pub fn get(&self, key: &[u8]) -> Option<Cached> {
        let found = self.entries.as_ref()?.get(key);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// The version to pass to [`ReadCache::fill`]: load it BEFORE taking
    /// the view the read goes to.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Caches what a read of a view of at least version `read_at` found,
    /// unless a change to the key's shard was announced since.
    pub fn fill(&self, key: &[u8], read_at: u64, found: &Cached) {
        let Some(entries) = &self.entries else {
            return;
        };
        if found
            .as_ref()
            .is_some_and(|r| r.value.len() > VALUE_SIZE_CACHED_BYTES_MAX)
        {
            return;
        }
        let changed_at = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        if *changed_at > read_at {
            self.fills_refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        entries.insert(Bytes::copy_from_slice(key), owned(found));
    }

    /// The writer, before it publishes the view `changes` lead to: refuses
    /// from now on fills read from older views of the changed keys' shards
    /// (and clears everything for a change to everything), and returns the
    /// new view's version, which the writer passes to
    /// [`ReadCache::published`] once the view is stored, and then the
    /// changes to [`ReadCache::write_through`].
    pub fn announce(&self, changes: &Changes) -> u64 {
        let current = self.version.load(Ordering::Acquire);
        // Switched off: nothing is ever filled, so there is nothing to
        // refuse or remove, and the writer's hot path skips the locks.
        if changes.is_empty() || self.entries.is_none() {
            return current;
        }
        // Only the writer thread calls this, so versions cannot collide.
        let next = current + 1;
        if changes.all {
            // Every shard at once: no fill may pass between the clear and
            // the version bump of any shard.
            let mut guards: Vec<_> = self
                .changed_at
                .iter()
                .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
                .collect();
            for g in &mut guards {
                **g = next;
            }
            if let Some(entries) = &self.entries {
                entries.clear();
            }
            return next;
        }
        // Removed now, not left for `write_through` to replace: between the
        // view's store and the write-through, an old entry would contradict
        // snapshot reads (MGET, EXISTS) of the new view, and two GETs could
        // see half of an MSET.
        for (key, _) in &changes.keys {
            let mut changed_at = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
            *changed_at = next;
            if let Some(entries) = &self.entries {
                entries.remove(key.as_ref());
            }
        }
        next
    }

    /// The view of `version` is stored: readers may now fill from it.
    pub fn published(&self, version: u64) {
        debug_assert!(version >= self.version.load(Ordering::Relaxed));
        self.version.store(version, Ordering::Release);
    }

    /// The writer, once the view is published: caches the records it just
    /// wrote, so that reads and read-modify-writes of hot keys keep hitting.
    /// Why it is safe only now: before the view is stored, a reader could
    /// see a new record here and the next reader (after an eviction) the old
    /// one in the view. Nothing is cached after a change to everything:
    /// records written before a FLUSHALL in the same view are gone.
    pub fn write_through(&self, changes: Changes) {
        let Some(entries) = &self.entries else {
            return;
        };
        if changes.all {
            return;
        }
        // Later records of a key overwrite earlier ones: keys are in order.
        for (key, record) in changes.keys {
            if record
                .as_ref()
                .is_some_and(|r| r.value.len() > VALUE_SIZE_CACHED_BYTES_MAX)
            {
                // An older, smaller record of the key may have been cached
                // by this loop: the newest must win, so drop it.
                entries.remove(key.as_ref());
                continue;
            }
            let record = owned(&record);
            entries.insert(Bytes::copy_from_slice(&key), record);
        }
    }

    pub fn size_bytes(&self) -> u64 {
        self.entries.as_ref().map_or(0, |e| e.weight())
    }

    pub fn capacity_bytes(&self) -> u64 {
        self.entries.as_ref().map_or(0, |e| e.capacity())
    }

    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |e| e.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(v: &'static str) -> Cached {
        Some(Record::new(Bytes::from_static(v.as_bytes()), 0))
    }

    /// Announces and publishes a change, without its write-through: the
    /// window in which fills from older views must be refused.
    fn announce(c: &ReadCache, keys: &[&'static str]) -> u64 {
        let changes = Changes {
            keys: keys
                .iter()
                .map(|k| (Bytes::from_static(k.as_bytes()), None))
                .collect(),
            all: false,
            ..Changes::default()
        };
        let v = c.announce(&changes);
        c.published(v);
        v
    }

    #[test]
    fn a_fill_is_served_until_its_key_changes() {
        let c = ReadCache::new(1 << 20);
        assert_eq!(c.get(b"k"), None);
        c.fill(b"k", c.version(), &rec("1"));
        assert_eq!(c.get(b"k"), Some(rec("1")));
        c.fill(b"gone", c.version(), &None);
        assert_eq!(c.get(b"gone"), Some(None), "absence is cached too");
        let changes = Changes {
            keys: vec![(Bytes::from_static(b"k"), rec("2"))],
            all: false,
            ..Changes::default()
        };
        let v = c.announce(&changes);
        assert_eq!(c.get(b"k"), None, "the announce removes the entry");
        c.published(v);
        c.write_through(changes);
        assert_eq!(c.get(b"k"), Some(rec("2")), "written through");
        assert_eq!(c.get(b"gone"), Some(None), "other keys stay");
        assert_eq!(c.hits.load(Ordering::Relaxed), 4);
        assert_eq!(c.misses.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_fill_from_a_view_older_than_a_change_is_refused() {
        let c = ReadCache::new(1 << 20);
        let read_at = c.version();
        // The writer announces and publishes a change while the read runs.
        let v = announce(&c, &["k"]);
        assert_eq!(v, read_at + 1);
        c.fill(b"k", read_at, &rec("old"));
        assert_eq!(c.get(b"k"), None);
        assert_eq!(c.fills_refused.load(Ordering::Relaxed), 1);
        // Announced but not yet published: still refused.
        let next = c.announce(&Changes {
            keys: vec![(Bytes::from_static(b"k"), None)],
            all: false,
            ..Changes::default()
        });
        c.fill(b"k", c.version(), &rec("old"));
        assert_eq!(c.get(b"k"), None);
        c.published(next);
        c.fill(b"k", c.version(), &rec("new"));
        assert_eq!(c.get(b"k"), Some(rec("new")));
    }

    #[test]
    fn a_change_to_everything_clears_and_refuses_older_fills() {
        let c = ReadCache::new(1 << 20);
        c.fill(b"a", c.version(), &rec("1"));
        let read_at = c.version();
        let v = c.announce(&Changes {
            keys: Vec::new(),
            all: true,
            ..Changes::default()
        });
        c.published(v);
        assert_eq!(c.get(b"a"), None);
        c.fill(b"b", read_at, &rec("old"));
        assert_eq!(c.get(b"b"), None);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn no_change_keeps_the_version() {
        let c = ReadCache::new(1 << 20);
        let v = c.announce(&Changes::default());
        assert_eq!(v, 0);
    }

    #[test]
    fn the_byte_bound_holds_and_big_values_are_not_cached() {
        let cap = 64 * 1024;
        let c = ReadCache::new(cap);
        for i in 0..10_000u32 {
            let key = i.to_be_bytes();
            c.fill(&key, 0, &Some(Record::new(Bytes::from(vec![7u8; 100]), 0)));
        }
        assert!(c.size_bytes() <= cap, "{} > {cap}", c.size_bytes());
        assert!(c.len() > 100, "the cache holds entries: {}", c.len());
        let big = Some(Record::new(
            Bytes::from(vec![0u8; VALUE_SIZE_CACHED_BYTES_MAX + 1]),
            0,
        ));
        c.fill(b"big", 0, &big);
        assert_eq!(c.get(b"big"), None);
    }

    #[test]
    fn write_through_caches_the_newest_record_of_each_key() {
        let c = ReadCache::new(1 << 20);
        let big = Some(Record::new(
            Bytes::from(vec![0u8; VALUE_SIZE_CACHED_BYTES_MAX + 1]),
            0,
        ));
        let changes = Changes {
            keys: vec![
                (Bytes::from_static(b"a"), rec("1")),
                (Bytes::from_static(b"a"), rec("2")),
                (Bytes::from_static(b"b"), rec("small")),
                (Bytes::from_static(b"b"), big),
                (Bytes::from_static(b"c"), None),
            ],
            all: false,
            ..Changes::default()
        };
        let v = c.announce(&changes);
        c.published(v);
        c.write_through(changes);
        assert_eq!(c.get(b"a"), Some(rec("2")));
        assert_eq!(c.get(b"b"), None, "a too-big newest record is not cached");
        assert_eq!(c.get(b"c"), Some(None));
        let all = Changes {
            keys: vec![(Bytes::from_static(b"d"), rec("1"))],
            all: true,
            ..Changes::default()
        };
        let v = c.announce(&all);
        c.published(v);
        c.write_through(all);
        assert_eq!(c.len(), 0, "nothing is written through after a clear");
    }

    #[test]
    fn entries_own_their_bytes() {
        // A value read from the engine is a slice of a whole block, a
        // written one a slice of the request frame: the cache must not keep
        // those alive.
        let block = Bytes::from(vec![1u8; 1 << 20]);
        let value = block.slice(10..110);
        let key = block.slice(200..210);
        let range = block.as_ptr() as usize..block.as_ptr() as usize + block.len();
        let c = ReadCache::new(1 << 20);
        c.fill(&key, 0, &Some(Record::new(value.clone(), 0)));
        let cached = c.get(&key).unwrap().unwrap();
        assert_eq!(cached.value, value);
        assert!(!range.contains(&(cached.value.as_ptr() as usize)));
        let changes = Changes {
            keys: vec![(key.clone(), Some(Record::new(value, 0)))],
            all: false,
            ..Changes::default()
        };
        let v = c.announce(&changes);
        c.published(v);
        c.write_through(changes);
        let cached = c.get(&key).unwrap().unwrap();
        assert!(!range.contains(&(cached.value.as_ptr() as usize)));
        assert!(c.size_bytes() < 1024, "weighed as a small entry");
    }

    #[test]
    fn a_disabled_cache_holds_nothing() {
        let c = ReadCache::new(0);
        assert!(!c.enabled());
        c.fill(b"k", 0, &rec("1"));
        assert_eq!(c.get(b"k"), None);
        assert_eq!(c.misses.load(Ordering::Relaxed), 0);
    }
}
