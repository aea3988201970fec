//! A newcomer's first minute with `strata server`, through the real
//! binary: the help shows defaults and only server flags, sizes and
//! durations take units (flag, environment, file), `--log-format json`
//! writes JSON lines, INFO reports the bound port, a missing config file's
//! error gives its cause once, and a clean SIGTERM (one node or a cluster)
//! logs no ERROR while a peer that is down is reported only now and then.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::cluster::{self, Cluster};
use common::{TestServer, run_strata as run, strata_bin};

/// A server started with extra environment variables (the harness passes
/// flags only); killed on drop.
struct EnvServer {
    child: Child,
    resp_addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl EnvServer {
    fn start(envs: &[(&str, &str)]) -> EnvServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let mut child = Command::new(strata_bin())
            .args(["server", "--listen", "127.0.0.1:0", "--text-listen", "off"])
            .args(["--http-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn strata server");
        let line = common::first_stdout_line(&mut child, common::READY_TIMEOUT);
        let parsed = line.as_deref().ok().and_then(common::parse_ready_line);
        let Some((resp_addr, _)) = parsed else {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
            panic!("server not ready ({line:?}); log:\n{log}");
        };
        EnvServer {
            child,
            resp_addr,
            _dir: dir,
        }
    }
}

impl Drop for EnvServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_conn(addr: SocketAddr) -> redis::Connection {
    let client = redis::Client::open(format!("redis://{addr}/")).expect("client");
    let conn = client
        .get_connection_with_timeout(Duration::from_secs(10))
        .expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn
}

fn config_get(conn: &mut redis::Connection, name: &str) -> String {
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query(conn)
        .expect("CONFIG GET");
    assert_eq!(v.len(), 2, "CONFIG GET {name} -> {v:?}");
    v[1].clone()
}

/// The lines of `log` at ERROR level, in either log format.
fn error_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains(" ERROR ") || l.contains("\"level\":\"ERROR\""))
        .collect()
}

#[test]
fn server_help_shows_defaults_units_and_no_client_flags() {
    let (code, help, err) = run(&["server", "--help"]);
    assert_eq!(code, 0, "{err}");
    for expected in [
        "[default: 127.0.0.1:7379]",
        "[default: 127.0.0.1:7381]",
        "[default: ./strata-data]",
        "[default: always]",
        "[default: 256MiB]",
        "[default: 5m]",
        "[default: text]",
        "256MiB",
        "10s",
    ] {
        assert!(help.contains(expected), "no {expected:?} in:\n{help}");
    }
    assert!(
        !help.contains("--addr"),
        "a client flag in server --help:\n{help}"
    );
    // The client flag still works where it belongs.
    let (_, top, _) = run(&["--help"]);
    assert!(top.contains("--addr"), "{top}");
}

#[test]
fn units_are_accepted_in_flags_environment_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("strata.toml");
    std::fs::write(
        &file,
        "cache_size_bytes = \"64MiB\"\nshutdown_timeout_ms = \"5s\"\nkey_size_bytes_max = 512\n",
    )
    .unwrap();
    let server = TestServer::start_with(&[
        "--memtable-size-bytes",
        "16MiB",
        "--value-size-bytes-max",
        "1MiB",
        "--config",
        file.to_str().unwrap(),
    ]);
    let mut conn = server.redis();
    assert_eq!(config_get(&mut conn, "memtable-size-bytes"), "16777216");
    assert_eq!(config_get(&mut conn, "value-size-bytes-max"), "1048576");
    assert_eq!(config_get(&mut conn, "cache-size-bytes"), "67108864");
    assert_eq!(config_get(&mut conn, "shutdown-timeout-ms"), "5000");
    assert_eq!(config_get(&mut conn, "key-size-bytes-max"), "512");

    let env = EnvServer::start(&[
        ("STRATA_IDLE_TIMEOUT_MS", "2m"),
        ("STRATA_READ_CACHE_SIZE_BYTES", "1GiB"),
    ]);
    let mut conn = redis_conn(env.resp_addr);
    assert_eq!(config_get(&mut conn, "idle-timeout-ms"), "120000");
    assert_eq!(config_get(&mut conn, "read-cache-size-bytes"), "1073741824");

    // Refused clearly, before anything starts.
    let data = dir.path().join("never");
    let data = data.to_str().unwrap();
    let (code, _, err) = run(&[
        "server",
        "--data-dir",
        data,
        "--cache-size-bytes",
        "5 parsecs",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown unit") && err.contains("MiB"), "{err}");
    let (code, _, err) = run(&[
        "server",
        "--data-dir",
        data,
        "--idle-timeout-ms",
        "99999999999999d",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("too large"), "{err}");
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let mut server = TestServer::start_with(&["--log-format", "json"]);
    let _ = server.redis();
    assert!(server.stop_graceful().success());
    let log = server.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "too few log lines:\n{log}");
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    assert!(log.contains("\"listening\""), "{log}");
}

#[test]
fn info_reports_the_bound_port() {
    let server = TestServer::start();
    assert_ne!(server.resp_addr.port(), 0);
    let mut conn = server.redis();
    let info: String = redis::cmd("INFO").arg("server").query(&mut conn).unwrap();
    let port = info
        .lines()
        .find_map(|l| l.strip_prefix("tcp_port:"))
        .unwrap_or_else(|| panic!("no tcp_port in {info}"));
    assert_eq!(port.trim(), server.resp_addr.port().to_string(), "{info}");
    assert_eq!(
        config_get(&mut conn, "port"),
        server.resp_addr.port().to_string()
    );
}

#[test]
fn a_missing_config_file_gives_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nonexistent.toml");
    let (code, _, err) = run(&["server", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nonexistent.toml"), "{err}");
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}

#[test]
fn sigterm_on_a_single_node_logs_no_error() {
    let mut server = TestServer::start();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut server.redis())
        .unwrap();
    assert!(server.stop_graceful().success());
    let log = server.log();
    assert!(error_lines(&log).is_empty(), "{log}");
    assert!(log.contains("SIGTERM"), "{log}");
}

/// One cluster for both: a down peer is reported only every few seconds
/// (with the default log filter), then a cluster-wide SIGTERM logs no
/// ERROR.
#[test]
fn cluster_down_peer_warns_rarely_and_sigterm_logs_no_error() {
    let mut config = cluster::config(3);
    // Empty: the server's default filter, as an operator gets it.
    config.rust_log = String::new();
    let (mut cluster, leader): (Cluster, u64) = cluster::start(config);
    cluster::set(cluster.node(leader), "k", "v");
    let down = cluster::others(&cluster, leader)[0];
    // Every survivor is watched, not only the first leader: on a loaded
    // machine leadership can move during the wait, and then the new
    // leader is the one whose heartbeats to the down peer fail. Lines are
    // counted from before the kill: the first warning can come at once.
    let survivors = cluster::others(&cluster, down);
    let before: Vec<usize> = survivors
        .iter()
        .map(|&id| cluster.node(id).log().lines().count())
        .collect();
    cluster.node_mut(down).kill9();
    // Longer than the 5 s between two warnings for one peer: a warning
    // spent at start-up (the peer was not up yet) cannot hide the failure.
    // 50 ms heartbeats: one warning per failed heartbeat would be ~120.
    std::thread::sleep(Duration::from_secs(6));
    let mut reported = 0;
    for (&id, &skip) in survivors.iter().zip(&before) {
        let log = cluster.node(id).log();
        let warnings: Vec<&str> = log
            .lines()
            .skip(skip)
            .filter(|l| l.contains(" WARN "))
            .collect();
        reported += warnings
            .iter()
            .filter(|l| l.contains("peer unreachable"))
            .count();
        assert!(
            warnings.len() <= 8,
            "node {id}: a down peer should be reported rarely:\n{}",
            warnings.join("\n")
        );
    }
    assert!(
        reported > 0,
        "no survivor reported the down peer in 6 s\n{}",
        cluster.logs_tail(60)
    );
    cluster.node_mut(down).restart().expect("restart");
    let expected = [("k".to_string(), "v".to_string())];
    cluster::wait_local_data(cluster.node(down), &expected, cluster::CATCH_UP_TIMEOUT);
    for id in cluster.ids() {
        cluster.node(id).signal(libc::SIGTERM);
    }
    for id in cluster.ids() {
        let status = cluster
            .node_mut(id)
            .wait_exit(common::SHUTDOWN_TIMEOUT)
            .expect("exit");
        assert!(status.success(), "node {id}: {status:?}");
    }
    for id in cluster.ids() {
        let log = cluster.node(id).log();
        assert!(error_lines(&log).is_empty(), "node {id}:\n{log}");
    }
}
