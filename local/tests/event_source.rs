//! The event source: the SQS event it builds (pure), how it settles an invocation's
//! answer (pure), and the whole poll-invoke-delete round against a real moto SQS and a
//! fake invoke API that answers what each test chooses.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::{
    primitives::Blob,
    types::{Message, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName},
};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Incoming};
use refund_local::{
    event_source::{
        BatchReport, EventSource, EventSourceArgs, EventSourceConfig, InvokeError, invoke_url,
        md5_hex, region_of_arn, settle, settle_whole_batch, sqs_event,
    },
    http::{self, DropConnection},
};
use serde_json::{Value, json};
use testkit::Moto;
use tokio::net::TcpListener;

const ARN: &str = "arn:aws:sqs:eu-west-1:123456789012:RefundTicket";

fn attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("attribute")
}

fn message() -> Message {
    Message::builder()
        .message_id("m-1")
        .receipt_handle("rh-1")
        .body(r#"{"ticket_id":"x"}"#)
        .md5_of_body("ignored: the event source computes it")
        .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "3")
        .attributes(MessageSystemAttributeName::SentTimestamp, "1700000000000")
        .attributes(MessageSystemAttributeName::SenderId, "AIDAEXAMPLE")
        .attributes(
            MessageSystemAttributeName::ApproximateFirstReceiveTimestamp,
            "1700000000100",
        )
        .message_attributes("correlation_id", attribute("corr-1"))
        .message_attributes(
            "raw",
            MessageAttributeValue::builder()
                .data_type("Binary")
                .binary_value(Blob::new(b"hi".to_vec()))
                .build()
                .expect("attribute"),
        )
        .md5_of_message_attributes("0123456789abcdef0123456789abcdef")
        .build()
}

#[test]
fn the_event_has_lambdas_exact_shape() {
    let event = sqs_event(&[message()], ARN, "eu-west-1");
    let expected = json!({"Records": [{
        "messageId": "m-1",
        "receiptHandle": "rh-1",
        "body": r#"{"ticket_id":"x"}"#,
        "attributes": {
            "ApproximateReceiveCount": "3",
            "SentTimestamp": "1700000000000",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1700000000100"
        },
        "messageAttributes": {
            "correlation_id": {
                "stringValue": "corr-1",
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String"
            },
            "raw": {
                "binaryValue": "aGk=",
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "Binary"
            }
        },
        "md5OfBody": "1bf69f1b01b9c35980fa5f001d5aca1c",
        "md5OfMessageAttributes": "0123456789abcdef0123456789abcdef",
        "eventSource": "aws:sqs",
        "eventSourceARN": ARN,
        "awsRegion": "eu-west-1"
    }]});
    assert_eq!(event, expected);
}

const TRACE: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

#[test]
fn a_messages_trace_header_is_a_record_attribute_as_lambda_writes_it() {
    let traced = Message::builder()
        .message_id("m")
        .receipt_handle("r")
        .body("b")
        .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "1")
        .attributes(MessageSystemAttributeName::AwsTraceHeader, TRACE)
        .build();
    let event = sqs_event(&[traced], ARN, "eu-west-1");
    assert_eq!(
        event["Records"][0]["attributes"],
        json!({"ApproximateReceiveCount": "1", "AWSTraceHeader": TRACE})
    );
    let read: SqsEvent = serde_json::from_value(event).expect("an SqsEvent");
    assert_eq!(
        read.records[0]
            .attributes
            .get("AWSTraceHeader")
            .map(String::as_str),
        Some(TRACE)
    );
}

#[test]
fn md5_of_body_is_the_lowercase_hex_digest() {
    // RFC 1321's test vectors.
    assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(md5_hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
}

#[test]
fn the_event_reads_as_lambdas_sqs_event() {
    let event: SqsEvent =
        serde_json::from_value(sqs_event(&[message(), message()], ARN, "eu-west-1"))
            .expect("an SqsEvent");
    assert_eq!(event.records.len(), 2);
    let record = &event.records[0];
    assert_eq!(record.message_id.as_deref(), Some("m-1"));
    assert_eq!(
        record
            .attributes
            .get("ApproximateReceiveCount")
            .map(String::as_str),
        Some("3")
    );
    assert_eq!(
        record.message_attributes["correlation_id"]
            .string_value
            .as_deref(),
        Some("corr-1")
    );
    assert_eq!(record.event_source_arn.as_deref(), Some(ARN));
}

#[test]
fn a_message_without_attributes_still_has_every_field() {
    let bare = Message::builder()
        .message_id("m")
        .receipt_handle("r")
        .body("b")
        .build();
    let event = sqs_event(&[bare], ARN, "eu-west-1");
    let record = event["Records"][0].as_object().expect("record");
    let mut fields: Vec<&str> = record.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "attributes",
            "awsRegion",
            "body",
            "eventSource",
            "eventSourceARN",
            "md5OfBody",
            "messageAttributes",
            "messageId",
            "receiptHandle"
        ]
    );
    assert_eq!(record["attributes"], json!({}));
    assert_eq!(record["messageAttributes"], json!({}));
}

#[test]
fn the_invoke_url_is_the_lambda_invoke_api_path() {
    assert_eq!(
        invoke_url("127.0.0.1", 9000, "refund-worker"),
        "http://127.0.0.1:9000/2015-03-31/functions/refund-worker/invocations"
    );
    assert_eq!(region_of_arn(ARN), Some("eu-west-1"));
    assert_eq!(region_of_arn("nonsense"), None);
}

const IDS: [&str; 3] = ["a", "b", "c"];

#[test]
fn settle_deletes_every_record_not_reported_failed() {
    let cases: [(&str, &[&str]); 6] = [
        (r#"{"batchItemFailures":[]}"#, &["a", "b", "c"]),
        (
            r#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#,
            &["a", "c"],
        ),
        (
            r#"{"batchItemFailures":[{"itemIdentifier":"c"},{"itemIdentifier":"a"},{"itemIdentifier":"a"}]}"#,
            &["b"],
        ),
        (r#"{"batchItemFailures":null}"#, &["a", "b", "c"]),
        ("{}", &["a", "b", "c"]),
        ("null", &["a", "b", "c"]),
    ];
    for (body, expected) in cases {
        assert_eq!(
            settle(&IDS, 200, None, body.as_bytes()).as_deref(),
            Ok(expected),
            "{body}"
        );
    }
    assert_eq!(
        settle(&IDS, 200, None, b"").as_deref(),
        Ok(&IDS[..]),
        "an empty answer"
    );
}

type Settle = for<'a> fn(&[&'a str], u16, Option<&str>, &[u8]) -> Result<Vec<&'a str>, InvokeError>;

/// A failed invocation deletes nothing, with or without `ReportBatchItemFailures`.
fn assert_a_failed_invocation_deletes_nothing(settle: Settle) {
    let cases: [(u16, Option<&str>, &str); 4] = [
        (500, None, "{}"),
        (404, None, ""),
        (200, Some("Unhandled"), "{}"),
        (200, None, r#"{"errorType":"Panic","errorMessage":"boom"}"#),
    ];
    for (status, error, body) in cases {
        let got = settle(&IDS, status, error, body.as_bytes());
        assert!(
            matches!(
                (status, &got),
                (500 | 404, Err(InvokeError::Status { .. })) | (200, Err(InvokeError::Function(_)))
            ),
            "{status} {error:?} {body}: {got:?}"
        );
    }
}

#[test]
fn settle_deletes_nothing_when_the_invocation_failed() {
    assert_a_failed_invocation_deletes_nothing(settle);
    let failed =
        |status, error: Option<&str>, body: &str| settle(&IDS, status, error, body.as_bytes());
    for body in [
        "not json",
        "[]",
        r#"{"batchItemFailures":{}}"#,
        // Lambda fails the whole batch for an identifier it cannot match.
        r#"{"batchItemFailures":[{"itemIdentifier":"zzz"}]}"#,
        r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
        r#"{"batchItemFailures":[{}]}"#,
    ] {
        assert!(
            matches!(failed(200, None, body), Err(InvokeError::BadResponse(_))),
            "{body}"
        );
    }
}

#[test]
fn without_report_batch_item_failures_an_answer_deletes_the_whole_batch() {
    // Lambda ignores batchItemFailures then: whatever the body lists, all of it goes.
    for body in [
        r#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#,
        r#"{"batchItemFailures":[{"itemIdentifier":"zzz"}]}"#,
        r#"{"batchItemFailures":{}}"#,
        "not json",
        "[]",
        "{}",
        "",
    ] {
        assert_eq!(
            settle_whole_batch(&IDS, 200, None, body.as_bytes()).as_deref(),
            Ok(&IDS[..]),
            "{body}"
        );
    }
    assert_a_failed_invocation_deletes_nothing(settle_whole_batch);
}

fn parse(flags: &[&str]) -> Result<EventSourceConfig, clap::Error> {
    use clap::Parser;
    let argv = ["event-source", "--queue-url", "http://q"]
        .iter()
        .chain(flags);
    EventSourceArgs::try_parse_from(argv).map(|args| args.config())
}

#[test]
fn the_mappings_settings_are_flags() {
    let cases: [(&[&str], usize, bool); 7] = [
        // Defaults: one batch at a time, batchItemFailures honoured.
        (&[], 1, true),
        (&["--maximum-concurrency", "5"], 5, true),
        (&["--maximum-concurrency", "1000"], 1000, true),
        (
            &["--function-response-types", "ReportBatchItemFailures"],
            1,
            true,
        ),
        (
            &["--function-response-types", " ReportBatchItemFailures ,"],
            1,
            true,
        ),
        (&["--function-response-types", ""], 1, false),
        (&["--function-response-types="], 1, false),
    ];
    for (flags, concurrency, reports) in cases {
        let config = parse(flags).expect("flags");
        assert_eq!(
            (
                config.maximum_concurrency,
                config.report_batch_item_failures
            ),
            (concurrency, reports),
            "{flags:?}"
        );
    }
    let bad: [&[&str]; 4] = [
        &["--maximum-concurrency", "0"],
        &["--maximum-concurrency", "1001"],
        &["--function-response-types", "ReportBatchItemFailure"],
        &["--function-response-types", "ReportBatchItemFailures,Other"],
    ];
    for flags in bad {
        assert!(parse(flags).is_err(), "{flags:?}");
    }
}

// ---------------------------------------------------------------- against moto

/// A stand-in for `cargo lambda watch`'s invoke API: records each event it is sent and
/// answers with the status and body the test set.
struct FakeInvoke {
    addr: SocketAddr,
    events: Arc<Mutex<Vec<(String, Value)>>>,
    answer: Arc<Mutex<(u16, String)>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeInvoke {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let events = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new((200, r#"{"batchItemFailures":[]}"#.to_owned())));
        let handler = {
            let (events, answer) = (Arc::clone(&events), Arc::clone(&answer));
            Arc::new(move |request: Request<Incoming>| {
                let (events, answer) = (Arc::clone(&events), Arc::clone(&answer));
                async move {
                    let path = request.uri().path().to_owned();
                    let body = http::read_body(request).await.unwrap_or_default();
                    let event = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    events.lock().expect("events").push((path, event));
                    let (status, body) = answer.lock().expect("answer").clone();
                    let mut response = Response::new(Full::new(Bytes::from(body)));
                    *response.status_mut() = StatusCode::from_u16(status).expect("status");
                    Ok::<_, DropConnection>(response)
                }
            })
        };
        let task = tokio::spawn(async move {
            http::serve(listener, handler).await;
        });
        Self {
            addr,
            events,
            answer,
            task,
        }
    }

    fn url(&self) -> String {
        invoke_url("127.0.0.1", self.addr.port(), "refund-worker")
    }

    fn answer(&self, status: u16, body: Value) {
        *self.answer.lock().expect("answer") = (status, body.to_string());
    }

    fn events(&self) -> Vec<(String, Value)> {
        self.events.lock().expect("events").clone()
    }
}

impl Drop for FakeInvoke {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A moto queue whose messages come back 1 s after a receive that did not delete them.
async fn queue(moto: &Moto) -> (aws_sdk_sqs::Client, String) {
    let sqs = refund_shared::aws::sqs_client(moto.loader()).await;
    let url = sqs
        .create_queue()
        .queue_name("RefundTicket")
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("url");
    (sqs, url)
}

/// Sends `n` messages with a correlation id; returns their ids in order.
async fn send(sqs: &aws_sdk_sqs::Client, url: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let output = sqs
            .send_message()
            .queue_url(url)
            .message_body(format!(r#"{{"n":{i}}}"#))
            .message_attributes("correlation_id", attribute(&format!("corr-{i}")))
            .send()
            .await
            .expect("send");
        ids.push(output.message_id.expect("id"));
    }
    ids
}

fn config(url: &str, function_url: String, batch_size: i32) -> EventSourceConfig {
    EventSourceConfig {
        queue_url: url.to_owned(),
        function_url,
        batch_size,
        batching_window: Duration::ZERO,
        maximum_concurrency: 1,
        report_batch_item_failures: true,
        invoke_timeout: Duration::from_secs(10),
        connect_patience: Duration::ZERO,
    }
}

/// Every message still on the queue once the visibility timeout has passed, by id, with
/// its receive count.
async fn remaining(sqs: &aws_sdk_sqs::Client, url: &str) -> HashMap<String, String> {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let output = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .expect("receive");
    output
        .messages()
        .iter()
        .map(|m| {
            let count = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .cloned()
                .unwrap_or_default();
            (m.message_id().unwrap_or_default().to_owned(), count)
        })
        .collect()
}

/// Three messages on a fresh queue, and a function that reports the second one failed.
struct OneReportedFailure {
    _moto: Moto,
    sqs: aws_sdk_sqs::Client,
    url: String,
    ids: Vec<String>,
    fake: FakeInvoke,
    source: EventSource,
}

async fn one_reported_failure(report_batch_item_failures: bool) -> OneReportedFailure {
    let moto = Moto::start();
    let (sqs, url) = queue(&moto).await;
    let ids = send(&sqs, &url, 3).await;
    let fake = FakeInvoke::start().await;
    fake.answer(
        200,
        json!({"batchItemFailures": [{"itemIdentifier": ids[1]}]}),
    );
    let mut settings = config(&url, fake.url(), 10);
    settings.report_batch_item_failures = report_batch_item_failures;
    let source = EventSource::new(sqs.clone(), settings)
        .await
        .expect("source");
    OneReportedFailure {
        _moto: moto,
        sqs,
        url,
        ids,
        fake,
        source,
    }
}

#[tokio::test]
async fn deletes_what_the_function_did_not_report_failed() {
    // `_moto` bound, not `..`: the server lives until the end of the test.
    let OneReportedFailure {
        _moto,
        sqs,
        url,
        ids,
        fake,
        source,
    } = one_reported_failure(true).await;

    let report = source.run_once().await.expect("round").expect("a batch");
    assert_eq!(
        report,
        BatchReport {
            messages: 3,
            failures: 1,
            deleted: 2,
            invoke_error: None
        }
    );
    let left = remaining(&sqs, &url).await;
    assert_eq!(left.keys().collect::<Vec<_>>(), [&ids[1]]);
    assert_eq!(left[&ids[1]], "2", "the failed record is delivered again");

    let events = fake.events();
    assert_eq!(events.len(), 1);
    let (path, event) = &events[0];
    assert_eq!(path, "/2015-03-31/functions/refund-worker/invocations");
    let records = event["Records"].as_array().expect("records");
    assert_eq!(records.len(), 3);
    let queue_arn = source.queue_arn();
    assert!(queue_arn.ends_with(":RefundTicket"), "{queue_arn}");
    for record in records {
        assert!(ids.contains(&record["messageId"].as_str().expect("id").to_owned()));
        assert_eq!(record["eventSource"], "aws:sqs");
        assert_eq!(record["eventSourceARN"], queue_arn);
        assert_eq!(record["awsRegion"], "us-east-1");
        assert_eq!(record["attributes"]["ApproximateReceiveCount"], "1");
        for name in [
            "SentTimestamp",
            "SenderId",
            "ApproximateFirstReceiveTimestamp",
        ] {
            assert!(record["attributes"][name].is_string(), "{name} in {record}");
        }
        let body = record["body"].as_str().expect("body");
        assert_eq!(record["md5OfBody"], md5_hex(body));
        let n = body.trim_start_matches(r#"{"n":"#).trim_end_matches('}');
        assert_eq!(
            record["messageAttributes"]["correlation_id"],
            json!({"stringValue": format!("corr-{n}"), "stringListValues": [],
                   "binaryListValues": [], "dataType": "String"})
        );
    }
}

/// The API puts its invocation's trace on the message as the system attribute
/// `AWSTraceHeader` (contract section 2); the event source must receive it and hand it to
/// the worker in the record's `attributes`, as Lambda does. A message without one has none.
#[tokio::test]
async fn the_trace_header_system_attribute_reaches_the_function() {
    let moto = Moto::start();
    let (sqs, url) = queue(&moto).await;
    let traced = sqs
        .send_message()
        .queue_url(&url)
        .message_body("traced")
        .message_system_attributes(
            aws_sdk_sqs::types::MessageSystemAttributeNameForSends::AwsTraceHeader,
            aws_sdk_sqs::types::MessageSystemAttributeValue::builder()
                .data_type("String")
                .string_value(TRACE)
                .build()
                .expect("attribute"),
        )
        .send()
        .await
        .expect("send")
        .message_id
        .expect("id");
    let untraced = send(&sqs, &url, 1).await.remove(0);
    let fake = FakeInvoke::start().await;
    let source = EventSource::new(sqs.clone(), config(&url, fake.url(), 10))
        .await
        .expect("source");
    let mut seen = HashMap::new();
    while seen.len() < 2 {
        source.run_once().await.expect("round").expect("a batch");
        for (_, event) in fake.events() {
            for record in event["Records"].as_array().expect("records") {
                let id = record["messageId"].as_str().expect("id").to_owned();
                seen.insert(id, record["attributes"]["AWSTraceHeader"].clone());
            }
        }
    }
    assert_eq!(seen[&traced], json!(TRACE));
    assert_eq!(seen[&untraced], Value::Null, "no trace, no attribute");
}

#[tokio::test]
async fn a_failed_invocation_deletes_nothing() {
    let moto = Moto::start();
    let (sqs, url) = queue(&moto).await;
    let fake = FakeInvoke::start().await;
    let source = EventSource::new(sqs.clone(), config(&url, fake.url(), 10))
        .await
        .expect("source");
    let answers = [
        (500, json!({"errorType": "Panic"})),
        (200, json!({"errorType": "Panic", "errorMessage": "boom"})),
        (
            200,
            json!({"batchItemFailures": [{"itemIdentifier": "not-in-the-batch"}]}),
        ),
    ];
    for (round, (status, body)) in answers.into_iter().enumerate() {
        let ids = send(&sqs, &url, 2).await;
        fake.answer(status, body.clone());
        let report = source.run_once().await.expect("round").expect("a batch");
        assert_eq!(
            (report.messages, report.failures, report.deleted),
            (2, 2, 0),
            "{body}"
        );
        assert!(report.invoke_error.is_some());
        let left = remaining(&sqs, &url).await;
        let mut expected = ids.clone();
        expected.sort();
        let mut got: Vec<String> = left.keys().cloned().collect();
        got.sort();
        assert_eq!(got, expected, "round {round}: {body}");
        // Clear the queue for the next round.
        sqs.purge_queue()
            .queue_url(&url)
            .send()
            .await
            .expect("purge");
    }
}

#[tokio::test]
async fn an_unreachable_function_deletes_nothing() {
    let moto = Moto::start();
    let (sqs, url) = queue(&moto).await;
    let ids = send(&sqs, &url, 1).await;
    let closed = invoke_url("127.0.0.1", testkit::free_port(), "refund-worker");
    let source = EventSource::new(sqs.clone(), config(&url, closed, 10))
        .await
        .expect("source");
    let report = source.run_once().await.expect("round").expect("a batch");
    assert_eq!((report.failures, report.deleted), (1, 0));
    assert!(report.invoke_error.expect("error").contains("unreachable"));
    assert_eq!(
        remaining(&sqs, &url).await.keys().collect::<Vec<_>>(),
        [&ids[0]]
    );
}

#[tokio::test]
async fn a_refused_connection_is_retried_until_the_function_is_up() {
    let moto = Moto::start();
    let (sqs, url) = queue(&moto).await;
    send(&sqs, &url, 1).await;
    // Reserve a port, start the fake invoke API on it only after the first attempt.
    let port = testkit::free_port();
    let mut settings = config(&url, invoke_url("127.0.0.1", port, "refund-worker"), 10);
    settings.connect_patience = Duration::from_secs(30);
    let source = EventSource::new(sqs.clone(), settings)
        .await
        .expect("source");
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let handler = Arc::new(|request: Request<Incoming>| async move {
            drop(request);
            Ok::<_, DropConnection>(http::json(
                StatusCode::OK,
                &json!({"batchItemFailures": []}),
            ))
        });
        http::serve(listener, handler).await;
    });
    let report = source.run_once().await.expect("round").expect("a batch");
    late.abort();
    assert_eq!((report.messages, report.deleted), (1, 1), "{report:?}");
}

#[tokio::test]
async fn a_batch_holds_at_most_batch_size_messages() {
    let moto = Moto::start();
    let (sqs, url) = queue(&moto).await;
    send(&sqs, &url, 3).await;
    let fake = FakeInvoke::start().await;
    let source = EventSource::new(sqs.clone(), config(&url, fake.url(), 2))
        .await
        .expect("source");
    let first = source.run_once().await.expect("round").expect("a batch");
    assert!(first.messages <= 2 && first.messages >= 1, "{first:?}");
    let mut total = first.messages;
    while total < 3 {
        let next = source.run_once().await.expect("round").expect("a batch");
        assert!(next.messages <= 2);
        total += next.messages;
    }
    assert!(
        fake.events()
            .iter()
            .all(|(_, e)| e["Records"].as_array().is_some_and(|r| r.len() <= 2))
    );
}

#[tokio::test]
async fn without_report_batch_item_failures_a_reported_record_is_deleted_with_its_batch() {
    let OneReportedFailure {
        _moto,
        sqs,
        url,
        fake: _fake,
        source,
        ..
    } = one_reported_failure(false).await;
    let mut deleted = 0;
    while deleted < 3 {
        let report = source.run_once().await.expect("round").expect("a batch");
        assert_eq!(report.failures, 0, "{report:?}");
        deleted += report.deleted;
    }
    assert!(remaining(&sqs, &url).await.is_empty(), "the batch is gone");
}

/// A function that takes `hold` to answer, counting the invocations in flight at once.
async fn slow_function(hold: Duration) -> (String, Arc<Mutex<(usize, usize)>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // (in flight now, most in flight at once)
    let counts = Arc::new(Mutex::new((0, 0)));
    let handler = {
        let counts = Arc::clone(&counts);
        Arc::new(move |request: Request<Incoming>| {
            let counts = Arc::clone(&counts);
            async move {
                drop(request);
                {
                    let mut c = counts.lock().expect("counts");
                    c.0 += 1;
                    c.1 = c.1.max(c.0);
                }
                tokio::time::sleep(hold).await;
                counts.lock().expect("counts").0 -= 1;
                Ok::<_, DropConnection>(http::json(
                    StatusCode::OK,
                    &json!({"batchItemFailures": []}),
                ))
            }
        })
    };
    tokio::spawn(async move { http::serve(listener, handler).await });
    (invoke_url("127.0.0.1", port, "refund-worker"), counts)
}

#[tokio::test]
async fn up_to_maximum_concurrency_batches_are_in_flight_at_once() {
    for concurrency in [1, 3] {
        let moto = Moto::start();
        let (sqs, url) = queue(&moto).await;
        send(&sqs, &url, 6).await;
        let (function_url, counts) = slow_function(Duration::from_millis(1500)).await;
        let mut settings = config(&url, function_url, 1);
        settings.maximum_concurrency = concurrency;
        let source = Arc::new(
            EventSource::new(sqs.clone(), settings)
                .await
                .expect("source"),
        );
        let running = tokio::spawn({
            let source = Arc::clone(&source);
            async move { source.run().await }
        });
        tokio::time::sleep(Duration::from_secs(4)).await;
        running.abort();
        let most = counts.lock().expect("counts").1;
        assert_eq!(most, concurrency, "MaximumConcurrency {concurrency}");
    }
}
