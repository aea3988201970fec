//! The whole cost of a SET under a TEXT index through the storage layer
//! (apply, index entries, batch, journal, memtable), against a plain SET,
//! for instruction counts under callgrind (wall-clock time on a shared
//! machine says little). Counted by difference, so that opening the
//! store and the warm-up cancel out:
//!
//! ```text
//! cargo build --release -p strata-storage --example indexed_set_cost
//! for n in 100 300; do valgrind --tool=callgrind --callgrind-out-file=cg.$n \
//!     target/release/examples/indexed_set_cost indexed overwrite 110 $n; done
//! # instructions per SET = (total(300) - total(100)) / 200
//! ```
//!
//! Arguments: `plain`, `indexed` or `outside` (an index on another
//! prefix: what a SET to keys no index covers pays); `insert` (SETs of fresh keys) or
//! `overwrite` (the same, then a second pass over the same keys with other
//! documents: an overwrite costs the slope of `overwrite` less the slope
//! of `insert`); words per document; SETs per pass. 300 other documents
//! are written first (warm stem cache); one SET per group (each awaited),
//! fsync never.

use bytes::Bytes;
use strata_search::IndexDef;
use strata_storage::{
    FsyncPolicy, LocalStore, Mutation, Op, SetCondition, SetExpiry, StorageConfig,
};

const WARM_DOCS: usize = 300;
/// SETs per pass at most: documents are generated for this many whatever
/// the count, so that generating them cancels out of the difference.
const SETS_MAX: usize = 1000;
const VOCABULARY_SIZE: usize = 30_000;

/// splitmix64, as in strata-search's `write_cost` example.
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
}

/// Zipf-ish documents of `words` consonant-vowel words (see
/// crates/search/examples/write_cost.rs for the careful version).
fn documents(count: usize, words: usize) -> Vec<Bytes> {
    const ONSETS: &[&str] = &[
        "b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "br", "st",
    ];
    const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ea", "ou"];
    const CODAS: &[&str] = &[
        "", "", "n", "r", "s", "l", "t", "nd", "st", "ng", "ing", "ed",
    ];
    let mut rng = Rng(21);
    let vocab: Vec<String> = (0..VOCABULARY_SIZE)
        .map(|i| {
            let syllables = 2 + usize::from(i > 1000) + usize::from(i > 10_000);
            (0..syllables)
                .map(|_| {
                    [
                        ONSETS[rng.below(ONSETS.len())],
                        VOWELS[rng.below(VOWELS.len())],
                        CODAS[rng.below(CODAS.len())],
                    ]
                    .concat()
                })
                .collect()
        })
        .collect();
    let mut cdf: Vec<f64> = (1..=VOCABULARY_SIZE).map(|r| 1.0 / r as f64).collect();
    for i in 1..cdf.len() {
        cdf[i] += cdf[i - 1];
    }
    let total = cdf[cdf.len() - 1];
    (0..count)
        .map(|_| {
            let doc: Vec<&str> = (0..words)
                .map(|_| {
                    let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
                    let rank = cdf.partition_point(|&c| c <= u).min(VOCABULARY_SIZE - 1);
                    vocab[rank].as_str()
                })
                .collect();
            Bytes::from(doc.join(" "))
        })
        .collect()
}

fn set(key: String, value: Bytes) -> Mutation {
    Mutation {
        now_ms: 1_000_000,
        op: Op::Set {
            key: Bytes::from(key),
            value,
            condition: SetCondition::Always,
            expiry: SetExpiry::Clear,
            return_old: false,
        },
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: indexed_set_cost plain|indexed|outside insert|overwrite WORDS SETS";
    let (Some(kind), Some(mode), Some(words), Some(count)) = (
        args.get(1),
        args.get(2),
        args.get(3).and_then(|w| w.parse::<usize>().ok()),
        args.get(4).and_then(|c| c.parse::<usize>().ok()),
    ) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = StorageConfig::new(dir.path());
    config.fsync = FsyncPolicy::Never;
    config.memtable_size_bytes = 256 * 1024 * 1024;
    config.prefetch_slow_read_ns = u64::MAX;
    let store = LocalStore::open(config).expect("store opens");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if count > SETS_MAX {
        eprintln!("at most {SETS_MAX} SETs per pass");
        std::process::exit(2);
    }
    let docs = documents(WARM_DOCS + 2 * SETS_MAX, words);
    rt.block_on(async {
        if kind == "indexed" || kind == "outside" {
            let create = if kind == "indexed" {
                "bench PREFIX 1 doc: SCHEMA value AS body TEXT"
            } else {
                "bench PREFIX 1 elsewhere: SCHEMA value AS body TEXT"
            };
            let parts: Vec<&[u8]> = create.split(' ').map(str::as_bytes).collect();
            let def = IndexDef::parse(&parts).expect("definition");
            let op = Op::CreateIndex {
                definition: Bytes::from(def.encode(0)),
            };
            store
                .submit(Mutation {
                    now_ms: 1_000_000,
                    op,
                })
                .await
                .expect("create");
        }
        for (i, d) in docs[..WARM_DOCS].iter().enumerate() {
            let key = format!("doc:w{i:08}");
            store
                .submit(set(key, d.clone()))
                .await
                .expect("warm-up set");
        }
        let passes = if mode == "overwrite" { 2 } else { 1 };
        for pass in 0..passes {
            let from = WARM_DOCS + pass * SETS_MAX;
            for (i, d) in docs[from..from + count].iter().enumerate() {
                store
                    .submit(set(format!("doc:{i:08}"), d.clone()))
                    .await
                    .expect("measured set");
            }
        }
    });
    println!("{kind} {mode} words={words} sets={count}");
}
