//! The batch with a bus, over in-memory twins: one attempt per ticket, each message its
//! own disposition, one `PutEvents` per batch, per-entry refusals settled per record, and
//! the record's trace carried to the services and onto its event (contract 3, 4, 9).

mod common;

use common::*;
use refund_shared::{
    announce::{Ending, InMemoryEventBus, PublishError},
    queue::InMemoryQueue,
    verdict::ErrorCode,
};
use refund_worker::{Disposition, Worker};
use serde_json::json;

const TRACE: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

type BusWorker = Worker<
    ScriptedGateway,
    InMemoryQueue,
    InMemoryQueue,
    refund_shared::disabled::Disabled,
    InMemoryEventBus,
>;

/// A worker with an in-memory bus, over a gateway answering as `script` says.
fn bus_worker(script: &[(Call, &str, Answer)]) -> BusWorker {
    in_memory_worker(ScriptedGateway::answering(script)).with_bus(Some(InMemoryEventBus::new()))
}

fn traced(mut record: serde_json::Value) -> serde_json::Value {
    record["attributes"]["AWSTraceHeader"] = json!(TRACE);
    record
}

#[tokio::test]
async fn a_batch_publishes_once_and_each_ticket_once() {
    let (a, b, c) = (ticket(), ticket(), ticket());
    let worker = bus_worker(&[
        (Call::Refund, &b, Answer::Status(503)),
        (Call::Void, &c, Answer::Status(422)),
    ]);
    let mut records = deliveries(&[("a1", &a), ("b1", &b), ("a2", &a), ("c1", &c)]);
    records.push(record("poison", "{}", 1));

    let outcome = deliver(&worker, records).await;

    assert_eq!(
        endings(&outcome),
        [
            ("done", None),
            ("retry", None),
            ("done", None),
            ("dead_lettered", Some(ErrorCode::VoidRejected)),
            ("dead_lettered", Some(ErrorCode::InvalidCommand)),
        ]
    );
    assert_eq!(outcome.failed_message_ids(), ["b1"]);
    let bus = worker.bus().unwrap();
    assert_eq!(bus.calls(), 1, "one PutEvents per batch");
    let published: Vec<(String, &str)> = bus
        .published()
        .iter()
        .map(|e| (e.ticket_id.to_string(), e.detail_type()))
        .collect();
    assert_eq!(
        published,
        [
            (a.clone(), "TicketRefunded"),
            (c.clone(), "TicketRefundFailed")
        ]
    );
    // Both of a's messages wait for the one event, and name it.
    assert_eq!(outcome.records[0].event_id, outcome.records[2].event_id);
    assert!(outcome.records[0].event_id.is_some());
    assert_eq!(tally(&outcome), Some((2, 0)));
    let (gateway, _, _) = worker.into_parts();
    assert_eq!(
        gateway.seen().iter().filter(|s| s.ticket_id == a).count(),
        2,
        "a's two messages share one attempt"
    );
}

#[tokio::test]
async fn a_refused_ticket_refunded_hands_back_only_the_messages_waiting_for_it() {
    let (a, c) = (ticket(), ticket());
    let worker = bus_worker(&[(Call::Void, &c, Answer::Status(422))]);
    let refused = PublishError::Entry("InternalFailure: try again".into());
    worker
        .bus()
        .unwrap()
        .refuse(Some((refused, Some("TicketRefunded"))));
    let mut records = deliveries(&[("a1", &a), ("c1", &c)]);
    records.insert(1, record("a2", &command(&a), 15));

    let outcome = deliver(&worker, records).await;

    assert_eq!(
        outcome.records[0].disposition,
        Disposition::EventUnpublished {
            visibility_s: Some(3)
        }
    );
    assert_eq!(
        endings(&outcome)[1..],
        [
            // The copy at its last receive goes to the DLQ, to be published by a redrive.
            ("dead_lettered", Some(ErrorCode::EventUnpublished)),
            // The failure's event is not refused, and its message is settled already.
            ("dead_lettered", Some(ErrorCode::VoidRejected)),
        ]
    );
    assert_eq!(outcome.failed_message_ids(), ["a1"]);
    assert_eq!(tally(&outcome), Some((1, 1)));
    let published = worker.bus().unwrap().published();
    assert!(matches!(published[..], [ref only] if matches!(only.ending, Ending::Failed { .. })));
}

#[tokio::test]
async fn the_records_trace_reaches_both_services_its_event_and_its_dead_letter_copy() {
    let (t, u) = (ticket(), ticket());
    let worker = bus_worker(&[(Call::Refund, &u, Answer::Status(422))]);
    let records = deliveries(&[("m", &t), ("n", &u)]);

    deliver(&worker, records.into_iter().map(traced).collect()).await;

    let published = worker.bus().unwrap().published();
    assert_eq!(published.len(), 2);
    assert!(
        published
            .iter()
            .all(|e| e.trace.as_ref().map(|t| t.as_str()) == Some(TRACE))
    );
    let (gateway, _, dlq) = worker.into_parts();
    let seen = gateway.seen();
    assert_eq!(seen.len(), 4);
    assert!(
        seen.iter().all(|s| s.trace.as_deref() == Some(TRACE)),
        "{seen:?}"
    );
    let copies = dlq.sent();
    assert_eq!(copies[0].trace.as_ref().map(|t| t.as_str()), Some(TRACE));
}

#[tokio::test]
async fn a_panic_in_a_tickets_attempt_fails_that_tickets_messages_only() {
    let (t, u) = (ticket(), ticket());
    let worker = bus_worker(&[(Call::Void, &t, Answer::Panic)]);
    let mut records = deliveries(&[("t1", &t), ("u1", &u)]);
    records.push(record("t2", &command(&t), 2));

    let outcome = deliver(&worker, records).await;

    let dispositions: Vec<&str> = endings(&outcome).iter().map(|(d, _)| *d).collect();
    assert_eq!(dispositions, ["panicked", "done", "panicked"]);
    assert_eq!(outcome.failed_message_ids(), ["t1", "t2"]);
    assert_eq!(worker.bus().unwrap().published().len(), 1);
}

/// The batch's event tally: (published, unpublished).
fn tally(outcome: &refund_worker::BatchOutcome) -> Option<(u32, u32)> {
    outcome.events.map(|e| (e.published, e.unpublished))
}
