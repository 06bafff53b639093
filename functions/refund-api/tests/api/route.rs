//! Each resource serves its own methods; any other is a 405 with that resource's `Allow`,
//! with the refund records or without.

use lambda_http::http::header;
use refund_shared::queue::InMemoryQueue;

use crate::common::*;

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let queue = InMemoryQueue::new();
    let answer_ = answer(&queue, fixture_request("api-refund-wrong-method.json")).await;
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
async fn other_methods_get_405_with_the_resources_allow() {
    let records = enabled(populated());
    for with_store in [false, true] {
        let records = with_store.then_some(&records);
        for method in ["POST", "DELETE", "PATCH", "OPTIONS", "HEAD"] {
            let answer =
                answer_with(&InMemoryQueue::new(), records, event(method, TICKET, &[])).await;
            assert_error(&answer, 405, "method_not_allowed");
            assert_eq!(answer.headers[header::ALLOW], "GET, PUT");
            let message = &answer.body["error"]["message"];
            assert_eq!(message, "this resource only serves GET and PUT");
        }
        for method in ["PUT", "POST", "DELETE", "PATCH", "OPTIONS", "HEAD"] {
            let queue = InMemoryQueue::new();
            let answer = answer_with(&queue, records, list_method(method)).await;
            assert_error(&answer, 405, "method_not_allowed");
            assert_eq!(answer.headers[header::ALLOW], "GET");
            let message = &answer.body["error"]["message"];
            assert_eq!(message, "this resource only serves GET");
            assert!(queue.sent().is_empty());
        }
    }
}
