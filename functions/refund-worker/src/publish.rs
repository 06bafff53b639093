//! The batch's refund events, published in one `PutEvents` once every unit has settled
//! (contract sections 4 and 9).
//!
//! A done message is deleted only once its `TicketRefunded` was accepted: if the bus
//! refuses it, the message is handed back with the backoff, and its redelivery (its calls
//! skipped, as the record confirms them) publishes the same id; at the last receive it is
//! dead-lettered as `event_unpublished`, so a redrive publishes it. A `TicketRefundFailed`
//! is best effort: its message is already in the dead-letter queue, whose alarm fires.

use refund::{
    announce::{Announcement, EventBus, PublishError},
    aws::PUT_EVENTS_TIMEOUT,
    gateway::Gateway,
    outcome::{ErrorCode, RefundFailure},
    queue::{CommandQueue, VisibilityControl},
    store::RefundStore,
};
use tokio::time::{Instant, timeout};

use crate::{
    delivery::Delivery,
    outcome::{Disposition, EventTally, RecordOutcome},
    ticket::Settled,
    worker::Worker,
};

impl<G, V, D, S, B> Worker<G, V, D, S, B>
where
    G: Gateway,
    V: VisibilityControl,
    D: CommandQueue,
    S: RefundStore,
    B: EventBus,
{
    /// Publishes what `units` announce and settles the records that waited for it.
    /// `None` for a worker without a bus.
    pub(crate) async fn publish(
        &self,
        deliveries: &[Delivery],
        units: &mut [Settled],
        cutoff: Instant,
    ) -> Option<EventTally> {
        let bus = self.bus.as_ref()?;
        let announcements: Vec<Announcement> = units
            .iter()
            .flat_map(|unit| unit.announcements.iter().map(|p| p.announcement.clone()))
            .collect();
        let mut tally = EventTally::default();
        if announcements.is_empty() {
            return Some(tally);
        }
        let mut results = put_bounded(bus, &announcements, cutoff).await.into_iter();
        for unit in units.iter_mut() {
            for pending in &unit.announcements {
                let result = results.next().unwrap_or_else(|| {
                    Err(PublishError::Unavailable(
                        "no result for the entry".to_owned(),
                    ))
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
                for index in &pending.waiting {
                    let outcome = unit.records.iter_mut().find(|(i, _)| i == index);
                    if let Some((_, outcome)) = outcome {
                        self.unpublished(&deliveries[*index], outcome, &error, cutoff)
                            .await;
                    }
                }
            }
        }
        Some(tally)
    }

    /// A done record whose event the bus refused: back to its queue with the backoff, or
    /// at the last receive to the dead-letter queue as `event_unpublished`. The status
    /// record stays `succeeded`: the refund is done, only its announcement is not.
    async fn unpublished(
        &self,
        delivery: &Delivery,
        outcome: &mut RecordOutcome,
        error: &PublishError,
        cutoff: Instant,
    ) {
        let failure = RefundFailure::EventUnpublished {
            receive_count: delivery.receive_count,
            detail: error.to_string(),
        };
        outcome.error = Some(failure.to_string());
        let last = delivery.receive_count >= self.settings.max_receive_count;
        // Past the cutoff no copy is started; the redrive policy takes the message at its
        // next receive instead.
        if last && Instant::now() < cutoff {
            outcome.class = Some(failure.class());
            outcome.disposition = self
                .dead_letter(delivery, ErrorCode::EventUnpublished, &failure)
                .await;
            return;
        }
        outcome.disposition = Disposition::EventUnpublished {
            visibility_s: self.retry_later(delivery, cutoff).await,
        };
    }
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
