//! Values and keys read back from disk, each through the decoder the
//! store or the node uses.
//!
//! Input: [which decoder][parameter] then the stored bytes.
//! Checks, beyond no panic: whatever decodes re-encodes to the same value
//! (exactly the input bytes where the encoding is canonical: records,
//! expiry keys, counters), and decoding is strict, as docs/format.md
//! promises: bytes after a value that decodes make it an error.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use openraft::EntryPayload;
use strata_fuzz::Input;
use strata_replication::Proposal;
use strata_replication::fuzzing as node;
use strata_storage::Mutation;
use strata_storage::fuzzing as store;
use strata_storage::record::{Record, expiry_index_key, split_expiry_index_key};

/// `raw` with one more byte after it.
fn padded(raw: &[u8]) -> Vec<u8> {
    let mut out = raw.to_vec();
    out.push(0);
    out
}

/// A data record (`k` ++ key -> record): the encoding is canonical.
fn record(raw: &[u8]) {
    if let Ok(record) = Record::decode(Bytes::copy_from_slice(raw)) {
        assert_eq!(record.encoded_len(), raw.len());
        assert_eq!(record.encode(), raw);
    }
}

/// An expiry index key, bare and as stored (`x` ++ be_u64 ++ user key).
fn expiry_key(raw: &[u8]) {
    if let Some((at, key)) = split_expiry_index_key(raw) {
        assert_eq!(expiry_index_key(at, key), raw);
    } else {
        assert!(raw.len() < 8);
    }
    match store::expiry_key(raw) {
        Some((at, key)) => {
            assert_eq!(raw[0], b'x');
            assert_eq!(expiry_index_key(at, key), raw[1..]);
        }
        None => assert!(raw.first() != Some(&b'x') || raw.len() < 9),
    }
}

fn counts(raw: &[u8]) {
    if let Some(((keys, expiring), encoded)) = store::counts(raw) {
        assert!(expiring <= keys);
        assert_eq!(encoded, raw);
    }
}

fn dedupe_record(raw: &[u8]) {
    if let Ok(encoded) = store::dedupe_record(raw) {
        assert!(
            store::dedupe_record(&padded(raw)).is_err(),
            "trailing bytes"
        );
        let again = store::dedupe_record(&encoded).expect("a re-encoded record decodes");
        assert_eq!(again, encoded);
    }
}

fn log_entry(raw: &[u8]) {
    let Ok(entry) = node::log_entry(raw) else {
        return;
    };
    assert!(node::log_entry(&padded(raw)).is_err(), "trailing bytes");
    // What the state machine does with it: check the proposal invariant.
    if let EntryPayload::Normal(proposal) = &entry.payload {
        let _ = proposal.check();
        let _ = proposal.to_string();
    }
    let encoded = postcard::to_allocvec(&entry).expect("an entry encodes");
    assert_eq!(
        node::log_entry(&encoded).expect("a re-encoded entry decodes"),
        entry
    );
}

fn log_meta(which: u8, raw: &[u8]) {
    let name = ["vote", "purged", "committed", "format"][usize::from(which % 4)];
    if let Ok(encoded) = node::log_meta(name, raw) {
        assert!(
            node::log_meta(name, &padded(raw)).is_err(),
            "trailing bytes"
        );
        assert_eq!(
            node::log_meta(name, &encoded).expect("decodes again"),
            encoded
        );
    }
}

fn applied_mark(raw: &[u8]) {
    if let Ok((last, encoded)) = node::applied_mark(raw) {
        assert!(node::applied_mark(&padded(raw)).is_err(), "trailing bytes");
        let (again, encoded_again) = node::applied_mark(&encoded).expect("decodes again");
        assert_eq!(again, last);
        assert_eq!(encoded_again, encoded);
    }
}

fn mutation(raw: &[u8]) {
    if let Ok(m) = Mutation::from_bytes(raw) {
        assert!(
            Mutation::from_bytes(&padded(raw)).is_err(),
            "trailing bytes"
        );
        let _ = m.payload_size_bytes();
        let encoded = m.to_bytes().expect("a mutation encodes");
        assert_eq!(Mutation::from_bytes(&encoded).expect("decodes again"), m);
    }
}

/// A log entry's payload: the commands of one proposal.
fn proposal(raw: &[u8]) {
    if let Ok(p) = Proposal::decode(Bytes::copy_from_slice(raw)) {
        assert!(
            Proposal::decode(Bytes::from(padded(raw))).is_err(),
            "trailing bytes"
        );
        assert_eq!(p.encoded_size_bytes(), raw.len());
        let _ = p.check();
        let again = Proposal::new(p.commands().to_vec()).expect("commands encode");
        let decoded = Proposal::decode(Bytes::from(
            postcard::to_allocvec(again.commands()).unwrap(),
        ));
        assert_eq!(decoded.expect("decodes again"), p);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let which = input.byte();
    let parameter = input.byte();
    let raw = input.rest();
    match which % 9 {
        0 => record(raw),
        1 => expiry_key(raw),
        2 => counts(raw),
        3 => dedupe_record(raw),
        4 => log_entry(raw),
        5 => log_meta(parameter, raw),
        6 => applied_mark(raw),
        7 => mutation(raw),
        _ => proposal(raw),
    }
});
