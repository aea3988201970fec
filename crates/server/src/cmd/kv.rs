//! Strata's versioned key commands: what the HTTP API runs for its keys
//! and transactions (`crate::http`), and any RESP or text client may run
//! too, so the two front doors share one semantics.
//!
//! - `KV.GET key`: the live record as `[value, version, expiretime-ms]`
//!   (`-1`: no expiry), or null.
//! - `KV.PREFIX prefix [LIMIT n] [KEYSONLY] [CHANGED version]` and
//!   `KV.RANGE start end [LIMIT n] [KEYSONLY]` (both ends included, like
//!   RANGE): `[entries, more]`, each entry `[key, value, version,
//!   expiretime-ms]` (or the key alone with KEYSONLY); `more` is 1 when a
//!   LIMIT cut the list. Without LIMIT, more than `reply-elements-max`
//!   entries is an error, as for RANGE. CHANGED lists only the keys
//!   changed after that version (`crate::changes`), a deleted key as
//!   `[key, nil, version-of-the-deletion, -1]`, and adds a third element:
//!   0, or 1 when the change log does not reach back that far and the
//!   whole prefix is listed instead.
//! - `KV.TXN op...`, an atomic batch of `SET key value ttl-ms`, `CAS key
//!   version value ttl-ms`, `GET key`, `DEL key`, `DELCAS key version`,
//!   `CHECK key version` (ttl-ms 0: no expiry; version 0: the key must not
//!   exist). One mutation (`Op::ExecChecked`: one group, one log entry):
//!   every CAS, DELCAS and CHECK is compared with the state before the
//!   batch, exactly, and if one fails nothing is written and the reply is
//!   `[CONFLICT, check-number, key's version]`; else `[OK, version,
//!   answers]`, one answer per op other than CHECK, the writes stamped
//!   with `version`. Every key and value is checked against the limits
//!   here, before anything is applied, so no step can be refused half-way:
//!   all or nothing.

use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use strata_protocol::resp::Reply;
use strata_storage::{
    Mutation, MutationError, Op, Record, SetCondition, SetExpiry, Step, VersionCheck,
};

use super::args::{self, is};
use super::{Action, Ctx, key_too_large, storage_error, tx::QUEUED_COMMANDS_MAX};
use crate::changes::Scope;

/// `-1` for no expiry, else the absolute Unix time in ms (PEXPIRETIME).
fn expiretime_ms(expire_at_ms: u64) -> i64 {
    if expire_at_ms == 0 {
        -1
    } else {
        i64::try_from(expire_at_ms).unwrap_or(i64::MAX)
    }
}

fn version_reply(version: u64) -> Reply {
    Reply::Integer(i64::try_from(version).unwrap_or(i64::MAX))
}

/// `[value, version, expiretime-ms]`: a record as every KV command shows it.
pub fn record_reply(value: Bytes, version: u64, expire_at_ms: u64) -> Vec<Reply> {
    vec![
        Reply::Bulk(value),
        version_reply(version),
        Reply::Integer(expiretime_ms(expire_at_ms)),
    ]
}

pub fn get(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    let stats = &ctx.shared.stats;
    match ctx.shared.store.get(&a[1], ctx.now_ms) {
        Ok(Some(r)) => {
            stats.keyspace_hits.fetch_add(1, Relaxed);
            Reply::Array(record_reply(r.value, r.version, r.expire_at_ms)).into()
        }
        Ok(None) => {
            stats.keyspace_misses.fetch_add(1, Relaxed);
            Reply::Null.into()
        }
        Err(e) => storage_error(&e).into(),
    }
}

/// A listing's options.
#[derive(Clone, Copy, Default)]
struct Listing {
    limit: Option<usize>,
    keys_only: bool,
    changed: Option<u64>,
}

fn listing_options(ctx: &Ctx<'_>, opts: &[Bytes], changed_allowed: bool) -> Result<Listing, Reply> {
    let max = ctx.shared.config.reply_elements_max;
    let mut l = Listing::default();
    let mut i = 0;
    while i < opts.len() {
        let value = opts.get(i + 1);
        if is(&opts[i], "KEYSONLY") {
            l.keys_only = true;
            i += 1;
            continue;
        }
        let Some(value) = value else {
            return Err(args::syntax());
        };
        if is(&opts[i], "LIMIT") {
            let n = args::int(value)?;
            if n < 0 {
                return Err(args::err("ERR LIMIT must not be negative"));
            }
            if n as u64 > max as u64 {
                return Err(Reply::error(format!(
                    "ERR LIMIT {n} is above the maximum of {max} entries (reply-elements-max)"
                )));
            }
            l.limit = Some(n as usize);
        } else if is(&opts[i], "CHANGED") && changed_allowed {
            l.changed = Some(version_arg(value)?);
        } else {
            return Err(args::syntax());
        }
        i += 2;
    }
    Ok(l)
}

fn version_arg(arg: &Bytes) -> Result<u64, Reply> {
    u64::try_from(args::int(arg)?).map_err(|_| args::err("ERR version must not be negative"))
}

/// How many entries to read: the LIMIT, else one past the most a reply
/// may hold (to tell "too many").
fn take(ctx: &Ctx<'_>, l: &Listing) -> usize {
    l.limit.unwrap_or(ctx.shared.config.reply_elements_max)
}

fn entry(key: Bytes, r: Record, keys_only: bool) -> Reply {
    if keys_only {
        return Reply::Bulk(key);
    }
    let mut fields = vec![Reply::Bulk(key)];
    fields.extend(record_reply(r.value, r.version, r.expire_at_ms));
    Reply::Array(fields)
}

/// `[entries, more]`, or the refusal of an unbounded list that is too long.
fn listing_reply(
    ctx: &Ctx<'_>,
    l: &Listing,
    found: strata_storage::Result<(Vec<(Bytes, Record)>, bool)>,
) -> Result<Vec<Reply>, Reply> {
    let (records, more) = found.map_err(|e| storage_error(&e))?;
    if more && l.limit.is_none() {
        let max = ctx.shared.config.reply_elements_max;
        return Err(Reply::error(format!(
            "ERR more than {max} entries (reply-elements-max); add LIMIT and continue after the last key"
        )));
    }
    let entries = records
        .into_iter()
        .map(|(k, r)| entry(k, r, l.keys_only))
        .collect();
    Ok(vec![Reply::Array(entries), Reply::Integer(i64::from(more))])
}

pub fn prefix(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    let l = match listing_options(ctx, &a[2..], true) {
        Ok(l) => l,
        Err(e) => return e.into(),
    };
    if let Some(since) = l.changed {
        return changed(ctx, &a[1], since, &l).into();
    }
    let found = ctx
        .shared
        .store
        .prefix_records(&a[1], take(ctx, &l), ctx.now_ms);
    match listing_reply(ctx, &l, found) {
        Ok(reply) => Reply::Array(reply).into(),
        Err(e) => e.into(),
    }
}

pub fn range(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    let l = match listing_options(ctx, &a[3..], false) {
        Ok(l) => l,
        Err(e) => return e.into(),
    };
    let found = ctx
        .shared
        .store
        .range_records(&a[1], &a[2], take(ctx, &l), ctx.now_ms);
    match listing_reply(ctx, &l, found) {
        Ok(reply) => Reply::Array(reply).into(),
        Err(e) => e.into(),
    }
}

/// KV.PREFIX … CHANGED since: the keys the change log says changed after
/// `since`, as they are now; or, when it cannot say, the whole prefix.
fn changed(ctx: &Ctx<'_>, prefix: &Bytes, since: u64, l: &Listing) -> Reply {
    let max = ctx.shared.config.reply_elements_max;
    let store = &ctx.shared.store;
    let scope = Scope::Prefix(prefix.clone());
    let Some(keys) = ctx
        .shared
        .changes
        .changed_keys(&scope, since, max, || store.published_version())
    else {
        let whole = Listing {
            changed: None,
            ..*l
        };
        let found = store.prefix_records(prefix, take(ctx, &whole), ctx.now_ms);
        return match listing_reply(ctx, &whole, found) {
            Ok(mut reply) => {
                reply.push(Reply::Integer(1));
                Reply::Array(reply)
            }
            Err(e) => e,
        };
    };
    let names: Vec<Bytes> = keys.iter().map(|(k, _)| k.clone()).collect();
    let records = match store.get_many(&names, ctx.now_ms) {
        Ok(r) => r,
        Err(e) => return storage_error(&e),
    };
    let entries = keys
        .into_iter()
        .zip(records)
        .map(|((key, changed_at), record)| match record {
            Some(r) => entry(key, r, l.keys_only),
            None if l.keys_only => Reply::Bulk(key),
            None => Reply::Array(vec![
                Reply::Bulk(key),
                Reply::Null,
                version_reply(changed_at),
                Reply::Integer(-1),
            ]),
        })
        .collect();
    Reply::Array(vec![
        Reply::Array(entries),
        Reply::Integer(0),
        Reply::Integer(0),
    ])
}

pub fn txn(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    match plan_txn(ctx, &a[1..]) {
        Ok(op) => Action::Write(Mutation {
            now_ms: ctx.now_ms,
            op,
        }),
        Err(e) => e.into(),
    }
}

/// The ops' words, and how many arguments each takes after it.
const TXN_OPS: &[(&str, usize)] = &[
    ("SET", 3),
    ("CAS", 4),
    ("GET", 1),
    ("DEL", 1),
    ("DELCAS", 2),
    ("CHECK", 2),
];

/// KV.TXN's ops as one `Op::ExecChecked`, every key, value and TTL
/// checked first (see the module doc: nothing may be refused once it
/// applies).
fn plan_txn(ctx: &Ctx<'_>, ops: &[Bytes]) -> Result<Op, Reply> {
    let mut steps = Vec::new();
    let mut checks = Vec::new();
    let mut rest = ops;
    let mut count = 0usize;
    while let Some(word) = rest.first() {
        count += 1;
        if count > QUEUED_COMMANDS_MAX {
            return Err(Reply::error(format!(
                "ERR transaction too large: at most {QUEUED_COMMANDS_MAX} ops"
            )));
        }
        let Some(&(name, n)) = TXN_OPS.iter().find(|(name, _)| is(word, name)) else {
            return Err(Reply::error(format!(
                "ERR unknown KV.TXN op '{}' (SET, CAS, GET, DEL, DELCAS, CHECK)",
                args::show(word, 32)
            )));
        };
        let Some(op_args) = rest.get(1..=n) else {
            return Err(args::wrong_arity(&format!(
                "kv.txn|{}",
                name.to_lowercase()
            )));
        };
        plan_op(ctx, name, op_args, &mut steps, &mut checks)?;
        rest = &rest[1 + n..];
    }
    Ok(Op::ExecChecked { steps, checks })
}

fn plan_op(
    ctx: &Ctx<'_>,
    name: &str,
    a: &[Bytes],
    steps: &mut Vec<Step>,
    checks: &mut Vec<VersionCheck>,
) -> Result<(), Reply> {
    let key_max = ctx.shared.config.storage.key_size_bytes_max;
    let key = &a[0];
    if key.len() > key_max {
        return Err(key_too_large(key.len(), key_max));
    }
    let check = |version: &Bytes| -> Result<VersionCheck, Reply> {
        Ok(VersionCheck {
            key: key.clone(),
            version: version_arg(version)?,
        })
    };
    match name {
        "SET" => steps.push(set_step(ctx, key, &a[1], &a[2])?),
        "CAS" => {
            checks.push(check(&a[1])?);
            steps.push(set_step(ctx, key, &a[2], &a[3])?);
        }
        "GET" => steps.push(Step::Read {
            keys: vec![key.clone()],
        }),
        "DEL" => steps.push(delete_step(key)),
        "DELCAS" => {
            checks.push(check(&a[1])?);
            steps.push(delete_step(key));
        }
        _ => checks.push(check(&a[1])?),
    }
    Ok(())
}

fn delete_step(key: &Bytes) -> Step {
    Step::Write(Op::Delete {
        keys: vec![key.clone()],
    })
}

/// A SET step, refused now if `apply` would refuse it (value size) or
/// the TTL is not a number of milliseconds (0: none).
fn set_step(ctx: &Ctx<'_>, key: &Bytes, value: &Bytes, ttl_ms: &Bytes) -> Result<Step, Reply> {
    let value_max = ctx.shared.config.storage.value_size_bytes_max;
    if value.len() > value_max {
        let e = MutationError::ValueTooLarge {
            len: value.len(),
            max: value_max,
        };
        return Err(Reply::error(format!("ERR {e}")));
    }
    let ttl_ms = args::int(ttl_ms)?;
    let expiry = match ttl_ms {
        0 => SetExpiry::Clear,
        ms if ms > 0 => {
            let at = ctx.now_ms.checked_add(ms as u64);
            SetExpiry::At(at.ok_or_else(|| args::invalid_expire("kv.txn"))?)
        }
        _ => return Err(args::invalid_expire("kv.txn")),
    };
    Ok(Step::Write(Op::Set {
        key: key.clone(),
        value: value.clone(),
        condition: SetCondition::Always,
        expiry,
        return_old: false,
    }))
}
