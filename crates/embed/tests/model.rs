//! Tests against the real all-MiniLM-L6-v2. Behind the `model-tests`
//! feature, and they fail (never skip) when the model is missing:
//! `scripts/test-embedding-model.sh` fetches it and runs them. The model
//! directory is `$STRATA_EMBED_MODEL_DIR`, else the fetch script's default,
//! `target/models/all-MiniLM-L6-v2`.
#![cfg(feature = "model-tests")]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use strata_embed::{EmbedConfig, EmbedError, EmbedService, Embedder, MiniLm};

fn model_dir() -> PathBuf {
    match std::env::var_os("STRATA_EMBED_MODEL_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/models/all-MiniLM-L6-v2")
        }
    }
}

fn model() -> &'static MiniLm {
    static MODEL: OnceLock<MiniLm> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = model_dir();
        MiniLm::load(&dir).unwrap_or_else(|e| {
            panic!("{e}\n(run scripts/test-embedding-model.sh, which fetches the model first)")
        })
    })
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

struct Case {
    text: String,
    tokens: usize,
    vector: Vec<f32>,
}

/// Vectors sentence-transformers 6.3.0 (PyTorch 2.15, CPU) computed for
/// these texts: see scripts/reference-embeddings.py, which wrote the file.
fn reference() -> Vec<Case> {
    let json: serde_json::Value =
        serde_json::from_str(include_str!("data/reference.json")).unwrap();
    assert_eq!(json["max_seq_length"], 256);
    json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| Case {
            text: case["text"].as_str().unwrap().to_string(),
            tokens: case["tokens"].as_u64().unwrap() as usize,
            vector: case["vector"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect(),
        })
        .collect()
}

/// Largest difference of one component, between our vector and the
/// reference's. float32 sums in another order (candle's gemm vs PyTorch's)
/// differ a little: at most 3e-7 measured here, so 1e-5 leaves room for
/// other CPUs' kernels; a wrong pooling, mask, normaliser or truncation
/// differs by 1e-3 or more.
const COMPONENT_TOLERANCE: f32 = 1e-5;

fn assert_close(case: &Case, ours: &[f32]) {
    assert_eq!(ours.len(), 384, "{:?}", case.text);
    let worst = ours
        .iter()
        .zip(&case.vector)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!(
        "{:?}: largest component difference {worst:e}",
        case.text.get(..30).unwrap_or(&case.text)
    );
    assert!(
        worst < COMPONENT_TOLERANCE,
        "{:?}: a component differs by {worst}",
        case.text
    );
    assert!(dot(ours, &case.vector) > 0.9999, "{:?}", case.text);
    assert!(
        (dot(ours, ours) - 1.0).abs() < 1e-5,
        "{:?}: not unit length",
        case.text
    );
}

#[test]
fn vectors_match_sentence_transformers() {
    let model = model();
    assert_eq!(model.dim(), 384);
    let cases = reference();
    assert_eq!(cases.len(), 7);
    // All at once (padded to the longest, 256) and each alone (no
    // padding): padding must not change a vector.
    let texts: Vec<&str> = cases.iter().map(|c| c.text.as_str()).collect();
    let together = model.embed(&texts).unwrap();
    for (case, ours) in cases.iter().zip(&together) {
        assert_eq!(
            model.token_count(&case.text).unwrap(),
            case.tokens,
            "{:?}",
            case.text
        );
        assert_close(case, ours);
        let alone = model.embed(&[case.text.as_str()]).unwrap();
        assert_close(case, &alone[0]);
    }
}

#[test]
fn texts_are_cut_at_256_word_pieces() {
    let model = model();
    let long = reference().pop().unwrap().text;
    assert_eq!(model.token_count(&long).unwrap(), 256);
    // Words past the cut change nothing.
    let longer = format!("{long} and then something else entirely about volcanoes");
    let [a, b] = <[Vec<f32>; 2]>::try_from(model.embed(&[&long, &longer]).unwrap()).unwrap();
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6));
    // Past the byte limit, refused before tokenizing.
    let huge = "word ".repeat(20_000);
    let err = model.embed(&["fine", &huge]).unwrap_err();
    assert_eq!(
        err,
        EmbedError::TextTooLarge {
            size_bytes: 100_000,
            size_bytes_max: 64 * 1024
        }
    );
}

/// Documents and queries where the right document shares no word with its
/// query: only meaning can rank it first. Checked with sentence-transformers
/// too: the right document is first there, with a margin of at least 0.09
/// over the second (cosine), so float differences cannot flip a rank.
const DOCUMENTS: [&str; 20] = [
    "Machine learning algorithms build models that learn from examples to make predictions.",
    "Cats like to sleep in warm sunny spots and chase mice.",
    "The mechanic replaced the car's brake pads and changed its engine oil.",
    "Heart disease is a leading cause of death, and exercise lowers the risk.",
    "The central bank raised interest rates to fight inflation.",
    "Rising greenhouse gas emissions are heating the planet's climate.",
    "The football world cup final drew a billion television viewers.",
    "Knead the dough, let it rise, then put the loaf in a hot oven.",
    "The rocket lifted off carrying astronauts to the orbiting station.",
    "The stock market fell sharply after the earnings report.",
    "Dogs need daily walks and a lot of attention.",
    "The bicycle's chain needs oil and the tires need air.",
    "Tennis players practise their serve for hours each day.",
    "The recipe calls for fresh basil, tomatoes and olive oil.",
    "Python is a popular programming language for scripting.",
    "The museum displays paintings from the Renaissance.",
    "Mountains in the Alps are covered with snow in winter.",
    "The train to the airport leaves every fifteen minutes.",
    "Vitamins and a balanced diet keep the body healthy.",
    "Whales are the largest mammals living in the ocean.",
];

const QUERIES: [(&str, usize); 9] = [
    ("artificial intelligence", 0),
    ("feline pets", 1),
    ("automobile repair", 2),
    ("cardiac illness", 3),
    ("monetary policy", 4),
    ("global warming", 5),
    ("soccer championship", 6),
    ("baking bread", 7),
    ("space travel", 8),
];

fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

#[test]
fn semantic_search_ranks_the_right_document_first() {
    let model = model();
    let documents = model.embed(&DOCUMENTS).unwrap();
    for (query, right) in QUERIES {
        let shared: Vec<_> = words(query)
            .intersection(&words(DOCUMENTS[right]))
            .cloned()
            .collect();
        assert!(
            shared.is_empty(),
            "{query:?} shares {shared:?} with its document"
        );
        let q = &model.embed(&[query]).unwrap()[0];
        let mut ranked: Vec<(f32, usize)> = documents
            .iter()
            .enumerate()
            .map(|(i, d)| (dot(q, d), i))
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        assert_eq!(
            ranked[0].1, right,
            "{query:?}: ranked {:?} first, not {:?} ({ranked:?})",
            DOCUMENTS[ranked[0].1], DOCUMENTS[right]
        );
    }
}

#[tokio::test]
async fn the_service_returns_the_models_vectors() {
    let model = MiniLm::load(&model_dir()).unwrap();
    let direct = model.embed(&DOCUMENTS[..5]).unwrap();
    let service = EmbedService::start(Arc::new(model), EmbedConfig::default()).unwrap();
    assert_eq!(service.dim(), 384);
    // Five requests at once: batched together by the worker.
    let pending: Vec<_> = DOCUMENTS[..5]
        .iter()
        .map(|d| service.submit(vec![d.to_string()]).unwrap())
        .collect();
    for (pending, expected) in pending.into_iter().zip(&direct) {
        let got = tokio::time::timeout(std::time::Duration::from_secs(60), pending)
            .await
            .expect("the embedder answered within a minute")
            .unwrap();
        assert!(
            got[0]
                .iter()
                .zip(expected)
                .all(|(x, y)| (x - y).abs() < 1e-5)
        );
    }
    assert_eq!(service.stats().texts_embedded, 5);
    service.shutdown();
}
