//! Keys, values and write batches.

use rand::{Rng, RngCore};

use crate::config::KEY_SIZE_BYTES;

pub type Key = [u8; KEY_SIZE_BYTES];

/// Key `i` as 16 ASCII decimal digits, zero-padded: byte order equals
/// numeric order, so "the next N keys after i" are i, i+1, ... and seeks can
/// be checked exactly. Readable in a hex dump, like db_bench's keys.
pub fn key(i: u64) -> Key {
    let mut out = [b'0'; KEY_SIZE_BYTES];
    let mut n = i;
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
    debug_assert_eq!(n, 0, "key index {i} does not fit in 16 digits");
    out
}

/// The index back from a key, or None if it is not one of ours.
pub fn key_index(k: &[u8]) -> Option<u64> {
    if k.len() != KEY_SIZE_BYTES || !k.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(k.iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0')))
}

/// Values are slices of one random buffer at random offsets: incompressible,
/// so no engine's compression gets a free ride, and cheap to make (no RNG
/// work per byte inside the timed loop).
pub struct ValueSource {
    pool: Vec<u8>,
    value_size_bytes: usize,
}

/// Distinct offsets into the pool, so consecutive values differ.
const POOL_SIZE_BYTES: usize = 1024 * 1024;

impl ValueSource {
    pub fn new(value_size_bytes: usize, rng: &mut impl RngCore) -> ValueSource {
        let mut pool = vec![0u8; POOL_SIZE_BYTES + value_size_bytes];
        rng.fill_bytes(&mut pool);
        ValueSource {
            pool,
            value_size_bytes,
        }
    }

    pub fn value_size_bytes(&self) -> usize {
        self.value_size_bytes
    }

    /// Appends one value for `k` to `out`: the key's bytes first (as many as
    /// fit), so a read can tell that it got this key's value.
    pub fn append(&self, k: &Key, rng: &mut impl Rng, out: &mut Vec<u8>) {
        let start = rng.random_range(0..POOL_SIZE_BYTES);
        let at = out.len();
        out.extend_from_slice(&self.pool[start..start + self.value_size_bytes]);
        let prefix = KEY_SIZE_BYTES.min(self.value_size_bytes);
        out[at..at + prefix].copy_from_slice(&k[..prefix]);
    }
}

/// Does `value` belong to key `k` (see [`ValueSource::append`])?
pub fn value_matches(k: &[u8], value: &[u8], value_size_bytes: usize) -> bool {
    let prefix = KEY_SIZE_BYTES.min(value_size_bytes);
    value.len() == value_size_bytes && value[..prefix] == k[..prefix]
}

/// One write batch: keys and their values, stored flat so the buffers are
/// reused from batch to batch.
pub struct Batch {
    keys: Vec<Key>,
    values: Vec<u8>,
    value_size_bytes: usize,
}

impl Batch {
    pub fn new(capacity: usize, value_size_bytes: usize) -> Batch {
        Batch {
            keys: Vec::with_capacity(capacity),
            values: Vec::with_capacity(capacity * value_size_bytes),
            value_size_bytes,
        }
    }

    pub fn clear(&mut self) {
        self.keys.clear();
        self.values.clear();
    }

    pub fn push(&mut self, i: u64, values: &ValueSource, rng: &mut impl Rng) {
        let k = key(i);
        values.append(&k, rng, &mut self.values);
        self.keys.push(k);
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.keys
            .iter()
            .zip(self.values.chunks_exact(self.value_size_bytes))
            .map(|(k, v)| (&k[..], v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn keys_sort_like_their_numbers() {
        assert_eq!(&key(0), b"0000000000000000");
        assert_eq!(&key(1234), b"0000000000001234");
        assert!(key(9) < key(10));
        assert!(key(99_999) < key(100_000));
        assert_eq!(key_index(&key(987_654_321)), Some(987_654_321));
        assert_eq!(key_index(b"short"), None);
    }

    #[test]
    fn values_carry_their_key() {
        let mut rng = StdRng::seed_from_u64(1);
        for size in [1, 16, 100] {
            let src = ValueSource::new(size, &mut rng);
            let mut batch = Batch::new(4, size);
            for i in 0..4 {
                batch.push(i, &src, &mut rng);
            }
            assert_eq!(batch.len(), 4);
            for (k, v) in batch.iter() {
                assert!(value_matches(k, v, size));
            }
            let (k0, _) = batch.iter().next().unwrap();
            let (_, v1) = batch.iter().nth(1).unwrap();
            if size >= 16 {
                assert!(
                    !value_matches(k0, v1, size),
                    "key 0 must not match key 1's value"
                );
            }
        }
    }
}
