//! A raw RESP client for tests that must see exact bytes, malformed frames
//! and connection closes, which a real client library hides. Shared by the
//! RESP compatibility and bad-input tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Every read and write on a raw connection is bounded by this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// One decoded reply, keeping the distinctions that matter for compatibility
/// (RESP2 null bulk vs RESP3 null, simple vs bulk strings, ...).
#[derive(Debug, Clone, PartialEq)]
pub enum R {
    Simple(String),
    Err(String),
    Int(i64),
    Bulk(Vec<u8>),
    /// `$-1\r\n`
    NullBulk,
    /// `*-1\r\n`
    NullArray,
    /// RESP3 `_\r\n`
    Null,
    Arr(Vec<R>),
    Map(Vec<(R, R)>),
    Set(Vec<R>),
    Double(String),
    Bool(bool),
    Verbatim(String, Vec<u8>),
    BigNum(String),
    Push(Vec<R>),
}

pub fn ok() -> R {
    R::Simple("OK".into())
}
pub fn bulk(v: impl AsRef<[u8]>) -> R {
    R::Bulk(v.as_ref().to_vec())
}
pub fn int(n: i64) -> R {
    R::Int(n)
}
pub fn arr(items: Vec<R>) -> R {
    R::Arr(items)
}
pub fn bulks(items: &[&str]) -> R {
    R::Arr(items.iter().map(bulk).collect())
}

pub struct Raw {
    pub reader: BufReader<TcpStream>,
    pub writer: TcpStream,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Raw {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write request");
    }

    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> R {
        self.send(&encode(args));
        self.read()
    }

    /// The error text of a reply that must be an error.
    pub fn error<A: AsRef<[u8]>>(&mut self, args: &[A]) -> String {
        match self.call(args) {
            R::Err(e) => e,
            other => panic!("expected an error for {}, got {other:?}", show(args)),
        }
    }

    pub fn line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        self.reader
            .read_until(b'\n', &mut line)
            .expect("read reply line");
        assert!(
            line.ends_with(b"\r\n"),
            "reply line not CRLF-terminated (connection closed?): {:?}",
            String::from_utf8_lossy(&line)
        );
        line.truncate(line.len() - 2);
        line
    }

    pub fn read(&mut self) -> R {
        let line = self.line();
        let (kind, rest) = line.split_first().expect("empty reply line");
        let text = || String::from_utf8(rest.to_vec()).expect("utf-8 reply header");
        let num = || -> i64 { text().parse().expect("numeric reply header") };
        match kind {
            b'+' => R::Simple(text()),
            b'-' => R::Err(String::from_utf8_lossy(rest).into_owned()),
            b':' => R::Int(num()),
            b'_' => R::Null,
            b',' => R::Double(text()),
            b'(' => R::BigNum(text()),
            b'#' => R::Bool(rest == b"t"),
            b'$' | b'=' | b'!' => {
                let n = num();
                if n < 0 {
                    return R::NullBulk;
                }
                let mut data = vec![0u8; n as usize + 2];
                self.reader.read_exact(&mut data).expect("read bulk");
                assert_eq!(&data[n as usize..], b"\r\n", "bulk not CRLF-terminated");
                data.truncate(n as usize);
                match kind {
                    b'$' => R::Bulk(data),
                    b'!' => R::Err(String::from_utf8_lossy(&data).into_owned()),
                    _ => {
                        assert!(data.len() >= 4 && data[3] == b':', "bad verbatim string");
                        let fmt = String::from_utf8_lossy(&data[..3]).into_owned();
                        R::Verbatim(fmt, data[4..].to_vec())
                    }
                }
            }
            b'*' | b'~' | b'>' => {
                let n = num();
                if n < 0 {
                    return R::NullArray;
                }
                let items = (0..n).map(|_| self.read()).collect();
                match kind {
                    b'*' => R::Arr(items),
                    b'~' => R::Set(items),
                    _ => R::Push(items),
                }
            }
            b'%' | b'|' => {
                let n = num();
                let pairs = (0..n).map(|_| (self.read(), self.read())).collect();
                R::Map(pairs)
            }
            other => panic!("unknown reply type byte {:?} in {:?}", *other as char, line),
        }
    }

    /// Reads exactly `expected.len()` bytes and compares them.
    pub fn expect_bytes(&mut self, expected: &[u8]) {
        let mut got = vec![0u8; expected.len()];
        self.reader
            .read_exact(&mut got)
            .expect("read exact reply bytes");
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected),
            "exact reply bytes"
        );
    }

    /// Everything the server sends until it closes the connection (EOF or
    /// reset); fails if it stays open past the timeout.
    pub fn read_until_closed(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return out,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::ConnectionReset
                        || e.kind() == std::io::ErrorKind::ConnectionAborted =>
                {
                    return out;
                }
                Err(e) => panic!(
                    "connection not closed ({e}); got so far {:?}",
                    String::from_utf8_lossy(&out)
                ),
            }
            assert!(Instant::now() < deadline, "connection not closed");
        }
    }

    /// The server closes the connection (EOF or reset) within the timeout.
    pub fn expect_closed(&mut self) {
        let mut buf = [0u8; 256];
        match self.reader.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!(
                "expected close, got {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e)
                if e.kind() == std::io::ErrorKind::ConnectionReset
                    || e.kind() == std::io::ErrorKind::ConnectionAborted => {}
            Err(e) => panic!("expected close within {IO_TIMEOUT:?}, got error {e}"),
        }
    }

    /// Nothing more arrives within `wait` (used to check that a request
    /// produced no reply at all).
    pub fn expect_silence(&mut self, wait: Duration) {
        self.writer.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 64];
        let res = self.reader.read(&mut buf);
        self.writer.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        match res {
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Ok(n) => panic!(
                "expected no reply, got {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) => panic!("expected no reply, got error {e}"),
        }
    }
}

pub fn encode<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

pub fn show<A: AsRef<[u8]>>(args: &[A]) -> String {
    args.iter()
        .map(|a| String::from_utf8_lossy(a.as_ref()).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
