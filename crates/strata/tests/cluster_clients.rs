//! Cluster-aware Redis clients against a 3-node Strata cluster, which
//! presents itself as one Redis Cluster shard (all 16384 slots on the
//! leader, the other members as replicas):
//!
//! - the Redis Cluster commands answer in Redis's formats;
//! - the `redis` crate's async cluster client and redis-py's `RedisCluster`
//!   write and read, keep working through a kill -9 of the leader (bounded
//!   retries while the election runs), and lose no acknowledged write;
//! - `redis-cli --cluster check` passes.
//!
//! redis-py and redis-cli are installed by the tests when missing (pip and
//! apt-get, bounded), so that a fresh machine with network access runs them.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::cluster::*;
use common::tools::{ensure_redis_cli, ensure_redis_py, run_bounded, wait_bounded};

/// Bound on one client operation retried over a failover.
const OP_DEADLINE: Duration = Duration::from_secs(30);
/// Bound on the whole redis-py driver run.
const DRIVER_TIMEOUT: Duration = Duration::from_secs(180);
/// Bound on `redis-cli --cluster check` (it probes every node).
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

fn seeds(cluster: &Cluster) -> Vec<String> {
    cluster
        .ids()
        .iter()
        .map(|&id| cluster.node(id).resp_addr.to_string())
        .collect()
}

fn node_name(id: u64) -> String {
    format!("{id:040x}")
}

#[test]
fn redis_cluster_commands_answer_in_redis_format() {
    let (cluster, leader) = start(config(3));
    for id in cluster.ids() {
        let node = cluster.node(id);
        let slot = node.call(&["CLUSTER", "KEYSLOT", "foo"]).unwrap();
        assert_eq!(slot, Reply::Integer(12182));
        let a = node.call(&["CLUSTER", "KEYSLOT", "{user1000}.following"]);
        let b = node.call(&["CLUSTER", "KEYSLOT", "{user1000}.followers"]);
        assert_eq!(a.unwrap(), b.unwrap());
        assert_eq!(node.call_text(&["CLUSTER", "MYID"]).unwrap(), node_name(id));
        assert_eq!(node.call(&["ASKING"]).unwrap(), Reply::ok());
        let info = node.info("cluster").unwrap();
        assert_eq!(info.get("cluster_enabled").map(String::as_str), Some("1"));
        let info = node.cluster_info().unwrap();
        for (field, want) in [
            ("cluster_slots_assigned", "16384"),
            ("cluster_size", "1"),
            ("cluster_known_nodes", "3"),
        ] {
            assert_eq!(info.get(field).map(String::as_str), Some(want), "{info:?}");
        }
        assert_eq!(info.get("cluster_current_epoch"), info.get("cluster_term"));
    }
    // Every node agrees on the one shard: the leader masters 0-16383.
    let wait = |id: u64| {
        wait_for("CLUSTER NODES with every link up", LEADER_TIMEOUT, || {
            let text = cluster.node(id).call_text(&["CLUSTER", "NODES"]).ok()?;
            (text.lines().filter(|l| l.contains(" connected")).count() == 3).then_some(text)
        })
    };
    for id in cluster.ids() {
        let text = wait(id);
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let nid = u64::from_str_radix(f[0], 16).unwrap();
            let node = cluster.node(nid);
            assert_eq!(f[0].len(), 40, "{line}");
            let addr = format!("{}@{}", node.resp_addr, node.peer_addr.port());
            assert_eq!(f[1], addr, "{line}");
            assert_eq!(f[2].contains("myself"), nid == id, "{line}");
            if nid == leader {
                assert!(f[2].ends_with("master") && f[3] == "-", "{line}");
                assert_eq!(f[8..], ["0-16383"], "{line}");
            } else {
                assert!(
                    f[2].ends_with("slave") && f[3] == node_name(leader),
                    "{line}"
                );
                assert_eq!(f.len(), 8, "{line}");
            }
        }
    }
    // Strata's own view moved to CLUSTER MEMBERS; the CLI prints it for
    // `cluster nodes` and its alias `cluster members`.
    for sub in ["nodes", "members"] {
        let addr = cluster.node(leader).resp_addr.to_string();
        let out = run_bounded(
            Command::new(common::strata_bin()).args(["--addr", &addr, "cluster", sub]),
            CHECK_TIMEOUT,
        )
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "strata cluster {sub}: {out:?}");
        let lines: Vec<Vec<&str>> = stdout.lines().map(|l| l.split(' ').collect()).collect();
        assert_eq!(lines.len(), 3, "{stdout}");
        for (f, id) in lines.iter().zip(1..) {
            assert_eq!(
                f[..2],
                [id.to_string(), cluster.node(id).peer_addr.to_string()]
            );
            assert_eq!(f[3], "voter", "{stdout}");
        }
    }
    // CLUSTER SLOTS names the leader's client address first.
    let leader_addr = cluster.node(leader).resp_addr;
    match cluster.node(leader).call(&["CLUSTER", "SLOTS"]).unwrap() {
        Reply::Array(ranges) => match &ranges[..] {
            [Reply::Array(range)] => {
                assert_eq!(range[..2], [Reply::Integer(0), Reply::Integer(16383)]);
                let Reply::Array(master) = &range[2] else {
                    panic!("{range:?}")
                };
                assert_eq!(
                    reply_text(&master[0]).unwrap(),
                    leader_addr.ip().to_string()
                );
                assert_eq!(master[1], Reply::Integer(i64::from(leader_addr.port())));
                assert_eq!(range.len(), 5, "two replicas: {range:?}");
            }
            other => panic!("CLUSTER SLOTS: {other:?}"),
        },
        other => panic!("CLUSTER SLOTS: {other:?}"),
    }
}

/// SET through the cluster client, retried (bounded) over a failover.
async fn set_retried(conn: &mut redis::cluster_async::ClusterConnection, key: &str, value: &str) {
    let deadline = Instant::now() + OP_DEADLINE;
    loop {
        let reply: redis::RedisResult<()> = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query_async(conn)
            .await;
        match reply {
            Ok(()) => return,
            Err(e) if Instant::now() < deadline => {
                println!("SET {key}: {e}; retrying");
                tokio::time::sleep(POLL).await;
            }
            Err(e) => panic!("SET {key}: no success within {OP_DEADLINE:?}; last: {e}"),
        }
    }
}

async fn get_retried(conn: &mut redis::cluster_async::ClusterConnection, key: &str) -> String {
    let deadline = Instant::now() + OP_DEADLINE;
    loop {
        let reply: redis::RedisResult<Option<String>> =
            redis::cmd("GET").arg(key).query_async(conn).await;
        match reply {
            Ok(v) => return v.unwrap_or_else(|| panic!("GET {key}: nil")),
            Err(e) if Instant::now() < deadline => {
                println!("GET {key}: {e}; retrying");
                tokio::time::sleep(POLL).await;
            }
            Err(e) => panic!("GET {key}: no success within {OP_DEADLINE:?}; last: {e}"),
        }
    }
}

#[test]
fn rust_cluster_client_survives_leader_kill() {
    let (mut cluster, leader) = start(config(3));
    let urls: Vec<String> = seeds(&cluster)
        .iter()
        .map(|a| format!("redis://{a}"))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = redis::cluster::ClusterClient::builder(urls)
        .connection_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut conn = rt
        .block_on(client.get_async_connection())
        .unwrap_or_else(|e| panic!("cluster connect: {e}\n{}", cluster.logs_tail(20)));
    let mut acked = BTreeMap::new();
    type Conn = redis::cluster_async::ClusterConnection;
    let write = |conn: &mut Conn, i: usize, acked: &mut BTreeMap<String, String>| {
        let (key, value) = (format!("rs:{i}"), format!("v{i}"));
        rt.block_on(set_retried(conn, &key, &value));
        acked.insert(key, value);
    };
    for i in 0..50 {
        write(&mut conn, i, &mut acked);
    }
    cluster.node_mut(leader).kill9();
    for i in 50..150 {
        write(&mut conn, i, &mut acked);
    }
    let new_leader = must!(
        cluster,
        cluster.wait_for_new_leader(leader, LEADER_TIMEOUT),
        "new leader"
    );
    for (key, value) in &acked {
        assert_eq!(&rt.block_on(get_retried(&mut conn, key)), value, "{key}");
        assert_eq!(get(cluster.node(new_leader), key).as_ref(), Some(value));
    }
}

/// A client whose map still names a deposed leader (paused past an
/// election, then resumed as a follower) keeps being served: the old
/// leader forwards instead of answering -MOVED, and its CLUSTER SLOTS names
/// the new leader for clients that refresh.
#[test]
fn rust_cluster_client_served_by_a_deposed_leader() {
    let (mut cluster, leader) = start(config(3));
    let urls: Vec<String> = seeds(&cluster)
        .iter()
        .map(|a| format!("redis://{a}"))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = redis::cluster::ClusterClient::new(urls).unwrap();
    let mut conn = rt.block_on(client.get_async_connection()).unwrap();
    rt.block_on(set_retried(&mut conn, "before", "1"));

    cluster.node(leader).pause();
    let survivors = others(&cluster, leader);
    let new_leader = must!(
        cluster,
        cluster.wait_for_leader_among(&survivors, LEADER_TIMEOUT),
        "new leader while the old one is paused"
    );
    cluster.node(leader).resume();
    must!(
        cluster,
        cluster.wait_converged(&[1, 2, 3], CATCH_UP_TIMEOUT),
        "old leader rejoins as a follower"
    );
    assert_ne!(new_leader, leader);

    // The old leader, now a follower, names the new one.
    let slots = cluster.node(leader).call(&["CLUSTER", "SLOTS"]).unwrap();
    let new_addr = cluster.node(new_leader).resp_addr;
    let port = Reply::Integer(i64::from(new_addr.port()));
    assert!(
        matches!(&slots, Reply::Array(r) if matches!(&r[0], Reply::Array(range)
            if matches!(&range[2], Reply::Array(m) if m[1] == port))),
        "CLUSTER SLOTS on the deposed leader: {slots:?}"
    );
    // The client never saw an error, so its map still names the old
    // leader: the writes go there and are forwarded.
    let processed = |id: u64| -> u64 {
        let stats = cluster.node(id).info("stats").unwrap();
        stats["total_commands_processed"].parse().unwrap()
    };
    let before = processed(leader);
    for i in 0..20 {
        let key = format!("after:{i}");
        rt.block_on(set_retried(&mut conn, &key, "2"));
        assert_eq!(get(cluster.node(new_leader), &key).as_deref(), Some("2"));
    }
    assert_eq!(rt.block_on(get_retried(&mut conn, "before")), "1");
    assert!(
        processed(leader) >= before + 20,
        "the writes did not go through the deposed leader"
    );
}

/// Reads the driver's stdout lines into a channel, so that waits on it
/// are bounded.
fn line_reader(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn redis_py_cluster_client_survives_leader_kill() {
    ensure_redis_py();
    let (mut cluster, leader) = start(config(3));
    let driver = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/cluster_clients_redis_py.py"
    );
    let mut child = Command::new("python3")
        .arg(driver)
        .args(seeds(&cluster))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let lines = line_reader(&mut child);
    let mut acked = BTreeMap::new();
    let started = Instant::now();
    let next_line = |acked: &mut BTreeMap<String, String>| -> Option<String> {
        let left = DRIVER_TIMEOUT.saturating_sub(started.elapsed());
        let line = lines.recv_timeout(left).ok()?;
        if let Some(kv) = line.strip_prefix("acked ") {
            let (k, v) = kv.split_once(' ').expect("acked <key> <value>");
            acked.insert(k.to_string(), v.to_string());
        } else {
            println!("driver: {line}");
        }
        Some(line)
    };
    while let Some(line) = next_line(&mut acked) {
        if line == "phase1 ok" {
            break;
        }
    }
    assert_eq!(acked.len(), 50, "phase 1 did not finish");
    cluster.node_mut(leader).kill9();
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(b"go\n").expect("tell the driver to go on");
    let mut finished = false;
    while let Some(line) = next_line(&mut acked) {
        finished |= line == "phase2 ok";
    }
    let output = wait_bounded(child, Duration::from_secs(10));
    let stderr = output
        .as_ref()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .unwrap_or_default();
    assert!(
        finished && output.as_ref().is_ok_and(|o| o.status.success()),
        "redis-py driver failed: {output:?}\n{stderr}\n{}",
        cluster.logs_tail(20)
    );
    assert_eq!(acked.len(), 150);
    let new_leader = must!(
        cluster,
        cluster.wait_for_new_leader(leader, LEADER_TIMEOUT),
        "new leader"
    );
    for (key, value) in &acked {
        assert_eq!(get(cluster.node(new_leader), key).as_ref(), Some(value));
    }
}

#[test]
fn redis_cli_cluster_check_passes() {
    ensure_redis_cli();
    let (mut cluster, leader) = start(config(3));
    must!(
        cluster,
        cluster.wait_converged(&[1, 2, 3], CATCH_UP_TIMEOUT),
        "converged"
    );
    let follower = others(&cluster, leader)[0];
    for seed in [leader, follower] {
        let addr = cluster.node(seed).resp_addr.to_string();
        let out = run_bounded(
            Command::new("redis-cli").args(["--cluster", "check", &addr]),
            CHECK_TIMEOUT,
        )
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("[OK] All 16384 slots covered"),
            "redis-cli --cluster check {addr}: {:?}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A single node says it is no cluster, as Redis does, so that cluster
/// clients refuse it instead of inventing a topology.
#[test]
fn a_single_node_reports_cluster_disabled() {
    let server = common::TestServer::start();
    let mut c = connect(server.resp_addr, Duration::from_secs(10)).unwrap();
    let info = match c.call(&["INFO", "cluster"]).unwrap() {
        Reply::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("INFO cluster: {other:?}"),
    };
    assert_eq!(info, "# Cluster\r\ncluster_enabled:0\r\n");
    for sub in ["SLOTS", "NODES", "MYID"] {
        match c.call(&["CLUSTER", sub]).unwrap() {
            Reply::Error(e) => assert!(e.contains("cluster support disabled"), "{e}"),
            other => panic!("CLUSTER {sub}: {other:?}"),
        }
    }
}

/// The client addresses CLUSTER SLOTS lists on `node` (master first), or
/// None when it answers anything but one slot range.
fn slots_addrs(node: &Node) -> Option<Vec<String>> {
    let Ok(Reply::Array(ranges)) = node.call(&["CLUSTER", "SLOTS"]) else {
        return None;
    };
    let [Reply::Array(range)] = &ranges[..] else {
        return None;
    };
    range[2..]
        .iter()
        .map(|n| match n {
            Reply::Array(f) => Some(format!(
                "{}:{}",
                reply_text(&f[0])?,
                match f[1] {
                    Reply::Integer(p) => p,
                    _ => return None,
                }
            )),
            _ => None,
        })
        .collect()
}

/// A map's pairs, as RESP3 sends them or as RESP2 flattens them.
fn pairs(reply: &Reply) -> Vec<(Reply, Reply)> {
    match reply {
        Reply::Map(p) => p.clone(),
        Reply::Array(flat) => flat
            .chunks(2)
            .filter_map(|kv| Some((kv.first()?.clone(), kv.get(1)?.clone())))
            .collect(),
        _ => Vec::new(),
    }
}

fn field(fields: &[(Reply, Reply)], name: &str) -> Option<Reply> {
    fields
        .iter()
        .find(|(k, _)| reply_text(k).as_deref() == Some(name))
        .map(|(_, v)| v.clone())
}

/// The `health` of each node CLUSTER SHARDS lists on `node`, by node name.
fn shards_health(node: &Node) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(Reply::Array(shards)) = node.call(&["CLUSTER", "SHARDS"]) else {
        return out;
    };
    for shard in &shards {
        let Some(Reply::Array(nodes)) = field(&pairs(shard), "nodes") else {
            continue;
        };
        for n in &nodes {
            let f = pairs(n);
            let text = |name| field(&f, name).and_then(|v| reply_text(&v));
            if let (Some(id), Some(health)) = (text("id"), text("health")) {
                out.insert(id, health);
            }
        }
    }
    out
}

/// A replica that dies is left out of CLUSTER SLOTS on every live node
/// (so cluster clients stop routing to it, as with Redis's failed nodes),
/// SHARDS marks it `fail`, and it is listed again once it is back.
#[test]
fn a_dead_replica_leaves_cluster_slots_and_comes_back() {
    let (mut cluster, leader) = start(config(3));
    must!(
        cluster,
        cluster.wait_converged(&[1, 2, 3], CATCH_UP_TIMEOUT),
        "converged"
    );
    let followers = others(&cluster, leader);
    let (dead, live) = (followers[0], followers[1]);
    let dead_addr = cluster.node(dead).resp_addr.to_string();
    for id in [leader, live] {
        let listed = wait_for("every member in SLOTS", LEADER_TIMEOUT, || {
            slots_addrs(cluster.node(id)).filter(|a| a.len() == 3)
        });
        assert!(listed.contains(&dead_addr), "{listed:?}");
    }
    cluster.node_mut(dead).kill9();
    for id in [leader, live] {
        let listed = wait_for("the dead replica gone from SLOTS", LEADER_TIMEOUT, || {
            slots_addrs(cluster.node(id)).filter(|a| a.len() == 2)
        });
        assert_eq!(
            listed[0],
            cluster.node(leader).resp_addr.to_string(),
            "the master first"
        );
        assert!(!listed.contains(&dead_addr), "{listed:?}");
    }
    let health = shards_health(cluster.node(leader));
    assert_eq!(
        health.get(&node_name(dead)).map(String::as_str),
        Some("fail")
    );
    assert_eq!(
        health.get(&node_name(live)).map(String::as_str),
        Some("online")
    );
    must!(cluster, cluster.node_mut(dead).restart(), "restart");
    for id in [leader, live] {
        let listed = wait_for("the replica back in SLOTS", LEADER_TIMEOUT, || {
            slots_addrs(cluster.node(id)).filter(|a| a.len() == 3)
        });
        assert!(listed.contains(&dead_addr), "{listed:?}");
    }
}
