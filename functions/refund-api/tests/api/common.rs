//! What every test of the API builds on: the committed fixtures as requests, the answer
//! read back (always JSON, always echoing `Correlation-ID`), K computed independently,
//! the in-memory store populated with records, and the one log buffer.

use lambda_http::{Body, Request, http::header, request::from_str};
use refund_api::{CursorKeys, NO_RECORDS, RefundRecords, handle};
use refund_shared::{
    config::AccessConfig,
    queue::{CommandQueue, InMemoryQueue},
    store::{CursorKey, InMemoryRefundStore, RefundRecord, RefundStatus, RefundStore},
    subject::Subject,
};
use serde_json::Value;
use sha1::{Digest, Sha1};
use time::OffsetDateTime;
use uuid::Uuid;

pub const TICKET: &str = "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f";
/// The `sub` of the committed fixtures' caller.
pub const CALLER: &str = "7c1e5f3a-2b4d-4e6f-8a9b-0c1d2e3f4a5b";

/// The template's scopes, every caller authenticated: as deployed.
pub fn access() -> AccessConfig {
    AccessConfig::default()
}

pub fn fixture(name: &str) -> String {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The committed fixture `name` as the request API Gateway sends.
pub fn fixture_request(name: &str) -> Request {
    from_str(&fixture(name)).unwrap()
}

/// The committed fixture `name` (a request on one ticket) for `ticket` instead.
pub fn on_ticket(name: &str, ticket: &str) -> Value {
    let mut event: Value = serde_json::from_str(&fixture(name)).unwrap();
    event["rawPath"] = format!("/ticket-refund/{ticket}").into();
    event["requestContext"]["http"]["path"] = event["rawPath"].clone();
    event["pathParameters"]["ticket_id"] = ticket.into();
    event
}

/// An API Gateway HTTP API (payload 2.0) event, as the committed fixtures are built.
pub fn event(method: &str, ticket: &str, headers: &[(&str, &str)]) -> Request {
    let mut event = on_ticket("api-refund.json", ticket);
    event["requestContext"]["http"]["method"] = method.into();
    event["headers"]
        .as_object_mut()
        .unwrap()
        .remove("correlation-id");
    for (name, value) in headers {
        event["headers"][*name] = (*value).into();
    }
    from_str(&event.to_string()).unwrap()
}

pub struct Answer {
    pub status: u16,
    pub headers: lambda_http::http::HeaderMap,
    pub body: Value,
}

/// The answer without the refund records (`NO_RECORDS`), as before they existed.
pub async fn answer(queue: &InMemoryQueue, request: Request) -> Answer {
    answer_with(queue, NO_RECORDS, request).await
}

/// Every answer is JSON and echoes `Correlation-ID`.
pub async fn answer_with<Q: CommandQueue, S: RefundStore>(
    queue: &Q,
    records: Option<&RefundRecords<S>>,
    request: Request,
) -> Answer {
    answer_as(&access(), queue, records, request).await
}

/// The local stack's access: a request without a verified caller is served as support.
pub fn local_access() -> AccessConfig {
    AccessConfig {
        allow_unauthenticated: true,
        ..AccessConfig::default()
    }
}

/// [`answer_with`] under the access rules `access`.
pub async fn answer_as<Q: CommandQueue, S: RefundStore>(
    access: &AccessConfig,
    queue: &Q,
    records: Option<&RefundRecords<S>>,
    request: Request,
) -> Answer {
    let response = handle(queue, records, access, request).await.unwrap();
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

pub fn assert_error(answer: &Answer, status: u16, code: &str) {
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
pub fn expected_key(ticket: &str) -> String {
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

/// Everything any test of this binary logged so far, at every level. One global
/// subscriber, set once: thread-scoped subscribers race with the callsite cache when tests
/// run in parallel, and a test that reads logs must not miss lines.
pub fn logs() -> String {
    static LOGS: std::sync::OnceLock<testkit::LogBuffer> = std::sync::OnceLock::new();
    let buffer = LOGS.get_or_init(|| {
        let buffer = testkit::LogBuffer::default();
        tracing::subscriber::set_global_default(buffer.subscriber(tracing::Level::TRACE)).unwrap();
        buffer
    });
    buffer.text()
}

pub type Enabled = RefundRecords<InMemoryRefundStore>;

pub fn key(byte: u8) -> CursorKey {
    CursorKey::from_bytes(&[byte; 32]).unwrap()
}

/// The refund records with `record` alone in the store.
pub fn holding(record: RefundRecord) -> Enabled {
    let store = InMemoryRefundStore::new();
    store.insert(record);
    enabled(store)
}

pub fn enabled(store: InMemoryRefundStore) -> Enabled {
    RefundRecords::new(store, CursorKeys::fixed(key(42)))
}

/// A ticket id made from a number, so tests can make many.
pub fn ticket(n: u128) -> String {
    Uuid::from_u128(0x0f5d_8c6e_3a1b_4c2d_9e8f_0000_0000_0000 + n).to_string()
}

/// A record as the store would hold it, accepted `minute` minutes into a fixed hour.
pub fn record(ticket_id: &str, status: RefundStatus, minute: i64) -> RefundRecord {
    let accepted_at = OffsetDateTime::from_unix_timestamp(1_795_412_349 + 60 * minute).unwrap();
    RefundRecord {
        ticket_id: ticket_id.parse().unwrap(),
        status,
        idempotency_key: expected_key(ticket_id).parse().unwrap(),
        correlation_id: refund_shared::correlation::CorrelationId::parse(&format!("c-{minute}"))
            .unwrap(),
        requested_by: Subject::parse(CALLER).ok(),
        attempts: u32::from(status != RefundStatus::Accepted),
        last_error: None,
        failure_reason: (status == RefundStatus::Failed).then(|| "void answered HTTP 422".into()),
        accepted_at,
        updated_at: accepted_at + time::Duration::seconds(5),
        completed_at: status
            .is_final()
            .then(|| accepted_at + time::Duration::seconds(5)),
        queued_at: Some(accepted_at),
        command_id: Some(uuid::Uuid::from_u128(u128::from(minute.unsigned_abs()))),
        receipt_voided_at: None,
        payment_refunded_at: None,
        interactions: Vec::new(),
    }
}

pub fn stored(store: &InMemoryRefundStore, ticket_id: &str) -> RefundRecord {
    store
        .records()
        .into_iter()
        .find(|record| record.ticket_id.to_string() == ticket_id)
        .unwrap()
}

/// `GET /ticket-refunds?<query>` as API Gateway sends it (from the committed fixture).
pub fn list_event(query: &str) -> Request {
    list_event_at("/ticket-refunds", "$default", query)
}

pub fn list_event_at(path: &str, stage: &str, query: &str) -> Request {
    let mut event: Value = serde_json::from_str(&fixture("api-list-refunds.json")).unwrap();
    event["rawPath"] = path.into();
    event["requestContext"]["http"]["path"] = path.into();
    event["requestContext"]["stage"] = stage.into();
    event["rawQueryString"] = query.into();
    event
        .as_object_mut()
        .unwrap()
        .remove("queryStringParameters");
    from_str(&event.to_string()).unwrap()
}

pub fn list_method(method: &str) -> Request {
    let mut event: Value = serde_json::from_str(&fixture("api-list-refunds.json")).unwrap();
    event["requestContext"]["http"]["method"] = method.into();
    from_str(&event.to_string()).unwrap()
}

pub async fn list(records: &Enabled, query: &str) -> Answer {
    answer_with(&InMemoryQueue::new(), Some(records), list_event(query)).await
}

pub fn ids(answer: &Answer) -> Vec<String> {
    answer.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["ticket_id"].as_str().unwrap().to_owned())
        .collect()
}

/// 25 records over every status, some accepted in the same minute (ties are ordered
/// by ticket id).
pub fn populated() -> InMemoryRefundStore {
    let store = InMemoryRefundStore::new();
    for n in 0..25u128 {
        let status = RefundStatus::ALL[(n % 4) as usize];
        store.insert(record(&ticket(n), status, (n / 2) as i64));
    }
    store
}

/// Newest first, then by ticket id, the contract's listing order.
pub fn expected_order(store: &InMemoryRefundStore, filter: Option<RefundStatus>) -> Vec<String> {
    let mut records: Vec<_> = store
        .records()
        .into_iter()
        .filter(|record| filter.is_none_or(|status| record.status == status))
        .collect();
    records.sort_by_key(|record| (record.accepted_at, record.ticket_id.to_string()));
    records
        .into_iter()
        .rev()
        .map(|record| record.ticket_id.to_string())
        .collect()
}
