//! The in-memory twin of [`super::DynamoRefundStore`].
//!
//! Same transitions ([`super::transition::decide`]), same shards and the same merge
//! ([`super::merge`]), so a handler test sees what the table would give it, including
//! the cursors; or the failure it is told to give.

use std::{collections::HashMap, sync::Mutex};

use time::OffsetDateTime;

use super::{
    Accepted, Change, ListQuery, Page, RefundStore, StoreError, check_cursor,
    merge::{ShardPage, merge},
    record::{RefundRecord, RefundStatus},
    table::{ListKey, SHARDS, shard_of},
    transition::{RefundRequest, Transition, decide},
};
use crate::{command::TicketId, twin::lock};

#[derive(Debug, Default)]
pub struct InMemoryRefundStore {
    records: Mutex<HashMap<String, RefundRecord>>,
    failure: Mutex<Option<StoreError>>,
    hanging: bool,
}

impl InMemoryRefundStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store whose every operation fails with `error`.
    pub fn failing(error: StoreError) -> Self {
        let store = Self::default();
        store.set_failure(Some(error));
        store
    }

    /// A store whose every operation never answers: a sick table, which must not carry a
    /// worker past its deadline.
    pub fn hanging() -> Self {
        Self {
            hanging: true,
            ..Self::default()
        }
    }

    /// From now on every operation fails with `error` (`None`: works again).
    pub fn set_failure(&self, error: Option<StoreError>) {
        *lock(&self.failure) = error;
    }

    /// Every record, in no particular order.
    pub fn records(&self) -> Vec<RefundRecord> {
        lock(&self.records).values().cloned().collect()
    }

    /// Puts `record` as it is, bypassing the transitions (to set up a test).
    pub fn insert(&self, record: RefundRecord) {
        lock(&self.records).insert(record.ticket_id.to_string(), record);
    }

    async fn check(&self) -> Result<(), StoreError> {
        if self.hanging {
            std::future::pending::<()>().await;
        }
        lock(&self.failure).clone().map_or(Ok(()), Err)
    }
}

impl RefundStore for InMemoryRefundStore {
    async fn accept(&self, request: RefundRequest) -> Result<Accepted, StoreError> {
        self.check().await?;
        let mut records = lock(&self.records);
        let key = request.ticket_id.to_string();
        let current = records.get(&key);
        let from = current.map(|record| record.status);
        match decide(current, &request, &Transition::Accept, request.accepted_at) {
            Some(next) => {
                records.insert(key, next.clone());
                Ok(if from.is_none() {
                    Accepted::Created(next)
                } else {
                    Accepted::Reaccepted(next)
                })
            }
            None => current
                .cloned()
                .map(Accepted::Existing)
                .ok_or_else(|| StoreError::Conflict("accept was refused on no record".into())),
        }
    }

    async fn record(
        &self,
        request: &RefundRequest,
        transition: Transition,
        at: OffsetDateTime,
    ) -> Result<Change, StoreError> {
        self.check().await?;
        let mut records = lock(&self.records);
        let key = request.ticket_id.to_string();
        let current = records.get(&key);
        match decide(current, request, &transition, at) {
            Some(next) => {
                records.insert(key, next.clone());
                Ok(Change::Written(next))
            }
            None => current
                .cloned()
                .map(Change::Kept)
                .ok_or_else(|| StoreError::Conflict("transition was refused on no record".into())),
        }
    }

    async fn get(&self, ticket_id: TicketId) -> Result<Option<RefundRecord>, StoreError> {
        self.check().await?;
        Ok(lock(&self.records).get(&ticket_id.to_string()).cloned())
    }

    async fn list(&self, query: ListQuery) -> Result<Page, StoreError> {
        self.check().await?;
        check_cursor(&query)?;
        let records = lock(&self.records);
        let mut shards: Vec<Vec<(ListKey, &RefundRecord)>> = vec![Vec::new(); usize::from(SHARDS)];
        let after = query.cursor.as_ref().map(|cursor| cursor.after());
        for record in records.values() {
            let key = ListKey::new(record.accepted_at, record.ticket_id);
            let wanted = query
                .status
                .is_none_or(|status: RefundStatus| record.status == status)
                && after.is_none_or(|after| &key < after);
            if wanted {
                shards[usize::from(shard_of(record.ticket_id))].push((key, record));
            }
        }
        // Each shard answers as a query with `Limit = limit + 1` does.
        let per_shard = query.limit.get() + 1;
        let pages = shards
            .into_iter()
            .map(|mut shard| {
                shard.sort_by(|a, b| b.0.cmp(&a.0));
                ShardPage {
                    truncated: shard.len() > per_shard,
                    items: shard
                        .into_iter()
                        .take(per_shard)
                        .map(|(_, record)| record.clone())
                        .collect(),
                }
            })
            .collect();
        Ok(merge(pages, query.status, query.limit))
    }
}
