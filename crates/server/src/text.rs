//! The line text protocol's codec, both dialects on one port: the
//! space-separated one (`PUT key value`, [`strata_protocol::text`]) and the
//! pipe-delimited one (`PUT|key|value`, [`strata_protocol::pipe`]), told
//! apart line by line.
//!
//! A line becomes the arguments of the RESP command it stands for (`READ
//! k` is `["READ", k]`, `GET|k` is `["GET", k]`), run by the connection
//! exactly as a RESP request is: same statistics, slow log, key checks,
//! read barriers and write groups. This file only frames lines and renders
//! the replies in the text style; how to render each reply is remembered
//! per request, in order (replies come one per request, in order).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use strata_protocol::pipe::{Dialect, parse_any_line};
use strata_protocol::resp::{ProtocolVersion, Reply};
use strata_protocol::text::{LineReader, TextRequest, escape_key, escape_value, looks_like_http};

use crate::clients::Protocol;
use crate::codec::{Codec, Parsed};
use crate::config::ServerConfig;

/// How a request's reply is written.
#[derive(Clone, Copy)]
enum Render {
    /// `OK`, `PONG`, a value, `NOT_FOUND` (null), a number.
    Plain,
    /// DELETE: 0 keys removed is `NOT_FOUND`, otherwise `OK`.
    Delete,
    /// READRANGE: `key: value` lines, then `END` or `MORE`.
    Range,
    /// CLUSTER_STATUS: the `field:value` lines as `field: value`, `END`.
    Fields,
    /// CLUSTER_NODES: `id: peer client voter|learner role` lines, `END`.
    Members,
    /// CLUSTER_LEADER: `id: …`, `peer: …`, `client: …`, `END`.
    Leader,
    /// SEARCH: `key: value` lines, best first, then `END`, or `INDEXING`
    /// while the index is still being built (results may be incomplete).
    Hits,
}

pub struct Text {
    lines: LineReader,
    line_max: usize,
    /// Per request not yet answered, how to render its reply.
    renders: VecDeque<Render>,
    /// The reply being rendered (the escapes write to a `Vec`).
    scratch: Vec<u8>,
}

impl Codec for Text {
    const PROTOCOL: Protocol = Protocol::Text;

    fn new(config: &ServerConfig) -> Text {
        Text {
            lines: LineReader::new(),
            line_max: config.request_size_bytes_max,
            renders: VecDeque::new(),
            scratch: Vec::new(),
        }
    }

    fn parse(&mut self, buf: &mut BytesMut) -> Parsed {
        let line = match self.lines.take_line(buf, self.line_max) {
            Ok(Some(line)) => line,
            Ok(None) => return Parsed::Incomplete,
            Err(e) => return Parsed::Fatal(Reply::error(format!("ERR {e}"))),
        };
        if looks_like_http(&line) {
            return Parsed::Http;
        }
        match parse_any_line(&line) {
            Ok(None) => Parsed::Skipped,
            Ok(Some((dialect, request))) => {
                let (args, render) = command(dialect, request);
                self.renders.push_back(render);
                Parsed::Request(args)
            }
            Err(e) => {
                self.renders.push_back(Render::Plain);
                Parsed::Refused(Reply::error(format!("ERR {e}")))
            }
        }
    }

    fn encode(&mut self, reply: &Reply, _: ProtocolVersion, out: &mut BytesMut) {
        let render = self.renders.pop_front().unwrap_or(Render::Plain);
        self.scratch.clear();
        render_reply(render, reply, &mut self.scratch);
        out.extend_from_slice(&self.scratch);
    }
}

fn word(name: &'static str) -> Bytes {
    Bytes::from_static(name.as_bytes())
}

/// The RESP command a request stands for, and how to render its reply.
/// The pipe dialect's GET and RANGE are RESP's GET and RANGE.
fn command(dialect: Dialect, request: TextRequest) -> (Vec<Bytes>, Render) {
    let pipe = dialect == Dialect::Pipe;
    match request {
        TextRequest::Put { key, value } => (vec![word("PUT"), key, value], Render::Plain),
        TextRequest::BatchPut { keys, values } => {
            let mut args = Vec::with_capacity(1 + 2 * keys.len());
            args.push(word("BATCHPUT"));
            for (k, v) in keys.into_iter().zip(values) {
                args.extend([k, v]);
            }
            (args, Render::Plain)
        }
        TextRequest::Read { key } => {
            let name = if pipe { "GET" } else { "READ" };
            (vec![word(name), key], Render::Plain)
        }
        TextRequest::ReadRange { start, end, limit } => {
            let name = if pipe { "RANGE" } else { "READRANGE" };
            let mut args = vec![word(name), start, end];
            if let Some(n) = limit {
                args.extend([word("LIMIT"), Bytes::from(n.to_string())]);
            }
            (args, Render::Range)
        }
        TextRequest::Delete { key } => (vec![word("DELETE"), key], Render::Delete),
        TextRequest::Ping => (vec![word("PING")], Render::Plain),
        TextRequest::ClusterStatus => (vec![word("CLUSTER"), word("STATUS")], Render::Fields),
        TextRequest::ClusterNodes => (vec![word("CLUSTER"), word("MEMBERS")], Render::Members),
        TextRequest::ClusterLeader => (vec![word("CLUSTER"), word("LEADER")], Render::Leader),
        TextRequest::Search { mode, index, query } => {
            (vec![word("SEARCH"), mode, index, query], Render::Hits)
        }
    }
}

fn render_reply(render: Render, reply: &Reply, out: &mut Vec<u8>) {
    match (render, reply) {
        (_, Reply::Error(message)) => error_line(message, out),
        (Render::Delete, Reply::Integer(0)) => out.extend_from_slice(b"NOT_FOUND\n"),
        (Render::Delete, Reply::Integer(_)) => out.extend_from_slice(b"OK\n"),
        (Render::Range, Reply::Array(items)) => range_lines(items, out),
        (Render::Hits, Reply::Array(items)) => hit_lines(items, out),
        (Render::Fields, Reply::Bulk(text)) => {
            for line in text_lines(text) {
                let (field, value) = split_at_first(line, b':');
                pair_line(field, value, out);
            }
            out.extend_from_slice(b"END\n");
        }
        (Render::Members, Reply::Bulk(text)) => {
            for line in text_lines(text) {
                let (id, rest) = split_at_first(line, b' ');
                pair_line(id, rest, out);
            }
            out.extend_from_slice(b"END\n");
        }
        (Render::Leader, Reply::Array(items)) => {
            for (name, item) in ["id", "peer", "client"].iter().zip(items) {
                let value = match item {
                    Reply::Integer(n) => Bytes::from(n.to_string()),
                    Reply::Bulk(b) => b.clone(),
                    _ => Bytes::new(),
                };
                pair_line(name.as_bytes(), &value, out);
            }
            out.extend_from_slice(b"END\n");
        }
        (_, reply) => plain_line(reply, out),
    }
}

/// One reply on one line: statuses as they are, values escaped, null as
/// `NOT_FOUND`.
fn plain_line(reply: &Reply, out: &mut Vec<u8>) {
    match reply {
        Reply::Status(s) => out.extend_from_slice(s.as_bytes()),
        Reply::Bulk(v) => escape_value(v, out),
        Reply::Integer(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Reply::Null | Reply::NullArray => out.extend_from_slice(b"NOT_FOUND"),
        // No text command answers anything else.
        _ => out.extend_from_slice(b"ERROR: unexpected reply"),
    }
    out.push(b'\n');
}

/// `key: value` lines from a flat `k1 v1 k2 v2 ...` array, then the
/// terminator the text session's range put last (`END` or `MORE`).
fn range_lines(items: &[Reply], out: &mut Vec<u8>) {
    let mut terminator: &[u8] = b"END";
    let mut pairs = items.chunks_exact(2);
    for pair in pairs.by_ref() {
        if let [Reply::Bulk(k), Reply::Bulk(v)] = pair {
            pair_line(k, v, out);
        }
    }
    if let [Reply::Status(s)] = pairs.remainder() {
        terminator = s.as_bytes();
    }
    out.extend_from_slice(terminator);
    out.push(b'\n');
}

/// SEARCH's `[hits, indexing]` as `key: value` lines (each hit is `[key,
/// score, value]`), then `END`, or `INDEXING` while the index is built.
fn hit_lines(items: &[Reply], out: &mut Vec<u8>) {
    if let Some(Reply::Array(hits)) = items.first() {
        for hit in hits {
            if let Reply::Array(fields) = hit
                && let [Reply::Bulk(key), _, Reply::Bulk(value)] = fields.as_slice()
            {
                pair_line(key, value, out);
            }
        }
    }
    let building = matches!(items.get(1), Some(Reply::Integer(1)));
    let terminator: &[u8] = if building { b"INDEXING\n" } else { b"END\n" };
    out.extend_from_slice(terminator);
}

/// `key: value`, the key with spaces escaped so that the first `": "`
/// splits the line.
fn pair_line(key: &[u8], value: &[u8], out: &mut Vec<u8>) {
    escape_key(key, out);
    out.extend_from_slice(b": ");
    escape_value(value, out);
    out.push(b'\n');
}

/// The non-empty lines of a multi-line text (`\n` or `\r\n` endings).
fn text_lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
}

/// What comes before and after the first `sep` (all, and nothing, if
/// there is none).
fn split_at_first(line: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match line.iter().position(|&b| b == sep) {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &[]),
    }
}

/// `ERROR: <message>`: RESP's generic `ERR ` prefix dropped, codes that
/// say something (`CLUSTERDOWN`, `TRYAGAIN`...) kept, line breaks made
/// spaces.
fn error_line(message: &str, out: &mut Vec<u8>) {
    let message = message.strip_prefix("ERR ").unwrap_or(message);
    out.extend_from_slice(b"ERROR: ");
    out.extend(
        message
            .bytes()
            .map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
    );
    out.push(b'\n');
}
