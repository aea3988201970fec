//! Search through the public interface (issue 21): FT.CREATE, FT.SEARCH,
//! FT.INFO, FT._LIST and FT.DROPINDEX against a real server, with the
//! `redis` crate (what applications use) for the happy paths and Strata's
//! client for exact reply shapes and error texts; the background backfill
//! of keys written before FT.CREATE; writes of every kind keeping results
//! exact; bad input answered with errors; Strata's SEARCH through the CLI
//! and the text protocol; a 3-node cluster (create on the leader, search
//! on a follower).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::TestServer;
use common::cluster::{self as cl, Reply, call_retry};

const TIMEOUT: Duration = Duration::from_secs(30);

fn client(server: &TestServer) -> strata_client::Client {
    strata_client::Client::connect(&server.resp_addr.to_string(), 30_000).expect("connect")
}

fn call(c: &mut strata_client::Client, args: &[&str]) -> Reply {
    c.call(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(bytes::Bytes::copy_from_slice(s.as_bytes()))
}

fn error_text(r: &Reply) -> String {
    match r {
        Reply::Error(e) => e.to_string(),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// FT.SEARCH's keys, in order, from a reply `[total, key, ...]` (NOCONTENT).
fn keys_of(r: &Reply) -> (i64, Vec<String>) {
    let Reply::Array(items) = r else {
        panic!("FT.SEARCH reply {r:?}")
    };
    let Some(Reply::Integer(total)) = items.first() else {
        panic!("FT.SEARCH reply {r:?}")
    };
    let keys = items[1..]
        .iter()
        .map(|k| match k {
            Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("key {other:?} in {r:?}"),
        })
        .collect();
    (*total, keys)
}

fn search_keys(c: &mut strata_client::Client, index: &str, query: &str) -> Vec<String> {
    let r = call(
        c,
        &["FT.SEARCH", index, query, "NOCONTENT", "LIMIT", "0", "1000"],
    );
    let (total, keys) = keys_of(&r);
    assert_eq!(total as usize, keys.len(), "{query}: {r:?}");
    keys
}

/// FT.INFO as a map of its top-level keys to replies.
fn info(c: &mut strata_client::Client, index: &str) -> Vec<(String, Reply)> {
    let Reply::Array(items) = call(c, &["FT.INFO", index]) else {
        panic!("FT.INFO {index}")
    };
    items
        .chunks(2)
        .map(|kv| {
            let key = match &kv[0] {
                Reply::Status(s) => s.to_string(),
                other => panic!("FT.INFO key {other:?}"),
            };
            (key, kv[1].clone())
        })
        .collect()
}

fn info_number(c: &mut strata_client::Client, index: &str, field: &str) -> f64 {
    let info = info(c, index);
    let (_, v) = info
        .iter()
        .find(|(k, _)| k == field)
        .unwrap_or_else(|| panic!("FT.INFO {index} has no {field}: {info:?}"));
    match v {
        Reply::Bulk(b) => String::from_utf8_lossy(b).parse().expect("number"),
        Reply::Double(d) => *d,
        Reply::Integer(n) => *n as f64,
        other => panic!("{field}: {other:?}"),
    }
}

/// Waits until the index is built (FT.INFO indexing 0).
fn wait_built(c: &mut strata_client::Client, index: &str) {
    let deadline = Instant::now() + TIMEOUT;
    while info_number(c, index, "indexing") != 0.0 {
        assert!(Instant::now() < deadline, "{index} still indexing");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(info_number(c, index, "percent_indexed"), 1.0);
}

const DOCS: &[(&str, &str)] = &[
    ("doc:1", "python is a programming language"),
    (
        "doc:2",
        "a database stores data; python talks to the database",
    ),
    ("doc:3", "rust is fast"),
    ("other:1", "python outside the prefix"),
];

fn create_text_index(c: &mut strata_client::Client) {
    let r = call(
        c,
        &[
            "FT.CREATE",
            "idx",
            "ON",
            "STRING",
            "PREFIX",
            "1",
            "doc:",
            "SCHEMA",
            "value",
            "TEXT",
            "value",
            "AS",
            "exact",
            "TAG",
            "SEPARATOR",
            "|",
        ],
    );
    assert_eq!(r, Reply::ok());
}

#[test]
fn ft_commands_answer_with_redisearch_shapes() {
    let server = TestServer::start();
    let mut c = client(&server);
    for (k, v) in DOCS {
        assert_eq!(call(&mut c, &["SET", k, v]), Reply::ok());
    }
    create_text_index(&mut c);
    wait_built(&mut c, "idx");
    assert_eq!(info_number(&mut c, "idx", "num_docs"), 3.0);

    // Both words, best first: doc:2 says "database" twice.
    let r = call(&mut c, &["FT.SEARCH", "idx", "python database"]);
    assert_eq!(
        r,
        Reply::Array(vec![
            Reply::Integer(1),
            bulk("doc:2"),
            Reply::Array(vec![bulk("value"), bulk(DOCS[1].1)]),
        ])
    );
    assert_eq!(search_keys(&mut c, "idx", "python"), ["doc:1", "doc:2"]);
    assert_eq!(search_keys(&mut c, "idx", "python -database"), ["doc:1"]);
    let mut either = search_keys(&mut c, "idx", "rust | database");
    either.sort();
    assert_eq!(either, ["doc:2", "doc:3"]);
    assert_eq!(
        search_keys(&mut c, "idx", "@exact:{rust is fast}"),
        ["doc:3"]
    );
    assert_eq!(search_keys(&mut c, "idx", "\"is fast\""), ["doc:3"]);
    assert_eq!(search_keys(&mut c, "idx", "prog*"), ["doc:1"]);

    // WITHSCORES: a score per hit, as text; LIMIT 0 0: the count alone.
    let Reply::Array(items) = call(
        &mut c,
        &["FT.SEARCH", "idx", "python", "WITHSCORES", "NOCONTENT"],
    ) else {
        panic!()
    };
    assert_eq!(items.len(), 5, "{items:?}");
    for score in [&items[2], &items[4]] {
        let Reply::Bulk(b) = score else {
            panic!("score {score:?}")
        };
        assert!(String::from_utf8_lossy(b).parse::<f64>().unwrap() > 0.0);
    }
    assert_eq!(
        call(&mut c, &["FT.SEARCH", "idx", "python", "LIMIT", "0", "0"]),
        Reply::Array(vec![Reply::Integer(2)])
    );
    // LIMIT pages, RETURN picks (and renames) fields.
    let r = call(
        &mut c,
        &[
            "FT.SEARCH",
            "idx",
            "python",
            "LIMIT",
            "1",
            "1",
            "RETURN",
            "3",
            "value",
            "AS",
            "v",
        ],
    );
    assert_eq!(
        r,
        Reply::Array(vec![
            Reply::Integer(2),
            bulk("doc:2"),
            Reply::Array(vec![bulk("v"), bulk(DOCS[1].1)]),
        ])
    );
    // SCORER BM25STD (RediSearch's b) and DIALECT 2 and TIMEOUT are taken.
    let r = call(
        &mut c,
        &[
            "FT.SEARCH",
            "idx",
            "python",
            "SCORER",
            "BM25STD",
            "DIALECT",
            "2",
            "TIMEOUT",
            "5",
            "NOCONTENT",
        ],
    );
    assert_eq!(keys_of(&r).0, 2);

    // FT._LIST (simple strings), FT.INFO's shape.
    assert_eq!(
        call(&mut c, &["FT._LIST"]),
        Reply::Array(vec![Reply::Status("idx".into())])
    );
    let info = info(&mut c, "idx");
    let keys: Vec<&str> = info.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "index_name",
            "index_options",
            "index_definition",
            "attributes",
            "num_docs",
            "hash_indexing_failures",
            "indexing",
            "percent_indexed"
        ]
    );
    assert_eq!(info[0].1, Reply::Status("idx".into()));
    let Reply::Array(definition) = &info[2].1 else {
        panic!("{info:?}")
    };
    assert_eq!(definition[0], Reply::Status("key_type".into()));
    assert_eq!(definition[1], Reply::Status("STRING".into()));
    assert_eq!(
        definition[3],
        Reply::Array(vec![Reply::Status("doc:".into())])
    );
    let Reply::Array(attributes) = &info[3].1 else {
        panic!("{info:?}")
    };
    assert_eq!(attributes.len(), 2);
    assert_eq!(info[4].1, Reply::Integer(3), "num_docs: {info:?}");

    // RESP3: RediSearch's map.
    let mut c3 = client(&server);
    call(&mut c3, &["HELLO", "3"]);
    let r = call(&mut c3, &["FT.SEARCH", "idx", "fast", "WITHSCORES"]);
    let Reply::Map(top) = &r else {
        panic!("RESP3 FT.SEARCH: {r:?}")
    };
    let names: Vec<String> = top
        .iter()
        .map(|(k, _)| match k {
            Reply::Status(s) => s.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "attributes",
            "total_results",
            "format",
            "results",
            "warning"
        ]
    );
    assert_eq!(top[1].1, Reply::Integer(1));
    let Reply::Array(results) = &top[3].1 else {
        panic!("{r:?}")
    };
    let Reply::Map(hit) = &results[0] else {
        panic!("{r:?}")
    };
    assert_eq!(hit[0], (Reply::Status("id".into()), bulk("doc:3")));
    assert!(matches!(hit[1], (Reply::Status(ref s), Reply::Double(d)) if s == "score" && d > 0.0));
    assert_eq!(
        hit[2].1,
        Reply::Map(vec![(bulk("value"), bulk("rust is fast"))])
    );
    // The redis crate reads the same replies.
    let mut r = server.redis();
    let found: redis::Value = redis::cmd("FT.SEARCH")
        .arg("idx")
        .arg("fast")
        .query(&mut r)
        .expect("FT.SEARCH via redis");
    let redis::Value::Array(found) = found else {
        panic!("{found:?}")
    };
    assert_eq!(found[0], redis::Value::Int(1));
    assert_eq!(found[1], redis::Value::BulkString(b"doc:3".to_vec()));

    // Drop: gone from the list, searches refused, the keys stay.
    // A third argument other than DD is ignored, as RediSearch does.
    assert_eq!(call(&mut c, &["FT.DROPINDEX", "idx", "KEEP"]), Reply::ok());
    assert_eq!(call(&mut c, &["FT._LIST"]), Reply::Array(vec![]));
    assert_eq!(
        error_text(&call(&mut c, &["FT.SEARCH", "idx", "python"])),
        "idx: no such index"
    );
    assert_eq!(call(&mut c, &["EXISTS", "doc:1"]), Reply::Integer(1));
}

#[test]
fn backfill_indexes_existing_keys_in_the_background() {
    let server = TestServer::start();
    let mut c = client(&server);
    const N: usize = 10_000;
    for chunk in (0..N).collect::<Vec<_>>().chunks(500) {
        let mut args = vec!["MSET".to_string()];
        for i in chunk {
            args.push(format!("k:{i:05}"));
            args.push(format!("word{} common", i % 7));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(call(&mut c, &args), Reply::ok());
    }
    assert_eq!(
        call(
            &mut c,
            &[
                "FT.CREATE",
                "big",
                "PREFIX",
                "1",
                "k:",
                "SCHEMA",
                "value",
                "TEXT"
            ]
        ),
        Reply::ok()
    );
    // Progress is visible, then the index is whole.
    wait_built(&mut c, "big");
    assert_eq!(info_number(&mut c, "big", "num_docs"), N as f64);
    let r = call(&mut c, &["FT.SEARCH", "big", "common", "LIMIT", "0", "0"]);
    assert_eq!(r, Reply::Array(vec![Reply::Integer(N as i64)]));
    let r = call(&mut c, &["FT.SEARCH", "big", "word3", "LIMIT", "0", "0"]);
    assert_eq!(
        r,
        Reply::Array(vec![Reply::Integer(((N - 3) / 7 + 1) as i64)])
    );
    // A restart keeps the index (it is data), built.
    drop(c);
    let mut server = server;
    server.stop_graceful();
    server.relaunch();
    let mut c = client(&server);
    assert_eq!(info_number(&mut c, "big", "indexing"), 0.0);
    let r = call(&mut c, &["FT.SEARCH", "big", "common", "LIMIT", "0", "0"]);
    assert_eq!(r, Reply::Array(vec![Reply::Integer(N as i64)]));
}

#[test]
fn every_kind_of_write_keeps_results_exact() {
    let server = TestServer::start();
    let mut c = client(&server);
    create_text_index(&mut c);
    wait_built(&mut c, "idx");
    let find = |c: &mut strata_client::Client, q: &str| search_keys(c, "idx", q);

    call(&mut c, &["SET", "doc:a", "alpha beta"]);
    call(
        &mut c,
        &["MSET", "doc:b", "beta gamma", "doc:c", "gamma delta"],
    );
    assert_eq!(find(&mut c, "beta"), ["doc:a", "doc:b"]);
    // Overwrite: old words gone, new ones found.
    call(&mut c, &["SET", "doc:a", "epsilon"]);
    assert_eq!(find(&mut c, "beta"), ["doc:b"]);
    assert_eq!(find(&mut c, "epsilon"), ["doc:a"]);
    // DEL, RENAME (out of and into the prefix), APPEND.
    call(&mut c, &["DEL", "doc:b"]);
    assert_eq!(find(&mut c, "gamma"), ["doc:c"]);
    call(&mut c, &["RENAME", "doc:c", "out:c"]);
    assert!(find(&mut c, "gamma").is_empty());
    call(&mut c, &["RENAME", "out:c", "doc:z"]);
    assert_eq!(find(&mut c, "delta"), ["doc:z"]);
    call(&mut c, &["APPEND", "doc:z", " omega"]);
    assert_eq!(find(&mut c, "omega"), ["doc:z"]);
    // A transaction.
    call(&mut c, &["MULTI"]);
    call(&mut c, &["SET", "doc:t", "theta"]);
    call(&mut c, &["DEL", "doc:a"]);
    let r = call(&mut c, &["EXEC"]);
    assert_eq!(r, Reply::Array(vec![Reply::ok(), Reply::Integer(1)]));
    assert_eq!(find(&mut c, "theta"), ["doc:t"]);
    assert!(find(&mut c, "epsilon").is_empty());
    // Expiry: gone from results once expired (swept or not).
    call(&mut c, &["PEXPIRE", "doc:t", "50"]);
    std::thread::sleep(Duration::from_millis(120));
    assert!(find(&mut c, "theta").is_empty());
    // FT.INFO counts what is there.
    let deadline = Instant::now() + TIMEOUT;
    while info_number(&mut c, "idx", "num_docs") != 1.0 {
        assert!(Instant::now() < deadline, "num_docs after the sweep");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A counter from `INFO memory`.
fn info_memory(c: &mut strata_client::Client, field: &str) -> u64 {
    let Reply::Bulk(text) = call(c, &["INFO", "memory"]) else {
        panic!("INFO memory is a bulk string")
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("INFO memory has no {field}: {text}"))
        .trim()
        .parse()
        .expect("a number")
}

/// The posting cache through a real server: a repeated query is served
/// from it (INFO memory counts the hits), a write is seen by the next
/// query all the same, and `--search-cache-size-bytes 0` turns it off.
#[test]
fn repeated_queries_use_the_posting_cache_and_still_see_every_write() {
    let server = TestServer::start();
    let mut c = client(&server);
    create_text_index(&mut c);
    wait_built(&mut c, "idx");
    call(
        &mut c,
        &["MSET", "doc:a", "alpha beta", "doc:b", "beta gamma"],
    );
    let hits_before = info_memory(&mut c, "strata_search_cache_hits");
    assert_eq!(search_keys(&mut c, "idx", "beta"), ["doc:a", "doc:b"]);
    assert_eq!(search_keys(&mut c, "idx", "beta"), ["doc:a", "doc:b"]);
    let hits = info_memory(&mut c, "strata_search_cache_hits");
    assert!(hits > hits_before, "the second query read cached lists");
    assert!(info_memory(&mut c, "strata_search_cache_bytes") > 0);
    // A write to a cached list: the next query sees it, hit or not.
    call(&mut c, &["SET", "doc:c", "beta delta"]);
    assert_eq!(
        search_keys(&mut c, "idx", "beta"),
        ["doc:a", "doc:b", "doc:c"]
    );
    call(&mut c, &["DEL", "doc:a"]);
    assert_eq!(search_keys(&mut c, "idx", "beta"), ["doc:b", "doc:c"]);
    assert_eq!(search_keys(&mut c, "idx", "beta"), ["doc:b", "doc:c"]);

    let off = TestServer::start_with(&["--search-cache-size-bytes", "0"]);
    let mut c = client(&off);
    create_text_index(&mut c);
    wait_built(&mut c, "idx");
    call(&mut c, &["SET", "doc:a", "alpha beta"]);
    assert_eq!(search_keys(&mut c, "idx", "beta"), ["doc:a"]);
    assert_eq!(search_keys(&mut c, "idx", "beta"), ["doc:a"]);
    assert_eq!(info_memory(&mut c, "strata_search_cache_hits"), 0);
    assert_eq!(info_memory(&mut c, "strata_search_cache_capacity_bytes"), 0);
}

#[test]
fn json_documents_sort_and_return_fields() {
    let server = TestServer::start();
    let mut c = client(&server);
    let r = call(
        &mut c,
        &[
            "FT.CREATE",
            "j",
            "ON",
            "JSON",
            "PREFIX",
            "1",
            "item:",
            "SCHEMA",
            "$.title",
            "AS",
            "title",
            "TEXT",
            "$.price",
            "AS",
            "price",
            "NUMERIC",
            "SORTABLE",
            "$.color",
            "AS",
            "color",
            "TAG",
        ],
    );
    assert_eq!(r, Reply::ok());
    // Built at once (no keys yet); from then on every write is indexed
    // in its own batch.
    wait_built(&mut c, "j");
    let items = [
        (
            "item:1",
            r#"{"title":"red shoes","price":30,"color":"red"}"#,
        ),
        (
            "item:2",
            r#"{"title":"blue shoes","price":10,"color":"blue"}"#,
        ),
        ("item:3", r#"{"title":"red hat","price":20,"color":"red"}"#),
        ("item:4", "not json"),
    ];
    for (k, v) in items {
        call(&mut c, &["SET", k, v]);
    }
    assert_eq!(info_number(&mut c, "j", "num_docs"), 3.0);
    assert_eq!(info_number(&mut c, "j", "hash_indexing_failures"), 1.0);
    assert_eq!(
        search_keys(&mut c, "j", "@price:[15 +inf]"),
        ["item:1", "item:3"]
    );
    assert_eq!(search_keys(&mut c, "j", "@color:{red} shoes"), ["item:1"]);
    let r = call(&mut c, &["FT.SEARCH", "j", "shoes", "LIMIT", "0", "1"]);
    let Reply::Array(items_r) = &r else { panic!() };
    assert_eq!(items_r[0], Reply::Integer(2));
    let Reply::Array(fields) = &items_r[2] else {
        panic!("{r:?}")
    };
    assert_eq!(fields[0], bulk("$"));
    // SORTBY a numeric field, both ways; RETURN by name and by path.
    let r = call(
        &mut c,
        &[
            "FT.SEARCH",
            "j",
            "*",
            "SORTBY",
            "price",
            "DESC",
            "RETURN",
            "2",
            "title",
            "$.price",
        ],
    );
    assert_eq!(
        r,
        Reply::Array(vec![
            Reply::Integer(3),
            bulk("item:1"),
            Reply::Array(vec![
                bulk("title"),
                bulk("red shoes"),
                bulk("$.price"),
                bulk("30")
            ]),
            bulk("item:3"),
            Reply::Array(vec![
                bulk("title"),
                bulk("red hat"),
                bulk("$.price"),
                bulk("20")
            ]),
            bulk("item:2"),
            Reply::Array(vec![
                bulk("title"),
                bulk("blue shoes"),
                bulk("$.price"),
                bulk("10")
            ]),
        ])
    );
    let r = call(
        &mut c,
        &["FT.SEARCH", "j", "*", "SORTBY", "price", "NOCONTENT"],
    );
    assert_eq!(keys_of(&r).1, ["item:2", "item:3", "item:1"]);
    assert_eq!(
        error_text(&call(&mut c, &["FT.SEARCH", "j", "*", "SORTBY", "nope"])),
        "Property `nope` not loaded nor in schema"
    );
}

/// FLOAT32 LE bytes of a vector.
fn blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn knn_over_stored_vectors_sorts_by_distance() {
    let server = TestServer::start();
    let mut c = client(&server);
    let r = call(
        &mut c,
        &[
            "FT.CREATE",
            "v",
            "PREFIX",
            "1",
            "vec:",
            "SCHEMA",
            "value",
            "AS",
            "emb",
            "VECTOR",
            "FLAT",
            "6",
            "TYPE",
            "FLOAT32",
            "DIM",
            "2",
            "DISTANCE_METRIC",
            "L2",
        ],
    );
    assert_eq!(r, Reply::ok());
    wait_built(&mut c, "v");
    for (k, v) in [
        ("vec:a", [0.0f32, 0.0]),
        ("vec:b", [3.0, 4.0]),
        ("vec:c", [1.0, 0.0]),
    ] {
        let args: Vec<Vec<u8>> = vec![b"SET".to_vec(), k.as_bytes().to_vec(), blob(&v)];
        assert_eq!(c.call(&args).unwrap(), Reply::ok());
    }
    let q = blob(&[0.0, 1.0]);
    let args: Vec<Vec<u8>> = [
        &b"FT.SEARCH"[..],
        b"v",
        b"*=>[KNN 2 @emb $q AS dist]",
        b"SORTBY",
        b"dist",
        b"RETURN",
        b"1",
        b"dist",
        b"PARAMS",
        b"2",
        b"q",
        &q,
        b"DIALECT",
        b"2",
    ]
    .iter()
    .map(|a| a.to_vec())
    .collect();
    // Squared L2 from (0, 1): a 1, c 2, b 18; k = 2.
    assert_eq!(
        c.call(&args).unwrap(),
        Reply::Array(vec![
            Reply::Integer(2),
            bulk("vec:a"),
            Reply::Array(vec![bulk("dist"), bulk("1")]),
            bulk("vec:c"),
            Reply::Array(vec![bulk("dist"), bulk("2")]),
        ])
    );
    let bad: Vec<Vec<u8>> = [
        &b"FT.SEARCH"[..],
        b"v",
        b"*=>[KNN 2 @emb $q]",
        b"PARAMS",
        b"2",
        b"q",
        b"abc",
    ]
    .iter()
    .map(|a| a.to_vec())
    .collect();
    let r = c.call(&bad).unwrap();
    assert!(
        error_text(&r).contains("query vector blob size (3)"),
        "{r:?}"
    );
}

#[test]
fn dropindex_dd_deletes_the_documents() {
    let server = TestServer::start();
    let mut c = client(&server);
    for (k, v) in DOCS {
        call(&mut c, &["SET", k, v]);
    }
    create_text_index(&mut c);
    wait_built(&mut c, "idx");
    assert_eq!(call(&mut c, &["FT.DROPINDEX", "idx", "DD"]), Reply::ok());
    assert_eq!(call(&mut c, &["FT._LIST"]), Reply::Array(vec![]));
    assert_eq!(
        call(&mut c, &["EXISTS", "doc:1", "doc:2", "doc:3"]),
        Reply::Integer(0)
    );
    assert_eq!(call(&mut c, &["EXISTS", "other:1"]), Reply::Integer(1));
}

#[test]
fn bad_input_is_answered_with_errors() {
    let server = TestServer::start();
    let mut c = client(&server);
    create_text_index(&mut c);
    let err = |c: &mut strata_client::Client, args: &[&str]| error_text(&call(c, args));
    assert_eq!(
        err(&mut c, &["FT.CREATE", "idx", "SCHEMA", "value", "TEXT"]),
        "Index already exists"
    );
    assert_eq!(err(&mut c, &["FT.INFO", "nope"]), "Unknown index name");
    assert_eq!(err(&mut c, &["FT.DROPINDEX", "nope"]), "Unknown Index name");
    assert_eq!(
        err(&mut c, &["FT.SEARCH", "nope", "x"]),
        "nope: no such index"
    );
    assert!(err(&mut c, &["FT.SEARCH", "idx", "(a"]).starts_with("Syntax error"));
    assert!(err(&mut c, &["FT.CREATE", "x", "SCHEMA", "f", "BOGUS"]).contains("field"));
    let embed = err(
        &mut c,
        &[
            "FT.CREATE",
            "e",
            "SCHEMA",
            "value",
            "TEXT",
            "value",
            "AS",
            "v",
            "VECTOR",
            "FLAT",
            "6",
            "TYPE",
            "FLOAT32",
            "DIM",
            "4",
            "DISTANCE_METRIC",
            "COSINE",
            "EMBED",
            "value",
        ],
    );
    assert!(embed.contains("--embedding-model"), "{embed}");
    assert!(
        err(&mut c, &["FT.SEARCH", "idx", "x", "LIMIT", "0", "99999999"])
            .starts_with("LIMIT exceeds")
    );
    assert_eq!(
        err(&mut c, &["FT.SEARCH", "idx", "x", "PARAMS", "1", "a"]),
        "Parameters must be specified in PARAM VALUE pairs"
    );
    assert!(
        err(&mut c, &["FT.SEARCH", "idx", "x", "DIALECT", "9"]).starts_with("DIALECT requires")
    );
    assert_eq!(
        err(&mut c, &["FT.DROPINDEX", "idx", "DD", "x"]),
        "ERR wrong number of arguments for 'FT.DROPINDEX' command"
    );
    assert_eq!(
        err(&mut c, &["FT.CREATE", "i", "SCHEMA", "value"]),
        "ERR wrong number of arguments for 'FT.CREATE' command"
    );
    assert_eq!(
        err(&mut c, &["FT.SEARCH", "idx"]),
        "No query string provided"
    );
    // Names longer than any index's: unknown, on every front door.
    let long = "x".repeat(70_000);
    assert_eq!(
        err(&mut c, &["FT.SEARCH", &long, "a"]),
        format!("{long}: no such index")
    );
    assert_eq!(err(&mut c, &["FT.INFO", &long]), "Unknown index name");
    assert_eq!(err(&mut c, &["FT.DROPINDEX", &long]), "Unknown Index name");
    assert!(err(&mut c, &["SEARCH", "TEXT", &long, "a"]).ends_with("no such index"));
    // Oversized: a huge query, deep nesting, many fields, a huge name.
    let huge = "a ".repeat(20_000);
    assert!(err(&mut c, &["FT.SEARCH", "idx", &huge]).contains("longer than"));
    let deep = format!("{}a{}", "(".repeat(100), ")".repeat(100));
    assert!(err(&mut c, &["FT.SEARCH", "idx", &deep]).contains("deeper"));
    let name = "n".repeat(100_000);
    assert!(!err(&mut c, &["FT.CREATE", &name, "SCHEMA", "value", "TEXT"]).is_empty());
    let mut many = vec!["FT.CREATE", "m", "ON", "JSON", "SCHEMA"];
    let fields: Vec<String> = (0..5_000).map(|i| format!("$.f{i}")).collect();
    for f in &fields {
        many.extend([f.as_str(), "TEXT"]);
    }
    assert!(!err(&mut c, &many).is_empty());
    // Junk after every FT command: errors, never a crash.
    for args in [
        vec!["FT.SEARCH", "idx", "x", "RETURN"],
        vec!["FT.SEARCH", "idx", "x", "SORTBY"],
        vec!["FT.SEARCH", "idx", "x", "LIMIT", "-1", "2"],
        vec!["FT.SEARCH", "idx", "*=>[KNN 5 @v $q]"],
        vec!["FT.SEARCH", "idx", "x", "\u{0}\u{1}"],
        vec!["FT._LIST", "extra"],
        vec!["FT.CREATE", "y", "ON", "HASH", "SCHEMA", "a", "TEXT"],
        vec!["SEARCH", "FUZZY", "idx", "x"],
        vec!["SEARCH", "TEXT", "idx", "x", "LIMIT", "0"],
        vec!["SEARCH", "VALUE", "idx", "x", "THRESHOLD", "1"],
    ] {
        let r = call(&mut c, &args);
        assert!(matches!(r, Reply::Error(_)), "{args:?}: {r:?}");
    }
    assert_eq!(call(&mut c, &["PING"]), Reply::Status("PONG".into()));
}

#[test]
fn strata_search_through_the_cli_and_the_text_protocol() {
    let server = TestServer::start();
    let mut c = client(&server);
    for (k, v) in DOCS {
        call(&mut c, &["SET", k, v]);
    }
    create_text_index(&mut c);
    wait_built(&mut c, "idx");

    // RESP: [[key, score, value]...], indexing flag.
    let Reply::Array(r) = call(&mut c, &["SEARCH", "TEXT", "idx", "python", "LIMIT", "1"]) else {
        panic!()
    };
    assert_eq!(r.len(), 2);
    assert_eq!(r[1], Reply::Integer(0));
    let Reply::Array(hits) = &r[0] else { panic!() };
    assert_eq!(hits.len(), 1);

    // The CLI.
    let (code, out, err) = common::run_cli(
        &["search", "text", "idx", "python database"],
        server.resp_addr,
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].ends_with("doc:2: a database stores data; python talks to the database"),
        "{out}"
    );
    let (code, out, _) = common::run_cli(
        &["search", "value", "idx", "rust is fast", "--json"],
        server.resp_addr,
    );
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(json[0]["key"], "doc:3");
    assert_eq!(json[0]["value"], "rust is fast");
    let (code, out, _) = common::run_cli(&["search", "text", "idx", "nothing"], server.resp_addr);
    assert_eq!((code, out.as_str()), (1, ""));
    let (code, _, err) = common::run_cli(&["search", "semantic", "idx", "speed"], server.resp_addr);
    assert_eq!(code, 2);
    assert!(err.contains("EMBED"), "{err}");
    let (code, _, err) = common::run_cli(&["search", "text", "nope", "x"], server.resp_addr);
    assert_eq!(code, 2);
    assert!(err.contains("no such index"), "{err}");

    // The text protocol.
    let addr = server.text_addr.expect("text listener");
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect text");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut line = |req: &str| -> Vec<String> {
        writer.write_all(format!("{req}\n").as_bytes()).unwrap();
        let mut lines = Vec::new();
        loop {
            let mut l = String::new();
            reader.read_line(&mut l).expect("reply line");
            let l = l.trim_end().to_string();
            let last = l == "END" || l == "INDEXING" || l.starts_with("ERROR");
            lines.push(l);
            if last {
                return lines;
            }
        }
    };
    assert_eq!(
        line("SEARCH text idx python"),
        [
            "doc:1: python is a programming language",
            "doc:2: a database stores data; python talks to the database",
            "END"
        ]
    );
    assert_eq!(
        line("SEARCH value idx rust is fast"),
        ["doc:3: rust is fast", "END"]
    );
    assert_eq!(line("SEARCH text idx nothing"), ["END"]);
    assert_eq!(line("SEARCH text nope x"), ["ERROR: nope: no such index"]);
    assert_eq!(
        line("SEARCH fuzzy idx x")[0],
        "ERROR: SEARCH mode must be VALUE, TEXT or SEMANTIC"
    );
    assert!(line("SEARCH text")[0].starts_with("ERROR: SEARCH needs a mode"));
}

#[test]
fn cluster_create_on_the_leader_search_on_a_follower() {
    let (cluster, leader) = cl::start(cl::config(3));
    let follower = cl::others(&cluster, leader)[0];
    let l = cluster.node(leader);
    let f = cluster.node(follower);
    for (k, v) in DOCS {
        cl::set(l, k, v);
    }
    let create = [
        "FT.CREATE",
        "idx",
        "PREFIX",
        "1",
        "doc:",
        "SCHEMA",
        "value",
        "TEXT",
    ];
    assert_eq!(call_retry(l.resp_addr, &create, TIMEOUT), Reply::ok());
    // Linearizable on the follower: the backfill (on the leader) and the
    // catalog come through the log.
    let found = cl::wait_for("the follower's search", TIMEOUT, || {
        let r = call_retry(
            f.resp_addr,
            &["FT.SEARCH", "idx", "python", "NOCONTENT"],
            TIMEOUT,
        );
        (keys_of(&r).1 == ["doc:1", "doc:2"]).then_some(r)
    });
    assert_eq!(keys_of(&found).0, 2);
    // A write on the follower (forwarded), then a read there sees it.
    cl::set(f, "doc:9", "python again");
    let r = call_retry(
        f.resp_addr,
        &["FT.SEARCH", "idx", "python", "NOCONTENT"],
        TIMEOUT,
    );
    let mut keys = keys_of(&r).1;
    keys.sort();
    assert_eq!(keys, ["doc:1", "doc:2", "doc:9"]);
    // READONLY reads converge too; FT.INFO agrees on every node.
    let mut ro = cl::readonly(f);
    cl::wait_for("READONLY search", TIMEOUT, || {
        let r = ro.call(&["FT.SEARCH", "idx", "again", "NOCONTENT"]).ok()?;
        (keys_of(&r).1 == ["doc:9"]).then_some(())
    });
    for id in cluster.ids() {
        let mut c = cluster.node(id).client(TIMEOUT).expect("client");
        cl::wait_for("num_docs on every node", TIMEOUT, || {
            (info_number(&mut c, "idx", "num_docs") == 4.0).then_some(())
        });
    }
    // Drop on the follower (forwarded): gone everywhere.
    assert_eq!(
        call_retry(f.resp_addr, &["FT.DROPINDEX", "idx"], TIMEOUT),
        Reply::ok()
    );
    let r = call_retry(l.resp_addr, &["FT._LIST"], TIMEOUT);
    assert_eq!(r, Reply::Array(vec![]));
}
