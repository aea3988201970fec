//! The storage layer on its own: model-based against a BTreeMap across
//! reopen, concurrent read-modify-write through group commit, and recount
//! of the key counters.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use strata_storage::{
    FsyncPolicy, LocalStore, Mutation, Op, Outcome, SetCondition, SetExpiry, StorageConfig, Store,
};

fn config(dir: &std::path::Path, fsync: FsyncPolicy) -> StorageConfig {
    let mut c = StorageConfig::new(dir);
    c.fsync = fsync;
    c.cache_size_bytes = 4 * 1024 * 1024;
    c.memtable_size_bytes = 1024 * 1024;
    c.journal_size_bytes_max = 64 * 1024 * 1024;
    c.key_size_bytes_max = 64;
    c.value_size_bytes_max = 256;
    // Prefetching switches itself on when engine reads are slow, as they
    // can be in a debug build; it also keeps writes off the inline path,
    // which these tests drive. The prefetch test sets its own.
    c.prefetch_slow_read_ns = u64::MAX;
    c
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Two workers, as on the CI machine: concurrent submitters really race.
fn multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[derive(Clone, Debug)]
enum ModelOp {
    Set(u8, Vec<u8>),
    SetNx(u8, Vec<u8>),
    Del(Vec<u8>),
    MSet(Vec<(u8, Vec<u8>)>),
    Append(u8, Vec<u8>),
    Rename(u8, u8),
    FlushAll,
    Reopen,
}

fn key(k: u8) -> Bytes {
    // Includes the empty key and a NUL byte.
    match k {
        0 => Bytes::new(),
        1 => Bytes::from_static(b"\0"),
        n => Bytes::from(format!("k{n}")),
    }
}

fn op_strategy() -> impl Strategy<Value = ModelOp> {
    let k = 0u8..12;
    let v = proptest::collection::vec(any::<u8>(), 0..40);
    prop_oneof![
        4 => (k.clone(), v.clone()).prop_map(|(k, v)| ModelOp::Set(k, v)),
        1 => (k.clone(), v.clone()).prop_map(|(k, v)| ModelOp::SetNx(k, v)),
        2 => proptest::collection::vec(k.clone(), 1..4).prop_map(ModelOp::Del),
        2 => proptest::collection::vec((k.clone(), v.clone()), 1..5).prop_map(ModelOp::MSet),
        1 => (k.clone(), v).prop_map(|(k, v)| ModelOp::Append(k, v)),
        1 => (k.clone(), k).prop_map(|(a, b)| ModelOp::Rename(a, b)),
        1 => Just(ModelOp::FlushAll),
        1 => Just(ModelOp::Reopen),
    ]
}

fn check_equal(store: &Store, model: &BTreeMap<Bytes, Bytes>) {
    let (pairs, more) = store.range(b"", &[0xff; 8], 10_000, 1).unwrap();
    assert!(!more);
    let got: BTreeMap<Bytes, Bytes> = pairs.into_iter().collect();
    assert_eq!(&got, model);
    assert_eq!(store.dbsize(), model.len() as u64);
    // The upkeep of the key counters (`state.rs`) against a recount.
    assert!(store.counts_match_recount().unwrap());
    // Point reads go through the read cache: twice, so the second round is
    // answered from what the first one cached (present and absent keys).
    for _ in 0..2 {
        for k in 0..12u8 {
            let got = store.get(&key(k), 1).unwrap().map(|r| r.value);
            assert_eq!(got.as_ref(), model.get(&key(k)), "GET of key {k}");
        }
    }
}

/// One write, through one of three paths in turn: committed inline on this
/// thread (`apply_inline`; the store is `--fsync never`, and the writer is
/// idle, so it always can), through an inline commit round
/// (`apply_inline_round`), or through the writer thread's queue. All must
/// agree with the model, in any interleaving.
fn write(
    rt: &tokio::runtime::Runtime,
    store: &LocalStore,
    i: usize,
    m: Mutation,
) -> strata_storage::Result<Outcome> {
    let flushall = matches!(m.op, Op::FlushAll);
    match i % 3 {
        0 => {
            let inline = store.apply_inline(std::slice::from_ref(&m));
            if flushall {
                // It fsyncs: never on a network thread.
                assert!(inline.is_none(), "FLUSHALL was committed inline");
                return rt.block_on(store.submit(m));
            }
            let mut outcomes =
                inline.expect("an idle writer lets a never-fsync store commit inline");
            assert_eq!(outcomes.len(), 1);
            outcomes.remove(0)
        }
        1 => match rt.block_on(store.apply_inline_round(vec![m], i.is_multiple_of(2))) {
            Ok(mut outcomes) => {
                assert!(!flushall, "FLUSHALL was committed in a round");
                assert_eq!(outcomes.len(), 1);
                outcomes.remove(0)
            }
            Err(mut back) => {
                assert!(flushall, "an idle writer lets a round commit inline");
                rt.block_on(store.submit(back.remove(0)))
            }
        },
        _ => rt.block_on(store.submit(m)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn store_matches_a_btreemap_across_reopen(ops in proptest::collection::vec(op_strategy(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        let mut store = LocalStore::open(config(dir.path(), FsyncPolicy::Never)).unwrap();
        let mut model: BTreeMap<Bytes, Bytes> = BTreeMap::new();
        for (i, op) in ops.into_iter().enumerate() {
            let m = |op| Mutation { now_ms: 1, op };
            match op {
                ModelOp::Set(k, v) => {
                    let r = write(&rt, &store, i, m(Op::Set { key: key(k), value: v.clone().into(), condition: SetCondition::Always, expiry: SetExpiry::Clear, return_old: false })).unwrap();
                    prop_assert_eq!(r, Outcome::Ok);
                    model.insert(key(k), v.into());
                }
                ModelOp::SetNx(k, v) => {
                    let r = write(&rt, &store, i, m(Op::Set { key: key(k), value: v.clone().into(), condition: SetCondition::IfAbsent, expiry: SetExpiry::Clear, return_old: false })).unwrap();
                    match model.entry(key(k)) {
                        std::collections::btree_map::Entry::Occupied(_) => {
                            prop_assert_eq!(r, Outcome::Nil);
                        }
                        std::collections::btree_map::Entry::Vacant(slot) => {
                            prop_assert_eq!(r, Outcome::Ok);
                            slot.insert(v.into());
                        }
                    }
                }
                ModelOp::Del(ks) => {
                    let keys: Vec<Bytes> = ks.iter().map(|k| key(*k)).collect();
                    let r = write(&rt, &store, i, m(Op::Delete { keys: keys.clone() })).unwrap();
                    let mut n = 0;
                    for k in keys { if model.remove(&k).is_some() { n += 1; } }
                    prop_assert_eq!(r, Outcome::Int(n));
                }
                ModelOp::MSet(pairs) => {
                    let pairs: Vec<(Bytes, Bytes)> = pairs.into_iter().map(|(k, v)| (key(k), v.into())).collect();
                    let r = write(&rt, &store, i, m(Op::MSet { pairs: pairs.clone(), if_none_exist: false })).unwrap();
                    prop_assert_eq!(r, Outcome::Ok);
                    for (k, v) in pairs { model.insert(k, v); }
                }
                ModelOp::Append(k, v) => {
                    let r = write(&rt, &store, i, m(Op::Append { key: key(k), value: v.clone().into() })).unwrap();
                    let mut cur = model.get(&key(k)).map(|b| b.to_vec()).unwrap_or_default();
                    cur.extend_from_slice(&v);
                    if cur.len() > 256 {
                        prop_assert!(matches!(r, Outcome::Refused(_)));
                    } else {
                        prop_assert_eq!(r, Outcome::Int(cur.len() as i64));
                        model.insert(key(k), cur.into());
                    }
                }
                ModelOp::Rename(a, b) => {
                    let r = write(&rt, &store, i, m(Op::Rename { from: key(a), to: key(b), if_absent: false })).unwrap();
                    match model.remove(&key(a)) {
                        None => prop_assert!(matches!(r, Outcome::Refused(_))),
                        Some(v) => { prop_assert_eq!(r, Outcome::Ok); model.insert(key(b), v); }
                    }
                }
                ModelOp::FlushAll => {
                    let r = write(&rt, &store, i, m(Op::FlushAll)).unwrap();
                    prop_assert_eq!(r, Outcome::Ok);
                    model.clear();
                }
                ModelOp::Reopen => {
                    rt.block_on(store.shutdown()).unwrap();
                    drop(store);
                    store = LocalStore::open(config(dir.path(), FsyncPolicy::Never)).unwrap();
                }
            }
            check_equal(&store, &model);
        }
        rt.block_on(store.shutdown()).unwrap();
    }
}

/// Many concurrent INCRs, group-committed: none is lost or applied twice.
#[test]
fn concurrent_increments_are_serialised() {
    let dir = tempfile::tempdir().unwrap();
    let rt = multi_thread_runtime();
    let store = LocalStore::open(config(dir.path(), FsyncPolicy::Always)).unwrap();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..50 {
                    let op = Op::IncrBy {
                        key: Bytes::from_static(b"n"),
                        delta: 1,
                    };
                    s.submit(Mutation { now_ms: 1, op }).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let v = store.get(b"n", 1).unwrap().unwrap();
    assert_eq!(v.value, Bytes::from_static(b"1600"));
    let stats = store.stats();
    assert_eq!(stats.mutations_committed, 1600);
    // Group commit: far fewer fsyncs than writes.
    assert!(stats.fsyncs < 1600, "fsyncs {}", stats.fsyncs);
    rt.block_on(store.shutdown()).unwrap();
}

/// The value of a live key at time 1.
fn value_of(store: &Store, key: &[u8]) -> Bytes {
    store.get(key, 1).unwrap().expect("key present").value
}

/// Connections commit inline (`--fsync periodic`) while others go through
/// the writer thread: concurrent INCRs from both paths are neither lost nor
/// applied twice, a pipeline applied inline keeps its order, and after
/// shutdown nothing is committed inline (it could not be made durable).
#[test]
fn inline_and_queued_writes_are_serialised() {
    let dir = tempfile::tempdir().unwrap();
    let rt = multi_thread_runtime();
    let periodic = FsyncPolicy::Periodic { interval_ms: 10 };
    let store = LocalStore::open(config(dir.path(), periodic)).unwrap();
    assert!(store.writes_inline());
    let incr = || Mutation {
        now_ms: 1,
        op: Op::IncrBy {
            key: Bytes::from_static(b"n"),
            delta: 1,
        },
    };
    // Nothing holds the writer yet: this one is certainly inline.
    let first = store.apply_inline(&[incr()]).expect("idle writer");
    assert_eq!(
        first.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
        vec![Outcome::Int(1)]
    );
    rt.block_on(async {
        let mut tasks = Vec::new();
        for task in 0..32u32 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..50 {
                    // Half the tasks always queue, as the text protocol and
                    // the expiry sweeper do.
                    let outcome = match task
                        .is_multiple_of(2)
                        .then(|| s.apply_inline(&[incr()]))
                        .flatten()
                    {
                        Some(mut outcomes) => outcomes.remove(0),
                        None => s.submit(incr()).await,
                    };
                    assert!(matches!(outcome, Ok(Outcome::Int(_))), "{outcome:?}");
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(value_of(&store, b"n"), Bytes::from_static(b"1601"));
    assert_eq!(store.stats().mutations_committed, 1601);

    // One inline group: outcomes in order, each seeing the ones before.
    let pipeline = vec![
        Mutation {
            now_ms: 1,
            op: Op::Set {
                key: Bytes::from_static(b"p"),
                value: Bytes::from_static(b"7"),
                condition: SetCondition::Always,
                expiry: SetExpiry::Clear,
                return_old: false,
            },
        },
        Mutation {
            now_ms: 1,
            op: Op::IncrBy {
                key: Bytes::from_static(b"p"),
                delta: 3,
            },
        },
        Mutation {
            now_ms: 1,
            op: Op::Set {
                key: Bytes::from_static(b"p"),
                value: Bytes::from_static(b"x"),
                condition: SetCondition::IfAbsent,
                expiry: SetExpiry::Clear,
                return_old: false,
            },
        },
    ];
    let outcomes: Vec<_> = store
        .apply_inline(&pipeline)
        .expect("idle writer")
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(outcomes, vec![Outcome::Ok, Outcome::Int(10), Outcome::Nil]);
    // Published before apply_inline returned.
    assert_eq!(value_of(&store, b"p"), Bytes::from_static(b"10"));

    rt.block_on(store.shutdown()).unwrap();
    assert!(store.apply_inline(&[incr()]).is_none());
    drop(store);
    let store = LocalStore::open(config(dir.path(), periodic)).unwrap();
    assert_eq!(value_of(&store, b"n"), Bytes::from_static(b"1601"));
    assert_eq!(value_of(&store, b"p"), Bytes::from_static(b"10"));
    rt.block_on(store.shutdown()).unwrap();
    drop(store);
    // `--fsync always` never commits inline: its acknowledgement waits for
    // the group's fsync on the writer thread.
    let always = LocalStore::open(config(dir.path(), FsyncPolicy::Always)).unwrap();
    assert!(!always.writes_inline());
    assert!(always.apply_inline(&[incr()]).is_none());
    rt.block_on(always.shutdown()).unwrap();
}

/// Inline commit rounds (`inline_round.rs`): the pipelines of connections
/// that are ready together are committed as one group; each keeps its order
/// and gets exactly its own outcomes; rounds are cut at the group limits, a
/// pipeline larger than a group comes back for the queue, and so does a
/// FLUSHALL or anything after shutdown; a member whose connection vanished
/// is left out.
#[test]
fn inline_rounds_commit_ready_connections_together() {
    let dir = tempfile::tempdir().unwrap();
    let periodic = FsyncPolicy::Periodic { interval_ms: 10 };
    let mut c = config(dir.path(), periodic);
    c.group_commit_mutations_max = 64;
    let store = LocalStore::open(c.clone()).unwrap();
    let incr = |key: &str| Mutation {
        now_ms: 1,
        op: Op::IncrBy {
            key: Bytes::from(key.to_string()),
            delta: 1,
        },
    };
    let tasks_count: usize = 32;
    let waves: usize = 20;
    // One scheduler thread, like `--io-threads 1`: every task that is
    // ready joins before the first one resumes.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let groups_before = store.stats().groups_committed;
    rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..tasks_count {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                for wave in 0..waves {
                    let own = format!("own{t}");
                    let pipeline = vec![incr(&own), incr("shared"), incr(&own)];
                    let outcomes = s
                        .apply_inline_round(pipeline, true)
                        .await
                        .expect("committed inline");
                    let outcomes: Vec<Outcome> = outcomes.into_iter().map(Result::unwrap).collect();
                    let n = 2 * wave as i64;
                    assert_eq!(
                        [&outcomes[0], &outcomes[2]],
                        [&Outcome::Int(n + 1), &Outcome::Int(n + 2)]
                    );
                    assert!(matches!(outcomes[1], Outcome::Int(_)));
                    // Published before the outcomes were handed back.
                    assert_eq!(
                        s.get(own.as_bytes(), 1).unwrap().unwrap().value,
                        Bytes::from((n + 2).to_string())
                    );
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let calls = (tasks_count * waves) as u64;
    assert_eq!(
        value_of(&store, b"shared"),
        Bytes::from(calls.to_string()),
        "every INCR applied exactly once"
    );
    let groups = store.stats().groups_committed - groups_before;
    // 32 pipelines of 3 fit 21 to a group of 64: at least 2 groups a wave.
    assert!(
        groups < calls / 4,
        "ready connections share groups: {groups} groups for {calls} pipelines"
    );
    assert!(
        store.stats().group_size_max <= 64,
        "rounds are cut at the limit"
    );

    rt.block_on(async {
        // Larger than a group: given back whole, in order, for the queue.
        let big: Vec<Mutation> = (0..65).map(|_| incr("big")).collect();
        let back = store.apply_inline_round(big, true).await.unwrap_err();
        assert_eq!(back.len(), 65);
        assert!(store.get(b"big", 1).unwrap().is_none(), "not applied");
        // FLUSHALL never runs inline.
        let flush = vec![Mutation {
            now_ms: 1,
            op: Op::FlushAll,
        }];
        assert_eq!(
            store
                .apply_inline_round(flush, true)
                .await
                .unwrap_err()
                .len(),
            1
        );

        // A member whose connection vanished after joining is left out.
        let mut ghost = Box::pin(store.apply_inline_round(vec![incr("ghost")], true));
        tokio::select! {
            biased;
            _ = &mut ghost => panic!("a member waits for its round"),
            _ = std::future::ready(()) => {}
        }
        drop(ghost);
        // Alone: committed at once, taking the open round with it.
        let groups_before = store.stats().groups_committed;
        let outcomes = store
            .apply_inline_round(vec![incr("alone")], false)
            .await
            .unwrap();
        assert_eq!(
            outcomes.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
            [Outcome::Int(1)]
        );
        assert_eq!(store.stats().groups_committed - groups_before, 1);
        assert!(
            store.get(b"ghost", 1).unwrap().is_none(),
            "the ghost's write was left out"
        );
        store.shutdown().await.unwrap();
        assert_eq!(
            store
                .apply_inline_round(vec![incr("late")], true)
                .await
                .unwrap_err()
                .len(),
            1,
            "nothing is committed inline after shutdown"
        );
    });
    drop(store);
    let store = LocalStore::open(c).unwrap();
    assert_eq!(value_of(&store, b"shared"), Bytes::from(calls.to_string()));
    assert_eq!(value_of(&store, b"alone"), Bytes::from_static(b"1"));
    rt.block_on(store.shutdown()).unwrap();
}

/// The member that takes a round commits at most a few groups of it in its
/// own poll; the members after them get their writes back and queue them.
/// Every write is applied exactly once either way.
#[test]
fn a_round_larger_than_its_group_limit_hands_the_rest_to_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), FsyncPolicy::Never);
    // Two pipelines of 3 fit a group of 8: 32 members make 16 groups.
    c.group_commit_mutations_max = 8;
    let store = LocalStore::open(c).unwrap();
    let incr = || Mutation {
        now_ms: 1,
        op: Op::IncrBy {
            key: Bytes::from_static(b"shared"),
            delta: 1,
        },
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (inline, queued) = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                match s
                    .apply_inline_round(vec![incr(), incr(), incr()], true)
                    .await
                {
                    Ok(outcomes) => {
                        assert!(outcomes.iter().all(|o| matches!(o, Ok(Outcome::Int(_)))));
                        true
                    }
                    Err(back) => {
                        assert_eq!(back.len(), 3, "handed back whole");
                        for m in back {
                            assert!(matches!(s.submit(m).await, Ok(Outcome::Int(_))));
                        }
                        false
                    }
                }
            }));
        }
        let mut inline = 0;
        let mut queued = 0;
        for t in tasks {
            if t.await.unwrap() {
                inline += 1;
            } else {
                queued += 1;
            }
        }
        (inline, queued)
    });
    // 4 groups (ROUND_GROUPS_MAX) of 2 members inline, the rest queued.
    assert_eq!((inline, queued), (8, 24));
    assert_eq!(value_of(&store, b"shared"), Bytes::from_static(b"96"));
    rt.block_on(store.shutdown()).unwrap();
}

/// With prefetching forced on for every group, concurrent writers in big
/// groups still apply exactly as one serial writer would: counters, appends,
/// deletes and the key count all come out right, and the path really ran.
#[test]
fn prefetched_groups_apply_exactly_like_serial_ones() {
    let dir = tempfile::tempdir().unwrap();
    let rt = multi_thread_runtime();
    let mut c = config(dir.path(), FsyncPolicy::Always);
    c.prefetch_slow_read_ns = 0;
    // The log grows to one byte per round per task.
    c.value_size_bytes_max = 4096;
    let store = LocalStore::open(c.clone()).unwrap();
    let tasks_count: u64 = 32;
    let rounds: u64 = 40;
    rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..tasks_count {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                let own = Bytes::from(format!("own{t}"));
                for r in 0..rounds {
                    let counter = Bytes::from(format!("n{}", (t + r) % 4));
                    let incr = Op::IncrBy {
                        key: counter,
                        delta: 1,
                    };
                    let append = Op::Append {
                        key: Bytes::from_static(b"log"),
                        value: Bytes::from_static(b"x"),
                    };
                    // A key of its own that exists on even rounds only.
                    let own_op = if r % 2 == 0 {
                        Op::Set {
                            key: own.clone(),
                            value: Bytes::from(format!("{r}")),
                            condition: SetCondition::IfAbsent,
                            expiry: SetExpiry::Clear,
                            return_old: false,
                        }
                    } else {
                        Op::Delete {
                            keys: vec![own.clone()],
                        }
                    };
                    for op in [incr, append, own_op] {
                        let outcome = s.submit(Mutation { now_ms: 1, op }).await.unwrap();
                        assert!(
                            !matches!(outcome, Outcome::Nil),
                            "SET NX found its key: {outcome:?}"
                        );
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let mut total = 0u64;
    for i in 0..4 {
        let v = store.get(format!("n{i}").as_bytes(), 1).unwrap().unwrap();
        total += std::str::from_utf8(&v.value)
            .unwrap()
            .parse::<u64>()
            .unwrap();
    }
    assert_eq!(total, tasks_count * rounds);
    let log = store.get(b"log", 1).unwrap().unwrap();
    assert_eq!(log.value.len() as u64, tasks_count * rounds);
    // 4 counters + the log; every own key was deleted on its last round.
    assert_eq!(store.dbsize(), 5);
    let stats = store.stats();
    assert!(
        stats.groups_prefetched > 0,
        "no group was prefetched: {:?}",
        stats.groups_prefetched
    );
    rt.block_on(store.shutdown()).unwrap();
    drop(store);
    // And the counters are durable as applied.
    let store = LocalStore::open(c).unwrap();
    assert_eq!(store.dbsize(), 5);
    rt.block_on(store.shutdown()).unwrap();
}

/// FLUSHALL then reopen: the counters are right.
#[test]
fn flushall_resets_counters_durably() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let store = LocalStore::open(config(dir.path(), FsyncPolicy::Always)).unwrap();
    let set = |k: &'static [u8]| Mutation {
        now_ms: 1,
        op: Op::Set {
            key: Bytes::from_static(k),
            value: Bytes::from_static(b"v"),
            condition: SetCondition::Always,
            expiry: SetExpiry::At(u64::MAX / 2),
            return_old: false,
        },
    };
    rt.block_on(store.submit(set(b"a"))).unwrap();
    rt.block_on(store.submit(set(b"b"))).unwrap();
    assert_eq!(store.dbsize(), 2);
    assert_eq!(store.stats().expiring_keys, 2);
    rt.block_on(store.submit(Mutation {
        now_ms: 1,
        op: Op::FlushAll,
    }))
    .unwrap();
    assert_eq!(store.dbsize(), 0);
    rt.block_on(store.submit(set(b"c"))).unwrap();
    rt.block_on(store.shutdown()).unwrap();
    drop(store);
    let store = LocalStore::open(config(dir.path(), FsyncPolicy::Always)).unwrap();
    assert_eq!(store.dbsize(), 1);
    assert_eq!(store.stats().expiring_keys, 1);
    assert!(store.get(b"a", 1).unwrap().is_none());
    rt.block_on(store.shutdown()).unwrap();
}

/// Readers racing the writer through the read cache never go back in time:
/// a GET that starts after an INCR was acknowledged sees at least its value,
/// and each reader sees every counter only grow. A small cache makes fills,
/// evictions and refused fills all happen while the counters change.
#[test]
fn reads_through_the_read_cache_never_go_back_in_time() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    const COUNTERS: usize = 8;
    const INCRS_PER_WRITER: usize = 2000;
    const WRITERS: usize = 4;
    const READERS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let rt = multi_thread_runtime();
    let mut c = config(dir.path(), FsyncPolicy::Never);
    c.read_cache_size_bytes = 16 * 1024;
    let store = LocalStore::open(c).unwrap();
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..COUNTERS).map(|_| AtomicU64::new(0)).collect());
    let done = Arc::new(AtomicBool::new(false));
    let name = |i: usize| Bytes::from(format!("counter{i}"));
    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let (store, acked, done) = (store.clone(), acked.clone(), done.clone());
            std::thread::spawn(move || {
                let mut seen = [0u64; COUNTERS];
                let mut reads = 0u64;
                let mut i = r;
                while !done.load(Ordering::Acquire) {
                    i = (i * 7 + 3) % COUNTERS;
                    let floor = acked[i].load(Ordering::Acquire);
                    let got = match store.get(&name(i), 1).unwrap() {
                        None => 0,
                        Some(rec) => std::str::from_utf8(&rec.value).unwrap().parse().unwrap(),
                    };
                    assert!(
                        got >= floor,
                        "counter{i}: read {got} after {floor} was acknowledged"
                    );
                    assert!(
                        got >= seen[i],
                        "counter{i}: read {got} after reading {}",
                        seen[i]
                    );
                    seen[i] = got;
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let (store, acked) = (store.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                for n in 0..INCRS_PER_WRITER {
                    let i = (w + n * 3) % COUNTERS;
                    let op = Op::IncrBy {
                        key: name(i),
                        delta: 1,
                    };
                    let Outcome::Int(v) = store.submit(Mutation { now_ms: 1, op }).await.unwrap()
                    else {
                        panic!("INCR answers an integer");
                    };
                    acked[i].fetch_max(v as u64, Ordering::AcqRel);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    done.store(true, Ordering::Release);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    let total: u64 = (0..COUNTERS)
        .map(|i| {
            let rec = store.get(&name(i), 1).unwrap().unwrap();
            std::str::from_utf8(&rec.value)
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(total, (WRITERS * INCRS_PER_WRITER) as u64);
    let stats = store.stats();
    assert!(reads > 100, "readers ran: {reads}");
    assert!(
        stats.read_cache_hits > 0,
        "the cache answered reads: {stats:?}"
    );
    assert!(stats.read_cache_size_bytes <= 16 * 1024);
    rt.block_on(store.shutdown()).unwrap();
}

/// A read cache of 0 bytes is off: reads still work and nothing is cached.
#[test]
fn a_zero_read_cache_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let mut c = config(dir.path(), FsyncPolicy::Never);
    c.read_cache_size_bytes = 0;
    let store = LocalStore::open(c).unwrap();
    let op = Op::IncrBy {
        key: Bytes::from_static(b"n"),
        delta: 5,
    };
    rt.block_on(store.submit(Mutation { now_ms: 1, op }))
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            store.get(b"n", 1).unwrap().unwrap().value,
            Bytes::from_static(b"5")
        );
    }
    let stats = store.stats();
    assert_eq!((stats.read_cache_hits, stats.read_cache_entries), (0, 0));
    rt.block_on(store.shutdown()).unwrap();
}

/// An MSET is all-or-nothing to GETs too, and GETs agree with snapshot
/// reads: the writer MSETs `a` and `b` to the same rising number, and
/// readers check that `b`, read after `a`, is never behind it, and that a
/// GET is never behind an MGET (one snapshot) that finished before it.
#[test]
fn gets_never_see_half_an_mset_or_fall_behind_a_snapshot() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let dir = tempfile::tempdir().unwrap();
    let rt = multi_thread_runtime();
    let store = LocalStore::open(config(dir.path(), FsyncPolicy::Never)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let number = |r: Option<strata_storage::Record>| -> u64 {
        r.map_or(0, |r| {
            std::str::from_utf8(&r.value).unwrap().parse().unwrap()
        })
    };
    let (a, b) = (Bytes::from_static(b"a"), Bytes::from_static(b"b"));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (store, done, a, b) = (store.clone(), done.clone(), a.clone(), b.clone());
            std::thread::spawn(move || {
                let mut checks = 0u64;
                while !done.load(Ordering::Acquire) {
                    let got_a = number(store.get(&a, 1).unwrap());
                    let got_b = number(store.get(&b, 1).unwrap());
                    assert!(got_b >= got_a, "GET b = {got_b} after GET a = {got_a}");
                    let both = store.get_many(&[a.clone(), b.clone()], 1).unwrap();
                    let snap_a = number(both[0].clone());
                    assert_eq!(snap_a, number(both[1].clone()), "MGET saw half an MSET");
                    let after = number(store.get(&a, 1).unwrap());
                    assert!(after >= snap_a, "GET a = {after} after MGET saw {snap_a}");
                    checks += 1;
                }
                checks
            })
        })
        .collect();
    rt.block_on(async {
        for n in 1..=3000u64 {
            let v = Bytes::from(n.to_string());
            let op = Op::MSet {
                pairs: vec![(a.clone(), v.clone()), (b.clone(), v)],
                if_none_exist: false,
            };
            store.submit(Mutation { now_ms: 1, op }).await.unwrap();
        }
    });
    done.store(true, Ordering::Release);
    let checks: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(checks > 100, "readers ran: {checks}");
    assert_eq!(number(store.get(&a, 1).unwrap()), 3000);
    rt.block_on(store.shutdown()).unwrap();
}

/// One group writes the same keys many times (the writer puts each data key
/// into the batch once, with its final record): the final state, the key
/// counters and the expiry index all come out as if every write had been
/// applied one by one, before and after a reopen.
#[test]
fn a_group_that_rewrites_keys_keeps_only_their_final_state() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let set = |k: &str, v: &str, expiry: SetExpiry| Mutation {
        now_ms: 1,
        op: Op::Set {
            key: Bytes::from(k.to_string()),
            value: Bytes::from(v.to_string()),
            condition: SetCondition::Always,
            expiry,
            return_old: false,
        },
    };
    let del = |k: &str| Mutation {
        now_ms: 1,
        op: Op::Delete {
            keys: vec![Bytes::from(k.to_string())],
        },
    };
    let incr = |k: &str| Mutation {
        now_ms: 1,
        op: Op::IncrBy {
            key: Bytes::from(k.to_string()),
            delta: 1,
        },
    };
    let mut mutations = vec![
        // "hot": expiry at 100, then at 200, then none, then at 300.
        set("hot", "a", SetExpiry::At(100)),
        set("hot", "b", SetExpiry::At(200)),
        set("hot", "c", SetExpiry::Clear),
        set("hot", "d", SetExpiry::At(300)),
        // "gone": written with an expiry, then deleted.
        set("gone", "x", SetExpiry::At(400)),
        del("gone"),
        // "back": deleted (absent), written, deleted, written again.
        del("back"),
        set("back", "1", SetExpiry::Clear),
        del("back"),
        set("back", "2", SetExpiry::Clear),
        // "old" exists before the group (with an expiry); the group
        // rewrites it, then deletes it.
        set("old", "w", SetExpiry::At(500)),
        del("old"),
    ];
    mutations.extend((0..500).map(|_| incr("n")));
    let check = |store: &Store| {
        let hot = store.get(b"hot", 1).unwrap().unwrap();
        assert_eq!(hot.value, Bytes::from_static(b"d"));
        assert_eq!(hot.expire_at_ms, 300);
        assert!(store.get(b"gone", 1).unwrap().is_none());
        assert!(store.get(b"old", 1).unwrap().is_none());
        assert_eq!(
            store.get(b"back", 1).unwrap().unwrap().value,
            Bytes::from_static(b"2")
        );
        assert_eq!(
            store.get(b"n", 1).unwrap().unwrap().value,
            Bytes::from_static(b"500")
        );
        assert_eq!(store.dbsize(), 3, "hot, back, n");
        assert_eq!(store.stats().expiring_keys, 1, "only hot expires");
        // The expiry index holds exactly hot at 300: no entry left behind
        // by the earlier expiry times or by the deleted key.
        let due = store.due_expiries(10_000, 100).unwrap();
        assert_eq!(due, vec![(Bytes::from_static(b"hot"), 300)]);
    };
    {
        let store = LocalStore::open(config(dir.path(), FsyncPolicy::Always)).unwrap();
        rt.block_on(async {
            store
                .submit(set("old", "v", SetExpiry::At(600)))
                .await
                .unwrap();
            // Queued before any is awaited, so the writer takes them in as
            // few groups as its limits allow.
            let mut tickets = Vec::new();
            for m in mutations {
                tickets.push(store.enqueue(m).await.unwrap());
            }
            for t in tickets {
                t.outcome().await.unwrap();
            }
        });
        assert!(
            store.stats().groups_committed < 100,
            "the writes shared groups: {:?}",
            store.stats()
        );
        check(&store);
        rt.block_on(store.shutdown()).unwrap();
    }
    let store = LocalStore::open(config(dir.path(), FsyncPolicy::Always)).unwrap();
    check(&store);
    rt.block_on(store.shutdown()).unwrap();
}
