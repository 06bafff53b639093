//! The refund status store (contract section 8): one record per ticket, fetched by id
//! and listed by status newest first.
//!
//! [`RefundStore`](crate::status::RefundStore) is the port the functions see; [`DynamoRefundStore`](crate::status::DynamoRefundStore) is the DynamoDB
//! adapter and [`InMemoryRefundStore`](crate::status::InMemoryRefundStore) the twin the handler tests run against. Both apply
//! the one transition function of [`transition`](crate::status::transition) and the one merge of `merge`, and
//! hand out the same [`Cursor`](crate::status::Cursor)s, which [`CursorCodec`](crate::status::CursorCodec) turns into tamper-proof text.
//!
//! # Key design
//!
//! **Table.** Keyed by `ticket_id` alone. Every write and every `GET /ticket-refund/{id}`
//! touches one item by its key, and ticket ids spread evenly over the table's partitions.
//!
//! **Listing by status.** The obvious index, partition key `status` and sort key a time,
//! has four key values, and every refund passes through `accepted` and `processing`:
//! all the write traffic of the pipeline would land on two index partitions. A partition
//! key value is served by one partition at up to 1000 WCU/s, and DynamoDB's split for
//! heat does not help a sort key that only grows (every new item goes to the end of the
//! range). A throttled index also throttles the table writes that feed it, so a hot
//! status partition would slow the API's own accept write. Hence write sharding: the
//! index `by-status` has the partition key `status_shard = "<status>#<shard>"` with
//! `shard = sha256(ticket_id)[0] mod 8` (a hash, because ticket ids may be time-ordered
//! UUIDs), 32 partition key values, 8 per status. Its sort key `list_key` is
//! `"<accepted_at>#<ticket_id>"`, fixed-width UTC so that text order is time order, and
//! unique. A page queries the 8 partitions of the status in parallel, newest first,
//! `limit + 1` items each after the cursor's key, and merges them. Because every key is
//! unique and the merge emits in global key order (stopping at the horizon of a shard
//! whose query was cut short), the last key of a page is a position in all 8 shards at
//! once: the cursor is that one key, whatever the shard count.
//!
//! **Listing every status.** `status` is optional in `GET /ticket-refunds`. A second
//! index `by-time` with the partition key `all_shard = "all#<shard>"` and the same sort
//! key serves it with the same 8 queries. The alternatives were worse: querying the 32
//! partitions of every status (4 times the queries and reads per page), or one unsharded
//! partition (the hot key this design avoids).
//!
//! **Sort by `accepted_at`, not `updated_at`.** An item keeps its place while a client
//! pages (it moves only when a failed refund is accepted again, to the front, as a new
//! request), so paging does not skip or repeat an item because it made progress. Within
//! `by-status` a status change moves the item to another partition: a listing of one
//! status shows the items that have it when each page is read.
//!
//! **Costs, accepted.** Both indexes project ALL, so a page is one round of 8 parallel
//! queries and no second read, and every write of a record also writes its two index
//! entries (about three times the write units of the table alone; `KEYS_ONLY` plus a
//! `BatchGetItem` would trade that for a second round trip per page). A page reads up to
//! `8 × (limit + 1)` items, as all of a page may come from one shard. Indexes are
//! eventually consistent: a refund accepted a moment ago shows in listings a moment later,
//! while `GET` by id reads strongly consistently.
//!
//! **The trail of 20 calls, and the worker's writes.** The worker's writes read the item
//! (strongly consistent) and put the whole new item conditioned on its `version`; when the
//! condition fails, the item it returns (`ReturnValuesOnConditionCheckFailure = ALL_OLD`)
//! is decided on again, up to [`MAX_WRITE_ATTEMPTS`](crate::status::MAX_WRITE_ATTEMPTS)
//! times. Chosen over "append, then `REMOVE` the head indexes the returned size calls
//! for" because: an update expression cannot drop list items past 20 in the same write,
//! so that costs two writes per event once the trail is full and lets a reader see more than 20 in between; an `UpdateItem`
//! is billed on the whole item anyway, so a whole-item put costs the same write units and
//! the read is one more read unit; the new item is the output of the twin's own
//! transition function, so the two cannot drift; and the worker is not latency-bound (it
//! waits on two HTTP calls of up to 5 s). The API's `accept`, which is on the 202 path, is
//! one `UpdateItem` whose condition is derived from the same transition table.

use std::{fmt, future::Future, str::FromStr};

use time::OffsetDateTime;

use crate::command::TicketId;

pub mod cursor;
pub mod dynamo;
mod item;
mod memory;
mod merge;
pub mod record;
pub mod table;
pub mod transition;

pub use cursor::{Cursor, CursorCodec, CursorError, CursorKey, WeakCursorKey};
pub use dynamo::{DynamoRefundStore, MAX_WRITE_ATTEMPTS, create_table, dynamodb_client};
pub use memory::InMemoryRefundStore;
pub use record::{Call, CallStatus, Interaction, InvalidStatus, RefundRecord, RefundStatus};
pub use transition::{Progress, RefundRequest, WorkerEvent};

/// How a store operation failed, classified once for every caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Timed out, unreachable, throttled or a server error: trying later may work.
    #[error("status store unavailable: {0}")]
    Unavailable(String),
    /// The store refused the request (missing table, no permission, invalid request).
    #[error("status store refused the request: {0}")]
    Rejected(String),
    /// The record kept changing under a conditional write; trying later may work.
    #[error("status record kept changing: {0}")]
    Conflict(String),
    /// A stored item is not a record this code can read.
    #[error("status record is unreadable: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Conflict(_))
    }
}

/// What [`RefundStore::accept`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// No record existed; it is `accepted` now.
    Created(RefundRecord),
    /// A `failed` record is `accepted` again.
    Reaccepted(RefundRecord),
    /// The record as it is (`accepted`, `processing` or `succeeded`); nothing was written.
    Existing(RefundRecord),
}

impl Accepted {
    pub fn record(&self) -> &RefundRecord {
        match self {
            Self::Created(record) | Self::Reaccepted(record) | Self::Existing(record) => record,
        }
    }

    pub fn into_record(self) -> RefundRecord {
        match self {
            Self::Created(record) | Self::Reaccepted(record) | Self::Existing(record) => record,
        }
    }

    /// The ticket is refunded already: answer 200 with the record and queue nothing.
    /// Otherwise the command is queued (again): K makes a repeat harmless, and a record in
    /// `accepted` or `processing` may belong to a message that is lost.
    pub fn already_succeeded(&self) -> bool {
        matches!(self, Self::Existing(record) if record.status == RefundStatus::Succeeded)
    }
}

/// What a worker event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The record moved; this is the record now.
    Written(RefundRecord),
    /// The event does not apply to the record as it is (a `succeeded` one, or a retry of a
    /// `failed` one), which is returned unchanged.
    Kept(RefundRecord),
}

impl Change {
    pub fn record(&self) -> &RefundRecord {
        match self {
            Self::Written(record) | Self::Kept(record) => record,
        }
    }
}

/// The `limit` of a listing: 1..=100, 20 when not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageLimit(u8);

/// A `limit` outside 1..=100 or not a number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limit must be a whole number from 1 to 100")]
pub struct InvalidLimit;

impl PageLimit {
    pub const MAX: u8 = 100;
    pub const DEFAULT: Self = Self(20);

    pub fn new(limit: u32) -> Result<Self, InvalidLimit> {
        u8::try_from(limit)
            .ok()
            .filter(|limit| (1..=Self::MAX).contains(limit))
            .map(Self)
            .ok_or(InvalidLimit)
    }

    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

impl Default for PageLimit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl FromStr for PageLimit {
    type Err = InvalidLimit;

    /// Decimal digits only (no sign, no spaces), as a query parameter carries them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidLimit);
        }
        s.parse().map_err(|_| InvalidLimit).and_then(Self::new)
    }
}

impl fmt::Display for PageLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One page request of `GET /ticket-refunds`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListQuery {
    /// `None`: every status.
    pub status: Option<RefundStatus>,
    pub limit: PageLimit,
    /// Where the previous page ended; its filter must be `status`.
    pub cursor: Option<Cursor>,
}

/// One page, newest first; `next_cursor` is `None` on the last one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<RefundRecord>,
    pub next_cursor: Option<Cursor>,
}

/// Records and reads refund statuses.
///
/// Every method is one logical operation on one ticket (or one page); the stores never
/// move a status backwards (see [`transition`]).
pub trait RefundStore: Send + Sync {
    /// The API's write on the 202 path: creates the record `accepted`, or accepts a
    /// `failed` one again; any other record is returned as it is, unwritten. One round trip
    /// in DynamoDB. `request.accepted_at` is now.
    fn accept(
        &self,
        request: RefundRequest,
    ) -> impl Future<Output = Result<Accepted, StoreError>> + Send;

    /// The worker's write: applies `event` at `at`, creating the record from `request`
    /// (the command) when the API could not.
    fn record(
        &self,
        request: &RefundRequest,
        event: WorkerEvent,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<Change, StoreError>> + Send;

    fn get(
        &self,
        ticket_id: TicketId,
    ) -> impl Future<Output = Result<Option<RefundRecord>, StoreError>> + Send;

    /// One page, newest first (by `accepted_at`, then ticket id).
    fn list(&self, query: ListQuery) -> impl Future<Output = Result<Page, StoreError>> + Send;

    /// A delivery starts: `processing`, one more attempt.
    fn begin_attempt(
        &self,
        request: &RefundRequest,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<Change, StoreError>> + Send {
        self.record(request, WorkerEvent::Begin, at)
    }

    /// The delivery ended transiently.
    fn retry(
        &self,
        request: &RefundRequest,
        last_error: String,
        progress: Progress,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<Change, StoreError>> + Send {
        self.record(
            request,
            WorkerEvent::Retry {
                last_error,
                progress,
            },
            at,
        )
    }

    /// Both calls are done.
    fn succeed(
        &self,
        request: &RefundRequest,
        progress: Progress,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<Change, StoreError>> + Send {
        self.record(request, WorkerEvent::Succeed { progress }, at)
    }

    /// The message went to the dead-letter queue.
    fn fail(
        &self,
        request: &RefundRequest,
        reason: String,
        progress: Progress,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<Change, StoreError>> + Send {
        self.record(request, WorkerEvent::Fail { reason, progress }, at)
    }
}

/// The store of a function without the status feature (`REFUND_TABLE_NAME` unset). It has
/// no values, so an `Option<Disabled>` is always `None`, the functions record nothing, and
/// none of these methods can ever run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disabled {}

impl RefundStore for Disabled {
    async fn accept(&self, _: RefundRequest) -> Result<Accepted, StoreError> {
        match *self {}
    }

    async fn record(
        &self,
        _: &RefundRequest,
        _: WorkerEvent,
        _: OffsetDateTime,
    ) -> Result<Change, StoreError> {
        match *self {}
    }

    async fn get(&self, _: TicketId) -> Result<Option<RefundRecord>, StoreError> {
        match *self {}
    }

    async fn list(&self, _: ListQuery) -> Result<Page, StoreError> {
        match *self {}
    }
}

/// A cursor whose filter is not the query's: the codec refuses those, so only a caller
/// bypassing it gets here.
fn check_cursor(query: &ListQuery) -> Result<(), StoreError> {
    match &query.cursor {
        Some(cursor) if cursor.filter() != query.status => {
            Err(StoreError::Rejected(CursorError::WrongFilter.to_string()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_one_to_a_hundred_in_plain_digits() {
        assert_eq!(PageLimit::default().get(), 20);
        assert_eq!("1".parse::<PageLimit>().map(PageLimit::get), Ok(1));
        assert_eq!("100".parse::<PageLimit>().map(PageLimit::get), Ok(100));
        assert_eq!("007".parse::<PageLimit>().map(PageLimit::get), Ok(7));
        for bad in [
            "",
            "0",
            "101",
            "-1",
            "+5",
            " 5",
            "5 ",
            "1e2",
            "1000",
            "99999999999",
        ] {
            assert_eq!(bad.parse::<PageLimit>(), Err(InvalidLimit), "{bad:?}");
        }
        assert_eq!(PageLimit::new(256), Err(InvalidLimit));
    }
}
