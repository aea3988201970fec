//! [`ClusterNode`]: one Strata node in a Raft cluster. The server talks to
//! this type only: write batches, read barriers, status, membership.
//!
//! This file holds the type, its start, its stop and its configuration;
//! the rest is split by concern: `write.rs`, `read.rs`, `admin.rs`,
//! `status.rs` and `background.rs` (the loops a node runs).

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
use strata_storage::{FsyncPolicy, Mutation, Op, Outcome, ReplicatedStore, RequestId, now_ms};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Semaphore, mpsc, oneshot, watch};

use crate::auth::ClusterSecret;
use crate::log_store::LogStore;
use crate::network::{Network, PeerConn};
use crate::proposer::{PROPOSER_QUEUE_LEN_MAX, ProposerStats, Submission};
use crate::state_machine::{SmStats, StateMachine};
use crate::types::{Command, NodeId, Raft};
use crate::wire::{AdminRequest, ForwardError, NodeStatus, Request, Response};

mod admin;
mod background;
mod read;
mod status;
mod write;

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

/// What [`ClusterNode::step_down`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepDown {
    /// This node did not lead: nothing to hand over.
    NotLeader,
    /// This node led alone (the only voter): nobody to hand over to.
    NoOtherVoter,
    /// Another node leads now; the transfer went to `to`.
    HandedOver { to: NodeId },
}

#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub node_id: NodeId,
    pub peer_listen: SocketAddr,
    /// Bootstrap members (id, peer address); empty when joining.
    pub initial_cluster: Vec<(NodeId, String)>,
    /// Peer address of a running member to join through.
    pub join: Option<String>,
    pub join_as_voter: bool,
    /// The peer address the other nodes reach this one at, when it is not
    /// the bound `peer_listen` (a DNS name, an address behind NAT). A
    /// founding node's is its `initial_cluster` entry, and must agree.
    pub peer_advertise: Option<String>,
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
        let listed = self
            .initial_cluster
            .iter()
            .find(|(id, _)| *id == self.node_id);
        if let (Some((_, listed)), Some(advertised)) = (listed, &self.peer_advertise)
            && listed != advertised
        {
            return Err(format!(
                "--peer-advertise {advertised} differs from this node's --initial-cluster entry {listed}"
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
    /// The commit index the leader last reported (may lead `commit_index`
    /// on a node still receiving the entries).
    pub cluster_commit_index: u64,
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
    /// Times this node saw a leader other than the last one it knew (the
    /// first leader it learns of included).
    pub leader_changes: u64,
    /// Log entries this node proposed as leader, and the commands in them.
    pub proposals: u64,
    pub proposed_commands: u64,
}

struct Inner {
    id: NodeId,
    raft: Raft,
    store: ReplicatedStore,
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
    /// Entries and commands proposed (monitoring).
    proposer_stats: Arc<ProposerStats>,
    /// Leaders this node has seen take over (`leader_watch_loop`).
    leader_changes: AtomicU64,
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

/// openraft's configuration for this node's settings.
fn raft_config(config: &ClusterConfig) -> Result<Arc<Config>, std::io::Error> {
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
    let validated = raft_config
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    Ok(Arc::new(validated))
}

/// Starts the proposer task: its queue's sender, and what it counts.
fn spawn_proposer(
    raft: &Raft,
    config: &ClusterConfig,
    stop_tx: &watch::Sender<bool>,
) -> (mpsc::Sender<Submission>, Arc<ProposerStats>) {
    let (proposer, proposals) = mpsc::channel(PROPOSER_QUEUE_LEN_MAX);
    let stats = Arc::new(ProposerStats::default());
    tokio::spawn(crate::proposer::run(
        raft.clone(),
        Duration::from_millis(config.forward_timeout_ms),
        proposals,
        stop_tx.subscribe(),
        Arc::clone(&stats),
    ));
    (proposer, stats)
}

/// The advertised peer address: what `--initial-cluster` says for this
/// node, else `--peer-advertise`, else the bound address. A joining node
/// sends it with its join request; the membership keeps it for good.
fn advertised_peer_addr(config: &ClusterConfig, peer_local: SocketAddr) -> String {
    config
        .initial_cluster
        .iter()
        .find(|(id, _)| *id == config.node_id)
        .map(|(_, a)| a.clone())
        .or_else(|| config.peer_advertise.clone())
        .unwrap_or_else(|| peer_local.to_string())
}

impl ReadConfirmations {
    fn new() -> ReadConfirmations {
        ReadConfirmations {
            by_heartbeat: AtomicU64::new(0),
            by_log: AtomicU64::new(0),
            heartbeat_timeouts: AtomicU64::new(0),
            log_only_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl ClusterNode {
    /// Binds the peer listener, opens Raft over `store`, starts serving
    /// peers, and bootstraps or joins. Returns once the node is running;
    /// leadership and joining happen in the background.
    pub async fn start(
        config: ClusterConfig,
        store: ReplicatedStore,
        client_addr: String,
    ) -> Result<(ClusterNode, SocketAddr), std::io::Error> {
        config
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(config.peer_listen).await?;
        let peer_local = listener.local_addr()?;
        let raft_config = raft_config(&config)?;
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
        let peer_addr = advertised_peer_addr(&config, peer_local);
        let (stop_tx, _) = watch::channel(false);
        tokio::spawn(rebuild_corrupt_snapshots(
            raft.clone(),
            snapshot_corrupt,
            stop_tx.subscribe(),
        ));
        let (proposer, proposer_stats) = spawn_proposer(&raft, &config, &stop_tx);
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
                reads: ReadConfirmations::new(),
                health: Default::default(),
                proposer_stats,
                leader_changes: AtomicU64::new(0),
            }),
        };
        tokio::spawn(crate::peer_server::serve(listener, node.clone()));
        node.bootstrap_or_join().await?;
        tokio::spawn(node.clone().expiry_loop());
        tokio::spawn(node.clone().dedupe_eviction_loop());
        tokio::spawn(node.clone().client_addr_loop());
        tokio::spawn(node.clone().failed_members_loop());
        tokio::spawn(node.clone().leader_watch_loop());
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

    /// Graceful step-down before shutdown: [`step_down`](Self::step_down),
    /// with what went wrong logged rather than returned (SIGTERM goes on
    /// either way).
    pub async fn hand_over(&self, timeout: Duration) {
        match self.step_down(timeout).await {
            Ok(StepDown::HandedOver { to }) => {
                tracing::info!(to, "leadership handed over before shutdown")
            }
            Ok(StepDown::NotLeader | StepDown::NoOtherVoter) => {}
            Err(e) => tracing::warn!(error = %e, "leadership not handed over before shutdown"),
        }
    }

    /// A leader hands leadership to the most up-to-date voter and waits
    /// (bounded by `timeout`) until another node leads, so clients see no
    /// election timeout. Raft keeps running, so requests in flight are
    /// forwarded to the new leader. Nothing to do on a node that does not
    /// lead. Used on SIGTERM and by CLUSTER STEPDOWN (a pod's pre-stop
    /// hook, maintenance).
    pub async fn step_down(&self, timeout: Duration) -> Result<StepDown, String> {
        if !self.is_leader() {
            return Ok(StepDown::NotLeader);
        }
        let s = self.status();
        let target = s
            .voters
            .iter()
            .filter(|v| **v != self.inner.id)
            .max_by_key(|v| s.matched.get(v).copied().flatten())
            .copied();
        let Some(to) = target else {
            return Ok(StepDown::NoOtherVoter);
        };
        tracing::info!(to, "handing leadership over");
        self.inner
            .raft
            .trigger()
            .transfer_leader(to)
            .await
            .map_err(|e| format!("leadership transfer to node {to} not started: {e}"))?;
        self.inner
            .raft
            .wait(Some(timeout))
            .metrics(
                |m| m.current_leader.is_some_and(|l| l != m.id),
                "leadership handed over",
            )
            .await
            .map_err(|e| {
                format!(
                    "no other node leads {} ms after the transfer to node {to}: {e}",
                    timeout.as_millis()
                )
            })?;
        Ok(StepDown::HandedOver { to })
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

    /// Why this node's replication cannot serve, if a core task stopped on
    /// its own: Raft's core stopped on an error, or the proposer's task
    /// ended. None while both run, and after a deliberate [`stop`](Self::stop).
    /// Cheap (no clone of the metrics): for health checks. A core task that
    /// ended by a panic without a report is [`raft_failed`](Self::raft_failed)'s
    /// to notice (it polls), and the server then shuts down.
    pub fn core_failure(&self) -> Option<String> {
        if self.is_stopping() {
            return None;
        }
        if let Err(fatal) = &self.inner.raft.metrics().borrow_watched().running_state {
            return Some(format!("Raft stopped: {fatal}"));
        }
        if self.inner.proposer.is_closed() {
            return Some("the proposer task ended".to_string());
        }
        None
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
