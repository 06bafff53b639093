//! Every answer is JSON: one constructor, so each carries the same `Content-Type`, and
//! every [`ApiError`] is answered in the contract's one error shape.

use lambda_http::{
    Body, Response,
    http::{HeaderValue, StatusCode, header},
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::ApiError;

/// `body` as the JSON answer with `status`. The answers' plain structs always serialize;
/// should one ever not, the request fails as an internal error instead of answering a
/// body that is not what the contract says.
pub(crate) fn json_response(
    status: StatusCode,
    body: &impl Serialize,
) -> Result<Response<Body>, ApiError> {
    let text = serde_json::to_string(body)
        .map_err(|e| ApiError::Internal(format!("the answer does not serialize: {e}")))?;
    Ok(text_response(status, text))
}

/// A JSON value as the answer with `status`: a value's text cannot fail, so the error
/// answers need no fallback of their own.
pub(crate) fn value_response(status: StatusCode, body: &Value) -> Response<Body> {
    text_response(status, body.to_string())
}

/// `error` in the contract's error shape, with the status and headers it decided.
pub(crate) fn error_response(error: &ApiError, request_id: &str) -> Response<Body> {
    let body = json!({
        "error": {"code": error.code(), "message": error.public_message()},
        "request_id": request_id,
    });
    let mut response = value_response(error.http_status(), &body);
    response.headers_mut().extend(error.headers());
    response
}

fn text_response(status: StatusCode, text: String) -> Response<Body> {
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
