//! A real redis-server beside the strata under test, for differential
//! tests (tx_differential.rs, clients.rs).
//!
//! redis-server is taken from PATH; if missing it is installed with
//! `apt-get install -y redis-server` (as `strata-compare` does), which
//! needs root: without it the test fails and says so.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REDIS_READY_TIMEOUT: Duration = Duration::from_secs(20);

pub fn find_in_path(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// The path of redis-server, installing Debian's package if needed (with
/// `apt-get update` first when the install alone fails: a fresh machine
/// may have no package lists yet).
pub fn redis_server_bin() -> std::path::PathBuf {
    if let Some(path) = find_in_path("redis-server") {
        return path;
    }
    assert!(
        find_in_path("apt-get").is_some(),
        "redis-server is missing and there is no apt-get: install redis-server (7.x) in PATH"
    );
    let installed = super::tools::apt_install("redis-server");
    assert!(
        installed.is_ok(),
        "apt-get install -y redis-server failed (root is needed): install redis-server (7.x) in PATH: {installed:?}"
    );
    find_in_path("redis-server").expect("redis-server after apt-get install")
}

/// A redis-server on an ephemeral loopback port, without persistence,
/// killed on drop.
pub struct RedisServer {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let bin = redis_server_bin();
        let dir = tempfile::tempdir().expect("temp dir");
        // The port is free now; a race with another process is possible
        // but only makes the start fail loudly below.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let mut server = RedisServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _dir: dir,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + REDIS_READY_TIMEOUT;
        loop {
            if std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("redis-server exited: {status}");
            }
            assert!(Instant::now() < deadline, "redis-server not ready");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of redis-cli (Debian's redis-tools, which redis-server
/// depends on: installing the server brings it).
pub fn redis_cli_bin() -> std::path::PathBuf {
    if let Some(path) = find_in_path("redis-cli") {
        return path;
    }
    redis_server_bin();
    find_in_path("redis-cli").expect("redis-cli after installing redis-server")
}
