//! [`ClusterNode`]: one Strata node in a Raft cluster. The server talks to
//! this type only: write batches, read barriers, status, membership.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use openraft::Instant as _;
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, Config, ReadPolicy, ServerState, SnapshotPolicy};
use strata_storage::mutation::Limits;
use strata_storage::{FsyncPolicy, Mutation, Op, Outcome, RequestId, Store, now_ms};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Semaphore, mpsc, oneshot, watch};

use crate::auth::ClusterSecret;
use crate::log_store::LogStore;
use crate::network::{Network, PeerConn};
use crate::proposer::{PROPOSER_QUEUE_LEN_MAX, Submission};
use crate::state_machine::{SmStats, StateMachine};
use crate::types::{Command, NodeId, Raft};
use crate::wire::{AdminRequest, ForwardError, NodeStatus, Request, Response};

/// How long a dedupe record must outlive the retries that could hit it.
/// Retries stop after `forward_timeout_ms` (seconds); minutes of margin.
pub const DEDUPE_WINDOW_MS: u64 = 10 * 60 * 1000;
/// A forwarded command older than this (by the leader's clock) is refused:
/// its dedupe record might already be evicted, so applying it could apply
/// a retried write twice.
const FORWARDED_COMMAND_AGE_MS_MAX: u64 = DEDUPE_WINDOW_MS / 2;
/// Idle forwarding connections kept per leader.
const FORWARD_POOL_IDLE_MAX: usize = 64;
/// Forwarded requests in flight from this node at once (bounds sockets).
const FORWARD_IN_FLIGHT_MAX: usize = 256;
/// Pause between forwarding attempts while there is no usable leader:
/// it starts short (a leader hand-over completes in a few ms) and doubles
/// up to the maximum (an election takes hundreds).
const RETRY_PAUSE_MS_MIN: u64 = 2;
const RETRY_PAUSE_MS: u64 = 50;

fn retry_pause(attempt: &mut u32) -> Duration {
    let ms = (RETRY_PAUSE_MS_MIN << (*attempt).min(8)).min(RETRY_PAUSE_MS);
    *attempt = attempt.saturating_add(1);
    Duration::from_millis(ms)
}
/// What a leader running a forwarded membership change leaves of the
/// admin timeout for its answer to travel back: it gives up this much
/// before the forwarding node does (with the same `--admin-timeout-ms`),
/// so that node relays the leader's own explanation, not "no answer".
const ADMIN_ANSWER_MARGIN_MS: u64 = 500;
/// Bound on a status probe of another node.
const STATUS_TIMEOUT_MS: u64 = 1_000;
/// Commands in one forwarded batch at most (a connection's pipeline).
pub const WRITE_BATCH_COMMANDS_MAX: usize = 4096;

#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub node_id: NodeId,
    pub peer_listen: SocketAddr,
    /// Bootstrap members (id, peer address); empty when joining.
    pub initial_cluster: Vec<(NodeId, String)>,
    /// Peer address of a running member to join through.
    pub join: Option<String>,
    pub join_as_voter: bool,
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
    pub snapshot_logs: u64,
    pub forward_timeout_ms: u64,
    /// Bound on a membership change, and on each attempt of `--join`.
    pub admin_timeout_ms: u64,
    pub fsync: FsyncPolicy,
    pub snapshot_dir: PathBuf,
    pub expiry_sweep_interval_ms: u64,
    pub expiry_sweep_keys_max: usize,
    /// What peers prove to each other (`auth.rs`); `ClusterSecret::none()`
    /// when the operator configured none.
    pub cluster_secret: ClusterSecret,
}

impl ClusterConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.node_id == 0 {
            return Err("--node-id must be at least 1".into());
        }
        if self.initial_cluster.is_empty() == self.join.is_none() {
            return Err("cluster mode needs exactly one of --initial-cluster or --join".into());
        }
        if !self.initial_cluster.is_empty()
            && !self
                .initial_cluster
                .iter()
                .any(|(id, _)| *id == self.node_id)
        {
            return Err(format!(
                "--initial-cluster does not list this node's id {}",
                self.node_id
            ));
        }
        let mut seen = BTreeSet::new();
        for (id, _) in &self.initial_cluster {
            if *id == 0 || !seen.insert(*id) {
                return Err(format!(
                    "--initial-cluster: node id {id} is zero or repeated"
                ));
            }
        }
        if self.heartbeat_ms == 0 || self.election_timeout_ms < 3 * self.heartbeat_ms {
            return Err(
                "--election-timeout-ms must be at least 3 x --heartbeat-ms (and both positive)"
                    .into(),
            );
        }
        if self.snapshot_logs == 0 || self.forward_timeout_ms == 0 || self.admin_timeout_ms == 0 {
            return Err(
                "--snapshot-logs, --forward-timeout-ms and --admin-timeout-ms must be positive"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Why a cluster request failed. `Down` and `Again` mean the outcome of a
/// write is unknown (it may have been applied).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ClusterError {
    /// No leader could be reached within the forwarding timeout.
    #[error("CLUSTERDOWN {0}")]
    Down(String),
    /// Transient: a leader change in progress.
    #[error("TRYAGAIN {0}")]
    Again(String),
    /// Refused by the cluster (bad membership change, ...), or a membership
    /// change that did not finish within the admin timeout (the message
    /// says which, and what state it left).
    #[error("ERR {0}")]
    Refused(String),
}

/// Live figures for CLUSTER INFO, ROLE and INFO replication.
#[derive(Clone, Debug, Default)]
pub struct ClusterStatus {
    pub id: NodeId,
    pub role: &'static str,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub leader_peer_addr: Option<String>,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    pub nodes: BTreeMap<NodeId, String>,
    /// On the leader: each follower's matched log index.
    pub matched: BTreeMap<NodeId, Option<u64>>,
    pub snapshots_built: u64,
    pub snapshots_installed: u64,
    /// Milliseconds since a quorum last acknowledged the leader.
    pub quorum_ack_age_ms: Option<u64>,
    /// Linearizable reads this node confirmed as leader: by a heartbeat
    /// round, or by a log entry that changes nothing.
    pub reads_confirmed_by_heartbeat: u64,
    pub reads_confirmed_by_log: u64,
    /// Heartbeat rounds that confirmed no read within their wait (each
    /// starts a spell of log confirmations).
    pub read_heartbeat_timeouts: u64,
    /// A leader is known and, if this node is the leader, a quorum
    /// acknowledged it within two maximal election timeouts.
    pub healthy: bool,
}

struct Inner {
    id: NodeId,
    raft: Raft,
    store: Store,
    config: ClusterConfig,
    client_addr: String,
    peer_addr: String,
    /// Request ids: a per-process random session and a counter.
    session: u64,
    next_seq: AtomicU64,
    pool: Mutex<HashMap<NodeId, Vec<PeerConn>>>,
    forward_slots: Semaphore,
    sm_stats: Arc<SmStats>,
    /// Client (RESP) addresses of other members, learned from status
    /// probes, so INFO and ROLE can name them without a network round trip.
    client_addrs: std::sync::Mutex<HashMap<NodeId, String>>,
    stopping: AtomicBool,
    stop_tx: watch::Sender<bool>,
    /// Write batches on their way into the log (`proposer.rs`).
    proposer: mpsc::Sender<Submission>,
    reads: ReadConfirmations,
    /// Which members are failed, for the Redis Cluster emulation.
    health: crate::member_health::MemberHealth,
}

/// How this node, as leader, confirmed linearizable reads (INFO
/// replication), and whether it currently skips the heartbeat round.
struct ReadConfirmations {
    by_heartbeat: AtomicU64,
    by_log: AtomicU64,
    /// Heartbeat rounds that confirmed nothing in their wait.
    heartbeat_timeouts: AtomicU64,
    /// Reads go straight to a log confirmation until this many
    /// milliseconds after `epoch` (0: not now).
    log_only_until_ms: AtomicU64,
    epoch: Instant,
}

/// After a heartbeat round fails to confirm a read, reads confirm through
/// the log for this many election timeouts before a heartbeat round is
/// tried again. Why: a round that fails costs the read up to an election
/// timeout of waiting, and the link that made it fail (a round trip
/// longer than a heartbeat interval) is usually still slow for the next
/// read; one read per spell pays that wait instead of every read.
const LOG_CONFIRM_SPELL_ELECTION_TIMEOUTS: u64 = 10;

/// How often the server checks whether Raft stopped on its own
/// (`raft_failed`); a dead node is noticed within this long.
const RAFT_FAILURE_POLL_MS: u64 = 250;

#[derive(Clone)]
pub struct ClusterNode {
    inner: Arc<Inner>,
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS per process; mixed with time and
    // pid, collisions between sessions are negligible.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_ms());
    h.write_u32(std::process::id());
    h.finish()
}

/// Builds a new snapshot whenever the network finds this node's snapshot
/// file corrupt while sending it. A build replaces the file: the new one is
/// at the same or a later log index, and older files are removed.
async fn rebuild_corrupt_snapshots(
    raft: Raft,
    corrupt: Arc<tokio::sync::Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = corrupt.notified() => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = raft.trigger().snapshot().await {
            // Raft has stopped: nothing left to rebuild for.
            tracing::warn!(error = %e, "cannot trigger a snapshot build");
            return;
        }
    }
}

fn role_name(s: ServerState) -> &'static str {
    match s {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

impl ClusterNode {
    /// Binds the peer listener, opens Raft over `store`, starts serving
    /// peers, and bootstraps or joins. Returns once the node is running;
    /// leadership and joining happen in the background.
    pub async fn start(
        config: ClusterConfig,
        store: Store,
        client_addr: String,
    ) -> Result<(ClusterNode, SocketAddr), std::io::Error> {
        config
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(config.peer_listen).await?;
        let peer_local = listener.local_addr()?;
        let raft_config = Config {
            cluster_name: "strata".into(),
            heartbeat_interval: config.heartbeat_ms,
            election_timeout_min: config.election_timeout_ms,
            election_timeout_max: config.election_timeout_ms * 2,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_logs),
            // Keep some log behind a snapshot so a briefly lagging follower
            // catches up from the log instead of a whole snapshot.
            max_in_snapshot_log_to_keep: (config.snapshot_logs / 2).min(10_000),
            max_payload_entries: 1024,
            // Installing a large snapshot takes a while; the receiver
            // answers only after the install.
            install_snapshot_timeout: 600_000,
            // Standard Raft: a restarted leader must win a new election.
            // openraft's default restores leadership at startup without
            // one; after a power loss that took the leader's last
            // un-fsynced entries (already durable and committed on the
            // followers), it would then append new, different entries under
            // the SAME log ids, and replicas would diverge. Found by the
            // power-loss fault of strata-chaos (seed 4).
            enable_leader_restore: Some(false),
            ..Default::default()
        };
        let raft_config =
            Arc::new(raft_config.validate().map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
            })?);
        let sm_stats = Arc::new(SmStats::default());
        let sm = StateMachine::open(store.clone(), config.snapshot_dir.clone(), sm_stats.clone())
            .await?;
        let log = LogStore::new(store.log_store(), config.fsync)?;
        let snapshot_corrupt = Arc::new(tokio::sync::Notify::new());
        let network = Network {
            self_id: config.node_id,
            rpc_timeout_floor: Duration::from_millis(config.election_timeout_ms),
            snapshot_corrupt: Arc::clone(&snapshot_corrupt),
            secret: config.cluster_secret.clone(),
        };
        let raft = Raft::new(config.node_id, raft_config, network, log, sm)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        // The advertised peer address: what --initial-cluster says for us,
        // or the bound address.
        let peer_addr = config
            .initial_cluster
            .iter()
            .find(|(id, _)| *id == config.node_id)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| peer_local.to_string());
        let (stop_tx, _) = watch::channel(false);
        tokio::spawn(rebuild_corrupt_snapshots(
            raft.clone(),
            snapshot_corrupt,
            stop_tx.subscribe(),
        ));
        let (proposer, proposals) = mpsc::channel(PROPOSER_QUEUE_LEN_MAX);
        tokio::spawn(crate::proposer::run(
            raft.clone(),
            Duration::from_millis(config.forward_timeout_ms),
            proposals,
            stop_tx.subscribe(),
        ));
        let node = ClusterNode {
            inner: Arc::new(Inner {
                id: config.node_id,
                raft,
                store,
                client_addr,
                peer_addr,
                session: random_u64(),
                next_seq: AtomicU64::new(1),
                pool: Mutex::new(HashMap::new()),
                forward_slots: Semaphore::new(FORWARD_IN_FLIGHT_MAX),
                sm_stats,
                client_addrs: std::sync::Mutex::new(HashMap::new()),
                stopping: AtomicBool::new(false),
                stop_tx,
                proposer,
                config,
                reads: ReadConfirmations {
                    by_heartbeat: AtomicU64::new(0),
                    by_log: AtomicU64::new(0),
                    heartbeat_timeouts: AtomicU64::new(0),
                    log_only_until_ms: AtomicU64::new(0),
                    epoch: Instant::now(),
                },
                health: Default::default(),
            }),
        };
        tokio::spawn(crate::peer_server::serve(listener, node.clone()));
        node.bootstrap_or_join().await?;
        tokio::spawn(node.clone().expiry_loop());
        tokio::spawn(node.clone().dedupe_eviction_loop());
        tokio::spawn(node.clone().client_addr_loop());
        tokio::spawn(node.clone().failed_members_loop());
        Ok((node, peer_local))
    }

    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    pub(crate) fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    pub(crate) fn secret(&self) -> &ClusterSecret {
        &self.inner.config.cluster_secret
    }

    pub(crate) fn snapshot_dir(&self) -> &std::path::Path {
        &self.inner.config.snapshot_dir
    }

    pub fn client_addr(&self) -> &str {
        &self.inner.client_addr
    }

    async fn bootstrap_or_join(&self) -> Result<(), std::io::Error> {
        let raft = &self.inner.raft;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if initialized {
            return Ok(());
        }
        if !self.inner.config.initial_cluster.is_empty() {
            let members: BTreeMap<NodeId, BasicNode> = self
                .inner
                .config
                .initial_cluster
                .iter()
                .map(|(id, addr)| (*id, BasicNode::new(addr)))
                .collect();
            // Every bootstrap node initializes with the identical
            // membership; that is safe in any start order (Raft elects
            // one leader; openraft refuses a second initialize).
            if let Err(e) = raft.initialize(members).await {
                tracing::info!(error = %e, "initialize skipped");
            }
            return Ok(());
        }
        if let Some(join) = self.inner.config.join.clone() {
            let node = self.clone();
            tokio::spawn(async move { node.join_loop(join).await });
        }
        Ok(())
    }

    /// Asks the cluster (through `join`) to add this node, until it works
    /// or the node stops.
    async fn join_loop(self, join: String) {
        let req = if self.inner.config.join_as_voter {
            AdminRequest::AddVoter {
                id: self.inner.id,
                peer_addr: self.inner.peer_addr.clone(),
            }
        } else {
            AdminRequest::AddLearner {
                id: self.inner.id,
                peer_addr: self.inner.peer_addr.clone(),
            }
        };
        let mut pause_ms = 100;
        // Each attempt ends within the admin timeout (the member it asks
        // gives up a margin earlier and says why); the node keeps trying,
        // since the cluster may simply not be up yet.
        let attempt_timeout = self.admin_timeout();
        while !self.inner.stopping.load(Ordering::Acquire) {
            let attempt = async {
                let mut conn = PeerConn::connect(self.inner.id, 0, &join, self.secret()).await?;
                conn.call(&Request::Admin(req.clone()), attempt_timeout)
                    .await
            };
            match attempt.await {
                Ok(Response::Admin(Ok(()))) => {
                    tracing::info!(via = %join, "joined the cluster");
                    return;
                }
                Ok(Response::Admin(Err(e))) => {
                    tracing::warn!(via = %join, error = %e, "join refused; retrying")
                }
                Ok(other) => tracing::warn!(?other, "unexpected reply to join"),
                Err(e) => tracing::warn!(via = %join, error = %e, "join failed; retrying"),
            }
            tokio::time::sleep(Duration::from_millis(pause_ms)).await;
            pause_ms = (pause_ms * 2).min(5_000);
        }
    }

    fn next_request(&self) -> RequestId {
        RequestId {
            session: self.inner.session,
            seq: self.inner.next_seq.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn is_leader(&self) -> bool {
        self.inner.raft.is_leader()
    }

    /// The leader and its peer address. Borrowed, not cloned: followers ask
    /// for every forwarded batch and read barrier, and a clone of the whole
    /// metrics (membership maps, replication progress) is not needed.
    fn leader(&self) -> Option<(NodeId, String)> {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        let id = m.current_leader?;
        let addr = m.membership_config.get_node(&id)?.addr.clone();
        Some((id, addr))
    }

    /// Applies a connection's pipeline of writes through the log, in order.
    /// Each gets its outcome, or an error meaning "unknown outcome".
    pub async fn write_batch(
        &self,
        mutations: Vec<Mutation>,
        limits: Limits,
    ) -> Vec<Result<Outcome, ClusterError>> {
        let commands: Vec<Command> = mutations
            .into_iter()
            .map(|mutation| Command {
                request: Some(self.next_request()),
                retry: false,
                limits,
                mutation,
            })
            .collect();
        self.submit(commands).await
    }

    /// Submits commands (ids already assigned) with retries until the
    /// forwarding deadline. A retry resends the same ids: the state machine
    /// applies each id once, so a command that did commit before a leader
    /// change is not applied again.
    async fn submit(&self, mut commands: Vec<Command>) -> Vec<Result<Outcome, ClusterError>> {
        let n = commands.len();
        let deadline = Instant::now() + Duration::from_millis(self.inner.config.forward_timeout_ms);
        let mut last_error;
        let mut tries = 0;
        loop {
            if self.inner.stopping.load(Ordering::Acquire) {
                return vec![Err(ClusterError::Again("node is shutting down".into())); n];
            }
            let attempt = if self.is_leader() {
                // Bounded: a leader that lost its quorum keeps the entries
                // but cannot commit them; the client gets an "outcome
                // unknown" error at the deadline instead of hanging.
                let remaining = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(remaining, self.submit_local(commands.clone())).await {
                    Ok(r) => r,
                    Err(_) => Err(ForwardError::Unavailable(
                        "the leader could not commit within the forward timeout (no quorum?); outcome unknown".into(),
                    )),
                }
            } else if let Some((leader, addr)) = self.leader() {
                self.forward(
                    leader,
                    &addr,
                    Request::WriteBatch(commands.clone()),
                    deadline,
                )
                .await
                .and_then(|r| match r {
                    Response::WriteBatch(r) => r,
                    other => Err(ForwardError::Unavailable(format!(
                        "unexpected reply to a forwarded write: {other:?}"
                    ))),
                })
            } else {
                Err(ForwardError::NotLeader { leader: None })
            };
            match attempt {
                Ok(outcomes) if outcomes.len() == n => {
                    return outcomes.into_iter().map(Ok).collect();
                }
                Ok(outcomes) => {
                    // A protocol invariant: one outcome per command.
                    last_error = format!(
                        "leader answered {} outcomes for {n} commands",
                        outcomes.len()
                    );
                    tracing::error!("{last_error}");
                }
                Err(ForwardError::Refused(e)) => {
                    return vec![Err(ClusterError::Refused(e)); n];
                }
                Err(e) => last_error = e.to_string(),
            }
            // No attempt starts at the deadline with no time left (it
            // would still reach the leader, and its outcome would be lost):
            // if the pause would reach the deadline, give up now.
            let pause = retry_pause(&mut tries);
            if deadline.saturating_duration_since(Instant::now()) <= pause {
                return vec![
                    Err(ClusterError::Down(format!(
                        "no leader reachable: {last_error}"
                    )));
                    n
                ];
            }
            // The attempt may have reached a log before it failed: from now
            // on the state machine must check each id's dedupe record.
            for c in &mut commands {
                c.retry = true;
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// On the leader: hands the batch to the proposer, which puts it into
    /// the log in order, in as few entries as it can (`proposer.rs`).
    pub(crate) async fn submit_local(
        &self,
        commands: Vec<Command>,
    ) -> Result<Vec<Outcome>, ForwardError> {
        let (reply, outcomes) = oneshot::channel();
        let term = self.inner.raft.metrics().borrow_watched().current_term;
        self.inner
            .proposer
            .send(Submission {
                commands,
                term,
                reply,
            })
            .await
            .map_err(|_| ForwardError::Unavailable("node is shutting down".into()))?;
        // A dropped reply: the proposer timed out waiting for the commit,
        // or stopped.
        outcomes.await.map_err(|_| {
            ForwardError::Unavailable(
                "the leader did not apply the write in time, or is shutting down; outcome unknown"
                    .into(),
            )
        })?
    }

    /// A forwarded batch arriving at this node (the peer server calls it).
    pub(crate) async fn handle_forwarded_writes(
        &self,
        commands: Vec<Command>,
    ) -> Result<Vec<Outcome>, ForwardError> {
        if commands.len() > WRITE_BATCH_COMMANDS_MAX {
            return Err(ForwardError::Refused(format!(
                "forwarded batch of {} commands exceeds {WRITE_BATCH_COMMANDS_MAX}",
                commands.len()
            )));
        }
        let now = now_ms();
        if commands.iter().any(|c| {
            c.mutation
                .now_ms
                .saturating_add(FORWARDED_COMMAND_AGE_MS_MAX)
                < now
        }) {
            return Err(ForwardError::Refused(
                "forwarded command is too old to apply safely (clock skew?)".into(),
            ));
        }
        if !self.is_leader() {
            return Err(ForwardError::NotLeader {
                leader: self.leader().map(|(id, _)| id),
            });
        }
        match tokio::time::timeout(self.forward_timeout(), self.submit_local(commands)).await {
            Ok(r) => r,
            Err(_) => Err(ForwardError::Unavailable(
                "the leader could not commit within the forward timeout (no quorum?); outcome unknown"
                    .into(),
            )),
        }
    }

    /// How long this node keeps trying to reach a leader (`--forward-timeout-ms`).
    pub(crate) fn forward_timeout(&self) -> Duration {
        Duration::from_millis(self.inner.config.forward_timeout_ms)
    }

    /// Sends one request to `leader` over a pooled connection, giving up at
    /// `deadline`. Why the caller's deadline and not a fresh timeout per
    /// call: a retry that began just before the deadline would otherwise
    /// run for another whole forward timeout (plus a connect, plus a wait
    /// for a slot), and a client of a cut-off node would wait up to twice
    /// the `--forward-timeout-ms` the README promises.
    async fn forward(
        &self,
        leader: NodeId,
        addr: &str,
        req: Request,
        deadline: Instant,
    ) -> Result<Response, ForwardError> {
        let late = || {
            ForwardError::Unavailable(format!(
                "leader {leader}: no answer within the forward timeout"
            ))
        };
        let _slot = match tokio::time::timeout_at(
            deadline.into(),
            self.inner.forward_slots.acquire(),
        )
        .await
        {
            Ok(slot) => slot.map_err(|_| ForwardError::Unavailable("shutting down".into()))?,
            Err(_) => return Err(late()),
        };
        let pooled = self
            .inner
            .pool
            .lock()
            .await
            .get_mut(&leader)
            .and_then(|v| v.pop());
        let from_pool = pooled.is_some();
        let mut conn = match pooled {
            Some(c) => c,
            None => match tokio::time::timeout_at(
                deadline.into(),
                PeerConn::connect(self.inner.id, leader, addr, self.secret()),
            )
            .await
            {
                Ok(conn) => conn.map_err(|e| {
                    ForwardError::Unavailable(format!("leader {leader} unreachable: {e}"))
                })?,
                Err(_) => return Err(late()),
            },
        };
        let timeout = deadline.saturating_duration_since(Instant::now());
        if timeout.is_zero() {
            // Do not send what nobody will wait for (a write would still be
            // applied, its outcome lost). The connection goes back unused.
            self.return_to_pool(leader, conn).await;
            return Err(late());
        }
        match conn.call(&req, timeout).await {
            Ok(resp) => {
                self.return_to_pool(leader, conn).await;
                Ok(resp)
            }
            Err(e) => {
                // A timeout says the leader is slow, not that pooled
                // connections are dead; only a broken one empties the pool.
                if from_pool && e.kind() != std::io::ErrorKind::TimedOut {
                    // The leader closes peer connections idle for 5 min
                    // (peer_server.rs): after a quiet spell every pooled
                    // connection is dead, and a retry that took them one by
                    // one could spend the whole forward timeout on them.
                    // One failure empties the pool; the retry connects anew.
                    self.inner.pool.lock().await.remove(&leader);
                }
                Err(ForwardError::Unavailable(format!("leader {leader}: {e}")))
            }
        }
    }

    /// Keeps `conn` for the next forward to `leader`, up to the pool's limit.
    async fn return_to_pool(&self, leader: NodeId, conn: PeerConn) {
        let mut pool = self.inner.pool.lock().await;
        let idle = pool.entry(leader).or_default();
        if idle.len() < FORWARD_POOL_IDLE_MAX {
            idle.push(conn);
        }
    }

    /// Waits until this node may serve a linearizable read: the leader
    /// confirms its leadership with a quorum (ReadIndex), and this node has
    /// applied up to the read point.
    pub async fn read_barrier(&self) -> Result<(), ClusterError> {
        let deadline = Instant::now() + Duration::from_millis(self.inner.config.forward_timeout_ms);
        let mut last_error;
        let mut tries = 0;
        loop {
            if self.inner.stopping.load(Ordering::Acquire) {
                return Err(ClusterError::Again("node is shutting down".into()));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt = if self.is_leader() {
                self.read_index_local(remaining).await
            } else if let Some((leader, addr)) = self.leader() {
                self.forward(leader, &addr, Request::ReadIndex, deadline)
                    .await
                    .and_then(|r| match r {
                        Response::ReadIndex(r) => r,
                        other => Err(ForwardError::Unavailable(format!(
                            "unexpected reply to read index: {other:?}"
                        ))),
                    })
            } else {
                Err(ForwardError::NotLeader { leader: None })
            };
            match attempt {
                Ok(index) => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    return self
                        .inner
                        .raft
                        .wait(Some(remaining.max(Duration::from_millis(1))))
                        .applied_index_at_least(Some(index), "read barrier")
                        .await
                        .map(|_| ())
                        .map_err(|e| {
                            ClusterError::Again(format!("catching up to the leader: {e}"))
                        });
                }
                Err(e) => last_error = e.to_string(),
            }
            // As for writes: no attempt with no time left.
            let pause = retry_pause(&mut tries);
            if deadline.saturating_duration_since(Instant::now()) <= pause {
                return Err(ClusterError::Down(format!(
                    "no quorum reachable: {last_error}"
                )));
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// On the leader: a linearizable read point (ReadIndex), an index at
    /// least the commit index at the time of the call, confirmed by a
    /// quorum after the call began.
    ///
    /// First through openraft's heartbeat round. A heartbeat counts only if
    /// answered within one heartbeat interval, so on a link whose round
    /// trip is longer (or a moment that slow) no round ever confirms, and
    /// an idle cluster could serve no linearizable read at all. So that
    /// wait is bounded (half the time, at most one election timeout), and
    /// after it the leader confirms through the log instead: it commits an
    /// entry that changes nothing. A majority accepting an entry of this
    /// term after the read began confirms the leadership just as a
    /// heartbeat round would, and replication waits up to an election
    /// timeout per request. The read point is then what this node has
    /// applied, which includes that entry and so everything committed
    /// before it.
    ///
    /// After a heartbeat round fails, reads skip it for a spell
    /// (`LOG_CONFIRM_SPELL_ELECTION_TIMEOUTS`) and confirm through the log
    /// at once; both ways are equally safe, the log costs an entry.
    pub(crate) async fn read_index_local(&self, wait: Duration) -> Result<u64, ForwardError> {
        let deadline = Instant::now() + wait;
        let reads = &self.inner.reads;
        let election_timeout_ms = self.inner.config.election_timeout_ms;
        let since_epoch_ms = || reads.epoch.elapsed().as_millis() as u64;
        let reason = if since_epoch_ms() < reads.log_only_until_ms.load(Ordering::Relaxed) {
            "heartbeat rounds failed recently".to_string()
        } else {
            let heartbeat_wait = (wait / 2).min(Duration::from_millis(election_timeout_ms));
            match self.read_index_by_heartbeat(heartbeat_wait).await {
                Ok(index) => {
                    reads.by_heartbeat.fetch_add(1, Ordering::Relaxed);
                    return Ok(index);
                }
                Err(ForwardError::Unavailable(reason)) if self.is_leader() => {
                    // Only a wait of two heartbeat intervals or more says
                    // the rounds fail; a read nearly out of time proves
                    // nothing about the link.
                    let heartbeat_ms = self.inner.config.heartbeat_ms;
                    if heartbeat_wait >= Duration::from_millis(2 * heartbeat_ms) {
                        reads.heartbeat_timeouts.fetch_add(1, Ordering::Relaxed);
                        let spell_ms = LOG_CONFIRM_SPELL_ELECTION_TIMEOUTS * election_timeout_ms;
                        reads
                            .log_only_until_ms
                            .store(since_epoch_ms() + spell_ms, Ordering::Relaxed);
                    }
                    reason
                }
                other => return other,
            }
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        let confirm = Command {
            request: None,
            retry: false,
            limits: Limits {
                key_size_bytes_max: 0,
                value_size_bytes_max: 0,
            },
            mutation: Mutation {
                now_ms: now_ms(),
                op: Op::Delete { keys: Vec::new() },
            },
        };
        match tokio::time::timeout(remaining, self.submit_local(vec![confirm])).await {
            Ok(Ok(_)) => {
                reads.by_log.fetch_add(1, Ordering::Relaxed);
                crate::state_machine::applied_index(&self.inner.store).map_err(|e| {
                    ForwardError::Unavailable(format!("reading the applied index: {e}"))
                })
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ForwardError::Unavailable(format!(
                "{reason}; a confirming log entry did not commit in time either"
            ))),
        }
    }

    /// openraft's ReadIndex: a heartbeat round, waited for `wait` at most.
    async fn read_index_by_heartbeat(&self, wait: Duration) -> Result<u64, ForwardError> {
        let option =
            openraft::raft::linearizable_read::LinearizerOption::from(ReadPolicy::ReadIndex)
                .with_wait_timeout(wait.max(Duration::from_millis(1)));
        match self.inner.raft.get_read_log_id(option).await {
            Ok((read_log_id, _)) => Ok(read_log_id.index()),
            Err(RaftError::APIError(e)) => match e {
                openraft::error::LinearizableReadError::ForwardToLeader(f) => {
                    Err(ForwardError::NotLeader {
                        leader: f.leader_id,
                    })
                }
                other => Err(ForwardError::Unavailable(other.to_string())),
            },
            Err(e) => Err(ForwardError::Unavailable(e.to_string())),
        }
    }

    /// Runs a membership change on the leader (forwarding if needed),
    /// within `--admin-timeout-ms`.
    pub async fn admin(&self, req: AdminRequest) -> Result<(), ClusterError> {
        self.admin_until(req, Instant::now() + self.admin_timeout())
            .await
    }

    /// A membership change forwarded by another node (or a joining one):
    /// ends a margin before that node stops waiting for the answer.
    pub(crate) async fn admin_forwarded(&self, req: AdminRequest) -> Result<(), ClusterError> {
        let budget = self
            .admin_timeout()
            .saturating_sub(Duration::from_millis(ADMIN_ANSWER_MARGIN_MS))
            .max(Duration::from_millis(ADMIN_ANSWER_MARGIN_MS));
        self.admin_until(req, Instant::now() + budget).await
    }

    fn admin_timeout(&self) -> Duration {
        Duration::from_millis(self.inner.config.admin_timeout_ms)
    }

    /// Why the whole change is under one deadline: each step (a retry while
    /// another change commits, the forward, the commit, a learner's
    /// catch-up) can wait indefinitely on a node that does not answer; an
    /// operator must get an answer, and one that says what is left done.
    async fn admin_until(&self, req: AdminRequest, deadline: Instant) -> Result<(), ClusterError> {
        let attempts = self.admin_attempts(req.clone(), deadline);
        match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), attempts).await {
            Ok(result) => result,
            Err(_) => Err(self.admin_timed_out(&req)),
        }
    }

    async fn admin_attempts(
        &self,
        req: AdminRequest,
        deadline: Instant,
    ) -> Result<(), ClusterError> {
        loop {
            let attempt = if self.is_leader() {
                self.admin_local(req.clone(), deadline).await
            } else if let Some((leader, addr)) = self.leader() {
                match self
                    .forward_admin(leader, &addr, req.clone(), deadline)
                    .await
                {
                    Ok(Response::Admin(r)) => r,
                    Ok(other) => Err(ForwardError::Unavailable(format!(
                        "unexpected reply: {other:?}"
                    ))),
                    Err(e) => Err(e),
                }
            } else {
                Err(ForwardError::NotLeader { leader: None })
            };
            match attempt {
                Ok(()) => return Ok(()),
                Err(ForwardError::Refused(e)) => return Err(ClusterError::Refused(e)),
                Err(e) if Instant::now() >= deadline => {
                    return Err(ClusterError::Down(format!("no leader reachable: {e}")));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await,
            }
        }
    }

    /// The error of a change cut off by the admin timeout: what it was
    /// waiting for, and the membership it left, as this node sees it.
    fn admin_timed_out(&self, req: &AdminRequest) -> ClusterError {
        let ms = self.inner.config.admin_timeout_ms;
        let m = self
            .inner
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .clone();
        let member = |id: &NodeId| m.get_node(id).is_some();
        let voter = |id: &NodeId| m.voter_ids().any(|v| v == *id);
        let message = match req {
            AdminRequest::AddLearner { id, peer_addr }
            | AdminRequest::AddVoter { id, peer_addr }
                if member(id) && !voter(id) =>
            {
                format!(
                    "timed out after {ms} ms (admin-timeout-ms): node {id} is a learner but has not caught up (is it running, and reachable from the leader at {peer_addr}?); remove it with CLUSTER REMOVENODE {id}, or promote it once it has caught up"
                )
            }
            AdminRequest::AddLearner { id, .. } | AdminRequest::AddVoter { id, .. } => format!(
                "timed out after {ms} ms (admin-timeout-ms) adding node {id} (no leader, or no quorum to commit the change); it may still commit: check CLUSTER NODES"
            ),
            AdminRequest::Promote { id } | AdminRequest::Remove { id } => format!(
                "timed out after {ms} ms (admin-timeout-ms) changing the membership of node {id} (no leader, or no quorum of the old and new voters); it may still commit: check CLUSTER NODES"
            ),
        };
        ClusterError::Refused(message)
    }

    async fn forward_admin(
        &self,
        leader: NodeId,
        addr: &str,
        req: AdminRequest,
        deadline: Instant,
    ) -> Result<Response, ForwardError> {
        // Its own connection: adding a voter waits for it to catch up,
        // which pooled forwarding connections must not be held for.
        let mut conn = PeerConn::connect(self.inner.id, leader, addr, self.secret())
            .await
            .map_err(|e| ForwardError::Unavailable(format!("leader {leader} unreachable: {e}")))?;
        let wait = deadline.saturating_duration_since(Instant::now());
        conn.call(&Request::Admin(req), wait)
            .await
            .map_err(|e| ForwardError::Unavailable(format!("leader {leader}: {e}")))
    }

    /// Before a node that is not a member yet is added: it must answer a
    /// status request at `peer_addr`, as node `id`. Otherwise the change
    /// would commit and then wait for a catch-up that cannot happen (and
    /// leave a member nobody can reach); refusing first changes nothing.
    async fn check_new_member(
        &self,
        id: NodeId,
        peer_addr: &str,
        deadline: Instant,
    ) -> Result<(), ForwardError> {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(2 * STATUS_TIMEOUT_MS));
        let attempt = async {
            let mut conn = PeerConn::connect(self.inner.id, id, peer_addr, self.secret()).await?;
            conn.call(&Request::Status, wait).await
        };
        let refused = |why: String| {
            ForwardError::Refused(format!(
                "node {id} does not answer at {peer_addr} ({why}); nothing was changed: start it first, or check the address"
            ))
        };
        match tokio::time::timeout(wait, attempt).await {
            Ok(Ok(Response::Status(_))) => Ok(()),
            Ok(Ok(other)) => Err(refused(format!("unexpected reply {other:?}"))),
            Ok(Err(e)) => Err(refused(e.to_string())),
            Err(_) => Err(refused(format!("no answer within {} ms", wait.as_millis()))),
        }
    }

    pub(crate) async fn admin_local(
        &self,
        req: AdminRequest,
        deadline: Instant,
    ) -> Result<(), ForwardError> {
        let raft = &self.inner.raft;
        if let AdminRequest::AddLearner { id, peer_addr }
        | AdminRequest::AddVoter { id, peer_addr } = &req
        {
            let known = raft
                .metrics()
                .borrow_watched()
                .membership_config
                .get_node(id)
                .is_some();
            if !known {
                self.check_new_member(*id, peer_addr, deadline).await?;
            }
        }
        let map = |e: RaftError<
            crate::types::TypeConfig,
            ClientWriteError<crate::types::TypeConfig>,
        >| match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ForwardError::NotLeader {
                leader: f.leader_id,
            },
            // Transient: another change (often this node's own join) is
            // still committing, or a leader change dropped the entry. The
            // caller retries until its deadline.
            RaftError::APIError(ClientWriteError::ChangeMembershipError(
                openraft::error::ChangeMembershipError::InProgress(p),
            )) => ForwardError::Unavailable(p.to_string()),
            RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)) => {
                ForwardError::Unavailable(f.to_string())
            }
            RaftError::APIError(other) => ForwardError::Refused(other.to_string()),
            RaftError::Fatal(f) => ForwardError::Unavailable(f.to_string()),
        };
        match req {
            AdminRequest::AddLearner { id, peer_addr } => {
                raft.add_learner(id, BasicNode::new(peer_addr), true)
                    .await
                    .map_err(map)?;
            }
            AdminRequest::AddVoter { id, peer_addr } => {
                let is_voter = raft
                    .metrics()
                    .borrow_watched()
                    .membership_config
                    .voter_ids()
                    .any(|v| v == id);
                if !is_voter {
                    raft.add_learner(id, BasicNode::new(peer_addr), true)
                        .await
                        .map_err(map)?;
                    raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                        .await
                        .map_err(map)?;
                }
            }
            AdminRequest::Promote { id } => {
                let m = raft.metrics().borrow_watched().membership_config.clone();
                if m.get_node(&id).is_none() {
                    return Err(ForwardError::Refused(format!(
                        "node {id} is not a member; add it as a learner first"
                    )));
                }
                raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                    .await
                    .map_err(map)?;
            }
            AdminRequest::Remove { id } => {
                let m = raft.metrics().borrow_watched().membership_config.clone();
                let is_voter = m.voter_ids().any(|v| v == id);
                if m.get_node(&id).is_none() {
                    return Err(ForwardError::Refused(format!("node {id} is not a member")));
                }
                if is_voter {
                    raft.change_membership(
                        ChangeMembers::RemoveVoters(BTreeSet::from([id])),
                        false,
                    )
                    .await
                    .map_err(map)?;
                } else {
                    raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                        .await
                        .map_err(map)?;
                }
            }
        }
        Ok(())
    }

    /// This node's status.
    pub fn status(&self) -> ClusterStatus {
        let m = self.inner.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        let learners: Vec<NodeId> = membership.learner_ids().collect();
        let nodes = membership
            .nodes()
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect::<BTreeMap<_, _>>();
        let matched = m
            .replication
            .as_ref()
            .map(|r| r.iter().map(|(id, l)| (*id, l.map(|l| l.index))).collect())
            .unwrap_or_default();
        let quorum_ack_age_ms = m.last_quorum_acked.map(|t| t.elapsed().as_millis() as u64);
        let quorum_window_ms = 4 * self.inner.config.election_timeout_ms;
        let healthy = match m.state {
            ServerState::Leader => quorum_ack_age_ms.is_some_and(|a| a <= quorum_window_ms),
            _ => m.current_leader.is_some(),
        };
        ClusterStatus {
            healthy,
            id: self.inner.id,
            role: role_name(m.state),
            term: m.current_term,
            leader: m.current_leader,
            leader_peer_addr: m.current_leader.and_then(|l| nodes.get(&l).cloned()),
            commit_index: m.local_committed.map_or(0, |l| l.index),
            applied_index: m.last_applied.map_or(0, |l| l.index),
            last_log_index: m.last_log_index.unwrap_or(0),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            voters,
            learners,
            nodes,
            matched,
            snapshots_built: self.inner.sm_stats.snapshots_built.load(Ordering::Relaxed),
            snapshots_installed: self
                .inner
                .sm_stats
                .snapshots_installed
                .load(Ordering::Relaxed),
            quorum_ack_age_ms: m.last_quorum_acked.map(|t| t.elapsed().as_millis() as u64),
            reads_confirmed_by_heartbeat: self.inner.reads.by_heartbeat.load(Ordering::Relaxed),
            reads_confirmed_by_log: self.inner.reads.by_log.load(Ordering::Relaxed),
            read_heartbeat_timeouts: self.inner.reads.heartbeat_timeouts.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn node_status(&self) -> NodeStatus {
        let s = self.status();
        NodeStatus {
            id: s.id,
            client_addr: self.inner.client_addr.clone(),
            peer_addr: self.inner.peer_addr.clone(),
            role: s.role.to_string(),
            term: s.term,
            leader: s.leader,
            last_log_index: s.last_log_index,
            applied_index: s.applied_index,
        }
    }

    /// Asks another member for its status (client address, role).
    pub async fn probe(&self, id: NodeId) -> Option<NodeStatus> {
        if id == self.inner.id {
            return Some(self.node_status());
        }
        let addr = self.status().nodes.get(&id)?.clone();
        let attempt = async {
            let mut conn = PeerConn::connect(self.inner.id, id, &addr, self.secret()).await?;
            conn.call(&Request::Status, Duration::from_millis(STATUS_TIMEOUT_MS))
                .await
        };
        match tokio::time::timeout(Duration::from_millis(STATUS_TIMEOUT_MS * 2), attempt).await {
            Ok(Ok(Response::Status(s))) => {
                if let Ok(mut cache) = self.inner.client_addrs.lock() {
                    cache.insert(id, s.client_addr.clone());
                }
                Some(s)
            }
            _ => None,
        }
    }

    /// The client address of a member as last learned (ours is known).
    pub fn known_client_addr(&self, id: NodeId) -> Option<String> {
        if id == self.inner.id {
            return Some(self.inner.client_addr.clone());
        }
        self.inner.client_addrs.lock().ok()?.get(&id).cloned()
    }

    /// Members that are failed as far as this node knows: on the leader,
    /// those it has not heard from lately; on a follower, the leader's last
    /// answer while fresh (nobody otherwise). See `member_health`.
    pub fn failed_members(&self) -> BTreeSet<NodeId> {
        match self.failed_members_as_leader() {
            Ok(failed) => failed.into_iter().collect(),
            Err(_) => self.inner.health.learned(),
        }
    }

    /// The leader's judgement; `NotLeader` elsewhere.
    pub(crate) fn failed_members_as_leader(&self) -> Result<Vec<NodeId>, ForwardError> {
        let m = self.inner.raft.metrics().borrow_watched().clone();
        let (ServerState::Leader, Some(heard)) = (m.state, m.heartbeat.as_ref()) else {
            return Err(ForwardError::NotLeader {
                leader: m.current_leader,
            });
        };
        let me = self.inner.id;
        let last_heard = heard
            .iter()
            .filter(|(id, _)| **id != me)
            .map(|(id, at)| (*id, at.as_ref().map(|t| t.elapsed())));
        let failed = self.inner.health.judge_as_leader(
            m.current_term,
            self.inner.config.election_timeout_ms,
            last_heard,
        );
        Ok(failed.into_iter().collect())
    }

    /// On a follower: asks the leader which members are failed, every
    /// `member_health::ASK_INTERVAL_MS`.
    async fn failed_members_loop(self) {
        let interval = Duration::from_millis(crate::member_health::ASK_INTERVAL_MS);
        let mut stop = self.inner.stop_tx.subscribe();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
            let status = self.status();
            let Some(leader) = status.leader.filter(|l| *l != self.inner.id) else {
                continue;
            };
            let Some(addr) = status.nodes.get(&leader).cloned() else {
                continue;
            };
            let ask = async {
                let mut conn =
                    PeerConn::connect(self.inner.id, leader, &addr, self.secret()).await?;
                conn.call(
                    &Request::FailedMembers,
                    Duration::from_millis(STATUS_TIMEOUT_MS),
                )
                .await
            };
            let answer = tokio::time::timeout(interval, ask).await;
            if let Ok(Ok(Response::FailedMembers(Ok(failed)))) = answer {
                self.inner.health.learn(failed.into_iter().collect());
            }
        }
    }

    /// Keeps the client-address cache filled: probes members whose address
    /// is unknown, every few seconds (cheap: one small request each).
    async fn client_addr_loop(self) {
        let mut stop = self.inner.stop_tx.subscribe();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = stop.changed() => return,
            }
            let members: Vec<NodeId> = self.status().nodes.keys().copied().collect();
            for id in members {
                if self.known_client_addr(id).is_none() {
                    let _ = self.probe(id).await;
                }
            }
        }
    }

    /// Expiry through the log: only the leader looks for due keys and
    /// proposes their deletion, so every replica deletes the same keys at
    /// the same log position (the decision uses the entry's time).
    async fn expiry_loop(self) {
        let interval = Duration::from_millis(self.inner.config.expiry_sweep_interval_ms);
        let keys_max = self.inner.config.expiry_sweep_keys_max;
        let mut stop = self.inner.stop_tx.subscribe();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
            if !self.is_leader() {
                continue;
            }
            let now = now_ms();
            let store = self.inner.store.clone();
            let due = tokio::task::spawn_blocking(move || store.due_expiries(now, keys_max)).await;
            let entries = match due {
                Ok(Ok(e)) => e,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "expiry sweep could not read the index");
                    continue;
                }
                Err(_) => continue,
            };
            if entries.is_empty() {
                continue;
            }
            let m = Mutation {
                now_ms: now,
                op: Op::SweepExpired { entries },
            };
            let limits = Limits {
                key_size_bytes_max: usize::MAX,
                value_size_bytes_max: usize::MAX,
            };
            let cmd = Command {
                request: None,
                retry: false,
                limits,
                mutation: m,
            };
            if let Err(e) = self.submit_local(vec![cmd]).await {
                tracing::debug!(error = %e, "expiry sweep not applied");
            }
        }
    }

    /// Physically drops dedupe records past the window (a local clean-up:
    /// the records' meaning does not depend on when this runs).
    async fn dedupe_eviction_loop(self) {
        let mut stop = self.inner.stop_tx.subscribe();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                _ = stop.changed() => return,
            }
            let older_than = now_ms().saturating_sub(DEDUPE_WINDOW_MS);
            if let Err(e) = self.inner.store.evict_requests(older_than, 10_000).await {
                tracing::debug!(error = %e, "dedupe eviction skipped");
            }
        }
    }

    /// Graceful step-down: a leader hands leadership to the most
    /// up-to-date voter and waits (bounded) until another node leads, so
    /// clients see no election timeout. Raft keeps running, so requests
    /// still in flight are forwarded to the new leader.
    pub async fn hand_over(&self, timeout: Duration) {
        if !self.is_leader() {
            return;
        }
        let s = self.status();
        let target = s
            .voters
            .iter()
            .filter(|v| **v != self.inner.id)
            .max_by_key(|v| s.matched.get(v).copied().flatten())
            .copied();
        let Some(to) = target else {
            return;
        };
        tracing::info!(to, "handing leadership over before shutdown");
        if let Err(e) = self.inner.raft.trigger().transfer_leader(to).await {
            tracing::warn!(error = %e, "leadership transfer not started");
            return;
        }
        let waited = self
            .inner
            .raft
            .wait(Some(timeout))
            .metrics(
                |m| m.current_leader.is_some_and(|l| l != m.id),
                "leadership handed over",
            )
            .await;
        if let Err(e) = waited {
            tracing::warn!(error = %e, "leadership not handed over in time");
        }
    }

    /// Stops Raft and the background tasks (bounded by `timeout`).
    pub async fn stop(&self, timeout: Duration) {
        self.inner.stopping.store(true, Ordering::Release);
        let _ = self.inner.stop_tx.send(true);
        let _ = tokio::time::timeout(timeout, self.inner.raft.shutdown()).await;
    }

    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::Acquire)
    }

    /// Resolves, with its error, when Raft stops on its own: a storage
    /// error (a log or snapshot write that failed) or a panic in its core;
    /// never after [`stop`](Self::stop). Why the server must watch for it:
    /// a node whose Raft stopped keeps its listeners and answers every
    /// write and linearizable read with an error, forever, while it looks
    /// alive to a supervisor. openraft's advice is to shut down; a restart
    /// recovers from the durable log and snapshots.
    pub async fn raft_failed(&self) -> String {
        use futures_util::FutureExt;
        // Polled, not awaited on every change: openraft publishes metrics
        // on every heartbeat round and applied entry, and a task woken for
        // each of them cost leader GETs (`-P 16`) 13 to 17% of throughput.
        let mut metrics = self.inner.raft.metrics();
        let mut tick = tokio::time::interval(Duration::from_millis(RAFT_FAILURE_POLL_MS));
        loop {
            tick.tick().await;
            match &metrics.borrow_and_update().running_state {
                Ok(()) => {}
                Err(openraft::error::Fatal::Stopped) => break,
                Err(fatal) => return fatal.to_string(),
            }
            // Nothing new since the borrow: `changed` is ready only if the
            // core dropped its metrics without reporting, i.e. its task
            // ended by a panic (unwinding skips the report).
            if let Some(Err(_)) = metrics.changed().now_or_never() {
                if self.is_stopping() {
                    break;
                }
                return "Raft's core task ended without a report (a panic?)".to_string();
            }
        }
        // Stopped on purpose.
        std::future::pending().await
    }
}
