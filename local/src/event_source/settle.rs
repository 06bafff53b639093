//! Settling a batch, the pure half: what the function's answer means under Lambda's rules,
//! with `ReportBatchItemFailures` ([`settle`]) or without ([`settle_whole_batch`]), as the
//! list of messages to delete.

use std::collections::HashSet;

use serde_json::Value;

/// Why an invocation counts as failed: the whole batch stays on the queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    #[error("invoke API unreachable: {0}")]
    Unreachable(String),
    #[error("invocation answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("function error: {0}")]
    Function(String),
    #[error("response is not a batch response: {0}")]
    BadResponse(String),
}

/// Reads the function's answer to a batch of `message_ids` and returns the ids to delete,
/// in batch order, with Lambda's rules for `ReportBatchItemFailures`:
///
/// - a non-2xx answer, a function error (`X-Amz-Function-Error`, or an error object as
///   body), or a body that is not a batch response fails the whole invocation;
/// - `null`, `{}` and an empty or null `batchItemFailures` mean every record succeeded;
/// - an item whose `itemIdentifier` is missing, empty or not in the batch makes Lambda
///   treat the whole batch as failed, so nothing is deleted.
pub fn settle<'a>(
    message_ids: &[&'a str],
    status: u16,
    function_error: Option<&str>,
    body: &[u8],
) -> Result<Vec<&'a str>, InvokeError> {
    failed_invocation(status, function_error, body)?;
    let response: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| InvokeError::BadResponse(e.to_string()))?
    };
    let failures = match &response {
        Value::Null => Vec::new(),
        Value::Object(fields) => match fields.get("batchItemFailures") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(_) => return Err(InvokeError::BadResponse(excerpt(body))),
        },
        _ => return Err(InvokeError::BadResponse(excerpt(body))),
    };
    let mut failed = HashSet::new();
    for item in &failures {
        let id = item
            .get("itemIdentifier")
            .and_then(Value::as_str)
            .filter(|id| message_ids.contains(id))
            .ok_or_else(|| {
                InvokeError::BadResponse(format!("invalid batch item failure {item}"))
            })?;
        failed.insert(id);
    }
    Ok(message_ids
        .iter()
        .copied()
        .filter(|id| !failed.contains(id))
        .collect())
}

/// The same answer read as Lambda reads it for a mapping without `ReportBatchItemFailures`:
/// an invocation that did not fail deletes its whole batch, whatever `batchItemFailures`
/// its body lists; a failed one deletes nothing.
pub fn settle_whole_batch<'a>(
    message_ids: &[&'a str],
    status: u16,
    function_error: Option<&str>,
    body: &[u8],
) -> Result<Vec<&'a str>, InvokeError> {
    failed_invocation(status, function_error, body)?;
    Ok(message_ids.to_vec())
}

/// Why the invocation failed as a whole, if it did: a non-2xx answer, the
/// `X-Amz-Function-Error` header, or an error object (`errorType`, `errorMessage`) as body.
fn failed_invocation(
    status: u16,
    function_error: Option<&str>,
    body: &[u8],
) -> Result<(), InvokeError> {
    if !(200..300).contains(&status) {
        return Err(InvokeError::Status {
            status,
            body: excerpt(body),
        });
    }
    if let Some(kind) = function_error {
        return Err(InvokeError::Function(format!("{kind}: {}", excerpt(body))));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields))
            if fields.contains_key("errorType") || fields.contains_key("errorMessage") =>
        {
            Err(InvokeError::Function(excerpt(body)))
        }
        _ => Ok(()),
    }
}

/// The first 500 characters of a body, for an error message.
fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(500).collect()
}
