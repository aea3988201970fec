//! COMMAND, CONFIG, INFO, DBSIZE, FLUSHDB/FLUSHALL, TIME.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use strata_protocol::resp::{ProtocolVersion, Reply};
use strata_storage::pattern::glob_match;
use strata_storage::{FsyncPolicy, Mutation, Op};

use super::args::{self, is};
use super::{Action, Ctx, Spec, TABLE, lookup_full};

fn bulk(s: impl Into<String>) -> Reply {
    Reply::Bulk(Bytes::from(s.into()))
}

/// COMMAND INFO's entry: name, arity, flags, first/last/step key, ACL
/// categories (none: Strata has no ACLs), tips, key specs (none), and a
/// container's subcommands.
fn command_info(spec: &Spec) -> Reply {
    let subs = spec
        .subcommands
        .iter()
        .map(|sub| {
            let name = format!("{}|{}", spec.name, sub.name);
            info_entry(&name, sub.arity, sub.flags, (0, 0, 0), Vec::new())
        })
        .collect();
    info_entry(spec.name, spec.arity, spec.flags, spec.keys, subs)
}

fn info_entry(
    name: &str,
    arity: i32,
    flags: &[&'static str],
    keys: (i64, i64, i64),
    subcommands: Vec<Reply>,
) -> Reply {
    Reply::Array(vec![
        bulk(name),
        Reply::Integer(arity as i64),
        Reply::Set(flags.iter().map(|f| Reply::status(*f)).collect()),
        Reply::Integer(keys.0),
        Reply::Integer(keys.1),
        Reply::Integer(keys.2),
        Reply::Set(vec![]),
        Reply::Set(vec![]),
        Reply::Array(vec![]),
        Reply::Array(subcommands),
    ])
}

pub fn command(_: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    let Some(sub) = a.get(1) else {
        return Reply::Array(TABLE.iter().map(command_info).collect()).into();
    };
    if is(sub, "COUNT") {
        Reply::Integer(TABLE.len() as i64).into()
    } else if is(sub, "DOCS") {
        command_docs(&a[2..]).into()
    } else if is(sub, "INFO") {
        if a.len() == 2 {
            return Reply::Array(TABLE.iter().map(command_info).collect()).into();
        }
        Reply::Array(
            a[2..]
                .iter()
                .map(|name| match lookup_full(name) {
                    Some((spec, None)) => command_info(spec),
                    Some((spec, Some(sub))) => info_entry(
                        &format!("{}|{}", spec.name, sub.name),
                        sub.arity,
                        sub.flags,
                        (0, 0, 0),
                        Vec::new(),
                    ),
                    None => Reply::NullArray,
                })
                .collect(),
        )
        .into()
    } else if is(sub, "LIST") {
        command_list(&a[2..]).into()
    } else if is(sub, "GETKEYS") {
        command_getkeys(&a[2..]).into()
    } else if is(sub, "HELP") {
        command_help().into()
    } else {
        Reply::error(format!(
            "ERR unknown subcommand '{}'. Try COMMAND HELP.",
            args::show(sub, 64)
        ))
        .into()
    }
}

/// COMMAND DOCS [name ...]: every command (subcommands nested), or those
/// named (`client|kill` too); unknown names are left out, as in Redis.
fn command_docs(names: &[Bytes]) -> Reply {
    if names.is_empty() {
        return Reply::Map(
            TABLE
                .iter()
                .filter_map(|spec| Some((bulk(spec.name), super::docs::command_docs(spec)?)))
                .collect(),
        );
    }
    let mut out = Vec::new();
    for name in names {
        match lookup_full(name) {
            Some((spec, None)) => {
                if let Some(entry) = super::docs::command_docs(spec) {
                    out.push((bulk(spec.name), entry));
                }
            }
            Some((spec, Some(sub))) => out.extend(super::docs::sub_docs(spec, sub)),
            None => {}
        }
    }
    Reply::Map(out)
}

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN glob]:
/// commands and subcommands (`client|kill`), as Redis lists them. Strata
/// has no modules and no ACL categories: those filters match nothing.
fn command_list(filter: &[Bytes]) -> Reply {
    let pattern = match filter {
        [] => None,
        [by, kind, value] if is(by, "FILTERBY") => {
            if is(kind, "PATTERN") {
                Some(value.to_ascii_lowercase())
            } else if is(kind, "MODULE") || is(kind, "ACLCAT") {
                return Reply::Array(vec![]);
            } else {
                return args::syntax();
            }
        }
        _ => return args::syntax(),
    };
    let names = super::docs::documented_names()
        .filter(|n| pattern.as_ref().is_none_or(|p| glob_match(p, n.as_bytes())));
    Reply::Array(names.map(bulk).collect())
}

/// COMMAND GETKEYS <command> [arg ...]: the keys at the command's key
/// positions (what cluster clients ask to route a command).
fn command_getkeys(call: &[Bytes]) -> Reply {
    let Some(spec) = call.first().and_then(|name| super::lookup(name)) else {
        return args::err("ERR Invalid command specified");
    };
    if !super::arity_ok(spec.arity, call.len()) {
        return args::err("ERR Invalid number of arguments specified for command");
    }
    let keys: Vec<Reply> = super::key_positions(spec, call.len())
        .map(|i| Reply::Bulk(call[i].clone()))
        .collect();
    if keys.is_empty() {
        return args::err("ERR The command has no key arguments");
    }
    Reply::Array(keys)
}

fn command_help() -> Reply {
    const LINES: &[&str] = &[
        "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "(no subcommand)",
        "    Return details about all Strata commands.",
        "COUNT",
        "    Return the total number of commands in this Strata server.",
        "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
        "    Return the names of all commands and subcommands (Strata has no modules or ACL categories).",
        "INFO [<command-name> ...]",
        "    Return details about the named commands (all, if none is named).",
        "DOCS [<command-name> ...]",
        "    Return documentation about the named commands (all, if none is named).",
        "    Strata's own commands are in group 'strata'.",
        "GETKEYS <full-command>",
        "    Return the keys from a full command.",
        "HELP",
        "    Print this help.",
    ];
    Reply::Array(LINES.iter().map(|l| Reply::status(*l)).collect())
}

/// Settings CONFIG GET answers: Redis's names that clients and tools ask
/// for (redis-benchmark asks for `save` and `appendonly`), then ours.
fn config_pairs(ctx: &Ctx<'_>) -> Vec<(String, String)> {
    let c = &ctx.shared.config;
    let appendfsync = match c.storage.fsync {
        FsyncPolicy::Always => "always",
        FsyncPolicy::Periodic { .. } => "everysec",
        FsyncPolicy::Never => "no",
    };
    let mut out: Vec<(String, String)> = vec![
        ("save".into(), String::new()),
        ("appendonly".into(), "yes".into()),
        ("appendfsync".into(), appendfsync.into()),
        ("databases".into(), "1".into()),
        ("maxclients".into(), c.connections_max.to_string()),
        ("timeout".into(), (c.idle_timeout_ms / 1000).to_string()),
        (
            "maxmemory-clients".into(),
            c.client_buffers_size_bytes_max.to_string(),
        ),
        (
            "proto-max-bulk-len".into(),
            c.storage.value_size_bytes_max.to_string(),
        ),
        ("port".into(), c.listen.port().to_string()),
        ("bind".into(), c.listen.ip().to_string()),
        ("dir".into(), c.storage.data_dir.display().to_string()),
    ];
    out.extend(c.settings().into_iter().map(|(k, v)| (k.to_string(), v)));
    out
}

pub fn config(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    let sub = &a[1];
    if is(sub, "GET") {
        if a.len() < 3 {
            return args::wrong_arity("config|get").into();
        }
        let pairs = config_pairs(ctx);
        let mut out = Vec::new();
        for (name, value) in pairs {
            if a[2..]
                .iter()
                .any(|p| glob_match(&p.to_ascii_lowercase(), name.as_bytes()))
            {
                out.push((bulk(name), bulk(value)));
            }
        }
        Reply::Map(out).into()
    } else if is(sub, "SET") {
        args::err("ERR CONFIG SET is not supported: set the flag, STRATA_* variable or config file entry, then restart")
            .into()
    } else if is(sub, "RESETSTAT") {
        let s = &ctx.shared.stats;
        for c in [
            &s.commands_processed,
            &s.keyspace_hits,
            &s.keyspace_misses,
            &s.protocol_errors,
            &s.connections_rejected,
        ] {
            c.store(0, Relaxed);
        }
        Reply::ok().into()
    } else if is(sub, "HELP") {
        const LINES: &[&str] = &[
            "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET <pattern> [<pattern> ...]",
            "    Return the settings matching the glob-like patterns, Redis's names and Strata's.",
            "SET <directive> <value> [<directive> <value> ...]",
            "    Refused: set the flag, STRATA_* variable or config file entry, then restart.",
            "RESETSTAT",
            "    Reset the statistics reported by the INFO command.",
            "HELP",
            "    Print this help.",
        ];
        Reply::Array(LINES.iter().map(|l| Reply::status(*l)).collect()).into()
    } else {
        Reply::error(format!(
            "ERR unknown subcommand '{}'. Try CONFIG HELP.",
            args::show(sub, 64)
        ))
        .into()
    }
}

pub fn dbsize(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Action {
    Reply::Integer(ctx.shared.store.dbsize() as i64).into()
}

pub fn flushall(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    // ASYNC and SYNC are both accepted; the flush is O(1) either way.
    for opt in &a[1..] {
        if !(is(opt, "ASYNC") || is(opt, "SYNC")) || a.len() > 2 {
            return args::syntax().into();
        }
    }
    Action::Write(Mutation {
        now_ms: ctx.now_ms,
        op: Op::FlushAll,
    })
}

pub fn time(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Action {
    let secs = ctx.now_ms / 1000;
    let micros = (ctx.now_ms % 1000) * 1000;
    Reply::Array(vec![bulk(secs.to_string()), bulk(micros.to_string())]).into()
}

const SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cluster",
    "keyspace",
];

pub fn info(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    let wanted: Vec<&str> = if a.len() == 1
        || a[1..]
            .iter()
            .any(|s| is(s, "all") || is(s, "everything") || is(s, "default"))
    {
        SECTIONS.to_vec()
    } else {
        SECTIONS
            .iter()
            .copied()
            .filter(|name| a[1..].iter().any(|s| is(s, name)))
            .collect()
    };
    let mut text = String::new();
    for (i, section) in wanted.iter().enumerate() {
        if i > 0 {
            text.push_str("\r\n");
        }
        write_section(ctx, section, &mut text);
    }
    let text = Bytes::from(text);
    if ctx.session.protocol == ProtocolVersion::Resp3 {
        Reply::Verbatim {
            format: *b"txt",
            text,
        }
        .into()
    } else {
        Reply::Bulk(text).into()
    }
}

/// One word for monitoring: `corrupt` once any read hit damaged data (it
/// stays so until a restart: the damage is on disk), `failed` after a
/// failed write or fsync, else `ok`.
fn storage_status(s: &strata_storage::StoreStats) -> &'static str {
    if s.corruption_errors > 0 {
        "corrupt"
    } else if s.failed.is_some() {
        "failed"
    } else {
        "ok"
    }
}

fn write_section(ctx: &Ctx<'_>, section: &str, out: &mut String) {
    let shared = ctx.shared;
    let c = &shared.config;
    let stats = &shared.stats;
    let uptime = shared.started.elapsed().as_secs();
    // `let _ =`: writing to a String cannot fail.
    match section {
        "server" => {
            let _ = write!(
                out,
                "# Server\r\nredis_version:{}\r\nstrata_version:{}\r\nredis_mode:standalone\r\nos:{}\r\narch_bits:64\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nexecutable:strata\r\n",
                crate::REDIS_COMPAT_VERSION,
                crate::VERSION,
                std::env::consts::OS,
                std::process::id(),
                c.listen.port(),
                uptime,
                uptime / 86_400,
            );
        }
        "clients" => {
            let buffers = &shared.client_buffers;
            let _ = write!(
                out,
                "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nrejected_connections:{}\r\nclient_buffers_bytes:{}\r\nclient_buffers_bytes_max:{}\r\nevicted_clients:{}\r\nrequest_timeouts:{}\r\n",
                stats.connections_current.load(Relaxed),
                c.connections_max,
                stats.connections_rejected.load(Relaxed),
                buffers.used_bytes(),
                buffers.size_bytes_max(),
                buffers.evicted(),
                stats.request_timeouts.load(Relaxed),
            );
        }
        "memory" => {
            let s = shared.store.stats();
            let _ = write!(
                out,
                "# Memory\r\nused_memory_cache:{}\r\ncache_capacity_bytes:{}\r\nwrite_buffer_bytes:{}\r\nclient_buffers_bytes:{}\r\nclient_buffers_bytes_max:{}\r\n",
                s.cache_size_bytes,
                s.cache_capacity_bytes,
                s.write_buffer_size_bytes,
                shared.client_buffers.used_bytes(),
                shared.client_buffers.size_bytes_max(),
            );
            let _ = write!(
                out,
                "strata_read_cache_bytes:{}\r\nstrata_read_cache_capacity_bytes:{}\r\nstrata_read_cache_entries:{}\r\nstrata_read_cache_hits:{}\r\nstrata_read_cache_misses:{}\r\nstrata_read_cache_fills_refused:{}\r\n",
                s.read_cache_size_bytes,
                s.read_cache_capacity_bytes,
                s.read_cache_entries,
                s.read_cache_hits,
                s.read_cache_misses,
                s.read_cache_fills_refused,
            );
        }
        "persistence" => {
            let s = shared.store.stats();
            let fsync_avg_us = s.fsync_micros_total.checked_div(s.fsyncs).unwrap_or(0);
            let _ = write!(
                out,
                "# Persistence\r\nloading:0\r\naof_enabled:1\r\nrdb_changes_since_last_save:0\r\nstrata_fsync:{}\r\nstrata_data_dir:{}\r\nstrata_disk_bytes:{}\r\nstrata_journal_count:{}\r\nstrata_journal_bytes:{}\r\nstrata_write_buffer_bytes:{}\r\nstrata_outstanding_flushes:{}\r\nstrata_active_compactions:{}\r\nstrata_compactions_completed:{}\r\nstrata_group_commits:{}\r\nstrata_mutations_committed:{}\r\nstrata_group_size_max:{}\r\nstrata_groups_prefetched:{}\r\nstrata_fsyncs:{}\r\nstrata_fsync_avg_us:{}\r\nstrata_fsync_max_us:{}\r\nstrata_storage_failed:{}\r\nstrata_storage_status:{}\r\nstrata_storage_corruption_errors:{}\r\n",
                c.storage.fsync,
                c.storage.data_dir.display(),
                s.disk_space_bytes,
                s.journal_count,
                s.journal_disk_space_bytes,
                s.write_buffer_size_bytes,
                s.outstanding_flushes,
                s.active_compactions,
                s.compactions_completed,
                s.groups_committed,
                s.mutations_committed,
                s.group_size_max,
                s.groups_prefetched,
                s.fsyncs,
                fsync_avg_us,
                s.fsync_micros_max,
                s.failed.as_deref().unwrap_or("no"),
                storage_status(&s),
                s.corruption_errors,
            );
        }
        "stats" => {
            let _ = write!(
                out,
                "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\nprotocol_errors:{}\r\n",
                stats.connections_received.load(Relaxed),
                stats.commands_processed.load(Relaxed),
                stats.connections_rejected.load(Relaxed),
                stats.net_input_bytes.load(Relaxed),
                stats.net_output_bytes.load(Relaxed),
                stats.keyspace_hits.load(Relaxed),
                stats.keyspace_misses.load(Relaxed),
                stats.protocol_errors.load(Relaxed),
            );
        }
        "replication" => match &shared.cluster {
            Some(node) => super::cluster::info_replication(node, &node.status(), out),
            None => out.push_str("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n"),
        },
        "cluster" => super::redis_cluster::info_section(shared.cluster.is_some(), out),
        "keyspace" => {
            out.push_str("# Keyspace\r\n");
            let s = shared.store.stats();
            if s.keys > 0 {
                let _ = write!(
                    out,
                    "db0:keys={},expires={},avg_ttl=0\r\n",
                    s.keys, s.expiring_keys
                );
            }
        }
        _ => {}
    }
}
