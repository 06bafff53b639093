//! Whatever arrives, the answer is one of the contract's: proptest over methods, paths,
//! ids, headers and query parameters, served as the local stack serves a caller without a
//! token (`claims.rs` fuzzes the callers themselves; `make fuzz` runs both with more cases).

use std::collections::HashMap;

use lambda_http::{Body, RequestExt, http::HeaderValue};
use proptest::prelude::*;
use refund_shared::{
    port::PortFailure,
    queue::{InMemoryQueue, QueueError},
    store::{RefundStatus, StoreError},
};
use uuid::Uuid;

use refund_api::NO_RECORDS;

use crate::common::{answer_as, enabled, list, local_access, populated};

pub(crate) fn header_value() -> impl Strategy<Value = Vec<u8>> {
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
pub(crate) fn cases(default: u32) -> u32 {
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
            InMemoryQueue::failing(QueueError(PortFailure::Unavailable("down".into())))
        } else {
            InMemoryQueue::new()
        };
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let answer = runtime.block_on(answer_as(&local_access(), &queue, NO_RECORDS, request));
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

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/ticket-refunds".to_owned()),
        Just("/prod/ticket-refunds".to_owned()),
        Just("/nope".to_owned()),
        ticket().prop_map(|ticket| format!("/ticket-refund/{ticket}")),
        "(/[A-Za-z0-9._~%!$&'()*+,;=:@-]{0,16}){0,5}",
    ]
}

/// Whether the function serves `path`, written out here independently of `route.rs`: a
/// router's `{ticket_id}` parameter, a last segment `ticket-refunds` (a trailing `/`
/// allowed), or a segment after `/ticket-refund/`.
fn is_a_route(path: &str, has_ticket_parameter: bool) -> bool {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    has_ticket_parameter
        || trimmed.rsplit('/').next() == Some("ticket-refunds")
        || path.contains("/ticket-refund/")
}

fn query_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("status".to_owned()),
        Just("limit".to_owned()),
        Just("cursor".to_owned()),
        ".{0,8}",
    ]
}

fn query_value(cursors: Vec<String>) -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "accepted",
            "processing",
            "succeeded",
            "failed",
            "",
            "0",
            "1",
            "20",
            "100",
            "101",
        ])
        .prop_map(str::to_owned),
        proptest::sample::select(cursors),
        ".{0,90}",
    ]
}

/// A genuine cursor of every filter, signed with `key(42)`.
fn genuine_cursors() -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let records = enabled(populated());
    std::iter::once(String::new())
        .chain(RefundStatus::ALL.map(|status| format!("status={status}&")))
        .map(|filter| {
            let answer = runtime.block_on(list(&records, &format!("{filter}limit=1")));
            answer.body["next_cursor"].as_str().unwrap().to_owned()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(300)))]

    /// Any GET, on any path with any query parameters, with or without the store, with a
    /// store that works or not: one of the contract's answers, never a 500 (a panic); a
    /// path that is no route is 404 `route_not_found`, and only such a path.
    #[test]
    fn gets_never_panic_and_always_answer_in_contract(
        path in path(),
        path_ticket in proptest::option::of(ticket()),
        query in proptest::collection::vec((query_key(), query_value(genuine_cursors())), 0..5),
        with_store in any::<bool>(),
        failing in any::<bool>(),
        correlation in proptest::option::of(header_value()),
    ) {
        let uri = format!("https://api.example.com{path}");
        let Ok(builder) = lambda_http::http::Request::builder().method("GET").uri(uri.as_str()).body(Body::Empty) else {
            return Ok(());
        };
        let mut parameters: HashMap<String, Vec<String>> = HashMap::new();
        for (key, value) in query {
            parameters.entry(key).or_default().push(value);
        }
        // The path as the function reads it (`""` is `/`), and whether a router matched.
        let routed = is_a_route(builder.uri().path(), path_ticket.is_some());
        let mut request = builder.with_query_string_parameters(parameters);
        if let Some(ticket) = path_ticket {
            request = request.with_path_parameters(HashMap::from([("ticket_id".to_owned(), ticket)]));
        }
        if let Some(value) = correlation.and_then(|value| HeaderValue::from_bytes(&value).ok()) {
            request.headers_mut().insert("correlation-id", value);
        }
        let records = enabled(populated());
        if failing {
            records.store.set_failure(Some(StoreError::Port(PortFailure::Unavailable("down".into()))));
        }
        let queue = InMemoryQueue::new();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let answer = runtime.block_on(answer_as(&local_access(), &queue, with_store.then_some(&records), request));
        prop_assert!(queue.sent().is_empty());
        if !routed {
            prop_assert_eq!(answer.status, 404, "{}", answer.body);
            prop_assert_eq!(&answer.body["error"]["code"], "route_not_found");
            return Ok(());
        }
        if !with_store {
            prop_assert_eq!(answer.status, 404, "{}", answer.body);
            prop_assert_eq!(&answer.body["error"]["code"], "status_not_enabled");
            return Ok(());
        }
        let allowed: &[u16] = if failing { &[400, 503] } else { &[200, 400, 404] };
        prop_assert!(allowed.contains(&answer.status), "{} {}", answer.status, answer.body);
        match answer.status {
            200 if answer.body.get("items").is_some() => {
                prop_assert!(answer.body["items"].is_array());
                prop_assert!(answer.body["next_cursor"].is_string() || answer.body["next_cursor"].is_null());
            }
            200 => prop_assert!(answer.body["ticket_id"].is_string()),
            404 => prop_assert_eq!(&answer.body["error"]["code"], "refund_not_found"),
            _ => prop_assert!(answer.body["error"]["code"].is_string()),
        }
    }
}
