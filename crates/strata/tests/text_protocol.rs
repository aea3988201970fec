//! End-to-end tests of strata's line-based text protocol (`--text-listen`):
//! PUT / BATCHPUT / READ / READRANGE / DELETE, escapes, errors, and
//! cross-visibility with the RESP listener.
//!
//! Reply escapes are checked by decoding them (any of the documented escape
//! forms is accepted) and by checking that a reply line never carries a raw
//! control byte, so the tests pin down behaviour, not one spelling of it,
//! except where the contract fixes it (space in keys is `\s`).

mod common;

/// Key-value pairs of a READRANGE reply.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

use common::TestServer;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// One server shared by the tests of this file that run at the same time;
/// killed when the last of them finishes.
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

struct Text {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Text {
    fn connect(server: &TestServer) -> Text {
        let addr: SocketAddr = server.text_addr.expect("server has a text listener");
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect text");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Text {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write request");
    }

    /// One reply line, without its "\n" / "\r\n"; checked to be clean text.
    fn line(&mut self) -> String {
        let mut buf = Vec::new();
        self.reader
            .read_until(b'\n', &mut buf)
            .expect("read reply line");
        assert!(
            buf.ends_with(b"\n"),
            "reply not newline-terminated (connection closed?): {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.pop();
        if buf.ends_with(b"\r") {
            buf.pop();
        }
        let line = String::from_utf8(buf.clone()).unwrap_or_else(|_| {
            panic!("reply line is not valid UTF-8 (unescaped bytes?): {buf:?}")
        });
        assert!(
            !line.chars().any(|c| c.is_control()),
            "reply line holds a raw control character: {line:?}"
        );
        line
    }

    /// Sends one request line (a "\n" is added) and reads one reply line.
    fn req(&mut self, line: &str) -> String {
        self.req_bytes(line.as_bytes())
    }

    fn req_bytes(&mut self, line: &[u8]) -> String {
        let mut data = line.to_vec();
        data.push(b'\n');
        self.send(&data);
        self.line()
    }

    fn expect_error(&mut self, line: &str) -> String {
        let reply = self.req(line);
        assert!(
            reply.starts_with("ERROR: ") && reply.len() > "ERROR: ".len(),
            "expected `ERROR: <message>` for {line:?}, got {reply:?}"
        );
        reply
    }

    /// Reads the pairs of a READRANGE reply and its terminator (END / MORE).
    fn range_reply(&mut self) -> (Pairs, String) {
        let mut pairs = Vec::new();
        for _ in 0..1_000_000 {
            let line = self.line();
            if line == "END" || line == "MORE" {
                return (pairs, line);
            }
            let (k, v) = line
                .split_once(": ")
                .unwrap_or_else(|| panic!("READRANGE line without ': ': {line:?}"));
            assert!(
                !k.contains(' '),
                "a key in a reply must escape spaces: {line:?}"
            );
            pairs.push((unescape(k), unescape(v)));
        }
        panic!("READRANGE reply never ended");
    }

    fn range(&mut self, line: &str) -> (Pairs, String) {
        let mut data = line.as_bytes().to_vec();
        data.push(b'\n');
        self.send(&data);
        self.range_reply()
    }

    /// READ that must find a value: the decoded bytes.
    fn read_value(&mut self, key: &str) -> Vec<u8> {
        let reply = self.req(&format!("READ {key}"));
        assert!(
            reply != "NOT_FOUND" && !reply.starts_with("ERROR: "),
            "READ {key}: {reply:?}"
        );
        unescape(&reply)
    }
}

/// Decodes the documented reply escapes: `\\ \n \r \t \0 \s \, \xHH`.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let e = *b
            .get(i + 1)
            .unwrap_or_else(|| panic!("dangling backslash in reply {s:?}"));
        i += 2;
        match e {
            b'\\' => out.push(b'\\'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'0' => out.push(0),
            b's' => out.push(b' '),
            b',' => out.push(b','),
            b'x' => {
                let hex = s
                    .get(i..i + 2)
                    .unwrap_or_else(|| panic!("short \\x in {s:?}"));
                out.push(
                    u8::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("bad \\x in {s:?}")),
                );
                i += 2;
            }
            other => panic!("unknown escape \\{} in reply {s:?}", other as char),
        }
    }
    out
}

/// Encodes arbitrary bytes for a request with `\xHH` for everything that is
/// not plain printable ASCII (and for the characters the syntax reserves).
fn escape_all(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-_.:/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Minimal RESP helper for cross-protocol checks.
fn resp(server: &TestServer) -> redis::Connection {
    server.redis()
}

fn resp_get(con: &mut redis::Connection, key: &[u8]) -> Option<Vec<u8>> {
    redis::cmd("GET")
        .arg(key)
        .query(con)
        .expect("GET over RESP")
}

// ---------------------------------------------------------------------------

#[test]
fn put_read_delete() {
    let server = shared();
    let mut t = Text::connect(&server);
    assert_eq!(t.req("PUT tp:a 1"), "OK");
    assert_eq!(t.req("READ tp:a"), "1");
    assert_eq!(t.req("PUT tp:a 2"), "OK");
    assert_eq!(t.req("READ tp:a"), "2");
    assert_eq!(t.req("READ tp:missing"), "NOT_FOUND");
    assert_eq!(t.req("DELETE tp:a"), "OK");
    assert_eq!(t.req("DELETE tp:a"), "NOT_FOUND");
    assert_eq!(t.req("READ tp:a"), "NOT_FOUND");
    assert_eq!(t.req("DELETE tp:never"), "NOT_FOUND");
    // CRLF line endings are accepted too.
    t.send(b"PUT tp:crlf value\r\n");
    assert_eq!(t.line(), "OK");
    t.send(b"READ tp:crlf\r\n");
    assert_eq!(t.line(), "value");
}

#[test]
fn commands_are_case_insensitive() {
    let server = shared();
    let mut t = Text::connect(&server);
    assert_eq!(t.req("put tp:ci v"), "OK");
    assert_eq!(t.req("Read tp:ci"), "v");
    assert_eq!(t.req("rEaDrAnGe tp:ci tp:ci"), "tp:ci: v");
    assert_eq!(t.line(), "END");
    assert_eq!(t.req("batchput tp:ci2 w"), "OK");
    assert_eq!(t.req("READ tp:ci2"), "w");
    assert_eq!(t.req("delete tp:ci"), "OK");
    assert_eq!(t.req("READ tp:ci"), "NOT_FOUND");
    // Keys are not case-folded.
    assert_eq!(t.req("READ TP:CI2"), "NOT_FOUND");
}

#[test]
fn values_keep_spaces() {
    let server = shared();
    let mut t = Text::connect(&server);
    let mut con = resp(&server);
    assert_eq!(t.req("PUT tp:sp hello world"), "OK");
    assert_eq!(t.req("READ tp:sp"), "hello world");
    // The value is the rest of the line after the key and one space:
    // leading, repeated and trailing spaces are all part of it.
    assert_eq!(t.req("PUT tp:sp2  two  leading and trailing  "), "OK");
    assert_eq!(
        resp_get(&mut con, b"tp:sp2").as_deref(),
        Some(&b" two  leading and trailing  "[..])
    );
    assert_eq!(t.read_value("tp:sp2"), b" two  leading and trailing  ");
    // CRLF is not part of the value.
    t.send(b"PUT tp:sp3 a b c\r\n");
    assert_eq!(t.line(), "OK");
    assert_eq!(
        resp_get(&mut con, b"tp:sp3").as_deref(),
        Some(&b"a b c"[..])
    );
    // Commas in a PUT value are plain commas.
    assert_eq!(t.req("PUT tp:sp4 a,b,c"), "OK");
    assert_eq!(
        resp_get(&mut con, b"tp:sp4").as_deref(),
        Some(&b"a,b,c"[..])
    );
    // Non-ASCII UTF-8 passes through.
    assert_eq!(t.req("PUT tp:utf é ü 日本"), "OK");
    assert_eq!(
        resp_get(&mut con, b"tp:utf").unwrap(),
        "é ü 日本".as_bytes()
    );
    assert_eq!(t.read_value("tp:utf"), "é ü 日本".as_bytes());
}

#[test]
fn escapes_round_trip() {
    let server = shared();
    let mut t = Text::connect(&server);
    let mut con = resp(&server);
    let cases: &[(&str, &[u8])] = &[
        (r"back\\slash", b"back\\slash"),
        (r"new\nline", b"new\nline"),
        (r"car\rriage", b"car\rriage"),
        (r"tab\there", b"tab\there"),
        (r"nul\0byte", b"nul\0byte"),
        (r"sp\sace", b"sp ace"),
        (r"com\,ma", b"com,ma"),
        (r"hex\x41\x7e\x00\xff\x0a", b"hexA~\x00\xff\n"),
        (r"HEX\x4A\x4b", b"HEXJK"),
        (r"\\\\\\", b"\\\\\\"),
        (r"\x5cn", b"\\n"),
    ];
    for (i, (escaped, raw)) in cases.iter().enumerate() {
        let key = format!("tp:esc{i}");
        assert_eq!(
            t.req(&format!("PUT {key} {escaped}")),
            "OK",
            "PUT {escaped}"
        );
        assert_eq!(
            resp_get(&mut con, key.as_bytes()).as_deref(),
            Some(*raw),
            "stored bytes of {escaped}"
        );
        assert_eq!(t.read_value(&key), *raw, "READ of {escaped}");
    }
    // Escapes in keys.
    assert_eq!(t.req(r"PUT tp:k\sy\,z\x00 v"), "OK");
    assert_eq!(
        resp_get(&mut con, b"tp:k y,z\x00").as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(t.req(r"READ tp:k\x20y\x2cz\0"), "v");
    assert_eq!(t.req(r"DELETE tp:k\sy\,z\0"), "OK");
    assert_eq!(resp_get(&mut con, b"tp:k y,z\x00"), None);
}

#[test]
fn reply_escaping_of_special_bytes() {
    let server = shared();
    let mut t = Text::connect(&server);
    let mut con = resp(&server);
    let value: &[u8] = b"a\\b\rc\nd\te\0f\x01g\x7fh\xffi\xc3(j k";
    redis::cmd("SET")
        .arg("tp:special")
        .arg(value)
        .query::<()>(&mut con)
        .unwrap();
    let reply = t.req("READ tp:special");
    // Printable ASCII (including the space in a value) stays readable.
    assert!(
        reply.starts_with('a') && reply.ends_with("j k"),
        "{reply:?}"
    );
    assert_eq!(unescape(&reply), value);
    // Valid UTF-8 beyond ASCII is not mangled.
    redis::cmd("SET")
        .arg("tp:utf8")
        .arg("naïve ☃")
        .query::<()>(&mut con)
        .unwrap();
    assert_eq!(t.read_value("tp:utf8"), "naïve ☃".as_bytes());

    // Keys in READRANGE escape spaces as \s.
    redis::cmd("SET")
        .arg("tp:rk a b")
        .arg("v 1")
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("SET")
        .arg(b"tp:rk\n\x00")
        .arg("v2")
        .query::<()>(&mut con)
        .unwrap();
    // "\n" (0x0a) sorts before " " (0x20).
    let line1 = t.req("READRANGE tp:rk tp:rk~");
    let (k, v) = line1.split_once(": ").expect("key: value");
    assert_eq!(unescape(k), b"tp:rk\n\x00");
    assert_eq!(v, "v2");
    assert_eq!(t.line(), r"tp:rk\sa\sb: v 1");
    assert_eq!(t.line(), "END");
}

#[test]
fn all_byte_values_via_escapes() {
    let server = shared();
    let mut t = Text::connect(&server);
    let mut con = resp(&server);
    let value: Vec<u8> = (0..=255u8).collect();
    let key: Vec<u8> = [&b"tp:bin\x00\xfe"[..], &[b' ', b',', b'\\', b'\t'][..]].concat();
    let line = format!("PUT {} {}", escape_all(&key), escape_all(&value));
    assert_eq!(t.req(&line), "OK");
    assert_eq!(resp_get(&mut con, &key).as_deref(), Some(&value[..]));
    assert_eq!(t.read_value(&escape_all(&key)), value);
    let (pairs, end) = t.range(&format!(
        "READRANGE {} {}",
        escape_all(&key),
        escape_all(&key)
    ));
    assert_eq!(pairs, vec![(key.clone(), value.clone())]);
    assert_eq!(end, "END");

    // And the other way: binary written over RESP reads back over text.
    let rkey: Vec<u8> = vec![b't', b'p', b':', 0xff, 0x00, b' ', 0x80];
    let rval: Vec<u8> = (0..=255u8).rev().collect();
    redis::cmd("SET")
        .arg(&rkey)
        .arg(&rval)
        .query::<()>(&mut con)
        .unwrap();
    assert_eq!(t.read_value(&escape_all(&rkey)), rval);
    assert_eq!(t.req(&format!("DELETE {}", escape_all(&rkey))), "OK");
    assert_eq!(resp_get(&mut con, &rkey), None);
}

#[test]
fn batchput() {
    let server = shared();
    let mut t = Text::connect(&server);
    let mut con = resp(&server);
    assert_eq!(t.req("BATCHPUT tp:b1,tp:b2,tp:b3 one,two,three"), "OK");
    assert_eq!(t.req("READ tp:b1"), "one");
    assert_eq!(t.req("READ tp:b2"), "two");
    assert_eq!(t.req("READ tp:b3"), "three");
    // Escaped commas and spaces inside keys and values.
    assert_eq!(t.req(r"BATCHPUT tp:b\,4,tp:b\s5 x\,y,hello\sworld"), "OK");
    assert_eq!(resp_get(&mut con, b"tp:b,4").as_deref(), Some(&b"x,y"[..]));
    assert_eq!(
        resp_get(&mut con, b"tp:b 5").as_deref(),
        Some(&b"hello world"[..])
    );
    // A single pair, and overwrite.
    assert_eq!(t.req("BATCHPUT tp:b1 uno"), "OK");
    assert_eq!(t.req("READ tp:b1"), "uno");
    // Mismatched counts: an error, and nothing is stored.
    t.expect_error("BATCHPUT tp:m1,tp:m2 a");
    t.expect_error("BATCHPUT tp:m1 a,b");
    t.expect_error("BATCHPUT tp:m1,tp:m2,tp:m3 a,b");
    assert_eq!(t.req("READ tp:m1"), "NOT_FOUND");
    assert_eq!(t.req("READ tp:m2"), "NOT_FOUND");
    // A bad escape anywhere in the batch stores nothing either.
    t.expect_error(r"BATCHPUT tp:m1,tp:m2 ok,bad\q");
    assert_eq!(t.req("READ tp:m1"), "NOT_FOUND");
    t.expect_error("BATCHPUT tp:m1");
    t.expect_error("BATCHPUT");
    assert_eq!(t.req("READ tp:m1"), "NOT_FOUND");
    // The connection is fine after the errors.
    assert_eq!(t.req("READ tp:b2"), "two");
}

#[test]
fn batchput_is_atomic() {
    // A RESP reader never sees a half-applied BATCHPUT.
    let server = shared();
    let addr_server = server.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut t = Text::connect(&addr_server);
        let mut n = 0u32;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) && n < 20_000 {
            let line = format!("BATCHPUT tp:at1,tp:at2,tp:at3 {n},{n},{n}");
            assert_eq!(t.req(&line), "OK");
            n += 1;
        }
    });
    let mut con = resp(&server);
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut checks = 0;
    while Instant::now() < deadline {
        let vals: Vec<Option<String>> = redis::cmd("MGET")
            .arg("tp:at1")
            .arg("tp:at2")
            .arg("tp:at3")
            .query(&mut con)
            .unwrap();
        assert!(
            vals.iter().all(|v| *v == vals[0]),
            "torn BATCHPUT: {vals:?}"
        );
        checks += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().expect("writer");
    assert!(checks > 0);
}

#[test]
fn readrange_order_and_limit() {
    let server = shared();
    let mut t = Text::connect(&server);
    for (k, v) in [("c", "3"), ("a", "1"), ("e", "5"), ("b", "2"), ("d", "4")] {
        assert_eq!(t.req(&format!("PUT tr:{k} {v}")), "OK");
    }
    assert_eq!(t.req("PUT ts:outside x"), "OK");
    let pairs = |items: &[(&str, &str)]| -> Vec<(Vec<u8>, Vec<u8>)> {
        items
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    };
    // Exact lines for the simple case.
    assert_eq!(t.req("READRANGE tr:a tr:c"), "tr:a: 1");
    assert_eq!(t.line(), "tr:b: 2");
    assert_eq!(t.line(), "tr:c: 3");
    assert_eq!(t.line(), "END");
    // Inclusive bounds that need not exist.
    assert_eq!(
        t.range("READRANGE tr: tr:z"),
        (
            pairs(&[
                ("tr:a", "1"),
                ("tr:b", "2"),
                ("tr:c", "3"),
                ("tr:d", "4"),
                ("tr:e", "5")
            ]),
            "END".to_string()
        )
    );
    assert_eq!(
        t.range("READRANGE tr:e tr:e"),
        (pairs(&[("tr:e", "5")]), "END".into())
    );
    assert_eq!(t.range("READRANGE tr:x tr:z"), (vec![], "END".into()));
    assert_eq!(t.range("READRANGE tr:e tr:a"), (vec![], "END".into()));
    // The limit cuts the result short: MORE.
    assert_eq!(
        t.range("READRANGE tr:a tr:z 2"),
        (pairs(&[("tr:a", "1"), ("tr:b", "2")]), "MORE".into())
    );
    assert_eq!(
        t.range("READRANGE tr:a tr:z 1"),
        (pairs(&[("tr:a", "1")]), "MORE".into())
    );
    // A limit that is not reached, or reached exactly, ends with END.
    assert_eq!(t.range("READRANGE tr:a tr:z 10").1, "END");
    assert_eq!(
        t.range("READRANGE tr:a tr:e 5"),
        (
            pairs(&[
                ("tr:a", "1"),
                ("tr:b", "2"),
                ("tr:c", "3"),
                ("tr:d", "4"),
                ("tr:e", "5")
            ]),
            "END".into()
        )
    );
    assert_eq!(t.range("READRANGE tr:d tr:e 2").1, "END");
    // Continue from after the last key of a MORE page.
    let (page1, end1) = t.range("READRANGE tr:a tr:z 3");
    assert_eq!(end1, "MORE");
    let last = String::from_utf8(page1.last().unwrap().0.clone()).unwrap();
    let (page2, end2) = t.range(&format!("READRANGE {last}\\x00 tr:z 3"));
    assert_eq!(end2, "END");
    let all: Vec<_> = page1.into_iter().chain(page2).collect();
    assert_eq!(all.len(), 5);
    // Deleted keys disappear.
    assert_eq!(t.req("DELETE tr:c"), "OK");
    assert_eq!(
        t.range("READRANGE tr:b tr:d"),
        (pairs(&[("tr:b", "2"), ("tr:d", "4")]), "END".into())
    );
}

#[test]
fn readrange_byte_order_and_many_keys() {
    let server = shared();
    let mut t = Text::connect(&server);
    let mut con = resp(&server);
    let keys: Vec<Vec<u8>> = vec![
        b"tq:\xff".to_vec(),
        b"tq:\x80".to_vec(),
        b"tq:\x7f".to_vec(),
        b"tq:\x00".to_vec(),
        b"tq:A".to_vec(),
        b"tq:a".to_vec(),
        b"tq:a a".to_vec(),
        b"tq:aa".to_vec(),
    ];
    for k in &keys {
        redis::cmd("SET")
            .arg(k)
            .arg(k)
            .query::<()>(&mut con)
            .unwrap();
    }
    let mut sorted = keys.clone();
    sorted.sort();
    let (pairs, end) = t.range(r"READRANGE tq: tq:\xff");
    assert_eq!(end, "END");
    let want: Vec<_> = sorted.iter().map(|k| (k.clone(), k.clone())).collect();
    assert_eq!(pairs, want);

    let mut p = redis::pipe();
    for i in (0..500).rev() {
        p.cmd("SET")
            .arg(format!("tn:{i:05}"))
            .arg(format!("v {i}"))
            .ignore();
    }
    p.query::<()>(&mut con).unwrap();
    let (pairs, end) = t.range("READRANGE tn: tn:~");
    assert_eq!(end, "END");
    assert_eq!(pairs.len(), 500);
    for (i, (k, v)) in pairs.iter().enumerate() {
        assert_eq!(k, format!("tn:{i:05}").as_bytes());
        assert_eq!(v, format!("v {i}").as_bytes());
    }
    let (pairs, end) = t.range("READRANGE tn: tn:~ 499");
    assert_eq!((pairs.len(), end.as_str()), (499, "MORE"));
    let (pairs, end) = t.range("READRANGE tn: tn:~ 500");
    assert_eq!((pairs.len(), end.as_str()), (500, "END"));
}

#[test]
fn errors_keep_the_connection_usable() {
    let server = shared();
    let mut t = Text::connect(&server);
    for bad in [
        "FOO bar",
        "GET tp:e",
        "SET tp:e v",
        "PUT",
        "READ",
        "READ a b",
        "DELETE",
        "DELETE a b",
        "READRANGE",
        "READRANGE a",
        "READRANGE a b notanumber",
        "READRANGE a b 1 extra",
        r"PUT tp:e bad\q",
        r"PUT tp:e bad\x4",
        r"PUT tp:e bad\xzz",
        r"PUT tp:e trailing\",
        r"PUT tp:e\q v",
        r"READ tp:e\x",
    ] {
        t.expect_error(bad);
    }
    assert_eq!(
        t.req("READ tp:e"),
        "NOT_FOUND",
        "failed requests stored nothing"
    );
    assert_eq!(t.req("PUT tp:e fine"), "OK");
    assert_eq!(t.req("READ tp:e"), "fine");
}

#[test]
fn pipelined_and_split_lines() {
    let server = shared();
    let mut t = Text::connect(&server);
    // Many requests in one write; replies come back in order.
    let mut batch = String::new();
    for i in 0..500 {
        batch.push_str(&format!("PUT tl:{i} value {i}\n"));
        batch.push_str(&format!("READ tl:{i}\n"));
    }
    batch.push_str("READ tl:none\nBOGUS\nREADRANGE tl:1 tl:10\n");
    let mut w = t.writer.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(batch.as_bytes()).unwrap());
    for i in 0..500 {
        assert_eq!(t.line(), "OK");
        assert_eq!(t.line(), format!("value {i}"));
    }
    assert_eq!(t.line(), "NOT_FOUND");
    assert!(t.line().starts_with("ERROR: "));
    let (pairs, end) = t.range_reply();
    assert_eq!(end, "END");
    let keys: Vec<String> = pairs
        .iter()
        .map(|(k, _)| String::from_utf8(k.clone()).unwrap())
        .collect();
    assert_eq!(keys, ["tl:1", "tl:10"]);
    writer.join().unwrap();

    // A request split across writes, even mid-escape.
    for piece in [&b"PU"[..], b"T tl:split a\\", b"x4", b"1b", b"\r", b"\n"] {
        t.send(piece);
        std::thread::sleep(Duration::from_millis(15));
    }
    assert_eq!(t.line(), "OK");
    assert_eq!(t.req("READ tl:split"), "aAb");
}

#[test]
fn large_value_over_text() {
    let server = shared();
    let mut t = Text::connect(&server);
    let mut con = resp(&server);
    let value: String = (0..200_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    assert_eq!(t.req(&format!("PUT tp:large {value}")), "OK");
    assert_eq!(t.req("READ tp:large"), value);
    let got = resp_get(&mut con, b"tp:large").unwrap();
    assert_eq!(got.len(), value.len());
    assert!(got == value.as_bytes());
}

#[test]
fn cross_visibility_with_resp() {
    let server = shared();
    let mut t = Text::connect(&server);
    let mut con = resp(&server);

    // Text -> RESP.
    assert_eq!(t.req("PUT tx:a from text"), "OK");
    assert_eq!(
        resp_get(&mut con, b"tx:a").as_deref(),
        Some(&b"from text"[..])
    );
    assert_eq!(t.req("BATCHPUT tx:b,tx:c 1,2"), "OK");
    let vals: Vec<Option<String>> = redis::cmd("MGET")
        .arg("tx:b")
        .arg("tx:c")
        .query(&mut con)
        .unwrap();
    assert_eq!(vals, vec![Some("1".to_string()), Some("2".to_string())]);
    let n: i64 = redis::cmd("INCR").arg("tx:b").query(&mut con).unwrap();
    assert_eq!(n, 2);
    assert_eq!(t.req("READ tx:b"), "2");
    assert_eq!(t.req("DELETE tx:c"), "OK");
    assert_eq!(resp_get(&mut con, b"tx:c"), None);

    // RESP -> text.
    redis::cmd("SET")
        .arg("tx:d")
        .arg("from resp")
        .query::<()>(&mut con)
        .unwrap();
    assert_eq!(t.req("READ tx:d"), "from resp");
    redis::cmd("DEL").arg("tx:d").query::<()>(&mut con).unwrap();
    assert_eq!(t.req("READ tx:d"), "NOT_FOUND");

    // A text PUT clears a TTL set over RESP, like SET.
    redis::cmd("SET")
        .arg("tx:t")
        .arg("v")
        .arg("EX")
        .arg(100)
        .query::<()>(&mut con)
        .unwrap();
    assert_eq!(t.req("PUT tx:t w"), "OK");
    let ttl: i64 = redis::cmd("TTL").arg("tx:t").query(&mut con).unwrap();
    assert_eq!(ttl, -1);

    // Keys expired over RESP are not visible over text.
    redis::cmd("SET")
        .arg("tx:e")
        .arg("v")
        .arg("PX")
        .arg(100)
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("SET")
        .arg("tx:f")
        .arg("v")
        .query::<()>(&mut con)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = t.req("READ tx:e");
        if r == "NOT_FOUND" {
            break;
        }
        assert_eq!(r, "v");
        assert!(Instant::now() < deadline, "tx:e never expired");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (pairs, end) = t.range("READRANGE tx:e tx:f");
    assert_eq!(end, "END");
    assert_eq!(pairs, vec![(b"tx:f".to_vec(), b"v".to_vec())]);
    assert_eq!(t.req("DELETE tx:e"), "NOT_FOUND");

    // RESP RANGE and text READRANGE agree.
    let flat: Vec<Vec<u8>> = redis::cmd("RANGE")
        .arg("tx:")
        .arg("tx:~")
        .query(&mut con)
        .unwrap();
    let (pairs, _) = t.range("READRANGE tx: tx:~");
    let from_text: Vec<Vec<u8>> = pairs.into_iter().flat_map(|(k, v)| [k, v]).collect();
    assert_eq!(from_text, flat);
}

#[test]
fn many_connections_and_close() {
    let server = shared();
    let mut conns: Vec<Text> = (0..8).map(|_| Text::connect(&server)).collect();
    for (i, t) in conns.iter_mut().enumerate() {
        assert_eq!(t.req(&format!("PUT tc:{i} {i}")), "OK");
    }
    for (i, t) in conns.iter_mut().enumerate() {
        let j = (i + 1) % 8;
        assert_eq!(t.req(&format!("READ tc:{j}")), j.to_string());
    }
    // A client that closes mid-line does not disturb the others.
    let mut half = Text::connect(&server);
    half.send(b"PUT tc:half incompl");
    drop(half);
    let mut t = Text::connect(&server);
    assert_eq!(t.req("READ tc:half"), "NOT_FOUND");
    assert_eq!(t.req("READ tc:3"), "3");

    // After the client shuts down its side, the server finishes and closes.
    t.send(b"READ tc:4\n");
    t.writer.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(t.line(), "4");
    let mut rest = Vec::new();
    t.reader
        .read_to_end(&mut rest)
        .expect("server closes after client EOF");
    assert!(rest.is_empty(), "unexpected bytes {rest:?}");
}

// ---- The pipe-delimited dialect (same port, detected per line) ----

fn pairs(items: &[(&str, &str)]) -> Pairs {
    items
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

#[test]
fn pipe_dialect_commands() {
    let server = shared();
    let mut t = Text::connect(&server);
    let mut con = resp(&server);
    assert_eq!(t.req("PING"), "PONG");
    assert_eq!(t.req("ping"), "PONG");
    assert_eq!(t.req("PUT|pp:a|one"), "OK");
    assert_eq!(t.req("GET|pp:a"), "one");
    assert_eq!(t.req("get|pp:a"), "one");
    // The value is the rest of the line, `|` and spaces included.
    assert_eq!(t.req("PUT|pp:b|x|y z"), "OK");
    assert_eq!(t.req("GET|pp:b"), "x|y z");
    assert_eq!(resp_get(&mut con, b"pp:b").as_deref(), Some(&b"x|y z"[..]));
    assert_eq!(t.req("GET|pp:none"), "NOT_FOUND");
    assert_eq!(t.req("BATCH|pp:c|3|pp:d|4"), "OK");
    assert_eq!(resp_get(&mut con, b"pp:d").as_deref(), Some(&b"4"[..]));
    assert_eq!(
        t.range("RANGE|pp:a|pp:z"),
        (
            pairs(&[
                ("pp:a", "one"),
                ("pp:b", "x|y z"),
                ("pp:c", "3"),
                ("pp:d", "4")
            ]),
            "END".into()
        )
    );
    assert_eq!(
        t.range("RANGE|pp:a|pp:z|2"),
        (pairs(&[("pp:a", "one"), ("pp:b", "x|y z")]), "MORE".into())
    );
    assert_eq!(t.range("RANGE|pp:c|pp:d|2").1, "END");
    assert_eq!(t.req("DELETE|pp:a"), "OK");
    assert_eq!(t.req("DELETE|pp:a"), "NOT_FOUND");
    assert_eq!(t.req("GET|pp:a"), "NOT_FOUND");
}

#[test]
fn both_dialects_mixed_on_one_connection() {
    let server = shared();
    let mut t = Text::connect(&server);
    // One write, both dialects interleaved: replies in order.
    t.send(
        b"PUT pm:a 1\nPUT|pm:b|2\nREAD pm:b\nGET|pm:a\nBOGUS\nFOO|x\nPING\nDELETE pm:b\nGET|pm:b\n",
    );
    for want in ["OK", "OK", "2", "1"] {
        assert_eq!(t.line(), want);
    }
    assert!(t.line().starts_with("ERROR: unknown command"));
    assert!(t.line().starts_with("ERROR: unknown command"));
    for want in ["PONG", "OK", "NOT_FOUND"] {
        assert_eq!(t.line(), want);
    }
}

#[test]
fn pipe_escapes() {
    let server = shared();
    let mut t = Text::connect(&server);
    let mut con = resp(&server);
    // `\|` in a key; the words dialect reads it back, escaped or not.
    assert_eq!(t.req(r"PUT|pe:a\|b|v1"), "OK");
    assert_eq!(resp_get(&mut con, b"pe:a|b").as_deref(), Some(&b"v1"[..]));
    assert_eq!(t.req(r"READ pe:a\|b"), "v1");
    assert_eq!(t.req("READ pe:a|b"), "v1");
    assert_eq!(t.req(r"GET|pe:a\x7cb"), "v1");
    // `|` inside BATCH values needs `\|`; other escapes work as in words.
    assert_eq!(t.req(r"BATCH|pe:c|x\|y|pe:d|tab\there"), "OK");
    assert_eq!(resp_get(&mut con, b"pe:c").as_deref(), Some(&b"x|y"[..]));
    assert_eq!(
        resp_get(&mut con, b"pe:d").as_deref(),
        Some(&b"tab\there"[..])
    );
    assert_eq!(t.req(r"PUT|pe:e|line\nbreak \\ done"), "OK");
    assert_eq!(t.read_value("pe:e"), b"line\nbreak \\ done");
    // A key with a `|` comes back unescaped in a range reply.
    let (got, end) = t.range(r"RANGE|pe:a|pe:a\|c");
    assert_eq!((got, end), (pairs(&[("pe:a|b", "v1")]), "END".into()));
}

#[test]
fn pipe_errors_keep_the_connection_usable() {
    let server = shared();
    let mut t = Text::connect(&server);
    for bad in [
        "GET|",
        "GET|a|b",
        "GET",
        "PUT|pq:k",
        "PUT||v",
        "DELETE|",
        "RANGE|a",
        "RANGE|a|b|0",
        "RANGE|a|b|x",
        "RANGE|a|b|1|2",
        "BATCH|pq:k",
        "BATCH",
        "BATCH|pq:k|v|pq:l",
        "PING|x",
        "CLUSTER_LEADER|x",
        "NOPE|x",
        r"GET|bad\q",
        r"PUT|pq:k|bad\x4",
    ] {
        t.expect_error(bad);
    }
    let long_key = "k".repeat(20_000);
    let reply = t.expect_error(&format!("GET|{long_key}"));
    assert!(reply.starts_with("ERROR: key too large"), "{reply}");
    assert_eq!(
        t.req("GET|pq:k"),
        "NOT_FOUND",
        "failed requests stored nothing"
    );
    assert_eq!(t.req("PUT|pq:k|fine"), "OK");
}

#[test]
fn pipe_batch_is_all_or_nothing() {
    let server = shared();
    let mut t = Text::connect(&server);
    let long_key = "k".repeat(20_000);
    let reply = t.expect_error(&format!("BATCH|pb:a|1|{long_key}|2|pb:c|3"));
    assert!(reply.starts_with("ERROR: key too large"), "{reply}");
    assert_eq!(t.req("GET|pb:a"), "NOT_FOUND");
    assert_eq!(t.req("GET|pb:c"), "NOT_FOUND");
    // The same in the words dialect.
    let reply = t.expect_error(&format!("BATCHPUT pb:a,{long_key} 1,2"));
    assert!(reply.starts_with("ERROR: key too large"), "{reply}");
    assert_eq!(t.req("READ pb:a"), "NOT_FOUND");
}

#[test]
fn cluster_commands_on_a_single_node() {
    let server = shared();
    let mut t = Text::connect(&server);
    for line in ["CLUSTER_STATUS", "CLUSTER_NODES", "cluster_leader"] {
        let reply = t.expect_error(line);
        assert!(
            reply.contains("cluster support disabled"),
            "{line}: {reply}"
        );
    }
    assert_eq!(t.req("PING"), "PONG");
}

/// SLOWLOG GET entries' arguments and client address.
fn slowlog_args(con: &mut redis::Connection) -> Vec<(Vec<Vec<u8>>, String)> {
    let entries: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(100)
        .query(con)
        .unwrap();
    entries
        .into_iter()
        .map(|e| {
            let redis::Value::Array(f) = e else {
                panic!("entry {e:?}")
            };
            let redis::Value::Array(args) = &f[3] else {
                panic!("args {f:?}")
            };
            let args = args
                .iter()
                .map(|a| match a {
                    redis::Value::BulkString(b) => b.clone(),
                    other => panic!("arg {other:?}"),
                })
                .collect();
            let addr = match &f[4] {
                redis::Value::BulkString(b) => String::from_utf8(b.clone()).unwrap(),
                other => panic!("addr {other:?}"),
            };
            (args, addr)
        })
        .collect()
}

/// `cmdstat_<name>`'s calls, rejected and failed calls.
fn cmdstat(con: &mut redis::Connection, name: &str) -> (u64, u64, u64) {
    let info: String = redis::cmd("INFO").arg("commandstats").query(con).unwrap();
    let prefix = format!("cmdstat_{name}:");
    let Some(fields) = info.lines().find_map(|l| l.strip_prefix(&prefix)) else {
        return (0, 0, 0);
    };
    let field = |f: &str| -> u64 {
        fields
            .split(',')
            .find_map(|kv| kv.strip_prefix(&format!("{f}=")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{f} in {fields}"))
    };
    (
        field("calls"),
        field("rejected_calls"),
        field("failed_calls"),
    )
}

#[test]
fn text_commands_in_commandstats_and_slowlog_like_resp() {
    let server =
        TestServer::start_with(&["--slowlog-log-slower-than", "0", "--slowlog-max-len", "100"]);
    let mut con = server.redis();
    let mut t = Text::connect(&server);
    let text_addr = t.writer.local_addr().unwrap().to_string();
    let lines = [
        "PUT|sk|v",
        "GET|sk",
        "READ sk",
        "RANGE|a|z",
        "READRANGE a z 5",
        "BATCH|sk2|1",
        "BATCHPUT sk3 1",
        "PING",
        "DELETE|sk2",
        "DELETE sk3",
    ];
    for line in lines {
        t.send(format!("{line}\n").as_bytes());
        let reply = t.line();
        if reply.contains(": ") {
            while !matches!(t.line().as_str(), "END" | "MORE") {}
        }
    }
    t.expect_error(&format!("GET|{}", "k".repeat(20_000)));
    // A text request with a key over the limit is a rejected call, as on RESP.
    let _ = redis::cmd("GET")
        .arg("k".repeat(20_000))
        .query::<redis::Value>(&mut con);
    // A connection adds its counts in before its replies go out: all
    // are in by now.
    let want = [
        ("put", (1, 0, 0)),
        ("get", (1, 2, 0)),
        ("read", (1, 0, 0)),
        ("range", (1, 0, 0)),
        ("readrange", (1, 0, 0)),
        ("batchput", (2, 0, 0)),
        ("ping", (1, 0, 0)),
        ("delete", (2, 0, 0)),
    ];
    for (name, counts) in want {
        assert_eq!(cmdstat(&mut con, name), counts, "cmdstat_{name}");
    }
    // Logged like RESP commands: the command's words, unescaped, and the
    // client's address.
    let logged = slowlog_args(&mut con);
    let from_text: Vec<Vec<Vec<u8>>> = logged
        .iter()
        .filter(|(_, addr)| *addr == text_addr)
        .map(|(args, _)| args.clone())
        .rev()
        .collect();
    let words = |s: &str| -> Vec<Vec<u8>> { s.split(' ').map(|w| w.as_bytes().to_vec()).collect() };
    let want: Vec<Vec<Vec<u8>>> = [
        "PUT sk v",
        "GET sk",
        "READ sk",
        "RANGE a z",
        "READRANGE a z LIMIT 5",
        "BATCHPUT sk2 1",
        "BATCHPUT sk3 1",
        "PING",
        "DELETE sk2",
        "DELETE sk3",
    ]
    .iter()
    .map(|s| words(s))
    .collect();
    assert_eq!(from_text, want);
}

#[test]
fn cluster_commands_on_three_nodes() {
    use common::cluster::{self as c};
    let mut config = c::config(3);
    config.extra_args = vec!["--text-listen".into(), "127.0.0.1:0".into()];
    let (cluster, leader) = c::start(config);
    let text_of = |id: u64| {
        let ready = cluster.node(id).last_ready.as_ref().expect("ready line");
        ready.text.expect("text listener")
    };
    let connect = |addr: SocketAddr| {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect text");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        Text {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    };
    let mut t = connect(text_of(leader));
    // CLUSTER_LEADER: id, peer, client lines, then END.
    t.send(b"CLUSTER_LEADER\n");
    let (fields, end) = t.range_reply();
    assert_eq!(end, "END");
    let names: Vec<&[u8]> = fields.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(names, [&b"id"[..], b"peer", b"client"]);
    assert_eq!(fields[0].1, leader.to_string().as_bytes());
    assert_eq!(
        fields[2].1,
        cluster.node(leader).resp_addr.to_string().as_bytes()
    );
    // CLUSTER_STATUS: CLUSTER STATUS's fields.
    t.send(b"CLUSTER_STATUS\n");
    let (fields, end) = t.range_reply();
    assert_eq!(end, "END");
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(field("cluster_state").as_deref(), Some("ok"));
    assert_eq!(field("cluster_role").as_deref(), Some("leader"));
    assert_eq!(field("cluster_voters").as_deref(), Some("1,2,3"));
    // CLUSTER_NODES: one line per member, keyed by id.
    t.send(b"CLUSTER_NODES\n");
    let (members, end) = t.range_reply();
    assert_eq!(end, "END");
    let ids: Vec<&[u8]> = members.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(ids, [&b"1"[..], b"2", b"3"]);
    assert!(
        members
            .iter()
            .all(|(_, v)| v.windows(5).any(|w| w == b"voter"))
    );
    // Data written through the leader's text port reads back, linearizably,
    // from a follower's.
    assert_eq!(t.req("PUT|cl:k|v1"), "OK");
    let follower = c::others(&cluster, leader)[0];
    let mut f = connect(text_of(follower));
    assert_eq!(f.req("GET|cl:k"), "v1");
}
