//! The `strata` CLI end to end against a real server: every subcommand,
//! exit codes (0 ok, 1 not found, 2 error), stderr messages, STRATA_ADDR,
//! and connection failures.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{TestServer, run_cli, run_strata, strata_bin};

/// Runs the CLI *without* `--addr`, with extra environment variables (and
/// no inherited STRATA_* variables). Bounded wait.
fn run_cli_env(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(strata_bin());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("STRATA_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn strata cli");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(out) => out.expect("cli output"),
        Err(_) => {
            // SAFETY: kill(2) on the child we spawned and have not reaped.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
            panic!("cli {args:?} did not finish within 30 s");
        }
    };
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An address nobody listens on (bound, then released).
fn dead_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

/// Asserts exit code and exact stdout; on failure shows everything.
#[track_caller]
fn expect(out: &(i32, String, String), code: i32, stdout: &str, what: &str) {
    assert!(
        out.0 == code && out.1 == stdout,
        "{what}: expected exit {code} and stdout {stdout:?}, got exit {} stdout {:?} stderr {:?}",
        out.0,
        out.1,
        out.2
    );
}

#[track_caller]
fn expect_stderr(out: &(i32, String, String), what: &str) {
    assert!(
        !out.2.trim().is_empty(),
        "{what}: expected a message on stderr, got none (stdout {:?})",
        out.1
    );
    assert!(
        !out.2.contains("panicked at"),
        "{what}: the CLI panicked: {}",
        out.2
    );
}

fn redis_get(server: &TestServer, key: &[u8]) -> Option<Vec<u8>> {
    redis::cmd("GET")
        .arg(key)
        .query(&mut server.redis())
        .unwrap()
}

#[test]
fn ping_put_get_read_delete_exists() {
    let server = TestServer::start();
    let a = server.resp_addr;

    expect(&run_cli(&["ping"], a), 0, "PONG\n", "ping");
    expect(
        &run_cli(&["put", "greeting", "hello world"], a),
        0,
        "OK\n",
        "put",
    );
    assert_eq!(
        redis_get(&server, b"greeting").as_deref(),
        Some(&b"hello world"[..]),
        "put must be visible to RESP clients"
    );
    expect(&run_cli(&["get", "greeting"], a), 0, "hello world\n", "get");
    expect(
        &run_cli(&["read", "greeting"], a),
        0,
        "hello world\n",
        "read (alias of get)",
    );
    expect(
        &run_cli(&["exists", "greeting"], a),
        0,
        "true\n",
        "exists (present)",
    );

    // Overwrite, and values written by RESP clients are readable.
    expect(
        &run_cli(&["put", "greeting", "bye"], a),
        0,
        "OK\n",
        "put overwrite",
    );
    expect(
        &run_cli(&["get", "greeting"], a),
        0,
        "bye\n",
        "get after overwrite",
    );
    let _: () = redis::cmd("SET")
        .arg("from-redis")
        .arg("  spaced  ")
        .query(&mut server.redis())
        .unwrap();
    expect(
        &run_cli(&["get", "from-redis"], a),
        0,
        "  spaced  \n",
        "get of a value with spaces",
    );
    // Empty value.
    expect(
        &run_cli(&["put", "empty", ""], a),
        0,
        "OK\n",
        "put empty value",
    );
    expect(&run_cli(&["get", "empty"], a), 0, "\n", "get empty value");
    expect(
        &run_cli(&["exists", "empty"], a),
        0,
        "true\n",
        "an empty value exists",
    );

    // Not found.
    let out = run_cli(&["get", "missing"], a);
    expect(&out, 1, "", "get missing");
    expect_stderr(&out, "get missing");
    let out = run_cli(&["read", "missing"], a);
    expect(&out, 1, "", "read missing");
    expect_stderr(&out, "read missing");
    expect(
        &run_cli(&["exists", "missing"], a),
        1,
        "false\n",
        "exists (absent)",
    );

    // Delete.
    let out = run_cli(&["delete", "greeting"], a);
    assert_eq!(out.0, 0, "delete present key: {out:?}");
    assert!(out.2.is_empty() || !out.2.contains("panicked"), "{out:?}");
    assert_eq!(
        redis_get(&server, b"greeting"),
        None,
        "delete must remove the key"
    );
    let out = run_cli(&["delete", "greeting"], a);
    assert_eq!(out.0, 1, "delete of an absent key must exit 1: {out:?}");
    expect(
        &run_cli(&["exists", "greeting"], a),
        1,
        "false\n",
        "exists after delete",
    );
    expect(&run_cli(&["get", "greeting"], a), 1, "", "get after delete");
}

#[test]
fn batchput_is_atomic_and_checks_counts() {
    let server = TestServer::start();
    let a = server.resp_addr;
    let out = run_cli(&["batchput", "b1,b2,b3", "v1,v2,v3"], a);
    assert_eq!(out.0, 0, "batchput: {out:?}");
    let vals: Vec<Option<String>> = redis::cmd("MGET")
        .arg("b1")
        .arg("b2")
        .arg("b3")
        .query(&mut server.redis())
        .unwrap();
    assert_eq!(
        vals,
        vec![Some("v1".into()), Some("v2".into()), Some("v3".into())]
    );
    expect(&run_cli(&["get", "b2"], a), 0, "v2\n", "get after batchput");

    // Mismatched counts: exit 2, message, nothing written.
    for (keys, values) in [("m1,m2,m3", "x,y"), ("m1,m2", "x,y,z"), ("m1", "x,y")] {
        let out = run_cli(&["batchput", keys, values], a);
        expect(&out, 2, "", &format!("batchput {keys} {values}"));
        expect_stderr(&out, "batchput with mismatched counts");
    }
    let n: i64 = redis::cmd("EXISTS")
        .arg("m1")
        .arg("m2")
        .arg("m3")
        .query(&mut server.redis())
        .unwrap();
    assert_eq!(n, 0, "a rejected batchput must write nothing");

    // Overwrites are all applied together.
    assert_eq!(run_cli(&["batchput", "b1,b3", "w1,w3"], a).0, 0);
    let vals: Vec<Option<String>> = redis::cmd("MGET")
        .arg("b1")
        .arg("b2")
        .arg("b3")
        .query(&mut server.redis())
        .unwrap();
    assert_eq!(
        vals,
        vec![Some("w1".into()), Some("v2".into()), Some("w3".into())]
    );
}

#[test]
fn batchput_escapes_give_binary_values() {
    let server = TestServer::start();
    let a = server.resp_addr;
    // `\xHH` bytes, `\n`, `\\`, and `\,` for a literal comma.
    let out = run_cli(
        &[
            "batchput",
            r"e1,e2,e3,e4",
            r"a\x00b,line1\nline2,back\\slash,com\,ma",
        ],
        a,
    );
    assert_eq!(out.0, 0, "batchput with escapes: {out:?}");
    assert_eq!(redis_get(&server, b"e1").as_deref(), Some(&b"a\x00b"[..]));
    assert_eq!(
        redis_get(&server, b"e2").as_deref(),
        Some(&b"line1\nline2"[..])
    );
    assert_eq!(
        redis_get(&server, b"e3").as_deref(),
        Some(&b"back\\slash"[..])
    );
    assert_eq!(redis_get(&server, b"e4").as_deref(), Some(&b"com,ma"[..]));
    // High bytes.
    let out = run_cli(&["batchput", r"e5", r"\xff\xfe"], a);
    assert_eq!(out.0, 0, "{out:?}");
    assert_eq!(redis_get(&server, b"e5").as_deref(), Some(&b"\xff\xfe"[..]));
    // Escapes in keys too.
    let out = run_cli(&["batchput", r"k\x00ey", "v"], a);
    assert_eq!(out.0, 0, "{out:?}");
    assert_eq!(redis_get(&server, b"k\x00ey").as_deref(), Some(&b"v"[..]));
    // A malformed escape is an error, and writes nothing.
    let out = run_cli(&["batchput", "bad1,bad2", r"ok,\xZZ"], a);
    assert_eq!(out.0, 2, "malformed escape must exit 2: {out:?}");
    expect_stderr(&out, "malformed escape");
    assert_eq!(
        redis_get(&server, b"bad1"),
        None,
        "a rejected batchput must write nothing"
    );
}

#[test]
fn range_and_readrange() {
    let server = TestServer::start();
    let a = server.resp_addr;
    let mut c = server.redis();
    let _: () = redis::cmd("MSET")
        .arg("a")
        .arg("1")
        .arg("b")
        .arg("2")
        .arg("c")
        .arg("3")
        .arg("d")
        .arg("4")
        .arg("e")
        .arg("5")
        .query(&mut c)
        .unwrap();
    expect(
        &run_cli(&["range", "b", "d"], a),
        0,
        "b: 2\nc: 3\nd: 4\n",
        "range b d (inclusive)",
    );
    expect(
        &run_cli(&["readrange", "b", "d"], a),
        0,
        "b: 2\nc: 3\nd: 4\n",
        "readrange (alias)",
    );
    expect(
        &run_cli(&["range", "b", "d", "--limit", "2"], a),
        0,
        "b: 2\nc: 3\n",
        "range --limit 2",
    );
    expect(
        &run_cli(&["range", "a", "z"], a),
        0,
        "a: 1\nb: 2\nc: 3\nd: 4\ne: 5\n",
        "range a z",
    );
    expect(
        &run_cli(&["range", "bb", "cc"], a),
        0,
        "c: 3\n",
        "range between keys",
    );
    let out = run_cli(&["range", "x", "z"], a);
    assert_eq!(out.0, 0, "an empty range is not an error: {out:?}");
    assert!(out.1.trim().is_empty(), "empty range printed {:?}", out.1);
    expect(
        &run_cli(&["range", "e", "a"], a),
        0,
        "",
        "range with start > end",
    );
}

/// `range` and `keys` print keys and values escaped like the text protocol
/// (keys also escape spaces as `\s`), so every pair is one line; `get`
/// prints the raw value.
#[test]
fn range_and_keys_escape_binary_data() {
    let server = TestServer::start();
    let a = server.resp_addr;
    let mut c = server.redis();
    let _: () = redis::cmd("MSET")
        .arg(&b"x key"[..])
        .arg(&b"two words"[..])
        .arg(&b"x\x00nul"[..])
        .arg(&b"line\nbreak\ttab\\"[..])
        .query(&mut c)
        .unwrap();
    expect(
        &run_cli(&["range", "x", "y"], a),
        0,
        // Byte order: "x\0nul" < "x key".
        "x\\0nul: line\\nbreak\\ttab\\\\\nx\\skey: two words\n",
        "range with binary data",
    );
    let out = run_cli(&["keys", "x*"], a);
    assert_eq!(out.0, 0, "{out:?}");
    let mut lines: Vec<&str> = out.1.lines().collect();
    lines.sort();
    assert_eq!(lines, vec!["x\\0nul", "x\\skey"], "keys output: {out:?}");
    let _: () = redis::cmd("SET")
        .arg("raw")
        .arg(&b"a\x00b\nc"[..])
        .query(&mut c)
        .unwrap();
    let out = run_cli(&["get", "raw"], a);
    assert_eq!(out.0, 0, "{out:?}");
    assert_eq!(
        out.1.as_bytes(),
        b"a\x00b\nc\n",
        "get prints the raw value and a newline"
    );
}

#[test]
fn keys_lists_keys() {
    let server = TestServer::start();
    let a = server.resp_addr;
    let mut c = server.redis();
    let _: () = redis::cmd("MSET")
        .arg("user:1")
        .arg("x")
        .arg("user:2")
        .arg("y")
        .arg("order:1")
        .arg("z")
        .query(&mut c)
        .unwrap();
    let sorted_lines = |s: &str| {
        let mut v: Vec<String> = s.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    let out = run_cli(&["keys"], a);
    assert_eq!(out.0, 0, "{out:?}");
    assert_eq!(
        sorted_lines(&out.1),
        vec!["order:1", "user:1", "user:2"],
        "keys: {out:?}"
    );
    let out = run_cli(&["keys", "user:*"], a);
    assert_eq!(out.0, 0, "{out:?}");
    assert_eq!(
        sorted_lines(&out.1),
        vec!["user:1", "user:2"],
        "keys user:*: {out:?}"
    );
    let out = run_cli(&["keys", "nothing*"], a);
    assert_eq!(out.0, 0, "{out:?}");
    assert!(out.1.trim().is_empty(), "{out:?}");
}

#[test]
fn stats_prints_info() {
    let server = TestServer::start();
    let out = run_cli(&["stats"], server.resp_addr);
    assert_eq!(out.0, 0, "{out:?}");
    let lower = out.1.to_lowercase();
    assert!(
        lower.contains("persistence"),
        "stats must include the persistence section: {}",
        out.1
    );
    assert!(
        out.1.lines().any(|l| l.contains(':')),
        "stats should print INFO `field:value` lines: {}",
        out.1
    );
}

#[test]
fn strata_addr_env_and_flag_precedence() {
    let server = TestServer::start();
    let live = server.resp_addr.to_string();
    let dead = dead_addr().to_string();
    expect(
        &run_cli_env(&["ping"], &[("STRATA_ADDR", &live)]),
        0,
        "PONG\n",
        "STRATA_ADDR",
    );
    expect(
        &run_cli_env(&["put", "env-key", "env-value"], &[("STRATA_ADDR", &live)]),
        0,
        "OK\n",
        "put via STRATA_ADDR",
    );
    expect(
        &run_cli_env(&["get", "env-key"], &[("STRATA_ADDR", &live)]),
        0,
        "env-value\n",
        "get via STRATA_ADDR",
    );
    // --addr beats STRATA_ADDR.
    expect(
        &run_cli_env(&["--addr", &live, "ping"], &[("STRATA_ADDR", &dead)]),
        0,
        "PONG\n",
        "--addr over STRATA_ADDR",
    );
    let out = run_cli_env(&["--addr", &dead, "ping"], &[("STRATA_ADDR", &live)]);
    assert_eq!(
        out.0, 2,
        "--addr must win over STRATA_ADDR (dead --addr): {out:?}"
    );
}

#[test]
fn connection_refused_exits_2() {
    let dead = dead_addr();
    for args in [
        &["ping"][..],
        &["get", "k"],
        &["read", "k"],
        &["put", "k", "v"],
        &["delete", "k"],
        &["exists", "k"],
        &["batchput", "a,b", "1,2"],
        &["range", "a", "z"],
        &["readrange", "a", "z"],
        &["keys"],
        &["stats"],
    ] {
        let out = run_cli(args, dead);
        expect(&out, 2, "", &format!("{args:?} against a dead address"));
        expect_stderr(&out, &format!("{args:?} against a dead address"));
    }
}

#[test]
fn usage_errors_exit_2() {
    let server = TestServer::start();
    let a = server.resp_addr;
    for args in [
        &["no-such-command"][..],
        &["get"],
        &["put", "k"],
        &["batchput", "k"],
        &["range", "a"],
        &["range", "a", "z", "--limit", "x"],
    ] {
        let out = run_cli(args, a);
        assert_eq!(
            out.0, 2,
            "{args:?} is a usage error and must exit 2: {out:?}"
        );
        expect_stderr(&out, &format!("{args:?}"));
    }
    let out = run_cli_env(&["--addr", "not an address", "ping"], &[]);
    assert_eq!(out.0, 2, "unparsable --addr must exit 2: {out:?}");
    expect_stderr(&out, "unparsable --addr");
}

/// `strata completions <shell>`: a script for each shell that names the
/// subcommands (nested ones too), which bash parses; an unknown shell is
/// a usage error.
#[test]
fn completions_name_the_subcommands() {
    let subcommands = [
        "server",
        "check",
        "repair",
        "completions",
        "put",
        "get",
        "cluster",
    ];
    let markers = [
        ("bash", "complete -F"),
        ("zsh", "#compdef strata"),
        ("fish", "complete -c strata"),
        ("elvish", "edit:completion:arg-completer[strata]"),
        ("powershell", "Register-ArgumentCompleter"),
    ];
    for (shell, marker) in markers {
        let (code, script, stderr) = run_strata(&["completions", shell]);
        assert_eq!(code, 0, "strata completions {shell}: {stderr}");
        assert!(
            script.contains(marker),
            "{shell}: no {marker:?} in\n{script}"
        );
        for sub in subcommands.iter().chain(&["remove-node", "step-down"]) {
            assert!(script.contains(sub), "{shell}: {sub} is missing");
        }
    }
    // bash itself parses the script (`bash -n`).
    let (_, script, _) = run_strata(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("strata.bash");
    std::fs::write(&path, &script).unwrap();
    let out = Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("run bash -n");
    assert!(
        out.status.success(),
        "bash -n refused the script: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, _, stderr) = run_strata(&["completions", "tcsh"]);
    assert_eq!(code, 2, "an unknown shell is a usage error");
    assert!(
        stderr.contains("bash"),
        "the error lists the shells: {stderr}"
    );
}
