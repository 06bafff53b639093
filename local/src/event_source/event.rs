//! The SQS event Lambda builds from a batch of messages, field for field, so the worker
//! reads under `cargo lambda watch` exactly what it reads when deployed.

use aws_sdk_sqs::types::{Message, MessageAttributeValue};
use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use md5::{Digest, Md5};
use serde_json::{Map, Value, json};

/// Builds the SQS event Lambda hands the function for `messages` from the queue
/// `queue_arn`, field for field (the shape `aws_lambda_events::sqs::SqsEvent` reads).
pub fn sqs_event(messages: &[Message], queue_arn: &str, region: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|message| sqs_record(message, queue_arn, region))
        .collect();
    json!({ "Records": records })
}

/// One record. Its `attributes` are the message's system attributes by name, as Lambda
/// writes them: `ApproximateReceiveCount` and the others, and `AWSTraceHeader` when the
/// message carries a trace (the worker continues it upstream). SQS sets `MessageId`, `ReceiptHandle` and `Body` on every message it
/// returns (the SDK's model only types them as optional). One that lacked them would be
/// written as `""` and never deleted (no id to match, or no handle to delete with), so it
/// would come back after its visibility timeout rather than be lost.
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
