//! The `RefundTicket` command: what the API puts on the queue and the worker carries out.
//!
//! The JSON shape is shared with the Go Event-Driven project's `RefundTicket`, so either
//! side can produce or consume it: snake_case fields, a `header` with the command's id,
//! publication time and idempotency key.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    correlation::CorrelationId,
    idempotency::{ClientIdempotencyKey, IdempotencyKey},
    queue::OutboundMessage,
    subject::Subject,
    trace::TraceHeader,
};

/// The SQS message attribute `name` of every command, so consumers can route by type.
pub const COMMAND_NAME: &str = "RefundTicket";

/// The message attributes of a command (contract section 2), named once for the API that
/// writes them, the worker that reads them and the dead-letter copy that keeps them.
pub mod attribute {
    pub const NAME: &str = "name";
    pub const CORRELATION_ID: &str = "correlation_id";
    pub const REQUESTED_BY: &str = "requested_by";
    pub const CLIENT_IDEMPOTENCY_KEY: &str = "client_idempotency_key";
    /// Every attribute the API writes, in the order a dead-letter copy keeps them first.
    pub const ALL: [&str; 4] = [NAME, CORRELATION_ID, REQUESTED_BY, CLIENT_IDEMPOTENCY_KEY];
}

/// A ticket's id: a UUID, always written in lowercase hyphenated form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TicketId(Uuid);

/// A path segment that is not a hyphenated UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ticket id must be a UUID in hyphenated form (8-4-4-4-12 hex digits)")]
pub struct InvalidTicketId;

impl FromStr for TicketId {
    type Err = InvalidTicketId;

    /// Only the 36-character hyphenated form, in any case: the braced, URN and bare forms
    /// the `uuid` crate also accepts are not ticket ids in a URL.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 36 {
            return Err(InvalidTicketId);
        }
        Uuid::try_parse(s).map(Self).map_err(|_| InvalidTicketId)
    }
}

impl TicketId {
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for TicketId {
    fn from(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl fmt::Display for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandHeader {
    /// This command's own id (UUIDv4); a retry of the same request gets a new one.
    pub id: Uuid,
    /// Written in UTC; read with any RFC 3339 offset and fraction, as Go writes them.
    #[serde(with = "time::serde::rfc3339")]
    pub published_at: OffsetDateTime,
    /// K as the producer wrote it. The worker never trusts it: it derives K from the
    /// ticket itself ([`RefundTicket::key`]), so a forged or per-request key cannot refund
    /// a ticket twice.
    pub idempotency_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundTicket {
    pub header: CommandHeader,
    pub ticket_id: TicketId,
}

/// A message body that is not a `RefundTicket`: retrying it can never succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCommand {
    /// The decoder's message with every piece of the body it quoted redacted (see
    /// [`redact_quoted`]): the text goes into log lines, which never carry a body.
    #[error("body is not a RefundTicket command: {0}")]
    Shape(String),
    #[error("header.idempotency_key is empty")]
    EmptyIdempotencyKey,
}

impl From<serde_json::Error> for InvalidCommand {
    fn from(error: serde_json::Error) -> Self {
        Self::Shape(redact_quoted(&error.to_string()))
    }
}

/// The command's own field names: the only quoted words a decoder message keeps.
const FIELD_NAMES: [&str; 5] = [
    "header",
    "id",
    "published_at",
    "idempotency_key",
    "ticket_id",
];

/// serde's messages quote what they found (`invalid type: string "…"`, `integer `…``,
/// `found `z``). Every `"…"` and every `` `…` `` that is not one of the command's field
/// names is replaced by `…`, so the message says what was wrong and where, never what the
/// body held.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let mut escaped = false;
                for inner in chars.by_ref() {
                    match (escaped, inner) {
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        _ => escaped = false,
                    }
                }
                out.push_str("\"…\"");
            }
            '`' => {
                let quoted: String = chars.by_ref().take_while(|&c| c != '`').collect();
                if FIELD_NAMES.contains(&quoted.as_str()) {
                    out.push('`');
                    out.push_str(&quoted);
                    out.push('`');
                } else {
                    out.push_str("`…`");
                }
            }
            c => out.push(c),
        }
    }
    out
}

impl RefundTicket {
    pub fn new(ticket_id: TicketId, published_at: OffsetDateTime) -> Self {
        Self {
            header: CommandHeader {
                id: Uuid::new_v4(),
                published_at: published_at.to_offset(time::UtcOffset::UTC),
                idempotency_key: IdempotencyKey::for_ticket(ticket_id).to_string(),
            },
            ticket_id,
        }
    }

    /// Decodes a queue message body, ignoring unknown fields (producers may add some).
    pub fn decode(body: &str) -> Result<Self, InvalidCommand> {
        let command: Self = serde_json::from_str(body)?;
        if command.header.idempotency_key.trim().is_empty() {
            return Err(InvalidCommand::EmptyIdempotencyKey);
        }
        Ok(command)
    }

    /// K, derived from the ticket: the one key both upstream calls carry.
    pub fn key(&self) -> IdempotencyKey {
        IdempotencyKey::for_ticket(self.ticket_id)
    }

    /// Whether the producer wrote a key other than the ticket's own K (a producer that
    /// mints keys per request, or a forged message).
    pub fn has_foreign_key(&self) -> bool {
        !self.key().is_spelled_by(&self.header.idempotency_key)
    }

    /// The message body. A struct of strings, UUIDs and a UTC time serializes, but the
    /// error is returned rather than hidden behind an empty body.
    pub fn encode(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// The command as it goes on the queue: its body and the attributes of section 2.
    pub fn message(&self, origin: &Origin<'_>) -> Result<OutboundMessage, serde_json::Error> {
        let mut attributes = std::collections::BTreeMap::from([
            (attribute::NAME.to_owned(), COMMAND_NAME.to_owned()),
            (
                attribute::CORRELATION_ID.to_owned(),
                origin.correlation_id.to_string(),
            ),
        ]);
        if let Some(requested_by) = origin.requested_by {
            attributes.insert(
                attribute::REQUESTED_BY.to_owned(),
                requested_by.as_str().to_owned(),
            );
        }
        if let Some(key) = origin.client_key {
            attributes.insert(
                attribute::CLIENT_IDEMPOTENCY_KEY.to_owned(),
                key.as_str().to_owned(),
            );
        }
        Ok(OutboundMessage {
            body: self.encode()?,
            attributes,
            trace: origin.trace.cloned(),
        })
    }
}

/// Where a command came from: what travels beside it as message attributes.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub correlation_id: &'a CorrelationId,
    /// The caller's JWT `sub`, when known.
    pub requested_by: Option<&'a Subject>,
    pub client_key: Option<&'a ClientIdempotencyKey>,
    /// The X-Ray trace of the request, continued by the worker (contract section 2).
    pub trace: Option<&'a TraceHeader>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use time::macros::datetime;

    const TICKET: &str = "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f";

    #[test]
    fn ticket_ids_are_hyphenated_uuids_in_any_case_written_lowercase() {
        let upper: TicketId = TICKET.to_uppercase().parse().unwrap();
        assert_eq!(upper.to_string(), TICKET);
        for bad in [
            "",
            "not-a-uuid",
            "0f5d8c6e3a1b4c2d9e8f7a6b5c4d3e2f",
            "{0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f}",
            "urn:uuid:0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f",
            "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2g",
            "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f0",
        ] {
            assert_eq!(bad.parse::<TicketId>(), Err(InvalidTicketId), "{bad:?}");
        }
    }

    /// Golden: the exact field names and nesting of the contract, nothing more.
    #[test]
    fn command_json_has_exactly_the_contract_shape() {
        let ticket: TicketId = TICKET.parse().unwrap();
        let command = RefundTicket::new(ticket, datetime!(2026-11-23 08:15:30.5 +02:00));
        let json: Value = serde_json::from_str(&command.encode().unwrap()).unwrap();
        assert_eq!(
            json,
            json!({
                "header": {
                    "id": command.header.id.to_string(),
                    "published_at": "2026-11-23T06:15:30.5Z",
                    "idempotency_key": IdempotencyKey::for_ticket(ticket).to_string(),
                },
                "ticket_id": TICKET,
            })
        );
        assert_eq!(command.header.id.get_version_num(), 4);
    }

    #[test]
    fn the_message_carries_the_body_and_the_attributes_of_section_2() {
        let ticket: TicketId = TICKET.parse().unwrap();
        let command = RefundTicket::new(ticket, datetime!(2026-11-23 06:00 UTC));
        let correlation_id = CorrelationId::parse("c-1").unwrap();
        let client_key = ClientIdempotencyKey::parse(b"ck").unwrap();
        let trace = TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793").unwrap();
        let subject = Subject::parse("user-7").unwrap();
        let full = command
            .message(&Origin {
                correlation_id: &correlation_id,
                requested_by: Some(&subject),
                client_key: Some(&client_key),
                trace: Some(&trace),
            })
            .unwrap();
        assert_eq!(full.trace, Some(trace));
        assert_eq!(RefundTicket::decode(&full.body).unwrap(), command);
        let names: Vec<&str> = full.attributes.keys().map(String::as_str).collect();
        let mut all = attribute::ALL;
        all.sort();
        assert_eq!(names, all);
        assert_eq!(full.attributes[attribute::NAME], COMMAND_NAME);
        assert_eq!(full.attributes[attribute::REQUESTED_BY], "user-7");
        let bare = command
            .message(&Origin {
                correlation_id: &correlation_id,
                requested_by: None,
                client_key: None,
                trace: None,
            })
            .unwrap();
        assert_eq!(bare.trace, None);
        assert_eq!(
            bare.attributes.keys().collect::<Vec<_>>(),
            [attribute::CORRELATION_ID, attribute::NAME]
        );
        assert!(!command.has_foreign_key());
        let mut forged = command.clone();
        forged.header.idempotency_key = "per-request".into();
        assert!(forged.has_foreign_key());
        assert_eq!(forged.key(), command.key());
    }

    /// Written by hand the way Go's encoding/json writes a `time.Time` in a local zone.
    #[test]
    fn decodes_a_body_written_by_the_go_project() {
        let body = r#"{"header":{"id":"6b1f8d2e-0c3a-4e5b-8f7d-9a0b1c2d3e4f","published_at":"2026-11-23T10:15:30.123456789+05:30","idempotency_key":"2c2b4e45-5d0f-5c3e-9a1e-0b8c6f3d2a19"},"ticket_id":"0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f","extra":{"ignored":true}}"#;
        let command = RefundTicket::decode(body).unwrap();
        assert_eq!(command.ticket_id.to_string(), TICKET);
        assert_eq!(
            command.header.published_at,
            datetime!(2026-11-23 04:45:30.123456789 UTC)
        );
        assert_eq!(
            command.header.idempotency_key,
            "2c2b4e45-5d0f-5c3e-9a1e-0b8c6f3d2a19"
        );
    }

    #[test]
    fn bodies_that_are_not_the_command_are_refused() {
        for body in [
            "",
            "not json",
            "{}",
            "[]",
            r#"{"header":{"id":"6b1f8d2e-0c3a-4e5b-8f7d-9a0b1c2d3e4f","published_at":"2026-11-23T10:15:30Z","idempotency_key":"k"},"ticket_id":"nope"}"#,
            r#"{"header":{"id":"6b1f8d2e-0c3a-4e5b-8f7d-9a0b1c2d3e4f","published_at":"2026-11-23T10:15:30Z","idempotency_key":"k"},"ticket_id":42}"#,
            r#"{"header":{"id":"6b1f8d2e-0c3a-4e5b-8f7d-9a0b1c2d3e4f","published_at":"yesterday","idempotency_key":"k"},"ticket_id":"0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f"}"#,
            r#"{"header":{"id":"6b1f8d2e-0c3a-4e5b-8f7d-9a0b1c2d3e4f","published_at":"2026-11-23T10:15:30Z","idempotency_key":" "},"ticket_id":"0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f"}"#,
            r#"{"header":{"published_at":"2026-11-23T10:15:30Z","idempotency_key":"k"},"ticket_id":"0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f"}"#,
        ] {
            assert!(RefundTicket::decode(body).is_err(), "{body:?}");
        }
    }

    /// The decoder's message goes into log lines: it names the problem and the field,
    /// never a value from the body.
    #[test]
    fn the_decoders_message_quotes_nothing_from_the_body() {
        const MARK: &str = "Pii-4111111111111111";
        for body in [
            format!(r#"{{"header":{{"id":"6b1f8d2e-0c3a-4e5b-8f7d-9a0b1c2d3e4f","published_at":"2026-11-23T10:15:30Z","idempotency_key":"k"}},"ticket_id":"{MARK}"}}"#),
            format!(r#"{{"header":"{MARK}","ticket_id":"0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f"}}"#),
            format!(r#"{{"header":{{"id":"{MARK}","published_at":"x","idempotency_key":"k"}}}}"#),
            format!(r#"{{"header":{{"id":"6b1f8d2e-0c3a-4e5b-8f7d-9a0b1c2d3e4f","published_at":"{MARK}","idempotency_key":"k"}},"ticket_id":"0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f"}}"#),
            r#"{"header":{"id":"6b1f8d2e-0c3a-4e5b-8f7d-9a0b1c2d3e4f","published_at":"2026-11-23T10:15:30Z","idempotency_key":4111111111111111},"ticket_id":"x"}"#.to_owned(),
            format!(r#"{{"ticket_id":"0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2Z{MARK}"}}"#),
            format!("{MARK} not json"),
            format!(r#"["{MARK}"]"#),
        ] {
            let message = RefundTicket::decode(&body).unwrap_err().to_string();
            assert!(!message.contains(MARK) && !message.contains("4111111111111111"), "{message}");
            assert!(message.starts_with("body is not a RefundTicket command: "), "{message}");
        }
        let missing =
            RefundTicket::decode(r#"{"ticket_id":"0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f"}"#)
                .unwrap_err()
                .to_string();
        assert!(missing.contains("missing field `header`"), "{missing}");
    }

    #[test]
    fn redaction_handles_escapes_and_unclosed_quotes() {
        assert_eq!(
            redact_quoted(r#"invalid type: string "a\"b", expected `ticket_id` at `x`"#),
            r#"invalid type: string "…", expected `ticket_id` at `…`"#
        );
        assert_eq!(redact_quoted(r#"open "quote"#), r#"open "…""#);
        assert_eq!(redact_quoted("open `tick"), "open `…`");
    }
}
