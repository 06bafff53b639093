//! What a request says about itself: its `Correlation-ID` (generated when absent or
//! refused, a 400 only on the PUT), the caller the authorizer verified, the request id.

use lambda_http::{
    RequestExt,
    http::{HeaderValue, header},
    request::from_str,
};
use refund_api::NO_RECORDS;
use refund_shared::queue::InMemoryQueue;
use serde_json::Value;
use uuid::Uuid;

use crate::common::*;

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

/// A GET only logs and echoes the correlation id: a refused one is replaced by a
/// generated one, as openapi.yaml describes the GETs.
#[tokio::test]
async fn a_get_with_a_bad_correlation_id_goes_on_with_a_generated_one() {
    let store = populated();
    let known = ticket(0);
    let records = enabled(store);
    let long = "c".repeat(129);
    for bad in ["two words", long.as_str()] {
        let mut listing = list_event("limit=1");
        listing
            .headers_mut()
            .insert("correlation-id", HeaderValue::from_str(bad).unwrap());
        for (request, expected) in [
            (event("GET", &known, &[("correlation-id", bad)]), 200),
            (event("GET", TICKET, &[("correlation-id", bad)]), 404),
            (listing, 200),
        ] {
            let answer = answer_with(&InMemoryQueue::new(), Some(&records), request).await;
            assert_eq!(answer.status, expected, "{}", answer.body);
            assert!(
                answer.headers["correlation-id"]
                    .to_str()
                    .unwrap()
                    .starts_with("gen_")
            );
        }
    }
}

/// Without an authorizer there is no verified caller: 401 and nothing queued, except on a
/// local stack, which serves it as support, with no `requested_by`.
#[tokio::test]
async fn without_an_authorizer_there_is_no_requested_by() {
    let mut event: Value = serde_json::from_str(&fixture("api-refund.json")).unwrap();
    event["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    let queue = InMemoryQueue::new();
    let refused = answer(&queue, from_str(&event.to_string()).unwrap()).await;
    assert_error(&refused, 401, "unauthenticated");
    assert_eq!(refused.headers[header::WWW_AUTHENTICATE], "Bearer");
    assert!(queue.sent().is_empty());
    let request = from_str(&event.to_string()).unwrap();
    let served = answer_as(&local_access(), &queue, NO_RECORDS, request).await;
    assert_eq!(served.status, 202);
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

/// The invocation's X-Ray trace goes on the command as `AWSTraceHeader`, so the worker's
/// trace continues the API's (contract section 2); none, or one that is not a trace
/// header, puts nothing there and still queues the command.
#[tokio::test]
async fn the_invocations_trace_travels_with_the_command() {
    let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    for (given, carried) in [
        (Some(trace), Some(trace)),
        (Some("not a trace header"), None),
        (None, None),
    ] {
        let mut context = lambda_http::Context::default();
        context.xray_trace_id = given.map(str::to_owned);
        let request = event("PUT", TICKET, &[]).with_lambda_context(context);
        let queue = InMemoryQueue::new();
        let answer = answer(&queue, request).await;
        assert_eq!(answer.status, 202, "{given:?}");
        let sent = queue.sent();
        assert_eq!(
            sent[0].trace.as_ref().map(|t| t.as_str()),
            carried,
            "{given:?}"
        );
    }
}
