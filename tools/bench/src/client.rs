//! A minimal async RESP client: one TCP connection, requests pre-encoded by
//! the caller, replies parsed with `strata_protocol`'s [`ReplyParser`]
//! (full RESP2/RESP3 grammar), every wait bounded.

use std::io;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use strata_protocol::resp::{ProtocolError, Reply, ReplyLimits, ReplyParser, encode_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a connection stopped being usable.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("cannot connect to {addr}: no answer within {timeout:?}")]
    ConnectTimeout { addr: String, timeout: Duration },
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("no reply within {0:?}")]
    ReplyTimeout(Duration),
    #[error("server closed the connection")]
    Closed,
    #[error("unparseable reply: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("http: {0}")]
    Http(hyper::Error),
    #[error("{0}")]
    BadResponse(String),
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// Connects within `timeout`, with Nagle off.
pub async fn connect_tcp(addr: &str, timeout: Duration) -> Result<TcpStream, ClientError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => {
            return Err(ClientError::Connect {
                addr: addr.to_string(),
                source,
            });
        }
        Err(_) => {
            return Err(ClientError::ConnectTimeout {
                addr: addr.to_string(),
                timeout,
            });
        }
    };
    // Requests are written in whole pipelines; Nagle would only delay
    // the last segment of each and inflate latencies.
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Read-buffer size and growth step: a pipeline of small replies fits in
/// one read, and 10,000 idle connections cost only ~80 MB. The buffer grows
/// by this much whenever less than a quarter of it is free, so large
/// replies still arrive in few reads.
const READ_CHUNK_BYTES: usize = 8 * 1024;

pub struct Connection {
    stream: TcpStream,
    read_buf: BytesMut,
    parser: ReplyParser,
    limits: ReplyLimits,
    reply_timeout: Duration,
}

impl Connection {
    pub async fn connect(
        addr: &str,
        connect_timeout: Duration,
        reply_timeout: Duration,
    ) -> Result<Connection, ClientError> {
        let stream = connect_tcp(addr, connect_timeout).await?;
        Ok(Connection {
            stream,
            read_buf: BytesMut::with_capacity(READ_CHUNK_BYTES),
            parser: ReplyParser::new(),
            limits: ReplyLimits::default(),
            reply_timeout,
        })
    }

    /// Sends one command and waits (bounded) for its reply.
    pub async fn request<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Reply, ClientError> {
        let mut out = BytesMut::new();
        encode_request(args, &mut out);
        let mut reply = None;
        self.round_trip(&out, 1, |_, r, _| reply = Some(r)).await?;
        reply.ok_or(ClientError::Closed)
    }

    /// Writes `requests` (holding `count` encoded commands) and reads
    /// `count` replies, calling `on_reply(index, reply, arrival)` for each in
    /// order.
    ///
    /// Writing and reading run concurrently: with a deep pipeline of large
    /// replies the server may fill our receive buffer before it has read
    /// all our requests, and a write-then-read client would deadlock.
    ///
    /// Each reply must arrive within the reply timeout of the previous one
    /// (or of the start, for the first). On error the replies not yet
    /// delivered are lost and the connection must not be used again.
    pub async fn round_trip(
        &mut self,
        requests: &[u8],
        count: usize,
        mut on_reply: impl FnMut(usize, Reply, Instant),
    ) -> Result<(), ClientError> {
        let (mut reader, mut writer) = self.stream.split();
        let read_buf = &mut self.read_buf;
        let parser = &mut self.parser;
        let limits = &self.limits;
        let reply_timeout = self.reply_timeout;

        let write = async {
            writer.write_all(requests).await?;
            Ok::<(), ClientError>(())
        };
        let read = async {
            for index in 0..count {
                let deadline = tokio::time::Instant::now() + reply_timeout;
                loop {
                    if let Some(reply) = parser.parse(read_buf, limits)? {
                        on_reply(index, reply, Instant::now());
                        break;
                    }
                    if read_buf.capacity() - read_buf.len() < READ_CHUNK_BYTES / 4 {
                        read_buf.reserve(READ_CHUNK_BYTES);
                    }
                    match tokio::time::timeout_at(deadline, reader.read_buf(read_buf)).await {
                        Ok(Ok(0)) => return Err(ClientError::Closed),
                        Ok(Ok(_)) => {}
                        Ok(Err(err)) => return Err(ClientError::Io(err)),
                        Err(_) => return Err(ClientError::ReplyTimeout(reply_timeout)),
                    }
                }
            }
            Ok::<(), ClientError>(())
        };
        tokio::try_join!(write, read)?;
        Ok(())
    }
}

/// Whether an error reply means the server does not know the command
/// (Redis: `ERR unknown command 'RANGE', with args beginning with: ...`).
pub fn is_unknown_command(reply: &Reply) -> bool {
    match reply {
        Reply::Error(text) => text.to_ascii_lowercase().contains("unknown command"),
        _ => false,
    }
}

/// A short human-readable form of an error reply, for messages.
pub fn error_text(reply: &Reply) -> Option<String> {
    match reply {
        Reply::Error(text) => Some(text.chars().take(200).collect()),
        _ => None,
    }
}
