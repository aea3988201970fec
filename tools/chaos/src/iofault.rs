//! The I/O fault: an `LD_PRELOAD` shim (`faultshim.c`) that makes the
//! server's writes or syncs of files in its data directory fail with EIO or
//! ENOSPC from a moment the test chooses (it creates a trigger file) until
//! the trigger is removed. It checks the documented behaviour of a failing
//! disk: writes refused, reads still served, nothing acknowledged that was
//! not durable, every acknowledged write recovered after a restart
//! (`tests/iofault.rs`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The C source of the shim.
pub const SHIM_SOURCE: &str = include_str!("faultshim.c");
/// The file name of the compiled shim.
pub const SHIM_FILE: &str = "libstrata_faultshim.so";

/// Which calls fail while the fault is armed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOps {
    /// fsync, fdatasync, sync_file_range.
    Sync,
    /// write, writev, pwrite, pwritev.
    Write,
}

/// The errno a failing call returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultErrno {
    Eio,
    Enospc,
}

/// One armed-or-not fault on one data directory.
#[derive(Clone, Debug)]
pub struct Fault {
    pub data_dir: PathBuf,
    /// Exists while the fault is armed.
    pub trigger: PathBuf,
    /// One line per injected failure: `<op>\t<path>`.
    pub log: PathBuf,
    pub ops: FaultOps,
    pub errno: FaultErrno,
}

impl Fault {
    /// Compiles the shim into `dir`; returns its absolute path.
    pub fn build_shim(dir: &Path) -> anyhow::Result<PathBuf> {
        crate::powerloss::compile_shim(dir, "faultshim.c", SHIM_SOURCE, SHIM_FILE)
    }

    /// The environment the server needs, `LD_PRELOAD` included. Paths must
    /// be absolute (the shim compares them with what `/proc` reports).
    pub fn env(&self, shim: &Path) -> Vec<(&'static str, OsString)> {
        let ops = match self.ops {
            FaultOps::Sync => "sync",
            FaultOps::Write => "write",
        };
        let errno = match self.errno {
            FaultErrno::Eio => "EIO",
            FaultErrno::Enospc => "ENOSPC",
        };
        vec![
            ("LD_PRELOAD", shim.into()),
            ("STRATA_FAULT_DIR", self.data_dir.clone().into()),
            ("STRATA_FAULT_TRIGGER", self.trigger.clone().into()),
            ("STRATA_FAULT_LOG", self.log.clone().into()),
            ("STRATA_FAULT_OPS", ops.into()),
            ("STRATA_FAULT_ERRNO", errno.into()),
        ]
    }

    pub fn arm(&self) -> std::io::Result<()> {
        std::fs::write(&self.trigger, b"armed\n")
    }

    pub fn disarm(&self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.trigger) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The failures injected so far (lines of the fault log).
    pub fn injected(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}
