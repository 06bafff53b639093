//! What reaches the logs: never a body, a token, a refused header, query value or path
//! segment; every request's line carries its request id.

use lambda_http::{Body, RequestExt};
use refund_shared::queue::InMemoryQueue;

use crate::common::*;

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

/// Refused query values and path segments are never logged; the listing's line carries
/// the parsed filter and the correlation id.
#[tokio::test]
async fn status_logs_carry_no_refused_value() {
    const MARK: &str = "Status-MARK-5500005555555559";
    logs();
    let records = enabled(populated());
    let queue = InMemoryQueue::new();
    let cases = [
        (400, event("GET", &format!("bad-{MARK}"), &[])),
        (400, list_event(&format!("status={MARK}"))),
        (400, list_event(&format!("limit={MARK}"))),
        (400, list_event(&format!("cursor={MARK}"))),
        (200, list_event(&format!("status=failed&{MARK}=1"))),
    ];
    for (i, (expected, request)) in cases.into_iter().enumerate() {
        let mut context = lambda_http::Context::default();
        context.request_id = format!("status-log-case-{i}");
        let answer =
            answer_with(&queue, Some(&records), request.with_lambda_context(context)).await;
        assert_eq!(answer.status, expected, "{}", answer.body);
    }
    let logs = logs();
    for i in 0..4 {
        assert!(logs.contains(&format!("status-log-case-{i}")), "{logs}");
    }
    assert!(
        logs.lines()
            .any(|line| line.contains("refund statuses listed")
                && line.contains("status=\"failed\"")),
        "{logs}"
    );
    assert!(!logs.contains(MARK), "{logs}");
}
