//! The trace headers of a call (contract section 3: `X-Amzn-Trace-Id` and W3C `traceparent`),
//! kept as the worker sent them so that a test can check a trace crossed the queue.
//!
//! Whatever arrives, the emulator records at most [`MAX_TRACE_HEADER_BYTES`] of visible
//! ASCII per header: a value with any other byte (control characters, obs-text) is dropped,
//! a longer one is cut. The listings and the log line stay readable and small, and no input
//! can make the emulator fail.

use hyper::HeaderMap;
use serde::{Deserialize, Serialize};

/// The longest value kept per header; a real `X-Amzn-Trace-Id` is under 100 bytes and a
/// `traceparent` 55.
pub const MAX_TRACE_HEADER_BYTES: usize = 256;

/// The most distinct traces one effect keeps (its calls beyond that are still counted).
pub const MAX_TRACES_PER_EFFECT: usize = 20;

/// The header the worker carries the record's `AWSTraceHeader` in.
pub const XRAY_HEADER: &str = "X-Amzn-Trace-Id";
/// The W3C trace context header.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// The two trace headers of one call, each `None` when absent or not visible ASCII.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    pub x_amzn_trace_id: Option<String>,
    pub traceparent: Option<String>,
}

impl Trace {
    /// The trace headers of a request (the first value of each).
    pub fn of(headers: &HeaderMap) -> Self {
        Self {
            x_amzn_trace_id: recorded(headers, XRAY_HEADER),
            traceparent: recorded(headers, TRACEPARENT_HEADER),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.x_amzn_trace_id.is_none() && self.traceparent.is_none()
    }
}

/// A header's value as recorded: visible ASCII and spaces only, at most
/// [`MAX_TRACE_HEADER_BYTES`] of it.
fn recorded(headers: &HeaderMap, name: &str) -> Option<String> {
    let bytes = headers.get(name)?.as_bytes();
    if bytes.is_empty() || !bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return None;
    }
    let kept = &bytes[..bytes.len().min(MAX_TRACE_HEADER_BYTES)];
    // Every byte is ASCII, so any cut is a character boundary.
    String::from_utf8(kept.to_vec()).ok()
}
