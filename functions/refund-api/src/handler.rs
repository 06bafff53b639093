//! [`handle`], the function's one entry point: one API Gateway request in, one answer out.
//! It never fails and never panics outward, and every answer echoes the request's
//! `Correlation-ID`; which endpoint answers is [`crate::route`]'s decision.

use std::{convert::Infallible, panic::AssertUnwindSafe};

use futures::FutureExt;
use lambda_http::{Body, Request, Response, http::HeaderValue};
use refund_shared::{config::AccessConfig, queue::CommandQueue, store::RefundStore};

use crate::{
    error::ApiError,
    records::RefundRecords,
    render,
    request::{self, Correlation},
    route::{self, Seen},
};

/// Answers one request. Never fails and never panics outward: a panic inside becomes a
/// 500 in the contract's shape instead of API Gateway's bare one. `records` is `None`
/// when `REFUND_TABLE_NAME` is unset (pass [`crate::NO_RECORDS`]); `access` says who may
/// do what.
pub async fn handle<Q: CommandQueue, S: RefundStore>(
    queue: &Q,
    records: Option<&RefundRecords<S>>,
    access: &AccessConfig,
    request: Request,
) -> Result<Response<Body>, Infallible> {
    let request_id = request::request_id(&request);
    let correlation = Correlation::of(&request);
    let mut seen = Seen::default();
    let outcome = AssertUnwindSafe(route::respond(
        queue,
        records,
        access,
        &request,
        &correlation,
        &mut seen,
    ))
    .catch_unwind()
    .await
    .unwrap_or_else(|_| Err(ApiError::Internal("handler panicked".into())));
    let correlation = correlation.id;
    let mut response = match outcome {
        Ok(response) => response,
        Err(error) => {
            let ticket_id = seen.ticket_id.as_ref().map(tracing::field::display);
            let method = request.method().as_str();
            if error.http_status().is_server_error() {
                tracing::error!(%request_id, method, ticket_id, correlation_id = %correlation, code = error.code(), %error, outcome = "failed", "request failed");
            } else {
                tracing::warn!(%request_id, method, ticket_id, correlation_id = %correlation, code = error.code(), outcome = "refused", "request refused");
            }
            render::error_response(&error, &request_id)
        }
    };
    // Always valid: an accepted id is visible ASCII, and a generated one is `gen_` and a UUID.
    if let Ok(value) = HeaderValue::from_str(correlation.as_str()) {
        response.headers_mut().insert("correlation-id", value);
    }
    Ok(response)
}
