//! RESP compatibility suite: drives a real `strata server` through its public
//! RESP interface and checks every reply against what a real Redis (7.x)
//! answers for the same request. Expectations were calibrated against a real
//! redis-server; tests whose name starts with `strata_` cover behaviour that
//! is specific to strata's contract (its own commands, its single database,
//! strings only) and have no Redis counterpart.
//!
//! Most tests share one server (see [`shared`]) and keep to their own key
//! prefix; tests that look at the whole keyspace start their own server.

mod common;

use common::TestServer;
use common::raw::*;
use std::io::Write;

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------
// Shared server
// ---------------------------------------------------------------------------

/// One server shared by the tests of this file that run at the same time.
/// It is dropped (and killed) when the last test holding it finishes, so no
/// process outlives the test binary.
fn shared() -> Arc<TestServer> {
    static SLOT: Mutex<Weak<TestServer>> = Mutex::new(Weak::new());
    let mut slot = SLOT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(server) = slot.upgrade() {
        return server;
    }
    let server = Arc::new(TestServer::start());
    *slot = Arc::downgrade(&server);
    server
}

// ---------------------------------------------------------------------------
// Raw connections (the client itself is in common/raw.rs)
// ---------------------------------------------------------------------------

fn raw(server: &TestServer) -> Raw {
    Raw::connect(server.resp_addr)
}

/// A raw connection switched to RESP3.
fn raw3(server: &TestServer) -> Raw {
    let mut c = raw(server);
    match c.call(&["HELLO", "3"]) {
        R::Map(_) => {}
        other => panic!("HELLO 3 did not return a map: {other:?}"),
    }
    c
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Polls `f` until it returns true; fails after `timeout`.
fn poll_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ttl(c: &mut Raw, key: &str) -> i64 {
    match c.call(&["TTL", key]) {
        R::Int(n) => n,
        other => panic!("TTL {key}: {other:?}"),
    }
}

fn pttl(c: &mut Raw, key: &str) -> i64 {
    match c.call(&["PTTL", key]) {
        R::Int(n) => n,
        other => panic!("PTTL {key}: {other:?}"),
    }
}

fn assert_ttl_near(c: &mut Raw, key: &str, secs: i64) {
    let t = ttl(c, key);
    assert!(
        (secs - 3..=secs).contains(&t),
        "TTL {key} = {t}, expected about {secs}"
    );
}

fn redis_err_text(e: &redis::RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        _ => e.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Connection commands
// ---------------------------------------------------------------------------

#[test]
fn ping_and_echo() {
    let server = shared();
    let mut c = raw(&server);
    c.send(&encode(&["PING"]));
    c.expect_bytes(b"+PONG\r\n");
    c.send(&encode(&["PING", "hello world"]));
    c.expect_bytes(b"$11\r\nhello world\r\n");
    c.send(&encode(&["ping"]));
    c.expect_bytes(b"+PONG\r\n");
    assert_eq!(c.call(&["ECHO", "hi"]), bulk("hi"));
    assert_eq!(c.call(&["ECHO", ""]), bulk(""));
    assert_eq!(
        c.call(&[&b"ECHO"[..], &b"a\x00\r\n\xffb"[..]]),
        bulk(b"a\x00\r\n\xffb")
    );
    assert_eq!(
        c.error(&["PING", "a", "b"]),
        "ERR wrong number of arguments for 'ping' command"
    );
    assert_eq!(
        c.error(&["ECHO"]),
        "ERR wrong number of arguments for 'echo' command"
    );
    assert_eq!(
        c.error(&["ECHO", "a", "b"]),
        "ERR wrong number of arguments for 'echo' command"
    );

    // Same over RESP3.
    let mut c3 = raw3(&server);
    c3.send(&encode(&["PING"]));
    c3.expect_bytes(b"+PONG\r\n");
    assert_eq!(c3.call(&["PING", "x"]), bulk("x"));
    assert_eq!(c3.call(&["ECHO", "y"]), bulk("y"));
}

fn map_get<'a>(pairs: &'a [(R, R)], key: &str) -> &'a R {
    pairs
        .iter()
        .find(|(k, _)| *k == bulk(key) || *k == R::Simple(key.to_string()))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("field {key} missing in {pairs:?}"))
}

fn flat_pairs(items: &[R]) -> Vec<(R, R)> {
    assert!(items.len().is_multiple_of(2), "odd flat map {items:?}");
    items
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect()
}

fn check_hello_fields(pairs: &[(R, R)], proto: i64, client_id: i64) {
    let keys: Vec<_> = pairs.iter().map(|(k, _)| k.clone()).collect();
    for k in [
        "server", "version", "proto", "id", "mode", "role", "modules",
    ] {
        assert!(keys.contains(&bulk(k)), "HELLO reply lacks {k}: {pairs:?}");
    }
    assert!(matches!(map_get(pairs, "server"), R::Bulk(_)));
    assert!(matches!(map_get(pairs, "version"), R::Bulk(_)));
    assert_eq!(map_get(pairs, "proto"), &int(proto));
    assert_eq!(map_get(pairs, "id"), &int(client_id));
    assert_eq!(map_get(pairs, "mode"), &bulk("standalone"));
    assert_eq!(map_get(pairs, "role"), &bulk("master"));
    assert!(matches!(map_get(pairs, "modules"), R::Arr(_)));
}

#[test]
fn hello_switches_between_resp2_and_resp3() {
    let server = shared();
    let mut c = raw(&server);
    let id = match c.call(&["CLIENT", "ID"]) {
        R::Int(n) => n,
        other => panic!("CLIENT ID: {other:?}"),
    };

    // HELLO without a version reports the current protocol (2), as a flat array.
    match c.call(&["HELLO"]) {
        R::Arr(items) => check_hello_fields(&flat_pairs(&items), 2, id),
        other => panic!("HELLO: {other:?}"),
    }
    match c.call(&["HELLO", "2"]) {
        R::Arr(items) => check_hello_fields(&flat_pairs(&items), 2, id),
        other => panic!("HELLO 2: {other:?}"),
    }
    c.send(&encode(&["GET", "hello:missing"]));
    c.expect_bytes(b"$-1\r\n");

    // HELLO 3: a map, then RESP3 nulls.
    match c.call(&["HELLO", "3"]) {
        R::Map(pairs) => check_hello_fields(&pairs, 3, id),
        other => panic!("HELLO 3: {other:?}"),
    }
    c.send(&encode(&["GET", "hello:missing"]));
    c.expect_bytes(b"_\r\n");
    assert_eq!(c.call(&["SET", "hello:k", "v"]), ok());
    assert_eq!(c.call(&["GET", "hello:k"]), bulk("v"));
    assert_eq!(
        c.call(&["MGET", "hello:k", "hello:missing"]),
        arr(vec![bulk("v"), R::Null])
    );

    // And back to RESP2.
    match c.call(&["HELLO", "2"]) {
        R::Arr(items) => check_hello_fields(&flat_pairs(&items), 2, id),
        other => panic!("HELLO 2: {other:?}"),
    }
    c.send(&encode(&["GET", "hello:missing"]));
    c.expect_bytes(b"$-1\r\n");
    c.send(&encode(&["MGET", "hello:missing"]));
    c.expect_bytes(b"*1\r\n$-1\r\n");
}

#[test]
fn hello_errors_and_setname() {
    let server = shared();
    let mut c = raw(&server);
    assert_eq!(
        c.error(&["HELLO", "4"]),
        "NOPROTO unsupported protocol version"
    );
    assert_eq!(
        c.error(&["HELLO", "1"]),
        "NOPROTO unsupported protocol version"
    );
    assert_eq!(
        c.error(&["HELLO", "abc"]),
        "ERR Protocol version is not an integer or out of range"
    );
    assert_eq!(
        c.error(&["HELLO", "3", "SETNAME"]),
        "ERR Syntax error in HELLO option 'SETNAME'"
    );
    assert_eq!(
        c.error(&["HELLO", "3", "FOO"]),
        "ERR Syntax error in HELLO option 'FOO'"
    );
    assert_eq!(
        c.error(&["HELLO", "3", "SETNAME", "a b"]),
        "ERR Client names cannot contain spaces, newlines or special characters."
    );
    // A failed HELLO leaves the connection in RESP2.
    c.send(&encode(&["GET", "hello2:missing"]));
    c.expect_bytes(b"$-1\r\n");

    match c.call(&["HELLO", "3", "SETNAME", "conn-one"]) {
        R::Map(_) => {}
        other => panic!("HELLO 3 SETNAME: {other:?}"),
    }
    assert_eq!(c.call(&["CLIENT", "GETNAME"]), bulk("conn-one"));
    match c.call(&["HELLO", "2", "SETNAME", "conn-two"]) {
        R::Arr(_) => {}
        other => panic!("HELLO 2 SETNAME: {other:?}"),
    }
    assert_eq!(c.call(&["CLIENT", "GETNAME"]), bulk("conn-two"));
}

#[test]
fn auth_is_rejected() {
    // Strata has no authentication: AUTH and HELLO ... AUTH are errors, and
    // the connection keeps working afterwards.
    let server = shared();
    let mut c = raw(&server);
    assert!(matches!(c.call(&["AUTH", "secret"]), R::Err(_)));
    assert!(matches!(c.call(&["AUTH", "user", "secret"]), R::Err(_)));
    assert!(matches!(
        c.call(&["HELLO", "3", "AUTH", "user", "secret"]),
        R::Err(_)
    ));
    c.send(&encode(&["PING"]));
    c.expect_bytes(b"+PONG\r\n");
}

#[test]
fn select_db0_and_errors() {
    let server = shared();
    let mut c = raw(&server);
    assert_eq!(c.call(&["SELECT", "0"]), ok());
    assert_eq!(c.error(&["SELECT", "16"]), "ERR DB index is out of range");
    assert_eq!(c.error(&["SELECT", "-1"]), "ERR DB index is out of range");
    assert_eq!(
        c.error(&["SELECT", "abc"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        c.error(&["SELECT", "99999999999999999999"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        c.error(&["SELECT", "9223372036854775807"]),
        "ERR value is out of range, value must between -2147483648 and 2147483647"
    );
    assert_eq!(
        c.error(&["SELECT"]),
        "ERR wrong number of arguments for 'select' command"
    );
}

#[test]
fn strata_select_other_db_is_out_of_range() {
    // Strata has a single database (contract); Redis would accept 1..15.
    let server = shared();
    let mut c = raw(&server);
    assert_eq!(c.error(&["SELECT", "1"]), "ERR DB index is out of range");
    assert_eq!(c.error(&["SELECT", "15"]), "ERR DB index is out of range");
    // Still on db 0.
    assert_eq!(c.call(&["SET", "select:k", "v"]), ok());
    let mut other = raw(&server);
    assert_eq!(other.call(&["GET", "select:k"]), bulk("v"));
}

#[test]
fn quit_replies_ok_then_closes() {
    let server = shared();
    let mut c = raw(&server);
    c.send(&encode(&["QUIT"]));
    c.expect_bytes(b"+OK\r\n");
    c.expect_closed();

    // Commands pipelined after QUIT are not executed.
    let mut c = raw(&server);
    let mut batch = encode(&["SET", "quit:k", "before"]);
    batch.extend(encode(&["QUIT"]));
    batch.extend(encode(&["SET", "quit:k", "after"]));
    c.send(&batch);
    c.expect_bytes(b"+OK\r\n+OK\r\n");
    c.expect_closed();
    let mut d = raw(&server);
    assert_eq!(d.call(&["GET", "quit:k"]), bulk("before"));
}

#[test]
fn client_setname_getname_id() {
    let server = shared();
    let mut c = raw(&server);
    let mut d = raw(&server);
    let id_c = c.call(&["CLIENT", "ID"]);
    let id_d = d.call(&["CLIENT", "ID"]);
    assert!(matches!(id_c, R::Int(n) if n > 0), "{id_c:?}");
    assert!(matches!(id_d, R::Int(n) if n > 0), "{id_d:?}");
    assert_ne!(id_c, id_d, "client ids must be unique");
    assert_eq!(c.call(&["CLIENT", "ID"]), id_c, "client id is stable");

    c.send(&encode(&["CLIENT", "GETNAME"]));
    c.expect_bytes(b"$-1\r\n");
    assert_eq!(c.call(&["CLIENT", "SETNAME", "worker-1"]), ok());
    assert_eq!(c.call(&["client", "getname"]), bulk("worker-1"));
    // Names are per connection.
    assert_eq!(d.call(&["CLIENT", "GETNAME"]), R::NullBulk);
    for bad in ["a b", "a\nb", "tab\there"] {
        assert_eq!(
            c.error(&["CLIENT", "SETNAME", bad]),
            "ERR Client names cannot contain spaces, newlines or special characters.",
            "name {bad:?}"
        );
    }
    assert_eq!(c.call(&["CLIENT", "GETNAME"]), bulk("worker-1"));
    // An empty name clears it.
    assert_eq!(c.call(&["CLIENT", "SETNAME", ""]), ok());
    assert_eq!(c.call(&["CLIENT", "GETNAME"]), R::NullBulk);

    assert_eq!(
        c.error(&["CLIENT", "SETNAME"]),
        "ERR wrong number of arguments for 'client|setname' command"
    );
    assert_eq!(
        c.error(&["CLIENT", "GETNAME", "x"]),
        "ERR wrong number of arguments for 'client|getname' command"
    );
    assert_eq!(
        c.error(&["CLIENT"]),
        "ERR wrong number of arguments for 'client' command"
    );
    assert_eq!(
        c.error(&["CLIENT", "FOO"]),
        "ERR unknown subcommand 'FOO'. Try CLIENT HELP."
    );
}

#[test]
fn client_setinfo() {
    // CLIENT SETINFO exists since Redis 7.2; expectations follow its source
    // (networking.c clientSetinfoCommand).
    let server = shared();
    let mut c = raw(&server);
    assert_eq!(c.call(&["CLIENT", "SETINFO", "LIB-NAME", "redis-rs"]), ok());
    assert_eq!(c.call(&["CLIENT", "SETINFO", "lib-ver", "1.8.1"]), ok());
    assert_eq!(c.call(&["CLIENT", "SETINFO", "lib-name", ""]), ok());
    assert_eq!(
        c.error(&["CLIENT", "SETINFO", "foo", "bar"]),
        "ERR Unrecognized option 'foo'"
    );
    assert_eq!(
        c.error(&["CLIENT", "SETINFO", "lib-name", "a b"]),
        "ERR lib-name cannot contain spaces, newlines or special characters."
    );
    assert_eq!(
        c.error(&["CLIENT", "SETINFO", "lib-name"]),
        "ERR wrong number of arguments for 'client|setinfo' command"
    );
}

#[test]
fn redis_crate_connects_over_resp2_and_resp3() {
    // The redis crate pipelines HELLO / CLIENT SETINFO on connect.
    let server = shared();
    let mut con = server.redis();
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
    let mut con3 = server.redis_resp3();
    let pong: String = redis::cmd("PING").query(&mut con3).unwrap();
    assert_eq!(pong, "PONG");
    let v: redis::Value = redis::cmd("HELLO").arg(3).query(&mut con3).unwrap();
    let redis::Value::Map(pairs) = v else {
        panic!("HELLO 3 over the redis crate is not a map: {v:?}")
    };
    let proto = pairs
        .iter()
        .find(|(k, _)| *k == redis::Value::BulkString(b"proto".to_vec()))
        .map(|(_, v)| v.clone());
    assert_eq!(proto, Some(redis::Value::Int(3)));
}

// ---------------------------------------------------------------------------
// Server commands
// ---------------------------------------------------------------------------

#[test]
fn command_count_and_docs() {
    let server = shared();
    let mut c = raw(&server);
    assert!(matches!(c.call(&["COMMAND", "COUNT"]), R::Int(n) if n > 0));
    assert_eq!(
        c.error(&["COMMAND", "COUNT", "x"]),
        "ERR wrong number of arguments for 'command|count' command"
    );
    assert_eq!(
        c.error(&["COMMAND", "FOO"]),
        "ERR unknown subcommand 'FOO'. Try COMMAND HELP."
    );
    match c.call(&["COMMAND", "DOCS"]) {
        R::Arr(items) => assert!(items.len() % 2 == 0),
        other => panic!("COMMAND DOCS (RESP2) should be an array: {other:?}"),
    }
    let mut c3 = raw3(&server);
    assert!(matches!(c3.call(&["COMMAND", "COUNT"]), R::Int(n) if n > 0));
    match c3.call(&["COMMAND", "DOCS"]) {
        R::Map(_) => {}
        other => panic!("COMMAND DOCS (RESP3) should be a map: {other:?}"),
    }
}

#[test]
fn config_get() {
    let server = shared();
    let mut c = raw(&server);
    c.send(&encode(&["CONFIG", "GET", "save"]));
    c.expect_bytes(b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
    match c.call(&["CONFIG", "GET", "appendonly"]) {
        R::Arr(items) => {
            assert_eq!(items.len(), 2);
            assert_eq!(items[0], bulk("appendonly"));
            assert!(
                items[1] == bulk("yes") || items[1] == bulk("no"),
                "appendonly = {:?}",
                items[1]
            );
        }
        other => panic!("CONFIG GET appendonly: {other:?}"),
    }
    // Patterns are globs.
    match c.call(&["CONFIG", "GET", "appendonl*"]) {
        R::Arr(items) => assert!(items.contains(&bulk("appendonly")), "{items:?}"),
        other => panic!("CONFIG GET appendonl*: {other:?}"),
    }
    match c.call(&["config", "get", "sav?"]) {
        R::Arr(items) => assert_eq!(items, vec![bulk("save"), bulk("")]),
        other => panic!("CONFIG GET sav?: {other:?}"),
    }
    assert_eq!(
        c.call(&["CONFIG", "GET", "no-such-parameter-xyz"]),
        arr(vec![])
    );
    assert_eq!(
        c.error(&["CONFIG", "GET"]),
        "ERR wrong number of arguments for 'config|get' command"
    );
    assert_eq!(
        c.error(&["CONFIG"]),
        "ERR wrong number of arguments for 'config' command"
    );
    assert_eq!(
        c.error(&["CONFIG", "FOO"]),
        "ERR unknown subcommand 'FOO'. Try CONFIG HELP."
    );

    // RESP3: a map.
    let mut c3 = raw3(&server);
    c3.send(&encode(&["CONFIG", "GET", "save"]));
    c3.expect_bytes(b"%1\r\n$4\r\nsave\r\n$0\r\n\r\n");
    assert_eq!(
        c3.call(&["CONFIG", "GET", "no-such-parameter-xyz"]),
        R::Map(vec![])
    );

    // And through the redis crate.
    let mut con3 = server.redis_resp3();
    let v: redis::Value = redis::cmd("CONFIG")
        .arg("GET")
        .arg("save")
        .query(&mut con3)
        .unwrap();
    assert_eq!(
        v,
        redis::Value::Map(vec![(
            redis::Value::BulkString(b"save".to_vec()),
            redis::Value::BulkString(vec![])
        )])
    );
}

fn info_text(r: R) -> String {
    match r {
        R::Bulk(b) => String::from_utf8(b).expect("INFO is utf-8"),
        R::Verbatim(fmt, b) => {
            assert_eq!(fmt, "txt");
            String::from_utf8(b).expect("INFO is utf-8")
        }
        other => panic!("INFO reply: {other:?}"),
    }
}

#[test]
fn info_sections() {
    let server = shared();
    let mut c = raw(&server);
    let all = info_text(c.call(&["INFO"]));
    for section in ["# Server", "# Clients", "# Persistence", "# Stats"] {
        assert!(all.contains(section), "INFO lacks {section}:\n{all}");
    }
    assert!(all.contains("\r\n"), "INFO lines are CRLF-separated");
    let srv = info_text(c.call(&["INFO", "server"]));
    assert!(srv.starts_with("# Server\r\n"), "{srv}");
    assert!(
        !srv.contains("# Clients"),
        "INFO server must only hold that section"
    );
    let clients = info_text(c.call(&["INFO", "clients"]));
    assert!(clients.starts_with("# Clients\r\n"), "{clients}");
    assert!(clients.contains("connected_clients:"), "{clients}");
    let stats = info_text(c.call(&["info", "STATS"]));
    assert!(stats.starts_with("# Stats\r\n"), "{stats}");
    let persistence = info_text(c.call(&["INFO", "persistence"]));
    assert!(
        persistence.starts_with("# Persistence\r\n"),
        "{persistence}"
    );
    let keyspace = info_text(c.call(&["INFO", "keyspace"]));
    assert!(keyspace.starts_with("# Keyspace\r\n"), "{keyspace}");

    // RESP3 (Redis answers a verbatim string; a bulk string is accepted too).
    let mut c3 = raw3(&server);
    let srv3 = info_text(c3.call(&["INFO", "server"]));
    assert!(srv3.starts_with("# Server\r\n"), "{srv3}");
}

#[test]
fn keyspace_info_dbsize_flushdb_flushall() {
    // Looks at the whole keyspace: a server of its own.
    let server = TestServer::start();
    let mut c = raw(&server);
    assert_eq!(c.call(&["DBSIZE"]), int(0));
    let ks = info_text(c.call(&["INFO", "keyspace"]));
    assert!(
        !ks.contains("db0:"),
        "empty keyspace must not list db0: {ks:?}"
    );

    assert_eq!(c.call(&["MSET", "a", "1", "b", "2", "c", "3"]), ok());
    assert_eq!(c.call(&["SET", "d", "4", "EX", "1000"]), ok());
    assert_eq!(c.call(&["DBSIZE"]), int(4));
    let ks = info_text(c.call(&["INFO", "keyspace"]));
    assert!(
        ks.contains("db0:keys=4,expires=1,avg_ttl="),
        "INFO keyspace: {ks:?}"
    );
    let all = info_text(c.call(&["INFO"]));
    assert!(
        all.contains("db0:keys=4,expires=1,avg_ttl="),
        "INFO: {all:?}"
    );

    assert_eq!(
        c.call(&["KEYS", "*"]).sorted(),
        bulks(&["a", "b", "c", "d"])
    );
    assert_eq!(c.call(&["DEL", "a"]), int(1));
    assert_eq!(c.call(&["DBSIZE"]), int(3));

    assert_eq!(c.call(&["FLUSHDB"]), ok());
    assert_eq!(c.call(&["DBSIZE"]), int(0));
    assert_eq!(c.call(&["KEYS", "*"]), arr(vec![]));
    assert_eq!(c.call(&["GET", "b"]), R::NullBulk);
    let ks = info_text(c.call(&["INFO", "keyspace"]));
    assert!(
        !ks.contains("db0:"),
        "flushed keyspace must not list db0: {ks:?}"
    );

    assert_eq!(c.call(&["SET", "x", "1"]), ok());
    assert_eq!(c.call(&["FLUSHALL"]), ok());
    assert_eq!(c.call(&["DBSIZE"]), int(0));
    assert_eq!(c.call(&["EXISTS", "x"]), int(0));

    assert_eq!(c.call(&["SET", "y", "1"]), ok());
    assert_eq!(c.call(&["FLUSHDB", "SYNC"]), ok());
    assert_eq!(c.call(&["SET", "y", "1"]), ok());
    assert_eq!(c.call(&["FLUSHALL", "ASYNC"]), ok());
    poll_until(
        "FLUSHALL ASYNC empties the db",
        Duration::from_secs(10),
        || c.call(&["DBSIZE"]) == int(0),
    );
    assert_eq!(c.error(&["FLUSHDB", "bogus"]), "ERR syntax error");
    assert_eq!(c.error(&["FLUSHALL", "bogus"]), "ERR syntax error");
    assert_eq!(
        c.error(&["DBSIZE", "x"]),
        "ERR wrong number of arguments for 'dbsize' command"
    );

    // Writes after a flush work, and SCAN over the whole (small) keyspace.
    assert_eq!(c.call(&["MSET", "k1", "1", "k2", "2"]), ok());
    let (cursor, keys) = scan_page(&mut c, &["SCAN", "0", "COUNT", "1000"]);
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, vec![b"k1".to_vec(), b"k2".to_vec()]);
    let _ = cursor;
}

impl R {
    /// An array with its elements sorted (for order-free replies).
    fn sorted(self) -> R {
        match self {
            R::Arr(mut items) | R::Set(mut items) => {
                items.sort_by(|a, b| match (a, b) {
                    (R::Bulk(x), R::Bulk(y)) => x.cmp(y),
                    _ => format!("{a:?}").cmp(&format!("{b:?}")),
                });
                R::Arr(items)
            }
            other => panic!("not an array: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Strings
// ---------------------------------------------------------------------------

#[test]
fn set_get_exact_bytes() {
    let server = shared();
    let mut c = raw(&server);
    c.send(&encode(&["SET", "sg:k", "value"]));
    c.expect_bytes(b"+OK\r\n");
    c.send(&encode(&["GET", "sg:k"]));
    c.expect_bytes(b"$5\r\nvalue\r\n");
    c.send(&encode(&["GET", "sg:missing"]));
    c.expect_bytes(b"$-1\r\n");
    c.send(&encode(&["SET", "sg:empty", ""]));
    c.expect_bytes(b"+OK\r\n");
    c.send(&encode(&["GET", "sg:empty"]));
    c.expect_bytes(b"$0\r\n\r\n");
    c.send(&encode(&["EXISTS", "sg:empty"]));
    c.expect_bytes(b":1\r\n");
    // Overwrite.
    assert_eq!(c.call(&["SET", "sg:k", "other"]), ok());
    assert_eq!(c.call(&["GET", "sg:k"]), bulk("other"));
    // Command names are case-insensitive.
    assert_eq!(c.call(&["sEt", "sg:k", "mixed"]), ok());
    assert_eq!(c.call(&["get", "sg:k"]), bulk("mixed"));
    assert_eq!(c.call(&["TYPE", "sg:k"]), R::Simple("string".into()));
}

#[test]
fn set_nx_xx_get() {
    let server = shared();
    let mut c = raw(&server);
    assert_eq!(c.call(&["SET", "nx:a", "1", "NX"]), ok());
    assert_eq!(c.call(&["SET", "nx:a", "2", "NX"]), R::NullBulk);
    assert_eq!(c.call(&["GET", "nx:a"]), bulk("1"));
    assert_eq!(c.call(&["SET", "nx:b", "1", "XX"]), R::NullBulk);
    assert_eq!(c.call(&["EXISTS", "nx:b"]), int(0));
    assert_eq!(c.call(&["SET", "nx:a", "3", "xx"]), ok());
    assert_eq!(c.call(&["GET", "nx:a"]), bulk("3"));

    // GET returns the old value (nil if none) and still sets.
    assert_eq!(c.call(&["SET", "nx:g", "v1", "GET"]), R::NullBulk);
    assert_eq!(c.call(&["SET", "nx:g", "v2", "GET"]), bulk("v1"));
    assert_eq!(c.call(&["GET", "nx:g"]), bulk("v2"));
    // GET with NX / XX: the old value is returned whether or not the set happens.
    assert_eq!(c.call(&["SET", "nx:g", "v3", "NX", "GET"]), bulk("v2"));
    assert_eq!(c.call(&["GET", "nx:g"]), bulk("v2"));
    assert_eq!(c.call(&["SET", "nx:g", "v4", "XX", "GET"]), bulk("v2"));
    assert_eq!(c.call(&["GET", "nx:g"]), bulk("v4"));
    assert_eq!(c.call(&["SET", "nx:h", "v", "XX", "GET"]), R::NullBulk);
    assert_eq!(c.call(&["EXISTS", "nx:h"]), int(0));
    assert_eq!(c.call(&["SET", "nx:h", "v", "GET", "NX"]), R::NullBulk);
    assert_eq!(c.call(&["GET", "nx:h"]), bulk("v"));

    // RESP3: a refused NX set is a null.
    let mut c3 = raw3(&server);
    c3.send(&encode(&["SET", "nx:a", "9", "NX"]));
    c3.expect_bytes(b"_\r\n");
}

#[test]
fn set_expiry_options() {
    let server = shared();
    let mut c = raw(&server);
    assert_eq!(c.call(&["SET", "sx:ex", "v", "EX", "100"]), ok());
    assert_ttl_near(&mut c, "sx:ex", 100);
    assert_eq!(c.call(&["SET", "sx:px", "v", "PX", "100000"]), ok());
    let p = pttl(&mut c, "sx:px");
    assert!((95_000..=100_000).contains(&p), "PTTL {p}");
    let at = now_ms() / 1000 + 200;
    assert_eq!(
        c.call(&["SET", "sx:exat", "v", "EXAT", &at.to_string()]),
        ok()
    );
    assert_ttl_near(&mut c, "sx:exat", 200);
    let pat = now_ms() + 300_000;
    assert_eq!(
        c.call(&["SET", "sx:pxat", "v", "PXAT", &pat.to_string()]),
        ok()
    );
    assert_ttl_near(&mut c, "sx:pxat", 300);
    // Lower-case options.
    assert_eq!(c.call(&["set", "sx:lc", "v", "ex", "50", "nx"]), ok());
    assert_ttl_near(&mut c, "sx:lc", 50);

    // A plain SET clears the TTL, KEEPTTL keeps it.
    assert_eq!(c.call(&["SET", "sx:ex", "v2", "KEEPTTL"]), ok());
    assert_ttl_near(&mut c, "sx:ex", 100);
    assert_eq!(c.call(&["GET", "sx:ex"]), bulk("v2"));
    assert_eq!(c.call(&["SET", "sx:ex", "v3", "XX", "KEEPTTL"]), ok());
    assert_ttl_near(&mut c, "sx:ex", 100);
    assert_eq!(c.call(&["SET", "sx:ex", "v4"]), ok());
    assert_eq!(ttl(&mut c, "sx:ex"), -1);
    // GET combined with an expiry.
    assert_eq!(
        c.call(&["SET", "sx:ex", "v5", "GET", "EX", "70"]),
        bulk("v4")
    );
    assert_ttl_near(&mut c, "sx:ex", 70);

    // An absolute time in the past stores nothing visible.
    assert_eq!(c.call(&["SET", "sx:past", "v", "EXAT", "1"]), ok());
    assert_eq!(c.call(&["GET", "sx:past"]), R::NullBulk);
    assert_eq!(c.call(&["EXISTS", "sx:past"]), int(0));
    assert_eq!(c.call(&["SET", "sx:past", "v", "PXAT", "1"]), ok());
    assert_eq!(c.call(&["EXISTS", "sx:past"]), int(0));
}

#[test]
fn set_syntax_errors() {
    let server = shared();
    let mut c = raw(&server);
    let cases: &[(&[&str], &str)] = &[
        (
            &["SET", "se:k"],
            "ERR wrong number of arguments for 'set' command",
        ),
        (&["SET"], "ERR wrong number of arguments for 'set' command"),
        (&["SET", "se:k", "v", "NX", "XX"], "ERR syntax error"),
        (&["SET", "se:k", "v", "XX", "NX"], "ERR syntax error"),
        (
            &["SET", "se:k", "v", "EX", "10", "PX", "10"],
            "ERR syntax error",
        ),
        (
            &["SET", "se:k", "v", "EX", "10", "EXAT", "10"],
            "ERR syntax error",
        ),
        (
            &["SET", "se:k", "v", "PX", "10", "PXAT", "10"],
            "ERR syntax error",
        ),
        (
            &["SET", "se:k", "v", "KEEPTTL", "EX", "10"],
            "ERR syntax error",
        ),
        (
            &["SET", "se:k", "v", "PX", "1", "KEEPTTL"],
            "ERR syntax error",
        ),
        (&["SET", "se:k", "v", "BOGUS"], "ERR syntax error"),
        (&["SET", "se:k", "v", "EX"], "ERR syntax error"),
        (&["SET", "se:k", "v", "PXAT"], "ERR syntax error"),
        (
            &["SET", "se:k", "v", "EX", "abc"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["SET", "se:k", "v", "EX", "1.5"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["SET", "se:k", "v", "PX", "x"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["SET", "se:k", "v", "EXAT", "x"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["SET", "se:k", "v", "EX", "0"],
            "ERR invalid expire time in 'set' command",
        ),
        (
            &["SET", "se:k", "v", "EX", "-1"],
            "ERR invalid expire time in 'set' command",
        ),
        (
            &["SET", "se:k", "v", "PX", "0"],
            "ERR invalid expire time in 'set' command",
        ),
        (
            &["SET", "se:k", "v", "PX", "-5"],
            "ERR invalid expire time in 'set' command",
        ),
        (
            &["SET", "se:k", "v", "EXAT", "0"],
            "ERR invalid expire time in 'set' command",
        ),
        (
            &["SET", "se:k", "v", "EXAT", "-5"],
            "ERR invalid expire time in 'set' command",
        ),
        (
            &["SET", "se:k", "v", "PXAT", "0"],
            "ERR invalid expire time in 'set' command",
        ),
        (
            &["SET", "se:k", "v", "PXAT", "-1"],
            "ERR invalid expire time in 'set' command",
        ),
        (
            &["SET", "se:k", "v", "EX", "9223372036854775"],
            "ERR invalid expire time in 'set' command",
        ),
        (
            &["SET", "se:k", "v", "PX", "9223372036854775807"],
            "ERR invalid expire time in 'set' command",
        ),
    ];
    for (args, expected) in cases {
        assert_eq!(c.error(args), *expected, "{}", args.join(" "));
    }
    // None of the rejected SETs stored anything.
    assert_eq!(c.call(&["EXISTS", "se:k"]), int(0));
}

#[test]
fn repeated_options_are_accepted() {
    // Redis accepts an option given twice; for expiry options the last one wins.
    let server = shared();
    let mut c = raw(&server);
    assert_eq!(c.call(&["SET", "ro:a", "v", "NX", "NX"]), ok());
    assert_eq!(c.call(&["SET", "ro:a", "w", "XX", "XX"]), ok());
    assert_eq!(c.call(&["SET", "ro:a", "x", "GET", "GET"]), bulk("w"));
    assert_eq!(c.call(&["SET", "ro:a", "y", "EX", "10", "EX", "100"]), ok());
    assert_ttl_near(&mut c, "ro:a", 100);
    assert_eq!(c.call(&["SET", "ro:a", "z", "KEEPTTL", "KEEPTTL"]), ok());
    assert_ttl_near(&mut c, "ro:a", 100);
    assert_eq!(
        c.call(&["GETEX", "ro:a", "EX", "10", "EX", "200"]),
        bulk("z")
    );
    assert_ttl_near(&mut c, "ro:a", 200);
    assert_eq!(c.call(&["GETEX", "ro:a", "PERSIST", "PERSIST"]), bulk("z"));
    assert_eq!(ttl(&mut c, "ro:a"), -1);
}

#[test]
fn setnx_setex_psetex() {
    let server = shared();
    let mut c = raw(&server);
    assert_eq!(c.call(&["SETNX", "sn:a", "1"]), int(1));
    assert_eq!(c.call(&["SETNX", "sn:a", "2"]), int(0));
    assert_eq!(c.call(&["GET", "sn:a"]), bulk("1"));
    assert_eq!(
        c.error(&["SETNX", "sn:a"]),
        "ERR wrong number of arguments for 'setnx' command"
    );

    assert_eq!(c.call(&["SETEX", "sn:e", "100", "v"]), ok());
    assert_eq!(c.call(&["GET", "sn:e"]), bulk("v"));
    assert_ttl_near(&mut c, "sn:e", 100);
    assert_eq!(c.call(&["PSETEX", "sn:p", "100000", "v"]), ok());
    let p = pttl(&mut c, "sn:p");
    assert!((95_000..=100_000).contains(&p), "PTTL {p}");
    assert_eq!(
        c.error(&["SETEX", "sn:e", "0", "v"]),
        "ERR invalid expire time in 'setex' command"
    );
    assert_eq!(
        c.error(&["SETEX", "sn:e", "-1", "v"]),
        "ERR invalid expire time in 'setex' command"
    );
    assert_eq!(
        c.error(&["SETEX", "sn:e", "x", "v"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        c.error(&["PSETEX", "sn:p", "0", "v"]),
        "ERR invalid expire time in 'psetex' command"
    );
    assert_eq!(
        c.error(&["SETEX", "sn:e", "100"]),
        "ERR wrong number of arguments for 'setex' command"
    );
    assert_eq!(
        c.error(&["PSETEX", "sn:e", "100"]),
        "ERR wrong number of arguments for 'psetex' command"
    );
    // The failed SETEX left the old value and TTL alone.
    assert_eq!(c.call(&["GET", "sn:e"]), bulk("v"));
    assert_ttl_near(&mut c, "sn:e", 100);
}

#[test]
fn getset_getdel_getex() {
    let server = shared();
    let mut c = raw(&server);
    assert_eq!(c.call(&["GETSET", "gs:a", "1"]), R::NullBulk);
    assert_eq!(c.call(&["GETSET", "gs:a", "2"]), bulk("1"));
    assert_eq!(c.call(&["GET", "gs:a"]), bulk("2"));
    // GETSET clears the TTL.
    assert_eq!(c.call(&["SET", "gs:t", "v", "EX", "100"]), ok());
    assert_eq!(c.call(&["GETSET", "gs:t", "w"]), bulk("v"));
    assert_eq!(ttl(&mut c, "gs:t"), -1);
    assert_eq!(
        c.error(&["GETSET", "gs:a"]),
        "ERR wrong number of arguments for 'getset' command"
    );

    assert_eq!(c.call(&["GETDEL", "gs:a"]), bulk("2"));
    assert_eq!(c.call(&["GETDEL", "gs:a"]), R::NullBulk);
    assert_eq!(c.call(&["EXISTS", "gs:a"]), int(0));
    assert_eq!(
        c.error(&["GETDEL"]),
        "ERR wrong number of arguments for 'getdel' command"
    );

    assert_eq!(c.call(&["GETEX", "gs:none"]), R::NullBulk);
    assert_eq!(c.call(&["GETEX", "gs:none", "EX", "10"]), R::NullBulk);
    assert_eq!(c.call(&["EXISTS", "gs:none"]), int(0));
    assert_eq!(c.call(&["SET", "gs:x", "v"]), ok());
    assert_eq!(c.call(&["GETEX", "gs:x"]), bulk("v"));
    assert_eq!(ttl(&mut c, "gs:x"), -1);
    assert_eq!(c.call(&["GETEX", "gs:x", "EX", "100"]), bulk("v"));
    assert_ttl_near(&mut c, "gs:x", 100);
    assert_eq!(c.call(&["GETEX", "gs:x", "PX", "200000"]), bulk("v"));
    assert_ttl_near(&mut c, "gs:x", 200);
    let at = now_ms() / 1000 + 300;
    assert_eq!(
        c.call(&["GETEX", "gs:x", "EXAT", &at.to_string()]),
        bulk("v")
    );
    assert_ttl_near(&mut c, "gs:x", 300);
    let pat = now_ms() + 400_000;
    assert_eq!(
        c.call(&["GETEX", "gs:x", "PXAT", &pat.to_string()]),
        bulk("v")
    );
    assert_ttl_near(&mut c, "gs:x", 400);
    assert_eq!(c.call(&["GETEX", "gs:x", "PERSIST"]), bulk("v"));
    assert_eq!(ttl(&mut c, "gs:x"), -1);
    assert_eq!(c.call(&["getex", "gs:x", "ex", "100"]), bulk("v"));
    assert_ttl_near(&mut c, "gs:x", 100);

    let cases: &[(&[&str], &str)] = &[
        (
            &["GETEX"],
            "ERR wrong number of arguments for 'getex' command",
        ),
        (
            &["GETEX", "gs:x", "EX", "0"],
            "ERR invalid expire time in 'getex' command",
        ),
        (
            &["GETEX", "gs:x", "EX", "-1"],
            "ERR invalid expire time in 'getex' command",
        ),
        (
            &["GETEX", "gs:x", "PX", "0"],
            "ERR invalid expire time in 'getex' command",
        ),
        (
            &["GETEX", "gs:x", "EX", "abc"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["GETEX", "gs:x", "EX", "10", "PX", "10"],
            "ERR syntax error",
        ),
        (
            &["GETEX", "gs:x", "EX", "10", "PERSIST"],
            "ERR syntax error",
        ),
        (
            &["GETEX", "gs:x", "PERSIST", "EX", "10"],
            "ERR syntax error",
        ),
        (&["GETEX", "gs:x", "EX"], "ERR syntax error"),
        (&["GETEX", "gs:x", "FOO"], "ERR syntax error"),
        (&["GETEX", "gs:x", "KEEPTTL"], "ERR syntax error"),
    ];
    for (args, expected) in cases {
        assert_eq!(c.error(args), *expected, "{}", args.join(" "));
    }
    // Errors left the TTL as it was.
    assert_ttl_near(&mut c, "gs:x", 100);

    // An absolute time in the past deletes the key, after returning it.
    assert_eq!(c.call(&["GETEX", "gs:x", "EXAT", "1"]), bulk("v"));
    assert_eq!(c.call(&["EXISTS", "gs:x"]), int(0));
}

#[test]
fn mget_mset_msetnx() {
    let server = shared();
    let mut c = raw(&server);
    assert_eq!(c.call(&["MSET", "mm:a", "1", "mm:b", "2"]), ok());
    c.send(&encode(&["MGET", "mm:a", "mm:b", "mm:c"]));
    c.expect_bytes(b"*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n");
    assert_eq!(c.call(&["MGET", "mm:a"]), bulks(&["1"]));
    // Later pairs win for duplicate keys.
    assert_eq!(c.call(&["MSET", "mm:d", "1", "mm:d", "2"]), ok());
    assert_eq!(c.call(&["GET", "mm:d"]), bulk("2"));
    // MSET clears TTLs like SET.
    assert_eq!(c.call(&["SET", "mm:t", "v", "EX", "100"]), ok());
    assert_eq!(c.call(&["MSET", "mm:t", "w"]), ok());
    assert_eq!(ttl(&mut c, "mm:t"), -1);

    assert_eq!(c.call(&["MSETNX", "mm:a", "9", "mm:new1", "9"]), int(0));
    assert_eq!(
        c.call(&["EXISTS", "mm:new1"]),
        int(0),
        "MSETNX is all or nothing"
    );
    assert_eq!(c.call(&["GET", "mm:a"]), bulk("1"));
    assert_eq!(c.call(&["MSETNX", "mm:new1", "x", "mm:new2", "y"]), int(1));
    assert_eq!(c.call(&["MGET", "mm:new1", "mm:new2"]), bulks(&["x", "y"]));

    for (args, name) in [
        (&["MSET"][..], "mset"),
        (&["MSET", "mm:a"][..], "mset"),
        (&["MSET", "mm:a", "1", "mm:b"][..], "mset"),
        (&["MSETNX", "mm:z"][..], "msetnx"),
        (&["MSETNX", "mm:z", "1", "mm:y"][..], "msetnx"),
        (&["MGET"][..], "mget"),
    ] {
        assert_eq!(
            c.error(args),
            format!("ERR wrong number of arguments for '{name}' command"),
            "{}",
            args.join(" ")
        );
    }
    assert_eq!(c.call(&["EXISTS", "mm:z", "mm:y"]), int(0));
    assert_eq!(
        c.call(&["GET", "mm:b"]),
        bulk("2"),
        "failed MSET wrote nothing"
    );

    let mut c3 = raw3(&server);
    assert_eq!(
        c3.call(&["MGET", "mm:a", "mm:none"]),
        arr(vec![bulk("1"), R::Null])
    );
}

#[test]
fn append_and_strlen() {
    let server = shared();
    let mut c = raw(&server);
    assert_eq!(c.call(&["APPEND", "ap:a", "Hello"]), int(5));
    assert_eq!(c.call(&["APPEND", "ap:a", " World"]), int(11));
    assert_eq!(c.call(&["GET", "ap:a"]), bulk("Hello World"));
    assert_eq!(c.call(&["STRLEN", "ap:a"]), int(11));
    assert_eq!(c.call(&["STRLEN", "ap:none"]), int(0));
    assert_eq!(c.call(&["APPEND", "ap:a", ""]), int(11));
    // APPEND "" to a missing key creates an empty string.
    assert_eq!(c.call(&["APPEND", "ap:e", ""]), int(0));
    assert_eq!(c.call(&["EXISTS", "ap:e"]), int(1));
    assert_eq!(c.call(&["GET", "ap:e"]), bulk(""));
    assert_eq!(c.call(&["STRLEN", "ap:e"]), int(0));
    // Binary append.
    assert_eq!(c.call(&[&b"APPEND"[..], b"ap:b", b"\x00\xff"]), int(2));
    assert_eq!(c.call(&[&b"APPEND"[..], b"ap:b", b"\r\n"]), int(4));
    assert_eq!(c.call(&["GET", "ap:b"]), bulk(b"\x00\xff\r\n"));
    assert_eq!(c.call(&["STRLEN", "ap:b"]), int(4));
    // APPEND keeps the TTL.
    assert_eq!(c.call(&["SET", "ap:t", "x", "EX", "100"]), ok());
    assert_eq!(c.call(&["APPEND", "ap:t", "y"]), int(2));
    assert_ttl_near(&mut c, "ap:t", 100);
    assert_eq!(
        c.error(&["APPEND", "ap:a"]),
        "ERR wrong number of arguments for 'append' command"
    );
    assert_eq!(
        c.error(&["STRLEN"]),
        "ERR wrong number of arguments for 'strlen' command"
    );
    assert_eq!(
        c.error(&["STRLEN", "a", "b"]),
        "ERR wrong number of arguments for 'strlen' command"
    );
}

#[test]
fn incr_decr_family() {
    let server = shared();
    let mut c = raw(&server);
    assert_eq!(c.call(&["INCR", "id:a"]), int(1));
    assert_eq!(c.call(&["INCR", "id:a"]), int(2));
    assert_eq!(c.call(&["DECR", "id:a"]), int(1));
    assert_eq!(c.call(&["DECR", "id:a"]), int(0));
    assert_eq!(c.call(&["DECR", "id:a"]), int(-1));
    assert_eq!(c.call(&["INCRBY", "id:a", "-5"]), int(-6));
    assert_eq!(c.call(&["DECRBY", "id:a", "-10"]), int(4));
    assert_eq!(c.call(&["INCRBY", "id:a", "0"]), int(4));
    assert_eq!(c.call(&["DECRBY", "id:b", "3"]), int(-3));
    // Stored as a string.
    c.send(&encode(&["GET", "id:a"]));
    c.expect_bytes(b"$1\r\n4\r\n");
    assert_eq!(c.call(&["TYPE", "id:a"]), R::Simple("string".into()));
    assert_eq!(c.call(&["SET", "id:c", "-9223372036854775808"]), ok());
    assert_eq!(c.call(&["INCR", "id:c"]), int(-9223372036854775807));
    // INCR keeps the TTL.
    assert_eq!(c.call(&["SET", "id:t", "10", "EX", "100"]), ok());
    assert_eq!(c.call(&["INCR", "id:t"]), int(11));
    assert_ttl_near(&mut c, "id:t", 100);

    for (args, name) in [
        (&["INCR"][..], "incr"),
        (&["INCR", "a", "b"][..], "incr"),
        (&["DECR"][..], "decr"),
        (&["INCRBY", "id:a"][..], "incrby"),
        (&["DECRBY", "id:a"][..], "decrby"),
        (&["INCRBYFLOAT", "id:a"][..], "incrbyfloat"),
    ] {
        assert_eq!(
            c.error(args),
            format!("ERR wrong number of arguments for '{name}' command"),
            "{}",
            args.join(" ")
        );
    }
}

#[test]
fn incr_integer_parsing_is_strict() {
    // Redis parses integers with string2ll: no spaces, no '+', no leading
    // zeros, no "-0", within i64.
    let server = shared();
    let mut c = raw(&server);
    for stored in [
        "abc",
        " 1",
        "1 ",
        "",
        "+1",
        "01",
        "-0",
        "1.5",
        "9223372036854775808",
        "1\0",
    ] {
        assert_eq!(c.call(&["SET", "ip:v", stored]), ok());
        assert_eq!(
            c.error(&["INCR", "ip:v"]),
            "ERR value is not an integer or out of range",
            "INCR on {stored:?}"
        );
        assert_eq!(
            c.call(&["GET", "ip:v"]),
            bulk(stored),
            "failed INCR changed the value"
        );
    }
    assert_eq!(c.call(&["SET", "ip:n", "1"]), ok());
    for arg in [
        "x",
        "1.5",
        "+5",
        "05",
        "-0",
        " 5",
        "5 ",
        "",
        "9223372036854775808",
    ] {
        assert_eq!(
            c.error(&["INCRBY", "ip:n", arg]),
            "ERR value is not an integer or out of range",
            "INCRBY {arg:?}"
        );
    }
    assert_eq!(
        c.error(&["DECRBY", "ip:n", "9223372036854775808"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(c.call(&["GET", "ip:n"]), bulk("1"));
}

#[test]
fn incr_overflow() {
    let server = shared();
    let mut c = raw(&server);
    assert_eq!(
        c.call(&["INCRBY", "io:a", "9223372036854775807"]),
        int(i64::MAX)
    );
    assert_eq!(
        c.error(&["INCRBY", "io:a", "1"]),
        "ERR increment or decrement would overflow"
    );
    assert_eq!(
        c.error(&["INCR", "io:a"]),
        "ERR increment or decrement would overflow"
    );
    assert_eq!(
        c.error(&["DECRBY", "io:a", "-1"]),
        "ERR increment or decrement would overflow"
    );
    assert_eq!(c.call(&["GET", "io:a"]), bulk("9223372036854775807"));
    assert_eq!(c.call(&["SET", "io:b", "-9223372036854775808"]), ok());
    assert_eq!(
        c.error(&["DECR", "io:b"]),
        "ERR increment or decrement would overflow"
    );
    assert_eq!(
        c.error(&["INCRBY", "io:b", "-1"]),
        "ERR increment or decrement would overflow"
    );
    // DECRBY with i64::MIN cannot be negated: Redis has a dedicated message.
    assert_eq!(c.call(&["SET", "io:c", "0"]), ok());
    assert_eq!(
        c.error(&["DECRBY", "io:c", "-9223372036854775808"]),
        "ERR decrement would overflow"
    );
    assert_eq!(c.call(&["GET", "io:c"]), bulk("0"));
}

#[test]
fn incrbyfloat() {
    let server = shared();
    let mut c = raw(&server);
    // Examples from the Redis documentation.
    assert_eq!(c.call(&["SET", "if:a", "10.50"]), ok());
    assert_eq!(c.call(&["INCRBYFLOAT", "if:a", "0.1"]), bulk("10.6"));
    assert_eq!(c.call(&["INCRBYFLOAT", "if:a", "-5"]), bulk("5.6"));
    assert_eq!(c.call(&["SET", "if:b", "5.0e3"]), ok());
    assert_eq!(c.call(&["INCRBYFLOAT", "if:b", "2.0e2"]), bulk("5200"));
    c.send(&encode(&["GET", "if:b"]));
    c.expect_bytes(b"$4\r\n5200\r\n");

    assert_eq!(c.call(&["INCRBYFLOAT", "if:n", "1.25"]), bulk("1.25"));
    assert_eq!(c.call(&["INCRBYFLOAT", "if:n", "-1.25"]), bulk("0"));
    assert_eq!(c.call(&["INCRBYFLOAT", "if:n", "1e3"]), bulk("1000"));
    assert_eq!(c.call(&["INCRBYFLOAT", "if:n", "1."]), bulk("1001"));
    assert_eq!(c.call(&["INCRBYFLOAT", "if:n", ".5"]), bulk("1001.5"));
    assert_eq!(c.call(&["INCRBYFLOAT", "if:n", "+1"]), bulk("1002.5"));
    assert_eq!(c.call(&["INCRBYFLOAT", "if:n", "-1002.5"]), bulk("0"));
    assert_eq!(c.call(&["INCRBYFLOAT", "if:n", "1.5e-5"]), bulk("0.000015"));
    assert_eq!(c.call(&["SET", "if:c", "1"]), ok());
    assert_eq!(
        c.call(&["INCRBYFLOAT", "if:c", "1e20"]),
        bulk("100000000000000000000")
    );
    assert_eq!(c.call(&["SET", "if:d", "1.5e1"]), ok());
    assert_eq!(c.call(&["INCRBYFLOAT", "if:d", "0"]), bulk("15"));
    assert_eq!(c.call(&["SET", "if:e", "3"]), ok());
    assert_eq!(c.call(&["INCRBYFLOAT", "if:e", "-4.5"]), bulk("-1.5"));
    // INCRBYFLOAT keeps the TTL.
    assert_eq!(c.call(&["SET", "if:t", "1", "EX", "100"]), ok());
    assert_eq!(c.call(&["INCRBYFLOAT", "if:t", "1"]), bulk("2"));
    assert_ttl_near(&mut c, "if:t", 100);

    for (stored, incr) in [
        ("abc", "1"),
        (" 1.5", "1"),
        ("1.5 ", "1"),
        ("", "1"),
        ("1", "abc"),
        ("1", "nan"),
        ("1", " 1"),
        ("1", "1 "),
        ("1", "1.0e"),
        ("1", ""),
    ] {
        assert_eq!(c.call(&["SET", "if:x", stored]), ok());
        assert_eq!(
            c.error(&["INCRBYFLOAT", "if:x", incr]),
            "ERR value is not a valid float",
            "{stored:?} + {incr:?}"
        );
        assert_eq!(c.call(&["GET", "if:x"]), bulk(stored));
    }
    // RESP3: the reply is still a bulk string.
    let mut c3 = raw3(&server);
    assert_eq!(c3.call(&["INCRBYFLOAT", "if:r3", "1.5"]), bulk("1.5"));

    for (stored, incr) in [("1", "inf"), ("1", "-inf"), ("1", "infinity"), ("inf", "1")] {
        assert_eq!(c.call(&["SET", "if:y", stored]), ok());
        assert_eq!(
            c.error(&["INCRBYFLOAT", "if:y", incr]),
            "ERR increment would produce NaN or Infinity",
            "{stored:?} + {incr:?}"
        );
    }
}

#[test]
fn incrbyfloat_matches_redis_long_double_rounding() {
    // Redis computes in long double and prints with 17 significant digits,
    // so 0.1 + 0.2 is "0.3" (a naive f64 gives 0.30000000000000004).
    let server = shared();
    let mut c = raw(&server);
    assert_eq!(c.call(&["SET", "ifl:a", "0.1"]), ok());
    assert_eq!(c.call(&["INCRBYFLOAT", "ifl:a", "0.2"]), bulk("0.3"));
}

#[test]
fn getrange_and_setrange() {
    let server = shared();
    let mut c = raw(&server);
    assert_eq!(c.call(&["SET", "gr:a", "This is a string"]), ok());
    let cases: &[(&str, &str, &str)] = &[
        ("0", "3", "This"),
        ("-3", "-1", "ing"),
        ("0", "-1", "This is a string"),
        ("10", "100", "string"),
        ("-100", "100", "This is a string"),
        ("5", "3", ""),
        ("20", "30", ""),
        ("-1", "-1", "g"),
        ("0", "0", "T"),
    ];
    for (s, e, want) in cases {
        assert_eq!(
            c.call(&["GETRANGE", "gr:a", s, e]),
            bulk(want),
            "GETRANGE {s} {e}"
        );
    }
    assert_eq!(c.call(&["GETRANGE", "gr:none", "0", "-1"]), bulk(""));
    assert_eq!(
        c.error(&["GETRANGE", "gr:a", "x", "1"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        c.error(&["GETRANGE", "gr:a", "0"]),
        "ERR wrong number of arguments for 'getrange' command"
    );

    assert_eq!(c.call(&["SET", "gr:s", "Hello World"]), ok());
    assert_eq!(c.call(&["SETRANGE", "gr:s", "6", "Redis"]), int(11));
    assert_eq!(c.call(&["GET", "gr:s"]), bulk("Hello Redis"));
    assert_eq!(c.call(&["SETRANGE", "gr:s", "11", "!!"]), int(13));
    assert_eq!(c.call(&["GET", "gr:s"]), bulk("Hello Redis!!"));
    // Past the end of a missing key: zero padding.
    assert_eq!(c.call(&["SETRANGE", "gr:z", "5", "hi"]), int(7));
    assert_eq!(c.call(&["GET", "gr:z"]), bulk(b"\x00\x00\x00\x00\x00hi"));
    // An empty value on a missing key creates nothing.
    assert_eq!(c.call(&["SETRANGE", "gr:e", "3", ""]), int(0));
    assert_eq!(c.call(&["EXISTS", "gr:e"]), int(0));
    assert_eq!(
        c.call(&["SETRANGE", "gr:s", "100", ""]),
        int(13),
        "no padding for empty value"
    );
    assert_eq!(c.call(&["STRLEN", "gr:s"]), int(13));
    // SETRANGE keeps the TTL.
    assert_eq!(c.call(&["SET", "gr:t", "abc", "EX", "100"]), ok());
    assert_eq!(c.call(&["SETRANGE", "gr:t", "1", "X"]), int(3));
    assert_eq!(c.call(&["GET", "gr:t"]), bulk("aXc"));
    assert_ttl_near(&mut c, "gr:t", 100);

    assert_eq!(
        c.error(&["SETRANGE", "gr:s", "-1", "x"]),
        "ERR offset is out of range"
    );
    assert_eq!(
        c.error(&["SETRANGE", "gr:s", "x", "y"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        c.error(&["SETRANGE", "gr:s", "1"]),
        "ERR wrong number of arguments for 'setrange' command"
    );
}

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

#[test]
fn del_unlink_exists_type() {
    let server = shared();
    let mut c = raw(&server);
    assert_eq!(
        c.call(&["MSET", "dk:a", "1", "dk:b", "2", "dk:c", "3"]),
        ok()
    );
    assert_eq!(c.call(&["EXISTS", "dk:a"]), int(1));
    // EXISTS counts repeated keys each time.
    assert_eq!(
        c.call(&["EXISTS", "dk:a", "dk:a", "dk:b", "dk:none"]),
        int(3)
    );
    assert_eq!(c.call(&["DEL", "dk:a", "dk:b", "dk:none"]), int(2));
    assert_eq!(c.call(&["DEL", "dk:a"]), int(0));
    assert_eq!(c.call(&["UNLINK", "dk:c", "dk:none"]), int(1));
    assert_eq!(c.call(&["EXISTS", "dk:a", "dk:b", "dk:c"]), int(0));
    assert_eq!(c.call(&["SET", "dk:d", "x"]), ok());
    assert_eq!(c.call(&["DEL", "dk:d", "dk:d"]), int(1));

    assert_eq!(c.call(&["SET", "dk:t", "x"]), ok());
    c.send(&encode(&["TYPE", "dk:t"]));
    c.expect_bytes(b"+string\r\n");
    c.send(&encode(&["TYPE", "dk:none"]));
    c.expect_bytes(b"+none\r\n");

    for (args, name) in [
        (&["DEL"][..], "del"),
        (&["UNLINK"][..], "unlink"),
        (&["EXISTS"][..], "exists"),
        (&["TYPE"][..], "type"),
        (&["TYPE", "a", "b"][..], "type"),
    ] {
        assert_eq!(
            c.error(args),
            format!("ERR wrong number of arguments for '{name}' command")
        );
    }
}

#[test]
fn rename_and_renamenx() {
    let server = shared();
    let mut c = raw(&server);
    assert_eq!(c.call(&["SET", "rn:a", "1"]), ok());
    assert_eq!(c.call(&["RENAME", "rn:a", "rn:b"]), ok());
    assert_eq!(c.call(&["GET", "rn:b"]), bulk("1"));
    assert_eq!(c.call(&["EXISTS", "rn:a"]), int(0));
    assert_eq!(c.error(&["RENAME", "rn:a", "rn:b"]), "ERR no such key");
    assert_eq!(c.error(&["RENAMENX", "rn:a", "rn:b"]), "ERR no such key");
    // Onto itself.
    assert_eq!(c.call(&["RENAME", "rn:b", "rn:b"]), ok());
    assert_eq!(c.call(&["GET", "rn:b"]), bulk("1"));
    assert_eq!(c.call(&["RENAMENX", "rn:b", "rn:b"]), int(0));
    // Overwrites the destination.
    assert_eq!(c.call(&["SET", "rn:c", "3"]), ok());
    assert_eq!(c.call(&["RENAME", "rn:b", "rn:c"]), ok());
    assert_eq!(c.call(&["GET", "rn:c"]), bulk("1"));
    // RENAMENX refuses an existing destination.
    assert_eq!(c.call(&["SET", "rn:d", "4"]), ok());
    assert_eq!(c.call(&["RENAMENX", "rn:c", "rn:d"]), int(0));
    assert_eq!(c.call(&["GET", "rn:d"]), bulk("4"));
    assert_eq!(c.call(&["RENAMENX", "rn:c", "rn:e"]), int(1));
    assert_eq!(c.call(&["GET", "rn:e"]), bulk("1"));
    assert_eq!(c.call(&["EXISTS", "rn:c"]), int(0));

    // The TTL travels with the value; the destination's own TTL is dropped.
    assert_eq!(c.call(&["SET", "rn:src", "v", "EX", "100"]), ok());
    assert_eq!(c.call(&["SET", "rn:dst", "w"]), ok());
    assert_eq!(c.call(&["RENAME", "rn:src", "rn:dst"]), ok());
    assert_ttl_near(&mut c, "rn:dst", 100);
    assert_eq!(c.call(&["SET", "rn:src", "v"]), ok());
    assert_eq!(c.call(&["SET", "rn:dst", "w", "EX", "100"]), ok());
    assert_eq!(c.call(&["RENAME", "rn:src", "rn:dst"]), ok());
    assert_eq!(ttl(&mut c, "rn:dst"), -1);
    assert_eq!(c.call(&["SET", "rn:src", "v", "EX", "100"]), ok());
    assert_eq!(c.call(&["RENAMENX", "rn:src", "rn:dst2"]), int(1));
    assert_ttl_near(&mut c, "rn:dst2", 100);

    assert_eq!(
        c.error(&["RENAME", "rn:a"]),
        "ERR wrong number of arguments for 'rename' command"
    );
    assert_eq!(
        c.error(&["RENAMENX", "rn:a"]),
        "ERR wrong number of arguments for 'renamenx' command"
    );
}

#[test]
fn keys_glob_patterns() {
    let server = shared();
    let mut c = raw(&server);
    for k in [
        "hello", "hallo", "hxllo", "hllo", "heeello", "h1", "a*b", "a?b", "[x", "foo",
    ] {
        assert_eq!(c.call(&["SET", &format!("kg:{k}"), "1"]), ok());
    }
    let keys = |c: &mut Raw, pat: &str| -> Vec<String> {
        match c.call(&["KEYS", pat]) {
            R::Arr(items) => {
                let mut out: Vec<String> = items
                    .into_iter()
                    .map(|i| match i {
                        R::Bulk(b) => String::from_utf8(b).unwrap(),
                        other => panic!("KEYS item {other:?}"),
                    })
                    .collect();
                out.sort();
                out
            }
            other => panic!("KEYS {pat}: {other:?}"),
        }
    };
    assert_eq!(
        keys(&mut c, "kg:h?llo"),
        ["kg:hallo", "kg:hello", "kg:hxllo"]
    );
    assert_eq!(
        keys(&mut c, "kg:h*llo"),
        ["kg:hallo", "kg:heeello", "kg:hello", "kg:hllo", "kg:hxllo"]
    );
    assert_eq!(keys(&mut c, "kg:h[ae]llo"), ["kg:hallo", "kg:hello"]);
    assert_eq!(keys(&mut c, "kg:h[^e]llo"), ["kg:hallo", "kg:hxllo"]);
    assert_eq!(keys(&mut c, "kg:h[a-b]llo"), ["kg:hallo"]);
    assert_eq!(keys(&mut c, "kg:a\\*b"), ["kg:a*b"]);
    assert_eq!(keys(&mut c, "kg:a\\?b"), ["kg:a?b"]);
    assert_eq!(keys(&mut c, "kg:a?b"), ["kg:a*b", "kg:a?b"]);
    assert_eq!(keys(&mut c, "kg:\\[x"), ["kg:[x"]);
    assert_eq!(keys(&mut c, "kg:foo"), ["kg:foo"]);
    assert_eq!(
        keys(&mut c, "KG:*"),
        Vec::<String>::new(),
        "KEYS is case-sensitive"
    );
    assert_eq!(keys(&mut c, "kg:nomatch*"), Vec::<String>::new());
    assert_eq!(
        c.error(&["KEYS"]),
        "ERR wrong number of arguments for 'keys' command"
    );
    assert_eq!(
        c.error(&["KEYS", "a", "b"]),
        "ERR wrong number of arguments for 'keys' command"
    );
}

/// One SCAN call: (next cursor, keys).
fn scan_page<A: AsRef<[u8]>>(c: &mut Raw, args: &[A]) -> (Vec<u8>, Vec<Vec<u8>>) {
    match c.call(args) {
        R::Arr(mut items) => {
            assert_eq!(items.len(), 2, "SCAN reply shape");
            let keys = match items.pop().unwrap() {
                R::Arr(keys) => keys
                    .into_iter()
                    .map(|k| match k {
                        R::Bulk(b) => b,
                        other => panic!("SCAN key {other:?}"),
                    })
                    .collect(),
                other => panic!("SCAN keys {other:?}"),
            };
            let cursor = match items.pop().unwrap() {
                R::Bulk(b) => b,
                other => panic!("SCAN cursor must be a bulk string: {other:?}"),
            };
            (cursor, keys)
        }
        other => panic!("SCAN {}: {other:?}", show(args)),
    }
}

/// Full SCAN iteration with MATCH/COUNT; bounded number of calls.
fn scan_all(c: &mut Raw, pattern: &str, count: &str) -> Vec<Vec<u8>> {
    let mut cursor = b"0".to_vec();
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let args: Vec<&[u8]> = vec![
            b"SCAN",
            &cursor,
            b"MATCH",
            pattern.as_bytes(),
            b"COUNT",
            count.as_bytes(),
        ];
        let (next, keys) = scan_page(c, &args);
        out.extend(keys);
        if next == b"0" {
            return out;
        }
        cursor = next;
    }
    panic!("SCAN did not finish");
}

#[test]
fn scan_iterates_all_keys() {
    let server = shared();
    let mut c = raw(&server);
    let mut expected = Vec::new();
    let mut batch = vec!["MSET".to_string()];
    for i in 0..500 {
        let k = format!("sc:{i:04}");
        batch.push(k.clone());
        batch.push(i.to_string());
        expected.push(k.into_bytes());
    }
    assert_eq!(c.call(&batch), ok());
    assert_eq!(c.call(&["SET", "scx:other", "1"]), ok());
    expected.sort();

    for count in ["1", "7", "100", "10000"] {
        let mut got = scan_all(&mut c, "sc:*", count);
        got.sort();
        got.dedup();
        assert_eq!(got, expected, "SCAN MATCH sc:* COUNT {count}");
    }
    let mut got = scan_all(&mut c, "sc:000?", "3");
    got.sort();
    got.dedup();
    let want: Vec<Vec<u8>> = (0..10).map(|i| format!("sc:{i:04}").into_bytes()).collect();
    assert_eq!(got, want);
    assert!(scan_all(&mut c, "sc:nomatch*", "50").is_empty());

    // Plain SCAN 0 (no options) returns a well-formed page.
    let _ = scan_page(&mut c, &["SCAN", "0"]);
    let _ = scan_page(&mut c, &["scan", "0", "count", "5", "match", "sc:*"]);

    assert_eq!(
        c.error(&["SCAN"]),
        "ERR wrong number of arguments for 'scan' command"
    );
    assert_eq!(c.error(&["SCAN", "0", "COUNT", "0"]), "ERR syntax error");
    assert_eq!(c.error(&["SCAN", "0", "COUNT", "-1"]), "ERR syntax error");
    assert_eq!(
        c.error(&["SCAN", "0", "COUNT", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(c.error(&["SCAN", "0", "MATCH"]), "ERR syntax error");
    assert_eq!(c.error(&["SCAN", "0", "FOO", "bar"]), "ERR syntax error");
}

#[test]
fn scan_returns_stable_keys_despite_concurrent_writes() {
    // Every key present for the whole iteration is returned at least once,
    // even while other keys are added and removed between calls.
    let server = shared();
    let mut c = raw(&server);
    let mut w = raw(&server);
    let mut stable = Vec::new();
    let mut batch = vec!["MSET".to_string()];
    for i in 0..300 {
        let k = format!("scw:s{i:03}");
        batch.push(k.clone());
        batch.push("v".into());
        stable.push(k.into_bytes());
    }
    assert_eq!(c.call(&batch), ok());
    let mut cursor = b"0".to_vec();
    let mut seen = std::collections::HashSet::new();
    let mut step = 0u32;
    loop {
        let args: Vec<&[u8]> = vec![b"SCAN", &cursor, b"MATCH", b"scw:*", b"COUNT", b"10"];
        let (next, keys) = scan_page(&mut c, &args);
        seen.extend(keys);
        // Churn: add keys sorting before, between and after the stable ones,
        // and delete some of the ones added earlier.
        for j in 0..5 {
            let n = step * 5 + j;
            assert_eq!(w.call(&["SET", &format!("scw:a{n:05}"), "x"]), ok());
            assert_eq!(
                w.call(&["SET", &format!("scw:s{:03}x{n}", n % 300), "x"]),
                ok()
            );
            assert_eq!(w.call(&["SET", &format!("scw:z{n:05}"), "x"]), ok());
            if n >= 3 {
                assert_eq!(w.call(&["DEL", &format!("scw:a{:05}", n - 3)]), int(1));
            }
        }
        step += 1;
        assert!(step < 10_000, "SCAN did not finish");
        if next == b"0" {
            break;
        }
        cursor = next;
    }
    for k in &stable {
        assert!(
            seen.contains(k),
            "SCAN missed {}",
            String::from_utf8_lossy(k)
        );
    }
}

// ---------------------------------------------------------------------------
// Expiry
// ---------------------------------------------------------------------------

#[test]
fn expire_ttl_persist() {
    let server = shared();
    let mut c = raw(&server);
    assert_eq!(c.call(&["TTL", "ex:none"]), int(-2));
    assert_eq!(c.call(&["PTTL", "ex:none"]), int(-2));
    assert_eq!(c.call(&["EXPIRE", "ex:none", "10"]), int(0));
    assert_eq!(c.call(&["PERSIST", "ex:none"]), int(0));
    assert_eq!(c.call(&["SET", "ex:a", "v"]), ok());
    assert_eq!(c.call(&["TTL", "ex:a"]), int(-1));
    assert_eq!(c.call(&["PTTL", "ex:a"]), int(-1));
    assert_eq!(c.call(&["PERSIST", "ex:a"]), int(0));
    assert_eq!(c.call(&["EXPIRE", "ex:a", "100"]), int(1));
    assert_ttl_near(&mut c, "ex:a", 100);
    assert_eq!(c.call(&["PEXPIRE", "ex:a", "200000"]), int(1));
    let p = pttl(&mut c, "ex:a");
    assert!((195_000..=200_000).contains(&p), "PTTL {p}");
    let at = now_ms() / 1000 + 300;
    assert_eq!(c.call(&["EXPIREAT", "ex:a", &at.to_string()]), int(1));
    assert_ttl_near(&mut c, "ex:a", 300);
    let pat = now_ms() + 400_000;
    assert_eq!(c.call(&["PEXPIREAT", "ex:a", &pat.to_string()]), int(1));
    assert_ttl_near(&mut c, "ex:a", 400);
    assert_eq!(c.call(&["PERSIST", "ex:a"]), int(1));
    assert_eq!(c.call(&["TTL", "ex:a"]), int(-1));
    assert_eq!(c.call(&["GET", "ex:a"]), bulk("v"));

    // Zero, negative and past times delete the key at once.
    for args in [
        vec!["EXPIRE", "ex:d", "0"],
        vec!["EXPIRE", "ex:d", "-1"],
        vec!["PEXPIRE", "ex:d", "-100"],
        vec!["EXPIREAT", "ex:d", "1"],
        vec!["PEXPIREAT", "ex:d", "1"],
    ] {
        assert_eq!(c.call(&["SET", "ex:d", "v"]), ok());
        assert_eq!(c.call(&args), int(1), "{}", args.join(" "));
        assert_eq!(c.call(&["EXISTS", "ex:d"]), int(0), "{}", args.join(" "));
        assert_eq!(c.call(&["TTL", "ex:d"]), int(-2));
    }

    // A far-future absolute time.
    assert_eq!(c.call(&["SET", "ex:f", "v"]), ok());
    assert_eq!(c.call(&["EXPIREAT", "ex:f", "4102444800"]), int(1));
    let t = ttl(&mut c, "ex:f");
    let want = 4102444800 - now_ms() / 1000;
    assert!((want - 3..=want + 1).contains(&t), "TTL {t} vs {want}");
}

#[test]
fn expire_options_nx_xx_gt_lt() {
    let server = shared();
    let mut c = raw(&server);
    assert_eq!(c.call(&["SET", "eo:k", "v", "EX", "100"]), ok());
    assert_eq!(c.call(&["EXPIRE", "eo:k", "100", "NX"]), int(0));
    assert_eq!(c.call(&["EXPIRE", "eo:k", "200", "XX"]), int(1));
    assert_ttl_near(&mut c, "eo:k", 200);
    assert_eq!(c.call(&["EXPIRE", "eo:k", "50", "GT"]), int(0));
    assert_eq!(c.call(&["EXPIRE", "eo:k", "50", "LT"]), int(1));
    assert_ttl_near(&mut c, "eo:k", 50);
    assert_eq!(c.call(&["EXPIRE", "eo:k", "500", "gt"]), int(1));
    assert_ttl_near(&mut c, "eo:k", 500);
    assert_eq!(c.call(&["EXPIRE", "eo:k", "600", "LT"]), int(0));
    assert_ttl_near(&mut c, "eo:k", 500);

    // Without a TTL: NX sets, XX does not, GT does not (no TTL counts as
    // infinite), LT does.
    assert_eq!(c.call(&["PERSIST", "eo:k"]), int(1));
    assert_eq!(c.call(&["EXPIRE", "eo:k", "10", "XX"]), int(0));
    assert_eq!(c.call(&["EXPIRE", "eo:k", "10", "GT"]), int(0));
    assert_eq!(c.call(&["TTL", "eo:k"]), int(-1));
    assert_eq!(c.call(&["EXPIRE", "eo:k", "10", "LT"]), int(1));
    assert_ttl_near(&mut c, "eo:k", 10);
    assert_eq!(c.call(&["PERSIST", "eo:k"]), int(1));
    assert_eq!(c.call(&["EXPIRE", "eo:k", "20", "NX"]), int(1));
    assert_ttl_near(&mut c, "eo:k", 20);

    // The same options on the other variants.
    assert_eq!(c.call(&["PEXPIRE", "eo:k", "30000", "NX"]), int(0));
    assert_eq!(c.call(&["PEXPIRE", "eo:k", "30000", "GT"]), int(1));
    assert_ttl_near(&mut c, "eo:k", 30);
    let at = (now_ms() / 1000 + 40).to_string();
    assert_eq!(c.call(&["EXPIREAT", "eo:k", &at, "LT"]), int(0));
    assert_eq!(c.call(&["EXPIREAT", "eo:k", &at, "XX"]), int(1));
    assert_ttl_near(&mut c, "eo:k", 40);
    let pat = (now_ms() + 10_000).to_string();
    assert_eq!(c.call(&["PEXPIREAT", "eo:k", &pat, "LT"]), int(1));
    assert_ttl_near(&mut c, "eo:k", 10);
    // Missing key: 0 whatever the option.
    for opt in ["NX", "XX", "GT", "LT"] {
        assert_eq!(c.call(&["EXPIRE", "eo:none", "10", opt]), int(0));
    }
    assert_eq!(c.call(&["EXISTS", "eo:none"]), int(0));
}

#[test]
fn expire_errors() {
    let server = shared();
    let mut c = raw(&server);
    assert_eq!(c.call(&["SET", "ee:k", "v", "EX", "100"]), ok());
    let incompatible = "ERR NX and XX, GT or LT options at the same time are not compatible";
    let cases: &[(&[&str], &str)] = &[
        (&["EXPIRE", "ee:k", "10", "NX", "XX"], incompatible),
        (&["EXPIRE", "ee:k", "10", "NX", "GT"], incompatible),
        (&["EXPIRE", "ee:k", "10", "LT", "NX"], incompatible),
        (
            &["EXPIRE", "ee:k", "10", "GT", "LT"],
            "ERR GT and LT options at the same time are not compatible",
        ),
        (
            &["EXPIRE", "ee:k", "10", "FOO"],
            "ERR Unsupported option FOO",
        ),
        (
            &["EXPIRE", "ee:k", "10", "NX", "extra"],
            "ERR Unsupported option extra",
        ),
        (
            &["EXPIRE", "ee:k", "abc"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["EXPIRE", "ee:k", "1.5"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["PEXPIRE", "ee:k", "x"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["EXPIREAT", "ee:k", "x"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["PEXPIREAT", "ee:k", "x"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["EXPIRE", "ee:k", "9223372036854775807"],
            "ERR invalid expire time in 'expire' command",
        ),
        (
            &["EXPIRE", "ee:k", "9223372036854775"],
            "ERR invalid expire time in 'expire' command",
        ),
        (
            &["PEXPIRE", "ee:k", "9223372036854775807"],
            "ERR invalid expire time in 'pexpire' command",
        ),
        (
            &["EXPIREAT", "ee:k", "9223372036854775807"],
            "ERR invalid expire time in 'expireat' command",
        ),
        (
            &["EXPIRE"],
            "ERR wrong number of arguments for 'expire' command",
        ),
        (
            &["EXPIRE", "ee:k"],
            "ERR wrong number of arguments for 'expire' command",
        ),
        (
            &["PEXPIRE", "ee:k"],
            "ERR wrong number of arguments for 'pexpire' command",
        ),
        (
            &["EXPIREAT", "ee:k"],
            "ERR wrong number of arguments for 'expireat' command",
        ),
        (
            &["PEXPIREAT", "ee:k"],
            "ERR wrong number of arguments for 'pexpireat' command",
        ),
        (&["TTL"], "ERR wrong number of arguments for 'ttl' command"),
        (
            &["TTL", "a", "b"],
            "ERR wrong number of arguments for 'ttl' command",
        ),
        (
            &["PTTL"],
            "ERR wrong number of arguments for 'pttl' command",
        ),
        (
            &["PERSIST"],
            "ERR wrong number of arguments for 'persist' command",
        ),
    ];
    for (args, expected) in cases {
        assert_eq!(c.error(args), *expected, "{}", args.join(" "));
    }
    // None of that touched the key.
    assert_ttl_near(&mut c, "ee:k", 100);
    assert_eq!(c.call(&["GET", "ee:k"]), bulk("v"));
}

#[test]
fn short_px_expiry_is_never_returned() {
    let server = shared();
    let mut c = raw(&server);
    assert_eq!(c.call(&["SET", "sp:k", "v", "PX", "150"]), ok());
    assert_eq!(c.call(&["SET", "sp:k2", "v2", "PX", "150"]), ok());
    assert_eq!(c.call(&["SET", "sp:n", "5", "PX", "150"]), ok());
    assert_eq!(c.call(&["SET", "sp:keep", "v"]), ok());
    // While it lives, the value is there (bounded: the TTL is positive or the
    // key has expired, never anything else).
    match c.call(&["GET", "sp:k"]) {
        R::Bulk(v) => assert_eq!(v, b"v"),
        R::NullBulk => {}
        other => panic!("GET of a short-lived key: {other:?}"),
    }
    poll_until("sp:k expires", Duration::from_secs(10), || {
        c.call(&["GET", "sp:k"]) == R::NullBulk
    });
    // Once GET says gone, everything agrees, and stays so.
    poll_until("sp:k2 and sp:n expire", Duration::from_secs(10), || {
        c.call(&["EXISTS", "sp:k2", "sp:n"]) == int(0)
    });
    assert_eq!(c.call(&["EXISTS", "sp:k"]), int(0));
    assert_eq!(c.call(&["TTL", "sp:k"]), int(-2));
    assert_eq!(c.call(&["PTTL", "sp:k"]), int(-2));
    assert_eq!(c.call(&["STRLEN", "sp:k"]), int(0));
    assert_eq!(c.call(&["TYPE", "sp:k"]), R::Simple("none".into()));
    assert_eq!(
        c.call(&["MGET", "sp:k", "sp:keep", "sp:k2"]),
        arr(vec![R::NullBulk, bulk("v"), R::NullBulk])
    );
    assert_eq!(c.call(&["KEYS", "sp:*"]), bulks(&["sp:keep"]));
    let mut scanned = scan_all(&mut c, "sp:*", "100");
    scanned.sort();
    scanned.dedup();
    assert_eq!(scanned, vec![b"sp:keep".to_vec()]);
    assert_eq!(c.call(&["GETDEL", "sp:k"]), R::NullBulk);
    assert_eq!(c.call(&["GETEX", "sp:k", "PERSIST"]), R::NullBulk);
    assert_eq!(c.call(&["SET", "sp:k", "new", "XX"]), R::NullBulk);
    assert_eq!(c.call(&["SETNX", "sp:k", "fresh"]), int(1));
    assert_eq!(c.call(&["GET", "sp:k"]), bulk("fresh"));
    assert_eq!(c.call(&["TTL", "sp:k"]), int(-1), "a new key has no TTL");
    // Numbers restart from zero, appends from empty.
    assert_eq!(c.call(&["INCR", "sp:n"]), int(1));
    assert_eq!(c.call(&["APPEND", "sp:k2", "x"]), int(1));
    assert_eq!(c.call(&["GET", "sp:k2"]), bulk("x"));
    assert_eq!(c.error(&["RENAME", "sp:gone", "sp:x"]), "ERR no such key");

    // PEXPIRE on an existing key, then watch it go; RENAME of an expired key fails.
    assert_eq!(c.call(&["SET", "sp:r", "v"]), ok());
    assert_eq!(c.call(&["PEXPIRE", "sp:r", "100"]), int(1));
    poll_until("sp:r expires", Duration::from_secs(10), || {
        c.call(&["EXISTS", "sp:r"]) == int(0)
    });
    assert_eq!(c.error(&["RENAME", "sp:r", "sp:r2"]), "ERR no such key");
    assert_eq!(c.call(&["EXPIRE", "sp:r", "100"]), int(0));
    assert_eq!(c.call(&["PERSIST", "sp:r"]), int(0));
}

#[test]
fn ttl_values_count_down() {
    let server = shared();
    let mut c = raw(&server);
    assert_eq!(c.call(&["SET", "td:k", "v", "PX", "3000"]), ok());
    let first = pttl(&mut c, "td:k");
    assert!((1..=3000).contains(&first), "PTTL {first}");
    poll_until("PTTL decreases", Duration::from_secs(10), || {
        let p = pttl(&mut c, "td:k");
        p < first
    });
    let t = ttl(&mut c, "td:k");
    assert!(t == 3 || t == 2 || t == 1 || t == 0 || t == -2, "TTL {t}");
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

#[test]
fn unknown_command_error_format() {
    let server = shared();
    let mut c = raw(&server);
    c.send(&encode(&["foo", "a", "b"]));
    c.expect_bytes(b"-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n");
    c.send(&encode(&["foo"]));
    c.expect_bytes(b"-ERR unknown command 'foo', with args beginning with: \r\n");
    // The command name keeps its case.
    assert_eq!(
        c.error(&["FooBar", "x"]),
        "ERR unknown command 'FooBar', with args beginning with: 'x' "
    );
    assert_eq!(
        c.error(&["foo", "", "x"]),
        "ERR unknown command 'foo', with args beginning with: '' 'x' "
    );
    assert_eq!(
        c.error(&["foo", "a", "b", "c", "d", "e", "f"]),
        "ERR unknown command 'foo', with args beginning with: 'a' 'b' 'c' 'd' 'e' 'f' "
    );
    // The connection is fine afterwards.
    assert_eq!(c.call(&["PING"]), R::Simple("PONG".into()));

    // Over the redis crate too.
    let mut con = server.redis();
    let e = redis::cmd("NOSUCHCMD")
        .arg("x")
        .query::<redis::Value>(&mut con)
        .unwrap_err();
    assert_eq!(e.code(), Some("ERR"));
    assert!(
        redis_err_text(&e).starts_with("ERR unknown command 'NOSUCHCMD'"),
        "{}",
        redis_err_text(&e)
    );
}

#[test]
fn unknown_command_error_is_truncated_and_sanitised() {
    let server = shared();
    let mut c = raw(&server);
    // Redis lists arguments until the list reaches 128 bytes, each cut to
    // what is left of those 128.
    let a200 = "a".repeat(200);
    assert_eq!(
        c.error(&["foo", &a200, "b"]),
        format!(
            "ERR unknown command 'foo', with args beginning with: '{}' ",
            "a".repeat(128)
        )
    );
    let a100 = "a".repeat(100);
    let b100 = "b".repeat(100);
    assert_eq!(
        c.error(&["foo", &a100, &b100, "c"]),
        format!(
            "ERR unknown command 'foo', with args beginning with: '{}' '{}' ",
            a100,
            "b".repeat(25)
        )
    );
    // The command name is cut to 128 bytes.
    let long = "f".repeat(200);
    assert_eq!(
        c.error(&[&long]),
        format!(
            "ERR unknown command '{}', with args beginning with: ",
            "f".repeat(128)
        )
    );
    // CR and LF never reach the error line: they become spaces.
    c.send(&encode(&["foo", "a\r\nb", "c"]));
    c.expect_bytes(b"-ERR unknown command 'foo', with args beginning with: 'a  b' 'c' \r\n");
    assert_eq!(c.call(&["PING"]), R::Simple("PONG".into()));
}

#[test]
fn wrong_number_of_arguments() {
    let server = shared();
    let mut c = raw(&server);
    let cases: &[&[&str]] = &[
        &["GET"],
        &["GET", "a", "b"],
        &["SET", "a"],
        &["SETNX", "a"],
        &["SETEX", "a", "1"],
        &["PSETEX", "a", "1"],
        &["GETSET", "a"],
        &["GETDEL"],
        &["GETEX"],
        &["MGET"],
        &["MSET", "a"],
        &["MSETNX", "a"],
        &["APPEND", "a"],
        &["STRLEN"],
        &["INCR"],
        &["DECR"],
        &["INCRBY", "a"],
        &["DECRBY", "a"],
        &["INCRBYFLOAT", "a"],
        &["GETRANGE", "a", "0"],
        &["SETRANGE", "a", "0"],
        &["DEL"],
        &["UNLINK"],
        &["EXISTS"],
        &["TYPE"],
        &["RENAME", "a"],
        &["RENAMENX", "a"],
        &["KEYS"],
        &["SCAN"],
        &["EXPIRE", "a"],
        &["PEXPIRE", "a"],
        &["EXPIREAT", "a"],
        &["PEXPIREAT", "a"],
        &["TTL"],
        &["PTTL"],
        &["PERSIST"],
        &["ECHO"],
        &["PING", "a", "b"],
        &["SELECT"],
        &["DBSIZE", "x"],
    ];
    for args in cases {
        assert_eq!(
            c.error(args),
            format!(
                "ERR wrong number of arguments for '{}' command",
                args[0].to_lowercase()
            ),
            "{}",
            args.join(" ")
        );
    }
    // Lower/mixed-case command names give the same lower-case name.
    assert_eq!(
        c.error(&["gEt"]),
        "ERR wrong number of arguments for 'get' command"
    );
}

#[test]
fn strata_non_string_commands_are_unknown() {
    // Only strings exist in strata: other data type commands are unknown
    // commands (Redis would run them).
    let server = shared();
    let mut c = raw(&server);
    for (cmd, args) in [
        ("LPUSH", vec!["l", "a"]),
        ("HSET", vec!["h", "f", "v"]),
        ("SADD", vec!["s", "m"]),
        ("ZADD", vec!["z", "1", "m"]),
        ("XADD", vec!["x", "*", "f", "v"]),
    ] {
        let mut all = vec![cmd];
        all.extend(args.iter());
        let listed: String = args.iter().map(|a| format!("'{a}' ")).collect();
        assert_eq!(
            c.error(&all),
            format!("ERR unknown command '{cmd}', with args beginning with: {listed}")
        );
    }
    assert_eq!(c.call(&["EXISTS", "l", "h", "s", "z", "x"]), int(0));
}

// ---------------------------------------------------------------------------
// Protocol: inline commands, pipelining, partial frames
// ---------------------------------------------------------------------------

#[test]
fn inline_commands() {
    let server = shared();
    let mut c = raw(&server);
    c.send(b"PING\r\n");
    c.expect_bytes(b"+PONG\r\n");
    c.send(b"set il:k v\n");
    c.expect_bytes(b"+OK\r\n");
    c.send(b"get il:k\r\n");
    c.expect_bytes(b"$1\r\nv\r\n");
    c.send(b"  ECHO   spaced   \r\n");
    c.expect_bytes(b"$6\r\nspaced\r\n");
    // Empty lines are ignored.
    c.send(b"\r\n\n\r\nPING\r\n");
    c.expect_bytes(b"+PONG\r\n");
    // Inline and multibulk mixed in one write.
    let mut batch = b"SET il:a 1\r\n".to_vec();
    batch.extend(encode(&["INCR", "il:a"]));
    batch.extend(b"GET il:a\n");
    c.send(&batch);
    c.expect_bytes(b"+OK\r\n:2\r\n$1\r\n2\r\n");
    c.send(b"nosuchcmd x y\r\n");
    c.expect_bytes(b"-ERR unknown command 'nosuchcmd', with args beginning with: 'x' 'y' \r\n");
    c.send(b"GET\r\n");
    c.expect_bytes(b"-ERR wrong number of arguments for 'get' command\r\n");
    // An inline command split over several writes.
    c.send(b"EC");
    std::thread::sleep(Duration::from_millis(20));
    c.send(b"HO pie");
    std::thread::sleep(Duration::from_millis(20));
    c.send(b"ce\r\n");
    c.expect_bytes(b"$5\r\npiece\r\n");
}

#[test]
fn inline_quoted_arguments() {
    // Redis splits inline commands like a shell (sdssplitargs): double
    // quotes with escapes, single quotes verbatim.
    let server = shared();
    let mut c = raw(&server);
    c.send(b"SET \"iq:a b\" \"c\\x41\\n\"\r\n");
    c.expect_bytes(b"+OK\r\n");
    assert_eq!(c.call(&["GET", "iq:a b"]), bulk("cA\n"));
    c.send(b"ECHO 'x y'\r\n");
    c.expect_bytes(b"$3\r\nx y\r\n");
    c.send(b"ECHO \"\"\r\n");
    c.expect_bytes(b"$0\r\n\r\n");
}

#[test]
fn empty_multibulk_requests_are_ignored() {
    let server = shared();
    let mut c = raw(&server);
    c.send(b"*0\r\n");
    c.send(&encode(&["PING"]));
    c.expect_bytes(b"+PONG\r\n");
    c.send(b"*-1\r\n*1\r\n$4\r\nPING\r\n");
    c.expect_bytes(b"+PONG\r\n");
    c.send(b"*0\r\n");
    c.expect_silence(Duration::from_millis(200));
    // An empty command name is an unknown command.
    c.send(b"*1\r\n$0\r\n\r\n");
    c.expect_bytes(b"-ERR unknown command '', with args beginning with: \r\n");
}

#[test]
fn raw_pipelined_batch_in_one_write() {
    let server = shared();
    let mut c = raw(&server);
    let mut batch = Vec::new();
    let mut expected = Vec::new();
    for i in 0..300 {
        let k = format!("pl:{i}");
        batch.extend(encode(&["SET", &k, &i.to_string()]));
        expected.extend_from_slice(b"+OK\r\n");
        batch.extend(encode(&["INCR", &k]));
        expected.extend_from_slice(format!(":{}\r\n", i + 1).as_bytes());
        batch.extend(encode(&["GET", &k]));
        let v = (i + 1).to_string();
        expected.extend_from_slice(format!("${}\r\n{}\r\n", v.len(), v).as_bytes());
        batch.extend(encode(&["GET", "pl:missing"]));
        expected.extend_from_slice(b"$-1\r\n");
        batch.extend(encode(&["BADCMD"]));
        expected
            .extend_from_slice(b"-ERR unknown command 'BADCMD', with args beginning with: \r\n");
    }
    // Write from another thread so a server that answers while we still
    // write cannot deadlock the test on full socket buffers.
    let mut writer = c.writer.try_clone().unwrap();
    let t = std::thread::spawn(move || writer.write_all(&batch).unwrap());
    c.expect_bytes(&expected);
    t.join().unwrap();
}

#[test]
fn frames_split_at_every_byte() {
    // A request delivered one byte at a time is still one request.
    let server = shared();
    let mut c = raw(&server);
    let mut req = encode(&["SET", "sb:k", "hello\r\nworld"]);
    req.extend(encode(&["GET", "sb:k"]));
    for b in &req {
        c.send(std::slice::from_ref(b));
    }
    c.expect_bytes(b"+OK\r\n$12\r\nhello\r\nworld\r\n");
}

#[test]
fn redis_pipeline_1000_sets_then_mget() {
    let server = shared();
    let mut con = server.redis();
    let mut p = redis::pipe();
    for i in 0..1000 {
        p.cmd("SET")
            .arg(format!("rp:{i}"))
            .arg(format!("value-{i}"))
            .ignore();
    }
    p.query::<()>(&mut con).expect("pipelined SETs");
    let keys: Vec<String> = (0..1000).map(|i| format!("rp:{i}")).collect();
    let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut con).unwrap();
    assert_eq!(values.len(), 1000);
    for (i, v) in values.iter().enumerate() {
        assert_eq!(v.as_deref(), Some(format!("value-{i}").as_str()));
    }
    // A mixed pipeline with replies in order, including an error in the middle.
    let mut p = redis::pipe();
    p.cmd("INCR").arg("rp:ctr");
    p.cmd("INCR").arg("rp:ctr");
    p.cmd("GET").arg("rp:0");
    p.cmd("GET").arg("rp:nope");
    let (a, b, g, n): (i64, i64, String, Option<String>) = p.query(&mut con).unwrap();
    assert_eq!((a, b, g.as_str(), n), (1, 2, "value-0", None));

    let mut p = redis::pipe();
    p.cmd("SET").arg("rp:e").arg("x");
    p.cmd("INCR").arg("rp:e");
    p.cmd("GET").arg("rp:e");
    let e = p.query::<redis::Value>(&mut con).unwrap_err();
    assert!(
        e.to_string()
            .contains("value is not an integer or out of range"),
        "{e}"
    );
    // The connection is still usable and in sync.
    let v: String = redis::cmd("GET").arg("rp:e").query(&mut con).unwrap();
    assert_eq!(v, "x");

    // The same over RESP3.
    let mut con3 = server.redis_resp3();
    let mut p = redis::pipe();
    for i in 0..1000 {
        p.cmd("SET").arg(format!("rp3:{i}")).arg(i).ignore();
    }
    p.query::<()>(&mut con3).unwrap();
    let keys: Vec<String> = (0..1000).map(|i| format!("rp3:{i}")).collect();
    let values: Vec<i64> = redis::cmd("MGET").arg(&keys).query(&mut con3).unwrap();
    assert_eq!(values, (0..1000).collect::<Vec<i64>>());
}

// ---------------------------------------------------------------------------
// Binary safety and large values
// ---------------------------------------------------------------------------

#[test]
fn binary_keys_and_values() {
    let server = shared();
    let mut c = raw(&server);
    let keys: Vec<Vec<u8>> = vec![
        b"bin:\x00".to_vec(),
        b"bin:\x00\x00\x01".to_vec(),
        b"bin:\xff\xfe\x80".to_vec(),
        b"bin:a b\r\nc".to_vec(),
        b"bin:\xc3\x28".to_vec(), // invalid UTF-8
        "bin:ключ-キー-🔑".as_bytes().to_vec(),
    ];
    for (i, k) in keys.iter().enumerate() {
        let v: Vec<u8> = [&b"\x00val\r\n\xff"[..], &[i as u8], &b"\x00"[..]].concat();
        assert_eq!(c.call(&[&b"SET"[..], k, &v]), ok());
        assert_eq!(c.call(&[&b"GET"[..], k]), R::Bulk(v.clone()));
        assert_eq!(c.call(&[&b"STRLEN"[..], k]), int(v.len() as i64));
        assert_eq!(c.call(&[&b"EXISTS"[..], k]), int(1));
    }
    // Keys that differ only after a NUL are distinct.
    assert_ne!(
        c.call(&[&b"GET"[..], b"bin:\x00"]),
        c.call(&[&b"GET"[..], b"bin:\x00\x00\x01"])
    );
    assert_eq!(c.call(&[&b"GET"[..], b"bin:"]), R::NullBulk);
    // KEYS and SCAN return binary keys unchanged.
    match c.call(&["KEYS", "bin:*"]) {
        R::Arr(items) => {
            let mut got: Vec<R> = items;
            got.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
            let mut want: Vec<R> = keys.iter().map(|k| R::Bulk(k.clone())).collect();
            want.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
            assert_eq!(got, want);
        }
        other => panic!("KEYS: {other:?}"),
    }
    let mut scanned = scan_all(&mut c, "bin:*", "2");
    scanned.sort();
    scanned.dedup();
    let mut want = keys.clone();
    want.sort();
    assert_eq!(scanned, want);
    // Binary values through MSET/MGET, RENAME, GETRANGE, APPEND.
    assert_eq!(
        c.call(&[&b"MSET"[..], b"bin:m1", b"\x00\x01", b"bin:m2", b"\xff"]),
        ok()
    );
    assert_eq!(
        c.call(&[&b"MGET"[..], b"bin:m1", b"bin:m2"]),
        arr(vec![bulk(b"\x00\x01"), bulk(b"\xff")])
    );
    assert_eq!(c.call(&[&b"RENAME"[..], b"bin:m1", b"bin:\x00ren"]), ok());
    assert_eq!(c.call(&[&b"GET"[..], b"bin:\x00ren"]), bulk(b"\x00\x01"));
    assert_eq!(
        c.call(&[&b"GETRANGE"[..], b"bin:\x00ren", b"1", b"1"]),
        bulk(b"\x01")
    );

    // Through the redis crate.
    let mut con = server.redis();
    let key = b"bin:rc\x00\xff".to_vec();
    let val: Vec<u8> = (0..=255u8).collect();
    redis::cmd("SET")
        .arg(&key)
        .arg(&val)
        .query::<()>(&mut con)
        .unwrap();
    let got: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut con).unwrap();
    assert_eq!(got, val);
}

#[test]
fn empty_key_is_a_valid_key() {
    // A server of its own: a failure here must not take the shared one down.
    let server = TestServer::start();
    let mut c = raw(&server);
    assert_eq!(c.call(&["SET", "", "empty-key"]), ok());
    assert_eq!(c.call(&["GET", ""]), bulk("empty-key"));
    assert_eq!(c.call(&["EXISTS", ""]), int(1));
    assert_eq!(c.call(&["APPEND", "", "!"]), int(10));
    assert_eq!(c.call(&["MSET", "", "m", "ek:other", "o"]), ok());
    assert_eq!(c.call(&["MGET", "", "ek:other"]), bulks(&["m", "o"]));
    assert_eq!(c.call(&["RENAME", "", "ek:renamed"]), ok());
    assert_eq!(c.call(&["GET", "ek:renamed"]), bulk("m"));
    assert_eq!(c.call(&["RENAME", "ek:renamed", ""]), ok());
    assert_eq!(c.call(&["INCR", "ek:n"]), int(1));
    assert_eq!(c.call(&["DEL", ""]), int(1));
    assert_eq!(c.call(&["GET", ""]), R::NullBulk);
    assert_eq!(c.call(&["INCR", ""]), int(1));
    assert_eq!(c.call(&["DEL", ""]), int(1));
    // Writes to other keys still work afterwards.
    assert_eq!(c.call(&["SET", "ek:after", "v"]), ok());
    assert_eq!(c.call(&["GET", "ek:after"]), bulk("v"));
}

#[test]
fn one_mib_values() {
    let server = shared();
    let mut con = server.redis();
    let big: Vec<u8> = (0..(1usize << 20)).map(|i| (i * 31 % 251) as u8).collect();
    redis::cmd("SET")
        .arg("mib:a")
        .arg(&big)
        .query::<()>(&mut con)
        .unwrap();
    let got: Vec<u8> = redis::cmd("GET").arg("mib:a").query(&mut con).unwrap();
    assert!(got == big, "1 MiB value round trip");
    let n: i64 = redis::cmd("STRLEN").arg("mib:a").query(&mut con).unwrap();
    assert_eq!(n, 1 << 20);
    let tail: Vec<u8> = redis::cmd("GETRANGE")
        .arg("mib:a")
        .arg(-10)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    assert_eq!(tail, big[big.len() - 10..]);
    let n: i64 = redis::cmd("APPEND")
        .arg("mib:a")
        .arg(&big)
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 2 << 20);
    let got: Vec<u8> = redis::cmd("GET").arg("mib:a").query(&mut con).unwrap();
    assert!(got[..big.len()] == big[..] && got[big.len()..] == big[..]);
    // Several big values in one MSET and one MGET.
    let b2: Vec<u8> = big.iter().map(|b| b ^ 0x5a).collect();
    redis::cmd("MSET")
        .arg("mib:x")
        .arg(&big)
        .arg("mib:y")
        .arg(&b2)
        .query::<()>(&mut con)
        .unwrap();
    let got: Vec<Vec<u8>> = redis::cmd("MGET")
        .arg("mib:x")
        .arg("mib:y")
        .query(&mut con)
        .unwrap();
    assert!(got[0] == big && got[1] == b2);

    // Raw: exact framing of a 1 MiB reply.
    let mut c = raw(&server);
    c.send(&encode(&["GET", "mib:x"]));
    c.expect_bytes(format!("${}\r\n", big.len()).as_bytes());
    c.expect_bytes(&big);
    c.expect_bytes(b"\r\n");
    c.send(&encode(&["PING"]));
    c.expect_bytes(b"+PONG\r\n");
}

// ---------------------------------------------------------------------------
// RESP3 through the redis crate
// ---------------------------------------------------------------------------

#[test]
fn resp3_reply_types() {
    use redis::Value as V;
    let server = shared();
    let mut con = server.redis_resp3();
    let q = |con: &mut redis::Connection, args: &[&str]| -> V {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query::<V>(con).unwrap()
    };
    assert_eq!(q(&mut con, &["GET", "r3:missing"]), V::Nil);
    assert_eq!(q(&mut con, &["SET", "r3:a", "1"]), V::Okay);
    assert_eq!(q(&mut con, &["SET", "r3:a", "2", "NX"]), V::Nil);
    assert_eq!(q(&mut con, &["GET", "r3:a"]), V::BulkString(b"1".to_vec()));
    assert_eq!(q(&mut con, &["INCR", "r3:a"]), V::Int(2));
    assert_eq!(q(&mut con, &["EXISTS", "r3:a"]), V::Int(1));
    assert_eq!(q(&mut con, &["TTL", "r3:a"]), V::Int(-1));
    assert_eq!(
        q(&mut con, &["TYPE", "r3:a"]),
        V::SimpleString("string".into())
    );
    assert_eq!(
        q(&mut con, &["MGET", "r3:a", "r3:missing"]),
        V::Array(vec![V::BulkString(b"2".to_vec()), V::Nil])
    );
    assert_eq!(
        q(&mut con, &["KEYS", "r3:*"]),
        V::Array(vec![V::BulkString(b"r3:a".to_vec())])
    );
    match q(&mut con, &["SCAN", "0", "MATCH", "r3:*", "COUNT", "1000"]) {
        V::Array(items) => {
            assert_eq!(items.len(), 2);
            assert!(matches!(items[0], V::BulkString(_)));
            assert!(matches!(items[1], V::Array(_)));
        }
        other => panic!("SCAN over RESP3: {other:?}"),
    }
    match q(&mut con, &["CONFIG", "GET", "save"]) {
        V::Map(pairs) => assert_eq!(
            pairs,
            vec![(V::BulkString(b"save".to_vec()), V::BulkString(vec![]))]
        ),
        other => panic!("CONFIG GET over RESP3: {other:?}"),
    }
    let info: String = redis::cmd("INFO").arg("server").query(&mut con).unwrap();
    assert!(info.starts_with("# Server"), "{info}");
    assert_eq!(q(&mut con, &["PING"]), V::SimpleString("PONG".into()));
    assert_eq!(q(&mut con, &["DEL", "r3:a"]), V::Int(1));
    let e = redis::cmd("GET").query::<V>(&mut con).unwrap_err();
    assert_eq!(
        redis_err_text(&e),
        "ERR wrong number of arguments for 'get' command"
    );
}

// ---------------------------------------------------------------------------
// Strata's own commands
// ---------------------------------------------------------------------------

#[test]
fn strata_range_basic() {
    let server = shared();
    let mut c = raw(&server);
    assert_eq!(
        c.call(&[
            "MSET", "rg:b", "2", "rg:a", "1", "rg:d", "4", "rg:c", "3", "rg:e", "5"
        ]),
        ok()
    );
    assert_eq!(c.call(&["SET", "rh:x", "outside"]), ok());
    c.send(&encode(&["RANGE", "rg:a", "rg:c"]));
    c.expect_bytes(
        b"*6\r\n$4\r\nrg:a\r\n$1\r\n1\r\n$4\r\nrg:b\r\n$1\r\n2\r\n$4\r\nrg:c\r\n$1\r\n3\r\n",
    );
    // Bounds need not exist; both ends inclusive.
    assert_eq!(
        c.call(&["RANGE", "rg:", "rg:z"]),
        bulks(&[
            "rg:a", "1", "rg:b", "2", "rg:c", "3", "rg:d", "4", "rg:e", "5"
        ])
    );
    assert_eq!(c.call(&["RANGE", "rg:e", "rg:e"]), bulks(&["rg:e", "5"]));
    assert_eq!(
        c.call(&["RANGE", "rg:bb", "rg:d"]),
        bulks(&["rg:c", "3", "rg:d", "4"])
    );
    assert_eq!(c.call(&["RANGE", "rg:x", "rg:z"]), arr(vec![]));
    assert_eq!(
        c.call(&["RANGE", "rg:e", "rg:a"]),
        arr(vec![]),
        "start > end is empty"
    );
    // LIMIT counts pairs.
    assert_eq!(
        c.call(&["RANGE", "rg:a", "rg:z", "LIMIT", "2"]),
        bulks(&["rg:a", "1", "rg:b", "2"])
    );
    assert_eq!(
        c.call(&["range", "rg:a", "rg:z", "limit", "1"]),
        bulks(&["rg:a", "1"])
    );
    assert_eq!(
        c.call(&["RANGE", "rg:a", "rg:z", "LIMIT", "100"]),
        bulks(&[
            "rg:a", "1", "rg:b", "2", "rg:c", "3", "rg:d", "4", "rg:e", "5"
        ])
    );
    // Deleted keys disappear from ranges.
    assert_eq!(c.call(&["DEL", "rg:c"]), int(1));
    assert_eq!(
        c.call(&["RANGE", "rg:b", "rg:d"]),
        bulks(&["rg:b", "2", "rg:d", "4"])
    );

    assert_eq!(
        c.error(&["RANGE", "rg:a"]),
        "ERR wrong number of arguments for 'range' command"
    );
    assert_eq!(
        c.error(&["RANGE"]),
        "ERR wrong number of arguments for 'range' command"
    );
    assert_eq!(
        c.error(&["RANGE", "rg:a", "rg:z", "LIMIT", "abc"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        c.error(&["RANGE", "rg:a", "rg:z", "LIMIT"]),
        "ERR syntax error"
    );
    assert_eq!(
        c.error(&["RANGE", "rg:a", "rg:z", "FOO", "1"]),
        "ERR syntax error"
    );

    // RESP3: still a flat array.
    let mut c3 = raw3(&server);
    assert_eq!(
        c3.call(&["RANGE", "rg:a", "rg:b"]),
        bulks(&["rg:a", "1", "rg:b", "2"])
    );
}

#[test]
fn strata_range_is_in_unsigned_byte_order() {
    let server = shared();
    let mut c = raw(&server);
    let keys: Vec<&[u8]> = vec![
        b"rb:\xff",
        b"rb:\x80",
        b"rb:\x7f",
        b"rb:\x00",
        b"rb:",
        b"rb:A",
        b"rb:a",
        b"rb:aa",
        b"rb:\x00\x00",
        b"rb:B",
    ];
    for k in &keys {
        assert_eq!(c.call(&[&b"SET"[..], k, k]), ok());
    }
    let mut sorted = keys.clone();
    sorted.sort();
    let want: Vec<R> = sorted.iter().flat_map(|k| [bulk(k), bulk(k)]).collect();
    assert_eq!(c.call(&[&b"RANGE"[..], b"rb:", b"rb:\xff"]), arr(want));
    // Many keys: strictly increasing, complete.
    let mut batch = vec!["MSET".to_string()];
    for i in (0..400).rev() {
        batch.push(format!("rnum:{i:05}"));
        batch.push(i.to_string());
    }
    assert_eq!(c.call(&batch), ok());
    match c.call(&["RANGE", "rnum:", "rnum:~"]) {
        R::Arr(items) => {
            assert_eq!(items.len(), 800);
            for (i, pair) in items.chunks(2).enumerate() {
                assert_eq!(pair[0], bulk(format!("rnum:{i:05}")));
                assert_eq!(pair[1], bulk(i.to_string()));
            }
        }
        other => panic!("RANGE: {other:?}"),
    }
    match c.call(&["RANGE", "rnum:00100", "rnum:00199", "LIMIT", "50"]) {
        R::Arr(items) => {
            assert_eq!(items.len(), 100);
            assert_eq!(items[0], bulk("rnum:00100"));
            assert_eq!(items[98], bulk("rnum:00149"));
        }
        other => panic!("RANGE LIMIT: {other:?}"),
    }
}

#[test]
fn strata_range_skips_expired_keys() {
    let server = shared();
    let mut c = raw(&server);
    assert_eq!(c.call(&["SET", "rx:a", "1"]), ok());
    assert_eq!(c.call(&["SET", "rx:b", "2", "PX", "100"]), ok());
    assert_eq!(c.call(&["SET", "rx:c", "3"]), ok());
    poll_until("rx:b expires", Duration::from_secs(10), || {
        c.call(&["EXISTS", "rx:b"]) == int(0)
    });
    assert_eq!(
        c.call(&["RANGE", "rx:a", "rx:z"]),
        bulks(&["rx:a", "1", "rx:c", "3"])
    );
    assert_eq!(
        c.call(&["RANGE", "rx:a", "rx:z", "LIMIT", "2"]),
        bulks(&["rx:a", "1", "rx:c", "3"]),
        "LIMIT counts live pairs only"
    );
}

#[test]
fn strata_command_aliases() {
    let server = shared();
    let mut c = raw(&server);
    c.send(&encode(&["PUT", "al:a", "hello world"]));
    c.expect_bytes(b"+OK\r\n");
    assert_eq!(c.call(&["READ", "al:a"]), bulk("hello world"));
    assert_eq!(c.call(&["GET", "al:a"]), bulk("hello world"));
    assert_eq!(c.call(&["READ", "al:none"]), R::NullBulk);
    assert_eq!(c.call(&["put", "al:a", "v2"]), ok());
    assert_eq!(c.call(&["read", "al:a"]), bulk("v2"));
    assert_eq!(c.call(&["DELETE", "al:a"]), int(1));
    assert_eq!(c.call(&["DELETE", "al:a"]), int(0));
    assert_eq!(c.call(&["EXISTS", "al:a"]), int(0));
    assert_eq!(c.call(&["SET", "al:m", "x"]), ok());
    assert_eq!(c.call(&["DELETE", "al:m", "al:none"]), int(1));

    assert_eq!(
        c.call(&["BATCHPUT", "al:b1", "1", "al:b2", "2", "al:b3", "3"]),
        ok()
    );
    assert_eq!(
        c.call(&["MGET", "al:b1", "al:b2", "al:b3"]),
        bulks(&["1", "2", "3"])
    );
    assert_eq!(
        c.call(&["READRANGE", "al:b1", "al:b2"]),
        bulks(&["al:b1", "1", "al:b2", "2"])
    );
    assert_eq!(
        c.call(&["READRANGE", "al:b1", "al:b9", "LIMIT", "1"]),
        bulks(&["al:b1", "1"])
    );
    // PUT replaces the TTL like SET.
    assert_eq!(c.call(&["SET", "al:t", "x", "EX", "100"]), ok());
    assert_eq!(c.call(&["PUT", "al:t", "y"]), ok());
    assert_eq!(ttl(&mut c, "al:t"), -1);

    assert_eq!(
        c.error(&["BATCHPUT", "al:x", "1", "al:y"]),
        "ERR wrong number of arguments for 'batchput' command"
    );
    assert_eq!(
        c.call(&["EXISTS", "al:x", "al:y"]),
        int(0),
        "failed BATCHPUT stored nothing"
    );
    assert_eq!(
        c.error(&["PUT", "al:x"]),
        "ERR wrong number of arguments for 'put' command"
    );
    assert_eq!(
        c.error(&["READ"]),
        "ERR wrong number of arguments for 'read' command"
    );
    assert_eq!(
        c.error(&["DELETE"]),
        "ERR wrong number of arguments for 'delete' command"
    );
    assert_eq!(
        c.error(&["READRANGE", "a"]),
        "ERR wrong number of arguments for 'readrange' command"
    );
}

#[test]
fn strata_batchput_is_atomic_for_readers() {
    // A reader never sees part of a BATCHPUT / MSET.
    let server = shared();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let addr = server.resp_addr;
    let stop2 = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut w = Raw::connect(addr);
        let mut n = 0u64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) && n < 20_000 {
            let v = n.to_string();
            let cmd = if n.is_multiple_of(2) {
                "BATCHPUT"
            } else {
                "MSET"
            };
            assert_eq!(w.call(&[cmd, "at:a", &v, "at:b", &v, "at:c", &v]), ok());
            n += 1;
        }
    });
    let mut r = raw(&server);
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut checks = 0;
    while Instant::now() < deadline {
        match r.call(&["MGET", "at:a", "at:b", "at:c"]) {
            R::Arr(items) => {
                assert!(
                    items.iter().all(|i| *i == items[0]),
                    "torn batch write observed: {items:?}"
                );
            }
            other => panic!("MGET: {other:?}"),
        }
        match r.call(&["RANGE", "at:a", "at:c"]) {
            R::Arr(items) if items.is_empty() => {}
            R::Arr(items) => {
                assert_eq!(items.len(), 6, "{items:?}");
                assert!(
                    items[1] == items[3] && items[3] == items[5],
                    "torn batch write observed by RANGE: {items:?}"
                );
            }
            other => panic!("RANGE: {other:?}"),
        }
        checks += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().expect("writer thread");
    assert!(checks > 0);
}

/// The read cache (`--read-cache-size-bytes`) through a real server: a
/// cached GET follows every kind of change (SET, APPEND, INCR, DEL, expiry,
/// RENAME, MSET, FLUSHALL) at once, and INFO reports its use.
#[test]
fn strata_read_cache_follows_every_change() {
    let server = TestServer::start_with(&["--read-cache-size-bytes", "1048576"]);
    let mut c = raw(&server);
    let get_twice = |c: &mut Raw, key: &str| {
        // The first GET may fill the cache; the second is served from it.
        let first = c.call(&["GET", key]);
        assert_eq!(c.call(&["GET", key]), first, "GET {key} twice");
        first
    };
    assert_eq!(get_twice(&mut c, "rc"), R::NullBulk);
    assert_eq!(c.call(&["SET", "rc", "1"]), ok());
    assert_eq!(get_twice(&mut c, "rc"), bulk("1"));
    assert_eq!(c.call(&["APPEND", "rc", "0"]), int(2));
    assert_eq!(get_twice(&mut c, "rc"), bulk("10"));
    assert_eq!(c.call(&["INCR", "rc"]), int(11));
    assert_eq!(get_twice(&mut c, "rc"), bulk("11"));
    assert_eq!(c.call(&["RENAME", "rc", "rc2"]), ok());
    assert_eq!(get_twice(&mut c, "rc"), R::NullBulk);
    assert_eq!(get_twice(&mut c, "rc2"), bulk("11"));
    assert_eq!(c.call(&["MSET", "rc", "a", "rc2", "b"]), ok());
    assert_eq!(get_twice(&mut c, "rc"), bulk("a"));
    assert_eq!(get_twice(&mut c, "rc2"), bulk("b"));
    assert_eq!(c.call(&["DEL", "rc2"]), int(1));
    assert_eq!(get_twice(&mut c, "rc2"), R::NullBulk);
    assert_eq!(c.call(&["SET", "rc", "x", "PX", "100"]), ok());
    assert_eq!(get_twice(&mut c, "rc"), bulk("x"));
    poll_until("the cached key expires", Duration::from_secs(5), || {
        c.call(&["GET", "rc"]) == R::NullBulk
    });
    assert_eq!(c.call(&["SET", "rc", "y"]), ok());
    assert_eq!(get_twice(&mut c, "rc"), bulk("y"));
    assert_eq!(c.call(&["FLUSHALL"]), ok());
    assert_eq!(get_twice(&mut c, "rc"), R::NullBulk);

    let memory = info_text(c.call(&["INFO", "memory"]));
    let field = |name: &str| -> u64 {
        memory
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("INFO memory lacks {name}: {memory}"))
    };
    assert_eq!(field("strata_read_cache_capacity_bytes"), 1_048_576);
    assert!(field("strata_read_cache_hits") >= 10, "{memory}");
    // At least the first GET of the empty cache and the one after FLUSHALL;
    // most others hit, as writes are written through.
    assert!(field("strata_read_cache_misses") >= 2, "{memory}");
    assert!(field("strata_read_cache_bytes") <= 1_048_576, "{memory}");
}
