//! The refund store (contract section 8): one status record per ticket, fetched by id
//! and listed by status newest first.
//!
//! [`RefundStore`] is the port the functions see; [`DynamoRefundStore`] is the DynamoDB
//! adapter and [`InMemoryRefundStore`] the twin the handler tests run against. Both apply
//! the one decision of [`transition`] to each [`Transition`] and hand out the same
//! [`Cursor`]s, which [`CursorCodec`] turns into tamper-proof text.
//!
//! - [`record`]: the record, its statuses and its trail of calls, as the API answers them;
//! - [`transition`]: the transitions and the one function that decides each move;
//! - [`table`]: the table's keys and its two write-sharded indexes;
//! - [`cursor`]: the listing's signed cursor;
//! - [`dynamo`], `memory`: the adapter and the twin; `accept` and `requeue` (the API's
//!   one-write updates), `item` and `merge` serve the adapter.
//!
//! Why the table has these keys, why the worker puts whole items and why one cursor key
//! serves eight shards: `docs/DESIGN.md`, "Status records".

use std::{fmt, future::Future, str::FromStr};

use time::OffsetDateTime;

use crate::{command::TicketId, port::PortFailure};

mod accept;
pub mod cursor;
pub mod dynamo;
mod item;
mod memory;
mod merge;
pub mod record;
mod requeue;
pub mod table;
pub mod transition;
mod update;

pub use cursor::{Cursor, CursorCodec, CursorError, CursorKey, WeakCursorKey};
pub use dynamo::{Attempt, DynamoRefundStore, MAX_WRITE_ATTEMPTS, Versioned};
pub use memory::InMemoryRefundStore;
pub use record::{
    Call, CallStatus, Confirmed, Interaction, InvalidStatus, RefundRecord, RefundStatus,
};
pub use table::create_table;
pub use transition::{Progress, RefundRequest, Transition};

/// How a store operation failed, classified once for every caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The table could not be reached (try later) or refused the request (missing table,
    /// no permission, invalid request).
    #[error("status store {0}")]
    Port(PortFailure),
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
        match self {
            Self::Port(failure) => failure.is_transient(),
            Self::Conflict(_) => true,
            Self::Corrupt(_) => false,
        }
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

/// What a worker's [`Transition`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The record moved; this is the record now.
    Written(RefundRecord),
    /// The transition does not apply to the record as it is (a `succeeded` one, or a retry of a
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

    /// The worker's write: applies `transition` at `at`, creating the record from `request`
    /// (the command) when the API could not.
    fn record(
        &self,
        request: &RefundRequest,
        transition: Transition,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<Change, StoreError>> + Send;

    fn get(
        &self,
        ticket_id: TicketId,
    ) -> impl Future<Output = Result<Option<RefundRecord>, StoreError>> + Send;

    /// One page, newest first (by `accepted_at`, then ticket id).
    fn list(&self, query: ListQuery) -> impl Future<Output = Result<Page, StoreError>> + Send;
}

/// A cursor whose filter is not the query's: the codec refuses those, so only a caller
/// bypassing it gets here.
fn check_cursor(query: &ListQuery) -> Result<(), StoreError> {
    match &query.cursor {
        Some(cursor) if cursor.filter() != query.status => Err(StoreError::Port(
            PortFailure::Rejected(CursorError::WrongFilter.to_string()),
        )),
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
