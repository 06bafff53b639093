//! Each path is one resource or none (404 `route_not_found`); each resource serves its own
//! methods, and any other is a 405 with that resource's `Allow`, with the refund records
//! or without.

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

/// The routing as a caller sees it, handed every path without a router's parameter (a
/// direct invoke, `cargo lambda watch`): the ticket resource, the listing (behind a stage
/// prefix too), and none, which is 404 `route_not_found`.
#[tokio::test]
async fn each_path_is_the_ticket_the_listing_or_no_route() {
    let records = enabled(populated());
    let known = ticket(3);
    let queue = InMemoryQueue::new();
    let at = |path: &str| answer_with(&queue, Some(&records), list_event_at(path, "$default", ""));
    for path in [
        format!("/ticket-refund/{known}"),
        format!("/prod/ticket-refund/{known}"),
    ] {
        let answer = at(&path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        assert_eq!(answer.body["ticket_id"], known.as_str(), "{path}");
    }
    for path in [
        "/ticket-refund/",
        "/ticket-refund/nope",
        "/ticket-refund/a/b",
    ] {
        assert_error(&at(path).await, 400, "invalid_ticket_id");
    }
    for path in [
        "/ticket-refunds",
        "/ticket-refunds/",
        "/prod/ticket-refunds",
        "/prod/ticket-refunds/",
    ] {
        let answer = at(path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        assert!(answer.body["items"].is_array(), "{path}");
    }
    for path in [
        "/",
        "/nope",
        "/ticket-refund",
        "/ticket-refundsx",
        "/ticket-refunds/x",
        "/prod",
    ] {
        assert_error(&at(path).await, 404, "route_not_found");
    }
}

/// A path that is no route is 404 `route_not_found` whatever the method, the caller and
/// the configuration: before the 405, the caller's checks and the records' 404.
#[tokio::test]
async fn a_path_that_is_no_route_is_404_whatever_else() {
    let records = enabled(populated());
    for with_store in [false, true] {
        let records = with_store.then_some(&records);
        for method in ["GET", "PUT", "POST", "DELETE"] {
            let queue = InMemoryQueue::new();
            let mut event: serde_json::Value =
                serde_json::from_str(&fixture("api-refund.json")).unwrap();
            event["rawPath"] = "/nope".into();
            event["requestContext"]["http"]["path"] = "/nope".into();
            event["requestContext"]["http"]["method"] = method.into();
            event.as_object_mut().unwrap().remove("pathParameters");
            for authorizer in [true, false] {
                if !authorizer {
                    event["requestContext"]
                        .as_object_mut()
                        .unwrap()
                        .remove("authorizer");
                }
                let request = lambda_http::request::from_str(&event.to_string()).unwrap();
                let answer = answer_with(&queue, records, request).await;
                assert_error(&answer, 404, "route_not_found");
                assert!(!answer.headers.contains_key(header::ALLOW));
            }
            assert!(queue.sent().is_empty());
        }
    }
}
