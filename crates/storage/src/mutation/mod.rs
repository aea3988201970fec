//! Mutations: the only way state changes.
//!
//! A [`Mutation`] is self-contained and serialisable: it carries the
//! leader's clock (`now_ms`) so that applying the same sequence of mutations
//! to the same state gives the same result on every machine. That is what a
//! replicated log needs: the write path is already "append a mutation, apply
//! it in order".
//!
//! [`apply`] is the state machine. It reads through [`State`], validates
//! everything first, and only then writes, so a refused mutation changes
//! nothing and a batch (MSET) is all-or-nothing.
//!
//! Layout: this file holds the types (the log format, the answers, the
//! errors, the limits, the [`State`] a mutation sees); `apply` the state
//! machine, a dispatch with one function per [`Op`] (in `apply/strings`,
//! `apply/keys`, and `apply/exec` for transactions and their watches);
//! `numbers` the integer and float text rules; `decode` strict postcard
//! decoding.

mod apply;
mod decode;
mod numbers;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use apply::apply;
pub use decode::DECODE_NESTING_LEVELS_MAX;
pub(crate) use decode::decode_exact;
use decode::nested;
pub use numbers::{add_decimal_text, format_f64, parse_f64, parse_i64};

use crate::config::{KEY_SIZE_BYTES_LIMIT, VALUE_SIZE_BYTES_LIMIT};
use crate::record::Record;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mutation {
    /// Wall-clock time of the node that accepted the write, in Unix ms.
    /// Expiry decisions inside [`apply`] use this, never a local clock.
    pub now_ms: u64,
    pub op: Op,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetCondition {
    Always,
    /// NX: only if the key does not exist.
    IfAbsent,
    /// XX: only if the key exists.
    IfPresent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetExpiry {
    /// A plain SET removes any previous TTL.
    Clear,
    /// KEEPTTL.
    Keep,
    /// An absolute expiry time in Unix ms (EX/PX/EXAT/PXAT, already resolved).
    At(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpireCondition {
    Always,
    /// NX: only if the key has no expiry.
    IfNoExpiry,
    /// XX: only if the key has an expiry.
    IfHasExpiry,
    /// GT: only if the new expiry is later (no expiry counts as infinite).
    IfGreater,
    /// LT: only if the new expiry is earlier (no expiry counts as infinite).
    IfLess,
    /// XX LT: only if the key has an expiry and the new one is earlier.
    IfHasExpiryAndLess,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GetExChange {
    Persist,
    At(u64),
}

/// One write, as the Raft log carries it: this enum (with [`Step`],
/// [`Watched`], [`WatchedVersion`] and the enums in its fields) *is* the
/// replicated log format. postcard encodes a variant as its index and a
/// struct variant as its fields in order, so entries written by older
/// builds decode only while no variant is inserted, reordered or
/// reshaped: append new variants at the end. The golden encodings in
/// `crates/storage/tests/log_format.rs` pin every variant's bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    Set {
        key: Bytes,
        value: Bytes,
        condition: SetCondition,
        expiry: SetExpiry,
        /// SET ... GET: answer with the old value.
        return_old: bool,
    },
    /// MSET (`if_none_exist == false`) and MSETNX.
    MSet {
        pairs: Vec<(Bytes, Bytes)>,
        if_none_exist: bool,
    },
    Delete {
        keys: Vec<Bytes>,
    },
    GetDel {
        key: Bytes,
    },
    GetEx {
        key: Bytes,
        change: GetExChange,
    },
    IncrBy {
        key: Bytes,
        delta: i64,
    },
    /// The increment travels as the client's text, so the sum can be done
    /// in decimal (see [`add_decimal_text`]).
    IncrByFloat {
        key: Bytes,
        delta: Bytes,
    },
    Append {
        key: Bytes,
        value: Bytes,
    },
    SetRange {
        key: Bytes,
        offset: u64,
        value: Bytes,
    },
    Rename {
        from: Bytes,
        to: Bytes,
        if_absent: bool,
    },
    /// EXPIRE family, with the time already resolved to absolute Unix ms.
    /// May be in the past (or negative), which deletes the key.
    Expire {
        key: Bytes,
        at_ms: i64,
        condition: ExpireCondition,
    },
    Persist {
        key: Bytes,
    },
    FlushAll,
    /// Issued by the expiry sweeper: delete each key whose stored expiry is
    /// still exactly the given time and has passed at `now_ms`.
    SweepExpired {
        entries: Vec<(Bytes, u64)>,
    },
    /// A transaction (MULTI ... EXEC): every step applied in order, in one
    /// mutation, so in one group and one log entry, with nothing between
    /// them. Aborted whole (`Outcome::Aborted`) if a watched key's record
    /// is not what it was when WATCH read it. Answers `Outcome::Many`.
    /// Written by builds before record versions; still applied exactly as
    /// they did (digests), since old log entries must apply alike. This
    /// build writes [`Op::ExecVersioned`].
    Exec {
        #[serde(deserialize_with = "nested::deserialize")]
        steps: Vec<Step>,
        watched: Vec<Watched>,
    },
    /// A transaction whose watches compare modification versions
    /// ([`WatchedVersion`]), so that any write after WATCH aborts it, a
    /// write of the same value included, as in Redis. Otherwise as
    /// [`Op::Exec`]. (Appended: the enum is the log format.)
    ExecVersioned {
        #[serde(deserialize_with = "nested::deserialize")]
        steps: Vec<Step>,
        watched: Vec<WatchedVersion>,
    },
    /// A transaction guarded by exact version checks: compare-and-set by
    /// modification version, as the HTTP API's `?cas=` and `/v1/txn` offer
    /// it. Applied only if every check holds ([`VersionCheck`]); then
    /// every step in order, as [`Op::Exec`], and its reads answer each
    /// record's version too ([`Outcome::VersionedRecords`]). Answers
    /// [`Outcome::Checked`] or [`Outcome::CheckFailed`]. (Appended: the
    /// enum is the log format.)
    ExecChecked {
        #[serde(deserialize_with = "nested::deserialize")]
        steps: Vec<Step>,
        checks: Vec<VersionCheck>,
    },
    /// FT.CREATE: a search index definition
    /// (`strata_search::IndexDef::encode`, with any id: apply assigns the
    /// next one). Answers Ok, or refuses a name in use, a definition that
    /// does not decode, or one index too many. The index starts building
    /// (`Op::BackfillIndex`) unless the keys it covers fit in one page.
    /// (Appended, as every variant below: the enum is the log format.)
    CreateIndex {
        definition: Bytes,
    },
    /// FT.DROPINDEX: the index is gone at once (queries and writes stop
    /// using it); its entries are removed by `Op::PurgeIndex` pages.
    DropIndex {
        name: String,
    },
    /// Indexes up to `keys_max` stored keys the index covers after its
    /// build cursor. Answers `Int(1)` while keys remain, `Int(0)` once
    /// the index is built (or is gone).
    BackfillIndex {
        id: u32,
        keys_max: u32,
    },
    /// Removes up to `entries_max` entries of a dropped index. Answers
    /// `Int(1)` while entries remain, `Int(0)` when none are left.
    PurgeIndex {
        id: u32,
        entries_max: u32,
    },
    /// `op` with the vectors the server computed for `EMBED` fields before
    /// proposing it (replicas never run a model). A vector is stored only
    /// if the text it was computed from is still the value's
    /// ([`Embedding::text_hash`]).
    Embedded {
        #[serde(deserialize_with = "nested::deserialize")]
        op: Box<Op>,
        embeddings: Vec<Embedding>,
    },
}

/// A vector computed for one `EMBED` field of one key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    pub key: Bytes,
    pub index: u32,
    pub field: u16,
    /// `strata_search::text_hash` of the text the vector embeds.
    pub text_hash: u64,
    pub vector: Vec<f32>,
}

/// Embeddings one op may carry: a page of backfill or an MSET's keys,
/// times a few fields.
pub const EMBEDDINGS_MAX: usize = 16_384;

/// One command of a transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Step {
    /// A write; refused inside a transaction: `FlushAll`, `SweepExpired`
    /// and `Exec` (they are applied outside groups or are not commands).
    Write(Op),
    /// The live records of `keys`, seeing the transaction's earlier
    /// writes; answers `Outcome::Records`, which the server renders as the
    /// read command it stands for.
    Read { keys: Vec<Bytes> },
}

/// A key under WATCH and the digest of its live record then (None when it
/// did not exist), see [`record_digest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watched {
    pub key: Bytes,
    pub digest: Option<[u8; 32]>,
}

/// What WATCH remembered of a live record before records carried
/// versions: SHA-256 of its expiry and value. Kept to apply the
/// [`Op::Exec`] entries of older logs exactly as they were; a write of the
/// identical value and expiry is not seen as a change by it.
pub fn record_digest(record: Option<&Record>) -> Option<[u8; 32]> {
    use sha2::{Digest, Sha256};
    let r = record?;
    let mut h = Sha256::new();
    h.update(r.expire_at_ms.to_le_bytes());
    h.update(&r.value);
    Some(h.finalize().into())
}

/// A key under WATCH, for [`Op::ExecVersioned`]: whether it had a live
/// record, and `as_of`, a state version such that the record WATCH saw
/// was the key's last modification up to `as_of` (the version of the
/// state published when WATCH began, or the record's own version if it
/// is newer, see `Store::watch`).
///
/// When the transaction is applied, it is aborted if the key's stored
/// record (live or expired) has a version above `as_of` (written after
/// WATCH: a same-value SET, INCR then DECR, a RENAME onto it), if it
/// existed and is no longer live (DEL, RENAME away, expiry, FLUSHALL),
/// if it did not exist and now does, or, for a key that did not exist,
/// if any record written after `as_of` has been deleted since (it may
/// have been this key, created and deleted again: see
/// [`State::deleted_max`]). Only state and the entry decide, so every
/// replica decides alike.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchedVersion {
    pub key: Bytes,
    pub existed: bool,
    pub as_of: u64,
}

/// A check of [`Op::ExecChecked`]: the key's live record has exactly
/// this modification version (see [`Record::version`]); 0 means the key
/// has no live record. Exact, not "at most": a version the key never had
/// fails, as Consul's `cas` and `check-index` do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionCheck {
    pub key: Bytes,
    pub version: u64,
}

impl Mutation {
    /// Bytes of payload, for group-commit size limits.
    pub fn payload_size_bytes(&self) -> usize {
        self.op.payload_size_bytes()
    }

    /// Serialises for a log or the network (postcard: compact, versionable).
    pub fn to_bytes(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_stdvec(self)
    }

    /// Strict: bytes after the mutation are an error.
    pub fn from_bytes(raw: &[u8]) -> Result<Mutation, postcard::Error> {
        decode_exact(raw)
    }
}

impl Op {
    /// Bytes of payload, for group-commit size limits.
    pub fn payload_size_bytes(&self) -> usize {
        match self {
            Op::Set { key, value, .. } | Op::Append { key, value } => key.len() + value.len(),
            Op::SetRange { key, value, .. } => key.len() + value.len(),
            Op::MSet { pairs, .. } => pairs.iter().map(|(k, v)| k.len() + v.len()).sum(),
            Op::Delete { keys } => keys.iter().map(Bytes::len).sum(),
            Op::SweepExpired { entries } => entries.iter().map(|(k, _)| k.len() + 8).sum(),
            Op::GetDel { key }
            | Op::GetEx { key, .. }
            | Op::IncrBy { key, .. }
            | Op::IncrByFloat { key, .. }
            | Op::Expire { key, .. }
            | Op::Persist { key } => key.len(),
            Op::Rename { from, to, .. } => from.len() + to.len(),
            Op::FlushAll
            | Op::BackfillIndex { .. }
            | Op::PurgeIndex { .. }
            | Op::DropIndex { .. } => 16,
            Op::CreateIndex { definition } => definition.len(),
            Op::Embedded { op, embeddings } => {
                op.payload_size_bytes()
                    + embeddings
                        .iter()
                        .map(|e| e.key.len() + 4 * e.vector.len() + 14)
                        .sum::<usize>()
            }
            Op::Exec { steps, watched } => {
                steps_size_bytes(steps) + watched.iter().map(|w| w.key.len() + 32).sum::<usize>()
            }
            Op::ExecVersioned { steps, watched } => {
                steps_size_bytes(steps) + watched.iter().map(|w| w.key.len() + 9).sum::<usize>()
            }
            Op::ExecChecked { steps, checks } => {
                steps_size_bytes(steps) + checks.iter().map(|c| c.key.len() + 8).sum::<usize>()
            }
        }
    }
}

fn steps_size_bytes(steps: &[Step]) -> usize {
    steps
        .iter()
        .map(|s| match s {
            // Not descended into: refused when applied.
            Step::Write(
                Op::Exec { .. }
                | Op::ExecVersioned { .. }
                | Op::ExecChecked { .. }
                | Op::Embedded { .. },
            ) => 0,
            Step::Write(op) => op.payload_size_bytes(),
            Step::Read { keys } => keys.iter().map(Bytes::len).sum(),
        })
        .sum()
}

/// What a mutation answers. Protocol-neutral: the server maps it to RESP.
/// Serialisable because a replicated store keeps outcomes for retry dedupe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Ok,
    Nil,
    Int(i64),
    Bulk(Bytes),
    Refused(MutationError),
    /// A transaction's answers, one per step.
    Many(#[serde(deserialize_with = "nested::deserialize")] Vec<Outcome>),
    /// A transaction not applied because a watched key changed.
    Aborted,
    /// A read step's live records (value, expiry in Unix ms; 0 = none).
    Records(Vec<Option<(Bytes, u64)>>),
    /// [`Op::ExecChecked`] applied: the version its writes were stamped
    /// with, and one answer per step. (Appended, as the variants below:
    /// outcomes are kept in retry records.)
    Checked {
        version: u64,
        #[serde(deserialize_with = "nested::deserialize")]
        outcomes: Vec<Outcome>,
    },
    /// [`Op::ExecChecked`] not applied: its check number `check` (from 0)
    /// did not hold; `version` is what the key's live record had (0: no
    /// live record). Nothing was changed.
    CheckFailed {
        check: u32,
        version: u64,
    },
    /// A read step of [`Op::ExecChecked`]: the live records as (value,
    /// expiry in Unix ms (0 = none), modification version).
    VersionedRecords(Vec<Option<(Bytes, u64, u64)>>),
}

/// A mutation refused by the state machine. Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MutationError {
    #[error("value is not an integer or out of range")]
    NotInteger,
    #[error("value is not a valid float")]
    NotFloat,
    #[error("increment or decrement would overflow")]
    Overflow,
    #[error("increment would produce NaN or Infinity")]
    NanOrInfinity,
    #[error("no such key")]
    NoSuchKey,
    #[error("key too large ({len} bytes; the limit is {max}, see key-size-bytes-max)")]
    KeyTooLarge { len: usize, max: usize },
    #[error("value too large ({len} bytes; the limit is {max}, see value-size-bytes-max)")]
    ValueTooLarge { len: usize, max: usize },
    #[error("Command not allowed inside a transaction")]
    NotInTransaction,
    /// A transaction's reads would answer more than this many bytes of
    /// values: every replica keeps a write's answer for retries, so the
    /// answer of one log entry is bounded.
    #[error(
        "the reads of this transaction answer more than {max} bytes; read in smaller transactions"
    )]
    ReadResultTooLarge { max: usize },
    /// Recorded for a retry instead of a large answer: the write was
    /// applied, but its answer was too large to keep for a resend.
    #[error(
        "applied, but the answer was too large to keep for a retry; read the key to see the result"
    )]
    OutcomeNotKept,
    /// RediSearch's text. (Appended, as the variants below: outcomes are
    /// kept in retry records.)
    #[error("Index already exists")]
    IndexExists,
    /// RediSearch's text.
    #[error("Unknown Index name")]
    UnknownIndex,
    #[error("too many search indexes (the limit is {max})")]
    IndexLimit { max: usize },
    #[error("the search index definition does not decode: {reason}")]
    BadIndexDefinition { reason: String },
    #[error("too many embeddings for one write (the limit is {max})")]
    TooManyEmbeddings { max: usize },
}

/// Bytes of values that the reads of one transaction may answer. Why a
/// fixed number: the answer of a log entry is part of the replicated
/// state (retry records), so the bound must be the same on every replica,
/// whatever each one's configuration.
pub const EXEC_READ_BYTES_MAX: usize = 64 * 1024 * 1024;

impl Outcome {
    /// Bytes of values in the answer: what a retry record of it costs.
    pub fn size_bytes(&self) -> usize {
        match self {
            Outcome::Bulk(b) => b.len(),
            Outcome::Many(outcomes) | Outcome::Checked { outcomes, .. } => {
                outcomes.iter().map(Outcome::size_bytes).sum()
            }
            Outcome::VersionedRecords(records) => records
                .iter()
                .map(|r| r.as_ref().map_or(0, |(v, _, _)| v.len()))
                .sum(),
            Outcome::Records(records) => records
                .iter()
                .map(|r| r.as_ref().map_or(0, |(v, _)| v.len()))
                .sum(),
            Outcome::Ok
            | Outcome::Nil
            | Outcome::Int(_)
            | Outcome::Refused(_)
            | Outcome::Aborted
            | Outcome::CheckFailed { .. } => 0,
        }
    }
}

/// Read and write access to the state, as seen by one mutation.
pub trait State {
    /// The stored record, expired or not.
    fn load(&mut self, key: &Bytes) -> crate::Result<Option<Record>>;
    /// Stores `record` stamped with the state's current modification
    /// version (its `version` field is replaced): higher than every
    /// version stamped before, in every earlier group or log entry.
    fn put(&mut self, key: Bytes, record: Record) -> crate::Result<()>;
    /// Removes the key, and raises [`State::deleted_max`] to its record's
    /// version.
    fn delete(&mut self, key: &Bytes) -> crate::Result<()>;
    fn clear(&mut self) -> crate::Result<()>;
    /// The highest version of any record deleted so far (by DEL, expiry,
    /// RENAME, FLUSHALL...), 0 if none since versions began. Part of the
    /// state: a key that is absent at WATCH and absent at EXEC but was
    /// created and deleted in between leaves no record behind, only this.
    fn deleted_max(&self) -> u64;
    /// The version [`State::put`] stamps records with now: the same for
    /// every write of one mutation (its group's number, or its log
    /// entry's index), which [`Outcome::Checked`] reports.
    fn version(&self) -> u64;

    /// Search indexes (storage's `search` module keeps them in the same
    /// batch). The defaults are a state without search (the test
    /// models): it refuses every index.
    fn create_index(&mut self, _definition: &[u8]) -> crate::Result<Result<(), MutationError>> {
        Ok(Err(MutationError::IndexLimit { max: 0 }))
    }
    fn drop_index(&mut self, _name: &str) -> crate::Result<Result<(), MutationError>> {
        Ok(Err(MutationError::UnknownIndex))
    }
    /// One backfill page; true while keys remain.
    fn backfill_index(&mut self, _id: u32, _keys_max: u32) -> crate::Result<bool> {
        Ok(false)
    }
    /// One purge page of a dropped index; true while entries remain.
    fn purge_index(&mut self, _id: u32, _entries_max: u32) -> crate::Result<bool> {
        Ok(false)
    }
    /// The vectors of the op being applied (`Op::Embedded`); empty after.
    fn set_embeddings(&mut self, _embeddings: Vec<Embedding>) {}
}

/// Serialisable because a replicated log carries the limits with each
/// entry, so every replica refuses the same mutations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub key_size_bytes_max: usize,
    pub value_size_bytes_max: usize,
}

impl Limits {
    /// The limits `apply` enforces: the carried ones, never above what the
    /// engine can hold. Why: a log entry carries its limits, and an entry
    /// from another build, one with no limits at all, or a corrupted but
    /// checksummed one must never take a key past the engine's length
    /// (which it enforces by aborting the process, on every replica, at
    /// every replay) or a value past what one allocation should take.
    pub fn within_engine(&self) -> Limits {
        Limits {
            key_size_bytes_max: self.key_size_bytes_max.min(KEY_SIZE_BYTES_LIMIT),
            value_size_bytes_max: self.value_size_bytes_max.min(VALUE_SIZE_BYTES_LIMIT),
        }
    }

    fn key(&self, key: &[u8]) -> Result<(), MutationError> {
        if key.len() > self.key_size_bytes_max {
            return Err(MutationError::KeyTooLarge {
                len: key.len(),
                max: self.key_size_bytes_max,
            });
        }
        Ok(())
    }

    /// The engine's own bounds, for keys that are read or deleted but not
    /// stored: such a key can be longer than the configured limit (set
    /// lower after it was stored), but never longer than this.
    fn engine() -> Limits {
        Limits {
            key_size_bytes_max: KEY_SIZE_BYTES_LIMIT,
            value_size_bytes_max: VALUE_SIZE_BYTES_LIMIT,
        }
    }

    fn value_len(&self, len: usize) -> Result<(), MutationError> {
        if len > self.value_size_bytes_max {
            return Err(MutationError::ValueTooLarge {
                len,
                max: self.value_size_bytes_max,
            });
        }
        Ok(())
    }
}

impl Op {
    /// Runs `check` on every key the op names (stored, read or deleted),
    /// stopping at the first error: the checks that come before any key
    /// reaches the engine. No allocation: `apply` runs it on every write.
    pub fn try_for_each_key<'a, E>(
        &'a self,
        mut check: impl FnMut(&'a Bytes) -> Result<(), E>,
    ) -> Result<(), E> {
        self.keys_dyn(&mut check)
    }

    /// Behind a `dyn` so that a transaction's steps reuse it without a
    /// new instantiation per level.
    fn keys_dyn<'a, E>(
        &'a self,
        check: &mut dyn FnMut(&'a Bytes) -> Result<(), E>,
    ) -> Result<(), E> {
        match self {
            Op::Set { key, .. }
            | Op::GetDel { key }
            | Op::GetEx { key, .. }
            | Op::IncrBy { key, .. }
            | Op::IncrByFloat { key, .. }
            | Op::Append { key, .. }
            | Op::SetRange { key, .. }
            | Op::Expire { key, .. }
            | Op::Persist { key } => check(key),
            Op::MSet { pairs, .. } => pairs.iter().try_for_each(|(k, _)| check(k)),
            Op::Delete { keys } => keys.iter().try_for_each(check),
            Op::SweepExpired { entries } => entries.iter().try_for_each(|(k, _)| check(k)),
            Op::Rename { from, to, .. } => check(from).and_then(|()| check(to)),
            Op::FlushAll
            | Op::CreateIndex { .. }
            | Op::DropIndex { .. }
            | Op::BackfillIndex { .. }
            | Op::PurgeIndex { .. } => Ok(()),
            Op::Embedded { op, embeddings } => {
                // One level only: `apply` refuses an embedded op in an
                // embedded op, so it is not descended into twice.
                if !matches!(**op, Op::Embedded { .. }) {
                    op.keys_dyn(check)?;
                }
                embeddings.iter().try_for_each(|e| check(&e.key))
            }
            Op::Exec { steps, watched } => {
                steps_keys(steps, check)?;
                watched.iter().try_for_each(|w| check(&w.key))
            }
            Op::ExecVersioned { steps, watched } => {
                steps_keys(steps, check)?;
                watched.iter().try_for_each(|w| check(&w.key))
            }
            Op::ExecChecked { steps, checks } => {
                steps_keys(steps, check)?;
                checks.iter().try_for_each(|c| check(&c.key))
            }
        }
    }
}

fn steps_keys<'a, E>(
    steps: &'a [Step],
    check: &mut dyn FnMut(&'a Bytes) -> Result<(), E>,
) -> Result<(), E> {
    for step in steps {
        match step {
            // Refused by `Applier::exec` before any key is used; not
            // descended into, so the depth stays one.
            Step::Write(
                Op::Exec { .. }
                | Op::ExecVersioned { .. }
                | Op::ExecChecked { .. }
                | Op::Embedded { .. },
            ) => {}
            Step::Write(op) => op.keys_dyn(check)?,
            Step::Read { keys } => keys.iter().try_for_each(&mut *check)?,
        }
    }
    Ok(())
}
