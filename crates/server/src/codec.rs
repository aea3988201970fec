//! The codec half of a connection: bytes to requests, replies to bytes.
//!
//! A connection is a transport ([`crate::transport`]: read and reply
//! buffers, idle and request timers, client-buffer charge, shutdown, CLIENT
//! KILL), which holds the codec, and a request handler
//! ([`crate::connection`]) that runs every request through the command
//! layer ([`crate::cmd`]): statistics, MULTI, read barriers, the write
//! path, replies in order. A
//! codec only frames requests and renders replies, so every front door
//! (RESP, the text dialects) runs the same commands the same way. The
//! connection is generic over its codec: one monomorphized copy per
//! protocol, no dynamic dispatch per request.

use bytes::{Bytes, BytesMut};
use strata_protocol::resp::{ProtocolVersion, Reply, RequestLimits, RequestParser, encode_reply};

use crate::clients::Protocol;
use crate::config::ServerConfig;

/// What a codec found at the front of the read buffer.
pub enum Parsed {
    /// A request's arguments, the command's name first (never empty).
    Request(Vec<Bytes>),
    /// A malformed request, consumed: answer it with this error; the
    /// stream stays usable.
    Refused(Reply),
    /// Something consumed that asks for no reply (a blank line).
    Skipped,
    /// No complete request buffered.
    Incomplete,
    /// The stream position is lost: send this error, then close.
    Fatal(Reply),
    /// An HTTP request: run neither it nor anything after it; close.
    Http,
}

/// A wire protocol. Replies are encoded in request order, one per
/// request (`Request` or `Refused`), which lets a codec remember per
/// request how to render its reply.
pub trait Codec: Send + 'static {
    /// The listener it serves (CLIENT LIST's `resp=`).
    const PROTOCOL: Protocol;

    fn new(config: &ServerConfig) -> Self;

    fn parse(&mut self, buf: &mut BytesMut) -> Parsed;

    /// Appends `reply` to `out`. `version` is the session's RESP version.
    fn encode(&mut self, reply: &Reply, version: ProtocolVersion, out: &mut BytesMut);

    /// After `Incomplete`: the buffer length the pending request announced
    /// it needs (0 when unknown), so its room is charged and reserved once.
    fn pending_frame_bytes(&self) -> usize {
        0
    }
}

/// RESP2/RESP3 (and Redis inline commands).
pub struct Resp {
    parser: RequestParser,
    limits: RequestLimits,
}

impl Codec for Resp {
    const PROTOCOL: Protocol = Protocol::Resp;

    fn new(config: &ServerConfig) -> Resp {
        Resp {
            parser: RequestParser::new(),
            limits: RequestLimits {
                request_size_bytes_max: config.request_size_bytes_max,
                // Every argument takes at least 6 bytes (`$0\r\n\r\n`), so
                // a declared count above size/6 can never fit: refuse it at
                // once instead of waiting for bytes refused anyway.
                args_count_max: config
                    .request_args_max
                    .min(config.request_size_bytes_max / 6),
            },
        }
    }

    #[inline]
    fn parse(&mut self, buf: &mut BytesMut) -> Parsed {
        match self.parser.parse(buf, &self.limits) {
            Ok(Some(args)) => {
                if args
                    .first()
                    .is_some_and(|name| strata_protocol::is_http_probe_word(name))
                {
                    Parsed::Http
                } else {
                    Parsed::Request(args)
                }
            }
            Ok(None) => Parsed::Incomplete,
            Err(e) => Parsed::Fatal(Reply::error(format!("ERR {e}"))),
        }
    }

    #[inline]
    fn encode(&mut self, reply: &Reply, version: ProtocolVersion, out: &mut BytesMut) {
        encode_reply(reply, version, out);
    }

    fn pending_frame_bytes(&self) -> usize {
        self.parser.pending_frame_bytes()
    }
}
