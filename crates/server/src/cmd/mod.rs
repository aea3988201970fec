//! Commands: one module per family, each command parsed and then applied.
//!
//! The [`TABLE`] says, for each command, its arity (Redis convention:
//! positive = exact, negative = at least), whether it writes, and its
//! handler. A handler turns arguments into an [`Action`]: an immediate
//! reply (reads and connection commands) or a [`Mutation`] for the
//! group-commit writer. Writes never touch storage directly: everything that
//! changes state is a `Mutation`, which is what a replicated log will carry.

mod args;
pub mod backup;
mod client;
pub mod cluster;
mod connection;
pub mod docs;
mod expiry;
mod keys;
pub mod kv;
mod range;
pub mod redis_cluster;
pub mod search;
mod server;
pub mod slowlog;
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
    /// BACKUP: the connection runs it (it may wait for a read point and
    /// read from the engine) and replies.
    Backup(backup::BackupCall),
    /// FT.SEARCH whose KNN text needs embedding, FT.DROPINDEX DD: the
    /// connection runs it (it may wait on the embedder or on writes) and
    /// replies.
    Search(search::Call),
    /// A write whose values need vectors first (EMBED fields): the
    /// connection embeds, then it joins the pending writes like any
    /// write (see `crate::embedding`). Never returned by a handler: the
    /// connection makes it from an [`Action::Write`].
    Embed(crate::embedding::Job),
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

/// What a command does to the keyspace: the connection decides the read
/// barrier and the write route from this alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Reads keyspace data. In cluster mode it waits for a ReadIndex
    /// point first (unless the connection is READONLY), and it runs after
    /// the writes pipelined before it are committed, so it sees them.
    Read,
    /// Builds a [`Mutation`] ([`Action::Write`]) that joins the
    /// connection's pending writes and goes through the write path; it
    /// reads nothing, so nothing waits before it.
    Write,
    /// Neither: connection, server, transaction and cluster commands.
    /// Runs after the pending writes are committed (replies stay in
    /// order), without a read barrier. EXEC is one: its mutation goes
    /// through the write path alone, and the log orders its reads.
    Admin,
}

/// How long a command may take, for the connection's cached clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    /// Microseconds: the clock read for the batch stays valid after it.
    Fast,
    /// May take long (KEYS, SCAN, RANGE, INFO...): the next command
    /// reads the clock again, and the connection's statistics are added
    /// in before it runs (INFO sees the commands pipelined before it).
    Slow,
}

/// A command's kind, cost and COMMAND INFO flags, chosen together: the
/// table names one of the classes below, so a command flagged `readonly`
/// cannot be given another kind by a slip of the pen (and the test
/// `flags_agree_with_kind_and_cost` checks every entry).
pub struct Class {
    pub kind: Kind,
    pub cost: Cost,
    pub flags: &'static [&'static str],
}

const fn class(kind: Kind, cost: Cost, flags: &'static [&'static str]) -> Class {
    Class { kind, cost, flags }
}

pub struct Spec {
    pub name: &'static str,
    pub arity: i32,
    /// Decides the read barrier and the write route (see [`Kind`]).
    pub kind: Kind,
    /// Decides whether the connection's cached clock survives the command.
    pub cost: Cost,
    /// COMMAND INFO's flags: documentation for clients, never read to
    /// decide behaviour (a test checks they agree with `kind` and `cost`).
    pub flags: &'static [&'static str],
    /// First key, last key, step (COMMAND INFO); 0 when no keys.
    pub keys: (i64, i64, i64),
    pub handler: Handler,
    /// A container's subcommands (CLIENT KILL...): their arity is checked
    /// before the handler runs, and COMMAND INFO/DOCS list them.
    pub subcommands: &'static [SubSpec],
}

/// One subcommand of a container command, as COMMAND INFO shows it
/// (`client|kill`). Subcommands take no keys.
pub struct SubSpec {
    /// Lowercase, without the container's name.
    pub name: &'static str,
    pub arity: i32,
    pub flags: &'static [&'static str],
}

// Flag sets, as Redis 7 reports them for the same commands (checked
// against a real redis-server by tests/clients.rs). Some describe Redis
// machinery Strata lacks (`denyoom`: refused past maxmemory; `noscript`,
// `loading`, `stale`, `allow_busy`, `no_auth`): they are kept identical so
// that clients which key off flags behave the same; they promise nothing
// Strata breaks.
const W: Class = class(Kind::Write, Cost::Slow, &["write"]);
/// Writes that may add data.
const WD: Class = class(Kind::Write, Cost::Slow, &["write", "denyoom"]);
const WDF: Class = class(Kind::Write, Cost::Fast, &["write", "denyoom", "fast"]);
const WF: Class = class(Kind::Write, Cost::Fast, &["write", "fast"]);
const R: Class = class(Kind::Read, Cost::Fast, &["readonly", "fast"]);
const RO: Class = class(Kind::Read, Cost::Slow, &["readonly"]);
const F: Class = class(Kind::Admin, Cost::Fast, &["fast"]);
const LSF: Class = class(Kind::Admin, Cost::Fast, &["loading", "stale", "fast"]);
const LS: Class = class(Kind::Admin, Cost::Slow, &["loading", "stale"]);
const NLSF: Class = class(
    Kind::Admin,
    Cost::Fast,
    &["noscript", "loading", "stale", "fast"],
);
/// HELLO and QUIT.
const HANDSHAKE: Class = class(
    Kind::Admin,
    Cost::Fast,
    &[
        "noscript",
        "loading",
        "stale",
        "fast",
        "no_auth",
        "allow_busy",
    ],
);
/// Redis's flags for MULTI, DISCARD, WATCH, UNWATCH.
const TX_FLAGS: &[&str] = &["noscript", "loading", "stale", "fast", "allow_busy"];
const TX: Class = class(Kind::Admin, Cost::Fast, TX_FLAGS);
/// WATCH: Redis does not flag it `readonly`, but it reads data: the
/// version it keeps must be of a state at least as new as any write
/// acknowledged before it, or EXEC would abort on writes that came
/// before WATCH. So it takes the read barrier.
const TX_WATCH: Class = class(Kind::Read, Cost::Fast, TX_FLAGS);
/// EXEC: not Redis's `skip_slowlog`: Strata cannot time the commands
/// inside a transaction one by one, so it logs EXEC instead.
const EXEC: Class = class(Kind::Admin, Cost::Slow, &["noscript", "loading", "stale"]);
/// Containers (CLIENT, CONFIG...): their subcommands carry the flags.
const NONE: Class = class(Kind::Admin, Cost::Slow, &[]);
/// BACKUP: Admin, not Read, although it reads the whole store: BEGIN
/// takes its read point itself (once per backup, not per chunk), and
/// NEXT reads the snapshot BEGIN took, which no barrier could change.
const BACKUP: Class = class(Kind::Admin, Cost::Slow, &["admin", "noscript"]);

// Subcommands' flag sets: COMMAND INFO only.
const SUB_LS: &[&str] = &["loading", "stale"];
const NLS: &[&str] = &["noscript", "loading", "stale"];
const ANLS: &[&str] = &["admin", "noscript", "loading", "stale"];

macro_rules! spec {
    ($name:literal, $arity:expr, $class:expr, $keys:expr, $handler:path) => {
        spec!($name, $arity, $class, $keys, $handler, &[])
    };
    ($name:literal, $arity:expr, $class:expr, $keys:expr, $handler:path, $subs:expr) => {
        Spec {
            name: $name,
            arity: $arity,
            kind: $class.kind,
            cost: $class.cost,
            flags: $class.flags,
            keys: $keys,
            handler: $handler,
            subcommands: $subs,
        }
    };
}

macro_rules! sub {
    ($name:literal, $arity:expr, $flags:expr) => {
        SubSpec {
            name: $name,
            arity: $arity,
            flags: $flags,
        }
    };
}

/// Every command Strata knows. Names are lowercase. Each has an entry in
/// `docs::DOCS` too (a test checks both ways).
pub static TABLE: &[Spec] = &[
    // Connection
    spec!("ping", -1, F, (0, 0, 0), connection::ping),
    spec!("echo", 2, LSF, (0, 0, 0), connection::echo),
    spec!("hello", -1, HANDSHAKE, (0, 0, 0), connection::hello),
    spec!("select", 2, LSF, (0, 0, 0), connection::select),
    spec!("quit", -1, HANDSHAKE, (0, 0, 0), connection::quit),
    spec!("client", -2, NONE, (0, 0, 0), client::client, CLIENT_SUBS),
    spec!("readonly", 1, LSF, (0, 0, 0), connection::readonly),
    spec!("readwrite", 1, LSF, (0, 0, 0), connection::readonly),
    spec!("asking", 1, F, (0, 0, 0), redis_cluster::asking),
    // Transactions
    spec!("multi", 1, TX, (0, 0, 0), tx::multi),
    spec!("exec", 1, EXEC, (0, 0, 0), tx::exec),
    spec!("discard", 1, TX, (0, 0, 0), tx::discard),
    spec!("watch", -2, TX_WATCH, (1, -1, 1), tx::watch),
    spec!("unwatch", 1, TX, (0, 0, 0), tx::unwatch),
    // Server
    spec!("command", -1, LS, (0, 0, 0), server::command, COMMAND_SUBS),
    spec!("config", -2, NONE, (0, 0, 0), server::config, CONFIG_SUBS),
    spec!("info", -1, LS, (0, 0, 0), server::info),
    spec!("dbsize", 1, R, (0, 0, 0), server::dbsize),
    spec!("flushdb", -1, W, (0, 0, 0), server::flushall),
    spec!("flushall", -1, W, (0, 0, 0), server::flushall),
    spec!("time", 1, LSF, (0, 0, 0), server::time),
    spec!(
        "slowlog",
        -2,
        NONE,
        (0, 0, 0),
        slowlog::slowlog,
        SLOWLOG_SUBS
    ),
    spec!(
        "cluster",
        -2,
        NONE,
        (0, 0, 0),
        cluster::cluster,
        CLUSTER_SUBS
    ),
    spec!("role", 1, NLSF, (0, 0, 0), cluster::role),
    spec!("backup", -2, BACKUP, (0, 0, 0), backup::backup, BACKUP_SUBS),
    // Strings
    spec!("get", 2, R, (1, 1, 1), strings::get),
    spec!("set", -3, WD, (1, 1, 1), strings::set),
    spec!("setnx", 3, WDF, (1, 1, 1), strings::setnx),
    spec!("setex", 4, WD, (1, 1, 1), strings::setex),
    spec!("psetex", 4, WD, (1, 1, 1), strings::psetex),
    spec!("getset", 3, WDF, (1, 1, 1), strings::getset),
    spec!("getdel", 2, WF, (1, 1, 1), strings::getdel),
    spec!("getex", -2, WF, (1, 1, 1), strings::getex),
    spec!("mget", -2, R, (1, -1, 1), strings::mget),
    spec!("mset", -3, WD, (1, -1, 2), strings::mset),
    spec!("msetnx", -3, WD, (1, -1, 2), strings::msetnx),
    spec!("append", 3, WDF, (1, 1, 1), strings::append),
    spec!("strlen", 2, R, (1, 1, 1), strings::strlen),
    spec!("incr", 2, WDF, (1, 1, 1), strings::incr),
    spec!("decr", 2, WDF, (1, 1, 1), strings::decr),
    spec!("incrby", 3, WDF, (1, 1, 1), strings::incrby),
    spec!("decrby", 3, WDF, (1, 1, 1), strings::decrby),
    spec!("incrbyfloat", 3, WDF, (1, 1, 1), strings::incrbyfloat),
    spec!("getrange", 4, RO, (1, 1, 1), strings::getrange),
    spec!("substr", 4, RO, (1, 1, 1), strings::getrange),
    spec!("setrange", 4, WD, (1, 1, 1), strings::setrange),
    // Keys
    spec!("del", -2, W, (1, -1, 1), keys::del),
    spec!("unlink", -2, WF, (1, -1, 1), keys::del),
    spec!("exists", -2, R, (1, -1, 1), keys::exists),
    spec!("type", 2, R, (1, 1, 1), keys::type_of),
    spec!("rename", 3, W, (1, 2, 1), keys::rename),
    spec!("renamenx", 3, WF, (1, 2, 1), keys::renamenx),
    spec!("keys", 2, RO, (0, 0, 0), keys::keys),
    spec!("scan", -2, RO, (0, 0, 0), keys::scan),
    // Expiry
    spec!("expire", -3, WF, (1, 1, 1), expiry::expire),
    spec!("pexpire", -3, WF, (1, 1, 1), expiry::pexpire),
    spec!("expireat", -3, WF, (1, 1, 1), expiry::expireat),
    spec!("pexpireat", -3, WF, (1, 1, 1), expiry::pexpireat),
    spec!("ttl", 2, R, (1, 1, 1), expiry::ttl),
    spec!("pttl", 2, R, (1, 1, 1), expiry::pttl),
    spec!("expiretime", 2, R, (1, 1, 1), expiry::expiretime),
    spec!("pexpiretime", 2, R, (1, 1, 1), expiry::pexpiretime),
    spec!("persist", 2, WF, (1, 1, 1), expiry::persist),
    // Strata's own, and the text protocol's names as RESP aliases
    spec!("range", -3, RO, (1, 2, 1), range::range),
    spec!("readrange", -3, RO, (1, 2, 1), range::range),
    spec!("put", 3, WD, (1, 1, 1), strings::put),
    spec!("read", 2, R, (1, 1, 1), strings::get),
    spec!("delete", -2, W, (1, -1, 1), keys::del),
    spec!("batchput", -3, WD, (1, -1, 2), strings::mset),
    // Versioned keys: what the HTTP API runs (see `kv.rs`)
    spec!("kv.get", 2, R, (1, 1, 1), kv::get),
    spec!("kv.prefix", -2, RO, (1, 1, 1), kv::prefix),
    spec!("kv.range", -3, RO, (1, 2, 1), kv::range),
    // Keys sit among the ops: `kv::txn` checks each one's size itself.
    spec!("kv.txn", -2, WD, (0, 0, 0), kv::txn),
    // Search: RediSearch's FT.* (`search.rs`) and Strata's SEARCH
    // RediSearch's arities (FT.CREATE i SCHEMA f is an arity error there).
    spec!("ft.create", -5, WD, (0, 0, 0), search::ft_create),
    spec!("ft.search", -2, RO, (0, 0, 0), search::ft_search),
    spec!("ft.info", -2, RO, (0, 0, 0), search::ft_info),
    spec!("ft._list", 1, RO, (0, 0, 0), search::ft_list),
    spec!("ft.dropindex", -2, W, (0, 0, 0), search::ft_dropindex),
    spec!("search", -4, RO, (0, 0, 0), search::search),
];

/// CLIENT's subcommands. PAUSE is refused (not supported by Strata) and so
/// not listed; REPLY and TRACKING accept only what changes nothing (ON,
/// OFF): see `client.rs`.
static CLIENT_SUBS: &[SubSpec] = &[
    sub!("caching", 3, NLS),
    sub!("getname", 2, NLS),
    sub!("getredir", 2, NLS),
    sub!("help", 2, SUB_LS),
    sub!("id", 2, NLS),
    sub!("info", 2, NLS),
    sub!("kill", -3, ANLS),
    sub!("list", -2, ANLS),
    sub!("no-evict", 3, ANLS),
    sub!("no-touch", 3, NLS),
    sub!("reply", 3, NLS),
    sub!("setinfo", 4, NLS),
    sub!("setname", 3, NLS),
    sub!("tracking", -3, NLS),
    sub!("trackinginfo", 2, NLS),
    sub!("unblock", -3, ANLS),
    sub!("unpause", 2, ANLS),
];

static COMMAND_SUBS: &[SubSpec] = &[
    sub!("count", 2, SUB_LS),
    sub!("docs", -2, SUB_LS),
    sub!("getkeys", -4, SUB_LS),
    sub!("help", 2, SUB_LS),
    sub!("info", -2, SUB_LS),
    sub!("list", -2, SUB_LS),
];

static CONFIG_SUBS: &[SubSpec] = &[
    sub!("get", -3, ANLS),
    sub!("help", 2, SUB_LS),
    sub!("resetstat", 2, ANLS),
    sub!("set", -4, ANLS),
];

/// Redis Cluster's subcommands Strata answers, then Strata's own
/// (membership: see `cluster.rs`).
/// Redis 7's SLOWLOG subcommands.
static SLOWLOG_SUBS: &[SubSpec] = &[
    sub!("get", -2, &["admin", "loading", "stale"]),
    sub!("help", 2, &["loading", "stale"]),
    sub!("len", 2, &["admin", "loading", "stale"]),
    sub!("reset", 2, &["admin", "loading", "stale"]),
];

/// Strata's BACKUP (see `backup.rs`).
static BACKUP_SUBS: &[SubSpec] = &[
    sub!("begin", -2, &["admin", "noscript"]),
    sub!("end", 3, &["admin", "noscript"]),
    sub!("list", 2, &["admin", "noscript"]),
    sub!("next", 4, &["admin", "noscript"]),
];

static CLUSTER_SUBS: &[SubSpec] = &[
    sub!("info", 2, &["stale"]),
    sub!("keyslot", 3, &["stale"]),
    sub!("myid", 2, &["stale"]),
    sub!("nodes", 2, &["stale"]),
    sub!("shards", 2, &["stale"]),
    sub!("slots", 2, &["stale"]),
    sub!("addlearner", 4, &["admin", "stale"]),
    sub!("addnode", 4, &["admin", "stale"]),
    sub!("leader", 2, &["stale"]),
    sub!("members", 2, &["stale"]),
    sub!("promote", 3, &["admin", "stale"]),
    sub!("removenode", 3, &["admin", "stale"]),
    sub!("status", 2, &["stale"]),
    sub!("stepdown", 2, &["admin", "stale"]),
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

/// A command's position in [`TABLE`] (its statistics slot). Every
/// `&'static Spec` handed out comes from the table.
pub fn spec_index(spec: &'static Spec) -> Option<u16> {
    let offset = (spec as *const Spec as usize).wrapping_sub(TABLE.as_ptr() as usize);
    let idx = offset / std::mem::size_of::<Spec>();
    (idx < TABLE.len() && offset.is_multiple_of(std::mem::size_of::<Spec>()))
        .then(|| u16::try_from(idx).ok())
        .flatten()
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

/// Checks arity (a subcommand's too), records the command for CLIENT
/// LIST, then runs the handler.
pub fn execute(spec: &'static Spec, ctx: &mut Ctx<'_>, args: &[Bytes]) -> Action {
    let sub = subcommand(spec, args);
    ctx.session.client.set_cmd(cmd_code(spec, sub));
    run_checked(spec, sub, ctx, args)
}

/// [`execute`] without recording the command: EXEC's queued commands (CLIENT
/// LIST shows `cmd=exec`, as Redis does).
pub fn execute_queued(spec: &'static Spec, ctx: &mut Ctx<'_>, args: &[Bytes]) -> Action {
    run_checked(spec, subcommand(spec, args), ctx, args)
}

fn run_checked(
    spec: &'static Spec,
    sub: Option<usize>,
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
) -> Action {
    if let Some(refusal) = arity_error(spec, sub, args.len()) {
        return Action::Reply(refusal);
    }
    if let Some(refusal) = check_keys(spec, ctx, args) {
        return Action::Reply(refusal);
    }
    (spec.handler)(ctx, args)
}

/// Redis's refusal of a wrong number of arguments, the command's or its
/// subcommand's (`sub`: from [`subcommand`]).
fn arity_error(spec: &Spec, sub: Option<usize>, args_len: usize) -> Option<Reply> {
    if !arity_ok(spec.arity, args_len) {
        // A module's commands are named as registered: RediSearch's in
        // upper case (`'FT.CREATE'`).
        if spec.name.starts_with("ft.") {
            return Some(args::wrong_arity(&spec.name.to_ascii_uppercase()));
        }
        return Some(args::wrong_arity(spec.name));
    }
    let sub = &spec.subcommands[sub?];
    (!arity_ok(sub.arity, args_len))
        .then(|| args::wrong_arity(&format!("{}|{}", spec.name, sub.name)))
}

/// [`arity_error`] for a command about to be queued by MULTI.
pub fn queue_arity_error(spec: &Spec, args: &[Bytes]) -> Option<Reply> {
    arity_error(spec, subcommand(spec, args), args.len())
}

/// The index of a container's subcommand named by `args[1]`, if known.
/// Costs nothing for other commands (their list is empty).
fn subcommand(spec: &Spec, args: &[Bytes]) -> Option<usize> {
    if spec.subcommands.is_empty() {
        return None;
    }
    let name = args.get(1)?;
    spec.subcommands
        .iter()
        .position(|s| name.eq_ignore_ascii_case(s.name.as_bytes()))
}

/// A command (and subcommand) as one number, for a relaxed atomic store
/// per request: table index + 1, shifted, then subcommand index + 1
/// (0: none). 0 is "no command yet".
pub fn cmd_code(spec: &'static Spec, sub: Option<usize>) -> u32 {
    let index =
        (spec as *const Spec as usize).wrapping_sub(TABLE.as_ptr() as usize) / size_of::<Spec>();
    let sub = sub.map_or(0, |i| i as u32 + 1) & 0xff;
    ((index as u32 + 1) << 8) | sub
}

/// The name a [`cmd_code`] stands for (`get`, `client|list`), as CLIENT
/// LIST's `cmd=` shows it; `NULL` before the first command, as in Redis.
pub fn cmd_name(code: u32) -> String {
    let spec = (code >> 8)
        .checked_sub(1)
        .and_then(|i| TABLE.get(i as usize));
    let Some(spec) = spec else {
        return "NULL".into();
    };
    match (code & 0xff)
        .checked_sub(1)
        .and_then(|i| spec.subcommands.get(i as usize))
    {
        Some(sub) => format!("{}|{}", spec.name, sub.name),
        None => spec.name.into(),
    }
}

/// Finds `name` or `container|sub` (COMMAND INFO, COMMAND DOCS).
pub fn lookup_full(name: &[u8]) -> Option<(&'static Spec, Option<&'static SubSpec>)> {
    match name.iter().position(|&b| b == b'|') {
        None => lookup(name).map(|spec| (spec, None)),
        Some(bar) => {
            let spec = lookup(&name[..bar])?;
            let sub = spec
                .subcommands
                .iter()
                .find(|s| name[bar + 1..].eq_ignore_ascii_case(s.name.as_bytes()))?;
            Some((spec, Some(sub)))
        }
    }
}

/// Redis's arity convention: positive = exact, negative = at least.
pub fn arity_ok(arity: i32, args_len: usize) -> bool {
    let n = i32::try_from(args_len).unwrap_or(i32::MAX);
    if arity >= 0 { n == arity } else { n >= -arity }
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
        Ok(Outcome::Refused(e)) => {
            search::refusal(&e).unwrap_or_else(|| Reply::error(format!("ERR {e}")))
        }
        // EXEC renders these itself (`tx::exec_reply`); generic forms here.
        Ok(Outcome::Many(outcomes)) => {
            Reply::Array(outcomes.into_iter().map(|o| outcome_reply(Ok(o))).collect())
        }
        Ok(Outcome::Aborted) => Reply::NullArray,
        // KV.TXN's (`kv.rs`).
        Ok(Outcome::Checked { version, outcomes }) => Reply::Array(vec![
            Reply::ok(),
            Reply::Integer(i64::try_from(version).unwrap_or(i64::MAX)),
            Reply::Array(outcomes.into_iter().map(|o| outcome_reply(Ok(o))).collect()),
        ]),
        Ok(Outcome::CheckFailed { check, version }) => Reply::Array(vec![
            Reply::status("CONFLICT"),
            Reply::Integer(i64::from(check)),
            Reply::Integer(i64::try_from(version).unwrap_or(i64::MAX)),
        ]),
        Ok(Outcome::VersionedRecords(records)) => Reply::Array(
            records
                .into_iter()
                .map(|r| {
                    r.map_or(Reply::Null, |(value, at, version)| {
                        Reply::Array(kv::record_reply(value, version, at))
                    })
                })
                .collect(),
        ),
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
pub fn path_error(e: &crate::write_path::PathError) -> Reply {
    match e {
        crate::write_path::PathError::Storage(e) => storage_error(e),
        // Already prefixed: CLUSTERDOWN, TRYAGAIN or ERR.
        crate::write_path::PathError::Cluster(c) => Reply::error(c.to_string()),
    }
}

/// A write's reply in cluster or single-node mode.
pub fn write_reply(result: Result<Outcome, crate::write_path::PathError>) -> Reply {
    match result {
        Ok(o) => outcome_reply(Ok(o)),
        Err(e) => path_error(&e),
    }
}

pub fn storage_error(e: &StorageError) -> Reply {
    match e {
        StorageError::ShuttingDown => Reply::error("ERR server is shutting down"),
        other => Reply::error(format!("ERR {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Commands that read keyspace data though Redis does not flag them
    /// `readonly` (see `TX_WATCH`): they take the read barrier all the same.
    const READS_NOT_FLAGGED_READONLY: &[&str] = &["watch"];

    /// The kind, not the flags, decides the read barrier and the write
    /// route; this keeps the two from drifting apart, so a new read
    /// command cannot skip the barrier by accident, nor a write the
    /// write path.
    #[test]
    fn flags_agree_with_kind_and_cost() {
        for spec in TABLE {
            let has = |flag: &str| spec.flags.contains(&flag);
            let name = spec.name;
            assert_eq!(
                has("write"),
                spec.kind == Kind::Write,
                "{name}: write flag vs kind"
            );
            if has("readonly") {
                assert_eq!(spec.kind, Kind::Read, "{name}: readonly but not a read");
            }
            if spec.kind == Kind::Read && !has("readonly") {
                assert!(
                    READS_NOT_FLAGGED_READONLY.contains(&name),
                    "{name}: a read not flagged readonly"
                );
            }
            assert_eq!(
                has("fast"),
                spec.cost == Cost::Fast,
                "{name}: fast flag vs cost"
            );
        }
        for name in READS_NOT_FLAGGED_READONLY {
            assert_eq!(lookup(name.as_bytes()).map(|s| s.kind), Some(Kind::Read));
        }
    }
}
