//! What redis-cli and monitoring tools read, through a real server and
//! real clients: INFO's memory, client and traffic fields moving under
//! load (both ports), INFO commandstats / errorstats / latencystats with
//! exact counts for a known sequence (rejected and failed calls included),
//! CONFIG RESETSTAT, SLOWLOG (thresholds, argument cuts, length), redis-py
//! parsing all of it, and `redis-cli --stat` printing sane numbers.
//! redis-py and redis-cli are installed when missing.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::TestServer;
use common::tools::{ensure_redis_cli, ensure_redis_py, output_within, run_bounded};

/// Bound on any wait for a number to move.
const MOVE_TIMEOUT: Duration = Duration::from_secs(20);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn info(con: &mut redis::Connection, section: &str) -> HashMap<String, String> {
    let text: String = redis::cmd("INFO").arg(section).query(con).expect("INFO");
    parse_info(&text)
}

fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn num(fields: &HashMap<String, String>, name: &str) -> f64 {
    fields
        .get(name)
        .unwrap_or_else(|| panic!("INFO has no {name}: {fields:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number: {:?}", fields.get(name)))
}

/// `cmdstat_<name>` as its five numbers; None when the command is absent.
fn cmdstat(fields: &HashMap<String, String>, name: &str) -> Option<HashMap<String, f64>> {
    let value = fields.get(&format!("cmdstat_{name}"))?;
    Some(
        value
            .split(',')
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("k=v");
                (k.to_string(), v.parse().expect("a number"))
            })
            .collect(),
    )
}

/// (calls, rejected, failed) of a command, zeros when absent.
fn counts(fields: &HashMap<String, String>, name: &str) -> (u64, u64, u64) {
    cmdstat(fields, name).map_or((0, 0, 0), |s| {
        (
            s["calls"] as u64,
            s["rejected_calls"] as u64,
            s["failed_calls"] as u64,
        )
    })
}

fn cmd(con: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
}

/// A text-protocol connection: sends lines, reads one reply line each.
struct TextClient {
    reader: BufReader<TcpStream>,
    stream: TcpStream,
}

impl TextClient {
    fn connect(server: &TestServer) -> TextClient {
        let stream = TcpStream::connect(server.text_addr.expect("text listener")).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        TextClient {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        }
    }

    fn call(&mut self, line: &str) -> String {
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
        let mut reply = String::new();
        self.reader.read_line(&mut reply).expect("text reply");
        reply.trim_end().to_string()
    }
}

/// The server process's resident set, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Writes SETs over `keys` keys from a thread until `stop`.
fn load(server: &TestServer, keys: u64, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let mut con = server.redis();
    std::thread::spawn(move || {
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let mut pipe = redis::pipe();
            for i in 0..32 {
                pipe.cmd("SET")
                    .arg(format!("load:{}", (sent + i) % keys))
                    .arg("v")
                    .ignore();
            }
            pipe.query::<()>(&mut con).expect("pipelined SETs");
            sent += 32;
        }
        sent
    })
}

/// Polls INFO until `check` holds, or fails after `MOVE_TIMEOUT`.
fn wait_for_info(
    con: &mut redis::Connection,
    section: &str,
    what: &str,
    check: impl Fn(&HashMap<String, String>) -> bool,
) -> HashMap<String, String> {
    let deadline = Instant::now() + MOVE_TIMEOUT;
    loop {
        let fields = info(con, section);
        if check(&fields) {
            return fields;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: INFO {section} {fields:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn info_fields_tools_read_are_present_and_move() {
    let server = TestServer::start_with(&["--fsync", "never"]);
    let mut con = server.redis();
    let fields = info(&mut con, "default");
    for name in [
        "used_memory",
        "used_memory_rss",
        "used_memory_peak",
        "maxmemory",
        "mem_fragmentation_ratio",
        "blocked_clients",
        "connected_clients",
        "total_net_input_bytes",
        "total_net_output_bytes",
        "instantaneous_ops_per_sec",
        "instantaneous_input_kbps",
        "instantaneous_output_kbps",
        "total_commands_processed",
        "total_error_replies",
    ] {
        num(&fields, name);
    }
    assert_eq!(fields["blocked_clients"], "0");
    assert_eq!(fields["maxmemory"], "0");
    assert!(fields["used_memory_human"].ends_with(['K', 'M', 'G']));
    assert!(fields["used_memory_peak_human"].ends_with(['K', 'M', 'G']));
    // Redis's default sections: errorstats yes, commandstats and
    // latencystats no; `all` and `everything` have them.
    let text: String = redis::cmd("INFO").query(&mut con).unwrap();
    assert!(text.contains("# Errorstats\r\n") && !text.contains("# Commandstats"));
    assert!(!text.contains("# Latencystats"));
    for word in ["all", "everything"] {
        let text: String = redis::cmd("INFO").arg(word).query(&mut con).unwrap();
        for header in [
            "# Commandstats",
            "# Errorstats",
            "# Latencystats",
            "# Keyspace",
        ] {
            assert!(text.contains(header), "INFO {word} lacks {header}");
        }
    }
    // used_memory is what the allocator holds: the same order as the
    // resident set /proc reports.
    let rss = rss_bytes(server.pid()) as f64;
    let used = num(&fields, "used_memory");
    assert!(
        used > 1e6 && used < rss * 4.0 && used > rss / 8.0,
        "used_memory {used} vs RSS {rss}"
    );
    let reported_rss = num(&fields, "used_memory_rss");
    assert!(
        (reported_rss - rss).abs() < rss / 2.0,
        "used_memory_rss {reported_rss} vs {rss}"
    );

    // Input bytes are counted on both ports.
    let before = num(&info(&mut con, "stats"), "total_net_input_bytes");
    let mut text = TextClient::connect(&server);
    let line = format!("PUT textkey {}", "x".repeat(1000));
    assert_eq!(text.call(&line), "OK");
    let after = num(&info(&mut con, "stats"), "total_net_input_bytes");
    // The text line, plus the INFO request itself.
    assert!(after - before >= 1000.0, "{before} -> {after}");
    let big = "y".repeat(5000);
    let _: () = redis::cmd("SET")
        .arg("respkey")
        .arg(&big)
        .query(&mut con)
        .unwrap();
    let later = num(&info(&mut con, "stats"), "total_net_input_bytes");
    assert!(later - after >= 5000.0, "{after} -> {later}");

    // Under load the rates are real rates, not 0.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = load(&server, 1000, stop.clone());
    let fields = wait_for_info(&mut con, "stats", "rates under load", |f| {
        num(f, "instantaneous_ops_per_sec") > 100.0 && num(f, "instantaneous_input_kbps") > 1.0
    });
    stop.store(true, Ordering::Relaxed);
    let sent = writer.join().unwrap();
    assert!(
        num(&fields, "instantaneous_output_kbps") > 0.0,
        "{fields:?}"
    );
    assert!(
        num(&info(&mut con, "stats"), "total_commands_processed") >= sent as f64,
        "every SET counted"
    );
    let clients = info(&mut con, "clients");
    assert!(num(&clients, "connected_clients") >= 2.0, "{clients:?}");
    // The rates fall back to 0 within 1.6 s of the load stopping.
    wait_for_info(&mut con, "stats", "rates after load", |f| {
        num(f, "instantaneous_ops_per_sec") < 100.0
    });
}

#[test]
fn commandstats_count_calls_rejections_and_failures_exactly() {
    let server = TestServer::start_with(&["--fsync", "never", "--key-size-bytes-max", "64"]);
    let mut con = server.redis();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut con)
        .unwrap();
    let long_key = "k".repeat(100);
    // (command, expected to fail at the client)
    let sequence: &[(&[&str], bool)] = &[
        (&["SET", "n", "1"], false),
        (&["GET", "n"], false),
        (&["GET", "missing"], false),
        (&["GET"], true),            // rejected: arity
        (&["GET", &long_key], true), // rejected: key too large
        (&["INCR", "n"], false),
        (&["SET", "s", "text"], false),
        (&["INCR", "s"], true),              // failed: not an integer
        (&["SET", "n", "1", "BOGUS"], true), // failed: syntax error
        (&["CONFIG", "NOSUCH"], true),       // rejected: unknown subcommand
        (&["NOSUCHCOMMAND", "x"], true),     // no command: errorstats only
    ];
    for (args, fails) in sequence {
        assert_eq!(cmd(&mut con, args).is_err(), *fails, "{args:?}");
    }
    // A transaction: its commands count when EXEC runs them.
    let mut tx = redis::pipe();
    tx.atomic()
        .cmd("SET")
        .arg("t")
        .arg("1")
        .cmd("INCR")
        .arg("s")
        .cmd("GET")
        .arg("t");
    let replies: Vec<redis::Value> = tx.query(&mut con).unwrap_or_default();
    assert!(replies.is_empty() || replies.len() == 3);
    // One refused while queued: rejected, and EXEC answers EXECABORT.
    assert!(cmd(&mut con, &["MULTI"]).is_ok());
    assert!(cmd(&mut con, &["GET"]).is_err());
    assert!(cmd(&mut con, &["EXEC"]).is_err());
    // The text port counts under the RESP names.
    let mut text = TextClient::connect(&server);
    assert_eq!(text.call("PUT tk tv"), "OK");
    assert_eq!(text.call("READ tk"), "tv");
    assert_eq!(text.call("READ nope"), "NOT_FOUND");
    assert!(
        text.call(&format!("READ {long_key}"))
            .starts_with("ERROR: key too large")
    );
    drop(text);

    let fields = wait_for_info(&mut con, "commandstats", "the text port's counts", |f| {
        counts(f, "read") == (2, 1, 0)
    });
    // (calls, rejected, failed): SET 2 + 1 in EXEC + the failed syntax one.
    assert_eq!(counts(&fields, "set"), (4, 0, 1));
    assert_eq!(
        counts(&fields, "get"),
        (3, 3, 0),
        "2 + 1 in EXEC; 3 rejected"
    );
    assert_eq!(
        counts(&fields, "incr"),
        (3, 0, 2),
        "1 ok, 1 failed, 1 failed in EXEC"
    );
    assert_eq!(
        counts(&fields, "config"),
        (1, 1, 0),
        "RESETSTAT, then NOSUCH"
    );
    assert_eq!(counts(&fields, "multi"), (2, 0, 0));
    assert_eq!(
        counts(&fields, "exec"),
        (2, 0, 1),
        "EXECABORT is a failed EXEC"
    );
    assert_eq!(counts(&fields, "put"), (1, 0, 0));
    assert!(cmdstat(&fields, "nosuchcommand").is_none());
    for (name, stat) in ["set", "get", "incr", "put"].map(|n| (n, cmdstat(&fields, n).unwrap())) {
        let per_call = stat["usec"] / stat["calls"];
        assert!(
            stat["usec"] >= 0.0 && stat["usec_per_call"] >= 0.0,
            "{name}: {stat:?}"
        );
        assert!(
            (stat["usec_per_call"] - per_call).abs() <= 1.0,
            "{name}: usec_per_call {stat:?}"
        );
    }
    // The exact line format (Redis 7's).
    let text: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut con)
        .unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("cmdstat_put:"))
        .unwrap();
    let shape = line
        .split([':', ',', '='])
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, k)| k)
        .collect::<Vec<_>>();
    assert_eq!(
        shape,
        [
            "calls",
            "usec",
            "usec_per_call",
            "rejected_calls",
            "failed_calls"
        ]
    );

    let errors = info(&mut con, "errorstats");
    // ERR: GET arity, key, INCR, syntax, CONFIG NOSUCH, unknown command,
    // INCR in EXEC, GET arity in MULTI, the text port's key.
    assert_eq!(errors["errorstat_ERR"], "count=9", "{errors:?}");
    assert_eq!(errors["errorstat_EXECABORT"], "count=1", "{errors:?}");
    assert_eq!(num(&info(&mut con, "stats"), "total_error_replies"), 10.0);

    let latency = info(&mut con, "latencystats");
    for name in ["set", "get", "incr", "put", "read"] {
        let value = &latency[&format!("latency_percentiles_usec_{name}")];
        let parts: Vec<&str> = value.split(',').collect();
        assert_eq!(parts.len(), 3, "{value}");
        for (part, p) in parts.iter().zip(["p50=", "p99=", "p99.9="]) {
            let v: f64 = part.strip_prefix(p).expect(p).parse().unwrap();
            assert!(v > 0.0 && v < 10_000_000.0, "{name} {value}");
        }
    }

    // RESETSTAT clears them all; only itself is counted after.
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut con)
        .unwrap();
    let fields = info(&mut con, "commandstats");
    let listed: Vec<&String> = fields.keys().collect();
    assert_eq!(listed, [&"cmdstat_config".to_string()], "{fields:?}");
    assert_eq!(counts(&fields, "config"), (1, 0, 0));
    assert!(info(&mut con, "errorstats").is_empty());
    let stats = info(&mut con, "stats");
    assert!(num(&stats, "total_commands_processed") <= 4.0, "{stats:?}");
    assert_eq!(num(&stats, "total_error_replies"), 0.0);
    assert!(num(&stats, "total_net_input_bytes") < 200.0, "{stats:?}");
    let latency = info(&mut con, "latencystats");
    assert!(!latency.contains_key("latency_percentiles_usec_set"));
}

/// SLOWLOG GET's entries as (id, time, duration, args, addr, name).
type Entry = (i64, i64, i64, Vec<Vec<u8>>, String, String);

fn slowlog(con: &mut redis::Connection, count: i64) -> Vec<Entry> {
    let value: redis::Value = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(count)
        .query(con)
        .unwrap();
    let redis::Value::Array(entries) = value else {
        panic!("SLOWLOG GET: {value:?}")
    };
    entries
        .into_iter()
        .map(|e| {
            let redis::Value::Array(f) = e else {
                panic!("entry {e:?}")
            };
            assert_eq!(f.len(), 6, "{f:?}");
            let int = |v: &redis::Value| match v {
                redis::Value::Int(n) => *n,
                other => panic!("not an integer: {other:?}"),
            };
            let bulk = |v: &redis::Value| match v {
                redis::Value::BulkString(b) => b.clone(),
                other => panic!("not a bulk string: {other:?}"),
            };
            let redis::Value::Array(args) = &f[3] else {
                panic!("args {f:?}")
            };
            (
                int(&f[0]),
                int(&f[1]),
                int(&f[2]),
                args.iter().map(bulk).collect(),
                String::from_utf8(bulk(&f[4])).unwrap(),
                String::from_utf8(bulk(&f[5])).unwrap(),
            )
        })
        .collect()
}

fn names(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| String::from_utf8_lossy(&e.3[0]).to_uppercase())
        .collect()
}

#[test]
fn slowlog_logs_by_threshold_cuts_arguments_and_keeps_its_length() {
    let server = TestServer::start_with(&[
        "--fsync",
        "never",
        "--slowlog-log-slower-than",
        "0",
        "--slowlog-max-len",
        "50",
    ]);
    let mut con = server.redis();
    let got: HashMap<String, String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("slowlog-*")
        .query(&mut con)
        .unwrap();
    assert_eq!(got["slowlog-log-slower-than"], "0");
    assert_eq!(got["slowlog-max-len"], "50");
    let _: () = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("watcher")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SLOWLOG").arg("RESET").query(&mut con).unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    // 0 logs everything: the RESET (after it ran, as Redis) and the SET.
    let entries = slowlog(&mut con, 10);
    assert_eq!(names(&entries), ["SET", "SLOWLOG"]);
    let (id, time, duration, args, addr, name) = &entries[0];
    assert_eq!(*id, entries[1].0 + 1, "ids rise");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - time).abs() < 60, "unix time {time} vs {now}");
    assert!(*duration >= 0);
    assert_eq!(args, &[b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()]);
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    assert_eq!(name, "watcher");

    // Redis's cuts: 32 arguments at most, 128 bytes of each.
    let mut mset = redis::cmd("MSET");
    for i in 0..20 {
        mset.arg(format!("key{i}")).arg("x".repeat(200));
    }
    let _: () = mset.query(&mut con).unwrap();
    let (_, _, _, args, _, _) = slowlog(&mut con, 1).remove(0);
    assert_eq!(args.len(), 32);
    assert_eq!(args[1], b"key0");
    assert_eq!(
        String::from_utf8_lossy(&args[2]),
        format!("{}... (72 more bytes)", "x".repeat(128))
    );
    assert_eq!(args[31], b"... (10 more arguments)");

    // The text port's commands are logged too, under their line's words.
    let mut text = TextClient::connect(&server);
    assert_eq!(text.call("PUT tk tv"), "OK");
    let entries = slowlog(&mut con, 2);
    let put = entries
        .iter()
        .find(|e| e.3[0] == b"PUT")
        .expect("PUT logged");
    assert_eq!(put.3, [b"PUT".to_vec(), b"tk".to_vec(), b"tv".to_vec()]);
    assert_eq!(put.5, "");

    // The length bound, set at run time: the newest entries stay.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-max-len")
        .arg("3")
        .query(&mut con)
        .unwrap();
    for i in 0..10 {
        let _: () = redis::cmd("SET")
            .arg(format!("m{i}"))
            .arg(i)
            .query(&mut con)
            .unwrap();
    }
    let len: i64 = redis::cmd("SLOWLOG").arg("LEN").query(&mut con).unwrap();
    assert_eq!(len, 3);
    let entries = slowlog(&mut con, -1);
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0].3, [b"SLOWLOG".to_vec(), b"LEN".to_vec()]);
    assert_eq!(entries[1].3[1], b"m9");
    assert_eq!(entries[2].3[1], b"m8");
    assert!(entries.windows(2).all(|w| w[0].0 == w[1].0 + 1));
    assert!(slowlog(&mut con, 0).is_empty());

    // A negative threshold turns the log off; a large one logs nothing fast.
    for threshold in ["-1", "1000000"] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("slowlog-log-slower-than")
            .arg(threshold)
            .query(&mut con)
            .unwrap();
        let _: () = redis::cmd("SLOWLOG").arg("RESET").query(&mut con).unwrap();
        for i in 0..5 {
            let _: () = redis::cmd("SET").arg("q").arg(i).query(&mut con).unwrap();
        }
        let len: i64 = redis::cmd("SLOWLOG").arg("LEN").query(&mut con).unwrap();
        assert_eq!(len, 0, "threshold {threshold}");
    }
    let got: HashMap<String, String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("slowlog-*")
        .query(&mut con)
        .unwrap();
    assert_eq!(got["slowlog-log-slower-than"], "1000000");
    assert_eq!(got["slowlog-max-len"], "3");

    // Errors, in Redis's words.
    let err = |con: &mut redis::Connection, args: &[&str]| {
        cmd(con, args).expect_err("an error").to_string()
    };
    assert!(err(&mut con, &["SLOWLOG", "GET", "-2"]).contains("greater than or equal to -1"));
    assert!(err(&mut con, &["SLOWLOG", "LEN", "x"]).contains("'slowlog|len'"));
    assert!(err(&mut con, &["SLOWLOG", "NOPE"]).contains("unknown subcommand"));
    assert!(
        err(&mut con, &["CONFIG", "SET", "slowlog-max-len", "many"]).contains("slowlog-max-len")
    );
    assert!(err(&mut con, &["CONFIG", "SET", "maxclients", "5"]).contains("not supported"));
    let help: Vec<String> = redis::cmd("SLOWLOG").arg("HELP").query(&mut con).unwrap();
    assert!(
        help[0].starts_with("SLOWLOG <subcommand>") && help.len() > 5,
        "{help:?}"
    );
    // COMMAND INFO knows it, as Redis describes its container.
    let info: redis::Value = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("slowlog")
        .query(&mut con)
        .unwrap();
    let redis::Value::Array(commands) = &info else {
        panic!("{info:?}")
    };
    let redis::Value::Array(fields) = &commands[0] else {
        panic!("{info:?}")
    };
    assert_eq!(fields[0], redis::Value::BulkString(b"slowlog".to_vec()));
    assert_eq!(fields[1], redis::Value::Int(-2), "arity");
}

/// One line of `redis-cli --stat`'s table.
#[derive(Debug)]
struct StatLine {
    keys: u64,
    mem_bytes: f64,
    clients: u64,
    blocked: u64,
    requests: u64,
    delta: u64,
    connections: u64,
}

/// `1002       22.00M   51      0       214435 (+14409)     172`
fn parse_stat_line(line: &str) -> Option<StatLine> {
    let w: Vec<&str> = line.split_whitespace().collect();
    if w.len() != 7 {
        return None;
    }
    let mem = w[1];
    let (number, unit) = mem.split_at(mem.len().checked_sub(1)?);
    let scale = match unit {
        "B" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(StatLine {
        keys: w[0].parse().ok()?,
        mem_bytes: number.parse::<f64>().ok()? * scale,
        clients: w[2].parse().ok()?,
        blocked: w[3].parse().ok()?,
        requests: w[4].parse().ok()?,
        delta: w[5].strip_prefix("(+")?.strip_suffix(')')?.parse().ok()?,
        connections: w[6].parse().ok()?,
    })
}

#[test]
fn redis_cli_stat_shows_sane_numbers_under_writes() {
    ensure_redis_cli();
    let server = TestServer::start_with(&["--fsync", "never"]);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = load(&server, 500, stop.clone());
    // Line-buffered: redis-cli's stdout is a pipe, and it is killed.
    let child = Command::new("stdbuf")
        .args(["-oL", "redis-cli", "-p"])
        .arg(server.resp_addr.port().to_string())
        .args(["-i", "0.5", "--stat"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stdbuf redis-cli");
    let out = output_within(child, Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("keys       mem      clients blocked requests"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<StatLine> = stdout.lines().filter_map(parse_stat_line).collect();
    assert!(lines.len() >= 3, "{stdout}");
    let pid_rss = rss_bytes(server.pid()) as f64;
    for l in &lines {
        assert!(l.keys <= 500, "{l:?}");
        assert!(
            l.mem_bytes > 1e6 && l.mem_bytes < pid_rss * 4.0,
            "{l:?} vs RSS {pid_rss}"
        );
        assert!(l.clients >= 2 && l.clients < 10, "{l:?}");
        assert_eq!(l.blocked, 0);
        assert!(l.connections >= 2 && l.connections < 10, "{l:?}");
    }
    let last = lines.last().unwrap();
    assert!(last.keys > 0, "{last:?}");
    assert!(
        lines.windows(2).all(|w| w[1].requests >= w[0].requests),
        "{stdout}"
    );
    // Deltas after the first line are the requests between two samples.
    assert!(lines[1..].iter().any(|l| l.delta > 100), "{stdout}");
    for w in lines.windows(2) {
        assert_eq!(w[1].delta, w[1].requests - w[0].requests, "{stdout}");
    }
}

#[test]
fn redis_py_reads_info_sections_and_the_slowlog() {
    ensure_redis_py();
    let server = TestServer::start_with(&["--fsync", "never", "--slowlog-log-slower-than", "0"]);
    let script = r#"
import sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]), socket_timeout=10)
r.set("a", "1"); r.get("a"); r.get("a")
try:
    r.execute_command("GET")
except redis.ResponseError:
    pass
stats = r.info("commandstats")
get = stats["cmdstat_get"]
assert get["calls"] == 2 and get["rejected_calls"] == 1, get
assert isinstance(get["usec_per_call"], float), get
assert r.info("errorstats")["errorstat_ERR"]["count"] == 1
lat = r.info("latencystats")["latency_percentiles_usec_get"]
assert lat["p50"] > 0 and lat["p99.9"] >= lat["p50"], lat
mem = r.info("memory")
assert mem["used_memory"] > 0 and mem["used_memory_rss"] > 0, mem
assert r.info()["blocked_clients"] == 0
entries = r.slowlog_get(3)
assert len(entries) == 3, entries
e = entries[0]
assert e["command"].startswith(b"INFO") or e["command"].startswith(b"GET"), e
assert e["client_address"].startswith(b"127.0.0.1:") and e["duration"] >= 0, e
assert r.slowlog_len() >= 3
assert r.slowlog_reset()
print("ok")
"#;
    let out = run_bounded(
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(server.resp_addr.port().to_string()),
        Duration::from_secs(60),
    )
    .expect("run python3");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
