//! A record as a DynamoDB item, and back.
//!
//! One attribute per field (readable in the console, and settable one by one by the API's
//! single `UpdateItem`), plus the version and the index keys, which are derived from the
//! record here and nowhere else. An item that does not read back as a record is
//! [`StoreError::Corrupt`], never a default.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use crate::{correlation::CorrelationId, stamp, subject::Subject};

use super::{
    StoreError,
    record::{Interaction, MAX_INTERACTIONS, RefundRecord},
    table::{ListKey, all_shard, attr, status_shard},
};

pub(crate) type Item = HashMap<String, AttributeValue>;

/// The optional record fields: absent from the item when `None`.
pub(crate) const OPTIONAL: [&str; 9] = [
    attr::REQUESTED_BY,
    attr::LAST_ERROR,
    attr::FAILURE_REASON,
    attr::COMPLETED_AT,
    attr::QUEUED_AT,
    attr::COMMAND_ID,
    attr::RECEIPT_VOIDED_AT,
    attr::PAYMENT_REFUNDED_AT,
    attr::EXPIRES_AT,
];

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// How long a completed record is kept (`RECORD_RETENTION_DAYS`): its item carries
/// `expires_at`, which the table's TTL deletes it by. Zero days keep it forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Retention {
    pub days: u32,
}

impl Retention {
    /// When `record` may be deleted: `completed_at` plus the retention, for a record that
    /// has ended; never for one still open (a re-accepted failure drops it again).
    pub(crate) fn expires_at(self, record: &RefundRecord) -> Option<i64> {
        let completed_at = record.completed_at.filter(|_| record.status.is_final())?;
        (self.days > 0).then(|| completed_at.unix_timestamp() + i64::from(self.days) * 86_400)
    }
}

/// The item of `record` at `version`.
pub(crate) fn to_item(record: &RefundRecord, version: u64, retention: Retention) -> Item {
    let mut item = Item::new();
    let mut put = |name: &str, value: AttributeValue| {
        item.insert(name.to_owned(), value);
    };
    put(attr::TICKET_ID, s(record.ticket_id.to_string()));
    put(attr::STATUS, s(record.status.as_str()));
    put(attr::IDEMPOTENCY_KEY, s(record.idempotency_key.to_string()));
    put(attr::CORRELATION_ID, s(record.correlation_id.as_str()));
    put(attr::ATTEMPTS, n(record.attempts));
    put(attr::ACCEPTED_AT, s(stamp::format(record.accepted_at)));
    put(attr::UPDATED_AT, s(stamp::format(record.updated_at)));
    let interactions = record.interactions.iter().map(interaction_item).collect();
    put(attr::INTERACTIONS, AttributeValue::L(interactions));
    put(attr::VERSION, n(version));
    put(
        attr::STATUS_SHARD,
        s(status_shard(record.status, record.ticket_id)),
    );
    put(attr::ALL_SHARD, s(all_shard(record.ticket_id)));
    put(
        attr::LIST_KEY,
        s(ListKey::new(record.accepted_at, record.ticket_id).as_str()),
    );
    if let Some(requested_by) = &record.requested_by {
        put(attr::REQUESTED_BY, s(requested_by.as_str()));
    }
    let texts = [
        (attr::LAST_ERROR, &record.last_error),
        (attr::FAILURE_REASON, &record.failure_reason),
    ];
    for (name, value) in texts {
        if let Some(value) = value {
            put(name, s(value));
        }
    }
    if let Some(command_id) = record.command_id {
        put(attr::COMMAND_ID, s(command_id.to_string()));
    }
    let times = [
        (attr::COMPLETED_AT, record.completed_at),
        (attr::QUEUED_AT, record.queued_at),
        (attr::RECEIPT_VOIDED_AT, record.receipt_voided_at),
        (attr::PAYMENT_REFUNDED_AT, record.payment_refunded_at),
    ];
    for (name, value) in times {
        if let Some(value) = value {
            put(name, s(stamp::format(value)));
        }
    }
    if let Some(expires_at) = retention.expires_at(record) {
        put(attr::EXPIRES_AT, n(expires_at));
    }
    item
}

fn interaction_item(call: &Interaction) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("call".to_owned(), s(call.call.as_str())),
        ("status".to_owned(), s(call.status.to_string())),
        ("duration_ms".to_owned(), n(call.duration_ms)),
        ("at".to_owned(), s(stamp::format(call.at))),
    ]))
}

/// The record and version an item holds.
pub(crate) fn from_item(item: &Item) -> Result<(RefundRecord, u64), StoreError> {
    let ticket_id = required_text(item, attr::TICKET_ID)?
        .parse()
        .map_err(|_| corrupt(attr::TICKET_ID))?;
    let status = required_text(item, attr::STATUS)?
        .parse()
        .map_err(|_| corrupt(attr::STATUS))?;
    let interactions = match item.get(attr::INTERACTIONS) {
        None => Vec::new(),
        Some(AttributeValue::L(calls)) => {
            // Only the newest are shown, even if a foreign writer left more.
            let skip = calls.len().saturating_sub(MAX_INTERACTIONS);
            calls[skip..]
                .iter()
                .map(interaction_from)
                .collect::<Result<_, _>>()?
        }
        Some(_) => return Err(corrupt(attr::INTERACTIONS)),
    };
    let record = RefundRecord {
        ticket_id,
        status,
        idempotency_key: required_text(item, attr::IDEMPOTENCY_KEY)?
            .parse()
            .map_err(|_| corrupt(attr::IDEMPOTENCY_KEY))?,
        correlation_id: CorrelationId::parse(required_text(item, attr::CORRELATION_ID)?)
            .map_err(|_| corrupt(attr::CORRELATION_ID))?,
        requested_by: optional_text(item, attr::REQUESTED_BY)?
            .as_deref()
            .and_then(Subject::bounded),
        attempts: number(item, attr::ATTEMPTS)?,
        last_error: optional_text(item, attr::LAST_ERROR)?,
        failure_reason: optional_text(item, attr::FAILURE_REASON)?,
        accepted_at: required_time(item, attr::ACCEPTED_AT)?,
        updated_at: required_time(item, attr::UPDATED_AT)?,
        completed_at: optional_time(item, attr::COMPLETED_AT)?,
        queued_at: optional_time(item, attr::QUEUED_AT)?,
        command_id: optional_text(item, attr::COMMAND_ID)?
            .map(|id| id.parse())
            .transpose()
            .map_err(|_| corrupt(attr::COMMAND_ID))?,
        receipt_voided_at: optional_time(item, attr::RECEIPT_VOIDED_AT)?,
        payment_refunded_at: optional_time(item, attr::PAYMENT_REFUNDED_AT)?,
        interactions,
    };
    Ok((record, number(item, attr::VERSION)?))
}

fn interaction_from(value: &AttributeValue) -> Result<Interaction, StoreError> {
    let AttributeValue::M(call) = value else {
        return Err(corrupt(attr::INTERACTIONS));
    };
    let field = |name: &str| match call.get(name) {
        Some(AttributeValue::S(text)) => Ok(text.as_str()),
        _ => Err(corrupt(attr::INTERACTIONS)),
    };
    Ok(Interaction {
        call: field("call")?
            .parse()
            .map_err(|_| corrupt(attr::INTERACTIONS))?,
        status: field("status")?
            .parse()
            .map_err(|_| corrupt(attr::INTERACTIONS))?,
        duration_ms: number(call, "duration_ms")?,
        at: stamp::parse(field("at")?).ok_or_else(|| corrupt(attr::INTERACTIONS))?,
    })
}

fn corrupt(name: &str) -> StoreError {
    StoreError::Corrupt(format!("attribute {name} is missing or unreadable"))
}

fn required_text<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(text)) => Ok(text),
        _ => Err(corrupt(name)),
    }
}

fn optional_text(item: &Item, name: &str) -> Result<Option<String>, StoreError> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(text)) => Ok(Some(text.clone())),
        Some(_) => Err(corrupt(name)),
    }
}

fn required_time(item: &Item, name: &str) -> Result<OffsetDateTime, StoreError> {
    stamp::parse(required_text(item, name)?).ok_or_else(|| corrupt(name))
}

fn optional_time(item: &Item, name: &str) -> Result<Option<OffsetDateTime>, StoreError> {
    optional_text(item, name)?
        .map(|text| stamp::parse(&text).ok_or_else(|| corrupt(name)))
        .transpose()
}

fn number<T: std::str::FromStr>(
    item: &HashMap<String, AttributeValue>,
    name: &str,
) -> Result<T, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(number)) => number.parse().map_err(|_| corrupt(name)),
        _ => Err(corrupt(name)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use time::macros::datetime;

    use super::*;
    use crate::{
        store::record::{Call, RefundStatus},
        verdict::UpstreamError,
    };

    fn record() -> RefundRecord {
        RefundRecord {
            ticket_id: "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f".parse().unwrap(),
            status: RefundStatus::Failed,
            idempotency_key: crate::idempotency::IdempotencyKey::for_ticket(
                "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f".parse().unwrap(),
            ),
            correlation_id: crate::correlation::CorrelationId::parse("c").unwrap(),
            requested_by: Subject::parse("user-7").ok(),
            attempts: 3,
            last_error: None,
            failure_reason: Some("void answered HTTP 409".into()),
            accepted_at: datetime!(2026-11-23 06:00 UTC),
            updated_at: datetime!(2026-11-23 06:05 UTC),
            completed_at: Some(datetime!(2026-11-23 06:05 UTC)),
            queued_at: Some(datetime!(2026-11-23 06:00 UTC)),
            command_id: Some(uuid::Uuid::from_u128(7)),
            receipt_voided_at: None,
            payment_refunded_at: Some(datetime!(2026-11-23 06:04:59.5 UTC)),
            interactions: vec![
                Interaction::new(
                    Call::VoidReceipt,
                    &Err(UpstreamError::Timeout),
                    Duration::from_millis(5000),
                    datetime!(2026-11-23 06:04:55 UTC),
                ),
                Interaction::new(
                    Call::RefundPayment,
                    &Ok(204),
                    Duration::from_millis(12),
                    datetime!(2026-11-23 06:04:59 UTC),
                ),
            ],
        }
    }

    #[test]
    fn a_record_round_trips_with_its_derived_keys() {
        let item = to_item(&record(), 7, Retention::default());
        assert_eq!(from_item(&item).unwrap(), (record(), 7));
        assert_eq!(
            item[attr::LIST_KEY],
            s("2026-11-23T06:00:00.000000Z#0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f")
        );
        let AttributeValue::S(partition) = &item[attr::STATUS_SHARD] else {
            panic!("status_shard is not a string");
        };
        assert!(partition.starts_with("failed#"), "{partition}");
        assert!(!item.contains_key(attr::LAST_ERROR));
        assert!(!item.contains_key(attr::RECEIPT_VOIDED_AT));
    }

    #[test]
    fn an_unreadable_item_is_corrupt_not_defaulted() {
        for (name, value) in [
            (attr::STATUS, s("refunded")),
            (attr::ATTEMPTS, s("3")),
            (attr::ACCEPTED_AT, s("yesterday")),
            (attr::INTERACTIONS, s("[]")),
            (attr::FAILURE_REASON, n(1)),
        ] {
            let mut item = to_item(&record(), 1, Retention::default());
            item.insert(name.to_owned(), value);
            assert!(
                matches!(from_item(&item), Err(StoreError::Corrupt(_))),
                "{name}"
            );
        }
        let mut item = to_item(&record(), 1, Retention::default());
        item.remove(attr::VERSION);
        assert!(matches!(from_item(&item), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn a_completed_record_expires_after_the_retention_an_open_one_never() {
        let failed = record();
        let completed = failed.completed_at.unwrap().unix_timestamp();
        let item = to_item(&failed, 1, Retention { days: 2 });
        assert_eq!(
            item[attr::EXPIRES_AT],
            AttributeValue::N((completed + 2 * 86_400).to_string())
        );
        assert_eq!(from_item(&item).unwrap().0, failed);
        assert!(!to_item(&failed, 1, Retention { days: 0 }).contains_key(attr::EXPIRES_AT));
        let open = RefundRecord {
            status: RefundStatus::Processing,
            completed_at: None,
            ..record()
        };
        assert!(!to_item(&open, 1, Retention { days: 2 }).contains_key(attr::EXPIRES_AT));
    }
}
