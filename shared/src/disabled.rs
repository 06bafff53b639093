//! [`Disabled`]: the port of a function that is configured without one, for the refund
//! store (`REFUND_TABLE_NAME` unset) and the event bus (`EVENT_BUS_NAME` unset) alike.

use time::OffsetDateTime;

use crate::{
    announce::{Announcement, EventBus, PublishError},
    command::TicketId,
    store::{
        Accepted, Change, ListQuery, Page, RefundRecord, RefundRequest, RefundStore, StoreError,
        Transition,
    },
};

/// A port that is off. It has no values, so an `Option<Disabled>` is always `None`: the
/// function records or publishes nothing, and none of these methods can ever run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disabled {}

impl RefundStore for Disabled {
    async fn accept(&self, _: RefundRequest) -> Result<Accepted, StoreError> {
        match *self {}
    }

    async fn record(
        &self,
        _: &RefundRequest,
        _: Transition,
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

impl EventBus for Disabled {
    async fn publish(&self, _: &[Announcement]) -> Vec<Result<(), PublishError>> {
        match *self {}
    }
}
