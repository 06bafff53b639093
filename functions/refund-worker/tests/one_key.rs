//! A ticket is refunded once because every call about it carries one K: through a
//! duplicate delivery, a second command for the same ticket, and a partial failure
//! that is retried.

mod common;

use std::collections::BTreeSet;

use common::*;
use refund::queue::InMemoryQueue;
use refund_worker::{Disposition, Worker};

fn keys(seen: &[Seen]) -> BTreeSet<String> {
    seen.iter().map(|s| s.idempotency_key.clone()).collect()
}

#[tokio::test]
async fn the_same_command_delivered_twice_calls_upstream_with_one_key() {
    let t = ticket();
    let body = command(&t);
    // The duplicate (at-least-once delivery) and a second command for the same ticket
    // (a double click: a new command id, the same K).
    let second_command = command(&t);
    assert_ne!(body, second_command);
    let worker = Worker::new(
        ScriptedGateway::new(),
        InMemoryQueue::new(),
        InMemoryQueue::new(),
        settings(),
    );

    let outcome = worker
        .handle_batch(
            event(vec![
                record("first", &body, 1),
                record("duplicate", &body, 1),
                record("again", &second_command, 1),
            ]),
            far_deadline(),
        )
        .await;

    assert!(outcome.failed_message_ids().is_empty());
    let (gateway, _, _) = worker.into_parts();
    let seen = gateway.seen();
    assert_eq!(seen.len(), 6);
    assert_eq!(keys(&seen), BTreeSet::from([key_of(&t)]));
}

#[tokio::test]
async fn void_done_refund_failed_then_retried_repeats_both_with_the_same_key() {
    let t = ticket();
    let body = command(&t);
    let gateway = ScriptedGateway::new();
    gateway.on(Call::Refund, &t, [Answer::Status(503)]);
    let worker = Worker::new(
        gateway,
        InMemoryQueue::new(),
        InMemoryQueue::new(),
        settings(),
    );

    let first = worker
        .handle_batch(event(vec![record("m", &body, 1)]), far_deadline())
        .await;
    assert_eq!(first.failed_message_ids(), ["m"]);
    assert_eq!(
        (first.records[0].void_status, first.records[0].refund_status),
        (Some(200), Some(503))
    );
    let retried = worker
        .handle_batch(event(vec![record("m", &body, 2)]), far_deadline())
        .await;
    assert_eq!(retried.records[0].disposition, Disposition::Done);

    let (gateway, _, dlq) = worker.into_parts();
    let seen = gateway.seen();
    let calls: Vec<Call> = seen.iter().map(|s| s.call).collect();
    assert_eq!(calls.iter().filter(|c| **c == Call::Void).count(), 2);
    assert_eq!(calls.iter().filter(|c| **c == Call::Refund).count(), 2);
    assert_eq!(keys(&seen), BTreeSet::from([key_of(&t)]));
    assert!(
        seen.iter()
            .all(|s| s.ticket_id == t && s.correlation_id == "corr-m")
    );
    assert!(dlq.sent().is_empty());
}
