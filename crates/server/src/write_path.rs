//! The one write path: how a mutation becomes an outcome, chosen once at
//! startup from the mode and the fsync policy.
//!
//! - [`Route::Queued`]: the storage writer thread commits groups and
//!   fsyncs each as `--fsync` says; a batch is queued whole before any
//!   outcome is awaited, so a pipeline of N writes lands in one group
//!   (one fsync).
//! - [`Route::Inline`]: no fsync is awaited (`--fsync periodic|never`):
//!   a batch joins an inline commit round on the network thread, with the
//!   batches of every other connection ready at the same moment
//!   (`LocalStore::apply_inline_round`), which saves two thread hand-offs per
//!   pipeline; when the round cannot run inline now, the batch is queued
//!   as on the queued route.
//! - [`Route::Raft`]: cluster mode: a batch is one log batch, in order.
//!
//! Connections hold one [`Pending`] list each, push their writes into it
//! as requests are dispatched, and hand it to [`WritePath::commit`] when a
//! reply must go out; outcomes come back one per mutation, in order. A
//! connection never chooses a route nor looks at durability. Every call
//! that writes to storage or to the log is in this file, and nowhere else
//! in the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use strata_replication::{ClusterError, ClusterNode};
use strata_storage::mutation::Limits;
use strata_storage::{LocalStore, Mutation, Outcome, StorageError, Ticket};

/// Why a write or a read barrier failed: the local store, or the cluster
/// (no leader, no quorum). A cluster error on a write means the outcome is
/// unknown.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// A write's outcome, or why it has none.
pub type WriteResult = Result<Outcome, PathError>;

/// What this server writes through, as storage opened it: a single node's
/// own store, or the cluster (whose replicated store only Raft may write).
/// One or the other, by type: there is no server with both or neither.
pub enum Writes {
    Local(LocalStore),
    Cluster(ClusterNode),
}

enum Route {
    Queued(LocalStore),
    Inline(LocalStore),
    /// The limits travel in each log entry, so every replica decides alike.
    Raft {
        node: ClusterNode,
        limits: Limits,
    },
}

pub struct WritePath {
    route: Route,
    /// Live [`Pending`] lists: one per connection. An inline round waits
    /// a scheduler pass for other connections to join it only when there
    /// are others: the pass costs a lone client 8% of its unpipelined SET
    /// rate (see `LocalStore::apply_inline_round`). Not a count of connections
    /// now committing: the ones about to join a round have not started
    /// committing yet when the first member decides whether to wait.
    submitters: Arc<AtomicUsize>,
}

impl WritePath {
    /// The route for this server: Raft in cluster mode, else inline
    /// rounds when the store can commit inline (no fsync awaited), else
    /// the writer queue.
    pub fn choose(writes: Writes, limits: Limits) -> WritePath {
        let route = match writes {
            Writes::Cluster(node) => Route::Raft { node, limits },
            Writes::Local(store) if store.writes_inline() => Route::Inline(store),
            Writes::Local(store) => Route::Queued(store),
        };
        WritePath {
            route,
            submitters: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The route's name, for logs and tests.
    pub fn route_name(&self) -> &'static str {
        match self.route {
            Route::Queued(_) => "queued",
            Route::Inline(_) => "inline",
            Route::Raft { .. } => "raft",
        }
    }

    /// A connection's pending list, counted as a submitter while it lives.
    pub fn pending(&self) -> Pending {
        self.submitters.fetch_add(1, Relaxed);
        Pending {
            mutations: Vec::new(),
            outcomes: Vec::new(),
            tickets: Vec::new(),
            _submitter: Submitter(Arc::clone(&self.submitters)),
        }
    }

    /// Whether reads must wait for a read point first ([`Self::read_barrier`]):
    /// only a replicated node can be behind a write acknowledged elsewhere.
    pub fn reads_need_barrier(&self) -> bool {
        matches!(self.route, Route::Raft { .. })
    }

    /// Before a linearizable read in cluster mode: waits until this node
    /// has applied everything committed when the read arrived (ReadIndex).
    /// Single node: nothing to wait for.
    pub async fn read_barrier(&self) -> Result<(), PathError> {
        match &self.route {
            Route::Raft { node, .. } => node.read_barrier().await.map_err(PathError::from),
            Route::Queued(_) | Route::Inline(_) => Ok(()),
        }
    }

    /// Commits every mutation in `pending`, in order, and leaves one
    /// outcome per mutation in it ([`Pending::outcomes`]).
    pub async fn commit(&self, pending: &mut Pending) {
        debug_assert!(pending.outcomes.is_empty(), "outcomes left unread");
        pending.outcomes.clear();
        let count = pending.mutations.len();
        if count == 0 {
            return;
        }
        match &self.route {
            Route::Queued(store) => commit_queued(store, pending).await,
            Route::Inline(store) => {
                let batch = std::mem::take(&mut pending.mutations);
                let others = self.submitters.load(Relaxed) > 1;
                match store.apply_inline_round(batch, others).await {
                    Ok(outcomes) => pending
                        .outcomes
                        .extend(outcomes.into_iter().map(|r| r.map_err(PathError::from))),
                    // Not inline now: the writer queue keeps their order.
                    Err(batch) => {
                        pending.mutations = batch;
                        commit_queued(store, pending).await;
                    }
                }
            }
            Route::Raft { node, limits } => {
                let batch = std::mem::take(&mut pending.mutations);
                let outcomes = node.write_batch(batch, *limits).await;
                pending
                    .outcomes
                    .extend(outcomes.into_iter().map(|r| r.map_err(PathError::from)));
            }
        }
        pending.mutations.clear();
        self.one_outcome_each(pending, count);
    }

    /// One mutation alone (EXEC), through the same route; `pending` must
    /// hold nothing (the connection commits what it holds first, so
    /// replies stay in order).
    pub async fn write(&self, pending: &mut Pending, mutation: Mutation) -> WriteResult {
        debug_assert!(pending.is_empty(), "earlier writes not committed first");
        pending.mutations.clear();
        pending.mutations.push(mutation);
        self.commit(pending).await;
        let result = pending.outcomes.pop();
        pending.outcomes.clear();
        result.unwrap_or_else(|| Err(self.missing()))
    }

    /// Every route answers one outcome per mutation; if one ever did not,
    /// the replies would shift onto the wrong requests. Checked in tests;
    /// in release, the missing ones are answered with an error and extra
    /// ones dropped, which keeps every later reply on its request.
    fn one_outcome_each(&self, pending: &mut Pending, count: usize) {
        debug_assert_eq!(pending.outcomes.len(), count, "one outcome per mutation");
        pending.outcomes.truncate(count);
        while pending.outcomes.len() < count {
            pending.outcomes.push(Err(self.missing()));
        }
    }

    fn missing(&self) -> PathError {
        match self.route {
            Route::Raft { .. } => {
                PathError::Cluster(ClusterError::Again("no outcome for a write".into()))
            }
            Route::Queued(_) | Route::Inline(_) => PathError::Storage(StorageError::ShuttingDown),
        }
    }
}

/// Queues the whole batch to the writer thread before awaiting any
/// outcome, so that it lands in one group (one fsync); queuing waits only
/// for queue space (the writer's backpressure).
async fn commit_queued(store: &LocalStore, pending: &mut Pending) {
    let Pending {
        mutations,
        outcomes,
        tickets,
        ..
    } = pending;
    debug_assert!(tickets.is_empty());
    for m in mutations.drain(..) {
        tickets.push(store.enqueue(m).await);
    }
    for ticket in tickets.drain(..) {
        outcomes.push(match ticket {
            Ok(ticket) => ticket.outcome().await.map_err(PathError::from),
            Err(e) => Err(PathError::from(e)),
        });
    }
}

/// One connection's writes not yet committed, in request order, and the
/// outcomes of the last commit. Its vectors are reused from pipeline to
/// pipeline (no allocation per request once warm).
pub struct Pending {
    mutations: Vec<Mutation>,
    outcomes: Vec<WriteResult>,
    /// The queued route's receipts, between queuing and awaiting.
    tickets: Vec<Result<Ticket, StorageError>>,
    _submitter: Submitter,
}

impl Pending {
    pub fn push(&mut self, mutation: Mutation) {
        self.mutations.push(mutation);
    }

    /// Mutations waiting for a commit.
    pub fn len(&self) -> usize {
        self.mutations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.mutations.is_empty()
    }

    /// The last commit's outcomes, in order, one per mutation; taken.
    pub fn outcomes(&mut self) -> std::vec::Drain<'_, WriteResult> {
        self.outcomes.drain(..)
    }
}

/// Counts its [`Pending`] in [`WritePath`]'s submitters while alive (a
/// guard: a connection task that panics unwinds through it).
struct Submitter(Arc<AtomicUsize>);

impl Drop for Submitter {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use strata_storage::{FsyncPolicy, Op, StorageConfig};

    fn store(dir: &std::path::Path, fsync: FsyncPolicy) -> LocalStore {
        let config = StorageConfig {
            fsync,
            ..StorageConfig::new(dir.to_path_buf())
        };
        LocalStore::open(config).expect("store opens")
    }

    fn limits() -> Limits {
        Limits {
            key_size_bytes_max: 1024,
            value_size_bytes_max: 1024,
        }
    }

    fn incr(key: &'static str) -> Mutation {
        Mutation {
            now_ms: 1_000,
            op: Op::IncrBy {
                key: Bytes::from_static(key.as_bytes()),
                delta: 1,
            },
        }
    }

    /// A batch whose mutations depend on their order (INCR of one key,
    /// with another key's between): each outcome must be its own, in
    /// order, one per mutation, and the list must be ready for the next.
    async fn order_is_kept(path: &WritePath) {
        let mut pending = path.pending();
        for round in 0..3_i64 {
            for _ in 0..5 {
                pending.push(incr("a"));
                pending.push(incr("b"));
            }
            path.commit(&mut pending).await;
            assert!(pending.is_empty());
            let got: Vec<i64> = pending
                .outcomes()
                .map(|r| match r {
                    Ok(Outcome::Int(n)) => n,
                    other => panic!("unexpected outcome {other:?}"),
                })
                .collect();
            let want: Vec<i64> = (1..=5)
                .flat_map(|i| [round * 5 + i, round * 5 + i])
                .collect();
            assert_eq!(got, want);
        }
        // EXEC's single write goes the same way.
        let one = path.write(&mut pending, incr("a")).await;
        assert!(matches!(one, Ok(Outcome::Int(16))), "{one:?}");
        assert_eq!(pending.outcomes().count(), 0);
    }

    #[tokio::test]
    async fn queued_route_keeps_order_and_answers_each_mutation() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), FsyncPolicy::Always);
        let path = WritePath::choose(Writes::Local(store.clone()), limits());
        assert_eq!(path.route_name(), "queued");
        order_is_kept(&path).await;
        store.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn inline_route_keeps_order_and_answers_each_mutation() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), FsyncPolicy::Never);
        let path = WritePath::choose(Writes::Local(store.clone()), limits());
        assert_eq!(path.route_name(), "inline");
        // Another submitter: the round waits for it (which never comes).
        let _other = path.pending();
        order_is_kept(&path).await;
        store.shutdown().await.unwrap();
    }

    #[test]
    fn submitters_are_counted_while_their_list_lives() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), FsyncPolicy::Never);
        let path = WritePath::choose(Writes::Local(store.clone()), limits());
        let a = path.pending();
        let b = path.pending();
        assert_eq!(path.submitters.load(Relaxed), 2);
        drop(a);
        assert_eq!(path.submitters.load(Relaxed), 1);
        drop(b);
        assert_eq!(path.submitters.load(Relaxed), 0);
    }
}
