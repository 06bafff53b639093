//! A real SQS (moto) as the tests against it need it: the source queue and its DLQ, and
//! the event Lambda's event source would build from received messages.

use std::{collections::HashMap, time::Duration};

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::{
    Client,
    types::{Message, MessageAttributeValue, MessageSystemAttributeName},
};
use refund_shared::queue::SqsQueue;
use refund_worker::{Settings, Worker};
use serde_json::{Value, json};
use testkit::Moto;

use super::{QUEUE_ARN, ScriptedGateway};

pub struct Queues {
    pub moto: Moto,
    pub client: Client,
    pub source: String,
    pub dlq: String,
}

pub async fn queues() -> Queues {
    let moto = Moto::start();
    let client = refund_shared::aws::sqs_client(moto.loader()).await;
    let source = testkit::create_queue(&client, "RefundTicket").await;
    let dlq = testkit::create_queue(&client, "RefundTicket-dlq").await;
    Queues {
        moto,
        client,
        source,
        dlq,
    }
}

impl Queues {
    pub fn worker(
        &self,
        gateway: ScriptedGateway,
        settings: Settings,
    ) -> Worker<ScriptedGateway, SqsQueue, SqsQueue> {
        Worker::new(
            gateway,
            SqsQueue::new(self.client.clone(), &self.source),
            SqsQueue::new(self.client.clone(), &self.dlq),
            settings,
        )
    }

    pub async fn send(&self, body: &str, attributes: &[(&str, &str)]) -> String {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.source)
            .message_body(body);
        for (name, value) in attributes {
            request = request.message_attributes(
                *name,
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(*value)
                    .build()
                    .unwrap(),
            );
        }
        request.send().await.unwrap().message_id.unwrap()
    }

    /// Receives up to `count` messages, waiting at most `wait` for the first.
    pub async fn receive(&self, url: &str, count: usize, wait: Duration) -> Vec<Message> {
        let mut messages = Vec::new();
        let deadline = std::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let output = self
                .client
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(left.as_secs().min(1) as i32)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .unwrap();
            messages.extend(output.messages.unwrap_or_default());
            if messages.len() >= count || left.is_zero() {
                return messages;
            }
        }
    }
}

/// The event Lambda's SQS event source would build from `messages`.
pub fn event_from(messages: &[Message]) -> SqsEvent {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: HashMap<&str, &str> = m
                .attributes()
                .map(|a| a.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
                .unwrap_or_default();
            let message_attributes: HashMap<&str, Value> = m
                .message_attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| {
                            (k.as_str(), json!({"stringValue": v.string_value(), "dataType": v.data_type(), "stringListValues": [], "binaryListValues": []}))
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": QUEUE_ARN,
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

pub fn attribute(message: &Message, name: &str) -> String {
    message.message_attributes().unwrap()[name]
        .string_value()
        .unwrap()
        .to_owned()
}
