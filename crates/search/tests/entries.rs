//! The index entries a value writes, and the oracle issue 21 asks for at
//! the library level: after any sequence of writes and deletes, the
//! entries kept by applying each write's changes equal the entries
//! computed from the final values alone.

mod common;

use common::{Memory, indexer};
use proptest::prelude::*;
use strata_search::entries::{DocInput, IndexStats, Posting};
use strata_search::keys;

const STRING_INDEX: &str =
    "s PREFIX 1 k SCHEMA value AS body TEXT value AS tag TAG value AS n NUMERIC";
const JSON_INDEX: &str = "j ON JSON SCHEMA $.title AS title TEXT WEIGHT 2 $.body AS body TEXT NOSTEM \
     $.tags AS tags TAG $.n AS n NUMERIC $.v AS v VECTOR FLAT 6 TYPE FLOAT32 DIM 2 DISTANCE_METRIC L2";

#[test]
fn a_value_writes_postings_tags_numbers_and_its_doc_record() {
    let ix = indexer(3, STRING_INDEX);
    let (entries, stats) = ix.entries(b"k1", Some(DocInput::plain(b"42")));
    assert_eq!(stats.docs, 1);
    assert_eq!(stats.tokens, [1, 0, 0]);
    let keys: Vec<_> = entries.keys().cloned().collect();
    assert_eq!(
        keys,
        [
            keys::doc_key(3, b"k1"),
            keys::posting_key(3, false, "42", Some(b"k1")),
            keys::tag_key(3, 1, "42", true, Some(b"k1")),
            keys::numeric_key(3, 2, 42.0, b"k1"),
        ]
    );
    let posting = Posting::decode(
        &entries[&keys::posting_key(3, false, "42", Some(b"k1"))],
        true,
    )
    .unwrap();
    assert_eq!(
        posting,
        Posting {
            doc_len: 1,
            fields: vec![(0, 1, vec![0])]
        }
    );
}

#[test]
fn postings_carry_positions_stems_and_the_weighted_length() {
    let ix = indexer(1, JSON_INDEX);
    let v = br#"{"title": "Running the running race", "body": "running"}"#;
    let (entries, stats) = ix.entries(b"d", Some(DocInput::plain(v)));
    assert_eq!(stats.tokens, [3, 1, 0, 0, 0]);
    // Title weight 2: three words count 6, the body's one 1.
    let raw = Posting::decode(
        &entries[&keys::posting_key(1, false, "running", Some(b"d"))],
        true,
    )
    .unwrap();
    assert_eq!(
        raw,
        Posting {
            doc_len: 7,
            fields: vec![(0, 2, vec![0, 1]), (1, 1, vec![0])]
        }
    );
    // The stem, from the title only: the body is NOSTEM.
    let stem = Posting::decode(
        &entries[&keys::posting_key(1, true, "run", Some(b"d"))],
        false,
    )
    .unwrap();
    assert_eq!(
        stem,
        Posting {
            doc_len: 7,
            fields: vec![(0, 2, vec![])]
        }
    );
    assert!(entries.contains_key(&keys::posting_key(1, false, "race", Some(b"d"))));
}

#[test]
fn the_same_value_again_writes_nothing_and_a_change_writes_the_difference() {
    let ix = indexer(1, STRING_INDEX);
    let same = ix.changes(
        b"k",
        Some(DocInput::plain(b"red fox")),
        Some(DocInput::plain(b"red fox")),
    );
    assert!(same.is_empty());
    let c = ix.changes(
        b"k",
        Some(DocInput::plain(b"red fox")),
        Some(DocInput::plain(b"red dog")),
    );
    assert!(
        c.deletes
            .contains(&keys::posting_key(1, false, "fox", Some(b"k")))
    );
    assert!(
        c.puts
            .iter()
            .any(|(k, _)| *k == keys::posting_key(1, false, "dog", Some(b"k")))
    );
    // "red" is unchanged (same positions, same length): neither put nor deleted.
    let red = keys::posting_key(1, false, "red", Some(b"k"));
    assert!(!c.deletes.contains(&red) && c.puts.iter().all(|(k, _)| *k != red));
    assert!(c.stats.is_zero());
}

#[test]
fn keys_outside_the_prefixes_change_nothing_and_bad_values_are_counted() {
    let ix = indexer(1, STRING_INDEX);
    assert!(
        ix.changes(b"other", None, Some(DocInput::plain(b"x")))
            .is_empty()
    );
    let c = ix.changes(b"k", None, Some(DocInput::plain(b"\xff\xfe")));
    assert!(c.puts.is_empty() && c.stats.skipped == 1 && c.stats.docs == 0);
    let j = indexer(2, JSON_INDEX);
    for bad in [&b"not json"[..], b"[1,2]", b"\"s\""] {
        let c = j.changes(b"x", None, Some(DocInput::plain(bad)));
        assert!(c.puts.is_empty() && c.stats.skipped == 1, "{bad:?}");
    }
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    assert_eq!(
        j.changes(b"x", None, Some(DocInput::plain(deep.as_bytes())))
            .stats
            .skipped,
        1
    );
}

#[test]
fn embeddings_fill_embed_fields_only() {
    let ix = indexer(
        1,
        "e SCHEMA value AS t TEXT value AS v VECTOR FLAT 6 TYPE FLOAT32 DIM 2 DISTANCE_METRIC COSINE EMBED t",
    );
    let emb = vec![(1u16, vec![0.5f32, 0.25])];
    let (entries, _) = ix.entries(
        b"k",
        Some(DocInput {
            value: b"hello",
            embeddings: &emb,
        }),
    );
    let want: Vec<u8> = [0.5f32, 0.25]
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect();
    assert_eq!(entries.get(&keys::vector_key(1, 1, b"k")), Some(&want));
    let (entries, _) = ix.entries(b"k", Some(DocInput::plain(b"hello")));
    assert!(!entries.contains_key(&keys::vector_key(1, 1, b"k")));
}

fn json_value() -> impl Strategy<Value = Vec<u8>> {
    let words = prop::sample::select(vec![
        "run", "running", "runs", "fox", "the", "Fox", "jumps", "über", "a",
    ]);
    let text = prop::collection::vec(words, 0..6).prop_map(|w| w.join(" "));
    prop_oneof![
        8 => (text.clone(), text, prop::option::of("[a-c,]{0,6}"), prop::option::of(-5i32..5), prop::option::of(prop::collection::vec(-2i8..2, 1..4)))
            .prop_map(|(t, b, tags, n, v)| {
                let mut o = serde_json::Map::new();
                o.insert("title".into(), t.into());
                o.insert("body".into(), b.into());
                if let Some(tags) = tags { o.insert("tags".into(), tags.into()); }
                if let Some(n) = n { o.insert("n".into(), n.into()); }
                if let Some(v) = v { o.insert("v".into(), v.into_iter().map(f64::from).collect::<Vec<_>>().into()); }
                serde_json::to_vec(&o).unwrap()
            }),
        1 => Just(b"not json".to_vec()),
        1 => "\\PC{0,12}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn applied_changes_equal_entries_recomputed_from_final_values(
        ops in prop::collection::vec((0usize..4, prop::option::of(json_value())), 1..40)
    ) {
        let string_ix = indexer(1, STRING_INDEX);
        let json_ix = indexer(2, JSON_INDEX);
        let mut s = Memory::default();
        let mut j = Memory::default();
        for (k, value) in &ops {
            let key = format!("k{k}").into_bytes();
            s.write(&string_ix, &key, value.as_deref());
            j.write(&json_ix, &key, value.as_deref());
        }
        prop_assert_eq!(&s.entries, &s.recomputed(&string_ix));
        prop_assert_eq!(&j.entries, &j.recomputed(&json_ix));
        // Deleting everything leaves only zero statistics.
        for k in 0..4 {
            j.write(&json_ix, format!("k{k}").as_bytes(), None);
        }
        prop_assert_eq!(j.entries.len(), 1);
        let stats = IndexStats::decode(&j.entries[&keys::stats_key(2)]).unwrap();
        prop_assert_eq!(stats, IndexStats::new(5));
    }

    #[test]
    fn postings_and_doc_records_never_panic_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..32), positions in any::<bool>()) {
        if let Ok(p) = Posting::decode(&bytes, positions) {
            prop_assert_eq!(p.encode(), bytes.clone());
        }
        let _ = strata_search::entries::decode_doc_record(&bytes);
        if let Ok(s) = IndexStats::decode(&bytes) {
            prop_assert_eq!(s.encode(), bytes);
        }
    }
}

#[test]
fn the_longest_entry_key_is_the_documented_overhead_over_the_user_key() {
    use strata_search::limits::{ENTRY_KEY_OVERHEAD_BYTES_MAX, TAG_SIZE_BYTES_MAX};
    let ix = indexer(u32::MAX, "t ON JSON SCHEMA $.g AS g TAG $.t AS t TEXT");
    let nul_tag = "\u{0}".repeat(TAG_SIZE_BYTES_MAX);
    let long_word = "é".repeat(200);
    let value = serde_json::to_vec(&serde_json::json!({"g": nul_tag, "t": long_word})).unwrap();
    let user_key = vec![0xFFu8; 100];
    let (entries, _) = ix.entries(&user_key, Some(DocInput::plain(&value)));
    let longest = entries.keys().map(Vec::len).max().unwrap();
    assert_eq!(longest, user_key.len() + ENTRY_KEY_OVERHEAD_BYTES_MAX);
}

#[test]
fn json_paths_reach_nested_values() {
    let ix = indexer(
        1,
        r#"p ON JSON SCHEMA $["a.b"].c AS x TAG $.arr[1] AS y NUMERIC plain AS z TEXT"#,
    );
    let v = br#"{"a.b": {"c": "hit"}, "arr": [1, 2.5], "plain": "word"}"#;
    let (entries, stats) = ix.entries(b"k", Some(DocInput::plain(v)));
    assert!(entries.contains_key(&keys::tag_key(1, 0, "hit", true, Some(b"k"))));
    assert!(entries.contains_key(&keys::numeric_key(1, 1, 2.5, b"k")));
    assert_eq!(stats.tokens, [0, 0, 1]);
}

/// The entries as computed before issue 21's write-cost work (a map per
/// document, one `String` per word, postings through `Posting::encode`),
/// kept as the oracle the flat builder must match byte for byte: a
/// difference would leave entries behind, since a delete recomputes them
/// from the old value.
mod reference {
    use std::collections::BTreeMap;

    use strata_search::analyze::{Analyzer, is_stop_word, normalize};
    use strata_search::document::{Extracted, FieldValue, extract};
    use strata_search::entries::{Indexer, Posting, StatsDelta};
    use strata_search::keys;
    use strata_search::limits::TOKENS_PER_FIELD_MAX;
    use strata_search::schema::{FieldId, FieldKind};
    use unicode_segmentation::UnicodeSegmentation;

    type Token = (String, Option<String>, u32);

    fn tokens(a: &Analyzer, text: &str, stem: bool) -> Vec<Token> {
        let mut out: Vec<Token> = Vec::new();
        for word in text.unicode_words() {
            if out.len() == TOKENS_PER_FIELD_MAX {
                break;
            }
            let Some(term) = normalize(word) else {
                continue;
            };
            if is_stop_word(&term) {
                continue;
            }
            let s = if stem { a.stem(&term) } else { None };
            let position = out.len() as u32;
            out.push((term, s, position));
        }
        out
    }

    fn field_tokens(a: &Analyzer, parts: &[String], stem: bool) -> Vec<Token> {
        let mut out: Vec<Token> = Vec::new();
        for part in parts {
            let base = out.last().map_or(0, |t| t.2 + 2);
            for mut t in tokens(a, part, stem) {
                if out.len() == TOKENS_PER_FIELD_MAX {
                    return out;
                }
                t.2 += base;
                out.push(t);
            }
        }
        out
    }

    pub fn entries(
        ix: &Indexer,
        user_key: &[u8],
        value: Option<&[u8]>,
    ) -> (BTreeMap<Vec<u8>, Vec<u8>>, StatsDelta) {
        let n = ix.def.fields.len();
        let mut stats = StatsDelta {
            docs: 0,
            skipped: 0,
            tokens: vec![0; n],
        };
        let mut out = BTreeMap::new();
        let Some(value) = value.filter(|_| ix.def.covers(user_key)) else {
            return (out, stats);
        };
        let doc = match extract(&ix.def, value, &[]) {
            Extracted::Skipped(_) => {
                stats.skipped = 1;
                return (out, stats);
            }
            Extracted::Indexed(doc) => doc,
        };
        stats.docs = 1;
        let id = ix.id;
        let mut texts: Vec<(FieldId, Vec<Token>)> = Vec::new();
        for (i, (field, value)) in ix.def.fields.iter().zip(&doc.fields).enumerate() {
            let fid = i as FieldId;
            match (&field.kind, value) {
                (FieldKind::Text { nostem, .. }, Some(FieldValue::Text(parts))) => {
                    let t = field_tokens(&ix.analyzer, parts, !nostem);
                    stats.tokens[i] = t.len() as i64;
                    texts.push((fid, t));
                }
                (FieldKind::Tag { .. }, Some(FieldValue::Tags(tags))) => {
                    for t in tags {
                        out.insert(keys::tag_key(id, fid, t, true, Some(user_key)), Vec::new());
                    }
                }
                (FieldKind::Numeric, Some(FieldValue::Numeric(x))) => {
                    out.insert(keys::numeric_key(id, fid, *x, user_key), Vec::new());
                }
                (FieldKind::Vector(_), Some(FieldValue::Vector(v))) => {
                    let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    out.insert(keys::vector_key(id, fid, user_key), bytes);
                }
                _ => {}
            }
        }
        let doc_len: u64 = texts
            .iter()
            .map(|(f, t)| t.len() as u64 * ix.text_weight(*f, false))
            .sum();
        let mut terms: BTreeMap<&str, Vec<(FieldId, Vec<u32>)>> = BTreeMap::new();
        let mut stems: BTreeMap<&str, Vec<(FieldId, u32)>> = BTreeMap::new();
        for (field, tokens) in &texts {
            for (term, stem, position) in tokens {
                let e = terms.entry(term).or_default();
                match e.last_mut() {
                    Some((f, p)) if f == field => p.push(*position),
                    _ => e.push((*field, vec![*position])),
                }
                if let Some(s) = stem {
                    let e = stems.entry(s).or_default();
                    match e.last_mut() {
                        Some((f, tf)) if f == field => *tf += 1,
                        _ => e.push((*field, 1)),
                    }
                }
            }
        }
        for (term, fields) in terms {
            let fields = fields
                .into_iter()
                .map(|(f, p)| (f, p.len() as u32, p))
                .collect();
            let p = Posting { doc_len, fields };
            out.insert(
                keys::posting_key(id, false, term, Some(user_key)),
                p.encode(),
            );
        }
        for (stem, fields) in stems {
            let fields = fields
                .into_iter()
                .map(|(f, tf)| (f, tf, Vec::new()))
                .collect();
            let p = Posting { doc_len, fields };
            out.insert(
                keys::posting_key(id, true, stem, Some(user_key)),
                p.encode(),
            );
        }
        let mut record = Vec::new();
        strata_search::codec::put_varint(&mut record, n as u64);
        for &t in &stats.tokens {
            strata_search::codec::put_varint(&mut record, t as u64);
        }
        out.insert(keys::doc_key(id, user_key), record);
        (out, stats)
    }
}

/// Words that meet every path of the analyzer: stems, stop words, upper
/// case, UAX #29 joins (`don't`, `3.14`, `e.g`), `_`, non-ASCII lower
/// casing (final sigma), long words that are cut, NUL.
fn rich_text() -> impl Strategy<Value = String> {
    let words = prop::sample::select(vec![
        "run",
        "running",
        "runs",
        "Runner",
        "fox",
        "the",
        "THE",
        "a",
        "jumps",
        "jumped",
        "über",
        "ÜBER",
        "don't",
        "3.14",
        "e.g.",
        "1,000",
        "a:b",
        "foo_bar",
        "_",
        "ΣΑΣ",
        "naïve",
        "internationalization",
        "internationalizations",
        "x\u{0}y",
        "caresses",
        "ponies",
        "connection",
        "connections",
        "connected",
        "-",
        "!",
        "\"q\"",
    ]);
    let long = "[a-zé]{120,140}";
    prop::collection::vec(
        prop_oneof![20 => words.prop_map(str::to_string), 1 => long],
        0..30,
    )
    .prop_map(|w| w.join(" "))
}

fn rich_json() -> impl Strategy<Value = Vec<u8>> {
    (
        rich_text(),
        prop::collection::vec(rich_text(), 0..3),
        prop::option::of("[a-c,\u{0}]{0,6}"),
        prop::option::of(-5i32..5),
    )
        .prop_map(|(title, body, tags, n)| {
            let mut o = serde_json::Map::new();
            o.insert("title".into(), title.into());
            o.insert("body".into(), body.into());
            if let Some(tags) = tags {
                o.insert("tags".into(), tags.into());
            }
            if let Some(n) = n {
                o.insert("n".into(), n.into());
            }
            serde_json::to_vec(&o).unwrap()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn entries_and_changes_are_those_of_the_reference(
        old in prop::option::of(rich_json()),
        new in prop::option::of(rich_json()),
        text_old in rich_text(),
        text_new in rich_text(),
    ) {
        let json_ix = indexer(2, JSON_INDEX);
        let string_ix = indexer(1, STRING_INDEX);
        let cases = [
            (&json_ix, old.clone(), new.clone()),
            (&string_ix, Some(text_old.into_bytes()), Some(text_new.into_bytes())),
            (&string_ix, old, new),
        ];
        for (ix, old, new) in cases {
            let (want_old, stats_old) = reference::entries(ix, b"k", old.as_deref());
            let (want_new, stats_new) = reference::entries(ix, b"k", new.as_deref());
            let (got_new, got_stats) = ix.entries(b"k", new.as_deref().map(DocInput::plain));
            prop_assert_eq!(&got_new, &want_new);
            prop_assert_eq!(&got_stats, &stats_new);
            let c = ix.changes(
                b"k",
                old.as_deref().map(DocInput::plain),
                new.as_deref().map(DocInput::plain),
            );
            let deletes: Vec<_> = want_old.keys().filter(|k| !want_new.contains_key(*k)).cloned().collect();
            let puts: Vec<_> = want_new
                .iter()
                .filter(|(k, v)| want_old.get(*k) != Some(*v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            prop_assert_eq!(&c.deletes, &deletes);
            prop_assert_eq!(&c.puts, &puts);
            let mut tokens = stats_new.tokens.clone();
            for (t, o) in tokens.iter_mut().zip(&stats_old.tokens) {
                *t -= o;
            }
            prop_assert_eq!(c.stats.docs, stats_new.docs - stats_old.docs);
            prop_assert_eq!(c.stats.skipped, stats_new.skipped - stats_old.skipped);
            prop_assert_eq!(c.stats.tokens, tokens);
        }
    }
}

#[test]
fn a_field_past_its_token_limit_keeps_the_reference_entries() {
    use strata_search::limits::TOKENS_PER_FIELD_MAX;
    // Distinct words, so that every token is a posting; over the limit in
    // one text, and across the texts of a JSON array.
    let words: Vec<String> = (0..TOKENS_PER_FIELD_MAX + 10)
        .map(|i| format!("w{i}x"))
        .collect();
    let one = words.join(" ");
    let half = TOKENS_PER_FIELD_MAX / 2 + 5;
    let array = serde_json::to_vec(&serde_json::json!({
        "title": "short title",
        "body": [words[..half].join(" "), words[half..].join(" ")],
    }))
    .unwrap();
    let string_ix = indexer(1, STRING_INDEX);
    let json_ix = indexer(2, JSON_INDEX);
    for (ix, value) in [(&string_ix, one.as_bytes()), (&json_ix, &array[..])] {
        let (want, want_stats) = reference::entries(ix, b"k", Some(value));
        let (got, got_stats) = ix.entries(b"k", Some(DocInput::plain(value)));
        assert_eq!(got_stats, want_stats);
        assert!(got_stats.tokens.contains(&(TOKENS_PER_FIELD_MAX as i64)));
        assert!(got == want, "entries differ from the reference");
    }
}
