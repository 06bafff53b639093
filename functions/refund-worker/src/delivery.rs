//! One SQS record as the worker needs it, read defensively: Lambda's event is trusted
//! for shape, but any field may be missing and nothing in it may panic the worker.

use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::SqsMessage;
use refund_shared::{
    command::attribute,
    correlation::CorrelationId,
    subject::Subject,
    trace::{AWS_TRACE_HEADER, TraceHeader},
};

/// The record attribute Lambda fills with the queue's receive count.
pub const RECEIVE_COUNT_ATTRIBUTE: &str = "ApproximateReceiveCount";

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
    /// The X-Ray trace the message continues (`AWSTraceHeader`), when it is one.
    pub trace: Option<TraceHeader>,
}

impl Delivery {
    /// The message's correlation id when it is a valid header token, else a generated one
    /// (see [`CorrelationId::or_generate`]).
    pub fn correlation_id(&self) -> CorrelationId {
        CorrelationId::or_generate(
            self.attributes
                .get(attribute::CORRELATION_ID)
                .map(String::as_str),
        )
    }

    /// Who asked for the refund ([`Subject::bounded`]: an empty value is as good as none).
    pub fn requested_by(&self) -> Option<Subject> {
        Subject::bounded(self.attributes.get(attribute::REQUESTED_BY)?)
    }
}

/// A first delivery of `body` with only a message id, for the modules' own tests.
#[cfg(test)]
pub(crate) fn first_delivery(body: &str) -> Delivery {
    Delivery {
        message_id: Some("m".into()),
        receipt_handle: None,
        body: body.to_owned(),
        receive_count: 1,
        attributes: BTreeMap::new(),
        trace: None,
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
        let trace = message
            .attributes
            .get(AWS_TRACE_HEADER)
            .and_then(|header| TraceHeader::parse(header));
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
            // A record without a body is poison like any body that is not a command.
            body: message.body.unwrap_or_default(),
            receive_count,
            attributes,
            trace,
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
            "attributes": {
                "ApproximateReceiveCount": "3",
                "AWSTraceHeader": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
            },
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
        assert_eq!(delivery.correlation_id(), "c-1");
        assert_eq!(
            delivery.requested_by().as_ref().map(Subject::as_str),
            Some("user-7")
        );
        assert_eq!(
            delivery.trace.as_ref().map(TraceHeader::as_str),
            Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
        );
        assert_eq!(
            delivery.attributes.keys().collect::<Vec<_>>(),
            ["correlation_id", "custom", "requested_by"]
        );
    }

    #[test]
    fn missing_fields_are_absent_not_empty() {
        let delivery = Delivery::from(message(json!({
            "messageId": "",
            "attributes": {"ApproximateReceiveCount": "zero", "AWSTraceHeader": "Root=junk"},
        })));
        assert_eq!(delivery.message_id, None);
        assert_eq!(delivery.receipt_handle, None);
        assert_eq!(delivery.body, "");
        assert_eq!(delivery.receive_count, 1);
        assert!(delivery.correlation_id().as_str().starts_with("gen_"));
        assert_eq!(delivery.requested_by(), None);
        assert_eq!(delivery.trace, None);
    }
}
