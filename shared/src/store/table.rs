//! The table's definition: attribute names, key schema, indexes and how their keys are
//! derived. The adapter, the tests, the template and the local stack all take it from here.
//!
//! | what | partition key | sort key | projection |
//! | --- | --- | --- | --- |
//! | table | `ticket_id` (S) | - | - |
//! | index `by-status` | `status_shard` (S), `"<status>#<shard>"` | `list_key` (S) | ALL |
//! | index `by-time` | `all_shard` (S), `"all#<shard>"` | `list_key` (S) | ALL |
//!
//! `list_key` is `"<accepted_at>#<ticket_id>"`: the fixed-width UTC time of
//! [`crate::stamp`] sorts like the instant, and the ticket id makes every key
//! unique, so one key is a total position in a listing. `shard` is
//! [`shard_of`]`(ticket_id)` in `0..SHARDS`. See the module documentation of
//! [`super`] for why.

use std::cmp::Ordering;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{StoreError, record::RefundStatus};
use crate::{command::TicketId, port::PortFailure, stamp};

/// The stored attributes. Optional record fields are absent, not NULL, when unknown.
pub mod attr {
    pub const TICKET_ID: &str = "ticket_id";
    pub const STATUS: &str = "status";
    pub const IDEMPOTENCY_KEY: &str = "idempotency_key";
    pub const CORRELATION_ID: &str = "correlation_id";
    pub const REQUESTED_BY: &str = "requested_by";
    pub const ATTEMPTS: &str = "attempts";
    pub const LAST_ERROR: &str = "last_error";
    pub const FAILURE_REASON: &str = "failure_reason";
    pub const ACCEPTED_AT: &str = "accepted_at";
    pub const UPDATED_AT: &str = "updated_at";
    pub const COMPLETED_AT: &str = "completed_at";
    pub const QUEUED_AT: &str = "queued_at";
    pub const COMMAND_ID: &str = "command_id";
    pub const RECEIPT_VOIDED_AT: &str = "receipt_voided_at";
    pub const PAYMENT_REFUNDED_AT: &str = "payment_refunded_at";
    /// A list of maps with `call`, `status`, `duration_ms`, `at`.
    pub const INTERACTIONS: &str = "interactions";
    /// Bumped by every write; the worker's writes are conditioned on it.
    pub const VERSION: &str = "version";
    pub const STATUS_SHARD: &str = "status_shard";
    pub const ALL_SHARD: &str = "all_shard";
    pub const LIST_KEY: &str = "list_key";
    /// When DynamoDB's TTL may delete a completed record (epoch seconds); only on items
    /// of `succeeded` and `failed` records, and only with a retention (see `Retention`).
    pub const EXPIRES_AT: &str = "expires_at";
}

/// Write shards per index partition value. Fixed: it is in every stored key, so changing
/// it means re-writing every item. 8 partitions per status (and for the all-status
/// index) take 8 × 1000 WCU/s before a status throttles, and a page costs 8 parallel
/// queries.
pub const SHARDS: u8 = 8;

/// The listing index by status, newest first.
pub const BY_STATUS_INDEX: &str = "by-status";
/// The listing index of every status, newest first.
pub const BY_TIME_INDEX: &str = "by-time";

/// One global secondary index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexDefinition {
    pub name: &'static str,
    pub partition_key: &'static str,
    pub sort_key: &'static str,
}

/// Both indexes; every key attribute is a string, projections are ALL.
pub const INDEXES: [IndexDefinition; 2] = [
    IndexDefinition {
        name: BY_STATUS_INDEX,
        partition_key: attr::STATUS_SHARD,
        sort_key: attr::LIST_KEY,
    },
    IndexDefinition {
        name: BY_TIME_INDEX,
        partition_key: attr::ALL_SHARD,
        sort_key: attr::LIST_KEY,
    },
];

/// The shard of a ticket: the first byte of SHA-256 of its lowercase id, modulo
/// [`SHARDS`]. Hashed, because ticket ids may be any UUID version and a time-ordered one
/// (v1, v7) would otherwise crowd one shard; SHA-256 because it never changes between
/// builds, unlike `std`'s hasher.
pub fn shard_of(ticket_id: TicketId) -> u8 {
    let digest = Sha256::digest(ticket_id.to_string().as_bytes());
    digest[0] % SHARDS
}

/// The `by-status` partition of a ticket in `status`.
pub fn status_shard(status: RefundStatus, ticket_id: TicketId) -> String {
    status_partition(status, shard_of(ticket_id))
}

pub fn status_partition(status: RefundStatus, shard: u8) -> String {
    format!("{status}#{shard}")
}

/// The `by-time` partition of a ticket.
pub fn all_shard(ticket_id: TicketId) -> String {
    all_partition(shard_of(ticket_id))
}

pub fn all_partition(shard: u8) -> String {
    format!("all#{shard}")
}

/// A position in a listing: `"<accepted_at>#<ticket_id>"`, compared as text, which is
/// newest-last chronological order with ties broken by ticket id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListKey {
    accepted_at: OffsetDateTime,
    ticket_id: TicketId,
    text: String,
}

impl ListKey {
    pub fn new(accepted_at: OffsetDateTime, ticket_id: TicketId) -> Self {
        let accepted_at = stamp::normalise(accepted_at);
        Self {
            accepted_at,
            ticket_id,
            text: format!("{}#{ticket_id}", stamp::format(accepted_at)),
        }
    }

    pub fn accepted_at(&self) -> OffsetDateTime {
        self.accepted_at
    }

    pub fn ticket_id(&self) -> TicketId {
        self.ticket_id
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The key of a stored `list_key`, if it is one this code writes.
    pub fn parse(text: &str) -> Option<Self> {
        let (at, ticket) = text.split_once('#')?;
        let key = Self::new(stamp::parse(at)?, ticket.parse().ok()?);
        (key.text == text).then_some(key)
    }
}

impl Ord for ListKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.text.cmp(&other.text)
    }
}

impl PartialOrd for ListKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Creates the table of [`super::table`], on demand, with both indexes (for tests and
/// the local stack; in AWS the template does, with recovery and encryption settings).
/// Returns when DynamoDB has taken the request; moto makes the table active at once.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), StoreError> {
    let rejected = |e: aws_sdk_dynamodb::error::BuildError| {
        StoreError::Port(PortFailure::Rejected(e.to_string()))
    };
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
    request.send().await.map_err(super::dynamo::sdk_failure)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn ticket(n: u128) -> TicketId {
        uuid::Uuid::from_u128(n).to_string().parse().unwrap()
    }

    #[test]
    fn shards_are_stable_and_spread() {
        let mut counts = [0u32; SHARDS as usize];
        for n in 0..800 {
            let shard = shard_of(ticket(n));
            assert_eq!(shard, shard_of(ticket(n)));
            counts[usize::from(shard)] += 1;
        }
        // Sequential ids (the worst case for a prefix-based shard) still spread out.
        assert!(
            counts.iter().all(|&c| (50..=150).contains(&c)),
            "{counts:?}"
        );
        // Golden: a change here would strand every stored item in the wrong partition.
        assert_eq!(
            status_shard(
                RefundStatus::Failed,
                "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f".parse().unwrap()
            ),
            format!(
                "failed#{}",
                Sha256::digest(b"0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f")[0] % 8
            )
        );
    }

    #[test]
    fn list_keys_order_by_time_then_ticket_and_round_trip() {
        let a = ListKey::new(datetime!(2026-01-01 10:00 +02:00), ticket(9));
        let b = ListKey::new(datetime!(2026-01-01 09:00 UTC), ticket(1));
        let c = ListKey::new(datetime!(2026-01-01 09:00 UTC), ticket(2));
        assert!(a < b && b < c);
        assert_eq!(
            b.as_str(),
            "2026-01-01T09:00:00.000000Z#00000000-0000-0000-0000-000000000001"
        );
        assert_eq!(ListKey::parse(c.as_str()), Some(c));
        for bad in [
            "",
            "#",
            "2026-01-01T09:00:00Z#00000000-0000-0000-0000-000000000001",
            "x#y",
        ] {
            assert_eq!(ListKey::parse(bad), None, "{bad:?}");
        }
    }
}
