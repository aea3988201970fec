//! Corruption is never silent: flipped bytes in the journal and in table
//! files, through the real server process.
//!
//! Each trial writes acknowledged data (`--fsync always`), stops the server
//! (kill -9 for the journal, graceful for tables so they exist), flips one
//! byte (seeded), and starts the server again. Outcomes:
//!
//! * refused: the server exits before it is ready, naming the file and the
//!   byte offset, and leaves the file untouched; `strata check` reports it
//!   (exit 1); `strata repair` then copies it aside and cuts it, and the
//!   server starts with no wrong value;
//! * intact: it starts and every acknowledged write reads back;
//! * silent: it starts and an acknowledged write is missing or wrong. Must
//!   never happen.
//!
//! Table flips: the server may start (the damage is only seen when a read
//! touches the block); then every read returns the right value or an error
//! reply, never a wrong or missing value, and INFO reports the corruption.
//!
//! Env: STRATA_CORRUPTION_TRIALS (journal trials per kind, default 4),
//! STRATA_CORRUPTION_SEED.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{READY_TIMEOUT, TestServer, env_u64, strata_bin};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DEFAULT_SEED: u64 = 0xC0_2202_7001;
const DEFAULT_TRIALS: u64 = 4;
/// The journal's end-of-batch trailer (tag 3, checksum, then these bytes).
const BATCH_END_MAGIC: &[u8] = b"FJL\x03";
/// A `strata server` that may refuse to start.
struct Proc {
    child: Child,
    resp_addr: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a start attempt ended.
enum Start {
    Ready(Proc),
    /// Exited before it was ready: exit code and its log.
    Refused(Option<i32>, String),
}

fn try_start(data_dir: &Path, args: &[&str]) -> Start {
    let log_path = data_dir.with_extension("log");
    let _ = std::fs::remove_file(&log_path);
    let log = std::fs::File::create(&log_path).expect("create log");
    let mut child = Command::new(strata_bin())
        .args(["server", "--listen", "127.0.0.1:0", "--text-listen", "off"])
        .args(["--http-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("STRATA_ADDR")
        // The server's default log filter: the tests check what it shows.
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn strata server");
    let line = common::first_stdout_line(&mut child, READY_TIMEOUT).unwrap_or_default();
    match common::parse_ready_line(&line) {
        Some((resp_addr, _)) => Start::Ready(Proc { child, resp_addr }),
        None => {
            // No ready line: it exited (or hung, which fails the test).
            let deadline = Instant::now() + Duration::from_secs(10);
            let status = loop {
                if let Some(s) = child.try_wait().expect("try_wait") {
                    break s;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("server neither ready nor exited: {}", read(&log_path));
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            Start::Refused(status.code(), read(&log_path))
        }
    }
}

/// The server of a start that must succeed.
fn ready(start: Start, what: &str) -> Proc {
    match start {
        Start::Ready(server) => server,
        Start::Refused(code, log) => panic!("{what} did not start (exit {code:?}):\n{log}"),
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn connect(addr: SocketAddr) -> redis::Connection {
    let client = redis::Client::open(format!("redis://{addr}/")).expect("client");
    let conn = client
        .get_connection_with_timeout(Duration::from_secs(10))
        .expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn
}

/// Runs `strata <args>` with a bounded wait: (exit code, stdout + stderr).
fn run_strata(args: &[&str]) -> (i32, String) {
    let (code, stdout, stderr) = common::run_strata(args);
    (code, format!("{stdout}{stderr}"))
}

fn check(dir: &Path) -> (i32, String) {
    run_strata(&["check", "--data-dir", dir.to_str().expect("utf-8 path")])
}

fn repair(dir: &Path) -> (i32, String) {
    run_strata(&["repair", "--data-dir", dir.to_str().expect("utf-8 path")])
}

/// Writes `n` keys in pipelines of 1 to 8 (so journal batches hold one or
/// several items); returns what was acknowledged.
fn write_acked(
    addr: SocketAddr,
    rng: &mut StdRng,
    n: usize,
    value_bytes: usize,
) -> BTreeMap<String, Vec<u8>> {
    let mut conn = connect(addr);
    let mut acked = BTreeMap::new();
    let mut i = 0;
    while i < n {
        let len = rng.random_range(1..=8).min(n - i);
        let mut pipe = redis::pipe();
        let mut sent = Vec::new();
        for _ in 0..len {
            let key = format!("key:{i:06}");
            let value: Vec<u8> = (0..value_bytes)
                .map(|_| rng.random_range(b'a'..=b'z'))
                .collect();
            pipe.cmd("SET").arg(&key).arg(&value);
            sent.push((key, value));
            i += 1;
        }
        let replies: Vec<redis::Value> = pipe.query(&mut conn).expect("pipelined SET");
        for ((key, value), reply) in sent.into_iter().zip(replies) {
            assert!(matches!(reply, redis::Value::Okay), "SET {key}: {reply:?}");
            acked.insert(key, value);
        }
    }
    acked
}

/// What the reads of the acknowledged keys returned.
#[derive(Default, Debug)]
struct Reads {
    right: usize,
    /// Error replies (refused reads of damaged data).
    errors: usize,
    /// Acknowledged keys that read as missing.
    missing: Vec<String>,
    /// Keys that read back another value: never allowed.
    wrong: Vec<String>,
}

fn read_all(addr: SocketAddr, acked: &BTreeMap<String, Vec<u8>>) -> Reads {
    let mut conn = connect(addr);
    let mut reads = Reads::default();
    for (key, value) in acked {
        match redis::cmd("GET")
            .arg(key)
            .query::<Option<Vec<u8>>>(&mut conn)
        {
            Ok(Some(v)) if v == *value => reads.right += 1,
            Ok(Some(_)) => reads.wrong.push(key.clone()),
            Ok(None) => reads.missing.push(key.clone()),
            Err(e) if e.kind() == redis::ErrorKind::Io => panic!("GET {key}: {e}"),
            Err(_) => reads.errors += 1,
        }
    }
    reads
}

fn info(addr: SocketAddr) -> String {
    let mut conn = connect(addr);
    redis::cmd("INFO")
        .arg("persistence")
        .query(&mut conn)
        .expect("INFO")
}

fn journals(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .expect("read data dir")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id = name.strip_suffix(".jnl")?.parse().ok()?;
            Some((id, e.path()))
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, p)| p).collect()
}

/// Offsets just past each batch end trailer in `bytes`.
fn batch_ends(bytes: &[u8]) -> Vec<usize> {
    bytes
        .windows(BATCH_END_MAGIC.len())
        .enumerate()
        .filter(|(_, w)| *w == BATCH_END_MAGIC)
        .map(|(i, _)| i + BATCH_END_MAGIC.len())
        .collect()
}

fn flip(path: &Path, offset: usize, rng: &mut StdRng) -> Vec<u8> {
    let mut bytes = std::fs::read(path).expect("read file");
    bytes[offset] ^= rng.random_range(1..=255u8);
    std::fs::write(path, &bytes).expect("write file");
    bytes
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// The server refused to start.
    Refused,
    /// It started; the reads that touched the damage got error replies,
    /// and INFO said so.
    Detected,
    Intact,
    Silent,
}

#[derive(Clone, Copy, Debug)]
enum JournalFault {
    /// A byte in the middle of the written journal.
    Middle,
    /// A byte of the last (acknowledged) batch.
    LastBatch,
    /// An incomplete batch appended after the last one: a torn tail, which
    /// must be dropped with everything acknowledged intact.
    TornTail,
}

/// Damages the journal as `fault` says; returns its new content.
fn apply_fault(fault: JournalFault, journal: &Path, dir: &Path, rng: &mut StdRng) -> Vec<u8> {
    let bytes = std::fs::read(journal).expect("read journal");
    let ends = batch_ends(&bytes);
    let data_end = *ends.last().expect("batches written");
    match fault {
        JournalFault::Middle => {
            let at = rng.random_range(data_end / 4..data_end * 3 / 4);
            flip(journal, at, rng)
        }
        JournalFault::LastBatch => {
            let start = ends.get(ends.len().wrapping_sub(2)).copied().unwrap_or(0);
            let at = rng.random_range(start..data_end);
            flip(journal, at, rng)
        }
        JournalFault::TornTail => {
            // A prefix (not all) of the first batch, written again after
            // the last one: what a crash in the middle of a write leaves.
            let first = ends[0];
            let cut = rng.random_range(1..first);
            let mut torn = bytes.clone();
            torn[data_end..data_end + cut].copy_from_slice(&bytes[..cut]);
            std::fs::write(journal, &torn).expect("write journal");
            let (code, out) = check(dir);
            assert_eq!(code, 0, "a torn tail is not damage: {out}");
            assert!(out.contains("incomplete last batch"), "{out}");
            torn
        }
    }
}

/// One journal trial; returns its outcome after checking everything the
/// outcome promises.
fn journal_trial(seed: u64, fault: JournalFault) -> Outcome {
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("data");
    let args = ["--fsync", "always"];
    let server = ready(try_start(&dir, &args), "a fresh server");
    let acked = write_acked(server.resp_addr, &mut rng, 400, 24);
    drop(server); // kill -9
    let journal = journals(&dir).pop().expect("a journal");
    let flipped = apply_fault(fault, &journal, &dir, &mut rng);
    match try_start(&dir, &args) {
        Start::Ready(server) => {
            let reads = read_all(server.resp_addr, &acked);
            assert!(
                reads.wrong.is_empty(),
                "{fault:?} seed {seed:#x}: wrong values {:?}",
                reads.wrong
            );
            if reads.right == acked.len() {
                Outcome::Intact
            } else {
                eprintln!("{fault:?} seed {seed:#x}: SILENT {reads:?}");
                Outcome::Silent
            }
        }
        Start::Refused(code, log) => {
            assert_ne!(code, Some(0), "{log}");
            let name = journal.display().to_string();
            assert!(log.contains(&name), "the refusal names the file: {log}");
            assert!(
                log.contains("byte offset"),
                "the refusal names the offset: {log}"
            );
            assert!(
                log.contains("strata repair --data-dir"),
                "and the way out: {log}"
            );
            assert!(
                std::fs::read(&journal).expect("read journal") == flipped,
                "the damaged journal was changed"
            );
            repair_and_restart(&dir, &args, &journal, &flipped, &acked);
            Outcome::Refused
        }
    }
}

/// After a refused start: `strata check` reports the journal, `strata
/// repair` copies it aside and cuts it, and the server starts with no
/// wrong value.
fn repair_and_restart(
    dir: &Path,
    args: &[&str],
    journal: &Path,
    flipped: &[u8],
    acked: &BTreeMap<String, Vec<u8>>,
) {
    let name = journal.display().to_string();
    let (code, out) = check(dir);
    assert_eq!(code, 1, "check finds the damage: {out}");
    assert!(out.contains("DAMAGED") && out.contains(&name), "{out}");
    let (code, out) = repair(dir);
    assert_eq!(code, 0, "repair: {out}");
    let quarantine: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("quarantine-"))
        })
        .collect();
    assert_eq!(quarantine.len(), 1, "{out}");
    let copy = quarantine[0].join(journal.file_name().expect("file name"));
    assert!(
        std::fs::read(&copy).expect("read copy") == flipped,
        "the copy is the original"
    );
    let (code, out) = check(dir);
    assert_eq!(code, 0, "clean after repair: {out}");
    let server = ready(try_start(dir, args), "the server after repair");
    let reads = read_all(server.resp_addr, acked);
    assert!(
        reads.wrong.is_empty(),
        "wrong values after repair: {:?}",
        reads.wrong
    );
    assert_eq!(reads.errors, 0, "{reads:?}");
}

fn journal_trials(fault: JournalFault, salt: u64) {
    let trials = env_u64("STRATA_CORRUPTION_TRIALS").unwrap_or(DEFAULT_TRIALS);
    let seed = env_u64("STRATA_CORRUPTION_SEED").unwrap_or(DEFAULT_SEED);
    let mut counts = BTreeMap::new();
    for t in 0..trials {
        let outcome = journal_trial(seed ^ salt ^ t.wrapping_mul(0x9E37_79B9_7F4A_7C15), fault);
        *counts.entry(format!("{outcome:?}")).or_insert(0u64) += 1;
    }
    eprintln!("journal {fault:?}: {trials} trials: {counts:?}");
    assert!(
        !counts.contains_key("Silent"),
        "silent outcomes: {counts:?}"
    );
    if let JournalFault::TornTail = fault {
        assert_eq!(
            counts.get("Intact"),
            Some(&trials),
            "a torn tail starts intact: {counts:?}"
        );
    }
}

#[test]
fn journal_flip_in_the_middle_is_never_silent() {
    journal_trials(JournalFault::Middle, 0x11);
}

#[test]
fn journal_flip_in_the_last_batch_is_never_silent() {
    journal_trials(JournalFault::LastBatch, 0x22);
}

#[test]
fn journal_torn_tail_starts_with_everything_acknowledged() {
    journal_trials(JournalFault::TornTail, 0x33);
}

/// The largest table file under `dir`, and its sections by name.
fn largest_table(dir: &Path) -> PathBuf {
    let mut best: Option<(u64, PathBuf)> = None;
    for ks in std::fs::read_dir(dir.join("keyspaces")).expect("keyspaces") {
        let tables = ks.expect("entry").path().join("tables");
        let Ok(entries) = std::fs::read_dir(&tables) else {
            continue;
        };
        for e in entries {
            let e = e.expect("entry");
            let size = e.metadata().expect("metadata").len();
            if best.as_ref().is_none_or(|(s, _)| size > *s) {
                best = Some((size, e.path()));
            }
        }
    }
    best.expect("a table file").1
}

/// (offset, length) of a named section of a table file.
fn section(path: &Path, names: &[&[u8]]) -> (u64, u64) {
    let archive = sfa::Reader::new(path).expect("table archive");
    for name in names {
        if let Some(s) = archive.toc().section(name) {
            return (s.pos(), s.len());
        }
    }
    panic!("no section {names:?} in {}", path.display());
}

/// Loads `keys` keys of 1 KiB into a server with 1 MiB memtables, so that
/// most of them are in table files, and stops it gracefully.
fn table_setup(rng: &mut StdRng, dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let args = ["--fsync", "never", "--memtable-size-bytes", "1048576"];
    let mut server = ready(try_start(dir, &args), "a fresh server");
    let acked = write_acked(server.resp_addr, rng, 4000, 1024);
    // SAFETY: plain kill(2) on a pid we own.
    unsafe {
        libc::kill(server.child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + common::SHUTDOWN_TIMEOUT;
    while server.child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "no graceful stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    acked
}

fn table_trial(seed: u64, names: &[&[u8]]) -> Outcome {
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("data");
    let acked = table_setup(&mut rng, &dir);
    assert_eq!(check(&dir).0, 0, "clean before the flip");
    let table = largest_table(&dir);
    let (pos, len) = section(&table, names);
    let at = pos + rng.random_range(0..len);
    flip(&table, at as usize, &mut rng);
    let (code, out) = check(&dir);
    assert_eq!(code, 1, "check finds the damaged table: {out}");
    assert!(
        out.contains(&table.display().to_string()),
        "check names the table: {out}"
    );
    match try_start(&dir, &["--fsync", "never"]) {
        Start::Refused(code, log) => {
            assert_ne!(code, Some(0), "{log}");
            assert!(
                log.contains("strata check"),
                "the refusal points to the check: {log}"
            );
            Outcome::Refused
        }
        Start::Ready(server) => {
            let reads = read_all(server.resp_addr, &acked);
            assert!(reads.wrong.is_empty(), "wrong values: {:?}", reads.wrong);
            assert!(
                reads.missing.is_empty(),
                "missing instead of an error: {:?}",
                reads.missing
            );
            if reads.errors == 0 {
                return Outcome::Intact;
            }
            let info = info(server.resp_addr);
            assert!(info.contains("strata_storage_status:corrupt"), "{info}");
            assert!(
                !info.contains("strata_storage_corruption_errors:0\r"),
                "{info}"
            );
            drop(server);
            let log = read(&dir.with_extension("log"));
            let logged = log.matches("storage corruption").count();
            let errors_logged = log.matches(" ERROR ").count();
            assert!(
                (1..=3).contains(&logged) && errors_logged <= 3,
                "{} refused reads, {logged} corruption reports, {errors_logged} ERROR lines \
                 (rate-limited):\n{log}",
                reads.errors
            );
            eprintln!(
                "table trial: {} reads refused, {} right, {logged} ERROR lines",
                reads.errors, reads.right
            );
            Outcome::Detected
        }
    }
}

fn table_trials(names: &[&[u8]], salt: u64) {
    // Each table trial loads 4 MiB; half as many as the journal trials.
    let trials = env_u64("STRATA_CORRUPTION_TRIALS")
        .unwrap_or(DEFAULT_TRIALS)
        .div_ceil(2);
    let seed = env_u64("STRATA_CORRUPTION_SEED").unwrap_or(DEFAULT_SEED);
    let mut counts = BTreeMap::new();
    for t in 0..trials {
        let outcome = table_trial(seed ^ salt ^ t.wrapping_mul(0x9E37_79B9_7F4A_7C15), names);
        *counts.entry(format!("{outcome:?}")).or_insert(0u64) += 1;
    }
    eprintln!(
        "table section {:?}: {trials} trials: {counts:?}",
        String::from_utf8_lossy(names[0])
    );
    // `table_trial` has already failed on a wrong or missing value.
    assert!(!counts.contains_key("Silent"), "{counts:?}");
}

#[test]
fn table_flip_in_a_data_block_is_never_served() {
    table_trials(&[b"data"], 0x44);
}

#[test]
fn table_flip_in_an_index_block_is_never_served() {
    table_trials(&[b"index", b"tli"], 0x55);
}

#[test]
fn check_refuses_a_directory_in_use_and_passes_a_clean_one() {
    let mut server = TestServer::start_with(&["--fsync", "always"]);
    let mut conn = server.redis();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut conn)
        .expect("SET");
    let (code, out) = check(&server.data_dir);
    assert_eq!(code, 2, "in use: {out}");
    assert!(out.contains("in use"), "{out}");
    let (code, out) = repair(&server.data_dir);
    assert_eq!(code, 2, "in use: {out}");
    server.stop_graceful();
    let (code, out) = check(&server.data_dir);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok: no damage found"), "{out}");
    let (code, out) = repair(&server.data_dir);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("nothing to repair"), "{out}");
    let info_after = {
        server.relaunch();
        let mut conn = server.redis();
        let v: String = redis::cmd("GET").arg("k").query(&mut conn).expect("GET");
        assert_eq!(v, "v");
        redis::cmd("INFO")
            .arg("persistence")
            .query::<String>(&mut conn)
            .expect("INFO")
    };
    assert!(
        info_after.contains("strata_storage_status:ok"),
        "{info_after}"
    );
    assert!(
        info_after.contains("strata_storage_corruption_errors:0"),
        "{info_after}"
    );
}

/// A cluster node whose journal is damaged refuses to start; the README's
/// rebuild (remove it, move its data directory aside, join it again)
/// brings it back with every acknowledged write, from its peers.
#[test]
fn damaged_cluster_node_is_rebuilt_from_its_peers() {
    use common::cluster::{
        CATCH_UP_TIMEOUT, JoinAs, LEADER_TIMEOUT, Reply, call_retry, cluster_nodes, config, others,
        set, start, wait_for, wait_local_data,
    };
    let (mut cluster, leader) = start(config(3));
    // A value pattern that is easy to find in the journal: a flip inside
    // it fails its batch's checksum.
    let pattern = "corruption-probe-value-".repeat(4);
    let data: Vec<(String, String)> = (0..200)
        .map(|i| (format!("rebuild:{i:04}"), format!("{pattern}{i}")))
        .collect();
    for (k, v) in &data {
        set(cluster.node(leader), k, v);
    }
    let victim = others(&cluster, leader)[0];
    wait_local_data(cluster.node(victim), &data, CATCH_UP_TIMEOUT);
    cluster.node_mut(victim).kill9();

    let dir = cluster.node(victim).data_dir.clone();
    let journal = journals(&dir).pop().expect("a journal");
    let bytes = std::fs::read(&journal).expect("read journal");
    let hits: Vec<usize> = bytes
        .windows(pattern.len())
        .enumerate()
        .filter(|(_, w)| *w == pattern.as_bytes())
        .map(|(i, _)| i)
        .collect();
    assert!(!hits.is_empty(), "the values are in the journal");
    let mut rng = StdRng::seed_from_u64(DEFAULT_SEED);
    flip(&journal, hits[hits.len() / 2] + 3, &mut rng);
    assert!(
        cluster.node_mut(victim).start().is_err(),
        "a node with a damaged journal must not start"
    );
    let log = cluster.node(victim).log();
    assert!(log.contains("byte offset"), "{log}");
    let (code, out) = repair(&dir);
    assert_eq!(code, 2, "repair refuses a cluster node's directory: {out}");
    assert!(out.contains("rebuild it from its peers"), "{out}");

    // The rebuild, as in README (Troubleshooting).
    let reply = call_retry(
        cluster.node(leader).resp_addr,
        &["CLUSTER", "REMOVENODE", &victim.to_string()],
        LEADER_TIMEOUT,
    );
    assert_eq!(reply, Reply::ok());
    wait_for("the member list without the node", LEADER_TIMEOUT, || {
        let nodes = cluster_nodes(cluster.node(leader));
        (!nodes.iter().any(|n| n.0 == victim)).then_some(())
    });
    cluster.forget(victim);
    std::fs::rename(&dir, dir.with_extension("damaged")).expect("move the data dir aside");
    let node = cluster.join_node(victim, leader, JoinAs::Voter, &[]);
    assert!(node.is_ok(), "the rebuilt node starts: {:?}", node.err());
    wait_local_data(cluster.node(victim), &data, CATCH_UP_TIMEOUT);
    wait_for(
        "the rebuilt node is a voter again",
        CATCH_UP_TIMEOUT,
        || {
            let nodes = cluster_nodes(cluster.node(leader));
            nodes
                .iter()
                .any(|n| n.0 == victim && n.3 == "voter")
                .then_some(())
        },
    );
    set(cluster.node(victim), "after-rebuild", "ok");
}

/// A damaged version file (a tree's list of tables and their checksums) is
/// reported by `strata check`, which then cannot trust that tree's list.
#[test]
fn check_reports_a_damaged_version_file() {
    let mut rng = StdRng::seed_from_u64(DEFAULT_SEED ^ 0x66);
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("data");
    table_setup(&mut rng, &dir);
    let table = largest_table(&dir);
    let tree = table.parent().and_then(Path::parent).expect("tree dir");
    let current = std::fs::read(tree.join("current")).expect("current");
    let id = u64::from_le_bytes(current[..8].try_into().expect("8 bytes"));
    let version = tree.join(format!("v{id}"));
    let len = std::fs::metadata(&version).expect("version").len() as usize;
    flip(&version, rng.random_range(0..len), &mut rng);
    let (code, out) = check(&dir);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&version.display().to_string()) && out.contains("version file"),
        "{out}"
    );
}
