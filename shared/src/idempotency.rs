//! The idempotency key K that makes a refund happen once.
//!
//! K is derived from the ticket alone, never from the request: a double click, a browser
//! retry, two support agents and a redelivered message must all reach the receipts and
//! payments services with the same key, or the customer could be refunded twice.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use uuid::{Uuid, uuid};

use crate::command::TicketId;
use crate::correlation::{InvalidHeaderToken, parse_header_token};

/// The UUIDv5 namespace of refund idempotency keys (fixed by the contract: changing it
/// would let every ticket already refunded be refunded again).
pub const NAMESPACE: Uuid = uuid!("d5c0914a-93ae-453d-8453-8e578063b9d6");

/// K: `UUIDv5(NAMESPACE, lowercase hyphenated ticket id)`, written as a hyphenated UUID.
///
/// A status record may hold a key that is not its ticket's (written by a producer that
/// minted its own); it is still a UUID, which is what [`FromStr`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdempotencyKey(Uuid);

impl IdempotencyKey {
    pub fn for_ticket(ticket: TicketId) -> Self {
        Self(Uuid::new_v5(&NAMESPACE, ticket.to_string().as_bytes()))
    }

    /// Whether `text` spells this key (in any case, as producers may write it).
    pub fn is_spelled_by(&self, text: &str) -> bool {
        text.parse::<Self>().is_ok_and(|key| key == *self)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Text that is not a UUID in hyphenated form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("idempotency key must be a UUID in hyphenated form")]
pub struct InvalidIdempotencyKey;

impl FromStr for IdempotencyKey {
    type Err = InvalidIdempotencyKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 36 {
            return Err(InvalidIdempotencyKey);
        }
        Uuid::try_parse(s)
            .map(Self)
            .map_err(|_| InvalidIdempotencyKey)
    }
}

/// The caller's own `Idempotency-Key` header.
///
/// It is recorded and echoed so a client can match answers to its requests, but it never
/// replaces K: a second key per ticket would allow a second refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdempotencyKey(String);

impl ClientIdempotencyKey {
    /// Accepts 1..=128 visible ASCII characters; an empty value is an error, not "absent".
    pub fn parse(value: &[u8]) -> Result<Self, InvalidHeaderToken> {
        parse_header_token(value).map(|token| Self(token.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha1::{Digest, Sha1};

    /// RFC 9562 §5.5 by hand, so the key is checked against an implementation other than
    /// the one that computes it.
    fn uuid_v5_by_hand(namespace: Uuid, name: &str) -> Uuid {
        let mut hasher = Sha1::new();
        hasher.update(namespace.as_bytes());
        hasher.update(name.as_bytes());
        let digest = hasher.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        bytes[6] = (bytes[6] & 0x0f) | 0x50;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Uuid::from_bytes(bytes)
    }

    #[test]
    fn key_is_uuid_v5_of_the_lowercase_ticket_in_the_contract_namespace() {
        let ticket: TicketId = "8F7C3B4A-1D2E-4F60-9A8B-7C6D5E4F3A2B".parse().unwrap();
        let expected = uuid_v5_by_hand(
            "d5c0914a-93ae-453d-8453-8e578063b9d6".parse().unwrap(),
            "8f7c3b4a-1d2e-4f60-9a8b-7c6d5e4f3a2b",
        );
        assert_eq!(IdempotencyKey::for_ticket(ticket).as_uuid(), expected);
        assert_eq!(expected.get_version_num(), 5);
    }

    #[test]
    fn keys_are_written_and_read_as_hyphenated_uuids() {
        let ticket: TicketId = "8f7c3b4a-1d2e-4f60-9a8b-7c6d5e4f3a2b".parse().unwrap();
        let key = IdempotencyKey::for_ticket(ticket);
        let text = key.to_string();
        assert_eq!(serde_json::to_string(&key).unwrap(), format!("\"{text}\""));
        assert_eq!(text.parse::<IdempotencyKey>(), Ok(key));
        assert!(key.is_spelled_by(&text.to_uppercase()));
        assert!(!key.is_spelled_by("per-request-key"));
        assert!(!IdempotencyKey::for_ticket(TicketId::from(Uuid::nil())).is_spelled_by(&text));
        for bad in ["", "k", &text.replace('-', "")] {
            assert_eq!(bad.parse::<IdempotencyKey>(), Err(InvalidIdempotencyKey));
        }
    }

    #[test]
    fn client_key_follows_the_visible_ascii_rule() {
        assert_eq!(
            ClientIdempotencyKey::parse(b"abc-123").unwrap().as_str(),
            "abc-123"
        );
        assert!(ClientIdempotencyKey::parse(b"").is_err());
        assert!(ClientIdempotencyKey::parse(b"has space").is_err());
        assert!(ClientIdempotencyKey::parse(&[b'k'; 129]).is_err());
        assert!(ClientIdempotencyKey::parse(&[b'k'; 128]).is_ok());
    }
}
