//! What the benchmark talks to: a RESP server, etcd's HTTP/JSON gateway or
//! Strata's HTTP API.
//! The runner builds a [`Batch`] of operations and hands it to a [`Conn`];
//! both exist in one variant per target, so the load loops, key streams,
//! statistics and reports are the same code for every target.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use strata_protocol::resp::{Reply, encode_request};

use crate::client::{ClientError, Connection};
use crate::etcd;
use crate::http::{HttpConnection, HttpRequest};
use crate::strata_http;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// Any RESP server (Strata, Redis, Valkey, ...).
    Resp,
    /// etcd v3's HTTP/JSON gateway: PUT, linearizable range, txn.
    Etcd,
    /// Strata's HTTP/JSON API (`--http-listen`).
    Http,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Resp => "resp",
            Target::Etcd => "etcd",
            Target::Http => "http",
        }
    }
}

/// The requests of one pipeline (HTTP: sent one after the other).
#[derive(Debug)]
pub enum Batch {
    Resp(BytesMut),
    Etcd(Vec<HttpRequest>),
    Http(Vec<HttpRequest>),
}

impl Batch {
    pub fn new(target: Target) -> Batch {
        match target {
            Target::Resp => Batch::Resp(BytesMut::with_capacity(4096)),
            Target::Etcd => Batch::Etcd(Vec::new()),
            Target::Http => Batch::Http(Vec::new()),
        }
    }

    pub fn clear(&mut self) {
        match self {
            Batch::Resp(out) => out.clear(),
            Batch::Etcd(requests) | Batch::Http(requests) => requests.clear(),
        }
    }

    /// SET key value / PUT.
    pub fn set(&mut self, key: &[u8], value: &[u8]) {
        match self {
            Batch::Resp(out) => encode_request(&[b"SET".as_slice(), key, value], out),
            Batch::Etcd(requests) => requests.push(etcd::put(key, value)),
            Batch::Http(requests) => requests.push(strata_http::put(key, value)),
        }
    }

    /// A pre-encoded RESP command (`--workload commands`, RESP only; the
    /// CLI refuses other targets, and here they get nothing, so the
    /// operation count no longer matches and the connection stops).
    pub fn raw(&mut self, command: &[u8]) {
        if let Batch::Resp(out) = self {
            out.extend_from_slice(command);
        }
    }

    /// GET key / linearizable range of one key.
    pub fn get(&mut self, key: &[u8]) {
        match self {
            Batch::Resp(out) => encode_request(&[b"GET".as_slice(), key], out),
            Batch::Etcd(requests) => requests.push(etcd::get(key)),
            Batch::Http(requests) => requests.push(strata_http::get(key)),
        }
    }

    /// MSET k1 value k2 value ... / a txn of puts.
    pub fn mset<K: AsRef<[u8]>>(&mut self, keys: &[K], value: &[u8]) {
        match self {
            Batch::Resp(out) => {
                let mut args: Vec<&[u8]> = Vec::with_capacity(1 + 2 * keys.len());
                args.push(b"MSET");
                for key in keys {
                    args.push(key.as_ref());
                    args.push(value);
                }
                encode_request(&args, out);
            }
            Batch::Etcd(requests) => requests.push(etcd::txn_put(keys, value)),
            Batch::Http(requests) => requests.push(strata_http::txn_put(keys, value)),
        }
    }

    /// RANGE start end LIMIT n (end inclusive) / range with range_end and
    /// limit.
    pub fn scan(&mut self, start: &[u8], end: &[u8], limit: u64) {
        match self {
            Batch::Resp(out) => {
                let limit = limit.to_string();
                encode_request(
                    &[b"RANGE".as_slice(), start, end, b"LIMIT", limit.as_bytes()],
                    out,
                );
            }
            Batch::Etcd(requests) => requests.push(etcd::scan(start, end, limit)),
            Batch::Http(requests) => requests.push(strata_http::scan(start, end, limit)),
        }
    }
}

/// Connection settings shared by both targets.
#[derive(Debug, Clone, Copy)]
pub struct ConnectOptions {
    pub connect_timeout: Duration,
    pub reply_timeout: Duration,
    /// Largest HTTP answer body accepted.
    pub body_bytes_max: usize,
}

/// One benchmark connection.
pub enum Conn {
    Resp(Connection),
    Http(HttpConnection),
}

impl Conn {
    pub async fn connect(
        target: Target,
        addr: &str,
        options: ConnectOptions,
    ) -> Result<Conn, ClientError> {
        Ok(match target {
            Target::Resp => Conn::Resp(
                Connection::connect(addr, options.connect_timeout, options.reply_timeout).await?,
            ),
            Target::Etcd | Target::Http => Conn::Http(
                HttpConnection::connect(
                    addr,
                    options.connect_timeout,
                    options.reply_timeout,
                    options.body_bytes_max,
                )
                .await?,
            ),
        })
    }

    /// Sends `batch` (holding `count` operations) and calls
    /// `on_reply(index, reply, arrival)` for each answer, in order. On error
    /// the answers not yet delivered are lost and the connection must not
    /// be used again.
    pub async fn round_trip(
        &mut self,
        batch: &Batch,
        count: usize,
        on_reply: impl FnMut(usize, Reply, Instant),
    ) -> Result<(), ClientError> {
        match (self, batch) {
            (Conn::Resp(conn), Batch::Resp(out)) => conn.round_trip(out, count, on_reply).await,
            (Conn::Http(conn), Batch::Etcd(requests) | Batch::Http(requests))
                if requests.len() == count =>
            {
                conn.round_trip(requests, on_reply).await
            }
            (Conn::Http(_), Batch::Etcd(_) | Batch::Http(_)) => Err(ClientError::Internal(
                "batch size differs from the operation count",
            )),
            _ => Err(ClientError::Internal("a batch built for another target")),
        }
    }
}
