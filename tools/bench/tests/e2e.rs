//! End to end: runs the real `strata-bench` binary against the real
//! `strata` server (and against two tiny fake servers for the failure
//! paths), checking the JSON report. Every wait is bounded; every child
//! process is killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use strata_test_kit::binary::strata_bin;

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const BENCH_TIMEOUT: Duration = Duration::from_secs(60);

fn bench_bin() -> &'static str {
    env!("CARGO_BIN_EXE_strata-bench")
}

fn wait_bounded(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `strata server` on an ephemeral loopback port in a temp dir.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("server.log");
        let log_file = std::fs::File::create(&log).expect("create server log");
        let mut child = Command::new(strata_bin())
            .args(["server", "--listen", "127.0.0.1:0", "--text-listen", "off"])
            .args(["--http-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env_remove("STRATA_ADDR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("spawn strata server");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the server never blocks on a full pipe.
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        let line = rx.recv_timeout(READY_TIMEOUT).unwrap_or_default();
        // `ready resp=127.0.0.1:1234 text=off`
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("resp="))
            .and_then(|a| a.parse().ok());
        match addr {
            Some(addr) => Server {
                child,
                addr,
                log,
                _dir: dir,
            },
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "server not ready (line {line:?}); log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct BenchRun {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_bench(addr: SocketAddr, args: &[&str]) -> BenchRun {
    let mut child = Command::new(bench_bin())
        .arg("--addr")
        .arg(addr.to_string())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strata-bench");
    // Drain both pipes on threads so a chatty child never blocks.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = wait_bounded(&mut child, BENCH_TIMEOUT)
        .unwrap_or_else(|| panic!("strata-bench {args:?} ran over {BENCH_TIMEOUT:?}"));
    BenchRun {
        code: status.code().unwrap_or(-1),
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    }
}

fn check_report(run: &BenchRun, workload: &str, ops: &[&str]) -> serde_json::Value {
    assert_eq!(run.code, 0, "{workload}: stderr:\n{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("{workload}: bad json ({e}): {}", run.stdout));
    assert_eq!(report["workload"], workload);
    let total = report["ops"].as_u64().expect("ops");
    assert!(total > 0, "{workload}: no ops: {report}");
    assert_eq!(report["errors"], 0, "{workload}: {report}");
    assert_eq!(report["failed_connections"], 0, "{workload}: {report}");
    assert!(report["ops_per_s"].as_f64().expect("ops_per_s") > 0.0);
    let latency = |v: &serde_json::Value| {
        let l = &v["latency_us"];
        let p50 = l["p50"].as_u64().expect("p50");
        let p99 = l["p99"].as_u64().expect("p99");
        let max = l["max"].as_u64().expect("max");
        assert!(p50 <= p99 && p99 <= max, "{workload}: {l}");
        assert!(max > 0, "{workload}: {l}");
    };
    latency(&report);
    let by_op = report["by_op"].as_array().expect("by_op");
    let names: Vec<&str> = by_op.iter().filter_map(|o| o["op"].as_str()).collect();
    for op in ops {
        assert!(names.contains(op), "{workload}: no {op} in {names:?}");
    }
    let sum: u64 = by_op.iter().filter_map(|o| o["ops"].as_u64()).sum();
    assert_eq!(sum, total, "{workload}: per-op counts must add up");
    for o in by_op {
        latency(o);
    }
    report
}

#[test]
fn workloads_against_a_real_strata_server() {
    let server = Server::start();
    let common = [
        "--duration-s",
        "1",
        "--warmup-s",
        "0.2",
        "--connections",
        "4",
        "--keyspace",
        "2000",
        "--seed",
        "7",
        "--format",
        "json",
    ];
    let with = |extra: &[&str]| {
        let mut args: Vec<&str> = common.to_vec();
        args.extend_from_slice(extra);
        run_bench(server.addr, &args)
    };

    check_report(
        &with(&["--workload", "set", "--pipeline", "8"]),
        "set",
        &["set"],
    );

    let a = check_report(
        &with(&[
            "--workload",
            "ycsb-a",
            "--load",
            "--distribution",
            "zipfian",
        ]),
        "ycsb-a",
        &["read", "update"],
    );
    assert_eq!(a["load"]["keys"], 2000, "{a}");
    assert_eq!(a["load"]["errors"], 0, "{a}");

    let e = check_report(
        &with(&[
            "--workload",
            "ycsb-e",
            "--scan-length",
            "5",
            "--label",
            "e2e",
        ]),
        "ycsb-e",
        &["scan"],
    );
    assert_eq!(e["label"], "e2e");
    assert_eq!(e["scan_length"], 5);

    let log = std::fs::read_to_string(&server.log).unwrap_or_default();
    assert!(!log.contains("panicked"), "server log:\n{log}");
}

/// `--values random` must put different, incompressible bytes in every
/// key: read some back through a real client and compare.
#[test]
fn random_values_differ_per_key_and_do_not_compress() {
    let server = Server::start();
    let keyspace: u64 = 500;
    let report = check_report(
        &run_bench(
            server.addr,
            &[
                "--workload",
                "set",
                "--distribution",
                "sequential",
                "--values",
                "random",
                "--value-size",
                "1000",
                "--keyspace",
                &keyspace.to_string(),
                "--requests",
                &keyspace.to_string(),
                "--warmup-s",
                "0",
                "--connections",
                "1",
                // Fixed: each value is cut at a random offset of a 16 MiB
                // pool, and 500 random offsets repeat one another with a
                // chance of about 0.7% (birthday bound), which made this
                // test fail about once in 140 runs with a time seed. One
                // connection and a fixed seed make the run deterministic;
                // this seed's 500 offsets are all different.
                "--seed",
                "1",
                "--format",
                "json",
            ],
        ),
        "set",
        &["set"],
    );
    assert_eq!(report["values"], "random", "{report}");

    let mut client =
        strata_client::Client::connect(&server.addr.to_string(), 10_000).expect("connect");
    let mut seen = std::collections::HashSet::new();
    let mut all = Vec::new();
    for index in 0..keyspace {
        let key = format!("key:{index:012}");
        let value = client
            .get(&key)
            .expect("GET")
            .unwrap_or_else(|| panic!("{key} was not written"));
        assert_eq!(value.len(), 1000, "{key}");
        assert!(
            seen.insert(value.to_vec()),
            "{key} repeats an earlier value"
        );
        all.extend_from_slice(&value);
    }
    // What the engine's block compressor would make of them.
    let ratio = lz4_flex::compress(&all).len() as f64 / all.len() as f64;
    assert!(ratio > 0.98, "values compressed to {ratio}");
}

/// A one-connection fake server on loopback: `answer` is what it writes
/// back after each read (None: never answer).
fn fake_server(answer: Option<&'static [u8]>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake server");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        // Serve until the test process exits; one thread per connection.
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Some(reply) = answer
                        && stream.write_all(reply).is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn ycsb_e_without_range_exits_3() {
    let addr = fake_server(Some(
        b"-ERR unknown command 'RANGE', with args beginning with: \r\n",
    ));
    let run = run_bench(
        addr,
        &[
            "--workload",
            "ycsb-e",
            "--connections",
            "1",
            "--duration-s",
            "1",
        ],
    );
    assert_eq!(run.code, 3, "stderr:\n{}", run.stderr);
    assert!(run.stderr.contains("unsupported"), "{}", run.stderr);
}

#[test]
fn a_silent_server_times_out_and_exits_1() {
    let addr = fake_server(None);
    let run = run_bench(
        addr,
        &[
            "--connections",
            "2",
            "--duration-s",
            "1",
            "--warmup-s",
            "0",
            "--reply-timeout-s",
            "0.3",
            "--format",
            "json",
        ],
    );
    assert_eq!(run.code, 1, "stderr:\n{}", run.stderr);
    assert!(run.stderr.contains("no reply within"), "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("json report");
    assert_eq!(report["failed_connections"], 2);
    assert_eq!(report["errors"], 2);
}

/// `etcd` from `$ETCD_BIN` or the PATH (Debian: `apt-get install etcd-server`).
fn etcd_bin() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ETCD_BIN") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("etcd"))
            .find(|p| p.is_file())
    })
}

/// Two free loopback ports (free when chosen; etcd binds them right after).
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = |l: &TcpListener| l.local_addr().expect("addr").port();
    (port(&a), port(&b))
}

/// Whether etcd's `/health` says so (a bounded HTTP/1.0 GET).
fn etcd_healthy(addr: SocketAddr) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.take(64 * 1024).read_to_string(&mut answer);
    answer.contains("\"health\":\"true\"")
}

/// A single-node etcd in a temp dir; killed on drop.
struct Etcd {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Etcd {
    fn start(bin: &Path) -> Etcd {
        let dir = tempfile::tempdir().expect("temp dir");
        let (client, peer) = free_ports();
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).expect("log");
        let child = Command::new(bin)
            .args(["--name", "e2e", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("e2e={peer_url}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn etcd");
        let mut etcd = Etcd {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], client)),
            _dir: dir,
        };
        let deadline = std::time::Instant::now() + READY_TIMEOUT;
        while !etcd_healthy(etcd.addr) {
            let exited = matches!(etcd.child.try_wait(), Ok(Some(_)));
            if exited || std::time::Instant::now() > deadline {
                let log = std::fs::read_to_string(etcd._dir.path().join("etcd.log"));
                panic!("etcd not healthy: {}", log.unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        etcd
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn etcd_target_against_a_real_etcd() {
    let Some(bin) = etcd_bin() else {
        eprintln!("etcd not installed (apt-get install etcd-server): etcd target e2e test not run");
        return;
    };
    let etcd = Etcd::start(&bin);
    let common = [
        "--target",
        "etcd",
        "--duration-s",
        "1",
        "--warmup-s",
        "0.2",
        "--connections",
        "4",
        "--keyspace",
        "500",
        "--seed",
        "7",
        "--format",
        "json",
    ];
    let with = |extra: &[&str]| {
        let mut args: Vec<&str> = common.to_vec();
        args.extend_from_slice(extra);
        run_bench(etcd.addr, &args)
    };
    let set = check_report(&with(&["--workload", "set"]), "set", &["set"]);
    assert_eq!(set["protocol"], "etcd");
    assert_eq!(set["pipeline"], 1);
    let get = check_report(&with(&["--workload", "get", "--load"]), "get", &["get"]);
    assert_eq!(get["load"]["keys"], 500, "{get}");
    check_report(&with(&["--workload", "ycsb-f"]), "ycsb-f", &["read", "rmw"]);
    check_report(
        &with(&["--workload", "mset", "--batch", "5"]),
        "mset",
        &["mset"],
    );
    check_report(
        &with(&["--workload", "ycsb-e", "--scan-length", "5"]),
        "ycsb-e",
        &["scan", "insert"],
    );
    // No pipelining over HTTP/1.1: refused as a bad argument.
    let run = with(&["--pipeline", "4"]);
    assert_eq!(run.code, 2, "stderr:\n{}", run.stderr);
}

#[test]
fn etcd_target_against_a_non_etcd_http_server_fails_cleanly() {
    // Well-formed HTTP, but not etcd's JSON: the connection is dropped with
    // a clear message, the run exits 1, nothing panics.
    let addr = fake_server(Some(
        b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n<html></html>",
    ));
    let run = run_bench(
        addr,
        &[
            "--target",
            "etcd",
            "--connections",
            "2",
            "--duration-s",
            "1",
            "--warmup-s",
            "0",
            "--format",
            "json",
        ],
    );
    assert_eq!(run.code, 1, "stderr:\n{}", run.stderr);
    assert!(
        run.stderr.contains("malformed etcd response"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

/// `--workload commands` with `--requests` equal to the file's command count
/// and no warm-up sends every command exactly once, whatever the connection
/// count (the search benchmark loads its corpora this way): 300 INCRs of 3
/// counters through 4 pipelined connections leave each counter at 100.
/// Then `--values words` writes 20 to 200 plain words per value.
#[test]
fn commands_replay_each_command_once_and_word_values_are_words() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("commands.resp");
    let mut bytes = Vec::new();
    for i in 0..300 {
        let key = format!("counter:{}", i % 3);
        write!(bytes, "*2\r\n$4\r\nINCR\r\n${}\r\n{key}\r\n", key.len()).expect("encode");
    }
    std::fs::write(&file, &bytes).expect("write commands");
    let file = file.to_str().expect("utf-8 path");
    let report = check_report(
        &run_bench(
            server.addr,
            &[
                "--workload",
                "commands",
                "--commands-file",
                file,
                "--requests",
                "300",
                "--warmup-s",
                "0",
                "--connections",
                "4",
                "--pipeline",
                "16",
                "--format",
                "json",
            ],
        ),
        "commands",
        &["command"],
    );
    assert_eq!(report["ops"], 300, "{report}");
    let mut client =
        strata_client::Client::connect(&server.addr.to_string(), 10_000).expect("connect");
    for i in 0..3 {
        let value = client.get(format!("counter:{i}")).expect("GET");
        assert_eq!(value.as_deref(), Some(b"100".as_slice()), "counter:{i}");
    }

    let report = check_report(
        &run_bench(
            server.addr,
            &[
                "--workload",
                "set",
                "--values",
                "words",
                "--distribution",
                "sequential",
                "--keyspace",
                "50",
                "--requests",
                "50",
                "--warmup-s",
                "0",
                "--connections",
                "1",
                "--format",
                "json",
            ],
        ),
        "set",
        &["set"],
    );
    assert_eq!(report["values"], "words", "{report}");
    for index in 0..50 {
        let key = format!("key:{index:012}");
        let value = client.get(&key).expect("GET").expect("written");
        let words = value.split(|&b| b == b' ').count();
        assert!((20..=200).contains(&words), "{key}: {words} words");
        assert!(value.iter().all(|&b| b == b' ' || b.is_ascii_lowercase()));
    }

    // A file that is not RESP commands is refused before anything is sent.
    std::fs::write(file, b"INCR counter:0\r\n").expect("write");
    let run = run_bench(
        server.addr,
        &["--workload", "commands", "--commands-file", file],
    );
    assert_eq!(run.code, 2, "stderr: {}", run.stderr);
    assert!(run.stderr.contains("expected '*'"), "{}", run.stderr);
}
