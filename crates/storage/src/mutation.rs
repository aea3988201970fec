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

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

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
}

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
            Op::FlushAll => 0,
            Op::Exec { steps, watched } => {
                steps_size_bytes(steps) + watched.iter().map(|w| w.key.len() + 32).sum::<usize>()
            }
            Op::ExecVersioned { steps, watched } => {
                steps_size_bytes(steps) + watched.iter().map(|w| w.key.len() + 9).sum::<usize>()
            }
        }
    }
}

fn steps_size_bytes(steps: &[Step]) -> usize {
    steps
        .iter()
        .map(|s| match s {
            // Not descended into: refused when applied.
            Step::Write(Op::Exec { .. } | Op::ExecVersioned { .. }) => 0,
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
            Outcome::Many(outcomes) => outcomes.iter().map(Outcome::size_bytes).sum(),
            Outcome::Records(records) => records
                .iter()
                .map(|r| r.as_ref().map_or(0, |(v, _)| v.len()))
                .sum(),
            Outcome::Ok
            | Outcome::Nil
            | Outcome::Int(_)
            | Outcome::Refused(_)
            | Outcome::Aborted => 0,
        }
    }
}

/// Decodes a postcard value that must fill `raw` exactly. postcard's
/// `from_bytes` ignores bytes after the value, and bytes that decode only
/// in part are not the value that was written (docs/format.md: decoding is
/// strict everywhere).
pub(crate) fn decode_exact<'a, T: Deserialize<'a>>(raw: &'a [u8]) -> Result<T, postcard::Error> {
    match postcard::take_from_bytes(raw)? {
        (value, []) => Ok(value),
        // postcard's own error for input that does not match the type.
        _ => Err(postcard::Error::DeserializeBadEncoding),
    }
}

/// Deepest nesting that decoding accepts, counting each transaction
/// inside a transaction (`Op::Exec` in a `Step::Write`) and each answer
/// list inside an answer list (`Outcome::Many`) as one level. Why: both
/// types are recursive and decoding recurses once per level, so a log
/// entry, a peer frame or a dedupe record of 20 KiB nested 5,000 deep
/// overflowed the stack and aborted the process (found by the fuzz target
/// `disk_records`). Real values nest one level: the server never queues
/// EXEC inside MULTI, and `apply` refuses a nested transaction.
pub const DECODE_NESTING_LEVELS_MAX: usize = 16;

/// Counts decoding's nesting levels (see [`DECODE_NESTING_LEVELS_MAX`]).
/// Decoding runs on one thread from start to end, so a thread-local count
/// is the depth of the value being decoded.
mod nested {
    use std::cell::Cell;

    use serde::{Deserialize, Deserializer, de::Error};

    use super::DECODE_NESTING_LEVELS_MAX;

    thread_local! {
        static LEVELS: Cell<usize> = const { Cell::new(0) };
    }

    /// One level entered; left when dropped, on success, error or unwind.
    struct Level;

    impl Drop for Level {
        fn drop(&mut self) {
            LEVELS.with(|levels| levels.set(levels.get().saturating_sub(1)));
        }
    }

    pub fn deserialize<'de, D, T>(deserializer: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        let entered = LEVELS.with(|levels| {
            let depth = levels.get() + 1;
            levels.set(depth);
            depth
        });
        let _level = Level;
        if entered > DECODE_NESTING_LEVELS_MAX {
            return Err(D::Error::custom(format_args!(
                "values nested deeper than {DECODE_NESTING_LEVELS_MAX} levels"
            )));
        }
        T::deserialize(deserializer)
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

fn live(state: &mut impl State, key: &Bytes, now_ms: u64) -> crate::Result<Option<Record>> {
    Ok(state.load(key)?.filter(|r| r.is_live_at(now_ms)))
}

/// Writes `record`, or deletes the key if its expiry has already passed
/// (a SET with an EXAT in the past leaves no key, as in Redis).
fn store(state: &mut impl State, key: Bytes, record: Record, now_ms: u64) -> crate::Result<()> {
    if record.is_live_at(now_ms) {
        state.put(key, record)
    } else {
        state.delete(&key)
    }
}

macro_rules! refuse {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Ok(Outcome::Refused(e)),
        }
    };
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
            Op::FlushAll => Ok(()),
            Op::Exec { steps, watched } => {
                steps_keys(steps, check)?;
                watched.iter().try_for_each(|w| check(&w.key))
            }
            Op::ExecVersioned { steps, watched } => {
                steps_keys(steps, check)?;
                watched.iter().try_for_each(|w| check(&w.key))
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
            // Refused by `apply_exec` before any key is used; not
            // descended into, so the depth stays one.
            Step::Write(Op::Exec { .. } | Op::ExecVersioned { .. }) => {}
            Step::Write(op) => op.keys_dyn(check)?,
            Step::Read { keys } => keys.iter().try_for_each(&mut *check)?,
        }
    }
    Ok(())
}

/// Applies one mutation. `Err` is a storage failure; a refused command is
/// `Ok(Outcome::Refused(..))` and has changed nothing.
///
/// Total: whatever `Op` arrives (from this build's parsers, from another
/// build, or decoded from a log entry), it ends as an outcome, the same on
/// every replica; only a failing engine is an `Err`. Every key is checked
/// against the engine's length first, so none reaches the engine's
/// assertion, and the carried limits are clamped (`Limits::within_engine`).
pub fn apply(state: &mut impl State, m: &Mutation, limits: &Limits) -> crate::Result<Outcome> {
    let limits = &limits.within_engine();
    refuse!(m.op.try_for_each_key(|k| Limits::engine().key(k)));
    apply_op(state, m.now_ms, &m.op, limits)
}

fn apply_op(state: &mut impl State, now: u64, op: &Op, limits: &Limits) -> crate::Result<Outcome> {
    match op {
        Op::Set {
            key,
            value,
            condition,
            expiry,
            return_old,
        } => {
            refuse!(limits.key(key));
            refuse!(limits.value_len(value.len()));
            let old = live(state, key, now)?;
            let allowed = match condition {
                SetCondition::Always => true,
                SetCondition::IfAbsent => old.is_none(),
                SetCondition::IfPresent => old.is_some(),
            };
            let answer = if *return_old {
                old.as_ref()
                    .map_or(Outcome::Nil, |r| Outcome::Bulk(r.value.clone()))
            } else if allowed {
                Outcome::Ok
            } else {
                Outcome::Nil
            };
            if allowed {
                let expire_at_ms = match expiry {
                    SetExpiry::Clear => 0,
                    SetExpiry::Keep => old.as_ref().map_or(0, |r| r.expire_at_ms),
                    SetExpiry::At(at) => *at,
                };
                store(
                    state,
                    key.clone(),
                    Record::new(value.clone(), expire_at_ms),
                    now,
                )?;
            }
            Ok(answer)
        }
        Op::MSet {
            pairs,
            if_none_exist,
        } => {
            for (k, v) in pairs {
                refuse!(limits.key(k));
                refuse!(limits.value_len(v.len()));
            }
            if *if_none_exist {
                for (k, _) in pairs {
                    if live(state, k, now)?.is_some() {
                        return Ok(Outcome::Int(0));
                    }
                }
            }
            for (k, v) in pairs {
                state.put(k.clone(), Record::new(v.clone(), 0))?;
            }
            Ok(if *if_none_exist {
                Outcome::Int(1)
            } else {
                Outcome::Ok
            })
        }
        Op::Delete { keys } => {
            let mut deleted = 0i64;
            for k in keys {
                if let Some(r) = state.load(k)? {
                    if r.is_live_at(now) {
                        deleted += 1;
                    }
                    state.delete(k)?;
                }
            }
            Ok(Outcome::Int(deleted))
        }
        Op::GetDel { key } => {
            let old = state.load(key)?;
            if old.is_some() {
                state.delete(key)?;
            }
            Ok(match old.filter(|r| r.is_live_at(now)) {
                Some(r) => Outcome::Bulk(r.value),
                None => Outcome::Nil,
            })
        }
        Op::GetEx { key, change } => {
            let Some(old) = live(state, key, now)? else {
                return Ok(Outcome::Nil);
            };
            let expire_at_ms = match change {
                GetExChange::Persist => 0,
                GetExChange::At(at) => *at,
            };
            // As Redis: EX/PX/EXAT/PXAT always write (a WATCH of the key
            // sees it even if the time is the same), PERSIST only when it
            // removes an expiry. The data is the same either way.
            if matches!(change, GetExChange::At(_)) || expire_at_ms != old.expire_at_ms {
                store(
                    state,
                    key.clone(),
                    Record::new(old.value.clone(), expire_at_ms),
                    now,
                )?;
            }
            Ok(Outcome::Bulk(old.value))
        }
        Op::IncrBy { key, delta } => {
            refuse!(limits.key(key));
            let old = live(state, key, now)?;
            let current = match &old {
                Some(r) => refuse!(parse_i64(&r.value).ok_or(MutationError::NotInteger)),
                None => 0,
            };
            let next = refuse!(current.checked_add(*delta).ok_or(MutationError::Overflow));
            let expire_at_ms = old.as_ref().map_or(0, |r| r.expire_at_ms);
            let text = Bytes::from(next.to_string());
            state.put(key.clone(), Record::new(text, expire_at_ms))?;
            Ok(Outcome::Int(next))
        }
        Op::IncrByFloat { key, delta } => {
            refuse!(limits.key(key));
            let old = live(state, key, now)?;
            let current: &[u8] = match &old {
                Some(r) => &r.value,
                None => b"0",
            };
            let text = Bytes::from(refuse!(add_decimal_text(current, delta)));
            let expire_at_ms = old.as_ref().map_or(0, |r| r.expire_at_ms);
            state.put(key.clone(), Record::new(text.clone(), expire_at_ms))?;
            Ok(Outcome::Bulk(text))
        }
        Op::Append { key, value } => {
            refuse!(limits.key(key));
            let old = live(state, key, now)?;
            let old_len = old.as_ref().map_or(0, |r| r.value.len());
            let new_len = old_len.saturating_add(value.len());
            refuse!(limits.value_len(new_len));
            let mut buf = BytesMut::with_capacity(new_len);
            if let Some(r) = &old {
                buf.extend_from_slice(&r.value);
            }
            buf.extend_from_slice(value);
            let expire_at_ms = old.as_ref().map_or(0, |r| r.expire_at_ms);
            state.put(key.clone(), Record::new(buf.freeze(), expire_at_ms))?;
            Ok(Outcome::Int(new_len as i64))
        }
        Op::SetRange { key, offset, value } => {
            refuse!(limits.key(key));
            let old = live(state, key, now)?;
            let old_len = old.as_ref().map_or(0, |r| r.value.len());
            if value.is_empty() {
                // Redis answers the current length and creates nothing.
                return Ok(Outcome::Int(old_len as i64));
            }
            let offset = refuse!(usize::try_from(*offset).map_err(|_| {
                MutationError::ValueTooLarge {
                    len: usize::MAX,
                    max: limits.value_size_bytes_max,
                }
            }));
            let end = offset.saturating_add(value.len());
            refuse!(limits.value_len(end));
            let new_len = old_len.max(end);
            let mut buf = BytesMut::zeroed(new_len);
            if let Some(r) = &old {
                buf[..old_len].copy_from_slice(&r.value);
            }
            buf[offset..end].copy_from_slice(value);
            let expire_at_ms = old.as_ref().map_or(0, |r| r.expire_at_ms);
            state.put(key.clone(), Record::new(buf.freeze(), expire_at_ms))?;
            Ok(Outcome::Int(new_len as i64))
        }
        Op::Rename {
            from,
            to,
            if_absent,
        } => {
            refuse!(limits.key(to));
            let Some(record) = live(state, from, now)? else {
                return Ok(Outcome::Refused(MutationError::NoSuchKey));
            };
            if from == to {
                return Ok(if *if_absent {
                    Outcome::Int(0)
                } else {
                    Outcome::Ok
                });
            }
            if *if_absent && live(state, to, now)?.is_some() {
                return Ok(Outcome::Int(0));
            }
            state.delete(from)?;
            state.put(to.clone(), record)?;
            Ok(if *if_absent {
                Outcome::Int(1)
            } else {
                Outcome::Ok
            })
        }
        Op::Expire {
            key,
            at_ms,
            condition,
        } => {
            let Some(old) = live(state, key, now)? else {
                return Ok(Outcome::Int(0));
            };
            // An expiry at or before "now" deletes; clamp negatives to 1 so
            // the stored form never confuses "expired" with "no expiry" (0).
            let new_at = u64::try_from(*at_ms).unwrap_or(0).max(1);
            let current = (old.expire_at_ms != 0).then_some(old.expire_at_ms);
            let allowed = match condition {
                ExpireCondition::Always => true,
                ExpireCondition::IfNoExpiry => current.is_none(),
                ExpireCondition::IfHasExpiry => current.is_some(),
                ExpireCondition::IfGreater => current.is_some_and(|c| new_at > c),
                ExpireCondition::IfLess => current.is_none_or(|c| new_at < c),
                ExpireCondition::IfHasExpiryAndLess => current.is_some_and(|c| new_at < c),
            };
            if !allowed {
                return Ok(Outcome::Int(0));
            }
            store(state, key.clone(), Record::new(old.value, new_at), now)?;
            Ok(Outcome::Int(1))
        }
        Op::Persist { key } => {
            let Some(old) = live(state, key, now)? else {
                return Ok(Outcome::Int(0));
            };
            if !old.has_expiry() {
                return Ok(Outcome::Int(0));
            }
            state.put(key.clone(), Record::new(old.value, 0))?;
            Ok(Outcome::Int(1))
        }
        Op::FlushAll => {
            state.clear()?;
            Ok(Outcome::Ok)
        }
        Op::Exec { steps, watched } => {
            apply_exec(state, now, steps, Watches::Digests(watched), limits)
        }
        Op::ExecVersioned { steps, watched } => {
            apply_exec(state, now, steps, Watches::Versions(watched), limits)
        }
        Op::SweepExpired { entries } => {
            let mut removed = 0i64;
            for (key, at) in entries {
                if let Some(r) = state.load(key)?
                    && r.expire_at_ms == *at
                    && !r.is_live_at(now)
                {
                    state.delete(key)?;
                    removed += 1;
                }
            }
            Ok(Outcome::Int(removed))
        }
    }
}

/// A transaction's watches, in either form.
enum Watches<'a> {
    Digests(&'a [Watched]),
    Versions(&'a [WatchedVersion]),
}

impl Watches<'_> {
    /// Whether every watched key is as WATCH saw it.
    fn hold(&self, state: &mut impl State, now: u64) -> crate::Result<bool> {
        match self {
            Watches::Digests(watched) => {
                for w in *watched {
                    if record_digest(live(state, &w.key, now)?.as_ref()) != w.digest {
                        return Ok(false);
                    }
                }
            }
            Watches::Versions(watched) => {
                for w in *watched {
                    // The stored record, expired or not: one written after
                    // WATCH that has expired since was still a write.
                    let stored = state.load(&w.key)?;
                    let written_after = stored.as_ref().is_some_and(|r| r.version > w.as_of);
                    let live_now = stored.is_some_and(|r| r.is_live_at(now));
                    let deleted_after = !w.existed && state.deleted_max() > w.as_of;
                    if written_after || live_now != w.existed || deleted_after {
                        return Ok(false);
                    }
                }
            }
        }
        Ok(true)
    }
}

/// A transaction: the watch check, then every step in order through the
/// same `state`, so a step sees the earlier steps' writes. A refused step
/// changed nothing and the others still apply (Redis has no rollback).
fn apply_exec(
    state: &mut impl State,
    now: u64,
    steps: &[Step],
    watches: Watches<'_>,
    limits: &Limits,
) -> crate::Result<Outcome> {
    // Ops that are not applied through a group's state (FLUSHALL runs
    // between groups), or nested transactions: refused whole, before any
    // step runs, so the result does not depend on where they stand.
    let unfit = |s: &Step| {
        matches!(
            s,
            Step::Write(
                Op::FlushAll | Op::SweepExpired { .. } | Op::Exec { .. } | Op::ExecVersioned { .. }
            )
        )
    };
    if steps.iter().any(unfit) {
        return Ok(Outcome::Refused(MutationError::NotInTransaction));
    }
    if !watches.hold(state, now)? {
        return Ok(Outcome::Aborted);
    }
    let mut outcomes = Vec::with_capacity(steps.len());
    let mut read_bytes = 0usize;
    for step in steps {
        outcomes.push(match step {
            Step::Write(op) => apply_op(state, now, op, limits)?,
            Step::Read { keys } => {
                let mut records = Vec::with_capacity(keys.len());
                for k in keys {
                    records.push(live(state, k, now)?.map(|r| (r.value, r.expire_at_ms)));
                }
                let read = Outcome::Records(records);
                read_bytes = read_bytes.saturating_add(read.size_bytes());
                if read_bytes > EXEC_READ_BYTES_MAX {
                    Outcome::Refused(MutationError::ReadResultTooLarge {
                        max: EXEC_READ_BYTES_MAX,
                    })
                } else {
                    read
                }
            }
        });
    }
    Ok(Outcome::Many(outcomes))
}

/// Redis's `string2ll`: optional '-', no '+', no spaces, no leading zeros.
pub fn parse_i64(raw: &[u8]) -> Option<i64> {
    if raw.is_empty() || raw.len() > 20 {
        return None;
    }
    let digits = raw.strip_prefix(b"-").unwrap_or(raw);
    match digits {
        [] => return None,
        [b'0'] => return (raw.len() == 1).then_some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(raw).ok()?.parse().ok()
}

/// A float as Redis's INCRBYFLOAT accepts it: no spaces, not NaN.
/// Infinities parse (Redis then refuses the *result*, with its own error).
pub fn parse_f64(raw: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(raw).ok()?;
    if s.is_empty() || s.trim() != s {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    (!v.is_nan()).then_some(v)
}

/// INCRBYFLOAT's sum. Redis adds in 80-bit long double and prints 17
/// significant digits, so `0.1 + 0.2` answers `0.3`; plain f64 would answer
/// `0.30000000000000004`. We add exactly in decimal (28 digits) and round
/// to 17 significant digits, which gives Redis's answers for ordinary
/// inputs; numbers outside the decimal range fall back to f64. Both paths
/// are deterministic, as a replicated state machine requires.
pub fn add_decimal_text(current: &[u8], delta: &[u8]) -> Result<String, MutationError> {
    let a = parse_f64(current).ok_or(MutationError::NotFloat)?;
    let b = parse_f64(delta).ok_or(MutationError::NotFloat)?;
    let sum = a + b;
    if !sum.is_finite() {
        return Err(MutationError::NanOrInfinity);
    }
    let decimal = |raw: &[u8]| {
        let s = std::str::from_utf8(raw).ok()?;
        s.parse::<rust_decimal::Decimal>()
            .ok()
            .or_else(|| rust_decimal::Decimal::from_scientific(s).ok())
    };
    if let (Some(x), Some(y)) = (decimal(current), decimal(delta))
        && let Some(d) = x.checked_add(y).and_then(|d| d.round_sf(17))
    {
        {
            let d = d.normalize();
            return Ok(if d.is_zero() {
                "0".into()
            } else {
                d.to_string()
            });
        }
    }
    Ok(format_f64(sum))
}

/// Formats like Redis's human-readable long double: shortest exact digits,
/// no exponent, no trailing ".0".
pub fn format_f64(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    format!("{v}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A mutation that is `levels` transactions, each the one step of the
    /// one around it, as postcard bytes: the shape of the input that made
    /// the `disk_records` fuzz target overflow the stack (5,000 levels).
    fn nested_exec_bytes(levels: usize) -> Vec<u8> {
        // now_ms 1; per level Op::Exec (variant 14), one step, Step::Write
        // (variant 0); the innermost Exec without steps; no watched keys.
        let mut raw = vec![1u8];
        for _ in 0..levels - 1 {
            raw.extend_from_slice(&[14, 1, 0]);
        }
        raw.extend_from_slice(&[14, 0, 0]);
        raw.extend(std::iter::repeat_n(0u8, levels - 1));
        raw
    }

    fn nested_exec(levels: usize) -> Mutation {
        let mut op = Op::Exec {
            steps: vec![],
            watched: vec![],
        };
        for _ in 1..levels {
            op = Op::Exec {
                steps: vec![Step::Write(op)],
                watched: vec![],
            };
        }
        Mutation { now_ms: 1, op }
    }

    #[test]
    fn deeply_nested_transactions_are_refused_not_a_stack_overflow() {
        let max = DECODE_NESTING_LEVELS_MAX;
        for levels in [max + 1, 5_000, 100_000] {
            let err = Mutation::from_bytes(&nested_exec_bytes(levels)).unwrap_err();
            // The nesting refusal, not some other decoding error.
            assert_eq!(err, postcard::Error::SerdeDeCustom, "{levels}");
        }
        // Up to the limit, the bytes are exactly the value's encoding.
        for levels in [1, 2, max] {
            let raw = nested_exec_bytes(levels);
            assert_eq!(Mutation::from_bytes(&raw).unwrap(), nested_exec(levels));
            assert_eq!(nested_exec(levels).to_bytes().unwrap(), raw);
        }
        // A refusal leaves no count behind: the next decode starts at 0.
        assert!(Mutation::from_bytes(&nested_exec_bytes(max)).is_ok());
    }

    #[test]
    fn deeply_nested_versioned_transactions_are_refused_not_a_stack_overflow() {
        // As `nested_exec_bytes`, with Op::ExecVersioned (variant 15).
        let nested = |levels: usize| {
            let mut raw = vec![1u8];
            for _ in 0..levels - 1 {
                raw.extend_from_slice(&[15, 1, 0]);
            }
            raw.extend_from_slice(&[15, 0, 0]);
            raw.extend(std::iter::repeat_n(0u8, levels - 1));
            raw
        };
        let max = DECODE_NESTING_LEVELS_MAX;
        for levels in [max + 1, 5_000, 100_000] {
            let err = Mutation::from_bytes(&nested(levels)).unwrap_err();
            assert_eq!(err, postcard::Error::SerdeDeCustom, "{levels}");
        }
        let mut op = Op::ExecVersioned {
            steps: vec![],
            watched: vec![],
        };
        for _ in 1..max {
            op = Op::ExecVersioned {
                steps: vec![Step::Write(op)],
                watched: vec![],
            };
        }
        let want = Mutation { now_ms: 1, op };
        assert_eq!(Mutation::from_bytes(&nested(max)).unwrap(), want);
    }

    #[test]
    fn deeply_nested_answers_are_refused_not_a_stack_overflow() {
        let nested = |levels: usize| {
            // Outcome::Many (variant 5) of one answer, down to an empty one.
            let mut raw = [5u8, 1].repeat(levels - 1);
            raw.extend_from_slice(&[5, 0]);
            raw
        };
        let max = DECODE_NESTING_LEVELS_MAX;
        for levels in [max + 1, 100_000] {
            let err = postcard::from_bytes::<Outcome>(&nested(levels)).unwrap_err();
            assert_eq!(err, postcard::Error::SerdeDeCustom, "{levels}");
        }
        let mut want = Outcome::Many(vec![]);
        for _ in 1..max {
            want = Outcome::Many(vec![want]);
        }
        assert_eq!(postcard::from_bytes::<Outcome>(&nested(max)).unwrap(), want);
    }

    /// The simplest possible state: a map, the last version stamped, and
    /// the highest version deleted. Used to test `apply` alone.
    #[derive(Default)]
    struct MapState(BTreeMap<Bytes, Record>, u64, u64);

    impl State for MapState {
        fn load(&mut self, key: &Bytes) -> crate::Result<Option<Record>> {
            Ok(self.0.get(key).cloned())
        }
        fn put(&mut self, key: Bytes, record: Record) -> crate::Result<()> {
            self.1 += 1;
            self.0.insert(key, record.with_version(self.1));
            Ok(())
        }
        fn delete(&mut self, key: &Bytes) -> crate::Result<()> {
            if let Some(old) = self.0.remove(key) {
                self.2 = self.2.max(old.version);
            }
            Ok(())
        }
        fn clear(&mut self) -> crate::Result<()> {
            self.2 = self.1;
            self.0.clear();
            Ok(())
        }
        fn deleted_max(&self) -> u64 {
            self.2
        }
    }

    const LIMITS: Limits = Limits {
        key_size_bytes_max: 16,
        value_size_bytes_max: 32,
    };

    fn run(s: &mut MapState, now_ms: u64, op: Op) -> Outcome {
        apply(s, &Mutation { now_ms, op }, &LIMITS).unwrap()
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn set(key: &str, value: &str) -> Op {
        Op::Set {
            key: b(key),
            value: b(value),
            condition: SetCondition::Always,
            expiry: SetExpiry::Clear,
            return_old: false,
        }
    }

    #[test]
    fn parse_i64_is_strict() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b" 1",
            b"1 ",
            b"01",
            b"-0",
            b"1.0",
            b"9223372036854775808",
            b"abc",
        ] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn decimal_sums_like_redis() {
        let add = |a: &str, b: &str| add_decimal_text(a.as_bytes(), b.as_bytes());
        assert_eq!(add("0.1", "0.2").unwrap(), "0.3");
        assert_eq!(add("1.1", "2.2").unwrap(), "3.3");
        assert_eq!(add("10", "-10").unwrap(), "0");
        assert_eq!(add("5.0e3", "2.0e2").unwrap(), "5200");
        assert_eq!(add("1e300", "1").unwrap(), format_f64(1e300));
        assert_eq!(add("abc", "1"), Err(MutationError::NotFloat));
        assert_eq!(add("1", "nan"), Err(MutationError::NotFloat));
        assert_eq!(add("1", "-inf"), Err(MutationError::NanOrInfinity));
        assert_eq!(
            add("1.7976931348623157e308", "1.7976931348623157e308"),
            Err(MutationError::NanOrInfinity)
        );
    }

    #[test]
    fn float_formatting() {
        assert_eq!(format_f64(10.5 + 0.1), "10.6");
        assert_eq!(format_f64(3.0), "3");
        assert_eq!(format_f64(-0.0), "0");
        assert_eq!(format_f64(5.0e3), "5000");
    }

    #[test]
    fn set_conditions_and_get() {
        let mut s = MapState::default();
        let nx = |v: &str| Op::Set {
            key: b("k"),
            value: b(v),
            condition: SetCondition::IfAbsent,
            expiry: SetExpiry::Clear,
            return_old: false,
        };
        assert_eq!(run(&mut s, 1, nx("a")), Outcome::Ok);
        assert_eq!(run(&mut s, 1, nx("b")), Outcome::Nil);
        let get = Op::Set {
            key: b("k"),
            value: b("c"),
            condition: SetCondition::IfPresent,
            expiry: SetExpiry::Clear,
            return_old: true,
        };
        assert_eq!(run(&mut s, 1, get), Outcome::Bulk(b("a")));
        assert_eq!(s.0[&b("k")].value, b("c"));
    }

    #[test]
    fn expiry_is_decided_by_the_mutation_clock() {
        let mut s = MapState::default();
        let op = Op::Set {
            key: b("k"),
            value: b("v"),
            condition: SetCondition::Always,
            expiry: SetExpiry::At(100),
            return_old: false,
        };
        assert_eq!(run(&mut s, 50, op), Outcome::Ok);
        // At t=99 the key is live, at t=100 it is gone for every mutation.
        assert_eq!(
            run(
                &mut s,
                99,
                Op::IncrBy {
                    key: b("x"),
                    delta: 0
                }
            ),
            Outcome::Int(0)
        );
        let nx = Op::Set {
            key: b("k"),
            value: b("new"),
            condition: SetCondition::IfAbsent,
            expiry: SetExpiry::Clear,
            return_old: false,
        };
        assert_eq!(run(&mut s, 99, nx.clone()), Outcome::Nil);
        assert_eq!(run(&mut s, 100, nx), Outcome::Ok);
        // A SET whose expiry already passed leaves no key.
        let past = Op::Set {
            key: b("p"),
            value: b("v"),
            condition: SetCondition::Always,
            expiry: SetExpiry::At(10),
            return_old: false,
        };
        assert_eq!(run(&mut s, 50, past), Outcome::Ok);
        assert!(!s.0.contains_key(&b("p")));
    }

    #[test]
    fn mset_is_all_or_nothing_on_limits() {
        let mut s = MapState::default();
        let op = Op::MSet {
            pairs: vec![(b("a"), b("1")), (b("b"), Bytes::from(vec![0u8; 33]))],
            if_none_exist: false,
        };
        assert!(matches!(
            run(&mut s, 1, op),
            Outcome::Refused(MutationError::ValueTooLarge { .. })
        ));
        assert!(s.0.is_empty());
        run(&mut s, 1, set("a", "1"));
        let nx = Op::MSet {
            pairs: vec![(b("z"), b("1")), (b("a"), b("2"))],
            if_none_exist: true,
        };
        assert_eq!(run(&mut s, 1, nx), Outcome::Int(0));
        assert!(!s.0.contains_key(&b("z")));
    }

    #[test]
    fn incr_errors_change_nothing() {
        let mut s = MapState::default();
        run(&mut s, 1, set("n", "9223372036854775807"));
        assert_eq!(
            run(
                &mut s,
                1,
                Op::IncrBy {
                    key: b("n"),
                    delta: 1
                }
            ),
            Outcome::Refused(MutationError::Overflow)
        );
        run(&mut s, 1, set("t", "abc"));
        assert_eq!(
            run(
                &mut s,
                1,
                Op::IncrBy {
                    key: b("t"),
                    delta: 1
                }
            ),
            Outcome::Refused(MutationError::NotInteger)
        );
        assert_eq!(
            run(
                &mut s,
                1,
                Op::IncrByFloat {
                    key: b("t"),
                    delta: b("1.0")
                }
            ),
            Outcome::Refused(MutationError::NotFloat)
        );
        assert_eq!(s.0[&b("t")].value, b("abc"));
        assert_eq!(
            run(
                &mut s,
                1,
                Op::IncrByFloat {
                    key: b("f"),
                    delta: b("10.5")
                }
            ),
            Outcome::Bulk(b("10.5"))
        );
        assert_eq!(
            run(
                &mut s,
                1,
                Op::IncrByFloat {
                    key: b("f"),
                    delta: b("0.1")
                }
            ),
            Outcome::Bulk(b("10.6"))
        );
        assert_eq!(
            run(
                &mut s,
                1,
                Op::IncrByFloat {
                    key: b("f"),
                    delta: b("inf")
                }
            ),
            Outcome::Refused(MutationError::NanOrInfinity)
        );
    }

    #[test]
    fn setrange_and_append_respect_value_limit() {
        let mut s = MapState::default();
        assert_eq!(
            run(
                &mut s,
                1,
                Op::SetRange {
                    key: b("k"),
                    offset: 2,
                    value: b("ab")
                }
            ),
            Outcome::Int(4)
        );
        assert_eq!(s.0[&b("k")].value, Bytes::from_static(b"\0\0ab"));
        assert!(matches!(
            run(
                &mut s,
                1,
                Op::SetRange {
                    key: b("k"),
                    offset: 31,
                    value: b("ab")
                }
            ),
            Outcome::Refused(MutationError::ValueTooLarge { .. })
        ));
        assert!(matches!(
            run(
                &mut s,
                1,
                Op::Append {
                    key: b("k"),
                    value: Bytes::from(vec![1u8; 29])
                }
            ),
            Outcome::Refused(MutationError::ValueTooLarge { .. })
        ));
        assert_eq!(s.0[&b("k")].value.len(), 4);
    }

    #[test]
    fn expire_conditions() {
        let mut s = MapState::default();
        run(&mut s, 1, set("k", "v"));
        let exp = |at: i64, condition| Op::Expire {
            key: b("k"),
            at_ms: at,
            condition,
        };
        assert_eq!(
            run(&mut s, 1, exp(1000, ExpireCondition::IfHasExpiry)),
            Outcome::Int(0)
        );
        assert_eq!(
            run(&mut s, 1, exp(1000, ExpireCondition::IfGreater)),
            Outcome::Int(0)
        );
        assert_eq!(
            run(&mut s, 1, exp(1000, ExpireCondition::IfLess)),
            Outcome::Int(1)
        );
        assert_eq!(
            run(&mut s, 1, exp(2000, ExpireCondition::IfNoExpiry)),
            Outcome::Int(0)
        );
        assert_eq!(
            run(&mut s, 1, exp(2000, ExpireCondition::IfGreater)),
            Outcome::Int(1)
        );
        assert_eq!(s.0[&b("k")].expire_at_ms, 2000);
        assert_eq!(run(&mut s, 1, Op::Persist { key: b("k") }), Outcome::Int(1));
        assert_eq!(
            run(&mut s, 1, exp(-5, ExpireCondition::Always)),
            Outcome::Int(1)
        );
        assert!(s.0.is_empty());
    }

    fn exec(steps: Vec<Step>, watched: Vec<Watched>) -> Op {
        Op::Exec { steps, watched }
    }

    #[test]
    fn exec_applies_steps_in_order_and_reads_its_writes() {
        let mut s = MapState::default();
        run(&mut s, 1, set("t", "abc"));
        let op = exec(
            vec![
                Step::Write(set("a", "1")),
                Step::Write(Op::IncrBy {
                    key: b("a"),
                    delta: 2,
                }),
                Step::Write(Op::IncrBy {
                    key: b("t"),
                    delta: 1,
                }),
                Step::Read {
                    keys: vec![b("a"), b("missing")],
                },
            ],
            vec![],
        );
        assert_eq!(
            run(&mut s, 1, op),
            Outcome::Many(vec![
                Outcome::Ok,
                Outcome::Int(3),
                Outcome::Refused(MutationError::NotInteger),
                Outcome::Records(vec![Some((b("3"), 0)), None]),
            ])
        );
        assert_eq!(s.0[&b("t")].value, b("abc"));
    }

    #[test]
    fn exec_reads_answer_at_most_their_byte_bound() {
        let mut s = MapState::default();
        let big = Bytes::from(vec![b'v'; EXEC_READ_BYTES_MAX / 2 + 1]);
        s.0.insert(b("big"), Record::new(big.clone(), 0));
        let read = || Step::Read {
            keys: vec![b("big")],
        };
        let op = exec(vec![read(), Step::Write(set("a", "1")), read()], vec![]);
        assert_eq!(
            run(&mut s, 1, op),
            Outcome::Many(vec![
                Outcome::Records(vec![Some((big, 0))]),
                Outcome::Ok,
                Outcome::Refused(MutationError::ReadResultTooLarge {
                    max: EXEC_READ_BYTES_MAX
                }),
            ])
        );
        assert_eq!(s.0[&b("a")].value, b("1"), "the writes still apply");
    }

    #[test]
    fn exec_aborts_whole_when_a_watched_record_changed() {
        let mut s = MapState::default();
        run(&mut s, 1, set("w", "v"));
        let then = record_digest(s.0.get(&b("w")));
        let watched = vec![
            Watched {
                key: b("w"),
                digest: then,
            },
            Watched {
                key: b("absent"),
                digest: None,
            },
        ];
        let op = exec(vec![Step::Write(set("x", "1"))], watched.clone());
        // Unchanged: applied.
        assert_eq!(run(&mut s, 1, op.clone()), Outcome::Many(vec![Outcome::Ok]));
        // A new value, a new expiry, a deletion, expiry itself, or a
        // created key: aborted, nothing applied.
        let changes = [
            set("w", "v2"),
            Op::Expire {
                key: b("w"),
                at_ms: 1000,
                condition: ExpireCondition::Always,
            },
            Op::Delete { keys: vec![b("w")] },
            set("absent", "now"),
        ];
        for change in changes {
            let mut s = MapState::default();
            run(&mut s, 1, set("w", "v"));
            run(&mut s, 1, change.clone());
            let op = exec(vec![Step::Write(set("x", "1"))], watched.clone());
            assert_eq!(run(&mut s, 1, op), Outcome::Aborted, "{change:?}");
            assert!(!s.0.contains_key(&b("x")), "{change:?}");
        }
        let mut s = MapState::default();
        run(
            &mut s,
            1,
            Op::Set {
                key: b("w"),
                value: b("v"),
                condition: SetCondition::Always,
                expiry: SetExpiry::At(50),
                return_old: false,
            },
        );
        let watched = vec![Watched {
            key: b("w"),
            digest: record_digest(s.0.get(&b("w"))),
        }];
        let op = exec(vec![Step::Write(set("x", "1"))], watched);
        assert_eq!(
            run(&mut s, 49, op.clone()),
            Outcome::Many(vec![Outcome::Ok])
        );
        assert_eq!(run(&mut s, 50, op), Outcome::Aborted);
    }

    /// What WATCH takes of a `MapState`: whether the key is live, and
    /// the state's version (its latest stamp), as `Store::watch` does.
    fn watch(s: &MapState, key: &str, now: u64) -> WatchedVersion {
        WatchedVersion {
            key: b(key),
            existed: s.0.get(&b(key)).is_some_and(|r| r.is_live_at(now)),
            as_of: s.1,
        }
    }

    fn exec_watching(watched: Vec<WatchedVersion>) -> Op {
        Op::ExecVersioned {
            steps: vec![Step::Write(set("x", "1"))],
            watched,
        }
    }

    fn incr(key: &str, delta: i64) -> Op {
        Op::IncrBy { key: b(key), delta }
    }

    /// Starting from w = "5" (and "src" = "v", "old" = "o"), WATCH `key`
    /// at t=10, apply `changes`, then EXEC at t=20: its outcome, and
    /// whether its write landed.
    fn watch_then(key: &str, changes: &[Op]) -> (Outcome, bool) {
        let mut s = MapState::default();
        for op in [set("w", "5"), set("src", "v"), set("old", "o")] {
            run(&mut s, 1, op);
        }
        let watched = vec![watch(&s, key, 10)];
        for change in changes {
            run(&mut s, 10, change.clone());
        }
        let outcome = run(&mut s, 20, exec_watching(watched));
        (outcome, s.0.contains_key(&b("x")))
    }

    #[test]
    fn versioned_watch_aborts_on_every_write_after_it() {
        let cases: Vec<(&str, Vec<Op>)> = vec![
            ("w", vec![set("w", "5")]),
            ("w", vec![incr("w", 1), incr("w", -1)]),
            (
                "w",
                vec![Op::MSet {
                    pairs: vec![(b("w"), b("5"))],
                    if_none_exist: false,
                }],
            ),
            (
                "w",
                vec![Op::Append {
                    key: b("w"),
                    value: b(""),
                }],
            ),
            (
                "w",
                vec![Op::Expire {
                    key: b("w"),
                    at_ms: 1_000,
                    condition: ExpireCondition::Always,
                }],
            ),
            (
                "w",
                vec![
                    Op::Expire {
                        key: b("w"),
                        at_ms: 1_000,
                        condition: ExpireCondition::Always,
                    },
                    Op::Persist { key: b("w") },
                ],
            ),
            (
                "w",
                vec![Op::GetEx {
                    key: b("w"),
                    change: GetExChange::At(1_000),
                }],
            ),
            ("w", vec![Op::Delete { keys: vec![b("w")] }]),
            ("w", vec![Op::Delete { keys: vec![b("w")] }, set("w", "5")]),
            ("w", vec![Op::GetDel { key: b("w") }]),
            ("w", vec![Op::FlushAll]),
            (
                "w",
                vec![Op::Rename {
                    from: b("w"),
                    to: b("w2"),
                    if_absent: false,
                }],
            ),
            (
                "src",
                vec![
                    Op::Rename {
                        from: b("src"),
                        to: b("tmp"),
                        if_absent: false,
                    },
                    Op::Rename {
                        from: b("tmp"),
                        to: b("src"),
                        if_absent: false,
                    },
                ],
            ),
            (
                "w",
                vec![Op::Rename {
                    from: b("src"),
                    to: b("w"),
                    if_absent: false,
                }],
            ),
            ("absent", vec![set("absent", "1")]),
            // Created and deleted again: absent at WATCH and at EXEC.
            (
                "absent",
                vec![
                    set("absent", "1"),
                    Op::Delete {
                        keys: vec![b("absent")],
                    },
                ],
            ),
            (
                "absent",
                vec![
                    Op::Set {
                        key: b("absent"),
                        value: b("1"),
                        condition: SetCondition::Always,
                        expiry: SetExpiry::At(15),
                        return_old: false,
                    },
                    // Expired by t=20 and never swept: still a write.
                ],
            ),
        ];
        for (key, changes) in cases {
            assert_eq!(
                watch_then(key, &changes),
                (Outcome::Aborted, false),
                "WATCH {key}, then {changes:?}"
            );
        }
    }

    #[test]
    fn versioned_watch_holds_when_nothing_changed_the_key() {
        let cases: Vec<(&str, Vec<Op>)> = vec![
            ("w", vec![]),
            ("w", vec![set("other", "1"), incr("n", 1)]),
            (
                "w",
                vec![Op::Set {
                    key: b("w"),
                    value: b("9"),
                    condition: SetCondition::IfAbsent,
                    expiry: SetExpiry::Clear,
                    return_old: false,
                }],
            ),
            ("w", vec![Op::Persist { key: b("w") }]),
            (
                "w",
                vec![Op::Expire {
                    key: b("w"),
                    at_ms: 1_000,
                    condition: ExpireCondition::IfHasExpiry,
                }],
            ),
            (
                "w",
                vec![Op::Rename {
                    from: b("w"),
                    to: b("w"),
                    if_absent: false,
                }],
            ),
            (
                "w",
                vec![Op::SetRange {
                    key: b("w"),
                    offset: 0,
                    value: b(""),
                }],
            ),
            // A refused write changes nothing.
            ("w", vec![incr("w", i64::MAX)]),
            (
                "absent",
                vec![Op::Delete {
                    keys: vec![b("absent")],
                }],
            ),
            // Deleting a record written before WATCH is no sign that the
            // absent key was created since.
            (
                "absent",
                vec![Op::Delete {
                    keys: vec![b("old")],
                }],
            ),
            ("absent", vec![Op::GetDel { key: b("absent") }]),
        ];
        for (key, changes) in cases {
            assert_eq!(
                watch_then(key, &changes),
                (Outcome::Many(vec![Outcome::Ok]), true),
                "WATCH {key}, then {changes:?}"
            );
        }
    }

    #[test]
    fn versioned_watch_and_expiry() {
        let mut s = MapState::default();
        let expiring = |key: &str, at: u64| Op::Set {
            key: b(key),
            value: b("v"),
            condition: SetCondition::Always,
            expiry: SetExpiry::At(at),
            return_old: false,
        };
        run(&mut s, 1, expiring("w", 50));
        run(&mut s, 1, expiring("gone", 5));
        let watched = vec![watch(&s, "w", 10), watch(&s, "gone", 10)];
        assert!(watched[0].existed && !watched[1].existed);
        // Live at t=49: applied. Expired at t=50 (swept or not): aborted.
        assert_eq!(
            run(&mut s, 49, exec_watching(watched.clone())),
            Outcome::Many(vec![Outcome::Ok])
        );
        assert_eq!(run(&mut s, 50, exec_watching(watched)), Outcome::Aborted);
        // A key already expired at WATCH, swept after it: no change (as
        // Redis: it was logically absent all along).
        let mut s = MapState::default();
        run(&mut s, 1, expiring("gone", 5));
        run(&mut s, 1, set("w", "v"));
        let watched = vec![watch(&s, "gone", 10)];
        let sweep = Op::SweepExpired {
            entries: vec![(b("gone"), 5)],
        };
        assert_eq!(run(&mut s, 10, sweep), Outcome::Int(1));
        assert_eq!(
            run(&mut s, 20, exec_watching(watched)),
            Outcome::Many(vec![Outcome::Ok])
        );
    }

    /// The one conservative case: a key absent at WATCH aborts when any
    /// record written after WATCH was deleted before EXEC, whichever key
    /// it was (a created-and-deleted key leaves no record to compare).
    #[test]
    fn versioned_watch_of_an_absent_key_aborts_on_a_newer_deletion() {
        let mut s = MapState::default();
        run(&mut s, 1, set("w", "v"));
        let watched = vec![watch(&s, "absent", 10), watch(&s, "w", 10)];
        run(&mut s, 10, set("other", "1"));
        run(
            &mut s,
            10,
            Op::Delete {
                keys: vec![b("other")],
            },
        );
        assert_eq!(run(&mut s, 20, exec_watching(watched)), Outcome::Aborted);
        // Watching only the present key: the same deletion changes nothing.
        let mut s = MapState::default();
        run(&mut s, 1, set("w", "v"));
        let watched = vec![watch(&s, "w", 10)];
        run(&mut s, 10, set("other", "1"));
        run(
            &mut s,
            10,
            Op::Delete {
                keys: vec![b("other")],
            },
        );
        assert_eq!(
            run(&mut s, 20, exec_watching(watched)),
            Outcome::Many(vec![Outcome::Ok])
        );
    }

    /// Records from before versions (version 0) are older than every
    /// watch: unchanged, they never abort; any write stamps past them.
    #[test]
    fn versioned_watch_of_an_old_record() {
        let mut s = MapState::default();
        s.0.insert(b("w"), Record::new(b("v"), 0));
        let watched = vec![WatchedVersion {
            key: b("w"),
            existed: true,
            as_of: 0,
        }];
        assert_eq!(
            run(&mut s, 20, exec_watching(watched.clone())),
            Outcome::Many(vec![Outcome::Ok])
        );
        run(&mut s, 20, set("w", "v"));
        assert_eq!(run(&mut s, 20, exec_watching(watched)), Outcome::Aborted);
    }

    #[test]
    fn nested_versioned_exec_is_refused() {
        let mut s = MapState::default();
        let inner = Op::ExecVersioned {
            steps: vec![],
            watched: vec![],
        };
        for op in [
            exec(vec![Step::Write(inner.clone())], vec![]),
            Op::ExecVersioned {
                steps: vec![Step::Write(set("a", "1")), Step::Write(inner)],
                watched: vec![],
            },
        ] {
            assert_eq!(
                run(&mut s, 1, op),
                Outcome::Refused(MutationError::NotInTransaction)
            );
        }
        assert!(s.0.is_empty());
    }

    #[test]
    fn exec_refuses_unfit_steps_and_checks_every_key() {
        let mut s = MapState::default();
        for unfit in [
            Op::FlushAll,
            exec(vec![], vec![]),
            Op::SweepExpired { entries: vec![] },
        ] {
            let op = exec(vec![Step::Write(set("a", "1")), Step::Write(unfit)], vec![]);
            assert_eq!(
                run(&mut s, 1, op),
                Outcome::Refused(MutationError::NotInTransaction)
            );
        }
        assert!(s.0.is_empty());
        // A key past the engine's bound anywhere refuses the whole op.
        let huge = Bytes::from(vec![b'k'; KEY_SIZE_BYTES_LIMIT + 1]);
        for op in [
            exec(
                vec![Step::Read {
                    keys: vec![huge.clone()],
                }],
                vec![],
            ),
            exec(
                vec![],
                vec![Watched {
                    key: huge.clone(),
                    digest: None,
                }],
            ),
        ] {
            assert!(matches!(
                run(&mut s, 1, op),
                Outcome::Refused(MutationError::KeyTooLarge { .. })
            ));
        }
    }

    #[test]
    fn exec_serialises() {
        let m = Mutation {
            now_ms: 7,
            op: exec(
                vec![
                    Step::Write(set("a", "1")),
                    Step::Read { keys: vec![b("a")] },
                ],
                vec![Watched {
                    key: b("a"),
                    digest: Some([3; 32]),
                }],
            ),
        };
        assert_eq!(Mutation::from_bytes(&m.to_bytes().unwrap()).unwrap(), m);
        let o = Outcome::Many(vec![Outcome::Aborted, Outcome::Records(vec![None])]);
        let raw = postcard::to_stdvec(&o).unwrap();
        assert_eq!(postcard::from_bytes::<Outcome>(&raw).unwrap(), o);
    }

    #[test]
    fn mutation_serialises() {
        let m = Mutation {
            now_ms: 42,
            op: Op::MSet {
                pairs: vec![(b("a"), Bytes::from_static(b"\0\xff"))],
                if_none_exist: true,
            },
        };
        let raw = m.to_bytes().unwrap();
        assert_eq!(Mutation::from_bytes(&raw).unwrap(), m);
        assert!(Mutation::from_bytes(&raw[..raw.len() - 1]).is_err());
        // Strict: a byte after the mutation is an error too.
        let mut padded = raw.clone();
        padded.push(0);
        assert!(Mutation::from_bytes(&padded).is_err());
    }
}
