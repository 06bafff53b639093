//! Correlation ids and the character rule shared by every caller-supplied header token.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

/// The longest header token the API accepts; it also bounds what a caller can make us log.
pub const MAX_TOKEN_LEN: usize = 128;

/// A header token that is empty, too long, or not visible ASCII (0x21..=0x7E).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be 1 to {MAX_TOKEN_LEN} visible ASCII characters")]
pub struct InvalidHeaderToken;

/// Checks the contract's rule for `Idempotency-Key` and `Correlation-ID`: 1..=128 characters
/// in 0x21..=0x7E. Works on raw bytes because a header may carry anything.
pub fn parse_header_token(value: &[u8]) -> Result<&str, InvalidHeaderToken> {
    let valid = (1..=MAX_TOKEN_LEN).contains(&value.len())
        && value.iter().all(|b| (0x21..=0x7e).contains(b));
    if !valid {
        return Err(InvalidHeaderToken);
    }
    std::str::from_utf8(value).map_err(|_| InvalidHeaderToken)
}

/// Ties together the request, the queued command and every upstream call of one refund.
/// Always a valid header token, so it can be sent as `Correlation-ID` as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct CorrelationId(String);

impl CorrelationId {
    /// A fresh id, `gen_` + UUIDv4, so generated ids are told apart from a caller's.
    pub fn generate() -> Self {
        Self(format!("gen_{}", Uuid::new_v4().hyphenated()))
    }

    /// The caller's id when it gave a valid one; absent or empty means "make one up".
    pub fn from_header(value: Option<&[u8]>) -> Result<Self, InvalidHeaderToken> {
        match value {
            None | Some(b"") => Ok(Self::generate()),
            Some(raw) => parse_header_token(raw).map(|token| Self(token.to_owned())),
        }
    }

    /// A token as the caller or a message gave it.
    pub fn parse(token: &str) -> Result<Self, InvalidHeaderToken> {
        parse_header_token(token.as_bytes()).map(|token| Self(token.to_owned()))
    }

    /// A message's `correlation_id` attribute when it is a valid token, else a generated
    /// id: every upstream call carries one, and a malformed one must not make the HTTP
    /// request itself fail.
    pub fn or_generate(token: Option<&str>) -> Self {
        token
            .and_then(|token| Self::parse(token).ok())
            .unwrap_or_else(Self::generate)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// So a test or a log check can compare with the text it expects.
impl PartialEq<&str> for CorrelationId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Read back from a status record: only a valid token is a correlation id.
impl<'de> Deserialize<'de> for CorrelationId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let token = String::deserialize(deserializer)?;
        Self::parse(&token).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_or_empty_is_generated() {
        for value in [None, Some(&b""[..])] {
            let id = CorrelationId::from_header(value).unwrap();
            let rest = id.as_str().strip_prefix("gen_").unwrap();
            assert_eq!(Uuid::parse_str(rest).unwrap().get_version_num(), 4);
        }
    }

    #[test]
    fn given_ids_are_kept_or_refused() {
        assert_eq!(
            CorrelationId::from_header(Some(b"abc!~")).unwrap().as_str(),
            "abc!~"
        );
        assert!(CorrelationId::from_header(Some(b"a b")).is_err());
        assert!(CorrelationId::from_header(Some("é".as_bytes())).is_err());
        assert!(CorrelationId::from_header(Some(&[b'x'; 129])).is_err());
        assert!(CorrelationId::from_header(Some(&[0x7f])).is_err());
        assert!(CorrelationId::parse(&"c".repeat(500)).is_err());
    }

    #[test]
    fn a_message_without_a_valid_id_gets_a_generated_one() {
        assert_eq!(
            CorrelationId::or_generate(Some("corr-1")).as_str(),
            "corr-1"
        );
        for bad in [None, Some(""), Some("has space"), Some("é")] {
            assert!(CorrelationId::or_generate(bad).as_str().starts_with("gen_"));
        }
    }

    #[test]
    fn serde_round_trips_valid_ids_only() {
        let id = CorrelationId::parse("c-1").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"c-1\"");
        assert_eq!(
            serde_json::from_str::<CorrelationId>("\"c-1\"").unwrap(),
            id
        );
        assert!(serde_json::from_str::<CorrelationId>("\"a b\"").is_err());
    }
}
