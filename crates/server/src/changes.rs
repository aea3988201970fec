//! What changed after a version, for the HTTP API's blocking queries
//! (`?index=n&wait=…`) and `&changed`: a bounded in-memory log of the keys
//! each published view changed, fed by the storage writer
//! ([`strata_storage::PublishObserver`]), and the requests waiting for a
//! change under a key or a prefix.
//!
//! Why in memory and bounded: a deleted key leaves no record behind, so
//! only a log of changes can say that a key was deleted after version n.
//! The log covers every change with a version above its `floor`; older
//! questions are answered "unknown", and a blocking query then returns at
//! once (as Consul's may: a client loops on the index anyway).
//!
//! Cost: nothing is recorded until the first blocking query (the writer
//! pays a fence and an atomic load per view until then); from then on, per view, one
//! short lock, a copy of each changed key, and a hash lookup per changed
//! key and distinct prefix length waited on. It never stops recording
//! once started: the log's bounds are its cost.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, fence};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use strata_storage::{PublishObserver, Published};
use tokio::sync::Notify;

/// Changed keys the log keeps (the oldest go first).
pub const CHANGE_LOG_KEYS_MAX: usize = 100_000;
/// Bytes of changed keys the log keeps.
pub const CHANGE_LOG_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Requests waiting at once in blocking queries; more are refused (HTTP
/// 429) rather than queued.
pub const BLOCKING_QUERIES_MAX: usize = 1024;

/// What a blocking query watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Key(Bytes),
    /// Every key that starts with it ("" is every key).
    Prefix(Bytes),
}

impl Scope {
    pub fn covers(&self, key: &[u8]) -> bool {
        match self {
            Scope::Key(k) => k[..] == *key,
            Scope::Prefix(p) => key.starts_with(p),
        }
    }
}

/// Whether anything in a scope changed after a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Since {
    Changed,
    Unchanged,
    /// The version is older than what the log covers.
    Unknown,
}

/// Refused: [`BLOCKING_QUERIES_MAX`] requests wait already.
#[derive(Debug)]
pub struct Busy;

pub struct ChangeFeed {
    /// Set by the first blocking query; the writer checks it first.
    recording: AtomicBool,
    inner: Mutex<Feed>,
}

struct Feed {
    /// Every change with a version above it is in `log`.
    floor: u64,
    log: VecDeque<Change>,
    log_bytes: usize,
    waiters: Waiters,
    next_id: u64,
}

struct Change {
    /// The version of the view that published it: the log is in this
    /// order (a view's own changes may have lower versions, below it).
    published: u64,
    version: u64,
    /// None: every key (FLUSHALL, a snapshot installed).
    key: Option<Bytes>,
}

/// The waiting requests, found by the keys a view changed: by exact key,
/// and by prefix, looked up once per distinct prefix length.
#[derive(Default)]
struct Waiters {
    keys: HashMap<Bytes, Vec<(u64, Arc<Notify>)>>,
    prefixes: HashMap<Bytes, Vec<(u64, Arc<Notify>)>>,
    /// Prefix length → how many prefixes of that length are waited on.
    prefix_lens: BTreeMap<usize, usize>,
    count: usize,
}

impl Waiters {
    fn add(&mut self, id: u64, scope: &Scope, wake: Arc<Notify>) {
        let (map, key) = match scope {
            Scope::Key(k) => (&mut self.keys, k),
            Scope::Prefix(p) => {
                *self.prefix_lens.entry(p.len()).or_default() += 1;
                (&mut self.prefixes, p)
            }
        };
        map.entry(key.clone()).or_default().push((id, wake));
        self.count += 1;
    }

    /// Removes waiter `id` (gone: a timeout), if it is still there.
    fn remove(&mut self, id: u64, scope: &Scope) {
        let (map, key) = match scope {
            Scope::Key(k) => (&mut self.keys, k),
            Scope::Prefix(p) => (&mut self.prefixes, p),
        };
        let Some(list) = map.get_mut(key) else {
            return;
        };
        let before = list.len();
        list.retain(|(i, _)| *i != id);
        let removed = before - list.len();
        if list.is_empty() {
            map.remove(key);
        }
        let prefix_len = match scope {
            Scope::Key(_) => None,
            Scope::Prefix(p) => Some(p.len()),
        };
        self.forget(prefix_len, removed);
    }

    /// `removed` waiters left, on a prefix of `prefix_len` bytes if any.
    fn forget(&mut self, prefix_len: Option<usize>, removed: usize) {
        self.count -= removed;
        if let Some(len) = prefix_len
            && removed > 0
            && let Some(n) = self.prefix_lens.get_mut(&len)
        {
            *n -= removed;
            if *n == 0 {
                self.prefix_lens.remove(&len);
            }
        }
    }

    /// Wakes (and removes) every waiter whose scope covers `key`.
    fn wake_for(&mut self, key: &[u8]) {
        if let Some(list) = self.keys.remove(key) {
            let n = list.len();
            list.into_iter().for_each(|(_, w)| w.notify_one());
            self.count -= n;
        }
        let lens: Vec<usize> = self
            .prefix_lens
            .range(..=key.len())
            .map(|(l, _)| *l)
            .collect();
        for len in lens {
            if let Some(list) = self.prefixes.remove(&key[..len]) {
                let n = list.len();
                list.into_iter().for_each(|(_, w)| w.notify_one());
                self.forget(Some(len), n);
            }
        }
    }

    fn wake_all(&mut self) {
        for (_, list) in self.keys.drain().chain(self.prefixes.drain()) {
            list.into_iter().for_each(|(_, w)| w.notify_one());
        }
        self.prefix_lens.clear();
        self.count = 0;
    }
}

impl Default for ChangeFeed {
    fn default() -> Self {
        ChangeFeed {
            recording: AtomicBool::new(false),
            inner: Mutex::new(Feed {
                floor: 0,
                log: VecDeque::new(),
                log_bytes: 0,
                waiters: Waiters::default(),
                next_id: 0,
            }),
        }
    }
}

impl ChangeFeed {
    fn lock(&self) -> MutexGuard<'_, Feed> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts recording if it has not started, from the version
    /// `published` loads. Here the flag is stored, then a fence, then the
    /// version loaded; the writer stores a view's version, then (in
    /// `published`) a fence, then loads the flag. With the two SeqCst
    /// fences, one side sees the other's store: either the writer records
    /// that view, or its version is at most the floor.
    fn start(&self, feed: &mut Feed, published: impl FnOnce() -> u64) {
        if !self.recording.load(Relaxed) {
            self.recording.store(true, Relaxed);
            fence(SeqCst);
            feed.floor = published();
        }
    }

    /// Whether anything in `scope` changed after `since`; if not, a
    /// registration woken by the next change in it. `published` loads
    /// the store's published version (recording starts here).
    pub fn register(
        self: &Arc<Self>,
        scope: Scope,
        since: u64,
        published: impl FnOnce() -> u64,
    ) -> Result<Registration, Busy> {
        let mut feed = self.lock();
        self.start(&mut feed, published);
        let state = feed.since(&scope, since);
        let wake = Arc::new(Notify::new());
        if state != Since::Unchanged {
            return Ok(Registration {
                feed: Arc::clone(self),
                id: None,
                scope,
                wake,
                state,
            });
        }
        if feed.waiters.count >= BLOCKING_QUERIES_MAX {
            return Err(Busy);
        }
        let id = feed.next_id;
        feed.next_id += 1;
        feed.waiters.add(id, &scope, Arc::clone(&wake));
        Ok(Registration {
            feed: Arc::clone(self),
            id: Some(id),
            scope,
            wake,
            state,
        })
    }

    /// The keys in `scope` changed after `since`, each with its latest
    /// change's version, in key order; None when the log does not reach
    /// back to `since` (or more than `keys_max` keys changed).
    pub fn changed_keys(
        &self,
        scope: &Scope,
        since: u64,
        keys_max: usize,
        published: impl FnOnce() -> u64,
    ) -> Option<Vec<(Bytes, u64)>> {
        let mut feed = self.lock();
        self.start(&mut feed, published);
        if since < feed.floor {
            return None;
        }
        let mut found: BTreeMap<Bytes, u64> = BTreeMap::new();
        for c in feed.log.iter().rev() {
            if c.published <= since {
                break;
            }
            if c.version <= since {
                continue;
            }
            match &c.key {
                // Every key changed: the caller lists them all.
                None => return None,
                Some(k) if scope.covers(k) => {
                    let v = found.entry(k.clone()).or_default();
                    *v = (*v).max(c.version);
                    if found.len() > keys_max {
                        return None;
                    }
                }
                Some(_) => {}
            }
        }
        Some(found.into_iter().collect())
    }

    /// Waiting requests now (tests, INFO).
    pub fn waiting(&self) -> usize {
        self.lock().waiters.count
    }
}

impl Feed {
    fn since(&self, scope: &Scope, since: u64) -> Since {
        if since < self.floor {
            return Since::Unknown;
        }
        for c in self.log.iter().rev() {
            if c.published <= since {
                break;
            }
            let covered = c.key.as_ref().is_none_or(|k| scope.covers(k));
            if c.version > since && covered {
                return Since::Changed;
            }
        }
        Since::Unchanged
    }

    fn push(&mut self, change: Change) {
        self.log_bytes += change.key.as_ref().map_or(0, Bytes::len);
        self.log.push_back(change);
        while self.log.len() > CHANGE_LOG_KEYS_MAX || self.log_bytes > CHANGE_LOG_BYTES_MAX {
            let Some(old) = self.log.pop_front() else {
                break;
            };
            self.log_bytes -= old.key.as_ref().map_or(0, Bytes::len);
            self.floor = self.floor.max(old.version);
        }
    }
}

impl PublishObserver for ChangeFeed {
    fn published(&self, p: &Published<'_>) {
        // The writer stored `p.version` before calling: see `start`.
        fence(SeqCst);
        if !self.recording.load(Relaxed) {
            return;
        }
        let mut feed = self.lock();
        if p.everything {
            feed.push(Change {
                published: p.version,
                version: p.version,
                key: None,
            });
            feed.waiters.wake_all();
        }
        for (key, record) in p.keys {
            // A deletion carries no version: the view's.
            let version = record.as_ref().map_or(p.version, |r| r.version);
            debug_assert!(version <= p.version, "a change newer than its view");
            feed.push(Change {
                published: p.version,
                version,
                // A copy: the key may be a slice of a whole request frame.
                key: Some(Bytes::copy_from_slice(key)),
            });
            if feed.waiters.count > 0 {
                feed.waiters.wake_for(key);
            }
        }
    }
}

/// A blocking query's place among the waiters; leaves it when dropped.
pub struct Registration {
    feed: Arc<ChangeFeed>,
    id: Option<u64>,
    scope: Scope,
    wake: Arc<Notify>,
    /// What the log said when it registered.
    pub state: Since,
}

impl Registration {
    /// Resolves at the first change in its scope published after it
    /// registered (at once if one came already). Cancel-safe.
    pub async fn changed(&self) {
        self.wake.notified().await;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.feed.lock().waiters.remove(id, &self.scope);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_storage::Record;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn view(feed: &ChangeFeed, version: u64, keys: &[(&str, bool)]) {
        let keys: Vec<(Bytes, Option<Record>)> = keys
            .iter()
            .map(|(k, live)| {
                let r = live.then(|| Record::new(b("v"), 0).with_version(version));
                (b(k), r)
            })
            .collect();
        feed.published(&Published {
            version,
            keys: &keys,
            everything: false,
        });
    }

    #[tokio::test]
    async fn waiters_wake_on_their_scope_only_and_the_log_answers_since() {
        let feed = Arc::new(ChangeFeed::default());
        view(&feed, 5, &[("a", true)]);
        // Not recording yet: anything before the start is unknown.
        let r = feed.register(Scope::Key(b("a")), 3, || 5).unwrap();
        assert_eq!(r.state, Since::Unknown);
        drop(r);
        let key = feed.register(Scope::Key(b("a")), 5, || 5).unwrap();
        let prefix = feed.register(Scope::Prefix(b("p/")), 5, || 5).unwrap();
        let other = feed.register(Scope::Prefix(b("q")), 5, || 5).unwrap();
        assert_eq!(key.state, Since::Unchanged);
        assert_eq!(feed.waiting(), 3);
        view(&feed, 6, &[("p/x", false), ("b", true)]);
        let bounded = std::time::Duration::from_secs(5);
        tokio::time::timeout(bounded, prefix.changed())
            .await
            .unwrap();
        assert_eq!(feed.waiting(), 2, "woken waiters leave");
        view(&feed, 7, &[("a", true)]);
        tokio::time::timeout(bounded, key.changed()).await.unwrap();
        let early = std::time::Duration::from_millis(20);
        assert!(tokio::time::timeout(early, other.changed()).await.is_err());
        drop(other);
        assert_eq!(feed.waiting(), 0);
        // The log: a deletion is a change; per key, its latest version.
        let scope = Scope::Prefix(b(""));
        assert_eq!(
            feed.register(scope.clone(), 6, || 7).unwrap().state,
            Since::Changed
        );
        assert_eq!(
            feed.register(scope.clone(), 7, || 7).unwrap().state,
            Since::Unchanged
        );
        let got = feed.changed_keys(&scope, 5, 10, || 7).unwrap();
        assert_eq!(got, vec![(b("a"), 7), (b("b"), 6), (b("p/x"), 6)]);
        assert_eq!(
            feed.changed_keys(&Scope::Prefix(b("p/")), 6, 10, || 7),
            Some(vec![])
        );
        assert_eq!(
            feed.changed_keys(&scope, 4, 10, || 7),
            None,
            "before the floor"
        );
        assert_eq!(feed.changed_keys(&scope, 5, 2, || 7), None, "too many");
        // FLUSHALL: everything changed, and every waiter wakes.
        let any = feed.register(Scope::Key(b("zz")), 7, || 7).unwrap();
        feed.published(&Published {
            version: 8,
            keys: &[],
            everything: true,
        });
        tokio::time::timeout(bounded, any.changed()).await.unwrap();
        assert_eq!(
            feed.register(Scope::Key(b("zz")), 7, || 8).unwrap().state,
            Since::Changed
        );
        assert_eq!(feed.changed_keys(&scope, 7, 10, || 8), None);
    }

    #[test]
    fn waiters_and_the_log_are_bounded() {
        let feed = Arc::new(ChangeFeed::default());
        let mut held = Vec::new();
        for i in 0..BLOCKING_QUERIES_MAX {
            let scope = Scope::Prefix(Bytes::from(format!("k{i}")));
            held.push(feed.register(scope, 0, || 0).unwrap());
        }
        assert!(feed.register(Scope::Key(b("x")), 0, || 0).is_err());
        held.pop();
        assert!(feed.register(Scope::Key(b("x")), 0, || 0).is_ok());
        drop(held);
        let keys: Vec<(Bytes, Option<Record>)> = (0..CHANGE_LOG_KEYS_MAX / 2)
            .map(|i| (Bytes::from(format!("key{i}")), None))
            .collect();
        for v in 1..=3 {
            feed.published(&Published {
                version: v,
                keys: &keys,
                everything: false,
            });
        }
        let f = feed.lock();
        assert!(f.log.len() <= CHANGE_LOG_KEYS_MAX);
        assert_eq!(f.floor, 1, "the oldest view's changes are gone");
        drop(f);
        let scope = Scope::Prefix(b(""));
        assert_eq!(feed.register(scope, 0, || 3).unwrap().state, Since::Unknown);
    }
}
