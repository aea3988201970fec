//! Key commands: DEL/UNLINK, EXISTS, TYPE, RENAME(NX), KEYS, SCAN.

use bytes::Bytes;
use strata_protocol::resp::Reply;
use strata_storage::{Mutation, Op};

use super::args::{self, is};
use super::{Action, Ctx, storage_error};

/// How many keys one SCAN call may examine, whatever COUNT asks: a bound
/// on the work and the reply of a single call.
const SCAN_COUNT_MAX: usize = 100_000;

pub fn del(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    Action::Write(Mutation {
        now_ms: ctx.now_ms,
        op: Op::Delete {
            keys: a[1..].to_vec(),
        },
    })
}

pub fn exists(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    match ctx.shared.store.get_many(&a[1..], ctx.now_ms) {
        Ok(found) => exists_reply(found.iter().map(Option::is_some)).into(),
        Err(e) => storage_error(&e).into(),
    }
}

pub fn type_of(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    match ctx.shared.store.get(&a[1], ctx.now_ms) {
        Ok(r) => type_reply(r.is_some()).into(),
        Err(e) => storage_error(&e).into(),
    }
}

/// EXISTS's reply: how many of the keys (repeats included) are live.
pub fn exists_reply(found: impl Iterator<Item = bool>) -> Reply {
    Reply::Integer(found.filter(|&f| f).count() as i64)
}

pub fn type_reply(found: bool) -> Reply {
    Reply::status(if found { "string" } else { "none" })
}

fn rename_op(ctx: &Ctx<'_>, a: &[Bytes], if_absent: bool) -> Action {
    Action::Write(Mutation {
        now_ms: ctx.now_ms,
        op: Op::Rename {
            from: a[1].clone(),
            to: a[2].clone(),
            if_absent,
        },
    })
}

pub fn rename(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    rename_op(ctx, a, false)
}

pub fn renamenx(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    rename_op(ctx, a, true)
}

pub fn keys(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    let max = ctx.shared.config.reply_elements_max;
    match ctx.shared.store.keys(&a[1], max, ctx.now_ms) {
        Ok(keys) => Reply::Array(keys.into_iter().map(Reply::Bulk).collect()).into(),
        Err(strata_storage::StorageError::ResultTooLarge { limit, .. }) => Reply::error(format!(
            "ERR KEYS would return more than {limit} keys (reply-elements-max); use SCAN"
        ))
        .into(),
        Err(e) => storage_error(&e).into(),
    }
}

pub fn scan(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    let Some(cursor) = std::str::from_utf8(&a[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return args::err("ERR invalid cursor").into();
    };
    let mut count = 10usize;
    let mut pattern: Option<Bytes> = None;
    let mut only_strings = true;
    let mut i = 2;
    while i < a.len() {
        if i + 1 >= a.len() {
            return args::syntax().into();
        }
        let value = &a[i + 1];
        if is(&a[i], "COUNT") {
            match args::int(value) {
                Ok(n) if n >= 1 => count = (n as usize).min(SCAN_COUNT_MAX),
                Ok(_) => return args::syntax().into(),
                Err(e) => return e.into(),
            }
        } else if is(&a[i], "MATCH") {
            pattern = Some(value.clone());
        } else if is(&a[i], "TYPE") {
            // Every Strata key is a string; any other type matches nothing.
            only_strings = is(value, "string");
        } else {
            return args::syntax().into();
        }
        i += 2;
    }
    let after = if cursor == 0 {
        None
    } else {
        match ctx.shared.load_cursor(cursor) {
            Some(k) => Some(k),
            None => return args::err("ERR invalid cursor").into(),
        }
    };
    match ctx
        .shared
        .store
        .scan(after.as_deref(), count, pattern.as_deref(), ctx.now_ms)
    {
        Ok((keys, next)) => {
            let next_cursor = match next {
                Some(resume) => ctx.shared.save_cursor(resume),
                None => 0,
            };
            let keys = if only_strings { keys } else { Vec::new() };
            Reply::Array(vec![
                Reply::Bulk(Bytes::from(next_cursor.to_string())),
                Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
            ])
            .into()
        }
        Err(e) => storage_error(&e).into(),
    }
}
