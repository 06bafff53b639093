//! The copy of a message the worker gives up on (contract section 4).
//!
//! The copy is what an operator reads to decide on a redrive, so it carries why it is
//! there and where it came from first, and as much of the original context as SQS's
//! limit of 10 message attributes leaves room for.

use std::collections::BTreeMap;

use refund_shared::{
    command::attribute, queue::OutboundMessage, text::bounded, verdict::ErrorCode,
};

use crate::delivery::Delivery;

/// SQS's limit of message attributes per message.
pub const MAX_ATTRIBUTES: usize = 10;
/// The contract's bound on `error_message`, in bytes.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 1024;

/// The attributes the worker adds; originals with these names are replaced.
pub mod own {
    pub const ERROR_CODE: &str = "error_code";
    pub const ERROR_MESSAGE: &str = "error_message";
    pub const SOURCE_MESSAGE_ID: &str = "source_message_id";
    pub const RECEIVE_COUNT: &str = "receive_count";
    pub const ALL: [&str; 4] = [ERROR_CODE, ERROR_MESSAGE, SOURCE_MESSAGE_ID, RECEIVE_COUNT];
}

/// The dead-letter copy of `delivery`: its body unchanged, and the attributes of the
/// contract. `error_message` is never empty and at most 1 KiB, cut on a char boundary.
pub fn dead_letter_copy(
    delivery: &Delivery,
    code: ErrorCode,
    error_message: &str,
) -> OutboundMessage {
    let mut attributes = BTreeMap::from([
        (own::ERROR_CODE.to_owned(), code.as_str().to_owned()),
        (
            own::ERROR_MESSAGE.to_owned(),
            bounded_message(error_message, code),
        ),
        (
            own::SOURCE_MESSAGE_ID.to_owned(),
            delivery
                .message_id
                .clone()
                .unwrap_or_else(|| "unknown".to_owned()),
        ),
        (
            own::RECEIVE_COUNT.to_owned(),
            delivery.receive_count.to_string(),
        ),
    ]);
    let originals = delivery
        .attributes
        .iter()
        // SQS refuses an empty String value, which would fail the whole copy.
        .filter(|(name, value)| !own::ALL.contains(&name.as_str()) && !value.is_empty());
    let (known, others): (Vec<_>, Vec<_>) =
        originals.partition(|(name, _)| attribute::ALL.contains(&name.as_str()));
    let room = MAX_ATTRIBUTES - attributes.len();
    for (name, value) in known.into_iter().chain(others).take(room) {
        attributes.insert(name.clone(), value.clone());
    }
    OutboundMessage {
        body: delivery.body.clone(),
        attributes,
        // A system attribute, outside the 10: a redrive continues the same trace.
        trace: delivery.trace.clone(),
    }
}

fn bounded_message(message: &str, code: ErrorCode) -> String {
    let message = message.trim();
    if message.is_empty() {
        return code.as_str().to_owned();
    }
    bounded(message.to_owned(), MAX_ERROR_MESSAGE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(attributes: &[(&str, &str)]) -> Delivery {
        Delivery {
            message_id: Some("m-1".into()),
            receipt_handle: Some("rh".into()),
            body: "original body".into(),
            receive_count: 4,
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            trace: refund_shared::trace::TraceHeader::parse(TRACE),
        }
    }

    const TRACE: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8";

    #[test]
    fn carries_the_reason_the_source_and_the_originals() {
        let copy = dead_letter_copy(
            &delivery(&[("name", "RefundTicket"), ("correlation_id", "c-1")]),
            ErrorCode::VoidRejected,
            "receipts service rejected void-receipt: answered HTTP 409",
        );
        assert_eq!(copy.body, "original body");
        let expected: BTreeMap<String, String> = [
            ("error_code", "void_rejected"),
            (
                "error_message",
                "receipts service rejected void-receipt: answered HTTP 409",
            ),
            ("source_message_id", "m-1"),
            ("receive_count", "4"),
            ("name", "RefundTicket"),
            ("correlation_id", "c-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(copy.attributes, expected);
        assert_eq!(copy.trace.as_ref().map(|t| t.as_str()), Some(TRACE));
    }

    #[test]
    fn ten_originals_are_cut_to_fit_keeping_the_commands_own_first() {
        let originals: Vec<(String, String)> = (0..6)
            .map(|i| (format!("a{i}"), format!("v{i}")))
            .chain(
                attribute::ALL
                    .iter()
                    .map(|name| (name.to_string(), format!("{name}-value"))),
            )
            .collect();
        let originals: Vec<(&str, &str)> = originals
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let copy = dead_letter_copy(&delivery(&originals), ErrorCode::InvalidCommand, "bad");
        assert_eq!(copy.attributes.len(), MAX_ATTRIBUTES);
        for name in own::ALL.iter().chain(&attribute::ALL) {
            assert!(copy.attributes.contains_key(*name), "{name}");
        }
        assert!(copy.attributes.contains_key("a0") && copy.attributes.contains_key("a1"));
        assert!(!copy.attributes.contains_key("a2"));
    }

    #[test]
    fn own_attributes_win_and_empty_values_are_left_out() {
        let copy = dead_letter_copy(
            &delivery(&[("error_code", "forged"), ("empty", "")]),
            ErrorCode::RetriesExhausted,
            "  ",
        );
        assert_eq!(copy.attributes["error_code"], "retries_exhausted");
        assert_eq!(copy.attributes["error_message"], "retries_exhausted");
        assert!(!copy.attributes.contains_key("empty"));
    }

    #[test]
    fn error_message_is_at_most_one_kib_on_a_char_boundary() {
        let long = "é".repeat(1000); // 2000 bytes
        let copy = dead_letter_copy(&delivery(&[]), ErrorCode::RefundRejected, &long);
        let message = &copy.attributes["error_message"];
        assert_eq!(message.len(), MAX_ERROR_MESSAGE_BYTES);
        assert!(message.chars().all(|c| c == 'é'));
    }
}
