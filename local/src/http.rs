//! The little HTTP plumbing the emulator needs on top of hyper 1: JSON answers, a bounded
//! body read, and an accept loop. hyper rather than a framework because the emulator must
//! be able to drop a connection without answering (a framework always answers).

use std::{convert::Infallible, future::Future, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    Request, Response, StatusCode,
    body::Incoming,
    header::{CONTENT_TYPE, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Every answer's body: small and fully buffered.
pub type Body = Full<Bytes>;

/// Request bodies above this are refused; the two upstream calls are a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON answer with `Content-Type: application/json`.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The error shape of every emulator answer that is not a success.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    json(
        status,
        &serde_json::json!({ "error": { "status": status.as_u16(), "message": message.into() } }),
    )
}

/// Reads the whole body, at most [`MAX_BODY_BYTES`]; `None` when it is too large or the
/// client went away mid-body.
pub async fn read_body(request: Request<Incoming>) -> Option<Bytes> {
    Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .ok()
        .map(|collected| collected.to_bytes())
}

/// The handler asked for the connection to be dropped without an answer.
///
/// Returned as the service's error: hyper then closes the connection without writing a
/// response, which the client sees as a connection error (the "reset" fault).
#[derive(Debug, thiserror::Error)]
#[error("connection dropped on purpose (fault injection)")]
pub struct DropConnection;

/// Serves HTTP/1.1 on `listener` until the task is aborted, one task per connection.
pub async fn serve<H, F>(listener: TcpListener, handler: Arc<H>) -> Infallible
where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<Body>, DropConnection>> + Send + 'static,
{
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Running out of file descriptors and the like: keep serving the
                // connections already open, and try again shortly.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            let service = service_fn(move |request| handler(request));
            // Errors here are clients going away and the injected drops: nothing to do.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
