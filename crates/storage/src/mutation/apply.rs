//! The state machine: [`apply`], a dispatch on the [`Op`], and one
//! function per variant, grouped by what they touch: `strings` (the
//! value of a key), `keys` (a key's existence and expiry, several keys,
//! the whole state) and `exec` (transactions).
//!
//! Every op function validates first and only then writes, through the
//! [`Applier`]'s own `put`, `remove` and `clear`, which count the writes so
//! that debug builds check that a refused or aborted op wrote nothing.

use bytes::Bytes;

use super::{Limits, Mutation, Op, Outcome, State};
use crate::config::{KEY_SIZE_BYTES_LIMIT, VALUE_SIZE_BYTES_LIMIT};
use crate::record::Record;

/// `refuse!(result)`: the value, or return `Ok(Outcome::Refused(error))`
/// from the op function. Only before the op's first write.
macro_rules! refuse {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Ok(Outcome::Refused(e)),
        }
    };
}

mod exec;
mod keys;
mod search;
mod strings;

use exec::Watches;

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
    debug_assert!(limits.key_size_bytes_max <= KEY_SIZE_BYTES_LIMIT);
    debug_assert!(limits.value_size_bytes_max <= VALUE_SIZE_BYTES_LIMIT);
    refuse!(m.op.try_for_each_key(|k| Limits::engine().key(k)));
    let mut applier = Applier {
        state,
        now_ms: m.now_ms,
        limits,
        writes: 0,
    };
    applier.op(&m.op)
}

/// One mutation being applied: the state it sees, the clock it decides
/// expiry by (the mutation's, never a local one) and the limits it
/// enforces. Op functions reach the state only through the methods below.
struct Applier<'a, S> {
    state: &'a mut S,
    now_ms: u64,
    limits: &'a Limits,
    /// Puts, removals and clears so far: what the assertion that a
    /// refused or aborted op wrote nothing compares.
    writes: u64,
}

impl<S: State> Applier<'_, S> {
    /// One function per variant; a transaction comes back here for each
    /// of its write steps.
    fn op(&mut self, op: &Op) -> crate::Result<Outcome> {
        let writes_before = self.writes;
        let outcome = match op {
            Op::Set {
                key,
                value,
                condition,
                expiry,
                return_old,
            } => self.set(key, value, *condition, *expiry, *return_old),
            Op::MSet {
                pairs,
                if_none_exist,
            } => self.mset(pairs, *if_none_exist),
            Op::Delete { keys } => self.del(keys),
            Op::GetDel { key } => self.getdel(key),
            Op::GetEx { key, change } => self.getex(key, *change),
            Op::IncrBy { key, delta } => self.incr_by(key, *delta),
            Op::IncrByFloat { key, delta } => self.incr_by_float(key, delta),
            Op::Append { key, value } => self.append(key, value),
            Op::SetRange { key, offset, value } => self.set_range(key, *offset, value),
            Op::Rename {
                from,
                to,
                if_absent,
            } => self.rename(from, to, *if_absent),
            Op::Expire {
                key,
                at_ms,
                condition,
            } => self.expire(key, *at_ms, *condition),
            Op::Persist { key } => self.persist(key),
            Op::FlushAll => self.flush_all(),
            Op::SweepExpired { entries } => self.sweep_expired(entries),
            Op::Exec { steps, watched } => self.exec(steps, Watches::Digests(watched)),
            Op::ExecVersioned { steps, watched } => self.exec(steps, Watches::Versions(watched)),
            Op::ExecChecked { steps, checks } => self.exec_checked(steps, checks),
            Op::CreateIndex { definition } => self.create_index(definition),
            Op::DropIndex { name } => self.drop_index(name),
            Op::BackfillIndex { id, keys_max } => self.backfill_index(*id, *keys_max),
            Op::PurgeIndex { id, entries_max } => self.purge_index(*id, *entries_max),
            Op::Embedded { op, embeddings } => self.embedded(op, embeddings),
        }?;
        // Validate first, write after: a refusal or an abort is decided
        // before anything is written, so it has changed nothing.
        debug_assert!(
            !matches!(
                outcome,
                Outcome::Refused(_) | Outcome::Aborted | Outcome::CheckFailed { .. }
            ) || self.writes == writes_before,
            "a refused or aborted op wrote"
        );
        // Lists of answers, aborts and read records belong to transactions.
        debug_assert!(
            matches!(
                op,
                Op::Exec { .. }
                    | Op::ExecVersioned { .. }
                    | Op::ExecChecked { .. }
                    | Op::Embedded { .. }
            ) || !matches!(
                outcome,
                Outcome::Many(_)
                    | Outcome::Aborted
                    | Outcome::Records(_)
                    | Outcome::Checked { .. }
                    | Outcome::CheckFailed { .. }
                    | Outcome::VersionedRecords(_)
            ),
            "only a transaction answers a list, an abort or records"
        );
        Ok(outcome)
    }

    /// The stored record, expired or not.
    fn load(&mut self, key: &Bytes) -> crate::Result<Option<Record>> {
        self.state.load(key)
    }

    /// The record if it is live at the mutation's clock.
    fn live(&mut self, key: &Bytes) -> crate::Result<Option<Record>> {
        let now_ms = self.now_ms;
        Ok(self.load(key)?.filter(|r| r.is_live_at(now_ms)))
    }

    fn put(&mut self, key: Bytes, record: Record) -> crate::Result<()> {
        // `apply` checked every key the op names against the engine.
        debug_assert!(key.len() <= KEY_SIZE_BYTES_LIMIT);
        self.writes += 1;
        self.state.put(key, record)
    }

    fn remove(&mut self, key: &Bytes) -> crate::Result<()> {
        debug_assert!(key.len() <= KEY_SIZE_BYTES_LIMIT);
        self.writes += 1;
        self.state.delete(key)
    }

    fn clear(&mut self) -> crate::Result<()> {
        self.writes += 1;
        self.state.clear()
    }

    /// Writes `record`, or deletes the key if its expiry has already passed
    /// (a SET with an EXAT in the past leaves no key, as in Redis).
    fn store(&mut self, key: Bytes, record: Record) -> crate::Result<()> {
        if record.is_live_at(self.now_ms) {
            self.put(key, record)
        } else {
            self.remove(&key)
        }
    }

    /// Whether `key` and a value of `value_size_bytes` are within the
    /// limits: what an op storing the client's bytes checked before
    /// writing them (for debug assertions).
    fn within_limits(&self, key: &[u8], value_size_bytes: usize) -> bool {
        self.limits.key(key).is_ok() && self.limits.value_len(value_size_bytes).is_ok()
    }
}
