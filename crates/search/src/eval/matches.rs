//! [`Matches`]: the documents a query node matched, with their scores, in
//! ascending user-key order; and [`Keys`], where their user keys live.
//!
//! Why not a map of owned keys: every posting list comes out of the
//! engine (or the posting cache) in key order already, so AND, OR and NOT
//! are linear merges of two sorted lists; and a match only points at its
//! key in the list it came from (source, index), so a merge moves 16-byte
//! items and never copies a key. The first version (a tree of owned keys
//! rebuilt at every step) spent most of a query in the allocator, the
//! second (keys copied into each result) a quarter in `memmove`.

use std::cmp::Ordering;
use std::sync::Arc;

use super::text::PostingList;

/// User keys, back to back, in the order they were pushed.
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyArena {
    bytes: Vec<u8>,
    /// Per key: where it ends in `bytes`.
    ends: Vec<usize>,
}

impl KeyArena {
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(crate) fn push(&mut self, key: &[u8]) {
        self.bytes.extend_from_slice(key);
        self.ends.push(self.bytes.len());
    }

    pub(crate) fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Key `i`'s (start, length) in [`KeyArena::bytes`].
    pub(crate) fn span(&self, i: usize) -> (usize, u32) {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        // One user key: at most the engine's key limit, far below 4 GiB.
        let len = u32::try_from(self.ends[i] - start).unwrap_or(u32::MAX);
        (start, len)
    }

    pub(crate) fn size_bytes(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * 8
    }

    pub(crate) fn shrink_to_fit(&mut self) {
        self.bytes.shrink_to_fit();
        self.ends.shrink_to_fit();
    }
}

enum Source {
    List(Arc<PostingList>),
    Own(KeyArena),
}

/// Every key source one query reads: its posting lists, and the keys it
/// collected otherwise (tags, numeric ranges, phrases, every document).
#[derive(Default)]
pub(crate) struct Keys {
    sources: Vec<Source>,
}

impl Keys {
    fn add(&mut self, source: Source) -> u32 {
        self.sources.push(source);
        u32::try_from(self.sources.len() - 1).expect("a query reads fewer than 2^32 sources")
    }

    fn key(&self, item: &Item) -> &[u8] {
        let bytes = match &self.sources[item.source as usize] {
            Source::List(list) => list.key_bytes(),
            Source::Own(arena) => &arena.bytes,
        };
        &bytes[item.start..item.start + item.len as usize]
    }

    /// Matches of `list`'s postings at `scored` (index, score), ascending.
    pub(crate) fn of_list(
        &mut self,
        list: &Arc<PostingList>,
        scored: impl Iterator<Item = (usize, f64)>,
    ) -> Matches {
        let source = self.add(Source::List(list.clone()));
        let mut items = Vec::with_capacity(list.len());
        items.extend(scored.map(|(index, score)| {
            let (start, len) = list.key_span(index);
            Item {
                source,
                start,
                len,
                score,
            }
        }));
        Matches { items }
    }

    /// Matches of the postings of `list` whose keys `within` holds, each
    /// scored by `score` (None: left out). A gallop through `list` per key
    /// of `within`: a rare word ANDed with a common one reads a few
    /// hundred of the common word's postings, not all of them.
    pub(crate) fn of_list_within(
        &mut self,
        list: &Arc<PostingList>,
        within: &Matches,
        score: impl Fn(usize) -> Option<f64>,
    ) -> Matches {
        let mut found = Vec::with_capacity(within.len().min(list.len()));
        let mut from = 0;
        for item in &within.items {
            let key = self.key(item);
            from = gallop(list, from, key);
            if from == list.len() {
                break;
            }
            if list.key(from) == key {
                if let Some(s) = score(from) {
                    found.push((from, s));
                }
                from += 1;
            }
        }
        self.of_list(list, found.into_iter())
    }

    /// Matches of keys collected in ascending order.
    pub(crate) fn adopt(&mut self, built: Built) -> Matches {
        let source = u32::try_from(self.sources.len()).expect("fewer than 2^32 sources");
        let items = (0..built.keys.len())
            .map(|index| {
                let (start, len) = built.keys.span(index);
                Item {
                    source,
                    start,
                    len,
                    score: built.scores[index],
                }
            })
            .collect();
        let added = self.add(Source::Own(built.keys));
        debug_assert_eq!(added, source);
        Matches { items }
    }
}

/// The first index at or after `from` whose key is not below `key` (the
/// list's length if none): steps of doubling size, then a binary search.
fn gallop(list: &PostingList, from: usize, key: &[u8]) -> usize {
    let n = list.len();
    let mut step = 1;
    let mut lo = from;
    let mut hi = from;
    while hi < n && list.key(hi) < key {
        lo = hi + 1;
        hi = hi.saturating_add(step).min(n);
        step *= 2;
    }
    // Every index below `lo` has a key below `key`; `hi` is n or not below.
    lo + list_partition(list, lo, hi, key)
}

/// How many of the keys at `lo..hi` are below `key` (they are sorted).
fn list_partition(list: &PostingList, lo: usize, hi: usize, key: &[u8]) -> usize {
    let (mut a, mut b) = (lo, hi);
    while a < b {
        let mid = a + (b - a) / 2;
        if list.key(mid) < key {
            a = mid + 1;
        } else {
            b = mid;
        }
    }
    a - lo
}

/// Keys with scores being collected, ascending, before [`Keys::adopt`].
#[derive(Default)]
pub(crate) struct Built {
    keys: KeyArena,
    scores: Vec<f64>,
}

impl Built {
    /// Appends `key`, which must sort after every key already here.
    pub(crate) fn push(&mut self, key: &[u8], score: f64) {
        debug_assert!(self.keys.len() == 0 || self.keys.get(self.keys.len() - 1) < key);
        self.keys.push(key);
        self.scores.push(score);
    }

    /// From keys in any order (a numeric range yields them by value); a
    /// key given twice keeps one entry with the scores added.
    pub(crate) fn from_unsorted(mut pairs: Vec<(Vec<u8>, f64)>) -> Built {
        pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut out = Built::default();
        for (key, score) in pairs {
            let n = out.keys.len();
            if n > 0 && out.keys.get(n - 1) == &key[..] {
                out.scores[n - 1] += score;
            } else {
                out.push(&key, score);
            }
        }
        out
    }
}

/// A match: its key is `len` bytes at `start` in its source's arena (so
/// finding it is one lookup, for the comparisons every merge makes).
#[derive(Clone, Copy, Debug)]
struct Item {
    source: u32,
    len: u32,
    start: usize,
    score: f64,
}

/// Distinct user keys (held in a [`Keys`]) with a score each, ascending.
#[derive(Clone, Debug, Default)]
pub(crate) struct Matches {
    items: Vec<Item>,
}

impl Matches {
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    #[cfg(test)]
    pub(crate) fn iter<'k>(&'k self, keys: &'k Keys) -> impl Iterator<Item = (&'k [u8], f64)> {
        self.items.iter().map(move |i| (keys.key(i), i.score))
    }

    pub(crate) fn contains(&self, key: &[u8], keys: &Keys) -> bool {
        self.items
            .binary_search_by(|i| keys.key(i).cmp(key))
            .is_ok()
    }

    /// Every key with its score set to `score`.
    pub(crate) fn rescored(&self, score: f64) -> Matches {
        let mut out = self.clone();
        out.items.iter_mut().for_each(|i| i.score = score);
        out
    }

    /// Keys in both; scores added (AND).
    pub(crate) fn and(&self, other: &Matches, keys: &Keys) -> Matches {
        self.merge(other, keys, Keep::Both, |a, b| a + b)
    }

    /// Keys in either; a key in both has the scores added (OR).
    pub(crate) fn or(&self, other: &Matches, keys: &Keys) -> Matches {
        self.merge(other, keys, Keep::Either, |a, b| a + b)
    }

    /// Keys in either; a key in both keeps this side's score (a prefix's
    /// union, where the first term a document holds scores it).
    pub(crate) fn or_first(&self, other: &Matches, keys: &Keys) -> Matches {
        self.merge(other, keys, Keep::Either, |a, _| a)
    }

    /// This side's keys that `other` lacks (NOT).
    pub(crate) fn minus(&self, other: &Matches, keys: &Keys) -> Matches {
        self.merge(other, keys, Keep::LeftOnly, |a, _| a)
    }

    fn merge(
        &self,
        other: &Matches,
        keys: &Keys,
        keep: Keep,
        both: impl Fn(f64, f64) -> f64,
    ) -> Matches {
        if keep == Keep::Either && (self.items.is_empty() || other.items.is_empty()) {
            let one = if self.items.is_empty() { other } else { self };
            return one.clone();
        }
        let mut items = Vec::with_capacity(match keep {
            Keep::Either => self.items.len() + other.items.len(),
            Keep::Both => self.items.len().min(other.items.len()),
            Keep::LeftOnly => self.items.len(),
        });
        let (a, b) = (&self.items, &other.items);
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            match keys.key(&a[i]).cmp(keys.key(&b[j])) {
                Ordering::Less => {
                    if keep != Keep::Both {
                        items.push(a[i]);
                    }
                    i += 1;
                }
                Ordering::Greater => {
                    if keep == Keep::Either {
                        items.push(b[j]);
                    }
                    j += 1;
                }
                Ordering::Equal => {
                    if keep != Keep::LeftOnly {
                        items.push(Item {
                            score: both(a[i].score, b[j].score),
                            ..a[i]
                        });
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        if keep != Keep::Both {
            items.extend_from_slice(&a[i..]);
        }
        if keep == Keep::Either {
            items.extend_from_slice(&b[j..]);
        }
        Matches { items }
    }

    /// The `count` best after skipping `offset`, by `order` then key, as
    /// owned pairs; only the page is sorted (a selection finds it), since
    /// a query usually wants 10 of many thousands.
    pub(crate) fn page(
        self,
        offset: usize,
        count: usize,
        keys: &Keys,
        order: impl Fn(f64, f64) -> Ordering,
    ) -> Vec<(Vec<u8>, f64)> {
        let cmp =
            |x: &Item, y: &Item| order(x.score, y.score).then_with(|| keys.key(x).cmp(keys.key(y)));
        let wanted = offset.saturating_add(count).min(self.items.len());
        if wanted == 0 {
            return Vec::new();
        }
        let mut items = self.items;
        if wanted < items.len() {
            items.select_nth_unstable_by(wanted - 1, cmp);
            items.truncate(wanted);
        }
        items.sort_unstable_by(cmp);
        items
            .iter()
            .skip(offset)
            .map(|i| (keys.key(i).to_vec(), i.score))
            .collect()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    Both,
    Either,
    LeftOnly,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn build(keys: &mut Keys, m: &BTreeMap<Vec<u8>, f64>) -> Matches {
        let mut b = Built::default();
        for (k, v) in m {
            b.push(k, *v);
        }
        keys.adopt(b)
    }

    fn dump(m: &Matches, keys: &Keys) -> BTreeMap<Vec<u8>, f64> {
        m.iter(keys).map(|(k, v)| (k.to_vec(), v)).collect()
    }

    fn sets() -> impl Strategy<Value = BTreeMap<Vec<u8>, f64>> {
        proptest::collection::btree_map(
            proptest::collection::vec(0u8..4, 0..4),
            (0u32..100).prop_map(f64::from),
            0..24,
        )
    }

    proptest! {
        /// Every merge against the map it replaces: same keys, same scores.
        #[test]
        fn merges_equal_the_map_model(a in sets(), b in sets()) {
            let mut keys = Keys::default();
            let (ma, mb) = (build(&mut keys, &a), build(&mut keys, &b));
            let and: BTreeMap<_, _> = a.iter()
                .filter_map(|(k, v)| b.get(k).map(|w| (k.clone(), v + w))).collect();
            prop_assert_eq!(dump(&ma.and(&mb, &keys), &keys), and);
            let mut or = a.clone();
            for (k, v) in &b { *or.entry(k.clone()).or_insert(0.0) += v; }
            prop_assert_eq!(dump(&ma.or(&mb, &keys), &keys), or);
            let mut first = a.clone();
            for (k, v) in &b { first.entry(k.clone()).or_insert(*v); }
            prop_assert_eq!(dump(&ma.or_first(&mb, &keys), &keys), first);
            let minus: BTreeMap<_, _> = a.iter()
                .filter(|(k, _)| !b.contains_key(*k)).map(|(k, v)| (k.clone(), *v)).collect();
            prop_assert_eq!(dump(&ma.minus(&mb, &keys), &keys), minus);
            for k in b.keys() {
                prop_assert_eq!(ma.contains(k, &keys), a.contains_key(k));
            }
        }

        /// A page equals the same slice of a full sort, by score then key.
        #[test]
        fn page_equals_a_full_sort(a in sets(), offset in 0usize..30, count in 0usize..30) {
            let mut keys = Keys::default();
            let m = build(&mut keys, &a);
            let mut all: Vec<(Vec<u8>, f64)> = a.into_iter().collect();
            all.sort_by(|x, y| y.1.total_cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
            let want: Vec<_> = all.into_iter().skip(offset).take(count).collect();
            prop_assert_eq!(m.page(offset, count, &keys, |x, y| y.total_cmp(&x)), want);
        }

        #[test]
        fn from_unsorted_sorts_and_adds_duplicates(pairs in proptest::collection::vec(
            (proptest::collection::vec(0u8..3, 0..3), (0u32..10).prop_map(f64::from)), 0..20)) {
            let mut model = BTreeMap::new();
            for (k, v) in &pairs { *model.entry(k.clone()).or_insert(0.0) += v; }
            let mut keys = Keys::default();
            let m = keys.adopt(Built::from_unsorted(pairs));
            prop_assert_eq!(dump(&m, &keys), model);
        }
    }
}
