//! Receiving a batch: one long poll, then more within the batching window, as the event
//! source mapping gathers a batch.

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};

use super::{EventSource, SourceError, queue_error};

/// The most messages one `ReceiveMessage` returns, and the template's largest batch.
pub const MAX_BATCH_SIZE: i32 = 10;
/// SQS's longest long poll.
pub const LONG_POLL_S: i32 = 20;

impl EventSource {
    /// Up to `batch_size` messages: one long poll, then, within the batching window, more
    /// polls until the batch is full.
    pub(super) async fn receive_batch(&self) -> Result<Vec<Message>, SourceError> {
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
            // Named as well as implied by `All`: the API's trace (contract section 2) must
            // reach the worker as it does under Lambda, whatever an SQS answers for `All`.
            .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
            .message_attribute_names("All")
            .customize()
            // The long poll outlasts the project's 5 s SQS operation timeout, and an empty
            // one sends no byte for `wait_s`: the SDK's stalled-stream guard would cut it
            // (`ThroughputBelowMinimum`) and lose a message that arrives meanwhile to its
            // visibility timeout. The timeouts below bound the poll instead.
            .config_override(
                aws_sdk_sqs::config::Config::builder()
                    .stalled_stream_protection(
                        aws_sdk_sqs::config::StalledStreamProtectionConfig::disabled(),
                    )
                    .timeout_config(
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
        // SQS leaves `Messages` out when the poll found nothing.
        Ok(output.messages.unwrap_or_default())
    }
}
