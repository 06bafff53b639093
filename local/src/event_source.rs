//! The event source: what Lambda's SQS event source mapping does, on one machine.
//!
//! It long-polls the queue, hands each batch to the function as the SQS event Lambda
//! would build, through `cargo lambda watch`'s invoke API, and then settles the batch as
//! Lambda does with `ReportBatchItemFailures`: every message the function did not list in
//! `batchItemFailures` is deleted; a failed invocation deletes nothing, so the queue's
//! visibility timeout brings the whole batch back. The worker's own
//! `ChangeMessageVisibility` calls (its backoff) are left alone.
//!
//! The pure parts ([`sqs_event`], [`settle`]) are separate from the I/O so that the tests
//! check the event's exact shape without a queue and the settling rule without a function.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use aws_sdk_sqs::{
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
    types::{
        DeleteMessageBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName,
        QueueAttributeName,
    },
};
use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use md5::{Digest, Md5};
use serde_json::{Map, Value, json};

/// The most messages one `ReceiveMessage` returns, and the template's largest batch.
pub const MAX_BATCH_SIZE: i32 = 10;
/// SQS's longest long poll.
pub const LONG_POLL_S: i32 = 20;

/// The path of the Lambda Invoke API, which `cargo lambda watch` serves (and
/// `cargo lambda invoke` calls) on its invoke port.
pub fn invoke_url(address: &str, port: u16, function: &str) -> String {
    format!("http://{address}:{port}/2015-03-31/functions/{function}/invocations")
}

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
    /// Limit of one invocation. Long: the first call makes `cargo lambda watch` compile
    /// the worker, which takes minutes on a fresh machine.
    pub invoke_timeout: Duration,
    /// How long a refused connection to the invoke API is retried before the batch is
    /// given up (and comes back after its visibility timeout).
    pub connect_patience: Duration,
}

/// Builds the SQS event Lambda hands the function for `messages` from the queue
/// `queue_arn`, field for field (the shape `aws_lambda_events::sqs::SqsEvent` reads).
pub fn sqs_event(messages: &[Message], queue_arn: &str, region: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|message| sqs_record(message, queue_arn, region))
        .collect();
    json!({ "Records": records })
}

fn sqs_record(message: &Message, queue_arn: &str, region: &str) -> Value {
    let body = message.body().unwrap_or_default();
    let attributes: Map<String, Value> = message
        .attributes()
        .into_iter()
        .flatten()
        .map(|(name, value)| (name.as_str().to_owned(), Value::from(value.as_str())))
        .collect();
    let message_attributes: Map<String, Value> = message
        .message_attributes()
        .into_iter()
        .flatten()
        .map(|(name, value)| (name.clone(), message_attribute(value)))
        .collect();
    let mut record = json!({
        "messageId": message.message_id().unwrap_or_default(),
        "receiptHandle": message.receipt_handle().unwrap_or_default(),
        "body": body,
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": md5_hex(body),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    });
    // Lambda passes SQS's digest of the attributes through when there are attributes.
    if let (Some(digest), Some(fields)) =
        (message.md5_of_message_attributes(), record.as_object_mut())
    {
        fields.insert("md5OfMessageAttributes".into(), Value::from(digest));
    }
    record
}

/// A message attribute as Lambda writes it: the list fields are always present (and
/// always empty, as SQS has never filled them), binary values are base64.
fn message_attribute(value: &MessageAttributeValue) -> Value {
    let mut attribute = Map::new();
    if let Some(text) = value.string_value() {
        attribute.insert("stringValue".into(), Value::from(text));
    }
    if let Some(blob) = value.binary_value() {
        attribute.insert(
            "binaryValue".into(),
            Value::from(BASE64.encode(blob.as_ref())),
        );
    }
    attribute.insert("stringListValues".into(), json!([]));
    attribute.insert("binaryListValues".into(), json!([]));
    attribute.insert("dataType".into(), Value::from(value.data_type()));
    Value::Object(attribute)
}

/// The lowercase hex MD5 of `body`, as SQS and Lambda report it.
pub fn md5_hex(body: &str) -> String {
    Md5::digest(body.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The region of an ARN (`arn:partition:service:region:account:resource`).
pub fn region_of_arn(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|region| !region.is_empty())
}

/// Why an invocation counts as failed: the whole batch stays on the queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    #[error("invoke API unreachable: {0}")]
    Unreachable(String),
    #[error("invocation answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("function error: {0}")]
    Function(String),
    #[error("response is not a batch response: {0}")]
    BadResponse(String),
}

/// Reads the function's answer to a batch of `message_ids` and returns the ids to delete,
/// in batch order, with Lambda's rules for `ReportBatchItemFailures`:
///
/// - a non-2xx answer, a function error (`X-Amz-Function-Error`, or an error object as
///   body), or a body that is not a batch response fails the whole invocation;
/// - `null`, `{}` and an empty or null `batchItemFailures` mean every record succeeded;
/// - an item whose `itemIdentifier` is missing, empty or not in the batch makes Lambda
///   treat the whole batch as failed, so nothing is deleted.
pub fn settle<'a>(
    message_ids: &[&'a str],
    status: u16,
    function_error: Option<&str>,
    body: &[u8],
) -> Result<Vec<&'a str>, InvokeError> {
    let text = || {
        String::from_utf8_lossy(body)
            .chars()
            .take(500)
            .collect::<String>()
    };
    if !(200..300).contains(&status) {
        return Err(InvokeError::Status {
            status,
            body: text(),
        });
    }
    if let Some(kind) = function_error {
        return Err(InvokeError::Function(format!("{kind}: {}", text())));
    }
    let response: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| InvokeError::BadResponse(e.to_string()))?
    };
    let failures = match &response {
        Value::Null => Vec::new(),
        Value::Object(fields)
            if fields.contains_key("errorType") || fields.contains_key("errorMessage") =>
        {
            return Err(InvokeError::Function(text()));
        }
        Value::Object(fields) => match fields.get("batchItemFailures") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(_) => return Err(InvokeError::BadResponse(text())),
        },
        _ => return Err(InvokeError::BadResponse(text())),
    };
    let mut failed = HashSet::new();
    for item in &failures {
        let id = item
            .get("itemIdentifier")
            .and_then(Value::as_str)
            .filter(|id| message_ids.contains(id))
            .ok_or_else(|| {
                InvokeError::BadResponse(format!("invalid batch item failure {item}"))
            })?;
        failed.insert(id);
    }
    Ok(message_ids
        .iter()
        .copied()
        .filter(|id| !failed.contains(id))
        .collect())
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

/// `err` and its causes on one line: reqwest's own message rarely says what happened.
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
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
        let http = refund::http::client_builder()
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

    /// Polls for ever, one log line per batch; a queue error is logged and retried, so a
    /// briefly absent queue does not stop the local stack. Ends when the task is dropped.
    pub async fn run(&self) {
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

    /// Up to `batch_size` messages: one long poll, then, within the batching window, more
    /// polls until the batch is full.
    async fn receive_batch(&self) -> Result<Vec<Message>, SourceError> {
        let batch_size = self.config.batch_size.clamp(1, MAX_BATCH_SIZE);
        let mut messages = self.receive(batch_size, LONG_POLL_S).await?;
        if messages.is_empty() || self.config.batching_window.is_zero() {
            return Ok(messages);
        }
        let window_ends = Instant::now() + self.config.batching_window;
        while let Some(left) = window_ends.checked_duration_since(Instant::now()) {
            let missing = batch_size - i32::try_from(messages.len()).unwrap_or(batch_size);
            if missing <= 0 || left.is_zero() {
                break;
            }
            let wait = i32::try_from(left.as_secs())
                .unwrap_or(LONG_POLL_S)
                .min(LONG_POLL_S);
            let more = self.receive(missing, wait).await?;
            if more.is_empty() && wait == 0 {
                break;
            }
            messages.extend(more);
        }
        Ok(messages)
    }

    async fn receive(&self, max: i32, wait_s: i32) -> Result<Vec<Message>, SourceError> {
        let output = self
            .sqs
            .receive_message()
            .queue_url(&self.config.queue_url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait_s)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .customize()
            // The long poll outlasts the project's 5 s SQS operation timeout.
            .config_override(
                aws_sdk_sqs::config::Config::builder().timeout_config(
                    aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
                        .operation_attempt_timeout(Duration::from_secs(
                            u64::try_from(wait_s).unwrap_or(0) + 10,
                        ))
                        .operation_timeout(Duration::from_secs(
                            u64::try_from(wait_s).unwrap_or(0) + 15,
                        ))
                        .build(),
                ),
            )
            .send()
            .await
            .map_err(queue_error)?;
        Ok(output.messages.unwrap_or_default())
    }

    /// Invokes the function; a refused connection (the watch server starting or
    /// restarting) is retried for `connect_patience`.
    async fn invoke<'a>(
        &self,
        event: &Value,
        ids: &[&'a str],
    ) -> Result<Vec<&'a str>, InvokeError> {
        let started = Instant::now();
        let mut refused = 0_u32;
        let response = loop {
            match self
                .http
                .post(&self.config.function_url)
                .json(event)
                .send()
                .await
            {
                Ok(response) => break response,
                Err(e) if e.is_connect() && started.elapsed() < self.config.connect_patience => {
                    // One line, not one a second: the watch server may take a while.
                    if refused == 0 {
                        tracing::info!(url = %self.config.function_url, "invoke API not up yet, retrying");
                    }
                    refused += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(InvokeError::Unreachable(with_causes(&e))),
            }
        };
        let status = response.status().as_u16();
        let function_error = response
            .headers()
            .get("X-Amz-Function-Error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(|e| {
            InvokeError::Unreachable(format!("reading the answer: {}", with_causes(&e)))
        })?;
        settle(ids, status, function_error.as_deref(), &body)
    }

    /// Deletes `messages` (at most 10, one `DeleteMessageBatch`); returns how many went.
    async fn delete(&self, messages: &[&Message]) -> Result<usize, SourceError> {
        if messages.is_empty() {
            return Ok(0);
        }
        let entries = messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(m.receipt_handle().map(str::to_owned))
                    .build()
                    .ok()
            })
            .collect();
        let output = self
            .sqs
            .delete_message_batch()
            .queue_url(&self.config.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(queue_error)?;
        for failure in output.failed() {
            tracing::warn!(id = failure.id(), code = failure.code(), "delete failed");
        }
        Ok(output.successful().len())
    }
}

/// The event source's command line.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "event-source",
    about = "Feeds the RefundTicket queue to refund-worker under `cargo lambda watch`, as Lambda's SQS event source mapping does"
)]
pub struct EventSourceArgs {
    /// The queue to poll.
    #[arg(long, env = "REFUND_QUEUE_URL")]
    pub queue_url: String,
    /// The function's invoke URL; default: cargo lambda watch's invoke API on
    /// --invoke-address:--invoke-port for --function.
    #[arg(long)]
    pub function_url: Option<String>,
    #[arg(long, default_value = "127.0.0.1")]
    pub invoke_address: String,
    /// `cargo lambda watch --invoke-port` (the local stack's API_PORT).
    #[arg(long, env = "API_PORT", default_value_t = 9000)]
    pub invoke_port: u16,
    #[arg(long, default_value = "refund-worker")]
    pub function: String,
    /// Messages per invocation (the template's BatchSize).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i32).range(1..=10))]
    pub batch_size: i32,
    /// Seconds to gather a batch that is not full (the template's BatchingWindowSeconds).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=300))]
    pub batching_window_s: u64,
    /// Limit of one invocation; the first one waits for the worker to compile.
    #[arg(long, default_value_t = 900)]
    pub invoke_timeout_s: u64,
    /// How long a refused connection to the invoke API is retried per batch.
    #[arg(long, default_value_t = 300)]
    pub connect_patience_s: u64,
}

impl EventSourceArgs {
    pub fn config(&self) -> EventSourceConfig {
        EventSourceConfig {
            queue_url: self.queue_url.clone(),
            function_url: self.function_url.clone().unwrap_or_else(|| {
                invoke_url(&self.invoke_address, self.invoke_port, &self.function)
            }),
            batch_size: self.batch_size,
            batching_window: Duration::from_secs(self.batching_window_s),
            invoke_timeout: Duration::from_secs(self.invoke_timeout_s),
            connect_patience: Duration::from_secs(self.connect_patience_s),
        }
    }
}
