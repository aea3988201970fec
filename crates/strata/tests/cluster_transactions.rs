//! Transactions in a cluster (real `strata server` processes, see
//! tests/common/cluster.rs):
//!
//! * MULTI/EXEC through a follower is forwarded as ONE log entry and
//!   replicated whole; WATCH on a follower aborts on a write made through
//!   the leader;
//! * WATCH across a leader change (kill -9 of the leader between WATCH and
//!   EXEC): EXEC then applies everything or nothing, the same on every
//!   node, and aborts when a watched key changed under the new leader;
//! * WATCH on one follower and a write of the SAME value (or INCR then
//!   DECR) through the other: EXEC aborts, and every replica holds the
//!   same data after (the check runs on each one, on record versions).

mod common;

use std::time::Instant;

use common::cluster::*;
use common::raw::{R, Raw, arr, bulk, int, ok};

const FORWARD_TIMEOUT_MS: u64 = 1_000;

fn queued() -> R {
    R::Simple("QUEUED".into())
}

#[test]
fn exec_through_a_follower_is_one_log_entry() {
    let (cluster, leader) = start(config(3));
    let follower = others(&cluster, leader)[0];
    set(cluster.node(leader), "warm", "up");
    let mut c = Raw::connect(cluster.node(follower).resp_addr);
    let before = info_u64(cluster.node(leader), "raft_last_log_index");
    assert_eq!(c.call(&["MULTI"]), ok());
    for i in 0..20 {
        assert_eq!(c.call(&["SET", &format!("tx{i}"), "v"]), queued());
        assert_eq!(c.call(&["INCR", "txn"]), queued());
    }
    assert_eq!(c.call(&["GET", "txn"]), queued());
    let mut expected = Vec::new();
    for i in 0..20 {
        expected.push(ok());
        expected.push(int(i + 1));
    }
    expected.push(bulk("20"));
    assert_eq!(c.call(&["EXEC"]), arr(expected));
    let used = info_u64(cluster.node(leader), "raft_last_log_index") - before;
    assert_eq!(used, 1, "one EXEC used {used} log entries");
    let mut data: Vec<(String, String)> = (0..20).map(|i| (format!("tx{i}"), "v".into())).collect();
    data.push(("txn".into(), "20".into()));
    for id in cluster.ids() {
        wait_local_data(cluster.node(id), &data, CATCH_UP_TIMEOUT);
    }

    // WATCH on the follower sees a write made through the leader.
    assert_eq!(c.call(&["WATCH", "txn"]), ok());
    set(cluster.node(leader), "txn", "changed");
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["SET", "watched-marker", "1"]), queued());
    assert_eq!(c.call(&["EXEC"]), R::NullArray);
    assert_eq!(get(cluster.node(leader), "watched-marker"), None);
}

/// WATCH and MULTI on a follower, kill -9 of the leader, then EXEC:
/// whatever EXEC answers (applied, or a cluster error with the outcome
/// unknown), the transaction's two keys are both set or both absent, alike
/// on every node. When `change` is set, the watched key is modified under
/// the new leader first, and the transaction must not apply.
fn exec_across_leader_kill(change: bool) {
    let mut cfg = config(3);
    cfg.forward_timeout_ms = Some(FORWARD_TIMEOUT_MS);
    let (mut cluster, leader) = start(cfg);
    let follower = others(&cluster, leader)[0];
    set(cluster.node(leader), "w", "0");
    let mut c = Raw::connect(cluster.node(follower).resp_addr);
    assert_eq!(c.call(&["WATCH", "w"]), ok());
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["SET", "a", "1"]), queued());
    assert_eq!(c.call(&["INCR", "w"]), queued());
    assert_eq!(c.call(&["SET", "b", "1"]), queued());
    cluster.node_mut(leader).kill9();
    let new_leader = must!(
        cluster,
        cluster.wait_for_new_leader(leader, LEADER_TIMEOUT),
        "new leader"
    );
    if change {
        set(cluster.node(new_leader), "w", "changed");
    }
    let reply = c.call(&["EXEC"]);
    let applied = match &reply {
        R::Arr(items) => {
            assert!(!change, "EXEC applied although w changed: {reply:?}");
            assert_eq!(items, &vec![ok(), int(1), ok()]);
            Some(true)
        }
        R::NullArray => Some(false),
        R::Err(e) if e.starts_with("CLUSTERDOWN") || e.starts_with("TRYAGAIN") => None,
        other => panic!("EXEC: {other:?}"),
    };
    // Bring the old leader back so every node can be compared.
    must!(
        cluster,
        cluster.node_mut(leader).restart(),
        "restart old leader"
    );
    let a = get(cluster.node(new_leader), "a");
    let b = get(cluster.node(new_leader), "b");
    assert_eq!(a, b, "half a transaction: a={a:?} b={b:?} (EXEC {reply:?})");
    if change {
        assert_eq!(a, None, "applied although a watched key changed");
    }
    if let Some(applied) = applied {
        assert_eq!(a.is_some(), applied, "EXEC answered {reply:?}");
    }
    let w = get(cluster.node(new_leader), "w").expect("w");
    let mut expected = vec![("w".to_string(), w)];
    if let Some(v) = a {
        expected.push(("a".into(), v.clone()));
        expected.push(("b".into(), v));
    }
    for id in cluster.ids() {
        wait_local_data(cluster.node(id), &expected, CATCH_UP_TIMEOUT);
        let mut ro = readonly(cluster.node(id));
        let got = mget(&mut ro, &["a".to_string(), "b".to_string()]);
        assert_eq!(got[0], got[1], "node {id}: half a transaction");
    }
}

#[test]
fn watch_across_a_leader_kill_applies_whole_or_not_at_all() {
    exec_across_leader_kill(false);
}

#[test]
fn watch_across_a_leader_kill_aborts_on_a_change() {
    exec_across_leader_kill(true);
}

/// Every key and value of `node`'s own state (READONLY reads).
fn local_dump(node: &Node) -> Vec<(String, Option<String>)> {
    let mut client = readonly(node);
    let mut keys: Vec<String> = client
        .keys("*")
        .expect("KEYS")
        .iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    keys.sort();
    let values = mget(&mut client, &keys);
    keys.into_iter().zip(values).collect()
}

#[test]
fn a_same_value_write_through_another_node_aborts_on_every_replica() {
    let (cluster, leader) = start(config(3));
    let followers = others(&cluster, leader);
    let (watcher, writer) = (cluster.node(followers[0]), cluster.node(followers[1]));
    set(cluster.node(leader), "w", "v");
    set(cluster.node(leader), "n", "5");
    let mut c = Raw::connect(watcher.resp_addr);
    let mut other = Raw::connect(writer.resp_addr);
    let exec = |c: &mut Raw, marker: &str| {
        assert_eq!(c.call(&["MULTI"]), ok());
        assert_eq!(c.call(&["SET", marker, "1"]), queued());
        assert_eq!(c.call(&["INCR", "n"]), queued());
        c.call(&["EXEC"])
    };
    // The same value, written through the other follower.
    assert_eq!(c.call(&["WATCH", "w"]), ok());
    assert_eq!(other.call(&["SET", "w", "v"]), ok());
    assert_eq!(exec(&mut c, "after-same-value"), R::NullArray);
    // INCR then DECR: the value is back where it was.
    assert_eq!(c.call(&["WATCH", "n"]), ok());
    assert_eq!(other.call(&["INCR", "n"]), int(6));
    assert_eq!(other.call(&["DECR", "n"]), int(5));
    assert_eq!(exec(&mut c, "after-incr-decr"), R::NullArray);
    // Created and deleted again.
    assert_eq!(c.call(&["WATCH", "gone"]), ok());
    assert_eq!(other.call(&["SET", "gone", "1"]), ok());
    assert_eq!(other.call(&["DEL", "gone"]), int(1));
    assert_eq!(exec(&mut c, "after-create-delete"), R::NullArray);
    // Nothing touched the watched keys: applied.
    assert_eq!(c.call(&["WATCH", "w", "n", "gone"]), ok());
    assert_eq!(other.call(&["SET", "unrelated", "1"]), ok());
    assert_eq!(exec(&mut c, "applied"), arr(vec![ok(), int(6)]));
    let expected: Vec<(String, Option<String>)> =
        [("applied", "1"), ("n", "6"), ("unrelated", "1"), ("w", "v")]
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect();
    // Every replica applied the same entries to the same end: identical
    // data, none of the aborted transactions' writes anywhere.
    for id in cluster.ids() {
        let deadline = Instant::now() + CATCH_UP_TIMEOUT;
        loop {
            let dump = local_dump(cluster.node(id));
            if dump == expected {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} holds {dump:?}, want {expected:?}"
            );
            std::thread::sleep(POLL);
        }
    }
}
