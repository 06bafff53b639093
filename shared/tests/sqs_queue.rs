//! The SQS adapter against a real SQS endpoint (moto), not a mock of the SDK.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use refund_shared::{
    aws::SQS_OPERATION_TIMEOUT,
    port::PortFailure,
    queue::{CommandQueue, OutboundMessage, QueueError, SqsQueue},
    trace::TraceHeader,
};
use testkit::{Moto, free_port};

fn message() -> OutboundMessage {
    OutboundMessage {
        body: r#"{"ticket_id":"0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f"}"#.to_owned(),
        attributes: [
            ("name", "RefundTicket"),
            ("correlation_id", "c-42"),
            ("requested_by", "user-7"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        trace: TraceHeader::parse(TRACE),
    }
}

const TRACE: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

#[tokio::test]
async fn a_sent_message_lands_with_its_body_and_string_attributes() {
    let moto = Moto::start();
    let url = testkit::create_queue(
        &refund_shared::aws::sqs_client(moto.loader()).await,
        "RefundTicket",
    )
    .await;
    let queue = SqsQueue::new(refund_shared::aws::sqs_client(moto.loader()).await, &url);

    let message_id = queue.send(message()).await.unwrap();

    let received = refund_shared::aws::sqs_client(moto.loader())
        .await
        .receive_message()
        .queue_url(&url)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let messages = received.messages.unwrap_or_default();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].message_id.as_deref(), Some(message_id.as_str()));
    assert_eq!(messages[0].body.as_deref(), Some(message().body.as_str()));
    let attributes: HashMap<String, (String, String)> = messages[0]
        .message_attributes
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| {
            let data_type = value.data_type().to_owned();
            (name, (data_type, value.string_value.unwrap_or_default()))
        })
        .collect();
    let expected: HashMap<String, (String, String)> = message()
        .attributes
        .into_iter()
        .map(|(k, v)| (k, ("String".to_owned(), v)))
        .collect();
    assert_eq!(attributes, expected);
    // The trace travels as the system attribute, as Lambda hands it to the worker.
    let system = messages[0].attributes.clone().unwrap_or_default();
    assert_eq!(
        system
            .get(&MessageSystemAttributeName::AwsTraceHeader)
            .map(String::as_str),
        Some(TRACE)
    );
}

#[tokio::test]
async fn a_missing_queue_is_refused_not_unavailable() {
    let moto = Moto::start();
    let queue = SqsQueue::new(
        refund_shared::aws::sqs_client(moto.loader()).await,
        format!("{}/000000000000/NoSuchQueue", moto.endpoint),
    );
    let error = queue.send(message()).await.unwrap_err();
    assert!(
        matches!(error, QueueError(PortFailure::Rejected(_))),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_stopped_endpoint_is_unavailable_within_the_operation_timeout() {
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let queue = SqsQueue::new(
        refund_shared::aws::sqs_client(testkit::loader_for(&endpoint)).await,
        format!("{endpoint}/000000000000/RefundTicket"),
    );
    let started = Instant::now();
    let error = queue.send(message()).await.unwrap_err();
    assert!(
        matches!(error, QueueError(PortFailure::Unavailable(_))),
        "{error:?}"
    );
    assert!(started.elapsed() <= SQS_OPERATION_TIMEOUT + Duration::from_millis(500));
}

/// An endpoint that accepts connections and never answers: only the operation timeout
/// can end the call, and it must, well inside API Gateway's 30 s.
#[tokio::test]
async fn a_silent_endpoint_is_unavailable_at_the_operation_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let queue = SqsQueue::new(
        refund_shared::aws::sqs_client(testkit::loader_for(&endpoint)).await,
        format!("{endpoint}/000000000000/RefundTicket"),
    );
    let started = Instant::now();
    let error = queue.send(message()).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(error, QueueError(PortFailure::Unavailable(_))),
        "{error:?}"
    );
    assert!(
        elapsed >= Duration::from_secs(1),
        "gave up too early: {elapsed:?}"
    );
    assert!(
        elapsed <= SQS_OPERATION_TIMEOUT + Duration::from_millis(500),
        "took {elapsed:?}"
    );
    hold.abort();
}
