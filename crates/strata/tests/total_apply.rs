//! A committed entry can never kill a replica (issue: "one command bricks a
//! whole cluster").
//!
//! Before, a key of 65,535 bytes or more in DEL, UNLINK, GETDEL, EXPIRE,
//! PERSIST or RENAME was committed to the Raft log, and every replica
//! aborted on the engine's key-length assertion while applying it, and again
//! at every restart while replaying it. Two layers now stop that, and this
//! file drives both through real `strata server` processes:
//!
//! * every key argument of every command is checked at parse time, so the
//!   commands of the finding are refused before anything is proposed;
//! * `apply` is total: an entry that does reach the log with such a key
//!   (hand-built here, as an older build or a stranger on the peer port
//!   could send it) is refused the same way on every replica, which stay
//!   up, and stay up across a restart of every node that replays it.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::cluster::*;
use common::peer;
use strata_replication::Command;
use strata_replication::wire::{Request, Response};
use strata_storage::{Limits, Mutation, MutationError, Op, Outcome, Step, Watched, WatchedVersion};

/// The key lengths of the finding: the engine's 65,535 and past it, and
/// the default limit plus one.
const HUGE_KEY_BYTES: [usize; 3] = [16 * 1024 + 1, 65_535, 70_000];

/// The finding's commands, with `key` where the key goes.
fn hostile_commands(key: &str) -> Vec<Vec<&str>> {
    vec![
        vec!["DEL", key],
        vec!["UNLINK", key],
        vec!["GETDEL", key],
        vec!["EXPIRE", key, "10"],
        vec!["PERSIST", key],
        vec!["RENAME", key, "x"],
        vec!["RENAME", "x", key],
        vec!["DELETE", key],
        vec!["GET", key],
        vec!["EXISTS", "a", key],
        vec!["WATCH", key],
    ]
}

/// The finding's commands through a follower: each answers an error that
/// names the key limit, and every node stays up.
fn send_hostile_commands(cluster: &Cluster, via: u64) {
    let node = cluster.node(via);
    let mut client = node.client(Duration::from_secs(30)).expect("connect");
    for len in HUGE_KEY_BYTES {
        let key = "k".repeat(len);
        for args in hostile_commands(&key) {
            let reply = client.call(&args).expect("reply");
            match &reply {
                Reply::Error(e) => assert!(
                    e.starts_with("ERR key too large"),
                    "{} with a {len}-byte key: {e}",
                    args[0]
                ),
                other => panic!("{} with a {len}-byte key: {other:?}", args[0]),
            }
        }
    }
}

/// One request on the peer port of `to`, as a peer would send it (this
/// cluster has no secret: the handshake proves the empty one).
fn peer_call(addr: SocketAddr, to: u64, request: &Request) -> Response {
    let mut stream = peer::connect(addr);
    let accepted = peer::handshake(&mut stream, &peer::ClusterSecret::none(), 0, to);
    assert!(accepted.expect("handshake"), "handshake refused");
    let payload = postcard::to_allocvec(request).unwrap();
    stream.write_all(&peer::frame(&payload)).unwrap();
    let body = peer::read_frame(&mut stream).expect("response");
    postcard::from_bytes(&body).expect("decode response")
}

/// Commands no parser of this build produces: keys past the engine's
/// length, carried with no limits at all.
fn hostile_entries() -> Vec<Command> {
    let no_limits = Limits {
        key_size_bytes_max: usize::MAX,
        value_size_bytes_max: usize::MAX,
    };
    let huge = Bytes::from(vec![b'k'; 70_000]);
    let now_ms = strata_storage::now_ms();
    let ops = vec![
        Op::Delete {
            keys: vec![Bytes::from_static(b"a"), huge.clone()],
        },
        Op::Set {
            key: huge.clone(),
            value: Bytes::from_static(b"v"),
            condition: strata_storage::SetCondition::Always,
            expiry: strata_storage::SetExpiry::Clear,
            return_old: false,
        },
        Op::GetDel { key: huge.clone() },
        Op::Rename {
            from: Bytes::from_static(b"a"),
            to: huge.clone(),
            if_absent: false,
        },
        Op::SetRange {
            key: Bytes::from_static(b"a"),
            offset: u64::MAX - 1,
            value: Bytes::from_static(b"v"),
        },
        // Transactions: a huge key in a step, a read or a watch refuses
        // the whole transaction (its DEL of "a" included).
        Op::Exec {
            steps: vec![
                Step::Write(Op::Delete {
                    keys: vec![Bytes::from_static(b"a")],
                }),
                Step::Write(Op::GetDel { key: huge.clone() }),
            ],
            watched: vec![],
        },
        Op::Exec {
            steps: vec![
                Step::Write(Op::Delete {
                    keys: vec![Bytes::from_static(b"a")],
                }),
                Step::Read {
                    keys: vec![huge.clone()],
                },
            ],
            watched: vec![],
        },
        Op::Exec {
            steps: vec![Step::Write(Op::Delete {
                keys: vec![Bytes::from_static(b"a")],
            })],
            watched: vec![Watched {
                key: huge.clone(),
                digest: None,
            }],
        },
        // A nested transaction (no parser builds one), and FLUSHALL in a
        // transaction (applied between groups, never inside one): refused.
        Op::Exec {
            steps: vec![
                Step::Write(Op::Delete {
                    keys: vec![Bytes::from_static(b"a")],
                }),
                Step::Write(Op::Exec {
                    steps: vec![Step::Write(Op::Set {
                        key: huge.clone(),
                        value: Bytes::from_static(b"v"),
                        condition: strata_storage::SetCondition::Always,
                        expiry: strata_storage::SetExpiry::Clear,
                        return_old: false,
                    })],
                    watched: vec![],
                }),
            ],
            watched: vec![],
        },
        Op::Exec {
            steps: vec![Step::Write(Op::FlushAll)],
            watched: vec![],
        },
        // The same for transactions with version watches.
        Op::ExecVersioned {
            steps: vec![Step::Write(Op::Delete {
                keys: vec![Bytes::from_static(b"a")],
            })],
            watched: vec![WatchedVersion {
                key: huge.clone(),
                existed: true,
                as_of: 0,
            }],
        },
        Op::ExecVersioned {
            steps: vec![
                Step::Write(Op::Delete {
                    keys: vec![Bytes::from_static(b"a")],
                }),
                Step::Write(Op::ExecVersioned {
                    steps: vec![],
                    watched: vec![],
                }),
            ],
            watched: vec![],
        },
    ];
    ops.into_iter()
        .map(|op| Command {
            request: None,
            retry: false,
            limits: no_limits,
            mutation: Mutation { now_ms, op },
        })
        .collect()
}

fn assert_all_running(cluster: &mut Cluster, situation: &str) {
    for id in cluster.ids() {
        assert!(
            cluster.node_mut(id).is_running(),
            "node {id} died {situation}\n{}",
            cluster.logs_tail(40)
        );
    }
}

#[test]
fn oversized_keys_through_a_follower_and_in_the_log_kill_no_replica() {
    let (mut cluster, leader) = start(config(3));
    let follower = others(&cluster, leader)[0];
    set(cluster.node(leader), "a", "1");

    send_hostile_commands(&cluster, follower);
    send_hostile_commands(&cluster, leader);
    assert_all_running(&mut cluster, "after the commands of the finding");

    // Entries that reach the log anyway are refused alike by every replica.
    let node = cluster.node(leader);
    let response = peer_call(
        node.peer_listen,
        leader,
        &Request::WriteBatch(hostile_entries()),
    );
    let Response::WriteBatch(Ok(outcomes)) = response else {
        panic!("forwarded batch: {response:?}\n{}", cluster.logs_tail(40));
    };
    assert_eq!(outcomes.len(), 12, "{outcomes:?}");
    for outcome in &outcomes {
        assert!(
            matches!(
                outcome,
                Outcome::Refused(MutationError::KeyTooLarge { .. })
                    | Outcome::Refused(MutationError::ValueTooLarge { .. })
                    | Outcome::Refused(MutationError::NotInTransaction)
            ),
            "{outcomes:?}"
        );
    }
    // Refused means unchanged: the DEL that named "a" deleted nothing.
    set(cluster.node(follower), "after", "1");
    assert_all_running(&mut cluster, "applying the hand-built entries");
    for id in cluster.ids() {
        assert_eq!(
            get(cluster.node(id), "a").as_deref(),
            Some("1"),
            "node {id}"
        );
    }

    // Every node replays the entries at start-up, and stays up.
    for id in cluster.ids() {
        cluster.node_mut(id).kill9();
    }
    for id in cluster.ids() {
        must!(cluster, cluster.node_mut(id).start(), "restart");
    }
    must!(
        cluster,
        cluster.wait_for_leader(LEADER_TIMEOUT),
        "leader after a restart of every node"
    );
    for id in cluster.ids() {
        assert_eq!(
            get(cluster.node(id), "a").as_deref(),
            Some("1"),
            "node {id}"
        );
        assert_eq!(get(cluster.node(id), "after").as_deref(), Some("1"));
    }
    set(cluster.node(follower), "after-restart", "1");
    assert_all_running(&mut cluster, "after a restart of every node");
}
