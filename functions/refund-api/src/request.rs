//! What a request says about itself, parsed once: its ids (the Lambda request id, the
//! `Correlation-ID`, the `{ticket_id}`) and its raw headers (who is asking is `caller`'s).
//! The endpoints only ever see the parsed values.

use lambda_http::{Request, RequestExt, http::HeaderValue, request::RequestContext};
use refund_shared::{command::TicketId, correlation::CorrelationId, trace::TraceHeader};

use crate::error::ApiError;

/// The correlation id every log line and answer of a request carries.
pub(crate) struct Correlation {
    /// The `Correlation-ID` header, or a generated id when it is absent, empty or refused.
    pub(crate) id: CorrelationId,
    /// The header was given but refused: a 400 for the PUT, which carries it downstream.
    pub(crate) refused: bool,
}

impl Correlation {
    pub(crate) fn of(request: &Request) -> Self {
        match CorrelationId::from_header(header_bytes(request, "correlation-id")) {
            Ok(id) => Self { id, refused: false },
            Err(_) => Self {
                id: CorrelationId::generate(),
                refused: true,
            },
        }
    }
}

/// The Lambda request id, or API Gateway's when the function runs outside Lambda.
pub(crate) fn request_id(request: &Request) -> String {
    if let Some(context) = request.lambda_context_ref() {
        return context.request_id.clone();
    }
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.request_id.clone(),
        _ => None,
    }
    .unwrap_or_else(|| "unknown".to_owned())
}

/// The invocation's X-Ray trace (`Lambda-Runtime-Trace-Id`), which the command carries on
/// so the worker's calls continue it; `None` outside Lambda or when it is not one.
pub(crate) fn trace(request: &Request) -> Option<TraceHeader> {
    let context = request.lambda_context_ref()?;
    TraceHeader::parse(context.xray_trace_id.as_deref()?)
}

/// The `{ticket_id}` segment as a ticket id; a missing or malformed one is a 400.
pub(crate) fn ticket_id(segment: Option<&str>) -> Result<TicketId, ApiError> {
    segment
        .and_then(|segment| segment.parse::<TicketId>().ok())
        .ok_or(ApiError::InvalidTicketId)
}

/// The first value of a header, as raw bytes: validation decides what is acceptable.
pub(crate) fn header_bytes<'r>(request: &'r Request, name: &str) -> Option<&'r [u8]> {
    request.headers().get(name).map(HeaderValue::as_bytes)
}
