//! One SQS batch in, one `SqsBatchResponse` out (contract section 4), and one ticket's
//! refund from its messages to its event, top to bottom in [`Worker::refund_ticket`].
//!
//! [`Worker`] is generic over its ports (gateway, retry control on the source queue,
//! dead-letter queue, and optionally the refund store and the event bus) so every path
//! runs in tests against scripted twins or moto. The batch is sorted into units (a poison
//! record, or every command of one ticket: [`crate::group`]), the units run concurrently,
//! and then the batch's refund events go out in one `PutEvents` ([`crate::publish`]).
//! Each record ends in exactly one [`Disposition`], decided in one place
//! ([`Worker::dispose`]); only the disposition decides whether the record goes into
//! `batchItemFailures`, and every record is logged once, after its event. The refund
//! store is told what happened ([`crate::status`]) but has no say in it.

use std::{
    convert::Infallible,
    panic::AssertUnwindSafe,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use futures::{FutureExt, StreamExt, stream};
use lambda_runtime::LambdaEvent;
use refund_shared::{
    announce::{Announcement, EventBus, PublishError},
    config::WorkerConfig,
    disabled::Disabled,
    gateway::{Gateway, RefundCall},
    queue::{CommandQueue, VisibilityControl},
    store::{Change, Confirmed, RefundRequest, RefundStore, Transition},
    verdict::{Class, ErrorCode, RefundFailure},
};
use time::OffsetDateTime;
use tokio::time::{Instant, timeout_at};

use crate::{
    backoff::retry_visibility_s,
    calls::Calls,
    dead_letter::dead_letter_copy,
    deadline::{check_budget, cutoff},
    delivery::Delivery,
    group::{self, Member, Unit},
    outcome::{BatchOutcome, Disposition, EventTally, RecordOutcome},
    publish::{announcements, publish},
    status::{self, bounded_write, request_of},
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

/// The refund worker over its ports. `S` is the refund store and `B` the event bus; a
/// worker built by [`Worker::new`] has neither ([`Disabled`]) until [`Worker::with_store`]
/// and [`Worker::with_bus`] give it one.
pub struct Worker<G, V, D, S = Disabled, B = Disabled> {
    gateway: G,
    source_queue: V,
    dead_letter_queue: D,
    settings: Settings,
    store: Option<S>,
    bus: Option<B>,
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
            bus: None,
            budget_checked: AtomicBool::new(false),
        }
    }
}

impl<G, V, D, B> Worker<G, V, D, Disabled, B> {
    /// The same worker recording each refund in `store` (contract section 8); `None`
    /// records nothing, so `main` passes what `REFUND_TABLE_NAME` gave it.
    pub fn with_store<S: RefundStore>(self, store: Option<S>) -> Worker<G, V, D, S, B> {
        Worker {
            gateway: self.gateway,
            source_queue: self.source_queue,
            dead_letter_queue: self.dead_letter_queue,
            settings: self.settings,
            store,
            bus: self.bus,
            budget_checked: self.budget_checked,
        }
    }
}

impl<G, V, D, S> Worker<G, V, D, S, Disabled> {
    /// The same worker announcing each refund's end on `bus` (contract section 9); `None`
    /// publishes nothing, so `main` passes what `EVENT_BUS_NAME` gave it.
    pub fn with_bus<B: EventBus>(self, bus: Option<B>) -> Worker<G, V, D, S, B> {
        Worker {
            gateway: self.gateway,
            source_queue: self.source_queue,
            dead_letter_queue: self.dead_letter_queue,
            settings: self.settings,
            store: self.store,
            bus,
            budget_checked: self.budget_checked,
        }
    }
}

impl<G, V, D, S, B> Worker<G, V, D, S, B> {
    /// The upstream client, so a benchmark can time one call through the same pool.
    pub fn gateway(&self) -> &G {
        &self.gateway
    }

    /// The refund store, so a test can read what was recorded.
    pub fn store(&self) -> Option<&S> {
        self.store.as_ref()
    }

    /// The event bus, so a test can read what was published.
    pub fn bus(&self) -> Option<&B> {
        self.bus.as_ref()
    }

    /// Gives the ports back, so a test can inspect what they were asked to do.
    pub fn into_parts(self) -> (G, V, D) {
        (self.gateway, self.source_queue, self.dead_letter_queue)
    }
}

/// What one unit of the batch came to: each message's outcome, and the refund events its
/// end announces.
struct UnitResult {
    outcomes: Vec<RecordOutcome>,
    announcements: Vec<Announcement>,
}

impl UnitResult {
    fn unannounced(outcomes: Vec<RecordOutcome>) -> Self {
        Self {
            outcomes,
            announcements: Vec::new(),
        }
    }
}

impl<G: Gateway, V: VisibilityControl, D: CommandQueue, S: RefundStore, B: EventBus>
    Worker<G, V, D, S, B>
{
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
        let deliveries: Vec<Delivery> = event.records.into_iter().map(Delivery::from).collect();
        let units: Vec<UnitResult> = stream::iter(group::by_ticket(&deliveries))
            .map(|unit| self.run_unit(&deliveries, unit, cutoff))
            .buffer_unordered(self.settings.max_concurrent_records.max(1))
            .collect()
            .await;
        let (mut records, mut announced) = (Vec::new(), Vec::new());
        for unit in units {
            records.extend(unit.outcomes);
            announced.extend(unit.announcements);
        }
        let events = match &self.bus {
            Some(bus) => Some(
                self.announce(bus, &deliveries, &announced, &mut records, cutoff)
                    .await,
            ),
            None => None,
        };
        records.sort_by_key(|record| record.index);
        for record in &records {
            record.log();
        }
        BatchOutcome { records, events }
    }

    /// One unit; a panic fails that unit's records only.
    async fn run_unit(&self, deliveries: &[Delivery], unit: Unit, cutoff: Instant) -> UnitResult {
        let indexes = unit.indexes();
        let run = async {
            match unit {
                Unit::Poison { index, error } => {
                    let outcome = self.refuse_poison(index, &deliveries[index], error, cutoff);
                    UnitResult::unannounced(vec![outcome.await])
                }
                Unit::Ticket { members, .. } => {
                    self.refund_ticket(deliveries, &members, cutoff).await
                }
            }
        };
        let panicked = |index: usize| RecordOutcome {
            disposition: Disposition::Panicked,
            ..RecordOutcome::started(index, &deliveries[index])
        };
        AssertUnwindSafe(run)
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                UnitResult::unannounced(indexes.into_iter().map(panicked).collect())
            })
    }

    /// A body that is not a command: dead-lettered as `invalid_command`, announced never.
    async fn refuse_poison(
        &self,
        index: usize,
        delivery: &Delivery,
        error: String,
        cutoff: Instant,
    ) -> RecordOutcome {
        let mut outcome = RecordOutcome::started(index, delivery);
        if Instant::now() >= cutoff {
            return outcome;
        }
        let failure = RefundFailure::InvalidCommand(error);
        outcome.class = Some(failure.class());
        outcome.disposition = self.dispose(delivery, &failure, cutoff).await;
        outcome.failure = Some(failure);
        outcome
    }

    /// Every message of one ticket, as one refund: the first message carries the attempt
    /// (its correlation id, requester and trace), and each message is then judged by its
    /// own receive count.
    async fn refund_ticket(
        &self,
        deliveries: &[Delivery],
        members: &[Member],
        cutoff: Instant,
    ) -> UnitResult {
        let mut outcomes: Vec<RecordOutcome> = members
            .iter()
            .map(|member| RecordOutcome {
                ticket_id: Some(member.command.ticket_id),
                foreign_key: member.command.has_foreign_key(),
                ..RecordOutcome::started(member.index, &deliveries[member.index])
            })
            .collect();
        let (Some(lead), true) = (members.first(), Instant::now() < cutoff) else {
            return UnitResult::unannounced(outcomes);
        };
        let delivery = &deliveries[lead.index];
        let key = lead.command.key();
        let correlation_id = outcomes[0].correlation_id.clone();
        let request = request_of(&lead.command, delivery, &correlation_id);

        // 1. `begin`, before the calls, so the status never shows a refund in flight as
        // `accepted` (or a redriven one as `failed`). The record says which calls are
        // confirmed already; without one, none is.
        let begun = self
            .write_status(&request, Transition::Begin, cutoff, &mut outcomes)
            .await;
        let confirmed = begun.map_or(Ok(Confirmed::default()), |change| {
            change.record().confirmed(key)
        });

        // 2. The calls the record does not confirm, under K. A call confirmed under another
        // key stops them all (contract section 3).
        let calls = match confirmed {
            Ok(confirmed) => {
                let call = RefundCall {
                    ticket_id: lead.command.ticket_id,
                    idempotency_key: key,
                    correlation_id,
                    trace: delivery.trace.clone(),
                };
                match Calls::make(&self.gateway, &call, confirmed, cutoff).await {
                    Some(calls) => Ok(calls),
                    // The cutoff came first: every message is unfinished.
                    None => return UnitResult::unannounced(outcomes),
                }
            }
            Err(recorded) => Err(RefundFailure::ForeignKeyConflict {
                recorded: recorded.to_string(),
            }),
        };

        // 3. Each message's verdict, by its own receive count, and its disposition.
        for (position, outcome) in outcomes.iter_mut().enumerate() {
            let delivery = &deliveries[outcome.index];
            outcome.calls = calls.as_ref().ok().cloned();
            outcome.carries_calls = position == 0;
            let verdict = match &calls {
                Ok(calls) => calls.verdict(delivery.receive_count, self.settings.max_receive_count),
                Err(conflict) => Err(conflict.clone()),
            };
            match verdict {
                Ok(()) => {
                    outcome.class = Some(Class::Done);
                    outcome.disposition = Disposition::Done;
                }
                Err(failure) => {
                    outcome.class = Some(failure.class());
                    outcome.disposition = self.dispose(delivery, &failure, cutoff).await;
                    outcome.failure = Some(failure);
                }
            }
        }

        // 4. The closing status write, once the dispositions are settled, so it says what
        // became of the messages and a write that fails cannot change that. It may use
        // half the deadline margin: the messages are about to be deleted or were
        // dead-lettered, so no later delivery would correct a record left `processing`,
        // and the other half still leaves time to answer Lambda.
        let progress = calls.as_ref().map(Calls::progress).unwrap_or_default();
        if let Some(closing) = status::closing(&outcomes, progress) {
            let limit = cutoff + self.settings.deadline_margin / 2;
            self.write_status(&request, closing, limit, &mut outcomes)
                .await;
        }

        // 5. The ticket's events, published with the whole batch's.
        let announcements = match self.bus {
            Some(_) => announcements(deliveries, members, &mut outcomes),
            None => Vec::new(),
        };
        UnitResult {
            outcomes,
            announcements,
        }
    }

    /// The one decision of a failed message's fate: back to its queue with the backoff,
    /// or copied to the dead-letter queue under the failure's code. A refund whose event
    /// the bus refused is dead-lettered only at the last receive and before the cutoff
    /// (past it no copy is started; the redrive policy takes the message at its next
    /// receive instead).
    async fn dispose(
        &self,
        delivery: &Delivery,
        failure: &RefundFailure,
        cutoff: Instant,
    ) -> Disposition {
        let Some(code) = failure.error_code() else {
            return Disposition::Retry {
                visibility_s: self.retry_later(delivery, cutoff).await,
            };
        };
        if let RefundFailure::EventUnpublished { receive_count, .. } = failure
            && (*receive_count < self.settings.max_receive_count || Instant::now() >= cutoff)
        {
            return Disposition::EventUnpublished {
                visibility_s: self.retry_later(delivery, cutoff).await,
            };
        }
        self.dead_letter(delivery, code, failure).await
    }

    /// Writes `transition` to the ticket's status record within `limit` and notes how it
    /// went on each of `outcomes`; what the write did, when it was done. Without a store,
    /// nothing.
    async fn write_status(
        &self,
        request: &RefundRequest,
        transition: Transition,
        limit: Instant,
        outcomes: &mut [RecordOutcome],
    ) -> Option<Change> {
        let store = self.store.as_ref()?;
        let name = transition.name();
        let write = store.record(request, transition, OffsetDateTime::now_utc());
        let result = bounded_write(limit, write).await;
        for outcome in outcomes {
            outcome.note_status(name, &result);
        }
        result.ok()
    }

    /// Publishes the batch's refund events, and hands back each done record whose
    /// `TicketRefunded` the bus refused. The status record stays `succeeded`: the refund
    /// is done, only its announcement is not.
    async fn announce(
        &self,
        bus: &B,
        deliveries: &[Delivery],
        announced: &[Announcement],
        records: &mut [RecordOutcome],
        cutoff: Instant,
    ) -> EventTally {
        let (tally, refused) = publish(bus, announced, cutoff).await;
        for (event_id, error) in refused {
            let waiting = records
                .iter_mut()
                .filter(|r| r.disposition == Disposition::Done && r.event_id == Some(event_id));
            for outcome in waiting {
                self.unpublished(&deliveries[outcome.index], outcome, &error, cutoff)
                    .await;
            }
        }
        tally
    }

    /// A done record whose event the bus refused: disposed of as an `event_unpublished`
    /// failure, its class still `done` unless it is dead-lettered.
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
        outcome.disposition = self.dispose(delivery, &failure, cutoff).await;
        if !matches!(outcome.disposition, Disposition::EventUnpublished { .. }) {
            outcome.class = Some(failure.class());
        }
        outcome.failure = Some(failure);
    }

    /// Sets the message's visibility by the backoff; the seconds set, or `None` when the
    /// queue's own visibility timeout applies instead.
    async fn retry_later(&self, delivery: &Delivery, cutoff: Instant) -> Option<u32> {
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
