//! Finding the `strata` binary for tests outside the `strata` package.
//!
//! Cargo defines `CARGO_BIN_EXE_<name>` only for a package's own binaries,
//! so the tools' tests cannot name the server that way. Every binary of the
//! workspace lands in the same `target/<profile>` directory, so the server
//! is looked for there, in this order:
//!
//! 1. `STRATA_BIN`, when set;
//! 2. `strata` beside the running test's profile directory. `cargo test
//!    --workspace` (what CI runs) always builds it there, fresh. (When
//!    running only one tool's tests it may be stale: build it first, or run
//!    the workspace tests.) We deliberately do not rebuild an existing
//!    binary: `cargo build -p strata` can resolve other dependency features
//!    than `--workspace`, recompile the server, and swap the binary the
//!    `strata` package's own tests use;
//! 3. otherwise `$CARGO build -p strata` into the same target directory
//!    with the profile `cargo test` uses. Cargo does not hold the target
//!    directory's lock while tests run, so this does not wait for itself
//!    (it may wait for another build: hence the bound).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Bound on building the server when it is missing: a cold build of the
/// workspace on 2 cores, possibly queued behind other cargo processes.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The `strata` binary under test (see the module documentation).
/// Panics when it cannot be found or built: a test without its server has
/// nothing to check.
pub fn strata_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("STRATA_BIN") {
        return PathBuf::from(path);
    }
    let profile_dir = profile_dir();
    let bin = profile_dir.join(format!("strata{}", std::env::consts::EXE_SUFFIX));
    if bin.is_file() {
        return bin;
    }
    build(&profile_dir);
    assert!(
        bin.is_file(),
        "cargo built strata, but not at {}",
        bin.display()
    );
    bin
}

/// `<target>/<profile>`: a test binary runs from `<target>/<profile>/deps`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary in <target>/<profile>/deps")
        .to_path_buf()
}

fn build(profile_dir: &Path) {
    let target_dir = profile_dir.parent().expect("the target directory");
    // `cargo test` builds with the test profile into debug/, `cargo test
    // --release` with the bench profile into release/.
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "test",
        Some("release") => "bench",
        Some(other) => other,
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "no strata in {}; building it: cargo build -p strata --profile {profile}",
        profile_dir.display()
    );
    let mut child = Command::new(cargo)
        .args([
            "build",
            "-p",
            "strata",
            "--profile",
            profile,
            "--target-dir",
        ])
        .arg(target_dir)
        .spawn()
        .expect("spawn cargo build");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for cargo") {
            assert!(status.success(), "cargo build -p strata failed: {status}");
            return;
        }
        if started.elapsed() > BUILD_TIMEOUT {
            // Our own child, by its handle.
            let _ = child.kill();
            let _ = child.wait();
            panic!("cargo build -p strata took over {BUILD_TIMEOUT:?}; build it first");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
