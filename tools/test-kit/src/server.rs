//! One single-node `strata server` process for a test: loopback ports
//! chosen by the OS, its log in a file, the environment scrubbed of
//! `STRATA_*` settings (so the caller's shell cannot change the test), and
//! killed when dropped.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cluster::parse_ready_line;

/// Bound on a server printing its ready line (journal replay included).
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub log_path: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `bin server --data-dir <data_dir> --listen 127.0.0.1:0
    /// --text-listen off <args>` with `env` added, its stderr appended to
    /// `log_path`; waits for the ready line.
    pub fn start(
        bin: &Path,
        data_dir: &Path,
        log_path: &Path,
        args: &[&str],
        env: &[(&str, OsString)],
    ) -> anyhow::Result<Server> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .with_context(|| format!("open {}", log_path.display()))?;
        let mut cmd = Command::new(bin);
        cmd.arg("server")
            .args(["--listen", "127.0.0.1:0", "--text-listen", "off"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("STRATA_") {
                cmd.env_remove(name);
            }
        }
        // An ephemeral HTTP port unless `env` says otherwise.
        cmd.env(crate::cluster::HTTP_LISTEN_ENV, crate::cluster::EPHEMERAL);
        // After the removal above: the last setting of a name wins.
        for (name, value) in env {
            cmd.env(name, value);
        }
        let mut child = cmd.spawn().context("spawn strata server")?;
        let stdout = child.stdout.take().context("stdout piped")?;
        let line = first_line(stdout);
        let mut server = Server {
            child,
            addr: "0.0.0.0:0".parse()?,
            log_path: log_path.to_path_buf(),
        };
        match line.and_then(|l| parse_ready_line(&l)) {
            Some(ready) => server.addr = ready.resp,
            None => bail!("no ready line; server log:\n{}", server.log()),
        }
        Ok(server)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its exit status if it has exited, waiting at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The first line of the server's stdout (None within [`READY_TIMEOUT`]:
/// none); the rest is drained so the server never blocks on a full pipe.
fn first_line(stdout: std::process::ChildStdout) -> Option<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        let mut sink = Vec::new();
        while reader.read_until(b'\n', &mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    });
    rx.recv_timeout(READY_TIMEOUT).ok()
}
