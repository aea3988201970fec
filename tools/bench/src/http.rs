//! The HTTP targets' connection: hyper's HTTP/1.1 client connection (no
//! pool, no retries: one TCP connection per benchmark connection, so the
//! model is the same as the RESP client's), one request at a time. Every
//! wait is bounded (connect timeout; one reply timeout covering the send,
//! the headers and the whole body), the read buffer (and so the header
//! block) is capped at [`READ_BUF_BYTES_MAX`], and a body at the size the
//! caller allows. What a request means and how its answer reads is the
//! target's (`etcd.rs`, `strata_http.rs`).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Method;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper_util::rt::TokioIo;
use strata_protocol::resp::Reply;
use tokio::task::JoinHandle;

use crate::client::{ClientError, connect_tcp};
use crate::etcd::{self, EtcdOp};
use crate::strata_http::{self, StrataOp};

/// Largest read buffer hyper may grow to (its minimum is 8 KiB): a header
/// block larger than this is an error. Bodies are streamed through it.
pub const READ_BUF_BYTES_MAX: usize = 64 * 1024;
/// How much of a bad body an error message quotes.
const SNIPPET_BYTES: usize = 160;

/// How an answer is read, per target and operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Etcd(EtcdOp),
    Strata(StrataOp),
}

impl Format {
    /// The answer as the RESP reply the same operation would get: `Ok`
    /// with an error reply for an error status, `Err` (the connection is
    /// unusable) for a success whose body is not what the target sends.
    pub fn parse(self, status: u16, body: &[u8]) -> Result<Reply, String> {
        match self {
            Format::Etcd(op) => etcd::parse_response(op, status, body),
            Format::Strata(op) => strata_http::parse_response(op, status, body),
        }
    }
}

/// One encoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: Method,
    /// Path and query, already percent-encoded.
    pub path: String,
    pub content_type: &'static str,
    pub body: Bytes,
    pub format: Format,
}

/// The start of a body, printable, for error messages.
pub fn snippet(body: &[u8]) -> String {
    let cut = &body[..body.len().min(SNIPPET_BYTES)];
    let text: String = String::from_utf8_lossy(cut)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.len() > SNIPPET_BYTES {
        format!("{text}...")
    } else {
        text
    }
}

/// One HTTP/1.1 keep-alive connection.
pub struct HttpConnection {
    sender: SendRequest<Full<Bytes>>,
    /// Drives the connection (hyper's split design); aborted on drop.
    driver: JoinHandle<()>,
    host: HeaderValue,
    reply_timeout: Duration,
    body_bytes_max: usize,
}

impl Drop for HttpConnection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl HttpConnection {
    pub async fn connect(
        addr: &str,
        connect_timeout: Duration,
        reply_timeout: Duration,
        body_bytes_max: usize,
    ) -> Result<HttpConnection, ClientError> {
        let host = HeaderValue::from_str(addr).map_err(|_| ClientError::Connect {
            addr: addr.to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a valid Host"),
        })?;
        let stream = connect_tcp(addr, connect_timeout).await?;
        let handshake = http1::Builder::new()
            .max_buf_size(READ_BUF_BYTES_MAX)
            .handshake::<_, Full<Bytes>>(TokioIo::new(stream));
        let (sender, connection) = tokio::time::timeout(connect_timeout, handshake)
            .await
            .map_err(|_| ClientError::ConnectTimeout {
                addr: addr.to_string(),
                timeout: connect_timeout,
            })?
            .map_err(ClientError::Http)?;
        // Its errors surface through the requests.
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(HttpConnection {
            sender,
            driver,
            host,
            reply_timeout,
            body_bytes_max,
        })
    }

    /// Sends one request and reads its whole answer, within the reply
    /// timeout.
    pub async fn request(&mut self, request: &HttpRequest) -> Result<Reply, ClientError> {
        let exchange = async {
            self.sender.ready().await.map_err(ClientError::Http)?;
            let http_request = hyper::Request::builder()
                .method(request.method.clone())
                .uri(request.path.as_str())
                .header(HOST, self.host.clone())
                .header(CONTENT_TYPE, request.content_type)
                .body(Full::new(request.body.clone()))
                .map_err(|e| ClientError::BadResponse(format!("cannot build a request: {e}")))?;
            let response = self
                .sender
                .send_request(http_request)
                .await
                .map_err(ClientError::Http)?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), self.body_bytes_max)
                .collect()
                .await
                .map_err(|e| ClientError::BadResponse(format!("reading the body: {e}")))?
                .to_bytes();
            request
                .format
                .parse(status, &body)
                .map_err(ClientError::BadResponse)
        };
        tokio::time::timeout(self.reply_timeout, exchange)
            .await
            .map_err(|_| ClientError::ReplyTimeout(self.reply_timeout))?
    }

    /// Sends `requests` one after the other (HTTP/1.1 without pipelining),
    /// calling `on_reply(index, reply, arrival)` for each.
    pub async fn round_trip(
        &mut self,
        requests: &[HttpRequest],
        mut on_reply: impl FnMut(usize, Reply, Instant),
    ) -> Result<(), ClientError> {
        for (index, request) in requests.iter().enumerate() {
            let reply = self.request(request).await?;
            on_reply(index, reply, Instant::now());
        }
        Ok(())
    }
}
