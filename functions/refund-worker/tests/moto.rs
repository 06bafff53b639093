//! Dead-letter copies and visibility changes against a real SQS (moto): messages are
//! sent, received and handed to the handler exactly as Lambda's event source does. And
//! the refund status, recorded through the DynamoDB adapter into moto's DynamoDB.

mod common;

use std::{collections::HashMap, time::Duration};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use common::*;
use refund_shared::{
    queue::SqsQueue,
    store::{DynamoRefundStore, RefundStatus, RefundStore},
    subject::Subject,
    verdict::ErrorCode,
};
use refund_worker::{Disposition, Settings, Worker};

#[tokio::test]
async fn a_transient_failure_comes_back_after_the_backoff_then_is_exhausted_to_the_dlq() {
    let queues = queues().await;
    let flaky = ticket();
    let body = command(&flaky);
    let id = queues
        .send(
            &body,
            &[("name", "RefundTicket"), ("correlation_id", "corr-1")],
        )
        .await;
    let gateway = ScriptedGateway::new();
    gateway.on(
        Call::Refund,
        &flaky,
        [Answer::Status(503), Answer::Status(502)],
    );
    // n = 1: d = min(60, 2 * 2^0) = 2, draw 0: visibility ceil(1) = 1 s, where the
    // queue's own visibility timeout is 30 s.
    let settings = Settings {
        retry_base_s: 2,
        retry_max_s: 60,
        max_receive_count: 2,
        ..settings()
    };
    let worker = queues.worker(gateway, settings);

    let first = queues
        .receive(&queues.source, 1, Duration::from_secs(2))
        .await;
    let outcome = worker
        .handle_batch(event_from(&first), far_deadline())
        .await;
    assert_eq!(outcome.failed_message_ids(), std::slice::from_ref(&id));
    assert_eq!(
        outcome.records[0].disposition,
        Disposition::Retry {
            visibility_s: Some(1)
        }
    );

    let hidden = queues.receive(&queues.source, 1, Duration::ZERO).await;
    assert!(hidden.is_empty(), "still invisible right after the change");
    let again = queues
        .receive(&queues.source, 1, Duration::from_secs(5))
        .await;
    assert_eq!(again.len(), 1, "back after about 1 s, not the queue's 30 s");
    let receive_count = again[0].attributes().unwrap()
        [&MessageSystemAttributeName::ApproximateReceiveCount]
        .clone();
    assert_eq!(receive_count, "2");

    let outcome = worker
        .handle_batch(event_from(&again), far_deadline())
        .await;
    assert!(outcome.failed_message_ids().is_empty());
    let copies = queues.receive(&queues.dlq, 1, Duration::from_secs(2)).await;
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].body(), Some(body.as_str()));
    assert_eq!(attribute(&copies[0], "error_code"), "retries_exhausted");
    assert_eq!(attribute(&copies[0], "source_message_id"), id);
    assert_eq!(attribute(&copies[0], "receive_count"), "2");
    assert_eq!(attribute(&copies[0], "correlation_id"), "corr-1");
    assert!(attribute(&copies[0], "error_message").contains("502"));
}

#[tokio::test]
async fn a_mixed_batch_of_ten_is_settled_record_by_record() {
    let queues = queues().await;
    let gateway = ScriptedGateway::new();
    let (flaky, void_rejected, refund_rejected) = (ticket(), ticket(), ticket());
    gateway.on(
        Call::Void,
        &flaky,
        [Answer::Fail(refund_shared::verdict::UpstreamError::Timeout)],
    );
    gateway.on(Call::Void, &void_rejected, [Answer::Status(404)]);
    gateway.on(Call::Refund, &refund_rejected, [Answer::Status(422)]);
    let ten_attributes: Vec<(String, String)> =
        [("name", "RefundTicket"), ("correlation_id", "corr-10")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain((0..8).map(|i| (format!("extra_{i}"), format!("value {i}"))))
            .collect();
    let ten_attributes: Vec<(&str, &str)> = ten_attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let wrong_types =
        r#"{"header":{"id":1,"published_at":true,"idempotency_key":[]},"ticket_id":{}}"#;

    let mut expected: HashMap<String, Option<&str>> = HashMap::new();
    for _ in 0..4 {
        expected.insert(
            queues
                .send(&command(&ticket()), &[("correlation_id", "c")])
                .await,
            None,
        );
    }
    let flaky_id = queues.send(&command(&flaky), &[]).await;
    expected.insert(
        queues.send(&command(&void_rejected), &[]).await,
        Some("void_rejected"),
    );
    expected.insert(
        queues.send(&command(&refund_rejected), &[]).await,
        Some("refund_rejected"),
    );
    expected.insert(queues.send("not json", &[]).await, Some("invalid_command"));
    expected.insert(queues.send("{}", &[]).await, Some("invalid_command"));
    let ten_id = queues.send(wrong_types, &ten_attributes).await;
    expected.insert(ten_id.clone(), Some("invalid_command"));

    let received = queues
        .receive(&queues.source, 10, Duration::from_secs(5))
        .await;
    assert_eq!(received.len(), 10);
    let sent_bodies: HashMap<String, String> = received
        .iter()
        .map(|m| {
            (
                m.message_id().unwrap().to_owned(),
                m.body().unwrap().to_owned(),
            )
        })
        .collect();
    let worker = queues.worker(gateway, settings());

    let outcome = worker
        .handle_batch(event_from(&received), far_deadline())
        .await;

    assert_eq!(outcome.failed_message_ids(), [flaky_id]);
    let copies = queues.receive(&queues.dlq, 5, Duration::from_secs(5)).await;
    assert_eq!(copies.len(), 5);
    for copy in &copies {
        let source = attribute(copy, "source_message_id");
        assert_eq!(
            Some(attribute(copy, "error_code").as_str()),
            expected[&source],
            "{source}"
        );
        assert_eq!(copy.body(), Some(sent_bodies[&source].as_str()));
        assert_eq!(attribute(copy, "receive_count"), "1");
        let message = attribute(copy, "error_message");
        assert!(!message.is_empty() && message.len() <= 1024);
    }
    let ten = copies
        .iter()
        .find(|c| attribute(c, "source_message_id") == ten_id)
        .unwrap();
    let names = ten.message_attributes().unwrap();
    assert_eq!(names.len(), 10, "{names:?}");
    for name in [
        "error_code",
        "error_message",
        "source_message_id",
        "receive_count",
        "name",
        "correlation_id",
    ] {
        assert!(names.contains_key(name), "{name}");
    }
    assert_eq!(attribute(ten, "correlation_id"), "corr-10");
    let codes: Vec<Option<ErrorCode>> = outcome.records.iter().map(|r| r.error_code()).collect();
    assert_eq!(codes.iter().filter(|c| c.is_some()).count(), 5);
}

#[tokio::test]
async fn a_dead_letter_copy_to_a_missing_queue_reports_the_record_failed() {
    let queues = queues().await;
    let id = queues.send("not json", &[]).await;
    let worker = Worker::new(
        ScriptedGateway::new(),
        SqsQueue::new(queues.client.clone(), &queues.source),
        SqsQueue::new(
            queues.client.clone(),
            queues.dlq.replace("RefundTicket-dlq", "no-such-queue"),
        ),
        settings(),
    );

    let received = queues
        .receive(&queues.source, 1, Duration::from_secs(2))
        .await;
    let outcome = worker
        .handle_batch(event_from(&received), far_deadline())
        .await;

    assert_eq!(outcome.failed_message_ids(), [id]);
    assert!(matches!(
        outcome.records[0].disposition,
        Disposition::DeadLetterFailed {
            code: ErrorCode::InvalidCommand,
            ..
        }
    ));
    assert!(
        queues
            .receive(&queues.dlq, 1, Duration::ZERO)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn refunds_through_the_worker_are_recorded_in_dynamodb() {
    let queues = queues().await;
    let dynamodb = refund_shared::aws::dynamodb_client(queues.moto.loader()).await;
    refund_shared::store::create_table(&dynamodb, "RefundStatus")
        .await
        .unwrap();
    let store = DynamoRefundStore::new(dynamodb, "RefundStatus");
    let (done, flaky) = (ticket(), ticket());
    let gateway = ScriptedGateway::new();
    gateway.on(Call::Refund, &flaky, [Answer::Status(503)]);
    let done_id = queues
        .send(
            &command(&done),
            &[("correlation_id", "corr-done"), ("requested_by", "user-7")],
        )
        .await;
    queues.send(&command(&flaky), &[]).await;
    let worker = queues
        .worker(gateway, settings())
        .with_store(Some(store.clone()));

    let received = queues
        .receive(&queues.source, 2, Duration::from_secs(5))
        .await;
    assert_eq!(received.len(), 2);
    let outcome = worker
        .handle_batch(event_from(&received), far_deadline())
        .await;

    let failed = outcome.failed_message_ids();
    assert_eq!(failed.len(), 1);
    assert_ne!(failed[0], done_id);
    assert!(
        outcome
            .records
            .iter()
            .all(|r| r.status_recorded == Some(true)),
        "{outcome:?}"
    );
    let record = store.get(done.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(record.status, RefundStatus::Succeeded);
    assert_eq!(record.attempts, 1);
    assert_eq!(record.idempotency_key.to_string(), key_of(&done));
    assert_eq!(record.correlation_id, "corr-done");
    assert_eq!(
        record.requested_by.as_ref().map(Subject::as_str),
        Some("user-7")
    );
    assert_eq!(record.interactions.len(), 2);
    assert!(record.receipt_voided_at.is_some() && record.payment_refunded_at.is_some());
    let record = store.get(flaky.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(record.status, RefundStatus::Processing);
    assert!(record.last_error.unwrap().contains("503"));
}
