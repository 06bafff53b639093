//! The refund status the worker records (contract section 8), through the real handler
//! with the in-memory store: what each ending writes, and that the store, healthy, failing
//! or hanging, never changes what happens to a message.

mod common;

use std::time::{Duration, Instant};

use common::*;
use refund_shared::{
    command::RefundTicket,
    port::PortFailure,
    queue::{InMemoryQueue, OutboundMessage, QueueError},
    stamp,
    store::{CallStatus, InMemoryRefundStore, RefundRecord, RefundStatus, RefundStore, StoreError},
    subject::Subject,
};
use refund_worker::{BatchOutcome, Disposition, Worker, status::STATUS_WRITE_TIMEOUT};
use serde_json::Value;
use time::OffsetDateTime;

type StatusWorker<S = InMemoryRefundStore> =
    Worker<ScriptedGateway, InMemoryQueue, InMemoryQueue, S>;

fn worker_with_store<S: RefundStore>(gateway: ScriptedGateway, store: S) -> StatusWorker<S> {
    in_memory_worker(gateway).with_store(Some(store))
}

fn worker(gateway: ScriptedGateway) -> StatusWorker {
    worker_with_store(gateway, InMemoryRefundStore::new())
}

/// The one record of `ticket`.
fn status(worker: &StatusWorker, ticket: &str) -> RefundRecord {
    let records = worker.store().unwrap().records();
    let mut mine: Vec<RefundRecord> = records
        .into_iter()
        .filter(|r| r.ticket_id.to_string() == ticket)
        .collect();
    assert_eq!(mine.len(), 1, "one record for {ticket}");
    mine.remove(0)
}

async fn run(worker: &StatusWorker<impl RefundStore>, records: Vec<Value>) -> BatchOutcome {
    deliver(worker, records).await
}

#[tokio::test]
async fn a_done_refund_is_succeeded_with_both_confirmations_and_both_calls() {
    let t = ticket();
    let body = command(&t);
    let worker = worker(ScriptedGateway::new());
    let before = OffsetDateTime::now_utc();

    let outcome = run(&worker, vec![requested_by(record("m", &body, 1), "user-7")]).await;

    assert_eq!(outcome.records[0].disposition, Disposition::Done);
    assert_eq!(outcome.records[0].status_recorded, Some(true));
    let stored = status(&worker, &t);
    assert_eq!(stored.status, RefundStatus::Succeeded);
    assert_eq!(stored.attempts, 1);
    assert_eq!(stored.idempotency_key.to_string(), key_of(&t));
    assert_eq!(stored.correlation_id, "corr-m");
    assert_eq!(
        stored.requested_by.as_ref().map(Subject::as_str),
        Some("user-7")
    );
    let published_at = RefundTicket::decode(&body).unwrap().header.published_at;
    assert_eq!(stored.accepted_at, stamp::normalise(published_at));
    assert_eq!((stored.last_error, stored.failure_reason), (None, None));
    let after = OffsetDateTime::now_utc();
    for confirmed in [
        stored.receipt_voided_at,
        stored.payment_refunded_at,
        stored.completed_at,
    ] {
        let confirmed = confirmed.expect("set");
        assert!(confirmed >= stamp::normalise(before) && confirmed <= after);
    }
    let calls: Vec<(&str, CallStatus)> = stored
        .interactions
        .iter()
        .map(|i| (i.call.as_str(), i.status))
        .collect();
    assert_eq!(
        calls,
        [
            ("void_receipt", CallStatus::Http(200)),
            ("refund_payment", CallStatus::Http(200))
        ]
    );
}

#[tokio::test]
async fn a_transient_failure_stays_processing_with_its_error_and_counts_every_delivery() {
    let t = ticket();
    let body = command(&t);
    let gateway = ScriptedGateway::new();
    gateway.on(
        Call::Refund,
        &t,
        [
            Answer::Status(503),
            Answer::Fail(refund_shared::verdict::UpstreamError::Timeout),
        ],
    );
    let worker = worker(gateway);

    let first = run(&worker, vec![record("m", &body, 1)]).await;
    assert_eq!(first.failed_message_ids(), ["m"]);
    let stored = status(&worker, &t);
    assert_eq!(stored.status, RefundStatus::Processing);
    assert_eq!(stored.attempts, 1);
    assert!(
        stored.last_error.as_deref().unwrap().contains("503"),
        "{stored:?}"
    );
    assert!(stored.receipt_voided_at.is_some(), "the void was confirmed");
    assert_eq!(stored.payment_refunded_at, None);
    assert_eq!(stored.completed_at, None);
    assert_eq!(stored.interactions.len(), 2);

    run(&worker, vec![record("m", &body, 2)]).await;
    let stored = status(&worker, &t);
    assert_eq!(stored.status, RefundStatus::Processing);
    assert_eq!(stored.attempts, 2);
    // The public reason (contract 1a), not the transport's text.
    assert!(
        stored.last_error.as_deref() == Some("payments service timed out"),
        "{stored:?}"
    );
    // The void the record confirms is not made again (contract 4): only the refund.
    assert_eq!(stored.interactions.len(), 3);
    assert_eq!(
        stored.interactions[2].call,
        refund_shared::store::Call::RefundPayment
    );
    assert_eq!(stored.interactions[2].status, CallStatus::Timeout);

    let third = run(&worker, vec![record("m", &body, 3)]).await;
    assert_eq!(third.records[0].disposition, Disposition::Done);
    assert_eq!(third.records[0].skipped(), Some("void_receipt"));
    let stored = status(&worker, &t);
    assert_eq!(stored.status, RefundStatus::Succeeded);
    assert_eq!(stored.attempts, 3);
    assert_eq!(stored.last_error, None);
    assert_eq!(stored.interactions.len(), 4);
    let (gateway, _, _) = worker.into_parts();
    let calls: Vec<Call> = gateway.seen().iter().map(|s| s.call).collect();
    assert_eq!(calls.iter().filter(|c| **c == Call::Void).count(), 1);
    assert_eq!(calls.iter().filter(|c| **c == Call::Refund).count(), 3);
}

#[tokio::test]
async fn a_rejected_refund_is_dead_lettered_and_failed_with_the_copys_reason() {
    let t = ticket();
    let gateway = ScriptedGateway::answering(&[(Call::Refund, &t, Answer::Status(422))]);
    let worker = worker(gateway);

    let outcome = run(&worker, vec![record("m", &command(&t), 1)]).await;

    assert!(outcome.failed_message_ids().is_empty());
    let stored = status(&worker, &t);
    let (_, _, dlq) = worker.into_parts();
    let sent = dlq.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(stored.status, RefundStatus::Failed);
    let reason = stored.failure_reason.unwrap();
    // The record holds the public reason; the copy keeps the code and the full text.
    assert_eq!(reason, "payments service answered 422");
    assert_eq!(sent[0].attributes["error_code"], "refund_rejected");
    assert!(sent[0].attributes["error_message"].contains("422"));
    assert!(stored.completed_at.is_some());
    assert!(stored.receipt_voided_at.is_some() && stored.payment_refunded_at.is_none());
}

#[tokio::test]
async fn exhausted_retries_end_failed() {
    let t = ticket();
    let gateway = ScriptedGateway::answering(&[(Call::Void, &t, Answer::Status(500))]);
    let worker = worker(gateway);

    run(&worker, vec![record("last", &command(&t), 15)]).await;

    let stored = status(&worker, &t);
    assert_eq!(stored.status, RefundStatus::Failed);
    let reason = stored.failure_reason.unwrap();
    assert_eq!(reason, "retries exhausted: receipts service answered 500");
    assert_eq!(stored.attempts, 1);
}

#[tokio::test]
async fn a_failed_dead_letter_copy_leaves_the_refund_processing_with_why() {
    let t = ticket();
    let gateway = ScriptedGateway::new();
    gateway.on(Call::Void, &t, [Answer::Status(422)]);
    let worker = Worker::new(
        gateway,
        InMemoryQueue::new(),
        InMemoryQueue::failing(QueueError(PortFailure::Rejected("AccessDenied".into()))),
        settings(),
    )
    .with_store(Some(InMemoryRefundStore::new()));

    let outcome = run(&worker, vec![record("m", &command(&t), 1)]).await;

    assert_eq!(outcome.failed_message_ids(), ["m"]);
    let stored = status(&worker, &t);
    assert_eq!(stored.status, RefundStatus::Processing);
    let last_error = stored.last_error.unwrap();
    // Still processing (the message stays on its queue), with the public reason; that
    // the copy failed is in the outcome's log line.
    assert_eq!(last_error, "receipts service answered 422");
    assert_eq!(stored.failure_reason, None);
}

#[tokio::test]
async fn a_redriven_failed_refund_is_processing_again_then_succeeded() {
    let t = ticket();
    let body = command(&t);
    let gateway = ScriptedGateway::new();
    // The void is confirmed, the refund refused: voided, not refunded.
    gateway.on(Call::Refund, &t, [Answer::Status(422)]);
    // The redrive: the payments service is fixed, and answers slowly enough to be seen.
    gateway.on(
        Call::Refund,
        &t,
        [Answer::Slow(Duration::from_millis(400), 200)],
    );
    let worker = worker(gateway);
    run(&worker, vec![record("m", &body, 1)]).await;
    assert_eq!(status(&worker, &t).status, RefundStatus::Failed);

    // An operator's redrive: the message comes back from the DLQ with a new id.
    let (outcome, during) = tokio::join!(run(&worker, vec![record("redriven", &body, 1)]), async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        status(&worker, &t)
    });

    assert_eq!(during.status, RefundStatus::Processing);
    assert_eq!(during.attempts, 2);
    assert_eq!((during.failure_reason, during.completed_at), (None, None));
    assert_eq!(outcome.records[0].disposition, Disposition::Done);
    let stored = status(&worker, &t);
    assert_eq!(stored.status, RefundStatus::Succeeded);
    assert_eq!(stored.attempts, 2);
    assert_eq!(stored.failure_reason, None);
    // The void confirmed before the dead-lettering is not made again: only the refund.
    assert_eq!(stored.interactions.len(), 3);
    assert_eq!(outcome.records[0].skipped(), Some("void_receipt"));
}

/// The record says `succeeded`: a duplicate and a second command make no call at all and
/// are deleted (contract 4), and nothing can undo the finished refund.
#[tokio::test]
async fn a_succeeded_ticket_delivered_again_makes_no_call_and_stays_succeeded() {
    let t = ticket();
    let body = command(&t);
    let gateway = ScriptedGateway::new();
    let worker = worker(gateway);
    run(&worker, vec![record("m", &body, 1)]).await;
    let succeeded = status(&worker, &t);
    assert_eq!(succeeded.status, RefundStatus::Succeeded);
    // An answer that would fail a new refund, were it asked.
    worker.gateway().on(Call::Refund, &t, [Answer::Status(503)]);

    let again = run(
        &worker,
        vec![
            record("duplicate", &body, 1),
            record("second", &command(&t), 1),
        ],
    )
    .await;

    for record in &again.records {
        assert_eq!(record.disposition, Disposition::Done, "{record:?}");
        assert_eq!(record.skipped(), Some("both"));
        assert_eq!((record.void_status(), record.refund_status()), (None, None));
        assert_eq!(record.status_recorded, Some(true));
    }
    assert!(again.failed_message_ids().is_empty());
    assert_eq!(status(&worker, &t), succeeded);
    let (gateway, _, _) = worker.into_parts();
    assert_eq!(
        gateway.seen().len(),
        2,
        "only the first delivery's two calls"
    );
}

#[tokio::test]
async fn poison_makes_no_record() {
    let worker = worker(ScriptedGateway::new());

    let outcome = run(
        &worker,
        vec![record("p1", "not json", 1), record("p2", "{}", 1)],
    )
    .await;

    assert!(outcome.failed_message_ids().is_empty());
    assert!(outcome.records.iter().all(|r| r.status_recorded.is_none()));
    assert!(worker.store().unwrap().records().is_empty());
    let (_, _, dlq) = worker.into_parts();
    assert_eq!(dlq.sent().len(), 2);
}

/// A batch with every ending: done, transient, rejected, poison, exhausted.
struct Mixed {
    tickets: Vec<String>,
    records: Vec<Value>,
}

fn mixed() -> Mixed {
    let tickets: Vec<String> = (0..4).map(|_| ticket()).collect();
    let records = vec![
        record("done", &command(&tickets[0]), 1),
        record("transient", &command(&tickets[1]), 2),
        record("rejected", &command(&tickets[2]), 1),
        record("poison", "{}", 1),
        record("exhausted", &command(&tickets[3]), 15),
    ];
    Mixed { tickets, records }
}

fn scripted(tickets: &[String]) -> ScriptedGateway {
    let gateway = ScriptedGateway::new();
    gateway.on(Call::Refund, &tickets[1], [Answer::Status(503)]);
    gateway.on(Call::Void, &tickets[2], [Answer::Status(404)]);
    gateway.on(Call::Void, &tickets[3], [Answer::Status(502)]);
    gateway
}

/// What the queues and Lambda saw: the response, the dispositions (with the DLQ's ids,
/// which depend on the order of the concurrent copies, left out), the visibility changes
/// and the copies.
type Seen = (
    Vec<String>,
    Vec<String>,
    Vec<(String, u32)>,
    Vec<OutboundMessage>,
);

fn seen_by_the_queues<S: RefundStore>(outcome: &BatchOutcome, worker: StatusWorker<S>) -> Seen {
    let dispositions = outcome
        .records
        .iter()
        .map(|r| match &r.disposition {
            Disposition::DeadLettered { code, .. } => format!("dead_lettered {code}"),
            other => format!("{other:?}"),
        })
        .collect();
    let (_, source, dlq) = worker.into_parts();
    let mut copies = dlq.sent();
    copies
        .sort_by(|a, b| a.attributes["source_message_id"].cmp(&b.attributes["source_message_id"]));
    (
        outcome.failed_message_ids(),
        dispositions,
        source.visibility_changes(),
        copies,
    )
}

/// Everything logged while the returned guard lives, on this thread.
fn capture_logs() -> (testkit::LogBuffer, tracing::subscriber::DefaultGuard) {
    let buffer = testkit::LogBuffer::default();
    let subscriber = buffer.subscriber(tracing::Level::INFO);
    (buffer, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn a_failing_store_changes_nothing_but_the_logs() {
    let Mixed { tickets, records } = mixed();
    let baseline_worker = in_memory_worker(scripted(&tickets));
    let (logs, guard) = capture_logs();
    let baseline = deliver(&baseline_worker, records.clone()).await;
    drop(guard);
    let baseline_logs = logs.text();
    assert!(baseline.records.iter().all(|r| r.status_recorded.is_none()));
    assert!(
        !baseline_logs.contains("status_recorded")
            && !baseline_logs.contains("status not recorded"),
        "{baseline_logs}"
    );
    let expected = seen_by_the_queues(
        &baseline,
        baseline_worker.with_store(None::<InMemoryRefundStore>),
    );

    for error in [
        StoreError::Port(PortFailure::Unavailable("throttled".into())),
        StoreError::Port(PortFailure::Rejected("AccessDeniedException".into())),
    ] {
        let worker = worker_with_store(
            scripted(&tickets),
            InMemoryRefundStore::failing(error.clone()),
        );
        let (logs, guard) = capture_logs();
        let outcome = deliver(&worker, records.clone()).await;
        drop(guard);
        let logs = logs.text();

        assert_eq!(outcome.response(), baseline.response());
        assert_eq!(seen_by_the_queues(&outcome, worker), expected);
        for record in &outcome.records {
            let poison = record.message_id.as_deref() == Some("poison");
            assert_eq!(
                record.status_recorded,
                (!poison).then_some(false),
                "{record:?}"
            );
            if !poison {
                let status_error = record.status_error.as_deref().unwrap();
                assert_eq!(status_error, format!("begin: {error}"));
                // Logged once per record, with what identifies it.
                let lines: Vec<&str> = logs
                    .lines()
                    .filter(|l| {
                        l.contains("refund status not recorded")
                            && l.contains(record.message_id.as_deref().unwrap())
                    })
                    .collect();
                assert_eq!(lines.len(), 1, "{logs}");
                let ticket_id = record.ticket_id.unwrap().to_string();
                for field in [
                    ticket_id.as_str(),
                    record.correlation_id.as_str(),
                    &error.to_string(),
                    "outcome=",
                ] {
                    assert!(lines[0].contains(field), "{field} in {}", lines[0]);
                }
                assert!(lines[0].contains(" WARN "), "{}", lines[0]);
            }
        }
        assert_eq!(logs.matches("status_recorded=false").count(), 4, "{logs}");
    }
}

#[tokio::test]
async fn a_hanging_store_costs_two_bounded_waits_and_changes_no_disposition() {
    let Mixed { tickets, records } = mixed();
    let baseline_worker = in_memory_worker(scripted(&tickets));
    let baseline = deliver(&baseline_worker, records.clone()).await;
    let baseline_calls = baseline_worker.gateway().seen().len();
    let expected = seen_by_the_queues(
        &baseline,
        baseline_worker.with_store(None::<InMemoryRefundStore>),
    );
    let worker = worker_with_store(scripted(&tickets), InMemoryRefundStore::hanging());

    let started = Instant::now();
    let outcome = deliver(&worker, records).await;
    let took = started.elapsed();

    // The records run concurrently: the begin and the ending each wait once.
    assert!(
        took >= 2 * STATUS_WRITE_TIMEOUT
            && took < 2 * STATUS_WRITE_TIMEOUT + Duration::from_secs(1),
        "{took:?}"
    );
    assert_eq!(outcome.response(), baseline.response());
    assert!(
        outcome
            .records
            .iter()
            .filter(|r| r.ticket_id.is_some())
            .all(|r| r.status_recorded == Some(false))
    );
    let seen_calls = worker.gateway().seen().len();
    assert_eq!(seen_calls, 6, "every command's calls ran");
    assert_eq!(
        seen_calls, baseline_calls,
        "the same calls as without a store"
    );
    assert_eq!(seen_by_the_queues(&outcome, worker), expected);
}

/// Answers both calls of `ticket` after 100 ms.
fn slow_gateway(ticket: &str) -> ScriptedGateway {
    let gateway = ScriptedGateway::new();
    for call in [Call::Void, Call::Refund] {
        gateway.on(
            call,
            ticket,
            [Answer::Slow(Duration::from_millis(100), 200)],
        );
    }
    gateway
}

/// The begin write may take all the time there is; the record still ends at its cutoff.
#[tokio::test]
async fn a_hanging_store_never_carries_a_record_past_the_deadline_margin() {
    let t = ticket();
    let margin = Duration::from_millis(200);
    let worker = Worker::new(
        slow_gateway(&t),
        InMemoryQueue::new(),
        InMemoryQueue::new(),
        refund_worker::Settings {
            deadline_margin: margin,
            ..settings()
        },
    )
    .with_store(Some(InMemoryRefundStore::hanging()));

    let started = Instant::now();
    let outcome = worker
        .handle_batch(
            event(vec![record("m", &command(&t), 1)]),
            deadline_in(margin + Duration::from_millis(500)),
        )
        .await;

    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    // Reported failed, so the queue delivers it again: late, never lost.
    assert_eq!(outcome.failed_message_ids(), ["m"]);
    assert_eq!(outcome.records[0].disposition, Disposition::Unfinished);
}

#[tokio::test]
async fn a_batch_of_ten_still_runs_concurrently_with_a_store() {
    let gateway = ScriptedGateway::new();
    let tickets: Vec<String> = (0..10).map(|_| ticket()).collect();
    for t in &tickets {
        for call in [Call::Void, Call::Refund] {
            gateway.on(call, t, [Answer::Slow(Duration::from_millis(300), 200)]);
        }
    }
    let records = first_deliveries(&tickets);
    let worker = worker(gateway);

    let started = Instant::now();
    let outcome = run(&worker, records).await;

    assert!(outcome.failed_message_ids().is_empty());
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
    let records = worker.store().unwrap().records();
    assert_eq!(records.len(), 10);
    assert!(records.iter().all(|r| r.status == RefundStatus::Succeeded));
}
