//! `GET /ticket-refund/{ticket_id}`: one record, in the contract's fields; and without
//! the refund table, every GET's 404 `status_not_enabled`.

use lambda_http::{
    Request,
    http::{HeaderValue, Method, header},
    request::from_str,
};
use refund_shared::{
    port::PortFailure,
    queue::InMemoryQueue,
    store::{InMemoryRefundStore, RefundStatus, StoreError},
};

use crate::common::*;

#[tokio::test]
async fn get_answers_the_record() {
    let processing = record(TICKET, RefundStatus::Processing, 3);
    let records = holding(processing.clone());
    let queue = InMemoryQueue::new();
    for request in [
        fixture_request("api-get-refund.json"),
        event("GET", &TICKET.to_uppercase(), &[]),
    ] {
        let answer = answer_with(&queue, Some(&records), request).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body, serde_json::to_value(&processing).unwrap());
    }
    assert!(queue.sent().is_empty());
}

/// The record's JSON carries exactly the field names of contract section 8.
#[tokio::test]
async fn the_record_has_the_contract_fields() {
    let records = holding(record(TICKET, RefundStatus::Succeeded, 0));
    let answer = answer_with(
        &InMemoryQueue::new(),
        Some(&records),
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
        "queued_at",
        "command_id",
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
    let records = enabled(populated());
    let answer = answer_with(
        &InMemoryQueue::new(),
        Some(&records),
        event("GET", TICKET, &[("correlation-id", "who-1")]),
    )
    .await;
    assert_error(&answer, 404, "refund_not_found");
    assert_eq!(answer.headers["correlation-id"], "who-1");
}

#[tokio::test]
async fn get_of_a_bad_ticket_id_is_400() {
    let records = enabled(populated());
    for bad in ["", "not-a-ticket", "0f5d8c6e3a1b4c2d9e8f7a6b5c4d3e2f"] {
        let answer = answer_with(
            &InMemoryQueue::new(),
            Some(&records),
            event("GET", bad, &[]),
        )
        .await;
        assert_error(&answer, 400, "invalid_ticket_id");
    }
    let answer = answer_with(
        &InMemoryQueue::new(),
        Some(&records),
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

/// Without the table every GET says so, whatever else is wrong with it.
#[tokio::test]
async fn without_a_store_the_gets_answer_404_status_not_enabled() {
    let queue = InMemoryQueue::new();
    let mut requests = vec![
        fixture_request("api-get-refund.json"),
        fixture_request("api-list-refunds.json"),
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

/// A store that is unavailable or changed under the read is worth a retry: 503 with
/// `Retry-After`. One that refuses (no table, no permission) or holds an unreadable item is
/// not: 500, as for a queue that refuses. Neither answer carries the store's detail.
#[tokio::test]
async fn a_failing_store_answers_503_when_a_retry_may_help_else_500_without_detail() {
    let retry = |error| (error, 503, "status_unavailable");
    let refuse = |error| (error, 500, "internal_error");
    let cases = [
        retry(StoreError::Port(PortFailure::Unavailable(
            "timed out: secret".into(),
        ))),
        retry(StoreError::Conflict("changed: secret".into())),
        refuse(StoreError::Port(PortFailure::Rejected(
            "AccessDenied: arn:aws:dynamodb:secret".into(),
        ))),
        refuse(StoreError::Corrupt("secret item".into())),
    ];
    for (error, status, code) in cases {
        let records = enabled(InMemoryRefundStore::failing(error));
        for request in [
            event("GET", TICKET, &[]),
            list_event("status=failed"),
            list_event(""),
        ] {
            let answer = answer_with(&InMemoryQueue::new(), Some(&records), request).await;
            assert_error(&answer, status, code);
            assert_eq!(
                answer.headers.get(header::RETRY_AFTER).is_some(),
                status == 503
            );
            if status == 503 {
                assert_eq!(answer.headers[header::RETRY_AFTER], "1");
            }
            assert!(
                !answer.body.to_string().contains("secret"),
                "{}",
                answer.body
            );
        }
    }
}
