//! A bounded in-memory copy of the Raft log's tail.
//!
//! openraft's replication (and the apply path) almost always reads entries
//! appended moments ago. Reading them back from the engine costs a range
//! scan over the `raftlog` keyspace plus a postcard decode per entry, on
//! the leader's hottest path; cloning them from here costs neither.
//!
//! Invariants (what makes serving a read from here equivalent to reading
//! the engine):
//! - Contiguous: the cached entries have indexes `first, first+1, ..,
//!   last`, no holes. An append that does not continue the tail clears the
//!   cache first and starts over from that append.
//! - A tail: filled only by appends, trimmed from the back by truncations
//!   and from the front by purges and eviction, so when it is not empty its
//!   last entry is the log's last appended entry. (openraft appends only
//!   after the last log id, truncating first when it replaces entries.)
//! - Only an optimisation: empty is always correct (after a restart, after
//!   an error), reads then go to the engine.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::types::Entry;

/// Entries cached at most. Bounds the memory held by the per-entry
/// overhead (an `Entry` and its deque slot) when entries are tiny, where
/// the byte limit would allow millions. 64 Ki entries is many seconds of
/// replication at the write rates we see, so a follower that lags less
/// than that is served from memory; one that lags more reads the engine,
/// as before the cache existed.
pub(crate) const LOG_CACHE_ENTRIES_MAX: usize = 65_536;
/// Bytes cached at most, counted as twice each entry's encoded size (an
/// entry holds its commands both encoded and decoded). Bounds the memory held when
/// entries are large (values up to the engine's value limit): the cache
/// must never be what runs a node out of memory.
pub(crate) const LOG_CACHE_BYTES_MAX: usize = 64 * 1024 * 1024;

struct Cached {
    entry: Entry,
    /// The entry's encoded size, as written to the engine.
    size_bytes: usize,
}

/// The cache itself; see [`SharedLogCache`] for the shared handle.
pub(crate) struct LogCache {
    /// Contiguous by index, oldest first.
    entries: VecDeque<Cached>,
    /// Sum of `size_bytes` over `entries`.
    size_bytes: usize,
    entries_max: usize,
    bytes_max: usize,
}

impl LogCache {
    pub(crate) fn new() -> LogCache {
        LogCache::with_limits(LOG_CACHE_ENTRIES_MAX, LOG_CACHE_BYTES_MAX)
    }

    /// Custom limits, for tests.
    pub(crate) fn with_limits(entries_max: usize, bytes_max: usize) -> LogCache {
        LogCache {
            entries: VecDeque::new(),
            size_bytes: 0,
            entries_max,
            bytes_max,
        }
    }

    pub(crate) fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|c| c.entry.log_id.index)
    }

    pub(crate) fn last_index(&self) -> Option<u64> {
        self.entries.back().map(|c| c.entry.log_id.index)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub(crate) fn size_bytes(&self) -> usize {
        self.size_bytes
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.size_bytes = 0;
    }

    /// Adds an entry at the tail; `size_bytes` is its encoded size. An
    /// entry that does not continue the tail (a hole, or an index already
    /// cached) clears the cache first: the cache never has holes.
    pub(crate) fn push(&mut self, entry: Entry, size_bytes: usize) {
        let index = entry.log_id.index;
        if let Some(last) = self.last_index()
            && last.checked_add(1) != Some(index)
        {
            self.clear();
        }
        self.entries.push_back(Cached { entry, size_bytes });
        self.size_bytes = self.size_bytes.saturating_add(size_bytes);
        // Oldest first: the tail is what replication reads next. An entry
        // larger than the byte limit on its own leaves the cache empty,
        // which is correct (reads go to the engine).
        while self.entries.len() > self.entries_max || self.size_bytes > self.bytes_max {
            if self.pop_front().is_none() {
                break;
            }
        }
    }

    /// Entries `start..end` (`end` exclusive), stopping after `entries_max`
    /// entries or once their sizes reach `bytes_max`, like the engine's
    /// range read; at least one entry. `None` when the cache does not hold
    /// `start`: the caller reads the engine.
    ///
    /// Entries past the cached tail are not returned: by the tail
    /// invariant, the log has none that an append has returned for.
    pub(crate) fn read(
        &self,
        start: u64,
        end: u64,
        entries_max: usize,
        bytes_max: usize,
    ) -> Option<Vec<Entry>> {
        let first = self.first_index()?;
        let last = self.last_index()?;
        if start < first || start > last || start >= end {
            return None;
        }
        // Contiguity: the entry with index `start` is at `start - first`,
        // which is < len because start <= last.
        let offset = usize::try_from(start - first).ok()?;
        let mut out = Vec::new();
        let mut size_bytes = 0usize;
        for cached in self.entries.range(offset..) {
            if cached.entry.log_id.index >= end {
                break;
            }
            size_bytes = size_bytes.saturating_add(cached.size_bytes);
            out.push(cached.entry.clone());
            if out.len() >= entries_max || size_bytes >= bytes_max {
                break;
            }
        }
        Some(out)
    }

    /// Drops the entries with index > `last_kept` (all of them if `None`).
    pub(crate) fn truncate_after(&mut self, last_kept: Option<u64>) {
        let Some(last_kept) = last_kept else {
            self.clear();
            return;
        };
        while let Some(back) = self.entries.back() {
            if back.entry.log_id.index <= last_kept {
                break;
            }
            if let Some(removed) = self.entries.pop_back() {
                self.size_bytes = self.size_bytes.saturating_sub(removed.size_bytes);
            }
        }
    }

    /// Drops the entries with index <= `upto`.
    pub(crate) fn purge(&mut self, upto: u64) {
        while let Some(front) = self.entries.front() {
            if front.entry.log_id.index > upto {
                break;
            }
            self.pop_front();
        }
    }

    fn pop_front(&mut self) -> Option<Cached> {
        let removed = self.entries.pop_front()?;
        self.size_bytes = self.size_bytes.saturating_sub(removed.size_bytes);
        Some(removed)
    }
}

/// The cache shared by a log store and its readers (clones). Every method
/// takes the lock for its own duration only, so no caller can hold it
/// across an `.await`.
#[derive(Clone)]
pub(crate) struct SharedLogCache(Arc<Mutex<LogCache>>);

impl SharedLogCache {
    pub(crate) fn new() -> SharedLogCache {
        SharedLogCache(Arc::new(Mutex::new(LogCache::new())))
    }

    fn lock(&self) -> MutexGuard<'_, LogCache> {
        match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => {
                // A panic under the lock may have left the cache half
                // updated (a size out of step with its entries, a hole).
                // It is only a copy of the engine's tail: empty it and go
                // on, reads fall back to the engine.
                let mut guard = poisoned.into_inner();
                guard.clear();
                self.0.clear_poison();
                guard
            }
        }
    }

    /// Adds the entries of one append, in order; `(entry, encoded size)`.
    pub(crate) fn extend(&self, entries: impl IntoIterator<Item = (Entry, usize)>) {
        let mut cache = self.lock();
        for (entry, size_bytes) in entries {
            cache.push(entry, size_bytes);
        }
    }

    /// See [`LogCache::read`].
    pub(crate) fn read(
        &self,
        start: u64,
        end: u64,
        entries_max: usize,
        bytes_max: usize,
    ) -> Option<Vec<Entry>> {
        self.lock().read(start, end, entries_max, bytes_max)
    }

    /// See [`LogCache::truncate_after`].
    pub(crate) fn truncate_after(&self, last_kept: Option<u64>) {
        self.lock().truncate_after(last_kept);
    }

    /// See [`LogCache::purge`].
    pub(crate) fn purge(&self, upto: u64) {
        self.lock().purge(upto);
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// `(first index, last index, entries, bytes)`, for tests.
    #[cfg(test)]
    pub(crate) fn shape(&self) -> (Option<u64>, Option<u64>, usize, usize) {
        let cache = self.lock();
        (
            cache.first_index(),
            cache.last_index(),
            cache.len(),
            cache.size_bytes(),
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use openraft::{EntryPayload, LogId};

    use super::*;

    pub(crate) fn blank(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(
                <openraft::impls::leader_id_adv::LeaderId<u64, u64> as openraft::vote::RaftLeaderId>::new(term, 1),
                index,
            ),
            payload: EntryPayload::Blank,
        }
    }

    fn filled(cache: &mut LogCache, indexes: std::ops::RangeInclusive<u64>, size_bytes: usize) {
        for i in indexes {
            cache.push(blank(1, i), size_bytes);
        }
    }

    fn indexes(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(|e| e.log_id.index).collect()
    }

    fn shape(cache: &LogCache) -> (Option<u64>, Option<u64>, usize, usize) {
        (
            cache.first_index(),
            cache.last_index(),
            cache.len(),
            cache.size_bytes(),
        )
    }

    #[test]
    fn append_then_read() {
        let mut cache = LogCache::new();
        assert_eq!(
            cache.read(0, 10, 100, 1000),
            None,
            "empty cache serves nothing"
        );
        filled(&mut cache, 5..=9, 10);
        assert_eq!(shape(&cache), (Some(5), Some(9), 5, 50));

        let got = cache.read(5, 10, 100, 1000).expect("cached");
        assert_eq!(indexes(&got), vec![5, 6, 7, 8, 9]);
        assert_eq!(got[0], blank(1, 5));
        assert_eq!(
            indexes(&cache.read(7, 9, 100, 1000).expect("cached")),
            vec![7, 8]
        );
        // Past the tail: the log has no more, like the engine.
        assert_eq!(
            indexes(&cache.read(8, 100, 100, 1000).expect("cached")),
            vec![8, 9]
        );
        assert_eq!(
            indexes(&cache.read(9, u64::MAX, 100, 1000).expect("cached")),
            vec![9]
        );
        // Empty range, or a start beyond the tail: the engine answers.
        assert_eq!(cache.read(7, 7, 100, 1000), None);
        assert_eq!(cache.read(10, 20, 100, 1000), None);
    }

    #[test]
    fn read_caps_like_the_engine() {
        let mut cache = LogCache::new();
        filled(&mut cache, 1..=10, 10);
        assert_eq!(
            indexes(&cache.read(1, 11, 3, 1000).expect("cached")),
            vec![1, 2, 3]
        );
        // Stops once the bytes reach the cap, the entry reaching it included.
        assert_eq!(
            indexes(&cache.read(1, 11, 100, 25).expect("cached")),
            vec![1, 2, 3]
        );
        assert_eq!(
            indexes(&cache.read(1, 11, 100, 20).expect("cached")),
            vec![1, 2]
        );
        // At least one entry, whatever the caps.
        assert_eq!(
            indexes(&cache.read(4, 11, 100, 1).expect("cached")),
            vec![4]
        );
        assert_eq!(indexes(&cache.read(4, 11, 1, 1).expect("cached")), vec![4]);
    }

    #[test]
    fn start_below_the_cache_falls_back() {
        let mut cache = LogCache::new();
        filled(&mut cache, 100..=110, 1);
        assert_eq!(cache.read(99, 105, 100, 1000), None);
        assert_eq!(cache.read(0, u64::MAX, 100, 1000), None);
        assert!(cache.read(100, 105, 100, 1000).is_some());
    }

    #[test]
    fn evicts_oldest_by_count() {
        let mut cache = LogCache::with_limits(4, 1000);
        filled(&mut cache, 1..=4, 10);
        assert_eq!(shape(&cache), (Some(1), Some(4), 4, 40));
        filled(&mut cache, 5..=6, 10);
        assert_eq!(shape(&cache), (Some(3), Some(6), 4, 40));
        assert_eq!(
            cache.read(2, 7, 100, 1000),
            None,
            "evicted: the engine answers"
        );
        assert_eq!(
            indexes(&cache.read(3, 7, 100, 1000).expect("cached")),
            vec![3, 4, 5, 6]
        );
    }

    #[test]
    fn evicts_oldest_by_bytes() {
        let mut cache = LogCache::with_limits(100, 100);
        filled(&mut cache, 1..=3, 30);
        assert_eq!(shape(&cache), (Some(1), Some(3), 3, 90));
        cache.push(blank(1, 4), 30);
        assert_eq!(shape(&cache), (Some(2), Some(4), 3, 90));
        cache.push(blank(1, 5), 70);
        assert_eq!(shape(&cache), (Some(4), Some(5), 2, 100));
        // An entry over the limit on its own: the cache is empty, and the
        // next append starts it again.
        cache.push(blank(1, 6), 101);
        assert_eq!(shape(&cache), (None, None, 0, 0));
        assert_eq!(cache.read(6, 7, 100, 1000), None);
        cache.push(blank(1, 7), 10);
        assert_eq!(shape(&cache), (Some(7), Some(7), 1, 10));
    }

    #[test]
    fn truncate_after() {
        let mut cache = LogCache::new();
        filled(&mut cache, 1..=10, 10);
        cache.truncate_after(Some(20));
        assert_eq!(shape(&cache), (Some(1), Some(10), 10, 100));
        cache.truncate_after(Some(6));
        assert_eq!(shape(&cache), (Some(1), Some(6), 6, 60));
        assert_eq!(
            indexes(&cache.read(4, 100, 100, 1000).expect("cached")),
            vec![4, 5, 6]
        );
        // The replacement entries (a new term) continue the tail.
        cache.push(blank(2, 7), 10);
        assert_eq!(shape(&cache), (Some(1), Some(7), 7, 70));
        assert_eq!(
            cache.read(7, 8, 100, 1000).expect("cached"),
            vec![blank(2, 7)]
        );
        cache.truncate_after(Some(0));
        assert_eq!(shape(&cache), (None, None, 0, 0));

        filled(&mut cache, 1..=10, 10);
        cache.truncate_after(None);
        assert_eq!(shape(&cache), (None, None, 0, 0));
    }

    #[test]
    fn purge() {
        let mut cache = LogCache::new();
        filled(&mut cache, 1..=10, 10);
        cache.purge(0);
        assert_eq!(shape(&cache), (Some(1), Some(10), 10, 100));
        cache.purge(4);
        assert_eq!(shape(&cache), (Some(5), Some(10), 6, 60));
        assert_eq!(cache.read(4, 6, 100, 1000), None);
        assert_eq!(
            indexes(&cache.read(5, 7, 100, 1000).expect("cached")),
            vec![5, 6]
        );
        // Beyond the tail (a snapshot past the log): empty; appends after
        // the snapshot start it again.
        cache.purge(50);
        assert_eq!(shape(&cache), (None, None, 0, 0));
        cache.push(blank(3, 51), 10);
        assert_eq!(shape(&cache), (Some(51), Some(51), 1, 10));
        cache.purge(u64::MAX);
        assert_eq!(shape(&cache), (None, None, 0, 0));
    }

    #[test]
    fn non_contiguous_append_clears() {
        let mut cache = LogCache::new();
        filled(&mut cache, 1..=5, 10);
        // A hole: start over from this entry.
        cache.push(blank(1, 8), 10);
        assert_eq!(shape(&cache), (Some(8), Some(8), 1, 10));
        assert_eq!(cache.read(5, 9, 100, 1000), None);
        // An index already cached (an overwrite without truncation): the
        // same, never two entries for one index.
        filled(&mut cache, 9..=12, 10);
        cache.push(blank(2, 10), 10);
        assert_eq!(shape(&cache), (Some(10), Some(10), 1, 10));
        assert_eq!(
            cache.read(10, 20, 100, 1000).expect("cached"),
            vec![blank(2, 10)]
        );
        // u64::MAX has no successor.
        cache.push(blank(2, u64::MAX), 10);
        cache.push(blank(2, 0), 10);
        assert_eq!(shape(&cache), (Some(0), Some(0), 1, 10));
    }

    #[test]
    fn shared_handles_see_one_cache_and_survive_poisoning() {
        let shared = SharedLogCache::new();
        let reader = shared.clone();
        shared.extend([(blank(1, 1), 10), (blank(1, 2), 10)]);
        assert_eq!(
            indexes(&reader.read(1, 3, 100, 1000).expect("cached")),
            vec![1, 2]
        );
        assert_eq!(reader.shape(), (Some(1), Some(2), 2, 20));

        let poisoner = shared.clone();
        let panicked = std::thread::spawn(move || {
            let _guard = poisoner.lock();
            panic!("poison the cache lock");
        })
        .join();
        assert!(panicked.is_err());
        // Poisoning empties the cache (it is only a copy) and clears.
        assert_eq!(reader.read(1, 3, 100, 1000), None);
        assert_eq!(shared.shape(), (None, None, 0, 0));
        shared.extend([(blank(1, 3), 10)]);
        assert_eq!(reader.shape(), (Some(3), Some(3), 1, 10));
    }
}
