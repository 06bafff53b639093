//! What the adapter's single-write updates share (`accept`, `requeue`, `unqueue`): the
//! expression, the conditions on status derived from the transition table, and the one
//! conditional `UpdateItem` that sends them.

use std::collections::HashMap;

use aws_sdk_dynamodb::{
    error::SdkError,
    operation::update_item::UpdateItemError,
    types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure},
};

use super::{
    StoreError,
    dynamo::{DynamoRefundStore, sdk_failure},
    item::Item,
    record::RefundStatus,
    table::attr,
    transition::{Transition, allowed},
};
use crate::command::TicketId;

/// One `UpdateItem`'s update, condition and placeholders.
pub(super) struct UpdateExpression {
    pub update: String,
    pub condition: String,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

/// How a conditional update ended: written (with the attributes `returned` asked for;
/// `None` for an item that did not exist before, with `ALL_OLD`), or refused by its
/// condition (with the item as it is; `None` when there is none).
pub(super) enum Updated {
    Written(Option<Item>),
    Refused(Option<Item>),
}

impl DynamoRefundStore {
    /// Sends `expression` for `ticket_id`; the item as it was comes back on a refusal.
    pub(super) async fn update_conditionally(
        &self,
        ticket_id: TicketId,
        expression: UpdateExpression,
        returned: ReturnValue,
    ) -> Result<Updated, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::TICKET_ID, AttributeValue::S(ticket_id.to_string()))
            .update_expression(expression.update)
            .condition_expression(expression.condition)
            .set_expression_attribute_names(Some(expression.names))
            .set_expression_attribute_values(Some(expression.values))
            .return_values(returned)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Updated::Written(
                output.attributes().filter(|item| !item.is_empty()).cloned(),
            )),
            Err(error) => match condition_item(&error) {
                Some(item) => Ok(Updated::Refused(item.cloned())),
                None => Err(sdk_failure(error)),
            },
        }
    }
}

/// `Some(item)` when `error` is a failed condition (`item`: the record as it is).
fn condition_item<R>(error: &SdkError<UpdateItemError, R>) -> Option<Option<&Item>> {
    match error.as_service_error()? {
        UpdateItemError::ConditionalCheckFailedException(failed) => Some(failed.item()),
        _ => None,
    }
}

/// `#status = :from_<status>` for every status [`allowed`] lets `transition` move; the values
/// they compare with go into `values`.
pub(super) fn status_alternatives(
    transition: &Transition,
    values: &mut HashMap<String, AttributeValue>,
) -> Vec<String> {
    RefundStatus::ALL
        .into_iter()
        .filter(|status| allowed(Some(*status), transition))
        .map(|status| {
            let value = format!(":from_{status}");
            values.insert(value.clone(), AttributeValue::S(status.as_str().to_owned()));
            format!("#{} = {value}", attr::STATUS)
        })
        .collect()
}
