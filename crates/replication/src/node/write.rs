//! Writes: batches through the local proposer on the leader, or forwarded
//! to the leader with their request ids (retried across leader changes).

use super::*;

impl ClusterNode {
    pub(super) fn next_request(&self) -> RequestId {
        RequestId {
            session: self.inner.session,
            seq: self.inner.next_seq.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Applies a connection's pipeline of writes through the log, in order.
    /// Each gets its outcome, or an error meaning "unknown outcome".
    pub async fn write_batch(
        &self,
        mutations: Vec<Mutation>,
        limits: Limits,
    ) -> Vec<Result<Outcome, ClusterError>> {
        let commands: Vec<Command> = mutations
            .into_iter()
            .map(|mutation| Command {
                request: Some(self.next_request()),
                retry: false,
                limits,
                mutation,
            })
            .collect();
        self.submit(commands).await
    }

    /// Submits commands (ids already assigned) with retries until the
    /// forwarding deadline. A retry resends the same ids: the state machine
    /// applies each id once, so a command that did commit before a leader
    /// change is not applied again.
    pub(super) async fn submit(
        &self,
        mut commands: Vec<Command>,
    ) -> Vec<Result<Outcome, ClusterError>> {
        let n = commands.len();
        let deadline = Instant::now() + Duration::from_millis(self.inner.config.forward_timeout_ms);
        let mut last_error;
        let mut tries = 0;
        loop {
            if self.inner.stopping.load(Ordering::Acquire) {
                return vec![Err(ClusterError::Again("node is shutting down".into())); n];
            }
            let attempt = self.attempt(&commands, deadline).await;
            match attempt {
                Ok(outcomes) if outcomes.len() == n => {
                    return outcomes.into_iter().map(Ok).collect();
                }
                Ok(outcomes) => {
                    // A protocol invariant: one outcome per command.
                    last_error = format!(
                        "leader answered {} outcomes for {n} commands",
                        outcomes.len()
                    );
                    tracing::error!("{last_error}");
                }
                Err(ForwardError::Refused(e)) => {
                    return vec![Err(ClusterError::Refused(e)); n];
                }
                Err(e) => last_error = e.to_string(),
            }
            // No attempt starts at the deadline with no time left (it
            // would still reach the leader, and its outcome would be lost):
            // if the pause would reach the deadline, give up now.
            let pause = retry_pause(&mut tries);
            if deadline.saturating_duration_since(Instant::now()) <= pause {
                return vec![
                    Err(ClusterError::Down(format!(
                        "no leader reachable: {last_error}"
                    )));
                    n
                ];
            }
            // The attempt may have reached a log before it failed: from now
            // on the state machine must check each id's dedupe record.
            for c in &mut commands {
                c.retry = true;
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// One try of a batch: on this node if it leads, else forwarded to the
    /// leader it knows.
    async fn attempt(
        &self,
        commands: &[Command],
        deadline: Instant,
    ) -> Result<Vec<Outcome>, ForwardError> {
        if self.is_leader() {
            // Bounded: a leader that lost its quorum keeps the entries but
            // cannot commit them; the client gets an "outcome unknown"
            // error at the deadline instead of hanging.
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, self.submit_local(commands.to_vec())).await {
                Ok(r) => r,
                Err(_) => Err(ForwardError::Unavailable(
                    "the leader could not commit within the forward timeout (no quorum?); outcome unknown".into(),
                )),
            }
        } else if let Some((leader, addr)) = self.leader() {
            let request = Request::WriteBatch(commands.to_vec());
            match self.forward(leader, &addr, request, deadline).await? {
                Response::WriteBatch(r) => r,
                other => Err(ForwardError::Unavailable(format!(
                    "unexpected reply to a forwarded write: {other:?}"
                ))),
            }
        } else {
            Err(ForwardError::NotLeader { leader: None })
        }
    }

    /// On the leader: hands the batch to the proposer, which puts it into
    /// the log in order, in as few entries as it can (`proposer.rs`).
    pub(crate) async fn submit_local(
        &self,
        commands: Vec<Command>,
    ) -> Result<Vec<Outcome>, ForwardError> {
        let (reply, outcomes) = oneshot::channel();
        let term = self.inner.raft.metrics().borrow_watched().current_term;
        self.inner
            .proposer
            .send(Submission {
                commands,
                term,
                reply,
            })
            .await
            .map_err(|_| ForwardError::Unavailable("node is shutting down".into()))?;
        // A dropped reply: the proposer timed out waiting for the commit,
        // or stopped.
        outcomes.await.map_err(|_| {
            ForwardError::Unavailable(
                "the leader did not apply the write in time, or is shutting down; outcome unknown"
                    .into(),
            )
        })?
    }

    /// A forwarded batch arriving at this node (the peer server calls it).
    pub(crate) async fn handle_forwarded_writes(
        &self,
        commands: Vec<Command>,
    ) -> Result<Vec<Outcome>, ForwardError> {
        if commands.len() > WRITE_BATCH_COMMANDS_MAX {
            return Err(ForwardError::Refused(format!(
                "forwarded batch of {} commands exceeds {WRITE_BATCH_COMMANDS_MAX}",
                commands.len()
            )));
        }
        let now = now_ms();
        if commands.iter().any(|c| {
            c.mutation
                .now_ms
                .saturating_add(FORWARDED_COMMAND_AGE_MS_MAX)
                < now
        }) {
            return Err(ForwardError::Refused(
                "forwarded command is too old to apply safely (clock skew?)".into(),
            ));
        }
        if !self.is_leader() {
            return Err(ForwardError::NotLeader {
                leader: self.leader().map(|(id, _)| id),
            });
        }
        match tokio::time::timeout(self.forward_timeout(), self.submit_local(commands)).await {
            Ok(r) => r,
            Err(_) => Err(ForwardError::Unavailable(
                "the leader could not commit within the forward timeout (no quorum?); outcome unknown"
                    .into(),
            )),
        }
    }

    /// How long this node keeps trying to reach a leader (`--forward-timeout-ms`).
    pub(crate) fn forward_timeout(&self) -> Duration {
        Duration::from_millis(self.inner.config.forward_timeout_ms)
    }

    /// Sends one request to `leader` over a pooled connection, giving up at
    /// `deadline`. Why the caller's deadline and not a fresh timeout per
    /// call: a retry that began just before the deadline would otherwise
    /// run for another whole forward timeout (plus a connect, plus a wait
    /// for a slot), and a client of a cut-off node would wait up to twice
    /// the `--forward-timeout-ms` the README promises.
    pub(super) async fn forward(
        &self,
        leader: NodeId,
        addr: &str,
        req: Request,
        deadline: Instant,
    ) -> Result<Response, ForwardError> {
        let late = || {
            ForwardError::Unavailable(format!(
                "leader {leader}: no answer within the forward timeout"
            ))
        };
        let _slot = match tokio::time::timeout_at(
            deadline.into(),
            self.inner.forward_slots.acquire(),
        )
        .await
        {
            Ok(slot) => slot.map_err(|_| ForwardError::Unavailable("shutting down".into()))?,
            Err(_) => return Err(late()),
        };
        let pooled = self
            .inner
            .pool
            .lock()
            .await
            .get_mut(&leader)
            .and_then(|v| v.pop());
        let from_pool = pooled.is_some();
        let mut conn = match pooled {
            Some(c) => c,
            None => match tokio::time::timeout_at(
                deadline.into(),
                PeerConn::connect(self.inner.id, leader, addr, self.secret()),
            )
            .await
            {
                Ok(conn) => conn.map_err(|e| {
                    ForwardError::Unavailable(format!("leader {leader} unreachable: {e}"))
                })?,
                Err(_) => return Err(late()),
            },
        };
        let timeout = deadline.saturating_duration_since(Instant::now());
        if timeout.is_zero() {
            // Do not send what nobody will wait for (a write would still be
            // applied, its outcome lost). The connection goes back unused.
            self.return_to_pool(leader, conn).await;
            return Err(late());
        }
        match conn.call(&req, timeout).await {
            Ok(resp) => {
                self.return_to_pool(leader, conn).await;
                Ok(resp)
            }
            Err(e) => {
                // A timeout says the leader is slow, not that pooled
                // connections are dead; only a broken one empties the pool.
                if from_pool && e.kind() != std::io::ErrorKind::TimedOut {
                    // The leader closes peer connections idle for 5 min
                    // (peer_server.rs): after a quiet spell every pooled
                    // connection is dead, and a retry that took them one by
                    // one could spend the whole forward timeout on them.
                    // One failure empties the pool; the retry connects anew.
                    self.inner.pool.lock().await.remove(&leader);
                }
                Err(ForwardError::Unavailable(format!("leader {leader}: {e}")))
            }
        }
    }

    /// Keeps `conn` for the next forward to `leader`, up to the pool's limit.
    pub(super) async fn return_to_pool(&self, leader: NodeId, conn: PeerConn) {
        let mut pool = self.inner.pool.lock().await;
        let idle = pool.entry(leader).or_default();
        if idle.len() < FORWARD_POOL_IDLE_MAX {
            idle.push(conn);
        }
    }
}
