//! The journal verification rule (vendored fjall, `journal/verify.rs`) on
//! hand-built journal files: which tails are torn (dropped at the next
//! start) and which are corruption (the start is refused).

use std::hash::Hasher;
use std::path::Path;

use fjall::{JournalEnd, JournalStatus, verify_journals};

const MAGIC: &[u8] = b"FJL\x03";
/// Journals are preallocated with zeros; a smaller size keeps tests fast.
const PREALLOCATED_BYTES: usize = 64 * 1024;

/// One batch as fjall's writer encodes it: start marker, items, end marker
/// with the xxh3 checksum of the items' bytes.
fn batch(seqno: u64, items: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = vec![1u8];
    out.extend_from_slice(&(items.len() as u32).to_le_bytes());
    out.extend_from_slice(&seqno.to_le_bytes());
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for (key, value) in items {
        let mut item = vec![2u8, 0, 0];
        item.extend_from_slice(&1u64.to_le_bytes());
        item.extend_from_slice(&(key.len() as u16).to_le_bytes());
        item.extend_from_slice(&(value.len() as u32).to_le_bytes());
        item.extend_from_slice(&(value.len() as u32).to_le_bytes());
        item.extend_from_slice(key);
        item.extend_from_slice(value);
        hasher.update(&item);
        out.extend_from_slice(&item);
    }
    end_marker(&mut out, hasher.finish());
    out
}

/// A batch that clears keyspace 1.
fn clear_batch(seqno: u64) -> Vec<u8> {
    let mut out = vec![1u8];
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&seqno.to_le_bytes());
    let mut clear = vec![4u8];
    clear.extend_from_slice(&1u64.to_le_bytes());
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(&clear);
    out.extend_from_slice(&clear);
    end_marker(&mut out, hasher.finish());
    out
}

fn end_marker(out: &mut Vec<u8>, checksum: u64) {
    out.push(3);
    out.extend_from_slice(&checksum.to_le_bytes());
    out.extend_from_slice(MAGIC);
}

fn batches(seqnos: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    seqnos
        .map(|s| batch(s, &[(b"key", format!("value {s}").as_bytes())]))
        .collect()
}

/// Writes `content` as journal `id`, padded with zeros like a
/// preallocated journal.
fn write_journal(dir: &Path, id: u64, content: &[u8]) {
    let mut bytes = content.to_vec();
    bytes.resize(PREALLOCATED_BYTES.max(content.len()), 0);
    std::fs::write(dir.join(format!("{id}.jnl")), bytes).unwrap();
}

fn verify(dir: &Path) -> Vec<JournalStatus> {
    verify_journals(dir).unwrap()
}

fn corrupt_at(status: &JournalStatus) -> u64 {
    match &status.end {
        JournalEnd::Corrupt { offset, .. } => *offset,
        other => panic!("expected corruption, got {other:?} ({status:?})"),
    }
}

#[test]
fn clean_journals_and_a_torn_last_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let b = batches(1..6);
    write_journal(tmp.path(), 0, &b[..3].concat());
    // Every cut of the last batch, including inside its end trailer, is a
    // torn tail with the two batches before it valid.
    let last = &b[5 - 1];
    for cut in 1..last.len() {
        let mut content = b[3].clone();
        content.extend_from_slice(&last[..cut]);
        write_journal(tmp.path(), 1, &content);
        let s = verify(tmp.path());
        assert_eq!(s[0].end, JournalEnd::Clean, "{s:?}");
        assert_eq!(s[1].end, JournalEnd::TornTail, "cut {cut}: {s:?}");
        assert_eq!(s[1].valid_size_bytes, b[3].len() as u64);
        assert_eq!(s[1].batches, 1);
    }
    // Without preallocated zeros: the file just ends.
    let mut content = b[3].clone();
    content.extend_from_slice(&last[..last.len() / 2]);
    std::fs::write(tmp.path().join("1.jnl"), &content).unwrap();
    assert_eq!(verify(tmp.path())[1].end, JournalEnd::TornTail);
}

#[test]
fn a_flipped_byte_anywhere_before_the_last_batch_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let b = batches(1..5);
    let content = b.concat();
    let last_start = content.len() - b[3].len();
    for at in 0..last_start {
        for xor in [0x01u8, 0x80, 0xff] {
            let mut damaged = content.clone();
            damaged[at] ^= xor;
            write_journal(tmp.path(), 0, &damaged);
            let s = verify(tmp.path());
            // Bytes 5..13: the sequence number of the very first batch,
            // which has no predecessor to be checked against; a lower
            // number is not detected (a documented limit).
            let first_lowered = (5..13).contains(&at) && damaged[at] < content[at];
            if first_lowered && s[0].end == JournalEnd::Clean {
                continue;
            }
            let JournalEnd::Corrupt { offset, .. } = s[0].end else {
                panic!("byte {at} ^ {xor:#x}: {s:?}");
            };
            assert!(
                offset <= at as u64,
                "byte {at} ^ {xor:#x}: reported at {offset}"
            );
        }
    }
}

#[test]
fn a_flipped_byte_in_the_last_batch_is_corruption_unless_harmless() {
    let tmp = tempfile::tempdir().unwrap();
    let b = batches(1..5);
    let content = b.concat();
    let last_start = content.len() - b[3].len();
    // Byte 5..13 of a batch is its sequence number: a flip that raises the
    // last batch's number is not detectable, and harmless (the batch still
    // replays, above every other).
    let seqno_bytes = last_start + 5..last_start + 13;
    for at in last_start..content.len() {
        let mut damaged = content.clone();
        damaged[at] ^= 0x40;
        write_journal(tmp.path(), 0, &damaged);
        let s = verify(tmp.path());
        match &s[0].end {
            JournalEnd::Corrupt { .. } => {}
            JournalEnd::Clean if seqno_bytes.contains(&at) => {
                assert_eq!(s[0].batches, 4, "byte {at}");
            }
            other => panic!("byte {at}: {other:?}, the last batch would be dropped silently"),
        }
    }
}

#[test]
fn a_torn_tail_in_a_sealed_journal_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let b = batches(1..5);
    let mut sealed = b[..2].concat();
    sealed.extend_from_slice(&b[2][..7]);
    write_journal(tmp.path(), 0, &sealed);
    write_journal(tmp.path(), 1, &b[3]);
    let s = verify(tmp.path());
    assert_eq!(corrupt_at(&s[0]), (b[0].len() + b[1].len()) as u64);
    assert_eq!(s[1].end, JournalEnd::Clean);
}

#[test]
fn bytes_after_a_gap_are_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let b = batches(1..4);
    let mut content = b.concat();
    let end = content.len();
    content.resize(end + 100, 0);
    content.push(0x17);
    write_journal(tmp.path(), 0, &content);
    assert_eq!(corrupt_at(&verify(tmp.path())[0]), end as u64);
    // A lost (zeroed) batch followed by a valid one.
    let mut content = b[0].clone();
    content.extend(std::iter::repeat_n(0u8, b[1].len()));
    content.extend_from_slice(&b[2]);
    write_journal(tmp.path(), 0, &content);
    assert_eq!(corrupt_at(&verify(tmp.path())[0]), b[0].len() as u64);
}

#[test]
fn sequence_numbers_going_backwards_are_corruption_except_after_a_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let b1 = batch(10, &[(b"a", b"1")]);
    let b2 = batch(11, &[(b"b", b"2")]);
    let b3 = batch(5, &[(b"c", b"3")]);
    write_journal(
        tmp.path(),
        0,
        &[b1.clone(), b2.clone(), b3.clone()].concat(),
    );
    // Reported at the earlier batch of the two: either may be the damaged one.
    assert_eq!(corrupt_at(&verify(tmp.path())[0]), b1.len() as u64);
    // Across journal files too.
    write_journal(tmp.path(), 0, &[b1.clone(), b2.clone()].concat());
    write_journal(tmp.path(), 1, &b3);
    assert_eq!(corrupt_at(&verify(tmp.path())[0]), b1.len() as u64);
    std::fs::remove_file(tmp.path().join("1.jnl")).unwrap();
    // After a clear, a restart may number the next batches lower.
    let clear = clear_batch(12);
    write_journal(tmp.path(), 0, &[b1, b2, clear, b3].concat());
    let s = verify(tmp.path());
    assert_eq!(s[0].end, JournalEnd::Clean, "{s:?}");
    assert_eq!(s[0].batches, 4);
}
