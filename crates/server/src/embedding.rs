//! Embeddings for `EMBED` vector fields, computed on the connection side
//! before a write enters the log (issue 21): replicas never run the model,
//! and `apply` stays deterministic.
//!
//! A write whose keys an EMBED index covers (`Store::embedding_targets`)
//! is held back: its texts go to the server's [`Embedder`] (a bounded
//! service: when its queue is full it answers `Overloaded` at once, so a
//! connection never waits behind others' texts for long, and the client
//! gets a clear error), then the write is proposed wrapped in
//! `Op::Embedded` with the vectors. Which writes: SET and its variants,
//! MSET, PUT, BATCHPUT, KV.TXN's SETs and EXEC's SETs and MSETs. APPEND,
//! SETRANGE, INCR and the like carry no vector: storage keeps or drops the
//! field's vector as its rule says (the text changed: dropped).
//!
//! Without an embedder (no `--embedding-model`), nothing here runs: one
//! `is_none` per write.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use strata_protocol::resp::Reply;
use strata_search::EmbedError;
use strata_storage::{Embedding, Mutation, Op, Step};

use crate::shared::Shared;

/// Texts one write may ask to embed (an MSET of many covered keys).
pub const TEXTS_PER_WRITE_MAX: usize = 1_024;

/// A future as the embedder returns it.
pub type EmbedFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<Vec<f32>>, EmbedError>> + Send + 'a>>;

/// The server's sentence-embedding service: bounded, asynchronous.
pub trait Embedder: Send + Sync {
    /// The length of every vector.
    fn dim(&self) -> usize;
    /// One vector per text, in order; `Overloaded` at once when full.
    fn embed(&self, texts: Vec<String>) -> EmbedFuture<'_>;
}

pub type SharedEmbedder = Arc<dyn Embedder>;

#[cfg(feature = "embedding")]
impl Embedder for strata_embed::EmbedService {
    fn dim(&self) -> usize {
        strata_embed::EmbedService::dim(self)
    }

    fn embed(&self, texts: Vec<String>) -> EmbedFuture<'_> {
        Box::pin(strata_embed::EmbedService::embed(self, texts))
    }
}

/// The embedder `--embedding-model` names (None without it): the model
/// loaded and its bounded service started (one worker thread).
pub fn open(model_dir: Option<&std::path::Path>) -> Result<Option<SharedEmbedder>, String> {
    let Some(dir) = model_dir else {
        return Ok(None);
    };
    open_model(dir).map(Some)
}

#[cfg(feature = "embedding")]
fn open_model(dir: &std::path::Path) -> Result<SharedEmbedder, String> {
    let model = strata_embed::MiniLm::load(dir).map_err(|e| e.to_string())?;
    let config = strata_embed::EmbedConfig::default();
    let service =
        strata_embed::EmbedService::start(Arc::new(model), config).map_err(|e| e.to_string())?;
    tracing::info!(model = %dir.display(), dim = service.dim(), "embedding model loaded");
    Ok(Arc::new(service))
}

#[cfg(not(feature = "embedding"))]
fn open_model(_: &std::path::Path) -> Result<SharedEmbedder, String> {
    Err(
        "this build has no embedding model: rebuild with `cargo build --release --features embedding`"
            .into(),
    )
}

/// A write waiting for its vectors.
pub struct Job {
    mutation: Mutation,
    targets: Vec<Target>,
}

struct Target {
    key: Bytes,
    index: u32,
    field: u16,
    text: String,
}

/// `m` as it is when it needs no vector (`Ok`), or the job that computes
/// them first.
pub fn plan(shared: &Shared, m: Mutation) -> Result<Mutation, Job> {
    if shared.embedder.is_none() {
        return Ok(m);
    }
    let mut targets = Vec::new();
    visit_writes(&m.op, &mut |key, value| {
        // A read error here: the write goes without vectors (storage's
        // rule for a text without one), and its own outcome tells.
        let found = shared.store.embedding_targets(key, value);
        for (index, field, text) in found.unwrap_or_default() {
            targets.push(Target {
                key: key.clone(),
                index,
                field,
                text,
            });
        }
    });
    if targets.is_empty() {
        Ok(m)
    } else {
        Err(Job {
            mutation: m,
            targets,
        })
    }
}

/// Every (key, value) the op writes whole.
fn visit_writes(op: &Op, visit: &mut dyn FnMut(&Bytes, &Bytes)) {
    match op {
        Op::Set { key, value, .. } => visit(key, value),
        Op::MSet { pairs, .. } => pairs.iter().for_each(|(k, v)| visit(k, v)),
        Op::ExecVersioned { steps, .. } | Op::ExecChecked { steps, .. } => {
            for step in steps {
                if let Step::Write(op) = step {
                    visit_writes(op, visit);
                }
            }
        }
        _ => {}
    }
}

/// Computes the job's vectors and wraps its write in `Op::Embedded`; the
/// error is the client's reply.
pub async fn run(shared: &Shared, job: Job) -> Result<Mutation, Reply> {
    let Some(embedder) = shared.embedder.clone() else {
        return Ok(job.mutation);
    };
    if job.targets.len() > TEXTS_PER_WRITE_MAX {
        return Err(Reply::error(format!(
            "ERR one write may embed at most {TEXTS_PER_WRITE_MAX} texts (EMBED fields)"
        )));
    }
    let texts = job.targets.iter().map(|t| t.text.clone()).collect();
    let vectors = embedder
        .embed(texts)
        .await
        .map_err(|e| Reply::error(format!("ERR {e}")))?;
    if vectors.len() != job.targets.len() {
        return Err(Reply::error(
            "ERR embedding failed: wrong number of vectors",
        ));
    }
    let embeddings = job
        .targets
        .into_iter()
        .zip(vectors)
        .map(|(t, vector)| Embedding {
            text_hash: strata_search::text_hash(&t.text),
            key: t.key,
            index: t.index,
            field: t.field,
            vector,
        })
        .collect();
    let Mutation { now_ms, op } = job.mutation;
    Ok(Mutation {
        now_ms,
        op: Op::Embedded {
            op: Box::new(op),
            embeddings,
        },
    })
}
