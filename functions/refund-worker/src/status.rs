//! What the worker records about each refund in the status store (contract section 8).
//!
//! The store describes the money; it never decides what happens to it. Per decoded
//! record the worker writes `begin` before the upstream calls and one ending after the
//! record's disposition is settled (`succeed`, `retry` or `fail`). A status write that
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
use refund::{
    command::RefundTicket,
    outcome::UpstreamResult,
    status::{Call, Change, Interaction, Progress, RefundRequest, RefundStore, StoreError},
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

/// Which status write of a record failed, as it is named in the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusWrite {
    Begin,
    Succeed,
    Retry,
    Fail,
}

impl StatusWrite {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Begin => "begin",
            Self::Succeed => "succeed",
            Self::Retry => "retry",
            Self::Fail => "fail",
        }
    }
}

/// How a delivery ended, as the status records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Both calls are done.
    Succeed,
    /// The message stays on its queue for a later delivery.
    Retry { last_error: String },
    /// The message is in the dead-letter queue with this reason.
    Fail { reason: String },
}

/// What the worker knows about one decoded record for its status: who asked for which
/// refund, and what this delivery did upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub request: RefundRequest,
    pub progress: Progress,
}

impl Tracked {
    /// The request as the command carries it. `accepted_at` is the command's
    /// `published_at`, which is when the API accepted it; the correlation id is the one
    /// the upstream calls carry (the message's, or a generated one).
    pub fn new(command: &RefundTicket, delivery: &Delivery, correlation_id: &str) -> Self {
        Self {
            request: RefundRequest {
                ticket_id: command.ticket_id,
                idempotency_key: command.header.idempotency_key.clone(),
                correlation_id: correlation_id.to_owned(),
                requested_by: delivery.requested_by().map(str::to_owned),
                accepted_at: command.header.published_at,
            },
            progress: Progress::default(),
        }
    }

    /// The write that records `ending`, with this delivery's calls.
    pub async fn end<S: RefundStore>(
        &self,
        store: &S,
        ending: Ending,
        at: OffsetDateTime,
    ) -> Result<Change, StoreError> {
        let progress = self.progress.clone();
        match ending {
            Ending::Succeed => store.succeed(&self.request, progress, at).await,
            Ending::Retry { last_error } => {
                store.retry(&self.request, last_error, progress, at).await
            }
            Ending::Fail { reason } => store.fail(&self.request, reason, progress, at).await,
        }
    }
}

impl Ending {
    pub fn write(&self) -> StatusWrite {
        match self {
            Self::Succeed => StatusWrite::Succeed,
            Self::Retry { .. } => StatusWrite::Retry,
            Self::Fail { .. } => StatusWrite::Fail,
        }
    }
}

/// One upstream call as the status trail keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallReport {
    pub result: UpstreamResult,
    /// When the request was sent (wall clock, for the trail).
    pub sent_at: OffsetDateTime,
    pub took: Duration,
}

/// The progress of a delivery from its two calls: both in the trail, and a confirmation
/// time for each call the service confirmed (when its answer arrived).
pub fn progress_of(void: &CallReport, refund: &CallReport) -> Progress {
    let confirmed = |call: &CallReport| call.result.is_ok().then(|| call.sent_at + call.took);
    Progress {
        interactions: vec![
            Interaction::new(Call::VoidReceipt, &void.result, void.took, void.sent_at),
            Interaction::new(
                Call::RefundPayment,
                &refund.result,
                refund.took,
                refund.sent_at,
            ),
        ],
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
    use refund::outcome::UpstreamError;
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
        let progress = progress_of(&void, &refund);
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
