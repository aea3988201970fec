//! Search indexes as data, through the storage layer alone: every write
//! keeps every index exact (checked against the index recomputed from
//! the stored records after each step), backfill pages interleaved with
//! writes, drop and purge, FLUSHALL, reopen, and EMBED vectors.

use bytes::Bytes;
use proptest::prelude::*;
use strata_search::query::parse;
use strata_search::{IndexDef, Params, SearchOptions, text_hash};
use strata_storage::{
    Embedding, ExpireCondition, FsyncPolicy, LocalStore, Mutation, MutationError, Op, Outcome,
    SetCondition, SetExpiry, Step, StorageConfig, Store,
};

fn config(dir: &std::path::Path) -> StorageConfig {
    let mut c = StorageConfig::new(dir);
    c.fsync = FsyncPolicy::Never;
    c.cache_size_bytes = 4 * 1024 * 1024;
    c.memtable_size_bytes = 1024 * 1024;
    c.journal_size_bytes_max = 64 * 1024 * 1024;
    c.prefetch_slow_read_ns = u64::MAX;
    c
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

const NOW_MS: u64 = 1_000_000;

fn m(op: Op) -> Mutation {
    Mutation { now_ms: NOW_MS, op }
}

fn set(key: &str, value: &str) -> Op {
    Op::Set {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value.as_bytes()),
        condition: SetCondition::Always,
        expiry: SetExpiry::Clear,
        return_old: false,
    }
}

fn create(args: &str) -> Op {
    let parts: Vec<&[u8]> = args.split(' ').map(str::as_bytes).collect();
    let def = IndexDef::parse(&parts).expect("valid definition");
    Op::CreateIndex {
        definition: Bytes::from(def.encode(0)),
    }
}

async fn apply(store: &LocalStore, op: Op) -> Outcome {
    store.submit(m(op)).await.expect("storage works")
}

fn search(store: &Store, index: &str, query: &str) -> Vec<String> {
    let q = parse(query.as_bytes(), &Params::default()).expect("valid query");
    let opts = SearchOptions {
        count: 1000,
        ..SearchOptions::default()
    };
    let answer = store
        .search(index, &q, &opts, NOW_MS)
        .expect("storage works")
        .expect("index exists");
    let mut keys: Vec<String> = answer
        .hits
        .iter()
        .map(|h| String::from_utf8_lossy(&h.key).into_owned())
        .collect();
    keys.sort();
    keys
}

fn reader_of(store: &LocalStore) -> Store {
    store.reader()
}

fn assert_exact(store: &Store) {
    assert_eq!(
        store.search_matches_recount().expect("storage works"),
        Ok(())
    );
}

#[test]
fn writes_keep_an_index_exact() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let store = LocalStore::open(config(dir.path())).unwrap();
        let reader = store.reader();
        assert_eq!(
            apply(&store, create("idx PREFIX 1 doc: SCHEMA value TEXT")).await,
            Outcome::Ok
        );
        assert_eq!(
            apply(&store, create("idx SCHEMA value TEXT")).await,
            Outcome::Refused(MutationError::IndexExists)
        );
        apply(&store, set("doc:1", "the quick brown fox")).await;
        apply(&store, set("doc:2", "a lazy brown dog")).await;
        apply(&store, set("other:1", "brown bear")).await;
        assert_eq!(search(&reader, "idx", "brown"), ["doc:1", "doc:2"]);
        assert_eq!(search(&reader, "idx", "fox"), ["doc:1"]);
        assert_exact(&reader);

        apply(&store, set("doc:1", "a quick red fox")).await;
        assert_eq!(search(&reader, "idx", "brown"), ["doc:2"]);
        apply(
            &store,
            Op::Rename {
                from: Bytes::from_static(b"doc:2"),
                to: Bytes::from_static(b"doc:3"),
                if_absent: false,
            },
        )
        .await;
        assert_eq!(search(&reader, "idx", "dog"), ["doc:3"]);
        apply(
            &store,
            Op::Delete {
                keys: vec![Bytes::from_static(b"doc:1")],
            },
        )
        .await;
        assert!(search(&reader, "idx", "fox").is_empty());
        // An expiry in the past deletes the key and its entries.
        apply(
            &store,
            Op::Expire {
                key: Bytes::from_static(b"doc:3"),
                at_ms: 1,
                condition: ExpireCondition::Always,
            },
        )
        .await;
        assert!(search(&reader, "idx", "dog").is_empty());
        assert_exact(&reader);
        assert_eq!(reader.index_info("idx").unwrap().unwrap().stats.docs, 0);
        store.shutdown().await.unwrap();
    });
}

#[test]
fn an_expired_unswept_document_is_not_a_hit() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let store = LocalStore::open(config(dir.path())).unwrap();
        let reader = store.reader();
        apply(&store, create("idx SCHEMA value TEXT")).await;
        apply(
            &store,
            Op::Set {
                key: Bytes::from_static(b"a"),
                value: Bytes::from_static(b"hello"),
                condition: SetCondition::Always,
                expiry: SetExpiry::At(NOW_MS + 10),
                return_old: false,
            },
        )
        .await;
        apply(&store, set("b", "hello")).await;
        let q = parse(b"hello", &Params::default()).unwrap();
        let later = reader
            .search("idx", &q, &SearchOptions::default(), NOW_MS + 20)
            .unwrap()
            .unwrap();
        let keys: Vec<&[u8]> = later.hits.iter().map(|h| h.key.as_ref()).collect();
        assert_eq!(keys, [b"b".as_slice()]);
        assert_eq!(later.total, 1);
        assert_exact(&reader);
        store.shutdown().await.unwrap();
    });
}

#[test]
fn backfill_pages_interleaved_with_writes_index_every_key_once() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let store = LocalStore::open(config(dir.path())).unwrap();
        let reader = store.reader();
        for i in 0..1000 {
            apply(
                &store,
                set(&format!("k{i:04}"), &format!("word{} common", i % 7)),
            )
            .await;
        }
        apply(&store, create("idx SCHEMA value TEXT")).await;
        let info = reader.index_info("idx").unwrap().unwrap();
        assert!(info.building, "keys exist: the index is built by pages");
        apply(
            &store,
            Op::BackfillIndex {
                id: info.id,
                keys_max: 256,
            },
        )
        .await;
        let info = reader.index_info("idx").unwrap().unwrap();
        assert!(info.building, "1000 keys do not fit the first page");
        assert!(info.percent_indexed > 0.2 && info.percent_indexed < 0.3);
        let mut pages = 0;
        loop {
            // Writes on both sides of the cursor between pages.
            apply(
                &store,
                set(&format!("k{:04}", pages * 37 % 1000), "moved common"),
            )
            .await;
            apply(
                &store,
                Op::Delete {
                    keys: vec![Bytes::from(format!("k{:04}", (pages * 53 + 500) % 1000))],
                },
            )
            .await;
            assert_exact(&reader);
            let more = apply(
                &store,
                Op::BackfillIndex {
                    id: info.id,
                    keys_max: 100,
                },
            )
            .await;
            pages += 1;
            if more == Outcome::Int(0) {
                break;
            }
            assert_eq!(more, Outcome::Int(1));
            assert!(pages < 100, "the backfill ends");
        }
        assert_exact(&reader);
        let info = reader.index_info("idx").unwrap().unwrap();
        assert!(!info.building);
        assert_eq!(info.percent_indexed, 1.0);
        assert_eq!(info.stats.docs, reader.dbsize());
        assert_eq!(
            search(&reader, "idx", "common").len() as u64,
            reader.dbsize()
        );
        store.shutdown().await.unwrap();
    });
}

#[test]
fn drop_purge_flushall_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let store = LocalStore::open(config(dir.path())).unwrap();
        apply(&store, create("a SCHEMA value TEXT")).await;
        apply(&store, create("b SCHEMA value TAG")).await;
        for i in 0..300 {
            apply(&store, set(&format!("k{i}"), "x,y")).await;
        }
        assert!(reader_of(&store).pending_search_work().unwrap().is_empty());
        store.shutdown().await.unwrap();
        drop(store);

        // The catalog and entries are data: nothing is rebuilt at open.
        let store = LocalStore::open(config(dir.path())).unwrap();
        let reader = store.reader();
        assert_eq!(search(&reader, "b", "@value:{x}").len(), 300);
        assert_exact(&reader);
        let names: Vec<String> = reader
            .search_indexes()
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["a", "b"]);

        assert_eq!(
            apply(&store, Op::DropIndex { name: "a".into() }).await,
            Outcome::Ok
        );
        assert_eq!(
            apply(&store, Op::DropIndex { name: "a".into() }).await,
            Outcome::Refused(MutationError::UnknownIndex)
        );
        let work = reader.pending_search_work().unwrap();
        assert_eq!(work, [strata_storage::SearchWork::Purge { id: 1 }]);
        let mut pages = 0;
        while apply(
            &store,
            Op::PurgeIndex {
                id: 1,
                entries_max: 500,
            },
        )
        .await
            == Outcome::Int(1)
        {
            pages += 1;
            assert!(pages < 100);
        }
        assert!(pages >= 2, "300 documents' entries take more than one page");
        assert!(reader.pending_search_work().unwrap().is_empty());
        assert_exact(&reader);

        apply(&store, Op::FlushAll).await;
        assert!(reader.search_indexes().unwrap().is_empty());
        // Ids start again after FLUSHALL cleared every entry.
        assert_eq!(
            apply(&store, create("a SCHEMA value TEXT")).await,
            Outcome::Ok
        );
        apply(&store, set("k", "hello")).await;
        assert_eq!(search(&reader, "a", "hello"), ["k"]);
        assert_exact(&reader);
        store.shutdown().await.unwrap();
    });
}

fn vector_of(store: &Store, key: &str) -> Option<Vec<f32>> {
    store
        .snapshot()
        .stored_vector("e", key.as_bytes(), "vec")
        .expect("storage works")
}

#[test]
fn embed_vectors_follow_their_text() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let store = LocalStore::open(config(dir.path())).unwrap();
        let reader = store.reader();
        let def = IndexDef::parse(&[
            b"e".as_slice(),
            b"SCHEMA",
            b"value",
            b"TEXT",
            b"value",
            b"AS",
            b"vec",
            b"VECTOR",
            b"FLAT",
            b"6",
            b"TYPE",
            b"FLOAT32",
            b"DIM",
            b"2",
            b"DISTANCE_METRIC",
            b"L2",
            b"EMBED",
            b"value",
        ])
        .unwrap();
        apply(
            &store,
            Op::CreateIndex {
                definition: Bytes::from(def.encode(0)),
            },
        )
        .await;
        let embedded = |key: &str, text: &str, hash_of: &str, v: [f32; 2]| Op::Embedded {
            op: Box::new(set(key, text)),
            embeddings: vec![Embedding {
                key: Bytes::copy_from_slice(key.as_bytes()),
                index: 1,
                field: 1,
                text_hash: text_hash(hash_of),
                vector: v.to_vec(),
            }],
        };
        apply(&store, embedded("a", "hello", "hello", [1.0, 0.0])).await;
        assert_eq!(vector_of(&reader, "a"), Some(vec![1.0, 0.0]));
        // A vector computed for another text is not stored.
        apply(&store, embedded("b", "world", "other", [0.0, 1.0])).await;
        assert_eq!(vector_of(&reader, "b"), None);
        // The same text again keeps its vector; RENAME carries it.
        apply(
            &store,
            Op::Expire {
                key: Bytes::from_static(b"a"),
                at_ms: (NOW_MS + 1_000_000) as i64,
                condition: ExpireCondition::Always,
            },
        )
        .await;
        assert_eq!(vector_of(&reader, "a"), Some(vec![1.0, 0.0]));
        apply(
            &store,
            Op::Rename {
                from: Bytes::from_static(b"a"),
                to: Bytes::from_static(b"c"),
                if_absent: false,
            },
        )
        .await;
        assert_eq!(vector_of(&reader, "c"), Some(vec![1.0, 0.0]));
        // New text without a vector: the old vector is gone.
        apply(&store, set("c", "changed")).await;
        assert_eq!(vector_of(&reader, "c"), None);
        assert_exact(&reader);
        store.shutdown().await.unwrap();
    });
}

#[derive(Clone, Debug)]
enum ModelOp {
    Set(u8, u8),
    Del(u8),
    Rename(u8, u8),
    MSet(Vec<(u8, u8)>),
    Expire(u8, bool),
    Append(u8, u8),
    Exec(Vec<(u8, u8)>),
    Backfill,
    FlushAll,
}

const TEXTS: [&str; 8] = [
    "red apple pie",
    "green apple",
    "red car fast",
    "{\"t\":\"json text\"}",
    "42",
    "slow blue car, red",
    // Eight bytes: also two FLOAT32s (finite: ASCII), for the vector index.
    "blue sky",
    "slow red",
];

fn key(k: u8) -> Bytes {
    // Half the keys under the index's prefix, half outside it.
    Bytes::from(format!(
        "{}{}",
        if k.is_multiple_of(2) { "p:" } else { "q:" },
        k % 8
    ))
}

fn value(v: u8) -> Bytes {
    Bytes::from_static(TEXTS[usize::from(v) % TEXTS.len()].as_bytes())
}

/// Queries over the model's texts: words, stems, ANDs of a rare and a
/// common word (the lookup path), OR, NOT, prefixes and a phrase.
const MODEL_QUERIES: [&str; 9] = [
    "red",
    "apple",
    "cars",
    "red apple",
    "apple red car",
    "red | blue",
    "red -car",
    "ap*",
    "\"red car\"",
];

/// Every query answered through the store (with the posting cache, asked
/// twice so that the second answer comes from it) equals the answer of a
/// snapshot read without the cache: keys, scores and totals. After every
/// step of the model, so a list the step changed must never be served
/// stale.
fn assert_cache_agrees(reader: &Store) {
    let opts = SearchOptions {
        count: 100,
        ..SearchOptions::default()
    };
    let indexes = reader.search_indexes().unwrap();
    let knn = "*=>[KNN 3 @value $q]";
    for ix in &indexes {
        for text in MODEL_QUERIES.iter().chain([&knn]) {
            let params = Params::from_pairs(&[b"q", b"red sky!"]).expect("params");
            let q = parse(text.as_bytes(), &params).expect("valid query");
            let answer = |a: strata_storage::SearchAnswer| {
                let hits: Vec<(Bytes, u64)> = a
                    .hits
                    .into_iter()
                    .map(|h| (h.key, h.score.to_bits()))
                    .collect();
                (a.total, hits)
            };
            let cached =
                |_: ()| answer(reader.search(&ix.name, &q, &opts, NOW_MS).unwrap().unwrap());
            let (first, second) = (cached(()), cached(()));
            let direct = reader
                .snapshot()
                .search(&ix.name, &q, &opts, NOW_MS)
                .unwrap()
                .unwrap();
            let direct = answer(direct);
            assert_eq!(first, direct, "index {} query {text}: filled", ix.name);
            assert_eq!(
                second, direct,
                "index {} query {text}: from the cache",
                ix.name
            );
        }
    }
}

fn model_op() -> impl Strategy<Value = ModelOp> {
    prop_oneof![
        4 => (any::<u8>(), any::<u8>()).prop_map(|(k, v)| ModelOp::Set(k, v)),
        2 => any::<u8>().prop_map(ModelOp::Del),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| ModelOp::Rename(a, b)),
        1 => proptest::collection::vec((any::<u8>(), any::<u8>()), 1..4).prop_map(ModelOp::MSet),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(k, past)| ModelOp::Expire(k, past)),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(k, v)| ModelOp::Append(k, v)),
        1 => proptest::collection::vec((any::<u8>(), any::<u8>()), 1..3).prop_map(ModelOp::Exec),
        1 => Just(ModelOp::Backfill),
        1 => Just(ModelOp::FlushAll),
    ]
}

fn to_op(op: &ModelOp) -> Op {
    let set_kv = |k: u8, v: u8| Op::Set {
        key: key(k),
        value: value(v),
        condition: SetCondition::Always,
        expiry: SetExpiry::Clear,
        return_old: false,
    };
    match op {
        ModelOp::Set(k, v) => set_kv(*k, *v),
        ModelOp::Del(k) => Op::Delete {
            keys: vec![key(*k)],
        },
        ModelOp::Rename(a, b) => Op::Rename {
            from: key(*a),
            to: key(*b),
            if_absent: false,
        },
        ModelOp::MSet(pairs) => Op::MSet {
            pairs: pairs.iter().map(|(k, v)| (key(*k), value(*v))).collect(),
            if_none_exist: false,
        },
        ModelOp::Expire(k, past) => Op::Expire {
            key: key(*k),
            at_ms: if *past { 5 } else { (NOW_MS * 2) as i64 },
            condition: ExpireCondition::Always,
        },
        ModelOp::Append(k, v) => Op::Append {
            key: key(*k),
            value: value(*v),
        },
        ModelOp::Exec(pairs) => Op::ExecVersioned {
            steps: pairs
                .iter()
                .map(|(k, v)| Step::Write(set_kv(*k, *v)))
                .collect(),
            watched: Vec::new(),
        },
        ModelOp::Backfill => Op::BackfillIndex { id: 0, keys_max: 2 },
        ModelOp::FlushAll => Op::FlushAll,
    }
}

async fn create_model_indexes(store: &LocalStore) {
    apply(
        store,
        create("t PREFIX 1 p: SCHEMA value TEXT value AS tag TAG"),
    )
    .await;
    apply(
        store,
        create("n SCHEMA value NUMERIC value AS words TEXT NOSTEM"),
    )
    .await;
    apply(store, create("j ON JSON SCHEMA $.t AS t TEXT")).await;
    apply(
        store,
        create("v SCHEMA value VECTOR FLAT 6 TYPE FLOAT32 DIM 2 DISTANCE_METRIC L2"),
    )
    .await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// After every step, every index equals the index recomputed from the
    /// stored records; a few indexes are created while keys exist, so
    /// their backfill interleaves with the writes.
    #[test]
    fn every_index_equals_its_recount_after_every_step(
        ops in proptest::collection::vec(model_op(), 1..40),
        create_at in 0usize..10,
    ) {
        let dir = tempfile::tempdir().unwrap();
        runtime().block_on(async {
            let store = LocalStore::open(config(dir.path())).unwrap();
            let reader = store.reader();
            for (i, op) in ops.iter().enumerate() {
                if i == create_at {
                    create_model_indexes(&store).await;
                }
                let op = match op {
                    // Backfill every index that is building, one small page.
                    ModelOp::Backfill => {
                        for w in reader.pending_search_work().unwrap() {
                            if let strata_storage::SearchWork::Backfill { id } = w {
                                apply(&store, Op::BackfillIndex { id, keys_max: 2 }).await;
                            }
                        }
                        continue;
                    }
                    other => to_op(other),
                };
                let flush = matches!(op, Op::FlushAll);
                apply(&store, op).await;
                assert_eq!(reader.search_matches_recount().unwrap(), Ok(()), "after {:?}", ops[i]);
                assert_cache_agrees(&reader);
                if flush && i >= create_at {
                    create_model_indexes(&store).await;
                }
            }
            // Built to the end, every index covers every key it should:
            // the recount of a built index reads every stored key.
            for w in reader.pending_search_work().unwrap() {
                if let strata_storage::SearchWork::Backfill { id } = w {
                    while apply(&store, Op::BackfillIndex { id, keys_max: 3 }).await == Outcome::Int(1) {}
                }
            }
            assert!(reader.search_indexes().unwrap().iter().all(|s| !s.building));
            assert_eq!(reader.search_matches_recount().unwrap(), Ok(()), "built");
            store.shutdown().await.unwrap();
        });
    }
}
