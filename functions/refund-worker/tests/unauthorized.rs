//! A gateway token the services refuse even after its re-read (contract section 3): the
//! records are retried with backoff, never dead-lettered as rejected, and counted in
//! `UpstreamUnauthorized`. Through the real `HttpGateway` against a local HTTP server, with
//! the secret's in-memory twin counting its reads.

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use common::*;
use refund_shared::{
    gateway::{GatewayToken, HttpGateway, InMemoryTokenSource, TokenCache},
    queue::InMemoryQueue,
    verdict::{Class, ErrorCode},
};
use refund_worker::{Disposition, Worker, metrics::emf_lines};
use serde_json::Value;
use url::Url;
use wiremock::{Mock, MockServer, ResponseTemplate, matchers::method};

const OLD: &str = "upstream-T0ken.old";
const NEW: &str = "upstream-T0ken.new";

/// Services that refuse every token, and a worker whose secret was rotated to a token
/// they refuse too.
async fn refused_everywhere() -> (
    MockServer,
    Arc<InMemoryTokenSource>,
    Worker<HttpGateway, InMemoryQueue, InMemoryQueue>,
) {
    refused_everywhere_reading_in(Duration::ZERO).await
}

/// The same, with every read of the secret taking `delay`.
async fn refused_everywhere_reading_in(
    delay: Duration,
) -> (
    MockServer,
    Arc<InMemoryTokenSource>,
    Worker<HttpGateway, InMemoryQueue, InMemoryQueue>,
) {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let source = Arc::new(InMemoryTokenSource::new(NEW));
    source.delay_reads(delay);
    let tokens = TokenCache::new(
        source.clone(),
        GatewayToken::new(OLD).unwrap(),
        Duration::from_secs(300),
    );
    let gateway = HttpGateway::new(&Url::parse(&server.uri()).unwrap(), Duration::from_secs(5))
        .unwrap()
        .with_tokens(Some(tokens));
    let worker = Worker::new(
        gateway,
        InMemoryQueue::new(),
        InMemoryQueue::new(),
        settings(),
    );
    (server, source, worker)
}

#[tokio::test]
async fn a_401_after_the_re_read_is_retried_and_counted_never_rejected() {
    let (server, source, worker) = refused_everywhere().await;
    let tickets: Vec<String> = (0..3).map(|_| ticket()).collect();

    let outcome = deliver(&worker, first_deliveries(&tickets)).await;

    for record in &outcome.records {
        assert_eq!(record.class, Some(Class::Transient));
        assert_eq!(
            (record.void_status(), record.refund_status()),
            (Some(401), None),
            "the refund waits for a confirmed void"
        );
        // n = 1: d = 5; with the draw at 0, ceil(5/2) = 3.
        assert_eq!(
            record.disposition,
            Disposition::Retry {
                visibility_s: Some(3)
            }
        );
    }
    assert_eq!(outcome.failed_message_ids(), ["m0", "m1", "m2"]);
    assert_eq!(
        source.reads(),
        1,
        "one forced read for all three refused calls"
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        requests.len(),
        6,
        "each void repeated once, and no refund without a confirmed void"
    );

    let lines = emf_lines(&outcome, 1);
    let totals: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(totals["UpstreamUnauthorized"], 3);
    assert_eq!(totals["RefundsRetried"], 3);
    assert_eq!(totals["RefundsDeadLettered"], 0);
    let names = totals["_aws"]["CloudWatchMetrics"][0]["Metrics"].to_string();
    assert!(names.contains("UpstreamUnauthorized"), "{names}");

    let (_, source_queue, dlq) = worker.into_parts();
    assert_eq!(source_queue.visibility_changes().len(), 3);
    assert!(dlq.sent().is_empty());
}

#[tokio::test]
async fn at_the_last_receive_a_401_is_retries_exhausted_not_rejected() {
    let (_server, _source, worker) = refused_everywhere().await;

    let outcome = deliver(&worker, vec![record("last", &command(&ticket()), 15)]).await;

    assert_eq!(
        outcome.records[0].error_code(),
        Some(ErrorCode::RetriesExhausted)
    );
    let (_, _, dlq) = worker.into_parts();
    let sent = dlq.sent();
    assert_eq!(sent[0].attributes["error_code"], "retries_exhausted");
    assert!(sent[0].attributes["error_message"].contains("401"));
}

#[tokio::test]
async fn the_re_read_is_bounded_by_the_records_cut_off() {
    let (_server, source, worker) = refused_everywhere_reading_in(Duration::from_secs(30)).await;
    // Margin 2 s: the cut-off is 0.5 s away, well before the read's own 2 s bound.
    let started = Instant::now();
    let outcome = worker
        .handle_batch(
            event(vec![record("m0", &command(&ticket()), 1)]),
            deadline_in(Duration::from_millis(2500)),
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(outcome.records[0].disposition, Disposition::Unfinished);
    assert_eq!(source.reads(), 1);

    // The cut-off read still counts as this environment's forced read: the next delivery
    // repeats its call with the old token at once instead of starting another read.
    let outcome = deliver(&worker, vec![record("m1", &command(&ticket()), 2)]).await;
    assert_eq!(outcome.records[0].class, Some(Class::Transient));
    assert!(matches!(
        outcome.records[0].disposition,
        Disposition::Retry { .. }
    ));
    assert_eq!(source.reads(), 1);
}
