//! The API's accept as one conditional `UpdateItem`: the write on the 202 path, so it
//! reads nothing first. Its update and condition are derived from the record a first
//! accept creates and from the transition table, so they cannot drift from the twin.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::{
    Accepted, StoreError,
    dynamo::DynamoRefundStore,
    item::{Item, OPTIONAL, Retention, from_item, to_item},
    record::RefundRecord,
    table::attr,
    transition::{RefundRequest, Transition, allowed, decide},
    update::{UpdateExpression, Updated, status_alternatives},
};
use crate::port::PortFailure;

impl DynamoRefundStore {
    /// `RefundStore::accept` as one conditional `UpdateItem`: no read first, so the 202
    /// path pays one round trip.
    pub(super) async fn accept_in_one_write(
        &self,
        request: RefundRequest,
    ) -> Result<Accepted, StoreError> {
        let at = request.accepted_at;
        let created = decide(None, &request, &Transition::Accept, at).ok_or_else(|| {
            StoreError::Port(PortFailure::Rejected(
                "a new record cannot be accepted".into(),
            ))
        })?;
        let updated = self
            .update_conditionally(
                request.ticket_id,
                accept_expression(&created),
                ReturnValue::AllOld,
            )
            .await?;
        match updated {
            Updated::Written(old) => match old {
                None => Ok(Accepted::Created(created)),
                // What the update expression wrote, computed by the shared rules from
                // what was there; the tests hold the two to be the same.
                Some(old) => {
                    let (old, _) = from_item(&old)?;
                    decide(Some(&old), &request, &Transition::Accept, at)
                        .map(Accepted::Reaccepted)
                        .ok_or_else(|| {
                            StoreError::Corrupt(format!(
                                "accepted a record in status {} that the rules keep",
                                old.status
                            ))
                        })
                }
            },
            Updated::Refused(Some(item)) => Ok(Accepted::Existing(from_item(&item)?.0)),
            Updated::Refused(None) => Err(StoreError::Conflict(
                "the accept condition failed without returning the record".into(),
            )),
        }
    }
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
fn accept_expression(created: &RefundRecord) -> UpdateExpression {
    let item: Item = to_item(created, 1, Retention::default());
    let mut names = HashMap::new();
    let mut values = HashMap::new();
    let sets = accept_sets(&item, &mut names, &mut values);
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
    let condition = accept_condition(&mut values);
    UpdateExpression {
        update,
        condition,
        names,
        values,
    }
}

/// Attributes an accept keeps when they exist (history and facts, see `transition`; the
/// owner, `requested_by`, is fixed at the first accept).
const KEPT_ON_ACCEPT: [&str; 5] = [
    attr::REQUESTED_BY,
    attr::ATTEMPTS,
    attr::INTERACTIONS,
    attr::RECEIPT_VOIDED_AT,
    attr::PAYMENT_REFUNDED_AT,
];

/// `SET` clauses for every attribute of `item` but the key, as the doc of
/// [`accept_expression`] says.
fn accept_sets(
    item: &Item,
    names: &mut HashMap<String, String>,
    values: &mut HashMap<String, AttributeValue>,
) -> Vec<String> {
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
    sets
}

/// The condition, derived from [`allowed`]: no record, or one in a status the rules let
/// `accept` move; the status values it compares with go into `values`.
fn accept_condition(values: &mut HashMap<String, AttributeValue>) -> String {
    let mut alternatives = Vec::new();
    if allowed(None, &Transition::Accept) {
        alternatives.push(format!("attribute_not_exists(#{})", attr::TICKET_ID));
    }
    alternatives.extend(status_alternatives(&Transition::Accept, values));
    alternatives.join(" OR ")
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::subject::Subject;

    fn request(requested_by: Option<&str>) -> RefundRequest {
        RefundRequest {
            ticket_id: "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f".parse().unwrap(),
            idempotency_key: crate::idempotency::IdempotencyKey::for_ticket(
                "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f".parse().unwrap(),
            ),
            correlation_id: crate::correlation::CorrelationId::parse("c").unwrap(),
            requested_by: requested_by.and_then(Subject::bounded),
            accepted_at: datetime!(2026-11-23 06:00 UTC),
            command_id: uuid::Uuid::from_u128(1),
        }
    }

    /// The condition follows the transition table: only a missing or `failed` record.
    #[test]
    fn the_accept_condition_is_derived_from_the_rules() {
        let created = decide(
            None,
            &request(None),
            &Transition::Accept,
            datetime!(2026-11-23 06:00 UTC),
        )
        .unwrap();
        let expression = accept_expression(&created);
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
                .ends_with("REMOVE #last_error, #failure_reason, #completed_at, #expires_at"),
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

    /// The owner is fixed at the first accept: a later accept sets it only on a record
    /// that has none, and never removes it.
    #[test]
    fn a_known_requester_is_set_once_and_never_removed() {
        let created = decide(
            None,
            &request(Some("user-7")),
            &Transition::Accept,
            datetime!(2026-11-23 06:00 UTC),
        )
        .unwrap();
        let expression = accept_expression(&created);
        assert!(
            expression
                .update
                .contains("#requested_by = if_not_exists(#requested_by, :requested_by)")
        );
        assert!(!expression.update.contains("REMOVE #requested_by"));
    }
}
