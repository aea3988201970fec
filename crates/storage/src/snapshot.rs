//! [`Snapshot`]: a consistent, read-only view of the store.
//!
//! Taken from the latest *durable* state (see `commit.rs`): everything in it
//! has been acknowledged as durable, and nothing in it can be taken away by
//! a crash. Cheap to take (one atomic load); hold it briefly, since it keeps
//! old versions from being compacted away.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use fjall::Readable;

use crate::config::KEY_SIZE_BYTES_LIMIT;
use crate::engine::{Engine, META_APPLIED, TAG_DATA, data_key, decode, storable, user_key};
use crate::error::{Result, StorageError};
use crate::pattern::{glob_match, literal_prefix};
use crate::record::Record;

#[derive(Clone)]
pub struct Snapshot {
    pub(crate) engine: Arc<Engine>,
    pub(crate) snap: Arc<fjall::Snapshot>,
}

impl Snapshot {
    /// A live record (not expired at `now_ms`).
    pub fn get(&self, key: &[u8], now_ms: u64) -> Result<Option<Record>> {
        Ok(self
            .engine
            .snapshot_get(&self.snap, key)?
            .filter(|r| r.is_live_at(now_ms)))
    }

    /// Several keys from ONE snapshot, so MGET is a consistent view.
    pub fn get_many(&self, keys: &[Bytes], now_ms: u64) -> Result<Vec<Option<Record>>> {
        keys.iter()
            .map(|k| {
                Ok(self
                    .engine
                    .snapshot_get(&self.snap, k)?
                    .filter(|r| r.is_live_at(now_ms)))
            })
            .collect()
    }

    /// Live pairs with `start <= key <= end`, in key order, at most `limit`.
    /// The flag says whether more pairs exist past the limit.
    pub fn range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        now_ms: u64,
    ) -> Result<(Vec<(Bytes, Bytes)>, bool)> {
        let mut out = Vec::new();
        let more = self.walk_range(start, end, limit, now_ms, |k, r| out.push((k, r.value)))?;
        Ok((out, more))
    }

    /// [`Snapshot::range`] with whole records: versions and expiries.
    pub fn range_records(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        now_ms: u64,
    ) -> Result<(Vec<(Bytes, Record)>, bool)> {
        let mut out = Vec::new();
        let more = self.walk_range(start, end, limit, now_ms, |k, r| out.push((k, r)))?;
        Ok((out, more))
    }

    /// The live records whose keys start with `prefix`, in key order, at
    /// most `limit`; the flag says whether more exist past the limit.
    pub fn prefix_records(
        &self,
        prefix: &[u8],
        limit: usize,
        now_ms: u64,
    ) -> Result<(Vec<(Bytes, Record)>, bool)> {
        let mut out = Vec::new();
        if !storable(prefix) {
            // Every key under it would be longer than any stored key.
            return Ok((out, false));
        }
        let lower = data_key(prefix);
        let range = (Bound::Included(lower.clone()), Bound::Unbounded);
        for guard in self.snap.range::<Vec<u8>, _>(&self.engine.data, range) {
            let (key, raw) = guard.into_inner()?;
            if !key.starts_with(&lower) {
                break;
            }
            let record = decode(&key, raw.into())?;
            if !record.is_live_at(now_ms) {
                continue;
            }
            if out.len() == limit {
                return Ok((out, true));
            }
            out.push((user_key(&key, key.clone().into())?, record));
        }
        Ok((out, false))
    }

    /// Calls `push` for each live record with `start <= key <= end`, in
    /// key order, at most `limit` times; true if more exist past them.
    fn walk_range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        now_ms: u64,
        mut push: impl FnMut(Bytes, Record),
    ) -> Result<bool> {
        if start > end {
            return Ok(false);
        }
        let range = (storable_lower(start), storable_upper(end));
        if let (Bound::Excluded(lower), Bound::Included(upper)) = &range
            && lower >= upper
        {
            // Both ends past the storable length, with the same cut.
            return Ok(false);
        }
        let mut taken = 0;
        for guard in self.snap.range::<Vec<u8>, _>(&self.engine.data, range) {
            let (key, raw) = guard.into_inner()?;
            let record = decode(&key, raw.into())?;
            if !record.is_live_at(now_ms) {
                continue;
            }
            if taken == limit {
                return Ok(true);
            }
            taken += 1;
            push(user_key(&key, key.clone().into())?, record);
        }
        Ok(false)
    }

    /// One step of a SCAN: examines up to `count` keys after `after`
    /// (exclusive) and returns the live ones matching `pattern`, plus the
    /// key to continue after, or `None` when the iteration is complete.
    pub fn scan(
        &self,
        after: Option<&[u8]>,
        count: usize,
        pattern: Option<&[u8]>,
        now_ms: u64,
    ) -> Result<(Vec<Bytes>, Option<Bytes>)> {
        let literal = pattern.map(literal_prefix).unwrap_or(b"");
        if !storable(literal) {
            // Every match would be longer than any stored key.
            return Ok((Vec::new(), None));
        }
        let prefix = data_key(literal);
        let lower = match after.map(data_key) {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix.clone()),
        };
        let mut out = Vec::new();
        let mut last: Option<Bytes> = None;
        let range = (lower, Bound::Unbounded);
        for (examined, guard) in self
            .snap
            .range::<Vec<u8>, _>(&self.engine.data, range)
            .enumerate()
        {
            let (key, raw) = guard.into_inner()?;
            if !key.starts_with(&prefix) {
                return Ok((out, None));
            }
            if examined == count {
                return Ok((out, last));
            }
            let record = decode(&key, raw.into())?;
            let key = user_key(&key, key.clone().into())?;
            if record.is_live_at(now_ms) && pattern.is_none_or(|p| glob_match(p, &key)) {
                out.push(key.clone());
            }
            last = Some(key);
        }
        Ok((out, None))
    }

    /// Every live key matching `pattern`; refuses to build a reply of more
    /// than `keys_max` keys rather than exhausting memory.
    pub fn keys(&self, pattern: &[u8], keys_max: usize, now_ms: u64) -> Result<Vec<Bytes>> {
        let mut out = Vec::new();
        let mut after: Option<Bytes> = None;
        loop {
            let (found, next) = self.scan(after.as_deref(), 4096, Some(pattern), now_ms)?;
            out.extend(found);
            if out.len() > keys_max {
                return Err(StorageError::ResultTooLarge {
                    what: "keys",
                    limit: keys_max,
                });
            }
            match next {
                Some(n) => after = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// Every raw (key, value) of the state in key order, all tags including
    /// meta (counters, applied mark) and the dedupe records (merged in from
    /// their keyspace), for snapshot transfer. Streams from the engine;
    /// holding the iterator holds this snapshot's versions (as the Snapshot
    /// itself does).
    pub fn export(&self) -> impl Iterator<Item = Result<(Bytes, Bytes)>> + Send + 'static {
        // The engine stays open while the iterator lives, even if every
        // Store handle is dropped.
        let engine = self.engine.clone();
        let raw = move |guard: fjall::Guard| {
            let _open = &engine;
            let (key, value) = guard.into_inner()?;
            Ok((Bytes::from(key), Bytes::from(value)))
        };
        let data = self.snap.iter(&self.engine.data).map(raw.clone());
        let dedupe: Box<dyn Iterator<Item = Result<(Bytes, Bytes)>> + Send> =
            match &self.engine.dedupe {
                Some(keyspace) => Box::new(self.snap.iter(keyspace).map(raw)),
                None => Box::new(std::iter::empty()),
            };
        MergeByKey {
            a: data.peekable(),
            b: dedupe.peekable(),
        }
    }

    /// Every stored record in key order, expired or not, as (user key,
    /// record bytes as stored), for backups (`backup.rs`). Streams from the
    /// engine, and keeps it open and this snapshot's versions held while
    /// the iterator lives, as [`Snapshot::export`] does.
    pub(crate) fn records_raw(
        &self,
    ) -> impl Iterator<Item = Result<(Bytes, Bytes)>> + Send + 'static {
        let engine = self.engine.clone();
        // Every data key: the tag, then anything; the next tag is past them.
        let range = vec![TAG_DATA]..vec![TAG_DATA + 1];
        self.snap
            .range::<Vec<u8>, _>(&self.engine.data, range)
            .map(move |guard| {
                let _open = &engine;
                let (key, value) = guard.into_inner()?;
                let stored = Bytes::from(key);
                Ok((user_key(&stored, stored.clone())?, Bytes::from(value)))
            })
    }

    /// The applied mark as of this snapshot (consistent with its data).
    pub fn applied_mark(&self) -> Result<Option<Bytes>> {
        Ok(self
            .snap
            .get(&self.engine.data, META_APPLIED)?
            .map(Into::into))
    }
}

/// The lower bound of a range from `start` (inclusive), as an engine bound
/// that the engine accepts. A `start` longer than any storable key is cut
/// to the storable length `p` and made exclusive: a stored key `k` with
/// `p < k < start` would have `p` as a proper prefix, so be too long to
/// exist; the answer is exact.
fn storable_lower(start: &[u8]) -> Bound<Vec<u8>> {
    if storable(start) {
        Bound::Included(data_key(start))
    } else {
        Bound::Excluded(data_key(&start[..KEY_SIZE_BYTES_LIMIT]))
    }
}

/// The upper bound of a range to `end` (inclusive). A longer `end` is cut
/// to the storable length `p`, still inclusive: a stored key `k` with
/// `p < k <= end` would have `p` as a proper prefix, so be too long.
fn storable_upper(end: &[u8]) -> Bound<Vec<u8>> {
    let cut = end.len().min(KEY_SIZE_BYTES_LIMIT);
    Bound::Included(data_key(&end[..cut]))
}

/// Merges two iterators of (key, value), each in ascending key order, into
/// one in ascending key order. The data and dedupe keyspaces never share a
/// key (`is_dedupe_key` routes each key to one of them), so there are no
/// ties to settle; an error is passed on at once.
struct MergeByKey<A: Iterator, B: Iterator> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<A, B> Iterator for MergeByKey<A, B>
where
    A: Iterator<Item = Result<(Bytes, Bytes)>>,
    B: Iterator<Item = Result<(Bytes, Bytes)>>,
{
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        let take_a = match (self.a.peek(), self.b.peek()) {
            (None, None) => return None,
            (Some(_), None) | (Some(Err(_)), _) => true,
            (None, Some(_)) | (_, Some(Err(_))) => false,
            (Some(Ok((ka, _))), Some(Ok((kb, _)))) => ka <= kb,
        };
        if take_a { self.a.next() } else { self.b.next() }
    }
}
