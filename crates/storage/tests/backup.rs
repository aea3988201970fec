//! Backup files through the storage API: a stream read back whole in any
//! chunk size, every byte of a small file damaged or cut refused, and
//! restores that are all or nothing, into either mode.

use std::io::Cursor;
use std::path::Path;

use bytes::Bytes;
use proptest::prelude::*;
use strata_storage::{
    BackupError, BackupHeader, BackupReader, BackupStream, FsyncPolicy, LocalStore, Mutation, Op,
    ReplicatedStore, RestoreMode, SetCondition, SetExpiry, StorageConfig, Store, now_ms,
    restore_data_dir,
};

fn config(dir: &Path) -> StorageConfig {
    let mut c = StorageConfig::new(dir);
    c.fsync = FsyncPolicy::Never;
    c.cache_size_bytes = 4 * 1024 * 1024;
    c.memtable_size_bytes = 1024 * 1024;
    c.journal_size_bytes_max = 64 * 1024 * 1024;
    c
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn set(key: &[u8], value: &[u8], expire_at_ms: Option<u64>) -> Mutation {
    Mutation {
        now_ms: now_ms(),
        op: Op::Set {
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(value),
            condition: SetCondition::Always,
            expiry: expire_at_ms.map_or(SetExpiry::Clear, SetExpiry::At),
            return_old: false,
        },
    }
}

/// The whole backup of `store`'s latest state, cut in `chunk_bytes` chunks.
fn backup_bytes(store: &Store, taken_at_ms: u64, chunk_bytes: usize) -> (Vec<u8>, BackupHeader) {
    let (snapshot, version) = store.snapshot_with_version();
    let header = BackupHeader {
        taken_at_ms,
        version,
        node_id: 0,
        server: "test".into(),
    };
    let mut stream = BackupStream::new(&snapshot, header.clone()).unwrap();
    let mut out = Vec::new();
    loop {
        let chunk = stream.next_chunk(chunk_bytes).unwrap();
        if chunk.is_empty() {
            break;
        }
        assert!(chunk.len() <= chunk_bytes);
        out.extend_from_slice(&chunk);
        assert_eq!(stream.offset(), out.len() as u64);
    }
    // Complete: it stays empty.
    assert!(stream.next_chunk(chunk_bytes).unwrap().is_empty());
    (out, header)
}

/// Every (key, value, expiry, version) a reader finds, after checking the
/// whole file.
fn read_all(file: &[u8]) -> Result<Vec<(Bytes, Bytes, u64, u64)>, BackupError> {
    let mut reader = BackupReader::open(Cursor::new(file))?;
    let mut out = Vec::new();
    while let Some(r) = reader.next_record()? {
        out.push((
            r.key,
            r.record.value,
            r.record.expire_at_ms,
            r.record.version,
        ));
    }
    assert_eq!(reader.summary().file_bytes, file.len() as u64);
    assert_eq!(reader.summary().keys, out.len() as u64);
    Ok(out)
}

/// A store with an empty key, a long value (queued without a copy), an
/// expiring key, one that will have expired at the backup, and a
/// deleted one.
fn filled_store(dir: &Path) -> (LocalStore, u64) {
    let rt = runtime();
    let store = LocalStore::open(config(dir)).unwrap();
    let now = now_ms();
    let long = vec![7u8; 40_000];
    rt.block_on(async {
        for m in [
            set(b"", b"empty key", None),
            set(b"a", b"1", None),
            set(b"long", &long, None),
            set(b"ttl", b"lives", Some(now + 3_600_000)),
            set(b"gone-at-backup", b"x", Some(now + 60_000)),
            set(b"z", b"2", None),
        ] {
            store.submit(m).await.unwrap();
        }
        store
            .submit(Mutation {
                now_ms: now,
                op: Op::Delete {
                    keys: vec![Bytes::from_static(b"z")],
                },
            })
            .await
            .unwrap();
    });
    (store, now)
}

#[test]
fn a_backup_reads_back_whole_in_any_chunk_size() {
    let dir = tempfile::tempdir().unwrap();
    let (store, now) = filled_store(dir.path());
    // Taken "two minutes later": the key due in one minute is left out.
    let taken_at = now + 120_000;
    let (whole, header) = backup_bytes(&store, taken_at, 1 << 20);
    let records = read_all(&whole).unwrap();
    let keys: Vec<&[u8]> = records.iter().map(|r| &r.0[..]).collect();
    assert_eq!(keys, vec![&b""[..], b"a", b"long", b"ttl"]);
    assert_eq!(records[2].1.len(), 40_000);
    assert_eq!(records[3].2, now + 3_600_000, "the expiry travels");
    assert!(records.iter().all(|r| r.3 >= 1 && r.3 <= header.version));
    for chunk in [1, 7, 4096, 16_385] {
        let (again, _) = backup_bytes(&store, taken_at, chunk);
        assert_eq!(again, whole, "chunk size {chunk}");
    }
    let mut reader = BackupReader::open(Cursor::new(&whole)).unwrap();
    assert_eq!(reader.header(), &header);
    reader.verify_to_end().unwrap();
    assert_eq!(reader.summary().expiring_keys, 1);
    assert_eq!(reader.summary().value_bytes, 9 + 1 + 40_000 + 5);
}

/// Every single byte flipped (three ways), every cut, and a byte added:
/// all refused by a full read. Exhaustive over a small file, so every
/// region (magic, version, header, lengths, keys, records, trailer,
/// checksum) is covered.
#[test]
fn every_damaged_or_cut_byte_of_a_small_backup_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (store, now) = filled_store(dir.path());
    let rt = runtime();
    rt.block_on(async {
        store
            .submit(Mutation {
                now_ms: now,
                op: Op::Delete {
                    keys: vec![Bytes::from_static(b"long")],
                },
            })
            .await
            .unwrap();
    });
    let (file, _) = backup_bytes(&store, now, 64);
    assert!(file.len() < 400, "a small file: {}", file.len());
    read_all(&file).unwrap();
    for at in 0..file.len() {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut bad = file.clone();
            bad[at] ^= mask;
            assert!(read_all(&bad).is_err(), "byte {at} ^ {mask:#x} accepted");
        }
    }
    for len in 0..file.len() {
        let err = read_all(&file[..len]).unwrap_err();
        assert!(err.is_damage(), "cut at {len}: {err}");
    }
    let mut longer = file.clone();
    longer.push(0);
    assert!(read_all(&longer).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Random damage anywhere (several bytes, then maybe a cut) never
    /// passes a full read.
    #[test]
    fn random_damage_is_refused(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let file = small_backup();
        let mut bad = file.clone();
        for (at, mask) in flips {
            bad[at.index(file.len())] ^= mask;
        }
        if let Some(cut) = cut {
            bad.truncate(cut.index(file.len()));
        }
        // Two flips of one byte can cancel out.
        prop_assume!(bad != file);
        prop_assert!(read_all(&bad).is_err());
    }
}

/// One small backup file, built once for the property test.
fn small_backup() -> Vec<u8> {
    static FILE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (store, now) = filled_store(dir.path());
        backup_bytes(&store, now, 1 << 20).0
    })
    .clone()
}

#[test]
fn a_restored_single_node_holds_the_records_and_writes_above_them() {
    let dir = tempfile::tempdir().unwrap();
    let (store, now) = filled_store(&dir.path().join("source"));
    let (file, header) = backup_bytes(&store, now, 1 << 20);
    let target = dir.path().join("restored");
    let reader = BackupReader::open(Cursor::new(&file)).unwrap();
    let report = restore_data_dir(reader, &target, RestoreMode::SingleNode, now).unwrap();
    assert_eq!(report.keys_restored, 5);
    assert_eq!(report.keys_expired, 0);
    let restored = LocalStore::open(config(&target)).unwrap();
    for key in [&b""[..], b"a", b"long", b"ttl", b"gone-at-backup"] {
        assert_eq!(
            restored.get(key, now).unwrap(),
            store.get(key, now).unwrap(),
            "{key:?}"
        );
    }
    assert_eq!(restored.get(b"z", now).unwrap(), None);
    assert_eq!(restored.stats().keys, 5);
    assert_eq!(restored.stats().expiring_keys, 2);
    assert!(restored.counts_match_recount().unwrap());
    // The next write is stamped above every restored record.
    runtime().block_on(async {
        restored.submit(set(b"new", b"v", None)).await.unwrap();
    });
    let new = restored.get(b"new", now).unwrap().unwrap();
    assert!(
        new.version > header.version,
        "{} <= {}",
        new.version,
        header.version
    );
    // Restoring later skips what expired in between.
    let later = dir.path().join("later");
    let reader = BackupReader::open(Cursor::new(&file)).unwrap();
    let report = restore_data_dir(reader, &later, RestoreMode::SingleNode, now + 120_000).unwrap();
    assert_eq!((report.keys_restored, report.keys_expired), (4, 1));
}

#[test]
fn a_cluster_seed_carries_its_mark() {
    let dir = tempfile::tempdir().unwrap();
    let (store, now) = filled_store(&dir.path().join("source"));
    let (file, _) = backup_bytes(&store, now, 1 << 20);
    let target = dir.path().join("seed");
    let reader = BackupReader::open(Cursor::new(&file)).unwrap();
    let mode = RestoreMode::ClusterSeed {
        applied_mark: Bytes::from_static(b"the mark"),
    };
    restore_data_dir(reader, &target, mode, now).unwrap();
    let seeded = ReplicatedStore::open(config(&target)).unwrap();
    assert_eq!(
        seeded.applied_mark().unwrap(),
        Some(Bytes::from_static(b"the mark"))
    );
    assert_eq!(
        seeded.get(b"ttl", now).unwrap(),
        store.get(b"ttl", now).unwrap()
    );
    assert_eq!(seeded.due_expiries(now + 3_600_000, 10).unwrap().len(), 2);
}

/// A damaged or cut file restores nothing: no target, no leftover.
#[test]
fn a_damaged_backup_restores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, now) = filled_store(&dir.path().join("source"));
    let (file, _) = backup_bytes(&store, now, 1 << 20);
    let parent = dir.path().join("targets");
    std::fs::create_dir(&parent).unwrap();
    let step = (file.len() / 16).max(1);
    for at in (0..file.len()).step_by(step) {
        let mut bad = file.clone();
        bad[at] ^= 0x20;
        for damaged in [bad, file[..at].to_vec()] {
            let target = parent.join("data");
            let result = BackupReader::open(Cursor::new(&damaged))
                .and_then(|reader| restore_data_dir(reader, &target, RestoreMode::SingleNode, now));
            let err = result.expect_err("a damaged file restored");
            assert!(err.is_damage(), "at {at}: {err}");
            let left: Vec<_> = std::fs::read_dir(&parent).unwrap().collect();
            assert!(left.is_empty(), "at {at}: left {left:?}");
        }
    }
}

#[test]
fn a_restore_refuses_a_non_empty_target() {
    let dir = tempfile::tempdir().unwrap();
    let (store, now) = filled_store(&dir.path().join("source"));
    let (file, _) = backup_bytes(&store, now, 1 << 20);
    let target = dir.path().join("busy");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("precious"), b"keep me").unwrap();
    let reader = BackupReader::open(Cursor::new(&file)).unwrap();
    let err = restore_data_dir(reader, &target, RestoreMode::SingleNode, now).unwrap_err();
    assert!(matches!(err, BackupError::Target(_)), "{err}");
    assert_eq!(std::fs::read(target.join("precious")).unwrap(), b"keep me");
    // An empty directory is fine.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let reader = BackupReader::open(Cursor::new(&file)).unwrap();
    restore_data_dir(reader, &empty, RestoreMode::SingleNode, now).unwrap();
    assert!(empty.join("keyspaces").is_dir());
}

/// A FLUSHALL after the snapshot does not reach the backup: the engine's
/// snapshot keeps the cleared data.
#[test]
fn a_backup_is_a_point_in_time_across_a_flushall() {
    let dir = tempfile::tempdir().unwrap();
    let (store, now) = filled_store(dir.path());
    let (snapshot, version) = store.snapshot_with_version();
    let header = BackupHeader {
        taken_at_ms: now,
        version,
        node_id: 0,
        server: "test".into(),
    };
    let mut stream = BackupStream::new(&snapshot, header).unwrap();
    drop(snapshot);
    let mut file = stream.next_chunk(16).unwrap().to_vec();
    runtime().block_on(async {
        store
            .submit(Mutation {
                now_ms: now,
                op: Op::FlushAll,
            })
            .await
            .unwrap();
        store.submit(set(b"after", b"x", None)).await.unwrap();
    });
    loop {
        let chunk = stream.next_chunk(16).unwrap();
        if chunk.is_empty() {
            break;
        }
        file.extend_from_slice(&chunk);
    }
    let keys: Vec<Bytes> = read_all(&file).unwrap().into_iter().map(|r| r.0).collect();
    assert_eq!(keys.len(), 5, "{keys:?}");
    assert!(!keys.iter().any(|k| &k[..] == b"after"));
}
