//! Membership changes (add a learner or voter, promote, remove), run on the
//! leader or forwarded to it, each within `--admin-timeout-ms`.

use super::*;

impl ClusterNode {
    /// Runs a membership change on the leader (forwarding if needed),
    /// within `--admin-timeout-ms`.
    pub async fn admin(&self, req: AdminRequest) -> Result<(), ClusterError> {
        self.admin_until(req, Instant::now() + self.admin_timeout())
            .await
    }

    /// A membership change forwarded by another node (or a joining one):
    /// ends a margin before that node stops waiting for the answer.
    pub(crate) async fn admin_forwarded(&self, req: AdminRequest) -> Result<(), ClusterError> {
        let budget = self
            .admin_timeout()
            .saturating_sub(Duration::from_millis(ADMIN_ANSWER_MARGIN_MS))
            .max(Duration::from_millis(ADMIN_ANSWER_MARGIN_MS));
        self.admin_until(req, Instant::now() + budget).await
    }

    pub(super) fn admin_timeout(&self) -> Duration {
        Duration::from_millis(self.inner.config.admin_timeout_ms)
    }

    /// Why the whole change is under one deadline: each step (a retry while
    /// another change commits, the forward, the commit, a learner's
    /// catch-up) can wait indefinitely on a node that does not answer; an
    /// operator must get an answer, and one that says what is left done.
    pub(super) async fn admin_until(
        &self,
        req: AdminRequest,
        deadline: Instant,
    ) -> Result<(), ClusterError> {
        let attempts = self.admin_attempts(req.clone(), deadline);
        match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), attempts).await {
            Ok(result) => result,
            Err(_) => Err(self.admin_timed_out(&req)),
        }
    }

    pub(super) async fn admin_attempts(
        &self,
        req: AdminRequest,
        deadline: Instant,
    ) -> Result<(), ClusterError> {
        loop {
            let attempt = if self.is_leader() {
                self.admin_local(req.clone(), deadline).await
            } else if let Some((leader, addr)) = self.leader() {
                match self
                    .forward_admin(leader, &addr, req.clone(), deadline)
                    .await
                {
                    Ok(Response::Admin(r)) => r,
                    Ok(other) => Err(ForwardError::Unavailable(format!(
                        "unexpected reply: {other:?}"
                    ))),
                    Err(e) => Err(e),
                }
            } else {
                Err(ForwardError::NotLeader { leader: None })
            };
            match attempt {
                Ok(()) => return Ok(()),
                Err(ForwardError::Refused(e)) => return Err(ClusterError::Refused(e)),
                Err(e) if Instant::now() >= deadline => {
                    return Err(ClusterError::Down(format!("no leader reachable: {e}")));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await,
            }
        }
    }

    /// The error of a change cut off by the admin timeout: what it was
    /// waiting for, and the membership it left, as this node sees it.
    pub(super) fn admin_timed_out(&self, req: &AdminRequest) -> ClusterError {
        let ms = self.inner.config.admin_timeout_ms;
        let m = self
            .inner
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .clone();
        let member = |id: &NodeId| m.get_node(id).is_some();
        let voter = |id: &NodeId| m.voter_ids().any(|v| v == *id);
        let message = match req {
            AdminRequest::AddLearner { id, peer_addr }
            | AdminRequest::AddVoter { id, peer_addr }
                if member(id) && !voter(id) =>
            {
                format!(
                    "timed out after {ms} ms (admin-timeout-ms): node {id} is a learner but has not caught up (is it running, and reachable from the leader at {peer_addr}?); remove it with CLUSTER REMOVENODE {id}, or promote it once it has caught up"
                )
            }
            AdminRequest::AddLearner { id, .. } | AdminRequest::AddVoter { id, .. } => format!(
                "timed out after {ms} ms (admin-timeout-ms) adding node {id} (no leader, or no quorum to commit the change); it may still commit: check CLUSTER NODES"
            ),
            AdminRequest::Promote { id } | AdminRequest::Remove { id } => format!(
                "timed out after {ms} ms (admin-timeout-ms) changing the membership of node {id} (no leader, or no quorum of the old and new voters); it may still commit: check CLUSTER NODES"
            ),
        };
        ClusterError::Refused(message)
    }

    pub(super) async fn forward_admin(
        &self,
        leader: NodeId,
        addr: &str,
        req: AdminRequest,
        deadline: Instant,
    ) -> Result<Response, ForwardError> {
        // Its own connection: adding a voter waits for it to catch up,
        // which pooled forwarding connections must not be held for.
        let mut conn = PeerConn::connect(self.inner.id, leader, addr, self.secret())
            .await
            .map_err(|e| ForwardError::Unavailable(format!("leader {leader} unreachable: {e}")))?;
        let wait = deadline.saturating_duration_since(Instant::now());
        conn.call(&Request::Admin(req), wait)
            .await
            .map_err(|e| ForwardError::Unavailable(format!("leader {leader}: {e}")))
    }

    /// Before a node that is not a member yet is added: it must answer a
    /// status request at `peer_addr`, as node `id`. Otherwise the change
    /// would commit and then wait for a catch-up that cannot happen (and
    /// leave a member nobody can reach); refusing first changes nothing.
    pub(super) async fn check_new_member(
        &self,
        id: NodeId,
        peer_addr: &str,
        deadline: Instant,
    ) -> Result<(), ForwardError> {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(2 * STATUS_TIMEOUT_MS));
        let attempt = async {
            let mut conn = PeerConn::connect(self.inner.id, id, peer_addr, self.secret()).await?;
            conn.call(&Request::Status, wait).await
        };
        let refused = |why: String| {
            ForwardError::Refused(format!(
                "node {id} does not answer at {peer_addr} ({why}); nothing was changed: start it first, or check the address"
            ))
        };
        match tokio::time::timeout(wait, attempt).await {
            Ok(Ok(Response::Status(_))) => Ok(()),
            Ok(Ok(other)) => Err(refused(format!("unexpected reply {other:?}"))),
            Ok(Err(e)) => Err(refused(e.to_string())),
            Err(_) => Err(refused(format!("no answer within {} ms", wait.as_millis()))),
        }
    }

    /// Runs a membership change on this node, the leader (`NotLeader`
    /// otherwise). A new member is first checked: it must answer on its
    /// peer address with the cluster secret.
    pub(crate) async fn admin_local(
        &self,
        req: AdminRequest,
        deadline: Instant,
    ) -> Result<(), ForwardError> {
        let raft = &self.inner.raft;
        let membership = raft.metrics().borrow_watched().membership_config.clone();
        let is_member = |id: &NodeId| membership.get_node(id).is_some();
        let is_voter = |id: NodeId| membership.voter_ids().any(|v| v == id);
        match req {
            AdminRequest::AddLearner { id, peer_addr } => {
                if !is_member(&id) {
                    self.check_new_member(id, &peer_addr, deadline).await?;
                }
                raft.add_learner(id, BasicNode::new(peer_addr), true)
                    .await
                    .map_err(admin_error)?;
            }
            AdminRequest::AddVoter { id, peer_addr } => {
                if !is_member(&id) {
                    self.check_new_member(id, &peer_addr, deadline).await?;
                }
                if !is_voter(id) {
                    raft.add_learner(id, BasicNode::new(peer_addr), true)
                        .await
                        .map_err(admin_error)?;
                    change(raft, ChangeMembers::AddVoterIds(BTreeSet::from([id]))).await?;
                }
            }
            AdminRequest::Promote { id } => {
                if !is_member(&id) {
                    return Err(ForwardError::Refused(format!(
                        "node {id} is not a member; add it as a learner first"
                    )));
                }
                change(raft, ChangeMembers::AddVoterIds(BTreeSet::from([id]))).await?;
            }
            AdminRequest::Remove { id } => {
                if !is_member(&id) {
                    return Err(ForwardError::Refused(format!("node {id} is not a member")));
                }
                let ids = BTreeSet::from([id]);
                let members = if is_voter(id) {
                    ChangeMembers::RemoveVoters(ids)
                } else {
                    ChangeMembers::RemoveNodes(ids)
                };
                change(raft, members).await?;
            }
        }
        Ok(())
    }
}

/// One membership change, keeping the learners it does not name.
async fn change(
    raft: &Raft,
    members: ChangeMembers<NodeId, BasicNode>,
) -> Result<(), ForwardError> {
    raft.change_membership(members, false)
        .await
        .map(|_| ())
        .map_err(admin_error)
}

/// What a failed membership change tells the node that asked for it.
fn admin_error(
    e: RaftError<crate::types::TypeConfig, ClientWriteError<crate::types::TypeConfig>>,
) -> ForwardError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ForwardError::NotLeader {
            leader: f.leader_id,
        },
        // Transient: another change (often this node's own join) is still
        // committing, or a leader change dropped the entry. The caller
        // retries until its deadline.
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            openraft::error::ChangeMembershipError::InProgress(p),
        )) => ForwardError::Unavailable(p.to_string()),
        RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)) => {
            ForwardError::Unavailable(f.to_string())
        }
        RaftError::APIError(other) => ForwardError::Refused(other.to_string()),
        RaftError::Fatal(f) => ForwardError::Unavailable(f.to_string()),
    }
}
