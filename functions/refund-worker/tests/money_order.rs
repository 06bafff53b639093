//! Money in a safe order (contract section 4): the void first, the refund only once the
//! void is confirmed; a 409 is retried; and a dead-lettered ticket whose void is confirmed
//! and whose refund is not is counted in `VoidedNotRefunded`.

mod common;

use common::*;
use refund_shared::{
    queue::InMemoryQueue,
    store::{InMemoryRefundStore, RefundRecord, RefundStatus},
    verdict::ErrorCode,
};
use refund_worker::{BatchOutcome, Disposition, Worker, metrics::emf_lines};
use serde_json::Value;

type MoneyWorker = Worker<ScriptedGateway, InMemoryQueue, InMemoryQueue, InMemoryRefundStore>;

fn worker(gateway: ScriptedGateway) -> MoneyWorker {
    in_memory_worker(gateway).with_store(Some(InMemoryRefundStore::new()))
}

fn stored(worker: &MoneyWorker, ticket: &str) -> RefundRecord {
    let records = worker.store().unwrap().records();
    let record = records
        .into_iter()
        .find(|r| r.ticket_id.to_string() == ticket);
    record.expect("a record for the ticket")
}

/// The calls the services saw for `ticket`, in the order they were made.
fn calls_of(worker: &MoneyWorker, ticket: &str) -> Vec<Call> {
    let seen = worker.gateway().seen();
    seen.iter()
        .filter(|s| s.ticket_id == ticket)
        .map(|s| s.call)
        .collect()
}

/// `VoidedNotRefunded` on the batch's metric line; 0 when the line does not carry it.
fn voided_not_refunded(outcome: &BatchOutcome) -> u64 {
    let totals: Value = serde_json::from_str(&emf_lines(outcome, 1)[0]).unwrap();
    totals["VoidedNotRefunded"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn a_refused_void_makes_no_refund_call_and_leaves_no_payment_refunded_at() {
    let t = ticket();
    let worker = worker(ScriptedGateway::answering(&[(
        Call::Void,
        &t,
        Answer::Status(422),
    )]));

    let outcome = deliver(&worker, vec![record("m", &command(&t), 1)]).await;

    assert_eq!(
        outcome.records[0].error_code(),
        Some(ErrorCode::VoidRejected)
    );
    assert_eq!(calls_of(&worker, &t), [Call::Void], "no refund call");
    let record = stored(&worker, &t);
    assert_eq!(record.status, RefundStatus::Failed);
    assert_eq!(record.payment_refunded_at, None);
    assert_eq!(record.receipt_voided_at, None);
    assert_eq!(voided_not_refunded(&outcome), 0, "the ticket is not voided");
}

#[tokio::test]
async fn every_refund_call_follows_its_tickets_confirmed_void() {
    let tickets: Vec<String> = (0..5).map(|_| ticket()).collect();
    let worker = worker(ScriptedGateway::new());

    deliver(&worker, first_deliveries(&tickets)).await;

    for t in &tickets {
        assert_eq!(calls_of(&worker, t), [Call::Void, Call::Refund], "{t}");
    }
}

/// A dead-lettering with the void confirmed and the refund not counts; one whose void was
/// never confirmed does not. The record says which call refused.
#[tokio::test]
async fn a_ticket_voided_but_not_refunded_is_counted_when_it_is_dead_lettered() {
    type Case = (Call, Answer, u32, ErrorCode, &'static str, u64);
    let cases: [Case; 3] = [
        (
            Call::Refund,
            Answer::Status(422),
            1,
            ErrorCode::RefundRejected,
            "payments service answered 422",
            1,
        ),
        (
            Call::Refund,
            Answer::Status(503),
            15,
            ErrorCode::RetriesExhausted,
            "retries exhausted: payments service answered 503",
            1,
        ),
        (
            Call::Void,
            Answer::Status(503),
            15,
            ErrorCode::RetriesExhausted,
            "retries exhausted: receipts service answered 503",
            0,
        ),
    ];
    for (call, answer, receive_count, code, reason, counted) in cases {
        let t = ticket();
        let worker = worker(ScriptedGateway::answering(&[(call, &t, answer)]));

        let outcome = deliver(&worker, vec![record("m", &command(&t), receive_count)]).await;

        assert_eq!(outcome.records[0].error_code(), Some(code), "{reason}");
        assert_eq!(voided_not_refunded(&outcome), counted, "{reason}");
        let record = stored(&worker, &t);
        assert_eq!(record.failure_reason.as_deref(), Some(reason));
        assert_eq!(record.receipt_voided_at.is_some(), counted == 1, "{reason}");
        assert_eq!(record.payment_refunded_at, None, "{reason}");
    }
}

/// An idempotent service answers 409 while a request with the same key is in flight: the
/// message is retried, and the next delivery refunds the ticket.
#[tokio::test]
async fn a_409_then_200_ends_refunded_not_dead_lettered() {
    let t = ticket();
    let worker = worker(ScriptedGateway::answering(&[(
        Call::Refund,
        &t,
        Answer::Status(409),
    )]));

    let first = deliver(&worker, vec![record("m", &command(&t), 1)]).await;
    let second = deliver(&worker, vec![record("m", &command(&t), 2)]).await;

    assert!(
        matches!(first.records[0].disposition, Disposition::Retry { .. }),
        "{:?}",
        first.records[0]
    );
    assert_eq!(second.records[0].disposition, Disposition::Done);
    assert_eq!(stored(&worker, &t).status, RefundStatus::Succeeded);
    let (_, _, dead_letter_queue) = worker.into_parts();
    assert!(dead_letter_queue.sent().is_empty());
}

#[tokio::test]
async fn a_record_that_confirms_the_void_makes_only_the_refund_call() {
    let t = ticket();
    let worker = worker(ScriptedGateway::answering(&[(
        Call::Refund,
        &t,
        Answer::Status(503),
    )]));
    deliver(&worker, vec![record("m", &command(&t), 1)]).await;
    assert!(stored(&worker, &t).receipt_voided_at.is_some());

    let again = deliver(&worker, vec![record("m", &command(&t), 2)]).await;

    assert_eq!(again.records[0].disposition, Disposition::Done);
    assert_eq!(again.records[0].skipped(), Some("void_receipt"));
    assert_eq!(
        calls_of(&worker, &t),
        [Call::Void, Call::Refund, Call::Refund],
        "the second delivery made only the refund call"
    );
}
