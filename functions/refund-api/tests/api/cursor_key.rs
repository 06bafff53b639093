//! The listing's cursor key: never read on the PUT or the GET by id, read once at the
//! first listing and then kept, a failed read answered 503 and tried again; a key in
//! Secrets Manager is read from a moto server, as on AWS.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use aws_config::ConfigLoader;
use lambda_http::http::header;
use refund_api::{CursorKeys, RefundRecords, cursor_key::KeyUnavailable};
use refund_shared::{
    config::CursorKeySource,
    queue::InMemoryQueue,
    store::{CursorKey, ListQuery, RefundStore},
};
use testkit::{Moto, loader_for};

use crate::common::*;

/// Moto takes a secret's name where Secrets Manager takes its ARN.
const SECRET: &str = "cursor-key";

/// Keys read from [`SECRET`] on `moto`, counting reads: a read builds its client from the
/// loader it is given, once per read, so the loader's calls are the reads.
fn secret_keys(moto: &Moto) -> (Arc<AtomicUsize>, CursorKeys) {
    let reads = Arc::new(AtomicUsize::new(0));
    let counter = reads.clone();
    let endpoint = moto.endpoint.clone();
    let keys = CursorKeys::from_source(CursorKeySource::Secret(SECRET.to_owned()), move || {
        counter.fetch_add(1, Ordering::SeqCst);
        loader_for(&endpoint)
    });
    (reads, keys)
}

/// Puts the key `key(42)` (32 bytes of `*`) into [`SECRET`].
async fn create_secret(moto: &Moto) {
    refund_shared::aws::secrets_client(moto.loader())
        .await
        .create_secret()
        .name(SECRET)
        .secret_string("*".repeat(32))
        .send()
        .await
        .unwrap();
}

/// The PUT and the GET by id never wait for the key; the first listing reads it once.
#[tokio::test]
async fn the_cursor_key_is_read_at_the_first_listing_only() {
    let moto = Moto::start();
    create_secret(&moto).await;
    let (reads, keys) = secret_keys(&moto);
    let records = RefundRecords::new(populated(), keys);
    let queue = InMemoryQueue::new();
    let status = async |request| answer_with(&queue, Some(&records), request).await.status;
    assert_eq!(status(event("PUT", TICKET, &[])).await, 202);
    assert_eq!(status(event("GET", TICKET, &[])).await, 200);
    assert_eq!(status(list_event("status=bad")).await, 400);
    assert_eq!(reads.load(Ordering::SeqCst), 0);
    for _ in 0..3 {
        assert_eq!(status(list_event("limit=1")).await, 200);
    }
    assert_eq!(reads.load(Ordering::SeqCst), 1);
}

/// A key that cannot be read answers 503, and is read again at the next listing.
#[tokio::test]
async fn an_unreadable_cursor_key_answers_503_and_is_retried() {
    let moto = Moto::start();
    let (reads, keys) = secret_keys(&moto);
    let records = RefundRecords::new(populated(), keys);
    // The secret does not exist yet: Secrets Manager answers ResourceNotFoundException.
    let answer = list(&records, "").await;
    assert_error(&answer, 503, "status_unavailable");
    assert_eq!(answer.headers[header::RETRY_AFTER], "1");
    assert!(!answer.body.to_string().contains("secret"));
    create_secret(&moto).await;
    assert_eq!(list(&records, "").await.status, 200);
    assert_eq!(list(&records, "").await.status, 200);
    assert_eq!(reads.load(Ordering::SeqCst), 2);
}

/// Sources other than a secret never build an AWS client.
fn no_aws() -> ConfigLoader {
    unreachable!("only a secret needs Secrets Manager")
}

#[tokio::test]
async fn a_lazy_key_is_read_at_first_use_and_then_kept() {
    let moto = Moto::start();
    create_secret(&moto).await;
    let (reads, keys) = secret_keys(&moto);
    assert_eq!(reads.load(Ordering::SeqCst), 0, "nothing is read up front");
    keys.codec().await.unwrap();
    keys.codec().await.unwrap();
    assert_eq!(reads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failed_read_is_not_kept() {
    let moto = Moto::start();
    let (reads, keys) = secret_keys(&moto);
    // The secret does not exist yet. The reason names the variable that failed, then the
    // read's own reason; past its start it carries the answer's request id and date,
    // which differ from run to run.
    let KeyUnavailable(reason) = keys.codec().await.unwrap_err();
    assert!(
        reason.starts_with(
            "REFUND_CURSOR_KEY_SECRET_ARN: cannot read the secret: service error: ResourceNotFoundException: Secrets Manager can't find the specified secret."
        ),
        "{reason}"
    );
    create_secret(&moto).await;
    keys.codec().await.unwrap();
    keys.codec().await.unwrap();
    assert_eq!(reads.load(Ordering::SeqCst), 2);
}

/// A cursor signed with one source is read back by another with the same key, and
/// refused by an ephemeral one.
#[tokio::test]
async fn sources_with_the_same_key_agree_and_ephemeral_keys_do_not() {
    let key = "k".repeat(32);
    let store = refund_shared::store::InMemoryRefundStore::new();
    for i in 0..3u128 {
        let ticket = refund_shared::command::TicketId::from(uuid::Uuid::from_u128(i + 1));
        store
            .accept(refund_shared::store::RefundRequest {
                ticket_id: ticket,
                idempotency_key: refund_shared::idempotency::IdempotencyKey::for_ticket(ticket),
                correlation_id: refund_shared::correlation::CorrelationId::parse("c").unwrap(),
                requested_by: None,
                accepted_at: time::OffsetDateTime::now_utc(),
                command_id: uuid::Uuid::new_v4(),
            })
            .await
            .unwrap();
    }
    let page = store
        .list(ListQuery {
            limit: "1".parse().unwrap(),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    let cursor = page.next_cursor.unwrap();
    let source = || CursorKeySource::Key(CursorKey::from_bytes(key.as_bytes()).unwrap());
    let one = CursorKeys::from_source(source(), no_aws);
    let two = CursorKeys::from_source(source(), no_aws);
    let text = one.codec().await.unwrap().encode(&cursor);
    assert_eq!(two.codec().await.unwrap().decode(&text, None), Ok(cursor));
    let ephemeral = CursorKeys::from_source(CursorKeySource::Ephemeral, no_aws);
    assert!(
        ephemeral
            .codec()
            .await
            .unwrap()
            .decode(&text, None)
            .is_err()
    );
    assert!(!format!("{one:?}").contains("kkkk"));
}
