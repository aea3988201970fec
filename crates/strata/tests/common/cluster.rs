//! Cluster harness for the end-to-end tests: N real `strata server`
//! processes on loopback, in temp dirs, with ports chosen before they start
//! (so a restarted node comes back on the same RESP and peer ports).
//!
//! The process management lives in `strata_test_kit::cluster` (shared with
//! the tools); this module binds it to the binary under test
//! and adds the helpers the tests use. Every wait is bounded; waits poll
//! instead of sleeping. Dropping a [`Cluster`] kills every node.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use strata_client::Client;
pub use strata_client::resp::Reply;
#[allow(unused_imports)]
pub use strata_test_kit::cluster::{
    Cluster, ClusterConfig, JoinAs, LeaderView, Node, POLL, call_once, connect, free_addr,
    parse_fields, reply_text,
};
#[allow(unused_imports)]
pub use strata_test_kit::proxy::Proxy;

use super::strata_bin;

/// Bound on electing a leader at start-up or after a failure.
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on a node catching up (log replay or snapshot install).
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// Fast failure detection: 50 ms heartbeats, 300 ms election timeout.
pub fn config(nodes: u64) -> ClusterConfig {
    ClusterConfig::new(strata_bin(), nodes)
}

/// Unwraps an `anyhow::Result`, or panics with `what`, the error and every
/// node's log tail: `must!(cluster, cluster.wait_for_leader(t), "leader")`.
/// A macro so that the result (which may borrow the cluster mutably) is
/// evaluated before the cluster is borrowed for the logs.
#[macro_export]
macro_rules! must {
    ($cluster:expr, $result:expr, $what:expr $(,)?) => {{
        let result: anyhow::Result<_> = $result;
        match result {
            Ok(v) => v,
            Err(e) => panic!("{}: {:#}\n{}", $what, e, $cluster.logs_tail(40)),
        }
    }};
}

/// Starts a cluster and waits for its first leader; panics with the logs
/// on failure.
pub fn start(config: ClusterConfig) -> (Cluster, u64) {
    let mut cluster = Cluster::start(config).unwrap_or_else(|e| panic!("start cluster: {e:#}"));
    let leader = must!(
        cluster,
        cluster.wait_for_leader(LEADER_TIMEOUT),
        "first leader"
    );
    (cluster, leader)
}

/// Starts a cluster whose peer traffic goes through a fault proxy (every
/// node's `--initial-cluster` names the proxy's listeners) and waits for a
/// leader.
pub fn start_proxied(mut config: ClusterConfig) -> (Cluster, Proxy, u64) {
    let mut proxy = Proxy::new(1);
    for id in 1..=config.nodes {
        let addr = proxy.add_node(id).expect("proxy listener");
        config.advertise.insert(id, addr);
    }
    let mut cluster = Cluster::prepare(config).unwrap_or_else(|e| panic!("prepare: {e:#}"));
    for id in cluster.ids() {
        proxy.set_target(id, cluster.node(id).peer_listen);
        must!(cluster, cluster.node_mut(id).start(), "start node");
    }
    let leader = must!(
        cluster,
        cluster.wait_for_leader(LEADER_TIMEOUT),
        "first leader"
    );
    (cluster, proxy, leader)
}

/// The ids of the nodes other than `id`.
pub fn others(cluster: &Cluster, id: u64) -> Vec<u64> {
    cluster.ids().into_iter().filter(|&n| n != id).collect()
}

/// Is this an error a cluster may answer while it cannot serve
/// (`-CLUSTERDOWN` / `-TRYAGAIN`)?
pub fn is_cluster_error(reply: &Reply) -> bool {
    matches!(reply, Reply::Error(e) if e.starts_with("CLUSTERDOWN") || e.starts_with("TRYAGAIN"))
}

/// Sends `args` to `addr`, retrying (bounded by `timeout`) on cluster
/// errors and connection failures; returns the first other reply.
pub fn call_retry(addr: SocketAddr, args: &[&str], timeout: Duration) -> Reply {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match call_once(addr, args, Duration::from_secs(10)) {
            Ok(reply) if !is_cluster_error(&reply) => return reply,
            Ok(reply) => format!("{reply:?}"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            Instant::now() < deadline,
            "{} on {addr}: no answer within {timeout:?}; last: {last}",
            args.join(" ")
        );
        std::thread::sleep(POLL);
    }
}

/// SET through `node` (retrying over failover); must answer +OK.
pub fn set(node: &Node, key: &str, value: &str) {
    let reply = call_retry(node.resp_addr, &["SET", key, value], LEADER_TIMEOUT);
    assert_eq!(reply, Reply::ok(), "SET {key} on node {}", node.id);
}

/// A linearizable GET through `node` (retrying over failover).
pub fn get(node: &Node, key: &str) -> Option<String> {
    match call_retry(node.resp_addr, &["GET", key], LEADER_TIMEOUT) {
        Reply::Bulk(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        Reply::Null => None,
        other => panic!("GET {key} on node {}: {other:?}", node.id),
    }
}

/// A connection switched to local (possibly stale) reads with READONLY.
pub fn readonly(node: &Node) -> Client {
    let mut client = node
        .client(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("connect to node {}: {e:#}", node.id));
    let reply = client.call(&["READONLY"]).expect("READONLY");
    assert_eq!(reply, Reply::ok(), "READONLY on node {}", node.id);
    client
}

/// MGET of `keys` on `client`, as strings.
pub fn mget(client: &mut Client, keys: &[String]) -> Vec<Option<String>> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(500) {
        let mut args = vec!["MGET"];
        args.extend(chunk.iter().map(String::as_str));
        match client.call(&args).expect("MGET") {
            Reply::Array(values) => out.extend(values.into_iter().map(|v| match v {
                Reply::Bulk(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                Reply::Null => None,
                other => panic!("MGET value {other:?}"),
            })),
            other => panic!("MGET: {other:?}"),
        }
    }
    out
}

/// Waits until the READONLY (local) reads of `node` show exactly
/// `expected` for every key; panics with the differences after `timeout`.
pub fn wait_local_data(node: &Node, expected: &[(String, String)], timeout: Duration) {
    let keys: Vec<String> = expected.iter().map(|(k, _)| k.clone()).collect();
    let deadline = Instant::now() + timeout;
    let mut client = readonly(node);
    loop {
        let values = mget(&mut client, &keys);
        let missing: Vec<_> = expected
            .iter()
            .zip(&values)
            .filter(|((_, v), got)| got.as_deref() != Some(v.as_str()))
            .map(|((k, v), got)| format!("{k}: want {v:?}, got {got:?}"))
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {} local reads still differ after {timeout:?} ({} keys), e.g. {:?}\nlog tail:\n{}",
            node.id,
            missing.len(),
            &missing[..missing.len().min(5)],
            node.log_tail(40)
        );
        std::thread::sleep(POLL);
    }
}

/// A numeric field of `INFO replication`.
pub fn info_u64(node: &Node, field: &str) -> u64 {
    let info = node
        .info("replication")
        .unwrap_or_else(|e| panic!("INFO replication on node {}: {e:#}", node.id));
    let v = info.get(field).unwrap_or_else(|| {
        panic!(
            "INFO replication of node {} has no {field}: {info:?}",
            node.id
        )
    });
    v.parse()
        .unwrap_or_else(|_| panic!("INFO replication {field}={v:?} on node {}", node.id))
}

/// Polls `f` until it returns `Some`, at most `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// `CLUSTER MEMBERS` of `node`, parsed: (id, peer, client, kind, role).
pub fn cluster_nodes(node: &Node) -> Vec<(u64, String, String, String, String)> {
    let text = node
        .call_text(&["CLUSTER", "MEMBERS"])
        .unwrap_or_else(|e| panic!("CLUSTER MEMBERS on node {}: {e:#}", node.id));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(f.len(), 5, "CLUSTER MEMBERS line {line:?}");
            (
                f[0].parse()
                    .unwrap_or_else(|_| panic!("node id in {line:?}")),
                f[1].to_string(),
                f[2].to_string(),
                f[3].to_string(),
                f[4].to_string(),
            )
        })
        .collect()
}
