//! `PUT /ticket-refund/{ticket_id}`: every row of the contract's answer table against the
//! in-memory queue, then with the refund records, the accept write on the 202 path.

use lambda_http::http::header;
use refund_shared::{
    command::RefundTicket,
    port::PortFailure,
    queue::{InMemoryQueue, QueueError},
    store::{InMemoryRefundStore, RefundRecord, RefundStatus, StoreError},
    subject::Subject,
};
use time::OffsetDateTime;

use crate::common::*;

#[tokio::test]
async fn accepts_a_refund_and_queues_the_command_with_its_attributes() {
    let queue = InMemoryQueue::new();
    let answer = answer(&queue, fixture_request("api-refund.json")).await;

    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.headers["correlation-id"], "checkout-7f3a9c");
    let body = answer.body.as_object().unwrap();
    assert_eq!(body.len(), 4, "{body:?}");
    assert_eq!(body["ticket_id"], TICKET);
    assert_eq!(body["idempotency_key"], expected_key(TICKET).as_str());
    assert_eq!(body["status"], "accepted");

    let sent = queue.sent();
    assert_eq!(sent.len(), 1);
    let command = RefundTicket::decode(&sent[0].body).unwrap();
    assert_eq!(
        command.header.id.to_string(),
        body["command_id"].as_str().unwrap()
    );
    assert_eq!(command.header.idempotency_key, expected_key(TICKET));
    assert_eq!(command.ticket_id.to_string(), TICKET);
    assert_eq!(
        sent[0].attributes,
        std::collections::BTreeMap::from([
            ("name".to_owned(), "RefundTicket".to_owned()),
            ("correlation_id".to_owned(), "checkout-7f3a9c".to_owned()),
            (
                "requested_by".to_owned(),
                "7c1e5f3a-2b4d-4e6f-8a9b-0c1d2e3f4a5b".to_owned()
            ),
        ])
    );
}

#[tokio::test]
async fn an_uppercase_ticket_id_goes_downstream_in_lowercase() {
    let queue = InMemoryQueue::new();
    let answer = answer(&queue, event("PUT", &TICKET.to_uppercase(), &[])).await;
    assert_eq!(answer.status, 202);
    assert_eq!(answer.body["ticket_id"], TICKET);
    assert_eq!(
        answer.body["idempotency_key"],
        expected_key(TICKET).as_str()
    );
    assert!(queue.sent()[0].body.contains(TICKET));
}

#[tokio::test]
async fn a_double_request_carries_the_same_key_twice() {
    let queue = InMemoryQueue::new();
    let first = answer(&queue, event("PUT", TICKET, &[])).await;
    let second = answer(&queue, event("PUT", TICKET, &[])).await;
    assert_eq!((first.status, second.status), (202, 202));
    assert_ne!(first.body["command_id"], second.body["command_id"]);
    let keys: Vec<String> = queue
        .sent()
        .iter()
        .map(|m| {
            RefundTicket::decode(&m.body)
                .unwrap()
                .header
                .idempotency_key
        })
        .collect();
    assert_eq!(keys, vec![expected_key(TICKET); 2]);
}

#[tokio::test]
async fn a_client_key_is_echoed_and_carried_but_never_replaces_k() {
    let queue = InMemoryQueue::new();
    let answer = answer(&queue, fixture_request("api-refund-client-key.json")).await;
    assert_eq!(answer.status, 202);
    assert_eq!(answer.body["client_idempotency_key"], "browser-retry-0001");
    assert_eq!(
        answer.body["idempotency_key"],
        expected_key(TICKET).as_str()
    );
    let sent = &queue.sent()[0];
    assert_eq!(
        sent.attributes["client_idempotency_key"],
        "browser-retry-0001"
    );
    assert_eq!(
        RefundTicket::decode(&sent.body)
            .unwrap()
            .header
            .idempotency_key,
        expected_key(TICKET)
    );
}

#[tokio::test]
async fn bad_ticket_ids_are_refused_and_nothing_is_queued() {
    let queue = InMemoryQueue::new();
    let answer_ = answer(&queue, fixture_request("api-refund-bad-ticket-id.json")).await;
    assert_error(&answer_, 400, "invalid_ticket_id");
    for bad in [
        "",
        "0f5d8c6e3a1b4c2d9e8f7a6b5c4d3e2f",
        "{0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f}",
    ] {
        assert_error(
            &answer(&queue, event("PUT", bad, &[])).await,
            400,
            "invalid_ticket_id",
        );
    }
    assert!(queue.sent().is_empty());
}

#[tokio::test]
async fn bad_idempotency_keys_are_refused() {
    let queue = InMemoryQueue::new();
    let long = "k".repeat(129);
    for bad in ["", "two words", long.as_str(), "caf\u{e9}"] {
        let answer = answer(&queue, event("PUT", TICKET, &[("idempotency-key", bad)])).await;
        assert_error(&answer, 400, "invalid_idempotency_key");
    }
    assert!(queue.sent().is_empty());
}

#[tokio::test]
async fn an_unavailable_queue_answers_503_with_retry_after() {
    let queue = InMemoryQueue::failing(QueueError(PortFailure::Unavailable("timed out".into())));
    let answer = answer(&queue, event("PUT", TICKET, &[("correlation-id", "c-1")])).await;
    assert_error(&answer, 503, "queue_unavailable");
    assert_eq!(answer.headers[header::RETRY_AFTER], "1");
    assert_eq!(answer.headers["correlation-id"], "c-1");
}

#[tokio::test]
async fn a_queue_that_refuses_answers_500_without_detail() {
    let queue = InMemoryQueue::failing(QueueError(PortFailure::Rejected(
        "AccessDenied: arn:aws:sqs:secret".into(),
    )));
    let answer = answer(&queue, event("PUT", TICKET, &[])).await;
    assert_error(&answer, 500, "internal_error");
    assert!(!answer.body.to_string().contains("secret"));
}

#[tokio::test]
async fn a_put_creates_an_accepted_record_and_queues_the_command() {
    let records = enabled(InMemoryRefundStore::new());
    let queue = InMemoryQueue::new();
    let answer = answer_with(&queue, Some(&records), fixture_request("api-refund.json")).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.body.as_object().unwrap().len(), 4);
    assert_eq!(answer.body["status"], "accepted");

    let sent = queue.sent();
    assert_eq!(sent.len(), 1);
    let command = RefundTicket::decode(&sent[0].body).unwrap();
    let record = stored(&records.store, TICKET);
    assert_eq!(record.status, RefundStatus::Accepted);
    assert_eq!(record.idempotency_key.to_string(), expected_key(TICKET));
    assert_eq!(record.correlation_id, "checkout-7f3a9c");
    assert_eq!(
        record.requested_by.as_ref().map(Subject::as_str),
        Some("7c1e5f3a-2b4d-4e6f-8a9b-0c1d2e3f4a5b")
    );
    assert_eq!(record.attempts, 0);
    // The record's accepted_at is the command's published_at (to the microsecond).
    let published = command.header.published_at;
    assert!((record.accepted_at - published).abs() < time::Duration::microseconds(1));
}

#[tokio::test]
async fn a_put_on_a_succeeded_ticket_answers_200_with_the_record_and_queues_nothing() {
    let refunded = record(TICKET, RefundStatus::Succeeded, 0);
    let records = holding(refunded.clone());
    let queue = InMemoryQueue::new();
    let answer = answer_with(
        &queue,
        Some(&records),
        event(
            "PUT",
            &TICKET.to_uppercase(),
            &[("correlation-id", "again-1")],
        ),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body, serde_json::to_value(&refunded).unwrap());
    assert_eq!(answer.headers["correlation-id"], "again-1");
    assert!(queue.sent().is_empty());
    assert_eq!(
        stored(&records.store, TICKET),
        refunded,
        "nothing was written"
    );
}

/// A PUT of `TICKET` with `headers`, to a store holding `existing`.
async fn put_on(
    existing: &RefundRecord,
    headers: &[(&str, &str)],
) -> (Answer, InMemoryQueue, Enabled) {
    let records = holding(existing.clone());
    let queue = InMemoryQueue::new();
    let answer = answer_with(&queue, Some(&records), event("PUT", TICKET, headers)).await;
    (answer, queue, records)
}

#[tokio::test]
async fn a_put_on_a_failed_ticket_accepts_it_again_and_queues() {
    let failed = record(TICKET, RefundStatus::Failed, 0);
    let (answer, queue, records) = put_on(&failed, &[("correlation-id", "retry-2")]).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(queue.sent().len(), 1);
    let record = stored(&records.store, TICKET);
    assert_eq!(record.status, RefundStatus::Accepted);
    assert_eq!(record.correlation_id, "retry-2");
    assert_eq!(record.failure_reason, None);
}

/// An `accepted` or `processing` record whose command was queued more than the quiet
/// period ago gets the command queued again (it may be the one that is lost, and K makes
/// a repeat harmless): the record names the new command and is otherwise left as it is.
#[tokio::test]
async fn a_put_on_a_refund_in_progress_queues_again_after_the_quiet_period() {
    for current in [RefundStatus::Accepted, RefundStatus::Processing] {
        let existing = record(TICKET, current, 0);
        let (answer, queue, records) = put_on(&existing, &[]).await;
        assert_eq!(answer.status, 202, "{current}: {}", answer.body);
        let sent = queue.sent();
        assert_eq!(sent.len(), 1);
        let command = RefundTicket::decode(&sent[0].body).unwrap();
        assert_eq!(answer.body["command_id"], command.header.id.to_string());
        let now = stored(&records.store, TICKET);
        assert_eq!(now.command_id, Some(command.header.id));
        assert!(now.queued_at > existing.queued_at, "{now:?}");
        assert_eq!(
            RefundRecord {
                queued_at: existing.queued_at,
                command_id: existing.command_id,
                ..now
            },
            existing,
            "only the queue's bookkeeping changes"
        );
    }
}

/// Within the quiet period a PUT on an open record queues nothing and answers 202 with
/// the command already on its way (contract section 1a): a hot ticket cannot multiply
/// upstream calls.
#[tokio::test]
async fn a_put_within_the_quiet_period_queues_nothing_and_answers_the_queued_command() {
    for current in [RefundStatus::Accepted, RefundStatus::Processing] {
        let existing = RefundRecord {
            queued_at: Some(OffsetDateTime::now_utc() - time::Duration::seconds(10)),
            ..record(TICKET, current, 0)
        };
        let (answer, queue, records) = put_on(&existing, &[("idempotency-key", "click-2")]).await;
        assert_eq!(answer.status, 202, "{current}: {}", answer.body);
        assert_eq!(queue.sent().len(), 0);
        assert_eq!(
            answer.body,
            serde_json::json!({
                "ticket_id": TICKET,
                "idempotency_key": expected_key(TICKET),
                "command_id": existing.command_id.unwrap().to_string(),
                "status": "accepted",
                "client_idempotency_key": "click-2",
            })
        );
        assert_eq!(stored(&records.store, TICKET), existing);
    }
}

/// A double click: the first PUT queues, the second (within the quiet period) answers
/// the same command and queues nothing.
#[tokio::test]
async fn a_double_click_queues_one_command() {
    let records = enabled(InMemoryRefundStore::new());
    let queue = InMemoryQueue::new();
    let first = answer_with(&queue, Some(&records), event("PUT", TICKET, &[])).await;
    let second = answer_with(&queue, Some(&records), event("PUT", TICKET, &[])).await;
    assert_eq!((first.status, second.status), (202, 202));
    assert_eq!(queue.sent().len(), 1);
    assert_eq!(first.body["command_id"], second.body["command_id"]);
    assert_eq!(
        stored(&records.store, TICKET)
            .command_id
            .map(|id| id.to_string()),
        first.body["command_id"].as_str().map(str::to_owned)
    );
}

#[tokio::test]
async fn a_put_still_queues_and_answers_202_when_the_store_fails() {
    logs();
    for (i, error) in [
        StoreError::Port(PortFailure::Unavailable("timed out".into())),
        StoreError::Port(PortFailure::Rejected("ResourceNotFoundException".into())),
        StoreError::Conflict("changed".into()),
        StoreError::Corrupt("bad item".into()),
    ]
    .into_iter()
    .enumerate()
    {
        let records = enabled(InMemoryRefundStore::failing(error));
        let queue = InMemoryQueue::new();
        let correlation = format!("store-down-{i}");
        let answer = answer_with(
            &queue,
            Some(&records),
            event("PUT", TICKET, &[("correlation-id", &correlation)]),
        )
        .await;
        assert_eq!(answer.status, 202, "{}", answer.body);
        assert_eq!(queue.sent().len(), 1);
        let logs = logs();
        assert!(
            logs.lines().any(|line| line.contains(&correlation)
                && line.contains("status_not_recorded")
                && line.contains(TICKET)
                && line.contains("WARN")),
            "{logs}"
        );
    }
}

#[tokio::test]
async fn a_put_refused_by_the_queue_still_answers_503_with_a_store() {
    let records = enabled(InMemoryRefundStore::new());
    let queue = InMemoryQueue::failing(QueueError(PortFailure::Unavailable("timed out".into())));
    let answer = answer_with(&queue, Some(&records), event("PUT", TICKET, &[])).await;
    assert_error(&answer, 503, "queue_unavailable");
    assert_eq!(answer.headers[header::RETRY_AFTER], "1");
    // Nothing was queued, so the record must not read `accepted` forever.
    let (record,) = single(records.store.records());
    assert_eq!(record.status, RefundStatus::Failed);
    assert!(
        record
            .failure_reason
            .as_deref()
            .is_some_and(|reason| reason.starts_with("not queued")),
        "{record:?}"
    );
}

/// A re-queue the queue refuses is undone: the record names the command before again,
/// and a `processing` refund is never marked failed for it (contract section 1a).
#[tokio::test]
async fn a_refused_put_leaves_a_record_it_did_not_accept_alone() {
    let processing = record(TICKET, RefundStatus::Processing, 1);
    let records = holding(processing.clone());
    let queue = InMemoryQueue::failing(QueueError(PortFailure::Unavailable("timed out".into())));
    let answer = answer_with(&queue, Some(&records), event("PUT", TICKET, &[])).await;
    assert_error(&answer, 503, "queue_unavailable");
    assert_eq!(records.store.records(), vec![processing]);
}

fn single(mut records: Vec<RefundRecord>) -> (RefundRecord,) {
    assert_eq!(records.len(), 1, "{records:?}");
    (records.remove(0),)
}

#[tokio::test]
async fn a_bad_put_writes_no_record() {
    let records = enabled(InMemoryRefundStore::new());
    let queue = InMemoryQueue::new();
    for request in [
        event("PUT", "not-a-ticket", &[]),
        event("PUT", TICKET, &[("idempotency-key", "two words")]),
        event("PUT", TICKET, &[("correlation-id", "two words")]),
    ] {
        let answer = answer_with(&queue, Some(&records), request).await;
        assert_eq!(answer.status, 400, "{}", answer.body);
    }
    assert!(records.store.records().is_empty());
    assert!(queue.sent().is_empty());
}
