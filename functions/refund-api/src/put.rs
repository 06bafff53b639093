//! `PUT /ticket-refund/{ticket_id}`: accept a refund and queue its `RefundTicket` command.
//!
//! With the refund records, one `accept` write comes first (the only DynamoDB round trip
//! on the usual 202 path): a refunded ticket is answered 200 with its record and nothing is
//! queued. An open record (`accepted`, `processing`) whose command was queued within the
//! quiet period is answered 202 with that command, queueing nothing; after it, a second
//! write re-queues (contract section 1a). A store that fails still gets the command
//! queued: K makes a repeat harmless, and the worker creates a record the API could not.
//! When the queue refuses, what this request wrote is undone (`undo`).

use lambda_http::{Body, Request, Response, http::StatusCode};
use refund_shared::{
    command::{Origin, RefundTicket, TicketId},
    correlation::CorrelationId,
    idempotency::ClientIdempotencyKey,
    idempotency::IdempotencyKey,
    queue::{CommandQueue, QueueError},
    store::{
        Accepted, Change, RefundRecord, RefundRequest, RefundStatus, RefundStore, Transition,
        transition::recently_queued,
    },
    subject::Subject,
    trace::TraceHeader,
};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    caller::Caller, error::ApiError, records::RefundRecords, render::json_response, request,
};

/// How long the API waits to undo the write of a refund it could not queue; the caller
/// already waited for the queue, and is about to be told to retry.
const UNDO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// A PUT that passed validation.
pub(crate) struct PutRequest {
    pub(crate) ticket_id: TicketId,
    client_key: Option<ClientIdempotencyKey>,
    caller: Caller,
    trace: Option<TraceHeader>,
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
            caller,
            trace: request::trace(request),
        })
    }

    fn client_key(&self) -> Option<&str> {
        self.client_key.as_ref().map(ClientIdempotencyKey::as_str)
    }

    /// The caller's `sub`, which the command and the record carry as `requested_by`.
    fn requested_by(&self) -> Option<&Subject> {
        self.caller.sub.as_ref()
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
    ticket_id: TicketId,
    idempotency_key: IdempotencyKey,
    command_id: Uuid,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_idempotency_key: Option<&'a str>,
}

/// What the records say to do with a PUT.
enum Acceptance<'r, S> {
    /// The ticket is refunded already: its record is the answer, and nothing is queued.
    Refunded(RefundRecord),
    /// The record's command (this id) was queued within the quiet period: it is the
    /// answer, and nothing is queued.
    Quiet(Uuid),
    /// Queue the command.
    Queue(Recording<'r, S>),
}

/// The record's side of a PUT that goes on to queue.
struct Recording<'r, S> {
    /// For the log line: what the records did; `None` without the records feature.
    outcome: Option<&'static str>,
    /// What undoes this request's write if the queue refuses the command.
    undo: Option<(&'r S, RefundRequest, Transition)>,
}

impl<S> Recording<'_, S> {
    fn unwritten(outcome: Option<&'static str>) -> Self {
        Self {
            outcome,
            undo: None,
        }
    }
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
            Acceptance::Refunded(record) => return refunded(&refund, &record, correlation),
            Acceptance::Quiet(command_id) => return quiet(&refund, command_id, correlation),
            Acceptance::Queue(recording) => recording,
        },
        None => Recording::unwritten(None),
    };
    let origin = Origin {
        correlation_id: correlation,
        requested_by: refund.requested_by(),
        client_key: refund.client_key.as_ref(),
        trace: refund.trace.as_ref(),
    };
    let message = command
        .message(&origin)
        .map_err(|e| ApiError::Internal(format!("the command does not encode: {e}")))?;
    let message_id = match queue.send(message).await {
        Ok(message_id) => message_id,
        Err(error) => {
            if let Some((store, request, event)) = recording.undo {
                undo(store, &request, event, &error).await;
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

/// The accept write, and for an open record the re-queue after the quiet period. A store
/// that fails does not stop the refund: the command is queued anyway, and the worker
/// creates the record.
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
        requested_by: refund.requested_by().cloned(),
        accepted_at: now,
        command_id: command.header.id,
    };
    match store.accept(request.clone()).await {
        Ok(Accepted::Existing(record)) => match settled(&record, now) {
            Some(acceptance) => acceptance,
            None => requeue(store, request, record, now).await,
        },
        Ok(accepted) => {
            let withdraw = Transition::Withdraw {
                refused: request.command_id,
                // A public reason: the queue's own text stays in the logs.
                reason: "not queued; ask for the refund again".to_owned(),
            };
            Acceptance::Queue(Recording {
                outcome: Some(recorded_as(&accepted)),
                undo: Some((store, request, withdraw)),
            })
        }
        Err(error) => not_recorded(refund, correlation, &error),
    }
}

/// What an existing record answers by itself: refunded, or queued within the quiet
/// period; `None` when its command is to be queued again.
fn settled<'r, S>(record: &RefundRecord, now: OffsetDateTime) -> Option<Acceptance<'r, S>> {
    if record.status == RefundStatus::Succeeded {
        return Some(Acceptance::Refunded(record.clone()));
    }
    match record.command_id {
        Some(command_id) if !record.status.is_final() && recently_queued(record, now) => {
            Some(Acceptance::Quiet(command_id))
        }
        _ => None,
    }
}

/// The second conditional write, for an open record past its quiet period: the record
/// names this request's command, or, when another request re-queued it first or it
/// ended meanwhile, answers as it is now.
async fn requeue<'r, S: RefundStore>(
    store: &'r S,
    request: RefundRequest,
    before: RefundRecord,
    now: OffsetDateTime,
) -> Acceptance<'r, S> {
    match store.record(&request, Transition::Requeue, now).await {
        Ok(Change::Written(_)) => {
            let unqueue = Transition::Unqueue {
                refused: request.command_id,
                queued_at: before.queued_at,
                command_id: before.command_id,
            };
            Acceptance::Queue(Recording {
                outcome: Some("requeued"),
                undo: Some((store, request, unqueue)),
            })
        }
        Ok(Change::Kept(current)) => settled(&current, now)
            .unwrap_or_else(|| Acceptance::Queue(Recording::unwritten(Some("existing")))),
        Err(error) => {
            tracing::warn!(
                ticket_id = %request.ticket_id,
                correlation_id = %request.correlation_id,
                %error,
                outcome = "requeue_not_recorded",
                "re-queue not recorded; queuing the command anyway"
            );
            Acceptance::Queue(Recording::unwritten(Some("requeue_not_recorded")))
        }
    }
}

fn not_recorded<'r, S>(
    refund: &PutRequest,
    correlation: &CorrelationId,
    error: &refund_shared::store::StoreError,
) -> Acceptance<'r, S> {
    tracing::warn!(
        ticket_id = %refund.ticket_id,
        correlation_id = %correlation,
        %error,
        outcome = "status_not_recorded",
        "refund status not recorded; queuing the command anyway"
    );
    Acceptance::Queue(Recording::unwritten(Some("not_recorded")))
}

/// What the accept write did, for the log line.
fn recorded_as(accepted: &Accepted) -> &'static str {
    match accepted {
        Accepted::Created(_) => "created",
        Accepted::Reaccepted(_) => "reaccepted",
        Accepted::Existing(_) => "existing",
    }
}

/// The 200 for a refunded ticket: the record to its owner or support, else only that it
/// is done (contract section 1a).
fn refunded(
    refund: &PutRequest,
    record: &RefundRecord,
    correlation: &CorrelationId,
) -> Result<Response<Body>, ApiError> {
    tracing::info!(
        ticket_id = %refund.ticket_id,
        correlation_id = %correlation,
        requested_by = refund.requested_by().map(Subject::as_str),
        outcome = "already_succeeded",
        "refund already succeeded; nothing queued"
    );
    if refund.caller.owns_or_supports(record) {
        json_response(StatusCode::OK, record)
    } else {
        let body = RefundedBody {
            ticket_id: record.ticket_id,
            status: record.status,
        };
        json_response(StatusCode::OK, &body)
    }
}

/// The 202 within the quiet period: the command already on its way, nothing queued.
fn quiet(
    refund: &PutRequest,
    command_id: Uuid,
    correlation: &CorrelationId,
) -> Result<Response<Body>, ApiError> {
    tracing::info!(
        ticket_id = %refund.ticket_id,
        %command_id,
        correlation_id = %correlation,
        requested_by = refund.requested_by().map(Subject::as_str),
        client_idempotency_key = refund.client_key(),
        outcome = "already_queued",
        "refund already queued; nothing queued"
    );
    // K, derived here as for every 202 (an old record may hold another key).
    accepted_body(
        refund,
        IdempotencyKey::for_ticket(refund.ticket_id),
        command_id,
    )
}

/// The 202 for a queued command, and its log line.
fn accepted(
    command: &RefundTicket,
    refund: &PutRequest,
    correlation: &CorrelationId,
    message_id: &str,
    recorded: Option<&'static str>,
) -> Result<Response<Body>, ApiError> {
    tracing::info!(
        ticket_id = %command.ticket_id,
        idempotency_key = %command.header.idempotency_key,
        command_id = %command.header.id,
        %message_id,
        correlation_id = %correlation,
        requested_by = refund.requested_by().map(Subject::as_str),
        client_idempotency_key = refund.client_key(),
        record = recorded,
        outcome = "accepted",
        "refund accepted"
    );
    accepted_body(refund, command.key(), command.header.id)
}

fn accepted_body(
    refund: &PutRequest,
    idempotency_key: IdempotencyKey,
    command_id: Uuid,
) -> Result<Response<Body>, ApiError> {
    let body = AcceptedBody {
        ticket_id: refund.ticket_id,
        idempotency_key,
        command_id,
        status: "accepted",
        client_idempotency_key: refund.client_key(),
    };
    json_response(StatusCode::ACCEPTED, &body)
}

/// The queue refused the command this request wrote into the record. A record it had
/// just set to `accepted` is withdrawn (`failed`): without a message nothing would ever
/// move it, so it would read `accepted` forever (the caller gets 503 or 500 and may ask
/// again, which accepts it again). A re-queue is undone instead, so the record names the
/// command before and a `processing` refund is not marked failed. Either applies only
/// while the record still names this request's command. Best effort: a worker that does
/// get a message for the ticket moves the record on.
async fn undo<S: RefundStore>(
    store: &S,
    request: &RefundRequest,
    transition: Transition,
    error: &QueueError,
) {
    let name = transition.name();
    let written = tokio::time::timeout(
        UNDO_TIMEOUT,
        store.record(request, transition, OffsetDateTime::now_utc()),
    )
    .await;
    let (outcome, message) = match written {
        Ok(Ok(Change::Written(_))) => ("undone", "refund not queued; its record's write undone"),
        Ok(Ok(Change::Kept(_))) => (
            "not_undone",
            "refund not queued; its record has moved on since, and is left as it is",
        ),
        Ok(Err(store_error)) => {
            tracing::warn!(ticket_id = %request.ticket_id, correlation_id = %request.correlation_id, error = %store_error, undo = name, "the record's write could not be undone");
            (
                "undo_failed",
                "refund not queued; its record's write not undone",
            )
        }
        Err(_) => (
            "undo_timed_out",
            "refund not queued; its record's write not undone in time",
        ),
    };
    tracing::info!(ticket_id = %request.ticket_id, correlation_id = %request.correlation_id, %error, undo = name, outcome, "{message}");
}
