//! Commands: one module per family, each command parsed and then applied.
//!
//! The [`TABLE`] says, for each command, its arity (Redis convention:
//! positive = exact, negative = at least), whether it writes, and its
//! handler. A handler turns arguments into an [`Action`]: an immediate
//! reply (reads and connection commands) or a [`Mutation`] for the
//! group-commit writer. Writes never touch storage directly: everything that
//! changes state is a `Mutation`, which is what a replicated log will carry.

mod args;
pub mod cluster;
mod connection;
mod expiry;
mod keys;
mod range;
pub mod redis_cluster;
mod server;
mod strings;
pub mod tx;

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;
use strata_protocol::resp::Reply;
use strata_storage::{Mutation, Outcome, StorageError};

use crate::shared::{Session, Shared};

pub use args::show;

/// What a command asks the connection to do.
pub enum Action {
    Reply(Reply),
    /// Submit to the writer; the reply is derived from the outcome.
    Write(Mutation),
    /// Reply, then close the connection (QUIT).
    Close(Reply),
    /// A cluster request; the connection runs it (it may wait on the
    /// network) and replies.
    Cluster(cluster::ClusterCall),
    /// EXEC: one mutation through the write path; the reply is derived
    /// from its outcome (`tx::exec_reply`).
    Exec(tx::ExecPlan),
}

impl From<Reply> for Action {
    fn from(r: Reply) -> Action {
        Action::Reply(r)
    }
}

pub struct Ctx<'a> {
    pub shared: &'a Shared,
    pub session: &'a mut Session,
    /// Wall-clock time at dispatch, Unix ms. Mutations carry it.
    pub now_ms: u64,
}

type Handler = fn(&mut Ctx<'_>, &[Bytes]) -> Action;

pub struct Spec {
    pub name: &'static str,
    pub arity: i32,
    pub write: bool,
    pub flags: &'static [&'static str],
    /// First key, last key, step (COMMAND INFO); 0 when no keys.
    pub keys: (i64, i64, i64),
    pub handler: Handler,
}

const W: &[&str] = &["write"];
const R: &[&str] = &["readonly", "fast"];
const F: &[&str] = &["fast"];
/// Redis's flags for MULTI, DISCARD, WATCH, UNWATCH.
const TX: &[&str] = &["noscript", "loading", "stale", "fast", "allow_busy"];

macro_rules! spec {
    ($name:literal, $arity:expr, $write:expr, $flags:expr, $keys:expr, $handler:path) => {
        Spec {
            name: $name,
            arity: $arity,
            write: $write,
            flags: $flags,
            keys: $keys,
            handler: $handler,
        }
    };
}

/// Every command Strata knows. Names are lowercase.
pub static TABLE: &[Spec] = &[
    // Connection
    spec!("ping", -1, false, F, (0, 0, 0), connection::ping),
    spec!("echo", 2, false, F, (0, 0, 0), connection::echo),
    spec!("hello", -1, false, F, (0, 0, 0), connection::hello),
    spec!("select", 2, false, F, (0, 0, 0), connection::select),
    spec!("quit", -1, false, F, (0, 0, 0), connection::quit),
    spec!("client", -2, false, F, (0, 0, 0), connection::client),
    spec!("readonly", 1, false, F, (0, 0, 0), connection::readonly),
    spec!("readwrite", 1, false, F, (0, 0, 0), connection::readonly),
    spec!("asking", 1, false, F, (0, 0, 0), redis_cluster::asking),
    // Transactions
    spec!("multi", 1, false, TX, (0, 0, 0), tx::multi),
    spec!(
        "exec",
        1,
        false,
        &["noscript", "loading", "stale", "skip_slowlog"],
        (0, 0, 0),
        tx::exec
    ),
    spec!("discard", 1, false, TX, (0, 0, 0), tx::discard),
    spec!("watch", -2, false, TX, (1, -1, 1), tx::watch),
    spec!("unwatch", 1, false, TX, (0, 0, 0), tx::unwatch),
    // Server
    spec!("command", -1, false, &[], (0, 0, 0), server::command),
    spec!("config", -2, false, &[], (0, 0, 0), server::config),
    spec!("info", -1, false, &[], (0, 0, 0), server::info),
    spec!("dbsize", 1, false, R, (0, 0, 0), server::dbsize),
    spec!("flushdb", -1, true, W, (0, 0, 0), server::flushall),
    spec!("flushall", -1, true, W, (0, 0, 0), server::flushall),
    spec!("time", 1, false, F, (0, 0, 0), server::time),
    spec!("cluster", -2, false, &[], (0, 0, 0), cluster::cluster),
    spec!("role", 1, false, F, (0, 0, 0), cluster::role),
    // Strings
    spec!("get", 2, false, R, (1, 1, 1), strings::get),
    spec!("set", -3, true, W, (1, 1, 1), strings::set),
    spec!("setnx", 3, true, W, (1, 1, 1), strings::setnx),
    spec!("setex", 4, true, W, (1, 1, 1), strings::setex),
    spec!("psetex", 4, true, W, (1, 1, 1), strings::psetex),
    spec!("getset", 3, true, W, (1, 1, 1), strings::getset),
    spec!("getdel", 2, true, W, (1, 1, 1), strings::getdel),
    spec!("getex", -2, true, W, (1, 1, 1), strings::getex),
    spec!("mget", -2, false, R, (1, -1, 1), strings::mget),
    spec!("mset", -3, true, W, (1, -1, 2), strings::mset),
    spec!("msetnx", -3, true, W, (1, -1, 2), strings::msetnx),
    spec!("append", 3, true, W, (1, 1, 1), strings::append),
    spec!("strlen", 2, false, R, (1, 1, 1), strings::strlen),
    spec!("incr", 2, true, W, (1, 1, 1), strings::incr),
    spec!("decr", 2, true, W, (1, 1, 1), strings::decr),
    spec!("incrby", 3, true, W, (1, 1, 1), strings::incrby),
    spec!("decrby", 3, true, W, (1, 1, 1), strings::decrby),
    spec!("incrbyfloat", 3, true, W, (1, 1, 1), strings::incrbyfloat),
    spec!("getrange", 4, false, R, (1, 1, 1), strings::getrange),
    spec!("substr", 4, false, R, (1, 1, 1), strings::getrange),
    spec!("setrange", 4, true, W, (1, 1, 1), strings::setrange),
    // Keys
    spec!("del", -2, true, W, (1, -1, 1), keys::del),
    spec!("unlink", -2, true, W, (1, -1, 1), keys::del),
    spec!("exists", -2, false, R, (1, -1, 1), keys::exists),
    spec!("type", 2, false, R, (1, 1, 1), keys::type_of),
    spec!("rename", 3, true, W, (1, 2, 1), keys::rename),
    spec!("renamenx", 3, true, W, (1, 2, 1), keys::renamenx),
    spec!("keys", 2, false, &["readonly"], (0, 0, 0), keys::keys),
    spec!("scan", -2, false, &["readonly"], (0, 0, 0), keys::scan),
    // Expiry
    spec!("expire", -3, true, W, (1, 1, 1), expiry::expire),
    spec!("pexpire", -3, true, W, (1, 1, 1), expiry::pexpire),
    spec!("expireat", -3, true, W, (1, 1, 1), expiry::expireat),
    spec!("pexpireat", -3, true, W, (1, 1, 1), expiry::pexpireat),
    spec!("ttl", 2, false, R, (1, 1, 1), expiry::ttl),
    spec!("pttl", 2, false, R, (1, 1, 1), expiry::pttl),
    spec!("expiretime", 2, false, R, (1, 1, 1), expiry::expiretime),
    spec!("pexpiretime", 2, false, R, (1, 1, 1), expiry::pexpiretime),
    spec!("persist", 2, true, W, (1, 1, 1), expiry::persist),
    // Strata's own, and the text protocol's names as RESP aliases
    spec!("range", -3, false, &["readonly"], (1, 2, 1), range::range),
    spec!(
        "readrange",
        -3,
        false,
        &["readonly"],
        (1, 2, 1),
        range::range
    ),
    spec!("put", 3, true, W, (1, 1, 1), strings::put),
    spec!("read", 2, false, R, (1, 1, 1), strings::get),
    spec!("delete", -2, true, W, (1, -1, 1), keys::del),
    spec!("batchput", -3, true, W, (1, -1, 2), strings::mset),
];

fn index() -> &'static HashMap<&'static [u8], &'static Spec> {
    static INDEX: OnceLock<HashMap<&'static [u8], &'static Spec>> = OnceLock::new();
    INDEX.get_or_init(|| TABLE.iter().map(|s| (s.name.as_bytes(), s)).collect())
}

/// Finds a command by name, case-insensitively, without allocating.
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    const NAME_BYTES_MAX: usize = 16;
    if name.len() > NAME_BYTES_MAX {
        return None;
    }
    let mut buf = [0u8; NAME_BYTES_MAX];
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    index().get(&*lower).copied()
}

/// Redis's reply to an unknown command, naming its first arguments: the
/// argument list stops once it reaches 128 bytes, and each argument is cut
/// to what is left of those 128.
pub fn unknown_command(args: &[Bytes]) -> Reply {
    const ARGS_SHOWN_BYTES_MAX: usize = 128;
    let name = args.first().map(|a| show(a, 128)).unwrap_or_default();
    let mut listed = String::new();
    for arg in args.iter().skip(1) {
        if listed.len() >= ARGS_SHOWN_BYTES_MAX {
            break;
        }
        let room = ARGS_SHOWN_BYTES_MAX - listed.len();
        listed.push_str(&format!("'{}' ", show(arg, room)));
    }
    Reply::error(format!(
        "ERR unknown command '{name}', with args beginning with: {listed}"
    ))
}

/// Checks arity, then runs the handler.
pub fn execute(spec: &Spec, ctx: &mut Ctx<'_>, args: &[Bytes]) -> Action {
    if !arity_ok(spec, args.len()) {
        return Action::Reply(args::wrong_arity(spec.name));
    }
    if let Some(refusal) = check_keys(spec, ctx, args) {
        return Action::Reply(refusal);
    }
    (spec.handler)(ctx, args)
}

/// Redis's arity convention: positive = exact, negative = at least.
pub fn arity_ok(spec: &Spec, args_len: usize) -> bool {
    let n = args_len as i32;
    if spec.arity >= 0 {
        n == spec.arity
    } else {
        n >= -spec.arity
    }
}

/// The refusal of a key over `key-size-bytes-max`, if any.
fn check_keys(spec: &Spec, ctx: &Ctx<'_>, args: &[Bytes]) -> Option<Reply> {
    let key_max = ctx.shared.config.storage.key_size_bytes_max;
    key_positions(spec, args.len())
        .map(|i| args[i].len())
        .find(|&len| len > key_max)
        .map(|len| key_too_large(len, key_max))
}

/// The argument positions that hold keys, from the table's (first, last,
/// step), Redis's convention: a negative last counts from the end.
/// Checking them here, for every command before its handler runs, is what
/// keeps an oversized key out of reads, deletes and the Raft log alike; a
/// handler cannot forget it.
pub fn key_positions(spec: &Spec, args_len: usize) -> impl Iterator<Item = usize> {
    let (first, last, step) = spec.keys;
    let len = args_len as i64;
    let last = if last < 0 {
        len + last
    } else {
        last.min(len - 1)
    };
    let step = step.max(1) as usize;
    let first = if first > 0 { first } else { len };
    (first..=last).step_by(step).map(|i| i as usize)
}

/// The reply to a key over `key-size-bytes-max`, on every front door.
pub fn key_too_large(len: usize, max: usize) -> Reply {
    let e = strata_storage::MutationError::KeyTooLarge { len, max };
    Reply::error(format!("ERR {e}"))
}

/// The reply for a mutation's outcome.
pub fn outcome_reply(result: Result<Outcome, StorageError>) -> Reply {
    match result {
        Ok(Outcome::Ok) => Reply::ok(),
        Ok(Outcome::Nil) => Reply::Null,
        Ok(Outcome::Int(n)) => Reply::Integer(n),
        Ok(Outcome::Bulk(b)) => Reply::Bulk(b),
        Ok(Outcome::Refused(e)) => Reply::error(format!("ERR {e}")),
        // EXEC renders these itself (`tx::exec_reply`); generic forms here.
        Ok(Outcome::Many(outcomes)) => {
            Reply::Array(outcomes.into_iter().map(|o| outcome_reply(Ok(o))).collect())
        }
        Ok(Outcome::Aborted) => Reply::NullArray,
        Ok(Outcome::Records(records)) => Reply::Array(
            records
                .into_iter()
                .map(|r| r.map_or(Reply::Null, |(value, _)| Reply::Bulk(value)))
                .collect(),
        ),
        Err(e) => storage_error(&e),
    }
}

/// The reply for a write or read-barrier failure.
pub fn path_error(e: &crate::shared::PathError) -> Reply {
    match e {
        crate::shared::PathError::Storage(e) => storage_error(e),
        // Already prefixed: CLUSTERDOWN, TRYAGAIN or ERR.
        crate::shared::PathError::Cluster(c) => Reply::error(c.to_string()),
    }
}

/// A write's reply in cluster or single-node mode.
pub fn write_reply(result: Result<Outcome, crate::shared::PathError>) -> Reply {
    match result {
        Ok(o) => outcome_reply(Ok(o)),
        Err(e) => path_error(&e),
    }
}

/// Whether a command reads keyspace data (and so needs a read barrier in
/// cluster mode). WATCH does: the version it keeps must be of a state at
/// least as new as any write acknowledged before it, or EXEC would abort
/// on writes that came before WATCH.
pub fn reads_data(spec: &Spec) -> bool {
    !spec.write && (spec.flags.contains(&"readonly") || spec.name == "watch")
}

pub fn storage_error(e: &StorageError) -> Reply {
    match e {
        StorageError::ShuttingDown => Reply::error("ERR server is shutting down"),
        other => Reply::error(format!("ERR {other}")),
    }
}
