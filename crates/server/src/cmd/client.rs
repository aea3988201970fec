//! CLIENT: names, ids, CLIENT LIST / INFO / KILL over the connection
//! registry (`crate::clients`), and the subcommands Redis clients send that
//! Strata answers without the feature behind them (tracking, pause).
//!
//! CLIENT LIST uses Redis 7.2's line format. Fields Strata has are real:
//! `id addr laddr fd name age idle flags multi qbuf qbuf-free argv-mem
//! multi-mem rbs tot-mem cmd resp lib-name lib-ver` (other connections'
//! `idle`, `qbuf`, `multi`, `flags` as of their last batch of requests).
//! The rest are fixed: `db=0 sub=0 psub=0 ssub=0 obl=0 oll=0 omem=0
//! events=r user=default redir=-1` (one database, no pub/sub, replies are
//! flushed before a connection waits, one user, no tracking), and `rbp`
//! repeats `rbs`. A text-protocol connection is listed with `resp=0` and
//! the text listener's address as `laddr`.

use std::sync::Arc;

use bytes::Bytes;
use strata_protocol::resp::Reply;

use super::args::{self, is};
use super::connection::valid_client_name;
use super::{Action, Ctx};
use crate::clients::{ClientInfo, FLAG_MULTI, FLAG_READONLY};

pub fn client(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    let sub = &a[1];
    let reply = if is(sub, "LIST") {
        list(ctx, a)
    } else if is(sub, "INFO") {
        let me = Arc::clone(&ctx.session.client);
        verbatim(line(&me, Some(ctx), a) + "\n")
    } else if is(sub, "KILL") {
        return kill(ctx, a);
    } else if is(sub, "HELP") {
        help()
    } else if is(sub, "ID") {
        Reply::Integer(ctx.session.id as i64)
    } else if is(sub, "SETNAME") || is(sub, "GETNAME") || is(sub, "SETINFO") {
        names(ctx, a)
    } else if is(sub, "NO-EVICT") || is(sub, "NO-TOUCH") {
        match on_off(&a[2]) {
            Some(on) if is(sub, "NO-EVICT") => ctx.session.client.set_no_evict(on),
            Some(on) => ctx.session.client.set_no_touch(on),
            None => return args::syntax().into(),
        }
        Reply::ok()
    } else {
        without_the_feature(a)
    };
    reply.into()
}

/// SETNAME, GETNAME, SETINFO.
fn names(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Reply {
    let client = &ctx.session.client;
    if is(&a[1], "GETNAME") {
        return client.names().name.map_or(Reply::Null, Reply::Bulk);
    }
    if is(&a[1], "SETNAME") {
        if !valid_client_name(&a[2]) {
            return args::err(
                "ERR Client names cannot contain spaces, newlines or special characters.",
            );
        }
        let name = (!a[2].is_empty()).then(|| a[2].clone());
        client.update_names(|n| n.name = name);
        return Reply::ok();
    }
    let (option, value) = (&a[2], &a[3]);
    let lib_name = is(option, "LIB-NAME");
    if !lib_name && !is(option, "LIB-VER") {
        return Reply::error(format!(
            "ERR Unrecognized option '{}'",
            args::show(option, 64)
        ));
    }
    if !valid_client_name(value) {
        return Reply::error(format!(
            "ERR {} cannot contain spaces, newlines or special characters.",
            args::show(option, 16)
        ));
    }
    let value = (!value.is_empty()).then(|| value.clone());
    client.update_names(|n| {
        if lib_name {
            n.lib_name = value;
        } else {
            n.lib_ver = value;
        }
    });
    Reply::ok()
}

fn on_off(arg: &[u8]) -> Option<bool> {
    if is(arg, "ON") {
        Some(true)
    } else if is(arg, "OFF") {
        Some(false)
    } else {
        None
    }
}

fn verbatim(text: String) -> Reply {
    Reply::Verbatim {
        format: *b"txt",
        text: Bytes::from(text),
    }
}

/// The subcommands behind Redis features Strata does not have (client-side
/// caching, pausing, muting replies, blocking commands): answered as Redis
/// answers a client that does not use the feature, or refused clearly.
fn without_the_feature(a: &[Bytes]) -> Reply {
    let sub = &a[1];
    let unsupported = |what: &str| Reply::error(format!("ERR {what} is not supported by Strata"));
    if is(sub, "GETREDIR") {
        Reply::Integer(-1)
    } else if is(sub, "TRACKINGINFO") {
        let s = |t: &'static str| Reply::Bulk(Bytes::from_static(t.as_bytes()));
        Reply::Map(vec![
            (s("flags"), Reply::Set(vec![s("off")])),
            (s("redirect"), Reply::Integer(-1)),
            (s("prefixes"), Reply::Array(vec![])),
        ])
    } else if is(sub, "CACHING") {
        args::err(
            "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
        )
    } else if is(sub, "TRACKING") {
        match on_off(&a[2]) {
            Some(false) => Reply::ok(),
            Some(true) => unsupported("CLIENT TRACKING ON (client-side caching)"),
            None => args::syntax(),
        }
    } else if is(sub, "REPLY") {
        if is(&a[2], "ON") {
            Reply::ok()
        } else if is(&a[2], "OFF") || is(&a[2], "SKIP") {
            unsupported("CLIENT REPLY OFF|SKIP")
        } else {
            args::syntax()
        }
    } else if is(sub, "UNBLOCK") {
        unblock(a)
    } else if is(sub, "UNPAUSE") {
        // Nothing is ever paused.
        Reply::ok()
    } else if is(sub, "PAUSE") {
        unsupported("CLIENT PAUSE")
    } else {
        Reply::error(format!(
            "ERR unknown subcommand '{}'. Try CLIENT HELP.",
            args::show(sub, 64)
        ))
    }
}

/// Strata has no blocking commands: no client is ever blocked, so the
/// answer is 0 once the arguments are valid.
fn unblock(a: &[Bytes]) -> Reply {
    if let Some(reason) = a.get(3)
        && !(is(reason, "TIMEOUT") || is(reason, "ERROR"))
    {
        return args::err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
    }
    if a.len() > 4 {
        return args::syntax();
    }
    match args::int(&a[2]) {
        Ok(_) => Reply::Integer(0),
        Err(e) => e,
    }
}

/// Redis's client types; every Strata connection is `normal`.
#[derive(Clone, Copy, PartialEq)]
enum ClientType {
    Normal,
    Other,
}

fn client_type(arg: &[u8]) -> Result<ClientType, Reply> {
    if is(arg, "normal") {
        Ok(ClientType::Normal)
    } else if ["master", "replica", "slave", "pubsub"]
        .iter()
        .any(|t| is(arg, t))
    {
        Ok(ClientType::Other)
    } else {
        Err(Reply::error(format!(
            "ERR Unknown client type '{}'",
            args::show(arg, 64)
        )))
    }
}

/// CLIENT LIST [TYPE type] | [ID id [id ...]] (one or the other, as in
/// Redis).
fn list(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Reply {
    let all = ctx.shared.clients.all();
    let chosen: Vec<Arc<ClientInfo>> = if a.len() == 4 && is(&a[2], "TYPE") {
        match client_type(&a[3]) {
            Ok(ClientType::Normal) => all,
            Ok(ClientType::Other) => Vec::new(),
            Err(e) => return e,
        }
    } else if a.len() > 3 && is(&a[2], "ID") {
        let mut ids = Vec::with_capacity(a.len() - 3);
        for raw in &a[3..] {
            match args::int(raw) {
                Ok(id) => ids.push(id),
                Err(_) => return args::err("ERR Invalid client ID"),
            }
        }
        // In the order asked, as Redis answers.
        ids.iter()
            .filter_map(|&id| u64::try_from(id).ok())
            .filter_map(|id| all.iter().find(|c| c.id == id).cloned())
            .collect()
    } else if a.len() != 2 {
        return args::syntax();
    } else {
        all
    };
    let mut text = String::with_capacity(chosen.len() * 400);
    for client in &chosen {
        let me = (client.id == ctx.session.id).then_some(&*ctx);
        text.push_str(&line(client, me, a));
        text.push('\n');
    }
    verbatim(text)
}

/// One CLIENT LIST line. `me`: the calling connection's context when the
/// line is the caller's own, whose live state beats what it published.
fn line(client: &ClientInfo, me: Option<&Ctx<'_>>, args: &[Bytes]) -> String {
    let p = client.published();
    let now_ms = strata_storage::now_ms();
    let names = client.names();
    let text = |b: &Option<Bytes>| {
        b.as_ref()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    let (mut flags, mut multi, mut multi_mem, mut resp, mut idle_s, mut argv_mem) = (
        p.flags,
        p.multi,
        p.multi_mem_bytes,
        p.resp,
        now_ms.saturating_sub(p.active_ms) / 1000,
        0,
    );
    if let Some(ctx) = me {
        let s = &ctx.session;
        flags = crate::clients::flags(s.tx.is_some(), s.readonly);
        multi = s.tx.as_ref().map_or(-1, |t| t.queued_count() as i64);
        multi_mem = s.tx.as_ref().map_or(0, |t| t.queued_bytes() as u64);
        resp = crate::clients::resp_number(s.protocol);
        idle_s = 0;
        argv_mem = args.iter().map(Bytes::len).sum::<usize>();
    }
    format!(
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db=0 sub=0 psub=0 ssub=0 \
         multi={} qbuf={} qbuf-free={} argv-mem={} multi-mem={} rbs={} rbp={} obl=0 oll=0 omem=0 \
         tot-mem={} events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
        client.id,
        client.addr,
        client.laddr,
        client.fd,
        text(&names.name),
        client.created.elapsed().as_secs(),
        idle_s,
        flags_text(client, flags),
        multi,
        p.qbuf_bytes,
        p.qbuf_free_bytes,
        argv_mem,
        multi_mem,
        p.qbuf_bytes + p.qbuf_free_bytes,
        p.qbuf_bytes + p.qbuf_free_bytes,
        p.tot_mem_bytes,
        super::cmd_name(p.cmd),
        resp,
        text(&names.lib_name),
        text(&names.lib_ver),
    )
}

/// Redis's letters, in Redis's order: x (in MULTI), A (killed, closing),
/// r (READONLY), e (NO-EVICT), T (NO-TOUCH); N when none.
fn flags_text(client: &ClientInfo, bits: u8) -> String {
    let mut out = String::new();
    if bits & FLAG_MULTI != 0 {
        out.push('x');
    }
    if client.is_killed() {
        out.push('A');
    }
    if bits & FLAG_READONLY != 0 {
        out.push('r');
    }
    if client.no_evict() {
        out.push('e');
    }
    if client.no_touch() {
        out.push('T');
    }
    if out.is_empty() {
        out.push('N');
    }
    out
}

/// What CLIENT KILL's filters select; all given filters must match.
struct KillFilter {
    id: Option<u64>,
    addr: Option<Bytes>,
    laddr: Option<Bytes>,
    kind: Option<ClientType>,
    skip_me: bool,
    max_age_s: Option<u64>,
}

impl KillFilter {
    fn matches(&self, c: &ClientInfo, me: u64) -> bool {
        !c.is_killed()
            && self.id.is_none_or(|id| c.id == id)
            && self.addr.as_ref().is_none_or(|a| a == c.addr.as_bytes())
            && self.laddr.as_ref().is_none_or(|a| a == c.laddr.as_bytes())
            && self.kind.is_none_or(|k| k == ClientType::Normal)
            && !(self.skip_me && c.id == me)
            && self
                .max_age_s
                .is_none_or(|max| c.created.elapsed().as_secs() > max)
    }
}

/// `CLIENT KILL ip:port` (the old form: OK or an error) or `CLIENT KILL
/// <filter> <value> ...` (the number closed). Killing the caller answers
/// first, then closes, as in Redis.
fn kill(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    let old_form = a.len() == 3;
    let filter = if old_form {
        KillFilter {
            id: None,
            addr: Some(a[2].clone()),
            laddr: None,
            kind: None,
            skip_me: false,
            max_age_s: None,
        }
    } else {
        match kill_filter(&a[2..]) {
            Ok(f) => f,
            Err(e) => return e.into(),
        }
    };
    let me = ctx.session.id;
    let mut killed = 0i64;
    let mut killed_me = false;
    for client in ctx.shared.clients.all() {
        if filter.matches(&client, me) {
            client.kill();
            killed += 1;
            killed_me |= client.id == me;
        }
    }
    let reply = match (old_form, killed) {
        (true, 0) => return args::err("ERR No such client").into(),
        (true, _) => Reply::ok(),
        (false, n) => Reply::Integer(n),
    };
    if killed_me {
        Action::Close(reply)
    } else {
        reply.into()
    }
}

/// The new form's `<filter> <value>` pairs, with Redis's errors.
fn kill_filter(pairs: &[Bytes]) -> Result<KillFilter, Reply> {
    if !pairs.len().is_multiple_of(2) {
        return Err(args::syntax());
    }
    let mut f = KillFilter {
        id: None,
        addr: None,
        laddr: None,
        kind: None,
        skip_me: true,
        max_age_s: None,
    };
    for pair in pairs.chunks_exact(2) {
        let (option, value) = (&pair[0], &pair[1]);
        if is(option, "ID") {
            match args::int(value) {
                Ok(id) if id >= 1 => f.id = Some(id as u64),
                _ => return Err(args::err("ERR client-id should be greater than 0")),
            }
        } else if is(option, "TYPE") {
            f.kind = Some(client_type(value)?);
        } else if is(option, "ADDR") {
            f.addr = Some(value.clone());
        } else if is(option, "LADDR") {
            f.laddr = Some(value.clone());
        } else if is(option, "USER") {
            // Strata has one user, `default`, whom every client is.
            if !is(value, "default") {
                return Err(Reply::error(format!(
                    "ERR No such user '{}'",
                    args::show(value, 64)
                )));
            }
        } else if is(option, "SKIPME") {
            f.skip_me = match on_yes_no(value) {
                Some(yes) => yes,
                None => return Err(args::syntax()),
            };
        } else if is(option, "MAXAGE") {
            match args::int(value) {
                Ok(s) if s >= 0 => f.max_age_s = Some(s as u64),
                Ok(_) => return Err(args::syntax()),
                Err(e) => return Err(e),
            }
        } else {
            return Err(args::syntax());
        }
    }
    Ok(f)
}

fn on_yes_no(arg: &[u8]) -> Option<bool> {
    if is(arg, "yes") {
        Some(true)
    } else if is(arg, "no") {
        Some(false)
    } else {
        None
    }
}

/// CLIENT HELP: every subcommand Strata answers, Redis's layout.
fn help() -> Reply {
    const LINES: &[&str] = &[
        "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CACHING (YES|NO)",
        "    Refused: Strata has no client-side caching (tracking is always off).",
        "GETNAME",
        "    Return the name of the current connection.",
        "GETREDIR",
        "    Return -1: tracking is always off in Strata.",
        "ID",
        "    Return the ID of the current connection.",
        "INFO",
        "    Return information about the current client connection.",
        "KILL <ip:port>",
        "    Kill the connection made from <ip:port>.",
        "KILL <option> <value> [<option> <value> [...]]",
        "    Kill the connections matching every option given. Options are:",
        "    * ID <client-id>",
        "      Kill the connection with this ID.",
        "    * ADDR <ip:port>",
        "      Kill connections made from the specified address.",
        "    * LADDR <ip:port>",
        "      Kill connections made to the specified local address (the RESP or text listener).",
        "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
        "      Kill connections by type (every Strata client is NORMAL).",
        "    * USER <username>",
        "      Kill connections authenticated by <username> (Strata has one user, default).",
        "    * SKIPME (YES|NO)",
        "      Skip killing the current connection (default: yes).",
        "    * MAXAGE <maxage>",
        "      Kill connections older than <maxage> seconds.",
        "LIST [options ...]",
        "    Return information about client connections (text-protocol ones have resp=0). Options:",
        "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
        "      Return clients of the specified type.",
        "    * ID <client-id> [<client-id> ...]",
        "      Return the clients with these IDs.",
        "NO-EVICT (ON|OFF)",
        "    Protect the current connection from eviction when client buffers are full.",
        "NO-TOUCH (ON|OFF)",
        "    Accepted: Strata keeps no access times for commands to leave untouched.",
        "REPLY ON",
        "    Accepted; OFF and SKIP are not supported by Strata.",
        "SETINFO <option> <value>",
        "    Set client meta attributes. Options are:",
        "    * LIB-NAME: the client library's name.",
        "    * LIB-VER: the client library's version.",
        "SETNAME <name>",
        "    Assign the name <name> to the current connection.",
        "TRACKING OFF",
        "    Accepted; ON (client-side caching) is not supported by Strata.",
        "TRACKINGINFO",
        "    Report tracking status for the current connection (always off).",
        "UNBLOCK <clientid> [TIMEOUT|ERROR]",
        "    Return 0: Strata has no blocking commands, so no client is blocked.",
        "UNPAUSE",
        "    Accepted: nothing is ever paused (CLIENT PAUSE is not supported by Strata).",
        "HELP",
        "    Print this help.",
    ];
    Reply::Array(LINES.iter().map(|l| Reply::status(*l)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_names_every_listed_subcommand() {
        let Reply::Array(lines) = help() else {
            panic!("help is an array")
        };
        let text: Vec<String> = lines
            .iter()
            .map(|l| match l {
                Reply::Status(s) => s.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        let spec = super::super::lookup(b"client").expect("client");
        for sub in spec.subcommands {
            let upper = sub.name.to_ascii_uppercase();
            assert!(
                text.iter()
                    .any(|l| l.split(' ').next() == Some(upper.as_str())),
                "CLIENT HELP lacks {upper}"
            );
        }
    }

    #[test]
    fn kill_filters_parse_with_redis_errors() {
        let b = |v: &[&str]| {
            v.iter()
                .map(|s| Bytes::from(s.to_string()))
                .collect::<Vec<_>>()
        };
        let err = |v: &[&str]| match kill_filter(&b(v)) {
            Err(Reply::Error(e)) => e.to_string(),
            _ => panic!("{v:?} parsed"),
        };
        assert_eq!(
            err(&["ID", "abc"]),
            "ERR client-id should be greater than 0"
        );
        assert_eq!(err(&["ID", "0"]), "ERR client-id should be greater than 0");
        assert_eq!(err(&["TYPE", "foo"]), "ERR Unknown client type 'foo'");
        assert_eq!(err(&["USER", "bob"]), "ERR No such user 'bob'");
        assert_eq!(err(&["SKIPME", "maybe"]), "ERR syntax error");
        assert_eq!(err(&["FOO", "bar"]), "ERR syntax error");
        assert_eq!(err(&["ID", "1", "TYPE"]), "ERR syntax error");
        let f = kill_filter(&b(&["id", "7", "skipme", "no", "maxage", "3"])).expect("parses");
        assert_eq!((f.id, f.skip_me, f.max_age_s), (Some(7), false, Some(3)));
    }
}
