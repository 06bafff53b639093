//! The quiet period's two writes (`requeue`, `unqueue`) as one conditional `UpdateItem`
//! each: the API makes them on the PUT path, so they read nothing first (contract
//! section 1a). They touch only `queued_at`, `command_id` and `version`; the statuses in
//! their condition come from the transition table ([`allowed`]), and what they leave alone
//! from [`decide`]'s rules, which the shared store tests hold the two adapters to.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    Change, StoreError,
    dynamo::DynamoRefundStore,
    item::from_item,
    table::attr,
    transition::{QUIET_PERIOD, RefundRequest, Transition},
    update::{UpdateExpression, Updated, status_alternatives},
};
use crate::{port::PortFailure, stamp};

impl DynamoRefundStore {
    /// `RefundStore::record` of a `requeue` or `unqueue`: one `UpdateItem`; a record the
    /// transition does not apply to is returned as it is ([`Change::Kept`]).
    pub(super) async fn queue_in_one_write(
        &self,
        request: &RefundRequest,
        transition: &Transition,
        at: OffsetDateTime,
    ) -> Result<Change, StoreError> {
        let expression = queue_expression(request, transition, at)?;
        let updated = self
            .update_conditionally(request.ticket_id, expression, ReturnValue::AllNew)
            .await?;
        match updated {
            Updated::Written(new) => match new {
                Some(item) => Ok(Change::Written(from_item(&item)?.0)),
                None => Err(StoreError::Corrupt("the update returned no record".into())),
            },
            Updated::Refused(Some(item)) => Ok(Change::Kept(from_item(&item)?.0)),
            Updated::Refused(None) => Err(StoreError::Port(PortFailure::Rejected(
                "the transition does not create a record".into(),
            ))),
        }
    }
}

/// One `requeue` or `unqueue` as an update: `SET`/`REMOVE` of the two attributes and the
/// version, on a record in a status the table lets `transition` move and whose bookkeeping
/// admits it.
fn queue_expression(
    request: &RefundRequest,
    transition: &Transition,
    at: OffsetDateTime,
) -> Result<UpdateExpression, StoreError> {
    let mut values = HashMap::from([(":one".to_owned(), AttributeValue::N("1".into()))]);
    let (mut sets, removes, admits) = match transition {
        Transition::Requeue => {
            let at_and_id = (Some(at), Some(request.command_id));
            let (sets, removes) = queued(at_and_id, &mut values);
            // Fixed-width UTC stamps sort like the instants they write.
            values.insert(":quiet_from".into(), text(stamp::format(at - QUIET_PERIOD)));
            // Past the quiet period, or a `queued_at` after now (see `recently_queued`).
            let quiet = "(attribute_not_exists(#queued_at) OR #queued_at < :quiet_from \
                         OR #queued_at > :queued_at)";
            (sets, removes, quiet)
        }
        Transition::Unqueue {
            refused,
            queued_at,
            command_id,
        } => {
            values.insert(":refused".into(), text(refused.to_string()));
            let (sets, removes) = queued((*queued_at, *command_id), &mut values);
            (sets, removes, "#command_id = :refused")
        }
        other => {
            return Err(StoreError::Port(PortFailure::Rejected(format!(
                "{} is not a write of the queue's bookkeeping",
                other.name()
            ))));
        }
    };
    sets.push("#version = #version + :one");
    let mut update = format!("SET {}", sets.join(", "));
    if !removes.is_empty() {
        update.push_str(&format!(" REMOVE {}", removes.join(", ")));
    }
    let statuses = status_alternatives(transition, &mut values).join(" OR ");
    let names = [
        attr::STATUS,
        attr::QUEUED_AT,
        attr::COMMAND_ID,
        attr::VERSION,
    ]
    .map(|name| (format!("#{name}"), name.to_owned()))
    .into();
    Ok(UpdateExpression {
        update,
        condition: format!("({statuses}) AND {admits}"),
        names,
        values,
    })
}

/// The `SET` and `REMOVE` clauses that make the record name `queued_at` and `command_id`
/// (removed when `None`).
fn queued(
    (queued_at, command_id): (Option<OffsetDateTime>, Option<Uuid>),
    values: &mut HashMap<String, AttributeValue>,
) -> (Vec<&'static str>, Vec<&'static str>) {
    let (mut sets, mut removes) = (Vec::new(), Vec::new());
    match queued_at {
        Some(at) => {
            values.insert(":queued_at".into(), text(stamp::format(at)));
            sets.push("#queued_at = :queued_at");
        }
        None => removes.push("#queued_at"),
    }
    match command_id {
        Some(id) => {
            values.insert(":command_id".into(), text(id.to_string()));
            sets.push("#command_id = :command_id");
        }
        None => removes.push("#command_id"),
    }
    (sets, removes)
}

fn text(value: String) -> AttributeValue {
    AttributeValue::S(value)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;

    fn request() -> RefundRequest {
        let ticket = "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f".parse().unwrap();
        RefundRequest {
            ticket_id: ticket,
            idempotency_key: crate::idempotency::IdempotencyKey::for_ticket(ticket),
            correlation_id: crate::correlation::CorrelationId::parse("c").unwrap(),
            requested_by: None,
            accepted_at: datetime!(2026-11-23 06:00 UTC),
            command_id: Uuid::from_u128(2),
        }
    }

    /// The statuses come from the transition table, the quiet period from its constant,
    /// and every placeholder used is defined and every one defined is used (DynamoDB
    /// refuses both mistakes).
    #[test]
    fn the_conditions_follow_the_rules() {
        let at = datetime!(2026-11-23 06:05 UTC);
        let requeue = queue_expression(&request(), &Transition::Requeue, at).unwrap();
        assert_eq!(
            requeue.condition,
            "(#status = :from_accepted OR #status = :from_processing) AND \
             (attribute_not_exists(#queued_at) OR #queued_at < :quiet_from \
             OR #queued_at > :queued_at)"
        );
        assert_eq!(
            requeue.values[":quiet_from"],
            AttributeValue::S("2026-11-23T06:04:00.000000Z".into())
        );
        let unqueue = queue_expression(
            &request(),
            &Transition::Unqueue {
                refused: Uuid::from_u128(2),
                queued_at: None,
                command_id: Some(Uuid::from_u128(1)),
            },
            at,
        )
        .unwrap();
        assert_eq!(
            unqueue.condition,
            "(#status = :from_accepted OR #status = :from_processing OR #status = :from_failed) \
             AND #command_id = :refused"
        );
        assert_eq!(
            unqueue.update,
            "SET #command_id = :command_id, #version = #version + :one REMOVE #queued_at"
        );
        for expression in [requeue, unqueue] {
            let text = format!("{} {}", expression.update, expression.condition);
            for name in expression.names.keys().chain(expression.values.keys()) {
                assert!(text.contains(name.as_str()), "{name} unused in {text}");
            }
        }
        assert!(queue_expression(&request(), &Transition::Begin, at).is_err());
    }
}
