//! CLUSTER and ROLE: cluster status and membership changes.
//!
//! Parsing is synchronous (a handler returns [`Action::Cluster`]); running
//! is asynchronous ([`run`]), because membership changes wait for a commit
//! and some answers ask other nodes (their client addresses).

use std::fmt::Write as _;

use bytes::Bytes;
use strata_protocol::resp::Reply;
use strata_replication::{AdminRequest, ClusterNode, ClusterStatus, NodeId, StepDown};

use super::args::{self, is};
use super::redis_cluster::{self, View};
use super::{Action, Ctx};
use crate::shared::Shared;

/// A parsed cluster request, run by the connection.
pub enum ClusterCall {
    Info {
        with_followers: bool,
    },
    Leader,
    /// Strata's membership view (one line per member).
    Members,
    /// The Redis Cluster emulation (see `redis_cluster`).
    Nodes,
    Slots,
    Shards,
    MyId,
    Role,
    Admin(AdminRequest),
    /// Hand leadership over if this node leads (a pod's pre-stop hook).
    StepDown,
}

fn disabled() -> Action {
    Reply::error("ERR This instance has cluster support disabled").into()
}

fn node_id(raw: &Bytes) -> Result<NodeId, Reply> {
    match args::int(raw) {
        Ok(n) if n >= 1 => Ok(n as NodeId),
        _ => Err(Reply::error("ERR node id must be a positive integer")),
    }
}

fn peer_addr(raw: &Bytes) -> Result<String, Reply> {
    match std::str::from_utf8(raw) {
        Ok(s) if s.contains(':') && s.len() <= 255 => Ok(s.to_string()),
        _ => Err(Reply::error("ERR peer address must look like host:port")),
    }
}

/// The subcommands that only read (no argument after the name).
fn query_call(sub: &[u8]) -> Option<ClusterCall> {
    Some(if is(sub, "info") {
        ClusterCall::Info {
            with_followers: false,
        }
    } else if is(sub, "status") {
        ClusterCall::Info {
            with_followers: true,
        }
    } else if is(sub, "leader") {
        ClusterCall::Leader
    } else if is(sub, "members") {
        ClusterCall::Members
    } else if is(sub, "nodes") {
        ClusterCall::Nodes
    } else if is(sub, "slots") {
        ClusterCall::Slots
    } else if is(sub, "shards") {
        ClusterCall::Shards
    } else if is(sub, "myid") {
        ClusterCall::MyId
    } else {
        return None;
    })
}

pub fn cluster(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    if ctx.shared.cluster.is_none() {
        return disabled();
    }
    let sub = &a[1];
    let want = |n: usize| -> Result<(), Reply> {
        if a.len() == n {
            Ok(())
        } else {
            Err(Reply::error(format!(
                "ERR wrong number of arguments for 'cluster|{}' command",
                String::from_utf8_lossy(sub).to_lowercase()
            )))
        }
    };
    if is(sub, "keyslot") {
        // Pure computation: answered here, no cluster round trip.
        return match want(3) {
            Ok(()) => Reply::Integer(i64::from(redis_cluster::key_slot(&a[2]))).into(),
            Err(r) => r.into(),
        };
    }
    if let Some(call) = query_call(sub) {
        return match want(2) {
            Ok(()) => Action::Cluster(call),
            Err(r) => r.into(),
        };
    }
    let call = (|| -> Result<ClusterCall, Reply> {
        Ok(if is(sub, "addlearner") {
            want(4)?;
            ClusterCall::Admin(AdminRequest::AddLearner {
                id: node_id(&a[2])?,
                peer_addr: peer_addr(&a[3])?,
            })
        } else if is(sub, "addnode") {
            want(4)?;
            ClusterCall::Admin(AdminRequest::AddVoter {
                id: node_id(&a[2])?,
                peer_addr: peer_addr(&a[3])?,
            })
        } else if is(sub, "promote") {
            want(3)?;
            ClusterCall::Admin(AdminRequest::Promote {
                id: node_id(&a[2])?,
            })
        } else if is(sub, "removenode") {
            want(3)?;
            ClusterCall::Admin(AdminRequest::Remove {
                id: node_id(&a[2])?,
            })
        } else if is(sub, "stepdown") {
            want(2)?;
            ClusterCall::StepDown
        } else {
            return Err(Reply::error(format!(
                "ERR unknown subcommand '{}'. Try CLUSTER INFO, STATUS, LEADER, MEMBERS, NODES, SLOTS, SHARDS, MYID, KEYSLOT, ADDLEARNER, ADDNODE, PROMOTE, REMOVENODE, STEPDOWN.",
                args::show(sub, 64)
            )));
        })
    })();
    match call {
        Ok(c) => Action::Cluster(c),
        Err(r) => r.into(),
    }
}

pub fn role(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Action {
    if ctx.shared.cluster.is_none() {
        // A single node is a master with no replicas.
        return Reply::Array(vec![
            Reply::bulk("master"),
            Reply::Integer(0),
            Reply::Array(vec![]),
        ])
        .into();
    }
    Action::Cluster(ClusterCall::Role)
}

/// Runs a cluster request.
pub async fn run(shared: &Shared, call: ClusterCall) -> Reply {
    let Some(node) = &shared.cluster else {
        return Reply::error("ERR This instance has cluster support disabled");
    };
    match call {
        ClusterCall::Info { with_followers } => {
            let s = node.status();
            let mut text = info_text(&s, with_followers);
            redis_cluster::info_fields(&s, &mut text);
            Reply::Bulk(Bytes::from(text))
        }
        ClusterCall::Leader => {
            let s = node.status();
            match (s.leader, s.leader_peer_addr) {
                (Some(id), Some(peer)) => {
                    let client = client_addr_of(node, id).await.unwrap_or_default();
                    Reply::Array(vec![
                        Reply::Integer(id as i64),
                        Reply::bulk(peer),
                        Reply::bulk(client),
                    ])
                }
                _ => Reply::Null,
            }
        }
        ClusterCall::Nodes => {
            let view = View::gather(node, &node.status(), true).await;
            Reply::Bulk(Bytes::from(view.nodes_text()))
        }
        ClusterCall::Slots => View::gather(node, &node.status(), false)
            .await
            .slots_reply(),
        ClusterCall::Shards => View::gather(node, &node.status(), false)
            .await
            .shards_reply(),
        ClusterCall::MyId => Reply::bulk(redis_cluster::node_name(node.id())),
        ClusterCall::Members => Reply::Bulk(Bytes::from(members_text(node).await)),
        ClusterCall::Role => role_reply(node).await,
        ClusterCall::Admin(req) => match node.admin(req).await {
            Ok(()) => Reply::ok(),
            Err(e) => Reply::error(e.to_string()),
        },
        ClusterCall::StepDown => step_down(shared, node).await,
    }
}

/// CLUSTER STEPDOWN: `+OK` once another node leads, or at once on a node
/// that does not lead (so a pod's pre-stop hook can run it on every pod).
/// Bounded by the admin timeout.
async fn step_down(shared: &Shared, node: &ClusterNode) -> Reply {
    let timeout_ms = shared
        .config
        .cluster
        .as_ref()
        .map_or(crate::config::DEFAULT_ADMIN_TIMEOUT_MS, |c| {
            c.admin_timeout_ms
        });
    match node
        .step_down(std::time::Duration::from_millis(timeout_ms))
        .await
    {
        Ok(StepDown::NotLeader | StepDown::HandedOver { .. }) => Reply::ok(),
        Ok(StepDown::NoOtherVoter) => {
            Reply::error("ERR this node is the only voter: no other node can lead")
        }
        Err(e) => Reply::error(format!("ERR {e}")),
    }
}

/// CLUSTER MEMBERS: `id peer client voter|learner role` per member.
async fn members_text(node: &ClusterNode) -> String {
    let s = node.status();
    let mut text = String::new();
    for (id, peer) in &s.nodes {
        let probe = node.probe(*id).await;
        let client = probe
            .as_ref()
            .map(|p| p.client_addr.clone())
            .unwrap_or_else(|| "-".into());
        let kind = if s.voters.contains(id) {
            "voter"
        } else {
            "learner"
        };
        let role = probe.map(|p| p.role).unwrap_or_else(|| "unknown".into());
        let _ = writeln!(text, "{id} {peer} {client} {kind} {role}");
    }
    text
}

async fn client_addr_of(node: &ClusterNode, id: NodeId) -> Option<String> {
    if id == node.id() {
        return Some(node.client_addr().to_string());
    }
    node.probe(id).await.map(|p| p.client_addr)
}

fn split_host_port(addr: &str) -> (String, i64) {
    match addr.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().unwrap_or(0)),
        None => (addr.to_string(), 0),
    }
}

async fn role_reply(node: &ClusterNode) -> Reply {
    let s = node.status();
    if s.role == "leader" {
        let mut replicas = Vec::new();
        for (id, matched) in &s.matched {
            if *id == s.id {
                continue;
            }
            let addr = client_addr_of(node, *id).await.unwrap_or_default();
            let (host, port) = split_host_port(&addr);
            replicas.push(Reply::Array(vec![
                Reply::bulk(host),
                Reply::bulk(port.to_string()),
                Reply::bulk(matched.unwrap_or(0).to_string()),
            ]));
        }
        return Reply::Array(vec![
            Reply::bulk("master"),
            Reply::Integer(s.applied_index as i64),
            Reply::Array(replicas),
        ]);
    }
    let (host, port, state) = match s.leader {
        Some(l) => match client_addr_of(node, l).await {
            Some(addr) => {
                let (h, p) = split_host_port(&addr);
                (h, p, "connected")
            }
            None => (String::new(), 0, "connect"),
        },
        None => (String::new(), 0, "connect"),
    };
    Reply::Array(vec![
        Reply::bulk("slave"),
        Reply::bulk(host),
        Reply::Integer(port),
        Reply::bulk(state),
        Reply::Integer(s.applied_index as i64),
    ])
}

fn join(ids: &[NodeId]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// CLUSTER INFO / STATUS text.
pub fn info_text(s: &ClusterStatus, with_followers: bool) -> String {
    let mut out = String::new();
    let state = if s.healthy { "ok" } else { "fail" };
    let _ = write!(
        out,
        "cluster_state:{state}\r\ncluster_node_id:{}\r\ncluster_role:{}\r\ncluster_term:{}\r\ncluster_leader_id:{}\r\ncluster_commit_index:{}\r\ncluster_applied_index:{}\r\ncluster_last_log_index:{}\r\ncluster_snapshot_index:{}\r\ncluster_voters:{}\r\ncluster_learners:{}\r\ncluster_known_nodes:{}\r\n",
        s.id,
        s.role,
        s.term,
        s.leader.map_or_else(String::new, |l| l.to_string()),
        s.commit_index,
        s.applied_index,
        s.last_log_index,
        s.snapshot_index.map_or_else(String::new, |i| i.to_string()),
        join(&s.voters),
        join(&s.learners),
        s.nodes.len(),
    );
    if with_followers {
        for (id, matched) in &s.matched {
            if *id == s.id {
                continue;
            }
            let m = matched.unwrap_or(0);
            let _ = write!(
                out,
                "follower_{id}:matched={m},lag={}\r\n",
                s.last_log_index.saturating_sub(m)
            );
        }
    }
    out
}

/// The INFO replication section in cluster mode.
pub fn info_replication(node: &ClusterNode, s: &ClusterStatus, out: &mut String) {
    let leader = s.role == "leader";
    let followers: Vec<_> = s.matched.iter().filter(|(id, _)| **id != s.id).collect();
    let _ = write!(
        out,
        "# Replication\r\nrole:{}\r\nraft_role:{}\r\nraft_node_id:{}\r\nraft_term:{}\r\nraft_leader_id:{}\r\nraft_leader_peer_addr:{}\r\nraft_commit_index:{}\r\nraft_applied_index:{}\r\nraft_last_log_index:{}\r\nraft_snapshot_index:{}\r\nraft_purged_index:{}\r\nraft_snapshots_built:{}\r\nraft_snapshots_installed:{}\r\nraft_quorum_ack_age_ms:{}\r\nraft_reads_confirmed_by_heartbeat:{}\r\nraft_reads_confirmed_by_log:{}\r\nraft_read_heartbeat_timeouts:{}\r\nconnected_slaves:{}\r\n",
        if leader { "master" } else { "slave" },
        s.role,
        s.id,
        s.term,
        s.leader.map_or_else(String::new, |l| l.to_string()),
        s.leader_peer_addr.clone().unwrap_or_default(),
        s.commit_index,
        s.applied_index,
        s.last_log_index,
        s.snapshot_index.map_or_else(String::new, |i| i.to_string()),
        s.purged_index.map_or_else(String::new, |i| i.to_string()),
        s.snapshots_built,
        s.snapshots_installed,
        s.quorum_ack_age_ms
            .map_or_else(String::new, |a| a.to_string()),
        s.reads_confirmed_by_heartbeat,
        s.reads_confirmed_by_log,
        s.read_heartbeat_timeouts,
        if leader { followers.len() } else { 0 },
    );
    if leader {
        for (i, (id, matched)) in followers.iter().enumerate() {
            let m = matched.unwrap_or(0);
            // ip/port: the follower's client address, as Redis tools
            // expect (from the status-probe cache; its peer address until
            // the first probe answered).
            let addr = node
                .known_client_addr(**id)
                .or_else(|| s.nodes.get(id).cloned())
                .unwrap_or_default();
            let (ip, port) = split_host_port(&addr);
            let _ = write!(
                out,
                "slave{i}:id={id},ip={ip},port={port},state=online,offset={m},lag={}\r\n",
                s.last_log_index.saturating_sub(m)
            );
        }
    }
}
