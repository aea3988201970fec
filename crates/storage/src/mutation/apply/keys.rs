//! Ops on keys rather than values: DEL, RENAME, EXPIRE, PERSIST,
//! FLUSHALL and the expiry sweeper's deletions.

use bytes::Bytes;

use super::Applier;
use crate::mutation::{ExpireCondition, MutationError, Outcome, State};
use crate::record::Record;

impl<S: State> Applier<'_, S> {
    /// DEL: removes every stored record named, live or expired; counts
    /// the live ones.
    pub(super) fn del(&mut self, keys: &[Bytes]) -> crate::Result<Outcome> {
        let mut deleted = 0i64;
        for k in keys {
            if let Some(r) = self.load(k)? {
                if r.is_live_at(self.now_ms) {
                    deleted += 1;
                }
                self.remove(k)?;
            }
        }
        debug_assert!(deleted as u64 <= keys.len() as u64);
        Ok(Outcome::Int(deleted))
    }

    /// RENAME and RENAMENX: the record moves whole, expiry and all.
    pub(super) fn rename(
        &mut self,
        from: &Bytes,
        to: &Bytes,
        if_absent: bool,
    ) -> crate::Result<Outcome> {
        refuse!(self.limits.key(to));
        let Some(record) = self.live(from)? else {
            return Ok(Outcome::Refused(MutationError::NoSuchKey));
        };
        if from == to {
            return Ok(if if_absent {
                Outcome::Int(0)
            } else {
                Outcome::Ok
            });
        }
        if if_absent && self.live(to)?.is_some() {
            return Ok(Outcome::Int(0));
        }
        debug_assert!(self.limits.key(to).is_ok());
        self.remove(from)?;
        self.put(to.clone(), record)?;
        Ok(if if_absent {
            Outcome::Int(1)
        } else {
            Outcome::Ok
        })
    }

    /// The EXPIRE family, with its NX/XX/GT/LT conditions; an expiry at
    /// or before the mutation's clock deletes the key.
    pub(super) fn expire(
        &mut self,
        key: &Bytes,
        at_ms: i64,
        condition: ExpireCondition,
    ) -> crate::Result<Outcome> {
        let Some(old) = self.live(key)? else {
            return Ok(Outcome::Int(0));
        };
        // An expiry at or before "now" deletes; clamp negatives to 1 so
        // the stored form never confuses "expired" with "no expiry" (0).
        let new_at_ms = u64::try_from(at_ms).unwrap_or(0).max(1);
        let current_ms = (old.expire_at_ms != 0).then_some(old.expire_at_ms);
        let allowed = match condition {
            ExpireCondition::Always => true,
            ExpireCondition::IfNoExpiry => current_ms.is_none(),
            ExpireCondition::IfHasExpiry => current_ms.is_some(),
            ExpireCondition::IfGreater => current_ms.is_some_and(|c| new_at_ms > c),
            ExpireCondition::IfLess => current_ms.is_none_or(|c| new_at_ms < c),
            ExpireCondition::IfHasExpiryAndLess => current_ms.is_some_and(|c| new_at_ms < c),
        };
        if !allowed {
            return Ok(Outcome::Int(0));
        }
        self.store(key.clone(), Record::new(old.value, new_at_ms))?;
        Ok(Outcome::Int(1))
    }

    /// PERSIST: writes only if it removes an expiry.
    pub(super) fn persist(&mut self, key: &Bytes) -> crate::Result<Outcome> {
        let Some(old) = self.live(key)? else {
            return Ok(Outcome::Int(0));
        };
        if !old.has_expiry() {
            return Ok(Outcome::Int(0));
        }
        self.put(key.clone(), Record::new(old.value, 0))?;
        Ok(Outcome::Int(1))
    }

    pub(super) fn flush_all(&mut self) -> crate::Result<Outcome> {
        self.clear()?;
        Ok(Outcome::Ok)
    }

    /// The sweeper's deletions: each key whose stored expiry is still the
    /// one the sweeper saw (not changed since by a write) and has passed
    /// at the mutation's clock.
    pub(super) fn sweep_expired(&mut self, entries: &[(Bytes, u64)]) -> crate::Result<Outcome> {
        let mut removed = 0i64;
        for (key, at_ms) in entries {
            if let Some(r) = self.load(key)?
                && r.expire_at_ms == *at_ms
                && !r.is_live_at(self.now_ms)
            {
                self.remove(key)?;
                removed += 1;
            }
        }
        debug_assert!(removed as u64 <= entries.len() as u64);
        Ok(Outcome::Int(removed))
    }
}
