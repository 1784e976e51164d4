//! The crate's one error type, and the one function that maps a failure to an HTTP status.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use eddy_broker::BrokerError;
use eddy_client::ClientError;
use eddy_types::{ClassifyError, ErrorKind};
use serde::Serialize;

/// What went wrong while serving an HTTP request (or starting the server).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The request is malformed or breaks a rule: 400.
    #[error("{0}")]
    BadRequest(String),
    /// The named cluster, topic, group or route does not exist: 404.
    #[error("{0}")]
    NotFound(String),
    /// The named thing exists already: 409.
    #[error("{0}")]
    Conflict(String),
    /// A limit of this server (clusters, open group consumers) is reached: 409.
    #[error("{0}")]
    Limit(String),
    /// The body is over the server's limit: 413.
    #[error("{0}")]
    TooLarge(String),
    /// The method is not served on this path: 405.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The server cannot take the request now (limits reached, shutting down): 503.
    #[error("{0}")]
    Unavailable(String),
    /// The cluster refused or failed the request.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// An embedded producer or consumer failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A local file (the cluster registry) or socket failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        source: std::io::Error,
    },
}

impl HttpError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> HttpError {
        HttpError::Io {
            context: context.into(),
            source,
        }
    }

    /// The status and the machine-readable code of the JSON error body.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        let kind = match self {
            HttpError::BadRequest(_) => return (StatusCode::BAD_REQUEST, "invalid_request"),
            HttpError::NotFound(_) => return (StatusCode::NOT_FOUND, "not_found"),
            HttpError::Conflict(_) => return (StatusCode::CONFLICT, "already_exists"),
            HttpError::Limit(_) => return (StatusCode::CONFLICT, "limit_reached"),
            HttpError::TooLarge(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            HttpError::MethodNotAllowed(_) => {
                return (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
            }
            HttpError::Unavailable(_) => return (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            HttpError::Io { .. } => return (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            HttpError::Client(ClientError::RecordTooLarge { .. }) => {
                return (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
            }
            HttpError::Client(ClientError::NoOffset { .. }) => {
                return (StatusCode::CONFLICT, "no_committed_offset")
            }
            HttpError::Client(ClientError::CommitFailed(_)) => {
                return (StatusCode::CONFLICT, "commit_failed")
            }
            HttpError::Broker(BrokerError::PolicyViolation(_)) => {
                return (StatusCode::CONFLICT, "policy_violation")
            }
            HttpError::Broker(e) => e.kind(),
            HttpError::Client(e) => e.kind(),
        };
        match kind {
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ErrorKind::AlreadyExists => (StatusCode::CONFLICT, "already_exists"),
            ErrorKind::Invalid => (StatusCode::BAD_REQUEST, "invalid_request"),
            ErrorKind::OutOfRange => (StatusCode::BAD_REQUEST, "offset_out_of_range"),
            ErrorKind::NotLeader | ErrorKind::NotEnoughReplicas | ErrorKind::Unavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            ErrorKind::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            ErrorKind::StorageFull => (StatusCode::SERVICE_UNAVAILABLE, "storage_full"),
            ErrorKind::StorageFailed => (StatusCode::SERVICE_UNAVAILABLE, "storage_failed"),
            ErrorKind::Corrupt | ErrorKind::Internal => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
}

/// The JSON error body every failure gets: `{"error": {"code", "message"}}`.
pub(crate) fn error_body(code: &str, message: String) -> serde_json::Value {
    serde_json::json!(ErrorBody {
        error: ErrorDetail { code, message }
    })
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %self, "HTTP request failed");
        }
        HttpResponse::build(status).json(error_body(code, self.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_error_kind() {
        let cases = [
            (
                HttpError::Broker(BrokerError::UnknownTopic("t".into())),
                404,
                "not_found",
            ),
            (
                HttpError::Broker(BrokerError::Timeout("produce")),
                503,
                "timeout",
            ),
            (HttpError::BadRequest("x".into()), 400, "invalid_request"),
            (HttpError::Conflict("x".into()), 409, "already_exists"),
            (
                HttpError::Broker(BrokerError::PolicyViolation("x".into())),
                409,
                "policy_violation",
            ),
            (
                HttpError::Client(ClientError::RecordTooLarge { size: 2, limit: 1 }),
                413,
                "too_large",
            ),
        ];
        for (e, status, code) in cases {
            let (s, c) = e.status_and_code();
            assert_eq!((s.as_u16(), c), (status, code), "{e}");
        }
    }
}
