//! Transactions (MULTI ... EXEC): the watch check, then every step in
//! order through the same state.

use bytes::Bytes;

use super::Applier;
use crate::mutation::{
    EXEC_READ_BYTES_MAX, MutationError, Op, Outcome, State, Step, VersionCheck, Watched,
    WatchedVersion, record_digest,
};

/// How a transaction's read steps answer.
#[derive(Clone, Copy)]
enum Reads {
    /// [`Outcome::Records`]: value and expiry (MULTI/EXEC).
    Records,
    /// [`Outcome::VersionedRecords`]: with the version ([`Op::ExecChecked`]).
    Versioned,
}

/// Ops that are not applied through a group's state (FLUSHALL runs
/// between groups), nested transactions, and the search catalog's ops
/// (an index is created or dropped alone, and an embedded op wraps a
/// whole transaction, never a step): a transaction holding one is
/// refused whole, before any step runs, so the result does not depend on
/// where they stand.
fn unfit(step: &Step) -> bool {
    matches!(
        step,
        Step::Write(
            Op::FlushAll
                | Op::SweepExpired { .. }
                | Op::Exec { .. }
                | Op::ExecVersioned { .. }
                | Op::ExecChecked { .. }
                | Op::CreateIndex { .. }
                | Op::DropIndex { .. }
                | Op::BackfillIndex { .. }
                | Op::PurgeIndex { .. }
                | Op::Embedded { .. }
        )
    )
}

/// A transaction's watches, in either form.
pub(super) enum Watches<'a> {
    Digests(&'a [Watched]),
    Versions(&'a [WatchedVersion]),
}

impl<S: State> Applier<'_, S> {
    /// A transaction: the watch check, then every step in order, so a step
    /// sees the earlier steps' writes. A refused step changed nothing and
    /// the others still apply (Redis has no rollback).
    pub(super) fn exec(&mut self, steps: &[Step], watches: Watches<'_>) -> crate::Result<Outcome> {
        if steps.iter().any(unfit) {
            return Ok(Outcome::Refused(MutationError::NotInTransaction));
        }
        if !self.watches_hold(&watches)? {
            return Ok(Outcome::Aborted);
        }
        Ok(Outcome::Many(self.steps(steps, Reads::Records)?))
    }

    /// A transaction with exact version checks ([`Op::ExecChecked`]):
    /// every check first, in order, and nothing written unless all hold;
    /// then every step as [`Self::exec`] runs them, reads with versions.
    pub(super) fn exec_checked(
        &mut self,
        steps: &[Step],
        checks: &[VersionCheck],
    ) -> crate::Result<Outcome> {
        if steps.iter().any(unfit) {
            return Ok(Outcome::Refused(MutationError::NotInTransaction));
        }
        for (i, c) in checks.iter().enumerate() {
            let live = self.live(&c.key)?;
            // 0 asks for no live record; a record of a build before
            // versions (version 0) exists, so it holds no check.
            let holds = match &live {
                None => c.version == 0,
                Some(r) => c.version != 0 && r.version == c.version,
            };
            if !holds {
                return Ok(Outcome::CheckFailed {
                    check: u32::try_from(i).unwrap_or(u32::MAX),
                    version: live.map_or(0, |r| r.version),
                });
            }
        }
        let outcomes = self.steps(steps, Reads::Versioned)?;
        Ok(Outcome::Checked {
            version: self.state.version(),
            outcomes,
        })
    }

    /// Every step in order through the same state: one answer each.
    fn steps(&mut self, steps: &[Step], reads: Reads) -> crate::Result<Vec<Outcome>> {
        let mut outcomes = Vec::with_capacity(steps.len());
        let mut read_bytes = 0usize;
        for step in steps {
            outcomes.push(match step {
                Step::Write(op) => self.op(op)?,
                Step::Read { keys } => self.read_step(keys, reads, &mut read_bytes)?,
            });
        }
        // One answer per step, none of them a transaction's own.
        debug_assert_eq!(outcomes.len(), steps.len());
        debug_assert!(outcomes.iter().all(|o| !matches!(
            o,
            Outcome::Many(_)
                | Outcome::Aborted
                | Outcome::Checked { .. }
                | Outcome::CheckFailed { .. }
        )));
        // The answer is bounded: every replica keeps it for retries.
        debug_assert!(
            outcomes
                .iter()
                .filter(|o| matches!(o, Outcome::Records(_) | Outcome::VersionedRecords(_)))
                .map(Outcome::size_bytes)
                .sum::<usize>()
                <= EXEC_READ_BYTES_MAX
        );
        Ok(outcomes)
    }

    /// A read step: the live records of `keys`, or a refusal once the
    /// transaction's reads (`read_bytes`, refused ones included) answer
    /// more than [`EXEC_READ_BYTES_MAX`].
    fn read_step(
        &mut self,
        keys: &[Bytes],
        reads: Reads,
        read_bytes: &mut usize,
    ) -> crate::Result<Outcome> {
        let mut records = Vec::with_capacity(keys.len());
        for k in keys {
            records.push(self.live(k)?);
        }
        let read = match reads {
            Reads::Records => Outcome::Records(
                records
                    .into_iter()
                    .map(|r| r.map(|r| (r.value, r.expire_at_ms)))
                    .collect(),
            ),
            Reads::Versioned => Outcome::VersionedRecords(
                records
                    .into_iter()
                    .map(|r| r.map(|r| (r.value, r.expire_at_ms, r.version)))
                    .collect(),
            ),
        };
        *read_bytes = read_bytes.saturating_add(read.size_bytes());
        Ok(if *read_bytes > EXEC_READ_BYTES_MAX {
            Outcome::Refused(MutationError::ReadResultTooLarge {
                max: EXEC_READ_BYTES_MAX,
            })
        } else {
            read
        })
    }

    /// Whether every watched key is as WATCH saw it.
    fn watches_hold(&mut self, watches: &Watches<'_>) -> crate::Result<bool> {
        match watches {
            Watches::Digests(watched) => {
                for w in *watched {
                    if record_digest(self.live(&w.key)?.as_ref()) != w.digest {
                        return Ok(false);
                    }
                }
            }
            Watches::Versions(watched) => {
                for w in *watched {
                    // The stored record, expired or not: one written after
                    // WATCH that has expired since was still a write.
                    let stored = self.load(&w.key)?;
                    let written_after = stored.as_ref().is_some_and(|r| r.version > w.as_of);
                    let live_now = stored.is_some_and(|r| r.is_live_at(self.now_ms));
                    let deleted_after = !w.existed && self.state.deleted_max() > w.as_of;
                    if written_after || live_now != w.existed || deleted_after {
                        return Ok(false);
                    }
                }
            }
        }
        Ok(true)
    }
}
