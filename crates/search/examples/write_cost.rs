//! The CPU cost of indexing one write: `Indexer::changes` over
//! deterministic documents, for instruction counts under callgrind (the
//! machine is shared, so wall-clock time says little):
//!
//! ```text
//! cargo build --release -p strata-search --example write_cost
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured_writes*' \
//!     target/release/examples/write_cost insert 110 200
//! ```
//!
//! Arguments: `insert` (old value absent) or `overwrite` (another document
//! of the same size replaced), words per document (`0`: 20 to 200,
//! uniform), documents. Every document is written once untimed first, so
//! the stem cache is as warm as on a long-running server. Prints the
//! writes, entries changed, heap allocations per write, and a digest of
//! every change: an optimization must leave the digest alone.
//!
//! Documents are like bench/search/corpus.py's: words drawn from a Zipf
//! (s = 1) distribution over 30,000 pseudo-English consonant-vowel words.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use strata_search::IndexDef;
use strata_search::entries::{Changes, DocInput, Indexer};

/// Counts heap allocations, to report allocations per write.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const VOCABULARY_SIZE: usize = 30_000;
const WORDS_MIN: usize = 20;
const WORDS_MAX: usize = 200;

/// splitmix64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn vocabulary(rng: &mut Rng) -> Vec<String> {
    const ONSETS: &[&str] = &[
        "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
        "br", "ch", "cl", "dr", "fl", "gr", "pl", "pr", "sh", "st", "th", "tr",
    ];
    const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ea", "ou", "io"];
    const CODAS: &[&str] = &["", "", "", "n", "r", "s", "l", "t", "m", "nd", "st", "ng"];
    let mut seen = std::collections::HashSet::new();
    let mut words = Vec::new();
    while words.len() < VOCABULARY_SIZE {
        let syllables =
            1 + rng.below(2) + usize::from(words.len() > 1000) + usize::from(words.len() > 10_000);
        let w: String = (0..syllables)
            .map(|_| {
                [
                    ONSETS[rng.below(ONSETS.len())],
                    VOWELS[rng.below(VOWELS.len())],
                    CODAS[rng.below(CODAS.len())],
                ]
                .concat()
            })
            .collect();
        if w.len() >= 2 && !strata_search::analyze::is_stop_word(&w) && seen.insert(w.clone()) {
            words.push(w);
        }
    }
    words
}

fn documents(count: usize, words: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(21);
    let vocab = vocabulary(&mut rng);
    let mut cdf: Vec<f64> = (1..=VOCABULARY_SIZE).map(|r| 1.0 / r as f64).collect();
    for i in 1..cdf.len() {
        cdf[i] += cdf[i - 1];
    }
    let total = cdf[cdf.len() - 1];
    (0..count)
        .map(|_| {
            let n = if words == 0 {
                WORDS_MIN + rng.below(WORDS_MAX - WORDS_MIN + 1)
            } else {
                words
            };
            let doc: Vec<&str> = (0..n)
                .map(|_| {
                    let u = rng.unit() * total;
                    let rank = cdf.partition_point(|&c| c <= u).min(VOCABULARY_SIZE - 1);
                    vocab[rank].as_str()
                })
                .collect();
            doc.join(" ").into_bytes()
        })
        .collect()
}

/// (user key, old value, new value) per write.
type Write<'a> = (Vec<u8>, Option<&'a [u8]>, &'a [u8]);

#[inline(never)]
fn measured_writes(ix: &Indexer, writes: &[Write]) -> Vec<Changes> {
    writes
        .iter()
        .map(|(key, old, new)| {
            ix.changes(key, old.map(DocInput::plain), Some(DocInput::plain(new)))
        })
        .collect()
}

fn digest(all: &[Changes]) -> (u64, usize) {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut entries = 0;
    for c in all {
        for d in &c.deletes {
            h.update(b"d");
            h.update(&(d.len() as u64).to_le_bytes());
            h.update(d);
        }
        for (k, v) in &c.puts {
            h.update(b"p");
            h.update(&(k.len() as u64).to_le_bytes());
            h.update(k);
            h.update(&(v.len() as u64).to_le_bytes());
            h.update(v);
        }
        h.update(format!("{:?}", c.stats).as_bytes());
        entries += c.deletes.len() + c.puts.len();
    }
    (h.digest(), entries)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: write_cost insert|overwrite WORDS DOCUMENTS";
    let (Some(mode), Some(words), Some(count)) = (
        args.get(1),
        args.get(2).and_then(|w| w.parse::<usize>().ok()),
        args.get(3).and_then(|c| c.parse::<usize>().ok()),
    ) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let overwrite = match mode.as_str() {
        "insert" => false,
        "overwrite" => true,
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let create: Vec<&[u8]> = [
        "bench", "PREFIX", "1", "doc:", "SCHEMA", "value", "AS", "body", "TEXT",
    ]
    .iter()
    .map(|a| a.as_bytes())
    .collect();
    let def = IndexDef::parse(&create).expect("definition parses");
    let ix = Indexer::new(1, def);
    let docs = documents(2 * count, words);
    let writes: Vec<Write> = (0..count)
        .map(|i| {
            let old = overwrite.then(|| docs[count + i].as_slice());
            (format!("doc:{i:08}").into_bytes(), old, docs[i].as_slice())
        })
        .collect();
    // Warm the stem cache with every word of every document.
    let warm: Vec<Write> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| (format!("doc:w{i}").into_bytes(), None, d.as_slice()))
        .collect();
    drop(warmup_writes(&ix, &warm));
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let all = measured_writes(&ix, &writes);
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    let (digest, entries) = digest(&all);
    println!(
        "mode={mode} words={words} writes={count} entries_per_write={:.1} allocations_per_write={:.1} digest={digest:016x}",
        entries as f64 / count as f64,
        allocations as f64 / count as f64,
    );
}

/// The untimed pass (a separate function, outside callgrind's toggle).
#[inline(never)]
fn warmup_writes(ix: &Indexer, writes: &[Write]) -> Vec<Changes> {
    writes
        .iter()
        .map(|(key, old, new)| {
            ix.changes(key, old.map(DocInput::plain), Some(DocInput::plain(new)))
        })
        .collect()
}
