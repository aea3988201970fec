//! String commands: GET, SET and its variants, MGET/MSET, counters, ranges.

use bytes::Bytes;
use strata_protocol::resp::Reply;
use strata_storage::{GetExChange, Mutation, Op, SetCondition, SetExpiry};

use super::args::{self, is};
use super::{Action, Ctx, storage_error};

fn write(ctx: &Ctx<'_>, op: Op) -> Action {
    Action::Write(Mutation {
        now_ms: ctx.now_ms,
        op,
    })
}

/// Reads one live value; counts hits and misses for INFO.
fn read_value(ctx: &Ctx<'_>, key: &[u8]) -> Result<Option<Bytes>, Reply> {
    use std::sync::atomic::Ordering::Relaxed;
    match ctx.shared.store.get(key, ctx.now_ms) {
        Ok(Some(r)) => {
            ctx.shared.stats.keyspace_hits.fetch_add(1, Relaxed);
            Ok(Some(r.value))
        }
        Ok(None) => {
            ctx.shared.stats.keyspace_misses.fetch_add(1, Relaxed);
            Ok(None)
        }
        Err(e) => Err(storage_error(&e)),
    }
}

pub fn get(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    match read_value(ctx, &a[1]) {
        Ok(Some(v)) => Reply::Bulk(v).into(),
        Ok(None) => Reply::Null.into(),
        Err(e) => e.into(),
    }
}

/// Resolves a relative or absolute expiry argument to absolute Unix ms.
/// `unit_ms` is 1000 for seconds; `absolute` for EXAT/PXAT/EXPIREAT.
pub fn resolve_expiry(
    ctx: &Ctx<'_>,
    arg: &Bytes,
    unit_ms: i64,
    absolute: bool,
    name: &str,
) -> Result<i64, Reply> {
    let v = args::int(arg)?;
    let ms = v
        .checked_mul(unit_ms)
        .ok_or_else(|| args::invalid_expire(name))?;
    if absolute {
        Ok(ms)
    } else {
        ms.checked_add(ctx.now_ms as i64)
            .ok_or_else(|| args::invalid_expire(name))
    }
}

/// SET's expiry options must be positive; returns the absolute time.
fn positive_expiry(
    ctx: &Ctx<'_>,
    arg: &Bytes,
    unit_ms: i64,
    absolute: bool,
    name: &str,
) -> Result<u64, Reply> {
    let v = args::int(arg)?;
    if v <= 0 {
        return Err(args::invalid_expire(name));
    }
    let at = resolve_expiry(ctx, arg, unit_ms, absolute, name)?;
    u64::try_from(at).map_err(|_| args::invalid_expire(name))
}

/// (unit in ms, absolute?, name) of an expiry option word.
fn expiry_option(word: &[u8]) -> Option<(i64, bool, &'static str)> {
    if is(word, "EX") {
        Some((1000, false, "EX"))
    } else if is(word, "PX") {
        Some((1, false, "PX"))
    } else if is(word, "EXAT") {
        Some((1000, true, "EXAT"))
    } else if is(word, "PXAT") {
        Some((1, true, "PXAT"))
    } else {
        None
    }
}

/// Redis lets an option repeat (the last value wins) but refuses two
/// different expiry options together.
fn compatible(given: Option<&'static str>, new: &'static str) -> bool {
    given.is_none_or(|g| g == new)
}

pub fn set(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    let mut condition = SetCondition::Always;
    let mut expiry = SetExpiry::Clear;
    let mut expiry_given: Option<&'static str> = None;
    let mut return_old = false;
    let mut i = 3;
    while i < a.len() {
        let word = &a[i];
        if is(word, "NX") && condition != SetCondition::IfPresent {
            condition = SetCondition::IfAbsent;
        } else if is(word, "XX") && condition != SetCondition::IfAbsent {
            condition = SetCondition::IfPresent;
        } else if is(word, "GET") {
            return_old = true;
        } else if is(word, "KEEPTTL") && compatible(expiry_given, "KEEPTTL") {
            expiry = SetExpiry::Keep;
            expiry_given = Some("KEEPTTL");
        } else if let Some((unit, absolute, name)) = expiry_option(word) {
            if !compatible(expiry_given, name) || i + 1 >= a.len() {
                return args::syntax().into();
            }
            match positive_expiry(ctx, &a[i + 1], unit, absolute, "set") {
                Ok(at) => expiry = SetExpiry::At(at),
                Err(e) => return e.into(),
            }
            expiry_given = Some(name);
            i += 1;
        } else {
            return args::syntax().into();
        }
        i += 1;
    }
    write(
        ctx,
        Op::Set {
            key: a[1].clone(),
            value: a[2].clone(),
            condition,
            expiry,
            return_old,
        },
    )
}

pub fn put(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    plain_set(ctx, a[1].clone(), a[2].clone(), SetCondition::Always)
}

fn plain_set(ctx: &Ctx<'_>, key: Bytes, value: Bytes, condition: SetCondition) -> Action {
    write(
        ctx,
        Op::Set {
            key,
            value,
            condition,
            expiry: SetExpiry::Clear,
            return_old: false,
        },
    )
}

/// SETNX answers 1/0 where SET NX answers OK/nil.
pub fn setnx(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    // MSETNX with one pair has exactly SETNX's semantics and reply.
    write(
        ctx,
        Op::MSet {
            pairs: vec![(a[1].clone(), a[2].clone())],
            if_none_exist: true,
        },
    )
}

fn set_with_ttl(ctx: &Ctx<'_>, a: &[Bytes], unit_ms: i64, name: &str) -> Action {
    match positive_expiry(ctx, &a[2], unit_ms, false, name) {
        Ok(at) => write(
            ctx,
            Op::Set {
                key: a[1].clone(),
                value: a[3].clone(),
                condition: SetCondition::Always,
                expiry: SetExpiry::At(at),
                return_old: false,
            },
        ),
        Err(e) => e.into(),
    }
}

pub fn setex(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    set_with_ttl(ctx, a, 1000, "setex")
}

pub fn psetex(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    set_with_ttl(ctx, a, 1, "psetex")
}

pub fn getset(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    write(
        ctx,
        Op::Set {
            key: a[1].clone(),
            value: a[2].clone(),
            condition: SetCondition::Always,
            expiry: SetExpiry::Clear,
            return_old: true,
        },
    )
}

pub fn getdel(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    write(ctx, Op::GetDel { key: a[1].clone() })
}

pub fn getex(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    let mut change = None;
    let mut given: Option<&'static str> = None;
    let mut i = 2;
    while i < a.len() {
        let word = &a[i];
        if is(word, "PERSIST") && compatible(given, "PERSIST") {
            change = Some(GetExChange::Persist);
            given = Some("PERSIST");
        } else if let Some((unit, absolute, name)) = expiry_option(word) {
            if !compatible(given, name) || i + 1 >= a.len() {
                return args::syntax().into();
            }
            match positive_expiry(ctx, &a[i + 1], unit, absolute, "getex") {
                Ok(at) => change = Some(GetExChange::At(at)),
                Err(e) => return e.into(),
            }
            given = Some(name);
            i += 1;
        } else {
            return args::syntax().into();
        }
        i += 1;
    }
    match change {
        // Without options GETEX is a plain read.
        None => get(ctx, a),
        Some(change) => write(
            ctx,
            Op::GetEx {
                key: a[1].clone(),
                change,
            },
        ),
    }
}

pub fn mget(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    let keys = &a[1..];
    if keys.len() > ctx.shared.config.reply_elements_max {
        return args::err("ERR too many keys for one MGET (reply-elements-max)").into();
    }
    match ctx.shared.store.get_many(keys, ctx.now_ms) {
        Ok(values) => mget_reply(values.into_iter().map(|r| r.map(|r| r.value))).into(),
        Err(e) => storage_error(&e).into(),
    }
}

/// MGET's reply for the live values, in key order.
pub fn mget_reply(values: impl Iterator<Item = Option<Bytes>>) -> Reply {
    Reply::Array(values.map(|v| v.map_or(Reply::Null, Reply::Bulk)).collect())
}

/// Key-value pairs of MSET and its aliases; the arity error names the
/// command as the client called it (MSET or BATCHPUT).
fn pairs(a: &[Bytes]) -> Result<Vec<(Bytes, Bytes)>, Reply> {
    let rest = &a[1..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(args::wrong_arity(
            &args::show(&a[0], 16).to_ascii_lowercase(),
        ));
    }
    Ok(rest
        .chunks_exact(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect())
}

pub fn mset(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    match pairs(a) {
        Ok(pairs) => write(
            ctx,
            Op::MSet {
                pairs,
                if_none_exist: false,
            },
        ),
        Err(e) => e.into(),
    }
}

pub fn msetnx(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    match pairs(a) {
        Ok(pairs) => write(
            ctx,
            Op::MSet {
                pairs,
                if_none_exist: true,
            },
        ),
        Err(e) => e.into(),
    }
}

pub fn append(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    write(
        ctx,
        Op::Append {
            key: a[1].clone(),
            value: a[2].clone(),
        },
    )
}

pub fn strlen(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    match read_value(ctx, &a[1]) {
        Ok(v) => strlen_reply(v.as_ref()).into(),
        Err(e) => e.into(),
    }
}

pub fn strlen_reply(value: Option<&Bytes>) -> Reply {
    Reply::Integer(value.map_or(0, |v| v.len() as i64))
}

fn incr_by(ctx: &Ctx<'_>, key: &Bytes, delta: i64) -> Action {
    write(
        ctx,
        Op::IncrBy {
            key: key.clone(),
            delta,
        },
    )
}

pub fn incr(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    incr_by(ctx, &a[1], 1)
}

pub fn decr(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    incr_by(ctx, &a[1], -1)
}

pub fn incrby(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    match args::int(&a[2]) {
        Ok(d) => incr_by(ctx, &a[1], d),
        Err(e) => e.into(),
    }
}

pub fn decrby(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    match args::int(&a[2]) {
        Ok(d) => match d.checked_neg() {
            Some(d) => incr_by(ctx, &a[1], d),
            None => args::err("ERR decrement would overflow").into(),
        },
        Err(e) => e.into(),
    }
}

pub fn incrbyfloat(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    match args::float(&a[2]) {
        Ok(_) => write(
            ctx,
            Op::IncrByFloat {
                key: a[1].clone(),
                delta: a[2].clone(),
            },
        ),
        Err(e) => e.into(),
    }
}

pub fn getrange(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    if let Err(e) = range_bounds(a) {
        return e.into();
    }
    match read_value(ctx, &a[1]) {
        Ok(v) => getrange_reply(a, v).into(),
        Err(e) => e.into(),
    }
}

fn range_bounds(a: &[Bytes]) -> Result<(i64, i64), Reply> {
    Ok((args::int(&a[2])?, args::int(&a[3])?))
}

/// GETRANGE's reply for the live value (None when the key is missing):
/// shared with GETRANGE inside EXEC so both answer alike.
pub fn getrange_reply(a: &[Bytes], value: Option<Bytes>) -> Reply {
    let (mut start, mut end) = match range_bounds(a) {
        Ok(bounds) => bounds,
        Err(e) => return e,
    };
    let value = value.unwrap_or_default();
    let len = value.len() as i64;
    let empty = || Reply::Bulk(Bytes::new());
    if start < 0 && end < 0 && start > end {
        return empty();
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if len == 0 || start > end {
        return empty();
    }
    Reply::Bulk(value.slice(start as usize..=end as usize))
}

pub fn setrange(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    match args::int(&a[2]) {
        Ok(offset) if offset >= 0 => write(
            ctx,
            Op::SetRange {
                key: a[1].clone(),
                offset: offset as u64,
                value: a[3].clone(),
            },
        ),
        Ok(_) => args::err("ERR offset is out of range").into(),
        Err(e) => e.into(),
    }
}
