//! State shared by every connection: the store, the configuration, and
//! counters. One type, passed around as `Arc<Shared>`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use strata_replication::ClusterNode;
use strata_storage::Store;
use strata_storage::mutation::Limits;

use crate::client_buffers::ClientBuffers;
use crate::clients::{ClientInfo, Clients, Protocol};
use crate::config::ServerConfig;
use crate::write_path::{WritePath, Writes};

/// How many SCAN cursors the server remembers. Cursors are numbers (as every
/// Redis client expects) that name a resume key held here; the oldest is
/// forgotten first, and a forgotten cursor gets `ERR invalid cursor`.
const SCAN_CURSORS_MAX: usize = 16_384;

pub struct Shared {
    /// Reads go here directly; writes never do (see `write_path`).
    pub store: Store,
    /// Every write, and the read barrier, go through it.
    pub write_path: WritePath,
    /// Set in cluster mode: CLUSTER, ROLE and INFO ask it.
    pub cluster: Option<ClusterNode>,
    pub config: ServerConfig,
    pub started: Instant,
    pub stats: ServerStats,
    /// SLOWLOG's entries and settings (`slowlog-*`).
    pub slowlog: crate::cmd::slowlog::Slowlog,
    /// The bound on all connections' buffers together.
    pub client_buffers: std::sync::Arc<ClientBuffers>,
    /// Every open client connection (CLIENT LIST, CLIENT KILL).
    pub clients: std::sync::Arc<Clients>,
    /// What changed after a version (the HTTP API's blocking queries),
    /// told of every view the store publishes.
    pub changes: std::sync::Arc<crate::changes::ChangeFeed>,
    next_client_id: AtomicU64,
    scan_cursors: Mutex<ScanCursors>,
    /// Online backups in progress (BACKUP).
    pub backups: std::sync::Arc<crate::backup::Backups>,
    /// The sentence-embedding service for EMBED fields
    /// (`--embedding-model`); None: EMBED fields are refused.
    pub embedder: Option<crate::embedding::SharedEmbedder>,
    /// Held while a backfill page is previewed, embedded and proposed
    /// (the driver, FT.CREATE's first page): two pages proposed at once
    /// would each carry the vectors of the keys its preview saw, and the
    /// second would index keys past the first's end without theirs.
    pub backfill_turn: tokio::sync::Mutex<()>,
}

#[derive(Default)]
pub struct ServerStats {
    pub connections_received: AtomicU64,
    pub connections_current: AtomicU64,
    pub connections_rejected: AtomicU64,
    pub commands_processed: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub keyspace_hits: AtomicU64,
    pub keyspace_misses: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    /// Connections closed because a request did not arrive whole within
    /// `--request-timeout-ms`.
    pub request_timeouts: AtomicU64,
    /// Per-command counts and times, errors, rates (INFO commandstats,
    /// errorstats, latencystats, `instantaneous_*`).
    pub commands: crate::command_stats::CommandStats,
}

struct ScanCursors {
    next_id: u64,
    resume_after: HashMap<u64, Bytes>,
    order: VecDeque<u64>,
}

impl Shared {
    pub fn new(store: Store, writes: Writes, config: ServerConfig) -> Shared {
        // Start cursor ids at a time-derived value so cursors from before a
        // restart are unlikely to alias new ones.
        let seed = strata_storage::now_ms().wrapping_mul(1_000_003) % (1 << 40) + 1;
        let cluster = match &writes {
            Writes::Cluster(node) => Some(node.clone()),
            Writes::Local(_) => None,
        };
        let write_path = WritePath::choose(writes, limits(&config));
        let changes = std::sync::Arc::new(crate::changes::ChangeFeed::default());
        // One store, one server: a store is given one observer for its
        // life, so a second `Shared` on it (tests only) would not be told.
        let _observed = store.set_publish_observer(changes.clone());
        Shared {
            changes,
            store,
            write_path,
            cluster,
            started: Instant::now(),
            stats: ServerStats::default(),
            slowlog: crate::cmd::slowlog::Slowlog::new(
                config.slowlog_log_slower_than_us,
                config.slowlog_max_len,
            ),
            client_buffers: std::sync::Arc::new(ClientBuffers::new(
                config.client_buffers_size_bytes_max,
            )),
            clients: std::sync::Arc::new(Clients::default()),
            backups: crate::backup::Backups::new(config.backup_idle_timeout_ms),
            embedder: None,
            backfill_turn: tokio::sync::Mutex::new(()),
            config,
            next_client_id: AtomicU64::new(1),
            scan_cursors: Mutex::new(ScanCursors {
                next_id: seed,
                resume_after: HashMap::new(),
                order: VecDeque::new(),
            }),
        }
    }

    pub fn next_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Remembers where a SCAN stopped and returns the cursor naming it.
    pub fn save_cursor(&self, resume_after: Bytes) -> u64 {
        let mut c = self.scan_cursors.lock().unwrap_or_else(|p| p.into_inner());
        let id = c.next_id;
        c.next_id = c.next_id.wrapping_add(1).max(1);
        if c.order.len() >= SCAN_CURSORS_MAX
            && let Some(old) = c.order.pop_front()
        {
            c.resume_after.remove(&old);
        }
        c.resume_after.insert(id, resume_after);
        c.order.push_back(id);
        id
    }

    pub fn load_cursor(&self, id: u64) -> Option<Bytes> {
        let c = self.scan_cursors.lock().unwrap_or_else(|p| p.into_inner());
        c.resume_after.get(&id).cloned()
    }
}

/// The limits a write is checked against (carried in the log entry in
/// cluster mode, so every replica decides alike).
fn limits(config: &ServerConfig) -> Limits {
    Limits {
        key_size_bytes_max: config.storage.key_size_bytes_max,
        value_size_bytes_max: config.storage.value_size_bytes_max,
    }
}

/// Per-connection state.
pub struct Session {
    pub id: u64,
    /// What CLIENT LIST shows of this connection; also holds its names
    /// and its kill switch.
    pub client: std::sync::Arc<ClientInfo>,
    pub protocol: strata_protocol::resp::ProtocolVersion,
    pub peer: String,
    pub created: Instant,
    /// READONLY: serve reads from this node's state without a ReadIndex
    /// round (fast, possibly stale). Cluster mode only.
    pub readonly: bool,
    /// Set between MULTI and EXEC/DISCARD: commands are queued.
    pub tx: Option<Box<crate::cmd::tx::Transaction>>,
    /// WATCHed keys as WATCH saw them, until EXEC, DISCARD or UNWATCH.
    pub watched: Vec<strata_storage::WatchedVersion>,
}

impl Session {
    /// A session outside any connection registry (tests, fuzzing).
    pub fn new(id: u64, peer: String) -> Session {
        let client = ClientInfo::new(id, Protocol::Resp, peer, String::new(), -1);
        Session::for_client(std::sync::Arc::new(client))
    }

    /// Publishes what CLIENT LIST shows of this connection, once per batch
    /// of requests, before their replies go out: a few relaxed stores.
    /// `active_ms`: when its last command started.
    pub fn publish_at_wait(&self, read_buf: &bytes::BytesMut, charged_bytes: u64, active_ms: u64) {
        let tx = self.tx.as_deref();
        self.client.at_wait(&crate::clients::AtWait {
            active_ms,
            qbuf_bytes: read_buf.len(),
            qbuf_free_bytes: read_buf.capacity() - read_buf.len(),
            multi: tx.map_or(-1, |t| t.queued_count() as i64),
            multi_mem_bytes: tx.map_or(0, |t| t.queued_bytes()),
            tot_mem_bytes: charged_bytes,
            flags: crate::clients::flags(tx.is_some(), self.readonly),
            resp: match self.client.protocol {
                Protocol::Resp => crate::clients::resp_number(self.protocol),
                Protocol::Text => 0,
            },
        });
    }

    /// The session of a registered connection.
    pub fn for_client(client: std::sync::Arc<ClientInfo>) -> Session {
        Session {
            id: client.id,
            peer: client.addr.clone(),
            client,
            protocol: strata_protocol::resp::ProtocolVersion::Resp2,
            created: Instant::now(),
            readonly: false,
            tx: None,
            watched: Vec::new(),
        }
    }
}
