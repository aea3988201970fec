//! EXPIRE family, TTL/PTTL, EXPIRETIME, PERSIST.

use bytes::Bytes;
use strata_protocol::resp::Reply;
use strata_storage::{ExpireCondition, Mutation, Op, Record};

use super::args::{self, is};
use super::strings::resolve_expiry;
use super::{Action, Ctx, storage_error};

fn expire_generic(ctx: &Ctx<'_>, a: &[Bytes], unit_ms: i64, absolute: bool, name: &str) -> Action {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &a[3..] {
        if is(opt, "NX") {
            nx = true;
        } else if is(opt, "XX") {
            xx = true;
        } else if is(opt, "GT") {
            gt = true;
        } else if is(opt, "LT") {
            lt = true;
        } else {
            return Reply::error(format!("ERR Unsupported option {}", args::show(opt, 64))).into();
        }
    }
    if nx && (xx || gt || lt) {
        return args::err("ERR NX and XX, GT or LT options at the same time are not compatible")
            .into();
    }
    if gt && lt {
        return args::err("ERR GT and LT options at the same time are not compatible").into();
    }
    let condition = if nx {
        ExpireCondition::IfNoExpiry
    } else if gt {
        // XX GT: GT already excludes keys without expiry.
        ExpireCondition::IfGreater
    } else if lt && xx {
        // LT alone treats "no expiry" as infinite (so it passes); with XX
        // the key must have one.
        ExpireCondition::IfHasExpiryAndLess
    } else if lt {
        ExpireCondition::IfLess
    } else if xx {
        ExpireCondition::IfHasExpiry
    } else {
        ExpireCondition::Always
    };
    let at_ms = match resolve_expiry(ctx, &a[2], unit_ms, absolute, name) {
        Ok(at) => at,
        Err(e) => return e.into(),
    };
    Action::Write(Mutation {
        now_ms: ctx.now_ms,
        op: Op::Expire {
            key: a[1].clone(),
            at_ms,
            condition,
        },
    })
}

pub fn expire(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    expire_generic(ctx, a, 1000, false, "expire")
}

pub fn pexpire(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    expire_generic(ctx, a, 1, false, "pexpire")
}

pub fn expireat(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    expire_generic(ctx, a, 1000, true, "expireat")
}

pub fn pexpireat(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    expire_generic(ctx, a, 1, true, "pexpireat")
}

/// -2 when the key does not exist, -1 when it has no expiry.
/// The TTL family's answers from the live record (None when missing),
/// shared with the same commands inside EXEC.
#[derive(Clone, Copy)]
pub enum TtlKind {
    Ttl,
    Pttl,
    ExpireTime,
    PexpireTime,
}

pub fn ttl_reply(kind: TtlKind, record: Option<&Record>, now_ms: u64) -> Reply {
    let Some(r) = record else {
        return Reply::Integer(-2);
    };
    if !r.has_expiry() {
        return Reply::Integer(-1);
    }
    let remaining_ms = r.expire_at_ms.saturating_sub(now_ms) as i64;
    Reply::Integer(match kind {
        TtlKind::Ttl => (remaining_ms + 500) / 1000,
        TtlKind::Pttl => remaining_ms,
        TtlKind::ExpireTime => (r.expire_at_ms / 1000) as i64,
        TtlKind::PexpireTime => r.expire_at_ms as i64,
    })
}

fn ttl_family(ctx: &Ctx<'_>, key: &[u8], kind: TtlKind) -> Action {
    match ctx.shared.store.get(key, ctx.now_ms) {
        Ok(r) => ttl_reply(kind, r.as_ref(), ctx.now_ms).into(),
        Err(e) => storage_error(&e).into(),
    }
}

pub fn ttl(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    ttl_family(ctx, &a[1], TtlKind::Ttl)
}

pub fn pttl(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    ttl_family(ctx, &a[1], TtlKind::Pttl)
}

pub fn expiretime(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    ttl_family(ctx, &a[1], TtlKind::ExpireTime)
}

pub fn pexpiretime(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    ttl_family(ctx, &a[1], TtlKind::PexpireTime)
}

pub fn persist(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    Action::Write(Mutation {
        now_ms: ctx.now_ms,
        op: Op::Persist { key: a[1].clone() },
    })
}
