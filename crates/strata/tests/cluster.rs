//! Raft replication end to end: real `strata server` processes on loopback
//! (tests/common/cluster.rs), 50 ms heartbeats and a 300 ms election
//! timeout so failures are detected fast.
//!
//! * founding nodes started one by one, in reverse order, form one cluster;
//! * a node whose Raft stops on a storage error exits 2, and recovers;
//! * a corrupt snapshot is refused on arrival; the follower stays up;
//! * replication, forwarding, linearizable and READONLY reads on every
//!   node; CLUSTER INFO / STATUS / MEMBERS / LEADER, ROLE, INFO replication
//!   and the `strata cluster ...` CLI;
//! * kill -9 of the leader under 4 concurrent writers: failover time, no
//!   acknowledged write lost, the old leader rejoins and catches up;
//! * kill -9 of a follower; a restart of every node; five voters survive
//!   the leader and a follower dying together;
//! * a node joining after 1000 writes catches up by snapshot;
//! * removing a node, adding a learner and promoting it;
//! * a node cut off from the majority answers -CLUSTERDOWN / -TRYAGAIN
//!   within forward-timeout + 2 s;
//! * SIGTERM of the leader hands over leadership and exits 0;
//! * `strata cluster step-down` hands leadership over (a no-op on a
//!   follower, an error for a lone voter);
//! * a node joining with `--peer-advertise` is a member under that name;
//! * INCR through a follower while the leader dies is never applied twice;
//! * writes keep working when every peer link has 40 ms of latency (well
//!   under the election timeout), through the fault proxy of strata-chaos.
//!
//! Failover times are printed (`cargo test --test cluster -- --nocapture`).

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::*;
use common::run_cli;

/// The error bound promised for a node that cannot reach a quorum.
const FORWARD_TIMEOUT_MS: u64 = 1_000;

fn kv(prefix: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("{prefix}:{i}"), format!("value-{prefix}-{i}")))
        .collect()
}

/// Writes `pairs` through `node` with pipelines of 100 SETs, retrying the
/// whole batch over a failover (SET is idempotent here).
fn write_all(node: &Node, pairs: &[(String, String)]) {
    for chunk in pairs.chunks(100) {
        let requests: Vec<Vec<&str>> = chunk
            .iter()
            .map(|(k, v)| vec!["SET", k.as_str(), v.as_str()])
            .collect();
        wait_for("a pipelined batch of SETs", LEADER_TIMEOUT, || {
            let mut client = node.client(Duration::from_secs(10)).ok()?;
            let replies = client.pipeline(&requests).ok()?;
            if replies.iter().all(|r| *r == Reply::ok()) {
                return Some(());
            }
            if let Some(bad) = replies
                .iter()
                .find(|r| **r != Reply::ok() && !is_cluster_error(r))
            {
                panic!("SET on node {}: {bad:?}", node.id);
            }
            None
        });
    }
}

fn field(info: &std::collections::BTreeMap<String, String>, name: &str) -> String {
    info.get(name)
        .unwrap_or_else(|| panic!("no {name} in {info:?}"))
        .clone()
}

#[test]
fn replicates_and_serves_every_node() {
    let (cluster, leader) = start(config(3));
    let followers = others(&cluster, leader);
    let (f1, f2) = (followers[0], followers[1]);

    set(cluster.node(leader), "from-leader", "1");
    set(cluster.node(f1), "from-follower", "2"); // forwarded to the leader
    for id in cluster.ids() {
        let node = cluster.node(id);
        assert_eq!(get(node, "from-leader").as_deref(), Some("1"), "node {id}");
        assert_eq!(
            get(node, "from-follower").as_deref(),
            Some("2"),
            "node {id}"
        );
        assert_eq!(get(node, "missing"), None, "node {id}");
    }
    let expected = vec![
        ("from-leader".to_string(), "1".to_string()),
        ("from-follower".to_string(), "2".to_string()),
    ];
    for id in cluster.ids() {
        wait_local_data(cluster.node(id), &expected, CATCH_UP_TIMEOUT);
    }
    // READWRITE switches a connection back to linearizable reads; writes
    // work on a READONLY connection too.
    let mut c = readonly(cluster.node(f2));
    assert_eq!(c.call(&["SET", "on-readonly", "x"]).unwrap(), Reply::ok());
    assert_eq!(c.call(&["READWRITE"]).unwrap(), Reply::ok());
    assert_eq!(
        c.call(&["GET", "on-readonly"]).unwrap(),
        Reply::Bulk(b"x".to_vec().into())
    );

    // CLUSTER INFO on every node.
    for id in cluster.ids() {
        let info = must!(cluster, cluster.node(id).cluster_info(), "CLUSTER INFO");
        assert_eq!(field(&info, "cluster_state"), "ok", "{info:?}");
        assert_eq!(field(&info, "cluster_node_id"), id.to_string());
        let role = if id == leader { "leader" } else { "follower" };
        assert_eq!(field(&info, "cluster_role"), role, "node {id}: {info:?}");
        assert_eq!(field(&info, "cluster_leader_id"), leader.to_string());
        assert_eq!(field(&info, "cluster_voters"), "1,2,3");
        assert_eq!(field(&info, "cluster_learners"), "");
        assert!(field(&info, "cluster_term").parse::<u64>().unwrap() >= 1);
        let commit: u64 = field(&info, "cluster_commit_index").parse().unwrap();
        let applied: u64 = field(&info, "cluster_applied_index").parse().unwrap();
        assert!(commit >= 3 && applied >= 3, "node {id}: {info:?}");
    }
    // CLUSTER STATUS on the leader has a line per follower.
    let status = cluster
        .node(leader)
        .call_text(&["CLUSTER", "STATUS"])
        .unwrap();
    for f in &followers {
        assert!(
            status.contains(&format!("follower_{f}:matched=")),
            "{status}"
        );
    }

    // CLUSTER MEMBERS: every member, exactly one leader.
    for id in cluster.ids() {
        let nodes = cluster_nodes(cluster.node(id));
        let ids: Vec<u64> = nodes.iter().map(|n| n.0).collect();
        assert_eq!(ids, vec![1, 2, 3], "node {id}: {nodes:?}");
        for (nid, peer, client, kind, role) in &nodes {
            assert_eq!(*peer, cluster.node(*nid).peer_addr.to_string());
            assert_eq!(*client, cluster.node(*nid).resp_addr.to_string());
            assert_eq!(kind, "voter");
            let want = if *nid == leader { "leader" } else { "follower" };
            assert_eq!(role, want, "node {id} about {nid}: {nodes:?}");
        }
    }

    // CLUSTER LEADER everywhere.
    let leader_node = cluster.node(leader);
    for id in cluster.ids() {
        let view = cluster.node(id).leader_view().unwrap().expect("a leader");
        assert_eq!(view.id, leader);
        assert_eq!(view.peer_addr, leader_node.peer_addr.to_string());
        assert_eq!(view.client_addr, leader_node.resp_addr.to_string());
    }

    // ROLE, Redis-shaped.
    match cluster.node(leader).call(&["ROLE"]).unwrap() {
        Reply::Array(items) => {
            assert_eq!(items[0], Reply::Bulk(b"master".to_vec().into()));
            assert!(matches!(items[1], Reply::Integer(n) if n >= 3), "{items:?}");
            assert!(
                matches!(&items[2], Reply::Array(r) if r.len() == 2),
                "{items:?}"
            );
        }
        other => panic!("ROLE on the leader: {other:?}"),
    }
    for f in &followers {
        match cluster.node(*f).call(&["ROLE"]).unwrap() {
            Reply::Array(items) => {
                assert_eq!(items[0], Reply::Bulk(b"slave".to_vec().into()));
                let host = reply_text(&items[1]).unwrap();
                let port = reply_text(&items[2]).unwrap();
                assert_eq!(format!("{host}:{port}"), leader_node.resp_addr.to_string());
                assert_eq!(reply_text(&items[3]).unwrap(), "connected");
            }
            other => panic!("ROLE on follower {f}: {other:?}"),
        }
    }

    // INFO replication.
    let info = cluster.node(leader).info("replication").unwrap();
    assert_eq!(field(&info, "role"), "master");
    assert_eq!(field(&info, "raft_role"), "leader");
    assert_eq!(field(&info, "connected_slaves"), "2");
    assert!(field(&info, "slave0").contains("state=online"), "{info:?}");
    assert!(info_u64(leader_node, "raft_applied_index") >= 3);
    // The reads above were confirmed by heartbeat rounds (on loopback one
    // answers well within its 50 ms interval), unless the machine stalled
    // for longer than that; then a timed-out round is counted instead.
    assert!(
        info_u64(leader_node, "raft_reads_confirmed_by_heartbeat") >= 1
            || info_u64(leader_node, "raft_read_heartbeat_timeouts") >= 1,
        "{info:?}"
    );
    for f in &followers {
        let info = cluster.node(*f).info("replication").unwrap();
        assert_eq!(field(&info, "role"), "slave");
        assert_eq!(field(&info, "raft_leader_id"), leader.to_string());
        assert_eq!(info_u64(cluster.node(*f), "raft_snapshots_installed"), 0);
    }

    // The CLI.
    let f1_addr = cluster.node(f1).resp_addr;
    let (code, out, err) = run_cli(&["cluster", "leader"], f1_addr);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "{leader} {} {}\n",
            leader_node.peer_addr, leader_node.resp_addr
        )
    );
    let (code, out, err) = run_cli(&["cluster", "nodes"], f1_addr);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("{leader} ")) && l.ends_with(" voter leader")),
        "{out}"
    );
    let (code, out, err) = run_cli(&["cluster", "info"], f1_addr);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("cluster_role:follower\n"), "{out}");
    assert!(!out.contains('\r'), "CRLF should be printed as LF");
    let (code, out, err) = run_cli(&["cluster", "status"], leader_node.resp_addr);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("follower_{f1}:matched=")), "{out}");
    // An admin command the cluster refuses: exit 2, the error on stderr.
    let (code, out, err) = run_cli(&["cluster", "promote", "99"], f1_addr);
    assert_eq!(
        code, 2,
        "promote of an unknown node: out {out:?} err {err:?}"
    );
    assert!(err.starts_with("error: "), "{err}");
    assert!(out.is_empty(), "{out}");
}

/// One writer of the failover test: unique keys, each retried (same
/// value) until acknowledged, over the nodes in turn.
struct Acked {
    key: String,
    value: String,
    called: Instant,
    acked: Instant,
}

fn writer(
    t: usize,
    addrs: Vec<std::net::SocketAddr>,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicU64>,
) -> Vec<Acked> {
    let mut out = Vec::new();
    let mut at = t % addrs.len();
    let mut client: Option<Client> = None;
    let mut i = 0;
    'keys: while !stop.load(Ordering::Relaxed) {
        let key = format!("w{t}:{i}");
        let value = format!("v{t}-{i}");
        i += 1;
        let called = Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) {
                break 'keys;
            }
            if client.is_none() {
                match connect(addrs[at], Duration::from_secs(5)) {
                    Ok(c) => client = Some(c),
                    Err(_) => {
                        at = (at + 1) % addrs.len();
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                }
            }
            let c = client.as_mut().expect("connected");
            match c.call(&["SET", &key, &value]) {
                Ok(r) if r == Reply::ok() => {
                    out.push(Acked {
                        key,
                        value,
                        called,
                        acked: Instant::now(),
                    });
                    acks.fetch_add(1, Ordering::Relaxed);
                    continue 'keys;
                }
                Ok(r) if is_cluster_error(&r) => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(other) => panic!("writer {t}: SET {key}: {other:?}"),
                Err(_) => {
                    client = None;
                    at = (at + 1) % addrs.len();
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
    out
}

#[test]
fn leader_kill9_under_load_loses_no_acknowledged_write() {
    let (mut cluster, leader) = start(config(3));
    let addrs: Vec<_> = cluster
        .ids()
        .iter()
        .map(|&id| cluster.node(id).resp_addr)
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (addrs, stop, acks) = (addrs.clone(), Arc::clone(&stop), Arc::clone(&acks));
            std::thread::spawn(move || writer(t, addrs, stop, acks))
        })
        .collect();
    wait_for("200 writes before the kill", LEADER_TIMEOUT, || {
        (acks.load(Ordering::Relaxed) >= 200).then_some(())
    });

    let killed_at = Instant::now();
    cluster.node_mut(leader).kill9();
    let before = acks.load(Ordering::Relaxed);
    let new_leader = must!(
        cluster,
        cluster.wait_for_new_leader(leader, LEADER_TIMEOUT),
        "new leader",
    );
    let elected_after = killed_at.elapsed();
    wait_for("200 writes after the kill", LEADER_TIMEOUT, || {
        (acks.load(Ordering::Relaxed) >= before + 200).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<Acked> = writers
        .into_iter()
        .flat_map(|w| w.join().expect("writer panicked"))
        .collect();

    let first_write = acked
        .iter()
        .filter(|a| a.called >= killed_at)
        .map(|a| a.acked - killed_at)
        .min()
        .expect("a write issued after the kill succeeded");
    let outage_end = acked
        .iter()
        .filter(|a| a.acked >= killed_at)
        .map(|a| a.acked - killed_at)
        .min()
        .unwrap();
    println!(
        "failover after kill -9 of leader {leader}: new leader {new_leader} agreed after {:.0} ms; \
         first acknowledged write issued after the kill: {:.0} ms; first acknowledgement of any write: {:.0} ms; \
         {} writes acknowledged",
        elected_after.as_secs_f64() * 1e3,
        first_write.as_secs_f64() * 1e3,
        outage_end.as_secs_f64() * 1e3,
        acked.len()
    );

    // Every acknowledged write, through the new leader (linearizable).
    let expected: Vec<(String, String)> = acked
        .iter()
        .map(|a| (a.key.clone(), a.value.clone()))
        .collect();
    let keys: Vec<String> = expected.iter().map(|(k, _)| k.clone()).collect();
    let mut client = cluster
        .node(new_leader)
        .client(Duration::from_secs(30))
        .unwrap();
    let values = mget(&mut client, &keys);
    let lost: Vec<_> = expected
        .iter()
        .zip(&values)
        .filter(|((_, v), got)| got.as_deref() != Some(v.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        expected.len(),
        &lost[..lost.len().min(5)]
    );

    // The old leader rejoins on its data dir and catches up.
    must!(
        cluster,
        cluster.node_mut(leader).start(),
        "restart old leader",
    );
    wait_local_data(cluster.node(leader), &expected, CATCH_UP_TIMEOUT);
    let ids = cluster.ids();
    must!(
        cluster,
        cluster.wait_converged(&ids, CATCH_UP_TIMEOUT),
        "converge",
    );
}

#[test]
fn follower_kill9_cluster_keeps_serving_and_follower_catches_up() {
    let (mut cluster, leader) = start(config(3));
    let followers = others(&cluster, leader);
    let (victim, survivor) = (followers[0], followers[1]);
    let first = kv("before", 100);
    write_all(cluster.node(survivor), &first);

    cluster.node_mut(victim).kill9();
    let second = kv("during", 100);
    write_all(cluster.node(leader), &second[..50]);
    write_all(cluster.node(survivor), &second[50..]);
    assert_eq!(
        get(cluster.node(survivor), "during:99").as_deref(),
        Some("value-during-99")
    );
    assert_eq!(
        cluster.agreed_leader(&[leader, survivor]),
        Some(leader),
        "the leader should not change when a follower dies"
    );

    must!(
        cluster,
        cluster.node_mut(victim).start(),
        "restart follower",
    );
    let all: Vec<_> = first.iter().chain(&second).cloned().collect();
    wait_local_data(cluster.node(victim), &all, CATCH_UP_TIMEOUT);
    assert_eq!(
        get(cluster.node(victim), "before:0").as_deref(),
        Some("value-before-0")
    );
}

#[test]
fn restart_of_every_node_keeps_acknowledged_data() {
    let (mut cluster, leader) = start(config(3));
    let followers = others(&cluster, leader);
    let data = kv("k", 300);
    write_all(cluster.node(leader), &data[..100]);
    write_all(cluster.node(followers[0]), &data[100..200]);
    write_all(cluster.node(followers[1]), &data[200..]);

    for id in cluster.ids() {
        cluster.node_mut(id).kill9();
    }
    // Start in a different order than the first time.
    for id in cluster.ids().into_iter().rev() {
        must!(cluster, cluster.node_mut(id).start(), "restart");
    }
    must!(
        cluster,
        cluster.wait_for_leader(LEADER_TIMEOUT),
        "leader after restart",
    );
    let keys: Vec<String> = data.iter().map(|(k, _)| k.clone()).collect();
    for id in cluster.ids() {
        let mut c = cluster.node(id).client(Duration::from_secs(30)).unwrap();
        let values = wait_for("linearizable MGET after restart", LEADER_TIMEOUT, || {
            let r = c.call(&["GET", "k:0"]).ok()?;
            (!is_cluster_error(&r)).then_some(())?;
            Some(mget(&mut c, &keys))
        });
        for ((k, v), got) in data.iter().zip(values) {
            assert_eq!(got.as_deref(), Some(v.as_str()), "node {id} key {k}");
        }
        wait_local_data(cluster.node(id), &data, CATCH_UP_TIMEOUT);
    }
    set(cluster.node(1), "after-restart", "yes");
}

#[test]
fn new_node_catches_up_by_snapshot() {
    let mut cfg = config(3);
    cfg.snapshot_logs = Some(100);
    let (mut cluster, leader) = start(cfg);
    let data = kv("snap", 1000);
    write_all(cluster.node(leader), &data);
    // A pipeline's SETs share log entries (proposals), so 1000 keys are
    // only a few entries: single SETs, one entry each, push the log on
    // until a snapshot covers every entry that holds the data.
    let data_index = info_u64(cluster.node(leader), "raft_last_log_index");
    let mut filler = 0u32;
    wait_for(
        "a snapshot past the data on the leader",
        CATCH_UP_TIMEOUT,
        || {
            let info = cluster.node(leader).info("replication").ok()?;
            // Empty until the first snapshot.
            let index: Option<u64> = info.get("raft_snapshot_index")?.parse().ok();
            if index.is_some_and(|i| i > data_index) {
                return Some(());
            }
            for _ in 0..20 {
                filler += 1;
                set(cluster.node(leader), &format!("filler:{filler}"), "x");
            }
            None
        },
    );

    let via = others(&cluster, leader)[0];
    must!(
        cluster,
        cluster.join_node(4, via, JoinAs::Voter, &[]).map(|_| ()),
        "start node 4",
    );
    wait_for("node 4 as a voter", CATCH_UP_TIMEOUT, || {
        let info = cluster.node(leader).cluster_info().ok()?;
        (info.get("cluster_voters")? == "1,2,3,4").then_some(())
    });
    must!(
        cluster,
        cluster.wait_converged(&[1, 2, 3, 4], CATCH_UP_TIMEOUT),
        "converge with node 4",
    );
    let installed = info_u64(cluster.node(4), "raft_snapshots_installed");
    println!("node 4 installed {installed} snapshot(s)");
    assert!(
        installed >= 1,
        "node 4 caught up without a snapshot install\n{}",
        cluster.node(4).log_tail(40)
    );
    wait_local_data(cluster.node(4), &data, CATCH_UP_TIMEOUT);
    assert_eq!(
        get(cluster.node(4), "snap:999").as_deref(),
        Some("value-snap-999")
    );
    set(cluster.node(4), "via-4", "ok");
    assert_eq!(get(cluster.node(leader), "via-4").as_deref(), Some("ok"));
}

#[test]
fn removed_node_leaves_and_writes_continue() {
    let (mut cluster, leader) = start(config(3));
    let followers = others(&cluster, leader);
    let (victim, keep) = (followers[0], followers[1]);

    let (code, out, err) = run_cli(
        &["cluster", "remove-node", &victim.to_string()],
        cluster.node(keep).resp_addr,
    );
    assert_eq!((code, out.as_str()), (0, "OK\n"), "{err}");
    for id in [leader, keep] {
        wait_for(
            "CLUSTER MEMBERS without the removed node",
            LEADER_TIMEOUT,
            || {
                let nodes = cluster_nodes(cluster.node(id));
                (!nodes.iter().any(|n| n.0 == victim)).then_some(())
            },
        );
    }
    let voters = field(
        &cluster.node(leader).cluster_info().unwrap(),
        "cluster_voters",
    );
    let want: BTreeSet<u64> = [leader, keep].into();
    let got: BTreeSet<u64> = voters.split(',').map(|s| s.parse().unwrap()).collect();
    assert_eq!(got, want, "{voters}");
    cluster.forget(victim);

    // Two voters: both must be up, writes work through either.
    set(cluster.node(leader), "after-remove-1", "a");
    set(cluster.node(keep), "after-remove-2", "b");
    assert_eq!(
        get(cluster.node(keep), "after-remove-1").as_deref(),
        Some("a")
    );

    // Now remove the leader itself, through the other node: the remaining
    // node leads alone.
    let reply = call_retry(
        cluster.node(keep).resp_addr,
        &["CLUSTER", "REMOVENODE", &leader.to_string()],
        LEADER_TIMEOUT,
    );
    assert_eq!(reply, Reply::ok());
    must!(
        cluster,
        cluster.wait_for_leader_among(&[keep], LEADER_TIMEOUT),
        "the last node leads",
    );
    cluster.forget(leader);
    set(cluster.node(keep), "alone", "c");
    assert_eq!(
        get(cluster.node(keep), "after-remove-2").as_deref(),
        Some("b")
    );
    let nodes = cluster_nodes(cluster.node(keep));
    assert_eq!(nodes.len(), 1, "{nodes:?}");
}

#[test]
fn learner_added_then_promoted() {
    let (mut cluster, leader) = start(config(3));
    let data = kv("l", 50);
    write_all(cluster.node(leader), &data);

    must!(
        cluster,
        cluster
            .join_node(4, leader, JoinAs::Learner, &[])
            .map(|_| ()),
        "start node 4",
    );
    // The explicit admin command is idempotent with the node's own join.
    let peer4 = cluster.node(4).peer_addr.to_string();
    let follower = others(&cluster, leader)[0];
    let (code, out, err) = run_cli(
        &["cluster", "add-learner", "4", &peer4],
        cluster.node(follower).resp_addr,
    );
    assert_eq!((code, out.as_str()), (0, "OK\n"), "{err}");
    wait_for("node 4 as a learner", LEADER_TIMEOUT, || {
        let nodes = cluster_nodes(cluster.node(leader));
        nodes
            .iter()
            .any(|n| n.0 == 4 && n.3 == "learner" && n.1 == peer4)
            .then_some(())
    });
    let info = cluster.node(leader).cluster_info().unwrap();
    assert_eq!(field(&info, "cluster_voters"), "1,2,3");
    assert_eq!(field(&info, "cluster_learners"), "4");
    wait_local_data(cluster.node(4), &data, CATCH_UP_TIMEOUT);
    wait_for("node 4 reports the learner role", LEADER_TIMEOUT, || {
        let info = cluster.node(4).cluster_info().ok()?;
        (info.get("cluster_role")? == "learner").then_some(())
    });
    // A learner serves writes and linearizable reads by forwarding.
    set(cluster.node(4), "via-learner", "1");
    assert_eq!(get(cluster.node(4), "via-learner").as_deref(), Some("1"));

    let (code, out, err) = run_cli(&["cluster", "promote", "4"], cluster.node(4).resp_addr);
    assert_eq!((code, out.as_str()), (0, "OK\n"), "{err}");
    let info = cluster.node(leader).cluster_info().unwrap();
    assert_eq!(field(&info, "cluster_voters"), "1,2,3,4");
    assert_eq!(field(&info, "cluster_learners"), "");
    wait_for("node 4 listed as a voter", LEADER_TIMEOUT, || {
        let nodes = cluster_nodes(cluster.node(4));
        nodes
            .iter()
            .any(|n| n.0 == 4 && n.3 == "voter")
            .then_some(())
    });
    // With four voters, one more failure is still a quorum of three.
    let other = others(&cluster, leader)
        .into_iter()
        .find(|&n| n != 4)
        .unwrap();
    cluster.node_mut(other).kill9();
    set(cluster.node(4), "after-promote", "2");
    assert_eq!(
        get(cluster.node(leader), "after-promote").as_deref(),
        Some("2")
    );
}

/// Sends `args` to `node`, which cannot reach a quorum: the answer must be
/// -CLUSTERDOWN/-TRYAGAIN within the forward timeout + 2 s. Prints the
/// time and returns a description of what went wrong, if anything (so that
/// one run reports every command that misbehaves).
fn check_cluster_error(node: &Node, situation: &str, args: &[&str]) -> Option<String> {
    let bound = Duration::from_millis(FORWARD_TIMEOUT_MS + 2_000);
    // Wait longer than the bound, to tell "late" from "hangs".
    let mut client = node.client(Duration::from_secs(10)).unwrap();
    let t = Instant::now();
    let reply = client.call(args);
    let took = t.elapsed();
    let what = format!("{situation}: {} on node {}", args.join(" "), node.id);
    println!("{what}: {reply:?} after {took:?}");
    match reply {
        Ok(r) if is_cluster_error(&r) && took <= bound => None,
        Ok(r) if is_cluster_error(&r) => {
            Some(format!("{what}: {r:?} after {took:?}, bound {bound:?}"))
        }
        other => Some(format!(
            "{what}: want -CLUSTERDOWN/-TRYAGAIN within {bound:?}, got {other:?} after {took:?}"
        )),
    }
}

#[test]
fn node_cut_off_from_the_majority_answers_clusterdown_in_bounded_time() {
    let mut cfg = config(3);
    cfg.forward_timeout_ms = Some(FORWARD_TIMEOUT_MS);
    let (mut cluster, leader) = start(cfg);
    set(cluster.node(leader), "k", "v");
    let all = cluster.ids();
    for id in &all {
        wait_local_data(
            cluster.node(*id),
            &[("k".into(), "v".into())],
            CATCH_UP_TIMEOUT,
        );
    }

    // 1. The leader alone (both followers killed).
    for f in others(&cluster, leader) {
        cluster.node_mut(f).kill9();
    }
    let mut problems = Vec::new();
    for args in [&["SET", "k", "lost?"][..], &["GET", "k"], &["INCR", "n"]] {
        problems.extend(check_cluster_error(
            cluster.node(leader),
            "leader alone",
            args,
        ));
    }
    // Local reads still work.
    let mut ro = readonly(cluster.node(leader));
    assert!(matches!(ro.call(&["GET", "k"]).unwrap(), Reply::Bulk(_)));

    // Back to a majority.
    for f in others(&cluster, leader) {
        must!(cluster, cluster.node_mut(f).start(), "restart follower");
    }
    let leader = must!(
        cluster,
        cluster.wait_for_leader(LEADER_TIMEOUT),
        "leader again",
    );
    set(cluster.node(leader), "k2", "v2");

    // 2. A follower alone (the leader and the other follower killed).
    let lone = others(&cluster, leader)[0];
    wait_local_data(
        cluster.node(lone),
        &[("k2".into(), "v2".into())],
        CATCH_UP_TIMEOUT,
    );
    for id in others(&cluster, lone) {
        cluster.node_mut(id).kill9();
    }
    for args in [&["SET", "k", "lost?"][..], &["GET", "k"], &["INCR", "n"]] {
        problems.extend(check_cluster_error(
            cluster.node(lone),
            "follower alone",
            args,
        ));
    }
    let (code, _, err) = run_cli(&["put", "x", "y"], cluster.node(lone).resp_addr);
    assert_eq!(code, 2, "{err}");
    let mut ro = readonly(cluster.node(lone));
    assert_eq!(
        ro.call(&["GET", "k2"]).unwrap(),
        Reply::Bulk(b"v2".to_vec().into())
    );

    // 3. A follower whose peers are paused (SIGSTOP), not dead: their
    // sockets stay open and accept connections, so a forwarded request
    // gets no refusal, only silence. It must still end by the deadline.
    for id in others(&cluster, lone) {
        must!(cluster, cluster.node_mut(id).start(), "restart");
    }
    let leader = must!(
        cluster,
        cluster.wait_for_leader(LEADER_TIMEOUT),
        "leader after restart",
    );
    set(cluster.node(leader), "k3", "v3");
    let lone = others(&cluster, leader)[0];
    wait_local_data(
        cluster.node(lone),
        &[("k3".into(), "v3".into())],
        CATCH_UP_TIMEOUT,
    );
    // A forwarded write first, so that the follower holds a pooled
    // connection to the leader when it stops answering.
    set(cluster.node(lone), "k4", "v4");
    for id in others(&cluster, lone) {
        cluster.node(id).pause();
    }
    for args in [&["SET", "k", "lost?"][..], &["GET", "k"], &["INCR", "n"]] {
        problems.extend(check_cluster_error(
            cluster.node(lone),
            "follower with paused peers",
            args,
        ));
    }
    for id in others(&cluster, lone) {
        cluster.node(id).resume();
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn sigterm_on_the_leader_hands_over_and_exits_0() {
    let (mut cluster, leader) = start(config(3));
    set(cluster.node(leader), "k", "v");
    let rest = others(&cluster, leader);
    let t = Instant::now();
    cluster.node(leader).signal(libc::SIGTERM);
    let new_leader = wait_for("a new leader after SIGTERM", LEADER_TIMEOUT, || {
        cluster.agreed_leader(&rest).filter(|&l| l != leader)
    });
    let handover = t.elapsed();
    let status = must!(
        cluster,
        cluster.node_mut(leader).wait_exit(Duration::from_secs(30)),
        "old leader exit",
    );
    println!(
        "SIGTERM on leader {leader}: leader {new_leader} agreed after {:.0} ms; exit {status} after {:.0} ms",
        handover.as_secs_f64() * 1e3,
        t.elapsed().as_secs_f64() * 1e3
    );
    assert!(status.success(), "exit status {status}");
    assert!(
        handover < Duration::from_secs(3),
        "handover took {handover:?}"
    );
    assert_eq!(get(cluster.node(new_leader), "k").as_deref(), Some("v"));
    set(cluster.node(new_leader), "after", "1");
}

#[test]
fn incr_through_a_follower_during_leader_kill_is_not_double_applied() {
    let mut cfg = config(3);
    cfg.forward_timeout_ms = Some(FORWARD_TIMEOUT_MS);
    let (mut cluster, leader) = start(cfg);
    let follower = others(&cluster, leader)[0];
    let addr = cluster.node(follower).resp_addr;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let replies = Arc::new(Mutex::new(Vec::<i64>::new()));
    let unknown = Arc::new(AtomicU64::new(0));
    let incr = {
        let (stop, acked, replies, unknown) = (
            Arc::clone(&stop),
            Arc::clone(&acked),
            Arc::clone(&replies),
            Arc::clone(&unknown),
        );
        std::thread::spawn(move || {
            let mut client: Option<Client> = None;
            while !stop.load(Ordering::Relaxed) {
                if client.is_none() {
                    client = connect(addr, Duration::from_secs(10)).ok();
                    if client.is_none() {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                }
                match client.as_mut().unwrap().call(&["INCR", "ctr"]) {
                    Ok(Reply::Integer(n)) => {
                        replies.lock().unwrap().push(n);
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) if is_cluster_error(&r) => {
                        unknown.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(other) => panic!("INCR: {other:?}"),
                    Err(_) => {
                        unknown.fetch_add(1, Ordering::Relaxed);
                        client = None;
                    }
                }
            }
        })
    };
    wait_for("50 INCRs", LEADER_TIMEOUT, || {
        (acked.load(Ordering::Relaxed) >= 50).then_some(())
    });
    cluster.node_mut(leader).kill9();
    let before = acked.load(Ordering::Relaxed);
    must!(
        cluster,
        cluster.wait_for_new_leader(leader, LEADER_TIMEOUT),
        "new leader",
    );
    wait_for("50 INCRs after the kill", LEADER_TIMEOUT, || {
        (acked.load(Ordering::Relaxed) >= before + 50).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    incr.join().expect("INCR thread");

    let acked = acked.load(Ordering::Relaxed) as i64;
    let unknown = unknown.load(Ordering::Relaxed) as i64;
    let replies = replies.lock().unwrap().clone();
    let value: i64 = get(cluster.node(follower), "ctr")
        .expect("ctr exists")
        .parse()
        .unwrap();
    println!(
        "INCR via follower {follower}: {acked} acknowledged, {unknown} unknown, final {value}"
    );
    assert!(
        (acked..=acked + unknown).contains(&value),
        "counter {value}: {acked} INCRs acknowledged, {unknown} unknown"
    );
    // Each acknowledged INCR answered a new, larger value.
    assert!(
        replies.windows(2).all(|w| w[0] < w[1]),
        "INCR replies not increasing: {replies:?}"
    );
    assert!(*replies.last().unwrap() <= value);
}

#[test]
fn writes_keep_working_over_slow_peer_links() {
    // 40 ms each way (80 ms round trips) on every peer link: slower than
    // one heartbeat interval (50 ms) but far below the election timeout
    // (600 ms here). A leader must stay in place (same term: no election)
    // and commit writes, only slower. Each request must succeed within
    // 2 s, ten times its usual 120 to 200 ms; the forward timeout is
    // longer than that, so that a stall of a second on a loaded machine
    // (seen once in CI with a 1 s timeout, 2026-11-24) shows as a slow
    // request in the report rather than as an error. The election timeout
    // is twice the other tests' so that a follower starved of CPU for
    // 300 ms on a loaded CI machine does not start an election, which
    // this test would rightly report.
    let mut cfg = config(3);
    cfg.forward_timeout_ms = Some(5_000);
    cfg.election_timeout_ms = 600;
    let (cluster, proxy, leader) = start_proxied(cfg);
    set(cluster.node(leader), "before", "1");
    let term_before = cluster.node(leader).cluster_info().unwrap()["cluster_term"].clone();
    proxy.delay(&[1, 2, 3], &[1, 2, 3], 40, 0);
    let follower = others(&cluster, leader)[0];
    let mut problems = Vec::new();
    for (i, id) in [leader, follower].into_iter().cycle().take(10).enumerate() {
        let mut client = cluster.node(id).client(Duration::from_secs(10)).unwrap();
        let t = Instant::now();
        let reply = client.call(&["SET", "slow", &i.to_string()]);
        let took = t.elapsed();
        println!("SET via node {id} with 40 ms links: {reply:?} after {took:?}");
        match reply {
            Ok(r) if r == Reply::ok() && took < Duration::from_secs(2) => {}
            other => problems.push(format!("SET #{i} via node {id}: {other:?} after {took:?}")),
        }
    }
    // Linearizable reads on the now idle cluster. Every heartbeat outlives
    // its one interval, so no heartbeat round confirms the leadership; the
    // leader confirms through the log instead (`read_index_local`), and
    // the reads see the last write. After the first heartbeat round that
    // fails, reads skip that wait for a spell (10 election timeouts, 6 s).
    let reads = 6;
    for id in [leader, follower].into_iter().cycle().take(reads) {
        let mut client = cluster.node(id).client(Duration::from_secs(10)).unwrap();
        let t = Instant::now();
        let reply = client.call(&["GET", "slow"]);
        let took = t.elapsed();
        println!("GET via node {id} with 40 ms links: {reply:?} after {took:?}");
        match reply {
            Ok(Reply::Bulk(v)) if &v[..] == b"9" && took < Duration::from_secs(2) => {}
            other => problems.push(format!("GET via node {id}: {other:?} after {took:?}")),
        }
    }
    let replication = cluster.node(leader).info("replication").unwrap();
    let count = |field: &str| -> u64 {
        replication
            .get(field)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("INFO replication has no {field}: {replication:?}"))
    };
    let (by_log, timeouts) = (
        count("raft_reads_confirmed_by_log"),
        count("raft_read_heartbeat_timeouts"),
    );
    println!("reads confirmed by the log: {by_log}, heartbeat rounds that timed out: {timeouts}");
    if by_log < reads as u64 || timeouts >= by_log {
        problems.push(format!(
            "{reads} reads: {by_log} confirmed by the log, {timeouts} heartbeat rounds timed out \
             (every read waited for a heartbeat round that could not confirm)"
        ));
    }
    let info = cluster.node(leader).cluster_info().unwrap();
    println!("leader's CLUSTER INFO after the slow writes: {info:?}");
    if info["cluster_term"] != term_before || info["cluster_leader_id"] != leader.to_string() {
        problems.push(format!(
            "leadership changed over slow links: term {term_before} -> {}, leader {leader} -> {}",
            info["cluster_term"], info["cluster_leader_id"]
        ));
    }
    // The nodes' logs go with a failure: this test failed once in CI
    // (2026-11-24, a forwarded SET unanswered for 1 s) and never again in
    // dozens of runs, and the harness deletes the logs with the cluster.
    assert!(
        problems.is_empty(),
        "writes failed with 80 ms peer round trips (heartbeat 50 ms, election timeout 600 ms):\n{}\n{}",
        problems.join("\n"),
        cluster.logs_tail(200)
    );
    proxy.heal();
    set(cluster.node(leader), "after", "1");
}

/// A snapshot chunk that arrives outside a transfer is refused, and the
/// peer connection then closes: after a failed transfer the stream position
/// is unknown (a chunk may be half read), and whatever follows must not be
/// read as requests. The frames are written by hand, byte for byte, as a
/// confused or hostile peer would send them.
#[test]
fn a_failed_snapshot_transfer_closes_the_peer_connection() {
    use std::io::{Read, Write};
    let (cluster, leader) = start(config(1));
    let node = cluster.node(leader);
    let mut peer = common::peer::connect(node.peer_listen);
    // From "not a node" (0), past the handshake (no secret on loopback).
    let secret = common::peer::ClusterSecret::none();
    assert!(common::peer::handshake(&mut peer, &secret, 0, node.id).unwrap());
    // Request::SnapshotChunk (variant 5) of 3 bytes, then Request::Status
    // (variant 8), which must never be answered.
    let chunk = [5u8, 3, 1, 2, 3];
    let status = [8u8];
    let mut bytes = Vec::new();
    for payload in [&chunk[..], &status[..]] {
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(payload);
    }
    peer.write_all(&bytes).unwrap();
    let mut len = [0u8; 4];
    peer.read_exact(&mut len).unwrap();
    let mut payload = vec![0u8; u32::from_le_bytes(len) as usize];
    peer.read_exact(&mut payload).unwrap();
    // Response::Snapshot (variant 3) holding Err (1) and its message.
    assert_eq!(
        &payload[..2],
        &[3, 1],
        "not a refused snapshot: {payload:?}"
    );
    let mut rest = Vec::new();
    let closed = peer.read_to_end(&mut rest);
    assert!(
        matches!(closed, Ok(0)),
        "the connection went on after a failed transfer: {closed:?}, {} more bytes",
        rest.len()
    );
}

/// A pipeline on a follower: one ReadIndex round covers the reads buffered
/// together, but a read after a write in the same pipeline must still see
/// that write (the barrier is renewed after every write).
#[test]
fn pipelined_reads_on_a_follower_see_the_pipeline_writes() {
    let (cluster, leader) = start(config(3));
    let follower = others(&cluster, leader)[0];
    let mut raw = common::raw::Raw::connect(cluster.node(follower).resp_addr);
    let mut pipeline = Vec::new();
    for i in 0..50 {
        pipeline.extend(common::raw::encode(&["SET", "p", &i.to_string()]));
        pipeline.extend(common::raw::encode(&["GET", "p"]));
        pipeline.extend(common::raw::encode(&["GET", "p"]));
    }
    raw.send(&pipeline);
    for i in 0..50 {
        assert_eq!(raw.read(), common::raw::ok(), "SET #{i}");
        assert_eq!(
            raw.read(),
            common::raw::bulk(i.to_string()),
            "first GET #{i}"
        );
        assert_eq!(
            raw.read(),
            common::raw::bulk(i.to_string()),
            "second GET #{i}"
        );
    }
    // A write through the leader, then a read on the follower over a fresh
    // connection: linearizable, so it sees the write at once.
    set(cluster.node(leader), "p", "from-leader");
    let mut raw = common::raw::Raw::connect(cluster.node(follower).resp_addr);
    assert_eq!(raw.call(&["GET", "p"]), common::raw::bulk("from-leader"));
}

#[test]
fn a_pipeline_of_writes_shares_log_entries_and_replicates_in_order() {
    let (cluster, leader) = start(config(3));
    let before = info_u64(cluster.node(leader), "raft_last_log_index");
    let mut raw = common::raw::Raw::connect(cluster.node(leader).resp_addr);
    let mut pipeline = Vec::new();
    for i in 0..100 {
        pipeline.extend(common::raw::encode(&["SET", &format!("k{i}"), "v"]));
        pipeline.extend(common::raw::encode(&["INCR", "n"]));
    }
    raw.send(&pipeline);
    for i in 0..100 {
        assert_eq!(raw.read(), common::raw::ok(), "SET #{i}");
        // INCRs are applied in pipeline order, each exactly once.
        assert_eq!(raw.read(), common::raw::int(i + 1), "INCR #{i}");
    }
    // 200 commands of one pipeline: a few log entries, not 200 (one gather
    // of at most 256 commands per entry; the reader may have split the
    // pipeline into a couple of batches).
    let used = info_u64(cluster.node(leader), "raft_last_log_index") - before;
    assert!(
        (1..=8).contains(&used),
        "200 pipelined writes used {used} log entries"
    );
    let mut expected: Vec<(String, String)> = (0..100)
        .map(|i| (format!("k{i}"), "v".to_string()))
        .collect();
    expected.push(("n".into(), "100".into()));
    for id in cluster.ids() {
        wait_local_data(cluster.node(id), &expected, CATCH_UP_TIMEOUT);
    }
}

/// The founding nodes may start in any order, with gaps longer than an
/// election timeout between them (as the README says): a lone node waits
/// (and refuses writes) instead of electing itself, the first pair forms a
/// majority and serves, and the last node joins that cluster rather than
/// starting another.
#[test]
fn founding_nodes_started_in_any_order_form_one_cluster() {
    let mut cfg = config(3);
    cfg.forward_timeout_ms = Some(FORWARD_TIMEOUT_MS);
    let mut cluster = Cluster::prepare(cfg).unwrap_or_else(|e| panic!("prepare: {e:#}"));
    let gap = Duration::from_millis(1_000); // more than 3 election timeouts

    must!(cluster, cluster.node_mut(3).start(), "start node 3");
    std::thread::sleep(gap);
    let alone = cluster.node(3).cluster_info().unwrap();
    assert_ne!(
        alone["cluster_role"], "leader",
        "a lone node elected itself: {alone:?}"
    );
    let problem = check_cluster_error(cluster.node(3), "node 3 alone", &["SET", "k", "early"]);
    assert!(problem.is_none(), "{problem:?}");

    must!(cluster, cluster.node_mut(1).start(), "start node 1");
    let leader = must!(
        cluster,
        cluster.wait_for_leader_among(&[1, 3], LEADER_TIMEOUT),
        "a leader among nodes 1 and 3",
    );
    set(cluster.node(leader), "k", "v");
    std::thread::sleep(gap);

    must!(cluster, cluster.node_mut(2).start(), "start node 2");
    wait_local_data(
        cluster.node(2),
        &[("k".into(), "v".into())],
        CATCH_UP_TIMEOUT,
    );
    let leader = must!(
        cluster,
        cluster.wait_for_leader(LEADER_TIMEOUT),
        "one leader for all three",
    );
    set(cluster.node(2), "k2", "v2");
    for id in cluster.ids() {
        let info = cluster.node(id).cluster_info().unwrap();
        assert_eq!(
            info["cluster_leader_id"],
            leader.to_string(),
            "node {id}: {info:?}"
        );
        assert_eq!(info["cluster_voters"], "1,2,3", "node {id}: {info:?}");
        assert_eq!(
            get(cluster.node(id), "k2").as_deref(),
            Some("v2"),
            "node {id}"
        );
    }
}

/// Five voters survive two failures at once: the leader and a follower are
/// killed together, the other three elect a leader and keep serving reads
/// and writes, and both dead nodes come back and catch up. A third failure
/// leaves two of five, no majority: -CLUSTERDOWN, nothing acknowledged.
#[test]
fn five_nodes_survive_two_failures() {
    let mut cfg = config(5);
    cfg.forward_timeout_ms = Some(FORWARD_TIMEOUT_MS);
    let (mut cluster, leader) = start(cfg);
    let before = kv("five-before", 50);
    write_all(cluster.node(leader), &before);

    let victims = [leader, others(&cluster, leader)[0]];
    for v in victims {
        cluster.node_mut(v).kill9();
    }
    let alive: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|id| !victims.contains(id))
        .collect();
    let new_leader = must!(
        cluster,
        cluster.wait_for_leader_among(&alive, LEADER_TIMEOUT),
        "a leader among the three left",
    );
    let during = kv("five-during", 50);
    for (i, pair) in during.iter().enumerate() {
        let via = alive[i % alive.len()];
        write_all(cluster.node(via), std::slice::from_ref(pair));
    }
    for id in &alive {
        assert_eq!(
            get(cluster.node(*id), "five-before:49").as_deref(),
            Some("value-five-before-49"),
            "node {id}"
        );
    }

    // A third failure: two of five left.
    let third = *alive.iter().find(|id| **id != new_leader).unwrap();
    cluster.node_mut(third).kill9();
    let problem = check_cluster_error(
        cluster.node(new_leader),
        "two of five",
        &["SET", "five-lost?", "x"],
    );
    assert!(problem.is_none(), "{problem:?}");

    for v in victims.into_iter().chain([third]) {
        must!(cluster, cluster.node_mut(v).start(), "restart");
    }
    let all: Vec<_> = before.iter().chain(&during).cloned().collect();
    for v in victims.into_iter().chain([third]) {
        wait_local_data(cluster.node(v), &all, CATCH_UP_TIMEOUT);
    }
    let leader = must!(
        cluster,
        cluster.wait_for_leader(LEADER_TIMEOUT),
        "one leader for all five",
    );
    set(cluster.node(leader), "five-after", "ok");
    for id in cluster.ids() {
        assert_eq!(
            get(cluster.node(id), "five-after").as_deref(),
            Some("ok"),
            "node {id}"
        );
    }
}

/// When Raft stops on a storage error (here: the snapshot directory was
/// replaced by a file, so the next snapshot cannot be written), the server
/// does not stay up answering errors forever: it shuts down with exit code
/// 2 and says why. Once the fault is fixed, a restart has every write that
/// was acknowledged.
#[test]
fn a_node_whose_raft_fails_on_storage_exits_and_recovers_on_restart() {
    let mut cfg = config(1);
    cfg.snapshot_logs = Some(10);
    let (mut cluster, leader) = start(cfg);
    let snapshots = cluster.node(leader).data_dir.join("raft-snapshots");
    assert!(snapshots.is_dir(), "{}", snapshots.display());
    std::fs::remove_dir_all(&snapshots).unwrap();
    std::fs::write(&snapshots, b"not a directory").unwrap();

    // Write until the next snapshot fails and the server exits; each write
    // either is acknowledged (and must survive) or fails.
    let mut acknowledged = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0.. {
        assert!(Instant::now() < deadline, "the server never stopped");
        let key = format!("k{i}");
        match cluster.node(leader).call(&["SET", &key, "v"]) {
            Ok(r) if r == Reply::ok() => acknowledged.push(key),
            Ok(r) if is_cluster_error(&r) => {}
            Ok(other) => panic!("SET {key}: {other:?}"),
            Err(_) => break, // connection refused or closed: going down
        }
    }
    let status = must!(
        cluster,
        cluster.node_mut(leader).wait_exit(Duration::from_secs(30)),
        "exit after the Raft failure",
    );
    assert_eq!(
        status.code(),
        Some(2),
        "{}",
        cluster.node(leader).log_tail(20)
    );
    let log = cluster.node(leader).log();
    assert!(
        log.contains("Raft stopped on an error"),
        "no reason given:\n{}",
        cluster.node(leader).log_tail(20)
    );
    assert!(acknowledged.len() >= 5, "{acknowledged:?}");

    std::fs::remove_file(&snapshots).unwrap();
    must!(cluster, cluster.node_mut(leader).start(), "restart");
    must!(
        cluster,
        cluster.wait_for_leader(LEADER_TIMEOUT),
        "leader again"
    );
    for key in &acknowledged {
        assert_eq!(
            get(cluster.node(leader), key).as_deref(),
            Some("v"),
            "{key}"
        );
    }
}

/// A snapshot that arrives corrupt (here: the leader's file on disk had a
/// byte flipped) is refused as a failed transfer. The follower stays up
/// (before, the failed check inside openraft's install stopped its Raft).
/// The leader notices its bad file while sending it and builds a new one,
/// so the follower catches up with no further writes (an idle cluster
/// would otherwise resend the bad file until its next scheduled snapshot).
#[test]
fn a_corrupt_snapshot_is_refused_and_the_follower_stays_up() {
    let mut cfg = config(3);
    cfg.snapshot_logs = Some(100);
    let (mut cluster, leader) = start(cfg);
    let follower = others(&cluster, leader)[0];
    set(cluster.node(leader), "early", "1");
    wait_local_data(
        cluster.node(follower),
        &[("early".into(), "1".into())],
        CATCH_UP_TIMEOUT,
    );
    let follower_index = info_u64(cluster.node(follower), "raft_last_log_index");
    cluster.node_mut(follower).kill9();

    // Single SETs, one log entry each, until the leader's log is purged
    // past what the follower has: it can only catch up by a snapshot.
    let data = kv("corrupt", 200);
    write_all(cluster.node(leader), &data);
    let mut filler = 0u32;
    let mut fill = |cluster: &Cluster, n: u32| {
        for _ in 0..n {
            filler += 1;
            set(cluster.node(leader), &format!("filler:{filler}"), "x");
        }
    };
    wait_for(
        "the leader's log purged past the follower",
        CATCH_UP_TIMEOUT,
        || {
            let info = cluster.node(leader).info("replication").ok()?;
            let purged: Option<u64> = info.get("raft_purged_index")?.parse().ok();
            if purged.is_some_and(|p| p > follower_index + 1) {
                return Some(());
            }
            fill(&cluster, 20);
            None
        },
    );
    let snapshot_index = info_u64(cluster.node(leader), "raft_snapshot_index");

    // Flip one byte in the middle of the leader's newest snapshot file.
    let dir = cluster.node(leader).data_dir.join("raft-snapshots");
    let newest = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "snap"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .expect("a snapshot file on the leader");
    let mut bytes = std::fs::read(&newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&newest, &bytes).unwrap();

    must!(
        cluster,
        cluster.node_mut(follower).start(),
        "restart the follower"
    );
    // No more writes: the leader's rebuilt snapshot (at its applied index,
    // a sound file) is what the follower installs.
    wait_local_data(cluster.node(follower), &data, CATCH_UP_TIMEOUT);
    assert!(
        cluster.node_mut(follower).is_running(),
        "the follower exited on a corrupt snapshot:\n{}",
        cluster.node(follower).log_tail(30)
    );
    assert!(
        cluster
            .node(follower)
            .log()
            .contains("received snapshot is unusable"),
        "the corrupt snapshot was not refused on arrival:\n{}",
        cluster.node(follower).log_tail(30)
    );
    assert!(info_u64(cluster.node(follower), "raft_snapshots_installed") >= 1);
    assert!(info_u64(cluster.node(leader), "raft_snapshot_index") >= snapshot_index);
    assert!(
        cluster
            .node(leader)
            .log()
            .contains("snapshot file fails its checksum"),
        "{}",
        cluster.node(leader).log_tail(30)
    );
}

/// `strata cluster step-down` (CLUSTER STEPDOWN), the Kubernetes pre-stop
/// hook: on a follower it answers OK and changes nothing; on the leader it
/// answers once another node leads, and the old leader keeps serving (it
/// forwards). A lone voter has nobody to hand over to: an error.
#[test]
fn step_down_hands_leadership_over_and_is_a_no_op_on_followers() {
    let (cluster, leader) = start(config(3));
    set(cluster.node(leader), "k", "v");
    let all = [1, 2, 3];
    let follower = others(&cluster, leader)[0];
    let out = run_cli(&["cluster", "step-down"], cluster.node(follower).resp_addr);
    assert_eq!((out.0, out.1.as_str()), (0, "OK\n"), "{out:?}");
    let still = wait_for("an agreed leader", LEADER_TIMEOUT, || {
        cluster.agreed_leader(&all)
    });
    assert_eq!(still, leader, "a step-down on a follower moved leadership");

    let t = Instant::now();
    let out = run_cli(&["cluster", "step-down"], cluster.node(leader).resp_addr);
    let took = t.elapsed();
    assert_eq!((out.0, out.1.as_str()), (0, "OK\n"), "{out:?}");
    // When it answers, the old leader already follows another node.
    let view = cluster.node(leader).leader_view().unwrap();
    assert!(
        view.as_ref().is_some_and(|v| v.id != leader),
        "node {leader} still sees {view:?} as leader after stepping down"
    );
    let new_leader = wait_for("all three agree on the new leader", LEADER_TIMEOUT, || {
        cluster.agreed_leader(&all)
    });
    println!("step-down of leader {leader}: node {new_leader} leads; answered in {took:?}");
    assert_ne!(new_leader, leader);
    assert!(took < Duration::from_secs(3), "step-down took {took:?}");
    set(cluster.node(leader), "after", "1");
    assert_eq!(get(cluster.node(new_leader), "after").as_deref(), Some("1"));
    assert_eq!(get(cluster.node(leader), "k").as_deref(), Some("v"));

    let wrong = cluster.node(leader).call(&["CLUSTER", "STEPDOWN", "now"]);
    assert!(
        matches!(&wrong, Ok(Reply::Error(e)) if e.contains("wrong number of arguments")),
        "{wrong:?}"
    );

    let (lone, lone_leader) = start(config(1));
    let out = run_cli(&["cluster", "step-down"], lone.node(lone_leader).resp_addr);
    assert_eq!(out.0, 2, "{out:?}");
    assert!(out.2.contains("only voter"), "{out:?}");
}

/// `--peer-advertise`: a node that joins under a DNS name (here
/// `localhost:<port>`, not its bound 127.0.0.1 address) is a member under
/// that name, and the others reach it there: it becomes a voter only once
/// the leader has replicated to it.
#[test]
fn a_joining_node_is_known_by_its_advertised_name() {
    let (mut cluster, leader) = start(config(3));
    set(cluster.node(leader), "before", "1");
    let args = vec![
        "--join".to_string(),
        cluster.node(leader).peer_addr.to_string(),
        "--heartbeat-ms".to_string(),
        cluster.config.heartbeat_ms.to_string(),
        "--election-timeout-ms".to_string(),
        cluster.config.election_timeout_ms.to_string(),
    ];
    let node = must!(cluster, cluster.new_node(4, args), "node 4");
    let name = format!("localhost:{}", node.peer_listen.port());
    node.set_env("STRATA_PEER_ADVERTISE", &name);
    must!(cluster, cluster.node_mut(4).start(), "start node 4");
    wait_for("node 4 as a voter", CATCH_UP_TIMEOUT, || {
        let info = cluster.node(leader).cluster_info().ok()?;
        (info.get("cluster_voters")? == "1,2,3,4").then_some(())
    });
    let members = cluster_nodes(cluster.node(leader));
    assert!(
        members.iter().any(|m| m.0 == 4 && m.1 == name),
        "node 4 is not a member as {name}: {members:?}"
    );
    must!(
        cluster,
        cluster.wait_converged(&[1, 2, 3, 4], CATCH_UP_TIMEOUT),
        "converge with node 4",
    );
    assert_eq!(get(cluster.node(4), "before").as_deref(), Some("1"));
    set(cluster.node(4), "via-4", "ok");
    assert_eq!(get(cluster.node(leader), "via-4").as_deref(), Some("ok"));
}
