//! `HttpGateway` against a real local HTTP server: the exact requests of contract
//! section 3 and the class of every kind of answer.

use std::time::{Duration, Instant};

use refund_shared::{
    correlation::CorrelationId,
    gateway::{Gateway, GatewayToken, HttpGateway, InMemoryTokenSource, RefundCall, TokenCache},
    trace::TraceHeader,
    verdict::{Class, UpstreamError},
};
use serde_json::json;
use url::Url;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_json, header, method, path},
};

const TICKET: &str = "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f";
const KEY: &str = "2c2b4e45-5d0f-5c3e-9a1e-0b8c6f3d2a19";
const VOID_PATH: &str = "/stage/receipts-api/void-receipt";
const REFUND_PATH: &str = "/stage/payments-api/refunds";

fn call() -> RefundCall {
    RefundCall {
        ticket_id: TICKET.parse().unwrap(),
        idempotency_key: KEY.parse().unwrap(),
        correlation_id: CorrelationId::parse("corr-42").unwrap(),
        trace: None,
    }
}

/// A gateway at the server's address with a path prefix, which must be kept.
fn gateway(server: &MockServer, timeout: Duration) -> HttpGateway {
    let base = Url::parse(&format!("{}/stage", server.uri())).unwrap();
    HttpGateway::new(&base, timeout).unwrap()
}

/// The paths the server received, in order.
async fn received_paths(server: &MockServer) -> Vec<String> {
    let requests = server.received_requests().await.unwrap();
    requests.iter().map(|r| r.url.path().to_owned()).collect()
}

/// Mounts the one request the contract says a call sends to `call_path` with `body`
/// (`Content-Type` and `Correlation-ID` too), answered with `response`, expected once.
async fn expect_contract_request(
    server: &MockServer,
    call_path: &str,
    body: serde_json::Value,
    response: ResponseTemplate,
) {
    Mock::given(method("PUT"))
        .and(path(call_path))
        .and(header("content-type", "application/json"))
        .and(header("correlation-id", "corr-42"))
        .and(body_json(body))
        .respond_with(response)
        .expect(1)
        .mount(server)
        .await;
}

/// Each call sends exactly the contract's request (section 3), once, and answers its 2xx.
#[tokio::test]
async fn each_call_sends_the_contracts_request() {
    let void = json!({
        "ticket_id": TICKET,
        "reason": "customer requested refund",
        "idempotent_id": KEY,
    });
    let refund = json!({
        "payment_reference": TICKET,
        "reason": "customer requested refund",
        "deduplication_id": KEY,
    });
    let refunded = ResponseTemplate::new(200).set_body_json(json!({"ok": true}));
    for (call_path, body, response, status) in [
        (VOID_PATH, void, ResponseTemplate::new(204), 204),
        (REFUND_PATH, refund, refunded, 200),
    ] {
        let server = MockServer::start().await;
        expect_contract_request(&server, call_path, body, response).await;
        let gateway = gateway(&server, Duration::from_secs(5));
        let answer = if call_path == VOID_PATH {
            gateway.void_receipt(&call()).await
        } else {
            gateway.refund_payment(&call()).await
        };
        assert_eq!(answer, Ok(status), "{call_path}");
        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1, "{call_path}: no other request was made");
    }
}

/// The record's trace goes upstream as `X-Amzn-Trace-Id` and, when it names a parent, as
/// the same trace in W3C's `traceparent` (contract section 3); without one, neither.
#[tokio::test]
async fn both_calls_carry_the_records_trace() {
    let sampled = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let rootless = "Root=1-5759e988-bd862e3fe1be46a994272793";
    for (trace, traceparent) in [
        (
            Some(sampled),
            Some("00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"),
        ),
        (Some(rootless), None),
        (None, None),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&server)
            .await;
        let gateway = gateway(&server, Duration::from_secs(5));
        let call = RefundCall {
            trace: trace.map(|t| TraceHeader::parse(t).unwrap()),
            ..call()
        };
        assert_eq!(gateway.void_receipt(&call).await, Ok(204));
        assert_eq!(gateway.refund_payment(&call).await, Ok(204));
        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 2);
        for request in requests {
            let header = |name: &str| {
                request
                    .headers
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_owned())
            };
            assert_eq!(
                header("x-amzn-trace-id").as_deref(),
                trace,
                "{}",
                request.url
            );
            assert_eq!(
                header("traceparent").as_deref(),
                traceparent,
                "{}",
                request.url
            );
        }
    }
}

#[tokio::test]
async fn every_status_falls_in_its_class() {
    let server = MockServer::start().await;
    let gateway = gateway(&server, Duration::from_secs(5));
    for (status, class) in [
        (200, Class::Done),
        (201, Class::Done),
        (202, Class::Done),
        (204, Class::Done),
        (408, Class::Transient),
        (425, Class::Transient),
        (429, Class::Transient),
        (500, Class::Transient),
        (502, Class::Transient),
        (503, Class::Transient),
        (504, Class::Transient),
        (304, Class::Permanent),
        (400, Class::Permanent),
        (401, Class::Transient),
        (403, Class::Permanent),
        (404, Class::Permanent),
        (409, Class::Transient),
        (422, Class::Permanent),
    ] {
        server.reset().await;
        Mock::given(method("PUT"))
            .respond_with(ResponseTemplate::new(status))
            .mount(&server)
            .await;
        for answer in [
            gateway.void_receipt(&call()).await,
            gateway.refund_payment(&call()).await,
        ] {
            match answer {
                Ok(got) => {
                    assert_eq!((got, class), (status, Class::Done));
                }
                Err(error) => {
                    assert_eq!(error, UpstreamError::Status(status));
                    assert_eq!(error.class(), class, "{status}");
                }
            }
        }
    }
}

#[tokio::test]
async fn a_redirect_is_permanent_and_not_followed() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path(VOID_PATH))
        .respond_with(
            ResponseTemplate::new(301).insert_header("location", format!("{}/moved", server.uri())),
        )
        .mount(&server)
        .await;
    Mock::given(path("/moved"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;

    let answer = gateway(&server, Duration::from_secs(5))
        .void_receipt(&call())
        .await;

    assert_eq!(answer, Err(UpstreamError::Status(301)));
    assert_eq!(UpstreamError::Status(301).class(), Class::Permanent);
    let paths = received_paths(&server).await;
    assert_eq!(paths, [VOID_PATH]);
}

#[tokio::test]
async fn a_slow_service_times_out_as_transient() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let gateway = gateway(&server, Duration::from_millis(300));

    let started = Instant::now();
    let answer = gateway.refund_payment(&call()).await;

    assert_eq!(answer, Err(UpstreamError::Timeout));
    assert_eq!(UpstreamError::Timeout.class(), Class::Transient);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let base = Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let gateway = HttpGateway::new(&base, Duration::from_secs(2)).unwrap();

    let answer = gateway.void_receipt(&call()).await;

    match answer {
        Err(error @ UpstreamError::Connect(_)) => assert_eq!(error.class(), Class::Transient),
        other => panic!("expected a connection error, got {other:?}"),
    }
}

const TOKEN: &str = "upstream-T0ken.v1";

/// The token as read at start-up, from a source that still holds it.
fn tokens() -> Option<TokenCache> {
    Some(TokenCache::new(
        InMemoryTokenSource::new(TOKEN),
        GatewayToken::new(TOKEN).unwrap(),
        Duration::from_secs(300),
    ))
}

#[tokio::test]
async fn a_configured_token_is_sent_as_bearer_on_both_calls() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200))
        .expect(2)
        .mount(&server)
        .await;
    let gateway = gateway(&server, Duration::from_secs(5)).with_tokens(tokens());

    assert_eq!(gateway.void_receipt(&call()).await, Ok(200));
    assert_eq!(gateway.refund_payment(&call()).await, Ok(200));

    let paths = received_paths(&server).await;
    assert_eq!(paths, [VOID_PATH, REFUND_PATH]);
}

#[tokio::test]
async fn without_a_token_no_authorization_header_is_sent() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let gateway = gateway(&server, Duration::from_secs(5)).with_tokens(None);

    assert_eq!(gateway.void_receipt(&call()).await, Ok(200));
    assert_eq!(gateway.refund_payment(&call()).await, Ok(200));

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert!(
        requests
            .iter()
            .all(|r| !r.headers.contains_key("authorization"))
    );
}

/// An upstream's error answer is never read: whatever it echoes (here the token and the
/// request) cannot reach the error text the worker logs and dead-letters.
#[tokio::test]
async fn error_answers_and_transport_failures_carry_no_token_and_no_body() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(
            ResponseTemplate::new(409)
                .set_body_string(format!("conflict; you sent Bearer {TOKEN}")),
        )
        .mount(&server)
        .await;
    let answer = gateway(&server, Duration::from_secs(5))
        .with_tokens(tokens())
        .void_receipt(&call())
        .await;
    assert_eq!(answer, Err(UpstreamError::Status(409)));

    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let base = Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let refused = HttpGateway::new(&base, Duration::from_secs(2))
        .unwrap()
        .with_tokens(tokens())
        .refund_payment(&call())
        .await
        .unwrap_err();
    for text in [refused.to_string(), format!("{refused:?}")] {
        assert!(!text.contains(TOKEN) && !text.contains(KEY), "{text}");
        assert!(text.len() <= 600, "{text}");
    }
}
