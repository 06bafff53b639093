//! Correlation ids and the character rule shared by every caller-supplied header token.

use std::fmt;

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
#[derive(Debug, Clone, PartialEq, Eq)]
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

    pub fn as_str(&self) -> &str {
        &self.0
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
    }
}
