//! What the worker records about each refund in the refund store (contract section 8).
//!
//! The store describes the money; it never decides what happens to it. Per decoded
//! record the worker writes `begin` before the upstream calls and one ending after the
//! record's disposition is settled (`succeed`, `retry` or `fail`), each a
//! [`RefundEvent`](refund_shared::store::RefundEvent) through [`RefundStore::record`](refund_shared::store::RefundStore::record). A status write that
//! fails, times out or panics is noted in the record's outcome and logged, and nothing
//! else: the calls still run, the disposition stays what the queue semantics of section 4
//! make it, so a sick table can neither lose nor double a refund. The status catches up
//! with the next delivery or write, since every write creates a missing record from the
//! command it carries.
//!
//! Each write is bounded by [`STATUS_WRITE_TIMEOUT`] and by the record's cutoff, so a
//! hanging table costs a record at most that long before its calls and that long after
//! them, and never carries it past the deadline margin.

use std::{panic::AssertUnwindSafe, time::Duration};

use futures::FutureExt;
use refund_shared::{
    command::RefundTicket,
    correlation::CorrelationId,
    idempotency::IdempotencyKey,
    outcome::UpstreamResult,
    store::{Call, Change, Interaction, Progress, RefundRecord, RefundRequest, StoreError},
    subject::Subject,
};
use time::OffsetDateTime;
use tokio::time::{Instant, timeout_at};

use crate::delivery::Delivery;

/// The longest one status write may take. A DynamoDB write of the worker is a read and a
/// conditional put of single-digit milliseconds each; this leaves room for the SDK's own
/// retries within one operation (`DYNAMODB_OPERATION_TIMEOUT`, 2 s) while keeping a sick
/// table from eating the upstream calls' share of the invocation (30 s in the template,
/// 5 s per call).
pub const STATUS_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// The request as the command carries it, for a record the worker may have to create.
/// K is the ticket's own (never the message's), `accepted_at` is the command's
/// `published_at` (when the API accepted it), and the correlation id is the one the
/// upstream calls carry.
pub fn request_of(
    command: &RefundTicket,
    delivery: &Delivery,
    correlation_id: &CorrelationId,
) -> RefundRequest {
    RefundRequest {
        ticket_id: command.ticket_id,
        idempotency_key: command.key(),
        correlation_id: correlation_id.clone(),
        requested_by: delivery.requested_by().and_then(Subject::bounded),
        accepted_at: command.header.published_at,
        command_id: command.header.id,
    }
}

/// The key under which the record shows a call confirmed, when it is not `key`: a record
/// written before the worker derived K itself (contract section 3). Calling again under
/// `key` could then refund the ticket a second time, so the message is dead-lettered.
pub fn confirmed_under_another_key(
    record: &RefundRecord,
    key: IdempotencyKey,
) -> Option<IdempotencyKey> {
    let confirmed = record.receipt_voided_at.is_some() || record.payment_refunded_at.is_some();
    (confirmed && record.idempotency_key != key).then_some(record.idempotency_key)
}

/// One upstream call as the status trail keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallReport {
    pub result: UpstreamResult,
    /// When the request was sent (wall clock, for the trail).
    pub sent_at: OffsetDateTime,
    pub took: Duration,
}

/// The progress of a delivery from the calls it made (`None`: not made, the record
/// already confirms it): each in the trail, and a confirmation time for each call the
/// service confirmed (when its answer arrived).
pub fn progress_of(void: Option<&CallReport>, refund: Option<&CallReport>) -> Progress {
    let confirmed = |call: Option<&CallReport>| {
        call.filter(|c| c.result.is_ok())
            .map(|c| c.sent_at + c.took)
    };
    let trail = |name: Call, call: Option<&CallReport>| {
        call.map(|c| Interaction::new(name, &c.result, c.took, c.sent_at))
    };
    Progress {
        interactions: [
            trail(Call::VoidReceipt, void),
            trail(Call::RefundPayment, refund),
        ]
        .into_iter()
        .flatten()
        .collect(),
        receipt_voided_at: confirmed(void),
        payment_refunded_at: confirmed(refund),
    }
}

/// Runs one status write within [`STATUS_WRITE_TIMEOUT`] and `cutoff` (the record's, or
/// for the final write a little past it), whichever comes first. Every way it can go wrong (an error, no answer in time, a panic in the store)
/// comes back as the text to log, never as a failure of the record.
pub async fn bounded_write(
    cutoff: Instant,
    write: impl Future<Output = Result<Change, StoreError>>,
) -> Result<Change, String> {
    let limit = cutoff.min(Instant::now() + STATUS_WRITE_TIMEOUT);
    match AssertUnwindSafe(timeout_at(limit, write))
        .catch_unwind()
        .await
    {
        Ok(Ok(Ok(change))) => Ok(change),
        Ok(Ok(Err(error))) => Err(error.to_string()),
        Ok(Err(_elapsed)) => Err(
            "status store gave no answer within the status write timeout or the record's cutoff"
                .to_owned(),
        ),
        Err(_panic) => Err("status store panicked".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use refund_shared::outcome::UpstreamError;
    use time::macros::datetime;

    use super::*;

    #[test]
    fn only_confirmed_calls_get_a_confirmation_time() {
        let sent_at = datetime!(2026-11-23 06:00 UTC);
        let void = CallReport {
            result: Ok(204),
            sent_at,
            took: Duration::from_millis(120),
        };
        let refund = CallReport {
            result: Err(UpstreamError::Status(503)),
            sent_at,
            took: Duration::from_millis(80),
        };
        let progress = progress_of(Some(&void), Some(&refund));
        assert_eq!(
            progress.receipt_voided_at,
            Some(datetime!(2026-11-23 06:00:00.12 UTC))
        );
        assert_eq!(progress.payment_refunded_at, None);
        let trail: Vec<(Call, String, u64)> = progress
            .interactions
            .iter()
            .map(|i| (i.call, i.status.to_string(), i.duration_ms))
            .collect();
        assert_eq!(
            trail,
            [
                (Call::VoidReceipt, "204".to_owned(), 120),
                (Call::RefundPayment, "503".to_owned(), 80)
            ]
        );
        // A call the record confirmed is neither in the trail nor confirmed again.
        let skipped = progress_of(None, Some(&refund));
        assert_eq!(skipped.interactions.len(), 1);
        assert_eq!(skipped.interactions[0].call, Call::RefundPayment);
        assert_eq!(skipped.receipt_voided_at, None);
    }

    async fn hangs() -> Result<Change, StoreError> {
        std::future::pending().await
    }

    async fn panics() -> Result<Change, StoreError> {
        panic!("a bug in the store")
    }

    #[tokio::test]
    async fn a_write_that_hangs_or_panics_is_an_error_not_a_failure_of_the_record() {
        let cutoff = Instant::now() + Duration::from_millis(200);
        let started = Instant::now();
        assert!(bounded_write(cutoff, hangs()).await.is_err());
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < STATUS_WRITE_TIMEOUT,
            "{took:?}"
        );

        let far = Instant::now() + Duration::from_secs(600);
        assert_eq!(
            bounded_write(far, panics()).await,
            Err("status store panicked".to_owned())
        );
    }
}
