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
    /// English-like text: 20 to 200 words (uniform) of a Zipf-distributed
    /// vocabulary, different for every write (`--value-size` is ignored).
    /// What a full-text index tokenizes.
    Words,
}

impl ValueKind {
    pub fn name(self) -> &'static str {
        match self {
            ValueKind::Text => "text",
            ValueKind::Random => "random",
            ValueKind::Words => "words",
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

/// Words per `--values words` value: uniform in this range.
pub const WORDS_PER_VALUE_MIN: usize = 20;
pub const WORDS_PER_VALUE_MAX: usize = 200;
/// Distinct words of the `--values words` vocabulary.
pub const VOCABULARY_WORDS: usize = 30_000;
/// Words in the shared `--values words` pool (about 16 MB of text).
pub const POOL_WORDS: usize = 2_000_000;

/// The text shared by all connections of a `--values words` run: a long
/// run of Zipf-distributed words, each value one cut of 20 to 200 words
/// from a random word onwards (cheap per write, like [`Pool`]).
#[derive(Clone)]
pub struct WordPool {
    text: Arc<[u8]>,
    /// Byte offset of each word in `text` (words are separated by one space).
    starts: Arc<[u32]>,
}

impl WordPool {
    /// The pool for `seed`: the vocabulary and the word stream both follow
    /// from it.
    pub fn new(seed: u64) -> WordPool {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x57_4F52_4453);
        let vocabulary = vocabulary(&mut rng, VOCABULARY_WORDS);
        // Zipf (s = 1): rank r has weight 1/r; draw by binary search in the
        // cumulative weights.
        let mut cumulative = Vec::with_capacity(vocabulary.len());
        let mut total = 0.0f64;
        for rank in 1..=vocabulary.len() {
            total += 1.0 / rank as f64;
            cumulative.push(total);
        }
        let mut text = Vec::with_capacity(POOL_WORDS * 8);
        let mut starts = Vec::with_capacity(POOL_WORDS + 1);
        for _ in 0..POOL_WORDS {
            let ticket = rng.random_range(0.0..total);
            let rank = cumulative.partition_point(|&c| c <= ticket);
            let word = &vocabulary[rank.min(vocabulary.len() - 1)];
            // The pool is about 16 MB: offsets fit in u32.
            starts.push(text.len() as u32);
            text.extend_from_slice(word);
            text.push(b' ');
        }
        starts.push(text.len() as u32);
        WordPool {
            text: text.into(),
            starts: starts.into(),
        }
    }

    /// A value of 20 to 200 words, without a trailing space.
    fn cut<R: Rng>(&self, rng: &mut R) -> &[u8] {
        let words = rng.random_range(WORDS_PER_VALUE_MIN..=WORDS_PER_VALUE_MAX);
        // starts has POOL_WORDS + 1 entries, far more than 200.
        let first = rng.random_range(0..self.starts.len() - 1 - words);
        let start = self.starts[first] as usize;
        let end = self.starts[first + words] as usize - 1;
        &self.text[start..end]
    }
}

impl fmt::Debug for WordPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WordPool({} bytes)", self.text.len())
    }
}

/// `count` distinct lower-case ASCII pseudo-words of 2 to 4 syllables (so
/// every tokenizer agrees on where words end), none of them a stop word of
/// RediSearch's list (all those are at most 5 letters of real English,
/// and pseudo-words of consonant-vowel syllables rarely hit one; any that
/// does is skipped).
fn vocabulary<R: Rng>(rng: &mut R, count: usize) -> Vec<Vec<u8>> {
    const ONSETS: &[&str] = &[
        "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
        "br", "ch", "cl", "dr", "fl", "gr", "pl", "pr", "sh", "st", "th", "tr",
    ];
    const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ea", "ou", "io"];
    const CODAS: &[&str] = &["", "", "", "n", "r", "s", "l", "t", "m", "nd", "st", "ng"];
    const STOP_WORDS: &[&str] = &[
        "a", "is", "the", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in",
        "into", "it", "no", "not", "of", "on", "or", "such", "that", "their", "then", "there",
        "these", "they", "this", "to", "was", "will", "with",
    ];
    let mut seen = std::collections::HashSet::with_capacity(count);
    let mut words = Vec::with_capacity(count);
    while words.len() < count {
        let syllables = rng.random_range(1..=3) + usize::from(words.len() > 1000);
        let mut word = String::new();
        for _ in 0..syllables {
            word.push_str(ONSETS[rng.random_range(0..ONSETS.len())]);
            word.push_str(VOWELS[rng.random_range(0..VOWELS.len())]);
            word.push_str(CODAS[rng.random_range(0..CODAS.len())]);
        }
        if !STOP_WORDS.contains(&word.as_str()) && seen.insert(word.clone()) {
            words.push(word.into_bytes());
        }
    }
    words
}

/// One connection's source of values.
pub enum Values {
    Fixed(Vec<u8>),
    Cut { pool: Pool, size_bytes: usize },
    Words(WordPool),
}

impl Values {
    /// The source for one connection: `pool` is `Some` for `--values
    /// random`; otherwise a fixed printable value is drawn from `rng`.
    pub fn new<R: Rng>(
        pool: Option<&Pool>,
        words: Option<&WordPool>,
        size_bytes: usize,
        rng: &mut R,
    ) -> Values {
        if let Some(words) = words {
            return Values::Words(words.clone());
        }
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
            Values::Words(words) => words.cut(rng),
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
        let random = Values::new(Some(&pool), None, 1000, &mut rng);
        let text = Values::new(None, None, 1000, &mut rng);
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
        let values = Values::new(Some(&pool), None, 100, &mut rng);
        let a = values.next(&mut rng).to_vec();
        let b = values.next(&mut rng).to_vec();
        assert_eq!(a.len(), 100);
        assert_eq!(b.len(), 100);
        assert_ne!(a, b);
        let empty = Values::new(Some(&Pool::new(0, 1)), None, 0, &mut rng);
        assert!(empty.next(&mut rng).is_empty());
    }

    #[test]
    fn word_values_have_20_to_200_plain_words_and_repeat_common_ones() {
        let mut rng = SmallRng::seed_from_u64(5);
        let pool = WordPool::new(5);
        let values = Values::new(None, Some(&pool), 100, &mut rng);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..1000 {
            let value = values.next(&mut rng);
            let words: Vec<&[u8]> = value.split(|&b| b == b' ').collect();
            assert!(
                (WORDS_PER_VALUE_MIN..=WORDS_PER_VALUE_MAX).contains(&words.len()),
                "{} words",
                words.len()
            );
            for word in words {
                assert!(!word.is_empty() && word.iter().all(u8::is_ascii_lowercase));
                *counts.entry(word.to_vec()).or_insert(0u32) += 1;
            }
        }
        // Zipf: the commonest word is far more frequent than the median one.
        let mut sorted: Vec<u32> = counts.values().copied().collect();
        sorted.sort_unstable();
        assert!(sorted[sorted.len() - 1] > 50 * sorted[sorted.len() / 2]);
        assert_eq!(WordPool::new(5).text, pool.text);
    }

    #[test]
    fn the_pool_is_reproducible_from_the_seed() {
        assert_eq!(Pool::new(10, 3).0, Pool::new(10, 3).0);
        assert_ne!(Pool::new(10, 3).0, Pool::new(10, 4).0);
    }
}
