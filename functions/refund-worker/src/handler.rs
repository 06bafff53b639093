//! One SQS batch in, one `SqsBatchResponse` out (contract section 4).
//!
//! [`Worker`] is generic over its ports (gateway, retry control on the source queue,
//! dead-letter queue, and optionally the refund status store) so every path runs in tests
//! against scripted twins or moto. Each record ends in exactly one [`Disposition`]; only
//! the disposition decides whether the record goes into `batchItemFailures`, and every
//! record is logged once. The status store is told what happened (see [`crate::status`])
//! but has no say in it.

use std::{
    convert::Infallible,
    panic::AssertUnwindSafe,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use futures::{FutureExt, StreamExt, stream};
use lambda_runtime::LambdaEvent;
use refund::{
    command::RefundTicket,
    config::WorkerConfig,
    correlation::{CorrelationId, parse_header_token},
    gateway::{Gateway, RefundCall},
    outcome::{Class, ErrorCode, RefundFailure, UpstreamResult, judge},
    queue::{CommandQueue, OutboundMessage, QueueError, VisibilityControl},
    status::{Change, RefundStore},
};
use time::OffsetDateTime;
use tokio::time::{Instant, timeout_at};

use crate::{
    backoff::retry_visibility_s,
    dead_letter::{dead_letter_copy, failure_reason},
    delivery::Delivery,
    status::{CallReport, Ending, StatusWrite, Tracked, bounded_write, progress_of},
};

/// Records of one batch in flight at once: a batch of 10 (the default batch size) runs
/// fully in parallel, a large batch does not open hundreds of upstream connections.
pub const MAX_CONCURRENT_RECORDS: usize = 10;

/// What the worker needs to know beyond its ports.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub max_receive_count: u32,
    pub retry_base_s: u32,
    pub retry_max_s: u32,
    pub deadline_margin: Duration,
    pub max_concurrent_records: usize,
    /// The uniform draw in `[0, 1)` of the backoff's jitter; injected for tests.
    pub jitter: fn() -> f64,
}

impl Settings {
    pub fn from_config(config: &WorkerConfig) -> Self {
        Self {
            max_receive_count: config.max_receive_count,
            retry_base_s: config.retry_base_s,
            retry_max_s: config.retry_max_s,
            deadline_margin: config.deadline_margin,
            max_concurrent_records: MAX_CONCURRENT_RECORDS,
            jitter: rand::random::<f64>,
        }
    }
}

/// How a record ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Both calls succeeded; Lambda deletes the message.
    Done,
    /// Copied to the dead-letter queue; Lambda deletes the original.
    DeadLettered {
        code: ErrorCode,
        dead_letter_message_id: String,
    },
    /// Handed back for a later delivery; `visibility_s` is `None` when the change could
    /// not be made and the queue's own visibility timeout applies.
    Retry { visibility_s: Option<u32> },
    /// The copy to the dead-letter queue failed, so the original must stay on its queue.
    DeadLetterFailed { code: ErrorCode, error: QueueError },
    /// Not finished at `deadline - DEADLINE_MARGIN_MS`. No status ending is written: the
    /// margin is for answering Lambda and for the dead-letter copies already started, and
    /// the record's `begin` (`processing`, the attempt counted) is true as it stands until
    /// the redelivery writes again.
    Unfinished,
    /// Handling the record panicked. No status ending is written: what the record had
    /// learnt is lost with the unwound future, and the redelivery writes again.
    Panicked,
}

impl Disposition {
    /// Whether the record must stay on the queue, i.e. go into `batchItemFailures`.
    pub fn stays_on_queue(&self) -> bool {
        !matches!(self, Self::Done | Self::DeadLettered { .. })
    }

    fn as_str(&self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::DeadLettered { .. } => "dead_lettered",
            Self::Retry { .. } => "retry",
            Self::DeadLetterFailed { .. } => "dead_letter_failed",
            Self::Unfinished => "unfinished",
            Self::Panicked => "panicked",
        }
    }
}

/// Everything known about one record when it ended: the facts of its log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOutcome {
    pub message_id: Option<String>,
    pub ticket_id: Option<String>,
    pub correlation_id: String,
    pub receive_count: u32,
    /// `None` when the record ended before it was classified (deadline, panic).
    pub class: Option<Class>,
    pub error: Option<String>,
    pub void_status: Option<u16>,
    pub refund_status: Option<u16>,
    /// How long each upstream call took, for the latency metrics.
    pub void_latency: Option<Duration>,
    pub refund_latency: Option<Duration>,
    pub disposition: Disposition,
    /// Whether every status write of this record succeeded; `None` when there was nothing
    /// to record (no status store, or a body that is not a command).
    pub status_recorded: Option<bool>,
    /// The first status write that failed and why (`"begin: status store unavailable: …"`).
    pub status_error: Option<String>,
}

impl RecordOutcome {
    fn started(delivery: &Delivery, correlation_id: &str) -> Self {
        Self {
            message_id: delivery.message_id.clone(),
            ticket_id: None,
            correlation_id: correlation_id.to_owned(),
            receive_count: delivery.receive_count,
            class: None,
            error: None,
            void_status: None,
            refund_status: None,
            void_latency: None,
            refund_latency: None,
            disposition: Disposition::Unfinished,
            status_recorded: None,
            status_error: None,
        }
    }

    /// Notes how one status write went. A failure only ever reaches the log and the
    /// `StatusWriteFailed` metric: the record's disposition is already decided without it.
    fn note_status(&mut self, write: StatusWrite, result: Result<Change, String>) {
        match result {
            Ok(_) => {
                self.status_recorded.get_or_insert(true);
            }
            Err(error) => {
                self.status_recorded = Some(false);
                self.status_error
                    .get_or_insert_with(|| format!("{}: {error}", write.as_str()));
            }
        }
    }

    pub fn error_code(&self) -> Option<ErrorCode> {
        match &self.disposition {
            Disposition::DeadLettered { code, .. } | Disposition::DeadLetterFailed { code, .. } => {
                Some(*code)
            }
            _ => None,
        }
    }

    fn log(&self) {
        let failed = self.disposition.stays_on_queue();
        let (visibility_s, dead_letter_message_id, queue_error) = match &self.disposition {
            Disposition::Retry { visibility_s } => (*visibility_s, None, None),
            Disposition::DeadLettered {
                dead_letter_message_id,
                ..
            } => (None, Some(dead_letter_message_id.as_str()), None),
            Disposition::DeadLetterFailed { error, .. } => (None, None, Some(error.to_string())),
            _ => (None, None, None),
        };
        if self.status_recorded == Some(false) {
            // Once per record, however many of its writes failed: the first error says why.
            tracing::warn!(
                message_id = self.message_id.as_deref(),
                ticket_id = self.ticket_id.as_deref(),
                correlation_id = %self.correlation_id,
                outcome = self.disposition.as_str(),
                status_error = self.status_error.as_deref(),
                "refund status not recorded; the refund itself is handled as if it were"
            );
        }
        macro_rules! record_line {
            ($level:ident, $text:expr) => {
                tracing::$level!(
                    message_id = self.message_id.as_deref(),
                    ticket_id = self.ticket_id.as_deref(),
                    correlation_id = %self.correlation_id,
                    receive_count = self.receive_count,
                    class = self.class.map(Class::as_str),
                    error_code = self.error_code().map(ErrorCode::as_str),
                    void_status = self.void_status,
                    refund_status = self.refund_status,
                    outcome = self.disposition.as_str(),
                    reported_failed = failed && self.message_id.is_some(),
                    visibility_s,
                    dead_letter_message_id,
                    error = self.error.as_deref(),
                    queue_error = queue_error.as_deref(),
                    status_recorded = self.status_recorded,
                    $text
                )
            };
        }
        match (&self.disposition, &self.message_id) {
            (Disposition::Done, _) => record_line!(info, "ticket refunded"),
            (_, None) if failed => record_line!(
                error,
                "record not handled and has no messageId, so it cannot be reported failed; the queue redelivers it after its visibility timeout"
            ),
            (Disposition::Retry { .. }, _) => record_line!(warn, "refund will be retried"),
            (Disposition::DeadLettered { .. }, _) => {
                record_line!(warn, "message copied to the dead-letter queue")
            }
            (Disposition::DeadLetterFailed { .. }, _) => {
                record_line!(
                    error,
                    "dead-letter copy failed; the message stays on its queue"
                )
            }
            (Disposition::Unfinished, _) => {
                record_line!(error, "record unfinished at the deadline margin")
            }
            (Disposition::Panicked, _) => record_line!(error, "handling the record panicked"),
        }
    }
}

/// What became of a whole batch, in the order of its records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchOutcome {
    pub records: Vec<RecordOutcome>,
}

impl BatchOutcome {
    /// The message ids for `batchItemFailures`; a record without an id cannot be named,
    /// and an empty identifier would make Lambda fail the whole batch.
    pub fn failed_message_ids(&self) -> Vec<String> {
        self.records
            .iter()
            .filter(|r| r.disposition.stays_on_queue())
            .filter_map(|r| r.message_id.clone())
            .filter(|id| !id.is_empty())
            .collect()
    }

    pub fn response(&self) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        response.set_failures(self.failed_message_ids());
        response
    }
}

/// The refund worker over its ports. `S` is the refund status store; a worker built by
/// [`Worker::new`] has none ([`Disabled`](refund::status::Disabled)) until [`Worker::with_status`] gives it one.
pub struct Worker<G, V, D, S = refund::status::Disabled> {
    gateway: G,
    source_queue: V,
    dead_letter_queue: D,
    settings: Settings,
    status: Option<S>,
}

impl<G, V, D> Worker<G, V, D>
where
    G: Gateway,
    V: VisibilityControl,
    D: CommandQueue,
{
    /// A worker that records no status (contract sections 1-4 exactly).
    pub fn new(gateway: G, source_queue: V, dead_letter_queue: D, settings: Settings) -> Self {
        Self {
            gateway,
            source_queue,
            dead_letter_queue,
            settings,
            status: None,
        }
    }

    /// The same worker recording each refund's status in `store` (contract section 8);
    /// `None` records nothing, so `main` passes what `REFUND_TABLE_NAME` gave it.
    pub fn with_status<S: RefundStore>(self, store: Option<S>) -> Worker<G, V, D, S> {
        Worker {
            gateway: self.gateway,
            source_queue: self.source_queue,
            dead_letter_queue: self.dead_letter_queue,
            settings: self.settings,
            status: store,
        }
    }
}

impl<G, V, D, S> Worker<G, V, D, S>
where
    G: Gateway,
    V: VisibilityControl,
    D: CommandQueue,
    S: RefundStore,
{
    /// The upstream client, so a benchmark can time one call through the same pool.
    pub fn gateway(&self) -> &G {
        &self.gateway
    }

    /// The status store, so a test can read what was recorded.
    pub fn status_store(&self) -> Option<&S> {
        self.status.as_ref()
    }

    /// Gives the ports back, so a test can inspect what they were asked to do.
    pub fn into_parts(self) -> (G, V, D) {
        (self.gateway, self.source_queue, self.dead_letter_queue)
    }

    /// The Lambda entry point. Never fails: anything that goes wrong is confined to its
    /// record, so one bad record cannot make Lambda retry the whole batch.
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, Infallible> {
        let outcome = self
            .handle_batch(event.payload, event.context.deadline)
            .await;
        for line in crate::metrics::emf_lines(&outcome, crate::metrics::now_ms()) {
            println!("{line}");
        }
        Ok(outcome.response())
    }

    /// Handles every record of `event`; `deadline_ms` is the invocation's deadline in
    /// milliseconds since the epoch, as Lambda gives it.
    pub async fn handle_batch(&self, event: SqsEvent, deadline_ms: u64) -> BatchOutcome {
        let cutoff = cutoff(deadline_ms, self.settings.deadline_margin);
        tracing::debug!(
            records = event.records.len(),
            deadline_ms,
            until_cutoff_ms = cutoff.saturating_duration_since(Instant::now()).as_millis() as u64,
            "batch received"
        );
        let mut records: Vec<(usize, RecordOutcome)> =
            stream::iter(event.records.into_iter().enumerate())
                .map(|(index, message)| async move {
                    let delivery = Delivery::from(message);
                    let correlation_id = correlation_id(&delivery);
                    let outcome =
                        AssertUnwindSafe(self.handle_record(&delivery, &correlation_id, cutoff))
                            .catch_unwind()
                            .await
                            .unwrap_or_else(|_| RecordOutcome {
                                disposition: Disposition::Panicked,
                                ..RecordOutcome::started(&delivery, &correlation_id)
                            });
                    outcome.log();
                    (index, outcome)
                })
                .buffer_unordered(self.settings.max_concurrent_records.max(1))
                .collect()
                .await;
        records.sort_by_key(|(index, _)| *index);
        BatchOutcome {
            records: records.into_iter().map(|(_, outcome)| outcome).collect(),
        }
    }

    async fn handle_record(
        &self,
        delivery: &Delivery,
        correlation_id: &str,
        cutoff: Instant,
    ) -> RecordOutcome {
        let mut outcome = RecordOutcome::started(delivery, correlation_id);
        if Instant::now() >= cutoff {
            return outcome;
        }
        // Filled once the body is a command and a status store is configured.
        let mut tracked = None;
        // Past the cutoff the upstream calls are abandoned: both are idempotent on K, so
        // the redelivery repeats them safely.
        let Ok(verdict) = timeout_at(
            cutoff,
            self.refund(delivery, correlation_id, cutoff, &mut outcome, &mut tracked),
        )
        .await
        else {
            return outcome;
        };
        let ending = match verdict {
            Ok(()) => {
                outcome.class = Some(Class::Done);
                outcome.disposition = Disposition::Done;
                Ending::Succeed
            }
            Err(failure) => self.settle(delivery, failure, cutoff, &mut outcome).await,
        };
        // Written only now that the disposition is settled, so it says what became of the
        // message, and a write that fails cannot change that. It may use half the deadline
        // margin: the message is about to be deleted or was dead-lettered, so no later
        // delivery would correct a record left `processing`, and the other half still
        // leaves time to answer Lambda.
        if let (Some(store), Some(tracked)) = (&self.status, &tracked) {
            let write = ending.write();
            let result = bounded_write(
                cutoff + self.settings.deadline_margin / 2,
                tracked.end(store, ending, OffsetDateTime::now_utc()),
            )
            .await;
            outcome.note_status(write, result);
        }
        outcome
    }

    /// Hands a failed record back to its queue or copies it to the dead-letter queue, and
    /// says how the status records that.
    async fn settle(
        &self,
        delivery: &Delivery,
        failure: RefundFailure,
        cutoff: Instant,
        outcome: &mut RecordOutcome,
    ) -> Ending {
        outcome.class = Some(failure.class());
        outcome.error = Some(failure.to_string());
        let Some(code) = failure.error_code() else {
            outcome.disposition = self.retry_later(delivery, cutoff).await;
            return Ending::Retry {
                last_error: failure.to_string(),
            };
        };
        let copy = dead_letter_copy(delivery, code, &failure.to_string());
        let reason = failure_reason(&copy);
        // Not cut off at the deadline: a copy that was started is awaited, so it is
        // never left half-known whether the message reached the dead-letter queue.
        outcome.disposition = self.dead_letter(copy, code).await;
        match &outcome.disposition {
            Disposition::DeadLetterFailed { error, .. } => Ending::Retry {
                last_error: format!(
                    "{reason}; the dead-letter copy failed ({error}), so the message stays on its queue"
                ),
            },
            _ => Ending::Fail { reason },
        }
    }

    /// Decodes the command, records that a delivery begins, and runs both upstream calls
    /// concurrently, noting what it learns in `outcome` and `tracked` as it goes so that a
    /// deadline still logs it.
    async fn refund(
        &self,
        delivery: &Delivery,
        correlation_id: &str,
        cutoff: Instant,
        outcome: &mut RecordOutcome,
        tracked: &mut Option<Tracked>,
    ) -> Result<(), RefundFailure> {
        let command = RefundTicket::decode(&delivery.body)
            .map_err(|e| RefundFailure::InvalidCommand(e.to_string()))?;
        outcome.ticket_id = Some(command.ticket_id.to_string());
        if let Some(store) = &self.status {
            // Before the calls, so the status never shows a refund in flight as `accepted`
            // (or a redriven one as `failed`); bounded, so a sick table only delays them.
            let tracked = tracked.insert(Tracked::new(&command, delivery, correlation_id));
            let result = bounded_write(
                cutoff,
                store.begin_attempt(&tracked.request, OffsetDateTime::now_utc()),
            )
            .await;
            outcome.note_status(StatusWrite::Begin, result);
        }
        let call = RefundCall {
            ticket_id: command.ticket_id,
            idempotency_key: command.header.idempotency_key,
            correlation_id: correlation_id.to_owned(),
        };
        let (void, refund) = tokio::join!(
            timed(self.gateway.void_receipt(&call)),
            timed(self.gateway.refund_payment(&call))
        );
        outcome.void_status = status_of(&void.result);
        outcome.refund_status = status_of(&refund.result);
        outcome.void_latency = Some(void.took);
        outcome.refund_latency = Some(refund.took);
        if let Some(tracked) = tracked {
            tracked.progress = progress_of(&void, &refund);
        }
        judge(
            &void.result,
            &refund.result,
            delivery.receive_count,
            self.settings.max_receive_count,
        )
    }

    async fn retry_later(&self, delivery: &Delivery, cutoff: Instant) -> Disposition {
        let seconds = retry_visibility_s(
            delivery.receive_count,
            self.settings.retry_base_s,
            self.settings.retry_max_s,
            (self.settings.jitter)(),
        );
        let Some(receipt_handle) = &delivery.receipt_handle else {
            return Disposition::Retry { visibility_s: None };
        };
        // Best effort: if it fails or runs past the cutoff, the queue's own visibility
        // timeout brings the message back instead.
        let changed = timeout_at(
            cutoff,
            self.source_queue.change_visibility(receipt_handle, seconds),
        )
        .await;
        match changed {
            Ok(Ok(())) => Disposition::Retry {
                visibility_s: Some(seconds),
            },
            Ok(Err(error)) => {
                tracing::warn!(message_id = delivery.message_id.as_deref(), %error, "visibility change failed");
                Disposition::Retry { visibility_s: None }
            }
            Err(_) => Disposition::Retry { visibility_s: None },
        }
    }

    async fn dead_letter(&self, copy: OutboundMessage, code: ErrorCode) -> Disposition {
        match self.dead_letter_queue.send(copy).await {
            Ok(dead_letter_message_id) => Disposition::DeadLettered {
                code,
                dead_letter_message_id,
            },
            Err(error) => Disposition::DeadLetterFailed { code, error },
        }
    }
}

/// Runs one upstream call, noting when it was sent (wall clock, for the status trail)
/// and how long it took (monotonic clock, for the latency metrics).
async fn timed(call: impl Future<Output = UpstreamResult>) -> CallReport {
    let sent_at = OffsetDateTime::now_utc();
    let started = Instant::now();
    let result = call.await;
    CallReport {
        result,
        sent_at,
        took: started.elapsed(),
    }
}

fn status_of(result: &UpstreamResult) -> Option<u16> {
    match result {
        Ok(status) => Some(*status),
        Err(error) => error.status(),
    }
}

/// The message's correlation id when it is a valid header token, else a generated one:
/// every upstream call carries a `Correlation-ID`, and a malformed one must not make the
/// HTTP request itself fail.
fn correlation_id(delivery: &Delivery) -> String {
    delivery
        .correlation_id()
        .and_then(|id| parse_header_token(id.as_bytes()).ok())
        .map(str::to_owned)
        .unwrap_or_else(|| CorrelationId::generate().to_string())
}

/// Deadlines below this (2001-09-09 as epoch milliseconds) are not epoch times:
/// `cargo lambda watch` sends the function's timeout itself (600000) in the deadline
/// header, and the local stack must not see every record as already late.
const EPOCH_MS_FLOOR: u64 = 1_000_000_000_000;

/// The instant at which unfinished records are given up: `deadline - margin`, measured
/// on the monotonic clock from now. A deadline already past gives now.
pub fn cutoff(deadline_ms: u64, margin: Duration) -> Instant {
    /// Far enough for any invocation (Lambda allows 15 minutes), near enough not to overflow.
    const FAR: Duration = Duration::from_secs(24 * 60 * 60);
    let remaining = if deadline_ms < EPOCH_MS_FLOOR {
        Duration::from_millis(deadline_ms)
    } else {
        UNIX_EPOCH
            .checked_add(Duration::from_millis(deadline_ms))
            .and_then(|deadline| deadline.duration_since(SystemTime::now()).ok())
            .unwrap_or(Duration::ZERO)
    };
    Instant::now() + remaining.saturating_sub(margin).min(FAR)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch_ms(time: SystemTime) -> u64 {
        time.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
    }

    #[test]
    fn the_cutoff_is_the_deadline_minus_the_margin() {
        let deadline = epoch_ms(SystemTime::now() + Duration::from_secs(10));
        let left = cutoff(deadline, Duration::from_secs(2)) - Instant::now();
        assert!(
            left > Duration::from_millis(7_500) && left <= Duration::from_secs(8),
            "{left:?}"
        );
    }

    #[test]
    fn a_relative_deadline_from_cargo_lambda_counts_from_now() {
        let left = cutoff(600_000, Duration::from_secs(2)) - Instant::now();
        assert!(
            left > Duration::from_secs(597) && left <= Duration::from_secs(598),
            "{left:?}"
        );
    }

    #[test]
    fn a_past_or_absurd_deadline_does_not_panic() {
        let now = Instant::now();
        assert!(cutoff(0, Duration::from_secs(2)) <= Instant::now());
        assert!(cutoff(EPOCH_MS_FLOOR, Duration::ZERO) <= Instant::now());
        assert!(
            cutoff(epoch_ms(SystemTime::now()) + 1000, Duration::from_secs(2)) <= Instant::now()
        );
        assert!(cutoff(u64::MAX, Duration::ZERO) > now + Duration::from_secs(3600));
    }
}
