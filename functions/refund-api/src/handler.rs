//! The function's three routes:
//!
//! - `PUT /ticket-refund/{ticket_id}`: accept a refund and queue the `RefundTicket` command;
//! - `GET /ticket-refund/{ticket_id}`: the refund's status record (contract section 8);
//! - `GET /ticket-refunds?status=&limit=&cursor=`: the records, newest first, a page at a time.
//!
//! The handler is a plain async function over [`CommandQueue`] and, when the status table
//! is configured, a [`RefundStore`] ([`Status`]), so every answer of the contract is tested
//! against the in-memory twins. Every failure is an [`ApiError`], and [`ApiError`] alone
//! decides the status, code and public message of an answer.
//!
//! Without a store (`REFUND_TABLE_NAME` unset) the PUT route works exactly as before the
//! status issue and the GET routes answer 404 `status_not_enabled`.

use std::{convert::Infallible, panic::AssertUnwindSafe};

use futures::FutureExt;
use lambda_http::{
    Body, Request, RequestExt, Response,
    aws_lambda_events::query_map::QueryMap,
    http::{HeaderValue, Method, StatusCode, header},
    request::RequestContext,
};
use refund::{
    command::{COMMAND_NAME, RefundTicket, TicketId},
    correlation::CorrelationId,
    idempotency::ClientIdempotencyKey,
    queue::{CommandQueue, OutboundMessage, QueueError},
    status::{
        Accepted as Recorded, Disabled, ListQuery, PageLimit, Progress, RefundRecord,
        RefundRequest, RefundStatus, RefundStore, StoreError,
    },
};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

use crate::cursor_key::CursorKeys;

/// The methods `/ticket-refund/{ticket_id}` serves, as sent in `Allow`.
pub const TICKET_ALLOWED_METHODS: &str = "GET, PUT";
/// The methods `/ticket-refunds` serves, as sent in `Allow`.
pub const LIST_ALLOWED_METHODS: &str = "GET";

/// The longest `sub` claim recorded; a claim comes from a verified token, but a bound
/// keeps a surprising identity provider from filling message attributes and logs.
const MAX_REQUESTED_BY_LEN: usize = 256;

/// The last path segment of the listing route. Matched on the last segment, so the route
/// is found behind a stage prefix (`/prod/ticket-refunds`) too.
const LIST_SEGMENT: &str = "ticket-refunds";

/// The refund status feature: the store and the key that signs the listing's cursors.
/// `None` in place of a `&Status` means `REFUND_TABLE_NAME` is unset.
#[derive(Debug)]
pub struct Status<S> {
    pub store: S,
    pub cursor_keys: CursorKeys,
}

impl<S: RefundStore> Status<S> {
    pub fn new(store: S, cursor_keys: CursorKeys) -> Self {
        Self { store, cursor_keys }
    }
}

/// What to pass as `status` to [`handle`] without the status feature.
pub const STATUS_DISABLED: Option<&'static Status<Disabled>> = None;

/// Which resource a request is for; each serves its own methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `/ticket-refund/{ticket_id}`.
    Ticket,
    /// `/ticket-refunds`.
    List,
}

impl Resource {
    fn allowed_methods(self) -> &'static str {
        match self {
            Self::Ticket => TICKET_ALLOWED_METHODS,
            Self::List => LIST_ALLOWED_METHODS,
        }
    }
}

/// Every answer other than 200 and 202.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("method not allowed")]
    MethodNotAllowed(Resource),
    #[error("invalid ticket id")]
    InvalidTicketId,
    #[error("invalid Idempotency-Key header")]
    InvalidIdempotencyKey,
    #[error("invalid Correlation-ID header")]
    InvalidCorrelationId,
    #[error("invalid status parameter")]
    InvalidStatus,
    #[error("invalid limit parameter")]
    InvalidLimit,
    #[error("invalid cursor parameter")]
    InvalidCursor,
    #[error("no refund record for this ticket")]
    RefundNotFound,
    #[error("refund status is not enabled")]
    StatusNotEnabled,
    #[error("{0}")]
    QueueUnavailable(QueueError),
    /// The status store or the cursor key could not be reached; the text is logged only.
    #[error("{0}")]
    StatusUnavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::InvalidTicketId
            | Self::InvalidIdempotencyKey
            | Self::InvalidCorrelationId
            | Self::InvalidStatus
            | Self::InvalidLimit
            | Self::InvalidCursor => StatusCode::BAD_REQUEST,
            Self::RefundNotFound | Self::StatusNotEnabled => StatusCode::NOT_FOUND,
            Self::QueueUnavailable(_) | Self::StatusUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::InvalidTicketId => "invalid_ticket_id",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::InvalidCorrelationId => "invalid_correlation_id",
            Self::InvalidStatus => "invalid_status",
            Self::InvalidLimit => "invalid_limit",
            Self::InvalidCursor => "invalid_cursor",
            Self::RefundNotFound => "refund_not_found",
            Self::StatusNotEnabled => "status_not_enabled",
            Self::QueueUnavailable(_) => "queue_unavailable",
            Self::StatusUnavailable(_) => "status_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    /// What the caller reads: fixed text, so no internal detail leaks and no refused
    /// value is echoed; a 400 says what is allowed.
    fn public_message(&self) -> &'static str {
        match self {
            Self::MethodNotAllowed(Resource::Ticket) => "this resource only serves GET and PUT",
            Self::MethodNotAllowed(Resource::List) => "this resource only serves GET",
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
            Self::RefundNotFound => "no refund has been asked for this ticket",
            Self::StatusNotEnabled => "refund status is not enabled on this deployment",
            Self::QueueUnavailable(_) => {
                "the refund could not be queued right now; retry in a moment"
            }
            Self::StatusUnavailable(_) => {
                "the refund status could not be read right now; retry in a moment"
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
            Self::MethodNotAllowed(resource) => {
                headers.insert(
                    header::ALLOW,
                    HeaderValue::from_static(resource.allowed_methods()),
                );
            }
            Self::QueueUnavailable(_) | Self::StatusUnavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }

    /// A store failure: worth retrying (503) or not (500), as the store classified it.
    fn from_store(error: StoreError) -> Self {
        if error.is_transient() {
            Self::StatusUnavailable(error.to_string())
        } else {
            Self::Internal(error.to_string())
        }
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

/// The listing's 200 body; `next_cursor` is `null` on the last page.
#[derive(Debug, Serialize)]
struct Listing<'a> {
    items: &'a [RefundRecord],
    next_cursor: Option<String>,
}

/// A PUT that passed validation.
struct PutRequest {
    ticket_id: TicketId,
    client_key: Option<ClientIdempotencyKey>,
    requested_by: Option<String>,
}

/// What one request is about, once it is known: goes into the error's log line.
#[derive(Default)]
struct Seen {
    ticket_id: Option<TicketId>,
}

/// Answers one request. Never fails and never panics outward: a panic inside becomes a
/// 500 in the contract's shape instead of API Gateway's bare one. `status` is `None`
/// when `REFUND_TABLE_NAME` is unset (pass [`STATUS_DISABLED`]).
pub async fn handle<Q: CommandQueue, S: RefundStore>(
    queue: &Q,
    status: Option<&Status<S>>,
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
    let mut seen = Seen::default();
    let outcome = AssertUnwindSafe(respond(
        queue,
        status,
        &request,
        &correlation,
        correlation_error,
        &mut seen,
    ))
    .catch_unwind()
    .await
    .unwrap_or_else(|_| Err(ApiError::Internal("handler panicked".into())));
    let mut response = match outcome {
        Ok(response) => response,
        Err(error) => {
            let ticket_id = seen.ticket_id.as_ref().map(tracing::field::display);
            let method = request.method().as_str();
            if error.status().is_server_error() {
                tracing::error!(%request_id, method, ticket_id, correlation_id = %correlation, code = error.code(), %error, outcome = "failed", "request failed");
            } else {
                tracing::warn!(%request_id, method, ticket_id, correlation_id = %correlation, code = error.code(), outcome = "refused", "request refused");
            }
            error.into_response(&request_id)
        }
    };
    if let Ok(value) = HeaderValue::from_str(correlation.as_str()) {
        response.headers_mut().insert("correlation-id", value);
    }
    Ok(response)
}

/// Routes by resource (from the path) and method, in this order of checks: 405; for the
/// PUT the `Correlation-ID`, then its own headers; for the GETs 404 `status_not_enabled`
/// (a disabled feature always says so), then their parameters, then the store.
///
/// A refused `Correlation-ID` is a 400 on the PUT only, because the PUT carries it
/// downstream (the message, every upstream call, the record). A GET only logs and echoes
/// it, so a GET goes on with the generated one it echoes (openapi.yaml lists no
/// `invalid_correlation_id` for the GETs).
async fn respond<Q: CommandQueue, S: RefundStore>(
    queue: &Q,
    status: Option<&Status<S>>,
    request: &Request,
    correlation: &CorrelationId,
    correlation_error: Option<ApiError>,
    seen: &mut Seen,
) -> Result<Response<Body>, ApiError> {
    match (resource(request), request.method()) {
        ((Resource::Ticket, segment), &Method::PUT) => {
            if let Some(error) = correlation_error {
                return Err(error);
            }
            let refund = parse_put(request, segment)?;
            seen.ticket_id = Some(refund.ticket_id);
            put_refund(queue, status, refund, correlation).await
        }
        ((Resource::Ticket, segment), &Method::GET) => {
            let status = status.ok_or(ApiError::StatusNotEnabled)?;
            let ticket_id = parse_ticket_id(segment)?;
            seen.ticket_id = Some(ticket_id);
            get_refund(status, ticket_id, correlation).await
        }
        ((Resource::List, _), &Method::GET) => {
            let status = status.ok_or(ApiError::StatusNotEnabled)?;
            list_refunds(status, request, correlation).await
        }
        ((resource, _), _) => Err(ApiError::MethodNotAllowed(resource)),
    }
}

/// `PUT /ticket-refund/{id}`. With a store, one `accept` write comes first (the only
/// DynamoDB round trip on the 202 path): a refunded ticket is answered 200 with its record
/// and nothing is queued. Any other record, or a store that fails, still gets the command
/// queued: K makes a repeat harmless, and the worker creates a record the API could not.
async fn put_refund<Q: CommandQueue, S: RefundStore>(
    queue: &Q,
    status: Option<&Status<S>>,
    refund: PutRequest,
    correlation: &CorrelationId,
) -> Result<Response<Body>, ApiError> {
    let now = OffsetDateTime::now_utc();
    let command = RefundTicket::new(refund.ticket_id, now);
    let mut recorded = None;
    // The record this request moved to `accepted`, to be undone if the queue refuses.
    let mut written = None;
    if let Some(status) = status {
        let request = RefundRequest {
            ticket_id: refund.ticket_id,
            idempotency_key: command.header.idempotency_key.clone(),
            correlation_id: correlation.to_string(),
            requested_by: refund.requested_by.clone(),
            accepted_at: now,
        };
        match status.store.accept(request.clone()).await {
            Ok(accepted) if accepted.already_succeeded() => {
                tracing::info!(
                    ticket_id = %refund.ticket_id,
                    correlation_id = %correlation,
                    requested_by = refund.requested_by.as_deref(),
                    outcome = "already_succeeded",
                    "refund already succeeded; nothing queued"
                );
                return Ok(json_response(StatusCode::OK, accepted.record()));
            }
            Ok(accepted) => {
                recorded = Some(recorded_as(&accepted));
                if !matches!(accepted, Recorded::Existing(_)) {
                    written = Some((status, request));
                }
            }
            Err(error) => {
                tracing::warn!(
                    ticket_id = %refund.ticket_id,
                    correlation_id = %correlation,
                    %error,
                    outcome = "status_not_recorded",
                    "refund status not recorded; queuing the command anyway"
                );
                recorded = Some("not_recorded");
            }
        }
    }

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
    let message_id = match queue.send(message).await {
        Ok(message_id) => message_id,
        Err(error) => {
            if let Some((status, request)) = written {
                withdraw(&status.store, &request, &error).await;
            }
            return Err(match error {
                QueueError::Unavailable(_) => ApiError::QueueUnavailable(error),
                QueueError::Rejected(detail) => ApiError::Internal(detail),
            });
        }
    };

    let client_key = refund.client_key.as_ref().map(ClientIdempotencyKey::as_str);
    tracing::info!(
        ticket_id = %command.ticket_id,
        idempotency_key = %command.header.idempotency_key,
        command_id = %command.header.id,
        %message_id,
        correlation_id = %correlation,
        requested_by = refund.requested_by.as_deref(),
        client_idempotency_key = client_key,
        record = recorded,
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

/// What the accept write did, for the log line.
/// How long the API waits to mark a refund it could not queue; the caller already waited
/// for the queue, and is about to be told to retry.
const WITHDRAW_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The queue refused a command whose record this request had just set to `accepted`:
/// without a message nothing would ever move it, so it would read `accepted` forever.
/// Marked `failed` (the caller gets 503 or 500 and may ask again, which accepts it again);
/// best effort, and a worker that does get a message for the ticket revives it.
async fn withdraw<S: RefundStore>(store: &S, request: &RefundRequest, error: &QueueError) {
    let reason = format!("not queued: {error}; ask for the refund again");
    let written = tokio::time::timeout(
        WITHDRAW_TIMEOUT,
        store.fail(
            request,
            reason,
            Progress::default(),
            OffsetDateTime::now_utc(),
        ),
    )
    .await;
    let outcome = match written {
        Ok(Ok(_)) => "withdrawn",
        Ok(Err(error)) => {
            tracing::warn!(ticket_id = %request.ticket_id, correlation_id = %request.correlation_id, %error, "refund not queued and its record not marked failed");
            "withdraw_failed"
        }
        Err(_) => "withdraw_timed_out",
    };
    tracing::info!(ticket_id = %request.ticket_id, correlation_id = %request.correlation_id, outcome, "refund not queued; its record marked failed");
}

fn recorded_as(accepted: &Recorded) -> &'static str {
    match accepted {
        Recorded::Created(_) => "created",
        Recorded::Reaccepted(_) => "reaccepted",
        Recorded::Existing(_) => "existing",
    }
}

/// `GET /ticket-refund/{id}`: one strongly consistent read.
async fn get_refund<S: RefundStore>(
    status: &Status<S>,
    ticket_id: TicketId,
    correlation: &CorrelationId,
) -> Result<Response<Body>, ApiError> {
    let record = status
        .store
        .get(ticket_id)
        .await
        .map_err(ApiError::from_store)?
        .ok_or(ApiError::RefundNotFound)?;
    tracing::info!(
        ticket_id = %ticket_id,
        correlation_id = %correlation,
        status = record.status.as_str(),
        outcome = "found",
        "refund status read"
    );
    Ok(json_response(StatusCode::OK, &record))
}

/// `GET /ticket-refunds`: parameters are checked before the cursor key is fetched, so a
/// bad request never waits for Secrets Manager; the key is needed for every page (to
/// check the cursor given and to sign the next one).
async fn list_refunds<S: RefundStore>(
    status: &Status<S>,
    request: &Request,
    correlation: &CorrelationId,
) -> Result<Response<Body>, ApiError> {
    let query = request.query_string_parameters_ref();
    let filter = query_parameter(query, "status", ApiError::InvalidStatus)?
        .map(str::parse::<RefundStatus>)
        .transpose()
        .map_err(|_| ApiError::InvalidStatus)?;
    let limit = query_parameter(query, "limit", ApiError::InvalidLimit)?
        .map(str::parse::<PageLimit>)
        .transpose()
        .map_err(|_| ApiError::InvalidLimit)?
        .unwrap_or_default();
    let cursor_text = query_parameter(query, "cursor", ApiError::InvalidCursor)?;

    let codec = status
        .cursor_keys
        .codec()
        .await
        .map_err(|error| ApiError::StatusUnavailable(error.to_string()))?;
    let cursor = cursor_text
        .map(|text| codec.decode(text, filter))
        .transpose()
        .map_err(|_| ApiError::InvalidCursor)?;
    let page = status
        .store
        .list(ListQuery {
            status: filter,
            limit,
            cursor,
        })
        .await
        .map_err(ApiError::from_store)?;

    tracing::info!(
        correlation_id = %correlation,
        status = filter.map(RefundStatus::as_str),
        limit = limit.get(),
        continued = cursor_text.is_some(),
        items = page.items.len(),
        more = page.next_cursor.is_some(),
        outcome = "listed",
        "refund statuses listed"
    );
    let body = Listing {
        items: &page.items,
        next_cursor: page.next_cursor.as_ref().map(|cursor| codec.encode(cursor)),
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// A query parameter given at most once. An empty value is a value, and a bad one: `?status=`
/// is not a status (openapi.yaml says what each parameter may hold, and the answer must
/// not depend on a reading the document does not state). Given twice, even with the same
/// value, it is `error`: the request is ambiguous, and guessing could show a client a
/// listing it did not ask for.
fn query_parameter<'q>(
    query: Option<&'q QueryMap>,
    name: &str,
    error: ApiError,
) -> Result<Option<&'q str>, ApiError> {
    let Some(values) = query.and_then(|query| query.all(name)) else {
        return Ok(None);
    };
    match values.as_slice() {
        [value] => Ok(Some(*value)),
        _ => Err(error),
    }
}

fn parse_put(request: &Request, segment: Option<&str>) -> Result<PutRequest, ApiError> {
    let ticket_id = parse_ticket_id(segment)?;
    let client_key = header_bytes(request, "idempotency-key")
        .map(ClientIdempotencyKey::parse)
        .transpose()
        .map_err(|_| ApiError::InvalidIdempotencyKey)?;
    Ok(PutRequest {
        ticket_id,
        client_key,
        requested_by: requested_by(request),
    })
}

fn parse_ticket_id(segment: Option<&str>) -> Result<TicketId, ApiError> {
    segment
        .and_then(|segment| segment.parse::<TicketId>().ok())
        .ok_or(ApiError::InvalidTicketId)
}

/// The resource of the request and, for a ticket, its `{ticket_id}`: the path parameter,
/// or when the function was invoked without a router (a direct invoke), the segment after
/// `/ticket-refund/` in the path. A path that is neither resource is taken as a ticket
/// without an id, as before the listing existed (a PUT gets 400 `invalid_ticket_id`). The
/// segment is borrowed, never copied or logged: only a 36-byte UUID is ever taken from it.
fn resource(request: &Request) -> (Resource, Option<&str>) {
    if let Some(id) = request
        .path_parameters_ref()
        .and_then(|params| params.first("ticket_id"))
    {
        return (Resource::Ticket, Some(id));
    }
    let path = request.uri().path();
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    if trimmed.rsplit('/').next() == Some(LIST_SEGMENT) {
        return (Resource::List, None);
    }
    let segment = path.rsplit_once("/ticket-refund/").map(|(_, rest)| rest);
    (Resource::Ticket, segment)
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
