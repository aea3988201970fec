//! A minimal blocking RESP2 client.
//!
//! The tool speaks RESP itself instead of using a client library because
//! the whole verdict hangs on one distinction: did a complete success reply
//! arrive (the write is *acknowledged*) or did the connection fail first
//! (the write is *in flight*: it may or may not have been applied)? Here
//! that is exact: [`CallError::Io`] means "no complete reply", every other
//! outcome is a complete reply. It is also independent of the server's own
//! codec (`strata-protocol`), so a codec bug cannot hide itself.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Largest bulk string accepted in a reply. Our values are far smaller; a
/// bigger length means a corrupt stream, and must not make us allocate it.
const BULK_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Most elements accepted in one array reply (MGET chunks, SCAN pages).
const ARRAY_LEN_MAX: usize = 1 << 20;
/// Longest header line (`+OK`, `:123`, `$5`, `-ERR ...`).
const LINE_BYTES_MAX: u64 = 64 * 1024;
/// Nesting depth: SCAN replies are the deepest we read (2).
const DEPTH_MAX: usize = 4;

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

#[derive(Debug)]
pub enum CallError {
    /// The connection failed before a complete reply arrived (refused,
    /// reset, EOF, timeout). The request may or may not have been applied.
    Io(io::Error),
    /// A complete but malformed reply: a server bug, never a crash effect.
    Protocol(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Io(e) => write!(f, "connection error: {e}"),
            CallError::Protocol(m) => write!(f, "protocol error: {m}"),
        }
    }
}

impl std::error::Error for CallError {}

impl From<io::Error> for CallError {
    fn from(e: io::Error) -> Self {
        CallError::Io(e)
    }
}

pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    out: Vec<u8>,
}

impl Conn {
    /// Connects with a bounded connect time; every later read and write is
    /// bounded by `io_timeout` so that no call can hang forever.
    pub fn connect(
        addr: SocketAddr,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, connect_timeout)?;
        stream.set_read_timeout(Some(io_timeout))?;
        stream.set_write_timeout(Some(io_timeout))?;
        // One small request per round trip: don't let Nagle add latency.
        stream.set_nodelay(true)?;
        let writer = stream.try_clone()?;
        Ok(Conn {
            reader: BufReader::with_capacity(64 * 1024, stream),
            writer,
            out: Vec::with_capacity(4096),
        })
    }

    /// Sends one command and reads its reply.
    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Reply, CallError> {
        self.out.clear();
        encode_command(&mut self.out, args);
        self.writer.write_all(&self.out)?;
        read_reply(&mut self.reader, 0)
    }
}

/// Appends `args` as a RESP array of bulk strings.
pub fn encode_command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Reads one reply. An EOF anywhere inside a reply is an I/O error (the
/// reply is incomplete, so the request is not acknowledged).
pub fn read_reply<R: BufRead>(r: &mut R, depth: usize) -> Result<Reply, CallError> {
    if depth > DEPTH_MAX {
        return Err(CallError::Protocol("reply nested too deeply".into()));
    }
    let line = read_line(r)?;
    let (kind, rest) = match line.split_first() {
        Some((k, rest)) => (*k, rest),
        None => return Err(CallError::Protocol("empty reply line".into())),
    };
    let text = || String::from_utf8_lossy(rest).into_owned();
    match kind {
        b'+' => Ok(Reply::Simple(text())),
        b'-' => Ok(Reply::Error(text())),
        b':' => parse_int(rest).map(Reply::Int),
        b'$' => {
            let n = parse_int(rest)?;
            if n == -1 {
                return Ok(Reply::Bulk(None));
            }
            let n = checked_len(n, BULK_BYTES_MAX, "bulk length")?;
            let mut buf = vec![0u8; n + 2];
            r.read_exact(&mut buf)?;
            if !buf.ends_with(b"\r\n") {
                return Err(CallError::Protocol("bulk string not ended by CRLF".into()));
            }
            buf.truncate(n);
            Ok(Reply::Bulk(Some(buf)))
        }
        b'*' => {
            let n = parse_int(rest)?;
            if n == -1 {
                return Ok(Reply::Array(None));
            }
            let n = checked_len(n, ARRAY_LEN_MAX, "array length")?;
            let mut items = Vec::with_capacity(n.min(4096));
            for _ in 0..n {
                items.push(read_reply(r, depth + 1)?);
            }
            Ok(Reply::Array(Some(items)))
        }
        other => Err(CallError::Protocol(format!(
            "unexpected reply type byte {other:#04x}"
        ))),
    }
}

/// One CRLF-terminated line without the CRLF, at most `LINE_BYTES_MAX`.
fn read_line<R: BufRead>(r: &mut R) -> Result<Vec<u8>, CallError> {
    let mut line = Vec::new();
    let n = r.take(LINE_BYTES_MAX).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(CallError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        )));
    }
    if !line.ends_with(b"\n") {
        if (line.len() as u64) < LINE_BYTES_MAX {
            // EOF in the middle of a line: the reply never completed.
            return Err(CallError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a reply",
            )));
        }
        return Err(CallError::Protocol("reply line too long".into()));
    }
    if !line.ends_with(b"\r\n") {
        return Err(CallError::Protocol("reply line not ended by CRLF".into()));
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

fn parse_int(digits: &[u8]) -> Result<i64, CallError> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            CallError::Protocol(format!("bad integer {:?}", String::from_utf8_lossy(digits)))
        })
}

fn checked_len(n: i64, max: usize, what: &str) -> Result<usize, CallError> {
    usize::try_from(n)
        .ok()
        .filter(|&n| n <= max)
        .ok_or_else(|| CallError::Protocol(format!("bad {what} {n}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Reply, CallError> {
        read_reply(&mut &bytes[..], 0)
    }

    #[test]
    fn parses_every_reply_type() {
        assert_eq!(parse(b"+OK\r\n").unwrap(), Reply::Simple("OK".into()));
        assert_eq!(parse(b"-ERR x\r\n").unwrap(), Reply::Error("ERR x".into()));
        assert_eq!(parse(b":-12\r\n").unwrap(), Reply::Int(-12));
        assert_eq!(parse(b"$-1\r\n").unwrap(), Reply::Bulk(None));
        assert_eq!(
            parse(b"$3\r\na\r\n\r\n").unwrap(),
            Reply::Bulk(Some(b"a\r\n".to_vec()))
        );
        assert_eq!(
            parse(b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\nk\r\n").unwrap(),
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"0".to_vec())),
                Reply::Array(Some(vec![Reply::Bulk(Some(b"k".to_vec()))])),
            ]))
        );
    }

    #[test]
    fn incomplete_reply_is_io_and_garbage_is_protocol() {
        for partial in [&b""[..], b"+O", b"$5\r\nab", b"*2\r\n:1\r\n"] {
            assert!(
                matches!(parse(partial), Err(CallError::Io(_))),
                "{partial:?}"
            );
        }
        for bad in [
            &b"?x\r\n"[..],
            b":x\r\n",
            b"$-5\r\n",
            b"+OK\n",
            b"$1\r\nabc",
        ] {
            assert!(matches!(parse(bad), Err(CallError::Protocol(_))), "{bad:?}");
        }
    }

    #[test]
    fn encodes_commands() {
        let mut out = Vec::new();
        encode_command(&mut out, &["SET", "k", ""]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }
}
