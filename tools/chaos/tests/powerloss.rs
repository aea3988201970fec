//! The `powerloss` fault bites, and only where it should: one single-node
//! `strata server` (no cluster) under the sync shim, 2000 acknowledged
//! SETs, then a power loss (kill -9 + every file rewound to what was
//! fsynced) and a restart.
//!
//! * `--fsync never`: the journal is fsynced only when fjall creates it
//!   (nothing written yet, so the shim records a horizon of 0). The
//!   rewind must cut bytes, and keys must be gone. Deterministic: fjall
//!   fsyncs its journal only on persist calls (none with `never`), on
//!   rotation and on memtable flushes, and 2000 small writes (~0.2 MB) are
//!   far below the journal and memtable sizes.
//! * `--fsync always` (the default): every acknowledged key survives.
//!
//! The `strata` binary: `$STRATA_BIN`, else `strata` in this test's target
//! directory, else it is built with `cargo build -p strata --bin strata`
//! (bounded: 600 s; build it first if that is too slow).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use strata_chaos::cluster::{connect, parse_ready_line};
use strata_chaos::powerloss::{self, LossReport, SyncLog};
use strata_client::resp::Reply;
use strata_test_kit::binary::strata_bin;

const KEYS: usize = 2000;
const BATCH: usize = 100;

/// One `strata server` under the shim.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(bin: &Path, dir: &Path, shim: &Path, fsync: &str) -> Server {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .expect("open server.log");
    let mut cmd = Command::new(bin);
    cmd.arg("server")
        .args([
            "--listen",
            "127.0.0.1:0",
            "--text-listen",
            "off",
            "--fsync",
            fsync,
        ])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("RUST_LOG", "info")
        .env("LD_PRELOAD", shim)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("STRATA_") {
            cmd.env_remove(name);
        }
    }
    // Set after the removal above (the last setting of a name wins).
    cmd.env(powerloss::SYNC_LOG_ENV, dir.join(powerloss::SYNC_LOG_FILE));
    let mut child = cmd.spawn().expect("spawn strata server");
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        let mut sink = Vec::new();
        while reader
            .read_until(b'\n', &mut sink)
            .map(|n| n > 0)
            .unwrap_or(false)
        {
            sink.clear();
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
    let Some(ready) = parse_ready_line(&line) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "no ready line ({line:?}); server.log:\n{}",
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
    };
    Server {
        child,
        addr: ready.resp,
    }
}

fn key(i: usize) -> String {
    format!("pl:{i:05}")
}

fn value(i: usize) -> String {
    format!("value-{i:05}-{}", "x".repeat(64))
}

/// SETs every key, pipelined; each must be acknowledged with OK.
fn write_all(addr: SocketAddr) {
    let mut client = connect(addr, Duration::from_secs(30)).expect("connect");
    for start in (0..KEYS).step_by(BATCH) {
        let requests: Vec<Vec<String>> = (start..(start + BATCH).min(KEYS))
            .map(|i| vec!["SET".to_string(), key(i), value(i)])
            .collect();
        let replies = client.pipeline(&requests).expect("pipelined SETs");
        for (r, reply) in requests.iter().zip(replies) {
            assert!(
                matches!(&reply, Reply::Status(s) if s == "OK"),
                "SET {} not acknowledged: {reply:?}",
                r[1]
            );
        }
    }
}

/// How many of the keys hold their value (a wrong value fails).
fn count_present(addr: SocketAddr) -> usize {
    let mut client = connect(addr, Duration::from_secs(30)).expect("connect");
    let mut present = 0;
    for start in (0..KEYS).step_by(BATCH) {
        let end = (start + BATCH).min(KEYS);
        let mut args = vec!["MGET".to_string()];
        args.extend((start..end).map(key));
        let Reply::Array(values) = client.call(&args).expect("MGET") else {
            panic!("MGET: not an array");
        };
        for (i, v) in (start..end).zip(values) {
            match v {
                Reply::Bulk(b) => {
                    assert_eq!(
                        &b[..],
                        value(i).as_bytes(),
                        "key {} has a wrong value",
                        key(i)
                    );
                    present += 1;
                }
                Reply::Null => {}
                other => panic!("MGET value {other:?}"),
            }
        }
    }
    present
}

/// Writes, power-fails and restarts one server; returns the rewind, the
/// sync log as it was at the crash, and the keys present afterwards.
fn cycle(fsync: &str) -> (LossReport, SyncLog, usize) {
    let bin = strata_bin();
    let tmp = tempfile::Builder::new()
        .prefix("strata-powerloss-")
        .tempdir()
        .expect("temp dir");
    let dir = tmp.path().canonicalize().expect("canonicalize");
    let shim = powerloss::build_shim(&dir.join("shim")).expect("build the sync shim (cc?)");
    let started = Instant::now();
    let mut server = start(&bin, &dir, &shim, fsync);
    write_all(server.addr);
    assert_eq!(count_present(server.addr), KEYS, "before the crash");
    // The power loss.
    let _ = server.child.kill();
    let _ = server.child.wait();
    let log = SyncLog::read(&dir.join(powerloss::SYNC_LOG_FILE)).expect("read the sync log");
    assert!(log.lines > 0, "the shim recorded nothing: is it loaded?");
    let lost = powerloss::lose_unsynced(&dir.join("data"), &log).expect("rewind");
    drop(server);
    let server = start(&bin, &dir, &shim, fsync);
    let present = count_present(server.addr);
    println!(
        "--fsync {fsync}: {} sync records; power loss: {lost}; {present} of {KEYS} keys after \
         the restart ({:.1} s)",
        log.lines,
        started.elapsed().as_secs_f64()
    );
    (lost, log, present)
}

/// The journal files' last records (path, size, horizon).
fn journal_records(log: &SyncLog) -> Vec<(String, u64, u64)> {
    let mut out: Vec<_> = log
        .files
        .iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "jnl"))
        .map(|(p, r)| (p.display().to_string(), r.size, r.horizon))
        .collect();
    out.sort();
    out
}

#[test]
fn fsync_never_loses_acknowledged_writes_on_power_loss() {
    let (lost, log, present) = cycle("never");
    let journals = journal_records(&log);
    // The journal was synced when it was created (preallocated, empty),
    // never after: horizon 0.
    assert!(
        journals.iter().any(|(_, _, horizon)| *horizon == 0),
        "expected a journal synced only at creation: {journals:?}"
    );
    assert!(
        lost.zeroed_bytes + lost.truncated_bytes > 0,
        "the rewind cut nothing: {lost}"
    );
    assert!(
        present < KEYS,
        "--fsync never + power loss kept all {KEYS} keys ({lost})"
    );
}

#[test]
fn fsync_always_keeps_every_acknowledged_write() {
    let (lost, log, present) = cycle("always");
    let journals = journal_records(&log);
    assert!(
        journals.iter().any(|(_, _, horizon)| *horizon > 0),
        "expected journal syncs after writes: {journals:?}"
    );
    assert_eq!(present, KEYS, "acknowledged writes lost ({lost})");
}
