//! `PUT /ticket-refund/{ticket_id}`: accept a refund and queue its `RefundTicket` command.
//!
//! With the refund records, one `accept` write comes first (the only DynamoDB round trip
//! on the 202 path): a refunded ticket is answered 200 with its record and nothing is
//! queued. Any other record, or a store that fails, still gets the command queued: K makes
//! a repeat harmless, and the worker creates a record the API could not. When the queue
//! refuses a command whose record this request accepted, the record is withdrawn.

use lambda_http::{Body, Request, Response, http::StatusCode};
use refund::{
    command::{Origin, RefundTicket, TicketId},
    correlation::CorrelationId,
    idempotency::ClientIdempotencyKey,
    queue::{CommandQueue, QueueError},
    store::{Accepted, Progress, RefundEvent, RefundRequest, RefundStatus, RefundStore},
};
use serde::Serialize;
use time::OffsetDateTime;

use crate::{
    caller::Caller, error::ApiError, records::RefundRecords, render::json_response, request,
};

/// How long the API waits to mark a refund it could not queue; the caller already waited
/// for the queue, and is about to be told to retry.
const WITHDRAW_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// A PUT that passed validation.
pub(crate) struct PutRequest {
    pub(crate) ticket_id: TicketId,
    client_key: Option<ClientIdempotencyKey>,
    requested_by: Option<String>,
    caller: Caller,
}

impl PutRequest {
    /// The ticket id from the path `segment`, then the `Idempotency-Key`, by `caller`.
    pub(crate) fn parse(
        request: &Request,
        segment: Option<&str>,
        caller: Caller,
    ) -> Result<Self, ApiError> {
        let ticket_id = request::ticket_id(segment)?;
        let client_key = request::header_bytes(request, "idempotency-key")
            .map(ClientIdempotencyKey::parse)
            .transpose()
            .map_err(|_| ApiError::InvalidIdempotencyKey)?;
        Ok(Self {
            ticket_id,
            client_key,
            requested_by: caller.sub.clone(),
            caller,
        })
    }

    fn client_key(&self) -> Option<&str> {
        self.client_key.as_ref().map(ClientIdempotencyKey::as_str)
    }
}

/// The 200 for a refunded ticket to a caller who may not see its record: only that it is
/// done (contract section 1a).
#[derive(Debug, Serialize)]
struct RefundedBody {
    ticket_id: TicketId,
    status: RefundStatus,
}

/// The 202 body.
#[derive(Debug, Serialize)]
struct AcceptedBody<'a> {
    ticket_id: String,
    idempotency_key: &'a str,
    command_id: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_idempotency_key: Option<&'a str>,
}

/// What the accept write found: whether to queue at all.
enum Acceptance<'r, S> {
    /// The ticket is refunded already: its record is the answer, and nothing is queued.
    Refunded(Accepted),
    /// Queue the command.
    Queue(Recording<'r, S>),
}

/// The record's side of a PUT that goes on to queue.
struct Recording<'r, S> {
    /// For the log line: what the accept write did; `None` without the records feature.
    outcome: Option<&'static str>,
    /// The record this request moved to `accepted`, to be undone if the queue refuses.
    written: Option<(&'r S, RefundRequest)>,
}

/// The PUT: record (with the records feature), then queue, then answer 202.
pub(crate) async fn put_refund<Q: CommandQueue, S: RefundStore>(
    queue: &Q,
    records: Option<&RefundRecords<S>>,
    refund: PutRequest,
    correlation: &CorrelationId,
) -> Result<Response<Body>, ApiError> {
    let now = OffsetDateTime::now_utc();
    let command = RefundTicket::new(refund.ticket_id, now);
    let recording = match records {
        Some(records) => match accept(&records.store, &refund, &command, correlation, now).await {
            Acceptance::Refunded(accepted) => {
                let record = accepted.record();
                return if refund.caller.owns_or_supports(record) {
                    json_response(StatusCode::OK, record)
                } else {
                    let body = RefundedBody {
                        ticket_id: record.ticket_id,
                        status: record.status,
                    };
                    json_response(StatusCode::OK, &body)
                };
            }
            Acceptance::Queue(recording) => recording,
        },
        None => Recording {
            outcome: None,
            written: None,
        },
    };
    let origin = Origin {
        correlation_id: correlation,
        requested_by: refund.requested_by.as_deref(),
        client_key: refund.client_key.as_ref(),
    };
    let message = command
        .message(&origin)
        .map_err(|e| ApiError::Internal(format!("the command does not encode: {e}")))?;
    let message_id = match queue.send(message).await {
        Ok(message_id) => message_id,
        Err(error) => {
            if let Some((store, request)) = recording.written {
                withdraw(store, &request, &error).await;
            }
            return Err(ApiError::from_queue(error));
        }
    };
    accepted(
        &command,
        &refund,
        correlation,
        &message_id,
        recording.outcome,
    )
}

/// The accept write. A store that fails does not stop the refund: the command is queued
/// anyway, and the worker creates the record.
async fn accept<'r, S: RefundStore>(
    store: &'r S,
    refund: &PutRequest,
    command: &RefundTicket,
    correlation: &CorrelationId,
    now: OffsetDateTime,
) -> Acceptance<'r, S> {
    let request = RefundRequest {
        ticket_id: refund.ticket_id,
        idempotency_key: command.key(),
        correlation_id: correlation.clone(),
        requested_by: refund.requested_by.clone(),
        accepted_at: now,
    };
    match store.accept(request.clone()).await {
        Ok(accepted) if accepted.already_succeeded() => {
            tracing::info!(
                ticket_id = %refund.ticket_id,
                correlation_id = %correlation,
                requested_by = refund.requested_by.as_deref(),
                outcome = "already_succeeded",
                "refund already succeeded; nothing queued"
            );
            Acceptance::Refunded(accepted)
        }
        Ok(accepted) => Acceptance::Queue(Recording {
            outcome: Some(recorded_as(&accepted)),
            written: (!matches!(accepted, Accepted::Existing(_))).then_some((store, request)),
        }),
        Err(error) => {
            tracing::warn!(
                ticket_id = %refund.ticket_id,
                correlation_id = %correlation,
                %error,
                outcome = "status_not_recorded",
                "refund status not recorded; queuing the command anyway"
            );
            Acceptance::Queue(Recording {
                outcome: Some("not_recorded"),
                written: None,
            })
        }
    }
}

/// What the accept write did, for the log line.
fn recorded_as(accepted: &Accepted) -> &'static str {
    match accepted {
        Accepted::Created(_) => "created",
        Accepted::Reaccepted(_) => "reaccepted",
        Accepted::Existing(_) => "existing",
    }
}

/// The 202 for a queued command, and its log line.
fn accepted(
    command: &RefundTicket,
    refund: &PutRequest,
    correlation: &CorrelationId,
    message_id: &str,
    recorded: Option<&'static str>,
) -> Result<Response<Body>, ApiError> {
    let client_key = refund.client_key();
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
    let body = AcceptedBody {
        ticket_id: command.ticket_id.to_string(),
        idempotency_key: &command.header.idempotency_key,
        command_id: command.header.id.to_string(),
        status: "accepted",
        client_idempotency_key: client_key,
    };
    json_response(StatusCode::ACCEPTED, &body)
}

/// The queue refused a command whose record this request had just set to `accepted`:
/// without a message nothing would ever move it, so it would read `accepted` forever.
/// Marked `failed` (the caller gets 503 or 500 and may ask again, which accepts it again);
/// best effort, and a worker that does get a message for the ticket revives it.
async fn withdraw<S: RefundStore>(store: &S, request: &RefundRequest, error: &QueueError) {
    // A public reason: the queue's own text stays in the logs.
    let reason = "not queued; ask for the refund again".to_owned();
    let written = tokio::time::timeout(
        WITHDRAW_TIMEOUT,
        store.record(
            request,
            RefundEvent::Fail {
                reason,
                progress: Progress::default(),
            },
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
    tracing::info!(ticket_id = %request.ticket_id, correlation_id = %request.correlation_id, %error, outcome, "refund not queued; its record marked failed");
}
