//! What the HTTP API's blocking queries and listings build on: the
//! publish observer sees every published view's changes with its version
//! (deletions and FLUSHALL included), `published_version` only grows, and
//! the record listings (a range, a prefix) carry versions and expiries.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use strata_storage::{
    FsyncPolicy, LocalStore, Mutation, Op, Outcome, PublishObserver, Published, SetCondition,
    SetExpiry, StorageConfig,
};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn set(key: &str, value: &str, expiry: SetExpiry) -> Op {
    Op::Set {
        key: b(key),
        value: b(value),
        condition: SetCondition::Always,
        expiry,
        return_old: false,
    }
}

/// One view as told: (version, changed keys (deleted?), everything).
type View = (u64, Vec<(Bytes, bool)>, bool);

/// Every view it was told of.
#[derive(Default)]
struct Seen(Mutex<Vec<View>>);

impl PublishObserver for Seen {
    fn published(&self, p: &Published<'_>) {
        let keys = p
            .keys
            .iter()
            .map(|(k, r)| (k.clone(), r.is_none()))
            .collect();
        self.0.lock().unwrap().push((p.version, keys, p.everything));
    }
}

#[test]
fn the_observer_sees_each_view_and_listings_carry_versions() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StorageConfig::new(dir.path());
    config.fsync = FsyncPolicy::Always;
    let store = LocalStore::open(config).unwrap();
    let seen = Arc::new(Seen::default());
    assert!(store.set_publish_observer(seen.clone()));
    assert!(!store.set_publish_observer(seen.clone()), "set once");
    let write = |op: Op| {
        store
            .submit_blocking(Mutation { now_ms: 1_000, op })
            .unwrap()
    };
    let v0 = store.published_version();
    assert_eq!(write(set("p/a", "1", SetExpiry::Clear)), Outcome::Ok);
    let v1 = store.published_version();
    assert!(v1 > v0);
    write(set("p/b", "2", SetExpiry::At(u64::MAX / 2)));
    write(set("q", "3", SetExpiry::Clear));
    write(Op::Delete {
        keys: vec![b("p/a")],
    });
    let v4 = store.published_version();
    {
        let seen = seen.0.lock().unwrap();
        let last = seen.last().unwrap();
        assert_eq!(last.0, v4, "told the published version");
        assert_eq!(last.1, vec![(b("p/a"), true)], "a deletion is a change");
        let versions: Vec<u64> = seen.iter().map(|s| s.0).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        assert!(
            seen.iter()
                .any(|s| s.1 == vec![(b("p/a"), false)] && s.0 == v1)
        );
    }
    // Listings: the prefix's live records, with versions and expiries.
    let (under, more) = store.prefix_records(b"p/", 10, 1_000).unwrap();
    assert!(!more);
    assert_eq!(under.len(), 1);
    assert_eq!(under[0].0, b("p/b"));
    assert_eq!(under[0].1.expire_at_ms, u64::MAX / 2);
    assert!(under[0].1.version > v1 && under[0].1.version <= v4);
    let (all, more) = store.range_records(b"a", b"z", 1, 1_000).unwrap();
    assert!(more, "q is past the limit");
    assert_eq!(all[0].0, b("p/b"));
    assert_eq!(store.prefix_records(b"", 10, 1_000).unwrap().0.len(), 2);
    assert!(store.prefix_records(b"r", 10, 1_000).unwrap().0.is_empty());
    // FLUSHALL changes everything.
    write(Op::FlushAll);
    assert!(seen.0.lock().unwrap().last().unwrap().2);
    assert!(store.published_version() >= v4);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(store.shutdown()).unwrap();
}
