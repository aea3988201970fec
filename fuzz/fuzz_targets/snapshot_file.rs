//! A snapshot file, as a node reads one it received from the leader (the
//! chunks are written to a file as they come, then verified whole) or
//! found at start: the reader and verifier of the replication crate, then
//! the store's check of every entry an install would write.
//!
//! Input: [mode] then the file. Mode bit 0 set: the last 4 bytes are
//! replaced with the right checksum, so that inputs get past it.
//! Checks, beyond no panic:
//! - the verifier accepts exactly the files whose entries all stream out
//!   without error;
//! - a file that verifies holds nothing but its header, its entries and
//!   its trailer (strict framing);
//! - every entry the store accepts decodes; a data record round-trips.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strata_fuzz::Input;
use strata_replication::fuzzing as node;
use strata_storage::fuzzing as store;

/// Magic, version, header length; the end marker, entry count, checksum.
const PREFIX_BYTES: usize = 8 + 4 + 4;
const TRAILER_BYTES: usize = 4 + 8 + 4;

/// One file per fuzzing process, in memory where the system has a tmpfs.
fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("strata-fuzz-snapshot-{}.snap", std::process::id()))
    })
}

/// Streams the entries as `ReplicatedStore::install` would take them; `Ok` with the
/// bytes they span if the stream ended cleanly.
fn stream_entries(file: &[u8]) -> Result<usize, ()> {
    let entries = node::snapshot_entries(path()).map_err(|_| ())?;
    let mut framed = 0usize;
    let mut previous: Option<Bytes> = None;
    let mut store_refused = false;
    for item in entries {
        let (key, value) = item.map_err(|_| ())?;
        framed += 8 + key.len() + value.len();
        assert!(framed <= file.len());
        // The store stops at the first entry it refuses; the reader goes
        // on here, for the verifier's sake.
        if store_refused {
            continue;
        }
        match store::snapshot_entry(&key, &value, previous.as_deref()) {
            Ok(Some(record)) => {
                assert_eq!(key[0], b'k');
                assert_eq!(record.encode(), value);
            }
            Ok(None) => {}
            Err(_) => store_refused = true,
        }
        previous = Some(key);
    }
    Ok(framed)
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = input.byte();
    let mut file = input.rest().to_vec();
    if mode & 1 == 1 && file.len() >= 4 {
        let body = file.len() - 4;
        let crc = crc32fast::hash(&file[..body]);
        file[body..].copy_from_slice(&crc.to_le_bytes());
    }
    std::fs::write(path(), &file).expect("write the snapshot file");
    let verified = node::verify_snapshot_file(path());
    let streamed = stream_entries(&file);
    // Nothing left behind in /dev/shm when the process ends.
    let _ = std::fs::remove_file(path());
    assert_eq!(verified.is_ok(), streamed.is_ok(), "{verified:?}");
    if let Ok(entries_bytes) = streamed {
        let header = u32::from_le_bytes(file[12..16].try_into().unwrap()) as usize;
        assert_eq!(
            file.len(),
            PREFIX_BYTES + header + entries_bytes + TRAILER_BYTES,
            "a snapshot file that verifies holds bytes beyond its trailer"
        );
    }
});
