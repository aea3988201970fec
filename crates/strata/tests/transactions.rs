//! Transactions (MULTI, EXEC, DISCARD, WATCH, UNWATCH) through a real
//! server, byte for byte, in RESP2 and RESP3: queueing, EXECABORT,
//! per-command errors inside EXEC, reads seeing the transaction's writes,
//! WATCH aborts (another client's write, DEL, FLUSHALL, expiry, RENAME)
//! and non-aborts, DISCARD, UNWATCH, and the queue limits.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use common::raw::*;

fn simple(s: &str) -> R {
    R::Simple(s.into())
}

fn queued() -> R {
    simple("QUEUED")
}

fn err_starts(reply: R, prefix: &str) {
    match reply {
        R::Err(e) => assert!(
            e.starts_with(prefix),
            "{e:?} does not start with {prefix:?}"
        ),
        other => panic!("expected an error starting {prefix:?}, got {other:?}"),
    }
}

/// A connection speaking RESP3 (`HELLO 3`) or RESP2.
fn connect(server: &TestServer, resp3: bool) -> Raw {
    let mut c = Raw::connect(server.resp_addr);
    if resp3 {
        match c.call(&["HELLO", "3"]) {
            R::Map(_) => {}
            other => panic!("HELLO 3: {other:?}"),
        }
    }
    c
}

/// The null a watched EXEC answers: `*-1` in RESP2, `_` in RESP3.
fn null_array(resp3: bool) -> R {
    if resp3 { R::Null } else { R::NullArray }
}

fn null_bulk(resp3: bool) -> R {
    if resp3 { R::Null } else { R::NullBulk }
}

#[test]
fn queueing_exec_and_reply_shapes() {
    let server = TestServer::start();
    for resp3 in [false, true] {
        let mut c = connect(&server, resp3);
        let k = |s: &str| format!("shape{resp3}:{s}");
        assert_eq!(c.call(&["MULTI"]), ok());
        assert_eq!(c.call(&["SET", &k("a"), "1"]), queued());
        assert_eq!(c.call(&["INCR", &k("a")]), queued());
        assert_eq!(c.call(&["GET", &k("a")]), queued());
        assert_eq!(c.call(&["GET", &k("missing")]), queued());
        assert_eq!(c.call(&["MGET", &k("a"), &k("missing")]), queued());
        assert_eq!(
            c.call(&["EXISTS", &k("a"), &k("a"), &k("missing")]),
            queued()
        );
        assert_eq!(c.call(&["STRLEN", &k("a")]), queued());
        assert_eq!(c.call(&["APPEND", &k("a"), "xyz"]), queued());
        assert_eq!(c.call(&["GETRANGE", &k("a"), "1", "-1"]), queued());
        assert_eq!(c.call(&["PEXPIRE", &k("a"), "100000"]), queued());
        assert_eq!(c.call(&["TTL", &k("a")]), queued());
        assert_eq!(c.call(&["TTL", &k("missing")]), queued());
        assert_eq!(c.call(&["TYPE", &k("a")]), queued());
        assert_eq!(c.call(&["PING"]), queued());
        assert_eq!(c.call(&["ECHO", "hi"]), queued());
        assert_eq!(c.call(&["DEL", &k("a")]), queued());
        assert_eq!(c.call(&["EXISTS", &k("a")]), queued());
        let got = c.call(&["EXEC"]);
        let expected = arr(vec![
            ok(),
            int(2),
            bulk("2"),
            null_bulk(resp3),
            arr(vec![bulk("2"), null_bulk(resp3)]),
            int(2),
            int(1),
            int(4),
            bulk("xyz"),
            int(1),
            int(100),
            int(-2),
            simple("string"),
            simple("PONG"),
            bulk("hi"),
            int(1),
            int(0),
        ]);
        assert_eq!(got, expected, "resp3={resp3}");
        // An empty transaction answers an empty array.
        assert_eq!(c.call(&["MULTI"]), ok());
        assert_eq!(c.call(&["EXEC"]), arr(vec![]));
    }
}

#[test]
fn state_errors_match_redis() {
    let server = TestServer::start();
    for resp3 in [false, true] {
        let mut c = connect(&server, resp3);
        assert_eq!(c.call(&["EXEC"]), R::Err("ERR EXEC without MULTI".into()));
        assert_eq!(
            c.call(&["DISCARD"]),
            R::Err("ERR DISCARD without MULTI".into())
        );
        assert_eq!(c.call(&["MULTI"]), ok());
        assert_eq!(
            c.call(&["MULTI"]),
            R::Err("ERR MULTI calls can not be nested".into())
        );
        assert_eq!(
            c.call(&["WATCH", "x"]),
            R::Err("ERR WATCH inside MULTI is not allowed".into())
        );
        // Neither error marks the transaction (as in Redis).
        assert_eq!(c.call(&["SET", "state:x", "1"]), queued());
        assert_eq!(c.call(&["EXEC"]), arr(vec![ok()]));
        // DISCARD drops the queue.
        assert_eq!(c.call(&["MULTI"]), ok());
        assert_eq!(c.call(&["SET", "state:x", "2"]), queued());
        assert_eq!(c.call(&["DISCARD"]), ok());
        assert_eq!(c.call(&["GET", "state:x"]), bulk("1"));
        assert_eq!(c.call(&["EXEC"]), R::Err("ERR EXEC without MULTI".into()));
    }
}

#[test]
fn queue_time_errors_abort_everything() {
    let server = TestServer::start();
    let execabort = R::Err("EXECABORT Transaction discarded because of previous errors.".into());
    let mut c = connect(&server, false);
    // Unknown command.
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["SET", "abort:a", "1"]), queued());
    err_starts(
        c.call(&["NOSUCHCOMMAND", "x"]),
        "ERR unknown command 'NOSUCHCOMMAND'",
    );
    assert_eq!(c.call(&["INCR", "abort:b"]), queued());
    assert_eq!(c.call(&["EXEC"]), execabort);
    // Wrong arity.
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["SET", "abort:a", "1"]), queued());
    assert_eq!(
        c.call(&["GET"]),
        R::Err("ERR wrong number of arguments for 'get' command".into())
    );
    assert_eq!(c.call(&["EXEC"]), execabort);
    // A command not allowed in a transaction.
    for refused in [vec!["CLUSTER", "INFO"], vec!["FLUSHALL"], vec!["KEYS", "*"]] {
        assert_eq!(c.call(&["MULTI"]), ok());
        assert_eq!(c.call(&["SET", "abort:a", "1"]), queued());
        assert_eq!(
            c.call(&refused),
            R::Err("ERR Command not allowed inside a transaction".into()),
            "{refused:?}"
        );
        assert_eq!(c.call(&["EXEC"]), execabort);
    }
    // Nothing was applied, and the connection is out of MULTI.
    assert_eq!(c.call(&["EXISTS", "abort:a", "abort:b"]), int(0));
    assert_eq!(c.call(&["GET", "abort:a"]), R::NullBulk);
}

#[test]
fn runtime_errors_are_per_command() {
    let server = TestServer::start();
    let mut c = connect(&server, false);
    assert_eq!(c.call(&["SET", "rt:s", "text"]), ok());
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["SET", "rt:a", "1"]), queued());
    assert_eq!(c.call(&["INCR", "rt:s"]), queued());
    assert_eq!(c.call(&["SET", "rt:b", "2", "BADOPTION"]), queued());
    assert_eq!(c.call(&["GETRANGE", "rt:a", "x", "1"]), queued());
    assert_eq!(c.call(&["INCR", "rt:a"]), queued());
    assert_eq!(
        c.call(&["EXEC"]),
        arr(vec![
            ok(),
            R::Err("ERR value is not an integer or out of range".into()),
            R::Err("ERR syntax error".into()),
            R::Err("ERR value is not an integer or out of range".into()),
            int(2),
        ])
    );
    assert_eq!(c.call(&["GET", "rt:a"]), bulk("2"));
    assert_eq!(c.call(&["GET", "rt:s"]), bulk("text"));
    assert_eq!(c.call(&["EXISTS", "rt:b"]), int(0));
}

/// MULTI ... EXEC sent as one pipeline, as client libraries do.
#[test]
fn pipelined_transaction() {
    let server = TestServer::start();
    let mut c = connect(&server, false);
    let mut bytes = Vec::new();
    bytes.extend(encode(&["SET", "pipe:before", "0"]));
    bytes.extend(encode(&["MULTI"]));
    for _ in 0..100 {
        bytes.extend(encode(&["INCR", "pipe:n"]));
    }
    bytes.extend(encode(&["EXEC"]));
    bytes.extend(encode(&["GET", "pipe:n"]));
    c.send(&bytes);
    assert_eq!(c.read(), ok());
    assert_eq!(c.read(), ok());
    for _ in 0..100 {
        assert_eq!(c.read(), queued());
    }
    assert_eq!(c.read(), arr((1..=100).map(int).collect()));
    assert_eq!(c.read(), bulk("100"));
}

/// WATCH, a change by `change` on another connection, then EXEC: aborted
/// (null array), and the transaction's write is not applied.
fn watch_aborts_after(server: &TestServer, resp3: bool, key: &str, change: &[&[&str]]) {
    let mut c = connect(server, resp3);
    let mut other = connect(server, false);
    assert_eq!(c.call(&["WATCH", key]), ok());
    for cmd in change {
        let _ = other.call(cmd);
    }
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["SET", "watch:marker", key]), queued());
    assert_eq!(
        c.call(&["EXEC"]),
        null_array(resp3),
        "{key} after {change:?}"
    );
    assert_ne!(other.call(&["GET", "watch:marker"]), bulk(key));
}

#[test]
fn watch_aborts_on_changes() {
    let server = TestServer::start();
    for resp3 in [false, true] {
        let mut setup = connect(&server, false);
        let key = |s: &str| format!("w{resp3}:{s}");
        for name in ["write", "del", "flush", "rename", "renamed-to", "incr"] {
            assert_eq!(setup.call(&["SET", &key(name), "v"]), ok());
        }
        watch_aborts_after(
            &server,
            resp3,
            &key("write"),
            &[&["SET", &key("write"), "v2"]],
        );
        watch_aborts_after(&server, resp3, &key("del"), &[&["DEL", &key("del")]]);
        watch_aborts_after(
            &server,
            resp3,
            &key("incr"),
            &[&["APPEND", &key("incr"), "x"]],
        );
        watch_aborts_after(
            &server,
            resp3,
            &key("absent"),
            &[&["SET", &key("absent"), "x"]],
        );
        // RENAME changes both its source and its destination.
        let renamed = key("renamed");
        watch_aborts_after(
            &server,
            resp3,
            &key("rename"),
            &[&["RENAME", &key("rename"), &renamed]],
        );
        assert_eq!(setup.call(&["SET", &key("src"), "other"]), ok());
        watch_aborts_after(
            &server,
            resp3,
            &key("renamed-to"),
            &[&["RENAME", &key("src"), &key("renamed-to")]],
        );
        // A TTL change is a change.
        assert_eq!(setup.call(&["SET", &key("ttl"), "v"]), ok());
        watch_aborts_after(
            &server,
            resp3,
            &key("ttl"),
            &[&["EXPIRE", &key("ttl"), "1000"]],
        );
        watch_aborts_after(&server, resp3, &key("flush"), &[&["FLUSHALL"]]);
    }
}

#[test]
fn watch_aborts_on_expiry() {
    let server = TestServer::start();
    let mut c = connect(&server, false);
    assert_eq!(c.call(&["SET", "exp:k", "v", "PX", "150"]), ok());
    assert_eq!(c.call(&["WATCH", "exp:k"]), ok());
    // Bounded wait until the key has expired for everyone.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut probe = connect(&server, false);
    while probe.call(&["EXISTS", "exp:k"]) != int(0) {
        assert!(Instant::now() < deadline, "key never expired");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["SET", "exp:marker", "1"]), queued());
    assert_eq!(c.call(&["EXEC"]), R::NullArray);
    assert_eq!(c.call(&["EXISTS", "exp:marker"]), int(0));
}

#[test]
fn watch_passes_when_nothing_changed() {
    let server = TestServer::start();
    let mut c = connect(&server, false);
    let mut other = connect(&server, false);
    assert_eq!(c.call(&["SET", "calm:k", "v"]), ok());
    assert_eq!(c.call(&["WATCH", "calm:k", "calm:absent"]), ok());
    // Writes to other keys and reads of the watched ones are no change.
    assert_eq!(other.call(&["SET", "calm:other", "x"]), ok());
    assert_eq!(other.call(&["GET", "calm:k"]), bulk("v"));
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["INCR", "calm:n"]), queued());
    assert_eq!(c.call(&["EXEC"]), arr(vec![int(1)]));
    // EXEC unwatched everything: a later change does not abort.
    assert_eq!(other.call(&["SET", "calm:k", "changed"]), ok());
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["INCR", "calm:n"]), queued());
    assert_eq!(c.call(&["EXEC"]), arr(vec![int(2)]));
}

/// An identical rewrite (same value, same expiry) aborts, as in Redis:
/// WATCH compares modification versions, not contents.
#[test]
fn watch_sees_an_identical_rewrite() {
    let server = TestServer::start();
    let mut c = connect(&server, false);
    let mut other = connect(&server, false);
    assert_eq!(c.call(&["SET", "same:k", "v"]), ok());
    assert_eq!(c.call(&["WATCH", "same:k"]), ok());
    assert_eq!(other.call(&["SET", "same:k", "v"]), ok());
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["INCR", "same:n"]), queued());
    assert_eq!(c.call(&["EXEC"]), R::NullArray);
    assert_eq!(c.call(&["GET", "same:n"]), R::NullBulk);
}

/// The one documented difference from Redis, towards aborting: a key
/// absent at WATCH aborts when any key written after WATCH was deleted
/// before EXEC (a created-and-deleted key leaves nothing to compare).
/// Redis would apply this one. README, "Transactions".
#[test]
fn watch_of_an_absent_key_aborts_on_any_newer_deletion() {
    let server = TestServer::start();
    let mut c = connect(&server, false);
    let mut other = connect(&server, false);
    assert_eq!(c.call(&["SET", "del:old", "v"]), ok());
    // A key written before WATCH and deleted after: no abort.
    assert_eq!(c.call(&["WATCH", "del:absent"]), ok());
    assert_eq!(other.call(&["DEL", "del:old"]), int(1));
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["INCR", "del:n"]), queued());
    assert_eq!(c.call(&["EXEC"]), arr(vec![int(1)]));
    // A key written after WATCH and deleted before EXEC: aborted.
    assert_eq!(c.call(&["WATCH", "del:absent"]), ok());
    assert_eq!(other.call(&["SET", "del:other", "x"]), ok());
    assert_eq!(other.call(&["DEL", "del:other"]), int(1));
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["INCR", "del:n"]), queued());
    assert_eq!(c.call(&["EXEC"]), R::NullArray);
}

#[test]
fn unwatch_and_discard_forget_watches() {
    let server = TestServer::start();
    let mut c = connect(&server, false);
    let mut other = connect(&server, false);
    assert_eq!(c.call(&["WATCH", "uw:k"]), ok());
    assert_eq!(c.call(&["UNWATCH"]), ok());
    assert_eq!(other.call(&["SET", "uw:k", "1"]), ok());
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["SET", "uw:m", "1"]), queued());
    assert_eq!(c.call(&["EXEC"]), arr(vec![ok()]));

    assert_eq!(c.call(&["WATCH", "uw:k"]), ok());
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["DISCARD"]), ok());
    assert_eq!(other.call(&["SET", "uw:k", "2"]), ok());
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["SET", "uw:m", "2"]), queued());
    assert_eq!(c.call(&["EXEC"]), arr(vec![ok()]));
    assert_eq!(c.call(&["GET", "uw:m"]), bulk("2"));
}

/// An EXECABORT also drops the watches; a watch abort applies nothing even
/// when the transaction has many writes.
#[test]
fn aborted_exec_applies_nothing() {
    let server = TestServer::start();
    let mut c = connect(&server, false);
    let mut other = connect(&server, false);
    assert_eq!(c.call(&["WATCH", "ab:w"]), ok());
    assert_eq!(other.call(&["SET", "ab:w", "x"]), ok());
    assert_eq!(c.call(&["MULTI"]), ok());
    for i in 0..50 {
        assert_eq!(c.call(&["SET", &format!("ab:{i}"), "v"]), queued());
    }
    assert_eq!(c.call(&["EXEC"]), R::NullArray);
    let keys: Vec<String> = (0..50).map(|i| format!("ab:{i}")).collect();
    let mut exists = vec!["EXISTS".to_string()];
    exists.extend(keys);
    assert_eq!(other.call(&exists), int(0));
}

#[test]
fn queue_limits() {
    // A small request limit makes the byte bound reachable quickly.
    let server = TestServer::start_with(&[
        "--value-size-bytes-max",
        "1000000",
        "--request-size-bytes-max",
        "2000000",
    ]);
    let mut c = connect(&server, false);
    assert_eq!(c.call(&["MULTI"]), ok());
    let big = "x".repeat(900_000);
    assert_eq!(c.call(&["SET", "lim:a", &big]), queued());
    assert_eq!(c.call(&["SET", "lim:b", &big]), queued());
    err_starts(c.call(&["SET", "lim:c", &big]), "ERR transaction too large");
    assert_eq!(
        c.call(&["EXEC"]),
        R::Err("EXECABORT Transaction discarded because of previous errors.".into())
    );
    assert_eq!(c.call(&["EXISTS", "lim:a"]), int(0));
    // The command bound: 10,000 queued, the next refused.
    let mut bytes = encode(&["MULTI"]);
    for _ in 0..10_001 {
        bytes.extend(encode(&["INCR", "lim:n"]));
    }
    bytes.extend(encode(&["EXEC"]));
    c.send(&bytes);
    assert_eq!(c.read(), ok());
    for _ in 0..10_000 {
        assert_eq!(c.read(), queued());
    }
    err_starts(c.read(), "ERR transaction too large");
    err_starts(c.read(), "EXECABORT");
    assert_eq!(c.call(&["EXISTS", "lim:n"]), int(0));
}

/// A queue holds its arguments after their requests were read: it counts
/// against `--client-buffers-size-bytes-max` like a partial request, so
/// many connections each queuing up to the request size cannot exceed the
/// bound.
#[test]
fn queued_bytes_count_against_the_client_buffers_bound() {
    let server = TestServer::start_with(&[
        "--client-buffers-size-bytes-max",
        "2097152",
        "--value-size-bytes-max",
        "1000000",
        "--request-size-bytes-max",
        "8000000",
    ]);
    let mut c = connect(&server, false);
    assert_eq!(c.call(&["MULTI"]), ok());
    let big = "x".repeat(900_000);
    assert_eq!(c.call(&["SET", "buf:a", &big]), queued());
    assert_eq!(c.call(&["SET", "buf:b", &big]), queued());
    c.send(&encode(&["SET", "buf:c", &big]));
    let closed = c.read_until_closed();
    let text = String::from_utf8_lossy(&closed);
    assert!(text.starts_with("-ERR client buffers are full"), "{text:?}");
    // Nothing was applied; the server serves others.
    let mut other = connect(&server, false);
    assert_eq!(other.call(&["EXISTS", "buf:a", "buf:b", "buf:c"]), int(0));
}

#[test]
fn command_info_lists_transaction_commands() {
    let server = TestServer::start();
    let mut c = connect(&server, false);
    let R::Arr(infos) = c.call(&[
        "COMMAND", "INFO", "multi", "exec", "discard", "watch", "unwatch",
    ]) else {
        panic!("COMMAND INFO is not an array");
    };
    let arities: Vec<R> = infos
        .iter()
        .map(|i| match i {
            R::Arr(fields) => fields[1].clone(),
            other => panic!("no info: {other:?}"),
        })
        .collect();
    assert_eq!(arities, vec![int(1), int(1), int(1), int(-2), int(1)]);
}
