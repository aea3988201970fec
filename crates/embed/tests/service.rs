//! EmbedService without a model: a deterministic test embedder whose calls
//! can be held at a gate, so that queue states are exact, not timed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use strata_embed::{EmbedConfig, EmbedError, EmbedService, EmbedStats, Embedder, StartError};

const DIM: usize = 4;
/// Every wait in these tests is bounded by this.
const WAIT: Duration = Duration::from_secs(10);

/// A text's vector: its byte length, its first byte, and a checksum, so
/// that a vector handed to the wrong request is seen.
fn vector_of(text: &str) -> Vec<f32> {
    let sum: u32 = text.bytes().map(u32::from).sum();
    let first = text.bytes().next().map_or(0.0, f32::from);
    vec![text.len() as f32, first, sum as f32, 1.0]
}

/// Deterministic embedder. `gate_closed` holds every call until opened;
/// texts containing "fail" fail the call, "panic" panics it, "short" makes
/// it return a vector of the wrong size. Counts calls and texts per call.
#[derive(Default)]
struct TestEmbedder {
    gate_closed: Mutex<bool>,
    gate: Condvar,
    calls_entered: AtomicUsize,
    call_sizes: Mutex<Vec<usize>>,
}

impl TestEmbedder {
    fn gated() -> Arc<Self> {
        let embedder = Self::default();
        *embedder.gate_closed.lock().unwrap() = true;
        Arc::new(embedder)
    }

    fn open(&self) {
        *self.gate_closed.lock().unwrap() = false;
        self.gate.notify_all();
    }

    /// Waits (bounded) until `n` calls have entered `embed`.
    fn wait_entered(&self, n: usize) {
        let deadline = std::time::Instant::now() + WAIT;
        while self.calls_entered.load(Ordering::SeqCst) < n {
            assert!(
                std::time::Instant::now() < deadline,
                "no call entered the embedder"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Embedder for TestEmbedder {
    fn dim(&self) -> usize {
        DIM
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.calls_entered.fetch_add(1, Ordering::SeqCst);
        self.call_sizes.lock().unwrap().push(texts.len());
        {
            // Released before a panic below, which must not poison the gate.
            let closed = self.gate_closed.lock().unwrap();
            let (_open, timeout) = self.gate.wait_timeout_while(closed, WAIT, |c| *c).unwrap();
            assert!(!timeout.timed_out(), "the test never opened the gate");
        }
        if texts.iter().any(|t| t.contains("panic")) {
            panic!("test embedder asked to panic");
        }
        if texts.iter().any(|t| t.contains("fail")) {
            return Err(EmbedError::Failed("test embedder asked to fail".into()));
        }
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vector_of(t);
                if t.contains("short") {
                    v.pop();
                }
                v
            })
            .collect())
    }
}

fn config() -> EmbedConfig {
    EmbedConfig {
        workers: 1,
        queue_texts_max: 8,
        queue_size_bytes_max: 1000,
        text_size_bytes_max: 100,
        batch_texts_max: 4,
    }
}

fn start(embedder: &Arc<TestEmbedder>, config: EmbedConfig) -> EmbedService {
    EmbedService::start(Arc::clone(embedder) as Arc<dyn Embedder>, config).unwrap()
}

fn texts(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .expect("an embed call did not finish")
}

#[tokio::test]
async fn vectors_come_back_in_order_for_each_request() {
    let embedder = Arc::new(TestEmbedder::default());
    let service = start(&embedder, config());
    assert_eq!(service.dim(), DIM);
    let words = ["alpha", "b", "gamma ray", "delta"];
    let vectors = bounded(service.embed(texts(&words))).await.unwrap();
    let expected: Vec<Vec<f32>> = words.iter().map(|w| vector_of(w)).collect();
    assert_eq!(vectors, expected);
    assert_eq!(
        bounded(service.embed_one("zeta".into())).await.unwrap(),
        vector_of("zeta")
    );
    assert_eq!(
        bounded(service.embed(Vec::new())).await.unwrap(),
        Vec::<Vec<f32>>::new()
    );
    let stats = service.stats();
    assert_eq!(stats.texts_embedded, 5);
    assert_eq!((stats.queue_texts, stats.queue_size_bytes), (0, 0));
}

#[tokio::test]
async fn queued_requests_are_batched_and_each_gets_its_own_vectors() {
    let embedder = TestEmbedder::gated();
    let service = start(&embedder, config());
    // The first request occupies the worker at the gate; the next three
    // (2 + 1 + 1 texts) queue, and then go to the embedder as one call of
    // 4 (batch_texts_max); the last (3 texts) would pass 4, so it waits.
    let first = service.submit(texts(&["first"])).unwrap();
    embedder.wait_entered(1);
    let a = service.submit(texts(&["a1", "a22"])).unwrap();
    let b = service.submit(texts(&["b"])).unwrap();
    let c = service.submit(texts(&["c333"])).unwrap();
    let d = service.submit(texts(&["d", "dd", "ddd"])).unwrap();
    assert_eq!(service.stats().queue_texts, 7);
    assert_eq!(service.stats().queue_size_bytes, 2 + 3 + 1 + 4 + 1 + 2 + 3);
    embedder.open();
    assert_eq!(bounded(first).await.unwrap(), vec![vector_of("first")]);
    assert_eq!(
        bounded(a).await.unwrap(),
        vec![vector_of("a1"), vector_of("a22")]
    );
    assert_eq!(bounded(b).await.unwrap(), vec![vector_of("b")]);
    assert_eq!(bounded(c).await.unwrap(), vec![vector_of("c333")]);
    let d_vectors = bounded(d).await.unwrap();
    assert_eq!(d_vectors, ["d", "dd", "ddd"].map(vector_of).to_vec());
    assert_eq!(*embedder.call_sizes.lock().unwrap(), vec![1, 4, 3]);
    let stats = service.stats();
    assert_eq!((stats.batches, stats.texts_embedded), (3, 8));
}

#[tokio::test]
async fn a_full_queue_refuses_at_once_in_texts_and_in_bytes() {
    let embedder = TestEmbedder::gated();
    let service = start(&embedder, config());
    let busy = service.submit(texts(&["busy"])).unwrap();
    embedder.wait_entered(1);
    // 8 texts fill the queue (queue_texts_max); a ninth is refused.
    let full = service.submit(vec!["x".to_string(); 8]).unwrap();
    let refused = service.submit(texts(&["y"]));
    assert_eq!(refused.unwrap_err(), EmbedError::Overloaded);
    assert_eq!(service.stats().requests_overloaded, 1);
    embedder.open();
    assert_eq!(bounded(busy).await.unwrap().len(), 1);
    assert_eq!(bounded(full).await.unwrap().len(), 8);

    // Bytes: 1000 bytes at most; 10 texts of 100 would also pass the text
    // bound, so use a fresh service with room for more texts.
    let embedder = TestEmbedder::gated();
    let service = start(
        &embedder,
        EmbedConfig {
            queue_texts_max: 100,
            ..config()
        },
    );
    let busy = service.submit(texts(&["busy"])).unwrap();
    embedder.wait_entered(1);
    let big = "z".repeat(100);
    let nine = service.submit(vec![big.clone(); 9]).unwrap();
    assert_eq!(service.stats().queue_size_bytes, 900);
    let refused = service.submit(vec![big.clone(), "z".into()]);
    assert_eq!(refused.unwrap_err(), EmbedError::Overloaded);
    let fits = service.submit(vec![big]).unwrap();
    assert_eq!(service.stats().queue_size_bytes, 1000);
    embedder.open();
    for pending in [busy, nine, fits] {
        bounded(pending).await.unwrap();
    }
    assert_eq!(service.stats().queue_size_bytes, 0);
}

#[tokio::test]
async fn too_large_texts_and_requests_are_refused_before_queueing() {
    let embedder = Arc::new(TestEmbedder::default());
    let service = start(&embedder, config());
    let err = service
        .submit(vec!["ok".into(), "w".repeat(101)])
        .unwrap_err();
    assert_eq!(
        err,
        EmbedError::TextTooLarge {
            size_bytes: 101,
            size_bytes_max: 100
        }
    );
    // More texts than the queue can ever hold: not "overloaded" (a retry
    // could never succeed).
    let err = service.submit(vec!["t".to_string(); 9]).unwrap_err();
    assert!(
        matches!(err, EmbedError::Failed(ref m) if m.contains("9 texts")),
        "{err:?}"
    );
    let stats = service.stats();
    assert_eq!(
        (stats.requests_too_large, stats.requests_overloaded),
        (1, 0)
    );
    assert_eq!(embedder.calls_entered.load(Ordering::SeqCst), 0);
    // A text of exactly the limit is fine.
    let vectors = bounded(service.embed(vec!["w".repeat(100)])).await.unwrap();
    assert_eq!(vectors, vec![vector_of(&"w".repeat(100))]);
}

#[tokio::test]
async fn a_failing_text_fails_only_its_own_request() {
    let embedder = TestEmbedder::gated();
    let service = start(&embedder, config());
    let busy = service.submit(texts(&["busy"])).unwrap();
    embedder.wait_entered(1);
    let good = service.submit(texts(&["good"])).unwrap();
    let bad = service.submit(texts(&["please fail"])).unwrap();
    let panics = service.submit(texts(&["panic now"])).unwrap();
    let short = service.submit(texts(&["short"])).unwrap();
    embedder.open();
    assert_eq!(bounded(busy).await.unwrap(), vec![vector_of("busy")]);
    // The four went as one call, which failed; each was retried alone.
    assert_eq!(bounded(good).await.unwrap(), vec![vector_of("good")]);
    let err = bounded(bad).await.unwrap_err();
    assert_eq!(
        err,
        EmbedError::Failed("test embedder asked to fail".into())
    );
    let err = bounded(panics).await.unwrap_err();
    assert_eq!(err, EmbedError::Failed("the embedder panicked".into()));
    let err = bounded(short).await.unwrap_err();
    assert!(
        matches!(err, EmbedError::Failed(ref m) if m.contains("3 floats")),
        "{err:?}"
    );
    // The worker survived the panic.
    assert_eq!(
        bounded(service.embed_one("after".into())).await.unwrap(),
        vector_of("after")
    );
    let stats: EmbedStats = service.stats();
    assert_eq!(stats.requests_failed, 3);
    assert_eq!(
        *embedder.call_sizes.lock().unwrap(),
        vec![1, 4, 1, 1, 1, 1, 1]
    );
}

#[tokio::test]
async fn a_withdrawn_request_is_not_embedded() {
    let embedder = TestEmbedder::gated();
    let service = start(&embedder, config());
    let busy = service.submit(texts(&["busy"])).unwrap();
    embedder.wait_entered(1);
    let withdrawn = service.submit(texts(&["gone"])).unwrap();
    drop(withdrawn);
    let kept = service.submit(texts(&["kept"])).unwrap();
    embedder.open();
    bounded(busy).await.unwrap();
    assert_eq!(bounded(kept).await.unwrap(), vec![vector_of("kept")]);
    assert_eq!(service.stats().requests_cancelled, 1);
    assert_eq!(*embedder.call_sizes.lock().unwrap(), vec![1, 1]);
}

#[tokio::test]
async fn shutdown_answers_waiting_requests_and_refuses_new_ones() {
    let embedder = TestEmbedder::gated();
    let service = Arc::new(start(&embedder, config()));
    let busy = service.submit(texts(&["busy"])).unwrap();
    embedder.wait_entered(1);
    let waiting = service.submit(texts(&["waiting"])).unwrap();
    // shutdown joins the worker, which is at the gate: run it beside.
    let stopper = {
        let service = Arc::clone(&service);
        std::thread::spawn(move || service.shutdown())
    };
    let err = bounded(waiting).await.unwrap_err();
    assert_eq!(err, EmbedError::Failed("the embedder is shut down".into()));
    assert_eq!(
        service.submit(texts(&["late"])).unwrap_err(),
        EmbedError::Failed("the embedder is shut down".into())
    );
    // The batch being embedded finishes and is answered.
    embedder.open();
    assert_eq!(bounded(busy).await.unwrap(), vec![vector_of("busy")]);
    stopper.join().unwrap();
    service.shutdown(); // idempotent
    assert_eq!(service.stats().queue_texts, 0);
}

/// The model runs on the service's threads: a current-thread runtime keeps
/// serving other tasks while a request waits for a busy embedder.
#[test]
fn a_waiting_request_does_not_stall_the_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let embedder = TestEmbedder::gated();
    let service = Arc::new(start(&embedder, config()));
    runtime.block_on(async {
        let waiting = tokio::spawn({
            let service = Arc::clone(&service);
            async move { service.embed(texts(&["slow"])).await }
        });
        // Yield to the runtime (which submits the request) until the call
        // is in the embedder.
        bounded(async {
            while embedder.calls_entered.load(Ordering::SeqCst) < 1 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        // The only runtime thread is free: timers and other tasks run.
        let ticks = tokio::spawn(async {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            3
        });
        assert_eq!(bounded(ticks).await.unwrap(), 3);
        assert!(!waiting.is_finished());
        embedder.open();
        let vectors = bounded(waiting).await.unwrap().unwrap();
        assert_eq!(vectors, vec![vector_of("slow")]);
    });
}

#[tokio::test]
async fn two_workers_embed_at_the_same_time() {
    let embedder = TestEmbedder::gated();
    let service = start(
        &embedder,
        EmbedConfig {
            workers: 2,
            batch_texts_max: 1,
            ..config()
        },
    );
    let one = service.submit(texts(&["one"])).unwrap();
    let two = service.submit(texts(&["two"])).unwrap();
    // Both calls are inside the embedder at once, before the gate opens.
    embedder.wait_entered(2);
    embedder.open();
    assert_eq!(bounded(one).await.unwrap(), vec![vector_of("one")]);
    assert_eq!(bounded(two).await.unwrap(), vec![vector_of("two")]);
}

#[test]
fn invalid_limits_are_refused() {
    let embedder = Arc::new(TestEmbedder::default());
    for bad in [
        EmbedConfig {
            workers: 0,
            ..config()
        },
        EmbedConfig {
            workers: strata_embed::WORKERS_MAX + 1,
            ..config()
        },
        EmbedConfig {
            queue_texts_max: 0,
            ..config()
        },
        EmbedConfig {
            queue_size_bytes_max: 0,
            ..config()
        },
        EmbedConfig {
            text_size_bytes_max: 0,
            ..config()
        },
        EmbedConfig {
            batch_texts_max: 0,
            ..config()
        },
    ] {
        let err = EmbedService::start(Arc::clone(&embedder) as Arc<dyn Embedder>, bad);
        assert!(matches!(err, Err(StartError::Limits(_))), "{err:?}");
    }
}
