//! Property tests for the store's decoders of bytes read from disk or
//! received in a snapshot: the stable-toolchain counterpart of the
//! `disk_records` and `snapshot_file` fuzz targets (fuzz/README.md), so
//! that `cargo test` exercises every decoder without nightly.
//!
//! Whatever decodes re-encodes to the same value (to the same bytes where
//! the encoding is canonical), bytes after a value are an error, and
//! nothing panics.

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use strata_storage::Mutation;
use strata_storage::fuzzing;
use strata_storage::record::{Record, expiry_index_key, split_expiry_index_key};

/// Cases per run: 256 in `cargo test`; `STRATA_FUZZ_CASES=N` for a
/// longer run (fuzz/README.md).
fn cases() -> u32 {
    std::env::var("STRATA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Bytes as a decoder meets them: random, or small values that hit enum
/// variants, lengths and tags.
fn raw() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..64),
        vec(0u8..8, 0..64),
        vec(
            prop::sample::select(b"\x00\x01\x02\x05\x0e\x80\xffkmx".to_vec()),
            0..64
        ),
    ]
}

fn padded(raw: &[u8]) -> Vec<u8> {
    let mut out = raw.to_vec();
    out.push(0);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn records_decode_canonically(raw in raw()) {
        if let Ok(record) = Record::decode(Bytes::from(raw.clone())) {
            prop_assert_eq!(record.encode(), raw);
        }
    }

    #[test]
    fn expiry_keys_split_canonically(raw in raw()) {
        match split_expiry_index_key(&raw) {
            Some((at, key)) => prop_assert_eq!(expiry_index_key(at, key), raw.clone()),
            None => prop_assert!(raw.len() < 8),
        }
        if let Some((at, key)) = fuzzing::expiry_key(&raw) {
            prop_assert_eq!(raw[0], b'x');
            prop_assert_eq!(expiry_index_key(at, key), raw[1..].to_vec());
        }
    }

    #[test]
    fn counters_decode_canonically(raw in prop_oneof![raw(), vec(any::<u8>(), 16)]) {
        if let Some(((keys, expiring), encoded)) = fuzzing::counts(&raw) {
            prop_assert!(expiring <= keys);
            prop_assert_eq!(encoded.to_vec(), raw);
        }
    }

    #[test]
    fn dedupe_records_decode_strictly(raw in raw()) {
        if let Ok(encoded) = fuzzing::dedupe_record(&raw) {
            prop_assert!(fuzzing::dedupe_record(&padded(&raw)).is_err());
            prop_assert_eq!(fuzzing::dedupe_record(&encoded).unwrap(), encoded);
        }
    }

    #[test]
    fn mutations_decode_strictly(raw in raw()) {
        if let Ok(m) = Mutation::from_bytes(&raw) {
            prop_assert!(Mutation::from_bytes(&padded(&raw)).is_err());
            prop_assert_eq!(Mutation::from_bytes(&m.to_bytes().unwrap()).unwrap(), m);
        }
    }

    /// A snapshot entry is refused or accepted as a record, an expiry key,
    /// a meta value or a dedupe record that decodes; keys must ascend.
    #[test]
    fn snapshot_entries_are_checked_without_panics(
        key in raw(),
        value in raw(),
        previous in proptest::option::of(raw()),
    ) {
        let value = Bytes::from(value);
        match fuzzing::snapshot_entry(&key, &value, previous.as_deref()) {
            Ok(Some(record)) => {
                prop_assert_eq!(key[0], b'k');
                prop_assert_eq!(record.encode(), value.clone());
            }
            // `s`: search entries and the index catalog, checked once installed.
            Ok(None) => prop_assert!(matches!(key[0], b'm' | b'x' | b's')),
            Err(_) => {}
        }
        if previous.as_deref().is_some_and(|p| p >= key.as_slice()) {
            prop_assert!(fuzzing::snapshot_entry(&key, &value, previous.as_deref()).is_err());
        }
    }
}
