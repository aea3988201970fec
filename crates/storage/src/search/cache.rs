//! The posting cache: decoded posting lists of search terms, and decoded
//! vector fields for KNN, bounded in bytes, in front of the engine.
//!
//! Why: a query word reads every posting of the word (and of its stem)
//! through the LSM tree's merging iterator. Profiled on 100,000 documents,
//! that iteration (merge heap, MVCC filter, key compares, block decoding)
//! was most of a full-text query's CPU, about 300 ns per posting; a decoded
//! list is read at memory speed. The index stays data; this is a cache of
//! it, exact for the view a query reads, never a second source of truth.
//!
//! # Coherence (the read cache's protocol, `read_cache.rs`, per list)
//! A list is named by its posting prefix (`s id 03|04 esc(term) 00 01`),
//! or a vector field by its prefix (`s id 07 field`), and lists are spread over [`SHARDS`] shards by a hash of that name.
//! Every published view has a version, counted here. Each shard remembers
//! the version of the last published view that changed one of its lists
//! (`changed_at`); FLUSHALL, a snapshot install or a failed commit change
//! every list (`all_changed_at`).
//!
//! - The writer, BEFORE it stores view `v`, sets `changed_at = v` on each
//!   shard whose lists the view changes (announce), and after storing the
//!   view, publishes `v` as the version.
//! - A reader loads the version `r` FIRST, then the view (of version at
//!   least `r`). It uses a cached list filled at version `b` only if the
//!   shard's last change `c` is at most `min(b, r)`: no change between the
//!   list's version and its own view, on either side. It fills a list it
//!   read from its view only if `c <= r` once read: no change since `r`, so
//!   the list it read is the list of version `r`.
//!
//! A change announced after the reader loaded its view shows a `c` above
//! `r`, and so does any change the view itself holds past `r`: the writer
//! announced it before storing that view. Stale entries are never used,
//! only replaced or evicted.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::collections::HashMap;
use std::sync::Mutex;

use strata_search::eval::{PostingList, VectorList};
use strata_search::keys::{KIND_STEM, KIND_TERM, KIND_VECTOR, TAG_SEARCH};

/// Shards of the version table: a power of two. A write of a 110-word
/// document changes ~140 lists; with 4,096 shards that leaves the other
/// 97% of cached lists valid.
pub(crate) const SHARDS: usize = 4096;

/// Bytes counted per list on top of its own: the cache's slot, the name,
/// the `Arc` and the vectors' headers. An estimate.
const LIST_OVERHEAD_BYTES: u64 = 160;

/// Lists the cache is sized for per byte of capacity: a typical list holds
/// a few hundred postings of ~40 bytes.
const LIST_SIZE_BYTES_TYPICAL: u64 = 16 * 1024;

/// The shard of the list named `list`: the same function for the writer
/// and every reader of this process (nothing of it is stored).
pub(crate) fn shard_of(list: &[u8]) -> usize {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(list) as usize & (SHARDS - 1)
}

/// The name of the list that an index entry belongs to, if it is a term
/// or stem posting (`s id kind esc(term) 00 01 key`) or a vector
/// (`s id 07 field key`) of `user_key`.
pub(crate) fn list_of<'k>(entry: &'k [u8], user_key: &[u8]) -> Option<&'k [u8]> {
    let kind = *entry.get(5)?;
    if entry[0] != TAG_SEARCH || !matches!(kind, KIND_TERM | KIND_STEM | KIND_VECTOR) {
        return None;
    }
    entry.strip_suffix(user_key)
}

/// The shards a group's writes changed: a bit per shard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ShardSet(Vec<u64>);

impl ShardSet {
    pub fn insert(&mut self, shard: usize) {
        debug_assert!(shard < SHARDS);
        if self.0.is_empty() {
            self.0 = vec![0; SHARDS / 64];
        }
        self.0[shard / 64] |= 1 << (shard % 64);
    }

    pub fn extend(&mut self, other: &ShardSet) {
        for (i, word) in other.0.iter().enumerate() {
            if *word != 0 {
                if self.0.is_empty() {
                    self.0 = vec![0; SHARDS / 64];
                }
                self.0[i] |= word;
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(i, &word)| {
            (0..64)
                .filter(move |b| word & (1 << b) != 0)
                .map(move |b| i * 64 + b)
        })
    }
}

#[derive(Clone, Copy)]
struct Weigh;

impl quick_cache::Weighter<Vec<u8>, Filled> for Weigh {
    fn weight(&self, name: &Vec<u8>, filled: &Filled) -> u64 {
        name.len() as u64 + filled.list.size_bytes() as u64 + LIST_OVERHEAD_BYTES
    }
}

/// A list as read from the view of version `at`.
#[derive(Clone)]
struct Filled {
    at: u64,
    list: Arc<PostingList>,
}

/// A vector field as read from the view of version `at`.
struct FilledVectors {
    at: u64,
    list: Arc<VectorList>,
}

pub(crate) struct PostingCache {
    /// `None` when the cache is switched off (capacity 0).
    lists: Option<quick_cache::sync::Cache<Vec<u8>, Filled, Weigh>>,
    /// Vector fields: few and large (a 384-d field of 100,000 documents
    /// is 150 MB), so a plain map under a byte bound, not `lists`, whose
    /// shards would each be too small to hold one.
    vectors: Mutex<HashMap<Vec<u8>, FilledVectors>>,
    vectors_size_bytes_max: u64,
    changed_at: Box<[AtomicU64]>,
    all_changed_at: AtomicU64,
    /// The version of the latest published view.
    version: AtomicU64,
    capacity_bytes: u64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

impl PostingCache {
    /// Half of `capacity_bytes` for posting lists, half for vector fields.
    pub fn new(capacity_bytes: u64) -> PostingCache {
        let lists_bytes = capacity_bytes / 2;
        let lists = (lists_bytes > 0).then(|| {
            let items = (lists_bytes / LIST_SIZE_BYTES_TYPICAL).max(16);
            quick_cache::sync::Cache::with_weighter(
                usize::try_from(items).unwrap_or(usize::MAX),
                lists_bytes,
                Weigh,
            )
        });
        PostingCache {
            lists,
            vectors: Mutex::new(HashMap::new()),
            vectors_size_bytes_max: capacity_bytes - lists_bytes,
            changed_at: (0..SHARDS).map(|_| AtomicU64::new(0)).collect(),
            all_changed_at: AtomicU64::new(0),
            version: AtomicU64::new(0),
            capacity_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The version to load BEFORE taking the view a query reads.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn last_change(&self, list: &[u8]) -> u64 {
        let shard = self.changed_at[shard_of(list)].load(Ordering::Acquire);
        shard.max(self.all_changed_at.load(Ordering::Acquire))
    }

    /// The list named `list` as a reader of version `read_at` sees it.
    pub fn get(&self, list: &[u8], read_at: u64) -> Option<Arc<PostingList>> {
        let lists = self.lists.as_ref()?;
        let found = lists
            .get(list)
            .filter(|f| self.last_change(list) <= f.at.min(read_at));
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found.map(|f| f.list)
    }

    /// Keeps `postings`, read from a view of version `read_at` or newer,
    /// unless the list changed after `read_at`.
    pub fn fill(&self, list: &[u8], read_at: u64, postings: &Arc<PostingList>) {
        let Some(lists) = &self.lists else { return };
        if self.last_change(list) <= read_at {
            let filled = Filled {
                at: read_at,
                list: postings.clone(),
            };
            lists.insert(list.to_vec(), filled);
        }
    }

    /// The largest vector field kept, in bytes.
    pub fn vectors_size_bytes_max(&self) -> u64 {
        self.vectors_size_bytes_max
    }

    fn vectors(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, FilledVectors>> {
        // A panic while the lock was held left a map of whole entries.
        self.vectors.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The vector field named `list` as a reader of version `read_at`
    /// sees it.
    pub fn get_vectors(&self, list: &[u8], read_at: u64) -> Option<Arc<VectorList>> {
        let found = self
            .vectors()
            .get(list)
            .filter(|f| self.last_change(list) <= f.at.min(read_at))
            .map(|f| f.list.clone());
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Keeps a vector field read from a view of version `read_at` or
    /// newer, unless it changed after `read_at` or is over the bound; the
    /// other fields make room (all of them: there are few).
    pub fn fill_vectors(&self, list: &[u8], read_at: u64, vectors: &Arc<VectorList>) {
        let size = vectors.size_bytes() as u64;
        if size > self.vectors_size_bytes_max || self.last_change(list) > read_at {
            return;
        }
        let mut map = self.vectors();
        let others: u64 = map
            .iter()
            .filter(|(name, _)| name.as_slice() != list)
            .map(|(_, f)| f.list.size_bytes() as u64)
            .sum();
        if others + size > self.vectors_size_bytes_max {
            map.clear();
        }
        let filled = FilledVectors {
            at: read_at,
            list: vectors.clone(),
        };
        map.insert(list.to_vec(), filled);
    }

    /// Announces the next view's changes, BEFORE it is stored; returns
    /// its version, to [`PostingCache::published`] once it is.
    pub fn announce(&self, shards: &ShardSet, all: bool) -> u64 {
        let version = self.version.load(Ordering::Relaxed) + 1;
        if all {
            self.all_changed_at.store(version, Ordering::Release);
            if let Some(lists) = &self.lists {
                lists.clear();
            }
            self.vectors().clear();
        } else {
            for shard in shards.iter() {
                self.changed_at[shard].store(version, Ordering::Release);
            }
        }
        version
    }

    /// After the view of `version` is stored.
    pub fn published(&self, version: u64) {
        self.version.store(version, Ordering::Release);
    }

    pub fn size_bytes(&self) -> u64 {
        let vectors: u64 = self
            .vectors()
            .values()
            .map(|f| f.list.size_bytes() as u64)
            .sum();
        self.lists.as_ref().map_or(0, |l| l.weight()) + vectors
    }

    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> Arc<PostingList> {
        Arc::new(PostingList::default())
    }

    #[test]
    fn a_list_is_used_only_while_its_shard_is_unchanged() {
        let cache = PostingCache::new(1 << 20);
        let name = b"s\0\0\0\x01\x03word\0\x01".to_vec();
        let r = cache.version();
        cache.fill(&name, r, &list());
        assert!(cache.get(&name, r).is_some(), "filled and unchanged: a hit");
        let mut changed = ShardSet::default();
        changed.insert(shard_of(&name));
        let v = cache.announce(&changed, false);
        // Announced, not yet published: a reader of r may see the new view.
        assert!(cache.get(&name, r).is_none());
        cache.published(v);
        assert!(
            cache.get(&name, cache.version()).is_none(),
            "stale after a change"
        );
        // A fill by a reader that loaded r before the change is refused.
        cache.fill(&name, r, &list());
        assert!(cache.get(&name, cache.version()).is_none());
        cache.fill(&name, v, &list());
        assert!(cache.get(&name, v).is_some());
        // Another shard's change leaves it valid; FLUSHALL does not.
        let mut other = ShardSet::default();
        other.insert((shard_of(&name) + 1) % SHARDS);
        cache.published(cache.announce(&other, false));
        assert!(cache.get(&name, cache.version()).is_some());
        cache.published(cache.announce(&ShardSet::default(), true));
        assert!(cache.get(&name, cache.version()).is_none());
    }

    #[test]
    fn entries_name_their_lists() {
        let user = b"doc:1";
        let term = strata_search::keys::posting_key(7, false, "word", Some(user));
        let stem = strata_search::keys::posting_key(7, true, "word", Some(user));
        assert_eq!(
            list_of(&term, user),
            Some(&strata_search::keys::posting_key(7, false, "word", None)[..])
        );
        assert_eq!(
            list_of(&stem, user),
            Some(&strata_search::keys::posting_key(7, true, "word", None)[..])
        );
        assert_eq!(list_of(&strata_search::keys::doc_key(7, user), user), None);
        assert_eq!(list_of(b"s", user), None);
    }

    #[test]
    fn shard_sets_hold_what_was_inserted() {
        let mut a = ShardSet::default();
        assert_eq!(a.iter().count(), 0);
        a.insert(5);
        a.insert(SHARDS - 1);
        let mut b = ShardSet::default();
        b.insert(64);
        a.extend(&b);
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![5, 64, SHARDS - 1]);
    }
}
