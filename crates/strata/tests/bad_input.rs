//! Hostile and malformed input: protocol violations, truncated frames, huge
//! length prefixes, non-UTF-8 bytes, oversized keys and values, seeded
//! random garbage, the connection limit and the idle timeout. After each,
//! the server process must still be running and a fresh client must work.
//!
//! Protocol-level expectations were calibrated against a real redis-server;
//! tests named `strata_*` check limits that only strata has (key/value/request
//! size flags) and follow strata's contract.

mod common;

use common::TestServer;
use common::raw::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Small limits keep the oversized-input tests fast.
const SMALL_LIMITS: &[&str] = &[
    "--key-size-bytes-max",
    "64",
    "--value-size-bytes-max",
    "1024",
    "--request-size-bytes-max",
    "65536",
];

/// One small-limits server shared by the tests of this file that run at the
/// same time; killed when the last of them finishes.
fn limited() -> Arc<TestServer> {
    static SLOT: Mutex<Weak<TestServer>> = Mutex::new(Weak::new());
    let mut slot = SLOT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(server) = slot.upgrade() {
        return server;
    }
    let server = Arc::new(TestServer::start_with(SMALL_LIMITS));
    *slot = Arc::downgrade(&server);
    server
}

/// The server process is alive and a brand-new client gets correct answers.
fn assert_healthy(server: &TestServer) {
    // SAFETY: kill(pid, 0) only checks that the process exists.
    let alive = unsafe { libc::kill(server.pid() as i32, 0) } == 0;
    assert!(alive, "server process died; log:\n{}", server.log());
    let mut c = Raw::connect(server.resp_addr);
    c.send(&encode(&["PING"]));
    c.expect_bytes(b"+PONG\r\n");
    let key = format!("health:{}", std::process::id());
    assert_eq!(c.call(&["SET", &key, "ok"]), ok());
    assert_eq!(c.call(&["GET", &key]), bulk("ok"));
}

/// Sends `bytes` on a fresh connection and returns everything the server
/// sends until it closes the connection.
fn send_and_collect(server: &TestServer, bytes: &[u8]) -> Vec<u8> {
    let mut c = Raw::connect(server.resp_addr);
    // The server may close before reading everything; ignore write errors.
    let _ = c.writer.write_all(bytes);
    c.read_until_closed()
}

fn assert_protocol_error_then_close(server: &TestServer, bytes: &[u8]) {
    let got = send_and_collect(server, bytes);
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("-ERR Protocol error")
            && text.ends_with("\r\n")
            && text.matches("\r\n").count() == 1,
        "request {:?}: expected one `-ERR Protocol error...` line then close, got {text:?}",
        String::from_utf8_lossy(bytes)
    );
}

// ---------------------------------------------------------------------------
// Protocol violations
// ---------------------------------------------------------------------------

#[test]
fn protocol_violations_get_an_error_then_close() {
    let server = limited();
    let cases: &[&[u8]] = &[
        b"*abc\r\n",
        b"*1\r\n$-5\r\n",
        b"*1\r\n:3\r\n",
        b"*1\r\n$abc\r\n",
        b"*1\r\n$ 4\r\nPING\r\n",
        b"*1\r\n$\r\n",
        b"*\r\n",
        b"*1\r\n*1\r\n$4\r\nPING\r\n",
        b"*2\r\n$3\r\nGET\r\n+OK\r\n",
        b"*3\r\nSET\r\n",
        b"*1\r\n$4x\r\nPING\r\n",
        b"*2\r\n$3\r\nGET\r\n$-1\r\n",
        b"set \"unbalanced quotes\r\n",
    ];
    for case in cases {
        assert_protocol_error_then_close(&server, case);
    }
    // Other connections were never affected.
    assert_healthy(&server);
}

#[test]
fn length_prefixes_are_parsed_strictly() {
    // Redis parses lengths with string2ll: no sign, no leading zeros.
    let server = limited();
    for case in [
        &b"*+1\r\n$4\r\nPING\r\n"[..],
        b"*01\r\n$4\r\nPING\r\n",
        b"*1\r\n$+4\r\nPING\r\n",
        b"*1\r\n$04\r\nPING\r\n",
    ] {
        assert_protocol_error_then_close(&server, case);
    }
    assert_healthy(&server);
}

#[test]
fn commands_before_a_violation_still_run() {
    let server = limited();
    let mut bytes = encode(&["SET", "pv:before", "1"]);
    bytes.extend_from_slice(b"*1\r\n:3\r\n");
    bytes.extend(encode(&["SET", "pv:after", "1"]));
    let got = send_and_collect(&server, &bytes);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("+OK\r\n-ERR Protocol error"), "{text:?}");
    assert_eq!(
        text.matches("\r\n").count(),
        2,
        "nothing after the error: {text:?}"
    );
    let mut c = Raw::connect(server.resp_addr);
    assert_eq!(c.call(&["GET", "pv:before"]), bulk("1"));
    assert_eq!(c.call(&["GET", "pv:after"]), R::NullBulk);
}

#[test]
fn huge_length_prefixes() {
    let server = limited();
    let started = Instant::now();
    for case in [
        &b"*99999999999\r\n"[..],
        b"*2147483648\r\n",
        b"*9223372036854775807\r\n",
        b"*99999999999999999999999\r\n",
        b"*1\r\n$4294967296\r\n",
        b"*1\r\n$9223372036854775807\r\n",
        b"*1\r\n$99999999999999999999\r\n",
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4294967296\r\n",
    ] {
        assert_protocol_error_then_close(&server, case);
    }
    // Rejected from the header alone: no waiting for (or allocating) the body.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // A top-level bulk string is not a valid request either (Redis treats
    // it as an inline command); in any case an error, never a crash.
    let mut c = Raw::connect(server.resp_addr);
    c.send(b"$4294967296\r\n");
    let mut line = Vec::new();
    c.reader.read_until(b'\n', &mut line).expect("a reply");
    assert!(
        line.starts_with(b"-ERR"),
        "{:?}",
        String::from_utf8_lossy(&line)
    );
    assert_healthy(&server);
}

#[test]
fn truncated_frames_then_close() {
    let server = limited();
    let full = encode(&["SET", "tf:key", "value"]);
    for cut in 1..full.len() {
        let mut c = Raw::connect(server.resp_addr);
        c.send(&full[..cut]);
        c.writer.shutdown(std::net::Shutdown::Write).unwrap();
        let rest = c.read_until_closed();
        assert!(
            rest.is_empty(),
            "no reply to an incomplete frame ({cut} bytes): {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
    // Truncated then just dropped, many at once.
    let pending: Vec<Raw> = (1..full.len())
        .map(|cut| {
            let mut c = Raw::connect(server.resp_addr);
            c.send(&full[..cut]);
            c
        })
        .collect();
    drop(pending);
    // An incomplete inline command, and a declared body that never comes.
    for partial in [
        &b"SET tf:key inline"[..],
        b"*3\r\n$3\r\nSET\r\n$6\r\ntf:key\r\n$60000\r\nabc",
    ] {
        let mut c = Raw::connect(server.resp_addr);
        c.send(partial);
        c.writer.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(c.read_until_closed().is_empty());
    }
    let mut c = Raw::connect(server.resp_addr);
    assert_eq!(
        c.call(&["GET", "tf:key"]),
        R::NullBulk,
        "a partial SET was executed"
    );
    assert_healthy(&server);
}

#[test]
fn non_utf8_bytes_in_commands_keys_and_args() {
    let server = limited();
    let mut c = Raw::connect(server.resp_addr);
    // Unknown command names made of arbitrary bytes.
    c.send(&encode(&[&b"\xff\xfe"[..], b"\x80"]));
    let mut line = Vec::new();
    c.reader.read_until(b'\n', &mut line).unwrap();
    assert!(line.starts_with(b"-ERR unknown command '"), "{line:?}");
    c.send(b"\xc3\x28 x\r\n");
    let mut line = Vec::new();
    c.reader.read_until(b'\n', &mut line).unwrap();
    assert!(line.starts_with(b"-ERR unknown command '"), "{line:?}");
    c.send(&encode(&["PING"]));
    c.expect_bytes(b"+PONG\r\n");

    // Keys and values.
    assert_eq!(
        c.call(&[&b"SET"[..], b"nu:\xc3\x28", b"\xff\x00\xfe"]),
        ok()
    );
    assert_eq!(
        c.call(&[&b"GET"[..], b"nu:\xc3\x28"]),
        bulk(b"\xff\x00\xfe")
    );
    c.send(b"SET nu:\xff \xfe\x80\r\n");
    c.expect_bytes(b"+OK\r\n");
    assert_eq!(c.call(&[&b"GET"[..], b"nu:\xff"]), bulk(b"\xfe\x80"));
    assert_eq!(
        c.call(&[&b"KEYS"[..], b"nu:\xff*"]),
        arr(vec![bulk(b"nu:\xff")])
    );

    // Arguments where a number, an option or a name is expected.
    let cases: &[(&[&[u8]], &str)] = &[
        (&[b"SET", b"nu:k", b"v", b"\xff"], "ERR syntax error"),
        (
            &[b"SET", b"nu:k", b"v", b"EX", b"\xff"],
            "ERR value is not an integer or out of range",
        ),
        (
            &[b"INCRBY", b"nu:k", b"\xff"],
            "ERR value is not an integer or out of range",
        ),
        (
            &[b"INCRBYFLOAT", b"nu:k", b"\xff"],
            "ERR value is not a valid float",
        ),
        (
            &[b"GETRANGE", b"nu:k", b"\xff", b"1"],
            "ERR value is not an integer or out of range",
        ),
        (
            &[b"SELECT", b"\xff"],
            "ERR value is not an integer or out of range",
        ),
        (
            &[b"HELLO", b"\xff"],
            "ERR Protocol version is not an integer or out of range",
        ),
        (
            &[b"EXPIRE", b"nu:k", b"\xff"],
            "ERR value is not an integer or out of range",
        ),
        (
            &[b"SCAN", b"0", b"COUNT", b"\xff"],
            "ERR value is not an integer or out of range",
        ),
        (
            &[b"CLIENT", b"SETNAME", b"\xff"],
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ),
    ];
    for (args, expected) in cases {
        assert_eq!(c.error(args), *expected, "{}", show(args));
    }
    assert_eq!(c.call(&[&b"SET"[..], b"nu:k", b"1"]), ok());
    match c.call(&[&b"EXPIRE"[..], b"nu:k", b"10", b"\xfe\xff"]) {
        R::Err(e) => assert!(e.starts_with("ERR Unsupported option "), "{e}"),
        other => panic!("EXPIRE with a binary option: {other:?}"),
    }
    assert!(matches!(
        c.call(&[&b"CONFIG"[..], b"GET", b"\xff"]),
        R::Arr(_)
    ));
    assert!(matches!(
        c.call(&[&b"SCAN"[..], b"0", b"MATCH", b"\xff*"]),
        R::Arr(_)
    ));
    assert_eq!(c.call(&["GET", "nu:k"]), bulk("1"));
    assert_healthy(&server);
}

#[test]
fn extreme_numeric_arguments() {
    let server = limited();
    let mut c = Raw::connect(server.resp_addr);
    const MAX: &str = "9223372036854775807";
    const MIN: &str = "-9223372036854775808";
    assert_eq!(c.call(&["SET", "xn:k", "hello"]), ok());
    for (s, e, want) in [
        (MAX, MIN, ""),
        (MIN, MAX, "hello"),
        (MIN, MIN, "h"),
        (MAX, MAX, ""),
        ("0", MAX, "hello"),
        ("-1", MIN, ""),
    ] {
        assert_eq!(
            c.call(&["GETRANGE", "xn:k", s, e]),
            bulk(want),
            "GETRANGE {s} {e}"
        );
    }
    assert_eq!(
        c.error(&["SETRANGE", "xn:k", MIN, "x"]),
        "ERR offset is out of range"
    );
    assert!(matches!(c.call(&["SETRANGE", "xn:k", MAX, "x"]), R::Err(_)));
    assert!(matches!(
        c.call(&["SETRANGE", "xn:k", "4294967296", "x"]),
        R::Err(_)
    ));
    assert_eq!(c.call(&["GET", "xn:k"]), bulk("hello"));

    match c.call(&["SCAN", "0", "MATCH", "xn:*", "COUNT", MAX]) {
        R::Arr(items) => assert_eq!(items.len(), 2),
        other => panic!("SCAN COUNT MAX: {other:?}"),
    }
    for (args, cmd) in [
        (vec!["EXPIRE", "xn:k", MIN], "expire"),
        (vec!["EXPIRE", "xn:k", MAX], "expire"),
        (vec!["EXPIREAT", "xn:k", MIN], "expireat"),
        (vec!["PEXPIRE", "xn:k", MAX], "pexpire"),
        (vec!["SET", "xn:k", "v", "PX", MAX], "set"),
        (vec!["SET", "xn:k", "v", "EXAT", MAX], "set"),
        (vec!["SETEX", "xn:k", MAX, "v"], "setex"),
        (vec!["PSETEX", "xn:k", MAX, "v"], "psetex"),
        (vec!["GETEX", "xn:k", "EX", MAX], "getex"),
    ] {
        assert_eq!(
            c.error(&args),
            format!("ERR invalid expire time in '{cmd}' command"),
            "{}",
            args.join(" ")
        );
    }
    assert_eq!(c.call(&["GET", "xn:k"]), bulk("hello"));
    assert_eq!(c.call(&["TTL", "xn:k"]), int(-1));

    assert_eq!(c.call(&["INCRBY", "xn:n", MIN]), int(i64::MIN));
    assert_eq!(
        c.error(&["DECR", "xn:n"]),
        "ERR increment or decrement would overflow"
    );
    assert_eq!(
        c.error(&["DECRBY", "xn:n", MIN]),
        "ERR decrement would overflow"
    );
    assert_eq!(c.call(&["DECRBY", "xn:m", MAX]), int(-i64::MAX));
    assert_eq!(c.call(&["DECR", "xn:m"]), int(i64::MIN));
    assert_eq!(
        c.error(&["DECR", "xn:m"]),
        "ERR increment or decrement would overflow"
    );
    assert_eq!(
        c.error(&["SELECT", "99999999999999999999"]),
        "ERR value is not an integer or out of range"
    );
    // Pathological glob patterns terminate.
    assert_eq!(c.call(&["SET", "xn:long", &"a".repeat(60)]), ok());
    for pat in [
        "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b",
        "[",
        "[a-",
        "\\",
        "xn:k[",
        "xn:[^",
        "[]",
        "[^]",
    ] {
        assert!(matches!(c.call(&["KEYS", pat]), R::Arr(_)), "KEYS {pat}");
    }
    assert_eq!(c.call(&["SET", "xn:f", "1"]), ok());
    assert_eq!(
        c.error(&["INCRBYFLOAT", "xn:f", "inf"]),
        "ERR increment would produce NaN or Infinity"
    );
    assert_healthy(&server);
}

#[test]
fn strata_range_with_extreme_limits() {
    let server = limited();
    let mut c = Raw::connect(server.resp_addr);
    assert_eq!(c.call(&["MSET", "xr:a", "1", "xr:b", "2"]), ok());
    // A huge LIMIT either just returns what there is or is refused with an
    // error (strata caps replies at reply-elements-max); never a crash.
    match c.call(&["RANGE", "xr:a", "xr:z", "LIMIT", "9223372036854775807"]) {
        R::Err(e) => assert!(e.starts_with("ERR LIMIT"), "{e}"),
        other => assert_eq!(other, bulks(&["xr:a", "1", "xr:b", "2"])),
    }
    assert!(matches!(
        c.call(&["RANGE", "xr:a", "xr:z", "LIMIT", "-9223372036854775808"]),
        R::Err(_) | R::Arr(_)
    ));
    assert!(matches!(
        c.call(&["RANGE", "xr:a", "xr:z", "LIMIT", "99999999999999999999"]),
        R::Err(_)
    ));
    assert_healthy(&server);
}

// ---------------------------------------------------------------------------
// Seeded fuzzing
// ---------------------------------------------------------------------------

fn assert_resp2_only(r: &R) {
    match r {
        R::Null
        | R::Map(_)
        | R::Set(_)
        | R::Double(_)
        | R::Bool(_)
        | R::Verbatim(..)
        | R::BigNum(_)
        | R::Push(_) => {
            panic!("RESP3-only reply type on a RESP2 connection: {r:?}")
        }
        R::Arr(items) => items.iter().for_each(assert_resp2_only),
        _ => {}
    }
}

fn random_arg(rng: &mut StdRng) -> Vec<u8> {
    const POOL: &[&str] = &[
        "fz:a",
        "fz:b",
        "fz:c",
        "fz:",
        "0",
        "1",
        "-1",
        "2",
        "100",
        "2000",
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775808",
        "99999999999999999999",
        "1.5",
        "-0",
        "inf",
        "-inf",
        "nan",
        "1e400",
        "",
        " ",
        "abc",
        "NX",
        "XX",
        "GT",
        "LT",
        "EX",
        "PX",
        "EXAT",
        "PXAT",
        "KEEPTTL",
        "GET",
        "PERSIST",
        "MATCH",
        "COUNT",
        "LIMIT",
        "*",
        "fz:*",
        "[",
        "\\",
        "SETNAME",
        "GETNAME",
        "ID",
        "SETINFO",
        "lib-name",
        "save",
        "server",
        "keyspace",
        "DOCS",
    ];
    match rng.random_range(0..10) {
        0 => {
            let n = rng.random_range(0..40);
            (0..n).map(|_| rng.random()).collect()
        }
        1 => vec![b'x'; rng.random_range(1000..1100)],
        2 => vec![b'k'; rng.random_range(60..70)],
        _ => POOL[rng.random_range(0..POOL.len())].as_bytes().to_vec(),
    }
}

const FUZZ_COMMANDS: &[&str] = &[
    "GET",
    "SET",
    "SETNX",
    "SETEX",
    "PSETEX",
    "GETSET",
    "GETDEL",
    "GETEX",
    "MGET",
    "MSET",
    "MSETNX",
    "APPEND",
    "STRLEN",
    "INCR",
    "DECR",
    "INCRBY",
    "DECRBY",
    "INCRBYFLOAT",
    "GETRANGE",
    "SETRANGE",
    "DEL",
    "UNLINK",
    "EXISTS",
    "TYPE",
    "RENAME",
    "RENAMENX",
    "KEYS",
    "SCAN",
    "EXPIRE",
    "PEXPIRE",
    "EXPIREAT",
    "PEXPIREAT",
    "TTL",
    "PTTL",
    "PERSIST",
    "PING",
    "ECHO",
    "SELECT",
    "CLIENT",
    "CONFIG",
    "INFO",
    "DBSIZE",
    "COMMAND",
    "RANGE",
    "PUT",
    "READ",
    "DELETE",
    "BATCHPUT",
    "READRANGE",
    "NOPE",
];

fn fuzz_connection(server: &TestServer, seed: u64, rounds: usize, resp3: bool) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c = Raw::connect(server.resp_addr);
    if resp3 {
        assert!(matches!(c.call(&["HELLO", "3"]), R::Map(_)));
    }
    for i in 0..rounds {
        let mut args = vec![
            FUZZ_COMMANDS[rng.random_range(0..FUZZ_COMMANDS.len())]
                .as_bytes()
                .to_vec(),
        ];
        for _ in 0..rng.random_range(0..7) {
            args.push(random_arg(&mut rng));
        }
        // Pipelined with a marker: any missing or extra reply shows up as a
        // mismatch on the marker.
        let marker = format!("sync-{seed}-{i}");
        let mut bytes = encode(&args);
        bytes.extend(encode(&["ECHO", &marker]));
        c.send(&bytes);
        let reply = c.read();
        if !resp3 {
            assert_resp2_only(&reply);
        }
        assert_eq!(c.read(), bulk(&marker), "out of sync after {}", show(&args));
    }
}

#[test]
fn command_fuzz_with_random_arguments() {
    // A server of its own: whatever the fuzz breaks must not fail other tests.
    let server = Arc::new(TestServer::start_with(SMALL_LIMITS));
    let s2 = server.clone();
    let t = std::thread::spawn(move || fuzz_connection(&s2, 7, 1500, true));
    fuzz_connection(&server, 42, 3000, false);
    t.join().expect("RESP3 fuzz thread");
    assert_healthy(&server);
}

/// A mutated or random chunk of bytes.
fn garbage_chunk(rng: &mut StdRng) -> Vec<u8> {
    match rng.random_range(0..4) {
        0 => {
            let n = rng.random_range(1..512);
            (0..n).map(|_| rng.random()).collect()
        }
        1 => {
            // A valid command with a few bytes flipped, or cut short.
            let args: Vec<Vec<u8>> = (0..rng.random_range(1..5))
                .map(|_| random_arg(rng))
                .collect();
            let mut all = vec![b"SET".to_vec()];
            all.extend(args);
            let mut bytes = encode(&all);
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..bytes.len());
                bytes[i] = rng.random();
            }
            if rng.random_bool(0.3) {
                bytes.truncate(rng.random_range(1..=bytes.len()));
            }
            bytes
        }
        2 => {
            let prefix = [b'*', b'$', b':', b'+', b'-', b'_', b'%', b'~'][rng.random_range(0..8)];
            let n: i64 = match rng.random_range(0..3) {
                0 => rng.random(),
                1 => rng.random_range(-10..10),
                _ => rng.random_range(0..100_000),
            };
            format!("{}{n}\r\n", prefix as char).into_bytes()
        }
        _ => {
            // Inline-looking lines.
            let n = rng.random_range(0..5);
            let mut line = Vec::new();
            for _ in 0..n {
                line.extend(random_arg(rng));
                line.push(b' ');
            }
            line.extend_from_slice(if rng.random_bool(0.5) { b"\r\n" } else { b"\n" });
            line
        }
    }
}

fn garbage_sender(addr: SocketAddr, seed: u64, rounds: usize) -> usize {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut reconnects = 0;
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut buf = vec![0u8; 65536];
    for _ in 0..rounds {
        let chunk = garbage_chunk(&mut rng);
        let mut closed = stream.write_all(&chunk).is_err();
        if !closed {
            // Drain whatever came back; EOF or reset means the server closed us.
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(_) => continue,
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        break;
                    }
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
        }
        if closed {
            reconnects += 1;
            stream = TcpStream::connect(addr).expect("server still accepts connections");
            stream
                .set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
        }
    }
    reconnects
}

#[test]
fn random_garbage_while_another_client_works() {
    // A server of its own: whatever the garbage breaks must not fail other tests.
    let server = TestServer::start_with(SMALL_LIMITS);
    let stop = Arc::new(AtomicBool::new(false));

    // A well-behaved RESP client, all along.
    let resp_worker = {
        let stop = stop.clone();
        let addr = server.resp_addr;
        std::thread::spawn(move || {
            let mut c = Raw::connect(addr);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("worker:{}", n % 50);
                let val = format!("value-{n}");
                assert_eq!(c.call(&["SET", &key, &val]), ok());
                assert_eq!(c.call(&["GET", &key]), bulk(&val));
                n += 1;
            }
            n
        })
    };
    // A well-behaved text client, all along.
    let text_addr = server.text_addr.expect("text listener");
    let text_worker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let s = TcpStream::connect(text_addr).unwrap();
            s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            let mut n = 0u64;
            let mut line = String::new();
            while !stop.load(Ordering::Relaxed) {
                write!(w, "PUT tworker:{} v {n}\nREAD tworker:{}\n", n % 50, n % 50).unwrap();
                line.clear();
                r.read_line(&mut line).unwrap();
                assert_eq!(line.trim_end(), "OK");
                line.clear();
                r.read_line(&mut line).unwrap();
                assert_eq!(line.trim_end(), format!("v {n}"));
                n += 1;
            }
            n
        })
    };

    let mut senders = Vec::new();
    for seed in 1..=3u64 {
        let addr = server.resp_addr;
        senders.push(std::thread::spawn(move || garbage_sender(addr, seed, 150)));
    }
    senders.push(std::thread::spawn(move || {
        garbage_sender(text_addr, 99, 150)
    }));
    for s in senders {
        s.join().expect("garbage sender");
    }
    stop.store(true, Ordering::Relaxed);
    let resp_ops = resp_worker.join().expect("RESP worker");
    let text_ops = text_worker.join().expect("text worker");
    assert!(resp_ops > 0 && text_ops > 0, "workers made no progress");
    assert_healthy(&server);
    let mut c = Raw::connect(server.resp_addr);
    for i in 0..50u64.min(resp_ops) {
        assert!(matches!(
            c.call(&["GET", &format!("worker:{i}")]),
            R::Bulk(_)
        ));
    }
}

// ---------------------------------------------------------------------------
// Connection limit and idle timeout
// ---------------------------------------------------------------------------

/// Connects and PINGs, retrying while the server says it is full (a just
/// closed connection may not be released yet).
fn connect_when_free(addr: SocketAddr) -> Raw {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let mut c = Raw::connect(addr);
        let _ = c.writer.write_all(&encode(&["PING"]));
        let mut line = Vec::new();
        let _ = c.reader.read_until(b'\n', &mut line);
        if line == b"+PONG\r\n" {
            return c;
        }
        assert!(
            line.is_empty() || line == b"-ERR max number of clients reached\r\n",
            "unexpected reply {:?}",
            String::from_utf8_lossy(&line)
        );
        assert!(Instant::now() < deadline, "no free connection slot");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn connection_limit() {
    let server = TestServer::start_with(&["--connections-max", "4"]);
    let mut held: Vec<Raw> = (0..4)
        .map(|_| connect_when_free(server.resp_addr))
        .collect();
    for _ in 0..3 {
        let mut extra = Raw::connect(server.resp_addr);
        let got = extra.read_until_closed();
        assert_eq!(
            String::from_utf8_lossy(&got),
            "-ERR max number of clients reached\r\n"
        );
    }
    // The held connections are unaffected.
    for (i, c) in held.iter_mut().enumerate() {
        assert_eq!(c.call(&["SET", &format!("cl:{i}"), "v"]), ok());
    }
    // Closing one frees a slot.
    held.pop();
    let mut again = connect_when_free(server.resp_addr);
    assert_eq!(again.call(&["GET", "cl:0"]), bulk("v"));
    drop(again);
    drop(held);
    let mut server = server;
    assert!(server.is_running());
    let _ = connect_when_free(server.resp_addr);
}

#[test]
fn idle_timeout() {
    let server = TestServer::start_with(&["--idle-timeout-ms", "300"]);
    // A busy connection stays open across several timeout periods.
    let addr = server.resp_addr;
    let busy = std::thread::spawn(move || {
        let mut c = Raw::connect(addr);
        let until = Instant::now() + Duration::from_millis(1500);
        let mut n = 0;
        while Instant::now() < until {
            assert_eq!(c.call(&["PING"]), R::Simple("PONG".into()));
            n += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        n
    });
    let mut idle = Raw::connect(server.resp_addr);
    idle.send(&encode(&["PING"]));
    idle.expect_bytes(b"+PONG\r\n");
    let t0 = Instant::now();
    let rest = idle.read_until_closed();
    let waited = t0.elapsed();
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    assert!(
        waited >= Duration::from_millis(200),
        "closed too early: {waited:?}"
    );
    // A connection that never sends anything is closed too.
    let mut silent = Raw::connect(server.resp_addr);
    assert!(silent.read_until_closed().is_empty());
    assert!(busy.join().expect("busy connection") > 10);
    assert_healthy(&server);
    // And on the text listener.
    let text = TcpStream::connect(server.text_addr.expect("text listener")).unwrap();
    text.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut rest = Vec::new();
    (&text)
        .read_to_end(&mut rest)
        .expect("idle text connection closed");
    assert!(rest.is_empty());
}

/// A client that sends requests but never reads the replies is closed once
/// the replies back up for a timeout period or two, instead of holding its
/// connection (and the server's reply buffer) forever.
#[test]
fn a_client_that_never_reads_its_replies_is_closed() {
    let server = TestServer::start_with(&["--idle-timeout-ms", "300"]);
    let mut setup = Raw::connect(server.resp_addr);
    let value = "v".repeat(256 * 1024);
    assert_eq!(setup.call(&["SET", "big", &value]), R::Simple("OK".into()));
    // 400 GETs of 256 KiB: 100 MiB of replies, far more than the socket
    // buffers hold, so the server's writes stall.
    let mut stalled = Raw::connect(server.resp_addr);
    let request = encode(&["GET", "big"]);
    let pipeline: Vec<u8> = (0..400).flat_map(|_| request.iter().copied()).collect();
    stalled.send(&pipeline);
    std::thread::sleep(Duration::from_millis(1500));
    // Whatever was in flight, then the end: not 100 MiB, and no hang.
    let got = stalled.read_until_closed();
    assert!(
        got.len() < 400 * value.len(),
        "all replies arrived: {} bytes",
        got.len()
    );
    // The same on the text listener.
    let mut text = TcpStream::connect(server.text_addr.expect("text listener")).unwrap();
    text.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let reads: Vec<u8> = (0..400)
        .flat_map(|_| b"READ big\n".iter().copied())
        .collect();
    text.write_all(&reads).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let mut got = Vec::new();
    match (&text).read_to_end(&mut got) {
        Ok(_) => {}
        // Closed with replies unsent: the peer may see a reset.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the stalled text connection was not closed: {e}"),
    }
    assert!(
        got.starts_with(value.as_bytes()),
        "no READ reply arrived before the close: {:?}",
        String::from_utf8_lossy(&got[..got.len().min(80)])
    );
    assert!(
        got.len() < 400 * value.len(),
        "all text replies arrived: {} bytes",
        got.len()
    );
    // The server still serves (`setup` itself idled out meanwhile).
    drop(setup);
    let mut after = Raw::connect(server.resp_addr);
    assert_eq!(after.call(&["STRLEN", "big"]), R::Int(value.len() as i64));
    assert_healthy(&server);
}

// ---------------------------------------------------------------------------
// Size limits (strata's own flags)
// ---------------------------------------------------------------------------

fn expect_err_prefix<A: AsRef<[u8]>>(c: &mut Raw, args: &[A], prefix: &str) {
    match c.call(args) {
        R::Err(e) => assert!(
            e.starts_with(prefix),
            "{}: {e:?} does not start with {prefix:?}",
            show(args)
        ),
        other => panic!(
            "{}: expected an error starting with {prefix:?}, got {other:?}",
            show(args)
        ),
    }
}

/// Reads of an oversized key may either find nothing or be refused.
fn assert_absent_or_refused(c: &mut Raw, key: &str) {
    match c.call(&["GET", key]) {
        R::NullBulk => {}
        R::Err(e) => assert!(e.starts_with("ERR key too large"), "{e}"),
        other => panic!("GET of an oversized key: {other:?}"),
    }
}

#[test]
fn strata_oversized_keys_and_values() {
    let server = limited();
    let mut c = Raw::connect(server.resp_addr);
    let key64 = format!("ok:{}", "k".repeat(61));
    let key65 = format!("ok:{}", "k".repeat(62));
    let v1024 = "v".repeat(1024);
    let v1025 = "v".repeat(1025);
    assert_eq!(key64.len(), 64);

    // At the limit: fine.
    assert_eq!(c.call(&["SET", &key64, &v1024]), ok());
    assert_eq!(c.call(&["GET", &key64]), bulk(&v1024));

    // Oversized values: refused, nothing stored, the connection stays open.
    let tooval = "ERR value too large";
    for args in [
        vec!["SET", "ov:a", &v1025],
        vec!["SET", "ov:a", &v1025, "EX", "100"],
        vec!["SET", "ov:a", &v1025, "GET"],
        vec!["SETNX", "ov:a", &v1025],
        vec!["SETEX", "ov:a", "100", &v1025],
        vec!["PSETEX", "ov:a", "100000", &v1025],
        vec!["GETSET", "ov:a", &v1025],
        vec!["MSET", "ov:a", "small", "ov:b", &v1025],
        vec!["MSETNX", "ov:a", "small", "ov:b", &v1025],
        vec!["PUT", "ov:a", &v1025],
        vec!["BATCHPUT", "ov:a", "small", "ov:b", &v1025],
    ] {
        expect_err_prefix(&mut c, &args, tooval);
        assert_eq!(c.call(&["EXISTS", "ov:a", "ov:b"]), int(0), "{}", args[0]);
    }
    c.send(&encode(&["PING"]));
    c.expect_bytes(b"+PONG\r\n");

    // Growing a value past the limit is refused and leaves it as it was.
    assert_eq!(c.call(&["SET", "ov:g", &"g".repeat(1000)]), ok());
    assert!(matches!(
        c.call(&["APPEND", "ov:g", &"h".repeat(25)]),
        R::Err(_)
    ));
    assert!(matches!(
        c.call(&["SETRANGE", "ov:g", "1020", "0123456789"]),
        R::Err(_)
    ));
    assert!(matches!(
        c.call(&["SETRANGE", "ov:new", "1025", "x"]),
        R::Err(_)
    ));
    assert_eq!(c.call(&["STRLEN", "ov:g"]), int(1000));
    assert_eq!(c.call(&["EXISTS", "ov:new"]), int(0));
    assert_eq!(c.call(&["APPEND", "ov:g", &"h".repeat(24)]), int(1024));

    // Oversized keys.
    let tookey = "ERR key too large";
    for args in [
        vec!["SET", &key65, "v"],
        vec!["SETNX", &key65, "v"],
        vec!["SETEX", &key65, "100", "v"],
        vec!["GETSET", &key65, "v"],
        vec!["MSET", "ov:c", "v", &key65, "v"],
        vec!["MSETNX", "ov:c", "v", &key65, "v"],
        vec!["APPEND", &key65, "v"],
        vec!["INCR", &key65],
        vec!["INCRBYFLOAT", &key65, "1.5"],
        vec!["SETRANGE", &key65, "0", "v"],
        vec!["PUT", &key65, "v"],
        vec!["BATCHPUT", "ov:c", "v", &key65, "v"],
    ] {
        expect_err_prefix(&mut c, &args, tookey);
        assert_eq!(c.call(&["EXISTS", "ov:c"]), int(0), "{}", args[0]);
        assert_absent_or_refused(&mut c, &key65);
    }
    // RENAME onto an oversized name.
    assert_eq!(c.call(&["SET", "ov:src", "v"]), ok());
    expect_err_prefix(&mut c, &["RENAME", "ov:src", &key65], tookey);
    expect_err_prefix(&mut c, &["RENAMENX", "ov:src", &key65], tookey);
    assert_eq!(c.call(&["GET", "ov:src"]), bulk("v"));
    assert_absent_or_refused(&mut c, &key65);
    match c.call(&["KEYS", "ok:*"]) {
        R::Arr(keys) => assert_eq!(keys, vec![bulk(&key64)]),
        other => panic!("KEYS: {other:?}"),
    }
    c.send(&encode(&["PING"]));
    c.expect_bytes(b"+PONG\r\n");
    assert_healthy(&server);
}

/// Every key argument of every command in the command table, one at a
/// time, at the default limit plus one and past the engine's own length
/// (65,535 bytes, where the engine aborts the process): each is refused
/// before it reaches a handler, the store or the log, and the server stays
/// up. Before, DEL, UNLINK, GETDEL, EXPIRE, PERSIST and RENAME with such a
/// key aborted the server, and reads dropped the connection.
#[test]
fn every_key_argument_of_every_command_is_checked() {
    let server = TestServer::start();
    let mut c = Raw::connect(server.resp_addr);
    let mut checked = 0;
    for spec in strata_server::cmd::TABLE {
        // Commands of variable arity get two more arguments, so that a
        // second and third key position is tried too.
        let len = spec.arity.unsigned_abs() as usize + if spec.arity < 0 { 2 } else { 0 };
        for position in strata_server::cmd::key_positions(spec, len) {
            for key_len in [16 * 1024 + 1, 65_535, 65_536, 70_000] {
                let mut args = vec![spec.name.as_bytes().to_vec()];
                args.resize(len, b"1".to_vec());
                args[position] = vec![b'k'; key_len];
                let e = c.error(&args);
                assert!(
                    e.starts_with(&format!("ERR key too large ({key_len} bytes")),
                    "{} with a {key_len}-byte key at {position}: {e}",
                    spec.name
                );
                checked += 1;
            }
        }
    }
    // Every command family with keys was reached (the table has 40 or so).
    assert!(checked > 40 * 4, "only {checked} key arguments checked");

    let stream = TcpStream::connect(server.text_addr.expect("text listener")).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut r = BufReader::new(stream.try_clone().unwrap());
    let mut w = stream;
    let huge = "k".repeat(70_000);
    for line in [
        format!("DELETE {huge}"),
        format!("READ {huge}"),
        format!("PUT {huge} v"),
        format!("BATCHPUT a,{huge} v,v"),
        format!("READRANGE a {huge}"),
        format!("READRANGE {huge} {huge}z"),
    ] {
        w.write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut reply = String::new();
        r.read_line(&mut reply).unwrap();
        assert!(
            reply.starts_with("ERROR: key too large (70000 bytes"),
            "{}: {reply:?}",
            &line[..12]
        );
    }
    assert_healthy(&server);
}

#[test]
fn strata_oversized_over_text() {
    let server = limited();
    let stream = TcpStream::connect(server.text_addr.expect("text listener")).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut r = BufReader::new(stream.try_clone().unwrap());
    let mut w = stream;
    let mut req = |line: &str| -> String {
        w.write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut out = String::new();
        r.read_line(&mut out).unwrap();
        out.trim_end_matches(['\r', '\n']).to_string()
    };
    let v1025 = "v".repeat(1025);
    let key65 = format!("ot:{}", "k".repeat(62));
    assert_eq!(req(&format!("PUT ot:ok {}", "v".repeat(1024))), "OK");
    for line in [
        format!("PUT ot:a {v1025}"),
        format!("PUT {key65} v"),
        format!("BATCHPUT ot:a,ot:b small,{v1025}"),
        format!("BATCHPUT ot:a,{key65} small,v"),
    ] {
        let reply = req(&line);
        assert!(reply.starts_with("ERROR: "), "{reply:?}");
    }
    assert_eq!(req("READ ot:a"), "NOT_FOUND");
    assert_eq!(req("READ ot:b"), "NOT_FOUND");
    // An escaped value is limited by its decoded size: 1024 bytes via \x escapes.
    assert_eq!(req(&format!("PUT ot:esc {}", "\\x41".repeat(1024))), "OK");
    assert_eq!(req("READ ot:esc"), "A".repeat(1024));
    assert_healthy(&server);
}

#[test]
fn strata_request_size_limit() {
    let server = limited();
    // A declared bulk over --request-size-bytes-max.
    assert_protocol_error_then_close(&server, b"*3\r\n$3\r\nSET\r\n$5\r\nrq:k1\r\n$70000\r\n");
    // A declared array over it.
    assert_protocol_error_then_close(&server, b"*70000\r\n");
    // Many small arguments that add up to more than the limit: the
    // connection is closed (the error line may be lost to a reset since
    // the client is still sending) and nothing is stored.
    let mut args = vec!["MSET".to_string()];
    for i in 0..1000 {
        args.push(format!("rq:many{i}"));
        args.push("x".repeat(100));
    }
    let mut c = Raw::connect(server.resp_addr);
    let bytes = encode(&args);
    let mut w = c.writer.try_clone().unwrap();
    let t = std::thread::spawn(move || {
        let _ = w.write_all(&bytes);
    });
    let got = c.read_until_closed();
    t.join().unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.is_empty() || text.starts_with("-ERR Protocol error"),
        "{text:?}"
    );
    // A frame under the limit is fine.
    let mut args = vec!["MSET".to_string()];
    for i in 0..50 {
        args.push(format!("rq:ok{i}"));
        args.push("y".repeat(1000));
    }
    let mut c = Raw::connect(server.resp_addr);
    assert_eq!(c.call(&args), ok());
    assert_eq!(
        c.call(&["EXISTS", "rq:k1", "rq:many0", "rq:many999"]),
        int(0)
    );
    assert_eq!(c.call(&["STRLEN", "rq:ok49"]), int(1000));
    assert_healthy(&server);
}

#[test]
fn strata_default_limits() {
    let server = TestServer::start();
    let mut c = Raw::connect(server.resp_addr);
    const MIB: usize = 1 << 20;
    let key_ok = "k".repeat(16384);
    let key_big = "k".repeat(16385);
    assert_eq!(c.call(&["SET", &key_ok, "v"]), ok());
    assert_eq!(c.call(&["GET", &key_ok]), bulk("v"));
    expect_err_prefix(&mut c, &["SET", &key_big, "v"], "ERR key too large");

    let value_ok = vec![b'v'; 16 * MIB];
    assert_eq!(c.call(&[&b"SET"[..], b"dl:max", &value_ok]), ok());
    assert_eq!(c.call(&["STRLEN", "dl:max"]), int(16 * MIB as i64));
    let value_big = vec![b'v'; 16 * MIB + 1];
    expect_err_prefix(
        &mut c,
        &[&b"SET"[..], b"dl:big", &value_big],
        "ERR value too large",
    );
    assert_eq!(c.call(&["EXISTS", "dl:big"]), int(0));
    c.send(&encode(&["PING"]));
    c.expect_bytes(b"+PONG\r\n");

    // Just over the default 64 MiB request limit, from the header alone.
    assert_protocol_error_then_close(&server, b"*1\r\n$67108865\r\n");
    assert_healthy(&server);
}

/// Inline commands stop at 64 KiB without a newline, as in Redis, even
/// though the request limit is far larger: the server answers and closes
/// instead of buffering up to the request limit.
#[test]
fn oversized_inline_request_is_refused() {
    let server = TestServer::start();
    let got = send_and_collect(&server, &vec![b'a'; 70 * 1024]);
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("-ERR Protocol error: too big inline request"),
        "{text:?}"
    );
    assert_healthy(&server);
}
