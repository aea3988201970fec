//! Linearizable reads: the read barrier (ReadIndex), confirmed by a
//! heartbeat round or, on slow links, by a log entry that changes nothing.

use super::*;

impl ClusterNode {
    /// Waits until this node may serve a linearizable read: the leader
    /// confirms its leadership with a quorum (ReadIndex), and this node has
    /// applied up to the read point.
    pub async fn read_barrier(&self) -> Result<(), ClusterError> {
        let deadline = Instant::now() + Duration::from_millis(self.inner.config.forward_timeout_ms);
        let mut last_error;
        let mut tries = 0;
        loop {
            if self.inner.stopping.load(Ordering::Acquire) {
                return Err(ClusterError::Again("node is shutting down".into()));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt = if self.is_leader() {
                self.read_index_local(remaining).await
            } else if let Some((leader, addr)) = self.leader() {
                self.forward(leader, &addr, Request::ReadIndex, deadline)
                    .await
                    .and_then(|r| match r {
                        Response::ReadIndex(r) => r,
                        other => Err(ForwardError::Unavailable(format!(
                            "unexpected reply to read index: {other:?}"
                        ))),
                    })
            } else {
                Err(ForwardError::NotLeader { leader: None })
            };
            match attempt {
                Ok(index) => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    return self
                        .inner
                        .raft
                        .wait(Some(remaining.max(Duration::from_millis(1))))
                        .applied_index_at_least(Some(index), "read barrier")
                        .await
                        .map(|_| ())
                        .map_err(|e| {
                            ClusterError::Again(format!("catching up to the leader: {e}"))
                        });
                }
                Err(e) => last_error = e.to_string(),
            }
            // As for writes: no attempt with no time left.
            let pause = retry_pause(&mut tries);
            if deadline.saturating_duration_since(Instant::now()) <= pause {
                return Err(ClusterError::Down(format!(
                    "no quorum reachable: {last_error}"
                )));
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// On the leader: a linearizable read point (ReadIndex), an index at
    /// least the commit index at the time of the call, confirmed by a
    /// quorum after the call began.
    ///
    /// First through openraft's heartbeat round. A heartbeat counts only if
    /// answered within one heartbeat interval, so on a link whose round
    /// trip is longer (or a moment that slow) no round ever confirms, and
    /// an idle cluster could serve no linearizable read at all. So that
    /// wait is bounded (half the time, at most one election timeout), and
    /// after it the leader confirms through the log instead: it commits an
    /// entry that changes nothing. A majority accepting an entry of this
    /// term after the read began confirms the leadership just as a
    /// heartbeat round would, and replication waits up to an election
    /// timeout per request. The read point is then what this node has
    /// applied, which includes that entry and so everything committed
    /// before it.
    ///
    /// After a heartbeat round fails, reads skip it for a spell
    /// (`LOG_CONFIRM_SPELL_ELECTION_TIMEOUTS`) and confirm through the log
    /// at once; both ways are equally safe, the log costs an entry.
    pub(crate) async fn read_index_local(&self, wait: Duration) -> Result<u64, ForwardError> {
        let deadline = Instant::now() + wait;
        let reads = &self.inner.reads;
        let election_timeout_ms = self.inner.config.election_timeout_ms;
        let since_epoch_ms = || reads.epoch.elapsed().as_millis() as u64;
        let reason = if since_epoch_ms() < reads.log_only_until_ms.load(Ordering::Relaxed) {
            "heartbeat rounds failed recently".to_string()
        } else {
            let heartbeat_wait = (wait / 2).min(Duration::from_millis(election_timeout_ms));
            match self.read_index_by_heartbeat(heartbeat_wait).await {
                Ok(index) => {
                    reads.by_heartbeat.fetch_add(1, Ordering::Relaxed);
                    return Ok(index);
                }
                Err(ForwardError::Unavailable(reason)) if self.is_leader() => {
                    // Only a wait of two heartbeat intervals or more says
                    // the rounds fail; a read nearly out of time proves
                    // nothing about the link.
                    let heartbeat_ms = self.inner.config.heartbeat_ms;
                    if heartbeat_wait >= Duration::from_millis(2 * heartbeat_ms) {
                        reads.heartbeat_timeouts.fetch_add(1, Ordering::Relaxed);
                        let spell_ms = LOG_CONFIRM_SPELL_ELECTION_TIMEOUTS * election_timeout_ms;
                        reads
                            .log_only_until_ms
                            .store(since_epoch_ms() + spell_ms, Ordering::Relaxed);
                    }
                    reason
                }
                other => return other,
            }
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        let confirm = Command {
            request: None,
            retry: false,
            limits: Limits {
                key_size_bytes_max: 0,
                value_size_bytes_max: 0,
            },
            mutation: Mutation {
                now_ms: now_ms(),
                op: Op::Delete { keys: Vec::new() },
            },
        };
        match tokio::time::timeout(remaining, self.submit_local(vec![confirm])).await {
            Ok(Ok(_)) => {
                reads.by_log.fetch_add(1, Ordering::Relaxed);
                crate::state_machine::applied_index(&self.inner.store).map_err(|e| {
                    ForwardError::Unavailable(format!("reading the applied index: {e}"))
                })
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ForwardError::Unavailable(format!(
                "{reason}; a confirming log entry did not commit in time either"
            ))),
        }
    }

    /// openraft's ReadIndex: a heartbeat round, waited for `wait` at most.
    pub(super) async fn read_index_by_heartbeat(
        &self,
        wait: Duration,
    ) -> Result<u64, ForwardError> {
        let option =
            openraft::raft::linearizable_read::LinearizerOption::from(ReadPolicy::ReadIndex)
                .with_wait_timeout(wait.max(Duration::from_millis(1)));
        match self.inner.raft.get_read_log_id(option).await {
            Ok((read_log_id, _)) => Ok(read_log_id.index()),
            Err(RaftError::APIError(e)) => match e {
                openraft::error::LinearizableReadError::ForwardToLeader(f) => {
                    Err(ForwardError::NotLeader {
                        leader: f.leader_id,
                    })
                }
                other => Err(ForwardError::Unavailable(other.to_string())),
            },
            Err(e) => Err(ForwardError::Unavailable(e.to_string())),
        }
    }
}
