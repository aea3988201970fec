//! PING, ECHO, HELLO, SELECT, QUIT, READONLY (CLIENT is `client.rs`).

use bytes::Bytes;
use strata_protocol::resp::{ProtocolVersion, Reply};

use super::args::{self, is};
use super::{Action, Ctx};

pub fn ping(_: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    match a.len() {
        1 => Reply::status("PONG").into(),
        2 => Reply::Bulk(a[1].clone()).into(),
        _ => args::wrong_arity("ping").into(),
    }
}

pub fn echo(_: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    Reply::Bulk(a[1].clone()).into()
}

pub fn select(_: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    match args::int(&a[1]) {
        Ok(0) => Reply::ok().into(),
        Ok(n) if i32::try_from(n).is_err() => {
            args::err("ERR value is out of range, value must between -2147483648 and 2147483647")
                .into()
        }
        Ok(_) => args::err("ERR DB index is out of range").into(),
        Err(e) => e.into(),
    }
}

pub fn quit(_: &mut Ctx<'_>, _: &[Bytes]) -> Action {
    Action::Close(Reply::ok())
}

/// READONLY: this connection's reads are served from the local node's
/// applied state without a ReadIndex round: fast, and possibly stale on a
/// follower (as on a Redis Cluster replica). READWRITE: back to
/// linearizable reads. A single node is always up to date.
pub fn readonly(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    ctx.session.readonly = a[0].eq_ignore_ascii_case(b"readonly");
    Reply::ok().into()
}

pub(super) fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|b| (b'!'..=b'~').contains(b))
}

pub fn hello(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    let mut protocol = ctx.session.protocol;
    let mut i = 1;
    if let Some(v) = a.get(1) {
        protocol = match args::int(v) {
            Ok(2) => ProtocolVersion::Resp2,
            Ok(3) => ProtocolVersion::Resp3,
            Ok(_) => return args::err("NOPROTO unsupported protocol version").into(),
            Err(_) => {
                return args::err("ERR Protocol version is not an integer or out of range").into();
            }
        };
        i = 2;
    }
    let mut name = None;
    while i < a.len() {
        if is(&a[i], "AUTH") && i + 2 < a.len() {
            return args::err(
                "ERR AUTH is not supported: this server has no authentication configured",
            )
            .into();
        } else if is(&a[i], "SETNAME") && i + 1 < a.len() {
            if !valid_client_name(&a[i + 1]) {
                return args::err(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                )
                .into();
            }
            name = Some(a[i + 1].clone());
            i += 2;
        } else {
            return Reply::error(format!(
                "ERR Syntax error in HELLO option '{}'",
                args::show(&a[i], 64)
            ))
            .into();
        }
    }
    ctx.session.protocol = protocol;
    if let Some(name) = name {
        ctx.session
            .client
            .update_names(|n| n.name = (!name.is_empty()).then_some(name));
    }
    let proto = if protocol == ProtocolVersion::Resp3 {
        3
    } else {
        2
    };
    let s = |t: &'static str| Reply::Bulk(Bytes::from_static(t.as_bytes()));
    Reply::Map(vec![
        (s("server"), s("redis")),
        (s("version"), s(crate::REDIS_COMPAT_VERSION)),
        (s("proto"), Reply::Integer(proto)),
        (s("id"), Reply::Integer(ctx.session.id as i64)),
        (s("mode"), s("standalone")),
        (s("role"), s("master")),
        (s("modules"), Reply::Array(vec![])),
        (s("strata_version"), s(crate::VERSION)),
    ])
    .into()
}
