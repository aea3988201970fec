//! `apply` is total: any `Op` that reaches it, with any limits it carries,
//! ends as an outcome, the same on every replica, and never as a panic or
//! an abort of the engine.
//!
//! Log entries are built here as no parser of this build would build them:
//! keys past the engine's 65,535-byte length (the engine asserts on them,
//! aborting the process), empty keys, values and offsets past every limit,
//! and limits lifted to `usize::MAX` (an entry from another build, or a
//! corrupted but checksummed one). Each sequence goes through two
//! replicated stores on the real engine and through a model (a map, with
//! the engine's own key-length assertion); outcomes and final contents
//! must agree.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use strata_storage::mutation::{State, apply};
use strata_storage::{
    ExpireCondition, FsyncPolicy, GetExChange, KEY_SIZE_BYTES_LIMIT, Limits, LogEntry, Mutation,
    Op, Outcome, Record, ReplicatedStore, SetCondition, SetExpiry, Step, StorageConfig, Store,
    VersionCheck, Watched, WatchedVersion, record_digest,
};

/// The engine's own key-length bound, which it enforces by panicking.
const ENGINE_KEY_BYTES_MAX: usize = u16::MAX as usize;

/// The simplest state, with the engine's assertion: a key that would
/// abort the engine panics here, and fails the property. It stamps
/// versions as a replicated store does: the entry's log index (`.1`), and
/// keeps the highest version deleted (`.2`).
#[derive(Default)]
struct Model(BTreeMap<Bytes, Record>, u64, u64);

impl Model {
    fn check(key: &[u8]) {
        // A data key is a tag byte and the user key; the expiry index adds
        // eight more bytes.
        assert!(
            key.len() + 9 <= ENGINE_KEY_BYTES_MAX,
            "a {}-byte key reached the engine",
            key.len()
        );
    }
}

impl State for Model {
    fn load(&mut self, key: &Bytes) -> strata_storage::Result<Option<Record>> {
        Model::check(key);
        Ok(self.0.get(key).cloned())
    }
    fn put(&mut self, key: Bytes, record: Record) -> strata_storage::Result<()> {
        Model::check(&key);
        self.0.insert(key, record.with_version(self.1));
        Ok(())
    }
    fn delete(&mut self, key: &Bytes) -> strata_storage::Result<()> {
        Model::check(key);
        if let Some(old) = self.0.remove(key) {
            self.2 = self.2.max(old.version);
        }
        Ok(())
    }
    fn clear(&mut self) -> strata_storage::Result<()> {
        // Every record cleared was written by an earlier entry.
        self.2 = self.2.max(self.1 - 1);
        self.0.clear();
        Ok(())
    }
    fn deleted_max(&self) -> u64 {
        self.2
    }
    fn version(&self) -> u64 {
        self.1
    }
}

fn key() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        4 => prop::sample::select(vec!["a", "b", ""]).prop_map(|k| Bytes::from(k.as_bytes())),
        1 => prop::sample::select(vec![
            KEY_SIZE_BYTES_LIMIT,
            KEY_SIZE_BYTES_LIMIT + 1,
            65_535,
            65_536,
            70_000,
        ])
        .prop_map(|n| Bytes::from(vec![b'k'; n])),
    ]
}

fn value() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        4 => prop::sample::select(vec!["1", "v", "", "2.5", "x"]).prop_map(|v| Bytes::from(v.as_bytes())),
        1 => prop::sample::select(vec![100usize, 70_000, 2 << 20]).prop_map(|n| Bytes::from(vec![b'v'; n])),
    ]
}

fn limits() -> impl Strategy<Value = Limits> {
    prop::sample::select(vec![
        Limits {
            key_size_bytes_max: 16,
            value_size_bytes_max: 64,
        },
        Limits {
            key_size_bytes_max: 16 * 1024,
            value_size_bytes_max: 16 << 20,
        },
        Limits {
            key_size_bytes_max: usize::MAX,
            value_size_bytes_max: usize::MAX,
        },
    ])
}

fn base_op() -> impl Strategy<Value = Op> {
    let offset = prop::sample::select(vec![0u64, 3, 1 << 20, 1 << 40, u64::MAX]);
    let at_ms = prop::sample::select(vec![i64::MIN, -1, 0, 1, 2_000_000_000_000, i64::MAX]);
    let when = prop::sample::select(vec![0u64, 1, 2_000_000_000_000, u64::MAX]);
    prop_oneof![
        (key(), value(), when.clone(), any::<bool>()).prop_map(|(key, value, at, return_old)| {
            Op::Set {
                key,
                value,
                condition: SetCondition::Always,
                expiry: if at == 0 {
                    SetExpiry::Keep
                } else {
                    SetExpiry::At(at)
                },
                return_old,
            }
        }),
        (prop::collection::vec((key(), value()), 0..3), any::<bool>()).prop_map(
            |(pairs, if_none_exist)| Op::MSet {
                pairs,
                if_none_exist
            }
        ),
        prop::collection::vec(key(), 0..3).prop_map(|keys| Op::Delete { keys }),
        key().prop_map(|key| Op::GetDel { key }),
        (key(), when.clone()).prop_map(|(key, at)| Op::GetEx {
            key,
            change: if at == 0 {
                GetExChange::Persist
            } else {
                GetExChange::At(at)
            }
        }),
        (key(), any::<i64>()).prop_map(|(key, delta)| Op::IncrBy { key, delta }),
        (key(), value()).prop_map(|(key, delta)| Op::IncrByFloat { key, delta }),
        (key(), value()).prop_map(|(key, value)| Op::Append { key, value }),
        (key(), offset, value()).prop_map(|(key, offset, value)| Op::SetRange {
            key,
            offset,
            value
        }),
        (key(), key(), any::<bool>()).prop_map(|(from, to, if_absent)| Op::Rename {
            from,
            to,
            if_absent
        }),
        (key(), at_ms).prop_map(|(key, at_ms)| Op::Expire {
            key,
            at_ms,
            condition: ExpireCondition::Always
        }),
        key().prop_map(|key| Op::Persist { key }),
        Just(Op::FlushAll),
        prop::collection::vec((key(), when), 0..3).prop_map(|entries| Op::SweepExpired { entries }),
    ]
}

/// Any op, transactions included: steps of any op (so also the refused
/// ones: FLUSHALL, a sweep, a nested transaction), reads, and watches
/// whose digest or version may or may not match.
fn op() -> impl Strategy<Value = Op> {
    let step = || {
        prop_oneof![
            4 => base_op().prop_map(Step::Write),
            2 => prop::collection::vec(key(), 0..3).prop_map(|keys| Step::Read { keys }),
            1 => Just(Step::Write(Op::Exec { steps: vec![], watched: vec![] })),
            1 => Just(Step::Write(Op::ExecVersioned { steps: vec![], watched: vec![] })),
            1 => Just(Step::Write(Op::ExecChecked { steps: vec![], checks: vec![] })),
        ]
    };
    let digest = prop::sample::select(vec![
        None,
        record_digest(Some(&Record::new(Bytes::from_static(b"1"), 0))),
        record_digest(Some(&Record::new(Bytes::from_static(b"v"), 0))),
    ]);
    let watched = prop::collection::vec((key(), digest), 0..2).prop_map(|w| {
        w.into_iter()
            .map(|(key, digest)| Watched { key, digest })
            .collect::<Vec<_>>()
    });
    let as_of = prop::sample::select(vec![0u64, 1, 3, 6, 12, u64::MAX]);
    let versions =
        prop::collection::vec((key(), any::<bool>(), as_of.clone()), 0..3).prop_map(|w| {
            w.into_iter()
                .map(|(key, existed, as_of)| WatchedVersion {
                    key,
                    existed,
                    as_of,
                })
                .collect::<Vec<_>>()
        });
    let checks = prop::collection::vec((key(), as_of), 0..3).prop_map(|c| {
        c.into_iter()
            .map(|(key, version)| VersionCheck { key, version })
            .collect::<Vec<_>>()
    });
    prop_oneof![
        6 => base_op(),
        1 => (prop::collection::vec(step(), 0..4), checks)
            .prop_map(|(steps, checks)| Op::ExecChecked { steps, checks }),
        1 => (prop::collection::vec(step(), 0..4), watched)
            .prop_map(|(steps, watched)| Op::Exec { steps, watched }),
        1 => (prop::collection::vec(step(), 0..4), versions)
            .prop_map(|(steps, watched)| Op::ExecVersioned { steps, watched }),
    ]
}

fn config(dir: &std::path::Path) -> StorageConfig {
    let mut c = StorageConfig::new(dir);
    c.fsync = FsyncPolicy::Never;
    c.cache_size_bytes = 4 * 1024 * 1024;
    c.memtable_size_bytes = 4 * 1024 * 1024;
    c.journal_size_bytes_max = 64 * 1024 * 1024;
    c
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn contents(store: &Store) -> Vec<(Bytes, Bytes)> {
    // Far past the largest key of the strategy: every key is in range.
    let end = vec![0xffu8; 4];
    store.range(b"", &end, usize::MAX, 0).unwrap().0
}

/// Cases per run: 32 in `cargo test`; `STRATA_FUZZ_CASES=N` for a
/// longer run (fuzz/README.md).
fn cases() -> u32 {
    std::env::var("STRATA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]
    #[test]
    fn any_op_with_any_limits_is_an_outcome_alike_on_every_replica(
        steps in prop::collection::vec((op(), limits()), 1..12),
    ) {
        let rt = runtime();
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let stores: Vec<ReplicatedStore> = dirs.iter().map(|d| ReplicatedStore::open(config(d.path())).unwrap()).collect();
        let mut model = Model::default();
        for (i, (op, limits)) in steps.into_iter().enumerate() {
            let mutation = Mutation { now_ms: 1_000_000 + i as u64, op };
            let index = i as u64 + 1;
            model.1 = index;
            let expected = apply(&mut model, &mutation, &limits).unwrap();
            for store in &stores {
                let entry = LogEntry {
                    mutation: Some(mutation.clone()),
                    request: None,
                    retry: false,
                    limits,
                    applied_mark: Bytes::from(format!("mark-{i}")),
                    index,
                };
                let got = rt.block_on(store.apply_log(vec![entry])).unwrap();
                prop_assert_eq!(&got, &vec![expected.clone()]);
            }
        }
        let expected: Vec<(Bytes, Bytes)> = model
            .0
            .iter()
            .filter(|(_, r)| r.is_live_at(0))
            .map(|(k, r)| (k.clone(), r.value.clone()))
            .collect();
        for store in &stores {
            prop_assert_eq!(contents(store), expected.clone());
            prop_assert!(store.counts_match_recount().unwrap(), "key counters drifted");
            // The versions too: every replica stamps alike.
            for (key, record) in &model.0 {
                let stored = store.snapshot().get(key, 0).unwrap();
                prop_assert_eq!(stored.map(|r| r.version), Some(record.version));
            }
        }
        // And the raw state (records, counters, deletion version) is the
        // same on both replicas, byte for byte, but for the mark.
        let raw = |s: &Store| -> Vec<(Bytes, Bytes)> {
            s.snapshot().export().map(Result::unwrap).collect()
        };
        prop_assert_eq!(raw(&stores[0]), raw(&stores[1]));
    }
}

/// The finding itself, on one store: keys at and past the engine's length
/// in the commands that did not check them are refusals, and the store
/// keeps working.
#[test]
fn keys_past_the_engine_length_are_refused_not_fatal() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = ReplicatedStore::open(config(dir.path())).unwrap();
    let no_limits = Limits {
        key_size_bytes_max: usize::MAX,
        value_size_bytes_max: usize::MAX,
    };
    let huge = Bytes::from(vec![b'k'; 65_536]);
    for op in [
        Op::Delete {
            keys: vec![huge.clone()],
        },
        Op::GetDel { key: huge.clone() },
        Op::Expire {
            key: huge.clone(),
            at_ms: 1,
            condition: ExpireCondition::Always,
        },
        Op::Persist { key: huge.clone() },
        Op::Rename {
            from: huge.clone(),
            to: Bytes::from_static(b"x"),
            if_absent: false,
        },
    ] {
        let entry = LogEntry {
            mutation: Some(Mutation { now_ms: 1, op }),
            request: None,
            retry: false,
            limits: no_limits,
            applied_mark: Bytes::from_static(b"m"),
            index: 1,
        };
        let got = rt.block_on(store.apply_log(vec![entry])).unwrap();
        assert!(
            matches!(
                got.as_slice(),
                [Outcome::Refused(
                    strata_storage::MutationError::KeyTooLarge {
                        len: 65_536,
                        max: KEY_SIZE_BYTES_LIMIT
                    }
                )]
            ),
            "{got:?}"
        );
    }
    // Reads of such keys find nothing instead of reaching the engine.
    assert_eq!(store.get(&huge, 1).unwrap(), None);
    let snapshot = store.snapshot();
    assert_eq!(
        snapshot.get_many(std::slice::from_ref(&huge), 1).unwrap(),
        vec![None]
    );
    assert_eq!(snapshot.range(&huge, &huge, 10, 1).unwrap().0, vec![]);
    let pattern = [&huge[..], b"*"].concat();
    assert_eq!(
        snapshot.scan(None, 10, Some(&pattern), 1).unwrap().0,
        Vec::<Bytes>::new()
    );
}
