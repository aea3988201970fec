//! A failing disk, as the server sees it: from a chosen moment, every
//! write or fsync of a file in the data directory fails with EIO or ENOSPC
//! (the `iofault` shim). The documented behaviour (docs/format.md, "A
//! failed write or fsync is final"; README, "Guarantees") is checked
//! through a real single-node server with `--fsync always`:
//!
//! * the fault bites (the shim logged injected failures);
//! * every write from then on is refused with an error, none acknowledged;
//! * reads keep being served, with every value acknowledged before;
//! * INFO says `strata_storage_status:failed`;
//! * after the fault is gone and the server restarts, every acknowledged
//!   write is there, and writes are accepted again.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use strata_chaos::cluster::connect;
use strata_chaos::iofault::{Fault, FaultErrno, FaultOps};
use strata_client::resp::Reply;
use strata_test_kit::binary::strata_bin;
use strata_test_kit::server::Server;

/// Keys written and acknowledged before the fault.
const KEYS_BEFORE: usize = 300;
/// Writes attempted while the fault is armed.
const WRITES_DURING: usize = 50;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

fn key(i: usize) -> String {
    format!("io:{i:05}")
}

fn value(i: usize) -> String {
    format!("value-{i:05}-{}", "y".repeat(48))
}

fn start(bin: &Path, dir: &Path, fault: &Fault, shim: &Path) -> Server {
    Server::start(
        bin,
        &fault.data_dir,
        &dir.join("server.log"),
        &["--fsync", "always"],
        &fault.env(shim),
    )
    .unwrap_or_else(|e| panic!("{e:#}"))
}

fn set(addr: SocketAddr, i: usize) -> Reply {
    let mut client = connect(addr, CLIENT_TIMEOUT).expect("connect");
    client
        .call(&["SET".to_string(), key(i), value(i)])
        .expect("SET answered")
}

/// Every key in `range` holds its value.
fn assert_present(addr: SocketAddr, range: std::ops::Range<usize>, when: &str) {
    let mut client = connect(addr, CLIENT_TIMEOUT).expect("connect");
    let mut args = vec!["MGET".to_string()];
    args.extend(range.clone().map(key));
    let Reply::Array(values) = client.call(&args).expect("MGET") else {
        panic!("{when}: MGET is not an array");
    };
    for (i, v) in range.zip(values) {
        assert_eq!(
            v,
            Reply::Bulk(value(i).into_bytes().into()),
            "{when}: key {}",
            key(i)
        );
    }
}

fn info_field(addr: SocketAddr, field: &str) -> Option<String> {
    let mut client = connect(addr, CLIENT_TIMEOUT).expect("connect");
    let Ok(Reply::Bulk(text)) = client.call(&["INFO", "persistence"]) else {
        return None;
    };
    String::from_utf8_lossy(&text)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_string))
}

fn fails_like_a_bad_disk(ops: FaultOps, errno: FaultErrno) {
    let bin = strata_bin();
    let tmp = tempfile::Builder::new()
        .prefix("strata-iofault-")
        .tempdir()
        .expect("temp dir");
    let dir = tmp.path().canonicalize().expect("canonicalize");
    let shim = Fault::build_shim(&dir.join("shim")).expect("build the fault shim (cc?)");
    let fault = Fault {
        data_dir: dir.join("data"),
        trigger: dir.join("armed"),
        log: dir.join("faults.log"),
        ops,
        errno,
    };
    let mut server = start(&bin, &dir, &fault, &shim);
    for i in 0..KEYS_BEFORE {
        assert_eq!(set(server.addr, i), Reply::ok(), "before the fault");
    }
    fault.arm().expect("arm");
    let mut acknowledged = Vec::new();
    for i in KEYS_BEFORE..KEYS_BEFORE + WRITES_DURING {
        match set(server.addr, i) {
            Reply::Error(e) => assert!(e.starts_with("ERR"), "{e}"),
            Reply::Status(s) if s == "OK" => acknowledged.push(i),
            other => panic!("SET during the fault: {other:?}"),
        }
    }
    let injected = fault.injected();
    assert!(!injected.is_empty(), "the fault never bit ({ops:?})");
    assert!(
        acknowledged.is_empty(),
        "{ops:?}/{errno:?}: writes acknowledged while every {ops:?} failed: {acknowledged:?}\n{injected:?}"
    );
    // Reads go on, from what was acknowledged.
    assert_present(server.addr, 0..KEYS_BEFORE, "during the fault");
    assert_eq!(
        info_field(server.addr, "strata_storage_status").as_deref(),
        Some("failed"),
        "{}",
        server.log()
    );
    fault.disarm().expect("disarm");
    // Still refused without the fault: a failed fsync is final until a
    // restart (the page cache may have dropped what it could not write).
    assert!(
        matches!(set(server.addr, 0), Reply::Error(_)),
        "a write accepted after a failed {ops:?} without a restart"
    );
    server.kill9();
    drop(server);
    let server = start(&bin, &dir, &fault, &shim);
    assert_present(server.addr, 0..KEYS_BEFORE, "after the restart");
    assert_eq!(
        set(server.addr, KEYS_BEFORE),
        Reply::ok(),
        "after the restart"
    );
    println!(
        "{ops:?}/{errno:?}: {} failures injected; {WRITES_DURING} writes refused, \
         {KEYS_BEFORE} acknowledged keys recovered",
        injected.len()
    );
}

#[test]
fn failing_fsync_with_eio_refuses_writes_and_keeps_every_acknowledged_one() {
    fails_like_a_bad_disk(FaultOps::Sync, FaultErrno::Eio);
}

#[test]
fn failing_writes_with_enospc_refuse_writes_and_keep_every_acknowledged_one() {
    fails_like_a_bad_disk(FaultOps::Write, FaultErrno::Enospc);
}
