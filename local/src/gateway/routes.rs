//! Routing: which method and path reach which part of the emulator, and the one log line
//! per request that says what came of it.

use std::{sync::Arc, time::Instant};

use hyper::{Method, Request, Response, StatusCode, body::Incoming};
use serde_json::json;

use super::{FaultsUpdate, Gateway, Service, Trace};
use crate::http::{self, Body, DropConnection};

/// The header the worker carries the correlation id in (contract section 3).
pub const CORRELATION_HEADER: &str = "Correlation-ID";

/// The facts of one request's log line, filled in by the handler.
#[derive(Debug, Default)]
pub(super) struct LogLine {
    pub(super) ticket_id: Option<String>,
    pub(super) key: Option<String>,
    pub(super) correlation_id: Option<String>,
    pub(super) trace: Trace,
    pub(super) outcome: Option<&'static str>,
}

impl Gateway {
    /// Routes one request and logs one line for it.
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<Body>, DropConnection> {
        let started = Instant::now();
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let mut line = LogLine {
            correlation_id: request
                .headers()
                .get(CORRELATION_HEADER)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
            trace: Trace::of(request.headers()),
            ..LogLine::default()
        };
        let answer = self.route(&method, &path, request, &mut line).await;
        let status = match &answer {
            Ok(response) => response.status().as_u16().to_string(),
            Err(_) => "dropped".to_owned(),
        };
        tracing::info!(
            %method,
            path,
            status,
            outcome = line.outcome.unwrap_or(""),
            ticket_id = line.ticket_id.as_deref().unwrap_or(""),
            key = line.key.as_deref().unwrap_or(""),
            correlation_id = line.correlation_id.as_deref().unwrap_or(""),
            x_amzn_trace_id = line.trace.x_amzn_trace_id.as_deref().unwrap_or(""),
            traceparent = line.trace.traceparent.as_deref().unwrap_or(""),
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "request"
        );
        answer
    }

    async fn route(
        &self,
        method: &Method,
        path: &str,
        request: Request<Incoming>,
        line: &mut LogLine,
    ) -> Result<Response<Body>, DropConnection> {
        let allowed: &[Method] = match path {
            "/health" => &[Method::GET],
            "/receipts-api/void-receipt" => &[Method::PUT],
            "/receipts-api/voided" => &[Method::GET],
            "/payments-api/refunds" => &[Method::GET, Method::PUT],
            "/admin/faults" => &[Method::GET, Method::PUT],
            "/admin/stats" => &[Method::GET],
            "/admin/calls" => &[Method::GET],
            "/admin/token" => &[Method::PUT],
            "/admin/reset" => &[Method::POST],
            _ => return Ok(http::error(StatusCode::NOT_FOUND, "no such route")),
        };
        if !allowed.contains(method) {
            return Ok(http::error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not served on {path}"),
            ));
        }
        Ok(match (method.as_str(), path) {
            ("GET", "/health") => http::json(StatusCode::OK, &json!({ "status": "ok" })),
            ("PUT", "/receipts-api/void-receipt") => {
                return self.call(Service::Receipts, request, line).await;
            }
            ("PUT", "/payments-api/refunds") => {
                return self.call(Service::Payments, request, line).await;
            }
            ("GET", "/receipts-api/voided") => self.listing(Service::Receipts),
            ("GET", "/payments-api/refunds") => self.listing(Service::Payments),
            ("GET", "/admin/faults") => self.faults_answer(),
            ("PUT", "/admin/faults") => match http::read_body(request).await {
                Some(body) => self.update_faults(&body),
                None => http::error(StatusCode::BAD_REQUEST, "unreadable body"),
            },
            ("PUT", "/admin/token") => match http::read_body(request).await {
                Some(body) => self.update_token(&body),
                None => http::error(StatusCode::BAD_REQUEST, "unreadable body"),
            },
            ("GET", "/admin/stats") => {
                http::json(StatusCode::OK, &json!(self.lock().stats.clone()))
            }
            ("GET", "/admin/calls") => {
                http::json(StatusCode::OK, &json!(self.lock().ticket_calls.clone()))
            }
            _ => {
                self.reset();
                http::json(StatusCode::OK, &json!({ "status": "reset" }))
            }
        })
    }

    fn listing(&self, service: Service) -> Response<Body> {
        let state = self.lock();
        let ledger = match service {
            Service::Receipts => &state.receipts,
            Service::Payments => &state.payments,
        };
        http::json(StatusCode::OK, &json!({ "items": ledger.effects }))
    }

    fn faults_answer(&self) -> Response<Body> {
        let state = self.lock();
        http::json(
            StatusCode::OK,
            &json!({ "faults": state.faults, "seed": state.seed }),
        )
    }

    /// `{"token": "<new>"}`: only the new token is accepted from now on (a rotation);
    /// `{"token": null}` accepts any call. The token is never echoed.
    fn update_token(&self, body: &[u8]) -> Response<Body> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct TokenUpdate {
            token: Option<String>,
        }
        match serde_json::from_slice::<TokenUpdate>(body) {
            Ok(TokenUpdate { token: Some(token) }) if token.is_empty() => {
                http::error(StatusCode::BAD_REQUEST, "an empty token")
            }
            Ok(update) => {
                let required = update.token.is_some();
                self.set_token(update.token);
                http::json(StatusCode::OK, &json!({ "token_required": required }))
            }
            Err(e) => http::error(StatusCode::BAD_REQUEST, format!("bad token update: {e}")),
        }
    }

    fn update_faults(&self, body: &[u8]) -> Response<Body> {
        let update: FaultsUpdate = match serde_json::from_slice(body) {
            Ok(update) => update,
            Err(e) => return http::error(StatusCode::BAD_REQUEST, format!("bad faults: {e}")),
        };
        match self.apply_update(update) {
            Ok(()) => self.faults_answer(),
            Err(message) => http::error(StatusCode::BAD_REQUEST, message),
        }
    }
}
