//! The X-Ray trace header that ties one refund's spans together, from the API's
//! invocation through the queue to the upstream calls (contract sections 2 and 3).
//!
//! The API's invocation gets it from Lambda (`Lambda-Runtime-Trace-Id`) and puts it on the
//! command as the SQS system attribute [`AWS_TRACE_HEADER`]; Lambda hands it to the worker
//! in the record's `attributes`; the worker sends it upstream as `X-Amzn-Trace-Id` and, for
//! services that speak W3C Trace Context, as [`TraceHeader::traceparent`]. Nothing here
//! makes a network call: the header is carried, never looked up.

use std::fmt;

/// The SQS system attribute (and Lambda record attribute) that carries the trace.
pub const AWS_TRACE_HEADER: &str = "AWSTraceHeader";

/// The upstream header of the X-Ray trace.
pub const X_AMZN_TRACE_ID: &str = "X-Amzn-Trace-Id";

/// The upstream header of the W3C trace.
pub const TRACEPARENT: &str = "traceparent";

/// The longest trace header carried. X-Ray's own are under 200 bytes (Root, Parent,
/// Sampled and a short Lineage); anything longer is not one and is dropped, never cut,
/// since a cut header would name another trace.
pub const MAX_TRACE_HEADER_LEN: usize = 256;

/// An X-Ray trace header with a well-formed `Root`, as it travels: visible ASCII, at
/// most [`MAX_TRACE_HEADER_LEN`] bytes, so it can be sent as a header value as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceHeader(String);

impl TraceHeader {
    /// The header when `text` is one; `None` for anything else (absent, empty, too long,
    /// not visible ASCII, or without a `Root=1-<8 hex>-<24 hex>`). A trace is never worth
    /// failing a refund for, so a bad one is simply not carried.
    pub fn parse(text: &str) -> Option<Self> {
        let visible = (1..=MAX_TRACE_HEADER_LEN).contains(&text.len())
            && text.bytes().all(|b| (0x21..=0x7e).contains(&b));
        (visible && root_trace_id(text).is_some()).then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same trace as a W3C `traceparent`: `00-<Root's 32 hex>-<Parent>-<flags>`, the
    /// flags `01` when `Sampled=1`. `None` without a 16-hex `Parent` (an all-zero id is
    /// invalid in W3C, so it is none as well).
    pub fn traceparent(&self) -> Option<String> {
        let trace_id = root_trace_id(&self.0)?;
        let parent = field(&self.0, "Parent").filter(|p| is_hex(p, 16) && !is_zero(p))?;
        let sampled = if field(&self.0, "Sampled") == Some("1") {
            "01"
        } else {
            "00"
        };
        Some(format!(
            "00-{trace_id}-{}-{sampled}",
            parent.to_ascii_lowercase()
        ))
    }
}

impl fmt::Display for TraceHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The value of `name` among the header's `;`-separated `key=value` fields.
fn field<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header
        .split(';')
        .filter_map(|part| part.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The Root `1-<8 hex>-<24 hex>` as W3C's 32 lowercase hex digits.
fn root_trace_id(header: &str) -> Option<String> {
    let root = field(header, "Root")?;
    let mut parts = root.split('-');
    let (Some("1"), Some(time), Some(random), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let id = format!("{time}{random}").to_ascii_lowercase();
    (is_hex(time, 8) && is_hex(random, 24) && !is_zero(&id)).then_some(id)
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_zero(text: &str) -> bool {
    text.bytes().all(|b| b == b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "Root=1-5759e988-bd862e3fe1be46a994272793";

    #[test]
    fn traceparent_follows_the_contracts_formula() {
        let cases = [
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
                Some("00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"),
            ),
            (
                "Root=1-5759E988-BD862E3FE1BE46A994272793;Parent=53995C3F42CD8AD8;Sampled=0",
                Some("00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-00"),
            ),
            // Field order is free, and `Sampled=?` (a deferred decision) is not sampled.
            (
                "Sampled=?;Parent=53995c3f42cd8ad8;Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=a87bd80c:1",
                Some("00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-00"),
            ),
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
                Some("00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-00"),
            ),
            // No (or no valid) Parent: the X-Ray header still travels, no traceparent.
            (ROOT, None),
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f",
                None,
            ),
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000000;Sampled=1",
                None,
            ),
        ];
        for (header, traceparent) in cases {
            let parsed = TraceHeader::parse(header).expect(header);
            assert_eq!(parsed.as_str(), header);
            assert_eq!(parsed.traceparent().as_deref(), traceparent, "{header}");
        }
    }

    #[test]
    fn anything_but_a_trace_header_is_not_carried() {
        let long = format!("{ROOT};Lineage={}", "a".repeat(MAX_TRACE_HEADER_LEN));
        for bad in [
            "",
            "Sampled=1",
            "Root=",
            "Root=1-5759e988",
            "Root=2-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759e98-bd862e3fe1be46a9942727930",
            "Root=1-5759e988-bd862e3fe1be46a99427279g",
            "Root=1-5759e988-bd862e3fe1be46a994272793-00",
            "Root=1-00000000-000000000000000000000000",
            "Root=1-5759e988-bd862e3fe1be46a994272793; Parent=53995c3f42cd8ad8",
            "Root=1-5759e988-bd862e3fe1be46a994272793;\nParent=53995c3f42cd8ad8",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=é",
            long.as_str(),
        ] {
            assert_eq!(TraceHeader::parse(bad), None, "{bad:?}");
        }
    }
}
