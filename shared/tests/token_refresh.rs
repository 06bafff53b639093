//! The bearer token of one execution environment against a real local HTTP server: the
//! re-read after a 401 (once, shared by every call in flight, bounded, a failure keeping
//! the old token), the re-read after the TTL, and the class of what is left (contract
//! section 3). The secret is the in-memory twin, which counts its reads; the same against
//! moto's Secrets Manager is in `secret_moto.rs`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use refund_shared::{
    correlation::CorrelationId,
    gateway::{
        Gateway, GatewayToken, HttpGateway, InMemoryTokenSource, READ_TIMEOUT, RefundCall,
        TokenCache,
    },
    secret::SecretError,
    verdict::{Class, UpstreamError},
};
use url::Url;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{header, method},
};

const OLD: &str = "upstream-T0ken.old";
const NEW: &str = "upstream-T0ken.new";

fn call() -> RefundCall {
    RefundCall {
        ticket_id: "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f".parse().unwrap(),
        idempotency_key: "2c2b4e45-5d0f-5c3e-9a1e-0b8c6f3d2a19".parse().unwrap(),
        correlation_id: CorrelationId::parse("corr-token").unwrap(),
        trace: None,
    }
}

/// A server that accepts only `accepted` and answers every other request 401.
async fn accepting(accepted: &[&str]) -> MockServer {
    let server = MockServer::start().await;
    for token in accepted {
        Mock::given(method("PUT"))
            .and(header("authorization", format!("Bearer {token}").as_str()))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
    }
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(401))
        .with_priority(10)
        .mount(&server)
        .await;
    server
}

/// A gateway holding `OLD` as read at start-up from `source`, kept for `ttl`.
fn gateway(server: &MockServer, source: &Arc<InMemoryTokenSource>, ttl: Duration) -> HttpGateway {
    let tokens = TokenCache::new(source.clone(), GatewayToken::new(OLD).unwrap(), ttl);
    HttpGateway::new(&Url::parse(&server.uri()).unwrap(), Duration::from_secs(5))
        .unwrap()
        .with_tokens(Some(tokens))
}

/// The bearer token of every request the server received, in order.
/// A gateway that read `OLD`, a secret rotated to `NEW` since, and services that accept
/// only `NEW`.
async fn rotated() -> (MockServer, Arc<InMemoryTokenSource>, HttpGateway) {
    let server = accepting(&[NEW]).await;
    let source = Arc::new(InMemoryTokenSource::new(OLD));
    let gateway = gateway(&server, &source, LONG_TTL);
    source.rotate(NEW);
    (server, source, gateway)
}

async fn sent(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let value = r.headers.get("authorization").unwrap().to_str().unwrap();
            value.trim_start_matches("Bearer ").to_owned()
        })
        .collect()
}

const LONG_TTL: Duration = Duration::from_secs(300);

#[tokio::test]
async fn a_401_re_reads_the_token_once_and_repeats_the_call_with_the_new_one() {
    let (server, source, gateway) = rotated().await;

    assert_eq!(gateway.void_receipt(&call()).await, Ok(200));
    assert_eq!(source.reads(), 1);
    assert_eq!(gateway.refund_payment(&call()).await, Ok(200));
    assert_eq!(source.reads(), 1, "the new token is kept");
    assert_eq!(sent(&server).await, [OLD, NEW, NEW]);
}

#[tokio::test]
async fn concurrent_401s_wait_for_one_shared_read() {
    let (server, source, gateway) = rotated().await;
    // Slow enough that every call has its 401 while the one read is still running.
    source.delay_reads(Duration::from_millis(300));

    let calls = (0..20).map(|i| {
        let gateway = &gateway;
        async move {
            if i % 2 == 0 {
                gateway.void_receipt(&call()).await
            } else {
                gateway.refund_payment(&call()).await
            }
        }
    });
    let answers = futures::future::join_all(calls).await;

    assert!(answers.iter().all(|a| *a == Ok(200)), "{answers:?}");
    assert_eq!(source.reads(), 1);
    let sent = sent(&server).await;
    assert_eq!(sent.iter().filter(|t| *t == OLD).count(), 20);
    assert_eq!(sent.iter().filter(|t| *t == NEW).count(), 20);
}

#[tokio::test]
async fn a_401_after_the_re_read_is_transient_and_forced_reads_are_rate_limited() {
    // The secret was rotated to a token the services do not accept either.
    let server = accepting(&[]).await;
    let source = Arc::new(InMemoryTokenSource::new(OLD));
    let gateway = gateway(&server, &source, LONG_TTL);
    source.rotate(NEW);

    let call = call();
    let calls = (0..10).map(|_| gateway.void_receipt(&call));
    let answers = futures::future::join_all(calls).await;
    for answer in answers {
        let error = answer.unwrap_err();
        assert_eq!(error, UpstreamError::Status(401));
        assert_eq!(error.class(), Class::Transient);
    }
    assert_eq!(source.reads(), 1);
    // Within 30 s of that forced read, another 401 repeats the call once without a read.
    assert_eq!(
        gateway.refund_payment(&call).await,
        Err(UpstreamError::Status(401))
    );
    assert_eq!(source.reads(), 1);
    let sent = sent(&server).await;
    assert_eq!(sent.len(), 22, "each call is repeated exactly once");
    assert_eq!(sent[20..], [NEW, NEW]);
}

#[tokio::test]
async fn a_failed_re_read_keeps_the_old_token_and_logs_no_token() {
    let logs = testkit::LogBuffer::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber(tracing::Level::INFO));
    let server = accepting(&[OLD]).await;
    let source = Arc::new(InMemoryTokenSource::new(OLD));
    let gateway = gateway(&server, &source, Duration::from_millis(200));
    source.fail_with(SecretError::Read("AccessDeniedException".into()));

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gateway.void_receipt(&call()).await, Ok(200));
    assert_eq!(source.reads(), 1, "the TTL's re-read was tried");
    // A 401 now: the forced read fails too, and the call is repeated with the old token.
    server.reset().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    assert_eq!(
        gateway.refund_payment(&call()).await,
        Err(UpstreamError::Status(401))
    );
    assert_eq!(source.reads(), 2);
    assert_eq!(sent(&server).await, [OLD, OLD]);

    let text = logs.text();
    assert_eq!(text.matches("could not be re-read").count(), 2, "{text}");
    assert!(text.contains("AccessDeniedException"), "{text}");
    assert!(!text.contains(OLD) && !text.contains(NEW), "{text}");
}

#[tokio::test]
async fn a_re_read_is_bounded_by_two_seconds() {
    let (server, source, gateway) = rotated().await;
    source.delay_reads(Duration::from_secs(30));

    let started = Instant::now();
    let answer = gateway.void_receipt(&call()).await;

    let waited = started.elapsed();
    assert_eq!(answer, Err(UpstreamError::Status(401)));
    assert!(
        waited >= READ_TIMEOUT && waited < READ_TIMEOUT + Duration::from_secs(2),
        "{waited:?}"
    );
    assert_eq!(sent(&server).await, [OLD, OLD], "the old token is kept");
}

#[tokio::test]
async fn a_token_older_than_the_ttl_is_re_read_at_the_next_call() {
    let server = accepting(&[OLD, NEW]).await;
    let source = Arc::new(InMemoryTokenSource::new(OLD));
    let gateway = gateway(&server, &source, Duration::from_millis(300));
    source.rotate(NEW);

    assert_eq!(gateway.void_receipt(&call()).await, Ok(200));
    assert_eq!(source.reads(), 0, "not yet stale");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(gateway.refund_payment(&call()).await, Ok(200));
    assert_eq!(gateway.void_receipt(&call()).await, Ok(200));

    assert_eq!(source.reads(), 1);
    assert_eq!(sent(&server).await, [OLD, NEW, NEW], "no 401 was needed");
}

#[tokio::test]
async fn a_403_is_not_retried_and_without_a_secret_a_401_is_not_repeated() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&server)
        .await;
    let source = Arc::new(InMemoryTokenSource::new(NEW));
    let answer = gateway(&server, &source, LONG_TTL)
        .void_receipt(&call())
        .await;
    assert_eq!(answer, Err(UpstreamError::Status(403)));
    assert_eq!(UpstreamError::Status(403).class(), Class::Permanent);
    assert_eq!((source.reads(), sent(&server).await.len()), (0, 1));

    let server = accepting(&[]).await;
    let without = HttpGateway::new(&Url::parse(&server.uri()).unwrap(), Duration::from_secs(5))
        .unwrap()
        .with_tokens(None);
    let answer = without.void_receipt(&call()).await.unwrap_err();
    assert_eq!(
        (
            answer.class(),
            server.received_requests().await.unwrap().len()
        ),
        (Class::Transient, 1)
    );
}
