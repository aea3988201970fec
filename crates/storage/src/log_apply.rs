//! Applying a replicated log: the writer-thread side of
//! [`crate::ReplicatedStore`].
//!
//! The replication layer (crates/replication) hands committed log entries
//! to [`crate::ReplicatedStore::apply_log`], which runs [`apply_log`] on the
//! writer thread with the same state machine as the single-node path
//! ([`crate::mutation::apply`]) against the same [`GroupState`]. With the
//! effects of each engine batch it writes the replication layer's *applied
//! mark* (opaque bytes: its last applied log id), so after a crash the data
//! and the mark agree: an entry is either applied and marked, or neither,
//! and is never applied twice.
//!
//! Nothing here fsyncs data writes: the log ([`crate::LogStore`]) lives in a
//! second keyspace of the same database, so the fsync that makes the log
//! durable also covers every batch applied before it, and after a crash the
//! journal's order keeps the applied state a prefix of the log.
//!
//! Retry dedupe: an entry can carry a [`RequestId`]; its outcome is
//! recorded with the data, in the same batch (`requests.rs`), and a later
//! entry with the same id and time is answered from the record instead of
//! being applied.
//!
//! Free functions over the [`Writer`], not methods: the writer's own
//! `impl` stays whole in `commit.rs`.

use std::collections::HashMap;

use bytes::Bytes;
use fjall::PersistMode;
use serde::{Deserialize, Serialize};

use crate::commit::Writer;
use crate::engine::{
    DEDUPE_PREFIX, ENGINE_KEY_SIZE_BYTES_MAX, ENGINE_VALUE_SIZE_BYTES_MAX, Engine, META_APPLIED,
    META_COUNTS, META_DELETED, TAG_DATA, TAG_EXPIRY, TAG_META, check_value_size, corrupt, decode,
    decode_u64, dedupe_key, dedupe_range_before, encode_u64, is_dedupe_key,
};
use crate::error::Result;
use crate::mutation::{self, Limits, Mutation, MutationError, Op, Outcome};
use crate::read_cache::ReadCache;
use crate::record::Record;
use crate::requests::{
    RECORD_BYTES_MAX, RECORDED_OUTCOME_BYTES_MAX, Recorded, RequestId, RequestKey, decode_record,
    encode_record,
};
use crate::search::catalog::{Catalog, Latest};
use crate::state::{Counts, GroupState, split_expiry_key};
use std::sync::Arc;
use strata_search::keys::TAG_SEARCH;

/// One committed entry of the replicated log as the state machine sees it.
/// Its encoding is the replication layer's (the log format, see
/// `tests/log_format.rs`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// None: the entry changes nothing but the applied mark (blank or
    /// membership entries).
    pub mutation: Option<Mutation>,
    /// Retry dedupe id; None = no dedupe.
    pub request: Option<RequestId>,
    /// True if this request may have been proposed before (a resend). Only
    /// then is its dedupe record looked up: a first proposal cannot have
    /// one, and skipping the engine read for it saves a point lookup (bloom
    /// filter probes across every table) per write. The record is written
    /// either way, for a later resend to find. The flag is in the log, so
    /// every replica decides alike.
    pub retry: bool,
    /// Limits to apply with (carried in the log so every replica decides alike).
    pub limits: Limits,
    /// Opaque bytes owned by the replication layer (last applied log id +
    /// membership). Written under meta key `m` ++ "raft.applied" in the SAME
    /// engine batch as the effects of this entry.
    pub applied_mark: Bytes,
    /// The Raft log index of the entry this command belongs to: the
    /// modification version of every record it writes (the same on every
    /// replica, and growing with the log), and the version of the state
    /// once it is applied. Strictly increasing from entry to entry.
    pub index: u64,
}

/// Raw snapshot entries, as produced by [`crate::Snapshot::export`].
pub type SnapshotEntries = Box<dyn Iterator<Item = Result<(Bytes, Bytes)>> + Send>;

/// Snapshot installation writes in batches of at most this many entries or
/// bytes, so that a large snapshot never sits in memory whole.
const INSTALL_BATCH_ENTRIES_MAX: usize = 4096;
const INSTALL_BATCH_SIZE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// The entries of `apply_log` not yet committed: one engine batch.
///
/// Dedupe records: ONE record per group holds the outcome of every request
/// the group applied, keyed by `dedupe_key(latest now_ms in the group,
/// first request's id)`. Why not one record per request: a record is an
/// engine insert now and a delete at eviction, which made dedupe cost two
/// of the ~five engine writes a replicated SET needed. Finding a request
/// then means scanning the records from its `now_ms` on (a record's time
/// is at least each member's), which only resends do (see
/// [`LogEntry::retry`]), and resends are rare.
struct LogGroup<'a> {
    engine: &'a Engine,
    state: GroupState<'a>,
    /// This group's requests and outcomes, in apply order: the record
    /// written at commit.
    record: Vec<Recorded>,
    /// The same, indexed for in-group lookups; built at the group's first
    /// lookup and kept up to date from then on. Why lazily: only resends
    /// look up, and they are rare, while hashing every request of every
    /// group cost 7 to 9% of a 3-node cluster's CPU under pipelined SETs
    /// (docs/perf-log/2026-11-24-cluster-encoded-once.md, "Dedupe records
    /// indexed only when a resend looks").
    recorded: Option<HashMap<RequestKey, Outcome>>,
    record_time_ms: u64,
    /// Committed records loaded for resend lookups: every record whose
    /// time is at least `loaded_from_ms`.
    loaded: HashMap<RequestKey, Outcome>,
    loaded_from_ms: Option<u64>,
    /// The applied mark of the group's last entry; None while it is empty.
    mark: Option<Bytes>,
    /// The log index of the group's last entry.
    last_index: u64,
    mutations: u64,
}

impl<'a> LogGroup<'a> {
    fn new(
        engine: &'a Engine,
        counts: Counts,
        deleted_max: u64,
        read_cache: Option<&'a ReadCache>,
        catalog: Arc<Catalog>,
    ) -> Self {
        LogGroup {
            engine,
            state: GroupState::new(engine, counts, 64)
                .with_versions(0, deleted_max)
                .with_read_cache(read_cache)
                .with_catalog(catalog),
            record: Vec::new(),
            recorded: None,
            record_time_ms: 0,
            loaded: HashMap::new(),
            loaded_from_ms: None,
            mark: None,
            last_index: 0,
            mutations: 0,
        }
    }

    /// The stored outcome of an earlier request with this key.
    fn recorded(&mut self, key: RequestKey) -> Result<Option<Outcome>> {
        let record = &self.record;
        let recorded = self.recorded.get_or_insert_with(|| {
            record
                .iter()
                .map(|r| (r.request, r.outcome.clone()))
                .collect()
        });
        if let Some(outcome) = recorded.get(&key) {
            return Ok(Some(outcome.clone()));
        }
        if self.loaded_from_ms.is_none_or(|from| key.now_ms < from) {
            self.load_records(key.now_ms)?;
        }
        Ok(self.loaded.get(&key).cloned())
    }

    /// Loads every committed record with a time >= `from_ms`. Bounded by
    /// the dedupe window (older records are evicted), and by resends
    /// being rare; loaded once per group for all its resends.
    fn load_records(&mut self, from_ms: u64) -> Result<()> {
        let mut end = DEDUPE_PREFIX.to_vec();
        end.extend_from_slice(&[u8::MAX; 8]);
        end.push(u8::MAX);
        for guard in self
            .engine
            .dedupe()?
            .range::<Vec<u8>, _>(dedupe_key(from_ms, 0, 0)..end)
        {
            let (key, raw) = guard.into_inner()?;
            for member in decode_record(&key, &raw)? {
                self.loaded.insert(member.request, member.outcome);
            }
        }
        self.loaded_from_ms = Some(from_ms);
        Ok(())
    }

    fn record(&mut self, key: RequestKey, outcome: &Outcome) {
        self.record_time_ms = self.record_time_ms.max(key.now_ms);
        // A large answer (GETDEL of a big value, the reads of EXEC) is
        // not kept: a group's record holds up to thousands of answers, and
        // one over the engine's value size would stop every replica.
        let kept = if outcome.size_bytes() > RECORDED_OUTCOME_BYTES_MAX {
            Outcome::Refused(MutationError::OutcomeNotKept)
        } else {
            outcome.clone()
        };
        if let Some(recorded) = self.recorded.as_mut() {
            recorded.insert(key, kept.clone());
        }
        self.record.push(Recorded {
            request: key,
            outcome: kept,
        });
    }

    /// Puts the group's dedupe record into its batch (nothing if empty).
    fn write_record(&mut self) -> Result<()> {
        let Some(first) = self.record.first() else {
            return Ok(());
        };
        // Unique: a request is recorded once (a resend is answered from
        // the record instead), so no two groups share a first request.
        let key = dedupe_key(
            self.record_time_ms,
            first.request.session,
            first.request.seq,
        );
        let mut raw = encode_record(&key, &self.record)?;
        if raw.len() > RECORD_BYTES_MAX {
            for r in &mut self.record {
                if r.outcome.size_bytes() > 0 {
                    r.outcome = Outcome::Refused(MutationError::OutcomeNotKept);
                }
            }
            raw = encode_record(&key, &self.record)?;
        }
        check_value_size(raw.len())?;
        self.state.batch.insert(self.engine.dedupe()?, key, raw);
        Ok(())
    }
}

pub(crate) fn apply_log(w: &mut Writer, entries: Vec<LogEntry>) -> Result<Vec<Outcome>> {
    w.refuse_if_failed()?;
    let entries_len = entries.len();
    let mut outcomes = Vec::with_capacity(entries_len);
    let mut committed = false;
    let result = apply_entries(w, entries, &mut outcomes, &mut committed);
    // Also after an error: batches committed before it (a group split
    // by FLUSHALL) are state, with their applied marks.
    if committed {
        w.publish();
    }
    result.map(|()| {
        debug_assert_eq!(outcomes.len(), entries_len, "one outcome per entry");
        outcomes
    })
}

fn apply_entries(
    w: &mut Writer,
    entries: Vec<LogEntry>,
    outcomes: &mut Vec<Outcome>,
    committed: &mut bool,
) -> Result<()> {
    let engine = w.engine.clone();
    let read_cache = w.read_cache.clone();
    // The cache only while nothing is unpublished: after a FLUSHALL in
    // this batch, the engine and the published view differ.
    let mut group = LogGroup::new(
        &engine,
        w.counts,
        w.versions.deleted_max,
        w.changes.is_empty().then_some(&*read_cache),
        w.catalog.clone(),
    );
    for entry in entries {
        let LogEntry {
            mutation,
            request,
            retry,
            limits,
            applied_mark,
            index,
        } = entry;
        group.last_index = index;
        group.state.version = index;
        let Some(m) = mutation else {
            outcomes.push(Outcome::Ok);
            group.mark = Some(applied_mark);
            continue;
        };
        let dedupe = request.map(|id| RequestKey {
            now_ms: m.now_ms,
            session: id.session,
            seq: id.seq,
        });
        if retry
            && let Some(key) = dedupe
            && let Some(previous) = group.recorded(key)?
        {
            outcomes.push(previous);
            group.mark = Some(applied_mark);
            continue;
        }
        if matches!(m.op, Op::FlushAll) {
            // The engine clears a keyspace outside any batch: commit
            // what came before (with its own mark), then clear alone.
            *committed |= commit_log_group(w, group)?;
            flush_all_replicated(w, applied_mark, dedupe, index)?;
            *committed = true;
            // FLUSHALL always answers OK (see `mutation::apply`).
            outcomes.push(Outcome::Ok);
            group = LogGroup::new(
                &engine,
                w.counts,
                w.versions.deleted_max,
                None,
                w.catalog.clone(),
            );
            continue;
        }
        // An Err here leaves the group uncommitted: the caller sees the
        // failure, and the mark still names the last committed entry.
        let outcome = mutation::apply(&mut group.state, &m, &limits)?;
        if let Some(key) = dedupe {
            group.record(key, &outcome);
        }
        group.mutations += 1;
        group.mark = Some(applied_mark);
        outcomes.push(outcome);
    }
    *committed |= commit_log_group(w, group)?;
    Ok(())
}

/// Commits a group with its counters and its last entry's applied mark,
/// in one batch, without fsync. False if the group was empty.
fn commit_log_group(w: &mut Writer, mut group: LogGroup<'_>) -> Result<bool> {
    let Some(mark) = group.mark.take() else {
        return Ok(false);
    };
    group.write_record()?;
    let counts = group.state.counts;
    let deleted_max = group.state.deleted_max;
    let crate::state::Finished {
        mut batch,
        changed,
        catalog,
        lists_changed,
    } = group.state.into_batch();
    if counts != w.counts {
        batch.insert(&w.engine.data, META_COUNTS, counts.encode().to_vec());
    }
    if deleted_max != w.versions.deleted_max {
        batch.insert(&w.engine.data, META_DELETED, encode_u64(deleted_max));
    }
    let committed = check_value_size(mark.len()).and_then(|()| {
        batch.insert(&w.engine.data, META_APPLIED, mark);
        batch.commit().map_err(|e| w.fail(e))
    });
    if let Err(e) = committed {
        // Whether any of it reached the engine is unknown: the read
        // cache must drop everything at the next view, and must not be
        // given records that may never have been written.
        w.changes.all = true;
        return Err(e);
    }
    // Only committed records may be written through (`read_cache.rs`).
    w.changes.keys.extend(changed);
    w.changes.search_lists.extend(&lists_changed);
    w.counts = counts;
    w.catalog = catalog;
    w.versions.last = group.last_index;
    w.versions.deleted_max = deleted_max;
    w.count_group(group.mutations);
    Ok(true)
}

/// FLUSHALL in replicated mode: clear the data keyspace (data, expiry
/// index, counters, applied mark) in one journaled step, then write
/// zero counters, the deletion version, this entry's mark and its
/// dedupe record in one batch. Every record cleared was written by an
/// entry before this one (`index`): a key created after a WATCH and
/// cleared here is seen through `deleted_max`, the same on every
/// replica.
/// The dedupe records of earlier requests stay (their own keyspace):
/// those requests were applied, and a resend must not apply them again.
/// (If a crash leaves the mark absent, the store is rebuilt from the
/// start, and opening drops the records first:
/// `Engine::drop_dedupe_records_without_mark`.) A crash in between leaves the mark absent, so the replication
/// layer re-applies or re-installs; it never sees a cleared store that
/// claims an older entry was the last applied.
fn flush_all_replicated(
    w: &mut Writer,
    mark: Bytes,
    dedupe: Option<RequestKey>,
    index: u64,
) -> Result<()> {
    check_value_size(mark.len())?;
    w.changes.all = true;
    w.engine.data.clear().map_err(|e| w.fail(e))?;
    w.counts = Counts::default();
    w.catalog = Arc::new(Catalog::empty());
    w.versions.deleted_max = w.versions.deleted_max.max(index.saturating_sub(1));
    w.versions.last = index;
    let mut batch = w.engine.db.batch();
    batch.insert(&w.engine.data, META_COUNTS, w.counts.encode().to_vec());
    batch.insert(
        &w.engine.data,
        META_DELETED,
        encode_u64(w.versions.deleted_max),
    );
    batch.insert(&w.engine.data, META_APPLIED, mark);
    if let Some(request) = dedupe {
        let key = dedupe_key(request.now_ms, request.session, request.seq);
        let raw = encode_record(
            &key,
            &[Recorded {
                request,
                outcome: Outcome::Ok,
            }],
        )?;
        batch.insert(w.engine.dedupe()?, key, raw);
    }
    batch.commit().map_err(|e| w.fail(e))?;
    w.count_group(1);
    Ok(())
}

pub(crate) fn evict_requests(w: &mut Writer, older_than_ms: u64, max: usize) -> Result<usize> {
    w.refuse_if_failed()?;
    let dedupe = w.engine.dedupe()?;
    let mut batch = w.engine.db.batch();
    let mut removed = 0;
    if max > 0 {
        for guard in dedupe.range::<Vec<u8>, _>(dedupe_range_before(older_than_ms)) {
            let key = guard.key()?;
            batch.remove(dedupe, key);
            removed += 1;
            if removed == max {
                break;
            }
        }
    }
    if removed > 0 {
        batch.commit().map_err(|e| w.fail(e))?;
        w.publish();
    }
    Ok(removed)
}

pub(crate) fn install(
    w: &mut Writer,
    entries: SnapshotEntries,
    applied_mark: Bytes,
    applied_index: u64,
) -> Result<()> {
    w.refuse_if_failed()?;
    check_value_size(applied_mark.len())?;
    // Clearing first also removes the old applied mark, so from here
    // until the new mark is written last, a crash leaves no mark.
    w.changes.all = true;
    w.engine.data.clear().map_err(|e| w.fail(e))?;
    // The installed state's records replace ours, as its data does.
    w.engine.dedupe()?.clear().map_err(|e| w.fail(e))?;
    w.counts = Counts::default();
    // The snapshot's records keep their versions; its deletion
    // version comes with it (none from a build before versions: 0).
    w.versions.last = applied_index;
    w.versions.deleted_max = 0;
    w.catalog = Arc::new(Catalog::empty());
    // The installed state's indexes come with it, as data.
    let result = load_snapshot(w, entries, applied_mark).and_then(|()| {
        w.catalog = Arc::new(Catalog::load(&Latest(&w.engine.data))?);
        Ok(())
    });
    // Publish whatever state the store is in, even after an error: a
    // reader must not keep seeing the old data with its old mark.
    w.publish();
    result
}

fn load_snapshot(w: &mut Writer, entries: SnapshotEntries, applied_mark: Bytes) -> Result<()> {
    let data = w.engine.data.clone();
    let dedupe = w.engine.dedupe()?.clone();
    let mut batch = w.engine.db.batch();
    let mut batch_entries = 0usize;
    let mut batch_size_bytes = 0usize;
    // Counted from the records themselves, never trusted from the
    // snapshot's own counters.
    let mut counts = Counts::default();
    let mut previous: Option<Bytes> = None;
    for item in entries {
        let (key, value) = item?;
        let record = check_snapshot_entry(&key, &value, previous.as_deref())?;
        previous = Some(key.clone());
        // The snapshot's own mark and counters are replaced by the ones
        // written last; loading the mark early would let a crash leave
        // a half-loaded store that claims to be complete.
        if key.as_ref() == META_APPLIED || key.as_ref() == META_COUNTS {
            continue;
        }
        if let Some(record) = record {
            counts.keys += 1;
            if record.has_expiry() {
                counts.expiring += 1;
            }
        }
        if key.as_ref() == META_DELETED {
            w.versions.deleted_max = decode_u64(&value)
                .ok_or_else(|| corrupt(&key, "deletion version is not 8 bytes"))?;
        }
        batch_entries += 1;
        batch_size_bytes += key.len() + value.len();
        if is_dedupe_key(&key) {
            batch.insert(&dedupe, key, value);
        } else {
            batch.insert(&data, key, value);
        }
        if batch_entries >= INSTALL_BATCH_ENTRIES_MAX
            || batch_size_bytes >= INSTALL_BATCH_SIZE_BYTES_MAX
        {
            let full = std::mem::replace(&mut batch, w.engine.db.batch());
            full.commit().map_err(|e| w.fail(e))?;
            w.counts = counts;
            batch_entries = 0;
            batch_size_bytes = 0;
        }
    }
    batch.insert(&data, META_COUNTS, counts.encode().to_vec());
    batch.insert(&data, META_APPLIED, applied_mark);
    batch.commit().map_err(|e| w.fail(e))?;
    w.counts = counts;
    w.engine
        .persist(PersistMode::SyncAll)
        .map_err(|e| w.fail(e))?;
    Ok(())
}

/// Bytes from a peer's snapshot are untrusted: they must be what
/// [`crate::Snapshot::export`] produces (strictly ascending keys, known tags,
/// records that decode), and within the engine's limits. Returns the
/// decoded record of a data entry.
pub(crate) fn check_snapshot_entry(
    key: &[u8],
    value: &Bytes,
    previous: Option<&[u8]>,
) -> Result<Option<Record>> {
    if key.len() > ENGINE_KEY_SIZE_BYTES_MAX {
        return Err(corrupt(key, "snapshot key empty or too long"));
    }
    if value.len() as u64 > ENGINE_VALUE_SIZE_BYTES_MAX {
        return Err(corrupt(key, "snapshot value too long"));
    }
    if previous.is_some_and(|p| p >= key) {
        return Err(corrupt(key, "snapshot keys out of order"));
    }
    let Some((&tag, rest)) = key.split_first() else {
        return Err(corrupt(key, "snapshot key empty or too long"));
    };
    match tag {
        TAG_DATA => decode(rest, value.clone()).map(Some),
        // Checked now: a record that does not decode would only fail
        // later, at a resend, on this replica alone.
        TAG_META if is_dedupe_key(key) => decode_record(key, value).map(|_| None),
        TAG_META => Ok(None),
        TAG_EXPIRY if split_expiry_key(key).is_some() => Ok(None),
        TAG_EXPIRY => Err(corrupt(key, "bad expiry index key in snapshot")),
        // Search entries and the index catalog: data like any other; the
        // catalog is decoded (strictly) once the install is complete.
        TAG_SEARCH => Ok(None),
        _ => Err(corrupt(key, "snapshot key with an unknown tag")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The snapshot install checks each entry with the same decoders.
    #[test]
    fn snapshot_entries_are_checked_with_the_strict_decoders() {
        let dedupe = crate::engine::dedupe_key(1, 2, 3);
        let check = |key: &[u8], value: &[u8]| {
            check_snapshot_entry(key, &Bytes::copy_from_slice(value), None)
        };
        assert!(check(&dedupe, &[0]).is_ok());
        assert!(check(&dedupe, &[0, 0]).is_err());
        let record = check(b"kkey", b"\x00value").unwrap().unwrap();
        assert_eq!(record.value, Bytes::from_static(b"value"));
        assert!(check(b"kkey", b"\x07").is_err());
        assert!(check(b"", b"").is_err());
        assert!(check(b"q", b"").is_err());
    }
}
