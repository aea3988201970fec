//! RANGE start end [LIMIT n]: Strata's ordered scan, both ends inclusive.
//! The reply is a flat array `k1 v1 k2 v2 ...` in key byte order.
//!
//! On the text port (READRANGE, pipe RANGE) a range past the limits is not
//! an error: it is cut at the limit and ends with `MORE` (see
//! [`text_range`]).

use bytes::Bytes;
use strata_protocol::resp::Reply;

use super::args::{self, is};
use super::{Action, Ctx, storage_error};
use crate::clients::Protocol;

pub fn range(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    let max = ctx.shared.config.reply_elements_max;
    let limit = match a.len() {
        3 => None,
        5 if is(&a[3], "LIMIT") => match args::int(&a[4]) {
            Ok(n) if n >= 0 => Some(n as u64),
            Ok(_) => return args::err("ERR LIMIT must not be negative").into(),
            Err(e) => return e.into(),
        },
        _ => return args::syntax().into(),
    };
    if let Some(n) = limit
        && n > max as u64
        && ctx.session.client.protocol != Protocol::Text
    {
        return Reply::error(format!(
            "ERR LIMIT {n} is above the maximum of {max} pairs (reply-elements-max)"
        ))
        .into();
    }
    let take = limit.map_or(max, |n| (n as usize).min(max));
    if ctx.session.client.protocol == Protocol::Text {
        return text_range(ctx, a, take);
    }
    match ctx.shared.store.range(&a[1], &a[2], take, ctx.now_ms) {
        Ok((_, true)) if limit.is_none() => Reply::error(format!(
            "ERR range holds more than {max} pairs (reply-elements-max); add LIMIT and continue after the last key"
        ))
        .into(),
        Ok((pairs, _)) => {
            let mut out = Vec::with_capacity(pairs.len() * 2);
            for (k, v) in pairs {
                out.push(Reply::Bulk(k));
                out.push(Reply::Bulk(v));
            }
            Reply::Array(out).into()
        }
        Err(e) => storage_error(&e).into(),
    }
}

/// The text port's range: at most `take` pairs, then a status the text
/// codec prints as the last line: `MORE` when pairs past them exist,
/// `END` otherwise. Only text sessions get this shape (never RESP).
fn text_range(ctx: &Ctx<'_>, a: &[Bytes], take: usize) -> Action {
    match ctx.shared.store.range(&a[1], &a[2], take, ctx.now_ms) {
        Ok((pairs, more)) => {
            let mut out = Vec::with_capacity(pairs.len() * 2 + 1);
            for (k, v) in pairs {
                out.push(Reply::Bulk(k));
                out.push(Reply::Bulk(v));
            }
            out.push(Reply::Status(if more { "MORE" } else { "END" }.into()));
            Reply::Array(out).into()
        }
        Err(e) => storage_error(&e).into(),
    }
}
