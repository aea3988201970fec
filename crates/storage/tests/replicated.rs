//! Replicated mode: `apply_log` against the single-node path, retry dedupe,
//! the applied mark, FLUSHALL inside a group, snapshot export/install, the
//! Raft log store, and what a replicated store refuses.

use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use strata_storage::{
    ExpireCondition, FsyncPolicy, Limits, LocalStore, LogEntry, Mutation, MutationError, Op,
    Outcome, Record, ReplicatedStore, RequestId, SetCondition, SetExpiry, StorageConfig,
    StorageError, Store,
};

fn config(dir: &std::path::Path) -> StorageConfig {
    let mut c = StorageConfig::new(dir);
    c.fsync = FsyncPolicy::Never;
    c.cache_size_bytes = 4 * 1024 * 1024;
    c.memtable_size_bytes = 1024 * 1024;
    c.journal_size_bytes_max = 64 * 1024 * 1024;
    c.key_size_bytes_max = 64;
    c.value_size_bytes_max = 256;
    c
}

fn limits() -> Limits {
    Limits {
        key_size_bytes_max: 64,
        value_size_bytes_max: 256,
    }
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

/// The log index of a test entry: its mark's number plus one (marks
/// number the entries: "3", "mark-3"), so that the same entries built
/// twice, for two stores, stamp the same versions. Marks without a
/// number take ever larger indices.
fn index_of(mark: &str) -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 32);
    let digits = mark.len() - mark.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    match mark[mark.len() - digits..].parse::<u64>() {
        Ok(n) => n + 1,
        Err(_) => NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    }
}

fn entry(op: Option<Op>, now_ms: u64, request: Option<RequestId>, mark: &str) -> LogEntry {
    LogEntry {
        index: index_of(mark),
        mutation: op.map(|op| Mutation { now_ms, op }),
        request,
        // Every test entry with an id is treated as a possible resend, so
        // the dedupe record is always checked; see
        // `first_attempts_skip_the_dedupe_lookup` for the other case.
        retry: request.is_some(),
        limits: limits(),
        applied_mark: b(mark),
    }
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

fn incr(key: &str) -> Op {
    Op::IncrBy {
        key: b(key),
        delta: 1,
    }
}

fn value(store: &Store, key: &str, now_ms: u64) -> Option<Bytes> {
    store.get(key.as_bytes(), now_ms).unwrap().map(|r| r.value)
}

/// A stored key is a dedupe record's: `mr` ++ three be_u64 (26 bytes).
fn is_dedupe_record(key: &[u8]) -> bool {
    key.len() == 26 && key.starts_with(b"mr")
}

/// The engine under a closed store, opened directly, for tests that must
/// rewrite its layout: the database and its `data` and `dedupe` keyspaces.
fn raw_engine(dir: &std::path::Path) -> (fjall::Database, fjall::Keyspace, fjall::Keyspace) {
    let db = fjall::Database::builder(dir).open().unwrap();
    let data = db
        .keyspace("data", fjall::KeyspaceCreateOptions::default)
        .unwrap();
    let dedupe = db
        .keyspace("dedupe", fjall::KeyspaceCreateOptions::default)
        .unwrap();
    (db, data, dedupe)
}

fn export(store: &Store) -> Vec<(Bytes, Bytes)> {
    store
        .snapshot()
        .export()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

// Far in the future, so the single-node store's sweeper (real clock) never
// finds a due key and both stores see exactly the same mutations.
const T0: u64 = 4_000_000_000_000;

#[derive(Clone, Debug)]
enum Gen {
    Set(u8, Vec<u8>, Option<u64>),
    SetNx(u8, Vec<u8>),
    Incr(u8, i64),
    Append(u8, Vec<u8>),
    Del(Vec<u8>),
    MSet(Vec<(u8, Vec<u8>)>),
    Rename(u8, u8),
    Expire(u8, i64),
    Persist(u8),
    GetDel(u8),
    FlushAll,
    Blank,
}

fn gkey(k: u8) -> Bytes {
    match k {
        0 => Bytes::new(),
        n => Bytes::from(format!("k{n}")),
    }
}

fn gen_strategy() -> impl Strategy<Value = Gen> {
    let k = 0u8..8;
    let v = proptest::collection::vec(b'0'..=b'9', 0..6);
    prop_oneof![
        4 => (k.clone(), v.clone(), proptest::option::of(0u64..400)).prop_map(|(k, v, t)| Gen::Set(k, v, t)),
        1 => (k.clone(), v.clone()).prop_map(|(k, v)| Gen::SetNx(k, v)),
        3 => (k.clone(), -5i64..5).prop_map(|(k, d)| Gen::Incr(k, d)),
        1 => (k.clone(), proptest::collection::vec(any::<u8>(), 0..200)).prop_map(|(k, v)| Gen::Append(k, v)),
        2 => proptest::collection::vec(k.clone(), 1..4).prop_map(Gen::Del),
        1 => proptest::collection::vec((k.clone(), v), 1..4).prop_map(Gen::MSet),
        1 => (k.clone(), k.clone()).prop_map(|(a, b)| Gen::Rename(a, b)),
        2 => (k.clone(), -100i64..400).prop_map(|(k, t)| Gen::Expire(k, t)),
        1 => k.clone().prop_map(Gen::Persist),
        1 => k.prop_map(Gen::GetDel),
        1 => Just(Gen::FlushAll),
        1 => Just(Gen::Blank),
    ]
}

fn to_op(g: &Gen, now_ms: u64) -> Option<Op> {
    Some(match g.clone() {
        Gen::Set(k, v, t) => Op::Set {
            key: gkey(k),
            value: v.into(),
            condition: SetCondition::Always,
            expiry: t.map_or(SetExpiry::Clear, |t| SetExpiry::At(now_ms + t)),
            return_old: true,
        },
        Gen::SetNx(k, v) => Op::Set {
            key: gkey(k),
            value: v.into(),
            condition: SetCondition::IfAbsent,
            expiry: SetExpiry::Keep,
            return_old: false,
        },
        Gen::Incr(k, delta) => Op::IncrBy {
            key: gkey(k),
            delta,
        },
        Gen::Append(k, v) => Op::Append {
            key: gkey(k),
            value: v.into(),
        },
        Gen::Del(ks) => Op::Delete {
            keys: ks.into_iter().map(gkey).collect(),
        },
        Gen::MSet(pairs) => Op::MSet {
            pairs: pairs
                .into_iter()
                .map(|(k, v)| (gkey(k), v.into()))
                .collect(),
            if_none_exist: false,
        },
        Gen::Rename(a, b) => Op::Rename {
            from: gkey(a),
            to: gkey(b),
            if_absent: false,
        },
        Gen::Expire(k, t) => Op::Expire {
            key: gkey(k),
            at_ms: now_ms as i64 + t,
            condition: ExpireCondition::Always,
        },
        Gen::Persist(k) => Op::Persist { key: gkey(k) },
        Gen::GetDel(k) => Op::GetDel { key: gkey(k) },
        Gen::FlushAll => Op::FlushAll,
        Gen::Blank => return None,
    })
}

/// The state both stores must agree on: every raw entry but the meta
/// entries (the applied mark and dedupe records exist only when replicated,
/// and the counters are compared through dbsize: a group whose changes
/// cancel out does not rewrite them, so their presence depends on grouping),
/// and records without their versions (group numbers on a single node, log
/// indices when replicated).
fn comparable(store: &Store) -> Vec<(Bytes, Bytes)> {
    export(store)
        .into_iter()
        .filter(|(k, _)| !k.starts_with(b"m"))
        .map(|(k, v)| match k.first() {
            Some(b'k') => {
                let record = Record::decode(v).expect("a record").with_version(0);
                (k, record.encode())
            }
            _ => (k, v),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn apply_log_matches_the_single_node_path(
        ops in proptest::collection::vec(gen_strategy(), 1..50),
        chunks in proptest::collection::vec(1usize..8, 50),
    ) {
        let rt = runtime();
        let dir_single = tempfile::tempdir().unwrap();
        let dir_repl = tempfile::tempdir().unwrap();
        let single = LocalStore::open(config(dir_single.path())).unwrap();
        let repl = ReplicatedStore::open(config(dir_repl.path())).unwrap();
        let entries: Vec<LogEntry> = ops
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let now = T0 + 10 * i as u64;
                // Every third write carries a distinct request id: dedupe
                // bookkeeping must not change any outcome.
                let request = (i % 3 == 0).then_some(RequestId { session: 7, seq: i as u64 });
                entry(to_op(g, now), now, request, &format!("mark-{i}"))
            })
            .collect();
        let mut expected = Vec::new();
        for e in &entries {
            match &e.mutation {
                Some(m) => expected.push(rt.block_on(single.submit(m.clone())).unwrap()),
                None => expected.push(Outcome::Ok),
            }
        }
        let mut got = Vec::new();
        let mut rest = entries.as_slice();
        let mut sizes = chunks.iter().cycle();
        while !rest.is_empty() {
            let n = (*sizes.next().unwrap()).min(rest.len());
            let (now, later) = rest.split_at(n);
            got.extend(rt.block_on(repl.apply_log(now.to_vec())).unwrap());
            rest = later;
        }
        prop_assert_eq!(&got, &expected);
        prop_assert_eq!(comparable(&repl), comparable(&single));
        prop_assert_eq!(repl.dbsize(), single.dbsize());
        prop_assert_eq!(repl.stats().expiring_keys, single.stats().expiring_keys);
        let last = format!("mark-{}", entries.len() - 1);
        prop_assert_eq!(repl.applied_mark().unwrap(), Some(b(&last)));
        // Replicated data writes never fsync by themselves.
        prop_assert_eq!(repl.stats().fsyncs, 0);
        rt.block_on(single.shutdown()).unwrap();
        rt.block_on(repl.shutdown()).unwrap();
    }
}

/// The contract of `LogEntry::retry`: only a resend consults the record. A
/// first proposal is applied as new (the replication layer guarantees it
/// has no record), and still leaves a record for its own resends.
#[test]
fn first_attempts_skip_the_dedupe_lookup() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = ReplicatedStore::open(config(dir.path())).unwrap();
    let id = RequestId { session: 7, seq: 3 };
    let first = |mark: &str| LogEntry {
        retry: false,
        ..entry(Some(incr("n")), 100, Some(id), mark)
    };
    let out = rt.block_on(store.apply_log(vec![first("1")])).unwrap();
    assert_eq!(out, vec![Outcome::Int(1)]);
    // A resend finds the first proposal's record: not applied again.
    let out = rt
        .block_on(store.apply_log(vec![entry(Some(incr("n")), 100, Some(id), "2")]))
        .unwrap();
    assert_eq!(out, vec![Outcome::Int(1)]);
    assert_eq!(value(&store, "n", 100), Some(b("1")));
    // A (contract-breaking) second "first" proposal is not looked up.
    let out = rt.block_on(store.apply_log(vec![first("3")])).unwrap();
    assert_eq!(out, vec![Outcome::Int(2)]);

    // One record holds a whole group, stamped with its latest time: a
    // resend of its earlier request (older time) still finds it.
    let a = RequestId { session: 8, seq: 1 };
    let c = RequestId { session: 8, seq: 2 };
    let fresh = |now_ms: u64, id: RequestId, mark: &str| LogEntry {
        retry: false,
        ..entry(Some(incr("m")), now_ms, Some(id), mark)
    };
    let out = rt
        .block_on(store.apply_log(vec![fresh(100, a, "4"), fresh(150, c, "5")]))
        .unwrap();
    assert_eq!(out, vec![Outcome::Int(1), Outcome::Int(2)]);
    let out = rt
        .block_on(store.apply_log(vec![
            entry(Some(incr("m")), 150, Some(c), "6"),
            entry(Some(incr("m")), 100, Some(a), "7"),
            entry(Some(incr("m")), 99, Some(a), "8"),
        ]))
        .unwrap();
    // The last one has another time: a different request, applied.
    assert_eq!(out, vec![Outcome::Int(2), Outcome::Int(1), Outcome::Int(3)]);
    rt.block_on(store.shutdown()).unwrap();
}

#[test]
fn a_resend_finds_requests_recorded_before_and_after_the_groups_first_lookup() {
    // The group indexes its records at its first lookup and keeps the
    // index up to date after that; both halves must answer resends.
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = ReplicatedStore::open(config(dir.path())).unwrap();
    let first = |op: Op, seq: u64, mark: &str| {
        let mut e = entry(Some(op), 100, Some(RequestId { session: 7, seq }), mark);
        e.retry = false;
        e
    };
    let resend = |op: Op, seq: u64, mark: &str| {
        entry(Some(op), 100, Some(RequestId { session: 7, seq }), mark)
    };
    let out = rt
        .block_on(store.apply_log(vec![
            first(incr("a"), 1, "1"),
            first(incr("a"), 2, "2"),
            // The group's first lookup: indexes requests 1 and 2.
            resend(incr("a"), 1, "3"),
            first(incr("a"), 3, "4"),
            // Recorded after the index was built.
            resend(incr("a"), 3, "5"),
            resend(incr("a"), 2, "6"),
        ]))
        .unwrap();
    assert_eq!(
        out,
        vec![
            Outcome::Int(1),
            Outcome::Int(2),
            Outcome::Int(1),
            Outcome::Int(3),
            Outcome::Int(3),
            Outcome::Int(2),
        ]
    );
    assert_eq!(value(&store, "a", 100), Some(b("3")));
    rt.block_on(store.shutdown()).unwrap();
}

/// A retry record keeps small answers only: a large one (GETDEL of a big
/// value, the reads of EXEC) would make the record of a group of such
/// writes larger than the engine stores, and stop every replica.
#[test]
fn a_large_answer_is_not_kept_for_a_resend() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = ReplicatedStore::open(config(dir.path())).unwrap();
    let wide = |op: Op, request, mark: &str| LogEntry {
        limits: Limits {
            key_size_bytes_max: 64,
            value_size_bytes_max: 1 << 20,
        },
        ..entry(Some(op), 300, request, mark)
    };
    let big = b(&"v".repeat(20 * 1024));
    let out = rt
        .block_on(store.apply_log(vec![wide(
            Op::Set {
                key: b("k"),
                value: big.clone(),
                condition: SetCondition::Always,
                expiry: SetExpiry::Clear,
                return_old: false,
            },
            None,
            "1",
        )]))
        .unwrap();
    assert_eq!(out, vec![Outcome::Ok]);
    let id = RequestId { session: 3, seq: 1 };
    let getdel = || wide(Op::GetDel { key: b("k") }, Some(id), "2");
    let out = rt.block_on(store.apply_log(vec![getdel()])).unwrap();
    assert_eq!(out, vec![Outcome::Bulk(big)], "the first answer is whole");
    let out = rt.block_on(store.apply_log(vec![getdel()])).unwrap();
    assert_eq!(
        out,
        vec![Outcome::Refused(MutationError::OutcomeNotKept)],
        "a resend is not applied again, and says its answer was not kept"
    );
}

#[test]
fn dedupe_applies_a_request_once() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = ReplicatedStore::open(config(dir.path())).unwrap();
    let id = RequestId { session: 1, seq: 1 };
    // Twice in the same group.
    let out = rt
        .block_on(store.apply_log(vec![
            entry(Some(incr("n")), 100, Some(id), "1"),
            entry(Some(incr("n")), 100, Some(id), "2"),
        ]))
        .unwrap();
    assert_eq!(out, vec![Outcome::Int(1), Outcome::Int(1)]);
    assert_eq!(value(&store, "n", 100), Some(b("1")));
    // Again in a later group: the first outcome, not applied.
    let out = rt
        .block_on(store.apply_log(vec![entry(Some(incr("n")), 100, Some(id), "3")]))
        .unwrap();
    assert_eq!(out, vec![Outcome::Int(1)]);
    assert_eq!(value(&store, "n", 100), Some(b("1")));
    // Another time, or no id: a new request.
    let out = rt
        .block_on(store.apply_log(vec![
            entry(Some(incr("n")), 101, Some(id), "4"),
            entry(Some(incr("n")), 100, None, "5"),
            entry(Some(incr("n")), 100, None, "6"),
        ]))
        .unwrap();
    assert_eq!(out, vec![Outcome::Int(2), Outcome::Int(3), Outcome::Int(4)]);

    // A refusal is stored and replayed too, even once it would succeed.
    let refused = RequestId { session: 2, seq: 9 };
    let out = rt
        .block_on(store.apply_log(vec![
            entry(Some(set("s", "abc")), 200, None, "7"),
            entry(Some(incr("s")), 200, Some(refused), "8"),
            entry(Some(set("s", "5")), 200, None, "9"),
        ]))
        .unwrap();
    assert_eq!(
        out[1],
        Outcome::Refused(MutationError::NotInteger),
        "{out:?}"
    );
    let out = rt
        .block_on(store.apply_log(vec![entry(Some(incr("s")), 200, Some(refused), "10")]))
        .unwrap();
    assert_eq!(out, vec![Outcome::Refused(MutationError::NotInteger)]);
    assert_eq!(value(&store, "s", 200), Some(b("5")));

    // The records survive a restart.
    rt.block_on(store.shutdown()).unwrap();
    drop(store);
    let store = ReplicatedStore::open(config(dir.path())).unwrap();
    let out = rt
        .block_on(store.apply_log(vec![entry(Some(incr("n")), 100, Some(id), "11")]))
        .unwrap();
    assert_eq!(out, vec![Outcome::Int(1)]);
    assert_eq!(value(&store, "n", 100), Some(b("4")));

    // Eviction: records with now_ms < 200 go (ids at 100 and 101), the one
    // at 200 stays; `max` bounds one call.
    assert_eq!(rt.block_on(store.evict_requests(200, 1)).unwrap(), 1);
    assert_eq!(rt.block_on(store.evict_requests(200, 100)).unwrap(), 1);
    assert_eq!(rt.block_on(store.evict_requests(200, 100)).unwrap(), 0);
    // The applied mark shares the key prefix and must survive any eviction.
    assert_eq!(rt.block_on(store.evict_requests(u64::MAX, 100)).unwrap(), 1);
    assert_eq!(store.applied_mark().unwrap(), Some(b("11")));
    // An evicted id applies again.
    let out = rt
        .block_on(store.apply_log(vec![entry(Some(incr("n")), 100, Some(id), "12")]))
        .unwrap();
    assert_eq!(out, vec![Outcome::Int(5)]);
    rt.block_on(store.shutdown()).unwrap();
}

#[test]
fn applied_mark_is_written_with_the_batch_and_survives_reopen() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = ReplicatedStore::open(config(dir.path())).unwrap();
    assert_eq!(store.applied_mark().unwrap(), None);
    assert_eq!(store.snapshot().applied_mark().unwrap(), None);
    let out = rt
        .block_on(store.apply_log(vec![
            entry(None, 1, None, "1"),
            entry(Some(set("a", "x")), 1, None, "2"),
            entry(None, 1, None, "3"),
        ]))
        .unwrap();
    assert_eq!(out, vec![Outcome::Ok, Outcome::Ok, Outcome::Ok]);
    assert_eq!(store.applied_mark().unwrap(), Some(b("3")));
    let before = store.snapshot();
    rt.block_on(store.apply_log(vec![entry(Some(set("b", "y")), 1, None, "4")]))
        .unwrap();
    // A snapshot's mark matches its own data.
    assert_eq!(before.applied_mark().unwrap(), Some(b("3")));
    assert!(before.get(b"b", 1).unwrap().is_none());
    let after = store.snapshot();
    assert_eq!(after.applied_mark().unwrap(), Some(b("4")));
    assert!(after.get(b"b", 1).unwrap().is_some());
    drop((before, after));
    // Only blank entries still move the mark.
    rt.block_on(store.apply_log(vec![entry(None, 1, None, "5")]))
        .unwrap();
    assert_eq!(store.applied_mark().unwrap(), Some(b("5")));
    // An empty call changes nothing.
    assert!(rt.block_on(store.apply_log(Vec::new())).unwrap().is_empty());
    assert_eq!(store.applied_mark().unwrap(), Some(b("5")));

    rt.block_on(store.shutdown()).unwrap();
    drop(store);
    let store = ReplicatedStore::open(config(dir.path())).unwrap();
    assert_eq!(store.applied_mark().unwrap(), Some(b("5")));
    assert_eq!(store.dbsize(), 2);
    assert_eq!(value(&store, "a", 1), Some(b("x")));
    rt.block_on(store.shutdown()).unwrap();
}

#[test]
fn flushall_in_the_middle_of_a_group() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = ReplicatedStore::open(config(dir.path())).unwrap();
    let flush_id = RequestId { session: 3, seq: 1 };
    let out = rt
        .block_on(store.apply_log(vec![
            entry(Some(set("a", "1")), 10, None, "1"),
            entry(Some(set("b", "2")), 10, None, "2"),
            entry(Some(Op::FlushAll), 10, Some(flush_id), "3"),
            entry(Some(set("c", "3")), 10, None, "4"),
            entry(Some(incr("d")), 10, None, "5"),
        ]))
        .unwrap();
    assert_eq!(
        out,
        vec![
            Outcome::Ok,
            Outcome::Ok,
            Outcome::Ok,
            Outcome::Ok,
            Outcome::Int(1)
        ]
    );
    assert_eq!(value(&store, "a", 10), None);
    assert_eq!(value(&store, "b", 10), None);
    assert_eq!(value(&store, "c", 10), Some(b("3")));
    assert_eq!(value(&store, "d", 10), Some(b("1")));
    assert_eq!(store.dbsize(), 2);
    assert_eq!(store.applied_mark().unwrap(), Some(b("5")));
    // A snapshot taken before a FLUSHALL keeps its data and mark (a snapshot
    // transfer in progress must not see the clear).
    let before = store.snapshot();
    let exported_before = export(&store);
    // The FLUSHALL's own dedupe record survived its clear: a retry is a no-op.
    let out = rt
        .block_on(store.apply_log(vec![entry(Some(Op::FlushAll), 10, Some(flush_id), "6")]))
        .unwrap();
    assert_eq!(out, vec![Outcome::Ok]);
    assert_eq!(store.dbsize(), 2);
    assert_eq!(store.applied_mark().unwrap(), Some(b("6")));
    rt.block_on(store.apply_log(vec![entry(Some(Op::FlushAll), 11, None, "7")]))
        .unwrap();
    assert_eq!(store.dbsize(), 0);
    assert_eq!(store.applied_mark().unwrap(), Some(b("7")));
    let still: Vec<_> = before.export().map(Result::unwrap).collect();
    assert_eq!(still, exported_before);
    assert_eq!(before.applied_mark().unwrap(), Some(b("5")));
    drop(before);
    rt.block_on(store.apply_log(vec![
        entry(Some(set("c", "3")), 12, None, "8"),
        entry(Some(set("d", "4")), 12, None, "9"),
    ]))
    .unwrap();
    // Counters are right after a restart.
    rt.block_on(store.shutdown()).unwrap();
    drop(store);
    let store = ReplicatedStore::open(config(dir.path())).unwrap();
    assert_eq!(store.dbsize(), 2);
    assert_eq!(store.applied_mark().unwrap(), Some(b("9")));
    rt.block_on(store.shutdown()).unwrap();
}

/// A resend after a FLUSHALL is answered from the record of its first
/// attempt, before the FLUSHALL: whether the entries come in one call or
/// one by one, every replica must decide alike.
#[test]
fn grouping_does_not_change_decisions_around_flushall() {
    let rt = runtime();
    let id = RequestId { session: 4, seq: 4 };
    let entries = vec![
        entry(Some(incr("x")), 10, Some(id), "1"),
        entry(Some(incr("x")), 10, Some(id), "2"),
        entry(Some(Op::FlushAll), 11, None, "3"),
        entry(Some(incr("x")), 10, Some(id), "4"),
        entry(Some(incr("x")), 10, Some(id), "5"),
    ];
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = ReplicatedStore::open(config(dir_a.path())).unwrap();
    let b_store = ReplicatedStore::open(config(dir_b.path())).unwrap();
    let together = rt.block_on(a.apply_log(entries.clone())).unwrap();
    let mut one_by_one = Vec::new();
    for e in entries {
        one_by_one.extend(rt.block_on(b_store.apply_log(vec![e])).unwrap());
    }
    assert_eq!(
        together,
        vec![
            Outcome::Int(1),
            Outcome::Int(1),
            Outcome::Ok,
            Outcome::Int(1),
            Outcome::Int(1)
        ]
    );
    assert_eq!(together, one_by_one);
    assert_eq!(export(&a), export(&b_store));
    // The resends after the FLUSHALL were not applied again.
    assert_eq!(value(&a, "x", 12), None);
    assert_eq!(value(&b_store, "x", 12), None);
    rt.block_on(a.shutdown()).unwrap();
    rt.block_on(b_store.shutdown()).unwrap();
}

/// The bug this guards against: dedupe records used to live with the data,
/// so FLUSHALL cleared them, and a resend of a pipeline that had been
/// applied (its client did not learn the outcome: a leader change) applied
/// the writes before the FLUSHALL a second time. `SET a` then left `a` on a
/// store that the original sequence had ended flushed.
#[test]
fn a_resent_pipeline_around_flushall_is_not_applied_again() {
    let rt = runtime();
    let id = |seq| Some(RequestId { session: 7, seq });
    let pipeline = |marks: [&str; 4]| {
        vec![
            entry(Some(set("a", "1")), 10, id(1), marks[0]),
            entry(Some(incr("n")), 10, id(2), marks[1]),
            entry(Some(Op::FlushAll), 10, id(3), marks[2]),
            entry(Some(incr("b")), 10, id(4), marks[3]),
        ]
    };
    let expected = vec![Outcome::Ok, Outcome::Int(1), Outcome::Ok, Outcome::Int(1)];
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = ReplicatedStore::open(config(dir_a.path())).unwrap();
    let b_store = ReplicatedStore::open(config(dir_b.path())).unwrap();
    // Store a: the first attempt in one call; store b: one entry per call.
    assert_eq!(
        rt.block_on(a.apply_log(pipeline(["1", "2", "3", "4"])))
            .unwrap(),
        expected
    );
    for e in pipeline(["1", "2", "3", "4"]) {
        rt.block_on(b_store.apply_log(vec![e])).unwrap();
    }
    // A restart in between: the records are durable with the data.
    rt.block_on(a.shutdown()).unwrap();
    drop(a);
    let a = ReplicatedStore::open(config(dir_a.path())).unwrap();
    for store in [&a, &b_store] {
        let resent = rt
            .block_on(store.apply_log(pipeline(["5", "6", "7", "8"])))
            .unwrap();
        assert_eq!(resent, expected, "a resend answers the first outcomes");
        assert_eq!(value(store, "a", 11), None, "SET a was applied again");
        assert_eq!(value(store, "n", 11), None, "INCR n was applied again");
        assert_eq!(value(store, "b", 11), Some(b("1")));
        assert_eq!(store.dbsize(), 1);
        assert_eq!(store.applied_mark().unwrap(), Some(b("8")));
    }
    // The same state; the records differ only in how they are grouped.
    let state = |store: &Store| {
        let mut all = export(store);
        all.retain(|(k, _)| !is_dedupe_record(k));
        all
    };
    assert_eq!(state(&a), state(&b_store));
    rt.block_on(a.shutdown()).unwrap();
    rt.block_on(b_store.shutdown()).unwrap();
}

/// A crash inside FLUSHALL (or a snapshot install) leaves the data keyspace
/// cleared and no applied mark, so the replication layer replays the log
/// from the start. The dedupe records survive such a clear; if they stayed,
/// a replayed resend would find the record its own first proposal wrote,
/// be skipped on this replica alone, and every later outcome would differ
/// from the other replicas'. Opening without a mark drops them.
#[test]
fn a_replay_after_a_crash_inside_flushall_decides_like_the_other_replicas() {
    let rt = runtime();
    let id = |seq| Some(RequestId { session: 7, seq });
    // The first entry is a resend (its record is looked up), the second a
    // first proposal (it is not: see `first_attempts_skip_the_dedupe_lookup`).
    let log = || {
        let mut first_proposal = entry(Some(incr("n")), 10, id(2), "2");
        first_proposal.retry = false;
        vec![
            entry(Some(incr("n")), 10, id(1), "1"),
            first_proposal,
            entry(Some(Op::FlushAll), 10, None, "3"),
        ]
    };
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    // B never crashes.
    let b_store = ReplicatedStore::open(config(dir_b.path())).unwrap();
    let expected = rt.block_on(b_store.apply_log(log())).unwrap();
    assert_eq!(
        expected,
        vec![Outcome::Int(1), Outcome::Int(2), Outcome::Ok]
    );
    // A applies the first two entries, then "crashes" inside the FLUSHALL:
    // its data keyspace is cleared (mark included), nothing else written.
    let a = ReplicatedStore::open(config(dir_a.path())).unwrap();
    rt.block_on(a.apply_log(log()[..2].to_vec())).unwrap();
    rt.block_on(a.shutdown()).unwrap();
    drop(a);
    {
        let (db, data, _) = raw_engine(dir_a.path());
        data.clear().unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    let a = ReplicatedStore::open(config(dir_a.path())).unwrap();
    assert_eq!(a.applied_mark().unwrap(), None);
    // The replication layer replays from the first entry.
    let replayed = rt.block_on(a.apply_log(log())).unwrap();
    assert_eq!(replayed, expected, "the replay decided otherwise");
    // And a later resend is answered alike on both.
    let resend = || vec![entry(Some(incr("n")), 10, id(2), "4")];
    assert_eq!(
        rt.block_on(a.apply_log(resend())).unwrap(),
        rt.block_on(b_store.apply_log(resend())).unwrap()
    );
    assert_eq!(export(&a), export(&b_store));
    rt.block_on(a.shutdown()).unwrap();
    rt.block_on(b_store.shutdown()).unwrap();
}

/// Data directories written before the dedupe keyspace existed hold their
/// records in the data keyspace: opening moves them, and they keep
/// answering resends (and survive a FLUSHALL).
#[test]
fn dedupe_records_of_an_older_layout_are_moved_on_open() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = ReplicatedStore::open(config(dir.path())).unwrap();
    let ids: Vec<_> = (0..3).map(|seq| RequestId { session: 9, seq }).collect();
    for (i, id) in ids.iter().enumerate() {
        let mark = format!("{}", i + 1);
        rt.block_on(store.apply_log(vec![entry(Some(incr("n")), 10, Some(*id), &mark)]))
            .unwrap();
    }
    rt.block_on(store.shutdown()).unwrap();
    drop(store);
    // Rewrite the directory into the older layout with the engine itself.
    {
        let (db, data, dedupe) = raw_engine(dir.path());
        let records: Vec<_> = dedupe.iter().map(|g| g.into_inner().unwrap()).collect();
        assert_eq!(records.len(), 3, "one record per group");
        let mut batch = db.batch();
        // More records than one migration batch (4,096), so the move takes
        // several passes: copies of a real record under other keys (an
        // older time and another session), as an old layout would hold.
        let template = records[0].1.clone();
        for seq in 0..10_000u64 {
            let mut key = b"mr".to_vec();
            key.extend_from_slice(&5u64.to_be_bytes());
            key.extend_from_slice(&100u64.to_be_bytes());
            key.extend_from_slice(&seq.to_be_bytes());
            batch.insert(&data, key, template.clone());
        }
        for (key, value) in records {
            batch.remove(&dedupe, key.clone());
            batch.insert(&data, key, value);
        }
        batch.commit().unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    let store = ReplicatedStore::open(config(dir.path())).unwrap();
    let exported = export(&store);
    assert_eq!(
        exported.iter().filter(|(k, _)| is_dedupe_record(k)).count(),
        10_003,
        "the records are in the export: {exported:?}"
    );
    rt.block_on(store.apply_log(vec![entry(Some(Op::FlushAll), 11, None, "4")]))
        .unwrap();
    for (i, id) in ids.iter().enumerate() {
        let mark = format!("{}", i + 5);
        let out = rt
            .block_on(store.apply_log(vec![entry(Some(incr("n")), 10, Some(*id), &mark)]))
            .unwrap();
        assert_eq!(
            out,
            vec![Outcome::Int(i as i64 + 1)],
            "answered, not applied"
        );
    }
    assert_eq!(value(&store, "n", 12), None);
    rt.block_on(store.shutdown()).unwrap();
    drop(store);
    // Nothing is left in the data keyspace to move again.
    let (_db, data, _) = raw_engine(dir.path());
    let left = data
        .prefix(b"mr")
        .map(|g| g.key().unwrap())
        .filter(|k| is_dedupe_record(k))
        .count();
    assert_eq!(left, 0);
}

#[test]
fn export_then_install_reproduces_the_store() {
    let rt = runtime();
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = ReplicatedStore::open(config(dir_a.path())).unwrap();
    let far = 9_000_000_000_000;
    rt.block_on(a.apply_log(vec![
        entry(Some(set("plain", "v")), 10, None, "1"),
        entry(
            Some(Op::Set {
                key: b("expiring"),
                value: b("e"),
                condition: SetCondition::Always,
                expiry: SetExpiry::At(far),
                return_old: false,
            }),
            10,
            None,
            "2",
        ),
        entry(Some(set("", "empty key")), 10, None, "3"),
        entry(
            Some(incr("n")),
            10,
            Some(RequestId { session: 1, seq: 2 }),
            "4",
        ),
    ]))
    .unwrap();
    let source = export(&a);
    // Data, expiry index, counters, dedupe record, applied mark.
    for prefix in [&b"k"[..], b"x", b"mcounts", b"mraft.applied", b"mr\0"] {
        assert!(
            source.iter().any(|(k, _)| k.starts_with(prefix)),
            "{prefix:?} missing from {source:?}"
        );
    }

    let b_store = ReplicatedStore::open(config(dir_b.path())).unwrap();
    rt.block_on(b_store.apply_log(vec![
        entry(Some(set("old", "gone")), 10, None, "old-1"),
        entry(Some(set("plain", "old value")), 10, None, "old-2"),
    ]))
    .unwrap();
    let snap = a.snapshot();
    let mark = snap.applied_mark().unwrap().unwrap();
    rt.block_on(b_store.install(Box::new(snap.export()), mark, 1))
        .unwrap();
    assert_eq!(export(&b_store), source);
    assert_eq!(b_store.dbsize(), a.dbsize());
    assert_eq!(b_store.dbsize(), 4);
    assert_eq!(b_store.stats().expiring_keys, 1);
    assert_eq!(value(&b_store, "old", 10), None);
    assert_eq!(value(&b_store, "plain", 10), Some(b("v")));
    assert_eq!(b_store.applied_mark().unwrap(), Some(b("4")));
    // The dedupe record came along: a retry is answered, not applied.
    let out = rt
        .block_on(b_store.apply_log(vec![entry(
            Some(incr("n")),
            10,
            Some(RequestId { session: 1, seq: 2 }),
            "5",
        )]))
        .unwrap();
    assert_eq!(out, vec![Outcome::Int(1)]);
    assert_eq!(value(&b_store, "n", 10), Some(b("1")));
    rt.block_on(b_store.shutdown()).unwrap();
    drop(b_store);
    let b_store = ReplicatedStore::open(config(dir_b.path())).unwrap();
    assert_eq!(b_store.dbsize(), 4);
    assert_eq!(b_store.stats().expiring_keys, 1);
    assert_eq!(b_store.applied_mark().unwrap(), Some(b("5")));
    rt.block_on(b_store.shutdown()).unwrap();
    rt.block_on(a.shutdown()).unwrap();
}

#[test]
fn install_of_100k_keys() {
    let rt = runtime();
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = ReplicatedStore::open(config(dir_a.path())).unwrap();
    let keys = 100_000usize;
    let per_mset = 1000;
    let entries: Vec<LogEntry> = (0..keys / per_mset)
        .map(|i| {
            let pairs = (0..per_mset)
                .map(|j| {
                    let n = i * per_mset + j;
                    (b(&format!("key:{n:06}")), b(&format!("value {n}")))
                })
                .collect();
            let op = Op::MSet {
                pairs,
                if_none_exist: false,
            };
            entry(Some(op), 1, None, &format!("{i}"))
        })
        .collect();
    rt.block_on(a.apply_log(entries)).unwrap();
    assert_eq!(a.dbsize(), keys as u64);

    let b_store = ReplicatedStore::open(config(dir_b.path())).unwrap();
    let snap = a.snapshot();
    let mark = snap.applied_mark().unwrap().unwrap();
    rt.block_on(b_store.install(Box::new(snap.export()), mark, 1))
        .unwrap();
    assert_eq!(b_store.dbsize(), keys as u64);
    assert_eq!(value(&b_store, "key:000000", 1), Some(b("value 0")));
    assert_eq!(value(&b_store, "key:099999", 1), Some(b("value 99999")));
    let (mine, theirs) = (b_store.snapshot(), snap);
    assert!(
        mine.export()
            .map(Result::unwrap)
            .eq(theirs.export().map(Result::unwrap))
    );
    rt.block_on(b_store.shutdown()).unwrap();
    rt.block_on(a.shutdown()).unwrap();
}

/// An install that fails half-way leaves no applied mark behind, so the
/// replication layer knows to install again; bad input is Corrupt.
#[test]
fn failed_install_leaves_no_mark() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = ReplicatedStore::open(config(dir.path())).unwrap();
    rt.block_on(store.apply_log(vec![entry(Some(set("a", "1")), 1, None, "1")]))
        .unwrap();
    // A stream that breaks after more than one batch was written.
    let broken = (0..10_000u32).map(|i| {
        if i == 9_000 {
            Err(StorageError::ShuttingDown)
        } else {
            let key = format!("k{i:05}");
            let mut raw = vec![0u8];
            raw.extend_from_slice(b"v");
            Ok((Bytes::from(key), Bytes::from(raw)))
        }
    });
    let err = rt
        .block_on(store.install(Box::new(broken), b("snap"), 1))
        .unwrap_err();
    assert!(matches!(err, StorageError::ShuttingDown), "{err}");
    assert_eq!(store.applied_mark().unwrap(), None);
    assert_eq!(value(&store, "a", 1), None);
    // Counters match what was written before the break (two full batches).
    assert_eq!(store.dbsize(), 8192);

    for bad in [
        vec![(b("kb"), b("\0x")), (b("ka"), b("\0y"))], // out of order
        vec![(b("z"), b(""))],                          // unknown tag
        vec![(b("kk"), b("\x07bad record"))],           // record does not decode
        vec![(b(""), b(""))],                           // empty key
    ] {
        let err = rt
            .block_on(store.install(Box::new(bad.into_iter().map(Ok)), b("snap"), 1))
            .unwrap_err();
        assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
        assert_eq!(store.applied_mark().unwrap(), None);
    }
    // The store still works, and a good install completes.
    let good = vec![(b("kgood"), b("\0v"))];
    rt.block_on(store.install(Box::new(good.into_iter().map(Ok)), b("snap"), 1))
        .unwrap();
    assert_eq!(store.applied_mark().unwrap(), Some(b("snap")));
    assert_eq!(store.dbsize(), 1);
    assert_eq!(value(&store, "good", 1), Some(b("v")));
    rt.block_on(store.shutdown()).unwrap();
}

/// Purges delete blindly between the log's first and last entries (no
/// scan); they must still delete exactly the purged prefix, in chunks,
/// across restarts (when the in-memory hint is lost) and when the purge
/// point lies past the last entry.
#[test]
fn log_store_purges_exactly_the_prefix() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = ReplicatedStore::open(config(dir.path())).unwrap();
    let log = store.log_store();
    let indexes = |log: &strata_storage::LogStore| {
        log.range(0, u64::MAX, usize::MAX, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
    };
    // More than one purge chunk (16,384 tombstones).
    let n = 40_000u64;
    for start in (1..=n).step_by(10_000) {
        log.append((start..start + 10_000).map(|i| (i, b("x"))).collect())
            .unwrap();
    }
    log.purge_upto(20_000).unwrap();
    assert_eq!(indexes(&log), (20_001..=n).collect::<Vec<_>>());
    // A purge below what is already gone changes nothing.
    log.purge_upto(5).unwrap();
    assert_eq!(indexes(&log).len(), 20_000);
    log.purge_upto(n - 2).unwrap();
    assert_eq!(indexes(&log), vec![n - 1, n]);

    drop(log);
    rt.block_on(store.shutdown()).unwrap();
    drop(store);
    let store = ReplicatedStore::open(config(dir.path())).unwrap();
    let log = store.log_store();
    assert_eq!(indexes(&log), vec![n - 1, n]);
    log.append(vec![(n + 1, b("y"))]).unwrap();
    // Past the last entry: everything goes, nothing is written beyond.
    log.purge_upto(n + 1_000_000).unwrap();
    assert_eq!(indexes(&log), Vec::<u64>::new());
    assert_eq!(log.last().unwrap(), None);
    log.append(vec![(n + 2, b("z"))]).unwrap();
    assert_eq!(indexes(&log), vec![n + 2]);
    drop(log);
    rt.block_on(store.shutdown()).unwrap();
}

#[test]
fn log_store_appends_reads_truncates_purges_and_survives_reopen() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = ReplicatedStore::open(config(dir.path())).unwrap();
    let log = store.log_store();
    assert_eq!(log.last().unwrap(), None);
    assert_eq!(log.get_meta("vote").unwrap(), None);
    let payload = |i: u64| Bytes::from(format!("entry {i}"));
    log.append((1..=10).map(|i| (i, payload(i))).collect())
        .unwrap();
    log.append(vec![(11, payload(11))]).unwrap();
    let indexes = |v: Vec<(u64, Bytes)>| v.into_iter().map(|(i, _)| i).collect::<Vec<_>>();
    let all = log.range(3, 7, 100, usize::MAX).unwrap();
    assert_eq!(all, (3..7).map(|i| (i, payload(i))).collect::<Vec<_>>());
    assert_eq!(indexes(log.range(3, 7, 2, usize::MAX).unwrap()), vec![3, 4]);
    // "entry 3" is 7 bytes: the limit is reached after the second entry.
    assert_eq!(indexes(log.range(3, 7, 100, 10).unwrap()), vec![3, 4]);
    // At least one entry, whatever the limits.
    assert_eq!(indexes(log.range(3, 7, 0, 0).unwrap()), vec![3]);
    assert!(log.range(7, 7, 100, usize::MAX).unwrap().is_empty());
    assert!(log.range(50, 60, 100, usize::MAX).unwrap().is_empty());
    assert_eq!(log.last().unwrap(), Some((11, payload(11))));

    log.truncate_from(8).unwrap();
    assert_eq!(log.last().unwrap(), Some((7, payload(7))));
    // A truncated index can be written again.
    log.append(vec![(8, b("new 8"))]).unwrap();
    assert_eq!(log.last().unwrap(), Some((8, b("new 8"))));
    log.purge_upto(2).unwrap();
    assert_eq!(
        indexes(log.range(0, 100, 100, usize::MAX).unwrap()),
        vec![3, 4, 5, 6, 7, 8]
    );
    log.put_meta("vote", b("term 3 for node 1")).unwrap();
    log.put_meta("purged", b("2")).unwrap();
    log.put_meta("vote", b("term 4 for node 2")).unwrap();
    assert_eq!(log.get_meta("vote").unwrap(), Some(b("term 4 for node 2")));
    let fsyncs = store.stats().fsyncs;
    log.sync().unwrap();
    assert_eq!(store.stats().fsyncs, fsyncs + 1);

    // The log and the data are separate: FLUSHALL leaves the log alone.
    rt.block_on(store.apply_log(vec![entry(Some(Op::FlushAll), 1, None, "8")]))
        .unwrap();
    assert_eq!(log.last().unwrap(), Some((8, b("new 8"))));

    drop(log);
    rt.block_on(store.shutdown()).unwrap();
    drop(store);
    let store = ReplicatedStore::open(config(dir.path())).unwrap();
    let log = store.log_store();
    assert_eq!(
        indexes(log.range(0, u64::MAX, 100, usize::MAX).unwrap()),
        vec![3, 4, 5, 6, 7, 8]
    );
    assert_eq!(log.last().unwrap(), Some((8, b("new 8"))));
    assert_eq!(log.get_meta("vote").unwrap(), Some(b("term 4 for node 2")));
    assert_eq!(log.get_meta("purged").unwrap(), Some(b("2")));
    log.purge_upto(u64::MAX).unwrap();
    assert_eq!(log.last().unwrap(), None);
    assert_eq!(log.get_meta("vote").unwrap(), Some(b("term 4 for node 2")));
    rt.block_on(store.shutdown()).unwrap();
    // A single-node store has no log: `LocalStore` has no `log_store`
    // (a compile error, see `LocalStore`'s doc).
}

/// A replicated store has no direct writes at all (`submit`, `enqueue`,
/// `submit_blocking` do not compile on it: see the `compile_fail` example
/// on `LocalStore`), and runs neither a sweeper nor a periodic fsync.
#[test]
fn replicated_store_runs_no_sweeper() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.fsync = FsyncPolicy::Periodic { interval_ms: 5 };
    c.expiry_sweep_interval_ms = 5;
    let store = ReplicatedStore::open(c).unwrap();

    let now = strata_storage::now_ms();
    let expiring = Op::Set {
        key: b("e"),
        value: b("v"),
        condition: SetCondition::Always,
        expiry: SetExpiry::At(now + 20),
        return_old: false,
    };
    rt.block_on(store.apply_log(vec![entry(Some(expiring), now, None, "1")]))
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // Expired to readers, but still stored: nobody swept it.
    let later = strata_storage::now_ms();
    assert_eq!(value(&store, "e", later), None);
    assert_eq!(store.dbsize(), 1);
    assert_eq!(store.stats().expiring_keys, 1);
    assert_eq!(store.stats().fsyncs, 0, "no periodic fsync");
    let due = store.due_expiries(later, 100).unwrap();
    assert_eq!(due, vec![(b("e"), now + 20)]);
    // The sweep arrives as a log entry.
    let out = rt
        .block_on(store.apply_log(vec![entry(
            Some(Op::SweepExpired { entries: due }),
            later,
            None,
            "2",
        )]))
        .unwrap();
    assert_eq!(out, vec![Outcome::Int(1)]);
    assert_eq!(store.dbsize(), 0);
    assert_eq!(store.stats().expiring_keys, 0);
    assert!(store.due_expiries(later, 100).unwrap().is_empty());
    assert!(store.counts_match_recount().unwrap());
    rt.block_on(store.shutdown()).unwrap();
}

/// The read cache in replicated mode: a key cached before a batch, then
/// written, cleared by a FLUSHALL and changed again within ONE apply, reads
/// right afterwards, both for the reads after the apply and for the
/// read-modify-writes inside it (which must not take the cached record).
#[test]
fn the_read_cache_follows_a_flushall_inside_one_apply() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = ReplicatedStore::open(config(dir.path())).unwrap();
    rt.block_on(store.apply_log(vec![
        entry(Some(set("k", "7")), 10, None, "1"),
        entry(Some(incr("n")), 10, None, "2"),
    ]))
    .unwrap();
    // Cached now, by the writer's write-through and by these reads.
    assert_eq!(value(&store, "k", 10), Some(b("7")));
    assert_eq!(value(&store, "n", 10), Some(b("1")));
    let out = rt
        .block_on(store.apply_log(vec![
            entry(Some(incr("n")), 10, None, "3"),
            entry(Some(set("k", "8")), 10, None, "4"),
            entry(Some(Op::FlushAll), 10, None, "5"),
            entry(Some(incr("n")), 10, None, "6"),
        ]))
        .unwrap();
    assert_eq!(
        out,
        vec![Outcome::Int(2), Outcome::Ok, Outcome::Ok, Outcome::Int(1)]
    );
    for _ in 0..2 {
        assert_eq!(value(&store, "k", 10), None);
        assert_eq!(value(&store, "n", 10), Some(b("1")));
    }
    let out = rt
        .block_on(store.apply_log(vec![entry(Some(incr("n")), 10, None, "7")]))
        .unwrap();
    assert_eq!(out, vec![Outcome::Int(2)]);
    assert_eq!(value(&store, "n", 10), Some(b("2")));
    rt.block_on(store.shutdown()).unwrap();
}

fn create_index_op(args: &str) -> Op {
    let parts: Vec<&[u8]> = args.split(' ').map(str::as_bytes).collect();
    let def = strata_search::IndexDef::parse(&parts).expect("valid definition");
    Op::CreateIndex {
        definition: Bytes::from(def.encode(0)),
    }
}

fn search_total(store: &Store, index: &str, query: &str) -> u64 {
    let q = strata_search::query::parse(query.as_bytes(), &strata_search::Params::default())
        .expect("valid query");
    let answer = store
        .search(index, &q, &strata_search::SearchOptions::default(), 10)
        .unwrap()
        .unwrap();
    assert_eq!(answer.hits.len() as u64, answer.total.min(10));
    answer.total
}

/// Search indexes are replicated state: two replicas applying the same
/// entries (index created mid-log, built by pages between writes) hold
/// the same bytes; an installed snapshot carries definitions, build state
/// and entries, and the receiver keeps the index exact afterwards.
#[test]
fn search_indexes_replicate_and_travel_in_snapshots() {
    let rt = runtime();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = ReplicatedStore::open(config(dirs[0].path())).unwrap();
    let b_store = ReplicatedStore::open(config(dirs[1].path())).unwrap();
    let mut entries = Vec::new();
    for i in 0..50 {
        entries.push(entry(
            Some(set(&format!("doc:{i}"), &format!("word{} shared", i % 5))),
            10,
            None,
            &i.to_string(),
        ));
    }
    entries.push(entry(
        Some(create_index_op("idx PREFIX 1 doc: SCHEMA value TEXT")),
        10,
        None,
        "50",
    ));
    for i in 51..70 {
        let op = if i % 2 == 0 {
            Op::BackfillIndex { id: 1, keys_max: 4 }
        } else {
            set(&format!("doc:{}", i % 13), "rewritten shared")
        };
        entries.push(entry(Some(op), 10, None, &i.to_string()));
    }
    for (store, chunk) in [(&a, 3), (&b_store, 5)] {
        // Split differently into groups: the result must not depend on it.
        for part in entries.chunks(chunk) {
            rt.block_on(store.apply_log(part.to_vec())).unwrap();
            assert_eq!(store.search_matches_recount().unwrap(), Ok(()));
        }
    }
    assert_eq!(export(&a), export(&b_store));
    let info = a.index_info("idx").unwrap().unwrap();
    assert!(info.building, "the index is still building mid-log");

    // A third replica gets it by snapshot, then goes on applying.
    let c = ReplicatedStore::open(config(dirs[2].path())).unwrap();
    let snap = a.snapshot();
    let mark = snap.applied_mark().unwrap().unwrap();
    rt.block_on(c.install(Box::new(snap.export()), mark, 70))
        .unwrap();
    assert_eq!(export(&c), export(&a));
    let mut more = Vec::new();
    for i in 70..120 {
        let op = if i % 3 == 0 {
            set(&format!("doc:{}", i % 60), "late shared")
        } else {
            Op::BackfillIndex { id: 1, keys_max: 8 }
        };
        more.push(entry(Some(op), 10, None, &i.to_string()));
    }
    for store in [&a, &c] {
        rt.block_on(store.apply_log(more.clone())).unwrap();
        assert_eq!(store.search_matches_recount().unwrap(), Ok(()));
        assert!(!store.index_info("idx").unwrap().unwrap().building);
    }
    assert_eq!(export(&a), export(&c));
    assert_eq!(search_total(&c, "idx", "shared"), c.dbsize());
    assert_eq!(c.dbsize(), 53);
    for store in [a, b_store, c] {
        rt.block_on(store.shutdown()).unwrap();
    }
}
