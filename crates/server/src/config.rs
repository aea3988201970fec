//! Server configuration: defaults, a TOML file, `STRATA_*` environment
//! variables and command-line flags, in rising order of precedence.
//!
//! One struct, [`ConfigLayer`], is both the clap argument set (flags and
//! environment variables) and the TOML file schema, so the three sources
//! cannot drift apart: a setting exists in all of them or in none.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use strata_replication::ClusterSecret;
use strata_storage::{FsyncPolicy, StorageConfig};

/// Every setting, all optional: one layer of configuration.
#[derive(clap::Args, Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct ConfigLayer {
    /// RESP (Redis protocol) listen address.
    /// [default: 127.0.0.1:7379]
    #[arg(long, env = "STRATA_LISTEN")]
    pub listen: Option<String>,
    /// Text line protocol listen address, or `off`.
    /// [default: 127.0.0.1:7381]
    #[arg(long, env = "STRATA_TEXT_LISTEN")]
    pub text_listen: Option<String>,
    /// HTTP listen address (JSON API, /metrics, /livez, /readyz), or `off`.
    /// [default: 127.0.0.1:7382]
    #[arg(long, env = "STRATA_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// Data directory.
    /// [default: ./strata-data]
    #[arg(long, env = "STRATA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Durability: always | periodic:<ms> | never.
    /// [default: always]
    #[arg(long, env = "STRATA_FSYNC")]
    pub fsync: Option<String>,
    /// Most client connections at once (both protocols together).
    /// [default: 4096]
    #[arg(long, env = "STRATA_CONNECTIONS_MAX")]
    pub connections_max: Option<usize>,
    /// Close a connection idle this long; 0 disables.
    /// [default: 5m]
    #[arg(long, env = "STRATA_IDLE_TIMEOUT_MS", value_parser = crate::units::parse_duration_ms)]
    #[serde(default, deserialize_with = "crate::units::de_duration_ms")]
    pub idle_timeout_ms: Option<u64>,
    /// A request that has started arriving must be whole within this long,
    /// or the connection is closed (slow clients holding a slot).
    #[arg(long, env = "STRATA_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// Bytes held by all client connections' buffers together (partial
    /// requests, unsent replies); past it the largest clients are closed.
    #[arg(long, env = "STRATA_CLIENT_BUFFERS_SIZE_BYTES_MAX")]
    pub client_buffers_size_bytes_max: Option<u64>,
    /// Connections the kernel queues before the server accepts them.
    #[arg(long, env = "STRATA_LISTEN_BACKLOG")]
    pub listen_backlog: Option<u32>,
    /// Largest key.
    /// [default: 16KiB]
    #[arg(long, env = "STRATA_KEY_SIZE_BYTES_MAX", value_parser = crate::units::parse_size_bytes_usize)]
    #[serde(default, deserialize_with = "crate::units::de_size_bytes_usize")]
    pub key_size_bytes_max: Option<usize>,
    /// Largest value.
    /// [default: 16MiB]
    #[arg(long, env = "STRATA_VALUE_SIZE_BYTES_MAX", value_parser = crate::units::parse_size_bytes_usize)]
    #[serde(default, deserialize_with = "crate::units::de_size_bytes_usize")]
    pub value_size_bytes_max: Option<usize>,
    /// Largest single request (a RESP frame or a text line).
    /// [default: 64MiB]
    #[arg(long, env = "STRATA_REQUEST_SIZE_BYTES_MAX", value_parser = crate::units::parse_size_bytes_usize)]
    #[serde(default, deserialize_with = "crate::units::de_size_bytes_usize")]
    pub request_size_bytes_max: Option<usize>,
    /// Most arguments in one request.
    /// [default: 1048576]
    #[arg(long, env = "STRATA_REQUEST_ARGS_MAX")]
    pub request_args_max: Option<usize>,
    /// Most elements in one reply (KEYS, RANGE without LIMIT, MGET).
    /// [default: 1000000]
    #[arg(long, env = "STRATA_REPLY_ELEMENTS_MAX")]
    pub reply_elements_max: Option<usize>,
    /// Block cache size.
    /// [default: 256MiB]
    #[arg(long, env = "STRATA_CACHE_SIZE_BYTES", value_parser = crate::units::parse_size_bytes)]
    #[serde(default, deserialize_with = "crate::units::de_size_bytes")]
    pub cache_size_bytes: Option<u64>,
    /// Read cache of whole records for single-key reads, in front of the
    /// engine; 0 switches it off.
    /// [default: 64MiB]
    #[arg(long, env = "STRATA_READ_CACHE_SIZE_BYTES", value_parser = crate::units::parse_size_bytes)]
    #[serde(default, deserialize_with = "crate::units::de_size_bytes")]
    pub read_cache_size_bytes: Option<u64>,
    /// Search cache: decoded posting lists of query terms and decoded
    /// vector fields (half each), in front of the engine; 0 switches it off.
    /// [default: 512MiB]
    #[arg(long, env = "STRATA_SEARCH_CACHE_SIZE_BYTES", value_parser = crate::units::parse_size_bytes)]
    #[serde(default, deserialize_with = "crate::units::de_size_bytes")]
    pub search_cache_size_bytes: Option<u64>,
    /// Memtable size before a flush to disk.
    /// [default: 32MiB]
    #[arg(long, env = "STRATA_MEMTABLE_SIZE_BYTES", value_parser = crate::units::parse_size_bytes)]
    #[serde(default, deserialize_with = "crate::units::de_size_bytes")]
    pub memtable_size_bytes: Option<u64>,
    /// Journal size that forces memtable flushes (bounds recovery time).
    /// [default: 256MiB]
    #[arg(long, env = "STRATA_JOURNAL_SIZE_BYTES_MAX", value_parser = crate::units::parse_size_bytes)]
    #[serde(default, deserialize_with = "crate::units::de_size_bytes")]
    pub journal_size_bytes_max: Option<u64>,
    /// Writes queued for the group-commit writer before clients wait.
    /// [default: 8192]
    #[arg(long, env = "STRATA_WRITE_QUEUE_LEN_MAX")]
    pub write_queue_len_max: Option<usize>,
    /// How long a graceful shutdown waits for in-flight requests.
    /// [default: 10s]
    #[arg(long, env = "STRATA_SHUTDOWN_TIMEOUT_MS", value_parser = crate::units::parse_duration_ms)]
    #[serde(default, deserialize_with = "crate::units::de_duration_ms")]
    pub shutdown_timeout_ms: Option<u64>,
    /// Network threads (the storage writer and engine threads come on top).
    /// [default: cores - 1, at least 1]
    #[arg(long, env = "STRATA_IO_THREADS")]
    pub io_threads: Option<usize>,
    /// Cluster mode: this node's id (a positive integer, never reused).
    #[arg(long, env = "STRATA_NODE_ID")]
    pub node_id: Option<u64>,
    /// Cluster mode: the address peers connect to (Raft traffic).
    /// [default: 127.0.0.1:7380]
    #[arg(long, env = "STRATA_PEER_LISTEN")]
    pub peer_listen: Option<String>,
    /// Cluster mode: the address other nodes reach this one at, HOST:PORT,
    /// when it is not the --peer-listen address (a DNS name, NAT). A
    /// founding node's is its --initial-cluster entry.
    /// [default: the --initial-cluster entry, else --peer-listen]
    #[arg(long, env = "STRATA_PEER_ADVERTISE")]
    pub peer_advertise: Option<String>,
    /// Cluster mode, bootstrap: `1=host:port,2=host:port,3=host:port`, the
    /// peer addresses of the founding members; identical on every one.
    #[arg(long, env = "STRATA_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,
    /// Cluster mode, join: the peer address of any running member.
    #[arg(long, env = "STRATA_JOIN")]
    pub join: Option<String>,
    /// With --join: `voter` (default) or `learner` (an asynchronous replica).
    #[arg(long, env = "STRATA_JOIN_AS")]
    pub join_as: Option<String>,
    /// Raft heartbeat interval.
    /// [default: 100ms]
    #[arg(long, env = "STRATA_HEARTBEAT_MS", value_parser = crate::units::parse_duration_ms)]
    #[serde(default, deserialize_with = "crate::units::de_duration_ms")]
    pub heartbeat_ms: Option<u64>,
    /// Raft election timeout (minimum; the maximum is twice this).
    /// [default: 400ms]
    #[arg(long, env = "STRATA_ELECTION_TIMEOUT_MS", value_parser = crate::units::parse_duration_ms)]
    #[serde(default, deserialize_with = "crate::units::de_duration_ms")]
    pub election_timeout_ms: Option<u64>,
    /// Build a snapshot (and truncate the log) after this many entries.
    /// [default: 100000]
    #[arg(long, env = "STRATA_SNAPSHOT_LOGS")]
    pub snapshot_logs: Option<u64>,
    /// How long a node keeps trying to reach a leader before it answers
    /// -CLUSTERDOWN.
    /// [default: 3s]
    #[arg(long, env = "STRATA_FORWARD_TIMEOUT_MS", value_parser = crate::units::parse_duration_ms)]
    #[serde(default, deserialize_with = "crate::units::de_duration_ms")]
    pub forward_timeout_ms: Option<u64>,
    /// Cluster mode: a file holding the secret every member proves on
    /// every peer connection (the same file on every node), or `none` to
    /// run without one. Required when --peer-listen is not a loopback
    /// address.
    #[arg(long, env = "STRATA_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<String>,
    /// `yes` (default) or `no`. While on, a client listener bound to a
    /// non-loopback address serves only clients from 127.0.0.1 and ::1
    /// (there is no client password yet) and refuses others with -DENIED.
    #[arg(long, env = "STRATA_PROTECTED_MODE")]
    pub protected_mode: Option<String>,
    /// Bound on a membership change (CLUSTER ADDLEARNER, ADDNODE, PROMOTE,
    /// REMOVENODE) and on each attempt of `--join`.
    #[arg(long, env = "STRATA_ADMIN_TIMEOUT_MS")]
    pub admin_timeout_ms: Option<u64>,
    /// SLOWLOG: log commands that take at least this long, in
    /// microseconds (or with a unit: 10ms); negative turns the log off, 0
    /// logs every command. Also CONFIG SET slowlog-log-slower-than.
    /// [default: 10000]
    #[arg(long, env = "STRATA_SLOWLOG_LOG_SLOWER_THAN", allow_hyphen_values = true,
          value_parser = crate::units::parse_duration_us_signed)]
    #[serde(default, deserialize_with = "crate::units::de_duration_us_signed")]
    pub slowlog_log_slower_than: Option<i64>,
    /// SLOWLOG: entries kept (the oldest go first), at most 10000; 0 turns
    /// the log off. Also CONFIG SET slowlog-max-len.
    /// [default: 128]
    #[arg(long, env = "STRATA_SLOWLOG_MAX_LEN")]
    pub slowlog_max_len: Option<usize>,
    /// An online backup (`strata backup save`) that asks for no chunk for
    /// this long is dropped, with the snapshot it holds.
    /// [default: 60s]
    #[arg(long, env = "STRATA_BACKUP_IDLE_TIMEOUT_MS", value_parser = crate::units::parse_duration_ms)]
    #[serde(default, deserialize_with = "crate::units::de_duration_ms")]
    pub backup_idle_timeout_ms: Option<u64>,
    /// A sentence-transformers model directory (`model.safetensors`,
    /// `tokenizer.json`, `config.json`; all-MiniLM-L6-v2): EMBED vector
    /// fields embed their text with it. Without it, EMBED is refused.
    /// [default: none]
    #[arg(long, env = "STRATA_EMBEDDING_MODEL")]
    pub embedding_model: Option<PathBuf>,
}

/// Resolved configuration of a running server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub text_listen: Option<SocketAddr>,
    /// The HTTP listener (`None`: off).
    pub http_listen: Option<SocketAddr>,
    pub connections_max: usize,
    pub idle_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub client_buffers_size_bytes_max: u64,
    pub listen_backlog: u32,
    pub request_size_bytes_max: usize,
    pub request_args_max: usize,
    pub reply_elements_max: usize,
    pub shutdown_timeout_ms: u64,
    pub io_threads: usize,
    pub storage: StorageConfig,
    /// Set in cluster mode.
    pub cluster: Option<ClusterSettings>,
    /// Refuse clients from other hosts on non-loopback listeners
    /// (`--protected-mode`).
    pub protected_mode: bool,
    /// SLOWLOG's threshold at start-up, µs (negative: off); CONFIG SET
    /// changes the live value in `Shared::slowlog`.
    pub slowlog_log_slower_than_us: i64,
    /// SLOWLOG's length at start-up.
    pub slowlog_max_len: usize,
    /// An open backup idle this long is dropped (`backup.rs`).
    pub backup_idle_timeout_ms: u64,
    /// The model directory for EMBED fields (`--embedding-model`).
    pub embedding_model: Option<PathBuf>,
}

/// Cluster settings as configured (see `ClusterConfig` for their use).
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    pub node_id: u64,
    pub peer_listen: SocketAddr,
    pub initial_cluster: Vec<(u64, String)>,
    pub join: Option<String>,
    pub join_as_voter: bool,
    pub peer_advertise: Option<String>,
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
    pub snapshot_logs: u64,
    pub forward_timeout_ms: u64,
    pub cluster_secret: ClusterSecret,
    pub admin_timeout_ms: u64,
}

pub const DEFAULT_PEER_LISTEN: &str = "127.0.0.1:7380";

/// Parses `1=host:port,2=host:port`.
pub fn parse_initial_cluster(s: &str) -> Result<Vec<(u64, String)>, String> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?} is not id=host:port"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| format!("{id:?} is not a node id (a positive integer)"))?;
        let addr = addr.trim();
        if id == 0 || addr.is_empty() || !addr.contains(':') {
            return Err(format!("{item:?} is not id=host:port with id >= 1"));
        }
        if out.iter().any(|(seen, _)| *seen == id) {
            return Err(format!("node id {id} appears twice"));
        }
        out.push((id, addr.to_string()));
    }
    if out.is_empty() {
        return Err("the list is empty".into());
    }
    Ok(out)
}

/// The cluster settings, or `None` when no cluster flag is given (a
/// single node).
fn resolve_cluster(layer: &ConfigLayer) -> Result<Option<ClusterSettings>, ConfigError> {
    let any = layer.node_id.is_some()
        || layer.initial_cluster.is_some()
        || layer.join.is_some()
        || layer.peer_listen.is_some()
        || layer.peer_advertise.is_some();
    if !any {
        return Ok(None);
    }
    let node_id = layer
        .node_id
        .ok_or_else(|| invalid("node-id", "cluster mode needs --node-id".into()))?;
    if node_id == 0 {
        return Err(invalid("node-id", "must be at least 1".into()));
    }
    let initial_cluster = resolve_initial_cluster(layer, node_id)?;
    let peer_advertise = resolve_peer_advertise(layer, node_id, &initial_cluster)?;
    let join_as_voter = resolve_join_as(layer)?;
    let (heartbeat_ms, election_timeout_ms) = resolve_raft_timing(layer)?;
    let peer_listen = parse_addr(
        "peer-listen",
        layer.peer_listen.as_deref().unwrap_or(DEFAULT_PEER_LISTEN),
    )?;
    Ok(Some(ClusterSettings {
        node_id,
        cluster_secret: resolve_secret(layer.cluster_secret_file.as_deref(), peer_listen)?,
        peer_listen,
        initial_cluster,
        join: layer.join.clone(),
        join_as_voter,
        peer_advertise,
        heartbeat_ms,
        election_timeout_ms,
        snapshot_logs: at_least("snapshot-logs", layer.snapshot_logs.unwrap_or(100_000), 10)?,
        forward_timeout_ms: at_least(
            "forward-timeout-ms",
            layer.forward_timeout_ms.unwrap_or(3_000),
            100,
        )?,
        // At most 300 s: the CLI waits that long for a membership change,
        // so its answer always arrives.
        admin_timeout_ms: in_range(
            "admin-timeout-ms",
            layer.admin_timeout_ms.unwrap_or(DEFAULT_ADMIN_TIMEOUT_MS),
            1_000,
            300_000,
        )?,
    }))
}

fn invalid(name: &'static str, message: String) -> ConfigError {
    ConfigError::Invalid { name, message }
}

/// `--initial-cluster` (empty when joining): a node either bootstraps a
/// cluster that lists it, or joins an existing one, never both.
fn resolve_initial_cluster(
    layer: &ConfigLayer,
    node_id: u64,
) -> Result<Vec<(u64, String)>, ConfigError> {
    let initial_cluster = match &layer.initial_cluster {
        Some(s) => parse_initial_cluster(s).map_err(|m| invalid("initial-cluster", m))?,
        None => Vec::new(),
    };
    if initial_cluster.is_empty() == layer.join.is_none() {
        return Err(invalid(
            "initial-cluster",
            "cluster mode needs exactly one of --initial-cluster or --join".into(),
        ));
    }
    if !initial_cluster.is_empty() && !initial_cluster.iter().any(|(id, _)| *id == node_id) {
        return Err(invalid(
            "initial-cluster",
            format!("the list does not include this node (--node-id {node_id})"),
        ));
    }
    Ok(initial_cluster)
}

/// `--peer-advertise`: HOST:PORT (as CLUSTER ADDNODE takes it). A founding
/// node is known to the others by its `--initial-cluster` entry, so a
/// different address there would leave them and it disagreeing.
fn resolve_peer_advertise(
    layer: &ConfigLayer,
    node_id: u64,
    initial_cluster: &[(u64, String)],
) -> Result<Option<String>, ConfigError> {
    let Some(advertise) = layer.peer_advertise.as_deref().map(str::trim) else {
        return Ok(None);
    };
    let port_ok = advertise
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !port_ok || advertise.len() > PEER_ADDR_BYTES_MAX {
        return Err(invalid(
            "peer-advertise",
            format!("{advertise:?} is not HOST:PORT (at most {PEER_ADDR_BYTES_MAX} bytes)"),
        ));
    }
    let listed = initial_cluster.iter().find(|(id, _)| *id == node_id);
    if let Some((_, listed)) = listed
        && listed != advertise
    {
        return Err(invalid(
            "peer-advertise",
            format!(
                "{advertise} differs from this node's --initial-cluster entry {listed}: the \
                 other founding nodes reach it there; give one address in both, or leave \
                 --peer-advertise out"
            ),
        ));
    }
    Ok(Some(advertise.to_string()))
}

/// The longest peer address CLUSTER ADDLEARNER / ADDNODE accept.
const PEER_ADDR_BYTES_MAX: usize = 255;

/// `--join-as`: whether a joining node asks to be a voter (the default)
/// or a learner.
fn resolve_join_as(layer: &ConfigLayer) -> Result<bool, ConfigError> {
    match layer.join_as.as_deref() {
        None | Some("voter") => Ok(true),
        Some("learner") => Ok(false),
        Some(other) => Err(invalid(
            "join-as",
            format!("{other:?}: expected voter or learner"),
        )),
    }
}

/// `(heartbeat_ms, election_timeout_ms)`: an election timeout spans at
/// least three heartbeats, so a follower does not start an election while
/// a healthy leader's heartbeat is merely late.
fn resolve_raft_timing(layer: &ConfigLayer) -> Result<(u64, u64), ConfigError> {
    let heartbeat_ms = at_least("heartbeat-ms", layer.heartbeat_ms.unwrap_or(100), 10)?;
    let election_timeout_ms = layer.election_timeout_ms.unwrap_or(400);
    // Saturating: a huge heartbeat is refused here, not an overflow.
    if election_timeout_ms < heartbeat_ms.saturating_mul(3) {
        return Err(invalid(
            "election-timeout-ms",
            format!("{election_timeout_ms} must be at least 3 x heartbeat-ms ({heartbeat_ms})"),
        ));
    }
    Ok((heartbeat_ms, election_timeout_ms))
}

/// The cluster secret: from its file, none when the operator says `none`,
/// and none by default only on a loopback peer address. Why refuse a
/// non-loopback one: without a secret anyone who reaches the peer port
/// can join as a voter, vote, and change membership.
fn resolve_secret(
    file: Option<&str>,
    peer_listen: SocketAddr,
) -> Result<ClusterSecret, ConfigError> {
    match file {
        Some("none") => Ok(ClusterSecret::none()),
        Some(path) => {
            ClusterSecret::read_file(std::path::Path::new(path)).map_err(|e| ConfigError::Invalid {
                name: "cluster-secret-file",
                message: e.to_string(),
            })
        }
        None if peer_listen.ip().is_loopback() => Ok(ClusterSecret::none()),
        None => Err(ConfigError::Invalid {
            name: "cluster-secret-file",
            message: format!(
                "--peer-listen {peer_listen} is not a loopback address, and no cluster secret \
                 is set: anyone who can reach that port could join the cluster, vote and change \
                 its membership. Pass --cluster-secret-file PATH (the same secret file on every \
                 node; e.g. `openssl rand -hex 32 > PATH`), or --cluster-secret-file none to \
                 run without one on a network you trust"
            ),
        }),
    }
}

/// `yes` / `no` (also `true` / `false`, `on` / `off`).
fn parse_yes_no(name: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v {
        "yes" | "true" | "on" => Ok(true),
        "no" | "false" | "off" => Ok(false),
        other => Err(ConfigError::Invalid {
            name,
            message: format!("{other:?}: expected yes or no"),
        }),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The cause is in the message and deliberately not a `source`: a
    /// report that prints the chain (`{:#}`) would print it twice.
    #[error("cannot read config file {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting {name}: {message}")]
    Invalid { name: &'static str, message: String },
}

/// Why 30 s: a whole request of the default maximum size (64 MiB) still
/// arrives at 2.2 MB/s, while a client trickling bytes holds its slot for
/// at most half a minute (the idle timeout, minutes, counts from the last
/// byte and so never fires for it).
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;
/// Why 1 GiB and not a fraction of RAM: the bound must not depend on the
/// machine the server happens to start on (a container sees the host's
/// RAM). 1 GiB holds 16 requests of the maximum size (64 MiB) at once, far
/// more than real traffic buffers, and is the order of the storage's own
/// default caches; the 4,096 connections x 64 MiB it replaces is 256 GiB.
pub const DEFAULT_CLIENT_BUFFERS_SIZE_BYTES_MAX: u64 = 1 << 30;
/// Why 1024: a burst of connects beyond the backlog waits a SYN retransmit
/// (1 s) each; Linux caps the value at `net.core.somaxconn` (4096 since
/// 5.4).
pub const DEFAULT_LISTEN_BACKLOG: u32 = 1024;
/// Why 10 s: a membership change commits in milliseconds and a learner
/// of a small store catches up in well under a second; an unreachable
/// address should be reported while the operator still waits for it.
pub const DEFAULT_ADMIN_TIMEOUT_MS: u64 = 10_000;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7379";
pub const DEFAULT_TEXT_LISTEN: &str = "127.0.0.1:7381";
/// After RESP (7379), the peer port (7380) and text (7381).
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:7382";
pub const DEFAULT_DATA_DIR: &str = "./strata-data";

impl ConfigLayer {
    pub fn from_file(path: &std::path::Path) -> Result<ConfigLayer, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// `self` wins where set; `lower` fills the gaps.
    pub fn over(self, lower: ConfigLayer) -> ConfigLayer {
        ConfigLayer {
            listen: self.listen.or(lower.listen),
            text_listen: self.text_listen.or(lower.text_listen),
            http_listen: self.http_listen.or(lower.http_listen),
            data_dir: self.data_dir.or(lower.data_dir),
            fsync: self.fsync.or(lower.fsync),
            connections_max: self.connections_max.or(lower.connections_max),
            idle_timeout_ms: self.idle_timeout_ms.or(lower.idle_timeout_ms),
            request_timeout_ms: self.request_timeout_ms.or(lower.request_timeout_ms),
            client_buffers_size_bytes_max: self
                .client_buffers_size_bytes_max
                .or(lower.client_buffers_size_bytes_max),
            listen_backlog: self.listen_backlog.or(lower.listen_backlog),
            key_size_bytes_max: self.key_size_bytes_max.or(lower.key_size_bytes_max),
            value_size_bytes_max: self.value_size_bytes_max.or(lower.value_size_bytes_max),
            request_size_bytes_max: self.request_size_bytes_max.or(lower.request_size_bytes_max),
            request_args_max: self.request_args_max.or(lower.request_args_max),
            reply_elements_max: self.reply_elements_max.or(lower.reply_elements_max),
            cache_size_bytes: self.cache_size_bytes.or(lower.cache_size_bytes),
            read_cache_size_bytes: self.read_cache_size_bytes.or(lower.read_cache_size_bytes),
            search_cache_size_bytes: self
                .search_cache_size_bytes
                .or(lower.search_cache_size_bytes),
            memtable_size_bytes: self.memtable_size_bytes.or(lower.memtable_size_bytes),
            journal_size_bytes_max: self.journal_size_bytes_max.or(lower.journal_size_bytes_max),
            write_queue_len_max: self.write_queue_len_max.or(lower.write_queue_len_max),
            shutdown_timeout_ms: self.shutdown_timeout_ms.or(lower.shutdown_timeout_ms),
            io_threads: self.io_threads.or(lower.io_threads),
            node_id: self.node_id.or(lower.node_id),
            peer_listen: self.peer_listen.or(lower.peer_listen),
            peer_advertise: self.peer_advertise.or(lower.peer_advertise),
            initial_cluster: self.initial_cluster.or(lower.initial_cluster),
            join: self.join.or(lower.join),
            join_as: self.join_as.or(lower.join_as),
            heartbeat_ms: self.heartbeat_ms.or(lower.heartbeat_ms),
            election_timeout_ms: self.election_timeout_ms.or(lower.election_timeout_ms),
            snapshot_logs: self.snapshot_logs.or(lower.snapshot_logs),
            forward_timeout_ms: self.forward_timeout_ms.or(lower.forward_timeout_ms),
            cluster_secret_file: self.cluster_secret_file.or(lower.cluster_secret_file),
            protected_mode: self.protected_mode.or(lower.protected_mode),
            admin_timeout_ms: self.admin_timeout_ms.or(lower.admin_timeout_ms),
            slowlog_log_slower_than: self
                .slowlog_log_slower_than
                .or(lower.slowlog_log_slower_than),
            slowlog_max_len: self.slowlog_max_len.or(lower.slowlog_max_len),
            backup_idle_timeout_ms: self.backup_idle_timeout_ms.or(lower.backup_idle_timeout_ms),
            embedding_model: self.embedding_model.or(lower.embedding_model),
        }
    }
}

/// One network thread per core but one, at least one: the storage writer
/// thread needs a core of its own (it applies every write, and compactions
/// run beside it). Measured on 2 cores with redis-benchmark -c 50 on the
/// same machine (docs/perf-log/2026-11-23-network-threads.md): 1 thread beat 2 on
/// GET (+25% with -P 16, +7% without) and on unpipelined SET (+6% with
/// fsync always, +20% with periodic), and tied on SET -P 16: two network
/// threads and the writer on two cores spend their time waking each other.
fn default_io_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1).max(1))
        .unwrap_or(1)
}

/// A listener's address, or None for `off` (or nothing).
fn listen_or_off(name: &'static str, s: &str) -> Result<Option<SocketAddr>, ConfigError> {
    match s {
        "off" | "" => Ok(None),
        addr => parse_addr(name, addr).map(Some),
    }
}

fn parse_addr(name: &'static str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse().map_err(|_| ConfigError::Invalid {
        name,
        message: format!("{s:?} is not an address like 127.0.0.1:7379"),
    })
}

/// 30 days: longer than any client should sit idle, far from overflow.
const IDLE_TIMEOUT_MS_MAX: u64 = 30 * 24 * 3_600_000;

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    name: &'static str,
    v: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    if v < min || v > max {
        return Err(ConfigError::Invalid {
            name,
            message: format!("{v} is outside {min}..={max}"),
        });
    }
    Ok(v)
}

fn at_least<T: PartialOrd + std::fmt::Display + Copy>(
    name: &'static str,
    v: T,
    min: T,
) -> Result<T, ConfigError> {
    if v < min {
        return Err(ConfigError::Invalid {
            name,
            message: format!("{v} is below the minimum {min}"),
        });
    }
    Ok(v)
}

/// The storage settings of `layer`, validated.
fn resolve_storage(layer: &ConfigLayer) -> Result<StorageConfig, ConfigError> {
    let mut storage = StorageConfig::new(
        layer
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
    );
    if let Some(f) = &layer.fsync {
        storage.fsync = f
            .parse::<FsyncPolicy>()
            .map_err(|message| ConfigError::Invalid {
                name: "fsync",
                message,
            })?;
    }
    fn given<T: Copy>(value: Option<T>, field: &mut T) {
        if let Some(v) = value {
            *field = v;
        }
    }
    given(layer.key_size_bytes_max, &mut storage.key_size_bytes_max);
    given(
        layer.value_size_bytes_max,
        &mut storage.value_size_bytes_max,
    );
    given(layer.cache_size_bytes, &mut storage.cache_size_bytes);
    given(
        layer.read_cache_size_bytes,
        &mut storage.read_cache_size_bytes,
    );
    given(
        layer.search_cache_size_bytes,
        &mut storage.search_cache_size_bytes,
    );
    given(layer.memtable_size_bytes, &mut storage.memtable_size_bytes);
    given(
        layer.journal_size_bytes_max,
        &mut storage.journal_size_bytes_max,
    );
    if let Some(v) = layer.write_queue_len_max {
        storage.write_queue_len_max = at_least("write-queue-len-max", v, 1)?;
    }
    storage.validate().map_err(|message| ConfigError::Invalid {
        name: "storage",
        message,
    })?;
    Ok(storage)
}

/// `request-size-bytes-max`: a request must be able to carry the largest
/// key and value, plus framing; otherwise the value limit would be
/// unreachable.
fn resolve_request_size(
    layer: &ConfigLayer,
    storage: &StorageConfig,
) -> Result<usize, ConfigError> {
    let request_size_bytes_max = layer.request_size_bytes_max.unwrap_or(64 * 1024 * 1024);
    let request_floor = storage.value_size_bytes_max + storage.key_size_bytes_max + 1024;
    if request_size_bytes_max < request_floor {
        return Err(ConfigError::Invalid {
            name: "request-size-bytes-max",
            message: format!(
                "{request_size_bytes_max} is too small to carry the largest key and value; it must be at least {request_floor}"
            ),
        });
    }
    Ok(request_size_bytes_max)
}

impl ServerConfig {
    /// Resolves a merged layer against the defaults and validates it.
    // Why ~80 lines: one field per setting, each with its default and its
    // bound, in the order of `ServerConfig`.
    pub fn resolve(layer: ConfigLayer) -> Result<ServerConfig, ConfigError> {
        let cluster = resolve_cluster(&layer)?;
        let listen = parse_addr("listen", layer.listen.as_deref().unwrap_or(DEFAULT_LISTEN))?;
        let text_listen = listen_or_off(
            "text-listen",
            layer.text_listen.as_deref().unwrap_or(DEFAULT_TEXT_LISTEN),
        )?;
        let http_listen = listen_or_off(
            "http-listen",
            layer.http_listen.as_deref().unwrap_or(DEFAULT_HTTP_LISTEN),
        )?;
        let storage = resolve_storage(&layer)?;
        let request_size_bytes_max = resolve_request_size(&layer, &storage)?;
        Ok(ServerConfig {
            listen,
            text_listen,
            http_listen,
            connections_max: at_least("connections-max", layer.connections_max.unwrap_or(4096), 1)?,
            // Bounded: a deadline is `now + timeout`, which must not
            // overflow (0 switches the idle timeout off).
            idle_timeout_ms: in_range(
                "idle-timeout-ms",
                layer.idle_timeout_ms.unwrap_or(300_000),
                0,
                IDLE_TIMEOUT_MS_MAX,
            )?,
            request_timeout_ms: in_range(
                "request-timeout-ms",
                layer
                    .request_timeout_ms
                    .unwrap_or(DEFAULT_REQUEST_TIMEOUT_MS),
                100,
                3_600_000,
            )?,
            client_buffers_size_bytes_max: in_range(
                "client-buffers-size-bytes-max",
                layer
                    .client_buffers_size_bytes_max
                    .unwrap_or(DEFAULT_CLIENT_BUFFERS_SIZE_BYTES_MAX),
                1 << 20,
                1 << 50,
            )?,
            listen_backlog: in_range(
                "listen-backlog",
                layer.listen_backlog.unwrap_or(DEFAULT_LISTEN_BACKLOG),
                16,
                65_535,
            )?,
            request_size_bytes_max,
            request_args_max: at_least(
                "request-args-max",
                layer.request_args_max.unwrap_or(1024 * 1024),
                3,
            )?,
            reply_elements_max: at_least(
                "reply-elements-max",
                layer.reply_elements_max.unwrap_or(1_000_000),
                1,
            )?,
            shutdown_timeout_ms: in_range(
                "shutdown-timeout-ms",
                layer.shutdown_timeout_ms.unwrap_or(10_000),
                0,
                3_600_000,
            )?,
            io_threads: match layer.io_threads {
                Some(n) => in_range("io-threads", n, 1, 256)?,
                None => default_io_threads(),
            },
            storage,
            cluster,
            protected_mode: match layer.protected_mode.as_deref() {
                None => true,
                Some(v) => parse_yes_no("protected-mode", v)?,
            },
            slowlog_log_slower_than_us: layer
                .slowlog_log_slower_than
                .unwrap_or(crate::cmd::slowlog::DEFAULT_SLOWER_THAN_US),
            slowlog_max_len: in_range(
                "slowlog-max-len",
                layer
                    .slowlog_max_len
                    .unwrap_or(crate::cmd::slowlog::DEFAULT_LEN_MAX),
                0,
                crate::cmd::slowlog::LEN_MAX,
            )?,
            backup_idle_timeout_ms: in_range(
                "backup-idle-timeout-ms",
                layer
                    .backup_idle_timeout_ms
                    .unwrap_or(crate::backup::DEFAULT_IDLE_TIMEOUT_MS),
                100,
                3_600_000,
            )?,
            embedding_model: layer.embedding_model,
        })
    }

    /// Settings as `(name, value)` for CONFIG GET and INFO, names as flags.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let s = &self.storage;
        vec![
            ("listen", self.listen.to_string()),
            (
                "text-listen",
                self.text_listen
                    .map_or_else(|| "off".to_string(), |a| a.to_string()),
            ),
            (
                "http-listen",
                self.http_listen
                    .map_or_else(|| "off".to_string(), |a| a.to_string()),
            ),
            ("data-dir", s.data_dir.display().to_string()),
            ("fsync", s.fsync.to_string()),
            ("connections-max", self.connections_max.to_string()),
            ("idle-timeout-ms", self.idle_timeout_ms.to_string()),
            ("request-timeout-ms", self.request_timeout_ms.to_string()),
            (
                "client-buffers-size-bytes-max",
                self.client_buffers_size_bytes_max.to_string(),
            ),
            ("listen-backlog", self.listen_backlog.to_string()),
            ("key-size-bytes-max", s.key_size_bytes_max.to_string()),
            ("value-size-bytes-max", s.value_size_bytes_max.to_string()),
            (
                "request-size-bytes-max",
                self.request_size_bytes_max.to_string(),
            ),
            ("request-args-max", self.request_args_max.to_string()),
            ("reply-elements-max", self.reply_elements_max.to_string()),
            ("cache-size-bytes", s.cache_size_bytes.to_string()),
            ("read-cache-size-bytes", s.read_cache_size_bytes.to_string()),
            (
                "search-cache-size-bytes",
                s.search_cache_size_bytes.to_string(),
            ),
            ("memtable-size-bytes", s.memtable_size_bytes.to_string()),
            (
                "journal-size-bytes-max",
                s.journal_size_bytes_max.to_string(),
            ),
            ("write-queue-len-max", s.write_queue_len_max.to_string()),
            ("shutdown-timeout-ms", self.shutdown_timeout_ms.to_string()),
            ("io-threads", self.io_threads.to_string()),
            // Redis's name too, so tools that check it find it.
            (
                "protected-mode",
                if self.protected_mode { "yes" } else { "no" }.to_string(),
            ),
            (
                "node-id",
                self.cluster
                    .as_ref()
                    .map_or_else(String::new, |c| c.node_id.to_string()),
            ),
            (
                "admin-timeout-ms",
                self.cluster
                    .as_ref()
                    .map_or_else(String::new, |c| c.admin_timeout_ms.to_string()),
            ),
            // Redis's names and units (µs); CONFIG GET shows the live
            // values, which CONFIG SET may have changed.
            (
                "slowlog-log-slower-than",
                self.slowlog_log_slower_than_us.to_string(),
            ),
            ("slowlog-max-len", self.slowlog_max_len.to_string()),
            (
                "backup-idle-timeout-ms",
                self.backup_idle_timeout_ms.to_string(),
            ),
            (
                "embedding-model",
                self.embedding_model
                    .as_ref()
                    .map_or_else(String::new, |d| d.display().to_string()),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Config files are untrusted input: any text either parses into a
        /// layer or is refused with an error, never a panic; and any numbers
        /// either resolve into a valid configuration or are refused.
        #[test]
        fn any_file_text_is_parsed_or_refused(text in "\\PC{0,200}") {
            let _ = toml::from_str::<ConfigLayer>(&text);
        }

        #[test]
        fn any_numbers_resolve_or_are_refused(
            key in proptest::option::of(0usize..100_000),
            value in proptest::option::of(0usize..1 << 30),
            request in proptest::option::of(0usize..1 << 31),
            memtable in proptest::option::of(0u64..1 << 30),
            journal in proptest::option::of(0u64..1 << 31),
            cache in proptest::option::of(0u64..1 << 31),
            read_cache in proptest::option::of(0u64..1 << 42),
            conns in proptest::option::of(0usize..10_000),
            io in proptest::option::of(0usize..1000),
        ) {
            let layer = ConfigLayer {
                key_size_bytes_max: key,
                value_size_bytes_max: value,
                request_size_bytes_max: request,
                memtable_size_bytes: memtable,
                journal_size_bytes_max: journal,
                cache_size_bytes: cache,
                read_cache_size_bytes: read_cache,
                connections_max: conns,
                io_threads: io,
                ..Default::default()
            };
            if let Ok(c) = ServerConfig::resolve(layer) {
                prop_assert!(c.storage.validate().is_ok());
                prop_assert!(c.request_size_bytes_max > c.storage.value_size_bytes_max);
                prop_assert!(c.connections_max >= 1 && c.io_threads >= 1);
            }
        }
    }

    #[test]
    fn flags_over_env_over_file_over_defaults() {
        let file: ConfigLayer = toml::from_str(
            "listen = \"127.0.0.1:1\"\nfsync = \"never\"\nvalue_size_bytes_max = 1024\n",
        )
        .unwrap();
        let flags = ConfigLayer {
            listen: Some("127.0.0.1:2".into()),
            ..Default::default()
        };
        let c = ServerConfig::resolve(flags.over(file)).unwrap();
        assert_eq!(c.listen.port(), 2);
        assert_eq!(c.storage.fsync, FsyncPolicy::Never);
        assert_eq!(c.storage.value_size_bytes_max, 1024);
        assert_eq!(c.connections_max, 4096);
    }

    /// A peer address other hosts can reach needs a secret, or an
    /// explicit `none`; loopback keeps working without one.
    #[test]
    fn a_non_loopback_peer_address_needs_a_secret_or_an_explicit_none() {
        let layer = |peer: &str, secret: Option<String>| ConfigLayer {
            node_id: Some(1),
            initial_cluster: Some(format!("1={peer}")),
            peer_listen: Some(peer.into()),
            cluster_secret_file: secret,
            ..Default::default()
        };
        let secret_of = |l| ServerConfig::resolve(l).map(|c| c.cluster.unwrap().cluster_secret);
        assert!(secret_of(layer("127.0.0.1:7380", None)).unwrap().is_none());
        let refused = secret_of(layer("0.0.0.0:7380", None))
            .unwrap_err()
            .to_string();
        assert!(refused.contains("--cluster-secret-file none"), "{refused}");
        assert!(
            secret_of(layer("0.0.0.0:7380", Some("none".into())))
                .unwrap()
                .is_none()
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "0123456789abcdef0123\n").unwrap();
        let file = Some(path.display().to_string());
        assert!(!secret_of(layer("0.0.0.0:7380", file)).unwrap().is_none());
        let missing = Some(dir.path().join("nope").display().to_string());
        assert!(secret_of(layer("127.0.0.1:7380", missing)).is_err());
    }

    /// `--peer-advertise`: HOST:PORT, a DNS name allowed; a founding
    /// node's must be its `--initial-cluster` entry; setting it alone
    /// turns cluster mode on (and so asks for a node id).
    #[test]
    fn peer_advertise_is_host_port_and_agrees_with_initial_cluster() {
        let layer = |initial: Option<&str>, join: Option<&str>, advertise: &str| ConfigLayer {
            node_id: Some(4),
            initial_cluster: initial.map(Into::into),
            join: join.map(Into::into),
            peer_advertise: Some(advertise.into()),
            ..Default::default()
        };
        let advertised = |l| ServerConfig::resolve(l).map(|c| c.cluster.unwrap().peer_advertise);
        let name = "strata-3.strata-peer:7380";
        assert_eq!(
            advertised(layer(None, Some("strata-peer:7380"), name)).unwrap(),
            Some(name.to_string())
        );
        let founders = "1=a:7380,4=strata-3.strata-peer:7380";
        assert_eq!(
            advertised(layer(Some(founders), None, name)).unwrap(),
            Some(name.to_string())
        );
        let refused = advertised(layer(Some(founders), None, "b:7380"))
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("peer-advertise") && refused.contains("initial-cluster"),
            "{refused}"
        );
        for bad in ["strata-3", ":7380", "host:0", "host:99999", "host:x"] {
            let refused = advertised(layer(None, Some("m:7380"), bad));
            assert!(refused.is_err(), "{bad} accepted");
        }
        let long = format!("{}:7380", "h".repeat(300));
        assert!(advertised(layer(None, Some("m:7380"), &long)).is_err());
        let alone = ConfigLayer {
            peer_advertise: Some(name.into()),
            ..Default::default()
        };
        let refused = ServerConfig::resolve(alone).unwrap_err().to_string();
        assert!(refused.contains("node-id"), "{refused}");
        // Not given: none, as before.
        let plain = ConfigLayer {
            node_id: Some(1),
            initial_cluster: Some("1=127.0.0.1:1".into()),
            ..Default::default()
        };
        assert_eq!(advertised(plain).unwrap(), None);
    }

    /// Raft timing: an election timeout of at least three heartbeats,
    /// refused (not an overflow) for a heartbeat too large to triple.
    #[test]
    fn election_timeout_spans_three_heartbeats() {
        let timing = |heartbeat_ms, election_timeout_ms| {
            ServerConfig::resolve(ConfigLayer {
                node_id: Some(1),
                initial_cluster: Some("1=127.0.0.1:1".into()),
                heartbeat_ms,
                election_timeout_ms,
                ..Default::default()
            })
            .map(|c| {
                let cluster = c.cluster.unwrap();
                (cluster.heartbeat_ms, cluster.election_timeout_ms)
            })
        };
        assert_eq!(timing(None, None).unwrap(), (100, 400));
        assert_eq!(timing(Some(50), Some(150)).unwrap(), (50, 150));
        let refused = timing(Some(50), Some(149)).unwrap_err().to_string();
        assert!(refused.contains("election-timeout-ms"), "{refused}");
        assert!(timing(Some(9), Some(1_000)).is_err());
        // Tripled with wrapping, this heartbeat would be 2 ms.
        assert!(timing(Some(u64::MAX / 3 + 1), None).is_err());
    }

    /// `--http-listen`: on by default on the port after text's, `off` (or
    /// empty) turns it off, port 0 is kept for the OS to choose, and it
    /// comes from a flag or the file like every setting.
    #[test]
    fn http_listen_defaults_turns_off_and_parses() {
        let http = |v: Option<&str>| {
            ServerConfig::resolve(ConfigLayer {
                http_listen: v.map(String::from),
                ..Default::default()
            })
            .map(|c| c.http_listen)
        };
        assert_eq!(
            http(None).unwrap(),
            Some(DEFAULT_HTTP_LISTEN.parse().unwrap())
        );
        assert_eq!(http(None).unwrap().unwrap().port(), 7382);
        assert_eq!(http(Some("off")).unwrap(), None);
        assert_eq!(http(Some("")).unwrap(), None);
        assert_eq!(
            http(Some("127.0.0.1:0")).unwrap(),
            Some("127.0.0.1:0".parse().unwrap())
        );
        assert_eq!(
            http(Some("[::1]:8500")).unwrap(),
            Some("[::1]:8500".parse().unwrap())
        );
        for bad in [
            "OFF",
            "localhost:7382",
            "127.0.0.1",
            "127.0.0.1:99999",
            " off",
        ] {
            let e = http(Some(bad)).unwrap_err().to_string();
            assert!(e.contains("http-listen"), "{bad:?}: {e}");
        }
        let file: ConfigLayer = toml::from_str("http_listen = \"off\"\n").unwrap();
        let flags = ConfigLayer {
            http_listen: Some("127.0.0.1:9".into()),
            ..Default::default()
        };
        let c = ServerConfig::resolve(flags.over(file.clone())).unwrap();
        assert_eq!(c.http_listen, Some("127.0.0.1:9".parse().unwrap()));
        let c = ServerConfig::resolve(file).unwrap();
        assert_eq!(c.http_listen, None);
        assert!(c.settings().contains(&("http-listen", "off".to_string())));
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            layer: ConfigLayer,
        }
        use clap::Parser as _;
        let flags = Flags::try_parse_from(["x", "--http-listen", "off"]).unwrap();
        assert_eq!(flags.layer.http_listen.as_deref(), Some("off"));
    }

    #[test]
    fn protected_mode_is_on_unless_turned_off() {
        let mode = |v: Option<&str>| {
            ServerConfig::resolve(ConfigLayer {
                protected_mode: v.map(String::from),
                ..Default::default()
            })
            .map(|c| c.protected_mode)
        };
        assert!(mode(None).unwrap());
        assert!(mode(Some("yes")).unwrap());
        assert!(!mode(Some("no")).unwrap());
        assert!(mode(Some("maybe")).is_err());
        let file: ConfigLayer = toml::from_str("protected_mode = \"no\"\n").unwrap();
        assert_eq!(file.protected_mode.as_deref(), Some("no"));
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(toml::from_str::<ConfigLayer>("no_such_setting = 1").is_err());
        let bad = |l: ConfigLayer| ServerConfig::resolve(l).is_err();
        assert!(bad(ConfigLayer {
            fsync: Some("sometimes".into()),
            ..Default::default()
        }));
        assert!(bad(ConfigLayer {
            listen: Some("nowhere".into()),
            ..Default::default()
        }));
        assert!(bad(ConfigLayer {
            key_size_bytes_max: Some(70_000),
            ..Default::default()
        }));
        assert!(bad(ConfigLayer {
            request_size_bytes_max: Some(10),
            ..Default::default()
        }));
        for l in [
            ConfigLayer {
                request_timeout_ms: Some(0),
                ..Default::default()
            },
            ConfigLayer {
                client_buffers_size_bytes_max: Some(1000),
                ..Default::default()
            },
            ConfigLayer {
                listen_backlog: Some(1),
                ..Default::default()
            },
            ConfigLayer {
                listen_backlog: Some(1 << 20),
                ..Default::default()
            },
        ] {
            assert!(bad(l));
        }
    }

    #[test]
    fn slowlog_settings_come_from_flags_env_and_file() {
        let c = ServerConfig::resolve(ConfigLayer::default()).unwrap();
        assert_eq!(
            (c.slowlog_log_slower_than_us, c.slowlog_max_len),
            (10_000, 128)
        );
        let file: ConfigLayer =
            toml::from_str("slowlog_log_slower_than = \"5ms\"\nslowlog_max_len = 7\n").unwrap();
        let c = ServerConfig::resolve(file.clone()).unwrap();
        assert_eq!(
            (c.slowlog_log_slower_than_us, c.slowlog_max_len),
            (5_000, 7)
        );
        let file: ConfigLayer = toml::from_str("slowlog_log_slower_than = -1\n").unwrap();
        let c = ServerConfig::resolve(file).unwrap();
        assert_eq!(c.slowlog_log_slower_than_us, -1);
        let shown = c.settings();
        assert!(shown.contains(&("slowlog-log-slower-than", "-1".to_string())));
        assert!(shown.contains(&("slowlog-max-len", "128".to_string())));
        assert!(
            ServerConfig::resolve(ConfigLayer {
                slowlog_max_len: Some(1_000_000),
                ..Default::default()
            })
            .is_err()
        );
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            layer: ConfigLayer,
        }
        use clap::Parser as _;
        let flags = Flags::try_parse_from(["x", "--slowlog-log-slower-than", "-1"]).unwrap();
        assert_eq!(flags.layer.slowlog_log_slower_than, Some(-1));
        let flags = Flags::try_parse_from(["x", "--slowlog-log-slower-than", "2ms"]).unwrap();
        assert_eq!(flags.layer.slowlog_log_slower_than, Some(2_000));
    }

    #[test]
    fn bounds_have_documented_defaults_and_are_shown() {
        let c = ServerConfig::resolve(ConfigLayer::default()).unwrap();
        assert_eq!(c.request_timeout_ms, 30_000);
        assert_eq!(c.client_buffers_size_bytes_max, 1 << 30);
        assert_eq!(c.listen_backlog, 1024);
        let shown = c.settings();
        for name in [
            "request-timeout-ms",
            "client-buffers-size-bytes-max",
            "listen-backlog",
            "admin-timeout-ms",
        ] {
            assert!(shown.iter().any(|(n, _)| *n == name), "{name}");
        }
        let cluster = ConfigLayer {
            node_id: Some(1),
            initial_cluster: Some("1=127.0.0.1:1".into()),
            ..Default::default()
        };
        let c = ServerConfig::resolve(cluster.clone()).unwrap();
        assert_eq!(c.cluster.unwrap().admin_timeout_ms, 10_000);
        assert!(
            ServerConfig::resolve(ConfigLayer {
                admin_timeout_ms: Some(10),
                ..cluster
            })
            .is_err()
        );
    }
}
