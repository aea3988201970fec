//! COMMAND, CONFIG, INFO, DBSIZE, FLUSHDB/FLUSHALL, TIME.
//! (SLOWLOG is `slowlog.rs`; the statistics INFO shows, `command_stats.rs`.)

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
    let log = &ctx.shared.slowlog;
    for (name, value) in &mut out {
        match name.as_str() {
            "slowlog-log-slower-than" => *value = log.configured_slower_than_us().to_string(),
            "slowlog-max-len" => *value = log.len_max().to_string(),
            _ => {}
        }
    }
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
        if a.len() < 4 || !a.len().is_multiple_of(2) {
            return args::wrong_arity("config|set").into();
        }
        config_set(ctx, &a[2..]).into()
    } else if is(sub, "RESETSTAT") {
        if a.len() != 2 {
            return args::wrong_arity("config|resetstat").into();
        }
        reset_stats(&ctx.shared.stats);
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

/// The settings CONFIG SET may change at run time. Why only these: the
/// others size buffers, caches and threads that exist from start-up on;
/// these two are read afresh (by each connection before it waits for
/// bytes), and Redis's own tests set them.
const SETTABLE: &[&str] = &["slowlog-log-slower-than", "slowlog-max-len"];

/// A parsed CONFIG SET value.
enum Setting {
    SlowerThanUs(i64),
    LenMax(usize),
}

/// CONFIG SET name value [name value ...]: all checked, then all set, as
/// in Redis.
fn config_set(ctx: &Ctx<'_>, pairs: &[Bytes]) -> Reply {
    let mut parsed = Vec::with_capacity(pairs.len() / 2);
    for pair in pairs.chunks_exact(2) {
        let (name, value) = (&pair[0], &pair[1]);
        let shown = args::show(name, 128);
        let text = String::from_utf8_lossy(value);
        let invalid = |why: String| {
            Reply::error(format!(
                "ERR CONFIG SET failed (possibly related to argument '{shown}') - {why}"
            ))
        };
        let setting = if is(name, SETTABLE[0]) {
            match crate::units::parse_duration_us_signed(&text) {
                Ok(us) => Setting::SlowerThanUs(us),
                Err(e) => return invalid(e.to_string()),
            }
        } else if is(name, SETTABLE[1]) {
            match text.trim().parse::<usize>() {
                Ok(n) if n <= super::slowlog::LEN_MAX => Setting::LenMax(n),
                _ => {
                    return invalid(format!(
                        "argument must be between 0 and {}",
                        super::slowlog::LEN_MAX
                    ));
                }
            }
        } else {
            return Reply::error(format!(
                "ERR CONFIG SET is not supported for '{shown}': only {} can change at run \
                 time; set the flag, STRATA_* variable or config file entry, then restart",
                SETTABLE.join(" and ")
            ));
        };
        parsed.push(setting);
    }
    let log = &ctx.shared.slowlog;
    for setting in parsed {
        match setting {
            Setting::SlowerThanUs(us) => log.set_slower_than_us(us),
            Setting::LenMax(n) => log.set_len_max(n),
        }
    }
    Reply::ok()
}

/// CONFIG RESETSTAT: what Redis resets (the counters of INFO stats,
/// commandstats, errorstats, latencystats, the rates); not the slow log.
fn reset_stats(s: &crate::shared::ServerStats) {
    for c in [
        &s.commands_processed,
        &s.connections_received,
        &s.keyspace_hits,
        &s.keyspace_misses,
        &s.protocol_errors,
        &s.connections_rejected,
        &s.net_input_bytes,
        &s.net_output_bytes,
    ] {
        c.store(0, Relaxed);
    }
    s.commands.reset();
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

/// Every section, in Redis's order.
const SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "commandstats",
    "errorstats",
    "latencystats",
    "cluster",
    "keyspace",
];

/// What INFO and INFO default show: Redis's default sections (all but
/// commandstats and latencystats).
const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "errorstats",
    "cluster",
    "keyspace",
];

/// Redis's rules: no argument is `default`; `all` and `everything` are
/// every section; other words name sections (case-insensitively) and
/// add up, `default` among them.
fn wanted_sections(a: &[Bytes]) -> Vec<&'static str> {
    let words = &a[1..];
    if words.iter().any(|s| is(s, "all") || is(s, "everything")) {
        return SECTIONS.to_vec();
    }
    let default = words.is_empty() || words.iter().any(|s| is(s, "default"));
    SECTIONS
        .iter()
        .copied()
        .filter(|name| {
            (default && DEFAULT_SECTIONS.contains(name)) || words.iter().any(|s| is(s, name))
        })
        .collect()
}

pub fn info(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    let mut text = String::new();
    for (i, section) in wanted_sections(a).iter().enumerate() {
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
                "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:0\r\nrejected_connections:{}\r\nclient_buffers_bytes:{}\r\nclient_buffers_bytes_max:{}\r\nevicted_clients:{}\r\nrequest_timeouts:{}\r\n",
                stats.connections_current.load(Relaxed),
                c.connections_max,
                stats.connections_rejected.load(Relaxed),
                buffers.used_bytes(),
                buffers.size_bytes_max(),
                buffers.evicted(),
                stats.request_timeouts.load(Relaxed),
            );
        }
        "memory" => write_memory(shared, out),
        "persistence" => write_persistence(shared, out),
        "stats" => write_stats(stats, out),
        "replication" => match &shared.cluster {
            Some(node) => super::cluster::info_replication(node, &node.status(), out),
            None => out.push_str("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n"),
        },
        "commandstats" => {
            out.push_str("# Commandstats\r\n");
            stats.commands.write_commandstats(out);
        }
        "errorstats" => {
            out.push_str("# Errorstats\r\n");
            stats.commands.write_errorstats(out);
        }
        "latencystats" => {
            out.push_str("# Latencystats\r\n");
            stats.commands.write_latencystats(out);
        }
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

/// INFO persistence: Redis's fields tools read, then Strata's storage
/// counters.
fn write_persistence(shared: &crate::shared::Shared, out: &mut String) {
    let c = &shared.config;
    let s = shared.store.stats();
    let fsync_avg_us = s.fsync_micros_total.checked_div(s.fsyncs).unwrap_or(0);
    let _ = write!(
        out,
        "# Persistence\r\nloading:0\r\nbgsave_in_progress:0\r\naof_enabled:1\r\naof_rewrite_in_progress:0\r\nrdb_changes_since_last_save:0\r\nstrata_fsync:{}\r\nstrata_data_dir:{}\r\nstrata_disk_bytes:{}\r\nstrata_journal_count:{}\r\nstrata_journal_bytes:{}\r\nstrata_write_buffer_bytes:{}\r\nstrata_outstanding_flushes:{}\r\nstrata_active_compactions:{}\r\nstrata_compactions_completed:{}\r\nstrata_group_commits:{}\r\nstrata_mutations_committed:{}\r\nstrata_group_size_max:{}\r\nstrata_groups_prefetched:{}\r\nstrata_fsyncs:{}\r\nstrata_fsync_avg_us:{}\r\nstrata_fsync_max_us:{}\r\nstrata_storage_failed:{}\r\nstrata_storage_status:{}\r\nstrata_storage_corruption_errors:{}\r\n",
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

/// INFO memory: Redis's fields first (tools find `used_memory` by prefix,
/// so it must come before every `used_memory_*`), then Strata's caches.
/// `used_memory` is what the allocator holds from the OS (mimalloc's
/// committed bytes: live allocations plus freed memory not yet returned);
/// Strata has no `maxmemory`, so it is 0 (no limit), as in Redis.
fn write_memory(shared: &crate::shared::Shared, out: &mut String) {
    use crate::memory::human;
    let m = crate::memory::read();
    let fragmentation = if m.used_bytes > 0 {
        m.rss_bytes as f64 / m.used_bytes as f64
    } else {
        0.0
    };
    let _ = write!(
        out,
        "# Memory\r\nused_memory:{}\r\nused_memory_human:{}\r\nused_memory_rss:{}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{}\r\nused_memory_peak_human:{}\r\nmaxmemory:0\r\nmaxmemory_human:0B\r\nmaxmemory_policy:noeviction\r\nmem_fragmentation_ratio:{fragmentation:.2}\r\nmem_allocator:{}\r\n",
        m.used_bytes,
        human(m.used_bytes),
        m.rss_bytes,
        human(m.rss_bytes),
        m.peak_bytes,
        human(m.peak_bytes),
        m.allocator,
    );
    let s = shared.store.stats();
    let _ = write!(
        out,
        "used_memory_cache:{}\r\ncache_capacity_bytes:{}\r\nwrite_buffer_bytes:{}\r\nclient_buffers_bytes:{}\r\nclient_buffers_bytes_max:{}\r\n",
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
    let _ = write!(
        out,
        "strata_search_cache_bytes:{}\r\nstrata_search_cache_capacity_bytes:{}\r\nstrata_search_cache_hits:{}\r\nstrata_search_cache_misses:{}\r\n",
        s.search_cache_size_bytes,
        s.search_cache_capacity_bytes,
        s.search_cache_hits,
        s.search_cache_misses,
    );
}

/// INFO stats. The rates are Redis's: averages of 16 samples taken every
/// 100 ms (`command_stats::sample_rates`).
fn write_stats(stats: &crate::shared::ServerStats, out: &mut String) {
    let [ops, input, output] = stats.commands.rates();
    let _ = write!(
        out,
        "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{ops}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\ninstantaneous_input_kbps:{:.2}\r\ninstantaneous_output_kbps:{:.2}\r\nrejected_connections:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\ntotal_error_replies:{}\r\nprotocol_errors:{}\r\n",
        stats.connections_received.load(Relaxed),
        stats.commands_processed.load(Relaxed),
        stats.net_input_bytes.load(Relaxed),
        stats.net_output_bytes.load(Relaxed),
        input as f64 / 1024.0,
        output as f64 / 1024.0,
        stats.connections_rejected.load(Relaxed),
        stats.keyspace_hits.load(Relaxed),
        stats.keyspace_misses.load(Relaxed),
        stats.commands.total_error_replies(),
        stats.protocol_errors.load(Relaxed),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sections(words: &[&str]) -> Vec<&'static str> {
        let mut a = vec![Bytes::from_static(b"INFO")];
        a.extend(words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())));
        wanted_sections(&a)
    }

    #[test]
    fn info_picks_sections_by_redis_rules() {
        assert_eq!(sections(&[]), DEFAULT_SECTIONS);
        assert_eq!(sections(&["default"]), DEFAULT_SECTIONS);
        assert!(!sections(&[]).contains(&"commandstats"));
        assert!(!sections(&[]).contains(&"latencystats"));
        assert!(sections(&[]).contains(&"errorstats"));
        assert_eq!(sections(&["all"]), SECTIONS);
        assert_eq!(sections(&["EVERYTHING"]), SECTIONS);
        assert_eq!(sections(&["CommandStats"]), ["commandstats"]);
        // Named sections add up, in Redis's order whatever the order asked.
        assert_eq!(
            sections(&["keyspace", "commandstats", "server"]),
            ["server", "commandstats", "keyspace"]
        );
        let mut with_default = DEFAULT_SECTIONS.to_vec();
        with_default.insert(6, "commandstats");
        assert_eq!(sections(&["default", "commandstats"]), with_default);
        assert!(sections(&["nosuchsection"]).is_empty());
    }
}
