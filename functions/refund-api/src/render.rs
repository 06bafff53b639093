//! Every answer is JSON: one constructor, so each carries the same `Content-Type`.

use lambda_http::{
    Body, Response,
    http::{HeaderValue, StatusCode, header},
};
use serde::Serialize;

/// `body` as the JSON answer with `status`.
pub(crate) fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    // Serializing these plain structs cannot fail; an empty object is a safe fallback.
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
