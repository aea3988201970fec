//! Semantic search with the real model (issue 21 §3), through a real
//! server started with `--embedding-model`: a corpus whose right answers
//! share no word with the queries, written before FT.CREATE (the backfill
//! embeds them) and after (each SET and MSET is embedded before it enters
//! the log); KNN by FT.SEARCH (the PARAMS value is text), by the CLI and by
//! the text protocol; DIM checked against the model.
//!
//! Needs all-MiniLM-L6-v2 in `STRATA_EMBED_MODEL_DIR`: behind the
//! `model-tests` feature, and it fails, never skips, without the model.
//! `scripts/test-embedding-model.sh` fetches the model and runs it.
#![cfg(feature = "model-tests")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::TestServer;
use common::cluster::Reply;

const TIMEOUT: Duration = Duration::from_secs(60);

fn model_dir() -> String {
    std::env::var("STRATA_EMBED_MODEL_DIR")
        .expect("STRATA_EMBED_MODEL_DIR must name the all-MiniLM-L6-v2 directory")
}

fn call(c: &mut strata_client::Client, args: &[&str]) -> Reply {
    c.call(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

const BEFORE: &[(&str, &str)] = &[
    (
        "doc:ml",
        "Neural networks learn patterns from training data",
    ),
    (
        "doc:cook",
        "Simmer the tomatoes with garlic and basil to make the sauce",
    ),
];
const AFTER: &[(&str, &str)] = &[
    (
        "doc:sport",
        "The striker scored twice in the final match of the season",
    ),
    (
        "doc:space",
        "The rocket reached orbit and circled the planet",
    ),
    (
        "doc:money",
        "Interest rates rose and the bank tightened its lending",
    ),
];

/// The nearest keys to `text` by FT.SEARCH KNN, nearest first.
fn knn(c: &mut strata_client::Client, text: &str, k: usize) -> Vec<String> {
    let query = format!("*=>[KNN {k} @vec $q AS dist]");
    let r = call(
        c,
        &[
            "FT.SEARCH",
            "sem",
            &query,
            "PARAMS",
            "2",
            "q",
            text,
            "DIALECT",
            "2",
        ],
    );
    let Reply::Array(items) = &r else {
        panic!("{r:?}")
    };
    let mut keys = Vec::new();
    for pair in items[1..].chunks(2) {
        let Reply::Bulk(key) = &pair[0] else {
            panic!("{r:?}")
        };
        // The distance comes first among the fields, under its AS name.
        let Reply::Array(fields) = &pair[1] else {
            panic!("{r:?}")
        };
        assert_eq!(
            fields[0],
            Reply::Bulk(bytes::Bytes::from_static(b"dist")),
            "{r:?}"
        );
        keys.push(String::from_utf8_lossy(key).into_owned());
    }
    keys
}

#[test]
fn semantic_search_finds_meaning_without_shared_words() {
    let server = TestServer::start_with(&["--embedding-model", &model_dir()]);
    let mut c = strata_client::Client::connect(&server.resp_addr.to_string(), 60_000).unwrap();
    for (k, v) in BEFORE {
        assert_eq!(call(&mut c, &["SET", k, v]), Reply::ok());
    }
    let wrong_dim = call(
        &mut c,
        &[
            "FT.CREATE",
            "bad",
            "SCHEMA",
            "value",
            "AS",
            "text",
            "TEXT",
            "value",
            "AS",
            "vec",
            "VECTOR",
            "FLAT",
            "6",
            "TYPE",
            "FLOAT32",
            "DIM",
            "128",
            "DISTANCE_METRIC",
            "COSINE",
            "EMBED",
            "text",
        ],
    );
    assert!(
        matches!(&wrong_dim, Reply::Error(e) if e.contains("384")),
        "{wrong_dim:?}"
    );
    let created = call(
        &mut c,
        &[
            "FT.CREATE",
            "sem",
            "ON",
            "STRING",
            "PREFIX",
            "1",
            "doc:",
            "SCHEMA",
            "value",
            "AS",
            "text",
            "TEXT",
            "value",
            "AS",
            "vec",
            "VECTOR",
            "FLAT",
            "6",
            "TYPE",
            "FLOAT32",
            "DIM",
            "384",
            "DISTANCE_METRIC",
            "COSINE",
            "EMBED",
            "text",
        ],
    );
    assert_eq!(created, Reply::ok());
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let r = call(&mut c, &["SEARCH", "TEXT", "sem", "*", "LIMIT", "1"]);
        if matches!(&r, Reply::Array(items) if items[1] == Reply::Integer(0)) {
            break;
        }
        assert!(Instant::now() < deadline, "sem still indexing");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(call(&mut c, &["SET", AFTER[0].0, AFTER[0].1]), Reply::ok());
    let mset = call(
        &mut c,
        &["MSET", AFTER[1].0, AFTER[1].1, AFTER[2].0, AFTER[2].1],
    );
    assert_eq!(mset, Reply::ok());

    assert_eq!(knn(&mut c, "artificial intelligence", 5)[0], "doc:ml");
    assert_eq!(knn(&mut c, "italian cooking recipe", 5)[0], "doc:cook");
    assert_eq!(knn(&mut c, "football game", 5)[0], "doc:sport");
    assert_eq!(knn(&mut c, "space exploration", 5)[0], "doc:space");
    assert_eq!(knn(&mut c, "finance and economy", 5)[0], "doc:money");
    assert_eq!(knn(&mut c, "machine learning", 2).len(), 2);

    // The CLI and the text protocol.
    let (code, out, err) = common::run_cli(
        &["search", "semantic", "sem", "soccer", "--limit", "1"],
        server.resp_addr,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("doc:sport: "), "{out}");
    let addr = server.text_addr.expect("text listener");
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    writer
        .write_all(b"SEARCH semantic sem astronauts and satellites\n")
        .unwrap();
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert!(first.starts_with("doc:space: "), "{first}");

    // A changed text gets a new vector.
    call(
        &mut c,
        &["SET", "doc:space", "Stock markets fell sharply on Monday"],
    );
    let near = knn(&mut c, "space exploration", 5);
    assert_ne!(near[0], "doc:space", "{near:?}");
}
