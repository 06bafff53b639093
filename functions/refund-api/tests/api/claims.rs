//! Who may do what (contract section 1a): a requester sees only the refunds it asked for,
//! support sees all and alone lists them, and a request without a verified caller is 401.
//! Then the hostile callers: any claims at all get one of the contract's answers.

use lambda_http::{Request, http::header, request::from_str};
use proptest::prelude::*;
use refund_shared::{queue::InMemoryQueue, store::RefundStatus, subject::Subject};
use serde_json::{Value, json};

use crate::{common::*, fuzz::cases};

const REQUEST: &str = "refunds/request";
const SUPPORT: &str = "refunds/support";

/// The committed fixture `name` on `ticket`, from a caller with these JWT claims.
fn as_caller(name: &str, ticket: &str, jwt: Value) -> Request {
    let mut event = if name == "api-list-refunds.json" {
        serde_json::from_str(&fixture(name)).unwrap()
    } else {
        on_ticket(name, ticket)
    };
    event["requestContext"]["authorizer"] = json!({ "jwt": jwt });
    from_str(&event.to_string()).unwrap()
}

fn token(sub: &str, scope: &str) -> Value {
    json!({"claims": {"sub": sub, "scope": scope}, "scopes": [scope]})
}

#[tokio::test]
async fn a_requester_reads_its_own_refund_and_gets_404_for_anothers() {
    let records = holding(record(TICKET, RefundStatus::Processing, 1));
    let queue = InMemoryQueue::new();
    let read = async |jwt| {
        let request = as_caller("api-get-refund.json", TICKET, jwt);
        answer_with(&queue, Some(&records), request).await
    };
    let own = read(token(CALLER, REQUEST)).await;
    assert_eq!(own.status, 200, "{}", own.body);
    assert_eq!(own.body["requested_by"], CALLER);
    let other = read(token("someone-else", REQUEST)).await;
    assert_error(&other, 404, "refund_not_found");
    // Exactly the answer for a ticket nobody asked for: existence does not leak.
    let unknown = answer_with(
        &queue,
        Some(&records),
        as_caller(
            "api-get-refund.json",
            &ticket(77),
            token("someone-else", REQUEST),
        ),
    )
    .await;
    assert_eq!(other.body["error"], unknown.body["error"]);
    let support = read(token("agent-1", SUPPORT)).await;
    assert_eq!(support.status, 200, "{}", support.body);
    assert_eq!(support.body["requested_by"], CALLER);
}

#[tokio::test]
async fn only_support_may_list() {
    let records = enabled(populated());
    let queue = InMemoryQueue::new();
    let listed = async |jwt| {
        let request = as_caller("api-list-refunds.json", TICKET, jwt);
        answer_with(&queue, Some(&records), request).await
    };
    let refused = listed(token(CALLER, REQUEST)).await;
    assert_error(&refused, 403, "insufficient_scope");
    assert_eq!(
        refused.headers[header::WWW_AUTHENTICATE],
        r#"Bearer error="insufficient_scope""#
    );
    assert_eq!(listed(token("agent-1", SUPPORT)).await.status, 200);
}

#[tokio::test]
async fn a_token_with_neither_scope_is_403_on_every_route() {
    let records = holding(record(TICKET, RefundStatus::Processing, 1));
    let queue = InMemoryQueue::new();
    for fixture in [
        "api-refund.json",
        "api-get-refund.json",
        "api-list-refunds.json",
    ] {
        let jwt = token(CALLER, "refunds/write openid");
        let answer = answer_with(&queue, Some(&records), as_caller(fixture, TICKET, jwt)).await;
        assert_error(&answer, 403, "insufficient_scope");
    }
    assert!(queue.sent().is_empty());
}

#[tokio::test]
async fn a_sub_over_255_bytes_or_none_is_401_and_nothing_is_queued() {
    let queue = InMemoryQueue::new();
    for jwt in [
        token(&"s".repeat(256), REQUEST),
        token("", REQUEST),
        json!({"claims": {"scope": REQUEST}, "scopes": [REQUEST]}),
    ] {
        let request = as_caller("api-refund.json", TICKET, jwt.clone());
        let answer = answer(&queue, request).await;
        assert_error(&answer, 401, "unauthenticated");
    }
    assert!(queue.sent().is_empty());
    let at_the_bound = as_caller("api-refund.json", TICKET, token(&"s".repeat(255), REQUEST));
    assert_eq!(answer(&queue, at_the_bound).await.status, 202);
}

/// A refunded ticket: its record to its owner and to support, to anyone else only that
/// it is refunded.
#[tokio::test]
async fn a_put_on_a_refunded_ticket_shows_the_record_only_to_its_owner_and_support() {
    let refunded = record(TICKET, RefundStatus::Succeeded, 0);
    let records = holding(refunded.clone());
    let queue = InMemoryQueue::new();
    let put = async |jwt| {
        let request = as_caller("api-refund.json", TICKET, jwt);
        answer_with(&queue, Some(&records), request).await
    };
    for jwt in [token(CALLER, REQUEST), token("agent-1", SUPPORT)] {
        let answer = put(jwt).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, serde_json::to_value(&refunded).unwrap());
    }
    let stranger = put(token("someone-else", REQUEST)).await;
    assert_eq!(stranger.status, 200);
    assert_eq!(
        stranger.body,
        json!({"ticket_id": TICKET, "status": "succeeded"})
    );
    assert!(queue.sent().is_empty());
}

/// The owner is the first accepted caller, for good: a second caller asking again for a
/// failed refund is accepted, but does not become its owner, nor see it afterwards.
#[tokio::test]
async fn the_owner_is_fixed_at_the_first_accept() {
    let records = holding(record(TICKET, RefundStatus::Failed, 0));
    let queue = InMemoryQueue::new();
    let again = as_caller("api-refund.json", TICKET, token("someone-else", REQUEST));
    assert_eq!(answer_with(&queue, Some(&records), again).await.status, 202);
    let record = stored(&records.store, TICKET);
    assert_eq!(record.status, RefundStatus::Accepted);
    assert_eq!(
        record.requested_by.as_ref().map(Subject::as_str),
        Some(CALLER)
    );
    let read = as_caller(
        "api-get-refund.json",
        TICKET,
        token("someone-else", REQUEST),
    );
    assert_error(
        &answer_with(&queue, Some(&records), read).await,
        404,
        "refund_not_found",
    );
}

/// Claims as a careless or hostile identity provider might shape them.
fn claims() -> impl Strategy<Value = Value> {
    let text = prop_oneof![
        Just(String::new()),
        Just(CALLER.to_owned()),
        ".{0,40}",
        "[a-z]{250,400}",
    ];
    let scope = prop_oneof![
        Just(REQUEST.to_owned()),
        Just(SUPPORT.to_owned()),
        Just(format!("{REQUEST} {SUPPORT}")),
        ".{0,60}",
        "[ -~]{1000,5000}",
    ];
    (
        proptest::option::of(text),
        proptest::option::of(scope.clone()),
        proptest::option::of(proptest::collection::vec(scope, 0..4)),
        proptest::collection::hash_map("[a-z_]{1,12}", ".{0,2000}", 0..6),
    )
        .prop_map(|(sub, scope, scopes, extra)| {
            let mut claims: serde_json::Map<String, Value> = extra
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            if let Some(sub) = sub {
                claims.insert("sub".into(), sub.into());
            }
            if let Some(scope) = scope {
                claims.insert("scope".into(), scope.into());
            }
            json!({"claims": claims, "scopes": scopes})
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(300)))]

    /// Any claims on any route: one of the contract's answers, never a 500 (a panic), and
    /// a command is queued only for a verified caller with a scope.
    #[test]
    fn any_claims_get_an_answer_in_contract(
        jwt in claims(),
        fixture in prop_oneof![
            Just("api-refund.json"),
            Just("api-get-refund.json"),
            Just("api-list-refunds.json"),
        ],
    ) {
        let sub = jwt["claims"]["sub"].as_str().unwrap_or("").to_owned();
        let records = holding(record(TICKET, RefundStatus::Processing, 1));
        let queue = InMemoryQueue::new();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let request = as_caller(fixture, TICKET, jwt);
        let answer = runtime.block_on(answer_with(&queue, Some(&records), request));
        prop_assert!([200, 202, 401, 403, 404].contains(&answer.status), "{} {}", answer.status, answer.body);
        let verified = !sub.trim().is_empty() && sub.len() <= 255;
        prop_assert_eq!(answer.status == 401, !verified, "{}", answer.body);
        if answer.status >= 400 {
            prop_assert!(answer.body["error"]["code"].is_string());
        }
        prop_assert_eq!(queue.sent().len(), usize::from(answer.status == 202));
        if answer.status == 200 && fixture == "api-get-refund.json" {
            prop_assert_eq!(answer.body["requested_by"].as_str(), Some(CALLER));
        }
    }
}
