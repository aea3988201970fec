//! External programs in tests: bounded runs of a subprocess, and the
//! Redis clients some tests drive (redis-py, redis-cli), installed when
//! missing (pip, apt-get: needs network, and root for apt-get) so that a
//! fresh machine runs them.
//!
//! Every run is bounded: a program still running at its timeout is killed.
//! Its stdout and stderr are read while it runs, so a chatty program
//! cannot block on a full pipe.
#![allow(dead_code)]

use std::fmt;
use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Bound on one install step (pip, apt-get) and on probing a tool.
pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
/// How often a bounded wait looks at the child.
const WAIT_POLL: Duration = Duration::from_millis(20);

/// Why a bounded run gave no finished output.
pub enum RunError {
    /// The program could not be started.
    Spawn(String),
    /// Asking the OS about the child failed.
    Wait(String),
    /// Still running at `timeout`, so killed; `output` is what it printed
    /// until then (its status is the kill's).
    TimedOut { timeout: Duration, output: Output },
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Spawn(e) => write!(f, "spawn: {e}"),
            RunError::Wait(e) => write!(f, "wait: {e}"),
            RunError::TimedOut { timeout, output } => write!(
                f,
                "still running after {timeout:?}; killed. stdout: {} stderr: {}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }
}

/// As Display: tests show errors through `unwrap`, `expect` and `{:?}`,
/// and a killed program's output reads better as text than as bytes.
impl fmt::Debug for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Runs `cmd` to completion with stdin empty and stdout and stderr
/// captured, killing it at `timeout`.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Result<Output, RunError> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RunError::Spawn(format!("{cmd:?}: {e}")))?;
    wait_bounded(child, timeout)
}

/// Waits for `child` (stdout and stderr piped, or not captured), killing
/// it at `timeout`.
pub fn wait_bounded(mut child: Child, timeout: Duration) -> Result<Output, RunError> {
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(WAIT_POLL),
            Ok(None) => {
                let _ = child.kill();
                timed_out = true;
                break child.wait().map_err(|e| RunError::Wait(e.to_string()))?;
            }
            Err(e) => return Err(RunError::Wait(e.to_string())),
        }
    };
    let output = Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    };
    if timed_out {
        return Err(RunError::TimedOut { timeout, output });
    }
    Ok(output)
}

/// What `child` printed within `timeout`, for a program that runs until
/// stopped (`redis-cli --stat`): killed then if still running. Panics
/// only if the OS cannot wait for it.
pub fn output_within(child: Child, timeout: Duration) -> Output {
    match wait_bounded(child, timeout) {
        Ok(output) | Err(RunError::TimedOut { output, .. }) => output,
        Err(e) => panic!("{e}"),
    }
}

/// Whether `cmd` ran and succeeded within [`INSTALL_TIMEOUT`].
fn succeeds(cmd: &mut Command) -> bool {
    run_bounded(cmd, INSTALL_TIMEOUT).is_ok_and(|o| o.status.success())
}

/// Makes sure `python3 -c "import redis"` works, installing redis-py with
/// pip if needed; panics if it cannot.
pub fn ensure_redis_py() {
    let import = || succeeds(Command::new("python3").args(["-c", "import redis"]));
    if import() {
        return;
    }
    let install = run_bounded(
        Command::new("python3").args(["-m", "pip", "install", "--quiet", "redis>=5,<8"]),
        INSTALL_TIMEOUT,
    );
    assert!(
        import(),
        "redis-py is missing and pip could not install it: {install:?}"
    );
}

/// Makes sure `redis-cli` runs from PATH, installing Debian's redis-tools
/// with apt-get if needed (as the bench scripts do); panics if it cannot.
pub fn ensure_redis_cli() {
    let present = || succeeds(Command::new("redis-cli").arg("--version"));
    if present() {
        return;
    }
    let install = apt_install("redis-tools");
    assert!(
        present(),
        "redis-cli is missing and apt-get could not install redis-tools (needs root): {install:?}"
    );
}

/// `apt-get install` of `package`, with `apt-get update` first when the
/// install alone fails (a fresh machine may have no package lists yet).
/// Each step is bounded by [`INSTALL_TIMEOUT`]. `Err` holds every step's
/// outcome.
pub fn apt_install(package: &str) -> Result<(), String> {
    let apt = |args: &[&str]| {
        run_bounded(
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive"),
            INSTALL_TIMEOUT,
        )
    };
    let ok = |run: &Result<Output, RunError>| run.as_ref().is_ok_and(|o| o.status.success());
    let first = apt(&["install", "-y", "-qq", package]);
    if ok(&first) {
        return Ok(());
    }
    let update = apt(&["update", "-qq"]);
    let second = apt(&["install", "-y", "-qq", package]);
    if ok(&second) {
        return Ok(());
    }
    Err(format!("{first:?} {update:?} {second:?}"))
}
