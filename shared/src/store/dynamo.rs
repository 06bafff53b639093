//! The DynamoDB adapter of [`RefundStore`], on the table of [`super::table`].
//!
//! `accept` is one conditional `UpdateItem` (the API's 202 path, in `accept.rs`), and so
//! are the quiet period's `requeue` and `unqueue` (in `requeue.rs`); the worker's writes are a strongly consistent read and a version-conditioned whole-item
//! put (`docs/DESIGN.md` says why); `list` is one round of parallel queries, one per
//! shard, merged by `merge`.

use aws_sdk_dynamodb::{
    error::{ProvideErrorMetadata, SdkError},
    operation::put_item::PutItemError,
    types::{AttributeValue, ReturnValuesOnConditionCheckFailure},
};
use futures::future::try_join_all;
use time::OffsetDateTime;

use super::{
    Accepted, Change, ListQuery, Page, RefundStore, StoreError, check_cursor,
    item::{Item, Retention, from_item, to_item},
    merge::{ShardPage, merge},
    record::{RefundRecord, RefundStatus},
    table::{BY_STATUS_INDEX, BY_TIME_INDEX, SHARDS, all_partition, attr, status_partition},
    transition::{RefundRequest, Transition, decide},
};
use crate::{command::TicketId, port::PortFailure};

/// A worker write tries this many times when the record changes between its read and
/// its write, then gives up with [`StoreError::Conflict`].
pub const MAX_WRITE_ATTEMPTS: u32 = 5;

/// A record and the version it was read at: what an optimistic write is conditioned on.
pub type Versioned = (RefundRecord, u64);

/// The refund table, reached through a shared client.
#[derive(Debug, Clone)]
pub struct DynamoRefundStore {
    pub(super) client: aws_sdk_dynamodb::Client,
    pub(super) table: String,
    retention: Retention,
}

impl DynamoRefundStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            retention: Retention::default(),
        }
    }

    /// Completed records carry `expires_at`, `days` after they ended, for the table's TTL
    /// (`RECORD_RETENTION_DAYS`); 0 keeps them forever, as does a store without this.
    pub fn with_retention_days(mut self, days: u32) -> Self {
        self.retention = Retention { days };
        self
    }

    /// The record and its version, read strongly consistently.
    pub async fn read_versioned(
        &self,
        ticket_id: TicketId,
    ) -> Result<Option<Versioned>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::TICKET_ID, AttributeValue::S(ticket_id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_failure)?;
        output.item().map(from_item).transpose()
    }

    /// One optimistic write: decides on `current` (the record and version last read) and
    /// puts the result if the stored version is still `current`'s. `Err(now)` when it is
    /// not ([`Attempt::Stale`]). Public so that a test can interleave two writers
    /// deterministically.
    pub async fn try_record(
        &self,
        current: Option<Versioned>,
        request: &RefundRequest,
        transition: &Transition,
        at: OffsetDateTime,
    ) -> Result<Attempt, StoreError> {
        let Some(next) = decide(
            current.as_ref().map(|(record, _)| record),
            request,
            transition,
            at,
        ) else {
            return current
                .map(|(record, _)| Attempt::Done(Change::Kept(record)))
                .ok_or_else(|| {
                    StoreError::Port(PortFailure::Rejected(
                        "the transition does not create a record".into(),
                    ))
                });
        };
        let version = current.as_ref().map_or(1, |(_, version)| version + 1);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&next, version, self.retention)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let put = match &current {
            None => put
                .condition_expression("attribute_not_exists(#ticket_id)")
                .expression_attribute_names("#ticket_id", attr::TICKET_ID),
            Some((_, version)) => put
                .condition_expression("#version = :version")
                .expression_attribute_names("#version", attr::VERSION)
                .expression_attribute_values(":version", AttributeValue::N(version.to_string())),
        };
        match put.send().await {
            Ok(_) => Ok(Attempt::Done(Change::Written(next))),
            Err(error) => match put_condition_item(&error) {
                Some(item) => Ok(Attempt::Stale(item.map(from_item).transpose()?)),
                None => Err(sdk_failure(error)),
            },
        }
    }

    async fn query_shard(
        &self,
        status: Option<RefundStatus>,
        shard: u8,
        query: &ListQuery,
    ) -> Result<ShardPage, StoreError> {
        let (index, partition_key, partition) = match status {
            Some(status) => (
                BY_STATUS_INDEX,
                attr::STATUS_SHARD,
                status_partition(status, shard),
            ),
            None => (BY_TIME_INDEX, attr::ALL_SHARD, all_partition(shard)),
        };
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .expression_attribute_names("#pk", partition_key)
            .expression_attribute_values(":pk", AttributeValue::S(partition))
            .scan_index_forward(false)
            // limit + 1: at most 101, and it tells "no more" from "exactly limit left".
            .limit(i32::try_from(query.limit.get() + 1).unwrap_or(i32::MAX));
        request = match &query.cursor {
            Some(cursor) => request
                .key_condition_expression("#pk = :pk AND #sk < :after")
                .expression_attribute_names("#sk", attr::LIST_KEY)
                .expression_attribute_values(
                    ":after",
                    AttributeValue::S(cursor.after().as_str().to_owned()),
                ),
            None => request.key_condition_expression("#pk = :pk"),
        };
        let output = request.send().await.map_err(sdk_failure)?;
        let items = output
            .items()
            .iter()
            .map(|item| from_item(item).map(|(record, _)| record))
            .collect::<Result<_, _>>()?;
        Ok(ShardPage {
            items,
            truncated: output
                .last_evaluated_key()
                .is_some_and(|key| !key.is_empty()),
        })
    }
}

impl RefundStore for DynamoRefundStore {
    async fn accept(&self, request: RefundRequest) -> Result<Accepted, StoreError> {
        self.accept_in_one_write(request).await
    }

    async fn record(
        &self,
        request: &RefundRequest,
        transition: Transition,
        at: OffsetDateTime,
    ) -> Result<Change, StoreError> {
        if matches!(transition, Transition::Requeue | Transition::Unqueue { .. }) {
            return self.queue_in_one_write(request, &transition, at).await;
        }
        let mut current = self.read_versioned(request.ticket_id).await?;
        for _ in 0..MAX_WRITE_ATTEMPTS {
            match self.try_record(current, request, &transition, at).await? {
                Attempt::Done(change) => return Ok(change),
                // Someone wrote in between: decide again on what is there now.
                Attempt::Stale(now) => current = now,
            }
        }
        Err(StoreError::Conflict(format!(
            "ticket {} changed under {MAX_WRITE_ATTEMPTS} writes in a row",
            request.ticket_id
        )))
    }

    async fn get(&self, ticket_id: TicketId) -> Result<Option<RefundRecord>, StoreError> {
        Ok(self
            .read_versioned(ticket_id)
            .await?
            .map(|(record, _)| record))
    }

    async fn list(&self, query: ListQuery) -> Result<Page, StoreError> {
        check_cursor(&query)?;
        let pages =
            try_join_all((0..SHARDS).map(|shard| self.query_shard(query.status, shard, &query)))
                .await?;
        Ok(merge(pages, query.status, query.limit))
    }
}

/// How one optimistic worker write ended.
#[derive(Debug)]
pub enum Attempt {
    Done(Change),
    /// The record changed since it was read; this is how it is now.
    Stale(Option<Versioned>),
}

/// `Some(item)` when `error` is a failed version condition (`item`: the record as it is).
fn put_condition_item<R>(error: &SdkError<PutItemError, R>) -> Option<Option<&Item>> {
    match error.as_service_error()? {
        PutItemError::ConditionalCheckFailedException(failed) => Some(failed.item()),
        _ => None,
    }
}

/// An SDK failure as the store's error, by the one classification of [`crate::port`].
pub(super) fn sdk_failure<E, R>(error: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Port(PortFailure::of(&error))
}
