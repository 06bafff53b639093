//! One unit of the batch, from its bodies to each record's [`Disposition`]: a poison
//! record goes to the dead-letter queue; the commands of one ticket share one attempt
//! (one `begin`, the calls the record does not confirm, one status ending), and each
//! message is then judged by its own receive count.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use refund_shared::{
    announce::{Announcement, Ending, EventBus},
    gateway::Gateway,
    outcome::{Class, ErrorCode, RefundFailure},
    queue::{CommandQueue, VisibilityControl},
    store::{Progress, RefundEvent, RefundRequest, RefundStore},
    subject::Subject,
};
use time::OffsetDateTime;
use tokio::time::{Instant, timeout_at};

use crate::{
    attempt::{Calls, Ticket, attempt},
    backoff::retry_visibility_s,
    dead_letter::dead_letter_copy,
    delivery::Delivery,
    group::{Member, Unit},
    outcome::{Disposition, RecordOutcome},
    recorder::{bounded_write, request_of},
    worker::Worker,
};

/// What a unit came to: each record's outcome by its batch position, and the refund
/// events its end announces.
pub(crate) struct Settled {
    pub records: Vec<(usize, RecordOutcome)>,
    pub announcements: Vec<Pending>,
}

/// A refund event still to be published.
pub(crate) struct Pending {
    pub announcement: Announcement,
    /// The batch positions of the done records that may only be deleted once it is
    /// accepted (`TicketRefunded`); none for a best-effort `TicketRefundFailed`.
    pub waiting: Vec<usize>,
}

/// A failed message's disposition and the failure's public reason, for the status ending.
type Failed = (usize, Disposition, RefundFailure);

impl<G: Gateway, V: VisibilityControl, D: CommandQueue, S: RefundStore, B: EventBus>
    Worker<G, V, D, S, B>
{
    /// One unit; a panic fails that unit's records only.
    pub(crate) async fn settle_unit(
        &self,
        deliveries: &[Delivery],
        unit: Unit,
        cutoff: Instant,
    ) -> Settled {
        let indexes = unit.indexes();
        let handled = AssertUnwindSafe(self.handle_unit(deliveries, unit, cutoff))
            .catch_unwind()
            .await;
        handled.unwrap_or_else(|_| Settled {
            records: indexes
                .into_iter()
                .map(|index| {
                    let outcome = RecordOutcome {
                        disposition: Disposition::Panicked,
                        ..RecordOutcome::started(&deliveries[index])
                    };
                    (index, outcome)
                })
                .collect(),
            announcements: Vec::new(),
        })
    }

    async fn handle_unit(&self, deliveries: &[Delivery], unit: Unit, cutoff: Instant) -> Settled {
        match unit {
            Unit::Poison { index, error } => {
                let outcome = self.handle_poison(&deliveries[index], error, cutoff).await;
                Settled {
                    records: vec![(index, outcome)],
                    announcements: Vec::new(),
                }
            }
            Unit::Ticket { members, .. } => self.handle_ticket(deliveries, &members, cutoff).await,
        }
    }

    /// A body that is not a command: dead-lettered as `invalid_command`, announced never.
    async fn handle_poison(
        &self,
        delivery: &Delivery,
        error: String,
        cutoff: Instant,
    ) -> RecordOutcome {
        let mut outcome = RecordOutcome::started(delivery);
        if Instant::now() >= cutoff {
            return outcome;
        }
        let failure = RefundFailure::InvalidCommand(error);
        outcome.class = Some(failure.class());
        outcome.error = Some(failure.to_string());
        outcome.disposition = self
            .dead_letter(delivery, ErrorCode::InvalidCommand, &failure)
            .await;
        outcome
    }

    /// Every message of one ticket: one attempt, carried by the first message (its
    /// correlation id, requester and trace), then one disposition per message.
    async fn handle_ticket(
        &self,
        deliveries: &[Delivery],
        members: &[Member],
        cutoff: Instant,
    ) -> Settled {
        let mut outcomes: Vec<RecordOutcome> = members
            .iter()
            .map(|member| RecordOutcome {
                ticket_id: Some(member.command.ticket_id),
                foreign_key: member.command.has_foreign_key(),
                ..RecordOutcome::started(&deliveries[member.index])
            })
            .collect();
        let mut announcements = Vec::new();
        if let (Some(lead), true) = (members.first(), Instant::now() < cutoff) {
            let delivery = &deliveries[lead.index];
            let request = self
                .store
                .as_ref()
                .map(|_| request_of(&lead.command, delivery, &outcomes[0].correlation_id));
            let ticket = Ticket {
                command: &lead.command,
                correlation_id: &outcomes[0].correlation_id,
                trace: delivery.trace.as_ref(),
            };
            let recording = self.store.as_ref().zip(request.as_ref());
            let attempt = attempt(&self.gateway, recording, ticket, cutoff).await;
            for outcome in &mut outcomes {
                if let Some(begun) = &attempt.begun {
                    outcome.note_status(RefundEvent::Begin.name(), begun);
                }
            }
            if let Some(calls) = &attempt.calls {
                let failed = self
                    .judge_members(deliveries, members, &mut outcomes, calls, cutoff)
                    .await;
                if let Some(request) = &request {
                    let done = outcomes.iter().any(|o| o.disposition == Disposition::Done);
                    if let Some(event) = ending_event(done, &failed, calls.progress()) {
                        self.record_ending(request, event, cutoff, &mut outcomes)
                            .await;
                    }
                }
                announcements = self.announcements(deliveries, members, &mut outcomes, &failed);
            }
        }
        Settled {
            records: members.iter().map(|m| m.index).zip(outcomes).collect(),
            announcements,
        }
    }

    /// Each message's disposition from the shared calls and its own receive count.
    /// Returns the failed ones (by position in `members`).
    async fn judge_members(
        &self,
        deliveries: &[Delivery],
        members: &[Member],
        outcomes: &mut [RecordOutcome],
        calls: &Calls,
        cutoff: Instant,
    ) -> Vec<Failed> {
        let mut failed = Vec::new();
        for (position, (member, outcome)) in members.iter().zip(outcomes.iter_mut()).enumerate() {
            let delivery = &deliveries[member.index];
            calls.describe(outcome, position == 0);
            match calls.verdict(delivery.receive_count, self.settings.max_receive_count) {
                Ok(()) => {
                    outcome.class = Some(Class::Done);
                    outcome.disposition = Disposition::Done;
                }
                Err(failure) => {
                    outcome.class = Some(failure.class());
                    outcome.error = Some(failure.to_string());
                    outcome.disposition = self.settle(delivery, &failure, cutoff).await;
                    failed.push((position, outcome.disposition.clone(), failure));
                }
            }
        }
        failed
    }

    /// The events of the ticket's end: one `TicketRefunded` that its done messages wait
    /// for, and one `TicketRefundFailed` per dead-lettered message. None without a bus.
    fn announcements(
        &self,
        deliveries: &[Delivery],
        members: &[Member],
        outcomes: &mut [RecordOutcome],
        failed: &[Failed],
    ) -> Vec<Pending> {
        if self.bus.is_none() {
            return Vec::new();
        }
        let correlation_ids: Vec<_> = outcomes.iter().map(|o| o.correlation_id.clone()).collect();
        let announce = |position: usize, ending: Ending| {
            let member = &members[position];
            let delivery = &deliveries[member.index];
            Announcement {
                ending,
                ticket_id: member.command.ticket_id,
                idempotency_key: member.command.key(),
                correlation_id: correlation_ids[position].clone(),
                requested_by: delivery.requested_by().and_then(Subject::bounded),
                trace: delivery.trace.clone(),
                published_at: OffsetDateTime::now_utc(),
            }
        };
        let mut pending = Vec::new();
        let done: Vec<usize> = (0..members.len())
            .filter(|&p| outcomes[p].disposition == Disposition::Done)
            .collect();
        if let Some(&first) = done.first() {
            let waiting = done.iter().map(|&p| members[p].index).collect();
            let announcement = announce(first, Ending::Refunded);
            for &p in &done {
                outcomes[p].event_id = Some(announcement.id());
            }
            pending.push(Pending {
                announcement,
                waiting,
            });
        }
        for (position, disposition, failure) in failed {
            let Some(ending) = failed_ending(&outcomes[*position], disposition, failure) else {
                continue;
            };
            let announcement = announce(*position, ending);
            outcomes[*position].event_id = Some(announcement.id());
            pending.push(Pending {
                announcement,
                waiting: Vec::new(),
            });
        }
        pending
    }

    /// Hands a failed record back to its queue or copies it to the dead-letter queue.
    async fn settle(
        &self,
        delivery: &Delivery,
        failure: &RefundFailure,
        cutoff: Instant,
    ) -> Disposition {
        match failure.error_code() {
            None => Disposition::Retry {
                visibility_s: self.retry_later(delivery, cutoff).await,
            },
            Some(code) => self.dead_letter(delivery, code, failure).await,
        }
    }

    /// The ending's status write, once the dispositions are settled, so it says what
    /// became of the messages and a write that fails cannot change that. It may use half
    /// the deadline margin: the messages are about to be deleted or were dead-lettered, so
    /// no later delivery would correct a record left `processing`, and the other half
    /// still leaves time to answer Lambda.
    async fn record_ending(
        &self,
        request: &RefundRequest,
        event: RefundEvent,
        cutoff: Instant,
        outcomes: &mut [RecordOutcome],
    ) {
        let Some(store) = &self.store else {
            return;
        };
        let name = event.name();
        let result = bounded_write(
            cutoff + self.settings.deadline_margin / 2,
            store.record(request, event, OffsetDateTime::now_utc()),
        )
        .await;
        for outcome in outcomes {
            outcome.note_status(name, &result);
        }
    }

    /// Sets the message's visibility by the backoff; the seconds set, or `None` when the
    /// queue's own visibility timeout applies instead.
    pub(crate) async fn retry_later(&self, delivery: &Delivery, cutoff: Instant) -> Option<u32> {
        let seconds = retry_visibility_s(
            delivery.receive_count,
            self.settings.retry_base_s,
            self.settings.retry_max_s,
            (self.settings.jitter)(),
        );
        let receipt_handle = delivery.receipt_handle.as_ref()?;
        // Best effort: if it fails or runs past the cutoff, the queue's own visibility
        // timeout brings the message back instead.
        let changed = timeout_at(
            cutoff,
            self.source_queue.change_visibility(receipt_handle, seconds),
        )
        .await;
        match changed {
            Ok(Ok(())) => Some(seconds),
            Ok(Err(error)) => {
                tracing::warn!(message_id = delivery.message_id.as_deref(), %error, "visibility change failed");
                None
            }
            Err(_) => None,
        }
    }

    /// Copies the message, with the failure's full text, to the dead-letter queue. Not cut
    /// off at the deadline: a copy that was started is awaited, so it is never left
    /// half-known whether the message reached the dead-letter queue.
    pub(crate) async fn dead_letter(
        &self,
        delivery: &Delivery,
        code: ErrorCode,
        failure: &RefundFailure,
    ) -> Disposition {
        let copy = dead_letter_copy(delivery, code, &failure.to_string());
        match self.dead_letter_queue.send(copy).await {
            Ok(dead_letter_message_id) => Disposition::DeadLettered {
                code,
                dead_letter_message_id,
            },
            Err(error) => Disposition::DeadLetterFailed { code, error },
        }
    }
}

/// The `TicketRefundFailed` ending of a dead-lettered message, under the id of the message
/// (the copy's, for a message that had none); none for any other disposition.
fn failed_ending(
    outcome: &RecordOutcome,
    disposition: &Disposition,
    failure: &RefundFailure,
) -> Option<Ending> {
    let Disposition::DeadLettered {
        code,
        dead_letter_message_id,
    } = disposition
    else {
        return None;
    };
    let message_id = outcome
        .message_id
        .clone()
        .unwrap_or_else(|| dead_letter_message_id.clone());
    Some(Ending::Failed {
        error_code: *code,
        reason: failure.public_reason(),
        message_id,
    })
}

/// The one status ending of a ticket's messages: `succeed` when any is done; else
/// `retry` while any stays on its queue (a younger copy will try again, so the refund is
/// still in progress); else `fail` with the dead-lettered one's reason.
fn ending_event(done: bool, failed: &[Failed], progress: Progress) -> Option<RefundEvent> {
    if done {
        return Some(RefundEvent::Succeed { progress });
    }
    // The record holds the public reason (contract 1a); the full text is in the
    // outcome's log line and the dead-letter copy.
    if let Some((_, _, failure)) = failed.iter().find(|(_, d, _)| d.stays_on_queue()) {
        let last_error = failure.public_reason();
        return Some(RefundEvent::Retry {
            last_error,
            progress,
        });
    }
    let (_, _, failure) = failed.first()?;
    Some(RefundEvent::Fail {
        reason: failure.public_reason(),
        progress,
    })
}

#[cfg(test)]
mod tests {
    use refund_shared::{outcome::UpstreamError, port::PortFailure, queue::QueueError};

    use super::*;

    fn exhausted() -> RefundFailure {
        RefundFailure::RetriesExhausted {
            receive_count: 15,
            max_receive_count: 15,
            detail: "void-receipt answered HTTP 503".into(),
            public: "receipts service answered 503".into(),
        }
    }

    fn transient() -> RefundFailure {
        RefundFailure::Transient {
            detail: "void-receipt answered HTTP 503".into(),
            public: "receipts service answered 503".into(),
        }
    }

    fn dead_lettered(code: ErrorCode) -> Disposition {
        Disposition::DeadLettered {
            code,
            dead_letter_message_id: "d-1".into(),
        }
    }

    /// What each mix of a ticket's dispositions records, as the event's name and reason.
    #[test]
    fn one_ending_speaks_for_every_message_of_the_ticket() {
        let retry = Disposition::Retry {
            visibility_s: Some(5),
        };
        let copy_failed = Disposition::DeadLetterFailed {
            code: ErrorCode::VoidRejected,
            error: QueueError(PortFailure::Unavailable("down".into())),
        };
        let rejected = RefundFailure::VoidRejected(UpstreamError::Status(409));
        type Case = (bool, Vec<Failed>, Option<(&'static str, &'static str)>);
        let cases: Vec<Case> = vec![
            (true, vec![], Some(("succeed", ""))),
            (false, vec![], None),
            (
                false,
                vec![(0, retry.clone(), transient())],
                Some(("retry", "receipts service answered 503")),
            ),
            // The older copy is exhausted, the younger retries: still in progress.
            (
                false,
                vec![
                    (0, dead_lettered(ErrorCode::RetriesExhausted), exhausted()),
                    (1, retry, transient()),
                ],
                Some(("retry", "receipts service answered 503")),
            ),
            (
                false,
                vec![(0, copy_failed, rejected.clone())],
                Some(("retry", "receipts service answered 409")),
            ),
            (
                false,
                vec![
                    (0, dead_lettered(ErrorCode::VoidRejected), rejected.clone()),
                    (1, dead_lettered(ErrorCode::VoidRejected), rejected),
                ],
                Some(("fail", "receipts service answered 409")),
            ),
        ];
        for (done, failed, expected) in cases {
            let event = ending_event(done, &failed, Progress::default());
            let described = event.as_ref().map(|event| match event {
                RefundEvent::Retry { last_error, .. } => (event.name(), last_error.as_str()),
                RefundEvent::Fail { reason, .. } => (event.name(), reason.as_str()),
                other => (other.name(), ""),
            });
            assert_eq!(described, expected, "{done} {failed:?}");
        }
    }
}
