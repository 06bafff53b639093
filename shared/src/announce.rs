//! The refund events: how the end of a refund is announced on EventBridge (contract 9).
//!
//! [`Announcement`] is one event as the worker decides it (`TicketRefunded` once both
//! calls are done, `TicketRefundFailed` for each dead-lettered message); [`EventBus`] is
//! the port, [`EventBridgeBus`] the AWS adapter and [`InMemoryEventBus`] the twin. An
//! event's id is derived, never drawn: a repeat (a redelivery, a duplicate message, a
//! retried `PutEvents`) carries the id of the first, which is how a consumer of an
//! at-least-once stream recognises it. `docs/EVENTS.md` is the consumers' side.

use std::{future::Future, sync::Mutex};

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    command::TicketId, correlation::CorrelationId, idempotency::IdempotencyKey, port::PortFailure,
    stamp, subject::Subject, trace::TraceHeader, twin::lock, verdict::ErrorCode,
};

/// The `source` of every refund event.
pub const SOURCE: &str = "ticket-refunds";
/// The `detail-type` of a refund whose two calls are done (final).
pub const TICKET_REFUNDED: &str = "TicketRefunded";
/// The `detail-type` of a dead-lettered refund (not final: a redrive may still refund it).
pub const TICKET_REFUND_FAILED: &str = "TicketRefundFailed";
/// The `schema_version` of the detail; bumped only for a change a consumer must know of.
pub const SCHEMA_VERSION: u32 = 1;
/// `PutEvents` takes at most this many entries per call.
pub const MAX_ENTRIES_PER_CALL: usize = 10;

/// How the refund ended, as the event says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Refunded,
    /// `message_id` is the dead-lettered message's: each dead-lettering is its own event.
    Failed {
        error_code: ErrorCode,
        /// The public reason of contract 1a, never the failure's full text.
        reason: String,
        message_id: String,
    },
}

/// One refund event, before it goes on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub ending: Ending,
    pub ticket_id: TicketId,
    pub idempotency_key: IdempotencyKey,
    pub correlation_id: CorrelationId,
    pub requested_by: Option<Subject>,
    /// The record's trace, as the entry's X-Ray `TraceHeader`.
    pub trace: Option<TraceHeader>,
    pub published_at: OffsetDateTime,
}

impl Announcement {
    /// `UUIDv5(K, "TicketRefunded")`, or `UUIDv5(K, "TicketRefundFailed:" + message id)`.
    pub fn id(&self) -> Uuid {
        let namespace = self.idempotency_key.as_uuid();
        match &self.ending {
            Ending::Refunded => Uuid::new_v5(&namespace, TICKET_REFUNDED.as_bytes()),
            Ending::Failed { message_id, .. } => Uuid::new_v5(
                &namespace,
                format!("{TICKET_REFUND_FAILED}:{message_id}").as_bytes(),
            ),
        }
    }

    pub fn detail_type(&self) -> &'static str {
        match self.ending {
            Ending::Refunded => TICKET_REFUNDED,
            Ending::Failed { .. } => TICKET_REFUND_FAILED,
        }
    }

    /// The event's `detail`, exactly the fields of contract 9.
    pub fn detail(&self) -> Value {
        let mut detail = json!({
            "schema_version": SCHEMA_VERSION,
            "header": {
                "id": self.id(),
                "published_at": stamp::format(self.published_at),
                "idempotency_key": self.idempotency_key,
            },
            "ticket_id": self.ticket_id,
            "correlation_id": self.correlation_id,
        });
        if let Some(requested_by) = &self.requested_by {
            detail["requested_by"] = json!(requested_by);
        }
        if let Ending::Failed {
            error_code, reason, ..
        } = &self.ending
        {
            detail["error_code"] = json!(error_code.as_str());
            detail["reason"] = json!(reason);
        }
        detail
    }
}

/// Why an event did not get on the bus.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The bus could not be reached (try later) or refused the whole call.
    #[error("event bus {0}")]
    Port(PortFailure),
    /// The call went through, but the bus refused this entry (`ErrorCode`, `ErrorMessage`).
    #[error("event bus refused the entry: {0}")]
    Entry(String),
    #[error("no answer from the event bus in time")]
    Timeout,
}

/// Puts refund events on the bus.
pub trait EventBus: Send + Sync {
    /// Publishes every announcement, [`MAX_ENTRIES_PER_CALL`] to a call; one result per
    /// announcement, in their order.
    fn publish(
        &self,
        announcements: &[Announcement],
    ) -> impl Future<Output = Vec<Result<(), PublishError>>> + Send;
}

/// The refund events bus on EventBridge (`EVENT_BUS_NAME`).
#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeBus {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }

    fn entry(&self, announcement: &Announcement) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(announcement.detail_type())
            .detail(announcement.detail().to_string())
            .set_trace_header(announcement.trace.as_ref().map(|t| t.as_str().to_owned()))
            .build()
    }

    /// One `PutEvents`: a failed call fails every entry; a refused entry fails itself.
    async fn put(&self, chunk: &[Announcement]) -> Vec<Result<(), PublishError>> {
        let entries = chunk.iter().map(|a| self.entry(a)).collect();
        let sent = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await;
        let answers = match sent {
            Ok(output) => output.entries.unwrap_or_default(),
            Err(error) => {
                let error = PublishError::Port(PortFailure::of(&error));
                return vec![Err(error); chunk.len()];
            }
        };
        (0..chunk.len())
            .map(|i| match answers.get(i) {
                Some(answer) => match answer.error_code() {
                    None => Ok(()),
                    Some(code) => Err(PublishError::Entry(format!(
                        "{code}: {}",
                        answer.error_message().unwrap_or_default()
                    ))),
                },
                // An answer without a result for the entry cannot be told from a refusal.
                None => Err(PublishError::Port(PortFailure::Unavailable(
                    "PutEvents answered without a result for the entry".to_owned(),
                ))),
            })
            .collect()
    }
}

impl EventBus for EventBridgeBus {
    async fn publish(&self, announcements: &[Announcement]) -> Vec<Result<(), PublishError>> {
        let calls = announcements
            .chunks(MAX_ENTRIES_PER_CALL)
            .map(|chunk| self.put(chunk));
        futures::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

/// The in-memory twin of [`EventBridgeBus`]: keeps what was published, or refuses on
/// demand (every entry, or only `TicketRefunded` ones).
#[derive(Debug, Default)]
pub struct InMemoryEventBus {
    published: Mutex<Vec<Announcement>>,
    calls: Mutex<usize>,
    refusal: Mutex<Option<(PublishError, Option<&'static str>)>>,
}

impl InMemoryEventBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Refuses every entry of `detail_type` (every entry, when `None`) with `error`, until
    /// called again with `None`.
    pub fn refuse(&self, refusal: Option<(PublishError, Option<&'static str>)>) {
        *lock(&self.refusal) = refusal;
    }

    /// What was accepted, in order.
    pub fn published(&self) -> Vec<Announcement> {
        lock(&self.published).clone()
    }

    /// How many `PutEvents` calls were made.
    pub fn calls(&self) -> usize {
        *lock(&self.calls)
    }
}

impl EventBus for InMemoryEventBus {
    async fn publish(&self, announcements: &[Announcement]) -> Vec<Result<(), PublishError>> {
        *lock(&self.calls) += announcements.len().div_ceil(MAX_ENTRIES_PER_CALL);
        let refusal = lock(&self.refusal).clone();
        let mut published = lock(&self.published);
        announcements
            .iter()
            .map(|announcement| match &refusal {
                Some((error, kind)) if kind.is_none_or(|k| k == announcement.detail_type()) => {
                    Err(error.clone())
                }
                _ => {
                    published.push(announcement.clone());
                    Ok(())
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const TICKET: &str = "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f";

    fn announcement(ending: Ending) -> Announcement {
        let ticket_id: TicketId = TICKET.parse().unwrap();
        Announcement {
            ending,
            ticket_id,
            idempotency_key: IdempotencyKey::for_ticket(ticket_id),
            correlation_id: CorrelationId::parse("c-1").unwrap(),
            requested_by: Subject::parse("user-7").ok(),
            trace: None,
            published_at: datetime!(2026-12-03 06:00:00.5 UTC),
        }
    }

    fn failed(message_id: &str) -> Ending {
        Ending::Failed {
            error_code: ErrorCode::VoidRejected,
            reason: "receipts service answered 409".to_owned(),
            message_id: message_id.to_owned(),
        }
    }

    /// Golden: the detail of contract 9, field for field, and ids a consumer can
    /// recompute from K alone.
    #[test]
    fn details_have_exactly_the_contracts_shape_and_derived_ids() {
        let refunded = announcement(Ending::Refunded);
        let key = refunded.idempotency_key;
        let id = Uuid::new_v5(&key.as_uuid(), b"TicketRefunded");
        assert_eq!(refunded.id(), id);
        assert_eq!(refunded.detail_type(), "TicketRefunded");
        assert_eq!(
            refunded.detail(),
            json!({
                "schema_version": 1,
                "header": {
                    "id": id.to_string(),
                    "published_at": "2026-12-03T06:00:00.500000Z",
                    "idempotency_key": key.to_string(),
                },
                "ticket_id": TICKET,
                "correlation_id": "c-1",
                "requested_by": "user-7",
            })
        );

        let failure = announcement(failed("m-1"));
        let id = Uuid::new_v5(&key.as_uuid(), b"TicketRefundFailed:m-1");
        assert_eq!(failure.id(), id);
        assert_eq!(failure.detail_type(), "TicketRefundFailed");
        let detail = failure.detail();
        assert_eq!(detail["header"]["id"], id.to_string());
        assert_eq!(detail["error_code"], "void_rejected");
        assert_eq!(detail["reason"], "receipts service answered 409");

        let anonymous = Announcement {
            requested_by: None,
            ..announcement(Ending::Refunded)
        };
        assert!(anonymous.detail().get("requested_by").is_none());
    }

    /// A repeat of one dead-lettering carries its id; another dead-lettering gets its own.
    #[test]
    fn each_dead_lettering_has_its_own_id() {
        let first = announcement(failed("m-1"));
        let again = Announcement {
            published_at: datetime!(2026-12-04 00:00 UTC),
            ..first.clone()
        };
        assert_eq!(first.id(), again.id());
        assert_ne!(first.id(), announcement(failed("m-2")).id());
        assert_ne!(first.id(), announcement(Ending::Refunded).id());
    }
}
