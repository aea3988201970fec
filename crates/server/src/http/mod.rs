//! The HTTP listener (`--http-listen`): axum on the server's runtime,
//! beside the RESP and text listeners, sharing their [`Shared`].
//!
//! Routes: the operations surface here (`/metrics`, `/livez`, `/readyz`,
//! `/v1/status/*`); the JSON key-value API mounts its own routes in
//! [`router`]. Every route gets the same layers:
//! - a body limit of `--request-size-bytes-max` (the RESP limit on one
//!   request; 413 past it, before the body is read when its length is
//!   declared);
//! - `--request-timeout-ms` to receive the body (as on RESP: a request that
//!   has started arriving must be whole within it; hyper bounds the headers
//!   at 30 s);
//! - a tracing span per request (`tower_http::trace`, at DEBUG);
//! - every error JSON (`{"error", "message"}`, see [`error`]), including
//!   those axum and the layers make themselves (404, 405, 413...);
//! - on a loopback listener, only loopback `Host` names (403 otherwise):
//!   a web page that rebinds its own DNS name to 127.0.0.1 could make the
//!   visitor's browser call this port as its own origin (DNS rebinding);
//!   its requests carry that name as `Host`. A listener other hosts reach
//!   serves any `Host` (Kubernetes probes and Prometheus use pod and
//!   service names).
//!
//! The operations routes also get a handler timeout ([`OPS_TIMEOUT_MS`]);
//! routes that wait on purpose (a blocking query) bound themselves.
//! Connections are limited to `--connections-max` (a separate count from
//! the client connections'). Shutdown: on the server's [`Shutdown`] the
//! listener stops accepting and requests in flight finish (the server
//! waits for them as long as for client connections).

mod blocking;
pub mod error;
mod health;
pub mod kv;
mod kv_codec;
mod listener;
mod metrics;
mod status;
mod txn;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::{AbortHandle, JoinHandle};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

pub use error::ApiError;
pub use listener::ClientAddr;

use crate::shared::Shared;
use crate::shutdown::Shutdown;

/// Bound on an operations endpoint's handler (they read memory only, so
/// this is a guard, never reached in health).
pub const OPS_TIMEOUT_MS: u64 = 10_000;
/// Bytes of an error's text kept when it is turned into JSON (axum's and
/// the layers' own messages are one line).
const ERROR_TEXT_BYTES_MAX: usize = 4096;

/// What every handler gets: the server's shared state, and what the HTTP
/// side adds (probes' state, the metrics registry, the shutdown signal).
pub struct HttpState {
    pub shared: Arc<Shared>,
    /// Fires when the server shuts down (a handler that waits should
    /// stop waiting).
    pub shutdown: Shutdown,
    health: health::Health,
    registry: prometheus_client::registry::Registry,
}

/// The state type of every route: `State<AppState>`.
pub type AppState = Arc<HttpState>;

impl HttpState {
    /// `core_tasks`: the tasks that must run as long as the server does
    /// (`/livez` fails if one ends early), by name.
    pub fn new(
        shared: Arc<Shared>,
        shutdown: Shutdown,
        core_tasks: Vec<(&'static str, AbortHandle)>,
    ) -> AppState {
        Arc::new(HttpState {
            registry: metrics::registry(Arc::clone(&shared)),
            shared,
            shutdown,
            health: health::Health::new(core_tasks),
        })
    }
}

/// Every route, with the layers the module doc lists.
pub fn router(state: AppState) -> Router {
    let config = &state.shared.config;
    let body_bytes_max = config.request_size_bytes_max;
    let body_timeout = Duration::from_millis(config.request_timeout_ms);
    let loopback = config.http_listen.is_some_and(|a| a.ip().is_loopback());
    // The JSON key-value API (`kv.rs`), with its own handler timeout.
    let mut router = Router::new()
        .merge(ops_routes())
        .merge(kv::routes())
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(body_bytes_max))
        .layer(RequestBodyLimitLayer::new(body_bytes_max))
        .layer(RequestBodyTimeoutLayer::new(body_timeout));
    if loopback {
        router = router.layer(axum::middleware::from_fn(loopback_hosts_only));
    }
    router
        .layer(axum::middleware::map_response(json_errors))
        .layer(
            // Every event at DEBUG: tower-http logs a 5xx as an ERROR by
            // default, and a 503 from /readyz is an answer, not a failure
            // (a probe would fill the log while a node waits for a leader).
            TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(Level::DEBUG)),
        )
        .with_state(state)
}

/// Refuses a request whose `Host` is not a loopback name (see the module
/// doc: DNS rebinding). No `Host` (HTTP/1.0) passes.
async fn loopback_hosts_only(request: Request, next: Next) -> Response {
    let refused = request
        .headers()
        .get(header::HOST)
        .is_some_and(|h| !h.to_str().is_ok_and(is_loopback_host));
    if refused {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_host",
            "this listener is on a loopback address and serves only requests for \
             localhost, 127.0.0.1 or [::1] (a guard against DNS rebinding)",
        )
        .into_response();
    }
    next.run(request).await
}

/// `localhost`, an IPv4 loopback address or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(ip, _)| ip),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `/metrics`, `/livez`, `/readyz`, `/v1/status/*`.
fn ops_routes() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/v1/status/leader", get(status::leader))
        .route("/v1/status/peers", get(status::peers))
        .route("/v1/status/node", get(status::node))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_millis(OPS_TIMEOUT_MS),
        ))
}

/// Serves `listener` until the server's shutdown; the task ends when the
/// requests in flight have finished (the caller bounds that wait).
pub fn spawn(listener: TcpListener, state: AppState) -> JoinHandle<()> {
    let connections_max = state.shared.config.connections_max;
    let mut shutdown = state.shutdown.clone();
    if state.shared.cluster.is_some() {
        tokio::spawn(health::Health::watch_catch_up(
            Arc::clone(&state),
            state.shutdown.clone(),
        ));
    }
    let app = router(state).into_make_service_with_connect_info::<ClientAddr>();
    let listener = self::listener::Limited::new(listener, connections_max);
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.recv().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the HTTP listener stopped");
        }
    })
}

async fn metrics(State(state): State<AppState>) -> Response {
    match metrics::encode(&state.registry) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            )],
            text,
        )
            .into_response(),
        Err(_) => ApiError::internal("could not encode the metrics").into_response(),
    }
}

async fn livez(State(state): State<AppState>) -> Response {
    let checks = state.health.live(&state.shared, &state.shutdown);
    health::report(checks, "not_live", false)
}

async fn readyz(State(state): State<AppState>) -> Response {
    let checks = state.health.ready(&state.shared, &state.shutdown);
    health::report(checks, "not_ready", true)
}

/// Turns an error response that is not JSON (axum's 404 and 405, a
/// layer's 413 or 408, an extractor's rejection) into the API's JSON
/// error, keeping its status, its text as the message, and its headers
/// (`Allow`, `Retry-After`).
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, ERROR_TEXT_BYTES_MAX)
        .await
        .unwrap_or_default();
    let message = match String::from_utf8_lossy(&text).trim() {
        "" => status.canonical_reason().unwrap_or("error").to_string(),
        text => text.to_string(),
    };
    let json = ApiError::new(status, ApiError::code_for(status), message).into_response();
    let (json_parts, json_body) = json.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in &json_parts.headers {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, json_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_told_from_others() {
        for host in [
            "localhost",
            "LOCALHOST:7382",
            "127.0.0.1",
            "127.0.0.1:7382",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:7382",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:7382",
            "localhost.evil.example",
            "10.0.0.1:7382",
            "[::2]:7382",
            "[::1",
            "",
            "127.0.0.1.nip.io",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
