//! Blocking queries: `?index=n&wait=<duration>` on a key or a prefix
//! waits until something in it changes after version n (the change log,
//! `crate::changes`), or the wait ends, or the server shuts down; then the
//! request reads as it would have at once. As Consul's, a wait may end
//! early (the log does not reach back to n, or a change came and went):
//! clients loop on the index header anyway.

use std::time::Duration;

use super::kv_codec::Query;
use super::{ApiError, AppState};
use crate::changes::{BLOCKING_QUERIES_MAX, Scope, Since};

/// How long a blocking query waits when `wait` is not given (Consul's).
pub const BLOCKING_WAIT_MS_DEFAULT: u64 = 5 * 60 * 1000;
/// The longest `wait` honoured; longer ones are cut to it (Consul's).
pub const BLOCKING_WAIT_MS_MAX: u64 = 10 * 60 * 1000;

/// Waits as the request's `index` and `wait` ask (not at all without an
/// index, or with index 0).
pub async fn wait_for_change(state: &AppState, scope: Scope, q: &Query) -> Result<(), ApiError> {
    let Some(index) = q.u64("index")?.filter(|&i| i > 0) else {
        return Ok(());
    };
    let wait_ms = q
        .duration_ms("wait")?
        .unwrap_or(BLOCKING_WAIT_MS_DEFAULT)
        .min(BLOCKING_WAIT_MS_MAX);
    let shared = &state.shared;
    let registration = shared
        .changes
        .register(scope, index, || shared.store.published_version())
        .map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "too_many_waiting",
                format!("{BLOCKING_QUERIES_MAX} blocking queries wait already; retry"),
            )
            .retry_after(1)
        })?;
    if registration.state != Since::Unchanged {
        return Ok(());
    }
    let mut shutdown = state.shutdown.clone();
    tokio::select! {
        () = registration.changed() => {}
        () = tokio::time::sleep(Duration::from_millis(wait_ms)) => {}
        () = shutdown.recv() => {}
    }
    Ok(())
}
