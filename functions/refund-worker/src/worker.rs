//! One SQS batch in, one `SqsBatchResponse` out (contract section 4).
//!
//! [`Worker`] is generic over its ports (gateway, retry control on the source queue,
//! dead-letter queue, and optionally the refund store) so every path runs in tests
//! against scripted twins or moto. Each record ends in exactly one [`Disposition`]; only
//! the disposition decides whether the record goes into `batchItemFailures`, and every
//! record is logged once. The refund store is told what happened (see [`crate::recorder`])
//! but has no say in it.

use std::{
    convert::Infallible,
    panic::AssertUnwindSafe,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use futures::{FutureExt, StreamExt, stream};
use lambda_runtime::LambdaEvent;
use refund::{
    command::RefundTicket,
    config::WorkerConfig,
    gateway::Gateway,
    outcome::{Class, ErrorCode, RefundFailure},
    queue::{CommandQueue, VisibilityControl},
    store::{Disabled, Progress, RefundEvent, RefundRequest, RefundStore},
};
use time::OffsetDateTime;
use tokio::time::{Instant, timeout_at};

use crate::{
    backoff::retry_visibility_s,
    dead_letter::dead_letter_copy,
    deadline::{check_budget, cutoff},
    delivery::Delivery,
    outcome::{BatchOutcome, Disposition, RecordOutcome},
    recorder::{bounded_write, request_of},
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

/// The refund worker over its ports. `S` is the refund store; a worker built by
/// [`Worker::new`] has none ([`Disabled`]) until [`Worker::with_store`] gives it one.
pub struct Worker<G, V, D, S = Disabled> {
    gateway: G,
    source_queue: V,
    dead_letter_queue: D,
    settings: Settings,
    store: Option<S>,
    /// Whether the time budget was checked (at the first event, see [`check_budget`]).
    budget_checked: AtomicBool,
}

impl<G, V, D> Worker<G, V, D>
where
    G: Gateway,
    V: VisibilityControl,
    D: CommandQueue,
{
    /// A worker that records nothing (contract sections 1-4 exactly).
    pub fn new(gateway: G, source_queue: V, dead_letter_queue: D, settings: Settings) -> Self {
        Self {
            gateway,
            source_queue,
            dead_letter_queue,
            settings,
            store: None,
            budget_checked: AtomicBool::new(false),
        }
    }

    /// The same worker recording each refund in `store` (contract section 8); `None`
    /// records nothing, so `main` passes what `REFUND_TABLE_NAME` gave it.
    pub fn with_store<S: RefundStore>(self, store: Option<S>) -> Worker<G, V, D, S> {
        Worker {
            gateway: self.gateway,
            source_queue: self.source_queue,
            dead_letter_queue: self.dead_letter_queue,
            settings: self.settings,
            store,
            budget_checked: self.budget_checked,
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

    /// The refund store, so a test can read what was recorded.
    pub fn store(&self) -> Option<&S> {
        self.store.as_ref()
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
        if !self.budget_checked.swap(true, Ordering::Relaxed) {
            check_budget(event.context.deadline, self.settings.deadline_margin);
        }
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
                    let outcome = AssertUnwindSafe(self.handle_record(&delivery, cutoff))
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|_| RecordOutcome {
                            disposition: Disposition::Panicked,
                            ..RecordOutcome::started(&delivery)
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

    /// One record, from its body to its disposition and the status write that records it.
    async fn handle_record(&self, delivery: &Delivery, cutoff: Instant) -> RecordOutcome {
        let mut outcome = RecordOutcome::started(delivery);
        if Instant::now() >= cutoff {
            return outcome;
        }
        let command = match RefundTicket::decode(&delivery.body) {
            Ok(command) => command,
            Err(error) => {
                let failure = RefundFailure::InvalidCommand(error.to_string());
                outcome.class = Some(failure.class());
                outcome.error = Some(failure.to_string());
                outcome.disposition = self
                    .dead_letter(delivery, ErrorCode::InvalidCommand, &failure)
                    .await;
                return outcome;
            }
        };
        outcome.ticket_id = Some(command.ticket_id);
        outcome.foreign_key = command.has_foreign_key();
        let request = self
            .store
            .as_ref()
            .map(|_| request_of(&command, delivery, &outcome.correlation_id));
        // Past the cutoff the upstream calls are abandoned: both are idempotent on K, so
        // the redelivery repeats them safely.
        let recording = self.store.as_ref().zip(request.as_ref());
        let Some((verdict, progress)) = crate::attempt::attempt(
            &self.gateway,
            recording,
            self.settings.max_receive_count,
            &command,
            &mut outcome,
            delivery,
            cutoff,
        )
        .await
        else {
            return outcome;
        };
        let event = match verdict {
            Ok(()) => {
                outcome.class = Some(Class::Done);
                outcome.disposition = Disposition::Done;
                RefundEvent::Succeed { progress }
            }
            Err(failure) => {
                outcome.class = Some(failure.class());
                outcome.error = Some(failure.to_string());
                let (disposition, event) = self.settle(delivery, &failure, progress, cutoff).await;
                outcome.disposition = disposition;
                event
            }
        };
        if let Some(request) = &request {
            self.record_ending(request, event, cutoff, &mut outcome)
                .await;
        }
        outcome
    }

    /// Hands a failed record back to its queue or copies it to the dead-letter queue.
    /// Returns the disposition and the event that records it.
    async fn settle(
        &self,
        delivery: &Delivery,
        failure: &RefundFailure,
        progress: Progress,
        cutoff: Instant,
    ) -> (Disposition, RefundEvent) {
        // The record holds the public reason (contract 1a); the full text is in the
        // outcome's log line and the dead-letter copy.
        let Some(code) = failure.error_code() else {
            let last_error = failure.public_reason();
            let disposition = self.retry_later(delivery, cutoff).await;
            return (
                disposition,
                RefundEvent::Retry {
                    last_error,
                    progress,
                },
            );
        };
        let disposition = self.dead_letter(delivery, code, failure).await;
        let reason = failure.public_reason();
        let event = match &disposition {
            // The message stays on its queue and comes back: still processing.
            Disposition::DeadLetterFailed { .. } => RefundEvent::Retry {
                last_error: reason,
                progress,
            },
            _ => RefundEvent::Fail { reason, progress },
        };
        (disposition, event)
    }

    /// The ending's status write, once the disposition is settled, so it says what became
    /// of the message and a write that fails cannot change that. It may use half the
    /// deadline margin: the message is about to be deleted or was dead-lettered, so no
    /// later delivery would correct a record left `processing`, and the other half still
    /// leaves time to answer Lambda.
    async fn record_ending(
        &self,
        request: &RefundRequest,
        event: RefundEvent,
        cutoff: Instant,
        outcome: &mut RecordOutcome,
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
        outcome.note_status(name, &result);
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

    /// Copies the message, with the failure's full text, to the dead-letter queue. Not cut
    /// off at the deadline: a copy that was started is awaited, so it is never left
    /// half-known whether the message reached the dead-letter queue.
    async fn dead_letter(
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
