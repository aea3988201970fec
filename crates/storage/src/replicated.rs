//! Raft-replicated mode: the store as a replicated state machine.
//!
//! The replication layer (another crate; storage knows nothing of Raft)
//! hands committed log entries to [`Store::apply_log`], which applies them
//! on the writer thread with the same state machine as the single-node path
//! ([`crate::mutation::apply`]). With the effects of each engine batch it
//! writes the replication layer's *applied mark* (last applied log id), so
//! after a crash the data and the mark agree: an entry is either applied
//! and marked, or neither, and is never applied twice.
//!
//! Nothing here fsyncs data writes: the Raft log ([`crate::LogStore`]) lives
//! in a second keyspace of the same database, so the fsync that makes the
//! log durable also covers every batch applied before it, and after a crash
//! the journal's order keeps the applied state a prefix of the log.
//!
//! Retry dedupe: a client that retries a write (a lost reply, a leader
//! change) must not apply it twice. An entry can carry a [`RequestId`]; its
//! outcome is stored with the data, in the same batch, and a later entry
//! with the same id and time is answered from it instead of being applied.
//! The records are part of the replicated state (carried in snapshots), so
//! every replica decides alike however its entries are grouped. They live
//! in their own keyspace, which FLUSHALL does not clear: a resend of a
//! pipeline `[SET a][FLUSHALL][INCR b]` whose first attempt was applied
//! must be answered from the records, all three of them, rather than
//! applying `SET a` again on the flushed store.

use std::collections::HashMap;

use bytes::Bytes;
use fjall::{PersistMode, Readable};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::commit::{GroupState, Writer, WriterMsg};
use crate::engine::{
    Counts, DEDUPE_PREFIX, Engine, META_APPLIED, META_COUNTS, META_DELETED, TAG_DATA, TAG_EXPIRY,
    TAG_META, decode, decode_u64, dedupe_key, dedupe_range_before, encode_u64, is_dedupe_key,
    split_expiry_key,
};
use crate::error::{Result, StorageError};
use crate::mutation::{self, Limits, Mutation, MutationError, Op, Outcome};
use crate::raft_log::LogStore;
use crate::read_cache::ReadCache;
use crate::record::Record;
use crate::snapshot::Snapshot;
use crate::store::Store;

/// Identifies one client request across retries: the session that sent it
/// and its sequence number in that session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestId {
    pub session: u64,
    pub seq: u64,
}

/// One committed Raft log entry as the state machine sees it.
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

/// Raw snapshot entries, as produced by [`Snapshot::export`].
pub(crate) type SnapshotEntries = Box<dyn Iterator<Item = Result<(Bytes, Bytes)>> + Send>;

/// Work for the writer thread of a replicated store.
pub(crate) enum ReplicatedMsg {
    Apply {
        entries: Vec<LogEntry>,
        reply: oneshot::Sender<Result<Vec<Outcome>>>,
    },
    Install {
        entries: SnapshotEntries,
        applied_mark: Bytes,
        applied_index: u64,
        reply: oneshot::Sender<Result<()>>,
    },
    /// The log index of the last entry applied, read from the applied mark
    /// at start (`Store::resume_versions`).
    Resume {
        applied_index: u64,
        reply: oneshot::Sender<Result<()>>,
    },
    Evict {
        older_than_ms: u64,
        max: usize,
        reply: oneshot::Sender<Result<usize>>,
    },
}

/// The largest answer a retry record keeps (bytes of values); a larger
/// one is recorded as `OutcomeNotKept`. Fixed, not configured: the record
/// is replicated state, the same on every replica.
const RECORDED_OUTCOME_BYTES_MAX: usize = 16 * 1024;
/// A group's whole retry record past this (a group of very many writes
/// with answers near the limit above) keeps no answer with values at all,
/// so that it always stays far below the engine's 4 GiB value limit.
const RECORD_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Snapshot installation writes in batches of at most this many entries or
/// bytes, so that a large snapshot never sits in memory whole.
const INSTALL_BATCH_ENTRIES_MAX: usize = 4096;
const INSTALL_BATCH_SIZE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// The engine's own limits, which it enforces by panicking: bytes from a
/// peer are checked against them first.
const ENGINE_KEY_SIZE_BYTES_MAX: usize = u16::MAX as usize;
const ENGINE_VALUE_SIZE_BYTES_MAX: u64 = u32::MAX as u64;

pub(crate) fn check_value_size(len: usize) -> Result<()> {
    if len as u64 > ENGINE_VALUE_SIZE_BYTES_MAX {
        return Err(StorageError::Config(format!(
            "a value of {len} bytes is larger than the engine stores ({ENGINE_VALUE_SIZE_BYTES_MAX})"
        )));
    }
    Ok(())
}

fn corrupt(key: &[u8], reason: &'static str) -> StorageError {
    StorageError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    }
}

/// One request as the dedupe records know it: the time its mutation was
/// stamped with, and its id. A resend carries all three unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct RequestKey {
    now_ms: u64,
    session: u64,
    seq: u64,
}

/// One member of a dedupe record.
#[derive(Serialize, Deserialize)]
pub(crate) struct Recorded {
    request: RequestKey,
    outcome: Outcome,
}

pub(crate) fn encode_record(key: &[u8], members: &[Recorded]) -> Result<Vec<u8>> {
    // Cannot fail for an in-memory Vec; reported rather than unwrapped.
    postcard::to_stdvec(members).map_err(|_| corrupt(key, "dedupe record does not encode"))
}

pub(crate) fn decode_record(key: &[u8], raw: &[u8]) -> Result<Vec<Recorded>> {
    mutation::decode_exact(raw).map_err(|_| corrupt(key, "dedupe record does not decode"))
}

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
    ) -> Self {
        LogGroup {
            engine,
            state: GroupState::new(engine, counts, 64)
                .with_versions(0, deleted_max)
                .with_read_cache(read_cache),
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

impl Writer {
    pub(crate) fn handle_replicated(&mut self, msg: ReplicatedMsg) {
        match msg {
            ReplicatedMsg::Apply { entries, reply } => {
                let _ = reply.send(self.apply_log(entries));
            }
            ReplicatedMsg::Install {
                entries,
                applied_mark,
                applied_index,
                reply,
            } => {
                let _ = reply.send(self.install(entries, applied_mark, applied_index));
            }
            ReplicatedMsg::Resume {
                applied_index,
                reply,
            } => {
                self.versions.last = applied_index;
                self.publish();
                let _ = reply.send(Ok(()));
            }
            ReplicatedMsg::Evict {
                older_than_ms,
                max,
                reply,
            } => {
                let _ = reply.send(self.evict_requests(older_than_ms, max));
            }
        }
    }

    fn refuse_if_failed(&self) -> Result<()> {
        match self.failed.get() {
            Some(reason) => Err(StorageError::Failed(reason)),
            None => Ok(()),
        }
    }

    /// Records a failed write: the store refuses all writes from now on,
    /// because the engine's state after a failed write is unknown.
    fn failure(&self, e: impl Into<StorageError>) -> StorageError {
        let e = e.into();
        let reason = e.to_string();
        tracing::error!(error = %reason, "replicated write failed; refusing all further writes");
        self.failed.set(reason);
        e
    }

    fn apply_log(&mut self, entries: Vec<LogEntry>) -> Result<Vec<Outcome>> {
        self.refuse_if_failed()?;
        let mut outcomes = Vec::with_capacity(entries.len());
        let mut committed = false;
        let result = self.apply_entries(entries, &mut outcomes, &mut committed);
        // Also after an error: batches committed before it (a group split
        // by FLUSHALL) are state, with their applied marks.
        if committed {
            self.publish();
        }
        result.map(|()| outcomes)
    }

    fn apply_entries(
        &mut self,
        entries: Vec<LogEntry>,
        outcomes: &mut Vec<Outcome>,
        committed: &mut bool,
    ) -> Result<()> {
        let engine = self.engine.clone();
        let read_cache = self.read_cache.clone();
        // The cache only while nothing is unpublished: after a FLUSHALL in
        // this batch, the engine and the published view differ.
        let mut group = LogGroup::new(
            &engine,
            self.counts,
            self.versions.deleted_max,
            self.changes.is_empty().then_some(&*read_cache),
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
                *committed |= self.commit_log_group(group)?;
                self.flush_all_replicated(applied_mark, dedupe, index)?;
                *committed = true;
                // FLUSHALL always answers OK (see `mutation::apply`).
                outcomes.push(Outcome::Ok);
                group = LogGroup::new(&engine, self.counts, self.versions.deleted_max, None);
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
        *committed |= self.commit_log_group(group)?;
        Ok(())
    }

    /// Commits a group with its counters and its last entry's applied mark,
    /// in one batch, without fsync. False if the group was empty.
    fn commit_log_group(&mut self, mut group: LogGroup<'_>) -> Result<bool> {
        let Some(mark) = group.mark.take() else {
            return Ok(false);
        };
        group.write_record()?;
        let counts = group.state.counts;
        let deleted_max = group.state.deleted_max;
        let (mut batch, changed) = group.state.into_batch();
        if counts != self.counts {
            batch.insert(&self.engine.data, META_COUNTS, counts.encode().to_vec());
        }
        if deleted_max != self.versions.deleted_max {
            batch.insert(&self.engine.data, META_DELETED, encode_u64(deleted_max));
        }
        let committed = check_value_size(mark.len()).and_then(|()| {
            batch.insert(&self.engine.data, META_APPLIED, mark);
            batch.commit().map_err(|e| self.failure(e))
        });
        if let Err(e) = committed {
            // Whether any of it reached the engine is unknown: the read
            // cache must drop everything at the next view, and must not be
            // given records that may never have been written.
            self.changes.all = true;
            return Err(e);
        }
        // Only committed records may be written through (`read_cache.rs`).
        self.changes.keys.extend(changed);
        self.counts = counts;
        self.versions.last = group.last_index;
        self.versions.deleted_max = deleted_max;
        self.count_group(group.mutations);
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
        &mut self,
        mark: Bytes,
        dedupe: Option<RequestKey>,
        index: u64,
    ) -> Result<()> {
        check_value_size(mark.len())?;
        self.changes.all = true;
        self.engine.data.clear().map_err(|e| self.failure(e))?;
        self.counts = Counts::default();
        self.versions.deleted_max = self.versions.deleted_max.max(index.saturating_sub(1));
        self.versions.last = index;
        let mut batch = self.engine.db.batch();
        batch.insert(
            &self.engine.data,
            META_COUNTS,
            self.counts.encode().to_vec(),
        );
        batch.insert(
            &self.engine.data,
            META_DELETED,
            encode_u64(self.versions.deleted_max),
        );
        batch.insert(&self.engine.data, META_APPLIED, mark);
        if let Some(request) = dedupe {
            let key = dedupe_key(request.now_ms, request.session, request.seq);
            let raw = encode_record(
                &key,
                &[Recorded {
                    request,
                    outcome: Outcome::Ok,
                }],
            )?;
            batch.insert(self.engine.dedupe()?, key, raw);
        }
        batch.commit().map_err(|e| self.failure(e))?;
        self.count_group(1);
        Ok(())
    }

    fn evict_requests(&mut self, older_than_ms: u64, max: usize) -> Result<usize> {
        self.refuse_if_failed()?;
        let dedupe = self.engine.dedupe()?;
        let mut batch = self.engine.db.batch();
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
            batch.commit().map_err(|e| self.failure(e))?;
            self.publish();
        }
        Ok(removed)
    }

    fn install(
        &mut self,
        entries: SnapshotEntries,
        applied_mark: Bytes,
        applied_index: u64,
    ) -> Result<()> {
        self.refuse_if_failed()?;
        check_value_size(applied_mark.len())?;
        // Clearing first also removes the old applied mark, so from here
        // until the new mark is written last, a crash leaves no mark.
        self.changes.all = true;
        self.engine.data.clear().map_err(|e| self.failure(e))?;
        // The installed state's records replace ours, as its data does.
        self.engine.dedupe()?.clear().map_err(|e| self.failure(e))?;
        self.counts = Counts::default();
        // The snapshot's records keep their versions; its deletion
        // version comes with it (none from a build before versions: 0).
        self.versions.last = applied_index;
        self.versions.deleted_max = 0;
        let result = self.load_snapshot(entries, applied_mark);
        // Publish whatever state the store is in, even after an error: a
        // reader must not keep seeing the old data with its old mark.
        self.publish();
        result
    }

    fn load_snapshot(&mut self, entries: SnapshotEntries, applied_mark: Bytes) -> Result<()> {
        let data = self.engine.data.clone();
        let dedupe = self.engine.dedupe()?.clone();
        let mut batch = self.engine.db.batch();
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
                self.versions.deleted_max = decode_u64(&value)
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
                let full = std::mem::replace(&mut batch, self.engine.db.batch());
                full.commit().map_err(|e| self.failure(e))?;
                self.counts = counts;
                batch_entries = 0;
                batch_size_bytes = 0;
            }
        }
        batch.insert(&data, META_COUNTS, counts.encode().to_vec());
        batch.insert(&data, META_APPLIED, applied_mark);
        batch.commit().map_err(|e| self.failure(e))?;
        self.counts = counts;
        self.engine
            .persist(PersistMode::SyncAll)
            .map_err(|e| self.failure(e))?;
        Ok(())
    }
}

/// Bytes from a peer's snapshot are untrusted: they must be what
/// [`Snapshot::export`] produces (strictly ascending keys, known tags,
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
        _ => Err(corrupt(key, "snapshot key with an unknown tag")),
    }
}

impl Store {
    fn require_replicated(&self, what: &str) -> Result<()> {
        if self.inner.config.replicated {
            return Ok(());
        }
        Err(StorageError::Config(format!(
            "{what} needs a replicated store (StorageConfig::replicated)"
        )))
    }

    async fn ask_writer<T>(
        &self,
        msg: ReplicatedMsg,
        rx: oneshot::Receiver<Result<T>>,
    ) -> Result<T> {
        self.inner
            .tx
            .send(WriterMsg::Replicated(msg))
            .await
            .map_err(|_| StorageError::ShuttingDown)?;
        rx.await.map_err(|_| StorageError::ShuttingDown)?
    }

    /// Applies committed entries in order, on the writer thread, as one
    /// engine batch with the applied mark of the LAST entry (a FLUSHALL
    /// splits the batch; each part carries its own last entry's mark). No
    /// fsync. Publishes a new read view, then returns one [`Outcome`] per
    /// entry ([`Outcome::Ok`] for entries without a mutation). `Err` is a
    /// storage failure, which the caller must treat as fatal.
    ///
    /// An entry with a [`RequestId`] whose (now_ms, id) was seen before is
    /// not applied; it answers the stored outcome (refusals included).
    pub async fn apply_log(&self, entries: Vec<LogEntry>) -> Result<Vec<Outcome>> {
        self.require_replicated("apply_log")?;
        let (reply, rx) = oneshot::channel();
        self.ask_writer(ReplicatedMsg::Apply { entries, reply }, rx)
            .await
    }

    /// The applied mark in the latest published view (None on a fresh store).
    pub fn applied_mark(&self) -> Result<Option<Bytes>> {
        self.snapshot().applied_mark()
    }

    /// Physically removes dedupe records whose now_ms < `older_than_ms`, at
    /// most `max` per call (on the writer thread, one batch, no fsync).
    /// Returns how many were removed.
    pub async fn evict_requests(&self, older_than_ms: u64, max: usize) -> Result<usize> {
        self.require_replicated("evict_requests")?;
        let (reply, rx) = oneshot::channel();
        let msg = ReplicatedMsg::Evict {
            older_than_ms,
            max,
            reply,
        };
        self.ask_writer(msg, rx).await
    }

    /// Replaces the whole state with raw entries as produced by
    /// [`Snapshot::export`], on the writer thread: clears the keyspace,
    /// loads the entries in bounded batches, writes `applied_mark` LAST,
    /// fsyncs, and publishes a new view. A crash in the middle leaves the
    /// applied mark absent, never a half state that claims to be complete.
    /// Entries that do not look like an export are refused as
    /// [`StorageError::Corrupt`] (the store is then empty or half loaded,
    /// without a mark: install again).
    ///
    /// `applied_index` is the log index the snapshot ends at (in
    /// `applied_mark` too, which only the replication layer decodes): the
    /// version of the installed state (see [`LogEntry::index`]).
    pub async fn install(
        &self,
        entries: Box<dyn Iterator<Item = Result<(Bytes, Bytes)>> + Send>,
        applied_mark: Bytes,
        applied_index: u64,
    ) -> Result<()> {
        self.require_replicated("install")?;
        let (reply, rx) = oneshot::channel();
        let msg = ReplicatedMsg::Install {
            entries,
            applied_mark,
            applied_index,
            reply,
        };
        self.ask_writer(msg, rx).await
    }

    /// Tells a replicated store, once at start, the log index of the last
    /// entry applied to it, which the replication layer reads from the
    /// applied mark: the version of its state, which WATCH reads
    /// (`Store::watch`). Why not stored by the store itself: the mark
    /// already holds it, in the same batch as the effects, and a data
    /// directory of a build before versions has nothing else. Until it
    /// is called the state's version is 0, which makes WATCH rely on
    /// record versions alone.
    pub async fn resume_versions(&self, applied_index: u64) -> Result<()> {
        self.require_replicated("resume_versions")?;
        let (reply, rx) = oneshot::channel();
        let msg = ReplicatedMsg::Resume {
            applied_index,
            reply,
        };
        self.ask_writer(msg, rx).await
    }

    /// The Raft log handle. Its operations fail on a store that is not
    /// replicated (the log keyspace is opened only in replicated mode).
    pub fn log_store(&self) -> LogStore {
        LogStore::new(
            self.inner.engine.clone(),
            self.inner.stats.clone(),
            self.inner.failed.clone(),
        )
    }
}

impl Snapshot {
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

    /// The applied mark as of this snapshot (consistent with its data).
    pub fn applied_mark(&self) -> Result<Option<Bytes>> {
        Ok(self
            .snap
            .get(&self.engine.data, META_APPLIED)?
            .map(Into::into))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `disk_records` fuzz target (input `VAMA`, the record
    /// `[0]` plus one byte): a dedupe record decoded with bytes after it,
    /// as postcard's `from_bytes` ignores them.
    #[test]
    fn a_dedupe_record_with_bytes_after_it_is_corrupt() {
        assert!(decode_record(b"k", &[0]).unwrap().is_empty());
        let err = decode_record(b"k", &[0, 0]).err().expect("refused");
        assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
        // A record as the writer encodes it, then padded.
        let members = [Recorded {
            request: RequestKey {
                now_ms: 7,
                session: 1,
                seq: 2,
            },
            outcome: Outcome::Int(3),
        }];
        let mut raw = encode_record(b"k", &members).unwrap();
        assert_eq!(decode_record(b"k", &raw).unwrap().len(), 1);
        raw.push(0);
        assert!(decode_record(b"k", &raw).is_err());
    }

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
