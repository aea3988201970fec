//! MiniLm's loading, limits and batching without the real model: a tiny
//! BERT (8 dimensions, one layer, random weights) written to a temporary
//! directory in the sentence-transformers layout. What only the real model
//! can show (the vectors themselves, semantic ranking) is in model.rs.

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::bert::{BertModel, Config};
use strata_embed::{EmbedError, Embedder, LoadError, MiniLm, MiniLmConfig};

const WORDS: [&str; 11] = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "sat", "on", "mat", "dog", "ran",
];

fn config_json() -> serde_json::Value {
    serde_json::json!({
        "vocab_size": WORDS.len(), "hidden_size": 8, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 16, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0, "max_position_embeddings": 300, "type_vocab_size": 2,
        "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
        "model_type": "bert"
    })
}

/// A BERT WordPiece tokenizer as sentence-transformers' tokenizer.json
/// describes one: lower-casing normaliser, `[CLS] text [SEP]`, and the
/// file's own fixed padding and truncation (which MiniLm replaces).
fn tokenizer_json() -> serde_json::Value {
    let vocab: serde_json::Map<String, serde_json::Value> = WORDS
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), serde_json::json!(i)))
        .collect();
    serde_json::json!({
        "version": "1.0",
        "truncation": {"direction": "Right", "max_length": 4, "strategy": "LongestFirst", "stride": 0},
        "padding": {"strategy": {"Fixed": 4}, "direction": "Right", "pad_to_multiple_of": null,
                    "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"},
        "added_tokens": [],
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                       "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}
            }
        },
        "decoder": null,
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab}
    })
}

/// Writes the tiny model into `dir`: random weights from candle's own
/// initialisers, saved as safetensors.
fn write_tiny_model(dir: &Path) {
    let config = config_json();
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tokenizer_json().to_string()).unwrap();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let bert: Config = serde_json::from_value(config).unwrap();
    BertModel::load(vb, &bert).unwrap();
    varmap.save(dir.join("model.safetensors")).unwrap();
}

fn tiny_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path());
    dir
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
}

#[test]
fn vectors_are_unit_length_and_independent_of_batching_and_padding() {
    let dir = tiny_dir();
    let model = MiniLm::load(dir.path()).unwrap();
    assert_eq!(model.dim(), 8);
    let texts = [
        "the cat",
        "The dog ran on the mat, the cat sat",
        "dog",
        "",
        "zebra",
    ];
    let together = model.embed(&texts).unwrap();
    assert_eq!(together.len(), texts.len());
    for (text, vector) in texts.iter().zip(&together) {
        let norm: f32 = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{text:?}: norm {norm}");
        // Alone, the text is not padded; in the batch it is padded to the
        // longest. The mask keeps padding out of the mean.
        let alone = model.embed(&[text]).unwrap();
        assert!(
            close(&alone[0], vector),
            "{text:?}: {:?} vs {vector:?}",
            alone[0]
        );
    }
    // Lower-casing happens in the tokenizer: same word pieces, same vector.
    assert!(close(&model.embed(&["THE CAT"]).unwrap()[0], &together[0]));
    assert!(!close(&together[0], &together[2]));
    // Batches smaller than the request: the order is still the request's.
    let small = MiniLm::load_with(
        dir.path(),
        MiniLmConfig {
            batch_texts_max: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let batched = small.embed(&texts).unwrap();
    assert!(batched.iter().zip(&together).all(|(a, b)| close(a, b)));
    assert!(model.embed(&[]).unwrap().is_empty());
}

#[test]
fn texts_are_cut_at_tokens_max_and_large_texts_refused() {
    let dir = tiny_dir();
    let config = MiniLmConfig {
        tokens_max: 6,
        text_size_bytes_max: 40,
        ..Default::default()
    };
    let model = MiniLm::load_with(dir.path(), config).unwrap();
    // [CLS] the cat sat on [SEP]: the rest is cut (not the file's 4).
    assert_eq!(model.token_count("the cat sat on the mat").unwrap(), 6);
    assert_eq!(model.token_count("the cat").unwrap(), 4);
    let cut = model
        .embed(&["the cat sat on the mat", "the cat sat on dog dog dog"])
        .unwrap();
    assert!(close(&cut[0], &cut[1]));
    let err = model.embed(&["the cat", &"dog ".repeat(11)]).unwrap_err();
    assert_eq!(
        err,
        EmbedError::TextTooLarge {
            size_bytes: 44,
            size_bytes_max: 40
        }
    );
    assert!(matches!(
        model.token_count(&"x".repeat(41)),
        Err(EmbedError::TextTooLarge { .. })
    ));
    // The model has 300 positions: more word pieces than that cannot run.
    let err = MiniLm::load_with(
        dir.path(),
        MiniLmConfig {
            tokens_max: 301,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, LoadError::Limits(_)), "{err}");
}

#[test]
fn a_missing_directory_or_file_is_named() {
    let err = MiniLm::load(Path::new("/nonexistent/model")).unwrap_err();
    assert!(matches!(err, LoadError::NotADirectory { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/model"), "{err}");
    assert!(
        err.to_string().contains("scripts/fetch-embedding-model.sh"),
        "{err}"
    );
    for missing in strata_embed::MODEL_FILES {
        let dir = tiny_dir();
        std::fs::remove_file(dir.path().join(missing)).unwrap();
        let err = MiniLm::load(dir.path()).unwrap_err();
        assert!(
            matches!(err, LoadError::MissingFile { ref path } if path.ends_with(missing)),
            "{err}"
        );
        assert!(err.to_string().contains(missing), "{err}");
    }
}

#[test]
fn malformed_files_are_refused_with_their_path() {
    let cases: [(&str, &[u8], fn(&LoadError) -> bool); 6] = [
        ("config.json", b"{not json", |e| {
            matches!(e, LoadError::Config { .. })
        }),
        ("config.json", br#"{"hidden_size": 8}"#, |e| {
            matches!(e, LoadError::Config { .. })
        }),
        ("tokenizer.json", b"[1, 2, 3]", |e| {
            matches!(e, LoadError::Tokenizer { .. })
        }),
        ("model.safetensors", b"not safetensors at all", |e| {
            matches!(e, LoadError::Weights { .. })
        }),
        ("model.safetensors", b"", |e| {
            matches!(e, LoadError::Weights { .. })
        }),
        // Valid safetensors, but without BERT's tensors.
        ("model.safetensors", &empty_safetensors(), |e| {
            matches!(e, LoadError::Weights { .. })
        }),
    ];
    for (file, contents, expected) in cases {
        let dir = tiny_dir();
        std::fs::write(dir.path().join(file), contents).unwrap();
        let err = MiniLm::load(dir.path()).unwrap_err();
        assert!(expected(&err), "{file} {contents:?}: {err}");
        assert!(err.to_string().contains(file), "{err}");
    }
    // Another architecture's config.
    let dir = tiny_dir();
    let mut config = config_json();
    config["model_type"] = "roberta".into();
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let err = MiniLm::load(dir.path()).unwrap_err();
    assert!(err.to_string().contains("roberta"), "{err}");
    // Weights of another size than config.json says.
    let dir = tiny_dir();
    let mut config = config_json();
    config["hidden_size"] = 16.into();
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let err = MiniLm::load(dir.path()).unwrap_err();
    assert!(matches!(err, LoadError::Weights { .. }), "{err}");
}

fn empty_safetensors() -> Vec<u8> {
    let header = b"{}";
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes
}
