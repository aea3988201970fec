//! Cross-protocol scripting: an HTTP request (which any web page can make a
//! browser send to a loopback port) must never run as Strata commands, on
//! either listener. The server closes such a connection unread and logs
//! Redis's warning. Checked with hand-made bytes (always) and with curl
//! (when it is installed), through a real server process.

mod common;

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use common::TestServer;
use common::raw::Raw;

const WARNING: &str = "Possible SECURITY ATTACK detected";

/// Sends `bytes` and checks that the server closes the connection without
/// a single reply byte.
fn expect_closed_silently(addr: SocketAddr, bytes: &[u8]) {
    let mut raw = Raw::connect(addr);
    raw.send(bytes);
    let got = raw.read_until_closed();
    assert!(
        got.is_empty(),
        "{:?} got a reply: {:?}",
        String::from_utf8_lossy(bytes),
        String::from_utf8_lossy(&got)
    );
}

/// One text-protocol request and its one-line reply.
fn text_call(addr: SocketAddr, line: &str) -> String {
    let mut raw = Raw::connect(addr);
    raw.send(format!("{line}\n").as_bytes());
    let mut reply = String::new();
    raw.reader.read_line(&mut reply).expect("text reply");
    reply.trim_end().to_string()
}

fn exists(server: &TestServer, key: &str) -> i64 {
    redis::cmd("EXISTS")
        .arg(key)
        .query(&mut server.redis())
        .expect("EXISTS")
}

fn warnings(server: &TestServer) -> usize {
    server.log().matches(WARNING).count()
}

/// Runs curl with a bounded time; `None` when curl is not installed.
fn curl(args: &[&str]) -> Option<()> {
    let status = Command::new("curl")
        .args(["-s", "-m", "5", "-o", "/dev/null"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status {
        // curl's own verdict does not matter (the server closes without an
        // HTTP reply); what was stored is checked afterwards.
        Ok(_) => Some(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED the curl half of this test: curl is not installed");
            None
        }
        Err(e) => panic!("running curl: {e}"),
    }
}

#[test]
fn http_requests_on_the_resp_port_run_nothing() {
    let server = TestServer::start();
    let addr = server.resp_addr;
    let body = "SET k v\r\n";
    let post = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    expect_closed_silently(addr, post.as_bytes());
    // `Host:` first (case-insensitive), and lowercase `post`.
    expect_closed_silently(addr, b"host: example\r\nSET k v\r\n");
    expect_closed_silently(addr, b"post /x HTTP/1.0\r\n\r\nSET k v\r\n");
    // As a RESP array too: the command name is what counts.
    expect_closed_silently(
        addr,
        b"*1\r\n$4\r\nPOST\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
    );
    assert_eq!(exists(&server, "k"), 0, "a SET behind POST/Host: ran");
    assert_eq!(warnings(&server), 4, "one warning per connection");

    let url = format!("http://{addr}/");
    if curl(&["--data-binary", "SET k v\r\n", &url]).is_some() {
        assert_eq!(exists(&server, "k"), 0, "curl's POST body ran as SET");
        assert_eq!(warnings(&server), 5);
    }
    // The connection that checks is itself served normally.
    let mut conn = server.redis();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut conn)
        .unwrap();
    assert_eq!(exists(&server, "k"), 1);
}

#[test]
fn http_requests_on_the_text_port_run_nothing() {
    let server = TestServer::start();
    let addr = server.text_addr.expect("text listener");
    expect_closed_silently(
        addr,
        b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nv",
    );
    expect_closed_silently(addr, b"GET / HTTP/1.1\r\nHost: h\r\n\r\nPUT /x v\n");
    expect_closed_silently(addr, b"POST /k HTTP/1.0\r\n\r\nPUT /x v\n");
    expect_closed_silently(addr, b"Host: h\nPUT /x v\n");
    assert_eq!(text_call(addr, "READ /x"), "NOT_FOUND");
    assert_eq!(warnings(&server), 4, "one warning per connection");

    let url = format!("http://{addr}/x");
    if curl(&["-X", "PUT", "--data-binary", "v", &url]).is_some() {
        let post_url = format!("http://{addr}/k");
        curl(&["--data-binary", "PUT /x v\n", &post_url]);
        assert_eq!(
            text_call(addr, "READ /x"),
            "NOT_FOUND",
            "curl's request ran"
        );
        assert_eq!(warnings(&server), 6);
    }
    // A PUT that only resembles a path is still an ordinary PUT.
    assert_eq!(text_call(addr, "PUT /x v"), "OK");
    assert_eq!(text_call(addr, "READ /x"), "v");
}
