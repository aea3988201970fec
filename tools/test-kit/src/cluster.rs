//! A cluster of real `strata server` processes on loopback: start, find
//! the leader, kill -9 / SIGTERM / SIGSTOP / restart nodes on the same data
//! directory and ports, read `INFO` and `CLUSTER INFO` fields.
//!
//! Contract with the server (cluster mode):
//!
//! * flags `--node-id`, `--peer-listen`, `--initial-cluster id=addr,...`
//!   or `--join addr --join-as learner|voter`, `--heartbeat-ms`,
//!   `--election-timeout-ms`, `--snapshot-logs`, `--forward-timeout-ms`;
//! * after binding, exactly one line on stdout:
//!   `ready resp=<addr> text=<addr|off> http=<addr|off> peer=<addr> node=<id>`
//!   (words may be added; an older server has no `http=`);
//! * `CLUSTER LEADER` answers `[id, peer_addr, client_addr]` or nil,
//!   `CLUSTER INFO` answers `key:value` lines.
//!
//! Ports are chosen before a node starts (bind `127.0.0.1:0`, note the
//! port, release it) so that a restarted node comes back on the same RESP
//! and peer ports: clients and the other nodes find it where it was. A
//! start never retries on another port.
//!
//! Every wait is bounded. Every child is killed when its [`Node`] is
//! dropped, and on Linux also when the thread that spawned it dies
//! (`PR_SET_PDEATHSIG`): spawn nodes from the thread that owns the cluster.

use std::collections::{BTreeMap, HashSet};
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use strata_client::resp::Reply;
use strata_client::{Client, ClientOptions};

/// The variable that sets the server's HTTP listener, and the address
/// every spawned server gets unless told otherwise: by the environment, so
/// that older builds (which have no HTTP listener) ignore it.
pub const HTTP_LISTEN_ENV: &str = "STRATA_HTTP_LISTEN";
pub const EPHEMERAL: &str = "127.0.0.1:0";

/// How long a node may take to print its ready line (recovery replays the
/// journal and the Raft log first).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on one admin/status request made by the harness.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on a killed process disappearing.
const KILL_WAIT: Duration = Duration::from_secs(30);
/// Poll interval of the harness's waits.
pub const POLL: Duration = Duration::from_millis(25);

/// Ports handed out by [`free_port`] in this process, never handed out
/// twice.
fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A loopback port that was free a moment ago: bind `127.0.0.1:0`, note
/// the port, release it. Never returns the same port twice in one process.
pub fn free_port() -> anyhow::Result<u16> {
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        drop(listener);
        let mut ports = handed_out().lock().unwrap_or_else(|e| e.into_inner());
        if ports.insert(port) {
            return Ok(port);
        }
    }
    bail!("no fresh loopback port after 100 tries")
}

/// `127.0.0.1:<free port>`.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(SocketAddr::from(([127, 0, 0, 1], free_port()?)))
}

/// 64 hex digits from the process's OS-seeded hasher keys and the clock:
/// unpredictable enough for a test cluster's secret, no extra dependency.
pub fn random_secret() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::with_capacity(64);
    for i in 0..4u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// Writes a secret file readable by its owner only.
pub fn write_secret_file(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    writeln!(file, "{secret}").with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

/// What the ready line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub resp: SocketAddr,
    pub text: Option<SocketAddr>,
    /// The HTTP listener (None: `off`, or a server without one).
    pub http: Option<SocketAddr>,
    pub peer: Option<SocketAddr>,
    pub node: Option<u64>,
}

/// `off` or an address.
fn addr_or_off(v: &str) -> Option<Option<SocketAddr>> {
    if v == "off" {
        Some(None)
    } else {
        v.parse().ok().map(Some)
    }
}

/// Parses `ready resp=<addr> text=<addr|off> [http=<addr|off>]
/// [peer=<addr> node=<id>]`.
pub fn parse_ready_line(line: &str) -> Option<Ready> {
    let mut words = line.split_whitespace();
    if words.next()? != "ready" {
        return None;
    }
    let (mut resp, mut text, mut http, mut peer, mut node) = (None, None, None, None, None);
    for word in words {
        if let Some(v) = word.strip_prefix("resp=") {
            resp = Some(v.parse().ok()?);
        } else if let Some(v) = word.strip_prefix("text=") {
            text = addr_or_off(v)?;
        } else if let Some(v) = word.strip_prefix("http=") {
            http = addr_or_off(v)?;
        } else if let Some(v) = word.strip_prefix("peer=") {
            peer = Some(v.parse().ok()?);
        } else if let Some(v) = word.strip_prefix("node=") {
            node = Some(v.parse().ok()?);
        }
    }
    Some(Ready {
        resp: resp?,
        text,
        http,
        peer,
        node,
    })
}

/// How a joining node enters the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinAs {
    Learner,
    Voter,
}

impl JoinAs {
    pub fn as_str(self) -> &'static str {
        match self {
            JoinAs::Learner => "learner",
            JoinAs::Voter => "voter",
        }
    }
}

/// What `CLUSTER LEADER` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderView {
    pub id: u64,
    pub peer_addr: String,
    pub client_addr: String,
}

/// Parses a `CLUSTER LEADER` reply (`None`: nil, no leader known).
pub fn parse_leader_reply(reply: &Reply) -> anyhow::Result<Option<LeaderView>> {
    match reply {
        Reply::Null | Reply::NullArray => Ok(None),
        Reply::Array(items) if items.len() >= 3 => {
            let id = match &items[0] {
                Reply::Integer(n) if *n > 0 => *n as u64,
                Reply::Bulk(b) => String::from_utf8_lossy(b)
                    .parse()
                    .with_context(|| format!("leader id {b:?}"))?,
                other => bail!("unexpected leader id {other:?}"),
            };
            Ok(Some(LeaderView {
                id,
                peer_addr: reply_text(&items[1]).unwrap_or_default(),
                client_addr: reply_text(&items[2]).unwrap_or_default(),
            }))
        }
        Reply::Error(e) => bail!("CLUSTER LEADER: {e}"),
        other => bail!("unexpected CLUSTER LEADER reply {other:?}"),
    }
}

/// The text of a bulk, verbatim or status reply.
pub fn reply_text(reply: &Reply) -> Option<String> {
    match reply {
        Reply::Bulk(b) | Reply::Verbatim { text: b, .. } | Reply::BigNumber(b) => {
            Some(String::from_utf8_lossy(b).into_owned())
        }
        Reply::Status(s) => Some(s.to_string()),
        Reply::Integer(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses `key:value` lines (INFO, CLUSTER INFO); `#` lines are skipped.
pub fn parse_fields(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A RESP connection with bounded waits.
pub fn connect(addr: SocketAddr, timeout: Duration) -> anyhow::Result<Client> {
    let ms = timeout.as_millis().max(1) as u64;
    Client::connect_with(
        &addr.to_string(),
        ClientOptions {
            connect_timeout_ms: ms.min(5_000),
            io_timeout_ms: ms,
            ..ClientOptions::default()
        },
    )
    .with_context(|| format!("connect to {addr}"))
}

/// One command on a fresh connection; an error reply is `Ok(Reply::Error)`.
pub fn call_once(addr: SocketAddr, args: &[&str], timeout: Duration) -> anyhow::Result<Reply> {
    let mut client = connect(addr, timeout)?;
    client
        .call(args)
        .with_context(|| format!("{} on {addr}", args.join(" ")))
}

/// The settings of a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub bin: PathBuf,
    /// Bootstrap nodes, ids `1..=nodes`.
    pub nodes: u64,
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
    pub snapshot_logs: Option<u64>,
    pub forward_timeout_ms: Option<u64>,
    /// `--fsync` for every node (server default if `None`).
    pub fsync: Option<String>,
    /// More flags for every node.
    pub extra_args: Vec<String>,
    /// `RUST_LOG` for the nodes.
    pub rust_log: String,
    /// The peer address the *other* nodes use for a node, when it is not
    /// the node's own listen address (e.g. a fault proxy's listener).
    pub advertise: BTreeMap<u64, SocketAddr>,
    /// Where the nodes' directories go; a fresh temp dir if `None`.
    pub base_dir: Option<PathBuf>,
    /// Run every node with `--cluster-secret-file`: [`Cluster::prepare`]
    /// writes a fresh random secret into the cluster's directory, unless
    /// `secret_file` names one already.
    pub cluster_secret: bool,
    /// The secret file passed to every node (set by `prepare` when it
    /// generates one).
    pub secret_file: Option<PathBuf>,
}

impl ClusterConfig {
    /// Fast failure detection for tests: 50 ms heartbeats, 300 ms minimum
    /// election timeout.
    pub fn new(bin: impl Into<PathBuf>, nodes: u64) -> ClusterConfig {
        ClusterConfig {
            bin: bin.into(),
            nodes,
            heartbeat_ms: 50,
            election_timeout_ms: 300,
            snapshot_logs: None,
            forward_timeout_ms: None,
            fsync: None,
            extra_args: Vec::new(),
            rust_log: "info".into(),
            advertise: BTreeMap::new(),
            base_dir: None,
            cluster_secret: false,
            secret_file: None,
        }
    }

    fn common_args(&self) -> Vec<String> {
        let mut args = vec![
            "--heartbeat-ms".to_string(),
            self.heartbeat_ms.to_string(),
            "--election-timeout-ms".to_string(),
            self.election_timeout_ms.to_string(),
        ];
        if let Some(n) = self.snapshot_logs {
            args.extend(["--snapshot-logs".to_string(), n.to_string()]);
        }
        if let Some(ms) = self.forward_timeout_ms {
            args.extend(["--forward-timeout-ms".to_string(), ms.to_string()]);
        }
        if let Some(fsync) = &self.fsync {
            args.extend(["--fsync".to_string(), fsync.clone()]);
        }
        if let Some(path) = &self.secret_file {
            args.extend([
                "--cluster-secret-file".to_string(),
                path.display().to_string(),
            ]);
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// One server process (or its stopped state: same ports, same data dir).
pub struct Node {
    pub id: u64,
    pub resp_addr: SocketAddr,
    /// Where the node listens for peers.
    pub peer_listen: SocketAddr,
    /// Where the other nodes reach it (a proxy, or `peer_listen`).
    pub peer_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    bin: PathBuf,
    /// Everything after `server`.
    args: Vec<String>,
    rust_log: String,
    /// Extra environment of the process (set after the inherited
    /// `STRATA_*` variables are removed).
    env: Vec<(String, String)>,
    child: Option<Child>,
    /// How many times this node was started.
    pub starts: u32,
    pub last_ready: Option<Ready>,
    /// Exit status of the last incarnation, once reaped.
    pub last_exit: Option<ExitStatus>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("resp_addr", &self.resp_addr)
            .field("peer_listen", &self.peer_listen)
            .field("peer_addr", &self.peer_addr)
            .field("running", &self.child.is_some())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// A node that is not started yet. `cluster_args` are the membership
    /// flags (`--initial-cluster ...` or `--join ...`) and any other flag.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        bin: &Path,
        id: u64,
        resp_addr: SocketAddr,
        peer_listen: SocketAddr,
        peer_addr: SocketAddr,
        dir: &Path,
        cluster_args: Vec<String>,
        rust_log: &str,
    ) -> Node {
        let data_dir = dir.join("data");
        let mut args = vec!["--listen".to_string(), resp_addr.to_string()];
        // No text port, unless the test asks for one in its extra args
        // (its address is then in `last_ready`).
        if !cluster_args.iter().any(|a| a == "--text-listen") {
            args.extend(["--text-listen".to_string(), "off".to_string()]);
        }
        args.extend([
            "--data-dir".to_string(),
            data_dir.display().to_string(),
            "--node-id".to_string(),
            id.to_string(),
            "--peer-listen".to_string(),
            peer_listen.to_string(),
        ]);
        args.extend(cluster_args);
        Node {
            id,
            resp_addr,
            peer_listen,
            peer_addr,
            data_dir,
            log_path: dir.join("server.log"),
            bin: bin.to_path_buf(),
            args,
            rust_log: rust_log.to_string(),
            // An ephemeral HTTP port (in `last_ready`), so that nodes on one
            // host do not all ask for the default; a flag, or `set_env`
            // (applied after), overrides it.
            env: vec![(HTTP_LISTEN_ENV.to_string(), EPHEMERAL.to_string())],
            child: None,
            starts: 0,
            last_ready: None,
            last_exit: None,
        }
    }

    /// The node's own directory: `data/`, `server.log` and whatever else
    /// the harness keeps per node.
    pub fn dir(&self) -> &Path {
        self.log_path.parent().unwrap_or(Path::new("."))
    }

    /// Sets an environment variable for the next starts (replacing an
    /// earlier value of the same name).
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.to_string(), value.to_string()));
    }

    /// The full `server` command line (for reports).
    pub fn command_line(&self) -> String {
        format!("{} server {}", self.bin.display(), self.args.join(" "))
    }

    /// Starts the process and waits (bounded) for its ready line. Fails if
    /// it is already running or does not come up on its ports.
    pub fn start(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("node {} is already running", self.id);
        }
        std::fs::create_dir_all(self.log_path.parent().unwrap_or(Path::new(".")))?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("open {}", self.log_path.display()))?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("server")
            .args(&self.args)
            .env("RUST_LOG", &self.rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        // A run is defined by its command line alone.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("STRATA_") {
                cmd.env_remove(name);
            }
        }
        for (name, value) in &self.env {
            cmd.env(name, value);
        }
        set_parent_death_signal(&mut cmd);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawn {}", self.bin.display()))?;
        self.starts += 1;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            // An empty line means EOF: the process exited before ready.
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            let mut sink = Vec::new();
            while reader
                .read_until(b'\n', &mut sink)
                .map(|n| n > 0)
                .unwrap_or(false)
            {
                sink.clear();
            }
        });
        let line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "node {} not ready within {READY_TIMEOUT:?}; log tail:\n{}",
                    self.id,
                    self.log_tail(40)
                );
            }
        };
        let Some(ready) = parse_ready_line(&line) else {
            let _ = child.kill();
            let status = child.wait().ok();
            bail!(
                "node {}: bad ready line {line:?} (exit {status:?}); command: {}\nlog tail:\n{}",
                self.id,
                self.command_line(),
                self.log_tail(40)
            );
        };
        let mismatch = ready.resp != self.resp_addr
            || ready.peer.is_some_and(|p| p != self.peer_listen)
            || ready.node.is_some_and(|n| n != self.id);
        if mismatch || ready.peer.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "node {}: ready line {line:?} does not match resp={} peer={} node={} \
                 (is this server built with cluster support?)",
                self.id,
                self.resp_addr,
                self.peer_listen,
                self.id
            );
        }
        self.last_ready = Some(ready);
        self.last_exit = None;
        self.child = Some(child);
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is alive (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        let Some(child) = self.child.as_mut() else {
            return false;
        };
        match child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                self.last_exit = Some(status);
                self.child = None;
                false
            }
            Err(_) => false,
        }
    }

    /// SIGKILL and reap. No-op if not running.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A stopped process dies on SIGKILL too.
            let _ = child.kill();
            self.last_exit = wait_bounded(&mut child, KILL_WAIT);
        }
    }

    /// Sends `signal` to the process (no-op if not running).
    pub fn signal(&self, signal: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on the pid of a child we spawned and have not
            // reaped (so the pid cannot have been reused).
            unsafe {
                libc::kill(pid as i32, signal);
            }
        }
    }

    /// SIGSTOP: the process freezes (its sockets stay open).
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// SIGTERM, then waits up to `timeout` for the exit; kills -9 and fails
    /// if it takes longer.
    pub fn sigterm(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("node {} is not running", self.id);
        };
        // SAFETY: as in `signal`.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                self.last_exit = Some(status);
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                self.last_exit = wait_bounded(&mut child, KILL_WAIT);
                bail!(
                    "node {} did not exit within {timeout:?} of SIGTERM",
                    self.id
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits up to `timeout` for the process to exit by itself (e.g. after
    /// [`signal`](Self::signal)`(SIGTERM)`); kills -9 and fails if it does
    /// not.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            return self
                .last_exit
                .ok_or_else(|| anyhow!("node {} was never started", self.id));
        };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                self.last_exit = Some(status);
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                self.last_exit = wait_bounded(&mut child, KILL_WAIT);
                bail!("node {} did not exit within {timeout:?}", self.id);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// kill -9 (if running), then start again on the same data dir and
    /// ports.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9();
        self.start()
    }

    /// A connection with `timeout` on every exchange.
    pub fn client(&self, timeout: Duration) -> anyhow::Result<Client> {
        connect(self.resp_addr, timeout)
    }

    /// One command on a fresh connection.
    pub fn call(&self, args: &[&str]) -> anyhow::Result<Reply> {
        call_once(self.resp_addr, args, REQUEST_TIMEOUT)
    }

    /// A text reply (bulk/status) of one command; an error reply is an
    /// error.
    pub fn call_text(&self, args: &[&str]) -> anyhow::Result<String> {
        match self.call(args)? {
            Reply::Error(e) => bail!("{} on node {}: {e}", args.join(" "), self.id),
            reply => reply_text(&reply)
                .ok_or_else(|| anyhow!("{}: unexpected reply {reply:?}", args.join(" "))),
        }
    }

    /// `INFO <section>` as fields.
    pub fn info(&self, section: &str) -> anyhow::Result<BTreeMap<String, String>> {
        Ok(parse_fields(&self.call_text(&["INFO", section])?))
    }

    /// `CLUSTER INFO` as fields.
    pub fn cluster_info(&self) -> anyhow::Result<BTreeMap<String, String>> {
        Ok(parse_fields(&self.call_text(&["CLUSTER", "INFO"])?))
    }

    /// A numeric field of `CLUSTER INFO`.
    pub fn cluster_u64(&self, field: &str) -> anyhow::Result<u64> {
        let info = self.cluster_info()?;
        let v = info
            .get(field)
            .ok_or_else(|| anyhow!("CLUSTER INFO of node {} has no {field}", self.id))?;
        v.parse()
            .with_context(|| format!("CLUSTER INFO {field}={v} on node {}", self.id))
    }

    /// What this node thinks the leader is.
    pub fn leader_view(&self) -> anyhow::Result<Option<LeaderView>> {
        parse_leader_reply(&self.call(&["CLUSTER", "LEADER"])?)
    }

    /// The whole log (stderr of every incarnation).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => return None,
        }
    }
}

/// On Linux, the kernel SIGKILLs the server if the thread that spawned it
/// dies, so no node outlives a crashed test or tool.
#[cfg(target_os = "linux")]
fn set_parent_death_signal(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl(2) is async-signal-safe and touches no memory of ours;
    // the closure runs in the forked child just before exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn set_parent_death_signal(_cmd: &mut Command) {}

/// A set of nodes. See the module documentation.
pub struct Cluster {
    pub nodes: BTreeMap<u64, Node>,
    pub config: ClusterConfig,
    base: PathBuf,
    tmp: Option<tempfile::TempDir>,
    /// The `--initial-cluster` value of the bootstrap nodes.
    pub initial_cluster: String,
}

impl Cluster {
    /// Picks ports and starts nodes `1..=config.nodes` (one after the
    /// other, each until its ready line). Does not wait for a leader.
    pub fn start(config: ClusterConfig) -> anyhow::Result<Cluster> {
        let mut cluster = Cluster::prepare(config)?;
        let ids: Vec<u64> = cluster.nodes.keys().copied().collect();
        for id in ids {
            cluster.node_mut(id).start()?;
        }
        Ok(cluster)
    }

    /// Like [`start`](Self::start) but starts nothing: ports and
    /// directories are chosen, nodes are ready to [`Node::start`].
    pub fn prepare(mut config: ClusterConfig) -> anyhow::Result<Cluster> {
        let (base, tmp) = match &config.base_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                (dir.clone(), None)
            }
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("strata-cluster-")
                    .tempdir()
                    .context("create temp dir")?;
                (tmp.path().to_path_buf(), Some(tmp))
            }
        };
        if config.cluster_secret && config.secret_file.is_none() {
            let path = base.join("cluster-secret");
            write_secret_file(&path, &random_secret())?;
            config.secret_file = Some(path);
        }
        let mut planned = Vec::new();
        for id in 1..=config.nodes {
            let resp = free_addr()?;
            let peer_listen = free_addr()?;
            let peer_addr = config.advertise.get(&id).copied().unwrap_or(peer_listen);
            planned.push((id, resp, peer_listen, peer_addr));
        }
        let initial_cluster = planned
            .iter()
            .map(|(id, _, _, addr)| format!("{id}={addr}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = BTreeMap::new();
        for (id, resp, peer_listen, peer_addr) in planned {
            let mut args = vec!["--initial-cluster".to_string(), initial_cluster.clone()];
            args.extend(config.common_args());
            let node = Node::new(
                &config.bin,
                id,
                resp,
                peer_listen,
                peer_addr,
                &base.join(format!("node{id}")),
                args,
                &config.rust_log,
            );
            nodes.insert(id, node);
        }
        Ok(Cluster {
            nodes,
            config,
            base,
            tmp,
            initial_cluster,
        })
    }

    /// The directory holding every node's directory.
    pub fn base_dir(&self) -> &Path {
        &self.base
    }

    /// Keeps the directory after the cluster is dropped (for a failed run);
    /// returns its path.
    pub fn keep_dir(&mut self) -> PathBuf {
        if let Some(tmp) = self.tmp.take() {
            return tmp.keep();
        }
        self.base.clone()
    }

    pub fn node(&self, id: u64) -> &Node {
        self.nodes
            .get(&id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// Ids of the nodes whose process is alive.
    pub fn running_ids(&mut self) -> Vec<u64> {
        self.nodes
            .iter_mut()
            .filter_map(|(id, node)| node.is_running().then_some(*id))
            .collect()
    }

    /// Adds a node that joins through `via`'s peer address (`--join`), with
    /// `extra` flags, and starts it. Its directory, ports and the cluster's
    /// common flags are set up like the others'.
    pub fn join_node(
        &mut self,
        id: u64,
        via: u64,
        join_as: JoinAs,
        extra: &[&str],
    ) -> anyhow::Result<&mut Node> {
        let via_addr = self.node(via).peer_addr;
        let mut args = vec![
            "--join".to_string(),
            via_addr.to_string(),
            "--join-as".to_string(),
            join_as.as_str().to_string(),
        ];
        args.extend(self.config.common_args());
        args.extend(extra.iter().map(|s| s.to_string()));
        let node = self.new_node(id, args)?;
        node.start()?;
        Ok(node)
    }

    /// Adds a node with explicit membership flags (not started).
    pub fn new_node(&mut self, id: u64, cluster_args: Vec<String>) -> anyhow::Result<&mut Node> {
        if self.nodes.contains_key(&id) {
            bail!("node {id} already exists");
        }
        let resp = free_addr()?;
        let peer_listen = free_addr()?;
        let peer_addr = self
            .config
            .advertise
            .get(&id)
            .copied()
            .unwrap_or(peer_listen);
        let node = Node::new(
            &self.config.bin,
            id,
            resp,
            peer_listen,
            peer_addr,
            &self.base.join(format!("node{id}")),
            cluster_args,
            &self.config.rust_log,
        );
        Ok(self.nodes.entry(id).or_insert(node))
    }

    /// Stops tracking `id` (killing it); returns the node.
    pub fn forget(&mut self, id: u64) -> Option<Node> {
        let mut node = self.nodes.remove(&id)?;
        node.kill9();
        Some(node)
    }

    /// What each of `ids` says about the leader (errors as `Err` text).
    pub fn leader_views(&self, ids: &[u64]) -> BTreeMap<u64, Result<Option<LeaderView>, String>> {
        ids.iter()
            .map(|&id| {
                let view = self
                    .nodes
                    .get(&id)
                    .ok_or_else(|| format!("no node {id}"))
                    .and_then(|n| n.leader_view().map_err(|e| format!("{e:#}")));
                (id, view)
            })
            .collect()
    }

    /// The leader that all of `ids` agree on, if they do and it is one of
    /// `ids` (one poll, no waiting).
    pub fn agreed_leader(&self, ids: &[u64]) -> Option<u64> {
        let views = self.leader_views(ids);
        let mut agreed = None;
        for view in views.values() {
            let id = match view {
                Ok(Some(v)) => v.id,
                _ => return None,
            };
            if agreed.is_some_and(|a| a != id) {
                return None;
            }
            agreed = Some(id);
        }
        agreed.filter(|id| ids.contains(id))
    }

    /// Waits until every running node agrees on a leader that is running;
    /// returns its id.
    pub fn wait_for_leader(&mut self, timeout: Duration) -> anyhow::Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let ids = self.running_ids();
            if let Some(id) = self.agreed_leader(&ids) {
                return Ok(id);
            }
            if Instant::now() >= deadline {
                bail!(
                    "no agreed leader among {ids:?} within {timeout:?}: {:?}",
                    self.leader_views(&ids)
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Like [`wait_for_leader`](Self::wait_for_leader) among `ids` only.
    pub fn wait_for_leader_among(&mut self, ids: &[u64], timeout: Duration) -> anyhow::Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(id) = self.agreed_leader(ids) {
                return Ok(id);
            }
            if Instant::now() >= deadline {
                bail!(
                    "no agreed leader among {ids:?} within {timeout:?}: {:?}",
                    self.leader_views(ids)
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until a leader other than `old` is agreed by the running
    /// nodes.
    pub fn wait_for_new_leader(&mut self, old: u64, timeout: Duration) -> anyhow::Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let ids = self.running_ids();
            if let Some(id) = self.agreed_leader(&ids).filter(|&id| id != old) {
                return Ok(id);
            }
            if Instant::now() >= deadline {
                bail!(
                    "no new leader (old {old}) among {ids:?} within {timeout:?}: {:?}",
                    self.leader_views(&ids)
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until every one of `ids` has applied everything the leader
    /// has committed (and the leader has applied it too), and they agree on
    /// the leader; returns that index.
    pub fn wait_converged(&mut self, ids: &[u64], timeout: Duration) -> anyhow::Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let err = match self.convergence(ids) {
                Ok(index) => return Ok(index),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                bail!("{ids:?} did not converge within {timeout:?}: {err:#}");
            }
            std::thread::sleep(POLL);
        }
    }

    fn convergence(&self, ids: &[u64]) -> anyhow::Result<u64> {
        let leader = self
            .agreed_leader(ids)
            .ok_or_else(|| anyhow!("no agreed leader: {:?}", self.leader_views(ids)))?;
        let commit = self.node(leader).cluster_u64("cluster_commit_index")?;
        let mut applied = BTreeMap::new();
        for &id in ids {
            applied.insert(id, self.node(id).cluster_u64("cluster_applied_index")?);
        }
        if applied.values().all(|&a| a == commit) {
            Ok(commit)
        } else {
            bail!("leader {leader} commit {commit}, applied {applied:?}")
        }
    }

    /// Waits until node `id` has applied at least `index`.
    pub fn wait_applied(&self, id: u64, index: u64, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let applied = self.node(id).cluster_u64("cluster_applied_index");
            if let Ok(a) = applied
                && a >= index
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("node {id} did not apply {index} within {timeout:?} (now {applied:?})");
            }
            std::thread::sleep(POLL);
        }
    }

    /// Kills every node.
    pub fn kill_all(&mut self) {
        for node in self.nodes.values_mut() {
            node.kill9();
        }
    }

    /// The tail of every node's log, for failure reports.
    pub fn logs_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        for (id, node) in &self.nodes {
            out.push_str(&format!(
                "----- node {id} ({}) -----\n{}\n",
                node.log_path.display(),
                node.log_tail(lines)
            ));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Whether `bin server --help` lists `--node-id` (cluster support).
pub fn supports_cluster(bin: &Path) -> bool {
    Command::new(bin)
        .args(["server", "--help"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).contains("--node-id"))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(s.as_bytes().to_vec().into())
    }

    #[test]
    fn ready_lines() {
        let r =
            parse_ready_line("ready resp=127.0.0.1:1 text=off peer=127.0.0.1:2 node=3\n").unwrap();
        assert_eq!(r.resp, "127.0.0.1:1".parse().unwrap());
        assert_eq!(r.text, None);
        assert_eq!(r.peer, Some("127.0.0.1:2".parse().unwrap()));
        assert_eq!(r.node, Some(3));
        assert_eq!(r.http, None);
        let single = parse_ready_line("ready resp=127.0.0.1:1 text=127.0.0.1:4").unwrap();
        assert_eq!(single.peer, None);
        assert_eq!(single.text, Some("127.0.0.1:4".parse().unwrap()));
        let http =
            parse_ready_line("ready resp=127.0.0.1:1 text=off http=127.0.0.1:5 peer=127.0.0.1:2")
                .unwrap();
        assert_eq!(http.http, Some("127.0.0.1:5".parse().unwrap()));
        assert_eq!(http.peer, Some("127.0.0.1:2".parse().unwrap()));
        let off = parse_ready_line("ready resp=127.0.0.1:1 text=off http=off").unwrap();
        assert_eq!(off.http, None);
        assert!(parse_ready_line("ready resp=127.0.0.1:1 http=nowhere").is_none());
        assert!(parse_ready_line("").is_none());
        assert!(parse_ready_line("error: bind").is_none());
        assert!(parse_ready_line("ready text=off").is_none());
    }

    #[test]
    fn leader_replies() {
        assert_eq!(parse_leader_reply(&Reply::Null).unwrap(), None);
        assert_eq!(parse_leader_reply(&Reply::NullArray).unwrap(), None);
        let r = Reply::Array(vec![
            Reply::Integer(2),
            bulk("127.0.0.1:5000"),
            bulk("127.0.0.1:6000"),
        ]);
        assert_eq!(
            parse_leader_reply(&r).unwrap(),
            Some(LeaderView {
                id: 2,
                peer_addr: "127.0.0.1:5000".into(),
                client_addr: "127.0.0.1:6000".into()
            })
        );
        assert!(parse_leader_reply(&Reply::Error("CLUSTERDOWN x".into())).is_err());
    }

    #[test]
    fn fields() {
        let f =
            parse_fields("# Replication\r\nrole:master\r\nraft_term:3\r\n\r\nslave0:id=2,ip=x\r\n");
        assert_eq!(f["role"], "master");
        assert_eq!(f["raft_term"], "3");
        assert_eq!(f["slave0"], "id=2,ip=x");
    }

    #[test]
    fn ports_are_unique() {
        let mut seen = HashSet::new();
        for _ in 0..50 {
            assert!(seen.insert(free_port().unwrap()));
        }
    }

    /// With `cluster_secret`, every node (joining ones too) is given one
    /// fresh secret file, readable by its owner only.
    #[test]
    fn a_cluster_secret_is_generated_and_passed_to_every_node() {
        let mut config = ClusterConfig::new("/nonexistent/strata", 3);
        config.cluster_secret = true;
        let cluster = Cluster::prepare(config).unwrap();
        let path = cluster.config.secret_file.clone().expect("generated");
        let secret = std::fs::read_to_string(&path).unwrap();
        assert_eq!(secret.trim().len(), 64, "{secret:?}");
        assert!(secret.trim().chars().all(|c| c.is_ascii_hexdigit()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let flag = format!("--cluster-secret-file {}", path.display());
        for id in cluster.ids() {
            assert!(cluster.node(id).command_line().contains(&flag));
        }
        let joining = cluster.config.common_args().join(" ");
        assert!(joining.contains(&flag), "{joining}");
        assert_ne!(random_secret(), random_secret());
    }
}
