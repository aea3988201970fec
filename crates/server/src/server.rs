//! Listeners, the connection limit, and graceful shutdown.
//!
//! Shutdown is explicit: when the `shutdown` future resolves, the accept
//! loops stop, every connection finishes the requests it has already read
//! and sends their replies, then the store drains its write queue and
//! fsyncs. Only then does [`run`] return.

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use strata_replication::{ClusterConfig, ClusterNode};
use strata_storage::{LocalStore, ReplicatedStore, Store};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Semaphore, mpsc};

use crate::config::ServerConfig;
use crate::shared::Shared;
use crate::shutdown::Shutdown;
use crate::write_path::Writes;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open storage in {dir}: {source}")]
    Storage {
        dir: String,
        source: strata_storage::StorageError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the cluster node: {0}")]
    Cluster(String),
    /// Raft stopped while serving; the server shut down (storage flushed).
    #[error("Raft stopped on an error, so the server shut down (restart it to recover): {0}")]
    RaftStopped(String),
    #[error("shutdown could not flush storage: {0}")]
    Flush(strata_storage::StorageError),
    #[error("cannot load the embedding model (--embedding-model): {0}")]
    Embedding(String),
}

#[derive(Clone, Copy)]
enum Protocol {
    Resp,
    Text,
}

/// Runs the server until `shutdown` resolves. Prints the machine-readable
/// line `ready resp=<addr> text=<addr|off> http=<addr|off>` on stdout once
/// it accepts connections, so scripts and tests can use ephemeral ports.
pub async fn run(
    mut config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let embedder = crate::embedding::open(config.embedding_model.as_deref())
        .map_err(ServerError::Embedding)?;
    let opened = open_store(&config)?;
    let store = opened.reader();
    let listeners = Listeners::bind(&mut config)?;
    let (local, cluster) = match opened {
        Opened::Local(local) => (Some(local), None),
        Opened::Replicated(replicated) => (
            None,
            start_cluster(&config, replicated, listeners.resp_addr).await?,
        ),
    };
    let cluster_ready = cluster
        .as_ref()
        .map(|(node, peer)| format!(" peer={peer} node={}", node.id()))
        .unwrap_or_default();
    let node = cluster.map(|(node, _)| node);
    let writes = match (local, node.clone()) {
        (Some(local), _) => Writes::Local(local),
        (None, Some(node)) => Writes::Cluster(node),
        // open_store opens a replicated store only with cluster settings.
        (None, None) => return Err(ServerError::Cluster("no cluster settings".into())),
    };
    let mut shared = Shared::new(store.clone(), writes, config);
    shared.embedder = embedder;
    let shared = Arc::new(shared);
    warn_if_exposed(&shared.config, &listeners);
    let (trigger, stopping) = crate::shutdown::channel();
    let addrs = listeners.addrs();
    let (served, done_rx) = listeners.serve(&shared, &stopping);
    // Index backfills and purges (issue 21): stops at shutdown, before
    // the store is flushed.
    let search_work = tokio::spawn(crate::search_driver::run(shared.clone(), stopping.clone()));
    print_ready(addrs, &cluster_ready);
    let failure = wait_for_stop(shutdown, node.as_ref()).await;
    tracing::info!("shutting down: no new connections; finishing in-flight requests");
    trigger.fire();
    for t in served.accept_tasks {
        let _ = t.await;
    }
    let grace = Duration::from_millis(shared.config.shutdown_timeout_ms);
    let _ = tokio::time::timeout(grace, search_work).await;
    finish(&shared, node.as_ref(), done_rx, served.http).await;
    store.shutdown().await.map_err(ServerError::Flush)?;
    tracing::info!("shutdown complete: storage flushed");
    match failure {
        Some(error) => Err(ServerError::RaftStopped(error)),
        None => Ok(()),
    }
}

/// The store in the mode the configuration asks for: a cluster node's
/// changes only through the replicated log, a single node's directly.
enum Opened {
    Local(LocalStore),
    Replicated(ReplicatedStore),
}

impl Opened {
    fn reader(&self) -> Store {
        match self {
            Opened::Local(s) => s.reader(),
            Opened::Replicated(s) => s.reader(),
        }
    }
}

fn open_store(config: &ServerConfig) -> Result<Opened, ServerError> {
    let dir = config.storage.data_dir.display().to_string();
    let started = std::time::Instant::now();
    let storage = config.storage.clone();
    let opened = match config.cluster {
        Some(_) => ReplicatedStore::open(storage).map(Opened::Replicated),
        None => LocalStore::open(storage).map(Opened::Local),
    };
    let store = opened.map_err(|source| ServerError::Storage {
        dir: dir.clone(),
        source,
    })?;
    tracing::info!(
        data_dir = %dir,
        keys = store.reader().dbsize(),
        recovery_ms = started.elapsed().as_millis() as u64,
        fsync = %config.storage.fsync,
        "storage open"
    );
    Ok(store)
}

/// The client listeners, bound.
struct Listeners {
    resp: TcpListener,
    text: Option<TcpListener>,
    http: Option<TcpListener>,
    resp_addr: SocketAddr,
    text_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
}

/// The bound addresses, for the ready line.
#[derive(Clone, Copy)]
struct Addrs {
    resp: SocketAddr,
    text: Option<SocketAddr>,
    http: Option<SocketAddr>,
}

/// The tasks serving the listeners.
struct Served {
    /// The RESP and text accept loops: they end at shutdown.
    accept_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The HTTP server: it ends once its requests in flight have finished.
    http: Option<tokio::task::JoinHandle<()>>,
}

impl Listeners {
    /// Binds them, and makes `config` report the bound addresses: INFO
    /// (tcp_port), CONFIG GET and ROLE would say nothing useful of port 0.
    fn bind(config: &mut ServerConfig) -> Result<Listeners, ServerError> {
        let resp = listen(config.listen, config.listen_backlog)?;
        let optional = |addr: Option<SocketAddr>| match addr {
            Some(addr) => listen(addr, config.listen_backlog).map(Some),
            None => Ok(None),
        };
        let text = optional(config.text_listen)?;
        let http = optional(config.http_listen)?;
        let resp_addr = resp.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        let text_addr = text.as_ref().and_then(|l| l.local_addr().ok());
        let http_addr = http.as_ref().and_then(|l| l.local_addr().ok());
        config.listen = resp_addr;
        if text_addr.is_some() {
            config.text_listen = text_addr;
        }
        if http_addr.is_some() {
            config.http_listen = http_addr;
        }
        Ok(Listeners {
            resp,
            text,
            http,
            resp_addr,
            text_addr,
            http_addr,
        })
    }

    fn addrs(&self) -> Addrs {
        Addrs {
            resp: self.resp_addr,
            text: self.text_addr,
            http: self.http_addr,
        }
    }

    /// Starts an accept loop per listener. Each connection task holds a
    /// clone of the returned receiver's sender; when all are gone,
    /// `recv()` returns None: every connection has finished.
    /// The HTTP server, if on, starts last: `/livez` watches the other
    /// tasks (and INFO's rate sampler, which runs until shutdown too).
    fn serve(self, shared: &Arc<Shared>, shutdown: &Shutdown) -> (Served, mpsc::Receiver<()>) {
        let permits = Arc::new(Semaphore::new(shared.config.connections_max));
        let (done_tx, done_rx) = mpsc::channel::<()>(1);
        // INFO's instantaneous_* rates: a sample every 100 ms, as Redis does.
        let sampler = tokio::spawn(crate::command_stats::sample_rates(
            shared.clone(),
            shutdown.clone(),
        ));
        let mut core_tasks = vec![("stats-sampler", sampler.abort_handle())];
        let listeners = std::iter::once((self.resp, Protocol::Resp))
            .chain(self.text.map(|t| (t, Protocol::Text)));
        let mut accept_tasks = Vec::new();
        for (listener, protocol) in listeners {
            let task = tokio::spawn(accept_loop(
                listener,
                protocol,
                shared.clone(),
                permits.clone(),
                shutdown.clone(),
                done_tx.clone(),
            ));
            let name = match protocol {
                Protocol::Resp => "resp-accept",
                Protocol::Text => "text-accept",
            };
            core_tasks.push((name, task.abort_handle()));
            accept_tasks.push(task);
        }
        let http = self.http.map(|listener| {
            let state = crate::http::HttpState::new(shared.clone(), shutdown.clone(), core_tasks);
            crate::http::spawn(listener, state)
        });
        (Served { accept_tasks, http }, done_rx)
    }
}

/// Starts this node's Raft in cluster mode; returns it and its bound peer
/// address.
async fn start_cluster(
    config: &ServerConfig,
    store: ReplicatedStore,
    resp_addr: SocketAddr,
) -> Result<Option<(ClusterNode, SocketAddr)>, ServerError> {
    let Some(c) = &config.cluster else {
        return Ok(None);
    };
    let settings = ClusterConfig {
        node_id: c.node_id,
        peer_listen: c.peer_listen,
        initial_cluster: c.initial_cluster.clone(),
        join: c.join.clone(),
        join_as_voter: c.join_as_voter,
        peer_advertise: c.peer_advertise.clone(),
        heartbeat_ms: c.heartbeat_ms,
        election_timeout_ms: c.election_timeout_ms,
        snapshot_logs: c.snapshot_logs,
        forward_timeout_ms: c.forward_timeout_ms,
        admin_timeout_ms: c.admin_timeout_ms,
        fsync: config.storage.fsync,
        snapshot_dir: config.storage.data_dir.join("raft-snapshots"),
        expiry_sweep_interval_ms: config.storage.expiry_sweep_interval_ms,
        expiry_sweep_keys_max: config.storage.expiry_sweep_keys_max,
        cluster_secret: c.cluster_secret.clone(),
    };
    if c.cluster_secret.is_none() && !c.peer_listen.ip().is_loopback() {
        tracing::warn!(
            peer_listen = %c.peer_listen,
            "no cluster secret (--cluster-secret-file none) on a non-loopback peer \
             address: anyone who can reach it can join the cluster, vote and change \
             its membership"
        );
    }
    let (node, peer_addr) = ClusterNode::start(settings, store, resp_addr.to_string())
        .await
        .map_err(|source| ServerError::Cluster(source.to_string()))?;
    tracing::info!(node = c.node_id, peer = %peer_addr, "cluster node started");
    Ok(Some((node, peer_addr)))
}

/// The line scripts and tests wait for (`ready resp=... text=...
/// http=...`; words are only ever added, so parsers that look for the ones
/// they know keep working).
fn print_ready(addrs: Addrs, cluster_ready: &str) {
    let shown = |a: Option<SocketAddr>| a.map_or_else(|| "off".to_string(), |a| a.to_string());
    let (resp, text, http) = (addrs.resp, shown(addrs.text), shown(addrs.http));
    tracing::info!(resp = %resp, text = %text, http = %http, "listening");
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(
        stdout,
        "ready resp={resp} text={text} http={http}{cluster_ready}"
    );
    let _ = stdout.flush();
}

/// Until `shutdown` resolves, or Raft stops on its own (then its error).
async fn wait_for_stop(
    shutdown: impl Future<Output = ()>,
    node: Option<&ClusterNode>,
) -> Option<String> {
    let raft_failed = async {
        match node {
            Some(node) => node.raft_failed().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = shutdown => None,
        error = raft_failed => {
            tracing::error!(
                %error,
                "Raft stopped on an error: shutting down, so that a restart recovers from the durable log"
            );
            Some(error)
        }
    }
}

/// Hands leadership over, lets connections (client and HTTP) finish
/// within the shutdown timeout, and stops Raft.
async fn finish(
    shared: &Shared,
    node: Option<&ClusterNode>,
    mut done: mpsc::Receiver<()>,
    mut http: Option<tokio::task::JoinHandle<()>>,
) {
    let grace = Duration::from_millis(shared.config.shutdown_timeout_ms);
    if let Some(node) = node {
        // First, while Raft still runs: in-flight requests are forwarded
        // to the new leader and finish.
        node.hand_over(grace.min(Duration::from_secs(5))).await;
    }
    let all_done = async {
        done.recv().await;
        if let Some(task) = http.as_mut() {
            let _ = task.await;
        }
    };
    if tokio::time::timeout(grace, all_done).await.is_err() {
        tracing::warn!(
            timeout_ms = grace.as_millis() as u64,
            "connections still busy after the shutdown timeout; closing them"
        );
    }
    if let Some(task) = http {
        task.abort();
    }
    if let Some(node) = node {
        node.stop(grace).await;
    }
}

/// Says at start-up what a non-loopback listener exposes.
fn warn_if_exposed(config: &ServerConfig, listeners: &Listeners) {
    if let Some(http) = listeners.http_addr.filter(|a| !a.ip().is_loopback()) {
        tracing::warn!(
            listen = %http,
            "the HTTP listener is on a non-loopback address: anyone who can reach it can \
             read /metrics and the cluster's status (protected mode covers the RESP and text \
             listeners)"
        );
    }
    let (resp, text) = (listeners.resp_addr, listeners.text_addr);
    for addr in std::iter::once(resp).chain(text) {
        if addr.ip().is_loopback() {
            continue;
        }
        if config.protected_mode {
            tracing::warn!(
                listen = %addr,
                "protected mode: this non-loopback listener serves only clients on this host \
                 (127.0.0.1, ::1) and refuses others, since clients need no password"
            );
        } else {
            tracing::warn!(
                listen = %addr,
                "protected mode is off on a non-loopback listener: anyone who can reach it \
                 can run any command (FLUSHALL and CLUSTER REMOVENODE included)"
            );
        }
    }
}

/// Whether a client counts as on this host for protected mode: as in
/// Redis, 127.0.0.1 and ::1 only (not the rest of 127.0.0.0/8).
fn is_local_client(ip: std::net::IpAddr) -> bool {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match ip {
        IpAddr::V4(v4) => v4 == Ipv4Addr::LOCALHOST,
        IpAddr::V6(v6) => {
            v6 == Ipv6Addr::LOCALHOST || v6.to_ipv4_mapped() == Some(Ipv4Addr::LOCALHOST)
        }
    }
}

/// Binds a listener with `--listen-backlog`: tokio's `TcpListener::bind`
/// fixes the backlog at 128 (mio's choice), and a burst of connects beyond
/// it waits a SYN retransmit (1 s) each. `SO_REUSEADDR` as that `bind` sets
/// it: a restart must not wait for the old connections' TIME_WAIT.
fn listen(addr: SocketAddr, backlog: u32) -> Result<TcpListener, ServerError> {
    let bind = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(backlog)
    };
    bind().map_err(|source| ServerError::Bind { addr, source })
}

async fn accept_loop(
    listener: TcpListener,
    protocol: Protocol,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    mut shutdown: Shutdown,
    done: mpsc::Sender<()>,
) {
    // Protected mode guards listeners that other hosts can reach.
    let protected = shared.config.protected_mode
        && listener
            .local_addr()
            .map_or(true, |a| !a.ip().is_loopback());
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = shutdown.recv() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        shared.stats.connections_received.fetch_add(1, Relaxed);
        if protected && !is_local_client(peer.ip()) {
            shared.stats.connections_rejected.fetch_add(1, Relaxed);
            tracing::debug!(%peer, "protected mode: refused a client from another host");
            tokio::spawn(deny(stream, protocol));
            continue;
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            shared.stats.connections_rejected.fetch_add(1, Relaxed);
            tokio::spawn(reject(stream, protocol));
            continue;
        };
        tokio::spawn(serve_connection(
            stream,
            peer,
            protocol,
            shared.clone(),
            shutdown.clone(),
            (permit, done.clone()),
        ));
    }
}

/// One connection, holding its slot and the shutdown's "not done yet"
/// sender until it ends.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    protocol: Protocol,
    shared: Arc<Shared>,
    shutdown: Shutdown,
    held: (tokio::sync::OwnedSemaphorePermit, mpsc::Sender<()>),
) {
    // A guard, not a decrement after the match: a connection task that
    // panics unwinds through it, and a count left too high would report
    // phantom clients (INFO only: the write path counts its own
    // submitters).
    let counted = ConnectionCounted::new(&shared.stats.connections_current);
    match protocol {
        Protocol::Resp => {
            crate::connection::serve::<crate::codec::Resp>(stream, peer, shared.clone(), shutdown)
                .await
        }
        Protocol::Text => {
            crate::connection::serve::<crate::text::Text>(stream, peer, shared.clone(), shutdown)
                .await
        }
    }
    // Uncounted before the slot is freed, so the count never exceeds the
    // connections that hold a slot.
    drop(counted);
    drop(held);
}

/// Counts one open connection in `connections_current` while alive.
struct ConnectionCounted<'a>(&'a std::sync::atomic::AtomicU64);

impl<'a> ConnectionCounted<'a> {
    fn new(counter: &'a std::sync::atomic::AtomicU64) -> Self {
        counter.fetch_add(1, Relaxed);
        ConnectionCounted(counter)
    }
}

impl Drop for ConnectionCounted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Redis's protected-mode explanation, adapted to Strata's flags.
const PROTECTED_MODE_DENIED: &str = "DENIED Strata is running in protected mode because \
protected mode is enabled and clients need no password (Strata has none yet). In this mode \
connections are only accepted from the loopback interface (127.0.0.1 and ::1). If you want \
to connect from other computers, use one of these solutions: 1) Bind the client listeners \
to a loopback address (--listen 127.0.0.1:7379, --text-listen 127.0.0.1:7381) and reach \
them through a tunnel. 2) Restart the server with '--protected-mode no' (or \
STRATA_PROTECTED_MODE=no, or protected_mode = \"no\" in the config file), after making \
sure that only trusted hosts can reach its ports (a firewall): anyone who connects can run \
any command.";

/// Protected mode: explain (as Redis does), then close.
async fn deny(mut stream: TcpStream, protocol: Protocol) {
    let msg = match protocol {
        Protocol::Resp => format!("-{PROTECTED_MODE_DENIED}\r\n"),
        Protocol::Text => format!("ERROR: {PROTECTED_MODE_DENIED}\n"),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(msg.as_bytes())).await;
}

/// Over the connection limit: say so (as Redis does), then close.
async fn reject(mut stream: TcpStream, protocol: Protocol) {
    let msg: &[u8] = match protocol {
        Protocol::Resp => b"-ERR max number of clients reached\r\n",
        Protocol::Text => b"ERROR: max number of clients reached\n",
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(msg)).await;
}
