//! Test harness: runs the real `strata` binary as a child process on
//! loopback, with ephemeral ports and a temporary data directory.
//!
//! Contract with the server (see README "Machine-readable start-up line"):
//! after binding its listeners, `strata server` prints exactly one line
//! `ready resp=<addr> text=<addr|off> http=<addr|off>` on stdout. Every
//! wait here is bounded.
#![allow(dead_code)]

pub mod cluster;
pub mod http;
pub mod peer;
pub mod raw;
pub mod redis_server;
pub mod tools;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a server may take to print its ready line. Recovery after a
/// crash replays the journal first, so this is generous.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful shutdown may take before the test fails.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

pub fn strata_bin() -> &'static str {
    env!("CARGO_BIN_EXE_strata")
}

pub struct TestServer {
    child: Option<Child>,
    pub resp_addr: SocketAddr,
    pub text_addr: Option<SocketAddr>,
    /// The HTTP listener (ephemeral unless the test passes `--http-listen`).
    pub http_addr: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    args: Vec<String>,
    // Kept last so the directory outlives the process.
    _tmp: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A server with default settings in a fresh temp dir.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with extra command-line flags in a fresh temp dir.
    pub fn start_with(args: &[&str]) -> Self {
        let tmp = tempfile::tempdir().expect("create temp dir");
        let data_dir = tmp.path().join("data");
        let mut server = Self::spawn(&data_dir, args, tmp.path());
        server._tmp = Some(tmp);
        server
    }

    /// A server on an existing data directory (the caller owns the dir).
    pub fn start_in(data_dir: &Path, args: &[&str]) -> Self {
        let log_dir = data_dir.parent().unwrap_or(data_dir).to_path_buf();
        Self::spawn(data_dir, args, &log_dir)
    }

    fn spawn(data_dir: &Path, args: &[&str], log_dir: &Path) -> Self {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let log_path = log_dir.join("server.log");
        let (child, ready) = launch(data_dir, &args, &log_path);
        TestServer {
            child: Some(child),
            resp_addr: ready.resp,
            text_addr: ready.text,
            http_addr: ready.http,
            data_dir: data_dir.to_path_buf(),
            log_path,
            args,
            _tmp: None,
        }
    }

    pub fn redis_url(&self) -> String {
        format!("redis://{}/", self.resp_addr)
    }

    pub fn redis_url_resp3(&self) -> String {
        format!("redis://{}/?protocol=resp3", self.resp_addr)
    }

    /// A synchronous `redis` crate connection with bounded timeouts.
    pub fn redis(&self) -> redis::Connection {
        connect(&self.redis_url())
    }

    /// Like [`redis`](Self::redis) but negotiated with HELLO 3.
    pub fn redis_resp3(&self) -> redis::Connection {
        connect(&self.redis_url_resp3())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// kill -9: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL on Unix
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait (bounded) for a clean exit.
    pub fn stop_graceful(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server running");
        // SAFETY: plain kill(2) on a pid we own.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("server did not shut down within {SHUTDOWN_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// kill -9, then start again on the same data dir with the same flags.
    pub fn restart_after_kill9(&mut self) {
        self.kill9();
        self.relaunch();
    }

    /// Start again after a stop (graceful or not) on the same data dir.
    pub fn relaunch(&mut self) {
        assert!(self.child.is_none(), "server still running");
        let (child, ready) = launch(&self.data_dir, &self.args, &self.log_path);
        self.child = Some(child);
        self.resp_addr = ready.resp;
        self.text_addr = ready.text;
        self.http_addr = ready.http;
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// `http://<http addr>`; panics if the HTTP listener is off.
    pub fn http_base(&self) -> String {
        let addr = self.http_addr.expect("the HTTP listener is on");
        format!("http://{addr}")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A `redis` crate connection to `url` with every wait bounded.
fn connect(url: &str) -> redis::Connection {
    let client = redis::Client::open(url).expect("redis client");
    let conn = client
        .get_connection_with_timeout(Duration::from_secs(10))
        .expect("connect to strata");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn.set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn
}

#[allow(unused_imports)]
pub use strata_test_kit::env_u64;

/// What a server's ready line says of its client listeners.
pub struct ReadyAddrs {
    pub resp: SocketAddr,
    pub text: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
}

fn launch(data_dir: &Path, args: &[String], log_path: &Path) -> (Child, ReadyAddrs) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .expect("open server log");
    let mut cmd = Command::new(strata_bin());
    cmd.arg("server");
    // Ephemeral loopback listeners unless the test chooses its own.
    for flag in ["--listen", "--text-listen", "--http-listen"] {
        if !args.iter().any(|a| a == flag) {
            cmd.arg(flag).arg("127.0.0.1:0");
        }
    }
    cmd.arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("STRATA_ADDR")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    let mut child = cmd.spawn().expect("spawn strata server");
    let line = match first_stdout_line(&mut child, READY_TIMEOUT) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "server not ready within {READY_TIMEOUT:?}; log:\n{}",
                std::fs::read_to_string(log_path).unwrap_or_default()
            );
        }
    };
    let (resp, text) = parse_ready_line(&line).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "bad ready line {line:?}; log:\n{}",
            std::fs::read_to_string(log_path).unwrap_or_default()
        )
    });
    let http = parse_ready_http(&line);
    (child, ReadyAddrs { resp, text, http })
}

/// The `http=<addr>` word of a ready line (None if `off` or absent).
pub fn parse_ready_http(line: &str) -> Option<SocketAddr> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
        .and_then(|v| v.parse().ok())
}

/// Parses `ready resp=127.0.0.1:1234 text=127.0.0.1:1235` (text may be `off`).
pub fn parse_ready_line(line: &str) -> Option<(SocketAddr, Option<SocketAddr>)> {
    let mut words = line.split_whitespace();
    if words.next()? != "ready" {
        return None;
    }
    let mut resp = None;
    let mut text = None;
    for word in words {
        if let Some(v) = word.strip_prefix("resp=") {
            resp = Some(v.parse().ok()?);
        } else if let Some(v) = word.strip_prefix("text=") {
            text = if v == "off" {
                None
            } else {
                Some(v.parse().ok()?)
            };
        }
    }
    Some((resp?, text))
}

/// The first line a spawned server prints on its piped stdout (the ready
/// line), waiting at most `timeout`; the rest is drained on a thread so the
/// server never blocks on a full pipe.
pub fn first_stdout_line(
    child: &mut Child,
    timeout: Duration,
) -> Result<String, mpsc::RecvTimeoutError> {
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        let mut sink = String::new();
        while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    });
    rx.recv_timeout(timeout)
}

/// Run the `strata` CLI with a bounded wait; returns (exit code, stdout, stderr).
pub fn run_cli(args: &[&str], addr: SocketAddr) -> (i32, String, String) {
    let addr = addr.to_string();
    let mut all = vec!["--addr", addr.as_str()];
    all.extend_from_slice(args);
    run_strata(&all)
}

/// How long a `strata` command that must end by itself may take (`check`
/// reads a whole data directory).
pub const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `strata <args>` to its end, without the caller's `STRATA_ADDR` or
/// `STRATA_CONFIG`, killed past [`CLI_TIMEOUT`]; (exit code, stdout, stderr).
pub fn run_strata(args: &[&str]) -> (i32, String, String) {
    let child = Command::new(strata_bin())
        .args(args)
        .env_remove("STRATA_ADDR")
        .env_remove("STRATA_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strata");
    // Read the output on another thread so a large output never blocks the
    // child on a full pipe, and bound the wait.
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(CLI_TIMEOUT) {
        Ok(out) => out.expect("strata output"),
        Err(_) => {
            // SAFETY: plain kill(2) on a pid we spawned and have not reaped.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
            panic!("strata {args:?} did not finish within {CLI_TIMEOUT:?}");
        }
    };
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
