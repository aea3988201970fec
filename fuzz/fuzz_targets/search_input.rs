//! Search's decoders of untrusted input (crates/search): FT.SEARCH query
//! text with PARAMS, FT.CREATE arguments, values as documents, and the
//! stored entry encodings.
//!
//! Input: [mode] then the payload.
//! - mode 0, a query: payload `query NUL param`; the query is parsed with
//!   PARAMS `v` = `k` = param, then evaluated against a small fixed index.
//!   Checks: a parsed query prints to text that parses to the same tree;
//!   results are a sorted page of distinct keys with finite scores; errors
//!   are one line.
//! - mode 1, FT.CREATE: payload split at NUL into arguments. Checks: a
//!   definition decodes from its encoding to itself; its entries for a
//!   sample value are removed exactly by the delete.
//! - mode 2, a value: written under a STRING and a JSON index. Checks: the
//!   delete removes exactly what the write put; entry keys carry the search
//!   tag and stay within the documented overhead over the user key.
//! - mode 3, stored bytes: definitions, statistics, postings, doc records.
//!   Checks: what decodes re-encodes to the same bytes.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use strata_fuzz::Input;
use strata_search::IndexDef;
use strata_search::entries::{DocInput, IndexStats, Indexer, Posting, decode_doc_record};
use strata_search::eval::{IndexRead, ReadError, SearchOptions, search};
use strata_search::keys::TAG_SEARCH;
use strata_search::limits::ENTRY_KEY_OVERHEAD_BYTES_MAX;
use strata_search::query::{Params, parse};

const JSON_INDEX: &str = "j ON JSON SCHEMA $.t AS t TEXT WEIGHT 2 $.b AS b TEXT NOSTEM $.g AS g TAG \
    $.n AS n NUMERIC $.v AS v VECTOR FLAT 6 TYPE FLOAT32 DIM 2 DISTANCE_METRIC COSINE";
const STRING_INDEX: &str = "s SCHEMA value AS t TEXT value AS g TAG SEPARATOR | value AS n NUMERIC";

#[derive(Default)]
struct Memory(BTreeMap<Vec<u8>, Vec<u8>>);

impl IndexRead for Memory {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
        Ok(self.0.get(key).cloned())
    }
    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), ReadError> {
        if start < end {
            for (k, v) in self.0.range(start.to_vec()..end.to_vec()) {
                if !visit(k, v) {
                    break;
                }
            }
        }
        Ok(())
    }
}

fn indexer(id: u32, create: &str) -> Indexer {
    let args: Vec<&[u8]> = create.split_whitespace().map(str::as_bytes).collect();
    Indexer::new(
        id,
        IndexDef::parse(&args).expect("the fixed definitions parse"),
    )
}

/// A few documents over every field type, indexed once.
fn fixture() -> &'static (Indexer, Memory) {
    static FIXTURE: OnceLock<(Indexer, Memory)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let ix = indexer(1, JSON_INDEX);
        let mut m = Memory::default();
        let docs = [
            r#"{"t":"The quick brown fox","b":"jumps over","g":"red,blue","n":1.5,"v":[1,0]}"#,
            r#"{"t":"quick running dogs","b":"the fox runs","g":"red","n":-10,"v":[0,1]}"#,
            r#"{"t":"slow turtles","g":"green","n":3,"v":[0,0]}"#,
            r#"{"t":"über naïve café","b":"e-mail 3.14 don't"}"#,
        ];
        let mut stats = IndexStats::new(ix.def.fields.len());
        for (i, d) in docs.iter().enumerate() {
            let (entries, contribution) = ix.entries(
                format!("d:{i}").as_bytes(),
                Some(DocInput::plain(d.as_bytes())),
            );
            m.0.extend(entries);
            stats.apply(&contribution);
        }
        m.0.insert(strata_search::keys::stats_key(1), stats.encode());
        (ix, m)
    })
}

fn one_line(e: &impl std::fmt::Display) {
    let text = e.to_string();
    assert!(
        !text.contains('\n') && !text.contains('\r'),
        "error text is one line: {text:?}"
    );
}

fn query(payload: &[u8]) {
    let (text, param) = match payload.iter().position(|&b| b == 0) {
        Some(i) => (&payload[..i], &payload[i + 1..]),
        None => (payload, &[][..]),
    };
    let params = Params::from_pairs(&[b"v", param, b"k", param]).expect("two distinct names");
    let q = match parse(text, &params) {
        Ok(q) => q,
        Err(e) => return one_line(&e),
    };
    let printed = q.to_string();
    let again = parse(printed.as_bytes(), &params)
        .unwrap_or_else(|e| panic!("{printed:?} does not parse: {e}"));
    assert_eq!(again.root, q.root, "printed as {printed:?}");
    let (ix, m) = fixture();
    let opts = SearchOptions {
        count: 3,
        offset: 1,
        ..SearchOptions::default()
    };
    match search(ix, m, &q, &opts) {
        Ok(r) => {
            assert!(r.hits.len() <= 3 && r.hits.len() as u64 <= r.total.saturating_sub(1));
            assert!(r.hits.iter().all(|h| h.score.is_finite()));
            let knn = q.knn.is_some();
            let ordered = |a: f64, b: f64| if knn { a <= b } else { a >= b };
            assert!(
                r.hits.windows(2).all(|w| ordered(w[0].score, w[1].score)),
                "sorted by score"
            );
            let mut keys: Vec<_> = r.hits.iter().map(|h| &h.key).collect();
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), r.hits.len(), "distinct keys");
        }
        Err(e) => one_line(&e),
    }
}

/// The delete of `value` removes exactly what its write put.
fn write_then_delete(ix: &Indexer, key: &[u8], value: &[u8]) {
    let put = ix.changes(key, None, Some(DocInput::plain(value)));
    let del = ix.changes(key, Some(DocInput::plain(value)), None);
    let put_keys: Vec<_> = put.puts.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(put_keys, del.deletes);
    assert!(put.deletes.is_empty() && del.puts.is_empty());
    let mut zero = put.stats.clone();
    zero.docs += del.stats.docs;
    zero.skipped += del.stats.skipped;
    for (a, b) in zero.tokens.iter_mut().zip(&del.stats.tokens) {
        *a += b;
    }
    assert!(zero.is_zero(), "statistics cancel out");
    for k in &put_keys {
        assert_eq!(k.first(), Some(&TAG_SEARCH));
        assert!(
            k.len() <= key.len() + ENTRY_KEY_OVERHEAD_BYTES_MAX,
            "entry key {} bytes for a {}-byte key",
            k.len(),
            key.len()
        );
    }
}

fn create(payload: &[u8]) {
    let args: Vec<&[u8]> = payload.split(|&b| b == 0).collect();
    match IndexDef::parse(&args) {
        Ok(def) => {
            let bytes = def.encode(7);
            let (id, back) = IndexDef::decode(&bytes).expect("an encoded definition decodes");
            assert_eq!((id, &back), (7, &def));
            let ix = Indexer::new(7, def);
            write_then_delete(&ix, b"key", b"hello running world 1.5");
            write_then_delete(&ix, b"key", br#"{"a":"x y","b":[1,2],"c":{"d":"e"}}"#);
        }
        Err(e) => one_line(&e),
    }
}

fn stored(payload: &[u8]) {
    if let Ok((id, def)) = IndexDef::decode(payload) {
        assert_eq!(def.encode(id), payload);
    }
    if let Ok(s) = IndexStats::decode(payload) {
        assert_eq!(s.encode(), payload);
    }
    for positions in [true, false] {
        if let Ok(p) = Posting::decode(payload, positions) {
            assert_eq!(p.encode(), payload);
        }
    }
    let _ = decode_doc_record(payload);
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = input.byte();
    let payload = input.rest();
    match mode % 4 {
        0 => query(payload),
        1 => create(payload),
        2 => {
            static INDEXES: OnceLock<(Indexer, Indexer)> = OnceLock::new();
            let (s, j) = INDEXES.get_or_init(|| (indexer(2, STRING_INDEX), indexer(3, JSON_INDEX)));
            write_then_delete(s, b"k\0\xff", payload);
            write_then_delete(j, b"k", payload);
        }
        _ => stored(payload),
    }
});
