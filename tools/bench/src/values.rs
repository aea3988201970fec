//! The values strata-bench writes.
//!
//! `--values text` (the default) makes one printable random value per
//! connection and sends it with every write: free to generate, and what
//! redis-benchmark does too. But an engine that compresses its blocks (fjall
//! uses LZ4) stores such data at a fraction of its size, so a "10 GiB"
//! load may be 2.5 GiB on disk.
//!
//! `--values random` gives every write a different run of random bytes,
//! cut at a random offset from one pool made at start-up. The bytes are
//! uniformly random and two values in one block almost never overlap, so
//! the data does not compress: bytes on disk are about bytes sent. Cutting
//! from a pool costs one random number per write instead of one per byte,
//! so the generator stays far cheaper than the server it measures.

use std::fmt;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};

/// Size of the shared random pool, beyond one value. 16 MiB is far larger
/// than LZ4's 64 KiB window and than any data block, so a block's values
/// repeat each other's bytes only if their offsets nearly coincide
/// (probability about value size / 16 MiB per pair).
pub const POOL_SLACK_BYTES: usize = 16 * 1024 * 1024;

/// How values are made (`--values`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ValueKind {
    /// One printable random value per connection, reused for every write.
    /// Compresses well.
    Text,
    /// Different random bytes for every write. Does not compress.
    Random,
}

impl ValueKind {
    pub fn name(self) -> &'static str {
        match self {
            ValueKind::Text => "text",
            ValueKind::Random => "random",
        }
    }
}

/// The random pool shared by all connections of a `--values random` run.
#[derive(Clone)]
pub struct Pool(Arc<[u8]>);

impl Pool {
    /// A pool for values of `size_bytes`, filled from `seed` so `--seed`
    /// reproduces the bytes too.
    pub fn new(size_bytes: usize, seed: u64) -> Pool {
        let mut bytes = vec![0u8; size_bytes.saturating_add(POOL_SLACK_BYTES)];
        SmallRng::seed_from_u64(seed ^ 0x5641_4C55_4553).fill_bytes(&mut bytes);
        Pool(bytes.into())
    }
}

impl fmt::Debug for Pool {
    // The pool is megabytes of noise; printing it helps nobody.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pool({} bytes)", self.0.len())
    }
}

/// One connection's source of values.
pub enum Values {
    Fixed(Vec<u8>),
    Cut { pool: Pool, size_bytes: usize },
}

impl Values {
    /// The source for one connection: `pool` is `Some` for `--values
    /// random`; otherwise a fixed printable value is drawn from `rng`.
    pub fn new<R: Rng>(pool: Option<&Pool>, size_bytes: usize, rng: &mut R) -> Values {
        match pool {
            Some(pool) => {
                assert!(
                    pool.0.len() >= size_bytes,
                    "the pool is made for the run's value size"
                );
                Values::Cut {
                    pool: pool.clone(),
                    size_bytes,
                }
            }
            None => Values::Fixed(make_text_value(rng, size_bytes)),
        }
    }

    /// The value for the next write.
    pub fn next<R: Rng>(&self, rng: &mut R) -> &[u8] {
        match self {
            Values::Fixed(value) => value,
            Values::Cut { pool, size_bytes } => {
                let offset = rng.random_range(0..=pool.0.len() - size_bytes);
                &pool.0[offset..offset + size_bytes]
            }
        }
    }
}

/// A printable random value, made once.
pub fn make_text_value<R: Rng>(rng: &mut R, size_bytes: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..size_bytes)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compressed size over raw size, with LZ4: fjall's block compression.
    fn ratio(data: &[u8]) -> f64 {
        lz4_flex::compress(data).len() as f64 / data.len() as f64
    }

    /// 64 values of 1000 B, as a data block of an engine would hold them.
    fn block(values: &Values, rng: &mut SmallRng) -> Vec<u8> {
        (0..64).flat_map(|_| values.next(rng).to_vec()).collect()
    }

    #[test]
    fn random_values_do_not_compress_and_text_values_do() {
        let mut rng = SmallRng::seed_from_u64(7);
        let pool = Pool::new(1000, 7);
        let random = Values::new(Some(&pool), 1000, &mut rng);
        let text = Values::new(None, 1000, &mut rng);
        let random_ratio = ratio(&block(&random, &mut rng));
        let text_ratio = ratio(&block(&text, &mut rng));
        assert!(
            random_ratio > 0.98,
            "random values compressed to {random_ratio}"
        );
        assert!(
            text_ratio < 0.1,
            "repeated text values compressed only to {text_ratio}"
        );
    }

    #[test]
    fn random_values_differ_per_write_and_have_the_size_asked() {
        let mut rng = SmallRng::seed_from_u64(1);
        let pool = Pool::new(100, 1);
        let values = Values::new(Some(&pool), 100, &mut rng);
        let a = values.next(&mut rng).to_vec();
        let b = values.next(&mut rng).to_vec();
        assert_eq!(a.len(), 100);
        assert_eq!(b.len(), 100);
        assert_ne!(a, b);
        let empty = Values::new(Some(&Pool::new(0, 1)), 0, &mut rng);
        assert!(empty.next(&mut rng).is_empty());
    }

    #[test]
    fn the_pool_is_reproducible_from_the_seed() {
        assert_eq!(Pool::new(10, 3).0, Pool::new(10, 3).0);
        assert_ne!(Pool::new(10, 3).0, Pool::new(10, 4).0);
    }
}
