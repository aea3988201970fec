//! The on-disk encoding of a value, its expiry and its modification version.
//!
//! Layout: one tag byte, then
//! - [`TAG_PLAIN`] (0): the value bytes;
//! - [`TAG_EXPIRING`] (1): an 8-byte little-endian absolute expiry time in
//!   Unix milliseconds (never 0), then the value bytes;
//! - [`TAG_VERSIONED`] (2): an 8-byte little-endian modification version
//!   (never 0), then the value bytes;
//! - [`TAG_VERSIONED_EXPIRING`] (3): the 8-byte version (never 0), the
//!   8-byte expiry time (never 0), then the value bytes.
//!
//! Tags 0 and 1 are what builds before versions wrote; they decode with
//! version 0, which no write ever stamps (see [`Record::version`]), so a
//! record written before versions existed differs from every record
//! written since. Every record this build writes has tag 2 or 3: 9 bytes
//! of header, 17 with an expiry.
//!
//! Decoding is strict: bytes read from disk are untrusted, so a record that
//! does not decode is reported as corruption, never guessed at.

use bytes::{BufMut, Bytes, BytesMut};

const TAG_PLAIN: u8 = 0;
const TAG_EXPIRING: u8 = 1;
const TAG_VERSIONED: u8 = 2;
const TAG_VERSIONED_EXPIRING: u8 = 3;
const EXPIRY_LEN: usize = 8;
const VERSION_LEN: usize = 8;

/// A stored string value. `expire_at_ms == 0` means no expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub value: Bytes,
    pub expire_at_ms: u64,
    /// The modification version: stamped by the state that stores the
    /// record (`State::put`), from a sequence that only grows over the
    /// store's life: on a single node the commit group's number, in a
    /// cluster the Raft log index of the entry that wrote it. Two writes
    /// of the same value have different versions, which is what WATCH
    /// compares. 0 for a record not stored yet, or stored by a build
    /// before versions.
    pub version: u64,
}

impl Record {
    /// A record not yet stored (version 0; the state stamps it).
    pub fn new(value: Bytes, expire_at_ms: u64) -> Self {
        Record {
            value,
            expire_at_ms,
            version: 0,
        }
    }

    pub fn with_version(mut self, version: u64) -> Self {
        self.version = version;
        self
    }

    pub fn has_expiry(&self) -> bool {
        self.expire_at_ms != 0
    }

    /// A record is live until its expiry time has been reached. Redis treats a
    /// key as expired when `now > expire_at`; we use `now >= expire_at` so that
    /// a TTL of N ms never returns the key at exactly N ms, like Redis's PTTL
    /// never answering 0 for a live key.
    pub fn is_live_at(&self, now_ms: u64) -> bool {
        self.expire_at_ms == 0 || now_ms < self.expire_at_ms
    }

    pub fn encoded_len(&self) -> usize {
        1 + if self.version != 0 { VERSION_LEN } else { 0 }
            + if self.has_expiry() { EXPIRY_LEN } else { 0 }
            + self.value.len()
    }

    /// Version 0 (a record never stamped) keeps the old tags, so that a
    /// record decoded from an old build encodes back to its exact bytes.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        let tag = match (self.version != 0, self.has_expiry()) {
            (false, false) => TAG_PLAIN,
            (false, true) => TAG_EXPIRING,
            (true, false) => TAG_VERSIONED,
            (true, true) => TAG_VERSIONED_EXPIRING,
        };
        out.put_u8(tag);
        if self.version != 0 {
            out.put_u64_le(self.version);
        }
        if self.has_expiry() {
            out.put_u64_le(self.expire_at_ms);
        }
        out.put_slice(&self.value);
        out.freeze()
    }

    /// Decodes without copying the value: it is a slice of `raw`.
    pub fn decode(raw: Bytes) -> Result<Record, &'static str> {
        let (versioned, expiring) = match raw.first() {
            Some(&TAG_PLAIN) => (false, false),
            Some(&TAG_EXPIRING) => (false, true),
            Some(&TAG_VERSIONED) => (true, false),
            Some(&TAG_VERSIONED_EXPIRING) => (true, true),
            Some(_) => return Err("unknown record tag"),
            None => return Err("empty record"),
        };
        let mut at = 1;
        let mut version = 0;
        if versioned {
            version = read_u64_le(&raw, at).ok_or("truncated version")?;
            if version == 0 {
                return Err("versioned record with version zero");
            }
            at += VERSION_LEN;
        }
        let mut expire_at_ms = 0;
        if expiring {
            expire_at_ms = read_u64_le(&raw, at).ok_or("truncated expiry")?;
            if expire_at_ms == 0 {
                return Err("expiring record with zero expiry");
            }
            at += EXPIRY_LEN;
        }
        Ok(Record {
            value: raw.slice(at..),
            expire_at_ms,
            version,
        })
    }
}

fn read_u64_le(raw: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = raw.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// Key of the expiry index: big-endian time first, so a range scan from the
/// start finds the keys that expire soonest.
pub fn expiry_index_key(expire_at_ms: u64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(EXPIRY_LEN + key.len());
    out.extend_from_slice(&expire_at_ms.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// Splits an expiry index key back into (time, user key).
pub fn split_expiry_index_key(raw: &[u8]) -> Option<(u64, &[u8])> {
    let ts = raw.get(..EXPIRY_LEN)?;
    let mut ts_bytes = [0u8; EXPIRY_LEN];
    ts_bytes.copy_from_slice(ts);
    Some((u64::from_be_bytes(ts_bytes), raw.get(EXPIRY_LEN..)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn record_round_trips(
            value in proptest::collection::vec(any::<u8>(), 0..300),
            expiry in any::<u64>(),
            version in prop_oneof![Just(0u64), any::<u64>()],
        ) {
            let r = Record::new(Bytes::from(value), expiry).with_version(version);
            let raw = r.encode();
            prop_assert_eq!(raw.len(), r.encoded_len());
            let back = Record::decode(raw).unwrap();
            prop_assert_eq!(back, r);
        }

        #[test]
        fn decode_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Record::decode(Bytes::from(raw));
        }

        /// Any byte of a stored record flipped: an error or some record,
        /// never a panic; and a record that does decode encodes back to
        /// the same bytes (decoding is strict, nothing is guessed).
        #[test]
        fn flipped_bytes_never_panic(
            value in proptest::collection::vec(any::<u8>(), 0..40),
            expiry in prop_oneof![Just(0u64), 1..u64::MAX],
            version in 1..u64::MAX,
            at in any::<prop::sample::Index>(),
            mask in 1..=255u8,
        ) {
            let raw = Record::new(Bytes::from(value), expiry).with_version(version).encode();
            let mut bad = raw.to_vec();
            bad[at.index(raw.len())] ^= mask;
            if let Ok(r) = Record::decode(Bytes::from(bad.clone())) {
                prop_assert_eq!(&r.encode()[..], &bad[..]);
            }
            for len in 0..raw.len() {
                if let Ok(r) = Record::decode(raw.slice(..len)) {
                    prop_assert_eq!(r.encode(), raw.slice(..len));
                }
            }
        }

        #[test]
        fn expiry_index_key_round_trips(ts in any::<u64>(), key in proptest::collection::vec(any::<u8>(), 0..64)) {
            let raw = expiry_index_key(ts, &key);
            let (t, k) = split_expiry_index_key(&raw).unwrap();
            prop_assert_eq!(t, ts);
            prop_assert_eq!(k, &key[..]);
        }
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(Record::decode(Bytes::new()).is_err());
        assert!(Record::decode(Bytes::from_static(&[7, 1, 2])).is_err());
        assert!(Record::decode(Bytes::from_static(&[1, 1, 2])).is_err());
        assert!(Record::decode(Bytes::from_static(&[1, 0, 0, 0, 0, 0, 0, 0, 0])).is_err());
        // Versioned tags: truncated, a zero version, a zero expiry.
        assert!(Record::decode(Bytes::from_static(&[2, 1, 0, 0])).is_err());
        assert!(Record::decode(Bytes::from_static(&[2, 0, 0, 0, 0, 0, 0, 0, 0])).is_err());
        assert!(Record::decode(Bytes::from_static(&[3, 1, 0, 0, 0, 0, 0, 0, 0, 5])).is_err());
        assert!(
            Record::decode(Bytes::from_static(&[
                3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
            ]))
            .is_err()
        );
        assert!(Record::decode(Bytes::from_static(&[4, 1])).is_err());
    }

    /// Records as builds before versions wrote them: exact bytes.
    #[test]
    fn old_records_decode_with_version_zero() {
        let plain = Record::decode(Bytes::from_static(b"\x00hello")).unwrap();
        assert_eq!(plain, Record::new(Bytes::from_static(b"hello"), 0));
        assert_eq!(plain.version, 0);
        let mut raw = vec![1u8];
        raw.extend_from_slice(&1_700_000_000_123u64.to_le_bytes());
        raw.extend_from_slice(b"v");
        let expiring = Record::decode(Bytes::from(raw.clone())).unwrap();
        assert_eq!(
            expiring,
            Record::new(Bytes::from_static(b"v"), 1_700_000_000_123)
        );
        // Unstamped records encode as they always did, byte for byte.
        assert_eq!(&expiring.encode()[..], &raw[..]);
        assert_eq!(&plain.encode()[..], b"\x00hello");
    }

    /// The layout of what this build writes, byte by byte.
    #[test]
    fn versioned_layout() {
        let r = Record::new(Bytes::from_static(b"ab"), 0).with_version(0x0102);
        assert_eq!(&r.encode()[..], &[2, 2, 1, 0, 0, 0, 0, 0, 0, b'a', b'b']);
        let r = Record::new(Bytes::from_static(b"ab"), 0x0304).with_version(7);
        assert_eq!(
            &r.encode()[..],
            &[
                3, 7, 0, 0, 0, 0, 0, 0, 0, 4, 3, 0, 0, 0, 0, 0, 0, b'a', b'b'
            ]
        );
        assert_eq!(Record::decode(r.encode()).unwrap(), r);
    }

    #[test]
    fn expiry_index_orders_by_time() {
        assert!(expiry_index_key(1, b"zzz") < expiry_index_key(2, b"a"));
        assert!(expiry_index_key(255, b"a") < expiry_index_key(256, b"a"));
    }
}
