//! Shared test support: a scripted gateway, SQS events as Lambda sends them, and
//! settings with a fixed jitter.
#![allow(dead_code)]

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aws_lambda_events::event::sqs::SqsEvent;
use refund_shared::{
    command::{RefundTicket, TicketId},
    gateway::{Gateway, RefundCall},
    idempotency::IdempotencyKey,
    queue::{CommandQueue, InMemoryQueue, OutboundMessage, QueueError},
    verdict::{UpstreamError, UpstreamResult},
};
use refund_worker::Settings;
use serde_json::{Value, json};
use time::OffsetDateTime;

mod queues;
// Only the tests against moto use these.
#[allow(unused_imports)]
pub use queues::*;

pub const QUEUE_ARN: &str = "arn:aws:sqs:us-east-1:000000000000:RefundTicket";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    Void,
    Refund,
}

/// What the scripted service does with one call.
#[derive(Debug, Clone)]
pub enum Answer {
    Status(u16),
    Fail(UpstreamError),
    /// Answers `status` after `delay`.
    Slow(Duration, u16),
    Panic,
    /// Never answers.
    Hang,
}

/// A call as the service saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub call: Call,
    pub ticket_id: String,
    pub idempotency_key: String,
    pub correlation_id: String,
    pub trace: Option<String>,
}

/// Answers each call from a per-ticket script, 200 once the script is used up, and
/// records every call.
#[derive(Debug, Default)]
pub struct ScriptedGateway {
    script: Mutex<HashMap<(Call, String), VecDeque<Answer>>>,
    seen: Mutex<Vec<Seen>>,
}

impl ScriptedGateway {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn on(&self, call: Call, ticket: &str, answers: impl IntoIterator<Item = Answer>) {
        self.script
            .lock()
            .unwrap()
            .entry((call, ticket.to_owned()))
            .or_default()
            .extend(answers);
    }

    /// A gateway that gives each `(call, ticket)` its one scripted answer, and answers
    /// every other call 200.
    pub fn answering(script: &[(Call, &str, Answer)]) -> Self {
        let gateway = Self::new();
        for (call, ticket, answer) in script {
            gateway.on(*call, ticket, [answer.clone()]);
        }
        gateway
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    async fn answer(&self, call: Call, request: &RefundCall) -> UpstreamResult {
        let ticket = request.ticket_id.to_string();
        self.seen.lock().unwrap().push(Seen {
            call,
            ticket_id: ticket.clone(),
            idempotency_key: request.idempotency_key.to_string(),
            correlation_id: request.correlation_id.to_string(),
            trace: request.trace.as_ref().map(|t| t.as_str().to_owned()),
        });
        let answer = self
            .script
            .lock()
            .unwrap()
            .get_mut(&(call, ticket))
            .and_then(VecDeque::pop_front)
            .unwrap_or(Answer::Status(200));
        let status = match answer {
            Answer::Status(status) => status,
            Answer::Fail(error) => return Err(error),
            Answer::Slow(delay, status) => {
                tokio::time::sleep(delay).await;
                status
            }
            Answer::Panic => panic!("scripted panic for {}", request.ticket_id),
            Answer::Hang => std::future::pending().await,
        };
        if (200..300).contains(&status) {
            Ok(status)
        } else {
            Err(UpstreamError::Status(status))
        }
    }
}

impl Gateway for ScriptedGateway {
    async fn void_receipt(&self, call: &RefundCall) -> UpstreamResult {
        self.answer(Call::Void, call).await
    }

    async fn refund_payment(&self, call: &RefundCall) -> UpstreamResult {
        self.answer(Call::Refund, call).await
    }
}

/// A dead-letter queue that takes `delay` to accept a copy.
#[derive(Debug, Default)]
pub struct SlowQueue {
    pub inner: InMemoryQueue,
    pub delay: Duration,
}

impl CommandQueue for SlowQueue {
    async fn send(&self, message: OutboundMessage) -> Result<String, QueueError> {
        tokio::time::sleep(self.delay).await;
        self.inner.send(message).await
    }
}

/// Contract defaults, with the jitter's draw fixed at 0 so visibilities are exact.
pub fn settings() -> Settings {
    Settings {
        max_receive_count: 15,
        retry_base_s: 5,
        retry_max_s: 900,
        deadline_margin: Duration::from_millis(2000),
        max_concurrent_records: 10,
        jitter: || 0.0,
    }
}

/// A fresh ticket id.
pub fn ticket() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn key_of(ticket: &str) -> String {
    IdempotencyKey::for_ticket(ticket.parse::<TicketId>().unwrap()).to_string()
}

/// A command body as refund-api writes it.
pub fn command(ticket: &str) -> String {
    RefundTicket::new(ticket.parse().unwrap(), OffsetDateTime::now_utc())
        .encode()
        .unwrap()
}

/// One first delivery (message `m<i>`) of each ticket's command.
pub fn first_deliveries(tickets: &[String]) -> Vec<Value> {
    tickets
        .iter()
        .enumerate()
        .map(|(i, t)| record(&format!("m{i}"), &command(t), 1))
        .collect()
}

/// A record as Lambda's SQS event source sends it.
pub fn record(message_id: &str, body: &str, receive_count: u32) -> Value {
    json!({
        "messageId": message_id,
        "receiptHandle": format!("rh-{message_id}"),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": receive_count.to_string(),
            "SentTimestamp": "1763880000000",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1763880000001",
        },
        "messageAttributes": {
            "name": {"stringValue": "RefundTicket", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
            "correlation_id": {"stringValue": format!("corr-{message_id}"), "stringListValues": [], "binaryListValues": [], "dataType": "String"},
        },
        "md5OfBody": "00000000000000000000000000000000",
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": "us-east-1",
    })
}

pub fn event(records: Vec<Value>) -> SqsEvent {
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

/// The Lambda deadline `after` from now, in epoch milliseconds.
pub fn deadline_in(after: Duration) -> u64 {
    (SystemTime::now() + after)
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A deadline no test reaches.
pub fn far_deadline() -> u64 {
    deadline_in(Duration::from_secs(600))
}

/// The worker's answer to one batch of `records`, with a deadline no test reaches.
pub async fn deliver<G, V, D, S, B>(
    worker: &refund_worker::Worker<G, V, D, S, B>,
    records: Vec<Value>,
) -> refund_worker::BatchOutcome
where
    G: Gateway,
    V: refund_shared::queue::VisibilityControl,
    D: CommandQueue,
    S: refund_shared::store::RefundStore,
    B: refund_shared::announce::EventBus,
{
    worker.handle_batch(event(records), far_deadline()).await
}

/// `record` with the `requested_by` attribute refund-api sets from the JWT's `sub`.
pub fn requested_by(mut record: Value, sub: &str) -> Value {
    record["messageAttributes"]["requested_by"] = json!({
        "stringValue": sub, "stringListValues": [], "binaryListValues": [], "dataType": "String",
    });
    record
}

/// A worker over `gateway` and in-memory queues, with [`settings`].
pub fn in_memory_worker(
    gateway: ScriptedGateway,
) -> refund_worker::Worker<ScriptedGateway, InMemoryQueue, InMemoryQueue> {
    refund_worker::Worker::new(
        gateway,
        InMemoryQueue::new(),
        InMemoryQueue::new(),
        settings(),
    )
}

/// Each record's disposition and, when it went to the DLQ, its code: what the tables
/// of the batch tests assert, in batch order.
pub fn endings(
    outcome: &refund_worker::BatchOutcome,
) -> Vec<(&'static str, Option<refund_shared::verdict::ErrorCode>)> {
    outcome
        .records
        .iter()
        .map(|r| (r.disposition.as_str(), r.error_code()))
        .collect()
}

/// One first delivery per `(message id, ticket)`, in order.
pub fn deliveries(messages: &[(&str, &str)]) -> Vec<Value> {
    messages
        .iter()
        .map(|(id, ticket)| record(id, &command(ticket), 1))
        .collect()
}
