//! `PUT /ticket-refund/{ticket_id}`: accept a refund and queue the `RefundTicket` command.
//!
//! The handler is a plain async function over [`CommandQueue`], so every answer of the
//! contract is tested against the in-memory queue. Every failure is an [`ApiError`], and
//! [`ApiError`] alone decides the status, code and public message of an answer.

use std::{convert::Infallible, panic::AssertUnwindSafe};

use futures::FutureExt;
use lambda_http::{
    Body, Request, RequestExt, Response,
    http::{HeaderValue, Method, StatusCode, header},
    request::RequestContext,
};
use refund::{
    command::{COMMAND_NAME, RefundTicket, TicketId},
    correlation::CorrelationId,
    idempotency::ClientIdempotencyKey,
    queue::{CommandQueue, OutboundMessage, QueueError},
};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

/// The methods this function serves, as sent in `Allow`.
pub const ALLOWED_METHODS: &str = "PUT";

/// The longest `sub` claim recorded; a claim comes from a verified token, but a bound
/// keeps a surprising identity provider from filling message attributes and logs.
const MAX_REQUESTED_BY_LEN: usize = 256;

/// Every answer other than 202.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("invalid ticket id")]
    InvalidTicketId,
    #[error("invalid Idempotency-Key header")]
    InvalidIdempotencyKey,
    #[error("invalid Correlation-ID header")]
    InvalidCorrelationId,
    #[error("{0}")]
    QueueUnavailable(QueueError),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::InvalidTicketId | Self::InvalidIdempotencyKey | Self::InvalidCorrelationId => {
                StatusCode::BAD_REQUEST
            }
            Self::QueueUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InvalidTicketId => "invalid_ticket_id",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::InvalidCorrelationId => "invalid_correlation_id",
            Self::QueueUnavailable(_) => "queue_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    /// What the caller reads: fixed text, so no internal detail leaks.
    fn public_message(&self) -> &'static str {
        match self {
            Self::MethodNotAllowed => "this resource only serves PUT",
            Self::InvalidTicketId => {
                "ticket_id must be a UUID in hyphenated form, e.g. 0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f"
            }
            Self::InvalidIdempotencyKey => {
                "Idempotency-Key must be 1 to 128 visible ASCII characters"
            }
            Self::InvalidCorrelationId => {
                "Correlation-ID must be 1 to 128 visible ASCII characters"
            }
            Self::QueueUnavailable(_) => {
                "the refund could not be queued right now; retry in a moment"
            }
            Self::Internal(_) => "an unexpected error occurred",
        }
    }

    fn into_response(self, request_id: &str) -> Response<Body> {
        let body = json!({
            "error": {"code": self.code(), "message": self.public_message()},
            "request_id": request_id,
        });
        let mut response = json_response(self.status(), &body);
        let headers = response.headers_mut();
        match self {
            Self::MethodNotAllowed => {
                headers.insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
            }
            Self::QueueUnavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

/// The 202 body.
#[derive(Debug, Serialize)]
struct Accepted<'a> {
    ticket_id: String,
    idempotency_key: &'a str,
    command_id: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_idempotency_key: Option<&'a str>,
}

/// A request that passed validation.
struct RefundRequest {
    ticket_id: TicketId,
    client_key: Option<ClientIdempotencyKey>,
    requested_by: Option<String>,
}

/// Answers one request. Never fails and never panics outward: a panic inside becomes a
/// 500 in the contract's shape instead of API Gateway's bare one.
pub async fn handle<Q: CommandQueue>(
    queue: &Q,
    request: Request,
) -> Result<Response<Body>, Infallible> {
    let request_id = request_id(&request);
    let (correlation, correlation_error) =
        match CorrelationId::from_header(header_bytes(&request, "correlation-id")) {
            Ok(id) => (id, None),
            Err(_) => (
                CorrelationId::generate(),
                Some(ApiError::InvalidCorrelationId),
            ),
        };
    let outcome = AssertUnwindSafe(accept(queue, &request, &correlation, correlation_error))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(ApiError::Internal("handler panicked".into())));
    let mut response = match outcome {
        Ok(response) => response,
        Err(error) => {
            let status = error.status();
            if status.is_server_error() {
                tracing::error!(%request_id, correlation_id = %correlation, code = error.code(), %error, "refund not accepted");
            } else {
                tracing::warn!(%request_id, correlation_id = %correlation, code = error.code(), "refund request refused");
            }
            error.into_response(&request_id)
        }
    };
    if let Ok(value) = HeaderValue::from_str(correlation.as_str()) {
        response.headers_mut().insert("correlation-id", value);
    }
    Ok(response)
}

async fn accept<Q: CommandQueue>(
    queue: &Q,
    request: &Request,
    correlation: &CorrelationId,
    correlation_error: Option<ApiError>,
) -> Result<Response<Body>, ApiError> {
    if request.method() != Method::PUT {
        return Err(ApiError::MethodNotAllowed);
    }
    if let Some(error) = correlation_error {
        return Err(error);
    }
    let refund = parse(request)?;
    let command = RefundTicket::new(refund.ticket_id, OffsetDateTime::now_utc());

    let mut attributes = std::collections::BTreeMap::from([
        ("name".to_owned(), COMMAND_NAME.to_owned()),
        ("correlation_id".to_owned(), correlation.to_string()),
    ]);
    if let Some(requested_by) = &refund.requested_by {
        attributes.insert("requested_by".to_owned(), requested_by.clone());
    }
    if let Some(key) = &refund.client_key {
        attributes.insert("client_idempotency_key".to_owned(), key.as_str().to_owned());
    }
    let message = OutboundMessage {
        body: command.encode(),
        attributes,
    };
    let message_id = queue.send(message).await.map_err(|error| match error {
        QueueError::Unavailable(_) => ApiError::QueueUnavailable(error),
        QueueError::Rejected(detail) => ApiError::Internal(detail),
    })?;

    let client_key = refund.client_key.as_ref().map(ClientIdempotencyKey::as_str);
    tracing::info!(
        ticket_id = %command.ticket_id,
        idempotency_key = %command.header.idempotency_key,
        command_id = %command.header.id,
        %message_id,
        correlation_id = %correlation,
        requested_by = refund.requested_by.as_deref(),
        client_idempotency_key = client_key,
        outcome = "accepted",
        "refund accepted"
    );
    let body = Accepted {
        ticket_id: command.ticket_id.to_string(),
        idempotency_key: &command.header.idempotency_key,
        command_id: command.header.id.to_string(),
        status: "accepted",
        client_idempotency_key: client_key,
    };
    Ok(json_response(StatusCode::ACCEPTED, &body))
}

fn parse(request: &Request) -> Result<RefundRequest, ApiError> {
    let ticket_id = ticket_id_segment(request)
        .and_then(|segment| segment.parse::<TicketId>().ok())
        .ok_or(ApiError::InvalidTicketId)?;
    let client_key = header_bytes(request, "idempotency-key")
        .map(ClientIdempotencyKey::parse)
        .transpose()
        .map_err(|_| ApiError::InvalidIdempotencyKey)?;
    Ok(RefundRequest {
        ticket_id,
        client_key,
        requested_by: requested_by(request),
    })
}

/// The `{ticket_id}` path parameter; when a caller invoked the function without a router
/// (a direct invoke), the segment after `/ticket-refund/` in the path. Borrowed, never
/// copied or logged: only a 36-byte UUID is ever taken from it.
fn ticket_id_segment(request: &Request) -> Option<&str> {
    if let Some(id) = request
        .path_parameters_ref()
        .and_then(|params| params.first("ticket_id"))
    {
        return Some(id);
    }
    let (_, rest) = request.uri().path().rsplit_once("/ticket-refund/")?;
    Some(rest)
}

/// The first value of a header, as raw bytes: validation decides what is acceptable.
fn header_bytes<'r>(request: &'r Request, name: &str) -> Option<&'r [u8]> {
    request.headers().get(name).map(HeaderValue::as_bytes)
}

/// The JWT `sub` claim API Gateway's authorizer verified, when there is one.
fn requested_by(request: &Request) -> Option<String> {
    let sub = match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context
            .authorizer
            .as_ref()?
            .jwt
            .as_ref()?
            .claims
            .get("sub")?,
        _ => return None,
    };
    let sub: String = sub.chars().take(MAX_REQUESTED_BY_LEN).collect();
    (!sub.trim().is_empty()).then_some(sub)
}

/// The Lambda request id, or API Gateway's when the function runs outside Lambda.
fn request_id(request: &Request) -> String {
    if let Some(context) = request.lambda_context_ref() {
        return context.request_id.clone();
    }
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.request_id.clone(),
        _ => None,
    }
    .unwrap_or_else(|| "unknown".to_owned())
}

fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    // Serializing these plain structs cannot fail; an empty object is a safe fallback.
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests;
