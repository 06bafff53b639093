//! The queue port: how a command leaves a function.
//!
//! [`CommandQueue`] is what the handlers see; [`SqsQueue`] is the AWS adapter and
//! [`InMemoryQueue`] the twin that handler tests run against without a network.
//! [`VisibilityControl`] is the worker's retry port: it decides when a message it could
//! not finish comes back.

use std::{collections::BTreeMap, future::Future, sync::Mutex, time::Duration};

use aws_config::{ConfigLoader, timeout::TimeoutConfig};
use aws_sdk_sqs::{
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
    types::MessageAttributeValue,
};

/// SQS operations give up after this long in all, retries included, so a sick queue
/// answers the caller with 503 long before API Gateway's 30 s integration limit.
pub const SQS_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// A message as it goes on a queue: a body and String attributes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboundMessage {
    pub body: String,
    pub attributes: BTreeMap<String, String>,
}

/// How a queue operation failed, classified once for every caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// Timed out, unreachable, throttled or a server error: trying later may work.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// The queue refused the request (missing queue, no permission, bad request).
    #[error("queue refused the request: {0}")]
    Rejected(String),
}

/// Puts messages on one queue.
pub trait CommandQueue: Send + Sync {
    /// Sends a message and returns the id the queue gave it.
    fn send(
        &self,
        message: OutboundMessage,
    ) -> impl Future<Output = Result<String, QueueError>> + Send;
}

/// The longest visibility timeout SQS accepts, in seconds (12 hours).
pub const MAX_VISIBILITY_TIMEOUT_S: u32 = 43_200;

/// Delays the next delivery of a received message.
pub trait VisibilityControl: Send + Sync {
    /// Makes the message behind `receipt_handle` invisible for `seconds` from now.
    fn change_visibility(
        &self,
        receipt_handle: &str,
        seconds: u32,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// The SQS timeouts of every client this project builds: short connects and attempts,
/// [`SQS_OPERATION_TIMEOUT`] in all.
pub fn sqs_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(SQS_OPERATION_TIMEOUT)
        .build()
}

/// Builds an SQS client once, at start-up, from `loader` (normally
/// [`crate::http::aws_config_loader`], which honours `AWS_ENDPOINT_URL`) with [`sqs_timeouts`].
pub async fn sqs_client(loader: ConfigLoader) -> aws_sdk_sqs::Client {
    let config = loader
        .http_client(crate::http::aws_http_client())
        .timeout_config(sqs_timeouts())
        .load()
        .await;
    aws_sdk_sqs::Client::new(&config)
}

/// One SQS queue, reached through a shared client.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl CommandQueue for SqsQueue {
    async fn send(&self, message: OutboundMessage) -> Result<String, QueueError> {
        let attributes = message
            .attributes
            .into_iter()
            .map(|(name, value)| {
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(value)
                    .build()
                    .map(|value| (name, value))
                    .map_err(|e| QueueError::Rejected(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        let output = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(message.body)
            .set_message_attributes(Some(attributes))
            .send()
            .await
            .map_err(classify)?;
        Ok(output.message_id.unwrap_or_default())
    }
}

impl VisibilityControl for SqsQueue {
    async fn change_visibility(
        &self,
        receipt_handle: &str,
        seconds: u32,
    ) -> Result<(), QueueError> {
        let seconds = seconds.min(MAX_VISIBILITY_TIMEOUT_S);
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(i32::try_from(seconds).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}

/// Sorts an SDK failure into "try later" and "will not work", the one place that knows
/// which SQS answers are which.
pub fn classify<E, R>(err: SdkError<E, R>) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let transient = match &err {
        SdkError::ConstructionFailure(_) => false,
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            code.contains("Throttl")
                || code.contains("ServiceUnavailable")
                || code == "InternalError"
        }
        _ => true,
    };
    let detail = bounded(DisplayErrorContext(&err).to_string());
    if transient {
        QueueError::Unavailable(detail)
    } else {
        QueueError::Rejected(detail)
    }
}

/// The longest SDK error text a [`QueueError`] keeps: enough for the code and message an
/// operator needs, and a bound on what an answer can put into the log lines that carry it.
pub const MAX_ERROR_DETAIL_BYTES: usize = 512;

fn bounded(detail: String) -> String {
    crate::text::bounded(detail, MAX_ERROR_DETAIL_BYTES)
}

/// The in-memory twin of [`SqsQueue`]: keeps what was sent, or fails on demand.
#[derive(Debug, Default)]
pub struct InMemoryQueue {
    sent: Mutex<Vec<OutboundMessage>>,
    visibility_changes: Mutex<Vec<(String, u32)>>,
    failure: Mutex<Option<QueueError>>,
}

impl InMemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// A queue whose every send and visibility change fails with `error`.
    pub fn failing(error: QueueError) -> Self {
        let queue = Self::default();
        *lock(&queue.failure) = Some(error);
        queue
    }

    /// Every `(receipt_handle, seconds)` asked of [`VisibilityControl`], in order.
    pub fn visibility_changes(&self) -> Vec<(String, u32)> {
        lock(&self.visibility_changes).clone()
    }

    /// Everything sent so far, in order.
    pub fn sent(&self) -> Vec<OutboundMessage> {
        lock(&self.sent).clone()
    }
}

impl CommandQueue for InMemoryQueue {
    async fn send(&self, message: OutboundMessage) -> Result<String, QueueError> {
        if let Some(error) = lock(&self.failure).clone() {
            return Err(error);
        }
        let mut sent = lock(&self.sent);
        sent.push(message);
        Ok(format!("in-memory-{}", sent.len()))
    }
}

impl VisibilityControl for InMemoryQueue {
    async fn change_visibility(
        &self,
        receipt_handle: &str,
        seconds: u32,
    ) -> Result<(), QueueError> {
        if let Some(error) = lock(&self.failure).clone() {
            return Err(error);
        }
        lock(&self.visibility_changes).push((receipt_handle.to_owned(), seconds));
        Ok(())
    }
}

/// A poisoned lock only means another test thread panicked; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_detail_is_bounded_on_a_char_boundary() {
        assert_eq!(bounded("AccessDenied".into()), "AccessDenied");
        let cut = bounded("ü".repeat(MAX_ERROR_DETAIL_BYTES));
        assert_eq!(cut.len(), MAX_ERROR_DETAIL_BYTES);
        assert!(cut.chars().all(|c| c == 'ü'));
    }
}
