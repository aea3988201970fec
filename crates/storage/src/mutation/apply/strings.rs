//! Ops on the value of one key (or, for MSET, of several): SET, MSET,
//! GETDEL, GETEX, INCRBY, INCRBYFLOAT, APPEND, SETRANGE.

use bytes::{Bytes, BytesMut};

use super::Applier;
use crate::mutation::{
    GetExChange, MutationError, Outcome, SetCondition, SetExpiry, State, add_decimal_text,
    parse_i64,
};
use crate::record::Record;

/// Longest text of an i64: "-9223372036854775808".
const I64_TEXT_SIZE_BYTES_MAX: usize = 20;

impl<S: State> Applier<'_, S> {
    /// SET with its NX/XX condition, its expiry (or KEEPTTL) and GET.
    pub(super) fn set(
        &mut self,
        key: &Bytes,
        value: &Bytes,
        condition: SetCondition,
        expiry: SetExpiry,
        return_old: bool,
    ) -> crate::Result<Outcome> {
        refuse!(self.limits.key(key));
        refuse!(self.limits.value_len(value.len()));
        let old = self.live(key)?;
        let allowed = match condition {
            SetCondition::Always => true,
            SetCondition::IfAbsent => old.is_none(),
            SetCondition::IfPresent => old.is_some(),
        };
        let answer = if return_old {
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
                SetExpiry::At(at_ms) => at_ms,
            };
            debug_assert!(self.within_limits(key, value.len()));
            self.store(key.clone(), Record::new(value.clone(), expire_at_ms))?;
        }
        Ok(answer)
    }

    /// MSET and MSETNX: every pair is checked, and for MSETNX every key
    /// found absent, before the first is written, so the batch is
    /// all-or-nothing.
    pub(super) fn mset(
        &mut self,
        pairs: &[(Bytes, Bytes)],
        if_none_exist: bool,
    ) -> crate::Result<Outcome> {
        for (k, v) in pairs {
            refuse!(self.limits.key(k));
            refuse!(self.limits.value_len(v.len()));
        }
        if if_none_exist {
            for (k, _) in pairs {
                if self.live(k)?.is_some() {
                    return Ok(Outcome::Int(0));
                }
            }
        }
        for (k, v) in pairs {
            debug_assert!(self.within_limits(k, v.len()));
            self.put(k.clone(), Record::new(v.clone(), 0))?;
        }
        Ok(if if_none_exist {
            Outcome::Int(1)
        } else {
            Outcome::Ok
        })
    }

    /// GETDEL: removes the stored record, live or expired; answers it
    /// only if it was live.
    pub(super) fn getdel(&mut self, key: &Bytes) -> crate::Result<Outcome> {
        let old = self.load(key)?;
        if old.is_some() {
            self.remove(key)?;
        }
        let now_ms = self.now_ms;
        Ok(match old.filter(|r| r.is_live_at(now_ms)) {
            Some(r) => Outcome::Bulk(r.value),
            None => Outcome::Nil,
        })
    }

    /// GETEX: the value, with its expiry changed.
    pub(super) fn getex(&mut self, key: &Bytes, change: GetExChange) -> crate::Result<Outcome> {
        let Some(old) = self.live(key)? else {
            return Ok(Outcome::Nil);
        };
        let expire_at_ms = match change {
            GetExChange::Persist => 0,
            GetExChange::At(at_ms) => at_ms,
        };
        // As Redis: EX/PX/EXAT/PXAT always write (a WATCH of the key
        // sees it even if the time is the same), PERSIST only when it
        // removes an expiry. The data is the same either way.
        if matches!(change, GetExChange::At(_)) || expire_at_ms != old.expire_at_ms {
            self.store(key.clone(), Record::new(old.value.clone(), expire_at_ms))?;
        }
        Ok(Outcome::Bulk(old.value))
    }

    /// INCRBY (and INCR, DECR, DECRBY): keeps the key's expiry.
    pub(super) fn incr_by(&mut self, key: &Bytes, delta: i64) -> crate::Result<Outcome> {
        refuse!(self.limits.key(key));
        let old = self.live(key)?;
        let current = match &old {
            Some(r) => refuse!(parse_i64(&r.value).ok_or(MutationError::NotInteger)),
            None => 0,
        };
        let next = refuse!(current.checked_add(delta).ok_or(MutationError::Overflow));
        let expire_at_ms = old.as_ref().map_or(0, |r| r.expire_at_ms);
        let text = Bytes::from(next.to_string());
        debug_assert!(text.len() <= I64_TEXT_SIZE_BYTES_MAX);
        self.put(key.clone(), Record::new(text, expire_at_ms))?;
        Ok(Outcome::Int(next))
    }

    /// INCRBYFLOAT: a decimal sum (see `add_decimal_text`); keeps the
    /// key's expiry.
    pub(super) fn incr_by_float(&mut self, key: &Bytes, delta: &Bytes) -> crate::Result<Outcome> {
        refuse!(self.limits.key(key));
        let old = self.live(key)?;
        let current: &[u8] = match &old {
            Some(r) => &r.value,
            None => b"0",
        };
        let text = Bytes::from(refuse!(add_decimal_text(current, delta)));
        let expire_at_ms = old.as_ref().map_or(0, |r| r.expire_at_ms);
        self.put(key.clone(), Record::new(text.clone(), expire_at_ms))?;
        Ok(Outcome::Bulk(text))
    }

    /// APPEND: refused if the joined value would pass the value limit.
    pub(super) fn append(&mut self, key: &Bytes, value: &Bytes) -> crate::Result<Outcome> {
        refuse!(self.limits.key(key));
        let old = self.live(key)?;
        let old_len = old.as_ref().map_or(0, |r| r.value.len());
        let new_len = old_len.saturating_add(value.len());
        refuse!(self.limits.value_len(new_len));
        let mut buf = BytesMut::with_capacity(new_len);
        if let Some(r) = &old {
            buf.extend_from_slice(&r.value);
        }
        buf.extend_from_slice(value);
        debug_assert_eq!(buf.len(), new_len);
        debug_assert!(self.within_limits(key, new_len));
        let expire_at_ms = old.as_ref().map_or(0, |r| r.expire_at_ms);
        self.put(key.clone(), Record::new(buf.freeze(), expire_at_ms))?;
        Ok(Outcome::Int(new_len as i64))
    }

    /// SETRANGE: zero-pads up to `offset`; refused if the written range
    /// would end past the value limit.
    pub(super) fn set_range(
        &mut self,
        key: &Bytes,
        offset: u64,
        value: &Bytes,
    ) -> crate::Result<Outcome> {
        refuse!(self.limits.key(key));
        let old = self.live(key)?;
        let old_len = old.as_ref().map_or(0, |r| r.value.len());
        if value.is_empty() {
            // Redis answers the current length and creates nothing.
            return Ok(Outcome::Int(old_len as i64));
        }
        let offset = refuse!(usize::try_from(offset).map_err(|_| {
            MutationError::ValueTooLarge {
                len: usize::MAX,
                max: self.limits.value_size_bytes_max,
            }
        }));
        let end = offset.saturating_add(value.len());
        refuse!(self.limits.value_len(end));
        let new_len = old_len.max(end);
        let mut buf = BytesMut::zeroed(new_len);
        if let Some(r) = &old {
            buf[..old_len].copy_from_slice(&r.value);
        }
        buf[offset..end].copy_from_slice(value);
        // The range written is within the limit; the value may be longer
        // only by what it already held (stored under a higher limit).
        debug_assert!(self.within_limits(key, end));
        debug_assert!(new_len == end || new_len == old_len);
        let expire_at_ms = old.as_ref().map_or(0, |r| r.expire_at_ms);
        self.put(key.clone(), Record::new(buf.freeze(), expire_at_ms))?;
        Ok(Outcome::Int(new_len as i64))
    }
}
