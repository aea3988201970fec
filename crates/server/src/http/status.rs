//! `/v1/status/leader`, `/v1/status/peers`, `/v1/status/node`: what this
//! node knows of itself and the cluster, from memory (no network round
//! trip), after Consul's status endpoints.
//!
//! A single node answers in the same shapes: it is its own leader and its
//! only member, with no node id, no term and no peer address (`null`);
//! its commit and applied index are the version of its published state
//! (every acknowledged write is committed and applied at once).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use strata_replication::ClusterNode;

use super::HttpState;

/// A member, as the status endpoints show it.
#[derive(Serialize)]
pub(crate) struct Member {
    /// Node id (`null` on a single node).
    id: Option<u64>,
    /// Address peers use (`null` on a single node).
    peer_addr: Option<String>,
    /// RESP address, when this node has learned it (`null` until then).
    client_addr: Option<String>,
    /// `voter`, `learner`, or `standalone` (a single node).
    kind: &'static str,
    leader: bool,
}

#[derive(Serialize)]
pub(crate) struct Leader {
    /// `null` while no leader is known (an election, no quorum).
    leader: Option<Member>,
}

#[derive(Serialize)]
pub(crate) struct Peers {
    peers: Vec<Member>,
}

/// This node: its mode, role and indexes.
#[derive(Serialize)]
pub(crate) struct Node {
    /// `single` or `cluster`.
    mode: &'static str,
    id: Option<u64>,
    /// `standalone` (single node), or Raft's: `leader`, `follower`,
    /// `candidate`, `learner`, `shutdown`.
    role: &'static str,
    term: Option<u64>,
    leader: Option<u64>,
    commit_index: u64,
    applied_index: u64,
    last_log_index: Option<u64>,
    snapshot_index: Option<u64>,
    /// `ok`, `failed` (writes refused after a failed write or fsync), or
    /// `corrupt` (a read hit damaged data).
    storage: &'static str,
    version: &'static str,
}

pub(crate) async fn leader(State(state): State<Arc<HttpState>>) -> Json<Leader> {
    let shared = &state.shared;
    let leader = match &shared.cluster {
        None => Some(standalone(shared)),
        Some(node) => {
            let s = node.status();
            s.leader.map(|id| {
                let kind = if s.learners.contains(&id) {
                    "learner"
                } else {
                    "voter"
                };
                member(node, id, s.nodes.get(&id).cloned(), kind, true)
            })
        }
    };
    Json(Leader { leader })
}

pub(crate) async fn peers(State(state): State<Arc<HttpState>>) -> Json<Peers> {
    let shared = &state.shared;
    let peers = match &shared.cluster {
        None => vec![standalone(shared)],
        Some(node) => {
            let s = node.status();
            s.nodes
                .iter()
                .map(|(&id, addr)| {
                    let kind = if s.learners.contains(&id) {
                        "learner"
                    } else {
                        "voter"
                    };
                    member(node, id, Some(addr.clone()), kind, s.leader == Some(id))
                })
                .collect()
        }
    };
    Json(Peers { peers })
}

pub(crate) async fn node(State(state): State<Arc<HttpState>>) -> Json<Node> {
    let shared = &state.shared;
    let storage = if strata_storage::corruption_errors() > 0 {
        "corrupt"
    } else if shared.store.failure().is_some() {
        "failed"
    } else {
        "ok"
    };
    let node = match &shared.cluster {
        None => {
            let version = shared.store.stats().published_version;
            Node {
                mode: "single",
                id: None,
                role: "standalone",
                term: None,
                leader: None,
                commit_index: version,
                applied_index: version,
                last_log_index: None,
                snapshot_index: None,
                storage,
                version: crate::VERSION,
            }
        }
        Some(node) => {
            let s = node.status();
            Node {
                mode: "cluster",
                id: Some(s.id),
                role: s.role,
                term: Some(s.term),
                leader: s.leader,
                commit_index: s.commit_index,
                applied_index: s.applied_index,
                last_log_index: Some(s.last_log_index),
                snapshot_index: s.snapshot_index,
                storage,
                version: crate::VERSION,
            }
        }
    };
    Json(node)
}

fn member(
    node: &ClusterNode,
    id: u64,
    peer_addr: Option<String>,
    kind: &'static str,
    leader: bool,
) -> Member {
    Member {
        id: Some(id),
        peer_addr,
        client_addr: node.known_client_addr(id),
        kind,
        leader,
    }
}

/// A single node, as its own only member and leader.
fn standalone(shared: &crate::shared::Shared) -> Member {
    Member {
        id: None,
        peer_addr: None,
        client_addr: Some(shared.config.listen.to_string()),
        kind: "standalone",
        leader: true,
    }
}
