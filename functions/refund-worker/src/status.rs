//! What the worker writes in the status record (contract section 8).
//!
//! The store describes the money; it never decides what happens to it. Per ticket the
//! worker writes `begin` before the upstream calls and one closing write once every
//! message's disposition is settled (`succeed`, `retry` or `fail`). A write that fails,
//! times out or panics is noted in the records' outcomes and logged, and nothing else:
//! the calls still run and the dispositions stay what the queue semantics of section 4
//! make them, so a sick table can neither lose nor double a refund. The status catches up
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
    store::{Change, Progress, RefundRequest, StoreError, Transition},
};
use tokio::time::{Instant, timeout_at};

use crate::{
    delivery::Delivery,
    outcome::{Disposition, RecordOutcome},
};

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
        requested_by: delivery.requested_by(),
        accepted_at: command.header.published_at,
        command_id: command.header.id,
    }
}

/// The one write that closes a ticket's messages, from their dispositions: `succeed` when
/// any is done; else `retry` while a failed one stays on its queue (a younger copy will
/// try again, so the refund is still in progress); else `fail` with the first failed
/// one's reason. `None` when no message was judged.
pub fn closing(outcomes: &[RecordOutcome], progress: Progress) -> Option<Transition> {
    if outcomes.iter().any(|o| o.disposition == Disposition::Done) {
        return Some(Transition::Succeed { progress });
    }
    // The record holds the public reason (contract section 1a); the full text is in the
    // outcome's log line and the dead-letter copy.
    let failed = || outcomes.iter().filter(|o| o.failure.is_some());
    if let Some(retried) = failed().find(|o| o.disposition.stays_on_queue()) {
        let last_error = retried.failure.as_ref()?.public_reason();
        return Some(Transition::Retry {
            last_error,
            progress,
        });
    }
    let reason = failed().next()?.failure.as_ref()?.public_reason();
    Some(Transition::Fail { reason, progress })
}

/// Runs one status write within [`STATUS_WRITE_TIMEOUT`] and `cutoff` (the record's, or
/// for the closing write a little past it), whichever comes first. Every way it can go
/// wrong (an error, no answer in time, a panic in the store) comes back as the text to
/// log, never as a failure of the record.
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
    use refund_shared::{
        port::PortFailure,
        queue::QueueError,
        verdict::{ErrorCode, RefundFailure, UpstreamError},
    };

    use super::*;
    use crate::delivery::first_delivery;

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

    fn outcome(disposition: Disposition, failure: Option<RefundFailure>) -> RecordOutcome {
        RecordOutcome {
            disposition,
            failure,
            ..RecordOutcome::started(0, &first_delivery(""))
        }
    }

    /// What each mix of a ticket's dispositions records, as the write's name and reason.
    #[test]
    fn one_closing_write_speaks_for_every_message_of_the_ticket() {
        let retry = Disposition::Retry {
            visibility_s: Some(5),
        };
        let copy_failed = Disposition::DeadLetterFailed {
            code: ErrorCode::VoidRejected,
            error: QueueError(PortFailure::Unavailable("down".into())),
        };
        let rejected = RefundFailure::VoidRejected(UpstreamError::Status(409));
        let done = || outcome(Disposition::Done, None);
        let failed = |d: &Disposition, f: RefundFailure| outcome(d.clone(), Some(f));
        type Case = (Vec<RecordOutcome>, Option<(&'static str, &'static str)>);
        let cases: Vec<Case> = vec![
            (vec![done()], Some(("succeed", ""))),
            (vec![], None),
            (
                vec![failed(&retry, transient())],
                Some(("retry", "receipts service answered 503")),
            ),
            // The older copy is exhausted, the younger retries: still in progress.
            (
                vec![
                    failed(&dead_lettered(ErrorCode::RetriesExhausted), exhausted()),
                    failed(&retry, transient()),
                ],
                Some(("retry", "receipts service answered 503")),
            ),
            (
                vec![failed(&copy_failed, rejected.clone())],
                Some(("retry", "receipts service answered 409")),
            ),
            (
                vec![
                    failed(&dead_lettered(ErrorCode::VoidRejected), rejected.clone()),
                    failed(&dead_lettered(ErrorCode::VoidRejected), rejected),
                ],
                Some(("fail", "receipts service answered 409")),
            ),
        ];
        for (outcomes, expected) in cases {
            let transition = closing(&outcomes, Progress::default());
            let described = transition.as_ref().map(|transition| match transition {
                Transition::Retry { last_error, .. } => (transition.name(), last_error.as_str()),
                Transition::Fail { reason, .. } => (transition.name(), reason.as_str()),
                other => (other.name(), ""),
            });
            assert_eq!(described, expected, "{outcomes:?}");
        }
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
