//! Search over values (issue 21), sans-I/O: what an index is, which
//! entries a value writes, and how a query reads them back.
//!
//! Strata's search is **index-as-data**: index entries are keys in the
//! data keyspace, written by the deterministic `apply` in the same batch as
//! the record they describe, on the single node and on every replica. This
//! crate computes those entries and answers queries over them; it never
//! stores, sends or waits for anything. Storage calls it, the way the server
//! calls `strata-protocol`.
//!
//! - [`schema`]: an index definition ([`IndexDef`]), parsed from
//!   `FT.CREATE`'s arguments with RediSearch's error messages, and its
//!   strict, versioned binary encoding (replicated state).
//! - [`analyze`]: the tokenizer (Unicode word boundaries, lower case,
//!   RediSearch's default stop words, Snowball stems) and tag splitting.
//! - [`document`]: a value's fields (`ON STRING` or `ON JSON`), or why it is
//!   skipped.
//! - [`keys`]: the byte layout of every entry under [`keys::TAG_SEARCH`].
//! - [`entries`]: the heart: for one key's old and new value, the exact
//!   entries to delete and to put, and the statistics delta ([`Indexer`]).
//! - [`query`]: the query language subset (RediSearch DIALECT 2) and PARAMS.
//! - [`score`] and [`eval`]: BM25 and exact (FLAT) KNN over a small read
//!   trait, [`eval::IndexRead`], that storage implements on a snapshot.
//!
//! What this crate deliberately does **not** know:
//! - **storage**: no fjall, no batches, no records, no expiry. It returns
//!   `(key, value)` pairs and reads through [`eval::IndexRead`]; where they
//!   go, and in which batch, is storage's.
//! - **the network and commands**: no RESP, no FT.* argument layout beyond
//!   `FT.CREATE`'s schema and FT.SEARCH's `PARAMS`; replies are the
//!   server's.
//! - **embeddings**: an `EMBED` vector field's vector is computed by the
//!   server before the write enters the log and handed in with the value
//!   ([`entries::DocInput::embeddings`]); [`Embedder`] is the interface the
//!   server implements. No model runs here, so `apply` stays deterministic.
//! - **time and randomness**: same inputs, same bytes, on every replica.

pub mod analyze;
pub mod codec;
pub mod document;
pub mod entries;
pub mod eval;
pub mod keys;
pub mod limits;
pub mod query;
pub mod schema;
pub mod score;

pub use document::{embed_sources, text_hash};
pub use entries::{Changes, DocInput, IndexStats, Indexer, StatsDelta};
pub use eval::{Hit, IndexRead, ReadError, SearchOptions, SearchResult};
pub use query::{Params, Query};
pub use schema::{IndexDef, IndexId, SchemaError};

/// Bytes of client text an error message repeats.
const ECHO_SIZE_BYTES_MAX: usize = 128;

/// Client text as an error message may repeat it: lossy UTF-8, control
/// characters (CR and LF would end a RESP error line) as spaces, cut to
/// [`ECHO_SIZE_BYTES_MAX`] bytes at a character boundary.
pub(crate) fn echo(raw: &[u8]) -> String {
    let mut out = String::new();
    for c in String::from_utf8_lossy(raw).chars() {
        if out.len() + c.len_utf8() > ECHO_SIZE_BYTES_MAX {
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// Turns text into a vector, for `EMBED` fields: implemented by the server
/// (a sentence-embedding model on the connection side), never called by
/// this crate. Declared here so that the schema's `EMBED` option, the
/// server and tests agree on one shape.
pub trait Embedder: Send + Sync {
    /// The length of every vector [`Embedder::embed`] returns; `FT.CREATE`
    /// refuses an `EMBED` field whose `DIM` differs.
    fn dim(&self) -> usize;
    /// One vector per text, each of [`Embedder::dim`] finite floats.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// Why an [`Embedder`] gave no vectors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmbedError {
    #[error("the embedder is overloaded; retry later")]
    Overloaded,
    #[error("text of {size_bytes} bytes is longer than the embedder takes ({size_bytes_max})")]
    TextTooLarge {
        size_bytes: usize,
        size_bytes_max: usize,
    },
    #[error("embedding failed: {0}")]
    Failed(String),
}
