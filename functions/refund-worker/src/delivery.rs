//! One SQS record as the worker needs it, read defensively: Lambda's event is trusted
//! for shape, but any field may be missing and nothing in it may panic the worker.

use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::SqsMessage;

/// The record attribute Lambda fills with the queue's receive count.
pub const RECEIVE_COUNT_ATTRIBUTE: &str = "ApproximateReceiveCount";
/// The message attribute refund-api sets.
pub const CORRELATION_ATTRIBUTE: &str = "correlation_id";
/// The message attribute refund-api sets to the caller's JWT `sub`, when it knows it.
pub const REQUESTED_BY_ATTRIBUTE: &str = "requested_by";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `None` when the record has no (or an empty) `messageId`: it cannot be reported.
    pub message_id: Option<String>,
    pub receipt_handle: Option<String>,
    pub body: String,
    /// `ApproximateReceiveCount`; 1 when missing or malformed, which errs on the side of
    /// retrying (the queue's redrive policy still bounds the retries).
    pub receive_count: u32,
    /// The message's String attributes (`String` and `String.*` data types).
    pub attributes: BTreeMap<String, String>,
}

impl Delivery {
    pub fn correlation_id(&self) -> Option<&str> {
        self.attributes
            .get(CORRELATION_ATTRIBUTE)
            .map(String::as_str)
    }

    /// Who asked for the refund; an empty value is as good as none.
    pub fn requested_by(&self) -> Option<&str> {
        self.attributes
            .get(REQUESTED_BY_ATTRIBUTE)
            .map(String::as_str)
            .filter(|sub| !sub.is_empty())
    }
}

impl From<SqsMessage> for Delivery {
    fn from(message: SqsMessage) -> Self {
        let receive_count = message
            .attributes
            .get(RECEIVE_COUNT_ATTRIBUTE)
            .and_then(|n| n.trim().parse::<u32>().ok())
            .filter(|n| *n >= 1)
            .unwrap_or(1);
        let attributes = message
            .message_attributes
            .into_iter()
            .filter(|(_, value)| {
                value
                    .data_type
                    .as_deref()
                    .is_some_and(|t| t == "String" || t.starts_with("String."))
            })
            .filter_map(|(name, value)| Some((name, value.string_value?)))
            .collect();
        Self {
            message_id: message.message_id.filter(|id| !id.is_empty()),
            receipt_handle: message.receipt_handle.filter(|h| !h.is_empty()),
            body: message.body.unwrap_or_default(),
            receive_count,
            attributes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(value: serde_json::Value) -> SqsMessage {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn reads_the_fields_lambda_sends() {
        let delivery = Delivery::from(message(json!({
            "messageId": "m-1",
            "receiptHandle": "rh-1",
            "body": "{}",
            "attributes": {"ApproximateReceiveCount": "3"},
            "messageAttributes": {
                "correlation_id": {"stringValue": "c-1", "dataType": "String"},
                "requested_by": {"stringValue": "user-7", "dataType": "String"},
                "custom": {"stringValue": "x", "dataType": "String.custom"},
                "amount": {"stringValue": "12", "dataType": "Number"},
                "blob": {"binaryValue": "AAE=", "dataType": "Binary"},
            },
        })));
        assert_eq!(delivery.message_id.as_deref(), Some("m-1"));
        assert_eq!(delivery.receipt_handle.as_deref(), Some("rh-1"));
        assert_eq!(delivery.receive_count, 3);
        assert_eq!(delivery.correlation_id(), Some("c-1"));
        assert_eq!(delivery.requested_by(), Some("user-7"));
        assert_eq!(
            delivery.attributes.keys().collect::<Vec<_>>(),
            ["correlation_id", "custom", "requested_by"]
        );
    }

    #[test]
    fn missing_fields_are_absent_not_empty() {
        let delivery = Delivery::from(message(json!({
            "messageId": "",
            "attributes": {"ApproximateReceiveCount": "zero"},
        })));
        assert_eq!(delivery.message_id, None);
        assert_eq!(delivery.receipt_handle, None);
        assert_eq!(delivery.body, "");
        assert_eq!(delivery.receive_count, 1);
        assert_eq!(delivery.correlation_id(), None);
        assert_eq!(delivery.requested_by(), None);
    }
}
