//! FT.CREATE parsing, its errors, and the definition's stored encoding.

mod common;

use common::args;
use proptest::prelude::*;
use strata_search::schema::{
    DocKind, FieldKind, IndexDef, Language, Metric, PathStep, SchemaError,
};

fn parse(s: &str) -> Result<IndexDef, SchemaError> {
    let a = args(s);
    let refs: Vec<&[u8]> = a.iter().map(Vec::as_slice).collect();
    IndexDef::parse(&refs)
}

fn err(s: &str) -> String {
    parse(s).expect_err(s).to_string()
}

#[test]
fn a_full_definition_parses() {
    let d = parse(
        "idx ON JSON PREFIX 2 doc: note: LANGUAGE german SCHEMA $.title AS title TEXT WEIGHT 2.5 \
         $.body AS body TEXT NOSTEM SORTABLE $.tags AS tags TAG SEPARATOR ; CASESENSITIVE \
         $.n AS n NUMERIC SORTABLE $.v AS v VECTOR FLAT 6 TYPE FLOAT32 DIM 4 DISTANCE_METRIC L2 \
         $.e AS e VECTOR FLAT 6 TYPE float32 DIM 384 DISTANCE_METRIC cosine EMBED body $.a[0] AS first TAG",
    )
    .unwrap();
    assert_eq!(d.name, "idx");
    assert_eq!(d.on, DocKind::Json);
    assert_eq!(d.prefixes, [b"doc:".to_vec(), b"note:".to_vec()]);
    assert_eq!(d.language, Language::German);
    assert_eq!(d.fields.len(), 7);
    assert_eq!(
        d.fields[0].kind,
        FieldKind::Text {
            weight: 2.5,
            nostem: false
        }
    );
    assert!(
        d.fields[1].sortable && matches!(d.fields[1].kind, FieldKind::Text { nostem: true, .. })
    );
    assert_eq!(
        d.fields[2].kind,
        FieldKind::Tag {
            separator: b';',
            case_sensitive: true
        }
    );
    assert!(
        matches!(&d.fields[4].kind, FieldKind::Vector(v) if v.dim == 4 && v.metric == Metric::L2 && v.embed.is_none())
    );
    assert!(
        matches!(&d.fields[5].kind, FieldKind::Vector(v) if v.embed == Some(1) && v.metric == Metric::Cosine)
    );
    assert_eq!(
        d.fields[6].steps,
        [PathStep::Key("a".into()), PathStep::Index(0)]
    );
    assert!(d.covers(b"doc:1") && d.covers(b"note:") && !d.covers(b"do"));
}

#[test]
fn on_string_is_the_default_and_reads_value_under_aliases() {
    let d = parse("i SCHEMA value TEXT value AS exact TAG value AS n NUMERIC").unwrap();
    assert_eq!(d.on, DocKind::String);
    assert_eq!(d.language, Language::English);
    assert!(d.prefixes.is_empty() && d.covers(b"anything"));
    assert_eq!(d.field_id("exact"), Some(1));
    assert_eq!(
        err("i SCHEMA title TEXT"),
        "An ON STRING index has one field, `value`; got `title` (name other fields with AS)"
    );
}

// Long: one table of inputs and the exact texts RediSearch 2.10 gives.
#[test]
fn malformed_definitions_get_redisearch_errors() {
    let cases = [
        ("i", "No schema found"),
        ("i ON STRING", "No schema found"),
        ("i FOO SCHEMA value TEXT", "Unknown argument `FOO`"),
        ("i ON HASH SCHEMA value TEXT", "Invalid rule type: HASH"),
        ("i LANGUAGE klingon SCHEMA value TEXT", "Invalid language"),
        (
            "i PREFIX x SCHEMA value TEXT",
            "Bad arguments for PREFIX: Could not convert argument to expected type",
        ),
        ("i SCHEMA", "Fields arguments are missing"),
        ("i SCHEMA value", "Field `value` does not have a type"),
        ("i SCHEMA value AS", "AS requires an argument"),
        (
            "i SCHEMA value BLOB",
            "Invalid field type for field `value`",
        ),
        (
            "i SCHEMA value TEXT value TAG",
            "Duplicate field in schema - value",
        ),
        (
            "i SCHEMA value TEXT WEIGHT",
            "Bad arguments for weight: Expected an argument, but none provided",
        ),
        (
            "i SCHEMA value TEXT WEIGHT x",
            "Bad arguments for weight: Could not convert argument to expected type",
        ),
        (
            "i SCHEMA value TAG SEPARATOR",
            "SEPARATOR requires an argument",
        ),
        (
            "i SCHEMA value TAG SEPARATOR ab",
            "Tag separator must be a single character. Got `ab`",
        ),
        (
            "i SCHEMA value VECTOR HNSW 6 TYPE FLOAT32 DIM 2 DISTANCE_METRIC L2",
            "`HNSW` is not supported by Strata's FT.CREATE",
        ),
        (
            "i SCHEMA value VECTOR FOO 6",
            "Bad arguments for vector similarity algorithm: Unknown argument",
        ),
        (
            "i SCHEMA value VECTOR FLAT x",
            "Bad arguments for vector similarity number of parameters: Could not convert argument to expected type",
        ),
        (
            "i SCHEMA value VECTOR FLAT 5 TYPE FLOAT32",
            "Bad number of arguments for vector similarity index: got 5 but expected even number as algorithm parameters (should be submitted as named arguments)",
        ),
        (
            "i SCHEMA value VECTOR FLAT 6 TYPE FLOAT32 DIM 2",
            "Expected 6 parameters but got 4",
        ),
        (
            "i SCHEMA value VECTOR FLAT 4 TYPE FLOAT32 DIM 2",
            "Missing mandatory parameter: cannot create FLAT index without specifying DISTANCE_METRIC argument",
        ),
        (
            "i SCHEMA value VECTOR FLAT 4 DIM 2 DISTANCE_METRIC L2",
            "Missing mandatory parameter: cannot create FLAT index without specifying TYPE argument",
        ),
        (
            "i SCHEMA value VECTOR FLAT 2 FOO 1",
            "Bad arguments for algorithm FLAT: FOO",
        ),
        (
            "i SCHEMA value VECTOR FLAT 2 TYPE INT9",
            "Bad arguments for vector similarity FLAT index type: Unknown argument",
        ),
        (
            "i SCHEMA value VECTOR FLAT 2 DIM 0",
            "Bad arguments for vector similarity FLAT index dim: Value is outside acceptable bounds",
        ),
        (
            "i SCHEMA value VECTOR FLAT 2 DISTANCE_METRIC HAMMING",
            "Bad arguments for vector similarity FLAT index metric: Unknown argument",
        ),
        (
            "i SCHEMA value VECTOR FLAT 6 TYPE FLOAT32 DIM 5000 DISTANCE_METRIC L2",
            "Vector DIM must be between 1 and 4096",
        ),
        (
            "i PREFIX -1 SCHEMA value TEXT",
            "Bad arguments for PREFIX: Value is outside acceptable bounds",
        ),
        (
            "i SCHEMA value VECTOR FLAT 6 TYPE FLOAT32 DIM -3 DISTANCE_METRIC L2",
            "Bad arguments for vector similarity FLAT index dim: Value is outside acceptable bounds",
        ),
        (
            "i SCHEMA value TEXT WEIGHT 1e400",
            "Bad arguments for weight: Could not convert argument to expected type",
        ),
        (
            "i SCHEMA value VECTOR FLAT 6 TYPE FLOAT32 DIM 4 DISTANCE_METRIC L2 EMBED nope",
            "EMBED field `nope` must be a TEXT field of this schema",
        ),
        (
            "i ON JSON SCHEMA $.a..b AS x TEXT",
            "Invalid JSONPath `$.a..b`: use $.name, $.name.sub, $[\"name\"] or $.name[0]",
        ),
        (
            "i STOPWORDS 0 SCHEMA value TEXT",
            "`STOPWORDS` is not supported by Strata's FT.CREATE",
        ),
        (
            "i SCHEMA value GEO",
            "`GEO` is not supported by Strata's FT.CREATE",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(err(input), want, "{input}");
    }
}

#[test]
fn limits_are_enforced() {
    let long = "x".repeat(257);
    assert_eq!(
        err(&format!("{long} SCHEMA value TEXT")),
        "index name is longer than 256 bytes"
    );
    let fields: String = (0..129).map(|i| format!(" value AS f{i} TEXT")).collect();
    assert_eq!(
        err(&format!("i SCHEMA{fields}")),
        "Schema is limited to 128 fields"
    );
    let prefixes: String = (0..33).map(|i| format!(" p{i}")).collect();
    assert_eq!(
        err(&format!("i PREFIX 33{prefixes} SCHEMA value TEXT")),
        "PREFIX takes at most 32 prefixes"
    );
}

/// Found by the `search_input` fuzz target: an error repeated a client's
/// argument with its newline, which would have ended the RESP error line.
#[test]
fn errors_repeat_client_text_on_one_bounded_line() {
    let refs: [&[u8]; 3] = [b"III", b"IIIIIIIIII\n", b""];
    assert_eq!(
        IndexDef::parse(&refs).unwrap_err().to_string(),
        "Unknown argument `IIIIIIIIII `"
    );
    let long = vec![b'x'; 1000];
    let refs: [&[u8]; 2] = [b"i", &long];
    assert_eq!(
        IndexDef::parse(&refs).unwrap_err().to_string().len(),
        "Unknown argument ``".len() + 128
    );
    let refs: [&[u8]; 4] = [b"i", b"SCHEMA", b"value", b"\r\nTEXT"];
    assert_eq!(
        IndexDef::parse(&refs).unwrap_err().to_string(),
        "Invalid field type for field `value`"
    );
    let p =
        strata_search::query::Params::from_pairs(&[b"a\r\nb", b"1", b"a\r\nb", b"2"]).unwrap_err();
    assert_eq!(p.to_string(), "Duplicate parameter `a  b`");
}

/// The stored bytes of a definition are pinned: changing them breaks every
/// data directory and snapshot holding an index (docs/format.md).
#[test]
fn the_encoding_is_pinned() {
    let d = parse("idx ON JSON PREFIX 1 d: SCHEMA $.t AS t TEXT WEIGHT 2 NOSTEM $.g AS g TAG SEPARATOR | $.n AS n NUMERIC SORTABLE $.v AS v VECTOR FLAT 6 TYPE FLOAT32 DIM 3 DISTANCE_METRIC IP EMBED t").unwrap();
    let bytes = d.encode(7);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        concat!(
            "0101",
            "07000000",
            "03696478",
            "01",
            "04",
            "01",
            "02643a",
            "04",
            "01",
            "74",
            "03242e74",
            "00",
            "0000000000000040",
            "01",
            "00",
            "01",
            "67",
            "03242e67",
            "01",
            "7c",
            "00",
            "00",
            "01",
            "6e",
            "03242e6e",
            "02",
            "01",
            "01",
            "76",
            "03242e76",
            "03",
            "03",
            "02",
            "01",
            "00",
            "00",
        )
    );
    assert_eq!(IndexDef::decode(&bytes).unwrap(), (7, d));
}

#[test]
fn decoding_is_strict() {
    let d = parse("i SCHEMA value TEXT").unwrap();
    let good = d.encode(1);
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(IndexDef::decode(&trailing).is_err());
    let mut version = good.clone();
    version[0] = 2;
    assert_eq!(
        IndexDef::decode(&version).unwrap_err().to_string(),
        "search index definition format 2 is not known to this build"
    );
    let mut analyzer = good.clone();
    analyzer[1] = 9;
    assert!(IndexDef::decode(&analyzer).is_err());
    for cut in 0..good.len() {
        assert!(IndexDef::decode(&good[..cut]).is_err(), "cut at {cut}");
    }
}

fn field_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        (0.0f64..10.0, any::<bool>())
            .prop_map(|(w, n)| format!("TEXT WEIGHT {w}{}", if n { " NOSTEM" } else { "" })),
        (
            prop::sample::select(vec![",", ";", "|", "."]),
            any::<bool>()
        )
            .prop_map(|(s, c)| format!(
                "TAG SEPARATOR {s}{}",
                if c { " CASESENSITIVE" } else { "" }
            )),
        Just("NUMERIC SORTABLE".to_string()),
        (1u32..64, prop::sample::select(vec!["L2", "IP", "COSINE"]))
            .prop_map(|(d, m)| format!("VECTOR FLAT 6 TYPE FLOAT32 DIM {d} DISTANCE_METRIC {m}")),
    ]
}

proptest! {
    #[test]
    fn definitions_round_trip(fields in prop::collection::vec(field_strategy(), 1..8), id in any::<u32>(), json in any::<bool>()) {
        let on = if json { "JSON" } else { "STRING" };
        let schema: String = fields.iter().enumerate().map(|(i, f)| {
            if json { format!(" $.f{i} AS f{i} {f}") } else { format!(" value AS f{i} {f}") }
        }).collect();
        let d = parse(&format!("idx ON {on} PREFIX 1 k: SCHEMA{schema}")).unwrap();
        let bytes = d.encode(id);
        prop_assert_eq!(IndexDef::decode(&bytes).unwrap(), (id, d));
    }

    #[test]
    fn parsing_any_arguments_never_panics(words in prop::collection::vec(prop_oneof![
        Just("SCHEMA".to_string()), Just("TEXT".to_string()), Just("TAG".to_string()), Just("VECTOR".to_string()),
        Just("FLAT".to_string()), Just("AS".to_string()), Just("value".to_string()), Just("6".to_string()),
        Just("DIM".to_string()), Just("EMBED".to_string()), Just("ON".to_string()), Just("JSON".to_string()),
        "(?s).{0,6}",
    ], 0..16)) {
        let refs: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
        match IndexDef::parse(&refs) {
            Ok(d) => prop_assert_eq!(IndexDef::decode(&d.encode(1)).unwrap(), (1, d)),
            Err(e) => prop_assert!(!e.to_string().contains(['\r', '\n'])),
        }
    }

    #[test]
    fn decoding_any_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok((id, d)) = IndexDef::decode(&bytes) {
            prop_assert_eq!(d.encode(id), bytes);
        }
    }
}
