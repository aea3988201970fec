//! The on-disk encoding of a value and its expiry.
//!
//! Layout: one tag byte, then for [`TAG_EXPIRING`] an 8-byte little-endian
//! absolute expiry time in Unix milliseconds, then the value bytes.
//! Keys without expiry (the common case) pay one byte.
//!
//! Decoding is strict: bytes read from disk are untrusted, so a record that
//! does not decode is reported as corruption, never guessed at.

use bytes::{BufMut, Bytes, BytesMut};

const TAG_PLAIN: u8 = 0;
const TAG_EXPIRING: u8 = 1;
const EXPIRY_LEN: usize = 8;

/// A stored string value. `expire_at_ms == 0` means no expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub value: Bytes,
    pub expire_at_ms: u64,
}

impl Record {
    pub fn new(value: Bytes, expire_at_ms: u64) -> Self {
        Record {
            value,
            expire_at_ms,
        }
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
        1 + if self.has_expiry() { EXPIRY_LEN } else { 0 } + self.value.len()
    }

    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        if self.has_expiry() {
            out.put_u8(TAG_EXPIRING);
            out.put_u64_le(self.expire_at_ms);
        } else {
            out.put_u8(TAG_PLAIN);
        }
        out.put_slice(&self.value);
        out.freeze()
    }

    /// Decodes without copying the value: it is a slice of `raw`.
    pub fn decode(raw: Bytes) -> Result<Record, &'static str> {
        match raw.first() {
            Some(&TAG_PLAIN) => Ok(Record {
                value: raw.slice(1..),
                expire_at_ms: 0,
            }),
            Some(&TAG_EXPIRING) => {
                let Some(ts) = raw.get(1..1 + EXPIRY_LEN) else {
                    return Err("truncated expiry");
                };
                let mut ts_bytes = [0u8; EXPIRY_LEN];
                ts_bytes.copy_from_slice(ts);
                let expire_at_ms = u64::from_le_bytes(ts_bytes);
                if expire_at_ms == 0 {
                    return Err("expiring record with zero expiry");
                }
                Ok(Record {
                    value: raw.slice(1 + EXPIRY_LEN..),
                    expire_at_ms,
                })
            }
            Some(_) => Err("unknown record tag"),
            None => Err("empty record"),
        }
    }
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
        fn record_round_trips(value in proptest::collection::vec(any::<u8>(), 0..300), expiry in any::<u64>()) {
            let r = Record::new(Bytes::from(value), expiry);
            let back = Record::decode(r.encode()).unwrap();
            prop_assert_eq!(back, r);
        }

        #[test]
        fn decode_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Record::decode(Bytes::from(raw));
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
    }

    #[test]
    fn expiry_index_orders_by_time() {
        assert!(expiry_index_key(1, b"zzz") < expiry_index_key(2, b"a"));
        assert!(expiry_index_key(255, b"a") < expiry_index_key(256, b"a"));
    }
}
