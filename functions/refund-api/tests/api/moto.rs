//! The function as `main` wires it, against real SQS, DynamoDB and Secrets Manager
//! endpoints (one moto server): the PUT writes the record and queues, the GET reads it, the
//! listing pages with a key read lazily from Secrets Manager. The handler's every answer
//! is tested against the in-memory twins (`tests/api`); this checks the adapters
//! fit together.

use lambda_http::{Request, request::from_str};
use refund_api::{CursorKeys, RefundRecords};
use refund_shared::{
    config::CursorKeySource,
    correlation::CorrelationId,
    idempotency::IdempotencyKey,
    queue::SqsQueue,
    store::{DynamoRefundStore, Progress, RefundRequest, RefundStore, Transition},
};
use serde_json::Value;
use testkit::{Moto, loader_for};

use crate::common::{answer_with, list_event, on_ticket, ticket};
use time::OffsetDateTime;

const TABLE: &str = "ticket-refunds-test";

/// The committed fixture `name` as a request on `ticket`.
fn fixture_on(name: &str, ticket: &str) -> Request {
    from_str(&on_ticket(name, ticket).to_string()).unwrap()
}

async fn answer(
    queue: &SqsQueue,
    records: &RefundRecords<DynamoRefundStore>,
    request: Request,
) -> (u16, Value) {
    let answer = answer_with(queue, Some(records), request).await;
    (answer.status, answer.body)
}

#[tokio::test]
async fn put_get_and_list_against_real_endpoints() {
    let moto = Moto::start();
    let endpoint = moto.endpoint.clone();
    refund_shared::store::create_table(
        &refund_shared::aws::dynamodb_client(moto.loader()).await,
        TABLE,
    )
    .await
    .unwrap();
    let queue_url = testkit::create_queue(
        &refund_shared::aws::sqs_client(moto.loader()).await,
        "RefundTicket",
    )
    .await;
    let queue = SqsQueue::new(
        refund_shared::aws::sqs_client(moto.loader()).await,
        &queue_url,
    );
    let secrets = refund_shared::aws::secrets_client(moto.loader()).await;
    // Secrets Manager takes a secret's name where it takes its ARN; the secret does not
    // exist yet.
    let records = RefundRecords::new(
        DynamoRefundStore::new(
            refund_shared::aws::dynamodb_client(moto.loader()).await,
            TABLE,
        ),
        CursorKeys::from_source(
            CursorKeySource::Secret("cursor-key".to_owned()),
            move || loader_for(&endpoint),
        ),
    );

    // Three refunds accepted: each recorded and queued.
    let tickets: Vec<String> = (1..=3).map(ticket).collect();
    for ticket in &tickets {
        let (code, body) = answer(&queue, &records, fixture_on("api-refund.json", ticket)).await;
        assert_eq!(code, 202, "{body}");
    }
    let sqs = refund_shared::aws::sqs_client(moto.loader()).await;
    let mut queued = 0;
    for _ in 0..5 {
        let got = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        queued += got.messages().len();
    }
    assert_eq!(queued, 3);

    let (code, body) = answer(
        &queue,
        &records,
        fixture_on("api-get-refund.json", &tickets[0]),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["ticket_id"], tickets[0].as_str());
    assert_eq!(body["status"], "accepted");
    assert_eq!(body["correlation_id"], "checkout-7f3a9c");
    let (code, body) = answer(
        &queue,
        &records,
        fixture_on("api-get-refund.json", &ticket(99)),
    )
    .await;
    assert_eq!(
        (code, &body["error"]["code"]),
        (404, &"refund_not_found".into())
    );

    // The key's secret is missing: 503, and the failure is not kept.
    let (code, body) = answer(&queue, &records, list_event("limit=1")).await;
    assert_eq!(
        (code, &body["error"]["code"]),
        (503, &"status_unavailable".into())
    );
    secrets
        .create_secret()
        .name("cursor-key")
        .secret_string("k".repeat(48))
        .send()
        .await
        .unwrap();

    // A refunded ticket is answered 200 with its record, and nothing is queued.
    let request = RefundRequest {
        ticket_id: tickets[1].parse().unwrap(),
        idempotency_key: IdempotencyKey::for_ticket(tickets[1].parse().unwrap()),
        correlation_id: CorrelationId::parse("c").unwrap(),
        requested_by: None,
        accepted_at: OffsetDateTime::now_utc(),
        command_id: uuid::Uuid::new_v4(),
    };
    let now = OffsetDateTime::now_utc();
    records
        .store
        .record(&request, Transition::Begin, now)
        .await
        .unwrap();
    records
        .store
        .record(
            &request,
            Transition::Succeed {
                progress: Progress::default(),
            },
            now,
        )
        .await
        .unwrap();
    let (code, body) = answer(&queue, &records, fixture_on("api-refund.json", &tickets[1])).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "succeeded");
    let got = sqs
        .receive_message()
        .queue_url(&queue_url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert!(got.messages().is_empty(), "nothing queued");

    // Paging one at a time through every status: each ticket once, newest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let query = match &cursor {
            Some(cursor) => format!("limit=1&cursor={cursor}"),
            None => "limit=1".to_owned(),
        };
        let (code, body) = answer(&queue, &records, list_event(&query)).await;
        assert_eq!(code, 200, "{body}");
        for item in body["items"].as_array().unwrap() {
            seen.push(item["ticket_id"].as_str().unwrap().to_owned());
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let newest_first: Vec<String> = tickets.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    let (code, body) = answer(&queue, &records, list_event("status=failed")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["items"], serde_json::json!([]));
    assert!(body["next_cursor"].is_null());
}
