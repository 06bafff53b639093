//! The status routes (contract section 8) and the PUT's status write, against the
//! in-memory store and queue.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use futures::FutureExt;
use refund::status::{CursorKey, InMemoryRefundStore, RefundStatus, StoreError};

use super::*;
use crate::cursor_key::{CursorKeys, KeyUnavailable};

type Enabled = Status<InMemoryRefundStore>;

fn key(byte: u8) -> CursorKey {
    CursorKey::from_bytes(&[byte; 32]).unwrap()
}

fn enabled(store: InMemoryRefundStore) -> Enabled {
    Status::new(store, CursorKeys::fixed(key(42)))
}

/// A ticket id made from a number, so tests can make many.
fn ticket(n: u128) -> String {
    Uuid::from_u128(0x0f5d_8c6e_3a1b_4c2d_9e8f_0000_0000_0000 + n).to_string()
}

/// A record as the store would hold it, accepted `minute` minutes into a fixed hour.
fn record(ticket_id: &str, status: RefundStatus, minute: i64) -> RefundRecord {
    let accepted_at = OffsetDateTime::from_unix_timestamp(1_795_412_349 + 60 * minute).unwrap();
    RefundRecord {
        ticket_id: ticket_id.parse().unwrap(),
        status,
        idempotency_key: expected_key(ticket_id),
        correlation_id: format!("c-{minute}"),
        requested_by: Some("7c1e5f3a-2b4d-4e6f-8a9b-0c1d2e3f4a5b".into()),
        attempts: u32::from(status != RefundStatus::Accepted),
        last_error: None,
        failure_reason: (status == RefundStatus::Failed).then(|| "void answered HTTP 422".into()),
        accepted_at,
        updated_at: accepted_at + time::Duration::seconds(5),
        completed_at: status
            .is_final()
            .then(|| accepted_at + time::Duration::seconds(5)),
        receipt_voided_at: None,
        payment_refunded_at: None,
        interactions: Vec::new(),
    }
}

fn stored(store: &InMemoryRefundStore, ticket_id: &str) -> RefundRecord {
    store
        .records()
        .into_iter()
        .find(|record| record.ticket_id.to_string() == ticket_id)
        .unwrap()
}

/// `GET /ticket-refunds?<query>` as API Gateway sends it (from the committed fixture).
fn list_event(query: &str) -> Request {
    list_event_at("/ticket-refunds", "$default", query)
}

fn list_event_at(path: &str, stage: &str, query: &str) -> Request {
    let mut event: Value = serde_json::from_str(&fixture("api-list-refunds.json")).unwrap();
    event["rawPath"] = path.into();
    event["requestContext"]["http"]["path"] = path.into();
    event["requestContext"]["stage"] = stage.into();
    event["rawQueryString"] = query.into();
    event
        .as_object_mut()
        .unwrap()
        .remove("queryStringParameters");
    from_str(&event.to_string()).unwrap()
}

fn list_method(method: &str) -> Request {
    let mut event: Value = serde_json::from_str(&fixture("api-list-refunds.json")).unwrap();
    event["requestContext"]["http"]["method"] = method.into();
    from_str(&event.to_string()).unwrap()
}

async fn list(status: &Enabled, query: &str) -> Answer {
    answer_with(&InMemoryQueue::new(), Some(status), list_event(query)).await
}

fn ids(answer: &Answer) -> Vec<String> {
    answer.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["ticket_id"].as_str().unwrap().to_owned())
        .collect()
}

/// 25 records over every status, some accepted in the same minute (ties are ordered
/// by ticket id).
fn populated() -> InMemoryRefundStore {
    let store = InMemoryRefundStore::new();
    for n in 0..25u128 {
        let status = RefundStatus::ALL[(n % 4) as usize];
        store.insert(record(&ticket(n), status, (n / 2) as i64));
    }
    store
}

/// Newest first, then by ticket id, the contract's listing order.
fn expected_order(store: &InMemoryRefundStore, filter: Option<RefundStatus>) -> Vec<String> {
    let mut records: Vec<_> = store
        .records()
        .into_iter()
        .filter(|record| filter.is_none_or(|status| record.status == status))
        .collect();
    records.sort_by_key(|record| (record.accepted_at, record.ticket_id.to_string()));
    records
        .into_iter()
        .rev()
        .map(|record| record.ticket_id.to_string())
        .collect()
}

// ---------------------------------------------------------------- PUT with a store

#[tokio::test]
async fn a_put_creates_an_accepted_record_and_queues_the_command() {
    let status = enabled(InMemoryRefundStore::new());
    let queue = InMemoryQueue::new();
    let answer = answer_with(
        &queue,
        Some(&status),
        from_str(&fixture("api-refund.json")).unwrap(),
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.body.as_object().unwrap().len(), 4);
    assert_eq!(answer.body["status"], "accepted");

    let sent = queue.sent();
    assert_eq!(sent.len(), 1);
    let command = RefundTicket::decode(&sent[0].body).unwrap();
    let record = stored(&status.store, TICKET);
    assert_eq!(record.status, RefundStatus::Accepted);
    assert_eq!(record.idempotency_key, expected_key(TICKET));
    assert_eq!(record.correlation_id, "checkout-7f3a9c");
    assert_eq!(
        record.requested_by.as_deref(),
        Some("7c1e5f3a-2b4d-4e6f-8a9b-0c1d2e3f4a5b")
    );
    assert_eq!(record.attempts, 0);
    // The record's accepted_at is the command's published_at (to the microsecond).
    let published = command.header.published_at;
    assert!((record.accepted_at - published).abs() < time::Duration::microseconds(1));
}

#[tokio::test]
async fn a_put_on_a_succeeded_ticket_answers_200_with_the_record_and_queues_nothing() {
    let store = InMemoryRefundStore::new();
    let refunded = record(TICKET, RefundStatus::Succeeded, 0);
    store.insert(refunded.clone());
    let status = enabled(store);
    let queue = InMemoryQueue::new();
    let answer = answer_with(
        &queue,
        Some(&status),
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
        stored(&status.store, TICKET),
        refunded,
        "nothing was written"
    );
}

#[tokio::test]
async fn a_put_on_a_failed_ticket_accepts_it_again_and_queues() {
    let store = InMemoryRefundStore::new();
    store.insert(record(TICKET, RefundStatus::Failed, 0));
    let status = enabled(store);
    let queue = InMemoryQueue::new();
    let answer = answer_with(
        &queue,
        Some(&status),
        event("PUT", TICKET, &[("correlation-id", "retry-2")]),
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(queue.sent().len(), 1);
    let record = stored(&status.store, TICKET);
    assert_eq!(record.status, RefundStatus::Accepted);
    assert_eq!(record.correlation_id, "retry-2");
    assert_eq!(record.failure_reason, None);
}

/// `accepted` and `processing` records are left as they are, and the command is queued
/// again: it may be the one that is lost, and K makes a repeat harmless.
#[tokio::test]
async fn a_put_on_a_refund_in_progress_queues_again_and_leaves_the_record() {
    for current in [RefundStatus::Accepted, RefundStatus::Processing] {
        let store = InMemoryRefundStore::new();
        let existing = record(TICKET, current, 0);
        store.insert(existing.clone());
        let status = enabled(store);
        let queue = InMemoryQueue::new();
        let answer = answer_with(&queue, Some(&status), event("PUT", TICKET, &[])).await;
        assert_eq!(answer.status, 202, "{current}: {}", answer.body);
        assert_eq!(queue.sent().len(), 1);
        assert_eq!(stored(&status.store, TICKET), existing);
    }
}

#[tokio::test]
async fn a_put_still_queues_and_answers_202_when_the_store_fails() {
    logs();
    for (i, error) in [
        StoreError::Unavailable("timed out".into()),
        StoreError::Rejected("ResourceNotFoundException".into()),
        StoreError::Conflict("changed".into()),
        StoreError::Corrupt("bad item".into()),
    ]
    .into_iter()
    .enumerate()
    {
        let status = enabled(InMemoryRefundStore::failing(error));
        let queue = InMemoryQueue::new();
        let correlation = format!("store-down-{i}");
        let answer = answer_with(
            &queue,
            Some(&status),
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
    let status = enabled(InMemoryRefundStore::new());
    let queue = InMemoryQueue::failing(QueueError::Unavailable("timed out".into()));
    let answer = answer_with(&queue, Some(&status), event("PUT", TICKET, &[])).await;
    assert_error(&answer, 503, "queue_unavailable");
    assert_eq!(answer.headers[header::RETRY_AFTER], "1");
    // Nothing was queued, so the record must not read `accepted` forever.
    let (record,) = single(status.store.records());
    assert_eq!(record.status, RefundStatus::Failed);
    assert!(
        record
            .failure_reason
            .as_deref()
            .is_some_and(|reason| reason.starts_with("not queued")),
        "{record:?}"
    );
}

#[tokio::test]
async fn a_refused_put_leaves_a_record_it_did_not_accept_alone() {
    let store = InMemoryRefundStore::new();
    let processing = record(TICKET, RefundStatus::Processing, 1);
    store.insert(processing.clone());
    let status = enabled(store);
    let queue = InMemoryQueue::failing(QueueError::Unavailable("timed out".into()));
    let answer = answer_with(&queue, Some(&status), event("PUT", TICKET, &[])).await;
    assert_error(&answer, 503, "queue_unavailable");
    assert_eq!(status.store.records(), vec![processing]);
}

fn single(mut records: Vec<RefundRecord>) -> (RefundRecord,) {
    assert_eq!(records.len(), 1, "{records:?}");
    (records.remove(0),)
}

#[tokio::test]
async fn a_bad_put_writes_no_record() {
    let status = enabled(InMemoryRefundStore::new());
    let queue = InMemoryQueue::new();
    for request in [
        event("PUT", "not-a-ticket", &[]),
        event("PUT", TICKET, &[("idempotency-key", "two words")]),
        event("PUT", TICKET, &[("correlation-id", "two words")]),
    ] {
        let answer = answer_with(&queue, Some(&status), request).await;
        assert_eq!(answer.status, 400, "{}", answer.body);
    }
    assert!(status.store.records().is_empty());
    assert!(queue.sent().is_empty());
}

// ---------------------------------------------------------------- GET one

#[tokio::test]
async fn get_answers_the_record() {
    let store = InMemoryRefundStore::new();
    let processing = record(TICKET, RefundStatus::Processing, 3);
    store.insert(processing.clone());
    let status = enabled(store);
    let queue = InMemoryQueue::new();
    for request in [
        from_str(&fixture("api-get-refund.json")).unwrap(),
        event("GET", &TICKET.to_uppercase(), &[]),
    ] {
        let answer = answer_with(&queue, Some(&status), request).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body, serde_json::to_value(&processing).unwrap());
    }
    assert!(queue.sent().is_empty());
}

/// The record's JSON carries exactly the field names of contract section 8.
#[tokio::test]
async fn the_record_has_the_contract_fields() {
    let store = InMemoryRefundStore::new();
    store.insert(record(TICKET, RefundStatus::Succeeded, 0));
    let status = enabled(store);
    let answer = answer_with(
        &InMemoryQueue::new(),
        Some(&status),
        event("GET", TICKET, &[]),
    )
    .await;
    let mut fields: Vec<&str> = answer
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    let mut contract = vec![
        "ticket_id",
        "status",
        "idempotency_key",
        "correlation_id",
        "requested_by",
        "attempts",
        "last_error",
        "failure_reason",
        "accepted_at",
        "updated_at",
        "completed_at",
        "receipt_voided_at",
        "payment_refunded_at",
        "interactions",
    ];
    contract.sort_unstable();
    assert_eq!(fields, contract);
    assert_eq!(answer.body["accepted_at"], "2026-11-23T05:39:09.000000Z");
}

#[tokio::test]
async fn get_of_an_unknown_ticket_is_404_refund_not_found() {
    let status = enabled(populated());
    let answer = answer_with(
        &InMemoryQueue::new(),
        Some(&status),
        event("GET", TICKET, &[("correlation-id", "who-1")]),
    )
    .await;
    assert_error(&answer, 404, "refund_not_found");
    assert_eq!(answer.headers["correlation-id"], "who-1");
}

#[tokio::test]
async fn get_of_a_bad_ticket_id_is_400() {
    let status = enabled(populated());
    for bad in ["", "not-a-ticket", "0f5d8c6e3a1b4c2d9e8f7a6b5c4d3e2f"] {
        let answer =
            answer_with(&InMemoryQueue::new(), Some(&status), event("GET", bad, &[])).await;
        assert_error(&answer, 400, "invalid_ticket_id");
    }
    let answer = answer_with(
        &InMemoryQueue::new(),
        Some(&status),
        from_str(&fixture("api-refund-bad-ticket-id.json"))
            .map(|request: Request| {
                let (mut parts, body) = request.into_parts();
                parts.method = Method::GET;
                Request::from_parts(parts, body)
            })
            .unwrap(),
    )
    .await;
    assert_error(&answer, 400, "invalid_ticket_id");
}

/// A GET only logs and echoes the correlation id: a refused one is replaced by a
/// generated one, as openapi.yaml describes the GETs.
#[tokio::test]
async fn a_get_with_a_bad_correlation_id_goes_on_with_a_generated_one() {
    let store = populated();
    let known = ticket(0);
    let status = enabled(store);
    let long = "c".repeat(129);
    for bad in ["two words", long.as_str()] {
        let mut listing = list_event("limit=1");
        listing
            .headers_mut()
            .insert("correlation-id", HeaderValue::from_str(bad).unwrap());
        for (request, expected) in [
            (event("GET", &known, &[("correlation-id", bad)]), 200),
            (event("GET", TICKET, &[("correlation-id", bad)]), 404),
            (listing, 200),
        ] {
            let answer = answer_with(&InMemoryQueue::new(), Some(&status), request).await;
            assert_eq!(answer.status, expected, "{}", answer.body);
            assert!(
                answer.headers["correlation-id"]
                    .to_str()
                    .unwrap()
                    .starts_with("gen_")
            );
        }
    }
}

/// Without the table every GET says so, whatever else is wrong with it.
#[tokio::test]
async fn without_a_store_the_gets_answer_404_status_not_enabled() {
    let queue = InMemoryQueue::new();
    let mut requests = vec![
        from_str(&fixture("api-get-refund.json")).unwrap(),
        from_str(&fixture("api-list-refunds.json")).unwrap(),
        event("GET", "not-a-ticket", &[]),
        event("GET", TICKET, &[("correlation-id", "two words")]),
        list_event("status=done&limit=0&cursor=forged"),
        list_event("status=failed&status=failed"),
    ];
    let mut bad_correlation = list_event("");
    bad_correlation
        .headers_mut()
        .insert("correlation-id", HeaderValue::from_static("two words"));
    requests.push(bad_correlation);
    for request in requests {
        let answer = answer(&queue, request).await;
        assert_error(&answer, 404, "status_not_enabled");
    }
    assert!(queue.sent().is_empty());
}

#[tokio::test]
async fn get_answers_503_with_retry_after_while_the_store_is_unavailable() {
    for error in [
        StoreError::Unavailable("timed out".into()),
        StoreError::Conflict("changed".into()),
    ] {
        let status = enabled(InMemoryRefundStore::failing(error));
        for request in [event("GET", TICKET, &[]), list_event("status=failed")] {
            let answer = answer_with(&InMemoryQueue::new(), Some(&status), request).await;
            assert_error(&answer, 503, "status_unavailable");
            assert_eq!(answer.headers[header::RETRY_AFTER], "1");
        }
    }
}

/// A store that refuses (no table, no permission) or holds an unreadable item is not
/// worth a retry: 500, as for a queue that refuses, without the detail.
#[tokio::test]
async fn get_answers_500_without_detail_when_the_store_refuses() {
    for error in [
        StoreError::Rejected("AccessDenied: arn:aws:dynamodb:secret".into()),
        StoreError::Corrupt("secret item".into()),
    ] {
        let status = enabled(InMemoryRefundStore::failing(error));
        for request in [event("GET", TICKET, &[]), list_event("")] {
            let answer = answer_with(&InMemoryQueue::new(), Some(&status), request).await;
            assert_error(&answer, 500, "internal_error");
            assert!(!answer.body.to_string().contains("secret"));
        }
    }
}

// ---------------------------------------------------------------- listing

#[tokio::test]
async fn the_listing_fixture_answers_a_page() {
    let status = enabled(populated());
    let answer = answer_with(
        &InMemoryQueue::new(),
        Some(&status),
        from_str(&fixture("api-list-refunds.json")).unwrap(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.headers["correlation-id"], "support-4e1b7e");
    assert_eq!(answer.body.as_object().unwrap().len(), 2);
    assert_eq!(
        ids(&answer),
        expected_order(&status.store, Some(RefundStatus::Accepted))
    );
    assert!(answer.body["next_cursor"].is_null());
}

#[tokio::test]
async fn a_listing_is_newest_first_and_filtered_by_status() {
    let status = enabled(populated());
    for filter in RefundStatus::ALL {
        let answer = list(&status, &format!("status={filter}&limit=100")).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let expected = expected_order(&status.store, Some(filter));
        assert!(!expected.is_empty());
        assert_eq!(ids(&answer), expected);
        for item in answer.body["items"].as_array().unwrap() {
            assert_eq!(item["status"], filter.as_str());
        }
        assert!(answer.body["next_cursor"].is_null());
    }
    let answer = list(&status, "limit=100").await;
    assert_eq!(ids(&answer), expected_order(&status.store, None));
}

#[tokio::test]
async fn an_empty_store_lists_no_items_and_no_cursor() {
    let status = enabled(InMemoryRefundStore::new());
    let answer = list(&status, "").await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body,
        serde_json::json!({"items": [], "next_cursor": null})
    );
}

/// Following `next_cursor` until it is `null` yields every record once, in order.
#[tokio::test]
async fn pages_follow_next_cursor_until_null_without_duplicates_or_gaps() {
    let status = enabled(populated());
    for filter in [
        None,
        Some(RefundStatus::Failed),
        Some(RefundStatus::Accepted),
    ] {
        for limit in [1, 2, 3, 7, 24, 25, 100] {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            for page in 0.. {
                assert!(page <= 25, "the listing does not end");
                let mut query = format!("limit={limit}");
                if let Some(filter) = filter {
                    query.push_str(&format!("&status={filter}"));
                }
                if let Some(cursor) = &cursor {
                    query.push_str(&format!("&cursor={cursor}"));
                }
                let answer = list(&status, &query).await;
                assert_eq!(answer.status, 200, "{query}: {}", answer.body);
                let items = ids(&answer);
                assert!(items.len() <= limit);
                seen.extend(items);
                match answer.body["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
            let unique: HashSet<&String> = seen.iter().collect();
            assert_eq!(unique.len(), seen.len(), "{filter:?} {limit}: duplicates");
            assert_eq!(
                seen,
                expected_order(&status.store, filter),
                "{filter:?} {limit}"
            );
        }
    }
}

#[tokio::test]
async fn the_default_limit_is_20() {
    let status = enabled(populated());
    let answer = list(&status, "").await;
    assert_eq!(ids(&answer).len(), 20);
    assert!(answer.body["next_cursor"].is_string());
}

#[tokio::test]
async fn bad_limits_are_refused() {
    let status = enabled(populated());
    for bad in [
        "0",
        "101",
        "abc",
        "-1",
        "1.5",
        "+5",
        "%205",
        "1000",
        "99999999999",
    ] {
        let answer = list(&status, &format!("limit={bad}")).await;
        assert_error(&answer, 400, "invalid_limit");
        assert!(
            answer.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("1 to 100")
        );
    }
    for good in ["1", "100", "007"] {
        assert_eq!(list(&status, &format!("limit={good}")).await.status, 200);
    }
}

#[tokio::test]
async fn bad_statuses_are_refused() {
    let status = enabled(populated());
    for bad in [
        "Accepted",
        "done",
        "pending",
        "failed,succeeded",
        "%20failed",
    ] {
        let answer = list(&status, &format!("status={bad}")).await;
        assert_error(&answer, 400, "invalid_status");
        assert!(
            answer.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("accepted, processing, succeeded, failed")
        );
    }
}

#[tokio::test]
async fn altered_or_foreign_cursors_are_refused() {
    let status = enabled(populated());
    let first = list(&status, "limit=2").await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    assert_eq!(
        list(&status, &format!("limit=2&cursor={cursor}"))
            .await
            .status,
        200
    );

    let mut altered = cursor.clone().into_bytes();
    altered[12] = if altered[12] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let other_key = Status::new(populated(), CursorKeys::fixed(key(43)));
    let foreign = list(&other_key, "limit=2").await.body["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    for bad in [
        altered.as_str(),
        &cursor[..cursor.len() - 1],
        &format!("{cursor}A"),
        "forged",
        "%00%FF",
        foreign.as_str(),
    ] {
        let answer = list(&status, &format!("limit=2&cursor={bad}")).await;
        assert_error(&answer, 400, "invalid_cursor");
    }
}

#[tokio::test]
async fn a_cursor_from_another_status_filter_is_refused() {
    let status = enabled(populated());
    let of_failed = list(&status, "status=failed&limit=1").await.body["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let of_all = list(&status, "limit=1").await.body["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    for query in [
        format!("status=succeeded&cursor={of_failed}"),
        format!("cursor={of_failed}"),
        format!("status=failed&cursor={of_all}"),
    ] {
        let answer = list(&status, &query).await;
        assert_error(&answer, 400, "invalid_cursor");
    }
    assert_eq!(
        list(&status, &format!("status=failed&cursor={of_failed}"))
            .await
            .status,
        200
    );
}

/// An empty value is a bad value, as openapi.yaml's schemas say; only absence means "any".
#[tokio::test]
async fn empty_parameters_are_refused() {
    let status = enabled(populated());
    for (query, code) in [
        ("status=", "invalid_status"),
        ("limit=", "invalid_limit"),
        ("cursor=", "invalid_cursor"),
    ] {
        assert_error(&list(&status, query).await, 400, code);
    }
    let plain = list(&status, "").await;
    assert_eq!(ids(&plain).len(), 20);
}

/// A parameter given twice is refused with its own code, even with the same value twice.
#[tokio::test]
async fn repeated_parameters_are_refused() {
    let status = enabled(populated());
    let cursor = list(&status, "limit=1").await.body["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    for (query, code) in [
        (
            "status=failed&status=succeeded".to_owned(),
            "invalid_status",
        ),
        ("status=failed&status=failed".to_owned(), "invalid_status"),
        ("status=&status=failed".to_owned(), "invalid_status"),
        ("limit=5&limit=5".to_owned(), "invalid_limit"),
        (format!("cursor={cursor}&cursor={cursor}"), "invalid_cursor"),
    ] {
        let answer = list(&status, &query).await;
        assert_error(&answer, 400, code);
    }
}

#[tokio::test]
async fn unknown_parameters_are_ignored() {
    let status = enabled(populated());
    let answer = list(&status, "limit=3&sort=asc&_=1795412349").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(ids(&answer).len(), 3);
}

#[tokio::test]
async fn the_listing_is_found_behind_a_stage_prefix() {
    let status = enabled(populated());
    for (path, stage) in [
        ("/prod/ticket-refunds", "prod"),
        ("/ticket-refunds", "prod"),
        ("/ticket-refunds/", "$default"),
    ] {
        let answer = answer_with(
            &InMemoryQueue::new(),
            Some(&status),
            list_event_at(path, stage, "limit=1"),
        )
        .await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        assert_eq!(ids(&answer).len(), 1);
    }
}

// ---------------------------------------------------------------- the cursor key

/// Keys that fail their first `failures` reads, counting reads.
fn lazy_keys(failures: usize) -> (Arc<AtomicUsize>, CursorKeys) {
    let reads = Arc::new(AtomicUsize::new(0));
    let counter = reads.clone();
    let keys = CursorKeys::lazy(Arc::new(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < failures {
                Err(KeyUnavailable("AccessDeniedException: arn:secret".into()))
            } else {
                Ok(key(42))
            }
        }
        .boxed()
    }));
    (reads, keys)
}

/// The PUT and the GET by id never wait for the key; the first listing reads it once.
#[tokio::test]
async fn the_cursor_key_is_read_at_the_first_listing_only() {
    let (reads, keys) = lazy_keys(0);
    let status = Status::new(populated(), keys);
    let queue = InMemoryQueue::new();
    assert_eq!(
        answer_with(&queue, Some(&status), event("PUT", TICKET, &[]))
            .await
            .status,
        202
    );
    assert_eq!(
        answer_with(&queue, Some(&status), event("GET", TICKET, &[]))
            .await
            .status,
        200
    );
    assert_eq!(
        answer_with(&queue, Some(&status), list_event("status=bad"))
            .await
            .status,
        400
    );
    assert_eq!(reads.load(Ordering::SeqCst), 0);
    for _ in 0..3 {
        assert_eq!(
            answer_with(&queue, Some(&status), list_event("limit=1"))
                .await
                .status,
            200
        );
    }
    assert_eq!(reads.load(Ordering::SeqCst), 1);
}

/// A key that cannot be read answers 503, and is read again at the next listing.
#[tokio::test]
async fn an_unreadable_cursor_key_answers_503_and_is_retried() {
    let (reads, keys) = lazy_keys(1);
    let status = Status::new(populated(), keys);
    let answer = list(&status, "").await;
    assert_error(&answer, 503, "status_unavailable");
    assert_eq!(answer.headers[header::RETRY_AFTER], "1");
    assert!(!answer.body.to_string().contains("secret"));
    assert_eq!(list(&status, "").await.status, 200);
    assert_eq!(list(&status, "").await.status, 200);
    assert_eq!(reads.load(Ordering::SeqCst), 2);
}

// ---------------------------------------------------------------- methods

#[tokio::test]
async fn other_methods_get_405_with_the_resources_allow() {
    let status = enabled(populated());
    for with_store in [false, true] {
        let status = with_store.then_some(&status);
        for method in ["POST", "DELETE", "PATCH", "OPTIONS", "HEAD"] {
            let answer =
                answer_with(&InMemoryQueue::new(), status, event(method, TICKET, &[])).await;
            assert_error(&answer, 405, "method_not_allowed");
            assert_eq!(answer.headers[header::ALLOW], "GET, PUT");
        }
        for method in ["PUT", "POST", "DELETE", "PATCH", "OPTIONS", "HEAD"] {
            let queue = InMemoryQueue::new();
            let answer = answer_with(&queue, status, list_method(method)).await;
            assert_error(&answer, 405, "method_not_allowed");
            assert_eq!(answer.headers[header::ALLOW], "GET");
            assert!(queue.sent().is_empty());
        }
    }
}

// ---------------------------------------------------------------- logs

/// Refused query values and path segments are never logged; the listing's line carries
/// the parsed filter and the correlation id.
#[tokio::test]
async fn status_logs_carry_no_refused_value() {
    const MARK: &str = "Status-MARK-5500005555555559";
    logs();
    let status = enabled(populated());
    let queue = InMemoryQueue::new();
    let cases = [
        (400, event("GET", &format!("bad-{MARK}"), &[])),
        (400, list_event(&format!("status={MARK}"))),
        (400, list_event(&format!("limit={MARK}"))),
        (400, list_event(&format!("cursor={MARK}"))),
        (200, list_event(&format!("status=failed&{MARK}=1"))),
    ];
    for (i, (expected, request)) in cases.into_iter().enumerate() {
        let mut context = lambda_http::Context::default();
        context.request_id = format!("status-log-case-{i}");
        let answer = answer_with(&queue, Some(&status), request.with_lambda_context(context)).await;
        assert_eq!(answer.status, expected, "{}", answer.body);
    }
    let logs = logs();
    for i in 0..4 {
        assert!(logs.contains(&format!("status-log-case-{i}")), "{logs}");
    }
    assert!(
        logs.lines()
            .any(|line| line.contains("refund statuses listed")
                && line.contains("status=\"failed\"")),
        "{logs}"
    );
    assert!(!logs.contains(MARK), "{logs}");
}

// ---------------------------------------------------------------- never panics

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/ticket-refunds".to_owned()),
        Just("/prod/ticket-refunds".to_owned()),
        super::ticket().prop_map(|ticket| format!("/ticket-refund/{ticket}")),
        "(/[A-Za-z0-9._~%!$&'()*+,;=:@-]{0,16}){0,5}",
    ]
}

fn query_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("status".to_owned()),
        Just("limit".to_owned()),
        Just("cursor".to_owned()),
        ".{0,8}",
    ]
}

fn query_value(cursors: Vec<String>) -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "accepted",
            "processing",
            "succeeded",
            "failed",
            "",
            "0",
            "1",
            "20",
            "100",
            "101",
        ])
        .prop_map(str::to_owned),
        proptest::sample::select(cursors),
        ".{0,90}",
    ]
}

/// A genuine cursor of every filter, signed with `key(42)`.
fn genuine_cursors() -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let status = enabled(populated());
    std::iter::once(String::new())
        .chain(RefundStatus::ALL.map(|status| format!("status={status}&")))
        .map(|filter| {
            let answer = runtime.block_on(list(&status, &format!("{filter}limit=1")));
            answer.body["next_cursor"].as_str().unwrap().to_owned()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(300)))]

    /// Any GET, on any path with any query parameters, with or without the store, with a
    /// store that works or not: one of the contract's answers, never a 500 (a panic).
    #[test]
    fn gets_never_panic_and_always_answer_in_contract(
        path in path(),
        path_ticket in proptest::option::of(super::ticket()),
        query in proptest::collection::vec((query_key(), query_value(genuine_cursors())), 0..5),
        with_store in any::<bool>(),
        failing in any::<bool>(),
        correlation in proptest::option::of(header_value()),
    ) {
        let uri = format!("https://api.example.com{path}");
        let Ok(builder) = lambda_http::http::Request::builder().method("GET").uri(uri.as_str()).body(Body::Empty) else {
            return Ok(());
        };
        let mut parameters: HashMap<String, Vec<String>> = HashMap::new();
        for (key, value) in query {
            parameters.entry(key).or_default().push(value);
        }
        let mut request = builder.with_query_string_parameters(parameters);
        if let Some(ticket) = path_ticket {
            request = request.with_path_parameters(HashMap::from([("ticket_id".to_owned(), ticket)]));
        }
        if let Some(value) = correlation.and_then(|value| HeaderValue::from_bytes(&value).ok()) {
            request.headers_mut().insert("correlation-id", value);
        }
        let status = enabled(populated());
        if failing {
            status.store.set_failure(Some(StoreError::Unavailable("down".into())));
        }
        let queue = InMemoryQueue::new();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let answer = runtime.block_on(answer_with(&queue, with_store.then_some(&status), request));
        prop_assert!(queue.sent().is_empty());
        if !with_store {
            prop_assert_eq!(answer.status, 404, "{}", answer.body);
            prop_assert_eq!(&answer.body["error"]["code"], "status_not_enabled");
            return Ok(());
        }
        let allowed: &[u16] = if failing { &[400, 503] } else { &[200, 400, 404] };
        prop_assert!(allowed.contains(&answer.status), "{} {}", answer.status, answer.body);
        match answer.status {
            200 if answer.body.get("items").is_some() => {
                prop_assert!(answer.body["items"].is_array());
                prop_assert!(answer.body["next_cursor"].is_string() || answer.body["next_cursor"].is_null());
            }
            200 => prop_assert!(answer.body["ticket_id"].is_string()),
            404 => prop_assert_eq!(&answer.body["error"]["code"], "refund_not_found"),
            _ => prop_assert!(answer.body["error"]["code"].is_string()),
        }
    }
}
