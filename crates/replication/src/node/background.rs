//! The node's background loops: failed-member and client-address
//! learning, expiry through the log, dedupe record eviction.

use super::*;

impl ClusterNode {
    /// Counts leader changes as this node sees them: every leader id other
    /// than the last one it knew, the first included (an election that
    /// returns the same leader is not a change). It watches openraft's
    /// server metrics, which change only with the vote, the role, the
    /// leader or the membership, so it wakes rarely (unlike a watch on the
    /// full metrics, see `raft_failed`).
    pub(super) async fn leader_watch_loop(self) {
        let mut server = self.inner.raft.server_metrics();
        let mut stop = self.inner.stop_tx.subscribe();
        let mut last = None;
        loop {
            let leader = server.borrow_watched().current_leader;
            if leader.is_some() && leader != last {
                self.inner.leader_changes.fetch_add(1, Ordering::Relaxed);
                last = leader;
            }
            tokio::select! {
                changed = server.changed() => if changed.is_err() { return },
                _ = stop.changed() => return,
            }
        }
    }

    /// On a follower: asks the leader which members are failed, every
    /// `member_health::ASK_INTERVAL_MS`.
    pub(super) async fn failed_members_loop(self) {
        let interval = Duration::from_millis(crate::member_health::ASK_INTERVAL_MS);
        let mut stop = self.inner.stop_tx.subscribe();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
            let status = self.status();
            let Some(leader) = status.leader.filter(|l| *l != self.inner.id) else {
                continue;
            };
            let Some(addr) = status.nodes.get(&leader).cloned() else {
                continue;
            };
            let ask = async {
                let mut conn =
                    PeerConn::connect(self.inner.id, leader, &addr, self.secret()).await?;
                conn.call(
                    &Request::FailedMembers,
                    Duration::from_millis(STATUS_TIMEOUT_MS),
                )
                .await
            };
            let answer = tokio::time::timeout(interval, ask).await;
            if let Ok(Ok(Response::FailedMembers(Ok(failed)))) = answer {
                self.inner.health.learn(failed.into_iter().collect());
            }
        }
    }

    /// Keeps the client-address cache filled: probes members whose address
    /// is unknown, every few seconds (cheap: one small request each).
    pub(super) async fn client_addr_loop(self) {
        let mut stop = self.inner.stop_tx.subscribe();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = stop.changed() => return,
            }
            let members: Vec<NodeId> = self.status().nodes.keys().copied().collect();
            for id in members {
                if self.known_client_addr(id).is_none() {
                    let _ = self.probe(id).await;
                }
            }
        }
    }

    /// Expiry through the log: only the leader looks for due keys and
    /// proposes their deletion, so every replica deletes the same keys at
    /// the same log position (the decision uses the entry's time).
    pub(super) async fn expiry_loop(self) {
        let interval = Duration::from_millis(self.inner.config.expiry_sweep_interval_ms);
        let keys_max = self.inner.config.expiry_sweep_keys_max;
        let mut stop = self.inner.stop_tx.subscribe();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
            if !self.is_leader() {
                continue;
            }
            let now = now_ms();
            let store = self.inner.store.clone();
            let due = tokio::task::spawn_blocking(move || store.due_expiries(now, keys_max)).await;
            let entries = match due {
                Ok(Ok(e)) => e,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "expiry sweep could not read the index");
                    continue;
                }
                Err(_) => continue,
            };
            if entries.is_empty() {
                continue;
            }
            let m = Mutation {
                now_ms: now,
                op: Op::SweepExpired { entries },
            };
            let limits = Limits {
                key_size_bytes_max: usize::MAX,
                value_size_bytes_max: usize::MAX,
            };
            let cmd = Command {
                request: None,
                retry: false,
                limits,
                mutation: m,
            };
            if let Err(e) = self.submit_local(vec![cmd]).await {
                tracing::debug!(error = %e, "expiry sweep not applied");
            }
        }
    }

    /// Physically drops dedupe records past the window (a local clean-up:
    /// the records' meaning does not depend on when this runs).
    pub(super) async fn dedupe_eviction_loop(self) {
        let mut stop = self.inner.stop_tx.subscribe();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                _ = stop.changed() => return,
            }
            let older_than = now_ms().saturating_sub(DEDUPE_WINDOW_MS);
            if let Err(e) = self.inner.store.evict_requests(older_than, 10_000).await {
                tracing::debug!(error = %e, "dedupe eviction skipped");
            }
        }
    }
}
