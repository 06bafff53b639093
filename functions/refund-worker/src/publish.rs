//! The refund events of a ticket's end, and the batch's in one `PutEvents` (contract
//! sections 4 and 9).
//!
//! A done message is deleted only once its `TicketRefunded` was accepted: if the bus
//! refuses it, the worker hands the message back with the backoff, and its redelivery
//! (its calls skipped, as the record confirms them) publishes the same id; at the last
//! receive it is dead-lettered as `event_unpublished`, so a redrive publishes it. A
//! `TicketRefundFailed` is best effort: its message is already in the dead-letter queue,
//! whose alarm fires.

use refund_shared::{
    announce::{Announcement, Ending, EventBus, PublishError},
    aws::PUT_EVENTS_TIMEOUT,
    port::PortFailure,
};
use time::OffsetDateTime;
use tokio::time::{Instant, timeout};
use uuid::Uuid;

use crate::{
    delivery::Delivery,
    group::Member,
    outcome::{Disposition, EventTally, RecordOutcome},
};

/// The events of one ticket's end: one `TicketRefunded` for its done messages, and one
/// `TicketRefundFailed` per dead-lettered message; each outcome notes its event's id.
pub(crate) fn announcements(
    deliveries: &[Delivery],
    members: &[Member],
    outcomes: &mut [RecordOutcome],
) -> Vec<Announcement> {
    let mut announcements = Vec::new();
    let mut refunded: Option<Uuid> = None;
    for (member, outcome) in members.iter().zip(outcomes.iter_mut()) {
        let ending = match &outcome.disposition {
            Disposition::Done if refunded.is_some() => {
                outcome.event_id = refunded;
                continue;
            }
            Disposition::Done => Ending::Refunded,
            Disposition::DeadLettered {
                code,
                dead_letter_message_id,
            } => Ending::Failed {
                error_code: *code,
                reason: outcome
                    .failure
                    .as_ref()
                    .map(|failure| failure.public_reason())
                    .unwrap_or_default(),
                // The message's own id, or the copy's for a message that had none.
                message_id: outcome
                    .message_id
                    .clone()
                    .unwrap_or_else(|| dead_letter_message_id.clone()),
            },
            _ => continue,
        };
        let delivery = &deliveries[member.index];
        let announcement = Announcement {
            ending,
            ticket_id: member.command.ticket_id,
            idempotency_key: member.command.key(),
            correlation_id: outcome.correlation_id.clone(),
            requested_by: delivery.requested_by(),
            trace: delivery.trace.clone(),
            published_at: OffsetDateTime::now_utc(),
        };
        let id = announcement.id();
        if announcement.ending == Ending::Refunded {
            refunded = Some(id);
        }
        outcome.event_id = Some(id);
        announcements.push(announcement);
    }
    announcements
}

/// Publishes `announcements` in one `PutEvents`: the tally, and the id of each event the
/// bus refused, with why.
pub(crate) async fn publish<B: EventBus>(
    bus: &B,
    announcements: &[Announcement],
    cutoff: Instant,
) -> (EventTally, Vec<(Uuid, PublishError)>) {
    let mut tally = EventTally::default();
    let mut refused = Vec::new();
    if announcements.is_empty() {
        return (tally, refused);
    }
    let mut results = put_bounded(bus, announcements, cutoff).await.into_iter();
    for announcement in announcements {
        let result = results.next().unwrap_or_else(|| {
            Err(PublishError::Port(PortFailure::Unavailable(
                "no result for the entry".to_owned(),
            )))
        });
        let Err(error) = result else {
            tally.published += 1;
            continue;
        };
        tally.unpublished += 1;
        tracing::warn!(
            ticket_id = %announcement.ticket_id,
            event_id = %announcement.id(),
            detail_type = announcement.detail_type(),
            correlation_id = %announcement.correlation_id,
            %error,
            "refund event not published"
        );
        refused.push((announcement.id(), error));
    }
    (tally, refused)
}

/// One `PutEvents` for the batch, started before the cutoff and bounded by
/// [`PUT_EVENTS_TIMEOUT`]; every entry fails when it could not be.
async fn put_bounded<B: EventBus>(
    bus: &B,
    announcements: &[Announcement],
    cutoff: Instant,
) -> Vec<Result<(), PublishError>> {
    let refused = || vec![Err(PublishError::Timeout); announcements.len()];
    if Instant::now() >= cutoff {
        return refused();
    }
    timeout(PUT_EVENTS_TIMEOUT, bus.publish(announcements))
        .await
        .unwrap_or_else(|_| refused())
}
