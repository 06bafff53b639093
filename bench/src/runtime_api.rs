//! A minimal Lambda Runtime API on loopback: enough of
//! <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html> to run a function
//! binary exactly as Lambda does (`GET .../invocation/next`, `POST .../response` and
//! `.../error`, `POST .../init/error`), and to timestamp each of those calls.
//!
//! The benchmark hands out one event at a time and waits for its answer, so the function
//! never waits on the harness except where Lambda would make it wait too (between events).

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use hyper::{Method, Request, Response, StatusCode, body::Incoming};
use refund_local::http::{self, Body, DropConnection};
use serde_json::json;
use tokio::{
    net::TcpListener,
    sync::{Mutex, mpsc},
    task::JoinHandle,
};

const PREFIX: &str = "/2018-06-01/runtime";

/// What the function did, as the Runtime API saw it.
#[derive(Debug)]
pub enum Seen {
    /// The function asked for its next event: init is over, or the last event is done.
    Next(Instant),
    /// An answer to an event; `ok` is false for `/error`.
    Answer {
        request_id: String,
        at: Instant,
        ok: bool,
        body: Bytes,
    },
    /// The function reported a failed init.
    InitError(Bytes),
}

/// An event for the function.
struct Invocation {
    request_id: String,
    payload: Bytes,
}

/// A running Runtime API; the server stops when this is dropped.
pub struct RuntimeApi {
    pub addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    events: mpsc::UnboundedSender<Invocation>,
    task: JoinHandle<()>,
}

/// How long the function may take for anything: a failed start must not hang the bench.
const PATIENCE: Duration = Duration::from_secs(60);

impl RuntimeApi {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::unbounded_channel::<Invocation>();
        let events_rx = Arc::new(Mutex::new(events_rx));
        let handler = Arc::new(move |request: Request<Incoming>| {
            let seen = seen_tx.clone();
            let events = Arc::clone(&events_rx);
            async move { Ok::<_, DropConnection>(route(request, seen, events).await) }
        });
        let task = tokio::spawn(async move {
            http::serve(listener, handler).await;
        });
        Ok(Self {
            addr,
            seen,
            events,
            task,
        })
    }

    /// Hands the function an event; its answer arrives as [`Seen::Answer`].
    pub fn invoke(&self, request_id: &str, payload: Bytes) {
        // The receiver lives as long as the server task, which lives as long as `self`.
        let _ = self.events.send(Invocation {
            request_id: request_id.to_owned(),
            payload,
        });
    }

    /// The next thing the function did.
    pub async fn seen(&mut self) -> Result<Seen, String> {
        match tokio::time::timeout(PATIENCE, self.seen.recv()).await {
            Ok(Some(seen)) => Ok(seen),
            Ok(None) => Err("the runtime API stopped".to_owned()),
            Err(_) => Err(format!("the function did nothing for {PATIENCE:?}")),
        }
    }

    /// Waits for the function to ask for its next event; when it is `Next`.
    pub async fn next(&mut self) -> Result<Instant, String> {
        match self.seen().await? {
            Seen::Next(at) => Ok(at),
            Seen::InitError(body) => {
                Err(format!("init failed: {}", String::from_utf8_lossy(&body)))
            }
            other => Err(format!(
                "expected a request for the next event, got {other:?}"
            )),
        }
    }

    /// Waits for the answer to `request_id`; when it arrived.
    pub async fn answer(&mut self, request_id: &str) -> Result<Instant, String> {
        match self.seen().await? {
            Seen::Answer {
                request_id: id,
                at,
                ok: true,
                ..
            } if id == request_id => Ok(at),
            Seen::Answer {
                ok: false, body, ..
            } => Err(format!(
                "the invocation failed: {}",
                String::from_utf8_lossy(&body)
            )),
            other => Err(format!(
                "expected the answer to {request_id}, got {other:?}"
            )),
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn route(
    request: Request<Incoming>,
    seen: mpsc::UnboundedSender<Seen>,
    events: Arc<Mutex<mpsc::UnboundedReceiver<Invocation>>>,
) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return http::error(StatusCode::NOT_FOUND, "not a runtime API path");
    };
    let method = request.method().clone();
    if method == Method::GET && rest == "/invocation/next" {
        let _ = seen.send(Seen::Next(Instant::now()));
        let Some(invocation) = events.lock().await.recv().await else {
            return http::error(StatusCode::INTERNAL_SERVER_ERROR, "the bench is over");
        };
        return next_event(invocation);
    }
    if method != Method::POST {
        return http::error(StatusCode::METHOD_NOT_ALLOWED, "runtime API: POST only");
    }
    let at = Instant::now();
    // The body only ever explains a failure; one too large to read still counts as the
    // answer it is, with nothing to say.
    let body = http::read_body(request).await.unwrap_or_default();
    if rest == "/init/error" {
        let _ = seen.send(Seen::InitError(body));
    } else if let Some(id_and_kind) = rest.strip_prefix("/invocation/") {
        let (request_id, ok) = match id_and_kind.rsplit_once('/') {
            Some((id, "response")) => (id, true),
            Some((id, "error")) => (id, false),
            _ => return http::error(StatusCode::NOT_FOUND, "no such runtime API path"),
        };
        let _ = seen.send(Seen::Answer {
            request_id: request_id.to_owned(),
            at,
            ok,
            body,
        });
    } else {
        return http::error(StatusCode::NOT_FOUND, "no such runtime API path");
    }
    http::json(StatusCode::ACCEPTED, &json!({ "status": "OK" }))
}

/// The answer to `GET .../invocation/next`, with the headers `lambda_runtime` reads.
fn next_event(invocation: Invocation) -> Response<Body> {
    // The deadline is wall-clock milliseconds since the epoch: a clock before 1970 has no
    // deadline to give, and the function then stops: the bench reports a failed run.
    let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) else {
        return http::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the system clock is before 1970",
        );
    };
    let deadline = now + Duration::from_secs(30);
    let mut response = Response::new(Body::new(invocation.payload));
    let headers = response.headers_mut();
    let values = [
        ("lambda-runtime-aws-request-id", invocation.request_id),
        (
            "lambda-runtime-deadline-ms",
            deadline.as_millis().to_string(),
        ),
        (
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:bench".to_owned(),
        ),
        (
            "lambda-runtime-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0".to_owned(),
        ),
        ("content-type", "application/json".to_owned()),
    ];
    for (name, value) in values {
        if let Ok(value) = value.parse() {
            headers.insert(name, value);
        }
    }
    response
}
