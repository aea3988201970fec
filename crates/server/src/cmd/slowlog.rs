//! SLOWLOG GET|LEN|RESET|HELP, and the log itself: the latest commands
//! that took at least `slowlog-log-slower-than` microseconds, at most
//! `slowlog-max-len` of them, newest first, with Redis's reply shapes.
//!
//! What "took" means is the command's time as INFO commandstats counts
//! it (`command_stats.rs`): from when the server starts running it until
//! its reply is ready, so a write includes its group commit.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering::Relaxed};

use bytes::{Bytes, BytesMut};
use strata_protocol::resp::Reply;

use super::args::{self, is};
use super::{Action, Ctx};

/// Arguments an entry keeps; the last one kept says how many more there
/// were (Redis's SLOWLOG_ENTRY_MAX_ARGC).
pub const ENTRY_ARGS_MAX: usize = 32;
/// Bytes kept of each argument (Redis's SLOWLOG_ENTRY_MAX_STRING).
pub const ENTRY_ARG_BYTES_MAX: usize = 128;
/// The largest `slowlog-max-len`. Why a bound: CONFIG SET can raise it
/// from any client, and an entry holds up to 32 arguments of 128 bytes:
/// 10,000 entries stay under about 50 MiB.
pub const LEN_MAX: usize = 10_000;
/// Redis's defaults.
pub const DEFAULT_SLOWER_THAN_US: i64 = 10_000;
pub const DEFAULT_LEN_MAX: usize = 128;

/// Who sent a logged command.
pub struct Client<'a> {
    pub addr: &'a str,
    /// Where its name is, read only when an entry is logged (the names sit
    /// behind a per-connection lock: not something to take per request).
    pub info: Option<&'a crate::clients::ClientInfo>,
}

impl Client<'_> {
    fn name(&self) -> Bytes {
        self.info.and_then(|i| i.names().name).unwrap_or_default()
    }
}

impl<'a> From<&'a crate::shared::Session> for Client<'a> {
    fn from(s: &'a crate::shared::Session) -> Client<'a> {
        Client {
            addr: &s.peer,
            info: Some(&s.client),
        }
    }
}

struct Entry {
    id: u64,
    unix_time_s: u64,
    duration_us: u64,
    args: Vec<Bytes>,
    addr: String,
    name: Bytes,
}

struct Log {
    /// Never reset (not by SLOWLOG RESET either, as in Redis).
    next_id: u64,
    /// Newest first.
    entries: VecDeque<Entry>,
}

pub struct Slowlog {
    /// Negative: logging is off.
    slower_than_us: AtomicI64,
    len_max: AtomicUsize,
    log: Mutex<Log>,
}

impl Slowlog {
    pub fn new(slower_than_us: i64, len_max: usize) -> Slowlog {
        Slowlog {
            slower_than_us: AtomicI64::new(slower_than_us),
            len_max: AtomicUsize::new(len_max.min(LEN_MAX)),
            log: Mutex::new(Log {
                next_id: 0,
                entries: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The threshold in microseconds; negative when logging is off.
    pub fn slower_than_us(&self) -> i64 {
        if self.len_max.load(Relaxed) == 0 {
            return -1;
        }
        self.slower_than_us.load(Relaxed)
    }

    /// The threshold as configured (CONFIG GET).
    pub fn configured_slower_than_us(&self) -> i64 {
        self.slower_than_us.load(Relaxed)
    }

    pub fn len_max(&self) -> usize {
        self.len_max.load(Relaxed)
    }

    pub fn set_slower_than_us(&self, us: i64) {
        self.slower_than_us.store(us, Relaxed);
    }

    /// Sets the length bound (at most [`LEN_MAX`]) and drops the oldest
    /// entries beyond it.
    pub fn set_len_max(&self, len: usize) {
        let len = len.min(LEN_MAX);
        let mut log = self.lock();
        self.len_max.store(len, Relaxed);
        log.entries.truncate(len);
    }

    /// Logs a command that took `duration_us`; the caller has checked the
    /// threshold. Arguments are cut as Redis cuts them.
    pub fn push(&self, args: &[Bytes], duration_us: u64, client: &Client<'_>) {
        let entry_args = cut_args(args);
        let unix_time_s = strata_storage::now_ms() / 1000;
        let mut log = self.lock();
        let len_max = self.len_max.load(Relaxed);
        if len_max == 0 {
            return;
        }
        let id = log.next_id;
        log.next_id += 1;
        log.entries.push_front(Entry {
            id,
            unix_time_s,
            duration_us,
            args: entry_args,
            addr: client.addr.to_string(),
            name: client.name(),
        });
        log.entries.truncate(len_max);
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reset(&self) {
        self.lock().entries.clear();
    }

    /// The newest `count` entries as SLOWLOG GET answers them.
    fn get(&self, count: usize) -> Reply {
        let log = self.lock();
        Reply::Array(
            log.entries
                .iter()
                .take(count)
                .map(|e| {
                    Reply::Array(vec![
                        Reply::Integer(e.id as i64),
                        Reply::Integer(e.unix_time_s as i64),
                        Reply::Integer(e.duration_us.min(i64::MAX as u64) as i64),
                        Reply::Array(e.args.iter().cloned().map(Reply::Bulk).collect()),
                        Reply::Bulk(Bytes::from(e.addr.clone())),
                        Reply::Bulk(e.name.clone()),
                    ])
                })
                .collect(),
        )
    }
}

/// Redis's cut: at most 32 arguments, the last of them replaced by
/// `... (N more arguments)` when there were more; each argument at most
/// 128 bytes, followed by `... (N more bytes)` when it was longer. The
/// kept bytes are copied, so an entry never holds a request's buffer.
pub fn cut_args(args: &[Bytes]) -> Vec<Bytes> {
    let kept = args.len().min(ENTRY_ARGS_MAX);
    let mut out = Vec::with_capacity(kept);
    for (i, arg) in args.iter().take(kept).enumerate() {
        if kept < args.len() && i == kept - 1 {
            let more = args.len() - kept + 1;
            out.push(Bytes::from(format!("... ({more} more arguments)")));
        } else if arg.len() > ENTRY_ARG_BYTES_MAX {
            let more = arg.len() - ENTRY_ARG_BYTES_MAX;
            let mut cut = BytesMut::with_capacity(ENTRY_ARG_BYTES_MAX + 32);
            cut.extend_from_slice(&arg[..ENTRY_ARG_BYTES_MAX]);
            cut.extend_from_slice(format!("... ({more} more bytes)").as_bytes());
            out.push(cut.freeze());
        } else {
            out.push(Bytes::copy_from_slice(arg));
        }
    }
    out
}

const HELP: &[&str] = &[
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
    "HELP",
    "    Print this help.",
];

pub fn slowlog(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    let sub = &a[1];
    let log = &ctx.shared.slowlog;
    let exactly = |n: usize, name: &'static str| (a.len() == n).then_some(()).ok_or(name);
    let checked = if is(sub, "GET") {
        if a.len() > 3 {
            Err("slowlog|get")
        } else {
            return get(log, a.get(2)).into();
        }
    } else if is(sub, "LEN") {
        exactly(2, "slowlog|len").map(|()| Reply::Integer(log.len() as i64))
    } else if is(sub, "RESET") {
        exactly(2, "slowlog|reset").map(|()| {
            log.reset();
            Reply::ok()
        })
    } else if is(sub, "HELP") {
        exactly(2, "slowlog|help")
            .map(|()| Reply::Array(HELP.iter().map(|l| Reply::status(*l)).collect()))
    } else {
        return Reply::error(format!(
            "ERR unknown subcommand '{}'. Try SLOWLOG HELP.",
            args::show(sub, 128)
        ))
        .into();
    };
    match checked {
        Ok(reply) => reply.into(),
        Err(name) => args::wrong_arity(name).into(),
    }
}

fn get(log: &Slowlog, count: Option<&Bytes>) -> Reply {
    let count = match count.map(args::int) {
        None => 10,
        Some(Err(e)) => return e,
        Some(Ok(-1)) => usize::MAX,
        Some(Ok(n)) if n < -1 => {
            return args::err("ERR count should be greater than or equal to -1");
        }
        Some(Ok(n)) => usize::try_from(n).unwrap_or(usize::MAX),
    };
    log.get(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn arguments_are_cut_as_redis_cuts_them() {
        let args: Vec<Bytes> = (0..40).map(|i| b(&i.to_string())).collect();
        let cut = cut_args(&args);
        assert_eq!(cut.len(), 32);
        assert_eq!(cut[30], b("30"));
        assert_eq!(cut[31], b("... (9 more arguments)"));
        let exactly: Vec<Bytes> = (0..32).map(|i| b(&i.to_string())).collect();
        assert_eq!(cut_args(&exactly), exactly);
        let long = Bytes::from(vec![b'x'; 200]);
        let cut = cut_args(&[b("SET"), b("k"), long]);
        assert_eq!(
            cut[2],
            Bytes::from(format!("{}... (72 more bytes)", "x".repeat(128)))
        );
        let edge = Bytes::from(vec![b'y'; 128]);
        assert_eq!(cut_args(std::slice::from_ref(&edge)), vec![edge]);
    }

    #[test]
    fn the_log_keeps_the_newest_entries_up_to_its_length() {
        let log = Slowlog::new(0, 3);
        let info = crate::clients::ClientInfo::new(
            1,
            crate::clients::Protocol::Resp,
            "127.0.0.1:1".into(),
            String::new(),
            -1,
        );
        info.update_names(|n| n.name = Some(b("n")));
        let client = Client {
            addr: "127.0.0.1:1",
            info: Some(&info),
        };
        for i in 0..5u64 {
            log.push(&[b("GET"), b(&i.to_string())], i, &client);
        }
        assert_eq!(log.len(), 3);
        let Reply::Array(entries) = log.get(10) else {
            panic!("not an array")
        };
        let ids: Vec<_> = entries
            .iter()
            .map(|e| match e {
                Reply::Array(f) => f[0].clone(),
                _ => panic!("not an entry"),
            })
            .collect();
        assert_eq!(
            ids,
            vec![Reply::Integer(4), Reply::Integer(3), Reply::Integer(2)]
        );
        log.set_len_max(1);
        assert_eq!(log.len(), 1);
        log.reset();
        assert!(log.is_empty());
        log.push(&[b("GET")], 1, &client);
        // Ids go on after a reset.
        let Reply::Array(entries) = log.get(1) else {
            panic!("not an array")
        };
        assert!(matches!(&entries[0], Reply::Array(f) if f[0] == Reply::Integer(5)));
        log.set_len_max(0);
        assert_eq!(log.slower_than_us(), -1, "a zero length turns logging off");
        log.set_len_max(LEN_MAX * 10);
        assert_eq!(log.len_max(), LEN_MAX);
    }
}
