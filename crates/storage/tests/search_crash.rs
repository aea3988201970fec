//! kill -9 under writers to indexed keys: after every restart, every
//! index equals the index recomputed from the stored records.
//!
//! The test runs itself again as the writer (the `writer_child` test,
//! which does nothing unless `STRATA_SEARCH_CRASH_DIR` is set): a child
//! process opens the store, creates the indexes (or finds them), builds
//! them in small pages and writes, deletes, renames and MSETs covered
//! keys as fast as it can until the parent SIGKILLs it at a random
//! moment, mid-group, mid-backfill or mid-flush. The parent then opens
//! the same directory and recounts.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_search::IndexDef;
use strata_storage::{
    FsyncPolicy, LocalStore, Mutation, MutationError, Op, Outcome, SearchWork, SetCondition,
    SetExpiry, StorageConfig,
};

const DIR_ENV: &str = "STRATA_SEARCH_CRASH_DIR";
const SEED_ENV: &str = "STRATA_SEARCH_CRASH_SEED";
const CREATE_ENV: &str = "STRATA_SEARCH_CRASH_CREATE";
const BACKFILL_ENV: &str = "STRATA_SEARCH_CRASH_BACKFILL";
const CYCLES: u64 = 6;
/// The child is killed this long after it started, at most.
const KILL_AFTER_MS_MAX: u64 = 700;
/// Bounds every wait on the child.
const CHILD_WAIT_MS_MAX: u64 = 30_000;

fn config(dir: &std::path::Path) -> StorageConfig {
    let mut c = StorageConfig::new(dir);
    // SIGKILL leaves the page cache: this tests the process crash, not
    // power loss (tools/torture says why), so no fsync is needed.
    c.fsync = FsyncPolicy::Never;
    c.cache_size_bytes = 4 * 1024 * 1024;
    // The smallest allowed: flushes happen during the run.
    c.memtable_size_bytes = 1024 * 1024;
    c.journal_size_bytes_max = 64 * 1024 * 1024;
    c.prefetch_slow_read_ns = u64::MAX;
    c
}

/// xorshift: deterministic per seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: [&str; 12] = [
    "red", "green", "blue", "fast", "slow", "car", "apple", "pie", "river", "stone", "light",
    "dark",
];

fn text(rng: &mut Rng) -> Bytes {
    let n = 1 + rng.below(12);
    let words: Vec<&str> = (0..n)
        .map(|_| WORDS[rng.below(WORDS.len() as u64) as usize])
        .collect();
    Bytes::from(words.join(" "))
}

fn key(rng: &mut Rng) -> Bytes {
    let prefix = if rng.below(4) == 0 { "other:" } else { "doc:" };
    Bytes::from(format!("{prefix}{}", rng.below(400)))
}

fn random_op(rng: &mut Rng) -> Op {
    match rng.below(10) {
        0..=4 => Op::Set {
            key: key(rng),
            value: text(rng),
            condition: SetCondition::Always,
            expiry: SetExpiry::Clear,
            return_old: false,
        },
        5 | 6 => Op::Delete {
            keys: vec![key(rng)],
        },
        7 => Op::Rename {
            from: key(rng),
            to: key(rng),
            if_absent: false,
        },
        _ => Op::MSet {
            pairs: (0..3).map(|_| (key(rng), text(rng))).collect(),
            if_none_exist: false,
        },
    }
}

fn create_op(args: &str) -> Op {
    let parts: Vec<&[u8]> = args.split(' ').map(str::as_bytes).collect();
    Op::CreateIndex {
        definition: Bytes::from(IndexDef::parse(&parts).expect("valid").encode(0)),
    }
}

/// The child: writes until killed.
#[test]
fn writer_child() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let seed: u64 = std::env::var(SEED_ENV).unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = LocalStore::open(config(std::path::Path::new(&dir))).unwrap();
        let reader = store.reader();
        let now_ms = 1_000_000;
        let submit = |op| store.submit(Mutation { now_ms, op });
        // Created while keys exist (from the second cycle on): built by
        // small pages, between writes, and killed mid-build.
        let create = std::env::var(CREATE_ENV).is_ok();
        let backfill = std::env::var(BACKFILL_ENV).is_ok();
        for def in [
            "text PREFIX 1 doc: SCHEMA value TEXT",
            "tags SCHEMA value AS t TAG",
        ] {
            if create {
                let _ = submit(create_op(def)).await.unwrap();
            }
        }
        let mut rng = Rng(seed | 1);
        for round in 0u64.. {
            // Slow on purpose: most kills land while an index is building.
            let pending = if backfill && round % 4 == 0 {
                reader.pending_search_work().unwrap()
            } else {
                Vec::new()
            };
            for w in pending {
                if let SearchWork::Backfill { id } = w {
                    submit(Op::BackfillIndex { id, keys_max: 2 }).await.unwrap();
                }
            }
            // A few writes queued at once: they land in one group.
            let tickets: Vec<_> = (0..8)
                .map(|_| Mutation {
                    now_ms,
                    op: random_op(&mut rng),
                })
                .collect();
            let mut waits = Vec::new();
            for m in tickets {
                waits.push(store.enqueue(m).await.unwrap());
            }
            for t in waits {
                let outcome = t.outcome().await.unwrap();
                // RENAME of a key that is not there is the only refusal.
                assert!(
                    !matches!(outcome, Outcome::Refused(ref e) if *e != MutationError::NoSuchKey),
                    "{outcome:?}"
                );
            }
        }
    });
}

#[test]
fn every_index_equals_its_recount_after_kill_9() {
    if std::env::var(DIR_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng(0x5eed_2026_1207);
    let mut docs_seen = 0u64;
    let mut killed_building = 0;
    for cycle in 0..CYCLES {
        let mut command = Command::new(&exe);
        command
            .args(["--exact", "writer_child", "--nocapture", "--test-threads=1"])
            .env(DIR_ENV, dir.path())
            .env(SEED_ENV, (cycle + 1).to_string());
        if cycle > 0 {
            command.env(CREATE_ENV, "1");
        }
        // The cycle that creates the indexes builds nothing, so that kill
        // lands while they are building whatever the machine's speed; the
        // later cycles build them in small pages between writes.
        if cycle > 1 {
            command.env(BACKFILL_ENV, "1");
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(
            150 + rng.below(KILL_AFTER_MS_MAX - 150),
        ));
        assert!(
            child.try_wait().unwrap().is_none(),
            "cycle {cycle}: the writer exited by itself"
        );
        child.kill().unwrap();
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            assert!(started.elapsed() < Duration::from_millis(CHILD_WAIT_MS_MAX));
            std::thread::sleep(Duration::from_millis(10));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = LocalStore::open(config(dir.path())).unwrap();
            let reader = store.reader();
            assert_eq!(
                reader.search_matches_recount().unwrap(),
                Ok(()),
                "cycle {cycle}"
            );
            assert!(reader.counts_match_recount().unwrap(), "cycle {cycle}");
            if let Some(info) = reader.index_info("tags").unwrap() {
                docs_seen = docs_seen.max(info.stats.docs);
                killed_building += usize::from(info.building);
            }
            store.shutdown().await.unwrap();
        });
    }
    // Negative space: the writer really wrote indexed documents.
    assert!(docs_seen > 50, "only {docs_seen} documents indexed");
    assert!(killed_building > 0, "no kill landed during a backfill");
}
