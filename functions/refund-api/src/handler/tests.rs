//! Every row of the contract's answer table, against the in-memory queue; the status
//! routes (contract section 8) against the in-memory store too, in `status`.

use super::*;
use lambda_http::request::from_str;
use proptest::prelude::*;
use refund::queue::InMemoryQueue;
use serde_json::Value;
use sha1::{Digest, Sha1};
use uuid::Uuid;

mod status;

const TICKET: &str = "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f";

fn fixture(name: &str) -> String {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An API Gateway HTTP API (payload 2.0) event, as the committed fixtures are built.
fn event(method: &str, ticket: &str, headers: &[(&str, &str)]) -> Request {
    let mut event: Value = serde_json::from_str(&fixture("api-refund.json")).unwrap();
    event["requestContext"]["http"]["method"] = method.into();
    event["rawPath"] = format!("/ticket-refund/{ticket}").into();
    event["requestContext"]["http"]["path"] = event["rawPath"].clone();
    event["pathParameters"]["ticket_id"] = ticket.into();
    event["headers"]
        .as_object_mut()
        .unwrap()
        .remove("correlation-id");
    for (name, value) in headers {
        event["headers"][*name] = (*value).into();
    }
    from_str(&event.to_string()).unwrap()
}

struct Answer {
    status: u16,
    headers: lambda_http::http::HeaderMap,
    body: Value,
}

/// The answer without the status feature, as before the status issue.
async fn answer(queue: &InMemoryQueue, request: Request) -> Answer {
    answer_with(queue, STATUS_DISABLED, request).await
}

/// Every answer is JSON and echoes `Correlation-ID`.
async fn answer_with<S: RefundStore>(
    queue: &InMemoryQueue,
    status: Option<&Status<S>>,
    request: Request,
) -> Answer {
    let response = handle(queue, status, request).await.unwrap();
    let (parts, body) = response.into_parts();
    assert_eq!(parts.headers[header::CONTENT_TYPE], "application/json");
    assert!(parts.headers.contains_key("correlation-id"));
    let body = match body {
        Body::Text(text) => serde_json::from_str(&text).unwrap(),
        other => panic!("body is not text: {other:?}"),
    };
    Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

fn assert_error(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.body["error"]["code"], code);
    assert!(!answer.body["error"]["message"].as_str().unwrap().is_empty());
    assert_eq!(
        answer.body["request_id"],
        "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    );
    assert_eq!(answer.body.as_object().unwrap().len(), 2);
}

/// K computed independently: RFC 9562 UUIDv5 by hand over SHA-1.
fn expected_key(ticket: &str) -> String {
    let namespace = Uuid::parse_str("d5c0914a-93ae-453d-8453-8e578063b9d6").unwrap();
    let digest = Sha1::new()
        .chain_update(namespace.as_bytes())
        .chain_update(ticket.to_lowercase().as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes).to_string()
}

#[tokio::test]
async fn accepts_a_refund_and_queues_the_command_with_its_attributes() {
    let queue = InMemoryQueue::new();
    let answer = answer(&queue, from_str(&fixture("api-refund.json")).unwrap()).await;

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
    let answer = answer(
        &queue,
        from_str(&fixture("api-refund-client-key.json")).unwrap(),
    )
    .await;
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
async fn an_absent_or_empty_correlation_id_is_generated_and_echoed() {
    for headers in [&[][..], &[("correlation-id", "")][..]] {
        let queue = InMemoryQueue::new();
        let answer = answer(&queue, event("PUT", TICKET, headers)).await;
        assert_eq!(answer.status, 202);
        let echoed = answer.headers["correlation-id"].to_str().unwrap();
        let generated = echoed.strip_prefix("gen_").unwrap();
        assert_eq!(Uuid::parse_str(generated).unwrap().get_version_num(), 4);
        assert_eq!(queue.sent()[0].attributes["correlation_id"], echoed);
    }
}

#[tokio::test]
async fn bad_ticket_ids_are_refused_and_nothing_is_queued() {
    let queue = InMemoryQueue::new();
    let answer_ = answer(
        &queue,
        from_str(&fixture("api-refund-bad-ticket-id.json")).unwrap(),
    )
    .await;
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
async fn bad_correlation_ids_are_refused_with_a_generated_one_echoed() {
    let queue = InMemoryQueue::new();
    let long = "c".repeat(129);
    for bad in ["two words", long.as_str()] {
        let answer = answer(&queue, event("PUT", TICKET, &[("correlation-id", bad)])).await;
        assert_error(&answer, 400, "invalid_correlation_id");
        assert!(
            answer.headers["correlation-id"]
                .to_str()
                .unwrap()
                .starts_with("gen_")
        );
    }
    assert!(queue.sent().is_empty());
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let queue = InMemoryQueue::new();
    let answer_ = answer(
        &queue,
        from_str(&fixture("api-refund-wrong-method.json")).unwrap(),
    )
    .await;
    assert_error(&answer_, 405, "method_not_allowed");
    assert_eq!(answer_.headers[header::ALLOW], "GET, PUT");
    for method in ["POST", "DELETE", "PATCH", "OPTIONS", "HEAD"] {
        let answer = answer(&queue, event(method, TICKET, &[])).await;
        assert_error(&answer, 405, "method_not_allowed");
        assert_eq!(answer.headers[header::ALLOW], "GET, PUT");
    }
    assert!(queue.sent().is_empty());
}

#[tokio::test]
async fn an_unavailable_queue_answers_503_with_retry_after() {
    let queue = InMemoryQueue::failing(QueueError::Unavailable("timed out".into()));
    let answer = answer(&queue, event("PUT", TICKET, &[("correlation-id", "c-1")])).await;
    assert_error(&answer, 503, "queue_unavailable");
    assert_eq!(answer.headers[header::RETRY_AFTER], "1");
    assert_eq!(answer.headers["correlation-id"], "c-1");
}

#[tokio::test]
async fn a_queue_that_refuses_answers_500_without_detail() {
    let queue = InMemoryQueue::failing(QueueError::Rejected(
        "AccessDenied: arn:aws:sqs:secret".into(),
    ));
    let answer = answer(&queue, event("PUT", TICKET, &[])).await;
    assert_error(&answer, 500, "internal_error");
    assert!(!answer.body.to_string().contains("secret"));
}

#[tokio::test]
async fn without_an_authorizer_there_is_no_requested_by() {
    let mut event: Value = serde_json::from_str(&fixture("api-refund.json")).unwrap();
    event["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    let queue = InMemoryQueue::new();
    let answer = answer(&queue, from_str(&event.to_string()).unwrap()).await;
    assert_eq!(answer.status, 202);
    assert!(!queue.sent()[0].attributes.contains_key("requested_by"));
}

#[tokio::test]
async fn the_request_id_is_the_lambda_one_when_present() {
    let mut context = lambda_http::Context::default();
    context.request_id = "lambda-request-1".into();
    let request = event("PUT", "bad", &[]).with_lambda_context(context);
    let answer = answer(&InMemoryQueue::new(), request).await;
    assert_eq!(answer.body["request_id"], "lambda-request-1");
}

/// Everything any test of this binary logged so far, at every level. One global
/// subscriber, set once: thread-scoped subscribers race with the callsite cache when tests
/// run in parallel, and a test that reads logs must not miss lines.
fn logs() -> String {
    static LOGS: std::sync::OnceLock<testkit::LogBuffer> = std::sync::OnceLock::new();
    let buffer = LOGS.get_or_init(|| {
        let buffer = testkit::LogBuffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buffer
    });
    buffer.text()
}

/// Bodies, tokens and refused header values never reach a log line; a refused ticket id
/// is not echoed either.
#[tokio::test]
async fn logs_carry_no_body_no_token_and_no_refused_header_value() {
    const MARK: &str = "Pii-MARK-4111111111111111";
    logs();
    let long_correlation = format!("{MARK}{}", "x".repeat(130));
    let bearer = format!("Bearer {MARK}");
    let cases = [
        (
            202,
            event(
                "PUT",
                TICKET,
                &[("authorization", &bearer), ("correlation-id", "log-case-0")],
            ),
        ),
        (400, event("PUT", &format!("bad-{MARK}"), &[])),
        (
            400,
            event(
                "PUT",
                TICKET,
                &[("idempotency-key", &format!("a b {MARK}"))],
            ),
        ),
        (
            400,
            event("PUT", TICKET, &[("correlation-id", &long_correlation)]),
        ),
        (
            405,
            event(
                "DELETE",
                TICKET,
                &[("authorization", &bearer), ("correlation-id", "log-case-4")],
            ),
        ),
    ];
    for (i, (status, mut request)) in cases.into_iter().enumerate() {
        *request.body_mut() = Body::Text(format!(r#"{{"card":"{MARK}"}}"#));
        let mut context = lambda_http::Context::default();
        context.request_id = format!("log-case-{i}");
        let request = request.with_lambda_context(context);
        let answer = answer(&InMemoryQueue::new(), request).await;
        assert_eq!(answer.status, status, "{}", answer.body);
    }
    let logs = logs();
    for i in 0..5 {
        assert!(
            logs.contains(&format!("log-case-{i}")),
            "case {i} was logged: {logs}"
        );
    }
    assert!(!logs.contains(MARK), "{logs}");
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[!-~]{0,140}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..200),
    ]
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("PUT".to_owned()),
        Just("GET".to_owned()),
        Just("DELETE".to_owned()),
        "[A-Za-z!#$%&'*+.^_`|~-]{1,20}",
    ]
}

fn ticket() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
        any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string().to_uppercase()),
        ".{0,60}",
    ]
}

/// `PROPTEST_CASES`, else `default`: `make chaos` runs a longer fixed-length run.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(400)))]

    /// Whatever arrives, the answer is one of the contract's statuses with a JSON body,
    /// and never a 500 (a 500 here would be a panic caught by the handler).
    #[test]
    fn never_panics_and_always_answers_in_contract(
        method in method(),
        ticket in ticket(),
        key in proptest::option::of(header_value()),
        correlation in proptest::option::of(header_value()),
        failing in any::<bool>(),
    ) {
        let mut builder = lambda_http::http::Request::builder()
            .method(method.as_str())
            .uri("https://api.example.com/ticket-refund/x");
        for (name, value) in [("idempotency-key", &key), ("correlation-id", &correlation)] {
            if let Some(value) = value {
                if let Ok(value) = HeaderValue::from_bytes(value) {
                    builder = builder.header(name, value);
                }
            }
        }
        let request = builder
            .body(Body::Empty)
            .unwrap()
            .with_path_parameters(std::collections::HashMap::from([("ticket_id".to_owned(), ticket)]));
        let queue = if failing {
            InMemoryQueue::failing(QueueError::Unavailable("down".into()))
        } else {
            InMemoryQueue::new()
        };
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let answer = runtime.block_on(answer(&queue, request));
        // GET is served, and answers 404 status_not_enabled without a store.
        let allowed: &[u16] = if failing { &[400, 404, 405, 503] } else { &[202, 400, 404, 405] };
        prop_assert!(allowed.contains(&answer.status), "{} {}", answer.status, answer.body);
        prop_assert!(answer.headers.contains_key("correlation-id"));
        if answer.status == 202 {
            prop_assert_eq!(&answer.body["status"], "accepted");
            prop_assert_eq!(queue.sent().len(), 1);
        } else {
            prop_assert!(answer.body["error"]["code"].is_string());
            prop_assert!(queue.sent().is_empty());
        }
    }
}
