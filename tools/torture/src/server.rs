//! The strata server as a child process: spawn, wait for the `ready` line,
//! kill -9, and read what its log says about the engine.
//!
//! Only processes spawned here are ever signalled, and only through their
//! own `Child` handle (by pid, never by name). A [`ServerProcess`] kills its
//! child when dropped, and on Linux the child also gets SIGKILL if the tool
//! itself dies (`PR_SET_PDEATHSIG`), so no server outlives a run.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;

/// How long a killed process may take to disappear. SIGKILL cannot be
/// caught, but a process inside a long uninterruptible disk write only dies
/// when the write returns.
const KILL_WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(2);

/// How to start the server; the same for every incarnation.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    pub bin: PathBuf,
    pub data_dir: PathBuf,
    /// The server's stderr (its log), appended to by every incarnation.
    pub log_path: PathBuf,
    pub fsync: String,
    pub extra_args: Vec<String>,
    /// `RUST_LOG` for the server. The default turns on the engine's flush
    /// and compaction messages, which [`engine_activity`] reads.
    pub log_filter: String,
}

impl ServerSpec {
    /// Spawns one incarnation; does not wait for it to be ready.
    pub fn spawn(&self) -> anyhow::Result<ServerProcess> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("open server log {}", self.log_path.display()))?;
        // Where this incarnation's part of the log starts.
        let log_offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let mut cmd = Command::new(&self.bin);
        cmd.arg("server")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--text-listen")
            .arg("off")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--fsync")
            .arg(&self.fsync)
            .args(&self.extra_args)
            .env("RUST_LOG", &self.log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        // The server also reads STRATA_* variables; a run must be defined by
        // its command line alone, or a replay could behave differently.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("STRATA_") {
                cmd.env_remove(name);
            }
        }
        // An ephemeral HTTP port (an older build ignores the variable).
        cmd.env("STRATA_HTTP_LISTEN", "127.0.0.1:0");
        set_parent_death_signal(&mut cmd);
        let spawned_at = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawn {}", self.bin.display()))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("server stdout was not piped");
        };
        let (tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            // An empty line means EOF: the process exited before it was ready.
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the server never blocks on a full pipe; ends
            // at EOF, i.e. when the process is gone.
            let mut sink = Vec::new();
            while reader
                .read_until(b'\n', &mut sink)
                .map(|n| n > 0)
                .unwrap_or(false)
            {
                sink.clear();
            }
        });
        Ok(ServerProcess {
            child: Some(child),
            ready_rx,
            spawned_at,
            log_offset,
        })
    }
}

/// On Linux, ask the kernel to SIGKILL the server if the thread that spawned
/// it dies (the tool is killed, or panics past every Drop). All spawns
/// happen on the thread that runs the cycle loop, which outlives them.
#[cfg(target_os = "linux")]
fn set_parent_death_signal(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl(2) is async-signal-safe and touches no memory of ours;
    // this closure runs in the forked child just before exec.
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

/// How a kill -9 went.
#[derive(Debug)]
pub enum Killed {
    /// We killed a running server.
    Killed,
    /// The server had already exited by itself (a crash we did not cause).
    AlreadyExited(ExitStatus),
}

pub struct ServerProcess {
    child: Option<Child>,
    ready_rx: mpsc::Receiver<String>,
    spawned_at: Instant,
    log_offset: u64,
}

impl ServerProcess {
    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    pub fn log_offset(&self) -> u64 {
        self.log_offset
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Waits (bounded) for `ready resp=<addr> text=...`; returns the RESP
    /// address and the time from spawn to the ready line.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(SocketAddr, Duration), String> {
        let line = match self.ready_rx.recv_timeout(timeout) {
            Ok(line) => line,
            Err(_) => return Err(format!("no ready line within {timeout:?}")),
        };
        let ready_after = self.spawned_at.elapsed();
        if line.is_empty() {
            // Give the exit status a moment to become visible.
            let status = self.wait_exit(Duration::from_secs(5));
            return Err(format!("exited before it was ready ({status})"));
        }
        match parse_ready_line(&line) {
            Some(addr) => Ok((addr, ready_after)),
            None => Err(format!(
                "unexpected first line on stdout: {:?}",
                line.trim_end()
            )),
        }
    }

    /// Whether the ready line has arrived (without waiting). It consumes
    /// the line, so it is only for an incarnation that is killed unused.
    pub fn ready_line_seen(&mut self) -> bool {
        self.ready_rx.try_recv().is_ok_and(|line| !line.is_empty())
    }

    /// The exit status if the process has already exited by itself.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    fn wait_exit(&mut self, timeout: Duration) -> String {
        let Some(child) = self.child.as_mut() else {
            return "already reaped".into();
        };
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.to_string(),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
                Ok(None) => return "still running".into(),
                Err(e) => return format!("wait failed: {e}"),
            }
        }
    }

    /// SIGKILL (our own child, by its pid) and wait, bounded, until it is
    /// gone. Reports a server that had already died by itself.
    pub fn kill9(&mut self) -> anyhow::Result<Killed> {
        let Some(mut child) = self.child.take() else {
            anyhow::bail!("server already killed");
        };
        if let Ok(Some(status)) = child.try_wait() {
            return Ok(Killed::AlreadyExited(status));
        }
        // Child::kill is kill(pid, SIGKILL) on Unix.
        child.kill().context("kill -9 the server")?;
        let deadline = Instant::now() + KILL_WAIT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(Killed::Killed),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
                Ok(None) => anyhow::bail!(
                    "server pid {} still alive {KILL_WAIT:?} after SIGKILL",
                    child.id()
                ),
                Err(e) => return Err(e).context("wait for the killed server"),
            }
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            // Bounded reap; SIGKILL normally takes effect at once.
            let deadline = Instant::now() + KILL_WAIT;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
        }
    }
}

/// Parses `ready resp=127.0.0.1:1234 text=off` into the RESP address.
pub fn parse_ready_line(line: &str) -> Option<SocketAddr> {
    let mut words = line.split_whitespace();
    if words.next()? != "ready" {
        return None;
    }
    words
        .find_map(|w| w.strip_prefix("resp="))
        .and_then(|a| a.parse().ok())
}

/// What the engine was doing, from one incarnation's log (best effort: it
/// reads fjall / lsm-tree debug messages, whose wording may change; then
/// these counts are simply zero, the verdict does not depend on them).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct EngineActivity {
    /// Memtable flushes that completed.
    pub flushes: u64,
    /// Compactions that rewrote tables (merges; trivial moves not counted).
    pub merges: u64,
    /// A flush had started and not completed when the log ended (the kill).
    pub in_flush: bool,
    /// A merge compaction had started and not completed when the log ended.
    pub in_merge: bool,
}

/// Reads the log from `offset` (the start of one incarnation) to its end.
pub fn engine_activity(log_path: &Path, offset: u64) -> EngineActivity {
    let mut text = String::new();
    let read = File::open(log_path).and_then(|mut f| {
        f.seek(SeekFrom::Start(offset))?;
        // The log is ours, but never trust it to be UTF-8 or small.
        let mut bytes = Vec::new();
        f.take(256 * 1024 * 1024).read_to_end(&mut bytes)?;
        text = String::from_utf8_lossy(&bytes).into_owned();
        Ok(())
    });
    if read.is_err() {
        return EngineActivity::default();
    }
    parse_engine_activity(&text)
}

pub fn parse_engine_activity(log: &str) -> EngineActivity {
    let mut a = EngineActivity::default();
    let mut flushing = 0u64;
    for line in log.lines() {
        if line.contains("Flushing keyspace") {
            flushing += 1;
        } else if line.contains("Flush completed") {
            flushing = flushing.saturating_sub(1);
            a.flushes += 1;
        } else if line.contains("Compaction choice: Merge") {
            a.in_merge = true;
        } else if line.contains("Compaction run over") && a.in_merge {
            // Compaction runs of other keyspaces may interleave; this can
            // only under-report a merge in progress, never invent one.
            a.in_merge = false;
            a.merges += 1;
        }
    }
    a.in_flush = flushing > 0;
    a
}

/// The last `bytes` of the server log, for failure reports.
pub fn log_tail(log_path: &Path, bytes: u64) -> String {
    let Ok(mut f) = File::open(log_path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if f.seek(SeekFrom::Start(len.saturating_sub(bytes))).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = f.take(bytes).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line() {
        assert_eq!(
            parse_ready_line("ready resp=127.0.0.1:7379 text=off\n"),
            Some("127.0.0.1:7379".parse().unwrap())
        );
        assert_eq!(parse_ready_line("hello"), None);
        assert_eq!(parse_ready_line("ready text=off"), None);
    }

    #[test]
    fn engine_activity_from_log() {
        let log = "\
x DEBUG fjall::flush::worker: Flushing keyspace \"data\"
x DEBUG fjall::flush::worker: Flush completed
x DEBUG lsm_tree::compaction::worker: Compaction choice: Merge(Input { .. })
x DEBUG lsm_tree::tree: Compaction run over
x DEBUG lsm_tree::compaction::worker: Compaction choice: DoNothing in 1µs
x DEBUG lsm_tree::tree: Compaction run over
x DEBUG fjall::flush::worker: Flushing keyspace \"data\"
x DEBUG lsm_tree::compaction::worker: Compaction choice: Merge(Input { .. })
";
        assert_eq!(
            parse_engine_activity(log),
            EngineActivity {
                flushes: 1,
                merges: 1,
                in_flush: true,
                in_merge: true
            }
        );
    }
}
