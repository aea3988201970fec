//! [`PublishObserver`]: who is told of each published view's changes.
//!
//! The server's HTTP API answers blocking queries ("wait until something
//! under this prefix changes after version n"); only the writer knows
//! what each new view changes, so it tells one observer, set once at
//! startup ([`crate::Store::set_publish_observer`]). Storage keeps no
//! history itself: what to remember, and for how long, is the observer's.

use bytes::Bytes;

use crate::record::Record;

/// What one published view changed.
pub struct Published<'a> {
    /// The view's version ([`crate::Store::published_version`]): every
    /// change below has this version or a lower one, above the version of
    /// the view published before.
    pub version: u64,
    /// The keys it changed, with their new records (None: deleted), in
    /// the order they were written; a key may appear more than once.
    pub keys: &'a [(Bytes, Option<Record>)],
    /// It changed keys it cannot list (FLUSHALL, a snapshot installed).
    pub everything: bool,
}

/// Told of every view the writer publishes, after readers can see it,
/// on the writer's thread and holding its lock: it must be quick and
/// must not block (take a short lock at most, copy what it keeps, wake
/// waiters), and it must not call back into the store's writes.
pub trait PublishObserver: Send + Sync {
    fn published(&self, published: &Published<'_>);
}
