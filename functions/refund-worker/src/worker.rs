//! One SQS batch in, one `SqsBatchResponse` out (contract section 4).
//!
//! [`Worker`] is generic over its ports (gateway, retry control on the source queue,
//! dead-letter queue, and optionally the refund store and the event bus) so every path
//! runs in tests against scripted twins or moto. The batch is sorted into units (a poison
//! record, or every command of one ticket: [`crate::group`]), the units run concurrently
//! ([`crate::ticket`]), and then the batch's refund events go out in one `PutEvents`
//! ([`crate::publish`]). Each record ends in exactly one [`Disposition`]; only the
//! disposition decides whether the record goes into `batchItemFailures`, and every record
//! is logged once, after its event. The refund store is told what happened (see
//! [`crate::recorder`]) but has no say in it.

use std::{
    convert::Infallible,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use futures::{StreamExt, stream};
use lambda_runtime::LambdaEvent;
use refund_shared::{
    announce::{EventBus, PublishError},
    config::WorkerConfig,
    disabled::Disabled,
    gateway::Gateway,
    outcome::{ErrorCode, RefundFailure},
    queue::{CommandQueue, VisibilityControl},
    store::RefundStore,
};
use tokio::time::Instant;

use crate::{
    deadline::{check_budget, cutoff},
    delivery::Delivery,
    group,
    outcome::{BatchOutcome, Disposition, EventTally, RecordOutcome},
    publish::publish,
    ticket::Settled,
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
    pub(crate) gateway: G,
    pub(crate) source_queue: V,
    pub(crate) dead_letter_queue: D,
    pub(crate) settings: Settings,
    pub(crate) store: Option<S>,
    pub(crate) bus: Option<B>,
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
        let mut units: Vec<_> = stream::iter(group::by_ticket(&deliveries))
            .map(|unit| self.settle_unit(&deliveries, unit, cutoff))
            .buffer_unordered(self.settings.max_concurrent_records.max(1))
            .collect()
            .await;
        let events = match &self.bus {
            Some(bus) => Some(self.announce(bus, &deliveries, &mut units, cutoff).await),
            None => None,
        };
        let mut records: Vec<(usize, RecordOutcome)> =
            units.into_iter().flat_map(|unit| unit.records).collect();
        records.sort_by_key(|(index, _)| *index);
        let records: Vec<RecordOutcome> = records.into_iter().map(|(_, outcome)| outcome).collect();
        for record in &records {
            record.log();
        }
        BatchOutcome { records, events }
    }

    /// Publishes the batch's refund events and settles each done record whose event the
    /// bus refused.
    async fn announce(
        &self,
        bus: &B,
        deliveries: &[Delivery],
        units: &mut [Settled],
        cutoff: Instant,
    ) -> EventTally {
        let (tally, refused) = publish(bus, units, cutoff).await;
        for (index, error) in refused {
            let mut records = units.iter_mut().flat_map(|unit| unit.records.iter_mut());
            if let Some((_, outcome)) = records.find(|(i, _)| *i == index) {
                self.unpublished(&deliveries[index], outcome, &error, cutoff)
                    .await;
            }
        }
        tally
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
