//! Every path of contract section 4 through the real handler, with in-memory ports.

mod common;

use std::time::{Duration, Instant};

use common::*;
use refund_shared::{
    port::PortFailure,
    queue::{InMemoryQueue, QueueError},
    verdict::{Class, ErrorCode, UpstreamError},
};
use refund_worker::{Disposition, Settings, Worker, backoff::retry_visibility_s};

type TestWorker = Worker<ScriptedGateway, InMemoryQueue, InMemoryQueue>;

fn worker(gateway: ScriptedGateway) -> TestWorker {
    worker_with(gateway, settings())
}

fn worker_with(gateway: ScriptedGateway, settings: Settings) -> TestWorker {
    Worker::new(
        gateway,
        InMemoryQueue::new(),
        InMemoryQueue::new(),
        settings,
    )
}

#[tokio::test]
async fn all_done_reports_no_failures_and_touches_no_queue() {
    let tickets: Vec<String> = (0..3).map(|_| ticket()).collect();
    let records = first_deliveries(&tickets);
    let (gateway, source, dlq) = (
        ScriptedGateway::new(),
        InMemoryQueue::new(),
        InMemoryQueue::new(),
    );
    let worker = Worker::new(gateway, source, dlq, settings());

    let outcome = deliver(&worker, records).await;

    assert!(outcome.response().batch_item_failures.is_empty());
    assert!(
        outcome
            .records
            .iter()
            .all(|r| r.disposition == Disposition::Done)
    );
    assert_eq!(
        outcome.records[1].ticket_id.map(|t| t.to_string()),
        Some(tickets[1].clone())
    );
    assert_eq!(outcome.records[1].void_status(), Some(200));
    assert_eq!(outcome.records[1].refund_status(), Some(200));
    let (gateway, source, dlq) = worker.into_parts();
    assert!(source.visibility_changes().is_empty() && dlq.sent().is_empty());
    // Both calls for each ticket, with its K and the message's correlation id.
    let seen = gateway.seen();
    assert_eq!(seen.len(), 6);
    for (i, t) in tickets.iter().enumerate() {
        for call in [Call::Void, Call::Refund] {
            assert!(
                seen.iter().any(|s| s.call == call
                    && &s.ticket_id == t
                    && s.idempotency_key == key_of(t)
                    && s.correlation_id == format!("corr-m{i}")),
                "{call:?} for {t}"
            );
        }
    }
}

#[tokio::test]
async fn a_transient_failure_alone_is_reported_and_delayed_by_the_backoff() {
    let (ok, flaky) = (ticket(), ticket());
    let gateway = ScriptedGateway::answering(&[(Call::Refund, &flaky, Answer::Status(503))]);
    let worker = worker(gateway);

    let outcome = deliver(
        &worker,
        vec![
            record("ok", &command(&ok), 1),
            record("flaky", &command(&flaky), 3),
        ],
    )
    .await;

    let ids: Vec<_> = outcome
        .response()
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect();
    assert_eq!(ids, ["flaky"]);
    let flaky_outcome = &outcome.records[1];
    assert_eq!(flaky_outcome.class, Some(Class::Transient));
    assert_eq!(flaky_outcome.error_code(), None);
    assert_eq!(
        (flaky_outcome.void_status(), flaky_outcome.refund_status()),
        (Some(200), Some(503))
    );
    // n = 3: d = min(900, 5 * 2^2) = 20; with the draw at 0, ceil(20/2) = 10.
    assert_eq!(
        flaky_outcome.disposition,
        Disposition::Retry {
            visibility_s: Some(10)
        }
    );
    let (_, source, dlq) = worker.into_parts();
    assert_eq!(source.visibility_changes(), [("rh-flaky".to_owned(), 10)]);
    assert!(dlq.sent().is_empty());
}

#[tokio::test]
async fn the_random_visibility_stays_within_the_formulas_bounds() {
    let flaky = ticket();
    let gateway = ScriptedGateway::new();
    gateway.on(
        Call::Void,
        &flaky,
        (0..40).map(|_| Answer::Fail(UpstreamError::Timeout)),
    );
    let worker = worker_with(
        gateway,
        Settings {
            jitter: rand::random::<f64>,
            ..settings()
        },
    );
    for n in 1..=10u32 {
        deliver(&worker, vec![record("flaky", &command(&flaky), n)]).await;
    }
    let (_, source, _) = worker.into_parts();
    let changes = source.visibility_changes();
    assert_eq!(changes.len(), 10);
    for (n, (_, seconds)) in (1..=10u32).zip(changes) {
        let d = (5u32 << (n - 1)).min(900);
        assert!(
            seconds >= d.div_ceil(2) && seconds <= d,
            "n={n}: {seconds} not in [{}, {d}]",
            d.div_ceil(2)
        );
        assert!(seconds >= retry_visibility_s(n, 5, 900, 0.0));
    }
}

#[tokio::test]
async fn a_failed_visibility_change_still_reports_the_record() {
    let flaky = ticket();
    let gateway = ScriptedGateway::new();
    gateway.on(Call::Void, &flaky, [Answer::Status(429)]);
    let worker = Worker::new(
        gateway,
        InMemoryQueue::failing(QueueError(PortFailure::Unavailable("throttled".into()))),
        InMemoryQueue::new(),
        settings(),
    );

    let outcome = deliver(&worker, vec![record("flaky", &command(&flaky), 1)]).await;

    assert_eq!(outcome.failed_message_ids(), ["flaky"]);
    assert_eq!(
        outcome.records[0].disposition,
        Disposition::Retry { visibility_s: None }
    );
}

#[tokio::test]
async fn transient_at_max_receive_count_is_dead_lettered_as_retries_exhausted() {
    let flaky = ticket();
    let gateway = ScriptedGateway::answering(&[(Call::Void, &flaky, Answer::Status(500))]);
    let worker = worker(gateway);

    let outcome = deliver(&worker, vec![record("last", &command(&flaky), 15)]).await;

    assert!(outcome.failed_message_ids().is_empty());
    assert_eq!(outcome.records[0].class, Some(Class::Transient));
    assert_eq!(
        outcome.records[0].error_code(),
        Some(ErrorCode::RetriesExhausted)
    );
    let (_, source, dlq) = worker.into_parts();
    assert!(source.visibility_changes().is_empty());
    let sent = dlq.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].attributes["error_code"], "retries_exhausted");
    assert_eq!(sent[0].attributes["receive_count"], "15");
    assert_eq!(sent[0].attributes["source_message_id"], "last");
    assert!(sent[0].attributes["error_message"].contains("500"));
}

#[tokio::test]
async fn rejected_void_and_rejected_refund_are_dead_lettered_with_their_codes() {
    let (void_rejected, refund_rejected) = (ticket(), ticket());
    let gateway = ScriptedGateway::new();
    gateway.on(Call::Void, &void_rejected, [Answer::Status(422)]);
    gateway.on(Call::Refund, &refund_rejected, [Answer::Status(400)]);
    let worker = worker(gateway);

    let outcome = deliver(
        &worker,
        vec![
            record("void", &command(&void_rejected), 1),
            record("refund", &command(&refund_rejected), 2),
        ],
    )
    .await;

    assert!(outcome.failed_message_ids().is_empty());
    assert_eq!(outcome.records[0].class, Some(Class::Permanent));
    assert_eq!(
        outcome.records[0].error_code(),
        Some(ErrorCode::VoidRejected)
    );
    assert_eq!(
        outcome.records[1].error_code(),
        Some(ErrorCode::RefundRejected)
    );
    // The void first: the refused void made no refund call, the refused refund followed
    // a confirmed void.
    assert_eq!(outcome.records[0].refund_status(), None);
    assert_eq!(outcome.records[1].void_status(), Some(200));
    let (_, source, dlq) = worker.into_parts();
    assert!(source.visibility_changes().is_empty());
    let codes: Vec<(String, String)> = dlq
        .sent()
        .iter()
        .map(|m| {
            (
                m.attributes["source_message_id"].clone(),
                m.attributes["error_code"].clone(),
            )
        })
        .collect();
    assert_eq!(codes.len(), 2);
    assert!(codes.contains(&("void".into(), "void_rejected".into())));
    assert!(codes.contains(&("refund".into(), "refund_rejected".into())));
}

#[tokio::test]
async fn poison_bodies_are_dead_lettered_without_any_upstream_call() {
    let valid = command(&ticket());
    let wrong_types = valid.replacen("\"ticket_id\":\"", "\"ticket_id\":42,\"x\":\"", 1);
    let non_uuid = {
        let mut value: serde_json::Value = serde_json::from_str(&valid).unwrap();
        value["ticket_id"] = "not-a-uuid".into();
        value.to_string()
    };
    let bodies = [
        "not json",
        "{}",
        wrong_types.as_str(),
        non_uuid.as_str(),
        "[]",
    ];
    let records = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| record(&format!("p{i}"), b, 1))
        .collect();
    let worker = worker(ScriptedGateway::new());

    let outcome = deliver(&worker, records).await;

    assert!(outcome.failed_message_ids().is_empty());
    for record in &outcome.records {
        assert_eq!(record.class, Some(Class::Poison), "{record:?}");
        assert_eq!(record.error_code(), Some(ErrorCode::InvalidCommand));
    }
    let (gateway, _, dlq) = worker.into_parts();
    assert!(gateway.seen().is_empty());
    let sent = dlq.sent();
    assert_eq!(sent.len(), bodies.len());
    for message in &sent {
        assert!(
            bodies.contains(&message.body.as_str()),
            "body kept unchanged"
        );
        assert_eq!(message.attributes["error_code"], "invalid_command");
        let error_message = &message.attributes["error_message"];
        assert!(!error_message.is_empty() && error_message.len() <= 1024);
        assert_eq!(message.attributes["name"], "RefundTicket");
    }
}

#[tokio::test]
async fn a_failed_dead_letter_copy_reports_the_record_failed() {
    let rejected = ticket();
    let gateway = ScriptedGateway::new();
    gateway.on(Call::Void, &rejected, [Answer::Status(422)]);
    let worker = Worker::new(
        gateway,
        InMemoryQueue::new(),
        InMemoryQueue::failing(QueueError(PortFailure::Rejected("AccessDenied".into()))),
        settings(),
    );

    let outcome = deliver(
        &worker,
        vec![
            record("rejected", &command(&rejected), 1),
            record("poison", "{}", 1),
        ],
    )
    .await;

    assert_eq!(outcome.failed_message_ids(), ["rejected", "poison"]);
    assert!(matches!(
        outcome.records[0].disposition,
        Disposition::DeadLetterFailed {
            code: ErrorCode::VoidRejected,
            ..
        }
    ));
    assert!(matches!(
        outcome.records[1].disposition,
        Disposition::DeadLetterFailed {
            code: ErrorCode::InvalidCommand,
            ..
        }
    ));
}

#[tokio::test]
async fn a_panicking_record_fails_alone() {
    let (ok, panics) = (ticket(), ticket());
    let gateway = ScriptedGateway::answering(&[(Call::Refund, &panics, Answer::Panic)]);
    let worker = worker(gateway);

    let outcome = deliver(
        &worker,
        vec![
            record("ok-1", &command(&ok), 1),
            record("panics", &command(&panics), 1),
            record("ok-2", &command(&ticket()), 1),
        ],
    )
    .await;

    assert_eq!(outcome.failed_message_ids(), ["panics"]);
    assert_eq!(outcome.records[1].disposition, Disposition::Panicked);
    assert_eq!(outcome.records[0].disposition, Disposition::Done);
    assert_eq!(outcome.records[2].disposition, Disposition::Done);
}

#[tokio::test]
async fn at_the_deadline_unfinished_records_fail_and_started_copies_finish() {
    let (hangs, done, rejected_late) = (ticket(), ticket(), ticket());
    let gateway = ScriptedGateway::new();
    gateway.on(Call::Void, &hangs, [Answer::Hang]);
    // Rejected before the cutoff; its copy takes until well after it.
    gateway.on(
        Call::Void,
        &rejected_late,
        [Answer::Slow(Duration::from_millis(150), 422)],
    );
    let dlq = SlowQueue {
        delay: Duration::from_millis(800),
        ..SlowQueue::default()
    };
    let margin = Duration::from_millis(200);
    let worker = Worker::new(
        gateway,
        InMemoryQueue::new(),
        dlq,
        Settings {
            deadline_margin: margin,
            ..settings()
        },
    );

    let started = Instant::now();
    let outcome = worker
        .handle_batch(
            event(vec![
                record("hangs", &command(&hangs), 1),
                record("done", &command(&done), 1),
                record("rejected-late", &command(&rejected_late), 1),
            ]),
            deadline_in(margin + Duration::from_millis(400)),
        )
        .await;
    let took = started.elapsed();

    assert_eq!(outcome.failed_message_ids(), ["hangs"]);
    assert_eq!(outcome.records[0].disposition, Disposition::Unfinished);
    assert_eq!(
        outcome.records[0].ticket_id.map(|t| t.to_string()),
        Some(hangs.clone())
    );
    assert_eq!(outcome.records[1].disposition, Disposition::Done);
    assert!(matches!(
        outcome.records[2].disposition,
        Disposition::DeadLettered {
            code: ErrorCode::VoidRejected,
            ..
        }
    ));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let (_, _, dlq) = worker.into_parts();
    assert_eq!(dlq.inner.sent().len(), 1);
}

#[tokio::test]
async fn a_deadline_already_inside_the_margin_leaves_every_record_unfinished() {
    let worker = worker(ScriptedGateway::new());

    let outcome = worker
        .handle_batch(
            event(vec![
                record("a", &command(&ticket()), 1),
                record("b", "{}", 1),
            ]),
            deadline_in(Duration::from_millis(500)),
        )
        .await;

    assert_eq!(outcome.failed_message_ids(), ["a", "b"]);
    let (gateway, _, dlq) = worker.into_parts();
    assert!(gateway.seen().is_empty() && dlq.sent().is_empty());
}

#[tokio::test]
async fn records_without_a_message_id_are_never_reported_with_an_empty_identifier() {
    let flaky = ticket();
    let gateway = ScriptedGateway::new();
    gateway.on(Call::Void, &flaky, [Answer::Status(503)]);
    let mut anonymous = record("x", &command(&flaky), 1);
    anonymous["messageId"] = "".into();
    let mut missing = record("y", &command(&flaky), 1);
    missing.as_object_mut().unwrap().remove("messageId");
    gateway.on(Call::Void, &flaky, [Answer::Status(503)]);
    let worker = worker(gateway);

    let outcome = deliver(&worker, vec![anonymous, missing, record("named", "{}", 1)]).await;

    assert!(
        outcome.records[..2]
            .iter()
            .all(|r| r.disposition.stays_on_queue())
    );
    let response = outcome.response();
    assert!(
        response
            .batch_item_failures
            .iter()
            .all(|f| !f.item_identifier.is_empty())
    );
    assert!(response.batch_item_failures.is_empty());
}

#[tokio::test]
async fn upstream_calls_carry_a_generated_correlation_id_when_the_message_has_none_or_a_bad_one() {
    // Two tickets: the messages of one ticket would share one attempt.
    let (t, u) = (ticket(), ticket());
    let mut without = record("without", &command(&t), 1);
    without["messageAttributes"]
        .as_object_mut()
        .unwrap()
        .remove("correlation_id");
    let mut bad = record("bad", &command(&u), 1);
    bad["messageAttributes"]["correlation_id"]["stringValue"] = "has spaces".into();
    let worker = worker(ScriptedGateway::new());

    deliver(&worker, vec![without, bad]).await;

    let (gateway, _, _) = worker.into_parts();
    let seen = gateway.seen();
    assert_eq!(seen.len(), 4);
    assert!(
        seen.iter().all(|s| s.correlation_id.starts_with("gen_")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn records_run_concurrently_and_so_do_the_two_calls_of_each() {
    let gateway = ScriptedGateway::new();
    let tickets: Vec<String> = (0..5).map(|_| ticket()).collect();
    for t in &tickets {
        gateway.on(
            Call::Void,
            t,
            [Answer::Slow(Duration::from_millis(300), 200)],
        );
        gateway.on(
            Call::Refund,
            t,
            [Answer::Slow(Duration::from_millis(300), 200)],
        );
    }
    let records = first_deliveries(&tickets);
    let worker = worker(gateway);

    let started = Instant::now();
    let outcome = deliver(&worker, records).await;

    assert!(outcome.failed_message_ids().is_empty());
    // Ten calls of 300 ms each, one after the other, would take 3 s.
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_concurrency_bound_holds() {
    let gateway = ScriptedGateway::new();
    let tickets: Vec<String> = (0..4).map(|_| ticket()).collect();
    for t in &tickets {
        gateway.on(
            Call::Void,
            t,
            [Answer::Slow(Duration::from_millis(200), 200)],
        );
    }
    let records = first_deliveries(&tickets);
    let worker = worker_with(
        gateway,
        Settings {
            max_concurrent_records: 2,
            ..settings()
        },
    );

    let started = Instant::now();
    let outcome = deliver(&worker, records).await;

    assert!(outcome.failed_message_ids().is_empty());
    // Two waves of 200 ms.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(1000),
        "{took:?}"
    );
}

/// A function whose timeout cannot hold `DEADLINE_MARGIN_MS` plus an SQS operation says so
/// once, at its first event, and still handles the batch.
#[tokio::test]
async fn a_time_budget_too_small_is_logged_once_at_the_first_event() {
    let logs = testkit::LogBuffer::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber(tracing::Level::INFO));
    let worker = worker(ScriptedGateway::new());
    let invoke = async |deadline_ms| {
        let mut context = lambda_runtime::Context::default();
        context.deadline = deadline_ms;
        let payload = event(first_deliveries(&[ticket()]));
        worker
            .handle(lambda_runtime::LambdaEvent::new(payload, context))
            .await
            .unwrap()
    };
    const WARNING: &str = "cannot hold DEADLINE_MARGIN_MS plus the SQS operation timeout";
    // Two seconds of margin and five of SQS do not fit in six.
    let answer = invoke(deadline_in(Duration::from_secs(6))).await;
    assert!(answer.batch_item_failures.is_empty());
    assert_eq!(logs.text().matches(WARNING).count(), 1, "{}", logs.text());
    invoke(deadline_in(Duration::from_secs(6))).await;
    assert_eq!(logs.text().matches(WARNING).count(), 1, "logged again");

    let roomy = worker_with(ScriptedGateway::new(), settings());
    let mut context = lambda_runtime::Context::default();
    context.deadline = far_deadline();
    let payload = event(first_deliveries(&[ticket()]));
    roomy
        .handle(lambda_runtime::LambdaEvent::new(payload, context))
        .await
        .unwrap();
    assert_eq!(
        logs.text().matches(WARNING).count(),
        1,
        "a roomy budget warned"
    );
}
