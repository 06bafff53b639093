//! The event source: what Lambda's SQS event source mapping does, on one machine.
//!
//! It long-polls the queue, hands each batch to the function as the SQS event Lambda
//! would build, through `cargo lambda watch`'s invoke API, and then settles the batch as
//! Lambda does with `ReportBatchItemFailures`: every message the function did not list in
//! `batchItemFailures` is deleted; a failed invocation deletes nothing, so the queue's
//! visibility timeout brings the whole batch back. Without `ReportBatchItemFailures` (the
//! mapping's `FunctionResponseTypes`) an invocation that answers deletes its whole batch.
//! Up to `MaximumConcurrency` batches are in flight at once, one per poller. The worker's
//! own `ChangeMessageVisibility` calls (its backoff) are left alone.
//!
//! The pure parts ([`sqs_event`], [`settle`]) are separate from the I/O so that the tests
//! check the event's exact shape without a queue and the settling rule without a function.

mod args;
mod delete;
mod event;
mod invoke;
mod poll;
mod settle;

use std::time::Duration;

use aws_sdk_sqs::{
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
    types::{Message, QueueAttributeName},
};

pub use self::{
    args::{EventSourceArgs, REPORT_BATCH_ITEM_FAILURES, reports_batch_item_failures},
    event::{md5_hex, region_of_arn, sqs_event},
    invoke::invoke_url,
    poll::{LONG_POLL_S, MAX_BATCH_SIZE},
    settle::{InvokeError, settle, settle_whole_batch},
};

/// How the event source runs.
#[derive(Debug, Clone)]
pub struct EventSourceConfig {
    pub queue_url: String,
    /// The function's invoke URL (see [`invoke_url`]).
    pub function_url: String,
    /// Messages per invocation, 1..=10 (the template's `BatchSize`).
    pub batch_size: i32,
    /// How long to keep gathering messages for a batch that is not full (the template's
    /// `MaximumBatchingWindowInSeconds`); zero invokes with what one poll returned.
    pub batching_window: Duration,
    /// Most batches in flight at once (the mapping's `ScalingConfig.MaximumConcurrency`):
    /// as many pollers, each receiving and invoking on its own.
    pub maximum_concurrency: usize,
    /// The mapping's `FunctionResponseTypes` holds `ReportBatchItemFailures`: see
    /// [`settle`] and [`settle_whole_batch`].
    pub report_batch_item_failures: bool,
    /// Limit of one invocation. Long: the first call makes `cargo lambda watch` compile
    /// the worker, which takes minutes on a fresh machine.
    pub invoke_timeout: Duration,
    /// How long a refused connection to the invoke API is retried before the batch is
    /// given up (and comes back after its visibility timeout).
    pub connect_patience: Duration,
}

/// What one batch came to, for the log line and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub messages: usize,
    /// Records the function listed as failed (all of them when the invocation failed).
    pub failures: usize,
    pub deleted: usize,
    /// Why the invocation failed, if it did.
    pub invoke_error: Option<String>,
}

/// Start-up and queue errors: logged, and the loop goes on after a pause.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("queue: {0}")]
    Queue(String),
}

/// A short account of an SQS failure: the service's code and message, or the SDK's
/// chain of causes for a failure on the way (timeout, refused connection).
fn queue_error<E, R>(err: SdkError<E, R>) -> SourceError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let detail = match err.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("error"),
            service.message().unwrap_or_default()
        ),
        None => DisplayErrorContext(&err).to_string(),
    };
    SourceError::Queue(detail)
}

/// The event source for one queue and one function.
pub struct EventSource {
    sqs: aws_sdk_sqs::Client,
    http: reqwest::Client,
    config: EventSourceConfig,
    queue_arn: String,
    region: String,
}

impl EventSource {
    /// Reads the queue's ARN (the event's `eventSourceARN`); fails when the queue is not
    /// there, which at start-up is a configuration error worth stopping on.
    pub async fn new(
        sqs: aws_sdk_sqs::Client,
        config: EventSourceConfig,
    ) -> Result<Self, SourceError> {
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&config.queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(queue_error)?;
        let queue_arn = attributes
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .ok_or_else(|| SourceError::Queue("the queue has no QueueArn attribute".into()))?;
        let region = region_of_arn(&queue_arn)
            .map(str::to_owned)
            .or_else(|| sqs.config().region().map(ToString::to_string))
            .unwrap_or_else(|| "us-east-1".into());
        // The project's HTTP stack, which also ignores a developer's HTTP(S)_PROXY: the
        // invoke goes to loopback.
        let http = refund_shared::http::client_builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(config.invoke_timeout)
            .build()
            .map_err(|e| SourceError::Queue(format!("HTTP client: {e}")))?;
        Ok(Self {
            sqs,
            http,
            config,
            queue_arn,
            region,
        })
    }

    pub fn queue_arn(&self) -> &str {
        &self.queue_arn
    }

    /// Polls for ever with `maximum_concurrency` pollers, so that many batches may be in
    /// flight at once, as Lambda's pollers scale up to a mapping's `MaximumConcurrency`.
    /// Ends when the task is dropped.
    pub async fn run(&self) {
        let pollers = (0..self.config.maximum_concurrency.max(1)).map(|_| self.poll());
        futures::future::join_all(pollers).await;
    }

    /// One poller: one batch at a time, one log line per batch; a queue error is logged and
    /// retried, so a briefly absent queue does not stop the local stack.
    async fn poll(&self) {
        loop {
            match self.run_once().await {
                Ok(None) => {}
                Ok(Some(report)) => tracing::info!(
                    messages = report.messages,
                    failures = report.failures,
                    deleted = report.deleted,
                    invoke_error = report.invoke_error.as_deref().unwrap_or(""),
                    "batch"
                ),
                Err(e) => {
                    // A queue that is briefly away (moto restarting): try again shortly.
                    tracing::warn!(error = %e, "poll failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Receives one batch, invokes the function with it and settles it. `None` when the
    /// long poll returned nothing.
    pub async fn run_once(&self) -> Result<Option<BatchReport>, SourceError> {
        let messages = self.receive_batch().await?;
        if messages.is_empty() {
            return Ok(None);
        }
        let event = sqs_event(&messages, &self.queue_arn, &self.region);
        let ids: Vec<&str> = messages.iter().filter_map(Message::message_id).collect();
        let mut report = BatchReport {
            messages: messages.len(),
            ..BatchReport::default()
        };
        let to_delete = match self.invoke(&event, &ids).await {
            Ok(to_delete) => to_delete,
            Err(e) => {
                report.failures = messages.len();
                report.invoke_error = Some(e.to_string());
                return Ok(Some(report));
            }
        };
        report.failures = messages.len() - to_delete.len();
        let handles: Vec<&Message> = messages
            .iter()
            .filter(|m| m.message_id().is_some_and(|id| to_delete.contains(&id)))
            .collect();
        report.deleted = self.delete(&handles).await?;
        Ok(Some(report))
    }
}
