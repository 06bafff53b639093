//! [`ApiError`]: every answer other than 200 and 202. Each failure's HTTP status, code,
//! public message and extra headers are decided here and nowhere else, so no endpoint can
//! answer a failure in a shape the contract does not list. It imports none of the API's
//! modules, so every one of them may import it; `render` writes the answer.

use std::borrow::Cow;

use lambda_http::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use refund_shared::{port::PortFailure, queue::QueueError, store::StoreError};

/// Every answer other than 200 and 202.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A path that is neither resource. API Gateway routes only the API's paths, so only a
    /// request handed over otherwise (a direct invoke, `cargo lambda watch`) gets here.
    #[error("no such route")]
    RouteNotFound,
    /// The methods the resource does serve, in the order `Allow` lists them.
    #[error("method not allowed")]
    MethodNotAllowed(Vec<Method>),
    #[error("invalid ticket id")]
    InvalidTicketId,
    #[error("invalid Idempotency-Key header")]
    InvalidIdempotencyKey,
    #[error("invalid Correlation-ID header")]
    InvalidCorrelationId,
    /// The listing's `status` parameter, a refund status.
    #[error("invalid status parameter")]
    InvalidStatus,
    #[error("invalid limit parameter")]
    InvalidLimit,
    #[error("invalid cursor parameter")]
    InvalidCursor,
    /// No verified caller (contract section 1a).
    #[error("no verified caller")]
    Unauthenticated,
    /// The caller's token lacks the scope the route needs.
    #[error("insufficient scope")]
    InsufficientScope,
    /// Also the answer for another caller's record: whether it exists does not leak.
    #[error("no refund record for this ticket")]
    RefundNotFound,
    /// A GET without the refund table (`REFUND_TABLE_NAME` unset).
    #[error("refund status is not enabled")]
    RecordsNotEnabled,
    #[error("{0}")]
    QueueUnavailable(QueueError),
    /// The refund store or the cursor key could not be reached; the text is logged only.
    #[error("{0}")]
    RecordsUnavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub(crate) fn http_status(&self) -> StatusCode {
        match self {
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::InvalidTicketId
            | Self::InvalidIdempotencyKey
            | Self::InvalidCorrelationId
            | Self::InvalidStatus
            | Self::InvalidLimit
            | Self::InvalidCursor => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope => StatusCode::FORBIDDEN,
            Self::RouteNotFound | Self::RefundNotFound | Self::RecordsNotEnabled => {
                StatusCode::NOT_FOUND
            }
            Self::QueueUnavailable(_) | Self::RecordsUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The contract's error code. The two codes of the records feature keep the
    /// contract's name for it, `status`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::InvalidTicketId => "invalid_ticket_id",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::InvalidCorrelationId => "invalid_correlation_id",
            Self::InvalidStatus => "invalid_status",
            Self::InvalidLimit => "invalid_limit",
            Self::InvalidCursor => "invalid_cursor",
            Self::Unauthenticated => "unauthenticated",
            Self::InsufficientScope => "insufficient_scope",
            Self::RefundNotFound => "refund_not_found",
            Self::RecordsNotEnabled => "status_not_enabled",
            Self::QueueUnavailable(_) => "queue_unavailable",
            Self::RecordsUnavailable(_) => "status_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    /// What the caller reads: fixed text, so no internal detail leaks and no refused
    /// value is echoed; a 400 says what is allowed, a 405 what the resource serves.
    pub(crate) fn public_message(&self) -> Cow<'static, str> {
        let fixed = match self {
            Self::RouteNotFound => {
                "no such resource: the API serves /ticket-refund/{ticket_id} and /ticket-refunds"
            }
            Self::MethodNotAllowed(methods) => {
                return format!("this resource only serves {}", joined(methods, " and ")).into();
            }
            Self::InvalidTicketId => {
                "ticket_id must be a UUID in hyphenated form, e.g. 0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f"
            }
            Self::InvalidIdempotencyKey => {
                "Idempotency-Key must be 1 to 128 visible ASCII characters"
            }
            Self::InvalidCorrelationId => {
                "Correlation-ID must be 1 to 128 visible ASCII characters"
            }
            Self::InvalidStatus => {
                "status must be given at most once, as one of accepted, processing, succeeded, failed"
            }
            Self::InvalidLimit => {
                "limit must be given at most once, as a whole number from 1 to 100 (default 20)"
            }
            Self::InvalidCursor => {
                "cursor must be given at most once, as the next_cursor of a previous page of a listing with the same status"
            }
            Self::Unauthenticated => "a bearer token from the API's identity provider is required",
            Self::InsufficientScope => "the token's scopes do not allow this request",
            Self::RefundNotFound => "no refund has been asked for this ticket",
            Self::RecordsNotEnabled => "refund status is not enabled on this deployment",
            Self::QueueUnavailable(_) => {
                "the refund could not be queued right now; retry in a moment"
            }
            Self::RecordsUnavailable(_) => {
                "the refund status could not be read right now; retry in a moment"
            }
            Self::Internal(_) => "an unexpected error occurred",
        };
        fixed.into()
    }

    /// The headers the answer carries besides its `Content-Type`. A 405 says what the
    /// resource serves (`Allow`); a 503 says when to retry (`Retry-After`); a 401 or 403
    /// names the scheme and, for 403, the error (`WWW-Authenticate`, RFC 6750).
    pub(crate) fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let header = match self {
            // Method names are tokens, always a valid header value.
            Self::MethodNotAllowed(methods) => HeaderValue::try_from(joined(methods, ", "))
                .ok()
                .map(|allow| (header::ALLOW, allow)),
            Self::QueueUnavailable(_) | Self::RecordsUnavailable(_) => {
                Some((header::RETRY_AFTER, HeaderValue::from_static("1")))
            }
            Self::Unauthenticated => {
                Some((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")))
            }
            Self::InsufficientScope => Some((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer error="insufficient_scope""#),
            )),
            _ => None,
        };
        header.into_iter().collect()
    }

    /// A store failure: worth retrying (503) or not (500), as the store classified it.
    pub(crate) fn from_store(error: StoreError) -> Self {
        if error.is_transient() {
            Self::RecordsUnavailable(error.to_string())
        } else {
            Self::Internal(error.to_string())
        }
    }

    /// A queue failure: worth retrying (503) or not (500, the detail logged only), as the
    /// queue classified it.
    pub(crate) fn from_queue(error: QueueError) -> Self {
        match error {
            QueueError(PortFailure::Unavailable(_)) => Self::QueueUnavailable(error),
            QueueError(PortFailure::Rejected(detail)) => Self::Internal(detail),
        }
    }
}

/// The methods' names, `separator` between them.
fn joined(methods: &[Method], separator: &str) -> String {
    let names: Vec<&str> = methods.iter().map(Method::as_str).collect();
    names.join(separator)
}
