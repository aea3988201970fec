//! The HTTP listener's operations surface through the real binary and a
//! real HTTP client: `--http-listen` (ephemeral port, `off`, a port in
//! use), `/v1/status/*`, `/livez`, `/readyz` on a single node and in a
//! 3-node cluster (not ready before a leader is known, nor when cut off
//! from the majority), JSON errors, and `/metrics`: its text read by a
//! strict OpenMetrics parser, its counters checked to move with commands.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::TestServer;
use common::cluster::{self, Cluster, POLL};
use common::http::{self, Answer};

/// Bound on a probe changing its answer (an election is ~300 ms in tests;
/// a leader without a quorum is judged after 4 election timeouts).
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

fn url(base: &str, path: &str) -> String {
    format!("{base}{path}")
}

/// Polls `GET url` until `want` holds for the answer (bounded).
fn wait_for_answer(what: &str, url: &str, want: impl Fn(&Answer) -> bool) -> Answer {
    let deadline = Instant::now() + PROBE_TIMEOUT;
    loop {
        let last = http::try_send("GET", url, b"");
        if let Ok(answer) = &last
            && want(answer)
        {
            return last.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {url} not as wanted within {PROBE_TIMEOUT:?}; last: {last:?}"
        );
        std::thread::sleep(POLL);
    }
}

fn assert_json_error(a: &Answer, status: u16, code: &str) {
    assert_eq!(a.status, status, "{}", a.text());
    assert!(
        a.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        a.headers
    );
    let json = a.json();
    assert_eq!(json["error"], code, "{json}");
    assert!(
        json["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{json}"
    );
}

#[test]
fn single_node_status_probes_and_json_errors() {
    let server = TestServer::start_with(&[
        "--value-size-bytes-max",
        "1024",
        "--request-size-bytes-max",
        "20000",
    ]);
    let base = server.http_base();
    assert_ne!(
        server.http_addr.unwrap().port(),
        0,
        "the bound port is reported"
    );

    let live = http::get(&url(&base, "/livez"));
    assert_eq!(live.status, 200, "{}", live.text());
    let live = live.json();
    assert_eq!(live["status"], "ok");
    let names: Vec<&str> = live["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["storage", "tasks"], "{live}");
    let ready = http::get(&url(&base, "/readyz"));
    assert_eq!(ready.status, 200, "{}", ready.text());

    let node = http::get(&url(&base, "/v1/status/node")).json();
    assert_eq!(node["mode"], "single");
    assert_eq!(node["role"], "standalone");
    assert_eq!(node["storage"], "ok");
    assert!(node["id"].is_null() && node["term"].is_null(), "{node}");
    let before = node["applied_index"].as_u64().unwrap();
    let mut conn = server.redis();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut conn)
        .unwrap();
    let node = http::get(&url(&base, "/v1/status/node")).json();
    assert!(node["applied_index"].as_u64().unwrap() > before, "{node}");
    assert_eq!(node["commit_index"], node["applied_index"]);

    let leader = http::get(&url(&base, "/v1/status/leader")).json();
    assert_eq!(leader["leader"]["kind"], "standalone");
    assert_eq!(
        leader["leader"]["client_addr"],
        server.resp_addr.to_string()
    );
    let peers = http::get(&url(&base, "/v1/status/peers")).json();
    assert_eq!(peers["peers"].as_array().unwrap().len(), 1, "{peers}");
    check_json_errors(&server);
}

/// Errors are JSON, whoever makes them: the router, the method check, the
/// body limit (--request-size-bytes-max, 20000 here), the Host check.
fn check_json_errors(server: &TestServer) {
    let base = server.http_base();
    assert_json_error(&http::get(&url(&base, "/v1/nope")), 404, "not_found");
    let post = http::send("POST", &url(&base, "/livez"), b"");
    assert_json_error(&post, 405, "method_not_allowed");
    assert!(
        post.header("allow").is_some_and(|a| a.contains("GET")),
        "{post:?}"
    );
    // Refused on its declared length, before a byte of it is read (sent
    // by hand: a client that sent the body would race the server's close).
    let head = "PUT /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 30000\r\n\r\n";
    let (status, body) = raw_exchange(server.http_addr.unwrap(), head);
    assert_eq!(status, 413, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{body}"));
    assert_eq!(json["error"], "too_large", "{json}");

    // A loopback listener serves loopback host names only (DNS rebinding).
    let head = "GET /v1/status/node HTTP/1.1\r\nHost: rebound.example:7382\r\n\r\n";
    let (status, body) = raw_exchange(server.http_addr.unwrap(), head);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("forbidden_host"), "{body}");
    let head = "GET /livez HTTP/1.1\r\nHost: localhost\r\n\r\n";
    assert_eq!(raw_exchange(server.http_addr.unwrap(), head).0, 200);
}

/// Sends `request` as is and reads one response: (status, body).
fn raw_exchange(addr: std::net::SocketAddr, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(http::HTTP_TIMEOUT)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok());
            if length.is_some_and(|n| body.len() >= n) {
                let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok());
                return (status.unwrap_or(0), body.to_string());
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => panic!("closed before a whole response: {text:?}"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading the response: {e}; so far {text:?}"),
        }
    }
}

#[test]
fn http_listen_off_and_a_port_in_use() {
    let off = TestServer::start_with(&["--http-listen", "off"]);
    assert_eq!(off.http_addr, None, "the ready line says http=off");
    let mut c = off.redis();
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (code, _, err) = common::run_strata(&[
        "server",
        "--listen",
        "127.0.0.1:0",
        "--text-listen",
        "off",
        "--http-listen",
        &addr,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

#[test]
fn metrics_parse_strictly_and_counters_move() {
    let server = TestServer::start();
    let base = server.http_base();
    let mut conn = server.redis();
    for i in 0..3 {
        set(&mut conn, &format!("secret-key-{i}"));
    }
    let _: Option<String> = redis::cmd("GET")
        .arg("secret-key-0")
        .query(&mut conn)
        .unwrap();
    let _: Option<String> = redis::cmd("GET").arg("missing").query(&mut conn).unwrap();
    let _ = redis::cmd("NOSUCHCOMMAND").query::<()>(&mut conn);
    let _ = redis::cmd("GET").query::<()>(&mut conn);

    let answer = http::get(&url(&base, "/metrics"));
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let text = answer.text();
    let m = parse_openmetrics(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    check_single_node_families(&m, &text);
    let set_ok = [("command", "set"), ("result", "ok")];
    assert_eq!(m.value("strata_commands_total", &set_ok), Some(3.0));
    let get_ok = [("command", "get"), ("result", "ok")];
    assert_eq!(m.value("strata_commands_total", &get_ok), Some(2.0));
    let get_rejected = [("command", "get"), ("result", "rejected")];
    assert_eq!(m.value("strata_commands_total", &get_rejected), Some(1.0));
    assert!(m.value("strata_error_replies_total", &[("code", "ERR")]) >= Some(2.0));
    assert_eq!(m.value("strata_keys", &[]), Some(3.0));
    assert_eq!(m.value("strata_connections", &[]), Some(1.0));
    let set_latency = [("command", "set")];
    let latency_count = "strata_command_duration_seconds_count";
    assert_eq!(m.value(latency_count, &set_latency), Some(3.0));
    let fsyncs = m.value("strata_storage_fsync_duration_seconds_count", &[]);
    assert!(fsyncs >= Some(3.0), "--fsync always: a sync per write here");
    let groups = "strata_storage_group_commit_mutations_count";
    let groups_before = m.value(groups, &[]).unwrap();

    // Five more SETs move exactly these counters by five.
    for i in 0..5 {
        set(&mut conn, &format!("more-{i}"));
    }
    let m2 = parse_openmetrics(&http::get(&url(&base, "/metrics")).text()).unwrap();
    assert_eq!(m2.value("strata_commands_total", &set_ok), Some(8.0));
    assert_eq!(m2.value(latency_count, &set_latency), Some(8.0));
    assert_eq!(m2.value("strata_keys", &[]), Some(8.0));
    let groups_after = m2.value(groups, &[]).unwrap();
    assert_eq!(groups_after - groups_before, 5.0, "one group per SET");
}

fn set(conn: &mut redis::Connection, key: &str) {
    let _: () = redis::cmd("SET").arg(key).arg("v").query(conn).unwrap();
}

/// The families a single node shows, none of the cluster's, the build,
/// and never a key or a client address in a label.
fn check_single_node_families(m: &Metrics, text: &str) {
    for family in [
        "strata_build",
        "strata_commands",
        "strata_command_duration_seconds",
        "strata_connections",
        "strata_keys",
        "strata_read_cache_hits",
        "strata_storage_disk_bytes",
        "strata_storage_group_commit_mutations",
        "strata_storage_fsync_duration_seconds",
        "strata_storage_write_stalled",
        "strata_error_replies",
    ] {
        assert!(m.types.contains_key(family), "no {family} in\n{text}");
    }
    let raft = m.types.keys().any(|f| f.starts_with("strata_raft_"));
    assert!(!raft, "{text}");
    let private = text.contains("secret-key") || text.contains("127.0.0.1");
    assert!(!private, "{text}");
    let version = [
        ("version", env!("CARGO_PKG_VERSION")),
        ("redis_version", "7.2.0"),
    ];
    assert_eq!(m.value("strata_build_info", &version), Some(1.0));
}

#[test]
fn cluster_status_and_readiness() {
    let mut cluster = Cluster::prepare(cluster::config(3)).expect("prepare cluster");
    must_start(&mut cluster, 1);
    let base1 = http_base(&cluster, 1);

    // Alone, node 1 knows no leader: alive, not ready.
    let not_ready = http::get(&url(&base1, "/readyz"));
    assert_eq!(not_ready.status, 503, "{}", not_ready.text());
    assert_eq!(not_ready.header("retry-after"), Some("1"));
    let json = not_ready.json();
    assert_eq!(json["error"], "not_ready");
    assert!(
        json["message"].as_str().unwrap().contains("no leader"),
        "{json}"
    );
    assert_eq!(http::get(&url(&base1, "/livez")).status, 200);
    let leader = http::get(&url(&base1, "/v1/status/leader")).json();
    assert!(leader["leader"].is_null(), "{leader}");
    let node = http::get(&url(&base1, "/v1/status/node")).json();
    assert_eq!(
        (node["mode"].as_str(), node["id"].as_u64()),
        (Some("cluster"), Some(1))
    );
    assert!(node["leader"].is_null(), "{node}");
    // A 503 from a probe is an answer, not an error to log.
    let log = cluster.node(1).log();
    assert!(!log.contains(" ERROR "), "{log}");

    must_start(&mut cluster, 2);
    must_start(&mut cluster, 3);
    let leader_id = must!(cluster, cluster.wait_for_leader(PROBE_TIMEOUT), "leader");
    for id in cluster.ids() {
        let base = http_base(&cluster, id);
        wait_for_answer("ready", &url(&base, "/readyz"), |a| a.status == 200);
        let view = http::get(&url(&base, "/v1/status/leader")).json();
        assert_eq!(
            view["leader"]["id"].as_u64(),
            Some(leader_id),
            "node {id}: {view}"
        );
        let peers = http::get(&url(&base, "/v1/status/peers")).json();
        let peers = peers["peers"].as_array().unwrap().clone();
        assert_eq!(peers.len(), 3);
        assert_eq!(peers.iter().filter(|p| p["leader"] == true).count(), 1);
        assert!(peers.iter().all(|p| p["kind"] == "voter"));
    }
    cluster::set(cluster.node(leader_id), "k", "v");
    check_raft_metrics(&cluster, leader_id);

    // Cut off from the majority: the survivor stops being ready, stays alive.
    let survivor = cluster
        .ids()
        .into_iter()
        .find(|&id| id != leader_id)
        .unwrap();
    for id in cluster::others(&cluster, survivor) {
        cluster.node_mut(id).kill9();
    }
    let base = http_base(&cluster, survivor);
    let answer = wait_for_answer("not ready", &url(&base, "/readyz"), |a| a.status == 503);
    assert_eq!(answer.json()["error"], "not_ready");
    assert_eq!(http::get(&url(&base, "/livez")).status, 200);
}

fn must_start(cluster: &mut Cluster, id: u64) {
    must!(cluster, cluster.node_mut(id).start(), "start node");
}

fn http_base(cluster: &Cluster, id: u64) -> String {
    let ready = cluster.node(id).last_ready.as_ref().expect("started");
    format!("http://{}", ready.http.expect("the HTTP listener is on"))
}

/// The leader's Raft metrics after a write.
fn check_raft_metrics(cluster: &Cluster, leader: u64) {
    let text = http::get(&url(&http_base(cluster, leader), "/metrics")).text();
    let m = parse_openmetrics(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(m.value("strata_raft_has_leader", &[]), Some(1.0));
    assert_eq!(m.value("strata_raft_is_leader", &[]), Some(1.0));
    assert!(m.value("strata_raft_term", &[]) >= Some(1.0));
    assert!(m.value("strata_raft_leader_changes_total", &[]) >= Some(1.0));
    assert!(m.value("strata_raft_proposals_total", &[]) >= Some(1.0));
    assert!(m.value("strata_raft_commit_index", &[]) >= m.value("strata_raft_applied_index", &[]));
    for follower in cluster::others(cluster, leader) {
        let id = follower.to_string();
        let lag = m.value("strata_raft_follower_lag_entries", &[("follower", &id)]);
        assert!(lag.is_some(), "no lag for follower {id}:\n{text}");
    }
    assert_eq!(
        m.value("strata_raft_members", &[("kind", "voter")]),
        Some(3.0)
    );
    for keyspace in ["data", "raftlog", "dedupe", "journal"] {
        let disk = m.value("strata_storage_disk_bytes", &[("keyspace", keyspace)]);
        assert!(disk.is_some(), "no disk bytes for {keyspace}");
    }
}

/// Metrics as a strict OpenMetrics reading found them: family types, and
/// each sample's value by `name{label="value",...}` (labels sorted).
struct Metrics {
    types: BTreeMap<String, String>,
    samples: BTreeMap<String, f64>,
}

impl Metrics {
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples.get(&series_key(name, labels)).copied()
    }
}

fn series_key(name: &str, mut labels: Vec<(String, String)>) -> String {
    labels.sort();
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// Reads the OpenMetrics text format strictly, as far as Strata uses it:
/// every line a `# HELP`, `# TYPE`, `# UNIT` or a sample; the text ends
/// with `# EOF`; a family is described once, before its samples, with a
/// known type, and a unit its name ends with; every sample belongs to the
/// family described last, with a suffix its type allows; names and labels
/// are well formed; values parse; no series appears twice; counters are
/// not negative; histogram buckets rise with `le`, end in `+Inf`, and the
/// `+Inf` bucket equals `_count`.
fn parse_openmetrics(text: &str) -> Result<Metrics, String> {
    let body = text
        .strip_suffix("# EOF\n")
        .ok_or("the text does not end with `# EOF`")?;
    let mut m = Metrics {
        types: BTreeMap::new(),
        samples: BTreeMap::new(),
    };
    let mut family: Option<(String, String)> = None;
    let mut buckets: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (n, line) in body.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            descriptor(rest, &mut m, &mut family).map_err(at)?;
            continue;
        }
        let (name, labels, value) = sample(line).map_err(at)?;
        let (fam, kind) = family
            .as_ref()
            .ok_or_else(|| at("a sample before any TYPE".into()))?;
        check_suffix(&name, fam, kind).map_err(at)?;
        if kind == "counter" && value < 0.0 {
            return Err(at("a negative counter".into()));
        }
        if name.ends_with("_bucket") {
            let le = labels
                .iter()
                .find(|(k, _)| k == "le")
                .ok_or_else(|| at("no le".into()))?;
            let le = parse_value(&le.1).map_err(at)?;
            let rest: Vec<_> = labels.iter().filter(|(k, _)| k != "le").cloned().collect();
            let count_key = series_key(&format!("{fam}_count"), rest);
            buckets.entry(count_key).or_default().push((le, value));
        }
        let key = series_key(&name, labels);
        if m.samples.insert(key.clone(), value).is_some() {
            return Err(at(format!("series {key} appears twice")));
        }
    }
    check_histograms(&m, &buckets)?;
    Ok(m)
}

/// `HELP`, `TYPE` or `UNIT`.
fn descriptor(
    rest: &str,
    m: &mut Metrics,
    family: &mut Option<(String, String)>,
) -> Result<(), String> {
    let (keyword, rest) = rest.split_once(' ').ok_or("a bare comment")?;
    let (name, arg) = rest.split_once(' ').ok_or("no argument")?;
    check_name(name, false)?;
    if !name.starts_with("strata_") {
        return Err(format!("{name} lacks the strata_ prefix"));
    }
    match keyword {
        "HELP" if !arg.is_empty() => Ok(()),
        "TYPE" => {
            if !["counter", "gauge", "histogram", "info"].contains(&arg) {
                return Err(format!("unexpected type {arg}"));
            }
            if m.types.insert(name.to_string(), arg.to_string()).is_some() {
                return Err(format!("{name} described twice"));
            }
            *family = Some((name.to_string(), arg.to_string()));
            Ok(())
        }
        "UNIT" if name.ends_with(&format!("_{arg}")) => Ok(()),
        _ => Err(format!("bad {keyword} line")),
    }
}

fn check_suffix(name: &str, family: &str, kind: &str) -> Result<(), String> {
    let suffix = name
        .strip_prefix(family)
        .ok_or_else(|| format!("{name} is not in family {family}"))?;
    let allowed: &[&str] = match kind {
        "counter" => &["_total"],
        "gauge" => &[""],
        "histogram" => &["_bucket", "_sum", "_count"],
        "info" => &["_info"],
        _ => &[],
    };
    if allowed.contains(&suffix) {
        Ok(())
    } else {
        Err(format!("suffix {suffix:?} not allowed for a {kind}"))
    }
}

/// `name{k="v",...} value`.
/// Label pairs, in the order they came.
type Labels = Vec<(String, String)>;

fn sample(line: &str) -> Result<(String, Labels, f64), String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    check_name(name, false)?;
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = label_set(inner)?;
        labels = parsed;
        rest = after;
    }
    let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
    if value.contains(' ') {
        return Err("more after the value (timestamps, exemplars are not expected)".into());
    }
    Ok((name.to_string(), labels, parse_value(value)?))
}

/// The labels up to the closing `}`, and what follows it.
fn label_set(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (key, rest) = s.split_once("=\"").ok_or("a label without =\"")?;
        check_name(key, true)?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().ok_or("an unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("a dangling escape")?.1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.to_string(), value));
        s = &rest[end + 1..];
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

fn check_name(name: &str, label: bool) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (!label && c == ':'));
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (!label && c == ':'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(format!("bad name {name:?}"))
    }
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        v => v.parse().map_err(|_| format!("bad value {v:?}")),
    }
}

fn check_histograms(
    m: &Metrics,
    buckets: &BTreeMap<String, Vec<(f64, f64)>>,
) -> Result<(), String> {
    for (count_key, series) in buckets {
        let rising = series
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
        let last = series.last().ok_or("an empty histogram")?;
        let count = m
            .samples
            .get(count_key)
            .ok_or_else(|| format!("no {count_key}"))?;
        if !rising || last.0 != f64::INFINITY || last.1 != *count {
            return Err(format!(
                "histogram {count_key}: buckets {series:?}, count {count}"
            ));
        }
    }
    Ok(())
}

#[test]
fn the_strict_reader_refuses_what_prometheus_would() {
    let good =
        "# HELP strata_x A thing.\n# TYPE strata_x counter\nstrata_x_total{a=\"1\"} 2\n# EOF\n";
    let m = parse_openmetrics(good).unwrap();
    assert_eq!(m.value("strata_x_total", &[("a", "1")]), Some(2.0));
    for bad in [
        "# TYPE strata_x counter\nstrata_x_total 2\n",
        "# TYPE strata_x counter\nstrata_x 2\n# EOF\n",
        "# TYPE strata_x gauge\nstrata_x{a=\"1} 2\n# EOF\n",
        "# TYPE strata_x gauge\nstrata_x 2\nstrata_x 3\n# EOF\n",
        "# TYPE strata_x gauge\n# TYPE strata_x gauge\n# EOF\n",
        "# TYPE x gauge\nx 1\n# EOF\n",
        "# TYPE strata_x counter\nstrata_x_total -1\n# EOF\n",
        "# TYPE strata_h histogram\nstrata_h_bucket{le=\"1\"} 2\nstrata_h_bucket{le=\"+Inf\"} 1\nstrata_h_count 1\nstrata_h_sum 1\n# EOF\n",
        "# TYPE strata_h histogram\nstrata_h_bucket{le=\"+Inf\"} 2\nstrata_h_count 3\nstrata_h_sum 1\n# EOF\n",
        "strata_y 1\n# EOF\n",
    ] {
        assert!(parse_openmetrics(bad).is_err(), "accepted: {bad:?}");
    }
}
