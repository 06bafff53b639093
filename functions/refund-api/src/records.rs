//! The refund records feature (contract section 8): the store the PUT records into and
//! the GETs read, and the key that signs the listing's cursors. It exists only when
//! `REFUND_TABLE_NAME` is set; without it the PUT works as before the feature and the
//! GETs answer 404 `status_not_enabled`.

use refund_shared::{disabled::Disabled, store::RefundStore};

use crate::cursor_key::CursorKeys;

/// The refund store and the listing's cursor keys. `None` in place of a
/// `&RefundRecords` means `REFUND_TABLE_NAME` is unset.
#[derive(Debug)]
pub struct RefundRecords<S> {
    pub store: S,
    pub cursor_keys: CursorKeys,
}

impl<S: RefundStore> RefundRecords<S> {
    pub fn new(store: S, cursor_keys: CursorKeys) -> Self {
        Self { store, cursor_keys }
    }
}

/// What to pass as `records` to [`crate::handle`] without the refund table: a store
/// type with no values, so nothing is ever recorded or read.
pub const NO_RECORDS: Option<&'static RefundRecords<Disabled>> = None;
