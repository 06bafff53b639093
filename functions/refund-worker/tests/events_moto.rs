//! The refund events against a real EventBridge and SQS (moto), with the status record in
//! moto's DynamoDB: what reaches the bus, with which id, and what becomes of a done
//! message whose event the bus refuses (contract sections 4 and 9). A rule copies every
//! event of the bus to a queue, as the local stack's `RefundEvents` does.

mod common;

use std::time::Duration;

use aws_sdk_sqs::types::Message;
use common::*;
use refund_shared::{
    announce::EventBridgeBus,
    queue::SqsQueue,
    store::{DynamoRefundStore, RefundStatus, RefundStore},
};
use refund_worker::{Disposition, Settings, Worker};
use serde_json::Value;
use uuid::Uuid;

const BUS: &str = "ticket-refunds";

type EventsWorker = Worker<ScriptedGateway, SqsQueue, SqsQueue, DynamoRefundStore, EventBridgeBus>;

struct Stack {
    queues: Queues,
    events: aws_sdk_eventbridge::Client,
    /// The queue the rule copies every refund event to.
    copies: String,
    store: DynamoRefundStore,
}

async fn stack() -> Stack {
    let queues = queues().await;
    let events = refund_shared::aws::eventbridge_client(queues.moto.loader()).await;
    let copies = testkit::create_queue(&queues.client, "RefundEvents").await;
    let dynamodb = refund_shared::aws::dynamodb_client(queues.moto.loader()).await;
    refund_shared::store::create_table(&dynamodb, "Refunds")
        .await
        .unwrap();
    let store = DynamoRefundStore::new(dynamodb, "Refunds");
    Stack {
        queues,
        events,
        copies,
        store,
    }
}

impl Stack {
    /// Creates the bus and its rule; until then every `PutEvents` to it is refused.
    async fn create_bus(&self) {
        self.events
            .create_event_bus()
            .name(BUS)
            .send()
            .await
            .unwrap();
        self.events
            .put_rule()
            .name("copy-refund-events")
            .event_bus_name(BUS)
            .event_pattern(r#"{"source": ["ticket-refunds"]}"#)
            .send()
            .await
            .unwrap();
        let target = aws_sdk_eventbridge::types::Target::builder()
            .id("refund-events")
            .arn("arn:aws:sqs:us-east-1:123456789012:RefundEvents")
            .build()
            .unwrap();
        self.events
            .put_targets()
            .rule("copy-refund-events")
            .event_bus_name(BUS)
            .targets(target)
            .send()
            .await
            .unwrap();
    }

    fn worker(&self, gateway: ScriptedGateway, settings: Settings) -> EventsWorker {
        self.queues
            .worker(gateway, settings)
            .with_store(Some(self.store.clone()))
            .with_bus(Some(EventBridgeBus::new(self.events.clone(), BUS)))
    }

    /// Receives what is on the source queue (`count` messages) and hands it to `worker`.
    async fn deliver(&self, worker: &EventsWorker, count: usize) -> refund_worker::BatchOutcome {
        let received = self.received(&self.queues.source, count).await;
        worker
            .handle_batch(event_from(&received), far_deadline())
            .await
    }

    async fn received(&self, url: &str, count: usize) -> Vec<Message> {
        let received = self
            .queues
            .receive(url, count, Duration::from_secs(5))
            .await;
        assert_eq!(received.len(), count, "{url}");
        received
    }

    /// A delivery of a ticket its record confirms refunded: done without a call, and its
    /// `TicketRefunded` on the bus again with the `expected` id.
    async fn assert_confirmed_done(&self, outcome: &refund_worker::BatchOutcome, expected: Uuid) {
        assert_eq!(outcome.records[0].disposition, Disposition::Done);
        assert_eq!(outcome.records[0].skipped(), Some("both"));
        let events = self.copied(1).await;
        assert_eq!(events[0].1["header"]["id"], expected.to_string());
    }

    /// Every event copied so far: (detail-type, detail).
    async fn copied(&self, count: usize) -> Vec<(String, Value)> {
        let messages = self
            .queues
            .receive(&self.copies, count, Duration::from_secs(3))
            .await;
        messages
            .iter()
            .map(|m| {
                let event: Value = serde_json::from_str(m.body().unwrap()).unwrap();
                assert_eq!(event["source"], "ticket-refunds");
                (
                    event["detail-type"].as_str().unwrap().to_owned(),
                    event["detail"].clone(),
                )
            })
            .collect()
    }
}

fn key(ticket: &str) -> Uuid {
    key_of(ticket).parse().unwrap()
}

#[tokio::test]
async fn a_done_refund_is_on_the_bus_with_its_stable_id_and_a_repeat_carries_it_again() {
    let stack = stack().await;
    stack.create_bus().await;
    let t = ticket();
    stack
        .queues
        .send(&command(&t), &[("correlation_id", "c-1")])
        .await;
    let worker = stack.worker(ScriptedGateway::new(), settings());

    let outcome = stack.deliver(&worker, 1).await;
    assert_eq!(outcome.records[0].disposition, Disposition::Done);
    let expected = Uuid::new_v5(&key(&t), b"TicketRefunded");
    assert_eq!(outcome.records[0].event_id, Some(expected));
    let events = stack.copied(1).await;
    assert_eq!(events.len(), 1);
    let (detail_type, detail) = &events[0];
    assert_eq!(detail_type, "TicketRefunded");
    assert_eq!(detail["header"]["id"], expected.to_string());
    assert_eq!(detail["header"]["idempotency_key"], key_of(&t));
    assert_eq!(
        (
            detail["ticket_id"].as_str(),
            detail["correlation_id"].as_str()
        ),
        (Some(t.as_str()), Some("c-1"))
    );
    assert_eq!(
        outcome.events.map(|e| (e.published, e.unpublished)),
        Some((1, 0))
    );

    // A duplicate delivery of the refunded ticket: no call, the same id again.
    stack.queues.send(&command(&t), &[]).await;
    let again = stack.deliver(&worker, 1).await;
    stack.assert_confirmed_done(&again, expected).await;
    assert_eq!(
        worker.gateway().seen().len(),
        2,
        "a succeeded ticket makes no call"
    );
}

#[tokio::test]
async fn a_refused_put_events_keeps_the_message_and_its_redelivery_publishes_the_same_id() {
    let stack = stack().await;
    let t = ticket();
    let id = stack.queues.send(&command(&t), &[]).await;
    let worker = stack.worker(ScriptedGateway::new(), settings());

    // No bus yet: the refund is done, but its message is not deleted without its event.
    let first = stack.deliver(&worker, 1).await;
    let disposition = &first.records[0].disposition;
    assert!(
        matches!(
            disposition,
            Disposition::EventUnpublished {
                visibility_s: Some(_)
            }
        ),
        "{disposition:?}"
    );
    assert_eq!(first.failed_message_ids(), std::slice::from_ref(&id));
    assert_eq!(first.events.map(|e| e.unpublished), Some(1));
    let record = stack.store.get(t.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(record.status, RefundStatus::Succeeded);

    stack.create_bus().await;
    // The message comes back after the backoff's visibility (3 s here).
    let second = stack.deliver(&worker, 1).await;
    assert_eq!(second.records[0].message_id.as_deref(), Some(id.as_str()));
    let expected = Uuid::new_v5(&key(&t), b"TicketRefunded");
    stack.assert_confirmed_done(&second, expected).await;
    assert_eq!(worker.gateway().seen().len(), 2, "the calls were made once");
}

#[tokio::test]
async fn a_dead_lettered_command_announces_its_failure_and_poison_announces_nothing() {
    let stack = stack().await;
    stack.create_bus().await;
    let t = ticket();
    let rejected = stack.queues.send(&command(&t), &[]).await;
    stack.queues.send("not a command", &[]).await;
    let gateway = ScriptedGateway::answering(&[(Call::Void, &t, Answer::Status(422))]);
    let worker = stack.worker(gateway, settings());

    let outcome = stack.deliver(&worker, 2).await;
    assert!(outcome.failed_message_ids().is_empty());
    let events = stack.copied(1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let (detail_type, detail) = &events[0];
    assert_eq!(detail_type, "TicketRefundFailed");
    assert_eq!(detail["error_code"], "void_rejected");
    assert_eq!(detail["reason"], "receipts service answered 422");
    let expected = Uuid::new_v5(
        &key(&t),
        format!("TicketRefundFailed:{rejected}").as_bytes(),
    );
    assert_eq!(detail["header"]["id"], expected.to_string());
    assert_eq!(stack.received(&stack.queues.dlq, 2).await.len(), 2);
}

#[tokio::test]
async fn a_done_message_whose_event_is_refused_at_the_last_receive_is_dead_lettered_as_event_unpublished()
 {
    let stack = stack().await;
    let t = ticket();
    stack.queues.send(&command(&t), &[]).await;
    let last_receive = Settings {
        max_receive_count: 1,
        ..settings()
    };
    let worker = stack.worker(ScriptedGateway::new(), last_receive);

    let outcome = stack.deliver(&worker, 1).await;
    assert!(outcome.failed_message_ids().is_empty());
    let copy = &stack.received(&stack.queues.dlq, 1).await[0];
    assert_eq!(attribute(copy, "error_code"), "event_unpublished");
    let record = stack.store.get(t.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(
        record.status,
        RefundStatus::Succeeded,
        "the refund itself is done"
    );
}

#[tokio::test]
async fn a_command_whose_record_confirms_the_void_makes_only_the_refund_call() {
    let stack = stack().await;
    stack.create_bus().await;
    let t = ticket();
    stack.queues.send(&command(&t), &[]).await;
    let gateway = ScriptedGateway::answering(&[(Call::Refund, &t, Answer::Status(503))]);
    let worker = stack.worker(gateway, settings());

    let first = stack.deliver(&worker, 1).await;
    assert!(matches!(
        first.records[0].disposition,
        Disposition::Retry { .. }
    ));
    stack.queues.send(&command(&t), &[]).await;
    let second = stack.deliver(&worker, 1).await;
    assert_eq!(second.records[0].disposition, Disposition::Done);
    assert_eq!(second.records[0].skipped(), Some("void_receipt"));
    let (gateway, _, _) = worker.into_parts();
    let calls: Vec<Call> = gateway.seen().iter().map(|s| s.call).collect();
    assert_eq!(calls.iter().filter(|c| **c == Call::Void).count(), 1);
    assert_eq!(calls.iter().filter(|c| **c == Call::Refund).count(), 2);
}
