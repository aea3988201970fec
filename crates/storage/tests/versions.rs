//! Per-key modification versions and WATCH, on the real engine: a write
//! of the same value, INCR then DECR, FLUSHALL and expiry all abort a
//! transaction watching the key; versions keep growing across restarts;
//! records and snapshots of builds before versions still open and read;
//! and replicas stamp log indices, so every replica decides a watch alike,
//! across a restart, a FLUSHALL and a snapshot install.

use bytes::Bytes;
use strata_storage::{
    FsyncPolicy, Limits, LocalStore, LogEntry, Mutation, Op, Outcome, Record, ReplicatedStore,
    SetCondition, SetExpiry, Step, StorageConfig, Store, Watched, WatchedVersion, record_digest,
};

fn config(dir: &std::path::Path) -> StorageConfig {
    let mut c = StorageConfig::new(dir);
    c.fsync = FsyncPolicy::Never;
    c.cache_size_bytes = 4 * 1024 * 1024;
    c.memtable_size_bytes = 1024 * 1024;
    c.journal_size_bytes_max = 64 * 1024 * 1024;
    // Reads from a debug build can be slow enough to switch prefetching
    // on, which takes writes off the inline path these tests also drive.
    c.prefetch_slow_read_ns = u64::MAX;
    c
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn set(key: &str, value: &str) -> Op {
    Op::Set {
        key: b(key),
        value: b(value),
        condition: SetCondition::Always,
        expiry: SetExpiry::Clear,
        return_old: false,
    }
}

fn incr(key: &str, delta: i64) -> Op {
    Op::IncrBy { key: b(key), delta }
}

/// A transaction that sets `x` to 1 if the watches hold.
fn exec(watched: Vec<WatchedVersion>) -> Op {
    Op::ExecVersioned {
        steps: vec![Step::Write(set("x", "1"))],
        watched,
    }
}

/// What `exec` answers when applied.
fn applied() -> Outcome {
    Outcome::Many(vec![Outcome::Ok])
}

fn version(store: &Store, key: &str) -> u64 {
    store
        .get(key.as_bytes(), 1)
        .unwrap()
        .expect("present")
        .version
}

/// A single node, through the queue or inline (fsync never commits on the
/// caller's thread when it can).
struct Single {
    rt: tokio::runtime::Runtime,
    store: LocalStore,
    inline: bool,
}

impl Single {
    fn run(&self, op: Op) -> Outcome {
        self.run_at(1, op)
    }

    fn run_at(&self, now_ms: u64, op: Op) -> Outcome {
        let m = Mutation { now_ms, op };
        if self.inline
            && let Some(mut outcomes) = self.store.apply_inline(std::slice::from_ref(&m))
        {
            return outcomes.remove(0).unwrap();
        }
        self.rt.block_on(self.store.submit(m)).unwrap()
    }

    fn watch(&self, key: &str) -> WatchedVersion {
        self.store.watch(&b(key), 1).unwrap()
    }
}

#[test]
fn every_write_after_watch_aborts_and_other_writes_do_not() {
    for inline in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let s = Single {
            rt: runtime(),
            store: LocalStore::open(config(dir.path())).unwrap(),
            inline,
        };
        s.run(set("k", "v"));
        s.run(set("n", "5"));
        let changes: Vec<(&str, Vec<Op>)> = vec![
            ("k", vec![set("k", "v")]),
            ("n", vec![incr("n", 1), incr("n", -1)]),
            ("k", vec![Op::Delete { keys: vec![b("k")] }, set("k", "v")]),
            (
                "absent",
                vec![
                    set("absent", "1"),
                    Op::Delete {
                        keys: vec![b("absent")],
                    },
                ],
            ),
        ];
        for (key, change) in changes {
            let w = s.watch(key);
            for op in change.iter().cloned() {
                s.run(op);
            }
            assert_eq!(s.run(exec(vec![w])), Outcome::Aborted, "{key}: {change:?}");
        }
        // Unrelated writes and reads: applied.
        let w = vec![s.watch("k"), s.watch("n"), s.watch("absent")];
        s.run(set("other", "1"));
        assert_eq!(s.store.get(b"k", 1).unwrap().unwrap().value, b("v"));
        assert_eq!(s.run(exec(w)), applied());
        // A same-value write changes the version, nothing else.
        let before = s.store.get(b"k", 1).unwrap().unwrap();
        s.run(set("k", "v"));
        let after = s.store.get(b"k", 1).unwrap().unwrap();
        assert_eq!((&after.value, after.expire_at_ms), (&before.value, 0));
        assert!(after.version > before.version);
        s.rt.block_on(s.store.shutdown()).unwrap();
    }
}

#[test]
fn expiry_and_flushall_abort_a_watch() {
    let dir = tempfile::tempdir().unwrap();
    let s = Single {
        rt: runtime(),
        store: LocalStore::open(config(dir.path())).unwrap(),
        inline: false,
    };
    s.run(Op::Set {
        key: b("e"),
        value: b("v"),
        condition: SetCondition::Always,
        expiry: SetExpiry::At(100),
        return_old: false,
    });
    let w = s.watch("e");
    assert!(w.existed);
    assert_eq!(s.run_at(99, exec(vec![w.clone()])), applied());
    // Expired at t=100, before any sweep: aborted.
    assert_eq!(s.run_at(100, exec(vec![w])), Outcome::Aborted);
    // FLUSHALL: a watched key that existed, and a key created after WATCH
    // and cleared with everything.
    s.run(set("k", "v"));
    let existed = s.watch("k");
    let absent = s.watch("absent");
    s.run(set("absent", "1"));
    s.run(Op::FlushAll);
    assert_eq!(s.run(exec(vec![existed])), Outcome::Aborted);
    assert_eq!(s.run(exec(vec![absent])), Outcome::Aborted);
    // A key absent before and after a FLUSHALL that wrote nothing new
    // since WATCH: still as it was.
    let absent = s.watch("absent");
    s.run(Op::FlushAll);
    assert_eq!(s.run(exec(vec![absent])), applied());
    s.rt.block_on(s.store.shutdown()).unwrap();
}

/// A restart cannot keep a connection, but a version can be kept: after a
/// reopen, a same-value write still gets a higher version than any before
/// it (the ceiling is persisted), so a watch taken before the restart
/// aborts; and an untouched key still holds.
#[test]
fn versions_keep_growing_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let mut last = 0;
    let mut watches = Vec::new();
    for round in 0..3 {
        let store = LocalStore::open(config(dir.path())).unwrap();
        if round > 0 {
            // Every watch from before: the untouched key holds...
            let untouched = watches.iter().find(|w: &&WatchedVersion| w.key == b("u"));
            let m = Mutation {
                now_ms: 1,
                op: exec(vec![untouched.unwrap().clone()]),
            };
            assert_eq!(rt.block_on(store.submit(m)).unwrap(), applied());
        }
        let submit = |op| {
            rt.block_on(store.submit(Mutation { now_ms: 1, op }))
                .unwrap()
        };
        submit(set("k", "v"));
        if round == 0 {
            submit(set("u", "u"));
        }
        let v = version(&store, "k");
        assert!(v > last, "round {round}: version {v} after {last}");
        last = v;
        if round > 0 {
            // ...and the same-value write aborts a watch from before.
            let k = watches.iter().find(|w: &&WatchedVersion| w.key == b("k"));
            let m = Mutation {
                now_ms: 1,
                op: exec(vec![k.unwrap().clone()]),
            };
            assert_eq!(rt.block_on(store.submit(m)).unwrap(), Outcome::Aborted);
        }
        watches = vec![
            store.watch(&b("k"), 1).unwrap(),
            store.watch(&b("u"), 1).unwrap(),
        ];
        if round == 1 {
            // A FLUSHALL rewrites the ceiling it clears.
            submit(Op::FlushAll);
            submit(set("u", "u"));
            watches[1] = store.watch(&b("u"), 1).unwrap();
            last = version(&store, "u");
        }
        rt.block_on(store.shutdown()).unwrap();
    }
}

/// Writes one raw record under a user key, bypassing the store: what a
/// build before versions left on disk.
fn write_raw(dir: &std::path::Path, entries: &[(&[u8], Vec<u8>)]) {
    let db = fjall::Database::builder(dir).open().unwrap();
    let data = db
        .keyspace("data", fjall::KeyspaceCreateOptions::default)
        .unwrap();
    for (key, value) in entries {
        data.insert(*key, value.clone()).unwrap();
    }
    // Without counters the store recounts, decoding every record.
    data.remove("mcounts").unwrap();
    db.persist(fjall::PersistMode::SyncAll).unwrap();
}

#[test]
fn records_of_builds_before_versions_open_read_and_watch() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let store = LocalStore::open(config(dir.path())).unwrap();
    rt.block_on(store.shutdown()).unwrap();
    drop(store);
    let at = 4_000_000_000_000u64;
    let mut expiring = vec![1u8];
    expiring.extend_from_slice(&at.to_le_bytes());
    expiring.extend_from_slice(b"e");
    let mut index_key = b"x".to_vec();
    index_key.extend_from_slice(&at.to_be_bytes());
    index_key.extend_from_slice(b"old-e");
    write_raw(
        dir.path(),
        &[
            (b"kold", b"\x00plain".to_vec()),
            (b"kold-e", expiring),
            (&index_key, Vec::new()),
        ],
    );
    let s = Single {
        rt,
        store: LocalStore::open(config(dir.path())).unwrap(),
        inline: false,
    };
    assert_eq!(s.store.dbsize(), 2);
    assert_eq!(s.store.stats().expiring_keys, 1);
    let plain = s.store.get(b"old", 1).unwrap().unwrap();
    assert_eq!((plain.value, plain.version), (b("plain"), 0));
    let e = s.store.get(b"old-e", 1).unwrap().unwrap();
    assert_eq!((e.value, e.expire_at_ms, e.version), (b("e"), at, 0));
    // Watched untouched: applied; then a same-value write: aborted.
    let w = vec![s.watch("old"), s.watch("old-e")];
    assert_eq!(s.run(exec(w.clone())), applied());
    s.run(Op::Set {
        key: b("old-e"),
        value: b("e"),
        condition: SetCondition::Always,
        expiry: SetExpiry::Keep,
        return_old: false,
    });
    assert_eq!(s.run(exec(w)), Outcome::Aborted);
    let e = s.store.get(b"old-e", 1).unwrap().unwrap();
    assert_eq!((e.value, e.expire_at_ms), (b("e"), at));
    assert!(e.version > 0);
    s.rt.block_on(s.store.shutdown()).unwrap();
}

fn no_limits() -> Limits {
    Limits {
        key_size_bytes_max: 1024,
        value_size_bytes_max: 1024,
    }
}

/// One log entry at `index`, as the replication layer hands it over.
fn entry(index: u64, op: Option<Op>) -> LogEntry {
    LogEntry {
        mutation: op.map(|op| Mutation { now_ms: 1, op }),
        request: None,
        retry: false,
        limits: no_limits(),
        applied_mark: Bytes::from(format!("mark-{index}")),
        index,
    }
}

/// Replicas: the same log on every store.
struct Replicas {
    rt: tokio::runtime::Runtime,
    dirs: Vec<tempfile::TempDir>,
    stores: Vec<ReplicatedStore>,
    next: u64,
}

impl Replicas {
    fn new(n: usize) -> Replicas {
        let dirs: Vec<_> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
        let stores = dirs
            .iter()
            .map(|d| ReplicatedStore::open(config(d.path())).unwrap())
            .collect();
        Replicas {
            rt: runtime(),
            dirs,
            stores,
            next: 1,
        }
    }

    /// Appends `op` to the log and applies it everywhere: one outcome,
    /// the same on every replica.
    fn apply(&mut self, op: Op) -> Outcome {
        let index = self.next;
        self.next += 1;
        let outcomes: Vec<Outcome> = self
            .stores
            .iter()
            .map(|s| {
                let mut got = self
                    .rt
                    .block_on(s.apply_log(vec![entry(index, Some(op.clone()))]))
                    .unwrap();
                got.remove(0)
            })
            .collect();
        assert!(
            outcomes.windows(2).all(|w| w[0] == w[1]),
            "replicas decided differently: {outcomes:?}"
        );
        outcomes.into_iter().next().unwrap()
    }

    fn watch(&self, replica: usize, key: &str) -> WatchedVersion {
        self.stores[replica].watch(&b(key), 1).unwrap()
    }

    /// Every replica's raw state, meta entries (mark, counters, deletion
    /// version) included: identical.
    fn assert_identical(&self) {
        let raw = |s: &Store| -> Vec<(Bytes, Bytes)> {
            s.snapshot().export().map(Result::unwrap).collect()
        };
        let first = raw(&self.stores[0]);
        for s in &self.stores[1..] {
            assert_eq!(raw(s), first);
        }
    }

    /// Restarts replica `i`, as the replication layer does: reopen, then
    /// tell it the applied index (read from its mark).
    fn restart(&mut self, i: usize) {
        self.rt.block_on(self.stores[i].shutdown()).unwrap();
        // Closed before it opens again: the engine locks its directory.
        drop(self.stores.remove(i));
        let store = ReplicatedStore::open(config(self.dirs[i].path())).unwrap();
        self.stores.insert(i, store);
        self.rt
            .block_on(self.stores[i].resume_versions(self.next - 1))
            .unwrap();
    }
}

#[test]
fn replicas_stamp_log_indices_and_decide_watches_alike() {
    let mut r = Replicas::new(2);
    r.apply(set("k", "v"));
    r.apply(set("n", "5"));
    for s in &r.stores {
        assert_eq!(version(s, "k"), 1);
        assert_eq!(version(s, "n"), 2);
    }
    // The state's version is the last applied index.
    let w = r.watch(1, "absent");
    assert_eq!((w.existed, w.as_of), (false, 2));
    // A same-value write through "another node": every replica aborts.
    let w = r.watch(0, "k");
    r.apply(set("k", "v"));
    assert_eq!(r.apply(exec(vec![w])), Outcome::Aborted);
    // INCR then DECR.
    let w = r.watch(1, "n");
    r.apply(incr("n", 1));
    r.apply(incr("n", -1));
    assert_eq!(r.apply(exec(vec![w])), Outcome::Aborted);
    // Created and deleted again.
    let w = r.watch(0, "absent");
    r.apply(set("absent", "1"));
    r.apply(Op::Delete {
        keys: vec![b("absent")],
    });
    assert_eq!(r.apply(exec(vec![w])), Outcome::Aborted);
    // Nothing touched: applied, on both.
    let w = vec![r.watch(0, "k"), r.watch(1, "n"), r.watch(0, "absent")];
    r.apply(set("other", "1"));
    assert_eq!(r.apply(exec(w)), applied());
    r.assert_identical();
    // A replica restarted in between decides as the other.
    let w = vec![r.watch(0, "k"), r.watch(0, "absent")];
    r.restart(1);
    assert_eq!(r.watch(1, "k"), w[0], "the restarted replica's version");
    assert_eq!(r.apply(exec(w.clone())), applied());
    r.restart(0);
    r.apply(set("absent", "1"));
    r.apply(Op::GetDel { key: b("absent") });
    assert_eq!(r.apply(exec(w)), Outcome::Aborted);
    r.assert_identical();
    for s in &r.stores {
        r.rt.block_on(s.shutdown()).unwrap();
    }
}

/// The deletion version is replicated state: FLUSHALL raises it, it is
/// persisted with the data (a restart keeps it) and a snapshot carries it
/// (an installed replica decides as the others).
#[test]
fn flushall_restarts_and_snapshots_keep_watches_deciding_alike() {
    let mut r = Replicas::new(2);
    r.apply(set("k", "v"));
    let absent = r.watch(0, "absent");
    r.apply(set("later", "1"));
    r.apply(Op::FlushAll);
    r.restart(0);
    // A third replica from a snapshot of the first.
    let dir = tempfile::tempdir().unwrap();
    let installed = ReplicatedStore::open(config(dir.path())).unwrap();
    let snap = r.stores[0].snapshot();
    let mark = snap.applied_mark().unwrap().unwrap();
    r.rt.block_on(installed.install(Box::new(snap.export()), mark, r.next - 1))
        .unwrap();
    r.stores.push(installed);
    r.dirs.push(dir);
    assert_eq!(r.apply(exec(vec![absent])), Outcome::Aborted);
    // Versions after the install are the log's, as on the others.
    let w = r.watch(2, "k");
    assert_eq!((w.existed, w.as_of), (false, r.next - 1));
    r.apply(set("k", "v"));
    let w = r.watch(2, "k");
    r.apply(set("k", "v"));
    assert_eq!(r.apply(exec(vec![w])), Outcome::Aborted);
    let w = r.watch(1, "k");
    assert_eq!(r.apply(exec(vec![w])), applied());
    r.assert_identical();
    for s in &r.stores {
        r.rt.block_on(s.shutdown()).unwrap();
    }
}

/// A snapshot written by a build before versions: records with the old
/// tags, no deletion version. It installs, reads with version 0, and
/// every later write stamps past it.
#[test]
fn a_snapshot_of_a_build_before_versions_installs() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = ReplicatedStore::open(config(dir.path())).unwrap();
    let entries: Vec<(Bytes, Bytes)> = vec![
        (b("kold"), Bytes::from_static(b"\x00v")),
        (b("mcounts"), Bytes::from(vec![0u8; 16])),
    ];
    rt.block_on(store.install(Box::new(entries.into_iter().map(Ok)), b("m"), 7))
        .unwrap();
    let old = store.get(b"old", 1).unwrap().unwrap();
    assert_eq!((old.value, old.version), (b("v"), 0));
    assert_eq!(store.dbsize(), 1);
    let w = store.watch(&b("old"), 1).unwrap();
    assert_eq!((w.existed, w.as_of), (true, 7));
    let got = rt
        .block_on(store.apply_log(vec![
            entry(8, Some(exec(vec![w.clone()]))),
            entry(9, Some(set("old", "v"))),
            entry(10, Some(exec(vec![w]))),
        ]))
        .unwrap();
    assert_eq!(got, vec![applied(), Outcome::Ok, Outcome::Aborted]);
    assert_eq!(version(&store, "old"), 9);
    rt.block_on(store.shutdown()).unwrap();
}

/// A record is 8 bytes longer than before versions, no more.
#[test]
fn a_version_costs_eight_bytes() {
    let r = Record::new(b("value"), 0);
    let stamped = r.clone().with_version(u64::MAX);
    assert_eq!(stamped.encode().len(), r.encode().len() + 8);
    let r = Record::new(b("value"), 5);
    assert_eq!(
        r.clone().with_version(1).encode().len(),
        r.encode().len() + 8
    );
}

/// A transaction logged by a build before versions (`Op::Exec`, digest
/// watches) applies exactly as that build applied it: the digest ignores
/// versions, so a same-value write still does not abort it, and a change
/// of value does.
#[test]
fn transactions_logged_before_versions_apply_as_before() {
    let mut r = Replicas::new(2);
    r.apply(set("w", "v"));
    let digest = record_digest(r.stores[0].get(b"w", 1).unwrap().as_ref());
    let old_exec = Op::Exec {
        steps: vec![Step::Write(set("x", "1"))],
        watched: vec![Watched {
            key: b("w"),
            digest,
        }],
    };
    r.apply(set("w", "v"));
    assert_eq!(r.apply(old_exec.clone()), applied());
    r.apply(set("w", "v2"));
    assert_eq!(r.apply(old_exec), Outcome::Aborted);
    r.assert_identical();
    for s in &r.stores {
        r.rt.block_on(s.shutdown()).unwrap();
    }
}
