//! One page of a listing from the pages of its shards.
//!
//! Each shard is queried newest first for `limit + 1` items after the cursor's key. The
//! page is the `limit` newest of all of them, in key order, but never past the horizon of
//! a shard whose query stopped early (DynamoDB's 1 MB page cap): an item older than that
//! shard's last one could be hiding behind it. So every page ends at a key `k` such that
//! every item newer than `k` in every shard has been returned, and `k` alone is the next
//! page's position in all shards: no duplicates, no gaps, whatever the shard count.
//! The twin runs the same merge over its own shard pages.

use super::{Cursor, Page, PageLimit, record::RefundRecord, record::RefundStatus, table::ListKey};

/// What one shard's query returned, newest first.
#[derive(Debug, Default)]
pub(crate) struct ShardPage {
    pub items: Vec<RefundRecord>,
    /// The query stopped before the shard's end (it has a `LastEvaluatedKey`).
    pub truncated: bool,
}

fn key(record: &RefundRecord) -> ListKey {
    ListKey::new(record.accepted_at, record.ticket_id)
}

pub(crate) fn merge(
    shards: Vec<ShardPage>,
    filter: Option<RefundStatus>,
    limit: PageLimit,
) -> Page {
    // A truncated shard that returned nothing has no horizon to respect; without a filter
    // expression DynamoDB never answers that way.
    let horizon = shards
        .iter()
        .filter(|shard| shard.truncated)
        .filter_map(|shard| shard.items.last().map(key))
        .max();
    let truncated = shards.iter().any(|shard| shard.truncated);
    let mut all: Vec<(ListKey, RefundRecord)> = shards
        .into_iter()
        .flat_map(|shard| shard.items)
        .map(|record| (key(&record), record))
        .collect();
    all.sort_by(|a, b| b.0.cmp(&a.0));
    let fetched = all.len();
    let items: Vec<(ListKey, RefundRecord)> = all
        .into_iter()
        .take_while(|(key, _)| horizon.as_ref().is_none_or(|horizon| key >= horizon))
        .take(limit.get())
        .collect();
    let more = truncated || items.len() < fetched;
    let next_cursor = items
        .last()
        .filter(|_| more)
        .map(|(key, _)| Cursor::new(filter, key.clone()));
    Page {
        items: items.into_iter().map(|(_, record)| record).collect(),
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn record(minute: u8) -> RefundRecord {
        let at = datetime!(2026-01-01 00:00 UTC) + time::Duration::minutes(i64::from(minute));
        RefundRecord {
            ticket_id: uuid::Uuid::from_u128(u128::from(minute)).into(),
            status: RefundStatus::Accepted,
            idempotency_key: crate::idempotency::IdempotencyKey::for_ticket(
                uuid::Uuid::from_u128(u128::from(minute)).into(),
            ),
            correlation_id: crate::correlation::CorrelationId::generate(),
            requested_by: None,
            attempts: 0,
            last_error: None,
            failure_reason: None,
            accepted_at: at,
            updated_at: at,
            completed_at: None,
            queued_at: None,
            command_id: None,
            receipt_voided_at: None,
            payment_refunded_at: None,
            interactions: Vec::new(),
        }
    }

    fn minutes(page: &Page) -> Vec<u8> {
        page.items
            .iter()
            .map(|r| ((r.accepted_at - datetime!(2026-01-01 00:00 UTC)).whole_minutes()) as u8)
            .collect()
    }

    fn shard(minutes: &[u8], truncated: bool) -> ShardPage {
        ShardPage {
            items: minutes.iter().map(|&m| record(m)).collect(),
            truncated,
        }
    }

    #[test]
    fn the_newest_items_of_all_shards_come_first() {
        let page = merge(
            vec![shard(&[9, 4, 1], false), shard(&[8, 7, 2], false)],
            None,
            PageLimit::new(4).unwrap(),
        );
        assert_eq!(minutes(&page), [9, 8, 7, 4]);
        let cursor = page.next_cursor.unwrap();
        assert_eq!(cursor.after().accepted_at(), record(4).accepted_at);
    }

    #[test]
    fn a_page_stops_at_the_horizon_of_a_shard_that_stopped_early() {
        let page = merge(
            vec![shard(&[9, 5], true), shard(&[8, 7, 6, 2], false)],
            Some(RefundStatus::Accepted),
            PageLimit::new(10).unwrap(),
        );
        assert_eq!(minutes(&page), [9, 8, 7, 6, 5]);
        let cursor = page.next_cursor.unwrap();
        assert_eq!(cursor.filter(), Some(RefundStatus::Accepted));
        assert_eq!(cursor.after().accepted_at(), record(5).accepted_at);
    }

    #[test]
    fn the_last_page_has_no_cursor() {
        let page = merge(
            vec![shard(&[3], false), shard(&[], false)],
            None,
            PageLimit::new(1).unwrap(),
        );
        assert_eq!(minutes(&page), [3]);
        assert_eq!(page.next_cursor, None);
        let empty = merge(vec![ShardPage::default()], None, PageLimit::default());
        assert!(empty.items.is_empty() && empty.next_cursor.is_none());
    }
}
