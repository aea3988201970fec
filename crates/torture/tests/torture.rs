//! Runs the torture loop for 3 kill -9 cycles against the real `strata`
//! binary and requires zero lost writes, zero torn batches and no other
//! violation. Small on purpose (about a second on 2 cores); the long runs
//! are `target/release/strata-torture --cycles 100` (see the README).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use strata_torture::report::cycle_line;
use strata_torture::{Config, Event, run};

/// Bound on building the server binary when it is missing (a cold build of
/// the workspace on 2 cores, possibly queued behind other cargo processes).
const BUILD_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The `strata` binary to torture.
///
/// Cargo defines `CARGO_BIN_EXE_<name>` only for the package's own
/// binaries, so `CARGO_BIN_EXE_strata` does not exist here. Every binary of
/// the workspace lands in the same `target/<profile>` directory, so the
/// server is looked for next to `strata-torture`. `cargo test --workspace`
/// (what CI runs) always builds it there, fresh.
///
/// When it is missing (e.g. `cargo test -p strata-torture` on a fresh
/// clone) we build it, and only then: with `$CARGO build -p strata` in the
/// profile of this test run, so the result lands in this very directory and
/// reuses the dependencies this run already built. Cargo releases its build
/// lock while tests run, so the nested build does not deadlock with the
/// `cargo test` that started us (it may wait for other cargo processes:
/// hence the bounded wait). We do not rebuild an existing binary every
/// time: `-p strata` alone can resolve other dependency features than
/// `--workspace` and turn a no-op into a long rebuild that replaces the
/// binary other tests use. The price: after editing the server, run
/// `cargo build -p strata` (or the workspace tests) before
/// `cargo test -p strata-torture`, or this tests the previous build.
fn strata_bin() -> PathBuf {
    let torture = Path::new(env!("CARGO_BIN_EXE_strata-torture"));
    let dir = torture.parent().expect("target/<profile> directory");
    let bin = dir.join(format!("strata{}", std::env::consts::EXE_SUFFIX));
    if bin.is_file() {
        return bin;
    }
    let profile_dir = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
    let target_dir = dir.parent().expect("target directory");
    // `cargo test` builds in the `test` profile (target/debug), `cargo test
    // --release` in `release`; a custom profile has its own directory.
    let profile = match profile_dir {
        "debug" => "test",
        other => other,
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!(
        "{} is missing; building it: {cargo} build -p strata --profile {profile}",
        bin.display()
    );
    let mut child = Command::new(&cargo)
        .args([
            "build",
            "-p",
            "strata",
            "--profile",
            profile,
            "--target-dir",
        ])
        .arg(target_dir)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .spawn()
        .expect("spawn cargo");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for cargo") {
            assert!(status.success(), "cargo build -p strata failed: {status}");
            break;
        }
        if started.elapsed() > BUILD_TIMEOUT {
            // Our own child, by its handle (pid).
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "cargo build -p strata took longer than {BUILD_TIMEOUT:?}; build it first: cargo build -p strata"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        bin.is_file(),
        "cargo built strata, but not at {}",
        bin.display()
    );
    bin
}

#[test]
fn three_kill9_cycles_lose_nothing() {
    let bin = strata_bin();
    let mut cfg = Config::new(bin, 0x7047_7572_6500_0003);
    cfg.cycles = Some(3);
    cfg.writers = 4;
    // Long enough for writes to be acknowledged even on a loaded CI box.
    cfg.kill_min_ms = 100;
    cfg.kill_max_ms = 250;
    // Every cycle also kills once during recovery, so CI covers that path.
    cfg.recovery_kill_pct = 100;
    // The smallest memtable the server accepts, so flushes can happen too.
    cfg.server_args = vec!["--memtable-size-bytes=1048576".into()];
    cfg.value_bytes_max = 16 * 1024;

    let started = Instant::now();
    let summary = run(&cfg, &mut |event| match event {
        Event::Cycle(c) => eprintln!("{}", cycle_line(c)),
        Event::Violation(v) => eprintln!("VIOLATION: {v}"),
        Event::Note(n) => eprintln!("{n}"),
        Event::Started { .. } => {}
    })
    .expect("the torture run could not be set up");
    eprintln!(
        "{} cycles, {} acknowledged writes, {:.1} s",
        summary.cycles,
        summary.acked_total,
        started.elapsed().as_secs_f64()
    );

    assert!(
        summary.passed,
        "violations (replay: {}):\n{:#?}",
        summary.replay, summary.violations
    );
    assert_eq!(
        (summary.lost, summary.torn, summary.other_violations),
        (0, 0, 0)
    );
    assert_eq!(summary.cycles, 3);
    assert_eq!(summary.ready.count, 3, "every restart was timed");
    assert_eq!(summary.recovery_kills, 3);
    // (Any refused write would have been a violation above.)
    assert!(summary.acked_total > 0, "no write was acknowledged");
    assert!(summary.final_keys.is_some(), "the final full check ran");
}
