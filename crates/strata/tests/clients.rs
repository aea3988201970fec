//! CLIENT LIST / INFO / KILL / HELP and COMMAND DOCS / INFO / GETKEYS
//! against a real server, with raw RESP, redis-py and redis-cli; COMMAND
//! INFO and redis-cli's hints are compared with a real redis-server's.
//!
//! redis-py is installed with pip and redis-server (with redis-cli) with
//! apt-get when missing (`common::redis_server`).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::TestServer;
use common::raw::{R, Raw, int, ok};
use common::redis_server::{RedisServer, redis_cli_bin};
use common::tools::{ensure_redis_py, run_bounded};

/// How soon a killed connection must be closed (it is woken at once; the
/// bound leaves room for a loaded test machine).
const KILL_BOUND: Duration = Duration::from_secs(3);
/// Bound on one external tool run (redis-cli, python3).
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// Redis 7.2's CLIENT LIST fields, in order.
const FIELDS: &[&str] = &[
    "id",
    "addr",
    "laddr",
    "fd",
    "name",
    "age",
    "idle",
    "flags",
    "db",
    "sub",
    "psub",
    "ssub",
    "multi",
    "qbuf",
    "qbuf-free",
    "argv-mem",
    "multi-mem",
    "rbs",
    "rbp",
    "obl",
    "oll",
    "omem",
    "tot-mem",
    "events",
    "cmd",
    "user",
    "redir",
    "resp",
    "lib-name",
    "lib-ver",
];

type Line = HashMap<String, String>;

fn text_of(reply: R) -> String {
    match reply {
        R::Bulk(b) | R::Verbatim(_, b) => String::from_utf8(b).expect("utf-8"),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Parses CLIENT LIST's text, checking every line's fields and order.
fn parse_list(text: &str) -> Vec<Line> {
    assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
    text.lines()
        .map(|line| {
            let pairs: Vec<(String, String)> = line
                .split(' ')
                .map(|f| {
                    let (k, v) = f.split_once('=').unwrap_or_else(|| panic!("field {f:?}"));
                    (k.to_string(), v.to_string())
                })
                .collect();
            let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys, FIELDS, "CLIENT LIST fields in {line:?}");
            pairs.into_iter().collect()
        })
        .collect()
}

fn list(raw: &mut Raw, args: &[&str]) -> Vec<Line> {
    parse_list(&text_of(raw.call(args)))
}

fn client_id(raw: &mut Raw) -> i64 {
    match raw.call(&["CLIENT", "ID"]) {
        R::Int(id) => id,
        other => panic!("CLIENT ID: {other:?}"),
    }
}

fn local(raw: &Raw) -> String {
    raw.writer.local_addr().expect("local addr").to_string()
}

fn by_id(lines: &[Line], id: i64) -> Option<&Line> {
    lines.iter().find(|l| l["id"] == id.to_string())
}

/// A text-protocol connection that has run one PUT.
fn text_client(addr: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let mut stream = TcpStream::connect_timeout(&addr, KILL_BOUND).expect("connect text");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(b"PUT tk tv\n").expect("write");
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).expect("read");
    assert_eq!(line, "OK\n");
    (stream, reader)
}

/// Waits (bounded) until CLIENT LIST no longer lists `id`.
fn wait_unlisted(me: &mut Raw, id: i64, started: Instant) {
    loop {
        if by_id(&list(me, &["CLIENT", "LIST"]), id).is_none() {
            return;
        }
        assert!(
            started.elapsed() < KILL_BOUND,
            "client {id} still listed {:?} after the kill",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn client_list_shows_resp_and_text_connections() {
    let server = TestServer::start();
    let text_addr = server.text_addr.expect("text listener");
    let mut workers: Vec<Raw> = (0..4).map(|_| Raw::connect(server.resp_addr)).collect();
    let mut ids = Vec::new();
    for (i, w) in workers.iter_mut().enumerate() {
        ids.push(client_id(w));
        assert_eq!(w.call(&["CLIENT", "SETNAME", &format!("worker-{i}")]), ok());
    }
    let (text, _text_reader) = text_client(text_addr);
    let mut me = Raw::connect(server.resp_addr);
    let my_id = client_id(&mut me);
    let lines = list(&mut me, &["CLIENT", "LIST"]);
    assert_eq!(lines.len(), 6, "{lines:?}");
    for (i, w) in workers.iter().enumerate() {
        let l = by_id(&lines, ids[i]).expect("worker listed");
        assert_eq!(l["name"], format!("worker-{i}"));
        assert_eq!(l["addr"], local(w));
        assert_eq!(l["laddr"], server.resp_addr.to_string());
        assert_eq!((l["resp"].as_str(), l["flags"].as_str()), ("2", "N"));
        assert_eq!(
            (l["multi"].as_str(), l["cmd"].as_str()),
            ("-1", "client|setname")
        );
        assert!(l["fd"].parse::<i64>().unwrap() > 0 && l["age"].parse::<u64>().is_ok());
    }
    // The text connection: resp=0, the text listener as laddr.
    let t = lines
        .iter()
        .find(|l| l["addr"] == text.local_addr().unwrap().to_string())
        .expect("text connection listed");
    assert_eq!(
        (t["resp"].as_str(), t["laddr"].clone(), t["cmd"].as_str()),
        ("0", text_addr.to_string(), "put")
    );
    let mine = by_id(&lines, my_id).expect("caller listed");
    assert_eq!(
        (mine["cmd"].as_str(), mine["idle"].as_str()),
        ("client|list", "0")
    );

    // Filters, in the order asked; unknown ids are left out.
    let picked = list(
        &mut me,
        &[
            "CLIENT",
            "LIST",
            "ID",
            &ids[2].to_string(),
            &ids[0].to_string(),
            "999999",
        ],
    );
    let got: Vec<&str> = picked.iter().map(|l| l["name"].as_str()).collect();
    assert_eq!(got, ["worker-2", "worker-0"]);
    assert_eq!(
        list(&mut me, &["CLIENT", "LIST", "TYPE", "normal"]).len(),
        6
    );
    for other in ["master", "replica", "pubsub", "SLAVE"] {
        assert!(list(&mut me, &["CLIENT", "LIST", "TYPE", other]).is_empty());
    }
    for (args, error) in [
        (
            &["CLIENT", "LIST", "TYPE", "foo"][..],
            "ERR Unknown client type 'foo'",
        ),
        (
            &["CLIENT", "LIST", "ID", "abc"][..],
            "ERR Invalid client ID",
        ),
        (&["CLIENT", "LIST", "foo"][..], "ERR syntax error"),
        (&["CLIENT", "LIST", "ID"][..], "ERR syntax error"),
        (
            &["CLIENT", "LIST", "TYPE", "normal", "ID", "1"][..],
            "ERR syntax error",
        ),
    ] {
        assert_eq!(me.error(args), error, "{args:?}");
    }

    // MULTI and READONLY show in flags; MULTI's queue in multi=.
    assert_eq!(workers[0].call(&["MULTI"]), ok());
    for _ in 0..2 {
        assert_eq!(
            workers[0].call(&["SET", "a", "1"]),
            R::Simple("QUEUED".into())
        );
    }
    assert_eq!(workers[1].call(&["READONLY"]), ok());
    assert_eq!(workers[2].call(&["CLIENT", "NO-EVICT", "on"]), ok());
    let lines = list(&mut me, &["CLIENT", "LIST"]);
    let w0 = by_id(&lines, ids[0]).unwrap();
    assert_eq!((w0["flags"].as_str(), w0["multi"].as_str()), ("x", "2"));
    assert!(w0["multi-mem"].parse::<u64>().unwrap() > 0);
    assert_eq!(by_id(&lines, ids[1]).unwrap()["flags"], "r");
    assert_eq!(by_id(&lines, ids[1]).unwrap()["cmd"], "readonly");
    assert_eq!(by_id(&lines, ids[2]).unwrap()["flags"], "e");

    // A closed connection leaves the list.
    drop(workers.pop());
    wait_unlisted(&mut me, ids[3], Instant::now());
}

#[test]
fn client_info_help_and_the_subcommands_without_a_feature() {
    let server = TestServer::start();
    let mut me = Raw::connect(server.resp_addr);
    let id = client_id(&mut me);
    assert_eq!(me.call(&["CLIENT", "SETNAME", "inspector"]), ok());
    assert_eq!(me.call(&["CLIENT", "SETINFO", "LIB-NAME", "rawtest"]), ok());
    assert_eq!(me.call(&["CLIENT", "SETINFO", "LIB-VER", "1.2"]), ok());
    let info = parse_list(&text_of(me.call(&["CLIENT", "INFO"])));
    assert_eq!(info.len(), 1);
    let l = &info[0];
    assert_eq!(l["id"], id.to_string());
    assert_eq!(l["addr"], local(&me));
    assert_eq!(
        (l["name"].as_str(), l["cmd"].as_str()),
        ("inspector", "client|info")
    );
    assert_eq!(
        (l["lib-name"].as_str(), l["lib-ver"].as_str()),
        ("rawtest", "1.2")
    );
    assert_eq!(l["argv-mem"], "10", "CLIENT INFO's own arguments");
    // In RESP3 it is a verbatim string, as in Redis.
    assert!(matches!(me.call(&["HELLO", "3"]), R::Map(_)));
    match me.call(&["CLIENT", "INFO"]) {
        R::Verbatim(format, text) => {
            assert_eq!(format, "txt");
            let l = &parse_list(&String::from_utf8(text).unwrap())[0];
            assert_eq!(l["resp"], "3");
        }
        other => panic!("CLIENT INFO in RESP3: {other:?}"),
    }
    assert!(matches!(me.call(&["HELLO", "2"]), R::Arr(_)));

    // HELP: status lines naming every subcommand.
    let R::Arr(help) = me.call(&["CLIENT", "HELP"]) else {
        panic!("CLIENT HELP is an array")
    };
    let help: Vec<String> = help
        .into_iter()
        .map(|l| match l {
            R::Simple(s) => s,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(help[0].starts_with("CLIENT <subcommand>"));
    for sub in [
        "KILL", "LIST", "INFO", "ID", "SETNAME", "GETNAME", "SETINFO", "NO-EVICT", "NO-TOUCH",
        "HELP",
    ] {
        assert!(
            help.iter().any(|l| l.split(' ').next() == Some(sub)),
            "{sub} in {help:?}"
        );
    }
    assert!(help.iter().any(|l| l.contains("MAXAGE")));

    // What Redis answers a client that does not use the feature, or a
    // clear refusal.
    assert_eq!(me.call(&["CLIENT", "GETREDIR"]), int(-1));
    assert_eq!(me.call(&["CLIENT", "UNBLOCK", "1"]), int(0));
    assert_eq!(me.call(&["CLIENT", "UNPAUSE"]), ok());
    assert_eq!(me.call(&["CLIENT", "TRACKING", "off"]), ok());
    assert_eq!(me.call(&["CLIENT", "REPLY", "ON"]), ok());
    assert_eq!(me.call(&["CLIENT", "NO-TOUCH", "on"]), ok());
    for (args, error) in [
        (
            &["CLIENT", "PAUSE", "100"][..],
            "ERR CLIENT PAUSE is not supported by Strata",
        ),
        (
            &["CLIENT", "TRACKING", "on"][..],
            "ERR CLIENT TRACKING ON (client-side caching) is not supported by Strata",
        ),
        (
            &["CLIENT", "REPLY", "OFF"][..],
            "ERR CLIENT REPLY OFF|SKIP is not supported by Strata",
        ),
        (
            &["CLIENT", "CACHING", "yes"][..],
            "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
        ),
        (
            &["CLIENT", "UNBLOCK", "1", "maybe"][..],
            "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
        ),
        (&["CLIENT", "NO-EVICT", "maybe"][..], "ERR syntax error"),
        (
            &["CLIENT", "FOO"][..],
            "ERR unknown subcommand 'FOO'. Try CLIENT HELP.",
        ),
        (
            &["CLIENT"][..],
            "ERR wrong number of arguments for 'client' command",
        ),
        (
            &["CLIENT", "KILL"][..],
            "ERR wrong number of arguments for 'client|kill' command",
        ),
        (
            &["CLIENT", "ID", "x"][..],
            "ERR wrong number of arguments for 'client|id' command",
        ),
        (
            &["CLIENT", "INFO", "x"][..],
            "ERR wrong number of arguments for 'client|info' command",
        ),
    ] {
        assert_eq!(me.error(args), error, "{args:?}");
    }
    let lines = list(&mut me, &["CLIENT", "LIST", "ID", &id.to_string()]);
    assert_eq!(lines[0]["flags"], "T", "NO-TOUCH shows as in Redis");
}

#[test]
fn client_kill_by_id_addr_laddr_and_the_old_form() {
    let server = TestServer::start();
    let mut me = Raw::connect(server.resp_addr);
    let my_id = client_id(&mut me);

    // By ID: the idle connection sees EOF at once.
    let mut a = Raw::connect(server.resp_addr);
    let a_id = client_id(&mut a);
    let started = Instant::now();
    assert_eq!(
        me.call(&["CLIENT", "KILL", "ID", &a_id.to_string()]),
        int(1)
    );
    a.expect_closed();
    assert!(
        started.elapsed() < KILL_BOUND,
        "closed after {:?}",
        started.elapsed()
    );
    wait_unlisted(&mut me, a_id, started);

    // By ADDR, by LADDR with TYPE and ID (filters AND-ed).
    let mut b = Raw::connect(server.resp_addr);
    // Answered: accepted and registered.
    assert_eq!(b.call(&["PING"]), R::Simple("PONG".into()));
    assert_eq!(me.call(&["CLIENT", "KILL", "ADDR", &local(&b)]), int(1));
    b.expect_closed();
    let mut c = Raw::connect(server.resp_addr);
    let c_id = client_id(&mut c).to_string();
    let laddr = server.resp_addr.to_string();
    assert_eq!(
        me.call(&["CLIENT", "KILL", "TYPE", "pubsub", "ID", &c_id]),
        int(0)
    );
    assert_eq!(
        me.call(&["CLIENT", "KILL", "LADDR", "127.0.0.1:1", "ID", &c_id]),
        int(0)
    );
    assert_eq!(
        me.call(&[
            "CLIENT", "KILL", "USER", "default", "LADDR", &laddr, "TYPE", "normal", "ID", &c_id
        ]),
        int(1)
    );
    c.expect_closed();

    // The old form: OK, or an error when nobody matches.
    let mut d = Raw::connect(server.resp_addr);
    assert_eq!(d.call(&["PING"]), R::Simple("PONG".into()));
    let d_addr = local(&d);
    assert_eq!(me.call(&["CLIENT", "KILL", &d_addr]), ok());
    d.expect_closed();
    assert_eq!(me.error(&["CLIENT", "KILL", &d_addr]), "ERR No such client");

    // SKIPME: on by default in the new form.
    let mine = my_id.to_string();
    assert_eq!(me.call(&["CLIENT", "KILL", "ID", &mine]), int(0));
    assert_eq!(
        me.call(&["CLIENT", "KILL", "ADDR", &local(&me), "SKIPME", "yes"]),
        int(0)
    );

    // Redis's errors.
    for (args, error) in [
        (
            &["CLIENT", "KILL", "ID", "abc"][..],
            "ERR client-id should be greater than 0",
        ),
        (
            &["CLIENT", "KILL", "ID", "0"][..],
            "ERR client-id should be greater than 0",
        ),
        (
            &["CLIENT", "KILL", "TYPE", "foo"][..],
            "ERR Unknown client type 'foo'",
        ),
        (
            &["CLIENT", "KILL", "USER", "nobody"][..],
            "ERR No such user 'nobody'",
        ),
        (
            &["CLIENT", "KILL", "SKIPME", "maybe"][..],
            "ERR syntax error",
        ),
        (&["CLIENT", "KILL", "foo", "bar"][..], "ERR syntax error"),
        (
            &["CLIENT", "KILL", "ID", "1", "TYPE"][..],
            "ERR syntax error",
        ),
        (&["CLIENT", "KILL", "ID"][..], "ERR No such client"),
    ] {
        assert_eq!(me.error(args), error, "{args:?}");
    }

    // Killing yourself: the reply first, then the close.
    let mut e = Raw::connect(server.resp_addr);
    let e_id = client_id(&mut e).to_string();
    assert_eq!(
        e.call(&["CLIENT", "KILL", "ID", &e_id, "SKIPME", "no"]),
        int(1)
    );
    e.expect_closed();
    let mut f = Raw::connect(server.resp_addr);
    let f_addr = local(&f);
    assert_eq!(f.call(&["CLIENT", "KILL", &f_addr]), ok());
    f.expect_closed();
    // Inside a transaction: EXEC answers, then the connection closes.
    let mut g = Raw::connect(server.resp_addr);
    let g_id = client_id(&mut g).to_string();
    assert_eq!(g.call(&["MULTI"]), ok());
    let queued = R::Simple("QUEUED".into());
    assert_eq!(
        g.call(&["CLIENT", "KILL", "ID", &g_id, "SKIPME", "no"]),
        queued
    );
    assert_eq!(g.call(&["CLIENT", "KILL", "ID", &g_id]), queued);
    assert_eq!(g.call(&["EXEC"]), R::Arr(vec![int(1), int(0)]));
    g.expect_closed();
    assert_eq!(me.call(&["PING"]), R::Simple("PONG".into()));
}

#[test]
fn client_kill_closes_text_old_and_stuck_connections() {
    let server = TestServer::start();
    let text_addr = server.text_addr.expect("text listener");
    let mut me = Raw::connect(server.resp_addr);

    // A text-protocol connection, found by its laddr, killed by ID.
    let (text, mut text_reader) = text_client(text_addr);
    let lines = list(&mut me, &["CLIENT", "LIST"]);
    let t = lines
        .iter()
        .find(|l| l["addr"] == text.local_addr().unwrap().to_string())
        .expect("text connection listed");
    let started = Instant::now();
    assert_eq!(
        me.call(&["CLIENT", "KILL", "LADDR", &text_addr.to_string()]),
        int(1)
    );
    let mut rest = Vec::new();
    text_reader
        .read_to_end(&mut rest)
        .expect("EOF, not a timeout");
    assert!(
        rest.is_empty() && started.elapsed() < KILL_BOUND,
        "{rest:?} {:?}",
        started.elapsed()
    );
    wait_unlisted(&mut me, t["id"].parse().unwrap(), started);

    // MAXAGE: connections older than the age given.
    let mut old: Vec<Raw> = (0..2).map(|_| Raw::connect(server.resp_addr)).collect();
    for o in &mut old {
        assert_eq!(o.call(&["PING"]), R::Simple("PONG".into()));
    }
    std::thread::sleep(Duration::from_millis(2100));
    let mut young = Raw::connect(server.resp_addr);
    let mut fresh = Raw::connect(server.resp_addr);
    // `me` is old too; `fresh`, the caller, is skipped anyway.
    assert_eq!(fresh.call(&["CLIENT", "KILL", "MAXAGE", "1"]), int(3));
    for o in old.iter_mut().chain([&mut me]) {
        o.expect_closed();
    }
    assert_eq!(young.call(&["PING"]), R::Simple("PONG".into()));
    let mut me = fresh;

    // A connection blocked sending replies its client does not read.
    let value = "v".repeat(1 << 20);
    assert_eq!(me.call(&["SET", "big", &value]), ok());
    let mut stuck = Raw::connect(server.resp_addr);
    let stuck_id = client_id(&mut stuck);
    let mut pipeline = Vec::new();
    for _ in 0..48 {
        pipeline.extend_from_slice(b"GET big\r\n");
    }
    stuck.send(&pipeline);
    // Let it fill the socket buffers and block.
    std::thread::sleep(Duration::from_millis(500));
    assert!(by_id(&list(&mut me, &["CLIENT", "LIST"]), stuck_id).is_some());
    let started = Instant::now();
    assert_eq!(
        me.call(&["CLIENT", "KILL", "ID", &stuck_id.to_string()]),
        int(1)
    );
    wait_unlisted(&mut me, stuck_id, started);
    let sent = stuck.read_until_closed();
    assert!(sent.len() < 48 << 20, "the kill cut the replies short");
}

/// Runs a client tool within `TOOL_TIMEOUT`: whether it succeeded, its
/// stdout and stderr. Panics if it cannot start or does not finish.
fn run_tool(cmd: &mut Command) -> (bool, String, String) {
    let out = run_bounded(cmd, TOOL_TIMEOUT).unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const REDIS_PY_SCRIPT: &str = r#"
import sys, time, redis
host, port = sys.argv[1], int(sys.argv[2])
main = redis.Redis(host=host, port=port, client_name="py-main")
others = [redis.Redis(host=host, port=port, client_name=f"py-{i}") for i in range(3)]
for o in others:
    o.ping()
listed = main.client_list()
names = {c["name"] for c in listed}
assert {"py-main", "py-0", "py-1", "py-2"} <= names, names
# redis-py announces itself with CLIENT SETINFO at connect.
assert all(c["lib-name"].startswith("redis-py") for c in listed if c["name"].startswith("py-")), listed
assert all(c["resp"] == "2" for c in listed), listed
info = main.client_info()
assert info["name"] == "py-main" and info["cmd"] == "client|info", info
victim = next(c for c in listed if c["name"] == "py-1")
assert main.client_kill_filter(_id=victim["id"]) == 1
assert main.client_kill_filter(_type="pubsub") == 0
deadline = time.time() + 3
while any(c["name"] == "py-1" for c in main.client_list()):
    assert time.time() < deadline, "py-1 still listed"
    time.sleep(0.01)
assert main.client_kill(others[0].client_info()["addr"]) is True
assert [c["name"] for c in main.client_list(client_id=[int(info["id"])])] == ["py-main"]
r3 = redis.Redis(host=host, port=port, protocol=3, client_name="py-resp3")
assert r3.client_info()["resp"] == "3"
print("ok")
"#;

#[test]
fn redis_py_lists_and_kills_clients() {
    ensure_redis_py();
    let server = TestServer::start();
    let (ok, out, err) = run_tool(
        Command::new("python3")
            .args(["-c", REDIS_PY_SCRIPT])
            .arg(server.resp_addr.ip().to_string())
            .arg(server.resp_addr.port().to_string()),
    );
    assert!(
        ok && out.trim() == "ok",
        "redis-py script failed:\n{out}\n{err}"
    );
}

/// The entries of COMMAND DOCS (RESP3), by name.
fn docs_map(raw: &mut Raw, names: &[&str]) -> HashMap<String, Vec<(R, R)>> {
    let mut args = vec!["COMMAND", "DOCS"];
    args.extend_from_slice(names);
    let R::Map(entries) = raw.call(&args) else {
        panic!("COMMAND DOCS is a map")
    };
    entries
        .into_iter()
        .map(|(name, entry)| {
            let R::Bulk(name) = name else {
                panic!("{name:?}")
            };
            let R::Map(fields) = entry else {
                panic!("{entry:?}")
            };
            (String::from_utf8(name).unwrap(), fields)
        })
        .collect()
}

fn field<'a>(fields: &'a [(R, R)], name: &str) -> Option<&'a R> {
    fields
        .iter()
        .find(|(k, _)| *k == R::Bulk(name.as_bytes().to_vec()))
        .map(|(_, v)| v)
}

fn names_of(reply: R) -> Vec<String> {
    let R::Arr(items) = reply else {
        panic!("{reply:?}")
    };
    items.into_iter().map(text_of).collect()
}

#[test]
fn command_docs_cover_every_command() {
    let server = TestServer::start();
    let mut me = Raw::connect(server.resp_addr);
    assert!(matches!(me.call(&["HELLO", "3"]), R::Map(_)));
    let listed = names_of(me.call(&["COMMAND", "LIST"]));
    let top: BTreeSet<&str> = listed
        .iter()
        .filter(|n| !n.contains('|'))
        .map(String::as_str)
        .collect();
    assert_eq!(me.call(&["COMMAND", "COUNT"]), int(top.len() as i64));
    let docs = docs_map(&mut me, &[]);
    assert_eq!(
        docs.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        top
    );
    for (name, fields) in &docs {
        for key in ["summary", "since", "group", "complexity"] {
            assert!(
                matches!(field(fields, key), Some(R::Bulk(b)) if !b.is_empty()),
                "{name}: {key}"
            );
        }
    }
    // Every subcommand COMMAND LIST names is documented under its container.
    for sub in listed.iter().filter(|n| n.contains('|')) {
        let container = sub.split('|').next().unwrap();
        let Some(R::Map(subs)) = field(&docs[container], "subcommands") else {
            panic!("{container} has no subcommands in COMMAND DOCS")
        };
        assert!(
            subs.iter()
                .any(|(k, _)| *k == R::Bulk(sub.as_bytes().to_vec())),
            "{sub}"
        );
        assert_eq!(docs_map(&mut me, &[sub]).len(), 1, "COMMAND DOCS {sub}");
    }
    // Strata's own commands say so.
    let range = &docs_map(&mut me, &["RANGE"])["range"];
    assert_eq!(field(range, "group"), Some(&R::Bulk(b"strata".to_vec())));
    assert!(docs_map(&mut me, &["nosuch"]).is_empty());
    // In RESP2 the same reply, flattened, as Redis does.
    assert!(matches!(me.call(&["HELLO", "2"]), R::Arr(_)));
    let R::Arr(flat) = me.call(&["COMMAND", "DOCS", "get"]) else {
        panic!("RESP2 docs")
    };
    assert_eq!(flat[0], R::Bulk(b"get".to_vec()));

    // redis-cli builds its help from them.
    let cli = redis_cli_bin();
    let port = server.resp_addr.port().to_string();
    let (ok, out, err) = run_tool(Command::new(&cli).args(["-p", &port, "help", "range"]));
    let out = strip_ansi(&out);
    assert!(
        ok && out.contains("RANGE start end [LIMIT count]"),
        "{out}\n{err}"
    );
    assert!(
        out.contains("Strata: return the pairs") && out.contains("group: strata"),
        "{out}"
    );
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One COMMAND INFO entry: name, arity, flags, first/last/step, subcommands.
struct Info {
    arity: i64,
    flags: BTreeSet<String>,
    keys: (i64, i64, i64),
    subs: HashMap<String, Info>,
}

fn parse_info(reply: &R) -> Option<(String, Info)> {
    let R::Arr(e) = reply else { return None };
    let text = |r: &R| match r {
        R::Bulk(b) => String::from_utf8(b.clone()).unwrap(),
        R::Simple(s) => s.clone(),
        other => panic!("{other:?}"),
    };
    let num = |r: &R| match r {
        R::Int(n) => *n,
        other => panic!("{other:?}"),
    };
    let list = |r: &R| match r {
        R::Arr(v) | R::Set(v) => v.clone(),
        other => panic!("{other:?}"),
    };
    let subs = list(&e[9]).iter().filter_map(parse_info).collect();
    Some((
        text(&e[0]),
        Info {
            arity: num(&e[1]),
            flags: list(&e[2]).iter().map(text).collect(),
            keys: (num(&e[3]), num(&e[4]), num(&e[5])),
            subs,
        },
    ))
}

/// Commands whose redis-cli hint differs from Redis 7.0's on purpose.
const HINT_DIFFERENCES: &[(&str, &str)] = &[
    (
        "command getkeys",
        "Redis 7.0 documents no arguments; Strata documents its two",
    ),
    (
        "client kill",
        "Strata has Redis 7.4's MAXAGE, and SKIPME's YES|NO as 7.2 writes it (7.0: yes/no)",
    ),
];

/// Commands whose COMMAND INFO flags differ from Redis 7.0's on purpose:
/// (name, flags Redis has that Strata leaves out, why).
const FLAG_DIFFERENCES: &[(&str, &[&str], &str)] = &[(
    "exec",
    &["skip_slowlog"],
    "Strata cannot time the commands inside a transaction one by one, so it logs EXEC itself in SLOWLOG",
)];

#[test]
fn command_info_and_hints_match_redis_server() {
    let redis = RedisServer::start();
    let server = TestServer::start();
    let mut ours = Raw::connect(server.resp_addr);
    let mut theirs = Raw::connect(redis.addr);
    let R::Arr(all) = ours.call(&["COMMAND"]) else {
        panic!("COMMAND")
    };
    let mut shared = Vec::new();
    for entry in &all {
        let (name, mine) = parse_info(entry).expect("COMMAND INFO entry");
        let R::Arr(found) = theirs.call(&["COMMAND", "INFO", &name]) else {
            panic!("redis")
        };
        let Some((_, real)) = parse_info(&found[0]) else {
            continue; // Strata's own command
        };
        assert_eq!(mine.arity, real.arity, "{name}: arity");
        assert_eq!(mine.keys, real.keys, "{name}: first/last/step");
        let mut expected = real.flags.clone();
        if let Some((_, left_out, _)) = FLAG_DIFFERENCES.iter().find(|(n, _, _)| *n == name) {
            for flag in *left_out {
                assert!(expected.remove(*flag), "{name}: Redis has no {flag} now");
            }
        }
        assert_eq!(mine.flags, expected, "{name}: flags");
        shared.push(name.clone());
        for (sub, m) in &mine.subs {
            let Some(r) = real.subs.get(sub) else {
                continue;
            };
            assert_eq!((m.arity, &m.flags), (r.arity, &r.flags), "{sub}");
            shared.push(sub.replace('|', " "));
        }
    }
    assert!(
        shared.len() > 80,
        "only {} commands shared: {shared:?}",
        shared.len()
    );

    // COMMAND GETKEYS, as cluster clients use it.
    for call in [
        &["SET", "a", "b"][..],
        &["MSET", "a", "1", "b", "2"][..],
        &["GETEX", "k", "PERSIST"][..],
        &["RENAME", "x", "y"][..],
        &["PING"][..],
        &["SET", "a"][..],
        &["NOSUCH", "a"][..],
    ] {
        let mut args = vec!["COMMAND", "GETKEYS"];
        args.extend_from_slice(call);
        assert_eq!(
            ours.call(&args),
            theirs.call(&args),
            "COMMAND GETKEYS {call:?}"
        );
    }

    // redis-cli's hints for every shared command and subcommand.
    let cli = redis_cli_bin();
    let hint = |port: u16, name: &str| {
        let mut cmd = Command::new(&cli);
        cmd.args(["-p", &port.to_string(), "help"])
            .args(name.split(' '));
        let (ok, out, err) = run_tool(&mut cmd);
        assert!(ok, "redis-cli help {name}: {err}");
        strip_ansi(&out)
            .lines()
            .nth(1)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let mut differ = Vec::new();
    for name in &shared {
        if HINT_DIFFERENCES.iter().any(|(n, _)| n == name)
            || ["client", "command", "config", "cluster"].contains(&name.as_str())
        {
            continue;
        }
        let (mine, real) = (
            hint(server.resp_addr.port(), name),
            hint(redis.addr.port(), name),
        );
        if mine != real {
            differ.push(format!("{name}:\n  strata: {mine}\n  redis:  {real}"));
        }
    }
    assert!(
        differ.is_empty(),
        "redis-cli hints differ:\n{}",
        differ.join("\n")
    );
}
