//! Settling a batch, the I/O half: deleting the messages the function did not report
//! failed, in one `DeleteMessageBatch`.

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message};

use super::{EventSource, SourceError, queue_error};

impl EventSource {
    /// Deletes `messages` (at most 10, one `DeleteMessageBatch`); returns how many went.
    pub(super) async fn delete(&self, messages: &[&Message]) -> Result<usize, SourceError> {
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
