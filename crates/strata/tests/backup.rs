//! Backup and restore through real server processes and the real CLI
//! (`strata backup save|status|restore`, README "Backup and restore"):
//! a save under concurrent writers restored and compared with what the
//! writers were acknowledged; TTLs kept; a 3-node cluster seeded from a
//! backup, read on every node; damaged and cut files refused without
//! leaving anything; the server's limits (backups at once, resends, the
//! idle timeout); and a save whose client memory stays far below the
//! store's size.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::cluster::{self as cl, Client, JoinAs, Reply};
use common::{TestServer, run_cli, run_strata};

fn client(addr: SocketAddr) -> Client {
    Client::connect(&addr.to_string(), 30_000).expect("connect")
}

fn call<A: AsRef<[u8]>>(c: &mut Client, args: &[A]) -> Reply {
    c.call(args).expect("call")
}

fn int(reply: &Reply) -> i64 {
    match reply {
        Reply::Integer(n) => *n,
        other => panic!("not an integer: {other:?}"),
    }
}

fn text(reply: &Reply) -> Option<String> {
    match reply {
        Reply::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Reply::Null => None,
        other => panic!("not a bulk string: {other:?}"),
    }
}

/// `strata --addr ADDR backup save FILE`; must succeed. Returns stdout.
fn save(addr: SocketAddr, file: &Path, extra: &[&str]) -> String {
    let file = file.to_str().unwrap();
    let mut args = vec!["backup", "save", file];
    args.extend_from_slice(extra);
    let (code, out, err) = run_cli(&args, addr);
    assert_eq!(code, 0, "backup save: {out}{err}");
    out
}

/// `strata backup restore FILE --data-dir DIR [extra]`: (code, stdout, stderr).
fn restore(file: &Path, dir: &Path, extra: &[&str]) -> (i32, String, String) {
    let (file, dir) = (file.to_str().unwrap(), dir.to_str().unwrap());
    let mut args = vec!["backup", "restore", file, "--data-dir", dir];
    args.extend_from_slice(extra);
    run_strata(&args)
}

fn status(file: &Path) -> (i32, String, String) {
    run_strata(&["backup", "status", file.to_str().unwrap()])
}

/// A field of `backup status`'s output (`keys: 12 (...)` → "12").
fn status_field(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {name} in {out}"))
        .to_string()
}

/// One writer's stream: how far it had sent and been acknowledged.
#[derive(Default)]
struct Progress {
    sent: AtomicU64,
    acked: AtomicU64,
}

/// Writers running against a server while it is backed up:
/// - `seq`: `SET seq:<n> n` for n = 0, 1, ..., one at a time, so the
///   keys acknowledged are always a prefix;
/// - `mset[w]`: round r writes `MSET m:<w>:<0..16> r`, atomically;
/// - `incr`: `INCR counter`, so its value only grows.
struct Writers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    seq: Arc<Progress>,
    mset: Vec<Arc<Progress>>,
    incr: Arc<Progress>,
}

const MSET_WRITERS: usize = 2;
const MSET_KEYS: usize = 16;

impl Writers {
    fn start(addr: SocketAddr) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let seq = Arc::new(Progress::default());
        threads.push(spawn_writer(addr, &stop, &seq, |n| {
            vec![
                "SET".to_string(),
                format!("seq:{:08}", n - 1),
                (n - 1).to_string(),
            ]
        }));
        let mut mset = Vec::new();
        for w in 0..MSET_WRITERS {
            let progress = Arc::new(Progress::default());
            threads.push(spawn_writer(addr, &stop, &progress, move |r| {
                let mut args = vec!["MSET".to_string()];
                for j in 0..MSET_KEYS {
                    args.push(format!("m:{w}:{j:02}"));
                    args.push(r.to_string());
                }
                args
            }));
            mset.push(progress);
        }
        let incr = Arc::new(Progress::default());
        threads.push(spawn_writer(addr, &stop, &incr, |_| {
            vec!["INCR".to_string(), "counter".to_string()]
        }));
        Writers {
            stop,
            threads,
            seq,
            mset,
            incr,
        }
    }

    fn acked(&self) -> Vec<u64> {
        self.streams()
            .map(|p| p.acked.load(Ordering::SeqCst))
            .collect()
    }

    fn sent(&self) -> Vec<u64> {
        self.streams()
            .map(|p| p.sent.load(Ordering::SeqCst))
            .collect()
    }

    fn streams(&self) -> impl Iterator<Item = &Arc<Progress>> {
        std::iter::once(&self.seq)
            .chain(self.mset.iter())
            .chain(std::iter::once(&self.incr))
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().expect("writer thread");
        }
    }
}

/// Runs `request(n)` for n = 1, 2, ... until stopped, counting what was
/// sent before each request and acknowledged after it.
fn spawn_writer(
    addr: SocketAddr,
    stop: &Arc<AtomicBool>,
    progress: &Arc<Progress>,
    request: impl Fn(u64) -> Vec<String> + Send + 'static,
) -> JoinHandle<()> {
    let (stop, progress) = (stop.clone(), progress.clone());
    std::thread::spawn(move || {
        let mut c = client(addr);
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            progress.sent.store(n, Ordering::SeqCst);
            let reply = call(&mut c, &request(n));
            assert!(!matches!(reply, Reply::Error(_)), "writer: {reply:?}");
            progress.acked.store(n, Ordering::SeqCst);
        }
    })
}

/// The pre-loaded part of the model: plain keys, keys with a TTL (and the
/// time they were set), an empty key and a binary one.
struct Model {
    values: BTreeMap<Vec<u8>, Vec<u8>>,
    ttl_keys: Vec<Vec<u8>>,
    ttl_ms: u64,
    set_at: Instant,
}

fn preload(addr: SocketAddr) -> Model {
    let mut c = client(addr);
    let mut values = BTreeMap::new();
    let mut ttl_keys = Vec::new();
    let ttl_ms = 3_600_000;
    let set_at = Instant::now();
    for i in 0..500u32 {
        let key = format!("pre:{i:04}").into_bytes();
        let value = format!("value {i} ")
            .repeat(1 + i as usize % 20)
            .into_bytes();
        if i % 5 == 0 {
            let ttl = ttl_ms.to_string();
            let args: [&[u8]; 5] = [b"SET", &key, &value, b"PX", ttl.as_bytes()];
            assert_eq!(call(&mut c, &args), Reply::ok());
            ttl_keys.push(key.clone());
        } else {
            assert_eq!(
                call(&mut c, &[&b"SET"[..], &key[..], &value[..]]),
                Reply::ok()
            );
        }
        values.insert(key, value);
    }
    for (key, value) in [
        (&b""[..], &b"the empty key"[..]),
        (&b"\x00\xff\r\n"[..], &b"\x01\x02"[..]),
    ] {
        assert_eq!(call(&mut c, &[&b"SET"[..], key, value]), Reply::ok());
        values.insert(key.to_vec(), value.to_vec());
    }
    // Expired before the backup: not in it.
    for i in 0..20 {
        let key = format!("short:{i}");
        assert_eq!(call(&mut c, &["SET", &key, "x", "PX", "1"]), Reply::ok());
    }
    std::thread::sleep(Duration::from_millis(20));
    Model {
        values,
        ttl_keys,
        ttl_ms,
        set_at,
    }
}

/// The restored server holds exactly the model's pre-loaded keys (values
/// and TTLs), and each writer's keys in a state between what it had been
/// acknowledged before the save started and what it had sent when the
/// save ended, consistent across keys (a prefix; whole MSETs).
fn check_restored(addr: SocketAddr, model: &Model, low: &[u64], high: &[u64]) {
    let mut c = client(addr);
    for (key, value) in &model.values {
        let got = call(&mut c, &[&b"GET"[..], &key[..]]);
        assert_eq!(got, Reply::Bulk(value.clone().into()), "{key:?}");
    }
    let elapsed_ms = model.set_at.elapsed().as_millis() as i64;
    for key in &model.ttl_keys {
        let pttl = int(&call(&mut c, &[&b"PTTL"[..], &key[..]]));
        let ttl = model.ttl_ms as i64;
        assert!(
            pttl <= ttl && pttl >= ttl - elapsed_ms - 2_000,
            "{key:?}: PTTL {pttl}"
        );
    }
    for key in model.values.keys().filter(|k| !model.ttl_keys.contains(k)) {
        assert_eq!(int(&call(&mut c, &[&b"PTTL"[..], &key[..]])), -1, "{key:?}");
    }
    let mut expected_keys = model.values.len() as i64;
    // seq: a prefix 0..m.
    let seq_keys = match call(&mut c, &["KEYS", "seq:*"]) {
        Reply::Array(keys) => keys.len() as u64,
        other => panic!("KEYS: {other:?}"),
    };
    assert!(
        (low[0]..=high[0]).contains(&seq_keys),
        "seq: {seq_keys} keys, acknowledged {} before, sent {} after",
        low[0],
        high[0]
    );
    for n in 0..seq_keys {
        let got = text(&call(&mut c, &["GET", &format!("seq:{n:08}")]));
        assert_eq!(
            got,
            Some(n.to_string()),
            "seq:{n} in a prefix of {seq_keys}"
        );
    }
    expected_keys += seq_keys as i64;
    // mset: every key of a writer at the same round.
    for w in 0..MSET_WRITERS {
        let keys: Vec<String> = (0..MSET_KEYS).map(|j| format!("m:{w}:{j:02}")).collect();
        let values = cl::mget(&mut c, &keys);
        let round = values[0]
            .as_deref()
            .map_or(0, |v| v.parse::<u64>().unwrap());
        assert!(
            values
                .iter()
                .all(|v| v.as_deref().map_or(0, |v| v.parse().unwrap()) == round),
            "writer {w}: a torn MSET {values:?}"
        );
        assert!(
            (low[1 + w]..=high[1 + w]).contains(&round),
            "writer {w}: round {round}"
        );
        if round > 0 {
            expected_keys += MSET_KEYS as i64;
        }
    }
    let counter = text(&call(&mut c, &["GET", "counter"])).map_or(0, |v| v.parse().unwrap());
    let i = 1 + MSET_WRITERS;
    assert!((low[i]..=high[i]).contains(&counter), "counter {counter}");
    expected_keys += i64::from(counter > 0);
    assert_eq!(int(&call(&mut c, &["DBSIZE"])), expected_keys);
}

#[test]
fn a_save_under_concurrent_writers_restores_a_consistent_point_in_time() {
    let server = TestServer::start_with(&["--fsync", "never"]);
    let model = preload(server.resp_addr);
    let writers = Writers::start(server.resp_addr);
    // Let every writer get going.
    cl::wait_for("writers running", Duration::from_secs(30), || {
        writers.acked().iter().all(|&n| n >= 3).then_some(())
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("store.backup");
    let low = writers.acked();
    let out = save(server.resp_addr, &file, &[]);
    let high = writers.sent();
    writers.stop();
    eprintln!("writers: acknowledged before the save {low:?}, sent by its end {high:?}");
    assert!(out.starts_with("saved "), "{out}");
    let (code, info, err) = status(&file);
    assert_eq!(code, 0, "status: {info}{err}");
    assert!(info.contains("source: a single node"), "{info}");
    let target = dir.path().join("restored");
    let (code, out, err) = restore(&file, &target, &[]);
    assert_eq!(code, 0, "restore: {out}{err}");
    let restored = TestServer::start_in(&target, &["--fsync", "never"]);
    check_restored(restored.resp_addr, &model, &low, &high);
    let mut c = client(restored.resp_addr);
    let keys = int(&call(&mut c, &["DBSIZE"]));
    assert_eq!(status_field(&info, "keys"), keys.to_string());
    // The restored node takes writes, and WATCH sees them (versions go on
    // above the restored ones).
    assert_eq!(call(&mut c, &["WATCH", "pre:0001"]), Reply::ok());
    let mut other = client(restored.resp_addr);
    assert_eq!(
        call(&mut other, &["SET", "pre:0001", "changed"]),
        Reply::ok()
    );
    assert_eq!(call(&mut c, &["MULTI"]), Reply::ok());
    call(&mut c, &["SET", "pre:0001", "mine"]);
    assert_eq!(call(&mut c, &["EXEC"]), Reply::NullArray);
}

/// A backup of a single node seeds a new 3-node cluster: restored into
/// node 1's directory as a one-node cluster, the others join it and get
/// the data as a snapshot; every node serves every key, TTLs kept, and a
/// WATCH on a restored key sees a later write. Then a backup of a
/// follower restores into a single node.
#[test]
fn a_backup_seeds_a_three_node_cluster() {
    let source = TestServer::start_with(&["--fsync", "never"]);
    let mut c = client(source.resp_addr);
    let mut expected = Vec::new();
    for i in 0..400 {
        let (k, v) = (format!("k:{i:04}"), format!("v{i}"));
        if i % 10 == 0 {
            assert_eq!(call(&mut c, &["SET", &k, &v, "EX", "3600"]), Reply::ok());
        } else {
            assert_eq!(call(&mut c, &["SET", &k, &v]), Reply::ok());
        }
        expected.push((k, v));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("single.backup");
    save(source.resp_addr, &file, &[]);
    let (_, info, _) = status(&file);
    let version: u64 = status_field(&info, "version").parse().unwrap();

    let mut cluster = seed_cluster(&file);
    let applied = must!(
        cluster,
        cluster.wait_converged(&[1, 2, 3], cl::CATCH_UP_TIMEOUT),
        "converge"
    );
    assert!(
        applied > version,
        "the log goes on after the seed: {applied} <= {version}"
    );
    for id in [1, 2, 3] {
        cl::wait_local_data(cluster.node(id), &expected, cl::CATCH_UP_TIMEOUT);
        let mut r = cl::readonly(cluster.node(id));
        let pttl = int(&call(&mut r, &["PTTL", "k:0010"]));
        assert!(
            (3_500_000..=3_600_000).contains(&pttl),
            "node {id}: PTTL {pttl}"
        );
        assert_eq!(int(&call(&mut r, &["PTTL", "k:0011"])), -1);
        assert_eq!(int(&call(&mut r, &["DBSIZE"])), 400);
    }
    // Writes go on, through any node, and WATCH sees them.
    let mut w = cluster.node(1).client(Duration::from_secs(10)).unwrap();
    assert_eq!(call(&mut w, &["WATCH", "k:0005"]), Reply::ok());
    cl::set(cluster.node(3), "k:0005", "changed");
    assert_eq!(call(&mut w, &["MULTI"]), Reply::ok());
    call(&mut w, &["SET", "k:0005", "mine"]);
    assert_eq!(call(&mut w, &["EXEC"]), Reply::NullArray);
    assert_eq!(
        cl::get(cluster.node(2), "k:0005").as_deref(),
        Some("changed")
    );

    follower_backup_restores_into_a_single_node(&cluster, dir.path());
}

/// Restores `file` into node 1 of a new cluster as its seed, starts it,
/// and joins nodes 2 and 3 as voters (README, "Seeding a new cluster").
fn seed_cluster(file: &Path) -> cl::Cluster {
    let mut cluster = cl::Cluster::prepare(cl::config(1)).expect("prepare");
    let (data_dir, peer) = {
        let n = cluster.node(1);
        (n.data_dir.clone(), n.peer_addr)
    };
    let seed = format!("1={peer}");
    let (code, out, err) = restore(file, &data_dir, &["--initial-cluster", &seed]);
    assert_eq!(code, 0, "restore: {out}{err}");
    assert!(out.contains("--join"), "{out}");
    must!(cluster, cluster.node_mut(1).start(), "start node 1");
    must!(
        cluster,
        cluster.wait_for_leader(cl::LEADER_TIMEOUT),
        "leader"
    );
    for id in [2, 3] {
        must!(
            cluster,
            cluster.join_node(id, 1, JoinAs::Voter, &[]).map(|_| ()),
            "join"
        );
    }
    cl::wait_for("3 voters", cl::CATCH_UP_TIMEOUT, || {
        let members = cl::cluster_nodes(cluster.node(1));
        (members.iter().filter(|m| m.3 == "voter").count() == 3).then_some(())
    });
    cluster
}

/// A follower's backup holds what the cluster acknowledged, and restores
/// into a single node.
fn follower_backup_restores_into_a_single_node(cluster: &cl::Cluster, dir: &Path) {
    let follower = [1, 2, 3]
        .into_iter()
        .find(|&id| {
            cluster
                .node(id)
                .leader_view()
                .ok()
                .flatten()
                .is_some_and(|l| l.id != id)
        })
        .expect("a follower");
    let file2 = dir.join("follower.backup");
    save(cluster.node(follower).resp_addr, &file2, &[]);
    let (code, info2, _) = status(&file2);
    assert_eq!(code, 0);
    assert!(
        info2.contains(&format!("source: cluster node {follower}")),
        "{info2}"
    );
    let single = dir.join("single");
    assert_eq!(restore(&file2, &single, &[]).0, 0);
    let restored = TestServer::start_in(&single, &[]);
    let mut r = client(restored.resp_addr);
    assert_eq!(int(&call(&mut r, &["DBSIZE"])), 400);
    assert_eq!(
        text(&call(&mut r, &["GET", "k:0005"])).as_deref(),
        Some("changed")
    );
    assert_eq!(
        text(&call(&mut r, &["GET", "k:0399"])).as_deref(),
        Some("v399")
    );
}

/// Offsets in every region of a backup file: magic, format version,
/// header length, header, first key length, key, record length, record,
/// end marker, count, checksum, last byte.
fn regions(file: &[u8]) -> Vec<usize> {
    let h = u32::from_le_bytes(file[12..16].try_into().unwrap()) as usize;
    let entries = 16 + h;
    let klen = u32::from_le_bytes(file[entries..entries + 4].try_into().unwrap()) as usize;
    let len = file.len();
    vec![
        0,
        9,
        13,
        16 + h / 2,
        entries,
        entries + 4,
        entries + 4 + klen,
        entries + 8 + klen,
        len - 20,
        len - 16,
        len - 8,
        len - 1,
    ]
}

#[test]
fn damaged_or_cut_backups_are_refused_and_restore_nothing() {
    let server = TestServer::start();
    let mut c = client(server.resp_addr);
    assert_eq!(call(&mut c, &["SET", "a", "1"]), Reply::ok());
    assert_eq!(call(&mut c, &["SET", "b", "2", "EX", "100"]), Reply::ok());
    assert_eq!(call(&mut c, &["SET", "c", "3"]), Reply::ok());
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.backup");
    save(server.resp_addr, &good, &[]);
    let (code, out, _) = status(&good);
    assert_eq!(code, 0, "{out}");
    assert_eq!(status_field(&out, "keys"), "3");
    let bytes = std::fs::read(&good).unwrap();
    let targets = dir.path().join("targets");
    std::fs::create_dir(&targets).unwrap();
    let bad = dir.path().join("bad.backup");
    for at in regions(&bytes) {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x10;
        for (what, damaged) in [("flipped", flipped), ("cut", bytes[..at].to_vec())] {
            std::fs::write(&bad, &damaged).unwrap();
            let (code, out, err) = status(&bad);
            assert_eq!(code, 1, "status of {what} at {at}: {out}{err}");
            assert!(
                [
                    "damaged",
                    "truncated",
                    "not a Strata backup",
                    "not supported"
                ]
                .iter()
                .any(|w| err.contains(w)),
                "{what} at {at}: {err}"
            );
            let (code, out, err) = restore(&bad, &targets.join("data"), &[]);
            assert_eq!(code, 1, "restore of {what} at {at}: {out}{err}");
            let left: Vec<_> = std::fs::read_dir(&targets).unwrap().collect();
            assert!(left.is_empty(), "{what} at {at} left {left:?}");
        }
    }
    // A directory in use is refused untouched.
    let busy = dir.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("keep"), b"x").unwrap();
    let (code, _, err) = restore(&good, &busy, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);
    // A seed names exactly one node.
    let (code, _, err) = restore(
        &good,
        &targets.join("x"),
        &["--initial-cluster", "1=a:1,2=b:2"],
    );
    assert_eq!(code, 2, "{err}");
    // A save to a server that is not there fails and leaves no file.
    let gone = dir.path().join("none.backup");
    let (code, _, _) = run_cli(
        &["backup", "save", gone.to_str().unwrap()],
        "127.0.0.1:9".parse().unwrap(),
    );
    assert_eq!(code, 2);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        4,
        "good, bad, targets, busy"
    );
}

/// The file a client reassembles from BACKUP NEXT, `offset` by offset.
fn begin(c: &mut Client) -> String {
    match call(c, &["BACKUP", "BEGIN"]) {
        Reply::Array(items) if items.len() == 4 => {
            assert_eq!(int(&items[3]), 1 << 20, "chunk size");
            text(&items[0]).unwrap()
        }
        other => panic!("BACKUP BEGIN: {other:?}"),
    }
}

fn error(reply: Reply) -> String {
    match reply {
        Reply::Error(e) => e.to_string(),
        other => panic!("not an error: {other:?}"),
    }
}

#[test]
fn backups_are_bounded_resent_and_dropped_when_idle() {
    let server = TestServer::start_with(&["--fsync", "never", "--backup-idle-timeout-ms", "1000"]);
    let mut c = client(server.resp_addr);
    let value = "x".repeat(1000);
    for chunk in 0..30 {
        let mut args = vec!["MSET".to_string()];
        for i in 0..100 {
            args.push(format!("key:{chunk:02}:{i:03}"));
            args.push(value.clone());
        }
        assert_eq!(call(&mut c, &args), Reply::ok());
    }
    let id = begin(&mut c);
    let first = match call(&mut c, &["BACKUP", "NEXT", &id, "0"]) {
        Reply::Bulk(b) => b,
        other => panic!("{other:?}"),
    };
    assert_eq!(first.len(), 1 << 20);
    // Asked again: the same bytes (a resend after a lost reply).
    assert_eq!(
        call(&mut c, &["BACKUP", "NEXT", &id, "0"]),
        Reply::Bulk(first.clone())
    );
    let err = error(call(&mut c, &["BACKUP", "NEXT", &id, "5"]));
    assert!(err.contains("at byte 1048576, not 5"), "{err}");
    let second = call(&mut c, &["BACKUP", "NEXT", &id, "1048576"]);
    assert!(
        matches!(second, Reply::Bulk(ref b) if !b.is_empty()),
        "{second:?}"
    );
    assert!(error(call(&mut c, &["BACKUP", "NEXT", &id, "0"])).contains("not 0"));
    // Four at once at most.
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(begin(&mut c));
    }
    let err = error(call(&mut c, &["BACKUP", "BEGIN"]));
    assert!(err.contains("already in progress"), "{err}");
    match call(&mut c, &["BACKUP", "LIST"]) {
        Reply::Array(list) => assert_eq!(list.len(), 4),
        other => panic!("{other:?}"),
    }
    assert_eq!(call(&mut c, &["BACKUP", "END", &others[0]]), Reply::ok());
    assert!(error(call(&mut c, &["BACKUP", "END", &others[0]])).contains("no backup"));
    // Idle past the timeout: dropped, snapshot and all.
    cl::wait_for("idle backups dropped", Duration::from_secs(30), || {
        matches!(call(&mut c, &["BACKUP", "LIST"]), Reply::Array(l) if l.is_empty()).then_some(())
    });
    assert!(error(call(&mut c, &["BACKUP", "NEXT", &id, "1048576"])).contains("no backup"));
    // Not inside a transaction; malformed requests are refused.
    assert_eq!(call(&mut c, &["MULTI"]), Reply::ok());
    error(call(&mut c, &["BACKUP", "BEGIN"]));
    assert_eq!(call(&mut c, &["DISCARD"]), Reply::ok());
    for bad in [
        vec!["BACKUP", "NEXT", "xyz", "0"],
        vec!["BACKUP", "NEXT", &id, "-1"],
        vec!["BACKUP", "BEGIN", "NOW"],
        vec!["BACKUP", "FETCH"],
    ] {
        error(call(&mut c, &bad));
    }
}

/// A store of 96 MiB of values saves with the client's peak RSS far below
/// that (the file is streamed, never held; measured 24 MB, of which 14 MB
/// is the debug binary doing nothing), and the server's RSS grows by far
/// less than the store during the save (its block cache is small); the
/// restore holds every value.
#[test]
fn a_large_backup_streams_in_bounded_memory() {
    const VALUES: usize = 384;
    let server = TestServer::start_with(&["--fsync", "never", "--cache-size-bytes", "16MiB"]);
    let mut c = client(server.resp_addr);
    load_big(&mut c, VALUES);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.backup");
    let pid = server.pid();
    let before = rss_kib(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::SeqCst) {
                peak = peak.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        })
    };
    let out = save(server.resp_addr, &file, &[]);
    stop.store(true, Ordering::SeqCst);
    let server_peak = watcher.join().unwrap();
    let client_peak_mb: f64 = out
        .rsplit("peak RSS ")
        .next()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in {out}"));
    let store_mb = (VALUES * BIG_VALUE_BYTES) as f64 / 1e6;
    assert!(
        client_peak_mb < store_mb / 3.0,
        "client peak RSS {client_peak_mb} MB for a {store_mb} MB store"
    );
    // What may grow: the 16 MiB block cache filling, the chunks, the
    // allocator's slack (measured: 0 to 30 MB); holding the file would
    // take 100 MB.
    let grew_mb = server_peak.saturating_sub(before) as f64 * 1024.0 / 1e6;
    assert!(
        grew_mb < store_mb / 2.0,
        "server RSS grew {grew_mb} MB during the save"
    );
    eprintln!("client peak {client_peak_mb} MB, server grew {grew_mb} MB; {out}");
    let target = dir.path().join("restored");
    assert_eq!(restore(&file, &target, &[]).0, 0);
    let restored = TestServer::start_in(&target, &["--fsync", "never"]);
    let mut r = client(restored.resp_addr);
    assert_eq!(int(&call(&mut r, &["DBSIZE"])), VALUES as i64);
    for i in (0..VALUES).step_by(37) {
        let got = call(
            &mut r,
            &[b"GET".to_vec(), format!("big:{i:04}").into_bytes()],
        );
        assert_eq!(got, Reply::Bulk(big_value(i).into()), "big:{i}");
    }
}

/// Value `i` of the large test: 256 KiB of xorshift bytes, different per
/// value, so nothing dedupes or compresses them.
fn big_value(i: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ i as u64;
    (0..BIG_VALUE_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

const BIG_VALUE_BYTES: usize = 256 * 1024;

/// SETs `big:0000..` to [`big_value`], 8 to a pipeline.
fn load_big(c: &mut Client, values: usize) {
    for batch in (0..values).collect::<Vec<_>>().chunks(8) {
        let requests: Vec<Vec<Vec<u8>>> = batch
            .iter()
            .map(|&i| {
                vec![
                    b"SET".to_vec(),
                    format!("big:{i:04}").into_bytes(),
                    big_value(i),
                ]
            })
            .collect();
        let replies = c.pipeline(&requests).expect("pipeline");
        assert!(replies.iter().all(|r| *r == Reply::ok()));
    }
}

/// VmRSS of a process, KiB (0 once it is gone).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}
