//! [`Subject`]: who asked for a refund, the caller's JWT `sub`. The API takes it from the
//! verified token, the command carries it as the `requested_by` attribute, the record keeps
//! it as its owner and the refund events name it; it is a string only on those wires.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A caller's `sub`: 1 to [`Subject::MAX_BYTES`] bytes, bounded when it is made.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Subject(String);

/// A `sub` the API does not take from a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSubject {
    /// Empty or only white space: as good as no `sub`.
    #[error("sub is blank")]
    Blank,
    /// Longer than [`Subject::MAX_BYTES`], which no OpenID provider issues.
    #[error("sub is longer than {} bytes", Subject::MAX_BYTES)]
    TooLong,
}

impl Subject {
    /// OpenID providers issue at most 255 bytes (OpenID Connect Core 1.0, section 2), so
    /// the API refuses a longer one (401), and the bound keeps a surprising message from
    /// filling attributes, logs, records and events.
    pub const MAX_BYTES: usize = 255;

    /// The `sub` of a verified token, refused when blank or over the bound: the API
    /// answers 401 rather than record someone else's (cut) name.
    pub fn parse(sub: &str) -> Result<Self, InvalidSubject> {
        if sub.trim().is_empty() {
            Err(InvalidSubject::Blank)
        } else if sub.len() > Self::MAX_BYTES {
            Err(InvalidSubject::TooLong)
        } else {
            Ok(Self(sub.to_owned()))
        }
    }

    /// A subject as a message or a stored record carries it: any producer may have
    /// written it, so it is cut to the bound (on a character boundary), and an empty one
    /// is none.
    pub fn bounded(text: &str) -> Option<Self> {
        let text = crate::text::bounded(text.to_owned(), Self::MAX_BYTES);
        (!text.is_empty()).then_some(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// As [`Subject::bounded`] reads it: a record's JSON is a stored record.
impl<'de> Deserialize<'de> for Subject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::bounded(&text).ok_or_else(|| serde::de::Error::custom("requested_by is empty"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tokens_sub_is_refused_when_blank_or_over_the_bound() {
        assert_eq!(Subject::parse("user-7").unwrap().as_str(), "user-7");
        for blank in ["", " ", "\t "] {
            assert_eq!(
                Subject::parse(blank),
                Err(InvalidSubject::Blank),
                "{blank:?}"
            );
        }
        let at_the_bound = "s".repeat(Subject::MAX_BYTES);
        assert_eq!(
            Subject::parse(&at_the_bound).unwrap().as_str(),
            at_the_bound
        );
        let over = "s".repeat(Subject::MAX_BYTES + 1);
        assert_eq!(Subject::parse(&over), Err(InvalidSubject::TooLong));
    }

    #[test]
    fn a_carried_subject_is_cut_to_the_bound_and_empty_is_none() {
        assert_eq!(Subject::bounded(""), None);
        assert_eq!(Subject::bounded("user-7").unwrap().as_str(), "user-7");
        let cut = Subject::bounded(&"s".repeat(500)).unwrap();
        assert_eq!(cut.as_str().len(), Subject::MAX_BYTES);
        let cut = Subject::bounded(&"ü".repeat(200)).unwrap();
        assert_eq!(cut.as_str(), "ü".repeat(127));
    }

    #[test]
    fn on_the_wire_it_is_the_string() {
        let subject = Subject::parse("user-7").unwrap();
        assert_eq!(serde_json::to_string(&subject).unwrap(), r#""user-7""#);
        let back: Subject = serde_json::from_str(r#""user-7""#).unwrap();
        assert_eq!(back, subject);
        assert!(serde_json::from_str::<Subject>(r#""""#).is_err());
    }
}
