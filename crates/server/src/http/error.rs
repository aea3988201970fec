//! The one error shape of the HTTP API: a status that means something and
//! a JSON body, `{"error": "<code>", "message": "<text>"}`, with
//! `Retry-After` when waiting helps (no leader, no quorum, shutting down).
//! Every handler returns [`ApiError`]; errors that axum or a tower layer
//! produce themselves (404 fallback, 405, 413, a body too slow) are turned
//! into the same shape by [`super::json_errors`].

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use strata_replication::ClusterError;
use strata_storage::StorageError;

use crate::write_path::PathError;

/// What a client should wait before retrying when the cluster has no
/// leader: an election takes about one election timeout (400 ms by
/// default), and `Retry-After` counts whole seconds.
pub const RETRY_AFTER_S: u64 = 1;

/// An error answer: status, a stable machine-readable code, a message for
/// people, and `Retry-After` seconds when set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// One word, stable across versions: `not_found`, `no_leader`...
    pub code: &'static str,
    pub message: String,
    pub retry_after_s: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// 400: the request is malformed (a bad parameter, bad JSON).
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404: no such key, or no such endpoint.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: a compare-and-set or a check did not hold.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 413: over a size limit (the body, a key, a value).
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    /// 503 with `Retry-After`: the cluster has no leader (or no quorum).
    pub fn no_leader(message: impl Into<String>) -> ApiError {
        ApiError::unavailable("no_leader", message)
    }

    /// 503 with `Retry-After`, under `code`.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message).retry_after(RETRY_AFTER_S)
    }

    /// 500: the server failed (a storage error).
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after_s = Some(seconds);
        self
    }

    /// The code a status gets when nothing more precise is known (errors
    /// made by axum or a layer, see `json_errors`).
    pub fn code_for(status: StatusCode) -> &'static str {
        match status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::REQUEST_TIMEOUT => "timeout",
            StatusCode::CONFLICT => "conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY => "bad_request",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            s if s.is_server_error() => "internal",
            _ => "error",
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: self.code,
            message: &self.message,
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

/// A write or read barrier that failed, as RESP would say it
/// (`CLUSTERDOWN`, `TRYAGAIN`), with the status HTTP clients act on.
impl From<PathError> for ApiError {
    fn from(e: PathError) -> ApiError {
        match e {
            PathError::Cluster(c) => ApiError::from(c),
            PathError::Storage(s) => ApiError::from(s),
        }
    }
}

impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> ApiError {
        match e {
            ClusterError::Down(m) => ApiError::no_leader(m),
            ClusterError::Again(m) => ApiError::unavailable("try_again", m),
            ClusterError::Refused(m) => ApiError::new(StatusCode::CONFLICT, "refused", m),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> ApiError {
        match e {
            StorageError::ShuttingDown => {
                ApiError::unavailable("shutting_down", "the server is shutting down")
            }
            // Transient: nothing changed, the same request may succeed.
            StorageError::NotCommitted => ApiError::unavailable("try_again", e.to_string()),
            // Writes are refused until a restart: no point retrying here.
            StorageError::Failed(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_failed",
                e.to_string(),
            ),
            StorageError::ResultTooLarge { .. } => ApiError::too_large(e.to_string()),
            other => ApiError::internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(e: ApiError) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = e.into_response();
        let status = response.status();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap_or_default().to_string());
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        (status, retry, serde_json::from_slice(&bytes).expect("JSON"))
    }

    #[tokio::test]
    async fn errors_are_json_with_a_code_and_retry_after_when_it_helps() {
        let (status, retry, json) = body_of(ApiError::not_found("no key \"a\"")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(retry, None);
        assert_eq!(json["error"], "not_found");
        assert_eq!(json["message"], "no key \"a\"");
        let down = ApiError::from(PathError::Cluster(ClusterError::Down("no leader".into())));
        let (status, retry, json) = body_of(down).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(json["error"], "no_leader");
        let again = ApiError::from(ClusterError::Again("election".into()));
        assert_eq!(again.code, "try_again");
        assert_eq!(again.retry_after_s, Some(RETRY_AFTER_S));
        let failed = ApiError::from(StorageError::Failed("fsync: EIO".into()));
        assert_eq!(
            (failed.status, failed.code, failed.retry_after_s),
            (StatusCode::SERVICE_UNAVAILABLE, "storage_failed", None)
        );
        let refused = ApiError::from(ClusterError::Refused("not a member".into()));
        assert_eq!(refused.status, StatusCode::CONFLICT);
        let big = ApiError::from(StorageError::ResultTooLarge {
            what: "keys",
            limit: 10,
        });
        assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
