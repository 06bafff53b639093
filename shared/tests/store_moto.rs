//! The refund status store: one behaviour suite, run against the DynamoDB adapter on a
//! real DynamoDB endpoint (moto) and against the in-memory twin, so the twin the handler
//! tests rely on cannot drift from the table.

use std::time::Duration;

use refund_shared::{
    command::TicketId,
    correlation::CorrelationId,
    idempotency::IdempotencyKey,
    port::PortFailure,
    store::{
        Accepted, Attempt, Call, Change, CursorCodec, CursorError, CursorKey, DynamoRefundStore,
        InMemoryRefundStore, Interaction, ListQuery, PageLimit, Progress, RefundRecord,
        RefundRequest, RefundStatus, RefundStore, StoreError, Transition, record::MAX_INTERACTIONS,
        table::ListKey,
    },
    subject::Subject,
    verdict::UpstreamError,
};
use testkit::{Moto, free_port};
use time::{OffsetDateTime, macros::datetime};

const T0: OffsetDateTime = datetime!(2026-11-23 06:00 UTC);
const TABLE: &str = "refunds";

fn at(seconds: u64) -> OffsetDateTime {
    T0 + Duration::from_secs(seconds)
}

fn ticket(n: u128) -> TicketId {
    uuid::Uuid::from_u128(0x0f5d_8c6e_3a1b_4c2d_9e8f_0000_0000_0000 + n)
        .to_string()
        .parse()
        .unwrap()
}

fn request(n: u128, accepted_at: OffsetDateTime) -> RefundRequest {
    RefundRequest {
        ticket_id: ticket(n),
        idempotency_key: IdempotencyKey::for_ticket(ticket(n)),
        correlation_id: CorrelationId::parse(&format!("corr-{n}")).unwrap(),
        requested_by: Subject::parse("user-7").ok(),
        accepted_at,
        command_id: uuid::Uuid::from_u128(n),
    }
}

fn calls(first_duration: u64, n: u64, when: OffsetDateTime) -> Vec<Interaction> {
    (first_duration..first_duration + n)
        .map(|duration| {
            Interaction::new(
                Call::RefundPayment,
                &Err(UpstreamError::Status(503)),
                Duration::from_millis(duration),
                when,
            )
        })
        .collect()
}

fn codec(key: u8) -> CursorCodec {
    CursorCodec::new(CursorKey::from_bytes(&[key; 32]).unwrap())
}

/// Applies `event` at `when` to ticket 1's record, which must work.
async fn record_one(store: &impl RefundStore, event: Transition, when: OffsetDateTime) -> Change {
    store.record(&request(1, T0), event, when).await.unwrap()
}

/// Every behaviour runs twice: against DynamoDB on moto, and against the twin.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[tokio::test]
            async fn dynamodb() {
                let moto = Moto::start();
                refund_shared::store::create_table(&refund_shared::aws::dynamodb_client(moto.loader()).await, TABLE).await.unwrap();
                super::$name(&DynamoRefundStore::new(refund_shared::aws::dynamodb_client(moto.loader()).await, TABLE)).await;
            }

            #[tokio::test]
            async fn in_memory() {
                super::$name(&InMemoryRefundStore::new()).await;
            }
        }
    )*};
}

both!(
    accept_creates_an_accepted_record,
    accepting_an_open_refund_again_returns_it_unchanged,
    an_open_refund_is_requeued_after_the_quiet_period_and_unqueued,
    a_withdrawal_fails_only_its_own_accepted_record,
    accepting_a_succeeded_refund_returns_it_and_changes_nothing,
    a_failed_refund_is_accepted_again_keeping_its_history,
    a_redriven_failure_is_processing_again,
    a_succeeded_refund_never_moves_again,
    the_worker_creates_a_record_the_api_could_not_write,
    the_trail_keeps_the_newest_twenty_calls,
    listings_page_newest_first_without_gaps_or_repeats,
    cursors_refuse_tampering,
);

async fn accept_creates_an_accepted_record(store: &impl RefundStore) {
    let accepted = store.accept(request(1, T0)).await.unwrap();
    let Accepted::Created(record) = &accepted else {
        panic!("not created: {accepted:?}");
    };
    assert_eq!(record.ticket_id, ticket(1));
    assert_eq!(record.status, RefundStatus::Accepted);
    assert_eq!(
        record.idempotency_key,
        IdempotencyKey::for_ticket(ticket(1))
    );
    assert_eq!(record.correlation_id, "corr-1");
    assert_eq!(
        record.requested_by.as_ref().map(Subject::as_str),
        Some("user-7")
    );
    assert_eq!(record.attempts, 0);
    assert_eq!((record.accepted_at, record.updated_at), (T0, T0));
    assert_eq!(record.completed_at, None);
    assert!(record.interactions.is_empty());
    assert!(!accepted.already_succeeded());
    assert_eq!(store.get(ticket(1)).await.unwrap().as_ref(), Some(record));
    assert_eq!(store.get(ticket(2)).await.unwrap(), None);
}

async fn accepting_an_open_refund_again_returns_it_unchanged(store: &impl RefundStore) {
    let first = store.accept(request(1, T0)).await.unwrap().into_record();
    let again = store.accept(request(1, at(5))).await.unwrap();
    assert_eq!(again, Accepted::Existing(first.clone()));
    assert!(!again.already_succeeded());

    let processing = record_one(store, Transition::Begin, at(10)).await;
    let Change::Written(processing) = processing else {
        panic!("begin did not write: {processing:?}");
    };
    assert_eq!(processing.status, RefundStatus::Processing);
    assert_eq!(processing.attempts, 1);
    let again = store.accept(request(1, at(20))).await.unwrap();
    assert_eq!(again, Accepted::Existing(processing.clone()));
    assert_eq!(store.get(ticket(1)).await.unwrap(), Some(processing));
}

/// The quiet period's two writes (contract section 1a): a re-queue names the new command
/// only past the quiet period, and its undo restores the command before, only while the
/// record still names the refused one.
async fn an_open_refund_is_requeued_after_the_quiet_period_and_unqueued(store: &impl RefundStore) {
    let first = store.accept(request(1, T0)).await.unwrap().into_record();
    assert_eq!(first.queued_at, Some(T0));
    assert_eq!(first.command_id, Some(uuid::Uuid::from_u128(1)));
    let second = RefundRequest {
        command_id: uuid::Uuid::from_u128(2),
        ..request(1, at(30))
    };
    let quiet = store.record(&second, Transition::Requeue, at(30)).await;
    assert_eq!(quiet, Ok(Change::Kept(first.clone())));

    let later = at(61);
    let Change::Written(requeued) = store
        .record(&second, Transition::Requeue, later)
        .await
        .unwrap()
    else {
        panic!("not re-queued past the quiet period");
    };
    assert_eq!(requeued.queued_at, Some(later));
    assert_eq!(requeued.command_id, Some(uuid::Uuid::from_u128(2)));
    assert_eq!(
        store.get(ticket(1)).await.unwrap().as_ref(),
        Some(&requeued)
    );

    let undo = |refused| Transition::Unqueue {
        refused,
        queued_at: first.queued_at,
        command_id: first.command_id,
    };
    let foreign = store
        .record(&second, undo(uuid::Uuid::from_u128(3)), later)
        .await;
    assert_eq!(foreign, Ok(Change::Kept(requeued)));
    let undone = store
        .record(&second, undo(uuid::Uuid::from_u128(2)), later)
        .await;
    assert_eq!(undone, Ok(Change::Written(first.clone())));
    assert_eq!(store.get(ticket(1)).await.unwrap(), Some(first));

    // A `queued_at` after now (a skewed clock) is not quiet: the ticket is queued again.
    let skewed = store
        .accept(request(2, at(3600)))
        .await
        .unwrap()
        .into_record();
    let requeue = RefundRequest {
        command_id: uuid::Uuid::from_u128(22),
        ..request(2, T0)
    };
    let Ok(Change::Written(requeued)) = store.record(&requeue, Transition::Requeue, T0).await
    else {
        panic!("a future queued_at kept the ticket quiet: {skewed:?}");
    };
    assert_eq!(requeued.queued_at, Some(T0));
}

/// A withdrawal (the queue refused an accept's command) fails the `accepted` record that
/// names its command, and nothing else.
async fn a_withdrawal_fails_only_its_own_accepted_record(store: &impl RefundStore) {
    let accepted = store.accept(request(1, T0)).await.unwrap().into_record();
    let withdraw = |refused| Transition::Withdraw {
        refused,
        reason: "not queued".into(),
    };
    let foreign = store
        .record(&request(1, T0), withdraw(uuid::Uuid::from_u128(9)), at(1))
        .await;
    assert_eq!(foreign, Ok(Change::Kept(accepted)));
    let Change::Written(failed) =
        record_one(store, withdraw(uuid::Uuid::from_u128(1)), at(1)).await
    else {
        panic!("not withdrawn");
    };
    assert_eq!((failed.status, failed.attempts), (RefundStatus::Failed, 0));
    assert_eq!(failed.failure_reason.as_deref(), Some("not queued"));
    assert_eq!(store.get(ticket(1)).await.unwrap(), Some(failed));
}

async fn accepting_a_succeeded_refund_returns_it_and_changes_nothing(store: &impl RefundStore) {
    store.accept(request(1, T0)).await.unwrap();
    record_one(store, Transition::Begin, at(1)).await;
    let done = record_one(
        store,
        Transition::Succeed {
            progress: Progress {
                interactions: calls(1, 2, at(2)),
                ..Progress::default()
            },
        },
        at(3),
    )
    .await;
    let Change::Written(done) = done else {
        panic!("succeed did not write: {done:?}");
    };
    assert_eq!(done.status, RefundStatus::Succeeded);
    assert_eq!(done.completed_at, Some(at(3)));
    assert_eq!(done.receipt_voided_at, Some(at(3)));

    let again = store.accept(request(1, at(60))).await.unwrap();
    assert!(again.already_succeeded());
    assert_eq!(again, Accepted::Existing(done.clone()));
    assert_eq!(store.get(ticket(1)).await.unwrap(), Some(done));
}

async fn a_failed_refund_is_accepted_again_keeping_its_history(store: &impl RefundStore) {
    store.accept(request(1, T0)).await.unwrap();
    record_one(store, Transition::Begin, at(1)).await;
    record_one(
        store,
        Transition::Retry {
            last_error: "refund answered HTTP 503".into(),
            progress: Progress {
                interactions: calls(1, 2, at(1)),
                receipt_voided_at: Some(at(1)),
                payment_refunded_at: None,
            },
        },
        at(2),
    )
    .await;
    let failed = record_one(
        store,
        Transition::Fail {
            reason: "payments service rejected the refund: answered HTTP 409".into(),
            progress: Progress {
                interactions: calls(3, 1, at(3)),
                ..Progress::default()
            },
        },
        at(4),
    )
    .await
    .record()
    .clone();
    assert_eq!(failed.status, RefundStatus::Failed);
    assert_eq!(failed.completed_at, Some(at(4)));
    assert_eq!(
        failed.last_error.as_deref(),
        Some("refund answered HTTP 503")
    );
    assert!(failed.failure_reason.as_deref().unwrap().contains("409"));

    // Another caller asks again: accepted, but the owner stays the first caller.
    let new_put = RefundRequest {
        correlation_id: CorrelationId::parse("corr-second-put").unwrap(),
        requested_by: Subject::parse("someone-else").ok(),
        ..request(1, at(100))
    };
    let accepted = store.accept(new_put).await.unwrap();
    let Accepted::Reaccepted(record) = &accepted else {
        panic!("not accepted again: {accepted:?}");
    };
    assert_eq!(record.status, RefundStatus::Accepted);
    assert_eq!((record.accepted_at, record.updated_at), (at(100), at(100)));
    assert_eq!(record.correlation_id, "corr-second-put");
    assert_eq!(
        record.requested_by.as_ref().map(Subject::as_str),
        Some("user-7")
    );
    assert_eq!(
        (
            &record.failure_reason,
            &record.last_error,
            record.completed_at
        ),
        (&None, &None, None)
    );
    // History and facts stay.
    assert_eq!(record.attempts, 1);
    assert_eq!(record.interactions, failed.interactions);
    assert_eq!(record.receipt_voided_at, Some(at(1)));
    // What the store returned is what it stored (for DynamoDB: the update expression
    // wrote what the shared rules computed).
    assert_eq!(store.get(ticket(1)).await.unwrap().as_ref(), Some(record));
    // And it is open again.
    assert_eq!(
        store.accept(request(1, at(200))).await.unwrap(),
        Accepted::Existing(record.clone())
    );
}

async fn a_redriven_failure_is_processing_again(store: &impl RefundStore) {
    store.accept(request(1, T0)).await.unwrap();
    record_one(
        store,
        Transition::Fail {
            reason: "void answered HTTP 409".into(),
            progress: Progress::default(),
        },
        at(1),
    )
    .await;
    let redriven = record_one(store, Transition::Begin, at(50)).await;
    let Change::Written(redriven) = redriven else {
        panic!("redrive did not write: {redriven:?}");
    };
    assert_eq!(redriven.status, RefundStatus::Processing);
    assert_eq!(redriven.attempts, 2);
    assert_eq!(
        (redriven.failure_reason, redriven.completed_at),
        (None, None)
    );
    // A transient report from another delivery never revives a failure; only `begin` does.
    record_one(
        store,
        Transition::Fail {
            reason: "again".into(),
            progress: Progress::default(),
        },
        at(60),
    )
    .await;
    let retried = record_one(
        store,
        Transition::Retry {
            last_error: "late".into(),
            progress: Progress::default(),
        },
        at(70),
    )
    .await;
    assert!(
        matches!(&retried, Change::Kept(r) if r.status == RefundStatus::Failed),
        "{retried:?}"
    );
}

async fn a_succeeded_refund_never_moves_again(store: &impl RefundStore) {
    store.accept(request(1, T0)).await.unwrap();
    let done = record_one(
        store,
        Transition::Succeed {
            progress: Progress::default(),
        },
        at(1),
    )
    .await
    .record()
    .clone();
    assert_eq!(done.status, RefundStatus::Succeeded);
    for event in [
        Transition::Begin,
        Transition::Retry {
            last_error: "503".into(),
            progress: Progress {
                interactions: calls(1, 1, at(2)),
                ..Progress::default()
            },
        },
        Transition::Fail {
            reason: "retries exhausted".into(),
            progress: Progress::default(),
        },
        Transition::Succeed {
            progress: Progress::default(),
        },
    ] {
        let change = record_one(store, event.clone(), at(10)).await;
        assert_eq!(change, Change::Kept(done.clone()), "{event:?}");
    }
    assert_eq!(
        store.accept(request(1, at(20))).await.unwrap(),
        Accepted::Existing(done.clone())
    );
    assert_eq!(store.get(ticket(1)).await.unwrap(), Some(done));
}

async fn the_worker_creates_a_record_the_api_could_not_write(store: &impl RefundStore) {
    let begun = record_one(store, Transition::Begin, at(7)).await;
    let Change::Written(begun) = begun else {
        panic!("begin did not create: {begun:?}");
    };
    assert_eq!(begun.status, RefundStatus::Processing);
    assert_eq!((begun.accepted_at, begun.updated_at), (T0, at(7)));
    assert_eq!(begun.attempts, 1);
    assert_eq!(begun.correlation_id, "corr-1");

    // Neither the API's write nor the begin: the outcome still leaves a record.
    let failed = store
        .record(
            &request(2, T0),
            Transition::Fail {
                reason: "void answered HTTP 404".into(),
                progress: Progress::default(),
            },
            at(8),
        )
        .await
        .unwrap();
    assert_eq!(failed.record().status, RefundStatus::Failed);
    assert_eq!(failed.record().attempts, 1);
    assert_eq!(
        store.get(ticket(2)).await.unwrap().as_ref(),
        Some(failed.record())
    );
}

async fn the_trail_keeps_the_newest_twenty_calls(store: &impl RefundStore) {
    store.accept(request(1, T0)).await.unwrap();
    for round in 0..5u64 {
        record_one(
            store,
            Transition::Retry {
                last_error: format!("round {round}"),
                progress: Progress {
                    interactions: calls(round * 7, 7, at(round)),
                    ..Progress::default()
                },
            },
            at(round),
        )
        .await;
    }
    let record = store.get(ticket(1)).await.unwrap().unwrap();
    assert_eq!(record.interactions.len(), MAX_INTERACTIONS);
    let durations: Vec<u64> = record.interactions.iter().map(|c| c.duration_ms).collect();
    assert_eq!(durations, (15..35).collect::<Vec<u64>>());
    assert_eq!(record.last_error.as_deref(), Some("round 4"));
}

/// Twin-only: moto's conditional writes are not atomic under concurrent requests, so
/// racing tasks there would test moto. The adapter's version condition is tested
/// deterministically in `status::dynamo`'s unit tests.
#[tokio::test]
async fn concurrent_attempts_are_all_counted_by_the_twin() {
    concurrent_attempts_are_all_counted(&InMemoryRefundStore::new()).await;
}

async fn concurrent_attempts_are_all_counted(store: &impl RefundStore) {
    store.accept(request(1, T0)).await.unwrap();
    // Four deliveries of one ticket begin at once: each write either lands or re-decides
    // on the record another one wrote, so none is lost.
    let results = futures::future::join_all((0..4).map(|n| async move {
        store
            .record(&request(1, T0), Transition::Begin, at(n))
            .await
    }))
    .await;
    for result in results {
        result.unwrap();
    }
    assert_eq!(store.get(ticket(1)).await.unwrap().unwrap().attempts, 4);
}

/// 42 refunds over every status, three to a timestamp (ties are broken by ticket id),
/// walked with several page sizes, filtered and not.
async fn listings_page_newest_first_without_gaps_or_repeats(store: &impl RefundStore) {
    let mut all = Vec::new();
    for n in 0..42u128 {
        let request = request(n, at(u64::try_from(n / 3).unwrap() * 60));
        store.accept(request.clone()).await.unwrap();
        let event = match n % 4 {
            0 => None,
            1 => Some(Transition::Begin),
            2 => Some(Transition::Succeed {
                progress: Progress::default(),
            }),
            _ => Some(Transition::Fail {
                reason: "rejected".into(),
                progress: Progress::default(),
            }),
        };
        let record = match event {
            None => store.get(request.ticket_id).await.unwrap().unwrap(),
            Some(event) => store
                .record(&request, event, at(10_000))
                .await
                .unwrap()
                .record()
                .clone(),
        };
        all.push(record);
    }
    all.sort_by_key(|record| std::cmp::Reverse(ListKey::new(record.accepted_at, record.ticket_id)));

    let codec = codec(1);
    for status in std::iter::once(None).chain(RefundStatus::ALL.map(Some)) {
        let expected: Vec<&RefundRecord> = all
            .iter()
            .filter(|record| status.is_none_or(|status| record.status == status))
            .collect();
        for limit in [1, 4, 7, 100] {
            let limit = PageLimit::new(limit).unwrap();
            let mut seen = Vec::new();
            let mut page_sizes = Vec::new();
            let mut cursor = None;
            loop {
                let page = store
                    .list(ListQuery {
                        status,
                        limit,
                        cursor,
                    })
                    .await
                    .unwrap();
                page_sizes.push(page.items.len());
                seen.extend(page.items);
                // The cursor goes out to a client and comes back as text.
                cursor = match page.next_cursor {
                    Some(next) => Some(codec.decode(&codec.encode(&next), status).unwrap()),
                    None => break,
                };
                assert!(page_sizes.len() <= 50, "{status:?} {limit}: does not end");
            }
            let seen: Vec<&RefundRecord> = seen.iter().collect();
            assert_eq!(seen, expected, "{status:?} limit {limit}");
            let (last, full) = page_sizes.split_last().unwrap();
            assert!(
                full.iter().all(|&size| size == limit.get()),
                "{status:?} {limit}: {page_sizes:?}"
            );
            assert!(
                *last >= 1 && *last <= limit.get(),
                "{status:?} {limit}: {page_sizes:?}"
            );
        }
    }
}

async fn cursors_refuse_tampering(store: &impl RefundStore) {
    for n in 0..6 {
        let request = request(n, at(u64::try_from(n).unwrap()));
        store.accept(request.clone()).await.unwrap();
        store
            .record(
                &request,
                Transition::Fail {
                    reason: "rejected".into(),
                    progress: Progress::default(),
                },
                at(100),
            )
            .await
            .unwrap();
    }
    let failed = Some(RefundStatus::Failed);
    let query = |cursor| ListQuery {
        status: failed,
        limit: PageLimit::new(2).unwrap(),
        cursor,
    };
    let first = store.list(query(None)).await.unwrap();
    let text = codec(1).encode(first.next_cursor.as_ref().unwrap());

    // Every character changed to another base64url character is refused.
    for i in 0..text.len() {
        let mut altered = text.clone().into_bytes();
        altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        let refused = codec(1).decode(&altered, failed);
        assert!(
            matches!(refused, Err(CursorError::Forged | CursorError::Malformed)),
            "position {i}: {refused:?}"
        );
    }
    assert_eq!(codec(2).decode(&text, failed), Err(CursorError::Forged));
    assert_eq!(codec(1).decode(&text, None), Err(CursorError::WrongFilter));
    assert_eq!(
        codec(1).decode(&text, Some(RefundStatus::Succeeded)),
        Err(CursorError::WrongFilter)
    );
    for garbage in [
        "",
        "null",
        "not-a-cursor",
        &text[..text.len() - 4],
        &format!("{text}="),
    ] {
        assert_eq!(
            codec(1).decode(garbage, failed),
            Err(CursorError::Malformed),
            "{garbage:?}"
        );
    }
    // A cursor handed to the store for another filter is refused there too.
    let wrong = store
        .list(ListQuery {
            status: None,
            limit: PageLimit::default(),
            cursor: first.next_cursor.clone(),
        })
        .await;
    assert!(
        matches!(wrong, Err(StoreError::Port(PortFailure::Rejected(_)))),
        "{wrong:?}"
    );

    // The genuine cursor continues where the first page ended.
    let cursor = codec(1).decode(&text, failed).unwrap();
    let second = store.list(query(Some(cursor))).await.unwrap();
    let tickets = |items: &[RefundRecord]| items.iter().map(|r| r.ticket_id).collect::<Vec<_>>();
    assert_eq!(tickets(&first.items), [ticket(5), ticket(4)]);
    assert_eq!(tickets(&second.items), [ticket(3), ticket(2)]);
}

// Adapter-only: how DynamoDB's failures are classified.

#[tokio::test]
async fn a_missing_table_is_rejected() {
    let moto = Moto::start();
    let store = DynamoRefundStore::new(
        refund_shared::aws::dynamodb_client(moto.loader()).await,
        "no-such-table",
    );
    let error = store.get(ticket(1)).await.unwrap_err();
    assert!(
        matches!(error, StoreError::Port(PortFailure::Rejected(_))),
        "{error:?}"
    );
    assert!(!error.is_transient());
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable_within_the_timeout() {
    let client = refund_shared::aws::dynamodb_client(testkit::loader_for(&format!(
        "http://127.0.0.1:{}",
        free_port()
    )))
    .await;
    let store = DynamoRefundStore::new(client, TABLE);
    let started = std::time::Instant::now();
    let error = store.accept(request(1, T0)).await.unwrap_err();
    assert!(
        matches!(error, StoreError::Port(PortFailure::Unavailable(_))),
        "{error:?}"
    );
    assert!(error.is_transient());
    assert!(
        started.elapsed() < refund_shared::aws::DYNAMODB_OPERATION_TIMEOUT + Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_twin_fails_on_demand() {
    let store =
        InMemoryRefundStore::failing(StoreError::Port(PortFailure::Unavailable("down".into())));
    assert_eq!(
        store.accept(request(1, T0)).await,
        Err(StoreError::Port(PortFailure::Unavailable("down".into())))
    );
    store.set_failure(None);
    assert!(store.accept(request(1, T0)).await.is_ok());
}

/// The worker's write under a concurrent one, made deterministic: a write decided on a
/// stale read is refused by the version condition and hands back the record as it is,
/// and the write decided on that lands. (Racing real tasks would test moto instead:
/// its conditional writes are not atomic under concurrent requests.)
#[tokio::test]
async fn a_stale_write_is_refused_and_redecided_on_the_fresh_record() {
    let moto = Moto::start();
    let client = refund_shared::aws::dynamodb_client(moto.loader()).await;
    refund_shared::store::create_table(&client, TABLE)
        .await
        .unwrap();
    let store = DynamoRefundStore::new(client, TABLE);
    let request = request(1, T0);
    let t0 = T0;
    store.accept(request.clone()).await.unwrap();
    let stale = store.read_versioned(request.ticket_id).await.unwrap();
    assert_eq!(stale.as_ref().map(|(_, version)| *version), Some(1));
    // Another delivery begins between this one's read and write.
    store.record(&request, Transition::Begin, t0).await.unwrap();

    let refused = store
        .try_record(stale, &request, &Transition::Begin, t0)
        .await
        .unwrap();
    let Attempt::Stale(Some((now, version))) = refused else {
        panic!("a stale write landed: {refused:?}");
    };
    assert_eq!((now.attempts, version), (1, 2));
    let landed = store
        .try_record(Some((now, version)), &request, &Transition::Begin, t0)
        .await
        .unwrap();
    assert!(
        matches!(landed, Attempt::Done(Change::Written(ref r)) if r.attempts == 2),
        "{landed:?}"
    );
    assert_eq!(
        store
            .read_versioned(request.ticket_id)
            .await
            .unwrap()
            .unwrap()
            .1,
        3
    );

    // A write that would create a record someone else created meanwhile is refused too.
    let refused = store
        .try_record(None, &request, &Transition::Begin, t0)
        .await
        .unwrap();
    assert!(
        matches!(refused, Attempt::Stale(Some((ref r, 3))) if r.attempts == 2),
        "{refused:?}"
    );

    // A re-queue between a worker's read and its put: the put is refused, and the write
    // decided again on the fresh record keeps the re-queue's command.
    let stale = store.read_versioned(request.ticket_id).await.unwrap();
    let requeue = RefundRequest {
        command_id: uuid::Uuid::from_u128(77),
        ..request.clone()
    };
    let later = t0 + std::time::Duration::from_secs(61);
    store
        .record(&requeue, Transition::Requeue, later)
        .await
        .unwrap();
    let refused = store
        .try_record(stale, &request, &Transition::Begin, later)
        .await
        .unwrap();
    let Attempt::Stale(Some(fresh)) = refused else {
        panic!("a write over a re-queue landed: {refused:?}");
    };
    let landed = store
        .try_record(Some(fresh), &request, &Transition::Begin, later)
        .await
        .unwrap();
    let Attempt::Done(Change::Written(record)) = landed else {
        panic!("not written: {landed:?}");
    };
    assert_eq!(record.command_id, Some(uuid::Uuid::from_u128(77)));
    assert_eq!(record.queued_at, Some(later));
}
