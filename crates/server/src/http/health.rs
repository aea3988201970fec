//! `/livez` and `/readyz`, for process supervisors and load balancers
//! (Kubernetes' liveness and readiness probes).
//!
//! **`/livez`: the process works; restarting it is the cure when it fails.**
//! It fails (503) when
//! - storage stopped on an error: a write or fsync failed, so the store
//!   refuses writes until a restart (which recovers from the journal);
//! - a core task ended while the server is not shutting down: an accept
//!   loop (RESP, text), the statistics sampler, or in a cluster Raft's
//!   core or the proposer (the server also shuts down by itself then).
//!
//! It deliberately does not check what a restart cannot fix: damaged data
//! on disk (see `strata_storage_corruption_errors_total`), or a cluster
//! without a leader (that is `/readyz`'s).
//!
//! **`/readyz`: send this node traffic.** It fails (503, `Retry-After`)
//! while the server shuts down, while storage refuses writes, and in a
//! cluster until this node knows a leader (a leader: one a quorum
//! acknowledged lately, `ClusterStatus::healthy`) and has applied every
//! entry that was committed when it first saw a leader (the catch-up after
//! a restart). Once caught up, it stays so: later it needs only the
//! leader. A single node is ready as soon as it serves (storage is open
//! before the listener starts).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use strata_replication::ClusterStatus;
use tokio::task::AbortHandle;

use super::error::RETRY_AFTER_S;
use crate::shared::Shared;
use crate::shutdown::Shutdown;

/// How often the catch-up watch samples the cluster status until the node
/// has caught up (then it stops).
const CATCH_UP_POLL_MS: u64 = 100;

/// What the probes check besides the store: the core tasks, and the
/// cluster catch-up.
pub(crate) struct Health {
    /// Tasks that run as long as the server does, by name.
    tasks: Vec<(&'static str, AbortHandle)>,
    /// The commit index to reach (plus one; 0 until a leader is seen).
    target_plus_one: AtomicU64,
    caught_up: AtomicBool,
}

/// One check's verdict, as the probes report it.
#[derive(Serialize, Debug)]
pub(crate) struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

fn check(name: &'static str, failure: Option<String>, fine: &str) -> Check {
    Check {
        name,
        ok: failure.is_none(),
        detail: failure.unwrap_or_else(|| fine.to_string()),
    }
}

impl Health {
    pub(crate) fn new(tasks: Vec<(&'static str, AbortHandle)>) -> Health {
        Health {
            tasks,
            target_plus_one: AtomicU64::new(0),
            caught_up: AtomicBool::new(false),
        }
    }

    /// `/livez`'s checks.
    pub(crate) fn live(&self, shared: &Shared, shutdown: &Shutdown) -> Vec<Check> {
        let mut checks = vec![check("storage", shared.store.failure(), "accepting writes")];
        let dead: Vec<&str> = self
            .tasks
            .iter()
            .filter(|(_, task)| task.is_finished())
            .map(|(name, _)| *name)
            .collect();
        let tasks_failure = (!dead.is_empty() && !shutdown.is_shutdown())
            .then(|| format!("ended: {}", dead.join(", ")));
        checks.push(check("tasks", tasks_failure, "running"));
        if let Some(node) = &shared.cluster {
            checks.push(check("raft", node.core_failure(), "running"));
        }
        checks
    }

    /// `/readyz`'s checks.
    pub(crate) fn ready(&self, shared: &Shared, shutdown: &Shutdown) -> Vec<Check> {
        let stopping = shutdown.is_shutdown().then(|| "shutting down".to_string());
        let mut checks = vec![
            check("shutdown", stopping, "not shutting down"),
            check("storage", shared.store.failure(), "open, accepting writes"),
        ];
        if let Some(node) = &shared.cluster {
            let status = node.status();
            let leader = match status.leader {
                Some(id) if status.healthy => Ok(format!("node {id}")),
                Some(id) => Err(format!("leader {id} has no quorum acknowledgement lately")),
                None => Err("no leader known".to_string()),
            };
            let fine = leader.as_deref().unwrap_or_default().to_string();
            checks.push(check("leader", leader.err(), &fine));
            checks.push(check("caught_up", self.observe(&status).err(), "applied"));
        }
        checks
    }

    /// Fixes the catch-up target when a leader is first seen, and latches
    /// once it is applied. Err: why the node is not caught up yet.
    fn observe(&self, s: &ClusterStatus) -> Result<(), String> {
        if self.caught_up.load(Ordering::Acquire) {
            return Ok(());
        }
        if s.leader.is_none() {
            return Err("waiting for a leader".to_string());
        }
        let seen = s.commit_index.max(s.cluster_commit_index);
        let target = match self.target_plus_one.compare_exchange(
            0,
            seen + 1,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => seen,
            Err(plus_one) => plus_one - 1,
        };
        if s.applied_index >= target {
            self.caught_up.store(true, Ordering::Release);
            return Ok(());
        }
        Err(format!(
            "applied index {} of {target} (committed when a leader was first seen)",
            s.applied_index
        ))
    }

    /// Samples the cluster status until the node has caught up, so the
    /// target is the commit index of when it first saw a leader, not of
    /// when a probe first asked.
    pub(crate) async fn watch_catch_up(
        state: std::sync::Arc<super::HttpState>,
        mut shutdown: Shutdown,
    ) {
        let Some(node) = state.shared.cluster.clone() else {
            return;
        };
        let mut tick = tokio::time::interval(Duration::from_millis(CATCH_UP_POLL_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while state.health.observe(&node.status()).is_err() {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.recv() => return,
            }
        }
    }
}

/// The probes' answer: 200 with every check, or 503 with the failing ones
/// first in the message (and `Retry-After` for readiness).
#[derive(Serialize)]
struct Report<'a> {
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    checks: Vec<Check>,
}

pub(crate) fn report(checks: Vec<Check>, failed_code: &'static str, retry: bool) -> Response {
    let failing: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    if failing.is_empty() {
        let ok = Report {
            status: "ok",
            error: None,
            message: None,
            checks,
        };
        return (StatusCode::OK, Json(ok)).into_response();
    }
    let body = Report {
        status: "failing",
        error: Some(failed_code),
        message: Some(failing.join("; ")),
        checks,
    };
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    if retry {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_S));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(leader: Option<u64>, commit: u64, applied: u64) -> ClusterStatus {
        ClusterStatus {
            leader,
            healthy: leader.is_some(),
            commit_index: commit,
            cluster_commit_index: commit,
            applied_index: applied,
            ..ClusterStatus::default()
        }
    }

    /// The target is fixed when a leader is first seen, and reached once
    /// latches: later commits do not make a caught-up node unready.
    #[test]
    fn catch_up_targets_the_commit_index_first_seen_with_a_leader() {
        let h = Health::new(Vec::new());
        assert!(h.observe(&status(None, 0, 0)).is_err());
        let behind = h.observe(&status(Some(1), 50, 10)).unwrap_err();
        assert!(behind.contains("10 of 50"), "{behind}");
        // More was committed since; the target stays 50.
        assert!(h.observe(&status(Some(1), 90, 49)).is_err());
        assert!(h.observe(&status(Some(1), 90, 50)).is_ok());
        // Latched: behind a newer commit index is still caught up.
        assert!(h.observe(&status(Some(1), 200, 60)).is_ok());
        assert!(h.observe(&status(None, 200, 60)).is_ok());
    }

    #[tokio::test]
    async fn a_report_fails_with_503_and_says_why() {
        let checks = vec![
            check("storage", None, "fine"),
            check("leader", Some("no leader known".into()), ""),
        ];
        let response = report(checks, "not_ready", true);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["error"], "not_ready");
        assert_eq!(json["message"], "leader: no leader known");
        assert_eq!(json["checks"][0]["ok"], true);
        let ok = report(vec![check("storage", None, "fine")], "not_live", false);
        assert_eq!(ok.status(), StatusCode::OK);
        assert!(ok.headers().get(header::RETRY_AFTER).is_none());
    }
}
