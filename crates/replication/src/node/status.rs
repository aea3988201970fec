//! What the node knows of itself and the cluster: status, probes of other
//! members, their client addresses, and which members are failed.

use super::*;

impl ClusterNode {
    pub(super) fn is_leader(&self) -> bool {
        self.inner.raft.is_leader()
    }

    /// The leader and its peer address. Borrowed, not cloned: followers ask
    /// for every forwarded batch and read barrier, and a clone of the whole
    /// metrics (membership maps, replication progress) is not needed.
    pub(super) fn leader(&self) -> Option<(NodeId, String)> {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        let id = m.current_leader?;
        let addr = m.membership_config.get_node(&id)?.addr.clone();
        Some((id, addr))
    }

    /// This node's status.
    pub fn status(&self) -> ClusterStatus {
        let m = self.inner.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        let learners: Vec<NodeId> = membership.learner_ids().collect();
        let nodes = membership
            .nodes()
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect::<BTreeMap<_, _>>();
        let matched = m
            .replication
            .as_ref()
            .map(|r| r.iter().map(|(id, l)| (*id, l.map(|l| l.index))).collect())
            .unwrap_or_default();
        let quorum_ack_age_ms = m.last_quorum_acked.map(|t| t.elapsed().as_millis() as u64);
        let quorum_window_ms = 4 * self.inner.config.election_timeout_ms;
        let healthy = match m.state {
            ServerState::Leader => quorum_ack_age_ms.is_some_and(|a| a <= quorum_window_ms),
            _ => m.current_leader.is_some(),
        };
        ClusterStatus {
            healthy,
            id: self.inner.id,
            role: role_name(m.state),
            term: m.current_term,
            leader: m.current_leader,
            leader_peer_addr: m.current_leader.and_then(|l| nodes.get(&l).cloned()),
            commit_index: m.local_committed.map_or(0, |l| l.index),
            cluster_commit_index: m.cluster_committed.map_or(0, |l| l.index),
            applied_index: m.last_applied.map_or(0, |l| l.index),
            last_log_index: m.last_log_index.unwrap_or(0),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            voters,
            learners,
            nodes,
            matched,
            snapshots_built: self.inner.sm_stats.snapshots_built.load(Ordering::Relaxed),
            snapshots_installed: self
                .inner
                .sm_stats
                .snapshots_installed
                .load(Ordering::Relaxed),
            quorum_ack_age_ms: m.last_quorum_acked.map(|t| t.elapsed().as_millis() as u64),
            reads_confirmed_by_heartbeat: self.inner.reads.by_heartbeat.load(Ordering::Relaxed),
            reads_confirmed_by_log: self.inner.reads.by_log.load(Ordering::Relaxed),
            read_heartbeat_timeouts: self.inner.reads.heartbeat_timeouts.load(Ordering::Relaxed),
            leader_changes: self.inner.leader_changes.load(Ordering::Relaxed),
            proposals: self.inner.proposer_stats.entries.load(Ordering::Relaxed),
            proposed_commands: self.inner.proposer_stats.commands.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn node_status(&self) -> NodeStatus {
        let s = self.status();
        NodeStatus {
            id: s.id,
            client_addr: self.inner.client_addr.clone(),
            peer_addr: self.inner.peer_addr.clone(),
            role: s.role.to_string(),
            term: s.term,
            leader: s.leader,
            last_log_index: s.last_log_index,
            applied_index: s.applied_index,
        }
    }

    /// Asks another member for its status (client address, role).
    pub async fn probe(&self, id: NodeId) -> Option<NodeStatus> {
        if id == self.inner.id {
            return Some(self.node_status());
        }
        let addr = self.status().nodes.get(&id)?.clone();
        let attempt = async {
            let mut conn = PeerConn::connect(self.inner.id, id, &addr, self.secret()).await?;
            conn.call(&Request::Status, Duration::from_millis(STATUS_TIMEOUT_MS))
                .await
        };
        match tokio::time::timeout(Duration::from_millis(STATUS_TIMEOUT_MS * 2), attempt).await {
            Ok(Ok(Response::Status(s))) => {
                if let Ok(mut cache) = self.inner.client_addrs.lock() {
                    cache.insert(id, s.client_addr.clone());
                }
                Some(s)
            }
            _ => None,
        }
    }

    /// The client address of a member as last learned (ours is known).
    pub fn known_client_addr(&self, id: NodeId) -> Option<String> {
        if id == self.inner.id {
            return Some(self.inner.client_addr.clone());
        }
        self.inner.client_addrs.lock().ok()?.get(&id).cloned()
    }

    /// Members that are failed as far as this node knows: on the leader,
    /// those it has not heard from lately; on a follower, the leader's last
    /// answer while fresh (nobody otherwise). See `member_health`.
    pub fn failed_members(&self) -> BTreeSet<NodeId> {
        match self.failed_members_as_leader() {
            Ok(failed) => failed.into_iter().collect(),
            Err(_) => self.inner.health.learned(),
        }
    }

    /// The leader's judgement; `NotLeader` elsewhere.
    pub(crate) fn failed_members_as_leader(&self) -> Result<Vec<NodeId>, ForwardError> {
        let m = self.inner.raft.metrics().borrow_watched().clone();
        let (ServerState::Leader, Some(heard)) = (m.state, m.heartbeat.as_ref()) else {
            return Err(ForwardError::NotLeader {
                leader: m.current_leader,
            });
        };
        let me = self.inner.id;
        let last_heard = heard
            .iter()
            .filter(|(id, _)| **id != me)
            .map(|(id, at)| (*id, at.as_ref().map(|t| t.elapsed())));
        let failed = self.inner.health.judge_as_leader(
            m.current_term,
            self.inner.config.election_timeout_ms,
            last_heard,
        );
        Ok(failed.into_iter().collect())
    }
}
