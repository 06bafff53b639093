//! The queue port: how a command leaves a function.
//!
//! [`CommandQueue`] is what the handlers see; [`SqsQueue`] is the AWS adapter and
//! [`InMemoryQueue`] the twin that handler tests run against without a network.
//! [`VisibilityControl`] is the worker's retry port: it decides when a message it could
//! not finish comes back.

use std::{collections::BTreeMap, future::Future, sync::Mutex};

use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
};

use crate::{port::PortFailure, trace::TraceHeader, twin::lock};

/// A message as it goes on a queue: a body, String attributes, and the trace it continues
/// (the system attribute `AWSTraceHeader`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboundMessage {
    pub body: String,
    pub attributes: BTreeMap<String, String>,
    pub trace: Option<TraceHeader>,
}

/// How a queue operation failed, classified once for every caller: a queue has no
/// failure of its own beyond the port's two.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("queue {0}")]
pub struct QueueError(pub PortFailure);

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
                    .map_err(|e| QueueError(PortFailure::Rejected(e.to_string())))
            })
            .collect::<Result<_, _>>()?;
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(message.body)
            .set_message_attributes(Some(attributes));
        if let Some(trace) = message.trace {
            let value = MessageSystemAttributeValue::builder()
                .data_type("String")
                .string_value(trace.as_str())
                .build()
                .map_err(|e| QueueError(PortFailure::Rejected(e.to_string())))?;
            request = request.message_system_attributes(
                MessageSystemAttributeNameForSends::AwsTraceHeader,
                value,
            );
        }
        let output = request
            .send()
            .await
            .map_err(|e| QueueError(PortFailure::of(&e)))?;
        // SQS always names the message it took; an answer without an id cannot be told
        // apart from a lost one, so the caller treats it as a send to try again (K makes
        // a repeat harmless).
        output
            .message_id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                QueueError(PortFailure::Unavailable(
                    "SQS answered SendMessage without a message id".to_owned(),
                ))
            })
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
            .map_err(|e| QueueError(PortFailure::of(&e)))?;
        Ok(())
    }
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
