//! The DynamoDB adapter of [`RefundStore`], on the table of [`super::table`].
//!
//! `accept` is one conditional `UpdateItem` (the API's 202 path); the worker's writes are
//! a strongly consistent read and a version-conditioned whole-item put (see the module
//! documentation of [`super`] for why); `list` is one round of parallel queries, one per
//! shard, merged by `merge`.

use std::{collections::HashMap, time::Duration};

use aws_config::{ConfigLoader, timeout::TimeoutConfig};
use aws_sdk_dynamodb::{
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
    operation::{put_item::PutItemError, update_item::UpdateItemError},
    types::{
        AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
        KeyType, Projection, ProjectionType, ReturnValue, ReturnValuesOnConditionCheckFailure,
        ScalarAttributeType,
    },
};
use futures::future::try_join_all;
use time::OffsetDateTime;

use super::{
    Accepted, Change, ListQuery, Page, RefundStore, StoreError, check_cursor,
    item::{Item, OPTIONAL, from_item, to_item},
    merge::{ShardPage, merge},
    record::{RefundRecord, RefundStatus, bounded},
    table::{
        BY_STATUS_INDEX, BY_TIME_INDEX, INDEXES, SHARDS, all_partition, attr, status_partition,
    },
    transition::{Kind, RefundRequest, Step, WorkerEvent, allowed, decide},
};
use crate::command::TicketId;

/// DynamoDB operations give up after this long in all, retries included: the API still
/// answers 202 when its status write fails, so a sick table may add at most this much to
/// the 202 path.
pub const DYNAMODB_OPERATION_TIMEOUT: Duration = Duration::from_secs(2);

/// A worker write tries this many times when the record changes between its read and
/// its write, then gives up with [`StoreError::Conflict`].
pub const MAX_WRITE_ATTEMPTS: u32 = 5;

/// The longest SDK error text a [`StoreError`] keeps.
pub const MAX_ERROR_DETAIL_BYTES: usize = 512;

/// The timeouts of every DynamoDB client this project builds: single-digit-millisecond
/// operations, so short attempts and [`DYNAMODB_OPERATION_TIMEOUT`] in all.
pub fn dynamodb_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(1))
        .operation_timeout(DYNAMODB_OPERATION_TIMEOUT)
        .build()
}

/// Builds a DynamoDB client once, at start-up, from `loader` (normally
/// [`crate::http::aws_config_loader`], which honours `AWS_ENDPOINT_URL`) with [`dynamodb_timeouts`].
pub async fn dynamodb_client(loader: ConfigLoader) -> aws_sdk_dynamodb::Client {
    let config = loader
        .http_client(crate::http::aws_http_client())
        .timeout_config(dynamodb_timeouts())
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&config)
}

/// Creates the table of [`super::table`], on demand, with both indexes (for tests and
/// the local stack; in AWS the template does, with recovery and encryption settings).
/// Returns when DynamoDB has taken the request; moto makes the table active at once.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), StoreError> {
    let rejected = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Rejected(e.to_string());
    let string_attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(rejected)
    };
    let key = |name: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(rejected)
    };
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(attr::TICKET_ID, KeyType::Hash)?)
        .attribute_definitions(string_attribute(attr::TICKET_ID)?)
        .attribute_definitions(string_attribute(attr::STATUS_SHARD)?)
        .attribute_definitions(string_attribute(attr::ALL_SHARD)?)
        .attribute_definitions(string_attribute(attr::LIST_KEY)?);
    for index in INDEXES {
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .key_schema(key(index.partition_key, KeyType::Hash)?)
                .key_schema(key(index.sort_key, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(rejected)?,
        );
    }
    request.send().await.map_err(classify)?;
    Ok(())
}

/// The refund table, reached through a shared client.
#[derive(Debug, Clone)]
pub struct DynamoRefundStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoRefundStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The record and its version, read strongly consistently.
    async fn read(&self, ticket_id: TicketId) -> Result<Option<(RefundRecord, u64)>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::TICKET_ID, AttributeValue::S(ticket_id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        output.item().map(from_item).transpose()
    }

    /// One optimistic write: decides on `current` (the record and version last read) and
    /// puts the result if the stored version is still `current`'s. `Err(now)` when it is
    /// not ([`Attempt::Stale`]).
    async fn try_record(
        &self,
        current: Option<(RefundRecord, u64)>,
        request: &RefundRequest,
        event: &WorkerEvent,
        at: OffsetDateTime,
    ) -> Result<Attempt, StoreError> {
        let Some(next) = decide(
            current.as_ref().map(|(record, _)| record),
            request,
            Step::Worker(event),
            at,
        ) else {
            return current
                .map(|(record, _)| Attempt::Done(Change::Kept(record)))
                .ok_or_else(|| StoreError::Rejected("the event does not create a record".into()));
        };
        let version = current.as_ref().map_or(1, |(_, version)| version + 1);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&next, version)))
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
                None => Err(classify(error)),
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
        let output = request.send().await.map_err(classify)?;
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
        let at = request.accepted_at;
        let created = decide(None, &request, Step::Accept, at)
            .ok_or_else(|| StoreError::Rejected("a new record cannot be accepted".into()))?;
        let expression = AcceptExpression::new(&created);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(
                attr::TICKET_ID,
                AttributeValue::S(request.ticket_id.to_string()),
            )
            .update_expression(expression.update)
            .condition_expression(expression.condition)
            .set_expression_attribute_names(Some(expression.names))
            .set_expression_attribute_values(Some(expression.values))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => match output.attributes().filter(|old| !old.is_empty()) {
                None => Ok(Accepted::Created(created)),
                // What the update expression wrote, computed by the shared rules from
                // what was there; the tests hold the two to be the same.
                Some(old) => {
                    let (old, _) = from_item(old)?;
                    decide(Some(&old), &request, Step::Accept, at)
                        .map(Accepted::Reaccepted)
                        .ok_or_else(|| {
                            StoreError::Corrupt(format!(
                                "accepted a record in status {} that the rules keep",
                                old.status
                            ))
                        })
                }
            },
            Err(error) => match update_condition_item(&error) {
                Some(Some(item)) => Ok(Accepted::Existing(from_item(item)?.0)),
                Some(None) => Err(StoreError::Conflict(
                    "the accept condition failed without returning the record".into(),
                )),
                None => Err(classify(error)),
            },
        }
    }

    async fn record(
        &self,
        request: &RefundRequest,
        event: WorkerEvent,
        at: OffsetDateTime,
    ) -> Result<Change, StoreError> {
        let mut current = self.read(request.ticket_id).await?;
        for _ in 0..MAX_WRITE_ATTEMPTS {
            match self.try_record(current, request, &event, at).await? {
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
        Ok(self.read(ticket_id).await?.map(|(record, _)| record))
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
enum Attempt {
    Done(Change),
    /// The record changed since it was read; this is how it is now.
    Stale(Option<(RefundRecord, u64)>),
}

/// The accept write as one `UpdateItem`, built from the item of the record a first
/// accept creates:
///
/// - every attribute of that item is set, except that `attempts` and `interactions` keep
///   their value when there is one (`if_not_exists`) and `version` is incremented;
/// - every optional attribute it lacks is removed, except the confirmation times, which
///   are facts that outlive a failure;
/// - the condition is derived from [`allowed`]: no record, or one in a status the rules
///   let `accept` move (`failed`).
struct AcceptExpression {
    update: String,
    condition: String,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

/// Attributes an accept keeps when they exist (history and facts, see `transition`).
const KEPT_ON_ACCEPT: [&str; 4] = [
    attr::ATTEMPTS,
    attr::INTERACTIONS,
    attr::RECEIPT_VOIDED_AT,
    attr::PAYMENT_REFUNDED_AT,
];

impl AcceptExpression {
    fn new(created: &RefundRecord) -> Self {
        let item: Item = to_item(created, 1);
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let mut sets = Vec::new();
        let mut names_sorted: Vec<&String> = item.keys().collect();
        names_sorted.sort();
        for name in names_sorted {
            let (placeholder, value) = (format!("#{name}"), format!(":{name}"));
            names.insert(placeholder.clone(), name.clone());
            match name.as_str() {
                attr::TICKET_ID => continue,
                attr::VERSION => {
                    sets.push(format!(
                        "{placeholder} = if_not_exists({placeholder}, :zero) + :one"
                    ));
                    values.insert(":zero".to_owned(), AttributeValue::N("0".into()));
                    values.insert(":one".to_owned(), AttributeValue::N("1".into()));
                    continue;
                }
                kept if KEPT_ON_ACCEPT.contains(&kept) => {
                    sets.push(format!(
                        "{placeholder} = if_not_exists({placeholder}, {value})"
                    ));
                }
                _ => sets.push(format!("{placeholder} = {value}")),
            }
            values.insert(value, item[name].clone());
        }
        let removes: Vec<String> = OPTIONAL
            .iter()
            .filter(|name| !item.contains_key(**name) && !KEPT_ON_ACCEPT.contains(name))
            .map(|name| {
                let placeholder = format!("#{name}");
                names.insert(placeholder.clone(), (*name).to_owned());
                placeholder
            })
            .collect();
        let mut update = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            update.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }

        let mut alternatives = Vec::new();
        if allowed(None, Kind::Accept) {
            alternatives.push(format!("attribute_not_exists(#{})", attr::TICKET_ID));
        }
        for status in RefundStatus::ALL {
            if allowed(Some(status), Kind::Accept) {
                let value = format!(":from_{status}");
                alternatives.push(format!("#{} = {value}", attr::STATUS));
                values.insert(value, AttributeValue::S(status.as_str().to_owned()));
            }
        }
        Self {
            update,
            condition: alternatives.join(" OR "),
            names,
            values,
        }
    }
}

/// `Some(item)` when `error` is a failed accept condition (`item`: the record as it is).
fn update_condition_item<R>(error: &SdkError<UpdateItemError, R>) -> Option<Option<&Item>> {
    match error.as_service_error()? {
        UpdateItemError::ConditionalCheckFailedException(failed) => Some(failed.item()),
        _ => None,
    }
}

/// `Some(item)` when `error` is a failed version condition (`item`: the record as it is).
fn put_condition_item<R>(error: &SdkError<PutItemError, R>) -> Option<Option<&Item>> {
    match error.as_service_error()? {
        PutItemError::ConditionalCheckFailedException(failed) => Some(failed.item()),
        _ => None,
    }
}

/// Sorts an SDK failure into "try later" and "will not work", the one place that knows
/// which DynamoDB answers are which.
pub fn classify<E, R>(error: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let transient = match &error {
        SdkError::ConstructionFailure(_) => false,
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            [
                "Throttl",
                "ThroughputExceeded",
                "RequestLimitExceeded",
                "InternalServerError",
                "ServiceUnavailable",
                "TransactionConflict",
            ]
            .iter()
            .any(|transient| code.contains(transient))
        }
        _ => true,
    };
    let detail = bounded(
        DisplayErrorContext(&error).to_string(),
        MAX_ERROR_DETAIL_BYTES,
    );
    if transient {
        StoreError::Unavailable(detail)
    } else {
        StoreError::Rejected(detail)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn request(requested_by: Option<&str>) -> RefundRequest {
        RefundRequest {
            ticket_id: "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f".parse().unwrap(),
            idempotency_key: "k".into(),
            correlation_id: "c".into(),
            requested_by: requested_by.map(str::to_owned),
            accepted_at: datetime!(2026-11-23 06:00 UTC),
        }
    }

    /// The condition follows the transition table: only a missing or `failed` record.
    #[test]
    fn the_accept_condition_is_derived_from_the_rules() {
        let created = decide(
            None,
            &request(None),
            Step::Accept,
            datetime!(2026-11-23 06:00 UTC),
        )
        .unwrap();
        let expression = AcceptExpression::new(&created);
        assert_eq!(
            expression.condition,
            "attribute_not_exists(#ticket_id) OR #status = :from_failed"
        );
        assert_eq!(
            expression.values[":from_failed"],
            AttributeValue::S("failed".into())
        );
        assert!(
            expression
                .update
                .contains("#attempts = if_not_exists(#attempts, :attempts)")
        );
        assert!(
            expression
                .update
                .contains("#version = if_not_exists(#version, :zero) + :one")
        );
        assert!(
            expression
                .update
                .ends_with("REMOVE #requested_by, #last_error, #failure_reason, #completed_at"),
            "{}",
            expression.update
        );
        // Every placeholder used is defined, and every one defined is used (DynamoDB
        // refuses both mistakes).
        let text = format!("{} {}", expression.update, expression.condition);
        for name in expression.names.keys().chain(expression.values.keys()) {
            assert!(text.contains(name.as_str()), "{name} unused");
        }
    }

    /// The worker's write under a concurrent one, made deterministic: a write decided on a
    /// stale read is refused by the version condition and hands back the record as it is,
    /// and the write decided on that lands. (Racing real tasks would test moto instead:
    /// its conditional writes are not atomic under concurrent requests.)
    #[tokio::test]
    async fn a_stale_write_is_refused_and_redecided_on_the_fresh_record() {
        let moto = testkit::Moto::start();
        moto.create_refund_table("refunds").await;
        let store = DynamoRefundStore::new(moto.dynamodb().await, "refunds");
        let request = request(Some("user-7"));
        let t0 = datetime!(2026-11-23 06:00 UTC);
        store.accept(request.clone()).await.unwrap();
        let stale = store.read(request.ticket_id).await.unwrap();
        assert_eq!(stale.as_ref().map(|(_, version)| *version), Some(1));
        // Another delivery begins between this one's read and write.
        store.begin_attempt(&request, t0).await.unwrap();

        let refused = store
            .try_record(stale, &request, &WorkerEvent::Begin, t0)
            .await
            .unwrap();
        let Attempt::Stale(Some((now, version))) = refused else {
            panic!("a stale write landed: {refused:?}");
        };
        assert_eq!((now.attempts, version), (1, 2));
        let landed = store
            .try_record(Some((now, version)), &request, &WorkerEvent::Begin, t0)
            .await
            .unwrap();
        assert!(
            matches!(landed, Attempt::Done(Change::Written(ref r)) if r.attempts == 2),
            "{landed:?}"
        );
        assert_eq!(store.read(request.ticket_id).await.unwrap().unwrap().1, 3);

        // A write that would create a record someone else created meanwhile is refused too.
        let refused = store
            .try_record(None, &request, &WorkerEvent::Begin, t0)
            .await
            .unwrap();
        assert!(
            matches!(refused, Attempt::Stale(Some((ref r, 3))) if r.attempts == 2),
            "{refused:?}"
        );
    }

    #[test]
    fn a_known_requester_is_set_not_removed() {
        let created = decide(
            None,
            &request(Some("user-7")),
            Step::Accept,
            datetime!(2026-11-23 06:00 UTC),
        )
        .unwrap();
        let expression = AcceptExpression::new(&created);
        assert!(expression.update.contains("#requested_by = :requested_by"));
        assert!(!expression.update.contains("REMOVE #requested_by"));
    }
}
