//! The function as `main` wires it, against real SQS, DynamoDB and Secrets Manager
//! endpoints (one moto server): the PUT writes the record and queues, the GET reads it, the
//! listing pages with a key read lazily from Secrets Manager. The handler's every answer
//! is tested against the in-memory twins (`src/handler/tests`); this checks the adapters
//! fit together.

use lambda_http::{Body, Request, request::from_str};
use refund::{
    config::CursorKeySource,
    queue::SqsQueue,
    status::{DynamoRefundStore, Progress, RefundRequest, RefundStore},
};
use refund_api::{
    cursor_key::CursorKeys,
    handler::{Status, handle},
};
use serde_json::Value;
use testkit::{Moto, loader_for};
use time::OffsetDateTime;

const TABLE: &str = "ticket-refunds-test";

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn ticket(n: u128) -> String {
    uuid::Uuid::from_u128(0x5f4b_8a0e_8a4e_4a55_9f0f_0000_0000_0000 + n).to_string()
}

fn put(ticket: &str) -> Request {
    let mut event = fixture("api-refund.json");
    event["rawPath"] = format!("/ticket-refund/{ticket}").into();
    event["requestContext"]["http"]["path"] = event["rawPath"].clone();
    event["pathParameters"]["ticket_id"] = ticket.into();
    from_str(&event.to_string()).unwrap()
}

fn get(ticket: &str) -> Request {
    let mut event = fixture("api-get-refund.json");
    event["rawPath"] = format!("/ticket-refund/{ticket}").into();
    event["requestContext"]["http"]["path"] = event["rawPath"].clone();
    event["pathParameters"]["ticket_id"] = ticket.into();
    from_str(&event.to_string()).unwrap()
}

fn list(query: &str) -> Request {
    let mut event = fixture("api-list-refunds.json");
    event["rawQueryString"] = query.into();
    event
        .as_object_mut()
        .unwrap()
        .remove("queryStringParameters");
    from_str(&event.to_string()).unwrap()
}

async fn answer(
    queue: &SqsQueue,
    status: &Status<DynamoRefundStore>,
    request: Request,
) -> (u16, Value) {
    let response = handle(queue, Some(status), request).await.unwrap();
    let code = response.status().as_u16();
    let body = match response.body() {
        Body::Text(text) => serde_json::from_str(text).unwrap(),
        other => panic!("body is not text: {other:?}"),
    };
    (code, body)
}

#[tokio::test]
async fn put_get_and_list_against_real_endpoints() {
    let moto = Moto::start();
    let endpoint = moto.endpoint.clone();
    moto.create_refund_table(TABLE).await;
    let queue_url = moto.create_queue("RefundTicket").await;
    let queue = SqsQueue::new(moto.sqs().await, &queue_url);
    let secrets = moto.secretsmanager().await;
    // Secrets Manager takes a secret's name where it takes its ARN; the secret does not
    // exist yet.
    let status = Status::new(
        DynamoRefundStore::new(moto.dynamodb().await, TABLE),
        CursorKeys::from_source(
            CursorKeySource::Secret("cursor-key".to_owned()),
            move || loader_for(&endpoint),
        ),
    );

    // Three refunds accepted: each recorded and queued.
    let tickets: Vec<String> = (1..=3).map(ticket).collect();
    for ticket in &tickets {
        let (code, body) = answer(&queue, &status, put(ticket)).await;
        assert_eq!(code, 202, "{body}");
    }
    let sqs = moto.sqs().await;
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

    let (code, body) = answer(&queue, &status, get(&tickets[0])).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["ticket_id"], tickets[0].as_str());
    assert_eq!(body["status"], "accepted");
    assert_eq!(body["correlation_id"], "checkout-7f3a9c");
    let (code, body) = answer(&queue, &status, get(&ticket(99))).await;
    assert_eq!(
        (code, &body["error"]["code"]),
        (404, &"refund_not_found".into())
    );

    // The key's secret is missing: 503, and the failure is not kept.
    let (code, body) = answer(&queue, &status, list("limit=1")).await;
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
        idempotency_key: "k".into(),
        correlation_id: "c".into(),
        requested_by: None,
        accepted_at: OffsetDateTime::now_utc(),
    };
    let now = OffsetDateTime::now_utc();
    status.store.begin_attempt(&request, now).await.unwrap();
    status
        .store
        .succeed(&request, Progress::default(), now)
        .await
        .unwrap();
    let (code, body) = answer(&queue, &status, put(&tickets[1])).await;
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
        let (code, body) = answer(&queue, &status, list(&query)).await;
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

    let (code, body) = answer(&queue, &status, list("status=failed")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["items"], serde_json::json!([]));
    assert!(body["next_cursor"].is_null());
}
