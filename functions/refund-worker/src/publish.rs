//! The batch's refund events, published in one `PutEvents` once every unit has settled
//! (contract sections 4 and 9).
//!
//! A done message is deleted only once its `TicketRefunded` was accepted: if the bus
//! refuses it, the message is handed back with the backoff, and its redelivery (its calls
//! skipped, as the record confirms them) publishes the same id; at the last receive it is
//! dead-lettered as `event_unpublished`, so a redrive publishes it. A `TicketRefundFailed`
//! is best effort: its message is already in the dead-letter queue, whose alarm fires.

use refund_shared::{
    announce::{Announcement, EventBus, PublishError},
    aws::PUT_EVENTS_TIMEOUT,
    port::PortFailure,
};
use tokio::time::{Instant, timeout};

use crate::{outcome::EventTally, ticket::Settled};

/// A done record (by batch position) whose `TicketRefunded` the bus did not accept.
pub(crate) type Refused = (usize, PublishError);

/// Publishes what `units` announce: the tally, and the waiting records whose event was
/// refused, for the worker to hand back or dead-letter.
pub(crate) async fn publish<B: EventBus>(
    bus: &B,
    units: &[Settled],
    cutoff: Instant,
) -> (EventTally, Vec<Refused>) {
    let announcements: Vec<Announcement> = units
        .iter()
        .flat_map(|unit| unit.announcements.iter().map(|p| p.announcement.clone()))
        .collect();
    let mut tally = EventTally::default();
    let mut refused = Vec::new();
    if announcements.is_empty() {
        return (tally, refused);
    }
    let mut results = put_bounded(bus, &announcements, cutoff).await.into_iter();
    for pending in units.iter().flat_map(|unit| &unit.announcements) {
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
        let announcement = &pending.announcement;
        tracing::warn!(
            ticket_id = %announcement.ticket_id,
            event_id = %announcement.id(),
            detail_type = announcement.detail_type(),
            correlation_id = %announcement.correlation_id,
            %error,
            "refund event not published"
        );
        refused.extend(pending.waiting.iter().map(|index| (*index, error.clone())));
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
