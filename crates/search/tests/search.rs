//! Query evaluation against the in-memory oracle: hand-computed BM25,
//! every construct, KNN, ordering, limits, and a property test comparing
//! the matched documents with a naive evaluation over the values.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Memory, indexer};
use proptest::prelude::*;
use strata_search::analyze::{Analyzer, normalize_tag};
use strata_search::entries::Indexer;
use strata_search::eval::{EvalError, SearchOptions, search};
use strata_search::query::{Bound, Node, Params, TagMatch, parse};
use strata_search::schema::Language;
use strata_search::score::Bm25;

const INDEX: &str = "i ON JSON PREFIX 1 d: SCHEMA $.title AS title TEXT WEIGHT 2 $.body AS body TEXT NOSTEM \
     $.tags AS tags TAG $.n AS n NUMERIC $.v AS v VECTOR FLAT 6 TYPE FLOAT32 DIM 2 DISTANCE_METRIC L2";

fn corpus(docs: &[(&str, serde_json::Value)]) -> (Indexer, Memory) {
    let ix = indexer(5, INDEX);
    let mut m = Memory::default();
    for (k, v) in docs {
        m.write(
            &ix,
            k.as_bytes(),
            Some(serde_json::to_vec(v).unwrap().as_slice()),
        );
    }
    (ix, m)
}

fn run(ix: &Indexer, m: &Memory, q: &str, params: &Params) -> Vec<(String, f64)> {
    let query = parse(q.as_bytes(), params).unwrap();
    let opts = SearchOptions {
        count: 1000,
        ..SearchOptions::default()
    };
    let r = search(ix, m, &query, &opts).unwrap();
    r.hits
        .into_iter()
        .map(|h| (String::from_utf8(h.key).unwrap(), h.score))
        .collect()
}

fn keys_of(ix: &Indexer, m: &Memory, q: &str) -> Vec<String> {
    run(ix, m, q, &Params::default())
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

#[test]
fn bm25_scores_are_computed_by_the_documented_formula() {
    use serde_json::json;
    let (ix, m) = corpus(&[
        ("d:1", json!({"body": "python database python"})),
        (
            "d:2",
            json!({"body": "python web framework and more words here"}),
        ),
        ("d:3", json!({"body": "database systems"})),
    ]);
    // Lengths: 3, 6 ("and" is a stop word), 2; average 11/3.
    let avg = 11.0 / 3.0;
    let bm = Bm25::STRATA;
    let idf_python = Bm25::idf(3, 2);
    let idf_database = Bm25::idf(3, 2);
    let hits = run(&ix, &m, "python database", &Params::default());
    assert_eq!(hits.len(), 1);
    let want = bm.term(idf_python, 2.0, 3, avg) + bm.term(idf_database, 1.0, 3, avg);
    assert_eq!(hits[0].0, "d:1");
    assert!((hits[0].1 - want).abs() < 1e-12, "{} vs {want}", hits[0].1);
    // OR adds; d:1 first (two terms), then by score.
    let hits = run(&ix, &m, "python | database", &Params::default());
    assert_eq!(
        hits.iter().map(|h| h.0.as_str()).collect::<Vec<_>>(),
        ["d:1", "d:3", "d:2"]
    );
}

#[test]
fn field_weights_and_stems_count_as_in_redisearch() {
    use serde_json::json;
    let (ix, m) = corpus(&[
        ("d:1", json!({"title": "running", "body": "x"})),
        ("d:2", json!({"title": "x", "body": "runs"})),
    ]);
    let bm = Bm25::STRATA;
    // d:1: title weight 2: length 2*1 + 1 = 3; d:2: 2 + 1 = 3; avg 3.
    // "running" expands to running (d:1), +run (d:1: a stem counts
    // max(1, trunc(2 * 0.2)) = 1) and run (nobody). d:2's body is NOSTEM.
    let hits = run(&ix, &m, "running", &Params::default());
    let want = bm.term(Bm25::idf(2, 1), 2.0, 3, 3.0) + bm.term(Bm25::idf(2, 1), 1.0, 3, 3.0);
    assert_eq!(hits.len(), 1);
    assert!((hits[0].1 - want).abs() < 1e-12);
    assert_eq!(
        keys_of(&ix, &m, "runs"),
        ["d:1", "d:2"],
        "d:1 by its stem, d:2 by the word"
    );
    assert_eq!(
        keys_of(&ix, &m, "@title:runs"),
        ["d:1"],
        "runs -> +run, in the title"
    );
    // The query expander always looks up `+stem`: `run` finds `running`
    // (its `+run`), not the NOSTEM body's `runs`.
    assert_eq!(keys_of(&ix, &m, "run"), ["d:1"]);
    assert_eq!(keys_of(&ix, &m, "@body:running"), Vec::<String>::new());
}

#[test]
fn every_construct_finds_what_it_should() {
    use serde_json::json;
    let (ix, m) = corpus(&[
        (
            "d:1",
            json!({"title": "The quick brown fox", "tags": "Red, Blue", "n": 1.5, "v": [0.0, 0.0]}),
        ),
        (
            "d:2",
            json!({"title": "quick brown dogs", "body": "the fox", "tags": ["red"], "n": 10, "v": [1.0, 0.0]}),
        ),
        (
            "d:3",
            json!({"title": "slow green turtle", "tags": "green", "n": -3, "v": [5.0, 5.0]}),
        ),
        ("d:4", json!("not an object")),
        ("other", json!({"title": "quick"})),
    ]);
    assert_eq!(keys_of(&ix, &m, "quick"), ["d:1", "d:2"]);
    assert_eq!(keys_of(&ix, &m, "quick -fox"), Vec::<String>::new());
    assert_eq!(keys_of(&ix, &m, "quick -@title:fox"), ["d:2"]);
    assert_eq!(keys_of(&ix, &m, "-quick"), ["d:3"]);
    assert_eq!(keys_of(&ix, &m, "\"quick brown\""), ["d:1", "d:2"]);
    assert_eq!(keys_of(&ix, &m, "\"brown quick\""), Vec::<String>::new());
    assert_eq!(
        keys_of(&ix, &m, "\"quick the brown\""),
        ["d:1", "d:2"],
        "stop words are skipped in phrases too"
    );
    assert_eq!(keys_of(&ix, &m, "qui*"), ["d:1", "d:2"]);
    assert_eq!(
        keys_of(&ix, &m, "q*"),
        Vec::<String>::new(),
        "prefixes need 2 characters"
    );
    assert_eq!(keys_of(&ix, &m, "@tags:{RED}"), ["d:1", "d:2"]);
    assert_eq!(keys_of(&ix, &m, "@tags:{blue | green}"), ["d:1", "d:3"]);
    assert_eq!(keys_of(&ix, &m, "@tags:{gr*}"), ["d:3"]);
    assert_eq!(keys_of(&ix, &m, "@n:[1.5 10]"), ["d:1", "d:2"]);
    assert_eq!(keys_of(&ix, &m, "@n:[(1.5 (10]"), Vec::<String>::new());
    assert_eq!(keys_of(&ix, &m, "@n:[-inf 0]"), ["d:3"]);
    assert_eq!(
        keys_of(&ix, &m, "@nope:quick"),
        Vec::<String>::new(),
        "unknown fields match nothing"
    );
    assert_eq!(
        keys_of(&ix, &m, "the"),
        Vec::<String>::new(),
        "a stop word alone matches nothing"
    );
    assert_eq!(keys_of(&ix, &m, "* -@tags:{red}").len(), 1);
    assert_eq!(
        keys_of(&ix, &m, "*").len(),
        3,
        "d:4 is skipped, `other` not covered"
    );
}

#[test]
fn knn_is_exact_filtered_and_ordered_by_distance() {
    use serde_json::json;
    let (ix, m) = corpus(&[
        ("d:1", json!({"tags": "a", "v": [0.0, 0.0]})),
        ("d:2", json!({"tags": "b", "v": [1.0, 0.0]})),
        ("d:3", json!({"tags": "a", "v": [3.0, 4.0]})),
        ("d:4", json!({"tags": "a", "v": [0.0, 1.0]})),
        ("d:5", json!({"tags": "a", "v": [1.0]})),
    ]);
    let blob: Vec<u8> = [1.0f32, 0.0].iter().flat_map(|f| f.to_le_bytes()).collect();
    let params = Params::from_pairs(&[b"q", &blob]).unwrap();
    let hits = run(&ix, &m, "*=>[KNN 3 @v $q]", &params);
    assert_eq!(
        hits,
        [
            ("d:2".into(), 0.0),
            ("d:1".into(), 1.0),
            ("d:4".into(), 2.0)
        ]
    );
    let hits = run(&ix, &m, "@tags:{a}=>[KNN 2 @v $q AS d]", &params);
    assert_eq!(hits, [("d:1".into(), 1.0), ("d:4".into(), 2.0)]);
    // Found by the fuzzer: a NaN in the query vector.
    let nan: Vec<u8> = [f32::NAN, 0.0]
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect();
    let q = parse(
        b"*=>[KNN 3 @v $q]",
        &Params::from_pairs(&[b"q", &nan]).unwrap(),
    )
    .unwrap();
    let e = search(&ix, &m, &q, &SearchOptions::default()).unwrap_err();
    assert_eq!(e, EvalError::VectorNotFinite);
    let bad = Params::from_pairs(&[b"q", b"abc"]).unwrap();
    let q = parse(b"*=>[KNN 3 @v $q]", &bad).unwrap();
    let e = search(&ix, &m, &q, &SearchOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Error parsing vector similarity query: query vector blob size (3) does not match index's expected size (8)."
    );
}

#[test]
fn ties_break_by_key_and_limit_pages() {
    use serde_json::json;
    let docs: Vec<(String, serde_json::Value)> = (0..5)
        .map(|i| (format!("d:{}", 4 - i), json!({"title": "same words"})))
        .collect();
    let refs: Vec<(&str, serde_json::Value)> =
        docs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let (ix, m) = corpus(&refs);
    let q = parse(b"same", &Params::default()).unwrap();
    let r = search(
        &ix,
        &m,
        &q,
        &SearchOptions {
            offset: 1,
            count: 2,
            ..SearchOptions::default()
        },
    )
    .unwrap();
    assert_eq!(r.total, 5);
    let keys: Vec<_> = r.hits.iter().map(|h| h.key.clone()).collect();
    assert_eq!(keys, [b"d:1".to_vec(), b"d:2".to_vec()]);
}

#[test]
fn a_query_reads_at_most_its_entry_budget() {
    use serde_json::json;
    let docs: Vec<(String, serde_json::Value)> = (0..50)
        .map(|i| (format!("d:{i}"), json!({"title": "common"})))
        .collect();
    let refs: Vec<(&str, serde_json::Value)> =
        docs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let (ix, m) = corpus(&refs);
    let q = parse(b"common", &Params::default()).unwrap();
    let e = search(
        &ix,
        &m,
        &q,
        &SearchOptions {
            entries_scanned_max: 20,
            ..SearchOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(e, EvalError::TooManyEntries(20));
}

// ---- the naive oracle -------------------------------------------------

const WORDS: &[&str] = &[
    "run", "running", "runs", "fox", "foxes", "the", "jump", "jumps", "über", "cat",
];

/// A document as the oracle sees it: per TEXT field its tokens, tags, n.
struct Naive {
    title: Vec<(String, Option<String>)>,
    body: Vec<(String, Option<String>)>,
    tags: Vec<String>,
    n: Option<f64>,
}

fn naive_docs(values: &BTreeMap<String, serde_json::Value>) -> BTreeMap<String, Naive> {
    let a = Analyzer::new(Language::English);
    values
        .iter()
        .map(|(k, v)| {
            let toks = |field: &str, stem: bool| {
                a.tokens(v[field].as_str().unwrap_or(""), stem)
                    .into_iter()
                    .map(|t| (t.term, t.stem))
                    .collect()
            };
            let tags = v["tags"]
                .as_str()
                .map(|s| strata_search::analyze::split_tags(s, b',', false))
                .unwrap_or_default();
            (
                k.clone(),
                Naive {
                    title: toks("title", true),
                    body: toks("body", false),
                    tags,
                    n: v["n"].as_f64(),
                },
            )
        })
        .collect()
}

fn texts<'a>(d: &'a Naive, field: &Option<String>) -> Vec<&'a [(String, Option<String>)]> {
    match field.as_deref() {
        None => vec![&d.title, &d.body],
        Some("title") => vec![&d.title],
        Some("body") => vec![&d.body],
        _ => vec![],
    }
}

/// The naive evaluation of operators; leaves in `naive_leaf`. None: the
/// node constrains nothing (stop words only), as in `eval`.
fn naive(node: &Node, docs: &BTreeMap<String, Naive>) -> Option<BTreeSet<String>> {
    let all: BTreeSet<String> = docs.keys().cloned().collect();
    match node {
        Node::Not(inner) => {
            let inner = naive(inner, docs).unwrap_or_default();
            Some(all.difference(&inner).cloned().collect())
        }
        Node::And(children) => {
            let sets: Vec<_> = children.iter().filter_map(|c| naive(c, docs)).collect();
            sets.into_iter()
                .reduce(|a, b| a.intersection(&b).cloned().collect())
        }
        Node::Or(children) => {
            let sets: Vec<_> = children.iter().filter_map(|c| naive(c, docs)).collect();
            sets.into_iter()
                .reduce(|a, b| a.union(&b).cloned().collect())
        }
        leaf => {
            let a = Analyzer::new(Language::English);
            let matches = naive_leaf(leaf, &a)?;
            Some(
                docs.iter()
                    .filter(|(_, d)| matches(d))
                    .map(|(k, _)| k.clone())
                    .collect(),
            )
        }
    }
}

type Matcher<'a> = Box<dyn Fn(&Naive) -> bool + 'a>;

/// A leaf as a predicate on one document: a word matches itself, its
/// stem among stems, or its stem as a word (RediSearch's expansion).
fn naive_leaf<'a>(node: &'a Node, a: &Analyzer) -> Option<Matcher<'a>> {
    match node {
        Node::All => Some(Box::new(|_| true)),
        Node::Term { field, word } => {
            let terms: Vec<(String, Option<String>)> = a
                .query_terms(word)
                .into_iter()
                .map(|t| {
                    let s = a.query_stem(&t);
                    (t, s)
                })
                .collect();
            if terms.is_empty() {
                return None;
            }
            Some(Box::new(move |d| {
                terms.iter().all(|(t, stem)| {
                    texts(d, field).iter().any(|toks| {
                        toks.iter().any(|(term, s)| {
                            term == t
                                || (stem.is_some() && (s == stem || Some(term) == stem.as_ref()))
                        })
                    })
                })
            }))
        }
        Node::Prefix { field, prefix } => {
            let p = prefix.to_lowercase();
            Some(Box::new(move |d| {
                p.chars().count() >= 2
                    && texts(d, field)
                        .iter()
                        .any(|toks| toks.iter().any(|(t, _)| t.starts_with(&p)))
            }))
        }
        Node::Phrase { field, text } => {
            let terms = a.query_terms(text);
            if terms.is_empty() {
                return None;
            }
            Some(Box::new(move |d| {
                texts(d, field).iter().any(|toks| {
                    toks.windows(terms.len())
                        .any(|w| w.iter().zip(&terms).all(|((t, _), q)| t == q))
                })
            }))
        }
        Node::Tags { field, tags } => Some(Box::new(move |d| {
            field == "tags"
                && tags.iter().any(|TagMatch { tag, prefix }| {
                    let q = normalize_tag(tag, false);
                    d.tags
                        .iter()
                        .any(|t| if *prefix { t.starts_with(&q) } else { *t == q })
                })
        })),
        Node::Range { field, lo, hi } => Some(Box::new(move |d| {
            let ok_lo = |v: f64| v > lo.value || (lo.inclusive && v == lo.value);
            let ok_hi = |v: f64| v < hi.value || (hi.inclusive && v == hi.value);
            field == "n" && d.n.is_some_and(|v| ok_lo(v) && ok_hi(v))
        })),
        Node::Not(_) | Node::And(_) | Node::Or(_) => unreachable!("operators are `naive`'s"),
    }
}

fn doc_value() -> impl Strategy<Value = serde_json::Value> {
    let text = prop::collection::vec(prop::sample::select(WORDS), 0..6).prop_map(|w| w.join(" "));
    (
        text.clone(),
        text,
        "[ab ,]{0,5}",
        prop::option::of(-3i32..3),
    )
        .prop_map(|(t, b, tags, n)| {
            let mut o = serde_json::json!({"title": t, "body": b, "tags": tags});
            if let Some(n) = n {
                o["n"] = n.into();
            }
            o
        })
}

fn query_node() -> impl Strategy<Value = Node> {
    let field = prop::option::of(prop::sample::select(vec![
        "title".to_string(),
        "body".to_string(),
        "tags".to_string(),
    ]));
    let word = prop::sample::select(WORDS).prop_map(str::to_string);
    let leaf = prop_oneof![
        4 => (field.clone(), word.clone()).prop_map(|(field, word)| Node::Term { field, word }),
        1 => (field.clone(), "(ru|fo|ju|u|c)").prop_map(|(field, prefix)| Node::Prefix { field, prefix }),
        1 => (field, prop::collection::vec(word, 1..3)).prop_map(|(field, w)| Node::Phrase { field, text: w.join(" ") }),
        1 => prop::collection::vec(("[ab]{1,2}", any::<bool>()), 1..3)
            .prop_map(|t| Node::Tags { field: "tags".into(), tags: t.into_iter().map(|(tag, prefix)| TagMatch { tag, prefix }).collect() }),
        1 => (-3i32..3, any::<bool>(), -3i32..3, any::<bool>()).prop_map(|(a, ai, b, bi)| Node::Range {
            field: "n".into(), lo: Bound { value: a.into(), inclusive: ai }, hi: Bound { value: b.into(), inclusive: bi } }),
        1 => Just(Node::All),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|n| Node::Not(Box::new(n))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Node::And),
            prop::collection::vec(inner, 2..4).prop_map(Node::Or),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn matches_equal_a_naive_evaluation_over_the_values(
        values in prop::collection::btree_map(0u8..8, doc_value(), 0..8),
        queries in prop::collection::vec(query_node(), 1..6),
    ) {
        let ix = indexer(9, INDEX);
        let mut m = Memory::default();
        let values: BTreeMap<String, serde_json::Value> = values.into_iter().map(|(k, v)| (format!("d:{k}"), v)).collect();
        for (k, v) in &values {
            m.write(&ix, k.as_bytes(), Some(&serde_json::to_vec(v).unwrap()));
        }
        let docs = naive_docs(&values);
        for node in queries {
            let query = strata_search::Query { root: node.clone(), knn: None };
            let r = search(&ix, &m, &query, &SearchOptions { count: usize::MAX, ..SearchOptions::default() }).unwrap();
            let got: BTreeSet<String> = r.hits.iter().map(|h| String::from_utf8(h.key.clone()).unwrap()).collect();
            let want = naive(&node, &docs).unwrap_or_default();
            prop_assert_eq!(&got, &want, "{}", node);
            prop_assert!(r.hits.iter().all(|h| h.score.is_finite() && h.score >= 0.0));
            prop_assert!(r.hits.windows(2).all(|w| w[0].score > w[1].score || (w[0].score == w[1].score && w[0].key < w[1].key)));
        }
    }
}

/// RediSearch 2.10.5, SCORER BM25STD, read with EXPLAINSCORE: a prefix
/// scores a document by the first term (in term order) it holds; a tag is a
/// term with frequency 1, `{a|b}` sums the tags a document has.
#[test]
fn prefixes_and_tags_score_as_redisearch_bm25std() {
    use serde_json::json;
    let (ix, m) = corpus(&[
        (
            "d:1",
            json!({"title": "runner runner running", "tags": ["red", "blue"]}),
        ),
        ("d:2", json!({"title": "running", "tags": "red"})),
        ("d:3", json!({"title": "walking", "tags": ["green"]})),
    ]);
    let bm = Bm25::STRATA;
    // Weighted lengths (title WEIGHT 2): d:1 6, d:2 2, d:3 2; average 10/3.
    let avg = 10.0 / 3.0;
    let scores: BTreeMap<String, f64> = run(&ix, &m, "runn*", &Params::default())
        .into_iter()
        .collect();
    // d:1 holds `runner` (tf 2, weight 2) and `running`: only `runner` counts.
    let runner = bm.term(Bm25::idf(3, 1), 4.0, 6, avg);
    assert!((scores["d:1"] - runner).abs() < 1e-12, "{scores:?}");
    let running = bm.term(Bm25::idf(3, 2), 2.0, 2, avg);
    assert!((scores["d:2"] - running).abs() < 1e-12, "{scores:?}");
    let scores: BTreeMap<String, f64> = run(&ix, &m, "@tags:{red|blue}", &Params::default())
        .into_iter()
        .collect();
    let red = |len| bm.term(Bm25::idf(3, 2), 1.0, len, avg);
    let blue = |len| bm.term(Bm25::idf(3, 1), 1.0, len, avg);
    assert!(
        (scores["d:1"] - (red(6) + blue(6))).abs() < 1e-12,
        "{scores:?}"
    );
    assert!((scores["d:2"] - red(2)).abs() < 1e-12, "{scores:?}");
    assert!(!scores.contains_key("d:3"));
}
