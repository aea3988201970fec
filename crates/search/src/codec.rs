//! Byte-level helpers shared by the definition, entry and statistics
//! encodings: LEB128 varints, a strict reader, the order-preserving
//! escaping of strings inside keys, and the order-preserving encoding of
//! an `f64`.
//!
//! Conventions (docs/format.md): integers inside keys are big-endian, so
//! that byte order is numeric order; inside values they are varints or
//! little-endian. Decoding is strict: overlong varints, truncation and
//! trailing bytes are errors.

/// Why stored bytes did not decode. Stored entries are written by this
/// crate only, so any of these is corruption (or a newer format).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("search entry does not decode: {0}")]
pub struct DecodeError(pub &'static str);

/// Bytes of a `u64` varint at most.
const VARINT_SIZE_BYTES_MAX: usize = 10;

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A strict cursor over stored bytes.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self.rest.split_first().ok_or(DecodeError("truncated"))?;
        self.rest = rest;
        Ok(b)
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError("truncated"));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let head = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        Ok(out)
    }

    /// A canonical LEB128 varint: at most 10 bytes, no redundant final
    /// zero group, no bits past 64.
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for i in 0..VARINT_SIZE_BYTES_MAX {
            let b = self.u8()?;
            let payload = u64::from(b & 0x7f);
            if i == VARINT_SIZE_BYTES_MAX - 1 && payload > 1 {
                return Err(DecodeError("varint overflows 64 bits"));
            }
            v |= payload << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(DecodeError("overlong varint"));
                }
                return Ok(v);
            }
        }
        Err(DecodeError("varint longer than 10 bytes"))
    }

    /// A varint that must fit `max`.
    pub fn varint_max(&mut self, max: u64) -> Result<u64, DecodeError> {
        let v = self.varint()?;
        if v > max {
            return Err(DecodeError("number over its limit"));
        }
        Ok(v)
    }

    /// A length-prefixed byte string of at most `size_bytes_max` bytes.
    pub fn bytes(&mut self, size_bytes_max: usize) -> Result<&'a [u8], DecodeError> {
        let n = self.varint_max(size_bytes_max as u64)? as usize;
        self.take(n)
    }

    pub fn string(&mut self, size_bytes_max: usize) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes(size_bytes_max)?).map_err(|_| DecodeError("not UTF-8"))
    }

    /// Ends the decoding: bytes left over are an error.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError("bytes after the value"))
        }
    }
}

/// Ends an escaped string inside a key. Why two bytes: a string may hold
/// 0x00 (escaped as 0x00 0xFF), so a one-byte terminator followed by a
/// user key starting with 0xFF would read as a longer string. With
/// 0x00 0x01, a scan of `escaped(s) ++ TERMINATOR` finds exactly `s`, and
/// shorter strings sort before their extensions.
pub const TERMINATOR: [u8; 2] = [0x00, 0x01];

/// Appends `s` escaped (0x00 becomes 0x00 0xFF) and, with `terminate`,
/// [`TERMINATOR`]. Without it, the result is a prefix of the escaping of
/// every extension of `s`: what a prefix scan (`term*`) needs.
pub fn put_escaped(out: &mut Vec<u8>, s: &[u8], terminate: bool) {
    for &b in s {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    if terminate {
        out.extend_from_slice(&TERMINATOR);
    }
}

/// Splits an escaped, terminated string off the front of `key`: the
/// string unescaped, and the bytes after its terminator.
pub fn take_escaped(key: &[u8]) -> Result<(Vec<u8>, &[u8]), DecodeError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < key.len() {
        let b = key[i];
        if b != 0 {
            out.push(b);
            i += 1;
            continue;
        }
        match key.get(i + 1) {
            Some(0xFF) => {
                out.push(0);
                i += 2;
            }
            Some(0x01) => return Ok((out, &key[i + 2..])),
            _ => return Err(DecodeError("bad escape in a key")),
        }
    }
    Err(DecodeError("escaped string without its terminator"))
}

/// An `f64` as 8 bytes whose byte order is the numbers' order: positive
/// numbers get their sign bit set, negative ones all bits flipped. -0.0 is
/// stored as 0.0, so the two are one key. NaN has no place in an order and
/// is never indexed (the caller checks; debug builds assert).
pub fn ordered_f64(v: f64) -> [u8; 8] {
    debug_assert!(!v.is_nan());
    let v = if v == 0.0 { 0.0 } else { v };
    let bits = v.to_bits();
    let ordered = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    };
    ordered.to_be_bytes()
}

/// The inverse of [`ordered_f64`].
pub fn from_ordered_f64(b: [u8; 8]) -> f64 {
    let ordered = u64::from_be_bytes(b);
    let bits = if ordered >> 63 == 1 {
        ordered & !(1 << 63)
    } else {
        !ordered
    };
    f64::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn varints_are_canonical() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut r = Reader::new(&out);
            assert_eq!(r.varint(), Ok(v));
            r.finish().unwrap();
        }
        assert!(Reader::new(&[0x80, 0x00]).varint().is_err(), "overlong");
        assert!(Reader::new(&[0xFF; 10]).varint().is_err(), "past 64 bits");
        assert!(Reader::new(&[0x80]).varint().is_err(), "truncated");
    }

    #[test]
    fn ordered_f64_orders_special_values() {
        let vals = [
            f64::NEG_INFINITY,
            -1e300,
            -1.5,
            -f64::MIN_POSITIVE,
            0.0,
            1e-300,
            2.0,
            f64::INFINITY,
        ];
        for w in vals.windows(2) {
            assert!(ordered_f64(w[0]) < ordered_f64(w[1]), "{} < {}", w[0], w[1]);
        }
        assert_eq!(ordered_f64(-0.0), ordered_f64(0.0));
    }

    proptest! {
        #[test]
        fn ordered_f64_keeps_order_and_round_trips(a in any::<f64>(), b in any::<f64>()) {
            prop_assume!(!a.is_nan() && !b.is_nan());
            prop_assert_eq!(a.partial_cmp(&b), Some(ordered_f64(a).cmp(&ordered_f64(b))));
            let back = from_ordered_f64(ordered_f64(a));
            prop_assert!(back == a);
        }

        #[test]
        fn escaping_round_trips_and_keeps_order(a in proptest::collection::vec(any::<u8>(), 0..8),
                                               b in proptest::collection::vec(any::<u8>(), 0..8),
                                               tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut ka = Vec::new();
            put_escaped(&mut ka, &a, true);
            ka.extend_from_slice(&tail);
            let (back, rest) = take_escaped(&ka).unwrap();
            prop_assert_eq!(&back, &a);
            prop_assert_eq!(rest, &tail[..]);
            let mut kb = Vec::new();
            put_escaped(&mut kb, &b, true);
            let mut ka2 = Vec::new();
            put_escaped(&mut ka2, &a, true);
            prop_assert_eq!(a.cmp(&b), ka2.cmp(&kb));
            // The unterminated escaping of a prefix is a prefix.
            let cut = a.len() / 2;
            let mut p = Vec::new();
            put_escaped(&mut p, &a[..cut], false);
            prop_assert!(ka2.starts_with(&p));
        }

        #[test]
        fn reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            let mut r = Reader::new(&bytes);
            let _ = r.varint();
            let _ = r.bytes(8);
            let _ = r.string(8);
            let _ = take_escaped(&bytes);
        }
    }
}
