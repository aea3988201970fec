//! Process lifecycle: graceful shutdown (SIGTERM / SIGINT) with in-flight
//! pipelined writes, restarts, `--text-listen off`, configuration precedence
//! (flag > env > file > default), bad configuration, and the non-default
//! fsync modes.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{TestServer, parse_ready_line, strata_bin};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A server started directly (not through `TestServer`), for tests that need
/// their own flags, environment or config file. Killed on drop.
struct RawServer {
    child: Option<Child>,
    resp: SocketAddr,
    text: Option<SocketAddr>,
    stderr_path: std::path::PathBuf,
}

impl RawServer {
    fn redis(&self) -> redis::Connection {
        let client = redis::Client::open(format!("redis://{}/", self.resp)).unwrap();
        let conn = client
            .get_connection_with_timeout(Duration::from_secs(10))
            .expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        conn.set_write_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        conn
    }

    fn stop(&mut self, signal: i32) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) on our own, not yet reaped, child.
        unsafe {
            libc::kill(child.id() as i32, signal);
        }
        wait_bounded(&mut child, Duration::from_secs(30)).unwrap_or_else(|| {
            panic!(
                "server did not exit within 30 s of signal {signal}; stderr:\n{}",
                self.stderr()
            )
        })
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `strata` with the given args/env and no inherited STRATA_* variables.
fn strata_cmd(args: &[&str], envs: &[(&str, &str)], cwd: &Path) -> Command {
    let mut cmd = Command::new(strata_bin());
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .env("RUST_LOG", "info");
    for (k, _) in std::env::vars() {
        if k.starts_with("STRATA_") {
            cmd.env_remove(k);
        }
    }
    // An ephemeral HTTP port, not the default one, unless a test says.
    cmd.env("STRATA_HTTP_LISTEN", "127.0.0.1:0");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

/// Starts `strata <args>` and waits (bounded) for its ready line.
fn start_raw(args: &[&str], envs: &[(&str, &str)], cwd: &Path) -> RawServer {
    let stderr_path = cwd.join(format!(
        "stderr-{}.log",
        std::process::id() as u64 * 1000 + rand_suffix()
    ));
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let mut child = strata_cmd(args, envs, cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("spawn strata");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        let _ = tx.send(line);
        let mut sink = String::new();
        while r.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
    let mut server = RawServer {
        child: Some(child),
        resp: "0.0.0.0:0".parse().unwrap(),
        text: None,
        stderr_path,
    };
    let line = rx.recv_timeout(common::READY_TIMEOUT).unwrap_or_else(|_| {
        panic!("strata {args:?} not ready; stderr:\n{}", server.stderr());
    });
    let (resp, text) = parse_ready_line(&line).unwrap_or_else(|| {
        panic!(
            "strata {args:?}: bad ready line {line:?}; stderr:\n{}",
            server.stderr()
        )
    });
    server.resp = resp;
    server.text = text;
    server
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Runs `strata <args>` expecting it to fail fast. Returns (exit code,
/// stdout, stderr, elapsed).
fn run_expect_exit(
    args: &[&str],
    envs: &[(&str, &str)],
    cwd: &Path,
) -> (Option<i32>, String, String, Duration) {
    let started = Instant::now();
    let child = strata_cmd(args, envs, cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strata");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(out) => {
            let out = out.expect("output");
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
                started.elapsed(),
            )
        }
        Err(_) => {
            // SAFETY: kill(2) on the child we spawned; it has not been reaped
            // (wait_with_output is still blocked on it).
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
            let _ = rx.recv_timeout(Duration::from_secs(5));
            panic!(
                "strata {args:?} (env {envs:?}) did not exit within 10 s (it should reject the configuration)"
            );
        }
    }
}

fn config_get(conn: &mut redis::Connection, name: &str) -> String {
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query(conn)
        .expect("CONFIG GET");
    assert_eq!(v.len(), 2, "CONFIG GET {name} -> {v:?}");
    assert_eq!(v[0], name, "CONFIG GET {name} -> {v:?}");
    v[1].clone()
}

/// Sends `signal` to the TestServer and waits (bounded) for the process to
/// exit, then reaps it. The child is not reaped before `stop_graceful` is
/// called, so the pid cannot be reused meanwhile (the SIGTERM that
/// `stop_graceful` sends then reaches a zombie and is a no-op).
fn signal_and_wait(server: &mut TestServer, signal: i32) -> ExitStatus {
    let pid = server.pid();
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid as i32, signal);
    }
    let deadline = Instant::now() + common::SHUTDOWN_TIMEOUT;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        if matches!(state, None | Some('Z') | Some('X')) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server did not exit within {:?} of signal {signal}",
            common::SHUTDOWN_TIMEOUT
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.stop_graceful()
}

fn resp_cmd(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for p in parts {
        out.extend(format!("${}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend(b"\r\n");
    }
    out
}

/// Minimal RESP2 reply reader; returns a one-line summary of each reply
/// ("+OK", "-ERR ...", ":1", "$3", "*2").
fn read_reply(r: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let line = line.trim_end().to_string();
    match line.as_bytes().first() {
        Some(b'$') => {
            let n: i64 = line[1..]
                .parse()
                .map_err(|_| std::io::Error::other("bad bulk len"))?;
            if n >= 0 {
                let mut buf = vec![0; n as usize + 2];
                r.read_exact(&mut buf)?;
            }
        }
        Some(b'*') => {
            let n: i64 = line[1..]
                .parse()
                .map_err(|_| std::io::Error::other("bad array len"))?;
            for _ in 0..n.max(0) {
                read_reply(r)?;
            }
        }
        _ => {}
    }
    Ok(line)
}

fn pipelined_key(i: usize) -> String {
    format!("p:{i:06}")
}

fn pipelined_value(i: usize) -> String {
    format!("value-{i}-{}", "x".repeat(i % 50))
}

/// A client pipelining `SET p:<i> value-<i>` on a raw connection while the
/// server receives `signal`; all acknowledged writes must be there after a
/// relaunch and the exit status must be 0.
fn shutdown_with_inflight_pipeline(signal: i32) {
    let mut server = TestServer::start_with(&["--fsync", "always"]);
    // An idle connection must not keep the server from exiting.
    let _idle = server.redis();
    let stream = TcpStream::connect(server.resp_addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut wstream = stream.try_clone().unwrap();
    const TOTAL: usize = 20_000;
    let sent = Arc::new(AtomicUsize::new(0));
    let stop_writing = Arc::new(AtomicBool::new(false));
    let writer = {
        let sent = sent.clone();
        let stop_writing = stop_writing.clone();
        std::thread::spawn(move || {
            // Chunks of 50 commands as fast as the socket takes them: there
            // is a backlog of unanswered requests when the signal arrives.
            let mut i = 0;
            while i < TOTAL && !stop_writing.load(Ordering::Relaxed) {
                let mut buf = Vec::new();
                for j in i..(i + 50).min(TOTAL) {
                    buf.extend(resp_cmd(&[
                        b"SET",
                        pipelined_key(j).as_bytes(),
                        pipelined_value(j).as_bytes(),
                    ]));
                }
                if wstream.write_all(&buf).is_err() {
                    break;
                }
                i = (i + 50).min(TOTAL);
                sent.store(i, Ordering::Relaxed);
            }
        })
    };
    let acked_count = Arc::new(AtomicUsize::new(0));
    let reader = {
        let acked_count = acked_count.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stream);
            let mut replies: Vec<String> = Vec::new();
            while let Ok(reply) = read_reply(&mut r) {
                if reply == "+OK" {
                    acked_count.fetch_add(1, Ordering::Relaxed);
                }
                replies.push(reply);
            }
            replies
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked_count.load(Ordering::Relaxed) < 300 {
        assert!(
            Instant::now() < deadline,
            "fewer than 300 pipelined SETs acknowledged within 60 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let signalled_at = Instant::now();
    let sent_at_signal = sent.load(Ordering::Relaxed);
    let acked_at_signal = acked_count.load(Ordering::Relaxed);
    let status = if signal == libc::SIGTERM {
        server.stop_graceful()
    } else {
        signal_and_wait(&mut server, signal)
    };
    let shutdown_time = signalled_at.elapsed();
    stop_writing.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let replies = reader.join().unwrap();
    let acked: Vec<usize> = replies
        .iter()
        .enumerate()
        .filter(|(_, r)| *r == "+OK")
        .map(|(i, _)| i)
        .collect();
    let errors: Vec<&String> = replies.iter().filter(|r| *r != "+OK").collect();
    eprintln!(
        "signal {signal}: sent {sent_at_signal} / acked {acked_at_signal} at signal; {} replies ({} OK, {} other: {:?}); exit {status} after {shutdown_time:.2?}",
        replies.len(),
        acked.len(),
        errors.len(),
        errors.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        status.success(),
        "exit status after signal {signal} must be 0, got {status}; log:\n{}",
        server.log()
    );
    assert!(
        acked.len() >= acked_at_signal,
        "the client saw {acked_at_signal} OKs before the signal but only {} in total",
        acked.len()
    );

    server.relaunch();
    let mut conn = server.redis();
    let keys: Vec<String> = acked.iter().map(|&i| pipelined_key(i)).collect();
    let mut missing = Vec::new();
    for chunk in keys.chunks(500) {
        let vals: Vec<Option<String>> = redis::cmd("MGET").arg(chunk).query(&mut conn).unwrap();
        for (k, v) in chunk.iter().zip(vals) {
            let i: usize = k[2..].parse().unwrap();
            if v.as_deref() != Some(pipelined_value(i).as_str()) {
                missing.push(k.clone());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes missing after shutdown by signal {signal} and relaunch: first {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)]
    );
    // Nothing that was never sent may appear; anything present beyond the
    // acknowledged prefix must carry the value that was sent.
    let dbsize: usize = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    assert!(
        dbsize >= acked.len() && dbsize <= TOTAL,
        "DBSIZE {dbsize}, acked {}",
        acked.len()
    );
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn sigterm_with_inflight_pipelined_writes_exits_0_and_keeps_acked_writes() {
    shutdown_with_inflight_pipeline(libc::SIGTERM);
}

#[test]
fn sigint_with_inflight_pipelined_writes_exits_0_and_keeps_acked_writes() {
    shutdown_with_inflight_pipeline(libc::SIGINT);
}

/// SIGTERM while 8 clients write concurrently (single SETs and MSETs):
/// exit 0 within the shutdown bound, and every acknowledged write is there
/// after a relaunch (the group-commit queue is flushed, not dropped).
#[test]
fn sigterm_under_concurrent_load_keeps_every_acknowledged_write() {
    let mut server = TestServer::start_with(&["--fsync", "always"]);
    let addr = server.resp_addr;
    let handles: Vec<_> = (0..8)
        .map(|w| {
            std::thread::spawn(move || {
                let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
                let mut conn = client
                    .get_connection_with_timeout(Duration::from_secs(10))
                    .unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(30)))
                    .unwrap();
                let mut acked: Vec<(String, String)> = Vec::new();
                for i in 0..100_000 {
                    let (k, v) = (format!("w{w}:{i}"), format!("v{w}:{i}"));
                    let r: redis::RedisResult<()> = if i % 3 == 0 {
                        redis::cmd("MSET")
                            .arg(&k)
                            .arg(&v)
                            .arg(format!("{k}:m"))
                            .arg(&v)
                            .query(&mut conn)
                    } else {
                        redis::cmd("SET").arg(&k).arg(&v).query(&mut conn)
                    };
                    if r.is_err() {
                        break;
                    }
                    if i % 3 == 0 {
                        acked.push((format!("{k}:m"), v.clone()));
                    }
                    acked.push((k, v));
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let status = server.stop_graceful();
    let took = t.elapsed();
    let acked: Vec<(String, String)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    eprintln!(
        "SIGTERM under load: {} acknowledged writes, exit {status} after {took:.2?}",
        acked.len()
    );
    assert!(status.success(), "exit status {status}");
    assert!(!acked.is_empty());
    server.relaunch();
    let mut c = server.redis();
    let mut missing = Vec::new();
    for chunk in acked.chunks(500) {
        let keys: Vec<&String> = chunk.iter().map(|(k, _)| k).collect();
        let vals: Vec<Option<String>> = redis::cmd("MGET").arg(keys).query(&mut c).unwrap();
        for ((k, v), got) in chunk.iter().zip(vals) {
            if got.as_deref() != Some(v.as_str()) {
                missing.push(k.clone());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes missing after SIGTERM under load: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)]
    );
}

/// The server announces readiness only once a signal would be handled: a
/// SIGTERM or SIGINT sent right after the ready line must still shut it down
/// gracefully with exit status 0 (not kill it by the default signal action).
#[test]
fn signal_right_after_ready_line_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for i in 0..10 {
        let signal = if i % 2 == 0 {
            libc::SIGTERM
        } else {
            libc::SIGINT
        };
        let data = tmp.path().join(format!("data-{i}"));
        let mut server = start_raw(
            &[
                "server",
                "--listen",
                "127.0.0.1:0",
                "--text-listen",
                "off",
                "--data-dir",
                data.to_str().unwrap(),
            ],
            &[],
            tmp.path(),
        );
        let status = server.stop(signal);
        if !status.success() {
            failures.push(format!(
                "run {i}: signal {signal} right after the ready line -> {status}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 10 runs did not exit 0:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

#[test]
fn restart_preserves_data() {
    let mut server = TestServer::start();
    let mut c = server.redis();
    let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let entries: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"plain".to_vec(), b"value".to_vec()),
        (b"bin\x00key".to_vec(), b"\x00\xff\r\n\x00".to_vec()),
        (b"empty".to_vec(), Vec::new()),
        (b"big".to_vec(), big),
        ("ünicode".as_bytes().to_vec(), "välue".as_bytes().to_vec()),
    ];
    for (k, v) in &entries {
        let _: () = redis::cmd("SET").arg(k).arg(v).query(&mut c).unwrap();
    }
    for i in 0..300 {
        let _: () = redis::cmd("SET")
            .arg(format!("n:{i:03}"))
            .arg(i)
            .query(&mut c)
            .unwrap();
    }
    let _: i64 = redis::cmd("DEL")
        .arg("n:000")
        .arg("n:001")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("n:002")
        .arg("overwritten")
        .query(&mut c)
        .unwrap();
    let _: i64 = redis::cmd("INCRBY")
        .arg("n:003")
        .arg(1000)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("RENAME")
        .arg("n:004")
        .arg("renamed")
        .query(&mut c)
        .unwrap();

    // `extra`: keys written after the initial set.
    let check = |c: &mut redis::Connection, phase: &str, extra: i64| {
        for (k, v) in &entries {
            let got: Option<Vec<u8>> = redis::cmd("GET").arg(k).query(c).unwrap();
            assert_eq!(
                got.as_ref(),
                Some(v),
                "{phase}: GET {:?}",
                String::from_utf8_lossy(k)
            );
        }
        let dbsize: i64 = redis::cmd("DBSIZE").query(c).unwrap();
        // 300 n:* keys, 2 deleted, one renamed away (and "renamed" added).
        assert_eq!(
            dbsize,
            entries.len() as i64 + 298 + extra,
            "{phase}: DBSIZE"
        );
        let got: Vec<Option<String>> = redis::cmd("MGET")
            .arg("n:000")
            .arg("n:001")
            .arg("n:002")
            .arg("n:003")
            .arg("n:004")
            .arg("renamed")
            .arg("n:299")
            .query(c)
            .unwrap();
        assert_eq!(
            got,
            vec![
                None,
                None,
                Some("overwritten".into()),
                Some("1003".into()),
                None,
                Some("4".into()),
                Some("299".into())
            ],
            "{phase}"
        );
    };
    check(&mut c, "before restart", 0);
    drop(c);
    for round in 0..3 {
        let status = server.stop_graceful();
        assert!(status.success(), "graceful stop #{round}: {status}");
        server.relaunch();
        let mut c = server.redis();
        check(&mut c, &format!("after graceful restart #{round}"), 0);
    }
    server.restart_after_kill9();
    let mut c = server.redis();
    check(&mut c, "after kill -9 restart", 0);
    // Writes after a recovery are durable too.
    let _: () = redis::cmd("SET")
        .arg("after-recovery")
        .arg("yes")
        .query(&mut c)
        .unwrap();
    drop(c);
    server.restart_after_kill9();
    let mut c = server.redis();
    check(&mut c, "after second kill -9 restart", 1);
    let got: Option<String> = redis::cmd("GET")
        .arg("after-recovery")
        .query(&mut c)
        .unwrap();
    assert_eq!(got.as_deref(), Some("yes"));
    // FLUSHALL is durable as well.
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    drop(c);
    server.restart_after_kill9();
    let mut c = server.redis();
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(dbsize, 0, "FLUSHALL undone by kill -9");
}

#[test]
fn text_listen_off_prints_text_off() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let mut server = start_raw(
        &[
            "server",
            "--listen",
            "127.0.0.1:0",
            "--text-listen",
            "off",
            "--data-dir",
            data,
        ],
        &[],
        tmp.path(),
    );
    assert_eq!(server.text, None, "ready line must say text=off");
    let mut c = server.redis();
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    drop(c);
    let status = server.stop(libc::SIGTERM);
    assert!(status.success(), "exit status {status}");

    // And with the text listener on, the ready line names an address.
    let server = start_raw(
        &[
            "server",
            "--listen",
            "127.0.0.1:0",
            "--text-listen",
            "127.0.0.1:0",
            "--data-dir",
            data,
        ],
        &[],
        tmp.path(),
    );
    let text = server
        .text
        .expect("text=<addr> when the text listener is on");
    assert_ne!(text.port(), 0);
    assert_ne!(text, server.resp);
}

#[test]
fn config_precedence_flag_over_env_over_file_over_default() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("strata.toml");
    let data = tmp.path().join("data");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\ntext_listen = \"off\"\ndata_dir = {:?}\nfsync = \"never\"\nvalue_size_bytes_max = 1111\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    const NAME: &str = "value-size-bytes-max";

    // Default.
    let default_value = {
        let data = tmp.path().join("data-default");
        let server = start_raw(
            &[
                "server",
                "--listen",
                "127.0.0.1:0",
                "--text-listen",
                "off",
                "--data-dir",
                data.to_str().unwrap(),
            ],
            &[],
            tmp.path(),
        );
        let v = config_get(&mut server.redis(), NAME);
        let n: u64 = v
            .parse()
            .unwrap_or_else(|_| panic!("{NAME} default {v:?} is not a number"));
        assert!(n >= 4096, "default {NAME} = {n} is implausibly small");
        assert_ne!(n, 1111);
        n
    };

    // File only: listen/text_listen/data_dir also come from the file.
    {
        let server = start_raw(&["server", "--config", cfg], &[], tmp.path());
        assert_eq!(server.text, None, "text_listen = \"off\" from the file");
        let mut c = server.redis();
        assert_eq!(config_get(&mut c, NAME), "1111", "file over default");
        // The effective value is enforced.
        let _: () = redis::cmd("SET")
            .arg("at-limit")
            .arg(vec![b'x'; 1111])
            .query(&mut c)
            .expect("value of exactly the maximum size");
        let r: redis::RedisResult<()> = redis::cmd("SET")
            .arg("over-limit")
            .arg(vec![b'x'; 1112])
            .query(&mut c);
        assert!(
            r.is_err(),
            "SET of a 1112-byte value with value_size_bytes_max = 1111 must fail"
        );
        let r: redis::RedisResult<i64> =
            redis::cmd("APPEND").arg("at-limit").arg("y").query(&mut c);
        assert!(
            r.is_err(),
            "APPEND growing a value past value_size_bytes_max must fail"
        );
        let len: i64 = redis::cmd("STRLEN").arg("at-limit").query(&mut c).unwrap();
        assert_eq!(len, 1111);
        let exists: i64 = redis::cmd("EXISTS")
            .arg("over-limit")
            .query(&mut c)
            .unwrap();
        assert_eq!(exists, 0);
        assert!(data.exists(), "data_dir from the config file must be used");
    }

    // Env over file.
    {
        let server = start_raw(
            &["server", "--config", cfg],
            &[("STRATA_VALUE_SIZE_BYTES_MAX", "2222")],
            tmp.path(),
        );
        assert_eq!(
            config_get(&mut server.redis(), NAME),
            "2222",
            "env over file"
        );
    }
    // Env over default (no file).
    {
        let data = tmp.path().join("data-env");
        let server = start_raw(
            &[
                "server",
                "--listen",
                "127.0.0.1:0",
                "--text-listen",
                "off",
                "--data-dir",
                data.to_str().unwrap(),
            ],
            &[("STRATA_VALUE_SIZE_BYTES_MAX", "2222")],
            tmp.path(),
        );
        assert_eq!(
            config_get(&mut server.redis(), NAME),
            "2222",
            "env over default"
        );
    }
    // Flag over env over file.
    {
        let server = start_raw(
            &["server", "--config", cfg, "--value-size-bytes-max", "3333"],
            &[("STRATA_VALUE_SIZE_BYTES_MAX", "2222")],
            tmp.path(),
        );
        assert_eq!(
            config_get(&mut server.redis(), NAME),
            "3333",
            "flag over env"
        );
    }
    // Flag over file for the listen address too.
    {
        let server = start_raw(
            &["server", "--config", cfg, "--text-listen", "127.0.0.1:0"],
            &[],
            tmp.path(),
        );
        assert!(
            server.text.is_some(),
            "--text-listen flag must override text_listen = \"off\" from the file"
        );
    }
    // Env for other keys (STRATA_TEXT_LISTEN) over the file.
    {
        let server = start_raw(
            &["server", "--config", cfg],
            &[("STRATA_TEXT_LISTEN", "127.0.0.1:0")],
            tmp.path(),
        );
        assert!(
            server.text.is_some(),
            "STRATA_TEXT_LISTEN must override text_listen = \"off\" from the file"
        );
    }
    eprintln!("default {NAME} = {default_value}");
}

#[test]
fn bad_configuration_fails_fast_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let write = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let unknown_key = write("unknown.toml", "listen = \"127.0.0.1:0\"\nbogus_knob = 1\n");
    let bad_syntax = write("syntax.toml", "listen = \n");
    let bad_type = write("type.toml", "value_size_bytes_max = \"lots\"\n");
    let missing = tmp.path().join("does-not-exist.toml");
    let missing = missing.to_str().unwrap();
    let file_as_dir = write("not-a-directory", "x");
    let base = [
        "server",
        "--listen",
        "127.0.0.1:0",
        "--text-listen",
        "off",
        "--data-dir",
        data,
    ];
    let with = |extra: &[&'static str]| -> Vec<String> {
        base.iter()
            .map(|s| s.to_string())
            .chain(extra.iter().map(|s| s.to_string()))
            .collect()
    };
    // (description, args, env, words of which at least one must be in stderr)
    type Case<'a> = (&'a str, Vec<String>, Vec<(&'a str, &'a str)>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "unknown key in config file",
            vec![
                "server".into(),
                "--config".into(),
                unknown_key.clone(),
                "--data-dir".into(),
                data.into(),
            ],
            vec![],
            vec!["bogus_knob"],
        ),
        (
            "config file syntax error",
            vec![
                "server".into(),
                "--config".into(),
                bad_syntax,
                "--data-dir".into(),
                data.into(),
            ],
            vec![],
            vec!["syntax.toml", "listen", "expected", "invalid"],
        ),
        (
            "config value of the wrong type",
            vec![
                "server".into(),
                "--config".into(),
                bad_type,
                "--data-dir".into(),
                data.into(),
            ],
            vec![],
            vec!["value_size_bytes_max", "lots"],
        ),
        (
            "missing config file",
            vec![
                "server".into(),
                "--config".into(),
                missing.into(),
                "--data-dir".into(),
                data.into(),
            ],
            vec![],
            vec!["does-not-exist.toml"],
        ),
        (
            "bad --fsync value",
            with(&["--fsync", "sometimes"]),
            vec![],
            vec!["fsync", "sometimes"],
        ),
        (
            "bad --fsync periodic interval",
            with(&["--fsync", "periodic:abc"]),
            vec![],
            vec!["fsync", "periodic", "abc"],
        ),
        (
            "bad STRATA_FSYNC env value",
            with(&[]),
            vec![("STRATA_FSYNC", "sometimes")],
            vec!["fsync", "sometimes"],
        ),
        (
            "unparsable --listen address",
            vec![
                "server".into(),
                "--listen".into(),
                "not-an-address".into(),
                "--data-dir".into(),
                data.into(),
            ],
            vec![],
            vec!["listen", "not-an-address"],
        ),
        (
            "unparsable --text-listen address",
            vec![
                "server".into(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--text-listen".into(),
                "127.0.0.1:99999".into(),
                "--data-dir".into(),
                data.into(),
            ],
            vec![],
            vec!["text", "99999"],
        ),
        (
            "--data-dir is a regular file",
            vec![
                "server".into(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--text-listen".into(),
                "off".into(),
                "--data-dir".into(),
                file_as_dir.clone(),
            ],
            vec![],
            vec!["not-a-directory", "data", "directory"],
        ),
        (
            "bad --value-size-bytes-max",
            with(&["--value-size-bytes-max", "-5"]),
            vec![],
            vec!["value-size-bytes-max", "value_size_bytes_max", "-5"],
        ),
    ];
    let mut problems = Vec::new();
    for (what, args, env, words) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stdout, stderr, elapsed) = run_expect_exit(&args, env, tmp.path());
        eprintln!(
            "{what}: exit {code:?} in {elapsed:.2?}; stderr: {}",
            stderr.trim()
        );
        if code == Some(0) || code.is_none() {
            problems.push(format!(
                "{what}: exit status {code:?}, expected a nonzero exit code"
            ));
        }
        if stdout.contains("ready") {
            problems.push(format!("{what}: printed a ready line: {stdout:?}"));
        }
        let lower = stderr.to_lowercase();
        if !words.iter().any(|w| lower.contains(&w.to_lowercase())) {
            problems.push(format!(
                "{what}: stderr {stderr:?} mentions none of {words:?}"
            ));
        }
        if stderr.contains("panicked at") {
            problems.push(format!(
                "{what}: panicked instead of reporting an error: {stderr:?}"
            ));
        }
        if elapsed > Duration::from_secs(5) {
            problems.push(format!("{what}: took {elapsed:.1?} to fail"));
        }
    }
    assert!(
        problems.is_empty(),
        "bad configuration handling:\n  {}",
        problems.join("\n  ")
    );
}

/// Settings that pass strata's own validation must either work or be
/// rejected cleanly; never a panic at start-up. (A 1 MiB journal limit is
/// accepted by the validation, which only requires journal >= memtable >=
/// 1 MiB.)
#[test]
fn small_journal_limit_starts_or_is_rejected_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let args = [
        "server",
        "--listen",
        "127.0.0.1:0",
        "--text-listen",
        "off",
        "--data-dir",
        data.to_str().unwrap(),
        "--memtable-size-bytes",
        "1048576",
        "--journal-size-bytes-max",
        "1048576",
    ];
    let stderr_path = tmp.path().join("stderr.log");
    let mut child = strata_cmd(&args, &[], tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&stderr_path).unwrap()))
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
    let mut server = RawServer {
        child: Some(child),
        resp: "0.0.0.0:0".parse().unwrap(),
        text: None,
        stderr_path,
    };
    if let Some((resp, _)) = parse_ready_line(&line) {
        server.resp = resp;
        let _: () = redis::cmd("SET")
            .arg("k")
            .arg("v")
            .query(&mut server.redis())
            .unwrap();
        assert!(server.stop(libc::SIGTERM).success());
        return;
    }
    let status =
        wait_bounded(server.child.as_mut().unwrap(), Duration::from_secs(10)).expect("exit");
    server.child = None;
    let stderr = server.stderr();
    assert!(
        !stderr.contains("panicked at") && status.code().is_some_and(|c| c != 0 && c != 101),
        "--journal-size-bytes-max 1048576 neither started nor was rejected cleanly: exit {status}, stderr:\n{stderr}"
    );
}

#[test]
fn listen_address_in_use_fails_fast() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let data = tmp.path().join("data");
    let (code, stdout, stderr, elapsed) = run_expect_exit(
        &[
            "server",
            "--listen",
            &addr,
            "--text-listen",
            "off",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
        tmp.path(),
    );
    assert!(
        matches!(code, Some(c) if c != 0),
        "exit {code:?} when {addr} is taken; stderr: {stderr}"
    );
    assert!(
        !stdout.contains("ready"),
        "printed a ready line although {addr} is taken"
    );
    assert!(
        !stderr.trim().is_empty() && !stderr.contains("panicked at"),
        "stderr: {stderr:?}"
    );
    assert!(elapsed < Duration::from_secs(5));
}

fn write_and_check(conn: &mut redis::Connection, n: usize, tag: &str) {
    for i in 0..n {
        let _: () = redis::cmd("SET")
            .arg(format!("{tag}:{i:04}"))
            .arg(format!("{tag}-value-{i}"))
            .query(conn)
            .unwrap();
    }
    let _: () = redis::cmd("MSET")
        .arg(format!("{tag}:m1"))
        .arg("a")
        .arg(format!("{tag}:m2"))
        .arg("b")
        .query(conn)
        .unwrap();
    check_written(conn, n, tag, "immediately");
    // A pipeline mixing writes and reads: with `--fsync periodic|never` its
    // writes are committed inline as one group, so the replies must still
    // come in order and each read must see the writes sent before it.
    let (set, n1, n2, got_n, appended, got_a): (String, i64, i64, String, i64, String) =
        redis::pipe()
            .cmd("SET")
            .arg(format!("{tag}:p:a"))
            .arg("1")
            .cmd("INCR")
            .arg(format!("{tag}:p:n"))
            .cmd("INCR")
            .arg(format!("{tag}:p:n"))
            .cmd("GET")
            .arg(format!("{tag}:p:n"))
            .cmd("APPEND")
            .arg(format!("{tag}:p:a"))
            .arg("x")
            .cmd("GET")
            .arg(format!("{tag}:p:a"))
            .query(conn)
            .unwrap();
    assert_eq!(
        (
            set.as_str(),
            n1,
            n2,
            got_n.as_str(),
            appended,
            got_a.as_str()
        ),
        ("OK", 1, 2, "2", 2, "1x"),
        "{tag}: pipelined writes and reads"
    );
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{tag}:p:a"))
        .arg(format!("{tag}:p:n"))
        .query(conn)
        .unwrap();
}

fn check_written(conn: &mut redis::Connection, n: usize, tag: &str, phase: &str) {
    let keys: Vec<String> = (0..n).map(|i| format!("{tag}:{i:04}")).collect();
    let vals: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(conn).unwrap();
    for (i, v) in vals.iter().enumerate() {
        assert_eq!(
            v.as_deref(),
            Some(format!("{tag}-value-{i}").as_str()),
            "{phase}: {}",
            keys[i]
        );
    }
    let m: Vec<Option<String>> = redis::cmd("MGET")
        .arg(format!("{tag}:m1"))
        .arg(format!("{tag}:m2"))
        .query(conn)
        .unwrap();
    assert_eq!(
        m,
        vec![Some("a".to_string()), Some("b".to_string())],
        "{phase}"
    );
    let dbsize: usize = redis::cmd("DBSIZE").query(conn).unwrap();
    assert_eq!(dbsize, n + 2, "{phase}: DBSIZE");
}

#[test]
fn fsync_never_mode_works_and_survives_graceful_restart() {
    let mut server = TestServer::start_with(&["--fsync", "never"]);
    let mut c = server.redis();
    let info: String = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
    assert!(
        info.to_lowercase().contains("persistence"),
        "INFO persistence: {info}"
    );
    write_and_check(&mut c, 500, "never");
    drop(c);
    let status = server.stop_graceful();
    assert!(status.success(), "{status}");
    server.relaunch();
    let mut c = server.redis();
    check_written(&mut c, 500, "never", "after graceful restart");
}

#[test]
fn fsync_periodic_mode_works_and_bounds_the_loss_window() {
    let mut server = TestServer::start_with(&["--fsync", "periodic:50"]);
    let mut c = server.redis();
    write_and_check(&mut c, 500, "periodic");
    drop(c);
    let status = server.stop_graceful();
    assert!(status.success(), "{status}");
    server.relaunch();
    let mut c = server.redis();
    check_written(&mut c, 500, "periodic", "after graceful restart");
    // Writes older than many flush intervals survive even kill -9.
    let _: () = redis::cmd("SET")
        .arg("periodic:late")
        .arg("x")
        .query(&mut c)
        .unwrap();
    drop(c);
    std::thread::sleep(Duration::from_millis(2000));
    server.restart_after_kill9();
    let mut c = server.redis();
    let late: Option<String> = redis::cmd("GET")
        .arg("periodic:late")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        late.as_deref(),
        Some("x"),
        "--fsync periodic:50: a write acknowledged 2 s (40 intervals) before kill -9 was lost"
    );
    let dbsize: usize = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(dbsize, 503);
}
