//! API overhead: the handler's latency against moto's SQS, as a ratio of a bare
//! `SendMessage` of the same command from the same client. The handler's own work
//! (validation, K, the command's JSON, the answer) should vanish next to the queue call.
//! Then the same handler with the status store on moto's DynamoDB, as deployed: what the
//! one conditional write on the 202 path adds.

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::MessageAttributeValue;
use lambda_http::{Body, Request};
use refund_api::{CursorKeys, NO_RECORDS, RefundRecords, handle};
use refund_shared::{
    command::{RefundTicket, TicketId},
    queue::SqsQueue,
    store::{CursorKey, DynamoRefundStore, RefundStore},
};
use serde::Serialize;

use crate::stats::{Summary, micros};

#[derive(Debug, Serialize)]
pub struct Report {
    pub calls: usize,
    /// `handle` with the SQS adapter, in µs.
    pub handler_us: Summary,
    /// The same client's bare `SendMessage` of an equal command, in µs.
    pub bare_send_us: Summary,
    /// `handle` with the SQS adapter and the DynamoDB status store (the accept write), in µs.
    pub handler_with_status_us: Summary,
}

/// The API fixture with a fresh ticket id, so moto stores distinct messages.
pub fn request(fixture: &str, ticket: &TicketId) -> Result<Request, String> {
    let mut event: serde_json::Value = serde_json::from_str(fixture).map_err(|e| e.to_string())?;
    event["pathParameters"]["ticket_id"] = ticket.to_string().into();
    event["rawPath"] = format!("/ticket-refund/{ticket}").into();
    lambda_http::request::from_str(&event.to_string()).map_err(|e| e.to_string())
}

fn new_ticket() -> Result<TicketId, String> {
    uuid::Uuid::new_v4()
        .to_string()
        .parse()
        .map_err(|e| format!("{e:?}"))
}

fn attribute(value: &str) -> Result<MessageAttributeValue, String> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| e.to_string())
}

pub async fn run(calls: usize, fixture: &str) -> Result<Report, String> {
    let moto = testkit::Moto::start();
    let url = testkit::create_queue(
        &refund_shared::aws::sqs_client(moto.loader()).await,
        "RefundTicket",
    )
    .await;
    let client = refund_shared::aws::sqs_client(moto.loader()).await;
    let queue = SqsQueue::new(client.clone(), url.clone());
    refund_shared::store::create_table(
        &refund_shared::aws::dynamodb_client(moto.loader()).await,
        "Refunds",
    )
    .await
    .unwrap();
    let store = DynamoRefundStore::new(
        refund_shared::aws::dynamodb_client(moto.loader()).await,
        "Refunds",
    );
    let status = RefundRecords::new(
        store,
        CursorKeys::fixed(CursorKey::from_bytes(&[7; 32]).map_err(|e| e.to_string())?),
    );

    // Warm the connection pool and moto itself.
    for _ in 0..20 {
        bare_send(&client, &url).await?;
        timed_handle(&queue, NO_RECORDS, fixture).await?;
        timed_handle(&queue, Some(&status), fixture).await?;
    }
    let mut handler_us = Vec::with_capacity(calls);
    let mut bare_us = Vec::with_capacity(calls);
    let mut with_status_us = Vec::with_capacity(calls);
    for _ in 0..calls {
        handler_us.push(micros(timed_handle(&queue, NO_RECORDS, fixture).await?));
        bare_us.push(micros(bare_send(&client, &url).await?));
        with_status_us.push(micros(timed_handle(&queue, Some(&status), fixture).await?));
    }
    Ok(Report {
        calls,
        handler_us: Summary::of(handler_us),
        bare_send_us: Summary::of(bare_us),
        handler_with_status_us: Summary::of(with_status_us),
    })
}

/// A bare `SendMessage` of a fresh command, with the attributes the API sets.
async fn bare_send(client: &aws_sdk_sqs::Client, url: &str) -> Result<Duration, String> {
    let command = RefundTicket::new(new_ticket()?, time::OffsetDateTime::now_utc());
    let started = Instant::now();
    client
        .send_message()
        .queue_url(url)
        .message_body(command.encode().map_err(|e| e.to_string())?)
        .message_attributes("name", attribute("RefundTicket")?)
        .message_attributes("correlation_id", attribute("gen_bench")?)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(started.elapsed())
}

/// `handle` of the fixture for a fresh ticket, which must be accepted (202).
async fn timed_handle<S: RefundStore>(
    queue: &SqsQueue,
    status: Option<&RefundRecords<S>>,
    fixture: &str,
) -> Result<Duration, String> {
    let request = request(fixture, &new_ticket()?)?;
    let started = Instant::now();
    let response = handle(
        queue,
        status,
        &refund_shared::config::AccessConfig::default(),
        request,
    )
    .await
    .unwrap_or_else(|never| match never {});
    let elapsed = started.elapsed();
    if response.status() != 202 {
        let body = match response.body() {
            Body::Text(text) => text.clone(),
            _ => String::new(),
        };
        return Err(format!("handler answered {}: {body}", response.status()));
    }
    Ok(elapsed)
}
