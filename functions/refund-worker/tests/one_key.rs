//! A ticket is refunded once because every call about it carries one K: through a
//! duplicate delivery, a second command for the same ticket, and a partial failure
//! that is retried.

mod common;

use std::collections::BTreeSet;

use common::*;
use refund_worker::Disposition;

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
    let worker = in_memory_worker(ScriptedGateway::new());

    let outcome = deliver(
        &worker,
        vec![
            record("first", &body, 1),
            record("duplicate", &body, 1),
            record("again", &second_command, 1),
        ],
    )
    .await;

    assert!(outcome.failed_message_ids().is_empty());
    assert!(
        outcome
            .records
            .iter()
            .all(|r| r.disposition == Disposition::Done)
    );
    let (gateway, _, _) = worker.into_parts();
    let seen = gateway.seen();
    // One batch: the three messages share one attempt (contract 4), so each call once.
    assert_eq!(seen.len(), 2);
    assert_eq!(keys(&seen), BTreeSet::from([key_of(&t)]));
}

#[tokio::test]
async fn void_done_refund_failed_then_retried_repeats_both_with_the_same_key() {
    let t = ticket();
    let body = command(&t);
    let gateway = ScriptedGateway::answering(&[(Call::Refund, &t, Answer::Status(503))]);
    let worker = in_memory_worker(gateway);

    let first = deliver(&worker, vec![record("m", &body, 1)]).await;
    assert_eq!(first.failed_message_ids(), ["m"]);
    assert_eq!(
        (
            first.records[0].void_status(),
            first.records[0].refund_status()
        ),
        (Some(200), Some(503))
    );
    let retried = deliver(&worker, vec![record("m", &body, 2)]).await;
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

/// A producer that mints its own key (as the Go project's HTTP handler does) or a forged
/// message cannot make a second refund: the worker derives K from the ticket.
#[tokio::test]
async fn a_command_with_a_foreign_key_is_refunded_under_the_tickets_own_key() {
    let t = ticket();
    let mut forged: serde_json::Value = serde_json::from_str(&command(&t)).unwrap();
    forged["header"]["idempotency_key"] = uuid::Uuid::new_v4().to_string().into();
    let worker = in_memory_worker(ScriptedGateway::new());

    let outcome = deliver(
        &worker,
        vec![
            record("forged", &forged.to_string(), 1),
            record("own", &command(&t), 1),
        ],
    )
    .await;

    assert_eq!(outcome.records[0].disposition, Disposition::Done);
    assert!(outcome.records[0].foreign_key);
    assert!(!outcome.records[1].foreign_key);
    let (gateway, _, _) = worker.into_parts();
    let seen = gateway.seen();
    // One ticket in one batch: one attempt for both messages (contract 4).
    assert_eq!(seen.len(), 2);
    assert_eq!(keys(&seen), BTreeSet::from([key_of(&t)]));
}

/// A record written before the worker derived K, that shows a call confirmed under
/// another key: calling again under K could refund twice, so the message goes to the DLQ.
#[tokio::test]
async fn a_call_confirmed_under_another_key_dead_letters_as_foreign_key_conflict() {
    use refund_shared::{
        correlation::CorrelationId,
        idempotency::IdempotencyKey,
        store::{InMemoryRefundStore, Progress, RefundRequest, RefundStore, Transition},
    };
    let t = ticket();
    let other = IdempotencyKey::for_ticket(uuid::Uuid::new_v4().into());
    let store = InMemoryRefundStore::new();
    let now = time::OffsetDateTime::now_utc();
    let earlier = RefundRequest {
        ticket_id: t.parse().unwrap(),
        idempotency_key: other,
        correlation_id: CorrelationId::parse("old").unwrap(),
        requested_by: None,
        accepted_at: now,
        command_id: uuid::Uuid::new_v4(),
    };
    store.accept(earlier.clone()).await.unwrap();
    let voided = Transition::Retry {
        last_error: "payments service answered 503".into(),
        progress: Progress {
            receipt_voided_at: Some(now),
            ..Progress::default()
        },
    };
    store.record(&earlier, voided, now).await.unwrap();
    let worker = in_memory_worker(ScriptedGateway::new()).with_store(Some(store));

    let outcome = deliver(&worker, vec![record("m", &command(&t), 1)]).await;

    assert!(
        matches!(
            &outcome.records[0].disposition,
            Disposition::DeadLettered { code, .. } if code.as_str() == "foreign_key_conflict"
        ),
        "{:?}",
        outcome.records[0]
    );
    let (gateway, _, dlq) = worker.into_parts();
    assert!(gateway.seen().is_empty());
    let copies = dlq.sent();
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].attributes["error_code"], "foreign_key_conflict");
}
