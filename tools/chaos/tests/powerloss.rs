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

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use strata_chaos::cluster::connect;
use strata_chaos::powerloss::{self, LossReport, SyncLog};
use strata_client::resp::Reply;
use strata_test_kit::binary::strata_bin;
use strata_test_kit::server::Server;

const KEYS: usize = 2000;
const BATCH: usize = 100;

/// One `strata server` under the sync shim.
fn start(bin: &Path, dir: &Path, shim: &Path, fsync: &str) -> Server {
    let env = [
        ("LD_PRELOAD", shim.into()),
        (
            powerloss::SYNC_LOG_ENV,
            dir.join(powerloss::SYNC_LOG_FILE).into(),
        ),
    ];
    Server::start(
        bin,
        &dir.join("data"),
        &dir.join("server.log"),
        &["--fsync", fsync],
        &env,
    )
    .unwrap_or_else(|e| panic!("{e:#}"))
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
    server.kill9();
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
