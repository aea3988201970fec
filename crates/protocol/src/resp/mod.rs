//! RESP2/RESP3 codec.
//!
//! Server side: [`parse_request`] / [`RequestParser`] frame requests out of a
//! connection's read buffer, [`encode_reply`] writes [`Reply`] values in the
//! client's negotiated [`ProtocolVersion`].
//!
//! Client side: [`encode_request`] writes a command, [`parse_reply`] /
//! [`ReplyParser`] read the full RESP2 + RESP3 reply grammar.
//!
//! Request arguments and bulk replies are zero-copy [`Bytes`] slices of the
//! frame split off the read buffer: one atomic refcount bump per argument,
//! no copying of payloads.
//!
//! Files: `request.rs` (requests: the server's parser, the client's
//! encoder), `reply.rs` (the [`Reply`] value and its encoder),
//! `reply_parser.rs` (the client's reply parser), `tests.rs`.

use std::fmt;

mod reply;
mod reply_parser;
mod request;
#[cfg(test)]
mod tests;

pub use reply::{Reply, encode_reply};
pub use reply_parser::{ReplyParser, parse_reply};
pub use request::{INLINE_REQUEST_BYTES_MAX, RequestParser, encode_request, parse_request};

/// Limits applied while parsing client requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Largest request (all headers and payloads of one command) accepted.
    /// Also bounds a single bulk argument and an inline command line.
    pub request_size_bytes_max: usize,
    /// Largest number of arguments (command name included) in one request.
    pub args_count_max: usize,
}

impl Default for RequestLimits {
    /// Redis's defaults: 512 MiB bulk strings, 1 Mi arguments for
    /// unauthenticated multibulk requests.
    fn default() -> Self {
        RequestLimits {
            request_size_bytes_max: 512 * 1024 * 1024,
            args_count_max: 1024 * 1024,
        }
    }
}

/// Limits applied while parsing server replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Largest reply (all nested elements together) accepted.
    pub reply_size_bytes_max: usize,
    /// Largest element count declared by a single aggregate (array, map
    /// pairs count twice, set, push, attribute).
    pub elements_count_max: usize,
    /// Deepest nesting of aggregates accepted.
    pub depth_max: usize,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        ReplyLimits {
            reply_size_bytes_max: 512 * 1024 * 1024,
            elements_count_max: 64 * 1024 * 1024,
            depth_max: 64,
        }
    }
}

/// Protocol version negotiated with `HELLO`; decides how RESP3-only reply
/// types are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProtocolVersion {
    /// RESP2, the default for every new connection.
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

/// A malformed or over-limit request or reply.
///
/// `Display` is the Redis-style message *without* the leading `ERR `, so a
/// server replies with `format!("ERR {err}")` and then closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// `*<n>` with a malformed count.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// `$<n>` with a malformed or negative length.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// A multibulk request element that is not a bulk string.
    #[error("Protocol error: expected '$', got '{}'", ByteDisplay(*.0))]
    ExpectedBulk(u8),
    /// Bulk payload not followed by `\r\n`.
    #[error("Protocol error: bulk string not terminated by CRLF")]
    MissingCrlf,
    /// Inline command with an unterminated quote or a closing quote that is
    /// not followed by a space.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// A request (declared or buffered) larger than
    /// [`RequestLimits::request_size_bytes_max`].
    #[error(
        "Protocol error: request too large ({size_bytes} bytes; the limit is {size_bytes_max})"
    )]
    RequestTooLarge {
        /// Size declared or buffered so far.
        size_bytes: u64,
        /// The configured limit.
        size_bytes_max: usize,
    },
    /// An inline command line longer than [`INLINE_REQUEST_BYTES_MAX`] (or
    /// the request limit, if smaller) without a newline.
    #[error("Protocol error: too big inline request (the limit is {size_bytes_max} bytes)")]
    InlineTooLarge {
        /// The limit in force.
        size_bytes_max: usize,
    },
    /// More arguments than [`RequestLimits::args_count_max`].
    #[error("Protocol error: too many arguments ({count}; the limit is {count_max})")]
    TooManyArgs {
        /// Declared argument count.
        count: u64,
        /// The configured limit.
        count_max: usize,
    },
    /// A reply starting with a byte that is not a RESP type marker.
    #[error("Protocol error: invalid reply type '{}'", ByteDisplay(*.0))]
    InvalidReplyType(u8),
    /// A syntactically invalid reply element.
    #[error("Protocol error: invalid {0} in reply")]
    InvalidReply(&'static str),
    /// A reply larger than [`ReplyLimits::reply_size_bytes_max`].
    #[error("Protocol error: reply too large ({size_bytes} bytes; the limit is {size_bytes_max})")]
    ReplyTooLarge {
        /// Size declared or buffered so far.
        size_bytes: u64,
        /// The configured limit.
        size_bytes_max: usize,
    },
    /// An aggregate declaring more than [`ReplyLimits::elements_count_max`]
    /// elements.
    #[error("Protocol error: too many elements in reply ({count}; the limit is {count_max})")]
    TooManyElements {
        /// Declared element count.
        count: u64,
        /// The configured limit.
        count_max: usize,
    },
    /// Aggregates nested deeper than [`ReplyLimits::depth_max`].
    #[error("Protocol error: reply nested deeper than {depth_max} levels")]
    ReplyTooDeep {
        /// The configured limit.
        depth_max: usize,
    },
}

/// Shows a byte as Redis's `%c` would, but keeps control bytes readable and
/// out of the single-line error reply.
pub(crate) struct ByteDisplay(pub(crate) u8);

impl fmt::Display for ByteDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() || self.0 == b' ' {
            write!(f, "{}", char::from(self.0))
        } else {
            write!(f, "\\x{:02x}", self.0)
        }
    }
}
