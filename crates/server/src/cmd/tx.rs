//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! Between MULTI and EXEC a connection's commands are checked (known,
//! arity, allowed in a transaction) and queued, answering `+QUEUED`; a
//! failed check marks the transaction, and EXEC then answers EXECABORT
//! with nothing applied, as Redis does. EXEC turns the queue into ONE
//! mutation, `Op::ExecVersioned`: its writes and reads are applied in order by the
//! state machine through one state, so the transaction is one group (one
//! log entry in a cluster), durable together, with no other client's
//! command between its steps, and its reads see its own earlier writes.
//! Arguments are parsed at EXEC time, as in Redis, so a syntax error is
//! that command's error inside EXEC's reply, not an abort.
//!
//! WATCH keeps, for each key, whether it existed and the modification
//! version it was at (`Store::watch`); the state machine compares them
//! with the key's record when it applies the transaction, the same on
//! every replica, and answers `Outcome::Aborted` (a null array) when any
//! key was written since (even with the same value), deleted, expired,
//! or created (see `strata_storage::WatchedVersion`).

use bytes::Bytes;
use strata_protocol::resp::Reply;
use strata_storage::{Mutation, Op, Outcome, Record, Step};

use super::expiry::{TtlKind, ttl_reply};
use super::{Action, Ctx, Spec, args, keys, storage_error, strings};
use crate::write_path::PathError;

/// Commands one transaction may queue.
pub const QUEUED_COMMANDS_MAX: usize = 10_000;
/// Keys one connection may WATCH at once.
pub const WATCHED_KEYS_MAX: usize = 10_000;

const ERR_NOT_ALLOWED: &str = "ERR Command not allowed inside a transaction";
const ERR_EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";

/// A connection's open transaction (between MULTI and EXEC/DISCARD).
#[derive(Default)]
pub struct Transaction {
    queued: Vec<(&'static Spec, Vec<Bytes>)>,
    /// Bytes of every queued argument, bounded by `request-size-bytes-max`.
    queued_bytes: usize,
    /// A command was refused while queuing: EXEC answers EXECABORT.
    failed: bool,
}

impl Transaction {
    /// Bytes held by the queued commands: charged to the connection's
    /// share of the client buffers, as a partial request would be.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Commands queued so far (CLIENT LIST's `multi=`).
    pub fn queued_count(&self) -> usize {
        self.queued.len()
    }
}

/// Renders a read step's live records as the read command would reply.
type Render = fn(&[Bytes], Vec<Option<Record>>, u64) -> Reply;

/// How a command takes part in a transaction.
enum Kind {
    /// Its mutation becomes a step.
    Write,
    /// Its keys are read inside the mutation; the reply is rendered after.
    Read(Render),
    /// It touches no data: run when EXEC runs, its reply kept in place.
    Local,
    /// Refused at queue time (marks the transaction failed).
    Refused,
}

fn kind(spec: &Spec) -> Kind {
    match spec.name {
        // FLUSHALL is applied between groups, never inside one; KV.TXN is
        // a transaction of its own; FT.CREATE and FT.DROPINDEX change the
        // index catalog, a write of their own.
        "flushall" | "flushdb" | "kv.txn" | "ft.create" | "ft.dropindex" => Kind::Refused,
        _ if spec.kind == super::Kind::Write => Kind::Write,
        "get" | "read" => Kind::Read(|_, r, _| match first(r) {
            Some(r) => Reply::Bulk(r.value),
            None => Reply::Null,
        }),
        "mget" => {
            Kind::Read(|_, r, _| strings::mget_reply(r.into_iter().map(|r| r.map(|r| r.value))))
        }
        "exists" => Kind::Read(|_, r, _| keys::exists_reply(r.iter().map(Option::is_some))),
        "type" => Kind::Read(|_, r, _| keys::type_reply(first(r).is_some())),
        "strlen" => Kind::Read(|_, r, _| strings::strlen_reply(first(r).map(|r| r.value).as_ref())),
        "getrange" | "substr" => {
            Kind::Read(|a, r, _| strings::getrange_reply(a, first(r).map(|r| r.value)))
        }
        "ttl" => Kind::Read(|_, r, now| ttl_reply(TtlKind::Ttl, first(r).as_ref(), now)),
        "pttl" => Kind::Read(|_, r, now| ttl_reply(TtlKind::Pttl, first(r).as_ref(), now)),
        "expiretime" => {
            Kind::Read(|_, r, now| ttl_reply(TtlKind::ExpireTime, first(r).as_ref(), now))
        }
        "pexpiretime" => {
            Kind::Read(|_, r, now| ttl_reply(TtlKind::PexpireTime, first(r).as_ref(), now))
        }
        "ping" | "echo" | "time" | "select" | "hello" | "client" | "config" | "command"
        | "info" | "readonly" | "readwrite" | "unwatch" => Kind::Local,
        // CLUSTER and ROLE wait on the network; KEYS, SCAN, RANGE and
        // DBSIZE read the published state, which would not show the
        // transaction's own writes.
        _ => Kind::Refused,
    }
}

fn first(records: Vec<Option<Record>>) -> Option<Record> {
    records.into_iter().next().flatten()
}

/// The commands a connection inside MULTI runs at once instead of
/// queuing.
pub fn runs_in_multi(spec: &Spec) -> bool {
    matches!(spec.name, "exec" | "discard" | "multi" | "watch" | "quit")
}

/// Queues a command of an open transaction, or refuses it and marks the
/// transaction failed. `spec` is None for an unknown command.
pub fn queue(
    tx: &mut Transaction,
    spec: Option<&'static Spec>,
    args: &[Bytes],
    queued_bytes_max: usize,
) -> Reply {
    let refusal = match spec {
        None => Some(super::unknown_command(args)),
        Some(spec) => super::queue_arity_error(spec, args)
            .or_else(|| matches!(kind(spec), Kind::Refused).then(|| args::err(ERR_NOT_ALLOWED))),
    };
    if let Some(reply) = refusal {
        tx.failed = true;
        return reply;
    }
    // What the queue really holds: each argument's bytes and its handle,
    // and the command's own entry (empty arguments are not free).
    let bytes = size_of::<(&Spec, Vec<Bytes>)>()
        + args
            .iter()
            .map(|a| a.len() + size_of::<Bytes>())
            .sum::<usize>();
    if tx.queued.len() >= QUEUED_COMMANDS_MAX
        || tx.queued_bytes.saturating_add(bytes) > queued_bytes_max
    {
        tx.failed = true;
        return Reply::error(format!(
            "ERR transaction too large: at most {QUEUED_COMMANDS_MAX} commands and \
             {queued_bytes_max} bytes may be queued (request-size-bytes-max)"
        ));
    }
    if let Some(spec) = spec {
        tx.queued_bytes += bytes;
        // Copied out of the read buffer: a slice would keep that buffer's
        // whole block alive while the transaction is open, unseen by the
        // charge above.
        tx.queued.push((
            spec,
            args.iter().map(|a| Bytes::copy_from_slice(a)).collect(),
        ));
    }
    Reply::status("QUEUED")
}

pub fn multi(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Action {
    if ctx.session.tx.is_some() {
        return args::err("ERR MULTI calls can not be nested").into();
    }
    ctx.session.tx = Some(Box::default());
    Reply::ok().into()
}

pub fn discard(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Action {
    if ctx.session.tx.take().is_none() {
        return args::err("ERR DISCARD without MULTI").into();
    }
    ctx.session.watched = Vec::new();
    Reply::ok().into()
}

pub fn unwatch(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Action {
    ctx.session.watched = Vec::new();
    Reply::ok().into()
}

/// Reads each key's record now (after a read barrier in cluster mode) and
/// keeps whether it existed and its version for EXEC's check.
pub fn watch(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    if ctx.session.tx.is_some() {
        return args::err("ERR WATCH inside MULTI is not allowed").into();
    }
    let keys = &a[1..];
    if ctx.session.watched.len() + keys.len() > WATCHED_KEYS_MAX {
        return Reply::error(format!(
            "ERR too many watched keys (at most {WATCHED_KEYS_MAX} per connection)"
        ))
        .into();
    }
    for key in keys {
        match ctx.shared.store.watch(key, ctx.now_ms) {
            Ok(w) => ctx.session.watched.push(w),
            Err(e) => return storage_error(&e).into(),
        }
    }
    Reply::ok().into()
}

/// EXEC's mutation and how to turn its outcome into EXEC's reply.
pub struct ExecPlan {
    pub mutation: Mutation,
    pub replies: ExecReplies,
}

/// What EXEC's reply needs besides the outcome.
pub struct ExecReplies {
    slots: Vec<Slot>,
    /// The mutation's clock: TTLs inside EXEC are relative to it.
    now_ms: u64,
}

/// One queued command's place in EXEC's reply.
enum Slot {
    /// Answered without the state machine (an argument error, PING...).
    Local(Reply),
    /// The next write step's outcome.
    Write,
    /// The next read step's records, rendered.
    Read { render: Render, args: Vec<Bytes> },
}

pub fn exec(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Action {
    let Some(tx) = ctx.session.tx.take() else {
        return args::err("ERR EXEC without MULTI").into();
    };
    let watched = std::mem::take(&mut ctx.session.watched);
    if tx.failed {
        return args::err(ERR_EXECABORT).into();
    }
    let mut steps = Vec::with_capacity(tx.queued.len());
    let slots = tx
        .queued
        .into_iter()
        .map(|(spec, args)| plan_one(ctx, spec, args, &mut steps))
        .collect();
    Action::Exec(ExecPlan {
        mutation: Mutation {
            now_ms: ctx.now_ms,
            op: Op::ExecVersioned { steps, watched },
        },
        replies: ExecReplies {
            slots,
            now_ms: ctx.now_ms,
        },
    })
}

/// Parses one queued command now (as Redis does at EXEC) into a step, or
/// into its immediate reply.
fn plan_one(
    ctx: &mut Ctx<'_>,
    spec: &'static Spec,
    args: Vec<Bytes>,
    steps: &mut Vec<Step>,
) -> Slot {
    match kind(spec) {
        Kind::Write => match super::execute_queued(spec, ctx, &args) {
            Action::Write(m) => {
                steps.push(Step::Write(m.op));
                Slot::Write
            }
            Action::Reply(r) => Slot::Local(r),
            _ => Slot::Local(args::err(ERR_NOT_ALLOWED)),
        },
        Kind::Read(render) => {
            if let Some(refusal) = super::check_keys(spec, ctx, &args) {
                return Slot::Local(refusal);
            }
            let keys: Vec<Bytes> = super::key_positions(spec, args.len())
                .map(|i| args[i].clone())
                .collect();
            if keys.len() > ctx.shared.config.reply_elements_max {
                return Slot::Local(args::err(
                    "ERR too many keys for one MGET (reply-elements-max)",
                ));
            }
            steps.push(Step::Read { keys });
            Slot::Read { render, args }
        }
        Kind::Local => match super::execute_queued(spec, ctx, &args) {
            // CLIENT KILL of this very connection: it closes after EXEC.
            Action::Reply(r) | Action::Close(r) => Slot::Local(r),
            _ => Slot::Local(args::err(ERR_NOT_ALLOWED)),
        },
        Kind::Refused => Slot::Local(args::err(ERR_NOT_ALLOWED)),
    }
}

/// EXEC's reply: one element per queued command, in order; a null array
/// when a watched key had changed.
pub fn exec_reply(plan: ExecReplies, result: Result<Outcome, PathError>) -> Reply {
    let now_ms = plan.now_ms;
    let outcomes = match result {
        Ok(Outcome::Many(outcomes)) => outcomes,
        Ok(Outcome::Aborted) => return Reply::NullArray,
        other => return super::write_reply(other),
    };
    let mut outcomes = outcomes.into_iter();
    let missing = || args::err("ERR transaction step without an outcome");
    let replies = plan
        .slots
        .into_iter()
        .map(|slot| match slot {
            Slot::Local(r) => r,
            Slot::Write => outcomes
                .next()
                .map_or_else(missing, |o| super::outcome_reply(Ok(o))),
            Slot::Read { render, args } => match outcomes.next() {
                Some(Outcome::Records(records)) => {
                    let records = records
                        .into_iter()
                        .map(|r| r.map(|(value, at)| Record::new(value, at)))
                        .collect();
                    render(&args, records, now_ms)
                }
                Some(other) => super::outcome_reply(Ok(other)),
                None => missing(),
            },
        })
        .collect();
    Reply::Array(replies)
}
