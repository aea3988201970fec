//! The HTTP/JSON key-value API (`/v1/kv`, `/v1/txn`, blocking queries)
//! through a real server and a real HTTP client (ureq): every endpoint
//! and query option, bad input, compare-and-set races, all-or-nothing
//! transactions, blocking queries woken by a writer and timing out,
//! `&changed`; the same data and statistics seen over RESP; and a 3-node
//! cluster (a write on a follower, linearizable and `?stale` reads, 503
//! without a quorum). Every wait is bounded.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::Value;

/// Bound on any one HTTP exchange (a blocking query waits less).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

struct Http {
    agent: ureq::Agent,
    base: String,
}

/// An answer, read whole.
struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn index(&self) -> u64 {
        let raw = self.header("x-strata-index").expect("an index header");
        assert_eq!(self.header("x-consul-index"), Some(raw), "both names");
        raw.parse().expect("a number")
    }

    /// The JSON error shape, with this code.
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status,
            status,
            "{:?}",
            String::from_utf8_lossy(&self.body)
        );
        let json = self.json();
        assert_eq!(json["error"], code, "{json}");
        assert!(json["message"].is_string(), "{json}");
    }
}

impl Http {
    fn new(base: String) -> Http {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(CALL_TIMEOUT))
            .build()
            .into();
        Http { agent, base }
    }

    fn of(server: &TestServer) -> Http {
        Http::new(server.http_base())
    }

    fn read(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Got {
        let mut response = response.expect("an HTTP answer");
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .expect("a body");
        Got {
            status,
            headers,
            body,
        }
    }

    fn get(&self, path: &str) -> Got {
        Self::read(self.agent.get(format!("{}{path}", self.base)).call())
    }

    fn put(&self, path: &str, body: &[u8]) -> Got {
        Self::read(self.agent.put(format!("{}{path}", self.base)).send(body))
    }

    fn delete(&self, path: &str) -> Got {
        Self::read(self.agent.delete(format!("{}{path}", self.base)).call())
    }

    fn post(&self, path: &str, body: &str) -> Got {
        self.post_as(path, "application/json", body)
    }

    fn post_as(&self, path: &str, content_type: &str, body: &str) -> Got {
        let url = format!("{}{path}", self.base);
        let request = self.agent.post(url).header("content-type", content_type);
        Self::read(request.send(body))
    }

    /// PUT that must answer 200 `true`.
    fn set(&self, key: &str, value: &str) {
        let got = self.put(&format!("/v1/kv/{key}"), value.as_bytes());
        assert_eq!(
            (got.status, got.json()),
            (200, Value::Bool(true)),
            "PUT {key}"
        );
    }
}

fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, &b| n << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        out.push_str(&"=".repeat(3 - chunk.len()));
    }
    out
}

#[test]
fn keys_values_and_their_json() {
    let server = TestServer::start();
    let http = Http::of(&server);
    let got = http.put("/v1/kv/app/name", b"strata");
    assert_eq!((got.status, got.json()), (200, Value::Bool(true)));
    let written_at = got.index();
    let got = http.get("/v1/kv/app/name");
    assert_eq!(got.status, 200);
    let entry = got.json();
    assert_eq!(entry["Key"], "app/name");
    assert_eq!(entry["Value"], "strata");
    assert_eq!(entry["Encoding"], "text");
    assert!(entry["TtlMs"].is_null(), "{entry}");
    let modified = entry["ModifyIndex"].as_u64().expect("ModifyIndex");
    assert!(modified > 0 && modified <= written_at, "{entry}");
    assert!(got.index() >= modified);
    // ?raw: the bare bytes.
    let got = http.get("/v1/kv/app/name?raw");
    assert_eq!((got.status, got.body.as_slice()), (200, &b"strata"[..]));
    assert_eq!(got.header("content-type"), Some("application/octet-stream"));
    // Bytes that are not UTF-8, under a key that is not either.
    let got = http.put("/v1/kv/bin%FF", b"\xff\x00\x01");
    assert_eq!(got.status, 200);
    let entry = http.get("/v1/kv/bin%FF").json();
    assert_eq!(entry["Value"], b64(b"\xff\x00\x01"));
    assert_eq!(entry["Encoding"], "base64");
    assert_eq!(entry["Key"], b64(b"bin\xff"));
    assert_eq!(entry["KeyEncoding"], "base64");
    assert_eq!(http.get("/v1/kv/bin%FF?raw").body, b"\xff\x00\x01");
    // Missing: 404, JSON, with the index (a blocking query needs it).
    let got = http.get("/v1/kv/nope");
    got.assert_error(404, "not_found");
    assert!(got.index() >= written_at);
    http.get("/v1/kv/nope?raw").assert_error(404, "not_found");
    // An empty value is a value.
    http.set("empty", "");
    assert_eq!(http.get("/v1/kv/empty").json()["Value"], "");
    // DELETE answers true, present or not.
    for _ in 0..2 {
        let got = http.delete("/v1/kv/app/name");
        assert_eq!((got.status, got.json()), (200, Value::Bool(true)));
    }
    http.get("/v1/kv/app/name").assert_error(404, "not_found");
}

#[test]
fn ttls_expire_and_show_what_is_left() {
    let server = TestServer::start();
    let http = Http::of(&server);
    assert_eq!(http.put("/v1/kv/t?ttl=600ms", b"v").status, 200);
    let ttl = http.get("/v1/kv/t").json()["TtlMs"]
        .as_u64()
        .expect("TtlMs");
    assert!(ttl > 0 && ttl <= 600, "{ttl}");
    assert_eq!(http.put("/v1/kv/long?ttl=1h", b"v").status, 200);
    let ttl = http.get("/v1/kv/long").json()["TtlMs"].as_u64().unwrap();
    assert!(ttl > 3_500_000 && ttl <= 3_600_000, "{ttl}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while http.get("/v1/kv/t").status != 404 {
        assert!(Instant::now() < deadline, "t never expired");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The same key over RESP: PTTL agrees it has one.
    let mut redis = server.redis();
    let pttl: i64 = redis::cmd("PTTL").arg("long").query(&mut redis).unwrap();
    assert!(pttl > 3_500_000, "{pttl}");
}

#[test]
fn compare_and_set_by_modify_index() {
    let server = TestServer::start();
    let http = Http::of(&server);
    // cas=0: create only.
    let got = http.put("/v1/kv/c?cas=0", b"1");
    assert_eq!((got.status, got.json()), (200, Value::Bool(true)));
    let got = http.put("/v1/kv/c?cas=0", b"2");
    assert_eq!((got.status, got.json()), (409, Value::Bool(false)));
    let index = http.get("/v1/kv/c").json()["ModifyIndex"].as_u64().unwrap();
    // The right index: true, and the answer's index is the new version.
    let got = http.put(&format!("/v1/kv/c?cas={index}"), b"3");
    assert_eq!((got.status, got.json()), (200, Value::Bool(true)));
    let new_index = http.get("/v1/kv/c").json()["ModifyIndex"].as_u64().unwrap();
    assert_eq!(got.index(), new_index);
    assert!(new_index > index);
    // The old one, or one the key never had: false, nothing written.
    for stale in [index, new_index + 1000] {
        let got = http.put(&format!("/v1/kv/c?cas={stale}"), b"4");
        assert_eq!((got.status, got.json()), (409, Value::Bool(false)));
    }
    assert_eq!(http.get("/v1/kv/c?raw").body, b"3");
    // DELETE ?cas=.
    let got = http.delete(&format!("/v1/kv/c?cas={index}"));
    assert_eq!((got.status, got.json()), (409, Value::Bool(false)));
    let got = http.delete(&format!("/v1/kv/c?cas={new_index}"));
    assert_eq!((got.status, got.json()), (200, Value::Bool(true)));
    http.get("/v1/kv/c").assert_error(404, "not_found");
}

/// Writers race read-modify-write loops on one counter with `?cas=`:
/// every increment lands once, none is lost (bounded tries).
#[test]
fn cas_races_lose_no_update() {
    const WRITERS: u64 = 4;
    const EACH: u64 = 15;
    let server = TestServer::start();
    let base = server.http_base();
    Http::new(base.clone()).set("counter", "0");
    let threads: Vec<_> = (0..WRITERS)
        .map(|_| {
            let base = base.clone();
            std::thread::spawn(move || {
                let http = Http::new(base);
                let mut conflicts = 0u64;
                for _ in 0..EACH {
                    let mut tries = 0;
                    loop {
                        tries += 1;
                        assert!(tries < 1_000, "no progress");
                        let entry = http.get("/v1/kv/counter").json();
                        let n: u64 = entry["Value"].as_str().unwrap().parse().unwrap();
                        let index = entry["ModifyIndex"].as_u64().unwrap();
                        let got = http.put(
                            &format!("/v1/kv/counter?cas={index}"),
                            (n + 1).to_string().as_bytes(),
                        );
                        match got.status {
                            200 => break,
                            409 => conflicts += 1,
                            other => panic!("CAS answered {other}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer");
    }
    let value = Http::new(base).get("/v1/kv/counter?raw").body;
    assert_eq!(
        String::from_utf8(value).unwrap(),
        (WRITERS * EACH).to_string()
    );
}

#[test]
fn listings_by_prefix_and_by_range() {
    let server = TestServer::start();
    let http = Http::of(&server);
    for (k, v) in [
        ("cfg/a", "1"),
        ("cfg/b", "2"),
        ("cfg/c/d", "3"),
        ("cfh", "x"),
        ("cf", "y"),
    ] {
        http.set(k, v);
    }
    let got = http.get("/v1/kv/cfg/?recurse");
    assert_eq!(got.status, 200);
    let entries = got.json();
    let keys: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["cfg/a", "cfg/b", "cfg/c/d"]);
    assert_eq!(entries[2]["Value"], "3");
    assert!(entries[0]["ModifyIndex"].as_u64().unwrap() > 0);
    let keys = http.get("/v1/kv/cfg?keys").json();
    assert_eq!(keys, serde_json::json!(["cfg/a", "cfg/b", "cfg/c/d"]));
    // A limit: the first ones, and a header saying there are more.
    let got = http.get("/v1/kv/cfg/?recurse&limit=2");
    assert_eq!(got.json().as_array().unwrap().len(), 2);
    assert_eq!(got.header("x-strata-more"), Some("true"));
    assert_eq!(
        http.get("/v1/kv/cfg/?recurse").header("x-strata-more"),
        None
    );
    // Nothing under it: 404, as Consul.
    http.get("/v1/kv/zzz/?recurse")
        .assert_error(404, "not_found");
    // Ranges: both ends included, in byte order, like RANGE.
    let got = http.get("/v1/kv/?start=cf&end=cfg/b&keys");
    assert_eq!(got.json(), serde_json::json!(["cf", "cfg/a", "cfg/b"]));
    let got = http.get("/v1/kv/?start=cfg/b&end=cfh&limit=2");
    let keys: Vec<Value> = got
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Key"].clone())
        .collect();
    assert_eq!(keys, [Value::from("cfg/b"), Value::from("cfg/c/d")]);
    assert_eq!(got.header("x-strata-more"), Some("true"));
    assert_eq!(
        http.get("/v1/kv/?start=x&end=y").json(),
        serde_json::json!([])
    );
    // The same range over RESP.
    let mut redis = server.redis();
    let pairs: Vec<String> = redis::cmd("RANGE")
        .arg("cf")
        .arg("cfg/b")
        .query(&mut redis)
        .unwrap();
    assert_eq!(pairs, ["cf", "y", "cfg/a", "1", "cfg/b", "2"]);
    // DELETE ?recurse: the prefix only.
    let got = http.delete("/v1/kv/cfg/?recurse");
    assert_eq!((got.status, got.json()), (200, Value::Bool(true)));
    http.get("/v1/kv/cfg/?recurse")
        .assert_error(404, "not_found");
    assert_eq!(http.get("/v1/kv/cfh?raw").body, b"x");
    assert_eq!(http.get("/v1/kv/cf?raw").body, b"y");
}

#[test]
fn bad_input_is_refused_with_a_status_that_says_why() {
    let server = TestServer::start_with(&[
        "--value-size-bytes-max",
        "1024",
        "--key-size-bytes-max",
        "64",
    ]);
    let http = Http::of(&server);
    http.get("/v1/kv/a%ZZ").assert_error(400, "bad_request");
    http.put("/v1/kv/a?ttl=soon", b"v")
        .assert_error(400, "bad_request");
    http.put("/v1/kv/a?ttl=0s", b"v")
        .assert_error(400, "bad_request");
    http.put("/v1/kv/a?cas=-1", b"v")
        .assert_error(400, "bad_request");
    http.get("/v1/kv/a?index=x")
        .assert_error(400, "bad_request");
    http.get("/v1/kv/a?wait=forever&index=1")
        .assert_error(400, "bad_request");
    http.get("/v1/kv/a?nosuch").assert_error(400, "bad_request");
    http.get("/v1/kv/a?changed")
        .assert_error(400, "bad_request");
    http.get("/v1/kv/?start=a").assert_error(400, "bad_request");
    http.get("/v1/kv/a?recurse&limit=99999999999")
        .assert_error(413, "too_large");
    // Over the limits: 413, and nothing stored.
    http.put("/v1/kv/big", &[b'x'; 2048])
        .assert_error(413, "too_large");
    http.get("/v1/kv/big").assert_error(404, "not_found");
    let long_key = "k".repeat(65);
    http.put(&format!("/v1/kv/{long_key}"), b"v")
        .assert_error(413, "too_large");
    http.get(&format!("/v1/kv/{long_key}"))
        .assert_error(413, "too_large");
    // Transactions: not JSON (a browser's "simple" request), bad JSON,
    // bad base64, an unknown verb, no index.
    let set = r#"[{"KV": {"Verb": "set", "Key": "a", "Value": ""}}]"#;
    http.post_as("/v1/txn", "text/plain", set)
        .assert_error(415, "unsupported_media_type");
    http.post("/v1/txn", "{").assert_error(400, "bad_request");
    http.post("/v1/txn", "[]").assert_error(400, "bad_request");
    let bad64 = r#"[{"KV": {"Verb": "set", "Key": "a", "Value": "***"}}]"#;
    http.post("/v1/txn", bad64).assert_error(400, "bad_request");
    let verb = r#"[{"KV": {"Verb": "lock", "Key": "a"}}]"#;
    http.post("/v1/txn", verb).assert_error(400, "bad_request");
    let no_index = r#"[{"KV": {"Verb": "cas", "Key": "a", "Value": ""}}]"#;
    http.post("/v1/txn", no_index)
        .assert_error(400, "bad_request");
    let big = format!(
        r#"[{{"KV": {{"Verb": "set", "Key": "a", "Value": "{}"}}}}]"#,
        b64(&[7; 2048])
    );
    http.post("/v1/txn", &big).assert_error(413, "too_large");
    http.get("/v1/kv/a").assert_error(404, "not_found");
}

#[test]
fn a_body_over_the_request_size_is_413() {
    let server = TestServer::start_with(&[
        "--request-size-bytes-max",
        "4096",
        "--value-size-bytes-max",
        "1024",
        "--key-size-bytes-max",
        "64",
    ]);
    // Refused on its declared length, before a byte of it is read (sent by
    // hand: a client that sends the body races the server's close).
    let head = "PUT /v1/kv/a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 8192\r\nConnection: close\r\n\r\n";
    let (status, body) = raw_exchange(server.http_addr.expect("http"), head);
    assert_eq!(status, 413, "{body}");
    let json: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{body}"));
    assert_eq!(json["error"], "too_large", "{json}");
    Http::of(&server)
        .get("/v1/kv/a")
        .assert_error(404, "not_found");
}

/// Sends `head` alone and reads the answer to its end: (status, body).
fn raw_exchange(addr: std::net::SocketAddr, head: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(CALL_TIMEOUT)).unwrap();
    stream.write_all(head.as_bytes()).expect("send");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[test]
fn transactions_are_all_or_nothing() {
    let server = TestServer::start();
    let http = Http::of(&server);
    http.set("acct/a", "100");
    let a = http.get("/v1/kv/acct/a").json()["ModifyIndex"]
        .as_u64()
        .unwrap();
    let ops = format!(
        r#"[{{"KV": {{"Verb": "check-index", "Key": "acct/a", "Index": {a}}}}},
            {{"KV": {{"Verb": "set", "Key": "acct/a", "Value": "{}"}}}},
            {{"KV": {{"Verb": "cas", "Key": "acct/b", "Index": 0, "Value": "{}"}}}},
            {{"KV": {{"Verb": "get", "Key": "acct/a"}}}},
            {{"KV": {{"Verb": "get", "Key": "acct/none"}}}}]"#,
        b64(b"70"),
        b64(b"30")
    );
    let got = http.post("/v1/txn", &ops);
    assert_eq!(got.status, 200, "{:?}", got.json());
    let body = got.json();
    let index = body["Index"].as_u64().unwrap();
    assert_eq!(got.index(), index);
    let results = body["Results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "{body}");
    assert_eq!(results[0]["KV"]["Key"], "acct/a");
    assert_eq!(results[0]["KV"]["ModifyIndex"], index);
    assert_eq!(results[1]["KV"]["Key"], "acct/b");
    assert_eq!(
        results[2]["KV"]["Value"], "70",
        "a get sees the batch's own write"
    );
    assert_eq!(results[2]["KV"]["ModifyIndex"], index);
    assert!(results[3]["KV"].is_null());
    assert_eq!(http.get("/v1/kv/acct/b").json()["ModifyIndex"], index);
    // A failing check: nothing of the batch is written, and its op is named.
    let ops = format!(
        r#"[{{"KV": {{"Verb": "set", "Key": "acct/a", "Value": "{}"}}}},
            {{"KV": {{"Verb": "delete", "Key": "acct/b"}}}},
            {{"KV": {{"Verb": "check-index", "Key": "acct/a", "Index": {a}}}}}]"#,
        b64(b"0")
    );
    let got = http.post("/v1/txn", &ops);
    assert_eq!(got.status, 409);
    let body = got.json();
    assert!(body["Results"].is_null());
    assert_eq!(body["Errors"][0]["OpIndex"], 2, "{body}");
    assert_eq!(http.get("/v1/kv/acct/a?raw").body, b"70");
    assert_eq!(http.get("/v1/kv/acct/b?raw").body, b"30");
    let exists = r#"[{"KV": {"Verb": "check-not-exists", "Key": "acct/a"}}, {"KV": {"Verb": "delete-cas", "Key": "acct/a", "Index": 1}}]"#;
    let got = http.post("/v1/txn", exists);
    assert_eq!(
        (got.status, got.json()["Errors"][0]["OpIndex"].clone()),
        (409, Value::from(0))
    );
    // The same command over RESP: one semantics.
    let mut redis = server.redis();
    let reply: redis::Value = redis::cmd("KV.TXN")
        .arg("CHECK")
        .arg("acct/a")
        .arg(index)
        .arg("SET")
        .arg("acct/c")
        .arg("1")
        .arg(0)
        .query(&mut redis)
        .unwrap();
    let redis::Value::Array(parts) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(parts[0], redis::Value::Okay);
    assert_eq!(http.get("/v1/kv/acct/c?raw").body, b"1");
}

#[test]
fn blocking_queries_wake_on_a_write_and_time_out() {
    let server = TestServer::start();
    let http = Http::of(&server);
    http.set("watched", "1");
    let index = http.get("/v1/kv/watched").index();
    // Nothing changes: the wait ends at its end, same answer.
    let started = Instant::now();
    let got = http.get(&format!("/v1/kv/watched?index={index}&wait=400ms"));
    let waited = started.elapsed();
    assert_eq!(got.status, 200);
    assert!(waited >= Duration::from_millis(390), "{waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    assert_eq!(got.json()["Value"], "1");
    let index = got.index();
    // A writer changes it while the query waits: it returns with the new
    // value, long before its wait.
    let base = server.http_base();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        Http::new(base).set("watched", "2");
    });
    let started = Instant::now();
    let got = http.get(&format!("/v1/kv/watched?index={index}&wait=20s"));
    let waited = started.elapsed();
    writer.join().unwrap();
    assert_eq!(got.json()["Value"], "2");
    assert!(got.index() > index);
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    // A write to another key does not wake it.
    let index = got.index();
    let base = server.http_base();
    let other = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        Http::new(base).set("unrelated", "x");
    });
    let started = Instant::now();
    let got = http.get(&format!("/v1/kv/watched?index={index}&wait=700ms"));
    other.join().unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(690),
        "woken by another key"
    );
    assert_eq!(got.json()["Value"], "2");
    // A deletion wakes it: 404, with the new index.
    let base = server.http_base();
    let deleter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(Http::new(base).delete("/v1/kv/watched").status, 200);
    });
    let got = http.get(&format!("/v1/kv/watched?index={index}&wait=20s"));
    deleter.join().unwrap();
    got.assert_error(404, "not_found");
    assert!(got.index() > index);
}

#[test]
fn blocking_on_a_prefix_and_changed_keys_only() {
    let server = TestServer::start();
    let http = Http::of(&server);
    for k in ["svc/a", "svc/b", "svc/c"] {
        http.set(k, "0");
    }
    // The first blocking query starts the change log: an index from before
    // it may answer at once; the index it answers with blocks properly.
    let first = http.get("/v1/kv/svc/?recurse&index=1&wait=5s");
    let index = first.index();
    let base = server.http_base();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let http = Http::new(base);
        http.set("svc/b", "1");
        assert_eq!(http.delete("/v1/kv/svc/c").status, 200);
        http.set("other", "x");
    });
    let started = Instant::now();
    let got = http.get(&format!("/v1/kv/svc/?recurse&index={index}&wait=20s"));
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(got.index() > index);
    writer.join().unwrap();
    // &changed: only what changed after the index, deletions flagged.
    let got = http.get(&format!("/v1/kv/svc/?recurse&changed&index={index}"));
    assert_eq!(got.status, 200);
    assert_eq!(got.header("x-strata-changed"), Some("delta"));
    let changed = got.json();
    let changed = changed.as_array().unwrap();
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert_eq!(
        (changed[0]["Key"].as_str(), changed[0]["Value"].as_str()),
        (Some("svc/b"), Some("1"))
    );
    assert_eq!(changed[1]["Key"], "svc/c");
    assert_eq!(changed[1]["Deleted"], true);
    assert!(changed[1].get("Value").is_none());
    // Nothing after the latest index: it waits (a blocking query), then
    // answers an empty delta.
    let latest = got.index();
    let started = Instant::now();
    let got = http.get(&format!(
        "/v1/kv/svc/?recurse&changed&index={latest}&wait=300ms"
    ));
    assert!(started.elapsed() >= Duration::from_millis(290));
    assert_eq!(got.json(), serde_json::json!([]));
    // An index older than the log: the whole prefix, said so.
    let got = http.get("/v1/kv/svc/?recurse&changed&index=1");
    assert_eq!(got.header("x-strata-changed"), Some("full"));
    assert_eq!(got.json().as_array().unwrap().len(), 2);
    // Over RESP: the same question, the same answer.
    let mut redis = server.redis();
    let reply: redis::Value = redis::cmd("KV.PREFIX")
        .arg("svc/")
        .arg("KEYSONLY")
        .arg("CHANGED")
        .arg(index)
        .query(&mut redis)
        .unwrap();
    let redis::Value::Array(parts) = reply else {
        panic!()
    };
    assert_eq!(
        parts[0],
        redis::Value::Array(vec![
            redis::Value::BulkString(b"svc/b".to_vec()),
            redis::Value::BulkString(b"svc/c".to_vec())
        ])
    );
}

#[test]
fn http_and_resp_share_data_semantics_and_statistics() {
    let server = TestServer::start();
    let http = Http::of(&server);
    let mut redis = server.redis();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut redis)
        .unwrap();
    http.set("shared", "from-http");
    let v: String = redis::cmd("GET").arg("shared").query(&mut redis).unwrap();
    assert_eq!(v, "from-http");
    let _: () = redis::cmd("SET")
        .arg("shared")
        .arg("from-resp")
        .query(&mut redis)
        .unwrap();
    let entry = http.get("/v1/kv/shared").json();
    assert_eq!(entry["Value"], "from-resp");
    // KV.GET over RESP: the same version the JSON shows.
    let reply: (Vec<u8>, i64, i64) = redis::cmd("KV.GET")
        .arg("shared")
        .query(&mut redis)
        .unwrap();
    assert_eq!(reply.0, b"from-resp");
    assert_eq!(reply.1 as u64, entry["ModifyIndex"].as_u64().unwrap());
    assert_eq!(reply.2, -1);
    // The same errors: an INCR on HTTP-written text fails alike.
    http.set("n", "x");
    let e = redis::cmd("INCR")
        .arg("n")
        .query::<i64>(&mut redis)
        .unwrap_err();
    assert!(e.to_string().contains("not an integer"), "{e}");
    // Every HTTP request was counted as the command it ran.
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut redis)
        .unwrap();
    let calls = |name: &str| -> u64 {
        let line = info
            .lines()
            .find(|l| l.starts_with(&format!("cmdstat_{name}:")))
            .unwrap_or_else(|| panic!("no {name} in {info}"));
        line.split("calls=")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(calls("set"), 3, "2 PUT + 1 RESP SET");
    assert_eq!(calls("kv.get"), 2, "1 HTTP GET + 1 RESP KV.GET");
}

/// A 3-node cluster: a PUT on a follower is forwarded to the leader (as
/// RESP writes are); reads are linearizable unless `?stale`; a follower
/// cut off answers 503 with Retry-After, and `?stale` its own data.
#[test]
fn cluster_writes_forward_and_reads_are_linearizable_unless_stale() {
    let mut config = common::cluster::config(3);
    config.forward_timeout_ms = Some(1_000);
    let (cluster, proxy, leader) = common::cluster::start_proxied(config);
    let ids = cluster.ids();
    let followers = common::cluster::others(&cluster, leader);
    let http_of = |id: u64| {
        let ready = cluster.node(id).last_ready.as_ref().expect("ready");
        Http::new(format!("http://{}", ready.http.expect("an HTTP listener")))
    };
    let (f1, f2) = (followers[0], followers[1]);
    // A write on a follower lands (forwarded), and a linearizable read on
    // the other follower sees it at once. (Retried while the followers
    // learn who leads.)
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_of(f1).put("/v1/kv/k", b"1").status != 200 {
        assert!(Instant::now() < deadline, "no write through a follower");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(http_of(f2).get("/v1/kv/k?raw").body, b"1");
    let got = http_of(f1).put("/v1/kv/k?cas=0", b"x");
    assert_eq!(
        got.status, 409,
        "create-only on a follower is decided by the leader"
    );
    // Cut f2 off: the others go on.
    proxy.split(&[f2], &ids);
    http_of(leader).set("k", "2");
    let got = http_of(f2).get("/v1/kv/k");
    assert_eq!(got.status, 503, "{:?}", got.json());
    assert!(["no_leader", "try_again"].contains(&got.json()["error"].as_str().unwrap()));
    assert!(got.header("retry-after").is_some());
    let stale = http_of(f2).get("/v1/kv/k?stale&raw");
    assert_eq!(
        (stale.status, stale.body.as_slice()),
        (200, &b"1"[..]),
        "its own, older data"
    );
    let got = http_of(f2).put("/v1/kv/k", b"3");
    assert_eq!(got.status, 503);
    assert!(got.header("retry-after").is_some());
    proxy.heal();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = http_of(f2).get("/v1/kv/k?raw");
        if got.status == 200 && got.body == b"2" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "f2 never caught up: {}",
            got.status
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
