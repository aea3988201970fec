//! [`EmbedService`]: a bounded, batching queue in front of an [`Embedder`],
//! for callers on a tokio runtime.
//!
//! A model forward pass takes milliseconds to seconds of CPU, so it never
//! runs on the caller's thread: [`EmbedService::embed`] checks the request
//! (text size, queue room) under a short lock, queues it and awaits a
//! oneshot reply; a fixed set of worker threads take queued requests,
//! several at a time (one forward pass is cheaper per text than many), and
//! answer each. When the queue is full a request is refused at once with
//! [`EmbedError::Overloaded`]; nothing waits for room.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use strata_search::{EmbedError, Embedder};
use tokio::sync::oneshot;

/// Worker threads at most: each one runs a forward pass at a time on one
/// core.
pub const WORKERS_MAX: usize = 64;

/// The reply a request waits for.
type Reply = Result<Vec<Vec<f32>>, EmbedError>;

/// Limits of an [`EmbedService`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedConfig {
    /// Threads that run the model, each on one core (its matrix products
    /// run in a one-thread pool of its own). The default, 1, leaves the
    /// other core of a 2-core machine to the server.
    pub workers: usize,
    /// Texts waiting at most (requests being embedded are not counted).
    pub queue_texts_max: usize,
    /// Bytes of text waiting at most.
    pub queue_size_bytes_max: usize,
    /// Bytes per text; a larger text is refused at once with
    /// [`EmbedError::TextTooLarge`].
    pub text_size_bytes_max: usize,
    /// Texts a worker hands the embedder in one call (whole requests only;
    /// one request larger than this goes alone).
    pub batch_texts_max: usize,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            queue_texts_max: 1024,
            queue_size_bytes_max: 8 * 1024 * 1024,
            text_size_bytes_max: crate::TEXT_SIZE_BYTES_MAX_DEFAULT,
            batch_texts_max: crate::BATCH_TEXTS_MAX_DEFAULT,
        }
    }
}

/// Why an [`EmbedService`] did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid embedder service limits: {0}")]
    Limits(String),
    #[error("cannot start an embedder thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// A snapshot of an [`EmbedService`]'s counters, for metrics and INFO.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmbedStats {
    /// Texts embedded (vectors returned) since start.
    pub texts_embedded: u64,
    /// Calls into the embedder (one per batch of requests).
    pub batches: u64,
    /// Requests refused because the queue was full.
    pub requests_overloaded: u64,
    /// Requests refused because one of their texts was too large.
    pub requests_too_large: u64,
    /// Requests the embedder failed (an error, a panic, a wrong vector).
    pub requests_failed: u64,
    /// Requests dropped unembedded because their caller stopped waiting.
    pub requests_cancelled: u64,
    /// Texts waiting now.
    pub queue_texts: u64,
    /// Bytes of text waiting now.
    pub queue_size_bytes: u64,
}

struct Job {
    texts: Vec<String>,
    size_bytes: usize,
    reply: oneshot::Sender<Reply>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    texts: usize,
    size_bytes: usize,
    closed: bool,
}

#[derive(Default)]
struct Counters {
    texts_embedded: AtomicU64,
    batches: AtomicU64,
    requests_overloaded: AtomicU64,
    requests_too_large: AtomicU64,
    requests_failed: AtomicU64,
    requests_cancelled: AtomicU64,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a job is queued or the service closes.
    ready: Condvar,
    embedder: Arc<dyn Embedder>,
    config: EmbedConfig,
    counters: Counters,
}

impl Shared {
    /// The queue, even if a thread panicked holding it: every change under
    /// the lock keeps the queue consistent before anything can panic.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A bounded, batching queue in front of an [`Embedder`], with its own
/// worker threads; see the module documentation. Cheap to share behind an
/// `Arc`; dropping it shuts it down.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use strata_embed::{EmbedConfig, EmbedService, MiniLm};
///
/// let model = MiniLm::load("target/models/all-MiniLM-L6-v2".as_ref())?;
/// let service = EmbedService::start(Arc::new(model), EmbedConfig::default())?;
/// let vectors = service.embed(vec!["machine learning".to_string()]).await?;
/// assert_eq!(vectors[0].len(), service.dim());
/// # Ok(()) }
/// ```
pub struct EmbedService {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    dim: usize,
}

impl std::fmt::Debug for EmbedService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbedService")
            .field("dim", &self.dim)
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl EmbedService {
    /// Starts `config.workers` threads that embed with `embedder`.
    pub fn start(embedder: Arc<dyn Embedder>, config: EmbedConfig) -> Result<Self, StartError> {
        if config.workers == 0
            || config.workers > WORKERS_MAX
            || config.queue_texts_max == 0
            || config.queue_size_bytes_max == 0
            || config.text_size_bytes_max == 0
            || config.batch_texts_max == 0
        {
            return Err(StartError::Limits(format!("{config:?}")));
        }
        let dim = embedder.dim();
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            embedder,
            config,
            counters: Counters::default(),
        });
        let service = Self {
            shared: Arc::clone(&shared),
            workers: Mutex::new(Vec::new()),
            dim,
        };
        for index in 0..shared.config.workers {
            // A pool of one thread: candle's matrix products split their
            // work over the current rayon pool, so inside this one they
            // stay on one core (instead of the global pool's every core).
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .thread_name(move |_| format!("embed-{index}-model"))
                .build()
                .map_err(|e| StartError::Thread(std::io::Error::other(e)))?;
            let shared = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name(format!("embed-{index}"))
                .spawn(move || worker(&shared, &pool))?;
            service
                .workers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(handle);
        }
        Ok(service)
    }

    /// The length of every vector this service returns.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The limits this service was started with.
    pub fn config(&self) -> &EmbedConfig {
        &self.shared.config
    }

    /// One unit vector per text, in order. Refuses at once (no waiting)
    /// when a text is larger than `text_size_bytes_max`
    /// ([`EmbedError::TextTooLarge`]), when the queue has no room
    /// ([`EmbedError::Overloaded`]: retry later), or after
    /// [`EmbedService::shutdown`] ([`EmbedError::Failed`]). Otherwise waits,
    /// without blocking the runtime's thread, until a worker has embedded
    /// the texts; dropping the future withdraws the request.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.submit(texts)?.await
    }

    /// One text's vector: [`EmbedService::embed`] for a query.
    pub async fn embed_one(&self, text: String) -> Result<Vec<f32>, EmbedError> {
        let mut vectors = self.embed(vec![text]).await?;
        debug_assert_eq!(vectors.len(), 1);
        vectors
            .pop()
            .ok_or_else(|| EmbedError::Failed("no vector for the text".into()))
    }

    /// Queues `texts` and returns the future of their vectors; the checks
    /// and errors of [`EmbedService::embed`], without an `async` context
    /// (the lock it takes is held for a few instructions).
    pub fn submit(&self, texts: Vec<String>) -> Result<Pending, EmbedError> {
        let config = &self.shared.config;
        let counters = &self.shared.counters;
        if let Some(size_bytes) = texts
            .iter()
            .map(String::len)
            .find(|&n| n > config.text_size_bytes_max)
        {
            counters.requests_too_large.fetch_add(1, Ordering::Relaxed);
            return Err(EmbedError::TextTooLarge {
                size_bytes,
                size_bytes_max: config.text_size_bytes_max,
            });
        }
        if texts.len() > config.queue_texts_max {
            // Retrying could never help: this is no overload.
            counters.requests_failed.fetch_add(1, Ordering::Relaxed);
            return Err(EmbedError::Failed(format!(
                "{} texts in one request, more than the embedder queues ({})",
                texts.len(),
                config.queue_texts_max
            )));
        }
        let size_bytes: usize = texts.iter().map(String::len).sum();
        let (reply, receiver) = oneshot::channel();
        if texts.is_empty() {
            let _ = reply.send(Ok(Vec::new()));
            return Ok(Pending { receiver });
        }
        let mut queue = self.shared.lock();
        if queue.closed {
            return Err(shut_down());
        }
        if queue.texts + texts.len() > config.queue_texts_max
            || queue.size_bytes + size_bytes > config.queue_size_bytes_max
        {
            counters.requests_overloaded.fetch_add(1, Ordering::Relaxed);
            return Err(EmbedError::Overloaded);
        }
        queue.texts += texts.len();
        queue.size_bytes += size_bytes;
        queue.jobs.push_back(Job {
            texts,
            size_bytes,
            reply,
        });
        drop(queue);
        self.shared.ready.notify_one();
        Ok(Pending { receiver })
    }

    /// The counters now.
    pub fn stats(&self) -> EmbedStats {
        let c = &self.shared.counters;
        let (queue_texts, queue_size_bytes) = {
            let queue = self.shared.lock();
            (queue.texts as u64, queue.size_bytes as u64)
        };
        EmbedStats {
            texts_embedded: c.texts_embedded.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            requests_overloaded: c.requests_overloaded.load(Ordering::Relaxed),
            requests_too_large: c.requests_too_large.load(Ordering::Relaxed),
            requests_failed: c.requests_failed.load(Ordering::Relaxed),
            requests_cancelled: c.requests_cancelled.load(Ordering::Relaxed),
            queue_texts,
            queue_size_bytes,
        }
    }

    /// Stops the service: refuses new requests, answers every waiting one
    /// with [`EmbedError::Failed`], and joins the workers, which finish the
    /// batch they are embedding first (so this blocks for up to one batch:
    /// call it from a blocking context, e.g. `spawn_blocking`, or at exit).
    /// Idempotent; dropping the service calls it.
    pub fn shutdown(&self) {
        let waiting = {
            let mut queue = self.shared.lock();
            queue.closed = true;
            queue.texts = 0;
            queue.size_bytes = 0;
            std::mem::take(&mut queue.jobs)
        };
        self.shared.ready.notify_all();
        for job in waiting {
            let _ = job.reply.send(Err(shut_down()));
        }
        let handles =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(PoisonError::into_inner));
        for handle in handles {
            // A worker catches the embedder's panics; a panic here would be
            // the worker's own bug, already reported on stderr.
            let _ = handle.join();
        }
    }
}

impl Drop for EmbedService {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The vectors of a queued request (see [`EmbedService::submit`]).
#[derive(Debug)]
pub struct Pending {
    receiver: oneshot::Receiver<Reply>,
}

impl Future for Pending {
    type Output = Reply;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Reply> {
        Pin::new(&mut self.receiver)
            .poll(cx)
            .map(|reply| reply.unwrap_or_else(|_| Err(shut_down())))
    }
}

fn shut_down() -> EmbedError {
    EmbedError::Failed("the embedder is shut down".into())
}

/// A worker: takes batches until the service closes.
fn worker(shared: &Shared, pool: &rayon::ThreadPool) {
    while let Some(jobs) = next_batch(shared) {
        pool.install(|| run_batch(shared, jobs));
    }
}

/// Waits for queued jobs and takes whole ones, up to `batch_texts_max`
/// texts (at least one job); `None` once the service is closed. Jobs whose
/// caller has stopped waiting are dropped here, unembedded.
fn next_batch(shared: &Shared) -> Option<Vec<Job>> {
    let mut queue = shared.lock();
    loop {
        if queue.closed {
            return None;
        }
        let mut jobs = Vec::new();
        let mut texts = 0;
        while let Some(job) = queue.jobs.front() {
            if !jobs.is_empty() && texts + job.texts.len() > shared.config.batch_texts_max {
                break;
            }
            let Some(job) = queue.jobs.pop_front() else {
                break;
            };
            queue.texts -= job.texts.len();
            queue.size_bytes -= job.size_bytes;
            if job.reply.is_closed() {
                shared
                    .counters
                    .requests_cancelled
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            texts += job.texts.len();
            jobs.push(job);
        }
        debug_assert!(queue.jobs.is_empty() == (queue.texts == 0));
        if !jobs.is_empty() {
            return Some(jobs);
        }
        queue = shared
            .ready
            .wait(queue)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

/// Embeds `jobs` in one call and answers each. If that call fails and it
/// held several requests, each is retried alone, so that one request's bad
/// text fails only that request.
fn run_batch(shared: &Shared, jobs: Vec<Job>) {
    let texts: Vec<&str> = jobs
        .iter()
        .flat_map(|job| job.texts.iter().map(String::as_str))
        .collect();
    match embed_checked(shared, &texts) {
        Ok(mut vectors) => {
            // Split from the back so each job takes its own tail.
            for job in jobs.into_iter().rev() {
                let own = vectors.split_off(vectors.len() - job.texts.len());
                answer(shared, job, Ok(own));
            }
        }
        Err(error) if jobs.len() == 1 => {
            for job in jobs {
                answer(shared, job, Err(error.clone()));
            }
        }
        Err(_) => {
            for job in jobs {
                let texts: Vec<&str> = job.texts.iter().map(String::as_str).collect();
                let reply = embed_checked(shared, &texts);
                answer(shared, job, reply);
            }
        }
    }
}

/// One embedder call, with its panics caught and its output checked: one
/// vector per text, each `dim` finite floats.
fn embed_checked(shared: &Shared, texts: &[&str]) -> Reply {
    shared.counters.batches.fetch_add(1, Ordering::Relaxed);
    let dim = shared.embedder.dim();
    let vectors = catch_unwind(AssertUnwindSafe(|| shared.embedder.embed(texts)))
        .map_err(|_| EmbedError::Failed("the embedder panicked".into()))??;
    if vectors.len() != texts.len() {
        return Err(EmbedError::Failed(format!(
            "the embedder returned {} vectors for {} texts",
            vectors.len(),
            texts.len()
        )));
    }
    if let Some(bad) = vectors
        .iter()
        .find(|v| v.len() != dim || !v.iter().all(|x| x.is_finite()))
    {
        return Err(EmbedError::Failed(format!(
            "the embedder returned a vector of {} floats (not {dim} finite ones)",
            bad.len()
        )));
    }
    Ok(vectors)
}

fn answer(shared: &Shared, job: Job, reply: Reply) {
    let counters = &shared.counters;
    match &reply {
        Ok(vectors) => {
            debug_assert_eq!(vectors.len(), job.texts.len());
            counters
                .texts_embedded
                .fetch_add(vectors.len() as u64, Ordering::Relaxed);
        }
        Err(_) => {
            counters.requests_failed.fetch_add(1, Ordering::Relaxed);
        }
    }
    // The caller may have stopped waiting meanwhile; nothing to do then.
    let _ = job.reply.send(reply);
}
