//! A small blocking RESP client for Strata, used by the CLI and by tests.
//!
//! One [`Client`] is one TCP connection. Every wait is bounded: connecting by
//! the connect timeout, each request/reply exchange by the I/O timeout, and
//! replies are size-limited by [`ReplyLimits`]. Bad server data yields an
//! error, never a panic; after any transport or protocol error the client
//! refuses further use ([`ClientError::Broken`]) because the stream position
//! is unknown.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use strata_protocol::resp::{Reply, ReplyLimits, ReplyParser, encode_request};

pub use strata_protocol::resp::{self, ProtocolError};

/// Connection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// Bound on establishing the TCP connection (all resolved addresses
    /// together).
    pub connect_timeout_ms: u64,
    /// Bound on one exchange: sending the request(s) and receiving all
    /// replies.
    pub io_timeout_ms: u64,
    /// Limits on each reply.
    pub reply_limits: ReplyLimits,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout_ms: 5_000,
            io_timeout_ms: 30_000,
            reply_limits: ReplyLimits::default(),
        }
    }
}

/// Errors from [`Client`].
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address did not resolve to any socket address.
    #[error("cannot resolve {addr}: {reason}")]
    Resolve {
        /// The address as given.
        addr: String,
        /// Resolver error (shown in the message, so not a `source()`).
        reason: io::Error,
    },
    /// No resolved address accepted the connection.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The address as given.
        addr: String,
        /// Error from the last address tried (shown in the message, so
        /// not a `source()`).
        reason: io::Error,
    },
    /// The server did not answer within the I/O timeout.
    #[error("timed out after {timeout_ms} ms waiting for the server")]
    Timeout {
        /// The timeout that expired.
        timeout_ms: u64,
    },
    /// The server closed the connection before replying.
    #[error("connection closed by the server")]
    Closed,
    /// Other socket error.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The server sent something that is not valid RESP or exceeds limits.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The server replied with an error (full text, e.g. `ERR ...`).
    #[error("{0}")]
    Server(String),
    /// A well-formed reply of the wrong type for the command.
    #[error("unexpected reply to {command}: {reply}")]
    UnexpectedReply {
        /// The command sent.
        command: &'static str,
        /// Abbreviated debug rendering of the reply.
        reply: String,
    },
    /// An earlier transport or protocol error left the connection in an
    /// unknown state.
    #[error("connection is unusable after an earlier error")]
    Broken,
    /// The call was rejected before anything was sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
}

/// Size of one socket read.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Above this much pending request data, a pipeline is written from a
/// second thread while replies are read, so neither side can fill its
/// socket buffers and deadlock waiting for the other.
const CONCURRENT_WRITE_THRESHOLD_BYTES: usize = 256 * 1024;
/// Longest reply rendering kept in [`ClientError::UnexpectedReply`].
const SHOWN_REPLY_CHARS_MAX: usize = 200;

/// A blocking connection to a Strata (or Redis) server.
pub struct Client {
    stream: TcpStream,
    peer: SocketAddr,
    options: ClientOptions,
    read_buf: BytesMut,
    write_buf: BytesMut,
    parser: ReplyParser,
    read_chunk: Box<[u8]>,
    broken: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.peer)
            .field("options", &self.options)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to `addr` (`host:port`), using `timeout_ms` both as the
    /// connect timeout and as the I/O timeout.
    pub fn connect(addr: &str, timeout_ms: u64) -> Result<Client, ClientError> {
        Self::connect_with(
            addr,
            ClientOptions {
                connect_timeout_ms: timeout_ms,
                io_timeout_ms: timeout_ms,
                ..ClientOptions::default()
            },
        )
    }

    /// Connects to `addr` (`host:port`) with explicit options.
    pub fn connect_with(addr: &str, options: ClientOptions) -> Result<Client, ClientError> {
        let resolve_error = |reason| ClientError::Resolve {
            addr: addr.to_string(),
            reason,
        };
        let candidates: Vec<SocketAddr> = addr.to_socket_addrs().map_err(resolve_error)?.collect();
        if candidates.is_empty() {
            return Err(resolve_error(io::Error::new(
                io::ErrorKind::NotFound,
                "no addresses found",
            )));
        }
        let deadline = Instant::now() + duration_ms(options.connect_timeout_ms);
        let mut last_error = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
        for candidate in candidates {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            match TcpStream::connect_timeout(&candidate, remaining) {
                Ok(stream) => {
                    let client =
                        Self::from_stream(stream, candidate, options).map_err(|reason| {
                            ClientError::Connect {
                                addr: addr.to_string(),
                                reason,
                            }
                        })?;
                    return Ok(client);
                }
                Err(err) => last_error = err,
            }
        }
        Err(ClientError::Connect {
            addr: addr.to_string(),
            reason: last_error,
        })
    }

    fn from_stream(
        stream: TcpStream,
        peer: SocketAddr,
        options: ClientOptions,
    ) -> io::Result<Client> {
        // Request/reply traffic: Nagle would add a delayed-ACK round trip.
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(duration_ms(options.io_timeout_ms)))?;
        stream.set_write_timeout(Some(duration_ms(options.io_timeout_ms)))?;
        Ok(Client {
            stream,
            peer,
            options,
            read_buf: BytesMut::with_capacity(READ_CHUNK_BYTES),
            write_buf: BytesMut::with_capacity(4 * 1024),
            parser: ReplyParser::new(),
            read_chunk: vec![0u8; READ_CHUNK_BYTES].into_boxed_slice(),
            broken: false,
        })
    }

    /// The address actually connected to.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Changes the I/O timeout for later exchanges.
    pub fn set_io_timeout_ms(&mut self, io_timeout_ms: u64) -> Result<(), ClientError> {
        let timeout = Some(duration_ms(io_timeout_ms));
        self.stream.set_read_timeout(timeout)?;
        self.stream.set_write_timeout(timeout)?;
        self.options.io_timeout_ms = io_timeout_ms;
        Ok(())
    }

    /// Sends one command and returns its reply. A server error reply is
    /// `Ok(Reply::Error(..))` here; the typed helpers turn it into
    /// [`ClientError::Server`].
    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Reply, ClientError> {
        if args.is_empty() {
            return Err(ClientError::InvalidArgument(
                "a command needs at least one argument",
            ));
        }
        self.check_usable()?;
        self.write_buf.clear();
        encode_request(args, &mut self.write_buf);
        let mut replies = self.exchange(1)?;
        replies.pop().ok_or(ClientError::Closed)
    }

    /// Sends all `requests` in one write and returns their replies in order
    /// (server errors included as `Reply::Error`).
    pub fn pipeline<R, A>(&mut self, requests: &[R]) -> Result<Vec<Reply>, ClientError>
    where
        R: AsRef<[A]>,
        A: AsRef<[u8]>,
    {
        if requests.iter().any(|r| r.as_ref().is_empty()) {
            return Err(ClientError::InvalidArgument(
                "a command needs at least one argument",
            ));
        }
        self.check_usable()?;
        self.write_buf.clear();
        for request in requests {
            encode_request(request.as_ref(), &mut self.write_buf);
        }
        self.exchange(requests.len())
    }

    /// Writes raw bytes (e.g. inline commands or deliberately malformed
    /// input in tests) without reading anything.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.check_usable()?;
        let deadline = self.deadline();
        let result = self.write_all(bytes, deadline);
        self.poison_on_error(result)
    }

    /// Reads one reply (after [`Client::send_raw`], or a RESP3 push).
    pub fn read_reply(&mut self) -> Result<Reply, ClientError> {
        self.check_usable()?;
        let deadline = self.deadline();
        let result = self.read_one(deadline);
        self.poison_on_error(result)
    }

    // -- typed helpers ------------------------------------------------------

    /// `PING`; succeeds on `+PONG`.
    pub fn ping(&mut self) -> Result<(), ClientError> {
        match self.call(&["PING"])? {
            Reply::Status(s) if s == "PONG" => Ok(()),
            other => Err(unexpected("PING", other)),
        }
    }

    /// `GET key`; `None` if the key does not exist.
    pub fn get(&mut self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, ClientError> {
        match self.call(&[b"GET".as_slice(), key.as_ref()])? {
            Reply::Bulk(value) => Ok(Some(value)),
            Reply::Null => Ok(None),
            other => Err(unexpected("GET", other)),
        }
    }

    /// `SET key value`.
    pub fn set(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), ClientError> {
        let reply = self.call(&[b"SET".as_slice(), key.as_ref(), value.as_ref()])?;
        expect_ok("SET", reply)
    }

    /// `DEL key`; returns how many keys were removed (0 or 1).
    pub fn del(&mut self, key: impl AsRef<[u8]>) -> Result<i64, ClientError> {
        match self.call(&[b"DEL".as_slice(), key.as_ref()])? {
            Reply::Integer(n) => Ok(n),
            other => Err(unexpected("DEL", other)),
        }
    }

    /// `MSET k1 v1 k2 v2 ...`: all pairs are written atomically.
    pub fn mset<K, V>(&mut self, pairs: &[(K, V)]) -> Result<(), ClientError>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        if pairs.is_empty() {
            return Err(ClientError::InvalidArgument(
                "MSET needs at least one key/value pair",
            ));
        }
        let mut args: Vec<&[u8]> = Vec::with_capacity(1 + pairs.len() * 2);
        args.push(b"MSET");
        for (key, value) in pairs {
            args.push(key.as_ref());
            args.push(value.as_ref());
        }
        let reply = self.call(&args)?;
        expect_ok("MSET", reply)
    }

    /// `EXISTS key`.
    pub fn exists(&mut self, key: impl AsRef<[u8]>) -> Result<bool, ClientError> {
        match self.call(&[b"EXISTS".as_slice(), key.as_ref()])? {
            Reply::Integer(n) => Ok(n > 0),
            other => Err(unexpected("EXISTS", other)),
        }
    }

    /// `KEYS pattern`.
    pub fn keys(&mut self, pattern: impl AsRef<[u8]>) -> Result<Vec<Bytes>, ClientError> {
        match self.call(&[b"KEYS".as_slice(), pattern.as_ref()])? {
            Reply::Array(items) | Reply::Set(items) => items
                .into_iter()
                .map(|item| match item {
                    Reply::Bulk(key) => Ok(key),
                    other => Err(unexpected("KEYS", other)),
                })
                .collect(),
            other => Err(unexpected("KEYS", other)),
        }
    }

    /// `RANGE start end [LIMIT n]`: pairs with `start <= key <= end` in key
    /// order (as the server defines the bounds), from a flat `k1 v1 k2 v2`
    /// array (or a RESP3 map).
    pub fn range(
        &mut self,
        start: impl AsRef<[u8]>,
        end: impl AsRef<[u8]>,
        limit: Option<u64>,
    ) -> Result<Vec<(Bytes, Bytes)>, ClientError> {
        let limit_text = limit.map(|n| n.to_string());
        let mut args: Vec<&[u8]> = vec![b"RANGE", start.as_ref(), end.as_ref()];
        if let Some(text) = &limit_text {
            args.push(b"LIMIT");
            args.push(text.as_bytes());
        }
        let bulk = |reply: Reply| match reply {
            Reply::Bulk(bytes) => Ok(bytes),
            other => Err(unexpected("RANGE", other)),
        };
        match self.call(&args)? {
            Reply::Array(items) => {
                if items.len() % 2 != 0 {
                    return Err(ClientError::UnexpectedReply {
                        command: "RANGE",
                        reply: format!("array of odd length {}", items.len()),
                    });
                }
                let mut pairs = Vec::with_capacity(items.len() / 2);
                let mut items = items.into_iter();
                while let (Some(key), Some(value)) = (items.next(), items.next()) {
                    pairs.push((bulk(key)?, bulk(value)?));
                }
                Ok(pairs)
            }
            Reply::Map(map) => map
                .into_iter()
                .map(|(key, value)| Ok((bulk(key)?, bulk(value)?)))
                .collect(),
            other => Err(unexpected("RANGE", other)),
        }
    }

    /// `INFO [section]`, as text.
    pub fn info(&mut self, section: Option<&str>) -> Result<String, ClientError> {
        let reply = match section {
            Some(section) => self.call(&["INFO", section])?,
            None => self.call(&["INFO"])?,
        };
        match reply {
            Reply::Bulk(text) | Reply::Verbatim { text, .. } => {
                Ok(String::from_utf8_lossy(&text).into_owned())
            }
            other => Err(unexpected("INFO", other)),
        }
    }

    // -- transport ----------------------------------------------------------

    fn check_usable(&self) -> Result<(), ClientError> {
        if self.broken {
            Err(ClientError::Broken)
        } else {
            Ok(())
        }
    }

    fn deadline(&self) -> Instant {
        Instant::now() + duration_ms(self.options.io_timeout_ms)
    }

    fn poison_on_error<T>(&mut self, result: Result<T, ClientError>) -> Result<T, ClientError> {
        if result.is_err() {
            self.broken = true;
            // Also unblocks a pipeline writer thread stuck in write().
            let _ = self.stream.shutdown(Shutdown::Both);
        }
        result
    }

    /// Writes `write_buf` and reads `count` replies, all within one
    /// I/O-timeout deadline.
    fn exchange(&mut self, count: usize) -> Result<Vec<Reply>, ClientError> {
        let deadline = self.deadline();
        let result = if self.write_buf.len() <= CONCURRENT_WRITE_THRESHOLD_BYTES {
            let request = self.write_buf.split().freeze();
            self.write_all(&request, deadline)
                .and_then(|()| self.read_many(count, deadline))
        } else {
            self.exchange_concurrently(count, deadline)
        };
        self.poison_on_error(result)
    }

    fn exchange_concurrently(
        &mut self,
        count: usize,
        deadline: Instant,
    ) -> Result<Vec<Reply>, ClientError> {
        let request = self.write_buf.split().freeze();
        let writer = self.stream.try_clone()?;
        let timeout_ms = self.options.io_timeout_ms;
        std::thread::scope(|scope| {
            let write_task =
                scope.spawn(move || write_all_to(&writer, &request, deadline, timeout_ms));
            let replies = self.read_many(count, deadline);
            if replies.is_err() {
                // The writer may be blocked on a full socket buffer; shutting
                // the socket down makes its write() fail at once.
                let _ = self.stream.shutdown(Shutdown::Both);
            }
            let written = write_task.join().unwrap_or_else(|_| {
                Err(ClientError::Io(io::Error::other("writer thread panicked")))
            });
            let replies = replies?;
            written?;
            Ok(replies)
        })
    }

    fn write_all(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), ClientError> {
        write_all_to(&self.stream, bytes, deadline, self.options.io_timeout_ms)
    }

    fn read_many(&mut self, count: usize, deadline: Instant) -> Result<Vec<Reply>, ClientError> {
        let mut replies = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            replies.push(self.read_one(deadline)?);
        }
        Ok(replies)
    }

    fn read_one(&mut self, deadline: Instant) -> Result<Reply, ClientError> {
        loop {
            if let Some(reply) = self
                .parser
                .parse(&mut self.read_buf, &self.options.reply_limits)?
            {
                return Ok(reply);
            }
            if Instant::now() >= deadline {
                return Err(ClientError::Timeout {
                    timeout_ms: self.options.io_timeout_ms,
                });
            }
            match self.stream.read(&mut self.read_chunk) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => self
                    .read_buf
                    .extend_from_slice(self.read_chunk.get(..n).unwrap_or_default()),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(io_error(err, self.options.io_timeout_ms)),
            }
        }
    }
}

/// `write_all` with a deadline; the socket's write timeout bounds each
/// single write, the deadline bounds the sum.
fn write_all_to(
    mut stream: &TcpStream,
    mut bytes: &[u8],
    deadline: Instant,
    timeout_ms: u64,
) -> Result<(), ClientError> {
    while !bytes.is_empty() {
        if Instant::now() >= deadline {
            return Err(ClientError::Timeout { timeout_ms });
        }
        match stream.write(bytes) {
            Ok(0) => return Err(ClientError::Closed),
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(io_error(err, timeout_ms)),
        }
    }
    Ok(())
}

fn io_error(err: io::Error, timeout_ms: u64) -> ClientError {
    match err.kind() {
        // A socket timeout surfaces as WouldBlock on Unix.
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout { timeout_ms },
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => ClientError::Closed,
        _ => ClientError::Io(err),
    }
}

/// A zero timeout would mean "block forever" to some APIs and is an error
/// to `set_read_timeout`; clamp to at least 1 ms.
fn duration_ms(ms: u64) -> Duration {
    Duration::from_millis(ms.max(1))
}

fn expect_ok(command: &'static str, reply: Reply) -> Result<(), ClientError> {
    match reply {
        Reply::Status(s) if s == "OK" => Ok(()),
        other => Err(unexpected(command, other)),
    }
}

/// Turns a reply of the wrong kind into an error; a server error reply
/// becomes [`ClientError::Server`].
fn unexpected(command: &'static str, reply: Reply) -> ClientError {
    if let Reply::Error(message) = reply {
        return ClientError::Server(message.into_owned());
    }
    let mut shown = format!("{reply:?}");
    if shown.len() > SHOWN_REPLY_CHARS_MAX {
        let mut cut = SHOWN_REPLY_CHARS_MAX;
        while !shown.is_char_boundary(cut) {
            cut -= 1;
        }
        shown.truncate(cut);
        shown.push_str("...");
    }
    ClientError::UnexpectedReply {
        command,
        reply: shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    /// A one-connection fake server: reads requests and answers each with
    /// the next canned reply bytes.
    fn fake_server(replies: Vec<&'static [u8]>) -> (String, thread::JoinHandle<Vec<Vec<Bytes>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let handle = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut buf = BytesMut::new();
            let mut seen = Vec::new();
            let mut chunk = [0u8; 4096];
            let limits = strata_protocol::resp::RequestLimits::default();
            for reply in replies {
                let args = loop {
                    if let Some(args) =
                        strata_protocol::resp::parse_request(&mut buf, &limits).unwrap()
                    {
                        break args;
                    }
                    let n = stream.read(&mut chunk).unwrap();
                    if n == 0 {
                        return seen;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                };
                seen.push(args);
                stream.write_all(reply).unwrap();
            }
            seen
        });
        (addr, handle)
    }

    #[test]
    fn typed_helpers() {
        let (addr, server) = fake_server(vec![
            b"+PONG\r\n",
            b"+OK\r\n",
            b"$5\r\nhello\r\n",
            b"$-1\r\n",
            b":1\r\n",
            b"+OK\r\n",
            b":0\r\n",
            b"*2\r\n$1\r\na\r\n$1\r\nb\r\n",
            b"*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n",
            b"$10\r\n# Server\r\n\r\n",
            b"-WRONGTYPE Operation against a key\r\n",
        ]);
        let mut client = Client::connect(&addr, 5_000).unwrap();
        client.ping().unwrap();
        client.set("k", "hello").unwrap();
        assert_eq!(client.get("k").unwrap().as_deref(), Some(&b"hello"[..]));
        assert_eq!(client.get("nope").unwrap(), None);
        assert_eq!(client.del("k").unwrap(), 1);
        client.mset(&[("a", "1"), ("b", "2")]).unwrap();
        assert!(!client.exists("k").unwrap());
        assert_eq!(
            client.keys("*").unwrap(),
            vec![Bytes::from("a"), Bytes::from("b")]
        );
        assert_eq!(
            client.range("a", "z", Some(10)).unwrap(),
            vec![
                (Bytes::from("a"), Bytes::from("1")),
                (Bytes::from("b"), Bytes::from("2"))
            ]
        );
        assert_eq!(client.info(None).unwrap(), "# Server\r\n");
        match client.get("list") {
            Err(ClientError::Server(message)) => assert!(message.starts_with("WRONGTYPE")),
            other => panic!("{other:?}"),
        }
        drop(client);
        let seen = server.join().unwrap();
        assert_eq!(
            seen[5],
            vec![
                Bytes::from("MSET"),
                "a".into(),
                "1".into(),
                "b".into(),
                "2".into()
            ]
        );
        assert_eq!(
            seen[8],
            vec![
                Bytes::from("RANGE"),
                "a".into(),
                "z".into(),
                "LIMIT".into(),
                "10".into()
            ]
        );
    }

    #[test]
    fn pipeline_and_error_replies() {
        let (addr, server) = fake_server(vec![b"+OK\r\n", b"-ERR nope\r\n", b":7\r\n"]);
        let mut client = Client::connect(&addr, 5_000).unwrap();
        let replies = client
            .pipeline(&[vec!["SET", "a", "1"], vec!["BOGUS"], vec!["INCR", "n"]])
            .unwrap();
        assert_eq!(
            replies,
            vec![Reply::ok(), Reply::error("ERR nope"), Reply::Integer(7)]
        );
        drop(client);
        assert_eq!(server.join().unwrap().len(), 3);
    }

    #[test]
    fn large_pipeline_does_not_deadlock() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        const REQUESTS: usize = 20_000;
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = stream.try_clone().unwrap();
            let mut writer = stream;
            let mut buf = BytesMut::new();
            let mut chunk = vec![0u8; 65536];
            let limits = strata_protocol::resp::RequestLimits::default();
            let mut answered = 0;
            // A big reply per request: the client must read while writing.
            let reply = {
                let mut out = BytesMut::new();
                strata_protocol::resp::encode_reply(
                    &Reply::bulk(vec![b'v'; 1000]),
                    strata_protocol::resp::ProtocolVersion::Resp2,
                    &mut out,
                );
                out
            };
            while answered < REQUESTS {
                while let Some(_args) =
                    strata_protocol::resp::parse_request(&mut buf, &limits).unwrap()
                {
                    writer.write_all(&reply).unwrap();
                    answered += 1;
                }
                let n = reader.read(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            answered
        });
        let mut client = Client::connect(&addr, 20_000).unwrap();
        let value = vec![b'x'; 100];
        let requests: Vec<Vec<&[u8]>> = (0..REQUESTS)
            .map(|_| vec![b"GET".as_slice(), &value])
            .collect();
        let replies = client.pipeline(&requests).unwrap();
        assert_eq!(replies.len(), REQUESTS);
        // Closing the connection ends the server's read loop.
        drop(client);
        assert_eq!(server.join().unwrap(), REQUESTS);
    }

    #[test]
    fn timeout_and_broken_state() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            thread::sleep(Duration::from_millis(500));
            drop(stream);
        });
        let mut client = Client::connect(&addr, 100).unwrap();
        assert!(matches!(
            client.ping(),
            Err(ClientError::Timeout { timeout_ms: 100 })
        ));
        assert!(matches!(client.ping(), Err(ClientError::Broken)));
        server.join().unwrap();
    }

    #[test]
    fn garbage_reply_is_a_protocol_error() {
        let (addr, _server) = fake_server(vec![b"?what\r\n"]);
        let mut client = Client::connect(&addr, 5_000).unwrap();
        assert!(matches!(client.ping(), Err(ClientError::Protocol(_))));
    }

    #[test]
    fn connection_refused() {
        // Bind then drop to get a port that is (very likely) closed.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = Client::connect(&addr.to_string(), 1_000).unwrap_err();
        assert!(matches!(err, ClientError::Connect { .. }), "{err}");
        assert!(matches!(
            Client::connect("no-port-here", 1_000),
            Err(ClientError::Resolve { .. })
        ));
    }
}
