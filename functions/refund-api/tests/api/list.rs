//! `GET /ticket-refunds`: newest first, filtered by refund status, a page at a time with
//! a signed cursor; every malformed, repeated or foreign parameter refused with its code.

use std::collections::HashSet;

use refund_api::{CursorKeys, RefundRecords};
use refund_shared::{
    queue::InMemoryQueue,
    store::{InMemoryRefundStore, RefundStatus},
};

use crate::common::*;

#[tokio::test]
async fn the_listing_fixture_answers_a_page() {
    let records = enabled(populated());
    let answer = answer_with(
        &InMemoryQueue::new(),
        Some(&records),
        fixture_request("api-list-refunds.json"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.headers["correlation-id"], "support-4e1b7e");
    assert_eq!(answer.body.as_object().unwrap().len(), 2);
    assert_eq!(
        ids(&answer),
        expected_order(&records.store, Some(RefundStatus::Accepted))
    );
    assert!(answer.body["next_cursor"].is_null());
}

#[tokio::test]
async fn a_listing_is_newest_first_and_filtered_by_status() {
    let records = enabled(populated());
    for filter in RefundStatus::ALL {
        let answer = list(&records, &format!("status={filter}&limit=100")).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let expected = expected_order(&records.store, Some(filter));
        assert!(!expected.is_empty());
        assert_eq!(ids(&answer), expected);
        for item in answer.body["items"].as_array().unwrap() {
            assert_eq!(item["status"], filter.as_str());
        }
        assert!(answer.body["next_cursor"].is_null());
    }
    let answer = list(&records, "limit=100").await;
    assert_eq!(ids(&answer), expected_order(&records.store, None));
}

#[tokio::test]
async fn an_empty_store_lists_no_items_and_no_cursor() {
    let records = enabled(InMemoryRefundStore::new());
    let answer = list(&records, "").await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body,
        serde_json::json!({"items": [], "next_cursor": null})
    );
}

/// Following `next_cursor` until it is `null` yields every record once, in order.
#[tokio::test]
async fn pages_follow_next_cursor_until_null_without_duplicates_or_gaps() {
    let records = enabled(populated());
    for filter in [
        None,
        Some(RefundStatus::Failed),
        Some(RefundStatus::Accepted),
    ] {
        for limit in [1, 2, 3, 7, 24, 25, 100] {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            for page in 0.. {
                assert!(page <= 25, "the listing does not end");
                let mut query = format!("limit={limit}");
                if let Some(filter) = filter {
                    query.push_str(&format!("&status={filter}"));
                }
                if let Some(cursor) = &cursor {
                    query.push_str(&format!("&cursor={cursor}"));
                }
                let answer = list(&records, &query).await;
                assert_eq!(answer.status, 200, "{query}: {}", answer.body);
                let items = ids(&answer);
                assert!(items.len() <= limit);
                seen.extend(items);
                match answer.body["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
            let unique: HashSet<&String> = seen.iter().collect();
            assert_eq!(unique.len(), seen.len(), "{filter:?} {limit}: duplicates");
            assert_eq!(
                seen,
                expected_order(&records.store, filter),
                "{filter:?} {limit}"
            );
        }
    }
}

#[tokio::test]
async fn the_default_limit_is_20() {
    let records = enabled(populated());
    let answer = list(&records, "").await;
    assert_eq!(ids(&answer).len(), 20);
    assert!(answer.body["next_cursor"].is_string());
}

#[tokio::test]
async fn bad_limits_are_refused() {
    let records = enabled(populated());
    for bad in [
        "0",
        "101",
        "abc",
        "-1",
        "1.5",
        "+5",
        "%205",
        "1000",
        "99999999999",
    ] {
        let answer = list(&records, &format!("limit={bad}")).await;
        assert_error(&answer, 400, "invalid_limit");
        assert!(
            answer.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("1 to 100")
        );
    }
    for good in ["1", "100", "007"] {
        assert_eq!(list(&records, &format!("limit={good}")).await.status, 200);
    }
}

#[tokio::test]
async fn bad_statuses_are_refused() {
    let records = enabled(populated());
    for bad in [
        "Accepted",
        "done",
        "pending",
        "failed,succeeded",
        "%20failed",
    ] {
        let answer = list(&records, &format!("status={bad}")).await;
        assert_error(&answer, 400, "invalid_status");
        assert!(
            answer.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("accepted, processing, succeeded, failed")
        );
    }
}

#[tokio::test]
async fn altered_or_foreign_cursors_are_refused() {
    let records = enabled(populated());
    let first = list(&records, "limit=2").await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    assert_eq!(
        list(&records, &format!("limit=2&cursor={cursor}"))
            .await
            .status,
        200
    );

    let mut altered = cursor.clone().into_bytes();
    altered[12] = if altered[12] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let other_key = RefundRecords::new(populated(), CursorKeys::fixed(key(43)));
    let foreign = list(&other_key, "limit=2").await.body["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    for bad in [
        altered.as_str(),
        &cursor[..cursor.len() - 1],
        &format!("{cursor}A"),
        "forged",
        "%00%FF",
        foreign.as_str(),
    ] {
        let answer = list(&records, &format!("limit=2&cursor={bad}")).await;
        assert_error(&answer, 400, "invalid_cursor");
    }
}

#[tokio::test]
async fn a_cursor_from_another_status_filter_is_refused() {
    let records = enabled(populated());
    let of_failed = list(&records, "status=failed&limit=1").await.body["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let of_all = list(&records, "limit=1").await.body["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    for query in [
        format!("status=succeeded&cursor={of_failed}"),
        format!("cursor={of_failed}"),
        format!("status=failed&cursor={of_all}"),
    ] {
        let answer = list(&records, &query).await;
        assert_error(&answer, 400, "invalid_cursor");
    }
    assert_eq!(
        list(&records, &format!("status=failed&cursor={of_failed}"))
            .await
            .status,
        200
    );
}

/// An empty value is a bad value, as openapi.yaml's schemas say; only absence means "any".
#[tokio::test]
async fn empty_parameters_are_refused() {
    let records = enabled(populated());
    for (query, code) in [
        ("status=", "invalid_status"),
        ("limit=", "invalid_limit"),
        ("cursor=", "invalid_cursor"),
    ] {
        assert_error(&list(&records, query).await, 400, code);
    }
    let plain = list(&records, "").await;
    assert_eq!(ids(&plain).len(), 20);
}

/// A parameter given twice is refused with its own code, even with the same value twice.
#[tokio::test]
async fn repeated_parameters_are_refused() {
    let records = enabled(populated());
    let cursor = list(&records, "limit=1").await.body["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    for (query, code) in [
        (
            "status=failed&status=succeeded".to_owned(),
            "invalid_status",
        ),
        ("status=failed&status=failed".to_owned(), "invalid_status"),
        ("status=&status=failed".to_owned(), "invalid_status"),
        ("limit=5&limit=5".to_owned(), "invalid_limit"),
        (format!("cursor={cursor}&cursor={cursor}"), "invalid_cursor"),
    ] {
        let answer = list(&records, &query).await;
        assert_error(&answer, 400, code);
    }
}

#[tokio::test]
async fn unknown_parameters_are_ignored() {
    let records = enabled(populated());
    let answer = list(&records, "limit=3&sort=asc&_=1795412349").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(ids(&answer).len(), 3);
}

#[tokio::test]
async fn the_listing_is_found_behind_a_stage_prefix() {
    let records = enabled(populated());
    for (path, stage) in [
        ("/prod/ticket-refunds", "prod"),
        ("/ticket-refunds", "prod"),
        ("/ticket-refunds/", "$default"),
    ] {
        let answer = answer_with(
            &InMemoryQueue::new(),
            Some(&records),
            list_event_at(path, stage, "limit=1"),
        )
        .await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        assert_eq!(ids(&answer).len(), 1);
    }
}
